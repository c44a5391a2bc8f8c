"""How long one inference will take on a board: an estimate with a band, from three facts of the
board (its `core`, its `kernels` and its `cpu_mhz`) and the model's work (model/layers.py),
calibrated on published measurements (data/latency.yaml, each figure cited).

The cycle model (data/latency.yaml's header says it in full):

    cycles = speed(core, class) * (conv MACs + sum_k cost_k * work_k)
             + overhead(core) * (per_layer * operators + per_invoke)

Every unknown is fitted at once to the published figures in log space, each pulled toward its
prior (a core toward the core it is `like`, a kernel class toward its prior speed), by damped
Gauss-Newton steps with the exact Jacobian. The band says how far off that fit was on figures
it had not seen: each source group is left out in turn, its figures estimated from the rest,
and the narrowest range of those errors that holds 80% of them (at most 3x wide) is the band,
pooled separately for cores with figures of their own for the kernels and for those inferred.

A user's own board profile (`tinygen profile LOG --calibrate FILE`) replaces all of that for
their board: its `latency_profile` holds the cycles per unit of each kind measured on it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import yaml

from ..model.layers import WORK_FIELDS, Work

if TYPE_CHECKING:
    from .catalog import Board

COST_KINDS = ("depthwise", "fc", "element")  # the work a class weighs against a conv MAC
BAND_SHARE = 0.8  # of the left-out figures a band should hold
MAX_BAND_RATIO = 3.0  # high / low of a band, at most
PROFILE_PULL = 0.1  # how strongly a profile's costs are pulled toward the prior's ratios
PROFILE_MIN_BAND = 0.1
PROFILE_CALIBRATION = "profile of "  # an estimate's `calibration` when it rests on the user's profile


@lru_cache(maxsize=None)
def calibration_data() -> dict:
    return yaml.safe_load((resources.files(__package__) / "data" / "latency.yaml").read_text(encoding="utf-8"))


def core_ids() -> list[str]:
    return list(calibration_data()["cores"])


def reference_work(model: str) -> Work:
    """The work of a published figure's model (data/latency.yaml `models`)."""
    return Work(**calibration_data()["models"][model]["work"])


def kernel_class(kernels: str) -> str:
    """The latency class of a board's kernel family (data/latency.yaml `classes: kernels`)."""
    for name, spec in calibration_data()["classes"].items():
        if kernels in spec["kernels"]:
            return name
    raise KeyError(f"no latency class lists kernel family {kernels!r}")


def usable_figures() -> list[dict]:
    return [f for f in calibration_data()["figures"] if not f.get("excluded")]


def figure_cycles(figure: dict) -> float:
    return figure["latency_ms"] * figure["cpu_mhz"] * 1e3


# --- the model's parameters ------------------------------------------------------------------

class _Layout:
    """Where each unknown sits in the parameter vector, and the priors on them (linear rows)."""

    def __init__(self, figures: list[dict]):
        data = calibration_data()
        self.cores = list(data["cores"])
        self.classes = list(data["classes"])
        self.pairs = sorted({(f["core"], f["class"]) for f in figures})
        names = ([("speed", c) for c in self.cores] + [("class", k) for k in self.classes]
                 + [("pair", p) for p in self.pairs]
                 + [("cost", (k, j)) for k in self.classes for j in COST_KINDS]
                 + [("overhead", c) for c in self.cores] + [("per_layer", None), ("per_invoke", None)])
        self.index = {name: i for i, name in enumerate(names)}
        self.size = len(names)
        self._priors(data)

    def _priors(self, data: dict) -> None:
        """Rows R, means b, sigmas s: each prior says (R @ theta - b) / s ~ N(0, 1)."""
        p = data["priors"]
        rows, means, sigmas = [], [], []

        def add(terms: dict, mean: float, sigma: float) -> None:
            row = np.zeros(self.size)
            for name, weight in terms.items():
                row[self.index[name]] += weight
            rows.append(row), means.append(mean), sigmas.append(sigma)

        for core, spec in data["cores"].items():
            like, factor = spec.get("like"), math.log(spec.get("factor", 1.0))
            if like:
                add({("speed", core): 1, ("speed", like): -1}, factor, p["like_sigma"])
                add({("overhead", core): 1, ("overhead", like): -1}, factor, p["like_sigma"])
            else:  # the root: its speed is free, its overhead the unit the per-layer cycles are in
                add({("speed", core): 1}, 0.0, p["root_sigma"])
                add({("overhead", core): 1}, 0.0, 1e-3)
        for klass, spec in data["classes"].items():
            anchor = klass == "reference"  # the unit of class speeds
            add({("class", klass): 1}, math.log(spec["prior_speed"]), 1e-3 if anchor else p["class_sigma"])
            for kind in COST_KINDS:
                add({("cost", (klass, kind)): 1}, math.log(spec["costs"][kind]), p["cost_sigma"])
        for pair in self.pairs:
            add({("pair", pair): 1}, 0.0, p["pair_sigma"])
        add({("per_layer", None): 1}, math.log(p["per_layer_cycles"]), p["overhead_sigma"])
        add({("per_invoke", None): 1}, math.log(p["per_invoke_cycles"]), p["overhead_sigma"])
        self.prior_rows = np.array(rows) / np.array(sigmas)[:, None]
        self.prior_means = np.array(means) / np.array(sigmas)

    def start(self) -> np.ndarray:
        """The priors' own values (their least-squares solution) as the starting point."""
        return np.linalg.lstsq(self.prior_rows, self.prior_means, rcond=None)[0]


