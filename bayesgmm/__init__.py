"""bayesgmm: Gaussian mixtures with honest uncertainty and measurement errors."""

from .em import GaussianMixtureEM
from .errors import ConvergenceWarning, DataError, SamplingWarning
from .selection import SelectionResult, select_n_components

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "GaussianMixtureEM",
    "SamplingWarning",
    "SelectionResult",
    "select_n_components",
]

__version__ = "0.1.0"
