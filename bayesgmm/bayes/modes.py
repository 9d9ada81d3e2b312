"""The posterior's modes in a fit (1-D or D dims): each draw's mode, and each mode's weight.

R-hat compares chains; it cannot see a mode a chain visits for part of its draws only
when the other chains never visit it, and it cannot see a mode no chain reaches (the
galaxy data at K = 3: ``fit``'s NUTS chains from the EM estimate). This module names the
modes the draws are in. A thinned subset of the draws (:data:`N_CLIMBS` of them, evenly
spaced in each chain) is each climbed to its local maximum of the posterior density
(L-BFGS on :func:`bayesgmm.bayes.smc._particle`'s density at temperature 1, in its
coordinates: log-ratio weights, means, log widths; in D dims
:class:`~bayesgmm.bayes.smc_md.TemperedMD`'s, the correlations' unconstrained
coordinates added); end points closer than
:data:`SAME_MODE` (largest coordinate difference, standardized units) are one mode.
Every other draw takes the mode of its nearest climbed draw.

What the modes are for: each draw's mode, as an indicator per mode, is a quantity whose
split R-hat (ArviZ's, on the indicators, as Vehtari et al. 2021 check quantiles) says
whether the chains agree on the modes' weights. A chain that switches to another mode
part-way, or stays in one the others never visit, makes it large: ``diagnose``'s
``modes_mixed`` check. The mode weights are the draws' fractions (for ``sampler="smc"``,
whose draws are resampled by importance weights, these are the modes' posterior
masses). A mode with few draws between the climbed ones may be missed; with
``sampler="smc"`` the importance weights, not the climbs, carry the mass.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["N_CLIMBS", "N_CLIMBS_MD", "SAME_MODE", "find_modes", "find_modes_md",
           "laplace_components"]

#: draws climbed to their mode (spread evenly over chains and draws); cost is about
#: N_CLIMBS x 50 evaluations of the log-density and its gradient
N_CLIMBS = 80
#: draws climbed in D dims (each evaluation of the D-dim density costs n K D^2, and its
#: coordinates are more: fewer climbs keep the search a small share of a fit)
N_CLIMBS_MD = 24
#: end points of two climbs whose coordinates (log-ratio weights, standardized means,
#: log widths) differ by less than this everywhere are the same mode
SAME_MODE = 0.05


def _climb(theta0, target):
    """L-BFGS from ``theta0`` to a local maximum of ``target``'s density at temperature 1."""
    from scipy.optimize import minimize

    def f(th):
        ll, lp, grad = target.evaluate(np.ascontiguousarray(th)[None, :], 1.0)
        v = float(ll[0] + lp[0])
        if not np.isfinite(v):
            return 1e300, np.zeros_like(th)
        return -v, -grad[0]

    res = minimize(f, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 500, "gtol": 1e-5, "ftol": 1e-11})
    return res.x, -float(res.fun)


def find_modes(
    z: np.ndarray,
    eps2: np.ndarray,
    K: int,
    hyper: dict[str, np.ndarray],
    w: np.ndarray,
    mu: np.ndarray,
    sg: np.ndarray,
    *,
    n_climbs: int = N_CLIMBS,
    same_mode: float = SAME_MODE,
) -> dict[str, Any]:
    """The modes of a 1-D posterior's draws, standardized units.

    Parameters
    ----------
    z, eps2 : ndarray
        Standardized data and squared standardized errors (length 1 when none).
    K : int
        Number of components.
    hyper : dict
        :meth:`bayesgmm.Priors.standardized`'s hyperparameters.
    w, mu, sg : ndarray of shape (chains, draws, K)
        The draws (standardized means and widths).
    n_climbs, same_mode
        :data:`N_CLIMBS`, :data:`SAME_MODE`.

    Returns
    -------
    dict
        ``labels`` (chains, draws): each draw's mode, modes numbered by decreasing
        weight; ``weights``: each mode's fraction of the draws; ``chain_fractions``
        (chains, modes); ``log_density`` at each mode; ``at_mode``: each mode's
        (weights, means, sigmas) in standardized units; ``rhat``: the largest split
        R-hat of the mode indicators (NaN with one mode); ``n_climbs``.
    """
    from .smc import _coords, _params, tempered_1d

    C, S, _ = w.shape
    flat = _coords(np.maximum(w.reshape(-1, K), 1e-300), mu.reshape(-1, K),
                   np.maximum(sg.reshape(-1, K), 1e-300))
    found = _modes_of(flat, C, S, tempered_1d(z, eps2, K, hyper), n_climbs, same_mode)
    found["at_mode"] = _params(found.pop("ends"), K)
    return found


