"""The likelihood explorer: seed 000's interactive page, as one offline HTML file.

A slider (and an exact-value box) for every parameter of a 1-D mixture of K components:
the weights (on the simplex: moving one rescales the others), the means and the
intrinsic widths. As they move, the page redraws the density over the data's histogram
and shows the log-likelihood (measurement errors included), the best value seen, how far
below the EM maximum it is, and the gradient of the log-likelihood in the seed's
parameters. Buttons (and keys) take one EM step, one gradient-ascent step, jump to the
EM maximum, draw from the posterior when one is at hand, and reset.

The page's numbers are the package's, computed in the browser by the script
``_static/explorer.js``: the log-likelihood is ``GaussianMixtureEM.score_samples(X,
X_err=e).sum()`` and the EM step is one iteration of ``GaussianMixtureEM`` from the shown
parameters (its ridge ``reg_covar`` included), which the tests check in headless
Chromium. Everything is inline (data as JSON, script, style): no network, no libraries.

:func:`write_explorer` writes the page from data and a fitted estimator;
:func:`section_from_tree` gives the same explorer for :func:`bayesgmm.write_report`, from
a fit's ``DataTree``. Neither fits anything: like the report, this module reads results.
"""

from __future__ import annotations

import html
import json
import os
import pathlib
from importlib import resources
from typing import Any

import numpy as np

from ._numerics.standardize import _standardizer
from .errors import DataError

__all__ = ["write_explorer"]

#: more points than this make a page too heavy to redraw as a slider moves: subsample
MAX_POINTS = 200_000
#: posterior draws kept in the page (evenly thinned)
MAX_DRAWS = 500
#: ``GaussianMixtureEM``'s default ``reg_covar`` (what the report's page steps with)
DEFAULT_REG_COVAR = 1e-9

_PAGE_CSS = """
body { margin: 0 auto; max-width: 62em; padding: 1em 1.2em 3em; line-height: 1.45;
       font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f; }
h1 { font-size: 1.4em; }
@media (max-width: 560px) { h1 { font-size: 1.15em; } body { padding: .6em .8em 2em; } }
"""


