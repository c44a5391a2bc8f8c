"""Rendered projects: structure every ecosystem's build needs, no unrendered template text."""

from __future__ import annotations

import re

import pytest
import yaml
from tinygen.boards import catalog as boards

ALL_BOARDS = [(t, b) for t in boards.target_names() for b in boards.board_ids(t)]


def _text_files(project):
    return [p for p in project.rglob("*") if p.is_file()]


@pytest.mark.parametrize("target, board", ALL_BOARDS)
def test_no_unrendered_template_text(generate, target, board):
    project, _ = generate("cnn", target, board)
    for path in _text_files(project):
        text = path.read_text()
        if path.suffix in (".yml", ".yaml") and "${{" in text:
            text = re.sub(r"\$\{\{[^}]*\}\}", "", text)  # GitHub Actions expressions
        assert "{{" not in text and "{%" not in text, f"unrendered template text in {path}"
        assert "cookiecutter" not in text, path


@pytest.mark.parametrize("target, board", ALL_BOARDS)
def test_yaml_files_parse(generate, target, board):
    project, _ = generate("mlp", target, board)
    for path in list(project.rglob("*.yml")) + list(project.rglob("*.yaml")):
        assert yaml.safe_load(path.read_text()) is not None, path


@pytest.mark.parametrize("board", boards.board_ids("esp-idf"))
def test_esp_idf_project_structure(generate, board):
    project, prepared = generate("cnn", "esp-idf", board)
    top = (project / "CMakeLists.txt").read_text()
    assert "include($ENV{IDF_PATH}/tools/cmake/project.cmake)" in top
    assert re.search(r"^project\(cnn_int8\)$", top, re.M)
    main = (project / "main" / "CMakeLists.txt").read_text()
    assert "idf_component_register(" in main
    for source in re.findall(r'"([\w.]+\.cpp)"', main):
        assert (project / "main" / source).is_file(), source
    manifest = yaml.safe_load((project / "main" / "idf_component.yml").read_text())
    deps = manifest["dependencies"]
    assert deps["espressif/esp-tflite-micro"] == "==" + prepared.board["esp_tflite_micro_version"]
    assert deps["espressif/esp-nn"].startswith("==")
    sdk = (project / "sdkconfig.defaults").read_text()
    assert f'CONFIG_IDF_TARGET="{prepared.board["chip"]}"' in sdk
    assert "CONFIG_ESP_MAIN_TASK_STACK_SIZE=" in sdk
    workflow = yaml.safe_load((project / ".github" / "workflows" / "build.yml").read_text())
    step = workflow["jobs"]["build"]["steps"][-1]
    assert step["uses"].startswith("espressif/esp-idf-ci-action@")
    assert step["with"]["target"] == prepared.board["chip"]


@pytest.mark.parametrize("board", boards.board_ids("arduino"))
def test_arduino_sketch_structure(generate, board):
    project, prepared = generate("cnn", "arduino", board)
    sketch = project / f"{project.name}.ino"
    assert sketch.is_file(), "Arduino needs <folder>/<folder>.ino"
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}", project.name)
    assert not list(project.rglob("*.cc")), "Arduino compiles .cpp, not .cc, beside the sketch"
    text = sketch.read_text()
    assert "void setup()" in text and "void loop()" in text
    spec = yaml.safe_load((project / "sketch.yaml").read_text())
    profile = spec["profiles"][board]
    assert profile["fqbn"] == spec["default_fqbn"] == prepared.board["fqbn"]
    assert re.fullmatch(r"[\w-]+:[\w-]+:[\w-]+", profile["fqbn"])
    platform = profile["platforms"][0]["platform"]
    assert re.fullmatch(r"[\w-]+:[\w-]+ \(\d+\.\d+\.\d+\)", platform)
    assert profile["fqbn"].startswith(platform.split(" ")[0] + ":")
    if prepared.board["library"]:
        assert profile["libraries"] == ["Chirale_TensorFLowLite (2.0.0)"]  # Library Manager spelling
        assert f"#include <{prepared.board['library_header']}>" in text
    else:  # ESP32 cores bundle TFLite Micro: no library to install, none pinned
        assert "libraries" not in profile
        assert "platform_index_url" in profile["platforms"][0]


@pytest.mark.parametrize("board", boards.board_ids("zephyr"))
def test_zephyr_application_structure(generate, board):
    project, prepared = generate("cnn", "zephyr", board)
    cmake = (project / "CMakeLists.txt").read_text()
    assert "find_package(Zephyr REQUIRED HINTS $ENV{ZEPHYR_BASE})" in cmake
    for source in re.findall(r"(src/[\w.]+\.cpp)", cmake):
        assert (project / source).is_file(), source
    conf = dict(line.split("=", 1) for line in (project / "prj.conf").read_text().splitlines()
                if line and not line.startswith("#"))
    assert conf["CONFIG_CPP"] == "y" and conf["CONFIG_STD_CPP17"] == "y"
    assert conf["CONFIG_TENSORFLOW_LITE_MICRO"] == "y"
    assert "CONFIG_NEWLIB_LIBC" not in conf  # gone from the Zephyr SDK
    cmsis = prepared.board["kernels"].startswith("cmsis-nn")
    assert (conf.get("CONFIG_TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS") == "y") == cmsis
    assert int(conf["CONFIG_MAIN_STACK_SIZE"]) >= 2048
    manifest = yaml.safe_load((project / "west.yml").read_text())["manifest"]
    assert "+optional" in manifest["group-filter"]
    (zephyr,) = manifest["projects"]
    allow = zephyr["import"]["name-allowlist"]
    assert "tflite-micro" in allow
    if cmsis:
        assert "cmsis-nn" in allow
    sample = yaml.safe_load((project / "sample.yaml").read_text())
    assert "tflite-micro" in sample["common"]["modules"]
    assert sample["common"]["harness_config"]["regex"] == ["tinygen self-test: PASS"]
    (test,) = sample["tests"].values()
    assert test["platform_allow"] == [prepared.board["zephyr_board"]]


def test_cmsis_nn_lstm_kconfig_only_where_needed():
    """Zephyr's CMSIS-NN kernel option leaves the CMSIS-NN LSTM functions out; a model with
    the fused LSTM op on a CMSIS-NN board gets them, nothing else does."""
    from tinygen.output.context import extra_kconfig

    lstm = ["FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    (item,) = extra_kconfig(boards.get_board("zephyr", "nrf52840dk"), lstm)
    assert item["symbol"] == "CONFIG_CMSIS_NN_LSTM"
    assert extra_kconfig(boards.get_board("zephyr", "nrf52840dk"), ["FULLY_CONNECTED"]) == []
    assert extra_kconfig(boards.get_board("zephyr", "qemu_cortex_m3"), lstm) == []  # reference kernels
    assert extra_kconfig(boards.get_board("arduino", "nano33ble"), lstm) == []
