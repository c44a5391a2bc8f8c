"""End-to-end: the CLI as a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from tinygen import __version__
from tinygen.cli import cli


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinygen.cli", *args], capture_output=True, text=True)


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
    from tinygen.boards.catalog import get_board
    from tinygen.library.numerics import adapt
    from tinygen.model.analyze import analyze
    from tinygen.output.model_source import parse_byte_array

    # Byte for byte, unless the board's library needs the model rewritten (Chirale 2.0.0 reads
    # one weight scale per Dense layer): then exactly that rewrite.
    given = path.read_bytes()
    expected = adapt(given, analyze(given), get_board(target, None)).tflite
    assert (expected == given) == (target != "arduino")
    assert parse_byte_array(data_file.read_text(), "g_model_data") == expected
    assert "arena" in result.stdout and "Created" in result.stdout


def test_existing_project_needs_force_and_keeps_user_files(models, tmp_path):
    args = ["new", "--target", "esp-idf", "--output", str(tmp_path), str(models["mlp"].tflite["int8"])]
    assert run(*args).returncode == 0
    project = tmp_path / "mlp_int8"
    (project / "notes.txt").write_text("mine")
    (project / "main" / "main.cpp").write_text("// my application")  # README: "yours"
    (project / "main" / "model_data.cpp").write_text("// stale")  # tinygen's, edited
    (project / "main" / "model_ops.cpp").unlink()  # tinygen's, deleted
    refused = run(*args)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert (project / "main" / "main.cpp").read_text() == "// my application"

    forced = run(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (project / "notes.txt").read_text() == "mine"
    assert (project / "main" / "main.cpp").read_text() == "// my application"  # never touched
    assert not list(project.rglob("*.tinygen-new"))
    assert "g_model_data[]" in (project / "main" / "model_data.cpp").read_text()  # regenerated
    assert (project / "main" / "model_data.cpp.user-backup").read_text() == "// stale"
    assert (project / "main" / "model_ops.cpp").is_file()
    assert "backup     main/model_data.cpp" in forced.stdout
    assert "your code  main/main.cpp" in forced.stdout

    before = {p: p.stat().st_mtime_ns for p in project.rglob("*") if p.is_file()}
    again = run(*args, "--force")  # nothing changed: nothing rewritten (builds stay incremental)
    assert again.returncode == 0, again.stderr
    assert "0 file(s) written" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in project.rglob("*") if p.is_file()} == before


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
    from tinygen.boards import catalog as boards
    from tinygen.boards.fit import fit, require_fit
    from tinygen.errors import TinygenError
    from tinygen.model.analyze import analyze

    report = analyze(models["mlp"].tflite["int8"].read_bytes())
    board = boards.get_board("zephyr", "qemu_cortex_m3")
    with pytest.raises(TinygenError, match="does not fit"):
        require_fit(fit(board, report, emitted_bytes=300_000, arena_bytes=1000))
    with pytest.raises(TinygenError, match="not enough RAM"):
        require_fit(fit(board, report, emitted_bytes=1000, arena_bytes=70_000))


def test_inspect_fit_table_covers_every_board(tmp_path):
    """Every catalog board gets a row with its own arena; a board whose pinned TFLite-Micro
    lacks an operator says so instead of a fit."""
    import keras
    from tinygen.boards import catalog as boards
    from tinygen.model import convert, load

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.ops.min(keras.layers.Dense(4)(inputs), axis=-1, keepdims=True))
    model.save(tmp_path / "min.keras")
    # Converted once here (as `new` would, float32); inspect reads the .tflite three times.
    (tmp_path / "min.tflite").write_bytes(convert.convert(load.load_model(tmp_path / "min.keras"), "none", None))
    result = run("inspect", "--json", str(tmp_path / "min.tflite"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["deployable"]["ok"]
    assert "MIN" in " ".join(data["ops"])  # REDUCE_MIN
    rows = {(row["target"], row["board"]): row for row in data["boards"]}
    assert set(rows) == {(t, b) for t in boards.target_names() for b in boards.board_ids(t)}
    assert rows["esp-idf", "esp32s3"]["arena_bytes"] == data["arena_bytes"]  # inspect's default board
    assert rows["zephyr", "nrf52840dk"]["ok"]
    chirale = rows["arduino", "nano33ble"]  # TFLite-Micro of 2023-01: no REDUCE_MIN yet
    assert not chirale["ok"] and "REDUCE_MIN" in chirale["unsupported"]

    table = run("inspect", str(tmp_path / "min.tflite")).stdout
    assert "Every board" in table and "latency is an estimate" in table
    assert re.search(r"arduino\s+nano33ble .* no: .*REDUCE_MIN", table)

    # Asked about the board that cannot run it: the whole table and JSON all the same, the
    # reason in a field, and exit code 1 for CI to gate on.
    chirale = run("inspect", "--json", "--target", "arduino", str(tmp_path / "min.tflite"))
    assert chirale.returncode == 1
    data = json.loads(chirale.stdout)
    assert not data["deployable"]["ok"] and "REDUCE_MIN" in data["deployable"]["unsupported"]
    assert len(data["boards"]) == len(rows) and data["resolver"] is None
    assert "REDUCE_MIN" in chirale.stderr and "Traceback" not in chirale.stderr
    text = run("inspect", "--quantize", "none", "--target", "arduino", str(tmp_path / "min.keras"))
    assert text.returncode == 1 and "Every board" in text.stdout and "Verdict" in text.stdout


def test_inspect_exits_non_zero_when_the_model_does_not_fit(tmp_path):
    """A CI job gates on the exit code: 1 when the model does not fit the board asked about."""
    import keras
    import tensorflow as tf

    wide = keras.Sequential([keras.Input((256,)), keras.layers.Dense(512)])  # 512 KB of float weights
    path = tmp_path / "wide.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(wide).convert())
    fits = run("inspect", "--json", "--target", "zephyr", "--board", "qemu_x86", str(path))
    assert fits.returncode == 0, fits.stderr
    assert json.loads(fits.stdout)["deployable"]["ok"]
    small = run("inspect", "--json", "--target", "zephyr", "--board", "qemu_cortex_m3", str(path))
    assert small.returncode == 1
    verdict = json.loads(small.stdout)["deployable"]
    assert not verdict["ok"] and "flash" in verdict["shortfalls"]
    assert "does not fit" in small.stderr and "Traceback" not in small.stderr


@pytest.mark.parametrize("target, user_file, generated", [
    ("esp-idf", "main/main.cpp", "main/model_data.cpp"),
    ("arduino", "mlp_int8.ino", "model_data.cpp"),
    ("zephyr", "src/main.cpp", "src/model_data.cpp"),
])
def test_each_target_keeps_the_users_files(models, tmp_path, target, user_file, generated):
    """The files the generated README calls the user's are never rewritten; tinygen's are."""
    args = ["new", "--target", target, "--output", str(tmp_path), str(models["mlp"].tflite["int8"])]
    assert run(*args).returncode == 0
    project = tmp_path / "mlp_int8"
    assert f"`{user_file}`" in (project / "README.md").read_text()
    manifest = json.loads((project / ".tinygen-manifest.json").read_text())
    assert user_file in manifest["user_files"] and user_file not in manifest["files"]
    (project / user_file).write_text("// mine\n")
    (project / generated).write_text("// stale\n")
    forced = run(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (project / user_file).read_text() == "// mine\n"
    assert "g_model_data[]" in (project / generated).read_text()


def test_an_operator_no_library_has_is_refused_with_what_to_use_instead(tmp_path):
    """Keras' gelu converts to GELU, which no pinned TFLite-Micro has: every library refuses it
    naming the Keras layer and the activation to retrain with."""
    import keras
    from tinygen.errors import TinygenError
    from tinygen.library import resolver
    from tinygen.model import convert, load
    from tinygen.model.analyze import analyze

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="gelu", name="hidden"),
                              keras.layers.Dense(2)])
    model.save(tmp_path / "gelu.keras")
    report = analyze(convert.convert(load.load_model(tmp_path / "gelu.keras"), "none", None))
    assert "GELU" in report.ops
    for name in resolver.table_names():
        with pytest.raises(TinygenError) as refused:
            resolver.resolve(report, resolver.load_table(name))
        # (loaded in the process that made it, Keras names the layer hidden_1)
        assert re.search(r"operator GELU \(Keras layer 'hidden(_\d+)?'", refused.value.message)
        assert "'swish'" in refused.value.hint
