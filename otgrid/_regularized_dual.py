"""L-BFGS driver of :func:`otgrid.regularized.smooth_ot` (the dual of Sanjabi et al., Lemma 4.1).

The dual ``F`` and its gradient come from the backend's passes over the pairs
(:mod:`otgrid._regularized_ops`); ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` runs
on ``-(F - F(ref))``, the change of ``F`` from a reference point, summed pairwise so that it is
accurate to the rounding of the change itself rather than of ``F``: near the optimum the
decrease L-BFGS must see (``~ lambda * error^2``) is far below the rounding of ``F``, and
L-BFGS would stall at a marginal error of about ``sqrt(eps_machine / lambda)``. When L-BFGS
stops short of the tolerance the reference moves to the current point and L-BFGS restarts.

A batch of problems is solved as one separable problem (one kernel call evaluates all of them),
stopping when every problem meets the tolerance.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize

from otgrid._regularized_base import (
    RegularizedInfo,
    RegularizedResult,
    _finish,
    _info_value,
    _log_weights,
    _normalise,
    _Problem,
    _statistic,
)
from otgrid._regularized_ops import make_ops

__all__ = ["solve_smooth_dual"]

# Marginal error at which an intermediate continuation stage hands over to the next one.
STAGE_TOL = 1e-3
# A restart of L-BFGS (new reference point) must divide the marginal error by this much, or
# the solve is declared stalled.
RESTART_GAIN = 0.5


def _blas_one_thread() -> contextlib.AbstractContextManager:
    """One BLAS thread while L-BFGS runs, when ``threadpoolctl`` is installed.

    L-BFGS-B's own linear algebra works on vectors of length n + m, where BLAS threads only
    cost: on a 2-core machine with other work running, OpenBLAS's threads made each L-BFGS-B
    iteration 70 times slower (4.3 ms instead of 0.06 ms at n + m = 2000).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it, BLAS keeps its own thread count
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


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
        self.la, self.lb = _log_weights(prob.a), _log_weights(prob.b)
        self.passes = 0
        self.phr = self.psr = None

    def set_reference(self, phi: np.ndarray, psi: np.ndarray) -> None:
        """Reference point of ``dF`` (KL: ``psi`` must be the closed form at ``phi``)."""
        self.phr, self.psr = phi.copy(), psi.copy()

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
        else:
            dpsi = psi - self.psr
            row, col, quad, lin, dquad = self.ops.l2_dual(phi, psi, phi - self.phr, dpsi, p.a,
                                                          p.b, inv)
            self.passes += 1
        F = (p.a * phi).sum(axis=1) - (p.b * psi).sum(axis=1) - quad
        dF = (p.a * (phi - self.phr)).sum(axis=1) - (p.b * dpsi).sum(axis=1) - dquad
        err = (np.abs(p.a - row).sum(axis=1) + np.abs(col - p.b).sum(axis=1)) / p.mass
        return {"F": F, "dF": dF, "phi": phi, "psi": psi, "row": row, "col": col,
                "quad": quad, "lin": lin, "err": err}


