"""What each board's kernels ask of the arena, layer by layer: scratch buffers (planned into
the head while their operator runs) and persistent buffers (kept in the tail).

Kernel families are the `kernels` key of each board (data/kernels.yaml says which library,
version and code path each one is). Every rule below is the pinned source's own size
expression, with the file and lines it was read from; where two versions may be in use (the
Arduino esp32 core bundles an esp-nn it does not pin), the rule is the larger of both, per layer.

Shapes are TFLite's: input [N, H, W, C], CONV_2D filter [Cout, kh, kw, Cin], DEPTHWISE_CONV_2D
filter [1, kh, kw, Cout]. Padding is the per-side padding TFLite-Micro computes
(ComputePaddingHeightWidth, kernels/padding.h): total // 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..library import cmsis_nn_mve, esp_nn_p4
from ..model.analyze import ModelReport
from ..model.operators import TRANSPOSE_CONV_INPUT, Layer

ALIGN = 16


@dataclass(frozen=True)
class Request:
    """One buffer an operator's kernel asks for."""

    op_index: int
    op: str
    bytes: int
    persistent: bool  # False: scratch (head, while the operator runs); True: tail, for good
    source: str  # the size expression and where it was read

    def describe(self) -> str:
        kind = "kept" if self.persistent else "scratch"
        return f"operator {self.op_index} {self.op}: {self.bytes:,} B {kind} ({self.source})"


Rule = Callable[[Layer], list[tuple[int, bool, str]]]  # -> [(bytes, persistent, source)]



def _u16(value: int) -> int:
    """C's conversion to uint16_t, which esp-nn's scratch functions apply to every dimension."""
    return value & 0xFFFF


