"""Benchmarks (run by hand: `make bench`). Prints three tables:

1. Arena: tinygen's computed arena (reference/CMSIS-NN target) vs the smallest arena that
   works, found independently by scanning down in 16-byte steps on the real runtime, for six
   kinds of model; beside it what two hand rules would have given (a hand-set 10 KB, as in
   many tutorials, and "10x the model size"). Target: ratio in [1.00, 1.05].
2. Accuracy: a small CNN on scikit-learn's digits (bundled with scikit-learn, no download),
   float Keras vs int8 on TFLite-Micro, through `tinygen verify`. Target: drop <= 1 point.
3. Speed: `tinygen new` wall time for .tflite input vs .keras input vs a bare TensorFlow
   import + load + convert, measured in the same run. Targets: .tflite < 1 s, .keras <= 1.3x
   bare.
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
        # Unrolled: TensorFlow 2.21's converter crashes calibrating a rolled Keras 3 LSTM for
        # int8 (tinygen reports that as an error); unrolled it is plain FC/LOGISTIC/TANH ops.
        "LSTM (unrolled)": (keras.Sequential([keras.Input((20, 4)), keras.layers.LSTM(16, unroll=True),
                                              keras.layers.Dense(3)]),
                            rng.normal(size=(64, 20, 4))),
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
    print("\nArena in bytes (computed for zephyr/nrf52840dk: CMSIS-NN, where the host minimum is "
          "enough; esp32s3 adds esp-nn scratch)")
    print(f"{'model':<22}{'model B':>9}{'computed':>10}{'minimal':>9}{'ratio':>7}"
          f"{'hand 10 KB':>16}{'10x model':>18}{'esp32s3':>9}")
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
              f"{rule_verdict(10 * 1024, minimal):>16}{rule_verdict(10 * len(data), minimal):>18}{s3:>9,}")
    return tflites


def rule_verdict(rule_bytes: int, minimal: int) -> str:
    """What a hand rule gives: too small (AllocateTensors fails) or how much it wastes."""
    if rule_bytes < minimal:
        return f"{rule_bytes:,} FAILS"
    return f"{rule_bytes:,} {rule_bytes / minimal:.1f}x"


def accuracy_table(folder: Path) -> None:
    import keras
    from sklearn.datasets import load_digits

    from generator.pipeline import prepare
    from generator.verify import verify

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]  # 8x8, scaled to [0, 1]
    y = digits.target
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
                              keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[train], y[train], epochs=15, batch_size=32, verbose=0)
    model.save(folder / "digits.keras")
    np.save(folder / "digits_cal.npy", x[train][:200])
    np.savez(folder / "digits_eval.npz", x=x[test], y=y[test])
    prepared = prepare(folder / "digits.keras", "zephyr", "nrf52840dk", "int8", folder / "digits_cal.npy",
                       with_golden=False)
    result = verify(prepared, folder / "digits_eval.npz")
    keras_acc, tflite_acc, tflm_acc = (result.scores[k] * 100 for k in ("keras", "tflite", "tflm"))
    print(f"\nAccuracy: scikit-learn digits, small CNN, {result.samples} held-out images")
    print(f"{'float Keras':>12}{'int8 TFLite':>13}{'int8 TFLM':>11}{'drop':>8}  TFLite vs TFLM")
    print(f"{keras_acc:>11.1f}%{tflite_acc:>12.1f}%{tflm_acc:>10.1f}%{keras_acc - tflm_acc:>7.1f}p  "
          f"max {result.tflite_vs_tflm.max_steps:.0f} step(s), {'agree' if result.ok else 'DISAGREE'}")


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
        accuracy_table(folder)
        speed_table(models, tflites, folder)


if __name__ == "__main__":
    main()
