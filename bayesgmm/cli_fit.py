"""The ``fit``, ``report`` and ``demo`` commands: the main job end to end.

Printing and file handling only; the maths is in :mod:`bayesgmm.inference`,
:mod:`bayesgmm.diagnostics` and :mod:`bayesgmm.report`. Output directories are written
to a hidden sibling and renamed at the end, so an interrupted or killed run never leaves
a half-written result (see ARCHITECTURE.md, "Writing results").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sys
import warnings
from pathlib import Path
from typing import Any

from .errors import DataError, SamplingError

__all__ = ["run"]

K_AUTO_MAX = 8
N_CANDIDATES = 2


def run(args: argparse.Namespace) -> int:
    """Run one of the commands; DataError propagates to the caller (exit status 2)."""
    if args.command == "report":
        return _report(args)
    if args.command == "demo":
        from .datasets import example_path

        args.file, args.column, args.errors, args.k = example_path("noisy_lines"), "x", \
            "x_err", "2"
        print("demo: 800 simulated velocities with per-point errors larger than the "
              "intrinsic widths (bundled example 'noisy_lines')")
    return _fit(args)


def _say(msg: str) -> None:
    print(msg, flush=True)


def _pick_column(df: Any, column: str | None, errors: str | None, source: str):
    from .data import table_columns

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


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {str(out)!r} exists and is a file; choose a directory path.")
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError(
            f"output directory {str(out)!r} already exists and is not empty; choose another "
            "--out or pass --force to replace it."
        )


def _tag() -> str:
    """Mark of the current process on its hidden work directories: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _move_into_place(tmp: Path, out: Path, force: bool) -> None:
    """Put the finished ``tmp`` at ``out``; a replaced result is set aside, not deleted, first.

    At every instant either the old result or the new one is complete on disk: the old
    one is renamed to a hidden sibling, the new one renamed into place, and only then is
    the old one removed. A process killed in between leaves the old one hidden, and the
    next run into the same ``--out`` puts it back. Without ``force`` nothing is replaced:
    if another run wrote ``out`` meanwhile, this result goes to a visible sibling.
    """
    if not force or not out.exists():
        try:
            os.rename(tmp, out)  # onto an absent or empty directory only
        except OSError:
            alt = out.parent / f"{out.name}.{os.getpid()}"
            os.rename(tmp, alt)
            raise DataError(
                f"output directory {str(out)!r} was filled by another run while this one "
                f"was fitting; this result is saved in {str(alt)!r} instead."
            ) from None
        return
    old = out.parent / f".{out.name}.replaced-{_tag()}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _recover_stale(out: Path) -> None:
    """Tidy what runs into ``out`` that were killed (on this host) left behind.

    A set-aside old result (``.replaced-*``) is put back if ``out`` is missing (the run
    died between its two renames), else removed; unfinished work (``.partial-*``) is
    removed. Directories of live processes, or of other hosts, are left alone.
    """
    if not out.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(partial|replaced)-(.+)-(\d+)$")
    stale = []
    for p in out.parent.iterdir():
        m = pattern.match(p.name)
        if not m or m.group(2) != socket.gethostname():
            continue
        try:
            os.kill(int(m.group(3)), 0)
        except ProcessLookupError:
            stale.append((m.group(1), p))
        except OSError:  # alive but not ours, or cannot tell: leave it
            continue
    for kind, p in sorted(stale, key=lambda t: t[0] != "replaced"):
        if kind == "replaced" and not out.exists():
            os.rename(p, out)
            print(f"bayesgmm: restored {str(out)!r}, left aside by a run that was killed",
                  file=sys.stderr)
        else:
            shutil.rmtree(p, ignore_errors=True)


