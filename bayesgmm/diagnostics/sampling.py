"""The sampling checks: the one definition of a converged run.

A run has converged when no transition diverged, the largest rank-normalised R-hat of
the parameters is at most :data:`RHAT_MAX` and their smallest bulk and tail effective
sample sizes are at least :data:`ESS_MIN` (Vehtari et al. 2021: 1.01, and 100 per chain
at 4 chains). The figures are computed here, once, by ArviZ (``arviz_stats``), and
read by everything that judges a run:

- :func:`bayesgmm.diagnose` reports them as its ``r_hat``, ``ess_bulk``, ``ess_tail``
  and ``no_divergences`` checks (and the parameter table's columns);
- :func:`bayesgmm.fit` samples again when its first run fails them, with the ESS
  threshold of :func:`rerun_ess_min` (the same 400, lowered for runs too short ever to
  reach it), and records the figures in ``attrs["sampling_runs"]``;
- ``bayesgmm fit --k auto`` reads the R-hat to stop a hopeless candidate early.

Undefined figures (constant draws, one chain) are NaN and fail no check.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

__all__ = ["ESS_MIN", "RHAT_MAX", "SamplingFigures", "checked_parameters", "divergences",
           "parameters", "rerun_ess_min", "sampling_figures", "sampling_table"]

#: Largest acceptable rank-normalised R-hat of any parameter.
RHAT_MAX = 1.01
#: Smallest acceptable bulk and tail effective sample size of any parameter.
ESS_MIN = 400
#: The parameters whose figures are checked.
PARAMETERS = ("weights", "means", "sigmas")
#: The same in D dims (posteriors whose means have a ``feature`` dim): the correlations'
#: entries below the diagonal only (the diagonal is 1 in every draw, its R-hat NaN; the
#: upper triangle repeats the lower), see :func:`checked_parameters`.
PARAMETERS_MD = ("weights", "means", "sds", "correlations")
#: A run shorter than ``ESS_MIN / RERUN_EFFICIENCY`` draws (all chains) is held, by the
#: rerun rule, to this fraction of its draws instead of ``ESS_MIN``.
RERUN_EFFICIENCY = 0.1


def parameters(post: Any) -> tuple[str, ...]:
    """The parameters checked by default: :data:`PARAMETERS`, or in D dims :data:`PARAMETERS_MD`.

    Parameters
    ----------
    post : xarray.Dataset or xarray.DataTree
        A posterior (a D-dim one has a ``feature`` dim on ``means``).

    Returns
    -------
    tuple of str
    """
    means = post["means"] if "means" in post else None
    return PARAMETERS_MD if means is not None and "feature" in means.dims else PARAMETERS


def checked_parameters(ds: Any, var_names: tuple[str, ...] | list[str] | None = None) -> Any:
    """The variables the checks read, with each correlation matrix's lower triangle only.

    Parameters
    ----------
    ds : xarray.Dataset
        Draws (dims ``chain``, ``draw``, ...) or an estimate (no sample dims).
    var_names : sequence of str, optional
        Default: :func:`parameters`. Those absent from ``ds`` are left out.

    Returns
    -------
    xarray.Dataset
        The variables as they are, except ``correlations`` (dims ..., ``feature``,
        ``feature_``), which becomes its entries below the diagonal along one dim
        ``feature_pair`` labelled ``"a,b"`` (row feature, column feature). 1-D
        posteriors come back unchanged.
    """
    import xarray as xr

    names = [v for v in (parameters(ds) if var_names is None else var_names) if v in ds]
    out = ds[names]
    if "correlations" not in out or "feature_" not in out["correlations"].dims:
        return out
    corr = out["correlations"].transpose(..., "feature", "feature_")
    feats = corr["feature"].values
    i, j = np.tril_indices(feats.size, -1)
    pairs = np.array([f"{feats[a]},{feats[b]}" for a, b in zip(i, j, strict=True)])
    lead = corr.dims[:-2]
    lower = xr.DataArray(corr.values[..., i, j], dims=(*lead, "feature_pair"),
                         coords={**{d: corr[d].values for d in lead if d in corr.coords},
                                 "feature_pair": pairs}, attrs=corr.attrs)
    out = out.drop_vars("correlations")
    out["correlations"] = lower
    return out[names]


def sampling_table(post: Any, var_names: tuple[str, ...] | list[str] | None = None) -> Any:
    """Per-parameter bulk ESS, tail ESS and rank-normalised R-hat.

    Parameters
    ----------
    post : xarray.Dataset
        Draws with dims ``chain`` and ``draw``.
    var_names : sequence of str, optional
        The variables to include (those absent from ``post`` are left out); default
        :func:`parameters` (1-D: weights, means, sigmas; D dims: weights, means, sds
        and the correlations below the diagonal, :func:`checked_parameters`).

    Returns
    -------
    pandas.DataFrame
        Columns ``ess_bulk``, ``ess_tail`` and ``r_hat``, one row per parameter,
        labelled as ``arviz_stats.summary`` labels them (``"means[0]"``).
    """
    import arviz_stats  # noqa: F401 - registers the .azstats accessor
    import xarray as xr
    from arviz_base import dataset_to_dataframe

    ds = checked_parameters(post, var_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant draws: NaN
        figures = xr.concat(
            (ds.azstats.ess(method="bulk").expand_dims(summary=["ess_bulk"]),
             ds.azstats.ess(method="tail").expand_dims(summary=["ess_tail"]),
             ds.azstats.rhat().expand_dims(summary=["r_hat"])),
            dim="summary")
    return dataset_to_dataframe(figures, sample_dims=["summary"]).T.astype(float)


def divergences(stats: Any) -> int | None:
    """Number of divergent transitions in ``stats``; None without a ``diverging`` flag."""
    if stats is None or "diverging" not in stats:
        return None
    return int(np.asarray(stats["diverging"]).sum())


@dataclasses.dataclass(frozen=True)
class SamplingFigures:
    """A run's sampling figures, each with the parameter where it is worst.

    Attributes
    ----------
    max_rhat, min_ess_bulk, min_ess_tail : float
        Largest R-hat and smallest bulk and tail ESS over the parameters; NaN when
        undefined for every parameter.
    worst_rhat, worst_ess_bulk, worst_ess_tail : str
        The parameter (``"means[1]"``) where each is reached; ``""`` when undefined.
    divergences : int or None
        Divergent transitions; None when the sampler reported none.
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    worst_rhat: str
    worst_ess_bulk: str
    worst_ess_tail: str
    divergences: int | None

    def failed(self, *, rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN) -> list[str]:
        """The figures out of bounds (none: the run converged).

        Parameters
        ----------
        rhat_max, ess_min : float
            The thresholds (default: :data:`RHAT_MAX`, :data:`ESS_MIN`).

        Returns
        -------
        list of str
            A subset of ``["divergences", "max_rhat", "min_ess_bulk", "min_ess_tail"]``,
            in that order.
        """
        return [name for name, bad in (
            ("divergences", bool(self.divergences)),
            ("max_rhat", self.max_rhat > rhat_max),
            ("min_ess_bulk", self.min_ess_bulk < ess_min),
            ("min_ess_tail", self.min_ess_tail < ess_min)) if bad]


