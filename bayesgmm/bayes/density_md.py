"""Fused, compiled log-density and gradient of the D-dimensional mixture (D >= 2).

Evaluates exactly the log-density of :func:`bayesgmm.bayes.model_md.build_model_md`
(priors, PyMC's transforms and their log-Jacobians, and the likelihood with labels
marginalised, per-point error covariances and missing values) and its gradient, in
one pass over the points. Nothing of size (n, K, D, D) or (n, K) is stored.
``tests/bayes/test_density_md.py`` checks it against the PyMC model's
``compile_logp``/``compile_dlogp`` to 1e-10.

Two versions of the likelihood pass, one density: :func:`logp_and_grad` takes the
data as they are and goes one point at a time (a d x d Cholesky factor per point and
component, d the point's observed features): the readable one. The sampler's,
:func:`logp_and_grad_packed`, takes the data grouped by pattern of observed features
(:func:`prepare`, once per fit) and, for d <= 3, goes through blocks of points one
component at a time with C^-1 and det C from the adjugate, in loops LLVM vectorises
(several times faster); patterns of d > 3 features go one point at a time. They are
checked against each other to 1e-12. The adjugate is used only where C is a sum of
a covariance and an error covariance, i.e. positive definite; a C near singularity
(a correlation within ~1e-6 of +-1 and no error) loses digits in det C that a
Cholesky factor would keep, a tail the priors (LKJ, eta = 2) keep the sampler away
from.

Unconstrained vector ``theta`` (PyMC's value variables, in ``model.value_vars`` order,
each raveled in C order; M = D(D - 1)/2):

- ``weights_simplex__`` (K - 1): w = softmax([y, -sum(y)]);
- ``means_std`` (K, D): the standardized means, no transform;
- ``sds_std_log__`` (K, D): sd = exp(rho);
- ``corr_chol_cholesky_corr__`` (K, M): PyMC's ``CholeskyCorrTransform`` (TFP's
  correlation-Cholesky bijector): the strictly lower entries x of a unit-diagonal
  lower-triangular matrix, filled in TFP's "spiral" order (:func:`spiral_index`),
  each row then divided by its Euclidean norm, so L_ab = x_ab / r_a, L_aa = 1 / r_a,
  r_a = sqrt(1 + sum_b x_ab^2); log-Jacobian sum_a (a + 2) log L_aa (a from 0).

The likelihood, point i with observed features O_i and component k:
log w_k + log N(z_{i,O} | mu_{k,O}, Sigma_{k,OO} + S_{i,OO}), Sigma_k = A_k A_k^T,
A_k = diag(sd_k) L_k (so A_k is Sigma_k's Cholesky factor). The gradient:
d/dC log N = (alpha alpha^T - C^-1) / 2 with alpha = C^-1 r, summed over points with
the responsibilities into one (D, D) matrix G_k per component, then
dF/dA_k = 2 G_k A_k and on to sd_k and L_k. In :func:`logp_and_grad` a point with
every feature observed and no error takes a cheaper route: whitened residuals
y = A_k^-1 r, accumulating sum resp y and sum resp y y^T, whose gradient is
A_k^-T (sum resp y y^T - N_k I).

Data (standardized): ``z`` (n, D) (a missing entry: any finite value, never read),
``observed`` (n, D) uint8, ``err_cov`` (n, D, D) error covariances (ignored unless
``has_err``). ``log_scale_total`` = sum_i sum_{j in O_i} log scale_j turns the
likelihood of ``z`` into that of the data (PyMC's model includes it; the sampler's
target passes 0 and leaves it out, as the 1-D target leaves out n log(scale)).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .._numerics.fastmath import _exp, _log

__all__ = ["logp_and_grad", "logp_and_grad_packed", "n_dim", "pack", "prepare", "spiral_index",
           "unpack"]

# error_model="numpy": a weight that underflows gives inf/NaN (a divergence to the
# sampler), never a Python exception inside nutpie's callback
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}
_LOG2PI = math.log(2.0 * math.pi)


def n_dim(K: int, D: int) -> int:
    """The flat size: K - 1 + 2 K D + K D (D - 1) / 2."""
    return K - 1 + 2 * K * D + K * (D * (D - 1) // 2)


@njit(**_OPTS)
def spiral_index(D):
    """(D, D) int array: the position in a component's M-vector of L's entry (a, b), a > b.

    -1 on and above the diagonal. PyMC's ``_fill_triangular_spiral`` with
    ``upper=False, unit_diag=True``: the (D-1) x (D-1) lower triangle is the first
    (D-1)^2 entries of concat(x[D-1:], reversed(x)) in row-major order; it becomes
    rows 1..D-1, columns 0..D-2 of L.
    """
    n = D - 1
    M = D * (D - 1) // 2
    xc = np.empty(n * n, dtype=np.int64)
    for t in range(M - n):
        xc[t] = n + t
    for t in range(M):
        xc[M - n + t] = M - 1 - t
    idx = np.full((D, D), -1, dtype=np.int64)
    for a in range(1, D):
        for b in range(a):
            idx[a, b] = xc[(a - 1) * n + b]
    return idx


@njit(**_OPTS)
def _simplex(y, K):
    zv = np.empty(K)
    s = 0.0
    for j in range(K - 1):
        zv[j] = y[j]
        s += y[j]
    zv[K - 1] = -s
    m = zv.max()
    w = np.exp(zv - m)
    return w / w.sum()


@njit(**_OPTS)
def unpack(theta, K, D):
    """(w (K,), mu (K, D), sd (K, D), L (K, D, D)) from the unconstrained vector.

    ``L[k]`` is the Cholesky factor of component k's correlation matrix.
    """
    M = D * (D - 1) // 2
    w = _simplex(theta[: K - 1], K)
    o = K - 1
    mu = theta[o : o + K * D].copy().reshape((K, D))
    o += K * D
    sd = np.exp(theta[o : o + K * D]).reshape((K, D))
    o += K * D
    idx = spiral_index(D)
    L = np.zeros((K, D, D))
    for k in range(K):
        for a in range(D):
            ss = 1.0
            for b in range(a):
                x = theta[o + k * M + idx[a, b]]
                ss += x * x
            r = math.sqrt(ss)
            for b in range(a):
                L[k, a, b] = theta[o + k * M + idx[a, b]] / r
            L[k, a, a] = 1.0 / r
    return w, mu, sd, L


def pack(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """The unconstrained vector of (w, mu, sd, correlation matrices): :func:`unpack`'s inverse.

    Parameters
    ----------
    w : ndarray of shape (K,)
        Positive weights summing to 1.
    mu, sd : ndarray of shape (K, D)
        Standardized means and (positive) sds.
    corr : ndarray of shape (K, D, D)
        Positive definite correlation matrices (or their lower Cholesky factors'
        products: only the Cholesky factor is used).

    Returns
    -------
    ndarray of shape (K - 1 + 2 K D + K D (D - 1) / 2,)
    """
    w = np.asarray(w, dtype=float)
    mu = np.asarray(mu, dtype=float)
    sd = np.asarray(sd, dtype=float)
    K, D = mu.shape
    lw = np.log(w)
    y = lw[:-1] - lw.mean()
    L = np.linalg.cholesky(np.asarray(corr, dtype=float))
    idx = spiral_index(D)
    M = D * (D - 1) // 2
    x = np.zeros((K, M))
    for a in range(1, D):
        for b in range(a):
            x[:, idx[a, b]] = L[:, a, b] / L[:, a, a]
    return np.concatenate([y, mu.ravel(), np.log(sd).ravel(), x.ravel()])


@njit(**_OPTS)
def _lkj_log_norm(eta, D):
    """PyMC's ``_lkj_normalizing_constant(eta, D)`` (added once per component)."""
    out = (D - 1) * math.lgamma(eta + 0.5 * (D - 1))
    for k in range(1, D):
        out -= 0.5 * k * math.log(math.pi) + math.lgamma(eta + 0.5 * (D - 1 - k))
    return out


