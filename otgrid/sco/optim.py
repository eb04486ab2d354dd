"""Pieces shared by the generator loops: optimizer steps, argument checks, the failure signal."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from otgrid.grid.grid import Grid
from otgrid.sco.generators import ParametricGenerator

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


class _SGD:
    def __init__(self, lr: float, size: int) -> None:
        self.lr = lr

    def step(self, theta: np.ndarray, ascent: np.ndarray) -> np.ndarray:
        return theta + self.lr * ascent


class _Adam:
    """Adam (Kingma & Ba) on the loss whose gradient is ``-ascent``."""

    def __init__(self, lr: float, size: int,
                 betas: tuple[float, float] = _ADAM_BETAS) -> None:
        self.lr = lr
        self.betas = betas
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.t = 0

    def step(self, theta: np.ndarray, ascent: np.ndarray) -> np.ndarray:
        b1, b2 = self.betas
        g = -ascent
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        mhat = self.m / (1 - b1 ** self.t)
        vhat = self.v / (1 - b2 ** self.t)
        return theta - self.lr * mhat / (np.sqrt(vhat) + _ADAM_EPS)


def _check_generator(generator: Any, grid: Grid) -> np.ndarray:
    if not isinstance(generator, ParametricGenerator):
        missing = [a for a in ("params", "ndim", "latent_dim", "sample_latent", "sample", "vjp")
                   if not hasattr(generator, a)]
        raise TypeError(f"generator must follow otgrid.sco.generators.ParametricGenerator; "
                        f"{type(generator).__name__} lacks {', '.join(missing)}.")
    if generator.ndim != grid.ndim:
        raise ValueError(f"generator produces {generator.ndim}D points but the grid is "
                         f"{grid.ndim}D; use a {generator.ndim}D grid.")
    theta = np.asarray(generator.params, dtype=np.float64).ravel()
    if theta.size == 0:
        raise ValueError("generator.params is empty; the generator has nothing to train.")
    if not np.all(np.isfinite(theta)):
        bad = int(np.size(theta) - np.count_nonzero(np.isfinite(theta)))
        raise ValueError(f"generator.params contains {bad} non-finite value(s) (NaN or inf): "
                         f"{theta.tolist()}. Start from finite parameters.")
    return theta.copy()


def _positive(value: Any, name: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a positive number; got {value!r}.")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value}.")
    return value


class _Failure(Exception):
    """Internal: a step could not be completed; the fit ends at the last good state."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
