"""EM's iteration: parameter containers, the kernel pass and M-steps, the loop to convergence.

Internal to :mod:`bayesgmm.em` (the package's interface for the estimator and the
benchmarks, not the public API): :class:`Params`, :class:`Stepper` (one iteration),
:func:`run` (iterate from one start until convergence, collapse or ``max_iter``) and
its result :class:`Run`. Everything here works on standardized data and clean float64
arrays; the hot loops are in :mod:`bayesgmm.em.kernels`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import kernels as kern
from .missing import Missing

_EPS = 10 * np.finfo(float).eps
#: collapse threshold (relative to the data's variance) when ``reg_covar`` is 0: still
#: catches a numerically singular covariance
COLLAPSE_FLOOR = 1e-12


class Params:
    """Mixture parameters in standardized units: weights (K,), means (K, D), covs (K, D, D)."""

    __slots__ = ("weights", "means", "covs")

    def __init__(self, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> None:
        self.weights = weights
        self.means = np.ascontiguousarray(means, dtype=float)
        self.covs = np.ascontiguousarray(covs, dtype=float)


class Run:
    """One start's outcome: final :class:`Params`, log-likelihood, trace and flags."""

    __slots__ = ("params", "loglik", "trace", "n_iter", "converged", "degenerate", "last")

    def __init__(self, params: Params, loglik: float, trace: list[float], n_iter: int,
                 converged: bool, degenerate: bool, last: tuple | None = None) -> None:
        self.params, self.loglik, self.trace = params, loglik, trace
        self.n_iter, self.converged, self.degenerate = n_iter, converged, degenerate
        # a converged run's final step from ``params``, (loglik, new, raw_min) as
        # Stepper.step returned it: the evaluation that ended it, which a run on from
        # ``params`` starts with
        self.last = last


