"""Posterior predictive simulation: data sets replicated from the posterior draws.

Each kept draw (chain, draw) gives one replicate of the whole data: every point's
component is drawn from the draw's weights, and its value from that component's normal,
widened by the point's measurement error. The draws are thinned evenly when the
replicates would exceed :data:`PPC_MAX_VALUES` values. Seeded from the sampler's seed,
so the same fit gives the same replicates. In D dims (:func:`replicate_md`) every
replicated point is complete (no missing values), with its error covariance added.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PPC_MAX_VALUES", "kept_draws", "replicate", "replicate_md"]

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


def replicate_md(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    err_cov: np.ndarray,
    seed: int,
) -> np.ndarray:
    """One replicated D-dim data set per draw, in data units, complete (no NaN).

    Point i of a replicate: a component k drawn from the draw's weights, then
    ``means_k + chol(covariances_k) e1 + (S_i)^(1/2) e2`` with e1, e2 standard normal
    and S_i the point's error covariance (its symmetric square root; zero in the
    features the point misses, so those are replicated without error).

    Parameters
    ----------
    weights : numpy.ndarray of shape (chains, draws, K)
    means : numpy.ndarray of shape (chains, draws, K, D)
    covariances : numpy.ndarray of shape (chains, draws, K, D, D)
        The kept draws, data units.
    err_cov : numpy.ndarray of shape (n, D, D)
        The points' error covariances in data units (zeros without errors: then no
        error normals are drawn).
    seed : int
        The sampler's seed; the stream is ``default_rng([seed, 2])`` (as 1-D): the
        components' uniforms (chains, draws, n), then the intrinsic normals
        (chains, draws, n, D), then the errors' normals (chains, draws, n, D).

    Returns
    -------
    numpy.ndarray of shape (chains, draws, n, D)
    """
    C, S, K = weights.shape
    D = means.shape[-1]
    n = err_cov.shape[0]
    prng = np.random.default_rng([seed, 2])
    u = prng.random((C, S, n))
    lab = (u[..., None] > np.cumsum(weights, axis=-1)[:, :, None, :]).sum(-1).clip(max=K - 1)
    e1 = prng.standard_normal((C, S, n, D))
    chol = np.linalg.cholesky(covariances)  # (C, S, K, D, D)
    out = np.empty((C, S, n, D))
    for c in range(C):
        for s in range(S):
            k = lab[c, s]
            out[c, s] = means[c, s, k] + np.einsum("nij,nj->ni", chol[c, s, k], e1[c, s])
    if np.any(err_cov):
        vals, vecs = np.linalg.eigh(err_cov)
        half = (vecs * np.sqrt(np.maximum(vals, 0.0))[:, None, :]) @ np.swapaxes(vecs, -1, -2)
        e2 = prng.standard_normal((C, S, n, D))
        out += np.einsum("nij,csnj->csni", half, e2)
    return out
