"""The D-dimensional posterior against the truth: deconvolution and missing values.

Real fits (nutpie, 2 chains), fixed seeds. Each test states its tolerance and why.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesgmm

pytestmark = pytest.mark.slow

# the interval: 94% equal-tailed
LO, HI = 0.03, 0.97


def _xd_data(D: int, n: int, seed: int):
    """Two well-separated components whose measurement errors exceed their spread.

    Intrinsic sds 0.4-0.7, correlations 0.6 and -0.5; each point's errors have sds
    Uniform(0.6, 1.2) per feature (heteroscedastic) and correlation Uniform(-0.4, 0.4)
    (0.2 in D = 3, so every error covariance stays positive definite).
    """
    rng = np.random.default_rng(seed)
    means = np.array([np.zeros(D), np.full(D, 6.0)])
    sds = np.array([[0.5, 0.7, 0.6][:D], [0.6, 0.4, 0.5][:D]])
    corr = np.array([np.full((D, D), 0.6), np.full((D, D), -0.5 if D == 2 else -0.3)])
    for c in corr:
        np.fill_diagonal(c, 1.0)
    cov = sds[:, :, None] * corr * sds[:, None, :]
    labels = rng.choice(2, size=n, p=[0.55, 0.45])
    true = means[labels] + np.einsum("nij,nj->ni", np.linalg.cholesky(cov)[labels],
                                     rng.standard_normal((n, D)))
    e = rng.uniform(0.6, 1.2, size=(n, D))
    r = rng.uniform(-0.4, 0.4, size=n) if D == 2 else rng.uniform(-0.2, 0.2, size=n)
    R = np.where(np.eye(D, dtype=bool), 1.0, r[:, None, None])
    S = e[:, :, None] * R * e[:, None, :]
    X = true + np.einsum("nij,nj->ni", np.linalg.cholesky(S), rng.standard_normal((n, D)))
    return X, S, {"weights": np.array([0.55, 0.45]), "means": means, "sds": sds,
                  "correlations": corr}


def _fit(X, S, seed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bayesgmm.fit(X, 2, X_err=S, random_seed=seed, chains=2, draws=500, tune=500,
                            progressbar=False, **kw)


def _matched(dt, truth_means):
    """The posterior's component order matched to the truth's by the nearest mean."""
    m = dt["posterior"]["means"].mean(("chain", "draw")).values
    order = [int(np.argmin(np.linalg.norm(m - t, axis=1))) for t in truth_means]
    assert sorted(order) == [0, 1]
    return order


def _draws(dt, name, order):
    v = dt["posterior"][name].values
    return v.reshape(-1, *v.shape[2:])[:, order]


@pytest.mark.parametrize("D", [2, 3])
def test_deconvolved_intervals_contain_the_truth_and_ignoring_errors_overstates(D):
    X, S, truth = _xd_data(D, 400, seed=20 + D)
    dt = _fit(X, S, seed=1)
    order = _matched(dt, truth["means"])
    iu = np.triu_indices(D, 1)
    checks = []  # (name, lower, truth, upper) of every intrinsic sd and correlation
    sd = _draws(dt, "sds", order)
    lo, hi = np.quantile(sd, [LO, HI], axis=0)
    checks += [("sd", a, b, c) for a, b, c in zip(lo.ravel(), truth["sds"].ravel(),
                                                  hi.ravel(), strict=True)]
    corr = _draws(dt, "correlations", order)[:, :, iu[0], iu[1]]
    lo, hi = np.quantile(corr, [LO, HI], axis=0)
    t = truth["correlations"][:, iu[0], iu[1]]
    checks += [("corr", a, b, c) for a, b, c in zip(lo.ravel(), t.ravel(), hi.ravel(),
                                                    strict=True)]
    inside = [lo_ <= t_ <= hi_ for _, lo_, t_, hi_ in checks]
    # 8 (D = 2) or 12 (D = 3) intervals at 94%: all of them contain the truth with
    # probability only 0.61 or 0.48 for a calibrated posterior, so the test allows two
    # misses (probability 0.99 / 0.97 of passing) and asks that none misses by more than
    # its interval's width (a biased posterior would). The seed is fixed, so the outcome
    # is too: at D = 3 one component's sds 0.6 and 0.4 come out 1.8 and 2.0 posterior sd
    # high, where this data set's XD EM estimate (0.41, 0.20) is just as low
    assert sum(inside) >= len(checks) - 2, checks
    for name, lo_, t_, hi_ in checks:
        assert lo_ - (hi_ - lo_) <= t_ <= hi_ + (hi_ - lo_), (name, lo_, t_, hi_)

    # ignoring the errors (each larger than the intrinsic spread) widens every component:
    # every sd's interval lies above the truth
    naive = _fit(X, None, seed=1)
    sd0 = _draws(naive, "sds", _matched(naive, truth["means"]))
    assert np.all(np.quantile(sd0, LO, axis=0) > truth["sds"])
    # and the deconvolved sds are the smaller ones, by far (errors ~0.9 vs spread ~0.5)
    assert np.all(np.median(sd0, axis=0) > 1.5 * np.median(sd, axis=0))


def test_missing_values_agree_with_the_full_data_fit():
    rng = np.random.default_rng(7)
    X, _, truth = _xd_data(3, 500, seed=7)
    full = _fit(X, None, seed=3)
    holes = X.copy()
    gone = rng.random(X.shape) < 0.3
    gone[gone.all(axis=1), 0] = False  # keep one value in every row
    holes[gone] = np.nan
    assert 0.28 < np.isnan(holes).mean() < 0.32
    part = _fit(holes, None, seed=3)
    o_full, o_part = _matched(full, truth["means"]), _matched(part, truth["means"])
    z = []
    for name in ("weights", "means", "sds"):
        a, b = _draws(full, name, o_full), _draws(part, name, o_part)
        z.append((np.abs(a.mean(0) - b.mean(0)) / b.std(0)).ravel())
    z = np.concatenate(z)
    # 14 parameters. The difference of the two posterior means has sd about
    # sqrt(var_part - var_full), about 0.5-0.7 of the missing-data posterior's sd when
    # 30% of the information is gone, so each lies within 1 posterior sd with
    # probability ~0.9: ask for 80% within 1 sd and every one within 2 sd
    assert np.mean(z <= 1.0) >= 0.8, z
    assert np.all(z <= 2.0), z
