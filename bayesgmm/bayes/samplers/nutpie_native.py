"""A nutpie model whose log-density is a compiled C callback: no Python, no GIL per step.

nutpie's ``from_pyfunc`` calls back into Python for every gradient: the interpreter and
the GIL hand-over cost more per call than the fused log-density itself on small data
sets (figures in ``benchmarks/README.md``), and chains running in threads queue for the
GIL. Here the target's log-density (:func:`bayesgmm.bayes.target.logp_and_grad`) is
wrapped in a numba ``cfunc`` with the C signature nutpie's Rust core calls for its own numba backend
(``nutpie.compile_pymc``), and handed to nutpie's ``CompiledPyMCModel``.

- One callback serves every K and every data set: the data are read through a header
  of sizes and addresses (:data:`HEADER`, written by :func:`_header`), not baked in, so
  the callbacks compile once and are cached on disk by numba (``cache=True``); a new
  fit only writes a new header. A header of another layout or size is refused (the
  callbacks return :data:`BAD_HEADER`, :func:`check_header` raises), never read.
- The result is the same function as the ``from_pyfunc`` path (same log-density, same
  expand step); ``tests/bayes/test_inference.py`` checks that both give identical draws.
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

from ..target import HYPER, Target, logp_and_grad, unpack

#: The callback's header, one int64 word per field in this order: the only place the
#: order is written. :func:`_header` writes it from these names; :func:`_arrays` reads it
#: through the indices derived from them below. ``magic`` (layout version included) and
#: ``n_words`` come first, so a header of another layout is recognised and refused before
#: any address in it is followed; then the sizes, the paired component (-1: PyMC's
#: coordinates), and the addresses of the float64 arrays (``consts``: log_scale_n, loc,
#: scale).
HEADER = ("magic", "n_words", "n", "K", "pair", "z", "eps2", *HYPER, "consts")
_N_HEADER = len(HEADER)
#: "bgmm" and the layout's version: change the version with :data:`HEADER`
_MAGIC = 0x62676D6D_0002
_AT_MAGIC, _AT_WORDS, _AT_N, _AT_K, _AT_PAIR, _AT_Z, _AT_EPS2, _AT_CONSTS = (
    HEADER.index(f) for f in ("magic", "n_words", "n", "K", "pair", "z", "eps2", "consts"))
_AT_HYPER = tuple(HEADER.index(f) for f in HYPER)
#: what a callback returns for a header it refuses (nutpie's own code for a wrong size)
BAD_HEADER = -1

_LOGP_SIG = types.int64(types.uint64, types.CPointer(types.double),
                        types.CPointer(types.double), types.CPointer(types.double),
                        types.voidptr)
_EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                          types.CPointer(types.double), types.voidptr)


def _pointer_cast(target):
    """An intrinsic reading an int64 address as a ``target*`` (the headers' addresses)."""
    @intrinsic
    def cast(typingctx, addr):
        sig = types.CPointer(target)(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return sig, codegen

    return cast


_as_double_ptr = _pointer_cast(types.double)
_as_int_ptr = _pointer_cast(types.int64)


@njit(cache=True, nogil=True)
def _layout_ok(h, dim):
    """Whether the header is of this layout and consistent with a point of size ``dim``."""
    if h[_AT_MAGIC] != _MAGIC or h[_AT_WORDS] != _N_HEADER:
        return False
    n, K, pair = h[_AT_N], h[_AT_K], h[_AT_PAIR]
    return n >= 1 and K >= 1 and -1 <= pair <= K - 2 and dim == 3 * K - 1


@njit(cache=True, nogil=True)
def _arrays(h):
    """The arrays a header points to (call only after :func:`_layout_ok`)."""
    n, K = h[_AT_N], h[_AT_K]
    z = carray(_as_double_ptr(h[_AT_Z]), (n,))
    eps2 = carray(_as_double_ptr(h[_AT_EPS2]), (n,))
    weights_alpha = carray(_as_double_ptr(h[_AT_HYPER[0]]), (K,))
    means_mu = carray(_as_double_ptr(h[_AT_HYPER[1]]), (K,))
    means_sigma = carray(_as_double_ptr(h[_AT_HYPER[2]]), (K,))
    sigmas_sigma = carray(_as_double_ptr(h[_AT_HYPER[3]]), (K,))
    consts = carray(_as_double_ptr(h[_AT_CONSTS]), (3,))
    return (K, z, eps2, weights_alpha, means_mu, means_sigma, sigmas_sigma, consts,
            h[_AT_PAIR])


@njit(cache=True, nogil=True)
def store(value, g, logp, grad):
    """Write a log-density and its gradient into nutpie's buffers; nutpie's return code.

    0 success; 3 a gradient entry, 4 the log-density not finite (a divergent step).
    """
    logp[0] = value
    finite = True
    for j in range(grad.shape[0]):
        grad[j] = g[j]
        if not np.isfinite(g[j]):
            finite = False
    if not finite:
        return 3
    if not np.isfinite(value):
        return 4
    return 0


@cfunc(_LOGP_SIG, cache=True, nogil=True)
def _c_logp(dim, x_, grad_, logp_, user_data):
    # nutpie's return codes (compile_pymc._make_c_logp_func): 0 success; -1 a wrong size
    # (here: a header of another layout, BAD_HEADER); 1 an error; 3 gradient, 4
    # log-density not finite (3 and 4 are recoverable: a divergent step).
    # An exception must not escape: numba would print it and return 0, i.e. "success"
    # with whatever was in the buffers. The only ones the density raises are complex
    # divisions by zero where a weight or width underflows (|logit f| or |log S| past
    # ~745, which only a diverging trajectory reaches): a log-density that is not
    # finite there, so 4, a divergent step, never an error that would stop the chain.
    logp = carray(logp_, (1,))
    logp[0] = np.nan
    h = carray(user_data, (2,), np.int64)  # magic and length first: safe to read
    if h[_AT_MAGIC] != _MAGIC or h[_AT_WORDS] != _N_HEADER:
        return BAD_HEADER
    h = carray(user_data, (_N_HEADER,), np.int64)
    if not _layout_ok(h, dim):
        return BAD_HEADER
    try:
        K, z, eps2, w_alpha, m_mu, m_sigma, s_sigma, consts, pair = _arrays(h)
        x = carray(x_, (dim,))
        value, g = logp_and_grad(x, z, eps2, w_alpha, m_mu, m_sigma, s_sigma, consts[0], pair)
        return store(value, g, logp, carray(grad_, (dim,)))
    except Exception:  # noqa: BLE001
        return 4


@cfunc(_EXPAND_SIG, cache=True, nogil=True)
def _c_expand(dim, n_expanded, x_, out_, user_data):
    h = carray(user_data, (2,), np.int64)
    if h[_AT_MAGIC] != _MAGIC or h[_AT_WORDS] != _N_HEADER:
        return BAD_HEADER
    h = carray(user_data, (_N_HEADER,), np.int64)
    if not _layout_ok(h, dim) or n_expanded != 3 * h[_AT_K]:
        return BAD_HEADER
    try:
        K, _z, _e, _a, _m, _s, _t, consts, pair = _arrays(h)
        x = carray(x_, (dim,))
        out = carray(out_, (n_expanded,))
        w, mu, sigma = unpack(x, K, pair)
        for k in range(K):
            out[k] = w[k]
            out[K + k] = consts[1] + consts[2] * mu[k]
            out[2 * K + k] = consts[2] * sigma[k]
    except Exception:  # noqa: BLE001
        return -2
    return 0


def _header(arrays: dict[str, np.ndarray], target: Target) -> np.ndarray:
    """The header for ``target`` whose arrays are ``arrays``, written from :data:`HEADER`."""
    n, K = target.z.shape[0], target.n_components
    words = {"magic": _MAGIC, "n_words": _N_HEADER, "n": n, "K": K, "pair": target.pair}
    for name in HEADER:
        if name in arrays:
            a = arrays[name]
            want = {"z": (n,), "eps2": (n,), "consts": (3,)}.get(name, (K,))
            if a.dtype != np.float64 or a.shape != want or not a.flags.c_contiguous:
                raise ValueError(f"header field {name!r}: a C-contiguous float64 array of "
                                 f"shape {want} expected, got {a.dtype} {a.shape}")
            words[name] = a.ctypes.data
    header = np.array([words[name] for name in HEADER], dtype=np.int64)
    check_header(header, target.n_dim)
    return header


def check_header(header: np.ndarray, n_dim: int) -> None:
    """Raise ValueError unless ``header`` is of this layout and for points of size ``n_dim``.

    The Python side of the callbacks' own check (they return :data:`BAD_HEADER`).
    """
    h = np.asarray(header)
    if h.dtype != np.int64 or h.shape != (_N_HEADER,):
        raise ValueError(f"a header is {_N_HEADER} int64 words ({', '.join(HEADER)}); "
                         f"got {h.dtype} {h.shape}")
    if not _layout_ok(h, np.uint64(n_dim)):  # the C callbacks' type: one signature
        fields = dict(zip(HEADER[:5], h[:5].tolist(), strict=True))
        raise ValueError(f"header refused: {fields} (magic {_MAGIC:#x}, "
                         f"{_N_HEADER} words, K with 3K - 1 = {n_dim} expected)")


def compiled_model(target: Target, initial_point: Callable[[int], np.ndarray]) -> Any:
    """A nutpie model of ``target`` whose log-density is the compiled callback.

    Parameters
    ----------
    target : Target
        The posterior in the sampler's coordinates.
    initial_point : callable
        nutpie's per-chain start: called with a seed, returns a point in the target's
        coordinates.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Ready for ``nutpie.sample``; the expanded draws (``weights``, ``means``,
        ``sigmas``) are in data units. The log-density leaves out the constant
        ``-n log(scale)``, as the ``from_pyfunc`` path does.
    """
    from nutpie.compile_pymc import CompiledPyMCModel

    def own(a: Any) -> np.ndarray:
        a = np.array(a, dtype=np.float64, order="C", copy=True)
        a.flags.writeable = False
        return a

    arrays = {"z": own(target.z), "eps2": own(target.eps2),
              **{name: own(target.hyper[name]) for name in HYPER},
              "consts": own([0.0, target.loc, target.scale])}
    K, names = target.n_components, list(target.shapes)
    fields = {
        "_n_dim": target.n_dim,
        "dims": {name: ("component",) for name in names},
        "_coords": {"component": np.arange(K)},
        "_shapes": target.shapes,
        "compiled_logp_func": _c_logp,
        "compiled_expand_func": _c_expand,
        "initial_point_func": initial_point,
        # the arrays live as long as the model: the header points into them
        "shared_data": arrays,
        "shared_var_keys": {},
        "user_data": _header(arrays, target),
        "n_expanded": 3 * K,
        "shape_info": (names, [slice(i * K, (i + 1) * K) for i in range(3)], [(K,)] * 3),
        "logp_func": None,
        "expand_func": None,
    }
    known = {f.name for f in dataclasses.fields(CompiledPyMCModel)}
    if not set(fields) <= known:
        raise TypeError(f"nutpie's CompiledPyMCModel lacks {sorted(set(fields) - known)}")
    return CompiledPyMCModel(**fields)