@dataclass(frozen=True)
class _Cases:
    """Figures (or a board) as index arrays into the layout, with their work."""

    speed: np.ndarray  # parameter indices whose sum is log speed: core, class, pair?
    overhead: np.ndarray  # index of the core's overhead
    conv: np.ndarray
    kinds: np.ndarray  # (n, 3) work per COST_KINDS
    cost_index: np.ndarray  # (n, 3) parameter indices of the class's costs
    layers: np.ndarray

    @staticmethod
    def build(layout: _Layout, rows: list[tuple[str, str, Work]]) -> "_Cases":
        """rows: (core, class, work)."""
        speed = np.zeros((len(rows), layout.size))
        for i, (core, klass, _) in enumerate(rows):
            speed[i, layout.index["speed", core]] = 1
            speed[i, layout.index["class", klass]] = 1
            if ("pair", (core, klass)) in layout.index:
                speed[i, layout.index["pair", (core, klass)]] = 1
        return _Cases(
            speed=speed,
            overhead=np.array([layout.index["overhead", core] for core, *_ in rows], dtype=int),
            conv=np.array([w.conv_macs for *_, w in rows], dtype=float),
            kinds=np.array([[w.depthwise_macs, w.fc_macs, w.element_ops] for *_, w in rows], dtype=float),
            cost_index=np.array([[layout.index["cost", (k, j)] for j in COST_KINDS] for _, k, _ in rows], dtype=int),
            layers=np.array([w.layers for *_, w in rows], dtype=float))

    def parts(self, layout: _Layout, theta: np.ndarray):
        """(speed factor, weighted MACs, overhead factor, per-layer, per-invoke, cost factors)."""
        speed = np.exp(self.speed @ theta)
        costs = np.exp(theta[self.cost_index])
        macs = self.conv + (costs * self.kinds).sum(axis=1)
        overhead = np.exp(theta[self.overhead])
        per_layer = math.exp(theta[layout.index["per_layer", None]])
        per_invoke = math.exp(theta[layout.index["per_invoke", None]])
        return speed, macs, overhead, per_layer, per_invoke, costs

    def _total(self, speed, macs, overhead, per_layer, per_invoke) -> np.ndarray:
        """The cycle model (module docstring) from `parts`."""
        return speed * macs + overhead * (per_layer * self.layers + per_invoke)

    def cycles(self, layout: _Layout, theta: np.ndarray) -> np.ndarray:
        return self._total(*self.parts(layout, theta)[:5])

    def log_jacobian(self, layout: _Layout, theta: np.ndarray) -> np.ndarray:
        """d log(cycles) / d theta, exactly."""
        speed, macs, overhead, per_layer, per_invoke, costs = self.parts(layout, theta)
        total = self._total(speed, macs, overhead, per_layer, per_invoke)
        jac = self.speed * (speed * macs / total)[:, None]
        rows = np.arange(len(total))
        for j in range(len(COST_KINDS)):
            np.add.at(jac, (rows, self.cost_index[:, j]), speed * costs[:, j] * self.kinds[:, j] / total)
        fixed = overhead * (per_layer * self.layers + per_invoke) / total
        np.add.at(jac, (rows, self.overhead), fixed)
        jac[:, layout.index["per_layer", None]] += overhead * per_layer * self.layers / total
        jac[:, layout.index["per_invoke", None]] += overhead * per_invoke / total
        return jac


