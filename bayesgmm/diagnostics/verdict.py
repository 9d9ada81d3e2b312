"""The verdict of :func:`bayesgmm.diagnostics.diagnose` in words.

Plain sentences, each said once: can the numbers be trusted, what the measurement errors
did to the widths, which K was chosen and why, and what to run next (the exact
``bayesgmm fit`` command when the result came from the CLI, else the ``bayesgmm.fit``
call).
"""

from __future__ import annotations

import json
import math
import shlex
from typing import Any

import numpy as np

from .._stored import cli_args, stored_posterior_k

#: What to try first for each failed check, most fundamental first.
FIRST_TRY = {
    "chains_agree": "fit fewer components (K - 1), since the chains found different "
                    "solutions",
    "no_empty_component": "fit K - 1 components and compare the two fits by LOO",
    "labels_identified": "fit K - 1 components, since two components sit on top of each other",
    "pivot_identified": "relabel the draws to the EM estimate if they were not; if two "
                        "components are interchangeable, fit K - 1 components",
    "modes_mixed": "sample with tempered SMC, which finds the modes and weights them",
    "modes_reached": "sample with tempered SMC, which finds the modes and weights them",
    "r_hat": "run longer (twice the tuning steps and draws) with at least 4 chains",
    "rank_ecdf": "run longer (twice the tuning steps and draws), so that every chain "
                 "covers the whole posterior",
    "no_divergences": "raise target_accept to 0.99, or fit fewer components",
    "ess_bulk": "draw more samples",
    "ess_tail": "draw more samples",
    "e_bfmi": "run a longer tune so the sampler adapts to the posterior's scale",
    "tree_depth": "run a longer tune; if it persists, fit fewer components",
    "near_em": "compare other numbers of components by LOO (the priors may also be too "
               "tight)",
    "ppc_sd": "compare other numbers of components by LOO, and look for outliers",
    "ppc_skewness": "compare other numbers of components by LOO, and look for outliers",
    "ppc_tails": "compare other numbers of components by LOO, and look for outliers",
}
#: Checks about the sampler; the others are about the model's fit to the data.
SAMPLING = {"chains_agree", "modes_mixed", "modes_reached", "r_hat", "rank_ecdf",
            "no_divergences", "ess_bulk", "ess_tail", "e_bfmi", "tree_depth", "near_em"}
_DEFAULTS = {"draws": 1000, "tune": 1000, "chains": 4}


def _run_settings(dt: Any) -> dict[str, Any]:
    post = dt["posterior"]
    try:
        runs = json.loads(dt.attrs.get("sampling_runs") or "[]")
    except (TypeError, ValueError):
        runs = []
    # the kept (last) run's tune: a command that doubles it asks for more than was tried
    tune = int(runs[-1]["tune"]) if runs and "tune" in runs[-1] else _DEFAULTS["tune"]
    return {"draws": int(post.sizes["draw"]), "tune": tune, "chains": int(post.sizes["chain"]),
            "K": int(post.sizes.get("component", 1))}


def command(dt: Any, *, k: Any = None, draws: int | None = None, tune: int | None = None,
            chains: int | None = None, target_accept: float | None = None,
            sampler: str | None = None, suffix: str = "next") -> str:
    """The command that refits ``dt``'s data with some settings changed.

    ``bayesgmm fit ...`` (with the file, columns and options of the run) when ``dt``
    was written by the CLI, else a ``bayesgmm.fit(X, ...)`` call.
    """
    run = _run_settings(dt)
    k = run["K"] if k is None else k
    new = {"draws": draws or run["draws"], "tune": tune or run["tune"],
           "chains": chains or run["chains"]}
    show = {key for key, value in new.items()
            if value != _DEFAULTS[key] or value != run[key]}  # what differs or changed
    cli = cli_args(dt)
    if cli:
        parts = ["bayesgmm", "fit", str(cli.get("file", "DATA.csv"))]
        if cli.get("column"):
            parts += ["--column", str(cli["column"])]
        if cli.get("columns"):  # D dims: the columns, errors and error correlations
            parts += ["--columns", *map(str, cli["columns"])]
        errors = cli.get("errors")
        if errors:
            parts += ["--errors", *([errors] if isinstance(errors, str) else map(str, errors))]
        for kind in ("corr", "cov"):
            if cli.get(f"error_{kind}"):
                parts += [f"--error-{kind}", *map(str, cli[f"error_{kind}"])]
        parts += ["--k", str(k)]
        for key, value in new.items():
            if key in show:
                parts += [f"--{key}", str(value)]
        ta = target_accept if target_accept is not None else cli.get("target_accept")
        if ta is not None:
            parts += ["--target-accept", f"{ta:g}"]
        chosen = sampler or cli.get("sampler")
        if chosen not in (None, "nutpie"):
            parts += ["--sampler", str(chosen)]
        if cli.get("seed") is not None:
            parts += ["--seed", str(cli["seed"])]
        if cli.get("sep"):
            parts += ["--sep", str(cli["sep"])]
        if cli.get("no_loglik"):
            parts += ["--no-loglik"]
        if cli.get("thin_ppc") is not None:
            parts += ["--thin-ppc", str(cli["thin_ppc"])]
        out = str(cli.get("out") or "result").rstrip("/")
        parts += ["--out", f"{out}-{suffix}"]
        return " ".join(shlex.quote(p) for p in parts)
    args = ["X", str(k)]
    if dt.attrs.get("has_errors"):
        args.append("X_err=X_err")
    args += [f"{key}={value}" for key, value in new.items() if key in show]
    if target_accept is not None:
        args.append(f"target_accept={target_accept:g}")
    if sampler is not None:
        args.append(f"sampler={sampler!r}")
    return f"bayesgmm.fit({', '.join(args)})"


