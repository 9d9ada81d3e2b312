"""Numerical robustness: many components, far tails, very different scales, collapse.

No input may give a NaN without an error: every case here checks that the numbers
returned are finite (or an honest -inf log density) and that what went wrong, if
anything, is reported.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesgmm import GaussianMixtureEM
from bayesgmm.errors import ConvergenceWarning


def fit_em(X, K, X_err=None, **kwargs):
    """Fit, returning the estimator and the messages of the ConvergenceWarnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gm = GaussianMixtureEM(K, **kwargs).fit(X, X_err=X_err)
    return gm, [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


def _finite_estimate(gm):
    assert np.all(np.isfinite(gm.weights_)) and gm.weights_.sum() == pytest.approx(1.0)
    assert np.all(np.isfinite(gm.means_)) and np.all(np.isfinite(gm.covariances_))
    assert np.all(np.linalg.eigvalsh(gm.covariances_)[:, 0] > 0)
    assert np.isfinite(gm.loglik_)


def test_twenty_separated_components_are_all_found():
    pytest.importorskip("sklearn")
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    centres = 10.0 * np.arange(20)
    x = np.concatenate([rng.normal(m, 0.5 + 0.1 * i, 200) for i, m in enumerate(centres)])
    for seed in (0, 1):
        gm, msgs = fit_em(x, 20, random_seed=seed)
        assert not msgs, msgs
        _finite_estimate(gm)
        # 200 points per cluster, widths <= 2.4: each mean within 0.5 of its centre
        # (> 5 standard errors) only if no cluster is split or merged
        assert np.abs(np.sort(gm.means_[:, 0]) - centres).max() < 0.5
        sk = GaussianMixture(20, random_state=seed).fit(x[:, None])
        assert gm.loglik_ >= sk.score(x[:, None]) * x.size - 1e-6 * abs(gm.loglik_)


@pytest.mark.parametrize("errors", [False, True])
def test_twenty_components_on_five_clusters_stay_finite(errors):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(m, 1.0, 100) for m in range(5)])
    e = rng.uniform(0.1, 2.0, x.size) if errors else None
    gm, msgs = fit_em(x, 20, X_err=e, random_seed=0, max_iter=300)
    _finite_estimate(gm)
    assert gm.converged_ or any("did not converge" in m for m in msgs)
    p = gm.predict_proba(x[:, None], X_err=e)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1.0)


def test_twenty_components_in_three_dimensions():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 3)) + 5.0 * rng.integers(0, 20, 2000)[:, None]
    gm, _ = fit_em(X, 20, random_seed=0, max_iter=300)
    _finite_estimate(gm)
    assert np.all(np.isfinite(gm.score_samples(X)))


def test_far_tail_points_give_limits_not_nans():
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0.0, 1.0, 500), rng.normal(5.0, 2.0, 500)]
    gm, _ = fit_em(x, 2, random_seed=0)
    broad = int(np.argmax(gm.covariances_[:, 0, 0]))
    pts = np.array([40.0, 1e6, -1e8, 1e150, 1e160, -1e300, 1.7e308])[:, None]
    logp = gm.score_samples(pts)
    assert np.all(np.isfinite(logp[:4]))
    # beyond ~1e154 standard deviations the density is below the smallest double:
    # -inf is the correctly rounded log density, not a NaN
    assert np.all(logp[4:] == -np.inf)
    p = gm.predict_proba(pts)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1.0)
    # far out in either direction the widest component wins
    assert np.all(gm.predict(pts[1:]) == broad)


