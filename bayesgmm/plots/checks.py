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
from ._common import PARAMETERS, _feature_label, _is_md, _xlabel

__all__ = ["checked_view", "plot_ppc", "plot_trace", "rank_envelope"]


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


def checked_view(dt: Any) -> tuple[Any, list[str]]:
    """What the rank and trace plots draw: ``dt`` and its variables.

    1-D results: ``dt`` and ``PARAMETERS``. D dims: a tree whose posterior has one
    variable per feature, each with dims (chain, draw, component): ``weights``,
    ``means[f]`` and ``sds[f]`` for each feature f, and ``correlations[a,b]`` for each
    pair of features (a before b; the diagonal is 1 in every draw, the upper triangle
    repeats the lower), so that each panel and each row of the figures is one
    parameter of one feature.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.

    Returns
    -------
    tuple
        ``(tree, var_names)``.
    """
    if not _is_md(dt):
        return dt, list(PARAMETERS)
    import xarray as xr

    post = dt["posterior"]
    feats = [str(f) for f in post["feature"].values]
    lead = ("chain", "draw", "component")
    out = {"weights": post["weights"].transpose(*lead)}
    for var in ("means", "sds"):
        for i, f in enumerate(feats):
            out[f"{var}[{f}]"] = post[var].isel(feature=i).transpose(*lead).drop_vars(
                "feature", errors="ignore")
    if "correlations" in post:
        corr = post["correlations"]
        for i in range(len(feats)):
            for j in range(i + 1, len(feats)):
                out[f"correlations[{feats[i]},{feats[j]}]"] = corr.isel(
                    feature=i, feature_=j).transpose(*lead).drop_vars(
                    ["feature", "feature_"], errors="ignore")
    ds = xr.Dataset(out)
    for v in ds.data_vars:
        ds[v].attrs = {}
    return xr.DataTree.from_dict({"posterior": ds}), list(ds.data_vars)


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
    tree, names = checked_view(dt)
    post = _rank.thinned(tree, names)
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


def _finish_trace(fig: Any, dt: Any, names: list[str] = PARAMETERS) -> None:
    """Titles, units and per-row legends on arviz_plots' trace/density figure."""
    from matplotlib.lines import Line2D

    rows: dict[float, list[Any]] = {}
    for ax in fig.axes:
        rows.setdefault(round(ax.get_position().y0, 3), []).append(ax)
    for axes in rows.values():
        trace = next((ax for ax in axes if ax.get_ylabel() in names), None)
        dist = next((ax for ax in axes if ax.get_xlabel() in names), None)
        if trace is None:
            continue
        var = trace.get_ylabel()
        label = _param_label(dt, var) if var in dt["posterior"] else var
        trace.set_ylabel(label)
        trace.set_xlabel("draw (after tuning)")
        trace.set_title(f"{var}: draws of each chain", fontsize="medium")
        K = int(dt["posterior"].sizes.get("component", 1))
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

        For a D-dim result the variables are those of :func:`checked_view`: the
        weights, and each feature's means and sds and each pair's correlations.

    Returns
    -------
    matplotlib.figure.Figure
        A pyplot figure (close it with ``matplotlib.pyplot.close`` when done).
    """
    import arviz_plots as azp

    tree, names = checked_view(dt)
    if kind == "rank":
        # one row per variable, one column per component
        K = int(dt["posterior"].sizes.get("component", 1))
        # thinned, as the envelope (and diagnose's rank_ecdf check) assume; ArviZ's
        # multi-chain p has no power with 2 chains, so it is printed from 3 on
        pc = azp.plot_rank(tree, var_names=names, backend="matplotlib", thin=True,
                           col_wrap=min(K, 4))
        fig = _figure_of(pc, row_height=2.3)
        _finish_rank(fig, dt)
        return fig
    if kind == "trace":
        # one colour per component in every row (the density figure's colours), one
        # line style per chain
        fig = _figure_of(azp.plot_trace_dist(
            tree, var_names=names, backend="matplotlib",
            aes={"color": ["component"], "linestyle": ["chain"]}))
        fig.set_size_inches(fig.get_size_inches()[0] * 1.15, fig.get_size_inches()[1] * 1.2)
        fig.set_layout_engine("constrained")
        _finish_trace(fig, dt, names)
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
    if _is_md(dt):
        return _ppc_md(dt, m)
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


def _ppc_md(dt: Any, m: int) -> Any:
    """The D-dim check: one panel per feature, over the points where it was observed."""
    import arviz_plots as azp
    import xarray as xr
    from matplotlib.lines import Line2D

    from ..posterior.summaries import data_name

    name = data_name(dt)
    obs = dt["observed_data"][name].transpose("obs", "feature")
    rep = dt["posterior_predictive"][name].transpose("chain", "draw", "obs", "feature")
    feats = [str(f) for f in obs["feature"].values]
    observed, replicated = {}, {}
    for i, f in enumerate(feats):
        keep = np.flatnonzero(~np.isnan(obs.values[:, i]))
        dim = f"obs_{i}"
        observed[f] = xr.DataArray(obs.values[keep, i], dims=(dim,))
        replicated[f] = xr.DataArray(rep.values[:, :, keep, i], dims=("chain", "draw", dim))
    tree = xr.DataTree.from_dict({
        "posterior_predictive": xr.Dataset(replicated, coords={
            "chain": rep["chain"].values, "draw": rep["draw"].values}),
        "observed_data": xr.Dataset(observed)})
    pc = azp.plot_ppc_dist(tree, var_names=feats, num_samples=m, backend="matplotlib",
                           col_wrap=min(len(feats), 3))
    fig = _figure_of(pc)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
    rep_color = "C0"
    for ax in panels:
        rep_color = next((ln.get_color() for ln in ax.lines if ln.get_color() != "#000000"),
                         rep_color)
        ax.set_xlabel(_feature_label(ax.get_title()))
        ax.set_title("")
    fig.suptitle(f"Posterior predictive check of {name}, feature by feature "
                 "(each over the points where it was observed)", fontsize="medium")
    fig.legend(handles=[Line2D([], [], color="k", lw=2, label="observed data"),
                        Line2D([], [], color=rep_color, lw=1, alpha=0.6,
                               label=f"{m} data sets replicated from the posterior")],
               loc="outside lower center", ncols=2, frameon=False, fontsize="small")
    fig.set_size_inches(4.2 * min(len(feats), 3), 3.2 * -(-len(feats) // 3) + 0.8)
    fig.set_layout_engine("constrained")
    return fig
