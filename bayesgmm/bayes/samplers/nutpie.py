"""nutpie on a target: compiled callback or ``from_pyfunc``.

A 1-D :class:`~bayesgmm.bayes.target.Target` or a D-dimensional
:class:`~bayesgmm.bayes.target_md.TargetMD`, each through its compiled callback
(:mod:`.nutpie_native`, :mod:`.nutpie_native_md`) or ``from_pyfunc``. The expanded
draws' names, shapes and dims are the target's.
"""


from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import SamplingError
from ..target import NAMES, Target
from ..target_md import PACKED, TargetMD

#: Jitter (sd, unconstrained space) added to the EM start for each chain.
START_JITTER = 0.1


#: nutpie mass-matrix adaptation: "draw_diag" (diagonal, from draws), chosen over "diag"
#: and "low_rank" on the seeds' data (benchmarks/README.md, "nutpie's mass-matrix
#: adaptation").
ADAPTATION = "draw_diag"


#: nutpie model backends: "native" (compiled C callback, :mod:`.nutpie_native`; falls back
#: to "pyfunc" when this nutpie cannot build it) or "pyfunc" (nutpie's ``from_pyfunc``: a
#: Python call per gradient)
BACKENDS = ("native", "pyfunc")


#: the ``from_pyfunc`` models: 1-D keyed by K, D dimensions by ("md", K, D)
_PYFUNC_CACHE: dict[Any, Any] = {}


def _native_model(target: Target | TargetMD, initial_point: Callable[[int], np.ndarray]
                  ) -> Any | None:
    """The compiled-callback nutpie model, or None (warned) where this nutpie cannot take it."""
    try:
        if isinstance(target, TargetMD):
            from . import nutpie_native_md

            return nutpie_native_md.compiled_model(target, initial_point)
        from . import nutpie_native

        return nutpie_native.compiled_model(target, initial_point)
    except Exception as exc:  # noqa: BLE001 - another nutpie or numba: pyfunc still works
        from ...errors import SamplingWarning

        first = str(exc).splitlines()[0] if str(exc) else ""
        warnings.warn(
            f"nutpie's compiled-callback model could not be built ({type(exc).__name__}: "
            f"{first}); sampling through nutpie's from_pyfunc instead: the same posterior, "
            "3-10 times slower (attrs['sampling_runs'] says backend 'pyfunc'). A nutpie "
            "version other than the one tested (0.16) is the usual cause.",
            # fit's caller, through fit, _fit, _nuts_runs, _sample, _sample_nutpie, sample
            SamplingWarning, stacklevel=8)
        return None


def _pyfunc_model(K: int) -> Any:
    """Nutpie model over the target's log-density; built once per K, data passed per fit."""
    if K in _PYFUNC_CACHE:
        return _PYFUNC_CACHE[K]
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    from ..target import logp_and_grad, unpack

    def make_logp_fn():
        def logp(theta, *, z, eps2, weights_alpha, means_mu, means_sigma, sigmas_sigma,
                 log_scale_n, loc, scale, pair):
            return logp_and_grad(theta, z, eps2, weights_alpha, means_mu, means_sigma,
                                 sigmas_sigma, float(log_scale_n), int(pair))

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(theta, *, loc, scale, pair, **_):
            w, mu, sigma = unpack(theta, K, int(pair))
            return {"weights": w, "means": float(loc) + float(scale) * mu,
                    "sigmas": float(scale) * sigma}

        return expand

    placeholder = Target(np.zeros(2), np.zeros(2), {
        "weights_alpha": np.ones(K), "means_mu": np.zeros(K), "means_sigma": np.ones(K),
        "sigmas_sigma": np.ones(K)}, 0.0, 1.0, -1, np.zeros(3 * K - 1))
    model = from_pyfunc(
        ndim=placeholder.n_dim,
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        expanded_dtypes=[np.dtype("float64")] * len(NAMES),
        expanded_shapes=list(placeholder.shapes.values()),
        expanded_names=list(NAMES),
        coords={"component": np.arange(K)},
        dims={name: ("component",) for name in NAMES},
        shared_data=_shared(placeholder),
        make_initial_point_fn=None,
    )
    del nutpie
    _PYFUNC_CACHE[K] = model
    return model


