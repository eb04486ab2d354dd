"""Driver of :func:`otgrid.pointcloud.smooth_ot` (the dual of Sanjabi et al., Lemma 4.1).

The dual ``F`` and its gradient come from the backend's passes over the pairs
(:mod:`otgrid.pointcloud.ops_numpy`); ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` runs
on ``-(F - F(ref))``, the change of ``F`` from a reference point, summed pairwise so that it is
accurate to the rounding of the change itself rather than of ``F``: near the optimum the
decrease L-BFGS must see (``~ lambda * error^2``) is far below the rounding of ``F``, and
L-BFGS would stall at a marginal error of about ``sqrt(eps_machine / lambda)``. For L2 the
pairwise sum costs most of the pass's arithmetic, so the passes compute ``F`` alone and take
``F - F(ref)`` until a change falls below ``ACCURATE_BELOW`` times the rounding bound of ``F``;
the rest of that continuation stage sums pairwise. When L-BFGS stops short of the tolerance
the reference moves to the current point and L-BFGS restarts.

L2 also has a semismooth Newton method (Lorenz, Manns, Meyer 2021): ``-F`` is piecewise
quadratic and its generalized Hessian is ``1 / lambda`` times the Laplacian of the bipartite
graph of active pairs (``phi_i - psi_j - c_ij > 0``) with edge weights ``a_i b_j``, sparse when
``lambda`` is small. Each iteration lists the active pairs (two passes), solves the Newton
system by diagonally preconditioned conjugate gradients (``kernels/laplacian_numba.py``) to a
relative residual ``min(0.1, sqrt(error))`` and backtracks (Armijo, on the pairwise-summed
change of ``F``). A stage whose active set exceeds ``NEWTON_MAX_ACTIVE`` pairs, or whose line
search fails (the rounding floor), continues with L-BFGS.

A batch of problems is solved as one separable problem (one kernel call evaluates all of them),
stopping when every problem meets the tolerance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize

from otgrid._threads import blas_one_thread, compile_on_first_use, solve_clock
from otgrid._units import unit_scales
from otgrid.kernels.laplacian_numba import laplacian_diagonal, laplacian_pcg
from otgrid.pointcloud.backends import make_ops
from otgrid.pointcloud.ops_numba import COMPILE_NOTE
from otgrid.pointcloud.ops_numpy import log_weights
from otgrid.pointcloud.problem import (
    _finish,
    _info_value,
    _normalise,
    _Problem,
    _statistic,
)
from otgrid.pointcloud.result import RegularizedInfo, RegularizedResult

__all__ = ["solve_smooth_dual"]

# Marginal error at which an intermediate continuation stage hands over to the next one.
STAGE_TOL = 1e-3
# A restart of L-BFGS (new reference point) must divide the marginal error by this much, or
# the solve is declared stalled.
RESTART_GAIN = 0.5
# Newton (L2): at most this many active pairs (the CSR pattern takes 4 bytes per pair; above
# it a stage runs L-BFGS, whose memory is O(n + m)).
NEWTON_MAX_ACTIVE = 1 << 24
# ... conjugate-gradient iterations per Newton system, backtracking steps per line search,
# Armijo's sufficient-increase fraction, and the shift added to the Laplacian's diagonal
# (relative to a node's curvature with every pair active; an isolated node gets that whole
# curvature, so that its step is of order lambda).
NEWTON_CG_MAXITER = 1000
NEWTON_MAX_BACKTRACK = 30
NEWTON_ARMIJO = 1e-4
NEWTON_SHIFT = 1e-10
# method="auto" runs a Newton iteration only while at most this fraction of the pairs is
# active: on a dense active set one Newton iteration (listing the pairs, conjugate gradients
# over them) costs several L-BFGS iterations. Measured (n = m = 1000, 2D, lambda = 0.05, 43%
# of the pairs active at the solution): Newton 0.19 s, L-BFGS 0.087 s.
NEWTON_AUTO_FRACTION = 0.25
# L2: a pass evaluates F alone (no reference point: about 0.6 of the time, measured at 10^6
# stored costs) and its change is taken as F - F(reference) while every problem's change
# exceeds ACCURATE_BELOW x eps x (the scale of F's terms); below, the stage switches to the
# pairwise-summed change (and redoes that evaluation). Measured (n = 1000, 2D, lambda from 0.05
# to 5e-8, 200 points near the optimum): F - F(reference) was within 0.22 eps x scale of the
# pairwise sum.
ACCURATE_BELOW = 1e4


# L-BFGS-B takes steps of its variables' own size at first: with the potentials in the
# costs' units, clouds of coordinates around 1e-12 or 1e12 (costs 1e-12 / 1e12, and reg
# with them) stalled or ran for thousands of iterations at marginal errors of 2 (measured:
# scaled copies of one problem, method "lbfgs" and "auto"; "newton" was unaffected); so did
# the L2 dual with reg far above the costs (method "lbfgs" from reg = 1e50 on 20 x 30
# points of costs about 1, stalled at marginal errors of 2), whose potentials have the size
# of reg times a plan entry. The potentials' size -- the largest cost, or (L2) reg times the
# mean plan entry (mass / (n m)) where that is larger -- is measured in a power of two near
# it where it lies outside 2^-UNITS_RANGE .. 2^UNITS_RANGE (otgrid._units).


def _cost_units(prob: _Problem, lam_max: np.ndarray | None = None) -> np.ndarray:
    """Per problem, the power of two in which L-BFGS measures the potentials:
    :func:`otgrid._units.unit_scale` of the cost bound, or (L2) of ``lam_max`` (the largest
    ``lambda`` of the stages) times the mean plan entry where that is larger."""
    size = np.asarray(prob.diameter, dtype=np.float64)
    if lam_max is not None:
        size = np.maximum(size, lam_max * prob.mass / (prob.x.shape[1] * prob.y.shape[1]))
    return unit_scales(size)


def _scales(w: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Diagonal preconditioner ``sqrt(mean(w) / w_i)`` (1 where ``w_i = 0``)."""
    mean = (mass / w.shape[1])[:, None]
    return np.where(w > 0, np.sqrt(mean / np.where(w > 0, w, 1.0)), 1.0)


