"""CUDA kernels (numba-cuda): value and gradient of a grid function's interpolant at many points.

Pure kernels (no imports from ``otgrid``), one thread per point; ``otgrid.grid.interp.GridFunction``
documents the mathematics and validates the input, and ``otgrid/kernels/interp_numba.py`` is the
CPU version they agree with. Inside the box ``B`` of the cell centres: the (bi)linear
interpolant, its cell given by ``floor`` (right-continuous), the last cell at the upper end.
Outside ``B``:

* 1D: ``F(x) = f(clamp(x)) - dist(x, B)``;
* 2D: ``F(x) = min(M(x), C(x))``, the McShane term ``M(x) = max_{z in dB} f(z) - |x - z|``
  maximised in closed form on every linear piece of the boundary polygon, and the boundary cap
  ``C(x) = f(Px) - (sqrt(D^2 + d^2) - D)``, ``d = |x - Px|``, ``D`` the diameter of ``B``.

The CPU kernel prunes the boundary pieces with per-block bounds; on the GPU every outside point
visits all ``2 (N0 + N1 - 2)`` pieces (no divergent pruning, the edge samples are read by all
threads and stay in cache), which gives the same maximum. Points and samples are float64.

Launch: ``grid_blocks(n, threads)`` blocks (``otgrid/kernels/_cuda.py``); thread ``p`` handles
points ``p``, ``p + gridsize``, ... (a grid-stride loop: a grid capped at CUDA's limit still
covers every point). :data:`PTX_SIGNATURES` lists the argument types of the launches.

Kernels
-------
interp1d_value_grad(x, values, centers, inv_dx, val, grad)
    ``x`` (n,) -> ``val`` (n,), ``grad`` (n,).
interp2d_value_grad(x, values, c0, c1, inv_dx0, inv_dx1, diam, val, grad)
    ``x`` (n, 2) -> ``val`` (n,), ``grad`` (n, 2).
"""

from __future__ import annotations

import math

from numba import types as _t

from ._cuda import cuda
from ._cuda import device as _device
from ._cuda import kernel as _kernel

__all__ = ["PTX_SIGNATURES", "interp1d_value_grad", "interp2d_value_grad"]


@_device
def _cell(t, c, inv_dx):  # pragma: no cover - device code
    """Index ``i`` in ``[0, N-2]`` of the cell ``[c_i, c_{i+1})`` that holds ``t`` (see CPU)."""
    n = c.shape[0]
    i = int(math.floor((t - c[0]) * inv_dx))  # noqa: RUF046 (an int on every target)
    if i > n - 2:
        i = n - 2
    if i < 0:
        i = 0
    if i < n - 2 and t >= c[i + 1]:
        i += 1
    elif i > 0 and t < c[i]:
        i -= 1
    return i


@_kernel
def interp1d_value_grad(x, values, centers, inv_dx, val, grad):  # pragma: no cover - device
    """Value and derivative of the linear interpolant with its 1D extension, one thread/point."""
    nc = centers.shape[0]
    lo = centers[0]
    hi = centers[nc - 1]
    for p in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        t = x[p]
        if t < lo:
            val[p] = values[0] - (lo - t)
            grad[p] = 1.0
        elif t > hi:
            val[p] = values[nc - 1] - (t - hi)
            grad[p] = -1.0
        else:
            i = _cell(t, centers, inv_dx)
            v0 = values[i]
            v1 = values[i + 1]
            val[p] = v0 + (t - centers[i]) * inv_dx * (v1 - v0)
            grad[p] = (v1 - v0) * inv_dx


@_device
def _edge_value(values, e, k):  # pragma: no cover - device code
    """Sample ``k`` along boundary edge ``e``: 0/1 the edges ``x1 = lo1/hi1`` (along axis 0),
    2/3 the edges ``x0 = lo0/hi0`` (along axis 1)."""
    if e == 0:
        return values[k, 0]
    if e == 1:
        return values[k, values.shape[1] - 1]
    if e == 2:
        return values[0, k]
    return values[values.shape[0] - 1, k]


