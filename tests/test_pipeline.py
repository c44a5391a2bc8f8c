"""The core promises of issue 2, checked on real converted models with the real runtimes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from generator.analyze import analyze
from generator.arena import ALIGNMENT, measure_arena_min
from generator.model_source import parse_byte_array
from generator.resolver import load_table, resolve
from generator.tflm_host import HostRuntime

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
    assert f"g_model_data_len = {len(prepared.tflite)};" in source
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


def test_reference_target_arena_within_five_percent_of_minimum(generate):
    for model in MODELS:
        _, prepared = generate(model, "zephyr", "qemu_cortex_m3")
        ratio = prepared.arena.arena_bytes / prepared.arena.arena_min_bytes
        assert 1.0 <= ratio <= 1.05


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
        got = runtime.run(prepared.arena.arena_bytes, [inputs.reshape(count, *report.inputs[0].shape)],
                          len(report.outputs))[0]
    np.testing.assert_array_equal(got.reshape(-1), expected)
    # The golden inputs are the user's calibration samples, quantized.
    first = np.load(models[model].calibration)[0].reshape(-1)
    inp = report.inputs[0]
    steps = first.astype(np.float32) / np.float32(inp.scale)
    half_away = np.sign(steps) * np.floor(np.abs(steps) + 0.5)  # C's roundf, as the firmware
    np.testing.assert_array_equal(inputs[: first.size], np.clip(half_away + inp.zero_point, -128, 127))


def test_unsupported_op_names_the_op(models):
    report = analyze(models["mlp"].tflite["int8"].read_bytes())
    table = load_table("esp-tflite-micro-1.4.0")
    narrowed = type(table)(name="t", description="a table without SOFTMAX", source=table.source,
                           builtin={k: v for k, v in table.builtin.items() if k != "SOFTMAX"},
                           custom=table.custom)
    from generator.errors import TinygenError

    with pytest.raises(TinygenError, match="operator SOFTMAX"):
        resolve(report, narrowed)


def test_target_margins_follow_the_kernels(generate):
    """Reference/CMSIS-NN targets get the host minimum; esp-nn on the ESP32-S3 adds the
    scratch its conv kernels request, and the plan says which layers take it."""
    _, reference = generate("cnn", "zephyr", "nrf52840dk")
    _, s3 = generate("cnn", "esp-idf", "esp32s3")
    assert reference.arena.scratch_bytes == 0
    assert reference.arena.arena_bytes == reference.arena.arena_min_bytes
    assert s3.arena.arena_min_bytes == reference.arena.arena_min_bytes  # same host measurement
    assert s3.arena.scratch_bytes > 0
    assert any("CONV_2D" in line for line in s3.arena.scratch_detail)
    with HostRuntime(s3.tflite) as runtime:  # the larger arena still works, of course
        assert runtime.try_arena(s3.arena.arena_bytes)["ok"]


def test_generic_esp_nn_adds_only_softmax_scratch(generate):
    """ESP32/C3/C6 (esp-nn's generic C): the convolutions ask for no scratch; SOFTMAX asks
    width * 4 bytes (esp_nn_get_softmax_scratch_size_opt), plus 16 for alignment."""
    _, mlp = generate("mlp", "esp-idf", "esp32")  # FULLY_CONNECTED + SOFTMAX over 4 classes
    assert mlp.arena.scratch_bytes == 4 * 4 + 16
    _, cnn = generate("cnn", "esp-idf", "esp32c3")  # CONV_2D too: still only the softmax's
    assert cnn.arena.scratch_bytes == 3 * 4 + 16
    assert [line.split(":")[0].split()[-1] for line in cnn.arena.scratch_detail] == ["SOFTMAX"]
