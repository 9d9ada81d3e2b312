"""The fused D-dimensional log-density (bayes/density_md.py) and its target (bayes/target_md.py).

The reference is ``build_model_md``'s PyMC model: its log-density with the transforms'
log-Jacobians and its gradient (PyTensor's, through the batched Cholesky factors), at
random points of PyMC's unconstrained coordinates. Only rounding separates the two,
so they must agree to 1e-10 relative. PyMC compiles each model once per module
(FAST_COMPILE: the same graph, compiled in seconds rather than minutes).
"""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

import bayesgmm
from bayesgmm import Priors
from bayesgmm.bayes import density_md as dmd
from bayesgmm.bayes.target_md import TargetMD
from bayesgmm.validation import check_md

FAST = {"mode": "FAST_COMPILE"}
N_POINTS = 5  # random points per case

CASES = {
    "2d-plain-k2": dict(D=2, K=2, errors=None, missing=0.0),
    "3d-sds-k3": dict(D=3, K=3, errors="sds", missing=0.0),
    "3d-cov-missing-k2": dict(D=3, K=2, errors="cov", missing=0.3),
    "2d-k1": dict(D=2, K=1, errors=None, missing=0.0),
}


def _data(n, D, seed, missing=0.0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0.0, 1.0, (n // 2, D)),
                   rng.normal(3.0, 0.7, (n - n // 2, D))]) * np.arange(1, D + 1) + 10.0
    if missing:
        hole = rng.random((n, D)) < missing
        hole[:, 0] &= ~hole[:, 1:].all(axis=1)  # keep one value in every row
        X[hole] = np.nan
    return X


def _errors(kind, n, D, rng):
    if kind == "sds":
        return rng.uniform(0.1, 1.0, (n, D))
    if kind == "cov":
        A = rng.normal(0.0, 0.3, (n, D, D))
        return A @ np.swapaxes(A, 1, 2) + 0.05 * np.eye(D)
    return None


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    """The PyMC model of one case, compiled once, and the fused density's arguments."""
    c = CASES[request.param]
    D, K, n = c["D"], c["K"], 20
    rng = np.random.default_rng(7)
    X = _data(n, D, 3, c["missing"])
    X_err = _errors(c["errors"], n, D, rng)
    model = bayesgmm.build_model(X, K, X_err=X_err)
    fn = model.compile_fn([model.logp(), model.dlogp()], **FAST)
    x, cov, observed = check_md(X, X_err)
    loc, scale = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    hyper = Priors().standardized_md(K, loc, scale)
    # missing entries (of the data and of the error covariances) hold garbage: never read
    z = np.where(observed, (x - loc) / scale, 123.0)
    has_err = cov is not None
    S = cov / np.outer(scale, scale) if has_err else np.zeros((1, 1, 1))
    if has_err:
        both = observed[:, :, None] & observed[:, None, :]
        S = np.where(both, S, -77.0)
    log_scale_total = float(np.sum(observed * np.log(scale)))
    args = (z, observed.astype(np.uint8), S, has_err,
            *(hyper[k] for k in ("weights_alpha", "means_mu", "means_sigma",
                                 "sigmas_sigma", "corr_eta")), log_scale_total)
    return dict(model=model, fn=fn, args=args, X=X, cov=cov, hyper=hyper, loc=loc,
                scale=scale, K=K, D=D, log_scale_total=log_scale_total)


def test_logp_and_gradient_match_pymc(case):
    # the same density, summed in another order: 1e-10 relative is far above rounding
    model, fn = case["model"], case["fn"]
    ip = model.initial_point()
    names = [v.name for v in model.value_vars]
    assert names == list(ip)
    rng = np.random.default_rng(11)
    target = TargetMD.build(case["X"], case["cov"], case["hyper"], case["loc"],
                            case["scale"], _em(case["X"], case["K"]))
    for _ in range(N_POINTS):
        point = {k: v + rng.normal(0.0, 0.7, v.shape) for k, v in ip.items()}
        theta = np.concatenate([point[k].ravel() for k in names])
        ref_logp, ref_grad = fn(point)
        logp, grad = dmd.logp_and_grad(theta, *case["args"])
        assert grad.shape == theta.shape == (dmd.n_dim(case["K"], case["D"]),)
        np.testing.assert_allclose(logp, ref_logp, rtol=1e-10)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10,
                                   atol=1e-10 * np.max(np.abs(ref_grad)))
        # the target leaves out the constant sum of log(scale) over observed values
        t_logp, t_grad = target.logp_and_grad(theta)
        np.testing.assert_allclose(t_logp - case["log_scale_total"], ref_logp, rtol=1e-10)
        np.testing.assert_allclose(t_grad, grad, rtol=1e-12, atol=1e-12 * np.max(np.abs(grad)))


def test_expand_matches_pymc_deterministics(case):
    model = case["model"]
    ip = model.initial_point()
    rng = np.random.default_rng(5)
    point = {k: v + rng.normal(0.0, 0.7, v.shape) for k, v in ip.items()}
    theta = np.concatenate([point[k].ravel() for k in ip])
    names = ["weights", "means", "sds", "correlations", "covariances"]
    outs = model.replace_rvs_by_values([model[name] for name in names])
    ref = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore",
                           **FAST)(point)
    target = TargetMD.build(case["X"], case["cov"], case["hyper"], case["loc"],
                            case["scale"], _em(case["X"], case["K"]))
    got = target.expand(theta)
    assert list(got) == names == list(target.shapes) == list(target.dims)
    for name, value in zip(names, ref, strict=True):
        assert got[name].shape == target.shapes[name]
        np.testing.assert_allclose(got[name], value, rtol=1e-12, atol=1e-14)


def _em(X, K):
    """An EM estimate from scikit-learn (complete rows), in data units."""
    rows = ~np.isnan(X).any(axis=1)
    gm = GaussianMixture(K, covariance_type="full", random_state=0).fit(X[rows])
    return {"weights": gm.weights_, "means": gm.means_, "covariances": gm.covariances_}


@pytest.mark.parametrize("D", [2, 3, 5])
def test_packed_layout_gives_the_same_density(D):
    # the sampler's blocked kernel (points grouped by pattern; adjugates for d <= 3,
    # Cholesky factors above) against the one-point-at-a-time version, with errors and
    # missing values (every pattern size from 1 to D): only rounding differs (1e-12)
    rng = np.random.default_rng(D)
    n, K = 300, 3
    z = rng.normal(0.0, 1.3, (n, D))
    observed = rng.random((n, D)) >= 0.3
    observed[~observed.any(axis=1), 0] = True
    A = rng.normal(0.0, 0.3, (n, D, D))
    S = (A @ np.swapaxes(A, 1, 2) + 0.05 * np.eye(D)) * (observed[:, :, None]
                                                         & observed[:, None, :])
    hyper = (np.full(K, 1.5), rng.normal(size=(K, D)), np.full((K, D), 3.0),
             np.full((K, D), 1.0), 2.0)
    for has_err in (False, True):
        packed = dmd.prepare(z, observed, S, has_err)
        for _ in range(3):
            theta = rng.normal(0.0, 0.7, dmd.n_dim(K, D))
            ref = dmd.logp_and_grad(theta, z, observed.astype(np.uint8),
                                    S if has_err else np.zeros((1, 1, 1)), has_err, *hyper,
                                    0.0)
            got = dmd.logp_and_grad_packed(theta, *packed, has_err, *hyper, 0.0)
            np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
            np.testing.assert_allclose(got[1], ref[1], rtol=1e-12,
                                       atol=1e-12 * np.max(np.abs(ref[1])))


def test_unpack_is_pymc_cholesky_corr_transform():
    # the spiral fill order and the row normalisation, against PyMC's own backward map
    from pymc.distributions.transforms import CholeskyCorrTransform

    rng = np.random.default_rng(2)
    for D in (2, 3, 4, 5):
        M = D * (D - 1) // 2
        x = rng.normal(size=(2, M))
        ref = CholeskyCorrTransform(n=D, upper=False).backward(x).eval()
        theta = np.concatenate([[0.3], np.zeros(4 * D), x.ravel()])
        _, _, _, L = dmd.unpack(theta, 2, D)
        np.testing.assert_allclose(L, ref, rtol=1e-14, atol=1e-15)


def test_pack_unpack_round_trip():
    rng = np.random.default_rng(3)
    for K, D in ((1, 2), (3, 3), (2, 5)):
        w = rng.dirichlet(np.ones(K))
        mu = rng.normal(size=(K, D))
        sd = rng.uniform(0.2, 2.0, (K, D))
        corr = []
        for _ in range(K):
            A = rng.normal(size=(D, D + 1))
            S = A @ A.T
            corr.append(S / np.sqrt(np.outer(np.diag(S), np.diag(S))))
        corr = np.array(corr)
        theta = dmd.pack(w, mu, sd, corr)
        assert theta.shape == (dmd.n_dim(K, D),)
        w2, mu2, sd2, L2 = dmd.unpack(theta, K, D)
        np.testing.assert_allclose(w2, w, rtol=1e-12)
        np.testing.assert_allclose(mu2, mu, rtol=1e-14)
        np.testing.assert_allclose(sd2, sd, rtol=1e-14)
        np.testing.assert_allclose(L2 @ np.swapaxes(L2, 1, 2), corr, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dmd.pack(w2, mu2, sd2, L2 @ np.swapaxes(L2, 1, 2)), theta,
                                   rtol=1e-10, atol=1e-12)


def test_start_is_the_em_estimate_and_finite():
    X = _data(60, 3, 4, missing=0.2)
    x, _, _ = check_md(X)
    loc, scale = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    em = _em(X, 2)
    target = TargetMD.build(X, None, Priors().standardized_md(2, loc, scale), loc, scale, em)
    logp, grad = target.logp_and_grad(target.start)
    assert np.isfinite(logp) and np.all(np.isfinite(grad))
    got = target.expand(target.start)
    np.testing.assert_allclose(got["weights"], em["weights"], rtol=1e-12)
    np.testing.assert_allclose(got["means"], em["means"], rtol=1e-12)
    np.testing.assert_allclose(got["covariances"], em["covariances"], rtol=1e-10, atol=1e-12)


def test_degenerate_em_start_is_moved_inside():
    # a weight of 0 and a correlation of exactly 1: floored at 1e-6 and shrunk to
    # |r| <= 1 - 1e-3, so the start's log-density is finite
    X = _data(40, 2, 6)
    loc, scale = X.mean(axis=0), X.std(axis=0)
    em = {"weights": np.array([1.0, 0.0]), "means": np.array([loc, loc + scale]),
          "covariances": np.array([np.outer(scale, scale), np.diag(scale**2)])}
    target = TargetMD.build(X, None, Priors().standardized_md(2, loc, scale), loc, scale, em)
    got = target.expand(target.start)
    assert got["weights"][1] == pytest.approx(1e-6, rel=1e-6)
    assert 0.99 < got["correlations"][0, 0, 1] <= 1 - 1e-3 + 1e-12
    logp, grad = target.logp_and_grad(target.start)
    assert np.isfinite(logp) and np.all(np.isfinite(grad))


def test_nutpie_samples_the_md_target():
    # n = 200 points from two well-separated 2-D components (weights 0.4/0.6); each
    # mean's posterior sd is about sd / sqrt(n_k) <= 0.12, each weight's about 0.035:
    # posterior means within 0.4 of the truth (~3 posterior sds plus the sample's own
    # deviation) and weights within 0.12; 2 chains x 200 draws, seed 1
    from bayesgmm.bayes.samplers import nutpie as nutpie_driver

    rng = np.random.default_rng(1)
    n = 200
    mu = np.array([[0.0, 0.0], [6.0, 3.0]])
    cov = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.5, -0.2], [-0.2, 0.8]]])
    first = rng.random(n) < 0.4
    X = np.where(first[:, None], rng.multivariate_normal(mu[0], cov[0], n),
                 rng.multivariate_normal(mu[1], cov[1], n))
    loc, scale = X.mean(axis=0), X.std(axis=0)
    em = _em(X, 2)
    target = TargetMD.build(X, None, Priors().standardized_md(2, loc, scale), loc, scale,
                            em, feature_names=["a", "b"])
    post, stats = nutpie_driver.sample(target, 200, 200, 2, 1, False, 0.8)
    assert stats.attrs["nutpie_backend"] == "native"
    assert list(post.data_vars) == list(target.shapes)
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature_")
    assert list(post["feature"].values) == ["a", "b"]
    means = post["means"].mean(("chain", "draw")).values
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(means[order], mu, atol=0.4)
    w = post["weights"].mean(("chain", "draw")).values[order]
    np.testing.assert_allclose(w, [0.4, 0.6], atol=0.12)
    corr = post["correlations"].mean(("chain", "draw")).values[order]
    truth = cov / np.sqrt(np.diagonal(cov, axis1=1, axis2=2)[:, :, None]
                          * np.diagonal(cov, axis1=1, axis2=2)[:, None, :])
    np.testing.assert_allclose(corr, truth, atol=0.2)  # r's posterior sd ~ 0.08 here
    assert int(stats["diverging"].sum()) == 0


def test_compiled_once_for_every_k_d_and_data():
    # as in 1-D, the compiled density does not depend on K, D, the errors or the
    # missing values: one machine-code version serves every target
    from bayesgmm.bayes.target_md import logp_and_grad_packed

    for K, D, errors, missing in ((1, 2, None, 0.0), (3, 3, "cov", 0.3), (2, 4, "sds", 0.2)):
        X = _data(40, D, K, missing)
        x, cov, _ = check_md(X, _errors(errors, 40, D, np.random.default_rng(0)))
        loc, scale = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
        target = TargetMD.build(x, cov, Priors().standardized_md(K, loc, scale), loc, scale,
                                _em(X, K))
        assert np.isfinite(target.logp_and_grad(target.start)[0])
    assert len(logp_and_grad_packed.signatures) == 1
