"""fit(): EM start, sampling (nutpie or PyMC), and the ArviZ DataTree result."""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from .._numerics.standardize import standardizer
from ..diagnostics.sampling import rerun_ess_min, sampling_figures
from ..em import GaussianMixtureEM
from ..errors import ConvergenceWarning, DataError, SamplingError
from ..validation import _check_k, check_1d, check_sampling
from .inference_md import ProblemMD, n_columns, prepare_md, relabel_run
from .priors import Priors, resolve
from .result import _assemble, _data_name
from .result_md import _assemble_md
from .samplers import nutpie as _nutpie
from .samplers.pymc_nuts import _sample_pymc_md_or_fail, _sample_pymc_or_fail
from .target import REPARAMS, Target

__all__ = ["fit"]


#: target_accept of the first run, and of the second when the first had divergences
#: (after poor mixing alone the second keeps the first's; either way with 2x tune)
RETRY_TARGET_ACCEPT = (0.8, 0.99)
#: ``sampler="smc"``: particles per SMC run, independent runs, importance draws
#: (``posterior_k``'s defaults: its check of the galaxy data at K = 3 used them)
SMC_PARTICLES, SMC_RUNS, SMC_IMPORTANCE = 1000, 4, 200_000
#: the rerun rule's last step: data of at most this many observed values (points x
#: features) whose two NUTS runs both failed R-hat are sampled again by ``"smc"``
#: (Old Faithful's 544 take 70-80 s; the cost grows with n times the importance draws)
SMC_FALLBACK_MAX_VALUES = 2000


def _fit(
    X: Any,
    n_components: int,
    *,
    X_err: Any = None,
    priors: Priors | dict | str | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: Literal["nutpie", "pymc", "numpyro", "smc"] = "nutpie",
    random_seed: int | np.random.Generator | None = None,
    progressbar: bool = True,
    target_accept: float | None = None,
    log_likelihood: bool | None = None,
    first_run_check: Callable[[Any], str | None] | None = None,
    # private choices (fit takes the defaults): the nutpie backend ("native", "pyfunc";
    # samplers.nutpie.BACKENDS) and the reparametrisation ("pair", "pymc"; target.REPARAMS)
    backend: str = "native",
    reparam: str = "pair",
    light: bool = False,
) -> Any:
    """:func:`fit`, with the private choices as arguments.

    Tests pass ``backend`` and ``reparam``; ``fit`` takes the defaults. ``light=True``
    skips the draws' modes and the checks' warnings (``posterior_k``, whose draws
    only shape a proposal: the importance weights' check is the one that counts).
    """
    # two or more columns: the D-dim problem (bayes/inference_md.py); the rest of this
    # function (the run loop, the rerun rule, the warnings) is shared
    md = n_columns(X) >= 2
    if md:
        check_sampling(draws, tune, chains, sampler, target_accept)
    else:
        x, e = check_1d(X, X_err)
        K = _check_k(n_components, x.shape[0])
        check_sampling(draws, tune, chains, sampler, target_accept)
        if sampler == "smc":  # SMC from the prior reaches what NUTS from EM does not
            from .posterior_k import check_no_ties

            check_no_ties(x, e, "sampler='smc'")
    # a misspelt choice is a bug, not a sampler failure to fall back from
    if backend not in _nutpie.BACKENDS or reparam not in REPARAMS:
        raise ValueError(f"backend must be one of {_nutpie.BACKENDS} and reparam one of "
                         f"{REPARAMS}; got {backend!r}, {reparam!r}")
    # independent streams for EM's starts and the sampler's seed: a change in how many
    # numbers EM's initialisation draws must not change the chains (the predictive draws
    # are seeded from the sampler's seed)
    rng_em, rng_sampler = np.random.default_rng(random_seed).spawn(2)
    if md:
        problem = prepare_md(X, X_err, n_components, priors, rng_em, draws=draws,
                             chains=chains, seed_rng=rng_sampler, progressbar=progressbar,
                             backend=backend)
    else:
        loc, scale = standardizer(x)
        priors = resolve(priors, x)
        hyper = Priors.from_any(priors).standardized(K, loc, scale)
        if "precision_alpha" in hyper and sampler != "smc":
            raise DataError(
                "Richardson & Green's hierarchical widths prior (precision_alpha, "
                "precision_g, precision_h) is sampled by sampler='smc' only: the NUTS "
                "density has the HalfNormal widths prior. Pass sampler='smc'.")

        em = _em_estimate(x, e, K, rng_em)
        problem = _Problem(x=x, e=e, K=K, loc=loc, scale=scale, hyper=hyper, priors=priors,
                           em=em, theta0=_unconstrained_start(em, loc, scale), draws=draws,
                           chains=chains, seed=int(rng_sampler.integers(2**31 - 1)),
                           progressbar=progressbar, backend=backend, reparam=reparam)
    seed = problem.seed
    if sampler == "smc" and md:
        from .posterior_k import check_no_ties_md

        check_no_ties_md(problem.x, problem.cov, "sampler='smc'", problem.features)
        post, stats, runs, active = _sample_smc_md(problem)
    elif sampler == "smc":
        post, stats, runs, active = _sample_smc(problem)
    else:
        post, stats, runs, active = _nuts_runs(problem, sampler, md, tune, target_accept,
                                               chains, draws, first_run_check)
        why_not = _smc_fallback(problem, md, sampler, target_accept, runs)
        if why_not is None:
            post, stats, runs, active = _fall_back_to_smc(problem, md, runs)
        elif why_not:
            runs[-1]["smc_fallback"] = why_not
    if md:
        dt = _assemble_md(problem, post, stats, active, log_likelihood, *_data_name(X))
    else:
        dt = _assemble(x, e, K, loc, scale, hyper, em, post, stats, active, seed,
                       log_likelihood, *_data_name(X))
    if md and not light:
        from .modes import attach_modes_md

        attach_modes_md(dt, problem.target)
    elif not light:
        from .modes import attach_modes

        z = (x - loc) / scale
        attach_modes(dt, z, np.zeros(1) if e is None else (e / scale) ** 2, K, hyper, loc,
                     scale)
    if "target_accept" in runs[-1]:
        dt.attrs["target_accept"] = float(runs[-1]["target_accept"])
    dt.attrs["sampling_runs"] = json.dumps(runs)
    if runs[0].get("stopped_early"):
        dt.attrs["stopped_early"] = runs[0]["stopped_early"]
    if light:
        return dt
    from ..diagnostics.advice import _failed_check_warnings

    for warning in _failed_check_warnings(dt):
        warnings.warn(warning, stacklevel=3)
    return dt


