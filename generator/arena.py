"""Stage 4a: the tensor arena, measured on the real TFLite-Micro allocator.

`measure_arena_min` bisects (16-byte steps) for the smallest arena in which
`AllocateTensors` *and* one `Invoke` succeed on the host runtime. The allocator's own
"total" is not used: for small models it is hundreds of bytes below what really works
(planner data sits in the arena's head while tensors are allocated).

The host minimum is then made right for the target by `target_arena_bytes`: 32-bit
targets need less than the 64-bit host (smaller structs) so the host minimum is safe for
reference and CMSIS-NN kernels on Cortex-M3/M4/M7; optimized kernels that take scratch
from the arena (esp-nn, Helium CMSIS-NN) get their scratch added, computed per layer by
`scratch.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .analyze import ModelReport
from .errors import TinygenError
from .scratch import kernel_scratch_bytes
from .tflm_host import HostRuntime, log_tail, runtime_version

ALIGNMENT = 16  # the firmware declares the arena alignas(16); sizes are multiples of it
FIRST_PROBE = 2048
LARGEST_ARENA = 64 * 1024 * 1024


@dataclass
class ArenaPlan:
    """What the firmware gets: `arena_bytes` = host minimum + the target kernels' scratch."""

    arena_min_bytes: int  # smallest working arena on the host runtime
    scratch_bytes: int  # extra the target's optimized kernels take from the arena
    scratch_detail: list[str]  # one line per layer that needs scratch, for the report
    kernels: str  # kernel family of the target (see boards.yaml)
    runtime: str  # tflite-micro wheel version the minimum was measured with

    @property
    def arena_bytes(self) -> int:
        return align(self.arena_min_bytes + self.scratch_bytes)

    def breakdown(self) -> str:
        """E.g. 'measured minimum 4,496 + 7,920 esp-nn-esp32s3 scratch'."""
        scratch = f" + {self.scratch_bytes:,} {self.kernels} scratch" if self.scratch_bytes else ""
        return f"measured minimum {self.arena_min_bytes:,}{scratch}"


def align(size: int) -> int:
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


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


def plan_arena(report: ModelReport, arena_min_bytes: int, kernels: str) -> ArenaPlan:
    scratch, detail = kernel_scratch_bytes(report, kernels)
    return ArenaPlan(arena_min_bytes=arena_min_bytes, scratch_bytes=scratch,
                     scratch_detail=detail, kernels=kernels, runtime=runtime_version())
