"""sampler="pymc": plumbing with PyMC's mock sampler (the statistics are tested elsewhere)."""

import functools
import warnings

import numpy as np
import pymc as pm
import pytest
from pymc.testing import mock_sample

from bayesgmm import SamplingWarning, fit
from bayesgmm.datasets import simulate


@pytest.fixture
def mocked_sample(monkeypatch):
    calls = {}

    def fake(*args, **kwargs):
        calls.update(kwargs)
        stats = {"diverging": lambda size: np.zeros(size, dtype=bool),
                 "tree_depth": lambda size: np.full(size, 3)}
        return functools.partial(mock_sample, sample_stats=stats)(*args, **kwargs)

    monkeypatch.setattr(pm, "sample", fake)
    return calls


def test_pymc_sampler_plumbing(mocked_sample):
    sim = simulate(80, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], error_range=(0.1, 0.3),
                   random_seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # prior draws are not a posterior
        dt = fit(sim.x, 2, X_err=sim.x_err, sampler="pymc", draws=30, chains=2,
                 random_seed=1, progressbar=False)
    # fit asked PyMC's own NUTS for per-chain starts near EM, on the build_model model
    assert mocked_sample["nuts_sampler"] == "pymc"
    starts = mocked_sample["initvals"]
    assert len(starts) == 2 and set(starts[0]) == {"weights", "means_std", "sigmas_std"}
    assert np.all(np.diff(starts[0]["means_std"]) > 0)
    assert dt.posterior["means"].dims == ("chain", "draw", "component")
    assert dt.log_likelihood["x"].shape == (2, 30, 80)
    assert dt.attrs["sampler"] == "pymc"


def test_nutpie_failure_falls_back_to_pymc(mocked_sample, monkeypatch):
    import bayesgmm.inference as inference

    def broken(*args, **kwargs):
        raise RuntimeError("simulated nutpie failure")

    monkeypatch.setattr(inference, "_sample_nutpie", broken)
    sim = simulate(60, [0.5, 0.5], [0.0, 3.0], [0.5, 0.5], random_seed=2)
    with pytest.warns(SamplingWarning, match="nutpie failed .*falling back to PyMC"):
        dt = fit(sim.x, 2, draws=20, chains=2, random_seed=1, progressbar=False)
    assert dt.attrs["sampler"] == "pymc"
    assert mocked_sample["nuts_sampler"] == "pymc"
