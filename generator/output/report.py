"""What tinygen knows about a model on a board, in three forms from one source: JSON
(`inspect --json`), a terminal table (`inspect`) and Markdown (`inspect --format markdown` and
the generated project's MODEL_REPORT.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..boards.fit import BoardFit, deployability, fit_every_board
from ..boards.latency import Estimate, estimate, track_record
from ..boards.latency import format_ms as _format_ms
from ..library.numerics import host as numerics_host
from ..library.numerics import library_name as numerics_library
from ..library.numerics import tolerance_basis
from ..model.analyze import report_to_dict
from ..model.layers import LayerRow, layer_table, model_cost
from ..pipeline import Prepared


@dataclass
class Inspection:
    prepared: Prepared
    layers: list[LayerRow]
    every_board: dict[tuple[str, str], BoardFit]
    verdict: dict  # fit.deployability
    latency: Estimate | None  # for the board asked about
    layer_ms: list[float | None]  # each layer's share of the latency estimate


def inspect(prepared: Prepared) -> Inspection:
    report, board = prepared.report, prepared.board
    latency = estimate(board, model_cost(report))
    layers = layer_table(report, prepared.arena.simulation)
    layer_ms = [None if latency is None else latency.milliseconds_for(row.work) for row in layers]
    return Inspection(prepared=prepared, layers=layers,
                      every_board=fit_every_board(prepared.original_tflite, prepared.arena,
                                                  prepared.emitted_bytes, prepared.host_error),
                      verdict=deployability(prepared), latency=latency, layer_ms=layer_ms)


def totals(ins: Inspection) -> dict:
    """The layer table's sums beside the model and arena sizes they belong to."""
    arena = ins.prepared.arena
    return {"macs": sum(r.macs for r in ins.layers), "weight_bytes": sum(r.weight_bytes for r in ins.layers),
            "model_bytes": ins.prepared.report.model_bytes, "head_bytes": arena.simulation.head_bytes,
            "arena_bytes": arena.arena_bytes}


def to_dict(ins: Inspection) -> dict:
    prepared = ins.prepared
    report, arena, resolution = prepared.report, prepared.arena, prepared.resolution
    return report_to_dict(report) | {
        "target": prepared.board.target,
        "board": prepared.board.id,
        "deployable": ins.verdict,
        "resolver_size": resolution.size if resolution else None,
        "resolver": [{"op": r.op, "method": r.method} for r in resolution.registrations] if resolution else None,
        "labels": prepared.labels,
        "arena_bytes": arena.arena_bytes,
        "arena_min_bytes": arena.arena_min_bytes,
        "arena_scratch_bytes": arena.scratch_bytes,
        "arena_kernels": arena.kernels,
        "arena_library": arena.simulation.library,
        "arena_head_bytes": arena.simulation.head_bytes,
        "arena_tail_bytes": arena.simulation.tail_bytes,
        "arena_phases": arena.simulation.phases,
        "arena_tail_parts": arena.simulation.tail_parts,
        "arena_requests": [{"operator": r.op_index, "op": r.op, "bytes": r.bytes,
                            "persistent": r.persistent, "source": r.source}
                           for r in arena.simulation.requests],
        "tflm_runtime": arena.runtime,
        "latency_estimate": ins.latency.to_dict() if ins.latency else None,
        "layers": [row.to_dict() | {"estimated_ms": None if ms is None else round(ms, 4)}
                   for row, ms in zip(ins.layers, ins.layer_ms)],
        "totals": totals(ins),
        "fit": prepared.fit.to_dict(),
        "numerics": prepared.adapted.to_dict() | {"library": numerics_library(prepared.board),
                                                  "kernels": prepared.board["kernels"], "host": numerics_host()},
        "boards": [{"target": t, "board": b} | row.to_dict() for (t, b), row in ins.every_board.items()],
    }


REPORT_FILE = "MODEL_REPORT.md"


def latency_lines(ins: Inspection, markdown: bool = False) -> list[str]:
    """The estimate, what it rests on, its band and how far off it was on unseen figures."""
    latency = ins.latency
    if latency is None:
        board = ins.prepared.board
        why = ("an emulated board" if board.get("emulated") else
               "the board states no `core` and `cpu_mhz`")
        return [f"no estimate for this board ({why})."]
    figure = f"**{latency.describe()}**" if markdown else latency.describe()
    lines = [f"{figure} per inference: an estimate, {latency.basis}.",
             f"Band: {latency.band_basis}."]
    if not latency.from_profile:
        lines.append(f"So far {track_record()}. Measure your own board with `tinygen new --profile` and "
                     "`tinygen profile LOG --calibrate FILE`.")
    return lines


