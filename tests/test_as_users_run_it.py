"""tinygen as users run it: the installed console script (built as a wheel, installed into a
fresh virtual environment), run from the user's own folder outside the checkout, with
relative paths; with and without TensorFlow installed."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tinygen.model.analyze import analyze
from tinygen.output.model_source import parse_byte_array

FIRMWARE_DIR = {"esp-idf": "main", "arduino": ".", "zephyr": "src"}


@pytest.fixture(scope="module")
def saved_model(models, tmp_path_factory) -> Path:
    """The MLP exported as a SavedModel directory."""
    import keras

    folder = tmp_path_factory.mktemp("saved") / "mlp_saved"
    keras.models.load_model(models["mlp"].source).export(folder, verbose=False)
    return folder


def user_folder(tmp_path: Path, model: Path, calibration: Path | None = None) -> tuple[Path, str]:
    """A user's project folder holding models/<model> (and data/cal.npy); returns it and the
    model's relative path."""
    home = tmp_path / "robot-arm"
    (home / "models").mkdir(parents=True)
    target = home / "models" / model.name
    if model.is_dir():
        shutil.copytree(model, target)
    else:
        shutil.copy(model, target)
    if calibration is not None:
        (home / "data").mkdir()
        shutil.copy(calibration, home / "data" / "cal.npy")
    return home, f"models/{model.name}"


def embedded_model(project: Path, target: str) -> bytes:
    source = (project / FIRMWARE_DIR[target] / "model_data.cpp").read_text()
    return parse_byte_array(source, "g_model_data")


# Every target with a .keras file and a .tflite; the other formats differ only in how they are
# loaded, which one target shows (each conversion costs a TensorFlow start-up).
CASES = [(kind, target) for kind in ("keras", "tflite") for target in ("esp-idf", "arduino", "zephyr")] + [
    ("h5", "arduino"), ("saved_model", "zephyr")]


@pytest.mark.parametrize("kind, target", CASES)
def test_new_from_the_users_folder(installed, models, saved_model, tmp_path, kind, target):
    source, shape = {
        "keras": (models["mlp"].source, [1, 10]),
        "h5": (models["depthwise"].source, [1, 12, 12, 3]),
        "saved_model": (saved_model, [1, 10]),
        "tflite": (models["mlp"].tflite["int8"], [1, 10]),
    }[kind]
    calibration = models["depthwise" if kind == "h5" else "mlp"].calibration
    home, model = user_folder(tmp_path, source, calibration)
    result = installed["full"].run("new", "--target", target, "--calibration-data", "data/cal.npy",
                                   "--output", "firmware", model, cwd=home)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    if kind != "tflite":
        assert "Converting with the TFLite converter" in result.stderr  # progress is shown
    (project,) = (home / "firmware").iterdir()
    data = embedded_model(project, target)
    report = analyze(data)
    assert report.inputs[0].shape == shape  # the user's model, not another
    dense = [report.tensors[0][op.inputs[1]] for op in report.operators if op.op == "FULLY_CONNECTED"]
    if target == "arduino":  # Chirale 2.0.0 reads one weight scale per Dense layer: converted (or
        assert dense and not any(t.per_channel for t in dense)  # rewritten) to one scale per layer
    elif kind in ("keras", "tflite"):
        assert any(t.per_channel for t in dense)  # the converter's default, which these libraries compute
    if kind == "tflite":
        assert (data == source.read_bytes()) == (target != "arduino")  # byte for byte unless rewritten
        assert ("Rewrote the model for" in result.stderr) == (target == "arduino")
    assert sorted(p.name for p in home.iterdir()) == ["data", "firmware", "models"]  # nothing else written


