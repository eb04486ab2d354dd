"""Tests for otgrid.grid.funnels: the known-potential "funnels" pairs (Korotin et al., 2022).

The references are written here, independently of the module's fast paths: a brute-force
owner (all apexes), a brute-force exit distance (every box side and every other apex), the
transport map from them, Monte Carlo means, midpoint quadratures and sample histograms.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import otgrid as og
from otgrid.grid import Grid, Uniform
from otgrid.grid.funnels import FunnelCritic, FunnelPair, FunnelTarget

L = 2.5


# --------------------------------------------------------------------------- naive reference
def naive_owner(pair, x):
    """argmin_k |x - c_k| + b_k over all apexes (first index on ties), chunked."""
    c, b = np.asarray(pair.apexes), np.asarray(pair.offsets)
    out = np.empty(len(x), dtype=int)
    for s in range(0, len(x), 20_000):
        xs = x[s:s + 20_000]
        d = np.sqrt(((xs[:, None, :] - c[None]) ** 2).sum(-1)) + b[None]
        out[s:s + 20_000] = d.argmin(1)
    return out


def naive_exit(pair, k, e):
    """Distance from c_k along the unit e to the box or to the border with any other apex."""
    c, b, half = np.asarray(pair.apexes), np.asarray(pair.offsets), pair.half_width
    ck = c[k]
    s = np.full(len(k), np.inf)
    for axis in range(2):
        for side in (half, -half):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (side - ck[:, axis]) / e[:, axis]
            s = np.where(t > 0, np.minimum(s, t), s)
    for m in range(len(c)):
        d = ck - c[m]
        delta = b[k] - b[m]
        den = delta - (d * e).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sm = ((d * d).sum(1) - delta ** 2) / (2 * den)
        s = np.where((k != m) & (den > 0), np.minimum(s, sm), s)
    return s


def naive_transport(pair, x):
    k = naive_owner(pair, x)
    v = x - np.asarray(pair.apexes)[k]
    r = np.linalg.norm(v, axis=1)
    e = v / r[:, None]
    s = naive_exit(pair, k, e)
    rho = s * (r / s) ** pair.deg if np.isfinite(pair.deg) else 0 * r
    return np.asarray(pair.apexes)[k] + rho[:, None] * e, k, e, s


def uniform_box(n, seed):
    return np.random.default_rng(seed).uniform(-L, L, size=(n, 2))


@pytest.fixture(scope="module")
def pair16():
    return FunnelPair(16)


@pytest.fixture(scope="module")
def pair256():
    return FunnelPair(256)


# --------------------------------------------------------------------------- the potential
@pytest.mark.parametrize("n", [4, 64])
def test_potential_is_1_lipschitz_with_unit_gradient(n):
    pair = FunnelPair(n)
    rng = np.random.default_rng(1)
    x, y = uniform_box(50_000, 2), rng.uniform(-3, 3, size=(50_000, 2))
    y[:25_000] = x[:25_000] + rng.normal(scale=0.05, size=(25_000, 2))   # close pairs too
    du = np.abs(pair.potential(x) - pair.potential(y))
    assert np.all(du <= np.linalg.norm(x - y, axis=1) * (1 + 1e-12) + 1e-14)
    # the potential is the brute-force min over all cones
    c, b = np.asarray(pair.apexes), np.asarray(pair.offsets)
    ref = (np.sqrt(((x[:, None] - c[None]) ** 2).sum(-1)) + b).min(1)
    np.testing.assert_allclose(pair.potential(x), ref, rtol=1e-14, atol=1e-15)
    g = pair.gradient(x)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, rtol=1e-14)


def test_gradient_is_the_finite_difference_away_from_borders(pair16):
    x = uniform_box(20_000, 3)
    c, b = np.asarray(pair16.apexes), np.asarray(pair16.offsets)
    cones = np.sqrt(((x[:, None] - c[None]) ** 2).sum(-1)) + b
    two = np.sort(cones, axis=1)[:, :2]
    r = np.sqrt(((x - c[cones.argmin(1)]) ** 2).sum(1))
    far = (two[:, 1] - two[:, 0] > 1e-3) & (r > 1e-2)      # away from borders and apexes
    x = x[far]
    h = 1e-6
    fd = np.stack([(pair16.potential(x + h * np.eye(2)[a]) - pair16.potential(x - h * np.eye(2)[a]))
                   / (2 * h) for a in range(2)], axis=1)
    np.testing.assert_allclose(pair16.gradient(x), fd, atol=1e-7)
    v, g = pair16.value_and_grad(x)
    np.testing.assert_array_equal(v, pair16.potential(x))
    np.testing.assert_array_equal(g, pair16.gradient(x))


def test_shapes_and_the_apex():
    pair = FunnelPair(4)
    x = np.zeros((3, 5, 2))
    assert pair.potential(x).shape == (3, 5)
    assert pair.gradient(x).shape == (3, 5, 2)
    assert pair.region(x).shape == (3, 5)
    c = np.asarray(pair.apexes)
    np.testing.assert_array_equal(pair.region(c), np.arange(4))     # each apex in its region
    np.testing.assert_allclose(pair.potential(c), pair.offsets, rtol=0, atol=0)
    assert np.isnan(pair.gradient(c)).all()                          # documented: NaN at a cone
    v, g = pair.critic.value_and_grad(c)                             # the critic: subgradient 0
    np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_array_equal(pair.critic(c), v)
    assert isinstance(pair.critic, FunnelCritic)
    assert not pair.apexes.flags.writeable and not pair.offsets.flags.writeable
    assert not pair.region_masses.flags.writeable


# --------------------------------------------------------------------------- the map
@pytest.mark.parametrize("n", [4, 64])
def test_transport_moves_mass_along_the_rays(n):
    pair = FunnelPair(n)
    x = uniform_box(40_000, 4)
    t = pair.transport(x)
    dist = np.linalg.norm(x - t, axis=1)
    np.testing.assert_allclose(pair.potential(x) - pair.potential(t), dist, rtol=1e-12,
                               atol=1e-13)
    np.testing.assert_array_equal(pair.region(t), pair.region(x))
    np.testing.assert_array_equal(naive_owner(pair, t), naive_owner(pair, x))
    ref, _, _, _ = naive_transport(pair, x)
    np.testing.assert_allclose(t, ref, rtol=1e-11, atol=1e-13)
    with pytest.raises(ValueError, match="box"):
        pair.transport([[L + 0.1, 0.0]])


def test_fast_owner_and_exit_distance_match_brute_force(pair256):
    pair = pair256
    x = uniform_box(20_000, 5)
    k = naive_owner(pair, x)
    c = np.asarray(pair.apexes)
    v = x - c[k]
    e = v / np.linalg.norm(v, axis=1)[:, None]
    s = naive_exit(pair, k, e)
    # points 1e-7 * s inside and outside the border of their region, along the ray
    inner = c[k] + (s * (1 - 1e-7))[:, None] * e
    outer = c[k] + (s * (1 + 1e-7))[:, None] * e
    inbox = np.all(np.abs(outer) < L, axis=1)             # beyond a border with another region
    outer = outer[inbox]
    pts = np.concatenate([x, inner, outer, c + 1e-9])
    own = naive_owner(pair, pts)
    np.testing.assert_array_equal(pair.region(pts), own)
    np.testing.assert_array_equal(pair.region(inner), k)
    assert np.all(pair.region(outer) != k[inbox]) and inbox.sum() > 1000
    vv = pts - c[own]
    ee = vv / np.linalg.norm(vv, axis=1)[:, None]
    np.testing.assert_allclose(pair.exit_distance(pts), naive_exit(pair, own, ee), rtol=1e-12)


# --------------------------------------------------------------------------- W1
@pytest.mark.parametrize(("n", "deg", "m"), [(4, 8.0, 200_000), (16, 8.0, 200_000),
                                             (64, 8.0, 100_000), (256, 8.0, 40_000),
                                             (16, np.inf, 100_000), (4, 2.0, 100_000)])
def test_w1_matches_a_brute_force_monte_carlo(n, deg, m):
    pair = FunnelPair(n, deg=deg)
    x = uniform_box(m, 10 + n)
    t, _, _, _ = naive_transport(pair, x)
    d = np.linalg.norm(x - t, axis=1)
    est, se = d.mean(), d.std(ddof=1) / np.sqrt(m)
    assert abs(pair.w1() - est) < 4 * se
    # and the module's own estimate
    est2, se2 = pair.w1_monte_carlo(m, rng=99)
    assert abs(pair.w1() - est2) < 4 * se2
    np.testing.assert_allclose(se2, se, rtol=0.05)


@pytest.mark.parametrize("n", [4, 16, 64])
def test_area_identity_and_region_masses_against_midpoint_quadrature(n):
    pair = FunnelPair(n)
    rays = 1 << 14
    th = (np.arange(rays) + 0.5) * 2 * np.pi / rays
    e = np.stack([np.cos(th), np.sin(th)], 1)
    area = np.array([(naive_exit(pair, np.full(rays, k), e) ** 2 / 2).sum() * 2 * np.pi / rays
                     for k in range(n)]) / (4 * L * L)
    np.testing.assert_allclose(area.sum(), 1.0, atol=1e-7)          # the regions tile the box
    np.testing.assert_allclose(pair.region_masses, area, atol=1e-7)
    np.testing.assert_allclose(pair.region_masses.sum(), 1.0, atol=1e-13)


def test_w1_against_a_fine_midpoint_rule():
    """The closed form against the midpoint rule with 2**17 rays per funnel (its error, from
    the kinks of s(theta), is a few 1e-9 relative)."""
    pair = FunnelPair(4)
    rays = 1 << 17
    th = (np.arange(rays) + 0.5) * 2 * np.pi / rays
    e = np.stack([np.cos(th), np.sin(th)], 1)
    cube = sum((naive_exit(pair, np.full(rays, k), e) ** 3).sum() for k in range(4))
    ref = (1 / 3 - 1 / 10) * cube * 2 * np.pi / rays / (4 * L * L)
    np.testing.assert_allclose(pair.w1(), ref, rtol=1e-8)


# --------------------------------------------------------------------------- the target
def test_cell_masses_match_a_histogram(pair16):
    pair = pair16
    n = 2_000_000
    e = np.linspace(-L, L, 65)
    m = pair.target.cell_masses([e, e])
    _, y, _ = pair.sample(n, rng=7)
    h = np.histogram2d(y[:, 0], y[:, 1], bins=[e, e])[0] / n
    se = np.sqrt(m * (1 - m) / n)
    assert np.all(np.abs(h - m) <= 5 * se + 2.0 / n)
    keep = m > 20.0 / n
    chi2 = float((n * (h[keep] - m[keep]) ** 2 / m[keep]).sum())
    df = int(keep.sum())
    assert chi2 < df + 6 * np.sqrt(2 * df)
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-9)
    # edges covering the left half of the box: the left half of the masses, and the sample
    half = pair.target.cell_masses([e[:33], e])
    np.testing.assert_allclose(half, m[:32], rtol=1e-12, atol=1e-15)
    frac = (y[:, 0] < 0).mean()
    assert abs(half.sum() - frac) < 4 * np.sqrt(frac * (1 - frac) / n)
    # wider edges, infinite edges, a coarse grid: all the mass
    wide = np.linspace(-4.0, 4.0, 41)
    np.testing.assert_allclose(pair.target.cell_masses([wide, wide]).sum(), 1.0, atol=1e-9)
    inf = np.array([-np.inf, 0.3, np.inf])
    q = pair.target.cell_masses([inf, inf])
    np.testing.assert_allclose(q.sum(), 1.0, atol=1e-9)
    corner = ((y[:, 0] < 0.3) & (y[:, 1] < 0.3)).mean()
    assert abs(q[0, 0] - corner) < 4 * np.sqrt(corner * (1 - corner) / n)


def test_cell_masses_through_grid_discretize():
    pair = FunnelPair(64)
    grid = Grid([(-L, L), (-L, L)], (32, 32))
    m = grid.discretize(pair.target, outside="raise")
    np.testing.assert_allclose(m.sum(), 1.0, atol=1e-12)
    assert m.min() >= 0


def test_deg_inf_puts_the_region_masses_on_the_apex_cells():
    pair = FunnelPair(16, deg=np.inf)
    e = np.linspace(-L, L, 41)
    m = pair.target.cell_masses([e, e])
    c = np.asarray(pair.apexes)
    ix = np.searchsorted(e, c[:, 0], side="right") - 1
    iy = np.searchsorted(e, c[:, 1], side="right") - 1
    ref = np.zeros((40, 40))
    np.add.at(ref, (ix, iy), pair.region_masses)
    np.testing.assert_allclose(m, ref, rtol=1e-15, atol=0)
    # Q(R_k) against the fraction of uniform samples each region owns
    n = 400_000
    frac = np.bincount(naive_owner(pair, uniform_box(n, 8)), minlength=16) / n
    se = np.sqrt(frac * (1 - frac) / n)
    assert np.all(np.abs(frac - pair.region_masses) < 4.5 * se)
    # samples sit at the apexes
    y = pair.target.sample(1000, rng=0)
    assert np.all((y[:, None, :] == c[None]).all(-1).any(1))
    np.testing.assert_allclose(pair.target.mean, c.T @ pair.region_masses, rtol=1e-14)


def test_mean_and_samples_of_the_target(pair16):
    target = pair16.target
    assert isinstance(target, FunnelTarget) and target.ndim == 2
    y = target.sample(400_000, rng=3)
    se = y.std(0) / np.sqrt(len(y))
    assert np.all(np.abs(y.mean(0) - target.mean) < 4 * se)
    np.testing.assert_array_equal(y, pair16.sample(400_000, rng=3)[1])
    with pytest.raises(NotImplementedError):
        target.pdf([[0.0, 0.0]])


def test_the_coupled_sampler():
    pair = FunnelPair(16)
    x, y, g = pair.sample(200_000, rng=11)
    assert x.shape == y.shape == g.shape == (200_000, 2)
    assert np.all(np.abs(x) <= L)                # x ~ Q: in the box
    ref, k, e, _ = naive_transport(pair, x)
    np.testing.assert_allclose(y, ref, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-15)       # the ray direction
    c = np.asarray(pair.apexes)[k]
    away = np.linalg.norm(y - c, axis=1) > 1e-6
    np.testing.assert_allclose(g[away], pair.gradient(y[away]), rtol=1e-8, atol=1e-8)
    at_apex = np.all(y == c, axis=1)     # (r/s)^8 under the apex's ulp: y is the apex itself
    assert at_apex.any()
    np.testing.assert_allclose(np.linalg.norm(g[at_apex], axis=1), 1.0, rtol=1e-14)


# --------------------------------------------------------------------------- audit, API
def test_auditing_the_true_potential_runs():
    pair = FunnelPair(4)
    grid = Grid([(-L, L), (-L, L)], (48, 48))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = og.audit(pair.critic, pair.source, pair.target, grid)
    assert abs(rep.w_ratio - 1.0) < 0.1


def test_reexports_and_reproducibility():
    pair = og.datasets.funnel_pair(16, seed=3)
    assert isinstance(pair, og.datasets.FunnelPair)
    np.testing.assert_array_equal(pair.apexes, FunnelPair(16, seed=3).apexes)
    assert not np.array_equal(pair.apexes, FunnelPair(16, seed=4).apexes)
    assert pair.n_funnels == 16 and pair.deg == 8.0 and pair.half_width == 2.5
    assert pair.seed == 3
    np.testing.assert_allclose(pair.offset, 0.1 * 5 / 4)
    assert np.all((pair.offsets >= 0) & (pair.offsets <= pair.offset))
    src = pair.source
    assert isinstance(src, Uniform)
    np.testing.assert_array_equal(src.low, [-2.5, -2.5])
    assert "FunnelPair(n_funnels=16" in repr(pair)


@pytest.mark.parametrize("n", [1, 2, 64])
def test_the_draw_keeps_every_apex_deep_in_its_region(n):
    pair = FunnelPair(n, seed=1, offset=0.3, half_width=1.0)
    c, b = np.asarray(pair.apexes), np.asarray(pair.offsets)
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1)) + np.eye(n) * 1e9
    assert np.all(np.abs(b[:, None] - b[None]) <= 0.5 * d)
    assert np.all(np.abs(c) < 1.0)
    est, se = pair.w1_monte_carlo(100_000, rng=0)
    assert abs(pair.w1() - est) < 4 * se


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"n_funnels": 0}, "n_funnels"), ({"deg": 1.0}, "deg"), ({"deg": 0.5}, "deg"),
    ({"deg": float("nan")}, "deg"), ({"half_width": 0.0}, "half_width"),
    ({"half_width": -1.0}, "half_width"), ({"half_width": float("nan")}, "half_width"),
    ({"half_width": np.inf}, "half_width"), ({"offset": float("nan")}, "offset"),
    ({"offset": -0.1}, "offset"), ({"offset": 50.0, "n_funnels": 64}, "offset"),
    ({"seed": -1}, "seed"),
])
def test_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FunnelPair(**kwargs)


def test_bad_types():
    with pytest.raises(TypeError, match="n_funnels"):
        FunnelPair(2.5)
    with pytest.raises(TypeError, match="deg"):
        FunnelPair(deg="8")
    with pytest.raises(ValueError, match="x"):
        FunnelPair(4).potential([[np.nan, 0.0]])
    with pytest.raises(TypeError, match="pair"):
        FunnelTarget("not a pair")
