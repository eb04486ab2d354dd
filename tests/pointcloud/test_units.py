"""The regularized solvers do not depend on the units of the coordinates: the same clouds in
units 1e30 (or 1e-30) times smaller give ``s`` (``s^2`` for sqeuclidean) times the cost with
``reg`` scaled alike, the same plan up to the tolerance, and converge in about as many
iterations. Before, ``smooth_ot``'s L-BFGS (``method="lbfgs"`` and the default ``"auto"``)
stalled at marginal errors of 2 to 3e3 on clouds of coordinates around 1e-12 or 1e12."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import otgrid as og
from otgrid._units import UNITS_RANGE
from otgrid.pointcloud.smooth_dual import _cost_units


def _clouds():
    rng = np.random.default_rng(0)
    return rng.standard_normal((60, 2)), rng.standard_normal((50, 2)) + 1.0


def test_cost_units_are_one_for_ordinary_costs_and_a_power_of_two_beyond():
    u = _cost_units(np.array([1.0, 2.0 ** UNITS_RANGE, 2.0 ** -UNITS_RANGE, 3e12, 3e-12]))
    assert list(u[:3]) == [1.0, 1.0, 1.0]
    for d, v in zip((3e12, 3e-12), u[3:], strict=True):
        assert np.frexp(v)[0] == 0.5 and 0.5 <= d / v < 1.0


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
