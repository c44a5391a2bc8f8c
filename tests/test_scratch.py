"""Per-layer buffers of each board's kernels, against values worked out by hand from the pinned
sources' own size expressions (file and lines cited with each case)."""

from __future__ import annotations

import pytest
from tinygen.memory.scratch import requests
from tinygen.model.analyze import ModelReport, OperatorInfo, TensorInfo

SAME, VALID = 0, 1  # schema Padding


def one_layer(op: str, input_shape, filter_shape, output_shape, dtype="INT8", **options) -> ModelReport:
    """A model of one operator: input, filter, bias -> output (softmax/pool: input -> output)."""
    shapes = [input_shape, filter_shape, [filter_shape[-1 if op == "DEPTHWISE_CONV_2D" else 0]]] if filter_shape else [input_shape]
    tensors = [TensorInfo(index=i, name=f"t{i}", shape=list(s), dtype="INT32" if i == 2 else dtype,
                          scale=0.1, zero_point=0, is_constant=i in (1, 2)) for i, s in enumerate(shapes)]
    out = TensorInfo(index=len(tensors), name="out", shape=list(output_shape), dtype=dtype, scale=0.1, zero_point=0)
    tensors.append(out)
    operator = OperatorInfo(op=op, custom_code=None, subgraph=0, inputs=list(range(len(shapes))),
                            outputs=[out.index], options={"strideH": 1, "strideW": 1, **options})
    return ModelReport(model_bytes=0, sha256="0" * 64, schema_version=3, ops=[op], custom_ops=[],
                       operators=[operator], tensors=[tensors], inputs=[tensors[0]], outputs=[out],
                       parameter_count=0, weights_bytes=0, quantization="int8")


def scratch(report: ModelReport, kernels: str) -> list[int]:
    return [r.bytes for r in requests(report, kernels) if not r.persistent]


# esp-nn 1.2.3 (espressif/esp-nn 5f0a807), asked by esp-tflite-micro 1.4.0 for every int8 layer.
S3_CASES = [
    # src/convolution/esp_nn_conv_esp32s3.c:337-349, 1x1 / stride 1 / no padding, 12 channels:
    # new_ch = 16; input 8*8*16 = 1024 (12 % 8 != 0); filter 16*16 = 256; transpose 2*8*16 = 256; + 64
    ("1x1 conv, 12 channels", one_layer("CONV_2D", [1, 8, 8, 12], [16, 1, 1, 12], [1, 8, 8, 16], padding=VALID), 1600),
    # :362-383, 3x3 SAME (padding 1 per side) on 10x10x8 -> 4 channels: input (10+2)*(10+2)*8 = 1152;
    # filter 3*3*16*4 = 576; aligned rows 32*3*4 = 384; boundary (10+2)*(10+2)*8 = 1152 (pad_right
    # = 10+3-1-10 = 2); + 64 + 4*4
    ("3x3 conv, padded", one_layer("CONV_2D", [1, 10, 10, 8], [4, 3, 3, 8], [1, 10, 10, 4], padding=SAME), 3344),
    # same layer VALID: no input or boundary copy: 576 + 384 + 64 + 16
    ("3x3 conv, no padding", one_layer("CONV_2D", [1, 10, 10, 8], [4, 3, 3, 8], [1, 8, 8, 4], padding=VALID), 1040),
    # :355-359, im2col path (row 3*3 = 9 < 16, window 27 >= 16, aligned 32): 8*4 + 16 + 8*32 + 16 + 32 + 64
    ("3x3 conv on 3 channels (im2col)", one_layer("CONV_2D", [1, 16, 16, 3], [8, 3, 3, 3], [1, 14, 14, 8], padding=VALID), 416),
    # src/convolution/esp_nn_depthwise_conv_s8_esp32s3.c:369-382, multiplier 1, 16 channels, 3x3 SAME:
    # filter 3*3*16 = 144 + padded input (12+2)*(12+2)*16 = 3136 + 16
    ("depthwise 3x3, multiplier 1, 16 channels", one_layer(
        "DEPTHWISE_CONV_2D", [1, 12, 12, 16], [1, 3, 3, 16], [1, 12, 12, 16], padding=SAME, depthMultiplier=1), 3296),
    # :436-438, multiplier 8 (TFLite-Micro's micro_speech model: 10x8 filter on 49x40x1):
    # 2 * (8*10*1*8 + 40*49*1) + 32
    ("depthwise, multiplier 8", one_layer(
        "DEPTHWISE_CONV_2D", [1, 49, 40, 1], [1, 10, 8, 8], [1, 25, 20, 8], padding=SAME, strideH=2, strideW=2,
        depthMultiplier=8), 5232),
    # :417-435, multiplier 1, 12 channels (not a multiple of 8): padded 16; filter 3*3*16*2 = 288,
    # input 6*6*16*2 = 1152 from 288, output 6*6*16 = 576 from 1440, biases/shifts/mults 3*16*4
    # from 2016: 2208 + 16
    ("depthwise, 12 channels", one_layer(
        "DEPTHWISE_CONV_2D", [1, 6, 6, 12], [1, 3, 3, 12], [1, 6, 6, 12], padding=SAME, depthMultiplier=1), 2224),
    # esp-tflite-micro 1.4.0 kernels/esp_nn/softmax.cc:151-163: 4 * input dims[1]
    ("softmax over 10 classes", one_layer("SOFTMAX", [1, 10], None, [1, 10]), 40),
]


