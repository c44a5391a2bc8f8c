"""Does model + arena fit the board? Flash: the model array plus an estimate of the
framework and TFLite-Micro code. RAM: the measured arena plus an estimate of the
framework's own RAM and stacks. Estimates come from boards.yaml and are labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from .boards import Board
from .errors import TinygenError


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
    too_big = [what for what, ok in (("flash", result.flash_ok), ("RAM", result.ram_ok)) if not ok]
    raise TinygenError(
        f"The model does not fit {result.board.name} ({result.board.target} board "
        f"'{result.board.id}'): not enough {' and '.join(too_big)}. Needed: {result.summary()}.",
        hint="Quantize to int8, shrink the model, or pick a larger board (`tinygen boards`).",
    )
