"""Chunks of a compiled ``nogil`` kernel run on a thread pool: parallel without parfor.

numba's ``prange`` costs seconds of compilation per parallel function on a cold cache
(issue 16's first call); a ``nogil`` kernel over a range of rows, called on equal
ranges from a few threads, runs as fast and compiles as a plain loop. Used by EM's 1-D
passes (:mod:`bayesgmm.em.kernels`) and by the per-draw, per-point log-likelihood
(:func:`bayesgmm.bayes.likelihood.pointwise_loglik`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba

_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (the process that made it, pool)


def run_chunks(f: Callable, n: int, n_chunks: int, args: Callable) -> list[Any]:
    """``f(*args(lo, hi, c))`` over ``n_chunks`` equal ranges of ``n`` rows, in threads.

    ``f`` is a compiled ``nogil`` kernel, so the threads run at once; the pool has
    ``NUMBA_NUM_THREADS`` threads and is made again in a forked child (which has none of
    its parent's threads). Returns each chunk's return value, in chunk order.
    """
    step = (n + n_chunks - 1) // n_chunks
    if n_chunks == 1:
        return [f(*args(0, n, 0))]
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():  # a forked child has none of its threads
        _POOL = (os.getpid(), ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS),
                                                 thread_name_prefix="bayesgmm"))
    futs = [_POOL[1].submit(f, *args(c * step, min(n, (c + 1) * step), c))
            for c in range(n_chunks)]
    return [fu.result() for fu in futs]
