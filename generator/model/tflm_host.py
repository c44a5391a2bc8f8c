"""The real TFLite-Micro runtime (the `tflite-micro` wheel), always in a child process.

The runtime is native code: a too-small arena or a corrupt model can crash it (segfaults
were seen below ~2 KB). So every call runs in a child Python process; a crash becomes a
`TinygenError`, never a dead CLI. The child is started once and reused across calls.

Protocol: the parent writes one JSON request per line to the child's stdin, the child
answers one JSON line on stdout. TFLite-Micro's own log (MicroPrintf) goes to the child's
stderr, which is a temp file the parent quotes in errors.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..child import child_env, python_module
from ..errors import TinygenError


# How long one request may take before the runtime is taken to be stuck (a model whose loop
# never ends): a set-up and an inference on zeros, and per sample run.
REQUEST_SECONDS = 120
SAMPLE_SECONDS = 10


class HostRuntime:
    """A child process holding one model; `try_arena` and `run` talk to it."""

    def __init__(self, model: bytes):
        self._dir = tempfile.TemporaryDirectory(prefix="tinygen-tflm-")
        self.model_path = Path(self._dir.name) / "model.tflite"
        self.model_path.write_bytes(model)
        self._log_path = Path(self._dir.name) / "tflm.log"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "HostRuntime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop_child()
        self._dir.cleanup()

    def _stop_child(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._log = open(self._log_path, "ab")
            self._proc = subprocess.Popen(
                python_module("model.tflm_host", str(self.model_path)),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                cwd=self._dir.name, env=child_env())
            self._log.close()
        return self._proc

    def _log_size(self) -> int:
        return self._log_path.stat().st_size if self._log_path.exists() else 0

    def _request(self, request: dict, samples: int = 0) -> dict:
        """Send one request and return the child's answer plus what TFLite-Micro logged
        meanwhile ("log"). A crashed child answers {"ok": False, "crashed": True}; one that
        does not answer in time is stopped, and that is an error."""
        log_start = self._log_size()
        answer = self._exchange(request, REQUEST_SECONDS + SAMPLE_SECONDS * samples)
        with open(self._log_path, "rb") as log:
            log.seek(log_start)
            answer["log"] = log.read().decode("utf-8", "replace")
        return answer

    def _exchange(self, request: dict, seconds: float) -> dict:
        proc = self._start()
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
            if not select.select([proc.stdout], [], [], seconds)[0]:
                self._stop_child()
                raise TinygenError(
                    f"The TFLite-Micro runtime did not finish within {seconds:.0f} s (set-up and "
                    f"{'one inference' if request['cmd'] == 'try' else 'the inferences asked'}); it was stopped. "
                    "A loop in the model (WHILE) that never ends on TFLite-Micro does this.",
                    hint="Check the model on TFLite-Micro itself; tinygen writes nothing for it.")
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            code = proc.wait()
            self._proc = None
            return {"ok": False, "crashed": True, "error": f"the runtime process died (exit code {code})"}
        return json.loads(line)

    def try_arena(self, arena_bytes: int, allocations: bool = False) -> dict:
        """Allocate tensors in an arena of `arena_bytes` and run one inference on zeros.
        With `allocations`, the log also holds the allocator's report (print_allocations)."""
        return self._request({"cmd": "try", "arena": arena_bytes, "allocations": allocations})

    def run(self, arena_bytes: int, inputs: list[np.ndarray], output_count: int,
            fresh_each: bool = False) -> list[np.ndarray]:
        """Run each sample (axis 0 of every input array, in the input tensors' own types) and
        return the raw outputs stacked the same way. Samples run one after the other on one
        interpreter (a model with state carries it from one to the next), or with
        `fresh_each` each on a freshly set-up one."""
        return self._run("run", arena_bytes, inputs, output_count, fresh_each)

    def run_float(self, arena_bytes: int, inputs: list[np.ndarray], output_count: int) -> list[np.ndarray]:
        """Like `run`, but float inputs in and float outputs out, (de)quantized with the
        scale and zero point the runtime itself reads from the model (not tinygen's)."""
        return self._run("run_float", arena_bytes, inputs, output_count)

    def _run(self, command: str, arena_bytes: int, inputs: list[np.ndarray], output_count: int,
             fresh_each: bool = False) -> list[np.ndarray]:
        in_path = Path(self._dir.name) / "inputs.npz"
        out_path = Path(self._dir.name) / "outputs.npz"
        np.savez(in_path, *inputs)
        answer = self._request({"cmd": command, "arena": arena_bytes, "inputs": str(in_path),
                                "outputs": str(out_path), "output_count": output_count,
                                "fresh_each": fresh_each}, samples=len(inputs[0]) if inputs else 0)
        if not answer["ok"]:
            raise TinygenError(
                f"The TFLite-Micro runtime failed to run the model with a {arena_bytes:,}-byte arena: "
                f"{answer['error']}." + _quote_log(answer["log"]))
        with np.load(out_path) as npz:
            return [npz[f"arr_{i}"] for i in range(len(npz.files))]


