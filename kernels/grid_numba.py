"""Fused Numba kernels for the Chambolle–Pock iteration of the grid critic (1D and 2D).

Pure functions on arrays (no imports from otgrid). Conventions, shared with the NumPy reference
in ``otgrid/operators.py``: a grid function ``f`` has the grid's shape; a flow ``y`` has shape
``(ndim, *shape)``; forward differences ``(Df)_{i,k} = (f_{i+e_k} - f_i) h_k`` with
``h_k = 1/dx_k`` and ``(Df)_{i,k} = 0`` on the last index of axis ``k``. ``iso=True`` is the
euclidean (group) norm, ``iso=False`` the cityblock one (l1 on flows, l_inf on gradients).

Kernels
-------
dual_step_{1d,2d}(f, u, y, f_out, tau, sigma, h..., iso)
    ``f_out = f + tau u``; ``y <- shrink(y + sigma D(f + 2 tau u), sigma)`` in place.
residual_{1d,2d}(c, y, r, h...)
    ``r = c - D^T y``.
max_grad_norm_{1d,2d}(f, h..., iso)
    ``max_i |(Df)_i|`` (2-norm or inf-norm per cell).
flow_cost_{1d,2d}(y, u, h..., iso)
    ``sum_i |y_i + (Du)_i|`` (2-norm or 1-norm per cell): the cost of the corrected flow.
corrected_flow_{1d,2d}(y, u, out, h...)
    ``out = y + D u``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "corrected_flow_1d",
    "corrected_flow_2d",
    "dual_step_1d",
    "dual_step_2d",
    "flow_cost_1d",
    "flow_cost_2d",
    "max_grad_norm_1d",
    "max_grad_norm_2d",
    "residual_1d",
    "residual_2d",
]


@njit(cache=True, inline="always")
def _soft(v, t):
    if v > t:
        return v - t
    if v < -t:
        return v + t
    return 0.0 * v


# ----------------------------------------------------------------------------------------- 1D
@njit(cache=True)
def dual_step_1d(f, u, y, f_out, tau, sigma, h, iso):
    n = f.shape[0]
    t2 = 2.0 * tau
    for i in range(n - 1):
        fb0 = f[i] + t2 * u[i]
        fb1 = f[i + 1] + t2 * u[i + 1]
        y[0, i] = _soft(y[0, i] + sigma * (fb1 - fb0) * h, sigma)
        f_out[i] = f[i] + tau * u[i]
    y[0, n - 1] = 0.0
    f_out[n - 1] = f[n - 1] + tau * u[n - 1]


@njit(cache=True)
def residual_1d(c, y, r, h):
    n = c.shape[0]
    r[0] = c[0] + y[0, 0] * h
    for i in range(1, n - 1):
        r[i] = c[i] - (y[0, i - 1] - y[0, i]) * h
    r[n - 1] = c[n - 1] - y[0, n - 2] * h


@njit(cache=True)
def max_grad_norm_1d(f, h, iso):
    m = 0.0
    for i in range(f.shape[0] - 1):
        g = abs(f[i + 1] - f[i]) * h
        if g > m:
            m = g
    return m


@njit(cache=True)
def flow_cost_1d(y, u, h, iso):
    s = 0.0
    for i in range(u.shape[0] - 1):
        s += abs(y[0, i] + (u[i + 1] - u[i]) * h)
    return s


@njit(cache=True)
def corrected_flow_1d(y, u, out, h):
    n = u.shape[0]
    for i in range(n - 1):
        out[0, i] = y[0, i] + (u[i + 1] - u[i]) * h
    out[0, n - 1] = 0.0


# ----------------------------------------------------------------------------------------- 2D
@njit(cache=True, parallel=True)
def dual_step_2d(f, u, y, f_out, tau, sigma, hx, hy, iso):
    nx, ny = f.shape
    t2 = 2.0 * tau
    for i in prange(nx):
        for j in range(ny):
            fb = f[i, j] + t2 * u[i, j]
            f_out[i, j] = f[i, j] + tau * u[i, j]
            gx = 0.0
            gy = 0.0
            if i < nx - 1:
                gx = (f[i + 1, j] + t2 * u[i + 1, j] - fb) * hx
            if j < ny - 1:
                gy = (f[i, j + 1] + t2 * u[i, j + 1] - fb) * hy
            vx = y[0, i, j] + sigma * gx
            vy = y[1, i, j] + sigma * gy
            if iso:
                nv = np.sqrt(vx * vx + vy * vy)
                s = 1.0 - sigma / nv if nv > sigma else 0.0
                vx *= s
                vy *= s
            else:
                vx = _soft(vx, sigma)
                vy = _soft(vy, sigma)
            y[0, i, j] = vx if i < nx - 1 else 0.0
            y[1, i, j] = vy if j < ny - 1 else 0.0


@njit(cache=True, parallel=True)
def residual_2d(c, y, r, hx, hy):
    nx, ny = c.shape
    for i in prange(nx):
        for j in range(ny):
            d = 0.0
            if i < nx - 1:
                d -= y[0, i, j] * hx
            if i > 0:
                d += y[0, i - 1, j] * hx
            if j < ny - 1:
                d -= y[1, i, j] * hy
            if j > 0:
                d += y[1, i, j - 1] * hy
            r[i, j] = c[i, j] - d


@njit(cache=True, parallel=True)
def max_grad_norm_2d(f, hx, hy, iso):
    nx, ny = f.shape
    rowmax = np.zeros(nx)
    for i in prange(nx):
        m = 0.0
        for j in range(ny):
            gx = (f[i + 1, j] - f[i, j]) * hx if i < nx - 1 else 0.0
            gy = (f[i, j + 1] - f[i, j]) * hy if j < ny - 1 else 0.0
            if iso:
                g = np.sqrt(gx * gx + gy * gy)
            else:
                g = max(abs(gx), abs(gy))
            if g > m:
                m = g
        rowmax[i] = m
    return rowmax.max()


@njit(cache=True, parallel=True)
def flow_cost_2d(y, u, hx, hy, iso):
    nx, ny = u.shape
    rowsum = np.zeros(nx)
    for i in prange(nx):
        s = 0.0
        for j in range(ny):
            vx = y[0, i, j] + (u[i + 1, j] - u[i, j]) * hx if i < nx - 1 else 0.0
            vy = y[1, i, j] + (u[i, j + 1] - u[i, j]) * hy if j < ny - 1 else 0.0
            if iso:
                s += np.sqrt(vx * vx + vy * vy)
            else:
                s += abs(vx) + abs(vy)
        rowsum[i] = s
    return rowsum.sum()


@njit(cache=True, parallel=True)
def corrected_flow_2d(y, u, out, hx, hy):
    nx, ny = u.shape
    for i in prange(nx):
        for j in range(ny):
            out[0, i, j] = y[0, i, j] + (u[i + 1, j] - u[i, j]) * hx if i < nx - 1 else 0.0
            out[1, i, j] = y[1, i, j] + (u[i, j + 1] - u[i, j]) * hy if j < ny - 1 else 0.0


# ------------------------------------------------------------------ certificate: critic repair
@njit(cache=True)
def repair_critic_1d(f, g, dx):
    """Feasible critic close to ``f``: backward sweep ``g_i = clip(f_i, g_{i+1} -+ dx)``.

    ``|g_{i+1} - g_i| <= dx`` holds for every ``i`` by construction.
    """
    n = f.shape[0]
    g[n - 1] = f[n - 1]
    for i in range(n - 2, -1, -1):
        lo = g[i + 1] - dx
        hi = g[i + 1] + dx
        v = f[i]
        g[i] = lo if v < lo else (hi if v > hi else v)


@njit(cache=True)
def repair_critic_2d(f, g, dx, dy, iso):
    """Critic close to ``f`` made feasible cell by cell, in reverse raster order.

    Each ``g_ij`` is ``f_ij`` projected on the interval of values that satisfy the constraint of
    cell ``(i, j)`` given its forward neighbours, already final. For the cityblock norm the
    interval is never empty, so ``g`` is feasible. For the euclidean norm it is empty when the
    two neighbours differ by more than ``sqrt(dx^2 + dy^2)``; ``g_ij`` then minimises the
    violation, and the caller rescales by ``max(1, max |Dg|)`` as usual.
    """
    nx, ny = f.shape
    a = 1.0 / (dx * dx)
    b = 1.0 / (dy * dy)
    for i in range(nx - 1, -1, -1):
        for j in range(ny - 1, -1, -1):
            v = f[i, j]
            if i == nx - 1 and j == ny - 1:
                g[i, j] = v
                continue
            if i == nx - 1:
                lo = g[i, j + 1] - dy
                hi = g[i, j + 1] + dy
            elif j == ny - 1:
                lo = g[i + 1, j] - dx
                hi = g[i + 1, j] + dx
            else:
                A = g[i + 1, j]
                B = g[i, j + 1]
                if iso:
                    t = (a * A + b * B) / (a + b)
                    disc = (a + b) - a * b * (A - B) * (A - B)
                    half = np.sqrt(disc) / (a + b) if disc > 0.0 else 0.0
                    lo = t - half
                    hi = t + half
                else:
                    lo = max(A - dx, B - dy)
                    hi = min(A + dx, B + dy)
            g[i, j] = lo if v < lo else (hi if v > hi else v)
