"""fit warns (FailedCheckWarning) exactly when diagnose() fails a check, after the rerun rule.

The plumbing is tested on synthetic posteriors (``inference._sample`` replaced: no
sampling); one real nutpie run checks a case that fails for real (too few draws).
"""

import dataclasses
import functools
import json
import warnings

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from pymc.testing import mock_sample

from bayesgmm import SamplingError, SamplingWarning, diagnose, fit
from bayesgmm.bayes import inference
from bayesgmm.bayes.samplers import nutpie as nutpie_driver
from bayesgmm.bayes.target import Target
from bayesgmm.datasets import simulate
from bayesgmm.errors import FailedCheckWarning

SIM = simulate(300, [0.5, 0.5], [0.0, 4.0], [0.7, 0.9], random_seed=2)


def _fake_sample(kind):
    """An ``inference._sample`` whose draws are made up around the EM estimate.

    "good": independent draws (R-hat ~ 1, ESS ~ draws); "rhat": one chain shifted by
    half a posterior sd (R-hat ~ 1.03, chains still in one mode); "ess": AR(1) draws
    with rho = 0.995 (ESS of a few dozen); "divergences": good draws, 3 flagged divergent.
    """
    def sample(sampler, problem, tune, target_accept):
        K, em, chains, draws = problem.K, problem.em, problem.chains, problem.draws
        rng = np.random.default_rng(0)
        sds = {"weights": 0.03, "means": 0.08, "sigmas": 0.06}
        noise = rng.normal(size=(3, chains, draws, K))
        if kind == "ess":
            rho = 0.995
            for t in range(1, draws):
                noise[:, :, t] = rho * noise[:, :, t - 1] + np.sqrt(1 - rho**2) * noise[:, :, t]
        post = {}
        for i, var in enumerate(("weights", "means", "sigmas")):
            v = em[var][None, None, :] + sds[var] * noise[i]
            if kind == "rhat":
                v[0] += 0.5 * sds[var]
            post[var] = (("chain", "draw", "component"), v)
        post["weights"][1][:] /= post["weights"][1].sum(-1, keepdims=True)
        div = np.zeros((chains, draws), dtype=bool)
        if kind == "divergences":
            div[0, :3] = True
        return (xr.Dataset(post, coords={"chain": np.arange(chains), "draw": np.arange(draws)}),
                xr.Dataset({"diverging": (("chain", "draw"), div)}), sampler)

    return sample


