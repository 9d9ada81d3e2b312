"""What a posterior says about the data: membership, density, true values.

Functions of a finished ``DataTree`` (:func:`bayesgmm.fit`'s result); they never build
or sample a model. In D dimensions also the marginal and conditional mixtures of
selected features (results of the same layout) and the density on a 2-D grid.
"""

from .conditional import conditional, marginal
from .grid import density_grid
from .summaries import data_label, data_name, density, interval_label, membership, true_values

__all__ = ["conditional", "data_label", "data_name", "density", "density_grid",
           "interval_label", "marginal", "membership", "true_values"]
