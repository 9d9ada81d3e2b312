"""The density of two features of a D-dimensional result on a grid (contour plots)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from ..validation import check_ci_kind, check_ci_prob
from .mixture_md import density_md, draws_md, feature_indices, feature_values, is_md, observed_md

__all__ = ["density_grid"]


def density_grid(
    dt: Any,
    features: Any = None,
    *,
    n_grid: int = 50,
    limits: Any = None,
    deconvolved: bool = False,
    max_errors: int = 20,
    max_draws: int = 200,
    ci_prob: float | None = None,
    ci_kind: str | None = None,
) -> Any:
    """The density of two features on a grid, with its band: for contour plots.

    The mixture's marginal over the two features (:func:`~bayesgmm.posterior.marginal`)
    evaluated as :func:`~bayesgmm.posterior.density` does at every node of an
    ``n_grid`` x ``n_grid`` grid.

    Parameters
    ----------
    dt : xarray.DataTree
        A D-dimensional :func:`bayesgmm.fit` result (D >= 2).
    features : sequence of two feature names, optional
        The horizontal and vertical feature (coordinate values of ``feature``; an int is
        also read as a position). Default: the first two.
    n_grid : int, default=50
        Nodes per axis.
    limits : array-like of shape (2, 2), optional
        ``[[x_lo, x_hi], [y_lo, y_hi]]`` in data units. Default: the observed values'
        range widened by 10% on each side (or the posterior mean mixture's means
        +- 3.5 sds when the result holds no data).
    deconvolved : bool, default=False
        False: the density of observed values (averaged over at most ``max_errors`` of
        the data's error covariances); True: of the true values.
    max_errors : int, default=20
        How many of the data's error covariances the observed density averages over
        (each costs one evaluation of the grid).
    max_draws : int, default=200
        Draws the band is computed from (thinned evenly; enough for a plot's contours,
        fewer than :func:`~bayesgmm.posterior.density`'s 500, since a grid has many
        points).
    ci_prob : float, optional
        Band probability (default: ArviZ's ``stats.ci_prob``).
    ci_kind : {"eti", "hdi"}, optional
        Band kind (default: ArviZ's ``stats.ci_kind``).

    Returns
    -------
    xarray.Dataset
        ``mean``, ``lower``, ``upper`` with dims (``x1``, ``x0``) -- rows follow the
        vertical feature, so ``plt.contour(ds.x0, ds.x1, ds["mean"])`` draws it --;
        coordinates ``x0``, ``x1`` (the grids); attrs ``feature_x0``, ``feature_x1``
        (the features' names, as strings), ``ci_prob``, ``ci_kind``, ``deconvolved``.

    Raises
    ------
    DataError
        A 1-D result, unknown features, the same feature twice, or ``n_grid < 2``.

    Examples
    --------
    >>> ds = density_grid(dt, ["eruptions", "waiting"], n_grid=40)  # doctest: +SKIP
    >>> plt.contour(ds.x0, ds.x1, ds["mean"])  # doctest: +SKIP
    """
    import xarray as xr

    from .conditional import marginal

    if not is_md(dt):
        raise DataError("density_grid needs a D-dimensional result (D >= 2); for 1-D data "
                        "call density(dt, X) on a 1-D grid.")
    prob, kind = check_ci_prob(ci_prob), check_ci_kind(ci_kind)
    names = feature_values(dt)
    pair = feature_indices(names, [0, 1] if features is None else features, "density_grid")
    if len(pair) != 2:
        raise DataError(f"density_grid: select two features; got {len(pair)}.")
    n_grid = int(n_grid)
    if n_grid < 2:
        raise DataError(f"n_grid must be at least 2; got {n_grid}.")
    sub = marginal(dt, [names[i] for i in pair])
    if limits is None:
        limits = _default_limits(sub)
    lim = np.asarray(limits, dtype=float)
    if lim.shape != (2, 2) or not np.all(np.isfinite(lim)) or np.any(lim[:, 1] <= lim[:, 0]):
        raise DataError(f"limits must be [[x_lo, x_hi], [y_lo, y_hi]] with lo < hi; "
                        f"got {limits!r}.")
    g0, g1 = np.linspace(*lim[0], n_grid), np.linspace(*lim[1], n_grid)
    xx, yy = np.meshgrid(g0, g1)  # (n1, n0): rows follow the vertical feature
    max_draws, max_errors = int(max_draws), int(max_errors)
    if max_draws < 1 or max_errors < 1:
        raise DataError("max_draws and max_errors must be at least 1.")
    ds = density_md(sub, np.column_stack([xx.ravel(), yy.ravel()]), None, deconvolved,
                    prob, kind, max_errors, max_draws)
    shape = (n_grid, n_grid)
    return xr.Dataset(
        {key: (("x1", "x0"), ds[key].values.reshape(shape)) for key in
         ("mean", "lower", "upper")},
        coords={"x0": g0, "x1": g1},
        attrs={"feature_x0": str(names[pair[0]]), "feature_x1": str(names[pair[1]]),
               "ci_prob": prob, "ci_kind": kind, "deconvolved": int(deconvolved)},
    )


def _default_limits(sub: Any) -> np.ndarray:
    """The data's range +- 10% per feature, or the mean mixture's means +- 3.5 sds."""
    if "observed_data" in sub.children:
        x = observed_md(sub)
        lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
        pad = 0.1 * np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
        return np.column_stack([lo - pad, hi + pad])
    _, mu, cov = draws_md(sub)
    m = mu.mean(axis=0)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1).mean(axis=0))
    return np.column_stack([(m - 3.5 * sd).min(axis=0), (m + 3.5 * sd).max(axis=0)])
