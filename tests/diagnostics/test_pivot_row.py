"""diagnose's ``pivot_identified`` row (diagnostics/mixture.py: pivot_row, uses_pivot).

Hand-built posteriors only; the row appears for relabelled or D-dim posteriors, never
in a plain 1-D table.
"""

import inspect

import numpy as np
import xarray as xr
from helpers import _tree

from bayesgmm.diagnostics import diagnose
from bayesgmm.diagnostics.mixture import label_row, pivot_row, uses_pivot
from bayesgmm.posterior.relabel import AMBIGUOUS_MARGIN, FAR_PROB, relabel

C, S, K = 4, 200, 3
MEANS = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
COVS = np.array([np.eye(2), 0.5 * np.eye(2), [[2.0, -0.5], [-0.5, 1.0]]])


def _tree_2d(seed=0, means=MEANS, scramble=True):
    rng = np.random.default_rng(seed)
    mu = means + 0.1 * rng.standard_normal((C, S, K, 2))
    cov = np.broadcast_to(COVS, (C, S, K, 2, 2)).copy()
    w = rng.dirichlet(np.full(K, 200.0), size=(C, S))
    if scramble:
        perm = np.array([rng.permutation(K) for _ in range(C * S)]).reshape(C, S, K)
        mu = np.take_along_axis(mu, perm[..., None], axis=2)
        cov = np.take_along_axis(cov, perm[..., None, None], axis=2)
        w = np.take_along_axis(w, perm, axis=2)
    dims = ("chain", "draw", "component")
    post = xr.Dataset({"weights": (dims, w), "means": ((*dims, "feature"), mu),
                       "covariances": ((*dims, "feature", "feature_2"), cov)},
                      coords={"chain": np.arange(C), "draw": np.arange(S),
                              "component": np.arange(K)})
    em = xr.Dataset({"weights": ("component", np.full(K, 1 / 3)),
                     "means": (("component", "feature"), means),
                     "covariances": (("component", "feature", "feature_2"), COVS)})
    return xr.DataTree.from_dict({"posterior": post, "em_estimate": em})


def _row(dt):
    return pivot_row(dt, 0.05, AMBIGUOUS_MARGIN, FAR_PROB)


def test_one_dim_tables_are_unchanged():
    dt = _tree()
    assert not uses_pivot(dt)
    assert "pivot_identified" not in diagnose(dt).checks["name"].tolist()


def test_relabelled_one_dim_result_gets_the_row_and_passes():
    out = relabel(_tree())
    assert uses_pivot(out)
    checks = diagnose(out).checks.set_index("name")
    row = checks.loc["pivot_identified"]
    assert row["ok"] and row["value"] == 0.0
    assert "0 of 2000 draws were relabelled" in row["message"]
    # the rest of the table is the 1-D one
    plain = diagnose(_tree()).checks.set_index("name")
    assert checks.drop("pivot_identified")["ok"].equals(plain["ok"])


def test_scrambled_draws_fail_until_relabelled():
    dt = _tree_2d()
    assert uses_pivot(dt)
    row = _row(dt)
    assert not row["ok"] and row["value"] > 0.5
    assert "were not relabelled" in row["message"]
    out = relabel(dt)
    row = _row(out)
    moved = out["posterior"].attrs["relabel_permuted"]
    assert row["ok"] and row["value"] == 0.0 and moved > 0
    assert f"{moved} of {C * S} draws were relabelled" in row["message"]


def test_coincident_components_fail_with_k_minus_one_advice():
    means = MEANS.copy()
    means[2] = means[0] + 0.05  # and COVS[2] close enough to COVS[0]: interchangeable
    row = _row(relabel(_tree_2d(seed=1, means=means)))
    assert not row["ok"]
    assert "interchangeable" in row["message"] and "K - 1" in row["message"]


def test_draws_in_another_mode_fail_as_far():
    dt = _tree_2d(seed=2, scramble=False)
    mu = dt["posterior"]["means"].values.copy()
    mu[:, :20, 0] = [10.0, 10.0]  # 10% of draws: component 0 far from every EM component
    dt["posterior"] = dt["posterior"].to_dataset().assign(means=(dt["posterior"]["means"]
                                                                  .copy(data=mu)))
    row = _row(dt)
    assert not row["ok"] and row["value"] == 0.1
    assert "99% ellipsoid" in row["message"]


def test_skipped_without_a_pivot_and_one_dim_ordering_skipped_in_d_dims():
    dt = _tree_2d()
    no_em = xr.DataTree.from_dict({"posterior": dt["posterior"].to_dataset()})
    assert _row(no_em)["skipped"]
    assert label_row(dt, 0.1, 0.05)["skipped"]


def test_failed_row_gets_a_verdict():
    # 1-D, relabelled, neighbours 0.6 sd apart: not coincident for the ordering check
    # (0.1 sd) but ambiguous for the pivot (swap cost 2 * 0.6^2 = 0.72 < 1)
    mu, sg = np.array([0.0, 0.6]), np.array([1.0, 1.0])
    rng = np.random.default_rng(3)
    dt = _tree(means=mu + 0.02 * rng.standard_normal((4, 500, 2)),
               sigmas=sg + 0.01 * rng.standard_normal((4, 500, 2)))
    dt["em_estimate"] = dt["em_estimate"].to_dataset().assign(
        means=("component", mu), sigmas=("component", sg))
    d = diagnose(relabel(dt))
    checks = d.checks.set_index("name")
    assert not checks.loc["pivot_identified", "ok"]
    assert checks.loc["labels_identified", "ok"]
    assert "pivot_identified" in d.verdict


def test_diagnose_defaults_are_the_relabelling_thresholds():
    params = inspect.signature(diagnose).parameters
    assert params["relabel_margin"].default == AMBIGUOUS_MARGIN
    assert params["relabel_far_prob"].default == FAR_PROB


def test_real_one_dim_fit_keeps_its_ordering(sample):
    # a real 1-D posterior (ordered means) relabelled to its sorted EM estimate: the
    # identity in every draw, and the row passes; n = 300, two components 8 sds apart
    from bayesgmm.datasets import simulate

    sim = simulate(300, [0.5, 0.5], [0.0, 4.0], [0.5, 0.7], random_seed=1)
    dt, _ = sample(sim.x, 2, draws=200, tune=300, chains=2, random_seed=3)
    out = relabel(dt)
    assert out["posterior"].attrs["relabel_permuted"] == 0
    assert np.array_equal(out["posterior"]["means"].values, dt["posterior"]["means"].values)
    row = _row(out)
    assert row["ok"] and row["value"] == 0.0
