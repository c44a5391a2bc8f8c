"""Per-layer cost (generator/layers.py) against values worked out by hand.

Tiny Keras models are built and converted once (the real TFLite converter), then each layer's
MACs (or element operations) and weight bytes are checked against arithmetic written out here
from the layer's shapes and dtypes; the memory column against the memory plan; `inspect --json`
against the library.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tinygen.cli import cli
from tinygen.model.analyze import analyze
from tinygen.model.layers import LayerRow, layer_table, model_cost, while_trips
from tinygen.pipeline import prepare

# Published models (not in the repository; their cases skip without them), as bench/run.py finds them.
CORPUS = Path(os.environ.get("CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
SHIPPED = Path(__file__).resolve().parent / "data" / "shapes_cnn_int8.tflite"  # examples/ model, int8

INT8, INT32, FLOAT32 = 1, 4, 4  # bytes per element


def _build(folder: Path) -> dict[str, Path]:
    """Converts each tiny model once; name -> .tflite path."""
    import keras
    import tensorflow as tf
    import tf_keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(0)
    L = keras.layers

    # Branches from one 9x9x4 image and one 12-vector, each branch one layer under test.
    image = keras.Input((9, 9, 4), batch_size=1, name="image")
    vector = keras.Input((12,), batch_size=1, name="vector")
    a = L.Conv2D(5, 1, name="a")(image)
    b = L.Conv2D(5, 1, name="b")(image)
    branches = keras.Model([image, vector], [
        L.Conv2D(8, 3, padding="valid", name="conv_valid")(image),
        L.Conv2D(6, 3, padding="same", name="conv_same")(image),
        L.Conv2D(5, 3, strides=2, padding="same", name="conv_stride2")(image),
        L.Conv2D(3, 3, dilation_rate=2, padding="valid", name="conv_dilated")(image),
        L.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise")(image),
        L.AveragePooling2D(3, strides=2, name="avg")(image),
        L.MaxPooling2D(2, strides=1, name="max")(image),
        # non-zero bias: the converter drops an all-zero Dense bias
        L.Dense(7, bias_initializer="ones", name="dense")(vector),
        L.Add(name="add")([a, b]),
        L.Multiply(name="mul")([a, b]),
    ])

    # A chain whose memory plan is worked out by hand below.
    chain = keras.Sequential([
        keras.Input((8, 8, 2), batch_size=1), L.Conv2D(8, 3, padding="same"), L.Conv2D(16, 3, padding="same"),
        L.MaxPooling2D(2), L.Flatten(), L.Dense(3)])

    def convert(model, int8: bool) -> bytes:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if int8:
            def representative():
                for _ in range(8):
                    yield {i.name: rng.uniform(-1, 1, (1, *i.shape[1:])).astype(np.float32) for i in model.inputs}
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        return converter.convert()

    # Keras 3's LSTM converts to a WHILE loop; tf_keras's carries the annotation the converter
    # fuses into UNIDIRECTIONAL_SEQUENCE_LSTM. Fixed batch 2, 5 time steps, 3 features, 6 units.
    lstm = tf_keras.Sequential([tf_keras.layers.InputLayer((5, 3), batch_size=2), tf_keras.layers.LSTM(6)])
    # Keras 3's own LSTM: a WHILE over the 5 steps, its cell in the loop's body.
    looped = keras.Sequential([keras.Input((5, 3), batch_size=1), L.LSTM(6)])
    made = {"branches_int8": convert(branches, True), "branches_float": convert(branches, False),
            "chain_float": convert(chain, False),
            "lstm_float": tf.lite.TFLiteConverter.from_keras_model(lstm).convert(),
            "lstm_while_float": convert(looped, False)}
    paths = {}
    for name, data in made.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


@pytest.fixture(scope="session")
def layer_models(tmp_path_factory) -> dict[str, Path]:
    return _build(tmp_path_factory.mktemp("layer_models"))


_prepared: dict = {}


def prepared(path: Path):
    """The model as `inspect` prepares it for the default board (esp-idf/esp32s3), once."""
    if path not in _prepared:
        _prepared[path] = prepare(path, "esp-idf", with_golden=False)
    return _prepared[path]


def rows_of(path: Path) -> list[LayerRow]:
    p = prepared(path)
    return layer_table(p.report, p.arena.simulation)


def total_macs(path: Path) -> int:
    return model_cost(analyze(path.read_bytes())).macs


def the(rows: list[LayerRow], op: str, output_shape: list[int]) -> LayerRow:
    found = [r for r in rows if r.op == op and r.output_shape == output_shape]
    assert len(found) == 1, f"{op} {output_shape}: {[(r.op, r.output_shape) for r in rows]}"
    return found[0]


# (op, output shape, MACs, element ops, int8 weight bytes, float32 weight bytes), each from the
# layer's definition on the 1x9x9x4 image (or the 1x12 vector).
BRANCH_CASES = [
    ("conv valid", "CONV_2D", [1, 7, 7, 8],
     # 7x7 output (9 - 3 + 1, padding valid) * 3x3 window * 4 in-channels * 8 filters
     7 * 7 * 3 * 3 * 4 * 8, 0,
     8 * 3 * 3 * 4 * INT8 + 8 * INT32,  # filter [8,3,3,4] int8 + bias [8] int32
     8 * 3 * 3 * 4 * FLOAT32 + 8 * FLOAT32),
    ("conv same", "CONV_2D", [1, 9, 9, 6],
     # 9x9 output (padding same, stride 1) * 3x3 window * 4 in-channels * 6 filters
     9 * 9 * 3 * 3 * 4 * 6, 0,
     6 * 3 * 3 * 4 * INT8 + 6 * INT32, 6 * 3 * 3 * 4 * FLOAT32 + 6 * FLOAT32),
    ("conv stride 2", "CONV_2D", [1, 5, 5, 5],
     # 5x5 output (ceil(9 / 2), padding same, stride 2) * 3x3 window * 4 in-channels * 5 filters
     5 * 5 * 3 * 3 * 4 * 5, 0,
     5 * 3 * 3 * 4 * INT8 + 5 * INT32, 5 * 3 * 3 * 4 * FLOAT32 + 5 * FLOAT32),
    ("conv dilation 2", "CONV_2D", [1, 5, 5, 3],
     # 5x5 output (the 3x3 window dilated 2 spans 5: 9 - 5 + 1, valid) * 3x3 taps * 4 in-channels * 3 filters
     5 * 5 * 3 * 3 * 4 * 3, 0,
     3 * 3 * 3 * 4 * INT8 + 3 * INT32, 3 * 3 * 3 * 4 * FLOAT32 + 3 * FLOAT32),
    ("depthwise multiplier 2", "DEPTHWISE_CONV_2D", [1, 7, 7, 8],
     # 7x7 output (valid) * 8 channels (4 inputs * multiplier 2) * 3x3 window, one input channel each
     7 * 7 * 8 * 3 * 3, 0,
     1 * 3 * 3 * 8 * INT8 + 8 * INT32,  # filter [1,3,3,8] + bias [8]
     1 * 3 * 3 * 8 * FLOAT32 + 8 * FLOAT32),
    ("1x1 conv", "CONV_2D", [1, 9, 9, 5],  # two of them (a, b): checked separately below
     9 * 9 * 1 * 1 * 4 * 5, 0, 5 * 4 * INT8 + 5 * INT32, 5 * 4 * FLOAT32 + 5 * FLOAT32),
    ("fully connected", "FULLY_CONNECTED", [1, 7],
     # 7 outputs * 12 inputs
     7 * 12, 0,
     7 * 12 * INT8 + 7 * INT32,  # weights [7,12] int8 + bias [7] int32
     7 * 12 * FLOAT32 + 7 * FLOAT32),
    ("average pool", "AVERAGE_POOL_2D", [1, 4, 4, 4],
     # 4x4x4 output ((9 - 3) // 2 + 1, valid) * 3x3 window, no MACs, no weights
     0, 4 * 4 * 4 * 3 * 3, 0, 0),
    ("max pool", "MAX_POOL_2D", [1, 8, 8, 4],
     # 8x8x4 output (9 - 2 + 1, stride 1) * 2x2 window
     0, 8 * 8 * 4 * 2 * 2, 0, 0),
    ("add", "ADD", [1, 9, 9, 5], 0, 9 * 9 * 5, 0, 0),  # one operation per output element
    ("mul", "MUL", [1, 9, 9, 5], 0, 9 * 9 * 5, 0, 0),
]


@pytest.mark.parametrize("quantization", ["int8", "float"])
@pytest.mark.parametrize("case, op, shape, macs, ops, int8_bytes, float_bytes", BRANCH_CASES,
                         ids=[c[0] for c in BRANCH_CASES])
def test_layer_macs_ops_and_weight_bytes(layer_models, quantization, case, op, shape, macs, ops,
                                         int8_bytes, float_bytes):
    rows = [r for r in rows_of(layer_models[f"branches_{quantization}"]) if r.op == op and r.output_shape == shape]
    assert len(rows) == (2 if case == "1x1 conv" else 1), [(r.op, r.output_shape) for r in rows]
    for row in rows:
        assert (row.macs, row.ops) == (macs, ops)
        assert row.weight_bytes == (int8_bytes if quantization == "int8" else float_bytes)


def test_convolution_options_are_the_ones_hand_worked(layer_models):
    """The converter kept each convolution as intended (padding, stride, dilation, multiplier),
    so the hand-worked values above count what they say."""
    report = analyze(layer_models["branches_int8"].read_bytes())
    graph = report.tensors[0]
    options = {(op.op, tuple(graph[op.outputs[0]].shape)): op.options for op in report.operators}
    SAME, VALID = 0, 1
    assert options["CONV_2D", (1, 7, 7, 8)]["padding"] == VALID
    assert options["CONV_2D", (1, 9, 9, 6)]["padding"] == SAME
    assert (options["CONV_2D", (1, 5, 5, 5)]["strideH"], options["CONV_2D", (1, 5, 5, 5)]["padding"]) == (2, SAME)
    dilated = options["CONV_2D", (1, 5, 5, 3)]
    assert (dilated["dilationHFactor"], dilated["dilationWFactor"], dilated["padding"]) == (2, 2, VALID)
    assert options["DEPTHWISE_CONV_2D", (1, 7, 7, 8)]["depthMultiplier"] == 2
    assert sorted(report.ops) == ["ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                  "MAX_POOL_2D", "MUL"]
    assert report.quantization == "int8"


def test_lstm_is_fused_and_counts_four_gates_per_step(layer_models):
    rows = rows_of(layer_models["lstm_float"])
    (lstm,) = [r for r in rows if r.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    # 5 time steps * batch 2 * 4 gates * 6 units * (3 inputs + 6 recurrent)
    assert lstm.macs == 5 * 2 * 4 * 6 * (3 + 6)
    # input weights 4 x [6,3], recurrent weights 4 x [6,6], gate biases 4 x [6], all float32
    assert lstm.weight_bytes == (4 * 6 * 3 + 4 * 6 * 6 + 4 * 6) * FLOAT32
    assert lstm.output_shape == [2, 5, 6]
    # the last step's slice: no MACs
    assert [r.op for r in rows] == ["UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE"]
    assert rows[1].macs == 0


def test_a_loop_counts_its_body_once_per_step(layer_models):
    """Keras 3's LSTM converts to a WHILE whose body holds the cell: the WHILE's row carries the
    body's work once per step (its trip count read from the loop's counter and bound), the
    cell's weights, and an operator for each one the interpreter invokes."""
    report = analyze(layer_models["lstm_while_float"].read_bytes())
    (loop,) = [op for op in report.operators if op.op == "WHILE"]
    assert while_trips(report, loop) == 5
    (row,) = [r for r in rows_of(layer_models["lstm_while_float"]) if r.op == "WHILE"]
    assert row.macs == 5 * 4 * 6 * (3 + 6)  # the fused LSTM's count, for batch 1
    # input weights [24,3], recurrent [24,6] and bias [24] float32, plus the loop's small constants
    # (shapes, axes, the counters' steps and bounds)
    cell = (4 * 6 * 3 + 4 * 6 * 6 + 4 * 6) * FLOAT32
    assert cell <= row.weight_bytes <= cell + 128
    body = sum(op.subgraph == loop.options["bodySubgraphIndex"] for op in report.operators)
    cond = sum(op.subgraph == loop.options["condSubgraphIndex"] for op in report.operators)
    assert row.work.layers == 1 + 5 * body + 6 * cond


