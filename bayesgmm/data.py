"""Validation of user input: the only module that checks arrays and tables.

Everything past these functions can assume clean, finite ``float64`` arrays of
consistent shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["check_X", "check_errors", "check_sample_weight", "load_table", "table_columns"]


class _DataTypeError(DataError, TypeError):
    """A :class:`DataError` for elements of the wrong type (also a ``TypeError``)."""


def check_X(
    X: Any, *, name: str = "X", min_samples: int = 2, n_features: int | None = None
) -> np.ndarray:
    """Return ``X`` as a finite float64 array of shape (n_samples, n_features).

    A 1-D array is read as ``n_samples`` scalar observations (one feature). When
    ``n_features`` is given (a fitted model's), a 1-D array is accepted only if it is 1,
    since a 1-D array could otherwise be one sample or one feature.
    """
    from scipy import sparse

    if sparse.issparse(X):
        raise DataError(
            f"{name} is a sparse matrix; sparse input is not supported (a Gaussian "
            f"mixture's covariances are dense): pass {name}.toarray()."
        )
    try:
        raw = np.asarray(X)
        if np.iscomplexobj(raw):
            raise DataError(f"Complex data not supported: {name} must be real; got complex "
                            f"values. Pass np.real({name}) if the imaginary part is noise.")
        arr = raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        # an element of the wrong type (a dict, None) is also a TypeError, as in numpy
        cls = _DataTypeError if isinstance(exc, TypeError) else DataError
        raise cls(
            f"{name} must be numeric (array-like of shape (n_samples,) or "
            f"(n_samples, n_features)); could not convert it to float: {exc}"
        ) from None
    if arr.ndim == 1:
        if n_features not in (None, 1):
            raise DataError(
                f"Expected 2D array, got 1D array instead: {name} has shape {arr.shape} but "
                f"the mixture was fitted on {n_features} features. Reshape your data either "
                "using array.reshape(-1, 1) if your data has a single feature or "
                "array.reshape(1, -1) if it contains a single sample."
            )
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise DataError(
            f"{name} must have shape (n_samples,) or (n_samples, n_features); "
            f"got an array with {arr.ndim} dimensions, shape {arr.shape}."
        )
    if arr.shape[1] == 0:
        raise DataError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required; "
            "pass at least one column."
        )
    if arr.shape[0] < min_samples:
        raise DataError(
            f"{name} has {arr.shape[0]} sample(s); at least {min_samples} are needed"
            + (" to fit a mixture." if min_samples > 1 else ".")
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first at row "
            f"{int(rows[0])}); drop or impute those rows before fitting."
        )
    return np.ascontiguousarray(arr)


#: Largest |value| and spread, and smallest non-zero spread, a fit accepts: variances
#: (squares) must stay inside float64's range of about 1e-308 to 1e308.
MAX_MAGNITUDE = 1e150
MIN_SPREAD = 1e-150


def check_fit_scale(arr: np.ndarray, *, name: str = "X") -> None:
    """Reject data whose variances float64 cannot hold, saying how to rescale them."""
    top = np.max(np.abs(arr), axis=0)
    for j in range(arr.shape[1]):
        col = f"{name}" if arr.shape[1] == 1 else f"feature {j} of {name}"
        if top[j] > MAX_MAGNITUDE:
            k = int(np.floor(np.log10(top[j])))
            raise DataError(
                f"{col} has values up to {top[j]:.3g}, beyond what float64 can square "
                f"(variances must stay below ~1e300); rescale it, e.g. divide by 1e{k}."
            )
        spread = float(np.ptp(arr[:, j]))
        if 0 < spread < MIN_SPREAD:
            k = int(np.floor(np.log10(spread)))
            raise DataError(
                f"{col} spans only {spread:.3g}, too little for float64 to hold its "
                f"variances (below ~1e-300); rescale it, e.g. multiply by 1e{-k} after "
                "subtracting its mean."
            )


def check_errors(X_err: Any, n_samples: int, n_features: int, *, name: str = "X_err") -> np.ndarray:
    """Return per-point measurement-error covariances of shape (n, D, D).

    ``X_err`` holds standard deviations of shape (n,) (same error on every
    feature) or (n, D), or full covariance matrices of shape (n, D, D).
    """
    try:
        raw = np.asarray(X_err)
        if np.iscomplexobj(raw):
            raise DataError(f"{name} must be real; got complex values.")
        err = raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{name} must be numeric; could not convert it to float: {exc}") from None
    n, d = n_samples, n_features
    if not np.all(np.isfinite(err)):
        raise DataError(
            f"{name} contains NaN or infinite values; every point needs a finite "
            "measurement error (use 0 for an exact value)."
        )
    top = float(np.max(np.abs(err))) if err.size else 0.0
    limit = MAX_MAGNITUDE**2 if err.ndim == 3 else MAX_MAGNITUDE
    if top > limit:
        k = int(np.floor(np.log10(top if err.ndim < 3 else np.sqrt(top))))
        raise DataError(
            f"{name} has values up to {top:.3g}, beyond what float64 can square or hold "
            f"as a variance; rescale X and {name} together, e.g. divide both by 1e{k}."
        )
    if err.ndim == 1 and err.shape[0] == n or err.ndim == 2 and err.shape == (n, 1):
        sd = err.reshape(n)
        _check_nonneg(sd, name)
        cov = np.zeros((n, d, d))
        idx = np.arange(d)
        cov[:, idx, idx] = (sd**2)[:, None]
        return cov
    if err.ndim == 2 and err.shape == (n, d):
        _check_nonneg(err, name)
        cov = np.zeros((n, d, d))
        idx = np.arange(d)
        cov[:, idx, idx] = err**2
        return cov
    if err.ndim == 3 and err.shape == (n, d, d):
        if not np.allclose(err, np.swapaxes(err, 1, 2), rtol=1e-10, atol=0.0):
            raise DataError(f"{name} covariance matrices must be symmetric.")
        eig = np.linalg.eigvalsh(err)
        scale = np.maximum(np.abs(eig).max(axis=1), np.finfo(float).tiny)
        if np.any(eig.min(axis=1) < -1e-10 * scale):
            bad = int(np.flatnonzero(eig.min(axis=1) < -1e-10 * scale)[0])
            raise DataError(
                f"{name}[{bad}] is not positive semi-definite; each error covariance "
                "must be a valid covariance matrix."
            )
        return np.ascontiguousarray(err)
    raise DataError(
        f"{name} must have shape ({n},), ({n}, {d}) (standard deviations) or ({n}, {d}, {d}) "
        f"(covariances) to match X of shape ({n}, {d}); got shape {err.shape}."
    )


def _check_nonneg(sd: np.ndarray, name: str) -> None:
    if np.any(sd < 0):
        i = int(np.flatnonzero(np.ravel(sd) < 0)[0])
        raise DataError(
            f"{name} contains negative standard deviations (first at flat index {i}); "
            "measurement errors must be >= 0."
        )


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray:
    """Return non-negative per-point weights of shape (n_samples,), not all zero."""
    if sample_weight is None:
        return np.ones(n_samples)
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"sample_weight must be numeric: {exc}") from None
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise DataError(
            f"sample_weight must have shape ({n_samples},) to match X; got shape {w.shape}."
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError("sample_weight must be finite and >= 0.")
    if w.sum() <= 0:
        raise DataError("sample_weight sums to zero; at least one point needs a positive weight.")
    return np.ascontiguousarray(w)


#: Separators :func:`load_table` recognises in a CSV file's first line, most common first.
CSV_SEPARATORS = (",", ";", "\t", "|")


def sniff_separator(path: str | Path) -> tuple[str, str]:
    """Guess a CSV file's column separator and decimal mark from its first lines.

    The separator is the one of :data:`CSV_SEPARATORS` that occurs most often in the
    first non-empty line (the header), ties going to the earlier one; a file whose first
    line holds none of them is one column (``","``). A ``";"`` file whose next line has
    numbers written with a decimal comma (``1,5``) and no decimal point is read with
    ``decimal=","``, the usual European spreadsheet export.

    Parameters
    ----------
    path : str or pathlib.Path
        A text file.

    Returns
    -------
    sep, decimal : str
        Arguments for :func:`pandas.read_csv`.
    """
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [line for line in (fh.readline() for _ in range(50)) if line.strip()]
    if not lines:
        return ",", "."
    counts = [lines[0].count(c) for c in CSV_SEPARATORS]
    sep = CSV_SEPARATORS[counts.index(max(counts))] if max(counts) > 0 else ","
    return sep, decimal_mark(path, sep)


#: lines read by :func:`decimal_mark` (a file whose decimals start later is rare)
DECIMAL_SCAN_LINES = 200_000


def decimal_mark(path: str | Path, sep: str) -> str:
    """The decimal mark of a text table, ``","`` or ``"."``.

    ``","`` for a ``";"`` file written with decimal commas (``1,5``) and no decimal
    point, the usual European spreadsheet export; else ``"."``. The body (every line
    after the header, up to :data:`DECIMAL_SCAN_LINES`) is read, so a column whose
    first rows are whole numbers is still recognised.
    """
    import itertools
    import re

    if sep != ";":
        return "."
    comma = point = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        fh.readline()  # the header
        for line in itertools.islice(fh, DECIMAL_SCAN_LINES):
            comma = comma or re.search(r"\d,\d", line) is not None
            if re.search(r"\d\.\d", line):
                point = True
                break
    return "," if comma and not point else "."


def load_table(path: str | Path, *, sep: str | None = None) -> Any:
    """Read a CSV or Parquet file into a :class:`pandas.DataFrame`.

    Parameters
    ----------
    path : str or pathlib.Path
        ``.csv``, ``.txt``, ``.tsv`` (or no suffix): text with a header line;
        ``.parquet`` or ``.pq``: Parquet.
    sep : str, optional
        Column separator of a text file. None: tab for ``.tsv``, otherwise guessed from
        the header line by :func:`sniff_separator` (comma, semicolon, tab or ``|``).

    Raises
    ------
    DataError
        If the file is missing, unreadable, or not CSV/Parquet.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise DataError(f"file not found: {str(p)!r}; check the path.")
    if p.is_dir():
        raise DataError(f"{str(p)!r} is a directory; pass a CSV or Parquet file.")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif suffix in (".csv", ".txt", ".tsv", ""):
            if sep is None:
                sep, decimal = ("\t", ".") if suffix == ".tsv" else sniff_separator(p)
            else:  # a given ";" may still come with decimal commas (European exports)
                decimal = decimal_mark(p, sep)
            # blank lines are kept: in a one-column file an empty line is a missing value
            df = pd.read_csv(p, sep=sep, decimal=decimal, skip_blank_lines=False)
            last = df.notna().any(axis=1).to_numpy().nonzero()[0]
            df = df.iloc[: (last[-1] + 1 if last.size else 0)]  # trailing blank lines
        else:
            raise DataError(
                f"cannot read {str(p)!r}: unknown file type {suffix!r}; "
                "use a .csv or .parquet file."
            )
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many kinds
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {str(p)!r} as {suffix or 'CSV'}: {msg}") from None
    if df.shape[0] == 0:
        raise DataError(f"{str(p)!r} has no rows.")
    return df


def table_columns(
    df: Any,
    columns: Sequence[str] | None,
    errors: Sequence[str] | None,
    *,
    source: str = "the table",
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Pick data and error columns from a table.

    With no ``columns``, every numeric column not named in ``errors`` is used.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    X_err : ndarray of shape (n_samples, n_features) or None
        Standard deviations; one error column applies to every feature.
    names : list of str
        The data columns used.
    """
    import pandas as pd

    errors = list(errors or [])
    available = [str(c) for c in df.columns]
    for col in list(columns or []) + errors:
        if col not in available:
            raise DataError(
                f"column {col!r} not found in {source}; available columns: "
                f"{', '.join(available) or '(none)'}."
            )
    if columns:
        names = list(columns)
    else:
        names = [
            str(c) for c in df.columns
            if str(c) not in errors and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])
        ]
        if not names:
            text = [str(c) for c in df.columns if str(c) not in errors]
            raise DataError(
                f"{source} has no numeric columns"
                + (" besides the error columns" if errors else "")
                + (f" (read as text: {', '.join(text[:5])}"
                   + (", ..." if len(text) > 5 else "")
                   + "; check the separator (--sep) and decimal mark)" if text else "")
                + "; name the data columns with --columns."
            )
    X = _numeric_block(df, names, source)
    X_err = None
    if errors:
        if len(errors) not in (1, len(names)):
            raise DataError(
                f"got {len(errors)} error column(s) for {len(names)} data column(s); give one "
                "error column per data column, or a single one for all."
            )
        X_err = _numeric_block(df, errors, source)
        if np.any(X_err < 0):
            col = errors[int(np.flatnonzero((X_err < 0).any(axis=0))[0])]
            raise DataError(
                f"error column {col!r} has negative values; measurement errors are standard "
                "deviations and must be >= 0."
            )
        if X_err.shape[1] == 1 and len(names) > 1:
            X_err = np.repeat(X_err, len(names), axis=1)
    return X, X_err, names


def _numeric_block(df: Any, cols: list[str], source: str) -> np.ndarray:
    import pandas as pd

    out = np.empty((df.shape[0], len(cols)))
    for j, col in enumerate(cols):
        s = df[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            conv = pd.to_numeric(s, errors="coerce")
            bad = conv.isna() & s.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"column {col!r} in {source} is not numeric (data row {row + 1} "
                    f"holds {s.iloc[row]!r}); clean it or choose other columns."
                )
            s = conv
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(vals)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"column {col!r} in {source} has {int(bad.sum())} missing, NaN or infinite "
                f"value(s) (first at row {row}); drop or impute those rows first."
            )
        out[:, j] = vals
    return out
