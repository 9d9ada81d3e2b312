"""The sampler's pair coordinates: a bijection with the right Jacobian, the same posterior."""

import json
import warnings

import numpy as np
import pytest
from scipy import special, stats

from bayesgmm import SamplingWarning, fit
from bayesgmm.bayes import inference
from bayesgmm.bayes.reparam import pair as _pair_coords
from bayesgmm.bayes.target import Target
from bayesgmm.datasets import simulate

CASES = [(K, j) for K in (2, 3, 4, 5) for j in range(K - 1)]


def _free(phi, K, j):
    """The model's free constrained coordinates (w_1..w_{K-1}, mu, sigma)."""
    w, mu, sigma = _pair_coords.unpack(phi, K, j)
    return np.concatenate([w[:-1], mu, sigma])


def _numerical_log_jacobian(phi, K, j, h=1e-6):
    D = phi.size
    jac = np.empty((D, D))
    for d in range(D):
        e = np.zeros(D)
        e[d] = h
        jac[:, d] = (_free(phi + e, K, j) - _free(phi - e, K, j)) / (2 * h)
    return np.log(abs(np.linalg.det(jac)))


def _bound(phi, K, j):
    """How far apart (in units of the pair's sd S) its neighbours let the pair go."""
    far = phi.copy()
    far[-2] = np.copysign(1e3, phi[-2])
    w, mu, sigma = _pair_coords.unpack(far, K, j)
    return (mu[j + 1] - mu[j]) / np.exp(phi[2 * (K - 1) - 1 + j])


def _unsaturated(phi, K, j):
    """``phi`` with the gap t2 at most twice its bound: past it, t2 saturates (tanh) and
    no finite-precision inverse or difference quotient can resolve it."""
    out = phi.copy()
    out[-2] = np.copysign(min(abs(phi[-2]), 2.0 * _bound(phi, K, j)), phi[-2])
    return out


def _mirror(phi):
    """The same ordered parameters: the pair's split coordinates negated."""
    out = phi.copy()
    out[-3:] *= -1.0
    return out


