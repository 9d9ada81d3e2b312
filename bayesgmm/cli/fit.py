"""The ``fit``, ``report`` and ``demo`` commands: the main job end to end.

Reading the table (what is read, 1-D or D dims: :mod:`bayesgmm.cli.data`), calling the
fits, printing; the maths is in
:mod:`bayesgmm.bayes.inference`, :mod:`bayesgmm.selection` (BIC proposes the ``--k auto``
candidates; :func:`bayesgmm.posterior_k` chooses by p(K | data), adding its K to
the candidates; :mod:`bayesgmm.selection.loo` compares them, and chooses where p(K |
data) is not computed),
:mod:`bayesgmm.diagnostics` and :mod:`bayesgmm.report`. Where and how results are
written (the atomic output directory, the compressed ``posterior.nc``) is
:mod:`bayesgmm.cli.output`'s.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from ..errors import DataError, SamplingError
from .data import pair_options, read_data
from .output import (
    check_out,
    move_into_place,
    recover_stale,
    save_em_only,
    save_netcdf,
    shrink,
    work_tag,
)

__all__ = ["not_identified", "run"]

K_AUTO_MAX = 8
N_CANDIDATES = 2
#: ``--k auto`` (1-D): p(K | data) over K = 1 .. (the larger BIC candidate + this)
POSTERIOR_K_BEYOND = 2
#: ... on at most this many points (its cost: 2 minutes for K = 1..4 on Old Faithful's
#: 272 waiting times by SMC's proposal, about 2 minutes for K = 1..5 on seed 001's 1,000
#: points by NUTS's; it grows with n K)
POSTERIOR_K_MAX_N = 1000
#: ... and in D dims (SMC's proposal: 5.5 minutes for K = 1..5 at D = 2 and 500 points,
#: 8 with the empty-component ratios at K = 4 and 5; 9 at D = 3; benchmarks/README.md,
#: "p(K | data) in D dims at --k auto's limit")
POSTERIOR_K_MAX_N_MD = 500
#: ``--k auto``: a candidate whose first run averages more gradient evaluations (leapfrog
#: steps) per draw than this is stopped there (a well-posed mixture takes far fewer:
#: benchmarks/README.md, "--k auto stops a candidate early")
EARLY_STOP_STEPS = 100
#: ``--k auto``: ... or whose first run has a max R-hat above this (the old, lax threshold
#: for chains that clearly disagree: the data let the components trade places)
EARLY_STOP_RHAT = 1.1

EXIT_SAMPLING_FAILED = 1
EXIT_NOT_TRUSTWORTHY = 3

#: where progress goes: stdout, or stderr when --json owns stdout
_STREAM = sys.stdout


def run(args: argparse.Namespace) -> int:
    """Run ``fit``, ``demo`` or ``report``; DataError propagates to the caller (exit status 2).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (:func:`bayesgmm.cli.main.build_parser`).

    Returns
    -------
    int
        0, or 3 (:data:`EXIT_NOT_TRUSTWORTHY`) when ``fit``/``demo`` wrote a result that
        failed a check, or 1 (:data:`EXIT_SAMPLING_FAILED`) when sampling failed.
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


