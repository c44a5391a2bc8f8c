"""Stage 4b: golden vectors for the firmware's boot-time self-test.

A few inputs (the user's calibration samples, else deterministic ones seeded by the model's
hash) go through the real TFLite-Micro runtime on the host; the firmware runs the same raw
input tensors and compares its outputs with these. A mismatch on the device means a
deployment bug (wrong kernels, corrupt flash, a mis-sized arena), not a quantization loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analyze import ModelReport, TensorInfo
from .tflm_host import HostRuntime

GOLDEN_SAMPLES = 3

# How far a deployment's outputs may differ from the host's TFLite-Micro and still count as
# the same result. Integer outputs: one quantization step, because optimized kernels
# (CMSIS-NN, esp-nn) round some intermediate products differently from the reference
# kernels. Float outputs: compilers and FPUs fuse multiply-adds differently. The firmware's
# self-test and `tinygen verify` both use these numbers.
INTEGER_TOLERANCE_STEPS = 1
FLOAT_ABS_TOLERANCE = 1e-4
FLOAT_REL_TOLERANCE = 1e-3


def within_tolerance(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Element-wise: does `got` count as the same output as `want`?"""
    if np.issubdtype(want.dtype, np.floating):
        want64, got64 = want.astype(np.float64), got.astype(np.float64)
        close = np.abs(got64 - want64) <= FLOAT_ABS_TOLERANCE + FLOAT_REL_TOLERANCE * np.abs(want64)
        return close | (np.isnan(want64) & np.isnan(got64))
    if want.dtype == np.bool_:
        return got == want
    return np.abs(got.astype(np.int64) - want.astype(np.int64)) <= INTEGER_TOLERANCE_STEPS


@dataclass
class GoldenVectors:
    inputs: list[np.ndarray]  # per model input: (samples, *shape) in the tensor's dtype
    outputs: list[np.ndarray]  # per model output, likewise
    source: str  # where the inputs came from, for the generated comment

    @property
    def count(self) -> int:
        return len(self.inputs[0])


def round_half_away(values: np.ndarray) -> np.ndarray:
    """C's roundf (and TFLite's TfLiteRound): halves away from zero. numpy's round takes
    halves to even, which would differ from the firmware's model_set_input() by one step."""
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def to_tensor_dtype(samples: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Float samples -> the input tensor's type, quantizing with its scale/zero point
    (what the firmware's model_set_input() does)."""
    dtype = np.dtype(tensor.numpy_dtype)
    if np.issubdtype(dtype, np.integer) and tensor.scale:
        info = np.iinfo(dtype)
        q = round_half_away(samples.astype(np.float32) / np.float32(tensor.scale)) + tensor.zero_point
        return np.clip(q, info.min, info.max).astype(dtype)
    return samples.astype(dtype)


def to_float(values: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """A tensor's values as floats, dequantized with its scale/zero point (what the
    firmware's model_get_output() does)."""
    if np.issubdtype(values.dtype, np.integer) and tensor.scale:
        return (values.astype(np.float64) - tensor.zero_point) * tensor.scale
    return values.astype(np.float64)


def make_golden(report: ModelReport, runtime: HostRuntime, arena_bytes: int,
                samples: list[np.ndarray] | None) -> GoldenVectors:
    if samples:
        count = min(GOLDEN_SAMPLES, len(samples[0]))
        inputs = [to_tensor_dtype(arr[:count].reshape(count, *t.shape), t)
                  for arr, t in zip(samples, report.inputs)]
        source = f"the first {count} calibration sample(s)"
    else:
        inputs = deterministic_inputs(report, GOLDEN_SAMPLES)
        source = f"{GOLDEN_SAMPLES} pseudo-random inputs seeded by the model's SHA-256"
    outputs = runtime.run(arena_bytes, inputs, len(report.outputs))
    return GoldenVectors(inputs=inputs, outputs=outputs, source=source)


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
