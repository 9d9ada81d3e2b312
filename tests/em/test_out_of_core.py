"""EM on Dask arrays (bayesgmm.em.out_of_core): the in-memory answer, block by block."""

import numpy as np
import pytest

from bayesgmm import GaussianMixtureEM
from bayesgmm.errors import DataError

da = pytest.importorskip("dask.array")

CHUNK = 3_000  # rows per block; 20,000 rows give 7 blocks, the last one shorter


def _data(d, seed=0, n=20_000):
    rng = np.random.default_rng(seed)
    lab = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    centres = np.array([[0.0, 0.0], [4.0, 2.0], [9.0, -1.0]])[:, :d]
    X = centres[lab] + rng.normal(0, 1, (n, d)) * np.array([1.0, 0.7])[:d]
    return (X[:, 0] if d == 1 else X), rng


def _dask(a):
    return None if a is None else da.from_array(a, chunks=(CHUNK,) + a.shape[1:])


@pytest.mark.parametrize(("d", "weights", "errors"), [
    (1, False, False), (1, True, False), (1, False, True), (2, False, False),
    (2, True, True)])
def test_from_the_same_start_the_same_fit(d, weights, errors):
    # The target: the log-likelihood to 1e-10 relative from the same start.
    # Every block goes through the in-memory kernels and the sums are added in block
    # order, so only the order of additions differs (observed: 0 to 2e-16).
    X, rng = _data(d)
    n = X.shape[0]
    w = rng.uniform(0.5, 2.0, n) if weights else None
    e = rng.uniform(0.1, 0.5, X.shape) if errors else None
    init = {"means": [[0.5, 0.5], [3.5, 1.5], [8.0, 0.0]]}
    init["means"] = np.asarray(init["means"])[:, :d]
    kw = {"init": init, "tol": 1e-8, "covariance_type": "full"}
    mem = GaussianMixtureEM(3, **kw).fit(X, X_err=e, sample_weight=w)
    out = GaussianMixtureEM(3, **kw).fit(_dask(X), X_err=_dask(e),
                                         sample_weight=_dask(w))
    assert out.loglik_ == pytest.approx(mem.loglik_, rel=1e-10)
    assert out.n_iter_ == mem.n_iter_ and out.converged_
    assert out.n_passes_ == out.n_iter_  # one pass over the blocks per iteration
    np.testing.assert_allclose(out.means_, mem.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.covariances_, mem.covariances_, rtol=1e-9)
    np.testing.assert_allclose(out.weights_, mem.weights_, rtol=1e-9)
    assert out.has_errors_ == errors and out.n_features_in_ == d


def test_tied_and_spherical_covariances_too():
    X, _ = _data(2)
    init = {"means": [[0.5, 0.5], [3.5, 1.5], [8.0, 0.0]]}
    for cov in ("tied", "spherical", "diag"):
        kw = {"init": init, "tol": 1e-8, "covariance_type": cov}
        mem = GaussianMixtureEM(3, **kw).fit(X)
        out = GaussianMixtureEM(3, **kw).fit(_dask(X))
        assert out.loglik_ == pytest.approx(mem.loglik_, rel=1e-10), cov
    assert out.n_passes_ == out.n_iter_
    out.fit(X)  # refitted in memory: no pass count of the Dask fit left behind
    assert not hasattr(out, "n_passes_")


def test_starts_from_a_sample_and_reaches_the_in_memory_maximum(monkeypatch):
    # Without a given start, the starts and the search run in memory on a random sample
    # of the rows (2,000 of 20,000 here, so the sample is not the data), then EM runs on
    # all blocks to tol. Well-separated clusters: one maximum, which both fits reach
    # (1e-8 relative at tol=1e-10; observed ~1e-12).
    from bayesgmm.em import out_of_core

    monkeypatch.setattr(out_of_core, "SAMPLE_SIZE", 2_000)
    drawn = []
    original = out_of_core.sample_rows

    def recording(n, size, rng):
        idx = original(n, size, rng)
        drawn.append(idx.size)
        return idx

    monkeypatch.setattr(out_of_core, "sample_rows", recording)
    X, _ = _data(2)
    mem = GaussianMixtureEM(3, tol=1e-10, random_seed=1).fit(X)
    out = GaussianMixtureEM(3, tol=1e-10, random_seed=1).fit(_dask(X))
    assert drawn == [2_000]
    assert out.loglik_ == pytest.approx(mem.loglik_, rel=1e-8)
    order = np.argsort(out.means_[:, 0])
    np.testing.assert_allclose(out.means_[order], mem.means_[np.argsort(mem.means_[:, 0])],
                               atol=1e-5)


