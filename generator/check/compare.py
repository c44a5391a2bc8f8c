"""How far two runs' outputs are apart: the one comparison `verify` and the model rewrites
(`numerics`) report, in dequantized units and in quantization steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import golden


@dataclass
class Difference:
    """Output difference between two runs over all samples, in dequantized units."""

    max_abs: float
    mean_abs: float
    max_steps: float | None  # integer outputs: the largest difference in quantization steps
    top1_agreement: float | None  # outputs of several values: share of samples whose argmax agrees
    first_failure: dict | None  # {"sample", "output", "element", "got", "expected"} or None

    @property
    def ok(self) -> bool:
        return self.first_failure is None


def difference(got: list[np.ndarray], expected: list[np.ndarray], scales: list[float | None] | None,
               tolerance_steps: int | None = None) -> Difference:
    """Differences of `got` from `expected`. With `tolerance_steps`, also the first element
    beyond it: integer outputs (a scale in `scales`) compare in quantization steps, float
    ones with the float tolerance."""
    diffs = [np.abs(g - e) for g, e in zip(got, expected)]
    max_abs = max(float(d.max()) for d in diffs)
    mean_abs = float(np.mean(np.concatenate([d.reshape(-1) for d in diffs])))
    scales = scales or [None] * len(got)
    steps = [d / s for d, s in zip(diffs, scales) if s]
    max_steps = max(float(np.round(x.max(), 6)) for x in steps) if steps else None
    wide = [(g, e) for g, e in zip(got, expected) if g.shape[1] > 1]
    top1 = (float(np.mean(np.concatenate([g.argmax(1) == e.argmax(1) for g, e in wide])))
            if wide else None)
    first_failure = None
    if tolerance_steps is not None:
        for k, (g, e, d, s) in enumerate(zip(got, expected, diffs, scales)):
            if s:  # a quantized output: compare in steps (a little slack for float rounding)
                ok = d <= tolerance_steps * s + 1e-6 * s
            else:
                ok = golden.within_tolerance(g.astype(np.float32), e.astype(np.float32))
            if not ok.all():
                sample, element = (int(i) for i in np.argwhere(~ok)[0])
                first_failure = {"sample": sample, "output": k, "element": element,
                                 "got": float(g[sample, element]), "expected": float(e[sample, element])}
                break
    return Difference(max_abs=max_abs, mean_abs=mean_abs, max_steps=max_steps, top1_agreement=top1,
                      first_failure=first_failure)


def describe_change(change: Difference, samples: int, inputs_from: str) -> str:
    """E.g. 'outputs at most 2 steps apart (mean 0.04), top-1 agrees on 99.0% of 200 calibration
    samples' or 'identical outputs on 24 pseudo-random inputs'."""
    if change.max_abs == 0:
        return f"identical outputs on {samples} {inputs_from}"
    size = (f"at most {change.max_steps:g} step(s) apart" if change.max_steps is not None
            else f"at most {change.max_abs:.3g} apart")
    top1 = f", top-1 agrees on {change.top1_agreement:.1%}" if change.top1_agreement is not None else ""
    return f"outputs {size} (mean |difference| {change.mean_abs:.3g}){top1} on {samples} {inputs_from}"
