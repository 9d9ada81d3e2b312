"""Shared test helpers: hand-built results and fake sampling (no real sampler runs).

Importable from every test folder as ``helpers`` (``pythonpath = ["tests"]`` in
pyproject.toml); fixtures stay in ``conftest.py``.
"""

import numpy as np
import xarray as xr

W, MU, SG = np.array([0.5, 0.5]), np.array([0.0, 4.0]), np.array([0.5, 0.7])


def _mixture(rng, size, w=W, mu=MU, sg=SG):
    lab = rng.choice(len(w), size=size, p=w)
    return mu[lab] + sg[lab] * rng.standard_normal(size)


def _tree(seed=0, C=4, S=500, n=300, drop=(), **replace):
    """An ideal fit result; ``replace`` swaps posterior/sample_stats/pp variables."""
    rng = np.random.default_rng(seed)
    w0 = 0.5 + 0.02 * rng.standard_normal((C, S))
    post = {
        "weights": np.stack([w0, 1 - w0], axis=-1),
        "means": MU + 0.05 * rng.standard_normal((C, S, 2)),
        "sigmas": SG + 0.03 * rng.standard_normal((C, S, 2)),
    }
    stats = {
        "diverging": np.zeros((C, S), bool),
        "maxdepth_reached": np.zeros((C, S), bool),
        "depth": np.full((C, S), 3),
        "energy": rng.standard_normal((C, S)),
    }
    ppc = {"x": _mixture(rng, (C, S, n))}
    for group in (post, stats, ppc):
        for key in list(group):
            if key in replace:
                group[key] = replace.pop(key)
    assert not replace, replace
    coords = {"chain": np.arange(C), "draw": np.arange(S)}
    cdims, pdims = ("chain", "draw"), ("chain", "draw", "component")
    groups = {
        "posterior": xr.Dataset({k: (pdims, v) for k, v in post.items()},
                                coords={**coords, "component": [0, 1]}),
        "sample_stats": xr.Dataset({k: (cdims, v) for k, v in stats.items()}, coords=coords),
        "posterior_predictive": xr.Dataset({k: ((*cdims, "obs"), v) for k, v in ppc.items()},
                                           coords=coords),
        "observed_data": xr.Dataset({"x": ("obs", _mixture(rng, n))}),
        "em_estimate": xr.Dataset({"weights": ("component", W), "means": ("component", MU),
                                   "sigmas": ("component", SG)}, coords={"component": [0, 1]}),
    }
    return xr.DataTree.from_dict({k: v for k, v in groups.items() if k not in drop})


def _fake_nutpie(problem, tune, target_accept):
    """iid draws around the start (the EM estimate): a well-mixed 'posterior' in no time.

    Stands in for ``bayesgmm.bayes.inference._sample_nutpie`` (monkeypatch it).
    """
    K, loc, scale, theta0 = problem.K, problem.loc, problem.scale, problem.theta0
    draws, chains, seed = problem.draws, problem.chains, problem.seed
    from bayesgmm.bayes.reparam.pymc_space import unpack

    w, mu, sg = unpack(np.asarray(theta0, dtype=float), K)
    rng = np.random.default_rng(seed)
    shape = (chains, draws, K)
    weights = rng.dirichlet(2000 * w, size=(chains, draws))
    means = np.sort(loc + scale * (mu + 0.01 * rng.standard_normal(shape)), axis=-1)
    sigmas = scale * sg * np.exp(0.01 * rng.standard_normal(shape))
    coords = {"chain": np.arange(chains), "draw": np.arange(draws), "component": np.arange(K)}
    dims = ("chain", "draw", "component")
    post = xr.Dataset({"weights": (dims, weights), "means": (dims, means),
                       "sigmas": (dims, sigmas)}, coords=coords)
    cd = ("chain", "draw")
    stats = xr.Dataset({"diverging": (cd, np.zeros((chains, draws), bool)),
                        "maxdepth_reached": (cd, np.zeros((chains, draws), bool)),
                        "energy": (cd, rng.standard_normal((chains, draws)))},
                       coords={"chain": coords["chain"], "draw": coords["draw"]})
    return post, stats
