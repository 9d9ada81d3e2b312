"""The JAX path: build_model's log-density in JAX, and fit(sampler="numpyro")."""

import json

import numpy as np
import pytest
from scipy.stats import norm

import bayesgmm

jax = pytest.importorskip("jax")
pytest.importorskip("numpyro")


def _value_and_grad_match(model, rng):
    # PyTensor's JAX backend on the model's graph, differentiated by JAX (what NumPyro
    # samples), against the C-compiled log-density and PyMC's own gradient; float64
    from pymc.sampling.jax import get_jaxified_logp

    logp_c, dlogp_c = model.compile_logp(), model.compile_dlogp()
    logp_j = get_jaxified_logp(model)
    names = [v.name for v in model.value_vars]
    value_and_grad = jax.jit(jax.value_and_grad(lambda *a: logp_j(a),
                                                argnums=tuple(range(len(names)))))
    start = model.initial_point()
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in start.items()}
        value, grads = value_and_grad(*[point[n] for n in names])
        assert np.asarray(value).dtype == np.float64
        assert float(value) == pytest.approx(float(logp_c(point)), rel=1e-10)
        ref = dlogp_c(point)
        got = np.concatenate([np.ravel(g) for g in grads])
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_jax_log_density_matches_pymc_in_1d():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 300)
    model = bayesgmm.build_model(x * 1e3 + 5e6, 3, X_err=rng.uniform(100, 500, 300))
    _value_and_grad_match(model, rng)


def test_jax_log_density_matches_pymc_in_2d_with_errors_and_a_missing_value():
    rng = np.random.default_rng(1)
    X = rng.normal(0, 1, (200, 2))
    X[3, 1] = np.nan
    _value_and_grad_match(bayesgmm.build_model(X, 2, X_err=rng.uniform(0.1, 0.3, (200, 2))),
                          rng)


@pytest.mark.slow
def test_numpyro_gives_the_default_posterior():
    # 300 points with errors, K = 2, 4 chains x 500 draws each way (seed 1). Means
    # and 5%/95% quantiles must agree within 4 Monte Carlo standard errors of the
    # difference: se of a mean sd / sqrt(ESS), of a q-quantile (normal approximation)
    # sd sqrt(q (1 - q) / ESS) / phi(z_q), with each run's smallest bulk ESS
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, 200), rng.normal(5, 1.5, 100)])
    e = rng.uniform(0.2, 0.5, x.size)
    kw = {"draws": 500, "tune": 500, "random_seed": 1, "progressbar": False}
    ref = bayesgmm.fit(x, 2, X_err=e, **kw)
    jx = bayesgmm.fit(x, 2, X_err=e, sampler="numpyro", **kw)
    run = json.loads(jx.attrs["sampling_runs"])[-1]
    assert run["sampler"] == "numpyro" and not run["failed"]
    ess = min(run["min_ess_bulk"], json.loads(ref.attrs["sampling_runs"])[-1]["min_ess_bulk"])
    for name in ("weights", "means", "sigmas"):
        a = ref.posterior[name].stack(s=("chain", "draw")).values
        b = jx.posterior[name].stack(s=("chain", "draw")).values
        sd = a.std(axis=-1)
        assert np.all(np.abs(a.mean(-1) - b.mean(-1)) < 4 * np.sqrt(2) * sd / np.sqrt(ess))
        for q in (0.05, 0.95):
            se = sd * np.sqrt(q * (1 - q) / ess) / norm.pdf(norm.ppf(q))
            diff = np.quantile(a, q, axis=-1) - np.quantile(b, q, axis=-1)
            assert np.all(np.abs(diff) < 4 * np.sqrt(2) * se), (name, q, diff, se)
