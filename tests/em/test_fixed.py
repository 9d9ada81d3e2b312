"""Fixed parameters (``GaussianMixtureEM(fixed=...)``), checked against a constrained
optimiser: SciPy maximising the same log-likelihood over the free parameters only."""

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from bayesgmm import GaussianMixtureEM
from bayesgmm.errors import DataError


def test_fixed_background_with_errors_matches_an_optimiser():
    # 1-D extreme deconvolution: a known broad background (weight, mean and variance
    # fixed) and one free component. The optimiser maximises the same likelihood over
    # the free mean and log-variance (Nelder-Mead, tight tolerances); n = 500, so the
    # maximum is sharp and both must agree to 1e-4 in the parameters.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 3, 300), rng.normal(2, 0.5, 200)])
    e = rng.uniform(0.2, 0.6, x.size)
    gm = GaussianMixtureEM(2, tol=1e-13, fixed={
        "weights": {0: 0.5}, "means": {0: [0.0]}, "covariances": {0: 9.0}}).fit(x, X_err=e)

    def nll(t):
        return -np.log(0.5 * norm.pdf(x, 0, np.sqrt(9 + e**2))
                       + 0.5 * norm.pdf(x, t[0], np.sqrt(np.exp(t[1]) + e**2))).sum()

    r = minimize(nll, [1.0, 0.0], method="Nelder-Mead",
                 options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000})
    np.testing.assert_allclose(gm.weights_, [0.5, 0.5], atol=1e-15)
    assert gm.means_[0, 0] == 0.0 and gm.covariances_[0, 0, 0] == pytest.approx(9.0, 1e-12)
    np.testing.assert_allclose(gm.means_[1, 0], r.x[0], atol=1e-4)
    np.testing.assert_allclose(gm.covariances_[1, 0, 0], np.exp(r.x[1]), rtol=1e-3)
    np.testing.assert_allclose(gm.loglik_, -r.fun, atol=1e-6)


def test_fixed_means_in_two_dimensions_match_an_optimiser():
    # 2-D, full covariances, both means fixed (off the data's true centres, so the
    # constraint binds); free: one weight (logit) and two Cholesky factors (6 numbers).
    # BFGS from EM's answer must not find a higher value (EM's is the constrained
    # maximum), and BFGS from a neutral start must reach the same value (1e-6).
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 250),
                        rng.multivariate_normal([3, 1], [[0.5, -0.2], [-0.2, 0.8]], 150)])
    mu = np.array([[0.3, -0.2], [2.6, 1.3]])
    gm = GaussianMixtureEM(2, tol=1e-13, fixed={"means": mu}).fit(X)
    np.testing.assert_array_equal(gm.means_, mu)

    def unpack(t):
        w = 1 / (1 + np.exp(-t[0]))
        covs = []
        for a, b, c in (t[1:4], t[4:7]):
            L = np.array([[np.exp(a), 0], [b, np.exp(c)]])
            covs.append(L @ L.T)
        return np.array([w, 1 - w]), covs

    def nll(t):
        w, covs = unpack(t)
        comp = np.column_stack([np.log(w[k]) + multivariate_normal(mu[k], covs[k]).logpdf(X)
                                for k in range(2)])
        return -logsumexp(comp, axis=1).sum()

    def pack(w, covs):
        t = [np.log(w[0] / w[1])]
        for c in covs:
            L = np.linalg.cholesky(c)
            t += [np.log(L[0, 0]), L[1, 0], np.log(L[1, 1])]
        return np.array(t)

    at_em = minimize(nll, pack(gm.weights_, gm.covariances_), method="BFGS",
                     options={"gtol": 1e-9})
    neutral = minimize(nll, pack([0.5, 0.5], [np.eye(2), np.eye(2)]), method="BFGS",
                       options={"gtol": 1e-9})
    assert -at_em.fun <= gm.loglik_ + 1e-6
    np.testing.assert_allclose(gm.loglik_, -neutral.fun, atol=1e-6)
    w, covs = unpack(neutral.x)
    np.testing.assert_allclose(gm.weights_, w, atol=1e-5)
    np.testing.assert_allclose(gm.covariances_, covs, atol=1e-4)


