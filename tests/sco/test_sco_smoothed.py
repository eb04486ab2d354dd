"""The smoothed-WGAN generator step (Sanjabi et al., Alg. 1): otgrid.sco.smoothed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from otgrid.errors import ConvergenceWarning
from otgrid.grid import Normal
from otgrid.pointcloud import sinkhorn, smooth_ot
from otgrid.sco.generators import Affine, LocationScale
from otgrid.sco.smoothed import (
    SmoothedResult,
    SmoothedStep,
    fit_smoothed,
    smoothed_gradient,
    transfer_potentials,
)


def _l2_value_clarabel(x, y, reg, cost):
    """min_P <P, C> + reg sum P^2 / (2 a b) over the plans, by cvxpy + Clarabel."""
    cp = pytest.importorskip("cvxpy")
    n, m = len(x), len(y)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    C = cdist(x, y, metric=cost)
    P = cp.Variable((n, m), nonneg=True)
    W = 1.0 / (2.0 * np.outer(a, b))
    obj = cp.sum(cp.multiply(C, P)) + reg * cp.sum(cp.multiply(W, cp.square(P)))
    prob = cp.Problem(cp.Minimize(obj), [cp.sum(P, axis=1) == a, cp.sum(P, axis=0) == b])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-13, tol_gap_rel=1e-13, tol_feas=1e-13)
    return float(prob.value)


def _kl_value_pot(x, y, reg, cost):
    """min_P <P, C> + reg KL(P | a b^T) by POT's log-domain Sinkhorn."""
    ot = pytest.importorskip("ot")
    n, m = len(x), len(y)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    C = cdist(x, y, metric=cost)
    P = ot.sinkhorn(a, b, C, reg, method="sinkhorn_log", stopThr=1e-14, numItermax=200_000)
    return float(np.sum(P * C) + reg * np.sum(P * np.log(P / np.outer(a, b))))


@pytest.mark.parametrize(("regularizer", "cost", "reg", "value"), [
    ("l2", "cityblock", 0.05, _l2_value_clarabel),
    ("kl", "euclidean", 0.1, _kl_value_pot),
])
def test_step_direction_is_the_derivative_of_the_regularized_value(regularizer, cost, reg,
                                                                   value):
    """Envelope theorem: the step equals d/dtheta of the regularized OT value of the batch,
    the value computed by an independent solver (Clarabel QP / POT Sinkhorn)."""
    rng = np.random.default_rng(1)
    gen = Affine([[0.8, 0.3], [-0.2, 0.6]], [0.3, -0.1])
    z = gen.sample_latent(9, rng)
    y = rng.normal(size=(11, 2)) * [0.7, 0.4] + [0.5, 0.2]
    grad, res = smoothed_gradient(gen, z, y, reg=reg, regularizer=regularizer, cost=cost,
                                  tol=1e-11, max_iter=100_000)
    assert res.converged
    theta, h = gen.params, 1e-4
    fd = np.empty(theta.size)
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = h
        vals = []
        for sign in (1.0, -1.0):
            gen.params = theta + sign * e
            vals.append(value(gen.sample(z), y, reg, cost))
        fd[i] = (vals[0] - vals[1]) / (2 * h)
    gen.params = theta
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=2e-5)
    # and our dual value agrees with the independent solver
    assert res.objective == pytest.approx(value(gen.sample(z), y, reg, cost), rel=1e-7)


def test_cost_gradients_of_the_three_costs():
    """With one target point the step is vjp of grad_x c(x, y), written out by hand."""
    gen = LocationScale([0.0, 0.0], [1.0, 1.0])
    z = np.array([[1.0, 2.0], [-1.0, 0.5]])
    y = np.array([[0.0, 0.0]])
    for cost, per_point in (("sqeuclidean", 2 * z),
                            ("euclidean", z / np.linalg.norm(z, axis=1, keepdims=True)),
                            ("cityblock", np.sign(z))):
        grad, _ = smoothed_gradient(gen, z, y, reg=0.1, cost=cost, tol=1e-12)
        # a = 1/2 per point, the plan is forced: P_i1 = 1/2
        want = gen.vjp(z, 0.5 * per_point)
        np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-12)


def test_transfer_potentials_is_the_c_transform_and_speeds_up_the_next_solve():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) * 0.5 + 1.0
    res = smooth_ot(x, y, reg=0.02, cost="euclidean", tol=1e-8)
    x2 = x + 0.01 * rng.normal(size=x.shape)
    y2 = rng.normal(size=(50, 2)) * 0.5 + 1.0
    f, g = transfer_potentials(res, x2, y2)
    C_old, C_new = cdist(x, y2), cdist(x2, y2)
    np.testing.assert_allclose(g, np.min(C_old - res.f[:, None], axis=0))
    np.testing.assert_allclose(f, np.min(C_new - g[None, :], axis=1))
    cold = smooth_ot(x2, y2, reg=0.02, cost="euclidean", tol=1e-8)
    warm = smooth_ot(x2, y2, reg=0.02, cost="euclidean", tol=1e-8, warm_start=(f, g))
    assert warm.converged and warm.objective == pytest.approx(cold.objective, rel=1e-6)
    assert warm.iterations < cold.iterations
    with pytest.raises(TypeError, match="RegularizedResult"):
        transfer_potentials((f, g), x2, y2)
    # works for Sinkhorn results too
    s = sinkhorn(x, y, reg=0.05)
    assert transfer_potentials(s, x2, y2)[1].shape == (50,)


