"""fit() in D >= 2 dimensions: the problem, its EM start, and relabelling each run.

:func:`bayesgmm.fit` sends data of two or more columns here for the parts that differ
from 1-D: validation (:func:`~bayesgmm.validation.check_md`: NaN = a missing value,
per-point error sds or covariances), the per-feature standardization and priors of
:func:`~bayesgmm.bayes.model_md.build_model_md`, the EM estimate with full covariances
(the start of every chain and the pivot of the labels), and the relabelling of each
run's draws to that pivot (:mod:`bayesgmm.posterior.relabel`). The run loop (the rerun
rule, ``sampling_runs``, ``first_run_check``) and the warnings are ``fit``'s own, shared
with 1-D (``bayes/inference.py``); the result is assembled in ``bayes/result_md.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any

import numpy as np

from ..em import GaussianMixtureEM
from ..errors import ConvergenceWarning
from ..validation import _check_k, check_md
from .model_md import _feature_names, standardizer_md
from .priors import Priors

#: the posterior variables of a D-dim run, in data units
NAMES_MD = ("weights", "means", "sds", "correlations", "covariances")


def n_columns(X: Any) -> int:
    """Number of columns of ``X`` (1 for 1-D data or anything that is not a table).

    Data of two or more columns take the D-dim path; everything else (1-D arrays,
    one-column tables, ragged or non-numeric input) keeps the 1-D path and its checks.
    """
    try:
        shape = np.shape(X)
    except (ValueError, TypeError):  # ragged lists: the 1-D checks say what is wrong
        return 1
    return int(shape[1]) if len(shape) == 2 else 1


@dataclasses.dataclass(frozen=True)
class ProblemMD:
    """What every run of one D-dim fit shares (the D-dim ``_Problem``).

    Attributes
    ----------
    x : ndarray of shape (n, D)
        The data, NaN where a value is missing.
    cov : ndarray of shape (n, D, D) or None
        Error covariances in data units (0 in the rows and columns of missing values).
    observed : ndarray of bool, shape (n, D)
    K : int
    loc, scale : ndarray of shape (D,)
        Each feature's mean and sd over its observed values (as ``build_model_md``).
    hyper : dict
        ``Priors.standardized_md``.
    priors : Priors, dict or None
        As the user gave them (``build_model_md`` takes them so).
    em : dict
        The EM estimate (:func:`em_estimate_md`).
    features : ndarray
        The ``feature`` coordinate: the column names (str), else 0..D-1.
    draws, chains, seed, progressbar, backend
        As in 1-D's ``_Problem``.
    """

    x: np.ndarray
    cov: np.ndarray | None
    observed: np.ndarray
    K: int
    loc: np.ndarray
    scale: np.ndarray
    hyper: dict[str, Any]
    priors: Any
    em: dict[str, Any]
    features: np.ndarray
    draws: int
    chains: int
    seed: int
    progressbar: bool
    backend: str = "native"

    @property
    def n_features(self) -> int:
        """D."""
        return int(self.x.shape[1])

    @functools.cached_property
    def target(self) -> Any:
        """The fused D-dim log-density nutpie samples (``bayes.target_md.TargetMD``)."""
        from .target_md import TargetMD

        return TargetMD.build(self.x, self.cov, self.hyper, self.loc, self.scale, self.em,
                              feature_names=self.features)

    def em_dataset(self) -> Any:
        """The EM estimate as the result's ``em_estimate`` group."""
        import xarray as xr

        em = self.em
        mat = ("component", "feature", "feature_")
        return xr.Dataset(
            {"weights": ("component", em["weights"]),
             "means": (("component", "feature"), em["means"]),
             "sds": (("component", "feature"), em["sds"]),
             "covariances": (mat, em["covariances"]),
             "correlations": (mat, em["correlations"]),
             "loglik": ((), float(em["loglik"])),
             "bic": ((), float(em["bic"]))},
            coords=self.coords(),
            attrs={"n_iter": int(em["n_iter"]), "converged": int(em["converged"]),
                   "degenerate": int(em["degenerate"])})

    def coords(self) -> dict[str, np.ndarray]:
        """The result's ``component``, ``feature`` and ``feature_`` coordinates."""
        return {"component": np.arange(self.K), "feature": self.features,
                "feature_": self.features}


