"""EM estimator: correctness against scikit-learn and theory, robustness, API contract."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm

from bayesgmm import ConvergenceWarning, DataError, GaussianMixtureEM
from bayesgmm.datasets import seed000_data, simulate

sklearn_mixture = pytest.importorskip("sklearn.mixture")


def _total_loglik(gm, X, X_err=None):
    """Reference log-likelihood with SciPy, errors included."""
    X = np.atleast_2d(np.asarray(X, float).T).T
    n, d = X.shape
    dens = np.zeros(n)
    for w, m, c in zip(gm.weights_, gm.means_, gm.covariances_, strict=True):
        if X_err is None:
            dens += w * multivariate_normal(m, c).pdf(X).reshape(n)
        else:
            e = np.asarray(X_err).reshape(n, -1)
            s = np.sqrt(c[0, 0] + e[:, 0] ** 2)
            dens += w * norm.pdf(X[:, 0], m[0], s)
    return np.log(dens).sum()


def _mixture_data(rng, n_per, d, k, spread=4.0):
    centers = rng.normal(0, spread, size=(k, d))
    parts = []
    for c in centers:
        a = rng.normal(size=(d, d))
        cov = a @ a.T / d + 0.3 * np.eye(d)
        parts.append(rng.multivariate_normal(c, cov, size=n_per))
    return np.vstack(parts)


@pytest.mark.parametrize("d,cov_type", [(1, "full"), (2, "full"), (3, "full"), (3, "diag"),
                                        (2, "spherical")])
def test_loglik_at_least_sklearn(rng, d, cov_type):
    # Same data and K; scikit-learn with 10 starts at its defaults. Our total
    # log-likelihood must be >= sklearn's up to 1e-6 relative (n = 1,500).
    X = _mixture_data(rng, 500, d, 3)
    ours = GaussianMixtureEM(3, covariance_type=cov_type, n_init=5, random_seed=1).fit(X)
    sk = sklearn_mixture.GaussianMixture(3, covariance_type=cov_type, n_init=10,
                                         random_state=1).fit(X)
    sk_ll = sk.score(X) * X.shape[0]
    assert ours.loglik_ >= sk_ll - 1e-6 * abs(sk_ll)
    # and our reported loglik_ is the true log-likelihood of our parameters
    np.testing.assert_allclose(ours.loglik_, ours.score_samples(X).sum(), rtol=1e-10)


def test_loglik_at_least_sklearn_overlapping_1d(seed001):
    # Seed 001's overlapping components: EM creeps here, so this checks the default tol.
    ours = GaussianMixtureEM(3, random_seed=0).fit(seed001)
    sk = sklearn_mixture.GaussianMixture(3, n_init=10, random_state=0).fit(seed001[:, None])
    sk_ll = sk.score(seed001[:, None]) * seed001.size
    assert ours.loglik_ >= sk_ll - 1e-6 * abs(sk_ll)
    np.testing.assert_allclose(ours.loglik_, _total_loglik(ours, seed001), rtol=1e-10)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(20, 400),
    d=st.integers(1, 3),
    k=st.integers(1, 4),
    with_err=st.booleans(),
)
def test_loglik_never_decreases(seed, n, d, k, with_err):
    # EM's monotonicity: each iteration's total log-likelihood >= the previous one,
    # up to floating-point rounding (1e-9 relative). reg_covar=0 keeps the M-step exact;
    # a run that hits a degenerate (singular) solution is allowed to stop there. One start,
    # no screening or split-and-merge: the trace checked is one EM run's, and the search's
    # hundreds of short runs on small n (n_screen="auto") took 2 minutes of the suite.
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.integers(0, 3, size=(n, 1)) * 3.0
    X_err = rng.uniform(0.1, 1.0, size=(n, d)) if with_err else None
    k = min(k, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixtureEM(k, reg_covar=0.0, n_init=1, max_iter=200, n_screen=0,
                               split_merge=False, random_seed=seed).fit(X, X_err=X_err)
    trace = gm.loglik_trace_
    if gm.degenerate_:
        trace = trace[:-1]
    steps = np.diff(trace)
    assert np.all(steps >= -1e-9 * np.abs(trace[1:])), steps.min()


def test_zero_errors_equal_plain_em(rng):
    X = _mixture_data(rng, 200, 2, 2)
    a = GaussianMixtureEM(2, random_seed=3).fit(X)
    b = GaussianMixtureEM(2, random_seed=3).fit(X, X_err=np.zeros_like(X))
    assert a.loglik_ == b.loglik_
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)


def test_tiny_errors_approach_plain_em(rng):
    # XD with errors 1e-6 of the spread must match plain EM to ~1e-6 relative.
    X = _mixture_data(rng, 300, 1, 2)
    a = GaussianMixtureEM(2, random_seed=3).fit(X)
    b = GaussianMixtureEM(2, random_seed=3).fit(X, X_err=np.full(X.shape[0], 1e-6))
    np.testing.assert_allclose(np.sort(b.means_.ravel()), np.sort(a.means_.ravel()), rtol=1e-5)
    np.testing.assert_allclose(b.loglik_, a.loglik_, rtol=1e-6)


def test_xd_recovers_intrinsic_widths_1d():
    # Errors 0.2-1.0 exceed the widths 0.3/0.6. n = 6,000: the MLE's sd of a width is
    # about 0.02 here, so 0.06 (3 sd) bounds it; plain EM must overstate each width by
    # more than 0.15 (it estimates sqrt(width^2 + mean e^2) ~ 0.7-0.9).
    sim = simulate(6000, [0.5, 0.5], [0.0, 2.0], [0.3, 0.6], error_range=(0.2, 1.0),
                   random_seed=0)
    xd = GaussianMixtureEM(2, random_seed=0).fit(sim.x, X_err=sim.x_err)
    plain = GaussianMixtureEM(2, random_seed=0).fit(sim.x)
    o = np.argsort(xd.means_[:, 0])
    sd = np.sqrt(xd.covariances_[o, 0, 0])
    np.testing.assert_allclose(sd, [0.3, 0.6], atol=0.06)
    np.testing.assert_allclose(xd.means_[o, 0], [0.0, 2.0], atol=0.06)
    np.testing.assert_allclose(xd.weights_[o], [0.5, 0.5], atol=0.05)
    o2 = np.argsort(plain.means_[:, 0])
    assert np.all(np.sqrt(plain.covariances_[o2, 0, 0]) > sd + 0.15)
    np.testing.assert_allclose(xd.loglik_, _total_loglik(xd, sim.x, sim.x_err), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_xd_recovers_intrinsic_widths_2d(covariance_type):
    # Two 2-D components with axis-aligned widths below the per-feature errors
    # (0.2-0.8). n = 4,000 gives width sds ~0.02-0.03; tolerance 0.08 is ~3 sd.
    rng = np.random.default_rng(11)
    n = 4000
    lab = rng.random(n) < 0.5
    mu = np.where(lab[:, None], [0.0, 0.0], [2.5, 2.0])
    wid = np.where(lab[:, None], [0.3, 0.5], [0.6, 0.3])
    true = mu + wid * rng.normal(size=(n, 2))
    err = rng.uniform(0.2, 0.8, size=(n, 2))
    X = true + err * rng.normal(size=(n, 2))
    xd = GaussianMixtureEM(2, covariance_type=covariance_type, random_seed=0).fit(X, X_err=err)
    o = np.argsort(xd.means_[:, 0])
    sd = np.sqrt(np.diagonal(xd.covariances_[o], axis1=1, axis2=2))
    np.testing.assert_allclose(sd, [[0.3, 0.5], [0.6, 0.3]], atol=0.08)
    np.testing.assert_allclose(xd.means_[o], [[0.0, 0.0], [2.5, 2.0]], atol=0.08)
    if covariance_type == "full":  # intrinsic correlation ~0
        corr = xd.covariances_[:, 0, 1] / np.prod(sd, axis=1)
        assert np.all(np.abs(corr) < 0.15)


def test_xd_full_covariance_errors_match_diag(rng):
    # Full (n, D, D) error matrices that happen to be diagonal == (n, D) sds.
    X = _mixture_data(rng, 300, 2, 2)
    sd = rng.uniform(0.1, 0.5, size=X.shape)
    cov = np.zeros((X.shape[0], 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = sd[:, 0] ** 2, sd[:, 1] ** 2
    a = GaussianMixtureEM(2, random_seed=1).fit(X, X_err=sd)
    b = GaussianMixtureEM(2, random_seed=1).fit(X, X_err=cov)
    np.testing.assert_allclose(a.loglik_, b.loglik_, rtol=1e-12)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10, atol=1e-12)


def test_xd_multid_loglik_matches_scipy(rng):
    X = _mixture_data(rng, 200, 2, 2)
    a = rng.normal(size=(X.shape[0], 2, 2)) * 0.3
    S = a @ np.swapaxes(a, 1, 2) + 0.01 * np.eye(2)
    gm = GaussianMixtureEM(2, random_seed=1).fit(X, X_err=S)
    ref = 0.0
    for i in range(X.shape[0]):
        ref += np.log(sum(w * multivariate_normal(m, c + S[i]).pdf(X[i])
                          for w, m, c in zip(gm.weights_, gm.means_, gm.covariances_,
                                             strict=True)))
    np.testing.assert_allclose(gm.loglik_, ref, rtol=1e-10)


def test_deconvolve_shrinks_toward_components():
    sim = simulate(3000, [0.5, 0.5], [0.0, 3.0], [0.3, 0.3], error_range=(0.5, 0.5),
                   random_seed=7)
    gm = GaussianMixtureEM(2, random_seed=0).fit(sim.x, X_err=sim.x_err)
    mean, cov = gm.deconvolve(sim.x, X_err=sim.x_err)
    assert mean.shape == (3000, 1) and cov.shape == (3000, 1, 1)
    # posterior means are closer to the truth than the observations (mean squared error)
    mse_obs = np.mean((sim.x - sim.true_values) ** 2)
    mse_post = np.mean((mean[:, 0] - sim.true_values) ** 2)
    assert mse_post < 0.5 * mse_obs
    # where the component is clear, the posterior variance is below the error variance
    # (for ambiguous points the two-component posterior can be wider than the error)
    clear = gm.predict_proba(sim.x, X_err=sim.x_err).max(axis=1) > 0.99
    assert clear.sum() > 1000
    assert np.all(cov[clear, 0, 0] < sim.x_err[clear] ** 2)


def test_sample_weight_equals_repeats(rng):
    # Integer weights are repeat counts: from the same start, every iteration must match
    # the fit to the repeated data up to summation-order rounding (1e-12 relative).
    x = rng.normal(size=60)
    x[30:] += 4
    counts = rng.integers(1, 4, size=60)
    init = {"means": [[0.0], [4.0]], "weights": [0.5, 0.5], "covariances": [[[1.0]], [[1.0]]]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = GaussianMixtureEM(2, init=init, max_iter=20).fit(x, sample_weight=counts)
        b = GaussianMixtureEM(2, init=init, max_iter=20).fit(np.repeat(x, counts))
    np.testing.assert_allclose(a.loglik_trace_, b.loglik_trace_, rtol=1e-12)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-11)
    assert a.n_samples_fit_ == counts.sum()


def test_seed000_bic_not_degenerate():
    # The 50 points contain repeated values (7.62, 7.34): a component may collapse onto
    # them with unbounded likelihood; such fits must be flagged and never chosen.
    from bayesgmm import select_n_components

    for seed in range(3):
        res = select_n_components(seed000_data(), range(1, 7), random_seed=seed)
        assert res.best_k == 2
        best = res.best_model
        assert not best.degenerate_
        assert np.sqrt(best.covariances_.min()) > 0.1


def test_collapse_is_flagged_not_returned():
    x = np.array([0.0, 0.0, 0.0, 1.0, 2.5, 3.0, 4.2, 5.0, 5.5, 7.0])
    with pytest.warns(ConvergenceWarning, match="collapsed"):
        gm = GaussianMixtureEM(5, init={"means": [0.0, 1.0, 3.0, 5.0, 7.0]}).fit(x)
    assert gm.degenerate_


@pytest.mark.parametrize("offset,scale", [(1e9, 1e-3), (0.0, 1e-12), (-5e6, 1e8)])
def test_offsets_and_scales(rng, offset, scale):
    # Standardizing inside makes the fit equivariant: same weights, transformed means.
    x = np.concatenate([rng.normal(0, 1, 400), rng.normal(5, 0.5, 200)])
    base = GaussianMixtureEM(2, random_seed=0).fit(x)
    moved = GaussianMixtureEM(2, random_seed=0).fit(offset + scale * x)
    o1, o2 = np.argsort(base.means_[:, 0]), np.argsort(moved.means_[:, 0])
    # tolerance: x * scale + offset loses ~1e-16 * offset / scale relative precision
    tol = max(1e-7, 1e-15 * abs(offset) / scale * 10)
    np.testing.assert_allclose(moved.weights_[o2], base.weights_[o1], rtol=tol, atol=tol)
    np.testing.assert_allclose((moved.means_[o2, 0] - offset) / scale, base.means_[o1, 0],
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(moved.covariances_[o2, 0, 0] / scale**2,
                               base.covariances_[o1, 0, 0], rtol=max(tol, 1e-6))


def test_predict_api(rng):
    X = _mixture_data(rng, 200, 2, 3)
    gm = GaussianMixtureEM(3, random_seed=0).fit(X)
    p = gm.predict_proba(X)
    assert p.shape == (600, 3)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(gm.predict(X), p.argmax(1))
    n_par = 3 * 3 + 3 * 2 + 2
    np.testing.assert_allclose(gm.bic(X), -2 * gm.loglik_ + n_par * np.log(600), rtol=1e-10)
    np.testing.assert_allclose(gm.aic(X), -2 * gm.loglik_ + 2 * n_par, rtol=1e-10)
    Xs, labels = gm.sample(1000, random_seed=1)
    assert Xs.shape == (1000, 2) and labels.shape == (1000,)
    assert abs(gm.score(X) - gm.loglik_ / 600) < 1e-10
    assert "GaussianMixtureEM(n_components=3" in repr(gm)
    assert gm.get_params()["n_components"] == 3


def test_convergence_warning():
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm = GaussianMixtureEM(4, max_iter=2, n_init=1, random_seed=0).fit(x)
    assert not gm.converged_


def test_out_of_iterations_is_not_converged_at_the_fits_tol():
    # Starts first run to a loose tolerance and only the leaders are run on to ``tol``;
    # a loose run that used up ``max_iter`` had been reported converged at the loose
    # tolerance (here at max_iter=10). With tol=0 no run can converge, whatever
    # max_iter the loose run ends at.
    rng = np.random.default_rng(0)
    true = np.where(rng.random(3000) < 0.6, rng.normal(0.0, 0.7, 3000),
                    rng.normal(2.5, 1.0, 3000))
    sd = rng.uniform(0.2, 1.0, 3000)
    x = true + sd * rng.normal(size=3000)
    start = {"weights": [0.5, 0.5], "means": [[0.0], [2.0]], "covariances": [[[0.3]], [[0.3]]]}
    for max_iter in range(2, 30):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = GaussianMixtureEM(2, tol=0.0, max_iter=max_iter, init=start).fit(x, X_err=sd)
        assert not gm.converged_, max_iter
        assert gm.n_iter_ <= max_iter + 1  # its trace may end with one evaluation more


def test_random_init_and_reproducible(rng):
    X = _mixture_data(rng, 200, 2, 2)
    a = GaussianMixtureEM(2, init="random", random_seed=5).fit(X)
    b = GaussianMixtureEM(2, init="random", random_seed=5).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)


@pytest.mark.parametrize(
    "kwargs,fit_args,match",
    [
        ({"n_components": 0}, {}, "n_components must be an integer >= 1"),
        ({"n_components": 200}, {}, "exceeds the number of samples"),
        ({"covariance_type": "EEE"}, {}, "covariance_type must be one of"),
        ({"init": "nope"}, {}, "init must be"),
        ({"reg_covar": -1.0}, {}, "reg_covar must be >= 0"),
        ({}, {"X_err": -np.ones(100)}, "negative standard deviations"),
        ({}, {"X_err": np.ones(7)}, "must have shape"),
        ({}, {"sample_weight": np.zeros(100)}, "sums to zero"),
    ],
)
def test_bad_input_messages(kwargs, fit_args, match):
    x = np.random.default_rng(0).normal(size=100)
    params = {"n_components": 2, **kwargs}
    with pytest.raises(DataError, match=match):
        GaussianMixtureEM(**params).fit(x, **fit_args)


@pytest.mark.parametrize(
    "X,match",
    [
        ([1.0, np.nan, 2.0], "NaN or infinite"),
        ([1.0, np.inf, 2.0], "NaN or infinite"),
        ([1.0], "at least 2"),
        ([["a", "b"]], "numeric"),
        (np.ones((3, 3, 3)), "must have shape"),
        (np.ones(10), "constant"),
    ],
)
def test_bad_X(X, match):
    with pytest.raises(DataError, match=match):
        GaussianMixtureEM(1).fit(X)


def test_not_fitted():
    with pytest.raises(DataError, match="not fitted"):
        GaussianMixtureEM(2).predict([1.0, 2.0])


def test_from_params_scores_like_scipy():
    gm = GaussianMixtureEM.from_params([0.3, 0.7], [170.0, 200.0], [25.0, 225.0])
    p = gm.predict_proba([180.0])[0]
    a = 0.3 * norm.pdf(180, 170, 5)
    b = 0.7 * norm.pdf(180, 200, 15)
    np.testing.assert_allclose(p, [a / (a + b), b / (a + b)], rtol=1e-12)
    np.testing.assert_allclose(gm.score_samples([180.0])[0], np.log(a + b), rtol=1e-12)
    g2 = GaussianMixtureEM.from_params([0.5, 0.5], [[0, 0], [1, 1]], [[1, 2], [3, 4]])
    assert g2.covariances_.shape == (2, 2, 2) and g2.covariances_[1, 1, 1] == 4.0
    with pytest.raises(DataError, match="sum to 1"):
        GaussianMixtureEM.from_params([0.5, 0.6], [0, 1], [1, 1])


# ---------------------------------------------------------------------- select_n_components


def _groups_1d(n_groups, seed=0, n=300):
    # groups 8 sds apart: BIC's choice is unambiguous
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(8.0 * g, 1.0, n) for g in range(n_groups)])


def test_selection_result_is_indexable_like_its_tuple():
    from bayesgmm import select_n_components

    res = select_n_components(_groups_1d(2), range(1, 4), random_seed=0)
    table, best_k = res
    assert len(res) == 2
    assert res[0] is table and res[1] == best_k == 2
    assert res[-1] == best_k and res[:] == (table, best_k)


def test_selection_is_deterministic_without_a_seed():
    # Same data, no seed: the same table to the last bit (k = 3 does not converge on two
    # groups, so different starts would leave it at different points of its ridge), and a
    # k's fit does not depend on which other ks are tried.
    from bayesgmm import select_n_components

    x = _groups_1d(2, seed=4)
    a = select_n_components(x, range(1, 5))
    b = select_n_components(x, range(1, 5))
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    c = select_n_components(x, [3, 1, 2])  # same ks in another order, fewer of them
    np.testing.assert_array_equal(c.models[3].means_, a.models[3].means_)


def test_selection_warns_when_best_k_is_the_largest_tried_and_only_then():
    # Three groups, ks up to 2: the best k is the upper edge of the range, a warning.
    # ks up to 5: best k = 3 inside, and the unconverged larger ks are too far behind to
    # matter: no warning at all (every warning is an error there); nor for k = 1 best at
    # the lower edge, since there is nothing below 1.
    from bayesgmm import select_n_components
    from bayesgmm.errors import SelectionWarning

    with pytest.warns(SelectionWarning, match="the best k by BIC, 2, is the largest one"):
        res = select_n_components(_groups_1d(3), range(1, 3), random_seed=0)
    assert res.best_k == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_n_components(_groups_1d(3), range(1, 6), random_seed=0).best_k == 3
        assert select_n_components(_groups_1d(1), range(1, 4), random_seed=0).best_k == 1


def test_selection_warns_when_best_k_is_the_smallest_tried_above_1():
    from bayesgmm import select_n_components
    from bayesgmm.errors import SelectionWarning

    with pytest.warns(SelectionWarning, match="smallest one tried"):
        res = select_n_components(_groups_1d(3), range(3, 5), random_seed=0)
    assert res.best_k == 3


def test_selection_warns_when_the_chosen_k_did_not_converge():
    from bayesgmm import select_n_components

    # the search after the starts would find a converged maximum even in 3 iterations
    # (its screened starts have run 20 already): without it, k = 2 stops unconverged
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=3"):
        res = select_n_components(_groups_1d(2), range(1, 4), random_seed=0, max_iter=3,
                                  n_screen=0, split_merge=False)
    assert not res.table.set_index("k").loc[res.best_k, "converged"]


def test_one_feature_errors_as_columns_or_covariances_take_the_1d_path(monkeypatch):
    # a 1-D problem whose errors come as (n, 1) sds or (n, 1, 1) covariances is the
    # same problem as with (n,) sds: the same 1-D kernels (no multi-D kernel is ever
    # asked for) and the same log-likelihood to the last bit
    from bayesgmm.em import kernels as kern

    rng = np.random.default_rng(0)
    x, e = rng.normal(size=500), rng.uniform(0.2, 0.5, 500)
    asked = []
    real = kern.kernel
    monkeypatch.setattr(kern, "kernel", lambda name, n: asked.append(name) or real(name, n))
    fits = [GaussianMixtureEM(2, random_seed=0).fit(X, X_err=E)
            for X, E in ((x, e), (x[:, None], e[:, None]), (x[:, None], (e**2)[:, None, None]))]
    assert set(asked) <= {"xd_1d", "logprob_1d"}, set(asked)
    assert fits[0].loglik_ == fits[1].loglik_ == fits[2].loglik_
