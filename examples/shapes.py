"""A tiny, deterministic image data set: 16x16 grayscale images of a horizontal bar, a
vertical bar or a hollow square, at random positions with noise. No download needed; the
same generator feeds the bundled example model, its calibration data and the tests.
"""

from __future__ import annotations

import numpy as np

SIZE = 16
CLASSES = ("horizontal", "vertical", "square")


def make_shapes(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (images of shape (count, 16, 16, 1) in [0, 1], integer labels)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 0.08, size=(count, SIZE, SIZE)).astype(np.float32)
    labels = rng.integers(0, len(CLASSES), size=count)
    for image, label in zip(images, labels):
        length = int(rng.integers(6, 12))
        row, col = (int(v) for v in rng.integers(1, SIZE - length, size=2))
        if label == 0:
            image[row, col:col + length] += 1.0
        elif label == 1:
            image[row:row + length, col] += 1.0
        else:
            side = max(4, length // 2)
            image[row, col:col + side] += 1.0
            image[row + side - 1, col:col + side] += 1.0
            image[row:row + side, col] += 1.0
            image[row:row + side, col + side - 1] += 1.0
    return np.clip(images, 0.0, 1.0)[..., np.newaxis], labels.astype(np.int64)
