"""Figures of a mixture fitted in D >= 2 dimensions: the pair plot and the marginals.

:func:`plot_pairs` is a D x D grid: below the diagonal the observed points coloured by
their posterior membership with each component's ellipses (thin: posterior draws; bold:
the EM estimate); on the diagonal each feature's marginal density with its band over a
histogram; above it the density's contours for that pair of features (for D = 2, the
density itself). :func:`plot_marginals` draws the marginals larger, the density of
observed values beside the deconvolved density of true values when the fit had
measurement errors. Each ``plot_*`` has a ``*_data`` twin returning what it draws.

The posterior quantities come from :mod:`bayesgmm.posterior`: ``membership`` (each
point from its observed features and its own error covariance), ``marginal`` and
``density`` (each feature's band), ``density_grid`` (the contours).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import _BAND_ALPHA, _colors, _feature_label, _grid

__all__ = ["ellipse", "marginals_data", "pairs_data", "plot_marginals", "plot_pairs"]

#: The pair plot shows at most this many features (the first ones).
MAX_PAIR_FEATURES = 5
#: Probabilities of the two ellipses: those of 1 and 2 sd of a 1-D Gaussian.
ELLIPSE_PROBS = (0.6826894921370859, 0.9544997361036416)
_MAX_ERRORS = 30
_CONTOUR_DRAWS = 100
_TRUE_COLOR = "#6a3d9a"


# ---------------------------------------------------------------------- the draws


def _features(dt: Any) -> list[str]:
    """The feature names (coordinate ``feature`` of the posterior), as strings."""
    return [str(f) for f in dt["posterior"]["feature"].values]


def _feature_index(dt: Any, features: Any) -> list[int]:
    from ..errors import DataError

    names = _features(dt)
    if features is None:
        return list(range(len(names)))
    idx = []
    for f in features:
        if isinstance(f, int | np.integer) and str(f) not in names:
            if not 0 <= int(f) < len(names):
                raise DataError(f"feature {f} out of range: the fit has {len(names)}.")
            idx.append(int(f))
        elif str(f) in names:
            idx.append(names.index(str(f)))
        else:
            raise DataError(f"no feature {f!r}; the fit's features: {', '.join(names)}.")
    if not idx:
        raise DataError("features is empty: give at least one feature.")
    return idx


def _thin(n: int, max_draws: int) -> np.ndarray:
    if n <= max_draws:
        return np.arange(n)
    return np.linspace(0, n - 1, max_draws).round().astype(int)


def _md_draws(dt: Any, max_draws: int | None = None) -> tuple[np.ndarray, ...]:
    """Flattened weights (S, K), means (S, K, D), covariances (S, K, D, D); thinned evenly."""
    from ..posterior.mixture_md import draws_md

    return draws_md(dt, max_draws)


def _em_params(dt: Any) -> tuple[np.ndarray, ...] | None:
    """The EM estimate's weights (K,), means (K, D), covariances (K, D, D), or None."""
    if "em_estimate" not in dt.children:
        return None
    em = dt["em_estimate"]
    if "covariances" not in em or "feature" not in em["means"].dims:
        return None
    return (np.asarray(em["weights"].values, dtype=float),
            np.asarray(em["means"].transpose("component", "feature").values, dtype=float),
            np.asarray(em["covariances"].transpose("component", "feature",
                                                   "feature_").values, dtype=float))


def _observed_md(dt: Any) -> np.ndarray:
    """The observed data (n, D) in data units, NaN where a feature is missing."""
    from ..posterior.mixture_md import observed_md

    return observed_md(dt)


def _error_covs(dt: Any) -> np.ndarray | None:
    """The per-point error covariances (n, D, D), or None when the fit had no errors."""
    from ..posterior.mixture_md import stored_errors

    return stored_errors(dt)


def _point_membership(dt: Any) -> np.ndarray:
    """Each observed point's posterior-mean p(component | its observed features): (n, K).

    :func:`bayesgmm.membership` of the data with their own error covariances; missing
    features marginalised.
    """
    from ..posterior import membership

    return np.asarray(membership(dt, _observed_md(dt), X_err=_error_covs(dt))["mean"].values)


