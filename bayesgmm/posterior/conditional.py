"""Marginal and conditional mixtures of a D-dimensional result, draw by draw.

A Gaussian mixture's marginal over some features is the mixture of its components'
marginals (same weights, sub-vectors of the means, sub-matrices of the covariances); its
conditional on values of the other features is again a Gaussian mixture, with weights
re-weighted by how well each component explains the given values (XDGMM's
``condition``). Both are computed for every posterior draw and returned as a result of
the same layout, so :func:`~bayesgmm.posterior.density`,
:func:`~bayesgmm.posterior.membership` and the figures give their posterior bands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import DataError
from ..validation import check_errors
from .mixture_md import _LOG_2PI, feature_indices, feature_values, is_md

__all__ = ["conditional", "marginal"]

_PARAMS = ("weights", "means", "sds", "correlations", "covariances")


def _require_md(dt: Any, what: str) -> np.ndarray:
    if not is_md(dt):
        raise DataError(
            f"{what} needs a D-dimensional bayesgmm.fit result (posterior means with a "
            "feature dim); this one has a single feature."
        )
    return feature_values(dt)


def _one_feature(ds: Any, i: int) -> Any:
    """A parameter Dataset (posterior or em_estimate) in the 1-D layout of feature ``i``."""
    import xarray as xr

    means = ds["means"].isel(feature=i, drop=True)
    if "sds" in ds:
        sigmas = ds["sds"].isel(feature=i, drop=True)
    else:
        sigmas = np.sqrt(ds["covariances"].isel(feature=i, feature_=i, drop=True))
    return xr.Dataset({"weights": ds["weights"], "means": means, "sigmas": sigmas},
                      attrs=dict(ds.attrs))


def _subset(ds: Any, idx: list[int]) -> Any:
    """A parameter Dataset restricted to features ``idx`` (1-D layout for one feature)."""
    if len(idx) == 1:
        return _one_feature(ds, idx[0])
    keep = [v for v in _PARAMS if v in ds]
    sel = {"feature": idx, **({"feature_": idx} if "feature_" in ds.dims else {})}
    return ds[keep].isel(sel)


def _units(var: Any, i: int) -> str:
    units = var.attrs.get("units", "")
    if isinstance(units, str):
        return units
    units = list(np.ravel(units))
    return str(units[i]) if i < len(units) else ""


def marginal(dt: Any, features: Any) -> Any:
    """The mixture over selected features, for every posterior draw.

    For each draw, the marginal of a Gaussian mixture over features ``a`` is
    sum_k w_k N(x_a | mu_ka, Sigma_kaa): the same weights, the components' sub-vectors
    and sub-matrices. The result has the layout of a fit result, so the other posterior
    functions give its bands: ``density(marginal(dt, ["waiting"]), grid)``.

    Parameters
    ----------
    dt : xarray.DataTree
        A D-dimensional :func:`bayesgmm.fit` result (D >= 2).
    features : feature name or sequence of them
        The features to keep, in the order wanted (values of the ``feature``
        coordinate; an int is also read as a position).

    Returns
    -------
    xarray.DataTree
        ``posterior`` with ``weights`` (chain, draw, component) and, for two or more
        features, ``means``, ``sds`` (chain, draw, component, feature), ``correlations``,
        ``covariances`` (chain, draw, component, feature, feature_); for one feature the
        1-D layout: ``means`` and ``sigmas`` (chain, draw, component). When ``dt`` has
        them: ``observed_data`` (the points with at least one selected feature
        observed; for one feature, named after it), ``constant_data`` (their error
        covariances ``x_err_cov``, or error sds ``x_err`` for one feature), and
        ``em_estimate`` (its parameters, marginalised the same way). ``attrs`` are
        ``dt``'s with ``n_features``, ``data_name`` and ``marginal_of`` (the kept
        features, comma-separated) set.

    Raises
    ------
    DataError
        A 1-D result, an unknown feature, or one selected twice.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.posterior import density, marginal
    >>> m = marginal(dt, ["waiting"])  # doctest: +SKIP
    >>> band = density(m, np.linspace(40, 100, 200), deconvolved=True)  # doctest: +SKIP
    """
    import xarray as xr

    names = _require_md(dt, "marginal")
    idx = feature_indices(names, features, "marginal")
    groups = {"posterior": _subset(dt["posterior"].to_dataset(), idx)}
    if "em_estimate" in dt.children:
        groups["em_estimate"] = _subset(dt["em_estimate"].to_dataset(), idx)
    attrs = dict(dt.attrs)
    attrs.update(n_features=len(idx), marginal_of=", ".join(str(names[i]) for i in idx))
    if "observed_data" in dt.children:
        from .summaries import data_name

        name = data_name(dt)
        var = dt["observed_data"][name].transpose("obs", "feature")
        x = np.asarray(var.values, dtype=float)[:, idx]
        rows = np.flatnonzero(~np.isnan(x).all(axis=1))
        obs = np.asarray(dt["observed_data"]["obs"].values)[rows]
        cov = None
        if "constant_data" in dt.children and "x_err_cov" in dt["constant_data"]:
            cov = np.asarray(dt["constant_data"]["x_err_cov"].transpose(
                "obs", "feature", "feature_").values, dtype=float)[rows][:, idx][:, :, idx]
        if len(idx) == 1:
            name = str(names[idx[0]])
            units = _units(var, idx[0])
            groups["observed_data"] = xr.Dataset(
                {name: ("obs", x[rows, 0], {"units": units} if units else {})},
                coords={"obs": obs})
            if cov is not None:
                groups["constant_data"] = xr.Dataset(
                    {"x_err": ("obs", np.sqrt(cov[:, 0, 0]))}, coords={"obs": obs})
            attrs["data_units"] = units
        else:
            sub = [names[i] for i in idx]
            groups["observed_data"] = xr.Dataset(
                {name: (("obs", "feature"), x[rows], dict(var.attrs))},
                coords={"obs": obs, "feature": sub})
            if cov is not None:
                groups["constant_data"] = xr.Dataset(
                    {"x_err_cov": (("obs", "feature", "feature_"), cov)},
                    coords={"obs": obs, "feature": sub, "feature_": sub})
        attrs["data_name"] = name
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = attrs
    return tree


def _check_given(given: Any, names: np.ndarray) -> tuple[list[int], np.ndarray]:
    if not isinstance(given, Mapping) and not hasattr(given, "items"):
        raise DataError(
            "given must map feature names to values, e.g. {'eruptions': 3.5}; "
            f"got {type(given).__name__}."
        )
    items = list(given.items())
    idx = feature_indices(names, [k for k, _ in items], "conditional")
    try:
        values = np.array([float(v) for _, v in items])
    except (TypeError, ValueError):
        raise DataError("given values must be numbers.") from None
    if not np.all(np.isfinite(values)):
        raise DataError("given values must be finite (a value to condition on).")
    if len(idx) == names.size:
        raise DataError("conditional: every feature is given; leave at least one free.")
    return idx, values


def _given_errors(given_err: Any, nb: int) -> np.ndarray:
    """The given values' error covariance (nb, nb): sds (a scalar or (nb,)) or a matrix."""
    if given_err is None:
        return np.zeros((nb, nb))
    err = np.asarray(given_err, dtype=float)
    if err.ndim == 0:
        err = np.full((1, nb), float(err))
    elif err.ndim == 1 and err.size == nb:
        err = err[None]
    elif err.ndim == 2 and err.shape == (nb, nb):
        err = err[None]
    else:
        raise DataError(
            f"given_err must be a scalar, {nb} sds or a ({nb}, {nb}) covariance matrix; "
            f"got shape {err.shape}."
        )
    return check_errors(err, 1, nb, name="given_err")[0]


