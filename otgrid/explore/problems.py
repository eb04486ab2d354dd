"""The problems of the explorer: presets, distributions from specs or dragged modes, grids.

A measure comes from the page as a spec in the command line's grammar
(:mod:`otgrid.grid.spec`, parsed, never evaluated) or as a list of Gaussian modes that the
user drags (``{"x": centre, "std": width, "w": weight}``), which is turned into the same
grammar (:func:`modes_to_spec`) so that the page always shows the text of what is solved.
Two names describe a pair of measures by themselves and stand in the first box alone:
``parallel_lines(theta)`` (the grammar's) and ``funnel_pair(n)`` (the explorer's name for
:func:`otgrid.grid.datasets.funnel_pair`). Sample files (``.npy``) are refused: the page may
not name files on the server.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from otgrid.errors import InsufficientMemoryError, OutsideMassError
from otgrid.grid.datasets import funnel_pair, parallel_lines
from otgrid.grid.distributions import Distribution, Mixture, Normal
from otgrid.grid.grid import Grid, bounds_holding
from otgrid.grid.spec import parse_distribution, parse_parallel_lines

__all__ = ["PRESETS", "Preset", "Problem", "ProblemError", "build_problem", "build_target",
           "discretize", "make_grid", "modes_to_spec"]

MAX_SPEC_LENGTH = 2000
MAX_MODES = 64
MAX_CELLS = {1: 1 << 16, 2: 512 * 512}
SHAPES = {1: (32, 64, 128, 256, 512, 1024, 2048, 4096), 2: (16, 32, 48, 64, 96, 128, 192, 256,
                                                           384, 512)}
OUTSIDE = ("renormalize", "fold", "auto", "raise")
_FUNNELS = re.compile(r"^\s*funnel_pair\(\s*(\d{1,3})\s*(?:,\s*seed\s*=\s*(\d{1,9})\s*)?\)\s*$")


class ProblemError(ValueError):
    """Bad input from the page: ``field`` names the input it concerns (``"mu"``, ``"nu"``,
    ``"grid"``, ...), the message is shown next to it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Preset:
    """A ready-made pair of measures: specs in the grammar and, optionally, grid bounds."""

    label: str
    mu: str
    nu: str = ""
    bounds: tuple[tuple[float, float], ...] | None = None


PRESETS: dict[str, Preset] = {
    "gaussians-1d": Preset("Two Gaussians (1D)", "normal(-1, std=0.6)", "normal(1.5, std=0.8)"),
    "mixture-1d": Preset("Mixture vs Gaussian (1D)",
                         "mixture(0.3*normal(-2, std=0.4), 0.7*normal(1, std=0.6))",
                         "normal(0, std=1)"),
    "gaussians-2d": Preset("Two Gaussians (2D)", "normal([-1.5, 0], std=0.6)",
                           "normal([1.5, 0.5], std=0.8)", ((-6.0, 6.0), (-6.0, 6.0))),
    "mixture-2d": Preset("Mixture vs Gaussian (2D)",
                         "mixture(normal([-1.5, -1], std=0.5), normal([1.5, 1.5], std=0.7), "
                         "normal([1.5, -1.5], std=0.4))", "normal([0, 0], std=1)",
                         ((-5.0, 5.0), (-5.0, 5.0))),
    "8gaussians": Preset("8gaussians vs N(0, I)", "8gaussians", "normal([0, 0], 1)"),
    "25gaussians": Preset("25gaussians vs N(0, I)", "25gaussians", "normal([0, 0], 1)"),
    "swissroll": Preset("swissroll vs N(0, I)", "swissroll", "normal([0, 0], 1)"),
    "parallel-lines": Preset("Parallel lines, theta = 0.5 (W = 0.5)", "parallel_lines(0.5)", "",
                             ((-0.5, 1.0), (-0.25, 1.25))),
    "funnels": Preset("Funnel pair, 4 funnels (known W)", "funnel_pair(4)", "",
                      ((-2.5, 2.5), (-2.5, 2.5))),
}


