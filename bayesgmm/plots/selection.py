"""The figures of the choice of K: BIC and AIC of the EM fits, and p(K | data)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from ._common import _new_figure

__all__ = ["plot_posterior_k", "plot_selection", "selection_data"]

#: the evidence methods whose estimate passed its check, as
#: ``bayes.posterior_k.evidence_checked`` says (plots read results and never import
#: ``bayes``; a test keeps the two in step): the other bars are hatched
CHECKED_METHODS = ("importance", "nuts+importance", "empty-component")


def selection_data(table: Any) -> Any:
    """What :func:`plot_selection` draws.

    Parameters
    ----------
    table : pandas.DataFrame or SelectionResult
        The ``table`` of :func:`bayesgmm.select_n_components` (columns ``k``, ``bic``,
        ``aic``; optional ``degenerate``), or the result itself.

    Returns
    -------
    pandas.DataFrame
        ``k``, ``bic``, ``aic``, ``usable`` (not degenerate), ``best_bic``, ``best_aic``
        (bool: the lowest usable value), sorted by k.
    """
    import pandas as pd

    table = getattr(table, "table", table)
    if not isinstance(table, pd.DataFrame) or not {"k", "bic", "aic"} <= set(table.columns):
        raise DataError(
            "expected the table of bayesgmm.select_n_components: a DataFrame with "
            f"columns k, bic, aic; got {type(table).__name__}."
        )
    out = table[["k", "bic", "aic"]].copy().sort_values("k").reset_index(drop=True)
    deg = table["degenerate"] if "degenerate" in table else pd.Series(False, index=table.index)
    out["usable"] = ~deg.loc[table.sort_values("k").index].to_numpy(dtype=bool)
    for crit in ("bic", "aic"):
        values = out[crit].where(out["usable"] & np.isfinite(out[crit]))
        out[f"best_{crit}"] = out.index == values.idxmin() if values.notna().any() else False
    return out


def plot_selection(table: Any) -> Any:
    """BIC and AIC against the number of components, the best of each marked.

    Parameters
    ----------
    table : pandas.DataFrame or SelectionResult
        See :func:`selection_data`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes.
    """
    d = selection_data(table)
    fig, (ax,) = _new_figure(6, 4)
    for crit, c, m in (("bic", "C0", "o"), ("aic", "C3", "s")):
        ax.plot(d["k"], d[crit], color=c, marker=m, ms=5, label=crit.upper())
        best = d[d[f"best_{crit}"]]
        if len(best):
            k, v = int(best["k"].iloc[0]), float(best[crit].iloc[0])
            ax.plot([k], [v], marker="*", ms=18, color=c, mec="k", ls="none",
                    label=f"best by {crit.upper()}: K = {k}")
    bad = d[~d["usable"]]
    if len(bad):
        ax.plot(bad["k"], bad["bic"], "x", color="k", ms=8, ls="none",
                label="degenerate fit (never chosen)")
    ax.set_xticks(d["k"].to_numpy())
    ax.set_xlabel("number of components K")
    ax.set_ylabel("information criterion (lower is better)")
    ax.set_title("Choosing K: BIC and AIC of the EM fits")
    ax.legend(fontsize="small", frameon=False)
    return fig


def plot_posterior_k(table: Any, chosen: int | None = None) -> Any:
    """p(K | data) as bars with their Monte Carlo error bars, the prior p(K) beside them.

    Parameters
    ----------
    table : pandas.DataFrame or PosteriorK
        :meth:`bayesgmm.bayes.posterior_k.PosteriorK.to_dataframe` (index K, columns
        ``p(K | data)``, ``sd``, ``prior``, ``method``), or the result itself.
    chosen : int, optional
        The K that was fitted, drawn in a darker colour.

    Returns
    -------
    matplotlib.figure.Figure
        One axes. A K whose evidence failed its check (``method`` other than
        ``"importance"``, ``"nuts+importance"`` or ``"empty-component"``) is hatched.
    """
    if hasattr(table, "to_dataframe"):
        table = table.to_dataframe()
    if not {"p(K | data)", "sd"} <= set(getattr(table, "columns", [])):
        raise DataError("expected PosteriorK.to_dataframe()'s table (index K, columns "
                        f"'p(K | data)', 'sd'); got {type(table).__name__}.")
    ks = np.asarray(table.index, dtype=int)
    p = table["p(K | data)"].to_numpy(dtype=float)
    sd = table["sd"].to_numpy(dtype=float)
    fig, (ax,) = _new_figure(6, 4)
    colours = ["C0" if k == chosen else "C9" for k in ks]
    bars = ax.bar(ks, p, yerr=2 * sd, color=colours, capsize=4, width=0.6,
                  error_kw={"elinewidth": 1.2}, label="p(K | data) +- 2 Monte Carlo sd")
    if "method" in table:
        for bar, method in zip(bars, table["method"], strict=True):
            if method not in CHECKED_METHODS:
                bar.set_hatch("//")
    if "prior" in table:
        ax.plot(ks, table["prior"].to_numpy(dtype=float), "k_", ms=22, mew=2,
                label="prior p(K)")
    ax.set_xticks(ks)
    ax.set_ylim(0, max(1.0, float(np.max(p + 2 * sd))) * 1.02)
    ax.set_xlabel("number of components K")
    ax.set_ylabel("posterior probability")
    ax.set_title("Choosing K: p(K | data)")
    ax.legend(fontsize="small", frameon=False)
    return fig
