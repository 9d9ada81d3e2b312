"""Posterior predictive checks: data replicated from the posterior against the data.

Posterior predictive p-values (Gelman, Meng & Stern 1996) of the spread, the skewness and
the fraction of points in the observed tails, from ``posterior_predictive`` and
``observed_data``; rows of :func:`~bayesgmm.diagnose`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._rows import _row, _skip


def ppc_rows(dt: Any, alpha: float, tail_prob: float) -> list[dict[str, Any]]:
    """Rows ``ppc_sd``, ``ppc_skewness``, ``ppc_tails``: two-sided p-values at ``alpha``."""
    from ..errors import DataError
    from ..posterior.summaries import data_name

    names = ("ppc_sd", "ppc_skewness", "ppc_tails")
    try:
        var = data_name(dt)
    except DataError:
        var = None
    if var is None or "posterior_predictive" not in dt.children \
            or var not in dt["posterior_predictive"]:
        return [_skip(n, alpha, "no posterior_predictive or observed_data group")
                for n in names]
    observed = dt["observed_data"][var]
    if "feature" in observed.dims:
        return _ppc_rows_md(dt, var, alpha, tail_prob)
    obs = np.asarray(observed.values, dtype=float).ravel()
    rep = np.asarray(dt["posterior_predictive"][var].values, dtype=float)
    rep = rep.reshape(-1, obs.size)
    if rep.shape[0] < 1 / alpha:
        # with few replicates (e.g. --thin-ppc 1) the p-value is too coarse: a correct
        # model would fail a two-sided test at alpha by chance far more often than alpha
        return [_skip(n, alpha, f"only {rep.shape[0]} replicated data sets; the check "
                      f"needs at least {int(np.ceil(1 / alpha))}") for n in names]
    t_obs, t_rep = _statistics(obs, rep, tail_prob)
    what = _what(tail_prob)
    rows = []
    for name, w, to, tr in zip(names, what, t_obs, t_rep, strict=True):
        p = _p_value(to, tr)
        ok = alpha <= p <= 1 - alpha
        rows.append(_row(
            name, ok, p, alpha,
            f"data replicated from the posterior reproduce the observed {w} (p = {p:.2f})"
            if ok else
            f"data replicated from the posterior do not reproduce the observed {w} "
            f"(posterior predictive p = {p:.3f}), so the model misses a feature of the "
            "data; compare other numbers of components by LOO and look for outliers"))
    return rows


_NAMES = ("ppc_sd", "ppc_skewness", "ppc_tails")


def _what(tail_prob: float) -> tuple[str, str, str]:
    return ("spread (sd)", "skewness",
            f"fraction of points beyond the observed {100 * tail_prob:g}% and "
            f"{100 * (1 - tail_prob):g}% quantiles")


def _statistics(obs: np.ndarray, rep: np.ndarray, tail_prob: float):
    """(sd, skewness, tail fraction) of the observed values (n,) and replicates (m, n)."""
    lo, hi = np.quantile(obs, [tail_prob, 1 - tail_prob])

    def stats(y):  # y: (m, n) -> sd, skewness, fraction outside the observed quantiles
        d = y - y.mean(axis=-1, keepdims=True)
        sd = np.sqrt((d**2).mean(axis=-1))
        skew = (d**3).mean(axis=-1) / np.maximum(sd, 1e-300) ** 3
        tails = ((y < lo) | (y > hi)).mean(axis=-1)
        return sd, skew, tails

    return stats(obs[None, :]), stats(rep)


def _p_value(t_obs: np.ndarray, t_rep: np.ndarray) -> float:
    return float(np.mean(t_rep > t_obs[0]) + 0.5 * np.mean(t_rep == t_obs[0]))


def _ppc_rows_md(dt: Any, var: str, alpha: float, tail_prob: float) -> list[dict[str, Any]]:
    """D dims: the three statistics per feature, on the points that hold the feature.

    The replicates are complete, the data miss values: each feature's statistic is
    taken over the points that observed it, in the data and in every replicate. The
    row reports the feature whose p-value is most extreme, checked at ``alpha / D``
    (Bonferroni over the features, so a correct model fails a row about as often as
    in 1-D).
    """
    obs_da = dt["observed_data"][var].transpose("obs", "feature")
    rep_da = dt["posterior_predictive"][var].transpose(..., "obs", "feature")
    obs = np.asarray(obs_da.values, dtype=float)
    rep = np.asarray(rep_da.values, dtype=float).reshape(-1, *obs.shape)
    D = obs.shape[1]
    level = alpha / D
    if rep.shape[0] < 1 / level:
        return [_skip(n, alpha, f"only {rep.shape[0]} replicated data sets; the check "
                      f"needs at least {int(np.ceil(1 / level))} ({D} features)")
                for n in _NAMES]
    feats = obs_da["feature"].values
    p = np.empty((3, D))
    for j in range(D):
        held = ~np.isnan(obs[:, j])
        t_obs, t_rep = _statistics(obs[held, j], rep[:, held, j], tail_prob)
        for s in range(3):
            p[s, j] = _p_value(t_obs[s], t_rep[s])
    rows = []
    for s, (name, w) in enumerate(zip(_NAMES, _what(tail_prob), strict=True)):
        j = int(np.argmax(np.abs(p[s] - 0.5)))
        pj = float(p[s, j])
        ok = level <= pj <= 1 - level
        where = f"in feature {feats[j]}"
        rows.append(_row(
            name, ok, pj, level,
            f"data replicated from the posterior reproduce the observed {w} in every "
            f"feature (most extreme p = {pj:.2f}, {where})" if ok else
            f"data replicated from the posterior do not reproduce the observed {w} "
            f"{where} (posterior predictive p = {pj:.3f}, checked at {level:.3g} = "
            f"{alpha:g} / {D} features), so the model misses a feature of the data; "
            "compare other numbers of components by LOO and look for outliers"))
    return rows
