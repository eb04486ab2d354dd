"""Tests for otgrid.grid: geometry, discretisation of distributions, histograms, outside mass."""

from __future__ import annotations

import itertools
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from otgrid.errors import OutsideMassError, OutsideMassWarning
from otgrid.grid import Empirical, Grid, Mixture, Normal, PointMass, Uniform
from otgrid.grid.grid import AUTO_OUTSIDE_TOL, MAX_COORDINATE, bounds_holding


# --------------------------------------------------------------------------- geometry
def test_geometry_1d():
    g = Grid((-1.0, 3.0), 8)
    assert g.ndim == 1
    assert g.shape == (8,)
    assert g.bounds == ((-1.0, 3.0),)
    assert g.dx == (0.5,)
    assert g.size == 8
    assert g.cell_volume == 0.5
    np.testing.assert_allclose(g.edges[0], [-1 + 0.5 * i for i in range(9)], rtol=0, atol=1e-15)
    np.testing.assert_allclose(g.centers[0], [-0.75 + 0.5 * i for i in range(8)], atol=1e-15)
    np.testing.assert_array_equal(g.lower, [-1.0])
    np.testing.assert_array_equal(g.upper, [3.0])
    assert g.points().shape == (8, 1)


def test_geometry_2d_and_points_order():
    g = Grid([(0, 1), (-2, 2)], (4, 8))
    assert g.shape == (4, 8)
    assert g.dx == (0.25, 0.5)
    assert g.size == 32
    assert g.cell_volume == pytest.approx(0.125)
    assert g.edges[1][0] == -2.0 and g.edges[1][-1] == 2.0
    expected = np.array(list(itertools.product(0.125 + 0.25 * np.arange(4),
                                               -1.75 + 0.5 * np.arange(8))))
    np.testing.assert_allclose(g.points(), expected, atol=1e-15)
    xx, yy = g.mesh()
    assert xx.shape == (4, 8)
    np.testing.assert_allclose(xx[:, 0], g.centers[0])
    np.testing.assert_allclose(yy[0, :], g.centers[1])
    np.testing.assert_allclose(np.stack([xx.ravel(), yy.ravel()], 1), g.points())


def test_geometry_3d_and_int_shape():
    g = Grid([(0, 1)] * 3, 5)
    assert g.shape == (5, 5, 5)
    assert g.points().shape == (125, 3)
    np.testing.assert_allclose(g.cell_volume, 0.2 ** 3)


def test_identity_and_immutability():
    a = Grid([(0, 1), (0, 2)], (3, 4))
    b = Grid(np.array([[0.0, 1.0], [0.0, 2.0]]), [3, 4])
    assert a == b and hash(a) == hash(b)
    assert a != Grid([(0, 1), (0, 2)], (3, 5))
    assert a != "grid"
    assert len({a, b}) == 1
    assert "Grid(" in repr(a) and "(3, 4)" in repr(a)
    assert repr(Grid((0, 1), 4)) == "Grid(bounds=(0.0, 1.0), shape=4)"
    with pytest.raises(AttributeError):
        a.shape = (2, 2)
    with pytest.raises(ValueError):
        a.edges[0][0] = 5.0
    assert pickle.loads(pickle.dumps(a)) == a
    lo = a.lower
    lo[0] = 10.0
    assert a.lower[0] == 0.0


@pytest.mark.parametrize(("bounds", "shape", "exc", "match"), [
    ((1.0, 0.0), 4, ValueError, "low < high"),
    ((0.0, 0.0), 4, ValueError, "low < high"),
    ((0.0, np.inf), 4, ValueError, "non-finite"),
    ((0.0, np.nan), 4, ValueError, "non-finite"),
    ([0.0, 1.0, 2.0], 4, ValueError, "bounds must be"),
    ([(0, 1, 2)], 4, ValueError, "bounds must be"),
    ("abc", 4, TypeError, "bounds"),
    ((0.0, 1.0), 1, ValueError, "shape must be >= 2"),
    ((0.0, 1.0), 2.5, TypeError, "shape must be"),
    ((0.0, 1.0), True, TypeError, "shape"),
    ([(0, 1), (0, 1)], (4,), ValueError, "one entry per axis"),
    ([(0, 1), (0, 1)], (4, 1), ValueError, r"shape\[1\]"),
    ([(0, 1), (0, 1)], (4, 4.0), TypeError, r"shape\[1\]"),
    ((0.0, 1.0), 10**12, ValueError, r"at most 268435456 cells per axis"),
])
def test_bad_grid(bounds, shape, exc, match):
    with pytest.raises(exc, match=match):
        Grid(bounds, shape)


