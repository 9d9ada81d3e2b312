"""Sampler coordinates in which an overlapping pair of components is not a curved ridge.

Two overlapping components can trade weight, place and width along a long curved ridge
of the posterior: in PyMC's coordinates (softmax weights, ordered means, log widths) the
split of weight between them is strongly correlated with the log-weights, means and
widths, and the ridge narrows where one of the two is small (NUTS diverges there and its
effective sample size collapses; figures in ``benchmarks/README.md``).

The pair's first two moments are what the data pin down. So the sampler sees the pair
as one unit (weight W, mean M, standard deviation S of the two together) plus three
split coordinates (Richardson & Green 1997's split move):

- logit f, f = w_j / W the share of the left component;
- t2, the gap between the two means in units of S, (mu_{j+1} - mu_j) / S, while it is
  small against the room there is (it saturates beyond): the moment-matching split
  needs u2 = sqrt(between-variance / S^2) = t2 sqrt(f (1 - f)) below a bound b <= 1
  (1: the widths stay positive; less where a neighbour would otherwise be overtaken, so
  the means remain ordered), and
  u2 = b tanh(t2 sqrt(f (1 - f)) / b) is t2 sqrt(f (1 - f)) far from the bound and
  saturates at it;
- r = log(sigma_j / sigma_{j+1}), the ratio of the widths.

**The fold.** t2 < 0 is the mirror image: (logit f, t2, r) and (-logit f, -t2, -r) are the
same ordered parameters (the component with share f and width ratio r is then the right
one). Each half is a bijection onto the ordered parameters, so the sampler's space is two
copies of the posterior glued where the pair's means coincide, and folding the draws
(what :func:`unpack` does) gives the posterior exactly. It is the pair's unordered
parametrisation: with the ordered one, the region where the two means nearly coincide
(the two widths can then trade places) is a boundary that logit(u2) stretches into a long,
heavy left tail with a funnel in r, the worst-mixing coordinate; across the fold it is an
ordinary stretch of a smooth density. With exchangeable priors on the pair (the
defaults) the density and its gradient are continuous at t2 = 0 (tested); with
different weight or width priors for its two components the density jumps there, so
:func:`choose_pair` only takes pairs whose weight and width priors are equal (different
mean priors leave a kink in the gradient).

**The gap in units of S** rather than u2 keeps a small component's coordinates on the
same scale as a large one's: u2 -> 0 as sqrt(f) when the left component's share f -> 0,
so in u2 (or logit u2) a small component is a funnel; its gap to the other in units of S
stays O(1).

Why these coordinates: on overlapping components the first run at target_accept 0.8
meets the sampling target where the earlier logit(u2 / b) coordinates failed a check and
needed the slower second run (the seed sweep is in ``benchmarks/README.md``).

The map is a bijection onto the ordered model's parameter space on each half, so the
posterior is exactly the same distribution; only the sampler's coordinates change. Its
log-Jacobian is written out in :func:`_unpack`;
``tests/bayes/reparam/test_pair.py`` checks it against the determinant of the
numerical Jacobian, and the log-density against a SciPy reference.

The remaining K - 2 components keep PyMC's transforms; with K = 1 nothing is paired.
The gradient of the map and of its log-Jacobian come from complex-step differentiation
(exact to rounding; 3K - 1 evaluations of an O(K) map per gradient, a cost that does not
grow with n, so it shows only on small data sets).

The bound b = min(1, c_left, c_right) keeps the map continuous but not smooth: where
the binding constraint switches (a neighbour comes into the way of the pair's
separation) the log-density's gradient has a kink. It matters only for posteriors that
press the pair against a neighbour. Where a neighbour bounds the pair, t2's scale is the
bound B = b / sqrt(f (1 - f)) (beyond it the density falls as exp(-2 t2 / B)).

Coordinate vector ``phi`` (length 3K - 1), with K' = K - 1 units (the pair is unit j):
unit weights (K' - 1, softmax with the last = -sum), unit means (K', ordered
transform), unit log standard deviations (K'), then logit f, t2, r.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..density import log_density

# error_model="numpy": a weight that underflows to 0 gives inf/NaN (which the sampler
# treats as a divergence), never a Python exception inside nutpie's C callback
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}
_H = 1e-30  # complex step
_FAR = 20.0  # tanh's argument past which 1 - tanh is handled through its log


@njit(**_OPTS)
def _logistic(t):
    """(l, 1 - l) for l = 1 / (1 + exp(-t)), without overflow (complex t)."""
    if t.real >= 0.0:
        e = np.exp(-t)
        return 1.0 / (1.0 + e), e / (1.0 + e)
    e = np.exp(t)
    return e / (1.0 + e), 1.0 / (1.0 + e)


@njit(**_OPTS)
def _tanh(a):
    """(l, 1 - l, log(1 - l)) for l = tanh(a), a >= 0 (complex a).

    Without overflow or cancellation; log(1 - l) comes from a itself far out, where
    1 - l (and the imaginary part of a complex step through it) would underflow.
    """
    e2 = np.exp(-2.0 * a)
    lam = np.tanh(a) if a.real < 1.0 else (1.0 - e2) / (1.0 + e2)
    one_m_lam = 2.0 * e2 / (1.0 + e2)
    if a.real < _FAR:
        return lam, one_m_lam, np.log(one_m_lam)
    return lam, one_m_lam, math.log(2.0) - 2.0 * a - np.log(1.0 + e2)


@njit(**_OPTS)
def _unpack(phi, K, j):
    """(w, mu, sigma, log|Jacobian|) from ``phi`` (complex arrays; see the module doc)."""
    Kp = K - 1
    one = phi[0] * 0.0 + 1.0  # complex one with the input's type
    # ---- units: softmax weights, ordered means, log sds (PyMC's transforms)
    zv = np.empty(Kp, dtype=phi.dtype)
    ysum = phi[0] * 0.0
    for k in range(Kp - 1):
        zv[k] = phi[k]
        ysum += phi[k]
    zv[Kp - 1] = -ysum
    m = zv[0].real
    for k in range(Kp):
        m = max(m, zv[k].real)
    wu = np.exp(zv - m)
    wu = wu / wu.sum()
    logj = math.log(Kp) + Kp * (ysum + np.log(wu[Kp - 1]))
    o = Kp - 1
    mu_u = np.empty(Kp, dtype=phi.dtype)
    mu_u[0] = phi[o]
    for k in range(1, Kp):
        mu_u[k] = mu_u[k - 1] + np.exp(phi[o + k])
        logj += phi[o + k]
    o += Kp
    sd_u = np.exp(phi[o : o + Kp])
    for k in range(Kp):
        if k != j:
            logj += phi[o + k]
    o += Kp
    # ---- the pair: unit j -> components j, j + 1
    W, M, S = wu[j], mu_u[j], sd_u[j]
    # the split's sign: t2 < 0 is the mirror image (f, r -> 1 - f, -r), see the module doc
    sign = 1.0 if phi[o + 1].real >= 0.0 else -1.0
    f, g = _logistic(sign * phi[o])  # f and 1 - f
    log_f, log_g = np.log(f), np.log(g)
    rho = np.sqrt(g / f)  # sqrt(w_{j+1} / w_j)
    b = one
    bounded = False  # by a neighbour: u2 < b < 1
    if j > 0:
        c = (M - mu_u[j - 1]) / (S * rho)
        if c.real < b.real:
            b, bounded = c, True
    if j < Kp - 1:
        c = (mu_u[j + 1] - M) * rho / S
        if c.real < b.real:
            b, bounded = c, True
    # t2 is the gap in units of S, (mu_{j+1} - mu_j) / S = u2 / sqrt(f g), where it is
    # far from the bound b / sqrt(f g): u2 = b tanh(t2 sqrt(f g) / b)
    # (a neighbour on top of the pair's mean, b = 0 after rounding: no room, u2 = 0)
    a = sign * phi[o + 1] * np.sqrt(f * g) * (1.0 / b if b.real > 0.0 else one * 1e300)
    lam, one_m_lam, log_one_m_lam = _tanh(a)
    u2 = b * lam
    one_m_u2 = 1.0 - u2 if bounded else one_m_lam
    within = one_m_u2 * (1.0 + u2)  # 1 - u2^2: share of the variance within components
    near = bounded or a.real < _FAR  # else 1 - u2 = 1 - lam may underflow: use its log
    if near:
        log_within = np.log(within)
    else:
        log_within = log_one_m_lam + np.log(1.0 + u2)
    u3, one_m_u3 = _logistic(sign * (2.0 * phi[o + 2] + phi[o]))
    w = np.empty(K, dtype=phi.dtype)
    mu = np.empty(K, dtype=phi.dtype)
    sigma = np.empty(K, dtype=phi.dtype)
    for k in range(Kp):
        kk = k if k < j else k + 1
        w[kk], mu[kk], sigma[kk] = wu[k], mu_u[k], sd_u[k]
    w[j], w[j + 1] = f * W, g * W
    # the gap mu_{j+1} - mu_j = u2 S (rho + 1/rho) = u2 S / sqrt(f g), computed as such:
    # the difference of M -/+ u2 S rho^(+-1) cancels when the two are close
    log_S = np.log(S)
    log_gap_per_u2 = log_S - 0.5 * (log_f + log_g)
    mu[j] = M - u2 * S * rho
    mu[j + 1] = mu[j] + u2 * np.exp(log_gap_per_u2)
    if near:
        sigma[j] = S * np.sqrt(u3 * within / f)
        sigma[j + 1] = S * np.sqrt(one_m_u3 * within / g)
        log_sigmas = np.log(sigma[j]) + np.log(sigma[j + 1])
    else:  # from logs: the widths may underflow where their logs do not
        log_sj = log_S + 0.5 * (np.log(u3) + log_within - log_f)
        log_sj1 = log_S + 0.5 * (np.log(one_m_u3) + log_within - log_g)
        sigma[j], sigma[j + 1] = np.exp(log_sj), np.exp(log_sj1)
        log_sigmas = log_sj + log_sj1
    # log|Jacobian| of the pair: logistic(f), b * tanh'(t2) = b (1 - lam)(1 + lam),
    # 2 u3 (1 - u3) from r, 2 S^2 from log S, Richardson & Green's W |mu_{j+1} - mu_j|
    # s_j^2 s_{j+1}^2 / (u2 (1 - u2^2) u3 (1 - u3) S^2), and 1 / (2 s) from s^2 to s (the
    # mirror's sign flips have |det| 1); it simplifies to
    logj += (log_f + log_g + log_one_m_lam + np.log(1.0 + lam) + np.log(W)
             + 0.5 * (log_f + log_g) + log_gap_per_u2
             + log_sigmas - log_within)
    return w, mu, sigma, logj


@njit(**_OPTS)
def unpack(phi, K, j):
    """Real (w, mu, sigma) from the coordinates ``phi``."""
    w, mu, sigma, _ = _unpack(phi.astype(np.complex128), K, j)
    return w.real.copy(), mu.real.copy(), sigma.real.copy()


@njit(**_OPTS)
def log_jacobian(phi, K, j):
    """log|d(w_1..w_{K-1}, mu, sigma) / d phi| (real ``phi``)."""
    return _unpack(phi.astype(np.complex128), K, j)[3].real


@njit(**_OPTS)
def logp_and_grad(phi, z, eps2, weights_alpha, means_mu, means_sigma, sigmas_sigma,
                  log_scale_n, j):
    """Log-density of the model in pair coordinates and its gradient.

    The map's Jacobian (complex step through :func:`_unpack`), the model's density in
    (w, mu, sigma) (:func:`bayesgmm.bayes.density.log_density`) and the chain rule.
    """
    K = weights_alpha.shape[0]
    D = phi.shape[0]
    jac = np.empty((3 * K, D))
    dlogj = np.empty(D)
    pc = phi.astype(np.complex128)
    for d in range(D):
        pc[d] += 1j * _H
        w, mu, sigma, logj = _unpack(pc, K, j)
        pc[d] = phi[d]
        for k in range(K):
            jac[k, d] = w[k].imag / _H
            jac[K + k, d] = mu[k].imag / _H
            jac[2 * K + k, d] = sigma[k].imag / _H
        dlogj[d] = logj.imag / _H
    w, mu, sigma = w.real.copy(), mu.real.copy(), sigma.real.copy()
    logp, dw, gmu, dsig = log_density(logj.real, w, mu, sigma, z, eps2, weights_alpha,
                                      means_mu, means_sigma, sigmas_sigma, log_scale_n)
    grad = dlogj.copy()
    for d in range(D):
        acc = 0.0
        for k in range(K):
            acc += (jac[k, d] * dw[k] + jac[K + k, d] * gmu[k]
                    + jac[2 * K + k, d] * dsig[k])
        grad[d] += acc
    return logp, grad


def pack(w: np.ndarray, mu: np.ndarray, sigma: np.ndarray, j: int) -> np.ndarray:
    """The coordinates ``phi`` of an ordered (w, mu, sigma); inverse of :func:`unpack`."""
    w, mu, sigma = (np.asarray(a, dtype=float) for a in (w, mu, sigma))
    K = w.shape[0]
    W = w[j] + w[j + 1]
    f = w[j] / W
    M = f * mu[j] + (1 - f) * mu[j + 1]
    within = f * sigma[j] ** 2 + (1 - f) * sigma[j + 1] ** 2
    between = f * (1 - f) * (mu[j + 1] - mu[j]) ** 2
    S = math.sqrt(within + between)
    u2 = math.sqrt(between / (within + between))
    rho = math.sqrt((1 - f) / f)
    b = 1.0
    if j > 0:
        b = min(b, (M - mu[j - 1]) / (S * rho))
    if j < K - 2:
        b = min(b, (mu[j + 2] - M) * rho / S)
    # a start, not an exact inverse, at the far end: means pressed against a neighbour
    # at the EM estimate start 1e-8 short of it, not at atanh(1) = inf
    lam = min(u2 / b, 1 - 1e-8)
    keep = [k for k in range(K) if k not in (j, j + 1)]
    wu = np.insert(w[keep], j, W)
    mu_u = np.insert(mu[keep], j, M)
    sd_u = np.insert(sigma[keep], j, S)
    lw = np.log(wu)
    y = (lw - lw.mean())[:-1]
    t = np.concatenate([mu_u[:1], np.log(np.diff(mu_u))])
    pair = [math.log(f / (1 - f)), math.atanh(lam) * b / math.sqrt(f * (1 - f)),
            math.log(sigma[j] / sigma[j + 1])]
    return np.concatenate([y, t, np.log(sd_u), pair])


def choose_pair(mu: np.ndarray, sigma: np.ndarray, mean_err2: float = 0.0,
                hyper: dict | None = None) -> int:
    """Index j of the adjacent pair (j, j + 1) that overlaps most (sorted means).

    With ``hyper`` (the standardized priors, :meth:`bayesgmm.Priors.standardized`), only
    pairs whose two components have the same weight and width priors qualify, and -1
    (no pair: PyMC's coordinates) is returned when none does. The fold needs it: its
    two halves meet where the pair's means coincide, at the parameters with the pair's
    weights and widths swapped, and only equal priors on those give both the same
    density there. With different ones the density jumps at t2 = 0 (the posterior is
    still right, but NUTS adapts its step size down to nothing trying to cross the
    cliff, and its chains disagree). Different
    priors on the two means do not matter there (both means are M): they leave a kink
    in the gradient, like the neighbours' bound b.
    """
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    spread = np.sqrt(sigma[:-1] ** 2 + sigma[1:] ** 2 + 2.0 * mean_err2)
    overlap = np.diff(mu) / spread
    if hyper is not None:
        same = np.ones(overlap.size, dtype=bool)
        for name in ("weights_alpha", "sigmas_sigma"):
            v = np.asarray(hyper[name], dtype=float)
            same &= v[:-1] == v[1:]
        if not same.any():
            return -1
        overlap = np.where(same, overlap, np.inf)
    return int(np.argmin(overlap))