# MACs of the whole branches model, hand-added from BRANCH_CASES:
BRANCHES_MACS = (7 * 7 * 3 * 3 * 4 * 8 + 9 * 9 * 3 * 3 * 4 * 6 + 5 * 5 * 3 * 3 * 4 * 5 + 5 * 5 * 3 * 3 * 4 * 3
                 + 7 * 7 * 8 * 3 * 3 + 2 * 9 * 9 * 4 * 5 + 7 * 12)  # = 45,660


@pytest.mark.parametrize("name, expected", [
    ("branches_int8", BRANCHES_MACS), ("branches_float", BRANCHES_MACS),
    ("lstm_float", 5 * 2 * 4 * 6 * (3 + 6)),
    # conv 8x8x8 from 3x3x2, conv 8x8x16 from 3x3x8, dense 3 from 4*4*16 = 256
    ("chain_float", 8 * 8 * 8 * 3 * 3 * 2 + 8 * 8 * 16 * 3 * 3 * 8 + 3 * 256)])
def test_model_macs_are_the_sum_of_the_layers(layer_models, name, expected):
    rows = rows_of(layer_models[name])
    assert total_macs(layer_models[name]) == sum(r.macs for r in rows) == expected


def peak_property(rows: list[LayerRow], simulation) -> None:
    """The memory column's peak is the memory plan's head: the rows at the head are exactly the
    operators during which a buffer reaching it is alive (computed here from the plan's own
    offsets), and the rows marked peak are those of them with the most memory live (layers.py:
    the layers that set the arena's head)."""
    plan = simulation.plan
    head = simulation.head_bytes
    assert head > 0
    assert max(r.head_bytes for r in rows) == head
    at_head = set()
    for offset, buffer in zip(plan.offsets, plan.buffers):
        if offset + buffer.size == head:
            at_head |= set(range(buffer.first, buffer.last + 1))
    assert {r.index for r in rows if r.head_bytes == head} == at_head != set()
    most = max(rows[i].live_bytes for i in at_head)
    assert {r.index for r in rows if r.peak} == {i for i in at_head if rows[i].live_bytes == most}
    for r in rows:
        # buffers alive together never overlap, so they fit under the highest offset in use
        assert 0 < r.live_bytes <= r.head_bytes <= head