# --------------------------------------------------------------------------- discretize
def test_discretize_normal_1d_vs_scipy():
    g = Grid((-19.0, 21.0), 80)
    m = g.discretize(Normal(1.0, 4.0), outside="raise", outside_tol=1e-15)
    lo, hi = g.edges[0][:-1], g.edges[0][1:]
    ref = np.where(lo > 1.0, norm.sf(lo, 1.0, 2.0) - norm.sf(hi, 1.0, 2.0),
                   norm.cdf(hi, 1.0, 2.0) - norm.cdf(lo, 1.0, 2.0))
    np.testing.assert_allclose(m, ref, rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(m.sum(), 1.0, rtol=0, atol=1e-14)


def test_discretize_diag_2d_vs_scipy_and_renormalize():
    g = Grid([(-2, 3), (-1, 1)], (10, 8))
    d = Normal([0.5, 0.0], [1.0, 0.25])
    px = np.diff(norm.cdf(g.edges[0], 0.5, 1.0))
    py = np.diff(norm.cdf(g.edges[1], 0.0, 0.5))
    inside = np.outer(px, py)
    expected_out = 1.0 - px.sum() * py.sum()
    with pytest.warns(OutsideMassWarning, match="rescaled") as rec:
        m = g.discretize(d, outside="renormalize")
    assert rec[0].message.mass == pytest.approx(expected_out, rel=1e-12)
    assert f"{expected_out:.6g}" in str(rec[0].message)
    np.testing.assert_allclose(m, inside / inside.sum(), rtol=1e-12)
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-14)
    np.testing.assert_allclose(g.outside_mass(d), expected_out, rtol=1e-12)


def test_discretize_raise_mentions_amount_and_fix():
    g = Grid((-1, 1), 8)
    out = 2 * norm.sf(1.0)
    with pytest.raises(ValueError, match="outside the grid bounds") as exc:
        g.discretize(Normal(0.0, 1.0), outside="raise")
    assert f"{out:.6g}" in str(exc.value)
    assert "outside='fold'" in str(exc.value)


def test_discretize_fold_tail_mass_2d():
    g = Grid([(-1, 2), (-2, 1)], (6, 5))
    mx, my, sx, sy = 0.3, -0.4, 0.8, 1.2
    d = Normal([mx, my], [sx ** 2, sy ** 2])
    with pytest.warns(OutsideMassWarning, match="folded") as rec:
        m = g.discretize(d, outside="fold")
    ex = g.edges[0].copy()
    ey = g.edges[1].copy()
    ex[0], ex[-1], ey[0], ey[-1] = -np.inf, np.inf, -np.inf, np.inf
    ref = np.outer(np.diff(norm.cdf(ex, mx, sx)), np.diff(norm.cdf(ey, my, sy)))
    np.testing.assert_allclose(m, ref, rtol=1e-12)
    # the corner cell holds the exact quadrant tail
    corner = norm.cdf(g.edges[0][1], mx, sx) * norm.cdf(g.edges[1][1], my, sy)
    np.testing.assert_allclose(m[0, 0], corner, rtol=1e-12)
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-14)
    out = 1 - (np.diff(norm.cdf(g.edges[0], mx, sx)).sum()
               * np.diff(norm.cdf(g.edges[1], my, sy)).sum())
    np.testing.assert_allclose(rec[0].message.mass, out, rtol=1e-12)


