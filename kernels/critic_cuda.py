"""CUDA kernels (numba-cuda) for the Chambolle–Pock iteration of the grid critic (1D, 2D, batched).

Pure kernels on device arrays (no imports from otgrid); the same source runs on a GPU and, with
``NUMBA_ENABLE_CUDASIM=1`` set before ``numba.cuda`` is first imported, in the CUDA simulator on
the CPU. Conventions are those of ``otgrid/kernels/critic_numba.py``: a leading batch axis ``B``;
a grid function ``f`` has shape ``(B, *shape)``, a flow ``y`` shape ``(B, ndim, *shape)``;
forward differences ``(Df)_{i,k} = (f_{i+e_k} - f_i) h_k`` (``h_k = 1/dx_k``), zero on the last
index of axis ``k``; ``iso=True`` is the euclidean (group) norm, ``iso=False`` the cityblock one.
Steps ``tau``, ``sigma`` are device arrays of shape ``(B,)``.

Launch: one thread per cell on a 1D grid of ``grid_blocks(B * n_cells, threads)`` blocks
(``otgrid/kernels/_cuda.py``); the thread of flat index ``p`` handles cell ``p`` of the
C-ordered ``(B, *shape)`` array, then ``p + gridsize``, ... (a grid-stride loop: a grid capped
at CUDA's limit still covers every cell), so consecutive threads touch consecutive addresses
(coalesced loads and stores). The scalars ``h`` must have the dtype of the arrays
(``numpy.float32(h)`` for float32 iterates) so that the arithmetic stays in that precision on
the device; literals appear only in stores.

Kernels
-------
dual_step_1d(f, u, y, f_out, tau, sigma, rho, h, iso), dual_step_2d(..., rho, hx, hy, wx, wy, iso)
    The step relaxed by ``rho`` (a scalar of the arrays' dtype; 1: the plain step):
    ``f_out = f + rho tau u``; ``y <- y + rho (shrink(y + sigma D(f + 2 tau u), sigma) - y)``
    in place; in 2D with the dual steps ``sigma w_k`` per axis (``w = 1`` on square cells)
    and the shrinkage in their metric (see ``otgrid/kernels/critic_numba.py``).
residual_{1d,2d}(c, y, r, h...)
    ``r = c - D^T y``.
grad_norm_cells_{1d,2d}(f, out, h..., iso)
    ``out[b, i] = |(Df)_i|`` (2-norm or inf-norm), float64 ``out`` of shape ``(B, n_cells)``.
grad_sq_cells_{1d,2d}(f, out, h...)
    ``out[b, i] = |(Df)_i|_2^2``.
flow_norm_cells_{1d,2d}(y, u, out, h..., iso)
    ``out[b, i] = |y_i + (Du)_i|`` (2-norm or 1-norm), components on last indices taken as 0.
corrected_flow_{1d,2d}(y, u, out, h...)
    ``out = y + D u``.
unit_directions_{1d,2d}(y, top, out, iso)
    ``out = y_i / |y_i|_2`` (euclidean) or ``sign(y)`` per component (cityblock) where the flow
    exceeds ``1e-9 * top[b]``, zero elsewhere.

The reductions over cells (max, sums) are left to the array library (CuPy on a GPU) on the
float64 per-cell outputs; only the ``B`` results need to reach the host.

Precision: with float32 iterates every kernel computes in float32, except where a float64 value
enters on purpose (listed in :data:`FLOAT64_ON_PURPOSE`, checked on the PTX by the tests): the
per-cell norms of ``grad_norm_cells_2d``, ``grad_sq_cells_2d`` and ``flow_norm_cells_2d``
square and add the float32 differences in float64 (their outputs are float64 and feed float64
sums and maxima: no overflow of the squares, no float32 rounding in the norm), and
``unit_directions_{1d,2d}`` compare the flow with the float64 threshold ``1e-9 top[b]``.
:data:`PTX_SIGNATURES` lists the argument types of every launch the backend makes (float32 and
float64 iterates), for compiling the kernels to PTX without a GPU.
"""

from __future__ import annotations

import math

from numba import types as _t

