"""The 1-D passes' chunks in threads (_numerics.threads.run_chunks): same sums, safe after fork."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bayesgmm._numerics import threads
from bayesgmm.em import kernels as kern


@pytest.fixture(autouse=True)
def _four_threads(monkeypatch):
    # the chunks on four threads at once, whatever NUMBA_NUM_THREADS says (the suite's
    # workers run with one: tests/conftest.py)
    with ThreadPoolExecutor(4, thread_name_prefix="test-kernels") as pool:
        monkeypatch.setattr(threads, "_POOL", (os.getpid(), pool))
        yield


def _args(n=50_001, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    e2 = rng.uniform(0.01, 0.2, n)
    w = rng.uniform(0.5, 2.0, n)
    logpi = np.log([0.2, 0.5, 0.3])
    return x, e2, w, logpi, np.array([-1.0, 0.0, 1.5]), np.array([0.5, 1.0, 0.3])


@pytest.mark.parametrize("chunks", [2, 7, 16])
def test_threaded_chunks_add_up_to_the_one_chunk_pass(chunks):
    # the same points split into chunks run on several threads at once: the log-likelihood
    # and the sums are the one-chunk pass's up to summation order (1e-12 relative: 50,001
    # terms of order 1 summed in a different order)
    x, e2, w, logpi, mu, var = _args()
    ll1, st1 = kern.em_1d(x, w, logpi, mu, var, 1, 0.0, 1.0)
    ll, st = kern.em_1d(x, w, logpi, mu, var, chunks, 0.0, 1.0)
    assert st.shape == (chunks, 3, 3)
    assert ll == pytest.approx(ll1, rel=1e-12)
    np.testing.assert_allclose(st.sum(axis=0), st1[0], rtol=1e-12)
    ll1, st1 = kern.xd_1d(x, e2, w, logpi, mu, var, 1, 0.0, 1.0, False)
    ll, st = kern.xd_1d(x, e2, w, logpi, mu, var, chunks, 0.0, 1.0, False)
    assert ll == pytest.approx(ll1, rel=1e-12)
    np.testing.assert_allclose(st.sum(axis=0), st1[0], rtol=1e-12)
    lp1 = kern.logprob_1d(x, e2, logpi, mu, var, 1)
    np.testing.assert_array_equal(kern.logprob_1d(x, e2, logpi, mu, var, chunks), lp1)
    # against NumPy: log(pi_k N(x | mu_k, var_k + e2))
    t = var + e2[:, None]
    ref = logpi - 0.5 * (np.log(2 * np.pi * t) + (x[:, None] - mu) ** 2 / t)
    np.testing.assert_allclose(lp1, ref, rtol=1e-13, atol=1e-13)


def _child_pass(queue):
    x, _, w, logpi, mu, var = _args(n=20_000)
    queue.put(kern.em_1d(x, w, logpi, mu, var, 4, 0.0, 1.0)[0])


# Python 3.12 warns on any fork of a process with threads: that is the case tested
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_its_own_threads():
    # a process forked after the pool's threads started has none of them: a pool kept
    # from the parent would never run the child's chunks (a hang); run_chunks makes a new
    # one in the child. 120 s: far beyond the child's pass, short of CI's limit.
    x, _, w, logpi, mu, var = _args(n=20_000)
    ll = kern.em_1d(x, w, logpi, mu, var, 4, 0.0, 1.0)[0]  # the parent's pool exists now
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_pass, args=(queue,))
    proc.start()
    try:
        got = queue.get(timeout=120)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    assert got == pytest.approx(ll, rel=1e-12)


@pytest.mark.parametrize("errors", [False, True])
def test_screening_driven_from_python_runs_the_compiled_runs(errors):
    # screen_runs_1d_py calls the same chunk kernel and M-step once per iteration from
    # Python: the same runs as screen_runs_1d's one compiled call (equal to the last bits
    # but for the total weight's summation order: 1e-12 relative), collapses included
    # (a collapse threshold of 0.15, in variance units, between the two components'
    # variances 0.25 and 0.49 and what three components make of them: some runs end
    # collapsed, 1-9 of 30 on this seed)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-1, 0.5, 1000), rng.normal(1, 0.7, 1000)])
    e2 = rng.uniform(0.01, 0.1, x.size) if errors else None
    w = rng.uniform(0.5, 1.5, x.size)
    means0 = rng.choice(x, (30, 3))
    args = (x, e2, w, means0, np.full(3, x.var()), 20, 1e-4, 1e-6, False, 1e-10, 0.15,
            True)
    a, b = kern.screen_runs_1d(*args), kern.screen_runs_1d_py(*args)
    np.testing.assert_array_equal(np.isfinite(a[0]), np.isfinite(b[0]))
    ok = np.isfinite(a[0])
    assert 20 <= ok.sum() < 30, ok.sum()
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u[ok], v[ok], rtol=1e-12, atol=1e-12)


def test_the_screen_takes_the_python_driven_runs_on_its_full_subsample(monkeypatch):
    # n >= SCREEN_N: the screen runs on SCREEN_N points, driven from Python (a cold first
    # fit compiles no screening loop); on fewer points, with more starts, in one compiled
    # call. Which one ran is recorded; the fit's result is the same kind either way.
    from bayesgmm import GaussianMixtureEM
    from bayesgmm.em import search

    called = []
    for name in ("screen_runs_1d", "screen_runs_1d_py"):
        real = getattr(kern, name)
        monkeypatch.setattr(kern, name, lambda *a, _r=real, _n=name: called.append(_n) or _r(*a))
    rng = np.random.default_rng(0)
    for n, want in ((search.SCREEN_N + 500, "screen_runs_1d_py"), (300, "screen_runs_1d")):
        called.clear()
        x = np.concatenate([rng.normal(0, 1, n // 2), rng.normal(5, 1, n - n // 2)])
        gm = GaussianMixtureEM(2, random_seed=0).fit(x)
        assert called == [want], (n, called)
        np.testing.assert_allclose(np.sort(gm.means_[:, 0]), [0, 5], atol=0.3)


def test_pointwise_loglik_draws_split_over_threads(monkeypatch):
    # the result's log_likelihood: draws split into four chunks on four threads give
    # the one-chunk rows exactly (each row is computed alone), and the rows are
    # log(sum_k w_k N(z | mu_k, sigma_k^2 + e2)) - log_scale (NumPy, 1e-12)
    import numba

    from bayesgmm.bayes.likelihood import pointwise_loglik

    rng = np.random.default_rng(3)
    z, e2 = rng.normal(size=3_001), rng.uniform(0.01, 0.2, 3_001)
    w = rng.dirichlet(np.ones(3), size=37)
    mu = np.sort(rng.normal(size=(37, 3)), axis=1)
    sg = rng.uniform(0.3, 1.5, size=(37, 3))
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)
    one = pointwise_loglik(z, e2, w, mu, sg, 0.7)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 4)
    four = pointwise_loglik(z, e2, w, mu, sg, 0.7)
    np.testing.assert_array_equal(four, one)
    t = sg[:, None, :] ** 2 + e2[None, :, None]
    dens = w[:, None, :] * np.exp(-0.5 * (z[None, :, None] - mu[:, None, :]) ** 2 / t) \
        / np.sqrt(2 * np.pi * t)
    np.testing.assert_allclose(one, np.log(dens.sum(axis=2)) - 0.7, rtol=1e-12)