def find_modes_md(
    target: Any,
    post: Any,
    *,
    n_climbs: int = N_CLIMBS_MD,
    same_mode: float = SAME_MODE,
) -> dict[str, Any]:
    """The modes of a D-dim posterior's draws: :func:`find_modes` for ``fit``'s D-dim model.

    Parameters
    ----------
    target : TargetMD
        The fit's target (:class:`~.target_md.TargetMD`: standardized data, missing
        values, error covariances, priors); the climbs go up its density at temperature 1.
    post : xarray.Dataset
        The posterior (``weights``, ``means``, ``sds``, ``correlations``, data units).
    n_climbs, same_mode
        :data:`N_CLIMBS_MD`, :data:`SAME_MODE` (in the density's coordinates: log-ratio
        weights, standardized means, log sds, the correlations' unconstrained ones).

    Returns
    -------
    dict
        :func:`find_modes`' keys; ``at_mode`` a list with each mode's parameters in data
        units (:func:`~.target_md.expand`).
    """
    from . import density_md
    from .smc_md import TemperedMD
    from .target_md import expand

    K, D = target.n_components, target.n_features
    C, S = post.sizes["chain"], post.sizes["draw"]
    loc, scale = np.asarray(target.loc, float), np.asarray(target.scale, float)
    w = np.maximum(post["weights"].values.reshape(-1, K), 1e-300)
    mu = (post["means"].values.reshape(-1, K, D) - loc) / scale
    sd = np.maximum(post["sds"].values.reshape(-1, K, D) / scale, 1e-300)
    corr = post["correlations"].values.reshape(-1, K, D, D)
    flat = np.stack([density_md.pack(w[i] / w[i].sum(), mu[i], sd[i], corr[i])
                     for i in range(C * S)])
    # the constructor, not build(): climbs need no exchangeable priors (build checks
    # them for SMC's sorting moves); ends are sorted only to group them
    found = _modes_of(flat, C, S, TemperedMD(target), n_climbs, same_mode)
    found["at_mode"] = [expand(e, K, loc, scale) for e in found.pop("ends")]
    return found


def _modes_of(flat, C, S, target, n_climbs, same_mode) -> dict[str, Any]:
    """:func:`find_modes`' dict from the draws in ``target``'s coordinates.

    ``ends`` (each mode's end point) stands in place of ``at_mode``.
    """
    picks, ends, dens, climb_mode, centre, scaled = _climb_and_group(
        flat, C, S, target, n_climbs, same_mode)

    # every draw takes the mode of its nearest climbed draw
    labels = climb_mode[np.argmin(_sq_dist(scaled, scaled[picks]), axis=1)]
    labels[picks] = climb_mode
    M = len(centre)
    counts = np.bincount(labels, minlength=M).astype(float)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(M, dtype=int)
    rank[order] = np.arange(M)
    labels = rank[labels].reshape(C, S)
    centre = [centre[m] for m in order]
    weights = counts[order] / counts.sum()
    fractions = np.stack([(labels == m).mean(axis=1) for m in range(M)], axis=1)
    return {"labels": labels, "weights": weights, "chain_fractions": fractions,
            "log_density": dens[centre], "ends": ends[centre],
            "rhat": _indicator_rhat(labels, M), "n_climbs": int(len(picks))}


