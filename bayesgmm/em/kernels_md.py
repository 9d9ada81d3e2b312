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

from .._numerics.fastmath import _exp, _log

_LOG2PI = math.log(2.0 * math.pi)
_OPTS = {"cache": True, "nogil": True}


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
def eigen_below(S, c):
    """Whether some S_i (n, D, D) has an eigenvalue at or below ``c``.

    S_i - c I has no Cholesky factor exactly then; n small factorizations, no LAPACK call
    per matrix (``np.linalg.eigvalsh`` over all n costs far more).
    """
    n, D = S.shape[0], S.shape[1]
    A = np.empty((D, D))
    L = np.zeros((D, D))
    for i in range(n):
        for a in range(D):
            for b in range(D):
                A[a, b] = S[i, a, b]
            A[a, a] -= c
        if not _chol(A, L):
            return True
    return False


# Blocked loops, as in the 1-D kernels: points are taken _BM at a time, copied into
# feature-major block arrays, and every small-matrix operation (the Cholesky factor of
# V_k + S_i, the triangular solves, the outer products) runs as a loop over the block's
# points with no library call inside, so LLVM vectorizes it whatever D is. exp and log
# are the polynomials of bayesgmm._numerics.fastmath; "reassoc" lets the block sums be
# vectorized (they change only in the last bits).
_FAST = {**_OPTS, "error_model": "numpy", "fastmath": {"reassoc", "contract"}}
_BM = 128


@njit(**_FAST)
def _block_lse(lp, mx, f, wb, K, nb):
    """Turn a block's log terms into responsibilities' numerators in place.

    lp (K, B) holds log terms and mx (B,) their maxima; afterwards lp holds
    exp(lp - mx), f holds w_j / sum_k, and the return value is sum_j w_j log p(x_j).
    """
    for j in range(nb):
        f[j] = 0.0
    for k in range(K):
        for j in range(nb):
            e = _exp(lp[k, j] - mx[j])
            lp[k, j] = e
            f[j] += e
    t = 0.0
    for j in range(nb):
        s = f[j]
        t += wb[j] * (mx[j] + _log(s))
        f[j] = wb[j] / s
    return t


@njit(**_FAST)
def _em_full_chunk(X, w, mu, linv, const, lo, hi, nk, s1, s2):
    D = X.shape[1]
    K = mu.shape[0]
    xb = np.empty((D, _BM))
    dif = np.empty((K, D, _BM))
    rd = np.empty((D, _BM))
    lp = np.empty((K, _BM))
    y = np.empty(_BM)
    q = np.empty(_BM)
    mx = np.empty(_BM)
    f = np.empty(_BM)
    # chunk-local sums, copied out at the end (no false sharing between chunks)
    a_nk = np.zeros(K)
    a_s1 = np.zeros((K, D))
    a_s2 = np.zeros((K, D, D))
    ll = 0.0
    for b0 in range(lo, hi, _BM):
        nb = min(_BM, hi - b0)
        wb = w[b0:b0 + nb]
        for j in range(nb):
            for a in range(D):
                xb[a, j] = X[b0 + j, a]
            mx[j] = -np.inf
        for k in range(K):
            for j in range(nb):
                q[j] = 0.0
            for a in range(D):
                m = mu[k, a]
                for j in range(nb):
                    dif[k, a, j] = xb[a, j] - m
            for a in range(D):  # y = L_k^-1 (x - mu_k), row by row; q = |y|^2
                for j in range(nb):
                    y[j] = 0.0
                for b in range(a + 1):
                    lab = linv[k, a, b]
                    for j in range(nb):
                        y[j] += lab * dif[k, b, j]
                for j in range(nb):
                    q[j] += y[j] * y[j]
            ck = const[k]
            for j in range(nb):
                v = ck - 0.5 * q[j]
                lp[k, j] = v
                mx[j] = max(mx[j], v)
        ll += _block_lse(lp, mx, f, wb, K, nb)
        for k in range(K):
            t0 = 0.0
            for j in range(nb):
                r = lp[k, j] * f[j]
                lp[k, j] = r
                t0 += r
            a_nk[k] += t0
            for a in range(D):
                t1 = 0.0
                for j in range(nb):
                    v = lp[k, j] * dif[k, a, j]
                    rd[a, j] = v
                    t1 += v
                a_s1[k, a] += t1
                for b in range(a + 1):
                    t2 = 0.0
                    for j in range(nb):
                        t2 += rd[a, j] * dif[k, b, j]
                    a_s2[k, a, b] += t2
    nk[:] = a_nk
    s1[:] = a_s1
    s2[:] = a_s2
    return ll


