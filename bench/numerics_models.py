"""The Keras models bench/board_runs.py ran beside the published ones (bench/models/*.tflite):
layers a user brings that the pinned libraries compute differently, each trained briefly and
converted by today's converter as tinygen converts a .keras file for a board whose library
computes per-channel Dense weights (the per-channel default), so that the rewrites for other
boards are exercised too.

    python bench/numerics_models.py [NAME...]     (writes bench/models/<name>.tflite)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def models():
    import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(5)
    L = keras.layers

    def fit(model, x, y, loss="sparse_categorical_crossentropy", epochs=3):
        model.compile("adam", loss)
        model.fit(x, y, epochs=epochs, verbose=0)
        return model

    x = rng.normal(size=(300, 40)).astype(np.float32)
    yield "mlp_tanh", fit(keras.Sequential([keras.Input((40,)), L.Dense(64, activation="tanh"),
                                            L.Dense(32, activation="tanh"), L.Dense(4, activation="softmax")]),
                          x, x[:, :4].argmax(1)), x[:200]
    x = rng.normal(size=(300, 50, 6)).astype(np.float32)
    yield "imu_conv1d", fit(keras.Sequential([keras.Input((50, 6)), L.Conv1D(16, 5, activation="relu"),
                                              L.MaxPooling1D(2), L.Conv1D(16, 3, activation="relu"),
                                              L.GlobalAveragePooling1D(), L.Dense(24, activation="relu"),
                                              L.Dense(3, activation="softmax")]),
                            x, x.mean(1)[:, :3].argmax(1)), x[:200]
    x = rng.uniform(0, 1, size=(200, 8, 8, 4)).astype(np.float32)
    yield "decoder_convT", fit(keras.Sequential([
        keras.Input((8, 8, 4)), L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu"),
        L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu"),
        L.Conv2D(1, 3, padding="same", activation="sigmoid")]), x, rng.uniform(0, 1, (200, 32, 32, 1)), "mse", 1), x[:100]
    yield "upsample_nearest", keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(8, 3, padding="same", activation="relu"),
                                                L.UpSampling2D(2), L.Conv2D(1, 3, padding="same")]), x[:100]
    yield "upsample_bilinear", keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(8, 3, padding="same", activation="relu"),
                                                 L.UpSampling2D(2, interpolation="bilinear"), L.Conv2D(1, 3, padding="same")]), x[:100]
    yield "resizing", keras.Sequential([keras.Input((8, 8, 4)), L.Resizing(12, 12), L.Conv2D(2, 3)]), x[:100]
    x = rng.normal(size=(200, 10, 3)).astype(np.float32)
    yield "gru_unrolled", keras.Sequential([keras.Input((10, 3)), L.GRU(8, unroll=True), L.Dense(2)]), x
    x = rng.normal(size=(200, 50, 6)).astype(np.float32)
    yield "sepconv1d", keras.Sequential([keras.Input((50, 6)), L.SeparableConv1D(8, 3, activation="relu"),
                                         L.GlobalMaxPooling1D(), L.Dense(3)]), x
    x = rng.normal(size=(200, 16)).astype(np.float32)
    yield "layernorm", keras.Sequential([keras.Input((16,)), L.Dense(16), L.LayerNormalization(), L.Dense(3)]), x
    # Most rewrites in one: a 5x5 stride-2 SAME convolution over 4 channels (esp-nn's S3 padding),
    # a Conv2DTranspose with a fused ReLU (Chirale), global average pooling (Chirale's MEAN), a
    # per-channel Dense (Chirale) and a softmax over [2, 17] (esp-nn's softmax scratch).
    x = rng.uniform(0, 1, (64, 12, 12, 4)).astype(np.float32)
    inp = keras.Input((12, 12, 4))
    biased = {"bias_initializer": "random_normal"}  # an untrained zero bias is dropped by the converter
    y = L.Conv2D(8, 5, strides=2, padding="same", **biased)(inp)
    y = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", **biased)(y)
    y = L.Conv2DTranspose(4, 3, strides=2, padding="same", **biased)(y)
    y = L.Reshape((2, 17))(L.Dense(34, **biased)(L.GlobalAveragePooling2D()(y)))
    yield "rewrites", keras.Model(inp, L.Softmax()(y)), x
    x = rng.normal(size=(200, 32, 2)).astype(np.float32)
    yield "upsample1d", keras.Sequential([keras.Input((32, 2)), L.Conv1D(4, 3, padding="same", activation="relu"),
                                          L.MaxPooling1D(2), L.UpSampling1D(2), L.Conv1D(1, 3, padding="same")]), x[:100]
    # Keras 3's own LSTM: a WHILE over its 20 steps, converted float (TensorFlow 2.21 crashes
    # calibrating it for int8); its step counter is an int32 ADD, which Chirale lacks.
    x = rng.normal(size=(100, 20, 3)).astype(np.float32)
    yield "lstm_loop", keras.Sequential([keras.Input((20, 3)), L.LSTM(8), L.Dense(2)]), x


FLOAT = {"lstm_loop"}  # converted with --quantize none


def main(names: list[str]) -> None:
    """Every model, or only those `names` (the others' files stay as they are)."""
    from tinygen.model import calibration, convert, load

    folder = REPO / "bench" / "models"
    folder.mkdir(exist_ok=True)
    for name, model, samples in models():
        if names and name not in names:
            continue
        keras_path = folder / f"{name}.keras"
        model.save(keras_path)
        loaded = load.load_model(keras_path)
        specs = convert.input_specs(loaded)
        np.save(folder / f"{name}_calibration.npy", samples)
        data = convert.convert(loaded, "none", None) if name in FLOAT else \
            convert.convert(loaded, "int8", calibration.load_samples(folder / f"{name}_calibration.npy", specs))
        (folder / f"{name}.tflite").write_bytes(data)
        keras_path.unlink()
        (folder / f"{name}_calibration.npy").unlink()
        print(f"{name}: {len(data):,} B")


if __name__ == "__main__":
    main(sys.argv[1:])
