"""The evidence ratio through an empty component's probability (Nobile 2004).

Checked against evidences computed without it (plain Monte Carlo over the prior), against
Richardson & Green's published p(K | data) on the galaxy data, and as ``posterior_k``'s
choice where importance sampling fails its check.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import warnings

import numpy as np
import pytest

import bayesgmm
from bayesgmm.bayes import smc
from bayesgmm.bayes.empty import empty_probability, log_c
from bayesgmm.bayes.priors import Priors, resolve

posterior_k_module = importlib.import_module("bayesgmm.bayes.posterior_k")

#: ten points from one Normal: K = 2 and 3 overfit them, so a component is often empty
_ONE = np.random.default_rng(11).normal(0.0, 1.0, 10)
_ERR = np.random.default_rng(12).uniform(0.2, 0.6, 10)


@functools.cache
def _brute_force(K, rg, with_errors, n_draws=2_000_000, seed=5):
    """log p(x | K) of ``_ONE`` (standardized) by averaging the likelihood over the prior.

    Returns the log evidence and its standard error.
    """
    x = _ONE
    loc, scale = x.mean(), x.std()
    z = (x - loc) / scale
    e2 = (_ERR / scale) ** 2 if with_errors else np.zeros(1)
    h = Priors.from_any(resolve("richardson_green" if rg else None, x)).standardized(
        K, loc, scale)
    rng = np.random.default_rng(seed)
    chunks = []
    for _ in range(n_draws // 100_000):
        m = 100_000
        w = rng.dirichlet(np.full(K, h["weights_alpha"][0]), m)
        mu = h["means_mu"][0] + h["means_sigma"][0] * rng.standard_normal((m, K))
        if rg:
            beta = rng.gamma(h["precision_g"][0], 1 / h["precision_h"][0], (m, 1))
            var = beta / rng.gamma(h["precision_alpha"][0], 1.0, (m, K))
        else:
            var = (h["sigmas_sigma"][0] * rng.standard_normal((m, K))) ** 2
        v = var[:, None, :] + np.broadcast_to(e2, z.shape)[None, :, None]
        lp = (np.log(w)[:, None, :] - 0.5 * np.log(2 * np.pi * v)
              - 0.5 * (z[None, :, None] - mu[:, None, :]) ** 2 / v)
        chunks.append(np.logaddexp.reduce(lp, axis=2).sum(axis=1))
    ll = np.concatenate(chunks)
    top = ll.max()
    e = np.exp(ll - top)
    return top + math.log(e.mean()), e.std() / (e.mean() * math.sqrt(e.size))


def _p_empty(K, rg, with_errors, seed=0):
    x = _ONE
    loc, scale = x.mean(), x.std()
    z = (x - loc) / scale
    e2 = (_ERR / scale) ** 2 if with_errors else np.zeros(1)
    h = Priors.from_any(resolve("richardson_green" if rg else None, x)).standardized(
        K, loc, scale)
    starts = smc.tempered_1d(z, e2, K, h).prior(np.random.default_rng(seed), 4)
    return empty_probability(z, e2, K, h, starts, np.random.default_rng(seed))


@pytest.mark.parametrize("rg, with_errors", [(False, False), (False, True), (True, False)])
def test_the_ratio_of_evidences_matches_brute_force(rg, with_errors):
    # log p(x | K) - log p(x | K - 1) = log c_K-1 - log P(empty | x, K) for K = 2, 3 on
    # ten points from one Normal, under fit's default priors (with and without per-point
    # errors: the Gibbs sampler's slice step for the widths takes them) and Richardson &
    # Green's (beta's full conditional): against 2e6 prior draws per K (seed 5; se of
    # each log evidence about 0.005). Tolerance: 4 combined se.
    for K in (2, 3):
        hi, hi_se = _brute_force(K, rg, with_errors)
        lo, lo_se = _brute_force(K - 1, rg, with_errors)
        p = _p_empty(K, rg, with_errors)
        assert p.ok, p
        assert 0.05 < p.value < 0.6, p  # an overfitted K: an empty component is common
        ratio = log_c(K - 1, _ONE.size, 1.0) - math.log(p.value)
        tol = 4 * math.sqrt(hi_se**2 + lo_se**2 + p.log_se**2)
        assert abs(ratio - (hi - lo)) < tol, (K, ratio, hi - lo, tol)


def test_log_c_is_the_dirichlet_multinomial_ratio():
    # c_K = E[(1 - u)^n] for u ~ Beta(delta, K delta): the chance that n points drawn
    # with Dirichlet(delta) weights over K + 1 components all avoid the last one,
    # checked by simulation (2e6 draws, delta = 0.7, K = 3, n = 5: c about 0.21, se
    # about 2e-4; tolerance 5 se)
    rng = np.random.default_rng(0)
    u = rng.beta(0.7, 3 * 0.7, 2_000_000)
    sim = np.mean((1 - u) ** 5)
    assert math.exp(log_c(3, 5, 0.7)) == pytest.approx(sim, abs=5 * np.std((1 - u) ** 5)
                                                      / math.sqrt(u.size))
    assert log_c(3, 82, 1.0) == pytest.approx(math.log(3 / 85))  # delta = 1: K / (K + n)


#: Richardson & Green (1997), Table 1, galaxy data: p(K | data), K = 1..10 (as the
#: sBIC package's vignette quotes it; benchmarks/posterior_k_galaxy.py has K = 1..14)
RICHARDSON_GREEN = (0.000, 0.000, 0.061, 0.128, 0.182, 0.199, 0.160, 0.109, 0.071, 0.040)


@pytest.mark.parametrize("K", [5, 7, 10])
def test_galaxy_richardson_green_matches_the_published_ratio(K):
    # Richardson & Green (1997, Table 1; K uniform): p(K) / p(K - 1) = p(x | K) /
    # p(x | K - 1) = c_K-1 / P(empty | x, K), so their table implies P(empty | x, K) =
    # c_K-1 p(K - 1) / p(K): 0.0327, 0.0849, 0.1755 for K = 5, 7, 10. Their figures
    # have three decimals and reversible-jump Monte Carlo error (a second
    # reversible-jump program, Nmix, gives p(6) / p(7) 1.32 against their 1.24), so the
    # tolerance is 10% (measured: within 4%; se of ours about 2%)
    x = bayesgmm.datasets.load_example("galaxy")["velocity [km/s]"].to_numpy()
    loc, scale = x.mean(), x.std()
    z = (x - loc) / scale
    h = Priors.from_any(resolve("richardson_green", x)).standardized(K, loc, scale)
    starts = smc.tempered_1d(z, np.zeros(1), K, h).prior(np.random.default_rng(K), 4)
    p = empty_probability(z, np.zeros(1), K, h, starts, np.random.default_rng(K))
    implied = math.exp(log_c(K - 1, x.size, 1.0)) * RICHARDSON_GREEN[K - 2] / \
        RICHARDSON_GREEN[K - 1]
    assert p.ok, p
    assert p.value == pytest.approx(implied, rel=0.10), (p, implied)


def test_same_seed_same_answer_and_the_check():
    a = _p_empty(2, False, False, seed=3)
    b = _p_empty(2, False, False, seed=3)
    assert a == b
    assert a.chains == 4 and a.sweeps > 0 and a.rhat < 1.01
    # the check: R-hat and the relative error, each able to fail
    assert not dataclasses.replace(a, rhat=1.05).ok
    assert not dataclasses.replace(a, se=0.2 * a.value).ok


def _fail_importance_at(ks_failing, monkeypatch):
    """Make importance sampling fail its check (k-hat 0.95) for the K in ``ks_failing``.

    The set is read at each call, so a test can change it.
    """
    real = smc.importance

    def failing(particles, target, *args, **kwargs):
        imp = real(particles, target, *args, **kwargs)
        return dataclasses.replace(imp, pareto_k=0.95) if target.K in ks_failing else imp

    monkeypatch.setattr(smc, "importance", failing)


FAST = {"n_particles": 500, "n_runs": 2, "n_importance": 50_000, "draws": 200}


def test_a_failed_check_takes_the_ratio_from_k_minus_1(monkeypatch):
    # K = 2's importance check is made to fail while K = 1's passes: K = 2's evidence
    # is K = 1's times the empty-component ratio, reported as such, without a warning,
    # and within 4 combined se of the brute force (2e6 prior draws); not SMC's estimate
    _fail_importance_at({2}, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pk = bayesgmm.posterior_k(_ONE, ks=[1, 2], random_seed=0, **FAST)
    assert pk.method == ["importance", "empty-component"]
    assert pk.reliable.all()
    assert pk.log_evidence[1] != pk.log_evidence_smc[1]
    attrs = pk.fits[2].attrs
    assert attrs["evidence_method"] == "empty-component"
    assert 0.05 < attrs["empty_probability"] < 0.6 and attrs["empty_probability_rhat"] < 1.01
    log_jac = _ONE.size * math.log(_ONE.std())
    ref, ref_se = _brute_force(2, False, False)
    assert abs(pk.log_evidence[1] + log_jac - ref) < 4 * math.hypot(ref_se,
                                                                  pk.log_evidence_se[1])
    assert pk.log_evidence_se[1] >= pk.log_evidence_se[0]  # K = 1's error carried on


def test_the_gibbs_draws_replace_smc_particles_where_importance_failed(monkeypatch):
    # K = 2's importance check made to fail: its tree holds the Gibbs sampler's draws (4
    # chains of `draws`, means in increasing order), and their predictive density (a
    # label-free summary) matches that of importance sampling's draws from a run where
    # the check passed (one K per call, so no ratio), at five points: within 4 combined
    # Monte Carlo se (4 x 200 draws each, taken as independent: the Gibbs draws are
    # 100 sweeps apart; the densities' se is 1-3% here)
    from scipy import stats

    reference = _quiet_pk(_ONE, ks=[2])
    assert reference.method == ["importance"]
    _fail_importance_at({2}, monkeypatch)
    pk = _quiet_pk(_ONE, ks=[1, 2])
    assert pk.method[1] == "empty-component"
    post = pk.fits[2]["posterior"]
    assert post.attrs["sampler"] == "gibbs"
    assert post.sizes["chain"] == 4 and post.sizes["draw"] == FAST["draws"]
    assert (post["means"].diff("component") > 0).all()
    grid = np.quantile(_ONE, [0.05, 0.25, 0.5, 0.75, 0.95])

    def predictive(fit):
        p = fit["posterior"]
        w, m, sd = (p[v].values.reshape(-1, 2) for v in ("weights", "means", "sigmas"))
        dens = (w[:, None, :] * stats.norm.pdf(grid[None, :, None], m[:, None, :],
                                               sd[:, None, :])).sum(axis=2)
        return dens.mean(axis=0), dens.std(axis=0) / math.sqrt(dens.shape[0])

    (ours, ours_se), (theirs, theirs_se) = predictive(pk.fits[2]), predictive(
        reference.fits[2])
    assert np.all(np.abs(ours - theirs) < 4 * np.hypot(ours_se, theirs_se)), (
        ours, theirs, ours_se, theirs_se)


def _quiet_pk(x, ks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bayesgmm.posterior_k(x, ks=ks, random_seed=0, **FAST)


def test_no_ratio_without_a_checked_evidence_below(monkeypatch):
    # K = 1 fails too: nothing checked to start from, so both rest on SMC, warned; and
    # K = 3 without K = 2 among the candidates has nothing to start from either
    failing = {1, 2}
    _fail_importance_at(failing, monkeypatch)
    with pytest.warns(bayesgmm.SamplingWarning, match="K = 2 rests on SMC alone"):
        pk = bayesgmm.posterior_k(_ONE, ks=[1, 2], random_seed=0, **FAST)
    assert pk.method == ["smc", "smc"]
    failing.clear()
    failing.add(3)
    with pytest.warns(bayesgmm.SamplingWarning, match="K = 3 rests on SMC alone"):
        pk = bayesgmm.posterior_k(_ONE, ks=[1, 3], random_seed=0, **FAST)
    assert pk.method == ["importance", "smc"]


def test_a_ratio_that_fails_its_own_check_is_not_used_and_says_why(monkeypatch):
    # the Gibbs chains' figures are made to fail (R-hat 1.2): SMC's estimate is kept and
    # the warning gives the empty-component figures too
    _fail_importance_at({2}, monkeypatch)
    real = posterior_k_module._empty_ratio
    monkeypatch.setattr(posterior_k_module, "_empty_ratio", lambda *a: dataclasses.replace(
        real(*a), rhat=1.2))
    with pytest.warns(bayesgmm.SamplingWarning,
                      match=r"rests on SMC alone .* empty component, .*R-hat 1\.200"):
        pk = bayesgmm.posterior_k(_ONE, ks=[1, 2], random_seed=0, **FAST)
    assert pk.method == ["importance", "smc"]
    assert pk.fits[2].attrs["empty_probability_rhat"] == pytest.approx(1.2)


@pytest.mark.parametrize("khat, empty_min, used", [(0.6, 0.01, "empty-component"),
                                                    (0.3, 0.01, "importance"),
                                                    (0.6, 0.5, "importance")])
def test_importance_with_an_uncertain_k_hat_gives_way_to_the_ratio(khat, empty_min, used,
                                                                   monkeypatch):
    # importance sampling's se is trustworthy only below k-hat 0.5 (finite variance):
    # K = 2's check passes either way, but at 0.6 the empty-component ratio (which
    # passes its own check; P(empty) about 0.13) is used and at 0.3 importance sampling
    # is, without running the Gibbs sampler at all; with EMPTY_MIN raised above that
    # probability the Gibbs sampler runs but a passing importance estimate is kept
    monkeypatch.setattr(posterior_k_module, "EMPTY_MIN", empty_min)
    real, calls = smc.importance, []

    def with_khat(particles, target, *args, **kwargs):
        imp = real(particles, target, *args, **kwargs)
        return dataclasses.replace(imp, pareto_k=khat) if target.K == 2 else imp

    monkeypatch.setattr(smc, "importance", with_khat)
    gibbs = posterior_k_module._empty_ratio
    monkeypatch.setattr(posterior_k_module, "_empty_ratio",
                        lambda *a: calls.append(a[2]) or gibbs(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pk = bayesgmm.posterior_k(_ONE, ks=[1, 2], random_seed=0, **FAST)
    assert pk.method == ["importance", used]
    assert calls == ([] if khat < 0.5 else [2])


# ---- D dims

_rng = np.random.default_rng(3)
#: eight 2-D points, one value missing, per-feature errors (errors keep the evidence
#: clear of the near-singular covariances two points on a line allow)
_X2 = _rng.normal(size=(8, 2)) @ np.array([[1.0, 0.5], [0.0, 0.8]])
_X2[2, 1] = np.nan
_E2 = np.tile([0.1, 0.2], (8, 1))


def test_d_dim_ratio_matches_importance_sampling():
    # K = 1 -> 2 on the 2-D points above, with errors and a missing value: the ratio
    # log c_1 - log P(empty | x, 2) from the D-dim Gibbs sampler against the difference
    # of the two importance-sampling evidences (both checks passed with k-hat < 0.5, so
    # their se hold). Tolerance: 4 combined se (measured: 1.03 +- 0.04 against 1.01 +-
    # 0.01, seed 0)
    from bayesgmm.bayes.empty import empty_probability_md
    from bayesgmm.bayes.inference_md import prepare_md
    from bayesgmm.bayes.smc_md import TemperedMD

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # one K per call, so each is importance sampling's (K = 2 at the defaults)
        one = bayesgmm.posterior_k(_X2, ks=[1], X_err=_E2, random_seed=0, **FAST)
        two = bayesgmm.posterior_k(_X2, ks=[2], X_err=_E2, random_seed=0)
        problem = prepare_md(_X2, _E2, 2, None, np.random.default_rng(0), draws=10,
                             chains=1, seed_rng=np.random.default_rng(0),
                             progressbar=False, backend="native")
    for pk in (one, two):
        assert pk.method == ["importance"] and pk.pareto_k[0] < 0.5, pk.to_dataframe()
    starts = TemperedMD.build(problem.target).prior(np.random.default_rng(5), 4)
    p = empty_probability_md(problem.target, starts, np.random.default_rng(2))
    assert p.ok, p
    ratio = log_c(1, 8, 1.0) - math.log(p.value)
    diff = two.log_evidence[0] - one.log_evidence[0]
    tol = 4 * math.sqrt(one.log_evidence_se[0] ** 2 + two.log_evidence_se[0] ** 2
                        + p.log_se**2)
    assert abs(ratio - diff) < tol, (ratio, diff, tol)


def test_d_dim_failed_check_takes_the_ratio(monkeypatch):
    # K = 2's importance check made to fail in 2-D: the evidence comes through the
    # empty component, recorded in the tree's attrs, without a warning
    _fail_importance_at({2}, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pk = bayesgmm.posterior_k(_X2, ks=[1, 2], X_err=_E2, random_seed=0, **FAST)
    assert pk.method == ["importance", "empty-component"]
    assert pk.fits[2].attrs["evidence_method"] == "empty-component"
    assert pk.fits[2].attrs["empty_probability"] > 0.01
    post = pk.fits[2]["posterior"]
    assert post.attrs["sampler"] == "gibbs" and post.sizes["chain"] == 4
