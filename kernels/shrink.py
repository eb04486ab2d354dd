"""The weighted group shrinkage of one 2D cell, in plain Python for every compiled backend.

``otgrid/kernels/critic_numba.py`` compiles it with ``numba.njit`` and
``otgrid/kernels/critic_cuda.py`` as a CUDA device function (both inlined into the step
kernels); ``otgrid.critic.operators.shrink_weighted_2`` is its NumPy reference on whole grids.
Pure arithmetic on scalars (no imports from otgrid): it runs in the scalars' own dtype (the
constants are built from the arguments, so float32 stays float32). Numba's cache does not see
changes to this file: after editing it, touch the two kernel modules (or clear their
``__pycache__``).
"""

from __future__ import annotations

import math

__all__ = ["NEWTON_STEPS", "group_shrink_weighted"]

# Newton steps at most (from below the root the iterates climb monotonically to it: at most 8
# steps to float64's resolution over random vectors and weights down to 1e-8, see
# otgrid.critic.operators.SHRINK_NEWTON_STEPS)
NEWTON_STEPS = 32


def group_shrink_weighted(vx, vy, ax, ay):
    """``argmin_w |w|_2 + (w_x - v_x)^2 / (2 a_x) + (w_y - v_y)^2 / (2 a_y)`` (``a > 0``).

    Zero where ``(v_x / a_x)^2 + (v_y / a_y)^2 <= 1``; else ``w_k = v_k t / (t + a_k)``, ``t``
    the root of ``(sum_k v_k^2 / (t + a_k)^2)^{-1/2} = 1``, by Newton's method from
    ``|v| - sum_k v_k^2 a_k / |v|^2`` (or ``|v| - max a`` if larger; the root with equal
    ``a_k``): below the root by Jensen's inequality (``1 / x^2`` is convex), and the function
    is increasing and concave (a power mean of ``t + a_k``), so the iterates climb to the root;
    stopped when a step no longer raises ``t``. Returns ``(w_x, w_y)``.
    """
    zero = ax - ax
    one = ax / ax
    px = vx / ax
    py = vy / ay
    if px * px + py * py <= one:
        return zero, zero
    n2 = vx * vx + vy * vy
    n = math.sqrt(n2)
    t = n - (vx * vx * ax + vy * vy * ay) / n2
    low = n - max(ax, ay)
    if t < low:
        t = low
    if t < zero:
        t = zero
    for _ in range(NEWTON_STEPS):
        rx = one / (t + ax)
        ry = one / (t + ay)
        qx = vx * rx
        qy = vy * ry
        qx *= qx
        qy *= qy
        g = qx + qy
        nxt = t + g * (math.sqrt(g) - one) / (qx * rx + qy * ry)
        if not nxt > t:
            break
        t = nxt
    return vx * (t / (t + ax)), vy * (t / (t + ay))