@njit(**_OPTS)
def _factors(sd, L):
    """A_k = diag(sd_k) L_k (Sigma_k's Cholesky factor), its inverse, Sigma_k, log|A_k|."""
    K, D = sd.shape
    A = np.empty((K, D, D))
    Ainv = np.zeros((K, D, D))
    Sig = np.empty((K, D, D))
    logdetA = np.zeros(K)
    for k in range(K):
        for a in range(D):
            for b in range(D):
                A[k, a, b] = sd[k, a] * L[k, a, b]
            logdetA[k] += math.log(A[k, a, a])
        for a in range(D):
            for b in range(D):
                s = 0.0
                for c in range(min(a, b) + 1):
                    s += A[k, a, c] * A[k, b, c]
                Sig[k, a, b] = s
        for c in range(D):  # forward substitution, one column of the identity at a time
            for a in range(c, D):
                s = 1.0 if a == c else 0.0
                for b in range(c, a):
                    s -= A[k, a, b] * Ainv[k, b, c]
                Ainv[k, a, c] = s / A[k, a, a]
    return A, Ainv, Sig, logdetA


@njit(**_OPTS)
def _loglik(z, observed, err_cov, has_err, logw, mu, A, Ainv, Sig, logdetA):
    """sum_i log p(z_i) and its statistics: (total, Nk, Nfast, Sy, Syy, G, gmu).

    Points with every feature and no error go the whitened route (Sy, Syy, Nfast);
    the others the general route (G = d total / d Sigma_k from them, gmu = d total /
    d mu_k from them). Nk: each component's total responsibility.
    """
    K = logw.shape[0]
    n, D = z.shape
    Nk = np.zeros(K)
    Nfast = np.zeros(K)
    Sy = np.zeros((K, D))
    Syy = np.zeros((K, D, D))  # lower triangle
    G = np.zeros((K, D, D))
    gmu = np.zeros((K, D))
    lc = np.empty(K)
    Y = np.empty((K, D))
    AL = np.empty((K, D))
    CI = np.empty((K, D, D))  # lower triangle of each C^-1
    C = np.empty((D, D))
    Li = np.empty((D, D))
    r = np.empty(D)
    idx = np.empty(D, dtype=np.int64)
    half_d_log2pi = 0.5 * D * _LOG2PI
    total = 0.0
    for i in range(n):
        d = 0
        for j in range(D):
            if observed[i, j]:
                idx[d] = j
                d += 1
        if d == D and not has_err:
            for k in range(K):
                q = 0.0
                for a in range(D):
                    s = 0.0
                    for b in range(a + 1):
                        s += Ainv[k, a, b] * (z[i, b] - mu[k, b])
                    Y[k, a] = s
                    q += s * s
                lc[k] = logw[k] - half_d_log2pi - logdetA[k] - 0.5 * q
            m = lc.max()
            ssum = 0.0
            for k in range(K):
                lc[k] = math.exp(lc[k] - m)
                ssum += lc[k]
            total += m + math.log(ssum)
            for k in range(K):
                p = lc[k] / ssum
                Nk[k] += p
                Nfast[k] += p
                for a in range(D):
                    pa = p * Y[k, a]
                    Sy[k, a] += pa
                    for b in range(a + 1):
                        Syy[k, a, b] += pa * Y[k, b]
            continue
        # general route: C = Sigma_k[O, O] + S_i[O, O]; written out for d <= 3 (the
        # adjugate: C is positive definite, a sum of a covariance and an error
        # covariance), a Cholesky factor in place above
        half_log2pi_d = 0.5 * d * _LOG2PI
        if d == 3:
            j0, j1, j2 = idx[0], idx[1], idx[2]
            e00 = e10 = e11 = e20 = e21 = e22 = 0.0
            if has_err:
                e00, e10, e11 = err_cov[i, j0, j0], err_cov[i, j1, j0], err_cov[i, j1, j1]
                e20, e21, e22 = err_cov[i, j2, j0], err_cov[i, j2, j1], err_cov[i, j2, j2]
            z0, z1, z2 = z[i, j0], z[i, j1], z[i, j2]
            for k in range(K):
                c00 = Sig[k, j0, j0] + e00
                c10 = Sig[k, j1, j0] + e10
                c11 = Sig[k, j1, j1] + e11
                c20 = Sig[k, j2, j0] + e20
                c21 = Sig[k, j2, j1] + e21
                c22 = Sig[k, j2, j2] + e22
                a00 = c11 * c22 - c21 * c21
                a10 = c20 * c21 - c10 * c22
                a20 = c10 * c21 - c20 * c11
                a11 = c00 * c22 - c20 * c20
                a21 = c10 * c20 - c00 * c21
                a22 = c00 * c11 - c10 * c10
                det = c00 * a00 + c10 * a10 + c20 * a20
                inv = 1.0 / det
                r0, r1, r2 = z0 - mu[k, j0], z1 - mu[k, j1], z2 - mu[k, j2]
                al0 = (a00 * r0 + a10 * r1 + a20 * r2) * inv
                al1 = (a10 * r0 + a11 * r1 + a21 * r2) * inv
                al2 = (a20 * r0 + a21 * r1 + a22 * r2) * inv
                AL[k, 0], AL[k, 1], AL[k, 2] = al0, al1, al2
                CI[k, 0, 0], CI[k, 1, 0], CI[k, 1, 1] = a00 * inv, a10 * inv, a11 * inv
                CI[k, 2, 0], CI[k, 2, 1], CI[k, 2, 2] = a20 * inv, a21 * inv, a22 * inv
                q = r0 * al0 + r1 * al1 + r2 * al2
                lc[k] = logw[k] - half_log2pi_d - 0.5 * math.log(det) - 0.5 * q
        elif d == 2:
            j0, j1 = idx[0], idx[1]
            e00 = e10 = e11 = 0.0
            if has_err:
                e00, e10, e11 = err_cov[i, j0, j0], err_cov[i, j1, j0], err_cov[i, j1, j1]
            z0, z1 = z[i, j0], z[i, j1]
            for k in range(K):
                c00 = Sig[k, j0, j0] + e00
                c10 = Sig[k, j1, j0] + e10
                c11 = Sig[k, j1, j1] + e11
                det = c00 * c11 - c10 * c10
                inv = 1.0 / det
                r0, r1 = z0 - mu[k, j0], z1 - mu[k, j1]
                al0 = (c11 * r0 - c10 * r1) * inv
                al1 = (c00 * r1 - c10 * r0) * inv
                AL[k, 0], AL[k, 1] = al0, al1
                CI[k, 0, 0], CI[k, 1, 0], CI[k, 1, 1] = c11 * inv, -c10 * inv, c00 * inv
                q = r0 * al0 + r1 * al1
                lc[k] = logw[k] - half_log2pi_d - 0.5 * math.log(det) - 0.5 * q
        elif d == 1:
            j0 = idx[0]
            e00 = err_cov[i, j0, j0] if has_err else 0.0
            for k in range(K):
                inv = 1.0 / (Sig[k, j0, j0] + e00)
                r0 = z[i, j0] - mu[k, j0]
                al0 = r0 * inv
                AL[k, 0] = al0
                CI[k, 0, 0] = inv
                lc[k] = logw[k] - half_log2pi_d + 0.5 * math.log(inv) - 0.5 * r0 * al0
        else:
            for k in range(K):
                for a in range(d):
                    ja = idx[a]
                    r[a] = z[i, ja] - mu[k, ja]
                    for b in range(a + 1):
                        jb = idx[b]
                        v = Sig[k, ja, jb]
                        if has_err:
                            v += err_cov[i, ja, jb]
                        C[a, b] = v
                logdet = 0.0
                for a in range(d):
                    for b in range(a + 1):
                        s = C[a, b]
                        for c in range(b):
                            s -= C[a, c] * C[b, c]
                        if a == b:
                            s = math.sqrt(s)
                            logdet += math.log(s)
                            C[a, a] = s
                        else:
                            C[a, b] = s / C[b, b]
                q = 0.0
                for a in range(d):  # y = chol^-1 r
                    s = r[a]
                    for b in range(a):
                        s -= C[a, b] * Y[k, b]
                    s /= C[a, a]
                    Y[k, a] = s
                    q += s * s
                for a in range(d - 1, -1, -1):  # alpha = chol^-T y = C^-1 r
                    s = Y[k, a]
                    for b in range(a + 1, d):
                        s -= C[b, a] * AL[k, b]
                    AL[k, a] = s / C[a, a]
                for c in range(d):  # Li = chol^-1
                    for a in range(c, d):
                        s = 1.0 if a == c else 0.0
                        for b in range(c, a):
                            s -= C[a, b] * Li[b, c]
                        Li[a, c] = s / C[a, a]
                for a in range(d):  # C^-1 = Li^T Li, lower triangle
                    for b in range(a + 1):
                        s = 0.0
                        for c in range(a, d):
                            s += Li[c, a] * Li[c, b]
                        CI[k, a, b] = s
                lc[k] = logw[k] - half_log2pi_d - logdet - 0.5 * q
        m = lc.max()
        ssum = 0.0
        for k in range(K):
            lc[k] = math.exp(lc[k] - m)
            ssum += lc[k]
        total += m + math.log(ssum)
        for k in range(K):
            p = lc[k] / ssum
            Nk[k] += p
            for a in range(d):
                ja = idx[a]
                pa = p * AL[k, a]
                gmu[k, ja] += pa
                for b in range(a + 1):
                    jb = idx[b]
                    g = 0.5 * (pa * AL[k, b] - p * CI[k, a, b])
                    G[k, ja, jb] += g
                    if a != b:
                        G[k, jb, ja] += g
    return total, Nk, Nfast, Sy, Syy, G, gmu


