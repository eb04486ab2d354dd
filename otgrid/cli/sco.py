"""``otgrid sco TARGET``: fit a Gaussian generator to a target by SCO with the exact critic."""

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
    _check_count_memory,
    _check_output,
    _check_seed,
    _check_unit_interval,
    _ctrl_c_stops,
    _dimension_hint,
    _discretize,
    _distinct_outputs,
    _fmt_bounds,
    _is_parallel_lines,
    _make_grid,
    _Outputs,
    _parse,
    _symbol,
    _UsageError,
)
from otgrid.grid.spec import GRAMMAR

__all__ = ["add_sco_parser", "run_sco"]

_SCO_EXAMPLES = """\
examples:
  otgrid sco "normal(2, std=0.5)" --init-loc 0 --init-scale 2 --steps 1000 --figure sco.png
  otgrid sco "normal([0.5, -0.3], [0.36, 0.16])" --init-loc -1 1 --init-scale 0.1 1.5 \\
      --shape 32 --stop-param-tol 0.01
  otgrid sco "normal([0, 0], [[1, .5], [.5, 1]])" --generator affine --steps 300 --shape 32
  otgrid sco "normal(1, std=0.5)" --prox --stop-param-tol 0.02 --json fit.json

The first example reaches loc 2, scale 0.5 with a parameter error of about 0.002
(below 0.01). An SGD step moves a parameter by at most --lr (the critic is
1-Lipschitz): at the default --lr 5e-3, loc gets from 0 to 2 after about 600 steps.
The second stops within 0.01 of the true parameters (after about 550 steps), the
third ends with A A^T close to the target covariance [[1, .5], [.5, 1]], the fourth
within 0.02 of the true parameters.

The generator is g(z) = scale * z + loc per axis (location-scale, the default) or
g(z) = A z + b (affine; A starts as diag(--init-scale)), with z ~ N(0, I). When the target
is a Gaussian with a diagonal covariance and the generator is location-scale, the true
parameters are known: the parameter error is printed and --stop-param-tol may be used.
Default bounds: a box holding the target and the initial generator (Gaussians to mean +- 5
std), padded by 5% and rounded outward. Default shape: 256 cells in 1D, 64 x 64 in 2D.
A target with more than 1e-6 (per axis) of its mass outside the bounds is an error
unless --outside renormalize or fold is given; generated mass outside is folded into the
boundary cells (the critic pushes it back) and reported.
Ctrl-C stops the fit after the current step: the parameters and bounds reached are printed
and the outputs written, then the command exits with status 130 (a second Ctrl-C, or one
before the fit, exits at once with 130: "otgrid: interrupted" on standard error).
Exit status: 0 on success (also when a stopping tolerance was not met or the fit stopped
early on bad values: the message says why), 2 on bad input (one line on standard error,
also for a --batch or --n-mass-samples whose samples do not fit in the memory available,
or the same path given to --figure and --json), 1 when an output file cannot be written,
130 when interrupted."""


def add_sco_parser(sub: Any) -> None:
    """Add the ``sco`` command to the sub-parsers ``sub``."""
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
                     help="relative gap of each critic solve, in (0, 1) (default: 1e-3)")
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
    sco.add_argument("--outside", choices=("auto", "renormalize", "fold", "raise"),
                     default="auto",
                     help="target mass outside the bounds: 'auto' (default) drops at most 1e-6 "
                          "per axis silently and stops with an error above; 'renormalize', "
                          "'fold' keep the bounds (and report it); 'raise' stops above 1e-12")
    sco.add_argument("--norm", choices=("euclidean", "cityblock"), default="euclidean",
                     help="pointwise norm of the critic constraint (default: euclidean)")
    sco.add_argument("--backend", choices=("auto", "numpy", "numba", "cuda"), default="auto",
                     help="critic solver backend (default: auto)")
    sco.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default: 0)")
    figure = sco.add_mutually_exclusive_group()
    figure.add_argument("--figure", default="sco.png", metavar="PATH",
                        help="learning-curve figure, format from the extension (default: "
                             "sco.png)")
    figure.add_argument("--no-figure", action="store_true", dest="no_figure",
                        help="do not write a figure")
    sco.add_argument("--quiet", action="store_true", help="no progress line")
    sco.add_argument("--json", metavar="PATH",
                     help="also write the results (parameters, W, history) as JSON")



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
    from otgrid.grid.distributions import Normal

    if generator_kind != "location-scale" or not isinstance(target, Normal):
        return None
    cov = target.cov
    if np.any(cov - np.diag(np.diag(cov))):
        return None
    return np.concatenate([target.mean, np.sqrt(np.diag(cov))])


def _check_sco_args(args: argparse.Namespace) -> None:
    from otgrid.grid.grid import MAX_COORDINATE

    _check_unit_interval(args.critic_tol, "--critic-tol")
    for name, value in (("--lr", args.lr), ("--prox-h", args.prox_h)):
        if not (math.isfinite(value) and value > 0):
            raise _UsageError(f"{name} must be a positive number; got {value}.")
    for name, value in (("--steps", args.steps), ("--batch", args.batch),
                        ("--n-mass-samples", args.n_mass_samples),
                        ("--prox-steps", args.prox_steps)):
        if value < (0 if name == "--steps" else 1):
            raise _UsageError(f"{name} must be >= {0 if name == '--steps' else 1}; got {value}.")
    _check_seed(args.seed)
    for name, value in (("--stop-param-tol", args.stop_param_tol),
                        ("--stop-w-tol", args.stop_w_tol)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise _UsageError(f"{name} must be a positive number; got {value}.")
    for name, values in (("--init-loc", args.init_loc), ("--init-scale", args.init_scale)):
        if values is not None and not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE
                                          for v in values):
            raise _UsageError(f"{name} must be finite numbers within +-{MAX_COORDINATE:g}; "
                              f"got {values}.")
    if args.init_scale is not None and any(0 < abs(v) < 1 / MAX_COORDINATE
                                           for v in args.init_scale):
        raise _UsageError(f"--init-scale must be 0 or at least {1 / MAX_COORDINATE:g} in "
                          f"magnitude (its square is the variance); got {args.init_scale}.")


