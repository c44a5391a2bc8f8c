"""Does the firmware fit the board? Every byte tinygen emits is counted (the model, the golden
vectors, the class names), plus what the framework and TFLite-Micro take themselves
(`boards/runtime.py`: measured where a real build of that target was measured, else an estimate,
labelled as such). The arena goes to internal RAM when it fits there, else to PSRAM on a board
that has it; a board without enough of either is refused, with the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TinygenError
from ..library.numerics import Adapted, adapt, refusal_error
from ..library.resolver import load_table, resolve
from ..memory.arena import ArenaPlan, plan_arena
from ..model.analyze import ModelReport, analyze
from ..model.layers import model_cost
from .catalog import Board, board_ids, get_board, target_names
from .latency import Estimate, estimate
from .runtime import RuntimeSize, runtime_size


@dataclass(frozen=True)
class Fit:
    board: Board
    model_bytes: int  # the flatbuffer
    emitted_bytes: int  # everything tinygen puts in flash: model, golden vectors, labels
    arena_bytes: int  # the board's arena (memory/allocator.py)
    runtime: RuntimeSize  # the framework's and TFLite-Micro's own flash and RAM

    @property
    def arena_in_psram(self) -> bool:
        """Internal RAM when the arena fits there beside the runtime, else PSRAM if the board
        has some (Espressif's examples allocate large arenas there the same way)."""
        internal = self.arena_bytes + self.runtime.ram_bytes <= self.board["ram_bytes"]
        return not internal and self.board.get("psram_bytes", 0) > 0

    @property
    def flash_needed(self) -> int:
        return self.emitted_bytes + self.runtime.flash_bytes

    @property
    def ram_needed(self) -> int:
        return self.runtime.ram_bytes + (0 if self.arena_in_psram else self.arena_bytes)

    @property
    def psram_needed(self) -> int:
        return self.arena_bytes if self.arena_in_psram else 0

    @property
    def flash_ok(self) -> bool:
        return self.flash_needed <= self.board["flash_bytes"]

    @property
    def ram_ok(self) -> bool:
        return self.ram_needed <= self.board["ram_bytes"] and \
            self.psram_needed <= self.board.get("psram_bytes", 0)

    @property
    def ok(self) -> bool:
        return self.flash_ok and self.ram_ok

    @property
    def shortfalls(self) -> list[str]:
        """What there is not enough of: [], ["flash"], ["RAM"] (or ["PSRAM"]), or both."""
        memory = "PSRAM" if self.arena_in_psram else "RAM"
        return [what for what, ok in (("flash", self.flash_ok), (memory, self.ram_ok)) if not ok]

    @property
    def placement(self) -> str:
        """Where the arena goes and why, in words."""
        if self.arena_in_psram:
            return (f"PSRAM: the arena ({self.arena_bytes:,} B) does not fit the "
                    f"{self.board['ram_bytes'] - self.runtime.ram_bytes:,} B of internal RAM the runtime "
                    f"leaves; the board has {self.board['psram_bytes']:,} B of PSRAM")
        return "internal RAM (a static buffer)"

    def to_dict(self) -> dict:
        return {"ok": self.ok, "arena_bytes": self.arena_bytes,
                "arena_placement": "psram" if self.arena_in_psram else "internal",
                "emitted_flash_bytes": self.emitted_bytes,
                "flash_needed_bytes": self.flash_needed, "flash_available_bytes": self.board["flash_bytes"],
                "ram_needed_bytes": self.ram_needed, "ram_available_bytes": self.board["ram_bytes"],
                "psram_needed_bytes": self.psram_needed, "psram_available_bytes": self.board.get("psram_bytes", 0),
                "shortfalls": self.shortfalls,
                "runtime_flash_bytes": self.runtime.flash_bytes, "runtime_ram_bytes": self.runtime.ram_bytes,
                "runtime_measured": self.runtime.measured, "runtime_source": self.runtime.source}

    def summary(self) -> str:
        b = self.board
        label = "measured" if self.runtime.measured else "estimate"
        text = (f"flash {self.flash_needed:,} of {b['flash_bytes']:,} B (model {self.model_bytes:,} + golden "
                f"vectors and labels {self.emitted_bytes - self.model_bytes:,} + runtime "
                f"{self.runtime.flash_bytes:,} {label}); RAM {self.ram_needed:,} of {b['ram_bytes']:,} B ("
                + ("" if self.arena_in_psram else f"arena {self.arena_bytes:,} + ")
                + f"runtime {self.runtime.ram_bytes:,} {label})")
        if self.arena_in_psram:
            text += f"; PSRAM {self.psram_needed:,} of {b['psram_bytes']:,} B (the arena)"
        return text


def fit(board: Board, report: ModelReport, emitted_bytes: int, arena_bytes: int) -> Fit:
    return Fit(board=board, model_bytes=report.model_bytes, emitted_bytes=emitted_bytes,
               arena_bytes=arena_bytes, runtime=runtime_size(board, report))


def require_fit(result: Fit) -> None:
    if result.ok:
        return
    raise TinygenError(
        f"The model does not fit {result.board.name} ({result.board.target} board "
        f"'{result.board.id}'): not enough {' and '.join(result.shortfalls)}. Needed: {result.summary()}.",
        hint="Quantize to int8, shrink the model, or pick a larger board (`tinygen boards`; boards "
        "with PSRAM take a large arena there).",
    )


@dataclass(frozen=True)
class BoardFit:
    """One row of `inspect`'s per-board table."""

    fit: Fit | None  # None when the board cannot run the model
    unsupported: str  # why not, in full
    short_reason: str = ""  # why not, for a table cell
    latency: Estimate | None = None  # estimated inference time (None: no calibration)
    numerics: Adapted | None = None  # what the model becomes for the board's library

    def to_dict(self) -> dict:
        extra = {"latency_estimate": self.latency.to_dict() if self.latency else None,
                 "numerics": self.numerics.to_dict() if self.numerics else None}
        if self.fit is None:
            return {"ok": False, "unsupported": self.unsupported} | extra
        return self.fit.to_dict() | extra


def deployability(prepared) -> dict:
    """Can the model run on, and does it fit, the board `prepared` was made for? The verdict
    `inspect` exits on: {"ok", "reason", "unsupported", "shortfalls"}."""
    f = prepared.fit
    if prepared.unsupported is not None:
        return {"ok": False, "reason": prepared.unsupported.message, "hint": prepared.unsupported.hint,
                "unsupported": prepared.unsupported.message, "shortfalls": f.shortfalls}
    if not f.ok:
        return {"ok": False, "unsupported": None, "shortfalls": f.shortfalls,
                "reason": f"the model does not fit {f.board.name}: not enough "
                          f"{' and '.join(f.shortfalls)} ({f.summary()})"}
    return {"ok": True, "reason": "", "unsupported": None, "shortfalls": []}


def fit_every_board(original: bytes, arena: ArenaPlan, emitted_bytes: int,
                    host_error: TinygenError | None) -> dict[tuple[str, str], BoardFit]:
    """(target, board id) -> fit, for every board in the catalog. Each board gets the model as
    its library needs it (`numerics.adapt` of the `original` model: rewritten, or refused), its
    own op table checked and its arena simulated for its own library and kernels; the host
    runtime was measured once (`arena`), and `host_error` says why it could not run the model."""
    rows = {}
    report = analyze(original)
    work = model_cost(report)
    adapted_for: dict[tuple[str, str], Adapted] = {}
    for target in target_names():
        for board_id in board_ids(target):
            board = get_board(target, board_id)
            try:
                resolve(report, load_table(board["op_table"]))
                key = (board["tflm_library"], board["kernels"])
                if key not in adapted_for:
                    adapted_for[key] = adapt(original, report, board)
                adapted = adapted_for[key]
                if adapted.refused:
                    raise refusal_error(adapted, board)
                resolve(adapted.report, load_table(board["op_table"]))
            except TinygenError as exc:
                rows[target, board_id] = BoardFit(fit=None, unsupported=exc.message, short_reason=exc.short)
                continue
            if host_error is not None:
                rows[target, board_id] = BoardFit(fit=None, unsupported=host_error.message,
                                                  short_reason="TFLite-Micro cannot run it", numerics=adapted)
                continue
            own = plan_arena(adapted.report, arena.arena_min_bytes, arena.host, board["tflm_library"], board["kernels"])
            rows[target, board_id] = BoardFit(fit=fit(board, adapted.report, emitted_bytes, own.arena_bytes),
                                              unsupported="", latency=estimate(board, work), numerics=adapted)
    return rows
