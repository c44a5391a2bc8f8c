"""Progress on the user's terminal: one line per stage, one bar per long loop.

Library functions take a `Progress` and never print themselves. `Progress()` is silent;
the CLI passes a `TerminalProgress`, which draws a bar in place on a terminal and, when
stderr is a log file (CI), writes the bar's start and end only: never a line per sample.
"""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Silent progress: the default for library calls and tests."""

    def __call__(self, message: str) -> None:
        """One stage, e.g. 'Loading model.keras ...'."""

    def bar(self, label: str, done: int, total: int) -> None:
        """`done` of `total` items of a long loop; called with done == total at its end."""

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the run."""


class TerminalProgress(Progress):
    WIDTH = 30

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self._open_bar: str | None = None  # label of a bar drawn without its newline yet

    def _is_terminal(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def _end_bar_line(self) -> None:
        if self._open_bar is not None:
            self.stream.write("\n")
            self._open_bar = None

    def __call__(self, message: str) -> None:
        self._end_bar_line()
        self.stream.write(message + "\n")
        self.stream.flush()

    def warn(self, message: str) -> None:
        self("Warning: " + message)

    def bar(self, label: str, done: int, total: int) -> None:
        total = max(total, 1)
        if self._is_terminal():
            filled = self.WIDTH * done // total
            self.stream.write(f"\r  {label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}")
            self._open_bar = label
            if done >= total:
                self._end_bar_line()
        elif done == 0:
            self.stream.write(f"  {label}: {total} ...\n")
        elif done >= total:
            self.stream.write(f"  {label}: {total}/{total} done\n")
        self.stream.flush()