def _smc_one(target: Any, seed: int, draws: int, chains: int, log_jac: float,
             gibbs: Any) -> tuple[dict, dict]:
    """SMC + importance sampling on one fit's tempered target: (``_one_k``'s dict, run record).

    Where the importance check fails, the draws would be SMC's particles, whose modes'
    weights are unreliable (:mod:`.empty`: SMC's particles visit an overfitted
    component's empty states too rarely). Then ``gibbs(starts, rng)`` (K >= 2), the
    allocations' Gibbs sampler with one chain per start, ``chains`` of SMC's particles,
    runs instead: its draws replace the particles when its chains agree on how often a
    component is empty (R-hat below ``empty.RHAT_MAX``), and ``one["sampler"]`` says
    ``"gibbs"``. Warns in either case: the evidence in the record is SMC's.
    """
    from ..errors import SamplingWarning
    from .empty import RHAT_MAX
    from .posterior_k import _one_k, _smc_only

    n_runs = SMC_RUNS
    one = _one_k(target, np.random.default_rng(seed), n_particles=SMC_PARTICLES,
                 n_runs=n_runs, n_importance=SMC_IMPORTANCE, n_draws=draws)
    imp = one["importance"]
    run = {"sampler": "smc", "evidence_method": one["method"],
           "log_evidence": float(one["log_evidence"] - log_jac),
           "log_evidence_se": float(one["log_evidence_se"]),
           "log_evidence_smc": float(one["log_evidence_smc"] - log_jac),
           "pareto_k": float(imp.pareto_k), "importance_ess": float(imp.ess),
           "smc_stages": one["smc_stages"], "n_particles": SMC_PARTICLES,
           "smc_runs": n_runs, "n_importance": SMC_IMPORTANCE}
    one["sampler"] = "smc"
    if one["method"] != "smc":
        return one, run
    theta = one["theta"]
    gibbs_run = None
    if target.K >= 2 and chains >= 2:
        starts = theta[np.linspace(0, theta.shape[0] - 1, chains).astype(int)]
        gibbs_run = gibbs(starts, np.random.default_rng([seed, 4]))
        run.update(gibbs_empty_probability=float(gibbs_run.value),
                   gibbs_rhat=float(gibbs_run.rhat), gibbs_sweeps=int(gibbs_run.sweeps))
    if gibbs_run is not None and gibbs_run.rhat < RHAT_MAX:
        d = gibbs_run.draws
        one.update(theta=d.reshape(-1, d.shape[-1]), chains=d.shape[0], sampler="gibbs")
        run["draws"] = "gibbs"
        warnings.warn(f"sampler='smc': the posterior {_smc_only(one, n_runs)} Its draws "
                      f"come from {d.shape[0]} chains of the allocations' Gibbs sampler "
                      "started at SMC's particles instead (they visit every grouping "
                      "of the points, empty components included, as often as the "
                      "posterior does); diagnose checks them. The evidence in "
                      "attrs['sampling_runs'] is SMC's, unchecked.", SamplingWarning,
                      stacklevel=5)
        return one, run
    why = ("" if gibbs_run is None else
           f" The allocations' Gibbs sampler started there did not settle either (R-hat "
           f"{gibbs_run.rhat:.3f} of an empty component's probability, limit {RHAT_MAX}).")
    warnings.warn(f"sampler='smc': the posterior {_smc_only(one, n_runs)} Its draws are "
                  f"SMC's particles, whose mode weights may be off.{why} Check the modes "
                  "in diagnose, or fit with fewer components.", SamplingWarning,
                  stacklevel=5)
    return one, run


