"""EM's starting points: k-means++ seeding with Lloyd steps, random starts, the density-layer start.

Internal to :mod:`bayesgmm.em` (not the public API): :func:`starts` gives the estimator
its list of starts; :func:`initialize`, :func:`density_layers` and :func:`given_start`
make one each. Works on standardized data (:mod:`bayesgmm._numerics.standardize`).
"""


from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .iteration import Params


def starts(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, K: int, init: str | dict,
           n_init: int, rng: np.random.Generator, reg: float, loc: np.ndarray,
           scale: np.ndarray) -> list[Params]:
    """The starts of one fit, in standardized units.

    Parameters
    ----------
    Z, w, Sz
        Standardized data, sample weights, standardized error covariances (or None).
    K : int
        Number of components.
    init : {"kmeans++", "random"} or dict
        As ``GaussianMixtureEM``'s ``init``: a dict (in data units) gives the one
        start; otherwise ``n_init`` seeded starts, plus the density-layer start after
        k-means++ (when :func:`density_layers` finds one).
    n_init : int
    rng : numpy.random.Generator
    reg : float
        ``reg_covar``, added to every start's covariances.
    loc, scale : ndarray of shape (D,)
        The standardization, to convert a given start.

    Returns
    -------
    list of Params
    """
    if isinstance(init, dict):
        return [given_start(init, K, Z.shape[1], loc, scale)]
    out = [initialize(Z, w, Sz, K, init, rng, reg) for _ in range(int(n_init))]
    if init == "kmeans++":
        for extra in (density_layers(Z, w, Sz, K, reg), hierarchical(Z, w, Sz, K, reg, rng)):
            if extra is not None:
                out.append(extra)
    return out


def given_start(init: dict[str, Any], K: int, d: int, loc: np.ndarray,
                scale: np.ndarray) -> Params:
    """A start given in data units (``init`` dict), checked and standardized.

    Parameters
    ----------
    init : dict
        ``"means"`` (K, D) and optionally ``"weights"`` (K,) and ``"covariances"``
        (K, D, D), in data units; without covariances each is the data's variances.
    K, d : int
        Number of components and of features.
    loc, scale : ndarray of shape (D,)
        The standardization.

    Returns
    -------
    Params

    Raises
    ------
    DataError
        Missing ``"means"``, wrong shapes, non-positive weights or covariances that
        are not positive definite.
    """
    if "means" not in init:
        raise DataError("init dict needs 'means' of shape (n_components, n_features).")
    means = np.asarray(init["means"], dtype=float).reshape(K, -1)
    if means.shape != (K, d):
        raise DataError(f"init['means'] must have shape ({K}, {d}); got {means.shape}.")
    weights = np.asarray(init.get("weights", np.full(K, 1.0 / K)), dtype=float)
    if weights.shape != (K,) or np.any(weights <= 0):
        raise DataError(f"init['weights'] must be {K} positive numbers.")
    if "covariances" in init:
        covs = np.asarray(init["covariances"], dtype=float).reshape(K, d, d)
    else:
        covs = np.broadcast_to(np.diag(scale**2), (K, d, d)).copy()
    covs_z = covs / np.outer(scale, scale)
    if np.any(np.linalg.eigvalsh(covs_z)[:, 0] <= 0):
        raise DataError("init['covariances'] must be positive definite.")
    return Params(weights / weights.sum(), (means - loc) / scale, covs_z)


def initialize(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, K: int, how: str,
               rng: np.random.Generator, reg: float) -> Params:
    """One seeded start in standardized units.

    Parameters
    ----------
    Z, w, Sz
        Standardized data, sample weights, standardized error covariances (or None).
    K : int
    how : {"kmeans++", "random"}
        k-means++ seeding, Lloyd steps and one hard M-step (covariances shrunk toward
        the data's), or means drawn from the data with the data's covariance.
    rng : numpy.random.Generator
    reg : float
        ``reg_covar``, added to the covariances.

    Returns
    -------
    Params
        With errors, the mean error covariance is taken out of each covariance.
    """
    if how == "random":
        means, covs = random_starts(Z, w, Sz, K, 1, rng, reg)
        return Params(np.full(K, 1.0 / K), means[0], covs)
    d = Z.shape[1]
    glob = np.atleast_2d(np.cov(Z.T, aweights=w, bias=True))
    centers = _kmeans(Z, w, K, rng)
    weights, means, covs = _from_labels(Z, w, _nearest(Z, centers), K, centers, glob)
    if Sz is not None:
        covs = _without_errors(covs, Sz, w)
    return Params(weights, means, covs + reg * np.eye(d))


