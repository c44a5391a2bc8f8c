"""`pip install .` (not editable) must carry the templates and data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_templates_and_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("tinygen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (REPO / "templates").rglob("*"):
        if template.is_file() and "__pycache__" not in template.parts:
            rel = template.relative_to(REPO / "templates").as_posix()
            assert f"tinygen_templates/{rel}" in names, rel
    for data in ("generator/data/boards.yaml", "generator/firmware/tinygen_model.cpp.j2",
                 "generator/data/ops/esp-tflite-micro-1.4.0.json"):
        assert data in names
