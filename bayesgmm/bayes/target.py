"""What a sampler sees: one object for the log-density, its parameters and its start.

A :class:`Target` is built once per fit (:meth:`Target.build`) from the standardized
data, the standardized priors, the standardization and the EM estimate, in one of two
coordinate systems:

- ``"pair"`` (the default): the most overlapping adjacent pair of components with equal
  weight and width priors sampled as one unit plus its split
  (:mod:`bayesgmm.bayes.reparam.pair`); PyMC's coordinates where no pair qualifies
  (K = 1, or unequal priors on every pair);
- ``"pymc"``: PyMC's unconstrained coordinates (:mod:`bayesgmm.bayes.reparam.pymc_space`).

It carries the names and shapes of the parameters (``weights``, ``means``, ``sigmas``, K
each), the flat size 3K - 1, the log-density and gradient (the model's density in
(w, mu, sigma), :mod:`bayesgmm.bayes.density`, through the coordinates' map), the
expansion of a point to parameters in data units, and the start. The samplers
(:mod:`bayesgmm.bayes.samplers`) see only a target; :func:`logp_and_grad` and
:func:`unpack` are the compiled entry points the native callback calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .priors import PER_COMPONENT
from .reparam import pair as _pair
from .reparam import pymc_space as _pymc

__all__ = ["HYPER", "NAMES", "REPARAMS", "Target"]

#: the prior hyperparameters, in the order the compiled log-density takes them
HYPER = PER_COMPONENT

#: the parameters, each of shape (K,), in the order of the expanded vector
NAMES = ("weights", "means", "sigmas")

#: the coordinate systems a target can be built in
REPARAMS = ("pair", "pymc")

_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_OPTS)
def logp_and_grad(theta, z, eps2, weights_alpha, means_mu, means_sigma, sigmas_sigma,
                  log_scale_n, pair):
    """The log-density in the target's coordinates: the pair's for ``pair >= 0``, else PyMC's."""
    if pair >= 0:
        return _pair.logp_and_grad(theta, z, eps2, weights_alpha, means_mu, means_sigma,
                                   sigmas_sigma, log_scale_n, pair)
    return _pymc.logp_and_grad(theta, z, eps2, weights_alpha, means_mu, means_sigma,
                               sigmas_sigma, log_scale_n)


@njit(**_OPTS)
def unpack(theta, K, pair):
    """Standardized (w, mu, sigma) from the target's coordinates (see :func:`logp_and_grad`)."""
    if pair >= 0:
        return _pair.unpack(theta, K, pair)
    return _pymc.unpack(theta, K)


@dataclass(frozen=True, eq=False)
class Target:
    """The posterior as a sampler sees it: a log-density on R^(3K - 1) and its start.

    Build it with :meth:`build`. The log-density leaves out the constant n log(scale)
    (it changes nothing but rounding, and without it data times 2 give exactly twice
    the draws).

    Attributes
    ----------
    z, eps2 : ndarray of shape (n,)
        Standardized data and squared standardized errors (zeros without errors).
    hyper : dict of str to ndarray of shape (K,)
        Standardized priors, keyed by :data:`HYPER`.
    loc, scale : float
        The standardization: data = loc + scale * z.
    pair : int
        j of the components (j, j + 1) sampled as one unit (pair coordinates); -1:
        PyMC's coordinates.
    start : ndarray of shape (3K - 1,)
        The EM estimate in these coordinates.
    """

    z: np.ndarray
    eps2: np.ndarray
    hyper: dict
    loc: float
    scale: float
    pair: int
    start: np.ndarray

    @classmethod
    def build(cls, z: np.ndarray, eps2: np.ndarray, hyper: dict[str, np.ndarray],
              loc: float, scale: float, theta0: np.ndarray, reparam: str = "pair") -> Target:
        """The target of a fit.

        Parameters
        ----------
        z, eps2 : ndarray of shape (n,)
            Standardized data and squared standardized errors.
        hyper : dict
            :meth:`bayesgmm.Priors.standardized`.
        loc, scale : float
            The standardization.
        theta0 : ndarray of shape (3K - 1,)
            The EM estimate in PyMC's unconstrained coordinates.
        reparam : {"pair", "pymc"}
            The reparametrisation, i.e. the coordinates (see the module doc);
            ``"pair"`` takes PyMC's where no pair has equal weight and width priors.
        """
        if reparam not in REPARAMS:
            raise ValueError(f"reparam must be one of {REPARAMS}; got {reparam!r}")
        z = np.ascontiguousarray(z, dtype=float)
        eps2 = np.ascontiguousarray(eps2, dtype=float)
        hyper = {name: np.ascontiguousarray(hyper[name], dtype=float) for name in HYPER}
        theta0 = np.ascontiguousarray(theta0, dtype=float)
        K = hyper[HYPER[0]].shape[0]
        if theta0.shape != (3 * K - 1,) or eps2.shape != z.shape:
            raise ValueError(f"a start of length {3 * K - 1} and one eps2 per point expected; "
                             f"got {theta0.shape} and {eps2.shape} for {z.shape[0]} points")
        pair, start = -1, theta0
        if reparam == "pair" and K >= 2:
            w, mu, sigma = _pymc.unpack(theta0, K)
            pair = _pair.choose_pair(mu, sigma, float(np.mean(eps2)), hyper)
            if pair >= 0:
                start = _pair.pack(w, mu, sigma, pair)
        return cls(z, eps2, hyper, float(loc), float(scale), int(pair), start)

    @property
    def n_components(self) -> int:
        """K."""
        return int(self.hyper[HYPER[0]].shape[0])

    @property
    def n_dim(self) -> int:
        """The flat size, 3K - 1."""
        return 3 * self.n_components - 1

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each parameter's shape, in the order of :data:`NAMES`."""
        return {name: (self.n_components,) for name in NAMES}

    @property
    def reparam(self) -> str:
        """``"pair"`` or ``"pymc"``: the reparametrisation in effect."""
        return "pair" if self.pair >= 0 else "pymc"

    def hyper_args(self) -> tuple[np.ndarray, ...]:
        """The priors as the compiled log-density takes them (:data:`HYPER` order)."""
        return tuple(self.hyper[name] for name in HYPER)

    def logp_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-density (up to the constant n log(scale)) and gradient at ``theta``."""
        return logp_and_grad(np.ascontiguousarray(theta, dtype=float), self.z, self.eps2,
                             *self.hyper_args(), 0.0, self.pair)

    def expand(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The parameters at ``theta``, in data units (the sampler's ``expand``)."""
        w, mu, sigma = unpack(np.ascontiguousarray(theta, dtype=float), self.n_components,
                              self.pair)
        return {"weights": w, "means": self.loc + self.scale * mu,
                "sigmas": self.scale * sigma}
