"""Exceptions and warnings raised by bayesgmm."""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning as _SkConvergenceWarning
from sklearn.exceptions import NotFittedError as _SkNotFittedError

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "NotFittedError",
    "SamplingError",
    "SamplingWarning",
    "SelectionWarning",
]


class DataError(ValueError):
    """User input that cannot be used as it is.

    The message says what was expected, what was received and what to do.
    It subclasses :class:`ValueError`, so ``except ValueError`` catches it.
    """


class NotFittedError(DataError, _SkNotFittedError):
    """A fitted estimator's method was called before ``fit``.

    A :class:`DataError` and scikit-learn's ``NotFittedError`` (itself a ``ValueError``
    and ``AttributeError``), so the handlers of either catch it.
    """


class ConvergenceWarning(_SkConvergenceWarning):
    """An iterative fit stopped before meeting its convergence criterion.

    Subclasses scikit-learn's ``ConvergenceWarning`` (a :class:`UserWarning`), so a
    filter on either category applies.
    """


class SelectionWarning(UserWarning):
    """A choice of the number of components that deserves a second look.

    For example the best K is the largest one tried, so a larger one might be better still.
    """


class SamplingWarning(UserWarning):
    """The posterior sample shows a problem (divergences, modes, empty components)."""


class SamplingError(RuntimeError):
    """Sampling failed; the maximum-likelihood (EM) estimate is kept in ``em_estimate``.

    ``em_estimate`` is a dict (weights, means, sigmas in data units, loglik, bic, n_iter,
    converged): a point estimate, not a posterior.
    """

    def __init__(self, message: str, em_estimate: dict | None = None) -> None:
        super().__init__(message)
        self.em_estimate = em_estimate
