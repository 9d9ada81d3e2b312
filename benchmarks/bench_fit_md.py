"""The D-dimensional Bayesian fit: bayesgmm.fit against the model as PyMC users write it.

Run side by side in one process:

    python benchmarks/bench_fit_md.py           # Old Faithful K = 2; n = 10,000, D = 3,
                                                # K = 3 with errors
    python benchmarks/bench_fit_md.py --quick   # small sizes, 2 x 200 draws (smoke run)
    python benchmarks/bench_fit_md.py --scale   # also bayesgmm alone at n = 10k, 30k, 100k,
                                                # D = 3, K = 3, full error covariances
    python benchmarks/bench_fit_md.py --scale-only --scale-n 10000 100000   # those alone
    python benchmarks/bench_fit_md.py --sim-only --out benchmarks/results/fit_md_sim.json
                                                # the n = 10,000 case alone (about an hour)

The peer is the model the way PyMC users write it (the issue's): ``pm.Mixture`` of K
``pm.MvNormal`` components, each with its own ``pm.LKJCholeskyCov`` (eta = 2, HalfNormal
sds) and Normal means, Dirichlet(1) weights; with measurement errors each component's
covariance is ``Sigma_k + S_i`` (a batched ``MvNormal``). Its priors are bayesgmm's
defaults in data units (means ~ Normal(mean_j, 3 sd_j), sds ~ HalfNormal(sd_j)), so both
sample the same posterior. It starts at the same EM estimate (``initvals``) and is
sampled by nutpie (PyMC's ``nuts_sampler="nutpie"``), 4 chains x 1,000 draws.

The figure of merit is the minimum bulk ESS over weights, means and covariance entries
per wall-second. bayesgmm's time is its whole ``fit`` call (EM, sampling, its rerun rule
if it reruns, relabelling, log-likelihood and predictive draws). The peer's time is
``pm.sample`` (compilation included) after the model is built. The peer's labels are not
identified (no ordering exists in D dimensions), so its ESS is given twice: as a user gets
it, and after relabelling its draws to the EM estimate with bayesgmm's own relabelling
(``bayesgmm.posterior.relabel``); the ratio is judged on the relabelled figure, the one
that favours the peer. Results go to benchmarks/results/fit_md.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "fit_md.json"
TARGET_RATIO = 5.0


def _simulate(n, D, K, seed, errors=True):
    """Well-separated, correlated components; heteroscedastic correlated errors."""
    rng = np.random.default_rng(seed)
    w = np.full(K, 1.0 / K)
    mu = 4.0 * rng.normal(size=(K, D))
    cov = []
    for _ in range(K):
        a = rng.normal(size=(D, D))
        c = a @ a.T / D + 0.3 * np.eye(D)
        cov.append(c)
    cov = np.array(cov)
    lab = rng.choice(K, size=n, p=w)
    true = np.array([rng.multivariate_normal(mu[k], cov[k]) for k in lab])
    if not errors:
        return true, None
    sd = rng.uniform(0.3, 1.2, size=(n, D))
    r = rng.uniform(-0.5, 0.5, size=n)
    S = sd[:, :, None] * sd[:, None, :] * np.where(np.eye(D, dtype=bool), 1.0, r[:, None, None])
    L = np.linalg.cholesky(S)
    x = true + np.einsum("nij,nj->ni", L, rng.standard_normal((n, D)))
    return x, S


def _em(X, S, K, seed):
    from bayesgmm import GaussianMixtureEM

    gm = GaussianMixtureEM(K, covariance_type="full", n_init=5, random_seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X, X_err=S)
    return gm.weights_, gm.means_, gm.covariances_


#: the last peer run's compile and sampling seconds (wall time is their sum)
PEER_TIMES: list[dict] = [{}]


def peer(X, K, seed, S=None, draws=1000, tune=1000, chains=4):
    """The model as users write it, EM start, nutpie. Returns (arrays, seconds, stats)."""
    import pymc as pm

    n, D = X.shape
    loc, sd = X.mean(axis=0), X.std(axis=0)
    w0, mu0, cov0 = _em(X, S, K, seed)
    initvals = {"w": w0}
    with pm.Model() as model:
        w = pm.Dirichlet("w", np.ones(K))
        comps, covs = [], []
        for k in range(K):
            chol, _, _ = pm.LKJCholeskyCov(f"chol{k}", n=D, eta=2.0,
                                           sd_dist=pm.HalfNormal.dist(sigma=sd, shape=D),
                                           compute_corr=True)
            mu = pm.Normal(f"mu{k}", mu=loc, sigma=3 * sd, shape=D)
            cov = pm.Deterministic(f"cov{k}", chol @ chol.T)
            covs.append(cov)
            comps.append(pm.MvNormal.dist(mu=mu, chol=chol) if S is None
                         else pm.MvNormal.dist(mu=mu, cov=cov + S))
            initvals[f"mu{k}"] = mu0[k]
            Lk = np.linalg.cholesky(cov0[k])
            initvals[f"chol{k}"] = Lk[np.tril_indices(D)]
        pm.Mixture("x", w=w, comp_dists=comps, observed=X)
    import nutpie

    # what pm.sample(nuts_sampler="nutpie", initvals=...) does, in its two steps, so that
    # compiling (seconds, once per model) and sampling are timed apart
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = nutpie.compile_pymc_model(model, initial_points=initvals,
                                             backend="numba")
        t_compile = time.perf_counter() - t0
        t1 = time.perf_counter()
        dt = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                           progress_bar=False)
    wall = time.perf_counter() - t0
    PEER_TIMES[-1:] = [{"compile": t_compile, "sample": time.perf_counter() - t1}]
    post = dt["posterior"]
    arrays = {
        "weights": post["w"].values,
        "means": np.stack([post[f"mu{k}"].values for k in range(K)], axis=2),
        "covariances": np.stack([post[f"cov{k}"].values for k in range(K)], axis=2),
    }
    div = int(dt["sample_stats"]["diverging"].sum())
    return arrays, wall, div, {"weights": w0, "means": mu0, "covariances": cov0}


def _upper(cov):
    D = cov.shape[-1]
    i, j = np.triu_indices(D)
    return cov[..., i, j]


def quality(arrays, divergences):
    """Max R-hat and min bulk ESS over weights, means and covariance entries (arviz-stats)."""
    import arviz_stats as azs

    flat = {
        "weights": arrays["weights"],
        "means": arrays["means"].reshape(*arrays["means"].shape[:2], -1),
        "covariances": _upper(arrays["covariances"]).reshape(
            *arrays["covariances"].shape[:2], -1),
    }
    rhat = max(float(np.nanmax(azs.rhat(v))) for v in flat.values())
    ess = min(float(np.nanmin(azs.ess(v, method="bulk"))) for v in flat.values())
    return {"rhat": rhat, "ess_bulk_min": ess, "divergences": divergences}


def relabelled(arrays, pivot):
    """The peer's draws relabelled to the EM estimate (bayesgmm's relabelling)."""
    from bayesgmm.posterior.relabel import relabel_to_pivot

    perm, _ = relabel_to_pivot(arrays["weights"], arrays["means"], arrays["covariances"],
                               pivot)
    out = {}
    for name, a in arrays.items():
        idx = perm.reshape(perm.shape + (1,) * (a.ndim - perm.ndim))
        out[name] = np.take_along_axis(a, idx, axis=2)
    permuted = int(np.any(perm != np.arange(perm.shape[-1]), axis=-1).sum())
    return out, permuted


def ours(X, K, seed, S=None, draws=1000, tune=1000, chains=4):
    import bayesgmm

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = bayesgmm.fit(X, K, X_err=S, random_seed=seed, progressbar=False, draws=draws,
                          tune=tune, chains=chains)
    wall = time.perf_counter() - t0
    post = dt["posterior"]
    arrays = {name: post[name].values for name in ("weights", "means", "covariances")}
    div = int(dt["sample_stats"]["diverging"].sum())
    runs = json.loads(dt.attrs.get("sampling_runs", "[]"))
    return arrays, wall, div, len(runs)


def compare(name, X, K, S, seed, size):
    a_p, t_p, div_p, pivot = peer(X, K, seed, S, **size)
    q_raw = quality(a_p, div_p)
    a_r, permuted = relabelled(a_p, pivot)
    q_rel = quality(a_r, div_p)
    a_o, t_o, div_o, n_runs = ours(X, K, seed, S, **size)
    q_o = quality(a_o, div_o)
    ratio = (q_o["ess_bulk_min"] / t_o) / (q_rel["ess_bulk_min"] / t_p)
    ratio_raw = (q_o["ess_bulk_min"] / t_o) / max(q_raw["ess_bulk_min"] / t_p, 1e-12)
    row = {"case": name, "n": int(X.shape[0]), "D": int(X.shape[1]), "K": K,
           "errors": S is not None, "seed": seed,
           "bayesgmm": {**q_o, "seconds": t_o, "runs": n_runs,
                        "ess_per_s": q_o["ess_bulk_min"] / t_o},
           "peer": {**q_raw, "seconds": t_p, "ess_per_s": q_raw["ess_bulk_min"] / t_p},
           "peer_relabelled": {**q_rel, "draws_permuted": permuted,
                               "ess_per_s": q_rel["ess_bulk_min"] / t_p},
           "ratio": ratio, "ratio_vs_raw_peer": ratio_raw,
           "peer_compile_s": PEER_TIMES[-1].get("compile"),
           "ratio_peer_sampling_only": (q_o["ess_bulk_min"] / t_o) / (
               q_rel["ess_bulk_min"] / PEER_TIMES[-1]["sample"]),
           "pass": bool(ratio >= TARGET_RATIO)}
    print(f"{name:28s} bayesgmm {q_o['ess_bulk_min']:7.0f} ESS / {t_o:6.1f} s "
          f"(R-hat {q_o['rhat']:.3f}, div {div_o}, runs {n_runs}) | "
          f"peer {q_rel['ess_bulk_min']:7.0f}"
          f" relabelled ({q_raw['ess_bulk_min']:.0f} raw, R-hat {q_raw['rhat']:.2f}) / {t_p:6.1f} s"
          f" (div {div_p}) | ratio {ratio:6.1f} ({ratio_raw:.0f} vs raw) "
          f"{'PASS' if row['pass'] else 'FAIL'} (>= {TARGET_RATIO:g}); peer compile "
          f"{PEER_TIMES[-1]['compile']:.1f} s, ratio on its sampling alone "
          f"{row['ratio_peer_sampling_only']:.1f}", flush=True)
    return row


def scale_runs(ns, seed, size):
    """bayesgmm alone, n growing, D = 3, K = 3, full per-point error covariances."""
    rows = []
    for n in ns:
        X, S = _simulate(n, 3, 3, seed)
        a_o, t_o, div_o, n_runs = ours(X, 3, seed, S, **size)
        q = quality(a_o, div_o)
        rows.append({"n": n, "seconds": t_o, "runs": n_runs, **q})
        print(f"scale n={n:>7d} D=3 K=3 full error covariances: {t_o:7.1f} s, "
              f"R-hat {q['rhat']:.3f}, min bulk ESS {q['ess_bulk_min']:.0f}, div {div_o}, "
              f"runs {n_runs} {'PASS' if t_o < 600 else 'FAIL'} (< 600 s at n = 100,000)",
              flush=True)
    for a, b in zip(rows, rows[1:], strict=False):
        b["growth_vs_previous"] = b["seconds"] / a["seconds"]
        print(f"  n {a['n']} -> {b['n']} (x{b['n'] / a['n']:.0f}): time x"
              f"{b['growth_vs_previous']:.2f}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--scale", action="store_true", help="bayesgmm alone at n = 10k..100k")
    ap.add_argument("--scale-only", action="store_true",
                    help="only the --scale runs, without the side-by-side cases")
    ap.add_argument("--scale-n", type=int, nargs="+", default=None, metavar="N",
                    help="the n of the --scale runs (default 10,000 30,000 100,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faithful-only", action="store_true",
                    help="only Old Faithful K = 2 side by side (the simulated n = 10,000 "
                         "case's peer runs for most of an hour)")
    ap.add_argument("--sim-only", action="store_true",
                    help="only the simulated n = 10,000, D = 3, K = 3 case side by side")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    from bayesgmm.datasets import load_example

    size = ({"draws": 200, "tune": 200, "chains": 2} if args.quick
            else {"draws": 1000, "tune": 1000, "chains": 4})
    result = {"environment": {"python": platform.python_version(),
                              "cpus": os.cpu_count(), "load_start": os.getloadavg()},
              "size": size, "cases": [], "scale": []}
    if not (args.scale_only or args.sim_only):
        faithful = load_example("old_faithful").to_numpy()
        result["cases"].append(compare("old_faithful_k2", faithful, 2, None, args.seed, size))
    if not (args.scale_only or args.faithful_only):
        n = 500 if args.quick else 10_000
        X, S = _simulate(n, 3, 3, args.seed)
        result["cases"].append(compare(f"sim_n{n}_d3_k3_errors", X, 3, S, args.seed, size))
    if args.scale or args.scale_only:
        ns = args.scale_n or ([1000, 3000] if args.quick else [10_000, 30_000, 100_000])
        result["scale"] = scale_runs(ns, args.seed, size)
    result["environment"]["load_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