@_device
def _edge_best(sx, h, values, c, e, best, best_t):  # pragma: no cover - device code
    """Max over the pieces of edge ``e`` of ``f(t) - sqrt((t - sx)^2 + h^2)``, improving ``best``.

    On piece ``[c_k, c_{k+1}]`` the edge samples are linear with slope ``g`` and the objective is
    concave; its maximiser is ``sx + g h / sqrt(1 - g^2)`` clamped to the piece when ``|g| < 1``,
    the end the slope points to otherwise.
    """
    h2 = h * h
    for k in range(c.shape[0] - 1):
        ck = c[k]
        ck1 = c[k + 1]
        vk = _edge_value(values, e, k)
        g = (_edge_value(values, e, k + 1) - vk) / (ck1 - ck)
        if g >= 1.0:
            t = ck1
        elif g <= -1.0:
            t = ck
        else:
            t = sx + g / math.sqrt((1.0 - g) * (1.0 + g)) * h
            t = min(max(t, ck), ck1)
        dt = t - sx
        v = vk + g * (t - ck) - math.sqrt(dt * dt + h2)
        if v > best:
            best = v
            best_t = t
    return best, best_t


@_device
def _value_grad_2d(x0, x1, values, c0, c1, inv_dx0, inv_dx1, diam):  # pragma: no cover
    """``(F(x), dF/dx0, dF/dx1)`` at the point ``(x0, x1)`` (see the module docstring)."""
    n0 = c0.shape[0]
    n1 = c1.shape[0]
    lo0 = c0[0]
    hi0 = c0[n0 - 1]
    lo1 = c1[0]
    hi1 = c1[n1 - 1]
    p0 = min(max(x0, lo0), hi0)
    p1 = min(max(x1, lo1), hi1)
    # bilinear interpolant and its gradient at the projection Px
    i = _cell(p0, c0, inv_dx0)
    j = _cell(p1, c1, inv_dx1)
    s0 = (p0 - c0[i]) * inv_dx0
    s1 = (p1 - c1[j]) * inv_dx1
    v00 = values[i, j]
    v10 = values[i + 1, j]
    v01 = values[i, j + 1]
    v11 = values[i + 1, j + 1]
    a = v00 + s0 * (v10 - v00)
    b = v01 + s0 * (v11 - v01)
    fp = a + s1 * (b - a)
    gp0 = ((1.0 - s1) * (v10 - v00) + s1 * (v11 - v01)) * inv_dx0
    gp1 = (b - a) * inv_dx1
    r0 = x0 - p0
    r1 = x1 - p1
    if r0 == 0.0 and r1 == 0.0:
        return fp, gp0, gp1
    d = math.sqrt(r0 * r0 + r1 * r1)
    root = math.sqrt(diam * diam + d * d)
    cap = fp - d * d / (root + diam)
    # McShane term over the four edges: bottom/top (along axis 0), left/right (along axis 1)
    best = -math.inf
    best_t = 0.0
    best_e = 0
    for e in range(4):
        if e < 2:
            fix = lo1 if e == 0 else hi1
            nb, nt = _edge_best(x0, abs(x1 - fix), values, c0, e, best, best_t)
        else:
            fix = lo0 if e == 2 else hi0
            nb, nt = _edge_best(x1, abs(x0 - fix), values, c1, e, best, best_t)
        if nb > best:
            best = nb
            best_t = nt
            best_e = e
    if best <= cap:
        if best_e < 2:
            z0 = best_t
            z1 = lo1 if best_e == 0 else hi1
        else:
            z0 = lo0 if best_e == 2 else hi0
            z1 = best_t
        w0 = x0 - z0
        w1 = x1 - z1
        dist = math.sqrt(w0 * w0 + w1 * w1)
        if dist > 0.0:
            return best, -w0 / dist, -w1 / dist
    scale = 1.0 / root
    return cap, (gp0 if r0 == 0.0 else 0.0) - r0 * scale, (gp1 if r1 == 0.0 else 0.0) - r1 * scale


@_kernel
def interp2d_value_grad(x, values, c0, c1, inv_dx0, inv_dx1, diam, val,
                        grad):  # pragma: no cover - device code
    """Value and gradient of the bilinear interpolant with its 2D extension, one thread/point."""
    for p in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v, g0, g1 = _value_grad_2d(x[p, 0], x[p, 1], values, c0, c1, inv_dx0, inv_dx1, diam)
        val[p] = v
        grad[p, 0] = g0
        grad[p, 1] = g1


def _a(ndim: int) -> _t.Array:
    return _t.Array(_t.float64, ndim, "C")


# (kernel, argument types) of the launches of ``GridFunction._value_and_grad_cuda``: float64
# C-contiguous arrays (the points ``x[:, 0]`` of an (n, 1) array are contiguous), float scalars.
PTX_SIGNATURES = [
    (interp1d_value_grad, (_a(1), _a(1), _a(1), _t.float64, _a(1), _a(1))),
    (interp2d_value_grad, (_a(2), _a(2), _a(1), _a(1), _t.float64, _t.float64, _t.float64,
                           _a(1), _a(2))),
]
