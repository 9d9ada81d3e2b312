"""Label switching: relabel each posterior draw to a pivot (the EM estimate).

A mixture's likelihood is the same under all K! relabellings of its components, so a
sampler that crosses between them (or chains that start in different ones) produces
draws whose ``component`` index means different things in different draws; averaging
such draws averages across components. In 1-D the means are ordered in every draw,
which fixes the labels; in D dimensions there is no natural order. Here each draw is
relabelled to the permutation of its components nearest to a pivot, the EM estimate
(pivotal reordering: Marin, Mengersen & Robert 2005; Stephens 2000), and the draws the
pivot cannot label (ambiguous between two labellings, or far from every one) are
counted. ARCHITECTURE.md says why this identifies the posterior and what it cannot do.

Arrays in, arrays out (:func:`relabel_to_pivot`, :func:`identify`), with a DataTree
layer on top (:func:`apply_permutations`, :func:`relabel`). Acts on draws only; never
samples, so it sits with the readers: ``diagnose`` uses it (readers import no
``bayes``), and ``fit`` in D dimensions calls it on each run's draws
(``bayes/inference_md.py``).

Over 400 lines for one concept: the search (all K! labellings or the Hungarian
algorithm, with the second-best labelling), the identification statistic and the
DataTree layer belong together, and a third of the module is docstrings.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["AMBIGUOUS_MARGIN", "FAR_PROB", "Identification", "apply_permutations",
           "component_cost", "identify", "identify_posterior", "pivot_of", "relabel",
           "relabel_to_pivot"]

#: A draw is ambiguous when its second-best labelling costs less than this much more
#: than its best (cost units: squared Mahalanobis distances, see :func:`component_cost`).
AMBIGUOUS_MARGIN = 1.0
#: A draw is far when a matched component's mean lies beyond the chi-square(D) quantile
#: at this probability (squared Mahalanobis): outside the pivot component's 99% ellipsoid.
FAR_PROB = 0.99
#: Up to this K the best two labellings are found by enumerating all K! of them;
#: above it by scipy's linear_sum_assignment (the measurements: benchmarks/README.md).
ENUMERATE_MAX_K = 6
_CHUNK = 512  # draws per block in the enumeration (bounds its (draws, K!, K) array)

# the variables a fit result's posterior and em_estimate hold
_NAMES = {"weights": "weights", "means": "means", "covariances": "covariances",
          "sigmas": "sigmas"}


def _check(means: np.ndarray, covariances: np.ndarray, what: str) -> None:
    if means.ndim < 2 or covariances.shape != (*means.shape, means.shape[-1]):
        raise DataError(
            f"{what}: means must have shape (..., K, D) and covariances (..., K, D, D); "
            f"got {means.shape} and {covariances.shape}")


def _cost_parts(means, covariances, pivot_means, pivot_covariances, covariance_term):
    """The means' squared Mahalanobis distances and the covariance part, (..., j, k)."""
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    pm = np.asarray(pivot_means, dtype=float)
    pc = np.asarray(pivot_covariances, dtype=float)
    _check(means, covariances, "draws")
    _check(pm, pc, "pivot")
    if pm.shape != means.shape[-2:]:
        raise DataError(f"the pivot has {pm.shape[0]} components in {pm.shape[1]} "
                        f"dimensions; the draws have shape {means.shape[-2:]}")
    try:
        chol = np.linalg.cholesky(pc)
    except np.linalg.LinAlgError:
        raise DataError("the pivot's covariances must be positive definite") from None
    prec = np.linalg.inv(pc)
    delta = means[..., :, None, :] - pm  # (..., j, k, D)
    maha = np.einsum("...jkd,kde,...jke->...jk", delta, prec, delta)
    if not covariance_term:
        return maha, None
    D = pm.shape[-1]
    sign, logdet = np.linalg.slogdet(covariances)  # (..., j)
    if np.any(sign <= 0):
        raise DataError("every draw's covariances must be positive definite")
    pivot_logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    trace = np.einsum("kde,...jed->...jk", prec, covariances)
    # >= 0 in exact arithmetic; clipped so rounding never makes it a reward
    return maha, np.maximum(trace - D + pivot_logdet - logdet[..., :, None], 0.0)


