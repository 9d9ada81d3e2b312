"""bayesgmm: Gaussian mixtures with honest uncertainty and measurement errors."""

from . import _numba_cache  # noqa: F401  (first: numba's cache stamps for the package)
from .em import GaussianMixtureEM
from .errors import ConvergenceWarning, DataError, SamplingError, SamplingWarning
from .selection import SelectionResult, select_n_components

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "Diagnosis",
    "GaussianMixtureEM",
    "Priors",
    "SamplingError",
    "SamplingWarning",
    "SelectionResult",
    "build_model",
    "density",
    "diagnose",
    "fit",
    "membership",
    "select_n_components",
    "true_values",
]

__version__ = "0.1.0"

_LAZY = {
    "Priors": "model",
    "build_model": "model",
    "fit": "inference",
    "membership": "posterior",
    "density": "posterior",
    "true_values": "posterior",
    "diagnose": "diagnostics",
    "Diagnosis": "diagnostics",
}


def __getattr__(name: str):
    # PyMC, ArviZ and xarray load only when the Bayesian half is used: import stays fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
