"""What p(K | data) costs in D dims at ``bayesgmm fit --k auto``'s limit.

    python benchmarks/posterior_k_md_cost.py              # D = 2 and 3, n = 500, K = 1..5
    python benchmarks/posterior_k_md_cost.py --d 3 --n 300 --k-max 4

Three unit-width Gaussians 4 apart (seed 0), ``posterior_k(X, ks=[K])`` at its defaults
for each K in turn (SMC's proposal: the only one in D dims), timed. ``--k auto``
computes p(K | data) over K = 1..(its largest candidate + 2) on at most
``bayesgmm.cli.fit.POSTERIOR_K_MAX_N_MD`` points; this shows what that limit costs.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> None:
    import bayesgmm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--k-max", type=int, default=5)
    args = ap.parse_args()
    for D in args.d:
        rng = np.random.default_rng(0)
        means = np.zeros((3, D))
        means[1, 0] = means[2, 1] = 4.0
        X = means[rng.integers(0, 3, args.n)] + rng.normal(size=(args.n, D))
        total = 0.0
        for K in range(1, args.k_max + 1):
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the method column says what a warning would
                pk = bayesgmm.posterior_k(X, ks=[K], random_seed=K)
            dt = time.perf_counter() - t
            total += dt
            print(f"D = {D}, n = {args.n}, K = {K}: log evidence {pk.log_evidence[0]:.2f} "
                  f"+- {pk.log_evidence_se[0]:.3f} ({pk.method[0]}, k-hat "
                  f"{pk.pareto_k[0]:.2f}); {dt:.1f} s", flush=True)
        print(f"D = {D}: K = 1..{args.k_max} in {total:.0f} s", flush=True)


if __name__ == "__main__":
    main()
