"""Stage 4a: the tensor arena, for the board: simulated for its pinned library and kernels,
checked against the real TFLite-Micro allocator on the host.

`measure_arena_min` bisects (16-byte steps) for the smallest arena in which `AllocateTensors`
*and* one `Invoke` succeed on the host runtime (the `tflite-micro` wheel: 64-bit, reference
kernels, the newest TFLite-Micro). No board runs that: each pins another TFLite-Micro version
and other kernels, on a 32-bit core. So the arena a board gets is `allocator.simulate`'s, for
its library (data/libraries.yaml) and kernel family (memory/scratch.py), whose memory plan is the
one the host runtime makes (checked on every model: `check_plan`).

`host_arena` maps a board's arena to the host: the host minimum plus (or minus) the board
arena's distance from the board's simulated need. `verify` runs the firmware's side with it,
so an arena below what the board needs fails there too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..errors import TinygenError
from ..library.pinned import libraries
from ..model.analyze import ModelReport
from ..model.tflm_host import HostRuntime, log_tail, runtime_version
from .allocator import Simulation, simulate
from .planner import ALIGNMENT, Buffer, align, plan, tensor_buffers
from .scratch import requests as kernel_requests

FIRST_PROBE = 2048
LARGEST_ARENA = 64 * 1024 * 1024


@dataclass
class ArenaPlan:
    """What the firmware gets: the board's simulated need plus the library's margin."""

    arena_min_bytes: int | None  # smallest working arena on the host runtime (64-bit, reference
                                 # kernels); None when the host runtime cannot run the model
    host: dict[str, int]  # the host runtime's allocation report (`host_allocations`)
    simulation: Simulation  # the board's need, computed for its library and kernels
    margin_bytes: int  # the library's documented margin (data/libraries.yaml), usually 0
    runtime: str  # tflite-micro wheel version the host minimum was measured with

    @property
    def arena_bytes(self) -> int:
        return align(self.simulation.arena_bytes + self.margin_bytes)

    @property
    def kernels(self) -> str:
        return self.simulation.kernels

    @property
    def scratch_bytes(self) -> int:
        """Largest scratch buffer the board's kernels ask for (one layer at a time)."""
        return max((r.bytes for r in self.simulation.requests if not r.persistent), default=0)

    @property
    def host_arena_bytes(self) -> int:
        """This arena as the host runtime needs it: the host minimum, moved by as much as the
        emitted arena differs from the board's simulated need."""
        return self.arena_min_bytes + (self.arena_bytes - align(self.simulation.arena_bytes))

    @property
    def detail(self) -> list[str]:
        """Per-layer lines for `inspect` and the generated header: each kernel request, the
        tail's parts and the moment that sets the size."""
        sim = self.simulation
        lines = [r.describe() for r in sim.requests]
        lines += [f"tail: {name} {size:,} B" for name, size in sim.tail_parts.items() if size]
        lines.append(f"head (memory plan): {sim.head_bytes:,} B; the largest moment: "
                     f"{sim.binding_phase} ({max(sim.phases.values()):,} B)")
        return lines

    def breakdown(self) -> str:
        """E.g. 'head 4,496 + tail 2,112 B for chirale-2.0.0/cmsis-nn-2022-dsp (host runtime: 4,640)'."""
        margin = f" + {self.margin_bytes:,} B margin" if self.margin_bytes else ""
        host = (f"the host runtime needs {self.arena_min_bytes:,} B" if self.arena_min_bytes is not None
                else "the host runtime cannot run the model")
        return (f"head {self.simulation.head_bytes:,} + tail {self.simulation.tail_bytes:,} B{margin}, "
                f"simulated for {libraries()[self.simulation.library]['name']} with {self.kernels} "
                f"kernels; {host}")


