"""Figures of the fitted mixture: its density over the data, and class probabilities.

Drawn with matplotlib's object API (no pyplot); each ``plot_*`` has a ``*_data`` twin
returning what it draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._renamed import renamed_keywords
from ._common import (
    _BAND_ALPHA,
    PARAMETERS,
    _colors,
    _grid,
    _has_errors,
    _new_figure,
    _observed,
    _xlabel,
)

__all__ = ["density_data", "membership_data", "plot_density", "plot_membership"]


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
    from ..posterior.summaries import density

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
    from ..posterior.summaries import interval_label

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
    from ..posterior.summaries import membership

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
    from ..posterior.summaries import data_name, interval_label

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