class Stepper:
    """One EM iteration on standardized data: log-likelihood at ``p`` and the M-step.

    ``Z`` may hold NaN (missing features; multi-D only, no row entirely missing): the
    complete rows then go through the kernels as they would alone, the incomplete ones
    through :class:`bayesgmm.em.missing.Missing`, and their statistics are added before
    the M-step. Without NaN nothing of that path runs.
    """

    def __init__(self, Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None,
                 covariance_type: str, reg: float, *, serial: bool = False,
                 standardize: tuple[float, float] | None = None,
                 error_sd: np.ndarray | None = None) -> None:
        # serial: the kernels' serial twins, one chunk (a Dask task's block, whose
        # scheduler already runs blocks side by side). standardize (1-D only): Z (and
        # error_sd, the errors' standard deviations, given instead of Sz) are in data
        # units, and the kernels standardize (and square) them as they read them, by
        # (loc, scale), so a Dask block is never copied
        self.serial = serial
        loc, scale = standardize if standardize is not None else (0.0, 1.0)
        self.zloc, self.zisc = float(loc), 1.0 / float(scale)
        self.n, self.d = Z.shape
        self.w, self.cov_type, self.reg = w, covariance_type, reg
        self._W = None  # the total weight, summed when the M-step first needs it
        self._Sz = Sz  # every row's, for the collapse check (can_collapse)
        self._collapse: dict[float, bool] = {}
        self.missing = None
        if self.d > 1 and np.isnan(Z).any():
            self.missing = Missing(Z, Sz)
            self.w_all = w
            keep = self.missing.complete
            Z, w = np.ascontiguousarray(Z[keep]), np.ascontiguousarray(w[keep])
            Sz = None if Sz is None else np.ascontiguousarray(Sz[keep])
            self.n, self.w = Z.shape[0], w
        self.chunks = 1 if serial else kern.n_chunks_for(self.n)
        self._n_chunks: dict[float, int] = {}
        self.one_d = self.d == 1
        if self.one_d:
            self.x = np.ascontiguousarray(Z[:, 0])
            self.e2 = None if Sz is None else np.ascontiguousarray(Sz[:, 0, 0])
            self.e_is_sd = error_sd is not None
            if self.e_is_sd:
                self.e2 = np.ascontiguousarray(error_sd)
        else:
            # the fitting kernels read features and error entries feature-major
            self.Zt, self.Sp = kern.pack(Z, Sz)

    @property
    def W(self) -> float:
        """The total weight of the points (a Dask block's ``sums`` never needs it)."""
        if self._W is None:
            self._W = self.w_all.sum() if self.missing is not None else self.w.sum()
        return self._W

    def step(self, p: Params) -> tuple[float, Params, np.ndarray]:
        """The log-likelihood at ``p`` and the M-step from it (one EM iteration).

        Parameters
        ----------
        p : Params
            The current parameters (standardized units).

        Returns
        -------
        loglik : float
            Total weighted log-likelihood of ``p`` (standardized units). -inf when the
            XD kernel met a V_k + S_i that is not positive definite, so the likelihood
            cannot be evaluated: :func:`run` then stops and marks the run degenerate,
            and ``GaussianMixtureEM.fit`` ranks it below every finite run.
            (Full-covariance EM without errors raises ``LinAlgError`` from its Cholesky
            instead; ``_loglik_or_ninf`` turns that into the same -inf.)
        new : Params
            The M-step's parameters, ``reg_covar`` added. A component with almost no
            weight (N_k <= 1e-10 of the total) keeps its mean and covariance; one whose
            new covariance is not positive definite keeps its covariance.
        raw_min : ndarray of shape (n_components,)
            Per component, the smallest variance (1-D, diag), the variance (spherical)
            or the smallest eigenvalue (full) of the new covariance before ``reg_covar``:
            :func:`run` flags a collapse where it is below its threshold. Two sentinels:
            +inf for a component with almost no weight (kept as it was, it cannot
            collapse and must not be flagged); -inf for one whose new covariance was not
            positive definite (kept as it was; -inf is below any threshold, so :func:`run`
            flags the collapse whenever one is possible, i.e. unless every error
            variance is above the threshold).
        """
        return self.mstep(p, *self.sums(p))

    def sums(self, p: Params) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """The E-step's pass at ``p``: (log-likelihood, N_k, s1, s2).

        They add up over disjoint sets of points (a Dask array's blocks): s1 and s2 are
        the weighted first and second moments about the current means, of the data or,
        with errors, of the latent true values; shapes (K,) each in 1-D, (K,), (K, D),
        (K, D, D) otherwise. The log-likelihood is -inf when some V_k + S_i is not
        positive definite.
        """
        if p.weights.min() > 0.0:  # always after an M-step; errstate costs a few us
            logpi = np.log(p.weights)
        else:
            with np.errstate(divide="ignore"):
                logpi = np.log(p.weights)
        n, chunks = (0 if self.serial else self.n), self.chunks
        if self.one_d:
            mu, var = p.means[:, 0].copy(), p.covs[:, 0, 0].copy()
            if self.e2 is None:
                ll, st = kern.kernel("em_1d", n)(self.x, self.w, logpi, mu, var, chunks,
                                                 self.zloc, self.zisc)
                st = st.sum(axis=0)
                return float(ll), st[0], st[1], st[2]
            ll, st = kern.kernel("xd_1d", n)(self.x, self.e2, self.w, logpi, mu, var, chunks,
                                             self.zloc, self.zisc, self.e_is_sd)
            st = st.sum(axis=0)
            return float(ll), st[0], st[1], st[2] + st[3]
        if self.missing is None:
            ll, nk, s1, s2, ok = self._kernel_pass(p, logpi)
            return (float(ll) if ok else -np.inf), nk, s1, s2
        return self._step_missing(p, logpi)

    def mstep(self, p: Params, ll: float, nk: np.ndarray, s1: np.ndarray,
              s2: np.ndarray) -> tuple[float, Params, np.ndarray]:
        """:meth:`step`'s result from :meth:`sums`' (summed over all the points)."""
        if self.one_d:
            mu, var = p.means[:, 0].copy(), p.covs[:, 0, 0].copy()
            return float(ll), *self._mstep_1d(mu, var, nk, s1, s2)
        return float(ll), *self._mstep(p, nk, s1, s2, p.weights.shape[0])

    def can_collapse(self, threshold: float) -> bool:
        """Whether a covariance can collapse below ``threshold``.

        True without errors, or when some error covariance has an eigenvalue <=
        ``threshold``; with every error variance above it the likelihood is bounded.
        """
        if threshold not in self._collapse:
            self._collapse[threshold] = self._Sz is None or kern.eigen_below(self._Sz,
                                                                              threshold)
        return self._collapse[threshold]

    def _work(self, K: int) -> float:
        """A point's cost in the multi-D pass, relative to a 1-D point (see n_chunks_for)."""
        d = self.d
        if self.Sp is None:
            return 0.5 * K * d
        return (0.3 if d <= 4 else 0.5) * K * d * d  # D <= 4: the written-out XD pass

    def _chunks(self, work: float) -> int:
        """kern.n_chunks_for, asked once per cost (numba's thread count is not free)."""
        if self.serial:
            return 1
        if work not in self._n_chunks:
            self._n_chunks[work] = kern.n_chunks_for(self.n, work)
        return self._n_chunks[work]

    def _kernel_pass(self, p: Params, logpi: np.ndarray):
        """The fused multi-D kernel pass over the (complete) rows: (ll, nk, s1, s2, ok)."""
        n, ok = (0 if self.serial else self.n), True
        K = p.means.shape[0]
        work = self._work(K)
        if self.Sp is None:
            chol = np.linalg.cholesky(p.covs)
            linv = np.linalg.inv(chol)
            half_logdet = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            ll, nk, s1, s2 = kern.kernel("em_full", n, work)(
                self.Zt, self.w, logpi, p.means, linv, half_logdet, self._chunks(work)
            )
        else:
            ll, nk, s1, s2, ok = kern.kernel("xd_full", n, work)(
                self.Zt, self.Sp, self.w, logpi, p.means, p.covs, self._chunks(work)
            )
        return ll, nk, s1, s2, ok

    def _step_missing(self, p: Params, logpi: np.ndarray):
        """The E-step with missing values: complete rows by kernel, the others added."""
        K, D = p.means.shape
        ll, nk, s1, s2, ok = 0.0, np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), True
        if self.n:
            ll, nk, s1, s2, ok = self._kernel_pass(p, logpi)
        ll_m, nk_m, s1_m, s2_m, ok_m = self.missing.stats(self.w_all, logpi, p.means, p.covs)
        if not (ok and ok_m):
            return -np.inf, nk + nk_m, s1 + s1_m, s2 + s2_m
        return float(ll) + ll_m, nk + nk_m, s1 + s1_m, s2 + s2_m

    def _mstep_1d(self, mu, var, nk, s1, s2):
        """The M-step for one feature, on (K,) arrays (``kernels.mstep_1d``)."""
        weights, new_mu, new_var, raw_min = kern.mstep_1d(
            mu, var, nk, s1, s2, self.W, self.reg, self.cov_type == "tied", _EPS)
        return Params(weights, new_mu[:, None], new_var[:, None, None]), raw_min

    def _mstep(self, p, nk, s1, s2, K):
        weights, means, covs, raw_min = kern.mstep_md(
            p.means, p.covs, nk, s1, s2, self.W, self.reg, _CTYPE[self.cov_type], _EPS)
        return Params(weights, means, covs), raw_min


