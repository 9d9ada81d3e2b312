"""The ratio of two evidences from the posterior probability of an empty component.

Nobile (2004, Ann. Statist. 32:2044, Prop. 3.1): for a mixture whose weights are
Dirichlet(delta, ..., delta) and whose components' priors are exchangeable and do not
depend on K (hyperparameters shared by the components, like Richardson & Green's beta,
included), the K-component model is the (K + 1)-component model with one component
empty. Integrating out the empty component and the weights gives

    p(x | K + 1) P(n_j = 0 | x, K + 1) = c_K p(x | K),
    c_K = Gamma((K + 1) delta) Gamma(K delta + n) / (Gamma(K delta) Gamma((K + 1) delta + n)),

where n_j is the number of points allocated to component j (any j: they are
exchangeable). So log p(x | K + 1) = log p(x | K) + log c_K - log P(n_j = 0 | x, K + 1):
an evidence from the one below it and a posterior probability, which needs posterior
draws and no normalising constant. The probability is largest exactly where the
evidence is hardest to compute directly (K well above what the data support, many
near-empty components, 20-35 coordinates: galaxy data, K >= 7).

The draws must visit the states with an empty component as often as the posterior
does. SMC's and NUTS's do not: they move in the marginalised coordinates, where a
component must shrink its weight and wander off the data to empty, and on the galaxy
data at K = 7 their draws give P = 0.056 where the posterior's is 0.084 (the
published p(K | data) and this Gibbs sampler agree). The sampler here carries the
allocations (data augmentation; Diebolt & Robert 1994, Richardson & Green's fixed-K
moves): an empty component is redrawn from its prior at every sweep, so emptiness comes
and goes freely. Its sweep: allocations given the parameters (the Rao-Blackwellised
P(n_j = 0 | theta, x) = prod_i (1 - r_ij) is recorded before they are drawn), weights
from their Dirichlet, each mean from its Normal full conditional (with per-point errors
too), each width by slice sampling in log sigma (any widths prior, any errors), and
Richardson & Green's beta from its Gamma full conditional.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .density_md import spiral_index

__all__ = ["EmptyProbability", "empty_probability", "empty_probability_md", "log_c"]

_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}
#: Gibbs sweeps per chain in a round (after a burn-in of BURN), at most
MAX_SWEEPS, BURN = 20_000, 1_000
#: rounds are added until the log's standard error is at most this, ...
LOG_SE_TARGET = 0.03
#: ... or this many rounds have run
MAX_ROUNDS = 8
#: fewer sweeps per round on large data: about this many point evaluations per chain
#: and round, a sweep costing n (K + 8) in 1-D (the allocations, then about 8 density
#: evaluations per slice step) and n (K + 8 (D + M)) D in D dims (M correlations);
#: about 3 s per chain and round here
SWEEP_BUDGET = 1e8
#: the estimate is used when the chains' R-hat is below this ...
RHAT_MAX = 1.01
#: ... and its relative Monte Carlo error (the log's se) below this
LOG_SE_MAX = 0.1


def log_c(K: int, n: int, delta: float) -> float:
    """Log c_K: the K model's prior mass on allocations, relative to K + 1's with one empty.

    ``delta``: the Dirichlet concentration of the weights (the same in both models).
    """
    return (math.lgamma((K + 1) * delta) + math.lgamma(K * delta + n)
            - math.lgamma(K * delta) - math.lgamma((K + 1) * delta + n))


@njit(**_OPTS)
def _log_sigma_conditional(s, z, e2, idx, m, mu, ss, a, b):
    """Log density of s = log sigma given the component's points, mean and prior."""
    sg2 = math.exp(2.0 * s)
    if a > 0.0:  # Richardson & Green: tau = sigma^-2 ~ Gamma(a, rate b), Jacobian 2 tau
        tau = 1.0 / sg2
        lp = a * math.log(tau) - b * tau
    else:  # HalfNormal(ss) on sigma, Jacobian sigma
        lp = s - 0.5 * sg2 / (ss * ss)
    one = e2.shape[0] == 1
    for t in range(m):
        i = idx[t]
        v = sg2 + (e2[0] if one else e2[i])
        d = z[i] - mu
        lp -= 0.5 * (math.log(v) + d * d / v)
    return lp