def _sample_smc(problem: _Problem):
    """Tempered SMC + importance sampling (``sampler="smc"``): every mode, weighted.

    :func:`bayesgmm.bayes.posterior_k._one_k` on this K, its draws resampled by the
    importance weights (or, when those fail their check, the Gibbs sampler's or SMC's
    particles, warned: :func:`_smc_one`). Returns (posterior, sample_stats, runs, the
    sampler whose draws these are) as the NUTS path does.
    """
    import math

    from .empty import empty_probability
    from .posterior_k import _draws_datasets
    from .smc import check_exchangeable, tempered_1d

    p = problem
    check_exchangeable(p.hyper)
    z = (p.x - p.loc) / p.scale
    eps2 = np.zeros(1) if p.e is None else (p.e / p.scale) ** 2
    one, run = _smc_one(tempered_1d(z, eps2, p.K, p.hyper), p.seed, p.chains * p.draws,
                        p.chains, z.shape[0] * math.log(p.scale),
                        lambda starts, rng: empty_probability(z, eps2, p.K, p.hyper, starts,
                                                              rng, draws=p.draws))
    C = p.chains if one["method"] == "importance" else one["chains"]
    post, stats = _draws_datasets(one["theta"], p.K, C, p.loc, p.scale,
                                 {k: v for k, v in run.items() if k != "sampler"})
    return post, stats, [run], one["sampler"]


def _sample_smc_md(problem: ProblemMD):
    """``sampler="smc"`` in D dims: :func:`_sample_smc` on :class:`~.smc_md.TemperedMD`."""
    from .empty import empty_probability_md
    from .smc_md import TemperedMD

    p = problem
    log_jac = float(np.log(np.broadcast_to(p.scale, p.x.shape)[p.observed]).sum())
    one, run = _smc_one(TemperedMD.build(p.target), p.seed, p.chains * p.draws, p.chains,
                        log_jac, lambda starts, rng: empty_probability_md(
                            p.target, starts, rng, draws=p.draws))
    post, stats = smc_draws_md(p, one, {k: v for k, v in run.items() if k != "sampler"})
    return post, stats, [run], one["sampler"]


