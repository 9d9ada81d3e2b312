"""EM internals: parameter containers, one EM iteration, initialisation, standardization.

Private to :mod:`bayesgmm.em`. Everything here works on standardized data and clean
float64 arrays; the hot loops are in :mod:`bayesgmm._kernels`.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as kern
from .errors import DataError

_EPS = 10 * np.finfo(float).eps


# ---------------------------------------------------------------------- internals


class _Params:
    __slots__ = ("weights", "means", "covs")

    def __init__(self, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> None:
        self.weights = weights
        self.means = np.ascontiguousarray(means, dtype=float)
        self.covs = np.ascontiguousarray(covs, dtype=float)


class _Run:
    __slots__ = ("params", "loglik", "trace", "n_iter", "converged", "degenerate")

    def __init__(self, params, loglik, trace, n_iter, converged, degenerate) -> None:
        self.params, self.loglik, self.trace = params, loglik, trace
        self.n_iter, self.converged, self.degenerate = n_iter, converged, degenerate


class _Stepper:
    """One EM iteration on standardized data: log-likelihood at ``p`` and the M-step."""

    def __init__(self, Z, w, Sz, covariance_type, reg):
        self.n, self.d = Z.shape
        self.w, self.cov_type, self.reg = w, covariance_type, reg
        self.W = w.sum()
        self.chunks = kern.n_chunks_for(self.n)
        self.one_d = self.d == 1
        if self.one_d:
            self.x = np.ascontiguousarray(Z[:, 0])
            self.e2 = None if Sz is None else np.ascontiguousarray(Sz[:, 0, 0])
        else:
            self.Z = Z
            self.S = Sz

    def step(self, p: _Params) -> tuple[float, _Params, np.ndarray]:
        """The log-likelihood at ``p`` and the M-step from it (one EM iteration).

        Returns
        -------
        loglik : float
            Total weighted log-likelihood of ``p`` (standardized units). -inf when the
            XD kernel met a V_k + S_i that is not positive definite, so the likelihood
            cannot be evaluated: ``GaussianMixtureEM._run`` then stops and marks the run
            degenerate, and ``fit`` ranks it below every finite run. (Full-covariance
            EM without errors raises ``LinAlgError`` from its Cholesky instead;
            ``em._loglik_or_ninf`` turns that into the same -inf.)
        new : _Params
            The M-step's parameters, ``reg_covar`` added. A component with almost no
            weight (N_k <= 1e-10 of the total) keeps its mean and covariance; one whose
            new covariance is not positive definite keeps its covariance.
        raw_min : ndarray of shape (n_components,)
            Per component, the smallest variance (1-D, diag), the variance (spherical)
            or the smallest eigenvalue (full) of the new covariance before ``reg_covar``:
            ``_run`` flags a collapse where it is below its threshold. Two sentinels:
            +inf for a component with almost no weight (kept as it was, it cannot
            collapse and must not be flagged); -inf for one whose new covariance was not
            positive definite (kept as it was; -inf is below any threshold, so ``_run``
            flags the collapse whenever one is possible, i.e. unless every error
            variance is above the threshold).
        """
        K = p.weights.shape[0]
        with np.errstate(divide="ignore"):
            logpi = np.log(p.weights)
        n, chunks = self.n, self.chunks
        if self.one_d:
            mu, var = p.means[:, 0].copy(), p.covs[:, 0, 0].copy()
            if self.e2 is None:
                ll, st = kern.kernel("em_1d", n)(self.x, self.w, logpi, mu, var, chunks)
                st = st.sum(axis=0)
                s2 = st[2]
            else:
                ll, st = kern.kernel("xd_1d", n)(self.x, self.e2, self.w, logpi, mu, var, chunks)
                st = st.sum(axis=0)
                s2 = st[2] + st[3]
            return float(ll), *self._mstep_1d(mu, var, st[0], st[1], s2)
        elif self.S is None:
            chol = np.linalg.cholesky(p.covs)
            linv = np.linalg.inv(chol)
            half_logdet = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            ll, nk, s1, s2 = kern.kernel("em_full", n)(
                self.Z, self.w, logpi, p.means, linv, half_logdet, chunks
            )
            nk, s1, s2 = nk.sum(0), s1.sum(0), s2.sum(0)
            s2 = np.tril(s2) + np.swapaxes(np.tril(s2, -1), 1, 2)
        else:
            ll, nk, s1, s2, ok = kern.kernel("xd_full", n)(
                self.Z, self.S, self.w, logpi, p.means, p.covs, chunks
            )
            nk, s1, s2 = nk.sum(0), s1.sum(0), s2.sum(0)
            if not ok:
                ll = -np.inf
        return float(ll), *self._mstep(p, nk, s1, s2, K)

    def _mstep_1d(self, mu, var, nk, s1, s2):
        """The M-step for one feature, on (K,) arrays (no matrix algebra)."""
        live = nk > 1e-10 * self.W
        nks = np.where(live, nk, 1.0)
        delta = s1 / nks
        raw = s2 / nks - delta * delta
        new_mu = np.where(live, mu + delta, mu)
        new_var = np.where(live, raw + self.reg, var)
        raw_min = np.where(live, raw, np.inf)
        bad = new_var <= 0
        if bad.any():
            new_var = np.where(bad, var, new_var)
            raw_min = np.where(bad, -np.inf, raw_min)
        weights = np.maximum(nk, _EPS * self.W) / self.W
        weights /= weights.sum()
        return _Params(weights, new_mu[:, None], new_var[:, None, None]), raw_min

    def _mstep(self, p, nk, s1, s2, K):
        d = self.d
        live = nk > 1e-10 * self.W
        nks = np.where(live, nk, 1.0)
        delta = s1 / nks[:, None]
        means = p.means + np.where(live[:, None], delta, 0.0)
        covs = s2 / nks[:, None, None] - delta[:, :, None] * delta[:, None, :]
        covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
        if self.cov_type == "diag" or d == 1:
            dg = np.diagonal(covs, axis1=1, axis2=2)
            raw_min = dg.min(axis=1)
            covs = np.zeros_like(covs)
            covs[:, np.arange(d), np.arange(d)] = dg
        elif self.cov_type == "spherical":
            dg = np.diagonal(covs, axis1=1, axis2=2).mean(axis=1)
            raw_min = dg
            covs = dg[:, None, None] * np.eye(d)
        else:
            raw_min = np.linalg.eigvalsh(covs)[:, 0]
        covs = covs + self.reg * np.eye(d)
        # a component with no points keeps its shape and gets a negligible weight
        covs = np.where(live[:, None, None], covs, p.covs)
        raw_min = np.where(live, raw_min, np.inf)
        if np.any(np.linalg.eigvalsh(covs)[:, 0] <= 0):
            bad = np.linalg.eigvalsh(covs)[:, 0] <= 0
            covs[bad] = p.covs[bad]
            raw_min = np.where(bad, -np.inf, raw_min)
        weights = np.maximum(nk, _EPS * self.W) / self.W
        weights /= weights.sum()
        return _Params(weights, means, covs), raw_min


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


def _initialize(Z, w, Sz, K, how, rng, reg) -> _Params:
    """Starting parameters in standardized units."""
    n, d = Z.shape
    W = w.sum()
    glob = np.atleast_2d(np.cov(Z.T, aweights=w, bias=True))
    if how == "random":
        idx = rng.choice(n, size=K, replace=n < K, p=w / W)
        means = Z[idx].copy()
        covs = np.broadcast_to(glob, (K, d, d)).copy()
        weights = np.full(K, 1.0 / K)
    else:
        centers = _kmeans(Z, w, K, rng)
        labels = _nearest(Z, centers)
        weights = np.bincount(labels, weights=w, minlength=K)
        means = np.empty((K, d))
        covs = np.empty((K, d, d))
        # shrink each cluster's covariance toward the global one divided among K
        # clusters (nu pseudo-points), so one-point clusters start sensibly
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
        weights = weights / weights.sum()
    if Sz is not None:
        covs = _without_errors(covs, Sz, w)
    covs = covs + reg * np.eye(d)
    return _Params(weights, means, covs)


def _without_errors(covs: np.ndarray, Sz: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Start covariances with the mean error covariance taken out (kept positive)."""
    sbar = np.average(Sz, axis=0, weights=w)
    out = covs.copy()
    for k in range(covs.shape[0]):
        ev, vec = np.linalg.eigh(covs[k] - sbar)
        ev = np.maximum(ev, 0.05 * np.linalg.eigvalsh(covs[k]).min())
        out[k] = (vec * ev) @ vec.T
    return out


def _local_scale(Y: np.ndarray, m: int) -> np.ndarray:
    """Distance from each point to its m-th nearest other point."""
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


def _density_layers(Z, w, Sz, K, reg, n_sub=20_000) -> _Params | None:
    """A start that splits the points by local density instead of by position.

    k-means cannot separate components that share a centre and differ in width (a narrow
    line on a broad background): it cuts by position. Here each point's local scale is
    its distance to its m-th nearest neighbour; sorting by it and cutting into K groups
    of equal weight gives a dense core and sparser shells, whose means and covariances
    start EM. None when there are too few points to tell densities apart.
    """
    n, d = Z.shape
    if K < 2 or n < 10 * K:
        return None
    keep = slice(None) if n <= n_sub else np.linspace(0, n - 1, n_sub).astype(int)
    Y, wy = Z[keep], w[keep]
    m = int(min(np.clip(Y.shape[0] // (20 * K), 5, 50), Y.shape[0] - 1))
    local = _local_scale(Y, m)
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
    return _Params(weights / weights.sum(), means, covs + reg * np.eye(d))


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
