"""Model rewrites that make a board's library compute what the model means.

A pinned TFLite-Micro can run a valid model and still compute something else, or write past a
buffer (data/numerics.yaml says where, with the source lines). Each rewrite here turns the
listed operators into an equivalent form that the library computes as the host's reference
kernels do:

- `per_tensor_dense`: per-channel FULLY_CONNECTED weights requantized to one scale per layer
  (what the converter makes with per-channel quantization of Dense layers turned off);
- `softmax_as_rows`: a SOFTMAX over [..., n] as [rows, n] between two RESHAPEs;
- `unfuse_activation`: a fused ReLU/ReLU6/ReLU-N1-to-1 taken out of the operator into its own
  operator on a tensor with the same quantization (so the clamp is the same);
- `explicit_padding`: SAME padding of a convolution done by a PAD (with the input's zero
  point, which is what implicit padding means) before a VALID convolution;
- `zero_bias`: an all-zero bias for a convolution without one;
- `mean_as_average_pool`: a MEAN over the spatial axes as an AVERAGE_POOL_2D over the whole
  image (which rounds to nearest, as TFLite's MEAN does) and a RESHAPE;
- `pad_as_rank4`: a PAD of a tensor of rank 1 to 3 (e.g. a causal or ZeroPadding1D Conv1D's)
  as a PAD of the same tensor with leading dimensions of 1, between two RESHAPEs.

All but `per_tensor_dense` and `mean_as_average_pool` compute exactly the same values;
`numerics.adapt` measures the change each one makes on the host. Every rewrite goes through the
flatbuffer's object API (`schema.ModelT`) and packs the model again with each buffer 16-byte
aligned, as the converter writes them (kernels read int32 biases and float weights in place; a
Cortex-M0+ faults on a misaligned word).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..errors import TinygenError
from ..model.analyze import BUILTIN_OP_NAMES
from ..model.load import TFLITE_FILE_IDENTIFIER
from ..model.quantization import round_half_away

BUFFER_ALIGNMENT = 16
INT8_WEIGHT_LIMIT = 127  # symmetric int8 weights use [-127, 127] (TFLite's quantization spec)
T = schema.TensorType


@dataclass(frozen=True)
class Rewritten:
    tflite: bytes
    what: str  # one sentence: what changed
    exact: bool  # computes the same values as before (else `numerics` measures the change)


class _AlignedBuffer(schema.BufferT):
    """BufferT packed with its data 16-byte aligned (the generated Pack aligns to 1)."""

    def Pack(self, builder):
        data = None
        if self.data is not None and len(self.data):
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


class Graph:
    """The main subgraph of a model, unpacked for editing."""

    def __init__(self, tflite: bytes):
        try:
            self.model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
        except (IndexError, struct.error, ValueError, TypeError, AttributeError, OverflowError,
                MemoryError, UnicodeDecodeError) as exc:
            raise TinygenError(f"The TFLite flatbuffer is corrupt ({type(exc).__name__}: {exc}); tinygen "
                               "cannot rewrite it for the board.",
                               hint="Re-export the model with the TFLite converter.") from None
        if any(buffer.offset > 1 for buffer in self.model.buffers or []):
            raise TinygenError("tinygen cannot rewrite a model stored with external buffers (the > 2 GB layout).")
        self.graph = self.model.subgraphs[0]
        self.tensors = self.graph.tensors

    def pack(self) -> bytes:
        for i, buffer in enumerate(self.model.buffers or []):
            aligned = _AlignedBuffer()
            aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
            self.model.buffers[i] = aligned
        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
        return bytes(builder.Output())

    def op_name(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        return BUILTIN_OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")

    def values(self, index: int, dtype) -> np.ndarray | None:
        data = self.model.buffers[self.tensors[index].buffer].data
        if data is None or not len(data):
            return None
        return np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtype).copy()

    def store(self, index: int, values: np.ndarray) -> None:
        self.model.buffers[self.tensors[index].buffer].data = np.frombuffer(values.tobytes(), np.uint8).copy()

    def add_tensor(self, like, shape: list[int], suffix: str, values: np.ndarray | None = None,
                   dtype: int | None = None, quantization=None) -> int:
        """A new tensor named after `like` (type and quantization from it unless given), with
        constant `values` if any."""
        tensor = schema.TensorT()
        tensor.shape, tensor.name = [int(d) for d in shape], (like.name or b"") + b"/tinygen_" + suffix.encode()
        tensor.type = like.type if dtype is None else dtype
        tensor.quantization = like.quantization if quantization is None else quantization
        self.model.buffers.append(schema.BufferT())
        tensor.buffer = len(self.model.buffers) - 1
        self.tensors.append(tensor)
        if values is not None:
            self.store(len(self.tensors) - 1, values)
        return len(self.tensors) - 1

    def opcode(self, builtin: int) -> int:
        for i, code in enumerate(self.model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def new_op(self, builtin: int, inputs: list[int], outputs: list[int], options_type: int = 0, options=None):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.opcode(builtin), inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    def reshape(self, source: int, result: int) -> schema.OperatorT:
        """RESHAPE to `result`'s shape, given as a constant shape input (as the converter emits)."""
        shape = [int(d) for d in self.tensors[result].shape]
        new_shape = self.add_tensor(self.tensors[result], [len(shape)], "shape", np.asarray(shape, "<i4"),
                                    dtype=T.INT32, quantization=schema.QuantizationParametersT())
        options = schema.ReshapeOptionsT()
        options.newShape = shape
        return self.new_op(schema.BuiltinOperator.RESHAPE, [source, new_shape], [result],
                           schema.BuiltinOptions.ReshapeOptions, options)

    def replace(self, edits: dict[int, list]) -> None:
        """Operator i becomes the operators edits[i] (in order); others stay."""
        self.graph.operators = [new for i, op in enumerate(self.graph.operators) for new in edits.get(i, [op])]


