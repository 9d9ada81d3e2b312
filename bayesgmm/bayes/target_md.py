"""What a sampler sees in D dimensions (D >= 2): the log-density, its parameters, its start.

The D-dimensional counterpart of :class:`bayesgmm.bayes.target.Target`, with the same
interface where the samplers use it (``n_components``, ``n_dim``, ``shapes``,
``reparam``, ``pair``, ``start``, ``logp_and_grad``, ``expand``) plus ``dims`` and
``coords`` (the 1-D target's parameters all have the one dim ``component``). Always
in PyMC's unconstrained coordinates of
:func:`bayesgmm.bayes.model_md.build_model_md` (:mod:`bayesgmm.bayes.density_md`);
there is no pair reparametrisation in D dimensions. :func:`logp_and_grad_packed` (the
compiled density, on the data as :func:`bayesgmm.bayes.density_md.prepare` lays them
out: :attr:`TargetMD.packed`, named by :data:`PACKED`) and :func:`expand` are the entry
points a sampler's callback calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from . import density_md as _dmd
from .density_md import logp_and_grad_packed

__all__ = ["HYPER_MD", "NAMES_MD", "PACKED", "TargetMD", "expand", "logp_and_grad_packed"]

#: the prior hyperparameters, in the order the compiled log-density takes them
HYPER_MD = ("weights_alpha", "means_mu", "means_sigma", "sigmas_sigma", "corr_eta")

#: the data as the compiled log-density takes them (:attr:`TargetMD.packed`), in order
PACKED = ("pat_start", "pat_d", "pat_cols", "zc", "ec")

#: the expanded parameters, in order (see :attr:`TargetMD.shapes`)
NAMES_MD = ("weights", "means", "sds", "correlations", "covariances")

#: the start's correlations are kept inside (-1 + this, 1 - this), its sds above
#: this (standardized units), its weights above 1e-6 as in 1-D
_CORR_MARGIN = 1e-3
_SD_FLOOR = 1e-2
_WEIGHT_FLOOR = 1e-6
#: and its correlation matrices' smallest eigenvalue above this
_EIG_FLOOR = 1e-4


@dataclass(frozen=True, eq=False)
class TargetMD:
    """The D-dimensional posterior as a sampler sees it: a log-density on R^n_dim and its start.

    Build it with :meth:`build`. The log-density leaves out the constant
    sum_i sum_{j observed in i} log(scale_j) (as the 1-D target leaves out
    n log(scale)): :func:`bayesgmm.bayes.density_md.logp_and_grad` with
    ``log_scale_total`` = 0, so it is ``build_model_md``'s log-density plus that
    constant.

    Attributes
    ----------
    z : ndarray of shape (n, D)
        Standardized data, 0 where a value is missing (never read there).
    observed : ndarray of uint8, shape (n, D)
        1 where a value is observed.
    err_cov : ndarray of shape (n, D, D) or (1, 1, 1)
        Standardized error covariances, zero in the rows and columns of missing
        values; a (1, 1, 1) dummy without errors.
    has_err : bool
        Whether there are measurement errors.
    hyper : dict
        Standardized priors (:meth:`bayesgmm.Priors.standardized_md`).
    loc, scale : ndarray of shape (D,)
        The standardization: data = loc + scale * z.
    start : ndarray of shape (n_dim,)
        The EM estimate in PyMC's unconstrained coordinates.
    feature_names : ndarray of shape (D,)
        The ``feature`` coordinate.
    packed : tuple of ndarray
        ``z``, ``observed`` and ``err_cov`` grouped by pattern of observed features
        (:func:`bayesgmm.bayes.density_md.prepare`; named by :data:`PACKED`): what
        the log-density reads.
    """

    z: np.ndarray
    observed: np.ndarray
    err_cov: np.ndarray
    has_err: bool
    hyper: dict
    loc: np.ndarray
    scale: np.ndarray
    start: np.ndarray
    feature_names: np.ndarray
    packed: tuple

    @classmethod
    def build(cls, x: np.ndarray, err_cov: np.ndarray | None, hyper: dict[str, Any],
              loc: np.ndarray, scale: np.ndarray, em: dict[str, np.ndarray],
              feature_names: Any = None) -> TargetMD:
        """The target of a D-dimensional fit.

        Parameters
        ----------
        x : ndarray of shape (n, D)
            Data in data units, NaN where a value is missing (as
            :func:`bayesgmm.validation.check_md` returns it).
        err_cov : ndarray of shape (n, D, D) or None
            Error covariances in data units (NaN or anything in the rows and columns
            of missing values: set to 0), or None without errors.
        hyper : dict
            :meth:`bayesgmm.Priors.standardized_md`.
        loc, scale : ndarray of shape (D,)
            The standardization.
        em : dict
            The EM estimate in data units: ``weights`` (K,), ``means`` (K, D),
            ``covariances`` (K, D, D). The start: weights floored at 1e-6,
            standardized sds at 1e-2, correlation matrices shrunk towards the
            identity until every correlation is within 1 - 1e-3 and the smallest
            eigenvalue above 1e-4.
        feature_names : array-like of shape (D,), optional
            The ``feature`` coordinate; default 0..D-1.
        """
        x = np.asarray(x, dtype=float)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, D); got {x.shape}")
        n, D = x.shape
        loc = np.ascontiguousarray(loc, dtype=float).reshape(D)
        scale = np.ascontiguousarray(scale, dtype=float).reshape(D)
        observed = ~np.isnan(x)
        z = np.ascontiguousarray(np.where(observed, (x - loc) / scale, 0.0))
        if err_cov is None:
            cov, has_err = np.zeros((1, 1, 1)), False
        else:
            cov = np.asarray(err_cov, dtype=float)
            if cov.shape != (n, D, D):
                raise ValueError(f"err_cov must have shape {(n, D, D)}; got {cov.shape}")
            both = observed[:, :, None] & observed[:, None, :]
            cov = np.ascontiguousarray(np.where(both, cov / np.outer(scale, scale), 0.0))
            has_err = True
        K = int(np.asarray(hyper["weights_alpha"]).shape[0])
        hyper = {name: (float(hyper[name]) if name == "corr_eta"
                        else np.ascontiguousarray(hyper[name], dtype=float))
                 for name in HYPER_MD}
        for name in HYPER_MD[1:4]:
            if hyper[name].shape != (K, D):
                raise ValueError(f"hyper[{name!r}] must have shape {(K, D)}; "
                                 f"got {hyper[name].shape}")
        start = _em_start(em, loc, scale)
        if start.shape != (_dmd.n_dim(K, D),):
            raise ValueError(f"the EM estimate must have {K} components in {D} dimensions")
        names = np.arange(D) if feature_names is None else np.asarray(feature_names)
        observed = np.ascontiguousarray(observed, dtype=np.uint8)
        return cls(z, observed, cov, has_err, hyper, loc, scale, start, names,
                   _dmd.prepare(z, observed, cov, has_err))

    @property
    def n_components(self) -> int:
        """K."""
        return int(self.hyper["weights_alpha"].shape[0])

    @property
    def n_features(self) -> int:
        """D."""
        return int(self.z.shape[1])

    @property
    def n_dim(self) -> int:
        """The flat size, K - 1 + 2 K D + K D (D - 1) / 2."""
        return _dmd.n_dim(self.n_components, self.n_features)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each expanded parameter's shape, in the order of :data:`NAMES_MD`."""
        K, D = self.n_components, self.n_features
        return {"weights": (K,), "means": (K, D), "sds": (K, D),
                "correlations": (K, D, D), "covariances": (K, D, D)}

    @property
    def dims(self) -> dict[str, tuple[str, ...]]:
        """Each expanded parameter's dims (``component``, ``feature``, ``feature_``)."""
        cov = ("component", "feature", "feature_")
        return {"weights": ("component",), "means": ("component", "feature"),
                "sds": ("component", "feature"), "correlations": cov, "covariances": cov}

    @property
    def coords(self) -> dict[str, np.ndarray]:
        """``component`` 0..K-1; ``feature`` and ``feature_`` the feature names."""
        return {"component": np.arange(self.n_components), "feature": self.feature_names,
                "feature_": self.feature_names}

    @property
    def reparam(self) -> str:
        """Always ``"pymc"``: PyMC's unconstrained coordinates."""
        return "pymc"

    @property
    def pair(self) -> int:
        """Always -1 (no pair coordinates in D dimensions)."""
        return -1

    def hyper_args(self) -> tuple[Any, ...]:
        """The priors as the compiled log-density takes them (:data:`HYPER_MD` order)."""
        return tuple(self.hyper[name] for name in HYPER_MD)

    def logp_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-density (up to the constant sum of log(scale) over observed values) and gradient."""
        return logp_and_grad_packed(np.ascontiguousarray(theta, dtype=float), *self.packed,
                                    self.has_err, *self.hyper_args(), 0.0)

    def expand(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The parameters at ``theta`` in data units (:data:`NAMES_MD`)."""
        return expand(np.ascontiguousarray(theta, dtype=float), self.n_components,
                      self.loc, self.scale)


