"""The grid operators of the Kantorovich–Rubinstein problem, written once in plain NumPy.

Forward differences ``D`` with a zero difference on the last index of every axis, their adjoint
``D^T`` (a negative divergence with zero-flux boundaries), the group soft-thresholds that are
the proximal maps of the flow cost, and the Neumann Poisson solve ``(D^T D)^+`` by a DCT-II.
These functions are the ``"numpy"`` backend and the oracle against which the compiled kernels
are tested. They work for any number of axes.

Arrays: a grid function has the grid's shape ``s``; a flow (a vector field on the grid) has
shape ``(ndim, *s)`` with ``y[k]`` the component along axis ``k``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import scipy.fft

__all__ = [
    "centred_flow",
    "dct_lines",
    "div_adjoint",
    "facr_pivots",
    "flow_norms",
    "grad",
    "laplacian_eigenvalues",
    "operator_norm_sq",
    "poisson_neumann",
    "shrink",
    "shrink_weighted_2",
    "tridiagonal_pivots",
]


def grad(f: np.ndarray, inv_dx: Sequence[float], out: np.ndarray | None = None) -> np.ndarray:
    """Forward differences ``(Df)_{i,k} = (f_{i+e_k} - f_i) / dx_k``, zero on the last index.

    Parameters
    ----------
    f : ndarray, shape s
        Grid function.
    inv_dx : sequence of float
        ``1 / dx_k`` per axis.
    out : ndarray, shape (ndim, \\*s), optional
        Output array.

    Returns
    -------
    ndarray, shape (ndim, \\*s)
    """
    ndim = f.ndim
    if out is None:
        out = np.empty((ndim, *f.shape), dtype=f.dtype)
    for k in range(ndim):
        g = out[k]
        lead = [slice(None)] * ndim
        lead[k] = slice(0, -1)
        last = [slice(None)] * ndim
        last[k] = slice(-1, None)
        g[tuple(lead)] = np.diff(f, axis=k) * f.dtype.type(inv_dx[k])
        g[tuple(last)] = 0
    return out


def div_adjoint(y: np.ndarray, inv_dx: Sequence[float]) -> np.ndarray:
    """The adjoint ``D^T y`` of :func:`grad` (minus a divergence with zero-flux boundaries).

    ``(D^T y)_i = sum_k (y_{k, i - e_k} - y_{k, i}) / dx_k`` where ``y_{k, -1} = 0`` and the
    component on the last index of axis ``k`` is ignored (treated as zero).

    Parameters
    ----------
    y : ndarray, shape (ndim, \\*s)
        Flow.
    inv_dx : sequence of float
        ``1 / dx_k`` per axis.

    Returns
    -------
    ndarray, shape s
    """
    ndim = y.ndim - 1
    out = np.zeros(y.shape[1:], dtype=y.dtype)
    for k in range(ndim):
        yk = np.moveaxis(y[k], k, 0)
        o = np.moveaxis(out, k, 0)
        h = y.dtype.type(inv_dx[k])
        o[:-1] -= yk[:-1] * h
        o[1:] += yk[:-1] * h
    return out


def flow_norms(y: np.ndarray, norm: str) -> np.ndarray:
    """Pointwise norm of a flow: ``|y_i|_2`` (``"euclidean"``) or ``|y_i|_1`` (``"cityblock"``).

    This is the dual norm of the critic constraint ``|(Df)_i| <= 1`` (``|.|_2`` resp.
    ``|.|_inf``).
    """
    if norm == "euclidean":
        return np.sqrt(np.sum(y * y, axis=0))
    return np.sum(np.abs(y), axis=0)


def grad_norms(g: np.ndarray, norm: str) -> np.ndarray:
    """Pointwise norm of a gradient field in the critic's constraint norm (2 or inf)."""
    if norm == "euclidean":
        return np.sqrt(np.sum(g * g, axis=0))
    return np.max(np.abs(g), axis=0)