def _values_of(field) -> np.ndarray:
    """A quantization vector of the object API (a numpy array, a list or None) as an array."""
    return np.zeros(0) if field is None else np.asarray(field)


def _quantization(scale: list[float], zero_point: list[int], axis: int = 0):
    quant = schema.QuantizationParametersT()
    quant.scale, quant.zeroPoint, quant.quantizedDimension = [float(s) for s in scale], [int(z) for z in zero_point], axis
    return quant


# --- per-channel FULLY_CONNECTED -> one scale per layer -------------------------------------

def per_tensor_dense(tflite: bytes, operators: list[int]) -> Rewritten:
    """The listed int8 FULLY_CONNECTEDs get per-tensor weights: the float weights (int8 value x
    its channel's scale) requantized with one symmetric scale, max |w| / 127, and the bias to
    input scale x that scale, rounding halves away from zero as TFLite's quantizer does."""
    g = Graph(tflite)
    done = set()
    for index in operators:
        op = g.graph.operators[index]
        weights = g.tensors[op.inputs[1]]
        quant = weights.quantization
        if weights.buffer in done:  # shared with a layer rewritten already
            continue
        values = g.values(op.inputs[1], np.int8)
        if weights.type != T.INT8 or values is None or np.any(_values_of(quant.zeroPoint)):
            raise TinygenError(f"FULLY_CONNECTED operator {index} has per-channel weights tinygen cannot "
                               "requantize (not constant symmetric int8).")
        channel_scales = np.asarray(quant.scale, dtype=np.float64)
        rows = values.reshape(len(channel_scales), -1).astype(np.float64) * channel_scales[:, None]
        scale = float(np.max(np.abs(rows))) / INT8_WEIGHT_LIMIT or float(channel_scales.max())
        requantized = np.clip(round_half_away(rows / scale), -INT8_WEIGHT_LIMIT, INT8_WEIGHT_LIMIT)
        g.store(op.inputs[1], requantized.astype(np.int8).reshape(-1))
        weights.quantization = _quantization([scale], [0])
        done.add(weights.buffer)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            input_scales = _values_of(g.tensors[op.inputs[0]].quantization.scale)
            _requantize_bias(g, op.inputs[2], channel_scales, scale, float(input_scales[0]) if len(input_scales) else 1.0)
    return Rewritten(tflite=g.pack(), what="per-channel FULLY_CONNECTED weights requantized to one scale per layer",
                     exact=False)


def _requantize_bias(g: Graph, index: int, channel_scales: np.ndarray, scale: float, input_scale: float) -> None:
    """bias x input scale x channel scale, as multiples of input scale x the new scale."""
    dtype = {T.INT32: np.int32, T.INT64: np.int64}.get(g.tensors[index].type)
    values = g.values(index, dtype) if dtype is not None else None
    if values is None:
        return
    limit = np.iinfo(dtype)
    moved = round_half_away(values.astype(np.float64) * channel_scales / scale)
    g.store(index, np.clip(moved, limit.min, limit.max).astype(dtype))
    g.tensors[index].quantization = _quantization([input_scale * scale], [0])


# --- SOFTMAX over the last axis as [rows, n] ------------------------------------------------

