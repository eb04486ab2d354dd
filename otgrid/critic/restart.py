"""Adaptive restarts of the Chambolle–Pock iteration and the step (primal weight) they retune."""

from __future__ import annotations

import numpy as np

from otgrid.critic.certificate import losses

__all__ = ["RESTART_EVERY", "decide_restarts", "restart"]

# Adaptive primal weight with restarts (PDLP: Applegate et al. 2021, "Practical large-scale
# linear programming using primal-dual hybrid gradient", §3.3-3.4), measured in this solver on
# the Gaussian pair and 8gaussians vs N(0, I) at 64^2 (iterations to relative gap 1e-4 / 1e-6):
# fixed step 620 / 22 220 and 1 280 / 25 550; PDLP restarts with the primal weight update
# (theta = 0.5) 240 / 6 550 and 7 520 / 16 880 -- the weight drifts until the critic (lower
# bound) stalls; restarting to the average never won. Kept: the PDLP update, but a step change
# is only applied in the direction that helps the lagging side of the certificate (the critic's
# infeasibility loss vs the flow's correction loss), and tau stays within [tau0/16, 16 tau0]:
# 240 / 1 920 and 1 280 / 6 940.
# The restart criteria are read every RESTART_EVERY[norm] iterations. With the relaxed
# iteration (iterate.RELAXATION), euclidean, every 32 instead of 64 (work summed over the nine
# problems of benchmarks/bench_hard.py, numba backend): 256^2, 1e-4 2 050 -> 1 776 (every 128:
# 2 433); 1e-6 16 898 -> 16 709 (every 16: 18 627); 128^2, 1e-4 2 295 -> 1 688, 1e-6 10 740 ->
# 10 296 (every 48: 1 867 and 11 423); 64^2, 1e-6 26 361 -> 18 152 (counts at 1e-6 swing by
# problem: 25gaussians 12 632 -> 1 581, swissroll 3 410 -> 6 050); 512^2 funnel pairs 661 ->
# 574, 1024^2 8gaussians 96 -> 92. Cityblock, 128^2, 1e-6: 3 918 -> 4 461 (256^2, 1e-4, five
# of the problems 861 -> 747): 64 stays there.
RESTART_EVERY = {"euclidean": 32, "cityblock": 64}
_PW_THETA = 0.5
_PW_CAP = 16.0
_BETA_SUFFICIENT, _BETA_NECESSARY, _BETA_ARTIFICIAL = 0.2, 0.8, 0.36


def decide_restarts(res, res0, res_prev, k_restart, k, pending) -> None:
    """PDLP's restart criteria on the fixed-point residual, per problem (in place)."""
    first = np.isnan(res0)
    res0[first] = res[first]
    since = k - k_restart
    do = ~first & ((res <= _BETA_SUFFICIENT * res0)
                   | ((res <= _BETA_NECESSARY * res0) & (res > res_prev))
                   | (since >= _BETA_ARTIFICIAL * k))
    res_prev[:] = np.where(first, np.inf, res)
    pending |= do



def restart(kern, cert, c64, f, y, u, tau, tau0, f_anchor, y_anchor, pending, res0, res_prev,
             k_restart, k, out, ids) -> None:
    """Restart the pending problems at the current iterate: new primal weight, new anchors."""
    xp = kern.xp
    js = np.flatnonzero(pending)
    jx = xp.asarray(js)
    fj, yj, uj = f[jx], y[jx], u[jx]
    f64 = fj if kern.dtype == np.float64 else fj.astype(np.float64)
    y64 = yj if kern.dtype == np.float64 else yj.astype(np.float64)
    # the moves in the norms of the iteration's metric (plain ones on square cells)
    df = np.sqrt(cert.grad_metric_sq((fj - f_anchor[jx]).astype(np.float64)))
    dy = np.sqrt(cert.flow_metric_sq((yj - y_anchor[jx]).astype(np.float64)))
    ok = (df > 0) & (dy > 0)
    proposal = tau[js].copy()
    proposal[ok] = np.exp(_PW_THETA * np.log(df[ok] / dy[ok])
                          + (1 - _PW_THETA) * np.log(tau[js][ok]))
    proposal = np.clip(proposal, tau0[js] / _PW_CAP, tau0[js] * _PW_CAP)
    c64j = c64[jx]
    if kern.dtype != np.float64 or kern.weighted:  # (weighted: u solves D^T S D u = r)
        r64 = xp.empty(c64j.shape)
        cert.residual(c64j, y64, r64)
        u64 = cert.poisson(r64)
    else:  # the step's solution may be float32 (``poisson_step``)
        u64 = uj.astype(np.float64, copy=False)
    low_loss, up_loss = losses(cert, c64j, f64, y64, u64)
    veto = ((proposal > tau[js]) & (low_loss > up_loss)) | (
        (proposal < tau[js]) & (up_loss > low_loss))
    tau[js] = np.where(veto, tau[js], proposal)
    f_anchor[jx] = fj
    y_anchor[jx] = yj
    res0[js] = np.nan
    res_prev[js] = np.inf
    k_restart[js] = k
    pending[js] = False
    for j in js:
        out[ids[j]].restarts += 1