from ._cuda import cuda
from ._cuda import device as _device
from ._cuda import kernel as _kernel
from .shrink import group_shrink_weighted

_group_shrink_weighted = _device(group_shrink_weighted)

__all__ = [
    "FLOAT64_ON_PURPOSE",
    "PTX_SIGNATURES",
    "corrected_flow_1d",
    "corrected_flow_2d",
    "dual_step_1d",
    "dual_step_2d",
    "flow_norm_cells_1d",
    "flow_norm_cells_2d",
    "grad_norm_cells_1d",
    "grad_norm_cells_2d",
    "grad_sq_cells_1d",
    "grad_sq_cells_2d",
    "residual_1d",
    "residual_2d",
    "unit_directions_1d",
    "unit_directions_2d",
]


@_device
def _cell_2d(p, nx, ny):  # pragma: no cover - device code
    """Problem ``b``, flat cell ``q`` and grid indices ``(i, j)`` of the thread of index ``p``."""
    b = p // (nx * ny)
    q = p - b * (nx * ny)
    i = q // ny
    return b, q, i, q - i * ny


# ----------------------------------------------------------------------------------------- 1D
@_kernel
def dual_step_1d(f, u, y, f_out, tau, sigma, rho, h, iso):  # pragma: no cover - device code
    """``f_out = f + rho tau u``; ``y <- y + rho (soft(y + sigma D(f + 2 tau u), sigma) - y)``
    (one thread/cell)."""
    nb, n = f.shape
    for p in range(cuda.grid(1), nb * n, cuda.gridsize(1)):
        b = p // n
        i = p - b * n
        tb = tau[b]
        sb = sigma[b]
        fi = f[b, i]
        ui = u[b, i]
        f_out[b, i] = fi + (rho * tb) * ui
        if i < n - 1:
            t2 = tb + tb
            y0 = y[b, 0, i]
            v = y0 + sb * ((f[b, i + 1] + t2 * u[b, i + 1] - (fi + t2 * ui)) * h)
            if v > sb:
                y[b, 0, i] = y0 + rho * (v - sb - y0)
            elif v < -sb:
                y[b, 0, i] = y0 + rho * (v + sb - y0)
            else:
                y[b, 0, i] = y0 - rho * y0
        else:
            y[b, 0, i] = 0.0


@_kernel
def residual_1d(c, y, r, h):  # pragma: no cover - device code
    """``r = c - D^T y``: ``r_i = c_i + (y_i - y_{i-1}) h`` with the boundary terms dropped."""
    nb, n = c.shape
    for p in range(cuda.grid(1), nb * n, cuda.gridsize(1)):
        b = p // n
        i = p - b * n
        v = c[b, i]
        if i < n - 1:
            v += y[b, 0, i] * h
        if i > 0:
            v -= y[b, 0, i - 1] * h
        r[b, i] = v


@_kernel
def grad_norm_cells_1d(f, out, h, iso):  # pragma: no cover - device code
    """``out[b, i] = |f_{i+1} - f_i| h`` (0 on the last cell)."""
    nb, n = f.shape
    for p in range(cuda.grid(1), nb * n, cuda.gridsize(1)):
        b = p // n
        i = p - b * n
        out[b, i] = abs(f[b, i + 1] - f[b, i]) * h if i < n - 1 else 0.0


@_kernel
def grad_sq_cells_1d(f, out, h):  # pragma: no cover - device code
    """``out[b, i] = ((f_{i+1} - f_i) h)^2`` (0 on the last cell)."""
    nb, n = f.shape
    for p in range(cuda.grid(1), nb * n, cuda.gridsize(1)):
        b = p // n
        i = p - b * n
        if i < n - 1:
            g = (f[b, i + 1] - f[b, i]) * h
            out[b, i] = g * g
        else:
            out[b, i] = 0.0


@_kernel
def flow_norm_cells_1d(y, u, out, h, iso):  # pragma: no cover - device code
    """``out[b, i] = |y_i + (u_{i+1} - u_i) h|`` (0 on the last cell)."""
    nb, n = u.shape
    for p in range(cuda.grid(1), nb * n, cuda.gridsize(1)):
        b = p // n
        i = p - b * n
        out[b, i] = abs(y[b, 0, i] + (u[b, i + 1] - u[b, i]) * h) if i < n - 1 else 0.0


