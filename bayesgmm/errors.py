"""Exceptions and warnings raised by bayesgmm."""

from __future__ import annotations

__all__ = ["ConvergenceWarning", "DataError", "SamplingError", "SamplingWarning"]


class DataError(ValueError):
    """User input that cannot be used as it is.

    The message says what was expected, what was received and what to do.
    It subclasses :class:`ValueError`, so ``except ValueError`` catches it.
    """


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped before meeting its convergence criterion."""


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
