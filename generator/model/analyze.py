"""Stage 3: .tflite bytes -> ModelReport (operators, tensors, inputs/outputs, sizes).

Reads the flatbuffer with the schema module that ships in the `tflite-micro` wheel; never
imports TensorFlow. Also rejects what TFLite-Micro can never run (string tensors, dynamic
non-batch dimensions) and flatbuffers whose offsets point outside the file.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..errors import TinygenError
from .load import TFLITE_FILE_IDENTIFIER

BUILTIN_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TENSOR_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
BUILTIN_OPTIONS_NAMES = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
PADDING_NAMES = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}

# numpy dtype names for the tensor types TFLite-Micro handles.
NUMPY_DTYPES = {
    "FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8",
    "INT64": "int64", "BOOL": "bool", "INT16": "int16", "INT8": "int8", "FLOAT64": "float64",
    "UINT32": "uint32", "UINT16": "uint16",
}


# Bits per element of each tensor type (TfLiteTypeGetSize; int4 is packed two to a byte).
ELEMENT_BITS = {"FLOAT32": 32, "FLOAT16": 16, "FLOAT64": 64, "INT32": 32, "UINT32": 32, "INT64": 64,
                "UINT64": 64, "INT16": 16, "UINT16": 16, "INT8": 8, "UINT8": 8, "BOOL": 8, "INT4": 4,
                "COMPLEX64": 64, "RESOURCE": 0, "STRING": 0}


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: list[int]
    dtype: str  # TFLite schema type name, e.g. "INT8"
    scale: float | None = None  # per-tensor quantization (first entry when per-channel)
    zero_point: int | None = None
    per_channel: bool = False
    is_constant: bool = False
    is_variable: bool = False  # state kept across inferences (allocated in the arena's tail)
    dynamic_axes: list[int] = field(default_factory=list)  # -1 in shape_signature, past batch
    signature_name: str | None = None  # model inputs/outputs: the name in the serving signature
                                       # (Keras input names; Keras 3 outputs are output_<i>)
    keras_name: str | None = None  # outputs of a converted Keras model: the Keras output name
    scales: list[float] = field(default_factory=list)  # every quantization scale (per channel)
    buffer: int = 0  # the flatbuffer buffer holding a constant's data

    @property
    def display_name(self) -> str:
        """What a user calls it: the Keras name, the signature name ('Keras output <i>' for a
        Keras 3 output whose name is unknown), else the tensor name."""
        if self.keras_name:
            return self.keras_name
        match = re.fullmatch(r"output_(\d+)", self.signature_name or "")
        return f"Keras output {match.group(1)}" if match else self.signature_name or self.name

    @property
    def numpy_dtype(self) -> str:
        return NUMPY_DTYPES.get(self.dtype, "")

    @property
    def element_count(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def byte_size(self) -> int:
        """Bytes of its data (what TFLite-Micro allocates for a non-constant tensor)."""
        return (self.element_count * ELEMENT_BITS.get(self.dtype, 32) + 7) // 8

    def public(self) -> dict:
        """The fields `inspect --json` promises."""
        return {"name": self.name, "signature_name": self.signature_name,
                "display_name": self.display_name, "shape": self.shape,
                "dtype": self.numpy_dtype or self.dtype.lower(), "scale": self.scale,
                "zero_point": self.zero_point}


@dataclass
class OperatorInfo:
    op: str  # builtin name ("CONV_2D") or "CUSTOM"
    custom_code: str | None
    subgraph: int
    inputs: list[int]  # tensor indices, -1 = optional input absent
    outputs: list[int]
    options: dict = field(default_factory=dict)  # builtin options (stride, padding, ...)


@dataclass
class ModelReport:
    model_bytes: int
    sha256: str
    schema_version: int
    ops: list[str]  # distinct builtin operator names, sorted
    custom_ops: list[str]  # distinct custom codes (Flex ops start with "Flex")
    operators: list[OperatorInfo]
    tensors: list[list[TensorInfo]]  # per subgraph
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    parameter_count: int
    weights_bytes: int
    quantization: str  # inferred: "int8", "int16x8", "float16", "dynamic", "none"
    data: bytes = field(default=b"", repr=False)  # the flatbuffer itself
    # per subgraph, its input and output tensor indices (a WHILE's loop variables, in order)
    subgraph_inputs: list[list[int]] = field(default_factory=list)
    subgraph_outputs: list[list[int]] = field(default_factory=list)

    def called_subgraph(self, op: OperatorInfo, option: str) -> int | None:
        """The subgraph a control-flow operator runs (its `option`, e.g. "bodySubgraphIndex"),
        when it comes after the operator's own, as the converter writes them (so following
        calls can never go round in a cycle); else None."""
        subgraph = op.options.get(option)
        return subgraph if isinstance(subgraph, int) and op.subgraph < subgraph < len(self.tensors) else None

    def constant(self, tensor: TensorInfo) -> np.ndarray | None:
        """A constant tensor's values (None for a tensor without data or of an unknown type)."""
        if not tensor.is_constant or not tensor.numpy_dtype:
            return None
        model = schema.Model.GetRootAsModel(self.data, 0)
        raw = model.Buffers(tensor.buffer).DataAsNumpy()
        if not isinstance(raw, np.ndarray):
            return None
        return np.frombuffer(raw.tobytes(), dtype=np.dtype(tensor.numpy_dtype).newbyteorder("<"))

    @property
    def quantization_label(self) -> str:
        """The quantization as users read it: 'int8', or e.g. 'int8 (float32 input/output)'
        for a full-integer model whose boundary tensors have other types."""
        if self.quantization not in ("int8", "int16x8"):
            return self.quantization
        core = {"int8": {"int8", "uint8"}, "int16x8": {"int16"}}[self.quantization]

        def others(tensors: list[TensorInfo]) -> str:
            return "/".join(sorted({t.numpy_dtype or t.dtype.lower() for t in tensors} - core))

        ins, outs = others(self.inputs), others(self.outputs)
        parts = ([f"{ins} input/output"] if ins and ins == outs
                 else [f"{ins} input"] * bool(ins) + [f"{outs} output"] * bool(outs))
        return f"{self.quantization} ({', '.join(parts)})" if parts else self.quantization

    @property
    def state(self) -> str:
        """What the model keeps from one inference to the next: "none"; "variables" (variable
        tensors, e.g. an LSTM's, which MicroInterpreter::Reset() restores); or "resource
        variables" (VAR_HANDLE, e.g. a streaming model, set by a CALL_ONCE initializer that
        no pinned TFLite-Micro runs again)."""
        if any(op.op == "VAR_HANDLE" for op in self.operators):
            return "resource variables"
        if any(t.is_variable for graph in self.tensors for t in graph):
            return "variables"
        return "none"

    def name_outputs(self, keras_names: list[str]) -> None:
        """Give each output its Keras name: the converter calls Keras output i 'output_i' in
        the signature (Keras 3), or by the name itself (tf_keras)."""
        for position, name in enumerate(keras_names):
            for tensor in self.outputs:
                if tensor.signature_name in (f"output_{position}", name):
                    tensor.keras_name = name

    @property
    def tensor_count(self) -> int:
        return sum(len(t) for t in self.tensors)

    def tensor(self, subgraph: int, index: int) -> TensorInfo | None:
        return self.tensors[subgraph][index] if index >= 0 else None

    def producer_name(self, op: str) -> str | None:
        """Name of the first output tensor of an operator: TensorFlow names it after the
        Keras layer (e.g. 'sequential/lstm/...'), the best hint of which layer made it."""
        for info in self.operators:
            if op in (info.op, info.custom_code) and info.outputs:
                return self.tensors[info.subgraph][info.outputs[0]].name
        return None


