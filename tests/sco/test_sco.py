"""SCO (Pinetz et al., Alg. 2): convergence from bad starts, gradient correctness, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from references import socp_2d_euclidean_cvxpy, w1_1d_closed_form
from scipy.special import ndtri
from scipy.stats import multivariate_normal, norm, qmc

from otgrid.cli.main import main
from otgrid.critic import solve_critic
from otgrid.errors import ConvergenceWarning, OutsideMassError, OutsideMassWarning
from otgrid.grid import Grid, Normal
from otgrid.sco import SCOResult, SCOStep, WassersteinProx, fit, sco_gradient
from otgrid.sco.generators import Affine, LocationScale

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# 1D acceptance problem: target N(1, 0.5^2); dx = 12 / 256 = 0.047.
GRID_1D = Grid((-5.0, 7.0), 256)
TARGET_1D = Normal(1.0, 0.25)
TRUE_1D = np.array([1.0, 0.5])
# 2D acceptance problem: target N((0.5, -0.3), diag(0.6^2, 0.4^2)); dx = 8 / 48 = 0.167.
GRID_2D = Grid([(-4.0, 4.0), (-4.0, 4.0)], 48)
TARGET_2D = Normal([0.5, -0.3], [0.36, 0.16])
TRUE_2D = np.array([0.5, -0.3, 0.6, 0.4])


def folded_normal_masses(edges: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Cell masses by SciPy CDF differences, the tails folded into the boundary cells."""
    e = np.array(edges, dtype=np.float64)
    e[0], e[-1] = -np.inf, np.inf
    return np.diff(norm.cdf(e, loc=mean, scale=abs(std)))


def quiet_fit(*args, **kwargs) -> SCOResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutsideMassWarning)
        return fit(*args, **kwargs)


class Shift:
    """A duck-typed generator g(z) = z + theta with no exact masses (tests the protocol)."""

    def __init__(self, theta):
        self._theta = np.atleast_1d(np.asarray(theta, dtype=np.float64)).copy()
        self.ndim = self.latent_dim = self._theta.size

    @property
    def params(self):
        return self._theta.copy()

    @params.setter
    def params(self, value):
        self._theta = np.asarray(value, dtype=np.float64).ravel().copy()

    def sample_latent(self, n, rng=None):
        return np.random.default_rng(rng).standard_normal((n, self.ndim))

    def sample(self, z):
        return np.asarray(z) + self._theta

    def vjp(self, z, grad_x):
        return np.asarray(grad_x).sum(axis=0)


# --------------------------------------------------------------------------- acceptance
@pytest.mark.parametrize("start", [
    (1.0, 0.02),    # sigma 25 times too small
    (1.0, 2.5),     # sigma 5 times too large (mass outside the grid at the start)
    (-1.5, 0.5),    # mu off by 5 sigma
    (3.0, 0.1),     # mu off by 4 sigma and sigma 5 times too small
])
def test_1d_gaussian_fit_reaches_grid_accuracy(start):
    dx = GRID_1D.dx[0]
    res = quiet_fit(TARGET_1D, LocationScale(*start), GRID_1D, steps=1000, rng=0,
                    true_params=TRUE_1D)  # the paper's defaults: lr 5e-3, batch 128, SGD
    assert res.steps == 1000 and res.status == "steps"
    err = res.param_error
    assert np.any(err < dx)
    assert np.all(err[-100:] < dx), err[-100:].max()
    # W goes to ~0: from O(1) to a few 1e-3 (the SGD noise floor, about lr / 2)
    assert res.upper[0] > 0.3
    assert res.upper[-1] < 0.01 * res.upper[0] and res.upper[-1] < dx / 4
    # the certified bounds hold for the closed-form W of the same masses (independent)
    mu = folded_normal_masses(GRID_1D.edges[0], 1.0, 0.5)
    for k in (0, 10, 500, 1000):
        loc, scale = res.trajectory[k]
        ref = w1_1d_closed_form(mu, folded_normal_masses(GRID_1D.edges[0], loc, scale), dx)
        assert res.lower[k] <= ref * (1 + 1e-9) + 1e-15
        assert ref <= res.upper[k] * (1 + 1e-9) + 1e-15


@pytest.mark.parametrize("start", [
    ([0.5, -0.3], [0.05, 0.05]),   # sigma far too small
    ([0.5, -0.3], [1.6, 1.2]),     # sigma far too large
    ([-1.0, 1.0], [0.6, 0.4]),     # mu off by 2.5 and 3.25 sigma
])
def test_2d_gaussian_fit_reaches_grid_accuracy(start):
    dx = GRID_2D.dx[0]
    res = quiet_fit(TARGET_2D, LocationScale(*start), GRID_2D, steps=1000, rng=0,
                    true_params=TRUE_2D, stop_param_tol=dx / 4)
    assert res.converged and res.status == "param_tol"
    assert res.steps <= 1000
    assert res.param_error[-1] <= dx / 4
    assert np.all(res.lower <= res.upper)
    assert res.upper[-1] < 0.1 * res.upper[0]


# --------------------------------------------------------------------------- gradient
def grid_tolerance(pdf, theta: np.ndarray, dx: tuple[float, ...], axes: list[np.ndarray],
                   h: float = 1e-5) -> np.ndarray:
    r"""Derived bound on |SCO gradient - dW_grid/dtheta| for the exact critic, per parameter.

    ``W_grid(theta) = sum_i f_i nu_i(theta)`` differentiates (envelope theorem) to
    ``-sum_i f_i d nu_i / d theta``, the SCO gradient to ``-d/dtheta int f_lin p_theta``. Their
    difference is ``d/dtheta sum_i f_i (int phi_i p - int 1_cell_i p)``: the hat function
    ``phi_i`` and the cell indicator have equal mass and first moment and second moments
    ``dx^2/6`` and ``dx^2/12`` per axis, so to leading order the difference is
    ``sum_k dx_k^2/24 int f d_k^2 d_theta p = -sum_k dx_k^2/24 int d_k f d_k d_theta p``, and
    ``|d_k f| <= 1`` gives ``sum_k dx_k^2/24 int |d_k d_theta p|`` (next term O(dx^4)).
    The integrals are computed here by finite differences of SciPy's density on a fine grid.
    """
    out = np.empty(theta.size)
    mesh = np.meshgrid(*axes, indexing="ij")
    cell = np.prod([a[1] - a[0] for a in axes])
    for j in range(theta.size):
        e = np.zeros(theta.size)
        e[j] = h
        dp = (pdf(theta + e, mesh) - pdf(theta - e, mesh)) / (2 * h)
        grads = np.gradient(dp, *axes) if len(axes) > 1 else [np.gradient(dp, axes[0])]
        out[j] = sum(d ** 2 / 24 * np.abs(g).sum() * cell for d, g in zip(dx, grads,
                                                                          strict=True))
    return out


def pdf_1d(theta, mesh):
    loc, scale = theta
    return norm.pdf(mesh[0], loc, abs(scale))


@pytest.mark.parametrize("kind", ["location-scale", "affine"])
def test_sco_gradient_is_the_derivative_of_certified_w_1d(kind):
    lo, hi, n = -6.0, 6.0, 240
    grid = Grid((lo, hi), n)
    dx = grid.dx[0]
    edges = grid.edges[0]
    mu = folded_normal_masses(edges, 0.3, 0.8)
    theta = np.array([-0.4, 1.3])  # (loc, scale)

    def w_ref(t):  # closed form on exact (SciPy) masses: independent of the solver
        return dx * np.abs(np.cumsum(mu - folded_normal_masses(edges, *t))[:-1]).sum()

    def signs(t):
        return np.sign(np.cumsum(mu - folded_normal_masses(edges, *t))[:-1])

    h = 1e-6
    fd = np.empty(2)
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        assert np.array_equal(signs(theta + e), signs(theta - e))  # no kink within the step
        fd[j] = (w_ref(theta + e) - w_ref(theta - e)) / (2 * h)
    gen = LocationScale(*theta) if kind == "location-scale" else Affine([[theta[1]]], [theta[0]])
    res = solve_critic(mu, folded_normal_masses(edges, *theta), grid, tol=1e-10)
    N = 1_000_000  # midpoint rule in probability: E_z exactly up to O(#kinks / N)
    z = ndtri((np.arange(N) + 0.5) / N)[:, None]
    g = sco_gradient(res, gen, z)
    if kind == "affine":
        g = g[::-1]  # Affine orders its parameters [A, b] = [scale, loc]
    tol = grid_tolerance(pdf_1d, theta, (dx,), [np.linspace(lo, hi, 100_001)])
    assert np.all(np.abs(g - fd) <= 1.1 * tol + 2e-6), (g, fd, tol)
    assert np.all(np.abs(fd) > 20 * tol)  # the tolerance is far below the gradient itself


def test_sco_gradient_is_the_derivative_of_certified_w_2d_affine():
    L, n = 3.0, 32
    grid = Grid([(-L, L), (-L, L)], n)
    dx = grid.dx
    A0 = np.array([[0.5, 0.0], [0.2, 0.4]])
    b0 = np.array([0.2, -0.1])
    theta = np.concatenate([A0.ravel(), b0])
    cov_mu = np.array([[0.8, 0.25], [0.25, 0.6]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutsideMassWarning)
        mu = grid.discretize(Normal([-0.2, 0.1], cov_mu), outside="fold")

    def nu_of(t):
        return Affine(t[:4].reshape(2, 2), t[4:]).cell_masses(grid, outside_tol=1.0)

    def w_ref(t):  # cvxpy + Clarabel on the same masses: independent of otgrid's solver
        r = socp_2d_euclidean_cvxpy(mu, nu_of(t), dx, tol=1e-10)
        assert r.status == "optimal"
        return r.value

    h = 1e-4
    fd = np.array([(w_ref(theta + h * e) - w_ref(theta - h * e)) / (2 * h) for e in np.eye(6)])
    res = solve_critic(mu, nu_of(theta), grid, tol=1e-5, max_iter=50_000)
    assert res.converged
    z = ndtri(qmc.Sobol(2, scramble=True, seed=0).random_base2(20))  # quasi-Monte Carlo
    g = sco_gradient(res, Affine(A0, b0), z)

    def pdf(t, mesh):
        A = t[:4].reshape(2, 2)
        return multivariate_normal(t[4:], A @ A.T).pdf(np.stack(mesh, axis=-1))

    axis = np.linspace(-L, L, 601)
    tol = grid_tolerance(pdf, theta, dx, [axis, axis])
    # allowance 1e-3: the critic's relative gap 1e-5 and the quasi-Monte Carlo error
    assert np.all(np.abs(g - fd) <= tol + 1e-3), (g, fd, tol)
    assert np.linalg.norm(fd) > 10 * tol.max()


def test_sco_gradient_sign_and_input_checks():
    grid = Grid((-6.0, 6.0), 240)
    gen = LocationScale(-1.0, 1.0)
    nu = gen.cell_masses(grid, outside_tol=1.0)
    res = solve_critic(grid.discretize(Normal(0.0, 1.0), outside_tol=1.0), nu, grid)
    g = sco_gradient(res, gen, gen.sample_latent(20_000, rng=0))
    np.testing.assert_allclose(g[0], -1.0, atol=0.02)  # W = |loc| for a shift: dW/dloc = -1
    with pytest.raises(TypeError, match="critic must be a CriticResult"):
        sco_gradient(np.zeros(240), gen, np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"z must have shape \(n, latent_dim\)"):
        sco_gradient(res, gen, np.zeros((0, 1)))


# --------------------------------------------------------------------------- options
def test_adam_converges_too():
    res = quiet_fit(TARGET_1D, LocationScale(-1.0, 2.0), GRID_1D, steps=1000, rng=1,
                    optimizer="adam", true_params=TRUE_1D, stop_param_tol=GRID_1D.dx[0] / 4)
    assert res.converged and res.optimizer == "adam"


def test_sample_masses_and_a_duck_typed_generator():
    res = quiet_fit(Normal(1.0, 1.0), Shift(-1.0), GRID_1D, steps=600, rng=2,
                    masses="samples", n_mass_samples=20_000, true_params=[1.0])
    assert res.masses == "samples"
    assert res.param_error[-1] < GRID_1D.dx[0]
    assert res.param_names == ("theta[0]",)


def test_prox_needs_fewer_critic_solves():
    dx = GRID_1D.dx[0]
    kw = dict(steps=1000, rng=3, true_params=TRUE_1D, stop_param_tol=dx / 2)
    plain = quiet_fit(TARGET_1D, LocationScale(-1.5, 0.5), GRID_1D, **kw)
    prox = quiet_fit(TARGET_1D, LocationScale(-1.5, 0.5), GRID_1D,
                     prox=WassersteinProx(h=0.2, inner_steps=5), **kw)
    assert plain.converged and prox.converged
    assert prox.steps < plain.steps / 2
    assert prox.generator_updates == 5 * prox.steps
    assert plain.generator_updates == plain.steps
    with pytest.raises(ValueError, match="h must be a positive number"):
        WassersteinProx(h=0.0)
    with pytest.raises(ValueError, match="inner_steps must be >= 1"):
        WassersteinProx(inner_steps=0)


def test_result_records_every_step_and_callback_stops():
    seen = []

    def callback(info):
        seen.append(info)
        return info.step == 7

    res = quiet_fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, steps=50, rng=0,
                    callback=callback)
    assert res.status == "callback" and not res.converged and res.steps == 7
    assert [s.step for s in seen] == list(range(8))
    assert isinstance(seen[0], SCOStep)
    np.testing.assert_array_equal(seen[-1].params, res.params)
    for arr in (res.lower, res.upper, res.critic_iterations, res.critic_converged,
                res.outside_mass, res.masses_seconds, res.critic_seconds):
        assert arr.shape == (8,)
    assert res.trajectory.shape == (8, 2) and res.generator_seconds.shape == (7,)
    assert np.all(res.lower <= res.upper)
    assert res.w1 == pytest.approx(0.5 * (res.lower[-1] + res.upper[-1]))
    np.testing.assert_array_equal(res.trajectory[0], [0.0, 1.0])
    assert res.critic.grid == GRID_1D


def test_progress_line(capsys):
    quiet_fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, steps=5, rng=0, progress=True)
    err = capsys.readouterr().err
    assert "[otgrid sco] step 0/5" in err and "[otgrid sco] step 5/5" in err


def test_unmet_tolerance_warns_with_advice():
    with pytest.warns(ConvergenceWarning, match="before the stopping tolerance"):
        res = fit(TARGET_1D, LocationScale(1.0, 0.4), GRID_1D, steps=40, lr=1.0, rng=0,
                  stop_w_tol=1e-4)
    assert res.status == "steps" and not res.converged
    assert "lower lr" in res.message


# --------------------------------------------------------------------------- bad input
def test_generator_outside_the_grid_is_reported_and_pulled_back():
    grid = Grid((-2.0, 4.0), 120)
    start = (6.0, 0.3)
    expected = norm.sf(4.0, *start)  # mass beyond the upper bound, SciPy
    with pytest.warns(OutsideMassWarning, match="outside the grid bounds") as rec:
        res = fit(Normal(1.0, 0.25), LocationScale(*start), grid, steps=400, lr=0.02, rng=0,
                  true_params=TRUE_1D)
    ours = [w for w in rec if issubclass(w.category, OutsideMassWarning)]
    assert len(ours) == 1  # once, with the amount
    np.testing.assert_allclose(ours[0].message.mass, expected, rtol=1e-9)
    np.testing.assert_allclose(res.outside_mass[0], expected, rtol=1e-9)
    assert res.outside_mass[-1] < 1e-6
    assert res.param_error[-1] < grid.dx[0]


def test_diverging_learning_rate_ends_with_last_good_state():
    gen = LocationScale(0.0, 1.0)
    with pytest.warns(ConvergenceWarning, match=r"lr=100 is too large"):
        res = fit(TARGET_1D, gen, GRID_1D, steps=100, lr=100.0, rng=0)
    assert res.status == "diverged" and not res.converged
    np.testing.assert_array_equal(res.params, [0.0, 1.0])
    np.testing.assert_array_equal(gen.params, res.params)
    assert np.all(np.isfinite(res.trajectory)) and np.all(np.isfinite(res.upper))
    assert "last good state" in res.message


class NaNAfter(LocationScale):
    """A generator whose vjp returns NaN from its 6th call on."""

    def __init__(self, *args):
        super().__init__(*args)
        self.calls = 0

    def vjp(self, z, grad_x):
        self.calls += 1
        out = super().vjp(z, grad_x)
        return out * np.nan if self.calls > 5 else out


class BrokenMassesAfter(LocationScale):
    """A generator whose exact masses fail from the 4th call on."""

    def __init__(self, *args):
        super().__init__(*args)
        self.calls = 0

    def cell_masses(self, grid, **kw):
        self.calls += 1
        if self.calls > 3:
            raise ValueError("degenerate parameters")
        return super().cell_masses(grid, **kw)


@pytest.mark.parametrize("cls, status, steps", [(NaNAfter, "non_finite", 5),
                                                (BrokenMassesAfter, "invalid_params", 2)])
def test_bad_values_mid_run_end_cleanly(cls, status, steps):
    gen = cls(0.0, 1.0)
    with pytest.warns(ConvergenceWarning, match="Stopped early"):
        res = fit(TARGET_1D, gen, GRID_1D, steps=50, rng=0)
    assert res.status == status and res.steps == steps
    assert np.all(np.isfinite(res.trajectory)) and np.all(np.isfinite(res.lower))
    np.testing.assert_array_equal(gen.params, res.params)
    np.testing.assert_array_equal(res.params, res.trajectory[-1])


def test_bad_input_raises_clear_errors():
    nan_gen = Shift(np.nan)
    with pytest.raises(ValueError, match=r"generator\.params contains 1 non-finite"):
        fit(TARGET_1D, nan_gen, GRID_1D, masses="samples")
    cases = [
        (dict(lr=-1.0), ValueError, "lr must be a positive finite number"),
        (dict(lr=float("nan")), ValueError, "lr must be a positive finite number"),
        (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of 'sgd', 'adam'"),
        (dict(masses="histogram"), ValueError, "masses must be one of"),
        (dict(stop_param_tol=0.1), ValueError, "stop_param_tol needs true_params"),
        (dict(true_params=[1.0]), ValueError, "true_params must have 2 entries"),
        (dict(prox=3), TypeError, "prox must be None or an otgrid.sco.WassersteinProx"),
        (dict(batch=0), ValueError, "batch must be >= 1"),
        (dict(steps=1.5), TypeError, "steps must be an integer"),
    ]
    for kw, err, msg in cases:
        with pytest.raises(err, match=msg):
            fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, **kw)
    with pytest.raises(ValueError, match="masses='exact' needs a generator with exact cell"):
        fit(TARGET_1D, Shift(0.0), GRID_1D)
    with pytest.raises(ValueError, match="generator produces 2D points but the grid is 1D"):
        fit(TARGET_1D, LocationScale([0.0, 0.0], 1.0), GRID_1D)
    with pytest.raises(ValueError, match=r"target masses must have the grid's shape \(256,\)"):
        fit(np.ones(10), LocationScale(0.0, 1.0), GRID_1D)
    with pytest.raises(TypeError, match="generator must follow"):
        fit(TARGET_1D, object(), GRID_1D)
    with pytest.raises(ValueError, match="1D or 2D grid"):
        fit(Normal([0, 0, 0], 1.0), Shift([0.0, 0.0, 0.0]), Grid([(-1, 1)] * 3, 4))


def test_a_target_that_misses_the_grid_is_an_error_by_default():
    """fit used to fold such a target into the boundary cells (with a warning) and fit the
    generator to the folded masses; by default ("auto") it is now an error before any step,
    while the generated mass outside is still folded (the previous test)."""
    grid = Grid((-2.0, 4.0), 60)
    with pytest.raises(OutsideMassError, match="outside='auto'") as exc:
        fit(Normal(8.0, 1.0), LocationScale(1.0, 1.0), grid, steps=5, rng=0)
    assert exc.value.fraction > 0.99 and exc.value.suggested_bounds == [(2.0, 14.0)]
    with pytest.warns(OutsideMassWarning, match="folded"):     # explicit: as asked
        res = fit(Normal(8.0, 1.0), LocationScale(1.0, 1.0), grid, steps=2, rng=0,
                  outside="fold")
    assert res.steps == 2
    with pytest.raises(ValueError, match="outside must be one of 'auto', 'fold'"):
        fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, outside="clip")


def test_target_given_as_grid_masses():
    mu = folded_normal_masses(GRID_1D.edges[0], 1.0, 0.5) * 3.0  # normalised by fit
    res = quiet_fit(mu, LocationScale(0.0, 0.5), GRID_1D, steps=400, rng=0,
                    true_params=TRUE_1D, stop_param_tol=GRID_1D.dx[0])
    assert res.converged


# --------------------------------------------------------------------------- plot and CLI
def test_plot_sco_panels(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from otgrid.plot import plot_sco, save_figure

    res = quiet_fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, steps=30, rng=0,
                    true_params=TRUE_1D)
    fig = plot_sco(res, title="demo")
    assert len(fig.axes) == 4
    assert "W ≈" in fig._suptitle.get_text() and "demo" in fig._suptitle.get_text()
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["loc", "scale"]
    assert save_figure(fig, tmp_path / "s.png").read_bytes()[:8] == PNG_MAGIC
    plt.close(fig)
    res2 = quiet_fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, steps=5, rng=0)
    fig = plot_sco(res2)
    assert len(fig.axes) == 3
    plt.close(fig)
    res3 = quiet_fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, steps=5, rng=0,
                     keep_trajectory=False)
    assert res3.trajectory is None
    fig = plot_sco(res3)  # the parameter panel says why it is empty
    assert "not kept" in fig.axes[1].texts[0].get_text() and not fig.axes[1].lines
    plt.close(fig)
    with pytest.raises(TypeError, match="SCOResult"):
        plot_sco(object())


def test_cli_sco_1d(tmp_path, capsys):
    fig = tmp_path / "sco.png"
    out_json = tmp_path / "sco.json"
    rc = main(["sco", "normal(1, std=0.5)", "--init-loc", "0", "--init-scale", "1",
               "--steps", "1000", "--shape", "256", "--bounds", "-5", "7",
               "--stop-param-tol", "0.02", "--figure", str(fig), "--json", str(out_json)])
    captured = capsys.readouterr()
    assert rc == 0
    out = captured.out
    assert "params:  loc" in out and "true:    loc 1  scale 0.5" in out
    assert "(param_tol)" in out and f"figure written to {fig}" in out
    assert "[otgrid sco] step 0/1000" in captured.err
    assert fig.read_bytes()[:8] == PNG_MAGIC
    record = json.loads(out_json.read_text())
    assert record["status"] == "param_tol" and record["param_error"] <= 0.02
    np.testing.assert_allclose(record["params"], [1.0, 0.5], atol=0.02)
    assert record["lower"] <= record["upper"]
    assert len(record["history"]["upper"]) == record["steps"] + 1


def test_cli_sco_2d_affine_quiet(tmp_path, capsys):
    rc = main(["sco", "normal([0, 0], [[1, 0.5], [0.5, 1]])", "--generator", "affine",
               "--steps", "20", "--shape", "24", "--quiet", "--no-figure"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "A[0,0]" in out and "true:" not in out and "(steps)" in out


def test_cli_sco_target_outside_the_bounds_when_asked(capsys):
    rc = main(["sco", "normal(0, 1)", "--bounds", "-2", "3", "--outside", "fold", "--steps", "2",
               "--shape", "32", "--quiet", "--no-figure"])
    out = capsys.readouterr().out
    assert rc == 0
    amount = norm.cdf(-2.0) + norm.sf(3.0)
    assert f"TARGET: mass {amount:.3g} lies outside the bounds (folded into the boundary cells)" \
        in out


@pytest.mark.parametrize("argv, words", [
    (["sco", "normal(0, 1)", "--lr", "-1"], ["--lr must be a positive number"]),
    (["sco", "normal(0, 1)", "--init-loc", "0", "1", "--init-scale", "1", "2", "3"],
     ["--init-scale gives 3 values", "2D"]),
    (["sco", "normal([0, 0, 0], 1)"], ["3D"]),
    (["sco", "normal([0, 0], [[1, .5], [.5, 1]])", "--stop-param-tol", "0.1"],
     ["--stop-param-tol needs known true parameters"]),
    (["sco", "normal(0, 1)", "--generator", "affine", "--init-scale", "0"],
     ["--init-scale must be non-zero"]),
    (["sco", "parallel_lines(0.5)"], ["pair of distributions"]),
    (["sco", "normal(0, 1)", "--bounds", "10", "20"],
     ["TARGET:", "1 of its mass (100%)", "--outside auto", "use --bounds -6 6"]),
    (["sco", "normal(0, 1)", "--bounds", "-1", "1", "--outside", "raise"],
     ["TARGET:", "0.317 of its mass (31.7%)", "--outside raise"]),
    (["sco", "normal(0, 1)", "--critic-tol", "10"], ["--critic-tol", "in (0, 1)", "got 10"]),
    (["sco", "normal(0, 1)", "--critic-tol", "0"], ["--critic-tol", "in (0, 1)"]),
    (["sco", "normal(1e300, 1)"], ["TARGET:", "'1e300' is too large"]),
    (["sco", "normal(0, 1)", "--init-loc", "1e300"], ["--init-loc", "within +-1e+150"]),
    (["sco", "normal(0, 1)", "--init-scale", "1e-300"], ["--init-scale", "at least 1e-150"]),
    (["sco", "normal(0, 1)", "--bounds", "-1e300", "1e300"], ["grid:", "within +-1e+150"]),
])
def test_cli_sco_bad_input(argv, words, capsys):
    rc = main([*argv, "--no-figure", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("otgrid: error: ") and err.count("\n") == 1
    for w in words:
        assert w in err, err


def test_trajectory_can_be_dropped_for_large_generators():
    true = [1.0, 0.5]
    kept = fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, steps=6, rng=0, true_params=true)
    res = fit(TARGET_1D, LocationScale(0.0, 1.0), GRID_1D, steps=6, rng=0, true_params=true,
              keep_trajectory=False)
    assert res.trajectory is None and kept.trajectory.shape == (7, 2)
    np.testing.assert_array_equal(res.params, kept.params)
    np.testing.assert_array_equal(res.param_error, kept.param_error)
    np.testing.assert_array_equal(res.upper, kept.upper)
