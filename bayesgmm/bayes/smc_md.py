"""The D-dim mixture as tempered SMC sees it: :class:`TemperedMD`.

:func:`bayesgmm.bayes.smc.run_smc`, :func:`~bayesgmm.bayes.smc.importance` and
:func:`~bayesgmm.bayes.modes.laplace_components` work on any tempered target; this is
the D-dimensional one, for ``fit(..., sampler="smc")`` on two or more columns. Its
coordinates are the fused density's (PyMC's unconstrained coordinates of
:func:`~bayesgmm.bayes.model_md.build_model_md`, :mod:`.density_md`), and its density
is that module's, the one definition: at temperature b the likelihood statistics of
:func:`~bayesgmm.bayes.density_md._loglik_packed` are scaled by b before the priors
and log-Jacobians are added, so b = 1 is exactly the sampler's target and b = 0 the
prior. The model has no ordering constraint, so each particle's components are sorted
by their mean in the first feature after each stage: an exact move of a target
symmetric under relabelling (components with the same priors; :meth:`TemperedMD.build`
refuses others), which keeps the particles' spread, the proposals' scale, that of one
labelling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import density_md as _dmd
from .smc import _SERIAL_ROWS, _rows
from .target_md import HYPER_MD

__all__ = ["TemperedMD"]

_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_OPTS)
def _tempered(theta, beta, pat_start, pat_d, pat_cols, zc, ec, has_err, alpha, mm, ms, ss,
              eta, grad):
    """(log-likelihood, log prior + log-Jacobians) of one point; tempered gradient in ``grad``."""
    K = alpha.shape[0]
    D = pat_cols.shape[1]
    w, mu, sd, L = _dmd.unpack(theta, K, D)
    ok = True
    for k in range(K):
        ok &= w[k] > 0.0
        for j in range(D):
            ok &= sd[k, j] > 0.0 and sd[k, j] < np.inf and np.isfinite(mu[k, j])
    if not ok:
        grad[:] = 0.0
        return -np.inf, -np.inf
    logw = np.log(w)
    A, Ainv, Sig, logdetA = _dmd._factors(sd, L)
    total, Nk, G, gmu = _dmd._loglik_packed(pat_start, pat_d, pat_cols, zc, ec, has_err,
                                            logw, mu, Sig)
    if not np.isfinite(total):
        grad[:] = 0.0
        return -np.inf, -np.inf
    lp, g = _dmd._finish(theta, w, logw, mu, sd, L, A, Ainv, beta * total, beta * Nk,
                         np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), beta * G,
                         beta * gmu, alpha, mm, ms, ss, eta)
    grad[:] = g
    if not np.isfinite(lp):
        grad[:] = 0.0
        return -np.inf, -np.inf
    return total, lp - beta * total


@njit(parallel=True, **_OPTS)
def _evaluate(theta, beta, pat_start, pat_d, pat_cols, zc, ec, has_err, alpha, mm, ms, ss,
              eta):
    N, d = theta.shape
    ll = np.empty(N)
    lp = np.empty(N)
    grad = np.empty((N, d))
    for p in prange(N):
        ll[p], lp[p] = _tempered(theta[p], beta, pat_start, pat_d, pat_cols, zc, ec, has_err,
                                 alpha, mm, ms, ss, eta, grad[p])
    return ll, lp, grad


@njit(**_OPTS)
def _sort(theta, K, D):
    """Each row's components in the order of their first feature's mean (exact move)."""
    M = D * (D - 1) // 2
    out = theta.copy()
    o_mu = K - 1
    o_sd = o_mu + K * D
    o_c = o_sd + K * D
    for p in range(theta.shape[0]):
        th = theta[p]
        order = np.argsort(th[o_mu : o_mu + K * D : D])
        if K > 1:
            lw = np.log(_dmd._simplex(th[: K - 1], K))
            mean = lw.mean()
            for j in range(K - 1):
                out[p, j] = lw[order[j]] - mean
        for j in range(K):
            k = order[j]
            for a in range(D):
                out[p, o_mu + j * D + a] = th[o_mu + k * D + a]
                out[p, o_sd + j * D + a] = th[o_sd + k * D + a]
            for m in range(M):
                out[p, o_c + j * M + m] = th[o_c + k * M + m]
    return out


class TemperedMD:
    """The D-dim posterior tempered, p(theta) p(x | theta)^b: SMC's target in D dims.

    The interface of :class:`bayesgmm.bayes.smc.Tempered1D`: ``K``, ``d``,
    ``prior(rng, N)``, ``evaluate(theta, beta)``, ``sort(theta)``, ``inside(theta)``.
    Build it with :meth:`build` from a fit's :class:`~.target_md.TargetMD`
    (standardized data, missing values and error covariances as the sampler sees them).
    """

    def __init__(self, target: Any) -> None:
        self.target = target
        self.K, self.D = target.n_components, target.n_features
        self.d = target.n_dim
        self.args = (*target.packed, target.has_err, *target.hyper_args())

    @classmethod
    def build(cls, target: Any) -> TemperedMD:
        """The tempered target of ``target`` (a :class:`~.target_md.TargetMD`).

        Raises
        ------
        DataError
            When a prior differs between components: sorting the components would
            then not be an exact move.
        """
        from ..errors import DataError

        for key in HYPER_MD[:4]:
            value = np.asarray(target.hyper[key])
            if value.size and np.any(np.ptp(value, axis=0) > 0):
                raise DataError(
                    f"prior {key} differs between components; the tempered SMC "
                    "(fit's sampler='smc') needs priors that treat every component "
                    "alike: pass one value per feature.")
        return cls(target)

    def prior(self, rng: np.random.Generator, N: int) -> np.ndarray:
        """``N`` exact draws from the prior, components sorted."""
        h = self.target.hyper
        K, D = self.K, self.D
        w = rng.dirichlet(h["weights_alpha"], size=N) if K > 1 else np.ones((N, 1))
        w = np.maximum(w, 1e-300)
        w /= w.sum(axis=1, keepdims=True)
        mu = h["means_mu"] + h["means_sigma"] * rng.standard_normal((N, K, D))
        sd = np.maximum(h["sigmas_sigma"] * np.abs(rng.standard_normal((N, K, D))), 1e-300)
        L = _lkj_cholesky(D, float(h["corr_eta"]), N * K, rng).reshape(N, K, D, D)
        corr = L @ np.swapaxes(L, -1, -2)
        theta = np.stack([_dmd.pack(w[p], mu[p], sd[p], corr[p]) for p in range(N)])
        return self.sort(theta)

    def evaluate(self, theta: np.ndarray, beta: float):
        """(log-likelihood, log prior + log-Jacobians, tempered gradient) of each row."""
        theta = np.ascontiguousarray(theta, dtype=float)
        if theta.shape[0] > _SERIAL_ROWS:
            return _evaluate(theta, float(beta), *self.args)
        return _rows(theta, lambda th, g: _tempered(th, float(beta), *self.args, g))

    def sort(self, theta: np.ndarray) -> np.ndarray:
        """Components in the order of their first feature's mean."""
        return _sort(np.ascontiguousarray(theta, dtype=float), self.K, self.D)

    def inside(self, theta: np.ndarray) -> np.ndarray:
        """Rows whose components are in that order."""
        o = self.K - 1
        first = theta[:, o : o + self.K * self.D : self.D]
        return np.all(np.diff(first, axis=1) > 0, axis=1)


def _lkj_cholesky(D: int, eta: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` Cholesky factors of LKJ(eta) correlation matrices, by the onion method.

    Lewandowski, Kurowicka & Joe (2009), in the Cholesky form NumPyro's ``LKJCholesky``
    uses: row k (k = 1..D-1) is sqrt(y) u and, on the diagonal, sqrt(1 - y), with u
    uniform on the unit sphere in R^k and y ~ Beta(k / 2, eta + (D - 2) / 2 - (k - 1) / 2).
    Each correlation's marginal is then (r + 1) / 2 ~ Beta(eta - 1 + D / 2, same).
    """
    L = np.zeros((size, D, D))
    L[:, 0, 0] = 1.0
    for k in range(1, D):
        y = rng.beta(k / 2, eta + (D - 2) / 2 - (k - 1) / 2, size)
        u = rng.standard_normal((size, k))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        L[:, k, :k] = np.sqrt(y)[:, None] * u
        L[:, k, k] = np.sqrt(1.0 - y)
    return L
