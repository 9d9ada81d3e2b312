"""The D-dimensional Bayesian mixture as an ordinary PyMC model (D >= 2). Builds; never samples.

The reference for D dimensions: full covariances with an LKJ prior on each component's
correlations, per-point error covariances (extreme deconvolution) and missing values
marginalised exactly. :func:`bayesgmm.build_model` sends data with two or more columns
here; 1-D data keep the 1-D model of ``bayes/model.py``. ``fit`` samples the same
density through the fused one of ``bayes/density_md.py`` (checked against this model's
log-density and gradient in the tests), and this model itself with ``sampler="pymc"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._numerics.standardize import _is_constant
from ..errors import DataError
from ..validation import _check_k, check_md
from .priors import Priors

__all__ = ["build_model_md", "missing_patterns", "standardizer_md"]


def missing_patterns(observed: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group points by which features they hold.

    Parameters
    ----------
    observed : ndarray of bool, shape (n_samples, n_features)

    Returns
    -------
    list of (rows, cols)
        One entry per distinct pattern, in order of first appearance: the points that
        have it and the features they hold (integer arrays).
    """
    _, first, inverse = np.unique(observed, axis=0, return_index=True, return_inverse=True)
    inverse = np.ravel(inverse)
    order = np.argsort(first, kind="stable")
    return [(np.flatnonzero(inverse == p), np.flatnonzero(observed[first[p]]))
            for p in order]



