"""Fused mixture log-likelihood Ops: values, gradients, graph fusion, PyMC and nutpie use."""

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from scipy.special import logsumexp
from scipy.stats import norm

from bayesgmm._numerics import fastmath as _fm
from bayesgmm.bayes import likelihood as _mk
from bayesgmm.bayes import logp_op as _logp_op
from bayesgmm.bayes.logp_op import (
    MixtureLogpPointwise,
    MixtureLogpTotal,
    MixtureLogpVJP,
    mixture_logp_pointwise,
    mixture_logp_total,
)

# One-off graphs (error paths, finite differences, PyMC models) run with the Python linker
# (each node's ``perform``, which calls the same compiled kernels): numba-compiling each
# would dominate the run time. The fused Ops and the plain reference graphs they are
# compared with are compiled once, in the default (numba) mode.
PY = Mode(linker="py", optimizer="fast_run")

# Every value and gradient below is compared to 1e-10 relative: the kernels differ from
# the references only by rounding (exp/log accurate to ~2 ulp, sums of n <= 2,000 terms
# in a different order), i.e. ~1e-14, so 1e-10 leaves four orders of margin.
RTOL = 1e-10


def _scipy_pointwise(x, e2, w, mu, sigma):
    """Reference log p(x_i) with SciPy, one (n, K) array."""
    e2 = np.broadcast_to(np.asarray(0.0 if e2 is None else e2, float), x.shape)
    sd = np.sqrt(np.asarray(sigma)[None, :] ** 2 + e2[:, None])
    with np.errstate(divide="ignore"):  # log(0) for a zero weight is -inf, as intended
        return logsumexp(np.log(w) + norm.logpdf(x[:, None], mu, sd), axis=1)


def _params(rng, K):
    w = rng.dirichlet(np.full(K, 2.0))
    mu = np.sort(rng.normal(0.0, 1.5, K))
    sigma = rng.uniform(0.2, 1.5, K)
    return w, mu, sigma


def _data(rng, n=2000, spread=3.0):
    x = rng.normal(0.0, spread, n)
    e2 = rng.uniform(0.0, 0.6, n) ** 2
    return x, e2


# ---------------------------------------------------------------- compiled functions

_SYM = {"x": pt.dvector("x"), "e2v": pt.dvector("e2"), "e2s": pt.dscalar("e2"),
        "w": pt.dvector("w"), "mu": pt.dvector("mu"), "sigma": pt.dvector("sigma"),
        "g": pt.dvector("g")}


def _reference_graph(x, e2, w, mu, sigma):
    """The plain PyTensor formulation: explicit (n, K) logsumexp."""
    sd = pt.sqrt(sigma[None, :] ** 2 + (e2[:, None] if e2.ndim else e2))
    comp = pm.logp(pm.Normal.dist(mu[None, :], sd), x[:, None])
    return pt.logsumexp(pt.log(w)[None, :] + comp, axis=1)


@pytest.fixture(scope="module")
def funcs():
    """Compiled (numba) value-and-gradient functions: fused, pointwise-summed, reference."""
    s = _SYM
    params = [s["w"], s["mu"], s["sigma"]]
    out = {}
    for e2_kind in ("e2v", "e2s"):
        ins = [s["x"], s[e2_kind], *params]
        fused = mixture_logp_total(*ins)
        summed = mixture_logp_pointwise(*ins).sum()
        ref = _reference_graph(*ins)
        out["fused", e2_kind] = pytensor.function(ins, [fused, *pt.grad(fused, params)])
        out["summed", e2_kind] = pytensor.function(ins, [summed, *pt.grad(summed, params)])
        out["ref", e2_kind] = pytensor.function(ins, [ref.sum(), *pt.grad(ref.sum(), params)])
    ins = [s["x"], s["e2v"], *params]
    vjp = (mixture_logp_pointwise(*ins) * s["g"]).sum()
    vjp_ref = (_reference_graph(*ins) * s["g"]).sum()
    out["vjp"] = pytensor.function([*ins, s["g"]], [vjp, *pt.grad(vjp, params)])
    out["vjp_ref"] = pytensor.function([*ins, s["g"]], [vjp_ref, *pt.grad(vjp_ref, params)])
    out["pointwise"] = pytensor.function(ins, mixture_logp_pointwise(*ins))
    return out