def _fit_recording(**kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = fit(SIM.x, 2, progressbar=False, random_seed=1, **kw)
    failed = [w.message for w in caught if issubclass(w.category, FailedCheckWarning)]
    return dt, failed


@pytest.mark.parametrize("kind", ["good", "rhat", "ess", "divergences"])
def test_warns_exactly_when_diagnose_fails(monkeypatch, kind):
    monkeypatch.setattr(inference, "_sample", _fake_sample(kind))
    dt, failed = _fit_recording(draws=1000, chains=4, target_accept=0.8)
    checks = diagnose(dt).checks
    bad = checks[~checks["ok"]]
    # one warning per failed check of diagnose, and none when diagnose says ok
    assert sorted(w.check for w in failed) == sorted(bad["name"])
    assert (not failed) == diagnose(dt).ok == (kind == "good")
    want = {"rhat": "r_hat", "ess": "ess_bulk", "divergences": "no_divergences"}
    if kind != "good":
        w = next(w for w in failed if w.check == want[kind])
        row = bad.set_index("name").loc[want[kind]]
        assert (w.value, w.threshold) == (row["value"], row["threshold"])
        text = str(w)
        assert isinstance(w, SamplingWarning)
        if kind == "rhat":
            assert f"max rank-normalized R-hat {row['value']:.3f} > 1.01" in text
            assert "tune=2000, draws=2000" in text and "n_components=1" in text
        elif kind == "ess":
            assert f"min bulk ESS {row['value']:.0f} < 400" in text and "draws=" in text
        else:
            assert "3 divergent transition(s) > 0" in text and "target_accept=0.99" in text


def test_rerun_is_named_in_the_warning(monkeypatch):
    # the default target_accept: a failing first run is rerun (2x tune); the kept
    # second run's figures are what the warning reports, and it says it was the rerun
    # (the rerun rule's SMC step is kept off by its size limit: tested below)
    monkeypatch.setattr(inference, "_sample", _fake_sample("rhat"))
    monkeypatch.setattr(inference, "SMC_FALLBACK_MAX_VALUES", 299)
    dt, failed = _fit_recording(draws=1000, tune=300, chains=4)
    runs = json.loads(dt.attrs["sampling_runs"])
    assert [r["tune"] for r in runs] == [300, 600]
    assert "300 observed values is more than 299" in runs[-1]["smc_fallback"]
    text = str(next(w for w in failed if w.check == "r_hat"))
    assert "after fit's second run, tune=600, target_accept=0.8" in text
    assert "tune=1200" in text


@pytest.mark.parametrize("kind", ["rhat", "divergences"])
def test_only_rhat_failing_twice_ends_with_smc(monkeypatch, kind):
    # two runs failing R-hat: SMC samples instead and its draws are kept (a few hundred
    # particles: plumbing and the choice, not statistics); two runs with divergences but
    # R-hat fine: not a case for SMC, the second run is kept and nothing is recorded
    monkeypatch.setattr(inference, "_sample", _fake_sample(kind))
    monkeypatch.setattr(inference, "SMC_PARTICLES", 200)
    monkeypatch.setattr(inference, "SMC_IMPORTANCE", 10_000)
    monkeypatch.setattr(inference, "SMC_RUNS", 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = fit(SIM.x[:120], 2, draws=1000, chains=4, random_seed=1, progressbar=False)
    runs = json.loads(dt.attrs["sampling_runs"])
    said = [str(w.message) for w in caught if "both NUTS runs failed" in str(w.message)]
    if kind == "rhat":
        assert [r["sampler"] for r in runs] == ["nutpie", "nutpie", "smc"]
        assert len(said) == 1 and "max 1.0" in said[0] and "tune=2000" in said[0]
        assert dt.attrs["sampler"] == "smc" and dt.posterior["means"].shape == (4, 1000, 2)
        assert runs[-1]["evidence_method"] == "importance"
    else:
        assert len(runs) == 2 and not said and "smc_fallback" not in runs[-1]
        assert dt.attrs["sampler"] == "nutpie"


def test_short_runs_failing_rhat_twice_keep_nuts(monkeypatch):
    # 4 x 500 draws: R-hat can fail from the runs' length alone, so no SMC step; why not
    # is recorded
    monkeypatch.setattr(inference, "_sample", _fake_sample("rhat"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = fit(SIM.x[:120], 2, draws=500, chains=4, random_seed=1, progressbar=False)
    runs = json.loads(dt.attrs["sampling_runs"])
    assert len(runs) == 2 and dt.attrs["sampler"] == "nutpie"
    assert "4 chains x 500 draws are shorter" in runs[-1]["smc_fallback"]


@pytest.mark.slow
def test_real_run_with_too_few_draws_warns_like_diagnose():
    # 2 chains x 100 draws cannot reach diagnose's ESS >= 400: a real failing case
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = fit(SIM.x, 2, draws=100, tune=200, chains=2, random_seed=3,
                 progressbar=False, target_accept=0.8)
    failed = [w.message for w in caught if issubclass(w.category, FailedCheckWarning)]
    d = diagnose(dt)
    assert not d.ok
    assert sorted(w.check for w in failed) == sorted(d.checks.loc[~d.checks["ok"], "name"])
    ess = next(w for w in failed if w.check == "ess_bulk")
    assert ess.value < 400 and "chains=4" in str(ess)


def test_bad_start_never_reaches_nutpie(monkeypatch):
    # nutpie 0.16 can crash the process after a failed start: fit checks the start
    # itself and samples with PyMC instead (here PyMC's sampler is mocked)
    import nutpie

    called = []
    monkeypatch.setattr(nutpie, "sample", lambda *a, **k: called.append(1))
    build = Target.build
    monkeypatch.setattr(Target, "build", lambda *a, **k: dataclasses.replace(
        build(*a, **k), start=np.full(5, np.nan)))
    stats = {"diverging": lambda size: np.zeros(size, dtype=bool)}
    monkeypatch.setattr(pm, "sample",
                        functools.partial(mock_sample, sample_stats=stats))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = fit(SIM.x, 2, draws=20, tune=20, chains=2, random_seed=1, progressbar=False)
    assert called == []
    assert dt.attrs["sampler"] == "pymc"
    assert any("not finite" in str(w.message) and "falling back" in str(w.message)
               for w in caught)
    with pytest.raises(SamplingError, match="not finite"):
        nutpie_driver._check_start(Target(
            SIM.x, np.zeros(SIM.x.size), {"weights_alpha": np.ones(2), "means_mu": np.zeros(2),
                                          "means_sigma": np.ones(2), "sigmas_sigma": np.ones(2)},
            0.0, 1.0, -1, np.array([0.0, -np.inf, 0.0, 0.0, 0.0])))


@pytest.mark.parametrize("kind", ["rhat", "ess"])
def test_warning_and_verdict_give_the_same_advice(monkeypatch, kind):
    # the Python warning and the verdict's command must not suggest different figures
    # for the same result (review of issue 11: tune from different runs, draws rounded
    # two ways)
    import re

    monkeypatch.setattr(inference, "_sample", _fake_sample(kind))
    monkeypatch.setattr(inference, "SMC_FALLBACK_MAX_VALUES", 0)  # NUTS's advice here
    dt, failed = _fit_recording(draws=1000, tune=300, chains=4)
    from bayesgmm.diagnostics.verdict import FIRST_TRY

    verdict = diagnose(dt).verdict
    # the check the verdict's command is about: the most fundamental that failed
    check = next(name for name in FIRST_TRY if name in {w.check for w in failed})
    text = str(next(w for w in failed if w.check == check)).split("Try ", 1)[1]
    for key in ("draws", "tune"):
        said = re.search(rf"\b{key}=(\d+)", text)
        if said:
            assert f"{key}={said.group(1)}" in verdict, (text, verdict)
