"""Loading every model kind and converting with each quantization."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tinygen.errors import TinygenError
from tinygen.model import calibration, convert, load
from tinygen.model.analyze import analyze


def test_tflite_path_never_imports_tensorflow(models):
    code = (
        "import sys\n"
        "from tinygen.pipeline import prepare\n"
        f"p = prepare({str(models['mlp'].tflite['int8'])!r}, 'esp-idf')\n"
        "assert p.arena.arena_bytes > 0\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_legacy_h5_falls_back_to_tf_keras(models):
    loaded = load.load_model(models["depthwise"].source)
    assert loaded.kind == "keras"
    assert loaded.loader.startswith("tf_keras")


def test_keras3_file_loads_with_keras3(models):
    assert load.load_model(models["mlp"].source).loader.startswith("keras ")


def test_saved_model_directory_converts(tmp_path, models):
    import keras

    model = keras.models.load_model(models["mlp"].source)
    model.export(tmp_path / "saved", verbose=False)
    loaded = load.load_model(tmp_path / "saved")
    assert loaded.kind == "saved_model"
    report = analyze(convert.convert(loaded, "none", None))
    assert report.ops == ["FULLY_CONNECTED", "SOFTMAX"]
    assert report.inputs[0].shape == [1, 10]


@pytest.mark.parametrize("quantize, input_dtype, weight_types", [
    ("int8", "INT8", {"INT8", "INT32"}),
    ("none", "FLOAT32", {"FLOAT32"}),
    ("float16", "FLOAT32", {"FLOAT16"}),
])
def test_quantization_modes(models, quantize, input_dtype, weight_types):
    files = models["cnn"]
    loaded = load.load_model(files.source)
    samples = calibration.load_samples(files.calibration, convert.input_specs(loaded))
    report = analyze(convert.convert(loaded, quantize, samples if quantize == "int8" else None))
    assert report.inputs[0].dtype == input_dtype
    constant_types = {t.dtype for t in report.tensors[0] if t.is_constant}
    assert weight_types <= constant_types
    assert report.inputs[0].shape == [1, 16, 16, 1]  # batch fixed to 1
    assert "SHAPE" not in report.ops  # static shapes: Flatten is a single RESHAPE


def test_dynamic_range_quantizes_large_weights(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(2)])
    model.save(tmp_path / "wide.keras")
    report = analyze(convert.convert(load.load_model(tmp_path / "wide.keras"), "dynamic", None))
    assert report.quantization == "dynamic"


def test_int8_without_calibration_is_an_error_with_hint(models):
    with pytest.raises(TinygenError) as err:
        convert.convert(load.load_model(models["mlp"].source), "int8", None)
    assert "--calibration-data" in err.value.hint


def test_dynamic_non_batch_dimension_is_rejected(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((None, 3)), keras.layers.Conv1D(4, 3),
                              keras.layers.GlobalAveragePooling1D()])
    model.save(tmp_path / "dyn.keras")
    with pytest.raises(TinygenError, match=r"dynamic dimension\(s\) at axis 1"):
        convert.input_specs(load.load_model(tmp_path / "dyn.keras"))


def test_calibration_shape_is_checked(models, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((5, 11), np.float32))
    specs = convert.input_specs(load.load_model(models["mlp"].source))
    with pytest.raises(TinygenError, match=r"expects samples of shape \(10,\)"):
        calibration.load_samples(bad, specs)


def test_calibration_rejects_nan(tmp_path):
    bad = tmp_path / "nan.npy"
    arr = np.zeros((4, 3), np.float32)
    arr[1, 2] = np.nan
    np.save(bad, arr)
    with pytest.raises(TinygenError, match="NaN or infinite"):
        calibration.load_samples(bad, [calibration.InputSpec("x", (1, 3))])


def test_embedding_converts_to_one_gather_with_integer_indices(tmp_path):
    """Keras 3's Embedding wraps negative indices with LESS/ADD/SELECT, and no pinned TFLite-Micro
    has SELECT: tinygen converts it as one GATHER. The indices input stays int32 (quantized to
    int8 they would look up other rows), and the outputs are Keras's for every valid index."""
    import keras
    from tinygen.check.golden import generated_input
    from tinygen.model.tflm_host import HostRuntime
    from tinygen.output.project import write_project
    from tinygen.pipeline import prepare

    keras.utils.set_random_seed(3)
    ids = keras.Input((6,), dtype="int32")
    model = keras.Model(ids, keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Embedding(20, 4)(ids))))
    model.save(tmp_path / "embed.keras")
    rows = np.random.default_rng(3).integers(0, 20, (40, 6))
    np.save(tmp_path / "ids.npy", rows.astype(np.float32))  # as users often store them
    loaded = load.load_model(tmp_path / "embed.keras")
    samples = calibration.load_samples(tmp_path / "ids.npy", convert.input_specs(loaded))

    exact = convert.convert(loaded, "none", None)
    report = analyze(exact)
    assert report.inputs[0].dtype == "INT32" and "GATHER" in report.ops
    assert not {"SELECT", "SELECT_V2", "CAST", "LESS"} & set(report.ops)
    with HostRuntime(exact) as runtime:
        got = runtime.run(1 << 16, [rows.astype(np.int32)], 1)[0]
    np.testing.assert_allclose(got.reshape(40, 3), model.predict(rows, verbose=0), rtol=1e-5, atol=1e-6)

    quantized = tmp_path / "embed_int8.tflite"
    quantized.write_bytes(convert.convert(loaded, "int8", samples))
    assert analyze(quantized.read_bytes()).inputs[0].dtype == "INT32"
    golden = prepare(quantized, "esp-idf", calibration_path=tmp_path / "ids.npy").golden
    assert golden.inputs[0].dtype == np.int32 and set(np.unique(golden.inputs[0])) <= set(rows.ravel())
    # without data the self-test's made-up indices stay within the table's 20 rows, stored or
    # generated on the device (as the firmware does: the hash modulo kGeneratedRows)
    made_up = prepare(quantized, "esp-idf").golden.inputs[0]
    assert made_up.dtype == np.int32 and made_up.min() >= 0 and made_up.max() < 20 and len(np.unique(made_up)) > 5
    generated = prepare(quantized, "esp-idf", golden_bytes=16)
    assert generated.golden.layout.generated
    seed, hashed = generated.golden.seeds[0], generated.golden.inputs[0][0]
    np.testing.assert_array_equal(hashed, generated_input(generated.report, 0, seed))
    assert hashed.min() >= 0 and hashed.max() < 20
    core = (write_project(generated, "embed", tmp_path / "out").rendered.path / "main" / "tinygen_model.cpp").read_text()
    assert "kGeneratedRows[] = {20u}" in core and "h % kGeneratedRows[index]" in core


