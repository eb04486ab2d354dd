"""The per-cell residual terms of the rigorous certificate (Numba, one thread).

Pure functions on arrays (no imports from otgrid). ``otgrid.critic.certify`` bounds the
residual ``mu - ratio nu - D^T y`` of a flow by accumulating every cell's entry in double-double
arithmetic from error-free transformations. Its NumPy version makes about thirty passes over
the grid, each allocating a temporary; this kernel makes one, with the same floating-point
operations in the same order per cell, so its outputs are the same bits (tested).

Numba compiles it without fast-math: every ``+``, ``-``, ``*`` and ``/`` is a correctly
rounded IEEE-754 operation and none is fused into another (no FMA contraction), which the
error-free transformations rely on.

Kernels
-------
residual_terms_2d(mu, nu, ratio, y, dx0, dx1, pow0, pow1, slack, out_r, out_lo, out_b)
    Per cell of a 2D grid: ``out_r = |hi + lo|``, ``out_lo`` the sum of the magnitudes of the
    low parts, ``out_b`` the bound on the divisions' rounding (see
    ``otgrid.critic.certify._residual_bound``).
"""

from __future__ import annotations

from numba import njit

__all__ = ["residual_terms_2d"]

_SPLIT = 134217729.0  # 2^27 + 1 (Veltkamp), as in otgrid.critic.certify


@njit(cache=True, inline="always")
def _two_sum(a, b):
    s = a + b
    a2 = s - b
    b2 = s - a2
    return s, (a - a2) + (b - b2)


@njit(cache=True, error_model="numpy")
def residual_terms_2d(mu, nu, ratio, y, dx0, dx1, pow0, pow1, slack, out_r, out_lo, out_b):
    """The certificate's residual terms per cell (see the module docstring).

    ``mu``, ``nu`` ``(nx, ny)``; ``y`` ``(2, nx, ny)`` (``y[k]`` on the face between cell ``i``
    and ``i + e_k``; the last face along ``k`` counts as 0); ``dx0``, ``dx1`` the spacings,
    ``pow0``, ``pow1`` whether each is a power of two (its division is then exact, else the
    product with its rounded inverse adds ``slack`` times the terms' size to ``out_b``).
    """
    nx, ny = mu.shape
    h0 = 1.0 / dx0
    h1 = 1.0 / dx1
    one = ratio == 1.0
    if not one:
        cb = _SPLIT * ratio
        b_hi = cb - (cb - ratio)
        b_lo = ratio - b_hi
    for i in range(nx):
        for j in range(ny):
            a = mu[i, j]
            if one:
                hi, lo = _two_sum(a, -nu[i, j])
            else:
                v = nu[i, j]
                p = v * ratio
                ca = _SPLIT * v
                a_hi = ca - (ca - v)
                a_lo = v - a_hi
                eq = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
                hi, lo = _two_sum(a, -p)
                lo = lo - eq
            lo_mag = abs(lo)
            bound = 0.0
            for k in range(2):
                if k == 0:
                    before = y[0, i - 1, j] if i > 0 else 0.0
                    here = y[0, i, j] if i < nx - 1 else 0.0
                else:
                    before = y[1, i, j - 1] if j > 0 else 0.0
                    here = y[1, i, j] if j < ny - 1 else 0.0
                d, de = _two_sum(before, -here)
                exact = pow0 if k == 0 else pow1
                if exact:
                    dxk = dx0 if k == 0 else dx1
                    t0 = d / dxk
                    t1 = de / dxk
                else:
                    h = h0 if k == 0 else h1
                    t0 = d * h
                    t1 = de * h
                    bound = bound + slack * (abs(t0) + abs(t1))
                hi, err = _two_sum(hi, -t0)
                lo = lo + err
                lo_mag = lo_mag + abs(err)
                hi, err = _two_sum(hi, -t1)
                lo = lo + err
                lo_mag = lo_mag + abs(err)
            out_r[i, j] = abs(hi + lo)
            out_lo[i, j] = lo_mag
            out_b[i, j] = bound