def analyze(data: bytes) -> ModelReport:
    if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
        raise TinygenError("Not a TFLite model: the flatbuffer identifier 'TFL3' is missing.")
    try:
        return _analyze(bytes(data))
    except TinygenError:
        raise
    except (IndexError, struct.error, ValueError, TypeError, AttributeError, OverflowError,
            MemoryError, UnicodeDecodeError) as exc:
        raise TinygenError(
            f"The TFLite flatbuffer is corrupt or truncated ({type(exc).__name__}: {exc}).",
            hint="Re-export the model with the TFLite converter.",
        ) from None


def _check_length(count: int, data: bytes, what: str) -> int:
    # Each vector element takes at least 4 bytes; anything longer points outside the file.
    if count < 0 or count * 4 > len(data):
        raise TinygenError(f"The TFLite flatbuffer is corrupt: its {what} count ({count}) "
                           "does not fit in the file.")
    return count


def _analyze(data: bytes) -> ModelReport:
    model = schema.Model.GetRootAsModel(data, 0)
    for what, length in (("subgraph", model.SubgraphsLength()), ("buffer", model.BuffersLength()),
                         ("operator code", model.OperatorCodesLength())):
        _check_length(length, data, what)
    if model.SubgraphsLength() == 0:
        raise TinygenError("The TFLite model has no subgraphs.")

    buffer_sizes = [_buffer_size(model.Buffers(i), data) for i in range(model.BuffersLength())]
    opcodes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = BUILTIN_OP_NAMES.get(builtin)
        if name is None:
            raise TinygenError(f"The model uses builtin operator code {builtin}, which this "
                               "version of the TFLite schema does not know.")
        custom = code.CustomCode().decode("utf-8", "replace") if code.CustomCode() else None
        opcodes.append((name, custom))

    tensors: list[list[TensorInfo]] = []
    operators: list[OperatorInfo] = []
    subgraph_inputs, subgraph_outputs = [], []
    parameter_count = 0
    weights_bytes = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        graph_tensors = []
        for t in range(_check_length(graph.TensorsLength(), data, "tensor")):
            info = _tensor_info(graph.Tensors(t), t, buffer_sizes, data)
            if info.is_constant:
                parameter_count += info.element_count
                weights_bytes += buffer_sizes[graph.Tensors(t).Buffer()]
            graph_tensors.append(info)
        tensors.append(graph_tensors)
        for io, read in ((subgraph_inputs, graph.InputsAsNumpy), (subgraph_outputs, graph.OutputsAsNumpy)):
            io.append([int(i) for i in _numpy(read())])
            if any(not 0 <= i < len(graph_tensors) for i in io[-1]):
                raise TinygenError(f"The TFLite flatbuffer is corrupt: subgraph {s}'s inputs or outputs refer "
                                   f"to a tensor outside its {len(graph_tensors)}.")
        for o in range(_check_length(graph.OperatorsLength(), data, "operator")):
            op = graph.Operators(o)
            index = op.OpcodeIndex()
            if index >= len(opcodes):
                raise TinygenError(f"The TFLite flatbuffer is corrupt: operator {o} uses opcode "
                                   f"{index} of {len(opcodes)}.")
            ins = [int(i) for i in _numpy(op.InputsAsNumpy())]
            outs = [int(i) for i in _numpy(op.OutputsAsNumpy())]
            for i in ins + outs:
                if i >= len(graph_tensors) or i < -1:
                    raise TinygenError(f"The TFLite flatbuffer is corrupt: operator {o} refers "
                                       f"to tensor {i} of {len(graph_tensors)}.")
            name, custom = opcodes[index]
            operators.append(OperatorInfo(op=name, custom_code=custom, subgraph=s, inputs=ins,
                                          outputs=outs, options=_options(op)))

    main = model.Subgraphs(0)
    inputs = [tensors[0][int(i)] for i in _numpy(main.InputsAsNumpy())]
    outputs = [tensors[0][int(i)] for i in _numpy(main.OutputsAsNumpy())]
    _name_from_signature(model, inputs, outputs)
    _reject_unrunnable(tensors, inputs, main)

    used = {(info.op, info.custom_code) for info in operators}
    return ModelReport(
        model_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        schema_version=model.Version(),
        ops=sorted({op for op, custom in used if op != "CUSTOM"}),
        custom_ops=sorted({custom or "" for op, custom in used if op == "CUSTOM"}),
        operators=operators,
        tensors=tensors,
        inputs=inputs,
        outputs=outputs,
        parameter_count=parameter_count,
        weights_bytes=weights_bytes,
        quantization=_infer_quantization(tensors, operators),
        data=data,
        subgraph_inputs=subgraph_inputs,
        subgraph_outputs=subgraph_outputs,
    )


