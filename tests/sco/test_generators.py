"""Parametric generators: vjp against finite differences, exact cell masses against SciPy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm

from otgrid.errors import OutsideMassWarning
from otgrid.grid import Grid
from otgrid.sco.generators import Affine, LocationScale, ParametricGenerator, has_cell_masses

finite = st.floats(-3.0, 3.0, allow_nan=False)
positive = st.floats(0.1, 3.0, allow_nan=False)


def fd_vjp(gen, z: np.ndarray, v: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of theta -> sum_j <v_j, g_theta(z_j)>."""
    theta = gen.params
    out = np.empty(theta.size)
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = h
        gen.params = theta + e
        plus = np.sum(v * gen.sample(z))
        gen.params = theta - e
        minus = np.sum(v * gen.sample(z))
        out[i] = (plus - minus) / (2 * h)
    gen.params = theta
    return out


def scipy_normal_masses(edges: np.ndarray, mean: float, std: float, fold: bool) -> np.ndarray:
    """1D cell masses by SciPy CDF differences; folded: the outer edges become -inf/+inf."""
    e = np.array(edges, dtype=np.float64)
    if fold:
        e[0], e[-1] = -np.inf, np.inf
    m = np.diff(norm.cdf(e, loc=mean, scale=std))
    return m if fold else m / m.sum()


# --------------------------------------------------------------------------- vjp
@settings(max_examples=25, deadline=None)
@given(st.lists(finite, min_size=2, max_size=2), st.lists(positive, min_size=2, max_size=2),
       st.integers(0, 2**31 - 1))
