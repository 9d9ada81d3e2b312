"""Compiled E/M-step loops for multi-dimensional data (full covariances, XD).

The same fused one-pass design as :mod:`bayesgmm.em.kernels` (whose ``kernel`` registry
hands these out, serial or parallel): per point, the K log densities through Cholesky
factors, a log-sum-exp, and the responsibilities accumulated at once into chunk-local
sums. Conventions as in :mod:`bayesgmm.em.kernels`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_LOG2PI = math.log(2.0 * math.pi)
_OPTS = {"cache": True, "nogil": True}


@njit(**_OPTS)
def _normalize(lp, K):
    """Turn log terms into exp(lp - max) in place; return (max, sum)."""
    m = -np.inf
    for k in range(K):
        if lp[k] > m:
            m = lp[k]
    s = 0.0
    for k in range(K):
        e = math.exp(lp[k] - m)
        lp[k] = e
        s += e
    return m, s


@njit(**_OPTS)
def _chol(a, out):
    """Lower Cholesky factor of a small SPD matrix into ``out``; False if not SPD."""
    D = a.shape[0]
    for j in range(D):
        s = a[j, j]
        for p in range(j):
            s -= out[j, p] * out[j, p]
        if s <= 0.0:
            return False
        ljj = math.sqrt(s)
        out[j, j] = ljj
        for i in range(j + 1, D):
            s = a[i, j]
            for p in range(j):
                s -= out[i, p] * out[j, p]
            out[i, j] = s / ljj
        for i in range(j):
            out[i, j] = 0.0
    return True


@njit(**_OPTS)
def _chol_solve(L, b, out):
    """Solve (L L^T) out = b for a vector b."""
    D = L.shape[0]
    for i in range(D):
        s = b[i]
        for p in range(i):
            s -= L[i, p] * out[p]
        out[i] = s / L[i, i]
    for i in range(D - 1, -1, -1):
        s = out[i]
        for p in range(i + 1, D):
            s -= L[p, i] * out[p]
        out[i] = s / L[i, i]


@njit(**_OPTS)
def _em_full_chunk(X, w, mu, linv, const, lo, hi, nk, s1, s2):
    D = X.shape[1]
    K = mu.shape[0]
    lp = np.empty(K)
    diff = np.empty((K, D))
    # thread-local sums, copied out at the end (no false sharing between chunks)
    nk_out, s1_out, s2_out = nk, s1, s2
    nk, s1, s2 = np.zeros_like(nk), np.zeros_like(s1), np.zeros_like(s2)
    ll = 0.0
    for i in range(lo, hi):
        for k in range(K):
            for a in range(D):
                diff[k, a] = X[i, a] - mu[k, a]
            q = 0.0
            for a in range(D):
                y = 0.0
                for b in range(a + 1):
                    y += linv[k, a, b] * diff[k, b]
                q += y * y
            lp[k] = const[k] - 0.5 * q
        m, s = _normalize(lp, K)
        wi = w[i]
        ll += wi * (m + math.log(s))
        f = wi / s
        for k in range(K):
            r = lp[k] * f
            nk[k] += r
            for a in range(D):
                ra = r * diff[k, a]
                s1[k, a] += ra
                for b in range(a + 1):
                    s2[k, a, b] += ra * diff[k, b]
    nk_out[:] = nk
    s1_out[:] = s1
    s2_out[:] = s2
    return ll


def em_full(X, w, logpi, mu, linv, half_logdet, n_chunks):
    """Fused pass for multi-D data without errors (any covariance type, given as full).

    Returns
    -------
    loglik : float
    nk : (n_chunks, K)
    s1 : (n_chunks, K, D)
        sum r w (x - mu_k)
    s2 : (n_chunks, K, D, D)
        sum r w (x - mu_k)(x - mu_k)^T, lower triangle only.
    """
    n, D = X.shape
    K = mu.shape[0]
    nk = np.zeros((n_chunks, K))
    s1 = np.zeros((n_chunks, K, D))
    s2 = np.zeros((n_chunks, K, D, D))
    lls = np.zeros(n_chunks)
    const = np.empty(K)
    for k in range(K):
        const[k] = logpi[k] - 0.5 * D * _LOG2PI - half_logdet[k]
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo, hi = c * step, min(n, (c + 1) * step)
        lls[c] = _em_full_chunk(X, w, mu, linv, const, lo, hi, nk[c], s1[c], s2[c])
    return lls.sum(), nk, s1, s2


@njit(**_OPTS)
def _xd_full_chunk(X, S, w, logpi, mu, V, lo, hi, nk, s1, s2):
    D = X.shape[1]
    K = mu.shape[0]
    lp = np.empty(K)
    L = np.zeros((K, D, D))
    T = np.empty((D, D))
    diff = np.empty(D)
    alpha = np.empty((K, D))
    col = np.empty(D)
    sol = np.empty(D)
    db = np.empty(D)
    TinvV = np.empty((D, D))
    ok = True
    # thread-local sums, copied out at the end (no false sharing between chunks)
    nk_out, s1_out, s2_out = nk, s1, s2
    nk, s1, s2 = np.zeros_like(nk), np.zeros_like(s1), np.zeros_like(s2)
    ll = 0.0
    for i in range(lo, hi):
        for k in range(K):
            for a in range(D):
                diff[a] = X[i, a] - mu[k, a]
                for b in range(D):
                    T[a, b] = V[k, a, b] + S[i, a, b]
            if not _chol(T, L[k]):
                ok = False
                lp[k] = -np.inf
                continue
            _chol_solve(L[k], diff, alpha[k])
            q = 0.0
            hl = 0.0
            for a in range(D):
                q += diff[a] * alpha[k, a]
                hl += math.log(L[k, a, a])
            lp[k] = logpi[k] - 0.5 * D * _LOG2PI - hl - 0.5 * q
        m, s = _normalize(lp, K)
        wi = w[i]
        ll += wi * (m + math.log(s))
        f = wi / s
        for k in range(K):
            r = lp[k] * f
            if r == 0.0:
                continue
            nk[k] += r
            for a in range(D):  # b - mu = V alpha
                t = 0.0
                for b in range(D):
                    t += V[k, a, b] * alpha[k, b]
                db[a] = t
                s1[k, a] += r * t
            for b in range(D):  # T^-1 V, column by column
                for a in range(D):
                    col[a] = V[k, a, b]
                _chol_solve(L[k], col, sol)
                for a in range(D):
                    TinvV[a, b] = sol[a]
            for a in range(D):  # (b - mu)(b - mu)^T + V - V T^-1 V
                for b in range(D):
                    t = 0.0
                    for p in range(D):
                        t += V[k, a, p] * TinvV[p, b]
                    s2[k, a, b] += r * (db[a] * db[b] + V[k, a, b] - t)
    nk_out[:] = nk
    s1_out[:] = s1
    s2_out[:] = s2
    return ll, ok


def xd_full(X, S, w, logpi, mu, V, n_chunks):
    """Fused extreme-deconvolution pass for multi-D data with error covariances ``S``.

    With T = V_k + S_i: b_ik = mu_k + V_k T^-1 (x_i - mu_k) and
    B_ik = V_k - V_k T^-1 V_k (Bovy, Hogg & Roweis 2011).

    Returns
    -------
    loglik : float
    nk : (n_chunks, K)
    s1 : (n_chunks, K, D)
        sum r w (b - mu_k)
    s2 : (n_chunks, K, D, D)
        sum r w [(b - mu_k)(b - mu_k)^T + B], full matrices.
    ok : bool
        False if some V_k + S_i was not positive definite.
    """
    n, D = X.shape
    K = mu.shape[0]
    nk = np.zeros((n_chunks, K))
    s1 = np.zeros((n_chunks, K, D))
    s2 = np.zeros((n_chunks, K, D, D))
    lls = np.zeros(n_chunks)
    oks = np.ones(n_chunks, dtype=np.bool_)
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo, hi = c * step, min(n, (c + 1) * step)
        ll, ok = _xd_full_chunk(X, S, w, logpi, mu, V, lo, hi, nk[c], s1[c], s2[c])
        lls[c] = ll
        oks[c] = ok
    return lls.sum(), nk, s1, s2, oks.all()


@njit(**_OPTS)
def _logprob_point(X, S, has_err, i, logpi, mu, V, L, T, diff, alpha, out):
    D = X.shape[1]
    K = mu.shape[0]
    for k in range(K):
        for a in range(D):
            diff[a] = X[i, a] - mu[k, a]
            for b in range(D):
                T[a, b] = V[k, a, b] + (S[i, a, b] if has_err else 0.0)
        if not _chol(T, L):
            out[i, k] = -np.inf
            continue
        _chol_solve(L, diff, alpha)
        q = 0.0
        hl = 0.0
        for a in range(D):
            q += diff[a] * alpha[a]
            hl += math.log(L[a, a])
        out[i, k] = logpi[k] - 0.5 * D * _LOG2PI - hl - 0.5 * q


@njit(**_OPTS)
def _logprob_range(X, S, has_err, logpi, mu, V, lo, hi, out):
    D = X.shape[1]
    L = np.zeros((D, D))
    T = np.empty((D, D))
    diff = np.empty(D)
    alpha = np.empty(D)
    for i in range(lo, hi):
        _logprob_point(X, S, has_err, i, logpi, mu, V, L, T, diff, alpha, out)


def logprob_full(X, S, logpi, mu, V):
    """Weighted component log densities log(pi_k N(x_i | mu_k, V_k + S_i)), shape (n, K).

    ``S`` may have length 0 along its first axis, meaning no errors.
    """
    n = X.shape[0]
    K = mu.shape[0]
    out = np.empty((n, K))
    has_err = S.shape[0] > 0
    n_chunks = max(1, min(n // 1000, 64))
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        _logprob_range(X, S, has_err, logpi, mu, V, c * step, min(n, (c + 1) * step), out)
    return out


@njit(**_OPTS)
def _deconvolve_point(X, S, resp, mu, V, i, mean, cov):
    D = X.shape[1]
    K = mu.shape[0]
    L = np.zeros((D, D))
    T = np.empty((D, D))
    diff = np.empty(D)
    alpha = np.empty(D)
    col = np.empty(D)
    sol = np.empty(D)
    b = np.empty(D)
    second = np.zeros((D, D))
    for k in range(K):
        r = resp[i, k]
        for a in range(D):
            diff[a] = X[i, a] - mu[k, a]
            for c in range(D):
                T[a, c] = V[k, a, c] + S[i, a, c]
        if r == 0.0 or not _chol(T, L):
            continue
        _chol_solve(L, diff, alpha)
        for a in range(D):
            t = 0.0
            for c in range(D):
                t += V[k, a, c] * alpha[c]
            b[a] = mu[k, a] + t
            mean[i, a] += r * b[a]
        for c in range(D):
            for a in range(D):
                col[a] = V[k, a, c]
            _chol_solve(L, col, sol)
            for a in range(D):
                t = 0.0
                for p in range(D):
                    t += V[k, a, p] * sol[p]
                second[a, c] += r * (V[k, a, c] - t + b[a] * b[c])
    for a in range(D):
        for c in range(D):
            cov[i, a, c] = second[a, c] - mean[i, a] * mean[i, c]


def deconvolve_full(X, S, resp, mu, V):
    """Posterior mean (n, D) and covariance (n, D, D) of each point's true value.

    A mixture over components of N(b_ik, B_ik) with weights ``resp`` (n, K).
    """
    n, D = X.shape
    mean = np.zeros((n, D))
    cov = np.zeros((n, D, D))
    for i in prange(n):
        _deconvolve_point(X, S, resp, mu, V, i, mean, cov)
    return mean, cov


# Each kernel is compiled twice from the same source: a parallel version for large n and