@njit(**_OPTS)
def logp_and_grad(theta, z, observed, err_cov, has_err, weights_alpha, means_mu,
                  means_sigma, sigmas_sigma, corr_eta, log_scale_total):
    """Log-density (Jacobians included) and its gradient with respect to ``theta``.

    See the module docstring for the coordinates and the data. ``log_scale_total`` is
    subtracted from the log-density (0: the likelihood of the standardized data). One
    point at a time: the readable version, which :func:`logp_and_grad_packed` (the
    sampler's, on :func:`prepare`'s layout) is checked against.
    """
    K = weights_alpha.shape[0]
    D = z.shape[1]
    w, mu, sd, L = unpack(theta, K, D)
    logw = np.log(w)
    A, Ainv, Sig, logdetA = _factors(sd, L)
    total, Nk, Nfast, Sy, Syy, G, gmu = _loglik(z, observed, err_cov, has_err, logw, mu,
                                                A, Ainv, Sig, logdetA)
    return _finish(theta, w, logw, mu, sd, L, A, Ainv, total - log_scale_total, Nk, Nfast,
                   Sy, Syy, G, gmu, weights_alpha, means_mu, means_sigma, sigmas_sigma,
                   corr_eta)


@njit(**_OPTS)
def logp_and_grad_packed(theta, pat_start, pat_d, pat_cols, zc, ec, has_err, weights_alpha,
                         means_mu, means_sigma, sigmas_sigma, corr_eta, log_scale_total):
    """:func:`logp_and_grad` on the data as :func:`prepare` lays them out (the fast one).

    Points grouped by their observed features; a pattern of d <= 3 features goes in
    blocks of points, one component at a time, in loops LLVM vectorises.
    """
    K = weights_alpha.shape[0]
    D = pat_cols.shape[1]
    w, mu, sd, L = unpack(theta, K, D)
    logw = np.log(w)
    A, Ainv, Sig, logdetA = _factors(sd, L)
    total, Nk, G, gmu = _loglik_packed(pat_start, pat_d, pat_cols, zc, ec, has_err, logw,
                                       mu, Sig)
    zero = np.zeros((K, D))
    return _finish(theta, w, logw, mu, sd, L, A, Ainv, total - log_scale_total, Nk,
                   np.zeros(K), zero, np.zeros((K, D, D)), G, gmu, weights_alpha, means_mu,
                   means_sigma, sigmas_sigma, corr_eta)