def write_explorer(
    X: Any,
    path: str | os.PathLike,
    estimator: Any = None,
    *,
    X_err: Any = None,
    posterior: Any = None,
    start: dict | None = None,
    title: str | None = None,
    random_seed: int = 1,
) -> pathlib.Path:
    """Write the likelihood explorer of a 1-D mixture as one self-contained HTML file.

    Parameters
    ----------
    X : array-like of shape (n_samples,) or (n_samples, 1), or xarray.DataTree
        The data the page scores; or a 1-D :func:`bayesgmm.fit` result, which brings its
        data, errors, EM estimate (the maximum; the EM step then has
        ``GaussianMixtureEM``'s default ridge) and draws, as the report's explorer does
        (``estimator``, ``X_err`` and ``posterior`` are then not given).
    path : str or path-like
        Where to write the page (atomically: an interrupted call leaves no partial file).
    estimator : GaussianMixtureEM
        Fitted to ``X`` (and ``X_err``), full covariances, without sample weights or
        fixed parameters: its maximum is where "jump to the EM maximum" goes, and its
        ``reg_covar`` is the ridge of the page's EM step. Required with data ``X``.
    X_err : array-like of shape (n_samples,), optional
        Measurement-error standard deviations; the log-likelihood then uses
        sigma_k^2 + e_i^2 and the EM step is extreme deconvolution's.
    posterior : xarray.DataTree, optional
        A :func:`bayesgmm.fit` result on the same data with the same K: "draw a
        posterior sample" shows one of its draws (up to 500, evenly thinned). Without
        it the button is disabled.
    start : dict, optional
        ``{"weights": (K,), "means": (K,), "sigmas": (K,)}``: where the sliders start and
        "reset" returns. Default: equal weights, means at the data's quantiles
        (k + 1/2) / K, every sd the data's sd over K.
    title : str, optional
        The page's title.
    random_seed : int, default=1
        Seed of the order in which posterior draws are shown.

    Returns
    -------
    pathlib.Path
        The absolute path of the page.

    Raises
    ------
    DataError
        Data of more than one feature or with non-finite values, errors of the wrong
        shape, an estimator that is not fitted to these data in 1-D, a posterior with
        another number of components or points.
    """
    if _is_tree(X):
        if estimator is not None or X_err is not None or posterior is not None:
            raise DataError("X is a fit result: it brings its own data, errors, EM "
                            "estimate and draws; pass estimator, X_err and posterior only "
                            "with data.")
        x, err, K, em, em_loglik, reg, draws = _tree_inputs(X)
    else:
        if estimator is None:
            raise DataError("pass a fitted GaussianMixtureEM as estimator (its maximum is "
                            "the page's 'EM maximum'), or a bayesgmm.fit result as X.")
        x, err = _check_data(X, X_err)
        K, em, reg = _from_estimator(estimator, x, err)
        draws = None if posterior is None else _draws(posterior, K, x.size)
        em_loglik = float(np.sum(estimator.score_samples(x, X_err=err)))
    start = _check_start(start, K) if start is not None else _default_start(x, K)
    name = f"{K}-component Gaussian mixture of {x.size} points"
    title = title or f"bayesgmm likelihood explorer: {name}"
    section = _section(x, err, K, em, em_loglik, reg, start, draws, random_seed)
    intro = (
        f"<p>{html.escape(name)}"
        + (", with measurement errors" if err is not None else "")
        + ". Move a slider, type a value, or press a button: the curve, the "
        "log-likelihood and its gradient follow. Keys: <kbd>e</kbd> EM step, <kbd>g</kbd> "
        "gradient step, <kbd>m</kbd> EM maximum, <kbd>p</kbd> posterior draw, <kbd>r</kbd> "
        "reset; Tab moves between the controls, arrow keys move a slider.</p>"
    )
    doc = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_PAGE_CSS}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{intro}\n{section}\n</body></html>\n"
    )
    from .report import _write_atomic

    path = pathlib.Path(path).expanduser().resolve()
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: its folder does not exist; create it first.")
    _write_atomic(path, doc)
    return path


def section_from_tree(dt: Any) -> str | None:
    """The explorer of a 1-D :func:`bayesgmm.fit` result, as an HTML fragment.

    Built from the result alone: its data and errors, its EM estimate (the maximum) and
    its posterior draws; the EM step uses ``GaussianMixtureEM``'s default ridge. None
    when the result is not 1-D or has more than :data:`MAX_POINTS` points.
    """
    obs = dt["observed_data"]
    x = np.asarray(obs[next(iter(obs.data_vars))].values, dtype=float)
    if x.ndim != 1 or x.size > MAX_POINTS or not np.all(np.isfinite(x)):
        return None
    x, err, K, em, em_loglik, reg, draws = _tree_inputs(dt)
    return _section(x, err, K, em, em_loglik, reg, _default_start(x, K), draws, 1)


def _is_tree(obj: Any) -> bool:
    return hasattr(obj, "children") and "posterior" in getattr(obj, "children", {})


def _tree_inputs(dt: Any) -> tuple:
    """A 1-D fit result's data, errors, K, EM estimate, its log-likelihood, ridge, draws."""
    if "em_estimate" not in dt.children or "observed_data" not in dt.children:
        raise DataError("X is not a bayesgmm.fit result (no observed_data or em_estimate).")
    if dt["posterior"]["means"].ndim != 3:
        raise DataError("X is a fit of several columns; the explorer shows one.")
    obs = dt["observed_data"]
    x, err = _check_data(obs[next(iter(obs.data_vars))].values, None)
    if int(dt.attrs.get("has_errors", 0)) and "x_err" in dt["constant_data"]:
        x, err = _check_data(x, dt["constant_data"]["x_err"].values)
    em_ds = dt["em_estimate"]
    em = _ordered({key: np.asarray(em_ds[key].values, dtype=float).ravel()
                   for key in ("weights", "means", "sigmas")})
    K = em["weights"].size
    reg = DEFAULT_REG_COVAR * float(_standardizer(x[:, None], np.ones(x.size))[1][0] ** 2)
    return x, err, K, em, _loglik(x, err, em), reg, _draws(dt, K, x.size)