def _figure_rows(figures: list[dict]) -> list[tuple[str, str, Work]]:
    return [(f["core"], f["class"], reference_work(f["model"])) for f in figures]


@dataclass(frozen=True)
class Fit:
    layout: _Layout
    theta: np.ndarray

    def has_pair(self, core: str, klass: str) -> bool:
        return ("pair", (core, klass)) in self.layout.index

    def cases(self, core: str, klass: str, works: list[Work]) -> _Cases:
        return _Cases.build(self.layout, [(core, klass, w) for w in works])

    def cycles(self, core: str, klass: str, work: Work) -> float:
        return float(self.cases(core, klass, [work]).cycles(self.layout, self.theta)[0])


def fit(figures: list[dict]) -> Fit:
    """The parameters that best explain `figures` under the priors (damped Gauss-Newton)."""
    layout = _Layout(figures)
    cases = _Cases.build(layout, _figure_rows(figures))
    observed = np.log([figure_cycles(f) for f in figures])
    theta = layout.start()

    def residuals(t: np.ndarray) -> np.ndarray:
        return np.concatenate([observed - np.log(cases.cycles(layout, t)),
                               layout.prior_means - layout.prior_rows @ t])

    current = residuals(theta)
    cost = current @ current
    damping = 1e-3
    for _ in range(200):
        jac = np.vstack([-cases.log_jacobian(layout, theta), -layout.prior_rows])
        normal = jac.T @ jac
        gradient = jac.T @ current
        step = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-9), -gradient)
        trial = theta + step
        trial_res = residuals(trial)
        trial_cost = trial_res @ trial_res
        if trial_cost < cost:
            converged = cost - trial_cost < 1e-10 * max(cost, 1.0)
            theta, current, cost = trial, trial_res, trial_cost
            damping = max(damping / 3, 1e-9)
            if converged:
                break
        else:
            damping *= 4
            if damping > 1e8:
                break
    return Fit(layout=layout, theta=theta)


@lru_cache(maxsize=None)
def fitted() -> Fit:
    return fit(usable_figures())


# --- how far off it is on sources it has not seen ----------------------------------------------

@dataclass(frozen=True)
class LeftOut:
    """One published figure estimated by the fit without its whole source group."""

    figure: dict
    estimate_ms: float
    direct: bool  # other sources had figures of this core with this class

    @property
    def ratio(self) -> float:
        """published / estimate"""
        return self.figure["latency_ms"] / self.estimate_ms


@lru_cache(maxsize=None)
def left_out() -> tuple[LeftOut, ...]:
    figures = usable_figures()
    results = []
    for group in sorted({f["group"] for f in figures}):
        rest = fit([f for f in figures if f["group"] != group])
        for f in (f for f in figures if f["group"] == group):
            cycles = rest.cycles(f["core"], f["class"], reference_work(f["model"]))
            results.append(LeftOut(f, cycles / (f["cpu_mhz"] * 1e3), rest.has_pair(f["core"], f["class"])))
    return tuple(results)


@lru_cache(maxsize=None)
def band(direct: bool) -> tuple[float, float, str]:
    """(low, high) factors around an estimate, and how they were derived: the narrowest range
    of left-out errors that held BAND_SHARE of them, or if that is wider than MAX_BAND_RATIO,
    the range of that width that held the most."""
    pool = [r for r in left_out() if r.direct == direct]
    what = "whose core and kernels other sources had figures for" if direct else \
        "whose core or kernels no other source had figures for"
    logs = np.sort(np.log([r.ratio for r in pool]))
    wanted = max(1, math.ceil(BAND_SHARE * len(logs)))
    widths = logs[wanted - 1:] - logs[:len(logs) - wanted + 1]
    start = int(np.argmin(widths))
    low, high = float(logs[start]), float(logs[start + wanted - 1])
    capped = high - low > math.log(MAX_BAND_RATIO)
    if capped:
        ends = logs + math.log(MAX_BAND_RATIO)
        held = np.searchsorted(logs, ends, side="right") - np.arange(len(logs))
        start = int(np.argmax(held))
        low, high = float(logs[start]), float(logs[start]) + math.log(MAX_BAND_RATIO)
    low, high = math.exp(min(low, 0.0)), math.exp(max(high, 0.0))
    inside = sum(low <= r.ratio <= high for r in pool)
    text = (f"the narrowest range {'at most ' + format(MAX_BAND_RATIO, 'g') + 'x wide ' if capped else ''}"
            f"that held {inside} of the {len(pool)} published figures {what}, each estimated without its own source")
    return low, high, text


