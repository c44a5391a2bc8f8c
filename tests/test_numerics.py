"""What the board computes (generator/numerics.py, rewrite.py, data/numerics.yaml): each board
gets the model in a form its pinned library computes as the host does, refusals name what
would be computed wrongly, and the self-test then compares exactly. Tiny Keras models with the
layers that need it are converted once with the real converter; every rewrite is run on the
real TFLite-Micro runtime against the model it replaces."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tinygen.boards.catalog import board_ids, get_board, target_names
from tinygen.check.golden import deterministic_inputs, first_mismatch, generated_input, lowbias32
from tinygen.errors import TinygenError
from tinygen.library import numerics, rewrite
from tinygen.library.pinned import kernel_families
from tinygen.model.analyze import analyze
from tinygen.model.tflm_host import HostRuntime
from tinygen.output.model_source import parse_byte_array
from tinygen.pipeline import prepare

ARENA = 1 << 22


def _convert(tf, model, samples: np.ndarray, int16: bool = False) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([samples[i:i + 1]] for i in range(len(samples)))
    if int16:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int16
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return bytes(converter.convert())


@pytest.fixture(scope="module")
def built(models, tmp_path_factory) -> dict[str, Path]:
    """name -> .tflite: 'layers' has a layer for most rewrites (a 5x5 stride-2 SAME convolution
    over 4 channels, a Conv2DTranspose with a fused ReLU, global average pooling, a per-channel
    Dense and a softmax over [2, 17]); 'layers_no_bias' the same with the first convolution's
    bias taken out (the converter always writes one; other tools do not); 'int16' an int16x8
    depthwise convolution; 'causal' a dilated causal Conv1D (a PAD of a rank-3 tensor)."""
    import keras
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("numerics")
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    L = keras.layers
    x = rng.uniform(0, 1, (64, 12, 12, 4)).astype(np.float32)
    inp = keras.Input((12, 12, 4), batch_size=1)  # static shapes, as tinygen converts
    biased = {"bias_initializer": "random_normal"}  # an untrained zero bias is dropped by the converter
    y = L.Conv2D(8, 5, strides=2, padding="same", **biased)(inp)
    y = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", **biased)(y)
    y = L.Conv2DTranspose(4, 3, strides=2, padding="same", **biased)(y)
    y = L.GlobalAveragePooling2D()(y)
    y = L.Reshape((2, 17))(L.Dense(34, **biased)(y))
    layers = keras.Model(inp, L.Softmax()(y))
    int16 = keras.Sequential([keras.Input((8, 8, 4), batch_size=1), L.DepthwiseConv2D(3, activation="relu"), L.Flatten(),
                              L.Dense(3)])
    paths = {"layers": folder / "layers.tflite", "int16": folder / "int16.tflite"}
    paths["layers"].write_bytes(_convert(tf, layers, x))
    graph = rewrite.Graph(paths["layers"].read_bytes())
    conv = next(op for op in graph.graph.operators if graph.op_name(op) == "CONV_2D")
    conv.inputs = list(conv.inputs[:2]) + [-1]
    paths["layers_no_bias"] = folder / "layers_no_bias.tflite"
    paths["layers_no_bias"].write_bytes(graph.pack())
    paths["int16"].write_bytes(_convert(tf, int16, rng.uniform(0, 1, (32, 8, 8, 4)).astype(np.float32), int16=True))
    causal = keras.Sequential([keras.Input((16, 3), batch_size=1),
                               L.Conv1D(8, 3, dilation_rate=2, padding="causal", **biased), L.Flatten(), L.Dense(2)])
    paths["causal"] = folder / "causal.tflite"
    paths["causal"].write_bytes(_convert(tf, causal, rng.uniform(-1, 1, (32, 16, 3)).astype(np.float32)))
    np.save(folder / "layers_cal.npy", x)
    paths["layers_cal"] = folder / "layers_cal.npy"
    return paths


def _run(tflite: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    with HostRuntime(tflite) as runtime:
        return runtime.run(ARENA, inputs, len(analyze(tflite).outputs))


def _applied(board_id: tuple[str, str], data: bytes) -> numerics.Adapted:
    return numerics.adapt(data, analyze(data), get_board(*board_id))


# --- the table --------------------------------------------------------------------------------

def test_every_library_and_kernel_family_has_its_rules():
    from tinygen.library.pinned import libraries

    data = numerics.table()
    assert set(data["libraries"]) == set(libraries())
    assert set(data["kernels"]) == set(kernel_families())
    for rule_id, rule in data["rules"].items():
        assert rule["when"] in numerics.CONDITIONS, rule_id
        assert rule["effect"] in ("wrong", "unsafe", "fails", "rounding"), rule_id
        assert rule["fix"] in rewrite.REWRITES or rule["fix"] in ("refuse", "tolerate"), rule_id
        assert re.search(r"@[0-9a-fv.]+|\bv\d+\.\d+\.\d+\b", rule["source"]), f"{rule_id} cites no version"
        if rule["fix"] == "refuse":
            assert rule.get("instead"), f"{rule_id}: a refusal says what would work"
        if rule["fix"] == "tolerate":
            assert rule["effect"] == "rounding" and rule["steps"] >= 1, rule_id
    used = {r for section in ("libraries", "kernels") for entry in data[section].values() for r in entry["rules"]}
    assert used == set(data["rules"]), "every rule belongs to a library or kernel family"


# --- per-channel Dense on Chirale ----------------------------------------------------------------

def test_per_channel_dense_is_requantized_for_chirale_only(models):
    data = models["mlp"].tflite["int8"].read_bytes()
    dense = [op for op in analyze(data).operators if op.op == "FULLY_CONNECTED"]
    assert all(analyze(data).tensors[0][op.inputs[1]].per_channel for op in dense)  # the converter's default

    chirale = _applied(("arduino", "nano33ble"), data)
    assert [a.rewrite for a in chirale.applied] == ["per_tensor_dense"] and chirale.exact
    for op in (o for o in chirale.report.operators if o.op == "FULLY_CONNECTED"):
        weights = chirale.report.tensors[0][op.inputs[1]]
        assert len(weights.scales) == 1 and weights.dtype == "INT8"
        bias = chirale.report.tensors[0][op.inputs[2]]
        assert bias.scales[0] == pytest.approx(chirale.report.tensors[0][op.inputs[0]].scale * weights.scales[0])
    esp = _applied(("esp-idf", "esp32s3"), data)
    assert esp.tflite == data and not esp.applied and esp.exact  # its library reads every scale

    # Requantizing costs a little accuracy, measured; the classes stay.
    x = np.load(models["mlp"].calibration)[:64]
    t = analyze(data).inputs[0]
    q = [np.clip(np.round(x / t.scale) + t.zero_point, -128, 127).astype(np.int8).reshape(64, 1, 10)]
    before, after = _run(data, q)[0].reshape(64, -1), _run(chirale.tflite, q)[0].reshape(64, -1)
    assert np.abs(before.astype(int) - after.astype(int)).max() <= 8
    assert (before.argmax(1) == after.argmax(1)).mean() >= 0.9


def test_keras_dense_layers_are_converted_per_tensor_for_chirale(models):
    """A Keras model for a Chirale board is converted with per-channel quantization of Dense
    layers off (TensorFlow's own switch), so nothing needs rewriting."""
    arduino = prepare(models["mlp"].source, "arduino", calibration_path=models["mlp"].calibration, with_golden=False)
    assert not arduino.adapted.applied
    dense = [arduino.report.tensors[0][op.inputs[1]] for op in arduino.report.operators if op.op == "FULLY_CONNECTED"]
    assert dense and all(len(t.scales) == 1 for t in dense)


# --- the other rewrites, each against the model it replaces -------------------------------------

def _findings(data: bytes, board_id: tuple[str, str], fix: str) -> list[int]:
    return sorted({f.op_index for f in numerics.findings(analyze(data), get_board(*board_id)) if f.rule.fix == fix})


@pytest.mark.parametrize("model, board_id, fix", [
    ("layers", ("arduino", "nano33ble"), "unfuse_activation"),  # Chirale ignores TRANSPOSE_CONV's fused ReLU
    ("layers", ("esp-idf", "esp32s3"), "softmax_as_rows"),  # esp-nn's softmax scratch is [dims[1]] long
    ("layers", ("esp-idf", "esp32s3"), "explicit_padding"),  # esp-nn issue 31 (odd SAME padding on the S3)
    ("layers_no_bias", ("esp-idf", "esp32"), "zero_bias"),  # esp-tflite-micro reads the bias unchecked
    ("causal", ("zephyr", "nrf52840dk"), "pad_as_rank4"),  # CMSIS-NN v7's PAD glue reads four dimensions
])
def test_exact_rewrites_compute_the_same_values(built, model, board_id, fix):
    data = built[model].read_bytes()
    operators = _findings(data, board_id, fix)
    assert operators, f"the test model should need {fix} on {board_id}"
    rewritten = rewrite.REWRITES[fix](data, operators)
    assert rewritten.exact
    report = analyze(rewritten.tflite)
    assert report.inputs[0].shape == analyze(data).inputs[0].shape
    assert not _findings(rewritten.tflite, board_id, fix), "the rewrite removes what it is for"
    inputs = deterministic_inputs(analyze(data), 16)
    for before, after in zip(_run(data, inputs), _run(rewritten.tflite, inputs)):
        np.testing.assert_array_equal(before, after)


def test_rewrites_change_the_model_as_said(built):
    data = built["layers"].read_bytes()
    s3 = _applied(("esp-idf", "esp32s3"), data).report
    softmax = next(op for op in s3.operators if op.op == "SOFTMAX")
    assert s3.tensors[0][softmax.inputs[0]].shape == [2, 17]  # dims[1] is the row: scratch fits
    conv = next(op for op in s3.operators if op.op == "CONV_2D")
    assert conv.options["padding"] == 1 and s3.tensors[0][conv.inputs[0]].shape == [1, 15, 15, 4]  # VALID after PAD
    no_bias = _applied(("esp-idf", "esp32"), built["layers_no_bias"].read_bytes()).report
    conv = next(op for op in no_bias.operators if op.op == "CONV_2D")
    assert len(conv.inputs) == 3 and conv.inputs[2] >= 0 and no_bias.tensors[0][conv.inputs[2]].dtype == "INT32"
    chirale = _applied(("arduino", "nano33ble"), data)
    transpose = next(op for op in chirale.report.operators if op.op == "TRANSPOSE_CONV")
    assert transpose.options["fusedActivationFunction"] == 0 and "RELU" in chirale.report.ops
    assert {"unfuse_activation", "per_tensor_dense"} <= {a.rewrite for a in chirale.applied}


def test_mean_over_the_image_rounds_on_chirale(models, tmp_path):
    """Chirale's MEAN truncates when input and output quantization are equal; tinygen runs it
    as an AVERAGE_POOL_2D, which rounds as the host's MEAN does."""
    data = models["depthwise"].tflite["int8"].read_bytes()  # GlobalAveragePooling2D -> MEAN
    report = analyze(data)
    mean = next(op for op in report.operators if op.op == "MEAN")
    same = report.tensors[0][mean.inputs[0]].scale == report.tensors[0][mean.outputs[0]].scale
    adapted = _applied(("arduino", "nano33ble"), data)
    if same:
        assert "mean_as_average_pool" in [a.rewrite for a in adapted.applied] and "MEAN" not in adapted.report.ops
        assert "AVERAGE_POOL_2D" in adapted.report.ops
    else:  # rescaled in the same step: Chirale rounds in float, a step apart at most
        assert [f.op for f in adapted.tolerated] == ["MEAN"] and not adapted.exact


# --- refusals and inspect ------------------------------------------------------------------------

def test_int16_kernels_chirale_lacks_are_refused(built):
    data = built["int16"].read_bytes()
    with pytest.raises(TinygenError, match="DEPTHWISE_CONV_2D: has no int16 kernel") as refused:
        prepare(built["int16"], "arduino", with_golden=False)
    assert "int8 model" in refused.value.hint
    assert not _applied(("esp-idf", "esp32s3"), data).refused  # esp-tflite-micro has int16 kernels
    inspected = prepare(built["int16"], "arduino", with_golden=False, allow_unsupported=True)
    assert inspected.unsupported is not None and "DEPTHWISE_CONV_2D" in inspected.unsupported.message


# --- golden vectors: exact where the board is, within their flash budget -------------------------

def test_golden_vectors_are_exact_on_an_exact_board(generate):
    _, prepared = generate("cnn", "arduino")
    assert prepared.adapted.exact and prepared.golden.tolerance_steps == [0]
    assert "bit for bit" in prepared.golden.selection


def test_large_inputs_are_generated_on_the_device(models, tmp_path):
    """When one stored input does not fit the budget, the firmware generates its inputs from a
    seed (the host generated the same values) and only seeds and outputs are stored."""
    from tinygen.output.project import write_project

    prepared = prepare(models["cnn"].tflite["int8"], "esp-idf", golden_bytes=64,
                       calibration_path=models["cnn"].calibration)
    layout = prepared.golden.layout
    assert layout.generated and layout.flash_bytes <= 64 and prepared.golden.seeds
    for k, seed in enumerate(prepared.golden.seeds):
        np.testing.assert_array_equal(prepared.golden.inputs[0][k], generated_input(prepared.report, 0, seed))
    assert prepared.emitted_bytes == prepared.report.model_bytes + layout.flash_bytes
    project = write_project(prepared, "gen", tmp_path).rendered.path
    source = (project / "main" / "golden_vectors.cpp").read_text()
    assert "g_golden_seeds[]" in source and "g_golden_input_0" not in source
    _check_generator_in_cpp((project / "main" / "tinygen_model.cpp").read_text(), prepared, tmp_path)


def _check_generator_in_cpp(core: str, prepared, tmp_path: Path) -> None:
    """The firmware's GoldenHash and int8 generator, compiled alone with g++, give the values
    the host used."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not on PATH")
    hash_fn = re.search(r"^uint32_t GoldenHash\(.*?^}\n", core, re.S | re.M).group(0)
    base = re.search(r"const uint32_t base = (.*?);", core).group(1).replace("static_cast<uint32_t>(index)", "0u")
    program = tmp_path / "hash.cpp"
    program.write_text("#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n" + hash_fn +
                       "int main(int argc, char** argv) {\n  uint32_t seed = strtoul(argv[1], 0, 0);\n"
                       f"  uint32_t n = strtoul(argv[2], 0, 0);\n  const uint32_t base = {base};\n"
                       "  for (uint32_t i = 0; i < n; ++i) printf(\"%d\\n\", (int)(int8_t)(GoldenHash(base + i) >> 24));\n}\n")
    subprocess.run(["g++", "-O2", "-Wall", "-Werror", str(program), "-o", str(tmp_path / "hash")], check=True)
    seed = prepared.golden.seeds[0]
    n = prepared.report.inputs[0].element_count
    out = subprocess.run([str(tmp_path / "hash"), str(seed), str(n)], capture_output=True, text=True, check=True)
    assert [int(v) for v in out.stdout.split()] == generated_input(prepared.report, 0, seed).reshape(-1).tolist()
    assert lowbias32(np.array([0, 1], dtype=np.uint32)).tolist()[0] == 0


def test_a_broken_deployment_fails_the_self_test(generate):
    """The self-test's comparison (mirrored by golden.first_mismatch) passes the model as
    emitted and fails it with corrupted weights, a wrong input scale or too small an arena."""
    _, prepared = generate("cnn", "esp-idf")
    golden, data = prepared.golden, prepared.tflite
    outputs = len(prepared.report.outputs)
    with HostRuntime(data) as runtime:
        assert first_mismatch(golden, runtime.run(prepared.arena.arena_min_bytes, golden.inputs, outputs)) is None
        with pytest.raises(TinygenError):  # the firmware's model_setup() fails the same way
            runtime.run(prepared.arena.arena_min_bytes - 256, golden.inputs, outputs)

    g = rewrite.Graph(data)
    weights = max((i for op in g.graph.operators for i in op.inputs[1:2]), key=lambda i: g.values(i, np.int8).size)
    corrupted = g.values(weights, np.int8)
    corrupted[::7] = np.bitwise_xor(corrupted[::7].view(np.uint8), 0x40).view(np.int8)
    g.store(weights, corrupted)
    faults = {"corrupted weights": g.pack()}
    g = rewrite.Graph(data)
    source = g.tensors[g.graph.inputs[0]].quantization
    source.scale = np.asarray(source.scale) * 1.25
    faults["wrong input scale"] = g.pack()
    for name, faulty in faults.items():
        with HostRuntime(faulty) as runtime:
            assert first_mismatch(golden, runtime.run(ARENA, golden.inputs, outputs)) is not None, name


# --- every board, as users run it -------------------------------------------------------------------

def test_inspect_shows_every_board_when_an_operator_is_missing(installed, built, tmp_path):
    """A model no pinned library can run (Keras 3's UpSampling2D as TILE, exported without
    tinygen) still gets its every-board table and JSON, each board naming the operator."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4, 4, 2), batch_size=1), keras.layers.UpSampling2D(2), keras.layers.Conv2D(2, 3)])
    home = tmp_path / "user"
    home.mkdir()
    x = np.random.default_rng(1).uniform(0, 1, (16, 4, 4, 2)).astype(np.float32)
    (home / "up.tflite").write_bytes(_convert(tf, model, x))
    shown = installed["light"].run("inspect", "up.tflite", cwd=home)
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert len(re.findall(r"no: lacks TILE", shown.stdout)) == sum(len(board_ids(t)) for t in target_names())
    assert "Keras layer 'up_sampling2d" in shown.stderr and "Resizing" in shown.stderr
    data = json.loads(installed["light"].run("inspect", "--json", "up.tflite", cwd=home).stdout)
    assert not data["deployable"]["ok"] and all("TILE" in row["unsupported"] for row in data["boards"])


def test_new_without_calibration_data_makes_a_float_project(installed, models, tmp_path):
    """The design card's own command: a Keras model and no sample file give a float32 project,
    with a note on what int8 would take."""
    home = tmp_path / "user"
    (home / "models").mkdir(parents=True)
    shutil.copy(models["mlp"].source, home / "models" / "mlp.keras")
    made = installed["full"].run("new", "--target", "esp-idf", "models/mlp.keras", cwd=home)
    assert made.returncode == 0, made.stderr
    assert "no --calibration-data, so the model was converted to float32" in made.stderr
    assert "int8 would take about" in made.stderr
    embedded = parse_byte_array((home / "mlp" / "main" / "model_data.cpp").read_text(), "g_model_data")
    assert analyze(embedded).quantization == "none"


def test_a_loop_body_is_checked_against_the_board_library(tmp_path):
    """Keras 3's LSTM (float) converts to a WHILE whose body counts its steps with an int32 ADD:
    Chirale_TensorFLowLite 2.0.0 has no int32 ADD (Invoke() fails on the emulated Cortex-M4), so
    every Chirale board refuses it, naming the operator inside the loop; esp-tflite-micro and
    Zephyr's module add int32, and take it."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4, 2), batch_size=1), keras.layers.LSTM(3)])
    path = tmp_path / "looped.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with pytest.raises(TinygenError) as refused:
        prepare(path, "arduino", with_golden=False)
    assert "cannot run this model" in str(refused.value) and "ADD (in the body of WHILE operator" in str(refused.value)
    assert "unroll=True" in refused.value.hint
    for target in ("esp-idf", "zephyr"):
        assert prepare(path, target, with_golden=False).adapted.exact, target


def test_upsampling2d_is_converted_to_resize_nearest_neighbor(installed, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(2, 1), keras.layers.UpSampling2D(2)])
    home = tmp_path / "user"
    home.mkdir()
    model.save(home / "up.keras")
    made = installed["full"].run("inspect", "--json", "--quantize", "none", "up.keras", cwd=home)
    assert made.returncode == 0, made.stderr
    assert "RESIZE_NEAREST_NEIGHBOR" in json.loads(made.stdout)["ops"]
    assert "TILE" not in json.loads(made.stdout)["ops"]
    assert "converted as Resizing" in made.stderr


@pytest.mark.parametrize("target", ["esp-idf", "arduino", "zephyr"])
def test_transpose_conv_models_generate_for_every_target(built, target):
    """TRANSPOSE_CONV's int32 scratch (4 B per output element) and per-channel arrays are in
    the memory plan, which matches the host runtime's (else prepare refuses)."""
    prepared = prepare(built["layers"], target, with_golden=False)
    requests = [r for r in prepared.arena.simulation.requests if r.op == "TRANSPOSE_CONV" and not r.persistent]
    outputs = [prepared.report.tensors[0][op.outputs[0]] for op in prepared.report.operators if op.op == "TRANSPOSE_CONV"]
    assert [r.bytes for r in requests] == [4 * t.element_count for t in outputs]
    assert prepared.arena.arena_bytes >= prepared.arena.simulation.head_bytes + prepared.arena.simulation.tail_bytes


@pytest.mark.parametrize("target, board, rewrites", [
    ("arduino", "nano33ble", ["requantized to one scale per layer", "fused activation run as its own operator"]),
    ("esp-idf", "esp32s3", ["softmax input reshaped to [rows, n]", "SAME padding done by a PAD"]),
    ("zephyr", "nrf52840dk", []),
])
def test_new_rewrites_for_the_board_as_users_run_it(installed, built, tmp_path, target, board, rewrites):
    """The installed command, from the user's folder: the project for each board holds the model
    as that board's library needs it, says what was rewritten and why, and keeps the golden
    vectors within --golden-bytes."""
    home = tmp_path / "user"
    home.mkdir()
    shutil.copy(built["layers"], home / "decoder.tflite")
    made = installed["light"].run("new", "--target", target, "--board", board, "--golden-bytes", "256",
                                  "decoder.tflite", cwd=home)
    assert made.returncode == 0, made.stderr
    for what in rewrites:
        assert what in made.stderr
    assert ("Rewrote the model" in made.stderr) == bool(rewrites)
    report = (home / "decoder" / "MODEL_REPORT.md").read_text()
    assert "## What the board computes" in report and "self-test against the host's golden outputs" in report
    golden = next((home / "decoder").rglob("golden_vectors.cpp")).read_text()
    assert "g_golden_seeds[]" in golden  # one 12x12x4 input does not fit 256 bytes: generated on the device


# --- the Helium and ESP32-P4 families' rules, on one-operator models (no TensorFlow) -------------

MVE = {"tflm_library": "zephyr-fcc760a", "kernels": "cmsis-nn-v7-mve"}
P4 = {"tflm_library": "esp-tflite-micro-1.4.0", "kernels": "esp-nn-esp32p4"}
SAME, VALID = 0, 1


def _one_op(op: str, shapes: list, out_shape: list, dtype: str = "INT8", dtypes: dict | None = None,
            per_channel: bool = False, **options):
    """A model of one operator over `shapes` (inputs; None: absent) -> out_shape. Input 1 is a
    constant int8 weight (per-channel if asked), input 2 an int32 bias, unless `dtypes` says."""
    from tinygen.model.analyze import ModelReport, OperatorInfo, TensorInfo

    kinds = {1: "INT8", 2: "INT32", **(dtypes or {})}
    tensors, inputs = [], []
    for i, shape in enumerate(shapes):
        if shape is None:
            inputs.append(-1)
            continue
        weights = i == 1 and per_channel
        tensors.append(TensorInfo(index=len(tensors), name=f"t{i}", shape=list(shape), dtype=kinds.get(i, dtype),
                                  scale=0.1, zero_point=0, is_constant=i in (1, 2), per_channel=weights,
                                  scales=[0.1, 0.2] if weights else [0.1]))
        inputs.append(tensors[-1].index)
    out = TensorInfo(index=len(tensors), name="out", shape=list(out_shape), dtype=dtype, scale=0.1, zero_point=0,
                     scales=[0.1])
    tensors.append(out)
    operator = OperatorInfo(op=op, custom_code=None, subgraph=0, inputs=inputs, outputs=[out.index],
                            options={"strideH": 1, "strideW": 1, **options})
    return ModelReport(model_bytes=0, sha256="0" * 64, schema_version=3, ops=[op], custom_ops=[], operators=[operator],
                       tensors=[tensors], inputs=[tensors[0]], outputs=[out], parameter_count=0, weights_bytes=0,
                       quantization="int8")


def _conv(in_shape, filter_shape, out_shape, **options):
    return _one_op("CONV_2D", [in_shape, filter_shape, [filter_shape[0]]], out_shape, **options)


def _depthwise(in_shape, filter_shape, out_shape, **options):
    return _one_op("DEPTHWISE_CONV_2D", [in_shape, filter_shape, [filter_shape[-1]]], out_shape, **options)


def _rules(report, board) -> list[tuple[str, str]]:
    return [(f.rule.id, f.rule.fix) for f in numerics.findings(report, board)]


# (rule, board, a layer it fires on, the fix, a layer it must not fire on)
NEW_FAMILY_RULES = [
    # CMSIS-NN v7.0.0 Helium: arm_convolve_1_x_n_s8.c:83-86, VALID leaving 2 columns ((10-5) % 3)
    ("cmsis-v7-mve-1xn-fails", MVE,
     _conv([1, 1, 10, 16], [8, 1, 5, 16], [1, 1, 2, 8], padding=VALID, strideW=3), "refuse",
     _conv([1, 1, 11, 16], [8, 1, 5, 16], [1, 1, 3, 8], padding=VALID, strideW=3)),  # (11-5) % 3 == 0
    # VALID leaving 1 column ((10-5) % 2): the last tap replaced by the zero point
    ("cmsis-v7-mve-1xn-valid-remainder", MVE,
     _conv([1, 1, 10, 16], [8, 1, 5, 16], [1, 1, 3, 8], padding=VALID, strideW=2), "refuse",
     _conv([1, 1, 10, 3], [8, 1, 5, 3], [1, 1, 3, 8], padding=VALID, strideW=2)),  # 2*3 % 4: generic path
    # SAME, kernel 5, stride 2, 9 columns (the analysis's example): PAD + VALID makes it fit
    ("cmsis-v7-mve-1xn-padded-edge", MVE,
     _conv([1, 1, 9, 16], [8, 1, 5, 16], [1, 1, 5, 8], padding=SAME, strideW=2), "explicit_padding",
     _conv([1, 1, 13, 16], [8, 1, 5, 16], [1, 1, 5, 8], padding=VALID, strideW=2)),  # what the PAD leaves
    # one input channel on one row: Prepare's stride is uninitialised (the measured M55 case)
    ("cmsis-v7-mve-depthwise-stride", MVE,
     _depthwise([1, 1, 9, 1], [1, 1, 3, 3], [1, 1, 5, 3], padding=SAME, strideW=2, depthMultiplier=3), "refuse",
     _depthwise([1, 4, 9, 1], [1, 1, 3, 3], [1, 4, 5, 3], padding=SAME, strideW=2, depthMultiplier=3)),
    # int8 SVDF: Prepare fails without KERNELS_OPTIMIZED_FOR_SPEED/SIZE
    ("cmsis-v7-mve-svdf-int8", MVE,
     _one_op("SVDF", [[1, 16], [8, 16], [8, 10], [2], [1, 80]], [1, 2], dtypes={2: "INT16", 3: "INT32", 4: "INT16"},
             rank=4), "refuse",
     _one_op("SVDF", [[1, 16], [8, 16], [8, 10], [2], [1, 80]], [1, 2], dtype="FLOAT32",
             dtypes={1: "FLOAT32", 2: "FLOAT32", 3: "FLOAT32"}, rank=4)),
    # the FC glue's 1x1 path with per-tensor weights (TFLITE_DCHECK_GE(index, 4))
    ("cmsis-v7-fc-1x1-dcheck", MVE,
     _one_op("FULLY_CONNECTED", [[1, 4, 16], [8, 16], [8]], [1, 4, 8]), "refuse",
     _one_op("FULLY_CONNECTED", [[1, 4, 16], [8, 16], [8]], [1, 4, 8], per_channel=True)),
    # esp-nn ESP32-P4: the tiled conv writes 16-channel rows past a scratch sized for 1 channel
    ("p4-conv-tiled-scratch", P4,
     _conv([1, 32, 32, 1], [8, 3, 3, 1], [1, 32, 32, 8], padding=SAME), "explicit_padding",
     # over the 32 KiB budget the size function's tiles (36,768 B) cover the kernel's (33,504 B,
     # esp_nn_p4_sizes.conv_runtime_need_p4_tiled)
     _conv([1, 200, 200, 1], [8, 3, 3, 1], [1, 200, 200, 8], padding=SAME)),
    # unpadded path, 2x2 stride 2 on an odd height: window overhangs by one row, kh != 3
    ("p4-conv-bottom-row", P4,
     _conv([1, 9, 9, 8], [8, 2, 2, 8], [1, 5, 5, 8], padding=SAME, strideH=2, strideW=2), "explicit_padding",
     _conv([1, 9, 9, 8], [8, 3, 3, 8], [1, 5, 5, 8], padding=SAME, strideH=2, strideW=2)),  # kh 3: right
    ("p4-depthwise-over-256-channels", P4,
     _depthwise([1, 4, 4, 384], [1, 3, 3, 384], [1, 4, 4, 384], padding=SAME, depthMultiplier=1), "refuse",
     _depthwise([1, 4, 4, 256], [1, 3, 3, 256], [1, 4, 4, 256], padding=SAME, depthMultiplier=1)),
    ("p4-grouped-conv", P4,
     _conv([1, 8, 8, 16], [16, 3, 3, 8], [1, 8, 8, 16], padding=SAME), "refuse",
     _conv([1, 8, 8, 16], [16, 3, 3, 16], [1, 8, 8, 16], padding=SAME)),
    # inherited from the other esp-nn families
    ("esp-softmax-scratch", P4, _one_op("SOFTMAX", [[1, 1, 1, 10]], [1, 1, 1, 10]), "softmax_as_rows",
     _one_op("SOFTMAX", [[1, 10]], [1, 10])),
    ("esp-conv-without-bias", P4,
     _one_op("CONV_2D", [[1, 8, 8, 16], [16, 3, 3, 16], None], [1, 8, 8, 16], padding=SAME), "zero_bias",
     _conv([1, 8, 8, 16], [16, 3, 3, 16], [1, 8, 8, 16], padding=SAME)),
]


@pytest.mark.parametrize("rule, board, matching, fix, other", NEW_FAMILY_RULES, ids=[c[0] for c in NEW_FAMILY_RULES])
def test_helium_and_p4_rules_fire_where_they_say(rule, board, matching, fix, other):
    assert (rule, fix) in _rules(matching, board)
    assert rule not in [r for r, _ in _rules(other, board)]


def test_helium_and_p4_rules_are_their_familys_own():
    """The layers the new rules fire on compute as the reference on the families without the
    defect (CMSIS-NN's DSP path, esp-nn's ESP32-S3 kernels), but for rules those share."""
    dsp = {"tflm_library": "zephyr-fcc760a", "kernels": "cmsis-nn-v7-dsp"}
    s3 = {"tflm_library": "esp-tflite-micro-1.4.0", "kernels": "esp-nn-esp32s3"}
    for rule, board, matching, _, _ in NEW_FAMILY_RULES:
        if rule.startswith("cmsis-v7-mve"):
            assert _rules(matching, dsp) == [], rule
        if rule.startswith("p4-"):
            assert rule not in [r for r, _ in _rules(matching, s3)], rule
    # the Helium family keeps the DSP family's rules that do not depend on the path
    data = numerics.table()["kernels"]
    kept = set(data["cmsis-nn-v7-dsp"]["rules"]) - set(data["cmsis-nn-v7-mve"]["rules"])
    assert not kept
    grouped = _conv([1, 1, 9, 16], [8, 1, 3, 8], [1, 1, 9, 8], padding=SAME)
    assert _rules(grouped, MVE) == [("cmsis-v7-grouped-conv", "refuse")]


def test_pad_rank_on_cmsis_nn_v7_is_rewritten_below_4_and_refused_above():
    """CMSIS-NN v7's int8 PAD glue reads four dimensions whatever the rank: below 4 tinygen runs
    the same tensor as 4-D, above 4 it refuses; 4-D and float PADs are the reference's."""
    dsp = {"tflm_library": "zephyr-fcc760a", "kernels": "cmsis-nn-v7-dsp"}
    paddings = {1: "INT32"}
    assert _rules(_one_op("PAD", [[1, 16, 3], [3, 2]], [1, 20, 3], dtypes=paddings), dsp) == \
        [("cmsis-v7-pad-rank", "pad_as_rank4")]
    assert _rules(_one_op("PAD", [[1, 2, 4, 4, 3], [5, 2]], [1, 2, 6, 4, 3], dtypes=paddings), dsp) == \
        [("cmsis-v7-pad-rank-above-4", "refuse")]
    assert _rules(_one_op("PAD", [[1, 1, 16, 3], [4, 2]], [1, 1, 20, 3], dtypes=paddings), dsp) == []
    assert _rules(_one_op("PAD", [[1, 16, 3], [4, 2]], [1, 20, 3], dtype="FLOAT32", dtypes=paddings), dsp) == []