# ---------------------------------------------------------------------- checks and inputs


def _check_data(X: Any, X_err: Any) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(X, dtype=float)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise DataError(
            f"the explorer shows one feature; X has shape {x.shape}. Pass one column.")
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise DataError("X needs at least 2 finite values (no NaN or inf).")
    if x.size > MAX_POINTS:
        raise DataError(
            f"X has {x.size} points; the page redraws every point as a slider moves and "
            f"takes at most {MAX_POINTS}: pass a random subsample.")
    if X_err is None:
        return x, None
    e = np.asarray(X_err, dtype=float)
    if e.ndim == 2 and e.shape[1] == 1:
        e = e[:, 0]
    if e.shape != x.shape:
        raise DataError(f"X_err must have shape {x.shape} (one sd per point); got {e.shape}.")
    if not np.all(np.isfinite(e)) or np.any(e < 0):
        raise DataError("X_err must be finite standard deviations >= 0.")
    return x, (e if np.any(e) else None)


def _from_estimator(gm: Any, x: np.ndarray, err: np.ndarray | None) -> tuple[int, dict, float]:
    if not hasattr(gm, "weights_"):
        raise DataError("estimator must be a fitted GaussianMixtureEM: call .fit(X) first.")
    if getattr(gm, "n_features_in_", 1) != 1:
        raise DataError(
            f"estimator was fitted to {gm.n_features_in_} features; the explorer shows one.")
    if getattr(gm, "covariance_type", "full") == "tied" or getattr(gm, "fixed", None):
        raise DataError(
            "the explorer's EM step moves each component's width freely: fit the estimator "
            "without covariance_type='tied' and without fixed parameters.")
    if getattr(gm, "has_errors_", err is not None) != (err is not None):
        raise DataError(
            "estimator was fitted " + ("with" if gm.has_errors_ else "without")
            + " measurement errors, X_err is " + ("missing" if err is None else "given")
            + ": pass the same errors to both.")
    if not np.isclose(getattr(gm, "n_samples_fit_", x.size), x.size, rtol=0, atol=1e-9):
        raise DataError(
            f"estimator was fitted to {gm.n_samples_fit_:g} points' weight, X has {x.size} "
            "points: the page shows the unweighted log-likelihood of X; fit it to X "
            "without sample_weight.")
    em = _ordered({"weights": np.asarray(gm.weights_, float),
                   "means": np.asarray(gm.means_, float).ravel(),
                   "sigmas": np.sqrt(np.asarray(gm.covariances_, float).ravel())})
    scale = float(_standardizer(x[:, None], np.ones(x.size))[1][0])
    return em["weights"].size, em, float(gm.reg_covar) * scale**2


def _ordered(p: dict) -> dict:
    o = np.argsort(p["means"], kind="stable")
    return {k: np.asarray(v, float)[o] for k, v in p.items()}


def _check_start(start: dict, K: int) -> dict:
    try:
        p = {k: np.asarray(start[k], dtype=float).ravel() for k in ("weights", "means",
                                                                       "sigmas")}
    except KeyError as exc:
        raise DataError(f"start needs 'weights', 'means' and 'sigmas'; {exc} is missing.") \
            from None
    if any(v.shape != (K,) for v in p.values()):
        raise DataError(f"start's weights, means and sigmas must each have {K} values.")
    if (np.any(p["weights"] <= 0) or not np.isclose(p["weights"].sum(), 1)
            or np.any(p["sigmas"] <= 0)):
        raise DataError("start's weights must be positive and sum to 1, its sigmas positive.")
    return p


