"""Tests for otgrid.grid.datasets: the WGAN toy distributions match their reference definitions."""

from __future__ import annotations

import numpy as np
import ot
import pytest
from scipy import integrate

import otgrid.grid.datasets as ds_mod
from otgrid.grid import Grid, Mixture, Normal, Uniform
from otgrid.grid.datasets import (
    SwissRoll,
    eight_gaussians,
    parallel_lines,
    swissroll,
    twentyfive_gaussians,
)

INF = np.inf


def _assert_masses_match_histogram(dist, grid, n, seed):
    """Exact masses vs a histogram of n samples, cell by cell within 5 binomial SE + chi^2."""
    m = grid.discretize(dist, outside="fold", outside_tol=1e-4)
    x = dist.sample(n, np.random.default_rng(seed))
    h = grid.histogram(x, outside="fold", outside_tol=1e-4)
    se = np.sqrt(m * (1 - m) / n)
    assert np.all(np.abs(h - m) <= 5 * se + 2.0 / n)
    keep = m > 20.0 / n
    chi2 = float((n * (h[keep] - m[keep]) ** 2 / m[keep]).sum())
    df = int(keep.sum())
    assert chi2 < df + 6 * np.sqrt(2 * df)
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-12)


# --------------------------------------------------------------------------- 8 gaussians
def test_eight_gaussians_definition():
    d = eight_gaussians()
    assert isinstance(d, Mixture) and d.ndim == 2
    r = 1 / np.sqrt(2)
    centres = 2 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r),
                            (-r, -r)]) / 1.414
    got = np.array([c.mean for c in d.components])
    np.testing.assert_allclose(got, centres, rtol=1e-15)
    for c in d.components:
        np.testing.assert_allclose(c.cov, (0.02 / 1.414) ** 2 * np.eye(2), rtol=1e-14)
    np.testing.assert_allclose(d.weights, np.full(8, 1 / 8))


def test_eight_gaussians_samples_cluster():
    d = eight_gaussians()
    n = 80_000
    x = d.sample(n, np.random.default_rng(0))
    # points sit at radius 2 / 1.414 at angles k * 45 degrees (the reference construction)
    ang = np.arange(8) * np.pi / 4
    centres = (2 / 1.414) * np.column_stack([np.cos(ang), np.sin(ang)])
    dist2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    lab = dist2.argmin(1)
    resid = x - centres[lab]
    std = 0.02 / 1.414
    np.testing.assert_allclose(resid.std(0), [std, std], rtol=0.02)
    np.testing.assert_allclose(resid.mean(0), [0, 0], atol=5 * std / np.sqrt(n))
    assert np.sqrt(dist2.min(1)).max() < 7 * std
    counts = np.bincount(lab, minlength=8)
    np.testing.assert_allclose(counts / n, 1 / 8, atol=5 * np.sqrt(1 / 8 * 7 / 8 / n))


def test_eight_gaussians_masses_vs_histogram():
    _assert_masses_match_histogram(eight_gaussians(), Grid([(-2, 2), (-2, 2)], 40),
                                   1_000_000, 1)


# --------------------------------------------------------------------------- 25 gaussians
def test_twentyfive_gaussians_definition_and_samples():
    d = twentyfive_gaussians()
    assert len(d.components) == 25
    centres = np.array([(2 * i, 2 * j) for i in range(-2, 3) for j in range(-2, 3)]) / 2.828
    got = np.array([c.mean for c in d.components])
    np.testing.assert_allclose(np.sort(got.view("f8,f8"), axis=0).view("f8"),
                               np.sort(centres.view("f8,f8"), axis=0).view("f8"), rtol=1e-15)
    n = 100_000
    x = d.sample(n, np.random.default_rng(2))
    lab = np.rint(x * 2.828 / 2).astype(int)             # nearest lattice point (i, j)
    resid = x - lab * 2 / 2.828
    std = 0.05 / 2.828
    np.testing.assert_allclose(resid.std(0), [std, std], rtol=0.02)
    assert np.abs(lab).max() <= 2
    counts = np.bincount((lab[:, 0] + 2) * 5 + lab[:, 1] + 2, minlength=25)
    np.testing.assert_allclose(counts / n, 1 / 25, atol=5 * np.sqrt(1 / 25 / n))


def test_twentyfive_gaussians_masses_vs_histogram():
    _assert_masses_match_histogram(twentyfive_gaussians(), Grid([(-2, 2), (-2, 2)], 32),
                                   500_000, 3)


# --------------------------------------------------------------------------- swiss roll
def test_swissroll_definition_radius_angle():
    assert repr(swissroll()) == "SwissRoll(noise=0.25, scale=7.5)"
    d = SwissRoll(noise=1e-9)
    x = d.sample(20_000, np.random.default_rng(4)) * 7.5
    t = np.hypot(x[:, 0], x[:, 1])                       # noiseless: radius == parameter t
    assert t.min() >= 1.5 * np.pi - 1e-6 and t.max() <= 4.5 * np.pi + 1e-6
    np.testing.assert_allclose(x[:, 0], t * np.cos(t), atol=1e-6)
    np.testing.assert_allclose(x[:, 1], t * np.sin(t), atol=1e-6)
    # t is uniform on [1.5 pi, 4.5 pi]
    np.testing.assert_allclose(t.mean(), 3 * np.pi, atol=5 * 3 * np.pi / np.sqrt(12 * t.size))
    hist, _ = np.histogram(t, bins=10, range=(1.5 * np.pi, 4.5 * np.pi))
    np.testing.assert_allclose(hist / t.size, 0.1, atol=5 * np.sqrt(0.09 / t.size))


