"""`tinygen new --profile` and `tinygen profile LOG`: the firmware's per-operator times, read
back beside tinygen's per-layer estimate.

tests/data/shapes_cnn_profile_cortex_m4_qemu.log is the serial output of the firmware generated
from tests/data/shapes_cnn_int8.tflite (the bundled example, converted to int8) with
`--target arduino --board nano33ble --profile`, compiled against Chirale_TensorFLowLite 2.0.0
(the Arduino target's pinned TFLite-Micro) and run on an emulated Cortex-M4F by
../shared/tools/cortex-m-qemu-selftest.sh.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tinygen.output.profile import parse_log

DATA = Path(__file__).resolve().parent / "data"
MODEL = DATA / "shapes_cnn_int8.tflite"
BOARD_LOG = DATA / "shapes_cnn_profile_cortex_m4_qemu.log"


def log_operators(text: str) -> list[tuple[int, str, int]]:
    """The operator lines of a log, read with a regular expression of this test's own."""
    return [(int(i), op, int(us)) for i, op, us in re.findall(r"tinygen profile: (\d+) (\S+) (\d+) us", text)]


@pytest.fixture(scope="module")
def profiled_project(installed, tmp_path_factory) -> tuple[Path, str]:
    """A user's folder with the model, the saved serial log and a --profile project made by
    the installed tinygen (no TensorFlow needed for a .tflite)."""
    home = tmp_path_factory.mktemp("robot")
    shutil.copy(MODEL, home / MODEL.name)
    shutil.copy(BOARD_LOG, home / "serial.log")
    result = installed["light"].run("new", "--target", "arduino", "--board", "nano33ble", "--profile",
                                    MODEL.name, cwd=home)
    assert result.returncode == 0, result.stderr
    assert "tinygen profile LOG --project shapes_cnn_int8" in result.stdout
    return home, "shapes_cnn_int8"


