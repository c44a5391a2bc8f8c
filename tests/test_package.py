"""`pip install .` (not editable) installs the import package `tinygen` with its templates and
data files, and nothing named `generator`."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

from conftest import build_wheel

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_tinygen_with_templates_and_data(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (REPO / "templates").rglob("*"):
        if template.is_file() and "__pycache__" not in template.parts:
            rel = template.relative_to(REPO / "templates").as_posix()
            assert f"tinygen_templates/{rel}" in names, rel
    for source in (REPO / "generator").rglob("*"):  # every source and data file, under tinygen/
        if source.is_file() and "__pycache__" not in source.parts:
            rel = source.relative_to(REPO / "generator").as_posix()
            assert f"tinygen/{rel}" in names, rel
    assert not [n for n in names if n.split("/")[0] == "generator"]


def test_installed_package_imports_from_anywhere(installed, tmp_path):
    """`import tinygen` and `python -m tinygen` work from a folder outside the checkout, and the
    installation holds no `generator` package another project could clash with."""
    light = installed["light"]
    python = light.root / "bin" / "python"
    imported = subprocess.run([str(python), "-c", "import tinygen, tinygen.cli; print(tinygen.__file__)"],
                              cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(imported.stdout.strip()).is_relative_to(light.site_packages / "tinygen")
    version = subprocess.run([str(python), "-m", "tinygen", "--version"], cwd=tmp_path, capture_output=True,
                             text=True, check=True)
    assert version.stdout.startswith("tinygen, version")
    assert not (light.site_packages / "generator").exists()