@pytest.mark.parametrize("case, report, expected", S3_CASES, ids=[c[0] for c in S3_CASES])
def test_esp_nn_esp32s3_scratch(case, report, expected):
    assert scratch(report, "esp-nn-esp32s3") == [expected]


def test_esp_nn_softmax_sized_by_dims_1_as_the_kernel_asks():
    """softmax.cc asks 4 * dims[1] whatever the rank: a [1, 1, 1, 10] input gets 4 bytes (the
    kernel's own sizing, mirrored: the arena holds what the firmware asks for)."""
    assert scratch(one_layer("SOFTMAX", [1, 1, 1, 10], None, [1, 1, 1, 10]), "esp-nn-esp32s3") == [4]


def test_esp_nn_generic_convolutions_ask_nothing():
    """ESP32, -C3, -C6: esp_nn_get_conv_scratch_size_opt and ..._depthwise_..._opt return 0
    (src/convolution/esp_nn_conv_opt.c:20-26, esp_nn_depthwise_conv_opt.c:18-24)."""
    for _, report, _ in S3_CASES[:-1]:
        assert scratch(report, "esp-nn") == []
    assert scratch(S3_CASES[-1][1], "esp-nn") == [40]


def test_arduino_esp32s3_takes_the_larger_of_both_esp_nn_versions():
    """esp-nn 1.1.2 (src/convolution/esp_nn_conv_esp32s3.c:133-142): padded input (10+2)^2*8 =
    1152 + filter 3*3*16*4 = 576 + 32 + 16 = 1776, below 1.2.3's 3344 for the padded 3x3 conv;
    for the 1x1 conv 1.1.2's 32-byte alignment gives 1568, below 1.2.3's 1600."""
    padded = S3_CASES[1][1]
    assert scratch(padded, "esp-nn-arduino-esp32s3") == [3344]
    assert scratch(S3_CASES[0][1], "esp-nn-arduino-esp32s3") == [1600]


# CMSIS-NN as Chirale_TensorFLowLite 2.0.0 vendors it (e98ee09a) and as Zephyr v4.4.0 pins it (v7.0.0).
def test_cmsis_nn_convolution():
    # arm_convolve_s8.c:319-331 (e98ee09a): 2 * Cin * kw * kh int16 = 2*8*3*3*2
    padded = S3_CASES[1][1]
    assert scratch(padded, "cmsis-nn-2022-dsp") == [288]
    assert scratch(padded, "cmsis-nn-2022") == [288]  # the plain C path needs it too
    # v7.0.0 arm_convolve_get_buffer_sizes_s8.c: 4 * align4(Cin * kw * kh) = 4 * 72
    assert scratch(padded, "cmsis-nn-v7-dsp") == [288]
    # arm_convolve_wrapper_s8.c:113-118: 1x1, no padding, stride 1 -> arm_convolve_1x1_s8_fast: 0
    assert scratch(S3_CASES[0][1], "cmsis-nn-2022-dsp") == []


def test_cmsis_nn_depthwise():
    """arm_depthwise_conv_s8_opt.c:445-457 (e98ee09a, DSP): Cin * kw * kh * 2 = 16*9*2, asked
    even for the 3x3 filter the kernel then runs without it; v7.0.0 asks nothing for 3x3 with
    padding <= 1; the plain C path (Cortex-M0+) nothing."""
    dw = S3_CASES[4][1]
    assert scratch(dw, "cmsis-nn-2022-dsp") == [288]
    assert scratch(dw, "cmsis-nn-v7-dsp") == []
    assert scratch(dw, "cmsis-nn-2022") == []
    assert scratch(S3_CASES[5][1], "cmsis-nn-2022-dsp") == []  # multiplier 8: Cin != Cout


