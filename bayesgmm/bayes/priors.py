"""The Bayesian mixture's prior hyperparameters, in data units and standardized."""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["PER_COMPONENT", "PRECISION", "Priors", "resolve"]

#: The hyperparameters with one value per component, in the order the compiled 1-D
#: log-density takes them (``corr_eta``, one number for the whole model, is not one).
PER_COMPONENT = ("weights_alpha", "means_mu", "means_sigma", "sigmas_sigma")
#: Richardson & Green's hierarchical prior on the widths (``Priors.richardson_green``):
#: sigma_k^-2 ~ Gamma(precision_alpha, beta), beta ~ Gamma(precision_g, precision_h)
#: (shape, rate), beta integrated out; in place of the HalfNormal of ``sigmas_sigma``
PRECISION = ("precision_alpha", "precision_g", "precision_h")
#: the names ``priors=`` takes for a preset (resolved on the data by :func:`resolve`)
PRESETS = ("richardson_green",)


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
    - ``corr_eta``: LKJ concentration of each component's correlation matrix, used by
      the D-dimensional model only (D >= 2), default 2. One positive number. With
      eta = 1 every correlation matrix is equally likely (in 2-D the correlation is
      uniform on (-1, 1)); eta = 2 makes the density proportional to det(C), so in
      2-D the correlation has density proportional to 1 - r^2: moderate correlations
      are favoured and |r| -> 1, where a component collapses onto a line and the
      likelihood can grow without bound, is pushed back weakly (the prior probability of
      |r| > 0.9 is about 1.5%, against 10% under eta = 1).

    Each of the first four may be a scalar or one value per component. In D dimensions
    (:meth:`standardized_md`) ``means_mu``, ``means_sigma`` and ``sigmas_sigma`` may
    also be one value per feature (shape (D,)) or per component and feature (shape
    (K, D)); ``loc`` and ``scale`` are then each feature's mean and standard deviation.
    When K = D a vector is ambiguous and refused: pass shape (1, D) or (K, D).

    Richardson & Green's (1997) hierarchical prior on the widths replaces the
    HalfNormal when ``precision_alpha``, ``precision_g`` and ``precision_h`` are given
    (all three, and not ``sigmas_sigma``; 1-D only):

    - sigma_k^-2 ~ Gamma(``precision_alpha``, beta) for each k, given beta;
    - beta ~ Gamma(``precision_g``, ``precision_h``) (shape, rate; ``precision_h`` in
      1 / data units squared), shared by the components, which ties their widths
      together. beta is integrated out exactly: the widths' joint prior is a closed form.

    :meth:`richardson_green` sets their data-based values. This prior is sampled by
    ``fit(..., sampler="smc")`` and :func:`bayesgmm.posterior_k` (the NUTS density has
    the HalfNormal only).
    """

    weights_alpha: Any = None
    means_mu: Any = None
    means_sigma: Any = None
    sigmas_sigma: Any = None
    corr_eta: Any = None
    precision_alpha: Any = None
    precision_g: Any = None
    precision_h: Any = None

    @classmethod
    def richardson_green(cls, X: Any) -> Priors:
        """Richardson & Green's (1997) prior for 1-D data ``X``, with their choices.

        With R the range of the data and xi its midpoint: weights ~ Dirichlet(1);
        mu_k ~ N(xi, R^2) (their kappa = 1 / R^2); sigma_k^-2 ~ Gamma(2, beta); beta ~
        Gamma(0.2, 10 / R^2). Their prior on K, uniform on 1..30, is
        :func:`bayesgmm.posterior_k`'s ``prior_k``. ``priors="richardson_green"``
        in ``fit`` and ``posterior_k`` is the same prior.

        Parameters
        ----------
        X : array-like of shape (n_samples,)
            The data (NaN ignored).

        Returns
        -------
        Priors
        """
        x = np.asarray(X, dtype=float).ravel()
        x = x[np.isfinite(x)]
        R = float(np.ptp(x)) if x.size else 0.0
        if not R > 0:
            raise DataError("the Richardson-Green prior needs data with a positive range "
                            "(it scales the prior by the range); got "
                            f"{x.size} finite value(s) spanning {R:g}.")
        return cls(weights_alpha=1.0, means_mu=float(x.min()) + R / 2, means_sigma=R,
                   precision_alpha=2.0, precision_g=0.2, precision_h=10.0 / R**2)

    @property
    def hierarchical_widths(self) -> bool:
        """Whether the widths have Richardson & Green's hierarchical prior."""
        return any(getattr(self, f) is not None for f in PRECISION)

    @classmethod
    def from_any(cls, priors: Priors | dict | str | None) -> Priors:
        """Accept a :class:`Priors`, a dict of its fields, or None (a preset's name: refused)."""
        if priors is None:
            return cls()
        if isinstance(priors, str):
            raise DataError(f"the prior preset {priors!r} is for 1-D data (fit, posterior_k, "
                            "build_model of one column); here pass a bayesgmm.Priors or a "
                            "dict of its fields.")
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

        With the hierarchical widths prior the dict also holds ``precision_alpha``,
        ``precision_g`` and ``precision_h`` (one number each, repeated per component;
        ``precision_h`` times scale^2, the rate in standardized units).
        """
        K = n_components

        def vec(value: Any, default: float, name: str, positive: bool) -> np.ndarray:
            try:
                v = np.broadcast_to(np.asarray(default if value is None else value, float),
                                    (K,))
            except ValueError:
                v = np.full(K, np.nan)
            if not np.all(np.isfinite(v)) or (positive and np.any(v <= 0)):
                raise DataError(
                    f"prior {name} must be {'positive and ' if positive else ''}finite, "
                    f"a scalar or {K} values; got {value!r}."
                )
            return np.array(v, dtype=float)

        out = {
            "weights_alpha": vec(self.weights_alpha, 1.0, "weights_alpha", True),
            "means_mu": (vec(self.means_mu, loc, "means_mu", False) - loc) / scale,
            "means_sigma": vec(self.means_sigma, 3.0 * scale, "means_sigma", True) / scale,
            "sigmas_sigma": vec(self.sigmas_sigma, scale, "sigmas_sigma", True) / scale,
        }
        if self.hierarchical_widths:
            given = {f: getattr(self, f) for f in PRECISION}
            if any(v is None for v in given.values()) or self.sigmas_sigma is not None:
                raise DataError(
                    "the hierarchical widths prior needs precision_alpha, precision_g and "
                    "precision_h, all three, and no sigmas_sigma (the HalfNormal it "
                    f"replaces); got {given} and sigmas_sigma={self.sigmas_sigma!r}. "
                    "Priors.richardson_green(X) sets them.")
            for f in PRECISION:
                if np.ndim(given[f]) != 0:
                    raise DataError(f"prior {f} is one number for every component; "
                                    f"got {given[f]!r}.")
                out[f] = vec(given[f], 1.0, f, True)
            out["precision_h"] = out["precision_h"] * scale**2
        return out

    def standardized_md(
        self, n_components: int, loc: np.ndarray, scale: np.ndarray
    ) -> dict[str, np.ndarray | float]:
        """Hyperparameters of the D-dimensional model in standardized units.

        Parameters
        ----------
        n_components : int
            K.
        loc, scale : ndarray of shape (n_features,)
            Each feature's mean and standard deviation (the model's internal units).

        Returns
        -------
        dict
            ``weights_alpha`` of shape (K,); ``means_mu``, ``means_sigma``,
            ``sigmas_sigma`` of shape (K, D), standardized per feature; ``corr_eta``
            a float.

        Raises
        ------
        DataError
            A value not finite, not positive where it must be, or of a shape that is
            neither a scalar, (K,), (D,) nor (K, D); a vector of length K = D, which
            could be either (pass it as shape (K, D)).
        """
        K = n_components
        loc = np.asarray(loc, dtype=float)
        scale = np.asarray(scale, dtype=float)
        D = loc.shape[0]
        if self.hierarchical_widths:
            raise DataError("the hierarchical widths prior (precision_alpha, precision_g, "
                            "precision_h; Priors.richardson_green) is for 1-D data; in "
                            "D dims the sds have the HalfNormal prior (sigmas_sigma).")

        def mat(value: Any, default: np.ndarray, name: str, positive: bool) -> np.ndarray:
            v = np.asarray(default[None, :] if value is None else value, dtype=float)
            if v.ndim == 1 and v.shape[0] == K and K == D and K > 1:
                raise DataError(
                    f"prior {name} has {K} values and the model has {K} components and "
                    f"{D} features: pass shape ({K}, {D}) to say which is meant."
                )
            if v.ndim == 1 and v.shape[0] == K:
                v = v[:, None]
            try:
                v = np.broadcast_to(v, (K, D))
            except ValueError:
                raise DataError(
                    f"prior {name} must be a scalar or have shape ({K},) (per component), "
                    f"({D},) (per feature) or ({K}, {D}); got shape {v.shape}."
                ) from None
            if not np.all(np.isfinite(v)) or (positive and np.any(v <= 0)):
                raise DataError(
                    f"prior {name} must be {'positive and ' if positive else ''}finite; "
                    f"got {value!r}."
                )
            return np.array(v, dtype=float)

        alpha = np.asarray(1.0 if self.weights_alpha is None else self.weights_alpha, float)
        try:
            alpha = np.broadcast_to(alpha, (K,))
        except ValueError:
            raise DataError(
                f"prior weights_alpha must be a scalar or {K} values; got shape {alpha.shape}."
            ) from None
        if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
            raise DataError(
                f"prior weights_alpha must be positive and finite; got {self.weights_alpha!r}."
            )
        eta = np.asarray(2.0 if self.corr_eta is None else self.corr_eta, dtype=float)
        if eta.ndim != 0 or not np.isfinite(eta) or eta <= 0:
            raise DataError(f"prior corr_eta must be one positive finite number; "
                            f"got {self.corr_eta!r}.")
        return {
            "weights_alpha": np.array(alpha, dtype=float),
            "means_mu": (mat(self.means_mu, loc, "means_mu", False) - loc) / scale,
            "means_sigma": mat(self.means_sigma, 3.0 * scale, "means_sigma", True) / scale,
            "sigmas_sigma": mat(self.sigmas_sigma, scale, "sigmas_sigma", True) / scale,
            "corr_eta": float(eta),
        }


def resolve(priors: Priors | dict | str | None, x: np.ndarray) -> Priors | dict | None:
    """``priors`` with a preset's name (:data:`PRESETS`) made into its values on ``x``."""
    if not isinstance(priors, str):
        return priors
    if priors == "richardson_green":
        return Priors.richardson_green(x)
    raise DataError(f"unknown prior preset {priors!r}; presets: {list(PRESETS)}, or pass "
                    "a bayesgmm.Priors or a dict of its fields.")
