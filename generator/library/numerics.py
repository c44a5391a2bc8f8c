"""What a board computes, against what the host computes for the golden vectors.

The golden vectors come from the pinned `tflite-micro` wheel (TFLite-Micro 90b983c2b, reference
kernels). A board runs its own pinned TFLite-Micro and, for some operators, optimized kernels
(CMSIS-NN, esp-nn). data/numerics.yaml lists, per library and kernel family, every operator and
condition where the board computes something else, with the pinned source lines; this module
finds them in a model (`findings`) and deals with each as the table says (`adapt`):

- a rewrite (library/rewrite.py) turns the operator into a form the board computes like the host;
  the change it makes to the outputs is measured on the host and reported;
- a refusal: no project that would compute wrong numbers; the error says why and what would
  work instead;
- a rounding difference the board may make is tolerated: the self-test allows it where it
  carries to the outputs (check/golden.py), and says which operators it is for.

Everything else computes bit for bit what the host computes, so the self-test compares
exactly (tolerance 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Callable

import numpy as np
import yaml

from ..errors import TinygenError
from ..model.analyze import ModelReport, analyze
from ..model.operators import TRANSPOSE_CONV_INPUT, Layer
from . import cmsis_nn_mve, esp_nn_p4
from .pinned import libraries
from .rewrite import REWRITES, Rewritten

if TYPE_CHECKING:  # a board is read as a mapping; the catalog sits above the libraries
    from ..boards.catalog import Board

QUANTIZED = ("INT8", "INT16")
MAX_PASSES = 8  # rewrites are applied one kind at a time; each removes its own findings


@lru_cache(maxsize=None)
def table() -> dict:
    text = (resources.files(__package__) / "data" / "numerics.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Rule:
    id: str
    ops: tuple[str, ...]
    when: str
    effect: str  # wrong | unsafe | fails | rounding
    fix: str  # a rewrite name | refuse | tolerate
    why: str
    source: str
    steps: int = 0
    instead: str = ""


@dataclass(frozen=True)
class Finding:
    op_index: int  # in its subgraph
    op: str
    rule: Rule
    subgraph: int = 0  # 0: the main graph; else e.g. a WHILE's condition or body
    context: str = ""  # what the subgraph is, for a user ("the body of WHILE operator 1")

    @property
    def where(self) -> str:
        return f"{self.op_index} {self.op}" + (f" (in {self.context})" if self.subgraph else "")

    def describe(self) -> str:
        return f"operator {self.where}: {self.rule.why} ({self.rule.source})"


def rules_for(board: Board) -> list[Rule]:
    """The rules of the board's library, then of its kernel family."""
    data = table()
    ids = data["libraries"][board["tflm_library"]]["rules"] + data["kernels"][board["kernels"]]["rules"]
    return [Rule(id=rule_id, **{**data["rules"][rule_id], "ops": tuple(data["rules"][rule_id]["ops"])})
            for rule_id in ids]


def host() -> str:
    """The runtime the golden outputs come from."""
    return table()["host"]


def library_name(board: Board) -> str:

    return libraries()[board["tflm_library"]]["name"]


# --- conditions (numerics.yaml `when`) --------------------------------------------------------

def _data(layer: Layer) -> int:
    return TRANSPOSE_CONV_INPUT if layer.op.op == "TRANSPOSE_CONV" else 0


def _bias(layer: Layer) -> int:
    return 3 if layer.op.op == "TRANSPOSE_CONV" else 2


def _quantized(layer: Layer) -> bool:
    graph = layer.report.tensors[layer.op.subgraph]
    return any(graph[i].dtype in QUANTIZED for i in layer.op.inputs + layer.op.outputs
               if i >= 0 and not graph[i].is_constant)


def _int8(layer: Layer) -> bool:
    return layer.dtype(_data(layer)) == "INT8"


def _int16(layer: Layer) -> bool:
    return layer.dtype(_data(layer)) == "INT16"


def _int32_output(layer: Layer) -> bool:
    return layer.dtype(0, outputs=True) == "INT32"


def _per_channel_weights(layer: Layer) -> bool:
    weights = layer.tensor(1)
    return (layer.dtype(0) in QUANTIZED and weights is not None and len(set(weights.scales)) > 1)


