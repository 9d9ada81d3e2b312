"""Fused, compiled log-density and gradient of the Bayesian mixture (1-D).

In PyMC's coordinates. (The sampler uses the pair coordinates of
:mod:`bayesgmm.bayes.reparam.pair`; ``inference.COORDS = "pymc"`` makes it use these.) It
evaluates exactly the log-density of :func:`bayesgmm.bayes.model.build_model` (priors, PyMC's
transforms and their Jacobians, and the marginalised likelihood with measurement errors)
in one pass over the points, without materialising any (n, K) array;
``tests/test_model.py`` checks it against the PyMC model's own
``compile_logp``/``compile_dlogp`` to 1e-10.

Unconstrained parameter vector ``theta`` (PyMC's value variables, in this order):

- ``weights_simplex__`` (K - 1): simplex transform, w = softmax([y, -sum(y)]);
- ``means_std_ordered__`` (K): ordered transform, mu = cumsum([t0, exp(t1), ...]);
- ``sigmas_std_log__`` (K): log transform, sigma = exp(rho).

Data (standardized): ``z`` (n,), ``eps2`` (n,) squared errors; ``log_scale_n`` is
n * log(scale), which turns the likelihood of ``z`` into that of the data.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..likelihood import _fused

_LOG2PI = math.log(2.0 * math.pi)


_OPTS = {"cache": True, "nogil": True}


_EMPTY = np.empty(0)


@njit(**_OPTS)
def unpack(theta, K):
    """Constrained (w, mu, sigma) from the unconstrained vector."""
    y = theta[: K - 1]
    s = 0.0
    for j in range(K - 1):
        s += y[j]
    zv = np.empty(K)
    for j in range(K - 1):
        zv[j] = y[j]
    zv[K - 1] = -s
    m = zv.max()
    w = np.exp(zv - m)
    w /= w.sum()
    mu = np.empty(K)
    mu[0] = theta[K - 1]
    for k in range(1, K):
        mu[k] = mu[k - 1] + math.exp(theta[K - 1 + k])
    sigma = np.exp(theta[2 * K - 1 : 3 * K - 1])
    return w, mu, sigma


@njit(**_OPTS)
def _lgamma_sum(alpha):
    tot = 0.0
    s = 0.0
    for a in alpha:
        tot += math.lgamma(a)
        s += a
    return math.lgamma(s) - tot


@njit(**_OPTS)
def logp_and_grad(theta, z, eps2, alpha, mu_mu, mu_sd, sig_sd, log_scale_n):
    """Log-density (Jacobians included) and its gradient with respect to ``theta``."""
    K = alpha.shape[0]
    w, mu, sigma = unpack(theta, K)
    logw = np.log(w)
    grad = np.zeros(3 * K - 1)

    # ---- likelihood and its gradient: one blocked, vectorized pass (_mixture_kernels)
    total, dw, gmu, dsig = _fused(z, eps2, w, mu, sigma, _EMPTY)
    logp = total - log_scale_n
    u = w * dw  # d loglik / d log w_k
    gsig = dsig * sigma  # d/d log sigma = sigma * d/d sigma

    # ---- Dirichlet prior on w and the simplex Jacobian
    logp += _lgamma_sum(alpha)
    for k in range(K):
        logp += (alpha[k] - 1.0) * logw[k]
        u[k] += alpha[k] - 1.0
    ysum = 0.0
    for j in range(K - 1):
        ysum += theta[j]
    logp += math.log(K) + K * (ysum + logw[K - 1])
    usum = 0.0
    for k in range(K):
        usum += u[k]
    for j in range(K - 1):
        grad[j] = u[j] - u[K - 1] - (w[j] - w[K - 1]) * usum + K * (w[K - 1] - w[j])

    # ---- Normal prior on the means, ordered transform
    for k in range(K):
        d = (mu[k] - mu_mu[k]) / mu_sd[k]
        logp += -0.5 * _LOG2PI - math.log(mu_sd[k]) - 0.5 * d * d
        gmu[k] -= d / mu_sd[k]
    tail = 0.0
    for k in range(K - 1, -1, -1):
        tail += gmu[k]
        if k == 0:
            grad[K - 1] = tail
        else:
            logp += theta[K - 1 + k]
            grad[K - 1 + k] = tail * (mu[k] - mu[k - 1]) + 1.0

    # ---- HalfNormal prior on the widths, log transform
    for k in range(K):
        q = sigma[k] / sig_sd[k]
        logp += 0.5 * math.log(2.0 / math.pi) - math.log(sig_sd[k]) - 0.5 * q * q
        logp += theta[2 * K - 1 + k]
        grad[2 * K - 1 + k] = gsig[k] - q * q + 1.0
    return logp, grad
