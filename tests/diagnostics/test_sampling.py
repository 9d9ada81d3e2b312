"""The one definition of converged (diagnostics/sampling.py), read by diagnose and fit."""

import dataclasses

import numpy as np
import pytest
import xarray as xr

from bayesgmm.diagnostics import diagnose
from bayesgmm.diagnostics.sampling import (
    ESS_MIN,
    RHAT_MAX,
    rerun_ess_min,
    sampling_figures,
    sampling_table,
)


def _posterior(offset=0.0, chains=4, draws=300, seed=0):
    rng = np.random.default_rng(seed)
    shift = offset * np.arange(chains)[:, None, None]
    dims = ("chain", "draw", "component")
    w = rng.dirichlet([50, 50], size=(chains, draws))
    return xr.Dataset({
        "weights": (dims, w),
        "means": (dims, np.sort(rng.normal(size=(chains, draws, 2)), axis=-1) + [0, 3]),
        "sigmas": (dims, np.abs(rng.normal(1, 0.1, size=(chains, draws, 2))) + shift),
    }, coords={"component": [0, 1]})


def test_figures_are_arviz_s():
    import arviz_stats as azs

    post = _posterior(offset=1.0)  # chains offset by about ten sds: clearly not mixed
    fig = sampling_figures(post)
    assert fig.max_rhat == float(azs.rhat(post).to_array().max())
    assert fig.max_rhat > 1.5
    assert fig.worst_rhat.startswith("sigmas[")
    assert fig.min_ess_bulk == float(azs.ess(post, method="bulk").to_array().min())
    assert fig.min_ess_tail == float(azs.ess(post, method="tail").to_array().min())
    assert fig.divergences is None
    assert fig.failed() == ["max_rhat", "min_ess_bulk", "min_ess_tail"]


def test_table_matches_arviz_summary():
    import arviz_stats as azs

    post = _posterior(offset=0.02)
    table = sampling_table(post)
    ref = azs.summary(xr.DataTree.from_dict({"posterior": post}), round_to="none")
    assert list(table.index) == list(ref.index)
    for col in ("ess_bulk", "ess_tail", "r_hat"):
        np.testing.assert_array_equal(table[col].to_numpy(), ref[col].to_numpy(dtype=float))


def test_undefined_figures_fail_nothing():
    post = _posterior()
    post["weights"][:] = 0.5  # constant draws: R-hat undefined (NaN)
    fig = sampling_figures(post[["weights"]])
    assert np.isnan(fig.max_rhat) and fig.worst_rhat == ""
    assert fig.failed() == []
    nan = np.nan
    undefined = dataclasses.replace(fig, min_ess_bulk=nan, min_ess_tail=nan)
    assert undefined.failed() == []


def test_divergences_count_and_fail():
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 300), bool))})
    assert sampling_figures(_posterior(), stats).divergences == 0
    stats["diverging"][1, 5] = True
    fig = sampling_figures(_posterior(), stats)
    assert fig.divergences == 1 and fig.failed()[0] == "divergences"


@pytest.mark.parametrize(("chains", "draws", "expected"), [
    (4, 1000, 400), (4, 2000, 400), (2, 30, 6.0), (1, 100, 10.0)])
def test_rerun_ess_threshold(chains, draws, expected):
    # fit's rerun rule holds a run to ESS_MIN, or to a tenth of its draws when shorter;
    # at the default 4 x 1,000 draws both are 400
    assert rerun_ess_min(chains, draws) == pytest.approx(expected)
    assert rerun_ess_min(chains, draws) <= ESS_MIN


@pytest.mark.parametrize("offset", [0.0, 0.02, 1.0])
def test_diagnose_reads_the_same_definition(offset):
    # diagnose's r_hat, ess_bulk, ess_tail and no_divergences checks fail exactly when
    # the sampling figures are out of bounds, with the same values and thresholds
    post = _posterior(offset=offset)
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 300), bool))})
    if offset == 1.0:
        stats["diverging"][0, 0] = True
    dt = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    fig = sampling_figures(post, stats)
    checks = diagnose(dt).checks.set_index("name")
    names = {"divergences": "no_divergences", "max_rhat": "r_hat",
             "min_ess_bulk": "ess_bulk", "min_ess_tail": "ess_tail"}
    failed = {names[f] for f in fig.failed()}
    assert failed == {n for n in names.values() if not checks.loc[n, "ok"]}
    assert checks.loc["r_hat", "value"] == fig.max_rhat
    assert checks.loc["r_hat", "threshold"] == RHAT_MAX
    assert checks.loc["ess_bulk", "value"] == fig.min_ess_bulk
    assert checks.loc["ess_tail", "value"] == fig.min_ess_tail
    assert checks.loc["ess_tail", "threshold"] == ESS_MIN
    if offset == 1.0:
        assert failed == set(names.values())


def test_report_names_each_failed_figure_and_its_threshold():
    import json

    from bayesgmm.report import _runs_sentence

    first = {"target_accept": 0.8, "tune": 1000, "divergences": 0, "max_rhat": 1.004,
             "min_ess_bulk": 812.0, "min_ess_tail": 310.2, "ess_min": 400,
             "failed": ["min_ess_tail"]}
    kept = {"target_accept": 0.8, "tune": 2000}
    text = _runs_sentence(json.dumps([first, kept]))
    assert "min tail ESS 310 (under 400)" in text and "bulk" not in text
    # a file written before ess_min was recorded keeps its old words
    del first["ess_min"]
    first["failed"] = ["min_ess_bulk"]
    assert "(under 10% of the draws)" in _runs_sentence(json.dumps([first, kept]))
