"""Input checks shared by the public API: every error names the argument and the fix."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from otgrid._device import to_host

__all__ = ["MASS_RTOL", "MASS_RTOL_EPS", "as_array", "as_finite_array", "as_number", "as_rng",
           "check_choice", "check_positive_int", "input_precision", "totals_rtol",
           "unequal_totals_hint"]

#: Relative difference of two totals (of masses, of weights) accepted as equal when the inputs
#: hold float64 numbers (or Python numbers, integers).
MASS_RTOL = 1e-9
#: ... and, when an input holds lower-precision floats (float32, float16, bfloat16), this many
#: machine epsilons of that type where more: masses normalised in float32 (``m / m.sum()``)
#: have totals a few epsilons (2^-23 each) from 1 (measured: 0.99999997 and 1.0000000013 on
#: 32 x 32 random grids; the rounding of the sums grows with the logarithm of their size).
MASS_RTOL_EPS = 16
# machine epsilons of the floating-point types an input may hold (bfloat16: PyTorch)
_EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23,
        "float64": 2.0 ** -52}


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


def input_precision(x: Any) -> str:
    """The floating-point type of the numbers ``x`` holds as given.

    Parameters
    ----------
    x : array_like
        A NumPy, CuPy or PyTorch array or scalar, or anything else.

    Returns
    -------
    str
        ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"`` (also for Python numbers,
        lists, integer arrays and floats wider than float64).
    """
    dt = getattr(x, "dtype", None)
    if dt is None:
        return "float64"
    try:
        ndt = np.dtype(dt)
    except (TypeError, ValueError):  # a PyTorch dtype (torch.float32), or no dtype at all
        name = str(dt).rpartition(".")[2]
        return name if name in _EPS else "float64"
    return ndt.name if ndt.kind == "f" and ndt.name in _EPS else "float64"


def totals_rtol(*inputs: Any, rtol: float = MASS_RTOL) -> float:
    """Relative difference of the totals of ``inputs`` accepted as equal: ``rtol``, or
    :data:`MASS_RTOL_EPS` machine epsilons of the least precise input's type where larger.

    Parameters
    ----------
    *inputs : array_like
        The masses (or weights) as the user gave them, before any conversion.
    rtol : float, optional
        The tolerance for float64 inputs.

    Returns
    -------
    float
        The tolerance: ``rtol`` for float64 inputs; ``max(rtol, 16 * 2^-23)`` (1.9e-6) when
        one holds float32, ``max(rtol, 16 * 2^-10)`` (0.0156) for float16.
    """
    eps = max((_EPS[input_precision(v)] for v in inputs), default=_EPS["float64"])
    return max(float(rtol), MASS_RTOL_EPS * eps) if eps > _EPS["float64"] else float(rtol)


def unequal_totals_hint(*inputs: Any, rtol: float = MASS_RTOL) -> str:
    """The remedy that an error on unequal totals names: normalise both, and in float64 when
    an input holds lower-precision floats (their totals' rounding may exceed the tolerance).

    Parameters
    ----------
    *inputs : array_like
        The masses (or weights) as given.
    rtol : float, optional
        The tolerance for float64 inputs.

    Returns
    -------
    str
        A sentence naming the tolerance and the fix.
    """
    tol = totals_rtol(*inputs, rtol=rtol)
    low = sorted({input_precision(v) for v in inputs} - {"float64"})
    if low:
        return (f"The tolerance is a relative difference of {tol:.2g} for {'/'.join(low)} "
                "inputs; normalise both in float64 (e.g. m = m.astype(numpy.float64); "
                "m / m.sum()).")
    return (f"The tolerance is a relative difference of {tol:.2g}; normalise both (e.g. "
            "m / m.sum()).")


def as_array(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Convert ``x`` to a NumPy array of ``dtype``: PyTorch tensors are detached from autograd
    (and copied from the GPU), CuPy arrays copied to the host; complex values, non-numeric
    input and masked arrays with masked entries are refused.

    Parameters
    ----------
    x : array_like
        The user's input.
    name : str
        Argument name used in error messages.
    dtype : dtype, optional
        Target dtype (float64 by default).

    Returns
    -------
    numpy.ndarray
        The converted array (a copy only when a conversion was needed).
    """
    if isinstance(x, np.ma.MaskedArray):
        masked = int(np.count_nonzero(np.ma.getmaskarray(x)))
        if masked:
            raise TypeError(f"{name} is a masked array with {masked} masked entries; otgrid "
                            f"does not read masks: pass a plain array (e.g. {name}.filled(0) "
                            "to give masked cells no mass).")
        x = np.ma.getdata(x)
    x = to_host(x)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            return np.asarray(x, dtype=dtype)
    except np.exceptions.ComplexWarning:
        raise TypeError(f"{name} must hold real numbers; got complex values.") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array; could not convert it ({exc}).") from exc


def as_finite_array(x: Any, name: str, *, dtype: Any = np.float64, ndim: int | None = None,
                    nonnegative: bool = False) -> np.ndarray:
    """Convert ``x`` to a NumPy array of ``dtype`` (:func:`as_array`: PyTorch tensors
    detached, masked arrays with masked entries refused) and check it is finite (and >= 0).

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
    arr = as_array(x, name, dtype)
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
