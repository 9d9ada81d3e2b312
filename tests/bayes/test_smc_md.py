"""Tempered SMC in D dims (``smc_md.TemperedMD``, ``fit(..., sampler="smc")`` on 2+ columns).

The tempered density against the sampler's (exactly) and finite differences; the
relabelling move; the prior draws against LKJ's closed-form moments; the evidence
against an independent brute-force average of the likelihood over the prior; and the
``fit`` plumbing with few particles.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from bayesgmm import DataError, fit
from bayesgmm.bayes import inference
from bayesgmm.bayes.inference_md import prepare_md
from bayesgmm.bayes.posterior_k import _one_k
from bayesgmm.bayes.smc_md import TemperedMD


def _problem(X, err=None, K=2, priors=None):
    return prepare_md(X, err, K, priors, np.random.default_rng(1), draws=10, chains=1,
                      seed_rng=np.random.default_rng(2), progressbar=False,
                      backend="native")


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], n // 2),
                   rng.multivariate_normal([4, 1], [[0.5, -0.2], [-0.2, 0.8]], n - n // 2)])
    X[5, 1] = np.nan
    X[n - 3, 0] = np.nan
    return X, rng.uniform(0.1, 0.4, X.shape)


@pytest.fixture(scope="module")
def tempered():
    X, err = _data()
    p = _problem(X, err, K=3)
    return p, TemperedMD.build(p.target)


def test_density_at_temperature_one_is_the_samplers(tempered):
    # the same compiled pieces, so exact: the sum and the gradient to the last digit
    p, t = tempered
    theta = t.prior(np.random.default_rng(0), 6)
    theta[0] = p.target.start
    ll, lp, grad = t.evaluate(theta, 1.0)
    for i in range(theta.shape[0]):
        value, g = p.target.logp_and_grad(theta[i])
        assert ll[i] + lp[i] == pytest.approx(value, rel=1e-13, abs=1e-9)
        np.testing.assert_allclose(grad[i], g, rtol=1e-12, atol=1e-9)


def test_tempered_gradient_matches_finite_differences(tempered):
    # central differences, step 1e-6, at beta = 0.3: agreement to 1e-5 absolute
    _, t = tempered
    x0 = t.prior(np.random.default_rng(1), 1)
    beta, h = 0.3, 1e-6
    _, _, g = t.evaluate(x0, beta)
    steps = h * np.eye(t.d)
    ll, lp, _ = t.evaluate(np.concatenate([x0 + steps, x0 - steps]), beta)
    f = beta * ll + lp
    np.testing.assert_allclose((f[: t.d] - f[t.d :]) / (2 * h), g[0], atol=1e-5)


def test_sorting_is_an_exact_relabelling(tempered):
    _, t = tempered
    rng = np.random.default_rng(2)
    theta = t.prior(rng, 50)
    assert t.inside(theta).all()  # prior draws come sorted by the first feature's mean
    # shuffle each particle's components, then sort: the density is unchanged
    K, D = t.K, t.D
    from bayesgmm.bayes import density_md

    shuffled = []
    for th in theta:
        w, mu, sd, L = density_md.unpack(th, K, D)
        perm = rng.permutation(K)
        corr = L @ np.swapaxes(L, -1, -2)
        shuffled.append(density_md.pack(w[perm], mu[perm], sd[perm], corr[perm]))
    shuffled = np.array(shuffled)
    assert not t.inside(shuffled).all()
    a = t.evaluate(theta, 0.5)
    b = t.evaluate(t.sort(shuffled), 0.5)
    np.testing.assert_allclose(b[0], a[0], rtol=1e-12)
    np.testing.assert_allclose(b[1], a[1], rtol=1e-10)
    np.testing.assert_allclose(t.sort(shuffled), theta, atol=1e-10)


@pytest.mark.parametrize("D, eta", [(2, 3.0), (3, 2.0)])
def test_prior_correlations_are_lkj(D, eta):
    # LKJ(eta) in D dims: each correlation's (r + 1) / 2 ~ Beta(eta - 1 + D / 2, same), so
    # E[r] = 0 and E[r^2] = 1 / (2 eta + D - 1), for every pair (the onion method builds
    # rows unequally); 20,000 matrices, se of the mean of r^2 about 0.0015: tolerance 0.01
    from bayesgmm.bayes.smc_md import _lkj_cholesky

    L = _lkj_cholesky(D, eta, 20_000, np.random.default_rng(3))
    C = L @ np.swapaxes(L, 1, 2)
    np.testing.assert_allclose(np.diagonal(C, axis1=1, axis2=2), 1.0, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(C) > 0)
    for a in range(1, D):
        for b in range(a):
            r = C[:, a, b]
            assert abs(r.mean()) < 0.01
            assert abs((r * r).mean() - 1 / (2 * eta + D - 1)) < 0.01, (a, b)
    # and the whole distribution against PyMC's own LKJCorr sampler (two-sample KS on
    # each correlation, 5,000 of PyMC's draws: fails at p < 1e-3)
    import pymc as pm
    from scipy.stats import ks_2samp

    ref = np.asarray(pm.draw(pm.LKJCorr.dist(n=D, eta=eta), draws=5000, random_seed=4))
    ref = ref @ np.swapaxes(ref, 1, 2)
    for a in range(1, D):
        for b in range(a):
            assert ks_2samp(C[:, a, b], ref[:, a, b]).pvalue > 1e-3, (a, b)


def _brute_force(z, observed, err, hyper, K, n_draws, seed):
    """log p(z | K) by averaging the likelihood over 1e6 prior draws (D = 2, numpy only).

    Independent of the package's density and prior sampler: correlations from
    (r + 1) / 2 ~ Beta(eta, eta), the likelihood by the 2 x 2 formulas, a point with
    one missing feature by that feature's marginal.
    """
    rng = np.random.default_rng(seed)
    out = []
    eta = float(hyper["corr_eta"])
    for _ in range(n_draws // 200_000):
        m = 200_000
        w = rng.dirichlet(hyper["weights_alpha"], m) if K > 1 else np.ones((m, 1))
        mu = hyper["means_mu"] + hyper["means_sigma"] * rng.standard_normal((m, K, 2))
        sd = hyper["sigmas_sigma"] * np.abs(rng.standard_normal((m, K, 2)))
        r = 2 * rng.beta(eta, eta, (m, K)) - 1
        total = np.zeros(m)
        for i in range(z.shape[0]):
            comp = np.log(w)
            if observed[i].all():
                v0 = sd[..., 0] ** 2 + err[i, 0, 0]
                v1 = sd[..., 1] ** 2 + err[i, 1, 1]
                c = r * sd[..., 0] * sd[..., 1] + err[i, 0, 1]
                det = v0 * v1 - c * c
                d0, d1 = z[i, 0] - mu[..., 0], z[i, 1] - mu[..., 1]
                q = (v1 * d0 * d0 - 2 * c * d0 * d1 + v0 * d1 * d1) / det
                comp = comp - math.log(2 * math.pi) - 0.5 * np.log(det) - 0.5 * q
            else:
                j = int(np.flatnonzero(observed[i])[0])
                v = sd[..., j] ** 2 + err[i, j, j]
                d = z[i, j] - mu[..., j]
                comp = comp - 0.5 * math.log(2 * math.pi) - 0.5 * np.log(v) - 0.5 * d * d / v
            total += np.logaddexp.reduce(comp, axis=1)
        out.append(total)
    ll = np.concatenate(out)
    top = ll.max()
    e = np.exp(ll - top)
    return top + math.log(e.mean()), e.std() / (e.mean() * math.sqrt(e.size))


def test_evidence_matches_brute_force_prior_sampling():
    # K = 2, n = 8 points with errors and a missing value, so plain Monte Carlo over the
    # prior (1e6 draws, seed 7) is an independent estimate (relative se a few %). The SMC +
    # importance estimate is over the unordered mixture restricted to sorted components
    # times K!: a forgotten K! shows as log 2 = 0.69 at K = 2. Tolerance: 4 combined
    # se plus 0.05.
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal([0, 0], 1.0, (4, 2)), rng.normal([3, 2], 0.7, (4, 2))])
    X[2, 0] = np.nan
    err = np.full(X.shape, 0.3)
    K = 2
    p = _problem(X, err, K=K)
    t = TemperedMD.build(p.target)
    target = p.target
    reference, ref_se = _brute_force(target.z, target.observed.astype(bool),
                                     target.err_cov, target.hyper, K, 1_000_000, 7)
    one = _one_k(t, np.random.default_rng(0), n_particles=300, n_runs=2,
                 n_importance=30_000, n_draws=400)
    assert one["method"] == "importance"
    tol = 4 * math.hypot(ref_se, one["log_evidence_se"]) + 0.05
    assert abs(one["log_evidence"] - reference) < tol, (one["log_evidence"], reference, tol)


@pytest.fixture
def few_particles(monkeypatch):
    # plumbing, not statistics: a few hundred particles and 20,000 importance draws
    monkeypatch.setattr(inference, "SMC_PARTICLES", 200)
    monkeypatch.setattr(inference, "SMC_IMPORTANCE", 10_000)


def test_fit_smc_in_two_dims(few_particles):
    X, err = _data(n=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = fit(X, 2, X_err=err, sampler="smc", draws=250, random_seed=5,
                 progressbar=False)
    post = dt["posterior"]
    assert dt.attrs["sampler"] == "smc" and post.attrs["sampler"] == "smc"
    assert post["means"].shape == (4, 250, 2, 2)
    assert post["covariances"].shape == (4, 250, 2, 2, 2)
    run = json.loads(dt.attrs["sampling_runs"])[0]
    assert run["sampler"] == "smc" and run["evidence_method"] == "importance"
    assert run["pareto_k"] < 0.7 and np.isfinite(run["log_evidence"])
    # relabelled to the EM estimate: the well separated components match it
    em = dt["em_estimate"]["means"].values
    np.testing.assert_allclose(post["means"].mean(("chain", "draw")).values, em, atol=0.3)
    assert "log_likelihood" in dt.children and "posterior_predictive" in dt.children


def test_fit_smc_refuses_repeated_values_and_unequal_priors(few_particles):
    X, _ = _data(n=60)
    import pandas as pd

    rounded = pd.DataFrame(np.round(X, 0), columns=["colour", "mag"])  # named in the message
    with pytest.raises(DataError, match="feature 'colour': .*repeat exactly"):
        fit(rounded, 2, sampler="smc", progressbar=False)
    # with an error in every feature, rounded values are fine (no exception here is
    # checked by the plumbing test; this one checks the refusal of unequal priors)
    with pytest.raises(DataError, match="differs between components"):
        fit(X, 2, X_err=np.full(X.shape, 0.2), sampler="smc", progressbar=False,
            priors={"means_mu": [[0.0, 0.0], [4.0, 1.0]]})


def test_posterior_k_in_two_dims_prefers_the_true_k():
    # two clusters 6 sds apart, n = 40, K = 1, 2 with few particles (plumbing plus a
    # choice): K = 2 must win by far (log evidence tens of units higher)
    import bayesgmm

    rng = np.random.default_rng(8)
    X = np.vstack([rng.normal([0, 0], 0.5, (20, 2)), rng.normal([3, 3], 0.5, (20, 2))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk = bayesgmm.posterior_k(X, ks=[1, 2], n_particles=200, n_runs=2,
                                  n_importance=10_000, draws=100, random_seed=1)
    assert pk.best == 2, pk.to_dataframe()
    assert pk.log_evidence[1] - pk.log_evidence[0] > 10
    dt = pk.fits[2]
    assert dt.attrs["n_features"] == 2 and dt["posterior"]["covariances"].shape[-2:] == (2, 2)
    assert dt.attrs["evidence_method"] in ("importance", "smc")
    with pytest.raises(DataError, match="fits\\[K\\]"):
        pk.averaged()
    with pytest.raises(DataError, match="repeat exactly"):
        bayesgmm.posterior_k(np.round(X), ks=[1])