def shrink(v: np.ndarray, t: float, norm: str,
           weights: Sequence[float] | None = None) -> np.ndarray:
    """Proximal map of ``t * sum_i |v_i|``: group (euclidean) or componentwise soft threshold.

    .. math:: \\operatorname{shrink}(v, t)_i = v_i \\max(0, 1 - t / |v_i|)

    With per-axis ``weights`` ``s_k``, the proximal map in the metric ``S^{-1}``,
    ``S = diag(s_k)`` on every cell: ``argmin_w t |w| + sum_k (w_k - v_k)^2 / (2 s_k)`` (the
    dual step of the iteration on anisotropic cells, see
    :attr:`otgrid.critic.backend_numpy.GridKernels.axis_weights`): the soft threshold
    ``t s_k`` per component (cityblock), :func:`shrink_weighted_2` (euclidean).

    Parameters
    ----------
    v : ndarray, shape (ndim, \\*s)
    t : float
        Threshold (> 0).
    norm : {"euclidean", "cityblock"}
    weights : sequence of float, optional
        ``s_k`` per axis, in ``(0, 1]`` (None: all 1, the plain map).
    """
    if weights is not None:
        a = np.asarray(weights, dtype=v.dtype).reshape((-1,) + (1,) * (v.ndim - 1)) * t
        if norm == "euclidean":
            return shrink_weighted_2(v, a)
        return np.sign(v) * np.maximum(np.abs(v) - a, 0)
    if norm == "euclidean":
        nv = np.sqrt(np.sum(v * v, axis=0))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(nv > t, 1 - t / nv, 0).astype(v.dtype, copy=False)
        return v * scale
    return np.sign(v) * np.maximum(np.abs(v) - v.dtype.type(t), 0)


