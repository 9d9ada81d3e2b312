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

    Stands in for ``bayesgmm.bayes.inference._sample_nutpie`` (monkeypatch it); a D-dim
    problem gets :func:`_fake_draws_md`'s draws.
    """
    if hasattr(problem, "features"):  # inference_md.ProblemMD
        return _fake_draws_md(problem.em, problem.chains, problem.draws, problem.seed)
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


def _md_draws(w, mu, sd, corr, C, S, rng, noise=0.01):
    """iid draws (chain, draw, ...) around weights, means, sds, correlations."""
    K, D = mu.shape
    weights = rng.dirichlet(2000 * np.asarray(w), size=(C, S))
    means = mu + noise * sd * rng.standard_normal((C, S, K, D))
    sds = sd * np.exp(noise * rng.standard_normal((C, S, K, D)))
    # correlations: the Cholesky factor's rows perturbed and renormalised (stays valid)
    L = np.linalg.cholesky(corr) + noise * np.tril(rng.standard_normal((C, S, K, D, D)), -1)
    L /= np.linalg.norm(L, axis=-1, keepdims=True)
    corrs = L @ np.swapaxes(L, -1, -2)
    covs = sds[..., :, None] * corrs * sds[..., None, :]
    return weights, means, sds, corrs, covs


def _fake_draws_md(em, chains, draws, seed, *, scramble=False):
    """Fake D-dim sampling around an EM estimate: (posterior, sample_stats) datasets.

    ``scramble``: each chain's components in its own labelling (chain c permuted by a
    rotation by c), as chains started in different copies of the posterior would be.
    """
    rng = np.random.default_rng(seed)
    parts = _md_draws(em["weights"], em["means"], em["sds"], em["correlations"], chains,
                      draws, rng)
    K, D = np.shape(em["means"])
    if scramble:
        perm = np.stack([np.roll(np.arange(K), c) for c in range(chains)])
        parts = tuple(np.take_along_axis(
            v, perm.reshape(chains, 1, K, *(1,) * (v.ndim - 3)), axis=2) for v in parts)
    names = ("weights", "means", "sds", "correlations", "covariances")
    dims = (("component",), ("component", "feature"), ("component", "feature"),
            ("component", "feature", "feature_"), ("component", "feature", "feature_"))
    cd = ("chain", "draw")
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    post = xr.Dataset({k: ((*cd, *d), v) for k, d, v in zip(names, dims, parts, strict=True)},
                      coords=coords)
    stats = xr.Dataset({"diverging": (cd, np.zeros((chains, draws), bool)),
                        "maxdepth_reached": (cd, np.zeros((chains, draws), bool)),
                        "energy": (cd, rng.standard_normal((chains, draws)))}, coords=coords)
    return post, stats


#: the parameters of :func:`_tree_md`'s default mixture (K = 2, D = 2)
W_MD = np.array([0.6, 0.4])
MU_MD = np.array([[0.0, 0.0], [5.0, 3.0]])
SD_MD = np.array([[1.0, 0.5], [0.7, 1.2]])
CORR_MD = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 1.0]]])


def _tree_md(seed=0, C=4, S=500, n=300, *, weights=W_MD, means=MU_MD, sds=SD_MD,
             correlations=CORR_MD, draws=None, features=None, drop=()):
    """A D-dim fit result in the layout ``fit`` returns for D >= 2 (no sampler runs).

    Parameters
    ----------
    seed, C, S, n : int
        Random seed, chains, draws per chain, data points.
    weights, means, sds, correlations : array-like
        The mixture the data, the EM estimate and (unless ``draws``) the draws are
        around: shapes (K,), (K, D), (K, D), (K, D, D).
    draws : dict, optional
        Posterior draws to use instead: ``weights`` (C, S, K), ``means``, ``sds``
        (C, S, K, D) and ``correlations`` (C, S, K, D, D); covariances are derived.
    features : sequence, optional
        The ``feature`` coordinate (default 0..D-1).
    drop : tuple of str
        Groups left out.
    """
    rng = np.random.default_rng(seed)
    w, mu, sd, corr = (np.asarray(a, dtype=float) for a in (weights, means, sds,
                                                             correlations))
    K, D = mu.shape
    if draws is None:
        parts = _md_draws(w, mu, sd, corr, C, S, rng, noise=0.03)
    else:
        ds = draws["sds"]
        parts = (draws["weights"], draws["means"], ds, draws["correlations"],
                 ds[..., :, None] * draws["correlations"] * ds[..., None, :])
        C, S = np.shape(draws["weights"])[:2]
    feats = np.arange(D) if features is None else np.asarray(features)
    coords = {"chain": np.arange(C), "draw": np.arange(S), "component": np.arange(K),
              "feature": feats, "feature_": feats}
    names = ("weights", "means", "sds", "correlations", "covariances")
    dims = (("component",), ("component", "feature"), ("component", "feature"),
            ("component", "feature", "feature_"), ("component", "feature", "feature_"))
    cd = ("chain", "draw")
    cov = sd[:, :, None] * corr * sd[:, None, :]
    lab = rng.choice(K, size=n, p=w)
    chol = np.linalg.cholesky(cov)
    x = mu[lab] + np.einsum("nij,nj->ni", chol[lab], rng.standard_normal((n, D)))
    lab_r = rng.choice(K, size=(C, S, n), p=w)
    rep = mu[lab_r] + np.einsum("csnij,csnj->csni", chol[lab_r],
                                rng.standard_normal((C, S, n, D)))
    em = xr.Dataset({"weights": ("component", w), "means": (dims[1], mu),
                     "sds": (dims[2], sd), "correlations": (dims[3], corr),
                     "covariances": (dims[4], cov), "loglik": ((), 0.0), "bic": ((), 0.0)},
                    coords={k: coords[k] for k in ("component", "feature", "feature_")})
    obs = {"obs": np.arange(n), "feature": feats}
    groups = {
        "posterior": xr.Dataset({k: ((*cd, *d), v)
                                 for k, d, v in zip(names, dims, parts, strict=True)},
                                coords=coords),
        "sample_stats": xr.Dataset(
            {"diverging": (cd, np.zeros((C, S), bool)),
             "maxdepth_reached": (cd, np.zeros((C, S), bool)),
             "energy": (cd, rng.standard_normal((C, S)))},
            coords={"chain": coords["chain"], "draw": coords["draw"]}),
        "posterior_predictive": xr.Dataset({"x": ((*cd, "obs", "feature"), rep)},
                                           coords={**obs, "chain": coords["chain"],
                                                   "draw": coords["draw"]}),
        "observed_data": xr.Dataset({"x": (("obs", "feature"), x)}, coords=obs),
        "em_estimate": em,
    }
    dt = xr.DataTree.from_dict({k: v for k, v in groups.items() if k not in drop})
    dt.attrs.update({"n_components": K, "n_features": D, "data_name": "x",
                     "has_errors": 0})
    return dt