@pytest.mark.parametrize("name", ["branches_int8", "branches_float", "chain_float", "lstm_float"])
def test_peak_is_the_memory_plan_head_on_tiny_models(layer_models, name):
    p = prepared(layer_models[name])
    peak_property(layer_table(p.report, p.arena.simulation), p.arena.simulation)


def test_memory_column_of_a_chain_worked_by_hand(layer_models):
    """float32 chain 8x8x2 -> conv 8x8x8 -> conv 8x8x16 -> pool 4x4x16 -> flatten 256 -> dense 3.
    Greedy plan (largest first, lowest free offset among buffers alive at the same time):
    conv2 out 4096 B (ops 1-2) at 0; conv1 out 2048 B (ops 0-1) at 4096; pool out 1024 B (2-3)
    at 4096; flatten out 1024 B (3-4) at 0; input 512 B (op 0) at 0; dense out 12 -> 16 B (op 4)
    at 1024. Head 4096 + 2048 = 6144, reached while conv1's output (at 4096) is alive: ops 0
    and 1; op 1 has all 6144 B live (op 0 only 2560), so op 1 is the peak."""
    p = prepared(layer_models["chain_float"])
    rows = layer_table(p.report, p.arena.simulation)
    assert [r.op for r in rows] == ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert p.arena.simulation.head_bytes == 8 * 8 * 16 * FLOAT32 + 8 * 8 * 8 * FLOAT32 == 6144
    assert [r.head_bytes for r in rows] == [
        4096 + 2048,  # op 0: conv1's output at 4096..6144
        4096 + 2048,  # op 1: conv2's output at 0, conv1's at 4096
        4096 + 1024,  # op 2: pool output at 4096..5120
        4096 + 1024,  # op 3: pool output still there; flatten output at 0
        1024 + 16]    # op 4: flatten output at 0, dense output at 1024
    assert [r.live_bytes for r in rows] == [
        8 * 8 * 2 * 4 + 8 * 8 * 8 * 4,    # input + conv1 out
        8 * 8 * 8 * 4 + 8 * 8 * 16 * 4,   # conv1 out + conv2 out
        8 * 8 * 16 * 4 + 4 * 4 * 16 * 4,  # conv2 out + pool out
        4 * 4 * 16 * 4 * 2,               # pool out + flatten out
        256 * 4 + 16]                     # flatten out + dense out (12 B aligned to 16)
    assert [r.peak for r in rows] == [False, True, False, False, False]
    assert sum(r.scratch_bytes for r in rows) == 0  # float32: no esp-nn scratch


