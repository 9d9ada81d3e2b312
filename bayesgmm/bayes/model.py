"""The Bayesian mixture as an ordinary PyMC model. Builds; never samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._numerics.standardize import standardizer
from ..errors import DataError
from ..validation import _check_k, check_1d
from .priors import Priors, resolve

__all__ = ["build_model"]


def build_model(
    X: Any,
    n_components: int,
    *,
    X_err: Any = None,
    priors: Priors | dict | None = None,
    fused: bool = False,
) -> Any:
    r"""Build the Bayesian Gaussian mixture as a PyMC model (it is not sampled here).

    The generative model, for points i = 1..n and components k = 1..K, with the data
    standardized inside (:math:`z_i = (x_i - \text{loc}) / \text{scale}`, loc and scale
    the data's mean and standard deviation, :math:`\epsilon_i = e_i / \text{scale}`):

    .. math::

        w &\sim \text{Dirichlet}(\alpha) \\
        \tilde\mu_k &\sim \text{Normal}(m_k, s_k), \quad \tilde\mu_1 < \dots < \tilde\mu_K \\
        \tilde\sigma_k &\sim \text{HalfNormal}(t_k) \\
        c_i &\sim \text{Categorical}(w) \quad \text{(marginalised, never sampled)} \\
        z_i \mid c_i = k &\sim \text{Normal}\big(\tilde\mu_k,
            \sqrt{\tilde\sigma_k^2 + \epsilon_i^2}\big)

    so that p(x_i) = sum_k w_k N(x_i | mu_k, sqrt(sigma_k^2 + e_i^2)) in data units, with
    ``means = loc + scale * means_std`` and ``sigmas = scale * sigmas_std``. The
    sigmas are intrinsic widths: the measurement errors e_i are deconvolved.
    Defaults: alpha = 1, m = 0, s = 3, t = 1 (in data units: means ~ Normal(mean,
    3 sd), sigmas ~ HalfNormal(sd)); change them with ``priors``.

    Parameters
    ----------
    X : array-like of shape (n_samples,)
        One column ((n_samples, 1)) is the same. Data of two or more columns, shape
        (n_samples, n_features), get the D-dimensional model instead (full covariances,
        error covariances, missing values): see
        :func:`bayesgmm.bayes.model_md.build_model_md` for its generative model,
        variables and coords. ``fit`` does not sample that model yet.
    n_components : int
    X_err : array-like of shape (n_samples,), optional
        Per-point measurement standard deviations e_i (>= 0).
    priors : Priors or dict, optional
        Hyperparameters in data units, see :class:`Priors`.
    fused : bool, default=False
        False: the likelihood is a plain PyTensor graph (logsumexp over components),
        the readable reference. True: the same likelihood through bayesgmm's fused
        numba Op (one pass over the points for value and gradient, nothing of size
        n x K stored), several times faster for large n when you sample the model
        yourself with nutpie or PyMC.

    Returns
    -------
    pymc.Model
        Coords ``component`` and ``obs``; free variables ``weights``, ``means_std``,
        ``sigmas_std``; deterministics ``means`` and ``sigmas`` (data units); observed
        ``x`` (data units, so its log-likelihood is in data units). Data containers
        ``x_data``, ``x_err``, ``loc``, ``scale`` and the prior hyperparameters
        ``prior_weights_alpha``, ``prior_means_mu``, ``prior_means_sigma``,
        ``prior_sigmas_sigma`` (the :class:`Priors` fields, standardized) can be swapped
        with ``pm.set_data``.

    Notes
    -----
    The means are ordered (``means_std`` carries PyMC's ordered transform). Their prior's
    centre (the default initial point PyMC derives) has all K means equal, which the
    ordering maps to a gap of log(0) = -inf; the transform used here starts tied means
    at the standardized data's (k + 0.5)/K quantiles instead (averaged with the standard
    normal's, so they never tie), so ``pm.sample()`` works on the model as it is, with
    PyMC's NUTS and with nutpie. No ``initval`` is set: PyMC 6 cannot compute the
    pointwise log-likelihood (``pm.compute_log_likelihood``) of a model with initvals.
    Strictly increasing starts (``pm.sample(initvals={"means_std": ...})``) are used
    as given; :func:`bayesgmm.fit` starts every chain at the EM estimate.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> from bayesgmm import build_model
    >>> x = np.concatenate([np.random.default_rng(0).normal(0, 1, 50), [5.0, 5.5, 6.0]])
    >>> model = build_model(x, 2)
    >>> sorted(model.named_vars)[:4]
    ['loc', 'means', 'means_std', 'prior_means_mu']
    """
    if _n_features(X) >= 2:
        if fused:
            raise DataError("fused=True is for 1-D data only; the D-dimensional model has "
                            "the readable likelihood (fused=False).")
        from .model_md import build_model_md

        return build_model_md(X, n_components, X_err=X_err, priors=priors)
    import pymc as pm
    import pytensor.tensor as pt

    x, e = check_1d(X, X_err)
    K = _check_k(n_components, x.shape[0])
    loc, scale = standardizer(x)
    from .transforms import StartedOrdered

    ordered = StartedOrdered(_tied_means_start((x - loc) / scale, K))
    hyper = Priors.from_any(resolve(priors, x)).standardized(K, loc, scale)
    if "precision_alpha" in hyper:
        raise DataError("build_model has the HalfNormal widths prior only; Richardson & "
                        "Green's hierarchical one (precision_*) is sampled by "
                        "fit(..., sampler='smc') and posterior_k.")
    n = x.shape[0]
    coords = {"component": np.arange(K), "obs": np.arange(n)}
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", x, dims="obs")
        err = pm.Data("x_err", np.zeros(n) if e is None else e, dims="obs")
        loc_d = pm.Data("loc", loc)
        scale_d = pm.Data("scale", scale)
        prior = {name: pm.Data(f"prior_{name}", value, dims="component")
                 for name, value in hyper.items()}

        weights = pm.Dirichlet("weights", a=prior["weights_alpha"], dims="component")
        means_std = pm.Normal("means_std", mu=prior["means_mu"], sigma=prior["means_sigma"],
                              dims="component", transform=ordered)
        sigmas_std = pm.HalfNormal("sigmas_std", sigma=prior["sigmas_sigma"], dims="component")
        pm.Deterministic("means", loc_d + scale_d * means_std, dims="component")
        pm.Deterministic("sigmas", scale_d * sigmas_std, dims="component")

        def logp_fused(value, w, mu, sigma, e_i, loc_, scale_):
            from .logp_op import mixture_logp_pointwise

            z = (value - loc_) / scale_
            return mixture_logp_pointwise(z, (e_i / scale_) ** 2, w, mu, sigma) - pt.log(scale_)

        def logp(value, w, mu, sigma, e_i, loc_, scale_):
            z = (value - loc_) / scale_
            var = sigma[None, :] ** 2 + (e_i / scale_)[:, None] ** 2
            comp = (pt.log(w)[None, :] - 0.5 * pt.log(2 * np.pi * var)
                    - 0.5 * (z[:, None] - mu[None, :]) ** 2 / var)
            return pt.logsumexp(comp, axis=1) - pt.log(scale_)

        def random(w, mu, sigma, e_i, loc_, scale_, rng=None, size=None):
            rng = np.random.default_rng(rng)
            m = np.shape(e_i)[0]
            lab = rng.choice(len(w), size=m, p=np.asarray(w) / np.sum(w))
            sd = np.sqrt(np.asarray(sigma)[lab] ** 2 + (np.asarray(e_i) / scale_) ** 2)
            return loc_ + scale_ * rng.normal(np.asarray(mu)[lab], sd)

        pm.CustomDist("x", weights, means_std, sigmas_std, err, loc_d, scale_d,
                      logp=logp_fused if fused else logp, random=random, observed=x_data,
                      dims="obs")
    return model


def _n_features(X: Any) -> int:
    """The number of columns of 2-D array-like data; 1 for anything else.

    Only decides where ``build_model`` sends ``X``: everything that is not a table of
    two or more columns goes to the 1-D model, whose checks say what is wrong with it.
    """
    try:
        shape = np.shape(X)
    except (TypeError, ValueError):
        return 1
    return int(shape[1]) if len(shape) == 2 else 1


def _tied_means_start(z: np.ndarray, K: int) -> np.ndarray:
    """Strictly increasing start for K standardized means: data and normal quantiles.

    The average of the standardized data's (k + 0.5)/K quantiles (which may tie, e.g.
    for discrete data) and the standard normal's (which never do).
    """
    from scipy.stats import norm

    p = (np.arange(K) + 0.5) / K
    return 0.5 * (np.quantile(z, p) + norm.ppf(p))
