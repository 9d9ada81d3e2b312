"""Benchmark the fused mixture log-likelihood Op against plain PyTensor graphs under nutpie.

The model is the 1-D Bayesian mixture on standardized data with per-point errors:
``w ~ Dirichlet(1)``, ``mu ~ Normal`` (ordered), ``sigma ~ HalfNormal``, labels
marginalised. Likelihoods compared, all compiled by ``nutpie.compile_pymc_model``
(numba backend):

- ``normalmixture``: ``pm.NormalMixture`` with per-point sigmas of shape (n, K);
- ``logsumexp``: an explicit ``logsumexp`` graph in a ``pm.Potential``;
- ``fused``: ``mixture_logp_total`` in a ``pm.Potential``;
- ``customdist``: ``mixture_logp_pointwise`` as ``pm.CustomDist(logp=...)`` (rewritten
  to the fused total when the model is compiled).

For each: the time of one logp+gradient evaluation through nutpie's own compiled
C function (the one the sampler calls, timed through ctypes), at n = 10k, 100k and 1M
(``with_data``, no recompilation); then a short sampling run (2 chains x 200 tune x
200 draws) at n = 100k, with its wall time, gradient evaluations (sum of ``n_steps``
over warm-up and draws) and time per gradient, extrapolated to 4 chains x (1000 tune +
1000 draws) on 2 cores. A one-parameter model gives nutpie's floor per gradient.

The machine may be shared: the load average is printed, and process CPU time is
reported next to wall time. ``--full`` also runs the full 4 x (1000 + 1000) for the
fused model. ``--quick`` is a smoke run (n = 2k and 10k, 2 x (50 + 50)).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesgmm.bayes.logp_op import mixture_logp_pointwise, mixture_logp_total
from bayesgmm.datasets import simulate

K = 3
SIZES = (10_000, 100_000, 1_000_000)


def make_data(n, seed=0):
    """Standardized data and squared errors from a 3-component mixture with errors."""
    sim = simulate(n, [0.5, 0.3, 0.2], [-2.0, 0.5, 3.0], [0.6, 0.4, 1.0],
                   error_range=(0.1, 0.8), random_seed=seed)
    loc, scale = sim.x.mean(), sim.x.std()
    return (sim.x - loc) / scale, (sim.x_err / scale) ** 2


def build_model(kind, x, e2):
    """The benchmark model with likelihood ``kind``."""
    coords = {"component": np.arange(K)}
    with pm.Model(coords=coords) as model:
        xd = pm.Data("x", x)
        ed = pm.Data("e2", e2)
        w = pm.Dirichlet("w", np.ones(K), dims="component")
        mu = pm.Normal("mu", np.linspace(-1, 1, K), 2.0, dims="component",
                       transform=pm.distributions.transforms.ordered)
        sigma = pm.HalfNormal("sigma", 1.0, dims="component")
        if kind == "normalmixture":
            sd = pt.sqrt(sigma**2 + ed[:, None])
            pm.NormalMixture("y", w=w, mu=mu, sigma=sd, observed=xd, shape=xd.shape)
        elif kind == "logsumexp":
            sd = pt.sqrt(sigma**2 + ed[:, None])
            comp = pm.logp(pm.Normal.dist(mu, sd), xd[:, None])
            pm.Potential("loglik", pt.logsumexp(pt.log(w) + comp, axis=1).sum())
        elif kind == "fused":
            pm.Potential("loglik", mixture_logp_total(xd, ed, w, mu, sigma))
        elif kind == "customdist":
            pm.CustomDist("y", ed, w, mu, sigma, logp=mixture_logp_pointwise,
                          signature="(),(k),(k),(k)->()", observed=xd, shape=xd.shape)
        else:
            raise ValueError(kind)
    return model


def tiny_model():
    """One standard-normal parameter: nutpie's per-gradient floor."""
    with pm.Model() as model:
        pm.Normal("a", 0.0, 1.0)
    return model


