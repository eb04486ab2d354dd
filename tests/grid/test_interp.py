"""Tests of otgrid.grid.interp.GridFunction: (bi)linear interpolation and its extension outside B.

References are independent of the code under test: closed forms (linear and bilinear functions),
``scipy.interpolate.RegularGridInterpolator``, ``np.interp``, central finite differences, and a
brute-force maximum over a dense sampling of the boundary of the box of centres.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import RegularGridInterpolator

from otgrid.grid import Grid, GridFunction

SETTINGS = settings(max_examples=25, deadline=None)


def centre_box(grid):
    """Lower and upper corners of the box of cell centres B."""
    lo = np.array([c[0] for c in grid.centers])
    hi = np.array([c[-1] for c in grid.centers])
    return lo, hi


def grid2d(shape=(9, 7), bounds=((-1.0, 2.0), (0.5, 3.0))):
    return Grid(bounds, shape)


def lipschitz_values(grid, rng):
    """Samples of f = 0.7 sin(a.x + b) with |a_k| <= 1: every partial derivative of the
    bilinear interpolant is an average of difference quotients, so |d_k F| <= 0.7 and the
    interpolant is 1-Lipschitz (|grad| <= 0.99) on B."""
    a = rng.uniform(-1, 1, size=grid.ndim)
    b = rng.uniform(0, 2 * np.pi)
    mesh = grid.mesh()
    arg = sum(ak * m for ak, m in zip(a, mesh, strict=True)) + b
    return 0.7 * np.sin(arg)


def outside_points(grid, rng, n, margin=2.0):
    """Random points of the enlarged box that lie outside B."""
    lo, hi = centre_box(grid)
    x = rng.uniform(lo - margin, hi + margin, size=(4 * n, grid.ndim))
    out = np.any((x < lo) | (x > hi), axis=1)
    return x[out][:n]


def boundary_points(grid, rng, n):
    """Random points on the boundary of B (2D), with their outward unit normals."""
    lo, hi = centre_box(grid)
    side = rng.integers(0, 4, size=n)
    t = rng.uniform(0, 1, size=n)
    pts = np.empty((n, 2))
    normals = np.zeros((n, 2))
    for s in range(4):
        m = side == s
        axis, end = divmod(s, 2)
        other = 1 - axis
        pts[m, axis] = hi[axis] if end else lo[axis]
        pts[m, other] = lo[other] + t[m] * (hi[other] - lo[other])
        normals[m, axis] = 1.0 if end else -1.0
    return pts, normals


def brute_force_boundary_max(grid, values, x, per_edge=4001):
    """max_{z in dB} [f(z) - |x - z|] over a dense sampling of the boundary polygon (2D).

    Values on the boundary by np.interp along each edge (the bilinear interpolant restricted to
    an edge is the piecewise linear interpolant of the edge samples). Returns the max and the
    maximiser.
    """
    c0, c1 = grid.centers
    zs, fz = [], []
    for axis, c in ((0, c0), (1, c1)):
        s = np.union1d(np.linspace(c[0], c[-1], per_edge), c)
        for end in (0, -1):
            edge_vals = values[:, end] if axis == 0 else values[end, :]
            fixed = (c1 if axis == 0 else c0)[end]
            z = np.empty((s.size, 2))
            z[:, axis] = s
            z[:, 1 - axis] = fixed
            zs.append(z)
            fz.append(np.interp(s, c, edge_vals))
    z = np.concatenate(zs)
    f = np.concatenate(fz)
    best = np.empty(len(x))
    arg = np.empty((len(x), 2))
    for start in range(0, len(x), 25):
        xs = x[start:start + 25]
        obj = f[None, :] - np.hypot(xs[:, 0, None] - z[None, :, 0], xs[:, 1, None] - z[None, :, 1])
        k = np.argmax(obj, axis=1)
        best[start:start + 25] = obj[np.arange(len(xs)), k]
        arg[start:start + 25] = z[k]
    return best, arg


def first_hit_on_box(grid, x, u):
    """First point where the rays x + t u (t >= 0) meet the box of centres (slab method)."""
    lo, hi = centre_box(grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - x) / u
        t2 = (hi - x) / u
    t_near = np.where(u == 0, -np.inf, np.minimum(t1, t2))
    t_enter = t_near.max(axis=1)
    assert np.all(t_enter > 0)
    return np.clip(x + t_enter[:, None] * u, lo, hi)


# --------------------------------------------------------------------------------------------
# Inside B


@pytest.mark.parametrize("shape", [2, 5, 17])
def test_linear_exact_1d(shape):
    rng = np.random.default_rng(0)
    grid = Grid((-1.0, 3.0), shape)
    c = grid.centers[0]
    a, b = 0.3, -1.7
    f = GridFunction(grid, a + b * c)
    x = np.concatenate([rng.uniform(c[0], c[-1], 200), c])
    val, g = f.value_and_grad(x)
    np.testing.assert_allclose(val, a + b * x, rtol=0, atol=1e-13)
    np.testing.assert_allclose(g, np.full((x.size, 1), b), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 2), (5, 3), (16, 11)])
def test_bilinear_exact_2d(shape):
    rng = np.random.default_rng(1)
    grid = grid2d(shape)
    X, Y = grid.mesh()
    a, b, c, d = 0.4, -1.3, 2.1, 0.8
    f = GridFunction(grid, a + b * X + c * Y + d * X * Y)
    lo, hi = centre_box(grid)
    x = np.concatenate([rng.uniform(lo, hi, size=(300, 2)), grid.points()])
    val, g = f.value_and_grad(x)
    np.testing.assert_allclose(val, a + b * x[:, 0] + c * x[:, 1] + d * x[:, 0] * x[:, 1],
                               rtol=0, atol=1e-12)
    expected = np.column_stack([b + d * x[:, 1], c + d * x[:, 0]])
    np.testing.assert_allclose(g, expected, rtol=0, atol=1e-12)


def test_matches_scipy_1d():
    rng = np.random.default_rng(2)
    grid = Grid((0.0, 1.0), 13)
    values = rng.normal(size=grid.shape)
    f = GridFunction(grid, values)
    lo, hi = centre_box(grid)
    x = rng.uniform(lo[0], hi[0], 500)
    ref = RegularGridInterpolator(grid.centers, values, method="linear")(x[:, None])
    np.testing.assert_allclose(f(x), ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(f(x), np.interp(x, grid.centers[0], values), rtol=1e-13,
                               atol=1e-14)


@pytest.mark.parametrize("shape", [(2, 3), (12, 19)])
def test_matches_scipy_2d(shape):
    rng = np.random.default_rng(3)
    grid = grid2d(shape)
    values = rng.normal(size=grid.shape)
    f = GridFunction(grid, values)
    lo, hi = centre_box(grid)
    x = rng.uniform(lo, hi, size=(1000, 2))
    ref = RegularGridInterpolator(grid.centers, values, method="linear")(x)
    np.testing.assert_allclose(f(x), ref, rtol=1e-12, atol=1e-13)


def _away_from_cell_boundaries(grid, rng, n):
    """Random points of B whose fractional offset in their cell lies in [0.1, 0.9]."""
    cols = []
    for c, d in zip(grid.centers, grid.dx, strict=True):
        i = rng.integers(0, c.size - 1, n)
        cols.append(c[i] + rng.uniform(0.1, 0.9, n) * d)
    return np.column_stack(cols)


@pytest.mark.parametrize("ndim", [1, 2])
def test_grad_matches_finite_differences_inside(ndim):
    rng = np.random.default_rng(4)
    grid = Grid((-2.0, 1.0), 10) if ndim == 1 else grid2d((10, 8))
    values = rng.normal(size=grid.shape)
    f = GridFunction(grid, values)
    x = _away_from_cell_boundaries(grid, rng, 300)
    h = 1e-6 * min(grid.dx)
    fd = np.empty_like(x)
    for k in range(ndim):
        e = np.zeros(ndim)
        e[k] = h
        fd[:, k] = (f(x + e) - f(x - e)) / (2 * h)
    np.testing.assert_allclose(f.grad(x), fd, rtol=1e-6, atol=1e-6)


def test_grad_on_cell_boundaries_is_right_continuous_1d():
    grid = Grid((0.0, 1.0), 6)
    values = np.array([0.0, 1.0, 3.0, 2.0, 2.5, -1.0])
    c = grid.centers[0]
    slopes = np.diff(values) / grid.dx[0]
    f = GridFunction(grid, values)
    val, g = f.value_and_grad(c)
    np.testing.assert_allclose(val, values, rtol=0, atol=1e-14)
    # centre i < N-1: the cell to its right; the last centre: the last cell
    np.testing.assert_allclose(g[:, 0], np.append(slopes, slopes[-1]), rtol=1e-12)


def test_grad_on_cell_boundaries_is_right_continuous_2d():
    grid = grid2d((4, 5))
    rng = np.random.default_rng(5)
    values = rng.normal(size=grid.shape)
    c0, c1 = grid.centers
    f = GridFunction(grid, values)
    # on a vertical grid line x0 = c0[i] (i < N0-1), inside a cell in x1
    for i in range(4):
        cell = min(i, 2)
        x1 = c1[1] + 0.3 * grid.dx[1]
        g = f.grad(np.array([c0[i], x1]))
        s1 = 0.3
        expected0 = ((1 - s1) * (values[cell + 1, 1] - values[cell, 1])
                     + s1 * (values[cell + 1, 2] - values[cell, 2])) / grid.dx[0]
        np.testing.assert_allclose(g[0], expected0, rtol=1e-12)
    # the upper corner of B takes the last cell in both axes
    g = f.grad(np.array([c0[-1], c1[-1]]))
    np.testing.assert_allclose(g, [(values[-1, -1] - values[-2, -1]) / grid.dx[0],
                                   (values[-1, -1] - values[-1, -2]) / grid.dx[1]], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Outside B, 1D


def test_outside_1d_is_clamp_minus_distance():
    rng = np.random.default_rng(6)
    grid = Grid((-1.0, 1.0), 8)
    values = rng.normal(size=grid.shape)
    c = grid.centers[0]
    f = GridFunction(grid, values)
    x = np.concatenate([rng.uniform(-5, c[0], 100), rng.uniform(c[-1], 5, 100), [-1e6, 1e6]])
    xc = np.clip(x, c[0], c[-1])
    val, g = f.value_and_grad(x)
    np.testing.assert_allclose(val, np.interp(xc, c, values) - np.abs(x - xc), rtol=1e-14,
                               atol=1e-13)
    np.testing.assert_array_equal(g[:, 0], np.where(x < c[0], 1.0, -1.0))


@SETTINGS
@given(n=st.integers(2, 30), seed=st.integers(0, 2**32 - 1))
def test_lipschitz_1d(n, seed):
    rng = np.random.default_rng(seed)
    grid = Grid((-1.0, 1.0), n)
    c = grid.centers[0]
    # a 1-Lipschitz sample sequence: increments bounded by the spacing
    values = np.cumsum(np.append(0.0, rng.uniform(-1, 1, n - 1) * grid.dx[0]))
    f = GridFunction(grid, values)
    x = rng.uniform(c[0] - 2, c[-1] + 2, 200)
    y = rng.uniform(c[0] - 2, c[-1] + 2, 200)
    assert np.all(np.abs(f(x) - f(y)) <= np.abs(x - y) * (1 + 1e-12) + 1e-15)


# --------------------------------------------------------------------------------------------
# Outside B, 2D


@pytest.mark.parametrize(("seed", "shape"), [(7, (9, 7)), (8, (2, 5)), (9, (40, 23))])
def test_outside_matches_brute_force_mcshane_lipschitz(seed, shape):
    """For a 1-Lipschitz f, F is exactly the max over the boundary of f(z) - |x - z|."""
    rng = np.random.default_rng(seed)
    grid = grid2d(shape)
    values = lipschitz_values(grid, rng)
    f = GridFunction(grid, values)
    x = outside_points(grid, rng, 200)
    val, g = f.value_and_grad(x)
    ref, _ = brute_force_boundary_max(grid, values, x)
    spacing = max(c[-1] - c[0] for c in grid.centers) / 4000
    assert np.all(val >= ref - 1e-12)  # F is the exact max: no sample beats it
    np.testing.assert_allclose(val, ref, rtol=0, atol=2 * spacing)
    # the gradient is -(x - z*)/|x - z*| for a maximiser z*: the ray from x along it meets dB
    # first at a point z that attains the maximum (the maximiser itself, or a tie when the
    # segment to it crosses B, because f is 1-Lipschitz)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, rtol=1e-12)
    z_hit = first_hit_on_box(grid, x, g)
    hit_val = RegularGridInterpolator(grid.centers, values)(z_hit) - np.linalg.norm(
        x - z_hit, axis=1)
    np.testing.assert_allclose(hit_val, ref, rtol=0, atol=2 * spacing)


@pytest.mark.parametrize(("seed", "shape"), [(10, (6, 8)), (11, (37, 20))])
def test_outside_matches_brute_force_non_lipschitz(seed, shape):
    """For arbitrary samples, F = min(max_{dB}[f(z) - |x - z|], f(Px) - (sqrt(D^2+d^2) - D))."""
    rng = np.random.default_rng(seed)
    grid = grid2d(shape)
    values = 3.0 * rng.normal(size=grid.shape)
    f = GridFunction(grid, values)
    x = outside_points(grid, rng, 100)
    lo, hi = centre_box(grid)
    px = np.clip(x, lo, hi)
    d = np.linalg.norm(x - px, axis=1)
    diam = np.linalg.norm(hi - lo)
    cap = RegularGridInterpolator(grid.centers, values)(px) - (np.hypot(diam, d) - diam)
    mcshane, _ = brute_force_boundary_max(grid, values, x, per_edge=20001)
    spacing = max(hi - lo) / 20000
    ref = np.minimum(mcshane, cap)
    val = f(x)
    assert np.all(val >= ref - 1e-12)
    np.testing.assert_allclose(val, ref, rtol=0, atol=4 * spacing * (1 + np.abs(values).max()))


@SETTINGS
@given(shape=st.tuples(st.integers(2, 12), st.integers(2, 12)),
       seed=st.integers(0, 2**32 - 1))
def test_lipschitz_2d_outside_and_across(shape, seed):
    rng = np.random.default_rng(seed)
    grid = grid2d(shape)
    f = GridFunction(grid, lipschitz_values(grid, rng))
    lo, hi = centre_box(grid)
    # pairs outside/outside, outside/inside (across dB) and near the boundary
    x = outside_points(grid, rng, 150)
    y_out = outside_points(grid, rng, 150)
    y_in = rng.uniform(lo, hi, size=(150, 2))
    b, nrm = boundary_points(grid, rng, 150)
    near_out = b + rng.uniform(0, 0.2, (150, 1)) * nrm
    near_in = b - rng.uniform(0, 0.2, (150, 1)) * nrm
    near_in = np.clip(near_in, lo, hi)
    for p, q in ((x, y_out), (x, y_in), (near_out, near_in), (near_out, b)):
        lhs = np.abs(f(p) - f(q))
        rhs = np.linalg.norm(p - q, axis=1) * (1 + 1e-12) + 1e-14
        assert np.all(lhs <= rhs)


@pytest.mark.parametrize("lipschitz", [True, False])
def test_continuity_across_boundary(lipschitz):
    rng = np.random.default_rng(12)
    grid = grid2d((10, 6))
    values = lipschitz_values(grid, rng) if lipschitz else 5.0 * rng.normal(size=grid.shape)
    f = GridFunction(grid, values)
    b, nrm = boundary_points(grid, rng, 400)
    on = RegularGridInterpolator(grid.centers, values)(b)
    slope = 1.0 if lipschitz else np.abs(np.diff(values, axis=0)).max() / grid.dx[0] + np.abs(
        np.diff(values, axis=1)).max() / grid.dx[1] + 1.0
    for eps in (1e-3, 1e-6, 1e-9):
        out = f(b + eps * nrm)
        assert np.all(np.abs(out - on) <= 2 * slope * eps + 1e-12)
    np.testing.assert_allclose(f(b), on, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [13, 14])
def test_outside_gradient_norm_and_direction(seed):
    rng = np.random.default_rng(seed)
    grid = grid2d((11, 9))
    lo, hi = centre_box(grid)
    x = np.concatenate([outside_points(grid, rng, 2000, margin=3.0),
                        outside_points(grid, rng, 500, margin=1e-6)])
    px = np.clip(x, lo, hi)
    # 1-Lipschitz f: gradient norm <= 1
    g = GridFunction(grid, lipschitz_values(grid, rng)).grad(x)
    assert np.all(np.linalg.norm(g, axis=1) <= 1 + 1e-12)
    assert np.all(np.einsum("ij,ij->i", g, x - px) < 0)
    # arbitrary f: the gradient still points back into B
    g = GridFunction(grid, 4.0 * rng.normal(size=grid.shape)).grad(x)
    assert np.all(np.einsum("ij,ij->i", g, x - px) < 0)


@pytest.mark.parametrize("lipschitz", [True, False])
def test_outside_gradient_matches_finite_differences(lipschitz):
    rng = np.random.default_rng(15)
    grid = grid2d((8, 8))
    values = lipschitz_values(grid, rng) if lipschitz else 2.0 * rng.normal(size=grid.shape)
    f = GridFunction(grid, values)
    x = outside_points(grid, rng, 300, margin=3.0)
    h = 1e-6
    fd = np.column_stack([(f(x + e) - f(x - e)) / (2 * h) for e in np.eye(2) * h])
    err = np.linalg.norm(f.grad(x) - fd, axis=1)
    # F is smooth away from the measure-zero set where the active branch or maximiser switches
    assert np.mean(err < 1e-5) > 0.97


def test_linear_function_outside_is_mcshane():
    """f = g y with |g| < 1, x at distance h beyond the middle of the right edge: by hand,
    max over that edge of g t - sqrt((t - y)^2 + h^2) is at t - y = h g / sqrt(1 - g^2), and
    the other edges are farther away and not higher."""
    grid = grid2d((21, 21), bounds=((0.0, 1.0), (0.0, 1.0)))
    lo, hi = centre_box(grid)
    _, Y = grid.mesh()
    gy = 0.6
    f = GridFunction(grid, gy * Y)
    mid = 0.5 * (lo[1] + hi[1])
    h = 0.2
    x = np.array([[hi[0] + h, mid]])
    s = h * gy / np.sqrt(1 - gy**2)  # the stationary point of gy t - sqrt(t^2 + h^2)
    expected = gy * (mid + s) - np.hypot(s, h)
    np.testing.assert_allclose(f(x), [expected], rtol=1e-13)
    np.testing.assert_allclose(f.grad(x)[0], -np.array([h, -s]) / np.hypot(h, s), rtol=1e-13)


# --------------------------------------------------------------------------------------------
# Shapes, copies and bad input


def test_point_shapes():
    g1 = GridFunction(Grid((0.0, 1.0), 5), np.arange(5.0))
    assert g1(0.3).shape == ()
    assert g1.grad(0.3).shape == (1,)
    assert g1(np.zeros(4)).shape == (4,)
    assert g1.grad(np.zeros(4)).shape == (4, 1)
    assert g1.grad(np.zeros((4, 1))).shape == (4, 1)
    assert g1.grad(np.zeros(0)).shape == (0, 1)
    g2 = GridFunction(grid2d((4, 5)), np.ones((4, 5)))
    v, g = g2.value_and_grad(np.zeros(2))
    assert v.shape == ()
    assert g.shape == (2,)
    v, g = g2.value_and_grad(np.zeros((3, 2)))
    assert v.shape == (3,)
    assert g.shape == (3, 2)
    assert g2.ndim == 2
    assert "GridFunction" in repr(g2)


def test_values_is_a_read_only_float64_copy():
    grid = grid2d((4, 5))
    values = np.arange(20).reshape(4, 5)
    f = GridFunction(grid, values)
    assert f.values.dtype == np.float64
    assert f.grid == grid
    values[0, 0] = 100
    assert f.values[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        f.values[0, 0] = 1.0


def test_bad_input():
    grid = grid2d((4, 5))
    with pytest.raises(ValueError, match=r"values.*shape \(4, 5\)"):
        GridFunction(grid, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="values"):
        GridFunction(grid, np.full((4, 5), np.nan))
    with pytest.raises(ValueError, match="ndim=3"):
        GridFunction(Grid([(0.0, 1.0)] * 3, 3), np.zeros((3, 3, 3)))
    with pytest.raises(TypeError, match="grid"):
        GridFunction(np.zeros(3), np.zeros(3))
    f = GridFunction(grid, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="x"):
        f(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="x"):
        f.grad(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        f(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        f(np.zeros(3))
    f1 = GridFunction(Grid((0.0, 1.0), 4), np.zeros(4))
    with pytest.raises(ValueError, match="x must be"):
        f1(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="x"):
        f1("abc")
