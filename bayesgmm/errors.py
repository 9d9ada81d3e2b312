"""Exceptions and warnings raised by bayesgmm."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FailedCheckWarning",
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
    # stats and pandas): it lives in em/estimator.py, which needs scikit-learn anyway, so that
    # `import bayesgmm` stays light
    if name == "NotFittedError":
        from .em.estimator import NotFittedError

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


class FailedCheckWarning(SamplingWarning):
    """A check of :func:`bayesgmm.diagnose` failed on the posterior :func:`bayesgmm.fit` returns.

    :func:`bayesgmm.fit` raises one per failed check, after its rerun rule, so that it
    warns exactly when ``diagnose(result).ok`` is False. The message says which check
    failed, its figure and threshold, and what to try (with the exact keyword).

    Attributes
    ----------
    check : str or None
        The check's name, as in ``diagnose(result).checks["name"]``.
    value, threshold : float or None
        The figure checked and the limit it failed.
    """

    def __init__(self, message: str, check: str | None = None, value: float | None = None,
                 threshold: float | None = None) -> None:
        super().__init__(message)
        self.check = check
        self.value = value
        self.threshold = threshold


class SamplingError(RuntimeError):
    """Sampling failed; the maximum-likelihood (EM) estimate is kept in ``em_estimate``.

    ``em_estimate`` is a dict (weights, means, sigmas in data units, loglik, bic, n_iter,
    converged): a point estimate, not a posterior.
    """

    def __init__(self, message: str, em_estimate: dict | None = None) -> None:
        super().__init__(message)
        self.em_estimate = em_estimate
