"""Compiled E/M-step loops for multi-dimensional data (full covariances, XD).

The same fused one-pass design as :mod:`bayesgmm.em.kernels` (whose ``kernel`` registry
hands these out, serial or parallel): per point, the K log densities through Cholesky
factors, a log-sum-exp, and the responsibilities accumulated at once into chunk-local
sums. Conventions as in :mod:`bayesgmm.em.kernels`, except that the fitting kernels
take the data feature-major (:func:`pack`): ``Xt`` (D, n) and ``Sp`` (D (D + 1) / 2, n).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._numerics.fastmath import _exp, _log
from .._numerics.linalg import chol as _chol
from .._numerics.linalg import first_not_above

_LOG2PI = math.log(2.0 * math.pi)
_OPTS = {"cache": True, "nogil": True}


@njit(**_OPTS)
def _set(stack, k, m):
    """``stack[k] = m`` as a loop.

    The slice assignment's shape check alone compiles numba's error formatting: seconds
    of a cold first fit.
    """
    D = m.shape[0]
    for a in range(D):
        for b in range(D):
            stack[k, a, b] = m[a, b]


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


def eigen_below(S, c):
    """Whether some S_i (n, D, D) has an eigenvalue at or below ``c``."""
    return first_not_above(S, np.full(S.shape[0], -c)) >= 0


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
def _block_lse_scaled(lp, sc, mx, f, wb, K, nb):
    """:func:`_block_lse` for terms sc * exp(lp), sc (K, B) > 0, mx the maxima of lp.

    Each term is at most sc times exp(0), so nothing overflows, and the largest density
    term is never below exp(0) times its own sc: the sum cannot underflow to 0.
    """
    for j in range(nb):
        f[j] = 0.0
    for k in range(K):
        for j in range(nb):
            e = _exp(lp[k, j] - mx[j]) * sc[k, j]
            lp[k, j] = e
            f[j] += e
    t = 0.0
    for j in range(nb):
        s = f[j]
        t += wb[j] * (mx[j] + _log(s))
        f[j] = wb[j] / s
    return t


@njit(**_FAST)
def _em_full_chunk(Xt, w, mu, linv, const, lo, hi, nk, s1, s2):
    D = Xt.shape[0]
    K = mu.shape[0]
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
            mx[j] = -np.inf
        for k in range(K):
            for j in range(nb):
                q[j] = 0.0
            for a in range(D):
                m = mu[k, a]
                for j in range(nb):
                    dif[k, a, j] = Xt[a, b0 + j] - m
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
    for k in range(K):  # loops, not slice assignments: see _set
        nk[k] = a_nk[k]
        for a in range(D):
            s1[k, a] = a_s1[k, a]
        _set(s2, k, a_s2[k])
    return ll


@njit(**_FAST)
def _xd_full_chunk(Xt, Sp, w, logpi, mu, V, lo, hi, nk, s1, s2, raw=False):
    D = Xt.shape[0]
    K = mu.shape[0]
    P = D * (D + 1) // 2  # packed lower triangle: (a, b), b <= a, at a (a + 1) / 2 + b
    L = np.empty((K, P, _BM))  # V_k + S_j, factored in place into its Cholesky factor
    idg = np.empty((K, D, _BM))  # 1 / diagonal of the factor
    y = np.empty((K, D, _BM))  # L^-1 (x - mu_k), later T^-1 (x - mu_k)
    lp = np.empty((K, _BM))
    mx = np.empty(_BM)
    f = np.empty(_BM)
    q = np.empty(_BM)
    hl = np.empty(_BM)  # sum of the logs of the factor's diagonal (D > 8)
    sc = np.empty((K, _BM))  # the product of its inverse (D <= 8), a factor of the density
    pm = np.empty(_BM)  # smallest pivot: <= 0 where V_k + S_j is not positive definite
    Li = np.empty((P, _BM))  # L^-1, packed like L
    ra = np.empty((D, _BM))
    g = np.empty(_BM)
    # chunk-local sums: N_k, sum r alpha and sum r (alpha alpha^T - T^-1), with
    # alpha = T^-1 (x - mu_k); V_k is the same for every point, so
    # sum r (b - mu) = V A1 and sum r [(b - mu)(b - mu)^T + B] = V A2 V + N_k V
    a_nk = np.zeros(K)
    A1 = np.zeros((K, D))
    A2 = np.zeros((K, D, D))
    c0 = -0.5 * D * _LOG2PI
    # the product of <= 8 inverse pivots cannot overflow (that would take errors 1e77
    # times the data's spread); it replaces D logs per point and component
    few = D <= 8
    ok = True
    ll = 0.0
    for b0 in range(lo, hi, _BM):
        nb = min(_BM, hi - b0)
        wb = w[b0:b0 + nb]
        for j in range(nb):
            mx[j] = -np.inf
        for k in range(K):
            Lk = L[k]
            for a in range(D):
                for b in range(a + 1):
                    t = a * (a + 1) // 2 + b
                    vab = V[k, a, b]
                    for j in range(nb):
                        Lk[t, j] = Sp[t, b0 + j] + vab
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
            if few:  # |V_k + S_j|^-1/2 as a factor of the density: no log per point
                for j in range(nb):
                    sc[k, j] = idg[k, 0, j]
                    hl[j] = 0.0
                for c in range(1, D):
                    for j in range(nb):
                        sc[k, j] *= idg[k, c, j]
            else:  # log |V_k + S_j| / 2 in the exponent
                for j in range(nb):
                    sc[k, j] = 1.0
                    hl[j] = 0.0
                for c in range(D):
                    cc = c * (c + 1) // 2 + c
                    for j in range(nb):
                        hl[j] += _log(Lk[cc, j])
            for a in range(D):  # forward solve: y = L^-1 (x - mu_k); q = |y|^2
                m = mu[k, a]
                for j in range(nb):
                    y[k, a, j] = Xt[a, b0 + j] - m
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
        ll += _block_lse_scaled(lp, sc, mx, f, wb, K, nb)
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
            for a in range(D - 1, -1, -1):  # back solve: alpha = T^-1 (x - mu_k)
                for p in range(a + 1, D):
                    pa = p * (p + 1) // 2 + a
                    for j in range(nb):
                        y[k, a, j] -= Lk[pa, j] * y[k, p, j]
                for j in range(nb):
                    y[k, a, j] *= idg[k, a, j]
            for c in range(D):  # L^-1, column by column: Li[a, c] for a >= c
                cc = c * (c + 1) // 2 + c
                for j in range(nb):
                    Li[cc, j] = idg[k, c, j]
                for a in range(c + 1, D):
                    ac = a * (a + 1) // 2 + c
                    for j in range(nb):
                        g[j] = 0.0
                    for p in range(c, a):
                        ap = a * (a + 1) // 2 + p
                        pc = p * (p + 1) // 2 + c
                        for j in range(nb):
                            g[j] += Lk[ap, j] * Li[pc, j]
                    for j in range(nb):
                        Li[ac, j] = -g[j] * idg[k, a, j]
            for a in range(D):
                t1 = 0.0
                for j in range(nb):
                    v = lp[k, j] * y[k, a, j]
                    ra[a, j] = v
                    t1 += v
                A1[k, a] += t1
                for b in range(a + 1):
                    # (T^-1)_ab = sum_{p >= a} (L^-1)_pa (L^-1)_pb, for b <= a
                    for j in range(nb):
                        g[j] = 0.0
                    for p in range(a, D):
                        pa = p * (p + 1) // 2 + a
                        pb = p * (p + 1) // 2 + b
                        for j in range(nb):
                            g[j] += Li[pa, j] * Li[pb, j]
                    t2 = 0.0
                    for j in range(nb):
                        t2 += ra[a, j] * y[k, b, j] - lp[k, j] * g[j]
                    A2[k, a, b] += t2
    for k in range(K):
        for a in range(D):
            for b in range(a):
                A2[k, b, a] = A2[k, a, b]
        if raw:  # the sums before V_k: sum r alpha, sum r (alpha alpha^T - T^-1)
            s1[k] = A1[k]
            s2[k] = A2[k]
        else:
            s1[k] = V[k] @ A1[k]
            s2[k] = V[k] @ A2[k] @ V[k] + a_nk[k] * V[k]
    nk[:] = a_nk
    return ll, ok


# D = 2, 3 and 4 written out: per point and component, the LDL^T factor of
# T = V_k + S_j (unit lower L, diagonal d), with no square root but the one of the
# density's factor |T|^-1/2 = sqrt(prod 1 / d_c); everything stays in registers, so
# the loop over a block's points is one vectorized body. d_c are the squares of the
# Cholesky pivots: T is positive definite exactly when all are > 0. Then
# alpha = T^-1 (x - mu) = L^-T D^-1 L^-1 (x - mu), and the entries of T^-1 for the
# XD statistics, as in :func:`_xd_full_chunk` (which D >= 5 uses; its square roots
# cost more than the rest of a D = 3 pass).


@njit(**_FAST)
def _xd_small_chunk(Xt, Sp, w, logpi, mu, V, lo, hi, nk, s1, s2, raw=False):
    """:func:`_xd_full_chunk` for D = 2, 3 or 4, the same sums."""
    D = Xt.shape[0]
    K = mu.shape[0]
    P = D * (D + 1) // 2
    nst = D + P  # per point: alpha (D), then T^-1's lower triangle (P), packed as Sp
    lp = np.empty((K, _BM))
    sc = np.empty((K, _BM))
    st = np.empty((K, nst, _BM))
    pmv = np.empty(_BM)
    mx = np.empty(_BM)
    f = np.empty(_BM)
    a_nk = np.zeros(K)
    A1 = np.zeros((K, D))
    A2 = np.zeros((K, P))
    c0 = -0.5 * D * _LOG2PI
    ok = True
    ll = 0.0
    three = D == 3
    four = D == 4
    for b0 in range(lo, hi, _BM):
        nb = min(_BM, hi - b0)
        for j in range(nb):
            mx[j] = -np.inf
        for k in range(K):
            v00, v10, v11 = V[k, 0, 0], V[k, 1, 0], V[k, 1, 1]
            m0, m1 = mu[k, 0], mu[k, 1]
            ck = logpi[k] + c0
            stk = st[k]
            if four:
                v20, v21, v22, m2 = V[k, 2, 0], V[k, 2, 1], V[k, 2, 2], mu[k, 2]
                v30, v31, v32, v33 = V[k, 3, 0], V[k, 3, 1], V[k, 3, 2], V[k, 3, 3]
                m3 = mu[k, 3]
                for j in range(nb):
                    i = b0 + j
                    t10 = Sp[1, i] + v10
                    t20 = Sp[3, i] + v20
                    t30 = Sp[6, i] + v30
                    d0 = Sp[0, i] + v00
                    id0 = 1.0 / (d0 if d0 > 0.0 else 1.0)
                    l10, l20, l30 = t10 * id0, t20 * id0, t30 * id0
                    d1 = Sp[2, i] + v11 - l10 * t10
                    id1 = 1.0 / (d1 if d1 > 0.0 else 1.0)
                    u21 = Sp[4, i] + v21 - l20 * t10
                    u31 = Sp[7, i] + v31 - l30 * t10
                    l21, l31 = u21 * id1, u31 * id1
                    d2 = Sp[5, i] + v22 - l20 * t20 - l21 * u21
                    id2 = 1.0 / (d2 if d2 > 0.0 else 1.0)
                    u32 = Sp[8, i] + v32 - l30 * t20 - l31 * u21
                    l32 = u32 * id2
                    d3 = Sp[9, i] + v33 - l30 * t30 - l31 * u31 - l32 * u32
                    id3 = 1.0 / (d3 if d3 > 0.0 else 1.0)
                    pm = min(min(d0, d1), min(d2, d3))
                    z0 = Xt[0, i] - m0
                    z1 = Xt[1, i] - m1 - l10 * z0
                    z2 = Xt[2, i] - m2 - l20 * z0 - l21 * z1
                    z3 = Xt[3, i] - m3 - l30 * z0 - l31 * z1 - l32 * z2
                    w0, w1, w2, w3 = z0 * id0, z1 * id1, z2 * id2, z3 * id3
                    v = ck - 0.5 * (z0 * w0 + z1 * w1 + z2 * w2 + z3 * w3)
                    lp[k, j] = v if pm > 0.0 else -np.inf
                    mx[j] = max(mx[j], lp[k, j])
                    sc[k, j] = math.sqrt(id0 * id1 * id2 * id3)
                    pmv[j] = pm
                    a2 = w2 - l32 * w3
                    a1 = w1 - l21 * a2 - l31 * w3
                    # L^-1 below its unit diagonal: g_ab
                    g10, g21, g32 = -l10, -l21, -l32
                    g20 = l21 * l10 - l20
                    g31 = l32 * l21 - l31
                    g30 = -(l30 + l31 * g10 + l32 * g20)
                    h30, h31, h32 = g30 * id3, g31 * id3, g32 * id3
                    stk[0, j] = w0 - l10 * a1 - l20 * a2 - l30 * w3
                    stk[1, j] = a1
                    stk[2, j] = a2
                    stk[3, j] = w3
                    stk[4, j] = id0 + g10 * g10 * id1 + g20 * g20 * id2 + g30 * h30
                    stk[5, j] = g10 * id1 + g21 * g20 * id2 + g31 * h30
                    stk[6, j] = id1 + g21 * g21 * id2 + g31 * h31
                    stk[7, j] = g20 * id2 + g32 * h30
                    stk[8, j] = g21 * id2 + g32 * h31
                    stk[9, j] = id2 + g32 * h32
                    stk[10, j] = h30
                    stk[11, j] = h31
                    stk[12, j] = h32
                    stk[13, j] = id3
            elif three:
                v20, v21, v22, m2 = V[k, 2, 0], V[k, 2, 1], V[k, 2, 2], mu[k, 2]
                for j in range(nb):
                    i = b0 + j
                    t10 = Sp[1, i] + v10
                    t20 = Sp[3, i] + v20
                    d0 = Sp[0, i] + v00
                    id0 = 1.0 / (d0 if d0 > 0.0 else 1.0)
                    l10 = t10 * id0
                    l20 = t20 * id0
                    d1 = Sp[2, i] + v11 - l10 * t10
                    id1 = 1.0 / (d1 if d1 > 0.0 else 1.0)
                    u21 = Sp[4, i] + v21 - l20 * t10
                    l21 = u21 * id1
                    d2 = Sp[5, i] + v22 - l20 * t20 - l21 * u21
                    id2 = 1.0 / (d2 if d2 > 0.0 else 1.0)
                    pm = min(d0, min(d1, d2))
                    z0 = Xt[0, i] - m0
                    z1 = Xt[1, i] - m1 - l10 * z0
                    z2 = Xt[2, i] - m2 - l20 * z0 - l21 * z1
                    w0, w1, w2 = z0 * id0, z1 * id1, z2 * id2
                    v = ck - 0.5 * (z0 * w0 + z1 * w1 + z2 * w2)
                    lp[k, j] = v if pm > 0.0 else -np.inf
                    mx[j] = max(mx[j], lp[k, j])
                    sc[k, j] = math.sqrt(id0 * id1 * id2)
                    pmv[j] = pm
                    a1 = w1 - l21 * w2
                    g20 = l21 * l10 - l20  # (L^-1)_20; (L^-1)_10 = -l10, (L^-1)_21 = -l21
                    h20 = g20 * id2
                    h21 = -l21 * id2
                    stk[0, j] = w0 - l10 * a1 - l20 * w2
                    stk[1, j] = a1
                    stk[2, j] = w2
                    stk[3, j] = id0 + l10 * l10 * id1 + g20 * h20
                    stk[4, j] = -l10 * id1 - l21 * h20
                    stk[5, j] = id1 - l21 * h21
                    stk[6, j] = h20
                    stk[7, j] = h21
                    stk[8, j] = id2
            else:
                for j in range(nb):
                    i = b0 + j
                    t10 = Sp[1, i] + v10
                    d0 = Sp[0, i] + v00
                    id0 = 1.0 / (d0 if d0 > 0.0 else 1.0)
                    l10 = t10 * id0
                    d1 = Sp[2, i] + v11 - l10 * t10
                    id1 = 1.0 / (d1 if d1 > 0.0 else 1.0)
                    pm = min(d0, d1)
                    z0 = Xt[0, i] - m0
                    z1 = Xt[1, i] - m1 - l10 * z0
                    w0, w1 = z0 * id0, z1 * id1
                    v = ck - 0.5 * (z0 * w0 + z1 * w1)
                    lp[k, j] = v if pm > 0.0 else -np.inf
                    mx[j] = max(mx[j], lp[k, j])
                    sc[k, j] = math.sqrt(id0 * id1)
                    pmv[j] = pm
                    stk[0, j] = w0 - l10 * w1
                    stk[1, j] = w1
                    stk[2, j] = id0 + l10 * l10 * id1
                    stk[3, j] = -l10 * id1
                    stk[4, j] = id1
            pmin = np.inf
            for j in range(nb):
                pmin = min(pmin, pmv[j])
            if not pmin > 0.0:
                ok = False
        ll += _block_lse_scaled(lp, sc, mx, f, w[b0:b0 + nb], K, nb)
        for k in range(K):  # sums of r, r alpha and r (alpha alpha^T - T^-1)
            stk = st[k]
            n0 = e0 = e1 = e2 = c00 = c10 = c11 = c20 = c21 = c22 = 0.0
            if four:
                e3 = c30 = c31 = c32 = c33 = 0.0
                for j in range(nb):
                    r = lp[k, j] * f[j]
                    a0, a1, a2, a3 = stk[0, j], stk[1, j], stk[2, j], stk[3, j]
                    ra0, ra1, ra2, ra3 = r * a0, r * a1, r * a2, r * a3
                    n0 += r
                    e0 += ra0
                    e1 += ra1
                    e2 += ra2
                    e3 += ra3
                    c00 += ra0 * a0 - r * stk[4, j]
                    c10 += ra1 * a0 - r * stk[5, j]
                    c11 += ra1 * a1 - r * stk[6, j]
                    c20 += ra2 * a0 - r * stk[7, j]
                    c21 += ra2 * a1 - r * stk[8, j]
                    c22 += ra2 * a2 - r * stk[9, j]
                    c30 += ra3 * a0 - r * stk[10, j]
                    c31 += ra3 * a1 - r * stk[11, j]
                    c32 += ra3 * a2 - r * stk[12, j]
                    c33 += ra3 * a3 - r * stk[13, j]
                A1[k, 2] += e2
                A1[k, 3] += e3
                A2[k, 3] += c20
                A2[k, 4] += c21
                A2[k, 5] += c22
                A2[k, 6] += c30
                A2[k, 7] += c31
                A2[k, 8] += c32
                A2[k, 9] += c33
            elif three:
                for j in range(nb):
                    r = lp[k, j] * f[j]
                    a0, a1, a2 = stk[0, j], stk[1, j], stk[2, j]
                    ra0, ra1, ra2 = r * a0, r * a1, r * a2
                    n0 += r
                    e0 += ra0
                    e1 += ra1
                    e2 += ra2
                    c00 += ra0 * a0 - r * stk[3, j]
                    c10 += ra1 * a0 - r * stk[4, j]
                    c11 += ra1 * a1 - r * stk[5, j]
                    c20 += ra2 * a0 - r * stk[6, j]
                    c21 += ra2 * a1 - r * stk[7, j]
                    c22 += ra2 * a2 - r * stk[8, j]
                A1[k, 2] += e2
                A2[k, 3] += c20
                A2[k, 4] += c21
                A2[k, 5] += c22
            else:
                for j in range(nb):
                    r = lp[k, j] * f[j]
                    a0, a1 = stk[0, j], stk[1, j]
                    ra0, ra1 = r * a0, r * a1
                    n0 += r
                    e0 += ra0
                    e1 += ra1
                    c00 += ra0 * a0 - r * stk[2, j]
                    c10 += ra1 * a0 - r * stk[3, j]
                    c11 += ra1 * a1 - r * stk[4, j]
            a_nk[k] += n0
            A1[k, 0] += e0
            A1[k, 1] += e1
            A2[k, 0] += c00
            A2[k, 1] += c10
            A2[k, 2] += c11
    M = np.empty((D, D))
    for k in range(K):
        for a in range(D):
            for b in range(a + 1):
                M[a, b] = M[b, a] = A2[k, a * (a + 1) // 2 + b]
        if raw:  # as in _xd_full_chunk
            s1[k] = A1[k]
            s2[k] = M
        else:
            s1[k] = V[k] @ A1[k]
            s2[k] = V[k] @ M @ V[k] + a_nk[k] * V[k]
    nk[:] = a_nk
    return ll, ok


@njit(**_FAST)
def _xd_chunk(Xt, Sp, w, logpi, mu, V, lo, hi, nk, s1, s2, raw=False):
    """The XD pass over points lo..hi: written out for D = 2, 3, 4, general otherwise.

    ``raw``: s1 and s2 receive sum r alpha and sum r (alpha alpha^T - T^-1), before the
    products with V_k (for :func:`xd_missing`, which sets them into more features).
    """
    if 2 <= Xt.shape[0] <= 4:
        return _xd_small_chunk(Xt, Sp, w, logpi, mu, V, lo, hi, nk, s1, s2, raw)
    return _xd_full_chunk(Xt, Sp, w, logpi, mu, V, lo, hi, nk, s1, s2, raw)


def pack(X, S=None):
    """The layout of the fitting kernels: X (n, D) as (D, n), S (n, D, D) as (P, n).

    P = D (D + 1) / 2 lower-triangle entries (a, b), b <= a, at a (a + 1) / 2 + b: the
    block loops then read each feature and each error entry contiguously.
    """
    Xt = np.ascontiguousarray(np.asarray(X, dtype=float).T)
    if S is None:
        return Xt, None
    rows, cols = np.tril_indices(Xt.shape[0])
    return Xt, np.ascontiguousarray(S[:, rows, cols].T)


def em_full(Xt, w, logpi, mu, linv, half_logdet, n_chunks):
    """Fused pass for multi-D data without errors (any covariance type, given as full).

    ``Xt`` is the data feature-major, (D, n), as :func:`pack` lays it out.

    Returns
    -------
    loglik : float
    nk : (K,)
    s1 : (K, D)
        sum r w (x - mu_k)
    s2 : (K, D, D)
        sum r w (x - mu_k)(x - mu_k)^T.
    """
    D, n = Xt.shape
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
        lls[c] = _em_full_chunk(Xt, w, mu, linv, const, lo, hi, nk[c], s1[c], s2[c])
    for c in range(1, n_chunks):
        nk[0] += nk[c]
        s1[0] += s1[c]
        s2[0] += s2[c]
    for k in range(K):  # the chunks fill the lower triangle
        for a in range(D):
            for b in range(a):
                s2[0, k, b, a] = s2[0, k, a, b]
    return lls.sum(), nk[0], s1[0], s2[0]


def xd_full(Xt, Sp, w, logpi, mu, V, n_chunks):
    """Fused extreme-deconvolution pass for multi-D data with error covariances.

    ``Xt`` (D, n) and ``Sp`` (D (D + 1) / 2, n) are the data and the error covariances'
    lower triangles, feature-major, as :func:`pack` lays them out.

    With T = V_k + S_i: b_ik = mu_k + V_k T^-1 (x_i - mu_k) and
    B_ik = V_k - V_k T^-1 V_k (Bovy, Hogg & Roweis 2011).

    Returns
    -------
    loglik : float
    nk : (K,)
    s1 : (K, D)
        sum r w (b - mu_k)
    s2 : (K, D, D)
        sum r w [(b - mu_k)(b - mu_k)^T + B].
    ok : bool
        False if some V_k + S_i was not positive definite.
    """
    D, n = Xt.shape
    K = mu.shape[0]
    nk = np.zeros((n_chunks, K))
    s1 = np.zeros((n_chunks, K, D))
    s2 = np.zeros((n_chunks, K, D, D))
    lls = np.zeros(n_chunks)
    oks = np.ones(n_chunks, dtype=np.bool_)
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo, hi = c * step, min(n, (c + 1) * step)
        ll, ok = _xd_chunk(Xt, Sp, w, logpi, mu, V, lo, hi, nk[c], s1[c], s2[c])
        lls[c] = ll
        oks[c] = ok
    for c in range(1, n_chunks):
        nk[0] += nk[c]
        s1[0] += s1[c]
        s2[0] += s2[c]
    return lls.sum(), nk[0], s1[0], s2[0], oks.all()


@njit(**_OPTS)
def _tie(covs, nk, s1, s2, W, reg, new_covs, raw_min):
    """The tied M-step's covariance into every component (see :func:`mstep_md`)."""
    K, D = s1.shape
    c = np.zeros((D, D))
    tot = 0.0
    for k in range(K):
        if not nk[k] > 1e-10 * W:
            continue
        tot += nk[k]
        for a in range(D):
            for b in range(D):
                c[a, b] += 0.5 * (s2[k, a, b] + s2[k, b, a]) - s1[k, a] * s1[k, b] / nk[k]
    c /= tot
    lo = np.linalg.eigvalsh(c)[0]
    if lo + reg <= 0.0:  # not positive definite even with reg: every one kept
        for k in range(K):
            _set(new_covs, k, covs[k])
            raw_min[k] = -np.inf
        return
    for a in range(D):
        c[a, a] += reg
    for k in range(K):
        _set(new_covs, k, c)
        # a component without weight shares it too, but cannot collapse on its own
        raw_min[k] = lo if nk[k] > 1e-10 * W else np.inf


