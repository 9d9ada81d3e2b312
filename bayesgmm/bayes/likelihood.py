"""Fused numba kernels for the 1-D mixture log-likelihood with per-point errors.

Pure numba (no PyTensor): used by the PyTensor Ops in :mod:`bayesgmm.bayes.logp_op` and by
the sampler's log-density in :mod:`bayesgmm.bayes.reparam.pymc_space`. One blocked pass over the
points gives sum_i log p(x_i) and its gradient with respect to the weights, means and
widths; nothing of size (n, K) is stored. Tested in ``tests/test_logp_op.py``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit

from .._numerics.fastmath import (
    _LN2_HI,
    _LN2_LO,
    _MANTISSA,
    _ONE_BITS,
    _as_f64,
    _as_i64,
    _exp,
    _log,
)
from .._numerics.numba_cache import package_stamp
from .._numerics.threads import run_chunks

_HALF_LOG2PI = 0.5 * math.log(2.0 * math.pi)
# error_model="numpy": no zero-division checks, so the loops vectorise. "contract" lets
# LLVM fuse a * b + c into FMAs (more accurate, not less); no reassociation, so results
# do not depend on vector width.
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}
# Salt for PyTensor's numba cache key: the package's numba stamp, which changes whenever
# this file, the exp/log it inlines or any other numba module of bayesgmm changes.
_CACHE_VERSION = int(package_stamp()[:12], 16)

# --------------------------------------------------------------------------- kernels
#
# Point i, component k: v = sigma_k**2 + e2_i, rs = v**-1/2, d = x_i - mu_k,
# z2 = d**2 / v, a = log w_k - z2 / 2. The terms rs exp(a) are scaled by exp(-M),
# M = max_k a, so the sum S lies in [min_k rs, K max_k rs]: nothing under- or
# overflows. log p(x_i) = log S + M - log(2 pi) / 2 and, with r_k = term_k / S,
# d/dmu_k = r_k d / v, d/dsigma_k = r_k sigma_k (z2 - 1) / v, d/dw_k = r_k / w_k.
# Points go in blocks of B; each phase loops over a block for one component at a
# time, which LLVM vectorises. Per-component sums are kept per lane (RA, MA, SA of
# shape (K, B)) and reduced at the end, so no reassociation is needed.
# ``e2`` has length n, or length 1 for one variance shared by all points ("hom").


@njit(**_OPTS)
def _block(x, e2, logw, mu, s2, T, RS, DI, Q, M, S):
    """Terms for a block of points; returns the block length.

    Fills T = rs exp(a - M) (so r = T / S), S = sum_k T, M, RS = rs, DI = d / v and
    Q = (z2 - 1) / v. ``x`` and ``e2`` are slices, so every index is a non-negative
    ``range`` variable: an offset index makes numba emit wraparound code, which
    defeats vectorisation.
    """
    K = mu.shape[0]
    nb = x.shape[0]
    hom = e2.shape[0] == 1
    for j in range(nb):
        M[j] = -np.inf
        S[j] = 0.0
    for k in range(K):
        Tk, RSk, DIk, Qk = T[k], RS[k], DI[k], Q[k]
        if hom:
            rsk = 1.0 / math.sqrt(s2[k] + e2[0])
            for j in range(nb):
                RSk[j] = rsk
        else:
            for j in range(nb):
                RSk[j] = 1.0 / math.sqrt(s2[k] + e2[j])
        for j in range(nb):
            iv = RSk[j] * RSk[j]
            d = x[j] - mu[k]
            dk = d * iv
            z = d * dk
            a = logw[k] - 0.5 * z
            DIk[j] = dk
            Qk[j] = (z - 1.0) * iv
            Tk[j] = a
            M[j] = max(M[j], a)
    for k in range(K):
        Tk, RSk = T[k], RS[k]
        for j in range(nb):
            t = RSk[j] * _exp(Tk[j] - M[j])
            Tk[j] = t
            S[j] += t
    return nb


@njit(**_OPTS)
def _setup(x, e2, w, mu, sigma):
    """Check shapes; return the block size, log w, sigma**2 and scratch arrays."""
    K = mu.shape[0]
    if w.shape[0] != K or sigma.shape[0] != K:
        raise ValueError("w, mu and sigma must have the same length")
    if e2.shape[0] != x.shape[0] and e2.shape[0] != 1:
        raise ValueError("e2 must have length 1 or the length of x")
    B = 256 if K <= 3 else (128 if K <= 6 else 64)  # keeps the (K, B) scratch in L1/L2
    B = min(B, max(8, (x.shape[0] + 7) // 8 * 8))  # few points: no larger than needed
    KB = (np.empty((K, B)), np.empty((K, B)), np.empty((K, B)), np.empty((K, B)))
    return B, np.log(w), sigma * sigma, KB, np.empty(B), np.empty(B)


@njit(**_OPTS)
def _slices(x, e2, b0, B):
    """The block of x starting at b0 and the matching e2 (all of it when shared)."""
    nb = min(B, x.shape[0] - b0)
    return x[b0 : b0 + nb], e2 if e2.shape[0] == 1 else e2[b0 : b0 + nb]


@njit(**_OPTS)
def _fused(x, e2, w, mu, sigma, g):
    """(sum_i g_i log p(x_i), d/dw, d/dmu, d/dsigma); an empty ``g`` means all ones.

    Unweighted, the log is not taken per point: each lane keeps a running product of
    S, renormalised to [1, 2) by moving its binary exponent into an integer sum, and
    takes one log at the end (S is in [min rs, K max rs], so this is exact up to
    rounding; any non-finite S falls back to the per-point logs).
    """
    n = x.shape[0]
    K = mu.shape[0]
    B, logw, s2, (T, RS, DI, Q), M, S = _setup(x, e2, w, mu, sigma)
    weighted = g.shape[0] > 0
    if weighted and g.shape[0] != n:
        raise ValueError("the cotangent must have the length of x")
    RA, MA, SA = np.zeros((K, B)), np.zeros((K, B)), np.zeros((K, B))
    tot, prod, expo = np.zeros(B), np.ones(B), np.zeros(B, dtype=np.int64)
    bad = False
    for b0 in range(0, n, B):
        nb = _block(*_slices(x, e2, b0, B), logw, mu, s2, T, RS, DI, Q, M, S)
        if weighted:
            gb = g[b0 : b0 + nb]
            for j in range(nb):
                tot[j] += gb[j] * (_log(S[j]) + M[j])
                S[j] = gb[j] / S[j]
        else:
            for j in range(nb):
                s = S[j]
                bad |= not (s > 0.0 and s < np.inf)
                bits = _as_i64(prod[j] * s)
                expo[j] += (bits >> 52) - 1023
                prod[j] = _as_f64((bits & _MANTISSA) | _ONE_BITS)
                tot[j] += M[j]
                S[j] = 1.0 / s
        for k in range(K):
            Tk, DIk, Qk, RAk, MAk, SAk = T[k], DI[k], Q[k], RA[k], MA[k], SA[k]
            for j in range(nb):
                r = Tk[j] * S[j]
                RAk[j] += r
                MAk[j] += r * DIk[j]
                SAk[j] += r * Qk[j]
    if weighted:
        total = tot.sum() - _HALF_LOG2PI * g.sum()
    elif bad:
        total = _pointwise(x, e2, w, mu, sigma).sum()
    else:
        total = 0.0
        for j in range(B):
            total += tot[j] + (_log(prod[j]) + expo[j] * _LN2_HI + expo[j] * _LN2_LO)
        total -= _HALF_LOG2PI * n
    dw, dmu, dsigma = _row_sums(RA), _row_sums(MA), _row_sums(SA)
    for k in range(K):
        dw[k] = dw[k] / w[k] if w[k] > 0.0 else _dw_zero_weight(x, e2, w, mu, sigma, g, k)
        dsigma[k] *= sigma[k]
    return total, dw, dmu, dsigma


@njit(**_OPTS)
def _row_sums(A):
    """``A.sum(axis=1)``, added in the same order, as a loop.

    numba's axis sum compiles its bounds checks' error formatting: seconds of a cold
    first fit.
    """
    out = np.zeros(A.shape[0])
    for k in range(A.shape[0]):
        s = 0.0
        for j in range(A.shape[1]):
            s += A[k, j]
        out[k] = s
    return out


@njit(**_OPTS)
def _pointwise(x, e2, w, mu, sigma):
    """Vector of log p(x_i)."""
    n = x.shape[0]
    B, logw, s2, (T, RS, DI, Q), M, S = _setup(x, e2, w, mu, sigma)
    out = np.empty(n)
    for b0 in range(0, n, B):
        nb = _block(*_slices(x, e2, b0, B), logw, mu, s2, T, RS, DI, Q, M, S)
        ob = out[b0 : b0 + nb]
        for j in range(nb):
            ob[j] = _log(S[j]) + M[j] - _HALF_LOG2PI
    return out


@njit(**_OPTS)
def _dw_zero_weight(x, e2, w, mu, sigma, g, kz):
    """d/dw_kz when w_kz == 0 (r / w is 0 / 0): sum_i g_i N(x_i | kz) / p(x_i). Rare."""
    logp = _pointwise(x, e2, w, mu, sigma)
    acc = 0.0
    for i in range(x.shape[0]):
        v = sigma[kz] ** 2 + e2[i if e2.shape[0] > 1 else 0]
        d = x[i] - mu[kz]
        lk = -0.5 * (d * d / v + math.log(v)) - _HALF_LOG2PI
        acc += (g[i] if g.shape[0] > 0 else 1.0) * math.exp(lk - logp[i])
    return acc


# Entry points with the Ops' signatures (``e2`` may be 0-d; data made contiguous).


@njit(**_OPTS)
def _total_impl(x, e2, w, mu, sigma):
    x, e2 = np.ascontiguousarray(x), np.ascontiguousarray(np.atleast_1d(e2))
    total, dw, dmu, dsig = _fused(x, e2, w, mu, sigma, np.empty(0))
    return np.asarray(total), dw, dmu, dsig


@njit(**_OPTS)
def _vjp_impl(x, e2, w, mu, sigma, g):
    x, e2 = np.ascontiguousarray(x), np.ascontiguousarray(np.atleast_1d(e2))
    _, dw, dmu, dsig = _fused(x, e2, w, mu, sigma, np.ascontiguousarray(g))
    return dw, dmu, dsig


@njit(**_OPTS)
def _pointwise_impl(x, e2, w, mu, sigma):
    x, e2 = np.ascontiguousarray(x), np.ascontiguousarray(np.atleast_1d(e2))
    return _pointwise(x, e2, w, mu, sigma)


# --------------------------------------------------------------------------- Ops


@njit(**_OPTS)
def _pointwise_draws(z, eps2, w, mu, sigma, log_scale, out, lo, hi):
    """Rows ``lo:hi`` of :func:`pointwise_loglik`'s ``out`` (draws lo..hi-1)."""
    for s in range(lo, hi):
        row = _pointwise(z, eps2, w[s], mu[s], sigma[s])
        for i in range(row.shape[0]):  # a loop, not out[s] = ...: see _row_sums
            out[s, i] = row[i] - log_scale


def pointwise_loglik(z: np.ndarray, eps2: np.ndarray, w: np.ndarray, mu: np.ndarray,
                     sigma: np.ndarray, log_scale: float) -> np.ndarray:
    """Per-draw, per-point log-likelihood in data units, shape (S, n).

    ``w``, ``mu``, ``sigma``: (S, K) C-contiguous draws in standardized units. The
    draws are split over ``NUMBA_NUM_THREADS`` threads (:func:`run_chunks`; no parfor
    to compile on a cold first fit).
    """
    S = w.shape[0]
    out = np.empty((S, z.shape[0]))
    n_chunks = max(1, min(S, numba.config.NUMBA_NUM_THREADS))
    run_chunks(_pointwise_draws, S, n_chunks,
               lambda lo, hi, _c: (z, eps2, w, mu, sigma, float(log_scale), out, lo, hi))
    return out
