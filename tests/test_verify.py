"""`tinygen verify`: Keras vs TFLite interpreter vs TFLite-Micro on the same inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from generator import pipeline
from generator.cli import cli
from generator.verify import failure_error, verify


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
    assert result.tflite_vs_tflm.max_steps <= 1
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


@pytest.mark.parametrize("tensor", ["inputs", "outputs"])
def test_wrong_zero_point_in_the_wrapper_fails(cnn_prepared, tensor):
    """A deployment bug: tinygen's I/O wrapper quantizes with a wrong zero point."""
    wrapper_tensor = getattr(cnn_prepared.report, tensor)[0]
    original = wrapper_tensor.zero_point
    wrapper_tensor.zero_point = original + 9
    try:
        result = verify(cnn_prepared)
    finally:
        wrapper_tensor.zero_point = original
    assert not result.ok
    assert result.tflite_vs_tflm.max_steps > 1
    assert "disagrees with the TFLite interpreter" in failure_error(result).message


def test_cli_exits_non_zero_when_tflm_disagrees(models, monkeypatch):
    real_analyze = pipeline.analyze

    def analyze_with_wrong_input_zero_point(data):
        report = real_analyze(data)
        report.inputs[0].zero_point += 5
        return report

    monkeypatch.setattr(pipeline, "analyze", analyze_with_wrong_input_zero_point)
    result = CliRunner().invoke(cli, ["verify", "--calibration-data", str(models["mlp"].calibration),
                                      str(models["mlp"].tflite["int8"])])
    assert result.exit_code == 1
    assert "DISAGREE" in result.output
    assert "deployment bug" in result.output


def test_cli_json_for_a_tflite_file(models, tmp_path):
    x = np.load(models["mlp"].calibration)
    labels = (x[:, :4] > 0).argmax(1)
    np.savez(tmp_path / "eval.npz", x, labels)  # unnamed (x, y) works too
    result = subprocess.run([sys.executable, "-m", "generator.cli", "verify", "--json", "--eval-data",
                             str(tmp_path / "eval.npz"), str(models["mlp"].tflite["int8"])],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] and data["tflite_vs_tflm"]["ok"]
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
    assert sorted(t.display_name for t in report.outputs) == ["Keras output 0", "Keras output 1"]

    result = verify(prepared, tmp_path / "eval.npz")
    assert result.ok
    assert result.keras_vs_tflite is not None, result.keras_note  # outputs paired up by name
    assert result.keras_vs_tflite.max_abs < 0.1  # int8 of a small net on calibrated data
    assert result.metric == "mean squared error"
