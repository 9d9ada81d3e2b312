"""The threaded loops on two threads give the one-thread numbers.

``make test`` runs numba on one thread per test process (see the Makefile), so this
check runs in a subprocess of its own with ``NUMBA_NUM_THREADS=2``: the multi-D EM
passes (``prange`` over chunks) and SMC's particles (``prange`` over particles), each at
1 and at 2 threads. (The 1-D passes' thread pool: tests/em/test_kernels.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json
    import numba
    import numpy as np
    from bayesgmm import GaussianMixtureEM
    from bayesgmm.bayes import smc
    from bayesgmm.bayes.priors import Priors

    assert numba.config.NUMBA_NUM_THREADS == 2
    rng = np.random.default_rng(0)
    X3 = rng.normal(size=(30_000, 3)) + 4.0 * rng.integers(0, 3, 30_000)[:, None]
    z = rng.normal(size=100)
    K = 3
    h = Priors().standardized(K, 0.0, 1.0)
    args = [np.ascontiguousarray(h[k]) for k in
            ("weights_alpha", "means_mu", "means_sigma", "sigmas_sigma")]
    theta = rng.normal(size=(500, 3 * K - 1)) * 0.5
    out = {}
    for t in (1, 2):
        numba.set_num_threads(t)
        md = GaussianMixtureEM(3, random_seed=0, n_init=1).fit(X3)
        assert numba.get_num_threads() == t
        ll, lp, grad = smc._evaluate(theta, K, z, np.zeros(1), *args, 0.7)
        out[t] = {"md": [md.loglik_, md.means_.tolist()],
                  "smc": [ll.tolist(), lp.tolist(), grad.tolist()]}
    print(json.dumps(out))
""")


def test_two_threads_give_the_one_thread_numbers():
    # EM: the same fit from the same start; chunk sums added in another order differ in
    # the last bits (1e-9 relative on the log-likelihood and the means covers their
    # effect over a whole fit). SMC: each particle is computed alone, so exactly equal.
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    one, two = out["1"], out["2"]
    assert two["md"][0] == pytest.approx(one["md"][0], rel=1e-9)
    np.testing.assert_allclose(two["md"][1], one["md"][1], rtol=1e-9, atol=1e-9)
    for a, b in zip(one["smc"], two["smc"], strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