@pytest.mark.parametrize(("K", "j"), CASES)
def test_onto_ordered_parameters_each_half_a_bijection(K, j):
    # t2 >= 0 and its mirror t2 <= 0 each map one-to-one onto the ordered parameters;
    # pack returns the t2 >= 0 half
    rng = np.random.default_rng(10 * K + j)
    for _ in range(20):
        phi = _unsaturated(rng.normal(scale=1.5, size=3 * K - 1), K, j)
        w, mu, sigma = _pair_coords.unpack(phi, K, j)
        assert np.isclose(w.sum(), 1.0) and np.all(w > 0)
        assert np.all(np.diff(mu) > 0) and np.all(sigma > 0)
        for a, b in zip((w, mu, sigma), _pair_coords.unpack(_mirror(phi), K, j), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        upper = phi if phi[-2] >= 0 else _mirror(phi)
        np.testing.assert_allclose(_pair_coords.pack(w, mu, sigma, j), upper, atol=1e-9)


@pytest.mark.parametrize(("K", "j"), [(2, 0), (3, 0), (3, 1)])
def test_density_smooth_across_the_fold(K, j):
    # at t2 = 0 the pair's means coincide and the two halves meet: with exchangeable
    # priors the log-density and its gradient are continuous there (the sampler crosses
    # it freely instead of running into a boundary at logit 0 = -inf): across a step of
    # 2e-7 the log-density changes as its slope says (to 1e-9) and the gradient by O(1e-7)
    rng = np.random.default_rng(K + j)
    z = rng.normal(size=100)
    args = (z, np.zeros_like(z), np.full(K, 1.5), np.zeros(K), np.full(K, 2.0),
            np.ones(K), 0.0, j)
    for _ in range(5):
        phi = 0.7 * rng.normal(size=3 * K - 1)
        lo, hi = phi.copy(), phi.copy()
        lo[-2], hi[-2] = -1e-7, 1e-7
        (lp_lo, g_lo), (lp_hi, g_hi) = (_pair_coords.logp_and_grad(p, *args) for p in (lo, hi))
        assert lp_hi - lp_lo == pytest.approx(2e-7 * g_hi[-2], abs=1e-9)
        np.testing.assert_allclose(g_lo, g_hi, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("K", "j"), CASES)
def test_log_jacobian_matches_numerical_determinant(K, j):
    # central differences at h = 1e-6 are good to ~1e-8 relative here; 1e-6 leaves room
    rng = np.random.default_rng(100 + 10 * K + j)
    for _ in range(6):
        phi = _unsaturated(rng.normal(size=3 * K - 1), K, j)
        expected = _numerical_log_jacobian(phi, K, j)
        assert _pair_coords.log_jacobian(phi, K, j) == pytest.approx(expected, abs=1e-6)
    if K > 2:  # also where a neighbour bounds how far apart the pair may be
        phi = rng.normal(size=3 * K - 1)
        o = 3 * K - 4
        phi[o] = 3.0 if j < K - 2 else -3.0  # the pair's weight on the side away from it
        phi[2 * (K - 1) - 1 + j] = 2.5  # and the pair wide: its neighbour is in the way
        # the pair almost as far apart as the neighbour allows: t2 is the gap in units
        # of S up to the bound B, where it saturates (tanh(3) = 0.995 of the way)
        phi[o + 1] = 1.0  # t2 > 0: the half where f is as set
        phi[o + 1] = 3.0 * _bound(phi, K, j)
        w, mu, sigma = _pair_coords.unpack(phi, K, j)
        gap = mu[j + 2] - mu[j + 1] if j < K - 2 else mu[j] - mu[j - 1]
        assert gap < 0.01 * (mu[j + 1] - mu[j])  # the bound is what holds them in
        expected = _numerical_log_jacobian(phi, K, j)
        assert _pair_coords.log_jacobian(phi, K, j) == pytest.approx(expected, abs=1e-6)
        mirror = _mirror(phi)  # the same point from the t2 < 0 half
        expected = _numerical_log_jacobian(mirror, K, j)
        assert _pair_coords.log_jacobian(mirror, K, j) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("a", [19.0, 30.0, 340.0, 370.0])
def test_log_jacobian_and_its_slope_far_into_the_saturated_gap(a):
    # K = 2, f = 1/2, no neighbours: log|J| falls as log(1 - tanh a) ~ log 4 - 2a, slope
    # -2 sqrt(f g) = -1 in t2. Past a ~ 335, 1 - tanh a (and a complex step through it)
    # underflows; the log is taken from a itself there, so both stay exact
    phi = np.array([0.0, 0.0, 0.0, 2.0 * a, 0.0])
    step = phi.astype(complex)
    step[3] += 1e-30j
    slope = _pair_coords._unpack(step, 2, 0)[3].imag / 1e-30
    assert slope == pytest.approx(-1.0, rel=1e-9)
    assert _pair_coords.log_jacobian(phi, 2, 0) == pytest.approx(
        _pair_coords.log_jacobian(np.array([0.0, 0.0, 0.0, 30.0, 0.0]), 2, 0) - 2.0 * (a - 15.0),
        abs=1e-9)  # exact up to terms of e^-30


@pytest.mark.parametrize(("K", "j"), [(2, 0), (3, 0), (3, 1), (4, 2)])
def test_log_density_and_gradient(K, j):
    # the model's density (SciPy) plus the log-Jacobian, to rounding; the gradient
    # against central differences (h = 1e-6: ~1e-9 relative)
    rng = np.random.default_rng(K + 7 * j)
    z = 2.0 * rng.normal(size=150)
    eps2 = rng.uniform(0.0, 0.5, size=150) ** 2
    alpha = rng.uniform(0.5, 3.0, K)
    mu_mu, mu_sd = rng.normal(size=K), rng.uniform(1.0, 3.0, K)
    sig_sd = rng.uniform(0.5, 2.0, K)
    args = (z, eps2, alpha, mu_mu, mu_sd, sig_sd, 0.0, j)
    for _ in range(3):
        phi = 0.7 * rng.normal(size=3 * K - 1)
        logp, grad = _pair_coords.logp_and_grad(phi, *args)
        w, mu, sigma = _pair_coords.unpack(phi, K, j)
        ref = (stats.dirichlet.logpdf(w, alpha) + stats.norm.logpdf(mu, mu_mu, mu_sd).sum()
               + stats.halfnorm.logpdf(sigma, scale=sig_sd).sum())
        comp = stats.norm.logpdf(z[:, None], mu, np.sqrt(sigma**2 + eps2[:, None]))
        ref += special.logsumexp(np.log(w) + comp, axis=1).sum()
        ref += _pair_coords.log_jacobian(phi, K, j)
        assert logp == pytest.approx(ref, abs=1e-9)
        h = 1e-6
        numerical = np.array([
            (_pair_coords.logp_and_grad(phi + e, *args)[0]
             - _pair_coords.logp_and_grad(phi - e, *args)[0]) / (2 * h)
            for e in np.eye(phi.size) * h])
        np.testing.assert_allclose(grad, numerical, rtol=1e-6, atol=1e-6)


def test_choose_pair_takes_the_most_overlapping_neighbours():
    assert _pair_coords.choose_pair([-1.0, 0.0, 3.0], [1.5, 1.0, 0.5]) == 0
    assert _pair_coords.choose_pair([-3.0, 0.0, 0.5], [0.5, 1.0, 1.0]) == 1
    # narrow components 1 apart are separate, until errors of sd 1 blur them together
    assert _pair_coords.choose_pair([0.0, 1.0, 2.5], [0.1, 0.1, 1.0], 0.0) == 1
    assert _pair_coords.choose_pair([0.0, 1.0, 2.5], [0.1, 0.1, 1.0], 1.0) == 0


@pytest.mark.parametrize("pair", [-1, 0, 1])
def test_compiled_callback_never_reports_garbage_as_success(pair):
    # nutpie calls the callback directly: return code 0 must mean a finite log-density
    # and gradient written; anything else must be a nonzero code (> 0: a divergent step),
    # including coordinates so extreme that weights or widths under/overflow
    import ctypes

    from bayesgmm.bayes.samplers import nutpie_native as _nutpie_model

    K = 3
    rng = np.random.default_rng(pair + 1)
    z = rng.normal(size=200)
    hyper = {"weights_alpha": np.array([1.0, 2.0, 1.0]), "means_mu": np.zeros(K),
             "means_sigma": np.full(K, 3.0), "sigmas_sigma": np.ones(K)}
    target = Target(z, np.zeros_like(z), hyper, 0.0, 1.0, pair, np.zeros(3 * K - 1))
    model = _nutpie_model.compiled_model(target, lambda seed: np.zeros(3 * K - 1))
    dbl = ctypes.POINTER(ctypes.c_double)
    call = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, dbl, dbl, dbl,
                            ctypes.c_void_p)(model.compiled_logp_func.address)
    codes = set()
    for d in range(3 * K - 1):
        for value in (-1e4, -745.0, -400.0, 0.0, 400.0, 745.0, 1e4):
            x = rng.normal(size=3 * K - 1)
            x[d] = value
            grad, logp = np.full(3 * K - 1, 12345.0), np.array([777.0])
            rc = call(3 * K - 1, x.ctypes.data_as(dbl), grad.ctypes.data_as(dbl),
                      logp.ctypes.data_as(dbl), model.user_data.ctypes.data)
            codes.add(rc)
            if rc == 0:
                assert np.isfinite(logp[0]) and np.all(np.isfinite(grad)), (d, value)
                assert logp[0] != 777.0
            else:
                assert rc in (3, 4), rc  # recoverable for nutpie: a divergent step
    assert 0 in codes and codes - {0}  # both kinds of point were met


