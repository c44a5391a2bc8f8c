"""The core promises of issue 2, checked on real converted models with the real runtimes."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tinygen.library.resolver import load_table, resolve
from tinygen.memory.arena import ALIGNMENT, measure_arena_min
from tinygen.model.analyze import analyze
from tinygen.model.tflm_host import HostRuntime
from tinygen.output.model_source import parse_byte_array

MODELS = ["mlp", "cnn", "depthwise"]


@pytest.mark.parametrize("model", MODELS)
def test_emitted_resolver_registers_exactly_the_model_ops(generate, model):
    project, prepared = generate(model, "esp-idf")
    ops_cpp = (project / "main" / "model_ops.cpp").read_text()
    ops_h = (project / "main" / "model_ops.h").read_text()
    registered = re.findall(r"resolver\.(Add\w+)\(\)", ops_cpp)
    table = load_table(prepared.board["op_table"])
    expected = sorted(table.builtin[op] for op in analyze(prepared.tflite).ops)
    assert sorted(registered) == expected
    assert len(set(registered)) == len(registered)
    n = int(re.search(r"kModelOpCount = (\d+);", ops_h).group(1))
    assert n == len(expected) == prepared.resolution.size


@pytest.mark.parametrize("model", MODELS)
def test_emitted_array_is_exactly_the_tflite_bytes(generate, models, model):
    project, prepared = generate(model, "esp-idf")
    source = (project / "main" / "model_data.cpp").read_text()
    assert parse_byte_array(source, "g_model_data") == models[model].tflite["int8"].read_bytes()
    assert "g_model_data_len = sizeof(g_model_data);" in source
    header = (project / "main" / "tinygen_model.h").read_text()
    assert f"kModelBytes = {len(prepared.tflite)};" in header  # checked by a static_assert in model_data.cpp
    assert "alignas(16) const unsigned char g_model_data[]" in source
    header = (project / "main" / "model_data.h").read_text()
    assert prepared.report.sha256 in header
    assert all(op in header for op in prepared.report.ops)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("quantize", ["int8", "none"])
def test_arena_is_the_smallest_that_works(models, model, quantize):
    data = models[model].tflite[quantize].read_bytes()
    with HostRuntime(data) as runtime:
        arena = measure_arena_min(runtime)
        assert arena % ALIGNMENT == 0
        assert runtime.try_arena(arena)["ok"], "computed arena must allocate and invoke"
        # Independent check of minimality: the next 16-byte step down must fail...
        assert not runtime.try_arena(arena - ALIGNMENT)["ok"]
        # ...and a linear scan over the last 5% finds nothing smaller that works.
        for size in range(arena - ALIGNMENT, int(arena / 1.05) - 1, -ALIGNMENT):
            assert not runtime.try_arena(size)["ok"], f"{size} works but {arena} was chosen"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("quantize", ["int8", "none"])
def test_memory_plan_is_the_runtimes(models, model, quantize):
    """tinygen's port of the greedy memory planner, with the reference kernels' scratch, gives
    the head the host runtime's own allocator reports (the simulation's foundation)."""
    import re

    from tinygen.memory.planner import Buffer, align, plan, tensor_buffers
    from tinygen.memory.scratch import requests

    data = models[model].tflite[quantize].read_bytes()
    report = analyze(data)
    scratch = [Buffer(align(r.bytes), r.op_index, r.op_index, "") for r in requests(report, "reference")
               if not r.persistent]
    with HostRuntime(data) as runtime:
        log = runtime.try_arena(1 << 24, allocations=True)["log"]
    host_head = int(re.search(r"Arena allocation head (\d+) bytes", log).group(1))
    assert plan(tensor_buffers(report) + scratch).head_bytes == host_head


@pytest.mark.parametrize("model", MODELS)
def test_tflm_matches_tflite_interpreter_within_one_step(models, model):
    import tensorflow as tf

    data = models[model].tflite["int8"].read_bytes()
    report = analyze(data)
    samples = np.load(models[model].calibration)[:8]
    inp, out = report.inputs[0], report.outputs[0]
    q = np.clip(np.round(samples / inp.scale) + inp.zero_point, -128, 127).astype(np.int8)
    q = q.reshape(len(samples), *inp.shape)

    # TFLite's reference kernels: TFLite-Micro's kernels derive from them. (The default
    # XNNPACK kernels round differently, one step per layer, and deep models compound it.)
    interpreter = tf.lite.Interpreter(
        model_content=data, experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    expected = []
    for sample in q:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
        interpreter.invoke()
        expected.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())

    with HostRuntime(data) as runtime:
        got = runtime.run(measure_arena_min(runtime), [q], len(report.outputs))[0]
    diff = np.abs(got.astype(np.int32) - np.stack(expected).astype(np.int32))
    assert diff.max() <= 1, f"TFLM differs from TFLite by {diff.max()} steps (scale {out.scale})"


@pytest.mark.parametrize("model", MODELS)
def test_golden_vectors_reproduce_on_the_runtime(generate, models, model):
    project, prepared = generate(model, "esp-idf")
    golden = (project / "main" / "golden_vectors.cpp").read_text()
    report = prepared.report

    def values(name: str, dtype: str) -> np.ndarray:
        body = golden[golden.index(name + "[] = {"):]
        body = body[body.index("{") + 1: body.index("}")]
        return np.array([float(v.rstrip("f")) for v in body.replace("\n", " ").split(",") if v.strip()],
                        dtype=dtype)

    inputs = values("g_golden_input_0", report.inputs[0].numpy_dtype)
    expected = values("g_golden_output_0", report.outputs[0].numpy_dtype)
    count = prepared.golden.count
    with HostRuntime(prepared.tflite) as runtime:
        got = runtime.run(prepared.arena.arena_min_bytes, [inputs.reshape(count, *report.inputs[0].shape)],
                          len(report.outputs))[0]
    np.testing.assert_array_equal(got.reshape(-1), expected)
    # The golden inputs are calibration samples, quantized as the firmware's model_set_input()
    # does (C's roundf: halves away from zero).
    inp = report.inputs[0]
    steps = np.load(models[model].calibration).astype(np.float32) / np.float32(inp.scale)
    candidates = np.clip(np.sign(steps) * np.floor(np.abs(steps) + 0.5) + inp.zero_point, -128, 127)
    candidates = candidates.reshape(len(candidates), -1)
    for row in inputs.reshape(count, -1):
        assert (candidates == row).all(axis=1).any()


def test_golden_inputs_are_away_from_rounding_ties(generate):
    """The chosen golden inputs' outputs do not move when every layer's pre-rounding values
    shift by 1/16 of a step either way: kernels that round near-ties differently agree on them."""
    from tinygen.check.golden import TIE_STEPS
    from tinygen.check.perturb import shifted_biases

    _, prepared = generate("cnn", "esp-idf")
    golden = prepared.golden
    for steps in (TIE_STEPS, -TIE_STEPS):
        with HostRuntime(shifted_biases(prepared.tflite, steps)) as runtime:
            moved = runtime.run(prepared.arena.arena_min_bytes, golden.inputs, len(prepared.report.outputs))
        for got, want in zip(moved, golden.outputs):
            assert np.array_equal(got.reshape(want.shape), want)
    assert golden.tolerance_steps == [0]  # esp-nn 1.2.3 computes this model bit for bit as the host
    assert "furthest from rounding ties" in golden.selection


def test_bias_shift_moves_pre_rounding_values(models):
    """perturb.shifted_biases: a whole-step shift moves outputs, a zero-step model is None."""
    from tinygen.check.perturb import shifted_biases

    data = models["mlp"].tflite["int8"].read_bytes()
    assert shifted_biases(models["mlp"].tflite["none"].read_bytes(), 1.0) is None  # float: no int8 bias
    shifted = shifted_biases(data, 3.0)
    assert len(shifted) == len(data) and shifted != data
    report = analyze(data)
    x = np.load(models["mlp"].calibration)[:16]
    inputs = [np.clip(np.round(x / report.inputs[0].scale) + report.inputs[0].zero_point, -128, 127)
              .astype(np.int8).reshape(16, *report.inputs[0].shape)]
    with HostRuntime(data) as a, HostRuntime(shifted) as b:
        base, moved = a.run(1 << 16, inputs, 1)[0], b.run(1 << 16, inputs, 1)[0]
    assert not np.array_equal(base, moved)


def test_tolerance_follows_the_boards_numerics(models):
    """A board that computes the model bit for bit gets tolerance 0; one whose kernels may round
    a step apart the measured carry of a half-step rounding difference per layer (never less
    than one). The same inputs either way."""
    from tinygen.check.golden import make_golden, plan_layout

    data = models["cnn"].tflite["int8"].read_bytes()
    report = analyze(data)
    samples = [np.load(models["cnn"].calibration).astype(np.float32)]
    layout = plan_layout(report, 32 * 1024, len(samples[0]))
    with HostRuntime(data) as runtime:
        arena = measure_arena_min(runtime)
        exact = make_golden(report, runtime, arena, samples, data, True, "exact", layout)
        loose = make_golden(report, runtime, arena, samples, data, False, "rounding", layout)
    assert exact.tolerance_steps == [0]
    assert loose.tolerance_steps[0] >= 1
    assert [a.tolist() for a in exact.inputs] == [a.tolist() for a in loose.inputs]


def test_unsupported_op_names_the_op(models):
    report = analyze(models["mlp"].tflite["int8"].read_bytes())
    table = load_table("esp-tflite-micro-1.4.0")
    narrowed = type(table)(name="t", description="a table without SOFTMAX", source=table.source,
                           builtin={k: v for k, v in table.builtin.items() if k != "SOFTMAX"},
                           custom=table.custom)
    from tinygen.errors import TinygenError

    with pytest.raises(TinygenError, match="operator SOFTMAX"):
        resolve(report, narrowed)


def test_board_arena_follows_its_library_and_kernels(generate):
    """Each board's arena is simulated for its own library and kernels: the ESP32-S3's esp-nn
    convolutions ask for scratch, Zephyr's reference kernels do not, and the per-layer detail
    says which layer asks what and why."""
    _, reference = generate("cnn", "zephyr", "qemu_x86")
    _, s3 = generate("cnn", "esp-idf", "esp32s3")
    assert reference.arena.scratch_bytes == 0
    assert s3.arena.arena_min_bytes == reference.arena.arena_min_bytes  # the same host measurement
    assert s3.arena.scratch_bytes > 0
    assert any("CONV_2D" in line and "esp_nn_get_conv_scratch_size" in line for line in s3.arena.detail)
    assert s3.arena.arena_bytes > reference.arena.arena_bytes
    sim = s3.arena.simulation
    assert s3.arena.arena_bytes >= sim.head_bytes + sim.tail_bytes
    assert sim.binding_phase in sim.phases


def test_generic_esp_nn_adds_only_softmax_scratch(generate):
    """ESP32/C3/C6 (esp-nn's generic C): the convolutions ask for no scratch; SOFTMAX asks
    4 * dims[1] bytes (esp-tflite-micro kernels/esp_nn/softmax.cc:151-163)."""
    _, mlp = generate("mlp", "esp-idf", "esp32")  # FULLY_CONNECTED + SOFTMAX over 4 classes
    assert mlp.arena.scratch_bytes == 4 * 4
    _, cnn = generate("cnn", "esp-idf", "esp32c3")  # CONV_2D too: still only the softmax's
    assert [(r.op, r.bytes) for r in cnn.arena.simulation.requests if not r.persistent] == [("SOFTMAX", 12)]


def test_host_equivalent_of_the_board_arena(generate):
    """`verify` runs the firmware's side on the 64-bit host with the board's arena mapped there:
    the host minimum, shifted by the emitted arena's distance from the board's need."""
    _, prepared = generate("cnn", "arduino", "nano33ble")
    arena = prepared.arena
    assert arena.host_arena_bytes == arena.arena_min_bytes + arena.arena_bytes - arena.simulation.arena_bytes
    with HostRuntime(prepared.tflite) as runtime:
        assert runtime.try_arena(arena.host_arena_bytes)["ok"]
