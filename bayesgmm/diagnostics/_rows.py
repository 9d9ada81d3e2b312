"""A row of :func:`~bayesgmm.diagnose`'s checks table, as every check module writes it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _row(name, ok, value, threshold, message, skipped=False) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "value": float(value), "threshold": float(threshold),
            "message": message, "skipped": bool(skipped)}


def _skip(name: str, threshold: float, why: str) -> dict[str, Any]:
    return _row(name, True, np.nan, threshold, f"skipped: {why}", skipped=True)
