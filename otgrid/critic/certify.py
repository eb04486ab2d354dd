"""Rigorous bounds on W: the final certificate of a solve, rounded outward in float64.

The bounds the iteration tracks (:mod:`otgrid.critic.certificate`) are computed with the fast
kernels and ignore rounding; they decide when to stop. At the end of a solve the best critic and
flow are certified again here, in plain NumPy float64 (no fast-math), with every rounding error
accounted for.

**The problem certified.** With the float64 masses ``mu``, ``nu`` as given and
``rho = fl(sum mu / sum nu)`` (1 when the totals are equal), the solver works on
``c = mu - rho nu - m`` where ``m = sum(mu - rho nu) / n`` in exact arithmetic (0 when the
totals are exactly equal, otherwise a rounding remainder): ``c`` sums to zero exactly, and
``W = max <c, f>`` over ``|(Df)_i| <= 1``, with the grid's float64 spacings ``dx_k`` taken as
exact. The bounds hold for this ``W``.

**Scale.** The data are first multiplied by a power of two (exactly) that brings
``|mu - rho nu|`` near 1, so that no product below underflows; the bounds are scaled back
exactly.

**Lower bound.** The critic ``g`` is certified feasible: for the per-axis constraints (1D,
``"cityblock"``) exactly, each difference being computed exactly (TwoSum) and compared with
``dx_k``; for the Euclidean one with the computed cell norms enlarged by ``8 eps`` (the
difference, the rounded ``1/dx_k``, the product, the squares, the sum and the root). A critic
that fails is divided by its computed maximum times ``1 + 16 eps`` plus
``4 eps max|g| max(1/dx)`` (the division rounds the values, which moves the differences) and
checked again. Then ``<mu - rho nu, g>`` is summed exactly from error-free transformations
(TwoSum for ``mu - rho nu``, TwoProduct for the products, ``math.fsum``), ``|m sum g|`` is
bounded by ``|m| sum |g|``, and the result is lowered by these bounds and an ulp.

**Upper bound.** A flow ``y`` costs ``sum_i |y_i|`` in the dual norm, summed with
``math.fsum`` (Euclidean cell norms with ``hypot``) and raised by its rounding. It is not
exactly feasible in floating point: its residual ``r = c - D^T y`` is accumulated in
double-double arithmetic (TwoSum, TwoProduct; the divisions by ``dx_k`` exact when ``dx_k`` is a
power of two, bounded otherwise) and, ``r`` summing to zero exactly, routing it costs at most
``||r||_1 / 2`` times the Manhattan diameter ``sum_k (N_k - 1) dx_k`` of the grid (every
feasible critic varies by at most that much). The certified upper bound is the cost plus that
term, rounded up. In 1D the flow is also rebuilt from cumulative sums of ``mu - rho nu`` (the
1D flow is unique; exact on exactly represented data), in nD it is also corrected by one more
Poisson solve in float64, and the flow with the lowest certified bound is kept.

Every exact sum is ``math.fsum``'s exactly rounded result; on large arrays an exact compiled
accumulator gives it (``otgrid.kernels.certify_numba``, bit for bit equal: tested), which also
forms the TwoProducts of ``<c, g>`` inside the sum, and the residual's per-cell double-double terms
come from one compiled pass (``otgrid.kernels.certify_numba``: the NumPy passes' operations in
their order, the same bits: tested). The bounds assume
IEEE-754 float64 arithmetic with rounding to nearest (NumPy's element-wise operations,
``math.fsum``, ``numpy.hypot`` within an ulp) and no overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from otgrid.critic.certificate import centred

__all__ = ["CertifiedBounds", "certify", "warm_up"]

_EPS = float(np.finfo(np.float64).eps)  # 2^-52; a rounding to nearest errs by at most EPS / 2
_FEASIBLE_SLACK = 8 * _EPS
_RESCALE = 1 + 16 * _EPS


@dataclass(frozen=True)
class CertifiedBounds:
    """The rigorous bounds of one problem.

    Attributes
    ----------
    lower, upper : float
        ``lower <= W <= upper`` (see the module docstring for the problem they bound).
    critic : ndarray
        The critic certified feasible (the input critic, or it divided by a factor slightly
        above 1).
    flow : ndarray
        The flow whose cost and residual give ``upper`` (the input flow, or a refinement of
        it with a smaller residual).
    rescaled : float
        The factor the critic was divided by (1.0 when it was feasible as given).
    residual : float
        The bound on ``||c - D^T y||_1`` of the flow.
    """

    lower: float
    upper: float
    critic: np.ndarray
    flow: np.ndarray
    rescaled: float
    residual: float


def _up(x: float) -> float:
    return math.nextafter(x, math.inf)


def _down(x: float) -> float:
    return math.nextafter(x, -math.inf)


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a + b = s + e`` exactly, ``s = fl(a + b)`` (Knuth's TwoSum; no overflow)."""
    s = a + b
    a2 = s - b
    b2 = s - a2
    return s, (a - a2) + (b - b2)