def _default_start(x: np.ndarray, K: int) -> dict:
    return {"weights": np.full(K, 1.0 / K),
            "means": np.quantile(x, (np.arange(K) + 0.5) / K),
            "sigmas": np.full(K, x.std() / K)}


def _draws(dt: Any, K: int, n: int) -> dict:
    try:
        post = dt["posterior"]
        w, m, s = (np.asarray(post[v].values, dtype=float) for v in ("weights", "means",
                                                                      "sigmas"))
    except KeyError:
        raise DataError("posterior must be a bayesgmm.fit result (weights, means and "
                        "sigmas in its posterior group).") from None
    if w.ndim != 3 or w.shape[-1] != K or m.shape != w.shape or s.shape != w.shape:
        raise DataError(
            f"posterior has {w.shape[-1]} components of 1-D parameters expected; the "
            f"estimator has {K}: pass a fit with the same K.")
    obs = dt["observed_data"] if "observed_data" in dt else None
    if obs is not None and obs.sizes.get("obs", n) != n:
        raise DataError(f"posterior was fitted to {obs.sizes['obs']} points, X has {n}: "
                        "pass the data it was fitted to.")
    C, S = w.shape[:2]
    idx = np.unique(np.linspace(0, C * S - 1, min(MAX_DRAWS, C * S)).round().astype(int))
    chain, draw = np.divmod(idx, S)
    return {"weights": w.reshape(C * S, K)[idx], "means": m.reshape(C * S, K)[idx],
            "sigmas": s.reshape(C * S, K)[idx],
            "label": [f"chain {c}, draw {d}" for c, d in zip(chain, draw, strict=True)]}


def _loglik(x: np.ndarray, err: np.ndarray | None, p: dict) -> float:
    t = p["sigmas"] ** 2 + (0.0 if err is None else err[:, None] ** 2)
    lp = (np.log(p["weights"]) - 0.5 * (np.log(2 * np.pi) + np.log(t)
                                        + (x[:, None] - p["means"]) ** 2 / t))
    return float(np.logaddexp.reduce(lp, axis=1).sum())


# ---------------------------------------------------------------------- the page