def _climb_and_group(flat, C, S, target, n_climbs, same_mode):
    """Pick draws to climb, climb them, group the end points into modes.

    Half the climbs are evenly spaced in each chain, half at the draws farthest from
    those already chosen (coordinates scaled by the draws' spread), so a mode few draws
    visit is climbed from one of them. Returns the picks, their end points (means
    sorted) and log densities, each climb's mode, the index of each mode's best climb,
    and the scaled, sorted coordinates of every draw.
    """
    spread = np.maximum(flat.std(axis=0), 1e-12)
    scaled = target.sort(flat) / spread
    per_chain = max(1, min(S, (n_climbs + 1) // 2 // C))
    picks = list(np.concatenate([c * S + np.unique(np.linspace(0, S - 1, per_chain).round()
                                                   .astype(int)) for c in range(C)]))
    nearest = np.min(_sq_dist(scaled, scaled[picks]), axis=1)
    while len(picks) < min(n_climbs, flat.shape[0]) and nearest.max() > 0:
        j = int(np.argmax(nearest))
        picks.append(j)
        nearest = np.minimum(nearest, _sq_dist(scaled, scaled[[j]])[:, 0])
    picks = np.array(picks)
    ends, dens = [], []
    for i in picks:
        end, value = _climb(flat[i], target)
        ends.append(target.sort(end[None, :])[0])
        dens.append(value)
    ends, dens = np.array(ends), np.array(dens)
    # end points within same_mode of each other are one mode (greedy, highest first)
    centre: list[int] = []
    climb_mode = np.full(len(picks), -1)
    for j in np.argsort(-dens):
        for m, c in enumerate(centre):
            if np.max(np.abs(ends[j] - ends[c])) < same_mode:
                climb_mode[j] = m
                break
        else:
            climb_mode[j] = len(centre)
            centre.append(int(j))
    return picks, ends, dens, climb_mode, centre, scaled


def laplace_components(
    target: Any,
    theta: np.ndarray,
    *,
    n_climbs: int = N_CLIMBS,
    same_mode: float = SAME_MODE,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each mode SMC's particles reach, as (centre, covariance) for an importance proposal.

    The particles (:mod:`.smc`'s coordinates) are climbed as :func:`find_modes` climbs
    draws; at each mode the covariance is the inverse of the negative Hessian of the log
    density (central differences of its gradient), its eigenvalues floored at 1e-6 of
    the largest. A mode a handful of particles reach gets a component of its own this
    way, which a mixture fitted to the particles would give too few points to.
    ``target``: :class:`~.smc.Tempered1D` or :class:`~.smc_md.TemperedMD`.
    """
    _, ends, _, _, centre, _ = _climb_and_group(theta, 1, theta.shape[0], target,
                                                n_climbs, same_mode)
    d = theta.shape[1]
    out = []
    h = 1e-5
    for c in centre:
        x0 = ends[c]
        # central differences of the gradient, all 2 d points in one call
        steps = h * np.eye(d)
        _, _, g = target.evaluate(np.concatenate([x0 + steps, x0 - steps]), 1.0)
        H = ((g[:d] - g[d:]) / (2 * h)).T
        H = 0.5 * (H + H.T)
        vals, vecs = np.linalg.eigh(-H)
        if not np.all(np.isfinite(vals)) or vals.max() <= 0:
            continue
        vals = np.maximum(vals, 1e-6 * vals.max())
        out.append((x0, (vecs / vals) @ vecs.T))
    return out


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances between the rows of a (N, d) and b (m, d), in blocks of rows."""
    out = np.empty((a.shape[0], b.shape[0]))
    for start in range(0, a.shape[0], 4096):
        block = a[start:start + 4096]
        out[start:start + 4096] = ((block[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return out


def _indicator_rhat(labels: np.ndarray, M: int) -> float:
    """Largest split R-hat (ArviZ, no rank normalisation) of the mode indicators."""
    if M < 2 or labels.shape[0] < 2:
        return float("nan")
    from arviz_stats.base import array_stats

    worst = 1.0
    for m in range(M):
        ind = (labels == m).astype(float)
        if np.ptp(ind) == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            r = float(array_stats.rhat(ind, chain_axis=0, draw_axis=1, method="split"))
        if np.isfinite(r):
            worst = max(worst, r)
        else:  # constant within every half-chain but not across: chains in different modes
            worst = float("inf")
    return worst


def modes_attr(found: dict[str, Any], loc: float | None = None,
               scale: float | None = None) -> str:
    """``find_modes``' summary in data units, as the JSON ``fit`` keeps in attrs.

    1-D: ``loc`` and ``scale`` bring the standardized means and widths to data units.
    D dims (:func:`find_modes_md`, ``at_mode`` in data units already): weights, means,
    sds and correlations at each mode.
    """
    if isinstance(found["at_mode"], list):
        at_mode = [{name: np.asarray(m[name]).tolist() for name in
                    ("weights", "means", "sds", "correlations")} for m in found["at_mode"]]
    else:
        cw, cm, cs = found["at_mode"]
        at_mode = [{"weights": cw[m].tolist(), "means": (cm[m] * scale + loc).tolist(),
                    "sigmas": (cs[m] * scale).tolist()} for m in range(len(cw))]
    return json.dumps({
        "n_modes": int(len(found["weights"])),
        "weights": [float(v) for v in found["weights"]],
        "chain_fractions": found["chain_fractions"].tolist(),
        "log_density": [float(v) for v in found["log_density"]],
        "rhat": None if np.isnan(found["rhat"]) else float(found["rhat"]),
        "n_climbs": found["n_climbs"],
        "at_mode": at_mode,
    })


def attach_modes(dt: Any, z: np.ndarray, eps2: np.ndarray, K: int,
                 hyper: dict[str, np.ndarray], loc: float, scale: float) -> Any:
    """Find a 1-D fit's modes and keep them: ``attrs["modes"]``, ``sample_stats["mode"]``."""
    post = dt["posterior"]
    found = find_modes(z, eps2, K, hyper, post["weights"].values,
                       (post["means"].values - loc) / scale, post["sigmas"].values / scale)
    return _keep(dt, found, modes_attr(found, loc, scale))


def attach_modes_md(dt: Any, target: Any) -> Any:
    """Find a D-dim fit's modes (:func:`find_modes_md`) and keep them as in 1-D."""
    found = find_modes_md(target, dt["posterior"].to_dataset())
    return _keep(dt, found, modes_attr(found))


def _keep(dt: Any, found: dict[str, Any], summary: str) -> Any:
    import xarray as xr

    post = dt["posterior"]
    stats = dt["sample_stats"].to_dataset() if "sample_stats" in dt.children else \
        xr.Dataset(coords={"chain": post["chain"].values, "draw": post["draw"].values})
    stats["mode"] = (("chain", "draw"), found["labels"])
    stats["mode"].attrs["long_name"] = "the posterior mode the draw belongs to (by weight)"
    dt["sample_stats"] = stats
    dt.attrs["modes"] = summary
    return dt
