"""Posterior predictive simulation: data sets replicated from the posterior draws.

Each kept draw (chain, draw) gives one replicate of the whole data: every point's
component is drawn from the draw's weights, and its value from that component's normal,
widened by the point's measurement error. The draws are thinned evenly when the
replicates would exceed :data:`PPC_MAX_VALUES` values. Seeded from the sampler's seed,
so the same fit gives the same replicates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PPC_MAX_VALUES", "kept_draws", "replicate"]

#: Largest chains x draws x points stored in posterior_predictive.
PPC_MAX_VALUES = 10_000_000


def kept_draws(chains: int, draws: int, n: int, max_values: int = PPC_MAX_VALUES) -> np.ndarray:
    """Indices of the draws (per chain) replicated: all, or evenly thinned to fit.

    Parameters
    ----------
    chains, draws, n : int
        Chains, draws per chain and data points.
    max_values : int, default=PPC_MAX_VALUES
        Largest chains x kept draws x points.

    Returns
    -------
    numpy.ndarray of int
        Increasing draw indices, at least one.
    """
    keep = max(1, min(draws, max_values // max(1, chains * n)))
    return np.unique(np.linspace(0, draws - 1, keep).round().astype(int))


def replicate(
    weights: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    eps2: np.ndarray,
    loc: float,
    scale: float,
    seed: int,
) -> np.ndarray:
    """One replicated data set per draw, in data units.

    Parameters
    ----------
    weights : numpy.ndarray of shape (chains, draws, K)
        The kept draws' weights.
    mu, sigma : numpy.ndarray of shape (chains, draws, K)
        The kept draws' means and intrinsic sds, standardized (``(means - loc) / scale``,
        ``sigmas / scale``).
    eps2 : numpy.ndarray of shape (n,)
        The points' standardized measurement variances (zeros without errors).
    loc, scale : float
        The standardization.
    seed : int
        The sampler's seed; the stream is ``default_rng([seed, 2])``.

    Returns
    -------
    numpy.ndarray of shape (chains, draws, n)
    """
    K = weights.shape[-1]
    C, S, n = weights.shape[0], weights.shape[1], eps2.shape[0]
    prng = np.random.default_rng([seed, 2])
    u = prng.random((C, S, n))
    lab = (u[..., None] > np.cumsum(weights, axis=-1)[:, :, None, :]).sum(-1).clip(max=K - 1)
    mu_d = np.take_along_axis(mu, lab, axis=-1)
    sg_d = np.take_along_axis(sigma, lab, axis=-1)
    return loc + scale * (mu_d + np.sqrt(sg_d**2 + eps2) * prng.standard_normal(lab.shape))
