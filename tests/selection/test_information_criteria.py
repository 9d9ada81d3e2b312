"""BIC and AIC have one definition: the estimator's methods, select_n_components' table
and the ``bic`` that ``fit`` stores in ``em_estimate`` give the same numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesgmm
from bayesgmm import GaussianMixtureEM, select_n_components
from bayesgmm.bayes import inference
from bayesgmm.datasets import simulate

# loglik_ is summed inside the fitting kernel, bic(X) re-sums score_samples with NumPy:
# the two totals of ~500 terms agree to summation noise, far below 1e-10 relative.
RTOL = 1e-10


@pytest.mark.parametrize("weighted", [False, True])
def test_selection_table_equals_estimator_criteria(weighted):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, 250), rng.normal(5, 1.5, 250)])
    # integer weights, so that the weighted criterion is also that of repeated points
    w = rng.integers(1, 4, x.size).astype(float) if weighted else None
    res = select_n_components(x, [1, 2, 3], sample_weight=w, random_seed=0)
    for row in res.table.itertuples():
        gm = res.models[row.k]
        np.testing.assert_allclose(row.bic, gm.bic(x, sample_weight=w), rtol=RTOL)
        np.testing.assert_allclose(row.aic, gm.aic(x, sample_weight=w), rtol=RTOL)
    if weighted:
        # weights count points: the same as the data with each point repeated w_i times
        gm = res.models[2]
        rep = np.repeat(x, w.astype(int))
        np.testing.assert_allclose(gm.bic(x, sample_weight=w), gm.bic(rep), rtol=RTOL)
        np.testing.assert_allclose(gm.aic(x, sample_weight=w), gm.aic(rep), rtol=RTOL)


def test_em_estimate_bic_equals_estimator_bic(monkeypatch):
    from helpers import _fake_nutpie  # iid draws: no sampling

    sim = simulate(200, [0.4, 0.6], [50.0, 80.0], [5.0, 6.0], error_range=(2.0, 4.0),
                   random_seed=5)
    made = []

    class Recording(GaussianMixtureEM):
        def fit(self, *args, **kwargs):
            made.append(self)
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(inference, "_sample_nutpie", _fake_nutpie)
    monkeypatch.setattr(inference, "GaussianMixtureEM", Recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesgmm.SamplingWarning)
        dt = bayesgmm.fit(sim.x, 2, X_err=sim.x_err, draws=50, tune=10, chains=2,
                          progressbar=False, random_seed=1)
    assert len(made) == 1
    stored = float(dt["em_estimate"]["bic"])
    np.testing.assert_allclose(stored, made[0].bic(sim.x, X_err=sim.x_err), rtol=RTOL)


def test_loglik_never_falls_as_k_grows():
    # With one k-means start and no search, the K = 4 fit of this heavy-tailed sample
    # stops at -648.6, below the K = 3 fit's -616.0; and the K = 5 fit of a diagonal
    # model 0.007 below K = 4's. select_n_components grows the K fit from the K - 1 fit
    # (a split component) when it falls below, so its log-likelihood is non-decreasing,
    # and the grown fit is a real improvement here, not a tie (seeds fixed).
    import numpy as np

    from bayesgmm import GaussianMixtureEM, select_n_components

    kw = {"n_init": 1, "n_screen": 0, "split_merge": False}
    for ds, typ, k in ((22, "full", 4), (1, "diag", 5)):
        rng = np.random.default_rng(ds)
        X = np.concatenate([rng.standard_t(3, size=(150, 2)),
                            rng.normal(4, 0.3, size=(30, 2))])
        sel = select_n_components(X, range(1, 6), covariance_type=typ, random_seed=0,
                                  **kw)
        ll = sel.table["loglik"].to_numpy()
        assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))
        alone = GaussianMixtureEM(k, covariance_type=typ, **kw,
                                  random_seed=np.random.default_rng([0, k])).fit(X)
        assert alone.loglik_ < ll[k - 2]  # the case is one where the plain fit falls
        assert sel.models[k].loglik_ > ll[k - 2]
