"""Input data a user supplies, read and checked against the model's input shapes once, here.

Calibration (representative) data calibrates int8 conversion and becomes the inputs of the
firmware's golden self-test; evaluation data (inputs plus labels) feeds `tinygen verify`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TinygenError


@dataclass(frozen=True)
class InputSpec:
    """One model input as the converter sees it: name and shape with batch 1."""

    name: str
    shape: tuple[int, ...]


# Fewer samples than this calibrate int8 ranges poorly (the converter's documentation asks
# for about 100 to 500 representative samples).
FEW_CALIBRATION_SAMPLES = 32


def read_calibration(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """The calibration file's arrays, checked for what needs no model: the file exists and
    holds non-empty, finite, numeric arrays. Cheap: runs before TensorFlow is loaded."""
    path = Path(path)
    if not path.is_file():
        raise TinygenError(f"Calibration data file '{path}' does not exist.",
                           hint="Pass the .npy/.npz file of representative input samples.")
    arrays = _read_arrays(path)
    for key, arr in arrays:
        _check_values(f"Calibration data '{path}' (array '{key}')", arr)
    return arrays


def load_samples(path: str | Path, inputs: list[InputSpec], notes: list[str] | None = None) -> list[np.ndarray]:
    """Read calibration samples: one float32 array of shape (N, *shape[1:]) per model input.

    `.npy`: one array, for a single-input model. `.npz`: one array per input, matched by
    input name, or by order when the names do not match; a single-array `.npz` is allowed
    for a single-input model. `notes`, when given, collects warnings about the data (a lone
    sample without its batch axis, a tiny set).
    """
    path = Path(path)
    arrays = read_calibration(path)
    if len(arrays) != len(inputs):
        raise TinygenError(
            f"Calibration data '{path}' holds {len(arrays)} array(s) but the model has "
            f"{len(inputs)} input(s) ({', '.join(i.name for i in inputs)}).",
            hint="Save one array per model input in an .npz, keyed by input name.",
        )
    by_name = {name: arr for name, arr in arrays}
    if all(spec.name in by_name for spec in inputs):
        ordered = [(spec.name, by_name[spec.name]) for spec in inputs]
    else:
        ordered = arrays
    samples = [_check(path, key, arr, spec, notes) for (key, arr), spec in zip(ordered, inputs)]
    if notes is not None and len(samples[0]) < FEW_CALIBRATION_SAMPLES:
        notes.append(f"Calibration data '{path}' holds only {len(samples[0])} sample(s); int8 ranges "
                     "calibrated on so few are likely to clip real inputs (100-500 typical).")
    return samples


def _read_arrays(path: Path) -> list[tuple[str, np.ndarray]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return [("array", np.load(path, allow_pickle=False))]
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return [(key, npz[key]) for key in npz.files]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise TinygenError(
            f"Could not read calibration data '{path}': {exc}",
            hint="Write it with numpy.save (.npy) or numpy.savez (.npz), without pickled objects.",
        ) from None
    raise TinygenError(
        f"Calibration data '{path}' must be a .npy or .npz file (got '{path.suffix}')."
    )


def _check_values(where: str, arr: np.ndarray) -> None:
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TinygenError(f"{where} has dtype {arr.dtype}; a numeric array is needed.")
    if arr.size == 0 or arr.ndim == 0:
        raise TinygenError(f"{where} is empty.", hint="Provide at least one sample (100-500 is typical).")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise TinygenError(f"{where} contains {bad} NaN or infinite value(s).",
                           hint="Calibration needs real, finite input samples.")


def _check(path: Path, key: str, arr: np.ndarray, spec: InputSpec, notes: list[str] | None = None,
           what: str = "Calibration data") -> np.ndarray:
    where = f"{what} '{path}' (array '{key}', for input '{spec.name}')"
    _check_values(where, arr)
    sample_shape = tuple(spec.shape[1:])
    if tuple(arr.shape[1:]) != sample_shape:
        if tuple(arr.shape) == sample_shape:
            arr = arr[np.newaxis]  # a single sample without the batch axis
            if notes is not None:
                notes.append(f"{where} has shape {sample_shape}, one sample without the batch "
                             "axis; it is used as 1 sample. Save an array of shape (N, "
                             f"{', '.join(map(str, sample_shape))}) to calibrate on N samples.")
        else:
            raise TinygenError(
                f"{where} has shape {tuple(arr.shape)}; the model expects samples of shape "
                f"{sample_shape}, i.e. an array of shape (N, {', '.join(map(str, sample_shape))}).",
            )
    return arr.astype(np.float32)


# Data whose values span less than this share of a quantized input's range, or of which more
# than OUTSIDE_SHARE saturates it, is scaled unlike the data the model was calibrated on.
NARROW_SHARE = 0.1
OUTSIDE_SHARE = 0.01


def range_warnings(what: str, samples: list[np.ndarray], tensors: list) -> list[str]:
    """Warnings for data far from what a quantized model's inputs represent: the input
    tensor's scale and zero point were calibrated on the training data, so values that
    saturate it, or use a sliver of it, are scaled differently (e.g. 0-255 vs 0-1)."""
    notes = []
    for arr, tensor in zip(samples, tensors):
        if not tensor.scale or tensor.numpy_dtype not in ("int8", "uint8", "int16"):
            continue
        info = np.iinfo(tensor.numpy_dtype)
        low = (int(info.min) - tensor.zero_point) * tensor.scale
        high = (int(info.max) - tensor.zero_point) * tensor.scale
        half_step = tensor.scale / 2
        outside = float(np.mean((arr < low - half_step) | (arr > high + half_step)))
        span = float(arr.max() - arr.min())
        shown = f"[{low:.4g}, {high:.4g}]"
        if outside > OUTSIDE_SHARE:
            notes.append(f"{what}: {outside:.0%} of the values for input '{tensor.display_name}' lie "
                         f"outside {shown}, the range its quantization represents; they saturate. "
                         "Is the data scaled like the model's training data?")
        elif span < NARROW_SHARE * (high - low):
            notes.append(f"{what}: the values for input '{tensor.display_name}' span {span:.4g}, "
                         f"{span / (high - low):.1%} of {shown}, the range its quantization "
                         "represents. Is the data scaled like the model's training data?")
    return notes


LABEL_KEYS = ("y", "labels", "label")


def load_eval_data(path: str | Path, inputs: list[InputSpec]) -> tuple[list[np.ndarray], np.ndarray]:
    """Read evaluation data: an .npz with the inputs (`x` for a single-input model, else one
    array per input name) and the labels (`y`), or two unnamed arrays (x, y) in that order.
    Returns (one float32 array per input, labels with one row per sample)."""
    path = Path(path)
    if not path.is_file():
        raise TinygenError(f"Evaluation data file '{path}' does not exist.")
    if path.suffix.lower() != ".npz":
        raise TinygenError(f"Evaluation data '{path}' must be an .npz file holding inputs and labels.",
                           hint="numpy.savez('eval.npz', x=inputs, y=labels)")
    arrays = dict(_read_arrays(path))
    if list(arrays) == ["arr_0", "arr_1"]:
        arrays = {"x": arrays["arr_0"], "y": arrays["arr_1"]}
    label_key = next((k for k in LABEL_KEYS if k in arrays), None)
    if label_key is None:
        raise TinygenError(f"Evaluation data '{path}' has no labels (arrays: {', '.join(arrays)}).",
                           hint="numpy.savez('eval.npz', x=inputs, y=labels)")
    labels = arrays.pop(label_key)
    if len(inputs) == 1 and "x" in arrays and inputs[0].name not in arrays:
        arrays = {inputs[0].name: arrays.pop("x"), **arrays}
    missing = [spec.name for spec in inputs if spec.name not in arrays]
    if missing:
        raise TinygenError(
            f"Evaluation data '{path}' has no array for input(s) {', '.join(missing)} "
            f"(arrays: {', '.join(arrays) or 'none'}).",
            hint="Key the inputs `x` (one-input model) or by input name, and the labels `y`.")
    samples = [_check(path, spec.name, arrays[spec.name], spec, what="Evaluation data") for spec in inputs]
    if labels.ndim == 0 or len(labels) != len(samples[0]):
        raise TinygenError(f"Evaluation data '{path}' has {labels.size if labels.ndim == 0 else len(labels)} "
                           f"label(s) for {len(samples[0])} input sample(s); one label row per sample is needed.")
    if not np.issubdtype(labels.dtype, np.number):
        raise TinygenError(f"Evaluation data '{path}': labels have dtype {labels.dtype}; numbers are needed.")
    return samples, labels
