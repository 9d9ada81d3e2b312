"""The ``fit``, ``report`` and ``demo`` commands: the main job end to end.

Printing and file handling only; the maths is in :mod:`bayesgmm.bayes.inference`,
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

from ..errors import DataError, SamplingError

__all__ = ["choose_by_loo", "loo_reliability", "not_identified", "run"]

K_AUTO_MAX = 8
N_CANDIDATES = 2
#: ``--k auto``: a candidate whose first run averages more gradient evaluations (leapfrog
#: steps) per draw than this is stopped there (a well-posed mixture takes ~10-40)
EARLY_STOP_STEPS = 100
#: ``--k auto``: ... or whose first run has a max R-hat above this (the old, lax threshold
#: for chains that clearly disagree: the data let the components trade places)
EARLY_STOP_RHAT = 1.1
#: ``--k auto``: LOO is unreliable when p_loo exceeds this multiple of the 3K - 1
#: parameters (weights, means and sigmas less the weights' sum-to-one)
P_LOO_FACTOR = 2.0

EXIT_SAMPLING_FAILED = 1
EXIT_NOT_TRUSTWORTHY = 3

#: where progress goes: stdout, or stderr when --json owns stdout
_STREAM = sys.stdout


def run(args: argparse.Namespace) -> int:
    """Run one of the commands; DataError propagates to the caller (exit status 2).

    Returns 0, or 3 (:data:`EXIT_NOT_TRUSTWORTHY`) when ``fit``/``demo`` wrote a result
    that failed a check, or 1 when sampling failed.
    """
    global _STREAM
    _STREAM = sys.stderr if getattr(args, "json", False) else sys.stdout
    if args.command == "report":
        return _report(args)
    if args.command == "demo":
        from ..datasets import example_path

        args.file, args.column, args.errors, args.k = example_path("noisy_lines"), "x", \
            "x_err", "2"
        args.sep = None
        _say("demo: 800 simulated velocities with per-point errors larger than the "
             "intrinsic widths (bundled example 'noisy_lines')")
    return _fit(args)


def _say(msg: str) -> None:
    print(msg, file=_STREAM, flush=True)


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


def _check_out(out: Path, force: bool) -> None:
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
    from ..io import load_table

    out = Path(args.out)
    _check_out(out, args.force)
    if args.k != "auto":
        try:
            k = int(args.k)
        except ValueError:
            raise DataError(f"--k must be a positive integer or 'auto'; got {args.k!r}.") from None
        if k < 1:
            raise DataError(f"--k must be a positive integer or 'auto'; got {args.k!r}.")
    df = load_table(args.file, sep=getattr(args, "sep", None))
    x, e, column = _pick_column(df, args.column, args.errors, repr(str(args.file)))
    if args.column is None:
        _say(f"data column: {column!r} ({x.size} rows; the only numeric column"
             + (f" besides the errors {args.errors!r})" if args.errors else ")"))
    import pandas as pd

    x = pd.Series(x, name=column)  # named: the result and the figures use the column's name
    if args.k != "auto" and int(args.k) > x.size:
        raise DataError(f"--k {args.k} exceeds the number of rows ({x.size}); use a smaller K.")
    progress = sys.stderr.isatty()
    _recover_stale(out)
    _check_out(out, args.force)  # again: a restored result may be there now
    tmp = out.parent / f".{out.name}.partial-{_tag()}"
    try:
        tmp.mkdir(exist_ok=False)  # never parents: --out's parent must exist
        try:
            dt, selection, loo_table, notes, choice = _run_fit(args, x, e, progress)
        except SamplingError as exc:
            _save_em_only(exc, tmp, out, column, args.errors, args.force)
            print(f"bayesgmm: {exc}; saved the EM estimate to "
                  f"{out / 'em_estimate.json'} (not a posterior)", file=sys.stderr)
            if getattr(args, "json", False):
                import json

                print(json.dumps({
                    "ok": False, "verdict": f"sampling failed: {exc}",
                    "exit_status": EXIT_SAMPLING_FAILED,
                    "files": {p.name: str(p.resolve()) for p in sorted(out.iterdir())},
                }, indent=2))
            return EXIT_SAMPLING_FAILED
        shrunk = _shrink(dt, getattr(args, "no_loglik", False), getattr(args, "thin_ppc", None))
        diagnosis = _write_outputs(dt, tmp, selection, loo_table, column, args.errors,
                                   args)
        _move_into_place(tmp, out, args.force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    notes = notes + shrunk
    status = 0 if diagnosis.ok else EXIT_NOT_TRUSTWORTHY
    if getattr(args, "json", False):
        _print_json(out, dt, diagnosis, choice, notes, status, column, args.errors)
    else:
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        _print_verdict(out, diagnosis)
    return status


def _shrink(dt: Any, no_loglik: bool, thin_ppc: int | None) -> list[str]:
    """Apply --no-loglik and --thin-ppc to ``dt`` in place; return notes for the user."""
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


def _candidates(table: Any) -> list[int]:
    ok = table[~table["degenerate"]].sort_values("bic")
    return [int(k) for k in ok["k"].head(N_CANDIDATES)]


def _run_fit(args, x, e, progress):
    from ..bayes.inference import fit
    from ..errors import FailedCheckWarning, SamplingWarning
    from ..selection import select_n_components

    loo_table = None
    kw = dict(X_err=e, draws=args.draws, tune=args.tune, chains=args.chains,
              sampler=args.sampler, random_seed=args.seed, progressbar=progress,
              target_accept=args.target_accept)

    def notes_of(caught) -> list[str]:
        seen: list[str] = []
        for w in caught:
            msg = str(w.message)
            # a failed check is said once, by the verdict (with the command to run next)
            if (issubclass(w.category, SamplingWarning)
                    and not issubclass(w.category, FailedCheckWarning) and msg not in seen):
                seen.append(msg)
        return seen

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sel = select_n_components(x, range(1, min(K_AUTO_MAX, x.size) + 1), X_err=e,
                                  random_seed=args.seed)
    selection = sel.table
    notes = notes_of(caught)
    if args.k == "auto":  # the candidates come from this table: its doubts are said
        from ..errors import ConvergenceWarning, SelectionWarning

        notes += [str(w.message) for w in caught
                  if issubclass(w.category, SelectionWarning | ConvergenceWarning)]
    if args.k != "auto":
        _say(f"fitting K = {args.k} ...")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dt = fit(x, int(args.k), log_likelihood=False if args.no_loglik else None, **kw)
        choice = {"k": int(args.k), "mode": "given", "reason": "given with --k"}
        return dt, selection, None, notes + notes_of(caught), choice

    cands = _candidates(sel.table)
    _say(f"K auto: BIC from EM over 1..{int(sel.table.k.max())} ranks K = "
         f"{', '.join(map(str, cands))} first; fitting each and comparing by LOO")
    fits, cand_notes, flags = {}, {}, {}
    for k in cands:
        _say(f"  fitting K = {k} ...")
        name = f"K={k}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fits[name] = fit(x, k, log_likelihood=True, first_run_check=not_identified, **kw)
        cand_notes[name] = notes_of(caught)
        stop = fits[name].attrs.get("stopped_early")
        if stop:
            flags[name] = f"not identified, stopped after its first run: {stop}"
            _say(f"  K = {k} is not identified: {stop}. Stopped after its first run "
                 "(no second run); it cannot win while an unflagged candidate is left")
    if len(fits) == 1:
        best = next(iter(fits))
        why = "the only K that EM did not find degenerate"
    else:
        loo_table, unreliable = _loo_compare(fits)
        for name, why_not in unreliable.items():
            flags.setdefault(name, why_not)
            _say(f"  warning: {name}'s LOO is unreliable: {why_not}")
        loo_table["note"] = [flags.get(str(n), "") for n in loo_table.index]
        best, why = choose_by_loo(loo_table, flags)
    dt = fits[best]
    _say(f"chose {best}: {why}; BIC's first choice was K = {cands[0]}")
    choice = {"k": int(best.split("=")[1]), "mode": "auto", "reason": why,
              "candidates": cands, "flagged": flags}
    return dt, selection, loo_table, notes + cand_notes[best], choice


def not_identified(dt: Any) -> str | None:
    """Why a first sampling run shows its K is not identified by the data, or None.

    Parameters
    ----------
    dt : xarray.DataTree
        A sampling run: ``posterior`` (weights, means, sigmas) and ``sample_stats``.

    Returns
    -------
    str or None
        The symptoms, in words: max R-hat of the weights, means and sigmas over
        :data:`EARLY_STOP_RHAT`, chains settled in different modes or a component with
        almost no weight (:func:`bayesgmm.diagnostics.mixture_checks`), or more than
        :data:`EARLY_STOP_STEPS` gradient evaluations per draw on average (a step size
        the sampler had to shrink to follow a ridge or funnel). None: none of these.

    Notes
    -----
    Why stop early: a first run with these symptoms is one that the second run at
    target_accept 0.99 does not rescue, and that second run, with its many gradient
    evaluations per draw, would be most of the time ``--k auto`` takes (an example is
    in ``benchmarks/README.md``).
    """
    import numpy as np

    from ..diagnostics import mixture_checks

    checks = {c["name"]: c for c in mixture_checks(dt)}
    why = []
    rhat = _max_rhat(dt)
    if rhat > EARLY_STOP_RHAT:
        why.append(f"its chains disagree (max R-hat {rhat:.2f}, over {EARLY_STOP_RHAT})")
    if not checks["chains_agree"]["ok"]:
        why.append(f"its chains settled in different modes ({checks['chains_agree']['value']:.1f}"
                   " within-chain sds apart)")
    if not checks["no_empty_component"]["ok"]:
        why.append("a component has almost no weight (posterior mean "
                   f"{checks['no_empty_component']['value']:.3g})")
    stats = dt["sample_stats"] if "sample_stats" in dt.children else None
    if stats is not None and "n_steps" in stats:
        steps = float(np.mean(stats["n_steps"].values))
        if steps > EARLY_STOP_STEPS:
            size = (f", step size {float(np.median(stats['step_size'].values)):.2g}"
                    if "step_size" in stats else "")
            why.append(f"{steps:.0f} gradient evaluations per draw{size}")
    return "; ".join(why) or None


def _max_rhat(dt: Any) -> float:
    # the same figure fit's rerun rule and diagnose use, not a second copy
    from ..diagnostics.sampling import sampling_figures

    post = dt["posterior"].to_dataset()
    if post.sizes["chain"] < 2:
        return float("nan")
    return sampling_figures(post).max_rhat


def loo_reliability(elpd: Any, n_components: int) -> str | None:
    """Why a PSIS-LOO estimate cannot be trusted, or None.

    Parameters
    ----------
    elpd : arviz_stats.ELPDData
        ``arviz_stats.loo(dt, pointwise=True)`` of a fit.
    n_components : int
        K of that fit: it has 3K - 1 parameters.

    Returns
    -------
    str or None
        Unreliable when some Pareto k exceed ArviZ's own threshold (``elpd.good_k``,
        ``min(1 - 1/log10(S), 0.7)`` for S draws: the importance sampling fails for those
        points), or when p_loo exceeds :data:`P_LOO_FACTOR` times the parameter count
        (the posterior is far from what its parameters allow: LOO's own estimate of
        its complexity says the fit is degenerate or the sampler did not converge).
    """
    import numpy as np

    why = []
    if getattr(elpd, "pareto_k", None) is not None:
        k = np.asarray(elpd.pareto_k).ravel()
        bad = int(np.sum(k > elpd.good_k))
        if bad:
            why.append(f"{bad} point(s) with Pareto k above {elpd.good_k:.2f} (max "
                       f"{float(np.nanmax(k)):.2f})")
    n_par = 3 * n_components - 1
    if float(elpd.p) > P_LOO_FACTOR * n_par:
        why.append(f"p_loo {float(elpd.p):.1f} is over {P_LOO_FACTOR:g} x its {n_par} "
                   "parameters")
    return "; ".join(why) or None


def _loo_compare(fits: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """arviz_stats.compare of the fits (unrounded), and which LOO estimates are unreliable."""
    import arviz_stats as azs

    loos, unreliable = {}, {}
    for name, dt in fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the Pareto k warning: reported below instead
            loos[name] = azs.loo(dt, pointwise=True)
        why = loo_reliability(loos[name], int(name.split("=")[1]))
        if why:
            unreliable[name] = why
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = azs.compare(loos, round_to="none")
    table["params"] = [3 * int(str(n).split("=")[1]) - 1 for n in table.index]
    return table, unreliable


def _num(v: float) -> str:
    """A number as the report's tables print it (so the reason and the table agree)."""
    from ..report import _fmt

    return _fmt(float(v))


