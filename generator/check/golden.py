"""Stage 4b: golden vectors for the firmware's boot-time self-test.

A few inputs (the user's calibration samples, else deterministic ones seeded by the model's
hash) go through the real TFLite-Micro runtime on the host (the pinned `tflite-micro` wheel);
the firmware runs the same raw input tensors and compares its outputs with these. A mismatch
on the device means a deployment bug (wrong kernels, corrupt flash, a mis-sized arena), not a
quantization loss.

What the board computes was made to match the host's run where it can be (library/numerics.py: the
model is rewritten where the board's library would compute something else): then every
integer output must match exactly. Where the board's kernels may still round a step apart
(data/numerics.yaml lists those operators and why), a value near a half step may land one
step away, and the layers after it can carry that step further; the tolerance of each output
is then how far a half-step rounding difference in every layer was seen to carry to it.
Either way the golden inputs are chosen away from ties: of up to CANDIDATES inputs, those
whose outputs do not move when every layer's pre-rounding values are shifted by TIE_STEPS of
a step either way (`perturb.shifted_biases`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TinygenError
from ..model.analyze import ModelReport, TensorInfo
from ..model.quantization import to_tensor_dtype
from ..model.tflm_host import HostRuntime
from .perturb import shifted_biases

GOLDEN_SAMPLES = 3
CANDIDATES = 24  # inputs tried, of which the GOLDEN_SAMPLES furthest from ties are kept
TIE_STEPS = 1 / 16  # a pre-rounding shift this small only flips values at near-ties
ROUNDING_STEPS = 0.5  # one rounding step of difference in every layer

# How far a board's outputs may differ from the host's TFLite-Micro and still count as the
# same result where its kernels may round differently. Integer outputs: at least one
# quantization step (see the module docstring). Float outputs, always: compilers and FPUs
# fuse multiply-adds differently, and the boards' C libraries compute exp and tanh otherwise.
INTEGER_TOLERANCE_STEPS = 1
FLOAT_ABS_TOLERANCE = 1e-4
FLOAT_REL_TOLERANCE = 1e-3


def within_tolerance(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Element-wise, for float outputs: does `got` count as the same output as `want`?
    (Integer outputs are compared in quantization steps, `GoldenVectors.tolerance_steps`.)"""
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    close = np.abs(got64 - want64) <= FLOAT_ABS_TOLERANCE + FLOAT_REL_TOLERANCE * np.abs(want64)
    return close | (np.isnan(want64) & np.isnan(got64))


# What the golden vectors may take of the board's flash, unless the user asks for more: 10% of
# the model, at most 32 KB (at least 1 KB, so that a tiny model keeps a few real inputs).
BUDGET_SHARE_PERCENT = 10
BUDGET_CAP_BYTES = 32 * 1024
BUDGET_FLOOR_BYTES = 1024
SEED_BYTES = 4  # a generated vector stores its seed


