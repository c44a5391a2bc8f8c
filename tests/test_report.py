"""Know before you flash: the report `inspect` prints and `new` writes (MODEL_REPORT.md), the
latency estimate with its band and the published figures it is fitted to, and boards users bring
(--boards FILE)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from tinygen.boards import catalog as boards

from tinygen.boards import latency

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
    # the estimate with its band, what it rests on, and how far off it was on unseen figures
    assert re.search(r"\*\*~[\d.]+ ms \([\d.]+-[\d.]+ ms\)\*\* per inference: an estimate, esp-nn generic "
                     r"optimized C on a xtensa-lx6 at 240 MHz, fitted to \d+ published figures", report)
    assert "each estimated without its own source, the median error was" in report
    manifest = json.loads((home / "shapes_cnn_int8" / ".tinygen-manifest.json").read_text())
    assert "MODEL_REPORT.md" in manifest["files"]  # tinygen's file: rewritten on regeneration


def test_inspect_json_latency_has_a_band_adds_up_and_follows_core_kernels_and_clock(installed, home):
    result = installed["light"].run("inspect", "--json", "--target", "arduino", MODEL.name, cwd=home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    estimate = data["latency_estimate"]
    assert estimate["is_estimate"] and estimate["calibration"] == "cortex-m4f / cmsis-nn-dsp"
    assert "64 MHz" in estimate["basis"] and "published figures" in estimate["basis"]
    assert estimate["low_ms"] < estimate["milliseconds"] < estimate["high_ms"] <= 3.0 * estimate["low_ms"]
    assert "each estimated without its own source" in estimate["band_basis"]
    layer_ms = [row["estimated_ms"] for row in data["layers"]]
    assert sum(layer_ms) + estimate["invoke_ms"] == pytest.approx(estimate["milliseconds"], abs=1e-3)
    assert data["totals"]["macs"] == sum(row["macs"] for row in data["layers"])
    rows = {(r["target"], r["board"]): r["latency_estimate"] for r in data["boards"]}
    # core, kernel class and clock decide it all: nrf52840dk (Zephyr's CMSIS-NN v7) is the same
    # Cortex-M4F at 64 MHz with the same class of kernels as the Nano 33 BLE
    assert rows["zephyr", "nrf52840dk"]["milliseconds"] == pytest.approx(estimate["milliseconds"], rel=1e-3)
    # the same core and kernels at another clock scale by the clock
    assert rows["arduino", "nicla_vision"]["milliseconds"] == pytest.approx(
        rows["arduino", "portenta_h7"]["milliseconds"], rel=1e-3)
    assert rows["zephyr", "qemu_x86"] is None  # an emulator: no estimate


def test_every_published_figure_is_cited_and_its_model_counted():
    """Each figure names its source and a model whose work latency.yaml records; the fit lands
    within 3x of every figure it was fitted on (a mistyped latency, clock or model shows; the
    widest real gap is a fast board: FRDM-MCXN947 person_detect at 1.6 cycles per MAC, 2.6x)."""
    data = latency.calibration_data()
    figures = latency.usable_figures()
    assert len(figures) >= 40 and len({f["group"] for f in figures}) >= 8
    for core in ("cortex-m0plus", "cortex-m4f", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m85", "xtensa-lx6",
                 "xtensa-lx7", "riscv-esp32c3", "riscv-esp32c6", "riscv-esp32p4"):
        assert core in data["cores"], core
    fitted = latency.fitted()
    for figure in figures:
        assert re.search(r"@[0-9a-f]{7,}:|https://", figure["source"]), figure["source"]
        assert figure["class"] in data["classes"] and figure["core"] in data["cores"]
        cycles = fitted.cycles(figure["core"], figure["class"], latency.reference_work(figure["model"]))
        assert 1 / 3 < latency.figure_cycles(figure) / cycles < 3, figure


def test_left_out_sources_track_record():
    """Leaving each source out in turn, the estimate's error on its figures stays what README
    claims (the `make bench` table lists every figure)."""
    rows = latency.left_out_table()
    errors = sorted(abs(r["published_ms"] / r["estimate_ms"] - 1) for r in rows)
    assert errors[len(errors) // 2] <= 0.3
    assert sum(r["inside"] for r in rows) >= 0.8 * len(rows)
    for direct in (True, False):
        low, high, _ = latency.band(direct)
        assert low <= 1 <= high and high / low <= 3.0 + 1e-9


def test_every_real_board_has_a_core_a_clock_and_an_estimate_with_a_band():
    from tinygen.model.layers import Work

    work = latency.reference_work("kws")
    for target in boards.target_names():
        for board_id in boards.board_ids(target):
            board = boards.get_board(target, board_id)
            assert board["core"] in latency.core_ids(), (target, board_id)
            found = latency.estimate(board, work)
            if board.get("emulated"):
                assert found is None, board_id
                continue
            assert found.low_ms < found.milliseconds < found.high_ms <= 3.0 * found.low_ms * (1 + 1e-9), board_id
            assert latency.estimate(board, Work(layers=0)).milliseconds > 0  # the per-inference overhead


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
        core: cortex-m4f
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


@pytest.mark.parametrize("yaml_text, target, board, calibration, inferred", [
    # an ESP32-P4 at 360 MHz with esp-nn's P4 kernels: published figures of its own
    ("esp-idf:\n    boards:\n      p4_board:\n        based_on: esp32c3\n        core: riscv-esp32p4\n"
     "        cpu_mhz: 360\n        kernels: esp-nn-esp32p4\n", "esp-idf", "p4_board", "riscv-esp32p4 / esp-nn-esp32p4",
     False),
    # a Cortex-M55 at 250 MHz with CMSIS-NN's DSP path: none, inferred from the cores it is like
    ("zephyr:\n    boards:\n      m55_board:\n        based_on: nrf5340dk\n        core: cortex-m55\n"
     "        cpu_mhz: 250\n        kernels: cmsis-nn-v7-dsp\n", "zephyr", "m55_board", "cortex-m55 / cmsis-nn-dsp",
     True),
])
def test_a_board_described_by_core_clock_and_kernels_gets_an_estimate_and_a_band(
        installed, home, yaml_text, target, board, calibration, inferred):
    (home / "mine.yaml").write_text("targets:\n  " + yaml_text)
    result = installed["light"].run("inspect", "--json", "--boards", "mine.yaml", "--target", target,
                                    "--board", board, MODEL.name, cwd=home)
    assert result.returncode == 0, result.stderr
    estimate = json.loads(result.stdout)["latency_estimate"]
    assert estimate["calibration"] == calibration
    assert estimate["low_ms"] < estimate["milliseconds"] < estimate["high_ms"] <= 3.0 * estimate["low_ms"] * 1.0001
    assert ("inferred from similar cores" in estimate["basis"]) == inferred
    assert ("no other source had figures for" in estimate["band_basis"]) == inferred
    text = installed["light"].run("inspect", "--boards", "mine.yaml", "--target", target, "--board", board,
                                  MODEL.name, cwd=home)
    assert re.search(r"Latency     ~[\d.]+ ms \([\d.]+-[\d.]+ ms\) per inference: an estimate", text.stdout)


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
    ("targets:\n  arduino:\n    boards:\n      b5:\n        based_on: nano33ble\n        core: z80\n",
     "core 'z80' is not one tinygen knows"),
    ("targets:\n  arduino:\n    boards:\n      b6:\n        based_on: nano33ble\n        latency_profile: fast\n",
     "latency_profile must hold the cycles_per_* numbers"),
    ("targets: [\n", "is not valid YAML at line 2"),
])
def test_a_wrong_boards_file_is_a_clear_error(installed, home, text, message):
    (home / "boards.yaml").write_text(text)
    result = installed["light"].run("boards", "--boards", "boards.yaml", cwd=home)
    assert result.returncode == 1
    assert message in result.stderr and "boards.yaml" in result.stderr
    assert "Traceback" not in result.stderr