def _fused_activation(layer: Layer) -> bool:
    return layer.dtype(_data(layer)) in QUANTIZED and layer.option("fusedActivationFunction", 0) != 0


def _same_quantization(a, b) -> bool:
    return a is not None and b is not None and a.scale == b.scale and a.zero_point == b.zero_point


def _spatial_mean(layer: Layer) -> bool:
    """int8 MEAN over H, W of [1, H, W, C] or over T of [1, T, C], with equal input and output
    quantization (as an AVERAGE_POOL_2D requires)."""
    inp, out, axes = layer.tensor(0), layer.tensor(0, outputs=True), layer.tensor(1)
    if inp is None or inp.dtype != "INT8" or not _same_quantization(inp, out) or axes is None:
        return False
    values = layer.report.constant(axes)
    if values is None:
        return False
    rank = len(inp.shape)
    wanted = {1, 2} if rank == 4 else {1} if rank == 3 else None
    return wanted is not None and inp.shape[0] == 1 and {int(a) % rank for a in values} == wanted


def _rescaling(layer: Layer) -> bool:
    inp, out = layer.tensor(0), layer.tensor(0, outputs=True)
    return layer.dtype(0) == "INT8" and not _same_quantization(inp, out)


def _half_pixel_not_upscale(layer: Layer) -> bool:
    if not layer.option("halfPixelCenters", False):
        return False
    inp, out = layer.shape(0), layer.shape(0, outputs=True)
    if len(inp) != 4 or len(out) != 4:
        return True
    return any(o < i or o % i for i, o in ((inp[1], out[1]), (inp[2], out[2])))


def _int16_without_bias(layer: Layer) -> bool:
    return _int16(layer) and layer.tensor(_bias(layer)) is None


def _int16_int32_bias(layer: Layer) -> bool:
    return _int16(layer) and layer.dtype(_bias(layer)) == "INT32"


def _batch_matmul_adjoint_broadcast(layer: Layer) -> bool:
    lhs, rhs = layer.shape(0), layer.shape(1)
    return (bool(layer.option("adjX", False)) and len(lhs) >= 3 and int(np.prod(lhs[:-2])) > 1
            and len(rhs) >= 3 and rhs[-3] == 1)


def _softmax_row_longer_than_dim1(layer: Layer) -> bool:
    shape = layer.shape(0)
    return (layer.dtype(0) == "INT8" and layer.dtype(0, outputs=True) == "INT8"
            and (len(shape) < 2 or shape[1] < shape[-1]))


def _without_bias(layer: Layer) -> bool:
    return _int8(layer) and layer.tensor(2) is None


def _conv_geometry(layer: Layer):
    _, _, _, channels = layer.shape(0)
    _, f_h, f_w, filter_channels = layer.shape(1)
    pad_h, pad_w = layer.padding()
    inp, out = layer.shape(0), layer.shape(0, outputs=True)
    s_h, s_w = layer.option("strideH", 1) or 1, layer.option("strideW", 1) or 1
    total_h = max(0, (out[1] - 1) * s_h + f_h - inp[1])
    total_w = max(0, (out[2] - 1) * s_w + f_w - inp[2])
    pointwise = (f_h, f_w, s_h, s_w, pad_h, pad_w) == (1, 1, 1, 1, 0, 0)
    dilated = (layer.option("dilationHFactor", 1) or 1) != 1 or (layer.option("dilationWFactor", 1) or 1) != 1
    return channels, filter_channels, f_h, f_w, pad_h, pad_w, total_h, total_w, pointwise, dilated


def _grouped_pointwise(layer: Layer) -> bool:
    if not _int8(layer) or len(layer.shape(0)) != 4 or len(layer.shape(1)) != 4:
        return False
    channels, filter_channels, *_, pointwise, dilated = _conv_geometry(layer)
    return pointwise and not dilated and filter_channels != channels


