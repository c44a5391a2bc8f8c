"""TFLite-Micro's memory plan, computed: where the non-persistent buffers (activation tensors
and kernels' scratch buffers) go in the arena's head, and how large the head is.

A port of TFLite-Micro's GreedyMemoryPlanner (tensorflow/lite/micro/memory_planner/
greedy_memory_planner.cc, unchanged in substance from the 2023-01 version Chirale vendors to
the 2026 versions esp-tflite-micro and Zephyr pin) and of the lifetimes AllocationInfoBuilder
gives each buffer (tensorflow/lite/micro/micro_allocation_info.cc). The plan is the same on
every target for the same buffers (sizes are rounded to 16 bytes, offsets are ints), so
running it with a board's own scratch requests gives that board's head exactly; tinygen checks
the port against the host runtime's own plan on every model it measures.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.analyze import ModelReport

ALIGNMENT = 16


@dataclass(frozen=True)
class Buffer:
    size: int  # bytes, already rounded up to ALIGNMENT
    first: int  # index of the first operator that needs it
    last: int  # index of the last operator that needs it
    what: str  # for the per-layer breakdown: "tensor 12" or "scratch of operator 3"


def align(size: int) -> int:
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def tensor_buffers(report: ModelReport) -> list[Buffer]:
    """The activation tensors of the main subgraph (subgraph 0), with their lifetimes in
    operator order: created by the first operator that writes them (model inputs: 0), needed
    until the last one that reads them (model outputs: the last operator). Constant tensors
    live in the flatbuffer and variables in the tail, so neither is planned."""
    graph = report.tensors[0]
    ops = [op for op in report.operators if op.subgraph == 0]
    last_op = max(len(ops) - 1, 0)
    first = {t.index: 0 for t in report.inputs}
    last = {t.index: 0 for t in report.inputs}
    for i, op in enumerate(ops):
        for index in op.inputs:
            if index >= 0 and index in first:
                last[index] = i
            elif index >= 0 and not graph[index].is_constant and not graph[index].is_variable:
                first.setdefault(index, i)
                last[index] = i
        for index in op.outputs:
            if index >= 0:
                first.setdefault(index, i)
                last[index] = max(last.get(index, i), i)
    for t in report.outputs:
        first.setdefault(t.index, 0)
        last[t.index] = last_op
    buffers = [Buffer(align(graph[index].byte_size), first[index], last[index], f"tensor {index}")
               for index in sorted(first) if not graph[index].is_constant and not graph[index].is_variable
               and graph[index].byte_size > 0]
    # Other subgraphs (IF/WHILE bodies, CALL_ONCE initializers) run inside an operator of the
    # main one; their tensors are kept alive throughout, which can only overstate the plan.
    for subgraph, tensors in enumerate(report.tensors[1:], start=1):
        buffers += [Buffer(align(t.byte_size), 0, last_op, f"subgraph {subgraph} tensor {t.index}")
                    for t in tensors if not t.is_constant and not t.is_variable and t.byte_size > 0]
    return buffers


@dataclass
class Plan:
    buffers: list[Buffer]
    offsets: list[int]

    @property
    def head_bytes(self) -> int:
        return max((o + b.size for o, b in zip(self.offsets, self.buffers)), default=0)

    def high_water_at(self, op: int) -> int:
        """The highest offset in use while operator `op` runs."""
        return max((o + b.size for o, b in zip(self.offsets, self.buffers) if b.first <= op <= b.last), default=0)


def plan(buffers: list[Buffer]) -> Plan:
    """GreedyMemoryPlanner::CalculateOffsetsIfNeeded: buffers by size, largest first (equal
    sizes: the one added last first, as ReverseSortInPlace leaves them); each goes to the lowest
    offset where it overlaps no placed buffer that is alive at the same time."""
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, -i))
    offsets = [0] * len(buffers)
    placed: list[int] = []  # buffer ids, kept sorted by offset
    for n, wanted in enumerate(order):
        b = buffers[wanted]
        candidate = 0
        if n > 0:
            for other in placed:
                o = buffers[other]
                if o.last < b.first or o.first > b.last:
                    continue  # not alive at the same time
                if offsets[other] - candidate >= b.size:
                    break  # the gap before it is large enough
                candidate = max(candidate, offsets[other] + o.size)
        offsets[wanted] = candidate
        placed.append(wanted)
        placed.sort(key=lambda i: offsets[i])
    return Plan(buffers=buffers, offsets=offsets)
