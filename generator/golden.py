"""Stage 4b: golden vectors for the firmware's boot-time self-test.

A few inputs (the user's calibration samples, else deterministic ones seeded by the model's
hash) go through the real TFLite-Micro runtime on the host; the firmware runs the same raw
input tensors and compares its outputs with these. A mismatch on the device means a
deployment bug (wrong kernels, corrupt flash, a mis-sized arena), not a quantization loss.

The board's kernels are not the host's: CMSIS-NN and esp-nn compute the same layers with
other rounding, so a value near a half step may land one step away, and the layers after
it can carry that step further. So the golden inputs are chosen away from ties: of up to
CANDIDATES inputs, those whose outputs do not move when every layer's pre-rounding values
are shifted by TIE_STEPS of a step either way (`perturb.shifted_biases`). And the tolerance
of each integer output follows the kernels: one step where they are documented to round
as the reference kernels do, else how far a half-step rounding difference in every layer
was seen to carry to that output on the chosen inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analyze import ModelReport, TensorInfo
from .perturb import shifted_biases
from .tflm_host import HostRuntime

GOLDEN_SAMPLES = 3
CANDIDATES = 24  # inputs tried, of which the GOLDEN_SAMPLES furthest from ties are kept
TIE_STEPS = 1 / 16  # a pre-rounding shift this small only flips values at near-ties
ROUNDING_STEPS = 0.5  # one rounding step of difference in every layer

# How far a board's outputs may differ from the host's TFLite-Micro and still count as the
# same result. Integer outputs: at least one quantization step (see the module docstring for
# more). Float outputs: compilers and FPUs fuse multiply-adds differently.
INTEGER_TOLERANCE_STEPS = 1
FLOAT_ABS_TOLERANCE = 1e-4
FLOAT_REL_TOLERANCE = 1e-3


def within_tolerance(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Element-wise, for float outputs: does `got` count as the same output as `want`?
    (Integer outputs are compared in quantization steps, INTEGER_TOLERANCE_STEPS.)"""
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    close = np.abs(got64 - want64) <= FLOAT_ABS_TOLERANCE + FLOAT_REL_TOLERANCE * np.abs(want64)
    return close | (np.isnan(want64) & np.isnan(got64))


@dataclass
class GoldenVectors:
    inputs: list[np.ndarray]  # per model input: (samples, *shape) in the tensor's dtype
    outputs: list[np.ndarray]  # per model output, likewise
    source: str  # where the inputs came from, for the generated comment
    tolerance_steps: list[int]  # per model output: allowed difference of an integer output
    selection: str  # how the inputs were chosen and the tolerance set, for the comment

    @property
    def count(self) -> int:
        return len(self.inputs[0])


def round_half_away(values: np.ndarray) -> np.ndarray:
    """C's roundf (and TFLite's TfLiteRound): halves away from zero. numpy's round takes
    halves to even, which would differ from the firmware's model_set_input() by one step."""
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def quantize(values: np.ndarray, scale: float | None, zero_point: int, dtype) -> np.ndarray:
    """Floats -> a tensor's type: value / scale + zero point, saturated, for quantized integer
    types (what the firmware's model_set_input() does); a plain cast otherwise."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        q = round_half_away(values.astype(np.float32) / np.float32(scale)) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)
    return values.astype(dtype)


def dequantize(values: np.ndarray, scale: float | None, zero_point: int) -> np.ndarray:
    """A tensor's values as floats (what the firmware's model_get_output() does)."""
    if np.issubdtype(values.dtype, np.integer) and scale:
        return (values.astype(np.float64) - zero_point) * scale
    return values.astype(np.float64)


def to_tensor_dtype(samples: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Float samples -> the input tensor's type, with its analyzed scale/zero point."""
    return quantize(samples, tensor.scale, tensor.zero_point, tensor.numpy_dtype)