def standardizer_md(x: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and sd over its observed values; a constant feature is refused.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        NaN where a value is missing.
    observed : ndarray of bool, shape (n_samples, n_features)

    Returns
    -------
    loc, scale : ndarray of shape (n_features,)

    Raises
    ------
    DataError
        A feature whose observed values are all equal.
    """
    loc = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    constant = _is_constant(loc, scale)
    if np.any(constant):
        j = int(np.flatnonzero(constant)[0])
        raise DataError(
            f"feature {j} of X is constant (every observed value equals "
            f"{float(x[observed[:, j], j][0])!r}); a mixture needs spread in every feature: "
            "drop that column."
        )
    return loc, scale

def _feature_names(X: Any, d: int) -> np.ndarray:
    columns = getattr(X, "columns", None)
    if columns is not None and len(columns) == d:
        return np.array([str(c) for c in columns])
    return np.arange(d)


def build_model_md(
    X: Any,
    n_components: int,
    *,
    X_err: Any = None,
    priors: Priors | dict | None = None,
) -> Any:
    r"""Build the D-dimensional Bayesian Gaussian mixture (D >= 2) as a PyMC model.

    Called by :func:`bayesgmm.build_model` for data with two or more columns. The
    generative model, for points i = 1..n, components k = 1..K and features j = 1..D,
    with each feature standardized inside (:math:`z_{ij} = (x_{ij} - \text{loc}_j) /
    \text{scale}_j`, loc and scale the feature's mean and standard deviation over its
    observed values; :math:`A = \text{diag}(\text{scale})`, :math:`\tilde S_i =
    A^{-1} S_i A^{-1}`):

    .. math::

        w &\sim \text{Dirichlet}(\alpha) \\
        \tilde\mu_{kj} &\sim \text{Normal}(m_{kj}, s_{kj})
            \quad (\tilde\mu_k \sim \text{MvNormal}(m_k, \text{diag}(s_k^2))) \\
        \tilde\sigma_{kj} &\sim \text{HalfNormal}(t_{kj}) \\
        L_k &\sim \text{LKJCholesky}(\eta), \quad C_k = L_k L_k^T
            \sim \text{LKJ}(\eta) \\
        \tilde\Sigma_k &= \text{diag}(\tilde\sigma_k)\, C_k\, \text{diag}(\tilde\sigma_k) \\
        c_i &\sim \text{Categorical}(w) \quad \text{(marginalised, never sampled)} \\
        z_{i,O_i} \mid c_i = k &\sim \text{MvNormal}\big(\tilde\mu_{k,O_i},
            \tilde\Sigma_{k,O_iO_i} + \tilde S_{i,O_iO_i}\big)

    where :math:`O_i` are the features point i holds (a missing value, NaN, is
    marginalised exactly: the Gaussian's marginal over the observed features), so that
    p(x_i) = sum_k w_k N(x_{i,O_i} | mu_{k,O_i}, Sigma_{k,O_iO_i} + S_{i,O_iO_i}) in data
    units, with ``means = loc + scale * means_std``, ``sds = scale * sds_std`` and
    ``covariances = diag(sds) C diag(sds)``. The covariances are intrinsic: the
    measurement errors S_i are deconvolved. Defaults: alpha = 1, m = 0, s = 3, t = 1,
    eta = 2 (in data units: means ~ Normal(mean_j, 3 sd_j), sds ~ HalfNormal(sd_j));
    change them with ``priors`` (:class:`Priors`, whose ``means_mu``, ``means_sigma``
    and ``sigmas_sigma`` may here also be given per feature).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NaN marks a missing value; a row with every value missing is refused. The
        columns of a DataFrame name the ``feature`` coordinate.
    n_components : int
    X_err : array-like, optional
        Per-point measurement errors: standard deviations of shape (n_samples,) or
        (n_samples, n_features) (diagonal S_i), or covariances of shape
        (n_samples, n_features, n_features). NaN is allowed where ``X`` misses a value.
    priors : Priors or dict, optional
        Hyperparameters in data units.

    Returns
    -------
    pymc.Model
        Coords ``component``, ``feature`` (the column names, else 0..D-1), ``feature_``
        (the same, the covariances' second axis) and ``obs``. Free variables
        ``weights`` (component), ``means_std`` and ``sds_std`` (component, feature),
        ``corr_chol`` (component, feature, feature_: the Cholesky factor of each
        correlation matrix); deterministics ``means``, ``sds`` (component, feature),
        ``correlations`` and ``covariances`` (component, feature, feature_), in data
        units; observed ``x`` (obs, feature), whose log-likelihood (one value per
        point, over its observed features) is in data units. Data containers
        ``x_data`` (missing values hold the feature's mean and are never read),
        ``x_err_cov`` (the error covariances in data units, present only with errors),
        ``loc``, ``scale`` and the standardized hyperparameters ``prior_weights_alpha``,
        ``prior_means_mu``, ``prior_means_sigma``, ``prior_sigmas_sigma``,
        ``prior_corr_eta``.

    Raises
    ------
    DataError
        Bad data or errors (see :func:`bayesgmm.validation.check_md`), a constant
        feature, a bad K or bad priors.

    Notes
    -----
    The likelihood is the readable reference: each missingness pattern's points get a
    batched Cholesky factor of Sigma_k + S_i (an (n, K, D, D) array with errors), fine
    for checking a faster density and for small data. The means are not ordered (no
    ordering identifies components in D dimensions); the prior is symmetric in the
    labels, so the posterior has K! copies of each mode. Prior and posterior predictive
    draws of ``x`` are complete (no missing values) and include the measurement errors.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import build_model
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (40, 2)), rng.normal(4, 1, (30, 2))])
    >>> X[3, 1] = np.nan
    >>> model = build_model(X, 2)
    >>> model.named_vars["covariances"].type.shape
    (2, 2, 2)
    """
    import pymc as pm
    import pytensor.tensor as pt

    x, cov, observed = check_md(X, X_err)
    n, D = x.shape
    K = _check_k(n_components, n)
    loc, scale = standardizer_md(x, observed)
    hyper = Priors.from_any(priors).standardized_md(K, loc, scale)
    patterns = missing_patterns(observed)
    names = _feature_names(X, D)
    coords = {"component": np.arange(K), "feature": names, "feature_": names,
              "obs": np.arange(n)}
    cov_dims = ("component", "feature", "feature_")
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", np.where(observed, x, loc), dims=("obs", "feature"))
        loc_d = pm.Data("loc", loc, dims="feature")
        scale_d = pm.Data("scale", scale, dims="feature")
        err = (None if cov is None
               else pm.Data("x_err_cov", cov, dims=("obs", "feature", "feature_")))
        dims = {"weights_alpha": "component", "corr_eta": None}
        prior = {name: pm.Data(f"prior_{name}", value,
                               dims=dims.get(name, ("component", "feature")))
                 for name, value in hyper.items()}

        weights = pm.Dirichlet("weights", a=prior["weights_alpha"], dims="component")
        means_std = pm.Normal("means_std", mu=prior["means_mu"], sigma=prior["means_sigma"],
                              dims=("component", "feature"))
        sds_std = pm.HalfNormal("sds_std", sigma=prior["sigmas_sigma"],
                                dims=("component", "feature"))
        # shape given as numbers: LKJCorr's random draw is a scan that must not see the
        # coords' shared lengths
        corr_chol = pm.LKJCorr("corr_chol", n=D, eta=prior["corr_eta"], shape=(K, D, D),
                               dims=cov_dims)
        corr = corr_chol @ pt.swapaxes(corr_chol, -1, -2)
        pm.Deterministic("means", loc_d + scale_d * means_std, dims=("component", "feature"))
        sds = pm.Deterministic("sds", scale_d * sds_std, dims=("component", "feature"))
        pm.Deterministic("correlations", corr, dims=cov_dims)
        pm.Deterministic("covariances", sds[:, :, None] * corr * sds[:, None, :],
                         dims=cov_dims)

        def core(*args):
            # PyTensor's RandomVariable gives the parameters leading axes of length 1 for
            # the batch (obs) axis; the ones shared by every point are taken back out
            ndims = (1, 2, 2, 3, 1, 1)  # w, mu, sd, chol, loc, scale
            return [a[(0,) * (a.ndim - k)] for a, k in zip(args, ndims, strict=True)]

        def logp(value, w, mu, sd, chol, *rest):
            *s_i, loc_, scale_ = rest
            w, mu, sd, chol, loc_, scale_ = core(w, mu, sd, chol, loc_, scale_)
            sigma = sd[:, :, None] * (chol @ pt.swapaxes(chol, -1, -2)) * sd[:, None, :]
            out = pt.zeros((value.shape[0],))
            for rows, cols in patterns:
                d = cols.size
                sc = scale_[cols]
                z = (value[rows][:, cols] - loc_[cols]) / sc
                c = sigma[:, cols][:, :, cols]  # (K, d, d)
                if s_i:
                    s = s_i[0][rows][:, cols][:, :, cols] / (sc[:, None] * sc[None, :])
                    c = c[None] + s[:, None]  # (n_p, K, d, d)
                L = pt.linalg.cholesky(c, lower=True, on_error="nan", check_finite=False)
                r = z[:, None, :] - mu[None][:, :, cols]  # (n_p, K, d)
                y = pt.linalg.solve_triangular(L, r, lower=True, b_ndim=1,
                                               check_finite=False)
                logdet = pt.sum(pt.log(pt.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
                comp = (pt.log(w) - 0.5 * d * np.log(2 * np.pi) - logdet
                        - 0.5 * pt.sum(y**2, axis=-1))
                out = pt.set_subtensor(out[rows], pt.logsumexp(comp, axis=1)
                                       - pt.sum(pt.log(sc)))
            return out

        def random(w, mu, sd, chol, *rest, rng=None, size=None):
            *s_i, loc_, scale_ = rest
            w, mu, sd, chol, loc_, scale_ = core(*(np.asarray(a) for a in
                                                  (w, mu, sd, chol, loc_, scale_)))
            rng = np.random.default_rng(rng)
            m = n if size is None else int(np.prod(size))
            w = np.asarray(w)
            lab = rng.choice(w.shape[0], size=m, p=w / w.sum())
            L = np.asarray(sd)[:, :, None] * np.asarray(chol)  # Cholesky of Sigma_k
            z = np.asarray(mu)[lab] + np.einsum("mij,mj->mi", L[lab],
                                                 rng.standard_normal((m, D)))
            out = np.asarray(loc_) + np.asarray(scale_) * z
            if s_i:
                vals, vecs = np.linalg.eigh(np.asarray(s_i[0])[:m])
                half = vecs * np.sqrt(np.maximum(vals, 0.0))[:, None, :]
                out = out + np.einsum("mij,mj->mi", half, rng.standard_normal((m, D)))
            return out.reshape((m, D) if size is None else (*size, D))

        params = [weights, means_std, sds_std, corr_chol, *([] if err is None else [err]),
                  loc_d, scale_d]
        signature = ("(k),(k,d),(k,d),(k,d,d)," + ("" if err is None else "(d,d),")
                     + "(d),(d)->(d)")
        pm.CustomDist("x", *params, logp=logp, random=random, observed=x_data,
                      signature=signature, dims=("obs", "feature"))
    return model
