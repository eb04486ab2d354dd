"""Critic files for :func:`otgrid.distributed.audit_many`, loaded on the worker.

A critic file is a state dict (``torch.save(net.state_dict(), path)``) of a ReLU perceptron
built by :func:`otgrid.auditing.baselines.make_critic`: the same files as ``otgrid audit``
reads, with the same rules (``torch.load(path, weights_only=True)``, torch >= 2.6, hidden
widths read from the ``Linear`` weights unless ``arch`` is given, spectral normalisation
detected from the keys). TorchScript archives and pickled modules are not loaded here: both
run code when loaded; pass the module object itself to ``audit_many`` instead.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

__all__ = ["load_state_dict_critic"]

_SAVE_HINT = "torch.save(net.state_dict(), path)"
_LINEAR = re.compile(r"(\d+)\.(?:weight|parametrizations\.weight\.original)")


def _linear_widths(state: dict) -> tuple[Any, list[int]]:
    """The first ``Linear`` weight of a ``make_critic`` state dict and the hidden widths."""
    layers = {}
    for key, value in state.items():
        m = _LINEAR.fullmatch(key)
        if m:
            layers[int(m.group(1))] = value
    weights = [layers[i] for i in sorted(layers)]
    if not weights:
        raise ValueError("the state dict has no Linear weights named like '0.weight' (a "
                         "torch.nn.Sequential of Linear and ReLU layers from make_critic); "
                         "give arch= if it is one.")
    return weights[0], [int(w.shape[0]) for w in weights[:-1]]


def load_state_dict_critic(path: str | os.PathLike, ndim: int, arch: Any = None) -> Any:
    """Load a critic saved as a state dict into a ``make_critic`` network (CPU, eval mode).

    Parameters
    ----------
    path : str or path-like
        A file written by ``torch.save(net.state_dict(), path)``.
    ndim : int
        Input dimension (that of the distributions).
    arch : {"1d", "2d", "toy"} or sequence of int, optional
        Hidden widths; default: read from the weights.

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    ImportError
        Without torch, or with a torch older than 2.6 (whose ``weights_only`` loader can be
        made to run code, CVE-2025-32434).
    ValueError
        When the file is not a state dict of tensors, or does not fit the network.
    OSError
        When the file cannot be read.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"critic file {name!r} does not exist on worker "
                                f"{platform.node()!r}; give a path that every worker can read.")
    try:
        import torch
    except ImportError:
        raise ImportError("critic files need torch: pip install 'otgrid[torch]'.") from None
    m = re.match(r"(\d+)\.(\d+)", torch.__version__)
    if m is None or (int(m.group(1)), int(m.group(2))) < (2, 6):
        raise ImportError(f"loading critic files safely needs torch >= 2.6; torch "
                          f"{torch.__version__} is installed (CVE-2025-32434): upgrade it.")
    from otgrid.auditing.baselines import make_critic

    try:
        state = torch.load(name, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # torch raises anything on a foreign or unsafe file
        raise ValueError(f"{name!r} is not a state dict that torch.load(weights_only=True) "
                         f"reads ({type(exc).__name__}); save the critic with {_SAVE_HINT}."
                         ) from None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{name!r} does not hold a state dict of tensors; save the critic with "
                         f"{_SAVE_HINT}.")
    first, widths = _linear_widths(state) if arch is None else (None, arch)
    if first is not None and first.ndim == 2 and first.shape[1] != ndim:
        raise ValueError(f"{name!r} takes {first.shape[1]}D points but the distributions are "
                         f"{ndim}D.")
    dtype = next(iter(state.values())).dtype if first is None else first.dtype
    net = make_critic(ndim, widths, spectral_norm=any("parametrizations" in k for k in state),
                      dtype=dtype)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        raise ValueError(f"{name!r} does not fit a {ndim}D ReLU MLP with hidden widths "
                         f"{tuple(widths) if not isinstance(widths, str) else widths}: "
                         f"{detail[-1].strip() if detail else exc}") from None
    return net.eval()
