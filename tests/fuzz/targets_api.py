"""Fuzz targets of the public Python API: :class:`otgrid.Grid`, :func:`otgrid.solve_critic`,
:func:`otgrid.sinkhorn` and :func:`otgrid.smooth_ot`.

Inputs are random shapes, dtypes, values (NaN, inf, huge, tiny, subnormal, negative), grids that
do not match the masses, and option values in and out of their domains. The property: a result,
or a ``ValueError``/``TypeError`` raised by otgrid with a one-line message (a ``RuntimeError``
only for ``backend="cuda"`` on a machine without a usable GPU, as documented).

Accepted grid solves are checked against an independent reference: in 1D the closed form
``W = sum_i |F_mu(i) - F_nu(i)| dx`` (cumulative sums, ``math.fsum``); in 2D with
``norm="cityblock"`` the exact LP value from POT's network simplex (``ot.emd2``) on the cell
centres with the L1 ground cost. A certified ``[lower, upper]`` that excludes the reference is a
``wrong`` outcome whatever the status; a ``converged`` status with a gap above ``tol`` is also
``wrong``. Point-cloud solves are checked for finite values and, for the Sinkhorn transport cost,
against the unregularized optimum (it cannot be below it).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from fuzz.harness import Outcome, Target, classify_exception
from hypothesis import strategies as st

# --------------------------------------------------------------------------- values
_BAD_NUMBERS = [np.nan, np.inf, -np.inf, -1.0, 1e300, -1e300, 1e-320]
_FLOAT_OPTION = {
    "tol": ([1e-2, 1e-4, 1e-6, 1e-9, 1e-13], [0.0, 1.0, -1e-3, np.nan, np.inf, 10.0, "1e-3",
                                               None, True]),
    "max_iter": ([1, 3, 40, 3000], [0, -1, 1.5, "10", None, 10**30, np.int64(-3)]),
    "check_every": ([1, 5, 10], [0, -2, 0.5, "x"]),
    "step": ([None, None, 0.5, 2.0], [0.0, -1.0, np.nan, np.inf, "x"]),
    "time_limit": ([None, None, 5.0], [0.0, -1.0, np.nan, "x"]),
}
_CHOICE_OPTION = {
    "norm": (["euclidean", "cityblock"], ["l2", "L1", "", None, 2]),
    "backend": (["auto", "numpy", "numba"], ["cuda", "gpu", "", None, "NUMPY"]),
    "dtype": ([np.float64, np.float32], [np.int64, np.float16, "float32", "complex128", None,
                                         object]),
    "multilevel": (["auto", True, False], ["yes", 2]),
}
_MASS_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex128,
                np.longdouble, object, "<U3"]


@st.composite
def grids(draw: Any) -> dict:
    """A small 1D or 2D grid: bounds (anisotropic, offset, tiny or huge cells) and shape."""
    ndim = draw(st.sampled_from([1, 1, 2, 2, 2]))
    limit = 24 if ndim == 1 else 8
    shape = tuple(draw(st.integers(2, limit)) for _ in range(ndim))
    bounds = []
    for _ in range(ndim):
        low = draw(st.one_of(st.floats(-10, 10), st.sampled_from([0.0, -1e6, 1e6, 1e-12])))
        width = draw(st.one_of(st.floats(1e-3, 20),
                               st.sampled_from([1.0, 1e-9, 1e-4, 1e4, 1e9, 100.0, 1e-30,
                                                1e30])))
        bounds.append((float(low), float(low + width)))
    if any(not (hi > lo) for lo, hi in bounds):         # width lost to rounding
        bounds = [(lo, lo + 1.0) for lo, _ in bounds]
    return {"bounds": bounds, "shape": shape}


@st.composite
def _clean_masses(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Non-negative float64 masses on ``shape``: spread, sparse, one atom, tiny or huge."""
    n = math.prod(shape)
    form = draw(st.sampled_from(["spread", "sparse", "atom", "tiny", "huge", "integer"]))
    if form == "atom":
        m = np.zeros(n)
        m[draw(st.integers(0, n - 1))] = 1.0
    elif form == "integer":
        m = np.array(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)), float)
    else:
        m = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
        if form == "sparse":
            m[np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))] = 0.0
    if m.sum() == 0:
        m[draw(st.integers(0, n - 1))] = 1.0
    scale = {"tiny": draw(st.sampled_from([1e-300, 1e-200, 1e-30])),
             "huge": draw(st.sampled_from([1e30, 1e200, 1e300]))}.get(form, 1.0)
    return (m / m.sum() * scale).reshape(shape)