def _assert_all_close(got, want, rtol=RTOL):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=0)


# ---------------------------------------------------------------- exp and log


def test_exp_and_log_are_accurate():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-708, 0, 200_000), rng.uniform(-1, 1, 200_000),
                        -np.logspace(-300, 2.85, 2_000), [0.0, -0.0, 5.0, 700.0]])
    got = np.array([_fm._exp(v) for v in x[::50]] + [_fm._exp(v) for v in x[-4:]])
    want = np.exp(np.concatenate([x[::50], x[-4:]]))
    # 4 ulp: a degree-12 Taylor polynomial on |r| <= log(2)/2 errs by < 1 ulp, Horner ~2.
    np.testing.assert_allclose(got, want, rtol=4 * 2.2e-16, atol=0)
    assert _fm._exp(-709.0) == 0.0 and _fm._exp(-np.inf) == 0.0
    assert np.isnan(_fm._exp(np.nan))

    y = np.concatenate([rng.uniform(1e-3, 1e3, 20_000), np.logspace(-300, 300, 2_000),
                        [1.0, 2.0, 0.5, np.sqrt(2.0), np.sqrt(0.5), 1 + 2.2e-16]])
    got = np.array([_fm._log(v) for v in y])
    # 4 ulp of max(1, |log y|): the atanh series is truncated below 1e-17.
    np.testing.assert_allclose(got, np.log(y), rtol=4 * 2.2e-16, atol=4 * 2.2e-16)
    assert _fm._log(0.0) == -np.inf and _fm._log(np.inf) == np.inf
    assert np.isnan(_fm._log(-1.0)) and np.isnan(_fm._log(np.nan))


# ---------------------------------------------------------------- values and gradients


@pytest.mark.parametrize("K", range(1, 11))
@pytest.mark.parametrize("errors", ["per_point", "zeros", "shared"])
def test_value_and_gradient_match_plain_pytensor_and_scipy(funcs, K, errors):
    rng = np.random.default_rng(100 + K)
    x, e2 = _data(rng)
    e2 = {"per_point": e2, "zeros": np.zeros_like(x), "shared": np.float64(0.09)}[errors]
    kind = "e2s" if errors == "shared" else "e2v"
    for _ in range(3):
        args = (x, e2, *_params(rng, K))
        fused = funcs["fused", kind](*args)
        _assert_all_close(fused, funcs["ref", kind](*args))
        _assert_all_close(funcs["summed", kind](*args), fused)
        np.testing.assert_allclose(fused[0], _scipy_pointwise(*args).sum(), rtol=RTOL)


def test_pointwise_and_its_vjp(funcs):
    rng = np.random.default_rng(7)
    x, e2 = _data(rng)
    for K in (1, 3, 7):
        w, mu, sigma = _params(rng, K)
        g = rng.normal(size=x.size)
        np.testing.assert_allclose(funcs["pointwise"](x, e2, w, mu, sigma),
                                   _scipy_pointwise(x, e2, w, mu, sigma), rtol=RTOL)
        _assert_all_close(funcs["vjp"](x, e2, w, mu, sigma, g),
                          funcs["vjp_ref"](x, e2, w, mu, sigma, g))


def test_matches_pymc_normalmixture_logp():
    rng = np.random.default_rng(3)
    x, e2 = _data(rng, n=500)
    w, mu, sigma = _params(rng, 4)
    sd = np.sqrt(sigma[None, :] ** 2 + e2[:, None])
    want = pm.logp(pm.NormalMixture.dist(w=w, mu=mu, sigma=sd), x).eval(mode=PY)
    got = mixture_logp_pointwise(x, e2, w, mu, sigma).eval(mode=PY)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    total = mixture_logp_total(x, e2, w, mu, sigma).eval(mode=PY)
    np.testing.assert_allclose(total, want.sum(), rtol=RTOL)