def per_eval_seconds(compiled, num_evals, batches=15):
    """Seconds per logp+gradient through nutpie's compiled C function (via ctypes).

    This is exactly what the sampler calls. Best of ``batches`` batch means; ctypes
    adds about a microsecond per call.
    """
    func = compiled.compiled_logp_func.ctypes
    point = np.asarray(compiled.initial_point_func(0), dtype=np.float64)
    grad, logp = np.empty_like(point), np.empty(1)
    ptr = ctypes.POINTER(ctypes.c_double)
    args = (point.size, point.ctypes.data_as(ptr), grad.ctypes.data_as(ptr),
            logp.ctypes.data_as(ptr), compiled.user_data.ctypes.data)
    if func(*args) != 0:
        raise RuntimeError("logp evaluation failed at the initial point")
    per_batch = max(1, num_evals // batches)
    best = np.inf
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per_batch):
            func(*args)
        best = min(best, (time.perf_counter() - t0) / per_batch)
    return best


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def sample_run(compiled, chains, tune, draws, seed=1):
    """Sample; return wall and CPU seconds, total gradient evaluations and a summary."""
    import nutpie

    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    dt = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                       progress_bar=False, save_warmup=True)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    steps_tune = int(dt.warmup_sample_stats["n_steps"].sum())
    steps_draw = int(dt.sample_stats["n_steps"].sum())
    return {
        "wall_s": wall, "cpu_s": cpu, "grads_tune": steps_tune, "grads_draws": steps_draw,
        "divergences": int(dt.sample_stats["diverging"].sum()),
        # per chain: a chain stuck in a minor mode shows as lower logp and more gradients
        "grads_per_chain": (dt.warmup_sample_stats["n_steps"].sum("draw")
                            + dt.sample_stats["n_steps"].sum("draw")).values.tolist(),
        "logp_per_chain": dt.sample_stats["logp"].mean("draw").values.round(1).tolist(),
        "mu_per_chain": (dt.posterior["mu"].mean("draw").values.round(3).tolist()
                         if "mu" in dt.posterior else None),
    }


