"""sampler="pymc": plumbing with PyMC's mock sampler (the statistics are tested elsewhere)."""

import dataclasses
import functools
import warnings

import numpy as np
import pymc as pm
import pytest
from pymc.testing import mock_sample

from bayesgmm import SamplingWarning, fit
from bayesgmm.bayes import inference
from bayesgmm.bayes.samplers import pymc_nuts
from bayesgmm.datasets import simulate
from bayesgmm.diagnostics.sampling import SamplingFigures


@pytest.fixture
def mocked_sample(monkeypatch):
    calls = {}

    def fake(*args, **kwargs):
        calls.update(kwargs)
        stats = {"diverging": lambda size: np.zeros(size, dtype=bool),
                 "tree_depth": lambda size: np.full(size, 3)}
        return functools.partial(mock_sample, sample_stats=stats)(*args, **kwargs)

    monkeypatch.setattr(pm, "sample", fake)
    return calls


def test_pymc_sampler_plumbing(mocked_sample):
    sim = simulate(80, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], error_range=(0.1, 0.3),
                   random_seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # prior draws are not a posterior
        dt = fit(sim.x, 2, X_err=sim.x_err, sampler="pymc", draws=30, chains=2,
                 random_seed=1, progressbar=False)
    # fit asked PyMC's own NUTS for per-chain starts near EM, on the build_model model
    assert mocked_sample["nuts_sampler"] == "pymc"
    starts = mocked_sample["initvals"]
    assert len(starts) == 2 and set(starts[0]) == {"weights", "means_std", "sigmas_std"}
    assert np.all(np.diff(starts[0]["means_std"]) > 0)
    assert dt.posterior["means"].dims == ("chain", "draw", "component")
    assert dt.log_likelihood["x"].shape == (2, 30, 80)
    assert dt.attrs["sampler"] == "pymc"


def test_nutpie_failure_falls_back_to_pymc(mocked_sample, monkeypatch):
    import bayesgmm.bayes.inference as inference

    def broken(*args, **kwargs):
        raise RuntimeError("simulated nutpie failure")

    monkeypatch.setattr(inference, "_sample_nutpie", broken)
    sim = simulate(60, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], random_seed=2)
    with pytest.warns(SamplingWarning, match="nutpie failed .*falling back to PyMC"):
        dt = fit(sim.x, 2, draws=20, chains=2, random_seed=1, progressbar=False)
    assert dt.attrs["sampler"] == "pymc"
    assert mocked_sample["nuts_sampler"] == "pymc"
    # the record says which sampler ran: PyMC's, no nutpie backend, no pair
    import json

    run = json.loads(dt.attrs["sampling_runs"])[0]
    assert (run["sampler"], run["backend"], run["pair"]) == ("pymc", "pymc", -1)


def _wrap_nutpie(monkeypatch, divergent_runs):
    """Real nutpie runs, with divergences written into the first ``divergent_runs``."""
    import bayesgmm.bayes.inference as inference

    calls = []
    real = inference._sample_nutpie

    def wrapped(*args, **kwargs):
        post, stats = real(*args, **kwargs)
        calls.append({"tune": args[1], "target_accept": args[2]})
        if len(calls) <= divergent_runs:
            div = np.zeros(stats["diverging"].shape, dtype=bool)
            div[0, :3] = True
            stats = stats.assign(diverging=(stats["diverging"].dims, div))
        return post, stats

    monkeypatch.setattr(inference, "_sample_nutpie", wrapped)
    return calls


@pytest.mark.parametrize("divergent_runs", [0, 1, 2])
def test_divergences_trigger_one_rerun_at_high_target_accept(monkeypatch, divergent_runs):
    import json

    calls = _wrap_nutpie(monkeypatch, divergent_runs)
    # divergences alone decide here (30 draws: R-hat and ESS are the next test's)
    real = inference.sampling_figures
    monkeypatch.setattr(inference, "sampling_figures", lambda post, stats: dataclasses.replace(
        real(post, stats), max_rhat=1.0, min_ess_bulk=np.inf, min_ess_tail=np.inf))
    sim = simulate(60, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], random_seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        dt = fit(sim.x, 2, draws=30, tune=40, chains=2, random_seed=1, progressbar=False)
    runs = json.loads(dt.attrs["sampling_runs"])
    expected = [(0.8, 40)] if divergent_runs == 0 else [(0.8, 40), (0.99, 80)]
    assert [(c["target_accept"], c["tune"]) for c in calls] == expected
    assert [(r["target_accept"], r["tune"]) for r in runs] == expected
    assert [r["divergences"] for r in runs] == [3 if i < divergent_runs else 0
                                                 for i in range(len(expected))]
    assert dt.attrs["target_accept"] == expected[-1][0]
    assert int(dt.sample_stats["diverging"].sum()) == (3 if divergent_runs == 2 else 0)


