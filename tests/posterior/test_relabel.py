"""Relabelling draws to the EM pivot (bayesgmm/posterior/relabel.py).

Hand-built draws only (no sampler): a K = 3, D = 2 posterior whose labels are scrambled
per draw, coincident components, a draw in another mode, the 1-D ordered case.
"""

import itertools

import numpy as np
import pytest
import xarray as xr
from helpers import _tree
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import mahalanobis

from bayesgmm.errors import DataError
from bayesgmm.posterior.relabel import (
    _best_two,
    apply_permutations,
    component_cost,
    identify,
    pivot_of,
    relabel,
    relabel_to_pivot,
)

PIVOT_MEANS = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
PIVOT_COVS = np.array([np.eye(2), [[0.5, 0.2], [0.2, 0.5]], [[2.0, -0.5], [-0.5, 1.0]]])
PIVOT = {"weights": np.array([0.3, 0.3, 0.4]), "means": PIVOT_MEANS,
         "covariances": PIVOT_COVS}
C, S = 4, 250


def _draws(seed=0, means=PIVOT_MEANS, covs=PIVOT_COVS, spread=0.1):
    """Draws near the pivot, then their labels scrambled per draw (returns both)."""
    rng = np.random.default_rng(seed)
    K, D = means.shape
    w = rng.dirichlet(np.full(K, 200.0), size=(C, S))
    mu = means + spread * rng.standard_normal((C, S, K, D))
    cov = covs * np.exp(spread * rng.standard_normal((C, S, K, 1, 1)))
    scramble = np.array([rng.permutation(K) for _ in range(C * S)]).reshape(C, S, K)
    take = lambda a: np.take_along_axis(a, scramble.reshape(scramble.shape + (1,) * (  # noqa: E731
        a.ndim - 3)), axis=2)
    return (w, mu, cov), (take(w), take(mu), take(cov)), scramble


def _tree_2d(w, mu, cov, pivot=PIVOT):
    dims = ("chain", "draw", "component")
    post = xr.Dataset(
        {"weights": (dims, w), "means": ((*dims, "feature"), mu),
         "covariances": ((*dims, "feature", "feature_2"), cov),
         "sds": ((*dims, "feature"), np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1)))},
        coords={"chain": np.arange(C), "draw": np.arange(S), "component": [0, 1, 2],
                "feature": ["a", "b"]})
    em = xr.Dataset({"weights": ("component", pivot["weights"]),
                     "means": (("component", "feature"), pivot["means"]),
                     "covariances": (("component", "feature", "feature_2"),
                                     pivot["covariances"])})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((C, S), bool))})
    return xr.DataTree.from_dict({"posterior": post, "em_estimate": em,
                                  "sample_stats": stats})


def test_scrambled_labels_are_recovered_in_every_draw():
    (w, mu, cov), (sw, smu, scov), scramble = _draws()
    perm, dist = relabel_to_pivot(sw, smu, scov, PIVOT)
    assert perm.shape == (C, S, 3) and dist.shape == (C, S)
    # 100% of draws: the permutation undoes the scramble exactly
    back = np.take_along_axis(smu, perm[..., None], axis=2)
    assert np.array_equal(back, mu)
    ident = identify(sw, smu, scov, PIVOT)
    assert ident.permuted == int(np.any(scramble != np.arange(3), axis=-1).sum())
    assert ident.not_identified == 0.0


def test_datatree_relabel_records_what_it_did():
    (w, mu, cov), (sw, smu, scov), scramble = _draws(seed=1)
    dt = _tree_2d(sw, smu, scov)
    out = relabel(dt)
    post = out["posterior"]
    for name, truth in (("weights", w), ("means", mu), ("covariances", cov)):
        assert np.array_equal(post[name].values, truth), name
    assert np.array_equal(post["sds"].values,
                          np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1)))
    n_moved = int(np.any(scramble != np.arange(3), axis=-1).sum())
    assert post.attrs["relabel_permuted"] == n_moved
    assert post.attrs["relabel_permuted_fraction"] == n_moved / (C * S)
    assert post.attrs["relabel_pivot"] == "em_estimate"
    assert post.attrs["relabel_not_identified"] == 0.0
    stats = out["sample_stats"]
    assert np.array_equal(stats["relabel_permutation"].values, np.argsort(scramble, axis=-1))
    assert stats["relabel_distance"].dims == ("chain", "draw")
    assert np.all(stats["relabel_margin"].values > 1.0)
    assert "diverging" in stats  # additive: nothing of sample_stats is lost
    # the input is untouched
    assert np.array_equal(dt["posterior"]["means"].values, smu)
    assert "relabel_pivot" not in dt["posterior"].attrs
    assert "relabel_permutation" not in dt["sample_stats"]


