"""A :class:`~otgrid.sco.generators.ParametricGenerator` adapter for ``torch.nn.Module`` generators.

:class:`TorchGenerator` wraps any module that maps latent samples of shape ``(n, latent_dim)``
to points of shape ``(n, ndim)`` so that :func:`otgrid.sco.fit` (and
:func:`otgrid.sco.smoothed.fit_smoothed`) can train it: the parameters are one flat float64
array (``torch.nn.utils.parameters_to_vector`` / ``vector_to_parameters``), ``sample(z)`` runs
the module without building a graph, and ``vjp(z, v)`` is one backward pass of autograd.
:func:`mlp_generator` builds the generator of Pinetz et al. (Fig. 5): two hidden layers of 128
units with ReLU and a 2D standard Gaussian latent.

torch is an optional dependency (``pip install otgrid[torch]``); it is imported when a
generator is built, not when this module is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from otgrid._validation import as_finite_array, check_choice, check_positive_int
from otgrid.sco.generators import _GaussianLatent

__all__ = ["TorchGenerator", "mlp_generator"]

_ACTIVATIONS = ("relu", "tanh", "leaky_relu")
_DTYPES = ("float64", "float32")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError("TorchGenerator needs PyTorch, an optional dependency of otgrid; "
                          "install it with `pip install torch` (or `pip install otgrid[torch]`)."
                          ) from None
    return torch


class TorchGenerator(_GaussianLatent):
    r"""Adapter that makes a ``torch.nn.Module`` a parametric generator ``x = g_theta(z)``.

    The latent law is the standard Gaussian :math:`\mathcal N(0, I_{latent\_dim})`.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a tensor of shape ``(n, latent_dim)`` to one of shape ``(n, ndim)`` (``(n,)`` is
        accepted when ``ndim == 1``). It is converted in place to ``dtype`` and put in eval
        mode; it must have at least one trainable parameter.
    latent_dim : int
        Dimension of the latent samples.
    ndim : int, optional
        Dimension of the generated points; found by running the module on one latent sample
        when omitted.
    dtype : {"float64", "float32"}, optional
        Precision of the module. ``"float64"`` (default) makes the vjp agree with finite
        differences to round-off; ``"float32"`` is faster for large networks.

    Attributes
    ----------
    module : torch.nn.Module
    ndim, latent_dim : int
    params : ndarray, shape (p,)
        All trainable parameters of the module, flattened in the order of
        ``module.parameters()`` (a float64 copy); assigning writes them back.

    Notes
    -----
    ``sample`` and ``vjp`` run on the device of the module's parameters and return NumPy
    arrays. Parameters with ``requires_grad=False`` are left out of :attr:`params`.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from otgrid.sco.generators_torch import TorchGenerator
    >>> g = TorchGenerator(torch.nn.Linear(1, 1), latent_dim=1)
    >>> g.params = [2.0, 1.0]                  # weight, bias: g(z) = 2 z + 1
    >>> g.sample(np.array([[0.0], [1.0]])).ravel().tolist()
    [1.0, 3.0]
    >>> g.vjp(np.array([[0.0], [1.0]]), np.ones((2, 1))).tolist()   # d/d(weight, bias)
    [1.0, 2.0]
    """

    def __init__(self, module: Any, latent_dim: int, ndim: int | None = None, *,
                 dtype: str = "float64") -> None:
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}.")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        dtype = check_choice(dtype, "dtype", _DTYPES)
        self._dtype = getattr(torch, dtype)
        self.module = module.to(self._dtype).eval()
        self._params = [p for p in self.module.parameters() if p.requires_grad]
        if not self._params:
            raise ValueError("module has no trainable parameters (requires_grad=True); there "
                             "is nothing to train.")
        self._device = self._params[0].device
        if ndim is None:
            with torch.no_grad():
                out = self.module(torch.zeros((1, self.latent_dim), dtype=self._dtype,
                                              device=self._device))
            ndim = 1 if out.ndim == 1 else int(out.shape[-1])
        self.ndim = check_positive_int(ndim, "ndim")
        self._size = int(sum(p.numel() for p in self._params))

    # -- parameters
    @property
    def size(self) -> int:
        """Number of parameters ``p``."""
        return self._size

    @property
    def params(self) -> np.ndarray:
        """All trainable parameters as a flat float64 array (a copy), shape ``(p,)``."""
        torch = _torch()
        with torch.no_grad():
            vec = torch.nn.utils.parameters_to_vector(self._params)
        return vec.detach().cpu().numpy().astype(np.float64, copy=True)

    @params.setter
    def params(self, value: Any) -> None:
        torch = _torch()
        theta = np.ravel(as_finite_array(value, "params"))
        if theta.size != self._size:
            raise ValueError(f"params must have {self._size} entries (the trainable parameters "
                             f"of the module, flattened); got {theta.size}.")
        vec = torch.as_tensor(theta, dtype=self._dtype, device=self._device)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(vec, self._params)

    def __repr__(self) -> str:
        return (f"TorchGenerator({type(self.module).__name__}, latent_dim={self.latent_dim}, "
                f"ndim={self.ndim}, {self._size} parameters)")

    # -- sampling and derivatives (sample_latent and the input checks: _GaussianLatent)
    def _z(self, z: Any) -> Any:
        return _torch().as_tensor(super()._z(z), dtype=self._dtype, device=self._device)

    def _out(self, out: Any, n: int) -> Any:
        if out.ndim == 1 and self.ndim == 1:
            out = out[:, None]
        if tuple(out.shape) != (n, self.ndim):
            raise ValueError(f"the module returned shape {tuple(out.shape)} for {n} latent "
                             f"samples; expected ({n}, {self.ndim}).")
        return out

    def sample(self, z: Any) -> np.ndarray:
        """Generated points ``module(z)``.

        Parameters
        ----------
        z : array_like, shape (n, latent_dim)
            Latent samples.

        Returns
        -------
        numpy.ndarray, shape (n, ndim), float64
        """
        torch = _torch()
        zt = self._z(z)
        with torch.no_grad():
            out = self._out(self.module(zt), zt.shape[0])
        return out.detach().cpu().numpy().astype(np.float64)

    def vjp(self, z: Any, grad_x: Any) -> np.ndarray:
        """Gradient w.r.t. the parameters of ``sum_j <grad_x[j], module(z_j)>`` (autograd).

        Parameters
        ----------
        z : array_like, shape (n, latent_dim)
            Latent samples.
        grad_x : array_like, shape (n, ndim)
            One vector per generated point.

        Returns
        -------
        numpy.ndarray, shape (p,), float64
        """
        torch = _torch()
        zt = self._z(z)
        n = zt.shape[0]
        vt = torch.as_tensor(self._grad_x(grad_x, n), dtype=self._dtype, device=self._device)
        with torch.enable_grad():
            out = self._out(self.module(zt), n)
            grads = torch.autograd.grad(out, self._params, grad_outputs=vt, allow_unused=True)
        flat = [torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
                for p, g in zip(self._params, grads, strict=True)]
        return torch.cat(flat).detach().cpu().numpy().astype(np.float64)


def mlp_generator(latent_dim: int = 2, ndim: int = 2, hidden: Sequence[int] = (128, 128), *,
                  activation: str = "relu", seed: int | None = 0,
                  dtype: str = "float64") -> TorchGenerator:
    """A fully connected generator: ``Linear -> act -> ... -> Linear``, wrapped for SCO.

    The default is the generator of Pinetz et al. (Fig. 5, 8 Gaussians): two hidden layers of
    128 units, ReLU, a 2D standard Gaussian latent and 2D output. Sanjabi et al. use the same
    shape with ``activation="tanh"`` for the 25 Gaussians.

    Parameters
    ----------
    latent_dim : int, optional
        Dimension of the Gaussian latent.
    ndim : int, optional
        Dimension of the output.
    hidden : sequence of int, optional
        Widths of the hidden layers.
    activation : {"relu", "tanh", "leaky_relu"}, optional
        Activation after every hidden layer (the output layer is linear).
    seed : int or None, optional
        Seed of torch's default initialisation (``torch.manual_seed``; the global generator
        is restored afterwards). ``None`` uses the current global state.
    dtype : {"float64", "float32"}, optional
        Precision of the network (see :class:`TorchGenerator`).

    Returns
    -------
    TorchGenerator

    Examples
    --------
    >>> from otgrid.sco.generators_torch import mlp_generator
    >>> g = mlp_generator()
    >>> g.latent_dim, g.ndim, g.size          # 2*128+128 + 128*128+128 + 128*2+2
    (2, 2, 17154)
    """
    torch = _torch()
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    ndim = check_positive_int(ndim, "ndim")
    widths = [check_positive_int(h, "hidden width") for h in hidden]
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
           "leaky_relu": torch.nn.LeakyReLU}[check_choice(activation, "activation",
                                                          _ACTIVATIONS)]
    state = torch.random.get_rng_state() if seed is not None else None
    try:
        if seed is not None:
            torch.manual_seed(seed)
        layers: list[Any] = []
        width = latent_dim
        for h in widths:
            layers += [torch.nn.Linear(width, h), act()]
            width = h
        layers.append(torch.nn.Linear(width, ndim))
        module = torch.nn.Sequential(*layers)
    finally:
        if state is not None:
            torch.random.set_rng_state(state)
    return TorchGenerator(module, latent_dim, ndim, dtype=dtype)
