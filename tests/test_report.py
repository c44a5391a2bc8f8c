"""Know before you flash: the report `inspect` prints and `new` writes (MODEL_REPORT.md), the
latency estimate and its published calibration, and boards users bring (--boards FILE)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tinygen.boards import catalog as boards
from tinygen.boards.latency import calibration_data, fit, point_cycles, reference_work

DATA = Path(__file__).resolve().parent / "data"
MODEL = DATA / "shapes_cnn_int8.tflite"


@pytest.fixture()
def home(tmp_path) -> Path:
    """A user's folder with the model in it."""
    folder = tmp_path / "robot"
    folder.mkdir()
    shutil.copy(MODEL, folder / MODEL.name)
    return folder


def test_generated_report_is_inspects_markdown(installed, home):
    made = installed["light"].run("new", "--target", "esp-idf", "--board", "esp32", MODEL.name, cwd=home)
    assert made.returncode == 0, made.stderr
    printed = installed["light"].run("inspect", "--target", "esp-idf", "--board", "esp32", "--format", "markdown",
                                     MODEL.name, cwd=home)
    assert printed.returncode == 0, printed.stderr
    report = (home / "shapes_cnn_int8" / "MODEL_REPORT.md").read_text()
    assert printed.stdout == report + "\n"  # click.echo's newline after the document
    for heading in ("## Model", "## Layers on esp-idf/esp32", "## Arena", "## Latency", "## Fit", "## Every board"):
        assert heading in report
    assert "an estimate, calibrated on ESP32 at 240 MHz" in report
    manifest = json.loads((home / "shapes_cnn_int8" / ".tinygen-manifest.json").read_text())
    assert "MODEL_REPORT.md" in manifest["files"]  # tinygen's file: rewritten on regeneration


def test_inspect_json_latency_adds_up_and_names_its_source(installed, home):
    result = installed["light"].run("inspect", "--json", "--target", "arduino", MODEL.name, cwd=home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    latency = data["latency_estimate"]
    assert latency["is_estimate"] and latency["calibration"] == "cmsis-nn-dsp"
    assert "MLPerf Tiny" in latency["basis"] and "64 MHz" in latency["basis"]
    layer_ms = [row["estimated_ms"] for row in data["layers"]]
    assert sum(layer_ms) == pytest.approx(latency["milliseconds"], rel=2e-3)
    assert data["totals"]["macs"] == sum(row["macs"] for row in data["layers"])
    # the same model and clock on another board with the same calibration: scaled by clock
    rows = {(r["target"], r["board"]): r for r in data["boards"]}
    portenta = rows["arduino", "portenta_h7"]["latency_estimate"]["milliseconds"]
    assert portenta == pytest.approx(latency["milliseconds"] * 64 / 480, rel=1e-3)
    assert rows["zephyr", "qemu_x86"]["latency_estimate"] is None  # an emulator: no estimate


@pytest.mark.parametrize("key", sorted(calibration_data()["calibrations"]))
def test_calibration_reproduces_its_published_figures(key):
    """Each calibration, fitted on its points, lands near every figure it was fitted on: a
    mistyped latency, clock or model count shows up here (leave-one-out errors: `make bench`)."""
    points = calibration_data()["calibrations"][key]["points"]
    model = fit(points)
    assert model.cycles_per_mac > 0 and model.cycles_per_output >= 0
    for point in points:
        assert model.cycles(reference_work(point["model"])) == pytest.approx(point_cycles(point), rel=0.35), point
        assert point["source"].count(":") >= 1  # repository@commit:path of the published figure


def test_every_real_board_has_a_latency_calibration_or_says_why_not():
    for target in boards.target_names():
        for board_id in boards.board_ids(target):
            board = boards.get_board(target, board_id)
            if board.get("emulated"):
                assert not board.get("latency_calibration"), board_id
                continue
            assert board.get("cpu_mhz") and board.get("latency_calibration"), (target, board_id)
            assert board["latency_calibration"] in calibration_data()["calibrations"]


USER_BOARDS = """\
targets:
  arduino:
    boards:
      robot_nano:
        based_on: nano33ble
        name: Our robot's Nano 33 BLE (a 64 KB bootloader of our own)
        flash_bytes: 917504
  zephyr:
    boards:
      blackpill:
        name: WeAct BlackPill STM32F411CE
        zephyr_board: blackpill_f411ce
        cpu_mhz: 100
        latency_calibration: cmsis-nn-dsp
        flash_bytes: 524288
        ram_bytes: 131072
        kernels: cmsis-nn-v7-dsp
        fpu: true
        modules: [cmsis, cmsis_6, cmsis-nn, cmsis-dsp, hal_stm32]
"""


def test_users_own_boards_in_boards_inspect_and_new(installed, home):
    (home / "boards.yaml").write_text(USER_BOARDS)
    listed = installed["light"].run("boards", "--boards", "boards.yaml", cwd=home)
    assert listed.returncode == 0, listed.stderr
    line = next(l for l in listed.stdout.splitlines() if "robot_nano" in l)
    assert "917,504" in line and "(from boards.yaml)" in line and "64 MHz" in line

    inspected = installed["light"].run("inspect", "--json", "--boards", "boards.yaml", "--target", "zephyr",
                                       "--board", "blackpill", MODEL.name, cwd=home)
    assert inspected.returncode == 0, inspected.stderr
    data = json.loads(inspected.stdout)
    assert data["board"] == "blackpill" and data["fit"]["flash_available_bytes"] == 524288
    assert data["latency_estimate"]["cpu_mhz"] == 100
    assert ("arduino", "robot_nano") in {(r["target"], r["board"]) for r in data["boards"]}

    made = installed["light"].run("new", "--boards", "boards.yaml", "--target", "zephyr", "--board", "blackpill",
                                  MODEL.name, cwd=home)
    assert made.returncode == 0, made.stderr
    assert "west build -b blackpill_f411ce" in (home / "shapes_cnn_int8" / "README.md").read_text()
    assert "WeAct BlackPill" in (home / "shapes_cnn_int8" / "MODEL_REPORT.md").read_text()


@pytest.mark.parametrize("text, message", [
    ("targets:\n  arduino:\n    boards:\n      b1:\n        based_on: nano33ble\n        flash_byte: 1\n",
     "board 'b1' (arduino): unknown field(s) flash_byte"),
    ("targets:\n  zephyr:\n    boards:\n      b2:\n        name: x\n        flash_bytes: 1024\n",
     "missing field(s) modules, ram_bytes, zephyr_board"),
    ("targets:\n  arduino:\n    boards:\n      b3:\n        based_on: nano33ble\n        ram_bytes: -1\n",
     "ram_bytes must be a positive whole number of bytes"),
    ("targets:\n  arduino:\n    boards:\n      b4:\n        based_on: nano33ble\n        kernels: fast\n",
     "kernels 'fast' is not one tinygen knows"),
    ("targets:\n  arduino:\n    boards:\n      nano33ble:\n        name: mine\n", "already in the catalog"),
    ("targets:\n  stm32cube:\n    boards: {}\n", "unknown target 'stm32cube'"),
    ("targets: [\n", "is not valid YAML at line 2"),
])
def test_a_wrong_boards_file_is_a_clear_error(installed, home, text, message):
    (home / "boards.yaml").write_text(text)
    result = installed["light"].run("boards", "--boards", "boards.yaml", cwd=home)
    assert result.returncode == 1
    assert message in result.stderr and "boards.yaml" in result.stderr
    assert "Traceback" not in result.stderr
