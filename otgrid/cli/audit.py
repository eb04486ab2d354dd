"""``otgrid audit CRITIC.pt --mu MU --nu NU``: audit a saved torch critic against the exact one.

The critic file is a state dict (``torch.save(net.state_dict(), path)``) of a ReLU perceptron
as built by :func:`otgrid.auditing.baselines.make_critic` (hidden widths read from the weights,
or given with ``--arch``; spectral normalisation detected from the keys), read with
``torch.load(..., weights_only=True)`` (torch >= 2.6). A TorchScript module (``torch.jit.save``)
runs code when loaded: it is loaded only with ``--torchscript``, and a warning says so. A whole
pickled module (``torch.save(net, path)``) is refused. Prints the
:class:`otgrid.auditing.report.AuditReport` table and writes its figure.
"""

from __future__ import annotations

import argparse
import io
import pickletools
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["add_audit_parser", "run_audit"]

_EXAMPLES = """\
examples:
  otgrid audit critic.pt --mu "normal(0, 1)" --nu "normal(1, 1)" --figure audit.png
  otgrid audit critic_state.pt --arch 2d --mu 8gaussians --nu "normal([0, 0], 1)" \\
      --figure audit.png --json audit.json

The critic must be high where MU has mass (E_MU f - E_NU f > 0 for a good critic).
CRITIC is a state dict of a ReLU MLP (Linear, ReLU, ..., Linear) as made by
otgrid.auditing.baselines.make_critic, saved with torch.save(net.state_dict(), path); its
hidden widths are read from the weights (or --arch 1d|2d|toy|W,W,...). It is read with
torch.load(..., weights_only=True), which loads tensors only (torch >= 2.6). A TorchScript
file runs code when loaded: it is refused unless --torchscript is given (then a warning says
so); load only files you trust. A whole pickled module (torch.save(net, path)) is refused.
Needs torch (pip install 'otgrid[torch]').
Exit status: 0 on success, 2 on bad input (one line on standard error, also for a --samples
whose points do not fit in the memory available, or the same path given to --figure and
--json), 1 when an output file cannot be written, 130 when interrupted (Ctrl-C:
"otgrid: interrupted" on standard error)."""


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
    p.add_argument("critic", metavar="CRITIC",
                   help="state dict of the critic (.pt); TorchScript with --torchscript")
    p.add_argument("--mu", required=True, metavar="SPEC",
                   help="distribution where the critic is high (grammar below)")
    p.add_argument("--nu", default=None, metavar="SPEC",
                   help="the other distribution (omit after parallel_lines(theta))")
    p.add_argument("--arch", default=None, metavar="ARCH",
                   help="architecture of a state dict: 1d, 2d, toy or hidden widths W,W,... "
                        "(default: read from the weights)")
    p.add_argument("--torchscript", action="store_true",
                   help="also load a TorchScript CRITIC; it runs the code it holds, so use this "
                        "only for files you trust")
    p.add_argument("--bounds", nargs="+", type=float, metavar="LOW HIGH",
                   help="grid box, one LOW HIGH pair per axis; default: holds both")
    p.add_argument("--shape", nargs="+", type=int, metavar="N",
                   help="cells per axis; default 512 in 1D, 128 x 128 in 2D")
    p.add_argument("--samples", type=int, default=4096, metavar="N",
                   help="samples per measure for the sample metrics (default: 4096)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampling, >= 0 (default: 0)")
    p.add_argument("--tau", type=float, default=0.05,
                   help="Lipschitz tolerance: |grad f| > 1 + tau is a violation (default 0.05)")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="relative gap of the exact solve (default: 1e-4)")
    p.add_argument("--resolution", choices=("grid", "auto"), default="grid",
                   help="'auto': refine the grid (twice the cells per axis) until the metrics "
                        "settle or --time-budget is spent (default: grid)")
    p.add_argument("--time-budget", type=float, default=60.0, dest="time_budget",
                   metavar="SECONDS", help="seconds for --resolution auto (default: 60)")
    p.add_argument("--outside", choices=("auto", "renormalize", "fold", "raise"),
                   default="auto",
                   help="mass outside the bounds: auto (default) drops at most 1e-6 of it per "
                        "axis silently and refuses more; renormalize or fold handle any amount; "
                        "raise refuses any")
    figure = p.add_mutually_exclusive_group()
    figure.add_argument("--figure", default="audit.png", metavar="PATH",
                        help="figure file (default: audit.png)")
    figure.add_argument("--no-figure", action="store_true", dest="no_figure",
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


# --------------------------------------------------------------------------- loading a critic
# torch.load(weights_only=True) of torch <= 2.5.1 can be made to run code (CVE-2025-32434)
_MIN_TORCH = (2, 6)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_SAVE_HINT = "torch.save(net.state_dict(), path)"


def _check_torch_version(version: str) -> None:
    """Refuse a torch whose ``weights_only`` loader is not safe (older than 2.6)."""
    m = re.match(r"(\d+)\.(\d+)", str(version))
    if m is None or (int(m.group(1)), int(m.group(2))) < _MIN_TORCH:
        raise _usage(f"otgrid audit needs torch >= 2.6 to load critic files safely; torch "
                     f"{version} is installed, whose torch.load(weights_only=True) can be made "
                     "to run code (CVE-2025-32434): upgrade it (pip install 'otgrid[torch]').")


def _torch_detail(exc: BaseException) -> str:
    """The first sentence of the first informative line of a torch error: ANSI codes removed,
    never torch's advice on ``weights_only`` (empty when nothing else is left)."""
    for line in _ANSI.sub("", str(exc)).splitlines():
        line = line.strip().rstrip(":").strip()
        if line and "weights_only" not in line and not line.startswith("Error(s) in loading"):
            line = line.split(". ", 1)[0].rstrip(".")  # the first sentence
            return line if len(line) <= 200 else line[:197] + "..."
    return ""


def _open_check(path: str) -> Path:
    """The path of the critic file; one-line errors for a path that is not a readable,
    non-empty file (:func:`otgrid.cli.common._input_file`)."""
    from otgrid.cli.common import _input_file

    p = _input_file(path, "CRITIC", "critic file (.pt)")
    try:
        with p.open("rb") as fh:
            head = fh.read(1)
    except OSError as exc:
        raise _usage(f"CRITIC {path!r} cannot be read: {exc.strerror or exc}.") from None
    if not head:
        raise _usage(f"CRITIC {path!r} is empty (0 bytes), not a saved critic.")
    return p


def _is_torchscript(p: Path) -> bool:
    """Whether ``p`` is a TorchScript archive: a zip whose record holds ``code/`` or
    ``constants.pkl`` (what ``torch.jit.save`` writes; ``torch.save`` writes neither)."""
    if not zipfile.is_zipfile(p):
        return False
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    rest = [n.split("/", 1)[1] for n in names if "/" in n]
    return any(r.startswith("code/") or r == "constants.pkl" for r in rest)


def _pickles(p: Path) -> list[bytes]:
    """The pickle streams of a torch file (``data.pkl`` of a zip, else the whole file)."""
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            return [z.read(n) for n in z.namelist() if n.endswith("data.pkl")]
    with p.open("rb") as fh:
        return [fh.read(1 << 26)]  # a critic is small; read no more than 64 MiB of a big file


def _pickles_a_module(p: Path) -> bool:
    """Whether the pickle of ``p`` holds a ``torch.nn.Module``, read from its opcodes (without
    unpickling): a global from ``torch.nn.modules`` or the ``_modules`` and ``_parameters``
    attributes that every module pickles."""
    names: set[str] = set()
    try:
        for data in _pickles(p):
            stream = io.BytesIO(data)
            while stream.tell() < len(data):  # the legacy format is several pickles in a row
                for _, arg, _ in pickletools.genops(stream):
                    if isinstance(arg, str):
                        names.add(arg.replace(" ", "."))
    except Exception:  # the bytes after the pickles, or not a pickle at all
        pass
    return (any(n.startswith("torch.nn.modules.") for n in names)
            or {"_modules", "_parameters"} <= names)


def _load_state(torch: Any, p: Path, path: str) -> dict:
    """``torch.load(p, weights_only=True)``, its failures in otgrid's words."""
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise _usage(f"CRITIC {path!r} cannot be read: {exc.strerror or exc}.") from None
    except Exception as exc:  # torch raises anything on a foreign file
        if _pickles_a_module(p):
            raise _usage(f"CRITIC {path!r} is a pickled torch module, which otgrid does not "
                         "load (it could run code): save its state_dict() instead: "
                         f"{_SAVE_HINT}.") from None
        rejected = re.search(r"GLOBAL ([\w.]+)", _ANSI.sub("", str(exc)))
        if rejected:
            raise _usage(f"CRITIC {path!r} holds a pickled {rejected.group(1)}, which otgrid "
                         f"does not load (it could run code): save a state dict: {_SAVE_HINT}."
                         ) from None
        raise _usage(f"CRITIC {path!r} is not a torch file (neither TorchScript nor a state "
                     f"dict): save the critic with {_SAVE_HINT}.") from None
    if not isinstance(state, dict):
        raise _usage(f"CRITIC {path!r} holds a {type(state).__name__}, not a state dict: save "
                     f"the critic with {_SAVE_HINT}.")
    if not state:
        raise _usage(f"CRITIC {path!r} holds an empty dict, not the state dict of a critic.")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise _usage(f"CRITIC {path!r} holds a dict whose entry {key!r} is not a tensor "
                         f"({type(value).__name__}): save the critic's own state dict: "
                         f"{_SAVE_HINT}.")
    return state


def _linear_weights(state: dict) -> list[Any]:
    """The weights of the ``Linear`` layers of a ``make_critic`` state dict, in order."""
    layers: dict[int, Any] = {}
    for key, value in state.items():
        m = re.fullmatch(r"(\d+)\.(?:weight|parametrizations\.weight\.original)", key)
        if m:
            layers[int(m.group(1))] = value
    return [layers[i] for i in sorted(layers)]


def _critic_from_state(state: dict, ndim: int, arch: str | None, path: str) -> Any:
    """A ``make_critic`` network holding ``state``."""
    from otgrid.auditing.baselines import make_critic

    weights = _linear_weights(state)
    if arch is None and not weights:
        raise _usage(f"CRITIC {path!r} is a state dict without Linear weights named like "
                     "'0.weight' (a torch.nn.Sequential of Linear and ReLU layers); give "
                     "--arch if it is one.")
    if weights and weights[0].ndim == 2 and weights[0].shape[1] != ndim:
        raise _usage(f"CRITIC {path!r} does not fit the distributions: it takes "
                     f"{weights[0].shape[1]}D points, MU and NU are {ndim}D.")
    widths = _parse_arch(arch) if arch is not None else tuple(w.shape[0] for w in weights[:-1])
    sn = any("parametrizations" in k for k in state)
    dtype = weights[0].dtype if weights else next(iter(state.values())).dtype
    try:
        net = make_critic(ndim, widths, spectral_norm=sn, dtype=dtype)
        net.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        detail = _torch_detail(exc)
        raise _usage(f"CRITIC {path!r} does not fit a {ndim}D ReLU MLP with hidden widths "
                     f"{widths}" + (f": {detail}." if detail else ".")) from None
    return net


def _torchscript_warning(path: str) -> str:
    return (f"CRITIC {path!r} is TorchScript: loading it runs the code it holds; load only "
            "files you trust.")


def _load_torchscript(torch: Any, p: Path, path: str) -> Any:
    """``torch.jit.load`` (CPU) with the warning that it runs the file's code."""
    warnings.warn(_torchscript_warning(path), UserWarning, stacklevel=3)
    try:
        with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(p), map_location="cpu")
    except Exception as exc:  # a damaged archive fails in many ways
        detail = _torch_detail(exc)
        raise _usage(f"CRITIC {path!r} looks like TorchScript but torch.jit.load failed"
                     + (f": {detail}." if detail else ".")) from None