def measure_arena_min(runtime: HostRuntime, progress: Callable[[str], None] = lambda _: None,
                      quantization: str | None = None) -> int:
    """Smallest arena (multiple of 16 bytes) in which allocation and one inference succeed.

    Every probe creates an interpreter (tens of ms for a large model), so the search starts
    from the allocator's own total on a huge arena: the arena must hold at least what the
    allocator finally uses, so that total is a lower bound (often the answer; for some
    models the planner's data in the head during AllocateTensors needs more). The bound is
    checked by a probe, never assumed, and the result is always a size that was seen to work
    with the next 16-byte step down seen to fail. `quantization` (the model's, from
    `analyze`) only sharpens the error when the model cannot run at all.
    """
    probes = 0

    def works(size: int) -> bool:
        nonlocal probes
        probes += 1
        return runtime.try_arena(size)["ok"]

    # A too-small arena does not always fail with an allocation message (a kernel's Prepare
    # may just see a null buffer), so first ask whether the model can run at all.
    answer = runtime.try_arena(LARGEST_ARENA, allocations=True)
    probes += 1
    if not answer["ok"]:
        raise _cannot_run(answer, quantization)
    total = allocator_total(answer["log"])
    low, high = 0, FIRST_PROBE  # invariant once found: `low` fails (0 trivially), `high` works
    growth = 2.0  # no usable bound: double from FIRST_PROBE
    if total and not works(align(total) - ALIGNMENT):
        low, high, growth = align(total) - ALIGNMENT, align(total), 1.25  # the minimum is near
    while not works(high):
        low, high = high, align(int(high * growth))
    while high - low > ALIGNMENT:
        middle = align((low + high) // 2)
        if middle >= high:
            middle = high - ALIGNMENT
        if works(middle):
            high = middle
        else:
            low = middle
    progress(f"Measured tensor arena: {high:,} bytes minimum on the TFLite-Micro runtime "
             f"({runtime_version()}, {probes} probes)")
    return high


def allocator_total(log: str) -> int | None:
    """The 'Arena allocation total N bytes' of TFLite-Micro's RecordingMicroAllocator report."""
    match = re.search(r"Arena allocation total (\d+) bytes", log)
    return int(match.group(1)) if match else None


# Quantizations the converter produces but TFLite-Micro's kernels cannot run.
UNRUNNABLE_QUANTIZATION_HINTS = {
    "float16": "TFLite-Micro has no float16 kernels (its DEQUANTIZE takes no float16 weights): "
               "use --quantize int8 (smallest and fastest) or none.",
    "dynamic": "TFLite-Micro's kernels do not run dynamic-range (hybrid: float activations, int8 "
               "weights) models: use --quantize int8 (smallest and fastest) or none.",
}


def _cannot_run(answer: dict, quantization: str | None) -> TinygenError:
    if answer.get("crashed"):
        return TinygenError("The TFLite-Micro runtime crashed loading this model "
                            f"({answer['error']}); the model is corrupt or uses a feature "
                            "TFLite-Micro cannot handle.")
    said = log_tail(answer["log"])
    return TinygenError(
        f"TFLite-Micro cannot run this model, even with a {LARGEST_ARENA // 2**20} MB arena: "
        + answer["error"] + "."
        + (f"\nTFLite-Micro said:\n{said}" if said else ""),
        hint=UNRUNNABLE_QUANTIZATION_HINTS.get(quantization or ""))


def host_allocations(runtime: HostRuntime) -> dict[str, int]:
    """The host runtime's own allocation report on an ample arena: 'head' (its memory plan),
    'tail', and each recorded category ('Persistent buffer data', ...) in bytes used."""
    log = runtime.try_arena(LARGEST_ARENA, allocations=True).get("log", "")
    found = {name: int(size) for name, size in re.findall(r"Arena allocation (head|tail) (\d+) bytes", log)}
    found.update({name: int(size) for name, size in re.findall(r"'([^']+)' used (\d+) bytes", log)})
    return found


def plan_arena(report: ModelReport, arena_min_bytes: int | None, host: dict[str, int], library: str,
               kernels: str) -> ArenaPlan:
    persistent = host.get("Persistent buffer data", 0)
    return ArenaPlan(arena_min_bytes=arena_min_bytes, host=host,
                     simulation=simulate(report, library, kernels, persistent),
                     margin_bytes=libraries()[library].get("margin_bytes", 0), runtime=runtime_version())


def check_plan(report: ModelReport, host: dict[str, int]) -> None:
    """The memory plan tinygen computes must be the one the host runtime makes for the same
    buffers (its reference kernels' scratch included); else the simulation cannot be trusted
    for this model, which is a bug to report, not a guess to ship."""
    if "head" not in host:
        return
    scratch = [r for r in kernel_requests(report, "reference") if not r.persistent]
    mine = plan(tensor_buffers(report) + [Buffer(align(r.bytes), r.op_index, r.op_index, "") for r in scratch])
    # One subgraph: exactly the runtime's plan. Several: tinygen keeps the other subgraphs'
    # tensors alive throughout, which may only cost more.
    if mine.head_bytes != host["head"] and (len(report.tensors) == 1 or mine.head_bytes < host["head"]):
        raise TinygenError(
            f"tinygen's memory plan for this model ({mine.head_bytes:,} B) differs from the TFLite-Micro "
            f"runtime's ({host['head']:,} B), so its arena for the board cannot be trusted.",
            hint="Please report it with the model. The host runtime's minimum is no safe substitute: a "
            "32-bit board may need more than twice as much (TFLite-Micro's dtln noise suppressor: 15,040 B "
            "on a Cortex-M4 with Chirale_TensorFLowLite 2.0.0, 6,752 B on the host).")
