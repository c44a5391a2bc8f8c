"""Shared fixtures: tiny Keras models are trained and converted once per session.

Most tests take the converted `.tflite` files and never import TensorFlow; the session
fixture that trains the models is the only place TensorFlow is loaded in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(EXAMPLES))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@dataclass
class ModelFiles:
    name: str
    source: Path  # the Keras file (.keras or .h5)
    calibration: Path  # .npy, shape (N, *input_shape)
    tflite: dict  # quantization -> Path of the converted model


def _train_models(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    import keras
    import tf_keras
    from shapes import make_shapes

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(7)
    made = {}

    # Dense MLP: 10 features -> 4 classes.
    x = rng.normal(size=(256, 10)).astype(np.float32)
    y = (x[:, :4] > 0).argmax(1)
    mlp = keras.Sequential([keras.Input((10,)), keras.layers.Dense(24, activation="relu"),
                            keras.layers.Dense(12, activation="relu"),
                            keras.layers.Dense(4, activation="softmax")], name="mlp")
    mlp.compile("adam", "sparse_categorical_crossentropy")
    mlp.fit(x, y, epochs=3, verbose=0)
    mlp.save(folder / "mlp.keras")
    made["mlp"] = (folder / "mlp.keras", x[:64])

    # Small Conv2D CNN on the example's shapes data (Flatten -> one RESHAPE at batch 1).
    images, labels = make_shapes(600, seed=11)
    cnn = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(6, 3, activation="relu"),
                            keras.layers.MaxPooling2D(), keras.layers.Conv2D(8, 3, strides=2, padding="same"),
                            keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")], name="cnn")
    cnn.compile("adam", "sparse_categorical_crossentropy")
    cnn.fit(images, labels, epochs=2, verbose=0)
    cnn.save(folder / "cnn.keras")
    made["cnn"] = (folder / "cnn.keras", images[:64])

    # DepthwiseConv2D model saved by tf_keras as legacy .h5: the file kind Keras 3 refuses.
    dw = tf_keras.Sequential([tf_keras.layers.InputLayer((12, 12, 3)),
                              tf_keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
                              tf_keras.layers.Conv2D(4, 1), tf_keras.layers.GlobalAveragePooling2D(),
                              tf_keras.layers.Dense(2)])
    dw.save(folder / "depthwise.h5")
    made["depthwise"] = (folder / "depthwise.h5", rng.uniform(0, 1, size=(48, 12, 12, 3)).astype(np.float32))
    return made


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, ModelFiles]:
    """name -> ModelFiles, converted with the real TFLite converter (int8 and none)."""
    from tinygen.model import calibration, convert, load

    folder = tmp_path_factory.mktemp("models")
    result = {}
    for name, (source, samples) in _train_models(folder).items():
        cal_path = folder / f"{name}_calibration.npy"
        np.save(cal_path, samples)
        loaded = load.load_model(source)
        specs = convert.input_specs(loaded)
        tflite = {}
        for quantize in ("int8", "none"):
            data = convert.convert(loaded, quantize,
                                   calibration.load_samples(cal_path, specs) if quantize == "int8" else None)
            path = folder / f"{name}_{quantize}.tflite"
            path.write_bytes(data)
            tflite[quantize] = path
        result[name] = ModelFiles(name=name, source=source, calibration=cal_path, tflite=tflite)
    return result


@pytest.fixture(scope="session")
def example_model() -> ModelFiles:
    """The model shipped in examples/ (not converted here: tests convert it as users do)."""
    return ModelFiles(name="shapes_cnn", source=EXAMPLES / "shapes_cnn.keras",
                      calibration=EXAMPLES / "shapes_calibration.npy", tflite={})


@pytest.fixture(scope="session")
def generate(tmp_path_factory, models):
    """generate(model, target, board, quantize="int8") -> project path, rendered once per
    combination through the same library calls `tinygen new` makes."""
    from tinygen.output.project import write_project
    from tinygen.pipeline import prepare

    cache: dict = {}
    root = tmp_path_factory.mktemp("projects")

    def _generate(model: str, target: str, board: str | None = None, quantize: str = "int8"):
        key = (model, target, board, quantize)
        if key not in cache:
            files = models[model]
            prepared = prepare(files.tflite[quantize], target, board,
                               calibration_path=files.calibration)
            out = root / f"{target}-{board or 'default'}"
            written = write_project(prepared, f"{model}_{quantize}", out)
            cache[key] = (written.rendered.path, prepared)
        return cache[key]

    return _generate


# Distributions left out of the "light" installation: what `pip install tinygen` (without
# the [convert] extra) does not bring.
TENSORFLOW_PARTS = ("tensorflow", "tf_keras", "keras", "tensorboard")


@dataclass
class Installation:
    """A virtual environment with tinygen installed from its wheel, as a user has it."""

    root: Path
    site_packages: Path

    @property
    def tinygen(self) -> Path:
        return self.root / "bin" / "tinygen"

    def run(self, *args, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
        """The installed console script, run from `cwd` (the user's folder)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return subprocess.run([str(self.tinygen), *map(str, args)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)


def _install(folder: Path, wheel: Path, dependencies: Path) -> Installation:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    purelib = Path(subprocess.run([str(folder / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    # Dependencies come from the test environment (a .pth line adds a folder without running
    # the .pth files in it, so its editable tinygen stays out); tinygen from the wheel.
    (purelib / "dependencies.pth").write_text(f"{dependencies}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(folder / "bin" / "python"), "install",
                    "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)
    return Installation(root=folder, site_packages=purelib)


def build_wheel(dest: Path) -> Path:
    """tinygen's wheel, built from a copy of the checkout without its build/ folder (setuptools
    would take stale modules from an earlier build/lib)."""
    source = dest.parent / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                                 "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dest), str(source)], check=True, capture_output=True)
    (wheel,) = dest.glob("tinygen-*.whl")
    return wheel


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> dict[str, Installation]:
    """{"full": with TensorFlow, "light": without} — tinygen built as a wheel and installed
    into fresh virtual environments, its console script run as users run it."""
    folder = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(folder / "dist")
    ours = Path(sysconfig.get_paths()["purelib"])
    light_deps = folder / "light-dependencies"
    light_deps.mkdir()
    for entry in ours.iterdir():
        name = entry.name.lower()
        if not name.startswith(TENSORFLOW_PARTS + ("__editable__", "tinygen", "dependencies.pth")):
            (light_deps / entry.name).symlink_to(entry)
    return {"full": _install(folder / "full", wheel, ours),
            "light": _install(folder / "light", wheel, light_deps)}