def _fit(args: argparse.Namespace) -> int:
    from ..io import load_table

    out = Path(args.out)
    check_out(out, args.force)
    if args.k != "auto":
        try:
            k = int(args.k)
        except ValueError:
            raise DataError(f"--k must be a positive integer or 'auto'; got {args.k!r}.") from None
        if k < 1:
            raise DataError(f"--k must be a positive integer or 'auto'; got {args.k!r}.")
    df = load_table(args.file, sep=getattr(args, "sep", None))
    source = repr(str(args.file))
    x, e, column, errors, said = read_data(df, args, source)
    if said:
        _say(said)
    n = x.shape[0]
    if args.k != "auto" and int(args.k) > n:
        raise DataError(f"--k {args.k} exceeds the number of rows ({n}); use a smaller K.")
    progress = sys.stderr.isatty()
    recover_stale(out)
    check_out(out, args.force)  # again: a restored result may be there now
    tmp = out.parent / f".{out.name}.partial-{work_tag()}"
    try:
        tmp.mkdir(exist_ok=False)  # never parents: --out's parent must exist
        try:
            dt, selection, loo_table, notes, choice = _run_fit(args, x, e, progress)
        except SamplingError as exc:
            save_em_only(exc, tmp, out, column, errors, args.force)
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
        shrunk = shrink(dt, getattr(args, "no_loglik", False), getattr(args, "thin_ppc", None))
        diagnosis = _write_outputs(dt, tmp, selection, loo_table, column, errors, args)
        move_into_place(tmp, out, args.force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    notes = notes + shrunk
    status = 0 if diagnosis.ok and "untrusted" not in choice else EXIT_NOT_TRUSTWORTHY
    if "untrusted" in choice:
        notes.append(f"the choice of K is not to be trusted: {choice['untrusted']}.")
    if getattr(args, "json", False):
        _print_json(out, dt, diagnosis, choice, notes, status, column, errors)
    else:
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        _print_verdict(out, diagnosis)
    return status


def _candidates(table: Any) -> list[int]:
    ok = table[~table["degenerate"]].sort_values("bic")
    return [int(k) for k in ok["k"].head(N_CANDIDATES)]


def _run_fit(args, x, e, progress):
    import numpy as np

    from ..bayes.inference import fit
    from ..errors import FailedCheckWarning, SamplingWarning
    from ..selection import select_n_components
    from ..selection.loo import choose_by_loo, compare_loo

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
        sel = select_n_components(x, range(1, min(K_AUTO_MAX, x.shape[0]) + 1), X_err=e,
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
         f"{', '.join(map(str, cands))} first")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pk = _posterior_k(x, e, cands, args.seed)
    notes += notes_of(caught)
    if pk is not None:
        for k, p, sd in zip(pk.ks, pk.probabilities, pk.probabilities_sd, strict=True):
            _say(f"  p(K = {k} | data) = {p:.3f} +- {sd:.3f}")
        if pk.best not in cands:
            cands.append(pk.best)
        top = int(pk.ks.max())
        if pk.best == top and top < min(K_AUTO_MAX, x.shape[0]):
            notes.append(f"p(K | data) is highest at K = {pk.best}, the largest K tried; "
                         "larger K may be more probable still: run bayesgmm select FILE "
                         f"--criterion posterior --k-max {min(K_AUTO_MAX, 2 * pk.best)}.")
    _say(f"K auto: fitting K = {', '.join(map(str, cands))} and comparing by LOO")
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
        loo_table, unreliable = compare_loo(fits)
        for name, why_not in unreliable.items():
            flags.setdefault(name, why_not)
            _say(f"  warning: {name}'s LOO is unreliable: {why_not}")
        loo_table["note"] = [flags.get(str(n), "") for n in loo_table.index]
        best, why = choose_by_loo(loo_table, flags)
    choice = {"mode": "auto", "candidates": cands, "flagged": flags}
    if pk is not None:  # the Bayesian answer decides; LOO's and BIC's are shown beside it
        loo_best = best if len(fits) > 1 else None
        best = f"K={pk.best}"
        i = int(np.flatnonzero(pk.ks == pk.best)[0])
        why = (f"highest posterior probability, p(K = {pk.best} | data) = "
               f"{pk.probabilities[i]:.3f} +- {pk.probabilities_sd[i]:.3f}"
               + (f"; LOO prefers {loo_best}" if loo_best and loo_best != best else "")
               + (f"; flagged: {flags[best]}" if best in flags else ""))
        choice["posterior_k"] = {int(k): float(p) for k, p in zip(pk.ks, pk.probabilities,
                                                                 strict=True)}
        choice["loo_choice"] = loo_best
        if not pk.reliable[i]:  # the choice rests on a rough evidence: not trusted
            choice["untrusted"] = (f"p(K = {pk.best} | data) rests on an evidence whose "
                                   f"importance sampling failed its check ({pk.method[i]})")
    dt = fits[best]
    if pk is not None:
        from .._stored import store

        store(dt, posterior_k=pk.to_dataframe())
    _say(f"chose {best}: {why}; BIC's first choice was K = {cands[0]}")
    choice.update(k=int(best.split("=")[1]), reason=why)
    return dt, selection, loo_table, notes + cand_notes[best], choice


def _posterior_k(x: Any, e: Any, cands: list[int], seed: int | None) -> Any:
    """``--k auto``'s p(K | data) over K = 1 .. max(cands) + ``POSTERIOR_K_BEYOND``.

    :func:`bayesgmm.posterior_k` at its defaults, 1-D or D dims; None (LOO chooses),
    with a warning saying why, for more than ``POSTERIOR_K_MAX_N`` points
    (``POSTERIOR_K_MAX_N_MD`` in D dims) or values that repeat without an error
    (rounded data, whose evidence does not exist: ``check_no_ties``).
    """
    from ..bayes.posterior_k import check_no_ties, check_no_ties_md, posterior_k
    from ..errors import SamplingWarning
    from ..validation import check_md

    md = x.ndim != 1
    limit = POSTERIOR_K_MAX_N_MD if md else POSTERIOR_K_MAX_N
    why = None
    if x.shape[0] > limit:
        why = (f"{x.shape[0]} points (its cost grows with n K: minutes per K beyond "
               f"{limit}{' in D dims' if md else ''})")
    else:
        try:
            if md:  # per feature, errors as validation gives them (covariances)
                xa, cov, _ = check_md(x, e)
                check_no_ties_md(xa, cov, "p(K | data)", getattr(x, "columns", None))
            else:
                check_no_ties(x, e, "p(K | data)")
        except DataError as exc:
            why = str(exc)
    if why:
        warnings.warn(f"--k auto: p(K | data) was not computed, so LOO chooses: {why}. "
                      "bayesgmm select FILE --criterion posterior computes it on request.",
                      SamplingWarning, stacklevel=2)
        return None
    ks = list(range(1, min(K_AUTO_MAX, max(cands) + POSTERIOR_K_BEYOND, x.shape[0]) + 1))
    _say(f"K auto: p(K | data) over K = 1..{ks[-1]} (importance sampling; its proposal "
         + ("from tempered SMC" if md else
            "from tempered SMC, or from NUTS beyond 1,000 points x K") + ") ...")
    return posterior_k(x, ks, X_err=e, random_seed=seed)


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

    md = isinstance(column, list)  # D dims: the data and error columns are lists
    dt.attrs["data_column"] = ", ".join(column) if md else column
    dt.attrs["error_column"] = (", ".join(errors) if md else errors) or ""
    options = None
    if args is not None:
        names = ({"columns": column, "errors": errors or [], **pair_options(args)}
                 if md else {"column": column, "errors": errors or ""})
        options = {"file": str(getattr(args, "file", "") or ""), **names,
                   "k": str(getattr(args, "k", "")),
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


def _print_verdict(out: Path, diagnosis: Any) -> None:
    # the verdict says itself whether to trust the numbers; the status is in --help
    _say(f"verdict: {diagnosis.verdict}")
    files = ", ".join(p.name for p in sorted(out.iterdir()))
    _say(f"wrote {out}/ ({files})")
    if (out / "report.html").exists():
        _say(f"report: {(out / 'report.html').resolve()}")


def _print_json(out: Path, dt: Any, diagnosis: Any, choice: dict[str, Any], notes: list[str],
                status: int, column: str | list[str],
                errors: str | list[str] | None) -> None:
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
        # 1-D: the column's name; D dims: null, the names are in data_columns
        "data_column": None if isinstance(column, list) else column,
        "error_column": None if isinstance(column, list) else errors,
        "data_columns": column if isinstance(column, list) else [column],
        "error_columns": (errors or []) if isinstance(column, list) else [errors] * bool(errors),
        "files": {p.name: str(p.resolve()) for p in sorted(out.iterdir())},
        "summary": summary,
        "warnings": notes,
    }
    print(json.dumps(doc, indent=2, default=plain))


def _report(args: argparse.Namespace) -> int:
    src = Path(args.posterior)
    dt = load_posterior(src)
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


def load_posterior(src: Path) -> Any:
    """A ``posterior.nc`` written by ``bayesgmm fit``, read whole; DataError otherwise."""
    import xarray as xr

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
    return dt
