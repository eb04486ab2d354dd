"""Properties of ``solve_critic`` on random small problems (Hypothesis), and its input checks.

Certified bounds make the properties exact statements: two solves of problems with the same W
must give overlapping intervals ``[lower, upper]``, and an independent reference value must lie
inside every interval. Those statements hold whether or not a solve reached its tolerance, so
the solves here are capped at ``MAX_ITER`` (Hypothesis finds measures, e.g. a few point masses on
a 1e-8 background, on which the gap shrinks very slowly) and are not required to converge.

Scaling is tested where the solver computes something different: masses times a factor that is
not a power of two (a power of two would be bit-identical, the solver divides ``c`` by
``max|c|``), and the grid stretched by a length factor (W scales with the unit of length; the
steps and differences see the new cell sizes). The repair sweep of the certificate (one Numba
kernel shared by every backend) is tested by what it guarantees, computed here from the
constraint's definition: feasibility in 1D and for the cityblock norm, fixed points, and cells
moved only as far as their constraint forces.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from references import emd2_cityblock, socp_2d_euclidean_cvxpy, w1_1d_closed_form

import otgrid as og
from otgrid.critic.backends import make_kernels

BACKENDS = ["numpy", "numba"]
NORMS = ["euclidean", "cityblock"]
TOL = 1e-6
MAX_ITER = 20_000
SLACK = 1e-9  # relative slack for bracketing exact references
SOCP_SLACK = 1e-7  # ... and Clarabel's value (solved to 1e-10)
SETTINGS = settings(max_examples=12, deadline=None)


@st.composite
def pair(draw, shape):
    """Two non-negative arrays of ``shape`` with EXACTLY equal totals (possibly sparse).

    Integer counts cross-multiplied by the other total, then scaled by a power of two, so that
    ``sum(mu) == sum(nu)`` and ``mu - nu`` are exact in float64 and the references are exact.
    """
    counts = st.integers(0, 1000)
    a = draw(hnp.arrays(np.int64, shape, elements=counts))
    b = draw(hnp.arrays(np.int64, shape, elements=counts))
    a.flat[draw(st.integers(0, a.size - 1))] += 1  # every measure holds mass
    b.flat[draw(st.integers(0, b.size - 1))] += 1
    mu, nu = a * b.sum(), b * a.sum()  # equal integer totals, < 2**53
    scale = 2.0 ** -int(np.round(np.log2(mu.sum())))
    return mu * scale, nu * scale


@st.composite
def problem_1d(draw):
    n = draw(st.integers(4, 24))
    low = draw(st.floats(-3.0, 0.0))
    width = draw(st.floats(0.5, 5.0))
    mu, nu = draw(pair((n,)))
    return og.Grid((low, low + width), n), mu, nu


@st.composite
def problem_2d(draw):
    shape = (draw(st.integers(2, 7)), draw(st.integers(2, 7)))
    bounds = [(0.0, draw(st.floats(0.5, 3.0))), (-1.0, draw(st.floats(-0.5, 2.0)))]
    mu, nu = draw(pair(shape))
    return og.Grid(bounds, shape), mu, nu


def _centers(grid: og.Grid):
    return tuple(a + (np.arange(n) + 0.5) * h
                 for (a, _), n, h in zip(grid.bounds, grid.shape, grid.dx, strict=True))


def _solve(mu, nu, grid, **kw):
    kw.setdefault("tol", TOL)
    kw.setdefault("max_iter", MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.ConvergenceWarning)
        res = og.solve_critic(mu, nu, grid, **kw)
    assert res.lower <= res.upper * (1 + 1e-12) + 1e-15
    if res.converged:
        assert res.gap <= kw["tol"] * res.upper + 1e-12
    return res


def _assert_same_w(a, b) -> None:
    """Two certified intervals of the same W overlap; the estimates agree to the gaps."""
    assert a.lower <= b.upper * (1 + 1e-12) + 1e-15, (a.lower, b.upper)
    assert b.lower <= a.upper * (1 + 1e-12) + 1e-15, (b.lower, a.upper)
    assert abs(a.w1 - b.w1) <= 0.5 * (a.gap + b.gap) + 1e-12 * max(a.upper, b.upper) + 1e-15


def _assert_brackets(res, ref: float) -> None:
    assert res.lower <= ref * (1 + SLACK) + 1e-15, (res.lower, ref)
    assert res.upper >= ref * (1 - SLACK) - 1e-15, (res.upper, ref)


# ---------------------------------------------------------------------------------------------
# symmetry and sign
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_1d())
def test_symmetry_1d(backend, prob):
    grid, mu, nu = prob
    a = _solve(mu, nu, grid, backend=backend)
    b = _solve(nu, mu, grid, backend=backend)
    _assert_same_w(a, b)
    assert a.lower >= -1e-12 and b.lower >= -1e-12
    # critic(nu, mu) = -critic(mu, nu) on every edge the flow crosses: each difference is
    # within gap / |C_i| of the exact one (C_i = F_mu(i) - F_nu(i))
    C = np.abs(np.cumsum(mu - nu)[:-1])
    mask = C > 1e-3
    da, db = np.diff(a.critic)[mask], np.diff(b.critic)[mask]
    np.testing.assert_array_less(np.abs(da + db), (a.gap + b.gap) / C[mask] + 1e-12)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_2d())
def test_symmetry_and_sign_2d(backend, norm, prob):
    grid, mu, nu = prob
    a = _solve(mu, nu, grid, norm=norm, backend=backend)
    b = _solve(nu, mu, grid, norm=norm, backend=backend)
    _assert_same_w(a, b)
    assert a.lower >= -1e-12 and b.lower >= -1e-12
    # -critic(mu, nu) is a feasible critic for (nu, mu), worth exactly a.lower there
    np.testing.assert_allclose(np.sum((nu - mu) * -a.critic), a.lower, rtol=1e-9, atol=1e-15)
    assert a.lower <= b.upper * (1 + 1e-12) + 1e-15


# ---------------------------------------------------------------------------------------------
# translation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data())
def test_translation_1d(backend, data):
    m = data.draw(st.integers(2, 12), label="support length")
    pad = data.draw(st.integers(1, 8), label="padding")
    mu0, nu0 = data.draw(pair((m,)))
    n = m + pad
    grid = og.Grid((0.0, 0.25 * n), n)
    shift = data.draw(st.integers(1, pad), label="shift")
    mu, nu = np.zeros(n), np.zeros(n)
    mu[:m], nu[:m] = mu0, nu0
    a = _solve(mu, nu, grid, backend=backend)
    b = _solve(np.roll(mu, shift), np.roll(nu, shift), grid, backend=backend)
    _assert_same_w(a, b)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data())
def test_translation_2d(backend, norm, data):
    inner = (data.draw(st.integers(2, 4)), data.draw(st.integers(2, 4)))
    pad = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    mu0, nu0 = data.draw(pair(inner))
    shape = (inner[0] + pad[0], inner[1] + pad[1])
    grid = og.Grid([(0.0, 0.3 * shape[0]), (0.0, 0.2 * shape[1])], shape)
    mu, nu = np.zeros(shape), np.zeros(shape)
    mu[: inner[0], : inner[1]] = mu0
    nu[: inner[0], : inner[1]] = nu0
    shift = (data.draw(st.integers(0, pad[0])), data.draw(st.integers(0, pad[1])))
    a = _solve(mu, nu, grid, norm=norm, backend=backend)
    b = _solve(np.roll(mu, shift, axis=(0, 1)), np.roll(nu, shift, axis=(0, 1)), grid,
               norm=norm, backend=backend)
    _assert_same_w(a, b)


# ---------------------------------------------------------------------------------------------
# bounds bracket independent references; the backends agree
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_1d())
def test_bounds_bracket_closed_form_1d(backend, prob):
    grid, mu, nu = prob
    res = _solve(mu, nu, grid, backend=backend)
    _assert_brackets(res, w1_1d_closed_form(mu, nu, grid.dx[0]))


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_2d())
def test_bounds_bracket_emd2_cityblock(backend, prob):
    grid, mu, nu = prob
    res = _solve(mu, nu, grid, norm="cityblock", backend=backend)
    _assert_brackets(res, emd2_cityblock(mu, nu, _centers(grid)))


@pytest.mark.parametrize("norm", NORMS)
@SETTINGS
@given(prob=problem_2d())
def test_numpy_and_numba_agree(norm, prob):
    grid, mu, nu = prob
    a = _solve(mu, nu, grid, norm=norm, backend="numpy")
    b = _solve(mu, nu, grid, norm=norm, backend="numba")
    assert a.backend == "numpy" and b.backend == "numba"
    _assert_same_w(a, b)


# ---------------------------------------------------------------------------------------------
# scale: W(a mu, a nu) = a W(mu, nu), and W scales with the unit of length
# ---------------------------------------------------------------------------------------------
def _scaled(res, a: float) -> SimpleNamespace:
    """The certified interval of ``res`` (and its estimate and gap) times ``a > 0``."""
    return SimpleNamespace(lower=a * res.lower, upper=a * res.upper, w1=a * res.w1,
                           gap=a * res.gap)


def _not_a_power_of_two(a: float) -> bool:
    return abs(np.log2(a) - np.round(np.log2(a))) > 1e-3


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_2d(), a=st.floats(1e-3, 1e3).filter(_not_a_power_of_two))
def test_mass_scale_equivariance(backend, norm, prob, a):
    # a is not a power of two: a * mu rounds, so the two solves are different computations
    # (the solver divides c by max|c|, which would make a power of two bit-identical)
    grid, mu, nu = prob
    ref = _solve(mu, nu, grid, norm=norm, backend=backend)
    res = _solve(mu * a, nu * a, grid, norm=norm, backend=backend)
    _assert_same_w(_scaled(ref, a), res)
    if norm == "cityblock":
        _assert_brackets(res, emd2_cityblock(mu * a, nu * a, _centers(grid)))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_2d(), s=st.floats(0.2, 8.0).filter(_not_a_power_of_two))
def test_length_scale_equivariance(backend, norm, prob, s):
    # the grid stretched by s: every cost, and so W, is s times larger; the solver works with
    # the cell sizes as they are (steps, differences), so nothing is normalised away
    grid, mu, nu = prob
    stretched = og.Grid([(s * lo, s * hi) for lo, hi in grid.bounds], grid.shape)
    np.testing.assert_allclose(stretched.dx, s * np.asarray(grid.dx), rtol=1e-14)
    ref = _solve(mu, nu, grid, norm=norm, backend=backend)
    res = _solve(mu, nu, stretched, norm=norm, backend=backend)
    _assert_same_w(_scaled(ref, s), res)
    if norm == "cityblock":
        exact = emd2_cityblock(mu, nu, _centers(stretched))
        _assert_brackets(res, exact)
        _assert_brackets(_scaled(ref, s), exact)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_1d(), s=st.floats(0.2, 8.0).filter(_not_a_power_of_two))
def test_length_scale_equivariance_1d(backend, prob, s):
    grid, mu, nu = prob
    (lo, hi), = grid.bounds
    res = _solve(mu, nu, og.Grid((s * lo, s * hi), grid.shape), backend=backend)
    _assert_brackets(res, s * w1_1d_closed_form(mu, nu, grid.dx[0]))


# ---------------------------------------------------------------------------------------------
# the repair sweep of the certificate, by what it guarantees
# ---------------------------------------------------------------------------------------------
def _forward_differences(f: np.ndarray, dx) -> np.ndarray:
    """``(Df)_{k, i} = (f_{i + e_k} - f_i) / dx_k``, zero on the last index of axis ``k``."""
    out = np.zeros((f.ndim, *f.shape))
    for k in range(f.ndim):
        inner = [slice(None)] * f.ndim
        inner[k] = slice(0, -1)
        out[(k, *inner)] = np.diff(f, axis=k) / dx[k]
    return out


def _cell_norms(g: np.ndarray, norm: str) -> np.ndarray:
    return np.sqrt(np.sum(g * g, axis=0)) if norm == "euclidean" else np.max(np.abs(g), axis=0)


def _at_cell(g: np.ndarray, cell: tuple, v: float, dx, norm: str) -> float:
    """``|(Dg)_cell|`` with ``g[cell]`` replaced by ``v`` (its forward neighbours as they are)."""
    comps = []
    for k in range(g.ndim):
        if cell[k] < g.shape[k] - 1:
            nxt = list(cell)
            nxt[k] += 1
            comps.append((g[tuple(nxt)] - v) / dx[k])
    comps = np.asarray(comps or [0.0])
    return float(np.sqrt(np.sum(comps**2)) if norm == "euclidean" else np.max(np.abs(comps)))


@st.composite
def field(draw):
    """A grid function on a 1D or 2D grid, with cell sizes, far from 1-Lipschitz in general."""
    nd = draw(st.integers(1, 2))
    shape = (draw(st.integers(2, 24)),) if nd == 1 else (draw(st.integers(2, 7)),
                                                          draw(st.integers(2, 7)))
    dx = tuple(draw(st.floats(0.05, 4.0)) for _ in range(nd))
    spread = draw(st.sampled_from([0.3, 3.0, 100.0])) * max(dx)
    f = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.0, 1.0)))
    return f * spread, dx


def _repair(f: np.ndarray, dx, norm: str) -> np.ndarray:
    kern = make_kernels("numpy", f.shape, dx, norm, np.float64)
    return kern.repair(f[None].copy())[0]


@pytest.mark.parametrize("norm", NORMS)
@settings(max_examples=60, deadline=None)
@given(prob=field())
def test_repair_moves_a_cell_only_as_far_as_its_constraint_forces(norm, prob):
    """Every cell ``g_i`` is ``f_i`` when the constraint of cell ``i`` (with its final forward
    neighbours) allows it; otherwise the allowed value nearest to ``f_i`` (the constraint binds
    and any step towards ``f_i`` breaks it), or, when no value is allowed (euclidean norm), the
    least violation. In 1D and for the cityblock norm, ``g`` is feasible whatever ``f``."""
    f, dx = prob
    g = _repair(f, dx, norm)
    scale = 1.0 + np.max(np.abs(f)) / min(dx)
    tol = 1e-12 * scale
    norms = _cell_norms(_forward_differences(g, dx), norm)
    if f.ndim == 1 or norm == "cityblock":
        assert norms.max() <= 1 + tol
    for cell in np.ndindex(f.shape):
        if g[cell] == f[cell]:
            continue
        moved = f[cell] - g[cell]
        here_ = _at_cell(g, cell, g[cell], dx, norm)
        np.testing.assert_allclose(here_, norms[cell], rtol=1e-12, atol=tol)
        assert here_ >= 1 - tol, (cell, here_)  # the constraint binds (or cannot be met)
        if abs(moved) <= 1e-9 * scale * min(dx):
            continue  # a rounding-sized move: no direction to test
        step = min(abs(moved) / 2, 1e-6 * min(dx))
        toward = _at_cell(g, cell, g[cell] + np.sign(moved) * step, dx, norm)
        if here_ <= 1 + tol:
            assert toward > 1, (cell, here_, toward)  # nearer f is infeasible
        else:
            assert toward >= here_ - tol, (cell, here_, toward)  # g minimises the violation
            away = _at_cell(g, cell, g[cell] - np.sign(moved) * step, dx, norm)
            assert away >= here_ - tol, (cell, here_, away)


@pytest.mark.parametrize("norm", NORMS)
@settings(max_examples=40, deadline=None)
@given(prob=field())
def test_repair_keeps_a_feasible_critic(norm, prob):
    f, dx = prob
    lip = _cell_norms(_forward_differences(f, dx), norm).max()
    if lip == 0:
        return
    feasible = f / (1.001 * lip)  # strictly inside the constraint...
    # ...unless lip is subnormal (f = [1.5e-323, 0]: lip carries one significant bit)
    assume(_cell_norms(_forward_differences(feasible, dx), norm).max() < 1)
    np.testing.assert_array_equal(_repair(feasible, dx, norm), feasible)


def test_repair_can_lower_the_certified_value():
    """The repair is a candidate, not an improvement: its value can be below the rescaled
    iterate's, which is why the certificate keeps the best of both (1D, dx = 1)."""
    f, c = np.array([0.0, 0.0, 1.5]), np.array([1.0, -1.0, 0.0])
    g = _repair(f, (1.0,), "euclidean")
    np.testing.assert_array_equal(g, [0.0, 0.5, 1.5])
    assert c @ g < c @ (f / 1.5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tiny", [1e-100, 1e-160, 1e-200, 1e-300])
def test_tiny_masses_1d(backend, tiny):
    # found by Hypothesis: masses of 1e-230 gave a ZeroDivisionError in the default step
    grid = og.Grid((0.0, 1.0), 4)
    mu = np.array([1.0, tiny, 0.0, 0.0])
    nu = np.array([1.0, 0.0, 0.0, tiny])  # sum(mu) == sum(nu) exactly; W = tiny * 2 * dx
    res = _solve(mu, nu, grid, backend=backend)
    _assert_brackets(res, tiny * 2 * 0.25)
    assert res.converged


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tiny", [1e-100, 1e-160, 1e-200, 1e-300])
def test_tiny_masses_2d(backend, norm, tiny):
    # the same with two cells exchanging a tiny mass across the diagonal of a 2 x 2 grid;
    # W is homogeneous, so the reference is tiny * W(unit problem), computed independently
    grid = og.Grid([(0.0, 1.0), (0.0, 1.0)], (2, 2))
    unit_mu = np.array([[0.0, 1.0], [0.0, 0.0]])
    unit_nu = np.array([[0.0, 0.0], [1.0, 0.0]])
    if norm == "cityblock":
        unit = emd2_cityblock(unit_mu, unit_nu, _centers(grid))  # = 1.0 (L1 distance)
    else:
        unit = socp_2d_euclidean_cvxpy(unit_mu, unit_nu, grid.dx).value  # = sqrt(2) / 2
    mu = np.array([[1.0, tiny], [0.0, 0.0]])
    nu = np.array([[1.0, 0.0], [tiny, 0.0]])
    res = _solve(mu, nu, grid, norm=norm, backend=backend)
    assert res.lower >= 0.0
    assert res.lower <= tiny * unit * (1 + SOCP_SLACK)
    assert res.upper >= tiny * unit * (1 - SOCP_SLACK)
    assert res.converged


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def _good():
    grid = og.Grid([(0.0, 1.0), (0.0, 2.0)], (4, 5))
    rng = np.random.default_rng(0)
    mu, nu = rng.random(grid.shape), rng.random(grid.shape)
    return grid, mu / mu.sum(), nu / nu.sum()


def test_good_input_solves():
    grid, mu, nu = _good()
    _solve(mu, nu, grid, backend="numpy")


@pytest.mark.parametrize("which", ["mu", "nu"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_mass_raises(which, bad):
    grid, mu, nu = _good()
    arrays = {"mu": mu, "nu": nu}
    arrays[which][1, 2] = bad
    with pytest.raises(ValueError, match=which):
        og.solve_critic(arrays["mu"], arrays["nu"], grid)


@pytest.mark.parametrize("which", ["mu", "nu"])
def test_negative_mass_raises(which):
    grid, mu, nu = _good()
    arrays = {"mu": mu, "nu": nu}
    arrays[which][0, 0] = -0.1
    with pytest.raises(ValueError, match=rf"{which}.*negative|negative.*{which}"):
        og.solve_critic(arrays["mu"], arrays["nu"], grid)


def test_unequal_totals_raise():
    grid, mu, nu = _good()
    with pytest.raises(ValueError, match=r"(?s)mu.*nu.*total|total.*mu.*nu"):
        og.solve_critic(mu, 2 * nu, grid)


@pytest.mark.parametrize("which", ["mu", "nu"])
@pytest.mark.parametrize("shape", [(5, 4), (20,), (4, 5, 1)])
def test_wrong_shape_raises(which, shape):
    grid, mu, nu = _good()
    arrays = {"mu": mu, "nu": nu}
    arrays[which] = np.full(shape, 1.0 / np.prod(shape))
    with pytest.raises(ValueError, match=rf"(?s){which}.*shape"):
        og.solve_critic(arrays["mu"], arrays["nu"], grid)


def test_zero_mass_raises():
    grid, mu, _ = _good()
    with pytest.raises(ValueError, match="nu"):
        og.solve_critic(mu, np.zeros(grid.shape), grid)


def test_unknown_norm_raises():
    grid, mu, nu = _good()
    with pytest.raises(ValueError, match=r"(?s)norm.*'euclidean'.*'cityblock'.*'manhattan'"):
        og.solve_critic(mu, nu, grid, norm="manhattan")


def test_unknown_backend_raises():
    grid, mu, nu = _good()
    with pytest.raises(ValueError, match=r"(?s)backend.*'numpy'.*'numba'.*'fortran'"):
        og.solve_critic(mu, nu, grid, backend="fortran")


@pytest.mark.parametrize("tol", [0.0, -1e-6, np.nan])
def test_bad_tol_raises(tol):
    grid, mu, nu = _good()
    with pytest.raises(ValueError, match="tol"):
        og.solve_critic(mu, nu, grid, tol=tol)


@pytest.mark.parametrize("grid", [None, ((0.0, 1.0), (0.0, 2.0)), (4, 5), "grid"])
def test_grid_must_be_a_grid(grid):
    _, mu, nu = _good()
    with pytest.raises(TypeError, match="grid"):
        og.solve_critic(mu, nu, grid)


def test_warm_start_must_be_a_result():
    grid, mu, nu = _good()
    with pytest.raises(TypeError, match="warm_start"):
        og.solve_critic(mu, nu, grid, warm_start=np.zeros(grid.shape))