def test_board_log_reads_back_beside_the_estimate(installed, profiled_project):
    home, project = profiled_project
    result = installed["light"].run("profile", "serial.log", "--project", project, "--json", cwd=home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    measured = log_operators(BOARD_LOG.read_text())
    assert len(measured) == 7
    assert [(r["index"], r["op"]) for r in report["layers"]] == [(i, op) for i, op, _ in measured]
    assert [r["measured_ms"] for r in report["layers"]] == [us / 1000 for _, _, us in measured]
    assert report["measured_total_ms"] == sum(us for _, _, us in measured) / 1000
    assert report["log_generation"] == "0x9d43ef6c"
    # The estimate is the project's own (nano33ble has a published calibration), per layer
    # adding up to the whole.
    estimates = [r["estimated_ms"] for r in report["layers"]]
    assert all(e is not None and e > 0 for e in estimates)
    assert report["estimated_low_ms"] < report["estimated_total_ms"] < report["estimated_high_ms"]
    assert sum(estimates) < report["estimated_total_ms"]  # the rest: the per-inference overhead
    assert "published figures" in report["estimate_basis"] and "cortex-m4f" in report["estimate_basis"]
    for row in report["layers"]:
        assert row["measured_over_estimate"] == pytest.approx(row["measured_ms"] / row["estimated_ms"])

    text = installed["light"].run("profile", "serial.log", "--project", project, cwd=home)
    assert text.returncode == 0, text.stderr
    assert "CONV_2D" in text.stdout and "3.054" in text.stdout  # operator 0: 3054 us on the board
    if report["project_generation"] != report["log_generation"]:
        assert "note: the log is of generation 0x9d43ef6c" in text.stdout


def test_profile_refuses_logs_it_cannot_use(installed, profiled_project, tmp_path):
    home, project = profiled_project
    (home / "boot-only.log").write_text("tinygen: model ready\ntinygen self-test: PASS (3 vectors)\n")
    result = installed["light"].run("profile", "boot-only.log", "--project", project, cwd=home)
    assert result.returncode == 1
    assert "No complete profile in 'boot-only.log'" in result.stderr and "--profile" in result.stderr

    other = BOARD_LOG.read_text().replace("3 CONV_2D", "3 FULLY_CONNECTED")
    (home / "other-model.log").write_text(other)
    result = installed["light"].run("profile", "other-model.log", "--project", project, cwd=home)
    assert result.returncode == 1
    assert "do not match the project's model" in result.stderr and "operator 3" in result.stderr

    result = installed["light"].run("profile", "serial.log", "--project", "nowhere", cwd=home)
    assert result.returncode == 1 and "is not a tinygen project" in result.stderr
    assert "Traceback" not in result.stderr


def test_parser_takes_the_last_complete_profile_whatever_surrounds_it():
    board = BOARD_LOG.read_text().splitlines()
    profile = [line for line in board if line.startswith("tinygen profile:")]
    cut = profile[:4]  # the board was reset in the middle of a profile
    faster = [re.sub(r"(\d+) us$", lambda m: f"{int(m.group(1)) // 2} us", line) if re.search(r": \d+ \S+ \d+ us$", line)
              else line for line in profile]
    text = "\r\n".join(["ets Jun  8 2016 00:22:57", *profile, "garbage", *cut,
                        *[f"I (1234) main: {line}" for line in faster]]) + "\r\n"
    runs = parse_log(text)
    assert len(runs) == 2
    assert runs[0].operators == log_operators("\n".join(profile))
    assert [us for _, _, us in runs[1].operators] == [us // 2 for _, _, us in runs[0].operators]
    # a profile whose operator lines are out of order is not trusted
    shuffled = [profile[0], profile[2], profile[1], *profile[3:]]
    assert parse_log("\n".join(shuffled)) == []


def test_without_profile_no_profiling_code_is_compiled(generate, tmp_path):
    from tinygen.output.project import write_project

    plain, prepared = generate("mlp", "arduino")
    for name in ("tinygen_model.cpp", "tinygen_model.h"):
        assert "rofile" not in (plain / name).read_text()
    profiled = write_project(prepared, "mlp_profiled", tmp_path, profile=True).rendered.path
    core = (profiled / "tinygen_model.cpp").read_text()
    assert '#include "tensorflow/lite/micro/micro_profiler_interface.h"' in core
    assert re.search(r"MicroInterpreter interpreter\(model, resolver, g_tensor_arena, kArenaBytes,\s*"
                     r"/\*resource_variables=\*/nullptr, &g_profiler\);", core)
    assert f"kProfiledOperators = {len(prepared.report.operators)};" in core
    assert "void model_print_profile();" in (profiled / "tinygen_model.h").read_text()
    manifest = json.loads((profiled / ".tinygen-manifest.json").read_text())
    assert [layer["op"] for layer in manifest["profile_reference"]["layers"]] == [
        op.op for op in prepared.report.operators]


# The pinned interface, as declared in every TFLite-Micro tinygen pins (identical text):
# Chirale_TensorFLowLite v2.0.0 src/tensorflow/lite/micro/micro_profiler_interface.h:24-34,
# esp-tflite-micro 1.4.0 (9fee33d) and Zephyr's tflite-micro fcc760a
# tensorflow/lite/micro/micro_profiler_interface.h:24-34. The interpreter passes it to every
# operator's invoke through ScopedMicroProfiler (Chirale micro_graph.cpp:166-168;
# esp-tflite-micro and Zephyr micro_interpreter_graph.cc:271-273).
PINNED_INTERFACE = """
namespace tflite {
class MicroProfilerInterface {
 public:
  virtual ~MicroProfilerInterface() {}
  virtual uint32_t BeginEvent(const char* tag) = 0;
  virtual void EndEvent(uint32_t event_handle) = 0;
};
}  // namespace tflite
"""


def test_profiler_core_times_main_graph_operators_on_the_host(generate, tmp_path):
    """The generated profiler class, compiled alone with g++ (warnings are errors) and driven
    as TFLite-Micro drives it: nested events (a WHILE's body) count in their operator."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not on PATH")
    from tinygen.output.project import write_project

    _, prepared = generate("mlp", "arduino")
    core = (write_project(prepared, "mlp_host", tmp_path, profile=True).rendered.path / "tinygen_model.cpp").read_text()
    generation = re.search(r"kGeneration == (0x[0-9a-f]+)u", core).group(1)
    profiler = re.search(r"^constexpr uint32_t kProfiledOperators.*?^OperatorProfiler g_profiler;\n", core,
                         re.S | re.M).group(0).replace(f"= {len(prepared.report.operators)};", "= 3;")
    program = tmp_path / "profiler.cpp"
    program.write_text("#include <stdarg.h>\n#include <stdint.h>\n#include <stdio.h>\n" + PINNED_INTERFACE + f"""
constexpr uint32_t kGeneration = {generation}u;
static uint32_t g_clock = 0;  // microseconds, advanced by the test
uint32_t timer_now() {{ return g_clock; }}
uint32_t timer_elapsed_us(uint32_t start) {{ return g_clock - start; }}
void Log(const char* format, ...) {{
  va_list args;
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
  printf("\\n");
}}
{profiler}
int main() {{
  g_profiler.Clear();
  uint32_t a = g_profiler.BeginEvent("CONV_2D"); g_clock += 1500; g_profiler.EndEvent(a);
  uint32_t b = g_profiler.BeginEvent("WHILE");  g_clock += 10;
  for (int i = 0; i < 4; ++i) {{
    uint32_t n = g_profiler.BeginEvent("ADD"); g_clock += 100; g_profiler.EndEvent(n);
  }}
  g_profiler.EndEvent(b);
  uint32_t c = g_profiler.BeginEvent("SOFTMAX"); g_clock += 7; g_profiler.EndEvent(c);
  g_profiler.Print(1530);
  g_profiler.Clear();  // the next inference starts afresh
  uint32_t d = g_profiler.BeginEvent("CONV_2D"); g_clock += 9; g_profiler.EndEvent(d);
  g_profiler.Print(10);
}}
""")
    binary = tmp_path / "profiler"
    build = subprocess.run(["g++", "-std=gnu++14", "-Wall", "-Wextra", "-Werror", "-O2", str(program), "-o", str(binary)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    output = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    first, second = parse_log(output)
    assert first.generation == generation
    assert first.operators == [(0, "CONV_2D", 1500), (1, "WHILE", 410), (2, "SOFTMAX", 7)]
    assert (first.total_us, first.invoke_us) == (1917, 1530)
    assert second.operators == [(0, "CONV_2D", 9)]


def test_calibrate_writes_a_board_that_estimates_the_profiled_model(installed, profiled_project):
    """`--calibrate FILE` fits the board's constants from the QEMU log: the written board's
    next estimate for the same model is the profiled Invoke() time, and its band is the fit's."""
    import yaml

    home, project = profiled_project
    (home / "boards.yaml").unlink(missing_ok=True)
    result = installed["light"].run("profile", "serial.log", "--project", project, "--calibrate", "boards.yaml",
                                    "--json", cwd=home)
    assert result.returncode == 0, result.stderr
    calibration = json.loads(result.stdout)["calibration"]
    assert calibration["board"] == "nano33ble-measured" and calibration["created"]
    written = yaml.safe_load((home / "boards.yaml").read_text())["targets"]["arduino"]["boards"]["nano33ble-measured"]
    assert written["based_on"] == "nano33ble"
    assert "shapes_cnn_int8 (serial.log)" in written["latency_profile"]["source"]
    invoke_ms = int(re.search(r"Invoke\(\) (\d+) us", BOARD_LOG.read_text()).group(1)) / 1000
    inspected = installed["light"].run("inspect", "--json", "--boards", "boards.yaml", "--target", "arduino",
                                       "--board", "nano33ble-measured", MODEL.name, cwd=home)
    assert inspected.returncode == 0, inspected.stderr
    estimate = json.loads(inspected.stdout)["latency_estimate"]
    assert estimate["milliseconds"] == pytest.approx(invoke_ms, rel=0.05)
    assert estimate["calibration"] == "profile of nano33ble-measured"
    assert estimate["low_ms"] < estimate["milliseconds"] < estimate["high_ms"]
    # a second calibration updates the same board, leaving the file's other boards alone
    (home / "boards.yaml").write_text((home / "boards.yaml").read_text() + "  zephyr:\n    boards:\n      keep_me:\n"
                                      "        based_on: nrf52840dk\n")
    again = installed["light"].run("profile", "serial.log", "--project", project, "--calibrate", "boards.yaml", cwd=home)
    assert again.returncode == 0, again.stderr
    assert "Updated board 'nano33ble-measured'" in again.stdout
    data = yaml.safe_load((home / "boards.yaml").read_text())["targets"]
    assert data["zephyr"]["boards"]["keep_me"] == {"based_on": "nrf52840dk"}


def test_calibrate_recovers_a_synthetic_board(installed, profiled_project):
    """A log made from known per-kind costs (a board 3x slower per MAC than the estimate, with
    a heavy per-operator cost): the calibrated board reproduces each operator within 15% and
    the total within 5%."""
    import yaml

    home, project = profiled_project
    manifest = json.loads((home / project / ".tinygen-manifest.json").read_text())
    layers = manifest["profile_reference"]["layers"]
    mhz = 64
    truth = {"conv_macs": 30.0, "depthwise_macs": 45.0, "fc_macs": 20.0, "element_ops": 12.0, "layers": 4000.0}
    op_us = [round(sum(truth[k] * layer["work"][k] for k in truth) / mhz) for layer in layers]
    generation = int(manifest["profile_reference"]["generation"], 16)
    lines = [f"tinygen profile: generation 0x{generation:08x}, {len(layers)} operators"]
    lines += [f"tinygen profile: {i} {layer['op']} {us} us" for i, (layer, us) in enumerate(zip(layers, op_us))]
    lines.append(f"tinygen profile: total {sum(op_us)} us (Invoke() {sum(op_us) + 40} us)")
    (home / "synthetic.log").write_text("\n".join(lines) + "\n")
    result = installed["light"].run("profile", "synthetic.log", "--project", project, "--calibrate", "synth.yaml",
                                    cwd=home)
    assert result.returncode == 0, result.stderr
    profile = yaml.safe_load((home / "synth.yaml").read_text())["targets"]["arduino"]["boards"][
        "nano33ble-measured"]["latency_profile"]
    names = {"conv_macs": "conv_mac", "depthwise_macs": "depthwise_mac", "fc_macs": "fc_mac",
             "element_ops": "element_op", "layers": "layer"}
    for layer, us in zip(layers, op_us):
        predicted = sum(profile[f"cycles_per_{names[k]}"] * layer["work"][k] for k in truth) / mhz
        assert predicted == pytest.approx(us, rel=0.15), layer["op"]
    assert profile["cycles_per_invoke"] == pytest.approx(40 * mhz, rel=0.01)
    inspected = installed["light"].run("inspect", "--json", "--boards", "synth.yaml", "--target", "arduino",
                                       "--board", "nano33ble-measured", MODEL.name, cwd=home)
    estimate = json.loads(inspected.stdout)["latency_estimate"]
    assert estimate["milliseconds"] == pytest.approx((sum(op_us) + 40) / 1000, rel=0.05)
