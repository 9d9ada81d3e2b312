"""nutpie on the fused log-density: the compiled callback (native) or ``from_pyfunc``."""


from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from ...errors import SamplingError

#: Jitter (sd, unconstrained space) added to the EM start for each chain.
START_JITTER = 0.1


#: nutpie mass-matrix adaptation: "draw_diag" (diagonal, from draws), chosen over "diag"
#: and "low_rank" on the seeds' data (benchmarks/README.md, "nutpie's mass-matrix
#: adaptation").
ADAPTATION = "draw_diag"


#: nutpie model backend: "native" (compiled C callback, :mod:`._nutpie_model`) or
#: "pyfunc" (nutpie's ``from_pyfunc``: a Python call per gradient). "native" falls back to
#: "pyfunc" when this nutpie cannot build it.
BACKEND = "native"


#: coordinates nutpie samples in: "pair" (:mod:`._pair_coords`: the most overlapping
#: adjacent pair as one unit plus its split) or "pymc" (PyMC's transforms)
COORDS = "pair"


_PYFUNC_CACHE: dict[int, Any] = {}


def _sampler_coords(theta0: np.ndarray, K: int, eps2: np.ndarray,
                    hyper: dict[str, np.ndarray]) -> tuple[int, np.ndarray]:
    """(pair, start): the coordinates nutpie samples in, and the EM start in them.

    The pair is the most overlapping adjacent pair whose two components have the same
    priors (:func:`bayesgmm.bayes.reparam.pair.choose_pair`); none: PyMC's coordinates.
    """
    if COORDS != "pair" or K < 2:
        return -1, theta0
    from ..reparam import pair as _pair_coords
    from ..reparam import pymc_space as _logdensity

    w, mu, sigma = _logdensity.unpack(theta0, K)
    pair = _pair_coords.choose_pair(mu, sigma, float(np.mean(eps2)), hyper)
    if pair < 0:
        return -1, theta0
    return pair, _pair_coords.pack(w, mu, sigma, pair)


def _native_model(K, z, eps2, hyper, loc, scale, initial_point, pair) -> Any | None:
    """The compiled-callback nutpie model, or None where this nutpie cannot take it."""
    if BACKEND != "native":
        return None
    try:
        from .nutpie_native import compiled_model

        return compiled_model(K, z, eps2, hyper, loc, scale, initial_point, pair)
    except Exception as exc:  # noqa: BLE001 - another nutpie or numba: pyfunc still works
        from ...errors import SamplingWarning

        first = str(exc).splitlines()[0] if str(exc) else ""
        warnings.warn(
            f"nutpie's compiled-callback model could not be built ({type(exc).__name__}: "
            f"{first}); sampling through nutpie's from_pyfunc instead: the same posterior, "
            "3-10 times slower. A nutpie version other than the one tested (0.16) is the "
            "usual cause.", SamplingWarning, stacklevel=4)
        return None


def _pyfunc_model(K: int) -> Any:
    """Nutpie model over the fused log-density; built once per K, data passed per fit."""
    if K in _PYFUNC_CACHE:
        return _PYFUNC_CACHE[K]
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    from ..reparam.pair import sampler_logp_and_grad, sampler_unpack

    def make_logp_fn():
        def logp(theta, *, z, eps2, alpha, mu_mu, mu_sd, sig_sd, log_scale_n, loc, scale,
                 pair):
            return sampler_logp_and_grad(theta, z, eps2, alpha, mu_mu, mu_sd, sig_sd,
                                         float(log_scale_n), int(pair))

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(theta, *, loc, scale, pair, **_):
            w, mu, sigma = sampler_unpack(theta, K, int(pair))
            return {"weights": w, "means": float(loc) + float(scale) * mu,
                    "sigmas": float(scale) * sigma}

        return expand

    model = from_pyfunc(
        ndim=3 * K - 1,
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        expanded_dtypes=[np.dtype("float64")] * 3,
        expanded_shapes=[(K,), (K,), (K,)],
        expanded_names=["weights", "means", "sigmas"],
        coords={"component": np.arange(K)},
        dims={"weights": ("component",), "means": ("component",), "sigmas": ("component",)},
        shared_data=_shared(np.zeros(2), np.zeros(2), {
            "alpha": np.ones(K), "mu_mu": np.zeros(K), "mu_sigma": np.ones(K),
            "sigma_sigma": np.ones(K)}, 0.0, 1.0, -1),
        make_initial_point_fn=None,
    )
    del nutpie
    _PYFUNC_CACHE[K] = model
    return model


