"""`tinygen new --as library`: each ecosystem's unit of reuse, named after --name, its API in
namespace NAME behind NAME.h, so several models link into one firmware.

Conventions are checked field by field against each ecosystem's own specification:
- Arduino: the library specification (rev. 2.2 of the 1.5 format),
  https://arduino.github.io/arduino-cli/latest/library-specification/ ("Library metadata":
  library.properties fields; "Layout of folders and files": src/, examples/, extras/), and
  arduino/arduino-lint's etc/schemas/arduino-library-properties-definitions-schema.json (the
  allowed `category` values, the name pattern).
- ESP-IDF: the build system's component CMakeLists (idf_component_register: SRCS,
  INCLUDE_DIRS, PRIV_INCLUDE_DIRS, PRIV_REQUIRES) and the component manager's manifest
  (idf_component.yml: version, description, dependencies), https://docs.espressif.com/projects/
  esp-idf/en/stable/esp32/api-guides/build-system.html and https://docs.espressif.com/projects/
  idf-component-manager/en/latest/reference/manifest_file.html.
- Zephyr: zephyr/module.yml as zephyrproject-rtos/zephyr scripts/zephyr_module.py
  (@013c135025b4) validates it (METADATA_SCHEMA), https://docs.zephyrproject.org/latest/develop/
  modules.html.

Two libraries in one firmware on the emulated Cortex-M4: bench/two_libraries_qemu.sh (run
here when the cross toolchain, QEMU and the pinned library's snapshot are present).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

DATA = Path(__file__).resolve().parent / "data"
MODEL = DATA / "shapes_cnn_int8.tflite"
REPO = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("TOOLS", REPO.parent / "shared" / "tools"))

# arduino-lint's etc/schemas/arduino-library-properties-definitions-schema.json, category enum
ARDUINO_CATEGORIES = {"Display", "Communication", "Signal Input/Output", "Sensors", "Device Control", "Timing",
                      "Data Storage", "Data Processing", "Other", "Uncategorized"}
# zephyr scripts/zephyr_module.py METADATA_SCHEMA: the keys of `build`
ZEPHYR_BUILD_KEYS = {"cmake", "kconfig", "cmake-ext", "kconfig-ext", "sysbuild-cmake", "sysbuild-kconfig",
                     "sysbuild-cmake-ext", "sysbuild-kconfig-ext", "depends", "settings"}
ZEPHYR_TOP_KEYS = {"name", "build", "tests", "samples", "boards", "blobs"}


@pytest.fixture(scope="module")
def libraries(installed, tmp_path_factory) -> dict[str, Path]:
    """The bundled example as a library for each target, made by the installed tinygen from a
    user's folder with relative paths."""
    home = tmp_path_factory.mktemp("firmware")
    shutil.copy(MODEL, home / MODEL.name)
    made = {}
    for target, board in (("arduino", "nano33ble"), ("esp-idf", "esp32s3"), ("zephyr", "nrf52840dk")):
        out = f"out-{target}"
        result = installed["light"].run("new", "--target", target, "--board", board, "--as", "library",
                                        "--name", "wake-word", "--output", out, MODEL.name, cwd=home)
        assert result.returncode == 0, result.stderr
        assert "Library name 'wake-word' is used as 'wake_word'" in result.stderr
        assert "namespace wake_word, #include <wake_word.h>" in result.stdout
        made[target] = home / out / "wake_word"
    made["home"] = home
    return made


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".h", ".cpp", ".ino"))


@pytest.mark.parametrize("target", ["arduino", "esp-idf", "zephyr"])
def test_every_file_and_symbol_is_the_librarys_own(libraries, target):
    folder = libraries[target]
    for path in sources(folder):
        assert path.name.startswith("wake_word"), path.name
        text = path.read_text()
        assert "namespace tinygen" not in text and "tinygen::" not in text, path.name
        if path.suffix == ".h":
            guard = re.search(r"#ifndef (\w+)\n#define \1\n", text)
            assert guard and guard.group(1).startswith("WAKE_WORD_"), path.name
        if path.suffix == ".cpp":
            assert "namespace wake_word {" in text, path.name
    core = next(folder.rglob("wake_word.cpp")).read_text()
    assert re.search(r"static_assert\(kGeneration == 0x[0-9a-f]{8}u,", core)  # generation id checked at compile time
    assert 'Log("wake_word self-test: PASS' in core


