"""Every solver path of issue 3 keeps the first release's guarantees.

Batches, adaptive restarts, the multilevel start, float32, time limits and Ctrl-C: the bounds
must bracket independent references (POT's network simplex, cvxpy + Clarabel, the 1D closed
form), and the batched kernels must agree with the NumPy reference operators.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from critic_fields import interrupt_coarse_level, wgan_8gaussians
from references import emd2_cityblock, socp_2d_euclidean_cvxpy, w1_1d_closed_form
from scipy.stats import norm as normal

import otgrid as og
from otgrid.critic import operators as ops
from otgrid.critic.backends import make_kernels
from otgrid.critic.multilevel import coarsen as _coarsen
from otgrid.critic.multilevel import prolong as _prolong

EXACT_SLACK = 1e-9
SOCP_SLACK = 1e-7


def _gauss_2d(grid: og.Grid, mean, sd=1.0) -> np.ndarray:
    (ax, bx), (ay, by) = grid.bounds
    gx = np.diff(normal.cdf(np.linspace(ax, bx, grid.shape[0] + 1), loc=mean[0], scale=sd))
    gy = np.diff(normal.cdf(np.linspace(ay, by, grid.shape[1] + 1), loc=mean[1], scale=sd))
    m = np.outer(gx, gy)
    return m / m.sum()


def _centers(grid: og.Grid):
    return tuple(a + (np.arange(n) + 0.5) * h
                 for (a, _), n, h in zip(grid.bounds, grid.shape, grid.dx, strict=True))


def _brackets(res, ref: float, slack: float) -> bool:
    return res.lower <= ref * (1 + slack) + 1e-15 and res.upper >= ref * (1 - slack) - 1e-15


# ------------------------------------------------------------------------- batched kernels
@pytest.mark.parametrize("shape", [(9,), (7, 5)])
@pytest.mark.parametrize("norm", ["euclidean", "cityblock"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batched_numba_kernels_match_numpy_reference(shape, norm, dtype):
    rng = np.random.default_rng(0)
    nb, nd = 3, len(shape)
    dx = (0.3, 0.7)[:nd]
    ref = make_kernels("numpy", shape, dx, norm, dtype)
    fast = make_kernels("numba", shape, dx, norm, dtype)
    f = rng.standard_normal((nb, *shape)).astype(dtype)
    u = rng.standard_normal((nb, *shape)).astype(dtype)
    y = rng.standard_normal((nb, nd, *shape)).astype(dtype)
    for k in range(nd):  # flows are zero on the last index of their axis
        idx = [slice(None)] * (nd + 2)
        idx[1], idx[2 + k] = k, -1
        y[tuple(idx)] = 0
    tau = np.array([0.5, 2.0, 7.0])
    rho = 1.8
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    outs = []
    for kern in (ref, fast):
        yy, fo, r = y.copy(), np.empty_like(f), np.empty_like(f)
        kern.dual_step(f, u, yy, fo, tau, 1.0 / tau, rho)
        # relaxed: rho times the move of the plain step (rho = 1)
        y1, f1 = y.copy(), np.empty_like(f)
        kern.dual_step(f, u, y1, f1, tau, 1.0 / tau)
        np.testing.assert_allclose(yy, y + rho * (y1 - y), rtol=rtol, atol=rtol)
        np.testing.assert_allclose(fo, f + rho * (f1 - f), rtol=rtol, atol=rtol)
        kern.residual(f, y, r)
        # (repair is not compared: every backend runs the same Numba sweep; its properties
        # are tested against the constraint's definition in test_critic_properties.py)
        outs.append((yy, fo, r, kern.max_grad_norm(f), kern.grad_sq(f), kern.flow_cost(y, u),
                     kern.corrected_flow(y, u)))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    # each problem of the batch is the same as solving it alone
    for b in range(nb):
        yy, fo = y[b:b + 1].copy(), np.empty_like(f[b:b + 1])
        fast.dual_step(f[b:b + 1], u[b:b + 1], yy, fo, tau[b:b + 1], 1.0 / tau[b:b + 1], rho)
        np.testing.assert_allclose(yy[0], outs[1][0][b], rtol=rtol, atol=rtol)
    # plain-NumPy check of one reduction, independent of both backends
    g = np.stack([ops.grad(fb.astype(np.float64), [1 / h for h in dx]) for fb in f])
    np.testing.assert_allclose(fast.grad_sq(f), (g ** 2).reshape(nb, -1).sum(1), rtol=rtol)


def test_batched_poisson_solves_each_problem():
    rng = np.random.default_rng(1)
    kern = make_kernels("numpy", (6, 5), (0.5, 0.25), "euclidean", np.float64)
    r = rng.standard_normal((2, 6, 5))
    r -= r.mean(axis=(1, 2), keepdims=True)
    u = kern.poisson(r)
    for b in range(2):
        lap = ops.div_adjoint(ops.grad(u[b], (2.0, 4.0)), (2.0, 4.0))
        np.testing.assert_allclose(lap, r[b], atol=1e-10)


# ----------------------------------------------------------------------------------- batches
def _batch_problem():
    grid = og.Grid([(-3.0, 3.0), (-3.0, 3.0)], (20, 20))
    nu = _gauss_2d(grid, (0.0, 0.0))
    mus = np.stack([_gauss_2d(grid, m) for m in [(1.0, 0.0), (0.0, -1.5), (0.5, 0.5)]])
    return grid, mus, nu


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("norm", ["euclidean", "cityblock"])
def test_batch_brackets_references_and_matches_single_solves(backend, norm):
    grid, mus, nu = _batch_problem()
    res = og.solve_critic(mus, nu, grid, norm=norm, tol=1e-6, backend=backend)
    assert isinstance(res, list) and len(res) == 3
    for b, r in enumerate(res):
        assert r.converged and r.critic.shape == grid.shape
        if norm == "cityblock":
            ref, slack = emd2_cityblock(mus[b], nu, _centers(grid)), EXACT_SLACK
        else:
            ref, slack = socp_2d_euclidean_cvxpy(mus[b], nu, grid.dx).value, SOCP_SLACK
        assert _brackets(r, ref, slack), (b, r.lower, r.upper, ref)
        single = og.solve_critic(mus[b], nu, grid, norm=norm, tol=1e-6, backend=backend)
        assert single.lower <= r.upper * (1 + 1e-12) and r.lower <= single.upper * (1 + 1e-12)


def test_batch_stops_each_problem_on_its_own():
    grid, _, nu = _batch_problem()
    # sources of different widths: problems of different difficulty (alone: 380, 535 and
    # 390 iterations)
    mus = np.stack([_gauss_2d(grid, (1.0, 0.0)), _gauss_2d(grid, (0.0, -1.5), 0.3),
                    _gauss_2d(grid, (0.5, 0.5), 0.6), nu])  # problem 3: mu == nu, W = 0
    seen: dict[int, int] = {}

    def cb(info):
        seen[info.problem] = info.iteration

    res = og.solve_critic(mus, nu, grid, tol=1e-6, callback=cb)
    assert res[3].w1 == 0.0 and res[3].converged
    iters = [r.iterations for r in res[:3]]
    assert len(set(iters)) > 1  # different problems stop at different iterations
    assert all(seen[b] == res[b].iterations for b in range(3))


def test_a_problems_result_does_not_depend_on_its_batch():
    # each problem keeps its own check schedule (spaced while its gap is far from tol): where it
    # stops, and so its bounds, are those of the problem solved alone -- a sweep's numbers do
    # not depend on how its problems were batched (128^2: the multilevel start too)
    grid = og.Grid([(-6.0, 6.0), (-6.0, 6.0)], (128, 128))
    mu = grid.discretize(og.Normal([0.0, 0.0], 1.0))
    nus = np.stack([grid.discretize(og.Normal([s, 0.3], 0.8)) for s in (0.5, 1.5)]
                   + [grid.discretize(og.datasets.eight_gaussians())])
    batch = og.solve_critic(mu, nus, grid, tol=1e-4)
    for b in range(len(nus)):
        alone = og.solve_critic(mu, nus[b], grid, tol=1e-4)
        assert batch[b].iterations == alone.iterations
        assert abs(batch[b].lower - alone.lower) <= 1e-10 * alone.upper
        assert abs(batch[b].upper - alone.upper) <= 1e-10 * alone.upper


def test_batch_broadcasts_either_side_and_checks_shapes():
    grid, mus, nu = _batch_problem()
    a = og.solve_critic(mus, nu, grid, tol=1e-5)
    b = og.solve_critic(nu, mus, grid, tol=1e-5)  # W is symmetric
    for ra, rb in zip(a, b, strict=True):
        assert ra.lower <= rb.upper * (1 + 1e-12) and rb.lower <= ra.upper * (1 + 1e-12)
    with pytest.raises(ValueError, match="same number"):
        og.solve_critic(mus, mus[:2], grid)
    with pytest.raises(ValueError, match=r"\(B, \*"):
        og.solve_critic(mus[None], nu, grid)
    bad = mus.copy()
    bad[1] *= 2
    with pytest.raises(ValueError, match="problem 1"):
        og.solve_critic(bad, nu, grid)


def test_batch_warm_start_takes_a_list():
    grid, mus, nu = _batch_problem()
    first = og.solve_critic(mus, nu, grid, tol=1e-5)
    again = og.solve_critic(mus, nu, grid, tol=1e-5, warm_start=first)
    assert all(a.iterations <= f.iterations for a, f in zip(again, first, strict=True))
    with pytest.raises(TypeError, match="list of CriticResult"):
        og.solve_critic(mus, nu, grid, warm_start=first[0])
    with pytest.raises(ValueError, match="2 results for 3"):
        og.solve_critic(mus, nu, grid, warm_start=first[:2])


# ---------------------------------------------------------------- restarts and multilevel
@pytest.mark.parametrize("adaptive", [True, False])
@pytest.mark.parametrize("multilevel", [True, False])
def test_paths_bracket_the_cityblock_reference(adaptive, multilevel):
    grid = og.Grid([(-3.0, 3.0), (-3.0, 3.0)], (64, 66))
    mu, nu = _gauss_2d(grid, (-0.5, 0.0), 0.8), _gauss_2d(grid, (1.0, 0.5), 0.8)
    ref = emd2_cityblock(mu, nu, _centers(grid))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.ConvergenceWarning)
        res = og.solve_critic(mu, nu, grid, norm="cityblock", tol=1e-6, max_iter=4000,
                              adaptive_step=adaptive, multilevel=multilevel)
    assert _brackets(res, ref, EXACT_SLACK)
    assert res.levels == (2 if multilevel else 1)
    if not adaptive:
        assert res.restarts == 0


@pytest.mark.parametrize("shape", [(64, 64), (67, 65)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multilevel_brackets_the_socp_reference(shape, dtype):
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], shape)
    mu, nu = _gauss_2d(grid, (0.0, 0.0)), _gauss_2d(grid, (2.0, 1.0))
    ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx, tol=1e-9)
    res = og.solve_critic(mu, nu, grid, tol=1e-5, multilevel=True, dtype=dtype)
    assert res.converged and res.levels == 2
    assert _brackets(res, ref.value, SOCP_SLACK)


def test_adaptive_restarts_beat_the_fixed_step_on_the_gaussian_pair():
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (48, 48))
    mu, nu = _gauss_2d(grid, (0.0, 0.0)), _gauss_2d(grid, (2.0, 1.0))
    fixed = og.solve_critic(mu, nu, grid, tol=1e-6, adaptive_step=False, multilevel=False)
    adapt = og.solve_critic(mu, nu, grid, tol=1e-6, multilevel=False)
    assert fixed.converged and adapt.converged
    assert adapt.restarts > 0 and adapt.iterations < fixed.iterations / 2


def test_coarsen_and_prolong():
    rng = np.random.default_rng(3)
    c = rng.standard_normal((2, 7, 6))
    cc = _coarsen(c)
    assert cc.shape == (2, 4, 3)
    np.testing.assert_allclose(cc.sum(axis=(1, 2)), c.sum(axis=(1, 2)))
    np.testing.assert_allclose(cc[:, 0, 0], c[:, :2, :2].sum(axis=(1, 2)))
    # a linear critic is reproduced exactly away from the boundary; the flow is scaled by 1/4
    xc = (np.arange(8) + 0.5) * 2.0
    lin = np.broadcast_to(3.0 * xc[:, None] + 0 * xc[None, :8], (8, 8))[None]
    flow = np.ones((1, 2, 8, 8))
    f, y = _prolong(lin, flow, (16, 16))
    xf = np.arange(16) + 0.5
    np.testing.assert_allclose(f[0, 1:-1, 5], 3.0 * xf[1:-1])
    np.testing.assert_allclose(y[0, 0, :-1, 3], 0.25)
    np.testing.assert_allclose(y[0, 0, -1], 0.0)
    np.testing.assert_allclose(y[0, 1, :, -1], 0.0)



def _moved_gaussians(grid, e):
    return grid.discretize(og.Normal([0.5 - e, -0.3 + e], [0.36 + e, 0.16 + e]))


def _warm_and_cold(e_old: float, e_new: float):
    """On 128^2, tol 1e-5: the solve of the pair moved by ``e_old``, and the pair moved by
    ``e_new`` solved cold and warm-started from it: ``(mu, nu, old, cold, warm)``."""
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (128, 128))
    mu, nu = _moved_gaussians(grid, 0.0), _moved_gaussians(grid, e_new)
    old = og.solve_critic(mu, _moved_gaussians(grid, e_old), grid, tol=1e-5)
    cold = og.solve_critic(mu, nu, grid, tol=1e-5)
    warm = og.solve_critic(mu, nu, grid, tol=1e-5, warm_start=old)
    return grid, mu, nu, old, cold, warm


def test_a_far_warm_start_gives_way_to_the_multilevel_start():
    # W falls by a third from the warm start's data to the new data: started as it is, the
    # warm start took 2 371 iterations where a cold multilevel solve took 190 on this grid
    grid, mu, nu, old, cold, warm = _warm_and_cold(0.001, 0.0005)
    assert cold.converged and warm.levels == cold.levels > 1
    assert (warm.iterations, warm.lower, warm.upper) == (cold.iterations, cold.lower, cold.upper)
    plain = og.solve_critic(mu, nu, grid, tol=1e-5, warm_start=old, multilevel=False)
    assert plain.levels == 1 and plain.converged and plain.iterations > 5 * cold.iterations


def test_a_near_warm_start_starts_as_it_is():
    # W moves by about 1 %: the warm start (35-45 iterations) beats the multilevel start (218)
    grid, mu, nu, _, cold, warm = _warm_and_cold(0.1, 0.099)
    assert warm.converged and warm.levels == 1 and cold.levels > 1
    assert warm.iterations < cold.iterations / 2
    again = og.solve_critic(mu, nu, grid, tol=1e-5, warm_start=warm)
    assert again.iterations == 0 and again.levels == 1


def test_a_kept_warm_start_is_checked_once_at_its_start(monkeypatch):
    # the check that keeps it (its gap on the new data) is the iteration's first one: the
    # iteration goes on from its bounds instead of checking the same iterate again
    from otgrid.critic import certificate

    grid, mu, nu, old, _, _ = _warm_and_cold(0.1, 0.099)
    calls = []
    update = certificate.Best.update

    def counting(self, *a, **k):
        calls.append(1)
        return update(self, *a, **k)

    monkeypatch.setattr(certificate.Best, "update", counting)
    warm = og.solve_critic(mu, nu, grid, tol=1e-5, warm_start=old)
    assert warm.levels == 1 and warm.converged and warm.history.iteration[0] > 0
    assert len(calls) == len(warm.history.iteration) + 1  # + the check that kept it


def test_ctrl_c_during_a_warm_starts_check_returns_its_bounds(monkeypatch):
    # the check that decides whether to keep a warm start is interrupted: no multilevel start,
    # no iterations, and the bounds of whatever was certified (interrupt="return")
    from otgrid.critic import certificate

    grid, mu, nu, old, cold, _ = _warm_and_cold(0.001, 0.0005)
    update, calls = certificate.Best.update, []

    def first_interrupts(self, *a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return update(self, *a, **k)

    monkeypatch.setattr(certificate.Best, "update", first_interrupts)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = og.solve_critic(mu, nu, grid, tol=1e-5, warm_start=old, interrupt="return")
    assert res.status == "interrupted" and res.iterations == 0 and res.levels == 1
    assert res.lower <= cold.upper and cold.lower <= res.upper

def test_a_batch_sorts_its_warm_starts_one_by_one():
    # one warm start near its new problem, one far: each goes its own way, both certified
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (128, 128))
    mu = _moved_gaussians(grid, 0.0)
    olds = og.solve_critic(mu, np.stack([_moved_gaussians(grid, 0.1),
                                         _moved_gaussians(grid, 0.001)]), grid, tol=1e-5)
    nus = np.stack([_moved_gaussians(grid, 0.099), _moved_gaussians(grid, 0.0005)])
    both = og.solve_critic(mu, nus, grid, tol=1e-5, warm_start=olds)
    alone = [og.solve_critic(mu, nus[i], grid, tol=1e-5, warm_start=olds[i]) for i in range(2)]
    assert [r.levels for r in both] == [1, alone[1].levels] and alone[1].levels > 1
    for b, a in zip(both, alone, strict=True):
        assert b.converged and b.lower <= a.upper and a.lower <= b.upper


# ------------------------------------------------------------------------- stopping rules
def test_time_limit_stops_with_valid_bounds():
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (64, 64))
    mu, nu = _gauss_2d(grid, (0.0, 0.0)), _gauss_2d(grid, (2.0, 1.0))
    ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx, tol=1e-9).value
    with pytest.warns(og.ConvergenceWarning, match="time_limit"):
        res = og.solve_critic(mu, nu, grid, tol=1e-12, time_limit=0.3, multilevel=False)
    assert res.status == "time_limit" and not res.converged
    assert _brackets(res, ref, SOCP_SLACK)
    with pytest.raises(ValueError, match="time_limit"):
        og.solve_critic(mu, nu, grid, time_limit=-1)


@pytest.mark.parametrize("multilevel", [False, True])
def test_keyboard_interrupt_returns_the_best_result_when_asked(multilevel):
    grid = og.Grid((-6.0, 6.0), 200)
    edges = np.linspace(-6, 6, 201)
    mu = np.diff(normal.cdf(edges, 0, 1))
    nu = np.diff(normal.cdf(edges, 1.5, 0.7))
    nu *= mu.sum() / nu.sum()
    calls = []

    def cb(info):
        calls.append(info.iteration)
        raise KeyboardInterrupt

    res = og.solve_critic(mu, nu, grid, tol=1e-14, callback=cb, interrupt="return",
                          multilevel=multilevel)
    assert res.status == "interrupted" and not res.converged and "Interrupted" in res.message
    assert _brackets(res, w1_1d_closed_form(mu, nu, grid.dx[0]), EXACT_SLACK)
    with pytest.raises(KeyboardInterrupt):
        og.solve_critic(mu, nu, grid, tol=1e-14, callback=cb)
    with pytest.raises(ValueError, match="interrupt"):
        og.solve_critic(mu, nu, grid, interrupt="ignore")



def test_ctrl_c_during_a_coarse_solve_keeps_its_best(monkeypatch):
    # Ctrl-C on the 64^2 level of a 256^2 solve: that level's best iterates, prolonged, are
    # certified on the fine grid (the interrupt fell back to the zero start: lower bound 0)
    grid = og.Grid([(-6.0, 8.0), (-6.0, 7.0)], (256, 256))
    mu = grid.discretize(og.Normal([0.0, 0.0], 1.0))
    nu = grid.discretize(og.Normal([2.0, 1.0], 1.0))
    ref = og.solve_critic(mu, nu, grid, tol=1e-6)
    interrupt_coarse_level(monkeypatch, (64, 64), 60)
    res = og.solve_critic(mu, nu, grid, tol=1e-6, interrupt="return")
    assert res.status == "interrupted" and res.iterations == 0 and res.levels > 1
    assert res.lower <= ref.upper and ref.lower <= res.upper
    assert res.lower > 0.9 * ref.lower and res.upper < 1.1 * ref.upper
    with pytest.raises(KeyboardInterrupt):
        og.solve_critic(mu, nu, grid, tol=1e-6)


# ------------------------------------------------------------------------- float32 floor
def test_float32_precision_floor_goes_on_in_float64(monkeypatch):
    """8gaussians vs N(0, I) at 64^2: float32 iterates stall short of a relative gap of 5e-7
    (since the ray critics, they reach 1e-6 alone: 9.7e-7 after 8 888 iterations); the solve
    continues in float64 (from iteration 17 405) and converges, bracketing the SOCP value; the
    Gaussian pair reaches 1e-6 in float32 alone. Without the feasible ascent of the critic
    and the flow's descent, with which the float32 iterates reach 5e-7 here."""
    from otgrid.critic import backend_numpy

    monkeypatch.setattr(backend_numpy, "ASCENT_SWEEPS", 0)
    monkeypatch.setattr(backend_numpy, "DESCENT_SWEEPS", 0)
    grid = og.Grid([(-4, 4), (-4, 4)], (64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        mu = grid.discretize(og.datasets.eight_gaussians(), outside="renormalize")
        nu = grid.discretize(og.Normal([0, 0], 1.0), outside="renormalize")
    res = og.solve_critic(mu, nu, grid, tol=5e-7, dtype=np.float32)
    assert res.converged and res.dtype == np.float32
    assert res.float64_from is not None and 0 < res.float64_from < res.iterations
    assert res.history.iteration[-1] == res.iterations
    assert np.all(np.diff(res.history.iteration) > 0)
    ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx).value
    assert _brackets(res, ref, SOCP_SLACK), (res.lower, res.upper, ref)
    assert np.abs(np.diff(res.critic, axis=0) / grid.dx[0]).max() <= 1 + 1e-9
    gauss = og.solve_critic(_gauss_2d(grid, (2, 1)), _gauss_2d(grid, (0, 0)), grid, tol=1e-6,
                            dtype=np.float32)
    assert gauss.converged and gauss.float64_from is None


def test_float32_solves_run_coarse_levels_near_the_float32_floor_in_float64(monkeypatch):
    """A float32 solve's coarse levels iterate in float64 where their tolerance is within
    F32_FLOOR_MARGIN of float32's precision floor there (2^-24 cells along the longest axis):
    float32 coarse solves stalled at that floor and handed over far worse starts (8gaussians at
    512^2, 1e-6: 13 196 fine iterations against 3 618). Loose tolerances keep float32 (the
    same iterates as before), float64 solves float64."""
    from otgrid.critic import multilevel

    assert multilevel.coarse_dtype(np.float32, (64, 64), 1e-6) == np.float64
    assert multilevel.coarse_dtype(np.float32, (64, 64), 1e-4) == np.float32
    assert multilevel.coarse_dtype(np.float32, (512, 512), 1e-4) == np.float64  # floor 3e-5
    assert multilevel.coarse_dtype(np.float32, (256, 256), 1e-4) == np.float32
    assert multilevel.coarse_dtype(np.float64, (64, 64), 1e-6) == np.float64
    made = []
    real = multilevel.make_kernels

    def spy(backend, shape, dx, norm, dtype):
        made.append((tuple(shape), np.dtype(dtype)))
        return real(backend, shape, dx, norm, dtype)

    monkeypatch.setattr(multilevel, "make_kernels", spy)
    grid = og.Grid([(-4, 4), (-4, 4)], (128, 128))
    mu, nu = _gauss_2d(grid, (1, 0)), _gauss_2d(grid, (0, 0))
    for tol, want in ((1e-6, np.float64), (1e-4, np.float32)):
        made.clear()
        with warnings.catch_warnings():  # (200 iterations do not reach 1e-6)
            warnings.simplefilter("ignore", og.ConvergenceWarning)
            res = og.solve_critic(mu, nu, grid, tol=tol, dtype=np.float32, max_iter=200)
        assert res.dtype == np.float32 and res.lower <= res.upper
        # each level's iteration kernels (a float32 level also makes float64 ones to certify)
        first = {}
        for shape, d in made:
            first.setdefault(shape, d)
        assert list(first.values()) == [want] * 2, made  # 64^2, 32^2


def test_the_predicted_check_follows_the_line_through_the_last_two_gaps():
    from otgrid.critic.iterate import _CHECK_CELLS, _predicted_interval

    shape = (64, 64)
    # gap 2e-4 at k = 300 after 3e-4 at k = 200: the line reaches 1e-4 100 iterations later,
    # capped by a quarter of the iterations run
    assert _predicted_interval(300, 0, 2e-4, 200, 3e-4, 1e-4, shape) == 75
    assert _predicted_interval(1000, 0, 2e-4, 900, 3e-4, 1e-4, shape) == 100
    assert _predicted_interval(1000, 900, 2e-4, 950, 3e-4, 1e-4, shape) == 25  # k0: this run
    # ... and by the far checks' bound in cell-iterations
    big = (2048, 2048)
    assert _predicted_interval(10**6, 0, 2e-4, 10**6 - 10, 2e-4 + 1e-12, 1e-4, big) == (
        _CHECK_CELLS // (2048 * 2048))
    # nothing to extrapolate: no earlier check in this run, no progress, at the target
    assert _predicted_interval(300, 0, 2e-4, -1, np.inf, 1e-4, shape) == 0
    assert _predicted_interval(300, 250, 2e-4, 200, 3e-4, 1e-4, shape) == 0
    assert _predicted_interval(300, 0, 2e-4, 200, 2e-4, 1e-4, shape) == 0
    assert _predicted_interval(300, 0, 1e-4, 200, 3e-4, 1e-4, shape) == 0


def test_predicted_checks_near_tol_are_fewer_and_reach_the_same_certificate(monkeypatch):
    from otgrid.critic import backend_numpy, iterate

    # the schedule alone: the feasible ascent near tol shortens that phase for both schedules
    monkeypatch.setattr(backend_numpy, "ASCENT_SWEEPS", 0)
    grid = og.Grid([(-6.0, 6.0), (-6.0, 6.0)], (96, 96))
    mu = grid.discretize(og.Normal([0.0, 0.0], 1.0))
    nu = grid.discretize(og.datasets.eight_gaussians())
    runs = {}
    for predict in (False, True):
        monkeypatch.setattr(iterate, "_CHECK_PREDICT", predict)
        seen = []
        res = og.solve_critic(mu, nu, grid, tol=1e-4, multilevel=False,
                              callback=lambda info, seen=seen: seen.append(info))
        assert res.converged and res.upper - res.lower <= 1e-4 * res.upper
        near = [i for i in seen if i.gap <= 3e-4 * i.upper]
        runs[predict] = (res, near)
    (plain, near_plain), (pred, near_pred) = runs[False], runs[True]
    assert len(near_pred) < len(near_plain) / 2
    # the predicted checks land before the gap reaches tol, so the stop is not much later
    assert pred.iterations <= plain.iterations + 2 * 10
    assert abs(pred.w1 - plain.w1) <= 1e-4 * plain.upper


def test_restart_checks_read_the_residual_after_a_problem_leaves(monkeypatch):
    """The restart criterion's ``<u, r>`` (``= |D u|^2``, ``u`` the step's Poisson solution of
    the residual ``r``) uses the residual of the problems still running on the iteration where
    one leaves the batch (it read a fresh uninitialised array there)."""
    from otgrid.critic import iterate as it
    from otgrid.critic.backend_numba import NumbaGridKernels

    # a restart check on every iteration
    monkeypatch.setattr(it, "RESTART_EVERY", {"euclidean": 1, "cityblock": 1})
    errors: list[float] = []
    plain_dot = NumbaGridKernels.dot

    def dot(self, a, b):
        out = plain_dot(self, a, b)
        if a.dtype == np.float32 and b.dtype == np.float64:  # the step's (u, r)
            want = self.grad_sq(a.astype(np.float64))
            errors.append(float(np.max(np.abs(out - want) / want)))
        return out

    monkeypatch.setattr(NumbaGridKernels, "dot", dot)
    grid, mus, nu = _batch_problem()
    res = og.solve_critic(mus, nu, grid, tol=1e-6, backend="numba", multilevel=False)
    assert len({r.iterations for r in res}) >= 2  # problems leave while others run on
    assert len(errors) > 100 and max(errors) < 1e-3


def test_the_loop_runs_with_one_blas_thread():
    """The certificate's dot products are the loop's only BLAS calls, and OpenBLAS's own
    threads slowed solves 1.5-2x on a loaded 2-core machine: the loop limits BLAS to one
    thread, and gives the caller's setting back afterwards."""
    import threadpoolctl  # a dependency of otgrid

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p["user_api"] == "blas"]

    outside = blas_threads()
    if not outside:  # e.g. a NumPy built against a BLAS threadpoolctl does not know
        pytest.skip("no BLAS library that threadpoolctl can see: nothing to limit or check")
    seen: list[list[int]] = []
    grid = og.Grid([(-3.0, 3.0), (-3.0, 3.0)], (24, 24))
    og.solve_critic(_gauss_2d(grid, (0.0, 0.0)), _gauss_2d(grid, (1.0, 0.5)), grid, tol=1e-4,
                    callback=lambda info: seen.append(blas_threads()))
    assert seen and all(t == [1] * len(outside) for t in seen)
    assert blas_threads() == outside


def test_a_start_far_from_the_tolerance_skips_the_check_after_check_every():
    from otgrid.critic import iterate as it

    # the check after next of the far schedule: 10, then sqrt(64 * 10) = 25 more
    assert it._next_interval(0, 0, True, 10, (64, 64), very_far=True) == 35
    assert it._next_interval(0, 0, True, 10, (64, 64), very_far=False) == 10
    assert it._next_interval(0, 0, True, 100, (64, 64), very_far=True) == 200  # 100 + 100
    assert it._next_interval(35, 0, True, 10, (64, 64), very_far=True) == 47  # sqrt(64 * 35)
    big = (1 << 12, 1 << 12)  # far checks 2^25 cell-iterations apart: 2 < check_every
    assert it._next_interval(0, 0, True, 10, big, very_far=True) == 20
    # a cold solve starts at the trivial bounds (gap 1 >> 10 tol): checks at 0, then 35
    grid, mu, nu = wgan_8gaussians(32)
    res = og.solve_critic(mu, nu, grid, tol=1e-4, backend="numba", multilevel=False)
    assert res.history.iteration[:2].tolist() == [0, 35]
    near = og.solve_critic(mu, nu, grid, tol=1e-4, backend="numba", warm_start=res)
    assert near.iterations == 0 and near.converged  # its first check certifies it at once


def test_the_parallel_kernels_dcts_take_numbas_thread_count():
    # a Dask task's thread limit, or the user's numba.set_num_threads, holds for the DCTs too
    import os

    import numba

    from otgrid.critic.backend_numba import PARALLEL_MIN_CELLS

    n = int(np.ceil(np.sqrt(PARALLEL_MIN_CELLS)))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        kern = make_kernels("numba", (n, n), (1.0, 1.0), "euclidean", np.float64)
        assert kern.threads is None and kern.workers == 1
        numba.set_num_threads(before)
        kern.with_batch(1)
        assert kern.workers == max(1, min(os.cpu_count() or 1, before))
    finally:
        numba.set_num_threads(before)
    assert make_kernels("numba", (8, 8), (1.0, 1.0), "euclidean", np.float64).workers == 1


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_flush_zeroes_the_values_below_each_problems_threshold(backend):
    kern = make_kernels(backend, (4, 3), (1.0, 1.0), "euclidean", np.float32)
    y = np.array([[1e-30, -2e-30, 3e-20], [1e-30, -5e-31, 0.5]], dtype=np.float32)
    y = np.broadcast_to(y[:, None, :, None], (2, 2, 3, 3)).copy()
    kern.flush(y, np.array([2.5e-30, 1e-30]))
    np.testing.assert_array_equal(y[0, :, :, 0], np.array([[0, 0, 3e-20]] * 2, np.float32))
    np.testing.assert_array_equal(y[1, :, :, 0], np.array([[1e-30, 0, 0.5]] * 2, np.float32))


def test_relaxed_float32_flows_hold_no_subnormal_values(monkeypatch):
    # where the plain step zeroes a flow value the relaxed one leaves (1 - rho) y, which decays
    # into float32's subnormal range (many times slower arithmetic) unless flushed: 136 such
    # values at this solve's checks without the flush, none with it
    from otgrid.critic import iterate as it

    grid, mu, nu = wgan_8gaussians(64)
    tiny = np.finfo(np.float32).tiny

    def subnormal_counts(flush: float) -> list[int]:
        seen: list[int] = []

        class Counting(it.Best):
            def update(self, cert, ids, c64, f64, y64, *rest):
                seen.append(int(((np.abs(y64) < tiny) & (y64 != 0)).sum()))
                super().update(cert, ids, c64, f64, y64, *rest)

        with monkeypatch.context() as m:
            m.setattr(it, "Best", Counting)
            m.setattr(it, "_FLUSH", flush)
            res = og.solve_critic(mu, nu, grid, tol=1e-6, dtype="float32", backend="numba")
        assert res.converged
        return seen

    assert max(subnormal_counts(it._FLUSH)) == 0
    assert max(subnormal_counts(0.0)) > 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("iso", [True, False])
def test_the_fused_step_and_residual_give_the_two_kernels_bits(dtype, iso):
    from otgrid.kernels import critic_numba as k

    rng = np.random.default_rng(5)
    f = rng.standard_normal((2, 7, 5)).astype(dtype)
    u = (0.1 * rng.standard_normal((2, 7, 5))).astype(np.float32)
    c = rng.standard_normal((2, 7, 5)).astype(dtype)
    y = rng.standard_normal((2, 2, 7, 5)).astype(dtype)
    tau = np.array([0.3, 2.0], dtype=dtype)
    # per-axis dual steps: cityblock on anisotropic cells runs these kernels too (the
    # euclidean norm there runs dual_step_2d_weighted, with the residual apart)
    w = (dtype(1), dtype(1)) if iso else (dtype(1), dtype(0.35))
    args = (tau, 1 / tau, dtype(1.8), dtype(1.7), dtype(0.6), *w, iso)
    outs = []
    # the two passes; fused on one thread; fused on all threads in 1, 2, 3 and more blocks
    # of rows than the batch has (14): the first row of each block after the blocks
    for fused in (None, 0, 1, 2, 3, 20):
        yy, fo, r, r2 = y.copy(), np.empty_like(f), np.empty_like(f), np.empty(f.shape, np.float32)
        if fused is None:
            k.dual_step_2d_serial(f, u, yy, fo, *args)
            k.residual_2d_serial(c, yy, r, r2, *args[3:5])
        elif fused == 0:
            k.dual_step_residual_2d(f, u, yy, fo, *args, c, r, r2)
        else:
            k.dual_step_residual_2d_blocks(f, u, yy, fo, *args, c, r, r2, fused)
        outs.append((yy, fo, r, r2))
    for other in outs[1:]:
        for a, b in zip(outs[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_solves_with_the_fused_residual_give_the_same_bits(monkeypatch, dtype):
    # the one-thread kernels (this 128^2 solve and its coarse levels) fuse the residual into
    # the dual step; the iterates are those of the two passes, to the last bit
    from otgrid.critic import backend_numba

    grid, mu, nu = wgan_8gaussians(128)
    runs = []
    for fused in (True, False):
        monkeypatch.setattr(backend_numba, "FUSED_RESIDUAL", fused)
        res = og.solve_critic(mu, nu, grid, tol=1e-5, dtype=dtype, backend="numba")
        runs.append((res.iterations, res.lower, res.upper, res.history.iteration.tolist()))
    assert runs[0] == runs[1]
