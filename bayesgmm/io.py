"""Tables in and out: reading CSV and Parquet, and the one format numbers are printed in.

Reading: separators, decimal marks, columns; the checks of the values read are
:mod:`bayesgmm.validation`'s. :func:`format_number` is shared by the report's tables
and the sentences that quote them (``--k auto``'s reason), so the two always agree.
"""


from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

#: Separators :func:`load_table` recognises in a CSV file's first line, most common first.
CSV_SEPARATORS = (",", ";", "\t", "|")


def sniff_separator(path: str | Path) -> tuple[str, str]:
    """Guess a CSV file's column separator and decimal mark from its first lines.

    The separator is the one of :data:`CSV_SEPARATORS` that occurs most often in the
    first non-empty line (the header), ties going to the earlier one; a file whose first
    line holds none of them is one column. A ``";"`` file (or a one-column file) whose
    body has numbers written with a decimal comma (``1,5``) and no decimal point is read
    with ``decimal=","``, the usual European spreadsheet export.

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
    if max(counts) == 0:
        # one column: its values may still be written with decimal commas (6,47), which
        # read with "," as the separator would become two fields per row; ";" (absent
        # from the file) keeps them one field, and decimal_mark recognises the commas
        return (";", ",") if decimal_mark(path, ";") == "," else (",", ".")
    sep = CSV_SEPARATORS[counts.index(max(counts))]
    return sep, decimal_mark(path, sep)


#: lines read by :func:`decimal_mark` (a file whose decimals start later is rare)
DECIMAL_SCAN_LINES = 200_000


def decimal_mark(path: str | Path, sep: str) -> str:
    """The decimal mark of a text table, ``","`` or ``"."``.

    ``","`` for a ``";"`` file written with decimal commas (``1,5``) and no decimal
    point, the usual European spreadsheet export; else ``"."``. The body (every line
    after the header, up to :data:`DECIMAL_SCAN_LINES`) is read, so a column whose
    first rows are whole numbers is still recognised.

    Parameters
    ----------
    path : str or pathlib.Path
        A text table.
    sep : str
        Its column separator (only ``";"`` files can have decimal commas).

    Returns
    -------
    str
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
            # blank lines are kept: in a one-column file an empty line is a missing value;
            # index_col=False: a row with more fields than the header is an error below,
            # never a silent index made of its first field
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                df = pd.read_csv(p, sep=sep, decimal=decimal, skip_blank_lines=False,
                                 index_col=False)
            if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
                raise DataError(
                    f"{str(p)!r}: some rows have more fields than the header line, "
                    f"separated by {sep!r}; give the separator (sep=..., or --sep "
                    "comma/semicolon/tab on the command line) or fix the header.")
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


def _read_row_group(file: str, group: int, columns: list[str]) -> np.ndarray:
    """One row group's columns as float64 (n, len(columns)); nulls become NaN."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(file).read_row_group(group, columns=columns)
    return table.to_pandas().to_numpy(dtype=float, na_value=np.nan)


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` names a dataset read out of core: a directory or a glob.

    (One CSV file is read out of core too when the command line is given a chunk size.)
    """
    text = str(path)
    return Path(text).is_dir() or (any(c in text for c in "*?[") and not Path(text).exists())


#: rows per block of a CSV dataset read out of core, unless ``chunk_size`` says otherwise
CSV_BLOCK_ROWS = 1_000_000
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")


