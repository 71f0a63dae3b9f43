"""Intervals of proportions and of their differences, vectorised: the one implementation that
the critical path analysis, the feature vocabulary and the model evaluation share."""

from __future__ import annotations

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(
    positives: np.ndarray, n: np.ndarray, z: float = Z_95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of positives / n, elementwise, within [0, 1]; (0, 1) where n is 0."""
    n = np.asarray(n, dtype=np.float64)
    safe_n = np.where(n > 0, n, 1.0)
    p = np.asarray(positives, dtype=np.float64) / safe_n
    denominator = 1 + z**2 / safe_n
    centre = (p + z**2 / (2 * safe_n)) / denominator
    half = z * np.sqrt(p * (1 - p) / safe_n + z**2 / (4 * safe_n**2)) / denominator
    low, high = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    return np.where(n > 0, low, 0.0), np.where(n > 0, high, 1.0)


def newcombe_interval(
    positives_a: np.ndarray,
    n_a: np.ndarray,
    positives_b: np.ndarray,
    n_b: np.ndarray,
    z: float = Z_95,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of p_a - p_b by Newcombe's hybrid score method (his method 10, Statistics in
    Medicine 1998), from the Wilson intervals of each proportion."""
    n_a, n_b = np.asarray(n_a, dtype=np.float64), np.asarray(n_b, dtype=np.float64)
    p_a = np.divide(positives_a, n_a, out=np.zeros(n_a.shape), where=n_a > 0)
    p_b = np.divide(positives_b, n_b, out=np.zeros(n_b.shape), where=n_b > 0)
    low_a, high_a = wilson_interval(positives_a, n_a, z)
    low_b, high_b = wilson_interval(positives_b, n_b, z)
    difference = p_a - p_b
    low = difference - np.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = difference + np.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return low, high
