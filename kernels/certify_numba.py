"""The rigorous certificate's compiled loops (Numba, one thread): exact sums and residual terms.

Pure functions on arrays (no imports from otgrid), used by ``otgrid.critic.certify`` on large
grids. Numba compiles them without fast-math: every ``+``, ``-``, ``*`` and ``/`` is a correctly
rounded IEEE-754 operation and none is fused into another (no FMA contraction), which the
error-free transformations rely on. (One module: a cached kernel does not see edits of inlined
helpers in another file.)

**Exact sums.** Every finite float64 is an integer multiple of ``2^-1074`` below ``2^1024``, so
a sum of them is a (wide) integer times ``2^-1074``. The kernels accumulate it exactly in a
*superaccumulator*: ``CHUNKS`` signed 64-bit integers, chunk ``c`` weighing ``2^(32 c - 1074)``,
in ``LANES`` rows that consecutive values take in turn (added together at the end). A value's
53-bit integer significand, shifted to its bit position, is split over three consecutive chunks
(at most 32 bits each), added or subtracted without rounding; carries are propagated every
``2^29`` deposits per row, long before an ``int64`` could overflow. At the end the rows are
added and the chunks normalised to ``[0, 2^32)`` (the sign taken out), turned into float64
values (exact: 32 bits at most, at a representable position) and rounded to nearest-even by
CPython's final step of ``math.fsum`` (:func:`fsum_result`), which is correct for any
non-overlapping partials of one sign -- the chunks are. The result is therefore ``math.fsum``'s
exactly rounded sum, bit for bit (tested against ``math.fsum``), in about 2.5 ns per value
whatever the data (the partials of ``math.fsum``'s own algorithm multiply on data spread over
many binades: 44 ns per value on a 1024^2 certificate).

**Residual terms.** ``otgrid.critic.certify`` bounds the residual ``mu - ratio nu - D^T y`` of a
flow by accumulating every cell's entry in double-double arithmetic from error-free
transformations. Its NumPy version makes about thirty passes over the grid, each allocating a
temporary; :func:`residual_terms_2d` makes one, with the same floating-point operations in the
same order per cell, so its outputs are the same bits (tested).

Kernels
-------
exact_add(a, acc) -> bool
    Add the entries of the 1D float64 array ``a`` to the accumulator ``acc`` (int64 of shape
    ``(LANES, CHUNKS)``, zeros to start); False when a value is not finite (the caller then
    falls back to ``math.fsum``, which says what the sum is).
exact_add_products(a, b, acc) -> bool
    The same for the exact products ``a_t b_t``, each as the two float64 of Dekker's
    TwoProduct (exact unless a product over- or underflows), without forming them as arrays.
exact_result(acc, partials) -> float
    The exactly rounded value of the accumulated sum (``partials``: a float64 scratch buffer
    of ``CHUNKS``); ``acc`` is left with the sum normalised in its first row. Not finite
    when the sum is beyond float64's range (``math.fsum`` raises ``OverflowError`` there: the
    caller falls back to it).
fsum_result(partials, n) -> float
    The exactly rounded value of the sum of ``n`` non-overlapping float64 partials of
    increasing magnitude (CPython's final step of ``math.fsum``).
residual_terms_2d(mu, nu, ratio, y, dx0, dx1, pow0, pow1, slack, out_r, out_lo, out_b)
    Per cell of a 2D grid: ``out_r = |hi + lo|``, ``out_lo`` the sum of the magnitudes of the
    low parts, ``out_b`` the bound on the divisions' rounding (see
    ``otgrid.critic.certify._residual_bound``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["CHUNKS", "LANES", "exact_add", "exact_add_products", "exact_result", "fsum_result",
           "residual_terms_2d"]

# 2046 bit positions of significands (2^-1074 .. 2^971) plus 53 bits of significand: chunks
# 0 .. 65, and two more for the carries of sums beyond float64's range.
CHUNKS = 68
# Rows of the accumulator: consecutive values go to different rows, so that their additions to
# the same chunks do not wait for one another (a chain through memory), and the rows are added
# at the end. With four rows and no branch on the sign, 2.5-2.6 instead of 12.7-13.0 ns per
# value (2^20 values of one, of 2 000 and of sparse binades; one core): the certificate of a
# 1024^2 solve summed in 0.2 s before.
LANES = 4
_BATCH = 1 << 29  # deposits per row between carry propagations (|chunk| < 2^62 meanwhile)
_MASK = 0xFFFFFFFF
_SPLIT = 134217729.0  # 2^27 + 1 (Veltkamp), as in otgrid.critic.certify


@intrinsic
def _bits(typingctx, x):
    """The IEEE-754 bits of the float64 ``x`` as an int64 (a bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


@njit(cache=True, inline="always")
def _deposit(x, acc, lane):
    """Add the finite ``x`` to row ``lane`` of the accumulator, exactly: ``x = m 2^(p - 1074)``
    with the integer significand ``m < 2^53`` from its bits (``p = 0`` for subnormals; a zero
    adds zeros). Without branches: the sign negates the three parts arithmetically
    (``(v ^ s) - s`` with ``s`` 0 or -1), since with random signs a branch mispredicts half the
    time."""
    bits = _bits(x)
    ex = (bits >> 52) & 0x7FF
    normal = np.int64(ex != 0)
    m = (bits & 0xFFFFFFFFFFFFF) | (normal << 52)
    p = ex - normal
    c = p >> 5
    s = p & 31
    lo = (m & ((np.int64(1) << (32 - s)) - 1)) << s
    r = m >> (32 - s)
    mid = r & _MASK
    hi = r >> 32
    sg = bits >> 63  # arithmetic shift: -1 for a negative x, else 0
    acc[lane, c] += (lo ^ sg) - sg
    acc[lane, c + 1] += (mid ^ sg) - sg
    acc[lane, c + 2] += (hi ^ sg) - sg


@njit(cache=True, inline="always")
def _carry(acc):
    """Propagate carries: chunks ``0 .. CHUNKS - 2`` in ``[0, 2^32)``, the sign on the last."""
    for c in range(acc.shape[0] - 1):
        q = acc[c] >> 32                # floor division by 2^32
        acc[c] -= q << 32
        acc[c + 1] += q


@njit(cache=True, inline="always")
def _two_prod(u, v):
    """``u v = p + e`` exactly, ``p = fl(u v)`` (Dekker's TwoProduct with Veltkamp's split, the
    operations of ``otgrid.critic.certify._two_prod``; exact unless a product over- or
    underflows)."""
    p = u * v
    cu = _SPLIT * u
    cv = _SPLIT * v
    u_hi = cu - (cu - u)
    u_lo = u - u_hi
    v_hi = cv - (cv - v)
    v_lo = v - v_hi
    return p, ((u_hi * v_hi - p) + u_hi * v_lo + u_lo * v_hi) + u_lo * v_lo


@njit(cache=True, inline="always")
def _carry_lanes(acc):
    """:func:`_carry` on every row of the accumulator."""
    for lane in range(acc.shape[0]):
        _carry(acc[lane])


@njit(cache=True, inline="always")
def _deposit4(x0, x1, x2, x3, acc, k):
    """Deposit four values, one per row of the accumulator, with a carry propagation every
    ``_BATCH`` calls (``k`` counts them); returns the new count, or -1 (nothing deposited)
    when a value is not finite."""
    if not (np.isfinite(x0) and np.isfinite(x1) and np.isfinite(x2) and np.isfinite(x3)):
        return -1
    _deposit(x0, acc, 0)
    _deposit(x1, acc, 1)
    _deposit(x2, acc, 2)
    _deposit(x3, acc, 3)
    k += 1
    if k == _BATCH:
        _carry_lanes(acc)
        k = 0
    return k


@njit(cache=True)
def exact_add(a, acc):
    """Add ``a``'s entries to the accumulator (see the module docstring); False at the first
    value that is not finite."""
    n = a.shape[0]
    t = 0
    k = 0
    while t + LANES <= n:
        k = _deposit4(a[t], a[t + 1], a[t + 2], a[t + 3], acc, k)
        if k < 0:
            return False
        t += LANES
    while t < n:
        if not np.isfinite(a[t]):
            return False
        _deposit(a[t], acc, 0)
        t += 1
    _carry_lanes(acc)
    return True


@njit(cache=True)
def exact_add_products(a, b, acc):
    """Add the exact products ``a_t b_t`` to the accumulator (see the module docstring); False
    at the first product whose parts are not finite."""
    n = a.shape[0]
    t = 0
    k = 0
    while t + 2 <= n:
        p0, e0 = _two_prod(a[t], b[t])
        p1, e1 = _two_prod(a[t + 1], b[t + 1])
        k = _deposit4(p0, e0, p1, e1, acc, k)
        if k < 0:
            return False
        t += 2
    if t < n:
        p0, e0 = _two_prod(a[t], b[t])
        if not (np.isfinite(p0) and np.isfinite(e0)):
            return False
        _deposit(p0, acc, 0)
        _deposit(e0, acc, 1)
    _carry_lanes(acc)
    return True


@njit(cache=True)
def exact_result(accs, partials):
    """The exactly rounded sum held by the accumulator (see the module docstring); its rows
    are added into row 0 (exact integer sums), which is left normalised, the others zero."""
    _carry_lanes(accs)
    for lane in range(1, accs.shape[0]):
        for c in range(accs.shape[1]):
            accs[0, c] += accs[lane, c]
            accs[lane, c] = 0
    acc = accs[0]
    _carry(acc)
    sign = 1.0
    if acc[acc.shape[0] - 1] < 0:       # a negative sum: take its magnitude
        for c in range(acc.shape[0]):
            acc[c] = -acc[c]
        _carry(acc)
        sign = -1.0
    n = 0
    for c in range(acc.shape[0]):
        if acc[c] != 0:
            partials[n] = sign * math.ldexp(float(acc[c]), 32 * c - 1074)
            n += 1
    return fsum_result(partials, n)


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


# ------------------------------------------------------ the residual's terms per cell
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
    for i in range(nx):
        for j in range(ny):
            a = mu[i, j]
            if one:
                hi, lo = _two_sum(a, -nu[i, j])
            else:
                p, eq = _two_prod(nu[i, j], ratio)
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
