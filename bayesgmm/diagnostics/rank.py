"""The rank plots' numbers: thinned fractional ranks, their ECDFs and the envelope.

Shared by :func:`bayesgmm.plots.plot_trace` (which draws them) and
:func:`bayesgmm.diagnostics.diagnose` (whose ``rank_ecdf`` check reads them), so the
figure and the verdict cannot disagree.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._rows import _row, _skip

PARAMETERS = ["weights", "means", "sigmas"]
_MAX_SIMULATED = 1000


def thinned(dt: Any, var_names: list[str] = PARAMETERS) -> Any:
    """The posterior's variables thinned to about independent draws (``arviz_stats.thin``)."""
    import arviz_stats as azs

    post = dt["posterior"].to_dataset()[var_names]
    return azs.thin(post)


def envelope(n: int, chains: int, prob: float) -> dict[str, np.ndarray]:
    """Simultaneous band of ``chains`` rank-ECDF differences of ``n`` draws each.

    All C curves stay inside at every rank with probability about ``prob`` when the
    chains sample the same distribution: the simultaneous band of one ECDF of ``n``
    independent uniforms at probability ``prob ** (1 / C)`` (Säilynoja et al. 2022's
    simulation method, as ``arviz_stats.ecdf_utils.ecdf_pit`` computes it, vectorised
    and cached here). Slightly conservative: ranks within the pooled draws vary a
    little less than independent uniforms.
    """
    x, lo, hi = _band(int(n), round(float(prob) ** (1 / int(chains)), 12))
    return {"x": x, "lower": lo - x, "upper": hi - x}


def _band(n: int, prob: float) -> tuple[np.ndarray, ...]:
    from scipy.special import bdtrik

    x = np.arange(1, n) / n
    # the pointwise probability changes slowly with n: simulated at most at 1,000 draws
    gamma = np.quantile(_gammas(min(n, _MAX_SIMULATED)), prob)
    lo = np.ceil(bdtrik((1 - gamma) / 2, n, x)) / n
    hi = np.ceil(bdtrik(1 - (1 - gamma) / 2, n, x)) / n
    return (np.concatenate(([0.0], x, [1.0])), np.concatenate(([0.0], lo, [1.0])),
            np.concatenate(([0.0], hi, [1.0])))


@functools.lru_cache(maxsize=16)
def _gammas(n: int, n_simulations: int = 1000) -> np.ndarray:
    """1 - 2 x the smallest pointwise tail probability of simulated uniform ECDFs.

    One value per simulated sample of size n; the band's pointwise probability is a
    quantile of these.
    """
    from scipy.special import bdtr

    rng = np.random.default_rng(214)
    x = np.arange(1, n) / n
    table = bdtr(np.arange(n + 1)[:, None], n, x[None, :])  # P(count <= k) at each x
    cells = np.minimum((rng.random((n_simulations, n)) * n).astype(int), n - 1)
    flat = (cells + n * np.arange(n_simulations)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_simulations * n).reshape(n_simulations, n)
    ecdf = counts.cumsum(axis=1)[:, :-1]  # draws under j / n, j = 1 .. n - 1
    cols = np.arange(n - 1)[None, :]
    lower_tail = table[ecdf, cols].min(axis=1)
    upper_tail = np.where(ecdf > 0, 1 - table[np.maximum(ecdf - 1, 0), cols], 1.0).min(axis=1)
    return 1 - 2 * np.minimum(lower_tail, upper_tail)