def _s3_conv_path_general(layer: Layer) -> tuple | None:
    """The geometry when esp-nn 1.2.3's ESP32-S3 conv takes its general padded path
    (esp_nn_conv_esp32s3.c:422-486: not grouped, not 1x1/stride 1/no padding, not im2col)."""
    if not _int8(layer) or len(layer.shape(0)) != 4 or len(layer.shape(1)) != 4:
        return None
    geometry = _conv_geometry(layer)
    channels, filter_channels, f_h, f_w, *_, pointwise, dilated = geometry
    im2col = f_w * channels < 16 and f_w * f_h * channels >= 16
    if dilated or pointwise or filter_channels != channels or im2col:
        return None
    return geometry


def _s3_conv_uneven_padding(layer: Layer) -> bool:
    geometry = _s3_conv_path_general(layer)
    if geometry is None:
        return False
    *_, pad_h, pad_w, total_h, total_w, _, _ = geometry
    return (pad_h > 0 or pad_w > 0) and (total_h % 2 == 1 or total_w % 2 == 1)


def _s3_conv_odd_padding(layer: Layer) -> bool:
    """esp-nn 1.1.2: no right/bottom padding at all, and no im2col path."""
    if not _int8(layer) or len(layer.shape(0)) != 4 or len(layer.shape(1)) != 4:
        return False
    channels, filter_channels, *_, total_h, total_w, pointwise, dilated = _conv_geometry(layer)
    return not (dilated or pointwise or filter_channels != channels) and (total_h % 2 == 1 or total_w % 2 == 1)


def _depthwise(layer: Layer) -> tuple | None:
    if not _int8(layer) or len(layer.shape(0)) != 4 or len(layer.shape(1)) != 4:
        return None
    if (layer.option("dilationHFactor", 1) or 1) != 1 or (layer.option("dilationWFactor", 1) or 1) != 1:
        return None
    _, in_h, in_w, channels = layer.shape(0)
    _, f_h, f_w, _ = layer.shape(1)
    return in_h, in_w, channels, f_h, f_w, layer.option("depthMultiplier", 1) or 1, layer.padding()


def _s3_depthwise_tiled_padding(layer: Layer) -> bool:
    found = _depthwise(layer)
    if found is None:
        return False
    in_h, in_w, channels, f_h, f_w, multiplier, (pad_h, _) = found
    inp = layer.tensor(0)
    out_h = layer.shape(0, outputs=True)[1]
    s_h = layer.option("strideH", 1) or 1
    total_h = max(0, (out_h - 1) * s_h + f_h - in_h)
    return (multiplier == 1 and channels % 8 == 0 and (f_h, f_w) != (3, 3)
            and 2 * (f_h * f_w * channels + in_h * in_w * channels) > 48 * 1024
            and total_h > 0 and (inp.zero_point or 0) != 0)


def _s3_depthwise_one_sided_padding(layer: Layer) -> bool:
    found = _depthwise(layer)
    if found is None:
        return False
    _, _, channels, f_h, f_w, multiplier, pads = found
    return multiplier == 1 and channels % 16 == 0 and (f_h, f_w) == (3, 3) and pads in ((1, 0), (0, 1))


def _fc_unaligned_rows(layer: Layer) -> bool:
    weights, inp = layer.tensor(1), layer.tensor(0)
    if inp is None or weights is None or inp.dtype != "INT8" or weights.dtype != "INT8" or len(weights.shape) != 2:
        return False
    depth = weights.shape[1]
    return inp.element_count // max(depth, 1) > 1 and depth % 8 != 0


def _s3_softmax_unaligned_rows(layer: Layer) -> bool:
    inp = layer.tensor(0)
    if inp is None or inp.dtype != "INT8" or layer.dtype(0, outputs=True) != "INT8" or not inp.shape:
        return False
    depth = inp.shape[-1]
    return depth >= 32 and depth % 16 != 0 and inp.element_count // depth > 1


def _s3_maxpool_activation(layer: Layer) -> bool:
    shape = layer.shape(0)
    return (_int8(layer) and layer.option("fusedActivationFunction", 0) != 0 and len(shape) == 4
            and shape[-1] % 4 == 0 and shape[-1] % 8 != 0)


def _s3_mul_scalar_elements(layer: Layer) -> bool:
    a, b = layer.tensor(0), layer.tensor(1)
    return (_int8(layer) and a is not None and b is not None and a.shape == b.shape
            and a.element_count % 8 != 0)


