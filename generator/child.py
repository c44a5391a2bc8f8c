"""How tinygen starts its child Python processes (the converter, the TFLite-Micro runtime).

Both children run native code that can crash, so they live in their own processes. Two
rules keep them from changing what the user meant:

- Every path a child receives is absolute, resolved in the user's shell folder by the
  parent (`user_path`); a child never resolves a relative path itself.
- A child runs in a private working folder with the parent's interpreter, so it imports the
  very `tinygen` installation the parent runs: neither the user's folder (which may hold a
  `tinygen/` of its own, or a file with the same relative name as the model) nor the
  folder the command was started from can change what it reads or imports.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def user_path(path: str | os.PathLike) -> Path:
    """A path as the user typed it, made absolute against the parent's working folder."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def python_module(module: str, *args: str) -> list[str]:
    """argv running `python -m tinygen.<module>` (e.g. "model.tflm_host") with this interpreter."""
    return [sys.executable, "-m", f"{__package__}.{module}", *args]


def child_env() -> dict[str, str]:
    """The parent's environment, unbuffered (the children talk through pipes)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
