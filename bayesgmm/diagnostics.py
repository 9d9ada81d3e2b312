"""Checks of a fitted posterior. Functions return data; they never print.

The generic diagnostics (R-hat, ESS, E-BFMI) come from ArviZ; the mixture-specific
ones (modes, distance from the EM estimate, empty components) are here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["mixture_checks", "mixture_warnings"]

#: Chain means further apart than this many within-chain sds: different modes.
MODE_SPLIT_SD = 4.0
#: Posterior median further from the EM estimate than this many posterior sds.
FAR_FROM_EM_SD = 4.0


def _n_obs(dt: Any) -> int:
    return int(dt["observed_data"]["x"].size)


def mixture_checks(dt: Any) -> list[dict[str, Any]]:
    """Mixture-specific checks of a :func:`bayesgmm.fit` result.

    Returns
    -------
    list of dict
        One entry per check: ``name``, ``ok`` (bool), ``message`` (one sentence on
        what it means and what to try), ``value`` (the number checked).
    """
    post = dt["posterior"].to_dataset()
    out = []

    # chains in different modes
    worst, where = 0.0, ""
    if post.sizes["chain"] > 1:
        for var in ("weights", "means", "sigmas"):
            v = post[var].values  # chain, draw, component
            cm = v.mean(axis=1)
            within = np.sqrt(v.var(axis=1, ddof=1).mean(axis=0))
            spread = (cm.max(axis=0) - cm.min(axis=0)) / np.maximum(within, 1e-300)
            j = int(np.argmax(spread))
            if spread[j] > worst:
                worst, where = float(spread[j]), f"{var}[{j}]"
    ok = worst <= MODE_SPLIT_SD
    out.append({
        "name": "chains_agree", "ok": ok, "value": worst,
        "message": "the chains explore the same mode" if ok else
        f"the chains settled in different modes ({where}: chain means "
        f"{worst:.1f} within-chain sds apart), so the posterior summaries mix "
        "incompatible solutions; try fewer components, a longer tune, or inspect each "
        "chain's means against the EM estimate",
    })

    # posterior against the EM estimate
    if "em_estimate" in dt.children:
        em = dt["em_estimate"].to_dataset()
        worst, where = 0.0, ""
        for var in ("weights", "means", "sigmas"):
            v = post[var].values.reshape(-1, post.sizes["component"])
            med = np.median(v, axis=0)
            sd = v.std(axis=0)
            dist = np.abs(med - em[var].values) / np.maximum(sd, 1e-300)
            j = int(np.argmax(dist))
            if dist[j] > worst:
                worst, where = float(dist[j]), f"{var}[{j}]"
        ok = worst <= FAR_FROM_EM_SD
        out.append({
            "name": "near_em", "ok": ok, "value": worst,
            "message": "the posterior is centred near the maximum-likelihood (EM) estimate"
            if ok else
            f"the posterior is far from the maximum-likelihood (EM) estimate ({where}: "
            f"{worst:.1f} posterior sds away): the sampler may be stuck away from the "
            "best solution, or the priors dominate; check the priors, or compare K",
        })

    # near-empty components
    n = _n_obs(dt)
    w = post["weights"].values.reshape(-1, post.sizes["component"]).mean(axis=0)
    floor = max(0.01, 2.0 / n)
    j = int(np.argmin(w))
    ok = bool(w[j] >= floor)
    out.append({
        "name": "no_empty_component", "ok": ok, "value": float(w[j]),
        "message": "every component holds a real share of the data" if ok else
        f"component {j} has almost no weight (posterior mean {w[j]:.3g}, under {floor:.3g}):"
        " the data may support fewer components; try K - 1 and compare the fits by LOO",
    })

    # divergences
    stats = dt["sample_stats"].to_dataset() if "sample_stats" in dt.children else None
    if stats is not None and "diverging" in stats:
        nd = int(stats["diverging"].values.sum())
        out.append({
            "name": "no_divergences", "ok": nd == 0, "value": nd,
            "message": "no divergent transitions" if nd == 0 else
            f"{nd} divergent transition(s): the sampler met geometry it could not follow, "
            "so the posterior may be biased; raise target_accept (e.g. 0.95) or check for "
            "a component with almost no data",
        })
    return out


def mixture_warnings(dt: Any) -> list[str]:
    """Messages of the failed :func:`mixture_checks`."""
    return [c["message"][0].upper() + c["message"][1:] + "."
            for c in mixture_checks(dt) if not c["ok"]]
