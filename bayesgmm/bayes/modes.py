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

__all__ = ["N_CLIMBS", "N_CLIMBS_MD", "N_EM_STARTS", "SAME_MODE", "em_starts", "find_modes",
           "find_modes_md", "laplace_components", "missed_modes"]

#: draws climbed to their mode (spread evenly over chains and draws); cost is about
#: N_CLIMBS x 50 evaluations of the log-density and its gradient
N_CLIMBS = 80
#: draws climbed in D dims (each evaluation of the D-dim density costs n K D^2, and its
#: coordinates are more: fewer climbs keep the search a small share of a fit)
N_CLIMBS_MD = 24
#: end points of two climbs whose coordinates (log-ratio weights, standardized means,
#: log widths) differ by less than this everywhere are the same mode
SAME_MODE = 0.05
#: random EM maxima climbed for modes the draws may lack (``posterior_k``'s NUTS path,
#: and a 1-D NUTS fit's search for modes no chain reached)
N_EM_STARTS = 10
#: ... 20 of them in a fit's search (on the galaxy data at K = 3 the mode where the
#: first component spreads over all the data is a climb from one of them)
N_EM_STARTS_FIT = 20
#: the search for modes no chain reached runs on at most this many points: beyond, the
#: groupings a NUTS chain cannot leave hold a negligible mass, and 20 EM fits would cost
#: more than the sampling
MISSED_SEARCH_MAX_N = 20_000


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
    search_missed: bool = False,
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
    search_missed : bool, default=False
        Also look for modes the draws are not in (:func:`missed_modes`).

    Returns
    -------
    dict
        ``labels`` (chains, draws): each draw's mode, modes numbered by decreasing
        weight; ``weights``: each mode's fraction of the draws; ``chain_fractions``
        (chains, modes); ``log_density`` at each mode; ``at_mode``: each mode's
        (weights, means, sigmas) in standardized units; ``rhat``: the largest split
        R-hat of the mode indicators (NaN with one mode); ``n_climbs``; with
        ``search_missed``, ``missed``: each mode found that the draws are not in, as
        ((weights, means, sigmas), its share of the posterior).
    """
    from .smc import _coords, _params, tempered_1d

    C, S, _ = w.shape
    flat = _coords(np.maximum(w.reshape(-1, K), 1e-300), mu.reshape(-1, K),
                   np.maximum(sg.reshape(-1, K), 1e-300))
    target = tempered_1d(z, eps2, K, hyper)
    found = _modes_of(flat, C, S, target, n_climbs, same_mode)
    if search_missed:
        found["missed"] = [(tuple(a[0] for a in _params(end[None, :], K)), share)
                           for end, share in missed_modes(
                               target, found["ends"], found["log_density"], z, eps2, K,
                               same_mode=same_mode)]
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
    out = []
    for c in centre:
        curv = _curvature(target, ends[c])
        if curv is not None:
            vals, vecs = curv
            out.append((ends[c], (vecs / vals) @ vecs.T))
    return out


def _curvature(target: Any, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Eigenvalues and vectors of the negative Hessian of the log density at ``x0``.

    Central differences of the gradient (all 2 d points in one call); the eigenvalues
    floored at 1e-6 of the largest. None where it is not finite or not positive.
    """
    d = x0.shape[0]
    h = 1e-5
    steps = h * np.eye(d)
    _, _, g = target.evaluate(np.concatenate([x0 + steps, x0 - steps]), 1.0)
    H = ((g[:d] - g[d:]) / (2 * h)).T
    H = 0.5 * (H + H.T)
    vals, vecs = np.linalg.eigh(-H)
    if not np.all(np.isfinite(vals)) or vals.max() <= 0:
        return None
    return np.maximum(vals, 1e-6 * vals.max()), vecs


def _log_mass(target: Any, x0: np.ndarray, log_density: float) -> float:
    """A mode's log posterior mass by Laplace's approximation (-inf where it fails)."""
    curv = _curvature(target, x0)
    if curv is None:
        return -np.inf
    vals = curv[0]
    return float(log_density + 0.5 * (x0.shape[0] * np.log(2 * np.pi) - np.log(vals).sum()))


