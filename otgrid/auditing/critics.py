"""Uniform access to the critic under audit: a NumPy callable or a ``torch.nn.Module``.

:class:`_Critic` evaluates values and gradients in batches (finite differences for a callable,
autograd for a torch module) and checks what the critic returns.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

_BATCH = 65_536          # points per critic call


def _torch_module(critic: Any) -> Any:
    """``torch`` if ``critic`` is a ``torch.nn.Module`` (torch already imported), else None."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(critic, torch.nn.Module):
        return torch
    return None


def _check_output(out: Any, n: int, what: str) -> np.ndarray:
    """Values returned by a critic for ``n`` points, as a float64 array of shape (n,)."""
    arr = np.asarray(out, dtype=np.float64)
    if arr.shape == (n, 1):
        arr = arr[:, 0]
    if arr.shape != (n,):
        hint = (" It looks non-vectorised (one value for a whole batch): the critic must map "
                "an array of shape (n, d) to n values at once.") if arr.ndim == 0 else ""
        raise ValueError(f"critic must return an array of shape (n,) (or (n, 1)) for {n} "
                         f"points of shape (n, d); {what} returned shape {arr.shape}.{hint}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"critic returned {int(bad.sum())} non-finite value(s) (NaN or inf) "
                         f"out of {n} ({what}); an audit needs a finite critic everywhere on "
                         "the grid and at the sample points.")
    return arr


def _call_error(exc: Exception, kind: str, shape: tuple, what: str) -> ValueError:
    """The error for a critic that raised on a batch of points of ``shape``."""
    return ValueError(f"critic raised {type(exc).__name__}: {exc} when called on {kind} of "
                      f"shape {shape} ({what}). It must accept a batch of points of shape "
                      f"(n, d), d = {shape[-1]} the grid's dimension, and return n values.")


class _Critic:
    """Uniform access to values and gradients of a NumPy callable or a torch module."""

    def __init__(self, critic: Any, ndim: int, fd_step: float, probe: np.ndarray) -> None:
        self.ndim = ndim
        self.fd_step = fd_step
        self.torch = _torch_module(critic)
        if self.torch is None and not callable(critic):
            raise TypeError(f"critic must be a callable (n, d) -> (n,) or a torch.nn.Module; "
                            f"got {type(critic).__name__}.")
        self.critic = critic
        self.analytic = self.torch is None and callable(getattr(critic, "value_and_grad", None))
        if self.torch is not None:
            self.kind = "torch"
            self.gradient_method = "autograd"
        elif self.analytic:
            self.kind = "numpy"
            self.gradient_method = "value_and_grad"
        else:
            self.kind = "numpy"
            self.gradient_method = f"central differences, step {fd_step:.3g}"
        # Probe: a small batch of points must give well-shaped, finite values.
        self.values(probe, what=f"a probe batch of {probe.shape[0]} grid points")

    def _call_numpy(self, x: np.ndarray, what: str) -> np.ndarray:
        try:
            out = self.critic(x)
        except Exception as exc:  # a non-vectorised callable typically fails here
            raise _call_error(exc, "an array", x.shape, what) from exc
        return _check_output(out, x.shape[0], what)

    def _call_torch(self, xt: Any, what: str) -> Any:
        """The module's output on the tensor ``xt``; its errors (a wrong input size, a
        device or dtype mismatch) as a ValueError that names the expected input."""
        try:
            return self.critic(xt)
        except Exception as exc:
            raise _call_error(exc, "a tensor", tuple(xt.shape), what) from exc

    def _torch_eval(self, x: np.ndarray, grad: bool, what: str) -> tuple[np.ndarray, Any]:
        torch = self.torch
        try:
            dtype = next(self.critic.parameters()).dtype
        except StopIteration:
            dtype = torch.get_default_dtype()
        vals, grads = [], []
        for s in range(0, x.shape[0], _BATCH):
            xt = torch.as_tensor(x[s:s + _BATCH], dtype=dtype)
            if grad:
                xt.requires_grad_(True)
                with torch.enable_grad():
                    out = self._call_torch(xt, what)
                    v = _check_output(out.detach().cpu().numpy(), xt.shape[0], what)
                    try:
                        (g,) = torch.autograd.grad(out.sum(), xt)
                    except RuntimeError as exc:
                        raise ValueError(f"the critic's output cannot be differentiated with "
                                         f"respect to its input ({what}): {exc}") from exc
                grads.append(g.detach().cpu().numpy().astype(np.float64))
            else:
                with torch.no_grad():
                    v = _check_output(self._call_torch(xt, what).cpu().numpy(), xt.shape[0],
                                      what)
            vals.append(v)
        return np.concatenate(vals), (np.concatenate(grads) if grad else None)

    def values(self, x: np.ndarray, what: str = "the audit points") -> np.ndarray:
        if self.torch is not None:
            return self._torch_eval(x, False, what)[0]
        return np.concatenate([self._call_numpy(x[s:s + _BATCH], what)
                               for s in range(0, x.shape[0], _BATCH)])

    def value_and_grad(self, x: np.ndarray, what: str = "the audit points"
                       ) -> tuple[np.ndarray, np.ndarray]:
        if self.torch is not None:
            v, g = self._torch_eval(x, True, what)
        elif self.analytic:
            v, g = self.critic.value_and_grad(x)
            v = _check_output(v, x.shape[0], what)
            g = np.asarray(g, dtype=np.float64).reshape(x.shape)
        else:
            v = self.values(x, what)
            g = np.empty_like(x)
            h = self.fd_step
            for k in range(self.ndim):
                xp, xm = x.copy(), x.copy()
                xp[:, k] += h
                xm[:, k] -= h
                g[:, k] = (self.values(xp, what) - self.values(xm, what)) / (2 * h)
        if not np.all(np.isfinite(g)):
            raise ValueError(f"critic has non-finite gradients at {what}; an audit needs a "
                             "finite gradient everywhere.")
        return v, g