@njit(**_OPTS)
def mstep_md(means, covs, nk, s1, s2, W, reg, ctype, eps):
    """The multi-D M-step from a pass's sums (summed over chunks), in one compiled call.

    ``ctype`` 0: full, 1: diag, 2: spherical, 3: tied (one covariance for all: the
    components' scatter about their new means, pooled). Returns the new weights, means and
    covariances (``reg`` added to the diagonal) and, per component, the smallest raw
    eigenvalue (full), variance (diag) or variance (spherical) before ``reg``, with the
    sentinels of :meth:`bayesgmm.em.iteration.Stepper.step`: +inf for a component with
    almost no weight (it keeps its mean and covariance), -inf for one whose new
    covariance is not positive definite (it keeps its covariance).
    """
    K, D = means.shape
    new_means = means.copy()
    new_covs = np.empty_like(covs)
    raw_min = np.empty(K)
    c = np.empty((D, D))
    delta = np.empty(D)
    for k in range(K):
        if not nk[k] > 1e-10 * W:
            _set(new_covs, k, covs[k])
            raw_min[k] = np.inf
            continue
        for a in range(D):
            delta[a] = s1[k, a] / nk[k]
            new_means[k, a] = means[k, a] + delta[a]
        if ctype == 3:  # tied: the shared covariance below
            continue
        for a in range(D):
            for b in range(D):
                c[a, b] = 0.5 * (s2[k, a, b] + s2[k, b, a]) / nk[k] - delta[a] * delta[b]
        if ctype == 0:
            lo = np.linalg.eigvalsh(c)[0]
        elif ctype == 1:
            lo = np.inf
            for a in range(D):
                lo = min(lo, c[a, a])
            for a in range(D):
                for b in range(D):
                    if a != b:
                        c[a, b] = 0.0
        else:
            lo = 0.0
            for a in range(D):
                lo += c[a, a]
            lo /= D
            for a in range(D):
                for b in range(D):
                    c[a, b] = lo if a == b else 0.0
        if lo + reg <= 0.0:  # not positive definite even with reg: keep the old one
            _set(new_covs, k, covs[k])
            raw_min[k] = -np.inf
            continue
        for a in range(D):
            c[a, a] += reg
        _set(new_covs, k, c)
        raw_min[k] = lo
    if ctype == 3:
        _tie(covs, nk, s1, s2, W, reg, new_covs, raw_min)
    weights = np.empty(K)
    for k in range(K):
        weights[k] = max(nk[k], eps * W) / W
    weights /= weights.sum()
    return weights, new_means, new_covs, raw_min


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


