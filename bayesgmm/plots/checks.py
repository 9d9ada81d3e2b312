"""Figures of the sampling and predictive checks, drawn by ``arviz_plots``.

Rank plots with bayesgmm's simultaneous envelope (:func:`rank_envelope`, the numbers
of :mod:`bayesgmm.diagnostics.rank`), traces with a legend of components and chains,
and the posterior predictive check. These are pyplot figures (``arviz_plots`` makes
them), unlike the mixture's own.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..errors import DataError
from ._common import PARAMETERS, _xlabel

__all__ = ["plot_ppc", "plot_trace", "rank_envelope"]


def _figure_of(pc: Any, row_height: float | None = None) -> Any:
    fig = pc.get_viz("figure")
    if row_height is not None:  # arviz_plots' fixed spacing lets titles hit tick labels
        rows = len({round(ax.get_position().y0, 3) for ax in fig.axes if ax.get_visible()})
        fig.set_size_inches(fig.get_size_inches()[0], row_height * max(rows, 1))
        fig.set_layout_engine("constrained")
    return fig


def _param_label(dt: Any, var: str) -> str:
    units = str(dt["posterior"][var].attrs.get("units", "") or "")
    return f"{var} [{units}]" if units and units != "data units" else var


def rank_envelope(dt: Any, *, envelope_prob: float | None = None) -> dict[str, Any]:
    """The simultaneous envelope drawn on the rank plots.

    The band that the rank-ECDF differences of all C chains stay inside, at all ranks
    at once, with probability about ``envelope_prob`` when the chains sample the same
    distribution, for the draws thinned to about independent ones (``arviz_stats.thin``,
    as the rank plot draws them): the simultaneous band of one ECDF of n independent
    uniforms (Säilynoja et al. 2022) at probability ``envelope_prob ** (1 / C)``.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    envelope_prob : float, optional
        Default: ArviZ's ``stats.envelope_prob`` (0.99).

    Returns
    -------
    dict
        ``x`` (fractional ranks), ``lower``, ``upper`` (ECDF minus x), ``prob`` and
        ``n_draws`` (draws per chain after thinning).
    """
    from arviz_base import rcParams

    from ..diagnostics import rank as _rank

    prob = float(rcParams["stats.envelope_prob"] if envelope_prob is None else envelope_prob)
    post = _rank.thinned(dt, PARAMETERS)
    n, C = int(post.sizes["draw"]), int(post.sizes["chain"])
    return {**_rank.envelope(n, C, prob), "prob": prob, "n_draws": n}


def _finish_rank(fig: Any, dt: Any) -> None:
    """Envelope, y label and a legend of the chains on arviz_plots' rank figure."""
    from matplotlib.collections import PathCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    env = rank_envelope(dt)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
    C = int(dt["posterior"].sizes["chain"])
    for ax in panels:
        if C < 3:  # ArviZ's multi-chain p has no power with 2 chains: do not show it
            for artist in [*ax.texts, *(c for c in ax.collections
                                        if isinstance(c, PathCollection))]:
                artist.remove()
        lo, hi = ax.get_ylim()
        ax.fill_between(env["x"], env["lower"], env["upper"], step="post", color="0.5",
                        alpha=0.18, linewidth=0, zorder=0)
        top = max(abs(lo), abs(hi), float(np.max(np.abs(env["upper"]))) * 1.15)
        ax.set_ylim(-top, top)
        ax.axhline(0, color="0.4", lw=0.5, zorder=0)
    lines = panels[0].lines[:C] if panels else []
    handles = [Line2D([], [], color=ln.get_color(), lw=1.5, label=f"chain {i}")
               for i, ln in enumerate(lines)]
    handles.append(Patch(color="0.5", alpha=0.3,
                         label=f"{env['prob']:.0%} simultaneous envelope"))
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles),
               frameon=False, fontsize="small")
    fig.supylabel("ECDF of the chain's fractional ranks minus uniform", fontsize="small")


