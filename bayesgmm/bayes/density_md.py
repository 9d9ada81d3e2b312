"""Fused, compiled log-density and gradient of the D-dimensional mixture (D >= 2).

Evaluates exactly the log-density of :func:`bayesgmm.bayes.model_md.build_model_md`
(priors, PyMC's transforms and their log-Jacobians, and the likelihood with labels
marginalised, per-point error covariances and missing values) and its gradient, in
one pass over the points. Nothing of size (n, K, D, D) or (n, K) is stored: per point
and component a d x d Cholesky factor (d the point's observed features) in small
buffers. ``tests/bayes/test_density_md.py`` checks it against the PyMC model's
``compile_logp``/``compile_dlogp`` to 1e-10.

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
dF/dA_k = 2 G_k A_k and on to sd_k and L_k. A point with every feature observed and
no error takes the cheaper route: whitened residuals y = A_k^-1 r, accumulating
sum resp y and sum resp y y^T, whose gradient is A_k^-T (sum resp y y^T - N_k I).

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

__all__ = ["logp_and_grad", "n_dim", "pack", "spiral_index", "unpack"]

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
        # general route: C = Sigma_k[O, O] + S_i[O, O], factored in place
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
            lc[k] = logw[k] - 0.5 * d * _LOG2PI - logdet - 0.5 * q
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
    subtracted from the log-density (0: the likelihood of the standardized data).
    """
    K = weights_alpha.shape[0]
    D = z.shape[1]
    M = D * (D - 1) // 2
    w, mu, sd, L = unpack(theta, K, D)
    logw = np.log(w)
    A, Ainv, Sig, logdetA = _factors(sd, L)
    total, Nk, Nfast, Sy, Syy, G, gmu = _loglik(z, observed, err_cov, has_err, logw, mu,
                                                A, Ainv, Sig, logdetA)
    logp = total - log_scale_total

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
