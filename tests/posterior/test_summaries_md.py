"""Posterior quantities of a D-dimensional result, against independent references.

Hand-built results (random parameter draws in the D-dim layout), no sampling: each
function is checked against SciPy's multivariate normal or a per-point NumPy
computation written another way (the information form of the Gaussian posterior, the
precision-matrix form of the Gaussian conditional), draw by draw.
"""

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.special import softmax

import bayesgmm
from bayesgmm import DataError
from bayesgmm.posterior import (
    conditional,
    density,
    density_grid,
    marginal,
    membership,
    mixture_md,
    true_values,
)

FEATS = ["a", "b", "c"]


def _tree_md(seed=0, C=2, S=10, K=2, D=3, n=15, errors=True, missing=True, same=False,
             features=None):
    """A D-dim result: random draws; data with NaN and per-point error covariances.

    ``same``: every draw the same (a posterior concentrated on one parameter value).
    """
    rng = np.random.default_rng(seed)
    feats = list(features or FEATS[:D])
    w = rng.dirichlet(np.full(K, 20.0), size=(C, S))
    mu = rng.normal(0, 2.5, (K, D)) + 0.2 * rng.standard_normal((C, S, K, D))
    A = rng.normal(size=(C, S, K, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(D)
    if same:
        w, mu, cov = (np.broadcast_to(v[:1, :1], v.shape).copy() for v in (w, mu, cov))
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    x = rng.normal(0, 2.5, (n, D))
    if missing:
        gone = rng.random((n, D)) < 0.3
        gone[gone.all(axis=1), 0] = False
        x[gone] = np.nan
    E = np.zeros((n, D, D))
    if errors:
        B = 0.6 * rng.normal(size=(n, D, D))
        E = B @ np.swapaxes(B, -1, -2) + 0.05 * np.eye(D)
        nan = np.isnan(x)
        E[nan[:, :, None] | nan[:, None, :]] = 0.0
    pd, fd = ("chain", "draw", "component"), ("chain", "draw", "component", "feature")
    ffd = (*fd, "feature_")
    fc = {"feature": feats, "feature_": feats}
    post = xr.Dataset(
        {"weights": (pd, w), "means": (fd, mu), "sds": (fd, sd),
         "correlations": (ffd, corr), "covariances": (ffd, cov)},
        coords={"chain": np.arange(C), "draw": np.arange(S), "component": np.arange(K),
                **fc})
    obs = {"obs": np.arange(n)}
    tree = xr.DataTree.from_dict({
        "posterior": post,
        "observed_data": xr.Dataset({"x": (("obs", "feature"), x)},
                                    coords={**obs, "feature": feats}),
        "constant_data": xr.Dataset({"x_err_cov": (("obs", "feature", "feature_"), E)},
                                    coords={**obs, **fc}),
        "em_estimate": xr.Dataset(
            {"weights": ("component", w[0, 0]), "means": (fd[2:], mu[0, 0]),
             "covariances": (ffd[2:], cov[0, 0])},
            coords={"component": np.arange(K), **fc}),
    })
    tree.attrs = {"data_name": "x", "n_features": D, "n_components": K}
    return tree


def _params(dt):
    post = dt["posterior"]
    K, D = post.sizes["component"], post.sizes["feature"]
    return (post["weights"].values.reshape(-1, K), post["means"].values.reshape(-1, K, D),
            post["covariances"].values.reshape(-1, K, D, D))


def _ref_logcomp(w, mu, cov, x, E):
    """log w_k N(x_o | mu_ko, cov_koo + E_oo) by SciPy: (S, m, K)."""
    S, K, _ = mu.shape
    out = np.empty((S, len(x), K))
    for i, xi in enumerate(x):
        o = np.flatnonzero(~np.isnan(xi))
        Eo = E[i][np.ix_(o, o)]
        for s in range(S):
            for k in range(K):
                out[s, i, k] = np.log(w[s, k]) + stats.multivariate_normal.logpdf(
                    xi[o], mu[s, k, o], cov[s, k][np.ix_(o, o)] + Eo)
    return out


POINTS = np.array([[0.5, -1.0, 2.0], [np.nan, 1.0, 0.5], [1.0, np.nan, np.nan],
                   [-2.0, 3.0, np.nan], [4.0, 0.0, -1.0]])


@pytest.mark.parametrize("err_kind", ["none", "sd", "sd_per_feature", "cov"])
def test_membership_matches_scipy_with_errors_and_missing_features(err_kind):
    dt = _tree_md(seed=1)
    w, mu, cov = _params(dt)  # 20 draws: none thinned
    m, D = POINTS.shape
    rng = np.random.default_rng(7)
    X_err = {"none": None, "sd": rng.uniform(0.1, 1, m),
             "sd_per_feature": rng.uniform(0.1, 1, (m, D)),
             "cov": dt["constant_data"]["x_err_cov"].values[:m]}[err_kind]
    E = np.zeros((m, D, D)) if X_err is None else \
        bayesgmm.validation.check_errors(X_err, m, D, missing=np.isnan(POINTS))
    ref = softmax(_ref_logcomp(w, mu, cov, POINTS, E), axis=-1)
    got = membership(dt, POINTS, X_err=X_err)
    # the same draws, the same arithmetic up to rounding: 1e-10
    np.testing.assert_allclose(got["mean"].values, ref.mean(0), rtol=1e-10, atol=1e-12)
    lo, hi = np.quantile(ref, [0.055, 0.945], axis=0)
    np.testing.assert_allclose(got["lower"].values, lo, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["upper"].values, hi, rtol=1e-10, atol=1e-12)
    assert got["mean"].dims == ("point", "component")
    assert got["x"].dims == ("point", "feature")
    np.testing.assert_array_equal(got["feature"].values, FEATS)
    assert got.attrs["ci_prob"] == 0.89 and got.attrs["ci_kind"] == "eti"


def test_membership_attrs_and_point_forms():
    dt = _tree_md(seed=2)
    one = membership(dt, POINTS[0])  # a single point as (D,)
    assert one.sizes["point"] == 1 and one.attrs["x_err"] == 0.0
    assert membership(dt, POINTS, X_err=0.3).attrs["x_err"] == pytest.approx(0.3)
    assert np.isnan(membership(dt, POINTS, X_err=np.linspace(0.1, 1, 5)).attrs["x_err"])
    # a table is read by its column names, in the features' order
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame(POINTS[:, ::-1], columns=FEATS[::-1])
    np.testing.assert_allclose(membership(dt, table)["mean"].values,
                               membership(dt, POINTS)["mean"].values)


def test_thinning_and_chunking_keep_the_numbers():
    # 4 x 400 draws: thinned evenly to 1000, as in 1-D
    dt = _tree_md(seed=3, C=4, S=400, n=10)
    w, mu, cov = _params(dt)
    idx = np.linspace(0, w.shape[0] - 1, 1000).round().astype(int)
    ref = softmax(_ref_logcomp(w[idx], mu[idx], cov[idx], POINTS[1:2], np.zeros((1, 3, 3))),
                  axis=-1)
    got = membership(dt, POINTS[1:2])
    np.testing.assert_allclose(got["mean"].values, ref.mean(0), rtol=1e-10)


def test_chunks_give_the_same_results(monkeypatch):
    dt = _tree_md(seed=4, S=40, n=30)
    whole = true_values(dt)
    dens = density(dt)
    monkeypatch.setattr(mixture_md, "_BLOCK", 1)  # one point per chunk
    np.testing.assert_allclose(density(dt)["mean"].values, dens["mean"].values, rtol=1e-12)
    # the simulated intervals draw their random numbers chunk by chunk: means only
    np.testing.assert_allclose(true_values(dt)["mean"].values, whole["mean"].values,
                               rtol=1e-12)


def _mix_pdf(w, mu, cov, x, E=None):
    """Per-draw mixture density at points x (m, D) over their observed features: (S, m)."""
    E = np.zeros((len(x), x.shape[1], x.shape[1])) if E is None else E
    return np.exp(_ref_logcomp(w, mu, cov, x, E)).sum(-1)


def test_density_deconvolved_and_with_given_errors_match_scipy():
    dt = _tree_md(seed=5)
    w, mu, cov = _params(dt)
    ref = _mix_pdf(w, mu, cov, POINTS)
    got = density(dt, POINTS, deconvolved=True)
    np.testing.assert_allclose(got["mean"].values, ref.mean(0), rtol=1e-10)
    np.testing.assert_allclose(got["lower"].values, np.quantile(ref, 0.055, axis=0),
                               rtol=1e-10)
    assert got["component_mean"].dims == ("point", "component")
    np.testing.assert_allclose(got["component_mean"].values.sum(-1), ref.mean(0), rtol=1e-10)
    sds = np.full((5, 3), 0.7)
    E = np.zeros((5, 3, 3))
    E[:, [0, 1, 2], [0, 1, 2]] = 0.49
    with_err = density(dt, POINTS, X_err=sds)
    np.testing.assert_allclose(with_err["mean"].values, _mix_pdf(w, mu, cov, POINTS, E).mean(0),
                               rtol=1e-10)
    # deconvolved: the errors given are not added
    np.testing.assert_allclose(density(dt, POINTS, X_err=sds, deconvolved=True)["mean"],
                               got["mean"])


def test_density_of_the_data_uses_their_own_errors():
    dt = _tree_md(seed=6)
    w, mu, cov = _params(dt)
    x = dt["observed_data"]["x"].values
    E = dt["constant_data"]["x_err_cov"].values
    got = density(dt)
    np.testing.assert_allclose(got["mean"].values, _mix_pdf(w, mu, cov, x, E).mean(0),
                               rtol=1e-10)
    np.testing.assert_array_equal(got["x"].values, x)
    np.testing.assert_allclose(density(dt, deconvolved=True)["mean"].values,
                               _mix_pdf(w, mu, cov, x).mean(0), rtol=1e-10)


def test_density_at_new_points_averages_over_the_datas_errors():
    dt = _tree_md(seed=7, n=30)
    w, mu, cov = _params(dt)
    x = dt["observed_data"]["x"].values
    E_all = dt["constant_data"]["x_err_cov"].values[~np.isnan(x).any(axis=1)]
    assert len(E_all) > 4  # complete rows, the ones averaged over
    per_error = [_mix_pdf(w, mu, cov, POINTS, np.broadcast_to(Ej, (5, 3, 3))) for Ej in E_all]
    got = density(dt, POINTS)  # fewer complete rows than max_errors: every one of them
    np.testing.assert_allclose(got["mean"].values, np.mean(per_error, axis=0).mean(0),
                               rtol=1e-10)
    # at most max_errors of them, evenly spaced by trace
    order = np.argsort(np.trace(E_all, axis1=1, axis2=2), kind="stable")
    pick = order[((np.arange(4) + 0.5) / 4 * len(E_all)).astype(int)]
    ref = np.mean([per_error[j] for j in pick], axis=0).mean(0)
    np.testing.assert_allclose(density(dt, POINTS, max_errors=4)["mean"].values, ref,
                               rtol=1e-10)


def _ref_true_values(dt, S_max=500):
    """Per point and draw, the posterior of v in information form: (mean, sd) (n, D).

    Precision Sigma_k^-1 + P' E_oo^-1 P, mean = cov (Sigma_k^-1 mu_k + P' E_oo^-1 x_o)
    with P the rows of the identity at the observed features: another route than the
    code's gain form (needs E_oo invertible: every observed feature has an error).
    """
    w, mu, cov = _params(dt)
    assert w.shape[0] <= S_max
    x = dt["observed_data"]["x"].values
    E = dt["constant_data"]["x_err_cov"].values
    n, D = x.shape
    mean, second = np.zeros((n, D)), np.zeros((n, D))
    resp = softmax(_ref_logcomp(w, mu, cov, x, E), axis=-1)
    for i in range(n):
        o = np.flatnonzero(~np.isnan(x[i]))
        P = np.eye(D)[o]
        Einv = np.linalg.inv(E[i][np.ix_(o, o)])
        for s in range(w.shape[0]):
            for k in range(w.shape[1]):
                prec0 = np.linalg.inv(cov[s, k])
                post_cov = np.linalg.inv(prec0 + P.T @ Einv @ P)
                b = post_cov @ (prec0 @ mu[s, k] + P.T @ Einv @ x[i, o])
                mean[i] += resp[s, i, k] * b / w.shape[0]
                second[i] += resp[s, i, k] * (np.diag(post_cov) + b * b) / w.shape[0]
    return mean, np.sqrt(second - mean**2)


def test_true_values_match_the_information_form():
    dt = _tree_md(seed=8, S=10, n=12)
    ref_mean, ref_sd = _ref_true_values(dt)
    got = true_values(dt)
    assert got["mean"].dims == ("obs", "feature")
    # two algebraic routes to the same Gaussian posterior; rounding only: 1e-8
    np.testing.assert_allclose(got["mean"].values, ref_mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(got["sd"].values, ref_sd, rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(got["observed"].values, dt["observed_data"]["x"].values)
    assert np.all(got["lower"].values <= got["upper"].values)


def test_true_values_without_errors_fill_missing_features_from_the_component():
    # one component, one parameter value: an observed feature is its own true value; a
    # missing one is the Gaussian conditional, here by the precision matrix's blocks
    dt = _tree_md(seed=9, K=1, C=1, S=500, n=25, errors=False, same=True)
    _, mu, cov = _params(dt)
    mu, cov = mu[0, 0], cov[0, 0]
    x = dt["observed_data"]["x"].values
    got = true_values(dt)
    for i in range(len(x)):
        o = ~np.isnan(x[i])
        u = ~o
        np.testing.assert_array_equal(got["mean"].values[i, o], x[i, o])
        np.testing.assert_array_equal(got["lower"].values[i, o], x[i, o])
        assert np.all(got["sd"].values[i, o] == 0)
        if not u.any():
            continue
        lam = np.linalg.inv(cov)
        cond_cov = np.linalg.inv(lam[np.ix_(u, u)])
        cond_mean = mu[u] - cond_cov @ lam[np.ix_(u, o)] @ (x[i, o] - mu[o])
        np.testing.assert_allclose(got["mean"].values[i, u], cond_mean, rtol=1e-10)
        sd = np.sqrt(np.diag(cond_cov))
        np.testing.assert_allclose(got["sd"].values[i, u], sd, rtol=1e-10)
        # the simulated 89% interval of N(m, sd^2) from 500 draws: its ends' Monte
        # Carlo sd is ~0.09 sd; 0.4 sd is > 4 of those (25 points x 1-3 features)
        z = stats.norm.ppf(0.945)
        assert np.all(np.abs(got["lower"].values[i, u] - (cond_mean - z * sd)) < 0.4 * sd)
        assert np.all(np.abs(got["upper"].values[i, u] - (cond_mean + z * sd)) < 0.4 * sd)


def test_marginal_of_one_feature_is_a_1d_result():
    dt = _tree_md(seed=10)
    w, mu, cov = _params(dt)
    m = marginal(dt, ["b"])
    assert "sigmas" in m["posterior"] and "feature" not in m["posterior"].dims
    assert m["posterior"]["means"].dims == ("chain", "draw", "component")
    grid = np.linspace(-6, 6, 25)
    ref = (w[:, None, :] * stats.norm.pdf(grid[None, :, None], mu[:, None, :, 1],
                                          np.sqrt(cov[:, None, :, 1, 1]))).sum(-1)
    got = density(m, grid, deconvolved=True)
    np.testing.assert_allclose(got["mean"].values, ref.mean(0), rtol=1e-10)
    # the same as the D-dim density at points whose other features are missing
    pts = np.column_stack([np.full(25, np.nan), grid, np.full(25, np.nan)])
    np.testing.assert_allclose(density(dt, pts, deconvolved=True)["mean"], got["mean"],
                               rtol=1e-10)
    # its data: the points observed in b, with b's error sd
    x = dt["observed_data"]["x"].values[:, 1]
    keep = ~np.isnan(x)
    np.testing.assert_array_equal(m["observed_data"]["b"].values, x[keep])
    E = dt["constant_data"]["x_err_cov"].values[keep, 1, 1]
    np.testing.assert_allclose(m["constant_data"]["x_err"].values, np.sqrt(E))
    assert m.attrs["data_name"] == "b"
    assert m["em_estimate"]["sigmas"].dims == ("component",)
    # so the 1-D posterior functions all work on it
    assert true_values(m)["mean"].sizes["obs"] == keep.sum()
    assert membership(m, [0.0, 1.0])["mean"].shape == (2, 2)


def test_marginal_of_two_features_keeps_the_layout_and_the_order():
    dt = _tree_md(seed=11)
    w, mu, cov = _params(dt)
    m = marginal(dt, ["c", "a"])
    np.testing.assert_array_equal(m["posterior"]["feature"].values, ["c", "a"])
    sel = [2, 0]
    pts = np.array([[0.5, -1.0], [1.0, 2.0], [np.nan, 0.3]])
    ref = _mix_pdf(w, mu[..., sel], cov[..., sel, :][..., sel], pts)
    np.testing.assert_allclose(density(m, pts, deconvolved=True)["mean"].values,
                               ref.mean(0), rtol=1e-10)
    x = dt["observed_data"]["x"].values[:, sel]
    np.testing.assert_array_equal(m["observed_data"]["x"].values,
                                  x[~np.isnan(x).all(axis=1)])
    assert m["constant_data"]["x_err_cov"].dims == ("obs", "feature", "feature_")
    # positions work too
    np.testing.assert_array_equal(marginal(dt, [2, 0])["posterior"]["means"].values,
                                  m["posterior"]["means"].values)


def test_conditional_of_one_gaussian_is_the_gaussian_conditional():
    dt = _tree_md(seed=12, K=1)
    _, mu, cov = _params(dt)
    c = conditional(dt, {"b": 1.5})
    got_mu = c["posterior"]["means"].values.reshape(-1, 2)
    got_cov = c["posterior"]["covariances"].values.reshape(-1, 2, 2)
    np.testing.assert_allclose(c["posterior"]["weights"].values, 1.0)
    a, b = [0, 2], [1]
    for s in range(mu.shape[0]):
        lam = np.linalg.inv(cov[s, 0])  # the precision's blocks: another route
        cc = np.linalg.inv(lam[np.ix_(a, a)])
        cm = mu[s, 0, a] - cc @ lam[np.ix_(a, b)] @ (np.array([1.5]) - mu[s, 0, b])
        np.testing.assert_allclose(got_mu[s], cm, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_cov[s], cc, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(c["posterior"]["feature"].values, ["a", "c"])
    assert c.attrs["given"] == "b = 1.5"


@pytest.mark.parametrize("given_err", [None, 0.4, [[0.3, 0.05], [0.05, 0.2]]])
def test_conditional_times_marginal_is_the_joint(given_err):
    # per draw, p(v_a | x_b) p(x_b) = p(v_a, x_b); one draw, so the "mean" is that draw.
    # With an error E on x_b the joint is the mixture with Sigma_bb + E.
    dt = _tree_md(seed=13, K=3, C=1, S=1)
    given = {"c": 0.7, "a": -1.2}
    b = [2, 0]
    E = np.zeros((2, 2)) if given_err is None else \
        np.diag([0.16, 0.16]) if np.ndim(given_err) == 0 else np.asarray(given_err)
    post = dt["posterior"].to_dataset()
    cov = post["covariances"].values.copy()
    cov[..., np.ix_(b, b)[0], np.ix_(b, b)[1]] += E
    post["covariances"] = (post["covariances"].dims, cov)
    noisy = xr.DataTree.from_dict({"posterior": post.drop_vars(["sds", "correlations"])})
    ys = np.linspace(-4, 4, 9)
    joint = density(noisy, np.column_stack([np.full(9, -1.2), ys, np.full(9, 0.7)]),
                    deconvolved=True)["mean"].values
    cond = density(conditional(dt, given, given_err=given_err), ys,
                   deconvolved=True)["mean"].values
    marg = density(marginal(noisy, ["c", "a"]), [0.7, -1.2], deconvolved=True)["mean"].values
    np.testing.assert_allclose(cond * marg, joint, rtol=1e-10)
    # and the conditional's membership is p(k | v_b, v_a) when exact
    if given_err is None:
        both = membership(dt, np.column_stack([np.full(9, -1.2), ys, np.full(9, 0.7)]))
        np.testing.assert_allclose(membership(conditional(dt, given), ys)["mean"].values,
                                   both["mean"].values, rtol=1e-9, atol=1e-12)


def test_conditional_keeps_draws_and_em_estimate():
    dt = _tree_md(seed=14)
    c = conditional(dt, {"a": 0.0})
    assert c["posterior"]["means"].dims == ("chain", "draw", "component", "feature")
    assert c["posterior"].sizes["draw"] == 10
    np.testing.assert_allclose(c["posterior"]["weights"].sum("component"), 1.0)
    w = c["posterior"]["sds"].values
    np.testing.assert_allclose(w**2, np.diagonal(c["posterior"]["covariances"].values,
                                                 axis1=-2, axis2=-1))
    assert c["em_estimate"]["means"].dims == ("component", "feature")
    band = density(c, [[0.0, 1.0], [1.0, np.nan]], deconvolved=True)
    assert np.all(band["lower"] <= band["mean"]) and np.all(band["mean"] <= band["upper"])


def test_density_grid_is_the_marginal_density_at_the_nodes():
    dt = _tree_md(seed=15)
    g = density_grid(dt, ["c", "a"], n_grid=7, limits=[[-3, 3], [-2, 4]], deconvolved=True)
    assert g["mean"].dims == ("x1", "x0") and g.attrs["feature_x0"] == "c"
    xx, yy = np.meshgrid(g["x0"].values, g["x1"].values)
    pts = np.column_stack([yy.ravel(), np.full(49, np.nan), xx.ravel()])  # a = x1, c = x0
    ref = density(dt, pts, deconvolved=True)["mean"].values.reshape(7, 7)
    np.testing.assert_allclose(g["mean"].values, ref, rtol=1e-10)
    default = density_grid(dt, n_grid=5)  # the first two features, over the data's range
    x = dt["observed_data"]["x"].values
    assert default.attrs["feature_x1"] == "b"
    assert default["x0"].values[0] < np.nanmin(x[:, 0]) < np.nanmax(x[:, 0]) \
        < default["x0"].values[-1]


def test_top_level_names():
    for name in ("marginal", "conditional", "density_grid"):
        assert name in bayesgmm.__all__
        assert getattr(bayesgmm, name) is getattr(bayesgmm.posterior, name)


@pytest.mark.parametrize("call, match", [
    (lambda dt: membership(dt, np.zeros((2, 2))), "shape"),
    (lambda dt: membership(dt, [[np.nan] * 3]), "every feature missing"),
    (lambda dt: membership(dt, POINTS, X_err=np.ones((5, 2))), "X_err must have shape"),
    (lambda dt: density(dt, POINTS, X_err=-np.ones(5)), "negative"),
    (lambda dt: marginal(dt, ["z"]), "unknown feature"),
    (lambda dt: marginal(dt, ["a", "a"]), "twice"),
    (lambda dt: conditional(dt, {"a": 1, "b": 2, "c": 3}), "every feature"),
    (lambda dt: conditional(dt, {"a": np.nan}), "finite"),
    (lambda dt: conditional(dt, [1.0]), "map feature names"),
    (lambda dt: conditional(dt, {"a": 1}, given_err=[1, 2]), "given_err"),
    (lambda dt: density_grid(dt, ["a"]), "two features"),
    (lambda dt: density_grid(dt, n_grid=1), "n_grid"),
    (lambda dt: density_grid(dt, limits=[[1, 0], [0, 1]]), "limits"),
])
def test_bad_input_is_one_data_error(call, match):
    with pytest.raises(DataError, match=match):
        call(_tree_md(seed=16, S=5))


def test_1d_results_refuse_the_d_dim_functions():
    one = marginal(_tree_md(seed=17, S=5), "a")
    with pytest.raises(DataError, match="single feature"):
        conditional(one, {"a": 1.0})
    with pytest.raises(DataError, match="D-dimensional"):
        density_grid(one)


def test_1d_density_of_the_data_and_with_given_errors():
    # the new forms in 1-D: X=None (the data, each with its own error), and X_err
    m = marginal(_tree_md(seed=18), "a")
    post = m["posterior"]
    w, mu, sg = (post[v].values.reshape(-1, 2) for v in ("weights", "means", "sigmas"))
    x, e = m["observed_data"]["a"].values, m["constant_data"]["x_err"].values

    def ref(x, e):
        sd = np.sqrt(sg[:, None, :] ** 2 + e[None, :, None] ** 2)
        return (w[:, None] * stats.norm.pdf(x[None, :, None], mu[:, None], sd)).sum(-1).mean(0)

    np.testing.assert_allclose(density(m)["mean"].values, ref(x, e), rtol=1e-10)
    pts = np.array([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(density(m, pts, X_err=0.3)["mean"].values,
                               ref(pts, np.full(3, 0.3)), rtol=1e-10)
