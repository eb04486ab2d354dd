"""Shared by the tests of the certificate's 2D sweeps (level map, ray critics): the largest
cell norm of a critic's forward differences, computed with NumPy on its own, and a smooth field
with slopes around 1 and noise on top (violations everywhere)."""

from __future__ import annotations

import numpy as np


def max_norm(g: np.ndarray, h: tuple[float, float], iso: bool) -> float:
    """``max_i |(Dg)_i|`` (2-norm or inf-norm per cell), ``h`` the inverse cell sizes."""
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:-1] = (g[1:] - g[:-1]) * h[0]
    gy[:, :-1] = (g[:, 1:] - g[:, :-1]) * h[1]
    return float((np.hypot(gx, gy) if iso else np.maximum(abs(gx), abs(gy))).max())


def noisy_field(shape: tuple[int, int], h: tuple[float, float], seed: int) -> np.ndarray:
    """A smooth field with slopes around 1 plus noise: violations at many places and levels."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, shape[0])[:, None]
    y = np.linspace(0, 1, shape[1])[None, :]
    f = np.sin(3 * x) * 0.4 * shape[0] / h[0] + np.cos(2 * y) * 0.3 * shape[1] / h[1]
    return f + rng.normal(scale=0.3 / min(h), size=shape)


def feasible_field() -> tuple[np.ndarray, tuple[float, float]]:
    """A critic that satisfies both norms' constraints with room (``|Df| <= 1``), and its ``h``."""
    x = np.linspace(-2, 2, 50)
    y = np.linspace(-2.4, 2.4, 60)
    f = 0.6 * np.abs(x)[:, None] + 0.5 * np.sin(y)[None, :]
    return f, (1 / (x[1] - x[0]), 1 / (y[1] - y[0]))
