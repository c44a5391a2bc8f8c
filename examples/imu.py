"""Synthetic IMU gestures: 6-axis windows of a sine at a class-specific frequency plus noise.

A stand-in for the accelerometer/gyroscope classifiers robotics users deploy; used by the
tests (a Conv1D model on it is one whose kernels round near-ties differently).
"""

from __future__ import annotations

import numpy as np

AXES = 6


def imu_gestures(count: int, steps: int, seed: int = 0, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(windows of shape (count, steps, 6) float32, labels (count,) int)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    t = np.linspace(0, 1, steps)
    windows = np.empty((count, steps, AXES), np.float32)
    for i, label in enumerate(labels):
        frequency = 1 + 1.5 * label
        phase = rng.uniform(0, 6)
        windows[i] = np.stack([np.sin(2 * np.pi * frequency * t + phase) * (1 + 0.3 * axis)
                               for axis in range(AXES)], axis=1)
    windows += rng.normal(0, 0.3, windows.shape).astype(np.float32)
    return windows, labels
