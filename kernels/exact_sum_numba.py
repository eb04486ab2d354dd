"""The exactly rounded sum of float64 arrays (Numba, one thread): ``math.fsum`` compiled.

Pure functions on arrays (no imports from otgrid). The algorithm is CPython's ``math.fsum``
(Shewchuk's adaptive-precision summation with non-overlapping partials, then the round-half-even
correction across partials), statement for statement, so the results are bit for bit those of
``math.fsum`` on finite data. It runs without converting the array into a Python list, which
is most of ``math.fsum``'s cost on large arrays.

Numba compiles these without fast-math: every ``+`` and ``-`` is a correctly rounded IEEE-754
operation, which the error-free transformations below rely on.

Kernels
-------
fsum_add(a, partials, n) -> int
    Add the entries of the 1D float64 array ``a`` to the ``n`` partials in ``partials`` (in
    place); the new count, or -1 when a value or a partial is not finite or the partials would
    not fit (the caller then falls back to ``math.fsum``).
fsum_add_products(a, b, partials, n) -> int
    The same for the exact products ``a_t b_t`` (two float64 each, from TwoProduct), without
    forming them as arrays.
fsum_result(partials, n) -> float
    The exactly rounded value of the sum the ``n`` partials represent.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["PARTIALS", "fsum_add", "fsum_add_products", "fsum_result"]

# Room for the partials. They are non-overlapping (each one's lowest set bit lies above the
# previous one's highest), so each occupies at least one of the 2 098 bit positions between
# float64's smallest subnormal and its largest exponent: finite data never need more than that.
# (Only a handful remain at the end, but dozens can be alive mid-sum: products' error terms
# 10^-30 below the values spread over many bit positions.)
PARTIALS = 4096


@njit(cache=True, inline="always")
def _add(x, partials, n):
    """Add the finite value ``x`` to the ``n`` partials; the new count, or -1 (overflow, or no
    room left)."""
    i = 0
    for j in range(n):
        y = partials[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    if x != 0.0:
        if not np.isfinite(x):
            return -1  # intermediate overflow
        if i >= partials.shape[0]:
            return -1
        partials[i] = x
        i += 1
    return i


@njit(cache=True)
def fsum_add(a, partials, n):
    """Add ``a``'s entries to the partials (see the module docstring)."""
    for t in range(a.shape[0]):
        x = a[t]
        if not np.isfinite(x):
            return -1
        n = _add(x, partials, n)
        if n < 0:
            return -1
    return n


_SPLIT = 134217729.0  # 2^27 + 1 (Veltkamp), as in otgrid.critic.certify


@njit(cache=True)
def fsum_add_products(a, b, partials, n):
    """Add the exact products ``a_t b_t`` to the partials: each as ``p + e`` (Dekker's
    TwoProduct with Veltkamp's split, the operations of ``otgrid.critic.certify._two_prod``;
    exact unless a product over- or underflows), ``p`` then ``e``."""
    for t in range(a.shape[0]):
        u = a[t]
        v = b[t]
        p = u * v
        cu = _SPLIT * u
        cv = _SPLIT * v
        u_hi = cu - (cu - u)
        u_lo = u - u_hi
        v_hi = cv - (cv - v)
        v_lo = v - v_hi
        e = ((u_hi * v_hi - p) + u_hi * v_lo + u_lo * v_hi) + u_lo * v_lo
        if not (np.isfinite(p) and np.isfinite(e)):
            return -1
        n = _add(p, partials, n)
        if n < 0:
            return -1
        n = _add(e, partials, n)
        if n < 0:
            return -1
    return n


@njit(cache=True)
def fsum_result(partials, n):
    """The correctly rounded sum of ``partials[:n]`` (CPython's final step of ``math.fsum``)."""
    hi = 0.0
    if n > 0:
        n -= 1
        hi = partials[n]
        lo = 0.0
        while n > 0:
            x = hi
            n -= 1
            y = partials[n]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        # half-even rounding across partials: when the part left below lo has lo's sign, the
        # true sum lies beyond the half-way point that hi + lo rounded to
        if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0)
                      or (lo > 0.0 and partials[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi
