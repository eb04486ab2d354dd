"""The certificate holds in floating point: exact references, outward rounding, the floor.

References are exact: rational arithmetic (fractions.Fraction) for 1D problems with dyadic
masses and spacing, and POT's network simplex on integer data (integer masses and integer
cityblock costs stay integers in float64, so its optimum is exact).
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest

import otgrid as og
from otgrid.critic.certify import certify
from otgrid.errors import ConvergenceWarning

BACKENDS = ("numpy", "numba")


def _dyadic_pair(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, 50, n)
    b = rng.permutation(a)                          # equal totals, exactly
    k = 2.0 ** -int(rng.integers(3, 12))
    return a * k, b * k


def _exact_w_1d(mu: np.ndarray, nu: np.ndarray, dx: float) -> Fraction:
    cum, w = Fraction(0), Fraction(0)
    for x, y in zip(mu.tolist(), nu.tolist(), strict=True):
        cum += Fraction(x) - Fraction(y)
        w += abs(cum)
    return w * Fraction(dx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dyadic_1d_bounds_bracket_the_exact_rational_w(backend):
    # 0.1.0's upper bound fell one or two ulps below the exact W on such problems
    rng = np.random.default_rng(0)
    for _ in range(12):
        n = int(rng.integers(8, 200))
        mu, nu = _dyadic_pair(rng, n)
        if np.array_equal(mu, nu):
            continue
        grid = og.Grid((0.0, n / 32), n)                # dx = 1/32 exactly
        res = og.solve_critic(mu, nu, grid, tol=1e-13, backend=backend)
        w = _exact_w_1d(mu, nu, grid.dx[0])
        assert Fraction(res.lower) <= w <= Fraction(res.upper)
        assert (Fraction(res.upper) - w) / w < Fraction(1, 10 ** 14)   # within an ulp or two
        assert res.converged and res.relative_gap <= 1e-13


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_cityblock_bounds_bracket_the_exact_lp_value(backend):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(1)
    shape = (7, 5)
    grid = og.Grid([(0.0, 7.0), (0.0, 5.0)], shape)       # dx = 1: integer L1 costs
    xs, ys = grid.mesh()
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1)
    cost = np.abs(pts[:, None, :] - pts[None, :, :]).sum(-1)
    for _ in range(5):
        a = rng.integers(0, 9, shape).astype(float)
        b = rng.permutation(a.ravel()).reshape(shape)
        exact = ot.emd2(a.ravel(), b.ravel(), cost, numItermax=10 ** 7)
        assert exact == int(exact)                        # the simplex stayed on integers
        res = og.solve_critic(a, b, grid, norm="cityblock", tol=1e-13, backend=backend)
        assert res.lower <= exact <= res.upper
        # the iteration's gap reached 1e-13; the outward rounding may leave the certified gap
        # just above it, and the result then says so
        assert res.converged == (res.relative_gap <= 1e-13)
        assert res.status in ("converged", "floor") and res.relative_gap < 2e-13


def test_anisotropic_problem_reaches_tol_instead_of_a_box_sized_floor():
    # 0.1.0 stopped at a floor of 1e3 eps sum|c| diameter -- here a relative gap near 1e-7 --
    # and called it converged at tol 1e-9; the floor now follows W's scale
    grid = og.Grid([(0.0, 0.01), (0.0, 100.0)], (64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        mu = grid.discretize(og.Normal([0.004, 40.0], [0.002 ** 2, 10.0 ** 2]), outside="fold")
        nu = grid.discretize(og.Normal([0.006, 40.0], [0.002 ** 2, 10.0 ** 2]), outside="fold")
    res = og.solve_critic(mu, nu, grid, norm="cityblock", tol=1e-9)
    assert res.converged and res.relative_gap <= 1e-9


def test_a_tol_below_the_rounding_floor_says_so():
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], 32)
    mu = grid.discretize(og.Normal([0.0, 0.0], 1.0), outside="fold")
    nu = grid.discretize(og.Normal([1.0, 0.5], 1.0), outside="fold")
    with pytest.warns(ConvergenceWarning, match="rounding floor"):
        res = og.solve_critic(mu, nu, grid, norm="cityblock", tol=1e-17)
    assert res.status == "floor" and not res.converged
    assert "rounding floor" in res.message and res.relative_gap > 1e-17
    ref = og.solve_critic(mu, nu, grid, norm="cityblock", tol=1e-10)
    assert res.lower <= ref.upper and ref.lower <= res.upper


def test_the_upper_bound_pays_for_the_flow_residual():
    # a flow that does not quite move mu onto nu: the certified upper bound adds the cost of
    # routing what is missing, so it stays above W (0.1.0 assumed the corrected flow feasible)
    grid = og.Grid((0.0, 1.0), 16)
    mu = np.zeros(16)
    nu = np.zeros(16)
    mu[2], nu[12] = 1.0, 1.0
    w = 10 * grid.dx[0]                                   # exact: move mass 1 by 10 cells
    flow = np.zeros((1, 16))
    flow[0, 2:11] = 0.9 * grid.dx[0] * np.ones(9)         # carries 0.9 of the way... short
    critic = -grid.centers[0]                             # feasible, <mu - nu, f> = W
    cb = certify(mu, nu, 1.0, critic, flow, grid.dx, "euclidean", refine=False)
    assert cb.lower <= w <= cb.upper
    assert cb.residual > 0.1
    assert certify(mu, nu, 1.0, critic, flow, grid.dx, "euclidean").upper < cb.upper
    # with the exact flow the bounds are tight
    exact = np.zeros((1, 16))
    exact[0, 2:12] = grid.dx[0]
    tight = certify(mu, nu, 1.0, critic, exact, grid.dx, "euclidean")
    assert tight.upper - w <= 4 * np.spacing(w) and w - tight.lower <= 4 * np.spacing(w)


def test_an_infeasible_critic_is_rescaled_until_certified():
    grid = og.Grid([(0.0, 1.0), (0.0, 1.0)], 8)
    rng = np.random.default_rng(3)
    critic = rng.normal(size=grid.shape)
    mu = np.zeros(grid.shape)
    nu = np.zeros(grid.shape)
    mu[1, 1], nu[6, 5] = 1.0, 1.0
    cb = certify(mu, nu, 1.0, critic, np.zeros((2, *grid.shape)), grid.dx, "euclidean")
    g = cb.critic
    d0 = np.diff(g, axis=0) / grid.dx[0]
    d1 = np.diff(g, axis=1) / grid.dx[1]
    sq = np.zeros(grid.shape)
    sq[:-1, :] += d0 ** 2
    sq[:, :-1] += d1 ** 2
    assert cb.rescaled > 1 and np.sqrt(sq.max()) <= 1.0
    np.testing.assert_allclose(g * cb.rescaled, critic, rtol=1e-15)


def test_ctrl_c_before_the_first_iteration_gives_no_estimate(tmp_path, capsys, monkeypatch):
    from otgrid.cli.main import main

    def interrupt_at_once(info):
        raise KeyboardInterrupt

    grid = og.Grid((-2.0, 6.0), 64)
    res = og.solve_critic(*[grid.discretize(d) for d in (og.Normal(1.0, 0.3), og.Normal(3.0, 0.3))],
                          grid, callback=interrupt_at_once, interrupt="return")
    assert res.status == "interrupted" and res.iterations == 0
    assert 0.0 <= res.lower <= res.upper                  # the start's bounds still hold

    import otgrid.critic.solve as solve_mod

    real = solve_mod.solve_critic
    monkeypatch.setattr(solve_mod, "solve_critic",
                        lambda *a, **k: real(*a, **{**k, "callback": interrupt_at_once,
                                                    "interrupt": "return"}))
    monkeypatch.chdir(tmp_path)
    assert main(["critic", "normal(1, 0.3)", "normal(3, 0.3)", "--no-figure"]) == 130  # Ctrl-C
    out = capsys.readouterr().out
    assert "no estimate" in out and "≈" not in out and "~=" not in out


def test_ctrl_c_during_the_coarse_solves_gives_their_estimate(tmp_path, capsys, monkeypatch):
    # interrupted on the 64^2 level of a 256^2 solve: the coarse solve's bounds, and W
    from critic_fields import interrupt_coarse_level

    from otgrid.cli.main import main

    interrupt_coarse_level(monkeypatch, (64, 64), 60)
    monkeypatch.chdir(tmp_path)
    assert main(["critic", "normal([0, 0], 1)", "normal([2, 1], 1)", "--shape", "256",
                 "--no-figure", "--bounds", "-6", "8", "-6", "7"]) == 130
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("W "))
    assert "no estimate" not in line
    lo, up = (float(v) for v in line.split("[")[1].split("]")[0].split(","))
    assert lo <= 5 ** 0.5 <= up and up - lo < 0.02  # W = |(2, 1)| = sqrt(5) (up to the grid)


@pytest.mark.parametrize("tol", [1.0, 10.0, np.inf])
def test_tol_must_be_a_relative_gap_below_one(tol):
    # 0.1.0 accepted tol=10 (every first check "converged")
    grid = og.Grid((0.0, 1.0), 8)
    mu, nu = np.eye(8)[1], np.eye(8)[6]
    with pytest.raises(ValueError, match=r"tol must be a relative gap in \(0, 1\)"):
        og.solve_critic(mu, nu, grid, tol=tol)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"tol": None}, "tol must be a number; got NoneType None"),
    ({"step": "x"}, "step must be a number; got str 'x'"),
    ({"time_limit": [1.0]}, "time_limit must be a number; got list"),
])
def test_non_numeric_options_are_named(kwargs, match):
    # before: numpy's "ufunc 'isfinite' not supported for the input types" (found by fuzzing)
    grid = og.Grid((0.0, 1.0), 8)
    mu, nu = np.eye(8)[1], np.eye(8)[6]
    with pytest.raises(TypeError, match=match):
        og.solve_critic(mu, nu, grid, **kwargs)


def test_a_total_mass_that_could_overflow_w_is_refused():
    # before: mu + nu overflowed to inf inside the solver (found by fuzzing)
    grid = og.Grid([(0.0, 1.0), (0.0, 1.0)], (4, 8))
    mu = np.zeros(grid.shape)
    mu[0, 0] = mu[3, 7] = 1e308
    nu = mu[::-1, ::-1].copy()
    with pytest.raises(ValueError, match=r"mu has a total mass above 1e\+150"):
        og.solve_critic(mu, nu, grid)


def _float32_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Masses normalised in float32, as a float32 pipeline makes them."""
    rng = np.random.default_rng(seed)
    mu, nu = rng.random(n).astype(np.float32), rng.random(n).astype(np.float32)
    mu /= mu.sum()
    nu /= nu.sum()
    return mu, nu


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_masses_normalised_in_float32_are_accepted_and_certified(kind):
    # before: "mu and nu must have equal total mass; got 0.999999969966 and 1.0000000013.
    # Normalise both (e.g. mu / mu.sum())": the 1e-9 tolerance is below float32's rounding
    grid = og.Grid((0.0, 3.0), 64)
    mu, nu = _float32_pair(64, 2)
    s_mu, s_nu = float(np.sum(mu, dtype=np.float64)), float(np.sum(nu, dtype=np.float64))
    assert abs(s_mu - s_nu) > 1e-9 * max(s_mu, s_nu)   # the case: beyond the float64 tolerance
    mu64, nu64 = mu.astype(np.float64), nu.astype(np.float64) * (s_mu / s_nu)
    exact = float(np.sum(np.abs(np.cumsum(mu64 - nu64))[:-1]) * grid.dx[0])  # closed form, 1D
    if kind == "torch":
        torch = pytest.importorskip("torch")
        mu, nu = torch.from_numpy(mu), torch.from_numpy(nu)
    for dtype in (np.float64, np.float32):
        res = og.solve_critic(mu, nu, grid, tol=1e-7, dtype=dtype)
        assert res.lower <= exact * (1 + 1e-12) and exact * (1 - 1e-12) <= res.upper
        assert res.upper - res.lower <= 2e-7 * res.upper


def test_the_reproducer_of_float32_masses_in_2d():
    rng = np.random.default_rng(0)
    g = og.Grid([(0, 1), (0, 1)], (32, 32))
    mu = rng.random(g.shape).astype(np.float32)
    nu = rng.random(g.shape).astype(np.float32)
    mu /= mu.sum()
    nu /= nu.sum()
    res = og.solve_critic(mu, nu, g, dtype=np.float32, norm="cityblock", tol=1e-6)
    assert res.converged
    ot = pytest.importorskip("ot")                      # POT's exact LP on the cell centres
    pts = g.points()
    m64, n64 = mu.ravel().astype(np.float64), nu.ravel().astype(np.float64)
    n64 *= m64.sum() / n64.sum()
    exact = ot.emd2(m64, n64, ot.dist(pts, pts, metric="cityblock"), numItermax=10**7)
    assert res.lower <= exact * (1 + 1e-9) and exact * (1 - 1e-9) <= res.upper


def test_unequal_totals_beyond_the_inputs_precision_are_refused_with_the_reason():
    grid = og.Grid((0.0, 3.0), 64)
    mu, nu = _float32_pair(64, 2)
    with pytest.raises(ValueError, match=r"relative difference 0\.001.*for float32 inputs; "
                                         r"normalise both in float64"):
        og.solve_critic(mu, nu * np.float32(1.001), grid)
    mu64, nu64 = mu.astype(np.float64), nu.astype(np.float64)
    nu64 *= mu64.sum() / nu64.sum()
    with pytest.raises(ValueError, match=r"tolerance is a relative difference of 1e-09"):
        og.solve_critic(mu64, nu64 * (1 + 1e-8), grid)     # float64: the documented 1e-9


def test_masses_that_require_grad_are_taken_as_data():
    # before: torch's RuntimeError "Can't call numpy() on Tensor that requires grad"
    torch = pytest.importorskip("torch")
    grid = og.Grid((0.0, 3.0), 16)
    mu, nu = np.eye(16)[2], np.eye(16)[11]
    res = og.solve_critic(torch.tensor(mu, requires_grad=True), torch.tensor(nu), grid)
    assert res.lower <= 9 * grid.dx[0] * (1 + 1e-12) <= res.upper * (1 + 2e-12)


def test_masked_masses_are_refused():
    # before: the mask was silently ignored (masked cells kept their mass)
    grid = og.Grid((0.0, 3.0), 16)
    mu = np.ma.masked_array(np.eye(16)[2] + 0.1, mask=np.eye(16)[5].astype(bool))
    with pytest.raises(TypeError, match=r"mu is a masked array with 1 masked entries.*"
                                        r"mu\.filled\(0\)"):
        og.solve_critic(mu, np.full(16, mu.sum() / 16), grid)


def test_complex_masses_are_refused_not_silently_cast():
    # before: numpy's ComplexWarning and the imaginary part dropped (found by fuzzing)
    grid = og.Grid((0.0, 1.0), 8)
    mu = np.eye(8)[1]
    with pytest.raises(TypeError, match="nu must hold real numbers; got complex values"):
        og.solve_critic(mu, np.eye(8)[6].astype(complex), grid)


