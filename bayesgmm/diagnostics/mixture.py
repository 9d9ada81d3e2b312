"""Mixture-specific checks of a posterior: modes, distance from EM, empty components.

Labels: :func:`label_row` checks the 1-D ordering; :func:`pivot_row` the labels a
relabelled (or D-dim) posterior gets from the EM estimate (``posterior/relabel.py``).

Cheap enough to run after every fit (:func:`bayesgmm.fit` turns the failed ones into
``SamplingWarning``s); :func:`bayesgmm.diagnostics.diagnose` adds them to its table.
Public through :mod:`bayesgmm.diagnostics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._rows import _row, _skip
from .sampling import divergences, parameters

#: Chain means further apart than this many within-chain sds: different modes.
MODE_SPLIT_SD = 4.0
#: Posterior median further from the EM estimate than this many posterior sds.
FAR_FROM_EM_SD = 4.0
#: A component whose posterior mean weight is under max(MIN_WEIGHT, 2 / n) is near-empty.
MIN_WEIGHT = 0.01
#: Largest split R-hat of the mode indicators (``bayes/modes.py``): the chains agree on
#: how much of the posterior each mode holds. R-hat's usual limit (1.01,
#: ``sampling.RHAT_MAX``), applied to each mode's indicator as to any quantity.
MODE_RHAT_MAX = 1.01
#: ``modes_reached`` fails when a mode no chain reached would make some parameter's
#: posterior sd this much larger (relative), had the draws held it in its share
MISSED_SD_MAX = 0.1


def _n_obs(dt: Any) -> int | None:
    from ..errors import DataError
    from ..posterior.summaries import data_name

    try:
        name = data_name(dt)
    except DataError:  # no observed_data group
        return None
    return int(dt["observed_data"][name].size)


def _worst(post, score) -> tuple[float, str]:
    """Largest per-entry score over the checked parameters, and where it is.

    The parameters of :func:`~bayesgmm.diagnostics.sampling.parameters` (1-D: weights,
    means, sigmas; D dims: weights, means, sds and the correlations below the
    diagonal), each flattened to (chain, draw, entries); ``score(var, values)`` returns
    one number per entry.
    """
    from .sampling import checked_parameters

    checked = checked_parameters(post)
    worst, where = 0.0, ""
    for var in checked.data_vars:
        da = checked[var].transpose("chain", "draw", ...)
        values = score(var, da.values.reshape(da.shape[0], da.shape[1], -1))
        j = int(np.argmax(values))
        if values[j] > worst:
            worst, where = float(values[j]), _entry(da, j)
    return worst, where


def _entry(da: Any, j: int) -> str:
    """``"means[0]"`` (1-D) or ``"means[1, b]"``: entry j of a (chain, draw, ...) array."""
    rest = da.dims[2:]
    idx = np.unravel_index(j, da.shape[2:])
    if len(rest) == 1 and rest[0] == "component":
        return f"{da.name}[{int(idx[0])}]"
    labels = [str(da[d].values[i]) if d in da.coords else str(int(i))
              for d, i in zip(rest, idx, strict=True)]
    return f"{da.name}[{', '.join(labels)}]"


def mixture_checks(
    dt: Any,
    *,
    mode_split_sd: float = MODE_SPLIT_SD,
    far_from_em_sd: float = FAR_FROM_EM_SD,
    min_weight: float = MIN_WEIGHT,
) -> list[dict[str, Any]]:
    """Mixture-specific checks of a :func:`bayesgmm.fit` result.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    mode_split_sd : float, default=4.0
        Chains whose means differ by more than this many within-chain sds are in
        different modes.
    far_from_em_sd : float, default=4.0
        A posterior median more than this many posterior sds from the EM estimate is far.
    min_weight : float, default=0.01
        A component with posterior mean weight under ``max(min_weight, 2 / n)`` is
        near-empty.

    Returns
    -------
    list of dict
        One entry per check: ``name``, ``ok`` (bool), ``message`` (one sentence on
        what it means and what to try), ``value`` (the number checked) and
        ``threshold`` (the limit it was checked against).
    """
    post = dt["posterior"].to_dataset()
    out = []

    # chains in different modes
    worst, where = 0.0, ""
    if post.sizes["chain"] > 1:
        def spread(var, v):  # v: chain, draw, entries
            cm = v.mean(axis=1)
            within = np.sqrt(v.var(axis=1, ddof=1).mean(axis=0))
            return (cm.max(axis=0) - cm.min(axis=0)) / np.maximum(within, 1e-300)

        worst, where = _worst(post, spread)
    ok = worst <= mode_split_sd
    out.append({
        "name": "chains_agree", "ok": ok, "value": worst, "threshold": mode_split_sd,
        "message": "the chains explore the same mode" if ok else
        f"the chains settled in different modes ({where}: chain means "
        f"{worst:.1f} within-chain sds apart), so the posterior summaries mix "
        "incompatible solutions; try fewer components, a longer tune, or inspect each "
        "chain's means against the EM estimate",
    })

    # posterior against the EM estimate
    if "em_estimate" in dt.children:
        from .sampling import checked_parameters

        em = checked_parameters(dt["em_estimate"].to_dataset(), parameters(post))

        def distance(var, v):
            v = v.reshape(-1, v.shape[-1])
            sd = np.maximum(v.std(axis=0), 1e-300)
            return np.abs(np.median(v, axis=0) - em[var].values.ravel()) / sd

        worst, where = _worst(post, distance)
        ok = worst <= far_from_em_sd
        out.append({
            "name": "near_em", "ok": ok, "value": worst, "threshold": far_from_em_sd,
            "message": "the posterior is centred near the maximum-likelihood (EM) estimate"
            if ok else
            f"the posterior is far from the maximum-likelihood (EM) estimate ({where}: "
            f"{worst:.1f} posterior sds away): the sampler may be stuck away from the "
            "best solution, or the priors dominate; check the priors, or compare K",
        })

    # near-empty components
    n = _n_obs(dt)
    w = post["weights"].values.reshape(-1, post.sizes["component"]).mean(axis=0)
    floor = max(min_weight, 2.0 / n) if n else min_weight
    j = int(np.argmin(w))
    ok = bool(w[j] >= floor)
    out.append({
        "name": "no_empty_component", "ok": ok, "value": float(w[j]), "threshold": floor,
        "message": "every component holds a real share of the data" if ok else
        f"component {j} has almost no weight (posterior mean {w[j]:.3g}, under {floor:.3g}):"
        " the data may support fewer components; try K - 1 and compare the fits by LOO",
    })

    # divergences
    stats = dt["sample_stats"].to_dataset() if "sample_stats" in dt.children else None
    nd = divergences(stats)
    if nd is not None:
        out.append({
            "name": "no_divergences", "ok": nd == 0, "value": nd, "threshold": 0,
            "message": "no divergent transitions" if nd == 0 else
            f"{nd} divergent transition(s): the sampler met geometry it could not follow, "
            "so the posterior may be biased; "
            + ("even at target_accept 0.99: fit fewer components or check for a component "
               "with almost no data" if float(dt.attrs.get("target_accept", 0.8)) >= 0.99
               else "raise target_accept (e.g. 0.99) or check for a component with "
               "almost no data"),
        })
    return out


def mixture_warnings(dt: Any) -> list[str]:
    """Messages of the failed :func:`mixture_checks`.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.

    Returns
    -------
    list of str
        One capitalised sentence per failed check.
    """
    return [c["message"][0].upper() + c["message"][1:] + "."
            for c in mixture_checks(dt) if not c["ok"]]


def label_row(dt: Any, gap_sd: float, max_frac: float) -> dict[str, Any]:
    """Fraction of draws where neighbouring means are closer than gap_sd pooled sigmas.

    The means are ordered in every draw, so labels cannot swap; but when two neighbours
    often lie within a small fraction of their widths of each other, the ordering is
    what separates them and their marginals pile up against each other: the labels
    (and the per-component numbers) are not identified by the data.
    """
    post = dt["posterior"].to_dataset()
    K = post.sizes["component"]
    if K < 2:
        return _skip("labels_identified", max_frac, "one component has no labels to switch")
    if "feature" in post["means"].dims:
        return _skip("labels_identified", max_frac,
                     "means in D dims have no ordering; see pivot_identified")
    mu = post["means"].values.reshape(-1, K)
    sg = post["sigmas"].values.reshape(-1, K)
    gap = np.abs(np.diff(mu, axis=1))
    pooled = np.sqrt(0.5 * (sg[:, 1:] ** 2 + sg[:, :-1] ** 2))
    frac = (gap < gap_sd * pooled).mean(axis=0)
    j = int(np.argmax(frac))
    ok = frac[j] <= max_frac
    return _row(
        "labels_identified", ok, frac[j], max_frac,
        "neighbouring components stay apart, so the ordering identifies the labels" if ok
        else f"components {j} and {j + 1} are within {gap_sd:g} of their width of each "
        f"other in {100 * frac[j]:.0f}% of draws, so only the ordering tells them apart "
        "and their separate numbers are not meaningful; fit K - 1 components and compare "
        "by LOO")


def uses_pivot(dt: Any) -> bool:
    """Whether ``dt``'s labels come from a pivot: relabelled, or means in D dims.

    1-D results without relabelling (ordered means) are checked by :func:`label_row`
    alone, so their checks table is what it always was.
    """
    post = dt["posterior"]
    return "relabel_pivot" in post.attrs or "feature" in post["means"].dims


def pivot_row(dt: Any, max_frac: float, margin: float, far_prob: float) -> dict[str, Any]:
    """Fraction of draws the EM pivot does not label (``pivot_identified``).

    A draw counts when its components are ambiguous between two labellings, far from
    every labelling of the pivot (:func:`bayesgmm.posterior.relabel.identify`), or
    not in the pivot's labelling at all (the posterior was not relabelled, so its
    per-component summaries would average across components).
    """
    from ..errors import DataError
    from ..posterior.relabel import identify_posterior

    name = "pivot_identified"
    post = dt["posterior"].to_dataset()
    K = post.sizes["component"]
    if K < 2:
        return _skip(name, max_frac, "one component has no labels to switch")
    if "em_estimate" not in dt.children:
        return _skip(name, max_frac, "no em_estimate group to identify the labels by")
    try:
        ident = identify_posterior(dt, margin=margin, far_prob=far_prob)
    except DataError as err:
        return _skip(name, max_frac, str(err))
    n = ident.distances.size
    unclear = ident.ambiguous | ident.far
    # labelled differently from the pivot although the pivot labels them clearly
    switched = np.any(ident.permutations != np.arange(K), axis=-1) & ~unclear
    frac = float(np.mean(unclear | switched))
    ok = frac <= max_frac
    moved = post.attrs.get("relabel_permuted")
    note = (f" ({moved} of {n} draws were relabelled to it)" if moved is not None else "")
    if ok:
        message = ("every draw's components match the EM estimate's under one labelling"
                   f"{note}, so the per-component numbers are identified")
    elif switched.mean() > max_frac:
        message = (f"{100 * switched.mean():.0f}% of draws label the components "
                   "differently from the EM estimate and were not relabelled, so the "
                   "per-component summaries average across components; relabel the "
                   "draws (bayesgmm.posterior.relabel.relabel) before reading them")
    elif ident.ambiguous.mean() >= ident.far.mean():
        message = (f"in {100 * ident.ambiguous.mean():.0f}% of draws two components are "
                   "interchangeable (their best two labellings differ by under "
                   f"{margin:g} in squared Mahalanobis distance), so their separate "
                   "numbers are not meaningful; fit K - 1 components and compare by LOO")
    else:
        message = (f"{100 * ident.far.mean():.0f}% of draws have a component whose mean "
                   f"lies outside the {100 * far_prob:g}% ellipsoid of the EM component it "
                   "matches best, so the posterior has modes the EM estimate does not "
                   "describe and the labels there are arbitrary; inspect those draws, or "
                   "compare K by LOO")
    return _row(name, ok, frac, max_frac, message)


def modes_row(dt: Any, rhat_max: float = MODE_RHAT_MAX) -> dict[str, Any]:
    """``modes_mixed``: the modes a fit's draws are in, and whether chains agree on them.

    Reads ``attrs["modes"]``, which :func:`bayesgmm.fit` writes (1-D and D dims)
    (``bayes/modes.py``: draws climbed to their local maximum, end points grouped). The
    check fails when some mode's indicator has a split R-hat above ``rhat_max``: a
    chain switched to another mode part-way, or stayed in a mode the others never
    visit, so the modes' weights (and every summary) depend on which chain did what.
    """
    import json

    raw = dt.attrs.get("modes")
    if raw is None:
        return _skip("modes_mixed", rhat_max, "no mode search (results of fit have one)")
    modes = json.loads(raw)
    n_modes = int(modes["n_modes"])
    weights = ", ".join(f"{w:.3g}" for w in modes["weights"])
    rhat = modes["rhat"]
    value = 1.0 if rhat is None else float(rhat)
    ok = n_modes == 1 or value <= rhat_max
    if n_modes == 1:
        message = (f"the draws are in one mode ({modes['n_climbs']} of them climbed to "
                   "their local maximum)")
    elif ok:
        message = (f"the draws are in {n_modes} modes (weights {weights}) and the chains "
                   f"agree on their weights (R-hat of mode membership {value:.3f})")
    else:
        per_chain = "; ".join(", ".join(f"{f:.2f}" for f in row)
                              for row in modes["chain_fractions"])
        message = (f"the chains disagree on the posterior's modes: {n_modes} modes (weights "
                   f"{weights}; per chain {per_chain}), R-hat of mode membership "
                   f"{value:.3g} > {rhat_max:g}: a chain switched mode part-way or stayed "
                   "where the others never went, so the modes' weights, and the summaries, "
                   "are unreliable; refit with sampler='smc' (tempered SMC finds the modes "
                   "and importance sampling weights them)")
    return _row("modes_mixed", ok, value, rhat_max, message)


def missed_row(dt: Any, sd_max: float = MISSED_SD_MAX) -> dict[str, Any]:
    """``modes_reached``: whether a mode no chain reached matters to the summaries.

    Reads ``attrs["modes"]["missed"]``, which a 1-D fit from the EM estimate writes
    (``bayes/modes.py``: climbs from random EM maxima to modes the draws are not in,
    each one's share of the posterior by Laplace's approximation). With the missed
    modes in their shares s_m at their parameters theta_m, a parameter's variance would
    be (1 - S) var + sum_m s_m (1 - s_m) (theta_m - mean)^2 (S = sum s_m); the check
    fails when that makes some parameter's sd more than ``sd_max`` larger. Its value is
    the largest relative increase.
    """
    import json

    raw = dt.attrs.get("modes")
    modes = None if raw is None else json.loads(raw)
    if modes is None or "missed" not in modes:
        return _skip("modes_reached", sd_max, "no search for modes the chains did not reach")
    missed = modes["missed"]
    if not missed:
        return _row("modes_reached", True, 0.0, sd_max,
                    "climbs from random EM maxima found no mode the chains did not reach")
    post = dt["posterior"]
    S = sum(m["share"] for m in missed)
    worst, where = 0.0, ""
    for name in ("weights", "means", "sigmas"):
        draws = post[name].values.reshape(-1, post[name].shape[-1])
        mean, var = draws.mean(axis=0), draws.var(axis=0)
        extra = sum(m["share"] * (1 - m["share"]) * (np.asarray(m[name]) - mean) ** 2
                    for m in missed)
        with np.errstate(divide="ignore", invalid="ignore"):
            grow = np.sqrt(((1 - S) * var + extra) / var) - 1.0
        grow = np.where(np.isfinite(grow), grow, 0.0)
        k = int(np.argmax(grow))
        if grow[k] > worst:
            worst, where = float(grow[k]), f"{name}[{k}]"
    top = max(missed, key=lambda m: m["share"])
    at = (f"weights {', '.join(f'{v:.3g}' for v in top['weights'])}; means "
          f"{', '.join(f'{v:.4g}' for v in top['means'])}; sigmas "
          f"{', '.join(f'{v:.4g}' for v in top['sigmas'])}")
    head = (f"{len(missed)} mode(s) no chain reached hold about {S:.2g} of the posterior "
            f"(Laplace approximation; the largest at {at})")
    ok = worst <= sd_max
    if ok:
        return _row("modes_reached", True, worst, sd_max,
                    f"{head}: in their share they would change no parameter's sd by more "
                    f"than {worst:.0%}")
    return _row("modes_reached", False, worst, sd_max,
                f"{head}: in their share they would make the sd of {where} {worst:.0%} "
                "larger, so the draws' summaries leave out part of the posterior; refit "
                "with sampler='smc' (tempered SMC from the prior finds the modes and "
                "importance sampling weights them)")

