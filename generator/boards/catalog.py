"""The board catalog (`data/boards.yaml`): the one source for `--board` choices, `--help`,
the fit check and the tests. Targets hold what all their boards share; a board may
override any target key (e.g. an Arduino board family using another TFLite-Micro library).

Users add their own boards with `--boards FILE`: a YAML file in the catalog's own layout
(`targets: <target>: boards: <id>: {...}`), checked against it (`add_user_boards`). A user
board may start from a catalog board (`based_on: <id>`) and change only what differs.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from ..errors import TinygenError
from ..library.pinned import kernel_families, libraries
from ..library.resolver import table_names
from .latency import Costs, core_ids


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
def bundled_catalog() -> dict:
    text = (resources.files(__package__) / "data" / "boards.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


# Boards added with --boards FILE: {target: {board id: settings}}, and the file they came from.
_user_boards: dict[str, dict[str, dict]] = {}
_user_boards_file: dict[tuple[str, str], str] = {}


def catalog() -> dict:
    """The bundled catalog with the user's boards (--boards) added."""
    if not _user_boards:
        return bundled_catalog()
    merged = {"targets": {}}
    for target, spec in bundled_catalog()["targets"].items():
        merged["targets"][target] = spec | {"boards": spec["boards"] | _user_boards.get(target, {})}
    return merged


def user_board_source(target: str, board_id: str) -> str | None:
    """The --boards file a board came from (None: the bundled catalog)."""
    return _user_boards_file.get((target, board_id))


_BOARD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_POSITIVE_INTEGERS = ("flash_bytes", "ram_bytes")
_NON_NEGATIVE_INTEGERS = ("psram_bytes", "runtime_flash_bytes", "runtime_ram_bytes", "main_stack_bytes",
                          "serial_wait_ms")


def _known_keys(target: str) -> set[str]:
    spec = bundled_catalog()["targets"][target]
    return set(spec) - {"boards"} | {k for board in spec["boards"].values() for k in board}


# Fields a board may leave out even where every bundled board has them: without a clock and a
# core there is no latency estimate, nothing else.
_OPTIONAL_KEYS = {"cpu_mhz", "core"}
# Fields only a user's boards file has: `based_on` a catalog board, and the latency constants
# `tinygen profile --calibrate` measured on the user's own board.
_USER_ONLY_KEYS = {"based_on", "latency_profile"}


def _required_keys(target: str) -> set[str]:
    """Keys every bundled board of `target` has (its own or the target's): a user board needs
    them too, since the templates and the fit check read them."""
    spec = bundled_catalog()["targets"][target]
    shared = set(spec) - {"boards"}
    return set.intersection(*[shared | set(board) for board in spec["boards"].values()]) - _OPTIONAL_KEYS


def _check_user_board(where: str, target: str, board_id: str, settings: dict) -> None:
    def fail(message: str) -> None:
        raise TinygenError(f"{where}: board '{board_id}' ({target}): {message}.",
                           hint="A board takes the fields of tinygen's catalog (README, \"Your own boards\"); "
                           "`based_on: <id>` starts from a board `tinygen boards` lists.")

    unknown = sorted(set(settings) - _known_keys(target) - _USER_ONLY_KEYS)
    if unknown:
        fail(f"unknown field(s) {', '.join(unknown)}")
    merged = get_board(target, settings["based_on"]).settings if "based_on" in settings else (
        {k: v for k, v in bundled_catalog()["targets"][target].items() if k != "boards"})
    merged = merged | settings
    missing = sorted(_required_keys(target) - set(merged))
    if missing:
        fail(f"missing field(s) {', '.join(missing)}")
    for key in _POSITIVE_INTEGERS + _NON_NEGATIVE_INTEGERS:
        value = merged.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key in _POSITIVE_INTEGERS else 0):
            fail(f"{key} must be a {'positive' if key in _POSITIVE_INTEGERS else 'non-negative'} whole number "
                 f"of bytes, not {value!r}")
    if merged.get("cpu_mhz") is not None and (not isinstance(merged["cpu_mhz"], (int, float))
                                              or isinstance(merged["cpu_mhz"], bool) or merged["cpu_mhz"] <= 0):
        fail(f"cpu_mhz must be a positive number, not {merged['cpu_mhz']!r}")
    profile = merged.get("latency_profile")
    if profile is not None:
        try:
            Costs.from_dict(profile), float(profile["band"]), str(profile["source"])
        except (KeyError, TypeError, ValueError, AttributeError):
            fail("latency_profile must hold the cycles_per_* numbers `tinygen profile --calibrate` writes")
    choices = {"kernels": kernel_families(), "tflm_library": libraries(), "op_table": table_names(),
               "core": core_ids()}
    for key, valid in choices.items():
        value = merged.get(key)
        if value and value not in valid:
            fail(f"{key} '{value}' is not one tinygen knows ({', '.join(valid)})")


