"""The D-dimensional PyMC model (bayes/model_md.py) against a SciPy reference.

The model's log-density at random parameter values, without the transforms' Jacobians,
must equal priors + likelihood written independently with SciPy (Dirichlet, Normal,
HalfNormal, the LKJ density from Lewandowski, Kurowicka & Joe 2009, and the mixture of
``scipy.stats.multivariate_normal`` over each point's observed features) to 1e-8
relative: only rounding separates them.
"""

import numpy as np
import pymc as pm
import pytest
from scipy import stats
from scipy.special import betaln, logsumexp

import bayesgmm
from bayesgmm import DataError, Priors
from bayesgmm.bayes.model_md import missing_patterns

FAST = {"mode": "FAST_COMPILE"}  # the same graph, compiled in seconds


def _data(n, D, seed, missing=0.0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0.0, 1.0, (n // 2, D)),
                   rng.normal(3.0, 0.7, (n - n // 2, D))]) * np.arange(1, D + 1) + 10.0
    if missing:
        hole = rng.random((n, D)) < missing
        hole[:, 0] &= ~hole[:, 1:].all(axis=1)  # keep one value in every row
        X[hole] = np.nan
    return X


def _lkj_chol_logp(L, eta):
    """log density of the Cholesky factor L of an LKJ(eta) correlation matrix.

    p(R) = det(R)^(eta - 1) / c_D(eta), c_D from Lewandowski et al. (2009), eq. 16;
    the map from L's strictly lower entries to R's has Jacobian prod_i L_ii^(D - i).
    """
    D = L.shape[0]
    log_c = sum((2 * eta - 2 + D - k) * (D - k) * np.log(2.0)
                + (D - k) * betaln(eta + (D - k - 1) / 2, eta + (D - k - 1) / 2)
                for k in range(1, D))
    i = np.arange(1, D + 1)
    return -log_c + np.sum((2 * (eta - 1) + D - i) * np.log(np.diag(L)))


def _random_point(K, D, rng):
    w = rng.dirichlet(np.full(K, 2.0))
    mu = rng.normal(0.0, 1.0, (K, D))
    sd = rng.uniform(0.3, 1.5, (K, D))
    chol = []
    for _ in range(K):
        A = rng.normal(size=(D, D + 2))
        S = A @ A.T
        d = np.sqrt(np.diag(S))
        chol.append(np.linalg.cholesky(S / np.outer(d, d)))
    return w, mu, sd, np.array(chol)


def _reference(X, cov, hyper, w, mu, sd, chol):
    """Priors (standardized units) + mixture log-likelihood (data units), with SciPy."""
    loc, scale = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    lp = stats.dirichlet.logpdf(w, hyper["weights_alpha"])
    lp += stats.norm.logpdf(mu, hyper["means_mu"], hyper["means_sigma"]).sum()
    lp += stats.halfnorm.logpdf(sd, scale=hyper["sigmas_sigma"]).sum()
    lp += sum(_lkj_chol_logp(L, hyper["corr_eta"]) for L in chol)
    means = loc + scale * mu
    covs = [np.outer(scale * s, scale * s) * (L @ L.T) for s, L in zip(sd, chol, strict=True)]
    for i, row in enumerate(X):
        o = ~np.isnan(row)
        S = np.zeros((o.sum(), o.sum())) if cov is None else cov[i][np.ix_(o, o)]
        comp = [np.log(w[k]) + stats.multivariate_normal.logpdf(
            row[o], means[k, o], covs[k][np.ix_(o, o)] + S) for k in range(len(w))]
        lp += logsumexp(comp)
    return lp


def _model_logp(model, w, mu, sd, chol):
    values = {"weights": w, "means_std": mu, "sds_std": sd, "corr_chol": chol}
    point = {}
    for rv in model.free_RVs:
        tr = model.rvs_to_transforms[rv]
        value = values[rv.name]
        if tr is not None:
            value = tr.forward(value, *rv.owner.inputs).eval()
        point[model.rvs_to_values[rv].name] = value
    return model.compile_logp(jacobian=False, **FAST)(point)


def _full_errors(n, D, rng):
    A = rng.normal(0.0, 0.3, (n, D, D))
    return A @ np.swapaxes(A, 1, 2) + 0.05 * np.eye(D)


CASES = {
    "2d": dict(D=2, K=2, errors=None, missing=0.0),
    "3d-sds-missing": dict(D=3, K=3, errors="sds", missing=0.3),
    "3d-cov-missing": dict(D=3, K=2, errors="cov", missing=0.3),
}


@pytest.mark.parametrize("case", CASES)
def test_logp_matches_scipy(case):
    c = CASES[case]
    D, K, n = c["D"], c["K"], 24
    rng = np.random.default_rng(13)
    X = _data(n, D, 1, c["missing"])
    if c["errors"] == "sds":
        X_err = rng.uniform(0.1, 1.0, (n, D))
        cov = np.zeros((n, D, D))
        cov[:, np.arange(D), np.arange(D)] = X_err**2
        X_err[np.isnan(X)] = np.nan  # errors of missing values may be missing too
    elif c["errors"] == "cov":
        X_err = cov = _full_errors(n, D, rng)
    else:
        X_err = cov = None
    # per feature, as shape (1, D): a vector of length K = D would be ambiguous
    priors = Priors(weights_alpha=1.5, sigmas_sigma=2.0 * np.arange(1, D + 1)[None],
                    corr_eta=1.7)
    model = bayesgmm.build_model(X, K, X_err=X_err, priors=priors)
    loc, scale = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    hyper = priors.standardized_md(K, loc, scale)
    # the per-feature prior really is per feature: 2 * (j + 1) data units
    np.testing.assert_allclose(hyper["sigmas_sigma"], np.tile(2.0 * np.arange(1, D + 1)
                                                              / scale, (K, 1)))
    for seed in range(3):
        point = _random_point(K, D, np.random.default_rng(seed))
        want = _reference(X, cov, hyper, *point)
        got = _model_logp(model, *point)
        # only rounding differs (sums of ~100 terms of size ~10): 1e-8 relative
        assert got == pytest.approx(want, rel=1e-8), (seed, got, want)


def test_lkj_density_is_the_beta_in_2d():
    # in 2-D the correlation of an LKJ(eta) matrix is Beta(eta, eta) on (-1, 1)
    r, eta = 0.37, 1.7
    L = np.linalg.cholesky([[1.0, r], [r, 1.0]])
    want = stats.beta(eta, eta, loc=-1.0, scale=2.0).logpdf(r)
    assert _lkj_chol_logp(L, eta) == pytest.approx(want, rel=1e-12)


def test_deterministics_and_coords_in_data_units():
    import pandas as pd

    X = _data(20, 2, 3)
    frame = pd.DataFrame(X, columns=["eruptions", "waiting"])
    model = bayesgmm.build_model(frame, 2)
    assert list(model.coords["feature"]) == ["eruptions", "waiting"]
    assert list(model.coords["feature_"]) == ["eruptions", "waiting"]
    assert {"component", "feature", "feature_", "obs"} <= set(model.coords)
    assert [rv.name for rv in model.free_RVs] == ["weights", "means_std", "sds_std",
                                                  "corr_chol"]
    w, mu, sd, chol = _random_point(2, 2, np.random.default_rng(0))
    f = model.compile_fn([model["means"], model["sds"], model["correlations"],
                          model["covariances"]], inputs=[model["means_std"],
                          model["sds_std"], model["corr_chol"]], on_unused_input="ignore",
                         point_fn=False, mode="FAST_COMPILE")
    means, sds, corr, covs = f(mu, sd, chol)
    loc, scale = X.mean(axis=0), X.std(axis=0)
    np.testing.assert_allclose(means, loc + scale * mu, rtol=1e-12)
    np.testing.assert_allclose(sds, scale * sd, rtol=1e-12)
    np.testing.assert_allclose(corr, chol @ np.swapaxes(chol, 1, 2), rtol=1e-12)
    want = np.array([np.outer(s, s) * (L @ L.T) for s, L in zip(scale * sd, chol,
                                                                 strict=True)])
    np.testing.assert_allclose(covs, want, rtol=1e-12)
    assert model.named_vars_to_dims["covariances"] == ("component", "feature", "feature_")
    assert model.named_vars_to_dims["x"] == ("obs", "feature")


@pytest.mark.parametrize("shape", ["flat", "column"])
def test_one_feature_keeps_the_1d_model(shape):
    x = _data(30, 1, 4)[:, 0]
    X = x if shape == "flat" else x[:, None]
    model = bayesgmm.build_model(X, 2)
    reference = bayesgmm.build_model(x, 2)
    assert sorted(model.named_vars) == sorted(reference.named_vars)
    assert "sigmas_std" in model.named_vars and "feature" not in model.coords
    point = reference.initial_point()
    assert model.compile_logp(**FAST)(point) == reference.compile_logp(**FAST)(point)


def test_missing_patterns_group_points():
    observed = np.array([[1, 1], [1, 0], [1, 1], [0, 1], [1, 0]], dtype=bool)
    got = [(r.tolist(), c.tolist()) for r, c in missing_patterns(observed)]
    assert got == [([0, 2], [0, 1]), ([1, 4], [0]), ([3], [1])]


@pytest.mark.parametrize(("kw", "match"), [
    (dict(priors={"corr_eta": 0.0}), r"prior corr_eta must be one positive"),
    (dict(priors={"means_sigma": [1.0, 2.0]}), r"pass shape \(2, 2\) to say which"),
    (dict(priors={"sigmas_sigma": np.ones(3)}), r"got shape \(3,\)"),
    (dict(fused=True), r"fused=True is for 1-D data only"),
])
def test_bad_md_options(kw, match):
    with pytest.raises(DataError, match=match):
        bayesgmm.build_model(_data(20, 2, 5), 2, **kw)


def test_prior_predictive_shapes():
    n, D, K = 16, 3, 2
    X = _data(n, D, 6, missing=0.2)
    model = bayesgmm.build_model(X, K, X_err=_full_errors(n, D, np.random.default_rng(0)))
    with model:
        idata = pm.sample_prior_predictive(7, random_seed=1, compile_kwargs=FAST)
    assert idata.prior_predictive["x"].shape == (1, 7, n, D)
    assert not np.isnan(idata.prior_predictive["x"].values).any()  # complete draws
    prior = idata.prior
    assert prior["weights"].shape == (1, 7, K)
    assert prior["means"].shape == prior["sds"].shape == (1, 7, K, D)
    assert prior["covariances"].shape == prior["correlations"].shape == (1, 7, K, D, D)
    corr = prior["correlations"].values
    np.testing.assert_allclose(np.diagonal(corr, axis1=-2, axis2=-1), 1.0, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(prior["covariances"].values) > 0)


def test_gradient_matches_finite_differences():
    # PyTensor's gradient through the batched Cholesky factors, with full error
    # covariances and missing values, against central differences (step 1e-6: error
    # ~1e-10 in the difference, 1e-6 relative is far above it)
    n, D, K = 16, 3, 2
    X = _data(n, D, 8, missing=0.3)
    model = bayesgmm.build_model(X, K, X_err=_full_errors(n, D, np.random.default_rng(2)))
    ip = model.initial_point()
    rng = np.random.default_rng(4)
    point = {k: v + rng.normal(0.0, 0.3, v.shape) for k, v in ip.items()}
    logp = model.compile_logp(**FAST)
    dlogp = model.compile_dlogp(**FAST)
    grad = dlogp(point)
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    numeric = []
    for name in names:
        for idx in np.ndindex(point[name].shape):
            up = {k: v.copy() for k, v in point.items()}
            down = {k: v.copy() for k, v in point.items()}
            up[name][idx] += 1e-6
            down[name][idx] -= 1e-6
            numeric.append((logp(up) - logp(down)) / 2e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)
