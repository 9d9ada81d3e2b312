"""The posterior over the number of components, p(K | data), from each K's evidence.

p(K | x) = p(K) p(x | K) / sum_K' p(K') p(x | K'). Each evidence p(x | K) is computed
twice over (:mod:`.smc`): tempered SMC from the prior finds every mode and gives a
first estimate; importance sampling from a Gaussian mixture fitted to SMC's particles
gives the reported one, unbiased, with its Monte Carlo error, and checked by the Pareto
k-hat and ESS of its weights. Where that check fails (k-hat >= 0.7 or ESS < 200: in
high dimensions the proposal may not cover the posterior's tails), the SMC estimate is
kept and a warning says so, unless the evidence of K - 1 passed: then K's is that one
times the ratio from the posterior probability of an empty component (:mod:`.empty`;
Nobile 2004), which holds where importance sampling fails (K well above what the data
support); it is also preferred where the importance weights' k-hat is 0.5 or more
(``PARETO_K_SURE``), where their standard error is unreliable. On larger 1-D data
(n K > ``SMC_MAX_NK``), where SMC costs tens of minutes, the proposal is fitted to
one NUTS run of ``fit`` instead, with a component at each mode a climb reaches from
its draws or from random EM maxima (:func:`_nuts_one_k`). ARCHITECTURE.md says why
these methods and what they assume.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError, SamplingWarning
from ..validation import check_1d, check_ks
from .empty import LOG_SE_MAX, RHAT_MAX, log_c
from .priors import Priors, resolve
from .smc import check_exchangeable, tempered_1d

__all__ = ["IMPORTANCE_ESS_MIN", "PARETO_K_MAX", "PosteriorK", "check_no_ties",
           "evidence_checked", "posterior_k"]

#: Importance sampling's estimate is used when its weights' Pareto k-hat is below this
#: (Vehtari et al. 2024's threshold for a reliable estimate at these sample sizes).
PARETO_K_MAX = 0.7
#: ... but from this k-hat on the weights' variance is infinite and their standard error
#: understates the spread (galaxy, Richardson & Green's prior, K = 5-6: runs at k-hat
#: 0.65-0.7 differed by 0.08-0.1 against quoted se of 0.02-0.03), so the ratio to
#: K - 1's evidence through an empty component is tried first
PARETO_K_SURE = 0.5
#: ... where the probability of an empty component is at least this: rarer empty states
#: are under-visited by chains that mix slowly between them (seed 001, 1,000 points,
#: K = 4: P(empty) 0.006 put the log evidence 0.14 above importance sampling's, whose
#: k-hat 0.42-0.55 runs agree within 0.03), so a passing importance estimate is kept
EMPTY_MIN = 0.01
#: ... and when its weights' effective sample size reaches this: a few draws carrying
#: the estimate can escape the k-hat (galaxy, K = 5: ESS 30 of 200,000 at k-hat 0.60)
IMPORTANCE_ESS_MIN = 200
#: climbs for the proposal's modes from a NUTS run's draws and the EM maxima (the draws
#: are in few modes: half the climbs of SMC's widely spread particles)
N_CLIMBS_NUTS = 40
#: population Monte Carlo rounds of the importance proposal fitted to NUTS's draws
#: (one more than SMC's: autocorrelated draws describe the tails less well)
NUTS_ROUNDS = 3
#: population Monte Carlo rounds of the second importance run when the first (two rounds
#: from SMC's particles) fails its check
SMC_RETRY_ROUNDS = 4
#: ``method="auto"`` takes SMC's proposal when the data's points times K are at most
#: this, NUTS's beyond: SMC's cost grows with n K (a minute at this size, over 25
#: minutes for K = 1..5 on 1,000 points), and NUTS's proposal can miss a grouping of
#: the points that holds real mass (galaxy, K = 2: one seed in three 0.15 low with a
#: clean check), which SMC from the prior does not
SMC_MAX_NK = 1000
#: on the NUTS path the last importance round stops once the log evidence's standard
#: error is this small (p(K)'s Monte Carlo error about 1%), at n_importance draws at most
NUTS_SE_TARGET = 0.01


@dataclass
class PosteriorK:
    """p(K | data) over the candidate numbers of components.

    Attributes
    ----------
    ks : ndarray of int
        The candidates.
    probabilities : ndarray
        p(K | data) for each candidate.
    probabilities_sd : ndarray
        Their Monte Carlo standard deviations (from the evidences' errors).
    log_evidence : ndarray
        log p(x | K), data units (a density of the data, so it depends on their units).
    log_evidence_se : ndarray
        Its Monte Carlo standard error.
    prior : ndarray
        p(K).
    method : list of str
        Per K, whose evidence is reported: ``"nuts+importance"`` (importance sampling,
        its proposal fitted to a NUTS run's draws and the modes climbs reach),
        ``"importance"`` (the same, its proposal fitted to SMC's particles) or ``"smc"``
        (importance sampling unreliable: Pareto k-hat >= ``PARETO_K_MAX`` or ESS <
        ``IMPORTANCE_ESS_MIN``), or ``"nuts+importance (check failed)"`` (the same
        failure on the NUTS path, its estimate kept and warned), or
        ``"empty-component"`` (where importance sampling failed or its k-hat was
        0.5 or more: K - 1's evidence, which passed, times c_K-1 / P(a component is
        empty | x, K), the probability from a Gibbs sampler with the allocations,
        :mod:`.empty`).
        :attr:`reliable` says which K passed.
    pareto_k : ndarray
        Per K, the importance weights' Pareto k-hat.
    log_evidence_smc : ndarray
        Per K, SMC's own estimate (mean over its runs, log of the mean evidence).
    fits : dict of int to DataTree
        Per K, posterior draws in ``bayesgmm.fit``'s layout (1-D: weights, means,
        sigmas, the means in increasing order; D dims: ``fit``'s D-dim groups, the
        draws relabelled to that K's EM estimate), so ``bayesgmm.density`` and
        ``bayesgmm.membership`` take them. The draws are importance sampling's,
        resampled; where its check failed, the Gibbs sampler's when the evidence came
        through an empty component (``posterior.attrs["sampler"] == "gibbs"``), else
        SMC's particles.
    """

    ks: np.ndarray
    probabilities: np.ndarray
    probabilities_sd: np.ndarray
    log_evidence: np.ndarray
    log_evidence_se: np.ndarray
    prior: np.ndarray
    method: list[str]
    pareto_k: np.ndarray
    log_evidence_smc: np.ndarray
    fits: dict[int, Any] = field(repr=False, default_factory=dict)

    @property
    def reliable(self) -> np.ndarray:
        """Per K, whether its evidence passed the importance check (bool array)."""
        return np.array([evidence_checked(m) for m in self.method])

    @property
    def best(self) -> int:
        """The K of highest posterior probability."""
        return int(self.ks[int(np.argmax(self.probabilities))])

    def stacking_weights(self) -> Any:
        """Each K's weight in the stacking of predictive distributions (Yao et al. 2018).

        The alternative to p(K | data) for averaging over K: weights that maximise the
        leave-one-out log score of the averaged predictive distribution (ArviZ's
        ``compare(method="stacking")`` on each K's PSIS-LOO), which do not assume that
        one of the candidate K is the true model. Needs each fit's ``log_likelihood``
        group (kept unless the data are very large).

        Returns
        -------
        pandas.Series
            Indexed by K; sums to 1.
        """
        import pandas as pd
        from arviz_stats import compare

        missing = [int(k) for k, dt in self.fits.items() if "log_likelihood" not in
                   dt.children]
        if missing:
            raise DataError(f"stacking needs each K's pointwise log-likelihood; the fits "
                            f"of K = {missing} have none (large data). Use p(K | data).")
        with warnings.catch_warnings():
            # PSIS's k-hat warnings on small data: the weights are still ArviZ's answer
            warnings.simplefilter("ignore", UserWarning)
            table = compare({str(int(k)): self.fits[int(k)] for k in self.ks},
                            method="stacking", round_to="none")
        weights = pd.Series({int(name): float(w) for name, w in table["weight"].items()})
        return weights.reindex([int(k) for k in self.ks]).rename("stacking weight")

    def averaged(self, n_draws: int = 4000, random_seed: int | None = 0,
                 weights: str = "posterior") -> Any:
        """The posterior averaged over K: a DataTree that :func:`bayesgmm.density` takes.

        Each of ``n_draws`` draws picks K with probability p(K | data) (or, with
        ``weights="stacking"``, :meth:`stacking_weights`) and a draw of
        that K's posterior; components a draw lacks get weight 0 (means and widths
        copied from its first component, so every number stays finite), so the
        density, its band and the predictive distribution average over the number of
        components as well as the parameters (model averaging). Components are not
        comparable across K, so per-component quantities (``membership``,
        ``component_mean``) are not meaningful here: ``membership`` refuses it; use
        ``fits[K]`` for them.

        Parameters
        ----------
        n_draws : int, default=4000
            Draws of the averaged posterior (one chain).
        random_seed : int, optional
            Seed of the choice of K and draw.
        weights : {"posterior", "stacking"}, default="posterior"
            Bayesian model averaging by p(K | data), or LOO stacking weights.

        Returns
        -------
        xarray.DataTree
            ``posterior`` (weights, means, sigmas with ``max(ks)`` components and a
            ``n_components`` variable per draw), ``observed_data`` and
            ``constant_data`` as in each fit; attrs ``model_averaged = 1``.
        """
        import xarray as xr

        if any(int(dt.attrs.get("n_features", 1)) > 1 for dt in self.fits.values()):
            raise DataError("averaged() averages 1-D posteriors over K; for D-dim data "
                            "use each K's fit (fits[K]) with its p(K | data).")
        if weights == "posterior":
            p = self.probabilities
        elif weights == "stacking":
            p = self.stacking_weights().to_numpy()
            p = p / p.sum()
        else:
            raise DataError(f"weights must be 'posterior' or 'stacking'; got {weights!r}.")
        rng = np.random.default_rng(random_seed)
        k_max = int(self.ks.max())
        pick = rng.choice(len(self.ks), size=n_draws, p=p)
        w = np.zeros((n_draws, k_max))
        mu = np.zeros((n_draws, k_max))
        sg = np.ones((n_draws, k_max))
        for i, k in enumerate(self.ks):
            rows = np.flatnonzero(pick == i)
            if rows.size == 0:
                continue
            post = self.fits[int(k)]["posterior"]
            draws = [post[v].values.reshape(-1, int(k)) for v in ("weights", "means",
                                                                    "sigmas")]
            take = rng.integers(draws[0].shape[0], size=rows.size)
            w[rows, :k] = draws[0][take]
            mu[rows, :k] = draws[1][take]
            sg[rows, :k] = draws[2][take]
            mu[rows, k:] = draws[1][take, :1]
            sg[rows, k:] = draws[2][take, :1]
        dims = ("chain", "draw", "component")
        coords = {"chain": [0], "draw": np.arange(n_draws), "component": np.arange(k_max)}
        posterior = xr.Dataset({"weights": (dims, w[None]), "means": (dims, mu[None]),
                                "sigmas": (dims, sg[None]),
                                "n_components": (("chain", "draw"),
                                                 self.ks[pick][None])}, coords=coords)
        first = self.fits[int(self.ks[0])]
        tree = xr.DataTree.from_dict({
            "posterior": posterior,
            "observed_data": first["observed_data"].to_dataset(),
            "constant_data": first["constant_data"].to_dataset()[["x_err", "loc", "scale"]],
        })
        tree.attrs.update({**{k: v for k, v in first.attrs.items()
                              if k in ("data_name", "data_units", "has_errors")},
                           "model_averaged": 1, "n_components": k_max,
                           "model_average_weights": weights})
        return tree

    def to_dataframe(self) -> Any:
        """One row per K: probability, its sd, log evidence, its se, prior, method, k-hat."""
        import pandas as pd

        return pd.DataFrame({
            "p(K | data)": self.probabilities, "sd": self.probabilities_sd,
            "log evidence": self.log_evidence, "se": self.log_evidence_se,
            "prior": self.prior, "method": self.method, "pareto_k": self.pareto_k,
        }, index=pd.Index(self.ks, name="K"))

    def __str__(self) -> str:
        rows = [f"p(K = {k} | data) = {p:.3f} +- {s:.3f}"
                for k, p, s in zip(self.ks, self.probabilities, self.probabilities_sd,
                                   strict=True)]
        return "\n".join(rows)


def evidence_checked(method: str) -> bool:
    """Whether an evidence computed by ``method`` passed the importance check.

    ``method``: one of :attr:`PosteriorK.method`'s values.
    """
    return method in ("importance", "nuts+importance", "empty-component")


def _prior_k(prior_k: Any, ks: list[int]) -> np.ndarray:
    if prior_k is None:
        return np.full(len(ks), 1.0 / len(ks))
    if isinstance(prior_k, dict):
        missing = [k for k in ks if k not in prior_k]
        if missing:
            raise DataError(f"prior_k has no probability for K = {missing}; give one for "
                            f"every K in {ks}.")
        p = np.array([prior_k[k] for k in ks], dtype=float)
    else:
        p = np.asarray(prior_k, dtype=float).ravel()
        if p.shape[0] != len(ks):
            raise DataError(f"prior_k has {p.shape[0]} values for {len(ks)} candidates "
                            f"{ks}; give one per K, or a dict {{K: probability}}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise DataError(f"prior_k must be non-negative and finite, not all zero; got {p}.")
    return p / p.sum()


def _smc_only(one: dict[str, Any], n_runs: int) -> str:
    """Why an evidence rests on SMC alone, in words (the end of a warning's sentence)."""
    imp = one["importance"]
    again = (f" in the better of two runs, the second with {SMC_RETRY_ROUNDS} rounds"
             if one["importance_retried"] else "")
    return (f"rests on SMC alone (importance weights' Pareto k-hat {imp.pareto_k:.2f}, "
            f"limit {PARETO_K_MAX}; their ESS {imp.ess:.0f}, minimum {IMPORTANCE_ESS_MIN}"
            f"{again}); "
            f"SMC's runs spread by {one['log_evidence_smc_se'] * math.sqrt(n_runs):.2f} and "
            "ran 0.05-0.45 low where both could be compared.")


def check_no_ties(x: np.ndarray, e: np.ndarray | None, who: str) -> None:
    """Refuse exactly repeated values without measurement errors: no evidence exists.

    A component can narrow onto m >= 2 equal values: the likelihood grows as
    sigma^-m while the mean's freedom gives sigma and the log-width coordinate another
    sigma, so the posterior's density stays level (m = 2) or grows (m > 2) as sigma
    goes to 0, and its integral, the evidence, is infinite. Rounded data do this
    (Old Faithful's waiting times: 272 values, 51 distinct). Errors remove it: values
    rounded to a unit u carry an error of sd u / sqrt(12).
    """
    from ..errors import DataError

    exact = x if e is None else x[e == 0]
    values, counts = np.unique(exact, return_counts=True)
    if counts.size and counts.max() >= 2:
        j = int(np.argmax(counts))
        n_rep = int(counts[counts >= 2].sum())
        raise DataError(
            f"{who}: {n_rep} of the {x.shape[0]} values repeat exactly (e.g. "
            f"{values[j]:g}, {int(counts[j])} times) and have no measurement error: a "
            "component can narrow onto repeated values without limit, so the posterior "
            "cannot be normalised and the marginal likelihood does not exist. If the "
            "values are rounded to a unit u, pass X_err = u / sqrt(12) for each point "
            "(the rounding error's sd; CLI: an --errors column).")


def check_no_ties_md(x: np.ndarray, cov: np.ndarray | None, who: str,
                     names: Any = None) -> None:
    """:func:`check_no_ties` per feature of D-dim data (NaN = missing, never a tie).

    A component can narrow in one feature onto points that share that feature's value
    exactly, whatever their other features, so one feature's repeats without error are
    enough for an infinite evidence. Errors in every feature remove it (and the rarer
    case of five or more points on one line of the data's lattice, which a correlation
    near +-1 can narrow onto). ``names``: the features' names for the message.
    """
    for j in range(x.shape[1]):
        obs = ~np.isnan(x[:, j])
        e = None if cov is None else np.sqrt(np.maximum(cov[obs, j, j], 0.0))
        try:
            check_no_ties(x[obs, j], e, who)
        except DataError as exc:
            name = j if names is None else names[j]
            raise DataError(f"feature '{name}': {exc}" if isinstance(name, str) else
                            f"feature {name}: {exc}") from None


def _nearest_mode(theta: np.ndarray, modes: list) -> np.ndarray:
    """Each draw's nearest mode centre (coordinates scaled by the draws' spread)."""
    if len(modes) < 2:
        return np.zeros(theta.shape[0], dtype=int)
    from .modes import _sq_dist

    spread = np.maximum(theta.std(axis=0), 1e-12)
    centres = np.array([c for c, _ in modes]) / spread
    return np.argmin(_sq_dist(theta / spread, centres), axis=1)


def _importance_ok(imp) -> bool:
    """Whether importance sampling's estimate passes its check (k-hat and ESS)."""
    return imp.pareto_k < PARETO_K_MAX and imp.ess >= IMPORTANCE_ESS_MIN


def _resample(imp, modes, rs, n_draws) -> np.ndarray:
    """``n_draws`` equally weighted draws from importance sampling's weighted ones.

    Sampling-importance-resampling, systematic over the draws grouped by their nearest
    mode (so each mode gets floor or ceil of n_draws times its mass: a mode of 0.2% its
    8 of 4,000 draws, not a Poisson number of them), then shuffled (into 4 chains).
    """
    order = np.argsort(_nearest_mode(imp.theta, modes), kind="stable")
    p = np.exp(imp.log_weights[order])
    cdf = np.cumsum(p / p.sum())
    idx = np.searchsorted(cdf, (rs.random() + np.arange(n_draws)) / n_draws)
    return imp.theta[rs.permutation(order[np.minimum(idx, p.shape[0] - 1)])]


def _nuts_one_k(x, e, K, priors, target, stream, *, n_importance, draws, loc, scale):
    """One K from ``fit``'s NUTS draws: modes, importance sampling, resampled draws.

    The proposal is fitted to the draws of one NUTS run of ``fit`` (4 chains from the
    EM estimate; no rerun: its checks do not matter here, the importance weights' do)
    with a component at each mode a climb reaches from the draws or from
    :func:`~.modes.em_starts`' local maxima. Returns :func:`_one_k`'s dict, ``method``
    ``"nuts+importance"``; ``ok`` says whether the importance check passed.
    """
    from .inference import _fit
    from .modes import em_starts, laplace_components
    from .smc import _coords, importance

    rng_fit, rng_em, rng_imp, rng_draws = stream.spawn(4)
    with warnings.catch_warnings():
        # the draws only shape the proposal; the importance weights' check decides
        warnings.simplefilter("ignore")
        dt = _fit(x, K, X_err=e, priors=priors, draws=draws, chains=4,
                  random_seed=int(rng_fit.integers(2**31 - 1)), progressbar=False,
                  log_likelihood=False, first_run_check=lambda _: "one run is enough",
                  light=True)
    post = dt["posterior"]
    w, mu, sg = (post[v].values.reshape(-1, K) for v in ("weights", "means", "sigmas"))
    particles = target.sort(_coords(np.maximum(w, 1e-300), (mu - loc) / scale,
                                    np.maximum(sg / scale, 1e-300)))
    modes = []
    if K > 1:
        starts = em_starts(target.args[0], target.args[1], K, rng_em)
        modes = laplace_components(target, np.concatenate([particles, starts]),
                                   n_climbs=N_CLIMBS_NUTS)
    imp = importance(particles, target, rng_imp, n_draws=n_importance, modes=modes,
                     rounds=NUTS_ROUNDS, se_target=NUTS_SE_TARGET,
                     round_draws=4 * particles.shape[0])
    retried = not _importance_ok(imp)
    if retried:
        # once more, the proposal fitted to the importance-corrected draws alone (the
        # rounds above keep half the weight on NUTS's draws, whose tails may be thin)
        again = _resample(imp, modes, rng_imp, 2 * particles.shape[0])
        imp = importance(again, target, rng_imp, n_draws=n_importance, modes=modes,
                         rounds=NUTS_ROUNDS,
                         se_target=NUTS_SE_TARGET, round_draws=4 * particles.shape[0])
    em = dt["em_estimate"]
    em = {**{v: em[v].values for v in ("weights", "means", "sigmas")},
          **{v: float(em[v]) for v in ("loglik", "bic")}, **em.attrs}
    return {"ok": _importance_ok(imp), "log_evidence": imp.log_evidence, "log_evidence_se": imp.se,
            "em": em,
            "method": "nuts+importance", "importance": imp, "importance_retried": retried,
            "log_evidence_smc": math.nan, "log_evidence_smc_se": math.nan,
            "smc_stages": 0, "chains": 4,
            "theta": _resample(imp, modes, rng_draws, 4 * draws),
            "seed": int(rng_draws.integers(2**31 - 1))}


def _one_k(target, rng, *, n_particles, n_runs, n_importance, n_draws):
    """One K: SMC runs, the importance correction, and equally weighted draws.

    ``target``: :class:`~.smc.Tempered1D` (or in D dims :class:`~.smc_md.TemperedMD`);
    standardized units. Returns a dict: ``log_evidence`` and its ``_se`` (importance
    sampling's when its check passes, else SMC's), ``method``, ``log_evidence_smc``
    and its ``_se``, ``importance`` (the :class:`~.smc.ImportanceResult`; on a failed
    check the better of two runs, ``importance_retried``),
    ``smc_stages``, ``theta`` (``n_draws`` draws in :mod:`.smc`'s coordinates, means
    sorted: resampled by the importance weights, systematically, or on fallback the
    runs' particles; the importance proposal includes a component at each mode the
    particles reach, :func:`~.modes.laplace_components`),
    ``chains`` (4, or one per SMC run on fallback) and ``seed`` (for the draws' tree).
    """
    from .smc import importance, run_smc

    K = target.K
    run_rngs = rng.spawn(n_runs + 3)
    runs = [run_smc(target, run_rngs[r], n_particles=n_particles) for r in range(n_runs)]
    lz_runs = np.array([r.log_evidence for r in runs])
    top = lz_runs.max()
    smc_est = top + math.log(np.mean(np.exp(lz_runs - top)))
    smc_se = float(np.std(lz_runs, ddof=1) / math.sqrt(n_runs))
    particles = np.concatenate([r.theta for r in runs])
    from .modes import laplace_components

    modes = laplace_components(target, particles) if K > 1 else []
    imp = importance(particles, target, run_rngs[n_runs], n_draws=n_importance,
                     modes=modes)
    retried = False
    if not _importance_ok(imp):
        # population Monte Carlo's rounds move the proposal toward the posterior: SMC's
        # particles can put the wrong share in each grouping of the points, which two
        # rounds may not correct (galaxy, Richardson & Green's prior, K = 5 and 6)
        again = importance(particles, target, run_rngs[n_runs], n_draws=n_importance,
                           modes=modes, rounds=SMC_RETRY_ROUNDS)
        retried = True
        if _importance_ok(again) or again.ess > imp.ess:
            imp = again
    out = {"log_evidence_smc": smc_est, "log_evidence_smc_se": smc_se, "importance": imp,
           "importance_retried": retried,
           "smc_stages": int(np.mean([len(r.betas) - 1 for r in runs])),
           "seed": int(run_rngs[n_runs + 2].integers(2**31 - 1))}
    if _importance_ok(imp):
        out.update(log_evidence=imp.log_evidence, log_evidence_se=imp.se,
                   method="importance", chains=4,
                   theta=_resample(imp, modes, run_rngs[n_runs + 1], n_draws))
    else:
        keep = min(n_draws // n_runs, n_particles)
        out.update(log_evidence=smc_est, log_evidence_se=smc_se, method="smc",
                   theta=np.concatenate([r.theta[:keep] for r in runs]),
                   chains=n_runs)
    return out


def _draws_datasets(theta: np.ndarray, K: int, chains: int, loc: float, scale: float,
                   attrs: dict[str, Any]) -> tuple[Any, Any]:
    """SMC or importance draws as ``fit``'s 1-D ``posterior`` and ``sample_stats``.

    ``theta`` in :mod:`.smc`'s coordinates; data units; ``attrs`` on the statistics.
    """
    import xarray as xr

    from .smc import _params

    w, mu, sg = _params(theta, K)
    S = theta.shape[0] // chains
    w, mu, sg = (a[: chains * S].reshape(chains, S, K) for a in (w, mu, sg))
    dims = ("chain", "draw", "component")
    post = xr.Dataset({"weights": (dims, w), "means": (dims, mu * scale + loc),
                       "sigmas": (dims, sg * scale)},
                      coords={"chain": np.arange(chains), "draw": np.arange(S),
                              "component": np.arange(K)})
    stats = xr.Dataset(coords={"chain": np.arange(chains), "draw": np.arange(S)},
                       attrs=attrs)
    return post, stats


def _tree(x, e, K, loc, scale, hyper, theta, chains, seed, rng, name, units, attrs,
          sampler="smc", em=None):
    """The per-K result in ``fit``'s layout: draws in data units, their EM estimate.

    ``sampler``: how the draws were made (``"smc"``, or ``"nuts+importance"``); ``em``:
    the EM estimate when the draws' run made one already (else EM runs here).
    """
    from .inference import _em_estimate
    from .result import _assemble

    post, stats = _draws_datasets(theta, K, chains, loc, scale, attrs)
    if em is None:
        em = _em_estimate(x, e, K, rng)
    dt = _assemble(x, e, K, loc, scale, hyper, em, post, stats, sampler, seed, None,
                   name, units)
    dt.attrs.update({k: v for k, v in attrs.items() if np.isscalar(v)})
    from .modes import attach_modes

    attach_modes(dt, (x - loc) / scale, np.zeros(1) if e is None else (e / scale) ** 2, K,
                 hyper, loc, scale)
    return dt


def posterior_k(
    X: Any,
    ks: Any = range(1, 7),
    *,
    X_err: Any = None,
    prior_k: Any = None,
    priors: Priors | dict | str | None = None,
    n_particles: int = 1000,
    n_runs: int = 4,
    n_importance: int = 200_000,
    draws: int = 1000,
    method: str = "auto",
    random_seed: int | np.random.Generator | None = None,
) -> PosteriorK:
    """The posterior probability of each number of components, p(K | data).

    The model for each K is :func:`bayesgmm.fit`'s (Dirichlet weights, Normal means,
    HalfNormal intrinsic widths, per-point errors added in quadrature), with labels
    marginalised and the components exchangeable, so its evidence p(x | K) is the
    unordered mixture's: no K! factor to add or forget. On two or more columns the
    model is ``fit``'s D-dim one (full covariances with LKJ correlations, per-point
    error covariances, missing values marginalised).

    Parameters
    ----------
    X : array-like of shape (n,), (n, 1) or (n, D)
        The data (NaN: a missing value, D >= 2).
    ks : iterable of int, default range(1, 7)
        Candidate numbers of components.
    X_err : array-like of shape (n,), (n, D) or (n, D, D), optional
        Per-point measurement standard deviations (D dims: per feature, or full error
        covariances), as ``fit`` takes them.
    prior_k : array-like or dict, optional
        p(K): one non-negative value per candidate, or ``{K: value}``; normalised.
        Default: uniform over ``ks``.
    priors : Priors, dict or str, optional
        The other priors, as :func:`bayesgmm.fit` takes them. Each must be one value
        for every component (exchangeable components). ``"richardson_green"``
        (1-D): Richardson & Green's (1997) prior with their data-based choices
        (:meth:`bayesgmm.Priors.richardson_green`), to compare with the literature;
        their prior on K is uniform on 1..30 (``prior_k``).
    n_particles, n_runs : int
        SMC particles per run and independent runs per K (the runs' spread gives
        SMC's error; their particles are pooled for the importance proposal).
    n_importance : int
        Importance draws per K (on the NUTS path the most it draws: it stops once the
        log evidence's standard error is ``NUTS_SE_TARGET``, 0.01).
    draws : int
        Posterior draws per chain kept in each K's DataTree (4 chains when the
        importance weights are used; otherwise the runs' particles, one chain per run).
        With ``method="nuts"`` also the NUTS run's draws per chain.
    method : {"auto", "nuts", "smc"}, default="auto"
        Where importance sampling's proposal comes from. ``"smc"``: tempered SMC from
        the prior (``n_runs`` x ``n_particles``), which reaches every grouping of the
        points but costs tens of NUTS fits on a thousand points. ``"nuts"`` (1-D): one
        NUTS run of ``fit`` (4 chains from the EM estimate) plus climbs from
        ``modes.N_EM_STARTS`` random EM maxima, about twice a fit's cost; it assumes every
        grouping of the points that holds real posterior mass is reached by the chains
        or by a climb, which the importance check cannot confirm. ``"auto"``: SMC where
        the points times K are at most ``SMC_MAX_NK`` (1,000), NUTS beyond, in 1-D with
        the default priors; SMC for Richardson & Green's prior (which the NUTS path
        does not take) and for two or more columns.
    random_seed : int or numpy.random.Generator, optional
        The same seed gives the same result.

    Returns
    -------
    PosteriorK
        ``probabilities``, their Monte Carlo sds, each K's log evidence with its error
        and how it was computed, and each K's posterior draws (``fits``).

    Raises
    ------
    DataError
        For bad input, and for values that repeat exactly without a measurement error
        (rounded data): the evidence does not exist there (:func:`check_no_ties`);
        pass ``X_err`` (for values rounded to a unit u, u / sqrt(12)).

    Warns
    -----
    SamplingWarning
        When a K's evidence rests on SMC alone (importance weights' Pareto k-hat >=
        0.7 or their ESS < 200, in a first run and in a second with more population
        Monte Carlo rounds): it may be low by a few tenths, and its runs' spread is in
        the warning.

    Examples
    --------
    >>> import bayesgmm
    >>> x = bayesgmm.datasets.load_example("galaxy")["velocity [km/s]"] / 1000
    >>> pk = bayesgmm.posterior_k(x, ks=range(1, 6), random_seed=1)  # doctest: +SKIP
    >>> print(pk)  # doctest: +SKIP
    """
    from .inference_md import n_columns
    from .result import _data_name

    _check_settings(n_particles, n_runs, n_importance, draws)
    if method not in ("auto", "nuts", "smc"):
        raise DataError(f"method must be 'auto', 'nuts' or 'smc'; got {method!r}.")
    if n_columns(X) >= 2:
        if method == "nuts":
            raise DataError("method='nuts' is 1-D for now; use method='smc' (or 'auto') "
                            "for two or more columns.")
        return _posterior_k_md(X, ks, X_err, prior_k, priors, n_particles, n_runs,
                               n_importance, draws, random_seed)
    x, e = check_1d(X, X_err)
    check_no_ties(x, e, "posterior_k")
    n = x.shape[0]
    all_ks, usable = check_ks(ks, n)
    if usable != all_ks:
        raise DataError(f"K = {sorted(set(all_ks) - set(usable))} exceed the {n} points; "
                        "leave them out of ks.")
    for name, value in (("n_particles", n_particles), ("n_runs", n_runs),
                        ("n_importance", n_importance), ("draws", draws)):
        if not isinstance(value, int | np.integer) or value < (2 if name == "n_runs" else 1):
            raise DataError(f"{name} must be an integer >= {2 if name == 'n_runs' else 1}; "
                            f"got {value!r}.")
    prior = _prior_k(prior_k, all_ks)
    from .._numerics.standardize import standardizer

    priors = resolve(priors, x)
    loc, scale = standardizer(x)
    z = (x - loc) / scale
    eps2 = np.zeros(1) if e is None else (e / scale) ** 2
    log_jac = n * math.log(scale)
    name, units = _data_name(X)
    rng = np.random.default_rng(random_seed)
    streams = rng.spawn(len(all_ks))

    rg = Priors.from_any(priors).precision_alpha is not None  # Richardson & Green's
    if method == "nuts" and rg:
        raise DataError("method='nuts' samples fit's model, which does not take "
                        "Richardson & Green's prior; use method='smc'.")
    log_z, log_z_se, log_z_smc, khat, methods, fits = [], [], [], [], [], {}
    for K, stream in zip(all_ks, streams, strict=True):
        hyper = Priors.from_any(priors).standardized(K, loc, scale)
        check_exchangeable(hyper)
        target = tempered_1d(z, eps2, K, hyper)
        nuts = method == "nuts" or (method == "auto" and not rg and n * K > SMC_MAX_NK)
        if nuts:
            one = _nuts_one_k(x, e, K, priors, target, stream, n_importance=n_importance,
                              draws=draws, loc=loc, scale=scale)
        else:
            one = _one_k(target, stream, n_particles=n_particles, n_runs=n_runs,
                         n_importance=n_importance, n_draws=4 * draws)
        empty = _through_empty(
            one, K, all_ks, log_z, log_z_se, methods, n, float(hyper["weights_alpha"][0]),
            log_jac, lambda one=one, hyper=hyper, stream=stream, K=K: _empty_ratio(
                z, eps2, K, hyper, one["theta"], stream.spawn(1)[0], draws))
        if nuts and one["method"] != "empty-component":
            if not one["ok"]:
                imp = one["importance"]
                warnings.warn(
                    f"posterior_k: the evidence of K = {K} from NUTS's draws failed its "
                    f"importance check (Pareto k-hat {imp.pareto_k:.2f}, limit "
                    f"{PARETO_K_MAX}; ESS {imp.ess:.0f}, minimum {IMPORTANCE_ESS_MIN}): "
                    f"its log evidence, {one['log_evidence'] - log_jac:.2f} +- "
                    f"{imp.se:.2f}, may be off by more than its error."
                    f"{_empty_failed(empty, K)} method='smc' "
                    f"searches from the prior (slow: {n} points x K = {K}), or leave out "
                    "K values the data do not support.", SamplingWarning, stacklevel=2)
                one["method"] = "nuts+importance (check failed)"
        smc_est, imp = one["log_evidence_smc"], one["importance"]
        attrs = {"log_evidence_smc": smc_est - log_jac,
                 "log_evidence_smc_se": one["log_evidence_smc_se"],
                 "pareto_k": imp.pareto_k, "importance_ess": imp.ess,
                 "importance_retried": one["importance_retried"],
                 "smc_stages": one["smc_stages"]}
        if empty is not None:
            attrs.update(empty_probability=empty.value, empty_probability_se=empty.se,
                         empty_probability_rhat=empty.rhat)
        log_z.append(one["log_evidence"] - log_jac)
        log_z_se.append(one["log_evidence_se"])
        methods.append(one["method"])
        if one["method"] == "smc":
            warnings.warn(
                f"posterior_k: the evidence of K = {K} {_smc_only(one, n_runs)}"
                f"{_empty_failed(empty, K)} Try n_particles={2 * n_particles}, or leave "
                "out K values the data do not support.", SamplingWarning, stacklevel=2)
        theta, chains = one["theta"], one["chains"]
        khat.append(imp.pareto_k)
        log_z_smc.append(smc_est - log_jac)
        seed = int(one["seed"])
        fits[K] = _tree(x, e, K, loc, scale, hyper, theta, chains, seed,
                        np.random.default_rng(seed), name, units,
                        {**attrs, "log_evidence": log_z[-1],
                         "log_evidence_se": log_z_se[-1], "evidence_method": methods[-1]},
                        sampler=one.get("sampler") or (
                            "nuts+importance" if methods[-1].startswith("nuts") else "smc"),
                        em=one.get("em"))

    return _result(all_ks, prior, log_z, log_z_se, methods, khat, log_z_smc, fits, rng)


def _through_empty(one, K, ks, log_z, log_z_se, methods, n, alpha, log_jac, gibbs):
    """K's evidence from K - 1's through an empty component's probability, where better.

    Tried when K - 1 is a candidate whose evidence passed its check and K's importance
    weights are not clearly reliable (k-hat >= ``PARETO_K_SURE``, or the check failed);
    used when the Gibbs estimate passes its own check and, where importance sampling
    passed too, the probability is at least ``EMPTY_MIN``. Updates ``one`` (``method``
    ``"empty-component"``, ``log_evidence`` with log_jac added back, ``_se``: both
    errors combined). ``gibbs()`` runs the sampler. Where importance sampling failed
    its check (so ``one``'s draws are SMC's particles, or NUTS's resampled by failed
    weights), the Gibbs sampler's draws replace them (``chains`` 4, ``sampler``
    ``"gibbs"``): its chains visit the states with an empty component as often as the
    posterior does, which SMC's particles do not. Returns its
    :class:`~.empty.EmptyProbability`, or None when not tried.
    """
    imp = one["importance"]
    if K - 1 not in ks:
        return None
    below = ks.index(K) - 1
    if not evidence_checked(methods[below]) or (_importance_ok(imp)
                                                and imp.pareto_k < PARETO_K_SURE):
        return None
    empty = gibbs()
    if empty.ok and (not _importance_ok(imp) or empty.value >= EMPTY_MIN):
        one.update(method="empty-component",
                   log_evidence=log_z[below] + log_jac + log_c(K - 1, n, alpha)
                   - math.log(empty.value),
                   log_evidence_se=math.hypot(log_z_se[below], empty.log_se))
        if not _importance_ok(imp) and empty.draws is not None:
            one.update(theta=empty.draws.reshape(-1, empty.draws.shape[-1]), chains=4,
                       sampler="gibbs")
    return empty


def _empty_ratio(z, eps2, K, hyper, theta, rng, draws):
    """P(a component is empty | x, K) by :func:`~.empty.empty_probability`.

    Its four chains start at four of ``theta``'s posterior draws, spread over them;
    ``draws`` states per chain are kept.
    """
    from .empty import empty_probability

    starts = theta[np.linspace(0, theta.shape[0] - 1, 4).astype(int)]
    return empty_probability(z, eps2, K, hyper, starts, rng, draws=draws)


def _empty_failed(empty, K) -> str:
    """Why the empty-component ratio was not used: a sentence ("" when not tried)."""
    if empty is None:
        return ""
    return (f" Nor could it come from K = {K - 1}'s through the probability of an empty "
            f"component, {empty.value:.3g} +- {empty.se:.2g} (R-hat {empty.rhat:.3f}, "
            f"limit {RHAT_MAX}; relative error limit {LOG_SE_MAX}).")


def _result(ks, prior, log_z, log_z_se, method, khat, log_z_smc, fits, rng) -> PosteriorK:
    """p(K | data) from p(K) and the evidences; its Monte Carlo sd by simulation."""
    log_z_arr, se_arr = np.array(log_z), np.array(log_z_se)
    with np.errstate(divide="ignore"):
        log_post = np.log(prior) + log_z_arr
    probs = np.exp(log_post - log_post.max())
    probs /= probs.sum()
    # Monte Carlo sd of p(K | data): the evidences' errors propagated by simulation
    sim = log_z_arr + se_arr * rng.standard_normal((4000, len(ks)))
    with np.errstate(divide="ignore"):
        sim = np.log(prior) + sim
    ps = np.exp(sim - sim.max(axis=1, keepdims=True))
    ps /= ps.sum(axis=1, keepdims=True)
    return PosteriorK(ks=np.array(ks), probabilities=probs,
                      probabilities_sd=ps.std(axis=0), log_evidence=log_z_arr,
                      log_evidence_se=se_arr, prior=prior, method=method,
                      pareto_k=np.array(khat), log_evidence_smc=np.array(log_z_smc),
                      fits=fits)


def _check_settings(n_particles, n_runs, n_importance, draws) -> None:
    for name, value in (("n_particles", n_particles), ("n_runs", n_runs),
                        ("n_importance", n_importance), ("draws", draws)):
        if not isinstance(value, int | np.integer) or value < (2 if name == "n_runs" else 1):
            raise DataError(f"{name} must be an integer >= {2 if name == 'n_runs' else 1}; "
                            f"got {value!r}.")


def _posterior_k_md(X, ks, X_err, prior_k, priors, n_particles, n_runs, n_importance,
                    draws, random_seed) -> PosteriorK:
    """:func:`posterior_k` on two or more columns: each K's problem as ``fit`` builds it.

    Per K, :func:`~.inference_md.prepare_md` (validation, standardization, priors, the
    EM estimate the draws are relabelled to), SMC + importance sampling on its
    :class:`~.smc_md.TemperedMD`, and the draws assembled as ``fit``'s D-dim result.
    """
    from ..validation import check_md
    from .empty import empty_probability_md
    from .inference import smc_draws_md
    from .inference_md import prepare_md
    from .model_md import _feature_names
    from .result import _data_name
    from .result_md import _assemble_md
    from .smc_md import TemperedMD

    x, cov, observed = check_md(X, X_err)
    check_no_ties_md(x, cov, "posterior_k", _feature_names(X, x.shape[1]))
    n = x.shape[0]
    all_ks, usable = check_ks(ks, n)
    if usable != all_ks:
        raise DataError(f"K = {sorted(set(all_ks) - set(usable))} exceed the {n} points; "
                        "leave them out of ks.")
    prior = _prior_k(prior_k, all_ks)
    name, units = _data_name(X)
    rng = np.random.default_rng(random_seed)
    streams = rng.spawn(len(all_ks))
    log_z, log_z_se, log_z_smc, khat, method, fits = [], [], [], [], [], {}
    for K, stream in zip(all_ks, streams, strict=True):
        rng_em, rng_seed, rng_smc = stream.spawn(3)
        problem = prepare_md(X, X_err, K, priors, rng_em, draws=draws, chains=4,
                             seed_rng=rng_seed, progressbar=False, backend="native")
        log_jac = float(np.log(np.broadcast_to(problem.scale, x.shape)[observed]).sum())
        one = _one_k(TemperedMD.build(problem.target), rng_smc, n_particles=n_particles,
                     n_runs=n_runs, n_importance=n_importance, n_draws=4 * draws)
        empty = _through_empty(
            one, K, all_ks, log_z, log_z_se, method, n,
            float(problem.target.hyper["weights_alpha"][0]), log_jac,
            lambda one=one, problem=problem, stream=stream: empty_probability_md(
                problem.target, one["theta"][np.linspace(
                    0, one["theta"].shape[0] - 1, 4).astype(int)], stream.spawn(1)[0],
                draws=draws))
        imp = one["importance"]
        log_z.append(one["log_evidence"] - log_jac)
        log_z_se.append(one["log_evidence_se"])
        log_z_smc.append(one["log_evidence_smc"] - log_jac)
        method.append(one["method"])
        khat.append(imp.pareto_k)
        if one["method"] == "smc":
            warnings.warn(
                f"posterior_k: the evidence of K = {K} {_smc_only(one, n_runs)}"
                f"{_empty_failed(empty, K)} Try n_particles={2 * n_particles}, or leave "
                "out K values the data do not support.", SamplingWarning, stacklevel=3)
        attrs = {"log_evidence": log_z[-1], "log_evidence_se": log_z_se[-1],
                 "evidence_method": method[-1], "log_evidence_smc": log_z_smc[-1],
                 "log_evidence_smc_se": one["log_evidence_smc_se"],
                 "pareto_k": imp.pareto_k, "importance_ess": imp.ess,
                 "importance_retried": one["importance_retried"],
                 "smc_stages": one["smc_stages"]}
        if empty is not None:
            attrs.update(empty_probability=empty.value, empty_probability_se=empty.se,
                         empty_probability_rhat=empty.rhat)
        post, stats = smc_draws_md(problem, one, attrs)
        dt = _assemble_md(problem, post, stats, one.get("sampler", "smc"), None, name,
                          units)
        dt.attrs.update(attrs)
        fits[K] = dt
    return _result(all_ks, prior, log_z, log_z_se, method, khat, log_z_smc, fits, rng)