def test_a_header_of_another_layout_is_refused():
    # the callbacks read the data through addresses in a header: one of another layout,
    # size or K must be refused (Python: ValueError; C: nutpie's error code), never read
    import ctypes

    from bayesgmm.bayes.samplers import nutpie_native as native

    K = 2
    z = np.random.default_rng(0).normal(size=50)
    hyper = {"weights_alpha": np.ones(K), "means_mu": np.zeros(K),
             "means_sigma": np.full(K, 3.0), "sigmas_sigma": np.ones(K)}
    target = Target(z, np.zeros_like(z), hyper, 0.0, 1.0, 0, np.zeros(3 * K - 1))
    model = native.compiled_model(target, lambda seed: np.zeros(3 * K - 1))
    good = model.user_data
    assert good.tolist()[:5] == [native._MAGIC, len(native.HEADER), z.size, K, 0]
    native.check_header(good, target.n_dim)

    dbl = ctypes.POINTER(ctypes.c_double)
    logp_fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, dbl, dbl, dbl,
                               ctypes.c_void_p)(model.compiled_logp_func.address)
    expand_fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, dbl, dbl,
                                 ctypes.c_void_p)(model.compiled_expand_func.address)

    def call(header, dim=3 * K - 1):
        x, grad, logp = np.zeros(dim), np.zeros(dim), np.zeros(1)
        out = np.zeros(3 * K)
        rc = logp_fn(dim, x.ctypes.data_as(dbl), grad.ctypes.data_as(dbl),
                     logp.ctypes.data_as(dbl), header.ctypes.data)
        rc_expand = expand_fn(dim, 3 * K, x.ctypes.data_as(dbl), out.ctypes.data_as(dbl),
                              header.ctypes.data)
        return rc, rc_expand

    assert call(good) == (0, 0)
    bad = {"magic": native._MAGIC - 1, "n_words": len(native.HEADER) + 1, "K": K + 1,
           "n": 0, "pair": K - 1}
    for field, value in bad.items():
        header = good.copy()
        header[native.HEADER.index(field)] = value
        assert call(header) == (native.BAD_HEADER, native.BAD_HEADER), field
        with pytest.raises(ValueError, match="header"):
            native.check_header(header, target.n_dim)
    # a point of another size, and an old ten-word header (no magic word): refused
    assert call(good, dim=3 * K) == (native.BAD_HEADER, native.BAD_HEADER)
    with pytest.raises(ValueError, match="header"):
        native.check_header(good, 3 * K)
    old = np.zeros(len(native.HEADER), dtype=np.int64)
    old[:2] = [z.size, K]
    assert call(old) == (native.BAD_HEADER, native.BAD_HEADER)
    with pytest.raises(ValueError, match="header"):
        native.check_header(good[:10], target.n_dim)


