"""Choosing K by PSIS-LOO among fitted candidates (``bayesgmm fit --k auto``).

BIC over EM fits (:mod:`bayesgmm.selection.criteria`) proposes the candidates; each is
fitted by :func:`bayesgmm.fit` (by the caller: this module never samples) and this
module compares their leave-one-out predictive accuracy (``arviz_stats.loo`` and
``compare``), says which estimates cannot be trusted, and chooses. The decision
(:func:`choose_by_loo`) is a pure function of the comparison table.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..io import format_number

__all__ = ["P_LOO_FACTOR", "choose_by_loo", "compare_loo", "loo_reliability",
           "n_parameters"]

#: LOO is unreliable when p_loo exceeds this multiple of the parameter count: 3K - 1 in
#: 1-D (weights, means and sigmas less the weights' sum-to-one), in D dims
#: K - 1 + K D + K D (D + 1) / 2 (:func:`n_parameters`)
P_LOO_FACTOR = 2.0


def n_parameters(n_components: int, n_features: int = 1) -> int:
    """Free parameters of a K-component mixture with full covariances in D dims.

    Parameters
    ----------
    n_components : int
        K.
    n_features : int, default=1
        D.

    Returns
    -------
    int
        ``K - 1 + K D + K D (D + 1) / 2``: weights less their sum-to-one, means,
        covariances; 3K - 1 in 1-D.
    """
    k, d = int(n_components), int(n_features)
    return k - 1 + k * d + k * d * (d + 1) // 2


def loo_reliability(elpd: Any, n_components: int, n_features: int = 1) -> str | None:
    """Why a PSIS-LOO estimate cannot be trusted, or None.

    Parameters
    ----------
    elpd : arviz_stats.ELPDData
        ``arviz_stats.loo(dt, pointwise=True)`` of a fit.
    n_components : int
        K of that fit.
    n_features : int, default=1
        D of that fit: it has :func:`n_parameters` (K, D) parameters, 3K - 1 in 1-D.

    Returns
    -------
    str or None
        Unreliable when some Pareto k exceed ArviZ's own threshold (``elpd.good_k``,
        ``min(1 - 1/log10(S), 0.7)`` for S draws: the importance sampling fails for those
        points), or when p_loo exceeds :data:`P_LOO_FACTOR` times the parameter count
        (the posterior is far from what its parameters allow: LOO's own estimate of
        its complexity says the fit is degenerate or the sampler did not converge).
    """
    import numpy as np

    why = []
    if getattr(elpd, "pareto_k", None) is not None:
        k = np.asarray(elpd.pareto_k).ravel()
        bad = int(np.sum(k > elpd.good_k))
        if bad:
            why.append(f"{bad} point(s) with Pareto k above {elpd.good_k:.2f} (max "
                       f"{float(np.nanmax(k)):.2f})")
    n_par = n_parameters(n_components, n_features)
    if float(elpd.p) > P_LOO_FACTOR * n_par:
        why.append(f"p_loo {float(elpd.p):.1f} is over {P_LOO_FACTOR:g} x its {n_par} "
                   "parameters")
    return "; ".join(why) or None


def compare_loo(fits: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """PSIS-LOO of each fit, compared, and which estimates cannot be trusted.

    Parameters
    ----------
    fits : dict of str to xarray.DataTree
        Fits with a ``log_likelihood`` group, keyed ``"K=<k>"``.

    Returns
    -------
    table : pandas.DataFrame
        ``arviz_stats.compare`` of their LOO (unrounded), with a ``params`` column
        (:func:`n_parameters`: 3K - 1 in 1-D; D from ``attrs["n_features"]``).
    unreliable : dict of str to str
        The fits whose LOO is unreliable (:func:`loo_reliability`), with the reason.
    """
    import arviz_stats as azs

    loos, unreliable = {}, {}
    for name, dt in fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the Pareto k warning: reported below instead
            loos[name] = azs.loo(dt, pointwise=True)
        why = loo_reliability(loos[name], int(name.split("=")[1]),
                              int(dt.attrs.get("n_features", 1)))
        if why:
            unreliable[name] = why
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = azs.compare(loos, round_to="none")
    table["params"] = [n_parameters(int(str(n).split("=")[1]),
                                    int(fits[str(n)].attrs.get("n_features", 1)))
                       for n in table.index]
    return table, unreliable


def _num(v: float) -> str:
    """A number as the report's tables print it (so the reason and the table agree)."""
    return format_number(float(v))