def _figures(rhat, bulk, tail=None):
    return SamplingFigures(rhat, bulk, bulk if tail is None else tail, "", "", "", 0)


@pytest.mark.parametrize(("rhat", "ess", "tail", "rerun"), [
    (1.005, 500.0, None, False), (1.011, 500.0, None, True), (1.005, 399.0, None, True),
    (1.005, 400.0, None, False), (1.005, 500.0, 399.0, True)])
def test_poor_convergence_triggers_the_rerun(monkeypatch, rhat, ess, tail, rerun):
    # no divergences; R-hat above 1.01 or bulk or tail ESS under 400 (4 x 1,000 draws: the
    # sampling checks' own threshold) is enough for the second run; its own figures are
    # what is recorded
    import json

    calls = _wrap_nutpie(monkeypatch, 0)
    figures = iter([_figures(rhat, ess, tail), _figures(1.002, 900.0)])
    monkeypatch.setattr(inference, "sampling_figures", lambda post, stats: next(figures))
    sim = simulate(60, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], random_seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        dt = fit(sim.x, 2, draws=1000, tune=40, chains=4, random_seed=1, progressbar=False)
    runs = json.loads(dt.attrs["sampling_runs"])
    # no divergences: the second run keeps 0.8 and doubles the tuning
    assert [(c["target_accept"], c["tune"]) for c in calls] == (
        [(0.8, 40), (0.8, 80)] if rerun else [(0.8, 40)])
    assert (runs[0]["max_rhat"], runs[0]["min_ess_bulk"]) == (rhat, ess)
    assert runs[0]["min_ess_tail"] == (ess if tail is None else tail)
    assert runs[0]["ess_min"] == 400
    if rerun:
        assert (runs[1]["max_rhat"], runs[1]["min_ess_bulk"]) == (1.002, 900.0)


def test_given_target_accept_is_used_once(monkeypatch):
    calls = _wrap_nutpie(monkeypatch, 5)
    sim = simulate(60, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], random_seed=2)
    with pytest.warns(SamplingWarning, match="divergent"):
        dt = fit(sim.x, 2, draws=30, tune=40, chains=2, random_seed=1, progressbar=False,
                 target_accept=0.9)
    assert [c["target_accept"] for c in calls] == [0.9]
    assert dt.attrs["target_accept"] == 0.9


def test_fallback_and_rerun_together(monkeypatch):
    """nutpie broken and the first PyMC run divergent: PyMC again at 0.99, one warning."""
    import json

    import bayesgmm.bayes.inference as inference

    def broken(*args, **kwargs):
        raise RuntimeError("simulated nutpie failure")

    calls = []

    def fake(*args, **kwargs):
        calls.append((kwargs["target_accept"], kwargs["tune"]))
        first = len(calls) == 1
        stats = {"diverging": lambda size: np.arange(np.prod(size)).reshape(size) < (
                     2 if first else 0),
                 "tree_depth": lambda size: np.full(size, 3)}
        return functools.partial(mock_sample, sample_stats=stats)(*args, **kwargs)

    monkeypatch.setattr(inference, "_sample_nutpie", broken)
    monkeypatch.setattr(pm, "sample", fake)
    sim = simulate(60, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], random_seed=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        dt = fit(sim.x, 2, draws=20, tune=30, chains=2, random_seed=1, progressbar=False)
    assert calls == [(0.8, 30), (0.99, 60)]
    # one warning, and it says that the rerun stays on PyMC's sampler too
    fallback = [str(w.message) for w in caught if "nutpie failed" in str(w.message)]
    assert len(fallback) == 1 and "its rerun too" in fallback[0]
    runs = json.loads(dt.attrs["sampling_runs"])
    assert [(r["sampler"], r["backend"]) for r in runs] == [("pymc", "pymc")] * 2
    assert [r["divergences"] for r in runs] == [2, 0]


def test_failed_rerun_keeps_the_first_run(monkeypatch):
    import json

    import bayesgmm.bayes.inference as inference

    real = inference._sample_nutpie
    calls = []

    def first_divergent_then_broken(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("simulated failure of the second run")
        post, stats = real(*args, **kwargs)
        div = np.zeros(stats["diverging"].shape, dtype=bool)
        div[0, 0] = True
        return post, stats.assign(diverging=(stats["diverging"].dims, div))

    monkeypatch.setattr(inference, "_sample_nutpie", first_divergent_then_broken)
    monkeypatch.setattr(pymc_nuts, "_sample_pymc",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("pymc too")))
    sim = simulate(60, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], random_seed=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        dt = fit(sim.x, 2, draws=20, tune=30, chains=2, random_seed=1, progressbar=False)
    assert any("keeping the first run" in str(w.message) for w in caught)
    runs = json.loads(dt.attrs["sampling_runs"])
    assert len(runs) == 1 and runs[0]["divergences"] == 1
    assert int(dt.sample_stats["diverging"].sum()) == 1
