"""Inlined, vectorisable exp and log for the numba kernels: a leaf shared by EM and Bayes.

libm's exp and log are opaque calls that stop LLVM from vectorising a loop (without
Intel SVML), and each costs a function call; these are branch-free and accurate to
~2 ulp (tested against NumPy in ``tests/test_logp_op.py``). Both the EM kernels
(:mod:`bayesgmm.em.kernels`) and the Bayesian likelihood kernels
(:mod:`bayesgmm.bayes.likelihood`) use them, so neither side imports the other.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# the flags the kernels of bayes/likelihood.py use (see its _OPTS): no zero-division checks,
# FMA contraction only, so results do not depend on vector width
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}

@intrinsic
def _as_f64(typingctx, v):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _as_i64(typingctx, v):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of log(2)
_LN2_LO = 1.90821492927058770002e-10
_C = tuple(1.0 / math.factorial(i) for i in range(13))
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000


@njit(**_OPTS)
def _exp(x):
    """exp(x): 2**k times a degree-12 Taylor polynomial on |r| <= log(2)/2; 0 below -708."""
    xc = max(x, -708.0)
    k = np.floor(xc * _LOG2E + 0.5)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = _C[12]
    for i in range(11, -1, -1):
        p = p * r + _C[i]
    res = p * _as_f64((np.int64(k) + 1023) << 52)
    return res if x >= -708.0 else (0.0 if x < -708.0 else x)


@njit(**_OPTS)
def _log(x):
    """log(x) = k log 2 + 2 atanh(u), m = 2**-k x in [sqrt(1/2), sqrt(2)), u = (m-1)/(m+1)."""
    ix = _as_i64(x) - _SQRT_HALF_BITS
    m = _as_f64((ix & _MANTISSA) + _SQRT_HALF_BITS)
    u = (m - 1.0) / (m + 1.0)
    u2 = u * u
    p = 1.0 / 23.0
    for i in range(21, 0, -2):
        p = p * u2 + 1.0 / i
    k = np.float64(ix >> 52)
    res = k * _LN2_HI + (k * _LN2_LO + 2.0 * u * p)
    # Selects, not a libm call, so loops stay vectorised. Subnormal x would be wrong,
    # but the kernels only take logs of sums >= min_k (sigma_k**2 + e2_i)**-1/2.
    if x > 0.0 and x < np.inf:
        return res
    return -np.inf if x == 0.0 else (x if x > 0.0 else np.nan)