@_kernel
def corrected_flow_1d(y, u, out, h):  # pragma: no cover - device code
    """``out = y + D u`` (0 on the last cell)."""
    nb, n = u.shape
    for p in range(cuda.grid(1), nb * n, cuda.gridsize(1)):
        b = p // n
        i = p - b * n
        if i < n - 1:
            out[b, 0, i] = y[b, 0, i] + (u[b, i + 1] - u[b, i]) * h
        else:
            out[b, 0, i] = 0.0


@_kernel
def unit_directions_1d(y, top, out, iso):  # pragma: no cover - device code
    """``out = sign(y)`` where ``|y| > 1e-9 top[b]``, 0 elsewhere."""
    nb = y.shape[0]
    n = y.shape[2]
    for p in range(cuda.grid(1), nb * n, cuda.gridsize(1)):
        b = p // n
        i = p - b * n
        v = y[b, 0, i]
        eps = 1e-9 * top[b]
        out[b, 0, i] = 1.0 if v > eps else (-1.0 if v < -eps else 0.0)


# ----------------------------------------------------------------------------------------- 2D
@_kernel
def dual_step_2d(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy,
                 iso):  # pragma: no cover - device code
    """``f_out = f + rho tau u``; ``y <- y + rho (shrink(y + sigma D(f + 2 tau u), sigma) - y)``
    (one thread/cell), with the dual steps ``sigma w_k`` per axis and the shrinkage in their
    metric (``w = 1`` on square cells: the plain step).

    Each thread reads its cell and its two forward neighbours of ``f`` and ``u`` and reads and
    writes only its own cell of ``y`` and ``f_out``: no two threads write the same address.
    """
    nb, nx, ny = f.shape
    for p in range(cuda.grid(1), nb * nx * ny, cuda.gridsize(1)):
        b, _, i, j = _cell_2d(p, nx, ny)
        tb = tau[b]
        sb = sigma[b] * wx
        sy = sigma[b] * wy
        t2 = tb + tb
        fij = f[b, i, j]
        uij = u[b, i, j]
        f_out[b, i, j] = fij + (rho * tb) * uij
        fb = fij + t2 * uij
        y0 = y[b, 0, i, j]
        y1 = y[b, 1, i, j]
        vx = y0
        vy = y1
        if i < nx - 1:
            vx += sb * ((f[b, i + 1, j] + t2 * u[b, i + 1, j] - fb) * hx)
        if j < ny - 1:
            vy += sy * ((f[b, i, j + 1] + t2 * u[b, i, j + 1] - fb) * hy)
        # (statements, not conditional expressions: a float32 branch and a 0.0 literal would
        # unify to float64 and convert every stored value twice; a shrunk-to-zero value
        # relaxes to y0 - rho y0)
        if iso and sb != sy:
            wx_, wy_ = _group_shrink_weighted(vx, vy, sb, sy)
            if i < nx - 1:
                y[b, 0, i, j] = y0 + rho * (wx_ - y0)
            else:
                y[b, 0, i, j] = 0.0
            if j < ny - 1:
                y[b, 1, i, j] = y1 + rho * (wy_ - y1)
            else:
                y[b, 1, i, j] = 0.0
        elif iso:
            nv = math.sqrt(vx * vx + vy * vy)
            if nv > sb and i < nx - 1:
                y[b, 0, i, j] = y0 + rho * (vx * ((nv - sb) / nv) - y0)
            elif i < nx - 1:
                y[b, 0, i, j] = y0 - rho * y0
            else:
                y[b, 0, i, j] = 0.0
            if nv > sb and j < ny - 1:
                y[b, 1, i, j] = y1 + rho * (vy * ((nv - sb) / nv) - y1)
            elif j < ny - 1:
                y[b, 1, i, j] = y1 - rho * y1
            else:
                y[b, 1, i, j] = 0.0
        else:
            if i < nx - 1 and vx > sb:
                y[b, 0, i, j] = y0 + rho * (vx - sb - y0)
            elif i < nx - 1 and vx < -sb:
                y[b, 0, i, j] = y0 + rho * (vx + sb - y0)
            elif i < nx - 1:
                y[b, 0, i, j] = y0 - rho * y0
            else:
                y[b, 0, i, j] = 0.0
            if j < ny - 1 and vy > sy:
                y[b, 1, i, j] = y1 + rho * (vy - sy - y1)
            elif j < ny - 1 and vy < -sy:
                y[b, 1, i, j] = y1 + rho * (vy + sy - y1)
            elif j < ny - 1:
                y[b, 1, i, j] = y1 - rho * y1
            else:
                y[b, 1, i, j] = 0.0