def test_upsampling1d_converts_to_a_resize_every_board_runs(tmp_path):
    """Keras 3's UpSampling1D repeats steps with TILE, which no pinned TFLite-Micro has: tinygen
    converts it as a nearest-neighbour resize of the steps (RESHAPE, RESIZE_NEAREST_NEIGHBOR,
    RESHAPE), which computes Keras's outputs, and the int8 model is accepted on every target."""
    import keras
    from tinygen.model.tflm_host import HostRuntime
    from tinygen.pipeline import prepare

    keras.utils.set_random_seed(4)
    steps = keras.Input((10, 3))
    upsampled = keras.layers.UpSampling1D(3)(keras.layers.Conv1D(4, 3, padding="same")(steps))
    model = keras.Model(steps, keras.layers.Conv1D(2, 3)(upsampled))
    model.save(tmp_path / "up1d.keras")
    x = np.random.default_rng(2).normal(size=(8, 10, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    loaded = load.load_model(tmp_path / "up1d.keras")

    exact = convert.convert(loaded, "none", None)
    assert "RESIZE_NEAREST_NEIGHBOR" in analyze(exact).ops and "TILE" not in analyze(exact).ops
    with HostRuntime(exact) as runtime:
        got = np.stack([runtime.run(1 << 16, [x[k:k + 1]], 1)[0] for k in range(len(x))]).reshape(8, 28, 2)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

    quantized = tmp_path / "up1d_int8.tflite"
    quantized.write_bytes(convert.convert(loaded, "int8", calibration.load_samples(tmp_path / "x.npy",
                                                                                  convert.input_specs(loaded))))
    for target in ("arduino", "esp-idf", "zephyr"):
        assert prepare(quantized, target).arena.arena_bytes > 0, target


def test_made_up_indices_a_gather_reads_through_another_operator_ask_for_data(tmp_path):
    """Indices that reach a GATHER through another operator (here x + 1) cannot be kept in
    range by tinygen: random int32 values overrun the table, and the error says to pass real
    inputs."""
    import tensorflow as tf

    from tinygen.pipeline import prepare

    class Shifted(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 6], tf.int32)])
        def lookup(self, ids):
            return tf.gather(tf.constant(np.arange(40, dtype=np.float32).reshape(20, 2)), ids + 1)

    module = Shifted()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.lookup.get_concrete_function()], module)
    (tmp_path / "shifted.tflite").write_bytes(converter.convert())
    assert {"ADD", "GATHER"} <= set(analyze((tmp_path / "shifted.tflite").read_bytes()).ops)
    with pytest.raises(TinygenError) as refused:
        prepare(tmp_path / "shifted.tflite", "esp-idf")
    assert "made up at random" in refused.value.message and "--calibration-data" in refused.value.hint
    np.save(tmp_path / "ids.npy", np.arange(12, dtype=np.float32).reshape(2, 6))
    assert prepare(tmp_path / "shifted.tflite", "esp-idf", calibration_path=tmp_path / "ids.npy").golden.count >= 1
