"""Problems of a sweep: the spec of one problem, reading a problems file, the outcome records.

A problem is a pair ``(mu, nu)`` to solve on a grid. Each side is a distribution spec string
(the safe grammar of :mod:`otgrid.grid.spec`), an otgrid distribution, or an array of cell
masses. Strings and distributions are discretised where the problem is solved (on a worker),
so that no grid array crosses the network; arrays travel with the task.

:class:`ProblemSpec` is one problem described by text (one line of a problems file, see
:func:`read_problems` for the schema); :class:`ProblemError` is the record of a problem that
failed, at any stage. :func:`as_problems` turns what the user passes into :class:`Problem`
objects (client side) and :meth:`Problem.materialize` turns one into masses on a grid (worker
side).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from otgrid.grid.grid import Grid

__all__ = ["Problem", "ProblemError", "ProblemSpec", "as_problems", "read_problems"]

Stage = Literal["input", "spec", "solve", "critic", "audit", "cluster"]

# default cells per axis when a spec gives no shape (those of `otgrid critic`)
DEFAULT_SHAPE = {1: 512, 2: 128}
DEFAULT_SHAPE_ND = 32
_SPEC_KEYS = ("mu", "nu", "bounds", "shape", "norm", "tol", "max_iter", "outside", "id")
_OUTSIDE = ("auto", "renormalize", "fold", "raise")
_NORMS = ("euclidean", "cityblock")


@dataclasses.dataclass(frozen=True)
class ProblemError:
    """The record of a problem that failed; it takes the problem's place among the results.

    Attributes
    ----------
    index : int
        Position of the problem in the input.
    stage : {"input", "spec", "solve", "critic", "audit", "cluster"}
        Where it failed: ``"input"`` the problem description (a malformed line or field),
        ``"spec"`` parsing or discretising its distributions, ``"solve"`` the solver,
        ``"critic"`` loading a critic (:func:`audit_many`), ``"audit"`` the audit, ``"cluster"``
        the cluster (the task was lost: its workers died more often than the scheduler
        allows; a resumed :func:`sweep` runs such problems again).
    error : str
        The exception's type name, e.g. ``"ValueError"``.
    message : str
        The exception's message (its first line).
    label : str or None
        The problem's ``id`` when it had one.
    """

    index: int
    stage: str
    error: str
    message: str
    label: str | None = None

    def __str__(self) -> str:
        name = f" ({self.label})" if self.label else ""
        return f"problem {self.index}{name} failed at {self.stage}: {self.error}: {self.message}"

    @classmethod
    def from_exception(cls, index: int, stage: str, exc: BaseException,
                       label: str | None = None) -> ProblemError:
        """The record of ``exc`` raised while handling problem ``index`` at ``stage``."""
        text = str(exc).strip().splitlines()
        return cls(index, stage, type(exc).__name__, text[0] if text else repr(exc), label)


@dataclasses.dataclass(frozen=True)
class ProblemSpec:
    """One problem described by text: two distribution specs and, optionally, its grid.

    Parameters
    ----------
    mu, nu : str
        Distribution specs in the grammar of :mod:`otgrid.grid.spec`, e.g.
        ``"normal([0, 0], 1)"`` and ``"8gaussians"``. ``nu`` may be None when ``mu`` is
        ``"parallel_lines(theta)"`` (a pair by itself). A ``.npy`` path is read where the
        problem is solved, so it must exist on the workers.
    bounds : sequence of (float, float) or (float, float), optional
        Grid box, one ``(low, high)`` per axis (one pair is used for every axis). Default: the
        grid passed to :func:`solve_many`, else a box holding both distributions
        (:func:`otgrid.grid.grid.bounds_holding`).
    shape : int or sequence of int, optional
        Cells per axis (one value is used for every axis). Default: the grid's, else 512 in
        1D and 128 x 128 in 2D.
    norm : {"euclidean", "cityblock"}, optional
    tol : float, optional
    max_iter : int, optional
        Solver options of this problem; default: those given to the sweep.
    outside : {"auto", "renormalize", "fold", "raise"}, optional
        Mass outside the bounds, as in :meth:`otgrid.grid.Grid.discretize`.
    id : str, optional
        A label of the user's, kept in the results.

    Examples
    --------
    >>> from otgrid.distributed import ProblemSpec
    >>> ProblemSpec.from_dict({"mu": "normal(0, 1)", "nu": "normal(1, 1)", "shape": 64})
    ProblemSpec(mu='normal(0, 1)', nu='normal(1, 1)', bounds=None, shape=(64,), ...)
    """

    mu: str
    nu: str | None = None
    bounds: tuple[tuple[float, float], ...] | None = None
    shape: tuple[int, ...] | None = None
    norm: str | None = None
    tol: float | None = None
    max_iter: int | None = None
    outside: str = "auto"
    id: str | None = None

    def __post_init__(self) -> None:
        _check_spec(self)

    @classmethod
    def from_dict(cls, data: Any) -> ProblemSpec:
        """A spec from a JSON object (the schema of :func:`read_problems`).

        Raises
        ------
        ValueError
            For an unknown key, a missing ``mu`` or a value of the wrong kind; the message
            names the key and what it should be.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a problem must be a JSON object such as {{\"mu\": \"normal(0, "
                             f"1)\", \"nu\": \"normal(1, 1)\"}}; got {type(data).__name__}.")
        unknown = sorted(set(data) - set(_SPEC_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
                             f"{', '.join(_SPEC_KEYS)}.")
        if "mu" not in data:
            raise ValueError("the key 'mu' (a distribution spec) is missing.")
        kw = dict(data)
        if kw.get("bounds") is not None:
            kw["bounds"] = _as_bounds(kw["bounds"])
        if kw.get("shape") is not None:
            kw["shape"] = _as_shape(kw["shape"])
        if kw.get("id") is not None and not isinstance(kw["id"], str):
            kw["id"] = str(kw["id"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-friendly dict (None fields left out)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None or (f.name == "outside" and v == "auto"):
                continue
            out[f.name] = [list(b) for b in v] if f.name == "bounds" else (
                list(v) if f.name == "shape" else v)
        return out


def _as_bounds(value: Any) -> tuple[tuple[float, float], ...]:
    """``[lo, hi]`` or ``[[lo, hi], ...]`` as a tuple of float pairs."""
    fix = "give [low, high] or one [low, high] pair per axis, e.g. [[-4, 4], [-4, 4]]"
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"bounds {value!r} are not numbers; {fix}.") from None
    if arr.shape == (2,):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ValueError(f"bounds {value!r}: {fix}.")
    return tuple((float(lo), float(hi)) for lo, hi in arr)


def _as_shape(value: Any) -> tuple[int, ...]:
    """``n`` or ``[n, ...]`` as a tuple of positive ints."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1
                        for n in items):
        raise ValueError(f"shape {value!r} must be a positive integer or a list of them, "
                         "e.g. 128 or [128, 128].")
    return tuple(int(n) for n in items)


def _check_spec(spec: ProblemSpec) -> None:
    """Types and choices of a :class:`ProblemSpec` (the grammar is checked where it is used)."""
    if not isinstance(spec.mu, str):
        raise ValueError(f"mu must be a distribution spec string such as 'normal(0, 1)'; got "
                         f"{type(spec.mu).__name__}.")
    if spec.nu is not None and not isinstance(spec.nu, str):
        raise ValueError(f"nu must be a distribution spec string such as 'normal(1, 1)' (or "
                         f"null after parallel_lines(theta)); got {type(spec.nu).__name__}.")
    if spec.norm is not None and spec.norm not in _NORMS:
        raise ValueError(f"norm must be 'euclidean' or 'cityblock'; got {spec.norm!r}.")
    if spec.outside not in _OUTSIDE:
        raise ValueError(f"outside must be one of {', '.join(map(repr, _OUTSIDE))}; got "
                         f"{spec.outside!r}.")
    if spec.tol is not None and (isinstance(spec.tol, bool)
                                 or not isinstance(spec.tol, (int, float))
                                 or not (math.isfinite(spec.tol) and 0 < spec.tol < 1)):
        raise ValueError(f"tol must be a relative gap in (0, 1), e.g. 1e-6; got {spec.tol!r}.")
    if spec.max_iter is not None and (isinstance(spec.max_iter, bool)
                                      or not isinstance(spec.max_iter, (int, np.integer))
                                      or spec.max_iter < 0):
        raise ValueError(f"max_iter must be an integer >= 0; got {spec.max_iter!r}.")
    if spec.bounds is not None and spec.shape is not None and len(spec.bounds) > 1 \
            and len(spec.shape) > 1 and len(spec.bounds) != len(spec.shape):
        raise ValueError(f"bounds give {len(spec.bounds)} axes but shape gives "
                         f"{len(spec.shape)}; give one pair and one size per axis.")


def read_problems(path: str | Path) -> list[ProblemSpec | ProblemError]:
    """Read a problems file: one JSON object per line, each a :class:`ProblemSpec`.

    Schema of a line (keys other than ``mu`` optional)::

        {"mu": "normal([0, 0], 1)", "nu": "8gaussians",
         "bounds": [[-3, 3], [-3, 3]],   # or [-3, 3] for every axis
         "shape": [128, 128],            # or 128 for every axis
         "norm": "euclidean", "tol": 1e-6, "max_iter": 100000,
         "outside": "auto", "id": "any label"}

    Blank lines and lines starting with ``#`` are skipped; the others are the problems, in
    order (problem ``i`` is the ``i``-th of them). A line that is not valid JSON, or not a valid
    spec, becomes a :class:`ProblemError` of stage ``"input"`` in its place, so that one bad
    line does not stop a sweep. The distribution specs themselves are parsed where the
    problem is solved.

    Parameters
    ----------
    path : str or Path
        The problems file (UTF-8).

    Returns
    -------
    list of ProblemSpec or ProblemError

    Raises
    ------
    OSError
        When the file cannot be read.
    """
    out: list[ProblemSpec | ProblemError] = []
    text = Path(path).read_text(encoding="utf-8")
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        index = len(out)
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            out.append(ProblemError(index, "input", "JSONDecodeError",
                                    f"line {lineno} is not valid JSON ({exc.msg} at column "
                                    f"{exc.colno}); write one JSON object per line."))
            continue
        try:
            out.append(ProblemSpec.from_dict(data))
        except (TypeError, ValueError) as exc:
            out.append(ProblemError(index, "input", type(exc).__name__,
                                    f"line {lineno}: {str(exc).splitlines()[0]}",
                                    _label_of(data)))
    return out


def _label_of(data: Any) -> str | None:
    if isinstance(data, dict) and data.get("id") is not None:
        return str(data["id"])
    return None


# --------------------------------------------------------------------------- problems
@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem as the sweep handles it (internal): its index, both sides (spec string,
    distribution or masses), its own grid and solver options, and a fingerprint ``key`` that
    identifies it across runs (a resumed sweep checks it). ``error`` is set for a problem
    whose description already failed (it is recorded, not solved)."""

    index: int
    mu: Any
    nu: Any
    bounds: tuple[tuple[float, float], ...] | None = None
    shape: tuple[int, ...] | None = None
    options: tuple[tuple[str, Any], ...] = ()
    outside: str = "auto"
    label: str | None = None
    key: str = ""
    error: ProblemError | None = None

    def describe(self) -> dict[str, Any]:
        """The text fields of a record: the specs (strings only) and the label."""
        return {"id": self.label,
                "mu": self.mu if isinstance(self.mu, str) else None,
                "nu": self.nu if isinstance(self.nu, str) else None}

    def materialize(self, grid: Grid | None) -> tuple[np.ndarray, np.ndarray, Grid]:
        """Masses of both sides on this problem's grid (on the worker).

        ``grid`` is the sweep's grid; this problem's ``bounds`` and ``shape`` override it.
        Raises ValueError or TypeError for a bad spec or bad masses.
        """
        from otgrid.grid.datasets import parallel_lines
        from otgrid.grid.spec import parse_parallel_lines

        hint = _dimension_hint(self.bounds, self.shape, grid)
        mu, nu = self.mu, self.nu
        theta = parse_parallel_lines(mu) if isinstance(mu, str) else None
        if theta is not None:
            if nu is not None:
                raise ValueError(f"mu {mu!r} is a pair of distributions by itself; give no nu.")
            mu, nu = parallel_lines(theta)
        elif nu is None:
            raise ValueError("nu is missing: give two distributions (only "
                             "parallel_lines(theta) stands alone).")
        mu, nu = _parse_pair(mu, nu, hint)
        g = self._grid(grid, mu, nu)
        return _masses(mu, g, self.outside, "mu"), _masses(nu, g, self.outside, "nu"), g

    def _grid(self, grid: Grid | None, mu: Any, nu: Any) -> Grid:
        """The grid of this problem: its bounds and shape, else the sweep's, else defaults."""
        if self.bounds is None and self.shape is None and grid is not None:
            return grid
        ndim = _ndim_of(mu, nu)
        if self.bounds is not None:
            bounds = list(self.bounds) * ndim if len(self.bounds) == 1 else list(self.bounds)
        elif grid is not None:
            bounds = list(grid.bounds)
        else:
            from otgrid.grid.grid import bounds_holding

            bounds = bounds_holding(*(d for d in (mu, nu) if not isinstance(d, np.ndarray)))
        if self.shape is not None:
            shape = list(self.shape) * ndim if len(self.shape) == 1 else list(self.shape)
        elif grid is not None:
            shape = list(grid.shape)
        else:
            shape = [DEFAULT_SHAPE.get(ndim, DEFAULT_SHAPE_ND)] * ndim
        return Grid(bounds, shape)


def _dimension_hint(bounds: Sequence | None, shape: Sequence | None,
                    grid: Grid | None) -> int | None:
    """A dimension implied by several bounds pairs, several sizes, or the sweep's grid."""
    if bounds is not None and len(bounds) > 1:
        return len(bounds)
    if shape is not None and len(shape) > 1:
        return len(shape)
    return grid.ndim if grid is not None else None


def _parse_pair(mu: Any, nu: Any, hint: int | None) -> tuple[Any, Any]:
    """Parse the spec strings of a pair; a dimension-free spec next to a 2D one is 2D."""
    from otgrid.grid.spec import parse_distribution

    def parse(side: Any, ndim: int | None, name: str) -> Any:
        if not isinstance(side, str):
            return side
        try:
            return parse_distribution(side, ndim=ndim)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    a, b = parse(mu, hint, "mu"), parse(nu, hint, "nu")
    da, db = _side_ndim(a), _side_ndim(b)
    if hint is None and da is not None and db is not None and da != db:
        d = max(da, db)
        try:
            a, b = parse(mu, d, "mu"), parse(nu, d, "nu")
        except ValueError:
            raise ValueError(f"mu is {da}D but nu is {db}D; give two distributions of the "
                             "same dimension.") from None
    return a, b


def _side_ndim(side: Any) -> int | None:
    return getattr(side, "ndim", None) if not isinstance(side, np.ndarray) else None


def _ndim_of(mu: Any, nu: Any) -> int:
    for side in (mu, nu):
        d = _side_ndim(side)
        if d is not None:
            return int(d)
    raise ValueError("two arrays of masses need a grid: pass grid= to the sweep, or give "
                     "the problem as distribution specs.")


def _masses(side: Any, grid: Grid, outside: str, name: str) -> np.ndarray:
    """Cell masses of one side on ``grid``: a distribution is discretised, an array checked."""
    if isinstance(side, np.ndarray):
        if side.shape != grid.shape:
            raise ValueError(f"{name} has shape {side.shape} but the grid is {grid.shape}; "
                             "give masses of the grid's shape.")
        return side
    if not hasattr(side, "cell_masses"):
        raise TypeError(f"{name} must be a distribution spec string, an otgrid distribution or "
                        f"an array of cell masses; got {type(side).__name__}.")
    try:
        return grid.discretize(side, outside=outside)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


# --------------------------------------------------------------------------- client side
def as_problems(problems: Iterable[Any], grid: Grid | None = None,
                solve_kw: dict[str, Any] | None = None) -> list[Problem]:
    """The user's problems as :class:`Problem` objects, in order (client side).

    Each item is a :class:`ProblemSpec`, a dict in its schema, a :class:`ProblemError` (a
    problem whose description already failed: kept as it is), or a pair ``(mu, nu)`` whose
    sides are spec strings, otgrid distributions or arrays of cell masses. An item that is
    none of these becomes a :class:`Problem` carrying a :class:`ProblemError` of stage
    ``"input"``. The sweep's ``grid`` and solver options ``solve_kw`` go into each
    fingerprint.

    Parameters
    ----------
    problems : iterable
        The user's problems.
    grid : Grid, optional
        The sweep's grid.
    solve_kw : dict, optional
        The sweep's solver options.

    Returns
    -------
    list of Problem
        One per item, ``index`` its position.

    Raises
    ------
    TypeError
        When ``problems`` is not an iterable of problems (a string, an array).
    """
    if isinstance(problems, (str, bytes, np.ndarray)) or not isinstance(problems, Iterable):
        raise TypeError("problems must be an iterable of (mu, nu) pairs or ProblemSpec (e.g. "
                        f"a list); got {type(problems).__name__}.")
    common = repr(grid).encode() + _fingerprint_options(solve_kw or {})
    out = []
    for index, item in enumerate(problems):
        out.append(_as_problem(index, item, common))
    return out


def _as_problem(index: int, item: Any, common: bytes) -> Problem:
    if isinstance(item, ProblemError):
        err = dataclasses.replace(item, index=index)
        return Problem(index, None, None, label=item.label, error=err,
                       key=_digest(b"error", item.message.encode()))
    try:
        if isinstance(item, dict):
            item = ProblemSpec.from_dict(item)
        if isinstance(item, ProblemSpec):
            opts = tuple((k, getattr(item, k)) for k in ("norm", "tol", "max_iter")
                         if getattr(item, k) is not None)
            p = Problem(index, item.mu, item.nu, item.bounds, item.shape, opts, item.outside,
                        item.id)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            p = Problem(index, _side(item[0], "mu"), _side(item[1], "nu"))
        else:
            raise TypeError(f"a problem must be a (mu, nu) pair or a ProblemSpec; got "
                            f"{type(item).__name__}.")
    except (TypeError, ValueError) as exc:
        return Problem(index, None, None, error=ProblemError.from_exception(index, "input", exc),
                       key=_digest(b"error", str(exc).encode()))
    return dataclasses.replace(p, key=_fingerprint(p, common))


def _side(side: Any, name: str) -> Any:
    """One side of a pair as sent to the worker: strings and distributions as they are,
    anything else as a float64 array of masses."""
    if side is None or isinstance(side, str) or hasattr(side, "cell_masses"):
        return side
    try:
        arr = np.asarray(side, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a distribution spec string, an otgrid distribution or "
                        f"an array of cell masses; got {type(side).__name__}.") from None
    if arr.ndim == 0:
        raise TypeError(f"{name} must be a distribution spec string, an otgrid distribution or "
                        "an array of cell masses; got a scalar.")
    return arr


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:32]


def _side_bytes(side: Any) -> bytes:
    if side is None:
        return b"none"
    if isinstance(side, str):
        return b"spec:" + side.strip().encode()
    if isinstance(side, np.ndarray):
        arr = np.ascontiguousarray(side)
        return f"array:{arr.dtype.str}:{arr.shape}:".encode() + arr.tobytes()
    return b"object:" + pickle.dumps(side, protocol=4)


def _fingerprint_options(solve_kw: dict[str, Any]) -> bytes:
    return repr(sorted((k, repr(v)) for k, v in solve_kw.items())).encode()


def _fingerprint(p: Problem, common: bytes) -> str:
    """A key of the problem and the options it is solved with (stable across runs)."""
    fields = repr((p.bounds, p.shape, p.options, p.outside)).encode()
    return _digest(_side_bytes(p.mu), _side_bytes(p.nu), fields, common)