@pytest.mark.parametrize("scale", [1e-302, 1e-310])
def test_bounds_hold_for_masses_near_the_subnormal_range(scale):
    # before: OverflowError in the certificate's power-of-two rescaling (found by fuzzing)
    grid = og.Grid((0.0, 3.0), 16)
    rng = np.random.default_rng(5)
    mu, nu = rng.random(16), rng.random(16)
    nu *= mu.sum() / nu.sum()
    exact = float(np.sum(np.abs(np.cumsum(mu - nu))[:-1]) * grid.dx[0])   # closed form, 1D
    res = og.solve_critic(mu * scale, nu * scale, grid, tol=1e-6)
    assert res.lower <= exact * scale * (1 + 1e-9)
    assert exact * scale * (1 - 1e-9) <= res.upper
    assert res.upper - res.lower <= 1e-5 * res.upper


def _exact_w_1d(mu, nu, dx):
    """W in exact rational arithmetic on a 1D grid, ``nu`` scaled to ``mu``'s mass by the
    exact ratio (the closed form: the L1 norm of the cumulative imbalance times ``dx``)."""
    mf, nf = [Fraction(float(v)) for v in mu], [Fraction(float(v)) for v in nu]
    ratio = sum(mf) / sum(nf)
    run, w = Fraction(0), Fraction(0)
    for a, b in zip(mf[:-1], nf[:-1], strict=True):
        run += a - ratio * b
        w += abs(run)
    return w * Fraction(dx)


