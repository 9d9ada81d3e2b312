"""The rank plots' numbers: thinned fractional ranks, their ECDFs and the envelope.

Shared by :func:`bayesgmm.plots.plot_trace` (which draws them) and
:func:`bayesgmm.diagnostics.diagnose` (whose ``rank_ecdf`` check reads them), so the
figure and the verdict cannot disagree.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

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
