"""Leaving local maxima: screening of random starts, and split-and-merge moves.

Internal to :mod:`bayesgmm.em`. :func:`search` runs both from the best of the
estimator's starts (:mod:`bayesgmm.em.init`) and keeps what is higher and not a sliver
(:func:`slivers`).

**Screening** (the "emEM" strategy of Biernacki, Celeux & Govaert 2003): many random
starts, each run for a few iterations on (a subsample of) the points, and the most
promising continued to convergence. Random starts reach maxima whose basins k-means
seeding misses (k-means cuts by distance alone, so its partitions are alike from seed to
seed); a few iterations tell a promising start from a hopeless one at a small cost.

**Split and merge.** EM from any start climbs to the nearest local maximum;
a typical bad one has two components sharing one group of points while another group
is covered by one component too few. No start near it can fix that, but one move can:
merge the two that share, split one that covers too much, and run EM again (Ueda,
Nakano, Ghahramani & Hinton 2000, "SMEM algorithm for mixture models"; Bovy, Hogg &
Roweis 2011 use the same moves for extreme deconvolution). :func:`split_merge` tries
the most promising moves from the best run and keeps a move's result by the keeper's
rule; it repeats from each improvement.

Candidates, after Ueda et al.: pairs (i, j) ranked by how much their responsibilities
overlap (the cosine of the two responsibility vectors); for each pair, first a birth
(the freed component starts where the data's k-nearest-neighbour density most exceeds
the mixture's: a small group the pair shares, which no split of a component reaches),
then every other component k as the one split, ranked by how badly k's Gaussian
describes the points it holds (the local Kullback-Leibler divergence between its
responsibility-weighted empirical distribution and its density, up to a constant).
With K = 2 the split is of the merged pair ("merge both, split along the widest
axis"), a start no k-means seeding gives.

Every challenger (a screened start, a move) runs to a loose tolerance first and is run
on to the fit's ``tol`` only if it is already higher than the best
(:func:`~bayesgmm.em.iteration.polish`). Works in standardized units, with measurement
errors, missing values and fixed parameters as :func:`~bayesgmm.em.iteration.run` does.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy.special import logsumexp

from . import kernels as kern
from .iteration import LOOSE_TOL, Params, Run, polish, run, weighted_log_prob

#: moves tried from each local maximum before giving up
MAX_CANDIDATES = 5
#: improvements accepted in turn (each starts a new round of candidates)
MAX_ROUNDS = 10
#: random starts screened, iterations each, points they see, and how many continue
N_SCREEN = 50
#: ``n_screen="auto"``: N_SCREEN starts on SCREEN_N points or more, and on fewer points
#: as many more as the same work buys (N_SCREEN * SCREEN_N / n), up to MAX_SCREEN. Small
#: data sets with many parameters have the most local maxima, and there a start is cheap
MAX_SCREEN = 600
#: with missing values the short runs use the complete points if there are this many
SCREEN_MIN_COMPLETE = 50
SCREEN_ITER = 20
SCREEN_N = 2_000
SCREEN_KEEP = 5
#: a component narrower than this, as a fraction of the data's variance in the same
#: direction, is a sliver (see :func:`slivers`)
SLIVER = 1e-6


def merge(p: Params, i: int, j: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Components i and j as one: weight, mean and covariance matching their moments."""
    wi, wj = p.weights[i], p.weights[j]
    w = wi + wj
    m = (wi * p.means[i] + wj * p.means[j]) / w
    di, dj = p.means[i] - m, p.means[j] - m
    c = (wi * (p.covs[i] + np.outer(di, di)) + wj * (p.covs[j] + np.outer(dj, dj))) / w
    return w, m, c