def test_none_errors_and_scalar_sigma():
    rng = np.random.default_rng(4)
    x, _ = _data(rng, n=300)
    w, mu, _ = _params(rng, 3)
    want = _scipy_pointwise(x, None, w, mu, np.full(3, 0.7))
    got = mixture_logp_total(x, None, w, mu, 0.7).eval(mode=PY)
    np.testing.assert_allclose(got, want.sum(), rtol=RTOL)
    got = mixture_logp_pointwise(x, None, w, mu, 0.7).eval(mode=PY)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    s = pt.dscalar("s")
    grad = pt.grad(mixture_logp_total(x, None, w, mu, s), s).eval({s: 0.7}, mode=PY)
    h = 1e-6
    fd = (_scipy_pointwise(x, None, w, mu, np.full(3, 0.7 + h)).sum()
          - _scipy_pointwise(x, None, w, mu, np.full(3, 0.7 - h)).sum()) / (2 * h)
    # central difference, h = 1e-6 on a sum of 300 terms of O(1): error ~1e-7 relative
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


@pytest.mark.parametrize("errors", [True, False])
def test_verify_grad(errors):
    rng = np.random.default_rng(5)
    x, e2 = _data(rng, n=200)
    e2 = e2 if errors else np.zeros_like(x)
    w, mu, sigma = _params(rng, 3)
    # verify_grad: finite differences of a random projection, PyTensor's own tolerances
    pytensor.gradient.verify_grad(lambda w, m, s: mixture_logp_total(x, e2, w, m, s),
                                  [w, mu, sigma], rng=rng, mode=PY)
    pytensor.gradient.verify_grad(lambda w, m, s: mixture_logp_pointwise(x, e2, w, m, s),
                                  [w, mu, sigma], rng=rng, mode=PY)


def test_zero_weight_component_has_finite_gradient():
    rng = np.random.default_rng(6)
    x, e2 = _data(rng, n=400)
    w = np.array([0.6, 0.0, 0.4])
    mu, sigma = np.array([-2.0, 0.0, 2.0]), np.array([1.0, 0.5, 1.0])
    total, dw, dmu, dsig = _mk._total_impl(x, e2, w, mu, sigma)
    np.testing.assert_allclose(total, _scipy_pointwise(x, e2, w, mu, sigma).sum(), rtol=RTOL)
    # d/dw_k = sum_i N(x_i | k) / p(x_i), finite even where w_k = 0
    sd = np.sqrt(sigma[None, :] ** 2 + e2[:, None])
    dens = norm.pdf(x[:, None], mu, sd)
    np.testing.assert_allclose(dw, (dens / (dens @ w)[:, None]).sum(axis=0), rtol=RTOL)
    assert dmu[1] == 0.0 and dsig[1] == 0.0
    dw_v, _, _ = _mk._vjp_impl(x, e2, w, mu, sigma, np.full(x.size, 2.0))
    np.testing.assert_allclose(dw_v, 2 * dw, rtol=RTOL)


def test_numerically_stable_far_from_all_components():
    x = np.array([-1e4, -50.0, 0.0, 37.0, 3e3, 1e6])
    e2 = np.array([0.0, 1e-8, 4.0, 0.0, 1e4, 0.0])
    w, mu, sigma = np.array([0.2, 0.8]), np.array([-1.0, 1.0]), np.array([0.01, 0.3])
    total, *grads = _mk._total_impl(x, e2, w, mu, sigma)
    want = _scipy_pointwise(x, e2, w, mu, sigma)
    assert np.all(np.isfinite(want))
    np.testing.assert_allclose(_mk._pointwise_impl(x, e2, w, mu, sigma), want, rtol=RTOL)
    np.testing.assert_allclose(total, want.sum(), rtol=RTOL)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_non_finite_parameters_propagate():
    x, e2 = np.linspace(-2, 2, 50), np.full(50, 0.1)
    w, sigma = np.array([0.5, 0.5]), np.array([1.0, 1.0])
    assert np.isnan(_mk._total_impl(x, e2, w, np.array([0.0, np.nan]), sigma)[0])
    assert np.isnan(_mk._pointwise_impl(x, e2, w, np.array([np.nan, 0.0]), sigma)).all()


