"""Fused, compiled log-density and gradient of the Bayesian mixture (1-D).

In PyMC's coordinates. (The sampler uses the pair coordinates of
:mod:`bayesgmm.bayes.reparam.pair` where a pair qualifies; these otherwise, or with
``reparam="pymc"``, see :mod:`bayesgmm.bayes.target`.) It
evaluates exactly the log-density of :func:`bayesgmm.bayes.model.build_model` (priors, PyMC's
transforms and their Jacobians, and the marginalised likelihood with measurement errors)
in one pass over the points, without materialising any (n, K) array;
``tests/bayes/test_model.py`` checks it against the PyMC model's own
``compile_logp``/``compile_dlogp`` to 1e-10. The density in (w, mu, sigma) is
:func:`bayesgmm.bayes.density.log_density`; this module adds only the map, its
log-Jacobian and the chain rule.

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

from ..density import log_density

_OPTS = {"cache": True, "nogil": True}


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
def logp_and_grad(theta, z, eps2, weights_alpha, means_mu, means_sigma, sigmas_sigma,
                  log_scale_n):
    """Log-density (Jacobians included) and its gradient with respect to ``theta``.

    The model's density in (w, mu, sigma) (:func:`bayesgmm.bayes.density.log_density`),
    the transforms' log-Jacobians and the chain rule through them.
    """
    K = weights_alpha.shape[0]
    w, mu, sigma = unpack(theta, K)
    logw = np.log(w)
    grad = np.zeros(3 * K - 1)
    logp, dw, gmu, dsig = log_density(0.0, w, mu, sigma, z, eps2, weights_alpha, means_mu,
                                      means_sigma, sigmas_sigma, log_scale_n)

    # ---- simplex: w = softmax([y, -sum y]); log|J| = log K + K (sum y + log w_K)
    u = w * dw  # d logp / d log w_k
    ysum = 0.0
    for j in range(K - 1):
        ysum += theta[j]
    logp += math.log(K) + K * (ysum + logw[K - 1])
    usum = 0.0
    for k in range(K):
        usum += u[k]
    for j in range(K - 1):
        grad[j] = u[j] - u[K - 1] - (w[j] - w[K - 1]) * usum + K * (w[K - 1] - w[j])

    # ---- ordered: mu = cumsum([t0, exp(t1), ...]); log|J| = sum_{k >= 1} t_k
    tail = 0.0
    for k in range(K - 1, -1, -1):
        tail += gmu[k]
        if k == 0:
            grad[K - 1] = tail
        else:
            logp += theta[K - 1 + k]
            grad[K - 1 + k] = tail * (mu[k] - mu[k - 1]) + 1.0

    # ---- log: sigma = exp(rho); log|J| = sum rho
    for k in range(K):
        logp += theta[2 * K - 1 + k]
        grad[2 * K - 1 + k] = dsig[k] * sigma[k] + 1.0
    return logp, grad
