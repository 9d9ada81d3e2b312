"""Does bayesgmm's EM find the best maximum? Against R's mclust and scikit-learn.

On public real data sets shipped with R (``datasets``, ``MASS``, ``mclust``), for each
covariance type (full, tied, diag, spherical; 1-D data have one) and K = 1..5, three
programs fit the mixture by maximum likelihood:

- mclust's ``Mclust`` (model-based hierarchical agglomeration starts; models VVV, EEE,
  VVI, VII, and V in 1-D), run by Debian's ``Rscript`` in a temporary folder;
- scikit-learn's ``GaussianMixture`` with 10 k-means starts (``n_init=10``,
  ``reg_covar=1e-9``, ``tol=1e-8``: as close to plain maximum likelihood as it goes);
- bayesgmm's ``GaussianMixtureEM`` with its defaults.

Every final estimate is scored by one function (scipy's multivariate normal densities
and logsumexp), so the three log-likelihoods are comparable. A case is a miss when
bayesgmm's is more than ``1e-3`` below the best of the other two and that better solution
is not collapsed. Collapsed means a component holding fewer than D + 1 points' worth of
weight (n w_k < D + 1) or a covariance whose smallest eigenvalue, in units of the data's
variance along the same direction, is below 1e-6: a spike on a few points, where the
likelihood is unbounded and a larger value is no better fit.

It also fits ``select_n_components`` (full covariances) and checks that its
log-likelihood never falls as K grows, and it times bayesgmm's fits with and without
the search after the starts (``n_screen=0, split_merge=False``: the starts only).

    python benchmarks/bench_mclust.py            # the table (a few minutes)
    python benchmarks/bench_mclust.py --data galaxies faithful   # some data sets

Needs ``Rscript`` with the ``mclust`` and ``MASS`` packages (Debian: r-base-core,
r-cran-mclust, r-cran-mass); without it the benchmark stops with a message. Never part of
the tests. Results go to ``benchmarks/results/mclust.json``; the table is in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "mclust.json"
TOL = 1e-3
KS = range(1, 6)
TYPES = ("full", "tied", "diag", "spherical")
MCLUST_MODEL = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}

#: name -> R expression giving a numeric data frame or vector
DATA = {
    "galaxies": "MASS::galaxies / 1000",
    "acidity": "mclust::acidity",
    "faithful": "datasets::faithful",
    "geyser": "MASS::geyser",
    "iris": "datasets::iris[, 1:4]",
    "diabetes": "mclust::diabetes[, -1]",
    "thyroid": "mclust::thyroid[, -1]",
    "banknote": "mclust::banknote[, -1]",
    "crabs": "MASS::crabs[, 4:8]",
}

R_SCRIPT = r"""
suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]
names <- strsplit(args[2], ",")[[1]]
exprs <- strsplit(args[3], ";;")[[1]]
rows <- c()
for (i in seq_along(names)) {
  X <- as.matrix(eval(parse(text = exprs[i])))
  storage.mode(X) <- "double"
  write.table(X, file.path(out, paste0(names[i], ".csv")), sep = ",",
              row.names = FALSE, col.names = FALSE)
  d <- ncol(X)
  models <- if (d == 1) c(full = "V") else c(full = "VVV", tied = "EEE", diag = "VVI",
                                              spherical = "VII")
  for (type in names(models)) for (k in 1:5) {
    fit <- tryCatch(Mclust(X, G = k, modelNames = models[[type]], verbose = FALSE),
                    error = function(e) NULL)
    if (is.null(fit)) { rows <- c(rows, paste(names[i], type, k, "NA", sep = ",")); next }
    p <- fit$parameters
    sig <- if (d == 1) array(p$variance$sigmasq, c(1, 1, k)) else p$variance$sigma
    if (length(dim(sig)) < 3) sig <- array(sig, c(d, d, k))
    if (dim(sig)[3] < k) sig <- array(rep(sig, k), c(d, d, k))
    vals <- c(fit$loglik, p$pro, as.vector(matrix(p$mean, nrow = d)), as.vector(sig))
    rows <- c(rows, paste(names[i], type, k, paste(format(vals, digits = 17),
                                                   collapse = " "), sep = ","))
  }
}
writeLines(rows, file.path(out, "mclust.txt"))
"""


def loglik(X, weights, means, covs) -> float:
    """The mixture's log-likelihood, one function for every program's estimate."""
    comp = np.column_stack([
        np.log(w) + multivariate_normal(m, c, allow_singular=True).logpdf(X).reshape(-1)
        for w, m, c in zip(weights, means, covs, strict=True)])
    return float(logsumexp(comp, axis=1).sum())


def collapsed(X, weights, means, covs) -> bool:
    """A component on fewer than D + 1 points' weight, or flat in some direction."""
    n, d = X.shape
    var = np.cov(X.T, bias=True).reshape(d, d)
    for w, c in zip(weights, covs, strict=True):
        if n * w < d + 1:
            return True
        # generalised eigenvalues of (c, var): c's variance along each direction
        # relative to the data's along the same direction
        lam = np.linalg.eigvalsh(np.linalg.solve(np.linalg.cholesky(var), np.linalg.solve(
            np.linalg.cholesky(var), c).T))
        if lam.min() < 1e-6:
            return True
    return False