def _more_draws(draws: int, ess: float, ess_min: float) -> int:
    """Draws per chain expected to reach ``ess_min`` (ESS grows about linearly).

    Rounded up to a thousand, at least twice the current, at most 16 times.
    """
    need = draws * ess_min / max(ess, 1.0) * 1.2
    return int(min(max(2 * draws, 1000 * math.ceil(need / 1000)), 16 * draws))


def _next_step(first: str, checks: Any, dt: Any, selection: Any) -> str:
    run = _run_settings(dt)
    K = run["K"]
    row = checks.set_index("name").loc[first]
    if first in ("chains_agree", "no_empty_component", "labels_identified",
                 "pivot_identified") and K > 1:
        return command(dt, k=K - 1, suffix=f"k{K - 1}")
    if first in ("modes_mixed", "modes_reached"):
        return command(dt, sampler="smc", suffix="smc")
    if first in ("r_hat", "rank_ecdf") and _md_rerun_failed(dt):
        # D dims, NUTS from EM failed twice: a posterior whose regions NUTS moves between
        # too slowly (Old Faithful at K = 3); SMC from the prior weights them
        return command(dt, sampler="smc", suffix="smc")
    if first in ("r_hat", "rank_ecdf"):
        return command(dt, draws=2 * run["draws"], tune=2 * run["tune"],
                       chains=max(4, run["chains"]), suffix="longer")
    if first in ("ess_bulk", "ess_tail"):
        ess = float(checks.set_index("name").loc[["ess_bulk", "ess_tail"], "value"].min())
        draws = _more_draws(run["draws"], ess, float(row["threshold"]))
        return command(dt, draws=draws, suffix=f"draws{draws}")
    if first == "no_divergences":
        if float(dt.attrs.get("target_accept", 0.8)) < 0.99:
            return command(dt, target_accept=0.99, suffix="ta99")
        if K > 1:
            return command(dt, k=K - 1, suffix=f"k{K - 1}")
        return command(dt, tune=2 * run["tune"], suffix="tune")  # K = 1: adapt longer
    if first in ("e_bfmi", "tree_depth"):
        return command(dt, tune=2 * run["tune"], suffix="tune")
    # model checks (and near_em): another K, the best by BIC when it differs
    best = _best_bic(selection)
    k = best if best is not None and best != K else K + 1
    return command(dt, k=k, suffix=f"k{k}")


def _md_rerun_failed(dt: Any) -> bool:
    """A D-dim NUTS fit whose second run (fit's rerun rule) failed its checks too."""
    if int(dt.attrs.get("n_features", 1)) < 2 or dt.attrs.get("sampler") == "smc":
        return False
    runs = json.loads(dt.attrs.get("sampling_runs", "[]"))
    return len(runs) >= 2 and bool(runs[-1].get("failed"))


def _modes_from_em(dt: Any) -> bool:
    """Whether the draws are in several modes, from chains started at the EM estimate.

    Then a mode no chain reached can be missing, which no check sees: the verdict's
    trust is limited to the modes reached (:func:`modes_sentence` says what to run).
    """
    raw = dt.attrs.get("modes")
    if raw is None or int(json.loads(raw)["n_modes"]) < 2:
        return False
    return dt["posterior"].attrs.get("sampler") not in WEIGHTED_SAMPLERS


