"""Each template's cookiecutter.json documents every context key the template reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@pytest.mark.parametrize("template, target, library", [
    ("esp-idf", "esp-idf", False), ("arduino", "arduino", False), ("zephyr", "zephyr", False),
    ("esp-idf-component", "esp-idf", True), ("arduino-library", "arduino", True), ("zephyr-module", "zephyr", True)])
def test_cookiecutter_json_lists_every_key_used(template, target, library, generate):
    contract = json.loads((TEMPLATES / template / "cookiecutter.json").read_text())["_tinygen"]
    used = set()
    for path in (TEMPLATES / template).rglob("*"):
        if path.is_file() and path.name != "cookiecutter.json":
            used |= set(re.findall(r"cookiecutter\._tinygen\.([\w.]+)", path.read_text() + path.as_posix()))
    for dotted in sorted(used):
        node = contract
        parts = dotted.split(".")
        while len(parts) > 1 and hasattr(str, parts[-1]):  # a string method: board.kernels.startswith
            parts.pop()
        for part in parts:
            assert isinstance(node, dict) and part in node, f"{template}: '{dotted}' missing from cookiecutter.json"
            node = node[part]
    # ...and the real context provides every key the contract documents.
    _, prepared = generate("mlp", target)
    from tinygen.output.context import build_context

    real = build_context(prepared, "x", library=library)
    missing = [k for k in contract if k not in real] + [
        f"board.{k}" for k in contract["board"] if k not in real["board"]]
    assert not missing, missing
