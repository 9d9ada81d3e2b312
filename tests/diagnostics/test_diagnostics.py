"""diagnose(): each check on a real short fit and on hand-built DataTrees that break it.

The hand-built trees start from an ideal posterior (independent draws around fixed values,
iid energies, replicated data from the same mixture as the observed data) and change one
thing, so each test shows one check failing for the reason it names.
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import MU, SG, W, _mixture, _tree

import bayesgmm
from bayesgmm import SamplingWarning
from bayesgmm.datasets import simulate
from bayesgmm.diagnostics import Diagnosis, diagnose, mixture_checks, mixture_warnings


def _checks(d: Diagnosis) -> dict:
    return {r["name"]: r for r in d.checks.to_dict(orient="records")}


def _only_failure(d: Diagnosis, name: str, *words: str) -> dict:
    """Assert that ``name`` is the one failed check and its message says what to try."""
    checks = _checks(d)
    assert not d.ok
    assert [k for k, c in checks.items() if not c["ok"]] == [name], d.checks
    for word in words:
        assert word in checks[name]["message"], (word, checks[name]["message"])
    return checks[name]


# ---------------------------------------------------------------------- real fits


@pytest.fixture(scope="module")
def dt_fit():
    sim = simulate(300, W, MU, SG, random_seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return bayesgmm.fit(sim.x, 2, draws=200, tune=300, chains=2, progressbar=False,
                            random_seed=3)


def test_real_fit_passes_with_short_run_thresholds(dt_fit):
    # 2 chains x 200 draws cannot give ESS 400, so the default flags ESS; with thresholds
    # suited to a run this short every check passes on well-separated data (n = 300)
    d = diagnose(dt_fit, rhat_max=1.05, ess_min=100)
    assert d.ok, d.checks
    assert "can be trusted" in d.verdict
    assert not d.checks["skipped"].any()
    # PPC p-values of a model that generated the data are far from 0 and 1
    ppc = d.checks.set_index("name").loc[["ppc_sd", "ppc_skewness", "ppc_tails"], "value"]
    assert ((ppc > 0.05) & (ppc < 0.95)).all()


def test_real_fit_default_thresholds_ask_for_more_draws(dt_fit):
    d = diagnose(dt_fit)
    checks = _checks(d)
    assert not checks["ess_bulk"]["ok"] or not checks["ess_tail"]["ok"]
    assert "Do not trust" in d.verdict and "First try" in d.verdict
    assert "raise draws" in (checks["ess_tail"]["message"] + checks["ess_bulk"]["message"])


def test_table_matches_arviz_and_em(dt_fit):
    import arviz_stats as azs

    t = diagnose(dt_fit).table
    # ArviZ's default interval (89% equal-tailed), named as arviz_stats.summary names it
    assert list(t.columns) == ["mean", "sd", "eti89_lb", "eti89_ub", "ess_bulk", "ess_tail",
                               "r_hat", "em"]
    assert list(t.index) == [f"{v}[{k}]" for v in ("weights", "means", "sigmas")
                             for k in (0, 1)]
    np.testing.assert_allclose(t.loc[["means[0]", "means[1]"], "r_hat"],
                               azs.rhat(dt_fit)["means"].values, rtol=1e-12)
    np.testing.assert_allclose(t.loc[["means[0]", "means[1]"], "ess_tail"],
                               azs.ess(dt_fit, method="tail")["means"].values, rtol=1e-12)
    np.testing.assert_allclose(t.loc[["sigmas[0]", "sigmas[1]"], "em"],
                               dt_fit["em_estimate"]["sigmas"].values)
    # data units: an 89% equal-tailed interval around the true means (n = 300)
    m = dt_fit["posterior"]["means"].values.reshape(-1, 2)
    np.testing.assert_allclose(t.loc["means[1]", ["eti89_lb", "eti89_ub"]].astype(float),
                               np.quantile(m[:, 1], [0.055, 0.945]), rtol=1e-2)
    assert (t["eti89_lb"] < t["mean"]).all() and (t["mean"] < t["eti89_ub"]).all()
    t50 = diagnose(dt_fit, ci_prob=0.5).table
    assert (t50["eti50_ub"] - t50["eti50_lb"] < t["eti89_ub"] - t["eti89_lb"]).all()


def test_to_dict_is_json(dt_fit):
    d = diagnose(dt_fit).to_dict()
    back = json.loads(json.dumps(d))
    assert back["ok"] is False and isinstance(back["verdict"], str)
    assert {c["name"] for c in back["checks"]} >= {"r_hat", "e_bfmi", "ppc_tails"}
    assert set(back["table"]["means[0]"]) >= {"mean", "eti89_lb", "eti89_ub", "em"}


def test_mixture_checks_unchanged_contract(dt_fit):
    checks = mixture_checks(dt_fit)
    assert [c["name"] for c in checks] == ["chains_agree", "near_em", "no_empty_component",
                                          "no_divergences"]
    assert all({"name", "ok", "message", "value"} <= set(c) for c in checks)
    assert mixture_warnings(dt_fit) == []


# ---------------------------------------------------------------------- synthetic trees


def test_ideal_tree_passes_everything():
    d = diagnose(_tree())
    assert d.ok, d.checks
    assert isinstance(d.checks, pd.DataFrame) and len(d.checks) == 14


def test_high_rhat_from_shifted_chain():
    means = MU + 0.05 * np.random.default_rng(1).standard_normal((4, 500, 2))
    means[0] += 0.03  # chain 0 shifted by 0.6 sd: R-hat ~1.05, not yet "different modes"
    d = diagnose(_tree(means=means))
    checks = _checks(d)
    c = checks["r_hat"]
    assert not c["ok"] and c["value"] > 1.01
    assert "run longer" in c["message"] and "chains" in c["message"]
    # a shifted chain also inflates the between-chain variance in ESS; nothing else fails
    assert {k for k, c in checks.items() if not c["ok"]} <= {"r_hat", "ess_bulk", "ess_tail",
                                                            "rank_ecdf"}
    assert checks["chains_agree"]["ok"]
    assert "Do not trust" in d.verdict and "run longer" in d.verdict


def test_low_ess_from_autocorrelated_draws():
    rng = np.random.default_rng(2)
    ar = np.zeros((4, 500, 2))
    for t in range(1, 500):  # AR(1), phi = 0.97: ESS about 4 * 500 * 0.03 / 1.97 = 30
        ar[:, t] = 0.97 * ar[:, t - 1] + np.sqrt(1 - 0.97**2) * rng.standard_normal((4, 2))
    d = diagnose(_tree(sigmas=SG + 0.03 * ar), rhat_max=2.0)  # ESS alone
    checks = _checks(d)
    for name in ("ess_bulk", "ess_tail"):
        assert not checks[name]["ok"] and checks[name]["value"] < 200
        assert "raise draws" in checks[name]["message"]
    assert "draw more samples" in d.verdict


def test_divergences():
    div = np.zeros((4, 500), bool)
    div[1, ::50] = True
    c = _only_failure(diagnose(_tree(diverging=div)), "no_divergences", "target_accept")
    assert c["value"] == 10


@pytest.mark.parametrize("flag", ["maxdepth_reached", "reached_max_treedepth"])
def test_tree_depth_saturation_nutpie_and_pymc_names(flag):
    hit = np.zeros((4, 500), bool)
    hit[:, ::20] = True  # 5% of draws
    dt = _tree(drop=("sample_stats",))
    dt["sample_stats"] = xr.DataTree(xr.Dataset(
        {flag: (("chain", "draw"), hit), "diverging": (("chain", "draw"), hit & False),
         "energy": (("chain", "draw"), np.random.default_rng(3).standard_normal((4, 500)))},
        coords={"chain": np.arange(4), "draw": np.arange(500)}))
    c = _only_failure(diagnose(dt), "tree_depth", "longer tune")
    assert c["value"] == pytest.approx(0.05)
    assert diagnose(dt, depth_frac_max=0.1).ok


def test_low_ebfmi_from_random_walk_energy():
    # a random-walk energy has E-BFMI ~ 1/S-ish: far under 0.3
    energy = np.cumsum(np.random.default_rng(4).standard_normal((4, 500)), axis=1)
    c = _only_failure(diagnose(_tree(energy=energy)), "e_bfmi", "longer tune")
    assert c["value"] < 0.3


def test_near_empty_component():
    w0 = 0.995 + 0.001 * np.random.default_rng(5).standard_normal((4, 500))
    d = diagnose(_tree(weights=np.stack([w0, 1 - w0], axis=-1)), far_from_em_sd=1e9)
    c = _checks(d)["no_empty_component"]
    assert not c["ok"] and "K - 1" in c["message"]
    assert "K - 1" in d.verdict


def test_coincident_neighbours_flag_labels():
    rng = np.random.default_rng(6)
    lo = 1.0 + 0.05 * rng.standard_normal((4, 500))
    gap = np.abs(0.1 * rng.standard_normal((4, 500)))  # often under 0.1 * sigma ~ 0.06
    means = np.stack([lo, lo + gap], axis=-1)
    d = diagnose(_tree(means=means), far_from_em_sd=1e9)
    c = _only_failure(d, "labels_identified", "K - 1")
    assert c["value"] > 0.3
    # well apart: the ordering is never what separates them
    assert _checks(diagnose(_tree()))["labels_identified"]["value"] == 0.0


def test_misfit_ppc_from_too_narrow_model():
    # components 0.3 times too narrow: the total sd is dominated by the gap between the
    # means (about 2 either way), but the replicates almost never reach the observed tails
    rng = np.random.default_rng(7)
    narrow = _mixture(rng, (4, 500, 300), sg=0.3 * SG)
    d = diagnose(_tree(x=narrow))
    c = _only_failure(d, "ppc_tails", "numbers of components", "outliers")
    assert c["value"] < 0.01
    assert "sampler explored the posterior reliably" in d.verdict
    assert "does not describe the data well" in d.verdict


def test_misfit_ppc_spread_and_skewness():
    # replicates with the means too close (sd ~1.1 vs 2.1) and unequal weights (skewed)
    rng = np.random.default_rng(8)
    bad = _mixture(rng, (4, 500, 300), w=np.array([0.8, 0.2]), mu=np.array([0.0, 2.0]))
    checks = _checks(diagnose(_tree(x=bad)))
    assert not checks["ppc_sd"]["ok"] and checks["ppc_sd"]["value"] < 0.01  # P(T_rep > T_obs)
    assert not checks["ppc_skewness"]["ok"]
    assert "numbers of components" in checks["ppc_sd"]["message"]


def test_missing_groups_are_skipped_not_failed():
    dt = _tree(drop=("sample_stats", "posterior_predictive", "em_estimate"))
    d = diagnose(dt)
    assert d.ok, d.checks
    checks = _checks(d)
    for name in ("e_bfmi", "tree_depth", "no_divergences", "near_em", "ppc_sd"):
        assert checks[name]["skipped"] and checks[name]["ok"]
        assert checks[name]["message"].startswith("skipped")
    assert "could not be run" in d.verdict
    assert np.isnan(d.table["em"]).all()
    json.dumps(d.to_dict())


# ------------------------------------------------- review fixes: few draws, few replicates


def test_three_draws_diagnose_without_error_rank_check_skipped():
    # fit calls diagnose after every run; with 3 draws per chain ESS is not finite and
    # thinning cannot be computed: the rank check is skipped, nothing raises
    d = diagnose(_tree(S=3))
    row = _checks(d)["rank_ecdf"]
    assert row["skipped"] and "draws" in row["message"]


def test_ppc_skipped_with_too_few_replicates():
    # 4 chains x 20 draws = 80 replicated data sets < 1 / ppc_alpha = 100: a two-sided
    # p-value on 80 replicates would fail a correct model far more often than 1%
    d = diagnose(_tree(S=20))
    for name in ("ppc_sd", "ppc_skewness", "ppc_tails"):
        row = _checks(d)[name]
        assert row["skipped"] and "80 replicated" in row["message"], row
    d = diagnose(_tree(S=25))  # 100 replicates: computed
    assert not _checks(d)["ppc_sd"]["skipped"]


def test_rank_row_threshold_is_the_per_panel_level():
    row = _checks(diagnose(_tree()))["rank_ecdf"]
    assert row["threshold"] == pytest.approx(0.01 / 6)  # alpha / (2 weights + 2 means + 2 sigmas)


def test_tail_fraction_of_rounded_data_is_not_biased():
    from bayesgmm.diagnostics.predictive import _statistics

    # 20,000 normal values rounded to whole units (like waiting times in minutes): the
    # observed 1% / 99% quantiles fall on recorded values, and many points tie there.
    # The replicates are unrounded draws of the same model, so the observed tail fraction
    # must lie among theirs. With ties counted half it is within 3 sd of their mean
    # (50 replicates, fixed seed). Counting ties as inside gives 0.0178, below every
    # replicate (0.021-0.028).
    rng = np.random.default_rng(0)
    obs = np.round(rng.normal(70, 4, 20_000))
    rep = rng.normal(70, 4, (50, 20_000))
    (_, _, t_obs), (_, _, t_rep) = _statistics(obs, rep, 0.01)
    assert abs(t_obs[0] - t_rep.mean()) < 3 * t_rep.std()
    lo, hi = np.quantile(obs, [0.01, 0.99])
    assert ((obs < lo) | (obs > hi)).mean() < t_rep.min()
