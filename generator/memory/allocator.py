"""The tensor arena a board's pinned TFLite-Micro needs, simulated from the model.

TFLite-Micro fills one arena from both ends: persistent data grows down from the top (the
tail), and the non-persistent head grows up from the bottom. What the head holds changes as
the interpreter sets up, so the smallest arena that works is the largest of three moments
(the allocation code of every pinned version, micro_allocator.cc / micro_interpreter.cc):

1. while an operator's kernel prepares: the scratch-request list plus the temporary
   TfLiteTensors the kernel reads its tensors through, under the tail built so far;
2. while the memory plan is computed: the request list, one AllocationInfo per tensor and
   scratch buffer and the greedy planner's working memory, under the full tail;
3. afterwards: the planned head (planner.py) under the full tail plus a persistent
   TfLiteTensor (and its quantization) for every model input and output.

The tail's parts are counted from the model: fixed allocator objects, one TfLiteEvalTensor per
tensor, one NodeAndRegistration and the builtin parameters per operator, each kernel's OpData
and persistent buffers (scratch.py), a handle per scratch buffer, variable tensors. Their sizes
depend on the library's version and on the target's word size (32-bit boards: a pointer is 4
bytes where the 64-bit host has 8); data/libraries.yaml holds them per pinned library, measured
from its own headers with the target's compiler.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..library.pinned import libraries
from ..model.analyze import ModelReport
from .planner import Buffer, Plan, align, plan, tensor_buffers
from .scratch import Request
from .scratch import requests as kernel_requests


def _up(size: int, alignment: int) -> int:
    return (size + alignment - 1) // alignment * alignment


@dataclass
class Simulation:
    """The arena for one board, and where each byte goes."""

    library: str
    kernels: str
    head_bytes: int  # the memory plan: activations and scratch buffers
    tail_bytes: int  # persistent data once set up, the I/O tensors included
    phases: dict[str, int]  # moment -> arena needed then
    requests: list[Request]
    plan: Plan  # where the head's buffers go
    tail_parts: dict[str, int] = field(default_factory=dict)

    @property
    def arena_bytes(self) -> int:
        """The smallest arena that works: the largest of the moments, to 16 bytes."""
        return align(max(self.phases.values()))

    @property
    def binding_phase(self) -> str:
        return max(self.phases, key=self.phases.get)


def simulate(report: ModelReport, library: str, kernels: str, host_persistent_bytes: int = 0) -> Simulation:
    """`host_persistent_bytes`: what the host runtime's kernels keep (its allocation report's
    'Persistent buffer data'); for a library whose kernels are the host's own generation
    (`host_persistent_bounds_kernels`), it bounds the kernels' OpData and buffers from below,
    covering kernels data/libraries.yaml lists no OpData for (their 64-bit structs are at
    least as large as on a 32-bit board)."""
    lib = libraries()[library]
    asked = kernel_requests(report, kernels)
    graph = report.tensors[0]
    main_ops = [op for op in report.operators if op.subgraph == 0]
    subgraphs = len(report.tensors)

    # Set up by StartModelAllocation: allocator objects, per subgraph its eval tensors and
    # node-and-registration structs, then the builtin parameters of every operator.
    tail = lib["fixed_tail"] + lib["subgraph_allocations"] * subgraphs
    parts = {"allocator objects": tail}
    evals = sum(_up(lib["eval_tensor"] * len(tensors), lib["word"]) for tensors in report.tensors)
    nodes = lib["node_and_registration"] * len(report.operators)
    params = sum(_builtin_params(lib, op.op) for op in report.operators)
    # Variable tensors (state kept across inferences) are allocated with the eval tensors
    # (AllocateVariables, called from StartModelAllocation), before any kernel prepares.
    variables = sum(align(t.byte_size) for tensors in report.tensors for t in tensors if t.is_variable)
    tail += evals + nodes + params + variables + _resource_variables(report)
    parts.update({"TfLiteEvalTensor per tensor": evals, "NodeAndRegistration per operator": nodes,
                  "builtin parameters": params, "variable tensors": variables,
                  "resource variables": _resource_variables(report)})

    # Init of every operator: its OpData. Then Prepare, operator by operator.
    op_data = sum(_up(_op_data(lib, op), 16) for op in report.operators)
    tail += op_data
    parts["kernel OpData"] = op_data
    phases = {}
    scratch_so_far = 0
    persistent = 0
    for index, op in enumerate(main_ops):
        mine = [r for r in asked if r.op_index == index]
        kept = sum(_up(r.bytes, 16) for r in mine if r.persistent) + _channel_arrays(lib, report, op)
        persistent += kept
        request_list = align(lib["scratch_request"] * (scratch_so_far + lib["max_scratch_per_op"]))
        temps = _temp_tensors(lib, report, op)
        phases[f"prepare operator {index} {op.op}"] = request_list + temps + tail + persistent
        scratch_so_far += sum(1 for r in mine if not r.persistent)
    bounded = lib.get("host_persistent_bounds_kernels", False)
    if isinstance(bounded, list):
        bounded = bool(set(bounded) & set(report.ops + report.custom_ops))
    floor = host_persistent_bytes if bounded else 0
    if op_data + persistent < floor:
        persistent = floor - op_data
    tail += persistent
    parts["kernel persistent buffers"] = persistent

    scratch = [r for r in asked if not r.persistent]
    handles = _up(lib["scratch_handle"] * len(scratch), lib["word"]) if scratch else 0
    tail += handles
    parts["scratch buffer handles"] = handles

    buffers = tensor_buffers(report) + [Buffer(align(r.bytes), r.op_index, r.op_index, r.describe())
                                        for r in scratch]
    all_tensors = sum(len(t) for t in report.tensors)
    planning = (align(lib["scratch_request"] * (len(scratch) + lib["max_scratch_per_op"]))
                + align(lib["word"] * subgraphs)
                + _up(lib["allocation_info"] * (all_tensors + len(scratch)), lib["word"])
                + lib["planner_per_buffer"] * len(buffers))
    phases["memory planning"] = planning + tail

    memory_plan = plan(buffers)
    head = memory_plan.head_bytes
    io = _io_tensors(lib, report)
    parts["input/output TfLiteTensors"] = io
    tail += io
    phases["set up"] = head + tail
    del graph
    return Simulation(library=library, kernels=kernels, head_bytes=head, tail_bytes=tail,
                      phases=phases, requests=asked, plan=memory_plan, tail_parts=parts)


def resource_variable_count(report: ModelReport) -> int:
    """Resource variables (VAR_HANDLE operators, e.g. a streaming model's state)."""
    return sum(1 for op in report.operators if op.op == "VAR_HANDLE")


def _resource_variables(report: ModelReport) -> int:
    """MicroResourceVariables::Create (micro_resource_variable.cc): the object and a 16-byte
    entry per variable, then Allocate() keeps each variable's buffer, the size of the value
    ASSIGN_VARIABLE stores (counted for the subgraph that assigns the most)."""
    count = resource_variable_count(report)
    if not count:
        return 0
    assigned: dict[int, int] = {}
    for op in report.operators:
        if op.op == "ASSIGN_VARIABLE" and len(op.inputs) > 1 and op.inputs[1] >= 0:
            value = report.tensors[op.subgraph][op.inputs[1]]
            assigned[op.subgraph] = assigned.get(op.subgraph, 0) + align(value.byte_size)
    return align(12) + align(16 * count) + max(assigned.values(), default=0)


def _op_data(lib: dict, op) -> int:
    name = op.custom_code if op.op == "CUSTOM" else op.op
    return lib["op_data"].get(name, lib["op_data"]["default"])


def _builtin_params(lib: dict, op: str) -> int:
    """The parser allocates each operator's parameters with their own alignment, one after the
    other in the tail: counted to a whole word each, which covers any padding between them."""
    size, _ = lib["builtin_params"].get(op, lib["builtin_params"]["default"])
    return _up(size, lib["word"])


def _channel_arrays(lib: dict, report: ModelReport, op) -> int:
    """Per-channel output multiplier and shift (int32 each) that conv-like kernels keep."""
    if op.op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED") or len(op.inputs) < 2:
        return 0
    graph = report.tensors[op.subgraph]
    inp, flt = graph[op.inputs[0]], graph[op.inputs[1]] if op.inputs[1] >= 0 else None
    if flt is None or not flt.shape:
        return 0
    if op.op == "TRANSPOSE_CONV":
        # Allocated in Prepare whatever the types, one per output channel (filter dims[0]):
        # kernels/transpose_conv.cc of every pinned version (2023-01 :175-182, 2026 :186-191).
        channels = flt.shape[0]
    elif op.op == "FULLY_CONNECTED":
        if not (lib["fc_per_channel_arrays"] and flt.per_channel and inp.dtype in ("INT8", "INT16")):
            return 0
        channels = flt.shape[0]
    elif op.op == "DEPTHWISE_CONV_2D":
        if inp.dtype not in ("INT8", "INT16") and not lib["float_conv_channel_arrays"]:
            return 0
        channels = flt.shape[-1]
    else:
        if inp.dtype not in ("INT8", "INT16") and not lib["float_conv_channel_arrays"]:
            return 0
        channels = flt.shape[0]
    return 2 * _up(4 * channels, 16)


def _quantization(lib: dict, tensor) -> int:
    """A TfLiteAffineQuantization and its zero-point array (the scales stay in the flatbuffer)."""
    if tensor is None or tensor.scale is None:
        return 0
    channels = tensor.shape[0] if tensor.per_channel and tensor.shape else 1
    return lib["affine_quantization"] + _up(4 + 4 * channels, lib["word"])


def _temp_tensors(lib: dict, report: ModelReport, op) -> int:
    """Temporary TfLiteTensors a kernel holds while it prepares: every tensor of the operator,
    plus `prepare_extra_temps` more for kernels whose shared Calculate*OpData helper takes
    them again (the convolutions: 7 for their 4 tensors); `prepare_temps` gives the whole count
    for kernels that take more still (each then costs as much as the operator's largest)."""
    graph = report.tensors[op.subgraph]
    tensors = [graph[i] for i in op.inputs + op.outputs if i >= 0]
    if not tensors:
        return 0
    each = sorted((lib["tflite_tensor"] + _quantization(lib, t) for t in tensors), reverse=True)
    count = lib.get("prepare_temps", {}).get(op.op)
    if count is not None:
        return _up(count * each[0], lib["word"])
    extra = lib["prepare_extra_temps"].get(op.op, 0)
    return _up(sum(each) + sum(each[:extra]), lib["word"])


def _io_tensors(lib: dict, report: ModelReport) -> int:
    total = 0
    for tensors in (report.inputs, report.outputs):
        total += _up(lib["word"] * len(tensors), 16)  # the pointer array, a persistent buffer
        total += sum(lib["tflite_tensor"] + _quantization(lib, t) for t in tensors)
    return total
