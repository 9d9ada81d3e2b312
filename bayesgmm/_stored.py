"""What ``bayesgmm fit`` stores in ``posterior.nc`` beside the posterior, and reads back.

The BIC/AIC table of the EM fits, the LOO comparison and p(K | data) of ``--k auto``
and the options of the run are JSON strings in the DataTree's attrs
(``selection_table``, ``loo_table``, ``posterior_k_table``, ``cli_args``), so
``bayesgmm report`` rebuilds the same report from the file alone and the verdict can
give the exact command to run next.
"""

from __future__ import annotations

import io
import json
from typing import Any

__all__ = ["cli_args", "store", "stored_posterior_k", "stored_tables"]


def store(dt: Any, *, selection: Any = None, loo_table: Any = None,
          cli_args: dict[str, Any] | None = None, posterior_k: Any = None) -> None:
    """Put the tables and the run's options into ``dt.attrs`` (in place).

    Parameters
    ----------
    dt : xarray.DataTree
        The result about to be written.
    selection : pandas.DataFrame or SelectionResult, optional
        The BIC/AIC table of :func:`bayesgmm.select_n_components`.
    loo_table : pandas.DataFrame, optional
        ``--k auto``'s LOO comparison.
    cli_args : dict, optional
        The run's options (JSON-serialisable).
    posterior_k : pandas.DataFrame, optional
        ``--k auto``'s p(K | data) table (``PosteriorK.to_dataframe()``, index K).
    """
    import pandas as pd

    table = getattr(selection, "table", selection)
    if isinstance(table, pd.DataFrame):
        dt.attrs["selection_table"] = table.to_json(orient="split", double_precision=15)
    if isinstance(loo_table, pd.DataFrame):
        loo = loo_table.copy()
        loo.index = loo.index.astype(str)
        dt.attrs["loo_table"] = loo.to_json(orient="split", double_precision=15)
    if cli_args:
        dt.attrs["cli_args"] = json.dumps(cli_args)
    if isinstance(posterior_k, pd.DataFrame):
        dt.attrs["posterior_k_table"] = posterior_k.reset_index().to_json(
            orient="split", double_precision=15)


def _read(text: Any) -> Any:
    import pandas as pd

    if not text:
        return None
    try:
        return pd.read_json(io.StringIO(str(text)), orient="split")
    except ValueError:  # not written by store(): ignore rather than fail a report
        return None


def stored_tables(dt: Any) -> tuple[Any, Any]:
    """(selection table, LOO table) stored by :func:`store`, each None when absent."""
    selection = _read(dt.attrs.get("selection_table"))
    loo = _read(dt.attrs.get("loo_table"))
    if loo is not None:
        loo.index = loo.index.astype(str)
        loo.index.name = "model"
    return selection, loo


def stored_posterior_k(dt: Any) -> Any:
    """The p(K | data) table stored by :func:`store` (index K), or None."""
    table = _read(dt.attrs.get("posterior_k_table"))
    if table is None or "K" not in table.columns:
        return None
    return table.set_index("K")


def cli_args(dt: Any) -> dict[str, Any] | None:
    """The options of the ``bayesgmm fit`` run that wrote ``dt``, or None."""
    try:
        args = json.loads(dt.attrs.get("cli_args") or "null")
    except (TypeError, ValueError):
        return None
    return args if isinstance(args, dict) else None
