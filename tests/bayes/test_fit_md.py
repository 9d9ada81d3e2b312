"""fit() in D >= 2 dimensions: layout, log-likelihood, relabelling, persistence, warnings.

Plumbing with fake sampling (``helpers._fake_nutpie``: iid draws around the EM
estimate, patched in for ``inference._sample_nutpie``); one small real nutpie fit at
the end checks what fake draws cannot.
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import _fake_draws_md, _fake_nutpie, _tree_md
from scipy.stats import multivariate_normal

from bayesgmm import DataError, FailedCheckWarning, SamplingWarning, diagnose, fit
from bayesgmm.bayes import inference
from bayesgmm.bayes.inference_md import n_columns
from bayesgmm.bayes.result_md import pointwise_loglik_md


def _data(n=240, seed=0, missing=True):
    rng = np.random.default_rng(seed)
    n0 = int(0.6 * n)
    X = np.vstack([rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], n0),
                   rng.multivariate_normal([5, 3], [[0.5, -0.2], [-0.2, 1]], n - n0)])
    if missing:
        X[3, 1] = np.nan
        X[n0 + 2, 0] = np.nan
    return X


@pytest.fixture(scope="module")
def fake_fit():
    """A D-dim fit with errors and missing values, through fake sampling."""
    X = pd.DataFrame(_data(), columns=["colour", "mag"])
    err = np.full(X.shape, 0.1)
    err[3, 1] = np.nan  # allowed where X misses the value
    mp = pytest.MonkeyPatch()
    mp.setattr(inference, "_sample_nutpie", _fake_nutpie)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FailedCheckWarning)
            dt = fit(X, 2, X_err=err, draws=300, chains=2, random_seed=3, progressbar=False)
    finally:
        mp.undo()
    return X, err, dt


def test_layout(fake_fit):
    X, _, dt = fake_fit
    n, D, K = 240, 2, 2
    for g in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive",
              "observed_data", "constant_data", "em_estimate"):
        assert g in dt.children, g
    post = dt.posterior
    assert post["weights"].dims == ("chain", "draw", "component")
    for v in ("means", "sds"):
        assert post[v].dims == ("chain", "draw", "component", "feature")
    for v in ("correlations", "covariances"):
        assert post[v].dims == ("chain", "draw", "component", "feature", "feature_")
    assert list(post["feature"].values) == ["colour", "mag"]
    assert list(post["feature_"].values) == ["colour", "mag"]
    np.testing.assert_allclose(post["covariances"].values,
                               post["sds"].values[..., :, None] * post["correlations"].values
                               * post["sds"].values[..., None, :], rtol=1e-12)
    assert dt.log_likelihood["x"].shape == (2, 300, n)
    pp = dt.posterior_predictive["x"]
    assert pp.dims == ("chain", "draw", "obs", "feature") and pp.shape[2:] == (n, D)
    assert not np.isnan(pp.values).any()  # complete replicated points
    obs = dt.observed_data["x"].values
    np.testing.assert_array_equal(np.isnan(obs), np.isnan(X.values))  # NaN kept
    cd = dt.constant_data
    assert cd["x_err_cov"].shape == (n, D, D)
    assert cd["x_err_cov"].values[3, 1, 1] == 0.0
    np.testing.assert_allclose(cd["x_err_cov"].values[0], 0.01 * np.eye(2), rtol=1e-12)
    assert cd["prior_means_sigma"].dims == ("component", "feature")
    assert cd["prior_corr_eta"].dims == ()
    em = dt.em_estimate
    assert em["means"].shape == (K, D) and em["covariances"].shape == (K, D, D)
    assert dt.attrs["n_features"] == D and dt.attrs["relabelled"] == 1
    assert dt.attrs["relabel_pivot"] == "em_estimate" and dt.attrs["relabel_permuted"] == 0
    assert "relabel_permutation" in dt.sample_stats
    runs = json.loads(dt.attrs["sampling_runs"])
    assert runs[0]["sampler"] == "nutpie"


def test_log_likelihood_against_scipy(fake_fit):
    # independent reference: scipy's multivariate normal on each point's observed
    # features, covariance Sigma_k + S_i; agreement to rounding (1e-10)
    X, _, dt = fake_fit
    x = X.values
    post, cov = dt.posterior, dt.constant_data["x_err_cov"].values
    for c, s in ((0, 0), (1, 123)):
        w = post["weights"].values[c, s]
        mu, sig = post["means"].values[c, s], post["covariances"].values[c, s]
        for i in (0, 3, 146, 200):
            o = ~np.isnan(x[i])
            ref = np.log(sum(w[k] * multivariate_normal(mu[k][o], (sig[k] + cov[i])[
                np.ix_(o, o)]).pdf(x[i][o]) for k in range(2)))
            np.testing.assert_allclose(dt.log_likelihood["x"].values[c, s, i], ref,
                                       rtol=1e-10)


def test_log_likelihood_blocks_agree():
    # the blocked computation gives the same numbers whatever the block size
    from bayesgmm.bayes import result_md

    rng = np.random.default_rng(1)
    x = _data(60)
    obs = ~np.isnan(x)
    cov = np.einsum("nij,nkj->nik", *(2 * [0.3 * rng.standard_normal((60, 2, 2))]))
    cov[~obs[:, 1], 1, :] = cov[~obs[:, 1], :, 1] = 0
    cov[~obs[:, 0], 0, :] = cov[~obs[:, 0], :, 0] = 0
    w = rng.dirichlet([5, 5], size=7)
    mu = rng.normal(size=(7, 2, 2))
    A = rng.normal(size=(7, 2, 2, 2))
    sig = A @ np.swapaxes(A, -1, -2) + np.eye(2)
    loc, scale = np.nanmean(x, 0), np.nanstd(x, 0)
    full = pointwise_loglik_md(x, obs, cov, w, mu, sig, loc, scale)
    old = result_md._BLOCK_VALUES
    try:
        result_md._BLOCK_VALUES = 5
        small = pointwise_loglik_md(x, obs, cov, w, mu, sig, loc, scale)
    finally:
        result_md._BLOCK_VALUES = old
    np.testing.assert_allclose(small, full, rtol=1e-12)


def test_scrambled_chains_end_relabelled(monkeypatch):
    # chain c starts in the labelling rotated by c: after fit every draw carries the EM
    # estimate's labels, the moved draws are counted, and diagnose finds them identified
    X = _data(missing=False)

    def scrambled(problem, tune, target_accept):
        return _fake_draws_md(problem.em, problem.chains, problem.draws, problem.seed,
                              scramble=True)

    monkeypatch.setattr(inference, "_sample_nutpie", scrambled)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FailedCheckWarning)  # no check may fail
        dt = fit(X, 2, draws=200, chains=3, random_seed=5, progressbar=False)
    assert dt.attrs["relabel_permuted"] == 200  # chain 1 (rotation by 1); chain 2 = id
    np.testing.assert_allclose(dt.attrs["relabel_permuted_fraction"], 200 / 600)
    perm = dt.sample_stats["relabel_permutation"].values
    np.testing.assert_array_equal(perm[1], np.broadcast_to([1, 0], (200, 2)))
    em = dt.em_estimate
    # fake draws scatter 1% of an sd around EM: posterior means within 5% of an sd
    np.testing.assert_allclose(dt.posterior["means"].mean(("chain", "draw")),
                               em["means"], atol=0.05 * float(em["sds"].min()))
    checks = diagnose(dt).checks.set_index("name")
    assert checks.loc["pivot_identified", "ok"] and checks.loc["chains_agree", "ok"]
    assert json.loads(dt.attrs["sampling_runs"])[0]["failed"] == []


def test_failed_check_warns_in_d_dims(monkeypatch):
    # one chain shifted by 10 sds in means[1]: chains_agree and R-hat fail and warn
    def shifted(problem, tune, target_accept):
        post, stats = _fake_draws_md(problem.em, problem.chains, problem.draws,
                                     problem.seed)
        means = post["means"].values.copy()
        means[1, :, 1] += 10 * 0.01 * problem.em["sds"][1]
        return post.assign(means=(post["means"].dims, means)), stats

    monkeypatch.setattr(inference, "_sample_nutpie", shifted)
    with pytest.warns(FailedCheckWarning) as record:
        dt = fit(_data(missing=False), 2, draws=200, chains=2, random_seed=2,
                 progressbar=False)
    checks = {w.message.check for w in record if isinstance(w.message, FailedCheckWarning)}
    assert {"r_hat", "chains_agree"} <= checks
    assert checks == set(diagnose(dt).checks.query("~ok")["name"])
    assert len(json.loads(dt.attrs["sampling_runs"])) == 2  # the rerun rule ran


def test_same_seed_same_draws_and_netcdf(fake_fit, tmp_path, monkeypatch):
    X, err, dt = fake_fit
    monkeypatch.setattr(inference, "_sample_nutpie", _fake_nutpie)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FailedCheckWarning)
        again = fit(X, 2, X_err=err, draws=300, chains=2, random_seed=3, progressbar=False)
    xr.testing.assert_identical(again.posterior.to_dataset(), dt.posterior.to_dataset())
    xr.testing.assert_identical(again.posterior_predictive.to_dataset(),
                                dt.posterior_predictive.to_dataset())
    path = tmp_path / "md.nc"
    dt.to_netcdf(path)
    back = xr.open_datatree(path)
    for g in dt.children:
        xr.testing.assert_allclose(back[g].to_dataset(), dt[g].to_dataset())
    assert list(back.posterior["feature"].values) == ["colour", "mag"]
    assert back.attrs["relabel_permuted"] == dt.attrs["relabel_permuted"]
    assert diagnose(back).checks.shape == diagnose(dt).checks.shape


def test_one_column_keeps_the_1d_path():
    assert n_columns(np.zeros((5, 1))) == 1 and n_columns(np.zeros(5)) == 1
    assert n_columns([[1, 2], [3]]) == 1  # ragged: the 1-D checks say what is wrong
    assert n_columns(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})) == 2


def test_bad_input_is_a_data_error():
    X = _data(missing=False)
    with pytest.raises(DataError, match="constant"):
        fit(np.column_stack([X[:, 0], np.ones(len(X))]), 2)
    X[5] = np.nan
    with pytest.raises(DataError):
        fit(X, 2)
    with pytest.raises(DataError):
        fit(_data(), 2, X_err=np.ones((3, 2)))


def test_tree_md_helper_is_a_healthy_result():
    dt = _tree_md()
    d = diagnose(dt)
    assert d.ok, d.checks.query("~ok")
    # the correlations enter the checks by their entries below the diagonal only
    rows = [r for r in d.table.index if r.startswith("correlations")]
    assert len(rows) == 2 and not d.table.loc[rows, "r_hat"].isna().any()


def test_real_nutpie_fit(tmp_path):
    """A small real fit (n = 300, D = 2, K = 2, well separated; 2 chains x 300 draws)."""
    X = _data(300, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FailedCheckWarning)
        dt = fit(X, 2, draws=300, tune=300, chains=2, random_seed=1, progressbar=False)
        again = fit(X, 2, draws=300, tune=300, chains=2, random_seed=1, progressbar=False)
    runs = json.loads(dt.attrs["sampling_runs"])
    assert runs[-1]["sampler"] == "nutpie"
    # the same draws (the attrs differ only in created_at)
    xr.testing.assert_equal(dt.posterior.to_dataset(), again.posterior.to_dataset())
    post, em = dt.posterior, dt.em_estimate
    # well separated (5 sds apart), 300 points: the posterior means sit within 2
    # posterior sds of the EM estimate (the target for Old Faithful K = 2)
    for v in ("weights", "means", "sds"):
        m, sd = post[v].mean(("chain", "draw")), post[v].std(("chain", "draw"))
        assert (abs(m - em[v]) <= 2 * sd).all(), v
    # the first run at these settings gives R-hat ~1.005 (seed 1); 1.05 leaves room for
    # another platform's rounding without hiding chains in different modes
    assert runs[0]["max_rhat"] < 1.05 and runs[0]["divergences"] == 0
    assert dt.attrs["relabel_not_identified"] == 0.0
    # well separated: no draw needs relabelling, and the count says so
    assert dt.attrs["relabel_permuted"] == 0
    assert not (dt.sample_stats["relabel_permutation"] != [0, 1]).any()
    for v in ("correlations", "covariances"):
        assert post[v].dims == ("chain", "draw", "component", "feature", "feature_")
    assert dt.log_likelihood["x"].shape == (2, 300, 300)
    assert np.isfinite(dt.log_likelihood["x"].values).all()
    checks = diagnose(dt).checks.set_index("name")
    assert checks.loc["pivot_identified", "ok"] and checks.loc["chains_agree", "ok"]
    # one mode, found by climbing the draws (bayes/modes.py in D dims), at the draws
    modes = json.loads(dt.attrs["modes"])
    assert modes["n_modes"] == 1 and checks.loc["modes_mixed", "ok"]
    assert (dt.sample_stats["mode"] == 0).all()
    np.testing.assert_allclose(modes["at_mode"][0]["means"], post["means"].mean(
        ("chain", "draw")), atol=0.1)  # posterior sd of the means: 0.05-0.1
    path = tmp_path / "real.nc"
    dt.to_netcdf(path)
    back = xr.open_datatree(path)
    xr.testing.assert_allclose(back.posterior.to_dataset(), dt.posterior.to_dataset())
    assert back.attrs["sampling_runs"] == dt.attrs["sampling_runs"]


def test_nutpie_failure_falls_back_to_pymc(monkeypatch):
    from bayesgmm import SamplingWarning

    def fails(problem, tune, target_accept):
        raise RuntimeError("no")

    def pymc(problem, tune, target_accept, nuts_sampler="pymc"):
        return _fake_draws_md(problem.em, problem.chains, problem.draws, problem.seed)

    monkeypatch.setattr(inference, "_sample_nutpie", fails)
    monkeypatch.setattr(inference, "_sample_pymc_md_or_fail", pymc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FailedCheckWarning)
        with pytest.warns(SamplingWarning, match="falling back to PyMC"):
            dt = fit(_data(missing=False), 2, draws=100, chains=2, random_seed=0,
                     progressbar=False)
    assert dt.attrs["sampler"] == "pymc" and dt.attrs["relabelled"] == 1


def test_pymc_start_is_the_em_estimate(monkeypatch):
    # build_model_md's chains start at the EM estimate: with no jitter, the initvals
    # map back to it (correlations shrunk by 1e-3 towards the identity)
    from bayesgmm.bayes.inference_md import prepare_md
    from bayesgmm.bayes.model import build_model
    from bayesgmm.bayes.samplers import pymc_nuts

    rng = np.random.default_rng(0)
    p = prepare_md(_data(120), None, 2, None, rng, draws=10, chains=1, seed_rng=rng,
                   progressbar=False, backend="native")
    model = build_model(p.x, 2)
    monkeypatch.setattr(pymc_nuts, "START_JITTER", 0.0)
    (init,) = pymc_nuts._md_initvals(model, pymc_nuts.md_start(model, p.em, p.loc, p.scale),
                                     1, p.seed)
    np.testing.assert_allclose(init["weights"], p.em["weights"], rtol=1e-10)
    np.testing.assert_allclose(p.loc + p.scale * init["means_std"], p.em["means"],
                               rtol=1e-10)
    np.testing.assert_allclose(p.scale * init["sds_std"], p.em["sds"], rtol=1e-10)
    L = init["corr_chol"]
    np.testing.assert_allclose(L @ np.swapaxes(L, -1, -2), p.em["correlations"], atol=1e-3)


def test_native_and_pyfunc_backends_give_the_same_draws_in_d_dimensions():
    # the compiled callback (nutpie_native_md) and from_pyfunc share the log-density and
    # the expansion: the same chains, to the last digit, with errors and missing values
    rng = np.random.default_rng(3)
    X = _data(160, seed=3)
    err = rng.uniform(0.1, 0.3, X.shape)
    kw = {"X_err": err, "draws": 40, "tune": 40, "chains": 2, "progressbar": False,
          "random_seed": 5, "target_accept": 0.8}
    results = {}
    for backend in ("native", "pyfunc"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[backend] = inference._fit(X, 2, backend=backend, **kw)
        runs = json.loads(results[backend].attrs["sampling_runs"])
        assert runs[0]["backend"] == backend
    xr.testing.assert_equal(results["native"].posterior.to_dataset(),
                            results["pyfunc"].posterior.to_dataset())


def test_native_md_header_is_checked():
    from bayesgmm.bayes.samplers import nutpie_native_md as native
    from bayesgmm.bayes.target_md import expand_flat, n_expanded

    assert native._N_HEADER == len(native.HEADER_MD)
    # a header of another layout (the 1-D one's magic) is refused by both callbacks
    h = np.zeros(native._N_HEADER, dtype=np.int64)
    h[0], h[1] = 0x62676D6D_0002, native._N_HEADER
    assert not native._layout_ok(h, 11)
    assert n_expanded(2, 2) == 2 + 8 + 16
    out = np.empty(n_expanded(2, 2))
    theta = np.zeros(2 - 1 + 2 * 2 * 2 + 2)
    expand_flat(theta, 2, 2, np.array([1.0, 2.0]), np.array([2.0, 3.0]), out)
    # theta = 0: equal weights, means at loc, sds = scale (exp(0)), identity correlations
    np.testing.assert_allclose(out[:2], [0.5, 0.5])
    np.testing.assert_allclose(out[2:6], [1.0, 2.0, 1.0, 2.0])
    np.testing.assert_allclose(out[6:10], [2.0, 3.0, 2.0, 3.0])
    np.testing.assert_allclose(out[10:14], [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(out[18:22], [4.0, 0.0, 0.0, 9.0])


def _shifted(problem, tune, target_accept):
    # one chain shifted by 0.6 of the draws' sd in one mean: R-hat fails, chains agree
    post, stats = _fake_draws_md(problem.em, problem.chains, problem.draws, problem.seed)
    means = post["means"].values.copy()
    means[0, :, 1, 1] += 0.6 * means[:, :, 1, 1].std()
    return post.assign(means=(post["means"].dims, means)), stats


@pytest.mark.parametrize("target_accept, expected", [(None, "sampler='smc'"),
                                                     (0.8, "tune=2000")])
def test_rhat_failing_after_the_rerun_points_to_smc(monkeypatch, target_accept, expected):
    # After the rerun rule's second run failed R-hat too (target_accept None) on data
    # too large for its SMC step (the limit set to 0 here), the next step is SMC; with
    # one run (target_accept given, no rerun) it is a longer run
    monkeypatch.setattr(inference, "_sample_nutpie", _shifted)
    monkeypatch.setattr(inference, "SMC_FALLBACK_MAX_VALUES", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = fit(_data(missing=False), 2, draws=1000, chains=4, random_seed=2,
                 progressbar=False, target_accept=target_accept)
    d = diagnose(dt)
    failed = list(d.checks.query("~ok")["name"])
    assert failed[0] in ("r_hat", "rank_ecdf") and "chains_agree" not in failed, failed
    assert expected in d.verdict, d.verdict
    runs = json.loads(dt.attrs["sampling_runs"])
    assert len(runs) == (2 if target_accept is None else 1)
    if target_accept is None:  # why SMC did not run is recorded
        assert "480 observed values is more than 0" in runs[-1]["smc_fallback"]


def test_rhat_failing_twice_ends_with_smc(monkeypatch):
    # the rerun rule's last step: both NUTS runs fail R-hat on small data without
    # repeats, so SMC samples the posterior and its draws are kept (a few hundred
    # particles: plumbing and the choice, not statistics); rounded data keep NUTS's
    # second run and say which feature repeats
    monkeypatch.setattr(inference, "_sample_nutpie", _shifted)
    monkeypatch.setattr(inference, "SMC_PARTICLES", 200)
    monkeypatch.setattr(inference, "SMC_IMPORTANCE", 10_000)
    monkeypatch.setattr(inference, "SMC_RUNS", 2)
    X = pd.DataFrame(_data(n=40, seed=1, missing=False), columns=["colour", "mag"])
    with pytest.warns(SamplingWarning, match="both NUTS runs failed R-hat"):
        dt = fit(X, 2, X_err=np.full(X.shape, 0.1), draws=1000, chains=4, random_seed=2,
                 progressbar=False)
    runs = json.loads(dt.attrs["sampling_runs"])
    assert [r["sampler"] for r in runs] == ["nutpie", "nutpie", "smc"]
    assert all("max_rhat" in r["failed"] for r in runs[:2])
    assert dt.attrs["sampler"] == "smc" and dt["posterior"]["means"].shape == (4, 1000, 2, 2)
    assert diagnose(dt).checks.set_index("name").loc["r_hat", "ok"]
    X.iloc[:, 1] = np.round(X.iloc[:, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = fit(X, 2, draws=1000, chains=4, random_seed=2, progressbar=False)
    runs = json.loads(dt.attrs["sampling_runs"])
    assert len(runs) == 2 and "feature 'mag'" in runs[-1]["smc_fallback"]
    assert "sampler='smc'" in diagnose(dt).verdict
