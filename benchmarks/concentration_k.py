"""Does p(K | data) concentrate on the true K as n grows? (issue 15's target)

    python benchmarks/concentration_k.py                 # n = 1,000, K = 1..4, ks 1..6
    python benchmarks/concentration_k.py --n 1000 3000 --seeds 2

Simulated 1-D data with K = 1, 2, 3, 4 components, in two layouts:

* ``separated``: equal weights, unit widths, means 6 apart (each pair of neighbours
  is a clear gap: the mixture's density dips to about 1% of its peaks between them);
* ``overlapping``: unequal weights (K = 4: 0.4, 0.3, 0.2, 0.1), unit widths, means
  2.5 apart (neighbours overlap; the density between them dips to about half).

For each, ``bayesgmm.posterior_k(x, ks=range(1, 7))`` at its defaults (``method="auto"``:
NUTS's draws and importance sampling where n K > 1,000, SMC's below), and the most
probable K beside the truth. The target: the mode is the truth for n >= 1,000 in every
separated case; the overlapping cases are reported (with few points per component a
smaller K can be the better explanation, which is the posterior's honest answer).
Results go to benchmarks/results/concentration_k.json.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "concentration_k.json"
LAYOUTS = {
    "separated": (6.0, lambda K: np.full(K, 1.0 / K)),
    "overlapping": (2.5, lambda K: (np.arange(K, 0, -1) / np.arange(K, 0, -1).sum())),
}


def simulate(K: int, layout: str, n: int, seed: int) -> np.ndarray:
    """n points from the layout's mixture of K unit-width components."""
    import bayesgmm

    gap, weights = LAYOUTS[layout]
    return bayesgmm.datasets.simulate(n, weights(K), gap * np.arange(K), np.ones(K),
                                      random_seed=seed).x


def main() -> None:
    import bayesgmm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--k-true", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    ks = list(range(1, 7))
    rows = []
    for n in args.n:
        for layout in LAYOUTS:
            for K in args.k_true:
                if layout == "overlapping" and K == 1:
                    continue  # one component: the layouts coincide
                for seed in range(args.seeds):
                    x = simulate(K, layout, n, seed)
                    t = time.perf_counter()
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        pk = bayesgmm.posterior_k(x, ks=ks, random_seed=seed)
                    seconds = time.perf_counter() - t
                    p = pk.probabilities
                    row = {"n": n, "layout": layout, "k_true": K, "seed": seed,
                           "p": p.tolist(), "p_sd": pk.probabilities_sd.tolist(),
                           "mode": int(pk.best), "method": list(pk.method),
                           "pareto_k": [float(v) for v in pk.pareto_k],
                           "warnings": len(caught), "seconds": seconds}
                    rows.append(row)
                    ok = "PASS" if pk.best == K else (
                        "FAIL" if layout == "separated" else "(reported)")
                    print(f"n = {n:5d} {layout:11s} K = {K}: mode {pk.best} "
                          f"p(K_true) {p[K - 1]:.3f}  p = "
                          + " ".join(f"{v:.3f}" for v in p)
                          + f"  {seconds:5.0f} s  {ok}; methods "
                          + ",".join(m.split("+")[0] for m in pk.method), flush=True)
    sep = [r for r in rows if r["layout"] == "separated"]
    hits = sum(r["mode"] == r["k_true"] for r in sep)
    print(f"separated: mode = truth in {hits} of {len(sep)} (target: all)")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