# Real published models (the corpus is not in the repository; CI skips these and relies on the
# tiny models above for the same properties).
REAL = ["mlperf_tiny_kws_ref_model_int8", "tflm_person_detect", "tflm_mnist_lstm_int8"]


def real_model(name: str) -> Path:
    path = SHIPPED if name == "shapes_cnn_int8" else CORPUS / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the published-model corpus is not in the repository)")
    return path


@pytest.mark.parametrize("name", REAL + ["shapes_cnn_int8"])
def test_peak_is_the_memory_plan_head_on_published_models(name):
    p = prepared(real_model(name))
    peak_property(layer_table(p.report, p.arena.simulation), p.arena.simulation)


@pytest.mark.parametrize("name, expected", [
    # data/latency.yaml's reference counts, which the latency calibration rests on
    ("mlperf_tiny_kws_ref_model_int8", 2_656_768), ("tflm_person_detect", 7_157_888),
    # LSTM: 28 steps * batch 1 * 4 gates * 20 units * (28 inputs + 20 recurrent); dense 10 x 560
    ("tflm_mnist_lstm_int8", 28 * 1 * 4 * 20 * (28 + 20) + 10 * 560),
    # conv 14x14x8 from 3x3x1, depthwise 5x5x8 * 3x3, 1x1 conv 5x5x16 from 8, dense 3 from 16
    ("shapes_cnn_int8", 14 * 14 * 8 * 3 * 3 * 1 + 5 * 5 * 8 * 3 * 3 + 5 * 5 * 16 * 8 + 3 * 16)])
