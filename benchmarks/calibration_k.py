"""Is p(K | data) calibrated? K and the data drawn from the prior, many times over.

    python benchmarks/calibration_k.py                  # 120 data sets, n = 40, K = 1..3
    python benchmarks/calibration_k.py --sets 200 --n 60 --workers 2

Each data set: K drawn uniformly from 1..k_max, then the mixture from the priors
``posterior_k`` is given (fixed, in data units, so the data really come from the prior:
weights Dirichlet(1), means N(0, 3^2), widths HalfNormal(1)), then n points. Where
p(K | data) is right, the data sets given p(K = k | data) of about q have K = k in a
fraction q of them: every (data set, k) pair is binned by its p(K = k | data), and each
bin's mean probability is printed beside the fraction of its pairs whose k is the true
K, with a binomial standard error (a reliability diagram). Also the mean log score and
how often the most probable K is the true one. ``posterior_k`` at a reduced budget (2 x
500 SMC particles, 50,000 importance draws): calibration needs no precise evidence.
Results go to benchmarks/results/calibration_k.json.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "calibration_k.json"
PRIORS = {"weights_alpha": 1.0, "means_mu": 0.0, "means_sigma": 3.0, "sigmas_sigma": 1.0}


def one(args: tuple[int, int, int, str]) -> dict:
    import bayesgmm

    seed, n, k_max, method = args
    rng = np.random.default_rng(seed)
    K = int(rng.integers(1, k_max + 1))
    w = rng.dirichlet(np.ones(K))
    mu = rng.normal(PRIORS["means_mu"], PRIORS["means_sigma"], K)
    sg = np.abs(rng.normal(0.0, PRIORS["sigmas_sigma"], K))
    z = rng.choice(K, size=n, p=w)
    x = rng.normal(mu[z], sg[z])
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk = bayesgmm.posterior_k(x, ks=range(1, k_max + 1), priors=PRIORS, method=method,
                                  n_particles=500, n_runs=2, n_importance=50_000,
                                  draws=250, random_seed=seed)
    return {"seed": seed, "k_true": K, "p": pk.probabilities.tolist(),
            "method": pk.method, "seconds": time.perf_counter() - t}


def _one_thread() -> None:
    """Each worker process runs numba on one thread: the workers fill the cores already,
    and OpenMP threads of several processes on too few cores wait on each other."""
    import os

    os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=120)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--k-max", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--method", default="auto", choices=["auto", "nuts", "smc"])
    args = ap.parse_args()
    jobs = [(s, args.n, args.k_max, args.method) for s in range(args.sets)]
    rows = []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=_one_thread) as pool:
        for i, r in enumerate(pool.map(one, jobs), 1):
            rows.append(r)
            if i % 10 == 0:
                print(f"{i} / {args.sets} data sets, {time.perf_counter() - t0:.0f} s",
                      flush=True)
    p = np.array([r["p"] for r in rows])
    truth = np.array([r["k_true"] for r in rows])
    hit = (np.arange(1, args.k_max + 1)[None, :] == truth[:, None])
    edges = np.array([0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0 + 1e-9])
    print(f"\n{'p(K = k | data) bin':>20} {'pairs':>6} {'mean p':>7} {'fraction true':>14} "
          f"{'se':>6} {'z':>6}")
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (p >= lo) & (p < hi)
        m = int(sel.sum())
        if m == 0:
            continue
        mp, fr = float(p[sel].mean()), float(hit[sel].mean())
        se = float(np.sqrt(max(mp * (1 - mp), 1e-12) / m))
        bins.append({"lo": float(lo), "hi": float(min(hi, 1.0)), "pairs": m,
                     "mean_p": mp, "fraction_true": fr, "se": se, "z": (fr - mp) / se})
        print(f"{lo:9.2f} - {min(hi, 1.0):4.2f}      {m:6d} {mp:7.3f} {fr:14.3f} {se:6.3f} "
              f"{(fr - mp) / se:6.2f}")
    p_true = p[hit]
    print(f"\nmean log p(K_true | data) {np.mean(np.log(np.maximum(p_true, 1e-300))):.3f}; "
          f"most probable K is the true one in {np.mean(p.argmax(1) + 1 == truth):.3f} of "
          f"{len(rows)} data sets; {time.perf_counter() - t0:.0f} s")
    OUT.parent.mkdir(exist_ok=True)
    out = OUT if args.method == "auto" else OUT.with_name(f"calibration_k_{args.method}.json")
    out.write_text(json.dumps({"args": vars(args), "bins": bins, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
