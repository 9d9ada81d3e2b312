"""One recovery check for every estimator: simulate with known truth, fit, compare.

The harness (``conftest.py`` here) runs EM (``GaussianMixtureEM`` on data without
errors), XD (``GaussianMixtureEM`` with ``X_err``) and ``bayesgmm.fit`` (real sampling,
2 chains x 300 draws, with and without errors) on the same two-component mixture and
measures every deviation from the truth in the standard errors the estimate would have
with every point's component known.
"""

import pytest

from bayesgmm.datasets import simulate

#: the truth: two components 4 apart (8 and 5 widths), so not knowing the labels widens
#: the estimates little and the labels-known standard errors are the right yardstick
WEIGHTS, MEANS, SIGMAS = [0.4, 0.6], [0.0, 4.0], [0.5, 0.8]
ERRORS = (0.2, 1.0)  # per-point measurement sds, larger than the first width

#: Point estimates within Z_SE labels-known standard errors of the truth. For n = 2,000
#: over simulation seeds 0-399 the largest deviation among EM's and XD's six estimates
#: was 4.1 se (a sigma), and 99% of seeds stayed under 3.1 se; fit's posterior means
#: (n = 400, seeds 0-11, with and without errors) under 3.6 se. A bug of consequence is
#: far outside: ignoring errors of 0.2-1.0 overstates a width by ~0.3, some 20 se.
Z_SE = 4.5
#: The truth within Z_POST posterior sds of the posterior mean: for a calibrated
#: posterior a false alarm among six parameters has probability ~6 x 5e-4.
Z_POST = 3.5
#: Posterior sd over labels-known se: not knowing the labels can only add uncertainty,
#: so below 1 only by the Monte Carlo error of an sd from ~600 draws (a few percent) and
#: the prior's little information at n = 400; observed 0.91-1.41 on seeds 0-11. Outside
#: [0.8, 2] the posterior is over- or underconfident.
SD_RATIO = (0.8, 2.0)

CASES = [
    pytest.param("em", 2000, None, id="em"),
    pytest.param("xd", 2000, ERRORS, id="xd"),
    pytest.param("fit", 400, None, id="fit", marks=pytest.mark.slow),
    pytest.param("fit", 400, ERRORS, id="fit-errors", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("method", "n", "errors"), CASES)
def test_estimate_recovers_the_truth(recovery, method, n, errors):
    sim = simulate(n, WEIGHTS, MEANS, SIGMAS, error_range=errors, random_seed=3)
    est = recovery.estimate(method, sim, 2, seed=3)
    recovery.assert_within_se(est, sim, Z_SE)
    if est.draws is None:
        return
    recovery.assert_posterior_covers(est.draws, recovery.truth(sim), Z_POST)
    recovery.assert_posterior_sd_near_se(est, sim, *SD_RATIO)


def test_the_check_fails_an_estimate_that_ignores_the_errors(recovery):
    # The yardstick discriminates: EM on data with errors estimates the widths
    # sqrt(sigma^2 + e^2), not the intrinsic sigmas, and must fail the same check XD passes.
    sim = simulate(2000, WEIGHTS, MEANS, SIGMAS, error_range=ERRORS, random_seed=3)
    with pytest.raises(AssertionError, match="sigmas"):
        recovery.assert_within_se(recovery.estimate("em", sim, 2, seed=3), sim, Z_SE)
