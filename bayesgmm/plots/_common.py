"""What the figures share: colours, a pyplot-free figure, the data and its axis label."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Variables of the posterior shown by the ArviZ figures (and the EM estimate's).
PARAMETERS = ["weights", "means", "sigmas"]
_BAND_ALPHA = 0.25


def _colors(k: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(k)]


def _new_figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _observed(dt: Any) -> np.ndarray:
    from ..posterior.summaries import _observed_values

    return _observed_values(dt)


def _xlabel(dt: Any) -> str:
    from ..posterior.summaries import data_label

    return data_label(dt)


def _feature_label(name: Any) -> str:
    """A feature's axis label: its name, or ``"feature 0"`` for a numbered one."""
    name = str(name)
    return f"feature {name}" if name.isdigit() else name


def _is_md(dt: Any) -> bool:
    """Whether ``dt`` is a D-dim result (its posterior means have a ``feature`` dim)."""
    post = dt["posterior"]
    return "means" in post and "feature" in post["means"].dims


def _has_errors(dt: Any) -> bool:
    if "constant_data" not in dt.children or "x_err" not in dt["constant_data"]:
        return False
    return bool(np.any(np.asarray(dt["constant_data"]["x_err"].values) > 0))


def _grid(x: np.ndarray, n_grid: int, pad: float = 0.08) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo if hi > lo else max(abs(lo), 1.0)
    return np.linspace(lo - pad * span, hi + pad * span, n_grid)