def _grouped_conv(layer: Layer) -> bool:
    inp, weights = layer.shape(0), layer.shape(1)
    return layer.dtype(0) in QUANTIZED and len(inp) == 4 and len(weights) == 4 and weights[3] != inp[3]


def _grouped_conv_one_row_filter(layer: Layer) -> bool:
    return _grouped_conv(layer) and layer.shape(1)[1] == 1


def _int16_single_element_rows(layer: Layer) -> bool:
    shape = layer.shape(0)
    return _int16(layer) and bool(shape) and shape[-1] == 1


def _svdf_int8_state(layer: Layer) -> bool:
    return layer.dtype(0) == "INT8" and layer.dtype(2) == "INT8"  # weights_time: the state's type


def _svdf_without_bias(layer: Layer) -> bool:
    return layer.tensor(3) is None


def _batched(layer: Layer) -> bool:
    shape = layer.shape(0)
    return bool(shape) and shape[0] > 1


def _int16_per_channel_weights(layer: Layer) -> bool:
    return _int16(layer) and _per_channel_weights(layer)


def _quantized_rank_below_4(layer: Layer) -> bool:
    return layer.dtype(0) in QUANTIZED and len(layer.shape(0)) < 4


def _quantized_rank_above_4(layer: Layer) -> bool:
    return layer.dtype(0) in QUANTIZED and len(layer.shape(0)) > 4


def _quantized_rank_outside_2_to_4(layer: Layer) -> bool:
    return layer.dtype(0) in QUANTIZED and not 2 <= len(layer.shape(0)) <= 4


def _lstm_batched(layer: Layer) -> bool:
    shape = layer.shape(0)
    return (len(shape) == 3 and not layer.option("timeMajor", False) and shape[0] > 1)


def _negative_alpha(layer: Layer) -> bool:
    return layer.dtype(0) in QUANTIZED and layer.option("alpha", 0.0) < 0


def _dilation(layer: Layer) -> tuple[int, int]:
    return (layer.option("dilationHFactor", 1) or 1), (layer.option("dilationWFactor", 1) or 1)


def _mve_1xn(layer: Layer) -> tuple[int, bool, bool] | None:
    """(total width padding, fails, wrong) when CMSIS-NN v7.0.0's Helium build runs an int8
    CONV_2D as arm_convolve_1_x_n_s8 (arm_convolve_wrapper_s8.c:95-109: one input row, a
    one-row filter, no width dilation, stride_w * Cin a multiple of 4, ungrouped, not a 1x1
    filter without padding). arm_convolve_1_x_n_s8.c:72-212: FAILURE when 2 * pad_w + the
    C remainder of the total != the total (:83-86); the generic kernel when the edge counts do
    not add up (:99-113); else the last `right` columns are wrong unless the right-hand window
    holds exactly kw - 1 input columns (:185-206)."""
    if not _int8(layer) or layer.dtype(1) != "INT8" or len(layer.shape(0)) != 4 or len(layer.shape(1)) != 4:
        return None
    _, in_h, in_w, channels = layer.shape(0)
    _, f_h, f_w, filter_channels = layer.shape(1)
    out_w = layer.shape(0, outputs=True)[2]
    pad_h, pad_w = layer.padding()
    d_h, d_w = _dilation(layer)
    s_w = layer.option("strideW", 1) or 1
    if filter_channels != channels or in_h != 1 or f_h != 1 or d_w != 1 or (s_w * channels) % 4:
        return None
    if (pad_h, pad_w, f_w, d_h) == (0, 0, 1, 1):  # arm_convolve_1x1_s8_fast
        return None
    edges = cmsis_nn_mve.one_by_n_edges(in_w, f_w, out_w, pad_w, s_w)
    if 2 * pad_w + edges.asym != edges.total_pad:
        return edges.total_pad, True, False
    if not edges.complete:
        return edges.total_pad, False, False
    valid = in_w - (s_w * (edges.left + edges.no_pad) - pad_w)
    return edges.total_pad, False, edges.right > 0 and valid != f_w - 1