def test_fold_full_covariance_marginals():
    g = Grid([(-1.5, 1.5), (-1.5, 1.5)], 6)
    d = Normal([0.0, 0.0], [[1.0, 0.6], [0.6, 1.0]])
    with pytest.warns(OutsideMassWarning):
        m = g.discretize(d, outside="fold")
    e = g.edges[0].copy()
    e[0], e[-1] = -np.inf, np.inf
    np.testing.assert_allclose(m.sum(axis=1), np.diff(norm.cdf(e)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m.sum(axis=0), np.diff(norm.cdf(e)), rtol=1e-12, atol=1e-15)


def test_below_tol_is_silent_and_handled():
    g = Grid((-12, 12), 24)
    d = Normal(0.0, 1.0)                     # outside mass ~ 3.6e-33
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in ("raise", "renormalize", "fold"):
            m = g.discretize(d, outside=mode)
            np.testing.assert_allclose(m.sum(), 1.0, atol=1e-15)
    with warnings.catch_warnings():          # tolerance above the outside mass: no warning
        warnings.simplefilter("error")
        g2 = Grid((-3, 3), 12)
        m = g2.discretize(d, outside="renormalize", outside_tol=0.01)
        np.testing.assert_allclose(m.sum(), 1.0, atol=1e-15)
        g2.discretize(d, outside="raise", outside_tol=0.01)


def test_discretize_atoms_respect_closed_box():
    g = Grid([(0, 1), (0, 1)], 4)
    m = g.discretize(PointMass([1.0, 0.0]), outside="raise")
    assert m[3, 0] == 1.0 and m.sum() == 1.0
    m = g.discretize(PointMass([0.25, 0.5]), outside="raise")
    assert m[1, 2] == 1.0
    with pytest.raises(ValueError, match="No mass"):
        g.discretize(PointMass([1.5, 0.5]), outside="renormalize")
    with pytest.warns(OutsideMassWarning) as rec:
        m = g.discretize(PointMass([1.5, 0.5]), outside="fold")
    assert m[3, 2] == 1.0 and rec[0].message.mass == 1.0


def test_discretize_uniform_and_segment():
    g = Grid([(0, 1), (0, 2)], (4, 4))
    m = g.discretize(Uniform([0.1, 0.0], [0.6, 1.0]), outside="raise")
    px = np.array([0.15, 0.25, 0.1, 0.0]) / 0.5
    py = np.array([0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(m, np.outer(px, py), atol=1e-15)
    seg = g.discretize(Uniform([1.0, 0.0], [1.0, 2.0]), outside="raise")  # x = high
    np.testing.assert_allclose(seg[3], [0.25] * 4, atol=1e-15)
    np.testing.assert_allclose(seg[:3], 0.0)


def test_discretize_empirical_equals_histogram():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(500, 2))
    w = rng.random(500)
    g = Grid([(-0.8, 0.9), (-1, 1)], (7, 9))
    with pytest.warns(OutsideMassWarning):
        a = g.discretize(Empirical(x, w), outside="fold")
    with pytest.warns(OutsideMassWarning):
        b = g.histogram(x, w / w.sum(), outside="fold")
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_discretize_bad_input():
    g = Grid([(0, 1), (0, 1)], 4)
    with pytest.raises(TypeError, match="histogram"):
        g.discretize(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="1D but the grid is 2D"):
        g.discretize(Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="outside must be one of"):
        g.discretize(Normal([0, 0], 1.0), outside="drop")
    with pytest.raises(ValueError, match="outside_tol"):
        g.discretize(Normal([0, 0], 1.0), outside_tol=-1.0)
    with pytest.raises(TypeError, match="outside_tol"):
        g.discretize(Normal([0, 0], 1.0), outside_tol="small")
    with pytest.raises(ValueError, match="weights applies to samples"):
        g.outside_mass(Normal([0, 0], 1.0), weights=[1.0])


# --------------------------------------------------------------------------- histogram
def test_histogram_nearest_vs_histogramdd():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(20000, 2))
    w = rng.random(20000)
    g = Grid([(-1, 1), (-1, 1)], (13, 7))
    h = g.histogram(x, w, outside="raise")
    ref, _ = np.histogramdd(x, bins=g.edges, weights=w)
    np.testing.assert_allclose(h, ref, rtol=1e-12)
    h = g.histogram(x)
    ref, _ = np.histogramdd(x, bins=g.edges)
    np.testing.assert_allclose(h, ref / len(x), rtol=1e-12)


def test_histogram_nearest_3d_and_1d_input():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(3000, 3))
    g = Grid([(0, 1)] * 3, (3, 4, 5))
    ref, _ = np.histogramdd(x, bins=g.edges)
    np.testing.assert_allclose(g.histogram(x), ref / 3000, rtol=1e-12)
    g1 = Grid((0, 1), 10)
    v = rng.uniform(0, 1, 1000)
    ref1, _ = np.histogram(v, bins=g1.edges[0])
    np.testing.assert_allclose(g1.histogram(v), ref1 / 1000, rtol=1e-12)
    np.testing.assert_allclose(g1.histogram(v[:, None]), ref1 / 1000, rtol=1e-12)