def _read_boards_file(path: Path) -> tuple[object, str]:
    """A boards file's YAML data and its text; a clear error when it cannot be read or parsed."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        return yaml.safe_load(text), text
    except OSError as exc:
        raise TinygenError(f"Cannot read the boards file '{where}': {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TinygenError(f"The boards file '{where}' is not valid YAML{at}: "
                           f"{getattr(exc, 'problem', None) or exc}.") from None


def add_user_boards(path: Path) -> list[tuple[str, str]]:
    """Adds the boards of a --boards YAML file to the catalog; returns their (target, id)."""
    where = str(path)
    data, _ = _read_boards_file(path)
    targets = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(targets, dict) or not targets:
        raise TinygenError(f"{where}: expected `targets: <target>: boards: <id>: {{...}}`, as in the catalog.")
    added = []
    for target, spec in targets.items():
        if target not in bundled_catalog()["targets"]:
            raise TinygenError(f"{where}: unknown target '{target}'. Valid targets: {', '.join(target_names())}.")
        entries = spec.get("boards") if isinstance(spec, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise TinygenError(f"{where}: target '{target}' has no `boards:`.")
        for board_id, settings in entries.items():
            board_id = str(board_id)
            if not _BOARD_ID.match(board_id):
                raise TinygenError(f"{where}: '{board_id}' is not a valid board id (letters, digits, '_', '.', '-').")
            if board_id in bundled_catalog()["targets"][target]["boards"]:
                raise TinygenError(f"{where}: board '{board_id}' is already in the catalog ({target}).",
                                   hint=f"Give yours another id; `based_on: {board_id}` starts it from the catalog's.")
            if not isinstance(settings, dict):
                raise TinygenError(f"{where}: board '{board_id}' must be a mapping of fields.")
            _check_user_board(where, target, board_id, settings)
            _user_boards.setdefault(target, {})[board_id] = settings
            _user_boards_file[target, board_id] = where
            added.append((target, board_id))
    return added


def save_user_board(path: Path, target: str, board_id: str, settings: dict) -> bool:
    """Writes (or replaces) one board in a user's boards file, leaving its other boards as they
    are; the file is replaced whole, atomically, and checked as `--boards` would read it.
    Returns True when the file had comments (YAML rewriting does not keep them)."""
    path = Path(path)
    data: dict = {}
    had_comments = False
    if path.exists():
        data, text = _read_boards_file(path)
        data = data or {}
        had_comments = any(line.lstrip().startswith("#") for line in text.splitlines())
        if not isinstance(data, dict):
            raise TinygenError(f"{path}: expected `targets: <target>: boards: <id>: {{...}}`, as in the catalog.")
    boards = data.setdefault("targets", {}).setdefault(target, {}).setdefault("boards", {})
    boards[board_id] = settings
    _check_user_board(str(path), target, board_id, settings)
    temporary = path.with_name(f".{path.name}.tinygen-tmp")
    temporary.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(temporary, path)
    return had_comments


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
    own = dict(spec["boards"][board_id])
    if "based_on" in own:  # a user board starting from a catalog board
        base = own.pop("based_on")
        return Board(target=target, id=board_id, settings={**get_board(target, base).settings, **own})
    shared = {k: v for k, v in spec.items() if k != "boards"}
    return Board(target=target, id=board_id, settings={**shared, **own})