def smc_draws_md(problem: ProblemMD, one: dict[str, Any], attrs: dict[str, Any]):
    """``_one_k``'s draws of a D-dim problem as a relabelled (posterior, sample_stats).

    The draws (components sorted by their first feature's mean) are expanded to data
    units and relabelled to the EM estimate as NUTS runs are
    (:func:`~.inference_md.relabel_run`); ``attrs`` go on the statistics.
    """
    import xarray as xr

    target = problem.target
    C = problem.chains if one["method"] == "importance" else one["chains"]
    theta = one["theta"]
    S = theta.shape[0] // C
    parts = [target.expand(t) for t in theta[: C * S]]
    dims = target.dims
    post = xr.Dataset(
        {name: (("chain", "draw", *dims[name]),
                np.stack([q[name] for q in parts]).reshape(C, S, *target.shapes[name]))
         for name in target.shapes},
        coords={"chain": np.arange(C), "draw": np.arange(S), **target.coords})
    stats = xr.Dataset(coords={"chain": np.arange(C), "draw": np.arange(S)}, attrs=attrs)
    return relabel_run(problem, post, stats)


def _nuts_runs(problem, sampler, md, tune, target_accept, chains, draws, first_run_check):
    """NUTS runs under the rerun rule: (posterior, sample_stats, runs, sampler that ran)."""
    # a second run only if the first fails a check (target_accept None)
    schedule = [(RETRY_TARGET_ACCEPT[0] if target_accept is None else target_accept, tune)]
    runs: list[dict[str, Any]] = []
    # the sampler that runs: after a nutpie failure (warned in _sample), PyMC's NUTS for
    # the rest of this fit, its rerun included (the warning says so)
    active = sampler
    while schedule:
        accept, n_tune = schedule.pop(0)
        try:
            post, stats, active = _sample(active, problem, n_tune, accept)
        except SamplingError as exc:
            if not runs:
                raise
            from ..errors import SamplingWarning

            warnings.warn(f"the second run (target_accept {accept}) failed ({exc}); keeping "
                          "the first run (its checks are in attrs['sampling_runs']).",
                          SamplingWarning, stacklevel=4)
            break
        if md:  # labels identified per run, before its figures (inference_md.relabel_run)
            post, stats = relabel_run(problem, post, stats)
        # the rerun rule: the sampling checks (diagnostics.sampling), ESS held to what
        # a run of this length can reach
        figures = sampling_figures(post, stats)
        ess_min = rerun_ess_min(chains, draws)
        failed = figures.failed(ess_min=ess_min)
        n_div = figures.divergences or 0
        runs.append({"target_accept": float(accept), "tune": int(n_tune),
                     "divergences": n_div, "max_rhat": figures.max_rhat,
                     "min_ess_bulk": figures.min_ess_bulk,
                     "min_ess_tail": figures.min_ess_tail, "ess_min": ess_min,
                     "failed": failed, "sampler": active,
                     "backend": stats.attrs.get("nutpie_backend", active),
                     "pair": int(stats.attrs.get("sampler_pair", -1))})
        if failed and target_accept is None and len(runs) == 1:
            stop = first_run_check(_run_tree(post, stats)) if first_run_check else None
            if stop:
                runs[-1]["stopped_early"] = str(stop)
            else:  # divergences: smaller steps; poor mixing alone: longer adaptation
                schedule.append((RETRY_TARGET_ACCEPT[1] if n_div else accept,
                                 2 * max(tune, 1)))
    return post, stats, runs, active


def _smc_fallback(problem: Any, md: bool, sampler: str, target_accept: float | None,
                  runs: list[dict[str, Any]]) -> str | None:
    """Whether the rerun rule ends with SMC: None if it does, else why not ('' if moot).

    Two NUTS runs from the EM estimate that both fail R-hat (the second with twice the
    tuning) mostly mean regions of the posterior NUTS moves between too slowly (Old
    Faithful at K = 3 in 2-D); more tuning does not fix that, tempering from the prior
    does. Only the default path (``sampler="nutpie"``, ``target_accept=None``, runs of at
    least 4 chains x 1,000 draws, whose R-hat does not fail from their length), on data
    small enough for SMC + importance sampling, without exact repeats (no evidence
    exists there) and with priors that treat components alike.
    """
    if (sampler != "nutpie" or target_accept is not None or len(runs) != 2
            or "max_rhat" not in runs[-1]["failed"]):
        return ""
    from ..errors import DataError
    from .posterior_k import check_no_ties, check_no_ties_md

    if problem.chains < 4 or problem.draws < 1000:
        # a short run's R-hat can fail from its length alone, which SMC would not cure
        return (f"not sampled by SMC: runs of {problem.chains} chains x {problem.draws} "
                "draws are shorter than fit's defaults (4 x 1,000), where R-hat can fail "
                "from their length alone; run the defaults, or pass sampler='smc'")
    size = int(problem.observed.sum()) if md else int(problem.x.shape[0])
    if size > SMC_FALLBACK_MAX_VALUES:
        return (f"not sampled by SMC: {size} observed values is more than "
                f"{SMC_FALLBACK_MAX_VALUES}, where it would take long; "
                "sampler='smc' runs it")
    who = "not sampled by SMC"
    try:
        if md:
            check_no_ties_md(problem.x, problem.cov, who, problem.features)
            from .smc_md import TemperedMD

            TemperedMD.build(problem.target)
        else:
            from .smc import check_exchangeable

            check_no_ties(problem.x, problem.e, who)
            check_exchangeable(problem.hyper)
    except DataError as exc:
        return str(exc)
    return None


