"""Memory that is right for the chip: custom operators every pinned library registers, PSRAM
where the board has it, every emitted byte in the fit."""

from __future__ import annotations

import json
import subprocess
import sys

import flatbuffers
import numpy as np
import pytest
from flatbuffers import flexbuffers
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
from tinygen.library.resolver import load_table
from tinygen.pipeline import prepare


def signal_window_model(size: int = 16) -> bytes:
    """A model of one TFLite-Micro signal operator, SignalWindow (signal/micro/kernels/
    window.cc: int16 input and weights, flexbuffer option 'shift'), built with the schema."""
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "SignalWindow"
    model.operatorCodes = [code]
    weights = schema.BufferT()
    weights.data = np.arange(1, size + 1, dtype="<i2").tobytes()
    model.buffers = [schema.BufferT(), weights]

    def tensor(name: str, shape: list[int], buffer: int):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, schema.TensorType.INT16, buffer
        return t

    graph = schema.SubGraphT()
    graph.tensors = [tensor("audio", [1, size], 0), tensor("weights", [size], 1), tensor("windowed", [1, size], 0)]
    graph.inputs, graph.outputs = [0], [2]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.customOptions = list(flexbuffers.Dumps({"shift": 12}))
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    graph.operators = [op]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_custom_codes_come_from_the_pinned_headers():
    """Each table maps the code string an Add method registers to that method, as the header
    says (tools/op_tables.py); Zephyr compiles only the Rfft and Window signal kernels."""
    esp = load_table("esp-tflite-micro-1.4.0")
    assert esp.custom["SignalEnergy"] == "AddEnergy" and esp.custom["SignalPCAN"] == "AddPCAN"
    assert esp.custom["TFLite_Detection_PostProcess"] == "AddDetectionPostprocess"
    assert {code for code in esp.custom if code.startswith("Signal")} >= {
        "SignalWindow", "SignalFftAutoScale", "SignalRfft", "SignalEnergy", "SignalFilterBank",
        "SignalFilterBankLog", "SignalFilterBankSquareRoot", "SignalFilterBankSpectralSubtraction"}
    assert {code for code in load_table("zephyr-v4.4.0").custom if code.startswith("Signal")} == {
        "SignalRfft", "SignalWindow"}
    assert not any(code.startswith("Signal") for code in load_table("chirale-tensorflowlite-2.0.0").custom)


def test_signal_ops_deploy_on_esp_idf_and_are_refused_where_missing(tmp_path):
    path = tmp_path / "window.tflite"
    path.write_bytes(signal_window_model())
    prepared = prepare(path, "esp-idf")
    assert [(r.op, r.method) for r in prepared.resolution.registrations] == [("SignalWindow", "AddWindow")]
    from tinygen.errors import TinygenError

    with pytest.raises(TinygenError, match="custom operator 'SignalWindow'.*Chirale_TensorFLowLite 2.0.0"):
        prepare(path, "arduino", "nano33ble")


def test_a_large_arena_goes_to_psram_on_a_board_that_has_it(tmp_path):
    """An arena larger than the S3's internal RAM: a PSRAM board allocates it there (and
    enables PSRAM), a board without PSRAM refuses the model with the numbers."""
    import keras
    import tensorflow as tf

    # Small input and output (the golden vectors stay small), float activations of 2 x 256 KB.
    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(64, 3, padding="same"),
                              keras.layers.Conv2D(64, 3, padding="same"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    path = tmp_path / "wide.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    out = tmp_path / "out"
    created = subprocess.run([sys.executable, "-m", "tinygen.cli", "new", "--target", "esp-idf", "--board",
                              "esp32s3_n8r8", "--output", str(out), str(path)], capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    assert "arena in   PSRAM" in created.stdout
    project = out / "wide"
    sdk = (project / "sdkconfig.defaults").read_text()
    assert "CONFIG_SPIRAM=y" in sdk and "CONFIG_SPIRAM_MODE_OCT=y" in sdk
    core = (project / "main" / "tinygen_model.cpp").read_text()
    assert "allocate_psram(kArenaBytes)" in core and "uint8_t* g_tensor_arena = nullptr;" in core
    assert "heap_caps_aligned_alloc(16, bytes, MALLOC_CAP_SPIRAM" in (project / "main" / "tinygen_platform.cpp").read_text()

    refused = subprocess.run([sys.executable, "-m", "tinygen.cli", "new", "--target", "esp-idf", "--board",
                              "esp32s3", "--output", str(tmp_path / "no"), str(path)], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "does not fit" in refused.stderr and "not enough RAM" in refused.stderr
    assert not (tmp_path / "no").exists()

    table = subprocess.run([sys.executable, "-m", "tinygen.cli", "inspect", "--json", str(path)],
                           capture_output=True, text=True)
    rows = {r["board"]: r for r in json.loads(table.stdout)["boards"] if r["target"] == "esp-idf"}
    assert rows["esp32s3_n8r8"]["ok"] and rows["esp32s3_n8r8"]["arena_placement"] == "psram"
    assert not rows["esp32s3"]["ok"] and rows["esp32s3"]["shortfalls"] == ["RAM"]


def test_a_small_arena_stays_in_internal_ram_and_psram_is_only_enabled(generate):
    project, prepared = generate("mlp", "esp-idf", "esp32s3_n8r2")
    assert not prepared.fit.arena_in_psram
    assert "alignas(16) uint8_t g_tensor_arena[kArenaBytes];" in (project / "main" / "tinygen_model.cpp").read_text()
    sdk = (project / "sdkconfig.defaults").read_text()
    assert "CONFIG_SPIRAM_MODE_QUAD=y" in sdk and "free for your application" in sdk
    plain, _ = generate("mlp", "esp-idf", "esp32s3")
    assert "SPIRAM" not in (plain / "sdkconfig.defaults").read_text()


def test_the_fit_counts_every_emitted_byte(generate):
    """Flash: the model, the golden vectors (inputs and outputs of each) and the class names."""
    _, prepared = generate("cnn", "arduino", "nano33ble")
    golden = prepared.golden
    golden_bytes = sum(a.nbytes for a in golden.inputs + golden.outputs)
    assert prepared.emitted_bytes == prepared.report.model_bytes + golden_bytes
    assert prepared.fit.flash_needed == prepared.emitted_bytes + prepared.fit.runtime.flash_bytes
    assert f"golden vectors and labels {golden_bytes:,}" in prepared.fit.summary()
