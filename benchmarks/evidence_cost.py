"""What one K's evidence costs beside that K's posterior fit (issue 15's speed target).

    python benchmarks/evidence_cost.py                 # seed 001 (K = 2, 3, 4), galaxy (K = 3)
    python benchmarks/evidence_cost.py --repeats 2

Per data set and K, in one run: ``bayesgmm.fit(x, K)`` at its defaults (EM start, 4 x
1,000 NUTS draws, the rerun rule, modes, log-likelihood, predictive) and
``bayesgmm.posterior_k(x, ks=[K])`` at its defaults (``method="auto"``: one NUTS run,
climbs from random EM maxima, importance sampling; SMC where that fails its check and
n K <= 1,000), each after a warm-up call so compilation is not timed; the ratio
evidence / fit (target: <= 3), and the evidence's method and k-hat. Results go to
benchmarks/results/evidence_cost.json.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "evidence_cost.json"


def _timed(f, *args, **kwargs):
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = f(*args, **kwargs)
    return out, time.perf_counter() - t


def main() -> None:
    import bayesgmm
    from bayesgmm.datasets import load_example, seed001_data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    cases = [("seed001", np.asarray(seed001_data()).ravel(), k) for k in (2, 3, 4)]
    cases.append(("galaxy", load_example("galaxy")["velocity [km/s]"].to_numpy(), 3))
    # warm-up: compile every kernel both paths use
    _timed(bayesgmm.posterior_k, cases[0][1][:200], ks=[2], random_seed=0)
    _timed(bayesgmm.fit, cases[0][1][:200], 2, random_seed=0, progressbar=False)
    rows = []
    for name, x, k in cases:
        for r in range(args.repeats):
            _, t_fit = _timed(bayesgmm.fit, x, k, random_seed=r, progressbar=False)
            pk, t_ev = _timed(bayesgmm.posterior_k, x, ks=[k], random_seed=r)
            rows.append({"data": name, "n": int(x.size), "k": k, "repeat": r,
                         "fit_s": t_fit, "evidence_s": t_ev, "ratio": t_ev / t_fit,
                         "method": pk.method[0], "pareto_k": float(pk.pareto_k[0])})
            print(f"{name:8s} n = {x.size:5d} K = {k}: fit {t_fit:6.1f} s, evidence "
                  f"{t_ev:6.1f} s, ratio {t_ev / t_fit:4.2f} ({pk.method[0]}, k-hat "
                  f"{pk.pareto_k[0]:.2f})", flush=True)
    ratios = np.array([r["ratio"] for r in rows])
    print(f"ratio evidence / fit: median {np.median(ratios):.2f}, max {ratios.max():.2f} "
          "(target <= 3)")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