def _fall_back_to_smc(problem: Any, md: bool, runs: list[dict[str, Any]]):
    """The rerun rule's last step: SMC + importance sampling, warned, replacing NUTS's draws."""
    from ..errors import SamplingWarning

    warnings.warn(
        f"both NUTS runs failed R-hat (max {runs[-1]['max_rhat']:.3f} > 1.01 after "
        f"tune={runs[-1]['tune']}): the posterior has regions NUTS from the EM estimate "
        "moves between too slowly. Sampling it by tempered SMC + importance sampling "
        "instead (sampler='smc'); attrs['sampling_runs'] keeps all three runs. "
        "target_accept=0.8 keeps a single NUTS run.", SamplingWarning, stacklevel=4)
    post, stats, smc_runs, active = (_sample_smc_md if md else _sample_smc)(problem)
    return post, stats, runs + smc_runs, active


def _run_tree(post: Any, stats: Any) -> Any:
    """One run's draws and sampler statistics as a DataTree, for ``first_run_check``."""
    import xarray as xr

    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


@dataclasses.dataclass(frozen=True)
class _Problem:
    """What every run of one fit shares: the data, priors, EM start, seed and choices.

    Each run adds only its ``tune`` and ``target_accept``. ``backend`` ("native",
    "pyfunc") and ``reparam`` ("pair", "pymc") are the private choices of :func:`_fit`.
    """

    x: np.ndarray
    e: np.ndarray | None
    K: int
    loc: float
    scale: float
    hyper: dict[str, np.ndarray]
    priors: Any
    em: dict[str, Any]
    theta0: np.ndarray
    draws: int
    chains: int
    seed: int
    progressbar: bool
    backend: str = "native"
    reparam: str = "pair"

    @functools.cached_property
    def target(self) -> Target:
        """The log-density nutpie samples, built once per fit (on the first nutpie run)."""
        z = (self.x - self.loc) / self.scale
        eps2 = np.zeros_like(z) if self.e is None else (self.e / self.scale) ** 2
        # the constant -n log(scale) is left out of what the sampler sees: it changes
        # nothing but rounding, and without it x -> 2x gives exactly twice the draws
        return Target.build(z, eps2, self.hyper, self.loc, self.scale, self.theta0,
                            self.reparam)


def _sample(sampler: str, problem: _Problem, tune: int, target_accept: float):
    """One sampling run; nutpie falls back to PyMC's NUTS (with a warning) if it fails.

    Returns (posterior, sample_stats, the sampler that ran).
    """
    if sampler == "nutpie":
        try:
            post, stats = _sample_nutpie(problem, tune, target_accept)
            return post, stats, "nutpie"
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # nutpie's Rust panics are BaseExceptions
            from ..errors import SamplingWarning

            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(
                f"nutpie failed ({type(exc).__name__}: {first}); falling back to PyMC's own "
                "NUTS sampler for the rest of this fit (its rerun too, if there is one), "
                "which is slower but samples the same model.",
                SamplingWarning, stacklevel=5,
            )
    p = problem
    nuts = "numpyro" if sampler == "numpyro" else "pymc"
    if isinstance(p, ProblemMD):
        return (*_sample_pymc_md_or_fail(p, tune, target_accept, nuts), nuts)
    post, stats = _sample_pymc_or_fail(p.x, p.e, p.K, p.priors, p.theta0, p.draws, tune,
                                       p.chains, p.seed, p.progressbar, target_accept, p.em,
                                       nuts)
    return post, stats, nuts


