"""The ``otgrid`` command line: the exact Wasserstein-1 critic of two distributions.

``otgrid critic MU NU`` discretises two distributions given in a small text grammar
(:mod:`otgrid.spec`) on a grid, solves for the optimal critic with certified bounds
(:func:`otgrid.critic.solve_critic`), prints ``W`` with its bounds and writes a figure.
``otgrid sco TARGET`` fits a Gaussian generator to a target by SCO with the exact critic
(:func:`otgrid.sco.fit`), prints the final parameters and ``W`` and writes the learning curves.
``python -m otgrid`` runs the same program.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otgrid.spec import GRAMMAR, parse_distribution, parse_parallel_lines

__all__ = ["main"]

_DEFAULT_SHAPE = {1: 512, 2: 128}
_DEFAULT_SHAPE_ND = 32
_MAX_CELLS = 2 ** 27
_NORMAL_SPAN = 5.0      # default bounds hold mean +- 5 std of every Gaussian
_PAD = 0.05             # then are padded by 5% of the widest extent on every axis

_EXAMPLES = """\
examples:
  otgrid critic "normal(0, 1)" "normal(1, 1)"            # 1D, W close to 1
  otgrid critic "normal([0, 0], 1)" 8gaussians --flow --figure w.png
  otgrid critic "mixture(0.3*normal(-2, 1), 0.7*normal(2, .5))" "uniform(-3, 3)"
  otgrid critic "parallel_lines(0.5)"                    # Arjovsky's pair, W close to 0.5
  otgrid critic samples.npy "normal([0, 0], 1)" --bounds -4 4 -4 4 --json w.json

The dimension comes from the distributions (normal(0, 1) is 1D, normal([0, 0], 1) 2D);
a dimension-free spec such as normal(0, 1) next to a 2D one, or with 2D --bounds, is 2D.
Default bounds: a box holding both distributions (Gaussians to mean +- 5 std), padded
by 5% and rounded outward.
Exit status: 0 on success (also when --max-iter stops the solver before --tol: the
printed bounds still hold and a warning says so), 2 on bad input, 1 when an output file
cannot be written."""


class _UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of exiting, so that ``main`` returns the status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _build_parser() -> _Parser:
    from otgrid import __version__

    parser = _Parser(
        prog="otgrid",
        description="Exact optimal transport in low dimension: the Wasserstein-1 critic of two "
                    "distributions on a grid, with certified bounds.",
        epilog="Run 'otgrid critic --help' or 'otgrid sco --help' for the distribution grammar "
               "and examples.",
    )
    parser.add_argument("--version", action="version", version=f"otgrid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    critic = sub.add_parser(
        "critic",
        help="W1 between two distributions and the optimal critic, with a figure",
        description="Discretise MU and NU on a grid, compute the optimal Wasserstein-1 critic\n"
                    "with certified bounds lower <= W <= upper, print W and write a figure.",
        epilog=f"{GRAMMAR}\n\n{_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    critic.add_argument("mu", metavar="MU", help="source distribution (grammar below)")
    critic.add_argument("nu", metavar="NU", nargs="?", default=None,
                        help="target distribution; omit it or write '-' after "
                             "parallel_lines(theta)")
    critic.add_argument("--bounds", nargs="+", type=float, metavar="LOW HIGH",
                        help="grid box: one LOW HIGH pair per axis (one pair is used for every "
                             "axis); default: a box holding both distributions")
    critic.add_argument("--shape", nargs="+", type=int, metavar="N",
                        help="cells per axis (one value is used for every axis); default 512 in "
                             "1D, 128 x 128 in 2D")
    critic.add_argument("--norm", choices=("euclidean", "cityblock"), default="euclidean",
                        help="pointwise norm of the gradient constraint (default: euclidean)")
    critic.add_argument("--tol", type=float, default=1e-6,
                        help="relative gap (upper - lower) / upper at which to stop "
                             "(default: 1e-6)")
    critic.add_argument("--max-iter", type=int, default=100_000, dest="max_iter",
                        help="iteration limit (default: 100000)")
    critic.add_argument("--backend", choices=("auto", "numpy", "numba", "cuda"), default="auto",
                        help="solver backend (default: auto)")
    critic.add_argument("--time-limit", type=float, default=None, dest="time_limit",
                        metavar="SECONDS",
                        help="stop after this many seconds with the best certified bounds so "
                             "far (default: none). Ctrl-C also stops with the best bounds.")
    critic.add_argument("--float32", action="store_true",
                        help="iterate in float32 (faster on large grids; the bounds are still "
                             "certified in float64)")
    critic.add_argument("--outside", choices=("renormalize", "fold", "raise"),
                        default="renormalize",
                        help="mass outside the bounds: rescale the rest (default), fold it into "
                             "the boundary cells, or stop with an error")
    critic.add_argument("--figure", default="critic.png", metavar="PATH",
                        help="figure file, format from the extension (default: critic.png)")
    critic.add_argument("--no-figure", action="store_true", dest="no_figure",
                        help="do not write a figure")
    critic.add_argument("--flow", action="store_true",
                        help="draw the optimal transport flow as arrows on the figure")
    critic.add_argument("--quiet", action="store_true", help="no progress lines")
    critic.add_argument("--json", metavar="PATH",
                        help="also write the results (W, bounds, grid, diagnostics) as JSON")
    _add_sco_parser(sub)
    _add_info_parser(sub)
    from otgrid.cli_audit import add_audit_parser

    add_audit_parser(sub)
    return parser


_SCO_EXAMPLES = """\
examples:
  otgrid sco "normal(2, std=0.5)" --init-loc 0 --init-scale 2 --steps 500 --figure sco.png
  otgrid sco "normal([0.5, -0.3], [0.36, 0.16])" --init-loc -1 1 --init-scale 0.1 1.5
  otgrid sco "normal([0, 0], [[1, .5], [.5, 1]])" --generator affine --steps 2000
  otgrid sco "normal(1, std=0.5)" --prox --stop-param-tol 0.02 --json fit.json

