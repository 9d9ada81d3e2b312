"""Exceptions and warnings raised by bayesgmm."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "SamplingError",
    "SamplingWarning",
    "SelectionWarning",
]


class DataError(ValueError):
    """User input that cannot be used as it is.

    The message says what was expected, what was received and what to do.
    It subclasses :class:`ValueError`, so ``except ValueError`` catches it.
    """


def __getattr__(name: str) -> Any:
    # NotFittedError subclasses scikit-learn's, whose import is slow (it loads SciPy's
    # stats and pandas): it lives in em.py, which needs scikit-learn anyway, so that
    # `import bayesgmm` stays light
    if name == "NotFittedError":
        from .em import NotFittedError

        return NotFittedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped before meeting its convergence criterion."""


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
