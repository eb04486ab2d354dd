"""The level-rescaled critic of the certificate: ``g = phi(f)``, a nondecreasing piecewise-linear
map of the values whose slope on each band of values is at most ``1 / |(Df)_i|`` for the
violated cells spanning it. ``g`` must be feasible, keep the order of the values, leave a
feasible critic as it is, and lose less than the uniform rescaling where the violation sits at
a few levels.
"""

from __future__ import annotations

import numpy as np
import pytest
from critic_fields import feasible_field, max_norm, noisy_field

from otgrid.critic import backend_numpy
from otgrid.critic.backends import make_kernels
from otgrid.kernels import critic_numba as k


@pytest.mark.parametrize("iso", [True, False])
@pytest.mark.parametrize("shape, h", [((2, 2), (1.0, 1.0)), ((9, 31), (3.0, 0.5)),
                                      ((64, 40), (20.0, 20.0))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_level_rescaled_critic_is_feasible_and_keeps_the_order(iso, shape, h, seed):
    f = noisy_field(shape, h, seed)
    g = np.empty((1, *shape))
    k.level_rescale_2d_serial(f[None], g, h[0], h[1], iso, 256)
    g = g[0]
    assert max_norm(g, h, iso) <= 1 + 1e-12
    order = np.argsort(f, axis=None, kind="stable")
    assert np.all(np.diff(g.ravel()[order]) >= -1e-12 * max(1.0, np.abs(g).max()))


@pytest.mark.parametrize("iso", [True, False])
def test_a_feasible_critic_is_left_as_it_is(iso):
    f, h = feasible_field()
    assert max_norm(f, h, iso) <= 1
    g = np.empty((1, *f.shape))
    k.level_rescale_2d(f[None], g, h[0], h[1], iso, 1024)
    np.testing.assert_allclose(g[0], f, rtol=0, atol=1e-12)


def test_violations_at_a_few_levels_cost_less_than_the_uniform_rescaling():
    """f(x, y) = x with slope 1.2 on the band 0 < x < 0.1 only: the map restores slope 1 there
    and moves nothing else; <c, g> for c = delta(1) - delta(-1) (W = 2.0 with the band
    shortened, exactly) against <c, f> / 1.2 for the uniform rescaling."""
    n = 201
    x = np.linspace(-1, 1, n)
    d = x[1] - x[0]
    slope = np.where((x[:-1] >= 0) & (x[:-1] < 0.1 - 1e-12), 1.2, 1.0)
    prof = np.concatenate([[0.0], np.cumsum(slope * d)])
    f = np.repeat(prof[:, None], 7, axis=1)
    c = np.zeros_like(f)
    c[-1, 3], c[0, 3] = 1.0, -1.0
    g = np.empty((1, *f.shape))
    k.level_rescale_2d_serial(f[None], g, 1 / d, 1 / d, True, 4096)
    h = (1 / d, 1 / d)
    assert max_norm(g[0], h, True) <= 1 + 1e-12
    level = float((c * g[0]).sum())
    uniform = float((c * f).sum()) / max_norm(f, h, True)
    assert level == pytest.approx(2.0, abs=2e-3)  # the exact W of the two atoms: 2
    assert uniform < 1.9 < level


def test_the_parallel_kernel_and_its_twin_agree_on_a_batch():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(3, 17, 23))
    a, b = np.empty_like(f), np.empty_like(f)
    k.level_rescale_2d(f, a, 2.0, 3.0, True, 300)
    for j in range(3):
        k.level_rescale_2d_serial(f[j:j + 1], b[j:j + 1], 2.0, 3.0, True, 300)
    np.testing.assert_array_equal(a, b)


def test_the_grid_kernels_offer_it_in_2d_only(monkeypatch):
    """Off by default since the ray critics (never the best candidate since), on with bins."""
    assert make_kernels("numba", (8, 8), (0.5, 0.5), "euclidean",
                        np.float64).level_rescale(np.zeros((1, 8, 8))) is None
    monkeypatch.setattr(backend_numpy, "LEVEL_BINS", 1024)
    kern2 = make_kernels("numba", (8, 8), (0.5, 0.5), "euclidean", np.float64)
    assert kern2.level_rescale(np.zeros((1, 8, 8))).shape == (1, 8, 8)
    kern1 = make_kernels("numba", (8,), (0.5,), "euclidean", np.float64)
    assert kern1.level_rescale(np.zeros((1, 8))) is None
