"""How long one inference will take on a board: an estimate, calibrated on published
measurements (data/latency.yaml: MLPerf Tiny results and Espressif's own figures, each cited).

A calibration fits cycles = a * MACs + c * output elements to its points, minimising the
relative error (a, c >= 0; a single point gives a alone): multiply-accumulates are most of the
work of convolutions and fully connected layers; requantizing and writing each output element
is what the other layers cost. The board's clock turns a model's work (model/layers.py) into
milliseconds. `bench/run.py` shows each calibration point's estimate when it is left out of
the fit. Boards whose core and kernels have no published measurement of their own borrow a
neighbour's calibration and say which (boards.yaml `latency_note`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import yaml

from ..model.layers import Work

if TYPE_CHECKING:
    from .catalog import Board


@lru_cache(maxsize=None)
def calibration_data() -> dict:
    return yaml.safe_load((resources.files(__package__) / "data" / "latency.yaml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class CycleModel:
    cycles_per_mac: float
    cycles_per_output: float

    def cycles(self, work: Work) -> float:
        return self.cycles_per_mac * work.macs + self.cycles_per_output * work.output_elements


def reference_work(model: str) -> Work:
    """The work of a calibration's reference model (data/latency.yaml `models`)."""
    entry = calibration_data()["models"][model]
    return Work(macs=entry["macs"], output_elements=entry["output_elements"], layers=entry["layers"])


def point_cycles(point: dict) -> float:
    return point["latency_ms"] * point["clock_mhz"] * 1e3


def fit(points: list[dict]) -> CycleModel:
    """The cycle model through `points` (each with model, clock_mhz, latency_ms)."""
    works = [reference_work(p["model"]) for p in points]
    cycles = np.array([point_cycles(p) for p in points])
    macs_only = float(np.sum([w.macs / c for w, c in zip(works, cycles)])
                      / np.sum([(w.macs / c) ** 2 for w, c in zip(works, cycles)]))
    if len(points) == 1:
        return CycleModel(cycles_per_mac=macs_only, cycles_per_output=0.0)
    # Relative least squares: each row divided by its measured cycles.
    rows = np.array([[w.macs, w.output_elements] for w in works], dtype=float) / cycles[:, None]
    (a, c), *_ = np.linalg.lstsq(rows, np.ones(len(points)), rcond=None)
    if a <= 0 or c < 0:
        return CycleModel(cycles_per_mac=macs_only, cycles_per_output=0.0)
    return CycleModel(cycles_per_mac=float(a), cycles_per_output=float(c))


@dataclass(frozen=True)
class Estimate:
    milliseconds: float
    calibration: str  # key in data/latency.yaml
    basis: str  # what the figure rests on, for the user
    cpu_mhz: float
    model: CycleModel

    def milliseconds_for(self, work: Work) -> float:
        """The share of `work` (e.g. one layer's) in this estimate."""
        return self.model.cycles(work) / (self.cpu_mhz * 1e3)

    def to_dict(self) -> dict:
        return {"milliseconds": round(self.milliseconds, 3), "calibration": self.calibration,
                "basis": self.basis, "is_estimate": True, "cpu_mhz": self.cpu_mhz,
                "cycles_per_mac": round(self.model.cycles_per_mac, 4),
                "cycles_per_output_element": round(self.model.cycles_per_output, 4)}


@lru_cache(maxsize=None)
def calibrated(key: str) -> CycleModel:
    """The cycle model of calibration `key`, fitted once (inspect estimates every board)."""
    return fit(calibration_data()["calibrations"][key]["points"])


def estimate(board: Board, work: Work) -> Estimate | None:
    """None for a board with no calibration (an emulator) or no clock."""
    key = board.get("latency_calibration")
    mhz = board.get("cpu_mhz")
    if not key or not mhz:
        return None
    calibration = calibration_data()["calibrations"][key]
    model = calibrated(key)
    basis = f"calibrated on {calibration['system']}, scaled to {mhz} MHz"
    if board.get("latency_note"):
        basis += f"; {board['latency_note']}"
    return Estimate(milliseconds=model.cycles(work) / (mhz * 1e3), calibration=key, basis=basis,
                    cpu_mhz=mhz, model=model)
