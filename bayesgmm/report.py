"""The self-contained HTML report of a :func:`bayesgmm.fit` result.

One file, readable offline: inline CSS, figures embedded as base64 PNG data URIs, no
external resources; its one script is the 1-D report's likelihood explorer
(:mod:`bayesgmm.explorer`), inline and folded away. It opens with the verdict in words,
then the numbers, then the figures.
"""

from __future__ import annotations

import base64
import html
import io
import os
import pathlib
import tempfile
import warnings
from typing import Any

import numpy as np

from .io import format_number

__all__ = ["write_report"]

_DPI = 96

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; max-width: 1150px; padding: 1.5em 2em 4em; color: #1d1d1f;
       line-height: 1.45; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 .4em; }
h2 { font-size: 1.2em; margin: 2em 0 .5em; border-bottom: 1px solid #ddd;
     padding-bottom: .2em; }
.verdict { font-size: 1.15em; padding: .9em 1.1em; border-radius: 6px;
           border-left: 8px solid; margin: .8em 0 1.2em; }
.verdict.ok { background: #e8f5e9; border-color: #2e7d32; }
.verdict.fail { background: #fdecea; border-color: #c62828; }
.verdict strong { display: block; font-size: 1.1em; margin-bottom: .2em; }
.meta { color: #555; font-size: .92em; }
table { border-collapse: collapse; font-size: .9em; margin: .4em 0 1em; }
th, td { padding: .3em .7em; border-bottom: 1px solid #e3e3e3; text-align: right; }
th { background: #f4f4f6; }
td.text, th.text { text-align: left; }
tr.bad td { background: #fdecea; }
td.msg { text-align: left; max-width: 34em; }
h3 { font-size: 1em; margin: 1.2em 0 .3em; }
details summary { cursor: pointer; color: #555; font-size: .92em; margin: .3em 0; }
figure { margin: .5em 0 1.5em; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: .9em; margin-top: .3em; max-width: 60em; }
.error { color: #c62828; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(df: Any, *, index: bool = False, ok_col: str | None = None,
           bad: Any = None) -> str:
    """An HTML table of a DataFrame, every cell escaped; failed rows marked.

    A row is marked when its ``ok_col`` is False or its entry of ``bad`` is True.
    """
    from pandas.api.types import is_numeric_dtype

    cols = list(df.columns)
    head = ([f'<th class="text">{_esc(df.index.name or "")}</th>'] if index else [])
    head += [f'<th class="{"" if is_numeric_dtype(df[c]) else "text"}">{_esc(c)}</th>'
             for c in cols]
    rows = []
    for i, (idx, row) in enumerate(df.iterrows()):
        marked = (ok_col is not None and not bool(row[ok_col])) or (
            bad is not None and bool(bad[i]))
        cls = ' class="bad"' if marked else ""
        cells = [f'<td class="text">{_esc(idx)}</td>'] if index else []
        for c in cols:
            v = row[c]
            kind = "msg" if c == "message" else "text" if isinstance(v, str) else ""
            cells.append(f'<td class="{kind}">{_esc(format_number(v))}</td>')
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (f"<table><thead><tr>{''.join(head)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", facecolor="white")
    try:  # arviz_plots figures are pyplot figures: release them
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - closing is housekeeping only
        pass
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(make: Any, alt: str, caption: str) -> str:
    try:
        data = _png(make())
    except Exception as exc:  # a broken figure must not cost the whole report
        warnings.warn(f"report figure {alt!r} failed: {exc}", RuntimeWarning, stacklevel=3)
        return (f'<p class="error">{_esc(alt)} could not be drawn: '
                f"{_esc(type(exc).__name__)}: {_esc(exc)}</p>")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


# ---------------------------------------------------------------------- diagnosis


def _diagnose(dt: Any, selection: Any = None, loo_table: Any = None) -> Any:
    from .diagnostics import diagnose

    return diagnose(dt, selection=selection, loo_table=loo_table)


def _envelope_prob() -> float:
    from arviz_base import rcParams

    return float(rcParams["stats.envelope_prob"])


def _checks_table(checks: Any) -> Any:
    """The checks for reading: a 'result' column (passed, FAILED, skipped) for ok/skipped."""
    checks = checks.copy()
    if "ok" in checks:
        skipped = checks.pop("skipped").astype(bool) if "skipped" in checks else False
        result = np.where(checks.pop("ok").astype(bool), "passed", "FAILED")
        checks.insert(1, "result", np.where(skipped, "skipped", result))
    for col in ("value", "threshold"):  # enough digits that 1.0096 is not shown as 1.01
        if col in checks:
            checks[col] = [v if not isinstance(v, float | np.floating) or not np.isfinite(v)
                           else f"{float(v):.6g}" for v in checks[col]]
    return checks


def _as_frame(obj: Any) -> Any:
    import pandas as pd

    if obj is None or isinstance(obj, pd.DataFrame):
        return obj
    return pd.DataFrame(list(obj))


# ---------------------------------------------------------------------- the report


def _meta(dt: Any) -> str:
    post = dt["posterior"]
    from .diagnostics.mixture import _n_obs

    n = _n_obs(dt) or "?"
    attrs = dt.attrs
    from .errors import DataError
    from .posterior import data_label

    try:
        what = f"{n} values of {data_label(dt)}"
    except DataError:
        what = f"{n} points"
    parts = [
        what,
        f"K = {post.sizes.get('component', '?')} components",
        f"{post.sizes['chain']} chains x {post.sizes['draw']} draws",
        f"sampler {attrs.get('sampler', post.attrs.get('sampler', '?'))}",
        "with per-point measurement errors (sigmas are intrinsic widths)"
        if attrs.get("has_errors") else "exact values (no measurement errors)",
        f"bayesgmm {attrs.get('bayesgmm_version', '?')}",
    ]
    meta = f'<p class="meta">{_esc("; ".join(parts))}.</p>'
    runs = _runs_sentence(attrs.get("sampling_runs"))
    return meta + (f'<p class="meta">{_esc(runs)}</p>' if runs else "")


def _runs_sentence(runs_json: Any) -> str:
    """Why the sampler ran twice, from ``fit``'s ``sampling_runs`` (empty if it did not)."""
    import json

    try:
        runs = json.loads(runs_json) if runs_json else []
    except (TypeError, ValueError):
        return ""
    if len(runs) < 2:
        return ""
    first, kept = runs[0], runs[-1]
    failed = first.get("failed", ["divergences"])
    why = []
    if "divergences" in failed:
        why.append(f"{first['divergences']} divergent transitions")
    if "max_rhat" in failed:
        why.append(f"max R-hat {first['max_rhat']:.3f} (> 1.01)")
    # the ESS the run was held to (older files: a tenth of the draws)
    under = f"under {first['ess_min']:g}" if "ess_min" in first else "under 10% of the draws"
    if "min_ess_bulk" in failed:
        why.append(f"min bulk ESS {first['min_ess_bulk']:.0f} ({under})")
    if "min_ess_tail" in failed:
        why.append(f"min tail ESS {first['min_ess_tail']:.0f} ({under})")
    if kept.get("sampler") == "smc" and len(runs) >= 3:  # the rerun rule's last step
        second = runs[-2]
        return (f"NUTS ran twice from the EM estimate: the run at target_accept "
                f"{first['target_accept']} gave {', '.join(why)}, and the run with "
                f"{second['tune']} tuning steps still had max R-hat "
                f"{second['max_rhat']:.3f} (> 1.01); the results here are from tempered "
                "SMC + importance sampling (sampler='smc'), which searches the posterior "
                "from the prior.")
    return (f"Sampled twice: the run at target_accept {first['target_accept']} gave "
            f"{', '.join(why)}; the results here are from the run at target_accept "
            f"{kept['target_accept']} with {kept['tune']} tuning steps.")


def write_report(
    dt: Any,
    path: str | os.PathLike,
    *,
    diagnosis: Any = None,
    selection: Any = None,
    loo_table: Any = None,
    title: str | None = None,
) -> pathlib.Path:
    """Write one self-contained HTML report of a fit.

    The report reads top to bottom: the verdict in words, the parameter table (posterior
    summary in data units beside the EM estimate), the checks, the fitted density, the
    class probabilities, BIC/AIC against K (with ``selection``), the LOO comparison (with
    ``loo_table``), the rank plots and traces, and the posterior predictive check.
    Figures are PNGs embedded as data URIs; there are no external resources. A 1-D
    report ends with the likelihood explorer (:func:`bayesgmm.write_explorer`'s page,
    folded; its only script), built from the result's data, EM estimate and draws.

    For a result of D >= 2 features (posterior means with a ``feature`` dim) the middle
    differs: what was deconvolved (the measurement errors) and what was missing, in
    words; tables of the weights, of the means and sds per feature and of the
    correlations (posterior mean, interval, EM estimate), with ``diagnose``'s full
    table folded below them; the checks; membership (points per component); the pair
    plot (:func:`bayesgmm.plots.plot_pairs`) and the marginal densities
    (:func:`bayesgmm.plots.plot_marginals`). The rank plots, traces and predictive
    check show each feature's parameters. If ``diagnose`` fails on such a result, the
    verdict says so and the rest of the report is still written.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    path : str or path-like
        Where to write the HTML file. Written atomically: a temporary file in the same
        directory is renamed over ``path``, so an interrupted run leaves no partial file.
    diagnosis : Diagnosis, optional
        A ``bayesgmm.diagnostics.diagnose(dt)`` result (``ok``, ``verdict``, ``checks``,
        ``table``). Computed here when omitted.
    selection : pandas.DataFrame or SelectionResult, optional
        :func:`bayesgmm.select_n_components` output, for the BIC/AIC figure and table.
        Default: the table ``bayesgmm fit`` stored in ``dt.attrs``, if any.
    loo_table : pandas.DataFrame, optional
        An ``arviz_stats.compare`` table (index: model names). Default: the one
        ``bayesgmm fit --k auto`` stored in ``dt.attrs``, if any.
    title : str, optional
        Page title (default: "bayesgmm report: K-component Gaussian mixture").

    Returns
    -------
    pathlib.Path
        The absolute path of the written file.
    """
    from . import plots
    from ._stored import stored_tables

    path = pathlib.Path(path).expanduser().resolve()
    stored_sel, stored_loo = stored_tables(dt)
    selection = stored_sel if selection is None else selection
    loo_table = stored_loo if loo_table is None else loo_table
    md = _is_md(dt)
    if diagnosis is not None:
        diag = diagnosis
    elif md:
        diag = _diagnose_md(dt, selection, loo_table)
    else:
        diag = _diagnose(dt, selection, loo_table)
    K = dt["posterior"].sizes.get("component", "?")
    title = title or f"bayesgmm report: {K}-component Gaussian mixture"
    ok = bool(getattr(diag, "ok", False))
    verdict = str(getattr(diag, "verdict", ""))
    has_errors = bool(dt.attrs.get("has_errors", 0))

    body = [
        f"<h1>{_esc(title)}</h1>",
        f'<div class="verdict {"ok" if ok else "fail"}" id="verdict">'
        f"<strong>{'Verdict: OK' if ok else 'Verdict: problems found'}</strong>"
        f"{_esc(verdict)}</div>",
        _meta_md(dt) if md else _meta(dt),
    ]
    if md:
        body += _body_md(dt, diag, plots)
    else:
        body += _body_1d(dt, diag, plots, has_errors)
    body += _body_posterior_k(dt, selection, loo_table, plots)
    body += _body_selection(selection, loo_table, plots)
    body += _body_sampler(dt, plots, md)

    doc = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body) + "\n</body></html>\n"
    )
    _write_atomic(path, doc)
    return path


def _body_1d(dt: Any, diag: Any, plots: Any, has_errors: bool) -> list[str]:
    """The 1-D report's parameter table, checks, density and class probabilities."""
    from .posterior import interval_label

    body: list[str] = []
    table = _as_frame(getattr(diag, "table", None))
    ci = interval_label(getattr(table, "attrs", {}).get("ci_prob"),
                        getattr(table, "attrs", {}).get("ci_kind"))
    if table is not None:
        ends = [c for c in table.columns if str(c).endswith(("_lb", "_ub"))]
        named = f" (columns {' and '.join(map(str, ends))})" if len(ends) == 2 else ""
        body += ["<h2>Parameters (data units)</h2>",
                 f'<p class="meta">Posterior mean, sd and {_esc(ci)}{_esc(named)}, '
                 "as arviz_stats.summary gives them, with the maximum-likelihood (EM) "
                 "estimate beside them. Components are sorted by mean.</p>",
                 _table(table, index=True)]
    checks = _as_frame(getattr(diag, "checks", None))
    if checks is not None:
        body += ["<h2>Checks</h2>",
                 _table(_checks_table(checks),
                        bad=~checks["ok"].astype(bool).to_numpy() if "ok" in checks
                        else None)]

    body += ["<h2>Fitted density</h2>", _figure(
        lambda: plots.plot_density(dt), "fitted density",
        f"Posterior-mean density (black) with its {ci.replace(' interval', ' band')} "
        "over the data's histogram; dashed: each weighted component."
        + (" Right: the deconvolved density of the true values, measurement errors "
           "removed; dotted: the observed-value density for comparison."
           if has_errors else ""))]
    body += ["<h2>Class probabilities</h2>", _figure(
        lambda: plots.plot_membership(dt), "class probabilities",
        "Posterior-mean probability that a new value came from each component, stacked; "
        f"hatched: the {ci} of each boundary. Ticks: the data. The new value is taken "
        "as measured without error: with a measurement error e, every component is "
        "widened to sqrt(sigma^2 + e^2) and the boundaries soften "
        "(bayesgmm.membership(dt, X, X_err=e)).")]
    body += _explorer(dt)
    return body


def _explorer(dt: Any) -> list[str]:
    """The likelihood explorer, folded: the one part of the report that runs a script."""
    from .explorer import MAX_POINTS, section_from_tree

    try:
        section = section_from_tree(dt)
    except Exception as exc:  # a report is still written without it
        warnings.warn(f"the report's likelihood explorer was left out: {exc}", stacklevel=3)
        return []
    if section is None:
        return ["<h2>Likelihood explorer</h2>",
                f'<p class="meta">Left out: it redraws every point as a slider moves, and '
                f"takes at most {MAX_POINTS:,} points (bayesgmm.write_explorer on a "
                "subsample).</p>"]
    return ["<h2>Likelihood explorer</h2>",
            '<details class="explorer"><summary>Open it: move the parameters and watch '
            "the log-likelihood; EM and gradient steps, the EM maximum, posterior draws"
            f"</summary>{section}</details>"]


def _body_posterior_k(dt: Any, selection: Any, loo_table: Any, plots: Any) -> list[str]:
    """p(K | data) as bars with error bars, and where BIC and LOO agree with it, in words."""
    from ._stored import stored_posterior_k
    from .diagnostics.verdict import posterior_k_sentence

    pk = stored_posterior_k(dt)
    if pk is None:
        return []
    K = int(dt["posterior"].sizes.get("component", 0))
    loo = _as_frame(loo_table) if loo_table is not None else None
    sentence = posterior_k_sentence(K, pk, selection, loo) if K in pk.index else ""
    table = pk.reset_index()
    return ["<h2>Number of components: p(K | data)</h2>", f"<p>{_esc(sentence)}</p>",
            _figure(lambda: plots.plot_posterior_k(pk, chosen=K),
                    "posterior probability of each number of components",
                    "p(K | data) from each K's marginal likelihood (importance sampling "
                    "from tempered SMC's or NUTS's draws; where that fails, K - 1's times "
                    "the ratio from the probability of an empty component; hatched: an "
                    "unchecked evidence), with 2 Monte Carlo sds; the dashes are the "
                    "prior p(K)."),
            _table(table)]


def _body_selection(selection: Any, loo_table: Any, plots: Any) -> list[str]:
    """BIC/AIC against K and the LOO comparison, when given or stored."""
    body: list[str] = []
    if selection is not None:
        sel = plots.selection_data(selection)
        body += ["<h2>Number of components: BIC and AIC</h2>", _figure(
            lambda: plots.plot_selection(selection), "BIC and AIC against K",
            "Information criteria of the EM fits for each K (lower is better); stars mark "
            "the best K of each."), _table(sel)]
    if loo_table is not None:
        loo = _as_frame(loo_table)
        if loo.index.name is None:
            loo.index.name = "model"
        body += ["<h2>LOO comparison</h2>",
                 '<p class="meta">Expected log predictive density by PSIS-LOO; the first '
                 "row is the best model.</p>", _table(loo, index=True)]
    return body


def _body_sampler(dt: Any, plots: Any, md: bool) -> list[str]:
    """Rank plots, traces and the posterior predictive check."""
    body: list[str] = []
    which = ("" if not md else "Panels: the weights, each feature's means and sds and "
             "each pair's correlations, per component. ")
    body += ["<h2>Sampler: rank plots</h2>", _figure(
        lambda: plots.plot_trace(dt, kind="rank"), "rank plots",
        which + "Each curve: one chain's ECDF of its draws' fractional ranks (among all chains' "
        f"draws) minus the uniform's. Shaded: the {_envelope_prob():.0%} simultaneous "
        "envelope that all "
        "chains stay inside when they sample the same distribution (for the draws "
        "thinned to about independent ones). "
        + ("p in each panel: ArviZ's multi-chain uniformity test; under α it marks the "
           "draws that drive it. Curves leaving the envelope, or p under α, mean "
           if int(dt["posterior"].sizes["chain"]) >= 3 else
           "(ArviZ's multi-chain p is not shown: it has no power with 2 chains.) Curves "
           "leaving the envelope mean ")
        + "the chains differ in the shape of their distributions, which R-hat (location "
        "and spread only) can miss; the rank_ecdf check above weighs that against the "
        "number of panels.")]
    body += ["<h2>Sampler: traces</h2>", _figure(
        lambda: plots.plot_trace(dt, kind="trace"), "trace plots",
        "Left: each chain's posterior density of each parameter; right: its draws after "
        "tuning. Colours: components; line styles: chains.")]
    if "posterior_predictive" in dt.children:
        body += ["<h2>Posterior predictive check</h2>", _figure(
            lambda: plots.plot_ppc(dt), "posterior predictive check",
            ("One panel per feature, over the points where it was observed. " if md
             else "")
            + "Densities of data sets replicated from the posterior"
            + (" (each with the data's own measurement errors)"
               if dt.attrs.get("has_errors") else "")
            + " against the observed data's density: the observed curve should look like "
            "one of the replicates.")]
    return body


# ---------------------------------------------------------------------- D dims


def _is_md(dt: Any) -> bool:
    post = dt["posterior"]
    return "means" in post and "feature" in post["means"].dims


class _NoDiagnosis:
    """What the report shows when ``diagnose`` raised on a D-dim result."""

    ok = False
    checks = None
    table = None

    def __init__(self, exc: BaseException) -> None:
        self.verdict = (f"The checks could not be run on this result "
                        f"({type(exc).__name__}: {exc}); the figures and tables below "
                        "are shown without them.")


def _diagnose_md(dt: Any, selection: Any = None, loo_table: Any = None) -> Any:
    """``diagnose`` on a D-dim result; a failure is reported in the verdict, not raised."""
    try:
        return _diagnose(dt, selection, loo_table)
    except Exception as exc:  # the report of a fit must still be written
        warnings.warn(f"diagnose failed on this D-dim result: {exc}", RuntimeWarning,
                      stacklevel=3)
        return _NoDiagnosis(exc)


def _n_points(dt: Any) -> int:
    return int(dt["observed_data"].sizes.get("obs", 0))


def _meta_md(dt: Any) -> str:
    from .plots._common import _feature_label

    post = dt["posterior"]
    attrs = dt.attrs
    feats = [_feature_label(f) for f in post["feature"].values]
    parts = [
        f"{_n_points(dt)} points with {len(feats)} features ({', '.join(feats)})",
        f"K = {post.sizes.get('component', '?')} components with full covariances",
        f"{post.sizes['chain']} chains x {post.sizes['draw']} draws",
        f"sampler {attrs.get('sampler', post.attrs.get('sampler', '?'))}",
        "with per-point measurement error covariances (sds and correlations are "
        "intrinsic)" if attrs.get("has_errors") else "exact values (no measurement errors)",
        f"bayesgmm {attrs.get('bayesgmm_version', '?')}",
    ]
    meta = f'<p class="meta">{_esc("; ".join(parts))}.</p>'
    runs = _runs_sentence(attrs.get("sampling_runs"))
    return meta + (f'<p class="meta">{_esc(runs)}</p>' if runs else "")


def _flat(da: Any, *dims: str) -> np.ndarray:
    """Draws of ``da`` as (S, *dims)."""
    v = np.asarray(da.transpose("chain", "draw", *dims).values, dtype=float)
    return v.reshape(-1, *v.shape[2:])


def _parameter_tables_md(dt: Any) -> tuple[Any, Any, Any, str]:
    """Weights; means and sds per feature; correlations per pair: mean, interval, EM.

    Intervals as the figures' (ArviZ's ``stats.ci_prob``/``stats.ci_kind``), named as
    ``arviz_stats.summary`` names them (``eti89_lb``).
    """
    import pandas as pd

    from .plots._common import _feature_label
    from .posterior.summaries import _interval
    from .validation import check_ci_kind, check_ci_prob

    prob, kind = check_ci_prob(None), check_ci_kind(None)
    lb, ub = f"{kind}{round(100 * prob)}_lb", f"{kind}{round(100 * prob)}_ub"
    post = dt["posterior"]
    em = dt["em_estimate"] if "em_estimate" in dt.children else None
    feats = list(post["feature"].values)
    K = int(post.sizes["component"])

    def summary(draws: np.ndarray) -> dict[str, np.ndarray]:
        lo, hi = _interval(draws, prob, kind)
        return {"": draws.mean(axis=0), lb: lo, ub: hi}

    def em_of(var: str, *dims: str) -> np.ndarray | None:
        if em is None or var not in em or not set(dims) <= set(em[var].dims):
            return None
        return np.asarray(em[var].transpose(*dims).values, dtype=float)

    w = summary(_flat(post["weights"], "component"))
    w_em = em_of("weights", "component")
    weights = pd.DataFrame({"component": np.arange(K), "weight": w[""], lb: w[lb],
                            ub: w[ub]})
    if w_em is not None:
        weights["EM"] = w_em
    rows = []
    per = {v: summary(_flat(post[v], "component", "feature")) for v in ("means", "sds")}
    ems = {v: em_of(v, "component", "feature") for v in ("means", "sds")}
    for k in range(K):
        for i, f in enumerate(feats):
            row = {"component": k, "feature": _feature_label(f)}
            for v in ("means", "sds"):
                row[v] = per[v][""][k, i]
                row[f"{v}_{lb}"], row[f"{v}_{ub}"] = per[v][lb][k, i], per[v][ub][k, i]
                if ems[v] is not None:
                    row[f"{v}_EM"] = ems[v][k, i]
            rows.append(row)
    corr_rows = []
    if "correlations" in post:
        c = summary(_flat(post["correlations"], "component", "feature", "feature_"))
        c_em = em_of("correlations", "component", "feature", "feature_")
        for k in range(K):
            for i in range(len(feats)):
                for j in range(i + 1, len(feats)):
                    row = {"component": k,
                           "features": f"{_feature_label(feats[i])}, "
                                       f"{_feature_label(feats[j])}",
                           "correlation": c[""][k, i, j], lb: c[lb][k, i, j],
                           ub: c[ub][k, i, j]}
                    if c_em is not None:
                        row["EM"] = c_em[k, i, j]
                    corr_rows.append(row)
    from .posterior import interval_label

    return (weights, pd.DataFrame(rows), pd.DataFrame(corr_rows),
            f"{interval_label(prob, kind)} (columns ending {lb} and {ub})")


def _membership_table_md(dt: Any, membership: np.ndarray) -> Any:
    import pandas as pd

    assigned = membership.argmax(axis=1)
    sure = membership.max(axis=1) > 0.9
    K = membership.shape[1]
    return pd.DataFrame({
        "component": np.arange(K),
        "points (most probable)": [int(np.sum(assigned == k)) for k in range(K)],
        "of them with p > 0.9": [int(np.sum((assigned == k) & sure)) for k in range(K)],
        "expected points (sum of p)": membership.sum(axis=0),
    })


def _deconvolution_md(dt: Any) -> str:
    """In words: what the measurement errors and the missing values did."""
    from .plots._common import _feature_label
    from .plots.mixture_md import _error_covs, _observed_md

    X = _observed_md(dt)
    n, D = X.shape
    feats = [_feature_label(f) for f in dt["posterior"]["feature"].values]
    miss = np.isnan(X)
    out = []
    err = _error_covs(dt)
    if err is None:
        out.append("No measurement errors were given: the values were taken as exact, and "
                   "nothing was deconvolved. The ellipses, sds and correlations describe "
                   "the data's own scatter around each component.")
    else:
        sd = np.sqrt(np.clip(np.diagonal(err, axis1=1, axis2=2), 0, None))
        med = [float(np.median(sd[~miss[:, d], d])) if np.any(~miss[:, d]) else np.nan
               for d in range(D)]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = err / (sd[:, :, None] * sd[:, None, :])
        iu = np.triu_indices(D, 1)
        rr = np.abs(r[:, iu[0], iu[1]])
        correlated = bool(np.nanmax(rr, initial=0.0) > 0)
        out.append(
            "Each point's measurement error covariance was part of the model, so the "
            "mixture was deconvolved: the ellipses, sds and correlations in this report "
            "are those of the true values, errors removed. Median error sd per feature: "
            + ", ".join(f"{f} {format_number(m)}" for f, m in zip(feats, med, strict=True))
            + (f"; the errors were correlated (median |correlation| "
               f"{format_number(float(np.nanmedian(rr)))})" if correlated
               else "; the errors were uncorrelated between features")
            + ". In the marginal densities, black is the density of observed values "
            "(errors included) and purple the deconvolved density of the true values.")
    if miss.any():
        rows = int(miss.any(axis=1).sum())
        per = ", ".join(f"{f}: {int(c)}" for f, c in zip(feats, miss.sum(axis=0),
                                                          strict=True) if c)
        out.append(
            f"{rows} of {n} points had missing values ({per} missing). Each point's "
            "likelihood used its observed features only (the missing ones marginalised "
            "exactly); in the pair plot a point appears in the panels where both features "
            "are observed, hollow when it misses any feature.")
    else:
        out.append(f"No values were missing: all {n} points have "
                   + ("both features." if D == 2 else f"all {D} features."))
    return "".join(f'<p>{_esc(t)}</p>' for t in out)


def _body_md(dt: Any, diag: Any, plots: Any) -> list[str]:
    """The D-dim report's words, tables, checks, membership, pair plot and marginals."""
    from .plots._common import _feature_label
    from .plots.mixture_md import MAX_PAIR_FEATURES, _point_membership

    body = ["<h2>Measurement errors and missing values</h2>", _deconvolution_md(dt)]
    weights, per_feature, corr, ci = _parameter_tables_md(dt)
    body += ["<h2>Parameters (data units)</h2>",
             f'<p class="meta">Posterior mean and {_esc(ci)} of each parameter, with '
             "the maximum-likelihood (EM) estimate beside it. Components are labelled as "
             "the EM estimate labels them (each draw relabelled to it).</p>",
             "<h3>Weights</h3>", _table(weights),
             "<h3>Means and sds per feature</h3>", _table(per_feature)]
    if len(corr):
        body += ["<h3>Correlations</h3>", _table(corr)]
    table = _as_frame(getattr(diag, "table", None))
    if table is not None:
        body += ["<details><summary>Every parameter as arviz_stats.summary gives it "
                 "(with R-hat and ESS)</summary>", _table(table, index=True), "</details>"]
    checks = _as_frame(getattr(diag, "checks", None))
    if checks is not None:
        body += ["<h2>Checks</h2>",
                 _table(_checks_table(checks),
                        bad=~checks["ok"].astype(bool).to_numpy() if "ok" in checks
                        else None)]
    membership = _point_membership(dt)
    unsure = int(np.sum(membership.max(axis=1) <= 0.9))
    body += ["<h2>Membership</h2>",
             '<p class="meta">Posterior-mean probability p(component | point) of each '
             "observed point, from its observed features"
             + (" and its own measurement errors" if dt.attrs.get("has_errors") else "")
             + f" (bayesgmm.membership): {unsure} of {membership.shape[0]} points have no "
             "component above 0.9.</p>",
             _table(_membership_table_md(dt, membership))]
    D = int(dt["posterior"].sizes["feature"])
    shown = ("" if D <= MAX_PAIR_FEATURES else
             f" Only the first {MAX_PAIR_FEATURES} of the {D} features are shown "
             "(plots.plot_pairs(dt, features=[...]) draws others).")
    feats = [_feature_label(f) for f in dt["posterior"]["feature"].values]
    body += ["<h2>Pair plot</h2>", _figure(
        lambda: plots.plot_pairs(dt), "pair plot",
        "Below the diagonal: the points, coloured by their most probable component "
        "(fainter when less sure), and each component's ellipses holding 68% and 95% of "
        "it (the probabilities of 1 and 2 sd in one dimension): thin, 30 posterior "
        "draws; dashed black, the EM estimate. "
        + ("The ellipses are the components' intrinsic covariances, errors removed, so "
           "the points scatter wider. " if dt.attrs.get("has_errors") else "")
        + "Diagonal: each feature's marginal density (as below). Above the diagonal: "
        + ("contours of the fitted density" if D == 2 else
           "contours of each pair's posterior-mean density")
        + (" of the true values (errors removed)" if dt.attrs.get("has_errors") else "")
        + "." + shown)]
    body += ["<h2>Marginal densities</h2>", _figure(
        lambda: plots.plot_marginals(dt), "marginal densities",
        f"Each feature's ({', '.join(feats)}) posterior-mean marginal density of observed "
        "values (black) with its band over the histogram of its observed values; dashed: "
        "each weighted component"
        + ("; purple: the deconvolved density of the true values, errors removed, with "
           "its band." if dt.attrs.get("has_errors") else "."))]
    return body


def _write_atomic(path: pathlib.Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; a report is for reading
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
