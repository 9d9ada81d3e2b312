"""Maximum-likelihood Gaussian mixtures by EM, with optional per-point measurement errors.

Plain EM follows the usual E/M steps (Dempster, Laird & Rubin 1977; scikit-learn's
``GaussianMixture``). With measurement errors it is extreme deconvolution (Bovy, Hogg &
Roweis 2011): the density of point i under component k is N(x_i | mu_k, V_k + S_i) and
the M-step uses the latent true values' posterior moments (b_ik, B_ik), an explicit
update. This module is the estimator: checks, standardization, the choice among starts,
predictions. The starts are :mod:`bayesgmm.em.init`'s, the iteration and its loop
:mod:`bayesgmm.em.iteration`'s, the hot loops :mod:`bayesgmm.em.kernels`'.

Inside, data are standardized per feature (``(X - loc) / scale``) so that offsets such as
1e9 and tiny or huge scales cost no precision; everything exposed is in data units.

Why one module of ~600 lines: scikit-learn's estimator contract puts the parameters,
``fit`` and every prediction on one class (scikit-learn's own ``GaussianMixture`` and
``BaseMixture`` are one long class for the same reason), and over 250 of its lines
are docstrings. What is not a method of it (the starts, the iteration, the kernels)
already lives in its own module.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import NotFittedError as _SkNotFittedError
from sklearn.utils import Tags
from sklearn.utils.validation import validate_data

from .._numerics.standardize import _standardizer
from ..errors import ConvergenceWarning, DataError
from ..validation import check_errors, check_fit_scale, check_sample_weight, check_X
from . import kernels as kern
from .fixed import Fixed
from .fixed import parse as parse_fixed
from .init import starts
from .iteration import (
    COLLAPSE_FLOOR,
    LOOSE_TOL,
    Params,
    polish,
    run,
    steppers,
    weighted_log_prob,
)
from .missing import Missing, nan_standardizer, observed_log_scale
from .out_of_core import is_dask
from .search import search

__all__ = ["GaussianMixtureEM", "NotFittedError"]

#: starts run on from the loose tolerance to ``tol``: the highest ones (ties between
#: the leaders' maxima show only at the tight tolerance)
N_POLISH = 2

CovarianceType = Literal["full", "tied", "diag", "spherical"]
_COV_TYPES = ("full", "tied", "diag", "spherical")
#: distance (in data standard deviations) standing in for points too far out to score
_FAR = 1e100


def _has_nan(X: Any) -> bool:
    """Whether ``X`` holds a NaN (False for anything not numeric: checked later)."""
    try:
        return bool(np.isnan(np.asarray(X, dtype=float)).any())
    except (TypeError, ValueError):
        return False


class NotFittedError(DataError, _SkNotFittedError):
    """A method that needs a fitted mixture was called before ``fit``.

    Both a :class:`~bayesgmm.DataError` and scikit-learn's ``NotFittedError`` (itself a
    ``ValueError`` and an ``AttributeError``), so handlers of either catch it. Also
    importable as ``bayesgmm.errors.NotFittedError``.
    """


def _information_criteria(loglik: float, n_parameters: int, n: float) -> tuple[float, float]:
    """BIC and AIC, ``-2 loglik + n_parameters log n`` and ``-2 loglik + 2 n_parameters``.

    The one definition behind :meth:`GaussianMixtureEM.bic` and ``aic``, the table of
    :func:`select_n_components` and the ``bic`` of ``fit``'s ``em_estimate``, so that the
    three cannot drift apart. ``loglik`` is the total (weighted) log-likelihood in data
    units; ``n`` the number of points, or the sum of the weights (weights count points).

    With missing values ``n`` is still the number of points, not the number of observed
    entries. BIC's log n comes from the Laplace approximation, where the log-likelihood's
    curvature grows like n; with missing features that curvature grows, per parameter,
    with the points observing its features, so no single count is exact. The number of
    points keeps BIC's usual meaning (independent observations are the points, a row's
    features are not independent), is what scikit-learn and mclust use, and keeps the
    criterion of data without NaN unchanged; the observed-entry count would add log D
    to every parameter's penalty even for complete data, which no BIC has.
    """
    return (float(-2 * loglik + n_parameters * np.log(n)),
            float(-2 * loglik + 2 * n_parameters))


class GaussianMixtureEM(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by maximum likelihood (EM), with optional measurement errors.

    A scikit-learn estimator, like ``sklearn.mixture.GaussianMixture``: ``__init__``
    stores the arguments, :meth:`fit` returns ``self``, fitted state ends in ``_``; it
    works in pipelines, grid searches and ``clone``, passes scikit-learn's estimator
    checks (``tests/test_sklearn_api.py`` lists the intended differences), and takes
    ``X_err`` and ``sample_weight`` through metadata routing
    (``set_fit_request(X_err=True)``). Unlike scikit-learn it takes per-point
    measurement errors (extreme deconvolution) and per-point weights, works on
    standardized data inside, and never reports a collapsed component (one sitting on
    repeated points) as the maximum. A 1-D ``X`` is one feature (a column of
    measurements); after a fit on one feature, 1-D input to the other methods is too.
    With two or more features, a NaN in ``X`` is a missing value, marginalised exactly
    in every method (a point counts by its observed features; :meth:`fit` says how).

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components K.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Form of each component's (intrinsic) covariance: its own full matrix, one full
        matrix shared by all components ("tied", mclust's EEE), or its own diagonal or
        multiple of the identity. ``covariances_`` holds K matrices in every case (K
        equal ones when tied), not scikit-learn's per-type shapes.
    tol : float, default=1e-8
        Convergence threshold on the change of the mean log-likelihood per point
        (weighted) between iterations. Much tighter than scikit-learn's 1e-3: EM creeps
        along flat ridges where overlapping components meet, and the estimate is used to
        check a posterior, so it must be the maximum, not a point on the way. Every
        start runs to 1e-5 first, and the two highest are run on to ``tol``: the
        creeping end of a run is paid for twice, not once per start.
    max_iter : int, default=1000
        Maximum EM iterations per start.
    n_init : int, default=5
        Number of starts; the best non-degenerate one is kept. scikit-learn's default
        is 1, which often stops at a local maximum.
    init : {"kmeans++", "random"} or dict, default="kmeans++"
        ``"kmeans++"``: greedy k-means++ seeding refined by Lloyd steps, then one hard
        M-step; besides these ``n_init`` starts, one more splits the points by local
        density (distance to a near neighbour), so that components sharing a centre
        but differing in width, which k-means cannot separate, are found too (with
        at least 10 K points), and one more comes from Ward's agglomerative
        clustering of up to 1,000 points (model-based hierarchical agglomeration for
        spherical components, the family of mclust's starts), which keeps small tight
        groups that k-means seeding splits or swallows: EM runs ``n_init + 2`` times
        for K >= 2.
        ``"random"``: means drawn from the data, every covariance the data's
        covariance, equal weights. A dict with ``"means"`` (K, D) and optionally
        ``"weights"`` (K,) and ``"covariances"`` (K, D, D), in data units, starts there
        (then only one start is made).
    reg_covar : float, default=1e-9
        Added to the diagonal of every covariance, in units of each feature's variance
        (the data are standardized inside), so it does not depend on the data's units.
        A component whose covariance falls below it has collapsed onto a few points; the
        default resolves components down to 3e-5 of the data's standard deviation and
        biases a component 1/100 as wide as the data by 1e-5 of its variance. (scikit-
        learn's 1e-6 is absolute, in the data's units.)
    random_seed : int, numpy.random.Generator or None, default=None
        Seed for the initialisation.
    n_screen : int or "auto", default="auto"
        After the starts, this many random starts (means at data points) are run
        for 20 iterations on up to 2,000 of the points, and the best five are run
        to convergence on all of them ("emEM", Biernacki, Celeux & Govaert 2003):
        random starts reach maxima that k-means seeding misses. ``"auto"``: 50 on
        2,000 points or more, and on n < 2,000 points the same work's worth,
        50 * 2,000 / n starts (at most 600): small data sets with many parameters
        have the most local maxima, and there a start is cheapest. 0 turns it off.
    split_merge : bool, default=True
        Then try split-and-merge moves from the best run (Ueda et al. 2000: merge
        two components that share points, then split one that covers too much or
        start one where the fit is poorest, and run EM again), repeating from each
        improvement. This leaves local maxima that no start near them can.

        Both keep a result only when it is higher and makes no sliver: no
        component on fewer than D + 1 points' weight or narrower than 1e-6 of the
        data's variance in some direction (a spurious maximum on a few tied or
        nearly collinear points), unless the best start's run has one already.
        Neither is done for K = 1 or for a start given as a dict (``init``), which
        is then kept as the user's choice.
    fixed : dict, optional
        Parameters held at known values, in data units: ``{"weights": {k: w_k},
        "means": {k: mean_k}, "covariances": {k: cov_k}}``, each keyed by component
        index (or a sequence giving every component), e.g. a known background
        component. EM's M-step keeps them and rescales the free weights to share what
        the fixed ones leave (the constrained maximum; EM still climbs). Covariances
        are intrinsic (with ``X_err``, the errors are added on top); for ``"diag"``
        and ``"spherical"`` they must have that form. Fixed entries are not counted
        as parameters in :meth:`bic` and :meth:`aic`.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray of shape (n_components, n_features, n_features)
        Intrinsic covariances (measurement errors removed when ``X_err`` was given).
    loglik_ : float
        Total log-likelihood of the fitted data, sum_i w_i log p(x_i | theta), with
        measurement errors included.
    loglik_trace_ : ndarray of shape (n_iter_,)
        Total log-likelihood at each iteration of the best start.
    n_iter_ : int
    converged_ : bool
    degenerate_ : bool
        True when every start ended with a collapsed component (then the best
        degenerate one is kept and a warning is given).
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when :meth:`fit` got a DataFrame whose column names are all
        strings; other methods then check them as scikit-learn does (renamed or
        reordered columns raise an error).
    n_samples_fit_ : float
        Sum of the sample weights (the number of points when unweighted).
    n_search_kept_ : int
        How many times the search after the starts (``n_screen``, ``split_merge``)
        found a higher maximum that replaced the best start's (0: the best start's
        stands).
    n_passes_ : int
        Only after a fit on a Dask array: the passes over the data that EM's
        iterations made (:mod:`bayesgmm.em.out_of_core`; the standardization and the
        sample take one more each).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixtureEM
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, 300), rng.normal(5, 1, 200)])
    >>> gm = GaussianMixtureEM(2, random_seed=0).fit(x)   # 1-D x: one feature
    >>> np.sort(gm.means_.ravel()).round().astype(int)
    array([0, 5])
    >>> gm.predict([-1.0, 6.0], X_err=[0.5, 0.5]).tolist() == gm.predict([-1.0, 6.0]).tolist()
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: CovarianceType = "full",
        tol: float = 1e-8,
        max_iter: int = 1000,
        n_init: int = 5,
        init: str | dict = "kmeans++",
        reg_covar: float = 1e-9,
        random_seed: int | np.random.Generator | None = None,
        n_screen: int | str = "auto",
        split_merge: bool = True,
        fixed: dict | None = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init = init
        self.reg_covar = reg_covar
        self.random_seed = random_seed
        self.n_screen = n_screen
        self.split_merge = split_merge
        self.fixed = fixed

    # ------------------------------------------------------------------ sklearn API

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN: a missing feature, marginalised; inf: DataError
        tags.input_tags.sparse = False  # dense covariances: sparse X gets a DataError
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "means_")

    def set_params(self, **params: Any) -> GaussianMixtureEM:
        """Set parameters by name, as scikit-learn's ``set_params`` (grid searches use it).

        Parameters
        ----------
        **params
            New values, e.g. ``n_components=3``. Their values are checked by :meth:`fit`,
            as those given to ``__init__`` are.

        Returns
        -------
        GaussianMixtureEM
            ``self``.

        Raises
        ------
        DataError
            For a name that is not one of the parameters (a ``ValueError``, as
            scikit-learn raises); the message lists the valid ones.
        """
        import difflib

        valid = self._get_param_names()
        unknown = [name for name in params if name not in valid]
        if unknown:
            close = difflib.get_close_matches(unknown[0], valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"{type(self).__name__} has no parameter "
                f"{', '.join(repr(n) for n in unknown)}; valid parameters are: "
                f"{', '.join(valid)}.{hint}"
            )
        return super().set_params(**params)

    @classmethod
    def from_params(
        cls,
        weights: Any,
        means: Any,
        covariances: Any,
        *,
        covariance_type: CovarianceType = "full",
    ) -> GaussianMixtureEM:
        """A mixture with given parameters, ready to score, predict and sample.

        Use it to evaluate known parameters (a simulation's truth, published values)
        with the same methods as a fitted model.

        Parameters
        ----------
        weights : array-like of shape (n_components,)
        means : array-like of shape (n_components,) or (n_components, n_features)
        covariances : array-like of shape (n_components,), (n_components, n_features) or
            (n_components, n_features, n_features)
            Variances (1-D input), diagonal variances, or full covariance matrices.

        Returns
        -------
        GaussianMixtureEM
        """
        w = np.asarray(weights, dtype=float).ravel()
        K = w.size
        m = np.asarray(means, dtype=float).reshape(K, -1)
        d = m.shape[1]
        c = np.asarray(covariances, dtype=float)
        if c.shape in ((K,), (K, 1), (K, 1, 1)) and d == 1:
            c = c.reshape(K, 1, 1)
        elif c.shape == (K, d):
            c = np.stack([np.diag(ci) for ci in c])
        elif c.shape != (K, d, d):
            raise DataError(
                f"covariances must have shape ({K},), ({K}, {d}) or ({K}, {d}, {d}); "
                f"got {c.shape}."
            )
        if np.any(w <= 0) or not np.isclose(w.sum(), 1.0):
            raise DataError("weights must be positive and sum to 1.")
        if np.any(np.linalg.eigvalsh(c)[:, 0] <= 0):
            raise DataError("covariances must be positive definite.")
        gm = cls(K, covariance_type=covariance_type)
        gm.weights_, gm.means_, gm.covariances_ = w, m, c
        gm.n_features_in_ = d
        gm._loc, gm._scale = np.zeros(d), np.ones(d)
        gm.converged_, gm.n_iter_, gm.degenerate_ = True, 0, False
        return gm

    # ------------------------------------------------------------------ fitting

    def fit(
        self, X: Any, y: Any = None, *, X_err: Any = None, sample_weight: Any = None
    ) -> GaussianMixtureEM:
        """Fit the mixture by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            A 1-D array is one feature. Column names of a DataFrame are kept in
            ``feature_names_in_``. NaN marks a missing value (with two or more
            features): it is marginalised exactly, i.e. a point contributes the
            likelihood of its observed features only, and its missing ones are
            filled in by the E-step from the components (EM for incomplete data).
            A row with every feature missing, and any infinite value, is a
            ``DataError``. A Dask array (rows in blocks) is fitted out of core, one
            pass over its blocks per iteration, starting from a fit to a random
            sample of its rows (:mod:`bayesgmm.em.out_of_core`), missing values and
            ``fixed`` parameters included.
        y : None
            Ignored; there for scikit-learn's API (pipelines pass labels here).
        X_err : array-like, optional
            Measurement errors: standard deviations of shape (n_samples,) or
            (n_samples, n_features), or covariances of shape
            (n_samples, n_features, n_features). Zero errors give plain EM. The
            entries of a point's missing features are ignored (they may be NaN).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights, e.g. counts of repeated or binned values.

        Returns
        -------
        self : GaussianMixtureEM
        """
        self._check_params()
        if is_dask(X) or is_dask(X_err) or is_dask(sample_weight):
            return self._fit_dask(X, X_err, sample_weight)
        X = self._validate_X(X, reset=True)
        check_fit_scale(X)
        n, d = X.shape
        K = int(self.n_components)
        if K > n:
            raise DataError(
                f"n_components={K} exceeds the number of samples ({n}); use at most {n} "
                "components, or more data."
            )
        w = check_sample_weight(sample_weight, n)
        nan = np.isnan(X)
        has_nan = bool(nan.any())
        S = None if X_err is None else check_errors(X_err, n, d,
                                                    missing=nan if has_nan else None)
        if S is not None and not np.any(S):
            S = None  # all-zero errors: exactly plain EM
        rng = np.random.default_rng(self.random_seed)

        # missing values: weighted mean and sd over each feature's observed values
        loc, scale = nan_standardizer(X, w) if has_nan else _standardizer(X, w)
        if self.covariance_type == "spherical":
            # one common scale keeps spherical components spherical in data units
            scale = np.full_like(scale, np.sqrt(np.mean(scale**2)))
        Z = (X - loc) / scale
        Sz = None if S is None else S / np.outer(scale, scale)
        self._loc, self._scale = loc, scale
        parsed = parse_fixed(self.fixed, K, d, self.covariance_type)
        fixed = None if parsed is None else Fixed(parsed, loc, scale, self.covariance_type)
        self._fixed = fixed
        # the starts see missing values at their feature's mean (0 in these units); EM
        # itself marginalises them
        Z0 = np.where(nan, 0.0, Z) if has_nan else Z

        kw = {"covariance_type": self.covariance_type, "reg": float(self.reg_covar),
              "max_iter": self.max_iter, "fixed": fixed}
        with steppers():  # every run on these arrays shares one data layout
            # every start to a loose tolerance, then the leaders on to tol (polish): the
            # ridge-creeping end of a run is paid for twice, not n_init + 2 times
            runs = [run(Z, w, Sz, p, tol=max(self.tol, LOOSE_TOL), **kw)
                    for p in starts(Z0, w, Sz, K, self.init, self.n_init, rng, self.reg_covar,
                                    loc, scale)]
            ranked = sorted(range(len(runs)), key=lambda i: -runs[i].loglik
                            if not runs[i].degenerate and np.isfinite(runs[i].loglik) else np.inf)
            for i in ranked[:N_POLISH]:
                runs[i] = polish(Z, w, Sz, runs[i], tol=self.tol, **kw)
            good = [r for r in runs if not r.degenerate]
            pool = good if good else runs
            best = max(pool, key=lambda r: r.loglik if np.isfinite(r.loglik) else -np.inf)
            if all(best is not runs[i] for i in ranked[:N_POLISH]):
                # the leaders collapsed on the way to tol: the best left is polished too
                best = polish(Z, w, Sz, best, tol=self.tol, **kw)
            moved = 0
            if good and K >= 2 and not isinstance(self.init, dict):
                best, moved = search(Z, w, Sz, best, rng, covariance_type=self.covariance_type,
                                     reg=float(self.reg_covar), tol=self.tol,
                                     max_iter=self.max_iter, n_screen=self.n_screen,
                                     moves=self.split_merge, fixed=fixed)

        shift = w.sum() * np.log(scale).sum()  # Jacobian of the standardization
        if has_nan:  # a point's density is over its observed features only
            shift = float(np.sum(w * observed_log_scale(X, scale)))
        p = best.params
        self.weights_ = p.weights.copy()
        self.means_ = loc + p.means * scale
        self.covariances_ = p.covs * np.outer(scale, scale)
        self._set_fixed_exactly(parsed)
        self.loglik_ = float(best.loglik - shift)
        self.loglik_trace_ = np.asarray(best.trace) - shift
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self.degenerate_ = not good
        self.n_search_kept_ = moved
        self.n_features_in_ = d
        self.n_samples_fit_ = float(w.sum())
        self.has_errors_ = S is not None
        for left in ("n_passes_", "_n_missing"):  # left by an earlier fit on a Dask array
            if hasattr(self, left):
                delattr(self, left)
        self._warn_if_failed(good=bool(good), converged=best.converged, n_runs=len(runs))
        return self

    def _set_fixed_exactly(self, parsed: dict | None) -> None:
        """Set the fixed parameters to exactly the values given.

        Not their round trip through the standardized units.
        """
        if parsed is None:
            return
        for k, v in parsed["weights"].items():
            self.weights_[k] = v
        for k, v in parsed["means"].items():
            self.means_[k] = v
        for k, v in parsed["covariances"].items():
            self.covariances_[k] = v

    def _fit_dask(self, X: Any, X_err: Any, sample_weight: Any) -> GaussianMixtureEM:
        """:meth:`fit` on Dask arrays, out of core (:mod:`bayesgmm.em.out_of_core`)."""
        from .out_of_core import fit as fit_dask

        out = fit_dask(self, X, X_err, sample_weight)
        names = out.pop("feature_names_in_")
        run_ = out.pop("run")
        self.n_passes_ = out.pop("n_passes")
        parsed = out.pop("parsed_fixed")
        for name, value in out.items():
            setattr(self, name, value)
        self._set_fixed_exactly(parsed)
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._warn_if_failed(good=not run_.degenerate, converged=run_.converged, n_runs=1)
        return self

    def _warn_if_failed(self, *, good: bool, converged: bool, n_runs: int) -> None:
        """The fit's ConvergenceWarning: every run collapsed, or the best did not converge."""
        if not good:
            warnings.warn(
                f"every one of {n_runs} start(s) ended with a component collapsed onto "
                "a few (repeated) points, where the likelihood is unbounded; the estimate is "
                "degenerate. Use fewer components, more starts (n_init), or a larger "
                f"reg_covar; if a component is really that narrow (width below "
                f"{np.sqrt(self.reg_covar or COLLAPSE_FLOOR):.1g} of the data's "
                "spread), a smaller reg_covar.",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif not converged:
            warnings.warn(
                f"EM did not converge in {self.max_iter} iterations (change in mean "
                f"log-likelihood still above tol={self.tol:g}). Increase max_iter, loosen "
                "tol, or try other starts.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def fit_predict(
        self, X: Any, y: Any = None, *, X_err: Any = None, sample_weight: Any = None
    ) -> np.ndarray:
        """Fit the mixture and return the most probable component of each point.

        Parameters are as in :meth:`fit`; ``y`` is ignored.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, X_err=X_err, sample_weight=sample_weight).predict(X, X_err=X_err)

    def _check_params(self) -> None:
        K = self.n_components
        if not isinstance(K, int | np.integer) or isinstance(K, bool) or K < 1:
            raise DataError(f"n_components must be an integer >= 1; got {K!r}.")
        if self.covariance_type not in _COV_TYPES:
            raise DataError(
                f"covariance_type must be one of {_COV_TYPES}; got {self.covariance_type!r}."
            )
        if not (self.tol >= 0):
            raise DataError(f"tol must be >= 0; got {self.tol!r}.")
        if not isinstance(self.max_iter, int | np.integer) or self.max_iter < 1:
            raise DataError(f"max_iter must be an integer >= 1; got {self.max_iter!r}.")
        if not isinstance(self.n_init, int | np.integer) or self.n_init < 1:
            raise DataError(f"n_init must be an integer >= 1; got {self.n_init!r}.")
        if not (self.reg_covar >= 0):
            raise DataError(f"reg_covar must be >= 0; got {self.reg_covar!r}.")
        if self.n_screen != "auto" and (
                not isinstance(self.n_screen, int | np.integer)
                or isinstance(self.n_screen, bool) or self.n_screen < 0):
            raise DataError(
                f"n_screen must be 'auto' or an integer >= 0; got {self.n_screen!r}.")
        if not isinstance(self.split_merge, bool | np.bool_):
            raise DataError(f"split_merge must be True or False; got {self.split_merge!r}.")
        if not isinstance(self.init, dict) and self.init not in ("kmeans++", "random"):
            raise DataError(
                f"init must be 'kmeans++', 'random' or a dict of parameters; got {self.init!r}."
            )

    # ------------------------------------------------------------------ predictions

    def _check_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X) first."
            )

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        """Clean ``X`` (check_X), then record (fit) or check feature names and count.

        The names and the count go through scikit-learn's own ``validate_data``, so
        renamed or reordered DataFrame columns raise, and missing names warn, exactly as
        in scikit-learn.
        """
        if reset:
            arr = check_X(X, allow_nan=True)
        else:
            self._check_fitted()
            arr = check_X(X, min_samples=1, n_features=self.n_features_in_, allow_nan=True)
        try:
            validate_data(self, X if hasattr(X, "columns") else arr, reset=reset,
                          skip_check_array=True)
        except ValueError as exc:  # wrong names or number of features: same words
            raise DataError(str(exc)) from None
        return arr

    def _prep(self, X: Any, X_err: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Data (checked), standardized data and standardized error covariances."""
        X = self._validate_X(X, reset=False)
        Z = (X - self._loc) / self._scale
        if X_err is None:
            return X, Z, None
        nan = np.isnan(X)
        S = check_errors(X_err, X.shape[0], X.shape[1], missing=nan if nan.any() else None)
        return X, Z, S / np.outer(self._scale, self._scale)

    def _weighted_log_prob(self, Z: np.ndarray, Sz: np.ndarray | None) -> np.ndarray:
        means = (self.means_ - self._loc) / self._scale
        covs = self.covariances_ / np.outer(self._scale, self._scale)
        return weighted_log_prob(Z, Sz, Params(self.weights_, means, covs))

    def _log_scale(self, X: np.ndarray) -> np.ndarray | float:
        """Jacobian of the standardization per row: over its observed features."""
        if np.isnan(X).any():
            return observed_log_scale(X, self._scale)
        return np.log(self._scale).sum()

    def score_samples(self, X: Any, *, X_err: Any = None) -> np.ndarray:
        """Log density of each point, log p(x_i), errors included when given.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            NaN marks a missing feature: a point's log density is then that of its
            observed features (the marginal of the mixture on them).
        X_err : array-like, optional
            Measurement errors as in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        if is_dask(X) or is_dask(X_err):
            return self._map_dask("score_samples", X, X_err)
        Xc, Z, Sz = self._prep(X, X_err)
        return logsumexp(self._weighted_log_prob(Z, Sz), axis=1) - self._log_scale(Xc)

    def score(
        self, X: Any, y: Any = None, *, X_err: Any = None, sample_weight: Any = None
    ) -> float:
        """Mean (weighted) log-likelihood per point: higher is better.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
        y : None
            Ignored; there for scikit-learn's API.
        X_err : array-like, optional
            Measurement errors as in :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        s = self.score_samples(X, X_err=X_err)
        w = check_sample_weight(sample_weight, s.shape[0])
        return float(np.sum(w * s) / w.sum())

    def predict_proba(self, X: Any, *, X_err: Any = None) -> np.ndarray:
        """Probability of each component given each point, p(j | x_i).

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            NaN marks a missing feature: membership from the observed ones.
        X_err : array-like, optional
            Measurement errors as in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
        """
        if is_dask(X) or is_dask(X_err):
            return self._map_dask("predict_proba", X, X_err)
        Xc, Z, Sz = self._prep(X, X_err)
        lp = self._weighted_log_prob(Z, Sz)
        far = ~np.isfinite(lp.max(axis=1))
        if far.any():
            # so far out that every component's density underflows (|z| > ~1e154): use
            # the limit along the point's direction, reached long before _FAR
            Xf = Xc[far]
            if np.isnan(Xf).any():  # missing features stay missing along the direction
                top = np.nanmax(np.abs(Xf), axis=1, keepdims=True)
                u = (Xf / top - self._loc / top) / self._scale
                u /= np.sqrt(np.nansum(u * u, axis=1, keepdims=True))
            else:
                top = np.max(np.abs(Xf), axis=1, keepdims=True)
                u = (Xf / top - self._loc / top) / self._scale
                u /= np.linalg.norm(u, axis=1, keepdims=True)
            lp[far] = self._weighted_log_prob(_FAR * u, None if Sz is None else Sz[far])
        return np.exp(lp - logsumexp(lp, axis=1, keepdims=True))

    def predict(self, X: Any, *, X_err: Any = None) -> np.ndarray:
        """Most probable component of each point, shape (n_samples,).

        Parameters are as in :meth:`predict_proba`.
        """
        if is_dask(X) or is_dask(X_err):
            return self._map_dask("predict", X, X_err)
        return np.argmax(self.predict_proba(X, X_err=X_err), axis=1)

    def deconvolve(self, X: Any, *, X_err: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and covariance of each point's true (error-free) value.

        The posterior of the true value of point i is a mixture over components of
        N(b_ik, B_ik), b_ik = mu_k + V_k T^-1 (x_i - mu_k), B_ik = V_k - V_k T^-1 V_k,
        T = V_k + S_i, weighted by p(k | x_i). This returns its mean and covariance.
        For a point with missing features (NaN), only its observed features o enter:
        T = V_k[o, o] + S_i[o, o], b_ik = mu_k + V_k[:, o] T^-1 (x_o - mu_k[o]),
        B_ik = V_k - V_k[:, o] T^-1 V_k[o, :], so its missing features are filled in
        from the components it belongs to (with their uncertainty in ``cov``).

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            NaN marks a missing feature.
        X_err : array-like or None
            Measurement errors as in :meth:`fit`. Required when ``X`` has no NaN;
            with missing values, None means exact measurements of the observed
            features (then ``deconvolve`` fills in the missing ones).

        Returns
        -------
        mean : ndarray of shape (n_samples, n_features)
        cov : ndarray of shape (n_samples, n_features, n_features)
        """
        if X_err is None and not _has_nan(X):
            raise DataError("deconvolve needs X_err, the measurement errors of X.")
        if is_dask(X) or is_dask(X_err):
            return (self._map_dask("deconvolve_means", X, X_err),
                    self._map_dask("deconvolve_covariances", X, X_err))
        Xc, Z, Sz = self._prep(X, X_err)
        has_nan = Z.shape[1] > 1 and bool(np.isnan(Z).any())
        if Sz is None:  # missing values, exact observed features
            Sz = np.zeros((Z.shape[0], Z.shape[1], Z.shape[1]))
        lp = self._weighted_log_prob(Z, Sz)
        resp = np.exp(lp - logsumexp(lp, axis=1, keepdims=True))
        means = np.ascontiguousarray((self.means_ - self._loc) / self._scale)
        covs = np.ascontiguousarray(self.covariances_ / np.outer(self._scale, self._scale))
        if has_nan:
            mz, cz = self._deconvolve_missing(Z, Sz, resp, means, covs)
        else:
            mz, cz = kern.kernel("deconvolve_full", Z.shape[0])(Z, Sz, resp, means, covs)
        return self._loc + mz * self._scale, cz * np.outer(self._scale, self._scale)

    @staticmethod
    def _deconvolve_missing(Z, Sz, resp, means, covs):
        """``deconvolve`` in standardized units for data with NaN: two paths, joined."""
        miss = Missing(Z, Sz)
        n, d = Z.shape
        mz, cz = np.empty((n, d)), np.empty((n, d, d))
        keep = miss.complete
        if keep.size:
            mz[keep], cz[keep] = kern.kernel("deconvolve_full", keep.size)(
                np.ascontiguousarray(Z[keep]), np.ascontiguousarray(Sz[keep]),
                np.ascontiguousarray(resp[keep]), means, covs)
        mz[miss.rows], cz[miss.rows] = miss.deconvolve(resp[miss.rows], means, covs)
        return mz, cz

    def _map_dask(self, method: str, X: Any, X_err: Any) -> Any:
        """A prediction on Dask input: the in-memory method on each block, lazily."""
        from .out_of_core import map_predict

        self._check_fitted()
        return map_predict(self, method, X, X_err)

    def _n_parameters(self) -> int:
        K, d = self.n_components, self.n_features_in_
        cov = {"full": K * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": K * d,
               "spherical": K}[self.covariance_type]
        n = int(cov + K * d + K - 1)
        fixed = getattr(self, "_fixed", None)
        if fixed is not None:
            # all K weights fixed remove K - 1 parameters, not K
            n -= fixed.n_fixed(d, self.covariance_type) - max(len(fixed.weights) - (K - 1), 0)
        return n

    def bic(self, X: Any, *, X_err: Any = None, sample_weight: Any = None) -> float:
        """Bayesian information criterion, -2 log L + p log n (lower is better).

        With ``sample_weight``, log L is the weighted log-likelihood and n the sum of
        the weights (weights count repeated points), as in :func:`select_n_components`.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
        X_err : array-like, optional
            Measurement errors as in :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        return self._criteria(X, X_err, sample_weight)[0]

    def aic(self, X: Any, *, X_err: Any = None, sample_weight: Any = None) -> float:
        """Akaike information criterion, -2 log L + 2 p (lower is better).

        ``sample_weight`` weights the log-likelihood, as in :meth:`bic`.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
        X_err : array-like, optional
            Measurement errors as in :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        return self._criteria(X, X_err, sample_weight)[1]

    def _criteria(self, X: Any, X_err: Any, sample_weight: Any) -> tuple[float, float]:
        s = self.score_samples(X, X_err=X_err)
        if sample_weight is None:  # unweighted: the plain sum, as before weights were taken
            return _information_criteria(s.sum(), self._n_parameters(), s.shape[0])
        w = check_sample_weight(sample_weight, s.shape[0])
        return _information_criteria(np.sum(w * s), self._n_parameters(), w.sum())

    def _fit_criteria(self) -> tuple[float, float]:
        """(BIC, AIC) of the fit itself: its log-likelihood ``loglik_`` on its own data."""
        self._check_fitted()
        return _information_criteria(self.loglik_, self._n_parameters(), self.n_samples_fit_)

    def sample(
        self, n_samples: int = 1, *, random_seed: int | np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw from the fitted (intrinsic, error-free) mixture.

        Parameters
        ----------
        n_samples : int, default=1
        random_seed : int, numpy.random.Generator or None, default=None

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
        """
        self._check_fitted()
        if not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise DataError(f"n_samples must be an integer >= 1; got {n_samples!r}.")
        rng = np.random.default_rng(random_seed)
        counts = rng.multinomial(n_samples, self.weights_ / self.weights_.sum())
        X = np.vstack([
            rng.multivariate_normal(m, c, size=int(nk), method="cholesky")
            for m, c, nk in zip(self.means_, self.covariances_, counts, strict=True)
        ])
        labels = np.repeat(np.arange(self.n_components), counts)
        return X, labels


