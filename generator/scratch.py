"""Arena the target's optimized kernels need beyond the host minimum, computed per layer.

Kernel families (the `kernels` key of each board in boards.yaml):

- "reference", "cmsis-nn": nothing extra. Measured on Cortex-M4/M7 under QEMU (see
  shared FACTS §2): 32-bit structs (TfLiteEvalTensor 12 B vs 24 B on the host,
  NodeAndRegistration 32 B vs 64 B) save more than CMSIS-NN's buffers take, so the
  64-bit host minimum is enough.
- "esp-nn" (ESP32, ESP32-C3, ESP32-C6: esp-nn's generic optimized C, the default
  CONFIG_NN_OPTIMIZED): esp-tflite-micro's esp_nn kernels (add, conv, depthwise_conv,
  fully_connected, mul, pooling, softmax; tensorflow/lite/micro/kernels/esp_nn/) ask esp-nn
  for scratch in conv, depthwise_conv and softmax Prepare(); the generic versions return 0
  for both convolutions and width * 4 bytes for SOFTMAX (`esp_nn_get_softmax_scratch_size_opt`).
  Their persistent data (per-channel multipliers, op data) is the reference kernels' own,
  which the host measurement already holds (on the host with 64-bit structs, larger).
- "esp-nn-esp32s3" (ESP32-S3 assembly kernels): CONV_2D and DEPTHWISE_CONV_2D request
  scratch for padded/re-laid-out inputs and filters. The formulas below are UPPER BOUNDS
  of espressif/esp-nn's `esp_nn_get_conv_scratch_size_esp32s3` and
  `esp_nn_get_depthwise_conv_scratch_size_esp32s3` (src/convolution/*_esp32s3.c): every
  branch's terms are added, channel counts rounded up to 16, so a newer esp-nn that
  shuffles branches still fits. (Checked term by term against the s8 conv version: 1x1
  branch `in_w*in_h*ch8 + ch8*out_ch + 16*ch8 + 32`, general branch
  `(in_w+2*pad_w)*(in_h+2*pad_h)*in_ch + f_w*f_h*ch16*out_ch + out_ch*4 + 32`.)

A scratch buffer lives only while its operator runs, and at that moment the live
activations are at most the host's peak, so the margin is the largest single scratch
request plus every persistent buffer (lookup tables), each with 16 bytes of alignment.
"""

from __future__ import annotations

from .analyze import ModelReport, OperatorInfo

ALIGN_SLACK = 16  # TFLite-Micro aligns each arena buffer to 16 bytes


def kernel_scratch_bytes(report: ModelReport, kernels: str) -> tuple[int, list[str]]:
    """Return (bytes, one explanatory line per contributing layer)."""
    try:
        rule = SCRATCH_RULES[kernels]
    except KeyError:
        raise ValueError(f"unknown kernel family {kernels!r}") from None
    largest, persistent, lines = 0, 0, []
    for index, op in enumerate(report.operators):
        scratch, kept = rule(report, op)
        if scratch:
            largest = max(largest, scratch + ALIGN_SLACK)
            lines.append(f"operator {index} {op.op}: {scratch:,} B scratch while it runs")
        if kept:
            persistent += kept + ALIGN_SLACK
            lines.append(f"operator {index} {op.op}: {kept:,} B kept for the whole run")
    return largest + persistent, lines


def _shape(report: ModelReport, op: OperatorInfo, position: int, outputs: bool = False) -> list[int]:
    indices = op.outputs if outputs else op.inputs
    tensor = report.tensor(op.subgraph, indices[position]) if position < len(indices) else None
    return tensor.shape if tensor is not None else []


def _is_int8(report: ModelReport, op: OperatorInfo) -> bool:
    tensor = report.tensor(op.subgraph, op.inputs[0]) if op.inputs else None
    return tensor is not None and tensor.dtype == "INT8"


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def _padding(op: OperatorInfo, in_h: int, in_w: int, out_h: int, out_w: int, f_h: int, f_w: int):
    """Total padding (height, width) of a SAME-padded window op, 0 for VALID."""
    if op.options.get("padding", 1) != 0:  # schema Padding: SAME = 0, VALID = 1
        return 0, 0
    s_h, s_w = op.options.get("strideH", 1), op.options.get("strideW", 1)
    return (max(0, (out_h - 1) * s_h + f_h - in_h), max(0, (out_w - 1) * s_w + f_w - in_w))


def _none(report: ModelReport, op: OperatorInfo) -> tuple[int, int]:
    return 0, 0


def _esp_nn_generic(report: ModelReport, op: OperatorInfo) -> tuple[int, int]:
    if not _is_int8(report, op):
        return 0, 0  # esp-nn only replaces int8 kernels; float ones are TFLite-Micro's
    if op.op == "SOFTMAX":
        shape = _shape(report, op, 0)
        return (shape[-1] * 4 if shape else 0), 0
    return 0, 0


def _esp_nn_esp32s3(report: ModelReport, op: OperatorInfo) -> tuple[int, int]:
    if not _is_int8(report, op) or op.op not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return _esp_nn_generic(report, op)
    inp, flt, out = _shape(report, op, 0), _shape(report, op, 1), _shape(report, op, 0, outputs=True)
    if len(inp) != 4 or len(flt) != 4 or len(out) != 4:
        return 0, 0
    _, in_h, in_w, in_ch = inp
    _, out_h, out_w, out_ch = out
    f_h, f_w = flt[1], flt[2]
    pad_h, pad_w = _padding(op, in_h, in_w, out_h, out_w, f_h, f_w)
    ch16 = _round_up(in_ch, 16)
    padded_input = (in_w + pad_w + f_w) * (in_h + pad_h + f_h) * ch16
    if op.op == "CONV_2D":
        window = _round_up(f_w * f_h * in_ch, 16)
        filters = f_w * f_h * ch16 * out_ch
        aligned_rows = _round_up(f_w * in_ch, 16) * f_h * out_ch
        im2col = out_ch * 4 + 16 + out_ch * window + 16 + window
        transpose = 2 * 8 * ch16
        return padded_input + filters + aligned_rows + im2col + transpose + 64 + 64, 0
    filters = f_w * f_h * _round_up(out_ch, 16)
    out_buffer = out_w * out_h * _round_up(out_ch, 16)
    return 2 * (filters + padded_input) + out_buffer + 64, 0


SCRATCH_RULES = {
    "reference": _none,
    "cmsis-nn": _none,
    "esp-nn": _esp_nn_generic,
    "esp-nn-esp32s3": _esp_nn_esp32s3,
}