def random_starts(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, K: int,
                  n_starts: int, rng: np.random.Generator, reg: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``n_starts`` random starts at once: means (n_starts, K, D), covariances (K, D, D).

    Each start's means are K data points drawn by weight; every start shares the data's
    covariance (with errors, the mean error covariance taken out), ``reg`` added, and
    equal weights. The draws are those of ``n_starts`` calls of
    ``initialize(..., "random", rng, ...)``, one after another.
    """
    n, d = Z.shape
    p = w / w.sum()
    idx = np.stack([rng.choice(n, size=K, replace=n < K, p=p) for _ in range(n_starts)])
    glob = np.atleast_2d(np.cov(Z.T, aweights=w, bias=True))
    covs = np.broadcast_to(glob, (K, d, d)).copy()
    if Sz is not None:
        covs = _without_errors(covs, Sz, w)
    return Z[idx].reshape(n_starts, K, d), covs + reg * np.eye(d)


def _from_labels(Z: np.ndarray, w: np.ndarray, labels: np.ndarray, K: int,
                 centers: np.ndarray, glob: np.ndarray):
    """One hard M-step from labels: weights, means and shrunk covariances.

    Each covariance is shrunk toward the global one divided among K clusters (nu =
    D + 1 pseudo-points), so that one-point clusters start sensibly; an empty cluster
    keeps its centre.
    """
    d = Z.shape[1]
    W = w.sum()
    weights = np.bincount(labels, weights=w, minlength=K)
    means = np.empty((K, d))
    covs = np.empty((K, d, d))
    nu = d + 1.0
    prior = glob / K ** (2.0 / d)
    for k in range(K):
        m = labels == k
        wk = weights[k]
        if wk <= 0:
            means[k] = centers[k]
            covs[k] = prior
            continue
        mk = np.average(Z[m], axis=0, weights=w[m])
        dz = Z[m] - mk
        scatter = (w[m, None] * dz).T @ dz
        means[k] = mk
        covs[k] = (scatter + nu * prior) / (wk + nu)
    weights = np.maximum(weights, 1e-3 * W / K)
    return weights / weights.sum(), means, covs


def hierarchical(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, K: int, reg: float,
                 rng: np.random.Generator, n_sub: int = 1_000) -> Params | None:
    """A start from Ward's agglomerative clustering of (a subsample of) the points.

    Ward's criterion is model-based hierarchical agglomeration for spherical
    components of equal size (Fraley 1998), the family of mclust's starts. It merges
    bottom-up, so it keeps small, tight groups that k-means++ seeding (top-down, by
    distance) often splits or swallows; the two kinds of start reach different maxima.
    Ward runs on the standardized points, on at most ``n_sub`` of them (a weighted
    draw: its cost grows as the square of the points); every point then joins its
    nearest cluster, and one hard M-step gives the start.

    Returns None for K < 2 or fewer than 2 K points.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    n, d = Z.shape
    if K < 2 or n < 2 * K:
        return None
    if n > n_sub:
        idx = rng.choice(n, size=n_sub, replace=False, p=w / w.sum())
        Y = Z[idx]
    else:
        Y = Z
    tree = linkage(Y, method="ward")
    lab = fcluster(tree, t=K, criterion="maxclust") - 1
    if lab.max() + 1 < K:  # ties: fewer clusters than asked
        return None
    centers = np.array([Y[lab == k].mean(axis=0) for k in range(K)])
    labels = lab if n <= n_sub else _nearest(Z, centers)
    glob = np.atleast_2d(np.cov(Z.T, aweights=w, bias=True))
    weights, means, covs = _from_labels(Z, w, labels, K, centers, glob)
    if Sz is not None:
        covs = _without_errors(covs, Sz, w)
    return Params(weights, means, covs + reg * np.eye(d))


def _without_errors(covs: np.ndarray, Sz: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Start covariances with the mean error covariance taken out (kept positive)."""
    sbar = np.average(Sz, axis=0, weights=w)
    out = covs.copy()
    for k in range(covs.shape[0]):
        ev, vec = np.linalg.eigh(covs[k] - sbar)
        ev = np.maximum(ev, 0.05 * np.linalg.eigvalsh(covs[k]).min())
        out[k] = (vec * ev) @ vec.T
    return out


def local_scale(Y: np.ndarray, m: int) -> np.ndarray:
    """Distance from each point to its m-th nearest other point.

    Parameters
    ----------
    Y : ndarray of shape (n, D)
    m : int
        Which neighbour (1: the nearest); below n.

    Returns
    -------
    ndarray of shape (n,)
        Sorted neighbours in 1-D, a k-d tree otherwise.
    """
    if Y.shape[1] == 1:
        order = np.argsort(Y[:, 0], kind="stable")
        y = Y[order, 0]
        # the m-th neighbour of a point in sorted 1-D data is among the m on either side;
        # padding with infinities keeps the ends from counting themselves as neighbours
        pad = np.concatenate([np.full(m, -np.inf), y, np.full(m, np.inf)])
        idx = np.arange(y.size)[:, None] + m
        steps = np.arange(1, m + 1)[None, :]
        near = np.concatenate([pad[idx - steps], pad[idx + steps]], 1)
        local = np.empty(y.size)
        local[order] = np.sort(np.abs(near - y[:, None]), 1)[:, m - 1]
        return local
    from scipy.spatial import cKDTree

    return cKDTree(Y).query(Y, k=m + 1)[0][:, -1]


def density_layers(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, K: int, reg: float,
                   n_sub: int = 20_000) -> Params | None:
    """A start that splits the points by local density instead of by position.

    k-means cannot separate components that share a centre and differ in width (a narrow
    line on a broad background): it cuts by position. Here each point's local scale is
    its distance to its m-th nearest neighbour; sorting by it and cutting into K groups
    of equal weight gives a dense core and sparser shells, whose means and covariances
    start EM.

    Parameters
    ----------
    Z, w, Sz
        Standardized data, sample weights, standardized error covariances (or None).
    K : int
    reg : float
        ``reg_covar``, added to the covariances.
    n_sub : int, default=20_000
        Above this many points, an evenly spaced subset is used.

    Returns
    -------
    Params or None
        None when there are too few points to tell densities apart (K < 2, fewer than
        10 K points, or an empty group).
    """
    n, d = Z.shape
    if K < 2 or n < 10 * K:
        return None
    keep = slice(None) if n <= n_sub else np.linspace(0, n - 1, n_sub).astype(int)
    Y, wy = Z[keep], w[keep]
    m = int(min(np.clip(Y.shape[0] // (20 * K), 5, 50), Y.shape[0] - 1))
    local = local_scale(Y, m)
    rank = np.argsort(np.log(np.maximum(local, 1e-300)), kind="stable")
    cum = np.cumsum(wy[rank]) / wy.sum()
    group = np.empty(Y.shape[0], dtype=int)
    group[rank] = np.minimum((cum * K).astype(int), K - 1)
    weights = np.bincount(group, weights=wy, minlength=K)
    if np.any(weights <= 0):
        return None
    means = np.empty((K, d))
    covs = np.empty((K, d, d))
    glob = np.atleast_2d(np.cov(Y.T, aweights=wy, bias=True))
    for k in range(K):
        g = group == k
        means[k] = np.average(Y[g], axis=0, weights=wy[g])
        dz = Y[g] - means[k]
        covs[k] = (wy[g, None] * dz).T @ dz / weights[k] + 1e-6 * glob
    if Sz is not None:
        covs = _without_errors(covs, Sz, w)
    return Params(weights / weights.sum(), means, covs + reg * np.eye(d))


def _nearest(Z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d2 = (
        (Z**2).sum(1)[:, None] - 2 * Z @ centers.T + (centers**2).sum(1)[None, :]
    )
    return np.argmin(d2, axis=1)


def _kmeans(Z, w, K, rng, n_sub=20_000, n_lloyd=100):
    """Greedy k-means++ seeding on (a weighted subsample of) Z, refined by Lloyd steps.

    Greedy as in scikit-learn: each new centre is the best of 2 + log K candidates drawn
    in proportion to the squared distance, which avoids most of plain k-means++'s bad
    seedings (two centres in one cluster, none in another) when K is large.
    """
    n = Z.shape[0]
    if n > n_sub:
        idx = rng.choice(n, size=n_sub, replace=False, p=w / w.sum())
        Y, wy = Z[idx], np.ones(n_sub)
    else:
        Y, wy = Z, w
    m = Y.shape[0]
    trials = 2 + int(np.log(K))
    centers = np.empty((K, Z.shape[1]))
    centers[0] = Y[rng.choice(m, p=wy / wy.sum())]
    d2 = ((Y - centers[0]) ** 2).sum(1)
    for k in range(1, K):
        p = wy * d2
        tot = p.sum()
        if tot <= 0:
            centers[k] = Y[rng.integers(m)]
            continue
        cand = rng.choice(m, size=trials, p=p / tot)
        C = Y[cand]  # (trials, D); distances by expansion: no (trials, m, D) array
        sq = (Y**2).sum(1)[None, :] - 2.0 * C @ Y.T + (C**2).sum(1)[:, None]
        cd2 = np.minimum(d2[None, :], np.maximum(sq, 0.0))
        best = int(np.argmin(cd2 @ wy))
        centers[k] = Y[cand[best]]
        d2 = cd2[best]
    for _ in range(n_lloyd):
        lab = _nearest(Y, centers)
        new = centers.copy()
        for k in range(K):
            mk = lab == k
            if wy[mk].sum() > 0:
                new[k] = np.average(Y[mk], axis=0, weights=wy[mk])
        if np.allclose(new, centers):
            break
        centers = new
    return centers
