"""End-to-end Bayesian fit: bayesgmm.fit against a hand-tuned PyMC + nutpie model.

Run side by side in one process:

    python benchmarks/bench_fit.py            # seed 001 (K=3) and seed 000 (K=2), refit
    python benchmarks/bench_fit.py --scale    # also n = 10k, 30k, 100k with errors, K = 3

The hand-tuned model is the issue's: standardized data, Dirichlet(1) weights, ordered
Normal(0, 10) means, HalfNormal(5) sigmas, EM start, nutpie, 4 x 1,000 draws. Both are
timed end to end (model build, compile, EM, sampling); the figure of merit is the
minimum bulk ESS over weights, means and sigmas per wall-second. Results go to
benchmarks/results/fit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

VARS = ["weights", "means", "sigmas"]


def quality(dt, names=VARS):
    import arviz_stats as azs

    rhat = float(azs.rhat(dt, var_names=names).to_dataset().to_array().max())
    ess = float(azs.ess(dt, var_names=names, method="bulk").to_dataset().to_array().min())
    div = int(dt.sample_stats["diverging"].sum())
    return {"rhat": rhat, "ess_bulk_min": ess, "divergences": div}


def hand_tuned(x, K, seed, draws=1000, tune=1000, chains=4):
    import pymc as pm
    from pymc.distributions.transforms import ordered

    from bayesgmm import GaussianMixtureEM

    t0 = time.perf_counter()
    loc, scale = x.mean(), x.std()
    z = (x - loc) / scale
    gm = GaussianMixtureEM(K, random_seed=seed).fit(z)
    o = np.argsort(gm.means_[:, 0])
    with pm.Model(coords={"component": np.arange(K)}):
        w = pm.Dirichlet("weights", np.ones(K), dims="component")
        mu = pm.Normal("mu", 0, 10, dims="component", transform=ordered)
        sigma = pm.HalfNormal("sigma", 5, dims="component")
        pm.NormalMixture("z", w=w, mu=mu, sigma=sigma, observed=z)
        pm.Deterministic("means", loc + scale * mu, dims="component")
        pm.Deterministic("sigmas", scale * sigma, dims="component")
        dt = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed,
                       nuts_sampler="nutpie", progressbar=False,
                       initvals={"weights": gm.weights_[o], "mu": gm.means_[o, 0],
                                 "sigma": np.sqrt(gm.covariances_[o, 0, 0])})
    wall = time.perf_counter() - t0
    return dt, wall


def ours(x, K, seed, X_err=None, **kw):
    import bayesgmm

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = bayesgmm.fit(x, K, X_err=X_err, random_seed=seed, progressbar=False, **kw)
    return dt, time.perf_counter() - t0


def compare(name, x, K, seeds):
    rows = []
    for seed in seeds:
        dt_h, t_h = hand_tuned(x, K, seed)
        q_h = quality(dt_h)
        dt_o, t_o = ours(x, K, seed)
        q_o = quality(dt_o)
        r_h, r_o = q_h["ess_bulk_min"] / t_h, q_o["ess_bulk_min"] / t_o
        runs = json.loads(dt_o.attrs["sampling_runs"])
        rows.append({"seed": seed, "hand_tuned": {**q_h, "wall_s": t_h, "ess_per_s": r_h},
                     "bayesgmm": {**q_o, "wall_s": t_o, "ess_per_s": r_o, "runs": runs},
                     "ratio_ess_per_s": r_o / r_h})
        print(f"{name} seed {seed}: hand-tuned {t_h:6.1f} s  ESS {q_h['ess_bulk_min']:6.0f} "
              f"R-hat {q_h['rhat']:.3f} div {q_h['divergences']:3d} | bayesgmm {t_o:6.1f} s "
              f"ESS {q_o['ess_bulk_min']:6.0f} R-hat {q_o['rhat']:.3f} "
              f"div {q_o['divergences']:3d} runs {len(runs)} | ESS/s ratio {r_o / r_h:5.2f}",
              flush=True)
    return rows


def refit(x, K):
    """Second fit of the same structure on new data: no compilation at all."""
    from bayesgmm.datasets import simulate

    other = simulate(x.size, [0.35, 0.5, 0.15], [-1, 0, 3], [1.5, 1, 0.5], random_seed=9).x
    # one run each (target_accept given, so no rerun after divergences): like for like
    _, t1 = ours(x, K, 0, draws=200, tune=200, target_accept=0.8)
    _, t2 = ours(other, K, 0, draws=200, tune=200, target_accept=0.8)
    print(f"refit: first fit {t1:.1f} s, refit on new data {t2:.1f} s (200+200 draws)")
    return {"first_s": t1, "refit_s": t2}


def scale_runs(ns):
    from bayesgmm.datasets import simulate

    out = []
    for n in ns:
        sim = simulate(n, [0.3, 0.5, 0.2], [-2.0, 0.5, 3.0], [0.6, 0.8, 0.4],
                       error_range=(0.1, 0.8), random_seed=n)
        dt, t = ours(sim.x, 3, 1, X_err=sim.x_err)
        q = quality(dt)
        steps = float(dt.sample_stats["n_steps"].mean())
        out.append({"n": n, "wall_s": t, **q, "mean_n_steps": steps})
        print(f"n={n:7d}: {t:7.1f} s  R-hat {q['rhat']:.3f}  ESS {q['ess_bulk_min']:.0f}  "
              f"div {q['divergences']}  mean leapfrog steps {steps:.1f}", flush=True)
    return out


def main(argv=None):
    from bayesgmm.datasets import seed000_data, seed001_data

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--scale", action="store_true", help="also n = 10k, 30k, 100k")
    p.add_argument("--scale-n", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    args = p.parse_args(argv)
    # warm caches (numba disk cache of the fused log-density; imports)
    ours(seed000_data(), 2, 0, draws=20, tune=20, chains=1)
    res = {"load_start": os.getloadavg()}
    res["seed001_k3"] = compare("seed001 K=3", seed001_data(), 3, args.seeds)
    res["seed000_k2"] = compare("seed000 K=2", seed000_data(), 2, args.seeds)
    res["refit"] = refit(seed001_data(), 3)
    if args.scale:
        res["scale"] = scale_runs(args.scale_n)
    res["load_end"] = os.getloadavg()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "fit.json").write_text(json.dumps(res, indent=2))
    print(f"wrote {out / 'fit.json'}")


if __name__ == "__main__":
    main()