def default_budget(model_bytes: int) -> int:
    return max(BUDGET_FLOOR_BYTES, min(BUDGET_CAP_BYTES, model_bytes * BUDGET_SHARE_PERCENT // 100))


@dataclass(frozen=True)
class Layout:
    """How the golden vectors are stored within `budget` bytes of flash: up to GOLDEN_SAMPLES
    vectors of stored inputs and outputs; fewer when they do not fit; inputs generated on the
    device from a stored seed when one stored input does not fit (the host generates the same
    values: `generated_input`); and only every `output_stride`-th output element when even one
    vector's outputs do not fit."""

    count: int
    generated: bool
    output_stride: int
    budget: int
    input_bytes: int  # one vector's stored inputs (0 when generated)
    output_bytes: int  # one vector's stored outputs (after the stride)

    @property
    def flash_bytes(self) -> int:
        return self.count * (self.input_bytes + self.output_bytes + (SEED_BYTES if self.generated else 0))

    def describe(self) -> str:
        how = ("inputs generated on the device from a seed" if self.generated else "inputs and outputs stored")
        stride = f", every {self.output_stride}th output element checked" if self.output_stride > 1 else ""
        return (f"{self.count} vector(s), {how}{stride}: {self.flash_bytes:,} B of flash "
                f"(budget {self.budget:,} B)")


def plan_layout(report: ModelReport, budget: int, samples: int | None = None) -> Layout:
    """The layout for `report` within `budget` bytes (`samples`: how many calibration samples
    there are to store, None for pseudo-random inputs)."""
    inputs = sum(t.byte_size for t in report.inputs)
    outputs = [t for t in report.outputs]
    full_outputs = sum(t.byte_size for t in outputs)
    wanted = min(GOLDEN_SAMPLES, samples) if samples else GOLDEN_SAMPLES
    stored = min(wanted, budget // max(1, inputs + full_outputs))
    if stored >= 1:
        return Layout(stored, False, 1, budget, inputs, full_outputs)
    count = min(GOLDEN_SAMPLES, budget // max(1, full_outputs + SEED_BYTES))
    if count >= 1:
        return Layout(count, True, 1, budget, 0, full_outputs)
    stride = -(-full_outputs // max(1, budget - SEED_BYTES))
    kept = sum(-(-t.element_count // stride) * (t.byte_size // max(1, t.element_count)) for t in outputs)
    return Layout(1, True, stride, budget, 0, kept)


@dataclass
class GoldenVectors:
    inputs: list[np.ndarray]  # per model input: (samples, *shape) in the tensor's dtype (the
                              # values the firmware feeds, stored or generated)
    outputs: list[np.ndarray]  # per model output: (samples, kept elements), every stride-th one
    source: str  # where the inputs came from, for the generated comment
    tolerance_steps: list[int]  # per model output: allowed difference of an integer output
    selection: str  # how the inputs were chosen and the tolerance set, for the comment
    layout: Layout
    seeds: list[int]  # per vector, when the inputs are generated on the device

    @property
    def count(self) -> int:
        return len(self.inputs[0])


def _invalid_made_up_inputs(report: ModelReport, exc: TinygenError) -> TinygenError:
    """The model failed on inputs tinygen made up: integer inputs without quantization are
    often indices, which random values overrun (those a GATHER reads directly are kept in its
    table's range, `index_rows`; not those it reads through other operators)."""
    indices = [f"'{t.name}' ({t.dtype.lower()})" for t in report.inputs
               if not t.scale and np.issubdtype(np.dtype(t.numpy_dtype), np.integer) and not index_rows(report, t)]
    if not indices:
        return exc
    return TinygenError(
        f"{exc.message}\nThe self-test's inputs were made up at random, and input {', '.join(indices)} takes "
        "integers the model may only accept in a range (e.g. the rows an Embedding or GATHER looks up).",
        hint="Pass --calibration-data with real inputs (.npy, or .npz with one array per input): the "
        "self-test is built from them.")


def first_mismatch(golden: GoldenVectors, outputs: list[np.ndarray]) -> tuple[int, int, int] | None:
    """What the firmware's self-test (tinygen_model.cpp CheckGoldenOutput) reports for these
    outputs of the golden inputs, stacked per vector: the first (vector, output, element) that
    differs beyond the tolerance, or None for PASS."""
    for vector in range(golden.count):
        for k, (want, steps) in enumerate(zip(golden.outputs, golden.tolerance_steps)):
            got = np.asarray(outputs[k]).reshape(golden.count, -1)[vector, ::golden.layout.output_stride]
            if np.issubdtype(want.dtype, np.integer):
                ok = np.abs(got.astype(np.int64) - want[vector].astype(np.int64)) <= steps
            elif want.dtype == np.bool_:
                ok = got == want[vector]
            else:
                ok = within_tolerance(got, want[vector])
            if not ok.all():
                return vector, k, int(np.argmin(ok)) * golden.layout.output_stride
    return None


def make_golden(report: ModelReport, runtime: HostRuntime, arena_bytes: int,
                samples: list[np.ndarray] | None, tflite: bytes, exact: bool, basis: str,
                layout: Layout) -> GoldenVectors:
    """`exact`: the board computes bit for bit what the host does (library/numerics.py), so every
    output must match exactly; else how far a one-step difference in every layer carries to
    each output. `basis` says which (for the generated comment); `layout` how they are stored."""
    seeds: list[int] = []
    if layout.generated:
        count = CANDIDATES
        seeds = [int(report.sha256[:8], 16) + k for k in range(count)]
        candidates = [np.stack([generated_input(report, i, seed) for seed in seeds]) for i in range(len(report.inputs))]
        source = "input(s) the firmware generates from a seed"
    elif samples:
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
    try:
        outputs = runtime.run(arena_bytes, candidates, len(report.outputs), fresh_each=fresh)
    except TinygenError as exc:
        raise _invalid_made_up_inputs(report, exc) if not samples or layout.generated else exc
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
        chosen = every[:layout.count]
        tolerance = [0 if exact else INTEGER_TOLERANCE_STEPS] * len(report.outputs)
        selection = f"the first {len(chosen)} {source} (no int8 layer with a bias to check ties on)"
    else:
        tie_move = np.maximum.reduce(ties)  # (candidate, output)
        chosen = np.array(sorted(every, key=lambda c: (int(tie_move[c].max()), c))[:layout.count])
        if exact:
            tolerance = [0] * len(report.outputs)
        else:
            carried = np.maximum.reduce([t for t in (change(ROUNDING_STEPS, chosen),
                                                     change(-ROUNDING_STEPS, chosen)) if t is not None])
            near_tie = tie_move[chosen].max(axis=0)
            tolerance = [max(INTEGER_TOLERANCE_STEPS, int(m)) for m in np.maximum(carried.max(axis=0), near_tie)]
        stable = int(np.sum(tie_move.max(axis=1) == 0))
        selection = f"the {len(chosen)} of {count} {source} furthest from rounding ties ({stable} of {count} had none)"
    selection += f"; tolerance {'/'.join(map(str, tolerance))} step(s) per output: {basis}"
    inputs = [arr[chosen] for arr in candidates]
    # Run the chosen inputs again as the firmware's self-test does, right after set-up: a model
    # with resource variables gives each output from the inputs before it.
    expected = runtime.run(arena_bytes, inputs, len(report.outputs), fresh_each=fresh)
    kept = [out.reshape(len(chosen), -1)[:, ::layout.output_stride] for out in expected]
    return GoldenVectors(inputs=inputs, outputs=kept, source=f"{len(chosen)} {source}",
                         tolerance_steps=tolerance, selection=f"{selection}; {layout.describe()}",
                         layout=layout, seeds=[seeds[c] for c in chosen] if seeds else [])


# The inputs a firmware generates for itself (tinygen_model.cpp GenerateGoldenInput): element i
# of input k for seed s is a 32-bit hash (lowbias32, by Chris Wellons) of s * GOLDEN_RATIO +
# k * INPUT_STRIDE + i, its top bits read as the tensor's type; float inputs get the int8 value
# scaled (the QUANTIZE that reads the input, or FLOAT_INPUT_SCALE).
GOLDEN_RATIO = 0x9E3779B9
INPUT_STRIDE = 0x85EBCA6B
FLOAT_INPUT_SCALE = 1 / 32


def lowbias32(values: np.ndarray) -> np.ndarray:
    x = values.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def float_input_scale(report: ModelReport, tensor: TensorInfo) -> tuple[float, int]:
    """(scale, zero point) turning a generated int8 value into a float input: those of the
    QUANTIZE that reads it (so it lands exactly on the int8 value), else FLOAT_INPUT_SCALE."""
    for op in report.operators:
        if op.subgraph == 0 and op.op == "QUANTIZE" and op.inputs and op.inputs[0] == tensor.index:
            out = report.tensors[0][op.outputs[0]]
            if out.scale:
                return out.scale, int(out.zero_point or 0)
    return FLOAT_INPUT_SCALE, 0


INDEX_TYPES = ("int32", "int64")  # what GATHER and EMBEDDING_LOOKUP take as positions


def index_rows(report: ModelReport, tensor: TensorInfo) -> int:
    """For an unquantized int32/int64 input that a GATHER (as its positions) or an
    EMBEDDING_LOOKUP (as its ids) reads: the rows of the smallest table it indexes, so made-up
    inputs stay in [0, rows). 0 for any other input (made-up values span the whole type)."""
    if tensor.scale or tensor.numpy_dtype not in INDEX_TYPES:
        return 0
    graph = report.tensors[0]
    rows = []
    for op in report.operators:
        if op.subgraph != 0 or len(op.inputs) < 2:
            continue
        if op.op == "GATHER" and op.inputs[1] == tensor.index:
            table = graph[op.inputs[0]].shape
            axis = int(op.options.get("axis", 0))
            axis += len(table) if axis < 0 else 0
            if 0 <= axis < len(table):
                rows.append(int(table[axis]))
        elif op.op == "EMBEDDING_LOOKUP" and op.inputs[0] == tensor.index and graph[op.inputs[1]].shape:
            rows.append(int(graph[op.inputs[1]].shape[0]))
    return min(rows) if rows and min(rows) > 0 else 0


def generated_input(report: ModelReport, position: int, seed: int) -> np.ndarray:
    """Input `position` as the firmware generates it for `seed`, in the tensor's type."""
    tensor = report.inputs[position]
    base = (seed * GOLDEN_RATIO + position * INPUT_STRIDE) & 0xFFFFFFFF
    h = lowbias32((np.arange(tensor.element_count, dtype=np.uint64) + base) & 0xFFFFFFFF)
    dtype = np.dtype(tensor.numpy_dtype)
    if dtype == np.float32:
        scale, zero_point = float_input_scale(report, tensor)
        q = (h >> np.uint32(24)).astype(np.uint8).view(np.int8)
        values = (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    elif dtype == np.bool_:
        values = (h >> np.uint32(31)).astype(np.bool_)
    elif rows := index_rows(report, tensor):
        values = (h % np.uint32(rows)).astype(dtype)
    else:
        bits = min(dtype.itemsize * 8, 32)  # int64: the hash as an int32, sign-extended
        values = (h >> np.uint32(32 - bits)).astype(f"uint{bits}").view(f"int{bits}" if dtype.kind == "i"
                                                                         else f"uint{bits}").astype(dtype)
    return values.reshape(tensor.shape)


def deterministic_inputs(report: ModelReport, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(int(report.sha256[:16], 16))
    arrays = []
    for t in report.inputs:
        dtype = np.dtype(t.numpy_dtype)
        shape = (count, *t.shape)
        if rows := index_rows(report, t):
            arrays.append(rng.integers(0, rows, size=shape, dtype=dtype))
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype))
        elif dtype == np.bool_:
            arrays.append(rng.integers(0, 2, size=shape).astype(np.bool_))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays
