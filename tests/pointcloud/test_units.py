"""The regularized solvers do not depend on the units of the coordinates: the same clouds in
units 1e30 (or 1e-30) times smaller give ``s`` (``s^2`` for sqeuclidean) times the cost with
``reg`` scaled alike, the same plan up to the tolerance, and converge in about as many
iterations. Before, ``smooth_ot``'s L-BFGS (``method="lbfgs"`` and the default ``"auto"``)
stalled at marginal errors of 2 to 3e3 on clouds of coordinates around 1e-12 or 1e12."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import otgrid as og
from otgrid._units import UNITS_RANGE
from otgrid.pointcloud.problem import L2_MAX_SCALE
from otgrid.pointcloud.smooth_dual import _cost_units


def _clouds():
    rng = np.random.default_rng(0)
    return rng.standard_normal((60, 2)), rng.standard_normal((50, 2)) + 1.0


def _problems(diameter, n=4, m=5):
    """What ``_cost_units`` reads of a batch of problems: cost bounds, masses, cloud sizes."""
    d = np.asarray(diameter, dtype=float)
    return SimpleNamespace(diameter=d, mass=np.ones_like(d), x=np.zeros((d.size, n, 2)),
                           y=np.zeros((d.size, m, 2)))


def test_cost_units_are_one_for_ordinary_costs_and_a_power_of_two_beyond():
    u = _cost_units(_problems([1.0, 2.0 ** UNITS_RANGE, 2.0 ** -UNITS_RANGE, 3e12, 3e-12]))
    assert list(u[:3]) == [1.0, 1.0, 1.0]
    for d, v in zip((3e12, 3e-12), u[3:], strict=True):
        assert np.frexp(v)[0] == 0.5 and 0.5 <= d / v < 1.0


def test_l2_units_follow_reg_times_the_mean_plan_entry_where_it_exceeds_the_costs():
    prob = _problems([1.0, 1.0, 1e30])       # 4 x 5 points: a mean plan entry of 1 / 20
    u = _cost_units(prob, np.array([10.0, 20e12, 20e12]))
    assert u[0] == 1.0                        # 10 / 20 is below the costs' 1: unchanged
    assert 0.5 <= 1e12 / u[1] < 1.0           # reg / 20 = 1e12 decides
    assert 0.5 <= 1e30 / u[2] < 1.0           # the costs decide


@pytest.mark.parametrize("solver,method,regularizer", [
    ("smooth_ot", "auto", "l2"), ("smooth_ot", "lbfgs", "l2"), ("smooth_ot", "lbfgs", "kl"),
    ("sinkhorn", None, None)])
@pytest.mark.parametrize("cost,scales", [("euclidean", (1e-30, 1e-12, 1e12, 1e30)),
                                         ("sqeuclidean", (1e-15, 1e15))])
def test_results_scale_with_the_units(solver, method, regularizer, cost, scales):
    x, y = _clouds()
    p = 2 if cost == "sqeuclidean" else 1
    kw = {} if solver == "sinkhorn" else {"method": method, "regularizer": regularizer}
    fn = getattr(og, solver)
    ref = fn(x, y, reg=0.05, cost=cost, **kw)
    assert ref.converged
    for s in scales:
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # no ConvergenceWarning, no RuntimeWarning
            res = fn(x * s, y * s, reg=0.05 * s ** p, cost=cost, **kw)
        assert res.converged, (s, res.message)
        assert res.iterations <= 2 * ref.iterations + 10
        assert res.transport_cost / s ** p == pytest.approx(ref.transport_cost, rel=1e-5)
        assert np.abs(res.plan() - ref.plan()).sum() <= 1e-5


def _product_cost(x, y):
    """The cost of the product plan (uniform weights): the limit of the L2-regularized
    plan as reg grows (its minimum-norm plan), from SciPy's distances."""
    return float(cdist(x, y).mean())


@pytest.mark.parametrize("method", ["auto", "lbfgs"])
@pytest.mark.parametrize("reg", [1e10, 1e50, 1e100, 1e130])
def test_l2_with_reg_far_above_the_costs_gives_the_product_plan(method, reg):
    """Before, L-BFGS (its variables in the costs' units) stalled at marginal errors of 2 from
    reg = 1e50: the potentials there have the size of reg times a plan entry."""
    x, y = _clouds()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = og.smooth_ot(x, y, reg=reg, method=method)
    assert res.converged, res.message
    assert res.transport_cost == pytest.approx(_product_cost(x, y), rel=1e-8)
    assert np.abs(res.plan() - 1.0 / (60 * 50)).max() <= 1e-10


def test_l2_refuses_costs_or_reg_whose_squares_overflow_and_kl_solves_them():
    """Squared-euclidean costs of points near 1e77 reach 1e154: the L2 dual stalled there
    (a transport cost of 0, inf or 1.4 times the optimum); it now refuses them with the
    remedy, and the KL dual (log-domain) solves the same problem."""
    x, y = _clouds()
    s = 1e77
    with pytest.raises(ValueError, match="regularizer='kl'"):
        og.smooth_ot(x * s, y * s, reg=0.05 * s * s, cost="sqeuclidean")
    with pytest.raises(ValueError, match="use a smaller reg"):
        og.smooth_ot(x, y, reg=10 * L2_MAX_SCALE)
    ref = og.smooth_ot(x, y, reg=0.05, cost="sqeuclidean", regularizer="kl")
    res = og.smooth_ot(x * s, y * s, reg=0.05 * s * s, cost="sqeuclidean", regularizer="kl")
    assert res.converged
    assert res.transport_cost / s**2 == pytest.approx(ref.transport_cost, rel=1e-5)


def test_sinkhorn_acceleration_at_potentials_beyond_1e150():
    """Anderson's Gram matrix of residuals of potentials near 1e200 (squared-euclidean
    costs of points near 1e100) overflowed to inf and its solve warned of NaN."""
    x, y = _clouds()
    ref = og.sinkhorn(x, y, reg=0.05, cost="sqeuclidean")
    s = 1e100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = og.sinkhorn(x * s, y * s, reg=0.05 * s * s, cost="sqeuclidean")
    assert res.converged
    assert res.transport_cost / s**2 == pytest.approx(ref.transport_cost, rel=1e-6)
    assert np.abs(res.plan() - ref.plan()).sum() <= 1e-5
