"""Posterior quantities users ask for: membership, density, per-point true values.

Each function takes a :func:`bayesgmm.fit` result (an ``xarray.DataTree``) and returns
an ``xarray.Dataset`` of posterior means and credible intervals, in the data's units.
The interval's probability and kind default to ArviZ's ``stats.ci_prob`` and
``stats.ci_kind`` settings (89%, equal-tailed), as in ``arviz_stats.summary``, so the
report's table, its figures and ``summary.csv`` always show the same interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._renamed import renamed_keywords
from ..errors import DataError
from ..validation import check_ci_kind, check_ci_prob, check_point_errors, check_points
from .mixture_md import density_md, is_md, membership_md, true_values_md

__all__ = ["data_label", "data_name", "density", "interval_label", "membership",
           "true_values"]

_MAX_DRAWS = 1000  # draws used for bands (thinned evenly when the posterior has more)


def interval_label(ci_prob: float | None = None, ci_kind: str | None = None) -> str:
    """Words for a credible interval, e.g. ``"89% equal-tailed interval"``.

    Parameters
    ----------
    ci_prob : float, optional
        Probability (default: ArviZ's ``stats.ci_prob``).
    ci_kind : {"eti", "hdi"}, optional
        Kind (default: ArviZ's ``stats.ci_kind``).

    Returns
    -------
    str
        ``"89% equal-tailed interval"`` or ``"89% highest-density interval"``.
    """
    prob, kind = check_ci_prob(ci_prob), check_ci_kind(ci_kind)
    words = "equal-tailed" if kind == "eti" else "highest-density"
    return f"{prob:.0%} {words} interval"


def data_name(dt: Any) -> str:
    """The name of the data variable in a :func:`bayesgmm.fit` result.

    The user's column name (``"waiting"``), or ``"x"`` for data given as a plain array.
    It names the variable of ``observed_data``, ``log_likelihood`` and
    ``posterior_predictive``.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.

    Returns
    -------
    str
        ``dt.attrs["data_name"]`` when ``observed_data`` holds it, else the only variable
        of ``observed_data``.

    Raises
    ------
    DataError
        Without an ``observed_data`` group holding one variable.
    """
    if "observed_data" not in dt.children:
        raise DataError(
            "expected a bayesgmm.fit result: a DataTree with an observed_data group."
        )
    names = [str(v) for v in dt["observed_data"].data_vars]
    name = str(dt.attrs.get("data_name", ""))
    if name in names:
        return name
    if len(names) == 1:
        return names[0]
    raise DataError(
        f"expected one data variable in observed_data; got {len(names)} ({', '.join(names)})."
    )


def data_label(dt: Any) -> str:
    """Axis label of the data: its name and units, e.g. ``"waiting [min]"``.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.

    Returns
    -------
    str
        The data variable's name, with ``[units]`` when its ``units`` attribute is set.
    """
    name = data_name(dt)
    units = str(dt["observed_data"][name].attrs.get("units", "") or "")
    return f"{name} [{units}]" if units else name


def _observed_values(dt: Any) -> np.ndarray:
    return np.asarray(dt["observed_data"][data_name(dt)].values, dtype=float)


def _draws(dt: Any, max_draws: int = _MAX_DRAWS) -> tuple[np.ndarray, ...]:
    """Flattened (S, K) weights, means, sigmas; evenly thinned to ``max_draws``."""
    try:
        post = dt["posterior"]
        w, mu, sg = (np.asarray(post[v].values) for v in ("weights", "means", "sigmas"))
    except KeyError:
        raise DataError(
            "expected a bayesgmm.fit result: a DataTree whose posterior has weights, "
            "means and sigmas."
        ) from None
    K = w.shape[-1]
    w, mu, sg = (a.reshape(-1, K) for a in (w, mu, sg))
    if w.shape[0] > max_draws:
        idx = np.linspace(0, w.shape[0] - 1, max_draws).round().astype(int)
        w, mu, sg = w[idx], mu[idx], sg[idx]
    return w, mu, sg


def _interval(samples: np.ndarray, prob: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) over axis 0: equal-tailed, or the narrowest window of the sorted draws."""
    if kind == "eti":
        lo, hi = np.quantile(samples, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        return lo, hi
    s = np.sort(samples, axis=0)
    n = s.shape[0]
    m = min(max(int(np.floor(prob * n)), 1), n - 1)  # as arviz_stats.hdi ("nearest")
    j = np.argmin(s[m:] - s[:n - m], axis=0)[None]
    return (np.take_along_axis(s[:n - m], j, axis=0)[0],
            np.take_along_axis(s[m:], j, axis=0)[0])


def _summarize(samples: np.ndarray, prob: float, kind: str = "eti") -> dict[str, np.ndarray]:
    lo, hi = _interval(samples, prob, kind)
    return {"mean": samples.mean(axis=0), "lower": lo, "upper": hi}


def _comp_logpdf(x, e, w, mu, sg):
    """log(w_k N(x | mu_k, sqrt(sigma_k^2 + e^2))) with shape (S, m, K)."""
    sd = np.hypot(sg[:, None, :], e[None, :, None])  # no overflow of sigma^2 + e^2
    # z^2 = inf far out, or a weight of 0 (a K-averaged posterior's padding): log
    # density -inf, exactly right
    with np.errstate(over="ignore", divide="ignore"):
        z = (x[None, :, None] - mu[:, None, :]) / sd
        return np.log(w)[:, None, :] - 0.5 * np.log(2 * np.pi) - np.log(sd) - 0.5 * z * z


def _comp_logpdf_far_safe(x, e, w, mu, sg):
    """``_comp_logpdf`` for membership, safe far out.

    Points so far out that every component's density underflows (|z| > ~1e154) take the
    limit along their direction (the widest component wins), found at a stand-in
    distance of 1e100 component widths.
    """
    lp = _comp_logpdf(x, e, w, mu, sg)
    far = ~np.isfinite(lp.max(axis=-1)).all(axis=0)  # (m,)
    if far.any():
        centre = float(np.median(mu))
        width = float(np.max(np.hypot(sg, np.max(e[far]))))
        with np.errstate(over="ignore"):
            stand_in = np.clip(centre + np.sign(x[far] - centre) * min(1e100 * width, 1e300),
                               -1e300, 1e300)
        lp[:, far] = _comp_logpdf(stand_in, e[far], w, mu, sg)
    return lp


@renamed_keywords(x="X", x_err="X_err")
def membership(
    dt: Any, X: Any, *, X_err: Any = None, ci_prob: float | None = None,
    ci_kind: str | None = None,
) -> Any:
    """Posterior probability that a value came from each component, with intervals.

    For each draw, p(k | x) = w_k N(x | mu_k, s_k) / sum_j w_j N(x | mu_j, s_j) with
    s_k = sqrt(sigma_k^2 + e^2): the uncertainty of the parameters becomes an interval
    on the probability (seed 002's "180 lb: man or woman?" with its credible interval).
    In D dimensions N(x | mu_k, Sigma_k + S) with S the point's error covariance, over
    the point's observed features only (a NaN in ``X`` is a missing feature,
    marginalised exactly).

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result (1-D or D-dim), or a
        :func:`~bayesgmm.posterior.marginal` or :func:`~bayesgmm.posterior.conditional`
        of one.
    X : float or array-like of shape (m,), or (m, D) for a D-dim result
        Values in data units; for a D-dim result one row per point (a single point may
        be given as (D,); a table whose columns include the features' names is put in
        their order), NaN where a feature is missing. (Formerly ``x``: that keyword
        still works, with a ``FutureWarning``.)
    X_err : float or array-like of shape (m,), optional
        Their measurement errors (default: exact values). For a D-dim result: one sd
        per point (m,), an sd per point and feature (m, D), or covariance matrices
        (m, D, D). (Formerly ``x_err``.)
    ci_prob : float, optional
        Interval probability (default: ArviZ's ``stats.ci_prob``).
    ci_kind : {"eti", "hdi"}, optional
        Interval kind (default: ArviZ's ``stats.ci_kind``).

    Returns
    -------
    xarray.Dataset
        ``mean``, ``lower``, ``upper`` with dims (``point``, ``component``); coordinate
        ``x`` (dims ``point``, and ``feature`` for a D-dim result); attrs ``ci_prob``,
        ``ci_kind`` and ``x_err`` (the measurement error assumed for the values: 0 for
        exact values, or the one sd given when it is the same for all values; NaN
        otherwise).

    Examples
    --------
    ``dt`` a 1-D fit (weights in lb), ``dt_2d`` one of two columns (eruption length
    and waiting time): a point without its waiting time uses its eruption alone.

    >>> membership(dt, [150.0, 180.0], X_err=2.0)  # doctest: +SKIP
    >>> membership(dt_2d, [[3.5, np.nan], [2.0, 55.0]])  # doctest: +SKIP
    """
    import xarray as xr
    from scipy.special import softmax

    prob, kind = check_ci_prob(ci_prob), check_ci_kind(ci_kind)
    if getattr(dt, "attrs", {}).get("model_averaged"):
        raise DataError(
            "membership of a posterior averaged over K is not defined (component k of "
            "one K is not component k of another); take it from posterior_k's "
            "fits[K] for the K you want."
        )
    if is_md(dt):
        return membership_md(dt, X, X_err, prob, kind, _MAX_DRAWS)
    xs = check_points(X, "X")
    e = check_point_errors(X_err, xs.size)
    w, mu, sg = _draws(dt)
    p = softmax(_comp_logpdf_far_safe(xs, e, w, mu, sg), axis=-1)  # (S, m, K)
    s = _summarize(p, prob, kind)
    dims = ("point", "component")
    same_err = float(e[0]) if e.size and np.all(e == e[0]) else np.nan
    return xr.Dataset(
        {k: (dims, v) for k, v in s.items()},
        coords={"x": ("point", xs), "component": np.arange(w.shape[1])},
        attrs={"ci_prob": prob, "ci_kind": kind, "quantity": "p(component | x)",
               "x_err": same_err},
    )


@renamed_keywords(grid="X")
def density(
    dt: Any,
    X: Any = None,
    *,
    X_err: Any = None,
    deconvolved: bool = False,
    ci_prob: float | None = None,
    max_errors: int = 200,
    ci_kind: str | None = None,
) -> Any:
    """The mixture density at points: posterior mean and credible band, per component too.

    In D dimensions the density of a point is taken over its observed features (a NaN
    in ``X`` marginalises that feature); :func:`~bayesgmm.posterior.density_grid` gives
    two features on a grid for contour plots, ``density(marginal(dt, [f]), grid)`` one
    feature's.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result (1-D or D-dim), or a
        :func:`~bayesgmm.posterior.marginal` or :func:`~bayesgmm.posterior.conditional`
        of one.
    X : array-like of shape (m,), or (m, D) for a D-dim result, optional
        Values in data units, e.g. a grid; for a D-dim result one row per point (NaN
        where a feature is missing). Default: the data themselves, each with its own
        stored measurement error. (Formerly ``grid``: that keyword still works, with
        a ``FutureWarning``.)
    X_err : array-like, optional
        The measurement errors of ``X`` (shapes as in :func:`membership`), used when
        ``deconvolved`` is False: the density of each point as observed with its own
        error. Default: see ``deconvolved``.
    deconvolved : bool, default=False
        False: the density of *observed* values, measurement errors included (those of
        ``X_err``, or else averaged over the data's own errors: at most ``max_errors``
        of their quantiles in 1-D, of their covariance matrices evenly spaced by trace
        in D dims, rows with every feature observed first), which is what a histogram
        of the data shows. True: the density of the *true* values, errors removed
        (sum_k w_k N(x | mu_k, Sigma_k)).
    ci_prob : float, optional
        Band probability (default: ArviZ's ``stats.ci_prob``).
    max_errors : int, default=200
        The most error values (or matrices) the observed density averages over.
    ci_kind : {"eti", "hdi"}, optional
        Band kind (default: ArviZ's ``stats.ci_kind``).

    Returns
    -------
    xarray.Dataset
        ``mean``, ``lower``, ``upper`` (dim ``point``) and ``component_mean``
        (dims ``point``, ``component``: each weighted component's mean density);
        coordinate ``x`` (dims ``point``, and ``feature`` for a D-dim result).

    Examples
    --------
    ``dt`` a 1-D fit, ``dt_2d`` one of two columns:

    >>> density(dt, np.linspace(40, 100, 200), deconvolved=True)  # doctest: +SKIP
    >>> density(dt_2d, [[3.5, 70.0], [2.0, np.nan]])  # doctest: +SKIP
    >>> density(dt_2d)  # the data, each with its own errors  # doctest: +SKIP
    """
    import xarray as xr

    prob, kind = check_ci_prob(ci_prob), check_ci_kind(ci_kind)
    if is_md(dt):
        return density_md(dt, X, X_err, deconvolved, prob, kind, max_errors,
                          min(_MAX_DRAWS, 500))
    errs = np.asarray(dt["constant_data"]["x_err"].values) if "constant_data" in dt.children \
        else np.zeros(1)
    if X is None:  # the data, each with its own error
        xs = _observed_values(dt)
        own = errs if errs.shape == xs.shape else np.zeros(xs.size)
    else:
        xs = check_points(X, "X")
        own = None if X_err is None else check_point_errors(X_err, xs.size)
    w, mu, sg = _draws(dt, max_draws=min(_MAX_DRAWS, 500))
    if deconvolved or own is not None or not np.any(errs > 0):
        e_set = np.zeros(1)
    else:
        e_set = np.quantile(errs, (np.arange(max_errors) + 0.5) / max_errors) \
            if errs.size > max_errors else errs
    S, K = w.shape
    if own is not None and not deconvolved:  # each point's own error
        comp = np.exp(_comp_logpdf(xs, own, w, mu, sg))
    else:
        comp = np.zeros((S, xs.size, K))
        for e in e_set:  # average over the data's errors
            comp += np.exp(_comp_logpdf(xs, np.full(xs.size, e), w, mu, sg))
        comp /= e_set.size
    total = comp.sum(-1)
    s = _summarize(total, prob, kind)
    return xr.Dataset(
        {
            **{k: ("point", v) for k, v in s.items()},
            "component_mean": (("point", "component"), comp.mean(axis=0)),
        },
        coords={"x": ("point", xs), "component": np.arange(K)},
        attrs={"ci_prob": prob, "ci_kind": kind, "deconvolved": int(deconvolved)},
    )


def true_values(
    dt: Any, *, ci_prob: float | None = None, random_seed: int | None = 0,
    ci_kind: str | None = None,
) -> Any:
    """Each observed point's posterior for its true (error-free) value.

    Given the parameters, the true value of point i is a mixture over components of
    N(b_ik, B_ik), b_ik = mu_k + sigma_k^2 / (sigma_k^2 + e_i^2) (x_i - mu_k),
    B_ik = sigma_k^2 e_i^2 / (sigma_k^2 + e_i^2), weighted by p(k | x_i): each point is
    shrunk toward its component. Averaged over the posterior draws.

    In D dimensions (extreme deconvolution) b_ik = mu_k + Sigma_k[:, o] C^-1 (x_io -
    mu_ko) and B_ik = Sigma_k - Sigma_k[:, o] C^-1 Sigma_k[o, :], C = Sigma_k,oo + S_i,oo,
    over point i's observed features o: observed features are deconvolved, missing
    ones filled with their conditional mean given the observed ones within the
    component; weighted by p(k | x_io). An observed feature without error is its own
    true value.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result with measurement errors.
    ci_prob : float, optional
        Interval probability (default: ArviZ's ``stats.ci_prob``).
    random_seed : int or None, default=0
        The intervals come from one simulated true value per draw and point.
    ci_kind : {"eti", "hdi"}, optional
        Interval kind (default: ArviZ's ``stats.ci_kind``).

    Returns
    -------
    xarray.Dataset
        ``mean`` (exact posterior mean), ``lower``, ``upper``, ``sd`` (dim ``obs``,
        and ``feature`` for a D-dim result: per-feature intervals), and ``observed``
        (NaN where missing).

    Examples
    --------
    ``dt`` a fit of two columns with measurement errors, some values missing:

    >>> tv = true_values(dt)  # doctest: +SKIP
    >>> tv["mean"].sel(feature="waiting")  # doctest: +SKIP
    """
    import xarray as xr
    from scipy.special import softmax

    prob, kind = check_ci_prob(ci_prob), check_ci_kind(ci_kind)
    if is_md(dt):
        return true_values_md(dt, prob, kind, random_seed, 500)
    x = _observed_values(dt)
    e = np.asarray(dt["constant_data"]["x_err"].values, dtype=float)
    w, mu, sg = _draws(dt, max_draws=500)
    rng = np.random.default_rng(random_seed)
    n = x.size
    mean = np.empty(n)
    second = np.empty(n)
    lower = np.empty(n)
    upper = np.empty(n)
    step = max(1, 2_000_000 // (w.shape[0] * w.shape[1]))
    for a in range(0, n, step):
        xs, es = x[a:a + step], e[a:a + step]
        r = softmax(_comp_logpdf(xs, es, w, mu, sg), axis=-1)  # (S, m, K)
        v = sg[:, None, :] ** 2
        t = v + es[None, :, None] ** 2
        b = mu[:, None, :] + v / t * (xs[None, :, None] - mu[:, None, :])
        B = v * es[None, :, None] ** 2 / t
        mean[a:a + step] = (r * b).sum(-1).mean(0)
        second[a:a + step] = (r * (B + b * b)).sum(-1).mean(0)
        u = rng.random(r.shape[:2])
        lab = (u[..., None] > np.cumsum(r, -1)).sum(-1).clip(max=r.shape[-1] - 1)
        bb = np.take_along_axis(b, lab[..., None], -1)[..., 0]
        BB = np.take_along_axis(B, lab[..., None], -1)[..., 0]
        sim = bb + np.sqrt(BB) * rng.standard_normal(bb.shape)
        lower[a:a + step], upper[a:a + step] = _interval(sim, prob, kind)
    sd = np.sqrt(np.maximum(second - mean**2, 0.0))
    return xr.Dataset(
        {"mean": ("obs", mean), "lower": ("obs", lower), "upper": ("obs", upper),
         "sd": ("obs", sd), "observed": ("obs", x)},
        coords={"obs": np.asarray(dt["observed_data"]["obs"].values)},
        attrs={"ci_prob": prob, "ci_kind": kind},
    )