def test_empty_data():
    w, mu, sigma = np.array([1.0]), np.array([0.0]), np.array([1.0])
    assert _mk._total_impl(np.empty(0), np.empty(0), w, mu, sigma)[0] == 0.0
    assert _mk._pointwise_impl(np.empty(0), np.array(0.0), w, mu, sigma).shape == (0,)


def test_bad_shapes_are_rejected():
    x = np.zeros(5)
    with pytest.raises(TypeError, match="x must have ndim"):
        mixture_logp_total(np.zeros((5, 1)), None, [1.0], [0.0], [1.0])
    with pytest.raises(TypeError, match="mu must have ndim"):
        MixtureLogpTotal()(x, 0.0, [1.0], 0.0, [1.0])
    with pytest.raises(ValueError, match="w, mu and sigma must have the same length"):
        mixture_logp_total(x, None, [0.5, 0.5], [0.0], [1.0]).eval(mode=PY)
    with pytest.raises(ValueError, match="e2 must have length 1 or the length of x"):
        mixture_logp_total(x, np.ones(3), [1.0], [0.0], [1.0]).eval(mode=PY)
    with pytest.raises(ValueError, match="Batched mixtures are not supported"):
        mixture_logp_total(x, None, pt.dmatrix("w"), [0.0], [1.0])


def test_second_derivatives_are_reported_not_implemented():
    mu = pt.dvector("mu")
    gmu = pt.grad(mixture_logp_total(np.zeros(3), None, [0.5, 0.5], mu, [1.0, 1.0]), mu)
    with pytest.raises(pytensor.gradient.NullTypeGradError, match="Second derivatives"):
        pt.grad(gmu.sum(), mu)


# ---------------------------------------------------------------- one pass per evaluation


def _mixture_nodes(fn):
    ops = [type(node.op) for node in fn.maker.fgraph.toposort()]
    return {cls: ops.count(cls) for cls in (MixtureLogpTotal, MixtureLogpPointwise,
                                            MixtureLogpVJP)}


def test_logp_and_gradient_share_one_node(funcs):
    """Compiled [logp, grad] holds one fused node, for the total and for sum(pointwise)."""
    want = {MixtureLogpTotal: 1, MixtureLogpPointwise: 0, MixtureLogpVJP: 0}
    for key in [("fused", "e2v"), ("fused", "e2s"), ("summed", "e2v"), ("summed", "e2s")]:
        assert _mixture_nodes(funcs[key]) == want, key
    assert _mixture_nodes(funcs["vjp"]) == {MixtureLogpTotal: 0, MixtureLogpPointwise: 1,
                                            MixtureLogpVJP: 1}


def test_loop_runs_once_per_evaluation(monkeypatch):
    """Count kernel calls: the Python linker calls ``perform``, which calls the kernel."""
    calls = []
    kernel = _mk._total_impl
    monkeypatch.setattr(_logp_op, "_total_impl", lambda *a: calls.append(1) or kernel(*a))
    x, e2 = _data(np.random.default_rng(8), n=100)
    w, mu, sigma = pt.dvector("w"), pt.dvector("mu"), pt.dvector("sigma")
    for logp in (mixture_logp_total(x, e2, w, mu, sigma),
                 mixture_logp_pointwise(x, e2, w, mu, sigma).sum()):
        fn = pytensor.function([w, mu, sigma], [logp, *pt.grad(logp, [w, mu, sigma])],
                               mode=Mode(linker="py", optimizer="fast_run"))
        calls.clear()
        fn([0.3, 0.7], [-1.0, 1.0], [1.0, 0.5])
        assert len(calls) == 1


