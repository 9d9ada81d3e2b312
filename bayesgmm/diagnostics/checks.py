"""diagnose: every check of a fitted posterior in one table, as data (nothing printed).

The checks live with their concept: R-hat, ESS and divergences, the definition of
converged, in ``sampling.py`` (from ArviZ); the mixture checks (modes, distance from the
EM estimate, empty components, labels the ordering alone separates) in ``mixture.py``;
the rank plots' rank-ECDF test in ``rank.py``; the posterior predictive p-values in
``predictive.py``. E-BFMI and tree depth, and the parameter table, are here. The
verdict's sentences are written in ``verdict.py``. :func:`diagnose` gathers all of them
into one :class:`Diagnosis`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._rows import _plain, _row, _skip
from .mixture import (
    FAR_FROM_EM_SD,
    MIN_WEIGHT,
    MODE_SPLIT_SD,
    label_row,
    missed_row,
    mixture_checks,
    mixture_warnings,
    modes_row,
    pivot_row,
    uses_pivot,
)
from .predictive import ppc_rows
from .rank import rank_row
from .sampling import (
    ESS_MIN,
    RHAT_MAX,
    checked_parameters,
    parameters,
    sampling_figures,
    sampling_table,
)

__all__ = ["Diagnosis", "diagnose", "mixture_checks", "mixture_warnings"]

# ---------------------------------------------------------------------- diagnose

@dataclasses.dataclass(frozen=True, eq=False)
class Diagnosis:
    """Everything :func:`diagnose` found, as data.

    Attributes
    ----------
    ok : bool
        True when every check passed (skipped checks count as passed).
    verdict : str
        Plain sentences, each said once: can the numbers be trusted, what to run next
        (the exact command), how much the measurement errors narrowed the widths, and
        which K was chosen and why (with a selection or LOO table).
    checks : pandas.DataFrame
        One row per check, columns ``name``, ``ok``, ``value``, ``threshold``,
        ``message`` (what it means and what to try) and ``skipped``.
    table : pandas.DataFrame
        One row per parameter (index like ``"means[0]"``), data units: ``mean``, ``sd``,
        the credible interval's ends named as ``arviz_stats.summary`` names them
        (``eti89_lb``, ``eti89_ub`` at ArviZ's defaults), ``ess_bulk``, ``ess_tail``,
        ``r_hat`` and ``em`` (the EM estimate). ``table.attrs`` holds ``ci_prob`` and
        ``ci_kind``.
    """

    ok: bool
    verdict: str
    checks: Any
    table: Any

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: plain Python numbers, NaN as None.

        Returns
        -------
        dict
            Keys ``ok``, ``verdict``, ``checks`` (list of dict) and ``table``
            (parameter name -> dict of column -> value).
        """
        return {
            "ok": bool(self.ok),
            "verdict": self.verdict,
            "checks": [{k: _plain(v) for k, v in row.items()}
                       for row in self.checks.to_dict(orient="records")],
            "table": {str(i): {k: _plain(v) for k, v in row.items()}
                      for i, row in self.table.to_dict(orient="index").items()},
        }


def _checked_view(dt: Any, names: list[str]) -> Any:
    """``dt`` with the posterior and EM estimate as the checks read them.

    1-D results: ``dt`` itself. D dims: the correlations' entries below the diagonal
    only (:func:`~bayesgmm.diagnostics.sampling.checked_parameters`); the other groups
    as they are.
    """
    import xarray as xr

    post = dt["posterior"].to_dataset()
    if "correlations" not in names or "feature_" not in post["correlations"].dims:
        return dt
    view = dt.copy()
    view["posterior"] = xr.DataTree(checked_parameters(post, names))
    if "em_estimate" in dt.children:
        em = dt["em_estimate"].to_dataset()
        view["em_estimate"] = xr.DataTree(
            checked_parameters(em, [v for v in names if v in em]))
    return view


def _table(dt: Any, var_names: list[str], ci_prob: float, ci_kind: str):
    import arviz_stats as azs
    import pandas as pd

    s = pd.DataFrame(azs.summary(dt, var_names=var_names, kind="stats", ci_prob=ci_prob,
                                 ci_kind=ci_kind, round_to="none"))
    lb = next(c for c in s.columns if c.endswith("_lb"))
    ub = next(c for c in s.columns if c.endswith("_ub"))
    # the sampling figures: computed once, in .sampling, for the table and the checks
    figures = sampling_table(dt["posterior"].to_dataset(), var_names)
    s = pd.concat([s[["mean", "sd", lb, ub]].astype(float), figures], axis=1)
    s.attrs.update({"ci_prob": ci_prob, "ci_kind": ci_kind})
    em_col = np.full(len(s), np.nan)
    if "em_estimate" in dt.children:
        em = dt["em_estimate"].to_dataset()
        for var in var_names:
            rows = [i for i, name in enumerate(s.index)
                    if name == var or str(name).startswith(var + "[")]
            if var in em and em[var].size == len(rows):
                em_col[rows] = em[var].values.ravel()
    s["em"] = em_col
    return s


def _convergence_rows(table, rhat_max: float, ess_min: float) -> list[dict[str, Any]]:
    """The R-hat and ESS checks of :mod:`.sampling`, worded for :class:`Diagnosis`."""
    fig = sampling_figures(None, table=table)
    rows = []
    if np.isnan(fig.max_rhat):
        rows.append(_skip("r_hat", rhat_max, "R-hat is undefined for these draws"))
    else:
        ok = "max_rhat" not in fig.failed(rhat_max=rhat_max, ess_min=ess_min)
        rows.append(_row(
            "r_hat", ok, fig.max_rhat, rhat_max,
            "the chains agree in location and spread (max rank-normalized R-hat "
            f"{fig.max_rhat:.3f})" if ok else
            f"the chains disagree (R-hat of {fig.worst_rhat} is {fig.max_rhat:.3f}, above "
            f"{rhat_max}), so the posterior is not yet explored; run longer (more tune and "
            "draws) with at least 4 chains, and if chains_agree also fails, fit fewer "
            "components"))
    for col, value, where, what in (
            ("ess_bulk", fig.min_ess_bulk, fig.worst_ess_bulk, "the centre (means, sds)"),
            ("ess_tail", fig.min_ess_tail, fig.worst_ess_tail, "the interval ends")):
        if np.isnan(value):
            rows.append(_skip(col, ess_min, "ESS is undefined for these draws"))
            continue
        ok = f"min_{col}" not in fig.failed(rhat_max=rhat_max, ess_min=ess_min)
        rows.append(_row(
            col, ok, value, ess_min,
            f"enough effective draws for {what} (min {col} {value:.0f})" if ok else
            f"too few effective draws for {what} ({col} of {where} is {value:.0f}, "
            f"under {ess_min:g}), so those numbers are noisy; raise draws or the number "
            "of chains"))
    return rows


def _sampler_rows(dt: Any, depth_frac_max: float, ebfmi_min: float) -> list[dict[str, Any]]:
    rows = []
    stats = dt["sample_stats"].to_dataset() if "sample_stats" in dt.children else None
    flag = None
    if stats is not None:
        flag = next((v for v in ("maxdepth_reached", "reached_max_treedepth") if v in stats),
                    None)
    if flag is None:
        rows.append(_skip("tree_depth", depth_frac_max,
                          "no tree-depth statistics in sample_stats"))
    else:
        frac = float(np.asarray(stats[flag].values, dtype=float).mean())
        ok = frac < depth_frac_max
        rows.append(_row(
            "tree_depth", ok, frac, depth_frac_max,
            "the sampler rarely hit its maximum tree depth" if ok else
            f"the sampler hit its maximum tree depth in {100 * frac:.1f}% of draws, so it "
            "moves slowly through a badly scaled or ridge-shaped posterior; run a longer "
            "tune, and if it persists fit fewer components"))
    if stats is None or "energy" not in stats:
        rows.append(_skip("e_bfmi", ebfmi_min, "no energy in sample_stats, so E-BFMI "
                          "cannot be computed"))
    else:
        import arviz_stats as azs

        b = np.asarray(azs.bfmi(dt)["energy"].values, dtype=float).ravel()
        j = int(np.nanargmin(b))
        ok = b[j] >= ebfmi_min
        rows.append(_row(
            "e_bfmi", ok, b[j], ebfmi_min,
            f"the momentum resampling explores the energy well (min E-BFMI {b[j]:.2f})"
            if ok else
            f"chain {j} has E-BFMI {b[j]:.2f}, under {ebfmi_min}, so the sampler explores "
            "the posterior's tails poorly; run a longer tune, and check the priors on "
            "the sigmas"))
    return rows


def diagnose(
    dt: Any,
    *,
    rhat_max: float = RHAT_MAX,
    ess_min: float = ESS_MIN,
    ebfmi_min: float = 0.3,
    depth_frac_max: float = 0.01,
    label_gap_sd: float = 0.1,
    label_overlap_max: float = 0.05,
    relabel_margin: float = 1.0,
    relabel_far_prob: float = 0.99,
    ppc_alpha: float = 0.01,
    tail_prob: float = 0.025,
    mode_split_sd: float = MODE_SPLIT_SD,
    far_from_em_sd: float = FAR_FROM_EM_SD,
    min_weight: float = MIN_WEIGHT,
    ci_prob: float | None = None,
    ci_kind: str | None = None,
    rank_alpha: float | None = None,
    var_names: tuple[str, ...] | None = None,
    selection: Any = None,
    loo_table: Any = None,
) -> Diagnosis:
    """Check whether a :func:`bayesgmm.fit` posterior can be trusted, and summarise it.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result. Only ``posterior`` is required; checks whose
        group is missing are reported as skipped (``ok=True``).
    rhat_max : float, default=1.01
        Largest acceptable rank-normalized R-hat (``arviz_stats.rhat``;
        :data:`bayesgmm.diagnostics.sampling.RHAT_MAX`, the definition of converged
        that ``fit``'s rerun rule also uses).
    ess_min : float, default=400
        Smallest acceptable bulk and tail effective sample size (``arviz_stats.ess``;
        :data:`bayesgmm.diagnostics.sampling.ESS_MIN`).
    ebfmi_min : float, default=0.3
        Smallest acceptable E-BFMI of any chain (``arviz_stats.bfmi``).
    depth_frac_max : float, default=0.01
        Fails when this fraction of draws or more hit the maximum tree depth.
    label_gap_sd : float, default=0.1
        Neighbouring means closer than this many pooled sigmas count as coincident.
    label_overlap_max : float, default=0.05
        Largest acceptable fraction of draws with coincident neighbours (1-D), or of
        draws the EM pivot does not label (``pivot_identified``).
    relabel_margin : float, default=1.0
        ``pivot_identified``: a draw whose best two labellings differ by less than this
        (summed squared Mahalanobis distance to the EM estimate) is ambiguous.
    relabel_far_prob : float, default=0.99
        ``pivot_identified``: a draw with a component outside this chi-square(D)
        ellipsoid of its EM component is far from every labelling.
    ppc_alpha : float, default=0.01
        Posterior predictive p-values under ``ppc_alpha`` or over ``1 - ppc_alpha``
        fail (statistics: sd, skewness, fraction in the tails).
    tail_prob : float, default=0.025
        The tails are beyond the observed ``tail_prob`` and ``1 - tail_prob`` quantiles.
    mode_split_sd, far_from_em_sd, min_weight : float
        Passed to :func:`mixture_checks`.
    ci_prob : float, optional
        Probability of the credible interval in ``table`` (default: ArviZ's
        ``stats.ci_prob``, 0.89, as in ``arviz_stats.summary`` and the report's figures).
    ci_kind : {"eti", "hdi"}, optional
        Kind of that interval (default: ArviZ's ``stats.ci_kind``, equal-tailed).
    rank_alpha : float, optional
        Level of the rank plot's multi-chain uniformity test per panel (default:
        ``1 - stats.envelope_prob``, 0.01, as ``arviz_plots.plot_rank`` prints it);
        ``rank_ecdf`` fails under ``rank_alpha`` / number of panels.
    var_names : tuple of str, optional
        Posterior variables in ``table`` and in the R-hat, ESS and rank checks.
        Default: ``("weights", "means", "sigmas")``; in D dims ``("weights", "means",
        "sds", "correlations")``, the correlations by their entries below the diagonal
        (``correlations[k, "a,b"]``: the diagonal is 1 in every draw, whose R-hat is
        undefined, and the upper triangle repeats the lower;
        :func:`bayesgmm.diagnostics.sampling.checked_parameters`).
    selection : pandas.DataFrame or SelectionResult, optional
        :func:`bayesgmm.select_n_components` output; with ``loo_table``, the verdict
        says which K was chosen and why. Default: the table ``bayesgmm fit`` stored in
        ``dt.attrs`` (none for a :func:`bayesgmm.fit` result).
    loo_table : pandas.DataFrame, optional
        ``arviz_stats.compare`` of the candidates (index ``"K=2"``, ...). Default: the
        one stored in ``dt.attrs`` by ``bayesgmm fit --k auto``.

    Returns
    -------
    Diagnosis
        ``ok``, ``verdict``, ``checks`` (one row per check) and ``table``.

    Notes
    -----
    ``labels_identified``: the means are ordered in every draw, so labels cannot swap;
    the check fails when, for some neighbours k and k + 1, more than
    ``label_overlap_max`` of the draws have ``means[k+1] - means[k]`` under
    ``label_gap_sd`` times their pooled sigma, i.e. only the ordering separates them.
    ``pivot_identified`` (only for a relabelled posterior, or means with a ``feature``
    dim, so 1-D tables are unchanged): the fraction of draws that are ambiguous, far
    (:func:`bayesgmm.posterior.relabel.identify`) or not in the EM estimate's labelling
    (not relabelled), at most ``label_overlap_max``.
    ``modes_mixed`` (only for a result with ``attrs["modes"]``, which ``fit`` writes,
    1-D and D dims): the draws climbed to their local maxima of the posterior name its
    modes; the check fails when the split R-hat of some mode's indicator exceeds 1.01
    (a chain switched mode part-way, or sits in a mode the others never visit), so the
    modes' weights are not yet known. Its value is that R-hat (1 for one mode); the
    verdict gives the modes' weights.
    ``modes_reached`` (only for a 1-D fit from the EM estimate, K >= 2, which searches
    for them): climbs from random EM maxima to modes no chain reached, each weighed by
    Laplace's approximation; fails when such modes, in their share of the posterior,
    would make some parameter's sd more than ``MISSED_SD_MAX`` (10%) larger. Its value
    is that relative increase.
    ``rank_ecdf``: on the draws thinned to about independent ones (as the rank plot
    draws them), whether some chain's fractional-rank ECDF leaves the simultaneous
    envelope widened for the number of panels (probability ``1 - rank_alpha / panels``);
    with 3 or more chains also ArviZ's multi-chain uniformity p under that limit. Its
    value is the number of panels failed (or, when none, flagged at ``rank_alpha``).
    ``ppc_*``: p = P(T(replicate) > T(observed)) over the posterior predictive draws,
    for T = sd, skewness and the fraction of points beyond the observed ``tail_prob``
    and ``1 - tail_prob`` quantiles.
    """
    import pandas as pd
    from arviz_base import rcParams

    from .._stored import stored_tables
    from ..validation import check_ci_kind, check_ci_prob
    from .verdict import verdict

    if var_names is None:
        var_names = parameters(dt["posterior"])
    names = [v for v in var_names if v in dt["posterior"]]
    view = _checked_view(dt, names)
    table = _table(view, names, check_ci_prob(ci_prob), check_ci_kind(ci_kind))
    if rank_alpha is None:
        rank_alpha = 1 - float(rcParams["stats.envelope_prob"])
    mixture = {c["name"]: c for c in mixture_checks(
        dt, mode_split_sd=mode_split_sd, far_from_em_sd=far_from_em_sd, min_weight=min_weight)}

    def from_mixture(name: str, threshold: float, why: str) -> dict[str, Any]:
        if name not in mixture:
            return _skip(name, threshold, why)
        c = mixture[name]
        return _row(name, c["ok"], c["value"], c["threshold"], c["message"])

    rows = _convergence_rows(table, rhat_max, ess_min)
    rows.append(rank_row(view, names, rank_alpha))
    rows.append(from_mixture("no_divergences", 0, "no divergence flags in sample_stats"))
    rows += _sampler_rows(dt, depth_frac_max, ebfmi_min)
    rows.append(from_mixture("chains_agree", mode_split_sd, ""))
    if "modes" in dt.attrs:  # fits (bayes/modes.py); other trees keep their table
        rows.append(modes_row(dt))
        if '"missed"' in dt.attrs["modes"]:  # 1-D fits from the EM estimate
            rows.append(missed_row(dt))
    rows.append(from_mixture("near_em", far_from_em_sd, "no em_estimate group"))
    rows.append(from_mixture("no_empty_component", min_weight, ""))
    rows.append(label_row(dt, label_gap_sd, label_overlap_max))
    if uses_pivot(dt):
        rows.append(pivot_row(dt, label_overlap_max, relabel_margin, relabel_far_prob))
    rows += ppc_rows(dt, ppc_alpha, tail_prob)
    checks = pd.DataFrame(rows, columns=["name", "ok", "value", "threshold", "message",
                                         "skipped"])
    ok = bool(checks["ok"].all())
    stored_sel, stored_loo = stored_tables(dt)
    selection = stored_sel if selection is None else selection
    loo = stored_loo if loo_table is None else loo_table
    return Diagnosis(ok=ok, verdict=verdict(checks, dt, selection, loo), checks=checks,
                     table=table)