def test_histogram_nearest_edge_values():
    g = Grid((0.1, 0.7), 37)
    e = g.edges[0]
    v = np.concatenate([e, np.nextafter(e, -1.0), np.nextafter(e, 2.0)])
    v = v[(v >= 0.1) & (v <= 0.7)]
    ref, _ = np.histogram(v, bins=e)       # numpy: half-open cells, last one closed
    np.testing.assert_allclose(g.histogram(v, np.ones(v.size)), ref, rtol=0, atol=0)


def _cic_reference(x, w, grid):
    """Cloud-in-cell by explicit loops over samples (a different code path)."""
    out = np.zeros(grid.shape)
    for xi, wi in zip(x, w, strict=True):
        per_axis = []
        for k in range(grid.ndim):
            c = grid.centers[k]
            if xi[k] <= c[0]:
                per_axis.append([(0, 1.0)])
            elif xi[k] >= c[-1]:
                per_axis.append([(len(c) - 1, 1.0)])
            else:
                j = int(np.searchsorted(c, xi[k], side="right") - 1)
                t = (xi[k] - c[j]) / (c[j + 1] - c[j])
                per_axis.append([(j, 1 - t), (j + 1, t)])
        for combo in itertools.product(*per_axis):
            idx = tuple(i for i, _ in combo)
            out[idx] += wi * np.prod([f for _, f in combo])
    return out


def test_histogram_linear_vs_loop_reference():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(300, 2))
    w = rng.random(300)
    g = Grid([(-1, 1), (-1, 1)], (5, 6))
    h = g.histogram(x, w, scheme="linear", outside="raise")
    np.testing.assert_allclose(h, _cic_reference(x, w, g), rtol=1e-12, atol=1e-15)
    g3 = Grid([(-1, 1)] * 3, (3, 4, 2))
    x3 = rng.uniform(-1, 1, size=(200, 3))
    w3 = np.ones(200)
    np.testing.assert_allclose(g3.histogram(x3, w3, scheme="linear"),
                               _cic_reference(x3, w3, g3), rtol=1e-12, atol=1e-15)


