"""Rendered projects: structure every ecosystem's build needs, no unrendered template text."""

from __future__ import annotations

import re

import pytest
import yaml

from generator import boards

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
