"""What to try when a check fails.

One :class:`~bayesgmm.FailedCheckWarning` per check :func:`~bayesgmm.diagnose` fails on a
fit, with the figure, the threshold and the keyword to change.
"""


from __future__ import annotations

import json
from typing import Any

import numpy as np


def _failed_check_warnings(dt: Any) -> list[Any]:
    """One :class:`FailedCheckWarning` per check that :func:`diagnose` fails on ``dt``.

    ``diagnose`` is the one definition of a trustworthy posterior (its default
    thresholds: R-hat, bulk and tail ESS, divergences, E-BFMI, tree depth, the mixture
    and predictive checks), so ``fit`` warns exactly when ``diagnose(dt).ok`` is False.
    Each message gives the figure, the threshold and what to try, with the keyword.
    """
    from ..errors import FailedCheckWarning
    from .checks import diagnose

    diagnosis = diagnose(dt)
    if diagnosis.ok:
        return []
    post = dt["posterior"]
    K = int(post.sizes["component"])
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    runs = json.loads(dt.attrs.get("sampling_runs", "[]"))
    kept = runs[-1] if runs else {}
    # the kept run's tune: advice doubles what was last tried (the verdict's command
    # starts from the same figure, verdict._run_settings)
    tune = int(kept.get("tune", 1000))
    accept = float(kept.get("target_accept", 0.8))
    rerun = (f" (after fit's second run, tune={tune}, target_accept={accept:g})"
             if len(runs) > 1 else "")
    if len(runs) > 2 and kept.get("sampler") == "smc":  # the rerun rule's last step
        rerun = " (SMC's draws, after both NUTS runs failed R-hat)"
    fewer = (f"; or fit fewer components (n_components={K - 1}) and compare the fits by "
             "LOO" if K > 1 else "")
    more_chains = ", chains=4" if chains < 4 else ""
    out = []
    for row in diagnosis.checks[~diagnosis.checks["ok"]].to_dict(orient="records"):
        name, v, t = str(row["name"]), float(row["value"]), float(row["threshold"])
        if name == "r_hat":
            text = (f"R-hat check failed: max rank-normalized R-hat {v:.3f} > {t:g}{rerun}: "
                    "the chains disagree, so the posterior is not yet explored. Try "
                    f"tune={2 * tune}, draws={2 * draws}{more_chains}{fewer}")
        elif name in ("ess_bulk", "ess_tail"):
            kind = "bulk" if name == "ess_bulk" else "tail"
            # ESS grows about in proportion to the draws; the same rule as the verdict's
            # command (verdict._more_draws), and past its cap more draws are not the cure
            from ..diagnostics.verdict import _more_draws

            need = int(np.ceil(draws * 1.2 * t / max(v, 1.0) / 100.0) * 100)
            suggest = _more_draws(draws, v, t)
            far = need > suggest
            text = (f"{kind} ESS check failed: min {kind} ESS {v:.0f} < {t:g}{rerun}: too "
                    f"few effective draws for the {'centre' if kind == 'bulk' else 'tails'} "
                    f"of the posterior. Try draws={suggest}"
                    f"{more_chains}"
                    + (f" (about {need} would be needed at this efficiency: the chains "
                       "mix slowly, so check R-hat and the number of components)"
                       if far else "") + fewer)
        elif name == "no_divergences":
            text = (f"divergences check failed: {v:.0f} divergent transition(s) > {t:g}"
                    f"{rerun}: the sampler met geometry it could not follow, so the "
                    "posterior may be biased. Try "
                    + (f"target_accept=0.99, tune={2 * tune}{fewer}" if accept < 0.99 else
                       f"fewer components (n_components={K - 1}) and compare the fits by "
                       "LOO" if K > 1 else f"a longer tune, tune={2 * tune}"))
        elif name == "e_bfmi":
            text = (f"E-BFMI check failed: min E-BFMI {v:.2f} < {t:g}{rerun}: the sampler "
                    f"explores the posterior's tails poorly. Try tune={2 * tune}, and check "
                    "the priors on the sigmas")
        elif name == "tree_depth":
            text = (f"tree-depth check failed: {100 * v:.1f}% of draws hit the maximum tree "
                    f"depth (limit {100 * t:g}%){rerun}. Try tune={2 * tune}{fewer}")
        else:  # the mixture, label, predictive and any later checks: diagnose's words
            message = str(row["message"])
            text = (f"{name} check failed (value {v:.3g}, threshold {t:.3g}): "
                    f"{message[:1].upper()}{message[1:]}")
        out.append(FailedCheckWarning(text + ".", check=name, value=v, threshold=t))
    return out
