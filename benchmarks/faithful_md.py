"""Old Faithful in two dimensions: does ``bayesgmm.fit`` sample it well on every seed?

The D-dimensional issue's target, on R's ``faithful`` (272 eruptions; duration and
waiting time together), K = 2 and K = 3, fit's defaults (4 chains x 1,000 draws, nutpie,
its rerun rule): max R-hat <= 1.01, no divergence and min bulk ESS >= 400 over weights,
means and covariance entries, on at least 9 of 10 seeds each; and at K = 2 the posterior
means within 2 posterior sd of the EM estimate.

    python benchmarks/faithful_md.py                 # K = 2 and 3, seeds 1..10
    python benchmarks/faithful_md.py --seeds 3 --k 2 # fewer

Each fit's figures are printed as it finishes and all go to
benchmarks/results/faithful_md.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "faithful_md.json"
RHAT_MAX, ESS_MIN, NEEDED = 1.01, 400.0, 9


def figures(dt) -> dict:
    """R-hat, bulk ESS and divergences over weights, means and covariance entries."""
    import arviz_stats as azs

    post = dt["posterior"]
    D = post.sizes["feature"]
    i, j = np.triu_indices(D)
    cov = post["covariances"].values[..., i, j]
    arrays = {"weights": post["weights"].values,
              "means": post["means"].values.reshape(*post["means"].shape[:2], -1),
              "covariances": cov.reshape(*cov.shape[:2], -1)}
    rhat = max(float(np.nanmax(azs.rhat(a))) for a in arrays.values())
    ess = min(float(np.nanmin(azs.ess(a, method="bulk"))) for a in arrays.values())
    div = int(dt["sample_stats"]["diverging"].sum())
    return {"rhat": rhat, "ess_bulk_min": ess, "divergences": div,
            "ok": bool(rhat <= RHAT_MAX and ess >= ESS_MIN and div == 0)}


def near_em(dt) -> dict:
    """How many posterior sds each posterior mean lies from the EM estimate (worst one)."""
    post, em = dt["posterior"], dt["em_estimate"]
    worst = 0.0
    for name in ("weights", "means", "covariances"):
        draws = post[name].values.reshape(-1, *post[name].shape[2:])
        z = np.abs(draws.mean(axis=0) - em[name].values) / np.maximum(draws.std(axis=0),
                                                                        1e-300)
        worst = max(worst, float(np.max(z[np.isfinite(z)])))
    return {"max_sd_from_em": worst, "within_2sd": bool(worst <= 2.0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--k", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    import bayesgmm
    from bayesgmm.datasets import load_example

    X = load_example("old_faithful")
    rows = []
    for K in args.k:
        for seed in range(1, args.seeds + 1):
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                dt = bayesgmm.fit(X, K, random_seed=seed, progressbar=False)
            row = {"K": K, "seed": seed, "seconds": time.perf_counter() - t0,
                   **figures(dt), "runs": len(json.loads(dt.attrs["sampling_runs"])),
                   "warnings": sorted({str(w.message).split(";")[0] for w in caught})}
            if K == 2:
                row.update(near_em(dt))
            rows.append(row)
            print(f"K={K} seed={seed:2d}: R-hat {row['rhat']:.4f}, min bulk ESS "
                  f"{row['ess_bulk_min']:6.0f}, divergences {row['divergences']}, runs "
                  f"{row['runs']}, {row['seconds']:.0f} s"
                  + (f", max |mean - EM| {row['max_sd_from_em']:.2f} sd" if K == 2 else "")
                  + ("" if row["ok"] else "  <- fails"), flush=True)
    status = 0
    for K in args.k:
        rs = [r for r in rows if r["K"] == K]
        good = sum(r["ok"] for r in rs)
        line = f"K={K}: {good}/{len(rs)} seeds pass (target >= {NEEDED} of 10)"
        if K == 2:
            line += f"; posterior means within 2 sd of EM on {sum(r['within_2sd'] for r in rs)}"
        print(line)
        status |= good < min(NEEDED, len(rs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "load": os.getloadavg()}, indent=1))
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main())