def test_a_same_named_file_beside_the_package_is_never_used(installed, models, tmp_path):
    """The converter runs in a child process; a relative model path must still mean the
    user's file, even when the same relative path exists where tinygen is installed."""
    decoy = installed["full"].site_packages / "models" / "mlp.keras"
    decoy.parent.mkdir()
    shutil.copy(models["cnn"].source, decoy)  # another model under the same relative name
    try:
        home, model = user_folder(tmp_path, models["mlp"].source, models["mlp"].calibration)
        result = installed["full"].run("new", "--target", "esp-idf", "--calibration-data", "data/cal.npy",
                                       model, cwd=home)
        assert result.returncode == 0, result.stderr
        assert analyze(embedded_model(home / "mlp", "esp-idf")).inputs[0].shape == [1, 10]

        (home / "models" / "mlp.keras").unlink()  # the user's file is gone: an error, never the decoy
        gone = installed["full"].run("new", "--target", "esp-idf", "--force", "--calibration-data",
                                     "data/cal.npy", model, cwd=home)
        assert gone.returncode == 1
        assert "Model file 'models/mlp.keras' does not exist" in gone.stderr
    finally:
        shutil.rmtree(decoy.parent)


def test_verify_and_inspect_take_relative_paths(installed, models, tmp_path):
    home, model = user_folder(tmp_path, models["mlp"].source, models["mlp"].calibration)
    x = np.load(home / "data" / "cal.npy")
    np.savez(home / "data" / "eval.npz", x=x, y=(x[:, :4] > 0).argmax(1))
    verified = installed["full"].run("verify", "--json", "--calibration-data", "data/cal.npy",
                                     "--eval-data", "data/eval.npz", model, cwd=home)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["metric"] == "top-1 accuracy" and report["samples"] == len(x)
    inspected = installed["full"].run("inspect", "--json", "models/mlp.keras", "--quantize", "none", cwd=home)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["inputs"][0]["shape"] == [1, 10]


# --- without TensorFlow -------------------------------------------------------------------

def test_light_install_says_what_to_install_for_keras(installed, models, tmp_path):
    home, model = user_folder(tmp_path, models["mlp"].source, models["mlp"].calibration)
    for command in (["new", "--target", "esp-idf", "--calibration-data", "data/cal.npy"],
                    ["inspect"], ["verify"]):
        result = installed["light"].run(*command, model, cwd=home)
        assert result.returncode == 1, result.stderr
        assert "needs TensorFlow" in result.stderr
        assert "pip install 'tinygen[convert]'" in result.stderr
        assert "Internal error" not in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in home.iterdir()) == ["data", "models"]


def test_light_install_runs_tflite_models(installed, models, tmp_path):
    home, model = user_folder(tmp_path, models["cnn"].tflite["int8"], models["cnn"].calibration)
    created = installed["light"].run("new", "--target", "zephyr", "--calibration-data", "data/cal.npy",
                                     model, cwd=home)
    assert created.returncode == 0, created.stderr
    verified = installed["light"].run("verify", "--json", "--calibration-data", "data/cal.npy", model, cwd=home)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["deployment_vs_reference"]["max_steps"] == 0
    assert report["tflite_vs_tflm"] is None
    assert "TensorFlow is not installed" in report["tflite_note"]


# --- what needs no model is checked before TensorFlow loads ---------------------------------

@pytest.mark.parametrize("case, extra, message", [
    ("no calibration for int8", ["--quantize", "int8"], "needs representative input data"),
    ("calibration path typo", ["--calibration-data", "data/cal.npz"], "Calibration data file 'data/cal.npz' does not exist"),
    ("output exists", ["--calibration-data", "data/cal.npy", "--output", "taken"], "already exists"),
    ("unknown target", ["--target", "mbed"], "Invalid value for '--target'"),
    ("unknown board", ["--board", "esp32s9"], "Did you mean 'esp32s3'"),
])
def test_checks_before_tensorflow_loads(installed, models, tmp_path, case, extra, message):
    home, model = user_folder(tmp_path, models["mlp"].source, models["mlp"].calibration)
    (home / "taken" / "mlp").mkdir(parents=True)
    (home / "taken" / "mlp" / "notes.txt").write_text("mine")
    target = [] if "--target" in extra else ["--target", "esp-idf"]
    result = installed["full"].run("new", *target, *extra, model, cwd=home)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "Loading" not in result.stderr  # the conversion (and TensorFlow) never started
    assert (home / "taken" / "mlp" / "notes.txt").read_text() == "mine"


