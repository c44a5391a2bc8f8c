"""On-device profiles: what a `tinygen new --profile` firmware prints after its self-test (one
"tinygen profile:" line per operator, see firmware/tinygen_model.cpp.j2), read back
from a saved serial log and put beside tinygen's per-layer latency estimate.

The estimate comes from the project's manifest, where `new` keeps it (`project_facts`), so a
log can be read without the model or TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..boards.catalog import add_user_boards, bundled_catalog, catalog, get_board, save_user_board
from ..boards.latency import Costs, calibrate, estimate
from ..errors import TinygenError
from ..model.layers import Work
from .render import read_manifest
from .report import aligned

PREFIX = "tinygen profile: "
_HEADER = re.compile(r"generation 0x([0-9a-fA-F]{1,8}), (\d+) operators")
_OPERATOR = re.compile(r"(\d+) (\S+) (\d+) us$")
_TOTAL = re.compile(r"total (\d+) us \(Invoke\(\) (\d+) us\)")


@dataclass
class MeasuredRun:
    generation: str  # 0x%08x, as the firmware's kGeneration
    operators: list[tuple[int, str, int]]  # (index, op name, microseconds)
    total_us: int  # the operators' sum
    invoke_us: int  # the whole Invoke(), interpreter included


def parse_log(text: str) -> list[MeasuredRun]:
    """Every complete profile in a serial log (a board may have been reset mid-log: a profile
    cut short is skipped). Other output, timestamps or log-level prefixes around the lines
    do not matter."""
    runs: list[MeasuredRun] = []
    current: MeasuredRun | None = None
    expected = 0
    for raw in text.replace("\r", "\n").splitlines():
        at = raw.find(PREFIX)
        if at < 0:
            continue
        body = raw[at + len(PREFIX):].strip()
        if header := _HEADER.match(body):
            current = MeasuredRun(generation=f"0x{int(header.group(1), 16):08x}", operators=[],
                                  total_us=0, invoke_us=0)
            expected = int(header.group(2))
        elif current is None:
            continue
        elif operator := _OPERATOR.match(body):
            index, name, us = int(operator.group(1)), operator.group(2), int(operator.group(3))
            if index != len(current.operators):  # lines lost or mixed up: drop this profile
                current = None
                continue
            current.operators.append((index, name, us))
        elif total := _TOTAL.match(body):
            current.total_us, current.invoke_us = int(total.group(1)), int(total.group(2))
            if len(current.operators) == expected:
                runs.append(current)
            current = None
    return runs


def project_facts(layers: list[dict], latency: dict | None, generation: str, target: str, board: str) -> dict:
    """What `new` keeps in the manifest for `tinygen profile`: the estimate per layer."""
    return {"profile_reference": {
        "generation": f"0x{int(generation.rstrip('uU'), 16):08x}", "target": target, "board": board,
        "latency_estimate": latency,
        "layers": [{"index": row["index"], "op": row["op"], "macs": row["macs"], "work": row["work"],
                    "estimated_ms": row["estimated_ms"]} for row in layers]}}


@dataclass
class ProfileComparison:
    project: Path
    run: MeasuredRun
    reference: dict  # the manifest's profile_reference
    runs_in_log: int

    @property
    def same_generation(self) -> bool:
        return self.run.generation == self.reference["generation"]

    def rows(self) -> list[dict]:
        rows = []
        for (index, op, us), layer in zip(self.run.operators, self.reference["layers"]):
            estimated = layer["estimated_ms"]
            rows.append({"index": index, "op": op, "measured_ms": us / 1000, "estimated_ms": estimated,
                         "measured_over_estimate": None if not estimated else us / 1000 / estimated})
        return rows

    def to_dict(self) -> dict:
        latency = self.reference.get("latency_estimate")
        return {"project": str(self.project), "target": self.reference["target"],
                "board": self.reference["board"], "log_generation": self.run.generation,
                "project_generation": self.reference["generation"], "profiles_in_log": self.runs_in_log,
                "layers": self.rows(), "measured_total_ms": self.run.total_us / 1000,
                "measured_invoke_ms": self.run.invoke_us / 1000,
                "estimated_total_ms": latency["milliseconds"] if latency else None,
                "estimated_low_ms": latency["low_ms"] if latency else None,
                "estimated_high_ms": latency["high_ms"] if latency else None,
                "estimate_basis": latency["basis"] if latency else None}

    def to_text(self) -> str:
        ref = self.reference
        out = [f"Profile     {self.project} on {ref['target']}/{ref['board']}: measured on the board "
               f"(last of {self.runs_in_log} profile(s) in the log), beside tinygen's estimate"]
        if not self.same_generation:
            out.append(f"            note: the log is of generation {self.run.generation}, the project "
                       f"is now {ref['generation']}: the estimate is for the project as it is now")
        table = [("#", "op", "measured ms", "est. ms", "measured/est.")]
        for row in self.rows():
            ratio = row["measured_over_estimate"]
            table.append((row["index"], row["op"], f"{row['measured_ms']:.3f}",
                          "-" if row["estimated_ms"] is None else f"{row['estimated_ms']:.3f}",
                          "-" if ratio is None else f"{ratio:.2f}"))
        out += aligned(table, left=(1,))
        latency = ref.get("latency_estimate")
        out.append(f"Total       measured {self.run.total_us / 1000:.3f} ms in the operators, "
                   f"{self.run.invoke_us / 1000:.3f} ms for Invoke()")
        if latency:
            out.append(f"            estimated {latency['milliseconds']:.3f} ms, band {latency['low_ms']:.3f}-"
                       f"{latency['high_ms']:.3f} ms ({latency['basis']})")
        else:
            out.append("            no estimate for this board (it states no `core` and `cpu_mhz`, or is emulated)")
        return "\n".join(out)


def compare(log_path: Path, project: Path) -> ProfileComparison:
    try:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TinygenError(f"Cannot read the log '{log_path}': {exc.strerror}.") from None
    runs = parse_log(text)
    if not runs:
        raise TinygenError(
            f"No complete profile in '{log_path}' (lines starting 'tinygen profile:').",
            hint="Generate the project with `tinygen new --profile`, flash it and save the serial "
            "output after the self-test.")
    reference = read_manifest(project).get("profile_reference")
    if not reference:
        raise TinygenError(f"'{project}' was generated by a tinygen without profile support.",
                           hint="Regenerate it with `tinygen new --profile ... --force`.")
    run = runs[-1]
    expected = [layer["op"] for layer in reference["layers"]]
    got = [op for _, op, _ in run.operators]
    if got != expected:
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        raise TinygenError(
            f"The log's operators do not match the project's model: {len(got)} in the log, "
            f"{len(expected)} in '{project}', first difference at operator {first}.",
            hint="Pass the project folder the firmware was built from (--project).")
    return ProfileComparison(project=project, run=run, reference=reference, runs_in_log=len(runs))


@dataclass
class Calibration:
    boards_file: Path
    target: str
    board: str  # the board written or updated in boards_file
    created: bool
    profile: dict  # its latency_profile
    estimate_ms: float  # the new estimate for the profiled model
    measured_ms: float  # the profiled Invoke()
    comments_dropped: bool

    def to_text(self) -> str:
        verb = "Added" if self.created else "Updated"
        lines = [f"Calibrated  {verb} board '{self.board}' ({self.target}) in {self.boards_file}: its latency now "
                 f"rests on this profile ({self.profile['band']:.0%} band from the operators' fit).",
                 f"            this model: estimated {self.estimate_ms:.3f} ms, measured {self.measured_ms:.3f} ms "
                 "for Invoke()",
                 f"            use it: tinygen inspect MODEL --boards {self.boards_file} --target {self.target} "
                 f"--board {self.board}"]
        if self.comments_dropped:
            lines.append(f"            note: the comments in {self.boards_file} were not kept (the file was rewritten)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"boards_file": str(self.boards_file), "target": self.target, "board": self.board,
                "created": self.created, "latency_profile": self.profile,
                "estimated_ms": round(self.estimate_ms, 4), "measured_invoke_ms": self.measured_ms}


def calibrate_board(comparison: ProfileComparison, boards_file: Path, log_name: str) -> Calibration:
    """Fits the profiled board's latency constants and writes them to `boards_file`: into the
    board itself when the file defines it, else into `<board>-measured`, based on the catalog
    board the project was made for."""
    ref = comparison.reference
    if any("work" not in layer for layer in ref["layers"]):
        raise TinygenError(f"'{comparison.project}' was generated by a tinygen that did not record each layer's work.",
                           hint="Regenerate it with `tinygen new --profile ... --force` and profile it again.")
    target, board_id = ref["target"], ref["board"]
    added = add_user_boards(boards_file) if boards_file.exists() else []
    in_file = {i: catalog()["targets"][t]["boards"][i] for t, i in added if t == target}
    if board_id in in_file:
        written_id, settings = board_id, dict(in_file[board_id])
    elif board_id in bundled_catalog()["targets"][target]["boards"]:
        written_id = f"{board_id}-measured"
        settings = dict(in_file.get(written_id) or {"based_on": board_id})
    else:
        raise TinygenError(f"Board '{board_id}' is not in tinygen's catalog nor in '{boards_file}'.",
                           hint="Pass the boards file that defines it: `--calibrate FILE`.")
    board = get_board(target, board_id)
    mhz = board.get("cpu_mhz")
    prior = estimate(board, Work())  # None without a clock or a core
    if prior is None:
        raise TinygenError(f"Board '{board_id}' states no `core` and `cpu_mhz`: the profile's times cannot be "
                           "turned into cycles for it.", hint="Add both to the board in your boards file.")
    works = [Work(**layer["work"]) for layer in ref["layers"]]
    cycles = [us * mhz for _, _, us in comparison.run.operators]
    costs, band = calibrate(works, cycles, comparison.run.invoke_us * mhz, prior.costs)
    settings["latency_profile"] = {
        "source": f"`tinygen profile` of {comparison.project.name} ({log_name}): {len(works)} operators, "
                  f"Invoke() {comparison.run.invoke_us / 1000:.3f} ms at {mhz:g} MHz",
        "band": round(band, 3), **costs.to_dict()}
    dropped = save_user_board(boards_file, target, written_id, settings)
    total = sum(works, Work(layers=0))
    return Calibration(boards_file=boards_file, target=target, board=written_id, created=written_id not in in_file,
                       profile=settings["latency_profile"],
                       estimate_ms=Costs.from_dict(settings["latency_profile"]).cycles(total) / (mhz * 1e3),
                       measured_ms=comparison.run.invoke_us / 1000, comments_dropped=dropped)

