"""Keep native log noise off the user's terminal, but let tinygen's own messages through.

TensorFlow logs from C++ straight to file descriptor 2 and Keras prints to stdout while
converting. Inside `capture_native_output()` fd 2 goes to a temporary file (its tail is
quoted in error messages), Python's `sys.stderr` still reaches the terminal (progress
messages use it) and Python-level `sys.stdout` chatter is swallowed.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from typing import Iterator


class CapturedOutput:
    text: str = ""

    def tail(self, lines: int = 6) -> str:
        kept = [line for line in self.text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])


@contextlib.contextmanager
def capture_native_output() -> Iterator[CapturedOutput]:
    captured = CapturedOutput()
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved_fd = os.dup(2)
        terminal = io.TextIOWrapper(os.fdopen(saved_fd, "wb", closefd=False),
                                    encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                                    errors="replace", line_buffering=True)
        saved_stderr, saved_stdout = sys.stderr, sys.stdout
        try:
            os.dup2(sink.fileno(), 2)
            sys.stderr, sys.stdout = terminal, io.StringIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield captured
        finally:
            terminal.flush()
            sys.stderr, sys.stdout = saved_stderr, saved_stdout
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