def _fit(args: argparse.Namespace) -> int:
    from .data import load_table

    out = Path(args.out)
    _check_out(out, args.force)
    if args.k != "auto":
        try:
            k = int(args.k)
        except ValueError:
            raise DataError(f"--k must be a positive integer or 'auto'; got {args.k!r}.") from None
        if k < 1:
            raise DataError(f"--k must be a positive integer or 'auto'; got {args.k!r}.")
    df = load_table(args.file)
    x, e, column = _pick_column(df, args.column, args.errors, repr(str(args.file)))
    import pandas as pd

    x = pd.Series(x, name=column)  # named: the result and the figures use the column's name
    if args.k != "auto" and int(args.k) > x.size:
        raise DataError(f"--k {args.k} exceeds the number of rows ({x.size}); use a smaller K.")
    progress = sys.stderr.isatty()
    _recover_stale(out)
    _check_out(out, args.force)  # again: a restored result may be there now
    tmp = out.parent / f".{out.name}.partial-{_tag()}"
    try:
        tmp.mkdir(parents=True, exist_ok=False)
        try:
            dt, selection, loo_table, notes = _run_fit(args, x, e, progress)
        except SamplingError as exc:
            _save_em_only(exc, tmp, out, column, args.errors, args.force)
            print(f"bayesgmm: {exc}; saved the EM estimate to "
                  f"{out / 'em_estimate.json'} (not a posterior)", file=sys.stderr)
            return 1
        _write_outputs(dt, tmp, selection, loo_table, column, args.errors, args)
        _move_into_place(tmp, out, args.force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    _print_verdict(out)
    return 0


def _run_fit(args, x, e, progress):
    from .inference import fit
    from .selection import select_n_components

    selection, loo_table, notes = None, None, []
    kw = dict(X_err=e, draws=args.draws, tune=args.tune, chains=args.chains,
              sampler=args.sampler, random_seed=args.seed, progressbar=progress,
              target_accept=args.target_accept)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sel = select_n_components(x, range(1, min(K_AUTO_MAX, x.size) + 1), X_err=e,
                                  random_seed=args.seed)
        selection = sel.table
        if args.k == "auto":
            ok = sel.table[~sel.table["degenerate"]].sort_values("bic")
            cands = [int(k) for k in ok["k"].head(N_CANDIDATES)]
            _say(f"K auto: BIC from EM over 1..{int(sel.table.k.max())} ranks K = "
                 f"{', '.join(map(str, cands))} first; fitting each and comparing by LOO")
            fits = {}
            for k in cands:
                _say(f"  fitting K = {k} ...")
                fits[f"K={k}"] = fit(x, k, **kw)
            import arviz_stats as azs

            loo_table = azs.compare(fits)
            best, why = _choose_by_loo(loo_table)
            dt = fits[best]
            _say(f"chose {best}: {why}; BIC's first choice was K = {cands[0]}")
        else:
            _say(f"fitting K = {args.k} ...")
            dt = fit(x, int(args.k), **kw)
    seen = set()
    for w in caught:
        msg = str(w.message)
        from .errors import SamplingWarning

        if issubclass(w.category, SamplingWarning) and msg not in seen:
            seen.add(msg)
            notes.append(msg)
    return dt, selection, loo_table, notes


def _choose_by_loo(table) -> tuple[str, str]:
    """Smallest K whose LOO elpd is within 2 standard errors of the best one's.

    LOO cannot tell apart models whose elpd differ by less than their standard error;
    then the simpler mixture is kept (fewer components to interpret).
    """
    top = str(table.index[0])
    close = [str(name) for name in table.index
             if float(table.loc[name, "elpd_diff"]) <= 2 * float(table.loc[name, "dse"])]
    best = min(close, key=lambda name: int(name.split("=")[1]))
    if best == top:
        return best, (f"highest LOO elpd ({float(table.loc[best, 'elpd']):.1f}), ahead of "
                      "the others by more than 2 standard errors" if len(table) > 1 else
                      "the only candidate")
    d = float(table.loc[best, "elpd_diff"])
    return best, (f"its LOO elpd is within 2 standard errors of {top}'s (difference "
                  f"{d:.1f} +- {float(table.loc[best, 'dse']):.1f}), so the simpler mixture "
                  "is kept")


def _write_outputs(dt, outdir: Path, selection, loo_table, column, errors,
                   args: argparse.Namespace | None = None) -> None:
    """Write posterior.nc, summary.csv and report.html into ``outdir``.

    posterior.nc keeps the BIC/AIC and LOO tables and the run's options in its attrs,
    so ``bayesgmm report`` rebuilds the same report and the verdict names the command
    to run next.
    """
    from ._stored import store
    from .diagnostics import diagnose
    from .report import write_report

    dt.attrs["data_column"] = column
    dt.attrs["error_column"] = errors or ""
    options = None
    if args is not None:
        options = {"file": str(getattr(args, "file", "") or ""), "column": column,
                   "errors": errors or "", "k": str(getattr(args, "k", "")),
                   "out": str(getattr(args, "out", "") or ""),
                   **{key: getattr(args, key, None)
                      for key in ("draws", "tune", "chains", "sampler", "seed",
                                  "target_accept")}}
    store(dt, selection=selection, loo_table=loo_table, cli_args=options)
    dt.to_netcdf(outdir / "posterior.nc")
    diagnosis = diagnose(dt, selection=selection, loo_table=loo_table)
    diagnosis.table.to_csv(outdir / "summary.csv")
    write_report(dt, outdir / "report.html", diagnosis=diagnosis, selection=selection,
                 loo_table=loo_table)


def _save_em_only(exc: SamplingError, tmp: Path, out: Path, column: str, errors,
                  force: bool) -> None:
    """Keep what was computed when sampling fails: the EM estimate, marked as such."""
    import json

    doc = {"kind": "maximum-likelihood (EM) estimate, NOT a posterior: sampling failed",
           "error": str(exc), "data_column": column, "error_column": errors or "",
           **(exc.em_estimate or {})}
    (tmp / "em_estimate.json").write_text(json.dumps(doc, indent=2, default=float))
    _move_into_place(tmp, out, force)


def _print_verdict(out: Path) -> None:
    import xarray as xr

    from .diagnostics import diagnose

    dt = xr.load_datatree(out / "posterior.nc")
    diagnosis = diagnose(dt)
    _say(("CONVERGED: " if diagnosis.ok else "NOT TRUSTWORTHY YET: ") + diagnosis.verdict)
    files = ", ".join(p.name for p in sorted(out.iterdir()))
    _say(f"wrote {out}/ ({files})")
    if (out / "report.html").exists():
        _say(f"report: {(out / 'report.html').resolve()}")


def _report(args: argparse.Namespace) -> int:
    import xarray as xr

    src = Path(args.posterior)
    if not src.exists():
        raise DataError(f"file not found: {str(src)!r}; pass a posterior.nc written by "
                        "'bayesgmm fit'.")
    try:
        dt = xr.load_datatree(src)
    except Exception as exc:  # not netCDF, or not a DataTree
        raise DataError(f"cannot read {str(src)!r} as a saved posterior: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    if "posterior" not in dt.children or "weights" not in dt["posterior"]:
        raise DataError(f"{str(src)!r} is not a bayesgmm posterior (no posterior/weights).")
    from ._stored import stored_tables
    from .report import write_report

    target = Path(args.out) if args.out else src.with_name("report.html")
    selection, loo_table = stored_tables(dt)  # what bayesgmm fit stored: same sections
    write_report(dt, target, selection=selection, loo_table=loo_table)
    _say(f"report: {target.resolve()}")
    return 0