def run_mclust(names: list[str], tmp: Path) -> dict:
    """Mclust's fits of every data set (and the data, written to ``tmp`` as CSV)."""
    script = tmp / "fit.R"
    script.write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(script), str(tmp), ",".join(names),
                    ";;".join(DATA[n] for n in names)], check=True)
    fits = {}
    for line in (tmp / "mclust.txt").read_text().splitlines():
        name, typ, k, vals = line.split(",")
        k = int(k)
        if vals == "NA":
            fits[name, typ, k] = None
            continue
        v = np.array(vals.split(), dtype=float)
        X = np.loadtxt(tmp / f"{name}.csv", delimiter=",", ndmin=2)
        d = X.shape[1]
        w = v[1:1 + k]
        m = v[1 + k:1 + k + d * k].reshape(k, d)
        c = v[1 + k + d * k:].reshape(k, d, d)  # R's column-major (d, d, k) read back
        fits[name, typ, k] = (w, m, np.ascontiguousarray(np.transpose(c, (0, 2, 1))))
    return fits


def sklearn_fit(X, k, typ):
    from sklearn.mixture import GaussianMixture

    g = GaussianMixture(k, covariance_type=typ, n_init=10, reg_covar=1e-9, tol=1e-8,
                        max_iter=2000, random_state=0).fit(X)
    covs = g.covariances_
    d = X.shape[1]
    if typ == "tied":
        covs = np.broadcast_to(covs, (k, d, d)).copy()
    elif typ == "diag":
        covs = np.array([np.diag(c) for c in covs])
    elif typ == "spherical":
        covs = np.array([c * np.eye(d) for c in covs])
    return g.weights_, g.means_, covs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", choices=list(DATA), default=list(DATA))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if shutil.which("Rscript") is None:
        print("Rscript not found: install Debian's r-base-core, r-cran-mclust and "
              "r-cran-mass to run this benchmark.", file=sys.stderr)
        return 2
    import bayesgmm
    from bayesgmm import GaussianMixtureEM, select_n_components

    GaussianMixtureEM(2).fit(np.random.default_rng(0).normal(size=(50, 2)))  # compile
    rows, misses, monotone = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mc = run_mclust(args.data, tmp)
        for name in args.data:
            X = np.loadtxt(tmp / f"{name}.csv", delimiter=",", ndmin=2)
            d = X.shape[1]
            for typ in (TYPES if d > 1 else ("full",)):
                for k in KS:
                    est = {}
                    if mc.get((name, typ, k)) is not None:
                        est["mclust"] = mc[name, typ, k]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        est["sklearn"] = sklearn_fit(X, k, typ)
                        t0 = time.perf_counter()
                        g0 = GaussianMixtureEM(k, covariance_type=typ, random_seed=0,
                                               n_screen=0, split_merge=False).fit(X)
                        seconds_starts = time.perf_counter() - t0
                        t0 = time.perf_counter()
                        g = GaussianMixtureEM(k, covariance_type=typ,
                                              random_seed=0).fit(X)
                        seconds = time.perf_counter() - t0
                    covs = g.covariances_.reshape(k, d, d) if d > 1 else \
                        g.covariances_.reshape(k, 1, 1)
                    est["bayesgmm"] = (g.weights_, g.means_.reshape(k, d), covs)
                    ll = {p: loglik(X, *e) for p, e in est.items()}
                    starts_ll = float(g0.loglik_)
                    col = {p: collapsed(X, *e) for p, e in est.items()}
                    others = [p for p in ll if p != "bayesgmm" and not col[p]]
                    best_other = max((ll[p] for p in others), default=-np.inf)
                    gap = best_other - ll["bayesgmm"]
                    miss = bool(gap > TOL)
                    row = {"data": name, "n": len(X), "D": d, "type": typ, "K": k,
                           "loglik": ll, "collapsed": col, "gap": gap, "miss": miss,
                           "seconds": seconds, "starts_only": starts_ll,
                           "seconds_starts_only": seconds_starts}
                    rows.append(row)
                    if miss:
                        misses.append(row)
                    print(f"{name:9s} {typ:9s} K={k}  " + "  ".join(
                        f"{p}={ll[p]:12.4f}{'*' if col[p] else ' '}" for p in ll)
                        + f"  gap={gap:+.4f}{'  MISS' if miss else ''}  {seconds:.2f}s"
                        + f"  (starts only {starts_ll:.4f}, {seconds_starts:.2f}s)",
                        flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sel = select_n_components(X, KS, random_seed=0)
            lls = [float(sel.models[k].loglik_) for k in KS]
            ok = bool(np.all(np.diff(lls) >= -1e-6))
            monotone.append({"data": name, "loglik": lls, "non_decreasing": ok})
            print(f"{name:9s} select_n_components log-likelihoods "
                  f"{np.round(lls, 3).tolist()}  non-decreasing: {ok}", flush=True)
    print(f"\n{len(misses)} miss(es) of {len(rows)} cases; select_n_components "
          f"non-decreasing on {sum(m['non_decreasing'] for m in monotone)} of "
          f"{len(monotone)} data sets; bayesgmm's fits took "
          f"{sum(r['seconds'] for r in rows):.1f} s in all, "
          f"{sum(r['seconds_starts_only'] for r in rows):.1f} s with the starts only "
          "(n_screen=0, split_merge=False); the search raised the log-likelihood by more "
          f"than {TOL} in {sum(r['loglik']['bayesgmm'] > r['starts_only'] + TOL for r in rows)}"
          " cases")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bayesgmm": bayesgmm.__version__, "tol": TOL,
                                    "rows": rows, "select": monotone}, indent=1))
    return 0 if not misses and all(m["non_decreasing"] for m in monotone) else 1


if __name__ == "__main__":
    raise SystemExit(main())
