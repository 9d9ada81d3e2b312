"""Choosing the number of components: BIC/AIC over EM fits."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..em.estimator import GaussianMixtureEM
from ..errors import ConvergenceWarning, DataError, SelectionWarning
from ..validation import check_criterion, check_ks, check_X

__all__ = ["SelectionResult", "select_n_components"]

#: the seed used when ``random_seed`` is None: the same data give the same answer
DEFAULT_SEED = 0


@dataclass
class SelectionResult:
    """Outcome of :func:`select_n_components`.

    Behaves as the pair ``(table, best_k)``: it unpacks as
    ``table, best_k = select_n_components(...)``, ``result[0]`` is the table,
    ``result[1]`` the best k, and ``len(result)`` is 2. The other fields are attributes.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per k: ``k``, ``loglik``, ``bic``, ``aic``, ``n_parameters``,
        ``converged``, ``degenerate``.
    best_k : int
        The k with the lowest criterion among non-degenerate fits.
    criterion : str
        ``"bic"`` or ``"aic"``.
    models : dict of int to GaussianMixtureEM
        The fitted model for each k.
    """

    table: Any
    best_k: int
    criterion: str
    models: dict[int, GaussianMixtureEM] = field(repr=False)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.table, self.best_k))

    def __getitem__(self, index: int | slice) -> Any:
        return (self.table, self.best_k)[index]

    def __len__(self) -> int:
        return 2

    def best(self, criterion: str) -> int:
        """The k chosen by ``criterion`` (``"bic"`` or ``"aic"``) from the same fits."""
        check_criterion(criterion)
        ok = self.table[~self.table["degenerate"]]
        return int(ok.loc[ok[criterion].idxmin(), "k"])

    @property
    def best_model(self) -> GaussianMixtureEM:
        """The fitted model with ``best_k`` components."""
        return self.models[self.best_k]


def select_n_components(
    X: Any,
    ks: Iterable[int] = range(1, 11),
    *,
    X_err: Any = None,
    sample_weight: Any = None,
    criterion: Literal["bic", "aic"] = "bic",
    covariance_type: str = "full",
    n_init: int = 5,
    random_seed: int | np.random.Generator | None = None,
    **em_kwargs: Any,
) -> SelectionResult:
    """Fit a mixture for each k by EM and rank them by BIC or AIC.

    A k whose every start collapsed onto repeated points (unbounded likelihood) is
    reported with ``degenerate=True`` and never chosen. The answer is deterministic: with
    ``random_seed=None`` a fixed seed is used, and each k gets its own stream derived
    from the seed and k, so a k's fit does not depend on which other ks are tried.

    Warns (:class:`~bayesgmm.errors.SelectionWarning`) when the best k is at the edge of
    ``ks``: the largest k tried, or the smallest when it is above 1, since a k outside
    the range might be better still; and (:class:`~bayesgmm.ConvergenceWarning`) when
    the EM fit of a k did not converge and more iterations could change the choice: the
    chosen k, or one whose criterion could still fall below the best one's by ten times
    the gain extrapolated from its last tenth of iterations (the pace kept for as long
    again, or the geometric series of its shrinking steps, whichever is smaller). A k
    larger than needed often creeps along a flat ridge without converging; that is
    recorded in the table's ``converged`` column, without a warning, when it cannot
    matter.

    Parameters
    ----------
    X : array-like of shape (n_samples,) or (n_samples, n_features)
    ks : iterable of int, default=range(1, 11)
        Numbers of components to try; those above the number of points are skipped.
    X_err : array-like, optional
        Measurement errors, as in :meth:`GaussianMixtureEM.fit`.
    sample_weight : array-like of shape (n_samples,), optional
    criterion : {"bic", "aic"}, default="bic"
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    n_init : int, default=5
        Starts per k.
    random_seed : int, numpy.random.Generator or None, default=None
        Seed for the EM starts. None uses a fixed seed (0), so the same data give the
        same answer; a Generator is drawn from in turn for each k.
    **em_kwargs
        Passed on to :class:`GaussianMixtureEM` (``tol``, ``max_iter``, ``reg_covar``...).

    Returns
    -------
    SelectionResult
        ``table`` (a DataFrame with k, loglik, bic, aic, converged) and ``best_k``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import select_n_components
    >>> rng = np.random.default_rng(1)
    >>> x = np.concatenate([rng.normal(0, 1, 400), rng.normal(6, 1, 400)])
    >>> table, best_k = select_n_components(x, range(1, 5), random_seed=0)
    >>> best_k
    2
    """
    import pandas as pd

    check_criterion(criterion)
    from ..em.out_of_core import is_dask

    # NaN: missing features, which EM marginalises; a Dask array is fitted out of core
    # (em.out_of_core), checked block by block there
    X = X if is_dask(X) else check_X(X, allow_nan=True)
    ks, usable = check_ks(ks, X.shape[0])
    seed = DEFAULT_SEED if random_seed is None else random_seed
    rows, models = [], {}
    for k in usable:
        # a Generator is shared; an integer seed gives each k its own stream
        k_seed = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
            [int(seed), k])
        gm = GaussianMixtureEM(
            k, covariance_type=covariance_type, n_init=n_init, random_seed=k_seed, **em_kwargs
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(X, X_err=X_err, sample_weight=sample_weight)
            if k - 1 in models:
                gm = _not_below(gm, models[k - 1], X, X_err, sample_weight, em_kwargs)
        bic, aic = gm._fit_criteria()  # n = sum of the weights: see _information_criteria
        rows.append({
            "k": k,
            "loglik": gm.loglik_,
            "bic": bic,
            "aic": aic,
            "n_parameters": gm._n_parameters(),
            "converged": bool(gm.converged_),
            "degenerate": bool(gm.degenerate_),
        })
        models[k] = gm
    table = pd.DataFrame(rows)
    ok = table[~table["degenerate"]]
    if ok.empty:
        raise DataError(
            "every candidate k gave a degenerate fit (components collapsed onto repeated "
            "points); try smaller k, more starts, or a larger reg_covar."
        )
    best_k = int(ok.loc[ok[criterion].idxmin(), "k"])
    _warn_selection(table, models, best_k, usable, criterion, em_kwargs.get("max_iter", 1000))
    return SelectionResult(table=table, best_k=best_k, criterion=criterion, models=models)


def _not_below(gm: GaussianMixtureEM, smaller: GaussianMixtureEM, X: Any, X_err: Any,
               sample_weight: Any, em_kwargs: dict) -> GaussianMixtureEM:
    """The k fit, or a better one grown from the k - 1 fit when k's fell below it.

    A mixture with one component more can always do at least as well: split any
    component of the k - 1 fit in two. When the k fit ends lower, EM is run again from
    each such split (along the component's widest axis, keeping its moments), and
    as a last resort from the k - 1 fit with one component doubled (two identical
    halves: exactly the k - 1 likelihood, which EM cannot lower). The log-likelihood
    over k is then never decreasing, which the table and BIC rely on.
    """
    from ..em.search import split

    if gm.degenerate_ or smaller.degenerate_ or gm.loglik_ >= smaller.loglik_:
        return gm
    k = gm.n_components
    kw = {key: v for key, v in em_kwargs.items() if key not in ("init", "n_init")}
    w, mu, cov = smaller.weights_, smaller.means_, smaller.covariances_

    def grown(j: int, halves: tuple) -> GaussianMixtureEM | None:
        rest = [c for c in range(k - 1) if c != j]
        init = {"weights": np.concatenate([w[rest], halves[0]]),
                "means": np.concatenate([mu[rest], halves[1]]),
                "covariances": np.concatenate([cov[rest], halves[2]])}
        cand = GaussianMixtureEM(k, covariance_type=gm.covariance_type, init=init, **kw)
        cand.fit(X, X_err=X_err, sample_weight=sample_weight)
        return None if cand.degenerate_ else cand

    candidates = [grown(j, split(w[j], mu[j], cov[j], floor=1e-12)) for j in range(k - 1)]
    # rounding: the same likelihood summed over k components instead of k - 1
    floor = smaller.loglik_ - 1e-9 * abs(smaller.loglik_)
    if not any(c is not None and c.loglik_ >= floor for c in candidates):
        doubled = (np.full(2, w[0] / 2), np.repeat(mu[:1], 2, axis=0),
                   np.repeat(cov[:1], 2, axis=0))
        candidates.append(grown(0, doubled))
    return max([gm, *(c for c in candidates if c is not None)], key=lambda m: m.loglik_)


def _warn_selection(table: Any, models: dict[int, GaussianMixtureEM], best_k: int,
                    usable: list[int], criterion: str, max_iter: int) -> None:
    """Warn when the best k is at the edge of the range or a k's EM did not converge."""
    name = criterion.upper()
    if len(usable) > 1 and best_k == usable[-1]:
        warnings.warn(
            f"the best k by {name}, {best_k}, is the largest one tried: a larger k may be "
            f"better still. Try k up to {2 * best_k} or so (ks=range(1, {2 * best_k + 1}); "
            f"bayesgmm select --k-max {2 * best_k}), or accept that the data keep "
            "asking for more components (a skewed or heavy-tailed group is often fitted "
            "by several Gaussians).",
            SelectionWarning,
            stacklevel=3,
        )
    elif len(usable) > 1 and best_k == usable[0] and best_k > 1:
        warnings.warn(
            f"the best k by {name}, {best_k}, is the smallest one tried: a smaller k may be "
            f"better still. Include ks from 1 (ks=range(1, {usable[-1] + 1})).",
            SelectionWarning,
            stacklevel=3,
        )
    best_crit = float(table.loc[table["k"] == best_k, criterion].iloc[0])
    risky = []
    for row in table[~table["converged"] & ~table["degenerate"]].itertuples():
        gain = _remaining_gain(models[int(row.k)].loglik_trace_)
        # EM only raises the log-likelihood: a k whose criterion could still fall below
        # the best one's may change the choice; the chosen k itself is returned, so it
        # must have converged too
        if row.k == best_k or getattr(row, criterion) - 2 * gain < best_crit:
            what = "the chosen k" if row.k == best_k else f"{name} {getattr(row, criterion):.6g}"
            risky.append(f"k = {int(row.k)} ({what})")
    if risky:
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations for "
            f"{', '.join(risky)}; with the best k at {best_k} ({name} {best_crit:.6g}), "
            "more iterations could change the choice or the chosen fit. Pass a larger "
            "max_iter (or a looser tol) to select_n_components.",
            ConvergenceWarning,
            stacklevel=3,
        )


def _remaining_gain(trace: np.ndarray, runs: float = 10.0) -> float:
    """Log-likelihood a stopped EM run could still gain, generously estimated.

    ``runs`` times the smaller of two estimates from the last tenth of its iterations:
    another run as long as this one at that pace, and, when the steps shrink
    geometrically (as EM's do near a maximum), the rest of the geometric series.
    """
    steps = np.diff(np.asarray(trace, dtype=float))
    if steps.size < 2:
        return float("inf")
    m = max(1, (steps.size - 1) // 10)
    linear = steps.size * max(float(steps[-m:].sum()), 0.0) / m
    last, before = float(steps[-1]), float(steps[-1 - m])
    if last <= 0:
        geometric = 0.0
    elif 0 < last < before:
        rate = (last / before) ** (1.0 / m)
        geometric = last * rate / (1.0 - rate)
    else:
        geometric = float("inf")
    return float(runs * min(linear, geometric))
