"""The recovery harness: fit data of known truth by EM, XD or ``bayesgmm.fit``, compare.

Every estimate is compared with the truth on one scale: the standard error each
parameter would have if every point's component were known (``labels_known_se``). With
the labels known, the maximum-likelihood estimates are (asymptotically) normal with
these standard errors; not knowing them adds little when the components are well
separated, which the harness's cases are. A posterior is checked in its own units as
well: the truth within a stated multiple of the posterior sd.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

PARAMS = ("weights", "means", "sigmas")


@dataclass
class Recovered:
    """Point estimates in increasing order of the means, and the draws behind them.

    ``draws`` maps each parameter to its posterior draws, shape (chains * draws, K), in
    the same component order; None for EM and XD.
    """

    weights: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray
    draws: dict[str, np.ndarray] | None = None


def _from_em(gm):
    o = np.argsort(gm.means_[:, 0])
    return Recovered(gm.weights_[o], gm.means_[o, 0], np.sqrt(gm.covariances_[o, 0, 0]))


def _em(sim, K, seed, sample):
    from bayesgmm import GaussianMixtureEM

    return _from_em(GaussianMixtureEM(K, random_seed=seed).fit(sim.x))


def _xd(sim, K, seed, sample):
    from bayesgmm import GaussianMixtureEM

    return _from_em(GaussianMixtureEM(K, random_seed=seed).fit(sim.x, X_err=sim.x_err))


#: bayesgmm.fit at the harness's size: enough draws for posterior means and sds to a
#: few percent of a posterior sd (bulk ESS of a few hundred), cheap enough for the suite
FIT_SIZE = {"chains": 2, "draws": 300, "tune": 300}


def _fit(sim, K, seed, sample):
    dt, _ = sample(sim.x, K, X_err=sim.x_err, random_seed=seed, **FIT_SIZE)
    post = dt.posterior
    draws = {v: post[v].values.reshape(-1, K) for v in PARAMS}
    o = np.argsort(draws["means"].mean(axis=0))  # the model orders the means already
    draws = {v: d[:, o] for v, d in draws.items()}
    return Recovered(*(draws[v].mean(axis=0) for v in PARAMS), draws=draws)


#: the estimators the harness runs: EM ignores any measurement errors, XD
#: (GaussianMixtureEM with X_err) and fit use them
ESTIMATORS = {"em": _em, "xd": _xd, "fit": _fit}


def labels_known_se(sim):
    """Standard errors of the MLEs of weights, means and sigmas had the labels been known.

    With point i of component k observed with variance ``v_i = sigma_k**2 + e_i**2``
    (``e_i = 0`` without errors): the weight's is the binomial ``sqrt(w (1 - w) / n)``;
    the mean's and the intrinsic sigma's are the inverse square roots of their Fisher
    informations ``sum_i 1 / v_i`` and ``sum_i 2 sigma_k**2 / v_i**2``.

    Components in increasing order of the means, as everywhere in the harness.
    """
    n, K = len(sim.x), len(sim.weights)
    err = np.zeros(n) if sim.x_err is None else sim.x_err
    se = {v: np.empty(K) for v in PARAMS}
    for k in range(K):
        v = sim.sigmas[k] ** 2 + err[sim.labels == k] ** 2
        se["weights"][k] = np.sqrt(sim.weights[k] * (1 - sim.weights[k]) / n)
        se["means"][k] = 1 / np.sqrt(np.sum(1 / v))
        se["sigmas"][k] = 1 / np.sqrt(np.sum(2 * sim.sigmas[k] ** 2 / v**2))
    o = np.argsort(sim.means)
    return {v: s[o] for v, s in se.items()}


def truth_of(sim):
    """The generating parameters, in increasing order of the means."""
    o = np.argsort(sim.means)
    return {"weights": sim.weights[o], "means": sim.means[o], "sigmas": sim.sigmas[o]}


class RecoveryHarness:
    """What the recovery tests share: run an estimator, compare with the truth."""

    estimators = tuple(ESTIMATORS)
    truth = staticmethod(truth_of)

    def __init__(self, sample):
        self._sample = sample

    def estimate(self, method, sim, K, seed):
        """Fit ``sim`` with ``method`` ("em", "xd" or "fit") and K components."""
        return ESTIMATORS[method](sim, K, seed, self._sample)

    @staticmethod
    def assert_within_se(est, sim, z):
        """Every point estimate within ``z`` labels-known standard errors of the truth."""
        se, truth = labels_known_se(sim), truth_of(sim)
        for v in PARAMS:
            got = getattr(est, v)
            dev = np.abs(got - truth[v]) / se[v]
            assert np.all(dev <= z), (v, got, truth[v], dev)

    @staticmethod
    def assert_posterior_covers(draws, truth, z):
        """The truth within ``z`` posterior sds of the posterior mean, for every parameter.

        ``draws`` maps names to arrays whose last axis is the component, ``truth`` the
        same names to arrays of shape (K,).
        """
        for v, t in truth.items():
            d = np.asarray(draws[v]).reshape(-1, len(t))
            m, sd = d.mean(axis=0), d.std(axis=0)
            assert np.all(np.abs(m - t) < z * sd), (v, m, t, sd)

    @staticmethod
    def assert_posterior_sd_near_se(est, sim, low, high):
        """Every posterior sd between ``low`` and ``high`` labels-known standard errors."""
        se = labels_known_se(sim)
        for v, d in est.draws.items():
            ratio = d.std(axis=0) / se[v]
            assert np.all((low <= ratio) & (ratio <= high)), (v, ratio)


@pytest.fixture(scope="session")
def recovery(sample):
    """The shared recovery harness (:class:`RecoveryHarness`)."""
    return RecoveryHarness(sample)