def test_narrow_component_on_a_broad_one_with_the_same_centre():
    # 500 + 500 points; k-means cannot split concentric clusters, the density-layer
    # start can. Widths are recovered to 10% (sd of a width estimate from 500 points
    # is ~3%).
    rng = np.random.default_rng(0)
    for ratio in (1e2, 1e3):
        x = np.r_[rng.normal(0.0, 1.0 / ratio, 500), rng.normal(0.0, 1.0, 500)]
        gm, msgs = fit_em(x, 2, random_seed=0)
        assert not msgs
        widths = np.sort(np.sqrt(gm.covariances_.ravel()))
        np.testing.assert_allclose(widths, [1.0 / ratio, 1.0], rtol=0.1)
    # 1e-6 of the data's spread is below the default reg_covar's resolution: reported,
    # with what to do; a smaller reg_covar then resolves it
    x = np.r_[rng.normal(0.0, 1e-6, 500), rng.normal(0.0, 1.0, 500)]
    gm, msgs = fit_em(x, 2, random_seed=0)
    assert gm.degenerate_ and any("smaller reg_covar" in m for m in msgs)
    _finite_estimate(gm)
    gm, msgs = fit_em(x, 2, random_seed=0, reg_covar=1e-16)
    assert not msgs and not gm.degenerate_
    np.testing.assert_allclose(np.sort(np.sqrt(gm.covariances_.ravel())), [1e-6, 1.0],
                               rtol=0.1)


def test_component_collapsing_onto_a_point_is_floored_and_reported():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0.0, 1.0, 200), np.full(30, 5.0)]
    for K in (2, 3, 6):
        gm, msgs = fit_em(x, K, random_seed=0)
        _finite_estimate(gm)
        assert gm.degenerate_ and any("collapsed" in m for m in msgs)
        # floored at reg_covar (relative to the data's variance), not zero
        assert gm.covariances_.min() >= 0.9 * 1e-9 * x.var()
    gm, msgs = fit_em(np.r_[np.full(49, 3.0), 3.1], 2, random_seed=0)
    _finite_estimate(gm)
    assert gm.degenerate_ and msgs


def test_model_log_density_in_the_tails_and_at_extreme_widths():
    from bayesgmm.bayes.reparam import pair as _pair_coords
    from bayesgmm.bayes.reparam.pymc_space import logp_and_grad, unpack

    K = 3
    # unconstrained: K-1 stick logits, first mean and log gaps, log sigmas
    theta = np.array([0.3, -0.2, -1.0, np.log(2.0), np.log(1.5), np.log(1e-6), 0.0,
                      np.log(50.0)])
    z = np.array([-1e8, -3.0, 0.0, 1e-9, 2.0, 1e6, 1e8])
    for eps2 in (np.zeros_like(z), np.full_like(z, 0.04)):
        lp, grad = logp_and_grad(theta, z, eps2, np.ones(K), np.zeros(K), np.full(K, 3.0),
                                 np.ones(K), 0.0)
        assert np.isfinite(lp) and np.all(np.isfinite(grad))
        # the same point in the sampler's pair coordinates, either pair
        w, mu, sigma = unpack(theta, K)
        for j in (0, 1):
            phi = _pair_coords.pack(w, mu, sigma, j)
            lp, grad = _pair_coords.logp_and_grad(phi, z, eps2, np.ones(K), np.zeros(K),
                                                  np.full(K, 3.0), np.ones(K), 0.0, j)
            assert np.isfinite(lp) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("K", [2, 3, 4])
def test_pair_coordinates_far_out(K):
    # any single coordinate at +-15 or +-40 (weights 1e-17, widths e^40, a pair pressed
    # against its neighbour...): a finite gradient, and a finite or -inf log-density
    from bayesgmm.bayes.reparam import pair as _pair_coords

    rng = np.random.default_rng(K)
    z = rng.normal(size=100)
    args = (z, np.zeros(100), np.ones(K), np.zeros(K), np.full(K, 3.0), np.ones(K), 0.0)
    for j in range(K - 1):
        for value in (-40.0, -15.0, 15.0, 40.0):
            for d in range(3 * K - 1):
                phi = 0.5 * rng.normal(size=3 * K - 1)
                phi[d] = value
                lp, grad = _pair_coords.logp_and_grad(phi, *args, j)
                assert np.isfinite(lp) or lp == -np.inf, (j, d, value, lp)
                assert np.all(np.isfinite(grad)), (j, d, value, grad)


