"""A nutpie model whose log-density is a compiled C callback: no Python, no GIL per step.

nutpie's ``from_pyfunc`` calls back into Python for every gradient: the interpreter and
the GIL hand-over cost more per call than the fused log-density itself on small data
sets (figures in ``benchmarks/README.md``), and chains running in threads queue for the
GIL. Here the fused log-density of :mod:`bayesgmm.bayes.reparam.pymc_space` is wrapped in a numba
``cfunc`` with the C signature nutpie's Rust core calls for its own numba backend
(``nutpie.compile_pymc``), and handed to nutpie's ``CompiledPyMCModel``.

- One callback serves every K and every data set: the data are read through a header
  of addresses (:func:`_header`), not baked in, so the callbacks compile once and are
  cached on disk by numba (``cache=True``); a new fit only writes a new header.
- The result is the same function as the ``from_pyfunc`` path (same log-density, same
  expand step); ``tests/test_inference.py`` checks that both give identical draws.
- It relies on the constructor fields of ``nutpie.compile_pymc.CompiledPyMCModel``;
  when those change (another nutpie), :func:`compiled_model` raises and the caller
  falls back to ``from_pyfunc``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

from ..reparam.pair import sampler_logp_and_grad, sampler_unpack

#: header layout (int64): n, K, the addresses of z, eps2, alpha, mu_mu, mu_sd, sig_sd and
#: consts = (log_scale_n, loc, scale), then the paired component j (-1: PyMC's coordinates)
_N_HEADER = 10

_LOGP_SIG = types.int64(types.uint64, types.CPointer(types.double),
                        types.CPointer(types.double), types.CPointer(types.double),
                        types.voidptr)
_EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                          types.CPointer(types.double), types.voidptr)


@intrinsic
def _as_double_ptr(typingctx, addr):
    """An int64 address as a ``double*``."""
    sig = types.CPointer(types.double)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@njit(cache=True, nogil=True)
def _arrays(user_data):
    h = carray(user_data, (_N_HEADER,), np.int64)
    n = h[0]
    K = h[1]
    z = carray(_as_double_ptr(h[2]), (n,))
    eps2 = carray(_as_double_ptr(h[3]), (n,))
    alpha = carray(_as_double_ptr(h[4]), (K,))
    mu_mu = carray(_as_double_ptr(h[5]), (K,))
    mu_sd = carray(_as_double_ptr(h[6]), (K,))
    sig_sd = carray(_as_double_ptr(h[7]), (K,))
    consts = carray(_as_double_ptr(h[8]), (3,))
    return K, z, eps2, alpha, mu_mu, mu_sd, sig_sd, consts, h[9]


@cfunc(_LOGP_SIG, cache=True, nogil=True)
def _c_logp(dim, x_, grad_, logp_, user_data):
    # nutpie's return codes (compile_pymc._make_c_logp_func): 0 success; 1 an error; 3
    # gradient, 4 log-density not finite (3 and 4 are recoverable: a divergent step).
    # An exception must not escape: numba would print it and return 0, i.e. "success"
    # with whatever was in the buffers. The only ones the density raises are complex
    # divisions by zero where a weight or width underflows (|logit f| or |log S| past
    # ~745, which only a diverging trajectory reaches): a log-density that is not
    # finite there, so 4, a divergent step, never an error that would stop the chain.
    logp = carray(logp_, (1,))
    logp[0] = np.nan
    try:
        K, z, eps2, alpha, mu_mu, mu_sd, sig_sd, consts, pair = _arrays(user_data)
        if dim != 3 * K - 1:
            return -1
        x = carray(x_, (dim,))
        grad = carray(grad_, (dim,))
        value, g = sampler_logp_and_grad(x, z, eps2, alpha, mu_mu, mu_sd, sig_sd, consts[0],
                                         pair)
        logp[0] = value
        finite = True
        for j in range(dim):
            grad[j] = g[j]
            if not np.isfinite(g[j]):
                finite = False
    except Exception:  # noqa: BLE001
        return 4
    if not finite:
        return 3
    if not np.isfinite(value):
        return 4
    return 0


@cfunc(_EXPAND_SIG, cache=True, nogil=True)
def _c_expand(dim, n_expanded, x_, out_, user_data):
    try:
        K, _z, _e, _a, _m, _s, _t, consts, pair = _arrays(user_data)
        if dim != 3 * K - 1 or n_expanded != 3 * K:
            return -1
        x = carray(x_, (dim,))
        out = carray(out_, (n_expanded,))
        w, mu, sigma = sampler_unpack(x, K, pair)
        for k in range(K):
            out[k] = w[k]
            out[K + k] = consts[1] + consts[2] * mu[k]
            out[2 * K + k] = consts[2] * sigma[k]
    except Exception:  # noqa: BLE001
        return -2
    return 0


def _header(arrays: dict[str, np.ndarray], n: int, K: int, pair: int) -> np.ndarray:
    order = ("z", "eps2", "alpha", "mu_mu", "mu_sd", "sig_sd", "consts")
    return np.array([n, K, *(arrays[name].ctypes.data for name in order), pair],
                    dtype=np.int64)


def compiled_model(
    K: int,
    z: np.ndarray,
    eps2: np.ndarray,
    hyper: dict[str, np.ndarray],
    loc: float,
    scale: float,
    initial_point: Callable[[int], np.ndarray],
    pair: int = -1,
) -> Any:
    """A nutpie model of the K-component mixture on standardized data ``z``.

    Parameters
    ----------
    K : int
        Number of components.
    z, eps2 : ndarray of shape (n,)
        Standardized data and squared standardized errors (zeros without errors).
    hyper : dict
        Standardized prior parameters (``Priors.standardized``).
    loc, scale : float
        Standardization; the expanded draws (``weights``, ``means``, ``sigmas``) are
        in data units.
    initial_point : callable
        nutpie's per-chain start: called with a seed, returns the unconstrained start.
    pair : int
        Sample in the coordinates of :mod:`bayesgmm.bayes.reparam.pair` with components
        (pair, pair + 1) as the unit; -1: PyMC's coordinates (:mod:`._logdensity`).

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Ready for ``nutpie.sample``. The log-density leaves out the constant
        ``-n log(scale)``, as the ``from_pyfunc`` path does.
    """
    from nutpie.compile_pymc import CompiledPyMCModel

    def own(a: Any) -> np.ndarray:
        a = np.array(a, dtype=np.float64, order="C", copy=True)
        a.flags.writeable = False
        return a

    arrays = {
        "z": own(z), "eps2": own(eps2), "alpha": own(hyper["alpha"]),
        "mu_mu": own(hyper["mu_mu"]), "mu_sd": own(hyper["mu_sigma"]),
        "sig_sd": own(hyper["sigma_sigma"]), "consts": own([0.0, loc, scale]),
    }
    names = ["weights", "means", "sigmas"]
    fields = {
        "_n_dim": 3 * K - 1,
        "dims": {name: ("component",) for name in names},
        "_coords": {"component": np.arange(K)},
        "_shapes": {name: (K,) for name in names},
        "compiled_logp_func": _c_logp,
        "compiled_expand_func": _c_expand,
        "initial_point_func": initial_point,
        # the arrays live as long as the model: the header points into them
        "shared_data": arrays,
        "shared_var_keys": {},
        "user_data": _header(arrays, z.shape[0], K, pair),
        "n_expanded": 3 * K,
        "shape_info": (names, [slice(i * K, (i + 1) * K) for i in range(3)], [(K,)] * 3),
        "logp_func": None,
        "expand_func": None,
    }
    known = {f.name for f in dataclasses.fields(CompiledPyMCModel)}
    if not set(fields) <= known:
        raise TypeError(f"nutpie's CompiledPyMCModel lacks {sorted(set(fields) - known)}")
    return CompiledPyMCModel(**fields)