def _mve_1xn_fails(layer: Layer) -> bool:
    found = _mve_1xn(layer)
    return found is not None and found[1]


def _mve_1xn_valid_remainder(layer: Layer) -> bool:
    found = _mve_1xn(layer)
    return found is not None and found[0] < 0 and found[2]


def _mve_1xn_padded_edge(layer: Layer) -> bool:
    found = _mve_1xn(layer)
    return found is not None and found[0] > 0 and found[2]


def _mve_depthwise_one_channel_row(layer: Layer) -> bool:
    """CMSIS-NN v7.0.0 (Helium, GCC) runs an int8 depthwise layer of one input channel and
    several output channels as a CONV_2D (arm_depthwise_conv_get_buffer_sizes_s8.c:96-99); its
    buffer depends on the stride, which the glue leaves uninitialised in Prepare
    (depthwise_conv.cc:170-174), through the 1xN test: one input row, a one-row filter, no width
    dilation, and not a 1x1 filter without padding."""
    if not _int8(layer) or layer.dtype(1) != "INT8" or len(layer.shape(0)) != 4 or len(layer.shape(1)) != 4:
        return False
    _, in_h, _, channels = layer.shape(0)
    _, f_h, f_w, out_channels = layer.shape(1)
    d_h, d_w = _dilation(layer)
    return (channels == 1 and out_channels > 1 and in_h == 1 and f_h == 1 and d_w == 1
            and (layer.padding(), f_w, d_h) != ((0, 0), 1, 1))


def _fc_per_tensor_1x1_path(layer: Layer) -> bool:
    """The CMSIS-NN FULLY_CONNECTED glue's 1x1-convolution path: int8 input and per-tensor int8
    weights, an output of rank above 2, an input depth a multiple of 4 (fully_connected.cc:128-148)."""
    weights = layer.tensor(1)
    return (_int8(layer) and weights is not None and weights.dtype == "INT8" and not weights.per_channel
            and len(layer.shape(0, outputs=True)) > 2 and bool(weights.shape) and weights.shape[-1] % 4 == 0)


def _p4_conv(layer: Layer) -> tuple | None:
    """The geometry when esp-tflite-micro 1.4.0 runs an int8 CONV_2D on esp-nn's ESP32-P4
    kernel (dilation 1, kernels/esp_nn/conv.cc:181-277)."""
    if not _int8(layer) or len(layer.shape(0)) != 4 or len(layer.shape(1)) != 4 or _dilation(layer) != (1, 1):
        return None
    _, in_h, in_w, channels = layer.shape(0)
    _, f_h, f_w, filter_channels = layer.shape(1)
    _, out_h, _, out_ch = layer.shape(0, outputs=True)
    pad_h, pad_w = layer.padding()
    s_h, s_w = layer.option("strideH", 1) or 1, layer.option("strideW", 1) or 1
    return in_h, in_w, channels, filter_channels, f_h, f_w, out_h, out_ch, pad_h, pad_w, s_h, s_w


def _p4_conv_tiled_overrun(layer: Layer) -> bool:
    """Padding and a window of under 16 values: esp_nn_conv_s8_esp32p4 runs
    esp_nn_conv_s8_tiled (esp_nn_conv_esp32p4.c:1007-1033), which pads the channels to 16 and
    writes more rows than esp_nn_get_conv_scratch_size_esp32p4 sizes with the real channel
    count (esp_nn_p4.py). True when it writes more than it asks."""
    found = _p4_conv(layer)
    if found is None:
        return False
    in_h, in_w, channels, _, f_h, f_w, out_h, out_ch, pad_h, pad_w, s_h, _ = found
    if not (pad_h or pad_w) or f_w * f_h * channels >= 16:
        return False
    return (esp_nn_p4.tiled_scratch_written(in_h, in_w, f_h, f_w, out_h, out_ch, pad_h, pad_w, s_h)
            > esp_nn_p4.tiled_scratch_asked(in_h, in_w, channels, f_h, f_w, out_h, out_ch, pad_h, pad_w, s_h))


