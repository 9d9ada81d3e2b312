"""The PyMC model: structure, priors, and its log-density against SciPy and the fused one."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import dirichlet, halfnorm, norm

from bayesgmm import DataError, Priors, build_model
from bayesgmm._numerics.standardize import standardizer
from bayesgmm.bayes.likelihood import pointwise_loglik
from bayesgmm.bayes.reparam.pymc_space import logp_and_grad, unpack
from bayesgmm.datasets import simulate


@pytest.fixture(scope="module", params=[True, False], ids=["errors", "no-errors"])
def case(request):
    sim = simulate(120, [0.6, 0.4], [10.0, 14.0], [0.8, 1.5],
                   error_range=(0.3, 1.2) if request.param else None, random_seed=5)
    K = 3 if request.param else 2
    model = build_model(sim.x, K, X_err=sim.x_err,
                        priors={"weights_alpha": [1.0, 2.0, 1.5][:K], "sigmas_sigma": 2.0})
    point_ll = model.compile_logp(vars=[model["x"]], sum=False, jacobian=False)
    total = model.compile_logp()
    dlogp = model.compile_dlogp()
    return sim, K, model, point_ll, total, dlogp


def _point(theta, K):
    return {"weights_simplex__": theta[:K - 1], "means_std_ordered__": theta[K - 1:2 * K - 1],
            "sigmas_std_log__": theta[2 * K - 1:]}


def test_structure(case):
    sim, K, model, *_ = case
    assert list(model.coords) == ["component", "obs"]
    assert len(model.coords["obs"]) == sim.x.size
    assert {v.name for v in model.free_RVs} == {"weights", "means_std", "sigmas_std"}
    assert model.named_vars_to_dims["means"] == ("component",)
    assert model.named_vars_to_dims["x"] == ("obs",)
    assert [v.name for v in model.observed_RVs] == ["x"]
    # one name per hyperparameter: the Priors field, "prior_" + field in the model
    loc, scale = standardizer(sim.x)
    hyper = Priors(weights_alpha=[1.0, 2.0, 1.5][:K], sigmas_sigma=2.0).standardized(
        K, loc, scale)
    for name in ("weights_alpha", "means_mu", "means_sigma", "sigmas_sigma"):
        np.testing.assert_array_equal(model[f"prior_{name}"].get_value(), hyper[name])


def test_pointwise_logp_matches_scipy(case):
    # 1e-10 relative: both are exact double-precision evaluations of the same formula
    sim, K, model, point_ll, *_ = case
    loc, scale = standardizer(sim.x)
    e = np.zeros_like(sim.x) if sim.x_err is None else sim.x_err
    rng = np.random.default_rng(0)
    for _ in range(5):
        theta = rng.normal(0, 0.7, size=3 * K - 1)
        w, mu, sg = unpack(theta, K)
        means, sigmas = loc + scale * mu, scale * sg
        sd = np.sqrt(sigmas[None, :] ** 2 + e[:, None] ** 2)
        ref = logsumexp(np.log(w) + norm.logpdf(sim.x[:, None], means, sd), axis=1)
        got = point_ll(_point(theta, K))[0]
        np.testing.assert_allclose(got, ref, rtol=1e-10)
        # the DataTree's log_likelihood kernel gives the same numbers
        eps2 = (e / scale) ** 2
        pw = pointwise_loglik((sim.x - loc) / scale, eps2, w[None], mu[None], sg[None],
                              float(np.log(scale)))[0]
        np.testing.assert_allclose(pw, ref, rtol=1e-10)


def test_total_logp_matches_scipy_priors(case):
    # The full log-density (priors + likelihood, transforms' Jacobians excluded) in
    # standardized units, against SciPy's distributions.
    sim, K, model, _, _, _ = case
    logp_nojac = model.compile_logp(jacobian=False)
    loc, scale = standardizer(sim.x)
    hyper = Priors(weights_alpha=[1.0, 2.0, 1.5][:K], sigmas_sigma=2.0).standardized(
        K, loc, scale)
    e = np.zeros_like(sim.x) if sim.x_err is None else sim.x_err
    theta = np.random.default_rng(3).normal(0, 0.5, size=3 * K - 1)
    w, mu, sg = unpack(theta, K)
    sd = np.sqrt((scale * sg)[None, :] ** 2 + e[:, None] ** 2)
    lik = logsumexp(np.log(w) + norm.logpdf(sim.x[:, None], loc + scale * mu, sd), axis=1).sum()
    prior = (dirichlet.logpdf(w, hyper["weights_alpha"]) if K > 1 else 0.0) \
        + norm.logpdf(mu, hyper["means_mu"], hyper["means_sigma"]).sum() \
        + halfnorm.logpdf(sg, scale=hyper["sigmas_sigma"]).sum()
    np.testing.assert_allclose(logp_nojac(_point(theta, K)), lik + prior, rtol=1e-10)


def test_fused_logdensity_matches_pymc(case):
    # The sampler's fused log-density and gradient equal the PyMC model's own (with
    # Jacobians) to 1e-10 at random points in the unconstrained space.
    sim, K, model, _, total, dlogp = case
    loc, scale = standardizer(sim.x)
    hyper = Priors(weights_alpha=[1.0, 2.0, 1.5][:K], sigmas_sigma=2.0).standardized(
        K, loc, scale)
    e = np.zeros_like(sim.x) if sim.x_err is None else sim.x_err
    z, eps2 = (sim.x - loc) / scale, (e / scale) ** 2
    rng = np.random.default_rng(1)
    for _ in range(10):
        theta = rng.normal(0, 1.0, size=3 * K - 1)
        lp, grad = logp_and_grad(theta, z, eps2, hyper["weights_alpha"], hyper["means_mu"],
                                 hyper["means_sigma"], hyper["sigmas_sigma"],
                                 z.size * np.log(scale))
        np.testing.assert_allclose(lp, total(_point(theta, K)), rtol=1e-10)
        np.testing.assert_allclose(grad, dlogp(_point(theta, K)), rtol=1e-10, atol=1e-10)


def test_fused_logdensity_far_from_components():
    # Points 1e3 sds from every component: no underflow to -inf, gradient finite.
    z = np.array([-1e3, 0.0, 1e3])
    lp, grad = logp_and_grad(np.array([0.0, 0.0, 0.0, -2.0, -2.0]), z, np.zeros(3),
                             np.ones(2), np.zeros(2), np.full(2, 3.0), np.ones(2), 0.0)
    assert np.isfinite(lp) and np.all(np.isfinite(grad))


def test_priors_validation_and_units():
    x = np.array([100.0, 102.0, 104.0, 110.0, 112.0])
    loc, scale = standardizer(x)
    h = Priors(means_mu=[100.0, 110.0], means_sigma=scale).standardized(2, loc, scale)
    assert list(h) == ["weights_alpha", "means_mu", "means_sigma", "sigmas_sigma"]
    np.testing.assert_allclose(h["means_mu"], (np.array([100.0, 110.0]) - loc) / scale)
    np.testing.assert_allclose(h["means_sigma"], [1.0, 1.0])
    with pytest.raises(DataError, match="unknown prior"):
        build_model(x, 2, priors={"mean_mu": 1.0})
    with pytest.raises(DataError, match="positive"):
        build_model(x, 2, priors={"sigmas_sigma": -1.0})
    # two columns go to the D-dimensional model (tests/bayes/test_model_md.py)
    with pytest.raises(DataError, match="feature 0 of X is constant"):
        build_model(np.ones((5, 2)), 2)
    with pytest.raises(DataError, match="exceeds the number of points"):
        build_model(x, 6)


def test_fused_model_equals_reference():
    # build_model(fused=True) swaps in the numba Op: same log-density, gradient and
    # pointwise log-likelihood as the reference graph, to 1e-10.
    sim = simulate(200, [0.4, 0.6], [1.0, 4.0], [0.5, 1.0], error_range=(0.2, 0.9),
                   random_seed=9)
    ref = build_model(sim.x, 2, X_err=sim.x_err)
    fus = build_model(sim.x, 2, X_err=sim.x_err, fused=True)
    theta = np.random.default_rng(2).normal(0, 0.6, size=5)
    pt_ = _point(theta, 2)
    np.testing.assert_allclose(fus.compile_logp()(pt_), ref.compile_logp()(pt_), rtol=1e-10)
    np.testing.assert_allclose(fus.compile_dlogp()(pt_), ref.compile_dlogp()(pt_), rtol=1e-10)
    pw_f = fus.compile_logp(vars=[fus["x"]], sum=False)(pt_)[0]
    pw_r = ref.compile_logp(vars=[ref["x"]], sum=False)(pt_)[0]
    np.testing.assert_allclose(pw_f, pw_r, rtol=1e-10)



def test_ordered_start_tied_means_and_given_starts():
    # the default start (every mean at its prior centre) is spread over the data's
    # quantiles: ordered, finite, inside the data; strictly increasing values (a user's
    # initvals, fit's EM start) map exactly as with PyMC's ordered transform
    import pytensor.tensor as pt
    from pymc.distributions.transforms import ordered

    x = np.r_[np.zeros(30), np.ones(30), np.full(30, 2.0)]  # discrete: quantiles tie
    z = (x - x.mean()) / x.std()
    for K in (1, 2, 3, 5):
        model = build_model(x, K)
        start = model.initial_point()["means_std_ordered__"]
        assert start.shape == (K,) and np.all(np.isfinite(start))
        mu = np.cumsum(np.r_[start[:1], np.exp(start[1:])])
        assert z.min() - 0.5 < mu[0] and mu[-1] < z.max() + 0.5  # within the data
        assert np.isfinite(model.compile_logp()(model.initial_point()))
    model = build_model(x, 3)
    transform = model.rvs_to_transforms[model["means_std"]]
    given = np.array([-0.3, 0.1, 2.0])
    np.testing.assert_array_equal(transform.forward(pt.as_tensor(given)).eval(),
                                  ordered.forward(pt.as_tensor(given)).eval())
    from pymc.initial_point import make_initial_point_fn

    fn = make_initial_point_fn(model=model, overrides={"means_std": given},
                               jitter_rvs=set(), return_transformed=True)
    np.testing.assert_allclose(fn(0)["means_std_ordered__"],
                               [-0.3, np.log(0.4), np.log(1.9)], rtol=1e-12)

    # and the PyMC 6 pitfall: a model with an initval cannot go through
    # pm.compute_log_likelihood; the valid start needs none
    import pymc as pm
    from pymc.testing import mock_sample

    assert all(v is None for v in model.rvs_to_initial_values.values())
    with model:
        dt = mock_sample(draws=5, chains=1, random_seed=0)
        ll = pm.compute_log_likelihood(dt, extend_inferencedata=False, progressbar=False)
    assert ll["x"].shape == (1, 5, x.size)


def test_prior_terms_once_in_w_mu_sigma():
    # bayes.density.add_log_prior, the one copy of the priors every hand-written density
    # uses: SciPy's log-densities to 1e-12 and the gradient to central differences
    # (h = 1e-6: ~1e-9 relative); a Dirichlet(1) component adds nothing, so a weight
    # at 0 leaves the density finite (0 * log 0 would be NaN)
    from bayesgmm.bayes.density import add_log_prior

    w, mu, sg = np.array([0.2, 0.3, 0.5]), np.array([-1.0, 0.2, 1.5]), np.array([0.4, 1.0, 2.0])
    hyper = (np.array([1.0, 2.5, 0.7]), np.array([0.0, 0.5, -0.5]), np.array([3.0, 2.0, 1.0]),
             np.array([1.0, 0.5, 2.0]))
    grads = [np.zeros(3) for _ in range(3)]
    lp = add_log_prior(0.0, w, mu, sg, *hyper, *grads)
    ref = (dirichlet.logpdf(w, hyper[0]) + norm.logpdf(mu, hyper[1], hyper[2]).sum()
           + halfnorm.logpdf(sg, scale=hyper[3]).sum())
    assert lp == pytest.approx(ref, rel=1e-12)
    h = 1e-6
    for i in range(3):
        for k in range(3):
            up, down = [a.copy() for a in (w, mu, sg)], [a.copy() for a in (w, mu, sg)]
            up[i][k] += h
            down[i][k] -= h
            num = (add_log_prior(0.0, *up, *hyper, *[np.zeros(3)] * 3)
                   - add_log_prior(0.0, *down, *hyper, *[np.zeros(3)] * 3)) / (2 * h)
            assert grads[i][k] == pytest.approx(num, rel=1e-6, abs=1e-6), (i, k)
    ones = (np.ones(2), np.zeros(2), np.ones(2), np.ones(2))
    zero_w = np.array([0.0, 1.0])
    assert np.isfinite(add_log_prior(0.0, zero_w, np.zeros(2), np.ones(2), *ones,
                                     *[np.zeros(2)] * 3))