@njit(**_OPTS)
def _finish(theta, w, logw, mu, sd, L, A, Ainv, logp, Nk, Nfast, Sy, Syy, G, gmu,
            weights_alpha, means_mu, means_sigma, sigmas_sigma, corr_eta):
    """The likelihood's statistics to the gradient in theta; priors and log-Jacobians added."""
    K, D = mu.shape
    M = D * (D - 1) // 2
    # ---- to (mu, A): dF/dA_k = 2 G_k A_k + A_k^-T (Syy_k - Nfast_k I) (lower triangle:
    # A is lower triangular, and A^-T's lower triangle is its diagonal 1 / A_aa);
    # dF/dmu_k += A_k^-T Sy_k
    dsd = np.zeros((K, D))
    dL = np.zeros((K, D, D))
    for k in range(K):
        for a in range(D):
            s = 0.0
            for c in range(a, D):
                s += Ainv[k, c, a] * Sy[k, c]
            gmu[k, a] += s
        for a in range(D):
            for b in range(a + 1):
                s = 0.0
                for c in range(b, D):
                    s += 2.0 * G[k, a, c] * A[k, c, b]
                for c in range(a, D):
                    y = Syy[k, c, b] if c >= b else Syy[k, b, c]
                    s += Ainv[k, c, a] * y
                if a == b:
                    s -= Nfast[k] / A[k, a, a]
                # A = diag(sd) L
                dL[k, a, b] = sd[k, a] * s
                dsd[k, a] += s * L[k, a, b]

    # ---- priors: Dirichlet(w), Normal(mu), HalfNormal(sd), LKJ(L)
    u = Nk.copy()  # d logp / d log w_k
    tot_a = 0.0
    for k in range(K):
        tot_a += weights_alpha[k]
        logp -= math.lgamma(weights_alpha[k])
        if weights_alpha[k] != 1.0:
            logp += (weights_alpha[k] - 1.0) * logw[k]
            u[k] += weights_alpha[k] - 1.0
    logp += math.lgamma(tot_a)
    for k in range(K):
        for j in range(D):
            dd = (mu[k, j] - means_mu[k, j]) / means_sigma[k, j]
            logp += -0.5 * _LOG2PI - math.log(means_sigma[k, j]) - 0.5 * dd * dd
            gmu[k, j] -= dd / means_sigma[k, j]
            qq = sd[k, j] / sigmas_sigma[k, j]
            logp += 0.5 * math.log(2.0 / math.pi) - math.log(sigmas_sigma[k, j]) - 0.5 * qq * qq
            dsd[k, j] -= qq / sigmas_sigma[k, j]
    # LKJ: norm + sum_a (2 eta - 2 + D - (a + 1)) log L_aa; the transform's log-Jacobian
    # sum_a (a + 2) log L_aa (a from 0) joins it
    logp += K * _lkj_log_norm(corr_eta, D)
    for k in range(K):
        for a in range(1, D):
            coef = 2.0 * corr_eta - 2.0 + D - (a + 1) + (a + 2)
            logp += coef * math.log(L[k, a, a])
            dL[k, a, a] += coef / L[k, a, a]

    grad = np.empty(theta.shape[0])
    # ---- simplex: w = softmax([y, -sum y]); log|J| = log K + K (sum y + log w_K)
    ysum = 0.0
    for j in range(K - 1):
        ysum += theta[j]
    logp += math.log(K) + K * (ysum + logw[K - 1])
    usum = 0.0
    for k in range(K):
        usum += u[k]
    for j in range(K - 1):
        grad[j] = u[j] - u[K - 1] - (w[j] - w[K - 1]) * usum + K * (w[K - 1] - w[j])
    o = K - 1
    for k in range(K):
        for j in range(D):
            grad[o + k * D + j] = gmu[k, j]
    o += K * D
    # ---- log: sd = exp(rho); log|J| = sum rho
    for k in range(K):
        for j in range(D):
            logp += theta[o + k * D + j]
            grad[o + k * D + j] = dsd[k, j] * sd[k, j] + 1.0
    o += K * D
    # ---- Cholesky-correlation: L_ab = x_ab L_aa, L_aa = (1 + sum_b x_ab^2)^-1/2, so
    # dF/dx_ab = (dF/dL_ab - L_ab sum_c dF/dL_ac L_ac) L_aa
    idx = spiral_index(D)
    for k in range(K):
        for a in range(1, D):
            s = 0.0
            for c in range(a + 1):
                s += dL[k, a, c] * L[k, a, c]
            for b in range(a):
                grad[o + k * M + idx[a, b]] = (dL[k, a, b] - L[k, a, b] * s) * L[k, a, a]
    return logp, grad