@dataclass
class Problem:
    """Two measures of one dimension, with what the page shows about them.

    Attributes
    ----------
    mu, nu : Distribution
        The measures (``mu``: where the critic is high).
    ndim : int
    specs : dict
        ``{"mu": text, "nu": text}`` in the grammar (``nu`` empty for a pair).
    modes : dict
        ``{"mu": list or None, "nu": ...}``: the draggable Gaussian modes of each measure
        (None when it is not a mixture of isotropic Gaussians).
    known : dict or None
        ``{"label": ..., "value": ...}``: a W known in closed form (parallel lines, funnels).
    default_bounds : list of (float, float) or None
        Bounds that suit the problem (a preset's or the funnel box), used when none are given.
    """

    mu: Distribution
    nu: Distribution
    ndim: int
    specs: dict[str, str]
    modes: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)
    known: dict[str, Any] | None = None
    default_bounds: list[tuple[float, float]] | None = None


# --------------------------------------------------------------------------- modes <-> specs
def _num(v: float) -> str:
    text = f"{float(v):.6g}"
    return "0" if text == "-0" else text


def _check_modes(modes: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(modes, list) or not modes:
        raise ProblemError(name, f"{name}: modes must be a non-empty list.")
    if len(modes) > MAX_MODES:
        raise ProblemError(name, f"{name}: at most {MAX_MODES} modes; got {len(modes)}.")
    out = []
    dims = set()
    for k, m in enumerate(modes):
        try:
            x = [float(v) for v in np.atleast_1d(np.asarray(m["x"], dtype=float))]
            std, w = float(m["std"]), float(m.get("w", 1.0))
        except (KeyError, TypeError, ValueError):
            raise ProblemError(name, f"{name}: mode {k} needs numbers x, std and w.") from None
        if not all(math.isfinite(v) and abs(v) < 1e6 for v in [*x, std, w]):
            raise ProblemError(name, f"{name}: mode {k} has a non-finite or huge number.")
        if std <= 0 or w <= 0:
            raise ProblemError(name, f"{name}: mode {k} needs std > 0 and w > 0.")
        dims.add(len(x))
        out.append({"x": x, "std": std, "w": w})
    if len(dims) != 1 or dims.pop() not in (1, 2):
        raise ProblemError(name, f"{name}: every mode needs the same 1 or 2 coordinates.")
    return out


def modes_to_spec(modes: list[dict[str, Any]]) -> str:
    """The grammar's text of a mixture of isotropic Gaussian modes.

    Parameters
    ----------
    modes : list of dict
        ``{"x": centre (number or [x, y]), "std": standard deviation, "w": weight}``.

    Returns
    -------
    str
        ``normal(x, std=s)`` for one mode, ``mixture(w1*normal(...), ...)`` otherwise
        (weights normalised).

    Examples
    --------
    >>> from otgrid.explore.problems import modes_to_spec
    >>> modes_to_spec([{"x": [0, 1], "std": 0.5, "w": 1}])
    'normal([0, 1], std=0.5)'
    >>> modes_to_spec([{"x": -1, "std": 1, "w": 1}, {"x": 2, "std": 0.5, "w": 3}])
    'mixture(0.25*normal(-1, std=1), 0.75*normal(2, std=0.5))'
    """
    def one(m: dict[str, Any]) -> str:
        x = np.atleast_1d(np.asarray(m["x"], dtype=float))
        centre = _num(x[0]) if x.size == 1 else "[" + ", ".join(_num(v) for v in x) + "]"
        return f"normal({centre}, std={_num(m['std'])})"

    if len(modes) == 1:
        return one(modes[0])
    total = sum(float(m.get("w", 1.0)) for m in modes)
    return "mixture(" + ", ".join(f"{_num(float(m.get('w', 1.0)) / total)}*{one(m)}"
                                  for m in modes) + ")"


def _isotropic(d: Distribution) -> dict[str, Any] | None:
    if not isinstance(d, Normal):
        return None
    cov = np.asarray(d.cov, dtype=float)
    var = cov[0, 0]
    if not np.allclose(cov, var * np.eye(d.ndim), rtol=1e-12, atol=0.0):
        return None
    x = d.mean.tolist()
    return {"x": x[0] if d.ndim == 1 else x, "std": float(np.sqrt(var)), "w": 1.0}


def spec_modes(dist: Distribution) -> list[dict[str, Any]] | None:
    """The draggable modes of a Gaussian or a mixture of isotropic Gaussians, else None.

    Parameters
    ----------
    dist : Distribution

    Returns
    -------
    list of dict or None
        ``{"x", "std", "w"}`` per mode (at most :data:`MAX_MODES`).
    """
    parts = [(dist, 1.0)]
    if isinstance(dist, Mixture):
        parts = list(zip(dist.components, dist.weights.tolist(), strict=True))
    if len(parts) > MAX_MODES:
        return None
    out = []
    for comp, w in parts:
        m = _isotropic(comp)
        if m is None:
            return None
        out.append({**m, "w": float(w)})
    return out


# --------------------------------------------------------------------------- parsing
def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ProblemError(name, f"{name}: the spec must be text.")
    if len(value) > MAX_SPEC_LENGTH:
        raise ProblemError(name, f"{name}: the spec is longer than {MAX_SPEC_LENGTH} "
                                 "characters.")
    if value.strip().lower().endswith(".npy"):
        raise ProblemError(name, f"{name}: sample files (.npy) are not read by the explorer "
                                 "(the page may not name files on the server); use "
                                 "'otgrid critic' for them.")
    return value.strip()


def _measure_text(data: Any, name: str) -> tuple[str, bool]:
    """The spec text of one measure and whether it came from dragged modes."""
    if not isinstance(data, dict):
        raise ProblemError(name, f"{name}: expected {{'spec': ...}} or {{'modes': [...]}}.")
    if data.get("modes") is not None:
        return modes_to_spec(_check_modes(data["modes"], name)), True
    return _text(data.get("spec", ""), name), False


def _pair(mu_text: str, nu_text: str) -> Problem | None:
    """The problem of a pair name standing alone in the first box, or None."""
    funnels = _FUNNELS.match(mu_text)
    if funnels is None and not mu_text.startswith("parallel_lines"):
        return None
    if nu_text:
        raise ProblemError("nu", f"nu: {mu_text!r} is a pair of measures by itself; leave the "
                                 "second box empty.")
    if funnels is not None:
        n, seed = int(funnels.group(1)), int(funnels.group(2) or 0)
        if not 1 <= n <= 64:
            raise ProblemError("mu", f"mu: funnel_pair(n) needs 1 <= n <= 64; got {n}.")
        pair = funnel_pair(n, seed=seed)
        half = float(pair.half_width)
        return Problem(pair.source, pair.target, 2, {"mu": mu_text, "nu": ""},
                       {"mu": None, "nu": None},
                       {"label": "W1 of the continuous pair (closed form)", "value": pair.w1()},
                       [(-half, half), (-half, half)])
    try:
        theta = parse_parallel_lines(mu_text)
    except ValueError as exc:
        raise ProblemError("mu", f"mu: {exc}") from None
    if theta is None:
        return None
    mu, nu = parallel_lines(theta)
    return Problem(mu, nu, 2, {"mu": mu_text, "nu": ""}, {"mu": None, "nu": None},
                   {"label": "W1 = |theta| (closed form)", "value": abs(theta)})


def _parse(text: str, name: str, ndim: int | None) -> Distribution:
    try:
        return parse_distribution(text, ndim=ndim)
    except (TypeError, ValueError) as exc:
        raise ProblemError(name, f"{name}: {exc}") from None


def build_problem(mu: Any, nu: Any) -> Problem:
    """The problem described by the page's two measure inputs.

    Parameters
    ----------
    mu, nu : dict
        ``{"spec": text}`` (the grammar of :mod:`otgrid.grid.spec`, or a pair name in ``mu``
        with an empty ``nu``) or ``{"modes": [{"x", "std", "w"}, ...]}``.

    Returns
    -------
    Problem

    Raises
    ------
    ProblemError
        With the parser's message (prefixed by the measure's name) for a spec outside the
        grammar, and for a ``.npy`` file, measures of different or unsupported dimensions.
    """
    mu_text, _ = _measure_text(mu, "mu")
    nu_text, _ = _measure_text(nu, "nu")
    if not mu_text:
        raise ProblemError("mu", "mu: the spec is empty; e.g. normal(0, 1) or 8gaussians.")
    pair = _pair(mu_text, nu_text)
    if pair is not None:
        return pair
    if not nu_text:
        raise ProblemError("nu", "nu: the spec is empty; e.g. normal(1, 1) (only "
                                 "parallel_lines(theta) and funnel_pair(n) stand alone).")
    for t, name in ((nu_text, "nu"),):
        if _FUNNELS.match(t) or t.startswith("parallel_lines"):
            raise ProblemError(name, f"{name}: {t!r} is a pair of measures; put it in the first "
                                     "box and leave this one empty.")
    d_mu, d_nu = _parse(mu_text, "mu", None), _parse(nu_text, "nu", None)
    if d_mu.ndim != d_nu.ndim:
        d = max(d_mu.ndim, d_nu.ndim)
        d_mu, d_nu = _parse(mu_text, "mu", d), _parse(nu_text, "nu", d)
    if d_mu.ndim not in (1, 2):
        raise ProblemError("mu", f"mu: the explorer works in 1D and 2D; these measures are "
                                 f"{d_mu.ndim}D.")
    return Problem(d_mu, d_nu, d_mu.ndim, {"mu": mu_text, "nu": nu_text},
                   {"mu": spec_modes(d_mu), "nu": spec_modes(d_nu)})


def build_target(data: Any, name: str = "target") -> Distribution:
    """One 1D or 2D measure from the page (the SCO target).

    Parameters
    ----------
    data : dict
        ``{"spec": text}`` or ``{"modes": [...]}`` as in :func:`build_problem`.
    name : str, optional
        The input's name in messages.

    Returns
    -------
    Distribution

    Raises
    ------
    ProblemError
        For a spec outside the grammar (the parser's message), a pair, a ``.npy`` file, or a
        measure that is not 1D or 2D.
    """
    text, _ = _measure_text(data, name)
    if not text:
        raise ProblemError(name, f"{name}: the spec is empty; e.g. normal([1, 0], std=0.5).")
    if _FUNNELS.match(text) or text.startswith("parallel_lines"):
        raise ProblemError(name, f"{name}: {text!r} is a pair of measures; give one measure.")
    dist = _parse(text, name, None)
    if dist.ndim not in (1, 2):
        raise ProblemError(name, f"{name}: the explorer works in 1D and 2D; this measure is "
                                 f"{dist.ndim}D.")
    return dist


# --------------------------------------------------------------------------- grid, masses
def _check_bounds(bounds: Any, ndim: int) -> list[tuple[float, float]]:
    try:
        pairs = [(float(lo), float(hi)) for lo, hi in bounds]
    except (TypeError, ValueError):
        raise ProblemError("bounds", "bounds: give a LOW and a HIGH per axis.") from None
    if len(pairs) == 1:
        pairs = pairs * ndim
    if len(pairs) != ndim:
        raise ProblemError("bounds", f"bounds: {len(pairs)} pairs for {ndim}D measures.")
    for lo, hi in pairs:
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and hi - lo < 1e6):
            raise ProblemError("bounds", f"bounds: need finite LOW < HIGH; got [{lo:g}, {hi:g}].")
    return pairs


