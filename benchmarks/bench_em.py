"""Benchmark bayesgmm's EM against scikit-learn, astroML and Bovy's C, side by side in one run.

Every comparison starts both programs from the same parameters and stops them by the
same rule (change of the mean log-likelihood per point below ``tol``, or the same fixed
number of iterations), then evaluates both final estimates with one shared
log-likelihood function. Numba kernels are compiled (warmed up) before any timing.
Times are best-of-``--repeats`` wall-clock (``time.perf_counter``), runs of the two
programs interleaved.

Bovy's extreme-deconvolution (BSD, github.com/jobovy/extreme-deconvolution) is built
from its source in a temporary folder only when asked (``--bovy``, ``--bovy-src PATH``)
and deleted afterwards; without it those two cases time bayesgmm alone and say why
the peer was skipped.

Run ``python benchmarks/bench_em.py`` (a few minutes) or ``--quick`` (under 30 s, small
sizes: a smoke run whose ratios are not the targets'). Results go to
``benchmarks/results/em.json``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

import bayesgmm
from bayesgmm import GaussianMixtureEM
from bayesgmm.em import kernels as kern
from bayesgmm.em.iteration import Params, Stepper

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "em.json"
CASES = ("plain_1d", "plain_md", "xd_1d_astroml", "xd_1d_large", "xd_md_astroml",
         "xd_md_bovy")
BOVY_REPO = "https://github.com/jobovy/extreme-deconvolution"
BOVY_CFLAGS = "-O3"  # its Makefile passes CFLAGS on (EDCFLAGS := $(CFLAGS) -fopenmp -fcommon)
# proj_EM loops while (diff > tol && niter < maxiter), diff starting at 2 * tol and then
# being the rise of the mean log-likelihood per point: a tol > 0 is needed for the first
# step, and this one stops it early only if the log-likelihood stops rising
BOVY_TOL = 1e-300
BOVY_ITERS = (10, 3)  # fixed iterations of the Bovy cases (full size, --quick)
TOL = 1e-6  # on the change of the mean log-likelihood per point, for every program
# No covariance regularisation anywhere: scikit-learn adds reg_covar in data units, bayesgmm
# in units of each feature's variance, and astroML adds none; with 0 all three run the same
# maths (none of these data can collapse a component).
REG = 0.0
MAX_ITER = 10_000

# full-size and --quick sizes of each case
SIZES = {
    "plain_1d": (1_000_000, 10_000),
    "plain_md": (200_000, 10_000),
    "xd_1d_astroml": (3_000, 300),
    "xd_1d_large": (1_000_000, 20_000),
    "xd_md_astroml": (2_000, 200),
    "xd_md_bovy": (20_000, 2_000),
}


# ------------------------------------------------------------------ helpers


def best_of(fn, repeats):
    """Run ``fn`` ``repeats`` times; return (best seconds, result of the best run)."""
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        dt = time.perf_counter() - t0
        if dt < best:
            best, out = dt, res
    return best, out


def per_call(fn, budget=0.3, max_calls=2000):
    """Best-of-3 mean seconds per call of a cheap ``fn`` (number of calls auto-sized)."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    calls = int(min(max_calls, max(1, budget / one)))
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def mixture_loglik(X, weights, means, covs, S=None, chunk=50_000):
    """Total log-likelihood sum_i log sum_k w_k N(x_i | mu_k, V_k + S_i), in data units.

    The one evaluator applied to every program's final estimate.
    """
    X = np.asarray(X, dtype=float).reshape(len(X), -1)
    n, d = X.shape
    total = 0.0
    for lo in range(0, n, chunk):
        x = X[lo : lo + chunk]
        lp = np.empty((x.shape[0], len(weights)))
        for k in range(len(weights)):
            T = covs[k] if S is None else covs[k] + S[lo : lo + chunk]
            L = np.linalg.cholesky(T)
            diff = (x - means[k])[..., None]
            if S is None:
                y = np.linalg.solve(L, diff[..., 0].T).T
                half_logdet = np.log(np.diag(L)).sum()
            else:
                y = np.linalg.solve(L, diff)[..., 0]
                half_logdet = np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
            lp[:, k] = (np.log(weights[k]) - 0.5 * d * np.log(2 * np.pi) - half_logdet
                        - 0.5 * (y**2).sum(axis=1))
        total += logsumexp(lp, axis=1).sum()
    return float(total)