def _numpy(value) -> np.ndarray:
    # The generated accessors return 0 instead of an empty array for absent vectors.
    return value if isinstance(value, np.ndarray) else np.zeros(0, dtype=np.int32)


def _buffer_size(buffer, data: bytes) -> int:
    offset, size = buffer.Offset(), buffer.Size()
    if offset > 1:  # data stored after the flatbuffer (models > 2 GB layout)
        if offset + size > len(data):
            raise TinygenError(f"The TFLite flatbuffer is corrupt: a buffer spans bytes "
                               f"{offset}..{offset + size} of a {len(data)}-byte file.")
        return size
    length = buffer.DataLength()
    if length > len(data):
        raise TinygenError("The TFLite flatbuffer is corrupt: a buffer is larger than the file.")
    return length


def _tensor_info(tensor, index: int, buffer_sizes: list[int], data: bytes) -> TensorInfo:
    dtype = TENSOR_TYPE_NAMES.get(tensor.Type(), f"TYPE_{tensor.Type()}")
    shape = [int(d) for d in _numpy(tensor.ShapeAsNumpy())]
    buffer = tensor.Buffer()
    if buffer >= len(buffer_sizes):
        raise TinygenError(f"The TFLite flatbuffer is corrupt: tensor {index} uses buffer "
                           f"{buffer} of {len(buffer_sizes)}.")
    info = TensorInfo(index=index, name=(tensor.Name() or b"").decode("utf-8", "replace"),
                      shape=shape, dtype=dtype, is_constant=buffer > 0 and buffer_sizes[buffer] > 0,
                      is_variable=bool(tensor.IsVariable()), buffer=buffer)
    quant = tensor.Quantization()
    if quant is not None and quant.ScaleLength() > 0:
        _check_length(quant.ScaleLength(), data, "quantization scale")
        info.scale = float(quant.Scale(0))
        info.zero_point = int(quant.ZeroPoint(0)) if quant.ZeroPointLength() else 0
        info.per_channel = quant.ScaleLength() > 1
        info.scales = [float(v) for v in quant.ScaleAsNumpy()]
    signature = [int(d) for d in _numpy(tensor.ShapeSignatureAsNumpy())]
    info.dynamic_axes = [i for i, d in enumerate(signature) if d == -1 and i > 0]
    return info


