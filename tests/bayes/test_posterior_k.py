"""posterior_k: each K's evidence against independent estimators, and p(K | data)."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats

import bayesgmm
from bayesgmm import DataError
from bayesgmm.bayes import smc
from bayesgmm.bayes.priors import Priors

# the module (bayesgmm.bayes.posterior_k is also the function's name there)
posterior_k_module = importlib.import_module("bayesgmm.bayes.posterior_k")

FAST = {"n_particles": 500, "n_runs": 2, "n_importance": 50_000, "draws": 200}


def _quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bayesgmm.posterior_k(*args, **kwargs)


@pytest.mark.parametrize("method, used", [("nuts", "nuts+importance"),
                                          ("smc", "importance")])
def test_one_component_evidence_matches_quadrature(method, used):
    # K = 1 in closed form but for a 2-D integral over (mu, sigma), done by quadrature in
    # data units. n = 30, seed 1; tolerance 4 Monte Carlo se plus 0.01 (quadrature).
    # Both ways to the proposal: NUTS's draws (the default) and SMC's particles.
    x = np.random.default_rng(1).normal(5.0, 2.0, 30)
    pk = _quiet(x, ks=[1], random_seed=0, method=method, **FAST)
    loc, scale = x.mean(), x.std()

    def loglik(mu, s):
        return stats.norm.logpdf(x, mu, s).sum()

    top = loglik(loc, scale)

    def f(s, mu):
        prior = stats.norm.pdf(mu, loc, 3 * scale) * 2 * stats.norm.pdf(s, 0, scale)
        return math.exp(loglik(mu, s) - top) * prior

    val, _ = integrate.dblquad(f, loc - 3 * scale, loc + 3 * scale, 0.2 * scale, 3 * scale,
                               epsabs=1e-11)
    reference = top + math.log(val)
    assert pk.method == [used]
    assert abs(pk.log_evidence[0] - reference) < 4 * pk.log_evidence_se[0] + 0.01, (
        pk.log_evidence[0], reference)


@functools.cache
def _prior_monte_carlo(K, n_draws, seed):
    """log p(x | K) of ``_TWELVE`` by averaging the likelihood over the unordered prior."""
    x = _TWELVE
    loc, scale = x.mean(), x.std()
    rng = np.random.default_rng(seed)
    chunks = []
    for _ in range(n_draws // 100_000):
        w = rng.dirichlet(np.ones(K), 100_000)
        mu = loc + 3 * scale * rng.standard_normal((100_000, K))
        s = scale * np.abs(rng.standard_normal((100_000, K)))
        d = (x[None, :, None] - mu[:, None, :]) / s[:, None, :]
        lp = np.log(w / s)[:, None, :] - 0.5 * d * d - 0.5 * math.log(2 * math.pi)
        chunks.append(np.logaddexp.reduce(lp, axis=2).sum(axis=1))
    ll = np.concatenate(chunks)
    top = ll.max()
    e = np.exp(ll - top)
    return top + math.log(e.mean()), e.std() / (e.mean() * math.sqrt(e.size))


_rng = np.random.default_rng(3)
_TWELVE = np.concatenate([_rng.normal(-2.0, 0.5, 6), _rng.normal(1.5, 0.7, 6)])


@pytest.mark.parametrize("method", ["nuts", "smc"])
def test_two_component_evidence_matches_brute_force_prior_sampling(method):
    # n = 12 points, so plain Monte Carlo over the prior (1e6 draws, seed 5) is an
    # independent estimate with relative se about 1%. It averages over the unordered
    # prior: a forgotten (or doubled) K! factor would show as log 2 = 0.69 (NUTS samples
    # the ordered model, SMC the unordered one: both must give the unordered evidence).
    # Tolerance: 4 combined se.
    x = _TWELVE
    reference, ref_se = _prior_monte_carlo(2, 1_000_000, 5)
    pk = _quiet(x, ks=[2], random_seed=1, method=method, **FAST)
    assert pk.reliable.all(), pk.to_dataframe()
    tol = 4 * math.hypot(ref_se, pk.log_evidence_se[0])
    assert abs(pk.log_evidence[0] - reference) < tol, (pk.log_evidence[0], reference, tol)
    assert abs(pk.log_evidence[0] - reference) < 0.3 * math.log(2)


def test_smc_alone_is_close_to_importance_and_sorted():
    # SMC's own estimate (the fallback) on the same data: within 0.15 of the brute force
    # (its bias was 0.05 at K = 2 on the galaxy data); its particles have sorted means
    x = _TWELVE
    loc, scale = x.mean(), x.std()
    hyper = Priors().standardized(2, loc, scale)
    run = smc.run_smc(smc.Tempered1D((x - loc) / scale, np.zeros(1), 2, hyper),
                      np.random.default_rng(0), n_particles=1000)
    reference, _ = _prior_monte_carlo(2, 1_000_000, 5)
    assert abs(run.log_evidence - x.size * math.log(scale) - reference) < 0.15
    assert np.all(np.diff(run.means, axis=1) >= 0)
    assert run.betas[-1] == 1.0 and np.all(np.diff(run.betas) > 0)


def test_importance_stops_at_its_standard_error_target_and_agrees_with_all_draws():
    # the NUTS path's last importance round stops once se <= se_target: on the twelve
    # points at K = 2 it needs a fraction of the 80,000 draws allowed; the early answer
    # must agree with the full one within 4 combined se (a 1-in-15,000 miss by chance),
    # and a target it cannot reach draws everything
    x = _TWELVE
    loc, scale = x.mean(), x.std()
    target = smc.Tempered1D((x - loc) / scale, np.zeros(1), 2,
                            Priors().standardized(2, loc, scale))
    particles = smc.run_smc(target, np.random.default_rng(0), n_particles=1000).theta
    full = smc.importance(particles, target, np.random.default_rng(1), n_draws=80_000)
    early = smc.importance(particles, target, np.random.default_rng(2), n_draws=80_000,
                           se_target=0.02, round_draws=4000)
    assert full.theta.shape[0] == 80_000
    assert early.theta.shape[0] < 80_000 and early.theta.shape[0] % 10_000 == 0
    assert early.se <= 0.02 and early.ess >= 200
    assert abs(early.log_evidence - full.log_evidence) < 4 * math.hypot(early.se, full.se)
    unreachable = smc.importance(particles, target, np.random.default_rng(3),
                                 n_draws=20_000, se_target=1e-9, round_draws=4000)
    assert unreachable.theta.shape[0] == 20_000 and unreachable.se > 1e-9


def test_an_ill_conditioned_mode_still_gives_a_proposal():
    # calibration_k.py's data set 90 (n = 40, K = 3) stopped with SciPy's LinAlgError:
    # a proposal component with eigenvalues 1.5e-9 and 26, positive definite but below
    # SciPy's singularity cutoff. Such a component is widened along its thinnest
    # directions (to 1e-8 of its largest eigenvalue); a well-conditioned one is kept.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    bad = (q * np.array([1.5e-9, 7e-6, 2e-5, 2.3e-5, 26.0])) @ q.T
    fixed = smc._conditioned(bad)
    vals = np.linalg.eigvalsh(fixed)
    assert vals.min() == pytest.approx(smc.PROPOSAL_MIN_EIG * 26.0, rel=1e-6)
    np.testing.assert_allclose(sorted(vals)[1:], [7e-6, 2e-5, 2.3e-5, 26.0], rtol=1e-6)
    good = np.diag([1.0, 0.01, 3.0, 1e-6, 2.0])
    assert smc._conditioned(good) is good
    points = rng.normal(size=(1000, 5)) * np.sqrt([1.4, 0.3, 0.003, 13.0, 11.0])
    mix, dists = smc._proposal(points, rng, 4, 1.5, 0.1, modes=[(np.zeros(5), bad)],
                               mode_share=0.05)
    assert len(dists) == len(mix) and np.isfinite(dists[-1].logpdf(np.zeros(5)))


def test_gradient_of_the_particles_density_matches_finite_differences():
    # central differences, step 1e-6: agreement to 1e-6 absolute (with and without errors,
    # a Dirichlet concentration != 1 so its term is exercised)
    rng = np.random.default_rng(0)
    z = rng.normal(size=20)
    e2 = rng.uniform(0.1, 0.5, 20)
    K = 3
    h = Priors(weights_alpha=1.7).standardized(K, 0.0, 1.0)
    args = [np.ascontiguousarray(h[k]) for k in
            ("weights_alpha", "means_mu", "means_sigma", "sigmas_sigma")]
    theta = rng.normal(size=(1, 3 * K - 1)) * 0.5
    for e in (np.zeros(1), e2):
        ll, lp, grad = smc._evaluate(theta, K, z, e, *args, 0.7)

        def f(t, e=e):
            a, b, _ = smc._evaluate(t, K, z, e, *args, 0.7)
            return b[0] + 0.7 * a[0]

        eye = np.eye(3 * K - 1) * 1e-6
        num = [(f(theta + eye[j]) - f(theta - eye[j])) / 2e-6 for j in range(3 * K - 1)]
        np.testing.assert_allclose(grad[0], num, atol=1e-6)
        w, mu, sg = smc._params(theta, K)
        var = sg[0] ** 2 + (e if e.size > 1 else e[0])[:, None] if e.size > 1 else sg[0] ** 2
        ref = np.logaddexp.reduce(np.log(w[0]) + stats.norm.logpdf(
            z[:, None], mu[0], np.sqrt(var)), axis=1).sum()
        assert ll[0] == pytest.approx(ref, rel=1e-12)


def test_posterior_concentrates_on_the_true_k():
    # three well-separated components (n = 120, seed 4): p(K = 3) must lead among 2..4,
    # with K = 3 neither the first nor the last candidate
    sim = bayesgmm.datasets.simulate(120, [0.3, 0.4, 0.3], [-6.0, 0.0, 6.0],
                                     [1.0, 1.0, 1.0], random_seed=4)
    pk = _quiet(sim.x, ks=range(2, 5), random_seed=2, **FAST)
    assert pk.best == 3
    assert pk.probabilities[1] > 0.6, pk.to_dataframe()
    assert pk.probabilities.sum() == pytest.approx(1.0)
    # K = 3's draws: three components where the data were made
    assert pk.fits[3]["posterior"]["means"].sizes["component"] == 3
    means = pk.fits[3]["posterior"]["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(means, [-6.0, 0.0, 6.0], atol=0.6)


def test_measurement_errors_enter_the_evidence():
    # the same points with large errors: the evidence of the errors-in model is that of
    # a wider density, and it differs from the error-free one
    x = np.random.default_rng(7).normal(0.0, 1.0, 25)
    a = _quiet(x, ks=[1], random_seed=0, **FAST)
    b = _quiet(x, ks=[1], X_err=np.full(25, 0.8), random_seed=0, **FAST)
    assert abs(a.log_evidence[0] - b.log_evidence[0]) > 10 * math.hypot(
        a.log_evidence_se[0], b.log_evidence_se[0])
    assert b.fits[1]["posterior"]["sigmas"].mean() < a.fits[1]["posterior"]["sigmas"].mean()


def test_falls_back_to_smc_with_a_warning_when_importance_fails_its_check():
    # 100 importance draws cannot reach the ESS of 200 the check asks: SMC's estimate is
    # reported, the method says so, a warning names the figures, and the draws are SMC's
    # particles, one chain per run; the estimate stays near the brute force (0.15, SMC's
    # bias at K = 2 on these points was under 0.1)
    x = _TWELVE
    with pytest.warns(bayesgmm.SamplingWarning,
                      match=r"rests on SMC alone .* ESS .* the second with 4 rounds"):
        pk = bayesgmm.posterior_k(x, ks=[2], random_seed=1, n_particles=500, n_runs=3,
                                  n_importance=100, draws=200)
    assert pk.method == ["smc"]
    assert pk.log_evidence[0] == pk.log_evidence_smc[0]
    assert pk.fits[2]["posterior"].sizes["chain"] == 3
    reference, _ = _prior_monte_carlo(2, 1_000_000, 5)
    assert abs(pk.log_evidence[0] - reference) < 0.15


def test_a_failed_importance_check_is_retried_with_more_rounds(monkeypatch):
    # the first importance run (two rounds from SMC's particles) is made to fail its
    # check; the second, with SMC_RETRY_ROUNDS rounds, passes on its own figures and is
    # the one used: not SMC's estimate, and within 4 combined se of the brute force
    # (1e6 prior draws, seed 5; the twelve points at K = 2)
    real, calls = smc.importance, []

    def first_fails(*args, **kwargs):
        imp = real(*args, **kwargs)
        calls.append(kwargs.get("rounds", 2))
        return dataclasses.replace(imp, pareto_k=0.95) if len(calls) == 1 else imp

    monkeypatch.setattr(smc, "importance", first_fails)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the retry passed: nothing to warn about
        pk = bayesgmm.posterior_k(_TWELVE, ks=[2], random_seed=1, **FAST)
    assert calls == [2, posterior_k_module.SMC_RETRY_ROUNDS]
    assert pk.method == ["importance"] and pk.pareto_k[0] < posterior_k_module.PARETO_K_MAX
    assert pk.fits[2].attrs["importance_retried"]
    assert pk.log_evidence[0] != pk.log_evidence_smc[0]
    reference, ref_se = _prior_monte_carlo(2, 1_000_000, 5)
    assert abs(pk.log_evidence[0] - reference) < 4 * math.hypot(ref_se, pk.log_evidence_se[0])


def test_auto_takes_smc_on_small_data_and_nuts_beyond(monkeypatch):
    # "auto": SMC's proposal where n K <= SMC_MAX_NK (12 points x K = 2 here), NUTS's
    # beyond (the limit patched below 24, so the same data take the other path)
    x = _TWELVE
    pk = _quiet(x, ks=[2], random_seed=1, **FAST)
    assert pk.method == ["importance"] and np.isfinite(pk.log_evidence_smc[0])
    assert pk.fits[2]["posterior"].attrs["sampler"] == "smc"
    monkeypatch.setattr(posterior_k_module, "SMC_MAX_NK", 23)
    nuts = _quiet(x, ks=[2], random_seed=1, **FAST)
    assert nuts.method == ["nuts+importance"] and np.isnan(nuts.log_evidence_smc[0])
    assert nuts.fits[2]["posterior"].attrs["sampler"] == "nuts+importance"
    # the same evidence either way (brute force 1e6 prior draws, 4 combined se)
    tol = 4 * math.hypot(pk.log_evidence_se[0], nuts.log_evidence_se[0])
    assert abs(pk.log_evidence[0] - nuts.log_evidence[0]) < tol
    # Richardson & Green's prior stays with SMC whatever the size
    rg = _quiet(x, ks=[2], random_seed=1, priors="richardson_green", **FAST)
    assert rg.method == ["importance"]


def test_a_failed_check_on_nuts_draws_is_kept_flagged_and_warned():
    # 100 importance draws cannot reach the ESS of 200 the check asks: the NUTS-based
    # estimate is kept (no SMC: the path is for data where SMC costs too much), flagged
    # in method and reliable, and a warning gives the figures
    x = _TWELVE
    with pytest.warns(bayesgmm.SamplingWarning, match="failed its importance check"):
        pk = bayesgmm.posterior_k(x, ks=[2], random_seed=1, method="nuts",
                                  **{**FAST, "n_importance": 100})
    assert pk.method == ["nuts+importance (check failed)"]
    assert not pk.reliable[0] and np.isnan(pk.log_evidence_smc[0])
    reference, _ = _prior_monte_carlo(2, 1_000_000, 5)
    assert abs(pk.log_evidence[0] - reference) < 0.5  # rough, but of the right size


def test_prior_over_k_and_seed():
    x = np.random.default_rng(2).normal(0.0, 1.0, 20)
    one = _quiet(x, ks=[1, 2], prior_k={1: 0.0, 2: 1.0}, random_seed=3, **FAST)
    assert one.probabilities.tolist() == [0.0, 1.0]
    again = _quiet(x, ks=[1, 2], prior_k={1: 0.0, 2: 1.0}, random_seed=3, **FAST)
    np.testing.assert_array_equal(one.log_evidence, again.log_evidence)
    assert "p(K = 2 | data) = 1.000" in str(one)


@pytest.mark.parametrize("kwargs, match", [
    ({"X": np.r_[np.arange(20.0).reshape(10, 2), [[np.nan, np.nan]]]},
     "every feature missing"),
    ({"ks": [1, 2], "prior_k": [1.0]}, "1 values for 2"),
    ({"ks": [1, 2], "prior_k": {1: 1.0}}, "no probability for K"),
    ({"ks": [2], "priors": {"means_mu": [0.0, 1.0]}}, "differs between components"),
    ({"n_runs": 1}, "n_runs must be an integer >= 2"),
    ({"ks": [0, 1]}, "ks must be integers >= 1"),
    ({"ks": [1, 50]}, "exceed the 10 points"),
    ({"method": "bridge"}, "method must be 'auto', 'nuts' or 'smc'"),
    ({"X": np.arange(20.0).reshape(10, 2), "method": "nuts"}, "1-D for now"),
    ({"priors": "richardson_green", "method": "nuts"}, "use method='smc'"),
])
def test_bad_input(kwargs, match):
    call = {"X": np.arange(10.0), "ks": [1], **FAST, **kwargs}
    with pytest.raises(DataError, match=match):
        bayesgmm.posterior_k(call.pop("X"), **call)


def test_density_averaged_over_k():
    # the K-averaged density is sum_K p(K | data) times each K's posterior mean density.
    # Direct means over all 4,000 averaged draws and all of each K's 800 draws: Monte
    # Carlo error about 2% of the peak (12 points, wide posteriors), tolerance 6%;
    # bayesgmm.density (500 draws) on the averaged tree within 15%
    x = _TWELVE
    pk = _quiet(x, ks=[1, 2, 3], random_seed=4, **FAST)
    assert pk.probabilities.max() < 0.95  # a real average, not one K
    grid = np.linspace(-4.0, 4.0, 41)

    def mean_density(tree):
        post = tree["posterior"]
        K = post.sizes["component"]
        w, mu, sg = (post[v].values.reshape(-1, K) for v in ("weights", "means", "sigmas"))
        return (w[:, None] * stats.norm.pdf(grid[None, :, None], mu[:, None],
                                            sg[:, None])).sum(-1).mean(0)

    avg = pk.averaged(n_draws=4000, random_seed=1)
    ref = sum(p * mean_density(pk.fits[int(k)])
              for k, p in zip(pk.ks, pk.probabilities, strict=True))
    np.testing.assert_allclose(mean_density(avg), ref, atol=0.06 * ref.max())
    band = bayesgmm.density(avg, grid, deconvolved=True)
    np.testing.assert_allclose(band["mean"].values, ref, atol=0.15 * ref.max())
    assert np.all(band["lower"].values <= band["upper"].values)
    counts = np.bincount(avg["posterior"]["n_components"].values.ravel(), minlength=4)[1:]
    np.testing.assert_allclose(counts / 4000, pk.probabilities, atol=0.03)  # 4 sd at n=4000
    with pytest.raises(DataError, match="averaged over K"):
        bayesgmm.membership(avg, [0.0])
    # LOO stacking instead of p(K | data): ArviZ's weights, and the draws follow them
    # (the same 4 sd at n = 4,000), not p(K | data) where the two differ by more
    sw = pk.stacking_weights()
    assert list(sw.index) == [1, 2, 3] and sw.sum() == pytest.approx(1.0)
    stacked = pk.averaged(n_draws=4000, random_seed=1, weights="stacking")
    counts = np.bincount(stacked["posterior"]["n_components"].values.ravel(),
                         minlength=4)[1:] / 4000
    np.testing.assert_allclose(counts, sw.to_numpy(), atol=0.03)
    assert stacked.attrs["model_average_weights"] == "stacking"
    with pytest.raises(DataError, match="'posterior' or 'stacking'"):
        pk.averaged(weights="loo")


@pytest.mark.parametrize("make_err", [None, lambda x: np.where(x == x[0], 0.0, 0.1)])
def test_repeated_values_without_errors_are_refused(make_err):
    # a component narrowing onto two equal values keeps the posterior level as sigma ->
    # 0: no evidence exists. Refused (the message says what to pass), also when only the
    # repeated points lack an error; with an error on them it runs
    x = np.r_[np.random.default_rng(0).normal(0, 1, 30), 0.25, 0.25]
    x[0] = 0.25
    err = None if make_err is None else make_err(x)
    with pytest.raises(DataError, match=r"repeat exactly.*X_err = u / sqrt\(12\)"):
        bayesgmm.posterior_k(x, ks=[1], X_err=err, random_seed=0, **FAST)
    with pytest.raises(DataError, match="repeat exactly"):
        bayesgmm.fit(x, 2, X_err=err, sampler="smc", progressbar=False)
    pk = _quiet(x, ks=[1], X_err=np.full(x.size, 0.1 / np.sqrt(12)), random_seed=0, **FAST)
    assert np.isfinite(pk.log_evidence[0])


def test_the_figure_hatches_exactly_the_unchecked_evidences():
    # plots.selection keeps its own list (readers never import bayes): it must say
    # what posterior_k.evidence_checked says for every method PosteriorK reports
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from bayesgmm.bayes.posterior_k import evidence_checked
    from bayesgmm.plots import plot_posterior_k
    from bayesgmm.plots.selection import CHECKED_METHODS

    methods = ["importance", "smc", "nuts+importance", "nuts+importance (check failed)",
               "empty-component"]
    assert set(CHECKED_METHODS) == {m for m in methods if evidence_checked(m)}
    table = pd.DataFrame({"p(K | data)": [0.1, 0.2, 0.3, 0.2, 0.2], "sd": 0.01,
                          "method": methods}, index=pd.Index([1, 2, 3, 4, 5], name="K"))
    fig = plot_posterior_k(table, chosen=3)
    bars = fig.axes[0].patches
    assert [bool(b.get_hatch()) for b in bars] == [not evidence_checked(m) for m in methods]


def _fit_quiet(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = bayesgmm.fit(*args, **kwargs)
    return dt, [str(w.message) for w in caught if issubclass(w.category,
                                                              bayesgmm.SamplingWarning)]


def test_fit_by_smc_takes_gibbs_draws_where_importance_fails(monkeypatch):
    # fit(sampler="smc") on the twelve points at K = 3 (one component too many): with
    # 100 importance draws the check fails (ESS < 200), and the draws then come from the
    # allocations' Gibbs sampler started at SMC's particles, not the particles. They
    # must agree with the exact posterior (importance sampling at its full budget,
    # whose check passes) on every parameter's mean within 4 combined Monte Carlo se
    # (ArviZ's mcse of each; 9 figures, a chance miss about 1 in 2,000).
    from arviz_stats import mcse

    from bayesgmm.bayes import empty, inference

    x = _TWELVE
    ref, said = _fit_quiet(x, 3, sampler="smc", random_seed=0)
    assert ref["posterior"].attrs["sampler"] == "smc" and not said
    monkeypatch.setattr(inference, "SMC_IMPORTANCE", 100)
    got, said = _fit_quiet(x, 3, sampler="smc", random_seed=0)
    assert got["posterior"].attrs["sampler"] == "gibbs"
    assert any("Gibbs sampler started at SMC's particles" in m for m in said), said
    assert got["posterior"].sizes["chain"] == 4  # fit's chains, one Gibbs chain each
    for name in ("weights", "means", "sigmas"):
        a, b = ref["posterior"][name], got["posterior"][name]
        se = np.hypot(mcse(a.to_dataset())[name].values, mcse(b.to_dataset())[name].values)
        z = (b.mean(("chain", "draw")).values - a.mean(("chain", "draw")).values) / se
        assert np.all(np.abs(z) < 4), (name, z)
    # the choice's other way: Gibbs chains that do not agree keep SMC's particles
    monkeypatch.setattr(empty, "RHAT_MAX", 1.0)
    kept, said = _fit_quiet(x, 3, sampler="smc", random_seed=0)
    assert kept["posterior"].attrs["sampler"] == "smc"
    assert any("did not settle either" in m for m in said), said

