"""Generated firmware on the emulated boards, run by hand (needs QEMU; see ../shared/tools):

    python bench/board_runs.py selftest TARGET BOARD MODEL.tflite...
    python bench/board_runs.py faults TARGET BOARD MODEL.tflite...      (TOOLS=DIR: the recipes)

TARGET arduino runs ../shared/tools/cortex-m-qemu-selftest.sh (Chirale_TensorFLowLite 2.0.0 on
an emulated Cortex-M4F), esp-idf runs esp-tflite-micro-qemu-selftest.sh (esp-tflite-micro 1.4.0 +
esp-nn 1.2.3: the ESP32-S3 path for S3 boards, the generic one for the others). Both print YAML
entries for bench/numerics_evidence.yaml (`make bench` reads it):

- `selftest`: each model's generated project as it is: PASS/FAIL/REFUSED and the tolerance its
  self-test used (0: bit-exact);
- `faults`: the project must PASS, then the same firmware with one fault each must not:
    corrupted weights    every 7th byte of the largest int8 weight buffer in model_data.cpp
                         has a bit flipped
    wrong input scale    the model input's quantization scale in model_data.cpp is 1.25x
    arena over the model the tensor arena placed over the second half of the model's own bytes
  Each faulty firmware is made by placing an edited copy of the generated project in the
  harness's cache under a model file that differs only by trailing bytes, so the harness
  builds it as it is instead of generating it again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

# The recipes in ../shared/tools (TOOLS=DIR elsewhere).
TOOLS = Path(os.environ.get("TOOLS", Path(__file__).resolve().parents[2] / "shared" / "tools"))
HARNESSES = {"arduino": TOOLS / "cortex-m-qemu-selftest.sh", "esp-idf": TOOLS / "esp-tflite-micro-qemu-selftest.sh"}
from tinygen.output.model_source import byte_array_body, parse_byte_array


def run_harness(target: str, model: Path, board: str, fresh: bool = True) -> tuple[str, str, Path]:
    """(PASS | FAIL | REFUSED, what the firmware printed, the harness's work folder). `fresh`:
    generate the project again (the harness caches it by model and tinygen version)."""
    env = os.environ | {"NO_BISECT": "1", "FRESH": "1" if fresh else "0"}
    done = subprocess.run(["bash", str(HARNESSES[target]), str(model), board], capture_output=True, text=True, env=env)
    out = done.stdout + done.stderr
    if "REFUSED:" in out:
        said = re.search(r"^Error: (.*)$", out[out.index("REFUSED:"):], re.M)
        return "REFUSED", (said.group(1) if said else "tinygen refused").replace('"', "'"), Path()
    log = re.search(r"^log:\s+(\S+)", out, re.M)
    run_log = Path(log.group(1)).read_text(errors="replace") if log and Path(log.group(1)).is_file() else ""
    said = re.findall(r"tinygen self-test: (?:PASS|FAIL).*|tinygen: \S.*failed.*|cortexm-qemu: FAULT.*|"
                      r"espidf-qemu: FAULT.*|AllocateTensors\(\) failed.*|the sketch did not finish.*", run_log + out)
    verdict = "PASS" if re.search(r"^self-test:\s+PASS", out, re.M) else "FAIL"
    return verdict, (said[0] if said else out.strip().splitlines()[-1]).replace('"', "'"), \
        Path(log.group(1)).parents[1] if log else Path()


def tolerance(work: Path) -> list[int]:
    core = next((work / "gen").rglob("tinygen_model.cpp")).read_text()
    return [int(v) for v in re.search(r"kOutputToleranceSteps\[\] = \{(.*?)\}", core).group(1).split(",")]


def corrupt_weights(data: bytearray) -> None:
    model = schema.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    largest = max((graph.Tensors(t) for t in range(graph.TensorsLength())),
                  key=lambda t: model.Buffers(t.Buffer()).DataLength() if t.Type() == schema.TensorType.INT8 else 0)
    view = model.Buffers(largest.Buffer()).DataAsNumpy()  # a view into `data`
    view[::7] ^= 0x40


def wrong_input_scale(data: bytearray) -> None:
    model = schema.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    scale = graph.Tensors(int(graph.Inputs(0))).Quantization().ScaleAsNumpy()  # a view into `data`
    scale[0] *= 1.25


def edit_model(project: Path, edit) -> None:
    source = project / "model_data.cpp"
    text = source.read_text()
    data = bytearray(parse_byte_array(text, "g_model_data"))
    edit(data)
    start = text.index("{", text.index("g_model_data[")) + 1
    end = text.index("}", start)
    source.write_text(text[:start] + "\n" + byte_array_body(bytes(data)) + "\n" + text[end:])


def arena_over_model(project: Path) -> None:
    source = project / "tinygen_model.cpp"
    text = source.read_text()
    placed = re.sub(r"alignas\(16\) uint8_t g_tensor_arena\[kArenaBytes\];",
                    "uint8_t* const g_tensor_arena = const_cast<uint8_t*>(g_model_data) + g_model_data_len / 2 / 16 * 16;",
                    text)
    assert placed != text, "no static arena to move"
    source.write_text(placed)


FAULTS = {
    "corrupted weights": lambda project: edit_model(project, corrupt_weights),
    "wrong input scale": lambda project: edit_model(project, wrong_input_scale),
    "arena over the model": arena_over_model,
}


def entry(model: Path, target: str, board: str, **fields) -> str:
    head = {"model": model.stem, "sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "target": target,
            "board": board}
    return "- " + "\n  ".join(f"{k}: {v}" for k, v in (head | fields).items())


def selftest(target: str, board: str, model: Path) -> None:
    verdict, said, work = run_harness(target, model, board)
    steps = tolerance(work) if verdict != "REFUSED" else []
    print(entry(model, target, board, result=verdict, tolerance_steps=steps, printed=f'"{said}"'), flush=True)


def faults(target: str, board: str, model: Path) -> None:
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    verdict, said, work = run_harness(target, model, board)
    print(entry(model, target, board, fault="none", result=verdict, printed=f'"{said}"'), flush=True)
    if verdict != "PASS":
        return
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, inject) in enumerate(FAULTS.items(), start=1):
            faulty_model = Path(folder) / f"{model.stem}.tflite"
            faulty_model.write_bytes(model.read_bytes() + b"\0" * (16 * index))  # another file, same model
            faulty_sha = hashlib.sha256(faulty_model.read_bytes()).hexdigest()
            faulty_work = Path(str(work).replace(sha[:16], faulty_sha[:16]))
            shutil.rmtree(faulty_work, ignore_errors=True)
            shutil.copytree(work / "gen", faulty_work / "gen")
            (faulty_work / "gen.complete").touch()
            if (work / "inspect.json").is_file():
                shutil.copy(work / "inspect.json", faulty_work / "inspect.json")
            inject(next((faulty_work / "gen").rglob("tinygen_model.cpp")).parent)
            result, said, _ = run_harness(target, faulty_model, board, fresh=False)
            print(entry(model, target, board, fault=name, result=result, printed=f'"{said}"'), flush=True)
            shutil.rmtree(faulty_work, ignore_errors=True)


def main() -> None:
    mode, target, board, *paths = sys.argv[1:]
    if not HARNESSES[target].is_file():
        sys.exit(f"no {HARNESSES[target]} (set TOOLS=DIR)")
    for path in paths:
        (selftest if mode == "selftest" else faults)(target, board, Path(path).resolve())


if __name__ == "__main__":
    main()
