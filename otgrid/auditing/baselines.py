"""Neural WGAN critics (torch, optional): the baselines an audit compares with the exact critic.

:func:`train_critic` trains a ReLU network ``f`` to maximise ``E_mu f - E_nu f`` (the otgrid
convention: high where ``mu`` has mass) under one of the four usual Lipschitz constraints:

========  ==============================================  =====================================
method    constraint                                      optimiser (defaults of the papers)
========  ==============================================  =====================================
"clip"    weights clipped to ``[-c, c]`` after each step  RMSProp, lr 5e-5; ``c = 0.01``, 0.1 for
          (Arjovsky et al.)                               the small 1D net (Pinetz et al.)
"gp"      ``lam E (|grad f(x_t)| - 1)^2`` (Gulrajani)     Adam, lr 1e-4, betas (0, 0.9), lam 10
"lp"      ``lam E max(0, |grad f(x_t)| - 1)^2``           Adam, lr 1e-4, betas (0, 0.9), lam 10
          (Petzka et al., one-sided)                      (0.1 is the other value they use)
"sn"      spectral normalisation of every linear layer    Adam, lr 1e-4, betas (0, 0.9)
          (Miyato et al.)
========  ==============================================  =====================================

``x_t = t x + (1 - t) y`` with ``x ~ mu``, ``y ~ nu`` and ``t ~ U(0, 1)``. Architectures
(:data:`ARCHITECTURES`): ``"1d"`` 2 x 16 ReLU (Pinetz et al., Fig. 1), ``"2d"`` 2 x 128 ReLU,
``"toy"`` 3 x 512 ReLU (Gulrajani et al.'s toy critic).

Runs are deterministic for a given ``seed`` on the CPU: the network is initialised under a
forked torch RNG seeded with ``seed`` and all samples come from a NumPy generator seeded with
``seed``. Importing this module needs torch (``pip install otgrid[torch]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("otgrid.auditing.baselines needs torch: pip install 'otgrid[torch]' "
                      "(or pip install torch).") from exc

from otgrid._validation import as_rng, check_choice, check_positive_int

__all__ = ["ARCHITECTURES", "METHODS", "CriticTraining", "make_critic", "train_critic"]

Method = Literal["clip", "gp", "lp", "sn"]
METHODS = ("clip", "gp", "lp", "sn")

_SN_REFRESH = 100      # power iterations after training a spectrally normalised critic

#: Hidden layer widths of the named architectures.
ARCHITECTURES: dict[str, tuple[int, ...]] = {
    "1d": (16, 16),
    "2d": (128, 128),
    "toy": (512, 512, 512),
}


def _hidden(arch: str | Sequence[int]) -> tuple[int, ...]:
    if isinstance(arch, str):
        if arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)} or a sequence of "
                             f"hidden widths; got {arch!r}.")
        return ARCHITECTURES[arch]
    widths = tuple(int(w) for w in arch)
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"arch must list positive hidden widths; got {arch!r}.")
    return widths


def make_critic(ndim: int, arch: str | Sequence[int] = "2d", *, spectral_norm: bool = False,
                seed: int = 0, dtype: Any = None) -> nn.Sequential:
    """A ReLU multilayer perceptron ``R^ndim -> R`` (output shape ``(n, 1)``).

    Parameters
    ----------
    ndim : int
        Input dimension.
    arch : {"1d", "2d", "toy"} or sequence of int, optional
        Named architecture (:data:`ARCHITECTURES`) or the hidden widths.
    spectral_norm : bool, optional
        Wrap every linear layer in ``torch.nn.utils.parametrizations.spectral_norm``.
    seed : int, optional
        Seed of the initialisation (PyTorch's default init, under a forked RNG: the global
        torch RNG is left untouched).
    dtype : torch.dtype, optional
        Parameter dtype (default ``torch.get_default_dtype()``).

    Returns
    -------
    torch.nn.Sequential

    Examples
    --------
    >>> from otgrid.auditing.baselines import make_critic
    >>> net = make_critic(1, "1d", seed=0)
    >>> sum(p.numel() for p in net.parameters())
    321
    """
    ndim = check_positive_int(ndim, "ndim")
    widths = _hidden(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        layers: list[nn.Module] = []
        d_in = ndim
        for w in (*widths, 1):
            lin = nn.Linear(d_in, w, dtype=dtype)
            if spectral_norm:
                lin = nn.utils.parametrizations.spectral_norm(lin)
            layers += [lin, nn.ReLU()]
            d_in = w
        return nn.Sequential(*layers[:-1])


@dataclass(frozen=True, eq=False)
class CriticTraining:
    """Result of :func:`train_critic`.

    Attributes
    ----------
    critic : torch.nn.Module
        The trained network, in eval mode. For ``"sn"``, the power-iteration estimate of each
        layer's spectral norm is refreshed by ``_SN_REFRESH`` extra iterations after training
        and then frozen by eval mode, so each linear layer has spectral norm 1 to about 1e-3.
    method : str
        ``"clip"``, ``"gp"``, ``"lp"`` or ``"sn"``.
    steps : int
        Critic updates run.
    w_estimate : ndarray, shape (steps,)
        ``mean f(x) - mean f(y)`` on each training batch.
    penalty : ndarray, shape (steps,)
        The penalty term (``lam * ...``; zeros for ``"clip"`` and ``"sn"``).
    seconds : float
        Wall time of the training.
    settings : dict
        Architecture, optimiser, learning rate, betas, clip, lam, batch size, seed.
    """

    critic: nn.Module = field(repr=False)
    method: str
    steps: int
    w_estimate: np.ndarray = field(repr=False)
    penalty: np.ndarray = field(repr=False)
    seconds: float
    settings: dict = field(default_factory=dict)


def _sampler(x: Any, name: str) -> Callable[[int, np.random.Generator], np.ndarray]:
    if hasattr(x, "sample"):
        return lambda n, rng: np.asarray(x.sample(n, rng=rng), dtype=np.float64)
    if callable(x):
        return lambda n, rng: np.asarray(x(n, rng), dtype=np.float64)
    raise TypeError(f"{name} must be a distribution with .sample(n, rng) or a callable "
                    f"(n, rng) -> array of shape (n, d); got {type(x).__name__}.")


class _Progress:
    """tqdm when installed, else one line rewritten in place every ~1 s."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.enabled, self.total, self.desc = enabled, total, desc
        self.bar = None
        self.last = 0.0
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc)

    def update(self, k: int, w: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if k % 50 == 0:
                self.bar.set_postfix(w=f"{w:.4g}")
            return
        now = time.perf_counter()
        if now - self.last >= 1.0 or k == self.total:
            self.last = now
            print(f"\r{self.desc}: step {k}/{self.total}  W estimate {w:.5g}", end="",
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(flush=True)


def train_critic(
    mu: Any,
    nu: Any,
    *,
    method: Method = "gp",
    ndim: int | None = None,
    arch: str | Sequence[int] | None = None,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float | None = None,
    clip: float | None = None,
    lam: float = 10.0,
    seed: int = 0,
    critic: nn.Module | None = None,
    progress: bool = False,
) -> CriticTraining:
    """Train a WGAN critic ``f`` to maximise ``E_mu f - E_nu f`` under a Lipschitz constraint.

    Parameters
    ----------
    mu, nu : Distribution or callable
        Samplers: objects with ``sample(n, rng)`` (otgrid distributions and datasets) or
        callables ``(n, rng) -> (n, d)`` array.
    method : {"clip", "gp", "lp", "sn"}, optional
        Weight clipping, gradient penalty, one-sided Lipschitz penalty, spectral normalisation
        (see the module docstring for the optimiser of each).
    ndim : int, optional
        Dimension (default: from a first sample of ``mu``).
    arch : {"1d", "2d", "toy"} or sequence of int, optional
        Architecture; default ``"1d"`` in 1D and ``"2d"`` otherwise. Ignored with ``critic``.
    steps : int, optional
        Critic updates (CPU-friendly default).
    batch_size : int, optional
        Samples of each measure per update.
    lr : float, optional
        Learning rate; default 5e-5 for ``"clip"``, 1e-4 otherwise.
    clip : float, optional
        Clipping bound ``c`` (``"clip"`` only); default 0.1 for the ``"1d"`` net, else 0.01.
    lam : float, optional
        Penalty weight (``"gp"``, ``"lp"``).
    seed : int, optional
        Seed of the initialisation and of all sampling.
    critic : torch.nn.Module, optional
        A network to train instead of a new one (trained in place).
    progress : bool, optional
        Show a progress bar (tqdm if installed, else a printed line).

    Returns
    -------
    CriticTraining

    Examples
    --------
    >>> import otgrid as og
    >>> from otgrid.auditing.baselines import train_critic
    >>> run = train_critic(og.Normal(0.0, 1.0), og.Normal(2.0, 1.0), method="gp", steps=20,
    ...                    batch_size=64, seed=0)
    >>> run.steps, run.w_estimate.shape
    (20, (20,))
    """
    check_choice(method, "method", METHODS)
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not (isinstance(lam, (int, float)) and lam >= 0):
        raise ValueError(f"lam must be a number >= 0; got {lam!r}.")
    sample_mu, sample_nu = _sampler(mu, "mu"), _sampler(nu, "nu")
    rng = as_rng(int(seed))
    first = sample_mu(1, rng).reshape(1, -1)
    d = first.shape[1] if ndim is None else check_positive_int(ndim, "ndim")
    if first.shape[1] != d:
        raise ValueError(f"mu draws {first.shape[1]}D samples but ndim is {d}.")
    if critic is None:
        arch = ("1d" if d == 1 else "2d") if arch is None else arch
        critic = make_critic(d, arch, spectral_norm=(method == "sn"), seed=seed)
        arch_name = arch if isinstance(arch, str) else str(tuple(arch))
    else:
        if not isinstance(critic, nn.Module):
            raise TypeError(f"critic must be a torch.nn.Module; got {type(critic).__name__}.")
        arch_name = "custom"
    if method == "clip":
        c = clip if clip is not None else (0.1 if arch_name == "1d" else 0.01)
        if not c > 0:
            raise ValueError(f"clip must be > 0; got {c!r}.")
        lr = 5e-5 if lr is None else lr
        opt = torch.optim.RMSprop(critic.parameters(), lr=lr)
        betas = None
    else:
        c = None
        lr = 1e-4 if lr is None else lr
        betas = (0.0, 0.9)
        opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    dtype = next(critic.parameters()).dtype
    critic.train()
    w_hist = np.empty(steps)
    p_hist = np.zeros(steps)
    bar = _Progress(steps, f"critic ({method})", progress)
    t0 = time.perf_counter()
    try:
        for k in range(steps):
            x = torch.as_tensor(sample_mu(batch_size, rng).reshape(batch_size, d), dtype=dtype)
            y = torch.as_tensor(sample_nu(batch_size, rng).reshape(batch_size, d), dtype=dtype)
            w = critic(x).mean() - critic(y).mean()
            loss = -w
            if method in ("gp", "lp"):
                t = torch.as_tensor(rng.random((batch_size, 1)), dtype=dtype)
                xt = (t * x + (1 - t) * y).requires_grad_(True)
                (g,) = torch.autograd.grad(critic(xt).sum(), xt, create_graph=True)
                excess = g.norm(dim=1) - 1.0
                if method == "lp":
                    excess = excess.clamp(min=0.0)
                pen = lam * (excess ** 2).mean()
                loss = loss + pen
                p_hist[k] = float(pen.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if c is not None:
                with torch.no_grad():
                    for p in critic.parameters():
                        p.clamp_(-c, c)
            w_hist[k] = float(w.detach())
            bar.update(k + 1, w_hist[k])
    finally:
        bar.close()
    if method == "sn":
        # One power iteration per training step leaves sigma underestimated; refresh the
        # estimate (training-mode forward passes without gradients) before freezing it.
        with torch.no_grad():
            for _ in range(_SN_REFRESH):
                critic(x)
    critic.eval()
    settings = {"arch": arch_name, "optimizer": "RMSprop" if method == "clip" else "Adam",
                "lr": lr, "betas": betas, "clip": c,
                "lam": lam if method in ("gp", "lp") else None, "batch_size": batch_size,
                "seed": int(seed), "ndim": d}
    return CriticTraining(critic=critic, method=method, steps=steps, w_estimate=w_hist,
                          penalty=p_hist, seconds=time.perf_counter() - t0, settings=settings)