@contextlib.contextmanager
def kernel_clock():
    """Accumulate the time spent inside bayesgmm's fitting kernels (profiling run only)."""
    fitting = ("em_1d", "xd_1d", "em_full", "xd_full")
    clock = {"seconds": 0.0, "calls": 0}

    def wrap(f):
        def timed(*args):
            t0 = time.perf_counter()
            out = f(*args)
            clock["seconds"] += time.perf_counter() - t0
            clock["calls"] += 1
            return out
        return timed

    if hasattr(kern, "kernel"):  # em looks kernels up with kern.kernel(name, n[, work])
        lookup = kern.kernel
        saved = {"kernel": lookup}
        kern.kernel = lambda name, *a: wrap(lookup(name, *a)) if name in fitting else lookup(
            name, *a)
    else:  # older versions called kern.<name> directly
        saved = {name: getattr(kern, name) for name in fitting}
        for name, f in saved.items():
            setattr(kern, name, wrap(f))
    try:
        yield clock
    finally:
        for name, f in saved.items():
            setattr(kern, name, f)


def fit_bayesgmm(X, S, start, *, max_iter=MAX_ITER, tol=TOL):
    K = len(start["weights"])
    gm = GaussianMixtureEM(K, covariance_type="full", tol=tol, max_iter=max_iter, n_init=1,
                           init=start, reg_covar=REG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fixed-iteration runs stop before convergence
        return gm.fit(X, X_err=S)


def em_updates(gm):
    """Parameter updates (M-steps) behind a fit's estimate.

    ``n_iter_`` counts log-likelihood evaluations. A run converged at ``tol`` ends with
    one more, of the parameters it returns; one that is not converged made ``max_iter``
    updates (its trace may still end with such an evaluation, when its first, loose pass
    to 1e-5 per point converged on its last allowed iteration).
    """
    if gm.converged_:
        return int(gm.n_iter_) - 1
    return min(int(gm.n_iter_), int(gm.max_iter))


def bayesgmm_profile(X, S, start, **fit_kw):
    """Where one bayesgmm fit spends its time: kernels, a whole EM step, the rest.

    Returns the profile and the (instrumented, untimed) fit.
    """
    with kernel_clock() as clock:
        t0 = time.perf_counter()
        gm = fit_bayesgmm(X, S, start, **fit_kw)
        total = time.perf_counter() - t0
    out = {"fit_ms": total * 1e3, "kernel_ms_per_iter": clock["seconds"] / clock["calls"] * 1e3,
           "kernel_share": clock["seconds"] / total, "kernel_passes": clock["calls"],
           "step_ms": None}
    try:  # one EM step (kernel + M-step in Python) through em's internal stepper
        X2 = np.asarray(X, dtype=float).reshape(len(X), -1)
        loc, scale = X2.mean(0), X2.std(0)
        Sz = None if S is None else S / np.outer(scale, scale)
        stepper = Stepper((X2 - loc) / scale, np.ones(len(X2)), Sz, "full", REG)
        p = Params(gm.weights_, (gm.means_ - loc) / scale,
                   gm.covariances_ / np.outer(scale, scale))
        out["step_ms"] = per_call(lambda: stepper.step(p)) * 1e3
    except (AttributeError, TypeError) as exc:  # internal API changed: skip this detail
        out["step_error"] = repr(exc)
    return out, gm


def summary(gm, X, S, seconds):
    ll = mixture_loglik(X, gm.weights_, gm.means_, gm.covariances_, S)
    return {"fit_s": seconds, "n_iter": int(gm.n_iter_), "converged": bool(gm.converged_),
            "per_iter_ms": seconds / gm.n_iter_ * 1e3, "loglik": ll}


def ll_ok(ll_ours, ll_peer):
    """Equal or better, up to floating-point summation noise (1e-9 relative)."""
    return bool(ll_ours >= ll_peer - 1e-9 * abs(ll_peer))


# ------------------------------------------------------------------ data and starts


def data_1d(n, rng, *, errors):
    """K=3 plain (weights .5/.3/.2) or K=2 with per-point errors, and a shared start."""
    if errors:
        true = np.where(rng.random(n) < 0.6, rng.normal(0.0, 0.7, n), rng.normal(2.5, 1.0, n))
        sd = rng.uniform(0.2, 1.0, n)
        x = true + sd * rng.normal(size=n)
        S = (sd**2)[:, None, None]
        K, qs = 2, [0.25, 0.75]
    else:
        lab = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
        x = rng.normal(np.array([0.0, 3.0, 7.0])[lab], np.array([1.0, 0.8, 1.5])[lab])
        S = None
        K, qs = 3, [1 / 6, 0.5, 5 / 6]
    start = {"weights": np.full(K, 1.0 / K), "means": np.quantile(x, qs)[:, None],
             "covariances": np.full((K, 1, 1), x.var() / K**2)}
    return x[:, None], S, start


def data_md(n, d, K, rng, *, errors):
    """K full-covariance clusters in d dimensions; optional full per-point error covariances."""
    weights = np.linspace(2.0, 1.0, K) / np.linspace(2.0, 1.0, K).sum()
    means = rng.normal(0.0, 2.0, (K, d))
    A = rng.normal(size=(K, d, d)) / np.sqrt(d)
    covs = A @ np.swapaxes(A, 1, 2) + 0.3 * np.eye(d)
    lab = rng.choice(K, size=n, p=weights)
    Lc = np.linalg.cholesky(covs)
    X = means[lab] + np.einsum("nij,nj->ni", Lc[lab], rng.normal(size=(n, d)))
    S = None
    if errors:
        G = rng.normal(size=(n, d, d)) * 0.3
        S = G @ np.swapaxes(G, 1, 2) + 0.02 * np.eye(d)
        X = X + np.einsum("nij,nj->ni", np.linalg.cholesky(S), rng.normal(size=(n, d)))
    start = {"weights": np.full(K, 1.0 / K),
             "means": means + rng.normal(0.0, 1.0, (K, d)),
             "covariances": np.broadcast_to(np.eye(d), (K, d, d)).copy()}
    return X, S, start


# ------------------------------------------------------------------ scikit-learn


def sklearn_model(start, max_iter=MAX_ITER):
    from sklearn.mixture import GaussianMixture

    # With all three *_init given, sklearn still derives throw-away responsibilities from
    # init_params; "random_from_data" is the cheapest choice (no k-means), so sklearn's
    # time is not inflated by work it discards.
    return GaussianMixture(
        len(start["weights"]), covariance_type="full", tol=TOL, max_iter=max_iter,
        init_params="random_from_data", weights_init=start["weights"],
        means_init=start["means"], precisions_init=np.linalg.inv(start["covariances"]),
        reg_covar=REG, random_state=0,
    )


def compare_sklearn(X, start, repeats, target):
    bg_times, sk_times = [], []
    bg = sk = None
    for _ in range(repeats):  # interleaved, so a change of machine load hits both
        t0 = time.perf_counter()
        bg = fit_bayesgmm(X, None, start)
        bg_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = sklearn_model(start).fit(X)
        sk_times.append(time.perf_counter() - t0)
    ours = summary(bg, X, None, min(bg_times))
    ours.update(bayesgmm_profile(X, None, start)[0])
    peer = summary(sk, X, None, min(sk_times))

    def one_iteration():  # sklearn's own loop body: E-step then M-step
        _, log_resp = one._e_step(X)
        one._m_step(X, log_resp)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = sklearn_model(start, max_iter=1).fit(X)
    peer["step_ms"] = best_of(one_iteration, repeats)[0] * 1e3
    ratio = peer["fit_s"] / ours["fit_s"]
    return {
        "bayesgmm": ours, "sklearn": peer, "target_ratio": target, "ratio": ratio,
        "ratio_per_iter": peer["per_iter_ms"] / ours["per_iter_ms"],
        "loglik_diff": ours["loglik"] - peer["loglik"],
        "loglik_ok": ll_ok(ours["loglik"], peer["loglik"]),
        "pass": bool(ratio >= target and ll_ok(ours["loglik"], peer["loglik"])),
    }


# ------------------------------------------------------------------ astroML


def astroml_model(start):
    from astroML.density_estimation import XDGMM

    xd = XDGMM(len(start["weights"]))
    xd.alpha = np.array(start["weights"], dtype=float)
    xd.mu = np.array(start["means"], dtype=float)
    xd.V = np.array(start["covariances"], dtype=float)
    return xd


def astroml_iterations(X, S, start, n_iter):
    """Seconds per iteration of XDGMM.fit's loop body (_EMstep, then logL), and its state.

    XDGMM.fit always starts from its own GaussianMixture, so the loop is run here from
    ``start``; each iteration does exactly what an iteration of XDGMM.fit does.
    """
    xd = astroml_model(start)
    em_s = ll_s = 0.0
    for _ in range(n_iter):
        t0 = time.perf_counter()
        xd._EMstep(X, S)
        t1 = time.perf_counter()
        xd.logL(X, S)
        t2 = time.perf_counter()
        em_s, ll_s = em_s + t1 - t0, ll_s + t2 - t1
    return (em_s + ll_s) / n_iter, em_s / n_iter, xd


def astroml_converge(X, S, start, max_iter):
    """Iterate astroML's EM step until |change of mean log-likelihood| < TOL."""
    xd = astroml_model(start)
    n = len(X)
    prev = xd.logL(X, S)
    t0 = time.perf_counter()
    for it in range(1, max_iter + 1):
        xd._EMstep(X, S)
        ll = xd.logL(X, S)
        if abs(ll - prev) < TOL * n:
            return xd, it, True, time.perf_counter() - t0
        prev = ll
    return xd, max_iter, False, time.perf_counter() - t0


def compare_astroml(X, S, start, repeats, *, n_fixed, converge, max_iter, target):
    X = np.asarray(X, dtype=float).reshape(len(X), -1)
    best_s = em_only_s = np.inf
    bg_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        bg = fit_bayesgmm(X, S, start)
        bg_times.append(time.perf_counter() - t0)
        s_iter, s_em, _ = astroml_iterations(X, S, start, n_fixed)
        best_s, em_only_s = min(best_s, s_iter), min(em_only_s, s_em)
    ours = summary(bg, X, S, min(bg_times))
    ours.update(bayesgmm_profile(X, S, start)[0])
    peer = {"per_iter_ms": best_s * 1e3, "emstep_ms": em_only_s * 1e3, "timed_iters": n_fixed}
    if converge:
        xd, it, conv, secs = astroml_converge(X, S, start, max_iter)
        peer.update(n_iter=it, converged=conv, fit_s=secs, loglik_at="convergence")
        ours_ll = ours["loglik"]
    else:  # the same number of iterations from the same start
        _, _, xd = astroml_iterations(X, S, start, n_fixed)
        gm = fit_bayesgmm(X, S, start, max_iter=n_fixed)
        ours_ll = mixture_loglik(X, gm.weights_, gm.means_, gm.covariances_, S)
        peer.update(n_iter=n_fixed, converged=False, loglik_at=f"{n_fixed} iterations")
        ours["loglik_after_fixed"] = ours_ll
    peer["loglik"] = mixture_loglik(X, xd.alpha, xd.mu, xd.V, S)
    ratio = peer["per_iter_ms"] / ours["per_iter_ms"]
    res = {
        "bayesgmm": ours, "astroml": peer, "target_ratio": target, "ratio": ratio,
        "ratio_vs_emstep_only": peer["emstep_ms"] / ours["per_iter_ms"],
        "loglik_diff": ours_ll - peer["loglik"], "loglik_ok": ll_ok(ours_ll, peer["loglik"]),
    }
    res["pass"] = None if target is None else bool(ratio >= target and res["loglik_ok"])
    return res


# ------------------------------------------------------------------ Bovy's extreme-deconvolution


class BovyUnavailable(Exception):
    """Bovy's library could not be had; the message says why (printed, and in the JSON)."""


def _git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


def bovy_source(src, dest):
    """Put Bovy's source into ``dest``; return where it came from and its commit.

    ``src`` None: ``git clone`` of the public repository. Otherwise a checkout or an
    unpacked copy (copied without build outputs) or a git directory, bare or not (its
    HEAD is exported with ``git archive``).
    """
    if src is None:
        try:
            _git("clone", "--quiet", "--depth", "1", BOVY_REPO, str(dest))
        except (OSError, subprocess.CalledProcessError) as exc:
            msg = getattr(exc, "stderr", "") or repr(exc)
            raise BovyUnavailable(f"git clone {BOVY_REPO} failed ({msg.strip()[-200:]}); "
                                  "give a local copy with --bovy-src PATH") from None
        return {"source": BOVY_REPO, "commit": _git("rev-parse", "HEAD", cwd=dest)}
    path = Path(src).expanduser().resolve()
    if (path / "Makefile").is_file() and (path / "src").is_dir():
        shutil.copytree(path, dest, ignore=shutil.ignore_patterns(
            ".git", "build", "*.o", "*.so", "*.dylib"))
        commit = dirty = None
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            if Path(_git("rev-parse", "--show-toplevel", cwd=path)).resolve() == path:
                commit = _git("rev-parse", "HEAD", cwd=path)
                dirty = bool(_git("status", "--porcelain", cwd=path))
        return {"source": str(path), "commit": commit, "modified": dirty}
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        try:
            tar = subprocess.run(["git", f"--git-dir={path}", "archive", "--format=tar",
                                  "HEAD"], capture_output=True, check=True).stdout
            commit = _git(f"--git-dir={path}", "rev-parse", "HEAD")
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BovyUnavailable(f"git archive of {path} failed: {exc!r}") from None
        dest.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(dest, filter="data")
        return {"source": f"{path} (git archive HEAD)", "commit": commit}
    raise BovyUnavailable(f"--bovy-src {src}: neither a source tree (Makefile, src/) nor a "
                          "git directory")


def bovy_build(src, workdir, cflags):
    """Fetch and build Bovy's library in ``workdir``; load it through its own wrapper.

    Returns ``(xd, lib, info)``: the wrapper's ``extreme_deconvolution`` function, the
    library's ctypes handle (for ``omp_set_num_threads``), and what was built how.
    Raises BovyUnavailable with the reason.
    """
    cc = os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise BovyUnavailable(f"no C compiler: {cc!r} is not on PATH")
    if shutil.which("make") is None:
        raise BovyUnavailable("no make on PATH")
    dest = Path(workdir) / "extreme-deconvolution"
    info = bovy_source(src, dest)
    try:
        gsl = subprocess.run(["gsl-config", "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        gsl = None
    try:
        compiler = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                  check=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        compiler = cc
    make = ["make", f"CC={cc}", f"CFLAGS={cflags}"]
    t0 = time.perf_counter()
    proc = subprocess.run(make, cwd=dest, capture_output=True, text=True)
    info.update(make=" ".join(make[:1] + [f"CC={cc}", f"CFLAGS='{cflags}'"]), cflags=cflags,
                compiler=compiler, gsl=gsl, build_s=time.perf_counter() - t0)
    # the compile line its Makefile ran for the E/M step (flags as the compiler saw them)
    info["compile_line"] = next((line.strip() for line in proc.stdout.splitlines()
                                 if "proj_EM_step.c" in line), None)
    built = dest / "build" / "libextremedeconvolution.so"
    if proc.returncode != 0 or not built.is_file():
        hint = ""
        if gsl is None or "gsl/" in proc.stderr:
            hint = " (GSL's headers or gsl-config not found: is libgsl-dev installed?)"
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise BovyUnavailable(f"building Bovy's library failed{hint}: {tail}")
    # its wrapper loads py/_extreme_deconvolution.so (numpy.ctypeslib.load_library)
    shutil.copy2(built, dest / "py" / "_extreme_deconvolution.so")
    spec = importlib.util.spec_from_file_location(
        "bovy_extreme_deconvolution", dest / "py" / "extreme_deconvolution.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        lib = ctypes.CDLL(str(dest / "py" / "_extreme_deconvolution.so"))
        lib.omp_get_max_threads.restype = ctypes.c_int
    except (OSError, AttributeError) as exc:
        raise BovyUnavailable(f"loading Bovy's library failed: {exc!r}") from None
    info["wrapper"] = "py/extreme_deconvolution.py (its own ctypes wrapper)"
    return module.extreme_deconvolution, lib, info


def bovy_fit(bovy, X, ycovar, start, n_iter):
    """One call of Bovy's wrapper from ``start`` for ``n_iter`` EM steps.

    No projection (``noproj``), no data weights, ``w = 0`` (no prior on the
    covariances), no split-and-merge. Returns (seconds, its mean log-likelihood per
    point, the estimate); it updates the start's copies in place.
    """
    xd, lib, threads = bovy["xd"], bovy["lib"], bovy["threads"]
    amp = np.array(start["weights"], dtype=float)
    mean = np.array(start["means"], dtype=float)
    covar = np.array(start["covariances"], dtype=float)
    lib.omp_set_num_threads(threads)  # it runs omp_get_max_threads() threads
    t0 = time.perf_counter()
    avg = xd(X, ycovar, amp, mean, covar, tol=BOVY_TOL, maxiter=int(n_iter), w=0.0)
    return time.perf_counter() - t0, float(avg), (amp, mean, covar)


def compare_bovy(X, S, start, repeats, *, n_fixed, bovy, target):
    """Per iteration, both run the same fixed number of EM steps from the same start."""
    X = np.ascontiguousarray(np.asarray(X, dtype=float).reshape(len(X), -1))
    n, d = X.shape
    # untimed first fit: compiles what the warm-up has not (the parallel kernels of
    # large n) and fixes the number of updates both programs make
    updates = em_updates(fit_bayesgmm(X, S, start, max_iter=n_fixed, tol=0.0))
    res = {"target_ratio": target, "n_fixed": n_fixed, "ratio": None, "pass": None,
           "skipped": None, "bovy_c": None}
    if bovy is None or "skipped" in bovy:
        res["skipped"] = "Bovy's library not built (run with --bovy)" if bovy is None \
            else bovy["skipped"]
    # d = 1: per-point variances as (n, 1), its wrapper's diagonal-errors form
    ycovar = np.ascontiguousarray(S.reshape(n, 1) if d == 1 else S)
    bg_times, bv_times = [], []
    for _ in range(repeats):  # interleaved
        t0 = time.perf_counter()
        gm = fit_bayesgmm(X, S, start, max_iter=n_fixed, tol=0.0)
        bg_times.append(time.perf_counter() - t0)
        if res["skipped"] is None:
            bv_s, avg, est = bovy_fit(bovy, X, ycovar, start, updates)
            bv_times.append(bv_s)
    assert em_updates(gm) == updates
    prof, gm_prof = bayesgmm_profile(X, S, start, max_iter=n_fixed, tol=0.0)
    assert em_updates(gm_prof) == updates
    ours = {"fit_s": min(bg_times), "n_iter": updates, "n_iter_": int(gm.n_iter_),
            "converged": bool(gm.converged_), "per_iter_ms": min(bg_times) / updates * 1e3,
            "loglik": mixture_loglik(X, gm.weights_, gm.means_, gm.covariances_, S)}
    ours.update(prof)
    res["bayesgmm"] = ours
    if res["skipped"] is not None:
        return res
    ll = mixture_loglik(X, *est, S)
    # its mean log-likelihood is that of the parameters its last step started from: the
    # last entry of bayesgmm's trace of the same run; equal only after as many steps
    at_last = float(gm.loglik_trace_[updates - 1])
    peer = {"fit_s": min(bv_times), "n_iter": updates,
            "per_iter_ms": min(bv_times) / updates * 1e3, "threads": bovy["threads"],
            "omp_max_threads": bovy["lib"].omp_get_max_threads(), "loglik": ll,
            "loglik_at": f"{updates} iterations",
            "reported_avgloglik": avg, "reported_loglik_total": avg * n,
            "bayesgmm_trace_at_last_step": at_last, "ycovar_shape": list(ycovar.shape)}
    rel = max(abs(ll), 1.0)
    same_ll = bool(abs(ours["loglik"] - ll) <= 1e-9 * rel)
    same_iter = bool(abs(avg * n - at_last) <= 1e-9 * rel)
    ratio = peer["per_iter_ms"] / ours["per_iter_ms"]
    res.update(bovy_c=peer, ratio=ratio, loglik_diff=ours["loglik"] - ll, loglik_ok=same_ll,
               iterations_match=same_iter, reported_loglik_diff=avg * n - at_last)
    res["pass"] = bool(ratio >= target and same_ll and same_iter)
    return res


# ------------------------------------------------------------------ run and report


def warm_up():
    """Compile every fitting kernel once (cache=True may already have done it)."""
    rng = np.random.default_rng(123)
    t0 = time.perf_counter()
    for errors in (False, True):
        X, S, start = data_1d(500, rng, errors=errors)
        fit_bayesgmm(X, S, start, max_iter=3)
        X, S, start = data_md(500, 3, 2, rng, errors=errors)
        fit_bayesgmm(X, S, start, max_iter=3)
    return time.perf_counter() - t0


def environment():
    import numba
    import sklearn

    try:
        import astroML

        astroml_version = astroML.__version__
    except ImportError:
        astroml_version = None
    pkg = Path(bayesgmm.__file__).parent  # the bayesgmm imported (PYTHONPATH may pick it)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=pkg,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "."],
                                    cwd=pkg, capture_output=True, text=True,
                                    check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit = dirty = None
    return {
        "python": platform.python_version(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "loadavg_start": list(os.getloadavg()),
        "numpy": np.__version__, "numba": numba.__version__, "sklearn": sklearn.__version__,
        "astroML": astroml_version, "bayesgmm": bayesgmm.__version__,
        "bayesgmm_path": str(Path(bayesgmm.__file__).parent), "git_commit": commit,
        "bayesgmm_modified": dirty,
        "numba_threads": numba.get_num_threads(), "numba_threading_layer": None,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def setup_bovy(args, workdir, say):
    """Build Bovy's library when asked; a dict for compare_bovy (None: not asked)."""
    if not (args.bovy or args.bovy_src):
        return None
    threads = args.bovy_threads or int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count())
    say(f"[bovy] building Bovy's extreme-deconvolution from "
        f"{args.bovy_src or BOVY_REPO} in {workdir}", flush=True)
    try:
        xd, lib, info = bovy_build(args.bovy_src, workdir, args.bovy_cflags)
    except BovyUnavailable as exc:
        say(f"[bovy] skipped: {exc}", flush=True)
        return {"skipped": f"Bovy's library unavailable: {exc}", "info": {"error": str(exc)}}
    info["omp_threads"] = threads
    say(f"[bovy] built commit {(info['commit'] or 'unknown')[:10]} with {info['make']} in "
        f"{info['build_s']:.1f} s; {threads} OpenMP threads", flush=True)
    return {"xd": xd, "lib": lib, "threads": threads, "info": info}


def run(args):
    with tempfile.TemporaryDirectory(prefix="bayesgmm-bovy-") as workdir:
        return _run(args, workdir)


def _run(args, workdir):
    sizes = {case: q if args.quick else f for case, (f, q) in SIZES.items()}
    sizes = {case: max(50, int(n * args.scale)) for case, n in sizes.items()}
    repeats = 1 if args.quick and args.repeats is None else (args.repeats or 3)
    n_fixed = 2 if args.quick else 3
    bovy_iters = args.bovy_iters or BOVY_ITERS[bool(args.quick)]
    converge = not args.quick and not args.no_astroml_converge
    env = environment()
    env["warmup_s"] = warm_up()
    try:
        import numba

        env["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        pass
    rng = np.random.default_rng(args.seed)
    results = {}
    say = print if not args.silent else (lambda *a, **k: None)
    bovy = setup_bovy(args, workdir, say)
    env["bovy"] = None if bovy is None else bovy["info"]

    say(f"[plain_1d] n={sizes['plain_1d']:,} D=1 K=3 vs scikit-learn", flush=True)
    X, _, start = data_1d(sizes["plain_1d"], rng, errors=False)
    results["plain_1d"] = compare_sklearn(X, start, repeats, 10.0)

    say(f"[plain_md] n={sizes['plain_md']:,} D=5 K=5 full vs scikit-learn", flush=True)
    X, _, start = data_md(sizes["plain_md"], 5, 5, rng, errors=False)
    results["plain_md"] = compare_sklearn(X, start, repeats, 10.0)

    say(f"[xd_1d_astroml] n={sizes['xd_1d_astroml']:,} D=1 K=2 vs astroML", flush=True)
    X, S, start = data_1d(sizes["xd_1d_astroml"], rng, errors=True)
    results["xd_1d_astroml"] = compare_astroml(
        X, S, start, repeats, n_fixed=n_fixed, converge=converge,
        max_iter=args.astroml_max_iter, target=1000.0)

    say(f"[xd_1d_large] n={sizes['xd_1d_large']:,} D=1 K=2 vs Bovy's C, {bovy_iters} "
        "iterations", flush=True)
    X, S, start = data_1d(sizes["xd_1d_large"], rng, errors=True)
    results["xd_1d_large"] = compare_bovy(X, S, start, repeats, n_fixed=bovy_iters,
                                          bovy=bovy, target=5.0)

    say(f"[xd_md_astroml] n={sizes['xd_md_astroml']:,} D=3 K=3 full errors vs astroML",
        flush=True)
    X, S, start = data_md(sizes["xd_md_astroml"], 3, 3, rng, errors=True)
    results["xd_md_astroml"] = compare_astroml(
        X, S, start, repeats, n_fixed=n_fixed, converge=False, max_iter=0, target=1000.0)

    say(f"[xd_md_bovy] n={sizes['xd_md_bovy']:,} D=3 K=3 full errors vs Bovy's C, "
        f"{bovy_iters} iterations", flush=True)
    X, S, start = data_md(sizes["xd_md_bovy"], 3, 3, rng, errors=True)
    results["xd_md_bovy"] = compare_bovy(X, S, start, repeats, n_fixed=bovy_iters,
                                         bovy=bovy, target=5.0)

    env["loadavg_end"] = list(os.getloadavg())
    for case, n in sizes.items():
        results[case]["n"] = n
    return {"quick": bool(args.quick), "repeats": repeats, "tol": TOL,
            "bovy_iters": bovy_iters, "environment": env, "results": results}


def table(report):
    """Rows of the printed summary table."""
    r = report["results"]
    rows = []

    def fmt_ll(res):
        return f"{res['loglik_diff']:+.3g}" + ("" if res["loglik_ok"] else " (worse)")

    def status(res):
        return "info" if res["pass"] is None else ("PASS" if res["pass"] else "FAIL")

    for case, label in (("plain_1d", "plain EM 1-D K=3"), ("plain_md", "plain EM 5-D K=5")):
        c = r[case]
        b, s = c["bayesgmm"], c["sklearn"]
        rows.append([f"{label} n={c['n']:,} vs sklearn (to convergence)",
                     f">= {c['target_ratio']:g}x",
                     f"{b['fit_s']:.3g} s / {b['n_iter']} it ({b['per_iter_ms']:.3g} ms/it)",
                     f"{s['fit_s']:.3g} s / {s['n_iter']} it ({s['per_iter_ms']:.3g} ms/it)",
                     f"{c['ratio']:.1f}x", fmt_ll(c), status(c)])
    for case, label in (("xd_1d_astroml", "XD 1-D K=2"), ("xd_md_astroml", "XD 3-D K=3")):
        c = r[case]
        b, a = c["bayesgmm"], c["astroml"]
        tgt = "-" if c["target_ratio"] is None else f">= {c['target_ratio']:g}x"
        rows.append([f"{label} n={c['n']:,} vs astroML (per iteration)", tgt,
                     f"{b['per_iter_ms']:.3g} ms/it ({b['n_iter']} it)",
                     f"{a['per_iter_ms']:.4g} ms/it", f"{c['ratio']:,.0f}x",
                     fmt_ll(c) + f" @ {a['loglik_at']}", status(c)])
    for case, label in (("xd_1d_large", "XD 1-D K=2"), ("xd_md_bovy", "XD 3-D K=3")):
        c = r[case]
        b, v = c["bayesgmm"], c["bovy_c"]
        row = [f"{label} n={c['n']:,} vs Bovy's C (per iteration)",
               f">= {c['target_ratio']:g}x", f"{b['per_iter_ms']:.3g} ms/it ({b['n_iter']} it)"]
        if v is None:
            asked = report["environment"].get("bovy") is not None
            row += ["skipped (see below)" if asked else "not run (--bovy)", "-", "-", "skip"]
        else:
            ll = fmt_ll(c).replace(" (worse)", " (differs)") + f" @ {v['loglik_at']}"
            if not c["iterations_match"]:
                ll += " (iterations differ)"
            row += [f"{v['per_iter_ms']:.4g} ms/it ({v['threads']} threads)",
                    f"{c['ratio']:.2f}x", ll, status(c)]
        rows.append(row)
    return rows


def print_report(report):
    env = report["environment"]
    head = ["case", "target", "bayesgmm", "peer", "ratio", "loglik diff", "status"]
    rows = [head] + table(report)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    print()
    for j, row in enumerate(rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print()
    if report["quick"]:
        print("--quick: small sizes; ratios are a smoke check, not the targets' measurements.")
    print(f"tol={report['tol']:g} on the change of mean log-likelihood per point for every "
          f"program; best of {report['repeats']}; numba warm-up {env['warmup_s']:.1f} s "
          "excluded.")
    print("loglik diff = bayesgmm - peer, total log-likelihood of the final estimates under "
          "one shared evaluator.")
    print("per-iteration bayesgmm times include its whole fit (validation, standardization).")
    print("per case: bayesgmm time in its kernels, one EM step (kernel + M-step), and the "
          "final total log-likelihoods")
    for case in CASES:
        res = report["results"][case]
        b = res["bayesgmm"]
        step = "n/a" if b.get("step_ms") is None else f"{b['step_ms']:.3g} ms"
        lls = f"bayesgmm {b.get('loglik_after_fixed', b['loglik']):.10g}"
        for peer in ("sklearn", "astroml", "bovy_c"):
            if res.get(peer) is not None:
                lls += f", {peer} {res[peer]['loglik']:.10g}"
                if res[peer].get("step_ms") is not None:
                    step += f" (sklearn E+M step {res[peer]['step_ms']:.3g} ms)"
        print(f"  {case}: kernels {b['kernel_ms_per_iter']:.3g} ms/it "
              f"({100 * b['kernel_share']:.0f}% of the fit), one EM step {step}; "
              f"loglik {lls}")
    blas = [f"{p['prefix']} {p['version'] or ''} {p['architecture'] or ''} "
            f"{p['num_threads']} threads" for p in env["threadpools"]]
    print(f"threads: numba {env['numba_threads']} ({env['numba_threading_layer']}); "
          f"threadpoolctl: {'; '.join(blas)}; OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}")
    bv = env.get("bovy")
    if bv is None:
        print("Bovy's C: not built (say --bovy, or --bovy-src PATH for a local copy)")
    elif "error" in bv:
        print(f"Bovy's C: skipped: {bv['error']}")
    else:
        print(f"Bovy's C: {bv['source']} at {bv['commit']}, built with `{bv['make']}` "
              f"({bv['compiler']}; GSL {bv['gsl']}), {bv['omp_threads']} OpenMP threads; "
              f"per iteration = one call for {report['bovy_iters']} steps / "
              f"{report['bovy_iters']}, bayesgmm likewise (tol=0)")
        print(f"  compile line: {bv['compile_line']}")
    print(f"load average at start {env['loadavg_start'][0]:.2f}, at end "
          f"{env['loadavg_end'][0]:.2f} on {env['cpu_count']} cores")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat (< 30 s)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every n by this")
    ap.add_argument("--repeats", type=int, default=None, help="best of R (default 3; 1 quick)")
    ap.add_argument("--no-astroml-converge", action="store_true",
                    help="compare astroML log-likelihoods after 3 iterations, not at "
                         "convergence")
    ap.add_argument("--astroml-max-iter", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="numba threads (default: numba's, i.e. all cores)")
    ap.add_argument("--bovy", action="store_true",
                    help="build Bovy's extreme-deconvolution (git clone of "
                         f"{BOVY_REPO}) in a temporary folder and run its cases")
    ap.add_argument("--bovy-src", default=None, metavar="PATH",
                    help="build it from this checkout, source tree or (bare) git "
                         "directory instead of cloning (implies --bovy)")
    ap.add_argument("--bovy-cflags", default=BOVY_CFLAGS,
                    help=f"CFLAGS for its Makefile (default {BOVY_CFLAGS!r}; it adds "
                         "-fopenmp -fcommon)")
    ap.add_argument("--bovy-threads", type=int, default=None,
                    help="its OpenMP threads (default: $OMP_NUM_THREADS, else all cores)")
    ap.add_argument("--bovy-iters", type=int, default=None,
                    help=f"EM steps of the Bovy cases, both programs (default "
                         f"{BOVY_ITERS[0]}; {BOVY_ITERS[1]} with --quick)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results path")
    ap.add_argument("--silent", action="store_true", help="print only the table")
    args = ap.parse_args(argv)
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    report = run(args)
    # threadpools are known only once sklearn/scipy have loaded their BLAS
    import threadpoolctl

    report["environment"]["threadpools"] = [
        {k: p.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                               "num_threads", "architecture", "threading_layer", "filepath")}
        for p in threadpoolctl.threadpool_info()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print_report(report)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
