"""Exceptions and warnings raised by bayesgmm."""

from __future__ import annotations

__all__ = ["ConvergenceWarning", "DataError", "SamplingWarning"]


class DataError(ValueError):
    """User input that cannot be used as it is.

    The message says what was expected, what was received and what to do.
    It subclasses :class:`ValueError`, so ``except ValueError`` catches it.
    """


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped before meeting its convergence criterion."""


class SamplingWarning(UserWarning):
    """The posterior sample shows a problem (divergences, modes, empty components)."""
