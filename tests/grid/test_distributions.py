"""Tests for otgrid.grid.distributions: exact cell masses, densities, sampling, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm

import otgrid.grid.distributions as dist_mod
from otgrid.grid import Dirac, Distribution, Empirical, Mixture, Normal, PointMass, Uniform

INF = np.inf


def _norm_cells(edges, m, s):
    """1D normal cell masses from scipy.stats, sf form on the right of the mean."""
    lo, hi = edges[:-1], edges[1:]
    return np.where(lo > m, norm.sf(lo, m, s) - norm.sf(hi, m, s),
                    norm.cdf(hi, m, s) - norm.cdf(lo, m, s))


def _check_moments(x, mean, cov, k=5.0):
    """Sample mean / covariance within k standard errors (Gaussian-like SE)."""
    n = x.shape[0]
    mean, cov = np.asarray(mean, float), np.atleast_2d(cov)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) <= k * se_mean + 1e-15)
    sc = np.cov(x.T, bias=True).reshape(cov.shape)
    d = np.diag(cov)
    se_cov = np.sqrt((np.outer(d, d) + cov ** 2) / n)
    assert np.all(np.abs(sc - cov) <= k * se_cov + 1e-15)


# --------------------------------------------------------------------------- Normal
def test_normal_1d_masses_vs_scipy_and_tails():
    d = Normal(0.5, 2.25)
    e = np.r_[-INF, np.linspace(-15, 16, 63), INF]
    m = d.cell_masses([e])
    np.testing.assert_allclose(m, _norm_cells(e, 0.5, 1.5), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-15)
    # far upper tail keeps relative accuracy
    far = d.cell_masses(np.array([0.5 + 12 * 1.5, 0.5 + 13 * 1.5]))
    np.testing.assert_allclose(far, norm.sf(12) - norm.sf(13), rtol=1e-12)
    assert far[0] > 0


def test_normal_diag_masses_vs_scipy():
    d = Normal([0.0, 1.0, -1.0], [1.0, 0.5, 2.0])
    edges = [np.r_[-INF, np.linspace(-2, 2, 5), INF], np.linspace(-1, 3, 7),
             np.r_[np.linspace(-4, 2, 4), INF]]
    m = d.cell_masses(edges)
    ref = np.einsum("i,j,k->ijk", _norm_cells(edges[0], 0.0, 1.0),
                    _norm_cells(edges[1], 1.0, np.sqrt(0.5)),
                    _norm_cells(edges[2], -1.0, np.sqrt(2.0)))
    assert m.shape == (6, 6, 4)
    np.testing.assert_allclose(m, ref, rtol=1e-12, atol=1e-300)
    # an exactly diagonal full matrix takes the same route
    m2 = Normal([0.0, 1.0, -1.0], np.diag([1.0, 0.5, 2.0])).cell_masses(edges)
    np.testing.assert_allclose(m2, ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("rho", [0.3, -0.7, 0.9, 0.99])
def test_normal_full_cov_vs_mvn_cdf_and_marginals(rho):
    mean = np.array([0.3, -0.2])
    sx, sy = 1.3, 0.7
    cov = np.array([[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]])
    ex = np.r_[-INF, np.linspace(-4, 4, 17), INF]
    ey = np.r_[-INF, np.linspace(-3, 3, 13), INF]
    m = Normal(mean, cov).cell_masses([ex, ey])
    assert m.shape == (18, 14)
    np.testing.assert_allclose(m.sum(axis=1), _norm_cells(ex, mean[0], sx), rtol=0, atol=1e-14)
    np.testing.assert_allclose(m.sum(axis=0), _norm_cells(ey, mean[1], sy), rtol=0, atol=1e-14)
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-14)
    assert m.min() >= 0
    mvn = multivariate_normal(mean, cov, abseps=1e-14, releps=1e-14, maxpts=10 ** 7)
    for i, j in [(0, 0), (3, 5), (8, 6), (9, 7), (12, 2), (17, 13), (5, 13), (10, 10)]:
        lo = [ex[i], ey[j]]
        hi = [ex[i + 1], ey[j + 1]]
        ref = mvn.cdf(hi, lower_limit=lo)
        np.testing.assert_allclose(m[i, j], ref, rtol=0, atol=2e-14)


def test_normal_full_cov_resolution_independent(monkeypatch):
    d = Normal([0.0, 0.0], [[1.0, -0.95], [-0.95, 2.0]])
    e = np.r_[-INF, np.linspace(-5, 5, 21), INF]
    m = d.cell_masses([e, e])
    monkeypatch.setattr(dist_mod, "_BVN_NODES", 20)
    monkeypatch.setattr(dist_mod, "_BVN_WIDTH", 0.2)
    np.testing.assert_allclose(d.cell_masses([e, e]), m, rtol=1e-10, atol=1e-16)


def test_normal_full_cov_3d_not_implemented():
    c = np.array([[1.0, 0.2, 0.0], [0.2, 1.0, 0.0], [0.0, 0.0, 1.0]])
    d = Normal([0, 0, 0], c)
    e = np.linspace(-1, 1, 3)
    with pytest.raises(NotImplementedError, match="2D only"):
        d.cell_masses([e, e, e])
    assert d.sample(5, 0).shape == (5, 3)


def test_normal_pdf_vs_scipy():
    cov = np.array([[1.0, 0.4], [0.4, 0.5]])
    d = Normal([1.0, -1.0], cov)
    x = np.random.default_rng(0).normal(size=(7, 2))
    np.testing.assert_allclose(d.pdf(x), multivariate_normal([1, -1], cov).pdf(x), rtol=1e-12)
    assert d.pdf(x[0]).shape == ()
    assert d.pdf(x.reshape(7, 1, 2)).shape == (7, 1)
    d1 = Normal(0.0, 4.0)
    v = np.linspace(-3, 3, 5)
    np.testing.assert_allclose(d1.pdf(v), norm.pdf(v, 0, 2), rtol=1e-12)
    assert d1.pdf(v[:, None]).shape == (5,)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        d.pdf([1.0, 2.0, 3.0])


def test_normal_sampling_moments():
    cov = np.array([[2.0, -0.6], [-0.6, 0.5]])
    d = Normal([1.0, 2.0], cov)
    x = d.sample(200_000, rng=np.random.default_rng(7))
    assert x.shape == (200_000, 2)
    _check_moments(x, [1.0, 2.0], cov)
    np.testing.assert_array_equal(d.sample(10, 3), d.sample(10, 3))
    np.testing.assert_array_equal(d.mean, [1.0, 2.0])
    np.testing.assert_array_equal(d.cov, cov)
    assert d.sample(0).shape == (0, 2)


def test_normal_shapes_and_repr():
    assert Normal().ndim == 1
    assert Normal([0, 0, 0], 2.0).ndim == 3
    np.testing.assert_array_equal(Normal([0, 0], [1.0, 3.0]).cov, np.diag([1.0, 3.0]))
    np.testing.assert_array_equal(Normal(0.0, [[2.0]]).cov, [[2.0]])
    assert repr(Normal(0.0, 1.0)) == "Normal(mean=0.0, cov=1.0)"
    assert "cov=[1.0, 2.0]" in repr(Normal([0, 0], [1.0, 2.0]))
    assert "[[1.0, 0.5], [0.5, 1.0]]" in repr(Normal([0, 0], [[1, 0.5], [0.5, 1]]))


@pytest.mark.parametrize(("mean", "cov", "exc", "match"), [
    (0.0, -1.0, ValueError, "must be > 0"),
    (0.0, 0.0, ValueError, "must be > 0"),
    ([0, 0], [1.0, 0.0], ValueError, "must be > 0"),
    ([0, 0], [[1.0, 2.0], [2.0, 1.0]], ValueError, "positive definite"),
    ([0, 0], [[1.0, 0.5], [0.2, 1.0]], ValueError, "symmetric"),
    ([0, 0], [1.0, 1.0, 1.0], ValueError, "cov must be a scalar"),
    ([0, 0], np.eye(3), ValueError, "cov must be a scalar"),
    ([np.nan, 0], 1.0, ValueError, "mean contains"),
    ([0, 0], np.inf, ValueError, "cov contains"),
    ([[0, 0]], 1.0, ValueError, "mean must be a scalar or a 1-D vector"),
    ([], 1.0, ValueError, "at least one coordinate"),
    ("a", 1.0, TypeError, "mean"),
])
def test_normal_bad_input(mean, cov, exc, match):
    with pytest.raises(exc, match=match):
        Normal(mean, cov)


# --------------------------------------------------------------------------- edges
@pytest.mark.parametrize(("edges", "match"), [
    ([np.array([0.0, 1.0])] * 2, "one array per axis"),
    ([np.array([0.0])], "at least 2 edges"),
    ([np.array([[0.0, 1.0]])], "1-D array"),
    ([np.array([0.0, 2.0, 1.0])], "strictly increasing"),
    ([np.array([0.0, 0.0, 1.0])], "strictly increasing"),
    ([np.array([0.0, np.nan])], "NaN"),
    ([np.array([0.0, INF, 2.0])], "infinite only at its ends"),
    ([np.array([INF, 2.0])], "infinite only at its ends"),
])
def test_bad_edges(edges, match):
    with pytest.raises(ValueError, match=match):
        Normal(0.0, 1.0).cell_masses(edges)


def test_edges_type():
    with pytest.raises(TypeError, match="sequence"):
        Normal([0, 0], 1.0).cell_masses(3.0)


# --------------------------------------------------------------------------- Uniform
def test_uniform_exact_fractions():
    u = Uniform([0.0, -1.0], [2.0, 1.0])
    m = u.cell_masses([np.array([-1.0, 0.5, 1.0, 3.0]), np.array([-INF, 0.0, 0.25, INF])])
    px = np.array([0.5, 0.5, 1.0]) / 2.0
    py = np.array([1.0, 0.25, 0.75]) / 2.0
    np.testing.assert_allclose(m, np.outer(px, py), rtol=1e-15)
    assert u.cell_masses([np.array([5.0, 6.0]), np.array([0.0, 1.0])]).tolist() == [[0.0]]


def test_uniform_degenerate_axis():
    seg = Uniform([0.5, 0.0], [0.5, 1.0])
    ex = np.array([0.0, 0.5, 1.0])                 # 0.5 is an edge: goes to the cell [0.5, 1)
    ey = np.linspace(0, 1, 5)
    np.testing.assert_allclose(seg.cell_masses([ex, ey]), [[0] * 4, [0.25] * 4])
    ex2 = np.array([0.0, 0.25, 0.5])               # 0.5 is the last (closed) edge
    np.testing.assert_allclose(seg.cell_masses([ex2, ey]), [[0] * 4, [0.25] * 4])
    np.testing.assert_allclose(seg.cell_masses([np.array([0.6, 1.0]), ey]), [[0] * 4])
    with pytest.raises(NotImplementedError, match="degenerate"):
        seg.pdf([0.5, 0.5])
    x = seg.sample(1000, 0)
    np.testing.assert_array_equal(x[:, 0], 0.5)
    assert x[:, 1].min() >= 0 and x[:, 1].max() <= 1


def test_uniform_pdf_moments_repr():
    u = Uniform([0.0, 1.0], [2.0, 5.0])
    np.testing.assert_allclose(u.pdf([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]]), [0.125, 0.0, 0.125])
    x = u.sample(100_000, np.random.default_rng(1))
    _check_moments(x, [1.0, 3.0], np.diag([4 / 12, 16 / 12]))
    np.testing.assert_allclose(u.mean, [1.0, 3.0])
    assert repr(Uniform(0, 1)) == "Uniform(low=0.0, high=1.0)"
    np.testing.assert_array_equal(u.low, [0.0, 1.0])
    np.testing.assert_array_equal(u.high, [2.0, 5.0])


@pytest.mark.parametrize(("low", "high", "exc", "match"), [
    (1.0, 0.0, ValueError, "low must be <= high"),
    ([0, 0], [1.0], ValueError, "same number of coordinates"),
    (0.0, np.inf, ValueError, "high contains"),
    (np.nan, 1.0, ValueError, "low contains"),
])
def test_uniform_bad_input(low, high, exc, match):
    with pytest.raises(exc, match=match):
        Uniform(low, high)


# --------------------------------------------------------------------------- atoms
def test_point_mass():
    p = PointMass([0.3, 0.7])
    assert Dirac is PointMass
    m = p.cell_masses([np.linspace(0, 1, 5), np.linspace(0, 1, 3)])
    ref = np.zeros((4, 2))
    ref[1, 1] = 1.0
    np.testing.assert_array_equal(m, ref)
    np.testing.assert_array_equal(p.cell_masses([np.array([0.5, 1.0]), np.array([0.0, 1.0])]),
                                  [[0.0]])
    np.testing.assert_array_equal(p.sample(3), [[0.3, 0.7]] * 3)
    np.testing.assert_array_equal(p.mean, [0.3, 0.7])
    np.testing.assert_array_equal(p.cov, np.zeros((2, 2)))
    assert repr(p) == "PointMass(location=[0.3, 0.7])"
    with pytest.raises(NotImplementedError, match="no density"):
        p.pdf([0.3, 0.7])
    with pytest.raises(ValueError, match="location contains"):
        PointMass([np.nan])


def test_empirical():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 2))
    w = rng.random(400)
    e = Empirical(x, w)
    edges = [np.linspace(-2, 2, 6), np.r_[-INF, np.linspace(-1, 1, 4), INF]]
    ref, _ = np.histogramdd(x, bins=[np.r_[-1e300, edges[0][1:-1], 1e300], edges[1]],
                            weights=w / w.sum())
    ref_inside, _ = np.histogramdd(x, bins=edges, weights=w / w.sum())
    np.testing.assert_allclose(e.cell_masses(edges), ref_inside, rtol=1e-12, atol=1e-16)
    assert ref.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(e.weights.sum(), 1.0)
    np.testing.assert_allclose(e.mean, np.average(x, axis=0, weights=w))
    np.testing.assert_allclose(e.cov, np.cov(x.T, aweights=w, bias=True), rtol=1e-12)
    assert "n=400" in repr(e)
    # sampling frequencies follow the weights
    e3 = Empirical([0.0, 1.0, 2.0], [1, 2, 7])
    s = e3.sample(100_000, 0)[:, 0]
    freq = np.bincount(s.astype(int), minlength=3) / s.size
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=5 * np.sqrt(0.25 / s.size))
    np.testing.assert_array_equal(Empirical(x).weights, np.full(400, 1 / 400))


@pytest.mark.parametrize(("samples", "weights", "exc", "match"), [
    (np.empty((0, 2)), None, ValueError, "n >= 1"),
    ([[0.0, np.nan]], None, ValueError, "samples contains"),
    ([[0.0, 1.0]], [-1.0], ValueError, "non-negative"),
    ([[0.0, 1.0]], [0.0], ValueError, "positive total"),
    ([[0.0, 1.0]], [1.0, 1.0], ValueError, "one entry per item"),
    (np.zeros((2, 2, 2)), None, ValueError, "shape"),
])
def test_empirical_bad_input(samples, weights, exc, match):
    with pytest.raises(exc, match=match):
        Empirical(samples, weights)


# --------------------------------------------------------------------------- Mixture
def test_mixture_masses_and_total():
    comps = [Normal(-1.0, 0.25), Normal(2.0, 1.0), Uniform(0.0, 1.0)]
    m = Mixture(comps, weights=[1.0, 2.0, 1.0])
    np.testing.assert_allclose(m.weights, [0.25, 0.5, 0.25])
    e = np.r_[-INF, np.linspace(-3, 5, 17), INF]
    ref = (0.25 * np.diff(norm.cdf(e, -1.0, 0.5)) + 0.5 * np.diff(norm.cdf(e, 2.0, 1.0))
           + 0.25 * np.diff(np.clip(e, 0.0, 1.0)))
    got = m.cell_masses([e])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(got.sum(), 1.0, atol=1e-15)
    v = np.linspace(-2, 4, 13)
    pdf_ref = (0.25 * norm.pdf(v, -1, 0.5) + 0.5 * norm.pdf(v, 2, 1)
               + 0.25 * ((v >= 0) & (v <= 1)))
    np.testing.assert_allclose(m.pdf(v), pdf_ref, rtol=1e-12)
    assert "Mixture([Normal" in repr(m)


def test_mixture_sampling():
    comps = [Normal([0.0, 0.0], 0.01), Normal([5.0, 0.0], 0.01), PointMass([0.0, 5.0])]
    m = Mixture(comps, weights=[0.2, 0.3, 0.5])
    x = m.sample(50_000, np.random.default_rng(3))
    assert x.shape == (50_000, 2)
    lab = np.where(x[:, 0] > 2.5, 1, np.where(x[:, 1] > 2.5, 2, 0))
    freq = np.bincount(lab, minlength=3) / x.shape[0]
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=5 * np.sqrt(0.25 / x.shape[0]))
    assert lab[:100].min() != lab[:100].max()       # shuffled, not blocks
    mean = 0.3 * np.array([5.0, 0.0]) + 0.5 * np.array([0.0, 5.0])
    np.testing.assert_allclose(m.mean, mean)
    _check_moments(x, mean, m.cov)
    np.testing.assert_allclose(m.cov, np.cov(x.T), rtol=0.05, atol=0.05)
    with pytest.raises(NotImplementedError):
        m.pdf([0.0, 0.0])


@pytest.mark.parametrize(("components", "weights", "exc", "match"), [
    ([], None, ValueError, "at least one"),
    (Normal(0.0, 1.0), None, TypeError, "sequence"),
    ([Normal(0.0, 1.0), "x"], None, TypeError, r"components\[1\]"),
    ([Normal(0.0, 1.0), Normal([0, 0], 1.0)], None, ValueError, "same ndim"),
    ([Normal(0.0, 1.0)] * 2, [1.0, -1.0], ValueError, "non-negative"),
    ([Normal(0.0, 1.0)] * 2, [1.0], ValueError, "one entry per item"),
    ([Normal(0.0, 1.0)] * 2, [0.0, 0.0], ValueError, "positive total"),
])
def test_mixture_bad_input(components, weights, exc, match):
    with pytest.raises(exc, match=match):
        Mixture(components, weights)


# --------------------------------------------------------------------------- base class
def test_base_class_and_rng_validation():
    assert issubclass(Normal, Distribution)
    with pytest.raises(TypeError):
        Distribution()
    d = Normal(0.0, 1.0)
    with pytest.raises(TypeError, match="rng"):
        d.sample(3, rng="seed")
    with pytest.raises(ValueError, match="n must be >= 0"):
        d.sample(-1)
    with pytest.raises(TypeError, match="n must be an integer"):
        d.sample(2.5)
    g = np.random.default_rng(0)
    a = d.sample(4, g)
    b = d.sample(4, g)
    assert not np.array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(m=st.floats(-3, 3), s=st.floats(0.05, 3), lo=st.floats(-5, 5), w=st.floats(0.01, 4))
def test_normal_interval_property(m, s, lo, w):
    got = Normal(m, s * s).cell_masses([np.array([lo, lo + w])])[0]
    ref = norm.cdf(lo + w, m, s) - norm.cdf(lo, m, s)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-15)


# --------------------------------------------------------------------------- bounding_box
def test_bounding_box_of_each_kind():
    from otgrid.grid.datasets import swissroll
    from otgrid.grid.distributions import bounding_box

    lo, hi = bounding_box(Normal([1.0, -2.0], [[4.0, 0.5], [0.5, 0.25]]))
    np.testing.assert_allclose(lo, [1.0 - 10.0, -2.0 - 2.5])   # marginal std 2 and 0.5
    np.testing.assert_allclose(hi, [1.0 + 10.0, -2.0 + 2.5])
    lo, hi = bounding_box(Normal(0.0, 1.0), span=3.0)
    assert (lo.tolist(), hi.tolist()) == ([-3.0], [3.0])
    lo, hi = bounding_box(Uniform([0, 1], [2, 3]))
    assert (lo.tolist(), hi.tolist()) == ([0.0, 1.0], [2.0, 3.0])
    lo, hi = bounding_box(Empirical([[0.0, 5.0], [2.0, -1.0]]))
    assert (lo.tolist(), hi.tolist()) == ([0.0, -1.0], [2.0, 5.0])
    lo, hi = bounding_box(Mixture([PointMass([1.0, 1.0]), Uniform([-1, 0], [0, 3])]))
    assert (lo.tolist(), hi.tolist()) == ([-1.0, 0.0], [1.0, 3.0])
    roll = swissroll()                    # no closed form: many samples, widened by a std
    lo, hi = bounding_box(roll)
    x = roll.sample(10_000, rng=1)
    assert np.all(x >= lo) and np.all(x <= hi)
    with pytest.raises(TypeError, match="Distribution"):
        bounding_box(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="span"):
        bounding_box(Normal(0.0, 1.0), span=0.0)
