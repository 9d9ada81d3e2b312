"""Data with known truth: simulation and the small bundled examples."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["Simulated", "example_path", "load_example", "seed000_data", "seed001_data", "simulate"]

#: The 50 points of seed 000 (two-component teaching example; note the repeated values).
SEED000 = np.array([
    6.47, 5.82, 8.7, 4.76, 7.62, 6.95, 7.44, 6.73, 3.38, 5.89, 7.81, 6.93, 7.23, 6.25, 5.31,
    7.71, 7.42, 5.81, 4.03, 7.09, 7.1, 7.62, 7.74, 6.19, 7.3, 7.37, 6.99, 2.97, 3.3, 7.08,
    6.23, 3.67, 3.05, 6.67, 6.5, 6.08, 3.7, 6.76, 6.56, 3.61, 7.25, 7.34, 6.27, 6.54, 5.83,
    6.44, 5.34, 7.7, 4.19, 7.34,
])

_EXAMPLES = {
    "seed000": "seed000.csv",
    "noisy_lines": "noisy_lines.csv",
    "old_faithful": "old_faithful.csv",
    "galaxy": "galaxy.csv",
}


@dataclass
class Simulated:
    """A simulated data set and the truth behind it.

    Attributes
    ----------
    x : ndarray of shape (n,)
        Observed values (true values plus measurement noise).
    x_err : ndarray of shape (n,) or None
        Per-point measurement standard deviations.
    true_values : ndarray of shape (n,)
    labels : ndarray of shape (n,)
        Component of each point.
    weights, means, sigmas : ndarray of shape (K,)
        The generating parameters (sigmas are intrinsic widths).
    """

    x: np.ndarray
    x_err: np.ndarray | None
    true_values: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray


def simulate(
    n: int,
    weights: Any,
    means: Any,
    sigmas: Any,
    *,
    error_range: tuple[float, float] | None = None,
    random_seed: int | np.random.Generator | None = None,
) -> Simulated:
    """Draw ``n`` points from a 1-D Gaussian mixture, optionally with measurement errors.

    Parameters
    ----------
    n : int
    weights, means, sigmas : array-like of shape (K,)
        Mixture weights (normalised here), component means and intrinsic widths.
    error_range : (float, float), optional
        Per-point error standard deviations are drawn uniformly in this range and
        Gaussian noise of that size is added (heteroscedastic errors).
    random_seed : int, numpy.random.Generator or None

    Returns
    -------
    Simulated
    """
    rng = np.random.default_rng(random_seed)
    w = np.asarray(weights, float)
    mu = np.asarray(means, float)
    sd = np.asarray(sigmas, float)
    if not (w.shape == mu.shape == sd.shape) or w.ndim != 1:
        raise DataError("weights, means and sigmas must be 1-D and of equal length.")
    if np.any(w < 0) or w.sum() <= 0 or np.any(sd < 0):
        raise DataError("weights must be >= 0 (not all zero) and sigmas >= 0.")
    w = w / w.sum()
    labels = rng.choice(len(w), size=n, p=w)
    true = rng.normal(mu[labels], sd[labels])
    if error_range is None:
        return Simulated(true.copy(), None, true, labels, w, mu, sd)
    lo, hi = error_range
    if not 0 <= lo <= hi:
        raise DataError(f"error_range must satisfy 0 <= low <= high; got {error_range}.")
    err = rng.uniform(lo, hi, size=n)
    x = true + rng.normal(0.0, 1.0, size=n) * err
    return Simulated(x, err, true, labels, w, mu, sd)


def seed000_data() -> np.ndarray:
    """The 50 points of seed 000 (a copy)."""
    return SEED000.copy()


def seed001_data() -> np.ndarray:
    """Seed 001's 1,000 points: 350 from N(-1, 1.5), 500 from N(0, 1), 150 from N(3, 0.5).

    Drawn exactly as in the seed, with ``numpy.random.RandomState(1)`` (the legacy
    generator is needed to reproduce the seed's numbers).
    """
    rs = np.random.RandomState(seed=1)  # noqa: NPY002 - reproduces the seed's data
    return np.concatenate([rs.normal(-1, 1.5, 350), rs.normal(0, 1, 500), rs.normal(3, 0.5, 150)])


def example_path(name: str) -> str:
    """Path of a bundled example table (a name of :func:`load_example`)."""
    if name not in _EXAMPLES:
        raise DataError(f"unknown example {name!r}; available: {', '.join(sorted(_EXAMPLES))}.")
    return str(resources.files("bayesgmm").joinpath("data", _EXAMPLES[name]))


def load_example(name: str) -> Any:
    """Load a bundled example table as a :class:`pandas.DataFrame`.

    ``"seed000"``: column ``x``, the 50 points of seed 000.
    ``"noisy_lines"``: columns ``x`` and ``x_err``; 800 simulated velocities from two
    components (means 0 and 2, intrinsic widths 0.3 and 0.6, weights 0.6/0.4) with
    heteroscedastic errors between 0.2 and 1.0, larger than the widths
    (``simulate(800, [0.6, 0.4], [0, 2], [0.3, 0.6], error_range=(0.2, 1.0),
    random_seed=2026)``).
    ``"old_faithful"``: columns ``eruptions [min]`` and ``waiting [min]``; R's ``faithful``
    data set, the 272 eruptions of the Old Faithful geyser (Yellowstone) observed by
    Azzalini & Bowman (1990, Applied Statistics 39:357): each eruption's duration and the
    waiting time to the next one, both in minutes (durations to 0.001 min, waiting times
    to the minute, as in R).
    ``"galaxy"``: column ``velocity [km/s]``; the 82 recession velocities of galaxies in
    the Corona Borealis region (Postman, Huchra & Geller 1986) as Roeder (1990, JASA
    85:617) and Richardson & Green (1997, JRSS B 59:731) used them. R's
    ``MASS::galaxies`` differs in one value: its 78th, 26690, is a typo for 26960 (its
    help page says so); this table has 26960.
    """
    import pandas as pd

    return pd.read_csv(example_path(name))