#: samplers whose draws weight every mode they found (importance sampling, or Gibbs
#: chains started at SMC's particles from the prior); ``bayes.modes`` searches for
#: modes no chain reached only after the others
WEIGHTED_SAMPLERS = ("smc", "nuts+importance", "gibbs")


def modes_sentence(dt: Any) -> str:
    """How many modes the draws are in, and their weights ('' for one mode)."""
    raw = dt.attrs.get("modes")
    if raw is None:
        return ""
    modes = json.loads(raw)
    if int(modes["n_modes"]) < 2:
        return ""
    weights = ", ".join(f"{w:.3g}" for w in modes["weights"])
    sampler = dt["posterior"].attrs.get("sampler")
    how = ("its draws are weighted by importance sampling, so these are the modes' "
           "posterior masses" if sampler in ("smc", "nuts+importance") else
           "its draws come from Gibbs chains started at SMC's particles, so these "
           "are the shares of their draws" if sampler == "gibbs" else
           "the chains started at the EM estimate, so a mode none of them reached is "
           "missing; sampler='smc' searches from the prior")
    return (f"The draws are in {modes['n_modes']} modes of the posterior (weights "
            f"{weights}; different groupings of the points): {how}.")


def _best_bic(selection: Any) -> int | None:
    table = getattr(selection, "table", selection)
    if table is None or not len(table):
        return None
    ok = table[~table["degenerate"].astype(bool)] if "degenerate" in table else table
    return int(ok.sort_values("bic")["k"].iloc[0]) if len(ok) else None


def width_sentence(dt: Any) -> str:
    """How much removing the measurement errors narrowed the widths ('' without errors)."""
    if not dt.attrs.get("has_errors") or "constant_data" not in dt.children:
        return ""
    if "x_err_cov" in dt["constant_data"]:
        return _width_sentence_md(dt)
    e = np.asarray(dt["constant_data"]["x_err"].values, dtype=float)
    if not np.any(e > 0):
        return ""
    med = float(np.median(e))
    sg = dt["posterior"]["sigmas"].values.reshape(-1, dt["posterior"].sizes["component"])
    sigma = sg.mean(axis=0)
    wide = np.hypot(sigma, med)
    pct = 100 * (1 - sigma / wide)
    units = str(dt["posterior"]["sigmas"].attrs.get("units", ""))
    units = "" if units in ("", "data units") else f" {units}"

    def fmt(v, form="{:.3g}"):
        items = [form.format(x) for x in v]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    return (f"Removing the measurement errors (median {med:.3g}{units}) narrowed the "
            f"widths: the intrinsic sigmas are {fmt(sigma)}, against {fmt(wide)} with the "
            f"errors left in (sqrt(sigma^2 + median error^2)), {fmt(pct, '{:.0f}%')} "
            "narrower.")


def _width_sentence_md(dt: Any) -> str:
    """D dims: per feature, the intrinsic sds against sds widened by the errors.

    The intrinsic sd is the posterior mean averaged over components; the widened one
    adds the median error sd of the feature's points that hold it.
    """
    cov = np.asarray(dt["constant_data"]["x_err_cov"].values, dtype=float)
    err = np.sqrt(np.maximum(np.einsum("njj->nj", cov), 0.0))  # (n, D)
    post = dt["posterior"]
    sds = post["sds"].transpose(..., "component", "feature").values
    sds = sds.reshape(-1, *sds.shape[-2:]).mean(axis=0).mean(axis=0)  # (D,)
    feats = post["feature"].values
    parts = []
    for j, name in enumerate(feats):
        e = err[:, j][err[:, j] > 0]
        if not e.size:
            continue
        med = float(np.median(e))
        wide = float(np.hypot(sds[j], med))
        parts.append(f"{name}: {sds[j]:.3g} against {wide:.3g} "
                     f"({100 * (1 - sds[j] / wide):.0f}% narrower; median error {med:.3g})")
    if not parts:
        return ""
    return ("Removing the measurement errors narrowed the widths: the intrinsic sds "
            "(mean over components) against sqrt(sd^2 + median error^2), per feature: "
            + "; ".join(parts) + ".")


