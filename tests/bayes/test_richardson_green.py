"""Richardson & Green's (1997) prior: the preset, its density, its draws, its evidence."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats

import bayesgmm
from bayesgmm import DataError, Priors
from bayesgmm.bayes import smc
from bayesgmm.datasets import load_example


def _hyper(K, x=None, loc=0.0, scale=1.0):
    x = np.array([0.0, 4.0]) if x is None else x
    return Priors.richardson_green(x).standardized(K, loc, scale)


def test_preset_values_on_the_galaxy_data():
    # their data-based choices: xi the range's midpoint, kappa = 1 / R^2 (sd R),
    # alpha = 2, g = 0.2, h = 10 / R^2; h is a rate in 1 / units^2, so standardized by
    # scale^2
    v = load_example("galaxy").iloc[:, 0].to_numpy()
    R = v.max() - v.min()
    p = Priors.richardson_green(v)
    assert p.means_mu == pytest.approx((v.max() + v.min()) / 2) and p.means_sigma == R
    assert (p.weights_alpha, p.precision_alpha, p.precision_g) == (1.0, 2.0, 0.2)
    assert p.precision_h == pytest.approx(10 / R**2)
    h = p.standardized(3, 20_000.0, 4_000.0)
    np.testing.assert_allclose(h["precision_h"], 10 / (R / 4_000.0) ** 2)
    np.testing.assert_allclose(h["means_sigma"], R / 4_000.0)


@pytest.mark.parametrize(("priors", "match"), [
    (Priors(precision_alpha=2.0), "all three"),
    (Priors(precision_alpha=2.0, precision_g=0.2, precision_h=1.0, sigmas_sigma=1.0),
     "no sigmas_sigma"),
    (Priors(precision_alpha=[2.0, 3.0], precision_g=0.2, precision_h=1.0), "one number"),
    (Priors(precision_alpha=2.0, precision_g=-0.2, precision_h=1.0), "positive"),
])
def test_bad_hierarchical_priors(priors, match):
    with pytest.raises(DataError, match=match):
        priors.standardized(2, 0.0, 1.0)


def test_widths_density_integrates_the_hyperprior_out():
    # the closed form against numerical integration over beta of
    # Gamma(beta; g, h) prod_k Gamma(tau_k; a, beta) |d tau / d sigma|, K = 3, to 1e-9
    target = smc.TemperedRG(np.zeros(5), np.zeros(1), 3, _hyper(3))
    a, g, h = target.a, target.g, target.h
    rng = np.random.default_rng(0)
    s = rng.normal(0.0, 0.7, (4, 3))
    lp, grad = target.widths_log_prior(s)
    for row, value in zip(s, lp, strict=True):
        tau = np.exp(-2 * row)

        def f(beta, tau=tau):
            return stats.gamma.pdf(beta, g, scale=1 / h) * np.prod(
                stats.gamma.pdf(tau, a, scale=1 / beta))

        val, _ = integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-12, limit=200)
        ref = math.log(val) + np.sum(np.log(2 * np.exp(-3 * row)))
        assert value == pytest.approx(ref, abs=1e-9)
    eye = np.eye(3) * 1e-6
    num = np.stack([(target.widths_log_prior(s + eye[j])[0]
                     - target.widths_log_prior(s - eye[j])[0]) / 2e-6 for j in range(3)], 1)
    np.testing.assert_allclose(grad, num, atol=1e-6)


def test_tempered_gradient_matches_finite_differences():
    # the whole tempered density (likelihood with errors, means, weights, the swapped
    # widths term) at temperature 0.7: central differences, step 1e-6, 1e-6 absolute
    rng = np.random.default_rng(1)
    K = 3
    target = smc.TemperedRG(rng.normal(size=25), rng.uniform(0.05, 0.3, 25), K, _hyper(K))
    theta = rng.normal(size=(1, 3 * K - 1)) * 0.5
    ll, lp, grad = target.evaluate(theta, 0.7)

    def f(t):
        a, b, _ = target.evaluate(t, 0.7)
        return b[0] + 0.7 * a[0]

    eye = np.eye(3 * K - 1) * 1e-6
    num = [(f(theta + eye[j]) - f(theta - eye[j])) / 2e-6 for j in range(3 * K - 1)]
    np.testing.assert_allclose(grad[0], num, atol=1e-6)
    # rows of 65+ (the threaded loop) and a few (one by one) give the same numbers
    many = np.repeat(theta, 70, axis=0)
    ll70, lp70, g70 = target.evaluate(many, 0.7)
    np.testing.assert_allclose(lp70, lp[0], rtol=1e-13)
    np.testing.assert_allclose(g70[-1], grad[0], rtol=1e-12, atol=1e-12)


def test_an_overflowing_width_gives_minus_inf_without_a_warning():
    # a mode climb's line search can step a log width far out (exp(2 s) = inf): the
    # row's density is -inf, and NumPy's inf - inf on the way stays inside
    K = 3
    target = smc.TemperedRG(np.linspace(-1, 1, 10), np.zeros(1), K, _hyper(K))
    theta = np.zeros((2, 3 * K - 1))
    theta[1, -1] = 400.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ll, lp, grad = target.evaluate(theta, 1.0)
    assert np.isfinite(lp[0]) and np.isfinite(ll[0])
    assert lp[1] == -np.inf


def test_a_huge_width_is_outside_and_a_large_one_exact():
    # the HalfNormal term taken out of the prior is about -q2 / 2: at a width of 1e42 it
    # cancelled to lp = +1e68 (one importance draw took all the weight, k-hat NaN). Beyond
    # WIDTH_MAX_RG prior scales a row is outside (-inf, ll too, zero gradient); at 1e3
    # scales the prior still equals the widths term computed alone (to 1e-6: the
    # cancellation's error there is about 1e6 x 1e-16)
    K = 2
    target = smc.TemperedRG(np.linspace(-1, 1, 10), np.zeros(1), K, _hyper(K))
    theta = np.zeros((3, 3 * K - 1))
    theta[1, -1] = math.log(1e3)
    theta[2, -1] = math.log(1e42)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ll, lp, grad = target.evaluate(theta, 1.0)
    assert lp[2] == -np.inf and ll[2] == -np.inf and not grad[2].any()
    rg, _ = target.widths_log_prior(theta[:2, 2 * K - 1:])
    # rows 0 and 1 differ in one log width only: lp's difference is the widths term's
    # plus the coordinate's Jacobian (log sigma)
    assert lp[1] - lp[0] == pytest.approx(rg[1] - rg[0] + math.log(1e3), abs=1e-6)


def test_prior_draws_follow_the_marginal_of_one_width():
    # one precision tau = sigma^-2 given beta is Gamma(a, beta), beta ~ Gamma(g, h): its
    # marginal is tau / h ~ BetaPrime(a, g). 20,000 draws, seed 2: a KS test at 1% would
    # fail by chance 1 time in 100; the closed-form density at K = 1 must match too
    target = smc.TemperedRG(np.zeros(5), np.zeros(1), 2, _hyper(2))
    theta = target.prior(np.random.default_rng(2), 20_000)
    tau = np.exp(-2 * theta[:, 3:]).ravel()
    assert stats.kstest(tau / target.h, stats.betaprime(target.a, target.g).cdf).pvalue > 0.01
    one = smc.TemperedRG(np.zeros(5), np.zeros(1), 1, _hyper(1))
    s = np.array([[-0.3], [0.4]])
    t = np.exp(-2 * s[:, 0])
    ref = stats.betaprime.logpdf(t, one.a, one.g, scale=one.h) + np.log(2 * t**1.5)
    np.testing.assert_allclose(one.widths_log_prior(s)[0], ref, rtol=1e-12)


def test_one_component_evidence_matches_quadrature():
    # K = 1: the evidence under Richardson & Green's prior by a 2-D quadrature over
    # (mu, sigma) in data units, against posterior_k's. n = 30, seed 4; tolerance 4 Monte
    # Carlo se plus 0.01 (quadrature)
    x = np.random.default_rng(4).normal(5.0, 2.0, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk = bayesgmm.posterior_k(x, ks=[1], priors="richardson_green", random_seed=0,
                                  n_particles=500, n_runs=2, n_importance=50_000, draws=200)
    p = Priors.richardson_green(x)
    loc, scale = x.mean(), x.std()
    top = stats.norm.logpdf(x, loc, scale).sum()

    def f(s, mu):
        tau = s**-2.0
        prior = (stats.norm.pdf(mu, p.means_mu, p.means_sigma)
                 * stats.betaprime.pdf(tau, p.precision_alpha, p.precision_g,
                                       scale=p.precision_h) * 2 * s**-3.0)
        return math.exp(stats.norm.logpdf(x, mu, s).sum() - top) * prior

    val, _ = integrate.dblquad(f, loc - 3 * scale, loc + 3 * scale, 0.2 * scale, 3 * scale,
                               epsabs=1e-13)
    reference = top + math.log(val)
    assert pk.method == ["importance"]
    assert abs(pk.log_evidence[0] - reference) < 4 * pk.log_evidence_se[0] + 0.01, (
        pk.log_evidence[0], reference)
    # the preset is recorded with the fit
    const = pk.fits[1]["constant_data"]
    assert float(const["prior_precision_alpha"][0]) == 2.0


def test_fit_takes_the_preset_with_smc_only(monkeypatch):
    from bayesgmm.bayes import inference

    monkeypatch.setattr(inference, "SMC_PARTICLES", 200)
    monkeypatch.setattr(inference, "SMC_IMPORTANCE", 10_000)
    x = np.concatenate([np.random.default_rng(5).normal(0, 1, 30),
                        np.random.default_rng(6).normal(6, 1, 30)])
    with pytest.raises(DataError, match="sampler='smc'"):
        bayesgmm.fit(x, 2, priors="richardson_green", progressbar=False)
    with pytest.raises(DataError, match="unknown prior preset"):
        bayesgmm.fit(x, 2, priors="richardson", sampler="smc", progressbar=False)
    with pytest.raises(DataError, match="for 1-D data"):
        bayesgmm.fit(np.c_[x, x[::-1]], 2, priors="richardson_green", progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = bayesgmm.fit(x, 2, priors="richardson_green", sampler="smc", draws=200,
                          random_seed=1, progressbar=False)
    means = dt.posterior["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(means, [0, 6], atol=0.6)  # 4 sd of a mean of 30 points
