"""Where ``bayesgmm fit`` writes: the output directory, made atomic, and its files.

A result is written into a hidden sibling of ``--out`` (``.<name>.partial-<host>-<pid>``)
and renamed into place at the end, so an interrupted or killed run never leaves a
half-written result; a replaced result is set aside (``.<name>.replaced-...``) until the
new one is in place, and the next run into the same ``--out`` tidies what a killed run
left (see ARCHITECTURE.md, "Writing results"). Also what goes into the files: the
compressed ``posterior.nc`` (thinned by ``--no-loglik`` and ``--thin-ppc``), and the
EM-only result kept when sampling fails.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from ..errors import DataError, SamplingError

__all__ = ["FLOAT32_GROUPS", "check_out", "move_into_place", "recover_stale", "save_em_only",
           "save_netcdf", "shrink", "work_tag"]


def check_out(out: Path, force: bool) -> None:
    """Refuse an ``--out`` whose parent is missing, that is a file, or that holds a result.

    Parameters
    ----------
    out : pathlib.Path
        The output directory asked for.
    force : bool
        ``--force``: a non-empty ``out`` may be replaced.

    Raises
    ------
    DataError
        With the fix in words (create the parent, choose another path, or ``--force``).
    """
    if not out.parent.is_dir():
        raise DataError(
            f"--out {str(out)!r}: the directory {str(out.parent)!r} does not exist; create "
            "it first (bayesgmm creates only the output directory itself)."
        )
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {str(out)!r} exists and is a file; choose a directory path.")
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError(
            f"output directory {str(out)!r} already exists and is not empty; choose another "
            "--out or pass --force to replace it."
        )


def work_tag() -> str:
    """Mark of the current process on its hidden work directories: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


def move_into_place(tmp: Path, out: Path, force: bool) -> None:
    """Put the finished ``tmp`` at ``out``; a replaced result is set aside, not deleted, first.

    At every instant either the old result or the new one is complete on disk: the old
    one is renamed to a hidden sibling, the new one renamed into place, and only then is
    the old one removed. A process killed in between leaves the old one hidden, and the
    next run into the same ``--out`` puts it back. Without ``force`` nothing is replaced:
    if another run wrote ``out`` meanwhile, this result goes to a visible sibling.

    Parameters
    ----------
    tmp : pathlib.Path
        The finished hidden work directory, a sibling of ``out``.
    out : pathlib.Path
        Where the result goes.
    force : bool
        Replace a result already at ``out``.

    Raises
    ------
    DataError
        Without ``force``, when ``out`` was filled meanwhile (the message names the
        sibling that holds this result).
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
    old = out.parent / f".{out.name}.replaced-{work_tag()}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover_stale(out: Path) -> None:
    """Tidy what runs into ``out`` that were killed (on this host) left behind.

    A set-aside old result (``.replaced-*``) is put back if ``out`` is missing (the run
    died between its two renames), else removed; unfinished work (``.partial-*``) is
    removed. Directories of live processes, or of other hosts, are left alone.

    Parameters
    ----------
    out : pathlib.Path
        The output directory whose hidden siblings are looked at.
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


def shrink(dt: Any, no_loglik: bool, thin_ppc: int | None) -> list[str]:
    """Apply ``--no-loglik`` and ``--thin-ppc`` to ``dt`` in place; return notes for the user.

    Parameters
    ----------
    dt : xarray.DataTree
        The result about to be written.
    no_loglik : bool
        Drop the pointwise log-likelihood (and record that in the attrs).
    thin_ppc : int or None
        Keep this many posterior predictive draws, evenly spaced (0: none; None: all).

    Returns
    -------
    list of str
        What the user loses by it, one sentence each.
    """
    import numpy as np

    notes = []
    if no_loglik and "log_likelihood" in dt.children:
        del dt["log_likelihood"]
    if no_loglik:
        dt.attrs["log_likelihood_stored"] = 0
        notes.append("--no-loglik: posterior.nc holds no pointwise log-likelihood, so "
                     "LOO (arviz_stats.loo) cannot be computed from it")
    if thin_ppc is not None and "posterior_predictive" in dt.children:
        pp = dt["posterior_predictive"].to_dataset()
        n_draws = pp.sizes["draw"]
        if thin_ppc == 0:
            del dt["posterior_predictive"]
            notes.append("--thin-ppc 0: no posterior predictive draws stored, so the "
                         "predictive checks are skipped")
        elif thin_ppc < n_draws:
            idx = np.unique(np.linspace(0, n_draws - 1, thin_ppc).round().astype(int))
            dt["posterior_predictive"] = pp.isel(draw=idx)
    return notes


#: groups stored as float32: 7 significant digits, far finer than their Monte Carlo error
FLOAT32_GROUPS = ("log_likelihood", "posterior_predictive")


def save_netcdf(dt: Any, path: Path) -> None:
    """Write ``dt`` as compressed netCDF-4 (h5netcdf): gzip level 4 with byte shuffling.

    The pointwise log-likelihood and the predictive draws (nearly all of the file) are
    stored as float32; everything else keeps its type. ``xarray.load_datatree`` and
    ArviZ read the file as usual.

    Parameters
    ----------
    dt : xarray.DataTree
        The result to write.
    path : pathlib.Path
        The file.
    """
    encoding: dict[str, dict[str, dict[str, Any]]] = {}
    for group in dt.groups:
        node = dt[group]
        enc = {}
        for name, var in node.to_dataset(inherit=False).data_vars.items():
            if var.dtype.kind not in "fiu" or var.ndim == 0:
                continue
            e: dict[str, Any] = {"compression": "gzip", "compression_opts": 4,
                                 "shuffle": True}
            if var.dtype.kind == "f" and node.name in FLOAT32_GROUPS:
                e["dtype"] = "float32"
            enc[name] = e
        if enc:
            encoding[group] = enc
    dt.to_netcdf(path, engine="h5netcdf", encoding=encoding)


def save_em_only(exc: SamplingError, tmp: Path, out: Path, column: str | list[str],
                 errors: str | list[str] | None, force: bool) -> None:
    """Keep what was computed when sampling fails: the EM estimate, marked as such.

    Writes ``em_estimate.json`` (the estimate, the error, the columns) into ``tmp`` and
    moves ``tmp`` into place as :func:`move_into_place` does.

    Parameters
    ----------
    exc : SamplingError
        The failure; its ``em_estimate`` is saved (arrays as nested lists: in D dims
        means (component, feature) and covariances (component, feature, feature)).
    tmp, out, force
        As for :func:`move_into_place`.
    column : str or list of str
        The data column (1-D: ``data_column``), or the data columns of a D-dim fit
        (``data_columns``).
    errors : str, list of str or None
        The error column(s) (None: no errors).
    """
    import json

    import numpy as np

    def plain(v: Any) -> Any:
        return v.tolist() if isinstance(v, np.ndarray) else float(v)

    cols = ({"data_columns": column, "error_columns": list(errors or [])}
            if isinstance(column, list) else
            {"data_column": column, "error_column": errors or ""})
    doc = {"kind": "maximum-likelihood (EM) estimate, NOT a posterior: sampling failed",
           "error": str(exc), **cols, **(exc.em_estimate or {})}
    (tmp / "em_estimate.json").write_text(json.dumps(doc, indent=2, default=plain))
    move_into_place(tmp, out, force)