def make_grid(problem: Problem, shape: Any, bounds: Any = None, *, backend: str = "auto",
              batch: int = 1, extra_arrays: int = 2) -> Grid:
    """The grid of a problem, checked for size and for the memory of a solve.

    Parameters
    ----------
    problem : Problem
    shape : int
        Cells per axis.
    bounds : sequence of (float, float), optional
        Per axis (one pair: every axis); default: the problem's or a box holding both
        measures (:func:`otgrid.grid.grid.bounds_holding`).
    backend : str, optional
        The solver backend, for the memory estimate.
    batch, extra_arrays : int, optional
        Problems solved together and grid arrays held besides the solver's (the masses).

    Returns
    -------
    Grid

    Raises
    ------
    ProblemError
        Bad bounds or shape, too many cells, or a solve that would not fit in memory.
    """
    from otgrid.critic.memory import check_memory

    d = problem.ndim
    try:
        n = int(shape)
    except (TypeError, ValueError):
        raise ProblemError("shape", f"shape: cells per axis must be an integer; got "
                                    f"{shape!r}.") from None
    if n < 2 or n ** d > MAX_CELLS[d]:
        raise ProblemError("shape", f"shape: {n} cells per axis; the explorer allows 2 to "
                                    f"{round(MAX_CELLS[d] ** (1 / d))} in {d}D.")
    if bounds is None:
        bounds = problem.default_bounds
    if bounds is None:
        try:
            bounds = bounds_holding(problem.mu, problem.nu)
        except ValueError as exc:
            raise ProblemError("bounds", f"bounds: {exc}") from None
    pairs = _check_bounds(bounds, d)
    try:
        grid = Grid(pairs, (n,) * d)
    except (TypeError, ValueError) as exc:
        raise ProblemError("bounds", f"grid: {exc}") from None
    try:
        check_memory(grid.shape, batch, np.float64, backend, extra_arrays=extra_arrays)
    except InsufficientMemoryError as exc:
        raise ProblemError("shape", f"shape: the solve needs about {exc.needed / 2**30:.3g} GiB "
                                    f"but {exc.available / 2**30:.3g} GiB is available; use "
                                    f"{exc.fits[0]} cells per axis or fewer.") from None
    return grid


