"""How tinygen starts its child Python processes (the converter, the TFLite-Micro runtime).

Both children run native code that can crash, so they live in their own processes. Two
rules keep them from changing what the user meant:

- Every path a child receives is absolute, resolved in the user's shell folder by the
  parent (`user_path`); a child never resolves a relative path itself.
- A child runs in a private working folder and imports the very `generator` package the
  parent runs (its folder first on PYTHONPATH), so neither the user's folder (which may
  hold a `generator/` of its own, or a file with the same relative name as the model)
  nor the package's parent folder can change what it reads or imports.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def user_path(path: str | os.PathLike) -> Path:
    """A path as the user typed it, made absolute against the parent's working folder."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def python_module(module: str, *args: str) -> list[str]:
    """argv running `python -m generator.<module>` with this interpreter."""
    return [sys.executable, "-m", f"generator.{module}", *args]


def child_env() -> dict[str, str]:
    """The parent's environment, with this `generator` package importable first when it runs
    from a source folder (an installed one is found in site-packages as usual; putting
    site-packages ahead of the standard library would be wrong)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if str(PACKAGE_PARENT) not in site.getsitepackages() + [site.getusersitepackages()]:
        inherited = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = str(PACKAGE_PARENT) + (os.pathsep + inherited if inherited else "")
    return env