def test_swissroll_noise_level():
    x = swissroll().sample(50_000, np.random.default_rng(5)) * 7.5
    r = np.hypot(x[:, 0], x[:, 1])
    phi = np.arctan2(x[:, 1], x[:, 0])
    # parameter t = phi + 2 pi k closest to the radius; the residual r - t is the noise
    k = np.rint((r - phi) / (2 * np.pi))
    resid = r - (phi + 2 * np.pi * k)
    np.testing.assert_allclose(resid.std(), 0.25, rtol=0.05)
    assert np.abs(resid).max() < 2.0


def _quad_moments():
    a, b = 1.5 * np.pi, 4.5 * np.pi

    def e(f):
        return integrate.quad(f, a, b, limit=200, epsabs=1e-13)[0] / (b - a)

    mx, my = e(lambda t: t * np.cos(t)), e(lambda t: t * np.sin(t))
    cxx = e(lambda t: (t * np.cos(t)) ** 2) - mx * mx + 0.25 ** 2
    cyy = e(lambda t: (t * np.sin(t)) ** 2) - my * my + 0.25 ** 2
    cxy = e(lambda t: t * t * np.cos(t) * np.sin(t)) - mx * my
    return np.array([mx, my]) / 7.5, np.array([[cxx, cxy], [cxy, cyy]]) / 7.5 ** 2


def test_swissroll_moments():
    d = swissroll()
    mean, cov = _quad_moments()
    np.testing.assert_allclose(d.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(d.cov, cov, rtol=1e-10)
    n = 400_000
    x = d.sample(n, np.random.default_rng(6))
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) <= 5 * se)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=5 * np.sqrt(2 * cov.max() ** 2 / n))


def test_swissroll_masses_resolution(monkeypatch):
    e = np.r_[-INF, np.linspace(-2, 2, 65), INF]
    m = swissroll().cell_masses([e, e])
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-13)
    monkeypatch.setattr(ds_mod, "_SR_NODES", 16)
    monkeypatch.setattr(ds_mod, "_SR_WIDTH", 0.5)
    fine = SwissRoll().cell_masses([e, e])
    np.testing.assert_allclose(m, fine, rtol=0, atol=1e-15)


def test_swissroll_masses_vs_histogram():
    _assert_masses_match_histogram(swissroll(), Grid([(-2, 2), (-2, 2)], 24), 2_000_000, 7)


def test_swissroll_pdf_integrates_to_cell_mass():
    d = swissroll()
    lo, hi, k = np.array([-0.1, -0.75]), np.array([0.1, -0.55]), 40
    h = (hi - lo) / k
    gx = lo[0] + (np.arange(k) + 0.5) * h[0]
    gy = lo[1] + (np.arange(k) + 0.5) * h[1]
    pts = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1)
    approx = d.pdf(pts).sum() * h[0] * h[1]
    exact = d.cell_masses([np.array([lo[0], hi[0]]), np.array([lo[1], hi[1]])])[0, 0]
    assert exact > 1e-2
    np.testing.assert_allclose(approx, exact, rtol=3e-4)   # midpoint rule error ~4e-5


@pytest.mark.parametrize(("kw", "exc"), [
    ({"noise": 0.0}, ValueError), ({"noise": -1.0}, ValueError), ({"scale": np.inf}, ValueError),
    ({"noise": "a"}, TypeError), ({"scale": True}, TypeError),
])
def test_swissroll_bad_input(kw, exc):
    with pytest.raises(exc, match=next(iter(kw))):
        SwissRoll(**kw)


def test_swissroll_tiny_noise_refuses_quadrature():
    d = SwissRoll(noise=1e-9)
    e = np.linspace(-2, 2, 5)
    with pytest.raises(ValueError, match="too small"):
        d.cell_masses([e, e])
    assert d.cov.shape == (2, 2)


# --------------------------------------------------------------------------- parallel lines
def test_parallel_lines():
    mu, nu = parallel_lines(0.5)
    assert isinstance(mu, Uniform) and isinstance(nu, Uniform)
    np.testing.assert_array_equal(mu.low, [0, 0])
    np.testing.assert_array_equal(mu.high, [0, 1])
    np.testing.assert_array_equal(nu.low, [0.5, 0])
    np.testing.assert_array_equal(nu.high, [0.5, 1])
    g = Grid([(-1, 1), (0, 1)], (8, 4))
    m = g.discretize(mu, outside="raise")
    n = g.discretize(nu, outside="raise")
    np.testing.assert_allclose(m[4], 0.25)               # x = 0 lies in cell [0, 0.25)
    np.testing.assert_allclose(n[6], 0.25)               # x = 0.5 lies in cell [0.5, 0.75)
    np.testing.assert_allclose(m.sum(), 1.0)
    np.testing.assert_allclose(n.sum(), 1.0)
    # W1 = |theta|: exact OT (POT) between equally many samples with the same heights
    for theta in (0.5, -0.3):
        mu, nu = parallel_lines(theta)
        xs, xt = mu.sample(200, 8), nu.sample(200, 8)
        w1 = ot.emd2(np.full(200, 1 / 200), np.full(200, 1 / 200),
                     ot.dist(xs, xt, metric="euclidean"))
        np.testing.assert_allclose(w1, abs(theta), rtol=1e-9)


@pytest.mark.parametrize(("theta", "exc"), [(np.nan, ValueError), (np.inf, ValueError),
                                            ("1", TypeError), (None, TypeError)])
def test_parallel_lines_bad_input(theta, exc):
    with pytest.raises(exc, match="theta"):
        parallel_lines(theta)


def test_mixture_of_normals_types():
    assert all(isinstance(c, Normal) for c in eight_gaussians().components)
