"""`bayesgmm fit --k auto`: p(K | data), the LOO decision, unreliable and unidentified
candidates.

The choice is p(K | data)'s (``cli.fit._posterior_k``), 1-D or D dims; where it is not
computed, or with it patched out (``_no_posterior_k``), LOO's. The LOO decision is a
pure function of an ``arviz_stats.compare`` table (tested on hand-made tables); the
plumbing is tested with fake fits and a fake p(K | data) (no sampling); one end-to-end
test samples for real on data where K = 2 clearly beats K = 1.
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesgmm.cli import fit as cli_fit
from bayesgmm.cli import main
from bayesgmm.cli.fit import not_identified
from bayesgmm.selection.loo import choose_by_loo, loo_reliability


def compare_table(rows):
    """A compare-like table: rows of (name, elpd, dse), best first as arviz-stats sorts."""
    rows = sorted(rows, key=lambda r: -r[1])
    top = rows[0][1]
    return pd.DataFrame(
        {"elpd": [r[1] for r in rows], "elpd_diff": [r[1] - top for r in rows],
         "dse": [r[2] for r in rows]},
        index=[r[0] for r in rows],
    )


def test_larger_k_clearly_wins():
    # Old Faithful's waiting times: K = 1 is 60.0 +- 9.1 behind K = 2 (arviz-stats 1.x:
    # the worse model's elpd_diff is negative). The old rule kept K = 1.
    table = compare_table([("K=2", -1034.0, 0.0), ("K=1", -1094.03, 9.123)])
    best, why = choose_by_loo(table)
    assert best == "K=2"
    # the reason quotes the table's own numbers, as the report prints them
    assert "ahead of K=1 by more than 2 standard errors" in why
    assert "elpd_diff -60.03" in why and "dse 9.123" in why


def test_tie_keeps_the_smaller_k():
    table = compare_table([("K=3", -500.0, 0.0), ("K=2", -501.2, 1.3)])
    best, why = choose_by_loo(table)
    assert best == "K=2"
    assert "within 2 standard errors of K=3's" in why and "elpd_diff -1.2" in why


def test_tie_with_the_best_smallest():
    table = compare_table([("K=2", -500.0, 0.0), ("K=3", -500.79, 0.6126)])
    best, why = choose_by_loo(table)
    assert best == "K=2"
    assert "K=3 is within 2 standard errors" in why and "more components" in why
    assert "ahead" not in why  # the old text claimed a lead the table did not show


def test_best_is_neither_first_listed_nor_smallest():
    # rows in candidate order (BIC's), not by elpd: K=3 is best, K=2 clearly worse,
    # K=4 within 2 dse of K=3 but larger
    table = pd.DataFrame({"elpd": [-520.0, -500.0, -501.0],
                          "elpd_diff": [-20.0, 0.0, -1.0], "dse": [4.0, 0.0, 1.5]},
                         index=["K=2", "K=3", "K=4"])
    assert choose_by_loo(table)[0] == "K=3"
    # the boundary uses unrounded values: 2 x 1.49 = 2.98 < 3.0 -> K=2 is out
    edge = pd.DataFrame({"elpd": [-503.0, -500.0], "elpd_diff": [-3.0, 0.0],
                         "dse": [1.49, 0.0]}, index=["K=2", "K=3"])
    assert choose_by_loo(edge)[0] == "K=3"
    edge["dse"] = [1.5, 0.0]
    assert choose_by_loo(edge)[0] == "K=2"


def test_flagged_best_does_not_win():
    # the hopeless candidate is listed second and has the highest elpd
    table = pd.DataFrame({"elpd": [-560.0, -500.0, -530.0],
                          "elpd_diff": [-60.0, 0.0, -30.0], "dse": [9.0, 0.0, 5.0]},
                         index=["K=1", "K=3", "K=2"])
    flags = {"K=3": "not identified (a component has almost no weight)"}
    best, why = choose_by_loo(table, flags)
    assert best == "K=2"
    assert "K=3 has the highest LOO elpd" in why and "not identified" in why
    # a flagged smaller K within 2 dse is not kept either
    tie = compare_table([("K=3", -500.0, 0.0), ("K=2", -500.5, 1.0)])
    assert choose_by_loo(tie, {"K=2": "LOO unreliable"})[0] == "K=3"
    assert "K=2 not considered" in choose_by_loo(tie, {"K=2": "LOO unreliable"})[1]


def test_all_flagged_is_provisional():
    table = compare_table([("K=2", -500.0, 0.0), ("K=3", -540.0, 8.0)])
    best, why = choose_by_loo(table, {"K=2": "p_loo 30", "K=3": "p_loo 92"})
    assert best == "K=2" and why.startswith("no candidate's LOO can be trusted")


class _Elpd:
    def __init__(self, p, pareto_k, good_k=0.7):
        self.p, self.pareto_k, self.good_k = p, np.asarray(pareto_k), good_k


def test_loo_reliability():
    assert loo_reliability(_Elpd(4.9, [0.1, 0.3]), 2) is None
    why = loo_reliability(_Elpd(4.9, [0.1, 0.75, 0.9]), 2)
    assert "2 point(s) with Pareto k above 0.70" in why
    # the K = 3 candidate of the issue: p_loo 92 against 8 parameters
    assert "p_loo 92.0 is over 2 x its 8 parameters" in loo_reliability(_Elpd(92.0, [0.1]), 3)


def _run(chains=2, draws=50, K=2, *, modes=False, empty=False, steps=10, seed=0):
    rng = np.random.default_rng(seed)
    w = np.full((chains, draws, K), 1.0 / K) + 0.01 * rng.standard_normal((chains, draws, K))
    if empty:
        w[..., 0] = 0.001
    mu = np.arange(K, dtype=float) * 3 + 0.05 * rng.standard_normal((chains, draws, K))
    if modes:
        mu[1] += 2.0  # chain 1 sits elsewhere
    sg = 0.5 + 0.01 * rng.standard_normal((chains, draws, K))
    dims = ("chain", "draw", "component")
    post = xr.Dataset({"weights": (dims, w), "means": (dims, mu), "sigmas": (dims, sg)})
    stats = xr.Dataset({"n_steps": (("chain", "draw"), np.full((chains, draws), steps)),
                        "step_size": (("chain", "draw"), np.full((chains, draws), 0.01)),
                        "diverging": (("chain", "draw"), np.zeros((chains, draws), bool))})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def test_not_identified_symptoms():
    assert not_identified(_run()) is None
    why = not_identified(_run(modes=True))
    assert "different modes" in why and "max R-hat" in why
    assert "almost no weight" in not_identified(_run(empty=True))
    why = not_identified(_run(steps=191))
    assert "191 gradient evaluations per draw, step size 0.01" in why


def test_fit_skips_the_second_run_when_first_run_check_says_so(monkeypatch):
    import bayesgmm.bayes.inference as inference

    calls = []

    def fake_sample(sampler, problem, tune, target_accept):
        K = problem.K
        calls.append(K)
        run = _run(K=K, modes=True, seed=len(calls))  # R-hat fails: a rerun would follow
        return (run["posterior"].to_dataset(), run["sample_stats"].to_dataset(), sampler)

    monkeypatch.setattr(inference, "_sample", fake_sample)
    x = np.r_[np.zeros(30), np.full(30, 3.0)] + np.linspace(0, 0.5, 60)
    with pytest.warns(Warning):
        dt = inference.fit(x, 2, draws=50, tune=10, chains=2, random_seed=0,
                           first_run_check=not_identified)
    assert len(calls) == 1  # no second run
    assert "different modes" in dt.attrs["stopped_early"]
    calls.clear()
    with pytest.warns(Warning):
        inference.fit(x, 2, draws=50, tune=10, chains=2, random_seed=0)
    assert len(calls) == 2  # without the check: the usual second run


def _no_posterior_k(monkeypatch):
    """LOO decides, as where p(K | data) is not computed: its plumbing on 1-D data."""
    monkeypatch.setattr(cli_fit, "_posterior_k", lambda x, e, cands, seed: None)


def _fake_fit_factory(n, elpd_per_point, stopped=(), seen=None):
    """A stand-in for bayesgmm.fit: a DataTree whose log-likelihood gives a known elpd."""
    base = np.random.default_rng(5).normal(0.0, 0.3, n)

    def fake_fit(x, k, **kw):
        if seen is not None:
            seen[k] = kw.get("first_run_check")
        run = _run(K=k, draws=500, seed=k)  # 1,000 draws: ArviZ's good_k is 0.67
        rng = np.random.default_rng(k)
        ll = (elpd_per_point[k] + base * k)[None, None, :] + 0.02 * rng.standard_normal(
            (2, 500, n))
        run["log_likelihood"] = xr.Dataset({"x": (("chain", "draw", "obs"), ll)})
        run["observed_data"] = xr.Dataset({"x": ("obs", np.asarray(x, float))})
        run.attrs["n_components"] = k
        if k in stopped:
            run.attrs["stopped_early"] = "a component has almost no weight (posterior mean 0.001)"
        return run

    return fake_fit


def test_auto_excludes_a_hopeless_candidate_that_is_not_first(capsys, tmp_path, monkeypatch):
    import bayesgmm.bayes.inference as inference

    p = tmp_path / "d.csv"
    x = np.r_[np.random.default_rng(0).normal(0, 0.3, 100), np.random.default_rng(1).normal(
        3, 0.3, 100)]
    pd.DataFrame({"v": x}).to_csv(p, index=False)
    seen = {}
    # K = 3 (second in line) has the best elpd but its first run was not identified;
    # K = 2 beats K = 1 by 1 per point (200 +- ~4)
    monkeypatch.setattr(inference, "fit", _fake_fit_factory(200, {1: -2.0, 2: -1.0, 3: -0.9},
                                                            stopped=(3,), seen=seen))
    monkeypatch.setattr(cli_fit, "_candidates", lambda table: [1, 3, 2])
    monkeypatch.setattr(cli_fit, "_write_outputs", _fake_write)
    _no_posterior_k(monkeypatch)
    code = main(["fit", str(p), "--k", "auto", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert all(check is not_identified for check in seen.values())  # every candidate checked
    assert "K = 3 is not identified" in out and "Stopped after its first run" in out
    assert "chose K=2:" in out and "K=3 has the highest LOO elpd" in out
    assert _fake_write.chosen == 2
    # the table the report gets marks the excluded candidate
    assert "not identified" in _fake_write.loo_table.loc["K=3", "note"]
    assert _fake_write.loo_table.loc["K=1", "note"] == ""


def _fake_write(dt, outdir, selection, loo_table, column, errors, args=None):
    from bayesgmm.diagnostics import Diagnosis

    _fake_write.chosen = int(dt.attrs["n_components"])
    _fake_write.loo_table = loo_table
    (outdir / "posterior.nc").write_text("fake")
    return Diagnosis(ok=True, verdict="fine", checks=pd.DataFrame(), table=pd.DataFrame())


@pytest.mark.slow
def test_auto_end_to_end_larger_k_wins(capsys, tmp_path, monkeypatch):
    """Real sampling and real LOO on bimodal data, the candidates set to K = 1 and 2.

    BIC ranks K = 2, 3 first on these data, and of those the old rule kept the smaller,
    right by luck; with K = 1 among the candidates (as on Old Faithful in the issue) it
    kept K = 1, since every elpd_diff <= 0 passed its test. K = 2 beats K = 1 by 7
    standard errors here (seed 2: elpd_diff -61.6, dse 8.7, on 200 points); Monte Carlo
    noise in the elpd at 600 draws is under 1, so it cannot flip the choice.
    """
    from bayesgmm.datasets import simulate

    sim = simulate(200, [0.5, 0.5], [0.0, 2.5], [0.5, 0.5], random_seed=4)
    p = tmp_path / "bimodal.csv"
    pd.DataFrame({"y": sim.x}).to_csv(p, index=False)
    monkeypatch.setattr(cli_fit, "_candidates", lambda table: [1, 2])
    _no_posterior_k(monkeypatch)
    out = tmp_path / "o"
    code = main(["fit", str(p), "--k", "auto", "--out", str(out), "--draws", "300",
                 "--tune", "300", "--chains", "2", "--seed", "2"])
    text = capsys.readouterr().out
    assert code in (0, 3), text  # 600 draws: ESS under the 400 the verdict asks is possible
    assert "chose K=2: highest LOO elpd, ahead of K=1 by more than 2 standard errors" in text
    dt = xr.load_datatree(out / "posterior.nc")
    assert dt.attrs["n_components"] == 2


def test_auto_says_the_selection_warnings(capsys, tmp_path, monkeypatch):
    # the candidates come from select_n_components: when it warns (best K at the edge of
    # 1..8), --k auto passes the warning on instead of dropping it
    import warnings

    import bayesgmm.bayes.inference as inference
    import bayesgmm.selection as selection
    from bayesgmm.errors import SelectionWarning

    real = selection.select_n_components

    def warning_select(*a, **kw):
        warnings.warn("the best k by BIC, 8, is the largest one tried", SelectionWarning,
                      stacklevel=2)
        return real(*a, **kw)

    p = tmp_path / "d.csv"
    x = np.r_[np.random.default_rng(0).normal(0, 0.3, 100), np.random.default_rng(1).normal(
        3, 0.3, 100)]
    pd.DataFrame({"v": x}).to_csv(p, index=False)
    monkeypatch.setattr(selection, "select_n_components", warning_select)
    monkeypatch.setattr(inference, "fit", _fake_fit_factory(200, {1: -2.0, 2: -1.0}))
    monkeypatch.setattr(cli_fit, "_candidates", lambda table: [1, 2])
    monkeypatch.setattr(cli_fit, "_write_outputs", _fake_write)
    _no_posterior_k(monkeypatch)
    assert main(["fit", str(p), "--k", "auto", "--out", str(tmp_path / "o")]) == 0
    assert "the best k by BIC, 8, is the largest one tried" in capsys.readouterr().err


def _fake_posterior_k(probabilities, method=None):
    """A stand-in for ``cli.fit._posterior_k``: a PosteriorK with the given p(K | data)."""
    from bayesgmm.bayes.posterior_k import PosteriorK

    def fake(x, e, cands, seed):
        p = np.asarray(probabilities, float)
        ks = np.arange(1, p.size + 1)
        fake.cands = list(cands)
        return PosteriorK(ks=ks, probabilities=p, probabilities_sd=np.full(p.size, 0.01),
                          log_evidence=np.log(p + 1e-300), log_evidence_se=np.full(p.size, 0.01),
                          prior=np.full(p.size, 1 / p.size),
                          method=method or ["importance"] * p.size,
                          pareto_k=np.full(p.size, 0.3), log_evidence_smc=np.log(p + 1e-300))

    return fake


def test_auto_chooses_by_posterior_k_where_loo_prefers_another(capsys, tmp_path, monkeypatch):
    # BIC ranks K = 1, 2; LOO prefers K = 2 (1 per point ahead of K = 1, and ahead of
    # K = 3); p(K | data) puts 0.7 on K = 3, which is neither BIC candidate: it is added,
    # fitted, and chosen, with LOO's preference said beside it
    import bayesgmm.bayes.inference as inference

    p = tmp_path / "d.csv"
    x = np.r_[np.random.default_rng(0).normal(0, 0.3, 100), np.random.default_rng(1).normal(
        3, 0.3, 100)]
    pd.DataFrame({"v": x}).to_csv(p, index=False)
    seen = {}
    monkeypatch.setattr(inference, "fit", _fake_fit_factory(200, {1: -2.0, 2: -1.0, 3: -1.5},
                                                            seen=seen))
    monkeypatch.setattr(cli_fit, "_candidates", lambda table: [1, 2])
    monkeypatch.setattr(cli_fit, "_write_outputs", _fake_write)
    fake = _fake_posterior_k([0.05, 0.25, 0.7])
    monkeypatch.setattr(cli_fit, "_posterior_k", fake)
    code = main(["fit", str(p), "--k", "auto", "--out", str(tmp_path / "o"), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert fake.cands == [1, 2] and sorted(seen) == [1, 2, 3]
    assert "p(K = 3 | data) = 0.700 +- 0.010" in captured.err
    assert "chose K=3: highest posterior probability" in captured.err
    assert "LOO prefers K=2" in captured.err
    assert _fake_write.chosen == 3
    import json

    doc = json.loads(captured.out)
    assert doc["k_choice"]["k"] == 3 and doc["k_choice"]["loo_choice"] == "K=2"
    assert doc["k_choice"]["posterior_k"] == {"1": 0.05, "2": 0.25, "3": 0.7}


def test_auto_is_not_trusted_when_the_chosen_k_rests_on_smc(capsys, tmp_path, monkeypatch):
    # p(K | data)'s top K had only SMC's rough evidence: the result is written, the exit
    # status says not to trust it (3), and a warning says why
    import bayesgmm.bayes.inference as inference

    p = tmp_path / "d.csv"
    pd.DataFrame({"v": np.linspace(0, 1, 200) ** 2}).to_csv(p, index=False)
    monkeypatch.setattr(inference, "fit", _fake_fit_factory(200, {1: -2.0, 2: -1.0}))
    monkeypatch.setattr(cli_fit, "_candidates", lambda table: [1, 2])
    monkeypatch.setattr(cli_fit, "_write_outputs", _fake_write)
    monkeypatch.setattr(cli_fit, "_posterior_k",
                        _fake_posterior_k([0.1, 0.9], method=["importance", "smc"]))
    code = main(["fit", str(p), "--k", "auto", "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 3
    assert "importance sampling failed its check (smc)" in captured.err


def test_verdict_and_report_say_where_posterior_k_bic_and_loo_part(tmp_path):
    # the stored p(K | data) table: the verdict's K sentence quotes it and names the
    # criteria that prefer another K; the report draws the bars
    from bayesgmm._stored import store, stored_posterior_k
    from bayesgmm.diagnostics.verdict import k_sentence
    from bayesgmm.report import write_report

    dt = _run(K=2, draws=200, seed=1)
    table = _fake_posterior_k([0.02, 0.6, 0.38])(None, None, [1, 2], None).to_dataframe()
    store(dt, posterior_k=table)
    back = stored_posterior_k(dt)
    np.testing.assert_allclose(back["p(K | data)"], [0.02, 0.6, 0.38])
    selection = pd.DataFrame({"k": [1, 2, 3], "bic": [10.0, 5.0, 7.0], "aic": [9.0, 6.0, 4.0]})
    loo = compare_table([("K=3", -100.0, 0.0), ("K=2", -101.0, 1.0)])
    text = k_sentence(dt, selection, loo)
    assert "K = 2 was chosen by its posterior probability, p(K = 2 | data) = 0.60" in text
    assert "LOO prefers K = 3 (p(K = 3 | data) = 0.38)" in text
    assert "the BIC of the EM fits agrees with it" in text
    # a candidate --k auto set aside (a note in the LOO table) is not LOO's preference
    loo["note"] = ["not identified, stopped after its first run", ""]
    text = k_sentence(dt, selection, loo)
    assert "LOO" in text and "LOO prefers" not in text
    assert "The BIC of the EM fits and LOO agree" in text
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # this bare tree has no data:
        warnings.simplefilter("always")                    # the density figures fail
        path = write_report(dt, tmp_path / "r.html", selection=selection, loo_table=loo)
    assert not [w for w in caught if "posterior probability" in str(w.message)]
    html = path.read_text()
    section = html[html.index("Number of components: p(K | data)"):]
    assert section.index("data:image/png;base64") < section.index("Number of components: BIC")


def test_auto_leaves_out_posterior_k_where_it_cannot_or_would_take_too_long():
    # rounded data (values repeat, no errors): no evidence exists; more than
    # POSTERIOR_K_MAX_N points: minutes per K. Either way LOO chooses, and a warning
    # (a note of the run) says why; with errors the repeated values are fine
    from bayesgmm.errors import SamplingWarning

    rounded = np.round(np.random.default_rng(0).normal(0, 1, 100), 1)
    with pytest.warns(SamplingWarning, match="repeat exactly"):
        assert cli_fit._posterior_k(rounded, None, [1, 2], 0) is None
    many = np.random.default_rng(0).normal(0, 1, cli_fit.POSTERIOR_K_MAX_N + 1)
    with pytest.warns(SamplingWarning, match="points"):
        assert cli_fit._posterior_k(many, None, [1, 2], 0) is None
    # D dims: per feature (a rounded feature is enough), and POSTERIOR_K_MAX_N_MD points
    two_d = pd.DataFrame(np.random.default_rng(0).normal(0, 1, (50, 2)), columns=["u", "v"])
    two_d["v"] = two_d["v"].round(1)
    with pytest.warns(SamplingWarning, match="feature 'v': .*repeat exactly"):
        assert cli_fit._posterior_k(two_d, None, [1, 2], 0) is None
    many_d = np.random.default_rng(0).normal(0, 1, (cli_fit.POSTERIOR_K_MAX_N_MD + 1, 2))
    with pytest.warns(SamplingWarning, match="in D dims"):
        assert cli_fit._posterior_k(many_d, None, [1, 2], 0) is None
