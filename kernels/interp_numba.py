"""Numba kernels: value and gradient of a grid function's (bi)linear interpolant at many points.

Pure array-in/array-out functions (no imports from ``otgrid``); ``otgrid.grid.interp.GridFunction``
documents the mathematics and validates the input. Both kernels compute the value and the
gradient of every point in one pass, in parallel over the points.

Inside the box of cell centres ``B`` the interpolant is the piecewise linear (1D) or bilinear
(2D) function through the samples; the cell of a point is given by ``floor`` (right-continuous),
the last cell at the upper end of ``B``. Outside ``B``:

* 1D: ``F(x) = f(clamp(x)) - dist(x, B)``;
* 2D: ``F(x) = min(M(x), C(x))`` with ``M(x) = max_{z in dB} f(z) - |x - z|`` (closed-form
  maximisation on each linear piece of the boundary polygon) and the boundary cap
  ``C(x) = f(Px) - (sqrt(D^2 + d^2) - D)``, ``d = |x - Px|``, ``D`` the diameter of ``B``.

``lipschitz_repair_2d`` moves 2D samples towards the *corner constraints* that make their
bilinear interpolant 1-Lipschitz (``GridFunction.to_lipschitz`` divides the result by its
Lipschitz constant).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["interp1d_value_grad", "interp2d_value_grad", "lipschitz_repair_2d"]


@njit(cache=True, inline="always")
def _cell(t: float, c: np.ndarray, inv_dx: float) -> int:
    """Index ``i`` in ``[0, N-2]`` of the interpolation cell ``[c_i, c_{i+1})`` that holds ``t``.

    ``floor`` of the scaled coordinate, corrected against the stored centres so that a point
    exactly on a centre gets the cell to its right (and the last centre gets the last cell).
    """
    n = c.shape[0]
    i = int(np.floor((t - c[0]) * inv_dx))
    if i > n - 2:
        i = n - 2
    if i < 0:
        i = 0
    if i < n - 2 and t >= c[i + 1]:
        i += 1
    elif i > 0 and t < c[i]:
        i -= 1
    return i


@njit(cache=True, parallel=True)
def interp1d_value_grad(x, values, centers, dx):  # pragma: no cover - compiled
    """Value and derivative of the linear interpolant (with its 1D extension) at points.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Points (finite).
    values : ndarray, shape (N,)
        Samples at the cell centres, ``N >= 2``.
    centers : ndarray, shape (N,)
        Cell centres, increasing and equally spaced by ``dx``.
    dx : float
        Spacing of the centres.

    Returns
    -------
    val : ndarray, shape (n,)
    grad : ndarray, shape (n,)
    """
    n = x.shape[0]
    nc = centers.shape[0]
    lo = centers[0]
    hi = centers[nc - 1]
    inv_dx = 1.0 / dx
    val = np.empty(n)
    grad = np.empty(n)
    for p in prange(n):
        t = x[p]
        if t < lo:
            val[p] = values[0] - (lo - t)
            grad[p] = 1.0
        elif t > hi:
            val[p] = values[nc - 1] - (t - hi)
            grad[p] = -1.0
        else:
            i = _cell(t, centers, inv_dx)
            s = (t - centers[i]) * inv_dx
            v0 = values[i]
            v1 = values[i + 1]
            val[p] = v0 + s * (v1 - v0)
            grad[p] = (v1 - v0) * inv_dx
    return val, grad


@njit(cache=True, inline="always")
def _bilinear(x0, x1, values, c0, c1, inv_dx0, inv_dx1):
    """Value and gradient of the bilinear interpolant at a point of ``B``."""
    i = _cell(x0, c0, inv_dx0)
    j = _cell(x1, c1, inv_dx1)
    s0 = (x0 - c0[i]) * inv_dx0
    s1 = (x1 - c1[j]) * inv_dx1
    v00 = values[i, j]
    v10 = values[i + 1, j]
    v01 = values[i, j + 1]
    v11 = values[i + 1, j + 1]
    a = v00 + s0 * (v10 - v00)  # along axis 0 at j
    b = v01 + s0 * (v11 - v01)  # along axis 0 at j + 1
    val = a + s1 * (b - a)
    g0 = ((1.0 - s1) * (v10 - v00) + s1 * (v11 - v01)) * inv_dx0
    g1 = (b - a) * inv_dx1
    return val, g0, g1


_BLOCK = 16  # segments per block in the pruning of the boundary maximisation


@njit(cache=True)
def _edge_tables(vals, c):  # pragma: no cover - compiled
    """Per-segment slope ``g``, stationary-point factor ``q = g / sqrt(1 - g^2)`` and max value,
    and the max value over each block of ``_BLOCK`` consecutive segments.

    ``vals`` has shape (2, N): the samples along the two opposite edges parallel to one axis;
    ``c`` the centres along that axis. ``q`` is only used where ``|g| < 1``.
    """
    m = c.shape[0] - 1
    nb = (m + _BLOCK - 1) // _BLOCK
    g = np.empty((2, m))
    q = np.zeros((2, m))
    vmax = np.empty((2, m))
    bmax = np.full((2, nb), -np.inf)
    for e in range(2):
        for k in range(m):
            gk = (vals[e, k + 1] - vals[e, k]) / (c[k + 1] - c[k])
            g[e, k] = gk
            if abs(gk) < 1.0:
                q[e, k] = gk / np.sqrt((1.0 - gk) * (1.0 + gk))
            vmax[e, k] = max(vals[e, k], vals[e, k + 1])
            b = k // _BLOCK
            bmax[e, b] = max(bmax[e, b], vmax[e, k])
    return g, q, vmax, bmax


@njit(cache=True, inline="always")
def _segments_max(sx, h, vals, c, g, q, vmax, e, k0, k1, best, best_t):
    """Max over segments ``k0 <= k < k1`` of one edge of ``f(t) - sqrt((t - sx)^2 + h^2)``.

    On the segment ``[c_k, c_{k+1}]`` the edge values are linear with slope ``g`` and the
    objective is concave in ``t``; its maximiser is the stationary point ``sx + q h`` clamped to
    the segment (``|g| < 1``) or the upper/lower end (``g >= 1`` / ``g <= -1``). Segments whose
    upper bound ``max(v) - max(h, gap)`` cannot beat ``best`` are skipped. Returns the improved
    ``(best, best_t)``.
    """
    h2 = h * h
    for k in range(k0, k1):
        ck = c[k]
        ck1 = c[k + 1]
        gap = ck - sx
        if sx - ck1 > gap:
            gap = sx - ck1
        if h > gap:
            gap = h
        if vmax[e, k] - gap <= best:
            continue
        gk = g[e, k]
        if gk >= 1.0:
            t = ck1
        elif gk <= -1.0:
            t = ck
        else:
            t = sx + q[e, k] * h
            if t < ck:
                t = ck
            elif t > ck1:
                t = ck1
        dt = t - sx
        v = vals[e, k] + gk * (t - ck) - np.sqrt(dt * dt + h2)
        if v > best:
            best = v
            best_t = t
    return best, best_t


@njit(cache=True, inline="always")
def _block_bound(sx, h, c, bmax, e, b, m):
    """Upper bound ``max f - dist(x, block)`` of the objective on block ``b`` of an edge."""
    k0 = b * _BLOCK
    k1 = min(k0 + _BLOCK, m)
    gap = max(c[k0] - sx, sx - c[k1], 0.0)
    return bmax[e, b] - np.sqrt(gap * gap + h * h)


@njit(cache=True, inline="always")
def _edge_max(sx, h, vals, c, g, q, vmax, bmax, e, best, best_t):
    """Max over one boundary edge of ``f(t) - sqrt((t - sx)^2 + h^2)``, improving ``best``.

    Visits first the block of segments with the best upper bound, then the other blocks whose
    bound can still beat the running maximum. Returns the improved ``(best, best_t)``.
    """
    m = c.shape[0] - 1
    nb = bmax.shape[1]
    first = -1
    top = best
    for b in range(nb):
        bound = _block_bound(sx, h, c, bmax, e, b, m)
        if bound > top:
            top = bound
            first = b
    if first < 0:
        return best, best_t
    k0 = first * _BLOCK
    best, best_t = _segments_max(sx, h, vals, c, g, q, vmax, e, k0, min(k0 + _BLOCK, m),
                                 best, best_t)
    for b in range(nb):
        if b == first or _block_bound(sx, h, c, bmax, e, b, m) <= best:
            continue
        k0 = b * _BLOCK
        best, best_t = _segments_max(sx, h, vals, c, g, q, vmax, e, k0, min(k0 + _BLOCK, m),
                                     best, best_t)
    return best, best_t


@njit(cache=True, inline="always")
def _argmax4(a0, a1, a2, a3):
    """Index and value of the largest of four numbers (the first on ties)."""
    e = 0
    top = a0
    if a1 > top:
        e = 1
        top = a1
    if a2 > top:
        e = 2
        top = a2
    if a3 > top:
        e = 3
        top = a3
    return e, top


@njit(cache=True, parallel=True)
def interp2d_value_grad(x, values, c0, c1, dx0, dx1):  # pragma: no cover - compiled
    """Value and gradient of the bilinear interpolant (with its 2D extension) at points.

    Parameters
    ----------
    x : ndarray, shape (n, 2)
        Points (finite).
    values : ndarray, shape (N0, N1)
        Samples at the cell centres, ``N0, N1 >= 2``.
    c0, c1 : ndarray, shapes (N0,), (N1,)
        Cell centres along each axis, increasing and equally spaced by ``dx0`` / ``dx1``.
    dx0, dx1 : float
        Spacings of the centres.

    Returns
    -------
    val : ndarray, shape (n,)
    grad : ndarray, shape (n, 2)
    """
    n = x.shape[0]
    n0 = c0.shape[0]
    n1 = c1.shape[0]
    lo0 = c0[0]
    hi0 = c0[n0 - 1]
    lo1 = c1[0]
    hi1 = c1[n1 - 1]
    inv_dx0 = 1.0 / dx0
    inv_dx1 = 1.0 / dx1
    diam = np.sqrt((hi0 - lo0) ** 2 + (hi1 - lo1) ** 2)

    # Boundary polygon of B: edges parallel to axis 0 (x1 = lo1 / hi1) and to axis 1.
    ev0 = np.empty((2, n0))
    ev0[0] = values[:, 0]
    ev0[1] = values[:, n1 - 1]
    ev1 = np.empty((2, n1))
    ev1[0] = values[0, :]
    ev1[1] = values[n0 - 1, :]
    g0t, q0t, m0t, b0t = _edge_tables(ev0, c0)
    g1t, q1t, m1t, b1t = _edge_tables(ev1, c1)
    fix0 = np.empty(2)  # x1 coordinate of the two edges parallel to axis 0
    fix0[0] = lo1
    fix0[1] = hi1
    fix1 = np.empty(2)  # x0 coordinate of the two edges parallel to axis 1
    fix1[0] = lo0
    fix1[1] = hi0
    emax = np.empty(4)  # max of f over each edge (bottom, top, left, right)
    for e in range(2):
        emax[e] = ev0[e].max()
        emax[2 + e] = ev1[e].max()

    val = np.empty(n)
    grad = np.empty((n, 2))
    for p in prange(n):
        x0 = x[p, 0]
        x1 = x[p, 1]
        p0 = min(max(x0, lo0), hi0)
        p1 = min(max(x1, lo1), hi1)
        fp, gp0, gp1 = _bilinear(p0, p1, values, c0, c1, inv_dx0, inv_dx1)
        r0 = x0 - p0
        r1 = x1 - p1
        if r0 == 0.0 and r1 == 0.0:
            val[p] = fp
            grad[p, 0] = gp0
            grad[p, 1] = gp1
            continue

        # Cap C(x) = f(Px) - (sqrt(D^2 + d^2) - D); its gradient, tangential part of grad f(Px)
        # (the clamped components of P have zero derivative) minus d / sqrt(D^2 + d^2) n.
        d = np.sqrt(r0 * r0 + r1 * r1)
        root = np.sqrt(diam * diam + d * d)
        cap = fp - d * d / (root + diam)

        # McShane term: visit the four edges by decreasing upper bound max_e f - dist(x, e).
        gap0 = max(lo0 - x0, x0 - hi0, 0.0)
        gap1 = max(lo1 - x1, x1 - hi1, 0.0)
        bd0 = emax[0] - np.sqrt(gap0 * gap0 + (x1 - lo1) ** 2)
        bd1 = emax[1] - np.sqrt(gap0 * gap0 + (x1 - hi1) ** 2)
        bd2 = emax[2] - np.sqrt(gap1 * gap1 + (x0 - lo0) ** 2)
        bd3 = emax[3] - np.sqrt(gap1 * gap1 + (x0 - hi0) ** 2)
        best = -np.inf
        best_t = 0.0
        best_e = 0
        for _ in range(4):
            e, top = _argmax4(bd0, bd1, bd2, bd3)
            if top <= best:
                break
            if e == 0:
                bd0 = -np.inf
            elif e == 1:
                bd1 = -np.inf
            elif e == 2:
                bd2 = -np.inf
            else:
                bd3 = -np.inf
            if e < 2:
                nb, nt = _edge_max(x0, abs(x1 - fix0[e]), ev0, c0, g0t, q0t, m0t, b0t, e,
                                   best, best_t)
            else:
                nb, nt = _edge_max(x1, abs(x0 - fix1[e - 2]), ev1, c1, g1t, q1t, m1t, b1t,
                                   e - 2, best, best_t)
            if nb > best:
                best = nb
                best_t = nt
                best_e = e

        if best <= cap:
            if best_e < 2:
                z0 = best_t
                z1 = fix0[best_e]
            else:
                z0 = fix1[best_e - 2]
                z1 = best_t
            w0 = x0 - z0
            w1 = x1 - z1
            dist = np.sqrt(w0 * w0 + w1 * w1)
            if dist > 0.0:
                val[p] = best
                grad[p, 0] = -w0 / dist
                grad[p, 1] = -w1 / dist
                continue
        scale = 1.0 / root  # (d / root) * (r / d)
        val[p] = cap
        grad[p, 0] = (gp0 if r0 == 0.0 else 0.0) - r0 * scale
        grad[p, 1] = (gp1 if r1 == 0.0 else 0.0) - r1 * scale
    return val, grad



@njit(cache=True, inline="always")
def _project_corner(g, i, j, ia, jb, q, inv0, inv1, limit):
    """Enforce one corner constraint at ``(i, j)``: ``a^2 + b^2 <= 1`` with
    ``a = (g[ia, j] - q) / dx0`` and ``b = (g[i, jb] - q) / dx1`` (``q = g[i, j]``).

    When ``a^2 + b^2 > limit`` (``limit >= 1``) the three values move to the nearest point
    (Euclidean, in the three values) at which ``(a, b)`` is scaled to unit norm,
    ``(a, b) / |(a, b)|``: that point keeps their sum. Returns the new ``g[i, j]``.
    """
    A = g[ia, j]
    B = g[i, jb]
    a = (A - q) * inv0
    b = (B - q) * inv1
    r2 = a * a + b * b
    if r2 <= limit:
        return q
    t = 1.0 / np.sqrt(r2)
    da = (A - q) * t
    db = (B - q) * t
    q2 = (q + A + B - da - db) / 3.0
    g[i, j] = q2
    g[ia, j] = q2 + da
    g[i, jb] = q2 + db
    return q2


@njit(cache=True)
def lipschitz_repair_2d(values, dx0, dx1, sweeps, tol):  # pragma: no cover - compiled
    """Values near ``values`` whose bilinear interpolant is closer to 1-Lipschitz.

    The bilinear interpolant is 1-Lipschitz on the box of centres exactly when every *corner
    constraint* holds: for every sample ``p`` and signs ``s0, s1 = +-1`` with both neighbours
    in the grid, ``((g[p + s0 e0] - g[p]) / dx0)^2 + ((g[p + s1 e1] - g[p]) / dx1)^2 <= 1``
    (these are the gradients of the interpolant at the corners of the squares around ``p``).
    A sweep visits the samples in raster order and enforces each violated corner constraint of
    the visited sample with :func:`_project_corner` (Gauss-Seidel projections); the sweeps
    alternate between the four raster orientations. Every move keeps ``sum(g)``; samples that
    satisfy every corner constraint are returned unchanged. A finite number of sweeps leaves
    some constraints slightly violated: the caller divides by the Lipschitz constant, so
    corner gradients of norm at most ``1 + tol`` are left to that division (projecting them
    costs most of the time on saturated critics and changes the result little).

    Parameters
    ----------
    values : ndarray, shape (N0, N1)
        Samples at the cell centres, ``N0, N1 >= 2``.
    dx0, dx1 : float
        Spacings of the centres.
    sweeps : int
        Number of sweeps (0: a copy of ``values``).
    tol : float
        Corner gradients of norm at most ``1 + tol`` are not projected (``tol >= 0``).

    Returns
    -------
    g : ndarray, shape (N0, N1)
    """
    n0, n1 = values.shape
    g = values.copy()
    inv0 = 1.0 / dx0
    inv1 = 1.0 / dx1
    limit = (1.0 + tol) * (1.0 + tol)
    for sweep in range(sweeps):
        step0 = -1 if sweep % 2 else 1
        step1 = -1 if (sweep // 2) % 2 else 1
        i = 0 if step0 == 1 else n0 - 1
        for _ in range(n0):
            j = 0 if step1 == 1 else n1 - 1
            for _ in range(n1):
                q = g[i, j]
                if i > 0:
                    if j > 0:
                        q = _project_corner(g, i, j, i - 1, j - 1, q, inv0, inv1, limit)
                    if j < n1 - 1:
                        q = _project_corner(g, i, j, i - 1, j + 1, q, inv0, inv1, limit)
                if i < n0 - 1:
                    if j > 0:
                        q = _project_corner(g, i, j, i + 1, j - 1, q, inv0, inv1, limit)
                    if j < n1 - 1:
                        q = _project_corner(g, i, j, i + 1, j + 1, q, inv0, inv1, limit)
                j += step1
            i += step0
    return g