def _nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    raw = (hi - lo) / n
    mag = 10 ** np.floor(np.log10(raw))
    step = mag * min((m for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10)
    return np.arange(np.ceil(lo / step) * step, hi + 1e-9 * step, step)


def _section(x: np.ndarray, err: np.ndarray | None, K: int, em: dict, em_loglik: float,
             reg: float, start: dict, draws: dict | None, seed: int) -> str:
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    view = (lo - 0.1 * span, hi + 0.1 * span)
    counts, edges = np.histogram(x, bins=min(60, max(8, len(np.histogram_bin_edges(
        x, bins="auto")) - 1)), range=(lo, hi))
    density = counts / (x.size * np.diff(edges))
    ymax = 1.1 * float(density.max())  # the page raises it to fit the curves
    ticks = _nice_ticks(*view)
    ticks = ticks[(ticks >= view[0]) & (ticks <= view[1])]
    labels = ["a", "b"] if K == 2 else [str(k + 1) for k in range(K)]
    payload = {
        "x": x.tolist(), "err": None if err is None else err.tolist(), "k": K,
        "labels": labels, "reg": reg, "scale": float(x.std()),
        "start": {k: np.asarray(v, float).tolist() for k, v in start.items()},
        "em": {k: v.tolist() for k, v in em.items()}, "em_loglik": em_loglik,
        "draws": None if draws is None else {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in draws.items()},
        "seed": int(seed),
        "view": list(view),
        "limits": {"weights": [0.001, 0.999, 0.001],
                   "means": [view[0], view[1], (view[1] - view[0]) / 1000],
                   "sigmas": [span / 1000, span, span / 1000]},
        "hist": {"edges": edges.tolist(), "density": density.tolist(), "ymax": ymax},
        "ticks": ticks.tolist(), "tick_labels": [f"{t:g}" for t in ticks],
    }
    data = json.dumps(payload, allow_nan=False).replace("</", "<\\/")
    static = resources.files("bayesgmm") / "_static"
    css = (static / "explorer.css").read_text(encoding="utf-8")
    js = (static / "explorer.js").read_text(encoding="utf-8")
    legend = ("Bars: the data's histogram; ticks below: the points. Solid: the mixture's "
              "density" + (" of the observed values (each component widened by the "
                           "points' errors); dotted: the density of the true values"
                           if err is not None else "")
              + "; dashed: each weighted component.")
    how = (
        "<p>Log-likelihood: LL = &sum;<sub>i</sub> log &sum;<sub>k</sub> w<sub>k</sub> "
        "N(x<sub>i</sub> | &mu;<sub>k</sub>, &sigma;<sub>k</sub><sup>2</sup>"
        + (" + e<sub>i</sub><sup>2</sup>" if err is not None else "")
        + "), exactly bayesgmm's <code>GaussianMixtureEM.score_samples(...).sum()</code>."
        "</p><p><b>EM step</b>: one iteration of <code>GaussianMixtureEM</code> from the "
        "shown parameters: each point's responsibilities, then the weighted weights, "
        "means and widths" + (" of the true values (extreme deconvolution)"
                              if err is not None else "")
        + ". EM never lowers LL. <b>Gradient step</b>: seed 000's gradient ascent, "
        "&theta; + &eta; &nabla;LL in the seed's parameters (the first K - 1 weights, "
        "the last one 1 minus their sum; the means; the sds), with the step size &eta; "
        "halved until LL rises and doubled after each success; the last column shows "
        "&part;LL/&part;&theta;, zero at a maximum. <b>EM maximum</b>: the fit's best of "
        "many starts. <b>Posterior draw</b>: one draw of the Bayesian fit, when the page "
        "has one: how far from the maximum the plausible parameters lie.</p>"
    )
    return (
        f'<section id="bgmm-explorer" class="bgmm-x" aria-label="likelihood explorer">'
        f"<style>{css}</style>\n"
        '<svg class="bgmm-x-plot" role="img" aria-label="the mixture density over the '
        'data\'s histogram"></svg>\n'
        f'<div class="bgmm-x-legend">{legend}</div>\n'
        '<div class="bgmm-x-readout">'
        '<div>Log-likelihood <output class="bgmm-x-ll"></output></div>'
        '<div>Best seen <output class="bgmm-x-best"></output></div>'
        '<div>Below the EM maximum by <output class="bgmm-x-gap"></output></div>'
        '<div>Steps <output class="bgmm-x-steps"></output></div></div>\n'
        '<div class="bgmm-x-buttons">'
        '<button type="button" data-action="em" aria-keyshortcuts="e">EM step<kbd>e</kbd>'
        "</button>"
        '<button type="button" data-action="gradient" aria-keyshortcuts="g">Gradient step'
        "<kbd>g</kbd></button>"
        '<button type="button" data-action="max" aria-keyshortcuts="m">EM maximum'
        "<kbd>m</kbd></button>"
        '<button type="button" data-action="draw" aria-keyshortcuts="p">Posterior draw'
        "<kbd>p</kbd></button>"
        '<button type="button" data-action="reset" aria-keyshortcuts="r">Reset<kbd>r</kbd>'
        "</button></div>\n"
        '<p class="bgmm-x-message" role="status" aria-live="polite"></p>\n'
        '<div class="bgmm-x-params"><div class="bgmm-x-row bgmm-x-head"><span></span>'
        "<span>slider</span><span>value</span><span>&part;LL/&part;&theta;</span></div>"
        "</div>\n"
        f"<details><summary>What the numbers are</summary>{how}</details>\n"
        f'<script type="application/json" id="bgmm-explorer-data">{data}</script>\n'
        f"<script>{js}</script>\n</section>"
    )
