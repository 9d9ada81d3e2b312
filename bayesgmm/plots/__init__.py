"""Figures of a :func:`bayesgmm.fit` result. matplotlib is imported only when drawing.

Each figure has two halves: a ``*_data`` function that computes what the figure shows
and returns plain data (xarray / pandas / NumPy), and a ``plot_*`` function that draws
it and returns a :class:`matplotlib.figure.Figure`. Our own figures are built without
pyplot (no global figure registry, nothing to close); the ArviZ ones (:func:`plot_trace`,
:func:`plot_ppc`) come from ``arviz_plots`` and are pyplot figures.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._renamed import renamed_keywords
from .errors import DataError

__all__ = [
    "density_data",
    "membership_data",
    "plot_density",
    "plot_membership",
    "plot_ppc",
    "plot_selection",
    "plot_trace",
    "rank_envelope",
    "selection_data",
]

#: Variables of the posterior shown by the ArviZ figures.
PARAMETERS = ["weights", "means", "sigmas"]
_BAND_ALPHA = 0.25


def _colors(k: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(k)]


def _new_figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _observed(dt: Any) -> np.ndarray:
    from .posterior.summaries import _observed_values

    return _observed_values(dt)


def _xlabel(dt: Any) -> str:
    from .posterior.summaries import data_label

    return data_label(dt)


def _has_errors(dt: Any) -> bool:
    if "constant_data" not in dt.children or "x_err" not in dt["constant_data"]:
        return False
    return bool(np.any(np.asarray(dt["constant_data"]["x_err"].values) > 0))


def _grid(x: np.ndarray, n_grid: int, pad: float = 0.08) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo if hi > lo else max(abs(lo), 1.0)
    return np.linspace(lo - pad * span, hi + pad * span, n_grid)


# ---------------------------------------------------------------------- density


def density_data(
    dt: Any, *, n_grid: int = 400, bins: int | str = "auto", ci_prob: float | None = None
) -> dict[str, Any]:
    """What :func:`plot_density` draws.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    n_grid : int, default=400
        Number of grid points spanning the data (plus 8% on each side).
    bins : int or str, default="auto"
        Histogram bins, as for :func:`numpy.histogram_bin_edges`.
    ci_prob : float, optional
        Band probability (default: ArviZ's ``stats.ci_prob``).

    Returns
    -------
    dict
        ``x`` (the data), ``hist`` and ``edges`` (histogram normalised to a density),
        ``observed`` (:func:`bayesgmm.density` of observed values, errors included),
        ``true`` (the deconvolved density of true values, or None without measurement
        errors) and ``em`` (dict of EM ``weights``, ``means``, ``sigmas``, or None).
    """
    from .posterior.summaries import density

    x = _observed(dt)
    grid = _grid(x, n_grid)
    hist, edges = np.histogram(x, bins=np.histogram_bin_edges(x, bins=bins), density=True)
    observed = density(dt, grid, ci_prob=ci_prob)
    true = density(dt, grid, deconvolved=True, ci_prob=ci_prob) if _has_errors(dt) else None
    em = None
    if "em_estimate" in dt.children:
        ds = dt["em_estimate"]
        em = {v: np.asarray(ds[v].values, dtype=float) for v in PARAMETERS}
    return {"x": x, "hist": hist, "edges": edges, "observed": observed, "true": true,
            "em": em}


def _draw_density(ax: Any, ds: Any, hist, edges, colors, title: str, label: str,
                  xlabel: str) -> None:
    from .posterior.summaries import interval_label

    grid = ds["x"].values
    ax.stairs(hist, edges, fill=True, color="0.85", label="data (histogram)")
    ax.stairs(hist, edges, color="0.6", linewidth=0.6)
    band = interval_label(ds.attrs.get("ci_prob"), ds.attrs.get("ci_kind")).replace(
        " interval", " band")
    ax.fill_between(grid, ds["lower"].values, ds["upper"].values, color="k",
                    alpha=_BAND_ALPHA, linewidth=0, label=band)
    for k, c in zip(ds["component"].values, colors, strict=True):
        ax.plot(grid, ds["component_mean"].sel(component=k).values, color=c, lw=1.3,
                ls="--", label=f"component {k}")
    ax.plot(grid, ds["mean"].values, color="k", lw=2, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_ylim(bottom=0)
    ax.set_xlim(grid[0], grid[-1])


def plot_density(
    dt: Any, *, n_grid: int = 400, bins: int | str = "auto", ci_prob: float | None = None
) -> Any:
    """The fitted density over the data's histogram, with its band and each component.

    With measurement errors a second panel shows the deconvolved density of the true
    values (errors removed), with the observed-value density dashed for comparison.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    n_grid, bins, ci_prob
        See :func:`density_data`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, or two (observed, true values) when the fit has measurement errors.
    """
    d = density_data(dt, n_grid=n_grid, bins=bins, ci_prob=ci_prob)
    obs, true = d["observed"], d["true"]
    colors = _colors(obs.sizes["component"])
    fig, axes = _new_figure(12 if true is not None else 7, 4.2, 2 if true is not None else 1)
    xlabel = _xlabel(dt)
    _draw_density(axes[0], obs, d["hist"], d["edges"], colors,
                  "Observed values: fitted mixture" if true is not None else "Fitted mixture",
                  "posterior mean density", xlabel)
    axes[0].legend(fontsize="small", frameon=False)
    if true is not None:
        _draw_density(axes[1], true, d["hist"], d["edges"], colors,
                      "True values: deconvolved mixture (errors removed)",
                      "deconvolved density", xlabel)
        axes[1].plot(obs["x"].values, obs["mean"].values, color="0.35", lw=1.2, ls=":",
                     label="observed-value density")
        axes[1].legend(fontsize="small", frameon=False)
        top = max(ax.get_ylim()[1] for ax in axes)
        for ax in axes:
            ax.set_ylim(0, top)
    return fig


# ---------------------------------------------------------------------- membership


@renamed_keywords(x_err="X_err")
def membership_data(
    dt: Any, *, n_grid: int = 300, ci_prob: float | None = None, X_err: float | None = None
) -> Any:
    """What :func:`plot_membership` draws: p(component | x) on a grid, stacked.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    n_grid : int, default=300
    ci_prob : float, optional
        Interval probability (default: ArviZ's ``stats.ci_prob``).
    X_err : float, optional
        The measurement error of the new values (default: none, exact values).
        (Formerly ``x_err``: that keyword still works, with a ``FutureWarning``.)

    Returns
    -------
    xarray.Dataset
        :func:`bayesgmm.membership` on the grid (with measurement error ``X_err``):
        ``mean``, ``lower``, ``upper`` (dims ``point``, ``component``), plus ``stack``
        (cumulative sum of ``mean`` over components: the upper edge of each stacked
        area) and ``stack_lower``, ``stack_upper`` (that edge moved by the credible
        interval of the component's own probability; exact for the first edge).
    """
    from .posterior.summaries import membership

    grid = _grid(_observed(dt), n_grid, pad=0.02)
    ds = membership(dt, grid, ci_prob=ci_prob, X_err=X_err)
    stack = ds["mean"].cumsum("component")
    ds["stack"] = stack
    ds["stack_lower"] = stack - (ds["mean"] - ds["lower"])
    ds["stack_upper"] = stack + (ds["upper"] - ds["mean"])
    return ds


@renamed_keywords(x_err="X_err")
def plot_membership(
    dt: Any, *, n_grid: int = 300, ci_prob: float | None = None, X_err: float | None = None
) -> Any:
    """Class probabilities p(component | x) of a new value x, stacked.

    Each area is a component's posterior-mean probability; the hatched band on each
    boundary is the credible interval of the probability of the component below it.
    Ticks along the bottom mark the data. The title says which measurement error the
    new value is assumed to have (``X_err``; none by default).

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    n_grid, ci_prob, X_err
        See :func:`membership_data` (``X_err`` was ``x_err``, which still works with a
        ``FutureWarning``).

    Returns
    -------
    matplotlib.figure.Figure
        One axes.
    """
    from .posterior.summaries import data_name, interval_label

    ds = membership_data(dt, n_grid=n_grid, ci_prob=ci_prob, X_err=X_err)
    x = ds["x"].values
    K = ds.sizes["component"]
    colors = _colors(K)
    fig, (ax,) = _new_figure(7, 4.2)
    below = np.zeros_like(x)
    for k, c in zip(range(K), colors, strict=True):
        top = ds["stack"].isel(component=k).values
        ax.fill_between(x, below, top, color=c, alpha=0.55, linewidth=0,
                        label=f"component {k}")
        if k < K - 1:
            ax.fill_between(x, ds["stack_lower"].isel(component=k).values,
                            ds["stack_upper"].isel(component=k).values, facecolor="none",
                            edgecolor="k", hatch="///", linewidth=0, alpha=0.6)
            ax.plot(x, top, color="k", lw=0.8)
        below = top
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="none", edgecolor="k", hatch="///", linewidth=0,
                         label=f"{interval_label(ds.attrs['ci_prob'], ds.attrs['ci_kind'])} "
                               "of the boundary"))
    data = _observed(dt)
    ax.plot(data, np.full(data.shape, -0.04), "|", color="k", ms=7, alpha=0.5)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(-0.08, 1)
    ax.set_yticks(np.linspace(0, 1, 6))
    name = data_name(dt)
    ax.set_xlabel(f"new value: {_xlabel(dt)}")
    ax.set_ylabel(f"p(component | {name})")
    err = float(ds.attrs.get("x_err", 0.0))
    ax.set_title(f"Class probabilities of a new {name}, "
                 + ("measured without error" if not err else f"measured with error {err:.3g}"))
    ax.legend(handles=handles, fontsize="small", loc="center left",
              bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.text(1.01, 0.02, "ticks: the data", transform=ax.transAxes, fontsize="small")
    return fig


# ---------------------------------------------------------------------- selection


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


# ---------------------------------------------------------------------- ArviZ figures


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

    from .diagnostics import rank as _rank

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

    from .posterior.summaries import data_name

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
