"""The smoothed duals of Sanjabi et al. (2018): :func:`smooth_ot` for point clouds.

Validates the input, builds the problem and hands it to
:func:`otgrid.pointcloud.smooth_dual.solve_smooth_dual` (L-BFGS, and semismooth Newton on the
active pairs for sparse L2 plans). Conventions are those of :mod:`otgrid.pointcloud.sinkhorn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from otgrid._threads import solve_clock
from otgrid._validation import check_choice, check_positive_int
from otgrid.pointcloud.problem import (
    REGULARIZERS,
    Backend,
    Cost,
    Regularizer,
    _check_common,
    _check_l2_range,
    _check_reg_scale,
    _check_scaling,
    _prepare,
    _warm,
)
from otgrid.pointcloud.result import RegularizedInfo, RegularizedResult
from otgrid.pointcloud.smooth_dual import solve_smooth_dual

__all__ = ["smooth_ot"]

Method = Literal["auto", "newton", "lbfgs"]
METHODS: tuple[str, ...] = ("auto", "newton", "lbfgs")


def smooth_ot(
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    reg: float,
    regularizer: Regularizer = "l2",
    cost: Cost = "euclidean",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    backend: Backend = "auto",
    dtype: Any = np.float64,
    warm_start: RegularizedResult | tuple[Any, Any] | None = None,
    reg_scaling: bool | float | None = None,
    method: Method = "auto",
    memory: int = 10,
    callback: Callable[[RegularizedInfo], bool | None] | None = None,
    n_samples: int = 1000,
    rng: Any = 0,
    verbose: bool = False,
) -> RegularizedResult:
    """Regularized optimal transport on the smooth dual of Sanjabi et al. (2018).

    Maximises the unconstrained concave dual of Lemma 4.1,

    .. math::

        F(\\phi, \\psi) = \\sum_i a_i \\phi_i - \\sum_j b_j \\psi_j
        - \\sum_{i,j} a_i b_j f_\\lambda(\\phi_i - \\psi_j - c_{ij}),
        \\qquad
        f_\\lambda(v) = \\frac{(v_+)^2}{2\\lambda} \\ (\\text{L2}),\\quad
        \\frac{\\lambda}{e} e^{v/\\lambda} \\ (\\text{KL}),

    the dual of ``min_P <P, C> + lambda I(P)`` over the transport plans, with
    ``I(P) = sum_ij P_ij^2 / (2 a_i b_j)`` (L2) or ``sum_ij P_ij log(P_ij / (a_i b_j))`` (KL).
    The pseudo-plan of eq. (11) is ``pi_ij = a_i b_j M(V_ij)``, ``V_ij = phi_i - psi_j - c_ij``,
    ``M(v) = v_+ / lambda`` or ``exp(v / lambda) / e``.

    Parameters
    ----------
    x, y, a, b
        As in :func:`sinkhorn` (points (n, d) and (m, d), or batches (B, n, d) and (B, m, d);
        weights with equal totals, uniform by default).
    reg : float
        ``lambda > 0``, in units of the cost; at least ``1e-9`` times the largest cost
        (``otgrid.pointcloud.problem.MIN_REG_RELATIVE``), below which float64 cannot
        resolve the regularization (``ValueError``).
    regularizer : {"l2", "kl"}, optional
        The strongly convex term ``I``. The L2 dual squares numbers of the size of the costs
        and of ``reg`` times the total mass, both measured in a power of two near the costs'
        size (so the costs are of order 1): ``reg`` over that unit, times the total mass, must
        stay below ``1e140`` (``otgrid.pointcloud.problem.L2_MAX_SCALE``; ``ValueError``
        beyond, where float64 squares overflow). The KL dual has no such limit.
    cost : {"euclidean", "sqeuclidean", "cityblock"}, optional
        As in :func:`sinkhorn`.
    tol : float, optional
        Stop when ``(||pi 1 - a||_1 + ||pi^T 1 - b||_1) / sum(a) <= tol``: the L1 norm of the
        gradient of ``F``, relative to the mass.
    max_iter : int, optional
        Limit on the Newton and L-BFGS iterations (over all continuation stages).
    backend, dtype, callback, n_samples, rng, verbose
        As in :func:`sinkhorn`.
    warm_start : RegularizedResult or (f, g), optional
        Potentials to start from (``phi = f``, ``psi = -g``).
    reg_scaling : bool or float, optional
        Continuation: solve for ``lambda_k = D q^k`` (``D`` a bound on the costs), each stage to
        a marginal error of 1e-3 and warm-starting the next, down to ``reg`` (``True``: q =
        0.1). It divides the iterations several times at small ``reg``. Default: on without
        ``warm_start``, off with it.
    method : {"auto", "newton", "lbfgs"}, optional
        ``"newton"`` (L2 only): semismooth Newton on the sparse Hessian of the active pairs
        (see Notes); ``"lbfgs"``: L-BFGS-B. ``"auto"``: for L2 with the ``"numpy"`` and
        ``"numba"`` backends, Newton iterations while at most a quarter of the pairs are
        active and L-BFGS for the rest of a stage where more are (there a Newton iteration
        costs several L-BFGS ones); L-BFGS otherwise (KL, whose Hessian is dense, and
        ``"cuda"``, where the active pairs would be listed on the host).
    memory : int, optional
        Number of correction pairs kept by L-BFGS (``maxcor``).

    Returns
    -------
    RegularizedResult
        ``f = phi`` and ``g = -psi`` (also as ``.phi``, ``.psi``), the dual objective
        ``F(phi, psi)``, the eq. (15) statistic (``termination_statistic``) next to the exact
        gradient norm (``grad_norm``) and marginal errors; the pseudo-plan as an operator.

    Notes
    -----
    ``F`` and its gradient ``(a - pi 1, -(b - pi^T 1))`` come from one pass over the pairs
    (L2: tiled sums of ``(V_ij)_+``; KL: a row and a column log-sum-exp pass).

    **Newton (L2).** ``-F`` is piecewise quadratic; its generalized Hessian is
    ``1 / lambda`` times the Laplacian of the bipartite graph of the active pairs
    (``V_ij > 0``), edge ``(i, j)`` weighing ``a_i b_j``: at small ``lambda`` only a few pairs
    per point are active and the Hessian is sparse. Each iteration lists the active pairs
    (two passes), solves the Newton system by conjugate gradients preconditioned with its
    diagonal (to a relative residual ``min(0.1, sqrt(error))``; a shift of 1e-10 of each
    node's full curvature makes it definite, and a node without active pairs gets its full
    curvature, a step of order ``lambda``), then backtracks until ``F`` increases by 1e-4 of
    the predicted amount (Armijo, on the pairwise-summed change of ``F``); a step of 1 is
    taken near the solution, where the convergence is quadratic (Lorenz, Manns, Meyer 2021).
    A stage with more than ``2^24`` active pairs (the sparse pattern takes 4 bytes per pair),
    or whose line search fails (near the rounding floor), continues with L-BFGS; the result's
    ``method`` is then ``"newton+lbfgs"``.

    **L-BFGS.** L-BFGS-B
    (``scipy.optimize.minimize``, ``jac=True``) runs on ``-F`` in the variables
    ``phi_i sqrt(a_i / mean(a))``, ``psi_j sqrt(b_j / mean(b))`` (a diagonal preconditioner:
    the curvature along ``phi_i`` is proportional to ``a_i``), divided by a power of two near
    the largest cost when that lies outside ``2^-20 .. 2^20`` (its first steps then have the
    potentials' size: the same clouds in any units converge alike). The solve stops on the exact
    marginal error, not on eq. (15): the statistic is a necessary condition (its expectation,
    ``sum(pi) / sum(a)^2``, is 1 at the optimum) reported for comparison with the paper.

    For KL the maximisation is over ``phi`` alone, ``psi`` being the closed-form maximiser
    (a column log-sum-exp): no evaluation overflows however small ``lambda``. L-BFGS sees the
    change of ``F`` since a reference point. Near the optimum it is summed pair by pair, which
    stays accurate when the change is far below the rounding of ``F`` itself; for L2, while
    every change is more than ``1e4`` times the rounding of ``F`` (a bound from the size of its
    terms), the passes compute ``F`` alone and take the difference, which costs about 0.6 of
    the pairwise pass. When L-BFGS stops short of ``tol`` the reference moves to the current
    point and L-BFGS restarts. This reaches marginal
    errors of about 1e-12 for L2; for KL about 1e-9 when ``lambda`` is at least 1e-3 of the
    largest cost, and 1e-8 to 5e-8 below that (measured on random clouds of 300 to 1500
    points; use :func:`sinkhorn` for tighter entropic solutions); below that the status is
    ``"stalled"``. With ``threadpoolctl`` installed,
    BLAS runs on one thread during the solve (L-BFGS-B's vectors are short).

    **POT's convention.** ``ot.smooth.smooth_ot_dual(a, b, M, reg_POT, reg_type="l2")`` uses
    ``reg_POT / 2 * ||P||_2^2``; for uniform weights ``a_i b_j = 1 / (n m)`` this is our L2
    term with ``reg_POT = lambda * n * m`` (the plans agree; POT's ``alpha = phi`` and
    ``beta = -psi``). For non-uniform weights there is no exact conversion (our term weights
    ``P_ij^2`` by ``1 / (a_i b_j)``). The KL dual has the plan of :func:`sinkhorn` with
    ``eps = lambda``; its potentials satisfy ``f_smooth + g_smooth - lambda = f + g``.

    References
    ----------
    M. Sanjabi, J. Ba, M. Razaviyayn, J. D. Lee, "Solving approximate Wasserstein GANs to
    stationarity", arXiv:1802.08249 (2018) (Lemma 4.1, eqs. 11 and 15).
    M. Blondel, V. Seguy, A. Rolet, "Smooth and sparse optimal transport", AISTATS 2018.
    D. A. Lorenz, P. Manns, C. Meyer, "Quadratically regularized optimal transport", Applied
    Mathematics & Optimization 83 (2021) (semismooth Newton for the L2 dual).

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.pointcloud import smooth_ot
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + [2.0, 1.0]
    >>> res = smooth_ot(x, y, reg=0.05, regularizer="l2")
    >>> res.converged, res.marginal_error <= 1e-6
    (True, True)
    >>> bool(abs(res.termination_statistic - 1.0) < 0.2)     # eq. (15): close to 1
    True
    """
    t0 = solve_clock()
    reg, tol, max_iter, backend = _check_common(reg, cost, tol, max_iter, backend, callback)
    check_choice(regularizer, "regularizer", REGULARIZERS)
    memory = check_positive_int(memory, "memory")
    n_samples = check_positive_int(n_samples, "n_samples")
    check_choice(method, "method", METHODS)
    if method == "newton" and regularizer != "l2":
        raise ValueError("method='newton' is for regularizer='l2' (the KL dual's Hessian is "
                         "dense); use method='lbfgs' or 'auto'.")
    if method == "auto" and (regularizer != "l2" or backend == "cuda"):
        method = "lbfgs"
    prob = _prepare(x, y, a, b, cost, dtype)
    reg = _check_reg_scale(reg, prob)  # in the solver's units, as the costs (see _Problem)
    if regularizer == "l2":
        _check_l2_range(reg, prob)
    warm = _warm(warm_start, prob)
    q = _check_scaling(reg_scaling, "reg_scaling", 0.1, warm is not None)
    return solve_smooth_dual(prob, warm, reg=reg, regularizer=regularizer, tol=tol,
                             max_iter=max_iter, backend=backend, q=q, memory=memory,
                             callback=callback, n_samples=n_samples, rng=rng, verbose=verbose,
                             t0=t0, method=method)