def _arrays(ds: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Weights (..., K), means (..., K, D), covariances (..., K, D, D), leading dims."""
    w = ds["weights"].transpose(..., "component")
    mu = ds["means"].transpose(*w.dims, "feature").values
    if "covariances" in ds:
        cov = ds["covariances"].transpose(*w.dims, "feature", "feature_").values
    else:
        sd = ds["sds"].transpose(*w.dims, "feature").values
        cov = sd[..., :, None] * ds["correlations"].transpose(
            *w.dims, "feature", "feature_").values * sd[..., None, :]
    return np.asarray(w.values, float), np.asarray(mu, float), np.asarray(cov, float), \
        tuple(str(d) for d in w.dims[:-1])


def condition_arrays(w: np.ndarray, mu: np.ndarray, cov: np.ndarray, a: list[int],
                     b: list[int], xb: np.ndarray, Eb: np.ndarray) -> tuple[np.ndarray, ...]:
    """The mixture of features ``a`` given x_b (observed with error covariance ``Eb``).

    Per leading index: weights proportional to w_k N(x_b | mu_kb, Sigma_kbb + E_b),
    means mu_ka + Sigma_kab C^-1 (x_b - mu_kb), covariances
    Sigma_kaa - Sigma_kab C^-1 Sigma_kba with C = Sigma_kbb + E_b.
    """
    from scipy.special import softmax

    a_, b_ = np.asarray(a), np.asarray(b)
    C = cov[..., b_[:, None], b_] + Eb
    P = np.linalg.inv(C)
    delta = xb - mu[..., b_]
    sol = np.einsum("...ij,...j->...i", P, delta)
    maha = np.einsum("...i,...i->...", delta, sol)
    with np.errstate(divide="ignore"):
        logw = np.log(w) - 0.5 * (b_.size * _LOG_2PI + np.linalg.slogdet(C)[1] + maha)
    cross = cov[..., a_[:, None], b_]  # Sigma_kab
    mean = mu[..., a_] + np.einsum("...ij,...j->...i", cross, sol)
    covc = cov[..., a_[:, None], a_] - cross @ P @ np.swapaxes(cross, -1, -2)
    covc = 0.5 * (covc + np.swapaxes(covc, -1, -2))
    return softmax(logw, axis=-1), mean, covc


def _dataset(w, mu, cov, lead, coords, features, attrs) -> Any:
    """A parameter Dataset of the result layout (1-D layout for one feature)."""
    import xarray as xr

    pd = (*lead, "component")
    if len(features) == 1:
        return xr.Dataset({"weights": (pd, w), "means": (pd, mu[..., 0]),
                           "sigmas": (pd, np.sqrt(cov[..., 0, 0]))},
                          coords=coords, attrs=attrs)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    fd, ffd = (*pd, "feature"), (*pd, "feature", "feature_")
    return xr.Dataset(
        {"weights": (pd, w), "means": (fd, mu), "sds": (fd, sd),
         "correlations": (ffd, corr), "covariances": (ffd, cov)},
        coords={**coords, "feature": list(features), "feature_": list(features)},
        attrs=attrs)


def conditional(dt: Any, given: Any, *, given_err: Any = None) -> Any:
    """The mixture of the other features given values of some, for every posterior draw.

    For each draw, conditioning a Gaussian mixture on x_b (features ``b``) leaves a
    Gaussian mixture of the remaining features ``a`` with weights proportional to
    w_k N(x_b | mu_kb, Sigma_kbb), means mu_ka + Sigma_kab Sigma_kbb^-1 (x_b - mu_kb)
    and covariances Sigma_kaa - Sigma_kab Sigma_kbb^-1 Sigma_kba (XDGMM's
    ``condition``): the prediction of the true values of ``a`` for a point whose ``b``
    is known. With ``given_err``, x_b is a measurement with that error covariance E and
    Sigma_kbb becomes Sigma_kbb + E throughout. The result has the layout of a fit
    result, so ``density(conditional(dt, {"eruptions": 3.5}), grid, deconvolved=True)``
    gives the predictive density of the other features with its band.

    Parameters
    ----------
    dt : xarray.DataTree
        A D-dimensional :func:`bayesgmm.fit` result (D >= 2).
    given : mapping
        Feature name (value of the ``feature`` coordinate; an int is also read as a
        position) to the value it is conditioned on, in data units. At least one
        feature must stay free.
    given_err : float, array-like of shape (n_given,) or (n_given, n_given), optional
        The given values' measurement error: one sd, an sd per given feature (in the
        order of ``given``), or a covariance matrix. Default: exact values.

    Returns
    -------
    xarray.DataTree
        ``posterior``: per draw, ``weights`` (chain, draw, component) and, for two or
        more free features, ``means``, ``sds`` (chain, draw, component, feature),
        ``correlations``, ``covariances`` (chain, draw, component, feature, feature_);
        for one free feature the 1-D layout, ``means`` and ``sigmas`` (chain, draw,
        component). ``em_estimate`` conditioned the same way when ``dt`` has one. No
        data groups (the density of true values, ``deconvolved=True``, is what it
        describes). ``attrs``: ``dt``'s with ``n_features`` and ``given`` (e.g.
        ``"eruptions = 3.5"``) set.

    Raises
    ------
    DataError
        A 1-D result, an unknown feature, a non-finite value, every feature given, or
        ``given_err`` of a wrong shape or not a covariance.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.posterior import conditional, density
    >>> c = conditional(dt, {"eruptions": 4.0})  # doctest: +SKIP
    >>> band = density(c, np.linspace(40, 100, 200), deconvolved=True)  # doctest: +SKIP
    """
    import xarray as xr

    names = _require_md(dt, "conditional")
    b, xb = _check_given(given, names)
    Eb = _given_errors(given_err, len(b))
    a = [i for i in range(names.size) if i not in b]
    free = [names[i] for i in a]
    groups = {}
    for group in ("posterior", "em_estimate"):
        if group not in dt.children:
            continue
        ds = dt[group].to_dataset()
        w, mu, cov, lead = _arrays(ds)
        wc, mc, cc = condition_arrays(w, mu, cov, a, b, xb, Eb)
        coords = {d: ds[d].values for d in (*lead, "component") if d in ds.coords}
        groups[group] = _dataset(wc, mc, cc, lead, coords, free, dict(ds.attrs))
    attrs = {k: v for k, v in dt.attrs.items() if k not in ("data_name", "data_units")}
    attrs.update(n_features=len(a),
                 given="; ".join(f"{names[i]} = {v:g}" for i, v in zip(b, xb, strict=True)))
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = attrs
    return tree