def load_critic(path: str, ndim: int, arch: str | None = None, *,
                allow_torchscript: bool = False) -> Any:
    """Load a saved critic (CPU, eval mode): a state dict, or TorchScript when allowed.

    Parameters
    ----------
    path : str
        File written by ``torch.save(net.state_dict(), path)`` (``net`` a ReLU perceptron as
        built by :func:`otgrid.auditing.baselines.make_critic`), or by ``torch.jit.save``.
    ndim : int
        Input dimension (of the distributions).
    arch : str, optional
        ``1d``, ``2d``, ``toy`` or ``W,W,...``; default: read from the state dict.
    allow_torchscript : bool, default False
        Load a TorchScript archive. Loading one runs the code it holds, so it is refused
        unless this is set, and a ``UserWarning`` says so when it is.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    otgrid.cli.common._UsageError
        A one-line message (exit status 2 of the command): torch missing or older than 2.6,
        no such file, not a torch file, a pickled module, TorchScript without
        ``allow_torchscript``, or weights that do not fit the network.

    Notes
    -----
    State dicts are read with ``torch.load(path, weights_only=True)``, which unpickles tensors
    and containers only. Torch older than 2.6 is refused: its ``weights_only`` loader can be
    made to run code (CVE-2025-32434). A whole pickled module (``torch.save(net, path)``) is
    refused too, since unpickling it can run any code.
    """
    try:
        import torch
    except ImportError:
        raise _usage("otgrid audit needs torch: pip install 'otgrid[torch]'.") from None
    _check_torch_version(torch.__version__)
    p = _open_check(path)
    if _is_torchscript(p):
        if not allow_torchscript:
            raise _usage(f"CRITIC {path!r} is TorchScript, which runs code when loaded: pass "
                         "--torchscript if you trust the file, or save a state dict: "
                         f"{_SAVE_HINT}.")
        net = _load_torchscript(torch, p, path)
    else:
        net = _critic_from_state(_load_state(torch, p, path), ndim, arch, path)
    net.eval()
    return net


