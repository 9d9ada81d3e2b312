"""The blocked multi-D EM and XD kernels against a direct NumPy/SciPy reference.

The kernels fuse the E-step with the M-step's sums and run them over blocks of points
with small matrices factored for all the block's points at once; the reference does the
same algebra one point at a time with SciPy's densities and NumPy's solves. Tolerances are
relative 1e-9: both are exact computations in float64 that differ only in summation order
and in the kernels' polynomial exp/log (~2 ulp).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.em import kernels as kern


def _problem(rng, n, d, k, *, errors):
    X = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    w = rng.uniform(0.5, 2.0, n)
    weights = rng.dirichlet(np.full(k, 3.0))
    mu = X[rng.choice(n, k, replace=False)]
    A = rng.normal(size=(k, d, d))
    V = A @ np.swapaxes(A, 1, 2) / d + 0.2 * np.eye(d)
    S = None
    if errors:
        G = rng.normal(size=(n, d, d)) * 0.4
        S = G @ np.swapaxes(G, 1, 2) / d
        S[::7] = 0.0  # exact points among noisy ones
    return X, w, np.log(weights), mu, V, S


def _reference(X, w, logpi, mu, V, S):
    """Log-likelihood and the XD sufficient statistics, point by point."""
    n, d = X.shape
    k = mu.shape[0]
    S = np.zeros((n, d, d)) if S is None else S
    lp = np.array([[logpi[j] + multivariate_normal(mu[j], V[j] + S[i]).logpdf(X[i])
                    for j in range(k)] for i in range(n)])
    tot = logsumexp(lp, axis=1)
    r = np.exp(lp - tot[:, None]) * w[:, None]
    nk = r.sum(0)
    s1 = np.zeros((k, d))
    s2 = np.zeros((k, d, d))
    for i in range(n):
        for j in range(k):
            T = V[j] + S[i]
            db = V[j] @ np.linalg.solve(T, X[i] - mu[j])  # b_ij - mu_j
            B = V[j] - V[j] @ np.linalg.solve(T, V[j])
            s1[j] += r[i, j] * db
            s2[j] += r[i, j] * (np.outer(db, db) + B)
    return float(w @ tot), nk, s1, s2


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


# n = 260 spans three blocks of 128, the last one partial; D = 2, 3 and 4 run the
# written-out LDL^T kernel (_xd_small_chunk), D = 5 and 10 the general one; D = 10 takes
# the determinant as a sum of logs in the exponent (D <= 8 as a product of inverse pivots)
@pytest.mark.parametrize("d", [2, 3, 4, 5, 10])
@pytest.mark.parametrize("parallel", [False, True])
def test_xd_full_matches_reference(rng, d, parallel):
    X, w, logpi, mu, V, S = _problem(rng, 260, d, 3, errors=True)
    f = (kern._PAR if parallel else kern._SER)["xd_full"]
    chunks = 3 if parallel else 1
    ll, nk, s1, s2, ok = f(*kern.pack(X, S), w, logpi, mu, V, chunks)
    ll_ref, nk_ref, s1_ref, s2_ref = _reference(X, w, logpi, mu, V, S)
    assert ok
    assert ll == pytest.approx(ll_ref, rel=1e-11)
    _close(nk, nk_ref)
    _close(s1, s1_ref)
    _close(s2, s2_ref)


@pytest.mark.parametrize("d", [2, 5])
@pytest.mark.parametrize("parallel", [False, True])
def test_em_full_matches_reference(rng, d, parallel):
    X, w, logpi, mu, V, _ = _problem(rng, 260, d, 4, errors=False)
    chol = np.linalg.cholesky(V)
    linv = np.linalg.inv(chol)
    half_logdet = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    f = (kern._PAR if parallel else kern._SER)["em_full"]
    ll, nk, s1, s2 = f(kern.pack(X)[0], w, logpi, mu, linv, half_logdet, 3 if parallel else 1)
    ll_ref, nk_ref, s1_ref, s2_ref = _reference(X, w, logpi, mu, V, None)
    assert ll == pytest.approx(ll_ref, rel=1e-11)
    _close(nk, nk_ref)
    _close(s1, s1_ref)
    _close(s2, s2_ref)


def test_xd_full_flags_a_covariance_that_is_not_positive_definite(rng):
    X, w, logpi, mu, V, S = _problem(rng, 200, 3, 2, errors=True)
    V[1] = np.diag([1.0, 1.0, -0.5])  # V_1 + S_i is indefinite where S_i is 0 (every 7th)
    ll, nk, s1, s2, ok = kern._SER["xd_full"](*kern.pack(X, S), w, logpi, mu, V, 1)
    assert not ok
    # V_0 is fine: with component 1 unusable the pass still finishes without raising
    assert np.isfinite(nk[0])


def test_xd_full_component_with_no_weight_adds_nothing(rng):
    X, w, logpi, mu, V, S = _problem(rng, 200, 3, 3, errors=True)
    logpi[2] = -np.inf  # weight 0: responsibilities exactly 0
    ll, nk, s1, s2, ok = kern._SER["xd_full"](*kern.pack(X, S), w, logpi, mu, V, 1)
    assert ok
    assert nk[2] == 0.0
    assert not s1[2].any() and not s2[2].any()
    ll_ref, nk_ref, s1_ref, s2_ref = _reference(X, w, logpi, mu, V, S)
    assert ll == pytest.approx(ll_ref, rel=1e-11)
    _close(s2[:2], s2_ref[:2])


@pytest.mark.parametrize("ctype", [0, 1, 2])  # full, diag, spherical
def test_mstep_md_matches_the_formulas(rng, ctype):
    K, D, W, reg, eps = 4, 3, 100.0, 1e-6, 1e-15
    means = rng.normal(size=(K, D))
    covs = np.stack([np.eye(D) * (k + 1) for k in range(K)])
    nk = np.array([40.0, 59.0, 1e-12, 1.0])  # component 2: no weight
    s1 = rng.normal(size=(K, D))
    A = rng.normal(size=(K, D, D))
    s2 = A @ np.swapaxes(A, 1, 2) * nk[:, None, None] + np.einsum("ka,kb->kab", s1, s1) / nk[
        :, None, None]
    s2[3] = -np.eye(D)  # component 3: a covariance that is not positive definite
    w_, m_, c_, raw = kern.mstep_md(means, covs, nk, s1, s2, W, reg, ctype, eps)
    for k in (0, 1):
        delta = s1[k] / nk[k]
        c = s2[k] / nk[k] - np.outer(delta, delta)
        if ctype == 0:
            lo = np.linalg.eigvalsh(c)[0]
        elif ctype == 1:
            lo = np.diag(c).min()
            c = np.diag(np.diag(c))
        else:
            lo = np.diag(c).mean()
            c = lo * np.eye(D)
        np.testing.assert_allclose(m_[k], means[k] + delta, rtol=1e-12)
        np.testing.assert_allclose(c_[k], c + reg * np.eye(D), rtol=1e-10, atol=1e-12)
        assert raw[k] == pytest.approx(lo, rel=1e-10)
    # no weight: keeps mean and covariance, +inf; not positive definite: keeps its
    # covariance, -inf
    np.testing.assert_array_equal(m_[2], means[2])
    np.testing.assert_array_equal(c_[2], covs[2])
    assert raw[2] == np.inf
    np.testing.assert_array_equal(c_[3], covs[3])
    assert raw[3] == -np.inf
    want = np.maximum(nk, eps * W) / W
    np.testing.assert_allclose(w_, want / want.sum(), rtol=1e-14)