def test_cmsis_nn_average_pool():
    """arm_avgpool_s8_get_buffer_size (e98ee09a, DSP): 4 * depth."""
    pool = one_layer("AVERAGE_POOL_2D", [1, 8, 8, 16], None, [1, 1, 1, 16], padding=VALID,
                     filterHeight=8, filterWidth=8)
    assert scratch(pool, "cmsis-nn-2022-dsp") == [64]
    assert scratch(pool, "cmsis-nn-2022") == []
    assert scratch(pool, "reference") == []


def test_every_kernel_family_has_scratch_rules():
    from tinygen.library.pinned import kernel_families
    from tinygen.memory.scratch import RULES

    assert set(RULES) == set(kernel_families())


# CMSIS-NN v7.0.0 with Helium (Cortex-M55/M85) as Zephyr's tflite-micro module (f2b2b3f51 glue)
# asks it. Expected values computed by running /tmp/findings/cmsis_mve_sizes.py (a transcription of
# the CMSIS-NN v7.0.0 size functions checked against the compiled C), not by this module's code.
MVE_CASES = [
    # arm_convolve_s8_get_buffer_size_mve: 64 * ceil(8*3*3 / 16) (DSP: 4 * align4(72) = 288)
    ("3x3 conv, padded", S3_CASES[1][1], [320]),
    # 1x1 without padding: 0 under MVEI at any stride (arm_convolve_get_buffer_sizes_s8.c:122-130)
    ("1x1 conv, stride 2", one_layer("CONV_2D", [1, 8, 8, 16], [8, 1, 1, 16], [1, 4, 4, 8], padding=VALID,
                                     strideH=2, strideW=2), []),
    # 1xN path (one row, kh 1, 2*16 % 4 == 0): max(5*16 + 2*16, 4*16 + 2*16)
    ("1xN conv, SAME stride 2", one_layer("CONV_2D", [1, 1, 9, 16], [8, 1, 5, 16], [1, 1, 5, 8], padding=SAME,
                                          strideW=2), [112]),
    ("1xN conv, VALID stride 2", one_layer("CONV_2D", [1, 1, 10, 16], [8, 1, 5, 16], [1, 1, 3, 8], padding=VALID,
                                           strideW=2), [80]),
    # depthwise Cin == Cout: 4 * 124 * 3 * 3, with no 3x3 exemption under MVE (DSP: nothing)
    ("depthwise 3x3, multiplier 1, 16 channels", S3_CASES[4][1], [4464]),
    # Cin 1, multiplier 8: run as a conv: 64 * ceil(1*8*10 / 16) + transposed filter 8*10*8
    ("depthwise, multiplier 8 (one input channel)", S3_CASES[5][1], [960]),
    # Cin 1 on one row, stride 2 (the measured M55 case): stride_w * 1 is not a multiple of 4, so
    # the im2col size 64 * ceil(3 / 16) + the transposed filter 3*1*3 = 73
    ("depthwise, one channel on one row", one_layer(
        "DEPTHWISE_CONV_2D", [1, 1, 9, 1], [1, 1, 3, 3], [1, 1, 5, 3], padding=SAME, strideW=2, depthMultiplier=3), [73]),
    # dilation: arm_depthwise_conv_s8 without a buffer
    ("depthwise, dilated", one_layer(
        "DEPTHWISE_CONV_2D", [1, 12, 12, 16], [1, 3, 3, 16], [1, 8, 8, 16], padding=VALID, depthMultiplier=1,
        dilationHFactor=2, dilationWFactor=2), []),
    # arm_fully_connected_s8_get_buffer_size_mve: 4 * Cout
    ("fully connected", one_layer("FULLY_CONNECTED", [1, 64], [10, 64], [1, 10]), [40]),
    # the 1x1-conv path (output rank 3, depth 16 % 4 == 0), per-tensor: 8 * Cout (fully_connected.cc:128-148)
    ("fully connected, rank 3, per-tensor", one_layer("FULLY_CONNECTED", [1, 4, 16], [8, 16], [1, 4, 8]), [64]),
    # arm_avgpool_s8_get_buffer_size is 0 under MVE (DSP: 4 * depth)
    ("average pool", one_layer("AVERAGE_POOL_2D", [1, 8, 8, 16], None, [1, 1, 1, 16], padding=VALID,
                               filterHeight=8, filterWidth=8), []),
]


@pytest.mark.parametrize("case, report, expected", MVE_CASES, ids=[c[0] for c in MVE_CASES])
def test_cmsis_nn_v7_mve_scratch(case, report, expected):
    assert scratch(report, "cmsis-nn-v7-mve") == expected


