"""The Bayesian mixture.

Priors, the PyMC model, its compiled log-density, the samplers and :func:`fit`.
"""

from .inference import fit
from .model import build_model
from .posterior_k import PosteriorK, posterior_k
from .priors import Priors

__all__ = ["PosteriorK", "Priors", "build_model", "fit", "posterior_k"]