# --- the user's data, checked -----------------------------------------------------------------

def test_calibration_warnings(installed, models, tmp_path):
    home, model = user_folder(tmp_path, models["mlp"].tflite["int8"])
    (home / "data").mkdir()
    x = np.load(models["mlp"].calibration)
    np.save(home / "data" / "one.npy", x[0])  # one sample, no batch axis
    np.save(home / "data" / "scaled.npy", x * 10)  # 10x the training range
    one = installed["full"].run("new", "--target", "esp-idf", "--output", "a", "--calibration-data",
                                "data/one.npy", model, cwd=home)
    assert one.returncode == 0, one.stderr
    assert "one sample without the batch axis" in one.stderr and "only 1 sample(s)" in one.stderr
    scaled = installed["full"].run("new", "--target", "esp-idf", "--output", "b", "--calibration-data",
                                   "data/scaled.npy", model, cwd=home)
    assert scaled.returncode == 0, scaled.stderr
    assert re.search(r"Warning: .*\d+% of the values for input .* saturate", scaled.stderr)


def test_calibration_far_from_a_normalization_layer_warns(tmp_path):
    import keras

    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, size=(200, 6)).astype(np.float32)
    norm = keras.layers.Normalization()
    norm.adapt(x)
    model = keras.Sequential([keras.Input((6,)), norm, keras.layers.Dense(3)])
    model.save(tmp_path / "norm.keras")
    from tinygen.pipeline import prepare
    from tinygen.progress import Progress

    class Collect(Progress):
        warnings: list = []

        def warn(self, message):
            self.warnings.append(message)

    np.save(tmp_path / "good.npy", x)
    np.save(tmp_path / "raw.npy", x * 10)
    assert not prepare(tmp_path / "norm.keras", "esp-idf", calibration_path=tmp_path / "good.npy",
                       with_golden=False).warnings
    progress = Collect()
    warned = prepare(tmp_path / "norm.keras", "esp-idf", calibration_path=tmp_path / "raw.npy",
                     with_golden=False, progress=progress)
    assert any("Normalization layer" in w for w in warned.warnings)
    assert progress.warnings == warned.warnings


# --- class names ---------------------------------------------------------------------------------

def test_labels_reach_the_firmware(installed, models, tmp_path):
    home, model = user_folder(tmp_path, models["cnn"].tflite["int8"], models["cnn"].calibration)
    (home / "labels.txt").write_text("circle\nsquare\ntri \"angle\"\n")
    result = installed["full"].run("new", "--target", "arduino", "--labels", "labels.txt",
                                   "--calibration-data", "data/cal.npy", model, cwd=home)
    assert result.returncode == 0, result.stderr
    assert "labels     3: circle, square, tri \"angle\"" in result.stdout
    project = home / "cnn_int8"
    header = (project / "tinygen_model.h").read_text()
    assert "constexpr size_t kLabelCount = 3;" in header and "int model_top1();" in header
    source = (project / "tinygen_model.cpp").read_text()
    assert '"circle",' in source and '"tri \\"angle\\"",' in source
    (home / "two.txt").write_text("a\nb\n")
    wrong = installed["full"].run("new", "--target", "arduino", "--labels", "two.txt", "--output", "x",
                                  model, cwd=home)
    assert wrong.returncode == 1 and "has 2 class name(s) but the model's first output" in wrong.stderr