@_kernel
def residual_2d(c, y, r, hx, hy):  # pragma: no cover - device code
    """``r = c - D^T y`` (the divergence of ``y`` with zero-flux boundaries, plus ``c``)."""
    nb, nx, ny = c.shape
    for p in range(cuda.grid(1), nb * nx * ny, cuda.gridsize(1)):
        b, _, i, j = _cell_2d(p, nx, ny)
        v = c[b, i, j]
        if i < nx - 1:
            v += y[b, 0, i, j] * hx
        if i > 0:
            v -= y[b, 0, i - 1, j] * hx
        if j < ny - 1:
            v += y[b, 1, i, j] * hy
        if j > 0:
            v -= y[b, 1, i, j - 1] * hy
        r[b, i, j] = v


@_kernel
def grad_norm_cells_2d(f, out, hx, hy, iso):  # pragma: no cover - device code
    """``out[b, i*ny + j] = |(Df)_ij|``: 2-norm (``iso``) or inf-norm of the two differences."""
    nb, nx, ny = f.shape
    for p in range(cuda.grid(1), nb * nx * ny, cuda.gridsize(1)):
        b, q, i, j = _cell_2d(p, nx, ny)
        gx = abs(f[b, i + 1, j] - f[b, i, j]) * hx if i < nx - 1 else 0.0
        gy = abs(f[b, i, j + 1] - f[b, i, j]) * hy if j < ny - 1 else 0.0
        out[b, q] = math.sqrt(gx * gx + gy * gy) if iso else max(gx, gy)


@_kernel
def grad_sq_cells_2d(f, out, hx, hy):  # pragma: no cover - device code
    """``out[b, i*ny + j] = |(Df)_ij|_2^2``."""
    nb, nx, ny = f.shape
    for p in range(cuda.grid(1), nb * nx * ny, cuda.gridsize(1)):
        b, q, i, j = _cell_2d(p, nx, ny)
        gx = (f[b, i + 1, j] - f[b, i, j]) * hx if i < nx - 1 else 0.0
        gy = (f[b, i, j + 1] - f[b, i, j]) * hy if j < ny - 1 else 0.0
        out[b, q] = gx * gx + gy * gy


@_kernel
def flow_norm_cells_2d(y, u, out, hx, hy, iso):  # pragma: no cover - device code
    """``out[b, i*ny + j] = |y_ij + (Du)_ij|``: 2-norm (``iso``) or 1-norm."""
    nb, nx, ny = u.shape
    for p in range(cuda.grid(1), nb * nx * ny, cuda.gridsize(1)):
        b, q, i, j = _cell_2d(p, nx, ny)
        vx = y[b, 0, i, j] + (u[b, i + 1, j] - u[b, i, j]) * hx if i < nx - 1 else 0.0
        vy = y[b, 1, i, j] + (u[b, i, j + 1] - u[b, i, j]) * hy if j < ny - 1 else 0.0
        out[b, q] = math.sqrt(vx * vx + vy * vy) if iso else abs(vx) + abs(vy)