def expand(theta: np.ndarray, K: int, loc: np.ndarray, scale: np.ndarray
           ) -> dict[str, np.ndarray]:
    """Weights, means, sds, correlations and covariances in data units at ``theta``.

    Parameters
    ----------
    theta : ndarray
        A point in PyMC's unconstrained coordinates.
    K : int
        The number of components.
    loc, scale : ndarray of shape (D,)
        The standardization.
    """
    D = loc.shape[0]
    out = np.empty(n_expanded(K, D))
    expand_flat(theta, K, D, loc, scale, out)
    parts, at = {}, 0
    for name, shape in (("weights", (K,)), ("means", (K, D)), ("sds", (K, D)),
                        ("correlations", (K, D, D)), ("covariances", (K, D, D))):
        size = int(np.prod(shape))
        parts[name] = out[at:at + size].reshape(shape)
        at += size
    return parts


@njit(cache=True, nogil=True)
def n_expanded(K, D):
    """The size of :func:`expand_flat`'s output."""
    return K + 2 * K * D + 2 * K * D * D


@njit(cache=True, nogil=True)
def expand_flat(theta, K, D, loc, scale, out):
    """:func:`expand` into one flat array, in :data:`NAMES_MD` order, each C-ordered.

    The one expansion of both nutpie paths (the compiled callback copies it), so their
    draws agree to the last digit.
    """
    w, mu, sd, L = _dmd.unpack(theta, K, D)
    at_mu, at_sd = K, K + K * D
    at_corr, at_cov = K + 2 * K * D, K + 2 * K * D + K * D * D
    for k in range(K):
        out[k] = w[k]
        for a in range(D):
            out[at_mu + k * D + a] = loc[a] + scale[a] * mu[k, a]
            out[at_sd + k * D + a] = scale[a] * sd[k, a]
        for a in range(D):
            for b in range(D):
                c = 0.0
                for p in range(D):
                    c += L[k, a, p] * L[k, b, p]
                i = k * D * D + a * D + b
                out[at_corr + i] = c
                out[at_cov + i] = (scale[a] * sd[k, a]) * c * (scale[b] * sd[k, b])


