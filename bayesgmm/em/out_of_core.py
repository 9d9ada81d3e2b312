"""EM on Dask arrays: data larger than memory, or spread over a cluster.

EM's E-step statistics add up over points, so a pass over a Dask array is a map-reduce:
each block (a range of rows, all features) goes through the same compiled kernels as in
memory (:meth:`bayesgmm.em.iteration.Stepper.sums`, their serial twins, since the
scheduler already runs blocks side by side), and the per-block sums are added in block
order before the one M-step. The whole array is never loaded: a pass holds a few blocks
at a time, wherever the scheduler runs them (threads by default, or the workers of a
``dask.distributed`` client when one is active).

What a fit on a Dask array does, in passes over the data:

1. one pass for the standardization: per-feature weighted mean and sd, from per-block
   (weight, mean, sum of squared deviations) merged by Chan, Golub & LeVeque's rule, which
   loses no precision to a large offset; the same pass counts infinite values and NaN.
   With two or more features a NaN is a missing value, marginalised as in memory: each
   feature's moments are over the rows that observe it, and every block's incomplete
   rows go through :class:`bayesgmm.em.missing.Missing` within its pass.
2. a bounded random sample of the rows (``sample_size``, drawn once, chunk by chunk
   through Dask's indexing) is fitted in memory with every start, the screening and the
   split-and-merge search of an in-memory fit; its estimate is the start. A start given
   as ``init`` (a dict) is used as it is, as in memory; ``fixed`` parameters hold in
   the sample's fit and in every M-step on all the data.
3. EM on all the data from that start, to ``tol``: one pass per iteration, with the
   in-memory loop (:func:`bayesgmm.em.iteration.run`: the same convergence rule,
   collapse check and last M-step), so from the same start the iterates are those of an
   in-memory fit up to the order of the sums.

Dask is imported only here, and only when a Dask array arrives (``bayesgmm[dask]``).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ..errors import DataError
from ..validation import check_errors
from .iteration import Params, Stepper

__all__ = ["DaskStepper", "Moments", "fit", "is_dask", "map_predict", "map_rows",
           "moments", "progress", "sample_rows"]

#: rows of the random sample the starts and the search are run on (in memory)
SAMPLE_SIZE = 100_000


_PROGRESS: contextvars.ContextVar[Callable | None] = contextvars.ContextVar(
    "out_of_core_progress", default=None)


@contextlib.contextmanager
def progress(callback: Callable[[int, float, float], None]) -> Iterator[None]:
    """Within it, every pass over a Dask array calls ``callback(pass, loglik, seconds)``.

    ``loglik`` is in the fit's standardized units (its changes are the data's); the
    command line prints one line per pass with it.
    """
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def is_dask(obj: Any) -> bool:
    """Whether ``obj`` is a Dask collection (checked without importing Dask)."""
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "__dask_graph__")


def _require_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise DataError("a Dask array needs Dask: pip install 'bayesgmm[dask]'") from exc
    return dask, da


def as_rows(X: Any, name: str, n: int | None = None, chunks: tuple | None = None):
    """``X`` as a float64 Dask array chunked by rows only (all columns in each block).

    A NumPy array (weights or errors beside a Dask ``X``) is wrapped with ``X``'s row
    chunks. ``n``: the number of rows it must have.
    """
    _, da = _require_dask()
    arr = X if is_dask(X) else da.from_array(np.asarray(X, dtype=float),
                                             chunks=(chunks,) + (-1,) * (np.ndim(X) - 1)
                                             if chunks else "auto")
    if not hasattr(arr, "ndim") or arr.ndim not in (1, 2, 3):
        raise DataError(f"{name} must be a Dask array of 1 or 2 dimensions"
                        f"{' (3 for error covariances)' if name == 'X_err' else ''}.")
    if any(np.isnan(c) for c in arr.shape):
        raise DataError(f"{name} has rows of unknown count (NaN chunk sizes); call "
                        f"{name}.compute_chunk_sizes() first.")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{name} has {arr.shape[0]} rows but X has {n}; give one row "
                        "per point.")
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    arr = arr.rechunk({i: -1 for i in range(1, arr.ndim)})
    if chunks is not None and arr.chunks[0] != chunks:
        arr = arr.rechunk({0: chunks})
    return arr


_ONES: dict[int, np.ndarray] = {}


def _weights(wb: np.ndarray | None, m: int) -> np.ndarray:
    """A block's weights: ``wb``, or without sample weights ones of length ``m``.

    The ones are made once per block length and shared by the passes (made afresh
    they cost a third of the kernel's time); nothing writes to them.
    """
    if wb is not None:
        return wb
    ones = _ONES.get(m)
    if ones is None:
        ones = np.ones(m)
        _ONES.clear()  # a fit has one block length and the shorter last one
        _ONES[m] = ones
    return ones


def _block_moments(x: np.ndarray, w: np.ndarray | None, _e: Any = None) -> np.ndarray:
    """One block's moments, as one flat row.

    (W, per feature: observed weight, mean, M2; then the counts of infinite values, of
    NaN and of rows with no value). A missing value (NaN) leaves its feature's moments
    to the rows that observe it, as :func:`bayesgmm.em.missing.nan_standardizer` does.
    """
    x = x.reshape(x.shape[0], -1)
    d = x.shape[1]
    w = _weights(w, x.shape[0])
    nan = np.isnan(x)
    n_nan = int(np.count_nonzero(nan))
    n_inf = int(np.count_nonzero(np.isinf(x)))
    W = float(w.sum())
    empty = int(np.count_nonzero(nan.all(axis=1))) if n_nan else 0
    if n_inf:
        Wa, mean, m2 = np.zeros(d), np.zeros(d), np.zeros(d)
    elif n_nan:
        ww = np.where(nan, 0.0, w[:, None])
        Wa = ww.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(Wa > 0, (ww * np.where(nan, 0.0, x)).sum(axis=0) / Wa, 0.0)
        m2 = (ww * np.where(nan, 0.0, x - mean) ** 2).sum(axis=0)
    elif W > 0:
        Wa = np.full(d, W)
        mean = (w @ x) / W
        m2 = w @ (x - mean) ** 2
    else:
        Wa, mean, m2 = np.zeros(d), np.zeros(d), np.zeros(d)
    return np.concatenate([[W], Wa, mean, m2, [n_inf, n_nan, empty]])


def map_rows(func, X, w, X_err, *args) -> list[Any]:
    """``func(x, w, err or None, *args)`` on every block of rows, in block order.

    One Dask computation on the active scheduler (a ``dask.distributed`` client's when
    one is active); the results are small and come back in block order, so sums over
    them are added in a fixed order whatever the scheduler.
    """
    dask, _ = _require_dask()
    xs = X.to_delayed().ravel()
    ws = [None] * len(xs) if w is None else w.to_delayed().ravel()
    es = [None] * len(xs) if X_err is None else X_err.to_delayed().ravel()
    call = dask.delayed(func, pure=True)
    return list(dask.compute(*[call(x, wb, e, *args)
                               for x, wb, e in zip(xs, ws, es, strict=True)]))


class Moments(NamedTuple):
    """:func:`moments`' result: the standardization and what the pass counted."""

    loc: np.ndarray  #: per-feature weighted mean over the observed values
    scale: np.ndarray  #: per-feature weighted sd over the observed values
    W: float  #: the total weight of the rows
    observed: np.ndarray  #: per feature, the weight of the rows that observe it
    n_inf: int  #: infinite values
    n_nan: int  #: missing values (NaN)
    n_empty: int  #: rows with every feature missing


def moments(X, w) -> Moments:
    """Weighted per-feature mean and sd of a row-chunked Dask ``X``, in one pass.

    Per block (weight, mean, squared deviations about it), merged in block order by Chan,
    Golub & LeVeque's pairwise rule (exact in exact arithmetic; no cancellation against a
    large offset); ``w`` None is unweighted. With missing values (NaN) each feature's
    moments are over the rows that observe it. The same pass counts infinite values,
    NaN and rows with no value, which :func:`fit` refuses or marginalises.
    """
    d = 1 if X.ndim == 1 else X.shape[1]
    W, Wa, mean, m2 = 0.0, np.zeros(d), np.zeros(d), np.zeros(d)
    n_inf = n_nan = n_empty = 0
    for row in map_rows(_block_moments, X, w, None):
        wb, wab = row[0], row[1:1 + d]
        mb, m2b = row[1 + d:1 + 2 * d], row[1 + 2 * d:1 + 3 * d]
        n_inf, n_nan, n_empty = (n_inf + int(row[-3]), n_nan + int(row[-2]),
                                 n_empty + int(row[-1]))
        W += wb
        if not np.any(wab > 0):
            continue
        take = wab > 0  # a feature this block never observes leaves its moments alone
        tot = np.where(take, Wa + wab, 1.0)
        delta = mb - mean
        mean = np.where(take, mean + delta * (wab / tot), mean)
        m2 = np.where(take, m2 + m2b + delta**2 * (Wa * wab / tot), m2)
        Wa = np.where(take, tot, Wa)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(Wa > 0, np.sqrt(m2 / np.where(Wa > 0, Wa, 1.0)), np.nan)
    return Moments(mean, scale, W, Wa, n_inf, n_nan, n_empty)


def sample_rows(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``min(n, size)`` distinct rows drawn at random."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def _standardized(xb, eb, loc, scale):
    """One block in the fit's units: Z (m, D) and Sz (m, D, D) or None."""
    x = xb.reshape(xb.shape[0], -1)
    Z = x - loc  # (x - loc) / scale, one temporary fewer
    Z /= scale
    if eb is None:
        return Z, None
    nan = np.isnan(x)  # the error entries of a missing feature are ignored, as in memory
    S = check_errors(eb, x.shape[0], x.shape[1], missing=nan if nan.any() else None)
    return Z, S / np.outer(scale, scale)


def _block_sums(xb, wb, eb, loc, scale, covariance_type, reg, params, check=True):
    """One block's E-step sums (:meth:`Stepper.sums`), packed into one flat row.

    In 1-D the block goes to the kernels in data units, which standardize each value as
    they read it: no copy of the block (the pass is bound by reading and computing, and
    a copy was a seventh of it). ``check``: validate the errors (the first pass does).
    """
    m = xb.shape[0]
    if loc.shape[0] == 1 and (eb is None or np.ndim(eb) < 3):
        x = np.ascontiguousarray(xb.reshape(m, -1)[:, 0], dtype=float)
        e = None
        if eb is not None:
            e = np.ascontiguousarray(np.asarray(eb, dtype=float).reshape(m, -1)[:, 0])
            if check:
                check_errors(e, m, 1)
        stepper = Stepper(x.reshape(m, 1), _weights(wb, m), None, covariance_type, reg,
                          serial=True, standardize=(loc[0], scale[0]), error_sd=e)
    else:
        Z, Sz = _standardized(xb, eb, loc, scale)
        stepper = Stepper(Z, _weights(wb, m), Sz, covariance_type, reg, serial=True)
    ll, nk, s1, s2 = stepper.sums(params)
    return np.concatenate([[ll], nk, np.ravel(s1), np.ravel(s2)])


def _block_eigen_below(xb, wb, eb, loc, scale, threshold) -> bool:
    """Whether some error covariance of the block has an eigenvalue <= ``threshold``."""
    from .kernels import eigen_below

    _, Sz = _standardized(xb, eb, loc, scale)
    return bool(eigen_below(Sz, threshold))


class DaskStepper:
    """:class:`~bayesgmm.em.iteration.Stepper` over a Dask array's blocks.

    ``step(p)`` is one pass: every block's :meth:`Stepper.sums` at ``p`` (one Dask
    computation), added in block order, then the M-step. ``X`` (n,) or (n, D), ``w``
    (n,) and ``X_err`` (as ``fit`` takes it, or None) are Dask arrays with the same row
    chunks; ``loc`` and ``scale`` the standardization.
    """

    def __init__(self, X, w, X_err, loc: np.ndarray, scale: np.ndarray,
                 covariance_type: str, reg: float, W: float) -> None:
        self.X, self.w, self.X_err = X, w, X_err
        self.loc, self.scale = loc, scale
        self.d = loc.shape[0]
        self.cov_type, self.reg, self.W = covariance_type, reg, W
        self.one_d = self.d == 1
        self._collapse: dict[float, bool] = {}
        self.n_passes = 0

    def sums(self, p: Params) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`Stepper.sums` over all the blocks, added in block order."""
        K, d = p.means.shape
        t0 = time.perf_counter()
        rows = map_rows(_block_sums, self.X, self.w, self.X_err, self.loc, self.scale,
                        self.cov_type, self.reg, p, self.n_passes == 0)
        self.n_passes += 1
        callback = _PROGRESS.get()
        tot = rows[0].copy()
        for r in rows[1:]:
            tot += r
        ll = tot[0]
        if callback is not None:
            callback(self.n_passes, float(ll), time.perf_counter() - t0)
        if self.one_d:
            return float(ll), tot[1:1 + K], tot[1 + K:1 + 2 * K], tot[1 + 2 * K:]
        nk = tot[1:1 + K]
        s1 = tot[1 + K:1 + K + K * d].reshape(K, d)
        s2 = tot[1 + K + K * d:].reshape(K, d, d)
        return float(ll), nk, s1, s2

    def step(self, p: Params) -> tuple[float, Params, np.ndarray]:
        """One EM iteration over all the blocks: (log-likelihood at p, M-step, raw_min)."""
        return Stepper.mstep(self, p, *self.sums(p))

    # the in-memory M-step, on this object's W, reg, cov_type and one_d
    _mstep_1d = Stepper._mstep_1d
    _mstep = Stepper._mstep

    def can_collapse(self, threshold: float) -> bool:
        """As :meth:`Stepper.can_collapse`: without errors always; with, a pass."""
        if threshold not in self._collapse:
            if self.X_err is None:
                self._collapse[threshold] = True
            else:
                rows = map_rows(_block_eigen_below, self.X, self.w, self.X_err, self.loc,
                                self.scale, threshold)
                self._collapse[threshold] = any(rows)
        return self._collapse[threshold]


def fit(est: Any, X: Any, X_err: Any, sample_weight: Any) -> dict[str, Any]:
    """Fit ``est`` (a ``GaussianMixtureEM``) on a Dask ``X``; its fitted attributes.

    Returns the attributes ``GaussianMixtureEM.fit`` sets (data units), plus ``run``
    (the :class:`~bayesgmm.em.iteration.Run` on all the data) and ``n_passes``.
    """
    import warnings

    from sklearn.base import clone

    from .._numerics.standardize import _is_constant
    from .fixed import Fixed
    from .fixed import parse as parse_fixed
    from .init import given_start
    from .iteration import run

    names = None
    if hasattr(X, "columns"):  # a Dask DataFrame: its columns are the features
        names = np.asarray([str(c) for c in X.columns], dtype=object)
        X = X.to_dask_array(lengths=True)
    X = as_rows(X, "X")
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    n = X.shape[0]
    d = 1 if X.ndim == 1 else X.shape[1]
    K = int(est.n_components)
    if K > n:
        raise DataError(f"n_components={K} exceeds the number of samples ({n}); use at "
                        f"most {n} components, or more data.")
    rows = X.chunks[0]
    _, da = _require_dask()
    # None: unweighted (ones made per block, once: _weights)
    w = None if sample_weight is None else as_rows(sample_weight, "sample_weight", n, rows)
    if w is not None and w.ndim != 1:
        raise DataError("sample_weight must have one value per row (shape (n_samples,)).")
    err = None if X_err is None else as_rows(X_err, "X_err", n, rows)

    mom = moments(X, w)
    loc, scale, W = mom.loc, mom.scale, mom.W
    if mom.n_inf:
        raise DataError(
            f"X holds {mom.n_inf} infinite value(s); every value must be finite (a missing "
            "one is NaN): drop those rows, e.g. X[~da.isinf(X).any(axis=1)].")
    if mom.n_nan and d == 1:
        raise DataError(
            f"X holds {mom.n_nan} NaN value(s); with one feature a missing value leaves "
            "nothing of its point to fit: drop those rows, e.g. X[~da.isnan(X)].")
    if mom.n_empty:
        raise DataError(
            f"X has {mom.n_empty} row(s) with every feature missing (NaN); they carry no "
            "information: drop them, e.g. X[~da.isnan(X).all(axis=1)].")
    if not W > 0:
        raise DataError("the sample weights sum to zero; give some point a positive weight.")
    unseen = np.flatnonzero(~(mom.observed > 0))
    if unseen.size:
        raise DataError(
            f"feature {int(unseen[0])} of X has no observed value (every entry is NaN, or "
            "only rows of weight 0 observe it); a mixture cannot learn it: drop that column.")
    constant = _is_constant(loc, scale)
    if np.any(constant):
        raise DataError(f"feature {int(np.flatnonzero(constant)[0])} of X is constant; a "
                        "mixture needs spread in every feature: drop that column.")
    if est.covariance_type == "spherical":
        scale = np.full_like(scale, np.sqrt(np.mean(scale**2)))
    parsed = parse_fixed(est.fixed, K, d, est.covariance_type)
    fixed = None if parsed is None else Fixed(parsed, loc, scale, est.covariance_type)
    rng = np.random.default_rng(est.random_seed)

    moved = 0
    if isinstance(est.init, dict):
        start = given_start(est.init, K, d, loc, scale)
    else:
        # the starts and the search, in memory on a random sample of the rows
        idx = sample_rows(n, SAMPLE_SIZE, rng)
        xs, ws = X[idx].compute(), None if w is None else w[idx].compute()
        es = None if err is None else err[idx].compute()
        sub = clone(est).set_params(random_seed=int(rng.integers(2**31)))
        with warnings.catch_warnings():  # the fit on all the data is judged below
            warnings.simplefilter("ignore")
            sub.fit(xs, X_err=es, sample_weight=ws)
        start = Params(sub.weights_.copy(), (sub.means_ - loc) / scale,
                       sub.covariances_ / np.outer(scale, scale))
        moved = sub.n_search_kept_
    stepper = DaskStepper(X, w, err, loc, scale, est.covariance_type,
                          float(est.reg_covar), W)
    r = run(None, None, None, start, covariance_type=est.covariance_type,
            reg=float(est.reg_covar), tol=est.tol, max_iter=est.max_iter, fixed=fixed,
            stepper=stepper)
    shift = W * np.log(scale).sum()  # Jacobian of the standardization
    if mom.n_nan:  # a point's density is over its observed features only
        shift = float(np.sum(mom.observed * np.log(scale)))
    p = r.params
    return {
        "weights_": p.weights.copy(), "means_": loc + p.means * scale,
        "covariances_": p.covs * np.outer(scale, scale),
        "loglik_": float(r.loglik - shift),
        "loglik_trace_": np.asarray(r.trace) - shift, "n_iter_": r.n_iter,
        "converged_": r.converged, "degenerate_": r.degenerate, "n_search_kept_": moved,
        "n_features_in_": d, "n_samples_fit_": float(W), "has_errors_": err is not None,
        "feature_names_in_": names, "_loc": loc, "_scale": scale, "_fixed": fixed,
        "run": r, "n_passes": stepper.n_passes, "parsed_fixed": parsed,
        "_n_missing": mom.n_nan,
    }


def _predict_block(xb, eb, est, method):
    """One block's prediction by the in-memory method (``eb``: its errors, or None)."""
    if method.startswith("deconvolve_"):
        means, covs = est.deconvolve(xb, X_err=eb)
        return means if method == "deconvolve_means" else covs
    return getattr(est, method)(xb, X_err=eb)


def map_predict(est: Any, method: str, X: Any, X_err: Any) -> Any:
    """``est.<method>(X, X_err=X_err)`` on a Dask ``X``, block by block, as a Dask array.

    ``method``: ``score_samples``, ``predict``, ``predict_proba``, ``deconvolve_means``
    or ``deconvolve_covariances``. Nothing is computed until the result is; the shape
    and type of a block's result are read from the method on one row in memory.
    """
    dask, da = _require_dask()
    if hasattr(X, "columns"):
        X = X.to_dask_array(lengths=True)
    X = as_rows(X, "X")
    rows = X.chunks[0]
    err = None if X_err is None else as_rows(X_err, "X_err", X.shape[0], rows)
    # one row of the right layout (the first mean; zero errors) gives shape and type
    probe_x = est.means_[:1].reshape((1,) + X.shape[1:])
    probe_e = None if err is None else np.zeros((1,) + err.shape[1:])
    probe = np.asarray(_predict_block(probe_x, probe_e, est, method))
    xs = X.to_delayed().ravel()
    es = [None] * len(xs) if err is None else err.to_delayed().ravel()
    call = dask.delayed(_predict_block, pure=True)
    parts = [da.from_delayed(call(x, e, est, method), shape=(m,) + probe.shape[1:],
                             dtype=probe.dtype)
             for x, e, m in zip(xs, es, rows, strict=True)]
    return da.concatenate(parts, axis=0)