def _pyfunc_model_md(K: int, D: int) -> Any:
    """Nutpie model over a :class:`TargetMD`'s log-density; built once per (K, D).

    The data go in per fit (``with_data``), so a new data set or K reuses the compiled
    log-density; the ``feature`` coordinate is set on the draws afterwards.
    """
    key = ("md", K, D)
    if key in _PYFUNC_CACHE:
        return _PYFUNC_CACHE[key]
    from nutpie.compiled_pyfunc import from_pyfunc

    from ..target_md import expand as expand_md
    from ..target_md import logp_and_grad_packed

    def make_logp_fn():
        def logp(theta, *, pat_start, pat_d, pat_cols, zc, ec, has_err, weights_alpha,
                 means_mu, means_sigma, sigmas_sigma, corr_eta, loc, scale):
            return logp_and_grad_packed(theta, pat_start, pat_d, pat_cols, zc, ec,
                                        bool(has_err), weights_alpha, means_mu, means_sigma,
                                        sigmas_sigma, float(corr_eta), 0.0)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(theta, *, loc, scale, **_):
            return expand_md(theta, K, loc, scale)

        return expand

    placeholder = TargetMD.build(
        np.zeros((2, D)), None,
        {"weights_alpha": np.ones(K), "means_mu": np.zeros((K, D)),
         "means_sigma": np.ones((K, D)), "sigmas_sigma": np.ones((K, D)), "corr_eta": 1.0},
        np.zeros(D), np.ones(D),
        {"weights": np.full(K, 1.0 / K), "means": np.zeros((K, D)),
         "covariances": np.broadcast_to(np.eye(D), (K, D, D))})
    shapes = placeholder.shapes
    model = from_pyfunc(
        ndim=placeholder.n_dim,
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        expanded_dtypes=[np.dtype("float64")] * len(shapes),
        expanded_shapes=list(shapes.values()),
        expanded_names=list(shapes),
        coords=placeholder.coords,
        dims=placeholder.dims,
        shared_data=_shared_md(placeholder),
        make_initial_point_fn=None,
    )
    _PYFUNC_CACHE[key] = model
    return model


def _shared_md(target: TargetMD) -> dict[str, Any]:
    """The D-dim pyfunc model's data: the target's arrays, keyword by keyword."""
    return {**dict(zip(PACKED, target.packed, strict=True)),
            "has_err": np.bool_(target.has_err), **target.hyper,
            "corr_eta": np.float64(target.hyper["corr_eta"]), "loc": target.loc,
            "scale": target.scale}


def _shared(target: Target) -> dict[str, Any]:
    """The pyfunc model's data: the target's arrays, keyword by keyword."""
    return {"z": target.z, "eps2": target.eps2, **target.hyper,
            "log_scale_n": np.float64(0.0), "loc": np.float64(target.loc),
            "scale": np.float64(target.scale), "pair": np.int64(target.pair)}


def sample(target: Target | TargetMD, draws: int, tune: int, chains: int, seed: int,
           progressbar: bool, target_accept: float, *, backend: str = "native"
           ) -> tuple[Any, Any]:
    """One nutpie run on ``target``: (posterior, sample_stats) datasets.

    ``backend`` "native" falls back to "pyfunc" (warned) where this nutpie cannot take
    the compiled callback (:mod:`.nutpie_native`, :mod:`.nutpie_native_md`); the
    backend that ran is ``sample_stats.attrs["nutpie_backend"]``
    and the coordinates' pair ``sample_stats.attrs["sampler_pair"]``.
    """
    import dataclasses

    import nutpie

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    start = target.start

    # nutpie asks for each chain's start with a seed derived from ``seed`` and the chain:
    # jitter the EM start with it, so the same seed gives the same chains
    def initial_point(chain_seed):
        rng = np.random.default_rng([seed, int(chain_seed) % 2**63])
        return start + START_JITTER * rng.normal(size=start.size)

    _check_start(target)
    md = isinstance(target, TargetMD)
    compiled = _native_model(target, initial_point) if backend == "native" else None
    ran = "native" if compiled is not None else "pyfunc"
    if compiled is None:
        if md:
            compiled = _pyfunc_model_md(target.n_components, target.n_features).with_data(
                **_shared_md(target))
        else:
            compiled = _pyfunc_model(target.n_components).with_data(**_shared(target))
        compiled = dataclasses.replace(compiled, _make_initial_points=initial_point)
    dt = nutpie.sample(
        compiled, draws=draws, tune=tune, chains=chains, seed=seed,
        cores=min(chains, os.cpu_count() or 1), progress_bar=progressbar,
        save_warmup=False, target_accept=target_accept, adaptation=ADAPTATION,
    )
    post = dt["posterior"].to_dataset()
    stats = dt["sample_stats"].to_dataset()
    stats.attrs["nutpie_backend"] = ran
    stats.attrs["sampler_pair"] = target.pair
    if md:
        post = post.assign_coords({name: np.asarray(value)
                                   for name, value in target.coords.items()})
        return post[list(target.shapes)], stats
    return post[list(NAMES)], stats


def _check_start(target: Target | TargetMD) -> None:
    """Raise before nutpie is called if the log-density or gradient at the start is not finite.

    nutpie 0.16 reports a start it cannot use as "All initialization points failed", and
    after that the Python process can die with a segmentation fault at exit (a nutpie
    worker thread garbage-collecting while the interpreter shuts down). That is nutpie's,
    not bayesgmm's: it happens (intermittently) with nutpie's own ``from_pyfunc`` and a
    Python log-density that returns -inf, no PyMC, numba or bayesgmm involved, and (every
    time) after ``pm.sample()`` on a plain PyMC model whose ordered vector starts tied.
    So a bad start never reaches nutpie; the error sends ``fit`` to PyMC's sampler.
    """
    logp, grad = target.logp_and_grad(target.start)
    if not (np.isfinite(logp) and np.all(np.isfinite(grad))):
        raise SamplingError(
            f"the log-density at the EM start is not finite (logp {logp}); not handed to "
            "nutpie, whose failed start can crash the Python process (nutpie 0.16)")
