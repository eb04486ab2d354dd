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


@pytest.mark.parametrize("regularizer", ["l2", "kl"])
def test_costs_whose_squares_overflow_are_solved_in_the_points_units(regularizer):
    """Squared-euclidean costs of points near 1e77 reach 1e154: the L2 dual stalled there
    (a transport cost of 0, inf or 1.4 times the optimum), then refused them; the points
    are now measured in a unit near their spread, where the costs are of order 1, and both
    duals solve the problem. A reg whose square overflows even there is still refused."""
    x, y = _clouds()
    s = 1e77
    with pytest.raises(ValueError, match="use a smaller reg"):
        og.smooth_ot(x, y, reg=10 * L2_MAX_SCALE)
    with pytest.raises(ValueError, match="use a smaller reg"):
        og.smooth_ot(x * s, y * s, reg=1e4 * L2_MAX_SCALE * s * s, cost="sqeuclidean")
    ref = og.smooth_ot(x, y, reg=0.05, cost="sqeuclidean", regularizer=regularizer)
    res = og.smooth_ot(x * s, y * s, reg=0.05 * s * s, cost="sqeuclidean",
                       regularizer=regularizer)
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


# ---------------------------------------------------------------- the whole float64 range
def _pot_sinkhorn_cost(x, y, reg, cost):
    """POT's log-domain Sinkhorn <P, C> (uniform weights), the reference at scale 1; our
    ``reg`` is POT's (see the docstring of og.sinkhorn, "POT's convention")."""
    import ot

    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    return float(ot.sinkhorn2(a, b, cdist(x, y, metric=cost), reg, method="sinkhorn_log",
                              stopThr=1e-13, numItermax=100_000))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("cost,scales", [
    ("euclidean", (1e-170, 1e-100, 1e100, 1e140)), ("cityblock", (1e-170, 1e100)),
    ("sqeuclidean", (1e-150, 1e-100, 1e100))])
def test_tiny_and_huge_coordinates_give_the_scaled_results(backend, cost, scales):
    """Before, squared differences of coordinates below about 1e-154 underflowed: clouds at
    1e-170 returned 'converged' with a transport cost of 0 (euclidean, silently), 1.7e-4 off
    at 1e-160; smooth_ot stalled with a marginal error of 2."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((12, 2)), rng.standard_normal((15, 2)) + 0.5
    p = 2 if cost == "sqeuclidean" else 1
    reg = 0.2
    ref = og.sinkhorn(x, y, reg=reg, cost=cost, tol=1e-12, backend=backend)
    assert ref.transport_cost == pytest.approx(_pot_sinkhorn_cost(x, y, reg, cost), rel=1e-8)
    sm_ref = og.smooth_ot(x, y, reg=reg, cost=cost, tol=1e-10, backend=backend)
    for s in scales:
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # no ConvergenceWarning, no RuntimeWarning
            res = og.sinkhorn(x * s, y * s, reg=reg * s**p, cost=cost, tol=1e-12,
                              backend=backend)
            sm = og.smooth_ot(x * s, y * s, reg=reg * s**p, cost=cost, tol=1e-10,
                              backend=backend)
        for r, r0 in ((res, ref), (sm, sm_ref)):
            assert r.converged, (s, r.message)
            assert r.reg == reg * s**p
            assert r.transport_cost / s**p == pytest.approx(r0.transport_cost, rel=1e-6)
            assert r.objective / s**p == pytest.approx(r0.objective, rel=1e-6)
            np.testing.assert_allclose(r.f / s**p, r0.f, rtol=1e-6, atol=1e-6 * abs(r0.f).max())
            assert np.abs(r.plan() - r0.plan()).sum() <= 1e-6
            np.testing.assert_allclose(r.apply_plan(np.ones(15)), r0.apply_plan(np.ones(15)),
                                       atol=1e-9)
            assert r.history.reg[-1] == r.reg


def test_a_warm_start_and_transfer_at_tiny_coordinates():
    """Warm starts (potentials of the user's units) and transfer_potentials' c-transforms
    (costs formed from the points) at coordinates near 1e-170."""
    from otgrid.sco import transfer_potentials

    x, y = _clouds()
    s = 1e-170
    ref = og.sinkhorn(x, y, reg=0.05)
    res = og.sinkhorn(x * s, y * s, reg=0.05 * s)
    again = og.sinkhorn(x * s, y * s, reg=0.05 * s, warm_start=res)
    assert again.converged and again.iterations <= 2
    f, g = transfer_potentials(res, x * s, y * s)
    f0, g0 = transfer_potentials(ref, x, y)
    np.testing.assert_allclose(f / s, f0, atol=1e-12)
    np.testing.assert_allclose(g / s, g0, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_costs_below_the_smallest_normal_float_are_refused(backend):
    """Before: sqeuclidean at 1e-155 with reg 1e-311 raised a bare ZeroDivisionError from the
    numba kernel (max_iter and NaN with numpy); float32 points at 1e-170 were flushed to 0."""
    x, y = _clouds()
    with pytest.raises(ValueError, match="cannot be represented"):
        og.sinkhorn(x * 1e-155, y * 1e-155, reg=1e-311, cost="sqeuclidean", backend=backend)
    with pytest.raises(ValueError, match="smallest normal float64"):
        og.smooth_ot(x * 1e-160, y * 1e-160, reg=1e-320, cost="sqeuclidean", backend=backend)
    with pytest.raises(ValueError, match="smallest normal float32"):
        og.sinkhorn(x * 1e-170, y * 1e-170, reg=1e-171, dtype=np.float32, backend=backend)
    s = 1e-20                                # float32 holds these points and costs
    ref = og.sinkhorn(x, y, reg=0.05, backend=backend)
    res = og.sinkhorn(x * s, y * s, reg=0.05 * s, dtype=np.float32, backend=backend)
    assert res.transport_cost / s == pytest.approx(ref.transport_cost, rel=1e-5)