# --------------------------------------------------------------------------- packed
#
# The sampler's layout (prepare): points sorted by their pattern of observed features,
# each pattern's points contiguous; zc[a, i] the point's a-th observed value and
# ec[tri(a, b), i] its error covariance between its a-th and b-th observed features
# (tri(a, b) = a (a + 1) / 2 + b, b <= a). A pattern of d <= 3 features goes in blocks
# of _B points, component by component: per lane (point of the block) the terms of
# each component (W), then the log-sum-exp over components, then the responsibilities
# times the statistics summed per lane (ACC) and reduced at the pattern's end. No
# reassociation is needed to vectorise, so results do not depend on vector width.

_B = 64
# the statistics per lane: 0 the log-term (then its exp), 1..3 alpha = C^-1 r,
# 4..9 the lower triangle of C^-1 (tri order)
_NW = 10


def prepare(z: np.ndarray, observed: np.ndarray, err_cov: np.ndarray, has_err: bool
            ) -> tuple[np.ndarray, ...]:
    """The data in :func:`logp_and_grad_packed`'s layout.

    Parameters
    ----------
    z : ndarray of shape (n, D)
        Standardized data (entries where ``observed`` is 0 are never read).
    observed : ndarray of shape (n, D)
        Nonzero where a value is observed; every row has one.
    err_cov : ndarray of shape (n, D, D)
        Standardized error covariances (read only where ``has_err``).
    has_err : bool

    Returns
    -------
    tuple
        ``pat_start`` (P + 1,), ``pat_d`` (P,), ``pat_cols`` (P, D) (the pattern's
        observed features first), ``zc`` (D, n), ``ec`` (D (D + 1) / 2, n), or
        (D (D + 1) / 2, 1) zeros without errors. The points' order is irrelevant to
        the density (a sum over points).
    """
    z = np.asarray(z, dtype=float)
    obs = np.asarray(observed).astype(bool)
    n, D = z.shape
    pats, inverse = np.unique(obs, axis=0, return_inverse=True)
    inverse = np.ravel(inverse)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=pats.shape[0])
    pat_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    P = pats.shape[0]
    pat_d = pats.sum(axis=1).astype(np.int64)
    pat_cols = np.zeros((P, D), dtype=np.int64)
    T = D * (D + 1) // 2
    zc = np.zeros((D, n))
    ec = np.zeros((T, n if has_err else 1))
    for p in range(P):
        cols = np.flatnonzero(pats[p])
        pat_cols[p, : cols.size] = cols
        rows = order[pat_start[p] : pat_start[p + 1]]
        sl = slice(pat_start[p], pat_start[p + 1])
        for a, ja in enumerate(cols):
            zc[a, sl] = z[rows, ja]
            if has_err:
                for b in range(a + 1):
                    ec[a * (a + 1) // 2 + b, sl] = err_cov[rows, ja, cols[b]]
    return pat_start, pat_d, pat_cols, zc, ec


_VOPTS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}


