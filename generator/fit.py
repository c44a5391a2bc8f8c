"""Does model + arena fit the board? Flash: the model array plus an estimate of the
framework and TFLite-Micro code. RAM: the measured arena plus an estimate of the
framework's own RAM and stacks. Estimates come from boards.yaml and are labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analyze import ModelReport
from .arena import plan_arena
from .boards import Board, board_ids, get_board, target_names
from .errors import TinygenError
from .resolver import load_table, resolve


@dataclass(frozen=True)
class Fit:
    board: Board
    model_bytes: int  # measured: the flatbuffer
    arena_bytes: int  # measured on the runtime (+ computed kernel scratch)
    runtime_flash_bytes: int  # estimate
    runtime_ram_bytes: int  # estimate

    @property
    def flash_needed(self) -> int:
        return self.model_bytes + self.runtime_flash_bytes

    @property
    def ram_needed(self) -> int:
        return self.arena_bytes + self.runtime_ram_bytes

    @property
    def flash_ok(self) -> bool:
        return self.flash_needed <= self.board["flash_bytes"]

    @property
    def ram_ok(self) -> bool:
        return self.ram_needed <= self.board["ram_bytes"]

    @property
    def ok(self) -> bool:
        return self.flash_ok and self.ram_ok

    @property
    def shortfalls(self) -> list[str]:
        """What there is not enough of: [], ["flash"], ["RAM"] or both."""
        return [what for what, ok in (("flash", self.flash_ok), ("RAM", self.ram_ok)) if not ok]

    def summary(self) -> str:
        b = self.board
        return (f"flash {self.flash_needed:,} of {b['flash_bytes']:,} B (model {self.model_bytes:,} + "
                f"~{self.runtime_flash_bytes:,} runtime estimate); RAM {self.ram_needed:,} of "
                f"{b['ram_bytes']:,} B (arena {self.arena_bytes:,} + ~{self.runtime_ram_bytes:,} "
                "runtime estimate)")


def fit(board: Board, model_bytes: int, arena_bytes: int) -> Fit:
    return Fit(board=board, model_bytes=model_bytes, arena_bytes=arena_bytes,
               runtime_flash_bytes=board["runtime_flash_bytes"],
               runtime_ram_bytes=board["runtime_ram_bytes"])


def require_fit(result: Fit) -> None:
    if result.ok:
        return
    raise TinygenError(
        f"The model does not fit {result.board.name} ({result.board.target} board "
        f"'{result.board.id}'): not enough {' and '.join(result.shortfalls)}. Needed: {result.summary()}.",
        hint="Quantize to int8, shrink the model, or pick a larger board (`tinygen boards`).",
    )


@dataclass(frozen=True)
class BoardFit:
    """One row of `inspect`'s per-board table."""

    fit: Fit | None  # None when the board's TFLite-Micro lacks one of the model's operators
    unsupported: str  # the error message in that case

    def to_dict(self) -> dict:
        if self.fit is None:
            return {"ok": False, "unsupported": self.unsupported}
        f = self.fit
        return {"ok": f.ok, "arena_bytes": f.arena_bytes,
                "flash_needed_bytes": f.flash_needed, "flash_available_bytes": f.board["flash_bytes"],
                "ram_needed_bytes": f.ram_needed, "ram_available_bytes": f.board["ram_bytes"]}


def fit_every_board(report: ModelReport, arena_min_bytes: int) -> dict[tuple[str, str], BoardFit]:
    """(target, board id) -> fit, for every board in the catalog. The host arena minimum is
    measured once; each board adds its own kernels' scratch and checks its own op table."""
    rows = {}
    for target in target_names():
        for board_id in board_ids(target):
            board = get_board(target, board_id)
            try:
                resolve(report, load_table(board["op_table"]))
            except TinygenError as exc:
                rows[target, board_id] = BoardFit(fit=None, unsupported=exc.message)
                continue
            arena = plan_arena(report, arena_min_bytes, board["kernels"])
            rows[target, board_id] = BoardFit(fit=fit(board, report.model_bytes, arena.arena_bytes),
                                              unsupported="")
    return rows