def k_sentence(dt: Any, selection: Any, loo: Any) -> str:
    """Which K was fitted and why, from p(K | data), the LOO comparison and the BIC table."""
    K = int(dt["posterior"].sizes.get("component", 1))
    pk = stored_posterior_k(dt)
    if pk is not None and K in pk.index:
        return posterior_k_sentence(K, pk, selection, loo)
    name = f"K={K}"
    best = _best_bic(selection)
    if loo is not None and len(loo) > 1 and name in loo.index:
        top = str(loo.index[0])
        others = ", ".join(str(i) for i in loo.index if str(i) != name)
        # why --k auto set a candidate aside (not identified, unreliable LOO): it is said,
        # so the verdict never argues for a candidate the choice rightly ignored
        notes = {str(i): str(loo.loc[i, "note"]) for i in loo.index
                 if "note" in loo.columns and isinstance(loo.loc[i, "note"], str)
                 and loo.loc[i, "note"].strip() and str(i) != name}
        aside = " ".join(f"{i} was set aside: {n}." for i, n in notes.items())
        rivals = [str(i) for i in loo.index if str(i) != name and str(i) not in notes]
        if not rivals:  # every other candidate was set aside: LOO decided nothing
            return f"K = {K} was chosen as the only candidate left: {aside}"
        if top == name:
            second = rivals[0]  # the best candidate that was compared
            d, se = abs(float(loo.loc[second, "elpd_diff"])), float(loo.loc[second, "dse"])
            return (f"K = {K} was chosen by LOO against {others}: it has the highest "
                    f"expected log predictive density, ahead of {second} by {d:.1f} +- "
                    f"{se:.1f}." + (" " + aside if aside else ""))
        d, se = abs(float(loo.loc[name, "elpd_diff"])), float(loo.loc[name, "dse"])
        if top in notes:
            return (f"K = {K} was chosen by LOO against {others}: {top} has a higher "
                    f"expected log predictive density (by {d:.1f} +- {se:.1f}), but " + aside)
        how = ("within 2 standard errors, so the simpler mixture was kept" if d <= 2 * se
               else "more than 2 standard errors")
        return ((f"K = {K} was chosen by LOO against {others}: {top} has a higher "
                 f"expected log predictive density, but only by {d:.1f} +- {se:.1f}, {how}."
                 if d <= 2 * se else
                 f"K = {K} was kept although LOO puts {top} ahead by {d:.1f} +- {se:.1f} "
                 f"({how}); consider {top}.") + (" " + aside if aside else ""))
    if best is None:
        return ""
    if best == K:
        return f"K = {K} is also the number of components the BIC of the EM fits prefers."
    return (f"K = {K} was fitted, but the BIC of the EM fits prefers K = {best}: "
            f"{_compare_k(dt)}.")


def posterior_k_sentence(K: int, pk: Any, selection: Any = None, loo: Any = None) -> str:
    """``--k auto``'s choice by p(K | data), and where BIC and LOO agree with it, in words.

    Parameters
    ----------
    K : int
        The K that was fitted.
    pk : pandas.DataFrame
        ``PosteriorK.to_dataframe()`` (index K; ``p(K | data)``, ``sd``, ``method``).
    selection, loo : pandas.DataFrame, optional
        The BIC/AIC table and the LOO comparison (best first), when there are.
    """
    p = pk["p(K | data)"]
    order = p.sort_values(ascending=False).index
    top = int(order[0])
    runner = int(order[1]) if len(order) > 1 else None
    text = (f"K = {K} {'was chosen by' if K == top else 'was fitted; by'} its posterior "
            f"probability, p(K = {top} | data) = {p[top]:.2f} +- {pk['sd'][top]:.2f}"
            + (f" (next K = {runner}: {p[runner]:.2f})" if runner is not None else "")
            + ".")
    method = pk.loc[top, "method"] if "method" in pk else "importance"
    if method in ("smc", "nuts+importance (check failed)"):
        text += (f" K = {top}'s evidence " + (
            "rests on SMC alone (importance sampling failed its check)" if method == "smc"
            else "failed its importance check") + ", so this probability is rough.")
    bic = _best_bic(selection)
    # LOO's preference: its best candidate that --k auto did not set aside (a note says
    # why one was: not identified, unreliable LOO)
    loo_top = None
    if loo is not None and len(loo) > 1:
        kept = [str(i) for i in loo.index if str(i).startswith("K=") and not (
            "note" in loo.columns and isinstance(loo.loc[i, "note"], str)
            and loo.loc[i, "note"].strip())]
        loo_top = int(kept[0].split("=")[1]) if kept else None
    agree = [c for c, k in (("the BIC of the EM fits", bic), ("LOO", loo_top)) if k == top]
    differ = [(c, k) for c, k in (("the BIC of the EM fits", bic), ("LOO", loo_top))
              if k is not None and k != top]
    if agree and not differ:
        both = " and ".join(agree)
        return text + f" {both[0].upper()}{both[1:]} agree{'s' * (len(agree) == 1)}."
    if differ:
        said = "; ".join(f"{c} prefers K = {k} (p(K = {k} | data) = "
                         f"{p[k]:.2f})" if k in p.index else f"{c} prefers K = {k}"
                         for c, k in differ)
        return (text + f" {said[0].upper()}{said[1:]}"
                + (f", while {' and '.join(agree)} agree{'s' * (len(agree) == 1)} with it"
                   if agree else "")
                + ": BIC charges log n per parameter and LOO scores predictions of new "
                "points, while p(K | data) averages the fit over the priors, so they part "
                "where a component is small or overlaps another.")
    return text


