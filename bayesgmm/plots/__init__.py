"""Figures of a :func:`bayesgmm.fit` result. matplotlib is imported only when drawing.

Each figure has two halves: a ``*_data`` function that computes what the figure shows
and returns plain data (xarray / pandas / NumPy), and a ``plot_*`` function that draws
it and returns a :class:`matplotlib.figure.Figure`. Our own figures are built without
pyplot (no global figure registry, nothing to close); the ArviZ ones (:func:`plot_trace`,
:func:`plot_ppc`) come from ``arviz_plots`` and are pyplot figures.

Where each lives: the fitted mixture's density and class probabilities in
:mod:`~bayesgmm.plots.mixture`, a mixture in D >= 2 dimensions (pair plot, marginals) in
:mod:`~bayesgmm.plots.mixture_md`, the choice of K in :mod:`~bayesgmm.plots.selection`,
the sampling and predictive checks in :mod:`~bayesgmm.plots.checks`; import them from
here (``from bayesgmm import plots; plots.plot_density(dt)``).
"""

from ._common import PARAMETERS as PARAMETERS  # kept importable from here
from .checks import plot_ppc, plot_trace, rank_envelope
from .mixture import density_data, membership_data, plot_density, plot_membership
from .mixture_md import marginals_data, pairs_data, plot_marginals, plot_pairs
from .selection import plot_posterior_k, plot_selection, selection_data

__all__ = [
    "density_data",
    "marginals_data",
    "membership_data",
    "pairs_data",
    "plot_density",
    "plot_marginals",
    "plot_membership",
    "plot_pairs",
    "plot_ppc",
    "plot_posterior_k",
    "plot_selection",
    "plot_trace",
    "rank_envelope",
    "selection_data",
]