_SPLIT = 134217729.0  # 2^27 + 1 (Veltkamp)


def _two_prod(a: np.ndarray, b: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``a b = p + e`` exactly, ``p = fl(a b)`` (Dekker's TwoProduct with Veltkamp's split;
    exact unless a product over- or underflows)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    p = a * b
    ca, cb = _SPLIT * a, _SPLIT * b
    a_hi = ca - (ca - a)
    a_lo = a - a_hi
    b_hi = cb - (cb - b)
    b_lo = b - b_hi
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, e


# Sums one of whose parts has this many entries (a dot product's pairs counted once) run
# compiled in :func:`_exact_sum` and :func:`_exact_dot` (``otgrid.kernels.certify_numba``: an
# exact superaccumulator, ``math.fsum``'s result bit for bit, without the list of Python
# floats), and grids from this many cells form the residual's terms compiled. A certificate's
# largest part is a flow's ``ndim x cells`` components: every sum of a 512^2 solve runs
# compiled, none of a 256^2 one, whose first run so does not compile them (four kernels, about
# 2 s). (Counting the entries of all parts instead, the four TwoProduct parts of ``<c, g>`` at
# 256^2 reached 2^18 and compiled the sums inside the certificate, unannounced.)
COMPILED_SUM_FROM = 1 << 18


def warm_up(cells: int, ndim: int) -> None:
    """Compile (or load from Numba's cache) the kernels that :func:`certify` runs on a grid of
    ``cells`` cells in ``ndim`` dimensions, on tiny inputs: the exact sums from
    :data:`COMPILED_SUM_FROM` entries in ``ndim x cells`` (a flow), the residual's terms of 1D
    and 2D grids from that many cells. Free once they are compiled; a solve calls it before its
    clock starts, saying so when it compiles."""
    if cells * ndim < COMPILED_SUM_FROM:
        return
    from otgrid._threads import announce_compilation
    from otgrid.kernels import certify_numba as k

    grids = ndim in (1, 2) and cells >= COMPILED_SUM_FROM
    announce_compilation([k.exact_add, k.exact_add_products, k.exact_result]
                         + ([k.residual_terms_2d] if grids else []), "otgrid.solve_critic")
    one = np.ones(2)
    _compiled_sum(k.exact_add, [(one,)])
    _compiled_sum(k.exact_add_products, [(one, one)])
    if grids:
        _residual_terms_compiled(one, one, 1.0, np.zeros((1, 2)), (1.0,))


def _compiled_sum(add, items) -> float | None:
    """The exactly rounded sum accumulated by ``add(*item, acc)`` over ``items``; None where a
    value is not finite or the sum is beyond float64's range (``math.fsum`` decides there)."""
    from otgrid.kernels import certify_numba as k

    acc = np.zeros((k.LANES, k.CHUNKS), dtype=np.int64)
    for item in items:
        if not add(*item, acc):
            return None
    value = float(k.exact_result(acc, np.empty(k.CHUNKS)))
    return value if math.isfinite(value) else None


# Below COMPILED_SUM_FROM entries, from this many the exact sums run in NumPy by exponent
# buckets (:func:`_bucket_sum`, no compilation) instead of ``math.fsum`` over a list of Python
# floats: the same result, 8.4 instead of 15.6 ms for 2^18 entries, :func:`certify` at 256^2
# 0.043 instead of 0.092 s (its cells enter several sums of 1-4 times as many).
BUCKET_SUM_FROM = 1 << 10
# ... at most this many entries per bucket count: each count then sums integers below 2^27
# exactly in float64 (below 2^53).
_BUCKET_CHUNK = 1 << 25


def _bucket_sum(x: np.ndarray) -> float | None:
    """The exactly rounded sum of the finite float64 vector ``x``, ``math.fsum``'s result bit
    for bit; None where a value is not finite or the sum is beyond float64's range.

    Each ``x_t = M_t 2^(e_t - 53)`` with the integer ``|M_t| < 2^53`` (``numpy.frexp``); the
    halves of ``M_t`` (26 and 27 bits) are counted per exponent by ``numpy.bincount``, whose
    float64 sums of integers below ``2^53`` are exact, and the buckets are combined as one
    Python integer ``T`` with ``sum x = T 2^-1127``; ``T / 2**1127`` is correctly rounded
    (round half to even, as ``math.fsum``), and an exact zero is ``+0.0`` as there."""
    if not np.all(np.isfinite(x)):
        return None
    total = 0
    for lo in range(0, x.size, _BUCKET_CHUNK):
        m, e = np.frexp(x[lo:lo + _BUCKET_CHUNK])
        mant = m * 2.0 ** 53  # an integer: |m| < 1 has 53 significant bits
        high = np.floor(mant * 2.0 ** -26)  # the halves, exact in float64
        low = mant - high * 2.0 ** 26
        idx = e + 1074  # x = mant 2^(idx - 1127), idx >= 0 down to the subnormals
        high = np.bincount(idx, weights=high)
        low = np.bincount(idx, weights=low)
        for k in np.flatnonzero((high != 0) | (low != 0)):
            total += ((int(high[k]) << 26) + int(low[k])) << int(k)
    if total == 0:
        return 0.0
    try:
        return total / (1 << 1127)
    except OverflowError:
        return None


def _exact_sum(*parts: np.ndarray) -> float:
    """The exactly rounded sum of all the entries of ``parts``: ``math.fsum``'s result (also
    its errors on non-finite data and sums beyond float64's range; where ``math.fsum`` fails
    on an intermediate overflow of a representable sum, the compiled and bucket paths give the
    sum)."""
    flat = [np.ravel(np.asarray(x, dtype=np.float64)) for x in parts]
    if max((x.size for x in flat), default=0) >= COMPILED_SUM_FROM:
        from otgrid.kernels import certify_numba as k

        value = _compiled_sum(k.exact_add, [(x,) for x in flat])  # np.ravel: contiguous
        if value is not None:
            return value
    return _uncompiled_sum(np.concatenate(flat))


def _uncompiled_sum(x: np.ndarray) -> float:
    """:func:`_exact_sum` of the float64 vector ``x`` without the compiled kernels: by
    :func:`_bucket_sum` from :data:`BUCKET_SUM_FROM` entries, else (and where that declines)
    ``math.fsum``."""
    if x.size >= BUCKET_SUM_FROM:
        value = _bucket_sum(x)
        if value is not None:
            return value
    return math.fsum(x.tolist())


def _exact_dot(*pairs: tuple[np.ndarray, np.ndarray]) -> float:
    """The exactly rounded ``sum_t a_t b_t`` over the pairs ``(a, b)`` of same-shaped arrays:
    :func:`_exact_sum` of their TwoProducts (exact unless a product over- or underflows).
    From :data:`COMPILED_SUM_FROM` pairs in one of them the products are formed inside the compiled
    sum (``exact_add_products``) instead of as four arrays: the same result, the sum being
    exactly rounded whatever the order."""
    flat = [(np.ravel(np.asarray(a, dtype=np.float64)), np.ravel(np.asarray(b, dtype=np.float64)))
            for a, b in pairs]
    if max((a.size for a, _ in flat), default=0) >= COMPILED_SUM_FROM:
        from otgrid.kernels import certify_numba as k

        value = _compiled_sum(k.exact_add_products, flat)
        if value is not None:
            return value
    # their four arrays of parts never take the compiled path here (at 256^2 they compiled its
    # kernels, 1.4 s, in a solve that needed none)
    return _uncompiled_sum(np.concatenate([x for a, b in flat for x in _two_prod(a, b)]))


def _grad(f: np.ndarray, h: tuple[float, ...]) -> list[np.ndarray]:
    """Forward differences of ``f`` along each axis times ``h_k`` (the last index dropped)."""
    return [np.diff(f, axis=k) * h[k] for k in range(f.ndim)]


def _two_diff(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a - b = s + e`` exactly, with ``s = fl(a - b)`` (Knuth's TwoSum)."""
    s = a - b
    a2 = s + b
    b2 = s - a2
    return s, (a - a2) - (b + b2)


def _axis_feasible(g: np.ndarray, dx: tuple[float, ...]) -> bool:
    """Whether ``|g_{i+e_k} - g_i| <= dx_k`` for every cell and axis, decided exactly (the
    difference is the exact sum ``s + e``; no rounding enters the comparison)."""
    for k in range(g.ndim):
        hi = np.delete(g, 0, axis=k)
        lo = np.delete(g, -1, axis=k)
        s, e = _two_diff(hi, lo)
        d = float(dx[k])
        over = (np.abs(s) > d) | ((np.abs(s) == d) & (s * e > 0))
        if over.any():
            return False
    return True


def _max_norm(f: np.ndarray, h: tuple[float, ...], norm: str) -> float:
    """The computed ``max_i |(Df)_i|`` in the constraint norm (per-cell, last index zero)."""
    parts = _grad(f, h)
    if norm == "cityblock" or f.ndim == 1:
        return max((float(np.max(np.abs(p))) if p.size else 0.0) for p in parts)
    sq = np.zeros(f.shape)
    for k, p in enumerate(parts):
        idx = [slice(None)] * f.ndim
        idx[k] = slice(0, -1)
        sq[tuple(idx)] += p * p
    return float(np.sqrt(sq.max()))


def _feasible_critic(f: np.ndarray, dx: tuple[float, ...], norm: str
                     ) -> tuple[np.ndarray, float]:
    """``f`` divided by the smallest factor found that makes it certifiably feasible.

    Per-axis constraints (1D, cityblock) are decided exactly; the euclidean one with the
    computed norms enlarged by ``8 eps``."""
    h = tuple(1.0 / float(d) for d in dx)
    exact = norm == "cityblock" or f.ndim == 1
    g, factor = np.asarray(f, dtype=np.float64), 1.0
    for _ in range(8):
        m = _max_norm(g, h, norm)
        if _axis_feasible(g, dx) if exact else m * (1 + _FEASIBLE_SLACK) <= 1.0:
            return g, factor
        # dividing rounds every value by up to eps/2 of it: a difference moves by up to
        # eps max|g|, its slope by eps max|g| max(h) -- aim that far below 1
        s = max(m, 1.0) * _RESCALE + 4 * _EPS * float(np.max(np.abs(g))) * max(h)
        g = g / s
        factor *= s
    raise RuntimeError("could not certify the critic's feasibility (non-finite values?)")


def _is_power_of_two(x: float) -> bool:
    return math.frexp(x)[0] == 0.5


def _exact_difference(mu: np.ndarray, nu: np.ndarray, ratio: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``mu - ratio nu = hi + lo`` exactly up to ``eps^2`` (exactly when ``ratio`` is 1): TwoSum
    of ``mu`` and the TwoProduct of ``ratio nu``."""
    if ratio == 1.0:
        return _two_sum(mu, -nu)
    q, eq = _two_prod(nu, ratio)
    hi, lo = _two_sum(mu, -q)
    return hi, lo - eq


def _residual_bound(mu: np.ndarray, nu: np.ndarray, ratio: float, y: np.ndarray,
                    dx: tuple[float, ...]) -> float:
    """A bound on ``||mu - ratio nu - D^T y||_1`` (real arithmetic), with
    ``(D^T y)_i = sum_k (y_{k,i-e_k} - y_{k,i}) / dx_k``.

    Every entry is accumulated in double-double arithmetic from error-free transformations
    (TwoSum for the differences and the sums, TwoProduct for ``ratio nu``); the divisions by
    ``dx_k`` are exact when ``dx_k`` is a power of two, else bounded by ``1.01 eps`` of their
    size (the rounded ``1/dx_k`` and the product). Grids from :data:`COMPILED_SUM_FROM`
    cells in 1D and 2D form the per-cell terms in one compiled pass
    (:func:`_residual_terms_compiled`), the others with NumPy (:func:`_residual_terms`): the
    same bits."""
    if mu.ndim in (1, 2) and mu.size >= COMPILED_SUM_FROM:
        r_abs, lo_mag, bound = _residual_terms_compiled(mu, nu, ratio, y, dx)
    else:
        r_abs, lo_mag, bound = _residual_terms(mu, nu, ratio, y, dx)
    r = _exact_sum(r_abs)
    total = r + _EPS * (r + _exact_sum(lo_mag)) + _exact_sum(bound)
    # all-zero terms mean an exactly zero residual (no error was accumulated anywhere)
    return _up(total * (1 + 4 * _EPS)) if total > 0 else 0.0


def _residual_terms(mu: np.ndarray, nu: np.ndarray, ratio: float, y: np.ndarray,
                    dx: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_residual_bound`'s per-cell arrays: ``|hi + lo|`` (the residual entry as a
    double-double), the sum of the magnitudes of the low parts' increments, and the bound on
    the divisions' rounding (zero along axes whose ``dx_k`` is a power of two)."""
    hi, lo = _exact_difference(mu, nu, ratio)
    lo_mag = np.abs(lo)
    bound = np.zeros(mu.shape)
    for k in range(y.shape[0]):
        yk = np.moveaxis(y[k], k, 0)
        before = np.concatenate([np.zeros_like(yk[:1]), yk[:-1]], axis=0)
        here = yk.copy()
        here[-1] = 0.0
        d, de = _two_sum(before, -here)
        d, de = np.moveaxis(d, 0, k), np.moveaxis(de, 0, k)
        dxk = float(dx[k])
        if _is_power_of_two(dxk):
            terms = (d / dxk, de / dxk)
        else:
            h = 1.0 / dxk
            terms = (d * h, de * h)
            bound += 1.01 * _EPS * (np.abs(terms[0]) + np.abs(terms[1]))
        for t in terms:
            hi, err = _two_sum(hi, -t)
            lo = lo + err
            lo_mag = lo_mag + np.abs(err)
    return np.abs(hi + lo), lo_mag, bound


def _residual_terms_compiled(mu: np.ndarray, nu: np.ndarray, ratio: float, y: np.ndarray,
                             dx: tuple[float, ...]
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_residual_terms` from one compiled pass (``otgrid.kernels.certify_numba``: the
    same operations per cell, the same bits) instead of about thirty NumPy passes, each with
    its temporaries (1024^2: 0.45 s -> 0.02 s); 1D grids run as ``(n, 1)`` grids whose second
    axis carries no flow (its terms are exact zeros)."""
    from otgrid.kernels import certify_numba as k

    shape = mu.shape
    if mu.ndim == 1:
        mu, nu = mu[:, None], nu[:, None]
        y2 = np.zeros((2, mu.shape[0], 1))
        y2[0, :, 0] = y[0]
        y, dx = y2, (dx[0], 1.0)
    out = [np.empty(mu.shape) for _ in range(3)]
    d0, d1 = float(dx[0]), float(dx[1])
    k.residual_terms_2d(np.ascontiguousarray(mu), np.ascontiguousarray(nu), float(ratio),
                        np.ascontiguousarray(y), d0, d1, _is_power_of_two(d0),
                        _is_power_of_two(d1), 1.01 * _EPS, *out)
    if out[0].shape != shape:
        out = [o.reshape(shape) for o in out]
    return out[0], out[1], out[2]


def _cell_norms(y: np.ndarray) -> np.ndarray:
    """Euclidean norms of the flow vectors of the cells without underflow or overflow
    (``hypot``, within about an ulp)."""
    out = np.abs(y[0])
    for k in range(1, y.shape[0]):
        out = np.hypot(out, y[k])
    return out


def _upper(mu: np.ndarray, nu: np.ndarray, ratio: float, y: np.ndarray,
           dx: tuple[float, ...], norm: str, m_bound: float) -> tuple[float, float]:
    """The certified upper bound of the flow ``y`` and the bound on its residual's L1 norm."""
    n = mu.size
    for k in range(y.shape[0]):  # the faces past the last cell do not exist
        idx = [slice(None)] * mu.ndim
        idx[k] = slice(-1, None)
        y[(k, *idx)] = 0.0
    if norm == "cityblock" or mu.ndim == 1:
        cost = _exact_sum(np.abs(y))                # exactly rounded: within half an ulp
        cost_up = _up(cost) if cost > 0 else 0.0    # (an exactly rounded 0 is exact)
    else:
        cost = _exact_sum(_cell_norms(y))
        cost_up = _up(_up(cost * (1 + 2 * _EPS))) if cost > 0 else 0.0
    resid = _residual_bound(mu, nu, ratio, y, dx)
    if m_bound > 0:
        resid = _up(resid + _up(n * m_bound))
    if resid == 0.0:
        return cost_up, 0.0
    diameter = _up(math.fsum((s - 1) * float(d) for s, d in zip(mu.shape, dx, strict=True))
                   * (1 + 4 * _EPS))
    return _up(cost_up + _up(0.5 * resid * diameter)), resid


def _refined_flows(mu: np.ndarray, nu: np.ndarray, ratio: float, y: np.ndarray,
                   dx: tuple[float, ...]) -> list[np.ndarray]:
    """Flows with a smaller residual than ``y`` to try: in 1D the flow itself, rebuilt from
    the cumulative sums of ``mu - ratio nu`` (unique in 1D; exact on exactly represented
    data); in nD ``y`` plus one more Poisson correction of its residual in float64."""
    c = mu - ratio * nu
    if mu.ndim == 1:
        return [(-float(dx[0]) * np.cumsum(c))[None, :]]
    from otgrid.critic import operators as ops

    inv_dx = tuple(1.0 / float(d) for d in dx)
    r = c - ops.div_adjoint(y, inv_dx)
    r -= r.mean()
    u = ops.poisson_neumann(r, ops.inverse_eigenvalues(mu.shape, inv_dx, np.float64))
    return [y + ops.grad(u, inv_dx)]


def _imbalance(mu: np.ndarray, nu: np.ndarray, ratio: float) -> float:
    """A bound on ``|sum(mu - ratio nu)|`` (real arithmetic): ``fsum`` of ``mu`` and of the
    rounded ``-ratio nu`` together is the exactly rounded sum of those floats (exactly 0 only
    when that sum is 0), plus the rounding of the products (none when ``ratio`` is 1)."""
    s = _exact_sum(mu, -(ratio * nu))
    bound = abs(s) + (abs(_up(abs(s)) - abs(s)) if s != 0 else 0.0)
    if ratio != 1.0:
        bound += _EPS * ratio * _exact_sum(np.abs(nu))
    return _up(bound * (1 + 2 * _EPS)) if bound > 0 else 0.0


# The largest value after that scaling stays below 2^_SCALED_MAX_EXP: Veltkamp's split in
# _two_prod multiplies by 2^27 + 1, so values from 2^996 up overflow there. (It was 2^1000: a
# fuzzed problem whose only imbalance was a subnormal mass, with masses otherwise equal to
# 1e-12, was scaled by 2^999 and certified a NaN lower bound.) Six more bits of room for the
# sums of a residual and a flow's cost.
_SCALED_MAX_EXP = 990


def _power_of_two_scale(mu: np.ndarray, nu: np.ndarray, flow: np.ndarray, ratio: float
                        ) -> float:
    """``2^k`` bringing the largest ``|mu - ratio nu|`` near 1, limited so that nothing
    overflows (1 when the data are already in a safe range)."""
    hi = mu - nu if ratio == 1.0 else mu - ratio * nu   # _exact_difference's high part
    top = float(np.max(np.abs(hi))) if hi.size else 0.0
    if top == 0.0 or 2.0 ** -200 <= top <= 2.0 ** 200:
        return 1.0
    big = max(float(np.max(np.abs(mu))), float(np.max(np.abs(nu))),
              float(np.max(np.abs(flow))) if flow.size else 0.0)
    k = -math.frexp(top)[1]
    k = min(k, _SCALED_MAX_EXP - math.frexp(big)[1], 1000)     # subnormal data: 2^1000 at most
    return math.ldexp(1.0, k)


def certify(mu: np.ndarray, nu: np.ndarray, ratio: float, critic: np.ndarray,
            flow: np.ndarray, dx: tuple[float, ...], norm: str, *,
            refine: bool = True) -> CertifiedBounds:
    """Rigorous float64 bounds on ``W`` for one problem (see the module docstring).

    Parameters
    ----------
    mu, nu : ndarray, shape s
        The masses as given (float64).
    ratio : float
        ``fl(sum mu / sum nu)``, the factor the solver applied to ``nu``.
    critic : ndarray, shape s
        A critic (any constant offset).
    flow : ndarray, shape (ndim, \\*s)
        A flow with ``D^T flow`` close to ``mu - ratio nu`` (the component on the last index of
        each axis is ignored).
    dx : tuple of float
        The grid spacings.
    norm : {"euclidean", "cityblock"}
        The constraint norm (the flow cost uses the dual norm).
    refine : bool, optional
        Also try flows with a smaller residual (1D: rebuilt from cumulative sums; nD: one more
        Poisson correction) and keep the one with the lowest certified upper bound.

    Returns
    -------
    CertifiedBounds
    """
    mu = np.asarray(mu, dtype=np.float64)
    nu = np.asarray(nu, dtype=np.float64)
    flow = np.asarray(flow, dtype=np.float64)
    # work at a power-of-two scale that brings |mu - ratio nu| near 1 (exact, and no
    # underflow in the error-free products below); the bounds are scaled back exactly
    p2 = _power_of_two_scale(mu, nu, flow, ratio)
    if p2 != 1.0:
        mu, nu, flow = mu * p2, nu * p2, flow * p2
    n = mu.size
    m_bound = _imbalance(mu, nu, ratio) / n

    critic = centred(np, np.asarray(critic, dtype=np.float64)[None])[0]
    g, factor = _feasible_critic(critic, tuple(float(d) for d in dx), norm)
    c_hi, c_lo = _exact_difference(mu, nu, ratio)   # mu - ratio nu = c_hi + c_lo exactly
    value = _exact_dot((c_hi, g), (c_lo, g))   # <c, g> within half an ulp
    err = math.ulp(value) + m_bound * _exact_sum(np.abs(g))
    lower = _down(value - _up(err * (1 + 4 * _EPS)))

    lower = max(lower, 0.0)  # the zero critic is feasible: W >= 0 exactly
    best = np.array(flow, dtype=np.float64)
    upper, resid = _upper(mu, nu, ratio, best, dx, norm, m_bound)
    for y in _refined_flows(mu, nu, ratio, best, dx) if refine else ():
        up, res = _upper(mu, nu, ratio, y, dx, norm, m_bound)
        if up < upper:
            upper, resid, best = up, res, y
    if p2 != 1.0:
        lower, upper = _down(lower / p2), _up(upper / p2) if upper > 0 else 0.0
        best, resid = best / p2, _up(resid / p2)
    return CertifiedBounds(lower=max(lower, 0.0), upper=upper, critic=g, flow=best,
                           rescaled=factor, residual=resid)