def test_location_scale_vjp_matches_finite_differences(loc, scale, seed):
    rng = np.random.default_rng(seed)
    gen = LocationScale(loc, scale)
    z = gen.sample_latent(7, rng)
    v = rng.standard_normal((7, 2))
    np.testing.assert_allclose(gen.vjp(z, v), fd_vjp(gen, z, v), rtol=1e-7, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_affine_vjp_matches_finite_differences(ndim, latent_dim, seed):
    rng = np.random.default_rng(seed)
    gen = Affine(rng.standard_normal((ndim, latent_dim)), rng.standard_normal(ndim))
    z = gen.sample_latent(9, rng)
    v = rng.standard_normal((9, ndim))
    np.testing.assert_allclose(gen.vjp(z, v), fd_vjp(gen, z, v), rtol=1e-7, atol=1e-7)


def test_samples_follow_the_documented_maps():
    z = np.array([[0.0, 1.0], [2.0, -1.0]])
    ls = LocationScale([1.0, -1.0], [2.0, 0.5])
    np.testing.assert_allclose(ls.sample(z), [[1.0, -0.5], [5.0, -1.5]])
    af = Affine([[1.0, 2.0], [0.0, 3.0]], [0.5, -0.5])
    np.testing.assert_allclose(af.sample(z), [[2.5, 2.5], [0.5, -3.5]])
    # 1D accepts z of shape (n,)
    np.testing.assert_allclose(LocationScale(1.0, 2.0).sample([0.0, 1.0]), [[1.0], [3.0]])


def test_latent_samples_are_standard_normal_and_seeded():
    gen = Affine(np.eye(2, 3))
    z1 = gen.sample_latent(20_000, rng=3)
    z2 = gen.sample_latent(20_000, rng=3)
    assert z1.shape == (20_000, 3)
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_allclose(z1.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(np.cov(z1.T), np.eye(3), atol=0.04)


# --------------------------------------------------------------------------- parameters
def test_params_round_trip_and_layout():
    ls = LocationScale([1.0, 2.0], 3.0)
    np.testing.assert_array_equal(ls.params, [1.0, 2.0, 3.0, 3.0])
    assert ls.param_names == ("loc[0]", "loc[1]", "scale[0]", "scale[1]")
    p = ls.params
    p[0] = 99.0  # a copy: the generator is unchanged
    assert ls.params[0] == 1.0
    ls.params = [0.0, 0.0, 1.0, 2.0]
    np.testing.assert_array_equal(ls.scale, [1.0, 2.0])
    af = Affine([[1.0, 2.0]], [3.0])
    np.testing.assert_array_equal(af.params, [1.0, 2.0, 3.0])
    assert af.param_names == ("A[0,0]", "A[0,1]", "b[0]")
    assert LocationScale(0.0, 1.0).param_names == ("loc", "scale")


@pytest.mark.parametrize("value, err, words", [
    ([1.0, np.nan], ValueError, ["params", "non-finite"]),
    ([1.0, 2.0, 3.0], ValueError, ["params", "2 entries"]),
    (["a", "b"], TypeError, ["params"]),
])
def test_bad_params_are_rejected(value, err, words):
    gen = LocationScale(0.0, 1.0)
    with pytest.raises(err) as info:
        gen.params = value
    for w in words:
        assert w in str(info.value)
    np.testing.assert_array_equal(gen.params, [0.0, 1.0])  # unchanged


def test_bad_constructor_and_call_arguments():
    with pytest.raises(ValueError, match="scale"):
        LocationScale([0.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"loc.*non-finite"):
        LocationScale(np.nan, 1.0)
    with pytest.raises(ValueError, match="b must have one entry per output axis"):
        Affine(np.eye(2), [1.0, 2.0, 3.0])
    gen = Affine(np.eye(2))
    with pytest.raises(ValueError, match=r"z must have shape \(n, 2\)"):
        gen.sample(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"grad_x must have shape \(3, 2\)"):
        gen.vjp(np.zeros((3, 2)), np.zeros((2, 2)))


def test_protocol_and_capabilities():
    for gen in (LocationScale(0.0, 1.0), Affine(np.eye(2))):
        assert isinstance(gen, ParametricGenerator)
        assert has_cell_masses(gen)
    assert not isinstance(object(), ParametricGenerator)
    assert not has_cell_masses(object())


# --------------------------------------------------------------------------- exact masses
@pytest.mark.parametrize("fold", [True, False])
def test_location_scale_masses_match_scipy_2d(fold):
    grid = Grid([(-3.0, 3.0), (-2.0, 4.0)], (30, 20))
    gen = LocationScale([0.5, 1.0], [0.8, -1.5])  # a negative scale means its absolute value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutsideMassWarning)
        m = gen.cell_masses(grid, outside="fold" if fold else "renormalize")
    px = scipy_normal_masses(grid.edges[0], 0.5, 0.8, fold)
    py = scipy_normal_masses(grid.edges[1], 1.0, 1.5, fold)
    np.testing.assert_allclose(m, np.outer(px, py), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(m.sum(), 1.0, rtol=1e-13)


def test_location_scale_outside_mass_is_reported_exactly():
    grid = Grid((-1.0, 2.0), 12)
    gen = LocationScale(0.3, 1.2)
    expected = norm.cdf(-1.0, 0.3, 1.2) + norm.sf(2.0, 0.3, 1.2)
    with pytest.warns(OutsideMassWarning, match="folded into the boundary cells") as rec:
        gen.cell_masses(grid)
    np.testing.assert_allclose(rec[0].message.mass, expected, rtol=1e-10)
    with pytest.raises(ValueError, match="outside the grid bounds"):
        gen.cell_masses(grid, outside="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # below outside_tol: silent
        gen.cell_masses(grid, outside_tol=0.5)


def test_zero_scale_is_a_point_mass_along_that_axis():
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], 4)
    m = LocationScale([0.3, 0.5], [0.0, 0.2]).cell_masses(grid, outside_tol=1.0)
    py = scipy_normal_masses(grid.edges[1], 0.5, 0.2, fold=True)
    expected = np.zeros((4, 4))
    expected[1] = py  # 0.3 lies in the cell [0.25, 0.5)
    np.testing.assert_allclose(m, expected, rtol=1e-12, atol=1e-15)


def test_affine_full_covariance_masses_match_scipy():
    grid = Grid([(-2.0, 2.5), (-1.5, 1.8)], (4, 3))
    A = np.array([[0.9, 0.0], [0.6, 0.5]])
    b = np.array([0.2, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutsideMassWarning)
        m = Affine(A, b).cell_masses(grid, outside="renormalize")
    mvn = multivariate_normal(b, A @ A.T)
    gx, gy = grid.edges
    ref = np.empty((4, 3))
    for i in range(4):
        for j in range(3):
            ref[i, j] = mvn.cdf([gx[i + 1], gy[j + 1]], lower_limit=[gx[i], gy[j]])
    ref /= ref.sum()
    np.testing.assert_allclose(m, ref, rtol=1e-6, atol=1e-9)


def test_affine_1d_equals_location_scale():
    grid = Grid((-4.0, 5.0), 37)
    np.testing.assert_allclose(Affine(-1.3, 0.4).cell_masses(grid, outside_tol=1.0),
                               LocationScale(0.4, 1.3).cell_masses(grid, outside_tol=1.0),
                               rtol=1e-13, atol=1e-16)


def test_affine_pushforward_and_singular_matrix():
    A = np.array([[1.0, 2.0], [0.5, 1.0]])  # rank 1
    gen = Affine(A, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"rank 1 < 2.*masses=.samples."):
        gen.cell_masses(Grid([(-1, 1), (-1, 1)], 4))
    good = Affine([[2.0, 0.0], [1.0, 1.0]], [0.0, 1.0])
    np.testing.assert_allclose(good.distribution().cov, [[4.0, 2.0], [2.0, 2.0]])
    np.testing.assert_allclose(good.distribution().mean, [0.0, 1.0])


def test_cell_masses_grid_checks():
    gen = LocationScale([0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="grid is 1D but the generator produces 2D"):
        gen.cell_masses(Grid((-1, 1), 4))
    with pytest.raises(TypeError, match=r"grid must be an otgrid\.Grid"):
        gen.cell_masses("grid")
    with pytest.raises(ValueError, match="outside must be one of"):
        gen.cell_masses(Grid([(-1, 1), (-1, 1)], 4), outside="drop")