def test_arduino_library_follows_the_library_specification(libraries):
    folder = libraries["arduino"]
    fields = dict(line.split("=", 1) for line in (folder / "library.properties").read_text().splitlines() if "=" in line)
    for required in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                     "architectures"):
        assert fields.get(required), required
    assert fields["name"] == folder.name == "wake_word"
    assert re.fullmatch(r"\d+\.\d+\.\d+", fields["version"])  # semver, as Library Manager requires
    assert fields["category"] in ARDUINO_CATEGORIES
    assert fields["architectures"] == "mbed_nano"  # the board's FQBN arduino:mbed_nano:nano33ble
    assert fields["depends"] == "Chirale_TensorFLowLite (=2.0.0)"  # the pinned library, exact version
    assert fields["includes"] == "wake_word.h"
    # the README installs the dependency the way arduino-cli's `lib install` names a version
    # (arduino-cli docs, commands/arduino-cli_lib_install: `arduino-cli lib install AudioZero@1.0.0`)
    assert 'arduino-cli lib install "Chirale_TensorFLowLite@2.0.0"' in (folder / "README.md").read_text()
    # "recursive" layout: sources in src/, examples/<name>/<name>.ino, extra files in extras/
    assert (folder / "src" / "wake_word.h").is_file() and not list(folder.glob("*.cpp"))
    example = folder / "examples" / "wake_word_example" / "wake_word_example.ino"
    assert "#include <wake_word.h>" in example.read_text() and "wake_word::model_setup()" in example.read_text()
    # the zip arduino-cli lib install --zip-path takes: one top folder, the library's files
    with zipfile.ZipFile(folder / "extras" / "wake_word.zip") as bundle:
        names = bundle.namelist()
        assert all(n.startswith("wake_word/") for n in names)
        shipped = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert {n.removeprefix("wake_word/") for n in names} == shipped - {"extras/wake_word.zip",
                                                                           ".tinygen-manifest.json"}
        assert bundle.read("wake_word/src/wake_word.h") == (folder / "src" / "wake_word.h").read_bytes()