def softmax_as_rows(tflite: bytes, operators: list[int]) -> Rewritten:
    """RESHAPE to [elements / n, n] (n: the last dimension, which softmax normalizes over),
    SOFTMAX, RESHAPE back. Softmax treats every row alike, so the values are the same."""
    g = Graph(tflite)
    edits = {}
    for index in operators:
        op = g.graph.operators[index]
        source, result = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
        last = int(source.shape[-1]) if len(source.shape) else 1
        rows = [int(np.prod(source.shape)) // max(last, 1), last]
        flat_in = g.add_tensor(source, rows, "rows")
        flat_out = g.add_tensor(result, rows, "rows")
        before, after = g.reshape(op.inputs[0], flat_in), g.reshape(flat_out, op.outputs[0])
        op.inputs, op.outputs = [flat_in], [flat_out]
        edits[index] = [before, op, after]
    g.replace(edits)
    return Rewritten(tflite=g.pack(), what="softmax input reshaped to [rows, n] (a RESHAPE before and after)",
                     exact=True)


# --- a fused activation as its own operator -------------------------------------------------

ACTIVATION_OPS = {schema.ActivationFunctionType.RELU: schema.BuiltinOperator.RELU,
                  schema.ActivationFunctionType.RELU6: schema.BuiltinOperator.RELU6,
                  schema.ActivationFunctionType.RELU_N1_TO_1: schema.BuiltinOperator.RELU_N1_TO_1}


def unfuse_activation(tflite: bytes, operators: list[int]) -> Rewritten:
    """The operator writes an unclamped tensor with its output's quantization, and a RELU /
    RELU6 / RELU_N1_TO_1 clamps it into the original output: with equal input and output
    quantization the activation copies or clamps values, as the fused one would."""
    g = Graph(tflite)
    edits = {}
    for index in operators:
        op = g.graph.operators[index]
        activation = op.builtinOptions.fusedActivationFunction
        if activation not in ACTIVATION_OPS:
            raise TinygenError(f"Operator {index} ({g.op_name(op)}) has a fused activation tinygen cannot "
                               f"take out (ActivationFunctionType {activation}).")
        output = g.tensors[op.outputs[0]]
        unclamped = g.add_tensor(output, list(output.shape), "unclamped")
        activate = g.new_op(ACTIVATION_OPS[activation], [unclamped], [op.outputs[0]])
        op.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.NONE
        op.outputs = [unclamped]
        edits[index] = [op, activate]
    g.replace(edits)
    return Rewritten(tflite=g.pack(), what="fused activation run as its own operator", exact=True)


# --- SAME padding as a PAD before a VALID convolution ----------------------------------------

def explicit_padding(tflite: bytes, operators: list[int]) -> Rewritten:
    """PAD the input by the amounts TFLite-Micro computes for SAME padding (ComputePadding:
    the smaller half before, the rest after), with the input's zero point (what PAD writes for
    a quantized tensor without a constant), then the convolution with VALID padding."""
    g = Graph(tflite)
    edits = {}
    for index in operators:
        op = g.graph.operators[index]
        source = g.tensors[op.inputs[0]]
        _, in_h, in_w, channels = (int(d) for d in source.shape)
        _, out_h, out_w, _ = (int(d) for d in g.tensors[op.outputs[0]].shape)
        options = op.builtinOptions
        f_h, f_w = (int(d) for d in g.tensors[op.inputs[1]].shape[1:3])
        total_h = max(0, (out_h - 1) * options.strideH + (f_h - 1) * max(options.dilationHFactor, 1) + 1 - in_h)
        total_w = max(0, (out_w - 1) * options.strideW + (f_w - 1) * max(options.dilationWFactor, 1) + 1 - in_w)
        pads = np.asarray([[0, 0], [total_h // 2, total_h - total_h // 2],
                           [total_w // 2, total_w - total_w // 2], [0, 0]], "<i4")
        amounts = g.add_tensor(source, [4, 2], "paddings", pads, dtype=T.INT32,
                               quantization=schema.QuantizationParametersT())
        padded = g.add_tensor(source, [1, in_h + total_h, in_w + total_w, channels], "padded")
        pad = g.new_op(schema.BuiltinOperator.PAD, [op.inputs[0], amounts], [padded],
                       schema.BuiltinOptions.PadOptions, schema.PadOptionsT())
        op.inputs = [padded] + list(op.inputs[1:])
        options.padding = schema.Padding.VALID
        edits[index] = [pad, op]
    g.replace(edits)
    return Rewritten(tflite=g.pack(), what="SAME padding done by a PAD before a VALID convolution", exact=True)


# --- an all-zero bias -----------------------------------------------------------------------

def zero_bias(tflite: bytes, operators: list[int]) -> Rewritten:
    """An int32 bias of zeros, one per output channel, with the scales a bias has: input scale
    x each weight scale."""
    g = Graph(tflite)
    for index in operators:
        op = g.graph.operators[index]
        weights = g.tensors[op.inputs[1]]
        depthwise = g.op_name(op) == "DEPTHWISE_CONV_2D"
        channels = int(weights.shape[-1] if depthwise else weights.shape[0])
        input_scale = float(_values_of(g.tensors[op.inputs[0]].quantization.scale)[0])
        weight_scales = np.broadcast_to(_values_of(weights.quantization.scale).astype(np.float64), (channels,))
        bias = g.add_tensor(weights, [channels], "zero_bias", np.zeros(channels, "<i4"), dtype=T.INT32,
                            quantization=_quantization(input_scale * weight_scales, [0] * channels))
        op.inputs = list(op.inputs[:2]) + [bias] + list(op.inputs[3:])
    return Rewritten(tflite=g.pack(), what="zero bias added to convolutions without one", exact=True)


# --- MEAN over the spatial axes as AVERAGE_POOL_2D ----------------------------------------------

def mean_as_average_pool(tflite: bytes, operators: list[int]) -> Rewritten:
    """MEAN over H and W of [1, H, W, C] (or over T of [1, T, C], viewed as [1, T, 1, C]),
    with equal input and output quantization, becomes an AVERAGE_POOL_2D with one window over
    the whole image and a RESHAPE to the MEAN's output shape. The pool divides the integer sum
    rounding to nearest, as TFLite's MEAN does, but in one step where the MEAN multiplies by a
    fixed-point reciprocal: a near-tie may land a step apart (`numerics.adapt` measures it)."""
    g = Graph(tflite)
    edits = {}
    for index in operators:
        op = g.graph.operators[index]
        source, result = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
        shape = [int(d) for d in source.shape]
        new = []
        if len(shape) == 3:  # [1, T, C] -> [1, T, 1, C]
            image = g.add_tensor(source, [shape[0], shape[1], 1, shape[2]], "image")
            new.append(g.reshape(op.inputs[0], image))
            pool_in, (height, width) = image, (shape[1], 1)
        else:
            pool_in, (height, width) = op.inputs[0], (shape[1], shape[2])
        pooled = g.add_tensor(result, [shape[0], 1, 1, shape[-1]], "pooled")
        options = schema.Pool2DOptionsT()
        options.padding, options.strideW, options.strideH = schema.Padding.VALID, 1, 1
        options.filterWidth, options.filterHeight = width, height
        options.fusedActivationFunction = schema.ActivationFunctionType.NONE
        new.append(g.new_op(schema.BuiltinOperator.AVERAGE_POOL_2D, [pool_in], [pooled],
                            schema.BuiltinOptions.Pool2DOptions, options))
        new.append(g.reshape(pooled, op.outputs[0]))
        edits[index] = new
    g.replace(edits)
    return Rewritten(tflite=g.pack(), what="MEAN over the image run as one AVERAGE_POOL_2D window", exact=False)


# --- PAD of a tensor of rank 1 to 3 as a 4-D PAD ----------------------------------------------

PAD_RANK = 4
_PADDINGS_TYPES = {T.INT32: "<i4", T.INT64: "<i8"}  # what a PAD's paddings may be


def pad_as_rank4(tflite: bytes, operators: list[int]) -> Rewritten:
    """RESHAPE to rank 4 (leading dimensions of 1), PAD with a [0, 0] row of paddings for each
    added dimension, RESHAPE back. A dimension of 1 padded by nothing stays as it was, so the
    values are the same."""
    g = Graph(tflite)
    edits = {}
    for index in operators:
        op = g.graph.operators[index]
        source, result, paddings = (g.tensors[i] for i in (op.inputs[0], op.outputs[0], op.inputs[1]))
        rank = len(source.shape)
        dtype = _PADDINGS_TYPES.get(paddings.type)
        values = g.values(op.inputs[1], dtype) if dtype else None
        if not 1 <= rank < PAD_RANK or values is None:
            raise TinygenError(f"PAD operator {index} cannot be run as a 4-D PAD (its input has rank {rank}"
                               f"{'' if values is not None else ' and its paddings are not a constant'}).")
        lead = [1] * (PAD_RANK - rank)
        wide_in = g.add_tensor(source, lead + list(source.shape), "rank4")
        wide_out = g.add_tensor(result, lead + list(result.shape), "rank4")
        wide_paddings = g.add_tensor(paddings, [PAD_RANK, 2], "rank4",
                                     np.concatenate([np.zeros(2 * len(lead)), values]).astype(dtype))
        before, after = g.reshape(op.inputs[0], wide_in), g.reshape(wide_out, op.outputs[0])
        op.inputs, op.outputs = [wide_in, wide_paddings, *op.inputs[2:]], [wide_out]
        edits[index] = [before, op, after]
    g.replace(edits)
    return Rewritten(tflite=g.pack(), what="PAD of a tensor of rank below 4 run on the same tensor as 4-D "
                     "(a RESHAPE before and after)", exact=True)


REWRITES = {"per_tensor_dense": per_tensor_dense, "softmax_as_rows": softmax_as_rows,
            "unfuse_activation": unfuse_activation, "explicit_padding": explicit_padding,
            "zero_bias": zero_bias, "mean_as_average_pool": mean_as_average_pool, "pad_as_rank4": pad_as_rank4}