@pytest.mark.slow
def test_same_posterior_as_in_pymc_coordinates_k3(monkeypatch):
    # K = 3, three overlapping components: the pair's neighbour bound is active in part
    # of the posterior (checked below). 4 x 1,000 draws each way. Posterior means and
    # quartiles agree at 4.5 combined MCSEs (36 comparisons). Not the sds: components
    # can all but vanish here, and the tails that makes move a 4,000-draw sd by 30%
    # either way (4 x 8,000 draws: means' sds 0.326/0.488/0.332 in pair coordinates,
    # 0.321/0.481/0.319 in PyMC's).
    import arviz_stats as azs

    sim = simulate(400, [0.3, 0.4, 0.3], [0.0, 1.2, 2.4], [0.5, 0.6, 0.5], random_seed=5)
    # both coordinates' second runs end at R-hat 1.011-1.023 here, where the rerun rule
    # would replace them by SMC's draws; this test compares the two NUTS parametrisations
    monkeypatch.setattr(inference, "SMC_FALLBACK_MAX_VALUES", 0)
    out = {}
    for reparam in ("pair", "pymc"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            out[reparam] = inference._fit(sim.x, 3, random_seed=2, progressbar=False,
                                         reparam=reparam)
    post, em = out["pair"].posterior, out["pair"].em_estimate
    j = _pair_coords.choose_pair(em["means"].values, em["sigmas"].values)
    w, mu, sd = (post[v].values.reshape(-1, 3) for v in ("weights", "means", "sigmas"))
    # draws where the pair presses against a neighbour: u2's bound b = min(1, ...) < 1
    f = w[:, j] / (w[:, j] + w[:, j + 1])
    rho = np.sqrt((1 - f) / f)
    m = f * mu[:, j] + (1 - f) * mu[:, j + 1]
    s = np.sqrt(f * (sd[:, j] ** 2 + mu[:, j] ** 2)
                + (1 - f) * (sd[:, j + 1] ** 2 + mu[:, j + 1] ** 2) - m**2)
    left = (m - mu[:, j - 1]) / (s * rho) if j > 0 else np.inf
    right = (mu[:, j + 2] - m) * rho / s if j + 2 < 3 else np.inf
    bounded = int(np.sum(np.minimum(left, right) < 1))
    assert bounded > 40, bounded
    for v in ("weights", "means", "sigmas"):
        for method, prob in (("mean", None), ("quantile", 0.25), ("quantile", 0.5),
                             ("quantile", 0.75)):
            est = {}
            se = {}
            for c in ("pair", "pymc"):
                draws = out[c].posterior[v]
                est[c] = (draws.mean(("chain", "draw")) if prob is None else
                          draws.quantile(prob, dim=("chain", "draw"))).values
                se[c] = azs.mcse(out[c], var_names=[v], method=method, prob=prob)[v].values
            diff = est["pair"] - est["pymc"]
            assert np.all(np.abs(diff) < 4.5 * np.hypot(se["pair"], se["pymc"])), (
                v, method, prob, diff, se)


def test_same_posterior_as_in_pymc_coordinates():
    # Same model, other sampler coordinates: the posteriors must agree within Monte
    # Carlo error. n = 300, K = 2 (overlapping, errors), 4 x 1,000 draws each; each
    # posterior mean is compared at 4.5 combined MCSEs (12 comparisons: a false alarm
    # has probability ~1e-4).
    import arviz_stats as azs

    sim = simulate(300, [0.4, 0.6], [0.0, 1.5], [0.5, 0.8], error_range=(0.2, 0.6),
                   random_seed=3)
    out = {}
    for reparam in ("pair", "pymc"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            out[reparam] = inference._fit(sim.x, 2, X_err=sim.x_err, random_seed=1,
                                         progressbar=False, reparam=reparam)
        assert json.loads(out[reparam].attrs["sampling_runs"])[-1]["divergences"] == 0
    for v in ("weights", "means", "sigmas"):
        a, b = (out[c].posterior[v] for c in ("pair", "pymc"))
        se = np.hypot(azs.mcse(out["pair"], var_names=[v])[v].values,
                      azs.mcse(out["pymc"], var_names=[v])[v].values)
        diff = (a.mean(("chain", "draw")) - b.mean(("chain", "draw"))).values
        assert np.all(np.abs(diff) < 4.5 * se), (v, diff, se)
        sd_ratio = (a.std(("chain", "draw")) / b.std(("chain", "draw"))).values
        assert np.all(np.abs(sd_ratio - 1) < 0.15), (v, sd_ratio)  # ESS > 400 each


def test_only_pairs_with_equal_priors_are_folded():
    # the fold's halves meet at the pair's weights and widths swapped: only equal weight
    # and width priors give both the same density there (with Dirichlet(1, 4) the cliff
    # stalled NUTS at target_accept 0.99: R-hat 2.6); mean priors may differ
    mu, sigma = [-1.0, 0.0, 3.0], [1.5, 1.0, 0.5]
    hyper = {"weights_alpha": np.ones(3), "means_mu": np.zeros(3),
             "means_sigma": np.full(3, 3.0), "sigmas_sigma": np.ones(3)}
    assert _pair_coords.choose_pair(mu, sigma, 0.0, hyper) == 0
    for name, value, expected in (("weights_alpha", [1.0, 4.0, 4.0], 1),
                                  ("weights_alpha", [1.0, 4.0, 1.0], -1),
                                  ("means_mu", [0.0, 0.5, 0.0], 0),  # a kink only
                                  ("means_sigma", [3.0, 1.0, 1.0], 0),
                                  ("sigmas_sigma", [2.0, 1.0, 1.0], 1)):
        assert _pair_coords.choose_pair(mu, sigma, 0.0, {**hyper, name: np.array(value)}) \
            == expected, (name, value)


@pytest.mark.parametrize(("priors", "pair"), [(None, 0), ({"weights_alpha": [1.0, 4.0]}, -1),
                                             ({"sigmas_sigma": [0.5, 3.0]}, -1),
                                             ({"means_mu": [-1.0, 1.0]}, 0)])
def test_fit_folds_only_a_pair_with_equal_priors(priors, pair):
    sim = simulate(200, [0.5, 0.5], [0.0, 0.6], [1.0, 1.0], random_seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        dt = fit(sim.x, 2, priors=priors, draws=50, tune=50, chains=2, random_seed=3,
                 progressbar=False, target_accept=0.8)
    assert json.loads(dt.attrs["sampling_runs"])[0]["pair"] == pair


def test_target_is_one_description_of_what_the_sampler_sees():
    # names, shapes, flat size, coordinates, start and expansion in data units, from one
    # object; its log-density is the reparametrisation's (exactly: the same function)
    from bayesgmm import Priors
    from bayesgmm.bayes.reparam import pymc_space

    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(10.0, 1.0, 80), rng.normal(12.0, 1.0, 60)]
    loc, scale = x.mean(), x.std()
    z, eps2 = (x - loc) / scale, np.zeros(x.size)
    w, mu, sigma = np.array([0.55, 0.45]), np.array([-0.6, 0.7]), np.array([0.5, 0.6])
    theta0 = np.r_[np.log(w[0] / w[1]) / 2, mu[0], np.log(mu[1] - mu[0]), np.log(sigma)]
    hyper = Priors().standardized(2, loc, scale)
    pair = Target.build(z, eps2, hyper, loc, scale, theta0)
    pymc = Target.build(z, eps2, hyper, loc, scale, theta0, reparam="pymc")
    assert (pair.reparam, pair.pair, pymc.reparam, pymc.pair) == ("pair", 0, "pymc", -1)
    assert pair.n_dim == pymc.n_dim == 5 and pair.shapes == {
        "weights": (2,), "means": (2,), "sigmas": (2,)}
    np.testing.assert_array_equal(pymc.start, theta0)
    for target in (pair, pymc):  # the start is the EM estimate, in data units once expanded
        got = target.expand(target.start)
        np.testing.assert_allclose(got["weights"], w, rtol=1e-12)
        np.testing.assert_allclose(got["means"], loc + scale * mu, rtol=1e-12)
        np.testing.assert_allclose(got["sigmas"], scale * sigma, rtol=1e-12)
    ref = pymc_space.logp_and_grad(theta0, z, eps2, *(hyper[k] for k in hyper), 0.0)
    assert pymc.logp_and_grad(theta0)[0] == ref[0]
    ref = _pair_coords.logp_and_grad(pair.start, z, eps2, *(hyper[k] for k in hyper), 0.0, 0)
    assert pair.logp_and_grad(pair.start)[0] == ref[0]
    # one component: nothing to pair, PyMC's coordinates whatever was asked
    one = Target.build(z, eps2, Priors().standardized(1, loc, scale), loc, scale,
                       np.array([0.0, 0.0]))
    assert one.pair == -1 and one.n_dim == 2
    with pytest.raises(ValueError, match="reparam"):
        Target.build(z, eps2, hyper, loc, scale, theta0, reparam="ordered")
    with pytest.raises(ValueError, match="start of length 5"):
        Target.build(z, eps2, hyper, loc, scale, theta0[:4])
