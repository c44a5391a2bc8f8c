"""The GitHub Action (action.yml) and the script it runs (action/inspect_boards.sh): its inputs
reach the script only through the environment, and the script, run for real with the installed
console script from a user's folder outside the checkout, gates on fit and writes the report,
the job summary, the step outputs and the annotations."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ACTION = REPO / "action.yml"
SCRIPT = REPO / "action" / "inspect_boards.sh"
MODEL = REPO / "tests" / "data" / "shapes_cnn_int8.tflite"

INPUT_ENV = {"model": "INPUT_MODEL", "boards": "INPUT_BOARDS", "boards-file": "INPUT_BOARDS_FILE",
             "quantize": "INPUT_QUANTIZE", "calibration-data": "INPUT_CALIBRATION_DATA",
             "extras": "INPUT_EXTRAS"}

TINY_BOARD = """\
targets:
  arduino:
    boards:
      tiny:
        based_on: nano33ble
        ram_bytes: 4096
        flash_bytes: 8192
"""


@pytest.fixture(scope="module")
def action() -> dict:
    return yaml.safe_load(ACTION.read_text())


def test_action_is_composite_with_its_inputs_and_outputs(action):
    assert action["name"] and action["description"]
    inputs = action["inputs"]
    assert set(inputs) == {*INPUT_ENV, "python-version"}
    assert inputs["model"]["required"] is True and inputs["boards"]["required"] is True
    for name in ("boards-file", "quantize", "calibration-data", "extras"):
        assert not inputs[name].get("required", False) and inputs[name]["default"] == ""
    assert inputs["python-version"]["default"] == "3.11"
    assert set(action["outputs"]) == {"failed", "report"}
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.inspect.outputs.{name} }}}}"
    runs = action["runs"]
    assert runs["using"] == "composite"
    setup = runs["steps"][0]
    assert setup["uses"] == "actions/setup-python@v5"
    assert setup["with"] == {"python-version": "${{ inputs.python-version }}"}


def test_inputs_reach_the_scripts_only_through_env(action):
    steps = action["runs"]["steps"]
    passed = {}
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"
            # No expression at all in the script text: an input's value never becomes code.
            assert "${{" not in step["run"], step["run"]
        for key, value in step.get("env", {}).items():
            match = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", value)
            if match:
                passed[match.group(1)] = key
    assert passed == INPUT_ENV
    (inspect,) = [s for s in steps if s.get("id") == "inspect"]
    assert inspect["run"] == 'bash "$GITHUB_ACTION_PATH/action/inspect_boards.sh"'
    script = SCRIPT.read_text()
    for name in set(INPUT_ENV.values()) - {"INPUT_EXTRAS"}:
        assert name in inspect["env"] and f"${{{name}:-}}" in script
    (install,) = [s for s in steps if "INPUT_EXTRAS" in s.get("env", {})]
    assert '"$GITHUB_ACTION_PATH[$INPUT_EXTRAS]"' in install["run"] and '"$GITHUB_ACTION_PATH"' in install["run"]


def test_install_step_refuses_odd_extras_before_pip(action, tmp_path):
    (install,) = [s for s in action["runs"]["steps"] if "INPUT_EXTRAS" in s.get("env", {})]
    env = {"PATH": os.environ["PATH"], "GITHUB_ACTION_PATH": str(tmp_path / "nowhere"),
           "INPUT_EXTRAS": "convert]; touch pwned #"}
    result = subprocess.run(["bash", "-c", install["run"]], check=False, cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "::error title=Wrong input to the tinygen action::extras" in result.stdout
    assert not (tmp_path / "pwned").exists()


# --- the script, run for real ------------------------------------------------------------

@pytest.fixture
def home(tmp_path) -> Path:
    """A user's repository (the workspace) holding models/ and boards/."""
    folder = tmp_path / "workspace"
    (folder / "models").mkdir(parents=True)
    shutil.copy(MODEL, folder / "models" / MODEL.name)
    (folder / "boards").mkdir()
    (folder / "boards" / "tiny.yaml").write_text(TINY_BOARD)
    return folder


