"""Validation of user input: the only module that checks arrays and arguments.

Everything past these functions can assume clean ``float64`` arrays of consistent shape
(finite, except NaN marking a missing value where the caller allows it). Over 400 lines
because every input check of the package lives here, by design (one place decides what
is accepted and words the error): data and errors, weights, 1-D and D-dim model input,
K, the sampler's arguments, intervals, evaluation points, the selection's options.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._numerics.linalg import first_asymmetric, first_not_above
from .errors import DataError

__all__ = ["check_1d", "check_X", "check_ci_kind", "check_ci_prob", "check_criterion",
           "check_errors", "check_ks", "check_point_errors", "check_points",
           "check_sample_weight", "check_sampling"]


class _DataTypeError(DataError, TypeError):
    """A :class:`DataError` for elements of the wrong type (also a ``TypeError``)."""


def check_X(
    X: Any, *, name: str = "X", min_samples: int = 2, n_features: int | None = None,
    allow_nan: bool = False,
) -> np.ndarray:
    """Return ``X`` as a finite float64 array of shape (n_samples, n_features).

    A 1-D array is read as ``n_samples`` scalar observations (one feature). When
    ``n_features`` is given (a fitted model's), a 1-D array is accepted only if it is 1,
    since a 1-D array could otherwise be one sample or one feature.

    With ``allow_nan`` (EM, which marginalises missing features), NaN marks a missing
    value and is kept; infinite values and rows with every feature missing are still
    errors (with one feature, every NaN is such a row).
    """
    from scipy import sparse

    if sparse.issparse(X):
        raise DataError(
            f"{name} is a sparse matrix; sparse input is not supported (a Gaussian "
            f"mixture's covariances are dense): pass {name}.toarray()."
        )
    arr = _as_float(
        X,
        complex_message=f"Complex data not supported: {name} must be real; got complex "
                        f"values. Pass np.real({name}) if the imaginary part is noise.",
        convert_message=f"{name} must be numeric (array-like of shape (n_samples,) or "
                        "(n_samples, n_features)); could not convert it to float",
        # an element of the wrong type (a dict, None) is also a TypeError, as in numpy
        type_error=_DataTypeError,
    )
    if arr.ndim == 1:
        if n_features not in (None, 1):
            raise DataError(
                f"Expected 2D array, got 1D array instead: {name} has shape {arr.shape} but "
                f"the mixture was fitted on {n_features} features. Reshape your data either "
                "using array.reshape(-1, 1) if your data has a single feature or "
                "array.reshape(1, -1) if it contains a single sample."
            )
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise DataError(
            f"{name} must have shape (n_samples,) or (n_samples, n_features); "
            f"got an array with {arr.ndim} dimensions, shape {arr.shape}."
        )
    if arr.shape[1] == 0:
        raise DataError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required; "
            "pass at least one column."
        )
    if arr.shape[0] < min_samples:
        raise DataError(
            f"{name} has {arr.shape[0]} sample(s); at least {min_samples} are needed"
            + (" to fit a mixture." if min_samples > 1 else ".")
        )
    bad = ~np.isfinite(arr)
    if allow_nan and bad.any() and arr.shape[1] > 1:
        _check_missing(arr, bad, name)
        return np.ascontiguousarray(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first at row "
            f"{int(rows[0])}); drop or impute those rows before fitting."
        )
    return np.ascontiguousarray(arr)



def _as_float(value: Any, *, complex_message: str, convert_message: str,
              type_error: type[DataError] = DataError) -> np.ndarray:
    """``value`` as a float64 array, or a DataError with the caller's message.

    Complex input gets ``complex_message``; what numpy cannot convert gets
    ``convert_message`` followed by numpy's reason, raised as ``type_error`` when numpy
    raised a TypeError (an element of the wrong type) and as DataError otherwise.
    """
    try:
        raw = np.asarray(value)  # ragged input fails here already
        if np.iscomplexobj(raw):
            raise DataError(complex_message)
        return raw.astype(np.float64)
    except DataError:
        raise
    except (TypeError, ValueError) as exc:
        cls = type_error if isinstance(exc, TypeError) else DataError
        raise cls(f"{convert_message}: {exc}") from None

def _check_missing(arr: np.ndarray, bad: np.ndarray, name: str) -> None:
    """Where NaN is allowed (several features): no infinity, no row entirely missing."""
    inf = np.isinf(arr)
    if inf.any():
        rows = np.flatnonzero(inf.any(axis=1))
        raise DataError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first at row "
            f"{int(rows[0])}), {int(inf.sum())} of them infinite: an infinite value cannot "
            "be fitted (a NaN is a missing value and is marginalised); drop or fix the rows "
            "with infinite values."
        )
    empty = np.flatnonzero(bad.all(axis=1))
    if empty.size:
        raise DataError(
            f"{name} has {empty.size} row(s) with every feature missing (NaN), first at row "
            f"{int(empty[0])}; such a row carries no information: drop it (rows with some "
            "features observed are fine, their missing features are marginalised)."
        )


#: Largest |value| and spread, and smallest non-zero spread, a fit accepts: variances
#: (squares) must stay inside float64's range of about 1e-308 to 1e308.
MAX_MAGNITUDE = 1e150


MIN_SPREAD = 1e-150


def check_fit_scale(arr: np.ndarray, *, name: str = "X") -> None:
    """Reject data whose variances float64 cannot hold, saying how to rescale them."""
    nan = np.isnan(arr)
    if nan.any():  # missing values (EM): each feature needs an observed value
        empty = np.flatnonzero(nan.all(axis=0))
        if empty.size:
            raise DataError(
                f"feature {int(empty[0])} of {name} has no observed value (every entry is "
                "NaN); a mixture cannot learn it: drop that column."
            )
        hi, lo = np.nanmax(arr, axis=0), np.nanmin(arr, axis=0)
    else:  # the same values, without nanmax's copies (column by column: NumPy's
        # reduction along axis 0 of a narrow array is ten times slower)
        hi = np.array([arr[:, j].max() for j in range(arr.shape[1])])
        lo = np.array([arr[:, j].min() for j in range(arr.shape[1])])
    top = np.maximum(np.abs(hi), np.abs(lo))
    for j in range(arr.shape[1]):
        col = f"{name}" if arr.shape[1] == 1 else f"feature {j} of {name}"
        if top[j] > MAX_MAGNITUDE:
            k = int(np.floor(np.log10(top[j])))
            raise DataError(
                f"{col} has values up to {top[j]:.3g}, beyond what float64 can square "
                f"(variances must stay below ~1e300); rescale it, e.g. divide by 1e{k}."
            )
        spread = float(hi[j] - lo[j])
        if 0 < spread < MIN_SPREAD:
            k = int(np.floor(np.log10(spread)))
            raise DataError(
                f"{col} spans only {spread:.3g}, too little for float64 to hold its "
                f"variances (below ~1e-300); rescale it, e.g. multiply by 1e{-k} after "
                "subtracting its mean."
            )


def check_errors(X_err: Any, n_samples: int, n_features: int, *, name: str = "X_err",
                 missing: np.ndarray | None = None) -> np.ndarray:
    """Return per-point measurement-error covariances of shape (n, D, D).

    ``X_err`` holds standard deviations of shape (n,) (same error on every
    feature) or (n, D), or full covariance matrices of shape (n, D, D). ``missing``,
    a boolean (n, D) mask of missing features of X, makes the entries of those features
    ignored (any value, NaN included; they are returned as 0).
    """
    err = _as_float(X_err, complex_message=f"{name} must be real; got complex values.",
                    convert_message=f"{name} must be numeric; could not convert it to float")
    n, d = n_samples, n_features
    if missing is not None and missing.any():
        err = _ignore_missing(err, missing, n, d)
    if not np.all(np.isfinite(err)):
        raise DataError(
            f"{name} contains NaN or infinite values; every point needs a finite "
            "measurement error (use 0 for an exact value)."
        )
    top = float(np.max(np.abs(err))) if err.size else 0.0
    limit = MAX_MAGNITUDE**2 if err.ndim == 3 else MAX_MAGNITUDE
    if top > limit:
        k = int(np.floor(np.log10(top if err.ndim < 3 else np.sqrt(top))))
        raise DataError(
            f"{name} has values up to {top:.3g}, beyond what float64 can square or hold "
            f"as a variance; rescale X and {name} together, e.g. divide both by 1e{k}."
        )
    if err.ndim == 1 and err.shape[0] == n or err.ndim == 2 and err.shape == (n, 1):
        sd = err.reshape(n)
        _check_nonneg(sd, name)
        cov = np.zeros((n, d, d))
        idx = np.arange(d)
        cov[:, idx, idx] = (sd**2)[:, None]
        return cov
    if err.ndim == 2 and err.shape == (n, d):
        _check_nonneg(err, name)
        cov = np.zeros((n, d, d))
        idx = np.arange(d)
        cov[:, idx, idx] = err**2
        return cov
    if err.ndim == 3 and err.shape == (n, d, d):
        err = np.ascontiguousarray(err)
        if first_asymmetric(err, 1e-10) >= 0:
            raise DataError(f"{name} covariance matrices must be symmetric.")
        # quick sufficient test: S_i + 1e-10 max(diag) I factors only if S_i's smallest
        # eigenvalue is above -1e-10 max(diag) >= -1e-10 max|eigenvalue| (the test below)
        idx = np.arange(d)
        shift = 1e-10 * np.abs(err[:, idx, idx]).max(axis=1) + np.finfo(float).tiny
        if first_not_above(err, shift) < 0:
            return err
        eig = np.linalg.eigvalsh(err)
        scale = np.maximum(np.abs(eig).max(axis=1), np.finfo(float).tiny)
        if np.any(eig.min(axis=1) < -1e-10 * scale):
            bad = int(np.flatnonzero(eig.min(axis=1) < -1e-10 * scale)[0])
            raise DataError(
                f"{name}[{bad}] is not positive semi-definite; each error covariance "
                "must be a valid covariance matrix."
            )
        return np.ascontiguousarray(err)
    raise DataError(
        f"{name} must have shape ({n},), ({n}, {d}) (standard deviations) or ({n}, {d}, {d}) "
        f"(covariances) to match X of shape ({n}, {d}); got shape {err.shape}."
    )


def _ignore_missing(err: np.ndarray, missing: np.ndarray, n: int, d: int) -> np.ndarray:
    """Error entries of missing features set to 0 (shapes other than these left alone)."""
    err = err.copy()
    if err.shape == (n, d) and d > 1:
        err[missing] = 0.0
    elif err.shape == (n, d, d):
        rows, cols = np.nonzero(missing)
        err[rows, cols, :] = 0.0
        err[rows, :, cols] = 0.0
    return err


def _check_nonneg(sd: np.ndarray, name: str) -> None:
    if np.any(sd < 0):
        i = int(np.flatnonzero(np.ravel(sd) < 0)[0])
        raise DataError(
            f"{name} contains negative standard deviations (first at flat index {i}); "
            "measurement errors must be >= 0."
        )


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray:
    """Return non-negative per-point weights of shape (n_samples,), not all zero."""
    if sample_weight is None:
        return np.ones(n_samples)
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"sample_weight must be numeric: {exc}") from None
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise DataError(
            f"sample_weight must have shape ({n_samples},) to match X; got shape {w.shape}."
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError("sample_weight must be finite and >= 0.")
    if w.sum() <= 0:
        raise DataError("sample_weight sums to zero; at least one point needs a positive weight.")
    return np.ascontiguousarray(w)


def check_1d(X: Any, X_err: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate 1-D data and optional per-point error sds; return flat arrays."""
    X2 = check_X(X)
    check_fit_scale(X2)
    if X2.shape[1] != 1:
        raise DataError(
            f"the Bayesian model takes 1-D data; got {X2.shape[1]} features. Fit each "
            "column separately, or use GaussianMixtureEM for multi-D data."
        )
    x = X2[:, 0].copy()
    if X_err is None:
        return x, None
    cov = check_errors(X_err, x.shape[0], 1)
    e = np.sqrt(cov[:, 0, 0])
    return x, (e if np.any(e > 0) else None)


def _check_k(n_components: Any, n: int) -> int:
    """The number of components of a fit to ``n`` points: an integer in 1..n."""
    if not isinstance(n_components, int | np.integer) or isinstance(n_components, bool) \
            or n_components < 1:
        raise DataError(f"n_components must be an integer >= 1; got {n_components!r}.")
    if n_components > n:
        raise DataError(
            f"n_components={n_components} exceeds the number of points ({n}); use fewer."
        )
    return int(n_components)



def check_sampling(draws: Any, tune: Any, chains: Any, sampler: Any,
                   target_accept: Any) -> None:
    """Check :func:`bayesgmm.fit`'s sampling arguments.

    Parameters
    ----------
    draws, chains : int
        At least 1.
    tune : int
        At least 0.
    sampler : {"nutpie", "pymc", "numpyro", "smc"}
    target_accept : float or None
        In (0, 1), or None.

    Raises
    ------
    DataError
        Naming the first argument out of range.
    """
    for name, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(v, int | np.integer) or v < (0 if name == "tune" else 1):
            raise DataError(f"{name} must be a positive integer; got {v!r}.")
    if sampler not in ("nutpie", "pymc", "numpyro", "smc"):
        raise DataError("sampler must be 'nutpie', 'pymc', 'numpyro' or 'smc'; got "
                        f"{sampler!r}.")
    if sampler == "numpyro":
        import importlib.util

        missing = [m for m in ("jax", "numpyro") if importlib.util.find_spec(m) is None]
        if missing:
            raise DataError(f"sampler='numpyro' needs {' and '.join(missing)}: pip install "
                            "'bayesgmm[jax]' (or jax[cuda12] for a GPU), or use another "
                            "sampler.")
    if target_accept is not None and not 0 < target_accept < 1:
        raise DataError(f"target_accept must be in (0, 1) or None; got {target_accept!r}.")


def check_ci_prob(ci_prob: float | None) -> float:
    """A credible interval's probability: ``ci_prob``, or ArviZ's ``stats.ci_prob``.

    Raises
    ------
    DataError
        Outside (0, 1).
    """
    if ci_prob is None:
        from arviz_base import rcParams

        ci_prob = float(rcParams["stats.ci_prob"])
    if not 0 < ci_prob < 1:
        raise DataError(f"ci_prob must be in (0, 1); got {ci_prob!r}.")
    return ci_prob


def check_ci_kind(ci_kind: str | None) -> str:
    """A credible interval's kind: ``ci_kind``, or ArviZ's ``stats.ci_kind``.

    Raises
    ------
    DataError
        Neither ``"eti"`` nor ``"hdi"``.
    """
    if ci_kind is None:
        from arviz_base import rcParams

        ci_kind = str(rcParams["stats.ci_kind"])
    if ci_kind not in ("eti", "hdi"):
        raise DataError(f"ci_kind must be 'eti' or 'hdi'; got {ci_kind!r}.")
    return ci_kind


def check_points(x: Any, name: str) -> np.ndarray:
    """Points to evaluate a fit at: a finite scalar or 1-D array, as a 1-D float array."""
    arr = np.atleast_1d(np.asarray(x, dtype=float))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise DataError(f"{name} must be a finite scalar or 1-D array.")
    return arr


def check_point_errors(X_err: Any, m: int) -> np.ndarray:
    """Measurement-error sds of ``m`` points (a scalar broadcasts); zeros for None."""
    if X_err is None:
        return np.zeros(m)
    e = np.broadcast_to(np.asarray(X_err, dtype=float), (m,)).copy()
    if not np.all(np.isfinite(e)) or np.any(e < 0):
        raise DataError("X_err must be finite and >= 0.")
    return e


def check_criterion(criterion: Any) -> str:
    """An information criterion's name, ``"bic"`` or ``"aic"``."""
    if criterion not in ("bic", "aic"):
        raise DataError(f"criterion must be 'bic' or 'aic'; got {criterion!r}.")
    return criterion


def check_ks(ks: Any, n: int) -> tuple[list[int], list[int]]:
    """Candidate numbers of components: (all, sorted and unique; those <= ``n``).

    Raises
    ------
    DataError
        Empty, some k < 1, or every k above the ``n`` points.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise DataError(f"ks must be integers >= 1; got {ks!r}.")
    usable = [k for k in ks if k <= n]
    if not usable:
        raise DataError(f"every k in {ks} exceeds the number of samples ({n}).")
    return ks, usable


def check_md(
    X: Any, X_err: Any = None, *, name: str = "X"
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Validate D-dimensional data that may miss values, and its measurement errors.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NaN marks a missing value; infinite values are refused.
    X_err : array-like, optional
        Standard deviations of shape (n_samples,) or (n_samples, n_features), or
        covariances of shape (n_samples, n_features, n_features). Entries that belong
        to a missing value of ``X`` (the sd, or the covariance's row and column) may be
        NaN; they are never used and are set to 0.

    Returns
    -------
    x : ndarray of shape (n_samples, n_features)
        Float64, NaN where a value is missing.
    cov : ndarray of shape (n_samples, n_features, n_features) or None
        The error covariances, zero in the rows and columns of missing values; None
        when there are no errors or all are zero.
    observed : ndarray of bool, shape (n_samples, n_features)
        Where ``x`` holds a value.

    Raises
    ------
    DataError
        Not numeric, not 2-D, an infinite value, a row with every feature missing, a
        feature with fewer than 2 observed values, more features than points, values
        float64 cannot square; errors of a wrong shape, negative, NaN where ``X`` has a
        value, or covariances that are not symmetric positive semi-definite.
    """
    from scipy import sparse

    if sparse.issparse(X):
        raise DataError(f"{name} is a sparse matrix; pass {name}.toarray().")
    try:
        raw = np.asarray(X)
        if np.iscomplexobj(raw):
            raise DataError(f"Complex data not supported: {name} must be real.")
        x = raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"{name} must be numeric (array-like of shape (n_samples, n_features)); could "
            f"not convert it to float: {exc}"
        ) from None
    if x.ndim != 2:
        raise DataError(
            f"{name} must have shape (n_samples, n_features); got shape {x.shape}."
        )
    n, d = x.shape
    if n < 2:
        raise DataError(f"{name} has {n} sample(s); at least 2 are needed to fit a mixture.")
    if d > n:
        raise DataError(
            f"{name} has {d} features but only {n} points; a {d}-dimensional mixture needs "
            "at least as many points as features."
        )
    if np.any(np.isinf(x)):
        row = int(np.flatnonzero(np.isinf(x).any(axis=1))[0])
        raise DataError(
            f"{name} contains {int(np.isinf(x).sum())} infinite value(s) (first at row "
            f"{row}); mark a missing value with NaN, or drop that row."
        )
    observed = ~np.isnan(x)
    empty = ~observed.any(axis=1)
    if empty.any():
        raise DataError(
            f"{name} has {int(empty.sum())} row(s) with every feature missing (first at row "
            f"{int(np.flatnonzero(empty)[0])}); such a row carries no information: drop it."
        )
    few = observed.sum(axis=0) < 2
    if few.any():
        j = int(np.flatnonzero(few)[0])
        raise DataError(
            f"feature {j} of {name} has {int(observed[:, j].sum())} observed value(s); "
            "each feature needs at least 2: drop that column."
        )
    # missing values filled with an observed one of their column: same max and spread
    check_fit_scale(np.where(observed, x, np.nanmin(x, axis=0)), name=name)
    if X_err is None:
        return x, None, observed
    try:
        err = np.array(X_err, dtype=np.float64)
    except (TypeError, ValueError):
        err = None  # check_errors says what is wrong
    if err is not None:
        if err.shape == (n, d):
            err[~observed & np.isnan(err)] = 0.0
        elif err.shape == (n, d, d):
            missing = ~observed[:, :, None] | ~observed[:, None, :]
            err[missing & np.isnan(err)] = 0.0
    cov = check_errors(X_err if err is None else err, n, d, name=f"{name}_err")
    cov = np.where(observed[:, :, None] & observed[:, None, :], cov, 0.0)
    return x, (cov if np.any(cov != 0) else None), observed
