"""The reference solvers agree with each other where they must, so they can serve as oracles."""

from __future__ import annotations

import numpy as np
import pytest
from references import (
    emd2_cityblock,
    kr_lp_1d_highs,
    kr_lp_2d_cityblock_highs,
    socp_2d_euclidean_cvxpy,
    w1_1d_closed_form,
)
from scipy.stats import wasserstein_distance


def _pair(rng: np.random.Generator, shape, density: float = 1.0):
    mu = rng.random(shape) * (rng.random(shape) < density)
    nu = rng.random(shape) * (rng.random(shape) < density)
    mu.flat[0] += 0.1  # never empty
    nu.flat[-1] += 0.1
    return mu / mu.sum(), nu / nu.sum()


def _centers(shape, dx):
    return tuple((np.arange(n) + 0.5) * h for n, h in zip(shape, dx, strict=True))


# ---------------------------------------------------------------------------------------------
# 1D
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("density", [1.0, 0.3])
def test_highs_1d_equals_closed_form(seed, density):
    rng = np.random.default_rng(seed)
    n, dx = 40 + 7 * seed, 0.05 + 0.1 * seed
    mu, nu = _pair(rng, n, density)
    value, critic = kr_lp_1d_highs(mu, nu, dx)
    np.testing.assert_allclose(value, w1_1d_closed_form(mu, nu, dx), rtol=1e-10)
    assert np.max(np.abs(np.diff(critic))) <= dx * (1 + 1e-9)
    np.testing.assert_allclose(np.dot(mu - nu, critic), value, rtol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_closed_form_equals_scipy_wasserstein(seed):
    rng = np.random.default_rng(10 + seed)
    n, dx = 30, 0.2
    mu, nu = _pair(rng, n, 0.5)
    x = (np.arange(n) + 0.5) * dx
    expected = wasserstein_distance(x, x, u_weights=mu, v_weights=nu)
    np.testing.assert_allclose(w1_1d_closed_form(mu, nu, dx), expected, rtol=1e-10)


def test_closed_form_point_masses():
    mu = np.zeros(10)
    nu = np.zeros(10)
    mu[2], nu[7] = 1.0, 1.0
    np.testing.assert_allclose(w1_1d_closed_form(mu, nu, 0.5), 2.5, rtol=1e-14)
    np.testing.assert_allclose(kr_lp_1d_highs(mu, nu, 0.5)[0], 2.5, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# 2D cityblock
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "dx", "density"),
    [((8, 8), (1.0, 1.0), 0.3), ((12, 10), (0.5, 0.25), 0.2), ((5, 13), (0.3, 0.7), 1.0)],
)
def test_cityblock_grid_lp_equals_emd2(shape, dx, density):
    rng = np.random.default_rng(sum(shape))
    mu, nu = _pair(rng, shape, density)
    value, critic = kr_lp_2d_cityblock_highs(mu, nu, dx)
    expected = emd2_cityblock(mu, nu, _centers(shape, dx))
    np.testing.assert_allclose(value, expected, rtol=1e-9)
    assert np.max(np.abs(np.diff(critic, axis=0))) <= dx[0] * (1 + 1e-9)
    assert np.max(np.abs(np.diff(critic, axis=1))) <= dx[1] * (1 + 1e-9)
    np.testing.assert_allclose(np.sum((mu - nu) * critic), value, rtol=1e-9)


def test_emd2_cityblock_point_masses():
    mu = np.zeros((6, 5))
    nu = np.zeros((6, 5))
    mu[1, 1], nu[4, 3] = 1.0, 1.0
    np.testing.assert_allclose(emd2_cityblock(mu, nu, _centers((6, 5), (0.5, 2.0))),
                               3 * 0.5 + 2 * 2.0, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# 2D Euclidean SOCP
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(2))
def test_socp_single_row_equals_1d(seed):
    rng = np.random.default_rng(20 + seed)
    n, dx = 40, 0.1
    mu, nu = _pair(rng, n, 0.6)
    expected = w1_1d_closed_form(mu, nu, dx)
    row = socp_2d_euclidean_cvxpy(mu[None, :], nu[None, :], (0.7, dx))
    col = socp_2d_euclidean_cvxpy(mu[:, None], nu[:, None], (dx, 0.7))
    for res in (row, col):
        assert res.status == "optimal"
        np.testing.assert_allclose(res.value, expected, rtol=1e-8)


def test_socp_separable_shift_equals_1d_marginal():
    # mu = a(x) b(y), nu = a'(x) b(y): the flow moves along x only, so W = W1(a, a').
    rng = np.random.default_rng(3)
    a, a2 = _pair(rng, 14, 1.0)
    b = rng.random(9)
    b /= b.sum()
    dx = (0.3, 0.45)
    res = socp_2d_euclidean_cvxpy(np.outer(a, b), np.outer(a2, b), dx)
    assert res.status == "optimal"
    np.testing.assert_allclose(res.value, w1_1d_closed_form(a, a2, dx[0]), rtol=1e-8)


@pytest.mark.parametrize("shape", [(8, 8), (10, 7)])
def test_socp_between_cityblock_bounds(shape):
    # |v|_2 <= |v|_1 <= sqrt(2) |v|_2 per cell, so W_euc <= W_city <= sqrt(2) W_euc.
    rng = np.random.default_rng(shape[1])
    mu, nu = _pair(rng, shape, 0.5)
    dx = (0.4, 0.3)
    euc = socp_2d_euclidean_cvxpy(mu, nu, dx)
    city = emd2_cityblock(mu, nu, _centers(shape, dx))
    assert euc.status == "optimal"
    assert euc.value <= city * (1 + 1e-8)
    assert city <= np.sqrt(2) * euc.value * (1 + 1e-8)
    assert euc.value < city * (1 - 1e-3)  # a genuinely 2D problem: strictly cheaper


def test_socp_transpose_invariance_and_feasibility():
    rng = np.random.default_rng(7)
    mu, nu = _pair(rng, (9, 6), 0.7)
    dx = (0.2, 0.35)
    res = socp_2d_euclidean_cvxpy(mu, nu, dx)
    res_t = socp_2d_euclidean_cvxpy(mu.T, nu.T, dx[::-1])
    assert res.status == "optimal"
    np.testing.assert_allclose(res_t.value, res.value, rtol=1e-8)
    assert res.max_violation <= 1e-8
    # the critic satisfies the constraint as written in the spec (forward differences, zero
    # difference on the last index of each axis)
    f = res.critic
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:-1] = (f[1:] - f[:-1]) / dx[0]
    gy[:, :-1] = (f[:, 1:] - f[:, :-1]) / dx[1]
    assert np.max(np.hypot(gx, gy)) <= 1 + 1e-8
    np.testing.assert_allclose(np.sum((mu - nu) * f), res.value, rtol=1e-12)
    value, critic = res  # unpacks as (value, critic)
    assert value == res.value
    assert critic is res.critic
