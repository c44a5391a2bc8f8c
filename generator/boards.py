"""The board catalog (`data/boards.yaml`): the one source for `--board` choices, `--help`,
the fit check and the tests. Targets hold what all their boards share; a board may
override any target key (e.g. an Arduino board family using another TFLite-Micro library).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from .errors import TinygenError


@dataclass(frozen=True)
class Board:
    target: str
    id: str
    settings: dict  # the target's keys merged with the board's own

    def __getitem__(self, key: str):
        return self.settings[key]

    def get(self, key: str, default=None):
        return self.settings.get(key, default)

    @property
    def name(self) -> str:
        return self.settings["name"]


@lru_cache(maxsize=None)
def catalog() -> dict:
    text = (resources.files("generator") / "data" / "boards.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@lru_cache(maxsize=None)
def kernel_families() -> dict:
    text = (resources.files("generator") / "data" / "kernels.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["families"]


def kernel_family(name: str) -> dict:
    """What data/kernels.yaml says of a kernel family (a board's `kernels`)."""
    return kernel_families()[name]


def target_names() -> list[str]:
    return list(catalog()["targets"])


def board_ids(target: str) -> list[str]:
    return list(catalog()["targets"][target]["boards"])


def default_board(target: str) -> str:
    return catalog()["targets"][target]["default_board"]


def get_board(target: str, board_id: str | None) -> Board:
    targets = catalog()["targets"]
    if target not in targets:
        raise TinygenError(f"Unknown target '{target}'. Valid targets: {', '.join(targets)}.")
    spec = targets[target]
    board_id = board_id or spec["default_board"]
    if board_id not in spec["boards"]:
        close = difflib.get_close_matches(board_id, list(spec["boards"]), n=1, cutoff=0.4)
        raise TinygenError(
            f"Unknown board '{board_id}' for target {target}. Valid boards: "
            f"{', '.join(spec['boards'])}." + (f" Did you mean '{close[0]}'?" if close else ""),
            hint="`tinygen boards` lists every board with its memory.",
        )
    shared = {k: v for k, v in spec.items() if k != "boards"}
    return Board(target=target, id=board_id, settings={**shared, **spec["boards"][board_id]})