def shrink_weighted_2(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``argmin_w |w|_2 + sum_k (w_k - v_k)^2 / (2 a_k)`` per cell (the group shrinkage in a
    diagonal metric; ``a_k = t s_k > 0``).

    The algorithm of ``otgrid.kernels.shrink.group_shrink_weighted`` (which the compiled
    kernels run cell by cell, in 2D), on every cell at once and in any number of axes: ``0``
    where ``sum_k (v_k / a_k)^2 <= 1``, else ``w_k = v_k t / (t + a_k)`` with ``t = |w|_2``
    the root of ``(sum_k v_k^2 / (t + a_k)^2)^{-1/2} = 1`` by Newton's method from below the
    root, until no cell's ``t`` rises.

    Parameters
    ----------
    v : ndarray, shape (ndim, \\*s)
    a : ndarray, shape (ndim, 1, ...)
        ``a_k`` per axis, broadcast over the cells.

    Returns
    -------
    ndarray, shape of ``v``
    """
    from otgrid.kernels.shrink import NEWTON_STEPS

    live = np.sum((v / a) ** 2, axis=0) > 1
    n2 = np.where(live, np.sum(v * v, axis=0), 1)  # (> 0 where live)
    n = np.sqrt(n2)
    t = np.maximum(np.maximum(n - np.sum(v * v * a, axis=0) / n2, n - a.max()), 0)
    for _ in range(NEWTON_STEPS):
        r = 1 / (t + a)
        q = (v * r) ** 2
        g = np.sum(q, axis=0)
        den = np.where(live, np.sum(q * r, axis=0), 1)  # (> 0 where live)
        nxt = np.where(live, t + g * (np.sqrt(g) - 1) / den, t)
        rises = nxt > t
        if not rises.any():
            break
        t = np.where(rises, nxt, t)
    return np.where(live, v * (t / (t + a)), 0).astype(v.dtype, copy=False)


def laplacian_eigenvalues(shape: Sequence[int], inv_dx: Sequence[float],
                          dtype: type = np.float64) -> np.ndarray:
    """Eigenvalues of ``D^T D`` (Neumann Laplacian) in the DCT-II basis, shape ``shape``.

    ``lambda_j = sum_k 4 sin^2(pi j_k / (2 N_k)) / dx_k^2``; ``lambda_0 = 0``.
    """
    lam = np.zeros(tuple(shape), dtype=np.float64)
    for k, (n, h) in enumerate(zip(shape, inv_dx, strict=True)):
        ax = 4.0 * np.sin(np.pi * np.arange(n) / (2 * n)) ** 2 * h * h
        sh = [1] * len(shape)
        sh[k] = n
        lam += ax.reshape(sh)
    return lam.astype(dtype, copy=False)


def operator_norm_sq(shape: Sequence[int], inv_dx: Sequence[float]) -> float:
    """``|D|^2``, the largest eigenvalue of ``D^T D`` (below ``4 sum_k 1/dx_k^2``)."""
    return float(sum(4.0 * np.sin(np.pi * (n - 1) / (2 * n)) ** 2 * h * h
                     for n, h in zip(shape, inv_dx, strict=True)))


@functools.cache
def _pocketfft_dct() -> object | None:
    """SciPy's compiled DCT (``scipy.fft._pocketfft.pypocketfft.dct``) when it takes the
    arguments of SciPy 1.11-1.17 and gives ``scipy.fft.dct``'s and ``idct``'s results bit for
    bit on a test array; None otherwise (then the public functions are called)."""
    try:
        from scipy.fft._pocketfft import pypocketfft
        from scipy.fft._pocketfft.helper import _normalization

        ortho = _normalization("ortho", True)
        a = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32)
        for t, ref in ((2, scipy.fft.dct), (3, scipy.fft.idct)):
            want = ref(a, type=2, norm="ortho", axis=-1)
            got = pypocketfft.dct(a, t, (2,), ortho, None, 1, True)
            if got.dtype != want.dtype or not np.array_equal(got, want):
                return None
    except Exception:  # any change of SciPy's private module: the public path
        return None
    return lambda x, t, axis, workers, out: pypocketfft.dct(x, t, (axis,), ortho, out,
                                                           workers, True)


def dct_lines(x: np.ndarray, inverse: bool, workers: int = 1,
              overwrite: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """Orthonormal DCT-II (``inverse``: its inverse, the DCT-III) along the last axis of the
    float array ``x`` (``overwrite``: ``x`` may be overwritten, and is the result on the direct
    path; ``out``: an array of ``x``'s shape and dtype, a strided view too, that receives the
    result, which is then ``out``).

    The same bits as ``scipy.fft.dct(x, type=2, norm="ortho", axis=-1)`` (``idct``), through
    SciPy's compiled transform directly where it checks out (see :func:`_pocketfft_dct`):
    ``scipy.fft``'s dispatch costs about 6 us a call, a tenth of an iteration at 64^2 (two
    transforms each).
    """
    direct = _pocketfft_dct()
    axis = x.ndim - 1
    if direct is not None:
        if out is None and overwrite:
            out = x
        return direct(x, 3 if inverse else 2, axis, workers, out)
    fn = scipy.fft.idct if inverse else scipy.fft.dct
    y = fn(x, type=2, norm="ortho", axis=axis, workers=workers, overwrite_x=overwrite)
    if out is None:
        return y
    np.copyto(out, y)
    return out


def poisson_neumann(r: np.ndarray, inv_lam: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Solve ``D^T D u = r`` for ``u`` with zero mean (``r`` must sum to zero).

    Parameters
    ----------
    r : ndarray, shape s or (B, \\*s)
        Right-hand side; its mean is ignored (the constant mode is the kernel of ``D^T D``).
        Leading axes beyond those of ``inv_lam`` are a batch: each problem is solved alone.
    inv_lam : ndarray, shape s
        ``1 / lambda_j`` from :func:`laplacian_eigenvalues`, with the zero mode set to 0.
    workers : int, optional
        Threads for :mod:`scipy.fft`.

    Returns
    -------
    ndarray, shape of ``r``
        The zero-mean solution (exact up to rounding when ``sum r = 0``).
    """
    axes = tuple(range(r.ndim - inv_lam.ndim, r.ndim))
    rh = scipy.fft.dctn(r, type=2, norm="ortho", axes=axes, workers=workers)
    rh *= inv_lam
    return scipy.fft.idctn(rh, type=2, norm="ortho", axes=axes, workers=workers)