def test_esp_idf_component_follows_the_build_system_and_component_manager(libraries, installed):
    folder = libraries["esp-idf"]
    cmake = (folder / "CMakeLists.txt").read_text()
    assert "idf_component_register(" in cmake
    listed = re.findall(r'"(src/[^"]+\.cpp)"', cmake)
    assert sorted(listed) == sorted(p.relative_to(folder).as_posix() for p in (folder / "src").glob("*.cpp"))
    assert 'INCLUDE_DIRS "include"' in cmake and 'PRIV_INCLUDE_DIRS "src"' in cmake
    assert (folder / "include" / "wake_word.h").is_file()
    assert [p.name for p in (folder / "include").iterdir()] == ["wake_word.h"]  # the API only
    manifest = yaml.safe_load((folder / "idf_component.yml").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"]) and manifest["description"]
    # pinned exactly as tinygen's own ESP-IDF projects pin them
    home = libraries["home"]
    project = installed["light"].run("new", "--target", "esp-idf", "--board", "esp32s3", "--output", "projects",
                                     MODEL.name, cwd=home)
    assert project.returncode == 0, project.stderr
    pins = yaml.safe_load((home / "projects" / "shapes_cnn_int8" / "main" / "idf_component.yml").read_text())
    assert manifest["dependencies"] == pins["dependencies"]
    assert manifest["dependencies"]["espressif/esp-tflite-micro"] == "==1.4.0"


def test_zephyr_module_follows_the_module_schema(libraries):
    folder = libraries["zephyr"]
    module = yaml.safe_load((folder / "zephyr" / "module.yml").read_text())
    assert set(module) <= ZEPHYR_TOP_KEYS and set(module["build"]) <= ZEPHYR_BUILD_KEYS
    assert module["name"] == "wake_word"
    assert module["build"]["depends"] == ["tflite-micro"]  # the module it builds on
    assert (folder / module["build"]["cmake"] / "CMakeLists.txt").is_file()
    kconfig = (folder / module["build"]["kconfig"]).read_text()
    assert re.search(r"^config WAKE_WORD\n\tbool ", kconfig, re.M)
    assert "depends on TENSORFLOW_LITE_MICRO" in kconfig
    cmake = (folder / "CMakeLists.txt").read_text()
    assert "if(CONFIG_WAKE_WORD)" in cmake and "zephyr_library()" in cmake
    assert "zephyr_include_directories(include)" in cmake
    listed = re.findall(r"(src/\S+\.cpp)", cmake)
    assert sorted(listed) == sorted(p.relative_to(folder).as_posix() for p in (folder / "src").glob("*.cpp"))
    assert (folder / "include" / "wake_word.h").is_file()


def test_each_library_readme_says_how_to_add_it_in_five_steps(libraries):
    for target, folder in libraries.items():
        if target == "home":
            continue
        readme = (folder / "README.md").read_text()
        steps = re.findall(r"^\d\. ", readme, re.M)
        assert len(steps) == 5, target
        assert "wake_word::model_setup()" in readme and "#include" in readme


def test_regenerating_a_library_keeps_the_guarantees(installed, libraries):
    home = libraries["home"]
    header = libraries["arduino"] / "src" / "wake_word.h"
    header.write_text(header.read_text() + "// my note\n")
    again = installed["light"].run("new", "--target", "arduino", "--board", "nano33ble", "--as", "library", "--name",
                                   "wake_word", "--output", "out-arduino", "--force", MODEL.name, cwd=home)
    assert again.returncode == 0, again.stderr
    assert "my note" not in header.read_text()
    assert "my note" in (header.parent / "wake_word.h.user-backup").read_text()
    refused = installed["light"].run("new", "--target", "arduino", "--as", "library", "--name", "wake_word",
                                     "--output", "out-arduino", MODEL.name, cwd=home)
    assert refused.returncode == 1 and "already exists" in refused.stderr


def test_shared_arena_is_for_libraries_and_says_so(installed, libraries):
    home = libraries["home"]
    refused = installed["light"].run("new", "--target", "arduino", "--arena", "shared", MODEL.name, cwd=home)
    assert refused.returncode == 1 and "--arena shared is for libraries" in refused.stderr
    shared = installed["light"].run("new", "--target", "arduino", "--as", "library", "--arena", "shared",
                                    "--name", "gesture", "--output", "shared", MODEL.name, cwd=home)
    assert shared.returncode == 0, shared.stderr
    assert "arena shared: your firmware defines it once with TINYGEN_SHARED_ARENA" in shared.stdout
    header = (home / "shared" / "gesture" / "src" / "gesture.h").read_text()
    assert "#define TINYGEN_SHARED_ARENA(bytes)" in header
    core = (home / "shared" / "gesture" / "src" / "gesture.cpp").read_text()
    assert "uint8_t* const g_tensor_arena = tinygen_shared_arena;" in core
    assert "alignas(16) uint8_t g_tensor_arena[kArenaBytes];" not in core


def _chirale_mirrors() -> Path | None:
    """The folder of snapshots the recipe reads Chirale from, found where the recipe looks
    (two or three folders above TOOLS); None when there is none."""
    for candidate in (TOOLS.parent.parent / ".mirror", TOOLS.parent.parent.parent / ".mirror"):
        if (candidate / "spaziochirale+Chirale_TensorFlowLite").is_dir():
            return candidate.resolve()
    return None


def _chirale_cached() -> bool:
    cache = Path(os.environ.get("CORTEXM_QEMU_CACHE", Path.home() / ".cache" / "cortexm-qemu"))
    return any((lib / ".complete").is_file() for lib in (cache / "lib").glob("Chirale_TensorFLowLite-*"))


def _toolchain_missing() -> str | None:
    for tool in ("arm-none-eabi-g++", "qemu-system-arm"):
        if shutil.which(tool) is None:
            return f"{tool} not on PATH"
    if not (TOOLS / "cortex-m-qemu-selftest.sh").is_file():
        return f"{TOOLS}/cortex-m-qemu-selftest.sh not found (TOOLS=DIR)"
    if os.environ.get("MIRRORS") is None and _chirale_mirrors() is None and not _chirale_cached():
        return "no Chirale_TensorFLowLite 2.0.0 snapshot (the pinned Arduino library; set MIRRORS)"
    return None


@pytest.mark.skipif(_toolchain_missing() is not None, reason=_toolchain_missing() or "")
@pytest.mark.parametrize("arena", ["own", "shared"])
def test_two_libraries_in_one_firmware_pass_on_the_emulated_cortex_m4(installed, tmp_path, arena):
    """Two models' Arduino libraries link into one firmware (no strong symbol outside each
    library's namespace) and both self-tests PASS on the pinned library; with a shared arena
    the first model runs again after the second."""
    shutil.copy(MODEL, tmp_path / "gesture.tflite")
    speech = REPO.parent / "shared" / "corpus" / "tflm_micro_speech_quantized.tflite"  # another model, if at hand
    shutil.copy(speech if speech.is_file() else MODEL, tmp_path / "other.tflite")
    env = dict(os.environ, TINYGEN=str(installed["light"].tinygen), TOOLS=str(TOOLS), WORK=str(tmp_path / "work"))
    mirrors = _chirale_mirrors()
    if "MIRRORS" not in env and mirrors is not None:
        env["MIRRORS"] = str(mirrors)
    result = subprocess.run(["bash", str(REPO / "bench" / "two_libraries_qemu.sh"), "gesture.tflite", "gesture",
                             "other.tflite", "anomaly", arena], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gesture self-test: PASS" in result.stdout and "anomaly self-test: PASS" in result.stdout