_CTYPE = {"full": 0, "diag": 1, "spherical": 2, "tied": 3}


def weighted_log_prob(Z: np.ndarray, Sz: np.ndarray | None, p: Params) -> np.ndarray:
    """log(pi_k N(z_i | mu_k, V_k + S_i)), shape (n, K), in standardized units.

    Rows with NaN (multi-D) are scored on their observed features (XD with a
    projection); a component whose V_k + S_i is not positive definite gets -inf.
    """
    with np.errstate(divide="ignore"):
        logpi = np.log(p.weights)
    n, d = Z.shape
    if d > 1 and np.isnan(Z).any():
        miss = Missing(Z, Sz)
        out = np.empty((n, p.weights.shape[0]))
        keep = miss.complete
        if keep.size:
            out[keep] = weighted_log_prob(np.ascontiguousarray(Z[keep]),
                                          None if Sz is None else Sz[keep], p)
        out[miss.rows] = miss.logprob(logpi, p.means, p.covs)[0]
        return out
    if d == 1:
        e2 = np.zeros(n) if Sz is None else np.ascontiguousarray(Sz[:, 0, 0])
        return kern.logprob_1d(np.ascontiguousarray(Z[:, 0]), e2, logpi,
                               p.means[:, 0].copy(), p.covs[:, 0, 0].copy(),
                               kern.n_chunks_for(n))
    S = np.zeros((0, d, d)) if Sz is None else Sz
    return kern.kernel("logprob_full", n)(np.ascontiguousarray(Z), S, logpi, p.means,
                                          p.covs)


