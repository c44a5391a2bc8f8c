"""Flash and RAM the firmware takes besides what tinygen emits: the framework (Arduino core,
ESP-IDF, Zephyr), TFLite-Micro's core and the kernels of the model's operators.

Where a real build of the target was measured, `data/runtime_sizes.yaml` holds the parts,
each with how and when it was measured; a model is charged for the kernels of its own
operators only. A board without a measured profile uses its target's flat estimate from
boards.yaml, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from ..model.analyze import ModelReport
from .catalog import Board


@dataclass(frozen=True)
class RuntimeSize:
    flash_bytes: int
    ram_bytes: int
    measured: bool  # False: an estimate
    source: str  # how the figure was obtained


@lru_cache(maxsize=None)
def profiles() -> dict:
    text = (resources.files(__package__) / "data" / "runtime_sizes.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["profiles"]


def runtime_size(board: Board, report: ModelReport) -> RuntimeSize:
    name = board.get("runtime_profile")
    if not name:
        return RuntimeSize(flash_bytes=board["runtime_flash_bytes"], ram_bytes=board["runtime_ram_bytes"],
                           measured=False, source=f"flat estimate for {board.target} boards (boards.yaml)")
    profile = profiles()[name]
    ops = report.ops + report.custom_ops
    kernels = profile["kernels"]
    flash = sum(part["flash"] for part in profile["parts"].values())
    flash += sum(kernels.get(op, profile["kernel_default"]) for op in ops)
    ram = sum(part["ram"] for part in profile["parts"].values()) + profile["ram_per_operator"] * len(ops)
    unmeasured = [op for op in ops if op not in kernels]
    source = " ".join(profile["measured"].split())
    if unmeasured:
        source += f"; kernels not measured, charged as the largest: {', '.join(unmeasured)}"
    return RuntimeSize(flash_bytes=flash, ram_bytes=ram, measured=not profile.get("estimate", False),
                       source=source)