# --------------------------------------------------------------------------- screening


@njit(**_OPTS)
def _chol_inverse(covs, linv, half_logdet, L):
    """Inverse Cholesky factors and half log-determinants of ``covs`` (K, D, D).

    Returns False if one is not positive definite.
    """
    K, D = covs.shape[0], covs.shape[1]
    for k in range(K):
        if not _chol(covs[k], L):
            return False
        hl = 0.0
        for c in range(D):
            hl += math.log(L[c, c])
            for a in range(D):
                linv[k, a, c] = 0.0
            linv[k, c, c] = 1.0 / L[c, c]
            for a in range(c + 1, D):  # forward substitution, column c of L^-1
                s = 0.0
                for p in range(c, a):
                    s += L[a, p] * linv[k, p, c]
                linv[k, a, c] = -s / L[a, a]
        half_logdet[k] = hl
    return True


@njit(**_OPTS)
def step_serial(Xt, Sp, w, W, logpi, means, covs, reg, ctype, eps):
    """One whole EM iteration, serially: the pass over every point and the M-step.

    The E-step of :func:`xd_full` (``Sp`` the packed error covariances) or
    :func:`em_full` (``Sp`` None; the covariances' inverse Cholesky factors computed
    here) over all points in one chunk, then :func:`mstep_md`: the body of
    :func:`screen_runs`' loop. ``Sp is None`` is decided when numba types the call, so a
    fit without errors never compiles the XD pass (a third of a cold first fit's wait).

    Returns
    -------
    loglik : float
        -inf when some covariance (plus error) is not positive definite; the parameters
        returned are then the given ones, unchanged.
    weights, means, covs, raw_min
        The M-step's, as :func:`mstep_md` returns them.
    """
    K, D = means.shape
    n = Xt.shape[1]
    nk = np.empty(K)
    s1 = np.empty((K, D))
    s2 = np.empty((K, D, D))
    ll = -np.inf
    if Sp is not None:
        ll, ok = _xd_chunk(Xt, Sp, w, logpi, means, covs, 0, n, nk, s1, s2)
    else:
        linv = np.zeros((K, D, D))
        hld = np.empty(K)
        ok = _chol_inverse(covs, linv, hld, np.zeros((D, D)))
        if ok:
            const = np.empty(K)
            for k in range(K):
                const[k] = logpi[k] - 0.5 * D * _LOG2PI - hld[k]
            ll = _em_full_chunk(Xt, w, means, linv, const, 0, n, nk, s1, s2)
            for k in range(K):  # the chunk fills the lower triangle
                for a in range(D):
                    for b in range(a):
                        s2[k, b, a] = s2[k, a, b]
    if not ok or not np.isfinite(ll):
        return -np.inf, np.exp(logpi), means.copy(), covs.copy(), np.full(K, -np.inf)
    weights, new_means, new_covs, raw_min = mstep_md(means, covs, nk, s1, s2, W, reg,
                                                     ctype, eps)
    return ll, weights, new_means, new_covs, raw_min


