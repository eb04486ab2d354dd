"""``otgrid critic MU NU``: W1 between two distributions and the optimal critic, with a figure."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from otgrid.cli.common import (
    _check_output,
    _check_unit_interval,
    _dimension_hint,
    _discretize,
    _distinct_outputs,
    _fmt_bounds,
    _load_pair,
    _make_grid,
    _Outputs,
    _symbol,
    _UsageError,
)
from otgrid.grid.spec import GRAMMAR

__all__ = ["add_critic_parser", "run_critic"]

_ROUND_OFF = 1e-12  # outside mass below this is not reported (the grid's round-off level)

_EXAMPLES = """\
examples:
  otgrid critic "normal(0, 1)" "normal(1, 1)"            # 1D, W close to 1
  otgrid critic "normal([0, 0], 1)" 8gaussians --tol 1e-4 --flow --figure w.png
  otgrid critic "mixture(0.3*normal(-2, 1), 0.7*normal(2, .5))" "uniform(-3, 3)"
  otgrid critic "parallel_lines(0.5)"                    # Arjovsky's pair, W close to 0.5
  otgrid critic samples.npy "normal([0, 0], 1)" --bounds -6 6 -6 6 --tol 1e-4 --json w.json

The dimension comes from the distributions (normal(0, 1) is 1D, normal([0, 0], 1) 2D);
a dimension-free spec such as normal(0, 1) next to a 2D one, or with 2D --bounds, is 2D.
Default bounds: a box holding both distributions (Gaussians to mean +- 5 std), padded
by 5% and rounded outward. With --outside auto (the default) a mass outside the bounds
of at most 1e-6 per axis is renormalized away silently and more is an error that suggests
bounds; --outside renormalize or fold keep the given bounds (and say how much was outside).
Ctrl-C during the solve stops it: the best bounds so far are printed and the outputs
written, then the command exits with status 130; Ctrl-C at any other moment exits at once
with 130 ("otgrid: interrupted" on standard error).
Exit status: 0 on success (also when --max-iter stops the solver before --tol: the
printed bounds still hold and a warning says so), 2 on bad input (one line on standard
error, also for a grid that does not fit in the memory available, or the same path given
to --figure and --json), 1 when an output file cannot be written, 130 when interrupted."""



def add_critic_parser(sub: Any) -> None:
    """Add the ``critic`` command to the sub-parsers ``sub``."""
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
                        help="relative gap (upper - lower) / upper at which to stop, in (0, 1) "
                             "(default: 1e-6)")
    critic.add_argument("--max-iter", type=int, default=100_000, dest="max_iter",
                        help="iteration limit (default: 100000)")
    critic.add_argument("--backend", choices=("auto", "numpy", "numba", "cuda"), default="auto",
                        help="solver backend (default: auto)")
    critic.add_argument("--time-limit", type=float, default=None, dest="time_limit",
                        metavar="SECONDS",
                        help="stop after this many seconds with the best certified bounds so "
                             "far (default: none). Ctrl-C also stops with the best bounds "
                             "(exit status 130).")
    critic.add_argument("--float32", action="store_true",
                        help="iterate in float32 (faster on large grids; the bounds are still "
                             "certified in float64)")
    critic.add_argument("--outside", choices=("auto", "renormalize", "fold", "raise"),
                        default="auto",
                        help="mass outside the bounds: 'auto' (default) drops at most 1e-6 "
                             "per axis silently and stops with an error above; 'renormalize' "
                             "rescales the rest, 'fold' moves it into the boundary cells (both "
                             "report it); 'raise' stops above 1e-12")
    figure = critic.add_mutually_exclusive_group()
    figure.add_argument("--figure", default="critic.png", metavar="PATH",
                        help="figure file, format from the extension (default: critic.png)")
    figure.add_argument("--no-figure", action="store_true", dest="no_figure",
                        help="do not write a figure")
    critic.add_argument("--flow", action="store_true",
                        help="draw the optimal transport flow as arrows on the figure")
    critic.add_argument("--quiet", action="store_true", help="no progress lines")
    critic.add_argument("--json", metavar="PATH",
                        help="also write the results (W, bounds, grid, diagnostics) as JSON")

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


def run_critic(args: argparse.Namespace) -> int:
    """``otgrid critic``: on a first run (without ``--quiet``) standard error says
    "note: ... compiling kernels (first run only)"."""
    from otgrid._threads import notes_to_stderr

    if args.quiet:
        return _run_critic(args)
    with notes_to_stderr():
        return _run_critic(args)


def _run_critic(args: argparse.Namespace) -> int:
    from otgrid.critic.solve import solve_critic
    from otgrid.errors import ConvergenceWarning

    _check_unit_interval(args.tol, "--tol")
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
    _distinct_outputs(("--figure", fig_path), ("--json", json_path))

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
        masses[name], outside[name] = _discretize(grid, dist, args.outside, name,
                                                  hold=[mu_dist, nu_dist])
        # 'auto' drops at most 1e-6 per axis silently (more is an error); explicit modes say so
        if args.outside in ("renormalize", "fold") and outside[name] > _ROUND_OFF:
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

    if res.iterations == 0 and res.status == "interrupted" and res.levels == 1:
        # the bounds of the starting point hold, but their midpoint is no estimate of W (after
        # a multilevel start's coarse solves it is one: they are printed as usual)
        print(f"W in [{res.lower:.10g}, {res.upper:.10g}] (interrupted before the first "
              "iteration: no estimate)")
    else:
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

    outputs = _Outputs()
    wrote_figure = outputs.write("figure", fig_path, lambda: _write_figure(
        res, masses["MU"], masses["NU"], label, args.flow, fig_path))
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
            "figure": str(fig_path) if wrote_figure else None,
        }
        outputs.write("results", json_path, lambda: json_path.write_text(
            json.dumps(record, indent=2) + "\n", encoding="utf-8"))
    if outputs.status():
        return 1
    if res.status == "interrupted":
        print("otgrid: interrupted: stopped with the best bounds so far (printed above)",
              file=sys.stderr)
        return 130
    return 0


