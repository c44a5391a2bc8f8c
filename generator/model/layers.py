"""What each layer costs, from the flatbuffer and the board's simulated arena (no TensorFlow):
its output, its weights, its multiply-accumulates (or element operations for layers without
MACs), the activation memory in use while it runs, and what the board's kernels ask for it.
The layer whose memory reaches the plan's high-water mark is the one that sets the arena's head.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from .analyze import ModelReport, OperatorInfo

if TYPE_CHECKING:  # read as an argument: the memory plan sits above the model
    from ..memory.allocator import Simulation


@dataclass
class LayerRow:
    index: int
    op: str
    output_shape: list[int]
    weight_bytes: int  # constant inputs (weights, biases) in the flatbuffer
    output_elements: int  # elements it writes (what requantizing and copying scale with)
    macs: int  # multiply-accumulates (convolutions, fully connected, recurrent layers)
    ops: int  # element operations of layers without MACs (pooling, add, activations, ...)
    live_bytes: int  # activation and scratch buffers alive while it runs
    head_bytes: int  # the memory plan's highest offset in use while it runs
    scratch_bytes: int  # scratch the board's kernels ask for this layer
    kept_bytes: int  # persistent buffers its kernel keeps (per-channel arrays, LUTs, ...)
    peak: bool  # this layer's head is the plan's high-water mark: it sets the arena's head
    work: "Work"  # what the latency estimate scales with

    def to_dict(self) -> dict:
        return asdict(self)


def _elements(shape: list[int]) -> int:
    return int(np.prod(shape)) if shape else 1


def _cost(report: ModelReport, op: OperatorInfo) -> tuple[int, int]:
    """(MACs, element operations) of one operator, counted the usual way: a convolution's
    output elements times its filter window (times input channels per group), a fully
    connected layer's outputs times its input depth, an LSTM's four gates per step."""
    graph = report.tensors[op.subgraph]

    def shape(i: int, outputs: bool = False) -> list[int]:
        indices = op.outputs if outputs else op.inputs
        return graph[indices[i]].shape if i < len(indices) and indices[i] >= 0 else []

    out = _elements(shape(0, True)) if op.outputs else 0
    name = op.op
    if name == "CONV_2D" and len(shape(1)) == 4:
        _, kh, kw, cin_per_group = shape(1)
        return out * kh * kw * cin_per_group, 0
    if name == "DEPTHWISE_CONV_2D" and len(shape(1)) == 4:
        _, kh, kw, _ = shape(1)
        return out * kh * kw, 0
    if name == "TRANSPOSE_CONV" and len(shape(1)) == 4:
        cout, kh, kw, cin = shape(1)
        return _elements(shape(2)) * kh * kw * cout if len(shape(2)) == 4 else out * kh * kw * cin, 0
    if name == "FULLY_CONNECTED" and len(shape(1)) == 2:
        return out * shape(1)[1], 0
    if name == "BATCH_MATMUL" and len(shape(0)) >= 2:  # adj_x: the left operand is transposed
        return out * shape(0)[-2 if op.options.get("adjX") else -1], 0
    if name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(shape(0)) == 3 and len(shape(4)) == 2:
        cells, inputs = shape(4)
        outputs = shape(8)[1] if len(shape(8)) == 2 else cells
        steps_times_batch = shape(0)[0] * shape(0)[1]
        projection = cells * outputs if len(shape(16)) == 2 else 0
        return steps_times_batch * (4 * cells * (inputs + outputs) + projection), 0
    if name == "SVDF" and len(shape(1)) == 2 and len(shape(2)) == 2:
        filters, inputs = shape(1)
        memory = shape(2)[1]
        batch = shape(0)[0] if shape(0) else 1
        return batch * filters * (inputs + memory), 0
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"):
        return 0, out * op.options.get("filterHeight", 1) * op.options.get("filterWidth", 1)
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
        return 0, _elements(shape(0))
    if name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):  # TFLite-Micro shares or copies the buffer
        return 0, 0
    if name.startswith("Signal"):  # the signal library's custom ops: a pass over input or output
        elements = max(_elements(shape(0)) if op.inputs else 0, out)
        if name == "SignalRfft":  # an FFT: log2(N) passes
            elements *= max(1, int(np.log2(max(_elements(shape(0)[-1:]), 2))))
        return 0, elements
    return 0, out


# Which kind of work an operator's MACs are: the kernels run each kind at its own cost per MAC.
MAC_KINDS = {"CONV_2D": "conv", "TRANSPOSE_CONV": "conv", "DEPTHWISE_CONV_2D": "depthwise",
             "FULLY_CONNECTED": "fc", "BATCH_MATMUL": "fc", "SVDF": "fc", "UNIDIRECTIONAL_SEQUENCE_LSTM": "fc"}


@dataclass(frozen=True)
class Work:
    """What the latency estimate scales with (boards/latency.py), for a model or one layer:
    multiply-accumulates per kind, the element operations of the layers without MACs (pooling,
    activations, additions, the signal library's custom operators...), and the operators."""

    conv_macs: int = 0
    depthwise_macs: int = 0
    fc_macs: int = 0
    element_ops: int = 0
    layers: int = 1

    @property
    def macs(self) -> int:
        return self.conv_macs + self.depthwise_macs + self.fc_macs

    def __add__(self, other: "Work") -> "Work":
        return Work(*(getattr(self, f) + getattr(other, f) for f in WORK_FIELDS))


WORK_FIELDS = ("conv_macs", "depthwise_macs", "fc_macs", "element_ops", "layers")


_LOOP_SUBGRAPHS = ("condSubgraphIndex", "bodySubgraphIndex")  # a WHILE's options naming its subgraphs


def operator_work(report: ModelReport, op: OperatorInfo) -> Work:
    """An operator's work; a WHILE's is its own plus its condition's and body's, once per trip
    (each operator the interpreter invokes counts as a layer)."""
    if op.op == "WHILE":
        trips = while_trips(report, op) or 1
        cond, body = _LOOP_SUBGRAPHS
        return Work() + _subgraph_work(report, op, cond, trips + 1) + _subgraph_work(report, op, body, trips)
    macs, ops = _cost(report, op)
    kind = MAC_KINDS.get(op.op)
    return Work(conv_macs=macs if kind == "conv" else 0, depthwise_macs=macs if kind == "depthwise" else 0,
                fc_macs=macs if kind == "fc" else 0, element_ops=ops if not kind else 0, layers=1)


def _subgraph_work(report: ModelReport, op: OperatorInfo, option: str, times: int) -> Work:
    """The work of the subgraph `op` runs as `option`, `times` over."""
    subgraph = report.called_subgraph(op, option)
    if subgraph is None or times <= 0:
        return Work(layers=0)
    once = sum((operator_work(report, op) for op in report.operators if op.subgraph == subgraph), Work(layers=0))
    return Work(*(times * getattr(once, f) for f in WORK_FIELDS))


def while_trips(report: ModelReport, op: OperatorInfo) -> int | None:
    """How many times a WHILE runs its body, when its condition compares loop counters with
    constants (how TensorFlow writes a Keras RNN's loop over its steps): for each LESS(counter,
    bound) in the condition, the counter's start (the WHILE's constant operand) and step (the
    body's ADD of a constant to it), and the fewest trips of them. None when the loop is not of
    that form."""
    cond, body = (report.called_subgraph(op, option) for option in _LOOP_SUBGRAPHS)
    if cond is None or body is None:
        return None
    counts = []
    for less in (o for o in report.operators if o.subgraph == cond and o.op == "LESS" and len(o.inputs) == 2):
        counter, bound_tensor = less.inputs
        bound = _scalar(report, cond, bound_tensor)
        if counter not in report.subgraph_inputs[cond] or bound is None:
            continue
        position = report.subgraph_inputs[cond].index(counter)
        start = _scalar(report, op.subgraph, op.inputs[position]) if position < len(op.inputs) else None
        step = _counter_step(report, body, position)
        if start is not None and step:
            counts.append(max(0, math.ceil((bound - start) / step)))
    return min(counts) if counts else None


def _scalar(report: ModelReport, subgraph: int, index: int) -> float | None:
    """A constant tensor's one value, or None."""
    info = report.tensor(subgraph, index)
    values = report.constant(info) if info is not None else None
    return float(values[0]) if values is not None and values.size == 1 else None


def _counter_step(report: ModelReport, body: int, position: int) -> float | None:
    """What the body adds to loop variable `position` each trip (an ADD of a constant)."""
    if position >= len(report.subgraph_inputs[body]) or position >= len(report.subgraph_outputs[body]):
        return None
    counter, result = report.subgraph_inputs[body][position], report.subgraph_outputs[body][position]
    for add in (o for o in report.operators if o.subgraph == body and o.op == "ADD" and o.outputs == [result]):
        if counter in add.inputs and len(add.inputs) == 2:
            step = _scalar(report, body, add.inputs[1 - add.inputs.index(counter)])
            return step if step and step > 0 else None
    return None


def _loop_weight_bytes(report: ModelReport, op: OperatorInfo) -> int:
    """A WHILE's condition and body constants (an RNN cell's weights live in its body)."""
    if op.op != "WHILE":
        return 0
    subgraphs = {report.called_subgraph(op, option) for option in _LOOP_SUBGRAPHS} - {None}
    return sum(t.byte_size for s in subgraphs for t in report.tensors[s] if t.is_constant)


def _output_elements(report: ModelReport, op: OperatorInfo) -> int:
    graph = report.tensors[op.subgraph]
    return sum(_elements(graph[i].shape) for i in op.outputs if i >= 0)


def model_cost(report: ModelReport) -> Work:
    """The work of the main subgraph's operators (those the interpreter invokes in turn)."""
    return sum((operator_work(report, op) for op in report.operators if op.subgraph == 0), Work(layers=0))


def layer_table(report: ModelReport, simulation: Simulation) -> list[LayerRow]:
    """One row per operator of the main subgraph. The peak rows are those whose buffers reach
    the plan's high-water mark with the most memory live: the layers that set the arena's head
    (on a plan without gaps, their live bytes are the head)."""
    plan = simulation.plan
    graph = report.tensors[0]
    rows = []
    for index, op in enumerate(o for o in report.operators if o.subgraph == 0):
        weights = sum(graph[i].byte_size for i in op.inputs if i >= 0 and graph[i].is_constant) \
            + _loop_weight_bytes(report, op)
        work = operator_work(report, op)
        mine = [r for r in simulation.requests if r.op_index == index]
        rows.append(LayerRow(
            index=index, op=op.custom_code if op.op == "CUSTOM" else op.op,
            output_shape=graph[op.outputs[0]].shape if op.outputs else [],
            weight_bytes=weights, output_elements=_output_elements(report, op), macs=work.macs, ops=work.element_ops,
            live_bytes=sum(b.size for b in plan.buffers if b.first <= index <= b.last),
            head_bytes=plan.high_water_at(index),
            scratch_bytes=sum(r.bytes for r in mine if not r.persistent),
            kept_bytes=sum(r.bytes for r in mine if r.persistent), peak=False, work=work))
    at_head = [row for row in rows if row.head_bytes == plan.head_bytes and plan.head_bytes > 0]
    most = max((row.live_bytes for row in at_head), default=None)
    for row in at_head:
        row.peak = row.live_bytes == most
    return rows