def test_no_block_is_larger_than_its_chunk(monkeypatch):
    # never the whole array: every pass hands the kernels one block at a time
    from bayesgmm.em import out_of_core

    seen = []
    original = out_of_core._block_sums

    def recording(xb, wb, eb, *args):
        seen.append(xb.shape[0])
        return original(xb, wb, eb, *args)

    monkeypatch.setattr(out_of_core, "_block_sums", recording)
    X, _ = _data(1)
    GaussianMixtureEM(3, init={"means": [[0.0], [4.0], [9.0]]}).fit(_dask(X))
    assert seen and max(seen) <= CHUNK
    assert sum(seen) % X.shape[0] == 0  # whole passes over all the rows


def test_standardization_from_blocks_survives_a_large_offset():
    # per-block moments merged by Chan et al.'s rule: an offset of 1e9 costs nothing
    from bayesgmm.em.out_of_core import moments

    X, rng = _data(2)
    w = rng.uniform(0.5, 2.0, X.shape[0])
    mom = moments(_dask(X + 1e9), _dask(w))
    ref_loc = np.average(X, axis=0, weights=w) + 1e9
    ref_scale = np.sqrt(np.average((X - np.average(X, axis=0, weights=w)) ** 2, axis=0,
                                   weights=w))
    np.testing.assert_allclose(mom.loc, ref_loc, rtol=1e-15)
    np.testing.assert_allclose(mom.scale, ref_scale, rtol=1e-6)  # float64: 1e9 + x to 1e-7
    assert mom.W == pytest.approx(w.sum()) and mom.n_inf == mom.n_nan == mom.n_empty == 0
    np.testing.assert_allclose(mom.observed, w.sum(), rtol=1e-13)


def _with_missing(X, rng, frac=0.1):
    """X with a fraction of its entries NaN, never a whole row; and the mask."""
    nan = rng.random(X.shape) < frac
    nan[nan.all(axis=1), 0] = False
    # a feature missing over a whole block: that block's moments must leave it alone
    nan[CHUNK:2 * CHUNK, 1] = True
    nan[CHUNK:2 * CHUNK, 0] = False
    Xm = X.copy()
    Xm[nan] = np.nan
    return Xm, nan


def test_missing_values_moments_are_the_observed_values_ones():
    # each feature's weighted mean and sd over the rows that observe it, as in memory
    # (nan_standardizer), a block that never observes feature 1 included
    from bayesgmm.em.missing import nan_standardizer
    from bayesgmm.em.out_of_core import moments

    X, rng = _data(2)
    Xm, nan = _with_missing(X, rng)
    w = rng.uniform(0.5, 2.0, X.shape[0])
    mom = moments(_dask(Xm), _dask(w))
    loc, scale = nan_standardizer(Xm, w)
    np.testing.assert_allclose(mom.loc, loc, rtol=1e-13)
    np.testing.assert_allclose(mom.scale, scale, rtol=1e-13)
    np.testing.assert_allclose(mom.observed, (w[:, None] * ~nan).sum(axis=0), rtol=1e-13)
    assert mom.n_nan == nan.sum() and mom.n_empty == 0 and mom.W == pytest.approx(w.sum())


@pytest.mark.parametrize(("weights", "errors", "cov"), [
    (False, False, "full"), (True, True, "full"), (False, True, "diag")])