def _em_start(em: dict[str, np.ndarray], loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The EM estimate (data units) in PyMC's unconstrained coordinates."""
    w = np.maximum(np.asarray(em["weights"], dtype=float), _WEIGHT_FLOOR)
    w = w / w.sum()
    mu = (np.asarray(em["means"], dtype=float) - loc) / scale
    cov = np.asarray(em["covariances"], dtype=float) / np.multiply.outer(scale, scale)
    var = np.diagonal(cov, axis1=1, axis2=2)
    sd = np.sqrt(np.maximum(var, 0.0))
    corr = cov / np.maximum(sd[:, :, None] * sd[:, None, :], np.finfo(float).tiny)
    D = loc.shape[0]
    # shrink towards the identity until positive definite with |r| <= 1 - margin
    corr = np.where(np.eye(D, dtype=bool), 1.0, np.clip(corr, -1.0, 1.0))
    corr = np.array([_shrunk(c) for c in corr]).reshape(-1, D, D)
    return _dmd.pack(w, mu, np.maximum(sd, _SD_FLOOR), corr)


def _shrunk(c: np.ndarray) -> np.ndarray:
    """The correlation matrix shrunk towards I: |off-diagonals| <= 1 - margin, positive definite."""
    eye = np.eye(c.shape[0])
    big = np.max(np.abs(c - eye))
    f = min(1.0, (1.0 - _CORR_MARGIN) / big) if big > 0 else 1.0
    c = eye + f * (c - eye)
    while np.linalg.eigvalsh(c)[0] < _EIG_FLOOR:
        c = eye + 0.9 * (c - eye)
    return c
