"""Compiled E/M-step loops: the only place performance tricks live.

Every fitting kernel makes one pass over the points, fusing the E-step (log
densities, log-sum-exp, responsibilities) with the accumulation of the M-step's
sufficient statistics, so no (n_samples, n_components) array is ever materialised.
The 1-D loops are here; the multi-D ones in :mod:`bayesgmm.em.kernels_md`; ``kernel``
hands out either. Points are split into chunks processed in parallel, each writing its
own partial sums, which the caller adds up: the multi-D passes by numba's ``prange``
(compiled serial or parallel), the 1-D ones by :func:`run_chunks`' threads over one
``nogil`` chunk kernel (a parallel twin would cost a cold first fit seconds of
compilation). Statistics are accumulated about the
current means (``x - mu_old``), which keeps the one-pass variance free of cancellation.

Conventions (inputs are clean, C-contiguous float64, already standardized):

- ``x`` (n,) or ``X`` (n, D): data; ``w`` (n,): sample weights.
- ``logpi`` (K,): log weights; ``mu`` (K,) or (K, D): means.
- ``var`` (K,): variances (1-D); ``linv`` (K, D, D): inverse Cholesky factors of the
  covariances and ``half_logdet`` (K,): the sums of the logs of their diagonals.
- ``e2`` (n,): squared errors (1-D); ``S`` (n, D, D): error covariances (multi-D).
"""

from __future__ import annotations

import math
import types

import numba
import numpy as np
from numba import njit

from .._numerics.fastmath import _log
from .._numerics.threads import run_chunks
from .kernels_md import (  # noqa: F401  (used through this module)
    _block_lse,
    deconvolve_full,
    eigen_below,
    em_full,
    logprob_full,
    mstep_md,
    pack,
    xd_full,
)

_LOG2PI = math.log(2.0 * math.pi)
_OPTS = {"cache": True, "nogil": True}


_SERIAL_BELOW = 20_000


