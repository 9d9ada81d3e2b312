"""The Bayesian mixture.

Priors, the PyMC model, its compiled log-density, the samplers and :func:`fit`.
"""

from .inference import fit
from .model import build_model
from .priors import Priors

__all__ = ["Priors", "build_model", "fit"]
