"""What p(K | data) costs in D dims at ``bayesgmm fit --k auto``'s limit.

    python benchmarks/posterior_k_md_cost.py              # D = 2 and 3, n = 500, K = 1..5
    python benchmarks/posterior_k_md_cost.py --d 3 --n 300 --k-max 4

Three unit-width Gaussians 4 apart (seed 0), ``posterior_k(X, ks=range(1, k_max + 1))``
at its defaults (SMC's proposal: the only one in D dims; a K whose importance check is
unsure takes its evidence from K - 1's through an empty component), each K's steps
timed. ``--k auto``
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
    import importlib

    # every K in one call (a K may take its evidence from K - 1's); each K's seconds
    # from timing its steps (SMC + importance, and the Gibbs sampler where it runs)
    pk_mod = importlib.import_module("bayesgmm.bayes.posterior_k")
    empty_mod = importlib.import_module("bayesgmm.bayes.empty")
    seconds: dict[int, float] = {}

    def timed(fn, key):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            out = fn(*a, **kw)
            k = key(a)
            seconds[k] = seconds.get(k, 0.0) + time.perf_counter() - t
            return out
        return wrapper

    pk_mod._one_k = timed(pk_mod._one_k, lambda a: a[0].K)
    pk_mod.empty_probability_md = timed(empty_mod.empty_probability_md,
                                        lambda a: a[0].n_components)
    for D in args.d:
        rng = np.random.default_rng(0)
        means = np.zeros((3, D))
        means[1, 0] = means[2, 1] = 4.0
        X = means[rng.integers(0, 3, args.n)] + rng.normal(size=(args.n, D))
        seconds.clear()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the method column says what a warning would
            pk = bayesgmm.posterior_k(X, ks=range(1, args.k_max + 1), random_seed=D)
        total = time.perf_counter() - t
        for i, K in enumerate(pk.ks):
            empty = pk.fits[int(K)].attrs.get("empty_probability")
            print(f"D = {D}, n = {args.n}, K = {K}: log evidence {pk.log_evidence[i]:.2f} "
                  f"+- {pk.log_evidence_se[i]:.3f} ({pk.method[i]}, k-hat "
                  f"{pk.pareto_k[i]:.2f}" + ("" if empty is None else
                                              f", P(empty) {empty:.3f}")
                  + f"); {seconds.get(int(K), float('nan')):.1f} s", flush=True)
        print(f"D = {D}: K = 1..{args.k_max} in {total:.0f} s; p(K | data) "
              + ", ".join(f"{p:.3f}" for p in pk.probabilities), flush=True)


if __name__ == "__main__":
    main()
