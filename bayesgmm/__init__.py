"""bayesgmm: Gaussian mixtures with honest uncertainty and measurement errors."""

from ._numerics import numba_cache as _numba_cache  # noqa: F401  (first: numba's cache stamps)
from .errors import (
    ConvergenceWarning,
    DataError,
    FailedCheckWarning,
    SamplingError,
    SamplingWarning,
    SelectionWarning,
)

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "Diagnosis",
    "FailedCheckWarning",
    "GaussianMixtureEM",
    "PosteriorK",
    "Priors",
    "SamplingError",
    "SamplingWarning",
    "SelectionResult",
    "SelectionWarning",
    "build_model",
    "conditional",
    "density",
    "density_grid",
    "diagnose",
    "fit",
    "marginal",
    "membership",
    "posterior_k",
    "select_n_components",
    "true_values",
    "write_explorer",
]

__version__ = "0.1.0"

_LAZY = {
    # scikit-learn (the EM estimator's base class) loads SciPy's stats and pandas: on use
    "GaussianMixtureEM": "em",
    "SelectionResult": "selection",
    "select_n_components": "selection",
    "Priors": "bayes",
    "build_model": "bayes",
    "fit": "bayes",
    "posterior_k": "bayes",
    "PosteriorK": "bayes",
    "membership": "posterior",
    "density": "posterior",
    "density_grid": "posterior",
    "marginal": "posterior",
    "conditional": "posterior",
    "true_values": "posterior",
    "diagnose": "diagnostics",
    "Diagnosis": "diagnostics",
    "write_explorer": "explorer",
}


#: subpackages reachable as attributes, imported on first use
_SUBPACKAGES = ("plots", "datasets", "io", "report", "explorer", "posterior", "diagnostics",
                "selection", "em", "bayes")


def __getattr__(name: str):
    # PyMC, ArviZ and xarray load only when the Bayesian half is used, scikit-learn
    # only when EM is: import stays fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBPACKAGES:  # ``bayesgmm.plots.plot_pairs(...)`` after ``import bayesgmm``
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