def test_numba_mode_does_not_fall_back_to_object_mode():
    x, e2 = _data(np.random.default_rng(9), n=50)
    w, mu, sigma = pt.dvector("w"), pt.dvector("mu"), pt.dvector("sigma")
    outs = [mixture_logp_total(x, e2, w, mu, sigma),
            mixture_logp_pointwise(x, e2, w, mu, sigma),
            pt.grad((mixture_logp_pointwise(x, e2, w, mu, sigma) * x).sum(), mu)]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        fn = pytensor.function([w, mu, sigma], outs, mode="NUMBA")
    fn([0.3, 0.7], [-1.0, 1.0], [1.0, 0.5])


# ---------------------------------------------------------------- PyMC and nutpie


def _model(kind, x, e2, K=3):
    with pm.Model(coords={"component": np.arange(K)}) as model:
        xd, ed = pm.Data("x", x), pm.Data("e2", e2)
        w = pm.Dirichlet("w", np.ones(K), dims="component")
        mu = pm.Normal("mu", np.linspace(-1, 1, K), 2.0, dims="component",
                       transform=pm.distributions.transforms.ordered)
        sigma = pm.HalfNormal("sigma", 1.0, dims="component")
        if kind == "potential":
            pm.Potential("loglik", mixture_logp_total(xd, ed, w, mu, sigma))
        elif kind == "customdist":
            pm.CustomDist("y", ed, w, mu, sigma, logp=mixture_logp_pointwise,
                          signature="(),(k),(k),(k)->()", observed=xd, shape=xd.shape)
        else:
            pm.Potential("loglik", _reference_graph(xd, ed, w, mu, sigma).sum())
    return model


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(10)
    x = np.concatenate([rng.normal(-1.5, 0.4, 120), rng.normal(0.2, 0.5, 100),
                        rng.normal(1.8, 0.3, 80)])
    e2 = rng.uniform(0.0, 0.3, x.size) ** 2
    return x + rng.normal(size=x.size) * np.sqrt(e2), e2


def test_model_logp_and_dlogp_match_plain_model(small_data):
    x, e2 = small_data
    models = {kind: _model(kind, x, e2) for kind in ("potential", "customdist", "reference")}
    fns = {kind: (m.compile_logp(mode=PY), m.compile_dlogp(mode=PY))
           for kind, m in models.items()}
    rng = np.random.default_rng(11)
    ref_model = models["reference"]
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.3, np.shape(v))
                 for k, v in ref_model.initial_point().items()}
        want = [f(point) for f in fns["reference"]]
        for kind in ("potential", "customdist"):
            _assert_all_close([f(point) for f in fns[kind]], want)


@pytest.mark.slow
def test_nutpie_samples_with_the_fused_op(small_data):
    nutpie = pytest.importorskip("nutpie")
    x, e2 = small_data
    model = _model("customdist", x, e2)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        compiled = nutpie.compile_pymc_model(model)
    assert _mixture_nodes(compiled.logp_func) == {MixtureLogpTotal: 1, MixtureLogpPointwise: 0,
                                                  MixtureLogpVJP: 0}
    dt = nutpie.sample(compiled, draws=30, tune=30, chains=2, seed=1, progress_bar=False,
                       save_warmup=False)
    assert dict(dt.posterior.sizes) == {"chain": 2, "draw": 30, "component": 3}
    assert np.all(np.isfinite(dt.sample_stats["logp"].values))
    # Reuse with new data of another length: no recompilation.
    x2, e22 = x[:150], e2[:150]
    dt2 = nutpie.sample(compiled.with_data(x=x2, e2=e22), draws=10, tune=10, chains=1,
                        seed=2, progress_bar=False, save_warmup=False)
    assert dt2.posterior.sizes["draw"] == 10
    # Pointwise log-likelihood through the CustomDist, against SciPy for one draw.
    with model:
        ll = pm.compute_log_likelihood(dt, extend_inferencedata=False, progressbar=False)
    post = dt.posterior.isel(chain=1, draw=7)
    want = _scipy_pointwise(x, e2, post["w"].values, post["mu"].values, post["sigma"].values)
    np.testing.assert_allclose(ll["y"].isel(chain=1, draw=7).values, want, rtol=RTOL)
