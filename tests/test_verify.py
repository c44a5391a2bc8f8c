"""`tinygen verify`: Keras vs TFLite interpreter vs TFLite-Micro on the same inputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from tinygen import pipeline
from tinygen.check.verify import failure_error, verify
from tinygen.cli import cli


@pytest.fixture(scope="module")
def shapes_eval(tmp_path_factory):
    from shapes import make_shapes

    x, y = make_shapes(200, seed=21)
    path = tmp_path_factory.mktemp("eval") / "shapes_eval.npz"
    np.savez(path, x=x, y=y)
    return path


@pytest.fixture(scope="module")
def cnn_prepared(models):
    """The Keras CNN converted to int8 (the Keras model is run too)."""
    files = models["cnn"]
    return pipeline.prepare(files.source, "esp-idf", "esp32s3", "int8", files.calibration, with_golden=False)


def test_all_three_agree_on_an_int8_classifier(cnn_prepared, shapes_eval):
    result = verify(cnn_prepared, shapes_eval)
    assert result.ok
    assert result.samples == 200
    assert result.deployment.max_steps == 0  # the verdict: exact
    assert result.tflite_vs_tflm.max_steps <= 1 and result.tflite_vs_tflm.top1_agreement >= 0.99
    assert result.keras_vs_tflite is not None
    # int8 costs something, but the outputs are probabilities: a few steps of 1/256 at most.
    assert 0 < result.keras_vs_tflite.max_abs < 0.1
    assert result.metric == "top-1 accuracy"
    assert set(result.scores) == {"keras", "tflite", "tflm"}
    assert abs(result.scores["tflm"] - result.scores["tflite"]) <= 0.01
    assert result.scores["keras"] > 0.45  # above chance (3 classes) after its 2 epochs
    assert abs(result.scores["keras"] - result.scores["tflite"]) <= 0.05


def test_float_model_matches_keras_closely(models):
    files = models["mlp"]
    prepared = pipeline.prepare(files.source, "zephyr", "qemu_x86", "none", None, with_golden=False)
    result = verify(prepared)
    assert result.ok
    assert result.tflite_vs_tflm.max_steps is None  # float outputs: no quantization steps
    assert result.keras_vs_tflite.max_abs < 1e-4
    assert result.inputs_from.startswith("pseudo-random")


# --- the verdict fails on real deployment bugs (fault injection) ----------------------

@pytest.mark.parametrize("tensor, field, change", [
    ("inputs", "zero_point", lambda v: v + 9),
    ("outputs", "zero_point", lambda v: v - 3),
    ("inputs", "scale", lambda v: v * 1.5),
    ("outputs", "scale", lambda v: v * 0.9),
])
def test_wrong_quantization_in_the_wrapper_fails(cnn_prepared, tensor, field, change):
    """tinygen's I/O wrapper (de)quantizes with a wrong zero point or scale."""
    wrapper_tensor = getattr(cnn_prepared.report, tensor)[0]
    original = getattr(wrapper_tensor, field)
    setattr(wrapper_tensor, field, change(original))
    try:
        result = verify(cnn_prepared)
    finally:
        setattr(wrapper_tensor, field, original)
    assert not result.ok
    assert "disagrees with TFLite-Micro's own reference run" in failure_error(result).message


