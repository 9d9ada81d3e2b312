"""fit(sampler="numpyro") on big data: ESS per second and wall time, on a GPU or a CPU.

Issue 16's cases: n = 1e6 and 1e7 1-D points with per-point errors, K = 3; and n = 1e6,
D = 3 (full covariances, per-point error sds), K = 3. Each is fitted once by NumPyro's
NUTS in JAX (``sampler="numpyro"``: 4 chains vectorized, 1,000 tuning + 1,000 draws) on
whatever device JAX sees, and, with ``--default``, by the default nutpie path on the CPU
for comparison. ``--n-scale`` shrinks every n (0.01 on a laptop CPU).

    python benchmarks/bench_gpu.py [--n-scale 1] [--default] [--cases 1d_1e6 1d_1e7 3d_1e6]

Needs the ``bayesgmm[jax]`` extra (on a GPU, JAX's CUDA wheels: ``pip install
'jax[cuda12]'``). Prints one line per case and writes results/bench_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {"1d_1e6": (1, 1_000_000), "1d_1e7": (1, 10_000_000), "3d_1e6": (3, 1_000_000)}


def simulate(d: int, n: int, seed: int = 0):
    """K = 3 well-separated components with per-point error sds in 0.2-0.6."""
    rng = np.random.default_rng(seed)
    lab = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 3.0, -2.0], [9.0, -1.0, 3.0]])[:, :d]
    err = rng.uniform(0.2, 0.6, (n, d))
    X = centres[lab] + rng.normal(0, 1, (n, d)) + rng.normal(0, 1, (n, d)) * err
    return (X[:, 0], err[:, 0]) if d == 1 else (X, err)


def one(X, err, sampler: str) -> dict:
    import bayesgmm

    t0 = time.perf_counter()
    dt = bayesgmm.fit(X, 3, X_err=err, sampler=sampler, random_seed=1, progressbar=False)
    wall = time.perf_counter() - t0
    run = json.loads(dt.attrs["sampling_runs"])[-1]
    return {"sampler": sampler, "wall_s": wall, "min_ess_bulk": run["min_ess_bulk"],
            "ess_per_s": run["min_ess_bulk"] / wall, "max_rhat": run["max_rhat"],
            "divergences": run["divergences"], "failed": run["failed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-scale", type=float, default=1.0,
                        help="multiply every case's n by this (default 1)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--default", action="store_true",
                        help="also fit with the default sampler (nutpie, CPU)")
    args = parser.parse_args()
    import jax

    device = str(jax.devices()[0])
    print(f"JAX device: {device}", flush=True)
    report = {"device": device, "n_scale": args.n_scale, "cases": {}}
    for name in args.cases:
        d, n = CASES[name]
        n = max(1000, int(n * args.n_scale))
        X, err = simulate(d, n)
        rows = [one(X, err, "numpyro")]
        if args.default:
            rows.append(one(X, err, "nutpie"))
        report["cases"][name] = {"n": n, "d": d, "runs": rows}
        for r in rows:
            print(f"{name} (n = {n:,}, D = {d}): {r['sampler']}: {r['wall_s']:.1f} s, min "
                  f"bulk ESS {r['min_ess_bulk']:.0f}, {r['ess_per_s']:.1f} ESS/s, R-hat "
                  f"{r['max_rhat']:.3f}, {r['divergences']} divergences"
                  + (f", failed {r['failed']}" if r["failed"] else ""), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_gpu.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