@pytest.mark.parametrize("extra", [1 + 1e-12, 1 - 1e-12, 1 + 1e-10])
def test_bounds_hold_when_the_imbalance_is_a_subnormal_mass(extra):
    # before: the certificate scaled such data by 2^999, Veltkamp's split in its exact
    # products overflowed and the lower bound came out NaN (a fuzzed 4 x 8 problem; "the
    # bounds hold", said the rounding-floor warning)
    for shape, bounds in (((16,), (0.0, 3.0)), ((4, 8), [(0.0, 1.0), (0.0, 1.0)])):
        grid = og.Grid(bounds, shape)
        mu, nu = np.zeros(shape), np.zeros(shape)
        mu.flat[0] = 1.0
        nu.flat[0], nu.flat[-1] = 1.0, 2.22507386e-311
        nu *= extra
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)   # no overflow, no invalid value
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = og.solve_critic(mu, nu, grid, tol=1e-2)
        assert np.isfinite(res.lower) and np.isfinite(res.upper)
        assert 0.0 <= res.lower <= res.upper <= 1e-14
        if len(shape) == 1:
            exact = _exact_w_1d(mu, nu, grid.dx[0])
            assert Fraction(res.lower) <= exact <= Fraction(res.upper)


def test_a_certificate_above_tol_after_convergence_sends_the_solve_on(monkeypatch):
    # the iteration stops on its tracked gap; the rigorous certificate can add a little
    # (outward rounding, the flow's residual). Here the first certificate is made to exceed
    # tol: the solve must go on from its best iterates until the certified gap meets tol,
    # instead of reporting the rounding floor
    import dataclasses

    from otgrid.critic import backend_numpy
    from otgrid.critic import solve as solve_module

    # without the flow's descent, which from the best iterates closes the 10 % at once (the
    # continuation then stops at its first check, with no iterations to show for it)
    monkeypatch.setattr(backend_numpy, "DESCENT_SWEEPS", 0)
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], 32)
    mu = grid.discretize(og.Normal([0.0, 0.0], 1.0), outside="fold")
    nu = grid.discretize(og.Normal([1.0, 0.5], 1.0), outside="fold")
    tol = 1e-5
    plain = og.solve_critic(mu, nu, grid, tol=tol)
    real, calls = solve_module.certify, []

    def inflated(*args, **kw):
        cb = real(*args, **kw)
        calls.append(cb)
        if len(calls) == 1:  # a certified gap of 1.1 tol, whatever the tracked one was
            return dataclasses.replace(cb, upper=max(cb.upper, cb.lower / (1 - 1.1 * tol)))
        return cb

    monkeypatch.setattr(solve_module, "certify", inflated)
    res = og.solve_critic(mu, nu, grid, tol=tol)
    assert len(calls) == 2 and res.converged and res.relative_gap <= tol
    assert res.iterations > plain.iterations
    assert res.history.iteration[-1] == res.iterations


def test_checks_bounds_hold_for_critics_far_from_zero():
    # a step of 1e20 blows the iterate up; its repairs are nearly constant critics near 5e16,
    # whose <c, g> is rounding (sum c is a few ulps from 0): a check took 224 for a lower bound
    # on a W of 5.73, above its upper bound, and the solve stopped there with lower 0
    from references import socp_2d_euclidean_cvxpy

    rng = np.random.default_rng(1)
    grid = og.Grid([(0, 1), (0, 1)], (16, 16))
    mu, nu = rng.random(grid.shape), rng.random(grid.shape)
    nu *= mu.sum() / nu.sum()
    ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx, tol=1e-9).value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.ConvergenceWarning)
        res = og.solve_critic(mu, nu, grid, step=1e20, max_iter=300)
    h = res.history
    assert np.all(h.lower <= ref * (1 + 1e-7)) and np.all(h.upper >= ref * (1 - 1e-7))
    assert res.lower <= ref * (1 + 1e-7) <= res.upper * (1 + 2e-7)
    assert res.status == "max_iter" and res.lower > 0.5 * ref


def test_centred_keeps_critics_near_zero_and_centres_far_ones():
    from otgrid.critic.certificate import centred

    g = np.stack([np.linspace(-1.0, 3.0, 12).reshape(3, 4), 5e16 + np.arange(12.0).reshape(3, 4)])
    out = centred(np, g)
    assert np.array_equal(out[0], g[0])  # offset 1 within the spread 4: the same bits
    spread = g[1].max() - g[1].min()
    assert out[1].max() - out[1].min() == spread and abs(out[1].max() + out[1].min()) <= spread
