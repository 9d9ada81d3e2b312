"""PyMC's own NUTS, or NumPyro's through PyMC, on :func:`bayesgmm.build_model`'s model.

Used for ``sampler="pymc"`` and when nutpie fails, and for ``sampler="numpyro"`` (JAX:
a GPU when JAX sees one); in D dims on
:func:`~bayesgmm.bayes.model_md.build_model_md`'s model, started at the EM estimate
put into the model's unconstrained coordinates (:func:`md_start`).
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
                         target_accept, em, nuts_sampler="pymc"):
    try:
        return _sample_pymc(x, e, K, priors, theta0, draws, tune, chains, seed, progressbar,
                            target_accept, nuts_sampler)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise _failed(exc, em) from exc


def _sample_pymc_md_or_fail(problem, tune, target_accept, nuts_sampler="pymc"):
    """PyMC's NUTS on ``build_model_md`` for a D-dim fit (``inference_md.ProblemMD``)."""
    try:
        return _sample_pymc_md(problem, tune, target_accept, nuts_sampler)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise _failed(exc, problem.em) from exc


def _failed(exc: BaseException, em: dict) -> SamplingError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SamplingError(
        f"sampling failed ({type(exc).__name__}: {first}); the maximum-likelihood (EM) "
        "estimate is in this error's em_estimate (a point estimate, not a posterior)",
        em_estimate={k: (v.tolist() if isinstance(v, np.ndarray) else v)
                     for k, v in em.items()},
    )


def _sampler_options(nuts_sampler: str, chains: int) -> dict:
    """``pm.sample``'s options for PyMC's NUTS or NumPyro's.

    NumPyro's chains run vectorized as one program (what a GPU runs well); the chains'
    starts are jittered here already.
    """
    if nuts_sampler == "numpyro":
        return {"nuts_sampler": "numpyro",
                "nuts": {"chain_method": "vectorized", "jitter": False}}
    return {"nuts_sampler": "pymc", "cores": min(chains, os.cpu_count() or 1)}


def _sample_pymc(x, e, K, priors, theta0, draws, tune, chains, seed, progressbar,
                 target_accept, nuts_sampler="pymc"):
    import pymc as pm

    from ..reparam.pymc_space import unpack

    # PyMC's NUTS: the fused (numba) likelihood; NumPyro: the readable graph, which
    # PyTensor turns into JAX (on a GPU, XLA fuses its (n, K) arrays itself)
    model = build_model(x, K, X_err=e, priors=priors, fused=nuts_sampler == "pymc")
    starts = _chain_starts(theta0, chains, seed)
    initvals = []
    for th in starts:
        w, mu, sigma = unpack(th, K)
        initvals.append({"weights": w, "means_std": mu, "sigmas_std": sigma})
    with model:
        dt = pm.sample(
            draws=draws, tune=tune, chains=chains, initvals=initvals, random_seed=seed,
            progressbar=progressbar, target_accept=target_accept,
            compute_convergence_checks=False, **_sampler_options(nuts_sampler, chains),
        )
    post = dt["posterior"].to_dataset()
    stats = dt["sample_stats"].to_dataset()
    return post[["weights", "means", "sigmas"]], stats


def md_start(model, em: dict, loc: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    """The EM estimate in ``build_model_md``'s unconstrained coordinates.

    Keyed by the model's value variables (``weights_simplex__``, ``means_std``,
    ``sds_std_log__``, ``corr_chol_cholesky_corr__``). Weights are kept off 0, sds off
    0 (1% of the feature's sd) and correlations off +-1 (shrunk by 1e-3 towards the
    identity), so every coordinate is finite.
    """
    w = np.maximum(em["weights"], 1e-6)
    corr = np.asarray(em["correlations"], dtype=float)
    eye = np.eye(corr.shape[-1])
    values = {
        "weights": w / w.sum(),
        "means_std": (em["means"] - loc) / scale,
        "sds_std": np.maximum(em["sds"] / scale, 1e-2),
        "corr_chol": np.linalg.cholesky((1 - 1e-3) * corr + 1e-3 * eye),
    }
    out = {}
    for rv in model.free_RVs:
        value = values[rv.name]
        transform = model.rvs_to_transforms.get(rv)
        vv = model.rvs_to_values[rv]
        out[vv.name] = (value if transform is None else
                        np.asarray(transform.forward(value, *rv.owner.inputs).eval()))
    return out


def _md_initvals(model, start: dict, chains: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Each chain's start: ``start`` + N(0, START_JITTER^2), back in constrained values.

    Seeded by ``[seed, 1]``, as the 1-D chains' starts.
    """
    rng = np.random.default_rng([seed, 1])
    out = []
    for _ in range(chains):
        point = {}
        for rv in model.free_RVs:
            vv = model.rvs_to_values[rv]
            y = start[vv.name] + START_JITTER * rng.normal(size=np.shape(start[vv.name]))
            transform = model.rvs_to_transforms.get(rv)
            point[rv.name] = (y if transform is None else
                              np.asarray(transform.backward(y, *rv.owner.inputs).eval()))
        out.append(point)
    return out


def _sample_pymc_md(problem, tune, target_accept, nuts_sampler="pymc"):
    import pymc as pm

    p = problem
    model = build_model(p.x, p.K, X_err=p.cov, priors=p.priors)
    initvals = _md_initvals(model, md_start(model, p.em, p.loc, p.scale), p.chains, p.seed)
    with model:
        dt = pm.sample(
            draws=p.draws, tune=tune, chains=p.chains, initvals=initvals, random_seed=p.seed,
            progressbar=p.progressbar, target_accept=target_accept,
            compute_convergence_checks=False, **_sampler_options(nuts_sampler, p.chains),
        )
    post = dt["posterior"].to_dataset()
    stats = dt["sample_stats"].to_dataset()
    return post[["weights", "means", "sds", "correlations", "covariances"]], stats
