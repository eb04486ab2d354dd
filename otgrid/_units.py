"""The unit in which a solver measures lengths or costs: a power of two near their size.

Scaling by a power of two is exact in floating point, so a problem solved in such units and
scaled back gives the same bits as the original would with exact arithmetic; it keeps the
iteration's quantities far from float32's and float64's limits when the user's units are
very small or very large (a box of side 1e-30, clouds whose costs are around 1e12).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["UNITS_RANGE", "unit_scale", "unit_scales"]

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
