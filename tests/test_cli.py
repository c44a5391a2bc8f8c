"""End-to-end: the CLI as a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator import __version__
from generator.cli import cli


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator.cli", *args], capture_output=True, text=True)


def test_version_and_help():
    runner = CliRunner()
    assert __version__ in runner.invoke(cli, ["--version"]).output
    for command in ([], ["new"], ["inspect"], ["boards"]):
        result = runner.invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_inspect_json_contract(models):
    path = models["cnn"].tflite["int8"]
    result = run("inspect", str(path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("ops", "resolver_size", "arena_bytes", "arena_min_bytes", "model_bytes", "inputs", "outputs"):
        assert key in data
    assert data["ops"] == sorted(["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"])
    assert data["resolver_size"] == len(data["ops"])
    assert data["model_bytes"] == path.stat().st_size
    assert data["arena_bytes"] >= data["arena_min_bytes"] > 0
    (inp,) = data["inputs"]
    assert inp["shape"] == [1, 16, 16, 1] and inp["dtype"] == "int8"
    assert isinstance(inp["scale"], float) and isinstance(inp["zero_point"], int)


def test_inspect_table(models):
    result = run("inspect", str(models["mlp"].tflite["int8"]), "--target", "zephyr", "--board", "nrf52840dk")
    assert result.returncode == 0, result.stderr
    assert "AddFullyConnected()" in result.stdout
    assert re.search(r"Arena\s+[\d,]+ bytes for zephyr/nrf52840dk", result.stdout)


@pytest.mark.parametrize("target", ["esp-idf", "arduino", "zephyr"])
def test_new_from_tflite_embeds_the_input_bytes(models, tmp_path, target):
    path = models["mlp"].tflite["int8"]
    result = run("new", "--target", target, "--output", str(tmp_path), "--name", "robot arm",
                 "--calibration-data", str(models["mlp"].calibration), str(path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    project = tmp_path / "robot_arm"
    (data_file,) = list(project.rglob("model_data.cpp"))
    from generator.model_source import parse_byte_array

    assert parse_byte_array(data_file.read_text(), "g_model_data") == path.read_bytes()
    assert "arena" in result.stdout and "Created" in result.stdout


def test_new_from_keras_end_to_end(example_model, tmp_path):
    result = run("new", "--target", "esp-idf", "--output", str(tmp_path),
                 "--calibration-data", str(example_model.calibration), str(example_model.source))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "shapes_cnn" / "main" / "model_data.cpp").is_file()
    assert "Converting with the TFLite converter" in result.stderr  # progress is shown


def test_existing_project_needs_force_and_keeps_user_files(models, tmp_path):
    args = ["new", "--target", "esp-idf", "--output", str(tmp_path), str(models["mlp"].tflite["int8"])]
    assert run(*args).returncode == 0
    project = tmp_path / "mlp_int8"
    (project / "notes.txt").write_text("mine")
    (project / "main" / "main.cpp").write_text("// my application")  # README: "put it here"
    (project / "main" / "model_data.cpp").write_text("// stale")
    (project / "main" / "model_data.cpp").unlink()  # a generated file the user deleted
    refused = run(*args)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert (project / "main" / "main.cpp").read_text() == "// my application"

    forced = run(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (project / "notes.txt").read_text() == "mine"
    assert (project / "main" / "main.cpp").read_text() == "// my application"  # edited: kept
    assert "app_main" in (project / "main" / "main.cpp.tinygen-new").read_text()
    assert "kept       main/main.cpp" in forced.stdout
    assert "g_model_data[]" in (project / "main" / "model_data.cpp").read_text()  # regenerated

    again = run(*args, "--force")  # the edit stays the user's on every regeneration
    assert again.returncode == 0, again.stderr
    assert (project / "main" / "main.cpp").read_text() == "// my application"
    assert "kept       main/main.cpp" in again.stdout


@pytest.mark.parametrize("args, message", [
    (["new", "--target", "esp-idf", "missing.keras"], "does not exist"),
    (["new", "--target", "esp-idf", "--board", "esp32s9", "{model}"], "Did you mean 'esp32s3'"),
    (["new", "--target", "esp-idf", "--quantize", "int8", "{model}"], "already a converted .tflite"),
])
def test_errors_are_one_message_without_traceback(models, tmp_path, args, message):
    args = [a.format(model=models["mlp"].tflite["int8"]) for a in args]
    result = run(*args, "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_model_too_big_for_board_is_refused(models, tmp_path, monkeypatch):
    from generator import boards
    from generator.errors import TinygenError
    from generator.fit import fit, require_fit

    board = boards.get_board("zephyr", "qemu_cortex_m3")
    with pytest.raises(TinygenError, match="does not fit"):
        require_fit(fit(board, model_bytes=300_000, arena_bytes=1000))
    with pytest.raises(TinygenError, match="not enough RAM"):
        require_fit(fit(board, model_bytes=1000, arena_bytes=70_000))


def test_inspect_fit_table_covers_every_board(tmp_path):
    """Every catalog board gets a row with its own arena; a board whose pinned TFLite-Micro
    lacks an operator says so instead of a fit."""
    import keras

    from generator import boards

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.ops.min(keras.layers.Dense(4)(inputs), axis=-1, keepdims=True))
    model.save(tmp_path / "min.keras")
    result = run("inspect", "--json", "--quantize", "none", str(tmp_path / "min.keras"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "MIN" in " ".join(data["ops"])  # REDUCE_MIN
    rows = {(row["target"], row["board"]): row for row in data["boards"]}
    assert set(rows) == {(t, b) for t in boards.target_names() for b in boards.board_ids(t)}
    assert rows["esp-idf", "esp32s3"]["arena_bytes"] == data["arena_bytes"]  # inspect's default board
    assert rows["zephyr", "nrf52840dk"]["arena_bytes"] == data["arena_min_bytes"]  # CMSIS-NN: host minimum
    assert rows["zephyr", "nrf52840dk"]["ok"]
    chirale = rows["arduino", "nano33ble"]  # TFLite-Micro of 2023-01: no REDUCE_MIN yet
    assert not chirale["ok"] and "REDUCE_MIN" in chirale["unsupported"]

    table = run("inspect", "--quantize", "none", str(tmp_path / "min.keras")).stdout
    assert "Every board" in table and "estimates" in table
    assert re.search(r"arduino\s+nano33ble .* no: .*REDUCE_MIN", table)
