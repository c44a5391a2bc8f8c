"""Benchmarks (run by hand: `make bench`). Prints two tables:

1. Arena: tinygen's computed arena (reference-kernel target) vs the smallest arena that
   works, found independently by scanning down in 16-byte steps on the real runtime, plus
   the common "10x model size" rule of thumb. Target: ratio in [1.00, 1.05].
2. Speed: `tinygen new` wall time for .tflite input vs .keras input vs a bare TensorFlow
   import + load + convert, measured in the same run. Target: .tflite < 1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples"))

import numpy as np  # noqa: E402


def make_models(folder: Path) -> dict[str, tuple[Path, Path]]:
    import keras

    from shapes import make_shapes

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = make_shapes(64, seed=5)[0]
    specs = {
        "dense MLP": (keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                                        keras.layers.Dense(32, activation="relu"), keras.layers.Dense(8)]),
                      rng.normal(size=(64, 32))),
        "Conv2D CNN": (keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
                                         keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, activation="relu"),
                                         keras.layers.Flatten(), keras.layers.Dense(3)]), images),
        "depthwise-separable": (keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2),
                                                  keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
                                                  keras.layers.Conv2D(16, 1, activation="relu"),
                                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)]),
                                rng.uniform(size=(64, 32, 32, 3))),
        "Conv1D": (keras.Sequential([keras.Input((128, 3)), keras.layers.Conv1D(16, 5, activation="relu"),
                                     keras.layers.MaxPooling1D(2), keras.layers.Conv1D(16, 5, activation="relu"),
                                     keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(5)]),
                   rng.normal(size=(64, 128, 3))),
    }
    made = {}
    for name, (model, samples) in specs.items():
        stem = name.split()[0].lower().replace("-", "_")
        model.save(folder / f"{stem}.keras")
        np.save(folder / f"{stem}.npy", samples.astype(np.float32))
        made[name] = (folder / f"{stem}.keras", folder / f"{stem}.npy")
    made["example shapes_cnn"] = (REPO / "examples" / "shapes_cnn.keras", REPO / "examples" / "shapes_calibration.npy")
    return made


def arena_table(models: dict[str, tuple[Path, Path]], folder: Path) -> dict[str, Path]:
    from generator import calibration, convert, load
    from generator.pipeline import prepare
    from generator.tflm_host import HostRuntime

    tflites = {}
    print("\nArena (target zephyr/nrf52840dk: CMSIS-NN, host minimum is enough)")
    print(f"{'model':<22}{'model B':>9}{'computed':>10}{'minimal':>9}{'ratio':>7}{'10x model':>11}{'esp32s3':>9}")
    for name, (source, cal) in models.items():
        loaded = load.load_model(source)
        data = convert.convert(loaded, "int8", calibration.load_samples(cal, convert.input_specs(loaded)))
        path = folder / (source.stem + ".tflite")
        path.write_bytes(data)
        tflites[name] = path
        computed = prepare(path, "zephyr", "nrf52840dk", with_golden=False).arena.arena_bytes
        s3 = prepare(path, "esp-idf", "esp32s3", with_golden=False).arena.arena_bytes
        with HostRuntime(data) as runtime:  # independent: scan down until it stops working
            minimal = computed
            while minimal > 16 and runtime.try_arena(minimal - 16)["ok"]:
                minimal -= 16
            assert runtime.try_arena(computed)["ok"]
        print(f"{name:<22}{len(data):>9,}{computed:>10,}{minimal:>9,}{computed / minimal:>7.3f}"
              f"{10 * len(data):>11,}{s3:>9,}")
    return tflites


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def speed_table(models, tflites, folder: Path) -> None:
    tinygen = [sys.executable, "-m", "generator.cli"]
    print("\nSpeed: wall time, one run each, same machine and run")
    print(f"{'model':<22}{'new .tflite':>12}{'new .keras':>12}{'bare TF convert':>17}{'keras/bare':>11}")
    for name, (source, cal) in models.items():
        out = folder / "out"
        t_tflite = timed([*tinygen, "new", "--target", "esp-idf", "--output", str(out), "--force",
                          "--name", "a", str(tflites[name])])
        t_keras = timed([*tinygen, "new", "--target", "esp-idf", "--output", str(out), "--force",
                         "--name", "b", "--calibration-data", str(cal), str(source)])
        bare = ("import numpy as np, keras, tensorflow as tf\n"
                f"m = keras.models.load_model({str(source)!r}); x = np.load({str(cal)!r})\n"
                "c = tf.lite.TFLiteConverter.from_keras_model(m)\n"
                "c.optimizations = [tf.lite.Optimize.DEFAULT]\n"
                "c.representative_dataset = lambda: ([x[i:i+1]] for i in range(len(x)))\n"
                "c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
                "c.inference_input_type = c.inference_output_type = tf.int8\n"
                "c.convert()\n")
        t_bare = timed([sys.executable, "-c", bare])
        print(f"{name:<22}{t_tflite:>11.2f}s{t_keras:>11.2f}s{t_bare:>16.2f}s{t_keras / t_bare:>11.2f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = make_models(folder)
        tflites = arena_table(models, folder)
        speed_table(models, tflites, folder)


if __name__ == "__main__":
    main()