class _Dual:
    """``F``, its change from a reference point, the gradient and the pseudo-plan's marginals.

    L2: the joint dual in ``(phi, psi)``, one pass per evaluation. KL: the semi-dual
    ``G(phi) = max_psi F(phi, psi)``, with ``psi`` in closed form (a column log-sum-exp), then a
    row pass; the columns of ``pi`` are exact and every exponential is normalised, so no
    evaluation overflows however small ``lambda`` (the joint KL dual overflows ``exp`` far from
    the optimum, and L-BFGS stalls there).
    """

    def __init__(self, ops, prob: _Problem, regularizer: str) -> None:
        self.ops, self.p, self.kl = ops, prob, regularizer == "kl"
        self.la, self.lb = log_weights(prob.a), log_weights(prob.b)
        self.passes = 0
        self.version = 0  # counts the reference points
        self.phr = self.psr = self.Fr = None
        # L2: whether the passes sum the change of F pairwise (see ACCURATE_BELOW)
        self.accurate = False

    def set_reference(self, phi: np.ndarray, psi: np.ndarray, F: np.ndarray | None = None
                      ) -> None:
        """Reference point of ``dF`` (KL: ``psi`` must be the closed form at ``phi``), with
        ``F`` there when known (L2: else the next evaluation sums the change pairwise)."""
        self.phr, self.psr = phi.copy(), psi.copy()
        self.Fr = None if F is None else F.copy()
        self.version += 1

    def __call__(self, phi: np.ndarray, psi: np.ndarray, lam: np.ndarray) -> dict[str, Any]:
        """Evaluate at ``phi`` and ``psi`` (KL: ``psi`` only shifts the column pass)."""
        p, inv = self.p, 1.0 / lam
        if self.kl:
            # psi_j = psi'_j + lam log(col_j(psi') / b_j) makes column j of pi exact
            lse_c, _ = self.ops.lse("cols", self.la + phi * inv[:, None] - 1.0, -psi, inv)
            dpsi = (psi - self.psr) + lam[:, None] * lse_c
            psi = psi + lam[:, None] * lse_c
            lse_r, mc = self.ops.lse("rows", self.lb - psi * inv[:, None] - 1.0, phi, inv,
                                     want_cost=True)
            row, col = p.a * np.exp(lse_r), p.b.copy()
            quad, dquad = lam * p.mass, np.zeros(p.B)  # sum(pi) = sum(b) exactly
            lin = (row * mc).sum(axis=1)
            self.passes += 2
            accurate = True
        else:
            dpsi = psi - self.psr
            moved = np.any(phi != self.phr, axis=1) | np.any(psi != self.psr, axis=1)
            accurate = self.accurate or (self.Fr is None and bool(moved.any()))
            row, col, quad, lin, dquad = self.ops.l2_dual(phi, psi, phi - self.phr, dpsi, p.a,
                                                          p.b, inv, accurate=accurate)
            self.passes += 1
        F = (p.a * phi).sum(axis=1) - (p.b * psi).sum(axis=1) - quad
        if accurate:
            dF = (p.a * (phi - self.phr)).sum(axis=1) - (p.b * dpsi).sum(axis=1) - dquad
        elif self.Fr is None:  # at the reference point
            dF = np.zeros(p.B)
        else:
            dF = np.where(moved, F - self.Fr, 0.0)
            scale = (np.abs(p.a * phi).sum(axis=1) + np.abs(p.b * psi).sum(axis=1) + quad
                     + np.abs(lin) + (np.abs(phi).max(axis=1) + np.abs(psi).max(axis=1))
                     * row.sum(axis=1))
            if np.any(moved & (np.abs(dF) < ACCURATE_BELOW * np.finfo(float).eps * scale)):
                self.accurate = True
                return self(phi, psi, lam)
        if not self.kl and self.Fr is None:
            self.Fr = F - dF
        err = (np.abs(p.a - row).sum(axis=1) + np.abs(col - p.b).sum(axis=1)) / p.mass
        return {"F": F, "dF": dF, "phi": phi, "psi": psi, "row": row, "col": col,
                "quad": quad, "lin": lin, "err": err}


