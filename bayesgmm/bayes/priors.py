"""The Bayesian mixture's prior hyperparameters, in data units and standardized."""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["Priors"]


@dataclass(frozen=True)
class Priors:
    """Prior hyperparameters, in the data's units.

    ``None`` means the weakly informative default, which scales with the data
    (``loc`` and ``scale`` are the data's mean and standard deviation):

    - ``weights_alpha``: Dirichlet concentration, default 1 for every component
      (uniform on the simplex).
    - ``means_mu``, ``means_sigma``: Normal prior of each mean, default
      ``loc`` and ``3 * scale``.
    - ``sigmas_sigma``: HalfNormal scale of each intrinsic width, default ``scale``.

    Each may be a scalar or one value per component.
    """

    weights_alpha: Any = None
    means_mu: Any = None
    means_sigma: Any = None
    sigmas_sigma: Any = None

    @classmethod
    def from_any(cls, priors: Priors | dict | None) -> Priors:
        """Accept a :class:`Priors`, a dict of its fields, or None."""
        if priors is None:
            return cls()
        if isinstance(priors, Priors):
            return priors
        if isinstance(priors, dict):
            unknown = set(priors) - set(cls.__dataclass_fields__)
            if unknown:
                raise DataError(
                    f"unknown prior(s) {sorted(unknown)}; valid keys: "
                    f"{sorted(cls.__dataclass_fields__)}."
                )
            return cls(**priors)
        raise DataError(f"priors must be a dict, a bayesgmm.Priors or None; got {type(priors)}.")

    def standardized(self, n_components: int, loc: float, scale: float) -> dict[str, np.ndarray]:
        """Hyperparameters in standardized units, one value per component.

        Keyed by the field names (``weights_alpha``, ``means_mu``, ``means_sigma``,
        ``sigmas_sigma``), the names the model (``prior_<field>``), the compiled
        log-density's arguments and ``constant_data`` use too.
        """
        K = n_components

        def vec(value: Any, default: float, name: str, positive: bool) -> np.ndarray:
            v = np.broadcast_to(np.asarray(default if value is None else value, float), (K,))
            if not np.all(np.isfinite(v)) or (positive and np.any(v <= 0)):
                raise DataError(
                    f"prior {name} must be {'positive and ' if positive else ''}finite, "
                    f"a scalar or {K} values; got {value!r}."
                )
            return np.array(v, dtype=float)

        return {
            "weights_alpha": vec(self.weights_alpha, 1.0, "weights_alpha", True),
            "means_mu": (vec(self.means_mu, loc, "means_mu", False) - loc) / scale,
            "means_sigma": vec(self.means_sigma, 3.0 * scale, "means_sigma", True) / scale,
            "sigmas_sigma": vec(self.sigmas_sigma, scale, "sigmas_sigma", True) / scale,
        }
