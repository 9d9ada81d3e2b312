"""EM's path for points with missing features (NaN), marginalised exactly.

A point whose features ``o`` are observed (the others missing) has the likelihood of its
observed features only: under component k, x_o ~ N(mu_k[o], V_k[o, o] + S_i[o, o]).
This is extreme deconvolution with a projection R_i that keeps the observed coordinates
(Bovy, Hogg & Roweis 2011; EM for incomplete data, Ghahramani & Jordan 1994): with
T = V_k[o, o] + S_i[o, o], the posterior of the point's full true vector under k is
N(b_ik, B_ik), b_ik = mu_k + V_k[:, o] T^-1 (x_o - mu_k[o]) and
B_ik = V_k - V_k[:, o] T^-1 V_k[o, :], and the XD M-step applies unchanged to these.

Only the incomplete points come here (:class:`Missing` splits them off); the complete
ones keep the compiled kernels of :mod:`bayesgmm.em.kernels`, so data without NaN take
exactly the code path they took before. EM's E-step over the incomplete points is
compiled: the rows of a pattern (which features are observed) with at least
:data:`BLOCK_MIN` rows go through the blocked XD pass on their observed features, the
rows of rarer patterns point by point (:func:`bayesgmm.em.kernels_md.xd_missing`). The
densities and deconvolution for predictions work in NumPy group by group, the points of
a group sharing which features are observed, with arrays at most (points of a group, D,
D), one component at a time. Everything is in standardized units.
"""

from __future__ import annotations

import math

import numpy as np

from .._numerics.standardize import _is_constant
from ..errors import DataError
from .kernels_md import _xd_chunk, pack, xd_missing

#: a pattern of missing features with at least this many rows goes through the blocked
#: XD pass (vectorised over its points); rarer ones point by point
BLOCK_MIN = 16

_LOG2PI = math.log(2.0 * math.pi)