def split(w: float, m: np.ndarray, c: np.ndarray, floor: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One component as two along its widest axis, keeping its first two moments.

    The means go to m +- a v (v the leading eigenvector, a half its sd), each half of
    the weight; the covariances lose a^2 v v' so that the pair's mixture has the
    original mean and covariance. ``floor`` keeps them positive definite.
    """
    lam, vec = np.linalg.eigh(c)
    v = vec[:, -1]
    a = 0.5 * np.sqrt(max(lam[-1], 0.0))
    cc = c - a * a * np.outer(v, v)
    ev, evec = np.linalg.eigh(cc)
    cc = (evec * np.maximum(ev, floor)) @ evec.T
    return (np.array([w / 2, w / 2]), np.array([m + a * v, m - a * v]),
            np.array([cc, cc]))


def underfit_point(Z: np.ndarray, lp: np.ndarray, n_sub: int = 20_000
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the fit is poorest, and a covariance from the neighbours there.

    The data's density at a point is estimated from the distance r to its m-th
    nearest neighbour (m / (n V_D r^D)); the point where it most exceeds the mixture's
    density (``lp``, the per-component log terms) is in a group of points no component
    covers, such as a small cluster between two large ones that the two share.
    """
    from .init import local_scale

    n, d = Z.shape
    if n < 20:
        return None
    keep = np.arange(n) if n <= n_sub else np.linspace(0, n - 1, n_sub).astype(int)
    Y = np.where(np.isnan(Z[keep]), 0.0, Z[keep])
    m = int(min(max(d + 2, Y.shape[0] // 50), 50, Y.shape[0] - 1))
    r = np.maximum(local_scale(Y, m), 1e-12)
    score = -d * np.log(r) - logsumexp(lp[keep], axis=1)
    i = int(np.argmax(score))
    near = np.argsort(((Y - Y[i]) ** 2).sum(axis=1))[:m + 1]
    mean = Y[near].mean(axis=0)
    dz = Y[near] - mean
    nu = d + 1.0
    cov = (dz.T @ dz + nu * r[i] ** 2 * np.eye(d)) / (m + 1 + nu)
    return mean, cov


def moves(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, p: Params
          ) -> tuple[list[tuple[int, int, int | str | None]], tuple | None]:
    """Candidate (i, j, k) moves, best first, and the birth's mean and covariance.

    Each move merges i and j, then splits k (None: splits the merged one) or, with
    k = "birth", starts a component where the fit is poorest (:func:`underfit_point`).
    """
    K = p.weights.shape[0]
    if K < 2:
        return [], None
    lp = weighted_log_prob(Z, Sz, p)
    with np.errstate(invalid="ignore"):
        resp = np.nan_to_num(np.exp(lp - logsumexp(lp, axis=1, keepdims=True)))
    rs = resp * np.sqrt(w)[:, None]
    norm = np.linalg.norm(rs, axis=0)
    norm = np.where(norm > 0, norm, 1.0)
    overlap = (rs.T @ rs) / np.outer(norm, norm)
    pairs = sorted(itertools.combinations(range(K), 2), key=lambda ij: -overlap[ij])
    birth = underfit_point(Z, lp)
    # how badly k's Gaussian fits the points it holds: sum_n f log(f / p_k), with f the
    # responsibility-weighted empirical distribution (Ueda et al.'s local KL divergence)
    with np.errstate(divide="ignore", invalid="ignore"):
        rw = resp * w[:, None]
        f = rw / np.maximum(rw.sum(axis=0), 1e-300)
        logpk = lp - np.log(p.weights)[None, :]
        badness = np.nansum(np.where(f > 0, f * (np.log(f) - logpk), 0.0), axis=0)
    out: list[tuple[int, int, int | str | None]] = []
    for i, j in pairs:
        if birth is not None:
            out.append((i, j, "birth"))
        others = sorted((k for k in range(K) if k not in (i, j)), key=lambda k: -badness[k])
        out.extend((i, j, k) for k in others)
        if K == 2:
            out.append((i, j, None))
    return out, birth


def apply(p: Params, i: int, j: int, k: int | str | None, floor: float,
          birth: tuple | None = None) -> Params:
    """The start after a move: merge i and j, then split k or add the birth.

    k None splits the merged component; k = "birth" adds the ``birth`` component.
    """
    K = p.weights.shape[0]
    wm, mm, cm = merge(p, i, j)
    if k == "birth":
        keep = [c for c in range(K) if c not in (i, j)]
        wb = 1.0 / max(K, 2) ** 2
        weights = np.concatenate([p.weights[keep], [wm, wb]])
        means = np.concatenate([p.means[keep], mm[None], birth[0][None]])
        covs = np.concatenate([p.covs[keep], cm[None], birth[1][None]])
    elif k is None:
        w2, m2, c2 = split(wm, mm, cm, floor)
        keep = [c for c in range(K) if c not in (i, j)]
        weights = np.concatenate([p.weights[keep], w2])
        means = np.concatenate([p.means[keep], m2])
        covs = np.concatenate([p.covs[keep], c2])
    else:
        w2, m2, c2 = split(p.weights[k], p.means[k], p.covs[k], floor)
        keep = [c for c in range(K) if c not in (i, j, k)]
        weights = np.concatenate([p.weights[keep], [wm], w2])
        means = np.concatenate([p.means[keep], mm[None], m2])
        covs = np.concatenate([p.covs[keep], cm[None], c2])
    return Params(weights / weights.sum(), means, covs)


def slivers(p: Params, glob_chol: np.ndarray, n: float) -> tuple[float, float]:
    """How close a solution is to a spurious maximum.

    Returns the narrowest component's variance relative to the data's (in the same
    direction) and the smallest component's weight in points. A component holding
    fewer than D + 1 points' weight, or one whose variance in some direction is a tiny
    fraction of the data's there, sits on a few (nearly collinear or tied) points,
    where the likelihood grows without bound: a spurious maximiser (McLachlan & Peel
    2000, section 3.10). Rounded data have many.
    """
    a = np.linalg.solve(glob_chol, p.covs)  # L^-1 V_k
    rel = np.linalg.eigvalsh(np.linalg.solve(glob_chol, np.swapaxes(a, 1, 2)))[:, 0]
    return float(rel.min()), float(n * p.weights.min())


class _Keeper:
    """The best run so far, and the rule a challenger must pass to replace it.

    A challenger replaces the best only when it is not degenerate, its log-likelihood
    is higher by more than ``tol`` per point (the convergence tolerance: anything less
    is the same maximum reached again), it converged if the best did, and it makes no
    sliver (:func:`slivers`): no
    component narrower than :data:`SLIVER` of the data's variance, or on fewer than
    D + 1 points' weight, unless the best already has one as narrow or as small. The
    search looks harder than the starts do, and would otherwise find the spurious
    maxima that tied or rounded data are full of.
    """

    def __init__(self, Z: np.ndarray, w: np.ndarray, best: Run, tol: float) -> None:
        self.W, self.d, self.tol = w.sum(), Z.shape[1], tol
        Zc = np.where(np.isnan(Z), 0.0, Z)
        glob = np.atleast_2d(np.cov(Zc.T, aweights=w, bias=True))
        self.chol = np.linalg.cholesky(glob + 1e-12 * np.eye(self.d))
        self.best = best
        self.narrow, self.small = slivers(best.params, self.chol, self.W)
        self.kept = 0

    def challenge(self, Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, start: Params,
                  **kw: Any) -> bool:
        """Run a challenger from ``start``, and offer it if it wins.

        It runs to :data:`~bayesgmm.em.iteration.LOOSE_TOL` first, and on to ``tol``
        (:func:`~bayesgmm.em.iteration.polish`) only if it is higher than the best
        already.
        """
        tol = kw.pop("tol")
        r = run(Z, w, Sz, start, tol=max(tol, LOOSE_TOL), **kw)
        if r.degenerate or not np.isfinite(r.loglik) or \
                r.loglik <= self.best.loglik + self.tol * self.W:
            return False
        return self.offer(polish(Z, w, Sz, r, tol=tol, **kw))

    def offer(self, r: Run) -> bool:
        """Keep ``r`` if it passes the rule; True when it did."""
        if r.degenerate or not np.isfinite(r.loglik) or \
                r.loglik <= self.best.loglik + self.tol * self.W:
            return False
        if self.best.converged and not r.converged:
            return False  # still creeping after max_iter: not known to be a maximum
        narrow, small = slivers(r.params, self.chol, self.W)
        if narrow < min(SLIVER, self.narrow) or small < min(self.d + 1, self.small):
            return False
        self.best, self.narrow, self.small = r, narrow, small
        self.kept += 1
        return True


def n_screen_for(n_screen: int | str, n: int) -> int:
    """The number of random starts screened for ``n`` points (``"auto"``: see MAX_SCREEN)."""
    if isinstance(n_screen, str):
        return int(min(MAX_SCREEN, max(N_SCREEN, N_SCREEN * SCREEN_N // max(n, 1))))
    return int(n_screen)


def screen(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, K: int, keeper: _Keeper,
           rng: np.random.Generator, *, covariance_type: str, reg: float, tol: float,
           max_iter: int, n_screen: int | str = "auto", fixed: Any = None) -> None:
    """Random starts run briefly on a subsample; the best few continued on all points.

    ``n_screen`` (:func:`n_screen_for`) starts (``init="random"``: means at data points,
    the data's covariance) run :data:`SCREEN_ITER` iterations on at most
    :data:`SCREEN_N` points (a weighted draw); the :data:`SCREEN_KEEP` highest are run
    to convergence on every point and offered to ``keeper``.

    The short runs go through one compiled call (:func:`_screen_compiled`). With
    missing values they run on the drawn points that have none, when there are enough
    of them (:data:`SCREEN_MIN_COMPLETE`); the runs to convergence use every point. With
    fixed parameters, or too few complete points, they run one by one in Python, and
    ``"auto"`` then means :data:`N_SCREEN` starts.
    """
    from .init import initialize

    n, d = Z.shape
    if n_screen == 0 or K < 2:
        return
    if n > SCREEN_N:
        idx = rng.choice(n, size=SCREEN_N, replace=False, p=w / w.sum())
        Zs, ws = Z[idx], np.ones(SCREEN_N)
        Ss = None if Sz is None else Sz[idx]
    else:
        Zs, ws, Ss = Z, w, Sz
    incomplete = np.isnan(Zs).any(axis=1)
    if incomplete.any() and fixed is None and \
            np.count_nonzero(~incomplete) >= max(SCREEN_MIN_COMPLETE, 2 * K * (d + 1)):
        keep = ~incomplete  # a random subsample too, when values are missing at random
        Zs, ws, Ss = Zs[keep], ws[keep], None if Ss is None else Ss[keep]
        incomplete = incomplete[keep]
    if fixed is None and not incomplete.any():
        short = _screen_compiled(Zs, ws, Ss, K, n_screen_for(n_screen, Zs.shape[0]), rng,
                                 covariance_type=covariance_type, reg=reg, tol=tol)
    else:  # fixed parameters or too few complete points: run by run
        count = N_SCREEN if isinstance(n_screen, str) else int(n_screen)
        Z0 = np.where(np.isnan(Zs), 0.0, Zs)
        short = []
        for _ in range(count):
            p = initialize(Z0, ws, Ss, K, "random", rng, reg)
            r = run(Zs, ws, Ss, p, covariance_type=covariance_type, reg=reg, tol=tol,
                    max_iter=SCREEN_ITER, fixed=fixed)
            if not r.degenerate and np.isfinite(r.loglik):
                short.append((r.loglik, r.params))
    short.sort(key=lambda r: -r[0])
    for _, params in short[:SCREEN_KEEP]:
        keeper.challenge(Z, w, Sz, params, covariance_type=covariance_type, reg=reg,
                         tol=tol, max_iter=max_iter, fixed=fixed)


def _screen_compiled(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, K: int,
                     n_screen: int, rng: np.random.Generator, *, covariance_type: str,
                     reg: float, tol: float) -> list[tuple[float, Params]]:
    """The short runs of :func:`screen` in one compiled call.

    For data without missing values and fits without fixed parameters: (log-likelihood,
    parameters) of each run that neither collapsed nor failed. The same starts (the same
    draws of ``rng``), iterations and collapse rule as
    :func:`~bayesgmm.em.iteration.run`, without a Python round trip per iteration.
    """
    from .init import random_starts
    from .iteration import _CTYPE, _EPS, COLLAPSE_FLOOR, _stepper
    from .kernels_md import screen_runs

    means0, covs0 = random_starts(Z, w, Sz, K, n_screen, rng, reg)
    collapse = reg or COLLAPSE_FLOOR
    can_collapse = _stepper(Z, w, Sz, covariance_type, reg).can_collapse(collapse)
    w = np.ascontiguousarray(w, dtype=float)
    if Z.shape[1] == 1:  # the 1-D kernels, which a 1-D fit compiles anyway
        # the screen's full subsample: driven from Python (no screening loop to compile)
        runs = kern.screen_runs_1d_py if Z.shape[0] >= SCREEN_N else kern.screen_runs_1d
        lls, weights, mu, var = runs(
            np.ascontiguousarray(Z[:, 0]), None if Sz is None else
            np.ascontiguousarray(Sz[:, 0, 0]), w, np.ascontiguousarray(means0[:, :, 0]),
            np.ascontiguousarray(covs0[:, 0, 0]), SCREEN_ITER, float(tol), float(reg),
            covariance_type == "tied", _EPS, float(collapse), bool(can_collapse))
        means, covs = mu[:, :, None], var[:, :, None, None]
    else:
        Xt, Sp = kern.pack(Z, Sz)
        lls, weights, means, covs = screen_runs(
            Xt, Sp, w, means0, covs0, SCREEN_ITER, float(tol), float(reg),
            _CTYPE[covariance_type], _EPS, float(collapse), bool(can_collapse))
    return [(float(lls[r]), Params(weights[r], means[r], covs[r]))
            for r in range(n_screen) if np.isfinite(lls[r])]


def split_merge(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, keeper: _Keeper, *,
                covariance_type: str, reg: float, tol: float, max_iter: int,
                max_candidates: int = MAX_CANDIDATES, max_rounds: int = MAX_ROUNDS,
                fixed: Any = None) -> None:
    """Split-and-merge moves from the keeper's best, repeated from each improvement."""
    floor = max(reg, 1e-6)
    for _ in range(max_rounds):
        candidates, birth = moves(Z, w, Sz, keeper.best.params)
        for i, j, k in candidates[:max_candidates]:
            start = apply(keeper.best.params, i, j, k, floor, birth)
            if covariance_type != "full":
                start = _restrict(start, covariance_type)
            if keeper.challenge(Z, w, Sz, start, covariance_type=covariance_type, reg=reg,
                                tol=tol, max_iter=max_iter, fixed=fixed):
                break
        else:
            return


def search(Z: np.ndarray, w: np.ndarray, Sz: np.ndarray | None, best: Run,
           rng: np.random.Generator, *, covariance_type: str, reg: float, tol: float,
           max_iter: int, n_screen: int | str = "auto", moves: bool = True,
           fixed: Any = None) -> tuple[Run, int]:
    """Screening, then split-and-merge moves, from the best start's run.

    Returns the best run found and how many challengers replaced it (0: the start's run
    stands). A degenerate ``best`` is returned as it is.
    """
    if best.degenerate or not np.isfinite(best.loglik):
        return best, 0
    K = best.params.weights.shape[0]
    keeper = _Keeper(Z, w, best, tol)
    kw = {"covariance_type": covariance_type, "reg": reg, "tol": tol, "max_iter": max_iter,
          "fixed": fixed}
    screen(Z, w, Sz, K, keeper, rng, n_screen=n_screen, **kw)
    if moves and K >= 2:
        split_merge(Z, w, Sz, keeper, **kw)
    return keeper.best, keeper.kept


def _restrict(p: Params, covariance_type: str) -> Params:
    """A start's covariances made tied, diagonal or spherical, as the M-step keeps them."""
    d = p.means.shape[1]
    if covariance_type == "tied":
        pooled = np.einsum("k,kab->ab", p.weights, p.covs) / p.weights.sum()
        return Params(p.weights, p.means, np.broadcast_to(pooled, p.covs.shape).copy())
    dg = np.diagonal(p.covs, axis1=1, axis2=2)
    if covariance_type == "spherical":
        dg = np.repeat(dg.mean(axis=1, keepdims=True), d, axis=1)
    covs = np.zeros_like(p.covs)
    covs[:, np.arange(d), np.arange(d)] = dg
    return Params(p.weights, p.means, covs)