@njit(**_VOPTS)
def _terms3(z0, z1, z2, e0, e1, e2, e3, e4, e5, c00, c10, c11, c20, c21, c22, m0, m1, m2,
            lw, Wk):
    """Component k's terms for a block of a 3-feature pattern (adjugate of C)."""
    w0, w1, w2, w3, w4 = Wk[0], Wk[1], Wk[2], Wk[3], Wk[4]
    w5, w6, w7, w8, w9 = Wk[5], Wk[6], Wk[7], Wk[8], Wk[9]
    for b in range(z0.shape[0]):
        x00 = c00 + e0[b]
        x10 = c10 + e1[b]
        x11 = c11 + e2[b]
        x20 = c20 + e3[b]
        x21 = c21 + e4[b]
        x22 = c22 + e5[b]
        a00 = x11 * x22 - x21 * x21
        a10 = x20 * x21 - x10 * x22
        a20 = x10 * x21 - x20 * x11
        a11 = x00 * x22 - x20 * x20
        a21 = x10 * x20 - x00 * x21
        a22 = x00 * x11 - x10 * x10
        det = x00 * a00 + x10 * a10 + x20 * a20
        inv = 1.0 / det
        r0 = z0[b] - m0
        r1 = z1[b] - m1
        r2 = z2[b] - m2
        al0 = (a00 * r0 + a10 * r1 + a20 * r2) * inv
        al1 = (a10 * r0 + a11 * r1 + a21 * r2) * inv
        al2 = (a20 * r0 + a21 * r1 + a22 * r2) * inv
        w0[b] = lw - 0.5 * (_log(det) + r0 * al0 + r1 * al1 + r2 * al2)
        w1[b] = al0
        w2[b] = al1
        w3[b] = al2
        w4[b] = a00 * inv
        w5[b] = a10 * inv
        w6[b] = a11 * inv
        w7[b] = a20 * inv
        w8[b] = a21 * inv
        w9[b] = a22 * inv