def load_dataset(path: str | Path, columns: Sequence[str] | None,
                 errors: Sequence[str] | None, *,
                 chunk_size: int | None = None) -> tuple[Any, Any, list[str]]:
    """Parquet or CSV files (a directory, a glob, or one CSV file) as Dask arrays, lazily.

    Parquet: nothing is read but the files' metadata (and, for the row count, each
    file's footer). CSV: one pass counts each file's rows and notes where every block of
    rows starts, without keeping any (the separator and decimal mark are guessed from
    the first file, as :func:`load_table` guesses them; blank lines are skipped). EM then
    reads the blocks pass by pass (:mod:`bayesgmm.em.out_of_core`). The columns are
    chosen as :func:`table_columns` chooses them.

    Parameters
    ----------
    path : str or pathlib.Path
        A directory of ``.parquet`` files (or, without any, of ``.csv`` files), a glob
        such as ``"data/part-*.parquet"`` (all Parquet or all CSV), or one CSV file.
    columns, errors : sequence of str or None
        As :func:`table_columns`'s.
    chunk_size : int, optional
        Rows per block (default: the Parquet files' own row groups; CSV
        :data:`CSV_BLOCK_ROWS`).

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
    X_err : dask.array.Array of shape (n_samples, n_features) or (n_samples, 1), or None
    names : list of str
    """
    import glob

    try:
        import dask  # noqa: F401
        import dask.array  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise DataError(f"{str(path)!r} is a dataset read out of core, which needs Dask and "
                        "pyarrow: pip install 'bayesgmm[dask]'.") from exc
    text = str(path)
    if Path(text).is_dir():
        entries = sorted(Path(text).iterdir())
        files = [str(f) for f in entries if f.suffix.lower() in (".parquet", ".pq")]
        if not files:
            files = [str(f) for f in entries if f.suffix.lower() in _CSV_SUFFIXES]
        if not files:
            raise DataError(f"{text!r} holds no .parquet or .csv files; pass a directory of "
                            "them, a glob, or a single CSV or Parquet file.")
    elif Path(text).is_file():
        files = [text]
    else:
        files = sorted(glob.glob(text))
        if not files:
            raise DataError(f"no files match {text!r}; check the pattern.")
    kinds = {"csv" if Path(f).suffix.lower() in _CSV_SUFFIXES else "parquet" for f in files}
    if len(kinds) > 1:
        raise DataError(f"{text!r} matches both CSV and Parquet files; name one kind.")
    read = _csv_blocks if kinds == {"csv"} else _parquet_blocks
    available, numeric, kind_of, lazy = read(files, text, chunk_size)
    errors = list(errors or [])
    for col in list(columns or []) + errors:
        if col not in available:
            raise DataError(f"column {col!r} not found in {text!r}; available columns: "
                            f"{', '.join(available) or '(none)'}.")
    names = list(columns) if columns else [c for c in available
                                           if c not in errors and c in numeric]
    if not names:
        raise DataError(f"{text!r} has no numeric columns; name them with --columns.")
    for col in names + errors:
        if col not in numeric:
            raise DataError(f"column {col!r} of {text!r} is not numeric "
                            f"({kind_of(col)}); name numeric columns.")
    if errors and len(errors) not in (1, len(names)):
        raise DataError(f"got {len(errors)} error column(s) for {len(names)} data column(s); "
                        "give one error column per data column, or a single one for all.")
    X = lazy(names)
    X_err = lazy(errors) if errors else None
    if chunk_size:
        X = X.rechunk({0: int(chunk_size), 1: -1})
        X_err = None if X_err is None else X_err.rechunk({0: int(chunk_size), 1: -1})
    return X, X_err, names