def _step_or_ninf(stepper: Stepper, p: Params) -> tuple[float, Any]:
    """``stepper.step(p)``, or (-inf, None) when a covariance is numerically singular."""
    try:
        return stepper.step(p)
    except np.linalg.LinAlgError:
        return -np.inf, None


#: the fit's steppers (one per data set, covariance type and reg_covar), while
#: :func:`steppers` is open: its runs share one data layout and one collapse check
_STEPPERS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("steppers",
                                                                        default=None)


@contextlib.contextmanager
def steppers() -> Iterator[None]:
    """Within it, :func:`run` builds one :class:`Stepper` per data set and reuses it.

    ``GaussianMixtureEM.fit`` runs dozens of starts and challengers on the same arrays;
    each Stepper lays the data out for the kernels and checks the error covariances
    once. The cache (and the arrays it holds) lives only while the block is open, and
    per thread or task (a context variable).
    """
    token = _STEPPERS.set({})
    try:
        yield
    finally:
        _STEPPERS.reset(token)


def _stepper(Z, w, Sz, covariance_type, reg) -> Stepper:
    cache = _STEPPERS.get()
    if cache is None:
        return Stepper(Z, w, Sz, covariance_type, reg)
    key = (id(Z), id(w), id(Sz), covariance_type, reg)
    hit = cache.get(key)
    if hit is None:
        # the arrays are held with it, so their ids cannot be reused while it lives
        hit = cache[key] = (Z, w, Sz, Stepper(Z, w, Sz, covariance_type, reg))
    return hit[3]


def _collapsed(stepper: Stepper, raw_min: np.ndarray, collapse: float) -> bool:
    """Whether an M-step wanted a covariance below ``collapse`` where one can collapse.

    The errors' check (:meth:`Stepper.can_collapse`, a pass over every error
    covariance) is asked only when some component is below the threshold.
    """
    return bool(raw_min.min() < collapse) and stepper.can_collapse(collapse)


