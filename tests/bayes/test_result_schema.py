"""The DataTree a fit returns (bayes/result.py, bayes/predictive.py): names and old files.

Assembled from made-up draws (no sampling): the schema, not the statistics, is tested.
"""

import numpy as np
import pytest
import xarray as xr

from bayesgmm.bayes.predictive import PPC_MAX_VALUES, kept_draws, replicate
from bayesgmm.bayes.priors import Priors
from bayesgmm.bayes.result import _assemble

K, C, S = 2, 2, 150


def _result(seed=0, n=120):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0.0, 1.0, n // 2), rng.normal(5.0, 1.0, n - n // 2)])
    e = rng.uniform(0.1, 0.3, n)
    loc, scale = float(x.mean()), float(x.std())
    hyper = Priors().standardized(K, loc, scale)
    dims = ("chain", "draw", "component")
    post = xr.Dataset({
        "weights": (dims, rng.dirichlet([500, 500], size=(C, S))),
        "means": (dims, np.sort(rng.normal([0.0, 5.0], 0.05, size=(C, S, K)), axis=-1)),
        "sigmas": (dims, np.abs(rng.normal(1.0, 0.05, size=(C, S, K)))),
    }, coords={"chain": np.arange(C), "draw": np.arange(S)})
    cd = ("chain", "draw")
    stats = xr.Dataset({"diverging": (cd, np.zeros((C, S), bool)),
                        "energy": (cd, rng.standard_normal((C, S)))},
                       coords={"chain": np.arange(C), "draw": np.arange(S)})
    em = {"weights": np.array([0.5, 0.5]), "means": np.array([0.0, 5.0]),
          "sigmas": np.array([1.0, 1.0]), "loglik": -250.0, "bic": 520.0, "n_iter": 7,
          "converged": True, "degenerate": False}
    dt = _assemble(x, e, K, loc, scale, hyper, em, post, stats, "nutpie", 1234, None,
                   "waiting", "min")
    return dt, hyper


def test_constant_data_names_the_priors_once():
    dt, hyper = _result()
    const = dt["constant_data"]
    for key, value in hyper.items():
        # the same name as build_model's pm.Data, standardized units in attrs
        assert f"prior_{key}" in const and f"prior_{key}_std" not in const
        np.testing.assert_array_equal(const[f"prior_{key}"].values, value)
        assert const[f"prior_{key}"].attrs == {"units": "standardized"}
    assert {"x_err", "loc", "scale"} <= set(const.data_vars)


def test_posterior_predictive_is_predictive_replicate():
    # result.py stores predictive.replicate's draws on the kept draws, seeded [seed, 2]
    dt, _ = _result()
    const = dt["constant_data"]
    loc, scale = float(const["loc"]), float(const["scale"])
    post = dt["posterior"]
    n = dt["observed_data"]["waiting"].size
    idx = kept_draws(C, S, n)
    np.testing.assert_array_equal(idx, np.arange(S))  # small: every draw replicated
    pp = replicate(post["weights"].values[:, idx], (post["means"].values - loc) / scale,
                   post["sigmas"].values / scale, (const["x_err"].values / scale) ** 2,
                   loc, scale, 1234)
    np.testing.assert_array_equal(dt["posterior_predictive"]["waiting"].values, pp)
    assert dt["posterior_predictive"]["waiting"].attrs == {"units": "min"}


def test_kept_draws_thin_evenly_to_the_limit():
    idx = kept_draws(4, 1000, 5000)  # 20 million values: thinned to 10 million
    assert idx[0] == 0 and idx[-1] == 999 and 4 * idx.size * 5000 <= PPC_MAX_VALUES
    assert idx.size == PPC_MAX_VALUES // (4 * 5000)
    assert kept_draws(1, 10, 10**8).tolist() == [0]  # at least one draw


def test_replicate_draws_from_the_mixture():
    # one component at mu = 1, sigma = 0.5 (standardized), errors 0.3, loc 10, scale 2:
    # replicates are N(12, 2 * sqrt(0.25 + 0.09)); 200,000 values put the sample mean's
    # and sd's standard errors near 0.003, so 0.02 is over six of them
    n = 1000
    w = np.ones((2, 100, 1))
    rep = replicate(w, np.ones_like(w), np.full_like(w, 0.5), np.full(n, 0.09), 10.0, 2.0, 7)
    assert rep.shape == (2, 100, n)
    assert rep.mean() == pytest.approx(12.0, abs=0.02)
    assert rep.std() == pytest.approx(2 * np.sqrt(0.34), abs=0.02)
    np.testing.assert_array_equal(
        rep, replicate(w, np.ones_like(w), np.full_like(w, 0.5), np.full(n, 0.09), 10.0,
                       2.0, 7))


def test_a_file_written_the_old_way_still_loads_and_reports(tmp_path):
    # posterior.nc written before the priors' names were unified: prior_{key}_std with the
    # old keys; the readers (diagnose, the posterior summaries, the report) never need it
    from bayesgmm.cli import main
    from bayesgmm.diagnostics import diagnose
    from bayesgmm.posterior import density, membership, true_values

    dt, _ = _result()
    const = dt["constant_data"].to_dataset()
    const = const.drop_vars([v for v in const.data_vars if str(v).startswith("prior_")])
    for key in ("alpha", "mu_mu", "mu_sigma", "sigma_sigma"):
        const[f"prior_{key}_std"] = ("component", np.ones(K))
    dt["constant_data"] = xr.DataTree(const)
    path = tmp_path / "posterior.nc"
    dt.to_netcdf(path, engine="h5netcdf")
    old = xr.load_datatree(path)
    assert "prior_mu_sigma_std" in old["constant_data"]
    assert diagnose(old).checks.shape[0] > 0
    assert membership(old, [0.0, 5.0])["mean"].shape == (2, K)
    assert density(old, np.linspace(-2, 7, 9)) is not None
    assert true_values(old) is not None
    assert main(["report", str(path), "--out", str(tmp_path / "r.html")]) in (0, 3)
    assert "waiting" in (tmp_path / "r.html").read_text()
