"""diagnose on D-dim results (hand-built with ``helpers._tree_md``; no sampler runs)."""

import numpy as np
import xarray as xr
from helpers import _tree_md

from bayesgmm import diagnose
from bayesgmm.diagnostics import mixture_checks
from bayesgmm.diagnostics.sampling import checked_parameters, parameters, sampling_table


def _set(dt, group, var, values):
    ds = dt[group].to_dataset()
    dt[group] = xr.DataTree(ds.assign({var: (ds[var].dims, values)}))


def test_checked_parameters_lower_triangle():
    dt = _tree_md(C=2, S=50, features=["u", "v"])
    post = dt["posterior"].to_dataset()
    assert parameters(post) == ("weights", "means", "sds", "correlations")
    ds = checked_parameters(post)
    assert ds["correlations"].dims == ("chain", "draw", "component", "feature_pair")
    assert list(ds["feature_pair"].values) == ["v,u"]
    np.testing.assert_array_equal(ds["correlations"].values[..., 0],
                                  post["correlations"].values[..., 1, 0])
    # three features: the three entries below the diagonal, row-major
    dt3 = _tree_md(C=2, S=50, means=np.zeros((1, 3)) + [[0, 1, 2]], weights=[1.0],
                   sds=np.ones((1, 3)), correlations=np.eye(3)[None])
    assert list(checked_parameters(dt3["posterior"].to_dataset())["feature_pair"].values) \
        == ["1,0", "2,0", "2,1"]
    table = sampling_table(post)
    assert not table["r_hat"].isna().any()  # no constant diagonal


def test_chains_in_different_modes_named():
    dt = _tree_md(C=4, S=200)
    means = dt.posterior["means"].values.copy()
    means[2, :, 1, 1] += 2.0  # chain 2's component 1, feature 1: ~70 within-chain sds
    _set(dt, "posterior", "means", means)
    rows = {c["name"]: c for c in mixture_checks(dt)}
    assert not rows["chains_agree"]["ok"]
    assert "means[1, 1]" in rows["chains_agree"]["message"]
    d = diagnose(dt).checks.set_index("name")
    assert not d.loc["r_hat", "ok"] and not d.loc["chains_agree", "ok"]
    # every chain there: the posterior is far from the EM estimate, at that entry
    means[:, :, 1, 1] = dt.posterior["means"].values[0, 0, 1, 1] + 2.0
    means[:, :, 1, 1] += 0.03 * np.random.default_rng(0).standard_normal(means.shape[:2])
    _set(dt, "posterior", "means", means)
    rows = {c["name"]: c for c in mixture_checks(dt)}
    assert not rows["near_em"]["ok"] and "means[1, 1]" in rows["near_em"]["message"]


def test_unrelabelled_switch_flagged():
    # chain 1 in the other labelling and never relabelled: pivot_identified fails
    dt = _tree_md(C=2, S=200)
    for v in ("weights", "means", "sds", "correlations", "covariances"):
        values = dt.posterior[v].values.copy()
        values[1] = values[1][:, ::-1]
        _set(dt, "posterior", v, values)
    d = diagnose(dt).checks.set_index("name")
    assert not d.loc["pivot_identified", "ok"]
    np.testing.assert_allclose(d.loc["pivot_identified", "value"], 0.5)


def test_ppc_per_feature():
    dt = _tree_md(C=2, S=300, n=400)
    checks = diagnose(dt).checks.set_index("name")
    for name in ("ppc_sd", "ppc_skewness", "ppc_tails"):
        assert checks.loc[name, "ok"] and not checks.loc[name, "skipped"]
        assert checks.loc[name, "threshold"] == 0.01 / 2  # Bonferroni over 2 features
    # replicates too narrow in feature 1: ppc_sd fails and names it
    rep = dt.posterior_predictive["x"].values.copy()
    rep[..., 1] = rep[..., 1].mean() + 0.5 * (rep[..., 1] - rep[..., 1].mean())
    _set(dt, "posterior_predictive", "x", rep)
    row = diagnose(dt).checks.set_index("name").loc["ppc_sd"]
    assert not row["ok"] and "feature 1" in row["message"]


def test_ppc_with_missing_values_and_few_replicates():
    dt = _tree_md(C=2, S=300, n=200)
    x = dt.observed_data["x"].values.copy()
    x[::7, 0] = np.nan
    _set(dt, "observed_data", "x", x)
    checks = diagnose(dt).checks.set_index("name")
    assert checks.loc["ppc_sd", "ok"] and not checks.loc["ppc_sd", "skipped"]
    few = _tree_md(C=2, S=40)  # 80 replicates < 1 / (0.01 / 2)
    row = diagnose(few).checks.set_index("name").loc["ppc_sd"]
    assert row["skipped"] and "200" in row["message"]