class Missing:
    """The rows of ``Z`` with a NaN, grouped by which features are observed.

    Parameters
    ----------
    Z : ndarray of shape (n, D)
        Standardized data, NaN where a feature is missing (no row entirely missing).
    Sz : ndarray of shape (n, D, D) or None
        Standardized error covariances (the entries of missing features are ignored).

    Attributes
    ----------
    complete : ndarray of int
        Rows without NaN (they go through the compiled kernels).
    rows : ndarray of int
        Rows with some NaN.
    groups : list of (obs, idx, x, S)
        Per pattern: the observed features, the positions of its rows in ``rows``,
        their observed values (m, |obs|) and error covariances (m, |obs|, |obs|) or None.
    """

    def __init__(self, Z: np.ndarray, Sz: np.ndarray | None) -> None:
        nan = np.isnan(Z)
        incomplete = nan.any(axis=1)
        self.complete = np.flatnonzero(~incomplete)
        self.rows = np.flatnonzero(incomplete)
        self.d = Z.shape[1]
        patterns, inverse = np.unique(~nan[self.rows], axis=0, return_inverse=True)
        self.groups = []
        for g, observed in enumerate(patterns):
            obs = np.flatnonzero(observed)
            idx = np.flatnonzero(inverse.ravel() == g)
            r = self.rows[idx]
            x = Z[np.ix_(r, obs)]
            S = None if Sz is None else Sz[r][:, obs][:, :, obs]
            self.groups.append((obs, idx, x, S))
        # the compiled E-step's layout: a pattern with at least BLOCK_MIN rows goes
        # through the blocked XD pass on its observed features (pack's layout); the
        # rows of rarer patterns go point by point (xd_missing: each row's observed
        # features first in ``obs``, their count in ``nobs``)
        self.has_err = Sz is not None
        self.blocked = []
        rare = []
        for obs, idx, x, S in self.groups:
            if idx.size >= BLOCK_MIN:
                Xt, Sp = pack(x, S if S is not None else np.zeros((idx.size, obs.size,
                                                                    obs.size)))
                self.blocked.append((obs, idx, Xt, Sp))
            else:
                rare.append(idx)
        self.rare = np.sort(np.concatenate(rare)) if rare else np.zeros(0, dtype=np.int64)
        r = self.rows[self.rare]
        observed = ~nan[r]
        self.nobs = observed.sum(axis=1).astype(np.int64)
        self.obs = np.ascontiguousarray(np.argsort(~observed, axis=1, kind="stable"),
                                        dtype=np.int64)
        self.x = np.ascontiguousarray(Z[r])
        self.S = np.ascontiguousarray(Sz[r]) if Sz is not None else np.zeros((1, 1, 1))

    def logprob(self, logpi: np.ndarray, mu: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, bool]:
        """log(pi_k N(x_o | mu_k[o], T_ik)) for the incomplete rows, shape (len(rows), K).

        Returns the array and False where some T_ik was not positive definite (its
        entries are then -inf).
        """
        K = mu.shape[0]
        out = np.empty((self.rows.size, K))
        ok = True
        for obs, idx, x, S in self.groups:
            for k in range(K):
                terms = _component(x, S, obs, mu[k], V[k], moments=False)
                if terms is None:
                    ok = False
                    out[idx, k] = -np.inf
                else:
                    out[idx, k] = logpi[k] + terms[0]
        return out, ok

    def stats(self, w: np.ndarray, logpi: np.ndarray, mu: np.ndarray, V: np.ndarray
              ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, bool]:
        """The incomplete rows' share of the E-step: log-likelihood and XD statistics.

        Parameters
        ----------
        w : ndarray of shape (n,)
            Sample weights of all rows.
        logpi, mu, V
            Log weights (K,), means (K, D), covariances (K, D, D).

        Returns
        -------
        loglik : float
            sum_i w_i log p(x_i,o) over the incomplete rows.
        nk : (K,)
            sum r w.
        s1 : (K, D)
            sum r w (b - mu_k).
        s2 : (K, D, D)
            sum r w [(b - mu_k)(b - mu_k)^T + B], full matrices.
        ok : bool
            False if some T_ik was not positive definite.
        """
        K, D = mu.shape
        wr = w[self.rows]
        ll, nk, A1, A2, ok = xd_missing(self.x, self.S, self.has_err, self.obs, self.nobs,
                                        np.ascontiguousarray(wr[self.rare]), logpi, mu, V)
        if not ok:
            return _failed(K, D)
        for obs, idx, Xt, Sp in self.blocked:
            q = obs.size
            nk_g, a1, a2 = np.empty(K), np.empty((K, q)), np.empty((K, q, q))
            ll_g, ok = _xd_chunk(Xt, Sp, np.ascontiguousarray(wr[idx]), logpi,
                                 np.ascontiguousarray(mu[:, obs]),
                                 np.ascontiguousarray(V[:, obs][:, :, obs]), 0, idx.size,
                                 nk_g, a1, a2, True)
            if not ok:
                return _failed(K, D)
            ll += ll_g
            nk += nk_g
            A1[:, obs] += a1
            A2[:, obs[:, None], obs] += a2
        s1 = np.einsum("kab,kb->ka", V, A1)
        s2 = V @ A2 @ V + nk[:, None, None] * V
        return float(ll), nk, s1, s2, True

    def deconvolve(self, resp: np.ndarray, mu: np.ndarray, V: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (m, D) and covariance (m, D, D) of the incomplete rows' true values.

        A mixture over components of N(b_ik, B_ik) weighted by ``resp`` (m, K), the
        responsibilities of the incomplete rows: missing features are filled from the
        components the point belongs to.
        """
        K, D = mu.shape
        m = self.rows.size
        mean = np.zeros((m, D))
        second = np.zeros((m, D, D))
        for obs, idx, x, S in self.groups:
            for k in range(K):
                r = resp[idx, k]
                terms = _component(x, S, obs, mu[k], V[k], moments=True)
                if terms is None:
                    continue
                _, db, B = terms
                b = mu[k] + db
                mean[idx] += r[:, None] * b
                second[idx] += r[:, None, None] * (B + b[:, :, None] * b[:, None, :])
        return mean, second - mean[:, :, None] * mean[:, None, :]


def _failed(K: int, D: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, bool]:
    """:meth:`Missing.stats` where some T_ik is not positive definite."""
    return -np.inf, np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), False


def _component(x: np.ndarray, S: np.ndarray | None, obs: np.ndarray, mu: np.ndarray,
               V: np.ndarray, *, moments: bool):
    """One component's terms for one group: log N(x_o | mu_o, T) and, if asked, b - mu, B.

    ``T = V[o, o] + S[:, o, o]`` (one matrix without errors, one per point with). Returns
    None when some T is not positive definite.
    """
    q = obs.size
    Voo = V[np.ix_(obs, obs)]
    T = Voo if S is None else Voo + S
    try:
        L = np.linalg.cholesky(T)
    except np.linalg.LinAlgError:
        return None
    diff = x - mu[obs]
    alpha = np.linalg.solve(T, diff[..., None])[..., 0]  # T^-1 (x_o - mu_o)
    half_logdet = np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)
    with np.errstate(over="ignore"):  # a point too far out: -inf, handled by the caller
        logdens = -0.5 * q * _LOG2PI - half_logdet - 0.5 * np.sum(diff * alpha, axis=1)
    if not moments:
        return (logdens,)
    Vxo = V[:, obs]  # (D, q)
    db = alpha @ Vxo.T  # V[:, o] T^-1 (x_o - mu_o)
    B = V - Vxo @ np.linalg.solve(T, Vxo.T)  # (D, D) or (m, D, D)
    return logdens, db, B


def nan_standardizer(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and sd per feature over its observed (non-NaN) values.

    EM's standardizer for data with missing values (``_standardizer`` is kept for data
    without, so that their numbers keep every bit).
    """
    obs = ~np.isnan(X)
    ww = np.where(obs, w[:, None], 0.0)
    total = ww.sum(axis=0)
    none = np.flatnonzero(total <= 0)
    if none.size:
        j = int(none[0])
        raise DataError(
            f"feature {j} of X has no observed value (every entry is NaN, or only rows of "
            "weight 0 observe it); a mixture cannot learn it: drop that column."
        )
    Xf = np.where(obs, X, 0.0)
    loc = (ww * Xf).sum(axis=0) / total
    scale = np.sqrt((ww * np.where(obs, X - loc, 0.0) ** 2).sum(axis=0) / total)
    constant = _is_constant(loc, scale)
    if np.any(constant):
        j = int(np.flatnonzero(constant)[0])
        first = X[obs[:, j], j][0]
        raise DataError(
            f"feature {j} of X is constant (every observed value equals {float(first)!r}); a "
            "mixture needs spread in every feature: drop that column."
        )
    return loc, scale


def observed_log_scale(X: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per row, the sum of log(scale) over its observed features, shape (n,).

    The Jacobian of the standardization for a density of the observed features only.
    """
    return np.where(np.isnan(X), 0.0, np.log(scale)).sum(axis=1)
