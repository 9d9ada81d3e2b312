"""The internal units: location and scale of the data, and when data are constant.

Both halves work on standardized data. EM standardizes each feature by its weighted
mean and sd (``_standardizer``); the Bayesian model its 1-D data by the plain mean and
sd (``standardizer``). They are kept as two functions because ``np.average`` and
``np.mean`` round differently, and a change of the last bit of ``loc`` or ``scale``
would change every draw of a seeded fit; they share one definition of constant data
(:func:`_is_constant`).
"""


from __future__ import annotations

import numpy as np

from ..errors import DataError

#: A spread at or under this fraction of the location (or than float64's smallest
#: normal number, near 0) is no spread: the data are constant.
CONSTANT_RTOL = 1e-13


def _is_constant(loc: np.ndarray | float, scale: np.ndarray | float) -> np.ndarray:
    """Where the spread ``scale`` is no spread at the location ``loc`` (NaN included)."""
    return ~(np.asarray(scale) > CONSTANT_RTOL * np.abs(loc) + np.finfo(float).tiny)


def _standardizer(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation per feature (EM's internal units)."""
    loc = np.average(X, axis=0, weights=w)
    scale = np.sqrt(np.average((X - loc) ** 2, axis=0, weights=w))
    constant = _is_constant(loc, scale)
    if np.any(constant):
        j = int(np.flatnonzero(constant)[0])
        raise DataError(
            f"feature {j} of X is constant (every value equals {float(X[0, j])!r}); a mixture "
            "needs spread in every feature: drop that column."
        )
    return loc, scale


def standardizer(x: np.ndarray) -> tuple[float, float]:
    """Location and scale used inside the model: the data's mean and standard deviation."""
    loc = float(np.mean(x))
    scale = float(np.std(x))
    if _is_constant(loc, scale):
        raise DataError("the data are constant (no spread); a mixture needs varying values.")
    return loc, scale