@njit(**_OPTS)
def screen_runs(Xt, Sp, w, means0, covs0, n_iter, tol, reg, ctype, eps, collapse,
                can_collapse):
    """Short EM runs from many starts in one compiled call (the screening of random starts).

    Every start r has equal weights, means ``means0[r]`` (R, K, D) and covariances
    ``covs0`` (K, D, D). Each runs as :func:`bayesgmm.em.iteration.run` runs one, serially
    over all points (``Xt`` and ``Sp``, None without errors, as :func:`pack` lays them
    out), for at most ``n_iter`` iterations, stopping when the change of the
    log-likelihood is below ``tol`` times the total weight.

    Returns
    -------
    loglik : (R,)
        The last log-likelihood evaluated; -inf for a run that met a covariance that is
        not positive definite or an M-step below ``collapse`` (when ``can_collapse``).
    weights, means, covs : (R, K), (R, K, D), (R, K, D, D)
        The run's parameters: those scored by ``loglik`` when it converged, else the
        M-step from them (as ``run`` returns a run stopped by ``max_iter``).
    """
    R, K, D = means0.shape
    n = Xt.shape[1]
    W = 0.0
    for i in range(n):
        W += w[i]
    lls = np.full(R, -np.inf)
    out_w = np.empty((R, K))
    out_m = np.empty((R, K, D))
    out_c = np.empty((R, K, D, D))
    logpi = np.empty(K)
    for r in range(R):
        weights = np.full(K, 1.0 / K)
        means = means0[r].copy()
        covs = covs0.copy()
        prev = -np.inf
        ll = -np.inf
        for it in range(n_iter):
            for k in range(K):
                logpi[k] = math.log(weights[k])
            ll, nw, nm, nc, raw_min = step_serial(Xt, Sp, w, W, logpi, means, covs,
                                                  reg, ctype, eps)
            if not np.isfinite(ll):
                break
            if it > 0 and abs(ll - prev) < tol * W:
                break  # converged: the parameters scored by ll are kept
            if can_collapse and raw_min.min() < collapse:
                ll = -np.inf
                break
            weights, means, covs = nw, nm, nc
            prev = ll
        lls[r] = ll
        for k in range(K):  # loops, not slice assignments: see _set
            out_w[r, k] = weights[k]
            for a in range(D):
                out_m[r, k, a] = means[k, a]
            _set(out_c[r], k, covs[k])
    return lls, out_w, out_m, out_c