def format_ms(value: float | None) -> str:
    return "-" if value is None else _format_ms(value)


def _shape(shape: list[int]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def layer_lines(ins: Inspection) -> list[tuple]:
    """One tuple per layer: the columns both the table and the Markdown show."""
    return [(row.index, row.op, _shape(row.output_shape), f"{row.weight_bytes:,}",
             f"{row.macs:,}" if row.macs else f"({row.ops:,} ops)", f"{row.live_bytes:,}",
             f"{row.scratch_bytes:,}" if row.scratch_bytes else "-", format_ms(ms), "*" if row.peak else "")
            for row, ms in zip(ins.layers, ins.layer_ms)]


LAYER_HEADER = ("#", "op", "output", "weights B", "MACs", "live B", "scratch B", "est. ms", "peak")
BOARD_HEADER = ("target", "board", "arena B", "flash need / have", "RAM need / have", "latency (estimate)", "numerics",
                "fits")


def board_lines(ins: Inspection) -> list[tuple]:
    """One tuple per catalog board: the columns both the table and the Markdown show."""
    lines = []
    for (target, board_id), row in ins.every_board.items():
        ms = row.latency.describe() if row.latency else "-"
        numerics = row.numerics.summary() if row.numerics is not None and not row.numerics.refused else "-"
        if row.fit is None:
            lines.append((target, board_id, "-", "-", "-", ms, numerics, f"no: {row.short_reason}"))
            continue
        f = row.fit
        verdict = "yes" if f.ok else "no: not enough " + " and ".join(f.shortfalls)
        if f.arena_in_psram:
            verdict += f" (arena in PSRAM: {f.psram_needed:,} / {f.board['psram_bytes']:,})"
        lines.append((target, board_id, f"{f.arena_bytes:,}", f"{f.flash_needed:,} / {f.board['flash_bytes']:,}",
                      f"{f.ram_needed:,} / {f.board['ram_bytes']:,}", ms, numerics, verdict))
    return lines


def numerics_lines(prepared: Prepared) -> list[str]:
    """What the board computes unlike the host, and what tinygen did about it."""
    adapted = prepared.adapted
    lines = [f"rewritten: {step.describe()}" for step in adapted.applied]
    if adapted.change:
        lines.append(f"effect of the rewrites on the outputs (host TFLite-Micro): {adapted.change}")
    lines += [f"refused: {f.describe()}" + (f"; instead: {f.rule.instead}" if f.rule.instead else "")
              for f in adapted.refused]
    lines.append(f"self-test against the host's golden outputs: {tolerance_basis(adapted)}")
    return lines


def aligned(lines: list[tuple], left: tuple[int, ...]) -> list[str]:
    """Columns padded to their widest cell: the `left` ones left-aligned, the others right."""
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    return ["  " + "  ".join(f"{str(v):<{w}}" if i in left else f"{str(v):>{w}}"
                             for i, (v, w) in enumerate(zip(line, widths))).rstrip() for line in lines]


def to_text(ins: Inspection) -> str:
    prepared = ins.prepared
    report, arena, fit, resolution, board = (prepared.report, prepared.arena, prepared.fit,
                                             prepared.resolution, prepared.board)
    out = [f"Model       {prepared.model_path} ({prepared.model_kind}, quantization {report.quantization_label})",
           f"Size        {report.model_bytes:,} bytes, {report.parameter_count:,} parameters, "
           f"{report.tensor_count} tensors, sha256 {report.sha256[:16]}"]
    if resolution is not None:
        out.append(f"Operators   {resolution.size} distinct (MicroMutableOpResolver<{resolution.size}>)")
        out += [f"  {r.op:<24} {r.method}()" for r in resolution.registrations]
    else:
        out.append(f"Operators   {', '.join(report.ops + report.custom_ops)}")
    for title, tensors in (("Inputs", report.inputs), ("Outputs", report.outputs)):
        out.append(title)
        for t in tensors:
            quant = f" scale={t.scale:.6g} zero_point={t.zero_point}" if t.scale is not None else ""
            out.append(f"  {t.display_name:<32} {str(t.shape):<16} {t.numpy_dtype or t.dtype}{quant}")
    if prepared.labels:
        out.append(f"Labels      {', '.join(prepared.labels)}")
    out.append(f"Layers      per operator on {board.target}/{board.id} (* sets the arena's head; est. ms: "
               "estimate)")
    out += aligned([LAYER_HEADER] + layer_lines(ins), left=(1, 2))
    sums = totals(ins)
    out.append(f"  total: {sums['macs']:,} MACs, {sums['weight_bytes']:,} B of weights in a "
               f"{report.model_bytes:,}-byte model; memory plan {arena.simulation.head_bytes:,} B")
    out.append(f"Arena       {arena.arena_bytes:,} bytes for {board.target}/{board.id} "
               f"({arena.breakdown()}; tflite-micro {arena.runtime})")
    out += [f"  {line}" for line in arena.detail]
    out += [f"Latency     {line}" if i == 0 else f"            {line}" for i, line in enumerate(latency_lines(ins))]
    out.append(f"Numerics    what {board.target}/{board.id}'s {numerics_library(board)} computes, against "
               f"the host ({numerics_host()})")
    out += [f"  {line}" for line in numerics_lines(prepared)]
    out.append(f"Fit         {fit.summary()}")
    out.append(f"            arena in {fit.placement}")
    out.append("Every board (model and arena computed; runtime flash/RAM measured where marked in "
               "`inspect --json`; latency is an estimate)")
    out += aligned([BOARD_HEADER] + board_lines(ins), left=(0, 1, 6, 7))
    out.append(f"Verdict     {board.target}/{board.id}: " + ("deployable" if ins.verdict["ok"] else ins.verdict["reason"]))
    return "\n".join(out)


def to_markdown(ins: Inspection) -> str:
    prepared = ins.prepared
    report, arena, fit, board = prepared.report, prepared.arena, prepared.fit, prepared.board

    def table(header, rows) -> list[str]:
        return (["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
                + ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows])

    md = [f"# {prepared.model_path.name} on {board.name}", "",
          "Everything below was computed by tinygen from the model file and the board's pinned "
          "library; how each figure was obtained is said beside it.", "",
          "## Model", ""]
    md += table(("", ""), [
        ("file", f"`{prepared.model_path.name}` ({prepared.model_kind})"),
        ("size", f"{report.model_bytes:,} bytes, {report.parameter_count:,} parameters, SHA-256 `{report.sha256}`"),
        ("quantization", report.quantization_label),
        ("operators", ", ".join(report.ops + report.custom_ops)),
        *[(f"input {i}", f"`{t.display_name}` {t.shape} {t.numpy_dtype}") for i, t in enumerate(report.inputs)],
        *[(f"output {i}", f"`{t.display_name}` {t.shape} {t.numpy_dtype}") for i, t in enumerate(report.outputs)],
    ])
    md += ["", f"## Layers on {board.target}/{board.id}", "",
           "MACs and weights from the flatbuffer; live B: activation and scratch buffers in use while "
           "the layer runs (the memory plan); scratch B: what this board's kernels ask for; est. ms: "
           "the latency estimate's share (an estimate); peak: the layer that sets the arena's head.", ""]
    md += table(LAYER_HEADER, layer_lines(ins))
    md += ["", "## Arena", "",
           f"**{arena.arena_bytes:,} bytes**: {arena.breakdown()}.", ""]
    md += [f"- {line}" for line in arena.detail]
    md += ["", "Simulated for this board's library (tinygen's allocator simulation, checked against real "
           "32-bit runs of published models: `bench/arena_evidence.yaml` in tinygen's repository).", ""]
    md += ["## Latency", ""]
    md += [" ".join(latency_lines(ins, markdown=True))]
    md += ["", "## What the board computes", "",
           f"The golden outputs come from {numerics_host()}; this board runs {numerics_library(board)} "
           f"with {board['kernels']} kernels (tinygen's numerics table, `numerics.yaml`, lists where they differ, with "
           "the pinned source lines).", ""]
    md += [f"- {line}" for line in numerics_lines(prepared)]
    md += ["", "## Fit", "", f"{fit.summary()}. The arena is in {fit.placement}. Runtime figures: "
           f"{fit.runtime.source}.", "", "## Every board", ""]
    md += table(BOARD_HEADER, board_lines(ins))
    md += ["", f"Verdict for {board.target}/{board.id}: "
           + ("deployable." if ins.verdict["ok"] else ins.verdict["reason"] + "."), ""]
    return "\n".join(md)
