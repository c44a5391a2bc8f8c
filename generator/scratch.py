"""Arena the target's optimized kernels need beyond the host minimum, computed per layer.

Kernel families (the `kernels` key of each board in boards.yaml):
- "reference", "cmsis-nn": nothing extra. Measured on Cortex-M4/M7 under QEMU (see
  FACTS §2): 32-bit structs (TfLiteEvalTensor 12 B vs 24 B on the host, NodeAndRegistration
  32 B vs 64 B) save more than CMSIS-NN's buffers take, so the 64-bit host minimum is enough.
"""

from __future__ import annotations

from .analyze import ModelReport


def kernel_scratch_bytes(report: ModelReport, kernels: str) -> tuple[int, list[str]]:
    """Return (bytes, one explanatory line per contributing layer)."""
    try:
        rule = SCRATCH_RULES[kernels]
    except KeyError:
        raise ValueError(f"unknown kernel family {kernels!r}") from None
    return rule(report)


def _none(report: ModelReport) -> tuple[int, list[str]]:
    return 0, []


SCRATCH_RULES = {
    "reference": _none,
    "cmsis-nn": _none,
    "esp-nn": _none,  # PENDING
    "esp-nn-esp32s3": _none,  # PENDING
    "cmsis-nn-helium": _none,  # PENDING
}
