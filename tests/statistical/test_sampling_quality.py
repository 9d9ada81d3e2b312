"""Sampling quality with the defaults (4 chains x 1,000 draws): the statistics are the point.

Targets (issue 3): max R-hat <= 1.01, no divergences, minimum bulk ESS >= 400 over
weights, means and sigmas. Real sampling, fixed seeds.
"""

import numpy as np
import pytest

from bayesgmm.datasets import seed000_data, seed001_data, simulate

pytestmark = pytest.mark.slow  # default-sized real sampling: 4 chains x 1,000 draws

VARS = ["weights", "means", "sigmas"]


def _quality(dt):
    import arviz_stats as azs

    rhat = float(azs.rhat(dt, var_names=VARS).to_dataset().to_array().max())
    ess = float(azs.ess(dt, var_names=VARS, method="bulk").to_dataset().to_array().min())
    div = int(dt.sample_stats["diverging"].sum())
    return rhat, ess, div


def test_seed000_k2_meets_targets(sample):
    # 50 points, one component of ~9. With the folded pair coordinates and the second
    # run after a failed check, the target is met on 32 of 32 seeds (0-31; 27 in one
    # run). At ESS ~500-750 a max R-hat over six quantities sits near 1.01, so a miss
    # stays possible (an earlier version of the same coordinates missed 1 of 32 with
    # R-hat 1.013). This runs seed 12 (R-hat 1.006, ESS 595, one run, when measured).
    dt, warned = sample(seed000_data(), 2, random_seed=12)
    rhat, ess, div = _quality(dt)
    assert rhat <= 1.01 and div == 0 and ess >= 400, (rhat, ess, div)
    assert warned == []
    # the posterior brackets the MLE (EM) for each parameter: 94% interval contains it
    post, em = dt.posterior, dt.em_estimate
    for v in VARS:
        lo, hi = post[v].quantile([0.03, 0.97], dim=("chain", "draw")).values
        assert np.all((lo <= em[v].values) & (em[v].values <= hi)), v


def test_measurement_errors_meet_targets_and_deconvolve(sample):
    # Components at 0 and 2, widths 0.3 and 0.6; errors 0.2-1.0, larger than the widths.
    # n = 1,000. The 94% intervals of the intrinsic sigmas must contain the truth. A fit
    # that ignores the errors overstates the widths: its within-component variance
    # sum_k w_k sigma_k^2 (truth 0.225; plus mean e^2 ~ 0.41 when errors are ignored)
    # has its whole 94% interval above the truth, while the deconvolved one contains it.
    sim = simulate(1000, [0.5, 0.5], [0.0, 2.0], [0.3, 0.6], error_range=(0.2, 1.0),
                   random_seed=21)
    dt, warned = sample(sim.x, 2, X_err=sim.x_err, random_seed=2)
    rhat, ess, div = _quality(dt)
    assert rhat <= 1.01 and div == 0 and ess >= 400, (rhat, ess, div)
    lo, hi = dt.posterior["sigmas"].quantile([0.03, 0.97], dim=("chain", "draw")).values
    assert np.all((lo <= sim.sigmas) & (sim.sigmas <= hi)), (lo, hi)
    def within(d):
        p = d.posterior
        return (p["weights"] * p["sigmas"] ** 2).sum("component")

    truth = float(np.sum(sim.weights * sim.sigmas**2))
    naive, _ = sample(sim.x, 2, random_seed=2, draws=500, chains=2)
    nlo = float(within(naive).quantile(0.03))
    assert nlo > truth, (nlo, truth)
    lo, hi = within(dt).quantile([0.03, 0.97]).values
    assert lo <= truth <= hi, (lo, truth, hi)


@pytest.mark.parametrize("scale,offset", [(1e-3, 1e9), (1e4, -3e5)])
def test_recovery_in_data_units(sample, recovery, scale, offset):
    # Same mixture in other units: the posterior is reported in those units. n = 800;
    # each of the 6 parameters within 3.5 posterior sds of the truth (a false alarm
    # has probability ~6 x 5e-4 for a calibrated posterior).
    sim = simulate(800, [0.3, 0.7], [0.0, 4.0], [1.0, 0.8], random_seed=8)
    x = offset + scale * sim.x
    dt, _ = sample(x, 2, random_seed=5, draws=500, chains=2)
    truth = {"weights": sim.weights, "means": offset + scale * sim.means,
             "sigmas": scale * sim.sigmas}
    recovery.assert_posterior_covers({v: dt.posterior[v].values for v in truth}, truth, 3.5)


def test_seed001_k3_overlapping(sample):
    # Seed 001's 1,000 points with K = 3: two heavily overlapping components. The
    # issue's target (R-hat <= 1.01, no divergences, ESS >= 400) is checked here. In the
    # folded pair coordinates (bayesgmm.bayes.reparam.pair) the target is met on 24 of 24
    # seeds (0-23), each in the first run at 0.8 (ESS 779-1,401, ~3 s). (Before the
    # saturated gap's log was taken exactly, 5 of 24 first runs had 1-4 divergences and
    # needed the second run; unfolded pair coordinates: 16 of 24, every first run
    # failing; PyMC's coordinates: 2 of 4, each fit ~4 times slower.) This runs seed 11
    # (one run, R-hat 1.002, ESS 1,013 when measured).
    import json

    dt, warned = sample(seed001_data(), 3, random_seed=11)
    rhat, ess, div = _quality(dt)
    runs = json.loads(dt.attrs["sampling_runs"])
    assert runs[0]["target_accept"] == 0.8 and runs[-1]["divergences"] == div
    if div:  # whatever the outcome, a run with divergences must have told the user
        assert any("divergent" in w for w in warned)
    assert rhat <= 1.01 and div == 0 and ess >= 400, (rhat, ess, div, runs)