# --------------------------------------------------------------------------- missing values


@njit(**_OPTS)
def xd_missing(X, S, has_err, obs, nobs, w, logpi, mu, V):
    """The E-step's sums over points with missing features, point by point.

    XD with a projection, for the points of patterns too rare to fill
    :func:`_xd_chunk`'s blocks (:class:`bayesgmm.em.missing.Missing` sends the others
    there, pattern by pattern). Point i has its features ``obs[i, :nobs[i]]`` observed
    (``X`` (m, D) holds NaN elsewhere); under component k its observed values are
    N(mu_k[o], T), T = V_k[o, o] + S_i[o, o]. With alpha = T^-1 (x_o - mu_k[o]), and
    alpha and T^-1 set into D-vectors and (D, D) matrices with zeros at the missing
    features (alpha~, T~), b - mu_k = V_k alpha~ and B = V_k - V_k T~ V_k, so the sums
    take the form of :func:`xd_full`'s: s1 = V_k sum r alpha~ and
    s2 = V_k (sum r (alpha~ alpha~^T - T~)) V_k + N_k V_k.

    Returns
    -------
    loglik, nk (K,), A1 (K, D), A2 (K, D, D), ok
        The log-likelihood, N_k, sum r alpha~ and sum r (alpha~ alpha~^T - T~) (the sums
        before V_k); with ``ok`` False (some T not positive definite) the log-likelihood
        is -inf and the sums are zero.
    """
    m, D = X.shape
    K = mu.shape[0]
    T = np.empty((D, D))
    L = np.zeros((D, D))
    diff = np.empty(D)
    alpha = np.empty((K, D))
    e = np.empty(D)
    col = np.empty(D)
    Tinv = np.empty((K, D, D))
    lp = np.empty(K)
    a_nk = np.zeros(K)
    A1 = np.zeros((K, D))
    A2 = np.zeros((K, D, D))
    ll = 0.0
    for i in range(m):
        q = nobs[i]
        mx = -np.inf
        for k in range(K):
            for a in range(q):
                ia = obs[i, a]
                for b in range(q):
                    ib = obs[i, b]
                    T[a, b] = V[k, ia, ib] + (S[i, ia, ib] if has_err else 0.0)
            Tq = T[:q, :q]
            Lq = L[:q, :q]
            if not _chol(Tq, Lq):
                s1 = np.zeros((K, D))
                s2 = np.zeros((K, D, D))
                return -np.inf, np.zeros(K), s1, s2, False
            hl = 0.0
            for a in range(q):
                diff[a] = X[i, obs[i, a]] - mu[k, obs[i, a]]
                hl += math.log(Lq[a, a])
            _chol_solve(Lq, diff[:q], alpha[k, :q])
            quad = 0.0
            for a in range(q):
                quad += diff[a] * alpha[k, a]
            for c in range(q):  # T^-1, column by column
                for a in range(q):
                    e[a] = 1.0 if a == c else 0.0
                _chol_solve(Lq, e[:q], col[:q])
                for a in range(q):
                    Tinv[k, a, c] = col[a]
            lp[k] = logpi[k] - 0.5 * q * _LOG2PI - hl - 0.5 * quad
            mx = max(mx, lp[k])
        tot = 0.0
        for k in range(K):
            tot += math.exp(lp[k] - mx)
        norm = mx + math.log(tot)
        ll += w[i] * norm
        for k in range(K):
            r = w[i] * math.exp(lp[k] - norm)
            a_nk[k] += r
            for a in range(q):
                ia = obs[i, a]
                A1[k, ia] += r * alpha[k, a]
                for b in range(q):
                    A2[k, ia, obs[i, b]] += r * (alpha[k, a] * alpha[k, b] - Tinv[k, a, b])
    return ll, a_nk, A1, A2, True