def ecdf_differences(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(C, len(x)): each chain's ECDF of its fractional ranks among all draws, minus x."""
    C, n = values.shape
    ranks = (values.ravel().argsort(kind="stable").argsort(kind="stable") + 0.5) / (C * n)
    ranks = np.sort(ranks.reshape(C, n), axis=1)
    return np.stack([np.searchsorted(r, x, side="right") / n for r in ranks]) - x


def outside(values: np.ndarray, band: dict[str, np.ndarray]) -> bool:
    """Whether some chain's rank-ECDF difference leaves ``band`` (values: chain, draw)."""
    d = ecdf_differences(values, band["x"])
    tol = 1e-12
    return bool(np.any((d < band["lower"] - tol) | (d > band["upper"] + tol)))


def panels(post: Any) -> list[tuple[str, np.ndarray]]:
    """(label, (chain, draw) values) for each variable and component whose draws vary."""
    out = []
    for var in post.data_vars:
        v = np.asarray(post[var].values, dtype=float)
        flat = v.reshape(v.shape[0], v.shape[1], -1)
        for k in range(flat.shape[-1]):
            if np.ptp(flat[:, :, k]) > 0:  # constant draws (K = 1's weight) have no ranks
                label = f"{var}[{k}]" if v.ndim > 2 else str(var)
                out.append((label, flat[:, :, k]))
    return out


#: fewer draws per chain than this (after thinning) leave the rank test no power
RANK_MIN_DRAWS = 4


def rank_row(dt: Any, var_names: list[str], alpha: float) -> dict[str, Any]:
    """The rank plots' test: whether some chain's rank-ECDF leaves the envelope.

    On the draws thinned to about independent ones, as the rank plot draws them. The
    plot's envelope holds all chains with probability ``1 - alpha`` per panel; the check
    fails only when a curve leaves the envelope widened for the number of panels
    (probability ``1 - alpha / panels``), since with many panels one excursion from the
    plain envelope is expected by chance. With 3 or more chains ArviZ's multi-chain
    uniformity test (the p the plot prints) counts the same way.
    """
    C = int(dt["posterior"].sizes.get("chain", 1))
    if C < 2:
        return _skip("rank_ecdf", alpha, "one chain has no other to compare with")
    if int(dt["posterior"].sizes.get("draw", 0)) < RANK_MIN_DRAWS:
        return _skip("rank_ecdf", alpha, f"fewer than {RANK_MIN_DRAWS} draws per chain")
    try:
        post = thinned(dt, var_names)
    except ValueError:  # ESS not finite (constant or too few draws): nothing to thin by
        return _skip("rank_ecdf", alpha, "the effective sample size could not be computed")
    n = int(post.sizes["draw"])
    if n < RANK_MIN_DRAWS:
        return _skip("rank_ecdf", alpha, f"fewer than {RANK_MIN_DRAWS} draws per chain "
                     "after thinning to about independent ones")
    found = panels(post)
    if not found:
        return _skip("rank_ecdf", alpha, "no variable with draws that vary")
    m = len(found)
    drawn, wide = envelope(n, C, 1 - alpha), envelope(n, C, 1 - alpha / m)
    p = {label: 1.0 for label, _ in found}
    if C >= 3:  # ArviZ's test has no power with 2 chains (p ~ 1 even for a shifted one)
        import arviz_stats as azs  # noqa: F401 - registers the .azstats accessor

        ranks = post.azstats.compute_ranks(dim=["chain", "draw"], relative=True)
        pv, _, _ = ranks.azstats.mchain_uniformity_test(dim=["chain", "draw"])
        for label, _ in found:
            var, _, k = label.partition("[")
            p[label] = float(np.ravel(pv[var].values)[int(k[:-1]) if k else 0])
    failed = [label for label, v in found if outside(v, wide) or p[label] < alpha / m]
    flagged = [label for label, v in found if outside(v, drawn) or p[label] < alpha]
    chance = 1 - (1 - alpha) ** m
    pmin = min(p.values())
    value = float(len(failed) or len(flagged))
    if failed:
        message = (
            f"the chains' rank distributions differ ({', '.join(failed)}: outside the "
            f"envelope widened for {m} panels{f', or p under {alpha / m:.2g}' if C >= 3 else ''}"
            "): some chain covers part of the posterior more or less often than the "
            "others, a difference in the shape of the chains' distributions that R-hat, "
            "which compares only their location and spread, can miss; run longer, and if "
            "it persists fit fewer components")
    elif flagged:
        message = (
            f"the rank plot flags {', '.join(flagged)} (a chain outside the "
            f"{1 - alpha:.0%} envelope{f', or p under {alpha:g}' if C >= 3 else ''}), but "
            f"with {m} panels such a flag is expected by chance in {100 * chance:.0f}% of "
            "runs from chains that agree, and no chain leaves the envelope widened for "
            "the number of panels. R-hat compares only the chains' location and spread; "
            "the rank-ECDF test compares the whole shape of each chain's distribution, so "
            "a flag R-hat does not share is weak evidence that the chains differ: a longer "
            "run settles it")
    else:
        message = ("every chain's rank-ECDF stays inside the envelope"
                   + (f" (smallest multi-chain p = {pmin:.2f})" if C >= 3 else ""))
    # value: the panels that fail (or are flagged); threshold: the per-panel level the
    # failing ones are held to, alpha over the number of panels
    return _row("rank_ecdf", not failed, value, alpha / m, message)