def ellipse(cov: Any, prob: float) -> tuple[float, float, float]:
    """The ellipse holding ``prob`` of a 2-D Gaussian with covariance ``cov``.

    Its points are at Mahalanobis distance r with r^2 the ``prob`` quantile of a
    chi-square with 2 degrees of freedom, so its semi-axes are r times the square roots
    of the covariance's eigenvalues, along their eigenvectors.

    Parameters
    ----------
    cov : array-like of shape (2, 2)
        A symmetric positive-definite covariance.
    prob : float
        The probability inside, in (0, 1).

    Returns
    -------
    tuple of float
        ``(semi_major, semi_minor, angle)``: the semi-axes and the major axis's angle
        to the x axis in degrees.
    """
    vals, vecs = np.linalg.eigh(np.asarray(cov, dtype=float))
    r = np.sqrt(-2.0 * np.log1p(-prob))  # chi-square(2) quantile, closed form
    major = vecs[:, 1]
    return (float(r * np.sqrt(vals[1])), float(r * np.sqrt(max(vals[0], 0.0))),
            float(np.degrees(np.arctan2(major[1], major[0]))))


def _ellipses(mu: np.ndarray, cov: np.ndarray, pairs: list[tuple[int, int]],
              probs: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Ellipse parameters, arrays of shape (*lead, pair, level), for means (*lead, D)."""
    lead = mu.shape[:-1]
    out = {k: np.empty((*lead, len(pairs), len(probs)))
           for k in ("center_x", "center_y", "semi_major", "semi_minor", "angle")}
    for p, (i, j) in enumerate(pairs):
        sub = cov[..., [i, j], :][..., [i, j]]
        vals, vecs = np.linalg.eigh(sub)
        for q, prob in enumerate(probs):
            r = np.sqrt(-2.0 * np.log1p(-prob))
            out["center_x"][..., p, q] = mu[..., i]
            out["center_y"][..., p, q] = mu[..., j]
            out["semi_major"][..., p, q] = r * np.sqrt(vals[..., 1])
            out["semi_minor"][..., p, q] = r * np.sqrt(np.maximum(vals[..., 0], 0.0))
            out["angle"][..., p, q] = np.degrees(np.arctan2(vecs[..., 1, 1],
                                                            vecs[..., 0, 1]))
    return out


# ---------------------------------------------------------------------- densities


def marginals_data(
    dt: Any, *, features: Any = None, n_grid: int = 200, bins: int | str = "auto",
    ci_prob: float | None = None, ci_kind: str | None = None,
) -> dict[str, Any]:
    """What :func:`plot_marginals` draws: each feature's marginal density.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result of D >= 2 features.
    features : sequence of str or int, optional
        Features to show, by name or position (default: all).
    n_grid : int, default=200
        Grid points spanning each feature's observed values (plus 8% on each side).
    bins : int or str, default="auto"
        Histogram bins, as for :func:`numpy.histogram_bin_edges`.
    ci_prob : float, optional
        Band probability (default: ArviZ's ``stats.ci_prob``).
    ci_kind : {"eti", "hdi"}, optional
        Band kind (default: ArviZ's ``stats.ci_kind``).

    Returns
    -------
    dict
        Keyed by feature name, each a dict as :func:`bayesgmm.plots.density_data`
        returns for 1-D: ``x`` (the feature's observed values, missing ones left out),
        ``hist`` and ``edges``, ``observed`` (the marginal density of observed values,
        measurement errors included, averaged over the data's errors of that feature:
        ``mean``, ``lower``, ``upper``, ``component_mean``, coordinate ``x``) and
        ``true`` (the deconvolved marginal density of true values, or None without
        measurement errors). The marginal of feature d is the mixture of
        N(mu_kd, V_kdd + e^2).
    """
    from ..posterior import density, marginal

    names = _features(dt)
    values = dt["posterior"]["feature"].values
    idx = _feature_index(dt, features)
    deconvolve = _error_covs(dt) is not None
    out = {}
    for d in idx:
        m = marginal(dt, [values[d]])  # the 1-D layout: the feature's mixture and data
        x = np.asarray(next(iter(m["observed_data"].data_vars.values())).values, float)
        grid = _grid(x, n_grid)
        hist, edges = np.histogram(x, bins=np.histogram_bin_edges(x, bins=bins),
                                   density=True)
        observed = density(m, grid, ci_prob=ci_prob, ci_kind=ci_kind,
                           max_errors=_MAX_ERRORS)
        true = (density(m, grid, deconvolved=True, ci_prob=ci_prob, ci_kind=ci_kind)
                if deconvolve else None)
        out[names[d]] = {"x": x, "hist": hist, "edges": edges, "observed": observed,
                         "true": true}
    return out


# ---------------------------------------------------------------------- pair plot


def pairs_data(
    dt: Any, *, features: Any = None, n_draws: int = 30, n_grid: int = 60,
    ci_prob: float | None = None, ci_kind: str | None = None,
) -> dict[str, Any]:
    """What :func:`plot_pairs` draws.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result of D >= 2 features.
    features : sequence of str or int, optional
        Features to show, by name or position (default: the first
        ``MAX_PAIR_FEATURES`` = 5).
    n_draws : int, default=30
        Posterior draws whose ellipses are drawn (evenly spaced over all draws).
    n_grid : int, default=60
        Grid points per side of each pair's density contours.
    ci_prob, ci_kind
        The marginals' band (default: ArviZ's ``stats.ci_prob``, ``stats.ci_kind``).

    Returns
    -------
    dict
        ``features`` (names shown), ``n_features`` (D of the fit), ``truncated`` (True
        when features were left out by default), ``X`` (observed values of the shown
        features, NaN where missing), ``incomplete`` (rows with a missing feature),
        ``membership`` ((n, K) posterior-mean p(component | the point's observed
        features), errors included), ``assigned`` (its argmax), ``pairs`` (list of
        (i, j) positions in ``features``, i < j), ``probs`` (the ellipses'
        probabilities, those of 1 and 2 sd), ``ellipses`` (dict of arrays of shape
        (draw, component, pair, level): ``center_x``, ``center_y``, ``semi_major``,
        ``semi_minor``, ``angle`` in degrees; x is feature i, y feature j),
        ``em_ellipses`` (the same for the EM estimate without the draw axis, or None),
        ``contours`` (per pair, a dict of ``x``, ``y`` and ``density``, shape (ny, nx):
        the posterior-mean density of the pair's true values, errors removed) and
        ``marginals`` (:func:`marginals_data` of the shown features).
    """
    from ..posterior import density_grid

    names = _features(dt)
    values = dt["posterior"]["feature"].values
    truncated = features is None and len(names) > MAX_PAIR_FEATURES
    idx = _feature_index(dt, features if features is not None
                         else list(range(min(len(names), MAX_PAIR_FEATURES))))
    shown = [names[d] for d in idx]
    X = _observed_md(dt)
    membership = _point_membership(dt)
    pairs = [(a, b) for a in range(len(idx)) for b in range(a + 1, len(idx))]
    fpairs = [(idx[a], idx[b]) for a, b in pairs]
    w_all, mu_all, cov_all = _md_draws(dt)
    sel = _thin(w_all.shape[0], n_draws)
    ell = _ellipses(mu_all[sel], cov_all[sel], fpairs, ELLIPSE_PROBS)
    em = _em_params(dt)
    em_ell = _ellipses(em[1], em[2], fpairs, ELLIPSE_PROBS) if em is not None else None
    contours = {}
    for (a, b), (i, j) in zip(pairs, fpairs, strict=True):
        xi, xj = X[:, i], X[:, j]
        gx = _grid(xi[~np.isnan(xi)], n_grid)
        gy = _grid(xj[~np.isnan(xj)], n_grid)
        # a posterior mean: 100 draws do
        grid = density_grid(dt, [values[i], values[j]], n_grid=n_grid, deconvolved=True,
                            limits=[[gx[0], gx[-1]], [gy[0], gy[-1]]],
                            max_draws=_CONTOUR_DRAWS)
        contours[(a, b)] = {"x": gx, "y": gy, "density": grid["mean"].values}
    return {
        "features": shown, "n_features": len(names), "truncated": truncated,
        "X": X[:, idx], "incomplete": np.isnan(X).any(axis=1),
        "membership": membership, "assigned": membership.argmax(axis=1),
        "pairs": pairs, "probs": ELLIPSE_PROBS, "ellipses": ell, "em_ellipses": em_ell,
        "contours": contours,
        "marginals": marginals_data(dt, features=idx, ci_prob=ci_prob, ci_kind=ci_kind),
    }


def _ellipse_paths(e: dict[str, np.ndarray], n: int = 64) -> np.ndarray:
    """Polygons (..., n, 2) of ellipses given by arrays of equal shape."""
    t = np.linspace(0, 2 * np.pi, n)
    th = np.radians(e["angle"])[..., None]
    a, b = e["semi_major"][..., None], e["semi_minor"][..., None]
    x = e["center_x"][..., None] + a * np.cos(t) * np.cos(th) - b * np.sin(t) * np.sin(th)
    y = e["center_y"][..., None] + a * np.cos(t) * np.sin(th) + b * np.sin(t) * np.cos(th)
    return np.stack([x, y], axis=-1)


def _draw_marginal(ax: Any, m: dict[str, Any], colors: list[Any], *,
                   components: bool = True) -> None:
    obs, true = m["observed"], m["true"]
    grid = obs["x"].values
    ax.stairs(m["hist"], m["edges"], fill=True, color="0.87")
    ax.stairs(m["hist"], m["edges"], color="0.6", linewidth=0.5)
    ax.fill_between(grid, obs["lower"].values, obs["upper"].values, color="k",
                    alpha=_BAND_ALPHA, linewidth=0)
    if components:
        for k, c in enumerate(colors):
            ax.plot(grid, obs["component_mean"].isel(component=k).values, color=c,
                    lw=1.1, ls="--")
    ax.plot(grid, obs["mean"].values, color="k", lw=1.8)
    if true is not None:
        ax.fill_between(grid, true["lower"].values, true["upper"].values,
                        color=_TRUE_COLOR, alpha=_BAND_ALPHA, linewidth=0)
        ax.plot(grid, true["mean"].values, color=_TRUE_COLOR, lw=1.8)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(bottom=0)


def plot_pairs(
    dt: Any, *, features: Any = None, n_draws: int = 30, n_grid: int = 60,
    ci_prob: float | None = None, ci_kind: str | None = None,
) -> Any:
    """Pair plot of the data with each component's ellipses, marginals and contours.

    Below the diagonal: the observed points (only those with both features observed;
    hollow markers for points with any missing feature) coloured by the component they
    most probably belong to, fainter the less certain; each component's ellipses
    holding 68% and 95% of it (the probabilities of 1 and 2 sd) for ``n_draws``
    posterior draws (thin) and for the EM estimate (bold, black). The ellipses are the
    components' intrinsic covariances: with measurement errors the points scatter
    wider. On the diagonal: each feature's marginal density of observed values (black,
    with its band) over the histogram, each component dashed, and with measurement
    errors the deconvolved density of true values (purple). Above the diagonal:
    contours of the posterior-mean density of the pair's true values (for D = 2 the
    fitted density itself) over the points in grey. Without ``features`` at most the
    first 5 features are shown, and the title says so.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result of D >= 2 features.
    features, n_draws, n_grid, ci_prob, ci_kind
        See :func:`pairs_data`.

    Returns
    -------
    matplotlib.figure.Figure
        A D x D grid of axes (D: the features shown).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ..posterior.summaries import interval_label

    d = pairs_data(dt, features=features, n_draws=n_draws, n_grid=n_grid,
                   ci_prob=ci_prob, ci_kind=ci_kind)
    X, D = d["X"], len(d["features"])
    names = [_feature_label(f) for f in d["features"]]
    K = d["membership"].shape[1]
    colors = _colors(K)
    size = 2.6 if D > 2 else 3.6
    fig = Figure(figsize=(size * D + 1.2, size * D + 0.8), layout="constrained")
    axes = fig.subplots(D, D, squeeze=False)
    point_colors = np.array([colors[k] for k in d["assigned"]])
    certainty = d["membership"].max(axis=1)
    point_colors[:, 3] = (0.25 + 0.6 * (certainty - 1 / K) / (1 - 1 / K) if K > 1
                          else 0.85)
    ms = 14 if X.shape[0] <= 500 else 6
    ell, em_ell = d["ellipses"], d["em_ellipses"]
    for p, (a, b) in enumerate(d["pairs"]):
        ok = ~np.isnan(X[:, a]) & ~np.isnan(X[:, b])
        full = ok & ~d["incomplete"]
        part = ok & d["incomplete"]
        # lower triangle: row b, column a (x = feature a, y = feature b)
        ax = axes[b, a]
        ax.scatter(X[full, a], X[full, b], s=ms, c=point_colors[full], linewidths=0)
        if part.any():
            ax.scatter(X[part, a], X[part, b], s=ms, facecolors="none",
                       edgecolors=point_colors[part], linewidths=0.8)
        for k, c in enumerate(colors):
            paths = _ellipse_paths({v: arr[:, k, p, :] for v, arr in ell.items()})
            ax.add_collection(LineCollection(paths.reshape(-1, *paths.shape[-2:]),
                                             colors=[c], linewidths=0.6, alpha=0.35))
            if em_ell is not None:
                em_paths = _ellipse_paths({v: arr[k, p, :] for v, arr in em_ell.items()})
                ax.add_collection(LineCollection(em_paths, colors="k", linewidths=1.5,
                                                 linestyles="--"))
        # upper triangle: row a, column b (x = feature b, y = feature a): contours
        ax = axes[a, b]
        c = d["contours"][(a, b)]
        ax.scatter(X[ok, b], X[ok, a], s=ms * 0.6, color="0.6", linewidths=0)
        ax.contour(c["y"], c["x"], c["density"].T, levels=8, cmap="viridis",
                   linewidths=1.0)
    for i, name in enumerate(d["features"]):
        _draw_marginal(axes[i, i], d["marginals"][name], colors)
        axes[i, i].set_yticks([])
    # shared ranges: each column's x and each off-diagonal row's y follow the data
    lims = [(c["x"][0], c["x"][-1]) for c in (d["marginals"][n]["observed"]
                                              for n in d["features"])]
    for i in range(D):
        for j in range(D):
            ax = axes[i, j]
            ax.set_xlim(lims[j])
            if i != j:
                ax.set_ylim(lims[i])
            ax.tick_params(labelsize="small")
            if i == D - 1:
                ax.set_xlabel(names[j])
            else:
                ax.tick_params(labelbottom=False)
            if j == 0 and i != 0:
                ax.set_ylabel(names[i])
            elif j != 0 and i != j:
                ax.tick_params(labelleft=False)
    axes[0, 0].set_ylabel(f"density of {names[0]}")
    first = d["marginals"][d["features"][0]]
    band = interval_label(first["observed"].attrs["ci_prob"],
                          first["observed"].attrs["ci_kind"])
    handles = [Line2D([], [], marker="o", ls="", color=c, label=f"component {k}")
               for k, c in enumerate(colors)]
    handles.append(Line2D([], [], color="0.4", lw=0.6, label="ellipses of posterior draws"))
    if em_ell is not None:
        handles.append(Line2D([], [], color="k", lw=1.5, ls="--",
                              label="EM estimate's ellipses"))
    if d["incomplete"].any():
        handles.append(Line2D([], [], marker="o", ls="", mfc="none", color="0.3",
                              label="point with a missing feature"))
    handles += [Line2D([], [], color="k", lw=1.8, label="marginal density (observed)"),
                Patch(color="k", alpha=_BAND_ALPHA,
                      label=band.replace(" interval", " band"))]
    if first["true"] is not None:
        handles.append(Line2D([], [], color=_TRUE_COLOR, lw=1.8,
                              label="deconvolved density (errors removed)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               frameon=False, fontsize="small")
    title = ("Pairs of features: points by membership, 68% and 95% ellipses; "
             "above: density contours")
    if d["truncated"]:
        title += f"\n(the first {D} of {d['n_features']} features shown)"
    fig.suptitle(title, fontsize="medium")
    return fig


def plot_marginals(
    dt: Any, *, features: Any = None, n_grid: int = 200, bins: int | str = "auto",
    ci_prob: float | None = None, ci_kind: str | None = None, ncols: int = 3,
) -> Any:
    """Each feature's marginal density with its band, observed and deconvolved.

    One panel per feature: the histogram of its observed values (missing ones left
    out), the posterior-mean marginal density of observed values (black) with its
    band, each weighted component (dashed), and, when the fit had measurement errors,
    the deconvolved density of the true values (purple, with its band).

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result of D >= 2 features.
    features, n_grid, bins, ci_prob, ci_kind
        See :func:`marginals_data`.
    ncols : int, default=3
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per feature shown.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ..posterior.summaries import interval_label

    m = marginals_data(dt, features=features, n_grid=n_grid, bins=bins, ci_prob=ci_prob,
                       ci_kind=ci_kind)
    names = list(m)
    nc = min(ncols, len(names))
    nr = -(-len(names) // nc)
    fig = Figure(figsize=(4.2 * nc, 3.3 * nr + 0.7), layout="constrained")
    grid_axes = fig.subplots(nr, nc, squeeze=False).ravel()
    K = m[names[0]]["observed"].sizes["component"]
    colors = _colors(K)
    for ax, name in zip(grid_axes, names, strict=False):
        _draw_marginal(ax, m[name], colors)
        ax.set_xlabel(_feature_label(name))
        ax.set_ylabel("density")
        ax.set_title(f"{_feature_label(name)}: {m[name]['x'].size} observed values",
                     fontsize="medium")
    for ax in grid_axes[len(names):]:
        fig.delaxes(ax)
    first = m[names[0]]
    band = interval_label(first["observed"].attrs["ci_prob"],
                          first["observed"].attrs["ci_kind"]).replace(" interval", " band")
    handles = [Patch(color="0.87", label="data (histogram)"),
               Line2D([], [], color="k", lw=1.8, label="density of observed values"),
               Patch(color="k", alpha=_BAND_ALPHA, label=band)]
    handles += [Line2D([], [], color=c, lw=1.1, ls="--", label=f"component {k}")
                for k, c in enumerate(colors)]
    if first["true"] is not None:
        handles.append(Line2D([], [], color=_TRUE_COLOR, lw=1.8,
                              label="deconvolved density of true values (errors removed)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               frameon=False, fontsize="small")
    return fig
