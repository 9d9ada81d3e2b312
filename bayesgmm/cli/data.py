"""What ``bayesgmm fit`` reads: the data column(s), their errors and the errors' correlations.

1-D (``--column``, or ``--columns`` with one name): one column and one error column;
an empty cell is refused, as it always was. D dims (``--columns A B ...``): empty cells
are missing values (marginalised), ``--errors`` gives each column's error sds and
``--error-corr A:B=R``/``--error-cov A:B=C`` pair two columns' errors, making full
(n, D, D) error covariances (:func:`bayesgmm.io.table_error_covariances`). The
package's checks (:func:`bayesgmm.validation.check_md`) run here, before the minutes
of EM and sampling, so bad input is one line at once.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["error_pairs", "pair_options", "read_data"]


def error_pairs(args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """``--error-corr`` and ``--error-cov`` as (a, b, column or number, ``"corr"``/``"cov"``).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``fit`` command line (``demo``'s has neither option).

    Returns
    -------
    list of tuple
        In the order given, the correlations first.
    """
    return ([(*p, "corr") for p in getattr(args, "error_corr", None) or []]
            + [(*p, "cov") for p in getattr(args, "error_cov", None) or []])


def pair_options(args: argparse.Namespace) -> dict[str, list[str]]:
    """``--error-corr``/``--error-cov`` as written (``A:B=R``), for the stored run options."""
    return {f"error_{kind}": [f"{a}:{b}={v}" for a, b, v, k in error_pairs(args) if k == kind]
            for kind in ("corr", "cov")}


def read_data(df: Any, args: argparse.Namespace, source: str) -> tuple[Any, Any, Any, Any, str]:
    """The data of ``fit`` from the table, checked.

    Parameters
    ----------
    df : pandas.DataFrame
        The table (:func:`bayesgmm.io.load_table`).
    args : argparse.Namespace
        ``column``, ``columns``, ``errors``, ``error_corr``, ``error_cov``.
    source : str
        How messages name the table.

    Returns
    -------
    x : pandas.Series or pandas.DataFrame
        1-D: a Series named after its column; D dims: a DataFrame whose columns are the
        data columns (the result's ``feature`` coordinate), NaN where a cell is empty.
    err : ndarray or None
        1-D: sds (n,); D dims: sds (n, D), or covariances (n, D, D) when errors are
        paired; None without errors.
    column : str or list of str
        The data column (1-D) or columns (D dims).
    errors : str, list of str or None
        The error column (1-D) or columns (D dims; a list, maybe empty).
    said : str
        A line for the user ("" when there is nothing to say).

    Raises
    ------
    DataError
        Every bad input, in one line.
    """
    if len(getattr(args, "columns", None) or []) > 1:
        return _read_md(df, args, source)
    return _read_1d(df, args, source)


def _pick_column(df: Any, column: str | None, errors: str | None, source: str):
    from ..io import table_columns

    if column is None:
        import pandas as pd

        cand = [str(c) for c in df.columns if str(c) != errors
                and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
        if len(cand) != 1:
            raise DataError(
                f"{source} has {len(cand)} numeric columns besides the errors "
                f"({', '.join(cand) or 'none'}); choose one with --column."
            )
        column = cand[0]
    X, E, _ = table_columns(df, [column], [errors] if errors else None, source=source)
    return X[:, 0], (None if E is None else E[:, 0]), column


def _read_1d(df: Any, args: argparse.Namespace, source: str):
    errors = getattr(args, "errors", None)
    if isinstance(errors, list):
        if len(errors) > 1:
            raise DataError(f"got {len(errors)} error columns for 1 data column; give one "
                            "error column (or more data columns with --columns).")
        errors = errors[0]
    if error_pairs(args):
        raise DataError("--error-corr and --error-cov pair the errors of two data columns; "
                        "give two or more with --columns.")
    columns = getattr(args, "columns", None)
    x, e, column = _pick_column(df, columns[0] if columns else args.column, errors, source)
    said = ""
    if args.column is None and not columns:
        said = (f"data column: {column!r} ({x.size} rows; the only numeric column"
                + (f" besides the errors {errors!r})" if errors else ")"))
    import pandas as pd

    x = pd.Series(x, name=column)  # named: the result and the figures use the column's name
    return x, e, column, errors, said


def _read_md(df: Any, args: argparse.Namespace, source: str):
    import pandas as pd

    from ..io import table_columns, table_error_covariances
    from ..validation import check_md

    names = list(args.columns)
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DataError(f"--columns names {', '.join(map(repr, twice))} more than once; "
                        "give each data column once.")
    X, E, names = table_columns(df, names, args.errors, source=source, allow_missing=True)
    n, d = X.shape
    if d > n:
        raise DataError(f"{d} data columns ({', '.join(names)}) but only {n} row(s) in "
                        f"{source}; a {d}-dimensional mixture needs at least as many rows "
                        "as columns.")
    pairs = error_pairs(args)
    if pairs and E is None:
        raise DataError("--error-corr and --error-cov need --errors: the standard deviations "
                        "of each data column's errors.")
    err = table_error_covariances(df, names, X, E, pairs, source=source) if pairs else E
    check_md(X, err)
    missing = int(np.isnan(X).sum())
    said = (f"data columns: {', '.join(names)} ({n} rows"
            + (f"; {missing} missing cell(s) marginalised" if missing else "")
            + (f"; errors {', '.join(args.errors)}" if args.errors else "")
            + (f", paired by {', '.join(f'{a}:{b}={v}' for a, b, v, _ in pairs)}"
               if pairs else "") + ")")
    return pd.DataFrame(X, columns=names), err, names, list(args.errors or []), said