def _i32(value: int) -> int:
    """C int arithmetic wraps at 32 bits."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


# --- esp-nn (esp-tflite-micro 1.4.0's kernels/esp_nn/*.cc ask these functions) --------------

def _esp_nn_conv_dims(layer: Layer):
    _, in_h, in_w, in_ch = layer.shape(0)
    _, f_h, f_w, _ = layer.shape(1)
    _, out_h, out_w, out_ch = layer.shape(0, outputs=True)
    pad_h, pad_w = layer.padding()
    return (_u16(in_w), _u16(in_h), _u16(in_ch), _u16(f_w), _u16(f_h), _u16(out_w), _u16(out_h), _u16(out_ch),
            _u16(pad_w), _u16(pad_h), _u16(layer.option("strideW", 1)), _u16(layer.option("strideH", 1)))


def _esp_nn_pointwise(f_w: int, f_h: int, pad_w: int, pad_h: int, s_w: int, s_h: int) -> bool:
    return f_w == 1 and f_h == 1 and pad_w == 0 and pad_h == 0 and s_w == 1 and s_h == 1


def _esp_nn_pointwise_conv_scratch(in_w: int, in_h: int, in_ch: int, out_ch: int, align_buf: int) -> int:
    """The 1x1 branch, the same in esp-nn 1.1.2 and 1.2.3 but for `align_buf` (32, then 64)."""
    new_ch = (in_ch + 7) & ~7
    transpose = 0 if in_w * in_h < 8 else 2 * (8 * new_ch)
    input_scratch = in_w * in_h * new_ch if in_ch % 8 else 0
    return _i32(input_scratch + new_ch * out_ch + transpose + align_buf)


def esp_nn_conv_esp32s3_1_2_3(layer: Layer) -> int:
    """esp-nn 1.2.3 (5f0a807) src/convolution/esp_nn_conv_esp32s3.c:315-386."""
    in_w, in_h, in_ch, f_w, f_h, out_w, out_h, out_ch, pad_w, pad_h, s_w, s_h = _esp_nn_conv_dims(layer)
    align_buf = 64
    if _esp_nn_pointwise(f_w, f_h, pad_w, pad_h, s_w, s_h):
        return _esp_nn_pointwise_conv_scratch(in_w, in_h, in_ch, out_ch, align_buf)
    row = f_w * in_ch
    window = f_w * f_h * in_ch
    if row < 16 and window >= 16:
        window_aligned = (window + 15) & ~15
        return _i32(out_ch * 4 + 16 + out_ch * window_aligned + 16 + window_aligned + align_buf)
    new_ch = (in_ch + 15) & ~15
    input_scratch = 0 if pad_w == 0 and pad_h == 0 else (in_w + 2 * pad_w) * (in_h + 2 * pad_h) * in_ch
    filter_scratch = f_w * f_h * new_ch * out_ch
    filter_alignment = ((row + 15) // 16) * 16 * f_h * out_ch
    pad_right = max(0, (out_w * s_w + f_w - 1) - in_w)
    pad_bottom = max(0, (out_h * s_h + f_h - 1) - in_h)
    boundary = (in_w + pad_right) * (in_h + pad_bottom) * in_ch if pad_right > 0 or pad_bottom > 0 else 0
    return _i32(input_scratch + filter_scratch + filter_alignment + boundary + align_buf + out_ch * 4)


def esp_nn_conv_esp32s3_1_1_2(layer: Layer) -> int:
    """esp-nn 1.1.2 (207dc4e) src/convolution/esp_nn_conv_esp32s3.c:98-144."""
    in_w, in_h, in_ch, f_w, f_h, _, _, out_ch, pad_w, pad_h, s_w, s_h = _esp_nn_conv_dims(layer)
    align_buf = 32
    if _esp_nn_pointwise(f_w, f_h, pad_w, pad_h, s_w, s_h):
        return _esp_nn_pointwise_conv_scratch(in_w, in_h, in_ch, out_ch, align_buf)
    new_ch = (in_ch + 15) & ~15
    input_scratch = 0 if pad_w == 0 and pad_h == 0 else (in_w + 2 * pad_w) * (in_h + 2 * pad_h) * in_ch
    return _i32(input_scratch + f_w * f_h * new_ch * out_ch + align_buf + out_ch * 4)


def esp_nn_depthwise_esp32s3_1_2_3(layer: Layer) -> int:
    """esp-nn 1.2.3 (5f0a807) src/convolution/esp_nn_depthwise_conv_s8_esp32s3.c:348-443."""
    in_w, in_h, ch, f_w, f_h, out_w, out_h, _, pad_w, pad_h, s_w, s_h = _esp_nn_conv_dims(layer)
    mult = _u16(layer.option("depthMultiplier", 1))
    filter_size = f_w * f_h * ch * mult
    if mult == 1 and ch % 8 == 0:
        if f_w == 3 and f_h == 3:
            if ch % 16 == 0:
                if pad_w or pad_h:
                    pad_width, pad_height = pad_w * 2, pad_h * 2
                else:  # not clamped at 0 in the source
                    pad_width = (out_w * s_w + f_w - 1) - in_w
                    pad_height = (out_h * s_h + f_h - 1) - in_h
                if pad_width or pad_height:
                    full = (in_w + pad_width) * (in_h + pad_height) * ch
                    if full <= 40 * 1024:
                        return _i32(filter_size + full + 16)
                    return _i32(filter_size + (in_w + pad_width) * f_h * ch + 16)
                return _i32(filter_size + 16)
            if ch >= 12:
                new_ch = (ch + 15) & ~15
                total_pad_w = pad_w * 2 + max(0, (out_w * s_w + 2) - in_w)
                total_pad_h = pad_h * 2 + max(0, (out_h * s_h + 2) - in_h)
                return _i32(9 * new_ch + (in_w + total_pad_w) * (in_h + total_pad_h) * new_ch
                            + out_w * out_h * new_ch + 64)
            return _i32(2 * (filter_size + in_w * in_h * ch) + 32)
        total_s16 = 2 * (filter_size + in_w * in_h * ch)
        if total_s16 <= 48 * 1024:
            return _i32(total_s16 + 32)
        return _i32(2 * filter_size + 2 * in_w * f_h * ch + 32)
    if mult == 1 and ch > 3:
        padded = (ch + 7) & ~7

        def up16(x: int) -> int:
            return (x + 15) & ~15
        input_start = up16(f_w * f_h * padded * 2)
        out_start = up16(input_start + in_w * in_h * padded * 2)
        bias_start = up16(out_start + out_w * out_h * padded)
        return _i32(bias_start + 3 * padded * 4 + 16)
    if mult % 4 == 0:
        return _i32(2 * (filter_size + in_w * in_h * ch) + 32)
    return 32


def esp_nn_depthwise_esp32s3_1_1_2(layer: Layer) -> int:
    """esp-nn 1.1.2 (207dc4e) src/convolution/esp_nn_depthwise_conv_s8_esp32s3.c:356-409."""
    in_w, in_h, ch, f_w, f_h, out_w, out_h, _, pad_w, pad_h, s_w, s_h = _esp_nn_conv_dims(layer)
    mult = _u16(layer.option("depthMultiplier", 1))
    filter_size = f_w * f_h * ch * mult
    if mult == 1 and ch % 8 == 0 and f_w == 3 and f_h == 3:
        if ch % 16 == 0:
            if pad_w or pad_h:
                pad_width, pad_height = pad_w * 2, pad_h * 2
            else:
                pad_width = (out_w * s_w + f_w - 1) - in_w
                pad_height = (out_h * s_h + f_h - 1) - in_h
            if pad_width or pad_height:
                return _i32(filter_size + (in_w + pad_width) * (in_h + pad_height) * ch + 16)
            return _i32(filter_size + 16)
        return _i32(2 * (filter_size + in_w * in_h * ch) + 16)
    if mult % 4 == 0:
        return _i32(2 * (filter_size + in_w * in_h * ch) + 16)
    return 32


def esp_nn_conv_esp32p4_1_2_3(layer: Layer) -> int:
    """esp-nn 1.2.3 (5f0a807) src/convolution/esp_nn_conv_esp32p4.c:869-968
    (esp_nn_get_conv_scratch_size_esp32p4; L1D_BUDGET = 32768, :589). For padding with a
    window under 16 values the tiled kernel writes more than this asks (library/esp_nn_p4.py;
    numerics rule `p4-conv-tiled-scratch` makes that padding explicit)."""
    in_w, in_h, in_ch, f_w, f_h, _, out_h, out_ch, pad_w, pad_h, s_w, s_h = _esp_nn_conv_dims(layer)
    align = 32
    if _esp_nn_pointwise(f_w, f_h, pad_w, pad_h, s_w, s_h):  # :891-910
        if in_ch < 16:
            return _i32(out_ch * 4 + 16 * out_ch + 32 + align)
        return _esp_nn_pointwise_conv_scratch(in_w, in_h, in_ch, out_ch, align)
    new_ch = (in_ch + 15) & ~15  # :912
    acc = out_ch * 4
    if pad_w == 0 and pad_h == 0 and f_w * in_ch >= 16:  # :915-920
        return _i32(f_w * f_h * new_ch * out_ch + align + acc)
    if f_w * f_h * in_ch >= 16:  # :923-927
        return _i32(acc + f_w * f_h * in_ch + align)
    if pad_w == 0 and pad_h == 0:  # :929-935
        eff_ch = esp_nn_p4.effective_channels(f_w)
        return _i32(acc + f_w * f_h * eff_ch * out_ch + in_w * in_h * eff_ch + align)
    return _i32(esp_nn_p4.tiled_scratch_asked(in_h, in_w, in_ch, f_h, f_w, out_h, out_ch, pad_h, pad_w, s_h))


def esp_nn_depthwise_esp32p4_1_2_3(layer: Layer) -> int:
    """esp-nn 1.2.3 (5f0a807) src/convolution/esp_nn_depthwise_conv_esp32p4.c:25-31: 0, so
    esp-tflite-micro asks nothing (depthwise_conv.cc:256-287)."""
    return 0


def _int8_in(layer: Layer) -> bool:
    return layer.dtype(0) == "INT8"


def _int4_filter(layer: Layer) -> list[tuple[int, bool, str]]:
    """int4 filters are unpacked into a scratch of the filter's element count (conv.cc,
    depthwise_conv.cc, fully_connected.cc of esp-tflite-micro 1.4.0 and TFLite-Micro 2026)."""
    if layer.dtype(1) != "INT4":
        return []
    t = layer.tensor(1)
    return [(t.element_count, False, "int4 filter unpack buffer: FlatSize(filter)")]


def _esp_nn(conv: Callable[[Layer], int], depthwise: Callable[[Layer], int], versions: str) -> Rule:
    """esp-tflite-micro 1.4.0 (99f49e1): conv.cc:132-161 and depthwise_conv.cc:256-286 ask
    esp-nn's scratch size for every int8 input; softmax.cc:151-163 asks
    esp_nn_get_softmax_scratch_size(input dims[1], dims[2]) = 4 * dims[1] bytes (esp-nn
    src/softmax/*.c) for int8 input and output."""
    def rule(layer: Layer) -> list[tuple[int, bool, str]]:
        requests = _int4_filter(layer) if layer.op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") else []
        if layer.op.op == "CONV_2D" and _int8_in(layer):
            requests.append((conv(layer), False, f"esp_nn_get_conv_scratch_size, {versions}"))
        elif layer.op.op == "DEPTHWISE_CONV_2D" and _int8_in(layer):
            requests.append((depthwise(layer), False, f"esp_nn_get_depthwise_conv_scratch_size, {versions}"))
        elif layer.op.op == "SOFTMAX" and _int8_in(layer) and layer.dtype(0, outputs=True) == "INT8":
            dims = layer.shape(0)
            if len(dims) >= 2:
                requests.append((4 * dims[1], False, "esp_nn_get_softmax_scratch_size: 4 * input dims[1] "
                                 "(esp-tflite-micro kernels/esp_nn/softmax.cc:151-163)"))
        return [r for r in requests if r[0] > 0] + _reference_2026(layer)
    return rule


def _esp_generic(layer: Layer) -> int:
    """esp-nn generic (ESP32, -C3, -C6): esp_nn_get_{conv,depthwise_conv}_scratch_size_opt
    return 0 (src/convolution/esp_nn_conv_opt.c:20-26, esp_nn_depthwise_conv_opt.c:18-24)."""
    return 0


def _bound(*rules: Callable[[Layer], int]) -> Callable[[Layer], int]:
    return lambda layer: max(rule(layer) for rule in rules)


# --- TFLite-Micro reference kernels (2026: the host wheel, esp-tflite-micro 1.4.0, Zephyr) ---

def _reference_2026(layer: Layer) -> list[tuple[int, bool, str]]:
    """Reference kernels that ask for scratch (TFLite-Micro 2026: the host wheel, the 0965635
    esp-tflite-micro vendors, Zephyr's fcc760a; kernels/*.cc):
    unidirectional_sequence_lstm.cc: 4 buffers of batch * state * sizeof(cell state);
    svdf_common.cc: batch * filters * 4 (and batch * units * 4 for int8);
    reduce_common.cc: MEAN/SUM 4 * input rank and 4 * axes (+ 4 * output elements for int8 and
    int16), the others 4 * input rank and 4 * axes; mirror_pad.cc: 2 of 4 * input rank;
    add_n.cc: a pointer per input; transpose_conv.cc: 4 * output elements for int8 (8 for int16)."""
    op = layer.op.op
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        batch, state, cell_bytes = _lstm_dims(layer)
        return [(batch * state * cell_bytes, False, "LSTM gate buffer: batch * state * sizeof(cell state)")] * 4
    if op == "SVDF":
        return _svdf(layer)
    if op in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"):
        rank, axes = len(layer.shape(0)), layer.tensor(1).element_count if layer.tensor(1) is not None else 0
        found = []
        if op in ("MEAN", "SUM") and layer.dtype(0) in ("INT8", "INT16"):
            out = layer.tensor(0, outputs=True)
            found.append((4 * out.element_count, False, "reduce accumulator: 4 * output elements"))
        return found + [(4 * rank, False, "reduce input iterator: 4 * input rank"),
                        (4 * axes, False, "reduce resolved axes: 4 * axes")]
    if op == "MIRROR_PAD":
        return [(4 * len(layer.shape(0)), False, "mirror pad dims: 4 * input rank")] * 2
    if op == "ADD_N":
        return [(4 * len([i for i in layer.op.inputs if i >= 0]), False, "ADD_N input pointers")]
    if op == "TRANSPOSE_CONV" and layer.dtype(TRANSPOSE_CONV_INPUT) in ("INT8", "INT16"):
        out = layer.tensor(0, outputs=True)
        width = 4 if layer.dtype(TRANSPOSE_CONV_INPUT) == "INT8" else 8
        return [(width * out.element_count, False, f"transpose conv accumulator: {width} * output elements")]
    return []


def _lstm_dims(layer: Layer) -> tuple[int, int, int]:
    inp = layer.shape(0)
    time_major = bool(layer.option("timeMajor", False))
    batch = (inp[1] if time_major else inp[0]) if len(inp) == 3 else 1
    state = layer.shape(4)[0] if layer.shape(4) else layer.shape(0, outputs=True)[-1]  # input_to_output_weights rows
    cell = layer.tensor(19)  # the cell state tensor
    cell_bytes = 2 if cell is not None and cell.dtype == "INT16" else 4
    return batch, state, cell_bytes


def _svdf(layer: Layer) -> list[tuple[int, bool, str]]:
    batch = layer.shape(0)[0] if layer.shape(0) else 1
    filters = layer.shape(1)[0] if layer.shape(1) else 0  # weights_feature: [filters, input]
    rank = layer.option("rank", 1) or 1
    units = filters // rank
    requests = [(batch * filters * 4, False, "SVDF scratch: batch * filters * 4")]
    if layer.dtype(0) == "INT8":
        requests.append((batch * units * 4, False, "SVDF output scratch: batch * units * 4"))
    return requests


# --- CMSIS-NN ----------------------------------------------------------------------------

def _cmsis_conv_2022(layer: Layer) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size, CMSIS-NN e98ee09a (Chirale 2.0.0)
    Source/ConvolutionFunctions/arm_convolve_wrapper_s8.c:108-128 and arm_convolve_s8.c:319-331:
    0 for a 1x1 filter with no padding, stride 1 and dilation 1; else 2 * Cin * kw * kh int16."""
    _, in_h, _, in_ch = layer.shape(0)
    _, f_h, f_w, _ = layer.shape(1)
    pad_h, pad_w = layer.padding()
    if (pad_h, pad_w) == (0, 0) and layer.option("strideH", 1) == 1 and layer.option("strideW", 1) == 1 \
            and f_h == 1 and f_w == 1 and layer.option("dilationHFactor", 1) == 1 and layer.option("dilationWFactor", 1) == 1:
        return 0
    return 2 * in_ch * f_w * f_h * 2


def _cmsis_conv_v7(layer: Layer) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size, CMSIS-NN v7.0.0 (Zephyr v4.4.0)
    Source/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c: 0 for 1x1/pad 0/stride 1,
    else 4 * align4(Cin * kw * kh) (DSP and no-DSP)."""
    if _cmsis_conv_2022(layer) == 0:
        return 0
    _, _, _, in_ch = layer.shape(0)
    _, f_h, f_w, _ = layer.shape(1)
    return 4 * ((in_ch * f_w * f_h + 3) & ~3)


def _cmsis_depthwise(layer: Layer, three_by_three_free: bool) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size (DSP): Cin * kw * kh int16 when Cin == Cout
    (multiplier 1), batch 1 and dilation 1; CMSIS-NN e98ee09a (Chirale) asks it for 3x3 filters
    too (arm_depthwise_conv_wrapper_s8.c:116-131, arm_depthwise_conv_s8_opt.c:445-457), v7.0.0
    returns 0 for 3x3 with padding <= 1 (arm_depthwise_conv_get_buffer_sizes_s8.c)."""
    n, _, _, in_ch = layer.shape(0)
    _, f_h, f_w, out_ch = layer.shape(1)
    if in_ch != out_ch or n != 1 or layer.option("dilationHFactor", 1) != 1 or layer.option("dilationWFactor", 1) != 1:
        return 0
    pad_h, pad_w = layer.padding()
    if three_by_three_free and (f_h, f_w) == (3, 3) and pad_h <= 1 and pad_w <= 1:
        return 0
    return in_ch * f_w * f_h * 2


# CMSIS-NN v7.0.0 with Helium (ARM_MATH_MVEI, defined with __ARM_FEATURE_MVE: Cortex-M55/M85,
# Include/arm_nn_math_types.h:49-59), built by GCC as Zephyr's module does (threshold for
# depthwise -> conv: 1, Include/arm_nnsupportfunctions.h:81-86; CH_IN_BLOCK_MVE = 124, :64).

def cmsis_conv_s8_mve(in_c: int, f_w: int, f_h: int) -> int:
    """arm_convolve_s8_get_buffer_size_mve: 4 * 16 * ceil(Cin * kw * kh / 16)
    (CMSIS-NN@v7.0.0 Source/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c:53-62)."""
    return 4 * ((in_c * f_w * f_h + 15) // 16) * 16


def cmsis_conv_1xn_s8_mve(in_w: int, in_c: int, f_w: int, out_w: int, pad_w: int, s_w: int) -> int:
    """arm_convolve_1_x_n_s8_get_buffer_size_mve (arm_convolve_get_buffer_sizes_s8.c:64-93)."""
    edges = cmsis_nn_mve.one_by_n_edges(in_w, f_w, out_w, pad_w, s_w)
    if not edges.complete:
        return cmsis_conv_s8_mve(in_c, f_w, 1)
    pad_left = pad_w * in_c
    pad_right = edges.right * in_c if edges.asym else pad_left
    return max(f_w * in_c + pad_left, (f_w - 1) * in_c + pad_right)


def cmsis_conv_wrapper_s8_mve(in_h: int, in_w: int, in_c: int, f_h: int, f_w: int, out_w: int, pad_h: int,
                              pad_w: int, s_w: int, d_h: int, d_w: int) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size_mve (arm_convolve_get_buffer_sizes_s8.c:139-145,
    174-201): 0 for a 1x1 filter without padding or dilation, whatever the stride (the 1x1 fast
    size is 0 under MVEI, :122-130); the 1xN size for one input row, kh 1, dil_w 1 and
    stride_w * Cin a multiple of 4; else the im2col size."""
    if pad_w == 0 and pad_h == 0 and f_w == 1 and f_h == 1 and d_w == 1 and d_h == 1:
        return 0
    if in_h == 1 and d_w == 1 and f_h == 1 and (s_w * in_c) % 4 == 0:
        return cmsis_conv_1xn_s8_mve(in_w, in_c, f_w, out_w, pad_w, s_w)
    return cmsis_conv_s8_mve(in_c, f_w, f_h)


def _cmsis_conv_dims(layer: Layer):
    n, in_h, in_w, in_c = layer.shape(0)
    _, f_h, f_w, _ = layer.shape(1)
    out_w, out_c = layer.shape(0, outputs=True)[2], layer.shape(0, outputs=True)[-1]
    pad_h, pad_w = layer.padding()
    d_h, d_w = layer.option("dilationHFactor", 1) or 1, layer.option("dilationWFactor", 1) or 1
    return n, in_h, in_w, in_c, f_h, f_w, out_w, out_c, pad_h, pad_w, layer.option("strideW", 1) or 1, d_h, d_w


def cmsis_conv_mve(layer: Layer) -> int:
    """int8 CONV_2D (int8 or int4 filter, whose s4 MVE kernels need no more,
    arm_convolve_get_buffer_sizes_s4.c:55-78): arm_convolve_wrapper_s8_get_buffer_size with the
    input's channel count (tflite-micro@f2b2b3f51 kernels/cmsis_nn/conv.cc:138-169)."""
    _, in_h, in_w, in_c, f_h, f_w, out_w, _, pad_h, pad_w, s_w, d_h, d_w = _cmsis_conv_dims(layer)
    return cmsis_conv_wrapper_s8_mve(in_h, in_w, in_c, f_h, f_w, out_w, pad_h, pad_w, s_w, d_h, d_w)


def cmsis_depthwise_mve(layer: Layer) -> int:
    """int8 DEPTHWISE_CONV_2D: arm_depthwise_conv_wrapper_s8_get_buffer_size, MVE branch
    (arm_depthwise_conv_get_buffer_sizes_s8.c:88-116; glue depthwise_conv.cc:176-193): Cin 1 and
    Cout > 1 is run as a CONV_2D, its buffer then the transposed filter (:43-62,96-99; sized here
    with the layer's stride, which Eval uses: Prepare's is uninitialised, numerics.yaml
    `cmsis-v7-mve-depthwise-stride`); Cin == Cout, batch 1, no dilation: 4 * 124 * kw * kh, with
    no 3x3 exemption (:64-68); else 0. int4 filter: the same but for the Cin 1 case
    (arm_depthwise_conv_get_buffer_sizes_s4.c:43-66)."""
    n, in_h, in_w, in_c, f_h, f_w, out_w, out_c, pad_h, pad_w, s_w, d_h, d_w = _cmsis_conv_dims(layer)
    if in_c == 1 and out_c > 1 and layer.dtype(1) == "INT8":
        return cmsis_conv_wrapper_s8_mve(in_h, in_w, 1, f_h, f_w, out_w, pad_h, pad_w, s_w, d_h, d_w) + out_c * f_h * f_w
    if in_c == out_c and n == 1 and d_h == 1 and d_w == 1:
        return 4 * 124 * f_w * f_h
    return 0


def _cmsis_nn_v7_mve(layer: Layer) -> list[tuple[int, bool, str]]:
    return [r for r in _cmsis_mve_asks(layer) if r[0] > 0]


def _cmsis_mve_asks(layer: Layer) -> list[tuple[int, bool, str]]:
    """CMSIS-NN v7.0.0 with tflite-micro f2b2b3f51's cmsis_nn glue (Zephyr fcc760a), Helium path.
    Zephyr builds it without KERNELS_OPTIMIZED_FOR_SPEED/SIZE, the glue asks no int4 unpack
    buffer (CMSIS-NN reads packed int4), and TRANSPOSE_CONV is the reference kernel."""
    op, data = layer.op.op, layer.dtype(0)
    where = "CMSIS-NN v7.0.0 MVE (Zephyr v4.4.0)"
    if op == "CONV_2D" and data == "INT8":
        return [(cmsis_conv_mve(layer), False, (f"arm_convolve_wrapper_s8_get_buffer_size_mve, {where}: "
                                                "arm_convolve_get_buffer_sizes_s8.c:53-201"))]
    if op == "CONV_2D" and data == "INT16" and layer.dtype(2) in ("INT64", ""):
        _, _, _, in_c = layer.shape(0)
        _, f_h, f_w, _ = layer.shape(1)
        return [(4 * ((in_c * f_w * f_h + 7) // 8) * 8 * 2, False,
                 (f"arm_convolve_wrapper_s16_get_buffer_size: 64 * ceil(Cin * kw * kh / 8), {where}: "
                  "arm_convolve_get_buffer_sizes_s16.c:43-52,70-79 (glue conv.cc:157-161)"))]
    if op == "DEPTHWISE_CONV_2D" and data == "INT8" and layer.dtype(1) in ("INT8", "INT4"):
        bits = 8 if layer.dtype(1) == "INT8" else 4
        return [(cmsis_depthwise_mve(layer), False,
                 (f"arm_depthwise_conv_wrapper_s{bits}_get_buffer_size, {where}: "
                  "arm_depthwise_conv_get_buffer_sizes_s8.c:43-116, _s4.c:43-66"))]
    if op == "FULLY_CONNECTED" and data == "INT8" and layer.dtype(1) == "INT8":
        out, weights = layer.shape(0, outputs=True), layer.tensor(1)
        if len(out) > 2 and weights.shape[-1] % 4 == 0:  # the 1x1 convolution path, fully_connected.cc:128-148
            if weights.per_channel:
                return []
            return [(8 * out[-1], False, ("per-tensor 1x1 path multipliers and shifts: 8 * Cout "
                                          "(tflite-micro@f2b2b3f51 kernels/cmsis_nn/fully_connected.cc:128-148)"))]
        return [(4 * out[-1], False, (f"arm_fully_connected_s8_get_buffer_size_mve: 4 * Cout, {where}: "
                                      "arm_fully_connected_get_buffer_sizes_s8.c:48-60; a scratch without "
                                      "KERNELS_OPTIMIZED_FOR_SPEED (fully_connected.cc:175-178)"))]
    if op == "BATCH_MATMUL":
        return _cmsis_batch_matmul(layer)
    if op == "SOFTMAX" and data == "INT16":
        return [(2 * 513, True, ("int16 softmax exp/reciprocal LUT: 2 * LUTSize<int16_t>() "
                                 "(tflite-micro@f2b2b3f51 kernels/softmax_common.cc:33-45)"))] * 2
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM" and data == "INT16":
        batch, cells, _ = _lstm_dims(layer)
        return ([(2 * batch * cells, False, "CMSIS-NN LSTM buffer: 2 * batch * cells")] * 3
                + [(8 * cells, True, ("CMSIS-NN LSTM int64 kernel sums: 8 * cells "
                                      "(kernels/cmsis_nn/unidirectional_sequence_lstm.cc:118-144,392-413)"))] * 8)
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        return _lstm_cmsis_v7(layer)
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D"):
        # float: the reference kernel, no buffer; int16 DW/FC and int4 FC: none; pools: the
        # avgpool sizes are 0 under MVE (arm_avgpool_get_buffer_sizes_s8.c/_s16.c:42-67)
        return []
    # SVDF: svdf.cc:175-187 as the reference asks (int8 fails at Prepare on Zephyr's build,
    # numerics.yaml `cmsis-v7-mve-svdf-int8`); TRANSPOSE_CONV and the rest: reference kernels
    return _reference_2026(layer)


def _cmsis_batch_matmul(layer: Layer) -> list[tuple[int, bool, str]]:
    """tflite-micro@f2b2b3f51 kernels/cmsis_nn/batch_matmul.cc: a transposed copy of the left
    input when adj_x (:137-170,248-254) and of the right one unless adj_y (:258-264), each a
    TfLiteEvalTensor (12) with its dims (4 + 4 * rank) and data; 28 for the quantization
    (:274-279); int8: arm_fully_connected_s8_get_buffer_size of the output's last dimension,
    4 * it under MVE (:296-303)."""
    found = []
    for position, transposed in ((0, bool(layer.option("adjX", False))), (1, not layer.option("adjY", False))):
        t = layer.tensor(position)
        if transposed and t is not None:
            found.append((12 + 4 + 4 * len(t.shape) + t.byte_size, True, "batch matmul transposed input"))
    if layer.dtype(0) in ("INT8", "INT16"):
        found.append((28, True, "batch matmul quantization data"))
    if layer.dtype(0) == "INT8":
        found.append((4 * layer.shape(0, outputs=True)[-1], False,
                      "arm_fully_connected_s8_get_buffer_size_mve: 4 * output channels (rhs sums)"))
    return found


def _cmsis_nn(version: str, dsp: bool) -> Rule:
    conv = _cmsis_conv_2022 if version == "2022" else _cmsis_conv_v7
    where = "CMSIS-NN e98ee09a (Chirale 2.0.0)" if version == "2022" else "CMSIS-NN v7.0.0 (Zephyr v4.4.0)"

    def rule(layer: Layer) -> list[tuple[int, bool, str]]:
        op = layer.op.op
        requests = _int4_filter(layer) if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") else []
        if op == "CONV_2D" and layer.dtype(0) == "INT8":
            requests.append((conv(layer), False, f"arm_convolve_wrapper_s8_get_buffer_size, {where}"))
        elif op == "DEPTHWISE_CONV_2D" and layer.dtype(0) == "INT8" and dsp:
            requests.append((_cmsis_depthwise(layer, version != "2022"), False,
                             f"arm_depthwise_conv_wrapper_s8_get_buffer_size, {where}"))
        elif op == "AVERAGE_POOL_2D" and layer.dtype(0) == "INT8" and dsp:
            depth = layer.shape(0)[-1] if layer.shape(0) else 0
            requests.append((4 * depth, False, f"arm_avgpool_s8_get_buffer_size: 4 * depth, {where}"))
        elif op == "SVDF":
            requests += _svdf(layer)
        elif op == "TRANSPOSE_CONV":
            requests += _reference_2026(layer)  # the 2023 reference kernel asks the same
        elif op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            requests += _lstm_2023(layer) if version == "2022" else _lstm_cmsis_v7(layer)
        elif op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"):
            requests += _reference_2023(layer) if version == "2022" else _reference_2026(layer)
        return [r for r in requests if r[0] > 0]
    return rule


def _reference_2023(layer: Layer) -> list[tuple[int, bool, str]]:
    """The 2023-01 reference kernels Chirale vendors ask as the 2026 ones do, but for REDUCE
    (kernels/reduce_common.cpp:81-85, 109-110): MEAN/SUM int8 and int16 only an accumulator of
    4 * output elements; MAX/MIN 4 * input rank and 4 * axes."""
    op = layer.op.op
    if op in ("MEAN", "SUM"):
        if layer.dtype(0) not in ("INT8", "INT16"):
            return []
        return [(4 * layer.tensor(0, outputs=True).element_count, False, "reduce accumulator: 4 * output elements")]
    return _reference_2026(layer)


def _lstm_2023(layer: Layer) -> list[tuple[int, bool, str]]:
    """Chirale 2.0.0 runs TFLite-Micro's 2023-01 reference LSTM (no CMSIS-NN LSTM there):
    kernels/unidirectional_sequence_lstm.cpp:1162-1188 (int8) asks 4 int16 and 1 int8 buffers of
    batch * cells and keeps one int32 effective bias per cell for each gate weight present
    (PrecomputeZeroPointTimesWeightWithBias, :817-832); its 384-byte OpData is in
    data/libraries.yaml."""
    batch, cells, _ = _lstm_dims(layer)
    requests = []
    if layer.dtype(0) == "INT8":
        requests += [(batch * cells * 2, False, "LSTM int16 gate buffer: batch * cells * 2")] * 4
        requests.append((batch * cells, False, "LSTM int8 buffer: batch * cells"))
        weights = [i for i in range(1, 9) if layer.tensor(i) is not None]  # input/recurrent gate weights
        requests += [(4 * cells, True, "LSTM effective bias: 4 * cells")] * len(weights)
        if layer.tensor(16) is not None:  # projection weights
            outputs = layer.shape(16)[0]
            requests.append((4 * outputs, True, "LSTM projection effective bias"))
    else:
        gates = 4 if layer.tensor(1) is not None else 3
        requests.append((batch * cells * gates * 4, False, "LSTM float gate buffer"))
    return requests


def _lstm_cmsis_v7(layer: Layer) -> list[tuple[int, bool, str]]:
    """Zephyr v4.4.0 CMSIS-NN LSTM (tflite-micro fcc760a kernels/cmsis_nn/
    unidirectional_sequence_lstm.cc): 3 scratch buffers of 2 * batch * cells and 8 persistent
    kernel-sum arrays of 4 * cells, for int8; the float model runs the reference kernel."""
    batch, cells, _ = _lstm_dims(layer)
    if layer.dtype(0) != "INT8":
        return _reference_2026(layer)
    return ([(2 * batch * cells, False, "CMSIS-NN LSTM buffer: 2 * batch * cells")] * 3
            + [(4 * cells, True, "CMSIS-NN LSTM kernel sums: 4 * cells")] * 8)


def _reference_rule(layer: Layer) -> list[tuple[int, bool, str]]:
    return [r for r in _int4_filter(layer) + _reference_2026(layer) if r[0] > 0]


RULES: dict[str, Rule] = {
    "reference": _reference_rule,
    "cmsis-nn-2022-dsp": _cmsis_nn("2022", dsp=True),
    "cmsis-nn-2022": _cmsis_nn("2022", dsp=False),
    "cmsis-nn-v7-dsp": _cmsis_nn("v7", dsp=True),
    "cmsis-nn-v7-mve": _cmsis_nn_v7_mve,
    "esp-nn": _esp_nn(_esp_generic, _esp_generic, "esp-nn 1.2.3 generic: 0 for convolutions"),
    "esp-nn-esp32s3": _esp_nn(esp_nn_conv_esp32s3_1_2_3, esp_nn_depthwise_esp32s3_1_2_3,
                              "esp-nn 1.2.3 ESP32-S3 (esp_nn_*_esp32s3.c)"),
    "esp-nn-esp32p4": _esp_nn(esp_nn_conv_esp32p4_1_2_3, esp_nn_depthwise_esp32p4_1_2_3,
                              "esp-nn 1.2.3 ESP32-P4 (esp_nn_*_esp32p4.c)"),
    "esp-nn-arduino": _esp_nn(_esp_generic, _esp_generic, "esp-nn generic: 0 for convolutions"),
    "esp-nn-arduino-esp32s3": _esp_nn(_bound(esp_nn_conv_esp32s3_1_2_3, esp_nn_conv_esp32s3_1_1_2),
                                      _bound(esp_nn_depthwise_esp32s3_1_2_3, esp_nn_depthwise_esp32s3_1_1_2),
                                      "the larger of esp-nn 1.1.2 and 1.2.3 ESP32-S3"),
}


def requests(report: ModelReport, kernels: str) -> list[Request]:
    """Every buffer the board's kernels ask for, operator by operator (main subgraph)."""
    try:
        rule = RULES[kernels]
    except KeyError:
        raise ValueError(f"unknown kernel family {kernels!r}") from None
    found = []
    for index, op in enumerate(o for o in report.operators if o.subgraph == 0):
        layer = Layer(index=index, op=op, report=report)
        try:
            asked = rule(layer)
        except (IndexError, ValueError):  # a malformed operator: its kernel would refuse it
            asked = []
        found += [Request(index, op.op, size, persistent, source) for size, persistent, source in asked]
    return found
