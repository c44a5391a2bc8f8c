"""Stage 1: a model file on disk -> something the converter can take.

Knows `.tflite` (bytes, no TensorFlow), `.keras` (Keras 3), legacy `.h5` (Keras 3, then
`tf_keras` for TF2-era files Keras 3 refuses) and SavedModel directories. TensorFlow is
imported only inside the functions that need it, so the `.tflite` path never pays for it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TinygenError
from .capture import capture_native_output

CONVERT_EXTRA_HINT = "pip install 'tinygen[convert]' (TensorFlow, to convert Keras models)"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TFLITE_SUFFIX = ".tflite"
TFLITE_FILE_IDENTIFIER = b"TFL3"


@dataclass
class LoadedModel:
    """What `load_model` found. Exactly one of `tflite_bytes`, `keras_model`,
    `saved_model_dir` is set."""

    path: Path
    kind: str  # "tflite" | "keras" | "saved_model"
    tflite_bytes: bytes | None = None
    keras_model: Any = None
    saved_model_dir: Path | None = None
    loader: str = ""  # which library loaded it, e.g. "keras 3.15.1" or "tf_keras 2.21.0"


def require_tensorflow(what: str) -> None:
    """A clear error, before any work, when this installation has no TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        raise TinygenError(f"{what} needs TensorFlow, which this installation of tinygen lacks.",
                           hint=CONVERT_EXTRA_HINT + "; a ready .tflite needs no TensorFlow.")


def model_kind(path: Path) -> str:
    """Classify a model path without importing TensorFlow."""
    if not path.exists():
        raise TinygenError(
            f"Model file '{path}' does not exist.",
            hint="Pass the path of a .keras, .h5 or .tflite file, or of a SavedModel directory.",
        )
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "saved_model"
        raise TinygenError(
            f"'{path}' is a directory but not a SavedModel (it has no saved_model.pb).",
            hint="Pass a SavedModel directory, or a .keras, .h5 or .tflite file.",
        )
    if path.stat().st_size == 0:
        raise TinygenError(f"Model file '{path}' is empty.")
    suffix = path.suffix.lower()
    if suffix == TFLITE_SUFFIX:
        return "tflite"
    if suffix in KERAS_SUFFIXES:
        return "keras"
    raise TinygenError(
        f"Unsupported model file type '{path.suffix or '(none)'}' for '{path}'.",
        hint="tinygen reads .keras, .h5/.hdf5, .tflite files and SavedModel directories.",
    )


def load_model(path: str | os.PathLike) -> LoadedModel:
    path = Path(path)
    kind = model_kind(path)
    if kind == "tflite":
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
            raise TinygenError(
                f"'{path}' is not a TFLite model (no 'TFL3' flatbuffer identifier).",
                hint="Check that the file was written by the TFLite converter and is not truncated.",
            )
        return LoadedModel(path=path, kind=kind, tflite_bytes=data, loader="file")
    if kind == "saved_model":
        return LoadedModel(path=path, kind=kind, saved_model_dir=path, loader="SavedModel")
    with capture_native_output():  # TensorFlow's import and load logs
        return _load_keras(path)


def _load_keras(path: Path) -> LoadedModel:
    import keras  # Keras 3, installed with TensorFlow

    errors: list[str] = []
    details: list[str] = []  # full exception texts, searched for unknown class names
    try:
        model = keras.models.load_model(path, compile=False)
        return LoadedModel(path=path, kind="keras", keras_model=model,
                           loader=f"keras {keras.__version__}")
    except Exception as exc:  # Keras raises many types for unreadable files
        errors.append(f"Keras {keras.__version__}: {_first_line(exc)}")
        details.append(str(exc))

    if path.suffix.lower() in (".h5", ".hdf5"):
        # Many TF2-era .h5 files (e.g. DepthwiseConv2D with a `groups` key) only load in
        # the legacy Keras 2 implementation, published as `tf_keras`.
        try:
            import tf_keras
        except ImportError:
            errors.append("tf_keras is not installed (pip install tf-keras)")
        else:
            try:
                model = tf_keras.models.load_model(path, compile=False)
                return LoadedModel(path=path, kind="keras", keras_model=model,
                                   loader=f"tf_keras {tf_keras.__version__}")
            except Exception as exc:
                errors.append(f"tf_keras {tf_keras.__version__}: {_first_line(exc)}")
                details.append(str(exc))

    unknown = sorted(set(_UNKNOWN_CLASS.findall(" ".join(details))))
    raise TinygenError(
        f"Could not load the Keras model '{path}'. "
        + (f"It uses class(es) Keras does not know: {', '.join(unknown)} (custom layers?). "
           if unknown else "")
        + " / ".join(errors),
        hint="If the model uses custom layers, export it to .tflite (or a SavedModel) in the "
        "environment that defines them and pass that file to tinygen.",
    )


_UNKNOWN_CLASS = re.compile(r"(?:Could not locate class|Unknown layer:?|Unknown object:?)\s*'?(\w+)'?")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    return line if len(line) <= 300 else line[:297] + "..."