def _parquet_blocks(files: list[str], text: str, chunk_size: int | None) -> tuple:
    """Columns, numeric columns, a column's type and the lazy reader of Parquet files."""
    import dask
    import dask.array as da
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(files[0])
        # one block per row group, sized from the files' metadata (nothing read yet)
        groups = []
        for f in files:  # each file's footer read once
            meta = pq.ParquetFile(f).metadata
            groups += [(f, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {text!r} as Parquet: {exc}") from None
    numeric = {f.name for f in schema
               if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)}

    def lazy(cols: list[str]) -> Any:
        read = dask.delayed(_read_row_group, pure=True)
        parts = [da.from_delayed(read(f, g, cols), shape=(m, len(cols)), dtype=float)
                 for f, g, m in groups if m]
        return da.concatenate(parts, axis=0)

    return list(schema.names), numeric, lambda c: str(schema.field(c).type), lazy


def _csv_blocks(files: list[str], text: str, chunk_size: int | None) -> tuple:
    """As :func:`_parquet_blocks`, for CSV files: one pass notes where each block starts."""
    import dask
    import dask.array as da
    import pandas as pd

    sep, decimal = sniff_separator(files[0])
    try:
        head = pd.read_csv(files[0], sep=sep, decimal=decimal, nrows=1000, index_col=False)
    except Exception as exc:  # pandas raises many kinds
        raise DataError(f"cannot read {files[0]!r} as CSV: {exc}") from None
    names = [str(c) for c in head.columns]
    numeric = {str(c) for c in head.columns if pd.api.types.is_numeric_dtype(head[c])
               and not pd.api.types.is_bool_dtype(head[c])}
    rows = int(chunk_size or CSV_BLOCK_ROWS)
    blocks = []  # (file, byte offset of the block's first row, rows in it)
    for f in files:
        cols = [str(c) for c in pd.read_csv(f, sep=sep, nrows=0, index_col=False).columns]
        if cols != names:
            raise DataError(f"{f!r}'s header differs from {files[0]!r}'s; a dataset's "
                            "files must have the same columns.")
        with open(f, "rb") as fh:
            fh.readline()  # the header
            start, count, pos = fh.tell(), 0, fh.tell()
            for line in fh:
                if line.strip():
                    if count == rows:
                        blocks.append((f, start, count))
                        start, count = pos, 0
                    count += 1
                pos += len(line)
            if count:
                blocks.append((f, start, count))

    def lazy(cols: list[str]) -> Any:
        read = dask.delayed(_read_csv_block, pure=True)
        parts = [da.from_delayed(read(f, off, m, names, cols, sep, decimal),
                                 shape=(m, len(cols)), dtype=float) for f, off, m in blocks]
        return da.concatenate(parts, axis=0)

    return names, numeric, lambda c: str(head[c].dtype), lazy


def _read_csv_block(file: str, offset: int, nrows: int, names: list[str], cols: list[str],
                    sep: str, decimal: str) -> np.ndarray:
    """``nrows`` rows of ``cols`` from byte ``offset`` of a CSV file, float64 (n, len(cols))."""
    import pandas as pd

    with open(file, "rb") as fh:
        fh.seek(offset)
        df = pd.read_csv(fh, sep=sep, decimal=decimal, header=None, names=names,
                         usecols=cols, nrows=nrows, index_col=False)
    out = df[cols].to_numpy(dtype=float, na_value=np.nan)
    if out.shape[0] != nrows:
        raise DataError(f"{file!r}: expected {nrows} rows from byte {offset}, read "
                        f"{out.shape[0]}; was the file changed during the fit?")
    return out


def table_columns(
    df: Any,
    columns: Sequence[str] | None,
    errors: Sequence[str] | None,
    *,
    source: str = "the table",
    allow_missing: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Pick data and error columns from a table.

    With no ``columns``, every numeric column not named in ``errors`` is used.

    Parameters
    ----------
    df : pandas.DataFrame
    columns : sequence of str or None
        The data columns.
    errors : sequence of str or None
        The error columns (standard deviations): one, or one per data column.
    source : str, default="the table"
        How messages name the table (e.g. the file's path).
    allow_missing : bool, default=False
        Let empty (or NaN) data cells through as NaN, for EM, which marginalises
        missing features. A row with every data column missing, an error cell missing
        where its data cell is not, and infinite values stay errors.

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
    X = _numeric_block(df, names, source, allow_missing=allow_missing)
    if allow_missing:
        _check_rows_observed(X, names, source)
    X_err = None
    if errors:
        if len(errors) not in (1, len(names)):
            raise DataError(
                f"got {len(errors)} error column(s) for {len(names)} data column(s); give one "
                "error column per data column, or a single one for all."
            )
        X_err = _numeric_block(df, errors, source, allow_missing=allow_missing)
        if allow_missing:
            _check_errors_observed(X, X_err, errors, source)
        if np.any(X_err < 0):
            col = errors[int(np.flatnonzero((X_err < 0).any(axis=0))[0])]
            raise DataError(
                f"error column {col!r} has negative values; measurement errors are standard "
                "deviations and must be >= 0."
            )
        if X_err.shape[1] == 1 and len(names) > 1:
            X_err = np.repeat(X_err, len(names), axis=1)
    return X, X_err, names


#: what ``pairs`` of :func:`table_error_covariances` may give for a pair of features
ERROR_PAIR_KINDS = ("corr", "cov")


def table_error_covariances(
    df: Any,
    names: Sequence[str],
    X: np.ndarray,
    X_err: np.ndarray,
    pairs: Sequence[tuple[str, str, str, str]],
    *,
    source: str = "the table",
) -> np.ndarray:
    """Per-point error covariances from per-column sds and per-pair correlations.

    Catalogues give each measured quantity's error as a standard deviation and the
    correlation of two quantities' errors in a column of its own (Gaia's
    ``pmra_pmdec_corr``); some give that covariance instead. Point i's error covariance
    has ``X_err[i, a]**2`` on its diagonal and, for each pair ``(a, b)`` given,
    ``r_i * X_err[i, a] * X_err[i, b]`` (a correlation) or ``c_i`` (a covariance) off
    it; pairs not given are uncorrelated.

    Parameters
    ----------
    df : pandas.DataFrame
        The table the values come from.
    names : sequence of str
        The data columns (features), in order.
    X : ndarray of shape (n_samples, n_features)
        Their values, NaN where missing.
    X_err : ndarray of shape (n_samples, n_features)
        Standard deviations (NaN allowed where ``X`` is missing).
    pairs : sequence of (a, b, value, kind)
        ``a``, ``b``: two of ``names``; ``value``: a column of ``df`` holding the
        per-point values, or a number (text) for every point; ``kind``: ``"corr"``
        or ``"cov"`` (:data:`ERROR_PAIR_KINDS`). A cell may be empty only in rows
        where ``a`` or ``b`` is missing (it is then not used).
    source : str, default="the table"
        How messages name the table.

    Returns
    -------
    ndarray of shape (n_samples, n_features, n_features)
        Zero in the rows and columns of missing values.

    Raises
    ------
    DataError
        A name not among ``names`` or the table's columns, a pair given twice or a
        column paired with itself, a non-numeric or infinite value, an empty cell where
        both features are observed, a correlation outside [-1, 1], or a point whose
        covariance is not positive semi-definite (a correlation of three or more
        features that no covariance has, or a covariance beyond its two sds).
    """
    names = list(names)
    n, d = X.shape
    observed = ~np.isnan(X)
    sd = np.where(observed, X_err, 0.0)
    cov = np.zeros((n, d, d))
    idx = np.arange(d)
    cov[:, idx, idx] = sd**2
    available = [str(c) for c in df.columns]
    seen: dict[frozenset[str], str] = {}
    for a, b, value, kind in pairs:
        if kind not in ERROR_PAIR_KINDS:
            raise ValueError(f"kind must be one of {ERROR_PAIR_KINDS}; got {kind!r}")
        spec = f"{a}:{b}={value}"
        word = "correlation" if kind == "corr" else "covariance"
        for name in (a, b):
            if name not in names:
                raise DataError(
                    f"--error-{kind} {spec!r}: {name!r} is not one of the data columns "
                    f"({', '.join(names)}); pair two of them."
                )
        if a == b:
            raise DataError(f"--error-{kind} {spec!r} pairs {a!r} with itself; its error "
                            "is given by --errors.")
        key = frozenset((a, b))
        if key in seen:
            raise DataError(f"the errors of {a!r} and {b!r} are paired twice ({seen[key]!r} "
                            f"and {spec!r}); give one correlation or covariance per pair.")
        seen[key] = spec
        i, j = names.index(a), names.index(b)
        both = observed[:, i] & observed[:, j]
        if value in available:
            vals = _numeric_block(df, [value], source, allow_missing=True)[:, 0]
            empty = np.isnan(vals) & both
            if empty.any():
                row = int(np.flatnonzero(empty)[0])
                raise DataError(
                    f"column {value!r} in {source} has {int(empty.sum())} missing value(s) "
                    f"(first at row {row}) where {a!r} and {b!r} are both observed; every "
                    f"such row needs its error {word} (use 0 for none)."
                )
            what = f"column {value!r} in {source}"
        else:
            try:
                number = float(value)
            except ValueError:
                raise DataError(
                    f"--error-{kind} {spec!r}: column {value!r} not found in {source} (nor is "
                    f"it a number); available columns: {', '.join(available)}."
                ) from None
            if not np.isfinite(number):
                raise DataError(f"--error-{kind} {spec!r}: {value!r} is not a finite number.")
            vals = np.full(n, number)
            what = f"--error-{kind} {spec!r}"
        vals = np.where(both, vals, 0.0)
        if kind == "corr":
            out = np.abs(vals) > 1
            if out.any():
                row = int(np.flatnonzero(out)[0])
                raise DataError(
                    f"{what} has {int(out.sum())} correlation(s) outside [-1, 1] (first at "
                    f"row {row}: {vals[row]:g}); a correlation lies between -1 and 1."
                )
            vals = vals * sd[:, i] * sd[:, j]
        cov[:, i, j] = cov[:, j, i] = vals
    _check_psd(cov, names, source)
    return cov


def _check_psd(cov: np.ndarray, names: list[str], source: str) -> None:
    """Each point's error covariance must be positive semi-definite (as check_errors)."""
    eig = np.linalg.eigvalsh(cov)
    scale = np.maximum(np.abs(eig).max(axis=1), np.finfo(float).tiny)
    bad = eig.min(axis=1) < -1e-10 * scale
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{int(bad.sum())} row(s) of {source} have an error covariance that is not "
            f"positive semi-definite (first at row {row}: smallest eigenvalue "
            f"{eig[row].min():.3g}); the correlations or covariances given for "
            f"{', '.join(names)} in that row cannot all hold at once: check them."
        )


def _check_rows_observed(X: np.ndarray, names: list[str], source: str) -> None:
    """With missing cells allowed: every row still needs one observed data column."""
    empty = np.isnan(X).all(axis=1)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        what = (f"column {names[0]!r} in {source} has {int(empty.sum())} missing, NaN or "
                f"infinite value(s) (first at row {row})" if len(names) == 1 else
                f"{int(empty.sum())} row(s) of {source} have every data column "
                f"({', '.join(names)}) missing (first at row {row})")
        raise DataError(f"{what}; drop those rows first (a row with some columns observed "
                        "is fine: its missing ones are marginalised).")


def _check_errors_observed(X: np.ndarray, X_err: np.ndarray, errors: list[str],
                           source: str) -> None:
    """An error cell may be missing only where its data cell is (then it is ignored)."""
    data_missing = np.isnan(X) if X_err.shape[1] == X.shape[1] else np.isnan(X).all(
        axis=1, keepdims=True)
    bad = np.isnan(X_err) & ~data_missing
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        row = int(np.flatnonzero(bad[:, j])[0])
        raise DataError(
            f"column {errors[j]!r} in {source} has {int(bad[:, j].sum())} missing, NaN or "
            f"infinite value(s) (first at row {row}) where the data are observed; every "
            "observed value needs its measurement error (use 0 for an exact value)."
        )


def _numeric_block(df: Any, cols: list[str], source: str, *,
                   allow_missing: bool = False) -> np.ndarray:
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
        bad = np.isinf(vals) if allow_missing else ~np.isfinite(vals)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"column {col!r} in {source} has {int(bad.sum())} missing, NaN or infinite "
                f"value(s) (first at row {row}); drop or impute those rows first."
            )
        out[:, j] = vals
    return out


def format_number(value: Any) -> str:
    """A table cell as bayesgmm prints it: 4 significant digits, whole numbers plainly.

    Parameters
    ----------
    value : Any
        A bool (``"yes"``/``"no"``), an integer, a float (4 significant digits; a
        whole float below 1e6 without decimals, or with 3 significant digits when
        below 10; inf and nan as Python writes them), or anything else (``str``).

    Returns
    -------
    str
    """
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if not np.isfinite(v):
            return str(v)
        if v == int(v) and abs(v) < 1e6:
            return str(int(v)) if abs(v) >= 10 else f"{v:.3g}"
        return f"{v:.4g}"
    return str(value)