def left_out_table() -> list[dict]:
    """Per figure: published, estimate, band and error when its source was left out (bench)."""
    rows = []
    for r in left_out():
        low, high, _ = band(r.direct)
        f = r.figure
        rows.append({"group": f["group"], "core": f["core"], "class": f["class"], "model": f["model"],
                     "published_ms": f["latency_ms"], "estimate_ms": r.estimate_ms, "direct": r.direct,
                     "inside": low <= r.ratio <= high})
    return rows


# --- estimates -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Costs:
    """Cycles per unit of each kind of work on one board: what an estimate multiplies out. The
    fields before `invoke` are per unit of Work's fields, in WORK_FIELDS order."""

    conv_mac: float
    depthwise_mac: float
    fc_mac: float
    element_op: float
    layer: float
    invoke: float

    @property
    def per_unit(self) -> tuple[float, ...]:
        """Cycles per unit of each of WORK_FIELDS."""
        return (self.conv_mac, self.depthwise_mac, self.fc_mac, self.element_op, self.layer)

    def cycles(self, work: Work, invoke: bool = True) -> float:
        return (sum(cost * getattr(work, field) for cost, field in zip(self.per_unit, WORK_FIELDS))
                + (self.invoke if invoke else 0.0))

    def to_dict(self) -> dict:
        return {f"cycles_per_{k}": float(f"{v:.4g}") for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(values: dict) -> "Costs":
        return Costs(**{k: float(values[f"cycles_per_{k}"]) for k in Costs.__dataclass_fields__})


@dataclass(frozen=True)
class Estimate:
    milliseconds: float
    low_ms: float
    high_ms: float
    calibration: str  # "<core> / <kernel class>" or "profile of <board>"
    basis: str  # what the figure rests on, for the user
    band_basis: str  # how the band was derived
    cpu_mhz: float
    costs: Costs

    def milliseconds_for(self, work: Work) -> float:
        """The share of `work` (e.g. one layer's) in this estimate, without the per-invoke part."""
        return self.costs.cycles(work, invoke=False) / (self.cpu_mhz * 1e3)

    @property
    def from_profile(self) -> bool:
        """Measured on the user's own board (`tinygen profile --calibrate`), not fitted to others."""
        return self.calibration.startswith(PROFILE_CALIBRATION)

    @property
    def invoke_ms(self) -> float:
        return self.costs.invoke / (self.cpu_mhz * 1e3)

    def describe(self) -> str:
        return f"~{format_ms(self.milliseconds)} ms ({format_ms(self.low_ms)}-{format_ms(self.high_ms)} ms)"

    def to_dict(self) -> dict:
        return {"milliseconds": round(self.milliseconds, 4), "low_ms": round(self.low_ms, 4),
                "high_ms": round(self.high_ms, 4), "is_estimate": True, "calibration": self.calibration,
                "basis": self.basis, "band_basis": self.band_basis, "cpu_mhz": self.cpu_mhz,
                "invoke_ms": round(self.invoke_ms, 4), "costs": self.costs.to_dict(),
                "track_record": None if self.from_profile else track_record()}


def format_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


def board_costs(model_fit: Fit, core: str, klass: str) -> Costs:
    """The fitted cycles per unit of each kind for a core running a kernel class."""
    layout, theta = model_fit.layout, model_fit.theta
    speed, _, overhead, per_layer, per_invoke, costs = model_fit.cases(core, klass, [Work()]).parts(layout, theta)
    per_mac = float(speed[0])
    return Costs(conv_mac=per_mac, depthwise_mac=per_mac * float(costs[0, 0]), fc_mac=per_mac * float(costs[0, 1]),
                 element_op=per_mac * float(costs[0, 2]), layer=float(overhead[0]) * per_layer,
                 invoke=float(overhead[0]) * per_invoke)


def estimate(board: Board, work: Work) -> Estimate | None:
    """None for an emulated board or one without a clock."""
    mhz = board.get("cpu_mhz")
    if board.get("emulated") or not mhz:
        return None
    profile = board.get("latency_profile")
    if profile:
        return _from_profile(board, profile, work)
    core = board.get("core")
    if not core:
        return None
    klass = kernel_class(board["kernels"])
    model_fit = fitted()
    costs = board_costs(model_fit, core, klass)
    milliseconds = costs.cycles(work) / (mhz * 1e3)
    direct = model_fit.has_pair(core, klass)
    low, high, band_basis = band(direct)
    data = calibration_data()
    own = sorted({f["group"] for f in usable_figures() if f["core"] == core and f["class"] == klass})
    basis = (f"{data['classes'][klass]['name']} on a {core} at {mhz:g} MHz, fitted to "
             f"{len(usable_figures())} published figures")
    basis += (f" ({len(own)} source{'s' if len(own) != 1 else ''} for this core with these kernels)" if direct else
              " (none for this core with these kernels: inferred from similar cores and kernels)")
    return Estimate(milliseconds=milliseconds, low_ms=milliseconds * low, high_ms=milliseconds * high,
                    calibration=f"{core} / {klass}", basis=basis, band_basis=band_basis, cpu_mhz=mhz, costs=costs)


def _from_profile(board: Board, profile: dict, work: Work) -> Estimate:
    """A board calibrated on the user's own profile: cycles per unit of each kind, measured."""
    mhz = board["cpu_mhz"]
    costs = Costs.from_dict(profile)
    milliseconds = costs.cycles(work) / (mhz * 1e3)
    spread = float(profile["band"])
    return Estimate(milliseconds=milliseconds, low_ms=milliseconds * (1 - spread), high_ms=milliseconds * (1 + spread),
                    calibration=f"{PROFILE_CALIBRATION}{board.id}", basis=f"measured on this board: {profile['source']}",
                    band_basis=f"the profile's own fit, +-{spread:.0%}", cpu_mhz=mhz, costs=costs)


@lru_cache(maxsize=None)
def track_record() -> str:
    """How far off the estimate was on published figures it had not seen, in one sentence."""
    rows = left_out_table()
    errors = sorted(abs(r["published_ms"] / r["estimate_ms"] - 1) for r in rows)
    inside = sum(r["inside"] for r in rows)
    return (f"on {len(rows)} published figures from {len({r['group'] for r in rows})} sources, each estimated "
            f"without its own source, the median error was {float(np.median(errors)):.0%} and {inside} "
            f"({inside / len(rows):.0%}) fell inside their band")


def calibrate(works: list[Work], cycles: list[float], invoke_cycles: float, prior: Costs) -> tuple[Costs, float]:
    """A board's own costs from a profile: each operator's measured cycles against its work.

    Per operator, cycles = sum of cost_k * work_k + per-layer cycles. The costs are fitted to
    the operators' relative errors, each pulled gently toward the prior's costs scaled to the
    profile (so a kind of work the profiled model lacks keeps the prior's ratio), and kept >= 0.
    The costs are then scaled so the operators add up to their measured total, and the
    per-invoke cycles are what Invoke() took beyond them: the profiled model's estimate is its
    measured Invoke() time. Returns the costs and the band (the operators'
    time-weighted relative error, at least PROFILE_MIN_BAND)."""
    work_matrix = np.array([[getattr(w, field) for field in WORK_FIELDS] for w in works], dtype=float)
    measured = np.array(cycles, dtype=float)
    prior_costs = np.array(prior.per_unit)
    scale = measured.sum() / max(float((work_matrix @ prior_costs).sum()), 1e-12)
    unit = np.maximum(prior_costs * scale, 1e-12)  # unknowns: multiples of the scaled prior
    a = work_matrix * unit / np.maximum(measured, 1e-12)[:, None]
    b = np.ones(len(measured))
    active = np.ones(len(WORK_FIELDS), dtype=bool)
    multiples = np.ones(len(WORK_FIELDS))
    for _ in range(len(WORK_FIELDS) + 1):  # active set: a cost that comes out negative is 0
        cols = np.flatnonzero(active)
        lhs = np.vstack([a[:, cols], math.sqrt(PROFILE_PULL) * np.eye(len(cols))])
        rhs = np.concatenate([b, math.sqrt(PROFILE_PULL) * np.ones(len(cols))])
        multiples[:] = 0
        multiples[cols] = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
        if (multiples >= 0).all():
            break
        active &= multiples > 0
    fitted_costs = np.maximum(multiples, 0) * unit
    predicted = work_matrix @ fitted_costs
    fitted_costs *= measured.sum() / max(float(predicted.sum()), 1e-12)  # the operators' total, as measured
    predicted = work_matrix @ fitted_costs
    invoke = max(float(invoke_cycles - measured.sum()), 0.0)  # Invoke() beyond its operators
    spread = float(np.abs(predicted - measured).sum() / max(measured.sum(), 1e-12))
    costs = Costs(*(float(v) for v in fitted_costs), invoke=invoke)
    return costs, min(max(spread, PROFILE_MIN_BAND), 0.5)