def _p4_conv_bottom_row(layer: Layer) -> bool:
    """esp-nn's ESP32-P4 unpadded path (no padding, kw * Cin >= 16, not 1x1 stride 1, ungrouped)
    recomputes the last output row on a 2-row slice from row in_h - kh + 1 when the window
    overhangs the input by one row (SAME with TFLite-Micro's pad_h 0): right only for kh == 3
    (esp_nn_conv_esp32p4.c:578-585)."""
    found = _p4_conv(layer)
    if found is None:
        return False
    in_h, _, channels, filter_channels, f_h, f_w, out_h, _, pad_h, pad_w, s_h, s_w = found
    pointwise = (f_h, f_w, s_h, s_w) == (1, 1, 1, 1)
    return (pad_h == 0 and pad_w == 0 and not pointwise and f_w * channels >= 16 and filter_channels == channels
            and (out_h - 1) * s_h + f_h - in_h == 1 and f_h != 3)


def _p4_depthwise_over_256_channels(layer: Layer) -> bool:
    found = _depthwise(layer)
    return found is not None and found[5] == 1 and found[2] > 256


def _p4_grouped_conv(layer: Layer) -> bool:
    found = _p4_conv(layer)
    return found is not None and found[3] != found[2]


CONDITIONS: dict[str, Callable[[Layer], bool]] = {
    "quantized": _quantized,
    "int16_activations": _int16,
    "int32_output": _int32_output,
    "per_channel_weights": _per_channel_weights,
    "quantized_fused_activation": _fused_activation,
    "quantized_spatial_mean_same_scale": _spatial_mean,
    "quantized_rescaling": _rescaling,
    "half_pixel_centers_not_integer_upscale": _half_pixel_not_upscale,
    "int16_without_bias": _int16_without_bias,
    "int16_int32_bias": _int16_int32_bias,
    "batch_matmul_adjoint_broadcast": _batch_matmul_adjoint_broadcast,
    "softmax_row_longer_than_dim1": _softmax_row_longer_than_dim1,
    "quantized_without_bias": _without_bias,
    "grouped_pointwise": _grouped_pointwise,
    "s3_conv_uneven_padding": _s3_conv_uneven_padding,
    "s3_conv_odd_padding": _s3_conv_odd_padding,
    "s3_depthwise_tiled_padding": _s3_depthwise_tiled_padding,
    "s3_depthwise_one_sided_padding": _s3_depthwise_one_sided_padding,
    "fc_unaligned_rows": _fc_unaligned_rows,
    "s3_softmax_unaligned_rows": _s3_softmax_unaligned_rows,
    "s3_maxpool_activation": _s3_maxpool_activation,
    "s3_mul_scalar_elements": _s3_mul_scalar_elements,
    "grouped_conv": _grouped_conv,
    "grouped_conv_one_row_filter": _grouped_conv_one_row_filter,
    "int16_single_element_rows": _int16_single_element_rows,
    "svdf_int8_state": _svdf_int8_state,
    "svdf_without_bias": _svdf_without_bias,
    "batched": _batched,
    "int16_per_channel_weights": _int16_per_channel_weights,
    "quantized_rank_below_4": _quantized_rank_below_4,
    "quantized_rank_above_4": _quantized_rank_above_4,
    "quantized_rank_outside_2_to_4": _quantized_rank_outside_2_to_4,
    "lstm_batched": _lstm_batched,
    "negative_alpha": _negative_alpha,
    "int8_activations": _int8,
    "mve_conv_1xn_fails": _mve_1xn_fails,
    "mve_conv_1xn_valid_remainder": _mve_1xn_valid_remainder,
    "mve_conv_1xn_padded_edge": _mve_1xn_padded_edge,
    "mve_depthwise_one_channel_row": _mve_depthwise_one_channel_row,
    "fc_per_tensor_1x1_path": _fc_per_tensor_1x1_path,
    "p4_conv_tiled_overrun": _p4_conv_tiled_overrun,
    "p4_conv_bottom_row": _p4_conv_bottom_row,
    "p4_depthwise_over_256_channels": _p4_depthwise_over_256_channels,
    "p4_grouped_conv": _p4_grouped_conv,
}


