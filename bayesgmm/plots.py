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

from .errors import DataError

__all__ = [
    "density_data",
    "membership_data",
    "plot_density",
    "plot_membership",
    "plot_ppc",
    "plot_selection",
    "plot_trace",
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
    try:
        return np.asarray(dt["observed_data"]["x"].values, dtype=float)
    except KeyError:
        raise DataError(
            "expected a bayesgmm.fit result: a DataTree with an observed_data group."
        ) from None


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
    from .posterior import density

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


def _draw_density(ax: Any, ds: Any, hist, edges, colors, title: str, label: str) -> None:
    grid = ds["x"].values
    ax.stairs(hist, edges, fill=True, color="0.85", label="data (histogram)")
    ax.stairs(hist, edges, color="0.6", linewidth=0.6)
    prob = ds.attrs.get("ci_prob", np.nan)
    ax.fill_between(grid, ds["lower"].values, ds["upper"].values, color="k",
                    alpha=_BAND_ALPHA, linewidth=0, label=f"{prob:.0%} credible band")
    for k, c in zip(ds["component"].values, colors, strict=True):
        ax.plot(grid, ds["component_mean"].sel(component=k).values, color=c, lw=1.3,
                ls="--", label=f"component {k}")
    ax.plot(grid, ds["mean"].values, color="k", lw=2, label=label)
    ax.set_title(title)
    ax.set_xlabel("x (data units)")
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
    _draw_density(axes[0], obs, d["hist"], d["edges"], colors,
                  "Observed values: fitted mixture" if true is not None else "Fitted mixture",
                  "posterior mean density")
    axes[0].legend(fontsize="small", frameon=False)
    if true is not None:
        _draw_density(axes[1], true, d["hist"], d["edges"], colors,
                      "True values: deconvolved mixture (errors removed)",
                      "deconvolved density")
        axes[1].plot(obs["x"].values, obs["mean"].values, color="0.35", lw=1.2, ls=":",
                     label="observed-value density")
        axes[1].legend(fontsize="small", frameon=False)
        top = max(ax.get_ylim()[1] for ax in axes)
        for ax in axes:
            ax.set_ylim(0, top)
    return fig


# ---------------------------------------------------------------------- membership


def membership_data(
    dt: Any, *, n_grid: int = 300, ci_prob: float | None = None
) -> Any:
    """What :func:`plot_membership` draws: p(component | x) on a grid, stacked.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    n_grid : int, default=300
    ci_prob : float, optional
        Interval probability (default: ArviZ's ``stats.ci_prob``).

    Returns
    -------
    xarray.Dataset
        :func:`bayesgmm.membership` on the grid (exact values, no measurement error):
        ``mean``, ``lower``, ``upper`` (dims ``point``, ``component``), plus ``stack``
        (cumulative sum of ``mean`` over components: the upper edge of each stacked
        area) and ``stack_lower``, ``stack_upper`` (that edge moved by the credible
        interval of the component's own probability; exact for the first edge).
    """
    from .posterior import membership

    grid = _grid(_observed(dt), n_grid, pad=0.02)
    ds = membership(dt, grid, ci_prob=ci_prob)
    stack = ds["mean"].cumsum("component")
    ds["stack"] = stack
    ds["stack_lower"] = stack - (ds["mean"] - ds["lower"])
    ds["stack_upper"] = stack + (ds["upper"] - ds["mean"])
    return ds


def plot_membership(dt: Any, *, n_grid: int = 300, ci_prob: float | None = None) -> Any:
    """Class probabilities p(component | x) against x, stacked (seed 001's right panel).

    Each area is a component's posterior-mean probability; the hatched band on each
    boundary is the credible interval of the probability of the component below it.
    Ticks along the bottom mark the data.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    n_grid, ci_prob
        See :func:`membership_data`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes.
    """
    ds = membership_data(dt, n_grid=n_grid, ci_prob=ci_prob)
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
                         label=f"{ds.attrs['ci_prob']:.0%} interval of the boundary"))
    data = _observed(dt)
    ax.plot(data, np.full(data.shape, -0.04), "|", color="k", ms=7, alpha=0.5)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(-0.08, 1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("x (data units)")
    ax.set_ylabel("p(component | x)")
    ax.set_title("Class probabilities")
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


def plot_trace(dt: Any, *, kind: Literal["rank", "trace"] = "rank") -> Any:
    """Sampler diagnostics of the weights, means and sigmas, drawn by ``arviz_plots``.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    kind : {"rank", "trace"}, default="rank"
        ``"rank"``: :func:`arviz_plots.plot_rank` (fractional-rank ECDF differences
        with a simultaneous envelope; chains that disagree leave the envelope).
        ``"trace"``: :func:`arviz_plots.plot_trace_dist` (traces and marginals).

    Returns
    -------
    matplotlib.figure.Figure
        A pyplot figure (close it with ``matplotlib.pyplot.close`` when done).
    """
    import arviz_plots as azp

    if kind == "rank":
        # one row per variable, one column per component
        K = int(dt["posterior"].sizes.get("component", 1))
        pc = azp.plot_rank(dt, var_names=PARAMETERS, backend="matplotlib",
                           col_wrap=min(K, 4))
        return _figure_of(pc, row_height=2.3)
    if kind == "trace":
        return _figure_of(azp.plot_trace_dist(dt, var_names=PARAMETERS, backend="matplotlib"))
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
    n = int(np.prod([dt["posterior_predictive"].sizes[d] for d in ("chain", "draw")]))
    pc = azp.plot_ppc_dist(dt, num_samples=min(num_samples, n), backend="matplotlib")
    return _figure_of(pc)
