"""Class names for a classifier's first output: from `--labels FILE`, else from the model.

A `.tflite` written with TFLite Model Metadata carries its label file as an associated file:
the flatbuffer is also a zip archive holding e.g. `labels.txt`. Keras model files have no
standard place for class names, so a Keras model's labels come from `--labels`.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..errors import TinygenError
from .analyze import ModelReport, first_output

MAX_LABEL_LENGTH = 64  # longer names are cut: they end up in flash and on a serial console


def read_labels(path: str | Path) -> list[str]:
    """One class name per line; blank lines at the end are ignored."""
    path = Path(path)
    if not path.is_file():
        raise TinygenError(f"Labels file '{path}' does not exist.",
                           hint="Pass a text file with one class name per line, in output order.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise TinygenError(f"Could not read labels file '{path}': {exc}.",
                           hint="A UTF-8 text file with one class name per line.") from None
    names = _lines(text)
    if not names:
        raise TinygenError(f"Labels file '{path}' holds no class names.")
    return names


def _lines(text: str) -> list[str]:
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    return names


def from_tflite_metadata(tflite: bytes, count: int) -> list[str]:
    """The label file packed into a .tflite by TFLite Model Metadata: the first associated
    text file with exactly `count` lines ([] if there is none)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(tflite))
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return []
    for name in names:
        if not name.lower().endswith(".txt"):
            continue
        try:
            lines = _lines(archive.read(name).decode("utf-8-sig"))
        except (UnicodeDecodeError, zipfile.BadZipFile, OSError, ValueError):
            continue
        if len(lines) == count:
            return lines
    return []


def choose(report: ModelReport, tflite: bytes, user_labels: list[str] | None,
           labels_path: str | Path | None) -> list[str]:
    """The class names of the model's first output: the user's (checked against the
    output's size), else the model's own metadata, else none."""
    output = report.outputs[first_output(report.outputs)]
    count = output.element_count
    if user_labels is not None:
        if len(user_labels) != count:
            raise TinygenError(
                f"Labels file '{labels_path}' has {len(user_labels)} class name(s) but the model's "
                f"first output '{output.display_name}' has {count} value(s) (shape {output.shape}).",
                hint="One line per output value, in the order of the model's output.")
        return [label[:MAX_LABEL_LENGTH] for label in user_labels]
    return [label[:MAX_LABEL_LENGTH] for label in from_tflite_metadata(tflite, count)] if count > 1 else []
