"""pm.sample on build_model's model as it is: PyMC's NUTS and nutpie (PyMC 6's default).

Each run is in a subprocess: nutpie 0.16 can crash the Python process after a failed
start (see ``bayesgmm.bayes.samplers.nutpie._check_start``), and a crash must fail the test, not end
pytest.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from bayesgmm import GaussianMixtureEM, build_model
from bayesgmm.datasets import simulate

X = simulate(200, [0.6, 0.4], [0.0, 4.0], [1.0, 0.8], random_seed=3).x

_CHILD = """
import json, sys
import numpy as np, pymc as pm
from bayesgmm import build_model
from bayesgmm.bayes.samplers import nutpie as nutpie_driver

x = np.array(json.loads(sys.argv[1]))
sampler = sys.argv[2]
model = build_model(x, 2)
kw = {} if sampler == "default" else {"nuts_sampler": sampler}
with model:
    dt = pm.sample(draws=200, tune=200, chains=2, cores=1, random_seed=1,
                   progressbar=False, **kw)
    ll = pm.compute_log_likelihood(dt, extend_inferencedata=False, progressbar=False)
post = dt["posterior"]
print(json.dumps({
    "nutpie": "inference_library_settings" in dt["sample_stats"].attrs,
    "ll_shape": list(ll["x"].shape),
    "ll_finite": bool(np.isfinite(ll["x"].values).all()),
    **{f"{v}_{s}": getattr(post[v], s)(("chain", "draw")).values.tolist()
       for v in ("weights", "means", "sigmas") for s in ("mean", "std")},
}))
"""


def test_default_initial_point_is_valid():
    model = build_model(X, 3)
    start = model.initial_point()
    assert np.all(np.isfinite(start["means_std_ordered__"]))
    assert np.isfinite(model.compile_logp()(start))
    # no initval (PyMC 6 cannot compute_log_likelihood on a model that has one)
    assert all(v is None for v in model.rvs_to_initial_values.values())


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["pymc", "default"])
def test_pm_sample_on_build_model(sampler):
    # "default": pm.sample() as a user calls it; in PyMC 6 with nutpie installed that is
    # nutpie (checked below), the route that used to crash the process
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(X.tolist()), sampler],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"exit status {out.returncode}\n{out.stderr[-3000:]}"
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["nutpie"] == (sampler == "default")
    assert res["ll_shape"] == [2, 200, X.size] and res["ll_finite"]
    em = GaussianMixtureEM(2, n_init=5, random_seed=0).fit(X)
    order = np.argsort(em.means_[:, 0])
    want = {"weights": em.weights_[order], "means": em.means_[order, 0],
            "sigmas": np.sqrt(em.covariances_[order, 0, 0])}
    # n = 200 from two separated components, weak priors: the posterior is close to a
    # normal centred within a fraction of a posterior sd of the MLE; 3 posterior sds also
    # leave room for the Monte Carlo error of 2 x 200 draws (about sd / 10). A sampler
    # stuck at a tied or bad start lands whole component widths away.
    for v in ("weights", "means", "sigmas"):
        got, sd = np.array(res[f"{v}_mean"]), np.array(res[f"{v}_std"])
        assert np.all(np.abs(got - want[v]) < 3 * sd), (v, got, want[v], sd)