def _options(op) -> dict:
    """The builtin options the arena planner needs (strides, padding, dilation, ...)."""
    kind = BUILTIN_OPTIONS_NAMES.get(op.BuiltinOptionsType(), "NONE")
    table = op.BuiltinOptions()
    if kind == "NONE" or table is None:
        return {}
    cls = getattr(schema, kind + "T", None)
    if cls is None:
        return {}
    obj = cls.InitFromBuf(table.Bytes, table.Pos)
    return {k: v for k, v in vars(obj).items() if isinstance(v, (int, float, bool))}


def _name_from_signature(model, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> None:
    """Set `signature_name` from the first signature of subgraph 0 (the converter writes
    `serving_default`), which names the model's inputs and outputs as the Keras model does."""
    for s in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(s)
        if signature.SubgraphIndex() != 0:
            continue
        for tensors, count, entry in ((inputs, signature.InputsLength(), signature.Inputs),
                                      (outputs, signature.OutputsLength(), signature.Outputs)):
            by_index = {t.index: t for t in tensors}
            for i in range(count):
                item = entry(i)
                if item.TensorIndex() in by_index and item.Name():
                    by_index[item.TensorIndex()].signature_name = item.Name().decode("utf-8", "replace")
        return


def first_output(outputs: list[TensorInfo]) -> int:
    """Position of the output a user calls the first: the signature's output_0 (the Keras
    model's first output), else the first in the .tflite."""
    return next((k for k, t in enumerate(outputs) if t.signature_name == "output_0"), 0)


def in_model_order(tensors: list[TensorInfo], names: list[str], items: list) -> list:
    """`items` given in Keras order (one per name in `names`), reordered to the model's
    `tensors`: matched by signature name, or `output_<i>` for the i-th (Keras 3 names
    outputs that way). Kept as they are when the names do not all match (one tensor, or a
    model converted without a signature)."""
    by_name = {t.signature_name: k for k, t in enumerate(tensors) if t.signature_name}
    found = [by_name.get(name, by_name.get(f"output_{i}")) for i, name in enumerate(names)]
    if len(names) != len(tensors) or None in found or len(set(found)) != len(found):
        return list(items)
    return [item for _, item in sorted(zip(found, items), key=lambda pair: pair[0])]


def _reject_unrunnable(tensors: list[list[TensorInfo]], inputs: list[TensorInfo], main) -> None:
    if main.InputsLength() == 0 or main.OutputsLength() == 0:
        raise TinygenError("The TFLite model's main subgraph declares no "
                           + ("inputs" if main.InputsLength() == 0 else "outputs")
                           + "; the firmware would have nothing to feed or read.",
                           hint="Re-export the model with the TFLite converter.")
    for t in (t for graph in tensors for t in graph):
        if t.dtype == "STRING":
            raise TinygenError(f"Tensor '{t.name}' has type string; TFLite-Micro has no string "
                               "tensors.", hint="Do text preprocessing outside the model.")
    for t in inputs:
        if t.dynamic_axes:
            raise TinygenError(
                f"Input '{t.name}' has dynamic dimension(s) at axis "
                f"{', '.join(map(str, t.dynamic_axes))} (shape signature). TFLite-Micro needs "
                "every dimension but the batch fixed.",
                hint="Re-export the model with a fixed input shape.")
    for subgraph, graph in enumerate(tensors[1:], start=1):
        growing = next((t for t in graph if t.dynamic_axes and not t.is_constant), None)
        if growing is not None:
            # e.g. Keras 3's LSTM/GRU with return_sequences=True: its WHILE body slices the
            # steps so far out of the sequence tensor. TFLite-Micro sizes each tensor once, from
            # the flatbuffer's shape, so the tflite-micro wheel computes such a loop wrongly
            # (off by 0.14 against TFLite at 6 steps) and from 14 steps never ends.
            raise TinygenError(
                f"Tensor '{growing.name}' of subgraph {subgraph} (a loop's) changes shape from one step to the "
                f"next (dynamic axes {', '.join(map(str, growing.dynamic_axes))}). TFLite-Micro gives every "
                "tensor one fixed size, so it would compute this model wrongly or never finish. A Keras 3 "
                "LSTM, GRU or SimpleRNN with return_sequences=True converts so.",
                hint="Use LSTM(..., return_sequences=True, unroll=True) (fixed shapes), or build the model "
                "with tf_keras and pass the .h5 (its LSTM converts to one UNIDIRECTIONAL_SEQUENCE_LSTM).")


# Operators that only change a tensor's type at the model's boundary.
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")


def _infer_quantization(tensors: list[list[TensorInfo]], operators: list[OperatorInfo]) -> str:
    """From the tensors the operators compute with: their inputs and outputs, leaving out a
    float model input that only a QUANTIZE reads and a float output only a DEQUANTIZE writes
    (the converter's default full-integer model has both), and the placeholder tensors an
    int8 LSTM lists as `intermediates` (float, no data, never computed)."""
    weights, activations = set(), set()
    for op in operators:
        graph = tensors[op.subgraph]
        inputs = [graph[i] for i in op.inputs if i >= 0]
        outputs = [graph[i] for i in op.outputs if i >= 0]
        if op.op == "QUANTIZE":
            inputs = [t for t in inputs if t.is_constant]  # the float side is the boundary
        elif op.op == "DEQUANTIZE":
            outputs = []
        for t in inputs + outputs:
            (weights if t.is_constant else activations).add(t.dtype)
    if "FLOAT16" in weights:
        return "float16"
    if "FLOAT32" not in activations and ({"INT8", "UINT8"} & activations):
        return "int8"  # an int8 LSTM keeps its cell state in int16: still int8
    if "FLOAT32" not in activations and "INT16" in activations and "INT8" in weights:
        return "int16x8"  # int16 activations throughout, int8 weights
    if {"INT8", "UINT8"} & weights and "FLOAT32" in activations:
        return "dynamic"
    return "none"


def report_to_dict(report: ModelReport) -> dict:
    return {
        "model_bytes": report.model_bytes,
        "sha256": report.sha256,
        "quantization": report.quantization,
        "quantization_label": report.quantization_label,
        "ops": report.ops,
        "custom_ops": report.custom_ops,
        "inputs": [t.public() for t in report.inputs],
        "outputs": [t.public() for t in report.outputs],
        "tensor_count": report.tensor_count,
        "parameter_count": report.parameter_count,
        "weights_bytes": report.weights_bytes,
    }
