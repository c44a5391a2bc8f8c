"""Real firmware builds: run only where the ecosystem's own tool is installed.

None of these toolchains can be downloaded on tinygen's CI machines, so each test skips
with the reason; .github/workflows/compile.yml runs the same builds on a machine with
internet access.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.toolchain


def _require(tool: str, why: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not on PATH: {why}")


def test_idf_py_build(generate):
    _require("idf.py", "install ESP-IDF >= 5.1 and source export.sh to run this build")
    project, _ = generate("cnn", "esp-idf", "esp32s3")
    subprocess.run(["idf.py", "build"], cwd=project, check=True, timeout=1800)
    assert (project / "build" / "cnn_int8.bin").is_file()


def test_arduino_cli_compile(generate):
    _require("arduino-cli", "install arduino-cli; the sketch profile installs its core and library")
    project, _ = generate("cnn", "arduino", "nano33ble")
    subprocess.run(["arduino-cli", "compile", "--profile", "nano33ble", str(project)],
                   check=True, timeout=1800)


def test_west_build_and_run_qemu_cortex_m3(generate):
    _require("west", "install west and the Zephyr SDK")
    if not os.environ.get("ZEPHYR_BASE"):
        pytest.skip("ZEPHYR_BASE is not set: needs a Zephyr workspace with the tflite-micro module")
    project, _ = generate("mlp", "zephyr", "qemu_cortex_m3")
    build = project / "build"
    subprocess.run(["west", "build", "-b", "qemu_cortex_m3", "-d", str(build), str(project)],
                   check=True, timeout=1800)
    run = subprocess.run(["west", "build", "-d", str(build), "-t", "run"], capture_output=True,
                         text=True, timeout=120)
    assert "tinygen self-test: PASS" in run.stdout
