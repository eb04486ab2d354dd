"""Input checks shared by the public API: every error names the argument and the fix."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["as_finite_array", "as_number", "as_rng", "check_choice", "check_positive_int"]


def check_choice(value: Any, name: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; raise a ValueError listing them otherwise."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}; got {value!r}.")
    return value


def as_number(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a real number (a bool is not); raise a TypeError
    naming the argument otherwise (range checks are the caller's)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}.")
    return float(value)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)


def as_finite_array(x: Any, name: str, *, dtype: Any = np.float64, ndim: int | None = None,
                    nonnegative: bool = False) -> np.ndarray:
    """Convert ``x`` to a NumPy array of ``dtype`` and check it is finite (and >= 0).

    Parameters
    ----------
    x : array_like
        The user's input.
    name : str
        Argument name used in error messages.
    dtype : dtype, optional
        Target dtype (float64 by default).
    ndim : int, optional
        Required number of dimensions.
    nonnegative : bool, optional
        Also require every entry to be >= 0.

    Returns
    -------
    numpy.ndarray
        The converted array (a copy only when a conversion was needed).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            arr = np.asarray(x, dtype=dtype)
    except np.exceptions.ComplexWarning:
        raise TypeError(f"{name} must hold real numbers; got complex values.") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array; could not convert it ({exc}).") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s); got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf).")
    if nonnegative and arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative; its smallest entry is {arr.min():.6g}.")
    return arr


def as_rng(rng: Any) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from None, a seed or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator; got {rng!r}.")
