"""Floats <-> a tensor's quantized values, as the firmware converts them (model_set_input()
and model_get_output()) and TFLite's quantizer rounds: the one place tinygen does it."""

from __future__ import annotations

import numpy as np

from .analyze import TensorInfo


def round_half_away(values: np.ndarray) -> np.ndarray:
    """C's roundf (and TFLite's TfLiteRound): halves away from zero. numpy's round takes
    halves to even, which would differ from the firmware's model_set_input() by one step."""
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def quantize(values: np.ndarray, scale: float | None, zero_point: int, dtype) -> np.ndarray:
    """Floats -> a tensor's type, as the firmware's model_set_input() does: for integer types
    value / scale + zero point, or without quantization (e.g. Embedding indices) the value,
    rounded and saturated; a plain cast otherwise."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        floats = values.astype(np.float32)
        q = round_half_away(floats / np.float32(scale)) + zero_point if scale else round_half_away(floats)
        return np.clip(q.astype(np.float64), info.min, info.max).astype(dtype)
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