def _extreme(column: Any, worst: str) -> tuple[float, str]:
    values = column.to_numpy(dtype=float)
    if np.all(np.isnan(values)):
        return float("nan"), ""
    j = int(np.nanargmax(values) if worst == "max" else np.nanargmin(values))
    return float(values[j]), str(column.index[j])


def sampling_figures(post: Any, stats: Any = None, *, table: Any = None) -> SamplingFigures:
    """The sampling figures of a run.

    Parameters
    ----------
    post : xarray.Dataset
        The draws of ``weights``, ``means`` and ``sigmas`` (dims chain, draw, ...); in
        D dims ``sds`` and ``correlations`` instead of ``sigmas``.
    stats : xarray.Dataset, optional
        The sampler statistics, for the divergences.
    table : pandas.DataFrame, optional
        :func:`sampling_table` of ``post`` when already computed.

    Returns
    -------
    SamplingFigures
    """
    table = sampling_table(post) if table is None else table
    max_rhat, worst_rhat = _extreme(table["r_hat"], "max")
    min_bulk, worst_bulk = _extreme(table["ess_bulk"], "min")
    min_tail, worst_tail = _extreme(table["ess_tail"], "min")
    return SamplingFigures(max_rhat, min_bulk, min_tail, worst_rhat, worst_bulk, worst_tail,
                           divergences(stats))


def rerun_ess_min(chains: int, draws: int) -> float:
    """The ESS threshold of ``fit``'s rerun rule.

    :data:`ESS_MIN`, or for runs too short ever to reach it, :data:`RERUN_EFFICIENCY`
    of their draws (chains x draws). At 4 x 1,000 draws both are 400.
    """
    return min(ESS_MIN, RERUN_EFFICIENCY * chains * draws)
