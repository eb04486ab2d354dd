"""``otgrid audit CRITIC.pt --mu MU --nu NU``: audit a saved torch critic against the exact one.

The critic file is a TorchScript module (``torch.jit.save``) or a state dict
(``torch.save(net.state_dict(), path)``) of a ReLU perceptron as built by
:func:`otgrid.auditing.baselines.make_critic` (hidden widths read from the weights, or given
with ``--arch``; spectral normalisation detected from the keys). Prints the
:class:`otgrid.auditing.report.AuditReport` table and writes its figure.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["add_audit_parser", "run_audit"]

_EXAMPLES = """\
examples:
  otgrid audit critic.pt --mu "normal(0, 1)" --nu "normal(1, 1)"
  otgrid audit critic_state.pt --arch 2d --mu 8gaussians --nu "normal([0, 0], 1)" \\
      --figure audit.png --json audit.json

The critic must be high where MU has mass (E_MU f - E_NU f > 0 for a good critic).
CRITIC is a TorchScript file, or a state dict of a ReLU MLP (Linear, ReLU, ..., Linear) as
made by otgrid.auditing.baselines.make_critic; its hidden widths are read from the weights (or
--arch 1d|2d|toy|W,W,...). Needs torch (pip install 'otgrid[torch]').
Exit status: 0 on success, 2 on bad input, 1 when an output file cannot be written."""


def add_audit_parser(sub: Any) -> None:
    """Register the ``audit`` subcommand on an ``argparse`` subparsers object.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``add_subparsers()`` result of the ``otgrid`` parser.
    """
    from otgrid.grid.spec import GRAMMAR

    p = sub.add_parser(
        "audit",
        help="audit a saved torch critic against the optimal critic (needs torch)",
        description="Load a torch critic, solve the exact W1 critic of MU and NU on a grid,\n"
                    "print the audit metrics (w_ratio, lipschitz, grad_cosine, grad_l2,\n"
                    "shape_error) and write a figure.",
        epilog=f"{GRAMMAR}\n\n{_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("critic", metavar="CRITIC", help="TorchScript file or state dict (.pt)")
    p.add_argument("--mu", required=True, metavar="SPEC",
                   help="distribution where the critic is high (grammar below)")
    p.add_argument("--nu", default=None, metavar="SPEC",
                   help="the other distribution (omit after parallel_lines(theta))")
    p.add_argument("--arch", default=None, metavar="ARCH",
                   help="architecture of a state dict: 1d, 2d, toy or hidden widths W,W,... "
                        "(default: read from the weights)")
    p.add_argument("--bounds", nargs="+", type=float, metavar="LOW HIGH",
                   help="grid box, one LOW HIGH pair per axis; default: holds both")
    p.add_argument("--shape", nargs="+", type=int, metavar="N",
                   help="cells per axis; default 512 in 1D, 128 x 128 in 2D")
    p.add_argument("--samples", type=int, default=4096, metavar="N",
                   help="samples per measure for the sample metrics (default: 4096)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: 0)")
    p.add_argument("--tau", type=float, default=0.05,
                   help="Lipschitz tolerance: |grad f| > 1 + tau is a violation (default 0.05)")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="relative gap of the exact solve (default: 1e-4)")
    p.add_argument("--resolution", choices=("grid", "auto"), default="grid",
                   help="'auto': refine the grid (twice the cells per axis) until the metrics "
                        "settle or --time-budget is spent (default: grid)")
    p.add_argument("--time-budget", type=float, default=60.0, dest="time_budget",
                   metavar="SECONDS", help="seconds for --resolution auto (default: 60)")
    p.add_argument("--outside", choices=("renormalize", "fold", "raise"),
                   default="renormalize", help="mass outside the bounds (default: renormalize)")
    p.add_argument("--figure", default="audit.png", metavar="PATH",
                   help="figure file (default: audit.png)")
    p.add_argument("--no-figure", action="store_true", dest="no_figure",
                   help="do not write a figure")
    p.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")


def _usage(message: str) -> Exception:
    from otgrid.cli.common import _UsageError

    return _UsageError(message)


def _parse_arch(text: str) -> str | tuple[int, ...]:
    if text in ("1d", "2d", "toy"):
        return text
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise _usage(f"--arch {text!r}: use 1d, 2d, toy or hidden widths such as 64,64.") from None
    if not widths or min(widths) < 1:
        raise _usage(f"--arch {text!r}: hidden widths must be positive integers.")
    return widths


def _widths_from_state(state: dict) -> tuple[int, ...]:
    """Hidden widths of a ``make_critic`` state dict, from its weight shapes."""
    layers: dict[int, Any] = {}
    for key, value in state.items():
        m = re.fullmatch(r"(\d+)\.(?:weight|parametrizations\.weight\.original)", key)
        if m:
            layers[int(m.group(1))] = value
    if not layers:
        raise _usage("CRITIC is a state dict without Linear weights named like '0.weight'; "
                     "give --arch, or save the network as TorchScript (torch.jit.script).")
    shapes = [tuple(layers[i].shape) for i in sorted(layers)]
    return tuple(s[0] for s in shapes[:-1])


def load_critic(path: str, ndim: int, arch: str | None) -> Any:
    """Load a TorchScript critic or a ``make_critic`` state dict (CPU, eval mode).

    Parameters
    ----------
    path : str
        File written by ``torch.jit.save`` or ``torch.save(net.state_dict(), path)``.
    ndim : int
        Input dimension (of the distributions).
    arch : str, optional
        ``1d``, ``2d``, ``toy`` or ``W,W,...``; default: read from the state dict.

    Returns
    -------
    torch.nn.Module
    """
    try:
        import torch
    except ImportError:
        raise _usage("otgrid audit needs torch: pip install 'otgrid[torch]'.") from None
    p = Path(path).expanduser()
    if not p.is_file():
        raise _usage(f"CRITIC {path!r}: no such file.")
    try:
        with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(p), map_location="cpu")
    except (RuntimeError, ValueError):
        net = None
    if net is None:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _usage(f"CRITIC {path!r} is neither TorchScript nor a state dict "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0]}). Save the "
                         "network with torch.jit.save(torch.jit.script(net), path) or "
                         "torch.save(net.state_dict(), path).") from None
        if not isinstance(state, dict):
            raise _usage(f"CRITIC {path!r} holds a {type(state).__name__}, not a state dict.")
        from otgrid.auditing.baselines import make_critic

        widths = _parse_arch(arch) if arch is not None else _widths_from_state(state)
        sn = any("parametrizations" in k for k in state)
        dtype = next(iter(state.values())).dtype
        net = make_critic(ndim, widths, spectral_norm=sn, dtype=dtype)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise _usage(f"CRITIC {path!r} does not fit a {ndim}D ReLU MLP with hidden widths "
                         f"{widths}: {str(exc).splitlines()[0]}") from None
    net.eval()
    return net


def run_audit(args: argparse.Namespace) -> int:
    """Handle ``otgrid audit`` (arguments from :func:`add_audit_parser`).

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 on success, 1 when an output file cannot be written; bad input raises the CLI's
        usage error (exit status 2 in :func:`otgrid.cli.main`).
    """
    from otgrid.auditing.metrics import audit
    from otgrid.cli.common import (
        _check_output,
        _dimension_hint,
        _discretize,
        _fmt_bounds,
        _load_pair,
        _make_grid,
    )

    if args.samples < 1:
        raise _usage(f"--samples must be >= 1; got {args.samples}.")
    if not args.tau >= 0:
        raise _usage(f"--tau must be >= 0; got {args.tau}.")
    mu, nu, label = _load_pair(args.mu, args.nu, _dimension_hint(args))
    grid = _make_grid(args, mu.ndim, mu, nu)
    if grid.ndim not in (1, 2):
        raise _usage(f"otgrid audit works in 1D and 2D; the distributions are {grid.ndim}D.")
    fig_path = None if args.no_figure else _check_output(args.figure, "--figure", figure=True)
    json_path = _check_output(args.json, "--json")
    net = load_critic(args.critic, grid.ndim, args.arch)
    mu_m, out_mu = _discretize(grid, mu, args.outside)
    nu_m, out_nu = _discretize(grid, nu, args.outside)
    print(f"MU: {mu!r}\nNU: {nu!r}")
    print(f"grid: {grid.ndim}D, bounds {_fmt_bounds(grid.bounds)}, shape "
          f"{' x '.join(map(str, grid.shape))}")
    if out_mu > 0 or out_nu > 0:
        print(f"mass outside the bounds: MU {out_mu:.3g}, NU {out_nu:.3g} ({args.outside})")
    from otgrid.critic.solve import solve_critic

    if not (args.time_budget > 0 and args.time_budget < float("inf")):
        raise _usage(f"--time-budget must be a positive number of seconds; got "
                     f"{args.time_budget}.")
    if not (0 < args.tol < 1):
        raise _usage(f"--tol must be in (0, 1); got {args.tol}.")
    try:
        exact = solve_critic(mu_m, nu_m, grid, tol=args.tol)
        rep = audit(net, mu, nu, grid, exact=exact, samples=args.samples, tau=args.tau,
                    tol=args.tol, resolution=args.resolution, time_budget=args.time_budget,
                    outside=args.outside, seed=args.seed)
    except (ValueError, RuntimeError) as exc:
        raise _usage(f"critic: {str(exc).splitlines()[0]}") from None
    print(rep)
    try:
        if fig_path is not None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            from otgrid.auditing.plot import plot_audit

            fig = Figure(figsize=(10.0, 4.0) if grid.ndim == 1 else (14.0, 4.5),
                         layout="constrained")
            FigureCanvasAgg(fig)
            plot_audit(rep, fig=fig, title=label)
            fig.savefig(fig_path, dpi=150)
            print(f"figure written to {fig_path}")
        if json_path is not None:
            json_path.write_text(rep.to_json() + "\n", encoding="utf-8")
            print(f"results written to {json_path}")
    except OSError as exc:
        print(f"otgrid: error: could not write an output file: {exc}", file=sys.stderr)
        return 1
    return 0