def solve_smooth_dual(prob: _Problem, warm, *, reg: float, regularizer: str, tol: float,
                      max_iter: int, backend: str, q: float | None, memory: int,
                      callback: Callable[[RegularizedInfo], bool | None] | None,
                      n_samples: int, rng: Any, verbose: bool, t0: float) -> RegularizedResult:
    """Maximise the smooth dual (continuation over ``reg`` if ``q``) and package the result."""
    B, n, m = prob.B, prob.x.shape[1], prob.y.shape[1]
    ops = make_ops(backend, prob.x, prob.y, prob.cost, many_passes=True)
    dual = _Dual(ops, prob, regularizer)
    kl = dual.kl
    sa, sb = _scales(prob.a, prob.mass), _scales(prob.b, prob.mass)
    phi, psi = (warm[0], -warm[1]) if warm is not None else (np.zeros((B, n)), np.zeros((B, m)))
    stages: list[np.ndarray] = []
    if q is not None:
        k = 0
        while np.any(prob.diameter * q**k > reg):
            stages.append(np.maximum(prob.diameter * q**k, reg))
            k += 1
    stages.append(np.full(B, reg))

    hist: list[tuple] = []
    # "psi": the last accepted psi (KL: the shift of the column pass); "val": its evaluation
    state: dict[str, Any] = {"it": 0, "stop": None, "last_print": t0, "psi": psi}
    cache: dict[str, Any] = {}
    status, scipy_message = "max_iter", ""

    def pack(ph: np.ndarray, ps: np.ndarray) -> np.ndarray:
        return (ph / sa if kl else np.concatenate([ph / sa, ps / sb], axis=1)).ravel()

    def fun(z: np.ndarray, lam: np.ndarray) -> tuple[float, np.ndarray]:
        zz = z.reshape(B, -1)
        ps = state["psi"] if kl else zz[:, n:] * sb
        val = dual(zz[:, :n] * sa, ps, lam)
        cache.update(z=z.copy(), val=val)
        gphi = (prob.a - val["row"]) * sa
        grad = gphi if kl else np.concatenate([gphi, (val["col"] - prob.b) * sb], axis=1)
        return -float(val["dF"].sum()), -grad.ravel()

    def accept() -> None:
        """The cached evaluation is an accepted iterate (KL: it shifts the next passes)."""
        state["val"] = cache["val"]
        state["psi"] = cache["val"]["psi"]

    def record(lam: np.ndarray, stage_tol: float) -> None:
        val = state["val"]
        now = time.perf_counter() - t0
        err = val["err"]
        hist.append((state["it"], float(lam.max()), err.copy(), val["F"].copy(), now, False))
        if verbose and time.perf_counter() - state["last_print"] >= 1.0:
            state["last_print"] = time.perf_counter()
            print(f"[otgrid.smooth_ot] iter {state['it']:6d}  reg {lam.max():.3e}  marginal "
                  f"error {err.max():.3e}", flush=True)
        if callback is not None and callback(RegularizedInfo(
                state["it"], float(lam.max()), _info_value(err, prob.batched),
                _info_value(val["F"], prob.batched), now)):
            state["stop"] = "callback"
        elif np.all(err <= stage_tol):
            state["stop"] = "tol"

    def cb(intermediate_result) -> None:
        """Per L-BFGS iteration: history, user callback, stopping test (the exact error)."""
        state["it"] += 1
        zk = intermediate_result.x
        if not np.array_equal(zk, cache["z"]):
            fun(zk, state["lam"])
        accept()
        record(state["lam"], state["stage_tol"])
        if state["stop"] is not None:
            raise StopIteration

    with ops.session(), _blas_one_thread():
        z = pack(phi, psi)
        lam = stages[0]
        for s, lam in enumerate(stages):
            final = s == len(stages) - 1
            stage_tol = tol if final else max(tol, STAGE_TOL)
            state.update(stop=None, lam=lam, stage_tol=stage_tol)
            dual.set_reference(z.reshape(B, -1)[:, :n] * sa, state["psi"] if kl
                               else z.reshape(B, -1)[:, n:] * sb)
            fun(z, lam)
            accept()
            record(lam, stage_tol)
            while state["stop"] is None:
                remaining = max_iter - state["it"]
                if remaining <= 0:
                    status = "max_iter"
                    break
                start_err = state["val"]["err"].max()
                dual.set_reference(state["val"]["phi"], state["val"]["psi"])
                res = minimize(fun, z, args=(lam,), jac=True, method="L-BFGS-B", callback=cb,
                               options={"maxiter": remaining, "maxfun": 4 * remaining + 20,
                                        "maxcor": memory, "gtol": 0.0, "ftol": 0.0})
                scipy_message = str(res.message)
                if not np.array_equal(res.x, cache["z"]):
                    fun(res.x, lam)
                    if cache["val"]["err"].max() <= state["val"]["err"].max():
                        accept()
                z = pack(state["val"]["phi"], state["val"]["psi"])
                if state["stop"] is not None:
                    break
                if state["it"] >= max_iter:
                    status = "max_iter"
                    break
                if not state["val"]["err"].max() < RESTART_GAIN * start_err:
                    status = "stalled"
                    break
            if state["stop"] == "callback":
                status = "callback"
                break
            if state["stop"] != "tol" and (final or status == "max_iter"):
                break
        val = state["val"]

    f, g = _normalise(val["phi"], -val["psi"], prob)
    phi, psi = f, -g
    row, col = val["row"], val["col"]
    if kl:
        primal = (row * phi).sum(axis=1) - (col * psi).sum(axis=1) - lam * row.sum(axis=1)

        def mfun(v):
            with np.errstate(over="ignore"):
                return np.exp(v / lam[:, None] - 1.0)
    else:
        primal = val["lin"] + val["quad"]

        def mfun(v):
            return np.maximum(v, 0.0) / lam[:, None]
    stat = _statistic(ops, prob, f, g, mfun, n_samples, rng)
    fix = "increase max_iter, increase reg, or loosen tol."
    if status == "stalled":
        fix = (f"L-BFGS made no further progress (scipy: {scipy_message}); the marginal error "
               "is at its rounding level for this reg: loosen tol or increase reg.")
    if verbose:
        print(f"[otgrid.smooth_ot] {status}: marginal error {val['err'].max():.3e} after "
              f"{state['it']} iterations", flush=True)
    return _finish(prob, f=f, g=g, r=row, c=col, transport=val["lin"], objective=val["F"],
                   primal=primal, stat=stat, iterations=state["it"], passes=dual.passes,
                   status=status, tol=tol, hist=hist, t0=t0, backend=ops.name,
                   method="lbfgs", regularizer=regularizer, reg=reg, fix=fix, warn_stack=4)
