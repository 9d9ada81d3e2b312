"""What a posterior says about the data: membership, density, true values.

Functions of a finished ``DataTree`` (:func:`bayesgmm.fit`'s result); they never build
or sample a model.
"""

from .summaries import data_label, data_name, density, interval_label, membership, true_values

__all__ = ["data_label", "data_name", "density", "interval_label", "membership",
           "true_values"]