def run_script(installed, home: Path, *, github: bool = True, **inputs) -> subprocess.CompletedProcess:
    """The script as the action's step runs it: inputs as INPUT_* variables, from `home`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("GITHUB_", "INPUT_", "TINYGEN"))}
    tinygen = installed["light"].tinygen
    env["PATH"] = f"{tinygen.parent}{os.pathsep}{env.get('PATH', '')}"
    env["TINYGEN"] = str(tinygen)
    if github:
        env["GITHUB_STEP_SUMMARY"] = str(home.parent / "summary.md")
        env["GITHUB_OUTPUT"] = str(home.parent / "output.txt")
    for name, value in inputs.items():
        key = "TINYGEN_REPORT" if name == "report" else INPUT_ENV[name.replace("_", "-")]
        env[key] = value
    return subprocess.run(["bash", str(SCRIPT)], check=False, cwd=home, env=env, capture_output=True, text=True,
                          timeout=300)


def outputs(home: Path) -> dict[str, str]:
    lines = (home.parent / "output.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_boards_that_fit(installed, home):
    result = run_script(installed, home, model=f"models/{MODEL.name}",
                        boards="esp-idf:esp32s3\n  arduino:nano33ble\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::error" not in result.stdout
    report = (home / "tinygen-report.md").read_text()
    summary = (home.parent / "summary.md").read_text()
    assert summary == report
    # The table first, then each board's heading and the report `tinygen inspect` printed.
    assert report.index("| `esp-idf:esp32s3` | fits | 0 |") < report.index("## `esp-idf:esp32s3`: fits")
    assert "| `arduino:nano33ble` | fits | 0 |" in report
    assert "2 of 2 fit." in report
    for board in ("esp-idf:esp32s3", "arduino:nano33ble"):
        section = report.split(f"## `{board}`: fits", 1)[1].split("\n## `", 1)[0]
        assert "\n## Arena\n" in section and "\n## Fit\n" in section
    assert "# shapes_cnn_int8.tflite on ESP32-S3" in report
    assert outputs(home) == {"failed": "", "report": str(home / "tinygen-report.md")}


def test_a_board_that_does_not_fit_fails_and_is_named(installed, home):
    result = run_script(installed, home, model=f"models/{MODEL.name}", boards="arduino:tiny esp-idf:esp32s3",
                        boards_file="boards/tiny.yaml", report="reports/fit.md")
    assert result.returncode == 1, result.stdout + result.stderr
    (annotation,) = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert annotation.startswith("::error title=tinygen%3A arduino%3Atiny does not fit::arduino:tiny: ")
    assert "the model does not fit" in annotation and "4,096 B" in annotation
    report = (home / "reports" / "fit.md").read_text()
    assert "| `arduino:tiny` | does not fit | 1 |" in report and "| `esp-idf:esp32s3` | fits | 0 |" in report
    assert "1 of 2 fit." in report
    tiny = report.split("## `arduino:tiny`: does not fit", 1)[1].split("\n## `esp-idf", 1)[0]
    assert "Error: the model does not fit" in tiny and "\n## Arena\n" in tiny
    fits = report.split("## `esp-idf:esp32s3`: fits", 1)[1]
    assert "\n## Arena\n" in fits and "# shapes_cnn_int8.tflite on ESP32-S3" in fits
    assert (home.parent / "summary.md").read_text() == report
    assert outputs(home) == {"failed": "arduino:tiny", "report": str(home / "reports" / "fit.md")}


@pytest.mark.parametrize("inputs, message", [
    ({"boards": "nano33ble"}, "board 'nano33ble' is not of the form target:board"),
    ({"boards": "esp-idf:esp32s3 arduino:"}, "board 'arduino:' is not of the form target:board"),
    ({"boards": " \n "}, "input 'boards' is empty"),
    ({"boards": "esp-idf:esp32s3", "model": "models/missing.tflite"}, "model 'models/missing.tflite' does not exist"),
    ({"boards": "esp-idf:esp32s3", "boards_file": "boards/none.yaml"}, "boards-file 'boards/none.yaml' does not exist"),
])
def test_wrong_input_exits_2_with_a_clear_message(installed, home, inputs, message):
    inputs = {"model": f"models/{MODEL.name}", **inputs}
    result = run_script(installed, home, **inputs)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("::error title=Wrong input to the tinygen action::")
    assert message in result.stdout
    assert "tinygen inspect" not in result.stdout  # refused before running anything
    assert not (home / "tinygen-report.md").exists() and not (home.parent / "output.txt").exists()


def test_runs_outside_github_without_summary_or_outputs(installed, home):
    result = run_script(installed, home, github=False, model=f"models/{MODEL.name}", boards="zephyr:qemu_x86")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| `zephyr:qemu_x86` | fits | 0 |" in (home / "tinygen-report.md").read_text()
    assert f"Report: {home / 'tinygen-report.md'}" in result.stdout