@njit(**_VOPTS)
def _terms2(z0, z1, e0, e1, e2, c00, c10, c11, m0, m1, lw, Wk):
    """Component k's terms for a block of a 2-feature pattern."""
    w0, w1, w2, w4, w5, w6 = Wk[0], Wk[1], Wk[2], Wk[4], Wk[5], Wk[6]
    for b in range(z0.shape[0]):
        x00 = c00 + e0[b]
        x10 = c10 + e1[b]
        x11 = c11 + e2[b]
        det = x00 * x11 - x10 * x10
        inv = 1.0 / det
        r0 = z0[b] - m0
        r1 = z1[b] - m1
        al0 = (x11 * r0 - x10 * r1) * inv
        al1 = (x00 * r1 - x10 * r0) * inv
        w0[b] = lw - 0.5 * (_log(det) + r0 * al0 + r1 * al1)
        w1[b] = al0
        w2[b] = al1
        w4[b] = x11 * inv
        w5[b] = -x10 * inv
        w6[b] = x00 * inv


@njit(**_VOPTS)
def _terms1(z0, e0, c00, m0, lw, Wk):
    """Component k's terms for a block of a 1-feature pattern."""
    w0, w1, w4 = Wk[0], Wk[1], Wk[4]
    for b in range(z0.shape[0]):
        x00 = c00 + e0[b]
        inv = 1.0 / x00
        r0 = z0[b] - m0
        al0 = r0 * inv
        w0[b] = lw - 0.5 * (_log(x00) + r0 * al0)
        w1[b] = al0
        w4[b] = inv


@njit(**_VOPTS)
def _combine(W, K, nb, nq, MX, SS, TL, ACC):
    """Log-sum-exp over components per lane; responsibilities times the statistics."""
    for b in range(nb):
        MX[b] = W[0, 0, b]
    for k in range(1, K):
        for b in range(nb):
            MX[b] = max(MX[b], W[k, 0, b])
    for b in range(nb):
        SS[b] = 0.0
    for k in range(K):
        for b in range(nb):
            e = _exp(W[k, 0, b] - MX[b])
            W[k, 0, b] = e
            SS[b] += e
    for b in range(nb):
        TL[b] += MX[b] + _log(SS[b])
        SS[b] = 1.0 / SS[b]
    for k in range(K):
        for b in range(nb):
            p = W[k, 0, b] * SS[b]
            ACC[k, 0, b] += p
            W[k, 0, b] = p
        for q in range(1, nq):  # p alpha_a
            for b in range(nb):
                ACC[k, q, b] += W[k, 0, b] * W[k, q, b]


@njit(**_VOPTS)
def _combine_cov(W, K, nb, d, ACC):
    """ACC's C^-1 part: p (alpha_a alpha_b - C^-1_ab) / 2, lower triangle (tri order)."""
    for k in range(K):
        t = 4
        for a in range(d):
            for c in range(a + 1):
                for b in range(nb):
                    p = W[k, 0, b]
                    ACC[k, t, b] += 0.5 * p * (W[k, 1 + a, b] * W[k, 1 + c, b] - W[k, t, b])
                t += 1