def _compare_k(dt: Any) -> str:
    if cli_args(dt):
        return f"compare K by LOO (run: {command(dt, k='auto', suffix='auto')})"
    return ("fit the other K with bayesgmm.fit and compare the fits by LOO with "
            "arviz_stats.compare")


def rank_note(checks: Any) -> str:
    """Explain a rank-plot flag that the rank check still passes ('' when none)."""
    c = checks.set_index("name")
    if "rank_ecdf" not in c.index or not c.loc["rank_ecdf", "ok"]:
        return ""
    msg = str(c.loc["rank_ecdf", "message"])
    return msg[0].upper() + msg[1:] + "." if msg.startswith("the rank plot flags") else ""


def verdict(checks: Any, dt: Any, selection: Any = None, loo: Any = None) -> str:
    """The verdict: two to six sentences, none repeated."""
    K = int(dt["posterior"].sizes.get("component", 0))
    failed = checks.loc[~checks["ok"], "name"].tolist()
    ran = int((~checks["skipped"]).sum())
    sentences = []
    if not failed:
        skipped = checks.loc[checks["skipped"], "name"].tolist()
        note = f" ({', '.join(skipped)} could not be run)" if skipped else ""
        flag = rank_note(checks)
        sentences.append(
            f"All {ran} checks that could be run passed{note}: "
            + ("R-hat, the effective draws and the sampler's statistics show no problem"
               if flag else "the chains agree, there are enough effective draws, and the "
               "sampler reported no problems")
            + f". These numbers can be trusted as the posterior of this {K}-component "
            + ("model within the modes the chains reached." if _modes_from_em(dt) else
               "model."))
        if flag:
            run = _run_settings(dt)
            longer = command(dt, draws=2 * run["draws"], tune=2 * run["tune"],
                             chains=max(4, run["chains"]), suffix="longer")
            sentences.append(f"{flag[:-1]}; nothing needs to be done, but to settle it "
                             f"run: {longer}.")
    else:
        first = min(failed, key=list(FIRST_TRY).index)
        listed = ", ".join(failed)
        if any(f in SAMPLING for f in failed):
            sentences.append(
                f"Do not trust these numbers yet: {len(failed)} of {ran} checks failed "
                f"({listed}), so the sampler has not explored the posterior reliably.")
        else:
            sentences.append(
                f"The sampler explored the posterior reliably, but {len(failed)} of {ran} "
                f"checks on the model failed ({listed}): the numbers describe the posterior "
                f"faithfully, but this {K}-component model does not describe the data well.")
        first_try = FIRST_TRY[first]
        if K == 1 and first == "no_divergences":
            first_try = ("raise target_accept to 0.99" if float(dt.attrs.get(
                "target_accept", 0.8)) < 0.99 else "run a longer tune")
        sentences.append(f"First try: {first_try} "
                         f"(run: {_next_step(first, checks, dt, selection)}).")
    sentences += [modes_sentence(dt), width_sentence(dt), k_sentence(dt, selection, loo)]
    if not failed and loo is None and _best_bic(selection) in (None, K):
        sentences.append("Whether another number of components fits better is a separate "
                         f"question: {_compare_k(dt)}.")
    out: list[str] = []
    for s in sentences:  # say each thing once
        if s and s not in out:
            out.append(s)
    return " ".join(out)