def test_histogram_linear_by_hand():
    g = Grid((0, 1), 4)                      # centres 0.125, 0.375, 0.625, 0.875
    np.testing.assert_allclose(g.histogram([0.25], scheme="linear"), [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(g.histogram([0.375], scheme="linear"), [0, 1, 0, 0])
    np.testing.assert_allclose(g.histogram([0.05], scheme="linear"), [1, 0, 0, 0])
    np.testing.assert_allclose(g.histogram([1.0], scheme="linear"), [0, 0, 0, 1])
    np.testing.assert_allclose(g.histogram([0.8], scheme="linear"), [0, 0, 0.3, 0.7])


def test_histogram_linear_conserves_mass_and_mean():
    rng = np.random.default_rng(4)
    g = Grid([(-2, 2), (-1, 3)], (16, 20))
    # keep samples at least half a cell inside the box
    x = np.column_stack([rng.uniform(-2 + 0.125, 2 - 0.125, 5000),
                         rng.uniform(-1 + 0.1, 3 - 0.1, 5000)])
    w = rng.random(5000)
    h = g.histogram(x, w, scheme="linear")
    np.testing.assert_allclose(h.sum(), w.sum(), rtol=1e-13)
    xx, yy = g.mesh()
    np.testing.assert_allclose((h * xx).sum(), w @ x[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((h * yy).sum(), w @ x[:, 1], rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 200), seed=st.integers(0, 2 ** 31 - 1),
       nx=st.integers(2, 9), ny=st.integers(2, 9))
def test_histogram_properties(n, seed, nx, ny):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    w = rng.random(n) + 0.01
    g = Grid([(-1, 1), (-1, 1)], (nx, ny))
    hn = g.histogram(x, w)
    ref, _ = np.histogramdd(x, bins=g.edges, weights=w)
    np.testing.assert_allclose(hn, ref, rtol=1e-12, atol=1e-14)
    hl = g.histogram(x, w, scheme="linear")
    assert hl.min() >= 0
    np.testing.assert_allclose(hl.sum(), w.sum(), rtol=1e-12)


@pytest.mark.parametrize("scheme", ["nearest", "linear"])
def test_histogram_outside_modes(scheme):
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, size=(4000, 2))
    w = rng.random(4000)
    g = Grid([(-1.5, 1.5), (-1.5, 1.5)], 8)
    out = np.any(np.abs(x) > 1.5, axis=1)
    with pytest.raises(ValueError, match="outside the grid bounds"):
        g.histogram(x, w, scheme=scheme, outside="raise")
    np.testing.assert_allclose(g.outside_mass(x, w), w[out].sum(), rtol=1e-12)
    with pytest.warns(OutsideMassWarning, match="rescaled") as rec:
        h = g.histogram(x, w, scheme=scheme, outside="renormalize")
    np.testing.assert_allclose(rec[0].message.mass, w[out].sum(), rtol=1e-12)
    np.testing.assert_allclose(h.sum(), w.sum(), rtol=1e-12)
    inside = g.histogram(x[~out], w[~out], scheme=scheme, outside="raise")
    np.testing.assert_allclose(h, inside * w.sum() / w[~out].sum(), rtol=1e-12)
    with pytest.warns(OutsideMassWarning, match="folded") as rec:
        hf = g.histogram(x, w, scheme=scheme, outside="fold")
    np.testing.assert_allclose(rec[0].message.mass, w[out].sum(), rtol=1e-12)
    np.testing.assert_allclose(hf.sum(), w.sum(), rtol=1e-12)
    clipped = g.histogram(np.clip(x, -1.5, 1.5), w, scheme=scheme, outside="raise")
    np.testing.assert_allclose(hf, clipped, rtol=1e-12)
    if scheme == "nearest":
        ref, _ = np.histogramdd(np.clip(x, -1.5, 1.5), bins=g.edges, weights=w)
        np.testing.assert_allclose(hf, ref, rtol=1e-12)


def test_histogram_samples_on_box_edge_are_inside():
    g = Grid([(0, 1), (0, 1)], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = g.histogram([[0.0, 1.0], [1.0, 1.0]], outside="raise")
    np.testing.assert_allclose(h, [[0, 0.5], [0, 0.5]])
    assert g.outside_mass([[1.0, 1.0]]) == 0.0


def test_histogram_everything_outside():
    g = Grid((0, 1), 4)
    with pytest.raises(ValueError, match="No mass"):
        g.histogram([2.0, 3.0], outside="renormalize")
    with pytest.raises(OutsideMassError, match=r"1 \(100%\) of the mass") as exc:
        g.histogram([2.0, 3.0])                              # the default, "auto"
    assert exc.value.suggested_bounds == [(1.9, 3.1)]        # the samples' range, padded


@pytest.mark.parametrize(("samples", "weights", "kw", "exc", "match"), [
    (np.empty((0, 2)), None, {}, ValueError, "samples is empty"),
    ([[0.1, np.nan]], None, {}, ValueError, "samples contains"),
    ([[0.1, np.inf]], None, {}, ValueError, "samples contains"),
    ([0.1, 0.2], None, {}, ValueError, r"shape \(n, 2\)"),
    ([[0.1, 0.2, 0.3]], None, {}, ValueError, "samples must have shape"),
    (np.zeros((2, 2, 2)), None, {}, ValueError, "samples must have shape"),
    ([["a", "b"]], None, {}, TypeError, "samples"),
    ([[0.1, 0.2]], [-1.0], {}, ValueError, "weights must be non-negative"),
    ([[0.1, 0.2]], [1.0, 2.0], {}, ValueError, "one entry per sample"),
    ([[0.1, 0.2]], [0.0], {}, ValueError, "positive total"),
    ([[0.1, 0.2]], [np.nan], {}, ValueError, "weights contains"),
    ([[0.1, 0.2]], [[1.0]], {}, ValueError, "weights must have 1 dimension"),
    ([[0.1, 0.2]], None, {"scheme": "cubic"}, ValueError, "scheme must be one of"),
    ([[0.1, 0.2]], None, {"outside": "clip"}, ValueError, "outside must be one of"),
    ([[0.1, 0.2]], None, {"outside_tol": np.nan}, ValueError, "outside_tol"),
])
def test_histogram_bad_input(samples, weights, kw, exc, match):
    g = Grid([(0, 1), (0, 1)], 4)
    with pytest.raises(exc, match=match):
        g.histogram(samples, weights, **kw)


def test_histogram_large_is_fast_enough():
    # 10^6 samples in 2D, both schemes: a smoke test of the vectorised path (no timing asserted)
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, size=(10 ** 6, 2))
    g = Grid([(-1, 1), (-1, 1)], 64)
    for scheme in ("nearest", "linear"):
        np.testing.assert_allclose(g.histogram(x, scheme=scheme).sum(), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------- outside="auto"
def test_auto_refuses_a_grid_that_misses_the_measure():
    """The issue's case: N(0, 1) on [10, 20] used to give masses rescaled from ~1e-23 of
    rounding crumbs (and then a "converged" W); now it is an error with the fraction outside
    and bounds that hold the distribution, under which it is silent."""
    d = Normal(0.0, 1.0)
    with pytest.raises(OutsideMassError) as exc:
        Grid((10, 20), 64).discretize(d)
    err = exc.value
    assert isinstance(err, ValueError)
    assert err.fraction == pytest.approx(1.0) and err.mass == pytest.approx(1.0)
    assert err.bounds == ((10.0, 20.0),) and err.suggested_bounds == [(-6.0, 6.0)]
    for words in ("outside='auto'", "1 (100%)", "(10, 20)", "e.g. (-6, 6)",
                  "outside='renormalize'", "outside='fold'"):
        assert words in str(err), str(err)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = Grid(err.suggested_bounds, 64).discretize(d)
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-14)


def test_auto_renormalizes_up_to_the_threshold_silently():
    d = Normal(0.0, 1.0)
    g5 = Grid((-5, 5), 40)                   # 5.7e-7 outside: below 1e-6
    out5 = 2 * norm.sf(5.0)
    assert out5 < AUTO_OUTSIDE_TOL
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = g5.discretize(d)
    with pytest.warns(OutsideMassWarning):
        ref = g5.discretize(d, outside="renormalize")
    np.testing.assert_allclose(m, ref, rtol=1e-15)
    g45 = Grid((-4.5, 4.5), 40)              # 6.8e-6 outside: above it
    with pytest.raises(OutsideMassError, match=r"6\.79535e-06") as exc:
        g45.discretize(d)
    assert exc.value.fraction == pytest.approx(2 * norm.sf(4.5), rel=1e-9)
    with warnings.catch_warnings():          # an explicit outside_tol moves the threshold
        warnings.simplefilter("error")
        g45.discretize(d, outside_tol=1e-5)
    d2 = Normal([0.0, 0.0], 1.0)             # 1e-6 per axis: mean +- 5 std passes in 2D too
    assert 2 * out5 - out5 ** 2 > AUTO_OUTSIDE_TOL      # (1.15e-6: above a flat 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Grid([(-5, 5), (-5, 5)], 20).discretize(d2)
    with pytest.raises(OutsideMassError, match=r"2e-06 of the total .*\(1e-06 per axis\)"):
        Grid([(-5, 5), (-4.5, 4.5)], 20).discretize(d2)


def test_auto_threshold_is_relative_for_samples():
    x = np.concatenate([np.zeros(999_999), [5.0]])     # one sample in a million outside
    g = Grid((-1, 1), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = g.histogram(x, np.full(x.size, 1000.0))    # total weight 1e9, 1e-6 of it outside
    np.testing.assert_allclose(h.sum(), 1e9, rtol=1e-12)
    with pytest.raises(OutsideMassError, match="outside='auto'"):
        g.histogram(x[-20:])                           # 1 in 20 outside


def test_raise_is_an_outside_mass_error_with_suggested_bounds():
    g = Grid([(-1, 1), (-1, 1)], 8)
    with pytest.raises(OutsideMassError, match="more than outside_tol=1e-12") as exc:
        g.discretize(Normal([0.0, 3.0], 1.0), outside="raise")
    assert exc.value.suggested_bounds == [(-6.0, 6.0), (-3.0, 9.0)]  # +-5 std, padded


@pytest.mark.parametrize("mode", ["auto", "raise", "renormalize", "fold"])
def test_every_mode_is_accepted_and_bad_tolerances_are_not(mode):
    g = Grid((-12, 12), 24)
    np.testing.assert_allclose(g.discretize(Normal(0.0, 1.0), outside=mode).sum(), 1.0,
                               atol=1e-15)
    with pytest.raises(TypeError, match="outside_tol must be a real number or None"):
        g.discretize(Normal(0.0, 1.0), outside=mode, outside_tol="1e-6")


# --------------------------------------------------------------------------- bounds_holding
def test_bounds_holding_examples():
    assert bounds_holding(Normal(0.0, 1.0), Normal(1.0, 1.0)) == [(-6.0, 7.0)]
    assert bounds_holding(Mixture([Normal(0.0, 1.0), PointMass(8.0)])) == [(-6.0, 9.0)]
    assert bounds_holding(Uniform([0, 0], [1, 2])) == [(-0.1, 1.1), (-0.1, 2.1)]
    assert bounds_holding([0.0, 1.0, 2.0]) == [(-0.1, 2.1)]
    assert bounds_holding(PointMass(3.0)) == [(2.9, 3.1)]
    with pytest.raises(ValueError, match="at least one"):
        bounds_holding()
    with pytest.raises(ValueError, match="different dimensions"):
        bounds_holding(Normal(0.0, 1.0), Normal([0.0, 0.0], 1.0))
    with pytest.raises(ValueError, match="beyond"):
        bounds_holding(PointMass(1e150), PointMass(-1e150))


@settings(max_examples=30, deadline=None)
@given(ndim=st.integers(1, 3),
       mean=st.floats(-1e3, 1e3, allow_nan=False),
       std=st.floats(1e-3, 1e3, allow_nan=False))
def test_bounds_holding_holds_gaussians_under_auto(ndim, mean, std):
    d = Normal([mean] * ndim, [std ** 2] * ndim)
    g = Grid(bounds_holding(d), 6)
    assert g.outside_mass(d) <= 1e-7 * ndim     # 5.5 std and more on every axis
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g.discretize(d)


# --------------------------------------------------------------------------- extreme grids
@pytest.mark.parametrize(("bounds", "shape", "match"), [
    ((-1e300, 1e300), 8, "within"),
    ((0.0, 2e150), 8, "within"),
    ([(0, 1), (-1e151, 0)], 8, "within"),
    ((1e15, 1e15 + 1), 512, "too narrow"),
    ((0.0, 1e-200), 512, "too narrow"),
])
def test_extreme_bounds_are_refused(bounds, shape, match):
    with pytest.raises(ValueError, match=match) as exc:
        Grid(bounds, shape)
    assert "towards 0" in str(exc.value)


def test_largest_bounds_still_work():
    g = Grid((-MAX_COORDINATE, MAX_COORDINATE), 8)
    assert g.dx == (2.5e149,)
    m = g.discretize(Normal(0.0, 1e298))        # std 1e149
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-12)
    assert np.all(np.isfinite(g.centers[0]))
