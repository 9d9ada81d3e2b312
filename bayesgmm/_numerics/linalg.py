"""Small-matrix checks compiled with numba, shared by validation and the EM kernels.

``np.linalg`` over a stack of n small matrices makes one LAPACK call per matrix and
builds temporaries; these loops factor each matrix in place and stop at the first one
that fails. A leaf: imports nothing from bayesgmm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_OPTS = {"cache": True, "nogil": True}


@njit(**_OPTS)
def chol(a, out):
    """Lower Cholesky factor of a small SPD matrix into ``out``; False if not SPD."""
    D = a.shape[0]
    for j in range(D):
        s = a[j, j]
        for p in range(j):
            s -= out[j, p] * out[j, p]
        if not s > 0.0:
            return False
        ljj = math.sqrt(s)
        out[j, j] = ljj
        for i in range(j + 1, D):
            s = a[i, j]
            for p in range(j):
                s -= out[i, p] * out[j, p]
            out[i, j] = s / ljj
        for i in range(j):
            out[i, j] = 0.0
    return True


@njit(**_OPTS)
def first_not_above(S, shift):
    """Index of the first S_i (n, D, D) with an eigenvalue <= -shift_i; -1 if none.

    S_i + shift_i I has no Cholesky factor exactly then (up to rounding).
    """
    n, D = S.shape[0], S.shape[1]
    if D == 2 or D == 3:  # the same pivots as chol's (squared), written out: no copy
        for i in range(n):
            t = shift[i]
            d0 = S[i, 0, 0] + t
            if not d0 > 0.0:
                return i
            a10 = S[i, 1, 0]
            d1 = S[i, 1, 1] + t - a10 * a10 / d0
            if not d1 > 0.0:
                return i
            if D == 3:
                a20 = S[i, 2, 0]
                u21 = S[i, 2, 1] - a20 * a10 / d0
                if not S[i, 2, 2] + t - a20 * a20 / d0 - u21 * u21 / d1 > 0.0:
                    return i
        return -1
    A = np.empty((D, D))
    L = np.zeros((D, D))
    for i in range(n):
        for a in range(D):
            for b in range(D):
                A[a, b] = S[i, a, b]
            A[a, a] += shift[i]
        if not chol(A, L):
            return i
    return -1


@njit(**_OPTS)
def first_asymmetric(S, rtol):
    """Index of the first S_i with |S_ab - S_ba| > rtol |S_ab| somewhere; -1 if none."""
    n, D = S.shape[0], S.shape[1]
    for i in range(n):
        for a in range(D):
            for b in range(a):
                u, v = S[i, a, b], S[i, b, a]
                if abs(u - v) > rtol * min(abs(u), abs(v)):
                    return i
    return -1
