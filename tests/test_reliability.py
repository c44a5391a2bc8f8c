"""Bad, hostile and odd input: one clear message, non-zero exit, no traceback, and the
file system exactly as before."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tinygen.errors import TinygenError


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinygen.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, models):
    """name -> path of a broken or unrunnable input, built once."""
    folder = tmp_path_factory.mktemp("bad")
    good = models["mlp"].tflite["int8"].read_bytes()
    rng = random.Random(0)
    files = {
        "empty.tflite": b"",
        "random.tflite": bytes(rng.randrange(256) for _ in range(3000)),
        "truncated.tflite": good[: len(good) // 3],
        "random.keras": bytes(rng.randrange(256) for _ in range(2000)),
        "truncated.h5": models["depthwise"].source.read_bytes()[:500],
        "model.onnx": b"onnx",
    }
    # A valid flatbuffer whose first non-empty buffer claims data far outside the file.
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(good, 0))
    for buffer in model.buffers:
        if buffer.data is not None and len(buffer.data):
            buffer.data, buffer.offset, buffer.size = None, len(good) * 10, 4096
            break
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    files["out_of_range.tflite"] = bytes(builder.Output())
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "not_a_savedmodel").mkdir()
    (folder / "not_a_savedmodel" / "notes.txt").write_text("hi")

    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4], tf.float32)])
    def determinant(x):
        return tf.linalg.det(x)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([determinant.get_concrete_function()], determinant)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    (folder / "flex.tflite").write_bytes(converter.convert())

    import keras

    @keras.saving.register_keras_serializable(package="tests_only")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    custom = keras.Sequential([keras.Input((3,)), Doubler(), keras.layers.Dense(2)])
    custom.save(folder / "custom_layer.keras")
    keras.saving.get_custom_objects().clear()  # a user's tinygen does not know Doubler

    wide = keras.Sequential([keras.Input((512,)), keras.layers.Dense(512)])
    (folder / "wide.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(wide).convert())
    wide.save(folder / "wide.keras")  # big enough that dynamic-range really quantizes it

    np.save(folder / "cal_wrong_shape.npy", np.zeros((4, 7), np.float32))
    np.save(folder / "cal_strings.npy", np.array([["a"] * 10] * 4))
    np.save(folder / "cal_nan.npy", np.full((4, 10), np.nan, np.float32))
    np.save(folder / "cal_empty.npy", np.zeros((0, 10), np.float32))
    (folder / "cal_garbage.npy").write_bytes(b"not numpy at all")
    return folder


CASES = [
    # (id, args, expected message fragment)
    ("missing path", ["new", "--target", "esp-idf", "{bad}/nope.keras"], "does not exist"),
    ("dir not SavedModel", ["inspect", "{bad}/not_a_savedmodel"], "not a SavedModel"),
    ("empty file", ["inspect", "{bad}/empty.tflite"], "is empty"),
    ("random tflite", ["inspect", "{bad}/random.tflite"], "not a TFLite model"),
    ("truncated tflite", ["inspect", "{bad}/truncated.tflite"], "corrupt"),
    ("buffer out of range", ["inspect", "{bad}/out_of_range.tflite"], "buffer spans bytes"),
    ("random keras", ["new", "--target", "esp-idf", "--quantize", "none", "{bad}/random.keras"], "Could not load the Keras model"),
    ("truncated h5", ["new", "--target", "esp-idf", "--quantize", "none", "{bad}/truncated.h5"], "Could not load the Keras model"),
    ("int8 without calibration", ["new", "--target", "esp-idf", "--quantize", "int8", "{bad}/random.keras"], "needs representative input data"),
    ("unknown suffix", ["inspect", "{bad}/model.onnx"], "Unsupported model file type"),
    ("custom layer", ["new", "--target", "esp-idf", "--quantize", "none", "{bad}/custom_layer.keras"], "Doubler"),
    ("flex op", ["new", "--target", "zephyr", "{bad}/flex.tflite"], "'MatrixDeterminant' through Flex"),
    ("calibration shape", ["new", "--target", "esp-idf", "--calibration-data", "{bad}/cal_wrong_shape.npy", "{mlp}"], "expects samples of shape (10,)"),
    ("calibration dtype", ["new", "--target", "esp-idf", "--calibration-data", "{bad}/cal_strings.npy", "{mlp}"], "numeric array is needed"),
    ("calibration nan", ["new", "--target", "esp-idf", "--calibration-data", "{bad}/cal_nan.npy", "{mlp}"], "NaN or infinite"),
    ("calibration empty", ["new", "--target", "esp-idf", "--calibration-data", "{bad}/cal_empty.npy", "{mlp}"], "is empty"),
    ("calibration unreadable", ["new", "--target", "esp-idf", "--calibration-data", "{bad}/cal_garbage.npy", "{mlp}"], "Could not read calibration data"),
    ("unknown board", ["new", "--target", "zephyr", "--board", "nrf52840", "{mlp}"], "Did you mean 'nrf52840dk'"),
    ("unknown target", ["new", "--target", "mbed", "{mlp}"], "Invalid value for '--target'"),
    ("float16 model", ["new", "--target", "esp-idf", "--quantize", "float16", "{bad}/wide.keras"], "no float16 kernels"),
    ("dynamic-range model", ["new", "--target", "esp-idf", "--quantize", "dynamic", "{bad}/wide.keras"], "do not run dynamic-range"),
    ("too big for board", ["new", "--target", "zephyr", "--board", "qemu_cortex_m3", "{bad}/wide.tflite"], "does not fit"),
    ("output is a file", ["new", "--target", "esp-idf", "--output", "{bad}/empty.tflite", "{mlp}"], "Cannot write to output directory"),
]


@pytest.mark.parametrize("case_id, args, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(bad_inputs, models, tmp_path, case_id, args, message):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("user data")
    before, bad_before = tree_hash(work), tree_hash(bad_inputs)
    args = [a.format(bad=bad_inputs, mlp=models["mlp"].tflite["int8"]) for a in args]
    result = cli(*args, cwd=work)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert tree_hash(work) == before
    assert tree_hash(bad_inputs) == bad_before


@pytest.mark.parametrize("name, expected", [
    ("../../escape", "escape"),
    ("/etc/passwd", "etc_passwd"),
    ("my robot", "my_robot"),
    ("Grüße-modèle", "Grue-modele"),
    ("a;rm -rf $HOME`x`", "a_rm_-rf_HOME_x"),
    ("class", "class"),
    ("{{ 7*7 }}", "model_7_7"),
    ("{% for x in y %}", "for_x_in_y"),
])
def test_hostile_names_stay_inside_output_and_are_not_evaluated(models, tmp_path, name, expected):
    out = tmp_path / "out"
    result = cli("new", "--target", "arduino", "--output", out, "--name", name,
                 models["mlp"].tflite["int8"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (project,) = list(out.iterdir())
    assert project.name == expected
    assert (project / f"{expected}.ino").is_file()
    assert [p for p in tmp_path.iterdir()] == [out]  # nothing written outside --output
    for path in project.rglob("*"):
        if path.is_file():
            assert "49" not in path.name
    assert "{{ 7*7 }}" not in (project / "README.md").read_text()


def test_failure_midway_leaves_nothing(models, tmp_path, monkeypatch):
    from tinygen.output import render
    from tinygen.output.context import build_context, golden_arrays, model_array
    from tinygen.pipeline import prepare

    prepared = prepare(models["mlp"].tflite["int8"], "esp-idf")
    context = build_context(prepared, "half")

    def explode(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render, "_render_firmware_core", explode)
    with pytest.raises(TinygenError, match="No space left"):
        render.render_project(context, {"model_array": model_array(prepared),
                                        "golden_arrays": golden_arrays(prepared.golden)},
                              "esp-idf", "main", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _without_root_override() -> list[str]:
    """Command prefix under which directory permissions apply: none needed for a normal user;
    root (as on CI) drops the capabilities that let it ignore them."""
    if os.geteuid() != 0:
        return []
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: root ignores permissions")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def test_read_only_destination(models, tmp_path):
    output = tmp_path / "read-only"
    output.mkdir()
    output.chmod(0o555)
    try:
        result = subprocess.run([*_without_root_override(), sys.executable, "-m", "tinygen.cli", "new",
                                 "--target", "esp-idf", "--output", str(output), str(models["mlp"].tflite["int8"])],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1, result.stderr
        assert "Cannot write to output directory" in result.stderr
        assert "Traceback" not in result.stderr
        assert list(output.iterdir()) == []
    finally:
        output.chmod(0o755)


FUZZ_CASES = 400


def test_fuzzed_tflite_never_crashes_the_cli(models, tmp_path):
    """400 seeded mutations of a small valid model through `inspect`'s code path (about half
    reach the TFLite-Micro runtime and every board's table): every one ends in a report or a
    TinygenError, never another exception or a crash."""
    from click.testing import CliRunner
    from tinygen.cli import cli as tinygen

    good = models["mlp"].tflite["int8"].read_bytes()
    rng = random.Random(1234)
    runner = CliRunner()
    outcomes = {"ok": 0, "clean error": 0, "crash": 0}
    path = tmp_path / "fuzz.tflite"
    for _ in range(FUZZ_CASES):
        data = bytearray(good)
        for _ in range(rng.choice([1, 2, 4, 16])):
            position = rng.randrange(8, len(data))  # keep the identifier: test the parser
            data[position] = rng.randrange(256)
        if rng.random() < 0.1:
            data = data[: rng.randrange(8, len(data))]
        path.write_bytes(bytes(data))
        result = runner.invoke(tinygen, ["inspect", "--json", str(path)])
        if result.exit_code == 0:
            outcomes["ok"] += 1
        elif result.exit_code == 1:  # a TinygenError: one message, no traceback
            outcomes["clean error"] += 1
        else:
            outcomes["crash"] += 1
            print("crash:", result.exit_code, result.output[-500:])
    print(f"fuzz: {FUZZ_CASES} cases, {outcomes['ok']} inspected, {outcomes['clean error']} clean errors, "
          f"{outcomes['crash']} crashes")
    assert outcomes["crash"] == 0


def test_converter_crash_is_a_clean_error(models, tmp_path, monkeypatch):
    """TensorFlow's converter is native code (2.21 segfaults calibrating some LSTM/GRU
    models): it runs in a child process, and its death is one clear message, nothing written.
    The crash is simulated: every child Python started with this sitecustomize segfaults."""
    from click.testing import CliRunner
    from tinygen.cli import cli as tinygen

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    out = tmp_path / "out"
    result = CliRunner().invoke(tinygen, ["new", "--target", "esp-idf", "--output", str(out), "--calibration-data",
                                          str(models["mlp"].calibration), str(models["mlp"].source)])
    assert result.exit_code == 1, result.output
    assert "TensorFlow crashed (signal SIGSEGV)" in result.output
    assert "--quantize none" in result.output  # the hint
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_loop_whose_tensors_change_shape_is_refused_and_a_stuck_runtime_stopped(tmp_path, monkeypatch):
    """Keras 3's LSTM with return_sequences=True converts to a WHILE whose body slices tensors
    that grow step by step. TFLite-Micro sizes every tensor once: the runtime computes it wrongly
    and, from 14 steps, never finishes. tinygen refuses such a model when it reads it, and a
    runtime request that does not end is stopped with an error instead of hanging the CLI."""
    import keras
    import tensorflow as tf
    from tinygen.model import tflm_host
    from tinygen.model.analyze import analyze

    steps = keras.Input((14, 3), batch_size=1)
    model = keras.Model(steps, keras.layers.GlobalMaxPooling1D()(keras.layers.LSTM(4, return_sequences=True)(steps)))
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(TinygenError) as refused:
        analyze(data)
    assert "changes shape from one step to the next" in str(refused.value) and "unroll=True" in refused.value.hint
    (tmp_path / "growing.tflite").write_bytes(data)
    shown = cli("inspect", "growing.tflite", cwd=tmp_path)
    assert shown.returncode == 1 and "Traceback" not in shown.stderr and "changes shape" in shown.stderr

    monkeypatch.setattr(tflm_host, "REQUEST_SECONDS", 5)
    with tflm_host.HostRuntime(data) as runtime, pytest.raises(TinygenError, match="did not finish within 5 s"):
        runtime.try_arena(1 << 18)