def _load_reporting(args: argparse.Namespace, ndim: int) -> Any:
    """:func:`load_critic` for the command: its TorchScript warning as one stderr line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        net = load_critic(args.critic, ndim, args.arch, allow_torchscript=args.torchscript)
    for w in caught:
        if str(w.message) == _torchscript_warning(args.critic):
            print(f"otgrid: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return net


def _check_samples(args: argparse.Namespace, net: Any, ndim: int) -> None:
    """Refuse at once a --samples whose points would not fit in memory: three sets of points
    (MU's, NU's, between them) with the critic's values, gradients and hidden activations."""
    from otgrid.cli.common import _check_count_memory

    try:
        width = sum(int(w.shape[0]) for w in net.parameters() if w.ndim == 2)
    except Exception:  # a TorchScript module without the usual parameters
        width = 256
    _check_count_memory("--samples", args.samples, 3 * 8 * (2 * ndim + 2 + 2 * width),
                        "the sample points and the critic's activations")


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
        _check_seed,
        _dimension_hint,
        _discretize,
        _distinct_outputs,
        _fmt_bounds,
        _load_pair,
        _make_grid,
        _Outputs,
    )

    if args.samples < 1:
        raise _usage(f"--samples must be >= 1; got {args.samples}.")
    _check_seed(args.seed)
    if not args.tau >= 0:
        raise _usage(f"--tau must be >= 0; got {args.tau}.")
    mu, nu, label = _load_pair(args.mu, args.nu, _dimension_hint(args), names=("--mu", "--nu"))
    grid = _make_grid(args, mu.ndim, mu, nu)
    if grid.ndim not in (1, 2):
        raise _usage(f"otgrid audit works in 1D and 2D; the distributions are {grid.ndim}D.")
    fig_path = None if args.no_figure else _check_output(args.figure, "--figure", figure=True)
    json_path = _check_output(args.json, "--json")
    _distinct_outputs(("--figure", fig_path), ("--json", json_path))
    net = _load_reporting(args, grid.ndim)
    _check_samples(args, net, grid.ndim)
    mu_m, out_mu = _discretize(grid, mu, args.outside, "MU", hold=[mu, nu])
    nu_m, out_nu = _discretize(grid, nu, args.outside, "NU", hold=[mu, nu])
    print(f"MU: {mu!r}\nNU: {nu!r}")
    print(f"grid: {grid.ndim}D, bounds {_fmt_bounds(grid.bounds)}, shape "
          f"{' x '.join(map(str, grid.shape))}")
    if args.outside in ("renormalize", "fold") and max(out_mu, out_nu) > 1e-12:
        print(f"mass outside the bounds: MU {out_mu:.3g}, NU {out_nu:.3g} ({args.outside})")
    from otgrid.critic.solve import solve_critic
    from otgrid.errors import OutsideMassWarning

    if not (args.time_budget > 0 and args.time_budget < float("inf")):
        raise _usage(f"--time-budget must be a positive number of seconds; got "
                     f"{args.time_budget}.")
    if not (0 < args.tol < 1):
        raise _usage(f"--tol must be in (0, 1); got {args.tol}.")
    try:
        exact = solve_critic(mu_m, nu_m, grid, tol=args.tol)
        with warnings.catch_warnings():  # the outside mass was reported above, once
            warnings.simplefilter("ignore", OutsideMassWarning)
            rep = audit(net, mu, nu, grid, exact=exact, samples=args.samples, tau=args.tau,
                        tol=args.tol, resolution=args.resolution,
                        time_budget=args.time_budget, outside=args.outside, seed=args.seed)
    except (ValueError, RuntimeError) as exc:
        raise _usage(f"critic: {str(exc).splitlines()[0]}") from None
    except MemoryError:
        raise _usage(f"out of memory during the audit; lower --samples ({args.samples}) or "
                     "use a coarser --shape.") from None
    print(rep)
    outputs = _Outputs()
    outputs.write("figure", fig_path, lambda: _audit_figure(rep, grid.ndim, label, fig_path))
    outputs.write("results", json_path,
                  lambda: json_path.write_text(rep.to_json() + "\n", encoding="utf-8"))
    return outputs.status()


def _audit_figure(rep: Any, ndim: int, label: str, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from otgrid.auditing.plot import plot_audit

    fig = Figure(figsize=(10.0, 4.0) if ndim == 1 else (14.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    plot_audit(rep, fig=fig, title=label)
    fig.savefig(path, dpi=150)