@njit(**_OPTS)
def _allocate(lf, top, log_empty, rng):
    """One point's allocation drawn from its log terms; the component's index.

    ``lf``: log w_k + log density (overwritten), ``top`` their maximum; log(1 - r_ik)
    is added to ``log_empty[k]``.
    """
    K = lf.shape[0]
    tot = 0.0
    for k in range(K):
        lf[k] = math.exp(lf[k] - top)
        tot += lf[k]
    for k in range(K):
        rest = max(tot - lf[k], 0.0)
        log_empty[k] += math.log(rest / tot) if rest > 0.0 else -np.inf
    u = rng.random() * tot
    c = 0.0
    for k in range(K):
        c += lf[k]
        if u < c:
            return k
    return K - 1


@njit(**_OPTS)
def _gibbs(z, e2, alpha, m0, s0, ss, a, g, h, w, mu, s, beta, n_sweeps, rng, out, trace,
           thin):
    """``n_sweeps`` Gibbs sweeps from (w, mu, s = log sigma, beta), updated in place.

    ``out[t]``: sweep t's P(n_j = 0 | theta, x), averaged over the components. ``a > 0``
    selects Richardson & Green's widths prior (``g``, ``h``: beta's shape and rate),
    else HalfNormal(``ss``). ``rng``: a numpy Generator (numba draws from it as numpy
    does). Every ``thin``-th state (w, mu, log sigma) goes into the rows of ``trace``
    (K * 3 columns) while there are rows. Returns the final beta.
    """
    n, K = z.shape[0], w.shape[0]
    one = e2.shape[0] == 1
    lf = np.empty(K)
    log_empty = np.empty(K)
    counts = np.empty(K, np.int64)
    alloc = np.empty(n, np.int64)
    idx = np.empty(n, np.int64)
    start = np.empty(K + 1, np.int64)
    fill = np.empty(K, np.int64)
    for t in range(n_sweeps):
        # allocations, and the Rao-Blackwellised probability of each component's emptiness
        for j in range(K):
            log_empty[j] = 0.0
            counts[j] = 0
        for i in range(n):
            top = -np.inf
            for j in range(K):
                v = math.exp(2.0 * s[j]) + (e2[0] if one else e2[i])
                d = z[i] - mu[j]
                lf[j] = math.log(w[j]) - 0.5 * (math.log(v) + d * d / v)
                top = max(top, lf[j])
            k = _allocate(lf, top, log_empty, rng)
            alloc[i] = k
            counts[k] += 1
        acc = 0.0
        for j in range(K):
            acc += math.exp(log_empty[j])
        out[t] = acc / K
        # the points of each component, contiguous (a counting sort)
        start[0] = 0
        for j in range(K):
            start[j + 1] = start[j] + counts[j]
            fill[j] = start[j]
        for i in range(n):
            idx[fill[alloc[i]]] = i
            fill[alloc[i]] += 1
        # weights
        tot = 0.0
        for j in range(K):
            w[j] = rng.gamma(alpha + counts[j], 1.0)
            tot += w[j]
        for j in range(K):
            w[j] = max(w[j] / tot, 1e-300)
        for j in range(K):
            members = idx[start[j]:start[j + 1]]
            m = counts[j]
            # the mean: Normal, its precision the prior's plus each point's
            sg2 = math.exp(2.0 * s[j])
            prec = 1.0 / (s0 * s0)
            num = m0 / (s0 * s0)
            for q in range(m):
                i = members[q]
                v = sg2 + (e2[0] if one else e2[i])
                prec += 1.0 / v
                num += z[i] / v
            mu[j] = num / prec + rng.standard_normal() / math.sqrt(prec)
            # the log width: slice sampling (stepping out, then shrinking)
            f0 = _log_sigma_conditional(s[j], z, e2, members, m, mu[j], ss, a, beta)
            level = f0 + math.log(1.0 - rng.random())
            lo = s[j] - rng.random()
            hi = lo + 1.0
            for _ in range(50):
                if _log_sigma_conditional(lo, z, e2, members, m, mu[j], ss, a, beta) <= level:
                    break
                lo -= 1.0
            for _ in range(50):
                if _log_sigma_conditional(hi, z, e2, members, m, mu[j], ss, a, beta) <= level:
                    break
                hi += 1.0
            for _ in range(200):
                cand = lo + rng.random() * (hi - lo)
                if _log_sigma_conditional(cand, z, e2, members, m, mu[j], ss, a,
                                          beta) > level:
                    s[j] = cand
                    break
                if cand < s[j]:
                    lo = cand
                else:
                    hi = cand
        if a > 0.0:
            tau_sum = 0.0
            for j in range(K):
                tau_sum += math.exp(-2.0 * s[j])
            beta = rng.gamma(g + K * a, 1.0 / (h + tau_sum))
        row = (t + 1) // thin - 1
        if (t + 1) % thin == 0 and row < trace.shape[0]:
            for j in range(K):
                trace[row, j] = w[j]
                trace[row, K + j] = mu[j]
                trace[row, 2 * K + j] = s[j]
    return beta