def _balanced(mu: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """``nu`` rescaled to ``mu``'s total (the API asks for equal totals)."""
    with np.errstate(all="ignore"):     # tiny or huge totals: a bad input in its own right
        return nu * (mu.sum() / nu.sum())


_CORRUPTIONS = ["none"] * 16 + ["nan", "inf", "negative", "unequal", "zero", "dtype", "shape",
                              "transposed", "batch", "list", "scalar", "mismatch", "big"]


def _corrupt(kind: str, mu: np.ndarray, nu: np.ndarray, draw: Any) -> tuple[Any, Any]:
    """Make the masses bad in one way (``kind``); the grid stays as drawn."""
    mu, nu = mu.copy(), nu.copy()
    flat = nu.reshape(-1)
    if kind in ("nan", "inf", "negative"):
        flat[draw(st.integers(0, flat.size - 1))] = {"nan": np.nan, "inf": np.inf,
                                                      "negative": -0.25 * flat.max() - 1e-3}[kind]
    elif kind == "unequal":
        nu = nu * draw(st.sampled_from([0.5, 1 + 1e-6, 1 + 1e-12, 2.0]))
    elif kind == "zero":
        mu, nu = np.zeros_like(mu), np.zeros_like(nu)
    elif kind == "dtype":
        dtype = np.dtype(draw(st.sampled_from(_MASS_DTYPES)))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            nu = nu.astype(dtype)
    elif kind == "shape":
        nu = np.append(nu.reshape(-1), 0.0)
    elif kind == "transposed" and nu.ndim == 2:
        nu = nu.T.copy()
    elif kind == "batch":
        nu = np.stack([nu] * draw(st.integers(1, 3)))
        if draw(st.booleans()):
            mu = np.stack([mu] * draw(st.integers(1, 4)))
    elif kind == "list":
        nu = nu.tolist()
    elif kind == "scalar":
        nu = float(nu.sum())
    elif kind == "big":
        with np.errstate(over="ignore"):
            nu, mu = nu * 1e308, mu * 1e308
    return mu, nu


@st.composite
def solve_inputs(draw: Any) -> dict:
    """A grid, masses (good or corrupted) and options of :func:`otgrid.solve_critic`."""
    g = draw(grids())
    shape = g["shape"]
    mu = draw(_clean_masses(shape))
    nu = _balanced(mu, draw(_clean_masses(shape)))
    corruption = draw(st.sampled_from(_CORRUPTIONS))
    if corruption == "mismatch":           # masses of another grid's shape
        other = draw(grids())
        mu = draw(_clean_masses(other["shape"]))
        nu = _balanced(mu, draw(_clean_masses(other["shape"])))
    else:
        mu, nu = _corrupt(corruption, mu, nu, draw)
    options: dict[str, Any] = {"max_iter": 3000, "tol": 1e-6, "time_limit": 10.0}
    table = {**_FLOAT_OPTION, **_CHOICE_OPTION}
    for name, (good, _) in table.items():
        if draw(st.integers(0, 2)) == 0:
            options[name] = draw(st.sampled_from(good))
    if corruption == "none" and draw(st.integers(0, 3)) == 0:   # one bad option value
        name = draw(st.sampled_from(sorted(table)))
        options[name] = draw(st.sampled_from(table[name][1]))
    if options.get("dtype") is np.float32 and isinstance(options.get("tol"), float) \
            and options["tol"] < 1e-6:
        options["tol"] = 1e-6      # a float32 solve to 1e-13 goes on in float64 (slow, fine)
    return {"grid": g, "mu": mu, "nu": nu, "options": options, "corruption": corruption}


# --------------------------------------------------------------------------- references
def reference_w(mu: np.ndarray, nu: np.ndarray, grid: Any, norm: str) -> float | None:
    """W of the grid problem from an independent method, or None where none is exact:
    1D closed form, 2D cityblock network simplex (POT)."""
    mu = np.asarray(mu, dtype=np.float64)
    nu = np.asarray(nu, dtype=np.float64)
    if grid.ndim == 1:
        cdf = np.cumsum(mu) - np.cumsum(nu)
        return math.fsum(np.abs(cdf[:-1]) * grid.dx[0])
    if grid.ndim == 2 and norm == "cityblock":
        import ot

        # centres from the cell indices and dx: the grid's own coordinates (up to 1e150) would
        # lose the cell size to cancellation (cells of 1e-4 at 1e6: 2e-6 relative error)
        # -- in units of a power of two near the largest cell (exact): POT's network simplex
        # has absolute tolerances, and on costs around 1e-15 its optimum came out 1.48 times
        # too large
        unit = math.ldexp(1.0, math.frexp(max(grid.dx))[1])
        offsets = [(np.arange(n) + 0.5) * (h / unit)
                   for n, h in zip(grid.shape, grid.dx, strict=True)]
        centres = np.stack(np.meshgrid(*offsets, indexing="ij"), axis=-1).reshape(-1, 2)
        cost = ot.dist(centres, centres, metric="cityblock")
        a, b = mu.reshape(-1), nu.reshape(-1)
        scale = a.sum()
        if not (0 < scale < np.inf):
            return None
        return float(ot.emd2(a / scale, b / b.sum(), cost, numItermax=10**7)) * scale * unit
    return None


def check_critic_result(res: Any, mu: Any, nu: Any, grid: Any, options: dict) -> Outcome:
    """Invariants of an accepted solve, and its bounds against the reference value."""
    results = res if isinstance(res, list) else [res]
    mus = np.broadcast_to(np.asarray(mu, float), (len(results), *grid.shape)) \
        if np.ndim(mu) > grid.ndim or isinstance(res, list) else [np.asarray(mu, float)]
    nus = np.broadcast_to(np.asarray(nu, float), (len(results), *grid.shape)) \
        if np.ndim(nu) > grid.ndim or isinstance(res, list) else [np.asarray(nu, float)]
    norm = options.get("norm", "euclidean")
    tol = float(options.get("tol", 1e-6))
    checked = False
    for r, m, n in zip(results, mus, nus, strict=True):
        lo, hi, w = r.lower, r.upper, r.w1
        if not (np.isfinite([lo, hi, w]).all() and 0 <= lo <= w <= hi):
            return Outcome("wrong", f"bounds {lo!r} <= {w!r} <= {hi!r} do not hold "
                           f"({r.status}, {grid!r})")
        if r.converged and hi > 0 and (hi - lo) > tol * hi * (1 + 1e-9):
            return Outcome("wrong", f"converged with gap {(hi - lo) / hi:.3g} > tol {tol}")
        if not np.all(np.isfinite(r.critic)):
            return Outcome("wrong", "non-finite critic")
        ref = reference_w(m, n, grid, norm)
        if ref is None:
            continue
        checked = True
        diameter = math.fsum(b - a for a, b in grid.bounds)
        slack = 1e-9 * float(np.sum(m)) * diameter + 1e-12 * ref
        if not (lo - slack <= ref <= hi + slack):
            return Outcome("wrong", f"reference W {ref!r} outside [{lo!r}, {hi!r}] "
                           f"({r.status}, {norm}, {grid!r}, total {float(np.sum(m))!r})")
    return Outcome("ok", checked=checked)


# --------------------------------------------------------------------------- runners
def _classify(exc: BaseException, options: dict) -> Outcome:
    """A clean error, counting the documented RuntimeError of an unusable CUDA backend."""
    if (isinstance(exc, RuntimeError) and options.get("backend") == "cuda"
            and "cannot run here" in str(exc) and "\n" not in str(exc)):
        return Outcome("error", f"RuntimeError: {exc}"[:200])
    out = classify_exception(exc)
    if out.kind == "error" and "\n" in str(exc):
        return Outcome("crash", f"multi-line message: {exc!r}"[:600])
    return out


def run_solve(example: dict) -> Outcome:
    """``Grid(bounds, shape)`` then ``solve_critic(mu, nu, grid, **options)``."""
    import otgrid as og

    options = example["options"]
    try:
        grid = og.Grid(example["grid"]["bounds"], example["grid"]["shape"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", og.ConvergenceWarning)
            res = og.solve_critic(example["mu"], example["nu"], grid, **options)
    except Exception as exc:  # the property: a clean, one-line error only
        return _classify(exc, options)
    return check_critic_result(res, example["mu"], example["nu"], grid, options)


SOLVE = Target("solve_critic", solve_inputs(), run_solve, weight=4.0, timeout=60.0)


@st.composite
def grid_inputs(draw: Any) -> dict:
    """Arguments of :class:`otgrid.Grid` and a distribution to discretize on it."""
    value = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from([0.0, 1.0, -1.0, 1e150, 1e151, 5e-324, 1e-300]))
    pair = st.one_of(st.tuples(value, value), st.lists(value, max_size=3),
                     st.sampled_from(["ab", None, (1, "2"), (0, 1)]))
    if draw(st.booleans()):      # valid bounds and shape, extreme values
        ndim = draw(st.integers(1, 3))
        low = draw(st.one_of(st.floats(-1e150, 1e150), st.floats(-10, 10)))
        width = draw(st.one_of(st.floats(1e-12, 1e3), st.sampled_from([1e-150, 1e150, 2e150])))
        bounds = [(low, low + width)] * ndim
        shape = draw(st.integers(2, 60 if ndim == 1 else 12))
    else:
        bounds = draw(st.one_of(st.lists(pair, max_size=4), pair,
                                st.sampled_from([None, 3, "x"]), st.just(np.zeros((2, 2))),
                                st.just([(0, 1)] * 2)))
        shape = draw(st.one_of(st.integers(-2, 40), st.lists(st.integers(-1, 40), max_size=4),
                               st.sampled_from([0, 1, 2.5, "8", None, 10**12, (10**6, 10**6),
                                                np.int64(8), True])))
    dist = draw(st.sampled_from([("normal", 0.0), ("normal", 1e6), ("normal", 1e-9),
                                 ("uniform", 0.5), ("point", 0.25)]))
    return {"bounds": bounds, "shape": shape, "dist": dist}


def run_grid(example: dict) -> Outcome:
    """``Grid(bounds, shape)``, its cell centres, and a distribution's masses on it."""
    import otgrid as og

    try:
        grid = og.Grid(example["bounds"], example["shape"])
    except Exception as exc:  # the property: a clean, one-line error only
        return _classify(exc, {})
    if not (all(d > 0 and math.isfinite(d) for d in grid.dx)
            and all(np.all(np.isfinite(c)) for c in grid.centers)):
        return Outcome("wrong", f"{grid!r}: dx {grid.dx}, centres finite: "
                       f"{[bool(np.all(np.isfinite(c))) for c in grid.centers]}")
    if grid.ndim > 3 or math.prod(grid.shape) > 10**6:
        return Outcome("ok")
    kind, loc = example["dist"]
    centre = [loc] * grid.ndim
    dist = {"normal": lambda: og.Normal(centre, 1.0), "uniform": lambda: og.Uniform(
        [c - 0.1 for c in centre], [c + 0.1 for c in centre]),
        "point": lambda: og.PointMass(centre)}[kind]()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", og.OutsideMassWarning)
            masses = grid.discretize(dist, outside="renormalize")
    except Exception as exc:  # the property: a clean, one-line error only
        return _classify(exc, {})
    total = float(np.sum(masses))
    if not (masses.shape == grid.shape and np.all(np.isfinite(masses)) and masses.min() >= 0
            and abs(total - 1) <= 1e-9):
        return Outcome("wrong", f"masses of {dist!r} on {grid!r}: shape {masses.shape}, "
                       f"min {masses.min()!r}, total {total!r}")
    return Outcome("ok")


GRID = Target("Grid and discretize", grid_inputs(), run_grid, weight=2.0, timeout=60.0)


@st.composite
def cloud_inputs(draw: Any) -> dict:
    """Point clouds, weights and options of :func:`otgrid.sinkhorn` / :func:`otgrid.smooth_ot`."""
    n, m = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    d = draw(st.integers(1, 3))
    coord = st.floats(-5, 5)
    x = np.array(draw(st.lists(st.lists(coord, min_size=d, max_size=d), min_size=n,
                               max_size=n)))
    y = np.array(draw(st.lists(st.lists(coord, min_size=d, max_size=d), min_size=m,
                               max_size=m)))
    a = b = None
    if draw(st.booleans()):
        a = np.array(draw(st.lists(st.floats(0.01, 1), min_size=n, max_size=n)))
        b = np.array(draw(st.lists(st.floats(0.01, 1), min_size=m, max_size=m)))
        b = b * (a.sum() / b.sum())
    corruption = draw(st.sampled_from(["none"] * 6 + ["nan_x", "inf_y", "neg_a", "dim",
                                                      "empty", "huge", "unequal"]))
    if corruption == "nan_x":
        x[0, 0] = np.nan
    elif corruption == "inf_y":
        y[-1, -1] = np.inf
    elif corruption == "neg_a":
        a = -np.ones(n)
    elif corruption == "dim":
        y = np.zeros((m, d + 1))
    elif corruption == "empty":
        x = np.zeros((0, d))
    elif corruption == "huge":
        x = x * 1e200
    elif corruption == "unequal" and a is not None:
        b = b * 2.0
    reg = draw(st.one_of(st.sampled_from([1e-3, 1e-2, 0.1, 1.0]),
                         st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e-300, "x"])))
    return {"fn": draw(st.sampled_from(["sinkhorn", "smooth_ot"])), "x": x, "y": y, "a": a,
            "b": b, "reg": reg, "cost": draw(st.sampled_from(["euclidean", "sqeuclidean",
                                                              "cityblock", "l3"])),
            "backend": draw(st.sampled_from(["auto", "numpy", "numba", "bogus"]))}