def choose_by_loo(table: Any, flags: dict[str, str] | None = None) -> tuple[str, str]:
    """The K to keep from an ``arviz_stats.compare`` table, and why, in words.

    Parameters
    ----------
    table : pandas.DataFrame
        ``arviz_stats.compare`` output (best first or not), index ``"K=<k>"``, columns
        ``elpd``, ``elpd_diff`` (model minus the best: 0 for the best, negative for
        worse ones, as in arviz-stats 1.x) and ``dse``. Unrounded values decide.
    flags : dict of str to str, optional
        Candidates that may not win while an unflagged one is left, with the reason
        (not identified, or unreliable LOO).

    Returns
    -------
    name : str
        The chosen row's index.
    reason : str
        One sentence whose numbers are the table's, formatted as the report prints them.

    Notes
    -----
    When the best-elpd candidate is usable, the smallest usable K whose elpd is within 2
    standard errors of the best (``|elpd_diff| <= 2 dse``) is kept: LOO cannot tell such
    models apart, and the simpler mixture has fewer components to interpret. When the
    best is flagged, the usable candidate with the highest elpd is kept. When every
    candidate is flagged, the rule applies to all of them and the reason says so.
    """
    flags = dict(flags or {})
    names = [str(n) for n in table.index]
    elpd = {n: float(table.loc[n, "elpd"]) for n in names}
    diff = {n: float(table.loc[n, "elpd_diff"]) for n in names}
    dse = {n: float(table.loc[n, "dse"]) for n in names}

    def k_of(name: str) -> int:
        return int(name.split("=")[1])

    if len(names) == 1:
        return names[0], "the only candidate"
    usable = [n for n in names if n not in flags]
    prefix = ""
    if not usable:
        usable = names
        prefix = ("no candidate's LOO can be trusted (" + "; ".join(
            f"{n}: {flags[n]}" for n in names) + "), so this choice is provisional: ")
    top = max(names, key=elpd.__getitem__)  # compare's reference: elpd_diff 0
    skipped = "".join(f"; {n} not considered: {flags[n]}" for n in names
                      if n in flags and n != top and usable is not names)
    if top not in usable:
        best = max(usable, key=elpd.__getitem__)
        return best, (prefix + f"{top} has the highest LOO elpd ({best}'s elpd_diff "
                      f"{_num(diff[best])}, dse {_num(dse[best])}) but {flags[top]}, so "
                      f"it is not chosen; {best} has the highest elpd of the others"
                      + skipped)
    close = [n for n in usable if abs(diff[n]) <= 2 * dse[n]]
    best = min(close, key=k_of)
    if best == top:
        others = [n for n in usable if n != top]
        if not others:
            return best, prefix + "the only candidate left to compare" + skipped
        tied = [n for n in others if n in close]  # all larger K: best is the smallest
        if tied:
            n = min(tied, key=k_of)
            return best, (prefix + f"highest LOO elpd; {n} is within 2 standard errors of "
                          f"it ({n}'s elpd_diff {_num(diff[n])}, dse {_num(dse[n])}) but "
                          "has more components, so the simpler mixture is kept" + skipped)
        near = max(others, key=lambda n: diff[n] / max(dse[n], 1e-300))
        return best, (prefix + f"highest LOO elpd, ahead of {near} by more than 2 standard "
                      f"errors ({near}'s elpd_diff {_num(diff[near])}, dse "
                      f"{_num(dse[near])})" + skipped)
    return best, (prefix + f"its LOO elpd is within 2 standard errors of {top}'s "
                  f"(elpd_diff {_num(diff[best])}, dse {_num(dse[best])}), so the simpler "
                  "mixture is kept" + skipped)