def extrapolate(run, chains, tune, draws, full_chains=4, full_tune=1000, full_draws=1000,
                cores=2):
    """Seconds for the full run from a short one (same per-gradient cost and tree sizes).

    Per-iteration gradients are taken separately for warm-up and draws; using the
    short warm-up's average for a 1000-step warm-up is pessimistic (early trajectories
    are the longest). Chains share ``cores`` cores.
    """
    grads = run["grads_tune"] + run["grads_draws"]
    t_grad = run["wall_s"] * min(chains, cores) / grads
    t_grad_cpu = run["cpu_s"] / grads  # immune to other processes sharing the cores
    g_tune = run["grads_tune"] / (chains * tune)
    g_draw = run["grads_draws"] / (chains * draws)
    full_grads = full_chains * (full_tune * g_tune + full_draws * g_draw)
    return {"t_grad_ms": 1e3 * t_grad, "t_grad_cpu_ms": 1e3 * t_grad_cpu,
            "grads_per_iter_tune": g_tune, "grads_per_iter_draws": g_draw,
            "full_grads": full_grads, "full_s": full_grads * t_grad / cores,
            "full_s_from_cpu": full_grads * t_grad_cpu / cores}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small n, few draws")
    parser.add_argument("--full", action="store_true",
                        help="also run 4 chains x (1000 tune + 1000 draws) with the fused op")
    parser.add_argument("--kinds", default="normalmixture,logsumexp,fused,customdist")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    import nutpie

    warnings.filterwarnings("ignore", category=FutureWarning)
    kinds = args.kinds.split(",")
    sizes = (2_000, 10_000) if args.quick else SIZES
    n_main = sizes[-1] if args.quick else 100_000
    chains, tune, draws = (2, 50, 50) if args.quick else (2, 200, 200)
    results = {"loadavg_start": os.getloadavg(), "cpu_count": os.cpu_count(), "kinds": {}}
    print(f"load average at start: {os.getloadavg()}; {os.cpu_count()} CPUs")

    t0 = time.perf_counter()
    tiny = nutpie.compile_pymc_model(tiny_model())
    t_tiny = per_eval_seconds(tiny, 20_000)
    run = sample_run(tiny, 2, 1000, 50_000)
    ex = extrapolate(run, 2, 1000, 50_000)
    results["tiny"] = {"compile_s": time.perf_counter() - t0, "eval_us": 1e6 * t_tiny,
                       "sample": run, "per_grad_in_sampler_us": 1e3 * ex["t_grad_ms"]}
    print(f"tiny model: logp+grad {1e6 * t_tiny:.2f} us per ctypes call; in sampling "
          f"{1e3 * ex['t_grad_ms']:.2f} us per gradient, CPU {1e3 * ex['t_grad_cpu_ms']:.2f} us "
          f"(wall {run['wall_s']:.2f} s for "
          f"{run['grads_tune'] + run['grads_draws']} gradients, 2 chains)")

    data = {n: make_data(n) for n in sizes}
    for kind in kinds:
        res = results["kinds"][kind] = {}
        x, e2 = data[n_main]
        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(build_model(kind, x, e2))
        res["compile_s"] = time.perf_counter() - t0
        ops = [str(nd.op) for nd in compiled.logp_func.maker.fgraph.toposort()]
        res["n_fused_nodes"] = sum("MixtureLogpTotal" in o for o in ops)
        res["n_graph_nodes"] = len(ops)
        res["eval_ms"] = {}
        for n in sizes:
            xs, es = data[n]
            c_n = compiled.with_data(x=xs, e2=es)
            evals = max(5, min(2000, int(2e7 // n)))
            res["eval_ms"][n] = 1e3 * per_eval_seconds(c_n, evals)
        print(f"\n[{kind}] compile {res['compile_s']:.1f} s; fused nodes in logp graph: "
              f"{res['n_fused_nodes']} of {res['n_graph_nodes']}")
        for n, ms in res["eval_ms"].items():
            print(f"  n = {n:>9,d}: {ms:9.3f} ms per logp+grad ({1e6 * ms / n:6.2f} ns/point)")
        compiled = compiled.with_data(x=x, e2=e2)
        run = sample_run(compiled, chains, tune, draws)
        ex = extrapolate(run, chains, tune, draws)
        res["sample"], res["extrapolated"] = run, ex
        print(f"  sample {chains} x ({tune} + {draws}) at n = {n_main:,d}: wall "
              f"{run['wall_s']:.1f} s (CPU {run['cpu_s']:.1f} s), "
              f"{run['grads_tune'] + run['grads_draws']} gradients, "
              f"{ex['t_grad_ms']:.3f} ms per gradient (CPU {ex['t_grad_cpu_ms']:.3f} ms); "
              f"{ex['grads_per_iter_tune']:.1f}/{ex['grads_per_iter_draws']:.1f} gradients "
              f"per iteration (tune/draws); divergences {run['divergences']}")
        print(f"  per chain: gradients {run['grads_per_chain']}, mean logp "
              f"{run['logp_per_chain']}, mean mu {run['mu_per_chain']}")
        print(f"  extrapolated 4 x (1000 + 1000) on 2 cores: {ex['full_s']:.0f} s from wall "
              f"time, {ex['full_s_from_cpu']:.0f} s from CPU time ({ex['full_grads']:.0f} "
              f"gradients)")
        if args.full and kind == "fused":
            run = sample_run(compiled, 4, 1000, 1000)
            res["full_run"] = run
            print(f"  FULL 4 x (1000 + 1000): wall {run['wall_s']:.1f} s (CPU "
                  f"{run['cpu_s']:.1f} s), {run['grads_tune'] + run['grads_draws']} gradients,"
                  f" divergences {run['divergences']}")
            print(f"  per chain: gradients {run['grads_per_chain']}, mean logp "
                  f"{run['logp_per_chain']}, mean mu {run['mu_per_chain']}")
    results["loadavg_end"] = os.getloadavg()
    print(f"\nload average at end: {os.getloadavg()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