class _Newton:
    """Newton directions of the L2 dual: the Laplacian of the active pairs, solved by PCG."""

    def __init__(self, ops, prob: _Problem, max_fraction: float) -> None:
        self.ops, self.p = ops, prob
        pairs = prob.B * prob.a.shape[1] * prob.b.shape[1]
        self.cap = min(NEWTON_MAX_ACTIVE, int(max_fraction * pairs))
        self.passes = 0

    def direction(self, val: dict[str, Any], lam: np.ndarray, done: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(dphi, dpsi, g . d)`` solving ``H d = grad F`` (zero for the ``done`` problems).

        None when more than ``self.cap`` pairs are active.
        """
        p = self.p
        B, n, m = p.B, p.a.shape[1], p.b.shape[1]
        act = self.ops.l2_active(val["phi"], val["psi"], self.cap)
        self.passes += 1 if act is None else 2
        if act is None:
            return None
        indptr, indices = act
        inv = 1.0 / lam
        ar = (p.a * inv[:, None]).ravel()
        bc = np.ascontiguousarray(p.b).ravel()
        # curvature of each node if all its pairs were active
        full = np.concatenate([(p.a * (p.mass * inv)[:, None]).ravel(),
                               (p.b * (p.mass * inv)[:, None]).ravel()])
        deg = np.empty(full.shape[0])
        compile_on_first_use(laplacian_diagonal, COMPILE_NOTE, indptr, indices, ar, bc, deg)
        laplacian_diagonal(indptr, indices, ar, bc, deg)
        # (a node of zero weight has no curvature and a zero gradient: any shift, no step)
        shift = np.where(deg > 0.0, NEWTON_SHIFT * full, np.where(full > 0.0, full, 1.0))
        ga, gb = p.a - val["row"], val["col"] - p.b
        ga[done] = 0.0
        gb[done] = 0.0
        g = np.concatenate([ga.ravel(), gb.ravel()])
        err = val["err"][~done]
        rtol = min(0.1, float(np.sqrt(err.max()))) if err.size else 0.1
        d = np.empty_like(g)
        args = (indptr, indices, ar, bc, deg, shift, g, rtol, NEWTON_CG_MAXITER, d)
        compile_on_first_use(laplacian_pcg, COMPILE_NOTE, *args)
        laplacian_pcg(*args)
        dphi, dpsi = d[:B * n].reshape(B, n), d[B * n:].reshape(B, m)
        gd = (ga * dphi).sum(axis=1) + (gb * dpsi).sum(axis=1)
        return dphi, dpsi, gd


def _backtrack(t: np.ndarray, gd: np.ndarray, dF: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Next step lengths: the maximiser of the quadratic through ``F(0)``, ``F'(0) = gd`` and
    ``F(t) - F(0) = dF``, kept in ``[0.1 t, 0.5 t]`` (unchanged where ``ok``)."""
    den = 2.0 * (gd * t - dF)
    tq = np.where(den > 0.0, gd * t * t / np.where(den > 0.0, den, 1.0), 0.5 * t)
    return np.where(ok, t, np.clip(tq, 0.1 * t, 0.5 * t))


def solve_smooth_dual(prob: _Problem, warm, *, reg: float, regularizer: str, tol: float,
                      max_iter: int, backend: str, q: float | None, memory: int,
                      callback: Callable[[RegularizedInfo], bool | None] | None,
                      n_samples: int, rng: Any, verbose: bool, t0: float,
                      method: str = "lbfgs") -> RegularizedResult:
    """Maximise the smooth dual (continuation over ``reg`` if ``q``) and package the result.

    ``method``: ``"lbfgs"``; ``"newton"`` (L2 only; stages it cannot handle run L-BFGS);
    ``"auto"`` (L2 only): Newton while at most ``NEWTON_AUTO_FRACTION`` of the pairs are
    active, L-BFGS for the rest of a stage where more are.
    """
    ops = make_ops(backend, prob.x, prob.y, prob.cost, many_passes=True)
    stages = _reg_schedule(prob, reg, q)
    run = _Run(prob, ops, warm, regularizer=regularizer, method=method, max_iter=max_iter,
               memory=memory, callback=callback, verbose=verbose, t0=t0,
               lam_max=np.max(stages, axis=0) if regularizer == "l2" else None)
    with ops.session(), blas_one_thread():
        run.solve(stages, tol)
    return _package(run, reg=reg, regularizer=regularizer, tol=tol, n_samples=n_samples,
                    rng=rng)


def _reg_schedule(prob: _Problem, reg: float, q: float | None) -> list[np.ndarray]:
    """The continuation stages' ``lambda`` per problem: ``diameter * q**k`` down to ``reg``."""
    stages: list[np.ndarray] = []
    if q is not None:
        k = 0
        while np.any(prob.diameter * q**k > reg):
            stages.append(np.maximum(prob.diameter * q**k, reg))
            k += 1
    stages.append(np.full(prob.B, reg))
    return stages


class _Run:
    """One solve's operators, scales and running state, and its phases (stages, iterations).

    ``psi``: the last accepted psi (KL: the shift of the column pass); ``val``: its
    evaluation; ``cache``: the last evaluation (``z``, ``val`` and the reference's ``ref``).
    """

    def __init__(self, prob: _Problem, ops, warm, *, regularizer: str, method: str,
                 max_iter: int, memory: int,
                 callback: Callable[[RegularizedInfo], bool | None] | None, verbose: bool,
                 t0: float, lam_max: np.ndarray | None) -> None:
        B, n, m = prob.B, prob.x.shape[1], prob.y.shape[1]
        self.prob, self.ops, self.B, self.n = prob, ops, B, n
        self.newton = None
        if method in ("newton", "auto"):
            self.newton = _Newton(ops, prob, 1.0 if method == "newton" else NEWTON_AUTO_FRACTION)
        self.counts = {"newton": 0, "lbfgs": 0}
        self.dual = _Dual(ops, prob, regularizer)
        self.kl = self.dual.kl
        # L-BFGS's variables in units of the potentials' size where that is far from 1 (a
        # power of two: exact), so that its first steps have the potentials' scale
        self.units = _cost_units(prob, lam_max)
        u = self.units[:, None]
        self.sa, self.sb = _scales(prob.a, prob.mass) * u, _scales(prob.b, prob.mass) * u
        self.phi, self.psi = ((warm[0], -warm[1]) if warm is not None
                              else (np.zeros((B, n)), np.zeros((B, m))))
        self.max_iter, self.memory, self.callback = max_iter, memory, callback
        self.verbose, self.t0 = verbose, t0
        self.hist: list[tuple] = []
        self.it, self.stop, self.last_print = 0, None, time.perf_counter()
        self.val: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}
        self.status, self.scipy_message = "max_iter", ""
        self.lam = self.stage_tol = self.z = None

    def solve(self, stages: list[np.ndarray], tol: float) -> None:
        """The continuation stages in turn, until the last, a callback stop or ``max_iter``."""
        self.z = self.pack(self.phi, self.psi)
        for s, lam in enumerate(stages):
            final = s == len(stages) - 1
            stage_tol = tol if final else max(tol, STAGE_TOL)
            self.start_stage(lam, stage_tol)
            if self.newton is not None and self.stop is None:
                self.newton_stage(lam, stage_tol)
                self.z = self.pack(self.val["phi"], self.val["psi"])
            self.lbfgs_stage(lam)
            if self.stop == "callback":
                self.status = "callback"
                break
            if self.stop != "tol" and (final or self.status == "max_iter"):
                break

    def start_stage(self, lam: np.ndarray, stage_tol: float) -> None:
        """A new ``lambda``: reference point at ``z``, its evaluation accepted and recorded."""
        self.stop, self.lam, self.stage_tol = None, lam, stage_tol
        self.dual.accurate = False  # a new lambda: large changes of F again
        B, n, sa, sb, z = self.B, self.n, self.sa, self.sb, self.z
        self.dual.set_reference(z.reshape(B, -1)[:, :n] * sa, self.psi if self.kl
                                else z.reshape(B, -1)[:, n:] * sb)
        self.fun(z, lam)
        self.accept()
        self.record(lam, stage_tol)

    def pack(self, ph: np.ndarray, ps: np.ndarray) -> np.ndarray:
        """L-BFGS's variable: the scaled potentials (KL: ``phi`` alone), flattened."""
        sa, sb = self.sa, self.sb
        return (ph / sa if self.kl else np.concatenate([ph / sa, ps / sb], axis=1)).ravel()

    def fun(self, z: np.ndarray, lam: np.ndarray) -> tuple[float, np.ndarray]:
        """L-BFGS's objective ``-(F - F(ref))`` and its gradient at ``z`` (cached)."""
        B, n, kl, cache = self.B, self.n, self.kl, self.cache
        zz = z.reshape(B, -1)
        ph, ps = zz[:, :n] * self.sa, (self.psi if kl else zz[:, n:] * self.sb)
        old = cache.get("val")
        if (not kl and old is not None and cache["ref"] == self.dual.version
                and np.array_equal(ph, old["phi"]) and np.array_equal(ps, old["psi"])):
            val = old  # the point just evaluated, same reference (L-BFGS's first call)
        else:
            val = self.dual(ph, ps, lam)
        cache.update(z=z.copy(), val=val, ref=self.dual.version)
        gphi = (self.prob.a - val["row"]) * self.sa
        grad = gphi if kl else np.concatenate([gphi, (val["col"] - self.prob.b) * self.sb],
                                              axis=1)
        return (-float((val["dF"] / self.units).sum()),
                -(grad / self.units[:, None]).ravel())

    def rebase(self) -> None:
        """The reference of ``dF`` moves to the accepted iterate; where that is the cached
        evaluation, it stays valid (L2: ``dF = 0`` there), so L-BFGS's first call costs no
        pass."""
        val = self.val
        self.dual.set_reference(val["phi"], val["psi"], val["F"])
        if not self.kl and self.cache.get("val") is val:
            self.cache.update(val={**val, "dF": np.zeros(self.B)}, ref=self.dual.version)

    def accept(self) -> None:
        """The cached evaluation is an accepted iterate (KL: it shifts the next passes)."""
        self.val = self.cache["val"]
        self.psi = self.cache["val"]["psi"]

    def record(self, lam: np.ndarray, stage_tol: float) -> None:
        """History, progress line, user callback and stopping test of the accepted iterate."""
        val, prob = self.val, self.prob
        now = solve_clock() - self.t0
        err = val["err"]
        self.hist.append((self.it, float(lam.max()), err.copy(), val["F"].copy(), now, False))
        lam_user = float(prob.to_user(lam.max()))
        if self.verbose and time.perf_counter() - self.last_print >= 1.0:
            self.last_print = time.perf_counter()
            print(f"[otgrid.smooth_ot] iter {self.it:6d}  reg {lam_user:.3e}  marginal "
                  f"error {err.max():.3e}", flush=True)
        if self.callback is not None and self.callback(RegularizedInfo(
                self.it, lam_user, _info_value(err, prob.batched),
                _info_value(prob.to_user(val["F"]), prob.batched), now)):
            self.stop = "callback"
        elif np.all(err <= stage_tol):
            self.stop = "tol"

    def cb(self, intermediate_result) -> None:
        """Per L-BFGS iteration: history, user callback, stopping test (the exact error)."""
        self.it += 1
        self.counts["lbfgs"] += 1
        zk = intermediate_result.x
        if not np.array_equal(zk, self.cache["z"]):
            self.fun(zk, self.lam)
        self.accept()
        self.record(self.lam, self.stage_tol)
        if self.stop is not None:
            raise StopIteration

    def newton_stage(self, lam: np.ndarray, stage_tol: float) -> str:
        """Newton iterations at ``lam``: "stop" (tol, callback), "max_iter" or "handover"."""
        newton, verbose = self.newton, self.verbose
        while self.stop is None:
            if self.it >= self.max_iter:
                return "max_iter"
            val = self.val
            done = val["err"] <= stage_tol
            step = newton.direction(val, lam, done)
            if step is None:
                if verbose:
                    print(f"[otgrid.smooth_ot] more than {newton.cap} active pairs: L-BFGS for "
                          "this stage", flush=True)
                return "handover"
            new = self.line_search(val, step, lam)
            if new is None:
                if verbose:
                    print("[otgrid.smooth_ot] Newton line search failed: L-BFGS for this stage",
                          flush=True)
                return "handover"
            self.cache["val"] = new
            self.accept()
            self.it += 1
            self.counts["newton"] += 1
            self.record(lam, stage_tol)
        return "stop"

    def line_search(self, val: dict[str, Any], step: tuple[np.ndarray, np.ndarray, np.ndarray],
                    lam: np.ndarray) -> dict[str, Any] | None:
        """Armijo backtracking along the Newton ``step`` from ``val`` (the new reference
        point): the accepted evaluation, or None after ``NEWTON_MAX_BACKTRACK`` tries."""
        dphi, dpsi, gd = step
        phi0, psi0 = val["phi"], val["psi"]
        self.dual.set_reference(phi0, psi0, val["F"])
        t = np.ones(self.B)
        for _ in range(NEWTON_MAX_BACKTRACK):
            new = self.dual(phi0 + t[:, None] * dphi, psi0 + t[:, None] * dpsi, lam)
            ok = new["dF"] >= NEWTON_ARMIJO * t * gd
            if ok.all():
                return new
            t = _backtrack(t, gd, new["dF"], ok)
        return None

    def lbfgs_stage(self, lam: np.ndarray) -> None:
        """L-BFGS runs at ``lam``, each from a new reference point, until a stop, ``max_iter``
        or a restart that does not divide the marginal error by ``1 / RESTART_GAIN``."""
        while self.stop is None:
            remaining = self.max_iter - self.it
            if remaining <= 0:
                self.status = "max_iter"
                break
            start_err = self.val["err"].max()
            self.lbfgs_run(lam, remaining)
            if self.stop is not None:
                break
            if self.it >= self.max_iter:
                self.status = "max_iter"
                break
            if not self.val["err"].max() < RESTART_GAIN * start_err:
                self.status = "stalled"
                break

    def lbfgs_run(self, lam: np.ndarray, remaining: int) -> None:
        """One L-BFGS-B run (at most ``remaining`` iterations) from the accepted iterate; its
        final point is accepted when its error is no larger, and ``z`` follows."""
        self.rebase()
        res = minimize(self.fun, self.z, args=(lam,), jac=True, method="L-BFGS-B",
                       callback=self.cb,
                       options={"maxiter": remaining, "maxfun": 4 * remaining + 20,
                                "maxcor": self.memory, "gtol": 0.0, "ftol": 0.0})
        self.scipy_message = str(res.message)
        if not np.array_equal(res.x, self.cache["z"]):
            self.fun(res.x, lam)
            if self.cache["val"]["err"].max() <= self.val["err"].max():
                self.accept()
        self.z = self.pack(self.val["phi"], self.val["psi"])


