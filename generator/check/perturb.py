"""Model variants that round differently: how a model's outputs react when a layer's result
lands on the other side of a rounding step.

An int8 layer with a bias (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV)
computes an int32 accumulator, adds the bias, and rounds `accumulator * multiplier` to its
output step. Optimized kernels (CMSIS-NN, esp-nn) and other runtimes compute that product
with other rounding, so a value that sits near a half step (e.g. -97.5006) can come out one
step apart. Shifting every bias by a fraction of an output step moves every pre-rounding
value by that fraction: an input whose outputs do not change under a small shift in either
direction has no near-tie anywhere, and the change under a half-step shift is how far one
step of rounding difference per layer can carry to the outputs.

The shifted models are the same flatbuffer with bias buffers patched in place; they run on
the same TFLite-Micro runtime.
"""

from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..model.analyze import BUILTIN_OP_NAMES

# Operator -> position of its int32 bias input.
BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}


def shifted_biases(tflite: bytes, steps: float) -> bytes | None:
    """`tflite` with every int8 layer's bias moved by `steps` output steps (at least one
    accumulator unit, rounded to whole units), or None when the model has no such bias."""
    data = bytearray(tflite)
    model = schema.Model.GetRootAsModel(data, 0)
    codes = [BUILTIN_OP_NAMES.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()))
             for c in (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))]
    patched = set()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            position = BIAS_INPUT.get(codes[op.OpcodeIndex()])
            inputs = op.InputsAsNumpy()
            if position is None or not isinstance(inputs, np.ndarray) or len(inputs) <= position \
                    or inputs[position] < 0 or op.OutputsLength() == 0:
                continue
            bias, output = graph.Tensors(int(inputs[position])), graph.Tensors(int(op.Outputs(0)))
            if bias.Type() != schema.TensorType.INT32 or output.Type() != schema.TensorType.INT8 \
                    or bias.Buffer() in patched:
                continue
            values = _buffer_view(data, model.Buffers(bias.Buffer()))
            bias_scales, output_scale = _scales(bias), _scales(output)
            if values is None or bias_scales is None or output_scale is None:
                continue
            units = np.maximum(1, np.round(abs(steps) * output_scale[0] / bias_scales))
            shift = (np.sign(steps) * np.broadcast_to(units, values.shape)).astype(np.int64)
            values[:] = np.clip(values.astype(np.int64) + shift, -2**31, 2**31 - 1).astype(np.int32)
            patched.add(bias.Buffer())
    return bytes(data) if patched else None


def _scales(tensor) -> np.ndarray | None:
    quant = tensor.Quantization()
    if quant is None or quant.ScaleLength() == 0:
        return None
    scales = quant.ScaleAsNumpy().astype(np.float64)
    return scales if np.all(scales > 0) else None


def _buffer_view(data: bytearray, buffer) -> np.ndarray | None:
    """The buffer's bytes as a writable int32 view into `data`."""
    if buffer.Offset() > 1:  # stored after the flatbuffer (large-model layout)
        start, size = buffer.Offset(), buffer.Size()
    else:
        field = buffer._tab.Offset(4)
        if field == 0:
            return None
        start, size = buffer._tab.Vector(field), buffer.DataLength()
    if size == 0 or size % 4:
        return None
    return np.frombuffer(memoryview(data)[start:start + size], dtype="<i4")
