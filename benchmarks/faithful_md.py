"""Old Faithful in two dimensions: does ``bayesgmm.fit`` sample it well on every seed?

The D-dimensional issue's target, on R's ``faithful`` (272 eruptions; duration and
waiting time together), K = 2 and K = 3, fit's defaults (4 chains x 1,000 draws, nutpie,
its rerun rule): max R-hat <= 1.01, no divergence and min bulk ESS >= 400 over weights,
means and covariance entries, on at least 9 of 10 seeds each; and at K = 2 the posterior
means within 2 posterior sd of the EM estimate.

    python benchmarks/faithful_md.py                 # K = 2 and 3, seeds 1..10
    python benchmarks/faithful_md.py --seeds 3 --k 2 # fewer
    python benchmarks/faithful_md.py --k 3 --sampler smc   # tempered SMC (~2 min a fit)
    python benchmarks/faithful_md.py --k 3 --sampler smc --seeds 3 --reference-draws 20000
    python benchmarks/faithful_md.py --k 3 --rounding    # defaults, with the rounding errors

``--sampler smc`` (and ``--rounding`` with the default sampler, whose rerun rule ends
with SMC when both NUTS runs fail R-hat) fits with the rounding errors the data carry
(durations recorded to the second, waiting times to the minute: sds (1/60)/sqrt(12) and
1/sqrt(12) min):
without them the values repeat exactly and the posterior has no finite normalising
constant, which SMC, starting from the prior, refuses (``check_no_ties_md``). Its
draws are importance-resampled, so besides R-hat and bulk ESS the importance
weights' own ESS must reach 400 and their Pareto k-hat stay below 0.7.

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
    stats = dt["sample_stats"]
    # SMC + importance sampling has no divergent transitions; its weights' ESS and
    # k-hat are its own check
    div = int(stats["diverging"].sum()) if "diverging" in stats else 0
    ok = rhat <= RHAT_MAX and ess >= ESS_MIN and div == 0
    out = {"rhat": rhat, "ess_bulk_min": ess, "divergences": div}
    run = json.loads(dt.attrs["sampling_runs"])[-1]
    if run.get("sampler") == "smc":
        out.update(importance_ess=run["importance_ess"], pareto_k=run["pareto_k"],
                   evidence_method=run["evidence_method"])
        ok = ok and run["importance_ess"] >= ESS_MIN and run["pareto_k"] < 0.7
    return {**out, "ok": bool(ok)}


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


def summary(dt) -> dict:
    """Posterior mean and sd of weights, means and sds (flattened), with each mean's se.

    The se is sd / sqrt(ESS), ESS the smaller of ArviZ's bulk ESS and, for SMC's
    importance-resampled draws, the importance weights' ESS.
    """
    import arviz_stats as azs

    post = dt["posterior"]
    run = json.loads(dt.attrs["sampling_runs"])[-1]
    out = {}
    for name in ("weights", "means", "sds"):
        a = post[name].values.reshape(*post[name].shape[:2], -1)
        ess = np.asarray(azs.ess(a, method="bulk"), float)
        if "importance_ess" in run:
            ess = np.minimum(ess, run["importance_ess"])
        sd = a.std(axis=(0, 1))
        out[name] = {"mean": a.mean(axis=(0, 1)).tolist(), "sd": sd.tolist(),
                     "se": (sd / np.sqrt(ess)).tolist()}
    return out


def compare(row: dict, ref: dict) -> float:
    """The largest |z| of the posterior means against the reference's (both se's)."""
    worst = 0.0
    for name, r in ref.items():
        m, se = np.array(row[name]["mean"]), np.array(row[name]["se"])
        z = (m - np.array(r["mean"])) / np.hypot(se, np.array(r["se"]))
        worst = max(worst, float(np.max(np.abs(z))))
    return worst


def reference(X, K: int, rounding, draws: int) -> dict:
    """A long NUTS run (4 chains x ``draws``) of the same model: the reference posterior."""
    import bayesgmm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = bayesgmm.fit(X, K, X_err=rounding, draws=draws, tune=2000, random_seed=11,
                          progressbar=False, log_likelihood=False)
    return {**summary(dt), **figures(dt)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--k", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--sampler", default="nutpie", choices=["nutpie", "smc"])
    ap.add_argument("--reference-draws", type=int, default=0, metavar="N",
                    help="also run NUTS for 4 x N draws (one seed) as a reference and "
                         "compare each fit's posterior means with its (z-scores)")
    ap.add_argument("--rounding", action="store_true",
                    help="pass the rounding errors with the default sampler too")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import bayesgmm
    from bayesgmm.datasets import load_example

    X = load_example("old_faithful")
    rounding = (np.tile([1 / 60 / np.sqrt(12), 1 / np.sqrt(12)], (len(X), 1))
                if args.sampler == "smc" or args.rounding else None)
    out = args.out or OUT.with_name(f"faithful_md_{args.sampler}"
                                    f"{'_rounding' if args.rounding else ''}.json")
    refs = {}
    if args.reference_draws:
        for K in args.k:
            t0 = time.perf_counter()
            refs[K] = reference(X, K, rounding, args.reference_draws)
            print(f"K={K} reference (NUTS, 4 x {args.reference_draws}): R-hat "
                  f"{refs[K]['rhat']:.4f}, min bulk ESS {refs[K]['ess_bulk_min']:.0f}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for K in args.k:
        for seed in range(1, args.seeds + 1):
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                dt = bayesgmm.fit(X, K, X_err=rounding, sampler=args.sampler,
                                  random_seed=seed, progressbar=False)
            row = {"K": K, "seed": seed, "seconds": time.perf_counter() - t0,
                   **figures(dt), "runs": len(json.loads(dt.attrs["sampling_runs"])),
                   "warnings": sorted({str(w.message).split(";")[0] for w in caught})}
            if K == 2:
                row.update(near_em(dt))
            if K in refs:
                row.update(summary(dt))
                row["max_z_vs_reference"] = compare(row, {n: refs[K][n] for n in
                                                          ("weights", "means", "sds")})
            rows.append(row)
            print(f"K={K} seed={seed:2d}: R-hat {row['rhat']:.4f}, min bulk ESS "
                  f"{row['ess_bulk_min']:6.0f}, divergences {row['divergences']}, runs "
                  f"{row['runs']}, {row['seconds']:.0f} s"
                  + (f", importance ESS {row['importance_ess']:.0f}, k-hat "
                     f"{row['pareto_k']:.2f}" if "pareto_k" in row else "")
                  + (f", max |z| vs reference {row['max_z_vs_reference']:.1f}"
                     if "max_z_vs_reference" in row else "")
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "references": refs, "load": os.getloadavg()},
                              indent=1))
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main())