def _package(run: _Run, *, reg: float, regularizer: str, tol: float, n_samples: int,
             rng: Any) -> RegularizedResult:
    """Normalised potentials, primal objective, termination statistic and status message of
    the last accepted iterate, packaged by :func:`_finish`."""
    prob, val, lam = run.prob, run.val, run.lam
    f, g = _normalise(val["phi"], -val["psi"], prob)
    row, col = val["row"], val["col"]
    primal, mfun = _primal(run.kl, val, f, -g, lam)
    stat = _statistic(run.ops, prob, f, g, mfun, n_samples, rng)
    fix = "increase max_iter, increase reg, or loosen tol."
    if run.status == "stalled":
        fix = (f"L-BFGS made no further progress (scipy: {run.scipy_message}); the marginal "
               "error is at its rounding level for this reg: loosen tol or increase reg.")
    if run.verbose:
        print(f"[otgrid.smooth_ot] {run.status}: marginal error {val['err'].max():.3e} after "
              f"{run.it} iterations", flush=True)
    newton = run.newton
    # warn_stack: _finish, _package, solve_smooth_dual, smooth_ot, the user's call
    return _finish(prob, f=f, g=g, r=row, c=col, transport=val["lin"], objective=val["F"],
                   primal=primal, stat=stat, iterations=run.it,
                   passes=run.dual.passes + (newton.passes if newton is not None else 0),
                   status=run.status, tol=tol, hist=run.hist, t0=run.t0, backend=run.ops.name,
                   method=_method_name(run.counts), regularizer=regularizer, reg=reg, fix=fix,
                   warn_stack=5)


def _primal(kl: bool, val: dict[str, Any], phi: np.ndarray, psi: np.ndarray, lam: np.ndarray
            ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The primal objective at the pseudo-plan of ``val`` and the plan's density as a function
    of ``f_i + g_j - c_ij`` (for the termination statistic)."""
    if kl:
        row, col = val["row"], val["col"]
        primal = (row * phi).sum(axis=1) - (col * psi).sum(axis=1) - lam * row.sum(axis=1)

        def mfun(v):
            with np.errstate(over="ignore"):
                return np.exp(v / lam[:, None] - 1.0)
    else:
        primal = val["lin"] + val["quad"]

        def mfun(v):
            return np.maximum(v, 0.0) / lam[:, None]
    return primal, mfun


def _method_name(counts: dict[str, int]) -> str:
    """``"lbfgs"``, ``"newton"`` or ``"newton+lbfgs"``: the methods that ran iterations."""
    if not counts["newton"]:
        return "lbfgs"
    return "newton+lbfgs" if counts["lbfgs"] else "newton"

