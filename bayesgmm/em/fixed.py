"""Fixed parameters: parts of a mixture the user knows and EM must not move.

Internal to :mod:`bayesgmm.em` (``GaussianMixtureEM(fixed=...)`` is the public face).
Users of Bovy's extreme deconvolution and pygmmis freeze a known background component,
known means or a known shape. The constrained M-step is the ordinary one with the fixed
entries put back and one correction:

- a free mean maximises its term whatever the covariance is, so the ordinary update
  stands (for XD too: its b_ik use the current covariance either way);
- a free covariance whose mean is fixed is the scatter about the fixed mean, not about
  the update's mean: the ordinary covariance plus (m_new - m_fixed)(m_new - m_fixed)'
  (for XD the same, since its update is an average of (m - b_ik)(m - b_ik)' + B_ik);
  diagonal or averaged for "diag" and "spherical";
- the free weights maximise sum_k N_k log w_k under sum_k w_k = 1 with the fixed w_k
  held: proportional to N_k, sharing what the fixed ones leave.

So every M-step is the constrained maximum, and EM keeps its monotone climb.

:func:`parse` checks the user's dict (data units); :class:`Fixed` holds it in
standardized units and :meth:`Fixed.apply` puts it into a :class:`Params`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .iteration import Params

_KEYS = ("weights", "means", "covariances")


def _per_component(value: Any, K: int, what: str) -> dict[int, Any]:
    """A dict {component: value}, or a full sequence (every component), as a dict."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, int | np.integer) or isinstance(k, bool) or not 0 <= k < K:
                raise DataError(
                    f"fixed[{what!r}] has key {k!r}; keys are component indices 0..{K - 1}.")
            out[int(k)] = v
        return out
    seq = list(np.asarray(value, dtype=float)) if np.ndim(value) else None
    if seq is None or len(seq) != K:
        raise DataError(
            f"fixed[{what!r}] must be a dict {{component: value}} or one value per "
            f"component ({K}); got {value!r}.")
    return dict(enumerate(seq))


def parse(fixed: dict | None, K: int, d: int, covariance_type: str) -> dict | None:
    """The user's ``fixed`` dict checked and made arrays, in data units (None: nothing).

    Raises
    ------
    DataError
        Unknown keys, component indices out of range, shapes that do not match,
        weights outside (0, 1) or summing to 1 or more while some are free (or not to
        1 when all are fixed), covariances not positive definite or not of the
        estimator's ``covariance_type``.
    """
    if fixed is None:
        return None
    if not isinstance(fixed, dict):
        raise DataError(f"fixed must be a dict with keys among {_KEYS}; got {fixed!r}.")
    unknown = set(fixed) - set(_KEYS)
    if unknown:
        raise DataError(f"fixed has unknown key(s) {sorted(unknown)}; use {_KEYS}.")
    out: dict[str, dict[int, np.ndarray]] = {}
    weights = _per_component(fixed.get("weights", {}), K, "weights")
    w = {k: float(v) for k, v in weights.items()}
    if any(not 0 < v < 1 for v in w.values()) and not (K == 1 and w == {0: 1.0}):
        raise DataError(f"fixed['weights'] must be in (0, 1); got {w}.")
    total = sum(w.values())
    if len(w) < K and total >= 1:
        raise DataError(
            f"fixed['weights'] sum to {total:g}, leaving nothing for the {K - len(w)} free "
            "component(s); fix fewer weights or smaller ones.")
    if len(w) == K and not np.isclose(total, 1.0, rtol=0, atol=1e-9):
        raise DataError(f"fixed['weights'] fix every component but sum to {total:g}, not 1.")
    out["weights"] = {k: np.float64(v) for k, v in w.items()}
    if covariance_type == "tied" and (fixed.get("means") or fixed.get("covariances")):
        raise DataError(
            "fixed means and covariances are not supported with covariance_type='tied' "
            "(the shared covariance would have to absorb them); use 'full', or fix "
            "weights only.")
    means = {}
    for k, v in _per_component(fixed.get("means", {}), K, "means").items():
        m = np.asarray(v, dtype=float).reshape(-1)
        if m.shape != (d,) or not np.all(np.isfinite(m)):
            raise DataError(f"fixed['means'][{k}] must be {d} finite number(s); got {v!r}.")
        means[k] = m
    out["means"] = means
    covs = {}
    for k, v in _per_component(fixed.get("covariances", {}), K, "covariances").items():
        c = np.asarray(v, dtype=float)
        if c.shape in ((), (1,)) and d == 1:
            c = c.reshape(1, 1)
        elif c.shape == (d,):
            c = np.diag(c)
        if c.shape != (d, d) or not np.all(np.isfinite(c)) or not np.allclose(c, c.T):
            raise DataError(
                f"fixed['covariances'][{k}] must be a symmetric ({d}, {d}) matrix (or {d} "
                f"variances); got shape {np.shape(v)}.")
        if np.linalg.eigvalsh(c)[0] <= 0:
            raise DataError(f"fixed['covariances'][{k}] must be positive definite.")
        off = c - np.diag(np.diag(c))
        if covariance_type in ("diag", "spherical") and np.any(off != 0):
            raise DataError(f"fixed['covariances'][{k}] must be diagonal for "
                            f"covariance_type={covariance_type!r}.")
        if covariance_type == "spherical" and not np.allclose(np.diag(c), c[0, 0]):
            raise DataError(f"fixed['covariances'][{k}] must be a multiple of the identity "
                            "for covariance_type='spherical'.")
        covs[k] = c
    out["covariances"] = covs
    return out


