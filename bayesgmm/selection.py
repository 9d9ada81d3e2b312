"""Choosing the number of components: BIC/AIC over EM fits."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .data import check_X
from .em import GaussianMixtureEM
from .errors import ConvergenceWarning, DataError

__all__ = ["SelectionResult", "select_n_components"]


@dataclass
class SelectionResult:
    """Outcome of :func:`select_n_components`.

    Unpacks as ``table, best_k = select_n_components(...)``.

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

    def best(self, criterion: str) -> int:
        """The k chosen by ``criterion`` (``"bic"`` or ``"aic"``) from the same fits."""
        if criterion not in ("bic", "aic"):
            raise DataError(f"criterion must be 'bic' or 'aic'; got {criterion!r}.")
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
    reported with ``degenerate=True`` and never chosen.

    Parameters
    ----------
    X : array-like of shape (n_samples,) or (n_samples, n_features)
    ks : iterable of int, default=range(1, 11)
        Numbers of components to try; those above the number of points are skipped.
    X_err : array-like, optional
        Measurement errors, as in :meth:`GaussianMixtureEM.fit`.
    sample_weight : array-like of shape (n_samples,), optional
    criterion : {"bic", "aic"}, default="bic"
    covariance_type : {"full", "diag", "spherical"}, default="full"
    n_init : int, default=5
        Starts per k.
    random_seed : int, numpy.random.Generator or None
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

    if criterion not in ("bic", "aic"):
        raise DataError(f"criterion must be 'bic' or 'aic'; got {criterion!r}.")
    X = check_X(X)
    n = X.shape[0]
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise DataError(f"ks must be integers >= 1; got {ks!r}.")
    usable = [k for k in ks if k <= n]
    if not usable:
        raise DataError(f"every k in {ks} exceeds the number of samples ({n}).")
    rng = np.random.default_rng(random_seed)
    rows, models = [], {}
    for k in usable:
        gm = GaussianMixtureEM(
            k, covariance_type=covariance_type, n_init=n_init, random_seed=rng, **em_kwargs
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(X, X_err=X_err, sample_weight=sample_weight)
        p = gm._n_parameters()
        n_eff = gm.n_samples_fit_
        rows.append({
            "k": k,
            "loglik": gm.loglik_,
            "bic": -2 * gm.loglik_ + p * np.log(n_eff),
            "aic": -2 * gm.loglik_ + 2 * p,
            "n_parameters": p,
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
    return SelectionResult(table=table, best_k=best_k, criterion=criterion, models=models)
