"""Choosing the number of components: BIC/AIC over EM fits; LOO among fitted candidates.

:mod:`~bayesgmm.selection.loo` (``bayesgmm fit --k auto``'s decision) is internal: only
the BIC/AIC table is public API.
"""

from .criteria import SelectionResult, select_n_components

__all__ = ["SelectionResult", "select_n_components"]