def choose_by_loo(table: Any, flags: dict[str, str] | None = None) -> tuple[str, str]:
    """The K to keep from an ``arviz_stats.compare`` table, and why, in words.

    Parameters
    ----------
    table : pandas.DataFrame
        ``arviz_stats.compare`` output (best first or not), index ``"K=<k>"``, columns
        ``elpd``, ``elpd_diff`` (model minus the best: 0 for the best, negative for
        worse ones, as in arviz-stats 1.x) and ``dse``. Unrounded values decide.
    flags : dict of str to str, optional
        Candidates that may not win while an unflagged one is left, with the reason
        (not identified, or unreliable LOO).

    Returns
    -------
    name : str
        The chosen row's index.
    reason : str
        One sentence whose numbers are the table's, formatted as the report prints them.

    Notes
    -----
    When the best-elpd candidate is usable, the smallest usable K whose elpd is within 2
    standard errors of the best (``|elpd_diff| <= 2 dse``) is kept: LOO cannot tell such
    models apart, and the simpler mixture has fewer components to interpret. When the
    best is flagged, the usable candidate with the highest elpd is kept. When every
    candidate is flagged, the rule applies to all of them and the reason says so.
    """
    flags = dict(flags or {})
    names = [str(n) for n in table.index]
    elpd = {n: float(table.loc[n, "elpd"]) for n in names}
    diff = {n: float(table.loc[n, "elpd_diff"]) for n in names}
    dse = {n: float(table.loc[n, "dse"]) for n in names}

    def k_of(name: str) -> int:
        return int(name.split("=")[1])

    if len(names) == 1:
        return names[0], "the only candidate"
    usable = [n for n in names if n not in flags]
    prefix = ""
    if not usable:
        usable = names
        prefix = ("no candidate's LOO can be trusted (" + "; ".join(
            f"{n}: {flags[n]}" for n in names) + "), so this choice is provisional: ")
    top = max(names, key=elpd.__getitem__)  # compare's reference: elpd_diff 0
    skipped = "".join(f"; {n} not considered: {flags[n]}" for n in names
                      if n in flags and n != top and usable is not names)
    if top not in usable:
        best = max(usable, key=elpd.__getitem__)
        return best, (prefix + f"{top} has the highest LOO elpd ({best}'s elpd_diff "
                      f"{_num(diff[best])}, dse {_num(dse[best])}) but {flags[top]}, so "
                      f"it is not chosen; {best} has the highest elpd of the others"
                      + skipped)
    close = [n for n in usable if abs(diff[n]) <= 2 * dse[n]]
    best = min(close, key=k_of)
    if best == top:
        others = [n for n in usable if n != top]
        if not others:
            return best, prefix + "the only candidate left to compare" + skipped
        tied = [n for n in others if n in close]  # all larger K: best is the smallest
        if tied:
            n = min(tied, key=k_of)
            return best, (prefix + f"highest LOO elpd; {n} is within 2 standard errors of "
                          f"it ({n}'s elpd_diff {_num(diff[n])}, dse {_num(dse[n])}) but "
                          "has more components, so the simpler mixture is kept" + skipped)
        near = max(others, key=lambda n: diff[n] / max(dse[n], 1e-300))
        return best, (prefix + f"highest LOO elpd, ahead of {near} by more than 2 standard "
                      f"errors ({near}'s elpd_diff {_num(diff[near])}, dse "
                      f"{_num(dse[near])})" + skipped)
    return best, (prefix + f"its LOO elpd is within 2 standard errors of {top}'s "
                  f"(elpd_diff {_num(diff[best])}, dse {_num(dse[best])}), so the simpler "
                  "mixture is kept" + skipped)
