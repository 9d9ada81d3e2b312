"""The ``DataTree`` a D-dim fit returns (D >= 2; 1-D results: ``result.py``).

Groups: ``posterior`` (data units: ``weights`` (component), ``means``, ``sds``
(component, feature), ``correlations``, ``covariances`` (component, feature, feature_)),
``sample_stats`` (with the relabelling's per-draw permutation), ``log_likelihood``
(each point over its observed features, :func:`pointwise_loglik_md`),
``posterior_predictive`` (complete replicated points, ``predictive.replicate_md``),
``observed_data`` (NaN kept), ``constant_data`` (error covariances, standardization,
standardized priors as ``build_model_md``'s ``pm.Data``) and ``em_estimate``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model_md import missing_patterns
from .result import LOGLIK_MAX_VALUES

#: about this many float64 values per block of the log-likelihood's batched arrays
_BLOCK_VALUES = 2_000_000


def _lower_chol_inverse(L: np.ndarray) -> np.ndarray:
    """Inverse of a batch of lower-triangular Cholesky factors (..., d, d)."""
    d = L.shape[-1]
    return np.linalg.solve(L, np.broadcast_to(np.eye(d), L.shape))


def pointwise_loglik_md(
    x: np.ndarray,
    observed: np.ndarray,
    cov: np.ndarray | None,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    loc: np.ndarray,
    scale: np.ndarray,
) -> np.ndarray:
    """Each point's mixture log-density over its observed features, in data units.

    log p(x_i) = logsumexp_k [log w_k + log N(x_{i,O} | mu_{k,O}, Sigma_{k,OO} + S_{i,OO})]
    with O the features point i holds. Computed standardized (per feature), points
    grouped by missingness pattern, draws in blocks: without errors one Cholesky factor
    per (draw, component); with errors one per (draw, point, component), in blocks of
    about 2 million values, so no (n, K, D, D) array is ever whole when n is large.

    Parameters
    ----------
    x : ndarray of shape (n, D)
        Data, NaN where missing.
    observed : ndarray of bool, shape (n, D)
    cov : ndarray of shape (n, D, D) or None
        Error covariances in data units (0 in rows/columns of missing features).
    weights : ndarray of shape (M, K)
    means : ndarray of shape (M, K, D)
    covariances : ndarray of shape (M, K, D, D)
        M draws, data units.
    loc, scale : ndarray of shape (D,)
        The standardization (any positive scale gives the same values up to rounding).

    Returns
    -------
    ndarray of shape (M, n)
    """
    from scipy.special import logsumexp

    M, K, D = means.shape
    n = x.shape[0]
    outer = scale[:, None] * scale[None, :]
    z = (x - loc) / scale
    mu = (means - loc) / scale
    sig = covariances / outer
    s_err = None if cov is None else cov / outer
    logw = np.log(weights)
    out = np.empty((M, n))
    for rows, cols in missing_patterns(observed):
        d = cols.size
        zc = z[np.ix_(rows, cols)]
        const = -0.5 * d * np.log(2 * np.pi) - float(np.sum(np.log(scale[cols])))
        mu_c = mu[:, :, cols]
        sig_c = sig[:, :, cols][:, :, :, cols]
        err = None if s_err is None else s_err[rows][:, cols][:, :, cols]
        if err is not None and not np.any(err):
            err = None
        n_p = rows.size
        if err is None:
            L = np.linalg.cholesky(sig_c)  # (M, K, d, d)
            Linv = _lower_chol_inverse(L)
            logdet = np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)  # (M, K)
            step = max(1, _BLOCK_VALUES // max(1, n_p * K * d))
            for a in range(0, M, step):
                b = slice(a, a + step)
                r = zc[None, :, None, :] - mu_c[b][:, None]  # (B, n_p, K, d)
                y = np.einsum("bkij,bnkj->bnki", Linv[b], r)
                comp = logw[b][:, None] - logdet[b][:, None] - 0.5 * (y**2).sum(-1)
                out[b, rows] = logsumexp(comp, axis=-1) + const
            continue
        step_n = max(1, min(n_p, _BLOCK_VALUES // max(1, K * d * d)))
        step_m = max(1, _BLOCK_VALUES // max(1, step_n * K * d * d))
        for a in range(0, M, step_m):
            b = slice(a, a + step_m)
            for c in range(0, n_p, step_n):
                p = slice(c, c + step_n)
                total = sig_c[b][:, None] + err[p][None, :, None]  # (B, P, K, d, d)
                L = np.linalg.cholesky(total)
                r = zc[p][None, :, None, :] - mu_c[b][:, None]  # (B, P, K, d)
                y = np.linalg.solve(L, r[..., None])[..., 0]
                logdet = np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
                comp = logw[b][:, None] - logdet - 0.5 * (y**2).sum(-1)
                out[b, rows[p]] = logsumexp(comp, axis=-1) + const
    return out


def _assemble_md(problem: Any, post: Any, stats: Any, sampler: str, log_likelihood: Any,
                 name: str = "x", units: str = "") -> Any:
    """The D-dim result: ``problem`` is ``inference_md.ProblemMD``, ``post`` relabelled."""
    import xarray as xr

    from .. import __version__
    from .predictive import kept_draws, replicate_md

    p = problem
    n, D = p.x.shape
    K = p.K
    C, S = post.sizes["chain"], post.sizes["draw"]
    coords = p.coords()
    for var, unit in (("weights", ""), ("means", units or "data units"),
                      ("sds", units or "data units"), ("correlations", ""),
                      ("covariances", f"({units})^2" if units else "data units squared")):
        post[var].attrs["units"] = unit
    post["sds"].attrs["long_name"] = "intrinsic sd (measurement errors removed)"
    post.attrs.update({"sampler": sampler, "inference_library": sampler})
    order = ("chain", "draw", "component")
    w = post["weights"].transpose(*order).values
    mu = post["means"].transpose(*order, "feature").values
    cv = post["covariances"].transpose(*order, "feature", "feature_").values
    obs = np.arange(n)
    cd = {"chain": post.chain.values, "draw": post.draw.values}
    groups: dict[str, Any] = {"posterior": post, "sample_stats": stats}

    store_ll = (C * S * n <= LOGLIK_MAX_VALUES) if log_likelihood is None else log_likelihood
    if store_ll:
        ll = pointwise_loglik_md(p.x, p.observed, p.cov, w.reshape(C * S, K),
                                 mu.reshape(C * S, K, D), cv.reshape(C * S, K, D, D),
                                 p.loc, p.scale)
        groups["log_likelihood"] = xr.Dataset(
            {name: (("chain", "draw", "obs"), ll.reshape(C, S, n))},
            coords={**cd, "obs": obs})

    # thinned to at most PPC_MAX_VALUES values: n * D per replicate
    idx = kept_draws(C, S, n * D)
    err = np.zeros((n, D, D)) if p.cov is None else p.cov
    pp = replicate_md(w[:, idx], mu[:, idx], cv[:, idx], err, p.seed)
    data_attrs = {"units": units} if units else {}
    feat = {"feature": coords["feature"]}
    groups["posterior_predictive"] = xr.Dataset(
        {name: (("chain", "draw", "obs", "feature"), pp, data_attrs)},
        coords={**cd, "draw": post.draw.values[idx], "obs": obs, **feat})
    groups["observed_data"] = xr.Dataset(
        {name: (("obs", "feature"), p.x, data_attrs)}, coords={"obs": obs, **feat})
    mat = ("component", "feature")
    const = {
        "x_err_cov": (("obs", "feature", "feature_"), err),
        "loc": ("feature", p.loc),
        "scale": ("feature", p.scale),
    }
    for key, value in p.hyper.items():
        dims = () if np.ndim(value) == 0 else ("component",) if np.ndim(value) == 1 else mat
        const[f"prior_{key}"] = (dims, value, {"units": "standardized"})
    groups["constant_data"] = xr.Dataset(const, coords={"obs": obs, **coords})
    groups["em_estimate"] = p.em_dataset()
    dt = xr.DataTree.from_dict(groups)
    dt.attrs.update({
        "bayesgmm_version": __version__,
        "n_components": K,
        "n_features": D,
        "has_errors": int(p.cov is not None),
        "sampler": sampler,
        "random_seed": p.seed,
        "log_likelihood_stored": int(bool(store_ll)),
        "data_name": name,
        "data_units": units,
        "relabelled": 1,
        "relabel_pivot": "em_estimate",
    })
    for key in ("relabel_permuted", "relabel_permuted_fraction", "relabel_not_identified"):
        if key in post.attrs:
            dt.attrs[key] = post.attrs[key]
    return dt
