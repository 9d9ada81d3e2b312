"""Missing values (NaN) in GaussianMixtureEM, marginalised exactly (bayesgmm/em/missing.py).

References are independent of the code under test: scipy's multivariate normal on each
point's observed features, and the limit in which a missing feature is an observed one
with an enormous measurement error (the existing XD kernels).
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal as mvn
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bayesgmm import DataError, GaussianMixtureEM
from bayesgmm.em import estimator as est_mod
from bayesgmm.em import iteration as it_mod
from bayesgmm.em.iteration import Params, Stepper
from bayesgmm.em.missing import Missing

MEANS = np.array([[0.0, 0.0], [4.0, 3.0]])
COVS = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.6, -0.2], [-0.2, 1.5]]])
WEIGHTS = np.array([0.6, 0.4])


def _data(n=2000, seed=0, frac=0.3):
    """Two components in D = 2; ``frac`` of the entries removed at random, then the rows
    left with nothing dropped (a row with every feature missing is an error)."""
    rng = np.random.default_rng(seed)
    lab = (rng.random(n) < WEIGHTS[1]).astype(int)
    X = np.empty((n, 2))
    for k in range(2):
        X[lab == k] = rng.multivariate_normal(MEANS[k], COVS[k], size=int(np.sum(lab == k)))
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    keep = ~np.isnan(Xm).all(axis=1)
    return X[keep], Xm[keep], rng


def _reference_terms(gm, X, S=None):
    """log(w_k) + log N(x_o | mu_k[o], (V_k + S_i)[o, o]) by scipy, shape (n, K)."""
    out = np.empty((X.shape[0], gm.n_components))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(gm.n_components):
            cov = gm.covariances_[k] + (0.0 if S is None else S[i])
            out[i, k] = np.log(gm.weights_[k]) + mvn(
                gm.means_[k][o], cov[np.ix_(o, o)]).logpdf(x[o])
    return out


@pytest.fixture(scope="module")
def fitted():
    X, Xm, rng = _data()
    E = rng.uniform(0.1, 0.6, Xm.shape)  # per-point error sds
    E[np.isnan(Xm)] = np.nan  # an error entry of a missing feature is ignored
    gm = GaussianMixtureEM(2, random_seed=0).fit(Xm)
    gm_err = GaussianMixtureEM(2, random_seed=0).fit(Xm, X_err=E)
    return X, Xm, E, gm, gm_err


def test_complete_data_never_touch_the_missing_path(monkeypatch):
    # without NaN the new code must not run at all, so complete data keep every bit
    # (the bitcheck covers the seeds' data; this covers fit and every prediction)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3)) + np.repeat([[0, 0, 0], [4, 0, 1]], 150, axis=0)
    E = rng.uniform(0.1, 0.3, X.shape)
    before = GaussianMixtureEM(2, random_seed=1).fit(X, X_err=E)
    p0 = before.predict_proba(X, X_err=E)
    s0 = before.score_samples(X, X_err=E)
    d0 = before.deconvolve(X, X_err=E)

    def boom(*a, **k):
        raise AssertionError("the missing-data path ran on complete data")

    for mod in (it_mod, est_mod):
        monkeypatch.setattr(mod, "Missing", boom)
    monkeypatch.setattr(est_mod, "nan_standardizer", boom)
    monkeypatch.setattr(est_mod, "observed_log_scale", boom)
    after = GaussianMixtureEM(2, random_seed=1).fit(X, X_err=E)
    for a in ("weights_", "means_", "covariances_", "loglik_trace_"):
        np.testing.assert_array_equal(getattr(after, a), getattr(before, a))
    np.testing.assert_array_equal(after.predict_proba(X, X_err=E), p0)
    np.testing.assert_array_equal(after.score_samples(X, X_err=E), s0)
    np.testing.assert_array_equal(after.deconvolve(X, X_err=E)[1], d0[1])


@pytest.mark.parametrize("errors", [False, True])
def test_loglik_matches_scipy_on_observed_features(fitted, errors):
    _, Xm, E, gm, gm_err = fitted
    model = gm_err if errors else gm
    S = None
    if errors:
        Ez = np.where(np.isnan(E), 0.0, E)
        S = np.stack([np.diag(e**2) for e in Ez])
    ref = logsumexp(_reference_terms(model, Xm, S), axis=1)
    got = model.score_samples(Xm, X_err=E if errors else None)
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    assert model.loglik_ == pytest.approx(ref.sum(), rel=1e-9)
    assert model.score(Xm, X_err=E if errors else None) == pytest.approx(ref.mean(), rel=1e-9)


def test_full_error_covariances_with_missing_entries():
    # (n, D, D) errors: the rows and columns of missing features are ignored, even NaN
    _, Xm, rng = _data(n=400, seed=5)
    A = rng.normal(scale=0.3, size=(Xm.shape[0], 2, 2))
    S = A @ np.swapaxes(A, 1, 2) + 0.01 * np.eye(2)
    S_nan = S.copy()
    r, c = np.nonzero(np.isnan(Xm))
    S_nan[r, c, :] = np.nan
    S_nan[r, :, c] = np.nan
    gm = GaussianMixtureEM(2, random_seed=0).fit(Xm, X_err=S_nan)
    ref = logsumexp(_reference_terms(gm, Xm, S), axis=1)
    np.testing.assert_allclose(gm.score_samples(Xm, X_err=S_nan), ref, rtol=1e-9)
    assert gm.loglik_ == pytest.approx(ref.sum(), rel=1e-9)


def test_estep_statistics_equal_the_huge_error_limit():
    # a missing feature is the limit of an observed one (any value) with an error
    # variance -> inf: the complete-data XD kernel with variance 1e12 must give the same
    # statistics to ~1e-10 relative (the leftover is O(V / 1e12))
    _, Xm, rng = _data(n=300, seed=2)
    Z = (Xm - np.nanmean(Xm, 0)) / np.nanstd(Xm, 0)
    S = np.stack([np.diag(rng.uniform(0.01, 0.2, 2)) for _ in Z])
    w = rng.uniform(0.5, 2.0, Z.shape[0])
    p = Params(np.array([0.3, 0.7]), np.array([[-0.5, 0.2], [0.6, -0.1]]),
               np.array([[[0.5, 0.1], [0.1, 0.4]], [[0.8, -0.3], [-0.3, 0.9]]]))
    miss = Stepper(Z, w, S, "full", 0.0)
    nan = np.isnan(Z)
    big = S.copy()
    r, c = np.nonzero(nan)
    big[r, c, c] = 1e12
    lim = Stepper(np.where(nan, 0.0, Z), w, big, "full", 0.0)
    assert miss.missing is not None and lim.missing is None
    _, new_m, _ = miss.step(p)
    _, new_l, _ = lim.step(p)
    for a in ("weights", "means", "covs"):
        np.testing.assert_allclose(getattr(new_m, a), getattr(new_l, a), rtol=1e-8, atol=1e-10)


def test_recovers_the_mixture_and_agrees_with_the_full_data_fit(fitted):
    X, Xm, _, gm, _ = fitted
    full = GaussianMixtureEM(2, random_seed=0).fit(X)
    o_m, o_f = np.argsort(gm.means_[:, 0]), np.argsort(full.means_[:, 0])
    # n ~ 1,800 rows, ~30% of entries missing: each component's mean has a standard
    # error ~ sqrt(1.5 / 0.7 / 700) ~ 0.055 per feature, a variance ~ sqrt(2 / 500) ~
    # 0.06 of its size, a weight ~ 0.012; the tolerances are ~4 of those
    np.testing.assert_allclose(gm.weights_[o_m], WEIGHTS, atol=0.05)
    np.testing.assert_allclose(gm.means_[o_m], MEANS, atol=0.2)
    np.testing.assert_allclose(gm.covariances_[o_m], COVS, atol=0.3)
    # the full-data fit sees a superset of the values: the two differ by less than
    # either from the truth (the same seed's sampling error is shared)
    np.testing.assert_allclose(gm.weights_[o_m], full.weights_[o_f], atol=0.03)
    np.testing.assert_allclose(gm.means_[o_m], full.means_[o_f], atol=0.12)
    np.testing.assert_allclose(gm.covariances_[o_m], full.covariances_[o_f], atol=0.2)
    assert gm.converged_ and not gm.degenerate_


@pytest.mark.parametrize("errors", [False, True])
def test_loglik_never_falls(fitted, errors):
    model = fitted[4] if errors else fitted[3]
    trace = model.loglik_trace_
    assert trace.size > 3
    # EM for incomplete data is EM: monotone up to rounding of a sum over n points
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[:-1]))


@pytest.mark.parametrize("diag", ["diag", "spherical"])
def test_other_covariance_types_with_missing_values(diag):
    _, Xm, _ = _data(n=600, seed=4)
    gm = GaussianMixtureEM(2, covariance_type=diag, random_seed=0).fit(Xm)
    off = gm.covariances_[:, 0, 1]
    np.testing.assert_array_equal(off, 0.0)
    if diag == "spherical":
        np.testing.assert_allclose(gm.covariances_[:, 0, 0], gm.covariances_[:, 1, 1],
                                   rtol=1e-12)
    ref = logsumexp(_reference_terms(gm, Xm), axis=1)
    assert gm.loglik_ == pytest.approx(ref.sum(), rel=1e-9)
    # monotone after the first step: the starts' covariances are full, and the first
    # M-step's projection onto diagonal/spherical ones may lower the likelihood (as it
    # does without missing values)
    tr = gm.loglik_trace_[1:]
    assert np.all(np.diff(tr) >= -1e-9 * np.abs(tr[:-1]))


def test_all_missing_row_and_infinity_are_data_errors():
    X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, np.nan], [0.0, 1.0]])
    with pytest.raises(DataError, match=r"1 row\(s\) with every feature missing \(NaN\), "
                                        r"first at row 1.*drop it"):
        GaussianMixtureEM(1).fit(X)
    X[1] = [np.inf, 1.0]
    with pytest.raises(DataError, match=r"1 of them infinite: an infinite value cannot be"):
        GaussianMixtureEM(1).fit(X)
    with pytest.raises(DataError, match="feature 1 of X has no observed value"):
        GaussianMixtureEM(1).fit([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    with pytest.raises(DataError, match="feature 1 of X is constant"):
        GaussianMixtureEM(1).fit([[1.0, 5.0], [2.0, np.nan], [3.0, 5.0]])
    gm = GaussianMixtureEM(1).fit([[1.0, 2.0], [2.0, np.nan], [3.0, 5.0], [0.0, 1.0]])
    with pytest.raises(DataError, match="every feature missing"):
        gm.predict([[np.nan, np.nan]])
    with pytest.raises(DataError, match="NaN or infinite"):  # one feature: a NaN is a row
        GaussianMixtureEM(1).fit([1.0, np.nan, 3.0])


def test_sample_weight_counts_rows_with_missing_values():
    _, Xm, rng = _data(n=300, seed=6)
    counts = rng.integers(0, 3, Xm.shape[0])
    counts[:2] = 1  # keep both features observed somewhere
    init = {"means": MEANS, "weights": WEIGHTS, "covariances": COVS}
    weighted = GaussianMixtureEM(2, init=init).fit(Xm, sample_weight=counts)
    repeated = GaussianMixtureEM(2, init=init).fit(np.repeat(Xm, counts, axis=0))
    # the same start and the same sums (weights count points): equal to rounding
    for a in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(weighted, a), getattr(repeated, a),
                                   rtol=1e-6, atol=1e-8)
    assert weighted.loglik_ == pytest.approx(repeated.loglik_, rel=1e-9)
    assert weighted.n_samples_fit_ == counts.sum()
    s = weighted.score_samples(Xm)
    assert weighted.score(Xm, sample_weight=counts) == pytest.approx(
        np.sum(counts * s) / counts.sum(), rel=1e-12)


def test_predict_proba_matches_reference_responsibilities(fitted):
    _, Xm, _, gm, _ = fitted
    terms = _reference_terms(gm, Xm[:200])
    ref = np.exp(terms - logsumexp(terms, axis=1, keepdims=True))
    got = gm.predict_proba(Xm[:200])
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-14)
    np.testing.assert_array_equal(gm.predict(Xm[:200]), np.argmax(ref, axis=1))


def test_far_point_with_a_missing_feature_still_gets_a_component(fitted):
    gm = fitted[3]
    proba = gm.predict_proba([[1e200, np.nan], [np.nan, -1e200]])
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("errors", [False, True])
def test_deconvolve_fills_missing_features(fitted, errors):
    _, Xm, E, gm, gm_err = fitted
    model = gm_err if errors else gm
    Xs = Xm[:100]
    Es = E[:100] if errors else None
    mean, cov = model.deconvolve(Xs, X_err=Es)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))
    # reference: a missing feature is an observed one with an enormous error (the
    # complete-data XD kernel), here at the feature's mean; O(1e-10) relative leftover
    nan = np.isnan(Xs)
    sd = np.where(nan, 1e5 * np.sqrt(model.covariances_.max()), Es if errors else 0.0)
    X0 = np.where(nan, np.nanmean(Xm, axis=0), Xs)
    m_ref, c_ref = model.deconvolve(X0, X_err=sd)
    np.testing.assert_allclose(mean, m_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cov, c_ref, rtol=1e-6, atol=1e-6)
    if not errors:  # exact observed features are returned as they are, with no spread
        np.testing.assert_allclose(mean[~nan], Xs[~nan], rtol=1e-12)
        assert np.all(cov[:, 0, 0][~nan[:, 0]] < 1e-10)


def test_deconvolve_still_needs_errors_without_missing_values(fitted):
    gm = fitted[3]
    with pytest.raises(DataError, match="deconvolve needs X_err"):
        gm.deconvolve(fitted[0][:5])


def test_pipeline_without_imputer(fitted):
    # StandardScaler passes NaN through (it ignores them), the mixture marginalises them
    _, Xm, _, gm, _ = fitted
    pipe = Pipeline([("scale", StandardScaler()),
                     ("gm", GaussianMixtureEM(2, random_seed=0))]).fit(Xm)
    labels = pipe.predict(Xm)
    assert labels.shape == (Xm.shape[0],)
    # the same partition as the fit in data units, up to the labels' order
    agree = np.mean(labels == gm.predict(Xm))
    assert max(agree, 1 - agree) > 0.99
    assert GaussianMixtureEM().__sklearn_tags__().input_tags.allow_nan


def test_missing_groups_by_pattern():
    Z = np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 2.0], [np.nan, np.nan, 1.0],
                  [3.0, np.nan, 0.0]])
    miss = Missing(Z, None)
    np.testing.assert_array_equal(miss.complete, [1])
    np.testing.assert_array_equal(miss.rows, [0, 2, 3])
    pats = sorted((tuple(obs), tuple(miss.rows[idx])) for obs, idx, _, _ in miss.groups)
    assert pats == [((0, 2), (0, 3)), ((2,), (2,))]


def _stats_by_group(miss, w, logpi, mu, V):
    """The E-step sums of the incomplete rows group by group in NumPy (the path the
    compiled kernels_md.xd_missing replaced): log-likelihood, nk, s1, s2."""
    from bayesgmm.em.missing import _component

    K, D = mu.shape
    lp, ok = miss.logprob(logpi, mu, V)
    assert ok
    norm = logsumexp(lp, axis=1)
    wr = w[miss.rows]
    resp = np.exp(lp - norm[:, None]) * wr[:, None]
    nk, s1, s2 = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    for obs, idx, x, S in miss.groups:
        for k in range(K):
            r = resp[idx, k]
            _, db, B = _component(x, S, obs, mu[k], V[k], moments=True)
            nk[k] += r.sum()
            s1[k] += r @ db
            s2[k] += np.einsum("i,ia,ib->ab", r, db, db)
            s2[k] += B * r.sum() if B.ndim == 2 else np.einsum("i,iab->ab", r, B)
    return float(np.sum(wr * norm)), nk, s1, s2


@pytest.mark.parametrize("errors", [False, True])
def test_compiled_estep_matches_the_group_by_group_reference(errors):
    # D = 4, every pattern of 1-3 observed features present, weights, K = 3; with full
    # error covariances or none. Both are exact float64 computations of the same sums
    # (Cholesky solves either way), so they agree to 1e-10 relative.
    rng = np.random.default_rng(5)
    n, d, K = 400, 4, 3
    Z = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    Z[rng.random((n, d)) < 0.35] = np.nan
    Z = Z[~np.isnan(Z).all(axis=1)]
    n = Z.shape[0]
    S = None
    if errors:
        G = rng.normal(size=(n, d, d)) * 0.3
        S = G @ np.swapaxes(G, 1, 2)
    w = rng.uniform(0.5, 2.0, n)
    A = rng.normal(size=(K, d, d))
    V = A @ np.swapaxes(A, 1, 2) / d + 0.3 * np.eye(d)
    mu = rng.normal(size=(K, d))
    logpi = np.log(rng.dirichlet(np.full(K, 2.0)))
    miss = Missing(Z, S)
    assert len(miss.groups) >= 10
    # both compiled paths: patterns with >= BLOCK_MIN rows blocked, the rarer point by point
    assert miss.blocked and miss.rare.size
    ll, nk, s1, s2, ok = miss.stats(w, logpi, mu, V)
    ll_ref, nk_ref, s1_ref, s2_ref = _stats_by_group(miss, w, logpi, mu, V)
    assert ok
    assert ll == pytest.approx(ll_ref, rel=1e-12)
    for got, want in ((nk, nk_ref), (s1, s1_ref), (s2, s2_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    V_bad = V.copy()
    V_bad[1] = np.diag([1.0, 1.0, 1.0, -3.0])  # indefinite where feature 3 is observed
    ll_bad, *_, ok_bad = miss.stats(w, logpi, mu, V_bad)
    assert not ok_bad and ll_bad == -np.inf