@njit(**_OPTS)
def _loglik_packed(pat_start, pat_d, pat_cols, zc, ec, has_err, logw, mu, Sig):
    """sum_i log p(z_i), N_k, d/dSigma_k and d/dmu_k on :func:`prepare`'s layout."""
    K = logw.shape[0]
    D = mu.shape[1]
    P = pat_d.shape[0]
    Nk = np.zeros(K)
    G = np.zeros((K, D, D))
    gmu = np.zeros((K, D))
    W = np.empty((K, _NW, _B))
    ACC = np.zeros((K, _NW, _B))
    MX = np.empty(_B)
    SS = np.empty(_B)
    TL = np.zeros(_B)
    ZE = np.zeros((6, _B))
    total = 0.0
    for p in range(P):
        d = pat_d[p]
        cols = pat_cols[p]
        i0, i1 = pat_start[p], pat_start[p + 1]
        if d > 3:
            total += _generic_points(i0, i1, d, cols, zc, ec, has_err, logw, mu, Sig, Nk, G,
                                     gmu)
            continue
        half = 0.5 * d * _LOG2PI
        ACC[:] = 0.0
        for s in range(i0, i1, _B):
            e = min(s + _B, i1)
            nb = e - s
            # error covariances (zeros without errors), one contiguous row each
            E = ec if has_err else ZE
            o = s if has_err else 0
            for k in range(K):
                lw = logw[k] - half
                if d == 3:
                    j0, j1, j2 = cols[0], cols[1], cols[2]
                    _terms3(zc[0, s:e], zc[1, s:e], zc[2, s:e], E[0, o:o + nb],
                            E[1, o:o + nb], E[2, o:o + nb], E[3, o:o + nb], E[4, o:o + nb],
                            E[5, o:o + nb], Sig[k, j0, j0], Sig[k, j1, j0], Sig[k, j1, j1],
                            Sig[k, j2, j0], Sig[k, j2, j1], Sig[k, j2, j2], mu[k, j0],
                            mu[k, j1], mu[k, j2], lw, W[k])
                elif d == 2:
                    j0, j1 = cols[0], cols[1]
                    _terms2(zc[0, s:e], zc[1, s:e], E[0, o:o + nb], E[1, o:o + nb],
                            E[2, o:o + nb], Sig[k, j0, j0], Sig[k, j1, j0], Sig[k, j1, j1],
                            mu[k, j0], mu[k, j1], lw, W[k])
                else:
                    _terms1(zc[0, s:e], E[0, o:o + nb], Sig[k, cols[0], cols[0]],
                            mu[k, cols[0]], lw, W[k])
            _combine(W, K, nb, 1 + d, MX, SS, TL, ACC)
            _combine_cov(W, K, nb, d, ACC)
        for k in range(K):
            s0 = 0.0
            for b in range(_B):
                s0 += ACC[k, 0, b]
            Nk[k] += s0
            for a in range(d):
                s0 = 0.0
                for b in range(_B):
                    s0 += ACC[k, 1 + a, b]
                gmu[k, cols[a]] += s0
            t = 4
            for a in range(d):
                for c in range(a + 1):
                    s0 = 0.0
                    for b in range(_B):
                        s0 += ACC[k, t, b]
                    G[k, cols[a], cols[c]] += s0
                    if a != c:
                        G[k, cols[c], cols[a]] += s0
                    t += 1
    for b in range(_B):
        total += TL[b]
    return total, Nk, G, gmu


@njit(**_OPTS)
def _generic_points(i0, i1, d, cols, zc, ec, has_err, logw, mu, Sig, Nk, G, gmu):
    """Points i0..i1 - 1 of a pattern of d > 3 features, one at a time (Cholesky)."""
    K = logw.shape[0]
    lc = np.empty(K)
    Y = np.empty((K, d))
    AL = np.empty((K, d))
    CI = np.empty((K, d, d))
    C = np.empty((d, d))
    Li = np.empty((d, d))
    r = np.empty(d)
    half = 0.5 * d * _LOG2PI
    total = 0.0
    for i in range(i0, i1):
        for k in range(K):
            for a in range(d):
                ja = cols[a]
                r[a] = zc[a, i] - mu[k, ja]
                for b in range(a + 1):
                    v = Sig[k, ja, cols[b]]
                    if has_err:
                        v += ec[a * (a + 1) // 2 + b, i]
                    C[a, b] = v
            logdet = 0.0
            for a in range(d):
                for b in range(a + 1):
                    s = C[a, b]
                    for c in range(b):
                        s -= C[a, c] * C[b, c]
                    if a == b:
                        s = math.sqrt(s)
                        logdet += math.log(s)
                        C[a, a] = s
                    else:
                        C[a, b] = s / C[b, b]
            q = 0.0
            for a in range(d):
                s = r[a]
                for b in range(a):
                    s -= C[a, b] * Y[k, b]
                s /= C[a, a]
                Y[k, a] = s
                q += s * s
            for a in range(d - 1, -1, -1):
                s = Y[k, a]
                for b in range(a + 1, d):
                    s -= C[b, a] * AL[k, b]
                AL[k, a] = s / C[a, a]
            for c in range(d):
                for a in range(c, d):
                    s = 1.0 if a == c else 0.0
                    for b in range(c, a):
                        s -= C[a, b] * Li[b, c]
                    Li[a, c] = s / C[a, a]
            for a in range(d):
                for b in range(a + 1):
                    s = 0.0
                    for c in range(a, d):
                        s += Li[c, a] * Li[c, b]
                    CI[k, a, b] = s
            lc[k] = logw[k] - half - logdet - 0.5 * q
        m = lc.max()
        ssum = 0.0
        for k in range(K):
            lc[k] = math.exp(lc[k] - m)
            ssum += lc[k]
        total += m + math.log(ssum)
        for k in range(K):
            p = lc[k] / ssum
            Nk[k] += p
            for a in range(d):
                ja = cols[a]
                pa = p * AL[k, a]
                gmu[k, ja] += pa
                for b in range(a + 1):
                    jb = cols[b]
                    g = 0.5 * (pa * AL[k, b] - p * CI[k, a, b])
                    G[k, ja, jb] += g
                    if a != b:
                        G[k, jb, ja] += g
    return total