def test_missing_values_give_the_in_memory_fit(weights, errors, cov):
    # Missing values (NaN in 2-D) marginalised block by block: the same log-likelihood
    # as in memory from the same start, to the 1e-10 relative. The incomplete
    # rows are grouped by pattern within each block instead of over all rows, so only
    # the order of additions differs (observed: ~1e-15).
    X, rng = _data(2)
    Xm, nan = _with_missing(X, rng)
    n = X.shape[0]
    w = rng.uniform(0.5, 2.0, n) if weights else None
    e = rng.uniform(0.1, 0.5, X.shape) if errors else None
    if errors:
        e[nan] = np.nan  # a missing feature's error is ignored, NaN included
    init = {"means": [[0.5, 0.5], [3.5, 1.5], [8.0, 0.0]]}
    kw = {"init": init, "tol": 1e-8, "covariance_type": cov}
    mem = GaussianMixtureEM(3, **kw).fit(Xm, X_err=e, sample_weight=w)
    out = GaussianMixtureEM(3, **kw).fit(_dask(Xm), X_err=_dask(e), sample_weight=_dask(w))
    assert out.loglik_ == pytest.approx(mem.loglik_, rel=1e-10)
    assert out.n_iter_ == mem.n_iter_ and out.converged_
    np.testing.assert_allclose(out.means_, mem.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.covariances_, mem.covariances_, rtol=1e-9)
    # the predictions of points with missing features, lazily, as in memory
    np.testing.assert_allclose(out.score_samples(_dask(Xm), X_err=_dask(e)).compute(),
                               mem.score_samples(Xm, X_err=e), rtol=1e-8)
    # and the BIC counts the same parameters from the same n
    assert out.bic(_dask(Xm), X_err=_dask(e)) == pytest.approx(mem.bic(Xm, X_err=e),
                                                                rel=1e-10)


def test_missing_values_without_a_start_reach_the_in_memory_maximum():
    # no init: the starts run in memory on the sample (all 20,000 rows here, below
    # SAMPLE_SIZE), NaN included, then EM on the blocks; one well-separated maximum
    X, rng = _data(2)
    Xm, _ = _with_missing(X, rng)
    mem = GaussianMixtureEM(3, tol=1e-10, random_seed=1).fit(Xm)
    out = GaussianMixtureEM(3, tol=1e-10, random_seed=1).fit(_dask(Xm))
    assert out.loglik_ == pytest.approx(mem.loglik_, rel=1e-8)


def test_fixed_parameters_hold_out_of_core():
    # a fixed weight and a fixed mean: held in every M-step on all the blocks, given
    # back exactly, the free ones the in-memory constrained maximum (1e-10 from the
    # same start); and the fixed mean is not the one EM would choose (it moves 0.5)
    X, _ = _data(2)
    init = {"means": [[0.5, 0.5], [3.5, 1.5], [8.0, 0.0]]}
    fixed = {"weights": {0: 0.4}, "means": {2: [9.5, -1.0]}}
    kw = {"init": init, "tol": 1e-8, "fixed": fixed}
    mem = GaussianMixtureEM(3, **kw).fit(X)
    out = GaussianMixtureEM(3, **kw).fit(_dask(X))
    free = GaussianMixtureEM(3, init=init, tol=1e-8).fit(_dask(X))
    assert out.weights_[0] == 0.4 and np.array_equal(out.means_[2], [9.5, -1.0])
    assert out.loglik_ == pytest.approx(mem.loglik_, rel=1e-10)
    np.testing.assert_allclose(out.means_, mem.means_, rtol=1e-9)
    np.testing.assert_allclose(out.weights_, mem.weights_, rtol=1e-9)
    assert free.loglik_ > out.loglik_ + 1.0  # the constraint costs likelihood
    assert abs(free.means_[2, 0] - 9.5) > 0.3
    # the BIC counts the fixed parameters out, as in memory
    assert out.bic(_dask(X)) == pytest.approx(mem.bic(X), rel=1e-10)
    # without a start: the sample's fit holds them too
    auto = GaussianMixtureEM(3, fixed=fixed, random_seed=0).fit(_dask(X))
    assert auto.weights_[0] == 0.4 and np.array_equal(auto.means_[2], [9.5, -1.0])
    assert auto.loglik_ == pytest.approx(mem.loglik_, rel=1e-8)