@pytest.mark.parametrize("unit", [1.0, 1e60, 1e160, 1e-200])
def test_posterior_membership_and_density_far_out(unit):
    # the same posterior in units 1e-200 .. 1e160 apart: nothing overflows into NaN
    import xarray as xr

    import bayesgmm as bg

    rng = np.random.default_rng(4)
    C, S = 2, 50
    dims = ("chain", "draw", "component")
    means = np.stack([rng.normal(0, 0.05, (C, S)), rng.normal(5, 0.05, (C, S))], -1)
    sigmas = np.stack([rng.uniform(0.9, 1.1, (C, S)), rng.uniform(1.9, 2.1, (C, S))], -1)
    post = xr.Dataset(
        {"weights": (dims, rng.dirichlet([30, 70], (C, S))), "means": (dims, unit * means),
         "sigmas": (dims, unit * sigmas)},
        coords={"chain": np.arange(C), "draw": np.arange(S), "component": [0, 1]})
    dt = xr.DataTree.from_dict({"posterior": post})
    far = [1e160, -1e300] if unit == 1.0 else []
    pts = np.array([1.0 * unit, 1e6 * unit, -1e8 * unit, *far])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warnings either
        m = bg.membership(dt, pts)
        d = bg.density(dt, pts)
    for v in ("mean", "lower", "upper"):
        assert np.all(np.isfinite(m[v].values))
    assert np.allclose(m["mean"].values.sum(-1), 1.0)
    assert np.all(m["mean"].values[1:, 1] > 0.999)  # the wider component wins far out
    assert np.all(np.isfinite(d["mean"].values)) and np.all(d["mean"].values[1:] == 0)


@pytest.mark.parametrize("d", [1, 2])
def test_local_scale_matches_a_kd_tree(d):
    from scipy.spatial import cKDTree

    from bayesgmm.em.init import local_scale

    Y = np.random.default_rng(5).normal(size=(400, d))
    for m in (1, 5, 20):
        expected = cKDTree(Y).query(Y, k=m + 1)[0][:, -1]
        np.testing.assert_allclose(local_scale(Y, m), expected, rtol=1e-12)


_FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(values=st.lists(st.tuples(_FLOATS, st.floats(0.0, 1e300)), min_size=2, max_size=30),
       K=st.integers(1, 3), with_errors=st.booleans())
def test_any_finite_input_gives_a_finite_fit_or_a_data_error(values, K, with_errors):
    """Values anywhere in float64's range, errors up to 1e300: no NaN ever comes back.

    Either a DataError says what to change (constant data, variances float64 cannot
    hold, K above the distinct values...) or every estimate and membership is finite.
    """
    from bayesgmm.errors import DataError

    x = np.array([v for v, _ in values])
    e = np.array([s for _, s in values]) if with_errors else None
    try:
        gm, _ = fit_em(x, K, X_err=e, random_seed=0, n_init=2, max_iter=200)
    except DataError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    _finite_estimate(gm)
    p = gm.predict_proba(x, X_err=e)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1.0)
    assert np.all(~np.isnan(gm.score_samples(x, X_err=e)))


def test_variances_float64_cannot_hold_are_refused_with_a_rescaling_hint():
    from bayesgmm.errors import DataError

    with pytest.raises(DataError, match=r"up to 5e\+293.*divide by 1e293"):
        GaussianMixtureEM(1).fit(np.array([5e293, 0.0, 1.0]))
    with pytest.raises(DataError, match=r"spans only 4e-273.*multiply by 1e273"):
        GaussianMixtureEM(1).fit(np.array([1e-273, 5e-273, 3e-273]))
    with pytest.raises(DataError, match=r"X_err has values up to 1e\+224.*divide both"):
        GaussianMixtureEM(1).fit(np.array([0.0, 1.0, 2.0]), X_err=np.array([1.0, 1e224, 1.0]))
    # the Bayesian entry points validate the same way
    import bayesgmm as bg

    with pytest.raises(DataError, match="beyond what float64 can square"):
        bg.build_model(np.array([5e293, 0.0, 1.0]), 1)