def findings(report: ModelReport, board: Board) -> list[Finding]:
    """Every (operator, rule) of the board that applies to the model's operators, in every
    subgraph (a WHILE's body runs on the board too). An operator a rewrite or refusal applies
    to is not listed again for a rule that only tolerates. Rewrites work on the main graph: in
    another subgraph a rule tinygen would rewrite for is a refusal."""
    rules = rules_for(board)
    found = []
    for subgraph in range(len(report.tensors)):
        context = _subgraph_context(report, subgraph) if subgraph else ""
        for index, op in enumerate(o for o in report.operators if o.subgraph == subgraph):
            found += _operator_findings(report, rules, subgraph, context, index, op)
    return found


def _operator_findings(report: ModelReport, rules: list[Rule], subgraph: int, context: str, index: int,
                       op) -> list[Finding]:
    name = op.custom_code if op.op == "CUSTOM" else op.op
    layer = Layer(index=index, op=op, report=report)
    matched = []
    for rule in rules:
        if "*" not in rule.ops and name not in rule.ops:
            continue
        try:
            applies = CONDITIONS[rule.when](layer)
        except (IndexError, ValueError, TypeError):  # a malformed operator: its kernel refuses it
            applies = False
        if applies:
            matched.append(rule if subgraph == 0 or rule.fix in ("refuse", "tolerate") else
                           replace(rule, fix="refuse", why=rule.why + " (tinygen rewrites the main graph only)"))
    decisive = sorted((r for r in matched if r.fix != "tolerate"), key=lambda r: r.fix != "refuse")
    return [Finding(index, name, rule, subgraph, context) for rule in (decisive[:1] or matched)]


_SUBGRAPH_ROLES = {"condSubgraphIndex": "the condition", "bodySubgraphIndex": "the body",
                   "thenSubgraphIndex": "the then-branch", "elseSubgraphIndex": "the else-branch",
                   "initSubgraphIndex": "the initializer"}


def _subgraph_context(report: ModelReport, subgraph: int) -> str:
    """Which operator runs `subgraph`, in words."""
    for parent in range(len(report.tensors)):
        for index, op in enumerate(o for o in report.operators if o.subgraph == parent):
            for option, role in _SUBGRAPH_ROLES.items():
                if op.options.get(option) == subgraph:
                    return f"{role} of {op.op} operator {index}" + (f" of subgraph {parent}" if parent else "")
    return f"subgraph {subgraph}"


# --- adapting a model to a board ---------------------------------------------------------------

@dataclass
class Applied:
    """One rewrite tinygen made for the board."""

    rewrite: str
    what: str
    operators: list[int]  # operator indices in the model as it was before this rewrite
    rules: list[Rule]
    exact: bool

    def describe(self) -> str:
        reasons = "; ".join(sorted({f"{r.why} ({r.source})" for r in self.rules}))
        return (f"{self.what} (operator{'s' if len(self.operators) > 1 else ''} "
                f"{', '.join(map(str, self.operators))}), because {reasons}")


@dataclass
class Adapted:
    """The model as the board gets it, and what that took."""

    tflite: bytes
    report: ModelReport
    applied: list[Applied] = field(default_factory=list)
    refused: list[Finding] = field(default_factory=list)
    tolerated: list[Finding] = field(default_factory=list)  # rounding differences left
    change: str = ""  # what the rewrites did to the outputs, measured on the host (pipeline)

    @property
    def exact(self) -> bool:
        """The board computes bit for bit what the host computes for this model."""
        return not self.tolerated

    def to_dict(self) -> dict:
        def finding(f: Finding) -> dict:
            return {"operator": f.op_index, "subgraph": f.subgraph, "op": f.op, "rule": f.rule.id, "effect": f.rule.effect,
                    "steps": f.rule.steps, "why": f.rule.why, "source": f.rule.source}

        return {"exact": self.exact,
                "rewrites": [{"rewrite": a.rewrite, "what": a.what, "operators": a.operators,
                              "rules": [r.id for r in a.rules], "exact": a.exact} for a in self.applied],
                "change": self.change or None,
                "tolerated": [finding(f) for f in self.tolerated],
                "refused": [finding(f) | {"instead": f.rule.instead} for f in self.refused]}

    def summary(self) -> str:
        """A few words for inspect's every-board table: the rewrites, then 'exact' or the
        rounding the self-test allows, or why the board would compute the model wrongly."""
        if self.refused:
            return f"refused: {self.refused[0].op}"
        parts = [a.rewrite.replace("_", " ") for a in self.applied]
        rounding = sorted({"any op" if "*" in f.rule.ops else f.op for f in self.tolerated})
        parts.append("exact" if self.exact else f"±1 step: {', '.join(rounding)}")
        return "; ".join(parts)


