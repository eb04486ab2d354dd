"""Full WGAN baselines (torch, optional): a generator trained against a neural critic.

:func:`train_gan` runs the WGAN game (Arjovsky et al., Alg. 1; Gulrajani et al., Alg. 1) for
the comparison with SCO (:mod:`otgrid.sco`): ``n_critic`` critic updates (weight clipping or
gradient penalty, see :func:`otgrid.auditing.baselines.train_critic`) per generator update, the
generator minimising ``-E_z f(g(z))``. The critic is high on the target, as everywhere in
otgrid. Generators: :class:`LocationScaleNet` (the Gaussian fits of Pinetz et al., Sec. 5) or
any ``torch.nn.Module`` mapping latent ``(n, latent_dim)`` to points ``(n, d)``, e.g.
:func:`make_generator` (2 x 128 ReLU, the 8gaussians generator of Pinetz et al., Fig. 5).
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
    raise ImportError("otgrid.auditing.gan needs torch: pip install 'otgrid[torch]'.") from exc

from otgrid._validation import as_rng, check_choice, check_positive_int
from otgrid.auditing.baselines import _Progress, _sampler, make_critic

__all__ = ["GANTraining", "LocationScaleNet", "make_generator", "train_gan"]

GanMethod = Literal["clip", "gp"]


class LocationScaleNet(nn.Module):
    """``g(z) = scale * z + loc`` per axis: a torch twin of ``otgrid.sco.generators.LocationScale``.

    Parameters
    ----------
    loc, scale : float or sequence of float
        Initial location and scale per axis (a scalar with ``ndim`` gives every axis).
    ndim : int, optional
        Dimension (default: from ``loc``).

    Examples
    --------
    >>> import torch
    >>> from otgrid.auditing.gan import LocationScaleNet
    >>> g = LocationScaleNet(1.0, 2.0)
    >>> g(torch.zeros(3, 1)).flatten().tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, loc: Any = 0.0, scale: Any = 1.0, ndim: int | None = None) -> None:
        super().__init__()
        loc_a = np.atleast_1d(np.asarray(loc, dtype=np.float64))
        d = ndim or max(loc_a.size, np.atleast_1d(scale).size)
        self.loc = nn.Parameter(torch.as_tensor(np.broadcast_to(loc_a, (d,)).copy(),
                                                dtype=torch.get_default_dtype()))
        sc = np.broadcast_to(np.atleast_1d(np.asarray(scale, dtype=np.float64)), (d,)).copy()
        self.scale = nn.Parameter(torch.as_tensor(sc, dtype=torch.get_default_dtype()))
        self.latent_dim = d

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generated points, shape ``(n, ndim)``."""
        return z * self.scale + self.loc

    def params(self) -> np.ndarray:
        """``[loc..., scale...]`` as a float64 array (the layout of ``LocationScale.params``)."""
        return np.concatenate([self.loc.detach().double().numpy(),
                               self.scale.detach().double().numpy()])


def make_generator(latent_dim: int, ndim: int, hidden: Sequence[int] = (128, 128), *,
                   seed: int = 0) -> nn.Sequential:
    """A ReLU perceptron generator ``R^latent_dim -> R^ndim``.

    Parameters
    ----------
    latent_dim, ndim : int
        Latent and output dimensions.
    hidden : sequence of int, optional
        Hidden widths (default 2 x 128, Pinetz et al.'s 8gaussians generator).
    seed : int, optional
        Initialisation seed (forked torch RNG).

    Returns
    -------
    torch.nn.Sequential
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        layers: list[nn.Module] = []
        d_in = check_positive_int(latent_dim, "latent_dim")
        for w in hidden:
            layers += [nn.Linear(d_in, int(w)), nn.ReLU()]
            d_in = int(w)
        layers.append(nn.Linear(d_in, check_positive_int(ndim, "ndim")))
        return nn.Sequential(*layers)


@dataclass(frozen=True, eq=False)
class GANTraining:
    """Result of :func:`train_gan`.

    Attributes
    ----------
    generator, critic : torch.nn.Module
        The trained networks (eval mode).
    method : str
        ``"clip"`` (WGAN) or ``"gp"`` (WGAN-GP).
    steps : int
        Generator updates.
    records : list of dict
        At every ``record_every`` generator steps: ``step``, ``seconds`` (training time so
        far, recording excluded), ``w_estimate`` (critic's last batch estimate), ``params``
        (:meth:`LocationScaleNet.params` when the generator has it) and what ``callback``
        returned under ``"callback"``.
    seconds : float
        Training time (recording excluded).
    settings : dict
        Optimisers, learning rates, ``n_critic``, clip or lam, batch size, seed.
    """

    generator: nn.Module = field(repr=False)
    critic: nn.Module = field(repr=False)
    method: str
    steps: int
    records: list = field(repr=False)
    seconds: float
    settings: dict = field(default_factory=dict)


def train_gan(
    target: Any,
    generator: nn.Module,
    *,
    method: GanMethod = "gp",
    latent_dim: int | None = None,
    steps: int = 1000,
    n_critic: int = 5,
    batch_size: int = 256,
    arch: str | Sequence[int] | None = None,
    critic_lr: float | None = None,
    generator_lr: float | None = None,
    clip: float | None = None,
    lam: float = 10.0,
    seed: int = 0,
    record_every: int = 10,
    callback: Callable[[nn.Module, int], Any] | None = None,
    progress: bool = False,
) -> GANTraining:
    """Train ``generator`` to match ``target`` with a WGAN (clip) or WGAN-GP (gp) critic.

    Parameters
    ----------
    target : Distribution or callable
        Real data sampler: ``sample(n, rng)`` or a callable ``(n, rng) -> (n, d)``.
    generator : torch.nn.Module
        Maps latent ``(n, latent_dim)`` standard normal samples to points ``(n, d)``; trained
        in place.
    method : {"clip", "gp"}, optional
        WGAN (RMSProp 5e-5 for both networks, clip 0.01, or 0.1 for the ``"1d"`` critic) or
        WGAN-GP (Adam 1e-4, betas (0, 0.9) for both networks, ``lam`` 10).
    latent_dim : int, optional
        Default: ``generator.latent_dim`` if present, else the target dimension.
    steps : int, optional
        Generator updates.
    n_critic : int, optional
        Critic updates per generator update (5 in both papers).
    batch_size : int, optional
        Batch of real and of generated samples.
    arch : {"1d", "2d", "toy"} or sequence of int, optional
        Critic architecture (default ``"1d"`` in 1D, ``"2d"`` otherwise).
    critic_lr, generator_lr : float, optional
        Learning rates (defaults above).
    clip, lam : float, optional
        Clipping bound (``"clip"``) and penalty weight (``"gp"``).
    seed : int, optional
        Seed of the critic initialisation and of all sampling (the generator is initialised
        by the caller).
    record_every : int, optional
        Record every this many generator steps (and at the end).
    callback : callable, optional
        ``callback(generator, step)`` at each record (e.g. an exact W of the generator with
        :func:`otgrid.solve_critic`); its time is not counted in ``seconds``.
    progress : bool, optional
        Progress bar (tqdm if installed, else a printed line).

    Returns
    -------
    GANTraining
    """
    check_choice(method, "method", ("clip", "gp"))
    steps = check_positive_int(steps, "steps")
    n_critic = check_positive_int(n_critic, "n_critic")
    batch_size = check_positive_int(batch_size, "batch_size")
    record_every = check_positive_int(record_every, "record_every")
    if not isinstance(generator, nn.Module):
        raise TypeError(f"generator must be a torch.nn.Module; got {type(generator).__name__}.")
    sample = _sampler(target, "target")
    rng = as_rng(int(seed))
    d = sample(1, rng).reshape(1, -1).shape[1]
    k = latent_dim or getattr(generator, "latent_dim", None) or d
    arch = ("1d" if d == 1 else "2d") if arch is None else arch
    critic = make_critic(d, arch, seed=seed)
    dtype = next(critic.parameters()).dtype
    if method == "clip":
        c = clip if clip is not None else (0.1 if arch == "1d" else 0.01)
        clr, glr = critic_lr or 5e-5, generator_lr or 5e-5
        opt_c = torch.optim.RMSprop(critic.parameters(), lr=clr)
        opt_g = torch.optim.RMSprop(generator.parameters(), lr=glr)
    else:
        c = None
        clr, glr = critic_lr or 1e-4, generator_lr or 1e-4
        opt_c = torch.optim.Adam(critic.parameters(), lr=clr, betas=(0.0, 0.9))
        opt_g = torch.optim.Adam(generator.parameters(), lr=glr, betas=(0.0, 0.9))

    def latent() -> torch.Tensor:
        return torch.as_tensor(rng.standard_normal((batch_size, k)), dtype=dtype)

    records: list[dict] = []
    spent = 0.0
    w_last = float("nan")

    def record(step: int) -> None:
        rec: dict[str, Any] = {"step": step, "seconds": spent, "w_estimate": w_last}
        if callable(getattr(generator, "params", None)):
            rec["params"] = generator.params().tolist()
        if callback is not None:
            rec["callback"] = callback(generator, step)
        records.append(rec)

    record(0)
    bar = _Progress(steps, f"WGAN ({method})", progress)
    try:
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            for _ in range(n_critic):
                x = torch.as_tensor(sample(batch_size, rng).reshape(batch_size, d), dtype=dtype)
                with torch.no_grad():
                    y = generator(latent())
                w = critic(x).mean() - critic(y).mean()
                loss = -w
                if method == "gp":
                    t = torch.as_tensor(rng.random((batch_size, 1)), dtype=dtype)
                    xt = (t * x + (1 - t) * y).requires_grad_(True)
                    (g,) = torch.autograd.grad(critic(xt).sum(), xt, create_graph=True)
                    loss = loss + lam * ((g.norm(dim=1) - 1.0) ** 2).mean()
                opt_c.zero_grad(set_to_none=True)
                loss.backward()
                opt_c.step()
                if c is not None:
                    with torch.no_grad():
                        for p in critic.parameters():
                            p.clamp_(-c, c)
            w_last = float(w.detach())
            g_loss = -critic(generator(latent())).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            spent += time.perf_counter() - t0
            bar.update(step, w_last)
            if step % record_every == 0 or step == steps:
                record(step)
    finally:
        bar.close()
    critic.eval()
    generator.eval()
    settings = {"arch": arch if isinstance(arch, str) else str(tuple(arch)),
                "optimizer": "RMSprop" if method == "clip" else "Adam", "critic_lr": clr,
                "generator_lr": glr, "betas": None if method == "clip" else (0.0, 0.9),
                "clip": c, "lam": lam if method == "gp" else None, "n_critic": n_critic,
                "batch_size": batch_size, "seed": int(seed), "latent_dim": k}
    return GANTraining(generator=generator, critic=critic, method=method, steps=steps,
                       records=records, seconds=spent, settings=settings)