def test_labels_from_tflite_metadata(models, tmp_path):
    """A .tflite written with TFLite Model Metadata is also a zip holding its label file."""
    from tinygen.pipeline import prepare

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("labels.txt", "circle\nsquare\ntriangle\n")
    path = tmp_path / "with_metadata.tflite"
    path.write_bytes(models["cnn"].tflite["int8"].read_bytes() + archive.getvalue())
    assert prepare(path, "esp-idf", with_golden=False).labels == ["circle", "square", "triangle"]


# --- regeneration can't corrupt ------------------------------------------------------------------

@pytest.fixture(scope="module")
def imu_windows(tmp_path_factory) -> dict[int, Path]:
    """Conv1D IMU models for 64x6 and 128x6 windows, converted to int8 .tflite."""
    import keras
    import tensorflow as tf
    from imu import imu_gestures

    folder = tmp_path_factory.mktemp("windows")
    paths = {}
    for steps in (64, 128):
        x, _ = imu_gestures(50, steps, seed=steps)
        model = keras.Sequential([keras.Input((steps, 6)), keras.layers.Conv1D(4, 3, activation="relu"),
                                  keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3, activation="softmax")])
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
        paths[steps] = folder / f"imu_{steps}.tflite"
        paths[steps].write_bytes(converter.convert())
        np.save(folder / f"imu_{steps}.npy", x)
    return paths


def test_regeneration_with_a_grown_input_stays_consistent(installed, imu_windows, tmp_path):
    home = tmp_path / "robot"
    home.mkdir()
    shutil.copy(imu_windows[64], home / "imu.tflite")
    first = installed["full"].run("new", "--target", "esp-idf", "imu.tflite", cwd=home)
    assert first.returncode == 0, first.stderr
    main = home / "imu" / "main"
    (main / "main.cpp").write_text("// my robot's application\n")
    header = (main / "tinygen_model.h").read_text()
    assert "kInput0Elements = 384;" in header
    (main / "tinygen_model.h").write_text(header + "// my tweak\n")
    old_golden = (main / "golden_vectors.cpp").read_text()

    shutil.copy(imu_windows[128], home / "imu.tflite")  # the model's window grew to 128 x 6
    second = installed["full"].run("new", "--target", "esp-idf", "--force", "imu.tflite", cwd=home)
    assert second.returncode == 0, second.stderr
    assert (main / "main.cpp").read_text() == "// my robot's application\n"  # the user's: untouched
    header = (main / "tinygen_model.h").read_text()
    assert "kInput0Elements = 768;" in header  # tinygen's: regenerated, never stale
    assert (main / "tinygen_model.h.user-backup").read_text().endswith("// my tweak\n")
    generation = re.search(r"kGeneration = (0x[0-9a-f]+u);", header).group(1)
    for source in ("model_data.cpp", "model_ops.cpp", "golden_vectors.cpp", "tinygen_model.cpp"):
        assert f"kGeneration == {generation}" in (main / source).read_text(), source

    # A stale mix (the old golden vectors beside the new header) fails to compile, with a
    # message, instead of overflowing at run time.
    if shutil.which("g++") is None:
        pytest.skip("g++ not on PATH")
    stub = tmp_path / "stub" / "tensorflow" / "lite" / "c"
    stub.mkdir(parents=True)
    (stub / "common.h").write_text("// stand-in: the header only names the type\nstruct TfLiteTensor;\n")

    def compiles(text: str) -> subprocess.CompletedProcess:
        (main / "check.cpp").write_text(text)
        try:
            return subprocess.run(["g++", "-std=gnu++14", "-fsyntax-only", f"-I{tmp_path / 'stub'}",
                                   f"-I{main}", str(main / "check.cpp")], capture_output=True, text=True)
        finally:
            (main / "check.cpp").unlink()

    assert compiles((main / "golden_vectors.cpp").read_text()).returncode == 0
    stale = compiles(old_golden)
    assert stale.returncode != 0
    assert "come from different tinygen runs" in stale.stderr
