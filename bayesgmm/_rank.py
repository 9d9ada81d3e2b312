"""The rank plots' numbers: thinned fractional ranks, their ECDFs and the envelope.

Shared by :func:`bayesgmm.plots.plot_trace` (which draws them) and
:func:`bayesgmm.diagnostics.diagnose` (whose ``rank_ecdf`` check reads them), so the
figure and the verdict cannot disagree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PARAMETERS = ["weights", "means", "sigmas"]


def thinned(dt: Any, var_names: list[str] = PARAMETERS) -> Any:
    """The posterior's variables thinned to about independent draws (``arviz_stats.thin``)."""
    import arviz_stats as azs

    post = dt["posterior"].to_dataset()[var_names]
    return azs.thin(post)


def envelope(n: int, chains: int, prob: float) -> dict[str, np.ndarray]:
    """Simultaneous band of ``chains`` rank-ECDF differences of ``n`` draws each.

    All C curves stay inside at every rank with probability about ``prob`` when the
    chains sample the same distribution: the simultaneous band of one ECDF of ``n``
    independent uniforms (Säilynoja et al. 2022, ``arviz_stats.ecdf_utils.ecdf_pit``)
    at probability ``prob ** (1 / C)``. Slightly conservative: ranks within the pooled
    draws vary a little less than independent uniforms.
    """
    from arviz_stats.ecdf_utils import ecdf_pit

    x, _, lo, hi = ecdf_pit(np.linspace(0, 1, n), prob ** (1 / chains), n_simulations=1000,
                            rng=np.random.default_rng(214))
    return {"x": x, "lower": lo - x, "upper": hi - x}


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