def run_cloud(example: dict) -> Outcome:
    """A regularized point-cloud solve: finite values, or a clean error."""
    import otgrid as og

    fn = getattr(og, example["fn"])
    options = {"reg": example["reg"], "cost": example["cost"], "backend": example["backend"],
               "max_iter": 2000}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", og.ConvergenceWarning)
            res = fn(example["x"], example["y"], example["a"], example["b"], **options)
    except Exception as exc:  # the property: a clean, one-line error only
        return _classify(exc, options)
    values = [res.transport_cost, res.objective]
    if not (np.all(np.isfinite(res.f)) and np.all(np.isfinite(res.g))
            and np.all(np.isfinite(values))):
        return Outcome("wrong", f"{example['fn']} returned non-finite values (status "
                       f"{res.status}): cost {res.transport_cost!r}")
    return _check_cloud_cost(res, example)


def _check_cloud_cost(res: Any, example: dict) -> Outcome:
    """The plan's transport cost lies between the unregularized optimum (POT's network
    simplex) and the largest cost, up to what the plan's marginal error allows. (POT's
    network simplex has absolute tolerances: on clouds scaled by 1e-15 its optimum came out
    1.48 times the scaled one, by 1e-10 1.00005 times; the clouds drawn here have coordinates
    of moderate size.) The costs come from SciPy's ``cdist``, which subtracts the points:
    POT's ``dist`` expands ``|x|^2 + |y|^2 - 2 x.y``, which left 4e-8 between two equal
    points (and flagged otgrid's exact 0 as wrong)."""
    import ot
    from scipy.spatial.distance import cdist

    x, y = example["x"], example["y"]
    n, m = len(x), len(y)
    a = np.full(n, 1.0 / n) if example["a"] is None else example["a"] / example["a"].sum()
    b = np.full(m, 1.0 / m) if example["b"] is None else example["b"] / example["b"].sum()
    metric = {"euclidean": "euclidean", "sqeuclidean": "sqeuclidean",
              "cityblock": "cityblock"}[example["cost"]]
    cost = cdist(x, y, metric=metric)
    exact = float(ot.emd2(a, b, cost))
    mass = 1.0 if example["a"] is None else float(example["a"].sum())
    per_mass = float(res.transport_cost) / mass
    slack = (float(res.marginal_error) + 1e-6) * float(cost.max()) + 1e-12
    if not (exact - slack <= per_mass <= float(cost.max()) + slack):
        return Outcome("wrong", f"{example['fn']} transport cost per unit mass {per_mass!r} "
                       f"outside [{exact!r}, {float(cost.max())!r}] (exact OT, largest cost; "
                       f"status {res.status}, marginal error {res.marginal_error!r}, "
                       f"reg {example['reg']!r})")
    return Outcome("ok", checked=True)


CLOUD = Target("sinkhorn and smooth_ot", cloud_inputs(), run_cloud, weight=2.0,
               timeout=60.0)
