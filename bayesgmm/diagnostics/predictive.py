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
    obs = np.asarray(dt["observed_data"][var].values, dtype=float).ravel()
    rep = np.asarray(dt["posterior_predictive"][var].values, dtype=float)
    rep = rep.reshape(-1, obs.size)
    if rep.shape[0] < 1 / alpha:
        # with few replicates (e.g. --thin-ppc 1) the p-value is too coarse: a correct
        # model would fail a two-sided test at alpha by chance far more often than alpha
        return [_skip(n, alpha, f"only {rep.shape[0]} replicated data sets; the check "
                      f"needs at least {int(np.ceil(1 / alpha))}") for n in names]
    lo, hi = np.quantile(obs, [tail_prob, 1 - tail_prob])

    def stats(y):  # y: (m, n) -> sd, skewness, fraction outside the observed quantiles
        d = y - y.mean(axis=-1, keepdims=True)
        sd = np.sqrt((d**2).mean(axis=-1))
        skew = (d**3).mean(axis=-1) / np.maximum(sd, 1e-300) ** 3
        tails = ((y < lo) | (y > hi)).mean(axis=-1)
        return sd, skew, tails

    t_obs = stats(obs[None, :])
    t_rep = stats(rep)
    what = ("spread (sd)", "skewness",
            f"fraction of points beyond the observed {100 * tail_prob:g}% and "
            f"{100 * (1 - tail_prob):g}% quantiles")
    rows = []
    for name, w, to, tr in zip(names, what, t_obs, t_rep, strict=True):
        p = float(np.mean(tr > to[0]) + 0.5 * np.mean(tr == to[0]))
        ok = alpha <= p <= 1 - alpha
        rows.append(_row(
            name, ok, p, alpha,
            f"data replicated from the posterior reproduce the observed {w} (p = {p:.2f})"
            if ok else
            f"data replicated from the posterior do not reproduce the observed {w} "
            f"(posterior predictive p = {p:.3f}), so the model misses a feature of the "
            "data; compare other numbers of components by LOO and look for outliers"))
    return rows
