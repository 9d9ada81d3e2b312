"""Whether a posterior can be trusted: sampling checks, mixture checks, predictive checks.

:func:`diagnose` is the one definition of a trustworthy posterior; it takes a finished
``DataTree`` and never builds or samples a model.
"""

from .checks import Diagnosis, diagnose
from .mixture import mixture_checks, mixture_warnings

__all__ = ["Diagnosis", "diagnose", "mixture_checks", "mixture_warnings"]
