"""Load + convert in a child process: a crash inside TensorFlow's native converter becomes
a clear error, never a dead CLI.

TensorFlow's converter is native code and can crash outright (seen: TensorFlow 2.21
segfaults calibrating a Keras 3 LSTM for int8). So `tinygen new`/`inspect`/`verify` load and
convert Keras models and SavedModels in a child Python process, which is also the only
process that imports TensorFlow for them.

Protocol: the child writes JSON lines to the parent on a private copy of its stdout:
`{"progress": text}` while it works, then one `{"ok": true, ...}` or
`{"ok": false, "message": ..., "hint": ...}`. Its stderr (TensorFlow's logs) goes to a
temporary file whose tail the parent quotes when the child dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..child import child_env, python_module, user_path
from ..errors import TinygenError
from ..progress import Progress
from .calibration import InputSpec


@dataclass
class Converted:
    tflite: bytes
    loader: str  # which library loaded the model, e.g. "keras 3.15.1"
    input_specs: list[InputSpec]  # the model's inputs with batch 1, in the model's order
    output_names: list[str]  # the Keras model's output names, in the model's order
    warnings: list[str]  # about the calibration data, found with the model at hand


def convert_in_child(model_path: Path, quantize: str, calibration_path: Path | None,
                     progress: Progress = Progress(), per_channel_dense: bool = True) -> Converted:
    """`model_path` and `calibration_path` as the user gave them (relative to the current
    folder): the child gets them absolute. `per_channel_dense`: see `convert.convert`."""
    with tempfile.TemporaryDirectory(prefix="tinygen-convert-") as folder:
        output = Path(folder) / "model.tflite"
        log_path = Path(folder) / "tensorflow.log"
        request = {"model": str(user_path(model_path)), "quantize": quantize, "output": str(output),
                   "per_channel_dense": per_channel_dense,
                   "calibration": str(user_path(calibration_path)) if calibration_path is not None else None}
        env = child_env()
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(python_module("model.convert_process", json.dumps(request)),
                                    stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                    cwd=folder, env=env)
        try:
            answer = None
            for line in proc.stdout:
                message = json.loads(line)
                if "progress" in message:
                    progress(message["progress"])
                elif "bar" in message:
                    progress.bar(*message["bar"])
                else:
                    answer = message
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: do not leave TensorFlow running
                proc.kill()
                proc.wait()
        if answer is None:
            raise _crashed(model_path, quantize, code, log_path.read_text("utf-8", "replace"))
        if not answer["ok"]:
            raise TinygenError(answer["message"], hint=answer.get("hint"))
        return Converted(tflite=output.read_bytes(), loader=answer["loader"],
                         input_specs=[InputSpec(name, tuple(shape)) for name, shape in answer["inputs"]],
                         output_names=answer["outputs"], warnings=answer["warnings"])


def _crashed(model_path: Path, quantize: str, code: int, log: str) -> TinygenError:
    how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
        else f"exit code {code}"
    tail = "\n".join([line for line in log.splitlines() if line.strip()][-4:])
    return TinygenError(
        f"TensorFlow crashed ({how}) while loading or converting '{model_path}' with "
        f"--quantize {quantize}. This is a bug in TensorFlow's native converter, not in the model "
        "file; nothing was written." + (f"\nTensorFlow's last log lines:\n{tail}" if tail else ""),
        hint="TensorFlow 2.21 crashes calibrating Keras 3 recurrent layers (LSTM/GRU) for int8. "
        "Try --quantize none; or LSTM(..., unroll=True) / GRU(..., unroll=True); or build the model with tf_keras (its "
        "LSTM converts to the fused UNIDIRECTIONAL_SEQUENCE_LSTM op, much smaller) and pass the "
        ".h5; or convert to .tflite with another TensorFlow version and pass that file.")


# --- child side -----------------------------------------------------------------------

def _child_main(request: dict) -> None:
    # The protocol gets a private copy of stdout; fd 1 itself goes to stderr (the log) so
    # that anything TensorFlow prints cannot corrupt it.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")

    class ChildProgress(Progress):
        def __call__(self, message: str) -> None:
            send({"progress": message})

        def bar(self, label: str, done: int, total: int) -> None:
            send({"bar": [label, done, total]})

    from . import calibration, load
    from .convert import convert, input_specs, normalization_warnings, output_names

    try:
        loaded = load.load_model(request["model"])
        specs = input_specs(loaded)
        samples, warnings = None, []
        if request["calibration"] is not None:
            samples = calibration.load_samples(request["calibration"], specs)
            warnings = normalization_warnings(loaded, samples, specs)
        data = convert(loaded, request["quantize"], samples, ChildProgress(), request["per_channel_dense"])
        Path(request["output"]).write_bytes(data)
        send({"ok": True, "loader": loaded.loader, "inputs": [[s.name, list(s.shape)] for s in specs],
              "outputs": output_names(loaded), "warnings": warnings})
    except TinygenError as exc:
        send({"ok": False, "message": exc.message, "hint": exc.hint})
    except Exception as exc:  # a bug in tinygen: report it like the CLI does
        send({"ok": False, "message": f"Internal error while converting: {type(exc).__name__}: {exc}",
              "hint": "Please report it with the command you ran."})


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