def component_cost(
    means: np.ndarray,
    covariances: np.ndarray,
    pivot_means: np.ndarray,
    pivot_covariances: np.ndarray,
    *,
    covariance_term: bool = True,
) -> np.ndarray:
    """Cost of giving each draw component each pivot component's label.

    ``cost[..., j, k] = (m_j - m~_k)' S~_k^-1 (m_j - m~_k)`` (the squared Mahalanobis
    distance of the draw's mean j from pivot component k, under the pivot's covariance)
    plus, with ``covariance_term``, ``tr(S~_k^-1 S_j) - D - log det(S~_k^-1 S_j)``.
    The sum is ``2 KL(N(m_j, S_j) || N(m~_k, S~_k))``. Its means part is a
    chi-square(D) variable when m_j is a point of component k, which gives the "far"
    threshold of :func:`identify` its meaning; its covariance part, zero only when the
    two covariances are equal, tells apart components that share a centre but not a
    shape (a narrow core inside a broad halo), which the means alone cannot. The
    pivot's covariance is the yardstick (not the draw's), so only K matrices are
    inverted, and a draw's component cannot shrink its distance by widening. Weights
    are left out: components alike in centre and shape are not told apart by the data
    whatever their weights, and a weight term would let a noisy weight outvote them.

    Parameters
    ----------
    means : ndarray of shape (..., K, D)
        The draws' component means.
    covariances : ndarray of shape (..., K, D, D)
        The draws' component covariances (positive definite).
    pivot_means : ndarray of shape (K, D)
        The pivot's means.
    pivot_covariances : ndarray of shape (K, D, D)
        The pivot's covariances (positive definite).
    covariance_term : bool, default=True
        Add the covariance part of the KL divergence.

    Returns
    -------
    ndarray of shape (..., K, K)
        ``cost[..., j, k]``, j the draw's component and k the pivot's.
    """
    maha, cov = _cost_parts(means, covariances, pivot_means, pivot_covariances,
                            covariance_term)
    return maha if cov is None else maha + cov


