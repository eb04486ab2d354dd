"""TorchGenerator: the torch.nn.Module adapter for SCO (optional dependency torch)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="TorchGenerator needs the optional extra torch")

from otgrid.errors import ConvergenceWarning  # noqa: E402
from otgrid.grid import Grid, Normal  # noqa: E402
from otgrid.sco import fit  # noqa: E402
from otgrid.sco.generators import ParametricGenerator  # noqa: E402
from otgrid.sco.generators_torch import TorchGenerator, mlp_generator  # noqa: E402


def _mlp_numpy(params, z, widths, activation="tanh"):
    """The forward pass of Linear-act-...-Linear written with NumPy only."""
    out, pos = z, 0
    for k, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        W = params[pos:pos + n_in * n_out].reshape(n_out, n_in)
        pos += n_in * n_out
        b = params[pos:pos + n_out]
        pos += n_out
        out = out @ W.T + b
        if k < len(widths) - 2:
            out = np.tanh(out) if activation == "tanh" else np.maximum(out, 0.0)
    return out


def test_sample_matches_an_independent_numpy_forward_pass():
    gen = mlp_generator(3, 2, hidden=(5, 4), activation="tanh", seed=1)
    z = gen.sample_latent(7, rng=0)
    np.testing.assert_allclose(gen.sample(z), _mlp_numpy(gen.params, z, [3, 5, 4, 2]),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_vjp_matches_central_finite_differences(activation):
    gen = mlp_generator(2, 2, hidden=(6, 5), activation=activation, seed=3)
    rng = np.random.default_rng(0)
    z = gen.sample_latent(9, rng)
    v = rng.normal(size=(9, 2))
    theta = gen.params
    got = gen.vjp(z, v)
    h = 1e-6
    want = np.empty(theta.size)
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = h
        fp = np.sum(v * _mlp_numpy(theta + e, z, [2, 6, 5, 2], activation))
        fm = np.sum(v * _mlp_numpy(theta - e, z, [2, 6, 5, 2], activation))
        want[i] = (fp - fm) / (2 * h)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_params_round_trip_and_write_through_to_the_module():
    gen = TorchGenerator(torch.nn.Linear(2, 3), latent_dim=2)
    assert (gen.ndim, gen.latent_dim, gen.size) == (3, 2, 9)
    theta = np.arange(9.0)
    gen.params = theta
    np.testing.assert_array_equal(gen.params, theta)
    np.testing.assert_array_equal(gen.module.weight.detach().numpy(), theta[:6].reshape(3, 2))
    np.testing.assert_array_equal(gen.module.bias.detach().numpy(), theta[6:])
    out = gen.params
    out[0] = 99.0                                   # reading returns a copy
    assert gen.params[0] == 0.0
    z = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(gen.sample(z), z @ theta[:6].reshape(3, 2).T + theta[6:])
    assert isinstance(gen, ParametricGenerator)
    assert gen.params.dtype == np.float64


def test_mlp_generator_is_the_papers_shape_and_seeded():
    g1, g2 = mlp_generator(seed=5), mlp_generator(seed=5)
    assert g1.size == (2 * 128 + 128) + (128 * 128 + 128) + (128 * 2 + 2)
    np.testing.assert_array_equal(g1.params, g2.params)
    assert not np.array_equal(g1.params, mlp_generator(seed=6).params)
    relus = [m for m in g1.module if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 2
    z = g1.sample_latent(4, rng=0)
    assert g1.sample(z).shape == (4, 2) and g1.vjp(z, np.ones((4, 2))).shape == (g1.size,)


def test_bad_input_is_rejected_clearly():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        TorchGenerator(lambda z: z, latent_dim=1)
    frozen = torch.nn.Linear(1, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        TorchGenerator(frozen, latent_dim=1)
    gen = TorchGenerator(torch.nn.Linear(2, 2), latent_dim=2)
    with pytest.raises(ValueError, match="must have 6 entries"):
        gen.params = np.zeros(5)
    with pytest.raises(ValueError, match="finite"):
        gen.params = [np.nan] * 6
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        gen.sample(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="grad_x must have shape"):
        gen.vjp(np.zeros((3, 2)), np.zeros((2, 2)))
    wrong = TorchGenerator(torch.nn.Linear(2, 2), latent_dim=2, ndim=3)
    with pytest.raises(ValueError, match="expected"):
        wrong.sample(np.zeros((1, 2)))


def test_a_torch_affine_generator_trains_in_fit_with_sampled_masses():
    # g(z) = w z + b: the pushforward of N(0, 1) is N(b, w^2); the target is N(1, 0.5^2).
    gen = TorchGenerator(torch.nn.Linear(1, 1), latent_dim=1)
    gen.params = [0.1, -1.0]
    grid = Grid((-4, 6), 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit(Normal(1.0, 0.25), gen, grid, steps=300, lr=0.02, optimizer="adam",
                  masses="samples", n_mass_samples=20_000, rng=0)
    w, b = res.params
    # histogram noise of 20 000 samples and the grid limit the accuracy to a few dx
    assert abs(abs(w) - 0.5) < 4 * grid.dx[0] and abs(b - 1.0) < 4 * grid.dx[0]
    assert res.upper[-1] < 0.1 * res.upper[0]
    np.testing.assert_array_equal(gen.params, res.params)


def test_a_diverging_torch_generator_ends_with_the_last_good_state():
    gen = mlp_generator(1, 1, hidden=(8,), seed=0)
    start = gen.params
    grid = Grid((-3, 3), 60)
    with pytest.warns(ConvergenceWarning, match="Stopped early"):
        res = fit(Normal(2.0, 0.04), gen, grid, steps=20, lr=1e6, masses="samples",
                  n_mass_samples=2000, rng=0)
    assert res.status in ("non_finite", "diverged")
    assert np.all(np.isfinite(res.params)) and np.all(np.isfinite(res.upper))
    np.testing.assert_array_equal(gen.params, res.params)
    assert res.steps < 20
    assert res.steps == 0 or not np.array_equal(res.params, start)