def em_starts(z: np.ndarray, eps2: np.ndarray, K: int, rng: np.random.Generator,
              n_starts: int = N_EM_STARTS) -> np.ndarray:
    """Local maxima of the likelihood from random EM starts, in :mod:`.smc`'s coordinates.

    Each start is one random partition run to its maximum (no search: the point is
    to land in different maxima, not the best one); a posterior mode NUTS's chains
    never reach is often near one of them, and a climb from there finds it.
    """
    import warnings

    from ..em import GaussianMixtureEM
    from .smc import _coords, _sort

    err = np.sqrt(eps2) if eps2.shape[0] == z.shape[0] else None
    out = []
    for seed in rng.integers(2**31 - 1, size=n_starts):
        gm = GaussianMixtureEM(K, init="random", n_init=1, n_screen=0, split_merge=False,
                               tol=1e-6, max_iter=300, random_seed=int(seed))
        with warnings.catch_warnings():  # any maximum will do as a start: nothing to say
            warnings.simplefilter("ignore")
            try:
                gm.fit(z, X_err=err)
            except Exception:  # noqa: BLE001 - a start that fails is only a start fewer
                continue
        sd = np.sqrt(np.maximum(gm.covariances_[:, 0, 0], 1e-8))
        out.append(_coords(np.maximum(gm.weights_, 1e-8)[None, :],
                           gm.means_[None, :, 0], sd[None, :])[0])
    return _sort(np.array(out), K) if out else np.empty((0, 3 * K - 1))


def missed_modes(target: Any, ends: np.ndarray, log_density: np.ndarray, z: np.ndarray,
                 eps2: np.ndarray, K: int, *, n_starts: int = N_EM_STARTS_FIT,
                 same_mode: float = SAME_MODE) -> list[tuple[np.ndarray, float]]:
    """Modes of a 1-D posterior that climbs from random EM maxima reach and the draws not.

    ``ends`` and ``log_density``: the modes the draws are in (:func:`find_modes`' end
    points, sorted coordinates). Each of :func:`em_starts`' maxima (a fixed seed, so a
    fit's result does not depend on its own) is climbed; an end point farther than
    ``same_mode`` from every mode known is a new one. Returns each new mode's end point
    and its share of the posterior among all the modes known, by Laplace's
    approximation at each (on the galaxy data at K = 3 it gives the broad mode 0.0013,
    where importance sampling gives 0.0012-0.0015).
    """
    rng = np.random.default_rng(0)
    known = [np.asarray(e) for e in ends]
    dens = [float(v) for v in log_density]
    new = []
    for start in em_starts(z, eps2, K, rng, n_starts):
        end, value = _climb(start, target)
        end = target.sort(end[None, :])[0]
        if not np.isfinite(value) or any(np.max(np.abs(end - e)) < same_mode
                                          for e in known):
            continue
        known.append(end)
        dens.append(value)
        new.append(len(known) - 1)
    if not new:
        return []
    log_mass = np.array([_log_mass(target, e, v) for e, v in zip(known, dens, strict=True)])
    if not np.isfinite(log_mass).any():
        return []
    share = np.exp(log_mass - np.logaddexp.reduce(log_mass[np.isfinite(log_mass)]))
    return [(known[i], float(share[i])) for i in new]


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
    summary = {
        "n_modes": int(len(found["weights"])),
        "weights": [float(v) for v in found["weights"]],
        "chain_fractions": found["chain_fractions"].tolist(),
        "log_density": [float(v) for v in found["log_density"]],
        "rhat": None if np.isnan(found["rhat"]) else float(found["rhat"]),
        "n_climbs": found["n_climbs"],
        "at_mode": at_mode,
    }
    if "missed" in found:  # 1-D only: the search after a fit from the EM estimate
        summary["missed"] = [{"share": share, "weights": cw.tolist(),
                              "means": (cm * scale + loc).tolist(),
                              "sigmas": (cs * scale).tolist()}
                             for (cw, cm, cs), share in found["missed"]]
    return json.dumps(summary)


def attach_modes(dt: Any, z: np.ndarray, eps2: np.ndarray, K: int,
                 hyper: dict[str, np.ndarray], loc: float, scale: float) -> Any:
    """Find a 1-D fit's modes and keep them: ``attrs["modes"]``, ``sample_stats["mode"]``.

    After chains started at the EM estimate (not ``diagnostics.verdict.WEIGHTED_SAMPLERS``,
    whose draws weight every mode they found), on at most
    :data:`MISSED_SEARCH_MAX_N` points and K >= 2, modes no chain reached are looked for
    too (``attrs["modes"]["missed"]``, which ``diagnose``'s ``modes_reached`` reads).
    """
    from ..diagnostics.verdict import WEIGHTED_SAMPLERS

    post = dt["posterior"]
    search = (K >= 2 and z.shape[0] <= MISSED_SEARCH_MAX_N
              and post.attrs.get("sampler") not in WEIGHTED_SAMPLERS)
    found = find_modes(z, eps2, K, hyper, post["weights"].values,
                       (post["means"].values - loc) / scale, post["sigmas"].values / scale,
                       search_missed=search)
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