def test_published_model_macs(name, expected):
    path = real_model(name)
    assert total_macs(path) == sum(r.macs for r in rows_of(path)) == expected


def test_published_model_layers_worked_by_hand():
    rows = rows_of(real_model("mlperf_tiny_kws_ref_model_int8"))
    first = rows[0]
    assert (first.op, first.output_shape) == ("CONV_2D", [1, 25, 5, 64])
    # 25x5 output * 10x4 window * 1 in-channel * 64 filters; filter [64,10,4,1] int8 + bias [64] int32
    assert (first.macs, first.weight_bytes) == (25 * 5 * 64 * 10 * 4 * 1, 64 * 10 * 4 * INT8 + 64 * INT32)
    rows = rows_of(real_model("tflm_mnist_lstm_int8"))
    assert rows[0].op == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    # int8 weights 4 x [20,28] + 4 x [20,20], int32 gate biases 4 x [20]
    assert rows[0].weight_bytes == 4 * 20 * 28 * INT8 + 4 * 20 * 20 * INT8 + 4 * 20 * INT32
    fc = the(rows, "FULLY_CONNECTED", [1, 10])
    assert (fc.macs, fc.weight_bytes) == (10 * 560, 10 * 560 * INT8 + 10 * INT32)


@pytest.mark.parametrize("name", ["branches_int8", "lstm_float"])
def test_inspect_json_layers(layer_models, name):
    path = layer_models[name]
    result = CliRunner().invoke(cli, ["inspect", "--json", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    fields = {f.name for f in dataclasses.fields(LayerRow)}
    layers = data["layers"]
    assert len(layers) == len(analyze(path.read_bytes()).operators)
    for entry in layers:
        missing = (fields | {"estimated_ms"}) - set(entry)
        assert not missing, f"layer {entry.get('index')} lacks {sorted(missing)}"
    assert data["totals"]["macs"] == sum(e["macs"] for e in layers) == {
        "branches_int8": BRANCHES_MACS, "lstm_float": 5 * 2 * 4 * 6 * (3 + 6)}[name]
    # the same rows the library computes, in operator order
    assert [(e["op"], e["macs"], e["weight_bytes"], e["head_bytes"], e["peak"]) for e in layers] == [
        (r.op, r.macs, r.weight_bytes, r.head_bytes, r.peak) for r in rows_of(path)]
    # the layers' estimates share out the model's (esp32s3 has a published calibration)
    estimate = data["latency_estimate"]
    assert estimate is not None
    assert all(isinstance(e["estimated_ms"], float) and e["estimated_ms"] >= 0 for e in layers)
    # the layers' shares plus the per-inference overhead make the whole
    assert sum(e["estimated_ms"] for e in layers) + estimate["invoke_ms"] == pytest.approx(
        estimate["milliseconds"], abs=1e-3)


def test_shipped_example_model_worked_by_hand():
    """tests/data/shapes_cnn_int8.tflite: examples/shapes_cnn.keras converted to int8."""
    rows = rows_of(real_model("shapes_cnn_int8"))
    assert [(r.op, r.output_shape, r.macs, r.ops, r.weight_bytes) for r in rows] == [
        # 14x14 output (16 - 3 + 1) * 3x3 window * 1 in-channel * 8 filters; [8,3,3,1] int8 + [8] int32
        ("CONV_2D", [1, 14, 14, 8], 14 * 14 * 3 * 3 * 1 * 8, 0, 8 * 3 * 3 * 1 * INT8 + 8 * INT32),
        # 7x7x8 output * 2x2 window
        ("MAX_POOL_2D", [1, 7, 7, 8], 0, 7 * 7 * 8 * 2 * 2, 0),
        # 5x5x8 output * 3x3 window; [1,3,3,8] int8 + [8] int32
        ("DEPTHWISE_CONV_2D", [1, 5, 5, 8], 5 * 5 * 8 * 3 * 3, 0, 3 * 3 * 8 * INT8 + 8 * INT32),
        # 5x5x16 output * 1x1 window * 8 in-channels; [16,1,1,8] int8 + [16] int32
        ("CONV_2D", [1, 5, 5, 16], 5 * 5 * 16 * 8, 0, 16 * 8 * INT8 + 16 * INT32),
        # global average pool: one operation per input element (5x5x16); its axes [2] int32
        ("MEAN", [1, 16], 0, 5 * 5 * 16, 2 * INT32),
        # 3 outputs * 16 inputs; [3,16] int8 + [3] int32
        ("FULLY_CONNECTED", [1, 3], 3 * 16, 0, 3 * 16 * INT8 + 3 * INT32),
        ("SOFTMAX", [1, 3], 0, 3, 0)]
    # the first convolution sets the head on esp32s3: its input 16x16x1 and output 14x14x8 int8
    # and esp-nn's scratch for it (test_scratch.py checks those formulas), all 16-byte multiples
    assert rows[0].head_bytes == rows[0].live_bytes == 16 * 16 + 14 * 14 * 8 + rows[0].scratch_bytes
    assert rows[0].scratch_bytes > 0
    assert [r.peak for r in rows] == [True] + [False] * 6
