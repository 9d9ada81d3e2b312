"""The internal units: location and scale of the data.

EM: weighted, per feature; the Bayesian model: the 1-D mean and standard deviation.
"""


from __future__ import annotations

import numpy as np

from ..errors import DataError


def _standardizer(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation per feature (the internal units)."""
    loc = np.average(X, axis=0, weights=w)
    scale = np.sqrt(np.average((X - loc) ** 2, axis=0, weights=w))
    tiny = np.abs(loc) * 1e-13 + np.finfo(float).tiny
    if np.any(scale <= tiny):
        j = int(np.flatnonzero(scale <= tiny)[0])
        raise DataError(
            f"feature {j} of X is constant (every value equals {float(X[0, j])!r}); a mixture "
            "needs spread in every feature: drop that column."
        )
    return loc, scale


def standardizer(x: np.ndarray) -> tuple[float, float]:
    """Location and scale used inside the model: the data's mean and standard deviation."""
    loc = float(np.mean(x))
    scale = float(np.std(x))
    if not scale > 1e-13 * max(abs(loc), np.finfo(float).tiny):
        raise DataError("the data are constant (no spread); a mixture needs varying values.")
    return loc, scale

