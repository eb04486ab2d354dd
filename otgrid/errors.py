"""Warnings and errors raised by otgrid."""

from __future__ import annotations

__all__ = ["ConvergenceWarning", "OutsideMassWarning"]


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
