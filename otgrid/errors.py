"""Warnings and errors raised by otgrid (below every capability: any module may raise them)."""

from __future__ import annotations

__all__ = ["ConvergenceWarning", "InsufficientMemoryError", "OutsideMassError",
           "OutsideMassWarning"]


class ConvergenceWarning(UserWarning):
    """A solver stopped before reaching its requested tolerance.

    The result is still returned and its certified bounds still hold; only the gap between
    them is wider than asked for.
    """


class OutsideMassWarning(UserWarning):
    """Some mass of a distribution or sample set lies outside the grid bounds.

    Raised as a warning when ``outside="renormalize"`` or ``outside="fold"`` handled a non-zero
    amount of mass; the amount is in the message and in the attribute :attr:`mass`.

    Parameters
    ----------
    message : str
        Human-readable description.
    mass : float
        Total mass found outside the grid bounds (before it was renormalised away or folded).
    """

    def __init__(self, message: str, mass: float = float("nan")) -> None:
        super().__init__(message)
        self.mass = float(mass)


class OutsideMassError(ValueError):
    """More of a measure lies outside the grid than the ``outside`` option allows.

    Raised by :meth:`otgrid.Grid.discretize` and :meth:`otgrid.Grid.histogram` with
    ``outside="auto"`` (more than :data:`otgrid.grid.grid.AUTO_OUTSIDE_TOL` times ``ndim`` of the
    total) or ``outside="raise"`` (more than ``outside_tol``). A :class:`ValueError`.

    Attributes
    ----------
    mass : float
        The mass outside the bounds.
    fraction : float
        ``mass`` divided by the total mass.
    bounds : tuple of (float, float)
        The grid's bounds.
    suggested_bounds : list of (float, float) or None
        Bounds that hold the measure (:func:`otgrid.grid.grid.bounds_holding`), or None when
        there are none within :data:`otgrid.grid.grid.MAX_COORDINATE`.
    """

    def __init__(self, message: str, *, mass: float, fraction: float,
                 bounds: tuple[tuple[float, float], ...],
                 suggested_bounds: list[tuple[float, float]] | None) -> None:
        super().__init__(message)
        self.mass = mass
        self.fraction = fraction
        self.bounds = bounds
        self.suggested_bounds = suggested_bounds


class InsufficientMemoryError(MemoryError, ValueError):
    """A solve would need more memory than this machine has available.

    Raised by :func:`otgrid.critic.memory.check_memory` before anything large is allocated
    (``OTGRID_MEMORY_CHECK=0`` turns the check off). It is a
    :class:`MemoryError` and, being bad input for this machine, a :class:`ValueError`.

    Attributes
    ----------
    needed : int
        Estimated peak memory of the solve, in bytes.
    available : int
        Memory available to this process, in bytes.
    shape : tuple of int
        The grid shape asked for.
    fits : tuple of int
        A shape with about the same aspect whose estimate fits in ``available``.
    """

    def __init__(self, message: str, *, needed: int, available: int, shape: tuple[int, ...],
                 fits: tuple[int, ...]) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available
        self.shape = shape
        self.fits = fits