def _write_outputs(dt, outdir: Path, selection, loo_table, column, errors,
                   args: argparse.Namespace | None = None) -> Any:
    """Write posterior.nc, summary.csv and report.html into ``outdir``.

    posterior.nc keeps the BIC/AIC and LOO tables and the run's options in its attrs,
    so ``bayesgmm report`` rebuilds the same report and the verdict names the command
    to run next.
    """
    from .._stored import store
    from ..diagnostics import diagnose
    from ..report import write_report

    dt.attrs["data_column"] = column
    dt.attrs["error_column"] = errors or ""
    options = None
    if args is not None:
        options = {"file": str(getattr(args, "file", "") or ""), "column": column,
                   "errors": errors or "", "k": str(getattr(args, "k", "")),
                   "out": str(getattr(args, "out", "") or ""),
                   **{key: getattr(args, key, None)
                      for key in ("draws", "tune", "chains", "sampler", "seed",
                                  "target_accept", "sep", "no_loglik", "thin_ppc")}}
    store(dt, selection=selection, loo_table=loo_table, cli_args=options)
    save_netcdf(dt, outdir / "posterior.nc")
    diagnosis = diagnose(dt, selection=selection, loo_table=loo_table)
    diagnosis.table.to_csv(outdir / "summary.csv")
    write_report(dt, outdir / "report.html", diagnosis=diagnosis, selection=selection,
                 loo_table=loo_table)
    return diagnosis