def discretize(problem: Problem, grid: Grid, outside: str = "renormalize"
               ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Exact cell masses of both measures and the mass of each outside the bounds.

    Parameters
    ----------
    problem : Problem
    grid : Grid
    outside : {"renormalize", "fold", "auto", "raise"}, optional
        As in :meth:`otgrid.grid.Grid.discretize`.

    Returns
    -------
    mu, nu : ndarray, shape grid.shape
    outside_mass : dict
        ``{"mu": ..., "nu": ...}``.

    Raises
    ------
    ProblemError
        When more mass lies outside than ``outside`` allows (the message suggests bounds).
    """
    if outside not in OUTSIDE:
        raise ProblemError("outside", f"outside must be one of {', '.join(OUTSIDE)}; got "
                                      f"{outside!r}.")
    masses, amounts = [], {}
    # renormalize/fold: the amount outside is shown by the page, so no warning is issued
    # (outside_tol=1); "auto" and "raise" keep their strict tolerances and raise instead
    tol = 1.0 if outside in ("renormalize", "fold") else None
    for name, dist in (("mu", problem.mu), ("nu", problem.nu)):
        try:
            # (the private form also returns the amount outside: one pass over the cells)
            m, amount = grid._discretize(dist, outside, tol)
            masses.append(m)
            amounts[name] = float(amount)
        except OutsideMassError as exc:
            hint = ""
            try:
                held = bounds_holding(problem.mu, problem.nu)
                hint = " (e.g. " + ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in held) + ")"
            except ValueError:
                pass
            raise ProblemError("bounds", f"{name}: {exc.fraction:.3g} of its mass lies outside "
                                         f"the bounds, more than outside={outside!r} allows; "
                                         f"enlarge the bounds{hint} or choose outside = "
                                         "renormalize or fold.") from None
        except (TypeError, ValueError) as exc:
            raise ProblemError(name, f"{name}: {exc}") from None
    return masses[0], masses[1], amounts