The generator is g(z) = scale * z + loc per axis (location-scale, the default) or
g(z) = A z + b (affine; A starts as diag(--init-scale)), with z ~ N(0, I). When the target
is a Gaussian with a diagonal covariance and the generator is location-scale, the true
parameters are known: the parameter error is printed and --stop-param-tol may be used.
Default bounds: a box holding the target and the initial generator (Gaussians to mean +- 5
std), padded by 5% and rounded outward. Default shape: 256 cells in 1D, 64 x 64 in 2D.
Exit status: 0 on success (also when a stopping tolerance was not met or the fit stopped
early on bad values: the message says why), 2 on bad input, 1 when an output file cannot
be written."""


def _add_sco_parser(sub: Any) -> None:
    sco = sub.add_parser(
        "sco",
        help="fit a Gaussian generator to a target by SCO with the exact critic",
        description="Fit g(z) = scale * z + loc (or A z + b) to TARGET by Sequential Convex\n"
                    "Optimization (Pinetz et al., Alg. 2): solve the exact critic on a grid,\n"
                    "step the generator up the critic at generated points, repeat. Prints the\n"
                    "final parameters and the certified W, and writes the learning curves.",
        epilog=f"{GRAMMAR}\n\n{_SCO_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sco.add_argument("target", metavar="TARGET", help="target distribution (grammar below)")
    sco.add_argument("--generator", choices=("location-scale", "affine"),
                     default="location-scale",
                     help="generator family (default: location-scale)")
    sco.add_argument("--init-loc", nargs="+", type=float, default=None, dest="init_loc",
                     metavar="X", help="initial location, one value or one per axis (default 0)")
    sco.add_argument("--init-scale", nargs="+", type=float, default=None, dest="init_scale",
                     metavar="S", help="initial scale, one value or one per axis (default 1)")
    sco.add_argument("--steps", type=int, default=1000, help="SCO steps (default: 1000)")
    sco.add_argument("--lr", type=float, default=5e-3,
                     help="learning rate (default: 5e-3, the paper's)")
    sco.add_argument("--batch", type=int, default=128,
                     help="latent samples per step (default: 128, the paper's)")
    sco.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                     help="generator optimizer (default: sgd)")
    sco.add_argument("--masses", choices=("exact", "samples"), default="exact",
                     help="generated masses from the closed form (default) or a histogram")
    sco.add_argument("--n-mass-samples", type=int, default=50_000, dest="n_mass_samples",
                     help="samples per histogram with --masses samples (default: 50000)")
    sco.add_argument("--critic-tol", type=float, default=1e-3, dest="critic_tol",
                     help="relative gap of each critic solve (default: 1e-3)")
    sco.add_argument("--prox", action="store_true",
                     help="relaxed Wasserstein proximal generator update")
    sco.add_argument("--prox-h", type=float, default=0.2, dest="prox_h",
                     help="proximal step h with --prox (default: 0.2)")
    sco.add_argument("--prox-steps", type=int, default=5, dest="prox_steps",
                     help="generator steps per critic solve with --prox (default: 5)")
    sco.add_argument("--stop-param-tol", type=float, default=None, dest="stop_param_tol",
                     help="stop when max |params - true params| is below this")
    sco.add_argument("--stop-w-tol", type=float, default=None, dest="stop_w_tol",
                     help="stop when the upper bound on W is below this")
    sco.add_argument("--bounds", nargs="+", type=float, metavar="LOW HIGH",
                     help="grid box: one LOW HIGH pair per axis (one pair is used for every "
                          "axis); default: a box holding the target and the initial generator")
    sco.add_argument("--shape", nargs="+", type=int, metavar="N",
                     help="cells per axis (one value is used for every axis); default 256 in "
                          "1D, 64 x 64 in 2D")
    sco.add_argument("--norm", choices=("euclidean", "cityblock"), default="euclidean",
                     help="pointwise norm of the critic constraint (default: euclidean)")
    sco.add_argument("--backend", choices=("auto", "numpy", "numba", "cuda"), default="auto",
                     help="critic solver backend (default: auto)")
    sco.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sco.add_argument("--figure", default="sco.png", metavar="PATH",
                     help="learning-curve figure, format from the extension (default: sco.png)")
    sco.add_argument("--no-figure", action="store_true", dest="no_figure",
                     help="do not write a figure")
    sco.add_argument("--quiet", action="store_true", help="no progress line")
    sco.add_argument("--json", metavar="PATH",
                     help="also write the results (parameters, W, history) as JSON")


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
        from otgrid.datasets import parallel_lines

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
    from otgrid.distributions import Empirical, Mixture, Normal, PointMass, Uniform

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
    from otgrid.grid import Grid

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
    from otgrid.distributions import Empirical
    from otgrid.errors import OutsideMassWarning

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


# --------------------------------------------------------------------------- the command
def _write_figure(res: Any, mu: np.ndarray, nu: np.ndarray, label: str, flow: bool,
                  path: Path) -> None:
    """Draw and save the figure on a standalone Agg canvas (no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from otgrid.plot import plot_critic, save_figure

    size = (7.0, 4.0) if res.grid.ndim == 1 else (6.5, 5.5)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plot_critic(res, mu, nu, ax=ax, flow=flow, title=label)
    save_figure(fig, path)


def _critic(args: argparse.Namespace) -> int:
    from otgrid.critic import solve_critic
    from otgrid.errors import ConvergenceWarning

    if not (math.isfinite(args.tol) and args.tol > 0):
        raise _UsageError(f"--tol must be a positive number; got {args.tol}.")
    if args.max_iter < 1:
        raise _UsageError(f"--max-iter must be >= 1; got {args.max_iter}.")
    if args.time_limit is not None and not (math.isfinite(args.time_limit)
                                            and args.time_limit > 0):
        raise _UsageError(f"--time-limit must be a positive number; got {args.time_limit}.")
    mu_dist, nu_dist, label = _load_pair(args.mu, args.nu, _dimension_hint(args))
    ndim = mu_dist.ndim
    grid = _make_grid(args, ndim, mu_dist, nu_dist)
    want_figure = not args.no_figure and ndim <= 2
    fig_path = _check_output(args.figure, "--figure", figure=True) if want_figure else None
    json_path = _check_output(args.json, "--json")

    approx = _symbol("≈", "~=")
    print(f"MU: {mu_dist!r}")
    print(f"NU: {nu_dist!r}")
    source = "given" if args.bounds is not None else "default, holding both distributions"
    shape = " x ".join(map(str, grid.shape))
    dx = ", ".join(f"{h:.4g}" for h in grid.dx)
    print(f"grid: {ndim}D, bounds {_fmt_bounds(grid.bounds)} ({source}), shape {shape}, "
          f"dx {dx}")
    if not args.no_figure and ndim > 2:
        print(f"note: no figure for a {ndim}D problem (figures are 1D and 2D)")
    outside = {}
    masses = {}
    for name, dist in (("MU", mu_dist), ("NU", nu_dist)):
        try:
            masses[name], outside[name] = _discretize(grid, dist, args.outside)
        except (TypeError, ValueError) as exc:
            raise _UsageError(f"{name}: {exc}") from None
        if outside[name] > 0:
            how = "folded into the boundary cells" if args.outside == "fold" else "renormalized"
            print(f"{name}: mass {outside[name]:.3g} lies outside the bounds ({how}); "
                  "enlarge --bounds to avoid this")

    state = {"last": -math.inf}

    def progress(info: Any) -> None:
        if info.seconds - state["last"] >= 1.0:
            state["last"] = info.seconds
            rel = info.gap / info.upper if info.upper > 0 else 0.0
            print(f"  iter {info.iteration:>7d}  lower {info.lower:.10g}  upper "
                  f"{info.upper:.10g}  rel. gap {rel:.2e}", flush=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            res = solve_critic(masses["MU"], masses["NU"], grid, norm=args.norm, tol=args.tol,
                               max_iter=args.max_iter, backend=args.backend,
                               dtype=np.float32 if args.float32 else np.float64,
                               time_limit=args.time_limit, interrupt="return",
                               callback=None if args.quiet else progress)
        except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: no usable GPU
            raise _UsageError(str(exc)) from None
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            print(f"otgrid: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    print(f"W {approx} {res.w1:.10g}  in [{res.lower:.10g}, {res.upper:.10g}]")
    print(f"  relative gap: {res.relative_gap:.3e} (tol {res.tol:.1e})")
    print(f"  iterations:   {res.iterations}")
    print(f"  seconds:      {res.seconds:.3g}")
    print(f"  backend:      {res.backend}")
    if res.float64_from is not None:
        print(f"  precision:    float32, float64 from iteration {res.float64_from} (the float32 "
              "iterates stopped improving the gap)")
    print(f"  norm:         {res.norm}")
    print(f"  converged:    {res.converged}")
    if res.status in ("interrupted", "time_limit"):
        print(f"  stopped:      {res.message}")

    try:
        if fig_path is not None:
            _write_figure(res, masses["MU"], masses["NU"], label, args.flow, fig_path)
            print(f"figure written to {fig_path}")
        if json_path is not None:
            record = {
                "mu": args.mu, "nu": args.nu, "mu_distribution": repr(mu_dist),
                "nu_distribution": repr(nu_dist), "ndim": ndim,
                "bounds": [list(b) for b in grid.bounds], "shape": list(grid.shape),
                "norm": res.norm, "tol": res.tol, "max_iter": args.max_iter,
                "outside": args.outside,
                "outside_mass": {"mu": outside["MU"], "nu": outside["NU"]},
                "w1": res.w1, "lower": res.lower, "upper": res.upper, "gap": res.gap,
                "relative_gap": res.relative_gap, "iterations": int(res.iterations),
                "converged": bool(res.converged), "status": res.status,
                "message": res.message, "seconds": res.seconds, "backend": res.backend,
                "figure": str(fig_path) if fig_path is not None else None,
            }
            json_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            print(f"results written to {json_path}")
    except OSError as exc:
        print(f"otgrid: error: could not write an output file: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- otgrid sco
_SCO_DEFAULT_SHAPE = {1: 256, 2: 64}


def _per_axis(values: list[float] | None, default: float, ndim: int, flag: str) -> np.ndarray:
    if values is None:
        return np.full(ndim, default)
    if len(values) == 1:
        return np.full(ndim, values[0])
    if len(values) != ndim:
        raise _UsageError(f"{flag} gives {len(values)} values but the target is {ndim}D; give "
                          f"one value, or {ndim}.")
    return np.array(values, dtype=np.float64)


def _true_params(target: Any, generator_kind: str) -> np.ndarray | None:
    """[mean, std] of a Gaussian target with a diagonal covariance (location-scale only)."""
    from otgrid.distributions import Normal

    if generator_kind != "location-scale" or not isinstance(target, Normal):
        return None
    cov = target.cov
    if np.any(cov - np.diag(np.diag(cov))):
        return None
    return np.concatenate([target.mean, np.sqrt(np.diag(cov))])


def _check_sco_args(args: argparse.Namespace) -> None:
    for name, value in (("--lr", args.lr), ("--critic-tol", args.critic_tol),
                        ("--prox-h", args.prox_h)):
        if not (math.isfinite(value) and value > 0):
            raise _UsageError(f"{name} must be a positive number; got {value}.")
    for name, value in (("--steps", args.steps), ("--batch", args.batch),
                        ("--n-mass-samples", args.n_mass_samples),
                        ("--prox-steps", args.prox_steps)):
        if value < (0 if name == "--steps" else 1):
            raise _UsageError(f"{name} must be >= {0 if name == '--steps' else 1}; got {value}.")
    for name, value in (("--stop-param-tol", args.stop_param_tol),
                        ("--stop-w-tol", args.stop_w_tol)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise _UsageError(f"{name} must be a positive number; got {value}.")
    for name, values in (("--init-loc", args.init_loc), ("--init-scale", args.init_scale)):
        if values is not None and not all(math.isfinite(v) for v in values):
            raise _UsageError(f"{name} must be finite numbers; got {values}.")


def _sco_figure(res: Any, label: str, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from otgrid.plot import plot_sco, save_figure

    four = res.param_error is not None
    fig = Figure(figsize=(11.0, 7.0) if four else (14.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    plot_sco(res, fig=fig, title=label)
    save_figure(fig, path)


def _sco(args: argparse.Namespace) -> int:
    from otgrid.distributions import Normal, PointMass
    from otgrid.errors import ConvergenceWarning, OutsideMassWarning
    from otgrid.generators import Affine, LocationScale
    from otgrid.sco import WassersteinProx, fit

    _check_sco_args(args)
    hint = _dimension_hint(args)
    for values in (args.init_loc, args.init_scale):
        if hint is None and values is not None and len(values) > 1:
            hint = len(values)
    if _is_parallel_lines(args.target):
        raise _UsageError("TARGET: parallel_lines(theta) is a pair of distributions; give one "
                          "distribution to fit.")
    target = _parse(args.target, "TARGET", hint)
    ndim = target.ndim
    if ndim > 2:
        raise _UsageError(f"TARGET is {ndim}D; otgrid sco fits 1D and 2D targets.")
    loc = _per_axis(args.init_loc, 0.0, ndim, "--init-loc")
    scale = _per_axis(args.init_scale, 1.0, ndim, "--init-scale")
    if args.generator == "affine" and np.any(scale == 0):
        raise _UsageError(f"--init-scale must be non-zero for the affine generator (A starts as "
                          f"diag(scale), which must be invertible); got {scale.tolist()}.")
    start = Normal(loc, scale ** 2) if np.all(scale != 0) else PointMass(loc)
    if args.shape is None:
        args.shape = [_SCO_DEFAULT_SHAPE[ndim]]
    grid = _make_grid(args, ndim, target, start)
    if args.generator == "location-scale":
        gen = LocationScale(loc, scale)
    else:
        gen = Affine(np.diag(scale), loc)
    true = _true_params(target, args.generator)
    if args.stop_param_tol is not None and true is None:
        raise _UsageError("--stop-param-tol needs known true parameters: a Gaussian TARGET "
                          "with a diagonal covariance and the location-scale generator. Use "
                          "--stop-w-tol instead.")
    fig_path = None if args.no_figure else _check_output(args.figure, "--figure", figure=True)
    json_path = _check_output(args.json, "--json")

    approx = _symbol("≈", "~=")
    print(f"TARGET: {target!r}")
    print(f"generator: {gen!r} (start)")
    source = "given" if args.bounds is not None else "default, holding target and start"
    print(f"grid: {ndim}D, bounds {_fmt_bounds(grid.bounds)} ({source}), shape "
          f"{' x '.join(map(str, grid.shape))}, dx {', '.join(f'{h:.4g}' for h in grid.dx)}")
    try:
        mu, out = _discretize(grid, target, "fold")
    except (TypeError, ValueError) as exc:
        raise _UsageError(f"TARGET: {exc}") from None
    if out > 0:
        print(f"TARGET: mass {out:.3g} lies outside the bounds (folded into the boundary "
              "cells); enlarge --bounds to avoid this")
    prox = WassersteinProx(args.prox_h, args.prox_steps) if args.prox else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", OutsideMassWarning)
        try:
            res = fit(mu, gen, grid, steps=args.steps, lr=args.lr, batch=args.batch,
                      optimizer=args.optimizer, masses=args.masses,
                      n_mass_samples=args.n_mass_samples, critic_tol=args.critic_tol,
                      prox=prox, true_params=true, stop_param_tol=args.stop_param_tol,
                      stop_w_tol=args.stop_w_tol, norm=args.norm, backend=args.backend,
                      progress=not args.quiet, rng=args.seed)
        except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: no usable GPU
            raise _UsageError(str(exc)) from None
    for w in caught:
        if issubclass(w.category, (ConvergenceWarning, OutsideMassWarning)):
            print(f"otgrid: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def fmt(values: np.ndarray) -> str:
        return "  ".join(f"{n} {v:.6g}" for n, v in zip(res.param_names, values, strict=True))

    print(f"params:  {fmt(res.params)}")
    if true is not None:
        print(f"true:    {fmt(true)}  (parameter error {res.param_error[-1]:.3g})")
    print(f"W {approx} {res.w1:.6g}  in [{res.lower[-1]:.6g}, {res.upper[-1]:.6g}]  "
          f"(start: {0.5 * (res.lower[0] + res.upper[0]):.6g})")
    print(f"  steps:        {res.steps} ({res.status})")
    print(f"  message:      {res.message}")
    print(f"  seconds:      {res.seconds:.3g} (critic {res.critic_seconds.sum():.3g}, masses "
          f"{res.masses_seconds.sum():.3g}, generator {res.generator_seconds.sum():.3g})")
    print(f"  critic iterations per step: mean {res.critic_iterations.mean():.1f}, max "
          f"{int(res.critic_iterations.max())}")
    try:
        if fig_path is not None:
            _sco_figure(res, f"SCO fit of {args.target}", fig_path)
            print(f"figure written to {fig_path}")
        if json_path is not None:
            record = {
                "target": args.target, "target_distribution": repr(target), "ndim": ndim,
                "generator": args.generator, "param_names": list(res.param_names),
                "init_params": res.trajectory[0].tolist(), "params": res.params.tolist(),
                "true_params": None if true is None else true.tolist(),
                "param_error": None if res.param_error is None else float(res.param_error[-1]),
                "w1": res.w1, "lower": float(res.lower[-1]), "upper": float(res.upper[-1]),
                "steps": res.steps, "status": res.status, "converged": bool(res.converged),
                "message": res.message, "lr": res.lr, "batch": res.batch,
                "optimizer": res.optimizer, "masses": res.masses,
                "prox": None if prox is None else {"h": prox.h, "inner_steps": prox.inner_steps},
                "bounds": [list(b) for b in grid.bounds], "shape": list(grid.shape),
                "seconds": res.seconds, "critic_seconds": float(res.critic_seconds.sum()),
                "masses_seconds": float(res.masses_seconds.sum()),
                "generator_seconds": float(res.generator_seconds.sum()),
                "history": {"lower": res.lower.tolist(), "upper": res.upper.tolist(),
                            "critic_iterations": res.critic_iterations.tolist(),
                            "params": res.trajectory.tolist()},
                "figure": str(fig_path) if fig_path is not None else None,
            }
            json_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            print(f"results written to {json_path}")
    except OSError as exc:
        print(f"otgrid: error: could not write an output file: {exc}", file=sys.stderr)
        return 1
    return 0


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


def _add_info_parser(sub: Any) -> None:
    sub.add_parser(
        "info",
        help="version, and which backends can run here (and why not)",
        description="Print the otgrid version and, for each backend of the grid critic, whether\n"
                    "it can run on this machine or a one-line reason why not.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _info() -> int:
    """``otgrid info``: the version and the usable backends."""
    import platform

    import numba

    from otgrid import __version__
    from otgrid._device import cuda_status
    from otgrid.backends import available_backends

    print(f"otgrid {__version__} (Python {platform.python_version()}, NumPy {np.__version__}, "
          f"Numba {numba.__version__})")
    status = dict(available_backends())
    status.setdefault("cuda", cuda_status())
    if status["cuda"] == "available":
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        status["cuda"] += f" ({name.decode() if isinstance(name, bytes) else name})"
    print("backends:")
    for name, state in status.items():
        print(f"  {name:<6} {state}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``otgrid`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status: 0 on success, 2 on bad input (a one-line message on standard error),
        1 when an output file could not be written.

    Examples
    --------
    >>> from otgrid.cli import main
    >>> main(["critic", "point(0)", "point(1)", "--bounds", "-1", "2", "--shape", "12",
    ...       "--quiet", "--no-figure"])  # doctest: +ELLIPSIS
    MU: PointMass(location=0.0)
    NU: PointMass(location=1.0)
    grid: 1D, bounds [-1, 2] (given), shape 12, dx 0.25
    W ≈ 1  in [...]
    ...
    0
    """
    parser = _build_parser()
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = parser.parse_args(_protect_negative_numbers(argv))
        if args.command is None:
            raise _UsageError("choose a command, e.g. otgrid critic 'normal(0, 1)' "
                              "'normal(1, 1)' (see 'otgrid --help')")
        if args.command == "info":
            return _info()
        if args.command == "audit":
            from otgrid.cli_audit import run_audit

            return run_audit(args)
        if args.command == "sco":
            return _sco(args)
        return _critic(args)
    except _UsageError as exc:
        print(f"otgrid: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # e.g. `otgrid critic ... | head`: stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
