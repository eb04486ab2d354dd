"""Accelerations of Sinkhorn's iteration: Anderson extrapolation and a dense Newton polish.

:class:`_Anderson` extrapolates the column potential from the last few iterates (type-II
Anderson mixing, with the restarts decided by :func:`otgrid.pointcloud.sinkhorn.sinkhorn`);
:class:`_Newton` takes Newton steps on the semi-dual of small problems once Sinkhorn's linear
rate has slowed down.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from otgrid._threads import compile_on_first_use
from otgrid._units import unit_scales
from otgrid.kernels import pointcloud_numba as kern
from otgrid.pointcloud.ops_numba import COMPILE_NOTE
from otgrid.pointcloud.problem import _Problem

__all__ = ["NEWTON_AFTER", "NEWTON_EVERY", "NEWTON_MAX_M"]

# Newton polish for small problems (m <= NEWTON_MAX_M points per problem): tried after
# NEWTON_AFTER iterations at the target eps, then every NEWTON_EVERY, while not converged.
# Sinkhorn's linear rate tends to 1 when eps is small against the gaps between assignments
# (n = 14, eps = 1e-3 x cost scale: marginal error 9e-9 after 5000 Anderson iterations, 8e-11
# after 112 with Newton); Newton converges quadratically once close. Problems that converge
# within NEWTON_AFTER iterations never pay for the dense m x m solve; at m = 500 the dense
# solves cost more wall time than the Anderson iterations they save.
NEWTON_MAX_M = 256
NEWTON_AFTER = 50
NEWTON_EVERY = 50


class _Newton:
    """Newton steps on the semi-dual ``g -> <a, F(g)> + <b, g>``, dense, for small problems.

    With ``f = F(g)`` (rows exact) the columns ``c(g)`` of the plan have the Jacobian
    ``(diag(c) - P^T diag(1 / r) P) / eps`` (singular along the constants), so the Newton step
    solves ``(diag(c) - P^T diag(1 / r) P) d = eps (b - c)``; a step is kept for a problem only
    if it lowers that problem's marginal error (halving it up to ``MAX_HALVINGS`` times).
    """

    MAX_STEPS = 12
    MAX_HALVINGS = 8

    def __init__(self, prob: _Problem, ops, la: np.ndarray, lb: np.ndarray) -> None:
        self.p, self.ops, self.la, self.lb = prob, ops, la, lb
        self.C = [cdist(prob.x[k], prob.y[k], metric=prob.cost) for k in range(prob.B)]

    @staticmethod
    def eligible(prob: _Problem) -> bool:
        return prob.y.shape[1] <= NEWTON_MAX_M and prob.x.shape[1] <= 4 * NEWTON_MAX_M

    def _evaluate(self, f: np.ndarray, g: np.ndarray, eps: np.ndarray):
        inv = 1.0 / eps
        lse, _ = self.ops.lse("rows", self.lb + g * inv[:, None], f, inv)
        f = f - eps[:, None] * lse
        lse_c, _ = self.ops.lse("cols", self.la + f * inv[:, None], g, inv)
        with np.errstate(over="ignore"):  # a trial step too long: an infinite error
            err = np.abs(self.p.b * np.exp(lse_c) - self.p.b).sum(axis=1) / self.p.mass
        return f, err

    def _direction(self, k: int, f: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
        p = self.p
        logp = self.la[k][:, None] + self.lb[k][None, :] + (f[:, None] + g[None, :]
                                                            - self.C[k]) / eps
        P = np.exp(np.minimum(logp, 700.0))
        r, c = P.sum(axis=1), P.sum(axis=0)
        act = np.flatnonzero(p.b[k] > 0)
        H = np.empty((act.size, act.size))
        compile_on_first_use(kern.newton_matrix, COMPILE_NOTE, P, r, c, act, H)
        kern.newton_matrix(P, r, c, act, H)
        H += (c[act].mean() / act.size)  # the constants direction: no change
        H[np.diag_indices_from(H)] += 1e-13 * c[act].max()
        d = np.zeros_like(g)
        sol = np.empty(act.size)
        if not kern.spd_solve(H, eps * (p.b[k][act] - c[act]), sol):
            raise np.linalg.LinAlgError("Newton matrix is not positive definite")
        # no step along the constants (they change nothing) and none longer than the costs'
        # range: an ill-conditioned H (a plan close to block-diagonal) returned one of 1e12,
        # which left g with a resolution of 1e-4 (the line search accepts any step that lowers
        # the error)
        sol -= np.average(sol, weights=p.b[k][act])
        d[act] = sol * min(1.0, p.diameter[k] / max(np.abs(sol).max(), 1e-300))
        return d

    def polish(self, f, g, err, eps, tol) -> tuple[np.ndarray, int, int]:
        """Newton steps from ``(f, g)`` (``f = F(g)``); returns ``(g, steps, passes)``."""
        steps = passes = 0
        f, g, err = f.copy(), g.copy(), err.copy()
        for _ in range(self.MAX_STEPS):
            todo = err > tol
            d = np.zeros_like(g)
            for k in np.flatnonzero(todo):
                try:
                    d[k] = self._direction(k, f[k], g[k], float(eps[k]))
                except np.linalg.LinAlgError:
                    todo[k] = False
            if not np.all(np.isfinite(d)):
                break
            t = np.ones(len(g))
            improved = np.zeros(len(g), bool)
            for _ in range(self.MAX_HALVINGS):
                g_try = g + t[:, None] * d
                f_try, e_try = self._evaluate(f, g_try, eps)
                passes += 2
                ok = todo & ~improved & (e_try < err)
                g[ok], f[ok], err[ok] = g_try[ok], f_try[ok], e_try[ok]
                improved |= ok
                t[todo & ~improved] *= 0.5
                if np.all(improved[todo]):
                    break
            if not np.any(improved):
                break
            steps += 1
            if np.all(err <= tol):
                break
        return g, steps, passes


class _Anderson:
    """Anderson acceleration (type II) of the fixed-point map ``g -> T(g)``, per problem.

    Keeps the last ``depth`` iterates ``g_k`` and residuals ``r_k = T(g_k) - g_k`` and returns
    ``sum_k alpha_k (g_k + r_k)`` with ``alpha`` minimising ``||sum_k alpha_k r_k||_b`` subject
    to ``sum alpha = 1`` (a ``depth x depth`` solve, Tikhonov-regularised). Weighting by ``b``
    makes the residual norm match the L1 marginal error to first order.
    """

    def __init__(self, depth: int, weights: np.ndarray) -> None:
        self.depth, self.w = depth, weights
        self.X: list[np.ndarray] = []
        self.R: list[np.ndarray] = []

    def reset(self) -> None:
        self.X.clear()
        self.R.clear()

    def step(self, g: np.ndarray, tg: np.ndarray) -> np.ndarray:
        if self.depth == 0:
            return tg
        self.X.append(g)
        self.R.append(tg - g)
        if len(self.X) > self.depth:
            self.X.pop(0)
            self.R.pop(0)
        k = len(self.R)
        if k == 1:
            return tg
        R = np.stack(self.R, axis=1)  # (B, k, m)
        # H in a power of two near the residuals' size where that is far from 1 (exact; alpha
        # does not depend on it): potentials beyond about 1e150 (squared-euclidean costs of
        # points near 1e75) squared to inf, and the solve gave NaN
        unit = unit_scales(np.max(np.abs(R), axis=(1, 2)))
        Rs = R / unit[:, None, None] if np.any(unit != 1.0) else R
        H = np.einsum("bkm,blm->bkl", Rs * self.w[:, None, :], Rs)
        H += (1e-10 * np.trace(H, axis1=1, axis2=2) / k + 1e-300)[:, None, None] * np.eye(k)
        try:
            z = np.linalg.solve(H, np.ones((H.shape[0], k, 1)))[..., 0]
        except np.linalg.LinAlgError:
            self.reset()
            return tg
        alpha = z / z.sum(axis=1, keepdims=True)
        out = np.einsum("bk,bkm->bm", alpha, np.stack(self.X, axis=1) + R)
        if not np.all(np.isfinite(out)):
            self.reset()
            return tg
        return out