def test_relabelling_twice_changes_nothing():
    _, scrambled, _ = _draws(seed=2)
    once = relabel(_tree_2d(*scrambled))
    twice = relabel(once)
    for group in ("posterior", "sample_stats"):
        xr.testing.assert_identical(twice[group].to_dataset(), once[group].to_dataset())


def test_coincident_components_are_not_identified():
    # components 1 and 2 share centre and shape: every draw is ambiguous between them
    means = PIVOT_MEANS.copy()
    means[2] = means[1]
    covs = PIVOT_COVS.copy()
    covs[2] = covs[1]
    pivot = {**PIVOT, "means": means, "covariances": covs}
    _, (sw, smu, scov), _ = _draws(seed=3, means=means, covs=covs)
    ident = identify(sw, smu, scov, pivot)
    assert ident.not_identified == 1.0
    assert ident.ambiguous.all() and not ident.far.any()
    assert relabel(_tree_2d(sw, smu, scov, pivot))["posterior"].attrs[
        "relabel_not_identified"] == 1.0


def test_a_shared_centre_is_identified_by_the_shapes():
    # a narrow core inside a broad halo: the covariance term tells them apart (margin:
    # 2 KL of N(0, I) from N(0, 9 I) and back, 2 * (4 + 0.6 + ...) >> 1)
    means = np.zeros((2, 2))
    covs = np.array([np.eye(2), 9 * np.eye(2)])
    pivot = {"weights": np.array([0.5, 0.5]), "means": means, "covariances": covs}
    draws = means + np.zeros((10, 2, 2)), np.broadcast_to(covs[::-1], (10, 2, 2, 2))
    ident = identify(None, *draws, pivot)
    assert (ident.permutations == [1, 0]).all() and ident.not_identified == 0.0
    # without it only the means count, and they coincide
    assert identify(None, *draws, pivot, covariance_term=False).ambiguous.all()


def test_draws_in_another_mode_are_far():
    # a draw whose component 0 sits at (10, 10): outside every pivot component's 99%
    # ellipsoid, so no labelling matches it
    (w, mu, cov), _, _ = _draws(seed=4)
    mu = mu.copy()
    mu[0, :10, 0] = [10.0, 10.0]
    ident = identify(w, mu, cov, PIVOT)
    assert ident.far[0, :10].all() and not ident.far[1:].any()
    assert ident.not_identified == pytest.approx(10 / (C * S))


def test_one_dim_ordered_draws_keep_their_labels():
    # 1-D fit results: means ordered in every draw, the EM pivot sorted by mean: the
    # identity is the nearest labelling in every draw (today's ordering is kept)
    dt = _tree(seed=5)
    pivot = pivot_of(dt)
    assert pivot["means"].shape == (2, 1) and pivot["covariances"].shape == (2, 1, 1)
    post = dt["posterior"]
    perm, _ = relabel_to_pivot(post["weights"].values, post["means"].values[..., None],
                               post["sigmas"].values[..., None, None] ** 2, pivot)
    assert (perm == np.arange(2)).all()
    out = relabel(dt)
    xr.testing.assert_identical(out["posterior"].to_dataset().drop_attrs(),
                                dt["posterior"].to_dataset().drop_attrs())
    assert out["posterior"].attrs["relabel_permuted"] == 0