def n_chunks_for(n: int, work: float = 1.0) -> int:
    """Number of chunks worth using for ``n`` points (1: run serially).

    ``work`` is the cost of a point relative to a point of the 1-D kernels: the
    multi-D XD kernel's is some K D^2 / 2 times as much, so a few thousand points
    already repay starting threads.
    """
    if n * work < _SERIAL_BELOW:
        return 1
    # a chunk of at least half the serial threshold's work, at least one per thread
    # and up to four (so that a thread slowed by other jobs can be made up for)
    threads = max(1, numba.get_num_threads())
    return int(min(4 * threads, max(threads, n * work // (_SERIAL_BELOW // 2))))


# --------------------------------------------------------------------------- 1-D


# Blocked loops over _B points: every inner loop runs over points with no library call,
# so LLVM vectorizes it. exp and log are evaluated by the polynomials of
# bayesgmm._numerics.fastmath (within ~1 ulp) because math.exp/math.log are scalar libm
# calls that block vectorization; error_model="numpy" drops the zero-division checks
# that block it too, and "reassoc" lets the per-block sums be vectorized (they change
# only in the last bits).
_FAST = {**_OPTS, "error_model": "numpy", "fastmath": {"reassoc", "contract"}}
_B = 256


@njit(**_FAST)
def _em_1d_chunk(x, w, mu, const, inv, lo, hi, out, loc, isc):
    # the points are standardized as they are read, z = (x - loc) * isc: a Dask block
    # arrives in data units and is never copied; in memory loc = 0, isc = 1, exactly x
    K = mu.shape[0]
    lp = np.empty((K, _B))
    mx = np.empty(_B)
    f = np.empty(_B)
    buf = np.empty(_B)
    raw = loc == 0.0 and isc == 1.0  # in memory: read x in place (a copy slows the pass)
    acc = np.zeros((3, K))  # chunk-local sums, copied to ``out`` at the end
    ll = 0.0
    for b0 in range(lo, hi, _B):
        nb = min(_B, hi - b0)
        if raw:
            xb = x[b0:b0 + nb]
        else:
            for j in range(nb):
                buf[j] = (x[b0 + j] - loc) * isc
            xb = buf[:nb]
        wb = w[b0:b0 + nb]
        for j in range(nb):
            mx[j] = -np.inf
        for k in range(K):
            mk, ck, hk = mu[k], const[k], 0.5 * inv[k]
            for j in range(nb):
                d = xb[j] - mk
                v = ck - d * d * hk
                lp[k, j] = v
                mx[j] = max(mx[j], v)
        ll += _block_lse(lp, mx, f, wb, K, nb)
        for k in range(K):
            mk = mu[k]
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            for j in range(nb):
                r = lp[k, j] * f[j]
                d = xb[j] - mk
                rd = r * d
                t0 += r
                t1 += rd
                t2 += rd * d
            acc[0, k] += t0
            acc[1, k] += t1
            acc[2, k] += t2
    for a in range(acc.shape[0]):  # a loop, not out[:] = acc: see kernels_md._set
        for k in range(K):
            out[a, k] = acc[a, k]
    return ll


def em_1d(x, w, logpi, mu, var, n_chunks, loc, isc):
    """One fused E-step + M-step statistics pass for 1-D data without errors.

    The pass sees the points as (x - loc) * isc (0 and 1: as they are). Its ``n_chunks``
    chunks run on :func:`run_chunks`' threads.

    Returns
    -------
    loglik : float
        sum_i w_i log p(x_i) at the given parameters.
    stats : (n_chunks, 3, K)
        Per chunk: N_k, sum r w (x - mu_k), sum r w (x - mu_k)^2.
    """
    K = mu.shape[0]
    stats = np.zeros((n_chunks, 3, K))
    const = logpi - 0.5 * (_LOG2PI + np.log(var))
    inv = 1.0 / var
    lls = run_chunks(_em_1d_chunk, x.shape[0], n_chunks,
                     lambda lo, hi, c: (x, w, mu, const, inv, lo, hi, stats[c], loc, isc))
    return sum(lls), stats


@njit(**_FAST)
def _xd_1d_chunk(x, e2, w, logpi, mu, var, lo, hi, out, loc, isc, sd):
    # as _em_1d_chunk: z = (x - loc) * isc and e2 * isc^2 as they are read; sd: e2 holds
    # standard deviations, squared as read (a Dask block's, not copied)
    K = mu.shape[0]
    lp = np.empty((K, _B))
    it = np.empty((K, _B))
    mx = np.empty(_B)
    f = np.empty(_B)
    xbuf = np.empty(_B)
    ebuf = np.empty(_B)
    raw = loc == 0.0 and isc == 1.0 and not sd  # in memory: read in place
    acc = np.zeros((4, K))  # chunk-local sums, copied to ``out`` at the end
    c0 = -0.5 * _LOG2PI
    isc2 = isc * isc
    ll = 0.0
    for b0 in range(lo, hi, _B):
        nb = min(_B, hi - b0)
        if raw:
            xb = x[b0:b0 + nb]
            eb = e2[b0:b0 + nb]
        else:
            for j in range(nb):
                xbuf[j] = (x[b0 + j] - loc) * isc
            if sd:
                for j in range(nb):
                    e = e2[b0 + j] * isc
                    ebuf[j] = e * e
            else:
                for j in range(nb):
                    ebuf[j] = e2[b0 + j] * isc2
            xb = xbuf[:nb]
            eb = ebuf[:nb]
        wb = w[b0:b0 + nb]
        for j in range(nb):
            mx[j] = -np.inf
        for k in range(K):
            mk, vk, ck = mu[k], var[k], logpi[k] + c0
            for j in range(nb):
                t = vk + eb[j]
                ti = 1.0 / t
                d = xb[j] - mk
                v = ck - 0.5 * (_log(t) + d * d * ti)
                it[k, j] = ti
                lp[k, j] = v
                mx[j] = max(mx[j], v)
        ll += _block_lse(lp, mx, f, wb, K, nb)
        for k in range(K):
            mk, vk = mu[k], var[k]
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            for j in range(nb):
                r = lp[k, j] * f[j]
                g = vk * it[k, j]
                db = g * (xb[j] - mk)
                rdb = r * db
                t0 += r
                t1 += rdb
                t2 += rdb * db
                t3 += r * g
            acc[0, k] += t0
            acc[1, k] += t1
            acc[2, k] += t2
            acc[3, k] += vk * (t0 - t3)  # sum r (var - g var) = var (sum r - sum r g)
    for a in range(acc.shape[0]):  # a loop, not out[:] = acc: see kernels_md._set
        for k in range(K):
            out[a, k] = acc[a, k]
    return ll


def xd_1d(x, e2, w, logpi, mu, var, n_chunks, loc, isc, sd):
    """Fused extreme-deconvolution pass for 1-D data with per-point variances ``e2``.

    The pass sees the points as (x - loc) * isc and their variances as e2 * isc^2 (with
    ``sd``, ``e2`` holds standard deviations: (e2 * isc)^2). Its ``n_chunks`` chunks run
    on :func:`run_chunks`' threads.

    Component density of point i: N(x_i | mu_k, var_k + e2_i). The latent true
    value has posterior mean b_ik = mu_k + var_k / T_ik (x_i - mu_k) and variance
    B_ik = var_k - var_k^2 / T_ik, with T_ik = var_k + e2_i.

    Returns
    -------
    loglik : float
    stats : (n_chunks, 4, K)
        Per chunk: N_k, sum r w (b - mu_k), sum r w (b - mu_k)^2, sum r w B.
    """
    K = mu.shape[0]
    stats = np.zeros((n_chunks, 4, K))
    lls = run_chunks(_xd_1d_chunk, x.shape[0], n_chunks,
                     lambda lo, hi, c: (x, e2, w, logpi, mu, var, lo, hi, stats[c], loc, isc,
                                        sd))
    return sum(lls), stats


@njit(**_OPTS)
def _logprob_1d_range(x, e2, logpi, mu, var, lo, hi, out):
    K = mu.shape[0]
    c0 = -0.5 * _LOG2PI
    for i in range(lo, hi):
        for k in range(K):
            t = var[k] + e2[i]
            d = x[i] - mu[k]
            out[i, k] = logpi[k] + c0 - 0.5 * (math.log(t) + d * d / t)
    return 0.0


def logprob_1d(x, e2, logpi, mu, var, n_chunks=1):
    """Weighted component log densities log(pi_k N(x_i | mu_k, var_k + e2_i)), (n, K)."""
    out = np.empty((x.shape[0], mu.shape[0]))
    run_chunks(_logprob_1d_range, x.shape[0], n_chunks,
               lambda lo, hi, c: (x, e2, logpi, mu, var, lo, hi, out))
    return out


@njit(**_OPTS)
def mstep_1d(mu, var, nk, s1, s2, W, reg, tied, eps):
    """The M-step for one feature from a pass's sums, on (K,) arrays.

    ``s1``, ``s2``: sum r w (x - mu_k) and sum r w (x - mu_k)^2 (plus, with errors, the
    sum of r w B). ``tied`` pools the components' variances. Returns the new weights,
    means and variances (``reg`` added) and ``raw_min``, the variance before ``reg``,
    with :meth:`bayesgmm.em.iteration.Stepper.step`'s sentinels: +inf for a component
    with almost no weight (it keeps its mean and variance), -inf for one whose new
    variance is not positive (it keeps its variance).
    """
    K = mu.shape[0]
    live = np.empty(K, dtype=np.bool_)
    raw = np.empty(K)
    new_mu = np.empty(K)
    new_var = np.empty(K)
    raw_min = np.empty(K)
    kept = var.copy()  # what a component keeps when its new variance is not positive
    for k in range(K):
        live[k] = nk[k] > 1e-10 * W
        nks = nk[k] if live[k] else 1.0
        delta = s1[k] / nks
        raw[k] = s2[k] / nks - delta * delta
        new_mu[k] = mu[k] + delta if live[k] else mu[k]
    if tied:  # one variance: the components' scatter pooled
        num = 0.0
        den = 0.0
        for k in range(K):
            if live[k]:
                num += nk[k] * raw[k]
                den += nk[k]
        for k in range(K):
            raw[k] = num / den
            if not live[k]:
                kept[k] = raw[k] + reg
    for k in range(K):
        new_var[k] = raw[k] + reg if live[k] else kept[k]
        raw_min[k] = raw[k] if live[k] else np.inf
        if new_var[k] <= 0.0:
            new_var[k] = kept[k]
            raw_min[k] = -np.inf
    weights = np.empty(K)
    total = 0.0
    for k in range(K):
        weights[k] = max(nk[k], eps * W) / W
        total += weights[k]
    for k in range(K):
        weights[k] /= total
    return weights, new_mu, new_var, raw_min


@njit(**_OPTS)
def screen_runs_1d(x, e2, w, means0, var0, n_iter, tol, reg, tied, eps, collapse,
                   can_collapse):
    """:func:`~bayesgmm.em.kernels_md.screen_runs` for one feature.

    The short EM runs from many starts (means ``means0`` (R, K), variances ``var0``
    (K,), equal weights) serially over all points, each iteration :func:`em_1d`'s pass
    (or :func:`xd_1d`'s with per-point variances ``e2``; None without errors, decided
    when numba types the call) and :func:`mstep_1d`: the kernels a 1-D fit compiles
    anyway, so its cold first call compiles no multi-D code. The loop is written out
    again rather than shared with ``screen_runs``: a compiled function that takes the
    step as an argument is not cached by numba (its type includes the step's identity).

    Returns
    -------
    loglik, weights, means, variances : (R,), (R, K), (R, K), (R, K)
        As :func:`~bayesgmm.em.kernels_md.screen_runs` returns them.
    """
    R, K = means0.shape
    n = x.shape[0]
    # the chunk kernels' arguments typed as the passes' calls from Python type them (a
    # constant 0 or False would be typed as a literal: a second compilation of each)
    lo, no = n - n, n < 0
    W = 0.0
    for i in range(n):
        W += w[i]
    lls = np.full(R, -np.inf)
    out_w = np.empty((R, K))
    out_m = np.empty((R, K))
    out_v = np.empty((R, K))
    logpi = np.empty(K)
    const = np.empty(K)
    inv = np.empty(K)
    for r in range(R):
        weights = np.full(K, 1.0 / K)
        means = means0[r].copy()
        var = var0.copy()
        prev = -np.inf
        ll = -np.inf
        for it in range(n_iter):
            for k in range(K):
                logpi[k] = math.log(weights[k])
            if e2 is None:
                st = np.empty((3, K))
                for k in range(K):  # as em_1d
                    const[k] = logpi[k] - 0.5 * (_LOG2PI + math.log(var[k]))
                    inv[k] = 1.0 / var[k]
                ll = _em_1d_chunk(x, w, means, const, inv, lo, n, st, 0.0, 1.0)
                s2 = st[2].copy()
            else:
                st = np.empty((4, K))
                ll = _xd_1d_chunk(x, e2, w, logpi, means, var, lo, n, st, 0.0, 1.0, no)
                s2 = np.empty(K)
                for k in range(K):
                    s2[k] = st[2, k] + st[3, k]
            if not np.isfinite(ll):
                break
            if it > 0 and abs(ll - prev) < tol * W:
                break  # converged: the parameters scored by ll are kept
            nw, nm, nv, raw_min = mstep_1d(means, var, st[0], st[1], s2, W, reg, tied, eps)
            low = np.inf  # raw_min.min(), written out (one numpy overload less to compile)
            for k in range(K):
                low = min(low, raw_min[k])
            if can_collapse and low < collapse:
                ll = -np.inf
                break
            weights, means, var = nw, nm, nv
            prev = ll
        lls[r] = ll
        for k in range(K):
            out_w[r, k] = weights[k]
            out_m[r, k] = means[k]
            out_v[r, k] = var[k]
    return lls, out_w, out_m, out_v


def screen_runs_1d_py(x, e2, w, means0, var0, n_iter, tol, reg, tied, eps, collapse,
                      can_collapse):
    """:func:`screen_runs_1d`'s runs driven from Python: the same passes and M-step.

    For the screen's full subsample (:data:`bayesgmm.em.search.SCREEN_N` points): there a
    Python round trip per iteration (tens of microseconds) is small beside the pass, and a
    cold first fit of large data then compiles no screening loop (issue 16's first call).
    On fewer points, with more starts, :func:`screen_runs_1d` runs them in one call.
    Same arguments and returns.
    """
    R, K = means0.shape
    W = float(w.sum())
    lls = np.full(R, -np.inf)
    out_w, out_m, out_v = np.empty((R, K)), np.empty((R, K)), np.empty((R, K))
    for r in range(R):
        weights, means, var = np.full(K, 1.0 / K), means0[r].copy(), var0.copy()
        prev = ll = -np.inf
        for it in range(n_iter):
            logpi = np.log(weights)
            if e2 is None:
                ll, st = em_1d(x, w, logpi, means, var, 1, 0.0, 1.0)
                st = st[0]
                s2 = st[2]
            else:
                ll, st = xd_1d(x, e2, w, logpi, means, var, 1, 0.0, 1.0, False)
                st = st[0]
                s2 = st[2] + st[3]
            if not np.isfinite(ll):
                break
            if it > 0 and abs(ll - prev) < tol * W:
                break  # converged: the parameters scored by ll are kept
            nw, nm, nv, raw_min = mstep_1d(means, var, st[0], st[1], s2, W, reg, tied, eps)
            if can_collapse and raw_min.min() < collapse:
                ll = -np.inf
                break
            weights, means, var = nw, nm, nv
            prev = ll
        lls[r] = ll
        out_w[r], out_m[r], out_v[r] = weights, means, var
    return lls, out_w, out_m, out_v


# a serial one (``prange`` runs as ``range``) for small n, where starting threads costs
# more than the loop and a busy machine makes a parallel region wait for a free core.
# Numba's on-disk cache keys a function by its qualified name and bytecode, not by the
# ``parallel`` flag: two dispatchers over one function would share (and overwrite) one
# cache entry, so whichever compiled first is loaded for both. The serial twin is
# therefore a copy of the function under its own name.
def _renamed(f, suffix):
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + suffix, f.__defaults__,
                           f.__closure__)
    g.__qualname__ = f.__qualname__ + suffix
    g.__module__ = f.__module__
    g.__doc__ = f.__doc__
    return g


_PAR = {}
_SER = {}
for _f in (em_full, xd_full, logprob_full, deconvolve_full):
    _name = _f.__name__
    _PAR[_name] = njit(parallel=True, **_OPTS)(_f)
    _SER[_name] = njit(**_OPTS)(_renamed(_f, "_serial"))


def kernel(name: str, n: int, work: float = 1.0):
    """The compiled kernel ``name``, parallel or serial depending on ``n * work``.

    ``work`` as in :func:`n_chunks_for`, which gives the number of chunks to pass.
    """
    if name in _THREADED:
        return _THREADED[name]
    return (_SER if n * work < _SERIAL_BELOW else _PAR)[name]


# the 1-D passes take their chunks to threads themselves (see run_chunks)
_THREADED = {"em_1d": em_1d, "xd_1d": xd_1d}