class Fixed:
    """The fixed entries in standardized units, put into any :class:`Params`."""

    def __init__(self, parsed: dict, loc: np.ndarray, scale: np.ndarray,
                 covariance_type: str = "full") -> None:
        self.covariance_type = covariance_type
        self.weights = parsed["weights"]
        self.means = {k: (m - loc) / scale for k, m in parsed["means"].items()}
        self.covs = {k: c / np.outer(scale, scale) for k, c in parsed["covariances"].items()}
        self.cov_index = np.array(sorted(self.covs), dtype=int)

    def apply(self, p: Params, mstep: bool = False) -> Params:
        """``p`` with the fixed entries in place and the free weights rescaled.

        With ``mstep``, ``p`` is an ordinary M-step's result, and the free covariance
        of a component whose mean is fixed gains the scatter of that mean's shift.
        """
        w = p.weights.copy()
        if self.weights:
            K = w.size
            fixed = np.zeros(K, dtype=bool)
            for k, v in self.weights.items():
                w[k] = v
                fixed[k] = True
            free = ~fixed
            if free.any():
                share = 1.0 - sum(self.weights.values())
                w[free] = share * w[free] / w[free].sum()
        means, covs = p.means, p.covs
        if self.means:
            means = means.copy()
            if mstep:
                covs = covs.copy()
            for k, m in self.means.items():
                if mstep and k not in self.covs:
                    shift = p.means[k] - m
                    extra = np.outer(shift, shift)
                    if self.covariance_type == "diag":
                        extra = np.diag(np.diag(extra))
                    elif self.covariance_type == "spherical":
                        extra = np.mean(shift**2) * np.eye(shift.size)
                    covs[k] = covs[k] + extra
                means[k] = m
        if self.covs:
            covs = covs.copy()
            for k, c in self.covs.items():
                covs[k] = c
        return Params(w, means, covs)

    def n_fixed(self, d: int, covariance_type: str) -> int:
        """Parameters the user fixed (for BIC/AIC: they are not estimated)."""
        per_cov = {"full": d * (d + 1) // 2, "tied": 0, "diag": d,
                   "spherical": 1}[covariance_type]
        n_w = len(self.weights)
        return int(n_w + d * len(self.means) + per_cov * len(self.covs))
