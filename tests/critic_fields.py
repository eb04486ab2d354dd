"""Shared by the tests of the certificate's 2D sweeps (level map, ray critics, the ascent and
the flow's descent): the largest cell norm of a critic's forward differences, computed with
NumPy on its own, a smooth field with slopes around 1 and noise on top (violations everywhere),
the Gaussian pair and 8gaussians on square grids, and solves with and without one of the
polishes."""

from __future__ import annotations

import warnings

import numpy as np

import otgrid as og


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


def gaussian_pair(n: int) -> tuple[og.Grid, np.ndarray, np.ndarray]:
    """N(0, I) against N((2, 1), I) on [-4, 4]^2 with ``n`` cells per axis (mass renormalised)."""
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (n, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        mu = grid.discretize(og.Normal([0.0, 0.0], 1.0), outside="renormalize")
        nu = grid.discretize(og.Normal([2.0, 1.0], 1.0), outside="renormalize")
    return grid, mu, nu


def wgan_8gaussians(n: int) -> tuple[og.Grid, np.ndarray, np.ndarray]:
    """8gaussians at the WGAN-GP scale against ``N(0, I)`` on ``[-4, 4]^2`` with ``n x n``
    cells (tails renormalised, equal total masses): near-atoms, a hard problem."""
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (n, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        mu = grid.discretize(og.datasets.eight_gaussians(), outside="renormalize")
        nu = grid.discretize(og.Normal([0.0, 0.0], 1.0), outside="renormalize")
    return grid, mu, nu * (mu.sum() / nu.sum())


def with_and_without(monkeypatch, switch: str, mu: np.ndarray, nu: np.ndarray, grid: og.Grid,
                     tol: float) -> tuple:
    """Solves of ``(mu, nu)`` to ``tol`` with the solver's defaults and with
    ``otgrid.critic.backend_numpy.<switch>`` set to 0 (a polish switched off); both must
    converge and bracket the cvxpy + Clarabel value. Returns ``(with, without)``."""
    from references import socp_2d_euclidean_cvxpy

    from otgrid.critic import backend_numpy

    ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx).value
    on = og.solve_critic(mu, nu, grid, tol=tol, backend="numba")
    monkeypatch.setattr(backend_numpy, switch, 0)
    off = og.solve_critic(mu, nu, grid, tol=tol, backend="numba")
    for r in (on, off):
        assert r.converged and r.lower <= ref * (1 + 1e-7) and ref <= r.upper * (1 + 1e-7)
    return on, off


def interrupt_coarse_level(monkeypatch, shape: tuple[int, int], after: int) -> None:
    """Make the multilevel start's coarse solve on ``shape`` raise ``KeyboardInterrupt`` (as
    Ctrl-C would) at its ``after``-th step."""
    from otgrid.critic import multilevel

    make = multilevel.make_kernels

    def interrupting(backend, grid_shape, *args):
        kern = make(backend, grid_shape, *args)
        if tuple(grid_shape) == tuple(shape):
            step, calls = kern.dual_step_residual, []

            def stop(*a, **k):
                calls.append(1)
                if len(calls) == after:
                    raise KeyboardInterrupt
                return step(*a, **k)

            kern.dual_step_residual = stop
        return kern

    monkeypatch.setattr(multilevel, "make_kernels", interrupting)