def test_cmsis_nn_v7_mve_int16_and_persistent_buffers():
    # int16 conv with an int64 bias: arm_convolve_wrapper_s16_get_buffer_size = 64 * ceil(72 / 8)
    # (576 from cmsis_mve_sizes.conv_wrapper_s16_mve(8, 3, 3)); with an int32 bias nothing is asked
    conv16 = one_layer("CONV_2D", [1, 10, 10, 8], [4, 3, 3, 8], [1, 10, 10, 4], dtype="INT16", padding=SAME)
    conv16.tensors[0][2].dtype = "INT64"
    assert scratch(conv16, "cmsis-nn-v7-mve") == [576]
    conv16.tensors[0][2].dtype = "INT32"
    assert scratch(conv16, "cmsis-nn-v7-mve") == []
    # int16 softmax keeps two LUTs of LUTSize<int16_t>() = 513 entries (softmax_common.cc:33-45)
    softmax16 = one_layer("SOFTMAX", [1, 10], None, [1, 10], dtype="INT16")
    assert [(r.bytes, r.persistent) for r in requests(softmax16, "cmsis-nn-v7-mve")] == [(1026, True)] * 2
    # BATCH_MATMUL int8 (batch_matmul.cc, the analysis's expressions): not adj_y, so the right
    # input [1, 8, 6] is kept transposed: 12 + 4 + 4*3 + 48 = 76; 28 for the quantization;
    # scratch 4 * 6 for the right input's sums
    bmm = one_layer("BATCH_MATMUL", [1, 4, 8], [1, 8, 6], [1, 4, 6])
    bmm.operators[0].inputs = [0, 1]
    assert sorted((r.bytes, r.persistent) for r in requests(bmm, "cmsis-nn-v7-mve")) == [(24, False), (28, True), (76, True)]


# esp-nn 1.2.3 (5f0a807) ESP32-P4 kernels as esp-tflite-micro 1.4.0 asks them. Expected values
# computed by running /tmp/findings/esp_nn_p4_sizes.py (a transcription of
# esp_nn_get_conv_scratch_size_esp32p4 checked against the compiled C on 20,000 shapes).
P4_CASES = [
    # :891-910, 1x1 / stride 1 / no padding, 12 channels (< 16): 4*16 + 16*16 + 32 + 32
    ("1x1 conv, 12 channels", S3_CASES[0][1], [384]),
    # :915-920, stride 2, no padding, kw*Cin = 16: 1*1*16*8 + 32 + 4*8
    ("1x1 conv, stride 2", MVE_CASES[1][1], [192]),
    # :923-927, padded, kw*kh*Cin = 72 >= 16 (im2col): 4*4 + 72 + 32
    ("3x3 conv, padded", S3_CASES[1][1], [120]),
    # :915-920: 3*3*16*4 + 32 + 16
    ("3x3 conv, no padding", S3_CASES[2][1], [624]),
    # :923-927, 3 channels: 4*8 + 27 + 32
    ("3x3 conv on 3 channels", S3_CASES[3][1], [91]),
    # :929-935, no padding, window 9 < 16: 4*8 + 3*3*16*8 + 16*16*16 + 32
    ("3x3 conv on 1 channel, no padding", one_layer("CONV_2D", [1, 16, 16, 1], [8, 3, 3, 1], [1, 14, 14, 8],
                                                    padding=VALID), [5312]),
    # :938-965, padded, window 9 < 16, fits the 32 KiB budget: 34*34*1 + 3*3*16*8 + 32 + 32
    # (the tiled kernel writes more: numerics.yaml p4-conv-tiled-scratch)
    ("3x3 SAME conv on 32x32x1", one_layer("CONV_2D", [1, 32, 32, 1], [8, 3, 3, 1], [1, 32, 32, 8], padding=SAME),
     [2372]),
    # :938-965, over the budget (202*202 > 32768): tiled rows
    ("3x3 SAME conv on 200x200x1", one_layer("CONV_2D", [1, 200, 200, 1], [8, 3, 3, 1], [1, 200, 200, 8],
                                             padding=SAME), [36768]),
    # esp_nn_depthwise_conv_esp32p4.c:25-31: 0, so nothing is asked
    ("depthwise 3x3, multiplier 1, 16 channels", S3_CASES[4][1], []),
    # softmax_s8_esp32p4.c:13-17: 4 * dims[1]
    ("softmax over 10 classes", S3_CASES[-1][1], [40]),
]


@pytest.mark.parametrize("case, report, expected", P4_CASES, ids=[c[0] for c in P4_CASES])
def test_esp_nn_esp32p4_scratch(case, report, expected):
    assert scratch(report, "esp-nn-esp32p4") == expected
