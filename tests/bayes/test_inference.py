"""fit(): the DataTree contract, reproducibility, persistence, warnings, posterior helpers.

Sampling here is real but short (nutpie needs no compilation: the fused log-density is
numba-cached); the statistical targets are in test_sampling_quality.py.
"""

import warnings

import numpy as np
import pytest
import xarray as xr

import bayesgmm
from bayesgmm import DataError, SamplingWarning, density, fit, membership, true_values
from bayesgmm.bayes import inference
from bayesgmm.bayes.samplers import nutpie as nutpie_driver
from bayesgmm.datasets import simulate
from bayesgmm.diagnostics import mixture_checks


@pytest.fixture(scope="module")
def noisy():
    return simulate(300, [0.5, 0.5], [0.0, 3.0], [0.3, 0.6], error_range=(0.2, 0.8),
                    random_seed=4)


@pytest.fixture(scope="module")
def dt_noisy(noisy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return fit(noisy.x, 2, X_err=noisy.x_err, draws=200, tune=300, chains=2,
                   random_seed=11, progressbar=False)


def test_groups_dims_units(dt_noisy, noisy):
    dt = dt_noisy
    for g in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive",
              "observed_data", "constant_data", "em_estimate"):
        assert g in dt.children, g
    post = dt.posterior
    for v in ("weights", "means", "sigmas"):
        assert post[v].dims == ("chain", "draw", "component")
    assert post.sizes == {"chain": 2, "draw": 200, "component": 2}
    assert dt.log_likelihood["x"].dims == ("chain", "draw", "obs")
    assert dt.log_likelihood["x"].shape == (2, 200, 300)
    np.testing.assert_array_equal(dt.observed_data["x"].values, noisy.x)
    np.testing.assert_array_equal(dt.constant_data["x_err"].values, noisy.x_err)
    # data units: means near the truth (0, 3), not standardized values; ordered
    m = post["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(m, [0.0, 3.0], atol=0.25)
    assert np.all(np.diff(post["means"].values, axis=-1) > 0)
    np.testing.assert_allclose(post["weights"].sum("component"), 1.0, rtol=1e-12)
    assert dt.em_estimate["means"].shape == (2,)
    assert "diverging" in dt.sample_stats


def test_arviz_functions_accept_result(dt_noisy):
    import arviz_stats as azs

    loo = azs.loo(dt_noisy)
    assert np.isfinite(loo.elpd)
    # elpd is in data units: close to the EM log-likelihood minus ~the parameter count
    assert abs(loo.elpd - float(dt_noisy.em_estimate["loglik"])) < 15
    s = azs.summary(dt_noisy, var_names=["weights", "means", "sigmas"])
    assert len(s) == 6
    assert float(azs.rhat(dt_noisy, var_names=["means"]).to_dataset()["means"].max()) < 1.1


def test_netcdf_roundtrip(dt_noisy, tmp_path):
    p = tmp_path / "post.nc"
    dt_noisy.to_netcdf(p)
    back = xr.load_datatree(p)
    assert back.identical(dt_noisy)


def test_same_seed_same_posterior(noisy):
    kw = dict(X_err=noisy.x_err, draws=50, tune=50, chains=2, random_seed=3,
              progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        a = fit(noisy.x, 2, **kw)
        b = fit(noisy.x, 2, **kw)
    # values and coords equal (attrs hold the sampling time, which differs)
    xr.testing.assert_equal(a.posterior.to_dataset(), b.posterior.to_dataset())


def test_refit_new_data_reuses_model(noisy):
    import json

    import numba.core.event as numba_event

    # the default backend: the C callbacks compiled at import serve every K and data set;
    # a fit only writes a header of addresses. numba records every compilation as a
    # "numba:compile" event: after the first fit, none may happen.

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        # first fits, with and without errors: EM's kernels for either compile here when
        # the on-disk cache is cold
        fit(noisy.x, 2, X_err=noisy.x_err, draws=20, tune=20, chains=1, progressbar=False,
            random_seed=0)
        fit(noisy.x, 2, draws=20, tune=20, chains=1, progressbar=False, random_seed=0)
        other = simulate(150, [0.3, 0.7], [10.0, 14.0], [1.0, 1.0], random_seed=1)
        with numba_event.install_recorder("numba:compile") as compiled:
            dt = fit(other.x, 2, draws=100, tune=200, chains=1, progressbar=False,
                     random_seed=0)
            three = fit(other.x, 3, draws=10, tune=10, chains=1, progressbar=False,
                        random_seed=0)
    assert compiled.buffer == []
    assert {r["backend"] for r in json.loads(dt.attrs["sampling_runs"])} == {"native"}
    assert three.posterior.sizes["component"] == 3
    assert dt.posterior.sizes["draw"] == 100
    np.testing.assert_allclose(dt.posterior["means"].mean(("chain", "draw")), [10, 14],
                               atol=0.6)

    # the fallback backend (nutpie's from_pyfunc) builds one model per K and reuses it
    nutpie_driver._PYFUNC_CACHE.pop(2, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        inference._fit(noisy.x, 2, draws=20, tune=20, chains=1, progressbar=False,
                       random_seed=0, backend="pyfunc")
        model = nutpie_driver._PYFUNC_CACHE[2]
        again = inference._fit(other.x, 2, draws=20, tune=20, chains=1, progressbar=False,
                               random_seed=0, backend="pyfunc")
    assert nutpie_driver._PYFUNC_CACHE[2] is model
    assert {r["backend"] for r in json.loads(again.attrs["sampling_runs"])} == {"pyfunc"}


@pytest.mark.parametrize("reparam", ["pair", "pymc"])
def test_native_and_pyfunc_backends_give_the_same_draws(noisy, reparam):
    import json

    kw = {"X_err": noisy.x_err, "draws": 60, "tune": 60, "chains": 2, "progressbar": False,
          "random_seed": 5, "target_accept": 0.8}
    results = {}
    for backend in ("native", "pyfunc"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            results[backend] = inference._fit(noisy.x, 2, backend=backend, reparam=reparam,
                                              **kw)
        runs = json.loads(results[backend].attrs["sampling_runs"])
        assert runs[0]["backend"] == backend
        assert (runs[0]["pair"] >= 0) == (reparam == "pair"), runs
    # the same log-density, start and seed: the same chains, to the last digit
    xr.testing.assert_equal(results["native"].posterior.to_dataset(),
                            results["pyfunc"].posterior.to_dataset())


def test_sampler_choices_are_arguments_and_checked(noisy):
    # backend and coordinates are arguments of the internal API, not module globals; a
    # misspelt one is an error, not a reason to fall back to another sampler
    assert not hasattr(nutpie_driver, "BACKEND") and not hasattr(nutpie_driver, "COORDS")
    for bad in ({"backend": "natve"}, {"reparam": "pairs"}):
        with pytest.raises(ValueError, match="backend must be one of"):
            inference._fit(noisy.x, 2, draws=10, tune=10, chains=1, progressbar=False,
                           random_seed=0, **bad)


def test_native_backend_falls_back_when_nutpie_cannot_take_it(noisy, monkeypatch):
    import json

    from bayesgmm.bayes.samplers import nutpie_native as _nutpie_model

    def refuse(*args, **kwargs):
        raise TypeError("CompiledPyMCModel.__init__() got an unexpected keyword argument")

    monkeypatch.setattr(_nutpie_model, "compiled_model", refuse)
    with pytest.warns(SamplingWarning, match="from_pyfunc instead: the same posterior") as rec:
        dt = fit(noisy.x, 2, draws=20, tune=20, chains=1, progressbar=False, random_seed=0,
                 target_accept=0.8)
    # the warning points at the caller of fit and says which backend ran
    fallback = next(w for w in rec if "from_pyfunc instead" in str(w.message))
    assert fallback.filename == __file__ and "backend 'pyfunc'" in str(fallback.message)
    run = json.loads(dt.attrs["sampling_runs"])[0]
    assert (run["sampler"], run["backend"]) == ("nutpie", "pyfunc")
    assert dt.posterior.sizes["draw"] == 20


def test_membership_density_true_values(dt_noisy, noisy):
    m = membership(dt_noisy, [0.0, 1.5, 3.0], ci_prob=0.9)
    assert m["mean"].dims == ("point", "component")
    np.testing.assert_allclose(m["mean"].sum("component"), 1.0, rtol=1e-12)
    assert m["mean"].values[0, 0] > 0.95 and m["mean"].values[2, 1] > 0.95
    assert np.all(m["lower"] <= m["upper"])
    assert np.all((m["lower"] >= 0) & (m["upper"] <= 1))
    grid = np.linspace(-3, 6, 200)
    d_obs = density(dt_noisy, grid)
    d_true = density(dt_noisy, grid, deconvolved=True)
    dx = grid[1] - grid[0]
    # both integrate to ~1 over a grid covering +-4 sd (Riemann sum, 1% slack)
    assert abs(d_obs["mean"].sum() * dx - 1) < 0.01
    assert abs(d_true["mean"].sum() * dx - 1) < 0.01
    # errors widen the observed density: its peak is lower than the deconvolved one
    assert float(d_obs["mean"].max()) < float(d_true["mean"].max())
    np.testing.assert_allclose(d_true["component_mean"].sum("component"), d_true["mean"],
                               rtol=1e-10)
    tv = true_values(dt_noisy, ci_prob=0.9)
    assert tv["mean"].shape == (300,)
    # shrinkage: posterior means are closer to the truth than the observations
    assert np.mean((tv["mean"] - noisy.true_values) ** 2) < 0.6 * np.mean(
        (noisy.x - noisy.true_values) ** 2)
    # 90% intervals cover the true values about 90% of the time (n = 300: +-6%)
    cover = np.mean((tv["lower"] <= noisy.true_values) & (noisy.true_values <= tv["upper"]))
    assert 0.82 < cover < 0.97


def test_checks_flag_modes_far_em_and_empty(dt_noisy):
    ok = {c["name"]: c["ok"] for c in mixture_checks(dt_noisy)}
    assert ok["chains_agree"] and ok["near_em"] and ok["no_empty_component"]
    bad = dt_noisy.copy()
    post = bad["posterior"].to_dataset()
    means = post["means"].values.copy()
    means[1] += 2.0  # chain 1 somewhere else
    weights = post["weights"].values.copy()
    weights[..., 0], weights[..., 1] = 0.001, 0.999
    bad["posterior"] = xr.DataTree(post.assign(means=(post["means"].dims, means),
                                               weights=(post["weights"].dims, weights)))
    checks = {c["name"]: c for c in mixture_checks(bad)}
    assert not checks["chains_agree"]["ok"] and "different modes" in checks[
        "chains_agree"]["message"]
    assert not checks["near_em"]["ok"] and "far from" in checks["near_em"]["message"]
    assert not checks["no_empty_component"]["ok"]
    assert "almost no weight" in checks["no_empty_component"]["message"]


def test_fit_bad_input():
    x = np.random.default_rng(0).normal(size=50)
    with pytest.raises(DataError, match="feature 0 of X is constant"):  # D dims: checked
        fit(np.ones((10, 2)), 2)
    with pytest.raises(DataError, match="sampler must be"):
        fit(x, 2, sampler="stan")
    with pytest.raises(DataError, match="draws must be"):
        fit(x, 2, draws=0)
    with pytest.raises(DataError, match="negative"):
        fit(x, 2, X_err=-np.ones(50))
    with pytest.raises(DataError, match="bayesgmm.fit result"):
        membership(xr.DataTree(), 1.0)


def test_lazy_import_keeps_import_light():
    import subprocess
    import sys

    code = ("import sys, bayesgmm; bad = [m for m in ('pymc', 'matplotlib', 'arviz_stats') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
    assert callable(bayesgmm.fit)