#: groups stored as float32: 7 significant digits, far finer than their Monte Carlo error
FLOAT32_GROUPS = ("log_likelihood", "posterior_predictive")


def save_netcdf(dt: Any, path: Path) -> None:
    """Write ``dt`` as compressed netCDF-4 (h5netcdf): gzip level 4 with byte shuffling.

    The pointwise log-likelihood and the predictive draws (nearly all of the file) are
    stored as float32; everything else keeps its type. ``xarray.load_datatree`` and
    ArviZ read the file as usual.
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


def _save_em_only(exc: SamplingError, tmp: Path, out: Path, column: str, errors,
                  force: bool) -> None:
    """Keep what was computed when sampling fails: the EM estimate, marked as such."""
    import json

    doc = {"kind": "maximum-likelihood (EM) estimate, NOT a posterior: sampling failed",
           "error": str(exc), "data_column": column, "error_column": errors or "",
           **(exc.em_estimate or {})}
    (tmp / "em_estimate.json").write_text(json.dumps(doc, indent=2, default=float))
    _move_into_place(tmp, out, force)


def _print_verdict(out: Path, diagnosis: Any) -> None:
    # the verdict says itself whether to trust the numbers; the status is in --help
    _say(f"verdict: {diagnosis.verdict}")
    files = ", ".join(p.name for p in sorted(out.iterdir()))
    _say(f"wrote {out}/ ({files})")
    if (out / "report.html").exists():
        _say(f"report: {(out / 'report.html').resolve()}")


def _print_json(out: Path, dt: Any, diagnosis: Any, choice: dict[str, Any], notes: list[str],
                status: int, column: str, errors: str | None) -> None:
    import json

    import numpy as np

    def plain(v: Any) -> Any:
        if isinstance(v, np.generic):
            v = v.item()
        return None if isinstance(v, float) and not np.isfinite(v) else v

    table = diagnosis.table
    summary = {str(name): {str(c): plain(row[c]) for c in table.columns}
               for name, row in table.iterrows()}
    doc = {
        "ok": bool(diagnosis.ok),
        "verdict": diagnosis.verdict,
        "exit_status": status,
        "n_components": int(dt.attrs.get("n_components", choice["k"])),
        "k_choice": choice,
        "data_column": column,
        "error_column": errors,
        "files": {p.name: str(p.resolve()) for p in sorted(out.iterdir())},
        "summary": summary,
        "warnings": notes,
    }
    print(json.dumps(doc, indent=2, default=plain))


def _report(args: argparse.Namespace) -> int:
    import xarray as xr

    src = Path(args.posterior)
    if not src.exists():
        raise DataError(f"file not found: {str(src)!r}; pass a posterior.nc written by "
                        "'bayesgmm fit'.")
    if src.is_dir():
        raise DataError(f"{str(src)!r} is a directory; pass the posterior.nc inside it.")
    with open(src, "rb") as fh:
        magic = fh.read(8)
    if magic != b"\x89HDF\r\n\x1a\n":  # netCDF-4 is HDF5; bayesgmm writes no other kind
        raise DataError(f"cannot read {str(src)!r} as a saved posterior: not a netCDF-4 "
                        "file; pass a posterior.nc written by 'bayesgmm fit'.")
    try:
        dt = xr.load_datatree(src)
    except Exception as exc:  # not netCDF, or not a DataTree
        raise DataError(f"cannot read {str(src)!r} as a saved posterior: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    if "posterior" not in dt.children or "weights" not in dt["posterior"]:
        raise DataError(f"{str(src)!r} is not a bayesgmm posterior (no posterior/weights).")
    from .._stored import stored_tables
    from ..report import write_report

    target = Path(args.out) if args.out else src.with_name("report.html")
    if not target.parent.is_dir():
        raise DataError(f"--out {str(target)!r}: the directory {str(target.parent)!r} does "
                        "not exist; create it first.")
    selection, loo_table = stored_tables(dt)  # what bayesgmm fit stored: same sections
    write_report(dt, target, selection=selection, loo_table=loo_table)
    _say(f"report: {target.resolve()}")
    return 0