def to_float(values: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """A tensor's values as floats, with its analyzed scale/zero point."""
    return dequantize(values, tensor.scale, tensor.zero_point)


def make_golden(report: ModelReport, runtime: HostRuntime, arena_bytes: int,
                samples: list[np.ndarray] | None, tflite: bytes, kernels_round_like_reference: bool) -> GoldenVectors:
    if samples:
        count = min(CANDIDATES, len(samples[0]))
        candidates = [to_tensor_dtype(arr[:count].reshape(count, *t.shape), t)
                      for arr, t in zip(samples, report.inputs)]
        source = "calibration sample(s)"
    else:
        count = CANDIDATES
        candidates = deterministic_inputs(report, count)
        source = "pseudo-random input(s) seeded by the model's SHA-256"
    # A model with variable tensors is checked one vector at a time from its reset state (the
    # firmware calls Reset() before each: the pinned LSTMs agree from zero state, and drift
    # apart as state builds up); one with resource variables can only run from set-up on.
    fresh = report.state == "variables"
    outputs = runtime.run(arena_bytes, candidates, len(report.outputs), fresh_each=fresh)
    quantized = [k for k, t in enumerate(report.outputs) if t.scale and np.issubdtype(outputs[k].dtype, np.integer)]

    def change(steps: float, rows: np.ndarray) -> np.ndarray | None:
        """Per (candidate, output): the largest move of an integer output, in steps, when
        every bias shifts by `steps` of an output step."""
        variant = shifted_biases(tflite, steps)
        if variant is None or not quantized:
            return None
        with HostRuntime(variant) as shifted:
            moved = shifted.run(arena_bytes, [arr[rows] for arr in candidates], len(report.outputs), fresh_each=fresh)
        table = np.zeros((len(rows), len(report.outputs)), dtype=np.int64)
        for k in quantized:
            diff = np.abs(moved[k].astype(np.int64) - outputs[k][rows].astype(np.int64))
            table[:, k] = diff.reshape(len(rows), -1).max(axis=1)
        return table

    every = np.arange(count)
    ties = [t for t in (change(TIE_STEPS, every), change(-TIE_STEPS, every)) if t is not None]
    if not ties:  # nothing to shift (a float model, no biased int8 layer)
        chosen = every[:GOLDEN_SAMPLES]
        tolerance = [INTEGER_TOLERANCE_STEPS] * len(report.outputs)
        selection = "the first inputs (no int8 layer with a bias to check ties on)"
    else:
        tie_move = np.maximum.reduce(ties)  # (candidate, output)
        chosen = np.array(sorted(every, key=lambda c: (int(tie_move[c].max()), c))[:GOLDEN_SAMPLES])
        near_tie = tie_move[chosen].max(axis=0)
        if kernels_round_like_reference:
            tolerance = [max(INTEGER_TOLERANCE_STEPS, int(m)) for m in near_tie]
            basis = "the kernels round as the reference kernels do"
        else:
            carried = np.maximum.reduce([t for t in (change(ROUNDING_STEPS, chosen),
                                                     change(-ROUNDING_STEPS, chosen)) if t is not None])
            tolerance = [max(INTEGER_TOLERANCE_STEPS, int(m)) for m in np.maximum(carried.max(axis=0), near_tie)]
            basis = "the kernels may round one step apart from the reference kernels in any layer"
        stable = int(np.sum(tie_move.max(axis=1) == 0))
        selection = (f"the {len(chosen)} of {count} {source} furthest from rounding ties ({stable} of "
                     f"{count} had none); tolerance {'/'.join(map(str, tolerance))} step(s) per output "
                     f"because {basis}")
    inputs = [arr[chosen] for arr in candidates]
    # Run the chosen inputs again as the firmware's self-test does, right after set-up: a model
    # with resource variables gives each output from the inputs before it.
    expected = runtime.run(arena_bytes, inputs, len(report.outputs), fresh_each=fresh)
    return GoldenVectors(inputs=inputs, outputs=expected, source=f"{len(chosen)} {source}",
                         tolerance_steps=tolerance, selection=selection)


def deterministic_inputs(report: ModelReport, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(int(report.sha256[:16], 16))
    arrays = []
    for t in report.inputs:
        dtype = np.dtype(t.numpy_dtype)
        shape = (count, *t.shape)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype))
        elif dtype == np.bool_:
            arrays.append(rng.integers(0, 2, size=shape).astype(np.bool_))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays
