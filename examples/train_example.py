"""Train the bundled example model (examples/shapes_cnn.keras) and write its calibration
data (examples/shapes_calibration.npy). Run from the repository root:

    python examples/train_example.py

The committed files were made with this script; re-running it gives an equivalent model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from shapes import CLASSES, SIZE, make_shapes  # noqa: E402

HERE = Path(__file__).resolve().parent


def build_model() -> keras.Model:
    return keras.Sequential([
        keras.Input(shape=(SIZE, SIZE, 1), name="image"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.Conv2D(16, 1, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(CLASSES), activation="softmax"),
    ], name="shapes_cnn")


def main() -> None:
    keras.utils.set_random_seed(0)
    x_train, y_train = make_shapes(3000, seed=1)
    x_test, y_test = make_shapes(500, seed=2)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=12, batch_size=64, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {accuracy:.3f}")
    model.save(HERE / "shapes_cnn.keras")
    np.save(HERE / "shapes_calibration.npy", make_shapes(100, seed=3)[0])


if __name__ == "__main__":
    main()
