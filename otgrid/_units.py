"""The unit in which a solver measures lengths or costs: a power of two near their size.

Scaling by a power of two is exact in floating point, so a problem solved in such units and
scaled back gives the same bits as the original would with exact arithmetic; it keeps the
iteration's quantities far from float32's and float64's limits when the user's units are
very small or very large (a box of side 1e-30, clouds whose costs are around 1e12).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["UNITS_RANGE", "cloud_units", "unit_scale", "unit_scales"]

# Sizes within 2^-UNITS_RANGE .. 2^UNITS_RANGE are measured as they are (unit 1: ordinary
# problems run exactly as before); beyond, in the power of two just above the size.
UNITS_RANGE = 20


def unit_scale(size: float) -> float:
    """The power of two in which to measure quantities of magnitude ``size``: 1 when ``size``
    lies within ``2^-UNITS_RANGE .. 2^UNITS_RANGE`` (or is 0 or not finite), else ``2^e``
    with ``size / 2^e`` in ``[0.5, 1)``.

    Parameters
    ----------
    size : float
        A positive magnitude: the largest cell side, the largest cost.

    Returns
    -------
    float
        A power of two.
    """
    size = float(size)
    if not (math.isfinite(size) and size > 0) or 2.0 ** -UNITS_RANGE <= size <= 2.0 ** UNITS_RANGE:
        return 1.0
    return math.ldexp(1.0, math.frexp(size)[1])


def unit_scales(sizes: np.ndarray) -> np.ndarray:
    """:func:`unit_scale` of every entry of ``sizes`` (an array of magnitudes, one per
    problem).

    Parameters
    ----------
    sizes : ndarray
        Positive magnitudes (0 or non-finite entries get the unit 1).

    Returns
    -------
    ndarray
        Powers of two, of ``sizes``'s shape.
    """
    s = np.asarray(sizes, dtype=np.float64)
    out = np.ones_like(s)
    far = np.isfinite(s) & (s > 0) & ((s < 2.0 ** -UNITS_RANGE) | (s > 2.0 ** UNITS_RANGE))
    out[far] = np.ldexp(1.0, np.frexp(s[far])[1])
    return out


def cloud_units(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Two point clouds measured in the length unit of their spread.

    The unit is ``2^e = unit_scale(size)``, ``size`` the largest side of the bounding boxes
    of both clouds (over a batch); where it is not 1, the points are centred on the middle of
    their box (per problem: the differences ``x_i - y_j`` do not change, to their rounding)
    and divided by ``2^e`` (exact), so that no coordinate overflows. Differences of
    coordinates far below 1e-154, or above 1e154, are squared without underflow or overflow
    in these units.

    Parameters
    ----------
    x : ndarray, shape (B, n, d)
        Float64 points of the first cloud of each problem.
    y : ndarray, shape (B, m, d)
        Float64 points of the second cloud.

    Returns
    -------
    x_units : ndarray, shape (B, n, d)
        ``x`` in the unit (``x`` itself where ``e`` is 0).
    y_units : ndarray, shape (B, m, d)
        ``y`` in the unit.
    e : int
        Exponent of the unit: lengths in the user's units are ``2^e`` times those in the
        unit (costs of degree ``p``, ``2^(p e)`` times).
    """
    if x.size == 0 or y.size == 0:
        return x, y, 0
    lo = np.minimum(x.min(axis=1), y.min(axis=1))
    hi = np.maximum(x.max(axis=1), y.max(axis=1))
    unit = unit_scale(float(np.max(hi - lo)))
    if unit == 1.0:
        return x, y, 0
    e = math.frexp(unit)[1] - 1
    centre = (lo + 0.5 * (hi - lo))[:, None, :]
    return np.ldexp(x - centre, -e), np.ldexp(y - centre, -e), e