@dataclass
class EmptyProbability:
    """P(n_j = 0 | x, K): one component's posterior probability of holding no point.

    ``value`` and ``se`` (Monte Carlo, from the chains' autocorrelation: ArviZ's MCSE
    of the mean), ``rhat`` (ArviZ's, over the chains), ``sweeps`` per chain after the
    burn-in (all rounds), ``chains``. ``draws``: the chains' states, (chains, draws, d),
    in :mod:`.smc`'s coordinates (1-D; means in increasing order) or
    :mod:`.density_md`'s (D dims), when asked for. ``ok``: R-hat below ``RHAT_MAX``
    and ``se / value`` below ``LOG_SE_MAX`` (the log's standard error).
    """

    value: float
    se: float
    rhat: float
    sweeps: int
    chains: int
    draws: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def log_se(self) -> float:
        """The standard error of log ``value`` (delta method)."""
        return self.se / self.value if self.value > 0 else math.inf

    @property
    def ok(self) -> bool:
        """Whether the estimate passes its check (R-hat and relative error)."""
        return bool(self.rhat < RHAT_MAX and self.log_se < LOG_SE_MAX)


def empty_probability(z: np.ndarray, eps2: np.ndarray, K: int, hyper: dict[str, np.ndarray],
                      starts: np.ndarray, rng: np.random.Generator,
                      sweeps: int | None = None, draws: int = 0) -> EmptyProbability:
    """P(n_j = 0 | x, K) by the allocations' Gibbs sampler, one chain per start.

    Parameters
    ----------
    z, eps2 : ndarray
        Standardized data and squared errors (``eps2`` of length 1: none).
    K : int
        Components (>= 2: with one, the question has no answer).
    hyper : dict
        :meth:`~bayesgmm.Priors.standardized`'s hyperparameters (exchangeable).
    starts : ndarray of shape (chains, 3 K - 1)
        Each chain's first state, in :mod:`.smc`'s coordinates (posterior draws, so
        the burn-in is short).
    rng : numpy.random.Generator
        Seeds of the chains.
    sweeps : int, optional
        Sweeps per chain in a round; default ``MAX_SWEEPS``, fewer where n K is large
        (``SWEEP_BUDGET`` evaluations per chain, at least 2,000). Rounds are added
        until the log's standard error is ``LOG_SE_TARGET`` (at most ``MAX_ROUNDS``).
    draws : int, default=0
        Posterior draws per chain to keep (:attr:`EmptyProbability.draws`), evenly
        spaced over the sweeps.
    """
    from .smc import _coords, _params, _sort

    z = np.ascontiguousarray(z, dtype=float)
    e2 = np.ascontiguousarray(eps2, dtype=float)
    n = z.shape[0]
    if sweeps is None:
        sweeps = int(max(2000, min(MAX_SWEEPS, SWEEP_BUDGET / (n * (K + 8)))))
    alpha, m0, s0 = (float(hyper[f][0]) for f in ("weights_alpha", "means_mu",
                                                  "means_sigma"))
    rg = "precision_alpha" in hyper
    ss = 1.0 if rg else float(hyper["sigmas_sigma"][0])
    a, g, h = ((float(hyper[f][0]) for f in ("precision_alpha", "precision_g",
                                              "precision_h")) if rg else (0.0, 0.0, 0.0))
    w0, mu0, sg0 = _params(np.asarray(starts, dtype=float), K)
    rngs = rng.spawn(len(starts))
    # each chain's state, carried from round to round (beta: a start; its full
    # conditional sets it at the first sweep)
    states = [[np.maximum(w0[c], 1e-300), mu0[c].copy(), np.log(sg0[c]),
               g / h if rg else 0.0] for c in range(len(starts))]

    def step(c: int, m: int, thin: int) -> tuple[np.ndarray, np.ndarray]:
        w, mu, s, beta = states[c]
        out = np.empty(m)
        trace = np.empty((m // thin, 3 * K))
        states[c][3] = _gibbs(z, e2, alpha, m0, s0, ss, a, g, h, w, mu, s, beta, m,
                              rngs[c], out, trace, thin)
        return out, trace

    est = _rounds(step, len(starts), sweeps, draws)
    if est.draws is not None:  # to smc's coordinates, components in order of their means
        t = est.draws.reshape(-1, 3 * K)
        th = _sort(_coords(t[:, :K], t[:, K:2 * K], np.exp(t[:, 2 * K:])), K)
        est.draws = th.reshape(len(starts), -1, 3 * K - 1)
    return est


def _rounds(step, chains: int, sweeps: int, draws: int) -> EmptyProbability:
    """Burn-in, then rounds of ``sweeps`` per chain until the error is small enough.

    ``step(c, m, thin)`` runs m sweeps of chain c from where it stopped and returns
    their values and every ``thin``-th state. Rounds stop when the log's standard error
    reaches ``LOG_SE_TARGET`` or after ``MAX_ROUNDS``; ``draws`` states per chain,
    evenly spaced over all rounds, are kept (none when 0).
    """
    from arviz_stats.base import array_stats

    thin = max(1, sweeps // max(draws, 1))
    with ThreadPoolExecutor(max_workers=min(chains, 4)) as pool:
        list(pool.map(lambda c: step(c, BURN, BURN + 1), range(chains)))
        parts: list[np.ndarray] = []
        traces: list[np.ndarray] = []
        while True:
            got = list(pool.map(lambda c: step(c, sweeps, thin), range(chains)))
            parts.append(np.array([v for v, _ in got]))
            traces.append(np.array([t for _, t in got]))
            values = np.concatenate(parts, axis=1)
            value = float(values.mean())
            if value > 0:
                se = float(array_stats.mcse(values, method="mean", chain_axis=0,
                                            draw_axis=1))
                rhat = float(array_stats.rhat(values, chain_axis=0, draw_axis=1))
            else:
                se, rhat = 0.0, math.nan
            est = EmptyProbability(value=value, se=se, rhat=rhat,
                                   sweeps=values.shape[1], chains=chains)
            if value == 0 or est.log_se <= LOG_SE_TARGET or len(parts) >= MAX_ROUNDS:
                if draws:
                    kept = np.concatenate(traces, axis=1)
                    pick = np.linspace(0, kept.shape[1] - 1, min(draws, kept.shape[1]))
                    est.draws = kept[:, pick.astype(int)]
                return est


# --------------------------------------------------------------------------- D dims
#
# The same sweep for the D-dim model (Normal means, HalfNormal sds, LKJ(eta)
# correlations; per-point error covariances; missing values marginalised): means from
# their Normal full conditional, each component's sds and correlations by slice sampling
# one coordinate at a time in PyMC's unconstrained coordinates (log sd; the
# Cholesky-correlation transform's x, :mod:`.density_md`), whose prior there is
# HalfNormal(sd) sd per feature and (2 eta + D - 1) sum_a log L_aa for the correlations.


@njit(**_OPTS)
def _cov_from(rho, x, D, idx, Sig, L):
    """Sigma = diag(sd) L L^T diag(sd) from (log sd, x); fills L; returns sum_a>0 log L_aa."""
    out = 0.0
    for a in range(D):
        for b in range(D):
            L[a, b] = 0.0
    for a in range(D):
        ss = 1.0
        for b in range(a):
            ss += x[idx[a, b]] ** 2
        r = math.sqrt(ss)
        for b in range(a):
            L[a, b] = x[idx[a, b]] / r
        L[a, a] = 1.0 / r
        if a > 0:
            out -= math.log(r)
    for a in range(D):
        for b in range(a + 1):
            s = 0.0
            for c in range(b + 1):
                s += L[a, c] * L[b, c]
            Sig[a, b] = s * math.exp(rho[a] + rho[b])
            Sig[b, a] = Sig[a, b]
    return out


@njit(**_OPTS)
def _point_cov(i, Sig, err, has_err, cols, d, C):
    """C = (Sigma + E_i) over the point's observed features ``cols[:d]``."""
    for a in range(d):
        for b in range(a + 1):
            v = Sig[cols[a], cols[b]]
            if has_err:
                v += err[i, cols[a], cols[b]]
            C[a, b] = v
            C[b, a] = v


@njit(**_OPTS)
def _chol(C, d, Lc):
    """Lower Cholesky factor of C's leading d x d block into Lc; -inf log det if not PD."""
    logdet = 0.0
    for a in range(d):
        for b in range(a + 1):
            s = C[a, b]
            for c in range(b):
                s -= Lc[a, c] * Lc[b, c]
            if a == b:
                if s <= 0.0:
                    return -np.inf
                Lc[a, a] = math.sqrt(s)
                logdet += 2.0 * math.log(Lc[a, a])
            else:
                Lc[a, b] = s / Lc[b, b]
    return logdet


@njit(**_OPTS)
def _log_normal(i, z, mu, cols, d, C, Lc, r):
    """Log N(z_i,O | mu_O, C) without the 2 pi term, C's factor in Lc (or -inf)."""
    logdet = _chol(C, d, Lc)
    if not np.isfinite(logdet):
        return -np.inf
    q = 0.0
    for a in range(d):
        s = z[i, cols[a]] - mu[cols[a]]
        for b in range(a):
            s -= Lc[a, b] * r[b]
        r[a] = s / Lc[a, a]
        q += r[a] * r[a]
    return -0.5 * (logdet + q)


@njit(**_OPTS)
def _cov_conditional(rho, x, D, idx, members, m, z, err, has_err, ncols, colsall, mu,
                     ss, eta, Sig, L, C, Lc, r):
    """Log density of one component's (log sd, x) given its points and mean."""
    lp = (2.0 * eta + D - 1.0) * _cov_from(rho, x, D, idx, Sig, L)
    for a in range(D):
        q = math.exp(rho[a]) / ss[a]
        lp += rho[a] - 0.5 * q * q
    for t in range(m):
        i = members[t]
        d = ncols[i]
        cols = colsall[i]
        _point_cov(i, Sig, err, has_err, cols, d, C)
        v = _log_normal(i, z, mu, cols, d, C, Lc, r)
        if not np.isfinite(v):
            return -np.inf
        lp += v
    return lp


@njit(**_OPTS)
def _gibbs_md(z, ncols, colsall, err, has_err, alpha, m0, s0, ss, eta, w, mu, rho, x,
              n_sweeps, rng, out, trace, thin):
    """:func:`_gibbs`'s sweep in D dims, from (w, mu (K, D), rho (K, D), x (K, M)).

    ``ncols[i]``, ``colsall[i, :ncols[i]]``: point i's observed features; ``err``:
    error covariances (``has_err``). Writes sweep t's averaged P(n_j = 0 | theta, x)
    into ``out[t]``, and every ``thin``-th state into the rows of ``trace`` in
    :mod:`.density_md`'s unconstrained coordinates while there are rows.
    """
    n, D = z.shape
    K = w.shape[0]
    M = D * (D - 1) // 2
    idx = spiral_index(D)
    Sig = np.empty((K, D, D))
    Lk = np.empty((D, D))
    C = np.empty((D, D))
    Lc = np.zeros((D, D))
    r = np.empty(D)
    lf = np.empty(K)
    log_empty = np.empty(K)
    counts = np.empty(K, np.int64)
    alloc = np.empty(n, np.int64)
    order = np.empty(n, np.int64)
    start = np.empty(K + 1, np.int64)
    fill = np.empty(K, np.int64)
    P = np.empty((D, D))
    bvec = np.empty(D)
    Ci = np.empty((D, D))
    eye = np.empty(D)
    for k in range(K):
        _cov_from(rho[k], x[k], D, idx, Sig[k], Lk)
    for t in range(n_sweeps):
        for k in range(K):
            log_empty[k] = 0.0
            counts[k] = 0
        for i in range(n):
            d = ncols[i]
            cols = colsall[i]
            top = -np.inf
            for k in range(K):
                _point_cov(i, Sig[k], err, has_err, cols, d, C)
                lf[k] = math.log(w[k]) + _log_normal(i, z, mu[k], cols, d, C, Lc, r)
                top = max(top, lf[k])
            kk = _allocate(lf, top, log_empty, rng)
            alloc[i] = kk
            counts[kk] += 1
        acc = 0.0
        for k in range(K):
            acc += math.exp(log_empty[k])
        out[t] = acc / K
        start[0] = 0
        for k in range(K):
            start[k + 1] = start[k] + counts[k]
            fill[k] = start[k]
        for i in range(n):
            order[fill[alloc[i]]] = i
            fill[alloc[i]] += 1
        tot = 0.0
        for k in range(K):
            w[k] = rng.gamma(alpha + counts[k], 1.0)
            tot += w[k]
        for k in range(K):
            w[k] = max(w[k] / tot, 1e-300)
        for k in range(K):
            members = order[start[k]:start[k + 1]]
            m = counts[k]
            # the mean: precision diag(1 / s0^2) + sum_i P_i^T C_i^-1 P_i
            for a in range(D):
                for b in range(D):
                    P[a, b] = 0.0
                P[a, a] = 1.0 / (s0[a] * s0[a])
                bvec[a] = m0[a] / (s0[a] * s0[a])
            for q in range(m):
                i = members[q]
                d = ncols[i]
                cols = colsall[i]
                _point_cov(i, Sig[k], err, has_err, cols, d, C)
                _chol(C, d, Lc)
                # C^-1 from its factor, column by column
                for cc in range(d):
                    for a in range(d):
                        eye[a] = 1.0 if a == cc else 0.0
                    for a in range(d):  # forward
                        s = eye[a]
                        for b in range(a):
                            s -= Lc[a, b] * r[b]
                        r[a] = s / Lc[a, a]
                    for a in range(d - 1, -1, -1):  # backward
                        s = r[a]
                        for b in range(a + 1, d):
                            s -= Lc[b, a] * Ci[b, cc]
                        Ci[a, cc] = s / Lc[a, a]
                for a in range(d):
                    for b in range(d):
                        P[cols[a], cols[b]] += Ci[a, b]
                        bvec[cols[a]] += Ci[a, b] * z[i, cols[b]]
            _chol(P, D, Lc)
            for a in range(D):  # solve P mean = b: forward then backward
                s = bvec[a]
                for b in range(a):
                    s -= Lc[a, b] * r[b]
                r[a] = s / Lc[a, a]
            for a in range(D):
                eye[a] = rng.standard_normal()
            for a in range(D - 1, -1, -1):  # mean + L^-T eps
                s = r[a] + eye[a]
                for b in range(a + 1, D):
                    s -= Lc[b, a] * mu[k, b]
                mu[k, a] = s / Lc[a, a]
            # the sds and correlations, one coordinate at a time
            for j in range(D + M):
                f0 = _cov_conditional(rho[k], x[k], D, idx, members, m, z, err, has_err,
                                      ncols, colsall, mu[k], ss, eta, Sig[k], Lk, C, Lc, r)
                level = f0 + math.log(1.0 - rng.random())
                vec = rho[k] if j < D else x[k]
                jj = j if j < D else j - D
                old = vec[jj]
                lo = old - rng.random()
                hi = lo + 1.0
                for _ in range(50):
                    vec[jj] = lo
                    if _cov_conditional(rho[k], x[k], D, idx, members, m, z, err, has_err,
                                        ncols, colsall, mu[k], ss, eta, Sig[k], Lk, C, Lc,
                                        r) <= level:
                        break
                    lo -= 1.0
                for _ in range(50):
                    vec[jj] = hi
                    if _cov_conditional(rho[k], x[k], D, idx, members, m, z, err, has_err,
                                        ncols, colsall, mu[k], ss, eta, Sig[k], Lk, C, Lc,
                                        r) <= level:
                        break
                    hi += 1.0
                vec[jj] = old
                for _ in range(200):
                    cand = lo + rng.random() * (hi - lo)
                    vec[jj] = cand
                    if _cov_conditional(rho[k], x[k], D, idx, members, m, z, err, has_err,
                                        ncols, colsall, mu[k], ss, eta, Sig[k], Lk, C, Lc,
                                        r) > level:
                        break
                    if cand < old:
                        lo = cand
                    else:
                        hi = cand
                    vec[jj] = old
            _cov_from(rho[k], x[k], D, idx, Sig[k], Lk)
        row = (t + 1) // thin - 1
        if (t + 1) % thin == 0 and row < trace.shape[0]:
            mlw = 0.0
            for k in range(K):
                mlw += math.log(w[k]) / K
            o = 0
            for k in range(K - 1):
                trace[row, o] = math.log(w[k]) - mlw
                o += 1
            for k in range(K):
                for a in range(D):
                    trace[row, o] = mu[k, a]
                    o += 1
            for k in range(K):
                for a in range(D):
                    trace[row, o] = rho[k, a]
                    o += 1
            for k in range(K):
                for q in range(M):
                    trace[row, o] = x[k, q]
                    o += 1


def empty_probability_md(target, starts: np.ndarray, rng: np.random.Generator,
                         sweeps: int | None = None, draws: int = 0) -> EmptyProbability:
    """:func:`empty_probability` for the D-dim model, one chain per start.

    Parameters
    ----------
    target : TargetMD
        The K-component problem (:class:`~.target_md.TargetMD`: standardized data,
        missing values, error covariances, exchangeable priors).
    starts : ndarray of shape (chains, n_dim)
        Each chain's first state in the target's unconstrained coordinates.
    rng : numpy.random.Generator
        Seeds of the chains.
    sweeps : int, optional
        As :func:`empty_probability`'s (the budget counts n (K + 8 (D + M)) D per
        sweep; at least 500).
    """
    from .density_md import unpack

    z, observed = target.z, target.observed
    n, D = z.shape
    K = target.n_components
    M = D * (D - 1) // 2
    h = target.hyper
    if sweeps is None:
        sweeps = int(max(500, min(MAX_SWEEPS, SWEEP_BUDGET / (n * (K + 8 * (D + M)) * D))))
    ncols = observed.sum(axis=1).astype(np.int64)
    colsall = np.zeros((n, D), np.int64)
    for i in range(n):
        c = np.flatnonzero(observed[i])
        colsall[i, : c.size] = c
    err = np.ascontiguousarray(target.err_cov, dtype=float)
    alpha = float(h["weights_alpha"][0])
    m0, s0, ss = (np.ascontiguousarray(h[f][0], dtype=float) for f in
                  ("means_mu", "means_sigma", "sigmas_sigma"))
    eta = float(h["corr_eta"])
    rngs = rng.spawn(len(starts))
    states = []
    for c in range(len(starts)):
        th = np.asarray(starts[c], dtype=float)
        w, mu, sd, _ = unpack(th, K, D)
        o = K - 1 + 2 * K * D
        states.append((np.maximum(w, 1e-300), mu.copy(), np.log(sd),
                       th[o:].reshape(K, M).copy()))

    def step(c: int, m: int, thin: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty(m)
        trace = np.empty((m // thin, target.n_dim))
        _gibbs_md(z, ncols, colsall, err, bool(target.has_err), alpha, m0, s0, ss, eta,
                  *states[c], m, rngs[c], out, trace, thin)
        return out, trace

    return _rounds(step, len(starts), sweeps, draws)
