"""PyMC's ordered transform with a valid start for tied values (imports PyMC)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.transforms import Ordered

__all__ = ["StartedOrdered"]


class StartedOrdered(Ordered):
    """PyMC's ordered transform, whose forward map sends non-increasing values to ``start``.

    ``backward`` and ``log_jac_det`` are PyMC's own, so the model's density and the
    sampler's coordinates are unchanged. ``forward`` only turns constrained values (the
    default initial point, user initvals) into the sampler's coordinates, and PyMC's maps
    equal neighbours to log(0) = -inf: the default initial point of ordered means whose
    priors share a centre is invalid ("Initial evaluation of model at starting point
    failed"; under nutpie 0.16 a failed start can also crash the Python process at exit,
    see ``bayesgmm.bayes.samplers.nutpie._check_start``). Here a vector that is not
    strictly increasing is replaced by ``start``; a strictly increasing one maps exactly
    as in PyMC.

    Parameters
    ----------
    start : array-like of shape (K,)
        Strictly increasing values.
    """

    name = "ordered"

    def __init__(self, start: Any) -> None:
        super().__init__()
        start = np.asarray(start, dtype=float)
        if start.ndim != 1 or not np.all(np.diff(start) > 0) or not np.all(np.isfinite(start)):
            raise ValueError(f"start must be finite and strictly increasing; got {start!r}.")
        self.start = start

    def forward(self, value, *inputs):
        """Unconstrained coordinates of ``value``; ``start``'s where it is not increasing."""
        value = pt.as_tensor(value)
        y = super().forward(value, *inputs)
        fallback = super().forward(pt.as_tensor(self.start).astype(value.dtype), *inputs)
        increasing = pt.all(value[..., 1:] > value[..., :-1], axis=-1, keepdims=True)
        return pt.switch(increasing, y, fallback)