def _sco_figure(res: Any, label: str, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from otgrid.plot import plot_sco, save_figure

    four = res.param_error is not None
    fig = Figure(figsize=(11.0, 7.0) if four else (14.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    plot_sco(res, fig=fig, title=label)
    save_figure(fig, path)


# bytes per generated point of a step's arrays: latent and generated points, the critic's
# gradient and interpolation weights (a generous estimate, float64)
_BYTES_PER_POINT = {1: 8 * 16, 2: 8 * 24}


def _check_sample_memory(args: argparse.Namespace, ndim: int) -> None:
    """Refuse at once a --batch (or --n-mass-samples) whose points would not fit in memory."""
    _check_count_memory("--batch", args.batch, _BYTES_PER_POINT[ndim],
                        "the generated points of a step")
    if args.masses == "samples":
        _check_count_memory("--n-mass-samples", args.n_mass_samples, _BYTES_PER_POINT[ndim],
                            "the points of each histogram")


def run_sco(args: argparse.Namespace) -> int:
    """``otgrid sco``: the checks, the fit (stopped by Ctrl-C after the current step), the
    printed result and the output files."""
    from otgrid.grid.distributions import Normal, PointMass
    from otgrid.sco.generators import Affine, LocationScale

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
    _check_sample_memory(args, ndim)
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
    _distinct_outputs(("--figure", fig_path), ("--json", json_path))

    print(f"TARGET: {target!r}")
    print(f"generator: {gen!r} (start)")
    source = "given" if args.bounds is not None else "default, holding target and start"
    print(f"grid: {ndim}D, bounds {_fmt_bounds(grid.bounds)} ({source}), shape "
          f"{' x '.join(map(str, grid.shape))}, dx {', '.join(f'{h:.4g}' for h in grid.dx)}")
    mu, out = _discretize(grid, target, args.outside, "TARGET", hold=[target, start])
    if args.outside in ("renormalize", "fold") and out > 1e-12:
        how = "folded into the boundary cells" if args.outside == "fold" else "renormalized"
        print(f"TARGET: mass {out:.3g} lies outside the bounds ({how}); enlarge --bounds to "
              "avoid this")
    res = _fit(args, mu, gen, grid, true)
    _print_result(res, true)
    outputs = _Outputs()
    wrote_figure = outputs.write("figure", fig_path, lambda: _sco_figure(
        res, f"SCO fit of {args.target}", fig_path))
    if json_path is not None:
        record = _record(args, res, target, true, grid)
        record["figure"] = str(fig_path) if wrote_figure else None
        outputs.write("results", json_path, lambda: json_path.write_text(
            json.dumps(record, indent=2) + "\n", encoding="utf-8"))
    if outputs.status():
        return 1
    if res.status == "interrupted":
        print(f"otgrid: interrupted: stopped after step {res.steps} (the result above)",
              file=sys.stderr)
        return 130
    return 0


def _fit(args: argparse.Namespace, mu: np.ndarray, gen: Any, grid: Any,
         true: np.ndarray | None) -> Any:
    """:func:`otgrid.sco.fit` with the command's options: its warnings as ``otgrid: warning``
    lines, a first Ctrl-C as a stop after the current step (status ``"interrupted"``)."""
    import dataclasses

    from otgrid.errors import ConvergenceWarning, OutsideMassWarning
    from otgrid.sco.loop import fit
    from otgrid.sco.result import WassersteinProx

    prox = WassersteinProx(args.prox_h, args.prox_steps) if args.prox else None
    with warnings.catch_warnings(record=True) as caught, _ctrl_c_stops() as asked:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", OutsideMassWarning)
        try:
            res = fit(mu, gen, grid, steps=args.steps, lr=args.lr, batch=args.batch,
                      optimizer=args.optimizer, masses=args.masses,
                      n_mass_samples=args.n_mass_samples, critic_tol=args.critic_tol,
                      prox=prox, true_params=true, stop_param_tol=args.stop_param_tol,
                      stop_w_tol=args.stop_w_tol, norm=args.norm, backend=args.backend,
                      progress=not args.quiet, rng=args.seed, callback=lambda info: asked())
        except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: no usable GPU
            raise _UsageError(str(exc)) from None
        except MemoryError:
            raise _UsageError(f"out of memory during the fit; lower --batch ({args.batch})"
                              + (f" or --n-mass-samples ({args.n_mass_samples})"
                                 if args.masses == "samples" else "")
                              + ", or use a coarser --shape.") from None
    for w in caught:
        if issubclass(w.category, (ConvergenceWarning, OutsideMassWarning)):
            print(f"otgrid: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if res.status == "callback":  # the only callback is Ctrl-C's
        res = dataclasses.replace(
            res, status="interrupted",
            message=f"Interrupted (Ctrl-C) after step {res.steps}; W in "
                    f"[{res.lower[-1]:.6g}, {res.upper[-1]:.6g}].")
    return res


def _print_result(res: Any, true: np.ndarray | None) -> None:
    approx = _symbol("≈", "~=")

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


def _record(args: argparse.Namespace, res: Any, target: Any, true: np.ndarray | None,
            grid: Any) -> dict:
    """The JSON record of a fit (``figure`` is set by the caller)."""
    prox = res.prox
    return {
        "target": args.target, "target_distribution": repr(target), "ndim": target.ndim,
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
    }