@pytest.mark.parametrize("ndim", [1, 2])
def test_gaussian_fit_converges(ndim):
    """LocationScale fit of N(mu, diag(sigma^2)) from a far start (closed-form target).

    The optimum of the expected minibatch objective is not the target exactly: minibatch
    OT shrinks the scales (by 7-12% at S = 128 here, measured) and the regularizer adds a bias of
    order reg; the tolerances allow for that and nothing more."""
    if ndim == 1:
        target, mu, sigma = Normal(1.0, 0.25), np.array([1.0]), np.array([0.5])
        gen = LocationScale(-2.0, 0.05)
    else:
        mu, sigma = np.array([0.5, -0.3]), np.array([0.6, 0.4])
        target = Normal(mu, sigma ** 2)
        gen = LocationScale([-1.0, 1.0], [0.1, 1.5])
    res = fit_smoothed(target, gen, steps=250, lr=0.03, batch=128, reg=0.01, rng=0)
    assert isinstance(res, SmoothedResult) and res.status == "steps" and res.steps == 250
    tail = res.trajectory[-80:].mean(axis=0)
    np.testing.assert_allclose(tail[:ndim], mu, atol=0.03)
    np.testing.assert_allclose(np.abs(tail[ndim:]), sigma, rtol=0.15)
    truth = np.concatenate([mu, sigma])
    start = np.abs(res.trajectory[0] - truth).max()
    tail[ndim:] = np.abs(tail[ndim:])
    assert np.abs(tail - truth).max() < 0.1 * start
    assert res.dual_converged.all() and res.objective[-50:].mean() < 0.2 * res.objective[0]
    assert res.dual_seconds.shape == res.generator_seconds.shape == (250,)


def test_samples_as_target_param_stop_and_callback():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2000, 1)) * 0.5 + 1.0
    gen = LocationScale(0.0, 0.5)
    res = fit_smoothed(data, gen, steps=500, lr=0.05, batch=64, reg=0.05, cost="euclidean",
                       true_params=[1.0, 0.5], stop_param_tol=0.05, rng=1)
    assert res.converged and res.status == "param_tol" and res.param_error[-1] <= 0.05
    assert res.steps < 500 and res.param_error.shape == (res.steps + 1,)
    seen = []
    res = fit_smoothed(data, LocationScale(0.0, 0.5), steps=50, batch=32, rng=1,
                       callback=lambda info: seen.append(info) or info.step == 3)
    assert res.status == "callback" and res.steps == 3 and len(seen) == 3
    assert isinstance(seen[0], SmoothedStep) and seen[0].dual_iterations > 0


def test_diverging_learning_rate_and_nan_end_with_the_last_good_state():
    gen = LocationScale(0.0, 1.0)
    with pytest.warns(ConvergenceWarning, match="Stopped early"):
        res = fit_smoothed(Normal(0.0, 1.0), gen, steps=50, lr=1e8, optimizer="sgd",
                           batch=32, rng=0)
    assert res.status in ("diverged", "non_finite")
    assert np.all(np.isfinite(res.params)) and "lr=" in res.message
    np.testing.assert_array_equal(gen.params, res.params)

    class NaNAfter(LocationScale):
        calls = 0

        def vjp(self, z, grad_x):
            NaNAfter.calls += 1
            out = super().vjp(z, grad_x)
            return out * np.nan if NaNAfter.calls > 2 else out

    gen = NaNAfter(0.0, 1.0)
    with pytest.warns(ConvergenceWarning, match="not finite"):
        res = fit_smoothed(Normal(1.0, 1.0), gen, steps=10, batch=16, rng=0)
    assert res.status == "non_finite" and res.steps == 2
    assert np.all(np.isfinite(res.objective)) and res.trajectory.shape == (3, 2)
    np.testing.assert_array_equal(gen.params, res.trajectory[-1])


def test_dual_iteration_limit_warns_once():
    with pytest.warns(ConvergenceWarning, match="dual_max_iter=1"):
        res = fit_smoothed(Normal(1.0, 1.0), LocationScale(0.0, 1.0), steps=3, batch=16,
                           dual_max_iter=1, dual_tol=1e-12, rng=0)
    assert res.steps == 3 and not res.dual_converged.any()


@pytest.mark.parametrize(("kw", "err", "words"), [
    (dict(lr=-1.0), ValueError, "lr must be a positive"),
    (dict(reg=0.0), ValueError, "reg must be a positive"),
    (dict(regularizer="entropy"), ValueError, "regularizer"),
    (dict(cost="l3"), ValueError, "cost"),
    (dict(betas=(0.5, 1.0)), ValueError, "betas"),
    (dict(stop_param_tol=0.1), ValueError, "needs true_params"),
    (dict(true_params=[1.0]), ValueError, "2 entries"),
    (dict(callback=3), TypeError, "callable"),
])
def test_bad_options_raise_before_the_first_step(kw, err, words):
    with pytest.raises(err, match=words):
        fit_smoothed(Normal(0.0, 1.0), LocationScale(0.0, 1.0), steps=2, **kw)


def test_bad_target_and_generator():
    with pytest.raises(ValueError, match="2D but the generator produces 1D"):
        fit_smoothed(Normal([0.0, 0.0], 1.0), LocationScale(0.0, 1.0), steps=1)
    with pytest.raises(ValueError, match=r"shape \(n, 1\)"):
        fit_smoothed(np.zeros((5, 2)), LocationScale(0.0, 1.0), steps=1)
    with pytest.raises(TypeError, match="ParametricGenerator"):
        fit_smoothed(Normal(0.0, 1.0), object(), steps=1)
    gen = LocationScale(0.0, 1.0)
    gen._theta[0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        fit_smoothed(Normal(0.0, 1.0), gen, steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_smoothed(Normal(0.0, 1.0), LocationScale(0.0, 1.0), steps=0).steps == 0
