"""Pieces shared by the commands: the usage error, the parser, distributions, grids, outputs."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otgrid.grid.spec import parse_distribution, parse_parallel_lines

_DEFAULT_SHAPE = {1: 512, 2: 128}
_DEFAULT_SHAPE_ND = 32
_MAX_CELLS = 2 ** 27
_NORMAL_SPAN = 5.0      # default bounds hold mean +- 5 std of every Gaussian
_PAD = 0.05             # then are padded by 5% of the widest extent on every axis


class _UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of exiting, so that ``main`` returns the status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- output helpers
def _symbol(preferred: str, fallback: str) -> str:
    """``preferred`` if standard output can encode it, else ``fallback``."""
    encoding = getattr(sys.stdout, "encoding", None)
    if not encoding:
        return preferred
    try:
        preferred.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return fallback
    return preferred


def _fmt_bounds(bounds: Sequence[tuple[float, float]]) -> str:
    return " x ".join(f"[{lo:.6g}, {hi:.6g}]" for lo, hi in bounds)


# --------------------------------------------------------------------------- distributions
def _dimension_hint(args: argparse.Namespace) -> int | None:
    """A dimension implied by --bounds (several pairs) or --shape (several values)."""
    if args.bounds is not None and len(args.bounds) % 2:
        raise _UsageError(f"--bounds needs LOW HIGH pairs; got {len(args.bounds)} value(s).")
    from_bounds = len(args.bounds) // 2 if args.bounds and len(args.bounds) > 2 else None
    from_shape = len(args.shape) if args.shape and len(args.shape) > 1 else None
    if from_bounds and from_shape and from_bounds != from_shape:
        raise _UsageError(f"--bounds gives {from_bounds} axes but --shape gives {from_shape}; "
                          "give one LOW HIGH pair and one N per axis.")
    return from_bounds or from_shape


def _parse(text: str, name: str, ndim: int | None) -> Any:
    try:
        return parse_distribution(text, ndim=ndim)
    except ValueError as exc:
        raise _UsageError(f"{name}: {exc}") from None


def _load_pair(mu_text: str, nu_text: str | None, hint: int | None) -> tuple[Any, Any, str]:
    """Parse MU and NU (or the parallel-lines pair); returns them and a label for the figure."""
    try:
        theta = parse_parallel_lines(mu_text)
    except ValueError as exc:
        raise _UsageError(f"MU: {exc}") from None
    nu_missing = nu_text is None or nu_text.strip() == "-"
    if theta is not None:
        if not nu_missing:
            raise _UsageError(f"MU {mu_text!r} is a pair of distributions by itself; omit NU "
                              f"(or write '-'), got NU {nu_text!r}.")
        if hint not in (None, 2):
            raise _UsageError(f"parallel_lines is 2D; --bounds/--shape describe {hint} axes.")
        from otgrid.grid.datasets import parallel_lines

        mu, nu = parallel_lines(theta)
        return mu, nu, f"parallel_lines({theta:g})"
    if nu_missing:
        raise _UsageError(f"NU is missing: give two distributions, e.g. otgrid critic "
                          f"{mu_text!r} 'normal(1, 1)' (only parallel_lines(theta) stands alone).")
    if parse_parallel_lines(nu_text) is not None:
        raise _UsageError("parallel_lines(theta) is a pair of distributions; give it as MU alone "
                          "(omit NU).")
    if hint is not None:
        return _parse(mu_text, "MU", hint), _parse(nu_text, "NU", hint), f"{mu_text}  vs  {nu_text}"
    mu = _parse(mu_text, "MU", None)
    nu = _parse(nu_text, "NU", None)
    if mu.ndim != nu.ndim:
        d = max(mu.ndim, nu.ndim)
        try:
            mu, nu = parse_distribution(mu_text, ndim=d), parse_distribution(nu_text, ndim=d)
        except ValueError:
            raise _UsageError(f"MU is {mu.ndim}D but NU is {nu.ndim}D; give two distributions "
                              "of the same dimension.") from None
    return mu, nu, f"{mu_text}  vs  {nu_text}"


def _box(dist: Any) -> tuple[np.ndarray, np.ndarray]:
    """A box holding (essentially all of) a distribution, as (low, high) arrays."""
    from otgrid.grid.distributions import Empirical, Mixture, Normal, PointMass, Uniform

    if isinstance(dist, Normal):
        std = np.sqrt(np.diag(dist.cov))
        return dist.mean - _NORMAL_SPAN * std, dist.mean + _NORMAL_SPAN * std
    if isinstance(dist, Uniform):
        return dist.low, dist.high
    if isinstance(dist, PointMass):
        return dist.location, dist.location
    if isinstance(dist, Empirical):
        x = dist.samples
        return x.min(axis=0), x.max(axis=0)
    if isinstance(dist, Mixture):
        boxes = [_box(c) for c in dist.components]
        return (np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0))
    # Anything else (e.g. the swiss roll): the range of many samples, plus 1 std of margin.
    x = dist.sample(100_000, rng=0)
    std = x.std(axis=0)
    return x.min(axis=0) - std, x.max(axis=0) + std


def _default_bounds(mu: Any, nu: Any) -> list[tuple[float, float]]:
    (lo1, hi1), (lo2, hi2) = _box(mu), _box(nu)
    lo, hi = np.minimum(lo1, lo2), np.maximum(hi1, hi2)
    widest = float(np.max(hi - lo))
    if widest <= 0:
        widest = 2.0
    pad = _PAD * widest
    # Round outward to about 1/10 of the widest extent's order of magnitude: readable bounds.
    step = 10.0 ** (math.floor(math.log10(widest)) - 1)
    return [(step * math.floor((a - pad) / step), step * math.ceil((b + pad) / step))
            for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]


def _make_grid(args: argparse.Namespace, ndim: int, mu: Any, nu: Any) -> Any:
    from otgrid.grid.grid import Grid

    if args.bounds is None:
        bounds = _default_bounds(mu, nu)
    else:
        pairs = [tuple(args.bounds[i:i + 2]) for i in range(0, len(args.bounds), 2)]
        if len(pairs) == 1:
            pairs = pairs * ndim
        if len(pairs) != ndim:
            raise _UsageError(f"--bounds gives {len(pairs)} LOW HIGH pairs but the distributions "
                              f"are {ndim}D; give one pair, or {ndim}.")
        bounds = pairs
    if args.shape is None:
        shape = [_DEFAULT_SHAPE.get(ndim, _DEFAULT_SHAPE_ND)] * ndim
    else:
        shape = list(args.shape) * ndim if len(args.shape) == 1 else list(args.shape)
        if len(shape) != ndim:
            raise _UsageError(f"--shape gives {len(shape)} values but the distributions are "
                              f"{ndim}D; give one N, or {ndim}.")
    if math.prod(shape) > _MAX_CELLS:
        raise _UsageError(f"--shape {' '.join(map(str, shape))} has {math.prod(shape)} cells; "
                          f"at most {_MAX_CELLS} are allowed here.")
    try:
        return Grid(bounds, shape)
    except (TypeError, ValueError) as exc:
        raise _UsageError(f"grid: {exc}") from None


def _discretize(grid: Any, dist: Any, outside: str) -> tuple[np.ndarray, float]:
    """Masses of ``dist`` on ``grid`` and the mass found outside the bounds."""
    from otgrid.errors import OutsideMassWarning
    from otgrid.grid.distributions import Empirical

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutsideMassWarning)
        if isinstance(dist, Empirical):
            masses = grid.histogram(dist.samples, dist.weights, outside=outside)
        else:
            masses = grid.discretize(dist, outside=outside)
    out = 0.0
    for w in caught:
        if issubclass(w.category, OutsideMassWarning):
            out += float(getattr(w.message, "mass", 0.0))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return masses, out


def _check_output(path: str | None, what: str, figure: bool = False) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.parent.is_dir():
        raise _UsageError(f"{what} {path!r}: the folder {str(p.parent)!r} does not exist.")
    if p.is_dir():
        raise _UsageError(f"{what} {path!r} is a folder; give a file name.")
    if figure:
        from matplotlib.figure import Figure

        fmt = p.suffix.lower().lstrip(".")
        supported = Figure().canvas.get_supported_filetypes()
        if fmt not in supported:
            raise _UsageError(f"{what} {path!r}: unknown figure format {fmt!r}; use an "
                              f"extension among {', '.join(sorted(supported))}.")
    return p


def _is_parallel_lines(text: str) -> bool:
    """Whether ``text`` is the parallel-lines pair (a malformed one counts as not)."""
    try:
        return parse_parallel_lines(text) is not None
    except ValueError:
        return False


def _protect_negative_numbers(argv: list[str]) -> list[str]:
    """Let ``--bounds -1e3 1e3`` through: argparse (before Python 3.13) takes ``-1e3`` for an
    option. No option of ours looks like a number, so a leading space (which ``float`` ignores)
    is added to every argument that starts with ``-`` and reads as a number."""
    out = []
    for arg in argv:
        if arg.startswith("-") and arg != "-":
            try:
                float(arg)
            except ValueError:
                pass
            else:
                arg = " " + arg
        out.append(arg)
    return out