def test_predictions_are_lazy_dask_arrays():
    X, rng = _data(2)
    e = rng.uniform(0.1, 0.5, X.shape)
    m = GaussianMixtureEM(3, random_seed=0).fit(X[:5000])
    Xd, ed = _dask(X), _dask(e)
    for method in ("score_samples", "predict_proba", "predict"):
        lazy = getattr(m, method)(Xd, X_err=ed)
        assert hasattr(lazy, "dask"), method
        np.testing.assert_allclose(lazy.compute(), getattr(m, method)(X, X_err=e),
                                   rtol=1e-13, atol=1e-300)
    mu, cov = m.deconvolve(Xd, X_err=ed)
    ref_mu, ref_cov = m.deconvolve(X, X_err=e)
    assert mu.shape == ref_mu.shape and cov.shape == ref_cov.shape
    np.testing.assert_allclose(mu.compute(), ref_mu, rtol=1e-13)
    np.testing.assert_allclose(cov.compute(), ref_cov, rtol=1e-13)


def test_bad_dask_input_is_named():
    X, _ = _data(2)
    bad = X.copy()
    bad[7, 1] = np.inf
    with pytest.raises(DataError, match="1 infinite value"):
        GaussianMixtureEM(2).fit(_dask(bad))
    bad[7, :] = np.nan
    with pytest.raises(DataError, match="1 row.s. with every feature missing"):
        GaussianMixtureEM(2).fit(_dask(bad))
    bad = X.copy()
    bad[:, 1] = np.nan
    with pytest.raises(DataError, match="feature 1 of X has no observed value"):
        GaussianMixtureEM(2).fit(_dask(bad))
    one = X[:, 0].copy()
    one[3] = np.nan
    with pytest.raises(DataError, match="1 NaN value.*one feature"):
        GaussianMixtureEM(2).fit(_dask(one))
    with pytest.raises(DataError, match="rows but X has"):
        GaussianMixtureEM(2).fit(_dask(X), sample_weight=_dask(np.ones(10)))
    with pytest.raises(DataError, match="fixed"):  # parsed as in memory
        GaussianMixtureEM(2, fixed={"weights": {5: 0.5}}).fit(_dask(X))
    with pytest.raises(DataError, match="constant"):
        GaussianMixtureEM(2).fit(_dask(np.column_stack([X[:, 0], np.ones(len(X))])))


@pytest.mark.slow
def test_on_a_distributed_cluster_of_processes():
    # a LocalCluster of two worker processes: blocks are fitted where they live and only
    # the sums travel; the answer is the in-memory one (from the same start, 1e-10)
    distributed = pytest.importorskip("distributed")
    X, rng = _data(2)
    e = rng.uniform(0.1, 0.5, X.shape)
    init = {"means": [[0.5, 0.5], [3.5, 1.5], [8.0, 0.0]]}
    mem = GaussianMixtureEM(3, init=init, tol=1e-8).fit(X, X_err=e)
    # the threaded scheduler first: it compiles the kernels' serial twins the blocks use
    # into the on-disk cache, which the workers then load instead of compiling each
    threads = GaussianMixtureEM(3, init=init, tol=1e-8).fit(_dask(X), X_err=_dask(e))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        out = GaussianMixtureEM(3, init=init, tol=1e-8).fit(_dask(X), X_err=_dask(e))
        proba = out.predict_proba(_dask(X), X_err=_dask(e)).compute()
    assert out.loglik_ == pytest.approx(mem.loglik_, rel=1e-10)
    assert out.loglik_ == threads.loglik_  # the same sums in the same order
    np.testing.assert_allclose(proba, mem.predict_proba(X, X_err=e), rtol=1e-8, atol=1e-12)