def run(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, p: Params, *,
        covariance_type: str, reg: float, tol: float, max_iter: int,
        fixed: Any = None, first: tuple | None = None, stepper: Any = None) -> Run:
    """Iterate EM from ``p`` until convergence, collapse or ``max_iter``.

    Parameters
    ----------
    Z : ndarray of shape (n, D)
        Standardized data.
    w : ndarray of shape (n,)
        Sample weights.
    Sz : ndarray of shape (n, D, D) or None
        Standardized error covariances (None: plain EM).
    p : Params
        The start.
    covariance_type : {"full", "diag", "spherical"}
    reg : float
        ``reg_covar``, in units of each feature's variance.
    tol : float
        Convergence threshold on the change of the mean log-likelihood per point.
    max_iter : int
        Most iterations.
    fixed : bayesgmm.em.fixed.Fixed or None
        Entries held at given values: put into the start and into every M-step's
        result (the constrained M-step); a fixed covariance cannot collapse.
    first : tuple or None
        ``stepper.step(p)`` already computed (a converged run's :attr:`Run.last`): the
        first iteration uses it instead of a kernel pass.
    stepper : object or None
        What iterates, in place of a :class:`Stepper` on ``Z``, ``w``, ``Sz`` (which
        are then unused): anything with :class:`Stepper`'s ``step``, ``can_collapse``
        and ``W`` (the total weight), such as :class:`bayesgmm.em.out_of_core.DaskStepper`.

    Returns
    -------
    Run
        Converged: the change fell below ``tol``. Degenerate: the log-likelihood
        became -inf, or an M-step wanted a covariance below the collapse threshold
        (``reg`` or :data:`COLLAPSE_FLOOR`) while the errors allowed a collapse; the
        last parameters whose likelihood can be evaluated are kept.
    """
    # a covariance below this (relative to the data's variance) has collapsed onto
    # <= D points; with reg_covar = 0 a floor still catches the numerically singular
    collapse = reg or COLLAPSE_FLOOR
    if stepper is None:
        stepper = _stepper(Z, w, Sz, covariance_type, reg)
    W = stepper.W
    trace: list[float] = []
    converged = False
    degenerate = False
    last = None
    if fixed is not None:
        p = fixed.apply(p)
    for it in range(int(max_iter)):
        if it == 0 and first is not None:
            ll, new, raw_min = first
        else:
            ll, new, raw_min = stepper.step(p)
        if fixed is not None:
            new = fixed.apply(new, mstep=True)
            raw_min = raw_min.copy()
            raw_min[fixed.cov_index] = np.inf
        trace.append(ll)
        if not np.isfinite(ll):
            degenerate = True
            break
        if it > 0 and abs(trace[-1] - trace[-2]) < tol * W:
            # keep the last M-step too (as scikit-learn does): one more pass gives
            # its exact log-likelihood, which EM guarantees is no lower
            converged = True
            step_new = _step_or_ninf(stepper, new)
            ll_new = float(step_new[0])
            collapsed = _collapsed(stepper, raw_min, collapse)
            if ll_new >= ll and not collapsed:
                p = new
                trace.append(ll_new)
                last = step_new
            break
        if _collapsed(stepper, raw_min, collapse):
            # the M-step wants a singular covariance: a component sits on <= D points;
            # keep it (floored by reg_covar) if its likelihood can still be evaluated
            degenerate = True
            ll_new = float(_step_or_ninf(stepper, new)[0])
            if np.isfinite(ll_new):
                p = new
                trace.append(ll_new)
            break
        p = new
    return Run(p, trace[-1], trace, len(trace), converged, degenerate, last)


#: convergence tolerance (change of the mean log-likelihood per point) of a first, loose
#: pass: starts and challengers run to it, and only the leaders are run on to the fit's
#: ``tol`` (:func:`polish`). EM climbs monotonically, so a leader only gains; most of a
#: tight run's iterations are spent creeping along a flat ridge near its maximum
LOOSE_TOL = 1e-5


def polish(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, r: Run, *, tol: float,
           max_iter: int, **kw: Any) -> Run:
    """Run on from a loose run ``r`` to ``tol``, within ``max_iter`` iterations in all.

    The traces are joined, so the result reads as one run (the same iterates as one run
    to ``tol`` from the same start). A run that is degenerate, already as tight as
    asked, or out of iterations is returned as it is.
    """
    # M-steps left: a converged run's trace ends with the evaluation of its final
    # parameters, which the run on evaluates again first, so one entry is not a step
    left = int(max_iter) - (r.n_iter - 1 if r.converged else r.n_iter)
    if r.degenerate or not np.isfinite(r.loglik) or tol >= LOOSE_TOL:
        return r
    if left < 1:
        # out of iterations: it converged only if its last change also meets ``tol``
        # (the loose run's convergence was judged against LOOSE_TOL)
        tight = len(r.trace) > 1 and abs(r.trace[-1] - r.trace[-2]) < tol * w.sum()
        return Run(r.params, r.loglik, r.trace, r.n_iter, r.converged and tight,
                   r.degenerate)
    more = run(Z, w, Sz, r.params, tol=tol, max_iter=left, first=r.last, **kw)
    # the loose run's last entry is already the log-likelihood at its final parameters,
    # which the second run evaluates again first: the joined path is the one a single
    # run to ``tol`` takes, iterate for iterate
    trace = r.trace + more.trace[1:]
    return Run(more.params, more.loglik, trace, len(trace), more.converged,
               more.degenerate)
