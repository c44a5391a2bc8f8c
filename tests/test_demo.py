"""The render command of README's `make demo` and of .github/workflows/compile.yml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPILE_WORKFLOW = REPO / ".github" / "workflows" / "compile.yml"


def _boards_in_workflow(job: str) -> list[str]:
    matrix = yaml.safe_load(COMPILE_WORKFLOW.read_text())["jobs"][job]["strategy"]["matrix"]
    return matrix.get("board") or [entry["board"] for entry in matrix["include"]]


def test_render_demo_script(tmp_path):
    """The script is the same for every target (one run shows it; the targets' projects are
    tested elsewhere), and `make demo` runs it again in place."""
    target, board = "esp-idf", _boards_in_workflow("esp-idf")[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(REPO / "examples" / "render_demo.sh"), target, board, str(tmp_path)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "shapes_cnn"
    assert (project / ".tinygen-manifest.json").is_file()
    # Rendering again (as `make demo` does) regenerates in place.
    again = subprocess.run([str(REPO / "examples" / "render_demo.sh"), target, board, str(tmp_path)],
                           capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr


def test_workflow_boards_exist_in_catalog():
    from tinygen.boards import catalog as boards

    for job in ("esp-idf", "arduino", "zephyr"):
        for board in _boards_in_workflow(job):
            boards.get_board(job, board)
