"""The model's log-density in (w, mu, sigma): the likelihood plus the prior terms, once.

Every hand-written log-density of :func:`bayesgmm.bayes.model.build_model`'s model goes
through :func:`log_density`: the reparametrisations (:mod:`.reparam.pymc_space`,
:mod:`.reparam.pair`) only map their coordinates to (w, mu, sigma), add their
log-Jacobian and apply the chain rule. A new prior term is written here and nowhere
else (and in ``build_model``, the reference it is tested against to 1e-10).

Arguments are standardized (:meth:`bayesgmm.Priors.standardized`); the hyperparameters
are named as the fields of :class:`bayesgmm.Priors`: ``weights_alpha`` (Dirichlet
concentration), ``means_mu`` and ``means_sigma`` (Normal prior of each mean),
``sigmas_sigma`` (HalfNormal scale of each width).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .likelihood import _fused

# error_model="numpy": a weight that underflows to 0 gives inf/NaN (which the sampler
# treats as a divergence), never a Python exception inside nutpie's C callback
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}
_LOG2PI = math.log(2.0 * math.pi)


@njit(**_OPTS)
def add_log_prior(acc, w, mu, sigma, weights_alpha, means_mu, means_sigma, sigmas_sigma,
                  dw, dmu, dsigma):
    """``acc`` plus the log prior density of (w, mu, sigma); adds its gradient to dw, dmu, dsigma.

    Dirichlet(weights_alpha) on w, Normal(means_mu, means_sigma) on each mean,
    HalfNormal(sigmas_sigma) on each width (the ordering of the means is the
    reparametrisation's business). A component with alpha = 1 adds no w term: it is
    zero, and 0 * log 0 would be NaN where a weight underflows.

    The terms are added to ``acc`` one by one in a fixed order (component by component,
    the Dirichlet normaliser last): the sampler's draws depend on that order bit for bit.
    """
    K = w.shape[0]
    tot_a = 0.0
    lg = 0.0
    for k in range(K):
        tot_a += weights_alpha[k]
        lg -= math.lgamma(weights_alpha[k])
        if weights_alpha[k] != 1.0:
            acc += (weights_alpha[k] - 1.0) * math.log(w[k])
            dw[k] += (weights_alpha[k] - 1.0) / w[k]
        d = (mu[k] - means_mu[k]) / means_sigma[k]
        acc += -0.5 * _LOG2PI - math.log(means_sigma[k]) - 0.5 * d * d
        dmu[k] -= d / means_sigma[k]
        q = sigma[k] / sigmas_sigma[k]
        acc += 0.5 * math.log(2.0 / math.pi) - math.log(sigmas_sigma[k]) - 0.5 * q * q
        dsigma[k] -= q / sigmas_sigma[k]
    return acc + (lg + math.lgamma(tot_a))


@njit(**_OPTS)
def log_density(acc, w, mu, sigma, z, eps2, weights_alpha, means_mu, means_sigma,
                sigmas_sigma, log_scale_n):
    """(acc + log p(z | w, mu, sigma) + log prior, d/dw, d/dmu, d/dsigma).

    ``z``, ``eps2``: standardized data and squared errors; ``log_scale_n`` = n log(scale)
    turns the likelihood of ``z`` into that of the data (0: left out). ``acc`` is what
    the caller has summed so far (a log-Jacobian, or 0): the likelihood is added to it
    first, then the prior terms, in the order of :func:`add_log_prior`.
    """
    # np.empty(0), not a global array (read-only to numba): one signature of _fused
    # for this, SMC and the Ops, so a cold first fit compiles it once
    total, dw, dmu, dsigma = _fused(z, eps2, w, mu, sigma, np.empty(0))
    acc += total - log_scale_n
    acc = add_log_prior(acc, w, mu, sigma, weights_alpha, means_mu, means_sigma,
                        sigmas_sigma, dw, dmu, dsigma)
    return acc, dw, dmu, dsigma
