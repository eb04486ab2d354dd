"""Result types of the point-cloud solvers: potentials, costs, diagnostics, the implicit plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from otgrid._units import cloud_units
from otgrid._validation import as_finite_array, check_positive_int
from otgrid.pointcloud.backends import make_ops
from otgrid.pointcloud.ops_numpy import cost_degree, log_weights

__all__ = ["PLAN_MAX_BYTES", "RegularizedHistory", "RegularizedInfo", "RegularizedResult"]

# Largest dense plan RegularizedResult.plan() forms unless told otherwise.
PLAN_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class RegularizedHistory:
    """Progress of a solve, one entry per iteration.

    Attributes
    ----------
    iteration : ndarray of int, shape (k,)
    reg : ndarray of float, shape (k,)
        Regularization in force at that iteration (larger than the target during eps-scaling or
        reg-continuation; the largest over a batch).
    marginal_error : ndarray, shape (k,) or (k, B)
        ``(||P 1 - a||_1 + ||P^T 1 - b||_1) / sum(a)`` of the iterate at that regularization.
    objective : ndarray, shape (k,) or (k, B)
        Dual objective of the iterate at that regularization.
    seconds : ndarray of float, shape (k,)
        Wall time since the start of the solve (compilation excluded, as the result's).
    float32 : ndarray of bool, shape (k,)
        Whether that iteration's pass ran in float32 (mixed precision of :func:`sinkhorn`): its
        marginal error is then a float32 measurement.
    """

    iteration: np.ndarray
    reg: np.ndarray
    marginal_error: np.ndarray
    objective: np.ndarray
    seconds: np.ndarray
    float32: np.ndarray

    def __len__(self) -> int:
        return len(self.iteration)


@dataclass(frozen=True)
class RegularizedInfo:
    """What a ``callback`` of :func:`sinkhorn` or :func:`smooth_ot` receives every iteration.

    Attributes
    ----------
    iteration : int
    reg : float
        Regularization in force (larger than the target during eps-scaling / continuation).
    marginal_error : float or ndarray of shape (B,)
    objective : float or ndarray of shape (B,)
        Dual objective of the iterate.
    seconds : float
    """

    iteration: int
    reg: float
    marginal_error: Any
    objective: Any
    seconds: float


@dataclass(frozen=True, eq=False)
class RegularizedResult:
    """Potentials, costs and diagnostics of a regularized transport problem.

    The (pseudo-)plan is ``P_ij = a_i b_j M(f_i + g_j - C_ij)`` with ``M(v) = exp(v / reg)``
    (:func:`sinkhorn`), ``exp(v / reg - 1)`` (:func:`smooth_ot`, ``"kl"``) or ``v_+ / reg``
    (:func:`smooth_ot`, ``"l2"``). Batched solves (inputs with a leading axis ``B``) give arrays
    with that leading axis where a single solve gives scalars.

    Attributes
    ----------
    f : ndarray, shape (n,) or (B, n)
        Potential of the source points ``x``. Potentials are defined up to ``(f + s, g - s)``;
        the returned pair is normalised so that ``<a, f> = <b, g>``.
    g : ndarray, shape (m,) or (B, m)
        Potential of the target points ``y``.
    transport_cost : float or ndarray
        ``<P, C> = sum_ij P_ij C_ij`` (what POT's ``sinkhorn2`` returns).
    objective : float or ndarray
        Dual objective at ``(f, g)``: a lower bound on the regularized optimal value (weak
        duality), equal to it at convergence. For :func:`sinkhorn`, ``<a, f> + <b, g> - reg (
        sum P - sum(a)^2)``; for :func:`smooth_ot`, ``F(phi, psi)`` of Lemma 4.1.
    primal_objective : float or ndarray
        ``<P, C> + reg I(P)`` of the returned (pseudo-)plan, ``I`` the regularizer (generalised
        KL to ``a b^T`` for Sinkhorn, ``sum P^2 / (2 a b)`` or ``sum P log(P / (a b))`` for the
        smooth dual). It equals ``objective`` when the marginals are exact.
    marginal_error : float or ndarray
        ``(||P 1 - a||_1 + ||P^T 1 - b||_1) / sum(a)``: the stopping criterion.
    marginal_errors : tuple of (float or ndarray)
        The two terms: ``(||P 1 - a||_1 / sum(a), ||P^T 1 - b||_1 / sum(a))``.
    grad_norm : float or ndarray
        Euclidean norm of the gradient of the dual, ``||(a - P 1, b - P^T 1)||_2``.
    termination_statistic : float or ndarray
        Sanjabi et al. eq. (15): the mean of ``m_k = M(f_i + g_j - C_ij)`` over ``n_samples``
        pairs ``(i, j)`` drawn independently from ``a`` and ``b``; close to 1 at the optimum.
    plan_mass : float or ndarray
        ``sum_ij P_ij``, the exact expectation of the statistic times ``sum(a)^2``.
    iterations : int
        Iterations run (Sinkhorn: pairs of row and column updates, eps-scaling and Newton
        steps included; L-BFGS: its iterations, summed over continuation stages and restarts).
        A batch runs all its problems through the same iterations.
    passes : int
        Passes over the ``n x m`` pairs (the unit of work; the multiscale start of
        :func:`sinkhorn` counts as its share of a pass, rounded up).
    converged : bool
        Whether ``marginal_error <= tol`` (for every problem of a batch).
    status : {"converged", "max_iter", "callback", "stalled"}
        Why the solve stopped (``"stalled"``: L-BFGS could not make progress any more).
    message : str
        Human-readable status.
    history : RegularizedHistory
    seconds : float
        Wall time of the solve, excluding the compilation of the Numba kernels on a first run
        in a fresh environment (logged as "compiling kernels (first run only)" on the
        ``otgrid`` logger; each kernel is compiled at its first use, with the clock stopped).
    backend : {"numpy", "numba", "cuda"}
    method : {"sinkhorn", "lbfgs", "newton", "newton+lbfgs"}
        The algorithm (``smooth_ot``: ``"newton+lbfgs"`` when L-BFGS ran some of the
        iterations of a Newton solve).
    regularizer : {"kl", "l2"}
    reg : float
    cost : {"euclidean", "sqeuclidean", "cityblock"}
    tol : float
    dtype : numpy.dtype
    x, y : ndarray, shape (n, d) and (m, d), or (B, n, d) and (B, m, d)
        The points, in ``dtype``.
    a, b : ndarray, shape (n,) and (m,), or (B, n) and (B, m)
        The weights used (``b`` rescaled to the total of ``a``).
    float32_passes : int
        How many of the ``passes`` computed their pair arithmetic in float32 (the
        mixed-precision iterations of :func:`sinkhorn`; 0 otherwise). The marginal errors
        these iterations put into ``history`` are float32 measurements; the solve stops, and
        every number above is computed, on float64 passes.
    """

    f: np.ndarray = field(repr=False)
    g: np.ndarray = field(repr=False)
    transport_cost: Any
    objective: Any
    primal_objective: Any
    marginal_error: Any
    marginal_errors: tuple
    grad_norm: Any
    termination_statistic: Any
    plan_mass: Any
    iterations: int
    passes: int
    converged: bool
    status: str
    message: str
    history: RegularizedHistory = field(repr=False)
    seconds: float
    backend: str
    method: str
    regularizer: str
    reg: float
    cost: str
    tol: float
    dtype: np.dtype
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    a: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    float32_passes: int = 0

    @property
    def batched(self) -> bool:
        """Whether the result holds a batch of problems (leading axis ``B``)."""
        return self.x.ndim == 3

    @property
    def phi(self) -> np.ndarray:
        """``phi = f`` in the notation of Sanjabi et al. (``V = phi_i - psi_j - c_ij``)."""
        return self.f

    @property
    def psi(self) -> np.ndarray:
        """``psi = -g`` in the notation of Sanjabi et al."""
        return -self.g

    # -- the plan as an operator ---------------------------------------------------------------
    def _batch(self):
        """Float64 arrays with a batch axis, the points, potentials and ``reg`` in the units
        the solve used (:func:`otgrid._units.cloud_units`: the plan does not change, and no
        cost underflows or overflows): ``(x, y, f, g, a, b, reg)``."""
        x = self.x if self.batched else self.x[None]
        y = self.y if self.batched else self.y[None]
        f = self.f if self.batched else self.f[None]
        g = self.g if self.batched else self.g[None]
        a = self.a if self.batched else self.a[None]
        b = self.b if self.batched else self.b[None]
        x, y, e = cloud_units(x.astype(np.float64), y.astype(np.float64))
        k = -cost_degree(self.cost) * e
        return (x, y, np.ldexp(f.astype(np.float64), k), np.ldexp(g.astype(np.float64), k),
                a.astype(np.float64), b.astype(np.float64), float(np.ldexp(self.reg, k)))

    def _vectors(self, v: Any, name: str, length: int) -> tuple[np.ndarray, bool]:
        """``v`` as (B, k, length) float64, and whether it had a trailing ``k`` axis."""
        arr = as_finite_array(v, name)
        lead = (self.x.shape[0],) if self.batched else ()
        if arr.shape[:len(lead) + 1] != (*lead, length) or arr.ndim > len(lead) + 2:
            want = f"({', '.join(map(str, (*lead, length)))}) or " \
                   f"({', '.join(map(str, (*lead, length)))}, k)"
            raise ValueError(f"{name} must have shape {want}; got {arr.shape}.")
        matrix = arr.ndim == len(lead) + 2
        if not self.batched:
            arr = arr[None]
        if not matrix:
            arr = arr[..., None]
        return np.ascontiguousarray(np.swapaxes(arr, 1, 2)), matrix

    def _apply(self, vec: Any, transpose: bool) -> np.ndarray:
        x, y, f, g, a, b, reg = self._batch()
        name, length = ("u", x.shape[1]) if transpose else ("v", y.shape[1])
        V, matrix = self._vectors(vec, name, length)
        ops = make_ops(self.backend, x, y, self.cost)
        inv = np.full(x.shape[0], 1.0 / reg)
        side, (fa, gb, wa, wb) = ("cols", (g, f, b, a)) if transpose else ("rows", (f, g, a, b))
        with ops.session():
            if self.regularizer == "l2":
                out = ops.l2_apply(side, fa, -gb, wb, inv, V)
            else:
                off = 0.0 if self.method == "sinkhorn" else -1.0
                h = log_weights(wb) + gb / reg + off
                out = ops.exp_apply(side, h, fa, inv, V)
        out *= wa[..., None]
        if not matrix:
            out = out[..., 0]
        return (out if self.batched else out[0]).astype(self.dtype, copy=False)

    def apply_plan(self, v: Any) -> np.ndarray:
        """``P v`` without forming ``P`` (one pass over the pairs).

        Parameters
        ----------
        v : array_like, shape (m,) or (m, k) (batched: (B, m) or (B, m, k))

        Returns
        -------
        ndarray, shape (n,) or (n, k) (batched: (B, n) or (B, n, k))
            ``sum_j P_ij v_j``; e.g. ``apply_plan(y) / a[:, None]`` is the barycentric map.
        """
        return self._apply(v, transpose=False)

    def apply_plan_T(self, u: Any) -> np.ndarray:
        """``P^T u`` without forming ``P`` (one pass over the pairs).

        Parameters
        ----------
        u : array_like, shape (n,) or (n, k) (batched: (B, n) or (B, n, k))

        Returns
        -------
        ndarray, shape (m,) or (m, k) (batched: (B, m) or (B, m, k))
        """
        return self._apply(u, transpose=True)

    def plan(self, max_bytes: int | None = None) -> np.ndarray:
        """The dense (pseudo-)plan ``P``, when it fits in memory.

        Parameters
        ----------
        max_bytes : int, optional
            Largest plan (in bytes of ``dtype``) to build; 1 GiB by default.

        Returns
        -------
        ndarray, shape (n, m) or (B, n, m)

        Raises
        ------
        ValueError
            If the plan is larger than ``max_bytes``; use :meth:`apply_plan` instead.
        """
        limit = PLAN_MAX_BYTES if max_bytes is None else check_positive_int(max_bytes,
                                                                            "max_bytes")
        x, y, f, g, a, b, reg = self._batch()
        size = x.shape[0] * x.shape[1] * y.shape[1] * np.dtype(self.dtype).itemsize
        if size > limit:
            raise ValueError(
                f"the plan has {x.shape[0] * x.shape[1] * y.shape[1]:,} entries "
                f"({size / 2**30:.3g} GiB in {np.dtype(self.dtype).name}), more than "
                f"max_bytes={limit:,}; use apply_plan / apply_plan_T (no n x m storage) or "
                "pass a larger max_bytes.")
        out = np.empty((x.shape[0], x.shape[1], y.shape[1]), dtype=self.dtype)
        for k in range(x.shape[0]):
            v = f[k][:, None] + g[k][None, :] - cdist(x[k], y[k], metric=self.cost)
            if self.regularizer == "l2":
                mv = np.maximum(v, 0.0) / reg
            else:
                off = 0.0 if self.method == "sinkhorn" else -1.0
                with np.errstate(over="ignore"):
                    mv = np.exp(v / reg + off)
            out[k] = a[k][:, None] * b[k][None, :] * mv
        return out if self.batched else out[0]

    def __str__(self) -> str:
        def fmt(v):
            arr = np.asarray(v)
            return f"{float(arr):.10g}" if arr.ndim == 0 else f"max {arr.max():.3e}"

        return (f"{self.method} ({self.regularizer}, reg={self.reg:g}, {self.cost}): "
                f"<P, C> = {fmt(self.transport_cost)}, objective {fmt(self.objective)}, "
                f"marginal error {fmt(self.marginal_error)}, {self.iterations} iterations, "
                f"{self.seconds:.3g} s, backend {self.backend}, {self.status}")