@njit(**_FAST)
def _xd_full_chunk(X, S, w, logpi, mu, V, lo, hi, nk, s1, s2):
    D = X.shape[1]
    K = mu.shape[0]
    P = D * (D + 1) // 2  # packed lower triangle: (a, b), b <= a, at a (a + 1) / 2 + b
    xb = np.empty((D, _BM))
    L = np.empty((K, P, _BM))  # V_k + S_j, factored in place into its Cholesky factor
    idg = np.empty((K, D, _BM))  # 1 / diagonal of the factor
    y = np.empty((K, D, _BM))  # L^-1 (x - mu_k), later T^-1 (x - mu_k)
    lp = np.empty((K, _BM))
    mx = np.empty(_BM)
    f = np.empty(_BM)
    q = np.empty(_BM)
    hl = np.empty(_BM)  # sum of the logs of the factor's diagonal
    pm = np.empty(_BM)  # smallest pivot: <= 0 where V_k + S_j is not positive definite
    db = np.empty((D, _BM))
    rdb = np.empty((D, _BM))
    W = np.empty((D, D, _BM))  # L^-1 V_k
    g = np.empty(_BM)
    a_nk = np.zeros(K)
    a_s1 = np.zeros((K, D))
    a_s2 = np.zeros((K, D, D))
    c0 = -0.5 * D * _LOG2PI
    few = D <= 8  # the product of <= 8 pivots cannot overflow: one log instead of D
    ok = True
    ll = 0.0
    for b0 in range(lo, hi, _BM):
        nb = min(_BM, hi - b0)
        wb = w[b0:b0 + nb]
        for j in range(nb):
            for a in range(D):
                xb[a, j] = X[b0 + j, a]
            mx[j] = -np.inf
        for k in range(K):
            Lk = L[k]
            for a in range(D):
                for b in range(a + 1):
                    t = a * (a + 1) // 2 + b
                    vab = V[k, a, b]
                    for j in range(nb):
                        Lk[t, j] = S[b0 + j, a, b] + vab
            for j in range(nb):
                pm[j] = np.inf
                q[j] = 0.0
            for c in range(D):  # Cholesky, column by column, for all points at once
                cc = c * (c + 1) // 2 + c
                for p in range(c):
                    cp = c * (c + 1) // 2 + p
                    for j in range(nb):
                        Lk[cc, j] -= Lk[cp, j] * Lk[cp, j]
                for j in range(nb):
                    d = Lk[cc, j]
                    pm[j] = min(pm[j], d)
                    s = math.sqrt(d if d > 0.0 else 1.0)
                    Lk[cc, j] = s
                    idg[k, c, j] = 1.0 / s
                for i in range(c + 1, D):
                    ic = i * (i + 1) // 2 + c
                    for p in range(c):
                        ip = i * (i + 1) // 2 + p
                        cp = c * (c + 1) // 2 + p
                        for j in range(nb):
                            Lk[ic, j] -= Lk[ip, j] * Lk[cp, j]
                    for j in range(nb):
                        Lk[ic, j] *= idg[k, c, j]
            if few:  # log det(V_k + S_j) / 2
                for j in range(nb):
                    hl[j] = Lk[0, j]
                for c in range(1, D):
                    cc = c * (c + 1) // 2 + c
                    for j in range(nb):
                        hl[j] *= Lk[cc, j]
                for j in range(nb):
                    hl[j] = _log(hl[j])
            else:
                for j in range(nb):
                    hl[j] = 0.0
                for c in range(D):
                    cc = c * (c + 1) // 2 + c
                    for j in range(nb):
                        hl[j] += _log(Lk[cc, j])
            for a in range(D):  # forward solve: y = L^-1 (x - mu_k); q = |y|^2
                m = mu[k, a]
                for j in range(nb):
                    y[k, a, j] = xb[a, j] - m
                for p in range(a):
                    ap = a * (a + 1) // 2 + p
                    for j in range(nb):
                        y[k, a, j] -= Lk[ap, j] * y[k, p, j]
                for j in range(nb):
                    v = y[k, a, j] * idg[k, a, j]
                    y[k, a, j] = v
                    q[j] += v * v
            ck = logpi[k] + c0
            pmin = np.inf
            for j in range(nb):
                v = ck - hl[j] - 0.5 * q[j]
                v = v if pm[j] > 0.0 else -np.inf
                pmin = min(pmin, pm[j])
                lp[k, j] = v
                mx[j] = max(mx[j], v)
            if not pmin > 0.0:
                ok = False
        ll += _block_lse(lp, mx, f, wb, K, nb)
        for k in range(K):
            Lk = L[k]
            t0 = 0.0
            for j in range(nb):
                r = lp[k, j] * f[j]
                lp[k, j] = r
                t0 += r
            if t0 == 0.0:
                continue
            a_nk[k] += t0
            for a in range(D - 1, -1, -1):  # back solve: y = T^-1 (x - mu_k)
                for p in range(a + 1, D):
                    pa = p * (p + 1) // 2 + a
                    for j in range(nb):
                        y[k, a, j] -= Lk[pa, j] * y[k, p, j]
                for j in range(nb):
                    y[k, a, j] *= idg[k, a, j]
            for a in range(D):  # b - mu_k = V_k T^-1 (x - mu_k)
                for j in range(nb):
                    db[a, j] = 0.0
                for b in range(D):
                    vab = V[k, a, b]
                    for j in range(nb):
                        db[a, j] += vab * y[k, b, j]
            for c in range(D):  # W = L^-1 V_k, so that V_k T^-1 V_k = W^T W
                for a in range(D):
                    vac = V[k, a, c]
                    for j in range(nb):
                        W[a, c, j] = vac
                    for p in range(a):
                        ap = a * (a + 1) // 2 + p
                        for j in range(nb):
                            W[a, c, j] -= Lk[ap, j] * W[p, c, j]
                    for j in range(nb):
                        W[a, c, j] *= idg[k, a, j]
            for a in range(D):
                t1 = 0.0
                for j in range(nb):
                    v = lp[k, j] * db[a, j]
                    rdb[a, j] = v
                    t1 += v
                a_s1[k, a] += t1
                for b in range(a + 1):
                    for j in range(nb):
                        g[j] = 0.0
                    for p in range(D):
                        for j in range(nb):
                            g[j] += W[p, a, j] * W[p, b, j]
                    t2 = 0.0
                    for j in range(nb):
                        t2 += rdb[a, j] * db[b, j] - lp[k, j] * g[j]
                    a_s2[k, a, b] += t2
    # sum r [(b - mu)(b - mu)^T + V - W^T W]: the V term is N_k V_k, added once here
    for k in range(K):
        for a in range(D):
            for b in range(a + 1):
                v = a_s2[k, a, b] + a_nk[k] * V[k, a, b]
                a_s2[k, a, b] = v
                a_s2[k, b, a] = v
    nk[:] = a_nk
    s1[:] = a_s1
    s2[:] = a_s2
    return ll, ok


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
