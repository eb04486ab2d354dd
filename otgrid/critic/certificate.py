"""The certificate of the grid critic: bounds on W that hold whatever the iterate.

Lower bound: ``<c, f / max(1, max_i |(Df)_i|)>`` for the best of a few feasible critics built
from the iterate (plain rescaling, a repair sweep, in 2D the two ray critics and, when switched
on, a nondecreasing map of the values, the critic recovered from the flow), near the tolerance
also the check's best critic moved by the feasible ascent. Upper bound:
``sum_i |y_i + (Du)_i|`` with
``D^T D u = c - D^T y`` (one DCT solve), the cost of an exactly feasible flow, near the
tolerance also that flow lowered by the descent (circulations around plaquettes). :class:`Best`
keeps the best of both seen so far per problem; :func:`losses` says what each side loses at an
iterate (used by the restarts).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Best", "centred", "losses"]


def centred(xp, g):
    """The critics ``g`` ``(B, *shape)`` less their midrange where that offset exceeds their
    spread (else ``g`` itself, the same bits). A critic is defined up to a constant, but
    ``<c, g>`` is not: the masses' rounding leaves ``sum c`` a few ulps from 0 and the
    products' rounding grows with ``|g|``, so a critic far from 0 (a nearly constant repair of
    a wildly infeasible iterate: 5e16 with a step of 1e20) gave a check a lower bound of 224
    on a W of 5.7, above the upper bound; the rigorous certificate's imbalance term
    (``m_bound sum |g|``) shrinks the same way."""
    axes = tuple(range(1, g.ndim))
    lo, hi = g.min(axis=axes), g.max(axis=axes)
    mid = 0.5 * lo + 0.5 * hi
    far = xp.abs(mid) > hi - lo
    if not bool(far.any()):
        return g
    return g - xp.where(far, mid, 0.0).reshape((-1,) + (1,) * len(axes))


class Best:
    """Per problem: the best certified bounds seen so far, with the critic and flow attaining them.

    Arrays are indexed by the problem's position in the caller's batch; ``ids`` maps the active
    (not yet finished) problems of the iteration to those positions.
    """

    def __init__(self, cert, nb: int, shape: tuple[int, ...]) -> None:
        xp = cert.xp
        self.lower = np.full(nb, -np.inf)
        self.upper = np.full(nb, np.inf)
        self.critic = xp.zeros((nb, *shape))
        self.flow_y = xp.zeros((nb, len(shape), *shape))
        self.flow_u = xp.zeros((nb, *shape))

    def update(self, cert, ids, c64, f64, y64, u64, flow_candidates: bool,
               polish_below: float | None = None, ascend_sweeps: int | None = None,
               done_below: float = 0.0) -> None:
        """Evaluate the certificate of the iterates ``(f, y)`` (``u`` their Poisson corrections).

        ``polish_below``: a relative gap below which this check's flow is then
        lowered by the descent (``cert.descend``: circulations, the divergence stays) and its
        best critic improved by the feasible ascent (``cert.ascend``: ``<c, g>`` only grows,
        ``ascend_sweeps`` sweeps, default ``ASCENT_SWEEPS``), which near the optimum give back
        much of what the bounds lose to the iterate's infeasibility. Not where the relative gap
        is already at most ``done_below`` (the solve's tolerance: it stops)."""
        upper = cert.flow_cost(y64, u64)
        xp = cert.xp
        for j in np.flatnonzero(upper < self.upper[ids]):
            b = ids[j]
            self.upper[b] = upper[j]
            self.flow_y[b] = y64[j]
            self.flow_u[b] = u64[j]
        cands = [f64, cert.repair(f64), cert.level_rescale(f64), *cert.ray_critics(f64)]
        if flow_candidates:
            ix = xp.asarray(ids)
            g = cert.flow_critic(cert.corrected_flow(self.flow_y[ix], self.flow_u[ix]))
            cands += [g, cert.repair(g)]
        # this check's best candidate per problem (candidate array, row, its rescaling)
        fresh: list = [None] * len(ids)
        fresh_low = np.full(len(ids), -np.inf)
        for cand in cands:
            if cand is None:
                continue
            cand = centred(xp, cand)
            lip = np.maximum(1.0, cert.max_grad_norm(cand))
            lower = cert.dot(c64, cand) / lip
            for j in np.flatnonzero(lower > fresh_low):
                fresh_low[j] = lower[j]
                fresh[j] = (cand, j, lip[j])
            self._keep(ids, cand, lower, lip)
        if polish_below is None:
            return
        gap = self.upper[ids] - self.lower[ids]
        near = (np.isfinite(gap) & (gap <= polish_below * self.upper[ids])
                & (gap > done_below * self.upper[ids]))
        js = np.flatnonzero(near & np.isfinite(fresh_low))
        start = (cert.xp.stack([fresh[j][0][fresh[j][1]] / fresh[j][2] for j in js])
                 if js.size else None)
        # the candidates (up to three grid arrays per problem) go before the polish allocates
        del cands, fresh, cand
        self._descend(cert, ids, np.flatnonzero(near), y64, u64)
        self._ascend(cert, ids, js, c64, start, ascend_sweeps)

    def _descend(self, cert, ids, js, y64, u64) -> None:
        """Keep the descent of this check's flows ``js`` (positions in ``ids``) where it beats
        the best upper bound (the flow kept may have been descended already)."""
        if not js.size:
            return
        xp = cert.xp
        if js.size < u64.shape[0]:  # (all: no copies)
            jx = xp.asarray(js)
            y64, u64 = y64[jx], u64[jx]
        p = cert.descend(cert.corrected_flow(y64, u64), own=True)
        if p is None:
            return
        cost = cert.flow_cost(p, xp.zeros((js.size, *u64.shape[1:]), dtype=u64.dtype))
        for j in np.flatnonzero(cost < self.upper[ids[js]]):
            b = ids[js[j]]
            self.upper[b] = cost[j]
            self.flow_y[b] = p[j]
            self.flow_u[b] = 0.0

    def _ascend(self, cert, ids, js, c64, start, sweeps) -> None:
        """Keep the ascent of this check's best critics ``start`` (feasible, one per entry of
        ``js``: positions in ``ids``) where it beats the best lower bound. Not the best kept so
        far: once that has been ascended it sits at a fixed point of the sweeps, while the
        iterate goes on."""
        if not js.size:
            return
        xp = cert.xp
        jx = xp.asarray(js)
        g = cert.ascend(start, c64[jx], sweeps)
        if g is not None:
            g = centred(xp, g)
            lip = np.maximum(1.0, cert.max_grad_norm(g))
            self._keep(ids[js], g, cert.dot(c64[jx], g) / lip, lip)

    def _keep(self, ids, cand, lower, lip) -> None:
        """Keep the candidates ``cand`` (divided by ``lip``) whose lower bound beats the best."""
        for j in np.flatnonzero(lower > self.lower[ids]):
            b = ids[j]
            self.lower[b] = lower[j]
            self.critic[b] = cand[j] / lip[j]



def losses(cert, c64, f64, y64, u64) -> tuple[np.ndarray, np.ndarray]:
    """What the certificate loses on each side at the iterate ``(f, y)``, per problem.

    Lower side: ``<c, f>`` minus the certified lower bound of ``f`` (rescaled or repaired), the
    price of the critic's infeasibility. Upper side: the cost of the corrected flow ``y + Du``
    minus ``sum |y|``, the price of the flow's divergence error.
    """
    cf = cert.dot(c64, f64)
    low = cf / np.maximum(1.0, cert.max_grad_norm(f64))
    rep = cert.repair(f64)
    if rep is not None:
        low = np.maximum(low, cert.dot(c64, rep) / np.maximum(1.0, cert.max_grad_norm(rep)))
    up = cert.flow_cost(y64, u64) - cert.flow_cost(y64, cert.xp.zeros_like(u64))
    return cf - low, up