def _diagonal_sum(cost: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """sum_k cost[n, perm[n, k], k] (summed in k's order: the same bits every time)."""
    return np.take_along_axis(cost, perm[:, None, :], axis=1)[:, 0, :].sum(axis=-1)


def _best_two_enumerate(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best labelling, its cost and the second-best cost, over all K! labellings."""
    N, K, _ = cost.shape
    perms = np.array(list(itertools.permutations(range(K))), dtype=np.intp)  # [p, k] = j
    cols = np.arange(K)
    perm = np.empty((N, K), dtype=np.intp)
    best, second = np.empty(N), np.full(N, np.inf)
    for lo in range(0, N, _CHUNK):
        total = cost[lo:lo + _CHUNK][:, perms, cols].sum(axis=-1)  # (n, K!)
        i = np.argmin(total, axis=1)  # the first of ties: the identity comes first
        perm[lo:lo + _CHUNK] = perms[i]
        best[lo:lo + _CHUNK] = total[np.arange(len(i)), i]
        if K > 1:
            second[lo:lo + _CHUNK] = np.partition(total, 1, axis=1)[:, 1]
    return perm, best, second


def _best_two_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same by the Hungarian algorithm; the second best by forbidding each edge.

    Any other labelling drops at least one edge (j, k) of the best, so the second best
    is the cheapest of the K problems with one of the best's edges forbidden (Murty).
    """
    from scipy.optimize import linear_sum_assignment

    N, K, _ = cost.shape
    perm = np.empty((N, K), dtype=np.intp)
    best, second = np.empty(N), np.full(N, np.inf)
    for n in range(N):
        rows, cols = linear_sum_assignment(cost[n])
        perm[n, cols] = rows
        best[n] = cost[n, rows, cols].sum()
        for k in range(K if K > 1 else 0):
            c = cost[n].copy()
            c[perm[n, k], k] = np.inf
            r, q = linear_sum_assignment(c)
            second[n] = min(second[n], c[r, q].sum())
    return perm, best, second


def _best_two(cost: np.ndarray, method: str | None = None):
    """Best labelling per draw, its cost and the second-best cost.

    ``perm[n, k]`` is the draw's component given label k; costs are summed in k's order
    (the same bits for the same labelling however the draw is ordered); among ties the
    identity is kept, so relabelling twice changes nothing.
    """
    N, K, _ = cost.shape
    method = method or ("enumerate" if K <= ENUMERATE_MAX_K else "assignment")
    find = _best_two_enumerate if method == "enumerate" else _best_two_assignment
    perm, best, second = find(cost)
    identity = np.broadcast_to(np.arange(K), (N, K))
    keep = _diagonal_sum(cost, identity) <= _diagonal_sum(cost, perm)
    perm[keep] = identity[keep]
    return perm, _diagonal_sum(cost, perm), second


@dataclasses.dataclass(frozen=True, eq=False)
class Identification:
    """How well a pivot labels each draw.

    Attributes
    ----------
    permutations : ndarray of int, shape (..., K)
        ``permutations[..., k]``: the draw's component that gets label k.
    distances : ndarray of shape (...)
        Cost of that labelling (summed over components; :func:`component_cost`).
    margins : ndarray of shape (...)
        Second-best labelling's cost minus the best's (``inf`` for K = 1).
    worst : ndarray of shape (...)
        The largest squared Mahalanobis distance of a matched component's mean from
        its pivot component (the means part of the cost).
    ambiguous, far : ndarray of bool, shape (...)
        ``margins < margin``; ``worst > far_cost``.
    permuted : int
        Draws whose best labelling is not the identity.
    not_identified : float
        Fraction of draws ambiguous or far.
    margin : float
        The ambiguity threshold used.
    far_cost : float
        ``chi2.ppf(far_prob, D)``, the far threshold used.
    """

    permutations: np.ndarray
    distances: np.ndarray
    margins: np.ndarray
    worst: np.ndarray
    ambiguous: np.ndarray
    far: np.ndarray
    permuted: int
    not_identified: float
    margin: float
    far_cost: float


def identify(
    weights: np.ndarray | None,
    means: np.ndarray,
    covariances: np.ndarray,
    pivot: dict[str, Any],
    *,
    covariance_term: bool = True,
    margin: float = AMBIGUOUS_MARGIN,
    far_prob: float = FAR_PROB,
    method: str | None = None,
) -> Identification:
    """Relabel draws to a pivot and say which draws the pivot cannot label.

    A draw is *not identified* when it is **ambiguous** or **far**.

    - Ambiguous: its second-best labelling costs less than ``margin`` more than its
      best. Swapping two components of equal shape whose means are d of their sds
      apart costs 2 d^2, so the default 1 flags pairs within about 0.7 sd of each
      other: such a pair makes one unimodal bump, close to a single Gaussian (two
      equal ones are bimodal only beyond 2 sd), so the data do not tell the two apart
      and their separate numbers mean little. (Looser than this, pairs are still
      told apart by the pivot: draws scatter around the EM estimate by about
      1 / sqrt(points in the component) sds, far less.) In 1-D, ``diagnose``'s
      ordering check flags neighbours within 0.1 sd, a weaker demand.
    - Far: some matched component's mean lies outside its pivot component's
      ``far_prob`` ellipsoid (its squared Mahalanobis distance, a chi-square(D)
      variable for a point of that component, above ``chi2.ppf(far_prob, D)``): the
      draw sits where the pivot has no component, a mode the EM estimate does not
      describe, and no relabelling makes it comparable. Only the means count here,
      so the broad covariance draws of a small component are not called far.

    Parameters
    ----------
    weights : ndarray of shape (..., K), optional
        The draws' weights; checked for shape, not used by the cost (components that
        share a centre and a shape are not identified by their weights either).
    means : ndarray of shape (..., K, D)
    covariances : ndarray of shape (..., K, D, D)
    pivot : dict
        ``"means"`` (K, D) and ``"covariances"`` (K, D, D), e.g. from :func:`pivot_of`.
    covariance_term : bool, default=True
        See :func:`component_cost`.
    margin : float, default=1.0
        Smallest cost gap between the best two labellings of an identified draw.
    far_prob : float, default=0.99
        Probability of the chi-square(D) quantile beyond which a matched component is
        far.
    method : {"enumerate", "assignment"}, optional
        How labellings are searched (default: all K! for K <= 6, else
        ``scipy.optimize.linear_sum_assignment``). Both give the same labelling.

    Returns
    -------
    Identification
    """
    from scipy.stats import chi2

    means = np.asarray(means, dtype=float)
    if weights is not None and np.shape(weights) != means.shape[:-1]:
        raise DataError(f"weights must have shape {means.shape[:-1]}; got "
                        f"{np.shape(weights)}")
    maha, cov = _cost_parts(means, covariances, pivot["means"], pivot["covariances"],
                            covariance_term)
    cost = maha if cov is None else maha + cov
    lead, K = cost.shape[:-2], cost.shape[-1]
    perm, best, second = _best_two(cost.reshape(-1, K, K), method)
    matched = np.take_along_axis(maha.reshape(-1, K, K), perm[:, None, :], axis=1)
    worst = matched[:, 0, :].max(axis=-1)
    far_cost = float(chi2.ppf(far_prob, means.shape[-1]))
    margins = second - best
    ambiguous, far = margins < margin, worst > far_cost
    return Identification(
        permutations=perm.reshape(*lead, K), distances=best.reshape(lead),
        margins=margins.reshape(lead), worst=worst.reshape(lead),
        ambiguous=ambiguous.reshape(lead), far=far.reshape(lead),
        permuted=int(np.any(perm != np.arange(K), axis=-1).sum()),
        not_identified=float(np.mean(ambiguous | far)) if best.size else 0.0,
        margin=float(margin), far_cost=far_cost)


def relabel_to_pivot(
    weights: np.ndarray | None,
    means: np.ndarray,
    covariances: np.ndarray,
    pivot: dict[str, Any],
    *,
    covariance_term: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the labelling of its components nearest to the pivot.

    Parameters
    ----------
    weights : ndarray of shape (..., K), optional
        The draws' weights (shape-checked only; see :func:`identify`).
    means : ndarray of shape (..., K, D)
        The draws' means.
    covariances : ndarray of shape (..., K, D, D)
        The draws' covariances.
    pivot : dict
        ``"means"`` (K, D) and ``"covariances"`` (K, D, D): the EM estimate.
    covariance_term : bool, default=True
        Cost = 2 KL divergence of each draw component from each pivot component
        (means' squared Mahalanobis distance under the pivot's covariance plus a
        covariance part); False: the Mahalanobis part only. See :func:`component_cost`.

    Returns
    -------
    permutations : ndarray of int, shape (..., K)
        ``permutations[..., k]`` is the draw's component that gets label k (the pivot's
        component k); ``x[..., permutations, ...]`` along the component axis relabels.
        Among equally near labellings the identity is kept.
    distances : ndarray of shape (...)
        That labelling's summed cost.
    """
    ident = identify(weights, means, covariances, pivot, covariance_term=covariance_term)
    return ident.permutations, ident.distances


# ---------------------------------------------------------------- DataTree layer

def _draw_arrays(ds: Any, lead: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """weights, means (..., K, D) and covariances (..., K, D, D) of a Dataset.

    1-D results carry ``sigmas`` (component) instead: D = 1, covariance = sigma^2.
    """
    order = (*lead, "component")
    missing = [v for v in ("weights", "means") if v not in ds]
    if missing or ("covariances" not in ds and "sigmas" not in ds):
        raise DataError(f"relabelling needs weights, means and covariances (or sigmas); "
                        f"missing {missing or ['covariances']}")
    w = ds["weights"].transpose(*order).values
    mu = ds["means"].transpose(*order, ...).values
    if "covariances" in ds:
        cov = ds["covariances"].transpose(*order, ...).values
    else:
        cov = ds["sigmas"].transpose(*order).values[..., None, None] ** 2
    if mu.ndim == len(order):
        mu = mu[..., None]
    return w, mu, cov


def pivot_of(dt: Any, group: str = "em_estimate") -> dict[str, np.ndarray]:
    """The pivot (weights, means, covariances as arrays) from a result's EM estimate.

    Parameters
    ----------
    dt : xarray.DataTree
        A :func:`bayesgmm.fit` result.
    group : str, default="em_estimate"
        The group holding the pivot.

    Returns
    -------
    dict
        ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D).
    """
    if group not in dt.children:
        raise DataError(f"no {group!r} group to relabel against")
    w, mu, cov = _draw_arrays(dt[group].to_dataset(), ())
    return {"weights": w, "means": mu, "covariances": cov}


def identify_posterior(
    dt: Any,
    pivot: dict[str, Any] | None = None,
    *,
    covariance_term: bool = True,
    margin: float = AMBIGUOUS_MARGIN,
    far_prob: float = FAR_PROB,
) -> Identification:
    """:func:`identify` on a result's posterior draws (chain, draw) against its pivot.

    Parameters
    ----------
    dt : xarray.DataTree
        A result with a ``posterior`` (weights, means, and covariances or sigmas).
    pivot : dict, optional
        Default: the ``em_estimate`` group (:func:`pivot_of`).
    covariance_term, margin, far_prob
        See :func:`identify`.

    Returns
    -------
    Identification
        Arrays shaped (chain, draw[, component]).
    """
    pivot = pivot_of(dt) if pivot is None else pivot
    w, mu, cov = _draw_arrays(dt["posterior"].to_dataset(), ("chain", "draw"))
    return identify(w, mu, cov, pivot, covariance_term=covariance_term, margin=margin,
                    far_prob=far_prob)


def apply_permutations(posterior: Any, permutations: np.ndarray) -> Any:
    """Reorder every per-component variable of a posterior Dataset.

    Parameters
    ----------
    posterior : xarray.Dataset
        Dims ``chain``, ``draw``, ``component`` (and any others).
    permutations : ndarray of int, shape (chain, draw, K)
        ``permutations[c, d, k]``: the component of draw (c, d) that gets label k.

    Returns
    -------
    xarray.Dataset
        A new Dataset: each variable with a ``component`` dim reordered along it, the
        others, coordinates and attrs as they were.
    """
    perm = np.asarray(permutations)
    out = posterior.copy()
    for name, var in posterior.data_vars.items():
        if "component" not in var.dims:
            continue
        rest = [d for d in var.dims if d not in ("chain", "draw", "component")]
        moved = var.transpose("chain", "draw", "component", *rest)
        idx = perm.reshape(perm.shape + (1,) * len(rest))
        values = np.take_along_axis(moved.values, idx, axis=2)
        out[name] = moved.copy(data=values).transpose(*var.dims)
    return out


def relabel(
    dt: Any,
    pivot: dict[str, Any] | None = None,
    *,
    covariance_term: bool = True,
    margin: float = AMBIGUOUS_MARGIN,
    far_prob: float = FAR_PROB,
) -> Any:
    """A copy of a fit result whose posterior draws carry the pivot's labels.

    Parameters
    ----------
    dt : xarray.DataTree
        A result with a ``posterior`` (weights, means, and covariances or sigmas, dims
        ``chain``, ``draw``, ``component``[, feature dims]).
    pivot : dict, optional
        ``means`` (K, D) and ``covariances`` (K, D, D); default: the ``em_estimate``
        group (:func:`pivot_of`).
    covariance_term, margin, far_prob
        See :func:`identify`.

    Returns
    -------
    xarray.DataTree
        A copy: every per-component posterior variable reordered (other groups are
        per-point or per-draw and carry no labels); ``sample_stats`` gains
        ``relabel_permutation`` (chain, draw, component; the original label of each
        label, composed over repeated relabelling), ``relabel_distance`` and
        ``relabel_margin`` (chain, draw); the posterior's attrs gain
        ``relabel_pivot``, ``relabel_permuted`` (draws whose labels changed),
        ``relabel_permuted_fraction`` and ``relabel_not_identified`` (the fraction of
        draws ambiguous or far, see :func:`identify`). Relabelling again changes nothing.
    """
    import xarray as xr

    post = dt["posterior"].to_dataset()
    source = "em_estimate" if pivot is None else "given"
    ident = identify_posterior(dt, pivot, covariance_term=covariance_term, margin=margin,
                               far_prob=far_prob)
    perm = ident.permutations
    new_post = apply_permutations(post, perm)
    stats = (dt["sample_stats"].to_dataset() if "sample_stats" in dt.children
             else xr.Dataset(coords={"chain": post["chain"], "draw": post["draw"]}))
    if "relabel_permutation" in stats:  # compose: the labels of the original draws
        prior = stats["relabel_permutation"].transpose("chain", "draw", "component").values
        perm = np.take_along_axis(prior, perm, axis=-1)
    K = perm.shape[-1]
    permuted = int(np.any(perm != np.arange(K), axis=-1).sum())
    cd = ("chain", "draw")
    stats = stats.assign(
        relabel_permutation=((*cd, "component"), perm),
        relabel_distance=(cd, ident.distances),
        relabel_margin=(cd, ident.margins))
    if "component" in post.coords:
        stats = stats.assign_coords(component=post["component"])
    n = perm.size // K if K else 0
    new_post.attrs.update({
        "relabel_pivot": source,
        "relabel_permuted": permuted,
        "relabel_permuted_fraction": permuted / n if n else 0.0,
        "relabel_not_identified": ident.not_identified,
        "relabel_cost": "2 KL(draw component || pivot component)" if covariance_term
        else "squared Mahalanobis distance of the means under the pivot's covariance",
    })
    out = dt.copy()
    out["posterior"] = xr.DataTree(new_post)
    out["sample_stats"] = xr.DataTree(stats)
    return out
