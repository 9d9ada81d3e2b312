"""PyMC's own NUTS on :func:`bayesgmm.build_model`'s model.

Used for ``sampler="pymc"`` and when nutpie fails.
"""


from __future__ import annotations

import os

import numpy as np

from ...errors import SamplingError
from ..model import build_model
from .nutpie import START_JITTER


def _chain_starts(theta0: np.ndarray, chains: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1])
    return theta0 + START_JITTER * rng.normal(size=(chains, theta0.size))


def _sample_pymc_or_fail(x, e, K, priors, theta0, draws, tune, chains, seed, progressbar,
                         target_accept, em):
    try:
        return _sample_pymc(x, e, K, priors, theta0, draws, tune, chains, seed, progressbar,
                            target_accept)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SamplingError(
            f"sampling failed ({type(exc).__name__}: {first}); the maximum-likelihood (EM) "
            "estimate is in this error's em_estimate (a point estimate, not a posterior)",
            em_estimate={k: (v.tolist() if isinstance(v, np.ndarray) else v)
                         for k, v in em.items()},
        ) from exc


def _sample_pymc(x, e, K, priors, theta0, draws, tune, chains, seed, progressbar,
                 target_accept):
    import pymc as pm

    from ..reparam.pymc_space import unpack

    model = build_model(x, K, X_err=e, priors=priors, fused=True)
    starts = _chain_starts(theta0, chains, seed)
    initvals = []
    for th in starts:
        w, mu, sigma = unpack(th, K)
        initvals.append({"weights": w, "means_std": mu, "sigmas_std": sigma})
    with model:
        dt = pm.sample(
            draws=draws, tune=tune, chains=chains, initvals=initvals, random_seed=seed,
            progressbar=progressbar, nuts_sampler="pymc",
            cores=min(chains, os.cpu_count() or 1), target_accept=target_accept,
            compute_convergence_checks=False,
        )
    post = dt["posterior"].to_dataset()
    stats = dt["sample_stats"].to_dataset()
    return post[["weights", "means", "sigmas"]], stats
