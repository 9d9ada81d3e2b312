"""The D-dimensional nutpie model whose log-density is a compiled C callback.

The counterpart of :mod:`.nutpie_native` for a
:class:`~bayesgmm.bayes.target_md.TargetMD`: the same design (a numba ``cfunc`` with the
C signature of nutpie's ``CompiledPyMCModel``, the data read through a header of sizes
and addresses so the callbacks compile once for every K, D and data set, a header of
another layout refused), here over :func:`bayesgmm.bayes.density_md.logp_and_grad_packed`
and the data as :func:`bayesgmm.bayes.density_md.prepare` lays them out. The draws are
those of the ``from_pyfunc`` path, digit for digit (``tests/bayes/test_fit_md.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import carray, cfunc, njit

from ..target_md import (
    HYPER_MD,
    PACKED,
    TargetMD,
    expand_flat,
    logp_and_grad_packed,
    n_expanded,
)
from .nutpie_native import (
    _EXPAND_SIG,
    _LOGP_SIG,
    BAD_HEADER,
    _as_double_ptr,
    _as_int_ptr,
    store,
)

#: The header, one int64 word per field in this order (see :data:`.nutpie_native.HEADER`):
#: magic and length first; then the sizes (``ec_cols``: n with errors, 1 without); then
#: the addresses of the packed data (:data:`~bayesgmm.bayes.target_md.PACKED`), of the
#: priors but ``corr_eta``, and of ``consts`` = (corr_eta, loc (D), scale (D)).
HEADER_MD = ("magic", "n_words", "n", "K", "D", "P", "has_err", "ec_cols", *PACKED,
             *HYPER_MD[:-1], "consts")
_N_HEADER = len(HEADER_MD)
#: "bgmm", the D-dim layout (0xD) and its version
_MAGIC = 0x62676D6D_0D01
_AT = {name: i for i, name in enumerate(HEADER_MD)}
_AT_MAGIC, _AT_WORDS, _AT_N, _AT_K, _AT_D, _AT_P, _AT_ERR, _AT_ECC = range(8)
(_AT_PS, _AT_PD, _AT_PC, _AT_ZC, _AT_EC, _AT_WA, _AT_MM, _AT_MS, _AT_SS,
 _AT_CONSTS) = range(8, 18)
assert HEADER_MD[_AT_PS] == "pat_start" and HEADER_MD[_AT_CONSTS] == "consts"


@njit(cache=True, nogil=True)
def _layout_ok(h, dim):
    """Whether the header is of this layout and consistent with a point of size ``dim``."""
    if h[_AT_MAGIC] != _MAGIC or h[_AT_WORDS] != _N_HEADER:
        return False
    n, K, D, P, ecc = h[_AT_N], h[_AT_K], h[_AT_D], h[_AT_P], h[_AT_ECC]
    return (n >= 1 and K >= 1 and D >= 2 and 1 <= P <= n and (ecc == 1 or ecc == n)
            and dim == K - 1 + 2 * K * D + K * (D * (D - 1) // 2))


@njit(cache=True, nogil=True)
def _arrays(h):
    """The arrays a header points to (call only after :func:`_layout_ok`)."""
    n, K, D, P, ecc = h[_AT_N], h[_AT_K], h[_AT_D], h[_AT_P], h[_AT_ECC]
    T = D * (D + 1) // 2
    pat_start = carray(_as_int_ptr(h[_AT_PS]), (P + 1,))
    pat_d = carray(_as_int_ptr(h[_AT_PD]), (P,))
    pat_cols = carray(_as_int_ptr(h[_AT_PC]), (P, D))
    zc = carray(_as_double_ptr(h[_AT_ZC]), (D, n))
    ec = carray(_as_double_ptr(h[_AT_EC]), (T, ecc))
    wa = carray(_as_double_ptr(h[_AT_WA]), (K,))
    mm = carray(_as_double_ptr(h[_AT_MM]), (K, D))
    ms = carray(_as_double_ptr(h[_AT_MS]), (K, D))
    ss = carray(_as_double_ptr(h[_AT_SS]), (K, D))
    consts = carray(_as_double_ptr(h[_AT_CONSTS]), (1 + 2 * D,))
    return K, D, pat_start, pat_d, pat_cols, zc, ec, h[_AT_ERR] != 0, wa, mm, ms, ss, consts


@cfunc(_LOGP_SIG, cache=True, nogil=True)
def _c_logp(dim, x_, grad_, logp_, user_data):
    # return codes as in nutpie_native._c_logp: 0 success, BAD_HEADER, 3 gradient or 4
    # log-density not finite (a divergent step); no exception may escape
    logp = carray(logp_, (1,))
    logp[0] = np.nan
    h = carray(user_data, (2,), np.int64)  # magic and length first: safe to read
    if h[_AT_MAGIC] != _MAGIC or h[_AT_WORDS] != _N_HEADER:
        return BAD_HEADER
    h = carray(user_data, (_N_HEADER,), np.int64)
    if not _layout_ok(h, dim):
        return BAD_HEADER
    try:
        K, D, ps, pd, pc, zc, ec, has_err, wa, mm, ms, ss, consts = _arrays(h)
        x = carray(x_, (dim,))
        value, g = logp_and_grad_packed(x, ps, pd, pc, zc, ec, has_err, wa, mm, ms, ss,
                                        consts[0], 0.0)
        return store(value, g, logp, carray(grad_, (dim,)))
    except Exception:  # noqa: BLE001
        return 4


@cfunc(_EXPAND_SIG, cache=True, nogil=True)
def _c_expand(dim, n_out, x_, out_, user_data):
    h = carray(user_data, (2,), np.int64)
    if h[_AT_MAGIC] != _MAGIC or h[_AT_WORDS] != _N_HEADER:
        return BAD_HEADER
    h = carray(user_data, (_N_HEADER,), np.int64)
    if not _layout_ok(h, dim) or n_out != n_expanded(h[_AT_K], h[_AT_D]):
        return BAD_HEADER
    try:
        K, D, _ps, _pd, _pc, _zc, _ec, _e, _wa, _mm, _ms, _ss, consts = _arrays(h)
        x = carray(x_, (dim,))
        out = carray(out_, (n_out,))
        expand_flat(x, K, D, consts[1:1 + D], consts[1 + D:1 + 2 * D], out)
    except Exception:  # noqa: BLE001
        return -2
    return 0


def _header(arrays: dict[str, np.ndarray], target: TargetMD) -> np.ndarray:
    """The header for ``target`` whose arrays are ``arrays``, written from :data:`HEADER_MD`."""
    n, D = target.z.shape
    K = target.n_components
    P = arrays["pat_d"].shape[0]
    ecc = arrays["ec"].shape[1]
    T = D * (D + 1) // 2
    want = {"pat_start": (np.int64, (P + 1,)), "pat_d": (np.int64, (P,)),
            "pat_cols": (np.int64, (P, D)), "zc": (np.float64, (D, n)),
            "ec": (np.float64, (T, ecc)), "weights_alpha": (np.float64, (K,)),
            "consts": (np.float64, (1 + 2 * D,))}
    words = {"magic": _MAGIC, "n_words": _N_HEADER, "n": n, "K": K, "D": D, "P": P,
             "has_err": int(target.has_err), "ec_cols": ecc}
    for name in HEADER_MD[8:]:
        a = arrays[name]
        dtype, shape = want.get(name, (np.float64, (K, D)))
        if a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
            raise ValueError(f"header field {name!r}: a C-contiguous {np.dtype(dtype)} array "
                             f"of shape {shape} expected, got {a.dtype} {a.shape}")
        words[name] = a.ctypes.data
    header = np.array([words[name] for name in HEADER_MD], dtype=np.int64)
    if not _layout_ok(header, np.uint64(target.n_dim)):  # the callbacks' type
        sizes = dict(zip(HEADER_MD[:8], header[:8].tolist(), strict=True))
        raise ValueError(f"header refused: {sizes}")
    return header


def compiled_model(target: TargetMD, initial_point: Callable[[int], np.ndarray]) -> Any:
    """A nutpie model of the D-dimensional ``target`` whose log-density is compiled.

    Parameters
    ----------
    target : TargetMD
        The posterior in PyMC's unconstrained coordinates.
    initial_point : callable
        nutpie's per-chain start: called with a seed, returns a point.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Ready for ``nutpie.sample``; the expanded draws (``weights``, ``means``, ``sds``,
        ``correlations``, ``covariances``) are in data units.
    """
    from nutpie.compile_pymc import CompiledPyMCModel

    def own(a: Any, dtype: Any = np.float64) -> np.ndarray:
        a = np.array(a, dtype=dtype, order="C", copy=True)
        a.flags.writeable = False
        return a

    ints = ("pat_start", "pat_d", "pat_cols")
    arrays = {name: own(a, np.int64 if name in ints else np.float64)
              for name, a in zip(PACKED, target.packed, strict=True)}
    arrays.update({name: own(target.hyper[name]) for name in HYPER_MD[:-1]})
    arrays["consts"] = own(np.concatenate([[target.hyper["corr_eta"]], target.loc,
                                           target.scale]))
    K, D = target.n_components, target.n_features
    names, shapes = list(target.shapes), list(target.shapes.values())
    sizes = [int(np.prod(s)) for s in shapes]
    ends = np.cumsum(sizes)
    fields = {
        "_n_dim": target.n_dim,
        "dims": target.dims,
        # positions: nutpie's Rust side takes no array of strings; the driver puts the
        # target's coordinates (feature names) on the draws afterwards
        "_coords": {name: np.arange(len(v)) for name, v in target.coords.items()},
        "_shapes": target.shapes,
        "compiled_logp_func": _c_logp,
        "compiled_expand_func": _c_expand,
        "initial_point_func": initial_point,
        # the arrays live as long as the model: the header points into them
        "shared_data": arrays,
        "shared_var_keys": {},
        "user_data": _header(arrays, target),
        "n_expanded": int(n_expanded(K, D)),
        "shape_info": (names, [slice(int(e - s), int(e)) for s, e in zip(sizes, ends,
                                                                          strict=True)],
                       shapes),
        "logp_func": None,
        "expand_func": None,
    }
    known = {f.name for f in dataclasses.fields(CompiledPyMCModel)}
    if not set(fields) <= known:
        raise TypeError(f"nutpie's CompiledPyMCModel lacks {sorted(set(fields) - known)}")
    return CompiledPyMCModel(**fields)