def test_too_small_arena_fails(cnn_prepared, monkeypatch):
    """An emitted arena below the board's need is below the host's need by as much."""
    monkeypatch.setattr(cnn_prepared.arena, "margin_bytes", -cnn_prepared.arena.arena_bytes // 2)
    result = verify(cnn_prepared)
    assert not result.ok and result.deployment is None
    assert "could not run the model as the firmware would" in failure_error(result).message


def test_wrong_kernel_fails(cnn_prepared, monkeypatch):
    """The firmware runs a kernel that computes something else: here every biased layer's
    result lands two steps off (its bias shifted, `perturb.shifted_biases`)."""
    from tinygen.check import verify as verify_module
    from tinygen.check.perturb import shifted_biases

    monkeypatch.setattr(verify_module, "firmware_model", lambda prepared: shifted_biases(prepared.tflite, 2.0))
    result = verify(cnn_prepared)
    assert not result.ok
    assert result.deployment.max_steps >= 1


# --- near-ties are information, not failures -------------------------------------------

@pytest.fixture(scope="module")
def imu_classifier(tmp_path_factory):
    """A small Conv1D IMU gesture classifier (64 steps x 6 axes, 4 classes): one of the
    models on which TFLite's and TFLite-Micro's kernels round near-ties differently."""
    import keras
    from imu import imu_gestures

    keras.utils.set_random_seed(0)
    x, y = imu_gestures(600, 64, seed=0)
    model = keras.Sequential([
        keras.Input((64, 6), name="imu"), keras.layers.Conv1D(8, 5, activation="relu"),
        keras.layers.MaxPooling1D(2), keras.layers.Conv1D(16, 3, activation="relu"),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(4, activation="softmax", name="gesture")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, verbose=0)
    folder = tmp_path_factory.mktemp("imu")
    model.save(folder / "imu.keras")
    np.save(folder / "cal.npy", x[:100])
    x_eval, y_eval = imu_gestures(200, 64, seed=1000)
    np.savez(folder / "eval.npz", x=x_eval, y=y_eval)
    return folder


def test_near_tie_rounding_does_not_fail(imu_classifier):
    prepared = pipeline.prepare(imu_classifier / "imu.keras", "esp-idf", None, "int8",
                                imu_classifier / "cal.npy", with_golden=False)
    assert prepared.report.outputs[0].display_name == "gesture"  # the Keras output name
    result = verify(prepared, imu_classifier / "eval.npz")
    print(f"TFLite vs TFLite-Micro: max {result.tflite_vs_tflm.max_steps} steps, "
          f"top-1 agreement {result.tflite_vs_tflm.top1_agreement}")
    assert result.ok, failure_error(result).message
    assert result.deployment.max_steps == 0
    # The two implementations do differ on this model (TensorFlow 2.21: 2 steps), and the
    # top-1 class agrees all the same.
    assert result.tflite_vs_tflm.max_steps >= 1
    assert result.tflite_vs_tflm.top1_agreement >= 0.99


def test_cli_reports_disagreement_as_information(models, monkeypatch):
    """TFLite rounding 5 steps away on one output is printed, with top-1 agreement; the exit
    code follows the deployment verdict only."""
    from tinygen.check import verify as verify_module

    real = verify_module._run_tflite_interpreter

    def five_steps_off(model, ins, outs, inputs, progress):
        results, scales = real(model, ins, outs, inputs, progress)
        results[0][0, 0] += 5 * scales[0]
        return results, scales

    monkeypatch.setattr(verify_module, "_run_tflite_interpreter", five_steps_off)
    result = CliRunner().invoke(cli, ["verify", "--calibration-data", str(models["mlp"].calibration),
                                      str(models["mlp"].tflite["int8"])])
    assert result.exit_code == 0, result.output
    assert re.search(r"TFLite vs TFLite-Micro .* max 5 step\(s\), top-1 agrees on \d+\.\d%", result.output)
    assert "verdict: PASS (exact)" in result.output


def test_cli_exits_non_zero_on_a_deployment_bug(models, monkeypatch):
    real_analyze = pipeline.analyze

    def analyze_with_wrong_input_zero_point(data):
        report = real_analyze(data)
        report.inputs[0].zero_point += 5
        return report

    monkeypatch.setattr(pipeline, "analyze", analyze_with_wrong_input_zero_point)
    result = CliRunner().invoke(cli, ["verify", "--calibration-data", str(models["mlp"].calibration),
                                      str(models["mlp"].tflite["int8"])])
    assert result.exit_code == 1
    assert "verdict: FAIL" in result.output
    assert "deployment bug" in result.output


def test_cli_json_for_a_tflite_file(models, tmp_path):
    x = np.load(models["mlp"].calibration)
    labels = (x[:, :4] > 0).argmax(1)
    np.savez(tmp_path / "eval.npz", x, labels)  # unnamed (x, y) works too
    result = subprocess.run([sys.executable, "-m", "tinygen.cli", "verify", "--json", "--eval-data",
                             str(tmp_path / "eval.npz"), str(models["mlp"].tflite["int8"])],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] and data["deployment_vs_reference"]["ok"]
    assert data["deployment_vs_reference"]["max_steps"] == 0
    assert data["tflite_vs_tflm"]["top1_agreement"] is not None
    assert data["keras_vs_tflite"] is None  # no Keras model in a .tflite
    assert data["samples"] == len(x)
    assert data["metric"] == "top-1 accuracy" and set(data["scores"]) == {"tflite", "tflm"}
    assert data["arena_bytes"] > 0


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 10), np.float32)}, "has no labels"),
    ({"x": np.zeros((4, 10), np.float32), "y": np.zeros(3)}, "3 label(s) for 4 input sample(s)"),
    ({"inputs": np.zeros((4, 10), np.float32), "y": np.zeros(4)}, "no array for input"),
    ({"x": np.zeros((4, 10), np.float32), "y": np.zeros((4, 7))}, "cannot score it"),
])
def test_bad_eval_data_is_a_clear_error(models, tmp_path, arrays, message):
    path = tmp_path / "eval.npz"
    np.savez(path, **arrays)
    result = CliRunner().invoke(cli, ["verify", "--eval-data", str(path), str(models["mlp"].tflite["int8"])])
    assert result.exit_code == 1
    assert message in result.output


def test_inputs_and_outputs_are_matched_by_name_not_position(tmp_path):
    """The converter orders a multi-output model's outputs differently from Keras; inputs
    are matched to calibration/eval arrays by name, outputs to Keras by signature."""
    import keras

    imu, pose = keras.Input((5,), name="zeta_imu"), keras.Input((3,), name="alpha_pose")
    hidden = keras.layers.Concatenate()([keras.layers.Dense(4)(imu), keras.layers.Dense(4)(pose)])
    model = keras.Model([imu, pose], [keras.layers.Dense(2, name="zz_out")(hidden),
                                      keras.layers.Dense(6, name="aa_out")(hidden)])
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(3)
    arrays = {"zeta_imu": rng.normal(size=(200, 5)).astype(np.float32),
              "alpha_pose": rng.normal(size=(200, 3)).astype(np.float32)}
    np.savez(tmp_path / "cal.npz", **arrays)
    np.savez(tmp_path / "eval.npz", **arrays, y=rng.normal(size=(200, 2)))  # labels for zz_out

    prepared = pipeline.prepare(tmp_path / "two.keras", "esp-idf", None, "int8", tmp_path / "cal.npz")
    report = prepared.report
    assert [t.signature_name for t in report.inputs] == [s.name for s in prepared.input_specs]
    assert [arr.shape[1:] for arr in prepared.samples] == [tuple(t.shape[1:]) for t in report.inputs]
    assert sorted(t.display_name for t in report.outputs) == ["aa_out", "zz_out"]  # the Keras names

    result = verify(prepared, tmp_path / "eval.npz")
    assert result.ok
    assert result.keras_vs_tflite is not None, result.keras_note  # outputs paired up by name
    assert result.keras_vs_tflite.max_abs < 0.1  # int8 of a small net on calibrated data
    assert result.metric == "mean squared error"
