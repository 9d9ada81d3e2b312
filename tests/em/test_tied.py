"""covariance_type="tied": one covariance shared by all components (mclust's EEE).

Checked against scikit-learn's tied GaussianMixture (an independent implementation of
the same M-step): on well-separated data from a tied model both reach the same maximum,
so the log-likelihoods agree to 1e-6 relative and the shared covariances to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import DataError, GaussianMixtureEM

sklearn_mixture = pytest.importorskip("sklearn.mixture")


def _tied_data(rng, n_per=300, d=2):
    cov = np.array([[1.0, 0.6], [0.6, 0.8]])[:d, :d]
    centers = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]])[:, :d]
    return np.vstack([rng.multivariate_normal(c, cov, size=n_per) for c in centers])


def test_tied_matches_sklearn(rng):
    X = _tied_data(rng)
    gm = GaussianMixtureEM(3, covariance_type="tied", random_seed=0).fit(X)
    sk = sklearn_mixture.GaussianMixture(3, covariance_type="tied", n_init=10, tol=1e-10,
                                         max_iter=2000, random_state=0).fit(X)
    assert gm.covariances_.shape == (3, 2, 2)
    np.testing.assert_allclose(gm.covariances_, gm.covariances_[[0, 0, 0]], rtol=0, atol=0)
    assert gm.loglik_ >= sk.score(X) * len(X) - 1e-6 * abs(gm.loglik_)
    np.testing.assert_allclose(gm.covariances_[0], sk.covariances_, rtol=1e-4)


def test_tied_counts_one_covariance_in_bic(rng):
    X = _tied_data(rng)
    n, d, K = X.shape[0], 2, 3
    gm = GaussianMixtureEM(K, covariance_type="tied", random_seed=0).fit(X)
    n_par = d * (d + 1) // 2 + K * d + K - 1
    np.testing.assert_allclose(gm.bic(X), -2 * gm.loglik_ + n_par * np.log(n), rtol=1e-12)


def test_bic_prefers_tied_on_tied_data_and_full_on_unequal_shapes(rng):
    # The choice between the forms: with a shared covariance "tied" saves 6 parameters
    # at no cost in fit; with three very different shapes it cannot fit them (n = 900)
    X = _tied_data(rng)
    bic = {t: GaussianMixtureEM(3, covariance_type=t, random_seed=0).fit(X).bic(X)
           for t in ("full", "tied")}
    assert bic["tied"] < bic["full"]
    shapes = [np.diag([2.0, 0.05]), np.diag([0.05, 2.0]), np.eye(2) * 0.3]
    centers = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]]
    Y = np.vstack([rng.multivariate_normal(c, s, size=300) for c, s in zip(centers, shapes,
                                                                           strict=True)])
    bic = {t: GaussianMixtureEM(3, covariance_type=t, random_seed=0).fit(Y).bic(Y)
           for t in ("full", "tied")}
    assert bic["full"] < bic["tied"]


def test_tied_one_feature_shares_the_variance(rng):
    x = np.concatenate([rng.normal(0, 1, 400), rng.normal(5, 1, 300)])
    gm = GaussianMixtureEM(2, covariance_type="tied", random_seed=0).fit(x)
    sk = sklearn_mixture.GaussianMixture(2, covariance_type="tied", n_init=5, tol=1e-10,
                                         random_state=0).fit(x[:, None])
    assert gm.covariances_[0, 0, 0] == gm.covariances_[1, 0, 0]
    np.testing.assert_allclose(gm.covariances_[0, 0, 0], sk.covariances_[0, 0], rtol=1e-4)


def test_tied_with_measurement_errors_stays_tied_and_climbs(rng):
    X = _tied_data(rng, n_per=200)
    err = rng.uniform(0.1, 0.5, size=X.shape)
    gm = GaussianMixtureEM(3, covariance_type="tied", random_seed=0).fit(X, X_err=err)
    np.testing.assert_array_equal(gm.covariances_[1], gm.covariances_[0])
    assert np.all(np.diff(gm.loglik_trace_) >= -1e-9 * abs(gm.loglik_))
    # the errors are deconvolved: the shared intrinsic covariance is smaller than the
    # one fitted to the noisy points as if they were exact
    plain = GaussianMixtureEM(3, covariance_type="tied", random_seed=0).fit(X)
    assert np.trace(gm.covariances_[0]) < np.trace(plain.covariances_[0])


def test_tied_refuses_fixed_means_and_covariances(rng):
    X = _tied_data(rng, n_per=50)
    with pytest.raises(DataError, match="not supported with covariance_type='tied'"):
        GaussianMixtureEM(3, covariance_type="tied", fixed={"means": {0: [0.0, 0.0]}}).fit(X)
    gm = GaussianMixtureEM(3, covariance_type="tied", fixed={"weights": {0: 0.4}},
                           random_seed=0).fit(X)
    assert gm.weights_[0] == pytest.approx(0.4)