def tridiagonal_pivots(shape: Sequence[int], inv_dx: Sequence[float],
                       dtype: type = np.float64) -> np.ndarray:
    """Inverse Thomas pivots of the x-direction systems of a 2D Neumann Poisson solve whose y
    axis is DCT-II transformed.

    For column ``k`` the system is ``(L_x + lambda_k) u = r`` with
    ``L_x = h_x^2 tridiag(-1, 2, -1)`` (Neumann ends: 1 on the first and last diagonal entries)
    and ``lambda_k = 4 sin^2(pi k / (2 N_y)) h_y^2``. The systems are diagonally dominant for
    ``k >= 1``, where the elimination is stable; column 0 (singular) is left to the solver
    (``otgrid.kernels.critic_numba.poisson_lines_2d`` integrates it).

    Parameters
    ----------
    shape : sequence of int
        ``(N_x, N_y)``, the grid's cells per axis.
    inv_dx : sequence of float
        ``(h_x, h_y)``, the inverse cell sizes.
    dtype : numpy dtype, optional
        The dtype of the returned pivots (computed in float64).

    Returns
    -------
    m : ndarray, shape ``shape``
        ``m[i, k] = 1 / (d_i + lambda_k - e^2 m[i-1, k])``, with ``e = -h_x^2`` the
        off-diagonal and ``d_i`` the diagonal of ``L_x`` (the elimination's upper factors are
        ``e m``); zero in column 0. The last pivot of column ``k`` is about
        ``sqrt(lambda_k h_x^2)``, a difference of numbers of size ``h_x^2``: when ``lambda_1``
        is below float64's rounding of ``h_x^2`` (cells far narrower along x than along y) it
        is lost, and ``m`` holds infinite or meaningless values -- see
        ``otgrid.critic.backend_numba.LINES_MAX_ROUNDING``.
    """
    nx, ny = (int(n) for n in shape)
    hx2, hy2 = float(inv_dx[0]) ** 2, float(inv_dx[1]) ** 2
    lam = 4.0 * np.sin(np.pi * np.arange(ny) / (2 * ny)) ** 2 * hy2
    e = -hx2
    m = np.zeros((nx, ny))
    prev = np.zeros(ny - 1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for i in range(nx):
            ends = (i == 0) + (i == nx - 1)
            d = hx2 * (2 - ends) + lam[1:]
            m[i, 1:] = 1.0 / (d - e * prev)
            prev = e * m[i, 1:]
    return m.astype(dtype)


def facr_pivots(shape: Sequence[int], inv_dx: Sequence[float]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse Thomas pivots of the 2D Neumann Poisson solve by one step of cyclic reduction
    (``otgrid.kernels.critic_numba.facr_reduce_2d``, ``poisson_lines_2d``,
    ``facr_recover_2d``).

    Row ``i`` of ``D^T D u = r`` (rows are vectors along y) reads
    ``h_x^2 (-u_{i-1} + B_i u_i - u_{i+1}) = r_i`` with ``B = 2 I + A_y / h_x^2`` (``A_y`` the
    Neumann Laplacian along y) and ``B_i = B - I`` on the first and last rows. After the DCT
    along y, mode ``k`` has ``b = 2 + a_k``, ``a_k = lambda_k / h_x^2``; eliminating the odd
    rows leaves, for even row ``i`` and multiplied by ``b``, ``h_x^2 (-u_{i-2} + d_i u_i -
    u_{i+2}) = b r_i + sum_j (b / b_j) r_j`` over its odd neighbours ``j``, with
    ``d_i = b b_i - sum_j b / b_j``, written without cancellation as
    ``d0_i + a (4 + a - e_i) + n_i a / (1 + a)`` (``e_i`` the grid ends at row ``i``, ``n_i``
    its neighbours that are the last row, ``d0_i`` the value at ``a = 0``).

    Parameters
    ----------
    shape : sequence of int
        ``(N_x, N_y)``.
    inv_dx : sequence of float
        ``(h_x, h_y)``, the inverse cell sizes.

    Returns
    -------
    m : ndarray, shape ``((N_x + 1) // 2, N_y)``
        The reduced system's inverse pivots (off-diagonal ``-h_x^2``), zero in column 0
        (mode 0 is solved on the whole grid).
    q, qe : ndarray, shape ``(N_y,)``
        Inverse pivots of ``B`` and ``B' = B - I`` along y (off-diagonal ``-c``,
        ``c = h_y^2 / h_x^2``): the odd rows' solves.
    """
    nx, ny = (int(n) for n in shape)
    hx2, hy2 = float(inv_dx[0]) ** 2, float(inv_dx[1]) ** 2
    c = hy2 / hx2
    a = 4.0 * c * np.sin(np.pi * np.arange(1, ny) / (2 * ny)) ** 2
    m = np.zeros(((nx + 1) // 2, ny))
    prev = np.zeros(ny - 1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for t in range(m.shape[0]):
            i = 2 * t
            ends = (i == 0) + (i == nx - 1)
            nbrs = [j for j in (i - 1, i + 1) if 0 <= j < nx]
            last = sum(j == nx - 1 for j in nbrs)
            d0 = 2 * (2 - ends) - (len(nbrs) - last) - 2 * last
            d = hx2 * (d0 + a * (4 + a - ends) + last * a / (1 + a))
            m[t, 1:] = 1.0 / (d - hx2 * hx2 * prev)
            prev = m[t, 1:]
    qs = []
    for base in (2.0, 1.0):
        q = np.zeros(ny)
        prev_q = 0.0
        for j in range(ny):
            q[j] = 1.0 / (base + c * (2 - (j == 0) - (j == ny - 1)) - c * c * prev_q)
            prev_q = q[j]
        qs.append(q)
    return m, qs[0], qs[1]


def inverse_eigenvalues(shape: Sequence[int], inv_dx: Sequence[float],
                        dtype: type = np.float64) -> np.ndarray:
    """``1 / lambda`` for :func:`poisson_neumann`, with the zero mode mapped to 0."""
    lam = laplacian_eigenvalues(shape, inv_dx)
    np.divide(1.0, lam, out=lam, where=lam > 0)  # in place; the zero mode stays 0
    return lam.astype(dtype, copy=False)


def centred_flow(flow: np.ndarray) -> np.ndarray:
    """Flow vectors at the cell centres: the mean of the flux on the two faces along each axis.

    ``flow[k][i]`` lives on the face between cells ``i`` and ``i + e_k``; the cell-centred value
    is ``(flow[k][i - e_k] + flow[k][i]) / 2`` (the missing face outside the grid counts 0).

    Parameters
    ----------
    flow : ndarray, shape (ndim, \\*s)
        A staggered flow (a :class:`~otgrid.critic.result.CriticResult`'s ``flow``).

    Returns
    -------
    ndarray, shape (ndim, \\*s)
    """
    out = np.empty_like(flow)
    for k in range(flow.shape[0]):
        f = np.moveaxis(flow[k], k, 0)
        before = np.concatenate([np.zeros_like(f[:1]), f[:-1]], axis=0)
        out[k] = np.moveaxis(0.5 * (f + before), 0, k)
    return out
