"""``bayesgmm precompile``: compile the numba kernels now, so that the first fit need not.

numba compiles each kernel on its first call and caches the machine code on disk (keyed
to this machine's CPU, so a cache cannot be shipped in a wheel). A cold first call pays
for it: tens of seconds for EM and for the Bayesian sampler's log-density. This command
runs each common path once on a few points, which writes the cache; later processes load
it. The Makefile's install runs it; after ``pip install bayesgmm`` run it once per
machine (or set ``NUMBA_CACHE_DIR``, which the package honours, to a shared location).

The paths are split into groups run by separate processes at once, one group per CPU:
no kernel is compiled twice.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np


def _data(n: int = 60, d: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) + 4.0 * (np.arange(n) % 2)[:, None]
    return (x[:, 0] if d == 1 else x), rng.uniform(0.1, 0.3, size=n if d == 1 else (n, d))


def em() -> None:
    """EM in 1-D and 2-D, with and without errors, with a missing value; predictions."""
    from ..em import GaussianMixtureEM

    for d in (1, 2, 3):
        x, e = _data(d=d)
        for err in (None, e):
            gm = GaussianMixtureEM(2, n_init=1, random_seed=0).fit(x, X_err=err)
            gm.predict_proba(x, X_err=err)
            if err is not None:
                gm.deconvolve(x, X_err=err)
    # large multi-D data take the kernels' parallel twins (see em.kernels.n_chunks_for);
    # the 1-D passes run large data in threads over the chunk kernels compiled above
    for d, n in ((2, 20_000),):
        x, e = _data(n=n, d=d)
        for err in (None, e):
            GaussianMixtureEM(3, n_init=1, random_seed=0).fit(x, X_err=err).predict(
                x, X_err=err)
    x, e = _data(d=2)
    x[0, 1] = np.nan
    GaussianMixtureEM(2, n_init=1, random_seed=0).fit(x, X_err=e)
    for cov in ("tied", "diag", "spherical"):
        GaussianMixtureEM(2, covariance_type=cov, n_init=1, random_seed=0).fit(x[1:])


def bayes_1d() -> None:
    """The 1-D model's sampler path (nutpie), with and without errors; its modes."""
    from ..bayes import fit

    x, e = _data()
    for err in (e, None):
        fit(x, 2, X_err=err, draws=20, tune=20, chains=1, progressbar=False, random_seed=0)


def bayes_md() -> None:
    """The D-dim model's sampler path, with errors; SMC and p(K | data) in 1-D.

    Also the empty-component Gibbs samplers (1-D and D dims), which ``posterior_k``
    runs only where importance sampling is unsure (not on these data).
    """
    from ..bayes import fit, posterior_k
    from ..bayes.empty import empty_probability
    from ..bayes.priors import Priors

    x, e = _data(d=2)
    fit(x, 2, X_err=e, draws=20, tune=20, chains=1, progressbar=False, random_seed=0)
    x, e = _data(n=40)
    posterior_k(x, ks=range(1, 3), X_err=e, n_particles=100, n_runs=2, n_importance=2000,
                draws=50, random_seed=0)
    z = (x - x.mean()) / x.std()
    empty_probability(z, (e / x.std()) ** 2, 2, Priors().standardized(2, 0.0, 1.0),
                      np.zeros((2, 5)), np.random.default_rng(0), sweeps=10, draws=5)
    from ..bayes.empty import empty_probability_md
    from ..bayes.inference_md import prepare_md

    x, e = _data(n=20, d=2)
    for err in (e, None):
        problem = prepare_md(x, err, 2, None, np.random.default_rng(0), draws=10, chains=1,
                             seed_rng=np.random.default_rng(0), progressbar=False,
                             backend="native")
        empty_probability_md(problem.target, problem.target.start[None, :],
                             np.random.default_rng(0), sweeps=10, draws=5)


GROUPS = {"em": em, "bayes_1d": bayes_1d, "bayes_md": bayes_md}


def _run_group(name: str) -> float:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 20-draw chain fails its checks, on purpose
        GROUPS[name]()
    return time.perf_counter() - t0


def run(workers: int | None = None) -> dict[str, Any]:
    """Compile every group, ``workers`` processes at once; seconds per group."""
    workers = workers or min(len(GROUPS), os.cpu_count() or 1)
    t0 = time.perf_counter()
    if workers == 1:
        times = {name: _run_group(name) for name in GROUPS}
    else:
        with ProcessPoolExecutor(workers) as pool:
            times = dict(zip(GROUPS, pool.map(_run_group, GROUPS), strict=True))
    return {"groups": times, "wall": time.perf_counter() - t0}


def report(result: dict[str, Any]) -> dict[str, Any]:
    """``main``'s result dict for :func:`run`'s figures."""
    lines = [f"compiled and cached in {result['wall']:.0f} s"] + [
        f"  {name}: {sec:.1f} s" for name, sec in result["groups"].items()]
    where = os.environ.get("NUMBA_CACHE_DIR")
    lines.append("cache: " + (where if where else "the package's __pycache__ folders"))
    return {"_text": "\n".join(lines), "wall_seconds": result["wall"],
            "group_seconds": result["groups"], "cache_dir": where}