def _sample_nutpie(problem: _Problem | ProblemMD, tune: int, target_accept: float):
    """One nutpie run on this fit's target (``Target``; in D dims ``TargetMD``)."""
    return _nutpie.sample(problem.target, problem.draws, tune, problem.chains, problem.seed,
                          problem.progressbar, target_accept, backend=problem.backend)


def _em_estimate(x: np.ndarray, e: np.ndarray | None, K: int, rng: np.random.Generator):
    gm = GaussianMixtureEM(K, n_init=5, random_seed=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x, X_err=e)
    order = np.argsort(gm.means_[:, 0], kind="stable")
    return {
        "weights": gm.weights_[order],
        "means": gm.means_[order, 0],
        "sigmas": np.sqrt(gm.covariances_[order, 0, 0]),
        "loglik": gm.loglik_,
        "bic": gm._fit_criteria()[0],  # n_samples_fit_ == len(x): fit is unweighted
        "n_iter": gm.n_iter_,
        "converged": gm.converged_,
        "degenerate": gm.degenerate_,
    }


def _unconstrained_start(em: dict, loc: float, scale: float) -> np.ndarray:
    """The EM estimate in PyMC's unconstrained space (simplex, ordered, log)."""
    w = np.maximum(em["weights"], 1e-6)
    w = w / w.sum()
    lw = np.log(w)
    y = lw[:-1] - lw.mean()
    mu = (em["means"] - loc) / scale
    gaps = np.maximum(np.diff(mu), 1e-3)
    t_mu = np.concatenate([[mu[0]], np.log(gaps)])
    sig = np.maximum(em["sigmas"] / scale, 1e-2)
    return np.concatenate([y, t_mu, np.log(sig)])


