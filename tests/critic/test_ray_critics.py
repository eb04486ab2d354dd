"""The ray critics of the certificate: the greatest function below ``f`` and the least above
it whose change along each grid edge stays within a length set by a box inside its cell's
constraint. Both must be feasible, leave a feasible critic as it is, restore the exact critic
where a band of cells is too steep, and lose less than the level map where the violations sit
at different levels on different rays.
"""

from __future__ import annotations

import numpy as np
import pytest
from critic_fields import feasible_field, max_norm, noisy_field

from otgrid.critic.backends import make_kernels
from otgrid.kernels import critic_numba as k


def _ray(f: np.ndarray, h: tuple[float, float], iso: bool, sweeps: int = 64):
    lo, hi, ex, ey = (np.empty((1, *f.shape)) for _ in range(4))
    k.ray_critics_2d_serial(f[None], lo, hi, h[0], h[1], iso, sweeps, ex, ey)
    return lo[0], hi[0]


@pytest.mark.parametrize("iso", [True, False])
@pytest.mark.parametrize("shape, h", [((2, 2), (1.0, 1.0)), ((1, 7), (1.0, 2.0)),
                                      ((9, 31), (3.0, 0.5)), ((64, 40), (20.0, 20.0))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_ray_critics_are_feasible_and_on_either_side(iso, shape, h, seed):
    f = noisy_field(shape, h, seed)
    lo, hi = _ray(f, h, iso, sweeps=10_000)
    scale = max(1.0, np.abs(f).max())
    for g in (lo, hi):
        assert max_norm(g, h, iso) <= 1 + 1e-12 * scale * max(h)
    assert np.all(lo <= f) and np.all(hi >= f)


def _convolution_by_dijkstra(f: np.ndarray, ex: np.ndarray, ey: np.ndarray) -> np.ndarray:
    """``min_y f(y) + d(x, y)`` for the graph distance ``d`` of the grid whose edge from
    ``(i, j)`` to ``(i + 1, j)`` is ``ex[i, j]`` long and to ``(i, j + 1)`` ``ey[i, j]``, by
    SciPy's Dijkstra from a source joined to every cell by an edge of length ``f - min f``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    nx, ny = f.shape
    idx = np.arange(nx * ny).reshape(nx, ny)
    src = nx * ny
    rows = [idx[:-1, :].ravel(), idx[:, :-1].ravel(), np.full(nx * ny, src)]
    cols = [idx[1:, :].ravel(), idx[:, 1:].ravel(), idx.ravel()]
    # (a zero length would read as no edge: the source's edge to the lowest cell gets a tiny one)
    w = [ex[:-1, :].ravel(), ey[:, :-1].ravel(), np.maximum(f - f.min(), 1e-300).ravel()]
    graph = coo_matrix((np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(src + 1, src + 1)).tocsr()
    dist = dijkstra(graph, directed=False, indices=src)
    return dist[:-1].reshape(nx, ny) + f.min()


@pytest.mark.parametrize("iso", [True, False])
@pytest.mark.parametrize("shape, h", [((9, 31), (3.0, 0.5)), ((40, 33), (20.0, 20.0)),
                                      ((1, 12), (1.0, 2.0))])
def test_the_sweeps_reach_the_convolution_with_the_edge_lengths(iso, shape, h):
    """Independently of the sweeps' order: the greatest function below ``f`` (least above)
    whose changes respect the kernel's own edge lengths is the inf- (sup-) convolution of
    ``f`` with their graph distance, here by Dijkstra's algorithm."""
    f = noisy_field(shape, h, 3)
    lo, hi, ex, ey = (np.empty((1, *shape)) for _ in range(4))
    k.ray_critics_2d_serial(f[None], lo, hi, h[0], h[1], iso, 64, ex, ey)
    scale = np.abs(f).max()
    assert np.any(lo[0] < f - 1e-3 * scale)  # the violations made it move
    want_lo = _convolution_by_dijkstra(f, ex[0], ey[0])
    want_hi = -_convolution_by_dijkstra(-f, ex[0], ey[0])
    np.testing.assert_allclose(lo[0], want_lo, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(hi[0], want_hi, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("iso", [True, False])
def test_a_feasible_critic_is_left_as_it_is(iso):
    f, h = feasible_field()
    assert max_norm(f, h, iso) <= 1
    lo, hi = _ray(f, h, iso)
    np.testing.assert_array_equal(lo, f)
    np.testing.assert_array_equal(hi, f)


def test_a_steep_band_is_cut_back_to_the_exact_critic():
    """f(x, y) = x with slope 1.2 on the band 0 < x < 0.1: both ray critics are x plus a
    constant, the exact critic of c = delta(1) - delta(-1) on every row (W = 2 exactly)."""
    n = 201
    x = np.linspace(-1, 1, n)
    d = x[1] - x[0]
    slope = np.where((x[:-1] >= 0) & (x[:-1] < 0.1 - 1e-12), 1.2, 1.0)
    f = np.repeat(np.concatenate([[0.0], np.cumsum(slope * d)])[:, None], 7, axis=1)
    c = np.zeros_like(f)
    c[-1, 3], c[0, 3] = 1.0, -1.0
    for g in _ray(f, (1 / d, 1 / d), True):
        assert max_norm(g, (1 / d, 1 / d), True) <= 1 + 1e-12
        np.testing.assert_allclose(g - g[0, 0], x[:, None] + 1 + 0 * g, rtol=0, atol=1e-12)
        assert float((c * g).sum()) == pytest.approx(2.0, abs=1e-12)


def test_violations_at_different_levels_cost_less_than_the_level_map():
    """Rays tilted against the grid: f = 0.8 p(x) + 0.6 y, with p' = 1 except on the band
    0 < x < 0.1 where p' = 1.1 (|Df| = 1.065 there, 1 elsewhere). The band covers different
    values of f on different rows, so the level map cuts the slope over all of them on every
    row; the ray critics only on the band. Judged on c = delta(1, 0) - delta(-1, 0): <c, f> is
    1.608; the feasible critic f - 0.08 min(max(x, 0), 0.1) keeps 1.600, the uniform
    rescaling 1.510. The box scales both differences of a cell, so psi also grows along the
    band (up the rows): the ray critics keep 1.566, the level map 1.530."""
    n = 161
    x = np.linspace(-1, 1, n)
    d = x[1] - x[0]
    slope = np.where((x[:-1] >= 0) & (x[:-1] < 0.1 - 1e-12), 1.1, 1.0)
    p = np.concatenate([[0.0], np.cumsum(slope * d)])
    f = 0.8 * p[:, None] + 0.6 * x[None, :]
    h = (1 / d, 1 / d)
    c = np.zeros_like(f)
    c[-1, n // 2], c[0, n // 2] = 1.0, -1.0
    level = np.empty((1, *f.shape))
    k.level_rescale_2d_serial(f[None], level, h[0], h[1], True, 4096)
    value = {"level": float((c * level[0]).sum()),
             "uniform": float((c * f).sum()) / max_norm(f, h, True)}
    for name, g in zip(("lo", "hi"), _ray(f, h, True), strict=True):
        assert max_norm(g, h, True) <= 1 + 1e-12
        value[name] = float((c * g).sum())
    assert value["uniform"] == pytest.approx(1.608 / np.hypot(0.88, 0.6), abs=1e-9)
    assert value["uniform"] < value["level"] < 1.54
    assert 1.56 < value["lo"] <= 1.600 and 1.56 < value["hi"] <= 1.600


def test_the_parallel_kernel_and_its_twin_agree_on_a_batch():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(3, 17, 23))
    a, b = np.empty_like(f), np.empty_like(f)
    a2, b2 = np.empty_like(f), np.empty_like(f)
    ex, ey = np.empty_like(f), np.empty_like(f)
    k.ray_critics_2d(f, a, a2, 2.0, 3.0, True, 64, ex, ey)
    for j in range(3):
        k.ray_critics_2d_serial(f[j:j + 1], b[j:j + 1], b2[j:j + 1], 2.0, 3.0, True, 64,
                                ex[j:j + 1], ey[j:j + 1])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a2, b2)


def test_the_grid_kernels_offer_them_in_2d_only():
    kern2 = make_kernels("numba", (8, 8), (0.5, 0.5), "euclidean", np.float64)
    assert [g.shape for g in kern2.ray_critics(np.zeros((1, 8, 8)))] == [(1, 8, 8)] * 2
    kern1 = make_kernels("numba", (8,), (0.5,), "euclidean", np.float64)
    assert kern1.ray_critics(np.zeros((1, 8))) == []