def test_fixed_weights_are_kept_and_free_ones_share_the_rest():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(-3, 1, (200, 2)), rng.normal(0, 1, (200, 2)),
                        rng.normal(3, 1, (200, 2))])
    gm = GaussianMixtureEM(3, random_seed=0, fixed={"weights": {1: 0.1}}).fit(X)
    assert gm.weights_[1] == pytest.approx(0.1, abs=1e-15)
    assert gm.weights_.sum() == pytest.approx(1.0, abs=1e-12)
    # a fixed weight is not estimated: one parameter fewer for BIC
    free = GaussianMixtureEM(3, random_seed=0).fit(X)
    assert gm._n_parameters() == free._n_parameters() - 1
    every = GaussianMixtureEM(3, random_seed=0, fixed={"weights": [0.2, 0.3, 0.5]}).fit(X)
    np.testing.assert_allclose(every.weights_, [0.2, 0.3, 0.5], atol=1e-15)
    assert every._n_parameters() == free._n_parameters() - 2  # K - 1 weights are free


def test_fixed_diag_covariance_and_sklearn_clone():
    from sklearn.base import clone

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 2)) * [1.0, 2.0]
    gm = GaussianMixtureEM(2, covariance_type="diag", random_seed=0,
                           fixed={"covariances": {0: [1.0, 4.0]}})
    gm.fit(X)
    np.testing.assert_allclose(gm.covariances_[0], np.diag([1.0, 4.0]), rtol=1e-12)
    assert clone(gm).get_params()["fixed"] == {"covariances": {0: [1.0, 4.0]}}


@pytest.mark.parametrize("fixed, match", [
    ({"mean": {0: 1.0}}, "unknown key"),
    ({"means": {2: [0.0]}}, "component indices 0..1"),
    ({"weights": {0: 1.0}}, "in \\(0, 1\\)"),
    ({"weights": [0.3, 0.3]}, "sum to 0.6, not 1"),
    ({"means": {0: [0.0, 1.0]}}, "1 finite number"),
    ({"covariances": {0: -1.0}}, "positive definite"),
    ("background", "must be a dict"),
])
def test_bad_fixed_is_a_clear_error(fixed, match):
    x = np.random.default_rng(0).normal(size=100)
    with pytest.raises(DataError, match=match):
        GaussianMixtureEM(2, fixed=fixed).fit(x)


def test_fixed_diag_form_is_checked():
    X = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(DataError, match="must be diagonal"):
        GaussianMixtureEM(2, covariance_type="diag",
                          fixed={"covariances": {0: [[1.0, 0.5], [0.5, 1.0]]}}).fit(X)


def test_fixed_mean_with_errors_frees_the_variance_about_it():
    # XD with the mean of component 1 fixed off its data (2.5 instead of about 2): the
    # variance must be the scatter about 2.5 (deconvolved), which the optimiser over
    # (weight logit, mean 0, both log-variances) confirms to 1e-4. n = 500, seed 4.
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(-1, 1, 300), rng.normal(2, 0.5, 200)])
    e = rng.uniform(0.2, 0.6, x.size)
    gm = GaussianMixtureEM(2, tol=1e-13, random_seed=0,
                           fixed={"means": {1: [2.5]}}).fit(x, X_err=e)

    def nll(t):
        w = 1 / (1 + np.exp(-t[0]))
        return -np.log(w * norm.pdf(x, t[1], np.sqrt(np.exp(t[2]) + e**2))
                       + (1 - w) * norm.pdf(x, 2.5, np.sqrt(np.exp(t[3]) + e**2))).sum()

    order = np.argsort(gm.means_[:, 0])
    start = [0.0, -0.5, 0.0, 0.0]
    r = minimize(nll, start, method="Nelder-Mead",
                 options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40_000})
    assert gm.means_[1, 0] == 2.5 and order.tolist() == [0, 1]
    np.testing.assert_allclose(gm.loglik_, -r.fun, atol=1e-6)
    np.testing.assert_allclose(gm.covariances_[:, 0, 0], np.exp(r.x[2:]), rtol=1e-3)
