"""The compiled small-matrix checks of bayesgmm._numerics.linalg against NumPy's eigenvalues."""

import numpy as np
import pytest

from bayesgmm._numerics.linalg import first_not_above


@pytest.mark.parametrize("d", [2, 3, 4])
def test_first_not_above_matches_the_eigenvalues(d):
    # S_i + shift_i I fails exactly when S_i's smallest eigenvalue is <= -shift_i. The
    # shifts put every matrix within 1e-3 (relative) of that edge, on either side, so a
    # pivot computed wrongly would flip some answer; D = 2, 3 take the written-out path,
    # D = 4 the general Cholesky loop. 100 stacks of 200 matrices each (seed 0).
    rng = np.random.default_rng(0)
    for _ in range(100):
        A = rng.normal(size=(200, d, d))
        S = A @ np.swapaxes(A, 1, 2)
        low = np.linalg.eigvalsh(S)[:, 0]
        shift = -low + rng.normal(size=200) * 1e-3 * np.abs(low)
        fails = np.flatnonzero(low + shift <= 0)
        assert first_not_above(S, shift) == (fails[0] if fails.size else -1)
    S = np.broadcast_to(np.eye(d), (50, d, d)).copy()
    assert first_not_above(S, np.zeros(50)) == -1
    S[17, d - 1, d - 1] = -1e-9  # the last pivot only
    assert first_not_above(S, np.zeros(50)) == 17