def prepare_md(X: Any, X_err: Any, n_components: int, priors: Any, rng_em: Any, *,
               draws: int, chains: int, seed_rng: Any, progressbar: bool,
               backend: str) -> ProblemMD:
    """Validate D-dim data, standardize, and find the EM start: one :class:`ProblemMD`."""
    x, cov, observed = check_md(X, X_err)
    n, D = x.shape
    K = _check_k(n_components, n)
    loc, scale = standardizer_md(x, observed)
    hyper = Priors.from_any(priors).standardized_md(K, loc, scale)
    em = em_estimate_md(x, cov, K, rng_em)
    features = _feature_names(X, D)
    return ProblemMD(x=x, cov=cov, observed=observed, K=K, loc=loc, scale=scale,
                     hyper=hyper, priors=priors, em=em, features=features, draws=draws,
                     chains=chains, seed=int(seed_rng.integers(2**31 - 1)),
                     progressbar=progressbar, backend=backend)


def em_estimate_md(x: np.ndarray, cov: np.ndarray | None, K: int,
                   rng: np.random.Generator) -> dict[str, Any]:
    """The EM estimate with full covariances (NaN and error covariances handled by EM).

    Components sorted by their mean in the first feature, for a stable presentation;
    the labels of the posterior are those of this estimate.
    """
    gm = GaussianMixtureEM(K, covariance_type="full", n_init=5, random_seed=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x, X_err=cov)
    order = np.argsort(gm.means_[:, 0], kind="stable")
    covariances = gm.covariances_[order]
    sds = np.sqrt(np.einsum("kjj->kj", covariances))
    return {
        "weights": gm.weights_[order],
        "means": gm.means_[order],
        "covariances": covariances,
        "sds": sds,
        "correlations": covariances / (sds[:, :, None] * sds[:, None, :]),
        "loglik": gm.loglik_,
        "bic": gm._fit_criteria()[0],  # n_samples_fit_ == len(x): fit is unweighted
        "n_iter": gm.n_iter_,
        "converged": gm.converged_,
        "degenerate": gm.degenerate_,
    }


def _normalise(post: Any, problem: ProblemMD) -> Any:
    """A run's draws with the result's dims and coords (component, feature, feature_)."""
    out = post[list(NAMES_MD)]
    dims = {"weights": ("component",), "means": ("component", "feature"),
            "sds": ("component", "feature"),
            "correlations": ("component", "feature", "feature_"),
            "covariances": ("component", "feature", "feature_")}
    import xarray as xr

    data = {}
    for name in NAMES_MD:
        var = out[name]
        rest = [d for d in var.dims if d not in ("chain", "draw")]
        data[name] = xr.Variable(("chain", "draw", *dims[name]),
                                 var.transpose("chain", "draw", *rest).values, var.attrs)
    return xr.Dataset(data, coords={"chain": post["chain"].values,
                                    "draw": post["draw"].values, **problem.coords()},
                      attrs=post.attrs)


def relabel_run(problem: ProblemMD, post: Any, stats: Any) -> tuple[Any, Any]:
    """One run's draws relabelled to the EM estimate (``posterior.relabel.relabel``).

    Done per run, before its sampling figures: a run whose chains sit in different
    labellings would otherwise fail R-hat for a difference that is no difference.
    ``sample_stats`` gains ``relabel_permutation``, ``relabel_distance`` and
    ``relabel_margin``; the posterior's attrs the counts.
    """
    import xarray as xr

    from ..posterior.relabel import relabel

    post = _normalise(post, problem)
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats,
                                  "em_estimate": problem.em_dataset()})
    out = relabel(tree)
    return out["posterior"].to_dataset(), out["sample_stats"].to_dataset()