def test_cost_against_independent_formulas():
    rng = np.random.default_rng(6)
    mu = rng.standard_normal((5, 3, 2))
    A = rng.standard_normal((5, 3, 2, 2))
    cov = A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(2)
    cost = component_cost(mu, cov, PIVOT_MEANS, PIVOT_COVS, covariance_term=False)
    for n, j, k in itertools.product(range(5), range(3), range(3)):
        ref = mahalanobis(mu[n, j], PIVOT_MEANS[k], np.linalg.inv(PIVOT_COVS[k])) ** 2
        assert cost[n, j, k] == pytest.approx(ref, rel=1e-12)
    # 1-D: 2 KL(N(m1, s1^2) || N(m2, s2^2)) in closed form
    m1, s1, m2, s2 = 0.3, 0.7, -1.1, 1.9
    kl = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    c = component_cost(np.array([[m1]]), np.array([[[s1**2]]]), np.array([[m2]]),
                       np.array([[[s2**2]]]))
    assert c[0, 0] == pytest.approx(2 * kl, rel=1e-12)


@pytest.mark.parametrize("method", ["assignment", "enumerate"])
def test_best_labelling_against_brute_force(method):
    # random costs, K = 4: the chosen labelling and the runner-up against all 24
    rng = np.random.default_rng(7)
    cost = rng.random((200, 4, 4))
    perm, best, second = _best_two(cost, method)
    for n in range(len(cost)):
        totals = sorted((sum(cost[n, p[k], k] for k in range(4)), p)
                        for p in itertools.permutations(range(4)))
        assert tuple(perm[n]) == totals[0][1]
        assert best[n] == pytest.approx(totals[0][0], rel=1e-12)
        assert second[n] == pytest.approx(totals[1][0], rel=1e-12)
    # and scipy's own answer, read the same way
    rows, cols = linear_sum_assignment(cost[0])
    assert (perm[0][cols] == rows).all()


def test_apply_permutations_reorders_only_component_variables():
    rng = np.random.default_rng(8)
    post = xr.Dataset({"a": (("chain", "draw", "component"), rng.random((2, 3, 3))),
                       "b": (("component", "chain", "feature", "draw"),
                             rng.random((3, 2, 2, 3))),
                       "c": (("chain", "draw"), rng.random((2, 3)))}, attrs={"x": 1})
    perm = np.array([rng.permutation(3) for _ in range(6)]).reshape(2, 3, 3)
    out = apply_permutations(post, perm)
    for c, d, k in itertools.product(range(2), range(3), range(3)):
        assert out["a"].values[c, d, k] == post["a"].values[c, d, perm[c, d, k]]
        assert (out["b"].values[k, c, :, d] == post["b"].values[perm[c, d, k], c, :, d]).all()
    assert out["b"].dims == post["b"].dims and out.attrs == {"x": 1}
    xr.testing.assert_identical(out["c"], post["c"])


def test_bad_pivots_are_data_errors():
    _, (sw, smu, scov), _ = _draws(seed=9)
    with pytest.raises(DataError, match="positive definite"):
        identify(sw, smu, scov, {**PIVOT, "covariances": -PIVOT_COVS})
    with pytest.raises(DataError, match="components"):
        identify(sw, smu, scov, {**PIVOT, "means": PIVOT_MEANS[:2],
                                 "covariances": PIVOT_COVS[:2]})
    with pytest.raises(DataError, match="em_estimate"):
        relabel(xr.DataTree.from_dict({"posterior": _tree_2d(sw, smu, scov)["posterior"]
                                      .to_dataset()}))


def test_relabelled_result_survives_netcdf(tmp_path):
    _, scrambled, _ = _draws(seed=10)
    out = relabel(_tree_2d(*scrambled))
    path = tmp_path / "r.nc"
    out.to_netcdf(path)
    back = xr.open_datatree(path)
    try:
        for group in ("posterior", "sample_stats"):
            xr.testing.assert_identical(back[group].to_dataset().load(),
                                        out[group].to_dataset())
        # and relabelling the loaded result changes nothing
        again = relabel(back)
        assert np.array_equal(again["posterior"]["means"].values,
                              out["posterior"]["means"].values)
    finally:
        back.close()