def log_tail(log: str, lines: int = 4) -> str:
    kept = [line for line in log.splitlines()
            if line.strip() and not line.startswith("[RecordingMicroAllocator]")]
    return "\n".join(kept[-lines:])


def _quote_log(log: str) -> str:
    tail = log_tail(log)
    return f"\nTFLite-Micro said:\n{tail}" if tail else ""


def runtime_version() -> str:
    from tflite_micro.python.tflite_micro import _version

    return _version.__version__


# --- child side -----------------------------------------------------------------------

def _child_main(model_path: str) -> None:
    from tflite_micro.python.tflite_micro import runtime

    model = Path(model_path).read_bytes()
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        try:
            interpreter = runtime.Interpreter.from_bytes(model, arena_size=int(request["arena"]))
            if request["cmd"] == "try":
                _invoke_on_zeros(interpreter)
                if request.get("allocations"):
                    interpreter.print_allocations()  # to stderr, i.e. the parent's log
                answer = {"ok": True}
            else:
                arena = int(request["arena"])
                fresh = ((lambda: runtime.Interpreter.from_bytes(model, arena_size=arena))
                         if request.get("fresh_each") else None)
                _run_samples(interpreter, request["inputs"], request["outputs"],
                             int(request["output_count"]), as_float=request["cmd"] == "run_float", fresh=fresh)
                answer = {"ok": True}
        except Exception as exc:  # the runtime raises RuntimeError/ValueError on failure
            answer = {"ok": False, "error": str(exc) or type(exc).__name__}
        finally:
            interpreter = None
        sys.stderr.flush()
        out.write(json.dumps(answer) + "\n")
        out.flush()


def _invoke_on_zeros(interpreter) -> None:
    index = 0
    while True:  # the wrapper has no input count; it raises past the last input
        try:
            details = interpreter.get_input_details(index)
        except Exception:
            break
        interpreter.set_input(np.zeros(details["shape"], details["dtype"]), index)
        index += 1
    interpreter.invoke()


def _scale_and_zero_point(details: dict) -> tuple[float | None, int]:
    params = details.get("quantization_parameters") or {}
    scales, zero_points = params.get("scales"), params.get("zero_points")
    if scales is None or len(scales) == 0:
        return None, 0
    return float(scales[0]), int(zero_points[0]) if zero_points is not None and len(zero_points) else 0


def _run_samples(interpreter, inputs_path: str, outputs_path: str, output_count: int,
                 as_float: bool = False, fresh=None) -> None:
    """`fresh`: makes a new interpreter for each sample after the first (no state carried)."""
    from .quantization import dequantize, quantize

    with np.load(inputs_path) as npz:
        inputs = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    details = [interpreter.get_input_details(i) for i in range(len(inputs))]
    out_params = [_scale_and_zero_point(interpreter.get_output_details(k)) for k in range(output_count)]
    results: list[list[np.ndarray]] = []
    for n in range(len(inputs[0])):
        if fresh is not None and n > 0:
            interpreter = fresh()
        for i, (arr, d) in enumerate(zip(inputs, details)):
            sample = arr[n].reshape(d["shape"])
            if as_float:
                sample = quantize(sample, *_scale_and_zero_point(d), d["dtype"])
            interpreter.set_input(sample.astype(d["dtype"]), i)
        interpreter.invoke()
        outputs = [np.array(interpreter.get_output(k)) for k in range(output_count)]
        if as_float:
            outputs = [dequantize(out, *params) for out, params in zip(outputs, out_params)]
        results.append(outputs)
    stacked = [np.stack([r[k] for r in results]) for k in range(len(results[0]))]
    np.savez(outputs_path, *stacked)


if __name__ == "__main__":
    _child_main(sys.argv[1])