@_kernel
def corrected_flow_2d(y, u, out, hx, hy):  # pragma: no cover - device code
    """``out = y + D u`` (components on the last index of their axis set to 0)."""
    nb, nx, ny = u.shape
    for p in range(cuda.grid(1), nb * nx * ny, cuda.gridsize(1)):
        b, _, i, j = _cell_2d(p, nx, ny)
        uij = u[b, i, j]
        if i < nx - 1:
            out[b, 0, i, j] = y[b, 0, i, j] + (u[b, i + 1, j] - uij) * hx
        else:
            out[b, 0, i, j] = 0.0
        if j < ny - 1:
            out[b, 1, i, j] = y[b, 1, i, j] + (u[b, i, j + 1] - uij) * hy
        else:
            out[b, 1, i, j] = 0.0


@_kernel
def unit_directions_2d(y, top, out, iso):  # pragma: no cover - device code
    """Unit directions of a flow where it exceeds ``1e-9 top[b]`` (in its norm), 0 elsewhere.

    Euclidean: ``y_ij / |y_ij|_2`` where ``|y_ij|_2 > 1e-9 top[b]``. Cityblock: ``sign`` of each
    component whose magnitude exceeds ``1e-9 top[b]``.
    """
    nb = y.shape[0]
    nx = y.shape[2]
    ny = y.shape[3]
    for p in range(cuda.grid(1), nb * nx * ny, cuda.gridsize(1)):
        b, _, i, j = _cell_2d(p, nx, ny)
        vx = y[b, 0, i, j]
        vy = y[b, 1, i, j]
        eps = 1e-9 * top[b]
        if iso:
            nv = math.sqrt(vx * vx + vy * vy)
            if nv > eps:
                out[b, 0, i, j] = vx / nv
                out[b, 1, i, j] = vy / nv
            else:
                out[b, 0, i, j] = 0.0
                out[b, 1, i, j] = 0.0
        else:
            out[b, 0, i, j] = 1.0 if vx > eps else (-1.0 if vx < -eps else 0.0)
            out[b, 1, i, j] = 1.0 if vy > eps else (-1.0 if vy < -eps else 0.0)


# ------------------------------------------------------------------------ PTX signatures
def _signatures(ndim: int, dt: _t.Float) -> list[tuple[object, tuple]]:
    """``(kernel, argument types)`` of every launch of the backend for ``ndim`` axes in ``dt``.

    The array types are those numba gives C-contiguous CuPy arrays; the scalars ``h`` and the
    relaxation ``rho`` are of the arrays' dtype (the backend passes ``dt.type(1 / dx)``),
    ``iso`` a bool; per-cell
    outputs and the threshold ``top`` are float64 whatever ``dt``.
    """
    g, y, s = _t.Array(dt, ndim + 1, "C"), _t.Array(dt, ndim + 2, "C"), _t.Array(dt, 1, "C")
    cells, top, iso = _t.Array(_t.float64, 2, "C"), _t.Array(_t.float64, 1, "C"), _t.boolean
    hs = (dt,) * ndim
    k = {1: (dual_step_1d, residual_1d, grad_norm_cells_1d, grad_sq_cells_1d,
             flow_norm_cells_1d, corrected_flow_1d, unit_directions_1d),
         2: (dual_step_2d, residual_2d, grad_norm_cells_2d, grad_sq_cells_2d,
             flow_norm_cells_2d, corrected_flow_2d, unit_directions_2d)}[ndim]
    ws = hs if ndim == 2 else ()  # the 2D step's axis weights
    return [(k[0], (g, g, y, g, s, s, dt, *hs, *ws, iso)), (k[1], (g, y, g, *hs)),
            (k[2], (g, cells, *hs, iso)), (k[3], (g, cells, *hs)),
            (k[4], (y, g, cells, *hs, iso)), (k[5], (y, g, y, *hs)), (k[6], (y, top, y, iso))]


# Every (kernel, argument types) the CUDA backend launches: 1D and 2D, float32 and float64.
PTX_SIGNATURES = [sig for nd in (1, 2) for dt in (_t.float32, _t.float64)
                  for sig in _signatures(nd, dt)]

# float32 kernels whose PTX holds float64 arithmetic on purpose (see the module docstring).
FLOAT64_ON_PURPOSE = ("grad_norm_cells_2d", "grad_sq_cells_2d", "flow_norm_cells_2d",
                      "unit_directions_1d", "unit_directions_2d")