def _finish_trace(fig: Any, dt: Any) -> None:
    """Titles, units and per-row legends on arviz_plots' trace/density figure."""
    from matplotlib.lines import Line2D

    rows: dict[float, list[Any]] = {}
    for ax in fig.axes:
        rows.setdefault(round(ax.get_position().y0, 3), []).append(ax)
    for axes in rows.values():
        trace = next((ax for ax in axes if ax.get_ylabel() in PARAMETERS), None)
        dist = next((ax for ax in axes if ax.get_xlabel() in PARAMETERS), None)
        if trace is None:
            continue
        var = trace.get_ylabel()
        label = _param_label(dt, var)
        trace.set_ylabel(label)
        trace.set_xlabel("draw (after tuning)")
        trace.set_title(f"{var}: draws of each chain", fontsize="medium")
        K = int(dt["posterior"][var].sizes.get("component", 1))
        colors = list(dict.fromkeys(tuple(np.atleast_1d(ln.get_color()))
                                    if not isinstance(ln.get_color(), str) else ln.get_color()
                                    for ln in trace.lines))[:K]
        styles = list(dict.fromkeys(ln.get_linestyle() for ln in trace.lines))
        handles = [Line2D([], [], color=c, lw=1.5, label=f"component {k}")
                   for k, c in enumerate(colors)]
        handles += [Line2D([], [], color="0.3", ls=ls, lw=1.2, label=f"chain {i}")
                    for i, ls in enumerate(styles)]
        trace.legend(handles=handles, fontsize="x-small", frameon=False, loc="center left",
                     bbox_to_anchor=(1.01, 0.5))
        if dist is not None:
            dist.set_xlabel(label)
            dist.set_title(f"{var}: posterior density of each chain", fontsize="medium")


def plot_trace(dt: Any, *, kind: Literal["rank", "trace"] = "rank") -> Any:
    """Sampler diagnostics of the weights, means and sigmas, drawn by ``arviz_plots``.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    kind : {"rank", "trace"}, default="rank"
        ``"rank"``: :func:`arviz_plots.plot_rank` (fractional-rank ECDF differences of
        each chain, the draws thinned to about independent ones), with the simultaneous
        envelope of :func:`rank_envelope` shaded; with 3 or more chains each panel also
        prints the p-value of ArviZ's multi-chain uniformity test.
        ``"trace"``: :func:`arviz_plots.plot_trace_dist` (traces and marginals), with
        titles, units and a legend of components and chains.

    Returns
    -------
    matplotlib.figure.Figure
        A pyplot figure (close it with ``matplotlib.pyplot.close`` when done).
    """
    import arviz_plots as azp

    if kind == "rank":
        # one row per variable, one column per component
        K = int(dt["posterior"].sizes.get("component", 1))
        # thinned, as the envelope (and diagnose's rank_ecdf check) assume; ArviZ's
        # multi-chain p has no power with 2 chains, so it is printed from 3 on
        pc = azp.plot_rank(dt, var_names=PARAMETERS, backend="matplotlib", thin=True,
                           col_wrap=min(K, 4))
        fig = _figure_of(pc, row_height=2.3)
        _finish_rank(fig, dt)
        return fig
    if kind == "trace":
        # one colour per component in every row (the density figure's colours), one
        # line style per chain
        fig = _figure_of(azp.plot_trace_dist(
            dt, var_names=PARAMETERS, backend="matplotlib",
            aes={"color": ["component"], "linestyle": ["chain"]}))
        fig.set_size_inches(fig.get_size_inches()[0] * 1.15, fig.get_size_inches()[1] * 1.2)
        fig.set_layout_engine("constrained")
        _finish_trace(fig, dt)
        return fig
    raise DataError(f"kind must be 'rank' or 'trace'; got {kind!r}.")


def plot_ppc(dt: Any, *, num_samples: int = 50) -> Any:
    """Posterior predictive check: replicated data sets' densities against the data's.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result (needs ``posterior_predictive`` and
        ``observed_data``).
    num_samples : int, default=50
        Number of replicated data sets drawn.

    Returns
    -------
    matplotlib.figure.Figure
        A pyplot figure from :func:`arviz_plots.plot_ppc_dist`.
    """
    import arviz_plots as azp

    if "posterior_predictive" not in dt.children:
        raise DataError("the DataTree has no posterior_predictive group to check.")
    from matplotlib.lines import Line2D

    from ..posterior.summaries import data_name

    n = int(np.prod([dt["posterior_predictive"].sizes[d] for d in ("chain", "draw")]))
    m = min(num_samples, n)
    pc = azp.plot_ppc_dist(dt, var_names=[data_name(dt)], num_samples=m,
                           backend="matplotlib")
    fig = _figure_of(pc)
    ax = fig.axes[0]
    rep = next((ln.get_color() for ln in ax.lines if ln.get_color() != "#000000"), "C0")
    ax.set_xlabel(_xlabel(dt))
    ax.set_ylabel("density")
    ax.set_title(f"Posterior predictive check of {data_name(dt)}")
    ax.legend(handles=[Line2D([], [], color="k", lw=2, label="observed data"),
                       Line2D([], [], color=rep, lw=1, alpha=0.6,
                              label=f"{m} data sets replicated from the posterior")],
              fontsize="small", frameon=False)
    return fig