def _shared(z, eps2, hyper, loc, scale, pair) -> dict[str, Any]:
    return {
        "z": np.ascontiguousarray(z, dtype=float),
        "eps2": np.ascontiguousarray(eps2, dtype=float),
        "alpha": hyper["alpha"], "mu_mu": hyper["mu_mu"], "mu_sd": hyper["mu_sigma"],
        "sig_sd": hyper["sigma_sigma"],
        "log_scale_n": np.float64(z.shape[0] * np.log(scale)),
        "loc": np.float64(loc), "scale": np.float64(scale), "pair": np.int64(pair),
    }


def _sample_nutpie(x, e, K, loc, scale, hyper, theta0, draws, tune, chains, seed,
                   progressbar, target_accept):
    import dataclasses

    import nutpie

    z = (x - loc) / scale
    eps2 = np.zeros_like(z) if e is None else (e / scale) ** 2
    # the constant -n log(scale) is left out of what the sampler sees: it changes nothing
    # but rounding, and without it x -> 2x gives exactly twice the draws

    pair, start = _sampler_coords(theta0, K, eps2, hyper)

    # nutpie asks for each chain's start with a seed derived from ``seed`` and the chain:
    # jitter the EM start with it, so the same seed gives the same chains
    def initial_point(chain_seed):
        rng = np.random.default_rng([seed, int(chain_seed) % 2**63])
        return start + START_JITTER * rng.normal(size=start.size)

    _check_start(start, z, eps2, hyper, pair)
    compiled = _native_model(K, z, eps2, hyper, loc, scale, initial_point, pair)
    backend = "native" if compiled is not None else "pyfunc"
    if compiled is None:
        shared = _shared(z, eps2, hyper, loc, scale, pair)
        shared["log_scale_n"] = np.float64(0.0)
        compiled = _pyfunc_model(K).with_data(**shared)
        compiled = dataclasses.replace(compiled, _make_initial_points=initial_point)
    dt = nutpie.sample(
        compiled, draws=draws, tune=tune, chains=chains, seed=seed,
        cores=min(chains, os.cpu_count() or 1), progress_bar=progressbar,
        save_warmup=False, target_accept=target_accept, adaptation=ADAPTATION,
    )
    post = dt["posterior"].to_dataset()
    stats = dt["sample_stats"].to_dataset()
    stats.attrs["nutpie_backend"] = backend
    stats.attrs["sampler_pair"] = pair
    return post[["weights", "means", "sigmas"]], stats


def _check_start(start: np.ndarray, z: np.ndarray, eps2: np.ndarray,
                 hyper: dict[str, np.ndarray], pair: int) -> None:
    """Raise before nutpie is called if the log-density or gradient at the start is not finite.

    nutpie 0.16 reports a start it cannot use as "All initialization points failed", and
    after that the Python process can die with a segmentation fault at exit (a nutpie
    worker thread garbage-collecting while the interpreter shuts down). That is nutpie's,
    not bayesgmm's: it happens (intermittently) with nutpie's own ``from_pyfunc`` and a
    Python log-density that returns -inf, no PyMC, numba or bayesgmm involved, and (every
    time) after ``pm.sample()`` on a plain PyMC model whose ordered vector starts tied.
    So a bad start never reaches nutpie; the error sends ``fit`` to PyMC's sampler.
    """
    from ..reparam.pair import sampler_logp_and_grad

    logp, grad = sampler_logp_and_grad(
        np.ascontiguousarray(start, dtype=float), z, eps2, hyper["alpha"], hyper["mu_mu"],
        hyper["mu_sigma"], hyper["sigma_sigma"], 0.0, int(pair))
    if not (np.isfinite(logp) and np.all(np.isfinite(grad))):
        raise SamplingError(
            f"the log-density at the EM start is not finite (logp {logp}); not handed to "
            "nutpie, whose failed start can crash the Python process (nutpie 0.16)")