def fit(
    X: Any,
    n_components: int,
    *,
    X_err: Any = None,
    priors: Priors | dict | str | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: Literal["nutpie", "pymc", "numpyro", "smc"] = "nutpie",
    random_seed: int | np.random.Generator | None = None,
    progressbar: bool = True,
    target_accept: float | None = None,
    log_likelihood: bool | None = None,
    first_run_check: Callable[[Any], str | None] | None = None,
) -> Any:
    """Sample the posterior of a Gaussian mixture in D >= 1 dims, started and checked by EM.

    Parameters
    ----------
    X : array-like of shape (n_samples,) or (n_samples, n_features)
        The data. Its name (a pandas Series' ``name``, a one-column DataFrame's column,
        an xarray DataArray's ``name``; ``"x"`` for plain arrays) names the data
        variable in the result and the figures' axes; units come from
        ``X.attrs["units"]`` or a name like ``"waiting [min]"``. Two or more columns
        fit the D-dimensional model (:func:`bayesgmm.bayes.model_md.build_model_md`:
        full covariances, an LKJ prior on each component's correlations); a
        DataFrame's columns name the ``feature`` coordinate. There a NaN is a missing
        value, marginalised exactly (the point's likelihood uses its observed
        features); a row with every value missing is refused. 1-D data (and one
        column) keep the 1-D model, sampler and numbers.
    n_components : int
    X_err : array-like, optional
        Per-point measurement errors; the sigmas (sds, covariances) are then
        intrinsic. 1-D: standard deviations of shape (n_samples,). D dims: standard
        deviations of shape (n_samples,) (the same in every feature) or
        (n_samples, n_features), or full covariances of shape
        (n_samples, n_features, n_features); entries of missing values may be NaN.
    priors : Priors, dict or str, optional
        See :class:`bayesgmm.Priors` (data units). ``"richardson_green"`` (1-D, with
        ``sampler="smc"``): Richardson & Green's (1997) prior, hierarchical widths
        included (:meth:`bayesgmm.Priors.richardson_green`).
    draws, tune, chains : int
        Kept draws per chain, tuning steps per chain, number of chains.
    sampler : {"nutpie", "pymc", "numpyro", "smc"}, default="nutpie"
        ``"nutpie"`` samples a fused, compiled log-density (identical to the
        :func:`build_model` model's, checked by the tests) with nutpie: nothing is
        compiled per fit, so repeated fits (several K, new data) cost only sampling.
        It samples in coordinates where the most overlapping adjacent pair of
        components (among those with equal weight and width priors) is one unit
        (weight, mean and sd of the two) plus how it splits; the posterior is the
        same, the sampler mixes better on overlapping components
        (``bayesgmm.bayes.reparam.pair``).
        ``"pymc"`` samples the :func:`build_model` model with PyMC's own NUTS.
        In D dims ``"nutpie"`` samples the fused D-dim log-density
        (``bayes.target_md``) and ``"pymc"`` the ``build_model_md`` model (its
        PyTensor graph compiled per fit: slower), every chain started at the EM
        estimate (plus a small jitter) in either.
        ``"numpyro"`` (extra ``bayesgmm[jax]``): the same ``build_model`` model,
        its PyTensor graph turned into JAX and sampled by NumPyro's NUTS with all
        chains in one vectorized program, on a GPU when JAX sees one (big data:
        every leapfrog step is a pass over all points, which a GPU does in
        parallel); on a CPU the default is faster.
        ``"smc"`` (priors the same for every component): for posteriors with several
        modes or regions NUTS moves between too slowly, which chains started at the
        EM estimate may never reach or never weigh right. Tempered SMC from the prior
        finds them and importance sampling weights them
        (:func:`bayesgmm.posterior_k`'s machinery for this K); the draws are
        resampled by the importance weights, so each region's share of them is its
        posterior mass. Where importance sampling fails its check (typically K above
        what the data support), the draws come instead from a Gibbs sampler over the
        allocations started at SMC's particles (one chain per ``chains``; its chains
        visit the groupings with an empty component as often as the posterior does),
        warned. In D dims the draws are then relabelled to the EM estimate as NUTS
        draws are. ``tune`` and ``target_accept`` do not apply; it costs a few
        NUTS fits on small data and grows with n (ARCHITECTURE.md, "Several modes").
        Values that repeat exactly without a measurement error (rounded data) are
        refused: the posterior has no finite normalising constant there; pass the
        rounding error, u / sqrt(12) for values rounded to a unit u.
    random_seed : int, numpy.random.Generator or None
        Seeds EM, the chains' starting points and the sampler: the same seed gives
        the same posterior.
    progressbar : bool, default=True
    target_accept : float or None, default=None
        NUTS's target acceptance rate. None: 0.8, and if that run fails the sampling
        checks (:mod:`bayesgmm.diagnostics.sampling`: any divergent transition, max
        R-hat > 1.01, or min bulk or tail ESS under 400, or under 10% of the draws
        for runs too short ever to reach 400) the posterior is
        sampled again (same seed) with twice the tuning steps, and that run is kept,
        whatever its figures (choosing between runs by their diagnostics would be a
        selection of its own). After divergences the second run is at 0.99:
        divergences mean the sampler missed part of the posterior (overlapping
        components give it regions of very different curvature), and smaller steps
        with longer trajectories usually remove them, at a higher cost per draw.
        After poor mixing alone (R-hat, ESS) it stays at 0.8: the longer adaptation is
        what helps there, and 0.99 would only cost more per draw (figures in
        ``benchmarks/README.md``). If that second run fails R-hat too, with at least
        4 chains x 1,000 draws (shorter runs can fail from their length alone), on data
        of at most :data:`SMC_FALLBACK_MAX_VALUES` observed values (points x features)
        without exact repeats, the posterior is sampled a third time by
        ``sampler="smc"`` and those draws are kept (warned, and recorded in
        ``sampling_runs``): twice-failed chains from the EM estimate mostly mean
        regions NUTS moves between too slowly, which more tuning does not fix
        (Old Faithful at K = 3 in 2-D). Larger data keep the second run, with
        ``sampling_runs`` saying why SMC did not run. A number: that rate, one run.
    log_likelihood : bool or None, default=None
        Store the pointwise log-likelihood (for ``arviz_stats.loo``). None stores it
        when it has at most 50 million values (chains x draws x points).
    first_run_check : callable, optional
        Called with the first run (a DataTree with ``posterior`` and ``sample_stats``)
        when it failed a check and a second run would follow. A string returned means
        the model is hopeless as it is: no second run, the first is kept, and the string
        is stored in ``attrs["stopped_early"]`` (``bayesgmm fit --k auto`` stops a
        candidate K that is not identified this way).

    Returns
    -------
    xarray.DataTree
        1-D: groups ``posterior`` (``weights``, ``means``, ``sigmas``; dims chain, draw,
        component; data units), ``sample_stats``, ``log_likelihood`` and
        ``posterior_predictive`` (thinned beyond 10 million values) under the data's
        name (``attrs["data_name"]``: see ``X``),
        ``observed_data``, ``constant_data`` (errors, standardization, priors) and
        ``em_estimate`` (the EM maximum-likelihood estimate, sorted by mean). Attributes
        include ``target_accept`` (of the run kept) and ``sampling_runs``, a JSON string
        (``json.loads`` it) listing each run's target_accept, tune, divergences,
        max_rhat, min_ess_bulk, min_ess_tail, ess_min (the ESS it was held to),
        failed (the figures out of bounds), sampler, backend
        (``"native"``: nutpie calls the compiled log-density directly; ``"pyfunc"``:
        through Python, the fallback for other nutpie versions) and pair (the j of the
        components j, j + 1 sampled as one unit plus their split; -1: none, PyMC's
        coordinates, as when no adjacent pair has equal priors); for ``"smc"`` one
        entry with the evidence figures (``log_evidence``, ``pareto_k``,
        ``importance_ess``, ``evidence_method``), also the third entry when the rerun
        rule ended with SMC (see ``target_accept``). Results also keep the
        posterior's modes (:mod:`bayesgmm.bayes.modes`): ``attrs["modes"]`` (JSON: the
        number of modes, their weights, each chain's shares, the parameters at each
        mode, the split R-hat of the mode indicators) and ``sample_stats["mode"]``,
        each draw's mode.

        D dims (``attrs["n_features"]``): ``posterior`` holds ``weights``
        (component), ``means`` and ``sds`` (component, feature), ``correlations`` and
        ``covariances`` (component, feature, feature_), intrinsic, in data units;
        ``log_likelihood`` each point's log-density over its observed features
        (errors included); ``posterior_predictive`` complete replicated points (obs,
        feature), errors included; ``observed_data`` the data with its NaN;
        ``constant_data`` ``x_err_cov`` (error covariances, zeros without errors),
        ``loc``, ``scale`` (feature) and the standardized priors (``prior_corr_eta``
        among them); ``em_estimate`` the EM estimate with full covariances, sorted by
        the first feature's mean. **Labels:** no ordering identifies components in D
        dims, so each run's draws are relabelled to the EM estimate (per draw, the
        permutation of its components nearest to it, :mod:`bayesgmm.posterior.relabel`)
        before their checks; ``sample_stats["relabel_permutation"]`` keeps each draw's
        permutation and ``attrs`` ``relabelled`` (1), ``relabel_pivot``
        (``"em_estimate"``), ``relabel_permuted`` (draws moved),
        ``relabel_permuted_fraction`` and ``relabel_not_identified`` (the fraction
        the pivot cannot label, which ``diagnose``'s ``pivot_identified`` checks).

    Warns
    -----
    FailedCheckWarning
        A :class:`SamplingWarning`, one for each check that
        :func:`bayesgmm.diagnose` fails on the result (after the rerun rule above), so
        ``fit`` warns exactly when ``diagnose(result).ok`` is False: max R-hat > 1.01,
        min bulk or tail ESS < 400, divergences, E-BFMI, tree depth, chains in different
        modes, chains that disagree on the modes' weights (``modes_mixed``), a mode
        no chain reached that would widen some parameter's sd by more than 10% (1-D
        from the EM estimate: ``modes_reached``), a posterior far from the EM
        estimate, a near-empty component, labels not identified (D dims: draws the
        EM estimate cannot label), a failed posterior predictive check (D dims: per
        feature). In D dims the R-hat and ESS are over
        weights, means, sds and the correlations below the diagonal. Each says the figure, the
        threshold and what to try (``draws=``, ``tune=``, ``target_accept=``,
        ``n_components=``).
    SamplingWarning
        When nutpie fails and PyMC's NUTS samples instead.
    """
    return _fit(X, n_components, X_err=X_err, priors=priors, draws=draws, tune=tune,
                chains=chains, sampler=sampler, random_seed=random_seed,
                progressbar=progressbar, target_accept=target_accept,
                log_likelihood=log_likelihood, first_run_check=first_run_check)

