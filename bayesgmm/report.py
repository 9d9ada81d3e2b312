"""The self-contained HTML report of a :func:`bayesgmm.fit` result.

One file, readable offline: inline CSS, figures embedded as base64 PNG data URIs, no
scripts and no external resources. It opens with the verdict in words, then the numbers,
then the figures.
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
    Figures are PNGs embedded as data URIs; there are no external resources or scripts.

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
    from .posterior import interval_label

    path = pathlib.Path(path).expanduser().resolve()
    stored_sel, stored_loo = stored_tables(dt)
    selection = stored_sel if selection is None else selection
    loo_table = stored_loo if loo_table is None else loo_table
    diag = diagnosis if diagnosis is not None else _diagnose(dt, selection, loo_table)
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
        _meta(dt),
    ]
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
    body += ["<h2>Sampler: rank plots</h2>", _figure(
        lambda: plots.plot_trace(dt, kind="rank"), "rank plots",
        "Each curve: one chain's ECDF of its draws' fractional ranks (among all chains' "
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
            "Densities of data sets replicated from the posterior"
            + (" (each with the data's own measurement errors)"
               if dt.attrs.get("has_errors") else "")
            + " against the observed data's density: the observed curve should look like "
            "one of the replicates.")]

    doc = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body) + "\n</body></html>\n"
    )
    _write_atomic(path, doc)
    return path


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