def adapt(tflite: bytes, report: ModelReport, board: Board) -> Adapted:
    """Applies the board's rewrites until none is left to apply; refusals and tolerated rounding
    differences are recorded (the pipeline raises the refusals)."""
    applied: list[Applied] = []
    for _ in range(MAX_PASSES):
        found = findings(report, board)
        pending = [f for f in found if f.rule.fix in REWRITES]  # main graph only (findings)
        if not pending:
            return Adapted(tflite=tflite, report=report, applied=applied,
                           refused=[f for f in found if f.rule.fix == "refuse"],
                           tolerated=[f for f in found if f.rule.fix == "tolerate"])
        fix = pending[0].rule.fix
        mine = [f for f in pending if f.rule.fix == fix]
        operators = sorted({f.op_index for f in mine})
        try:
            rewritten: Rewritten = _rewrite(fix, tflite, tuple(operators))
        except (ValueError, IndexError, TypeError, AttributeError) as exc:  # shapes that do not add up
            raise TinygenError(
                f"The model's operator(s) {', '.join(map(str, operators))} are malformed ({exc}), so tinygen "
                f"cannot rewrite them for {board.name} ({mine[0].rule.why}).",
                hint="Re-export the model with the TFLite converter.") from None
        tflite, report = rewritten.tflite, analyze(rewritten.tflite)
        applied.append(Applied(rewrite=fix, what=rewritten.what, operators=operators,
                               rules=list({f.rule.id: f.rule for f in mine}.values()), exact=rewritten.exact))
    raise TinygenError(f"tinygen's rewrites for {board.name} did not converge on this model.",
                       hint="Please report it with the model.")


@lru_cache(maxsize=64)
def _rewrite(fix: str, tflite: bytes, operators: tuple[int, ...]) -> Rewritten:
    """One rewrite, done once per model: the boards of inspect's table share most of them."""
    return REWRITES[fix](tflite, list(operators))


_VERDICTS = {"wrong": "would compute {} wrongly", "fails": "cannot run {}",
             "unsafe": "would write outside its buffers running {}", "rounding": "would round {} differently"}


def refusal_error(adapted: Adapted, board: Board) -> TinygenError:
    first = adapted.refused[0].rule
    same = [f for f in adapted.refused if f.rule.id == first.id]
    where = ", ".join(f.where for f in same[:6]) + (", ..." if len(same) > 6 else "")
    others = sorted({f.rule.id for f in adapted.refused} - {first.id})
    return TinygenError(
        f"{library_name(board)} with {board['kernels']} kernels {_VERDICTS[first.effect].format('this model')}: "
        f"operator{'s' if len(same) > 1 else ''} {where}: {first.why} ({first.source})."
        + (f" Also: {'; '.join(table()['rules'][rule]['why'] for rule in others)}." if others else ""),
        hint=f"Use {first.instead}." if first.instead else "Choose another board (`tinygen inspect MODEL`).",
        short=f"{same[0].op} computed wrongly" if first.effect == "wrong" else
        f"{same[0].op} {'unsafe' if first.effect == 'unsafe' else 'fails'}")


def tolerance_basis(adapted: Adapted) -> str:
    """Why the self-test allows a difference, for the generated comment and report."""
    if adapted.exact:
        return "exact: every operator computes bit for bit what the host computed"
    parts = sorted({f"{f.op} ({f.rule.why})" for f in adapted.tolerated})
    return "these operators may round a step apart from the host: " + "; ".join(parts)


def per_channel_dense(board: Board) -> bool:
    """Whether the board's library computes per-channel FULLY_CONNECTED weights itself (else
    tinygen converts Keras Dense layers with one scale per layer)."""
    return not any(rule.fix == "per_tensor_dense" for rule in rules_for(board))
