"""Command line: argument parsing and printing only; the maths lives elsewhere.

Every error a user can cause ends with exit status 2 and one line on stderr. Over 400
lines because the parser is one piece: every subcommand's options, their help with
defaults and the exit-status epilogue are declared here together, so ``--help`` and the
README's usage can be checked against one place; the commands' work is in ``fit.py``
and ``output.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..errors import DataError

EXIT_USAGE = 2
#: ``bayesgmm fit``/``demo``: the result was written, but its checks failed
EXIT_NOT_TRUSTWORTHY = 3

_EXIT_STATUS_EPILOG = """\
exit status:
  0  success (fit, demo: every check passed, the result can be trusted)
  1  sampling failed (fit, demo: only the EM estimate is saved) or an internal error
  2  bad input or usage: one line on stderr says what was wrong and what to do
  3  fit, demo: the result was written but failed a check (the verdict says which
     and what to try); do not use its numbers yet. select --criterion posterior: some
     K's evidence could not be checked by importance sampling (the warning says which).
     explore: the page was written, but EM did not converge or a component collapsed
  130 interrupted (Ctrl-C); nothing half-written is left
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds ``(default: ...)`` to each option's help, unless it states its default itself.

    Unlike ``ArgumentDefaultsHelpFormatter`` it says nothing for a required option or a
    flag, and a default of None must be explained in the help text instead.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.required or not action.option_strings
                or action.default in (None, False, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def _paragraphs(*texts: str) -> str:
    import textwrap

    return "\n\n".join(textwrap.fill(t, 79) for t in texts)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _probability(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return v


def _separator(text: str) -> str:
    names = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " "}
    sep = names.get(text, text)
    if len(sep) != 1:
        raise argparse.ArgumentTypeError(
            f"expected one character (or tab, comma, semicolon, space), got {text!r}")
    return sep


def _table_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="CSV (or .tsv, .txt) or Parquet table")
    p.add_argument("--sep", type=_separator, default=None, metavar="S",
                   help="column separator of a text file: one character, or tab, comma, "
                        "semicolon, space (default: guessed from the header line among "
                        "comma, semicolon, tab and |; a semicolon file with decimal "
                        "commas is read as such)")


def _chunk_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chunk-size", type=_positive_int, default=None, metavar="ROWS",
                   help="rows per block read at a time, out of core, when FILE is a "
                        "directory of Parquet (or CSV) files, a glob (quoted), or one CSV "
                        "file, which is then read out of core too (default: the Parquet "
                        "files' row groups, or 1,000,000 CSV rows)")


def _data_options(p: argparse.ArgumentParser, seed_help: str) -> None:
    _table_options(p)
    p.add_argument("--columns", nargs="+", metavar="C",
                   help="data columns (default: every numeric column not named in --errors)")
    p.add_argument("--errors", nargs="+", metavar="COL",
                   help="measurement-error columns (standard deviations): one per data "
                        "column, or one for all (default: none, exact values)")
    p.add_argument("--covariance", choices=("full", "tied", "diag", "spherical"),
                   default="full",
                   help="component covariance form (tied: one shared by all components)")
    p.add_argument("--n-init", type=_positive_int, default=5, metavar="N",
                   help="EM starts")
    p.add_argument("--seed", type=int, default=None, metavar="S", help=seed_help)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        With the sub-commands ``em``, ``select``, ``fit``, ``report``, ``explore``,
        ``precompile`` and ``demo``.
    """
    from .. import __version__

    parser = _Parser(
        prog="bayesgmm",
        description="Gaussian mixtures with measurement errors: EM and Bayesian fits.",
        epilog=_EXIT_STATUS_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"bayesgmm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    em = sub.add_parser("em", help="maximum-likelihood fit by EM",
                        description="Maximum-likelihood fit by EM (extreme deconvolution "
                                    "with --errors).", epilog=_EXIT_STATUS_EPILOG)
    _data_options(em, "random seed of EM's starts (default: none, fresh starts each "
                  "run; with n_init starts the maximum found is usually the same)")
    em.add_argument("--k", type=_positive_int, required=True, metavar="K",
                    help="number of components")
    _chunk_option(em)

    sel = sub.add_parser("select", help="choose the number of components by BIC, AIC or "
                         "the posterior p(K | data)",
                         description="EM fits for K = 1..KMAX, ranked by BIC or AIC; "
                         "with --criterion posterior, also each K's "
                         "marginal likelihood and p(K | data) under fit's priors and a "
                         "uniform prior on K (SMC corrected by importance sampling; "
                         "seconds to minutes per K).",
                         epilog=_EXIT_STATUS_EPILOG)
    _data_options(sel, "random seed of EM's starts (default: none, a fixed seed: the "
                  "same data give the same answer)")
    sel.add_argument("--k-max", type=_positive_int, required=True, metavar="KMAX",
                     help="try K = 1..KMAX")
    _chunk_option(sel)
    sel.add_argument("--criterion", choices=("bic", "aic", "posterior"), default="bic",
                     help="information criterion, or posterior: p(K | data) (default: bic)")
    sel.add_argument("--priors", choices=("fit", "richardson_green"), default="fit",
                     help="with --criterion posterior: fit's default priors, or Richardson "
                          "& Green's (1997) with their data-based choices, to compare with "
                          "the literature; one column (default: fit)")

    fit = sub.add_parser(
        "fit", help="Bayesian fit: posterior, summary and report in --out",
        description=_paragraphs(
                    "Bayesian fit of a mixture, 1-D (--column) or D-dimensional "
                    "(--columns A B ..., full covariances): writes DIR/posterior.nc, "
                    "DIR/summary.csv and DIR/report.html, and prints a verdict.",
                    "Measurement errors in D dimensions: --errors gives each column's "
                    "standard deviations (one column per data column, or one for all); "
                    "--error-corr A:B=R adds the correlation of A's and B's errors from "
                    "column R (catalogues give e.g. pmra_pmdec_corr), --error-cov A:B=C "
                    "their covariance; together they make each row's full error "
                    "covariance matrix. A correlation outside [-1, 1] or a matrix that is "
                    "not positive semi-definite is refused.",
                    "--k auto: EM fits for K = 1..8 are ranked by BIC; the two leading K "
                    "are fitted and compared by PSIS-LOO. The posterior probability "
                    "p(K | data) over K = 1 to the larger candidate + 2 decides, its K "
                    "fitted too, where it is computed: up to 1,000 points in 1-D and "
                    "500 in D dims, and values that repeat exactly (rounded data) only "
                    "with --errors. Elsewhere LOO decides: "
                    "the smallest K whose LOO elpd "
                    "is within 2 standard errors of the best is kept. A candidate whose "
                    "first sampling run shows it is not identified (R-hat over 1.1, "
                    "chains in different modes, an empty component, or steps so small "
                    "that each draw takes over 100 gradient evaluations) is stopped "
                    "there, without the second run (only without --target-accept, which "
                    "asks for one run anyway), and cannot win while an unflagged "
                    "candidate is left. A "
                    "candidate whose LOO is unreliable (some Pareto k above ArviZ's "
                    "threshold, or p_loo over twice its parameter count: 3K - 1 in "
                    "1-D, K - 1 + KD + KD(D + 1)/2 in D dims) is named "
                    "in a warning and chosen only if no reliable candidate is left."),
        epilog=_EXIT_STATUS_EPILOG)
    _table_options(fit)
    _fit_options(fit)
    fit.add_argument("--k", required=True, metavar="K|auto",
                     help="number of components, or 'auto' (BIC from EM over 1..8, then "
                          "p(K | data), or LOO between the two leading candidates)")
    which = fit.add_mutually_exclusive_group()
    which.add_argument("--column", metavar="C", help="data column of a 1-D fit (default: the "
                       "only numeric column besides --errors)")
    which.add_argument("--columns", nargs="+", metavar="C",
                       help="data columns of a D-dimensional fit (full covariances); one "
                            "name is a 1-D fit, as --column. An empty cell is a missing "
                            "value, marginalised (a row needs one observed column) "
                            "(default: a 1-D fit, see --column)")
    fit.add_argument("--errors", nargs="+", metavar="COL",
                     help="measurement-error columns, standard deviations: one per data "
                          "column, or one for all (default: none, exact values)")
    fit.add_argument("--error-corr", nargs="+", action="extend", type=_error_pair,
                     metavar="A:B=R",
                     help="correlation of the errors of data columns A and B: R is the "
                          "column holding it per row (e.g. pmra:pmdec=pmra_pmdec_corr), or "
                          "one number for every row; needs --errors; repeat for more pairs "
                          "(default: uncorrelated errors)")
    fit.add_argument("--error-cov", nargs="+", action="extend", type=_error_pair,
                     metavar="A:B=C",
                     help="covariance of the errors of A and B (squared data units), as "
                          "--error-corr; with --errors for the variances this gives full "
                          "per-row error covariance matrices (default: none)")
    fit.add_argument("--out", required=True, metavar="DIR",
                     help="output directory; its parent must exist")
    fit.add_argument("--json", action="store_true",
                     help="print one JSON object on stdout (verdict, ok, exit status, K "
                          "and why, files written, parameter summary, warnings); "
                          "progress goes to stderr")

    rep = sub.add_parser("report", help="rebuild the HTML report from a saved posterior",
                         epilog=_EXIT_STATUS_EPILOG)
    rep.add_argument("posterior", metavar="POSTERIOR.nc",
                     help="a posterior.nc written by 'bayesgmm fit'")
    rep.add_argument("--out", metavar="FILE",
                     help="output file (default: report.html beside the input)")

    exp = sub.add_parser(
        "explore", help="the likelihood explorer: one column's mixture, live in a browser",
        description=_paragraphs(
            "Writes one offline HTML page (inline script, no network) for one column: a "
            "slider per parameter of K components (weights, means, widths), the density "
            "over the data's histogram, the log-likelihood (measurement errors included "
            "with --errors) and the best value seen, and buttons for one EM step, one "
            "gradient-ascent step, the EM maximum, a posterior draw (with --posterior) "
            "and reset. FILE may be a posterior.nc written by 'bayesgmm fit' (1-D): its "
            "data, errors, EM estimate and draws, no other option. Exit status 3 when EM "
            "did not converge or collapsed."),
        epilog=_EXIT_STATUS_EPILOG)
    _table_options(exp)
    exp.add_argument("--column", metavar="C", help="data column (default: the only numeric "
                     "column besides --errors)")
    exp.add_argument("--errors", metavar="E", help="measurement-error column, standard "
                     "deviations (default: none, exact values)")
    exp.add_argument("--k", default="auto", metavar="K|auto",
                     help="number of components, or auto: BIC over EM fits for K = 1..8")
    exp.add_argument("--posterior", metavar="POSTERIOR.nc",
                     help="a posterior.nc written by 'bayesgmm fit' on the same column: "
                          "its draws for the posterior-draw button, its K (default: none)")
    exp.add_argument("--seed", type=int, default=None, metavar="S",
                     help="random seed of EM's starts (default: none)")
    exp.add_argument("--out", required=True, metavar="FILE", help="the page to write")
    exp.add_argument("--json", action="store_true", help="print one JSON object")

    pre = sub.add_parser(
        "precompile", help="compile the numba kernels now, so the first fit need not",
        description=_paragraphs(
            "Runs EM, the Bayesian samplers' log-densities and SMC once on a few points, "
            "which compiles their numba kernels and caches them on disk (in the package's "
            "__pycache__, or NUMBA_CACHE_DIR when set). A first fit on a new machine "
            "otherwise spends tens of seconds compiling. The cache is keyed to this "
            "machine's CPU: run it once per machine, after installing or upgrading "
            "bayesgmm ('make' runs it for you)."),
        epilog=_EXIT_STATUS_EPILOG)
    pre.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                     help="processes at once (default: one per CPU, at most 3)")
    pre.add_argument("--json", action="store_true", help="print one JSON object")

    demo = sub.add_parser("demo", help="the whole job on bundled data with measurement errors",
                          epilog=_EXIT_STATUS_EPILOG)
    _fit_options(demo)
    demo.add_argument("--out", default="bayesgmm-demo", metavar="DIR",
                      help="output directory")
    demo.add_argument("--json", action="store_true",
                      help="print one JSON object on stdout, as 'fit --json'")
    return parser


def _fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draws", type=_positive_int, default=1000, metavar="D",
                   help="kept draws per chain")
    p.add_argument("--tune", type=_positive_int, default=1000, metavar="T",
                   help="tuning steps per chain")
    p.add_argument("--chains", type=_positive_int, default=4, metavar="C",
                   help="number of chains")
    p.add_argument("--sampler", choices=("nutpie", "pymc", "numpyro", "smc"),
                   default="nutpie",
                   help="nutpie or PyMC's NUTS from the EM estimate; numpyro: NumPyro's "
                        "NUTS in JAX, on a GPU when JAX sees one (bayesgmm[jax]); smc: "
                        "tempered SMC from the prior, importance-weighted, for posteriors "
                        "with several modes (needs measurement errors on rounded data) "
                        "(default: nutpie)")
    p.add_argument("--target-accept", type=_probability, default=None, metavar="A",
                   help="NUTS target acceptance (default: 0.8, and a second run with "
                        "twice the tuning if that one fails a check: at 0.99 after "
                        "divergences, at 0.8 after R-hat > 1.01 or ESS < 10%% of draws)")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="random seed (default: none, a different run each time)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--no-loglik", action="store_true",
                   help="do not store the pointwise log-likelihood (about half of "
                        "posterior.nc); LOO then cannot be computed from the file")
    p.add_argument("--thin-ppc", type=_nonneg_int, default=None, metavar="N",
                   help="keep N posterior predictive draws per chain, evenly spaced (0: "
                        "none, and the predictive checks are skipped) (default: every "
                        "draw, up to 10 million values in all)")


def _error_pair(text: str) -> tuple[str, str, str]:
    """``A:B=R`` of ``--error-corr``/``--error-cov``: two data columns and a column (or number)."""
    left, eq, value = text.partition("=")
    a, colon, b = left.partition(":")
    if not (eq and colon and a and b and value):
        raise argparse.ArgumentTypeError(
            f"expected A:B=R (two data columns, and the column or number holding their "
            f"errors' correlation or covariance), got {text!r}")
    return a, b, value


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        As ``bayesgmm --help`` lists them: 0 success; 1 sampling failed (only the EM
        estimate is saved) or an internal error; 2 bad input or usage (one line on
        stderr); 3 a result was written but failed a check; 130 interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.command in ("fit", "demo", "report"):
                from . import fit as cli_fit

                return cli_fit.run(args)
            if args.command == "precompile":
                from . import precompile

                out = precompile.report(precompile.run(args.workers))
            elif args.command == "explore":
                from . import explore

                out = explore.run(args)
            elif args.command == "em":
                out = _cmd_em(args)
            else:
                out = _cmd_select(args)
        notes = [str(w.message) for w in caught if _ours(w)]
        status = out.pop("_status", 0)
        if args.json:
            out["warnings"] = notes
            print(json.dumps(out, indent=2))
        else:
            print(out.pop("_text"))
            for note in notes:
                print(f"warning: {note}", file=sys.stderr)
        return status
    except DataError as exc:
        print(f"bayesgmm: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into e.g. head
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("bayesgmm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error, not the user's: still no traceback
        if os.environ.get("BAYESGMM_DEBUG"):
            raise
        print(f"bayesgmm: internal error: {type(exc).__name__}: {exc} "
              "(set BAYESGMM_DEBUG=1 for a traceback, and please report it)", file=sys.stderr)
        return 1


def _ours(w: warnings.WarningMessage) -> bool:
    from ..errors import ConvergenceWarning, SamplingWarning, SelectionWarning

    return issubclass(w.category, ConvergenceWarning | SamplingWarning | SelectionWarning)


def _load(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """The data of ``em`` and ``select``; empty cells are missing values.

    EM marginalises them; a row needs one observed data column.
    """
    from ..io import is_dataset, load_dataset, load_table, table_columns

    chunked = getattr(args, "chunk_size", None) and Path(args.file).suffix.lower() in (
        ".csv", ".tsv", ".txt")
    if is_dataset(args.file) or chunked:  # read out of core, as Dask arrays
        return load_dataset(args.file, args.columns, args.errors,
                            chunk_size=getattr(args, "chunk_size", None))
    df = load_table(args.file, sep=args.sep)
    return table_columns(df, args.columns, args.errors, source=repr(args.file),
                         allow_missing=True)


def _cmd_em(args: argparse.Namespace) -> dict[str, Any]:
    from ..em import GaussianMixtureEM

    X, X_err, names = _load(args)
    if args.k > X.shape[0]:
        raise DataError(
            f"--k {args.k} exceeds the number of rows ({X.shape[0]}); use a smaller K."
        )
    from ..em.out_of_core import is_dask

    lazy = is_dask(X)
    with _passes_shown(lazy):
        gm = GaussianMixtureEM(
            args.k, covariance_type=args.covariance, n_init=args.n_init,
            random_seed=args.seed).fit(X, X_err=X_err)
    bic, aic = gm._fit_criteria() if lazy else (gm.bic(X, X_err=X_err),
                                                gm.aic(X, X_err=X_err))
    order = np.argsort(gm.means_[:, 0], kind="stable")
    weights = gm.weights_[order]
    means = gm.means_[order]
    covs = gm.covariances_[order]
    out: dict[str, Any] = {
        "n_components": int(args.k),
        "weights": weights.tolist(),
        "means": means.tolist(),
        "covariances": covs.tolist(),
        "loglik": gm.loglik_,
        "bic": bic,
        "aic": aic,
        "n_iter": int(gm.n_iter_),
        "converged": bool(gm.converged_),
        "degenerate": bool(gm.degenerate_),
        "n_samples": int(X.shape[0]),
        # out of core, the standardization's pass counted them
        "n_missing": int(getattr(gm, "_n_missing", 0)) if lazy else int(np.isnan(X).sum()),
        "columns": names,
        "error_columns": list(args.errors or []),
        "covariance_type": args.covariance,
    }
    lines = [
        f"EM fit of {args.k} component(s) to {X.shape[0]} rows of {', '.join(names)}"
        + (f" with errors {', '.join(args.errors)}" if args.errors else ""),
        "",
    ]
    if out["n_missing"]:
        lines[1:1] = [f"{out['n_missing']} missing cell(s) marginalised (each row's "
                      "likelihood uses its observed columns)"]
    if X.shape[1] == 1:
        lines.append(f"{'component':>9}  {'weight':>8}  {'mean':>12}  {'sigma':>12}")
        for j in range(args.k):
            lines.append(f"{j:>9}  {weights[j]:>8.4f}  {means[j, 0]:>12.6g}  "
                         f"{np.sqrt(covs[j, 0, 0]):>12.6g}")
    else:
        for j in range(args.k):
            lines.append(f"component {j}: weight {weights[j]:.4f}")
            lines.append(f"  mean  {np.array2string(means[j], precision=5)}")
            lines.append(f"  sd    {np.array2string(np.sqrt(np.diag(covs[j])), precision=5)}")
    lines += [
        "",
        f"log-likelihood {out['loglik']:.6f}   BIC {out['bic']:.3f}   AIC {out['aic']:.3f}",
        f"{out['n_iter']} iterations, "
        + ("converged" if out["converged"] else "NOT converged")
        + (" (degenerate: a component collapsed)" if out["degenerate"] else ""),
    ]
    if args.errors:
        lines.append("sigmas are intrinsic widths: the measurement errors are deconvolved")
    out["_text"] = "\n".join(lines)
    if args.json:
        out.pop("_text")
    return out


def _passes_shown(lazy: bool) -> Any:
    """Out of core, one line on stderr per pass over the data (a progress report)."""
    import contextlib

    if not lazy:
        return contextlib.nullcontext()
    from ..em.out_of_core import progress

    def show(i: int, loglik: float, seconds: float) -> None:
        print(f"pass {i}: log-likelihood {loglik:.10g} (standardized units), "
              f"{seconds:.1f} s", file=sys.stderr, flush=True)

    return progress(show)


def _cmd_select(args: argparse.Namespace) -> dict[str, Any]:
    from ..em.out_of_core import is_dask
    from ..selection import select_n_components

    X, X_err, names = _load(args)
    if is_dask(X) and args.criterion == "posterior":
        raise DataError("--criterion posterior needs the data in memory; a dataset read "
                        "out of core takes --criterion bic or aic.")
    k_max = min(args.k_max, X.shape[0])
    posterior = args.criterion == "posterior"
    if args.priors != "fit" and not posterior:
        raise DataError(f"--priors {args.priors} is a prior for p(K | data): add "
                        "--criterion posterior, or leave --priors out.")
    if args.priors == "richardson_green" and X.shape[1] != 1:
        raise DataError("--priors richardson_green is Richardson & Green's 1-D prior; "
                        f"the data have {X.shape[1]} columns: pass one --column.")
    with _passes_shown(is_dask(X)):
        res = select_n_components(
            X, range(1, k_max + 1), X_err=X_err,
            criterion="bic" if posterior else args.criterion,
            covariance_type=args.covariance, n_init=args.n_init, random_seed=args.seed,
        )
    table = [
        {"k": int(r.k), "loglik": float(r.loglik), "bic": float(r.bic), "aic": float(r.aic),
         "converged": bool(r.converged), "degenerate": bool(r.degenerate)}
        for r in res.table.itertuples()
    ]
    best = res.best_k
    out: dict[str, Any] = {"criterion": args.criterion, "n_samples": int(X.shape[0]),
                           "columns": names}
    if posterior:
        from ..bayes.posterior_k import evidence_checked, posterior_k

        # one column: its error sds, however _load laid them out ((n,), (n, 1) sds or
        # (n, 1, 1) covariances); several: the D-dim model, errors as _load gives them
        err = None if X_err is None else np.asarray(X_err, float)
        if err is not None and X.shape[1] == 1:
            err = np.sqrt(err[:, 0, 0]) if err.ndim == 3 else err.reshape(err.shape[0], -1)[:, 0]
        pk = posterior_k(X[:, 0] if X.shape[1] == 1 else X, ks=range(1, k_max + 1),
                         X_err=err, random_seed=0 if args.seed is None else args.seed,
                         priors=None if args.priors == "fit" else args.priors)
        for row, k in zip(table, pk.ks, strict=True):
            i = int(np.flatnonzero(pk.ks == k)[0])
            row.update({"p_k": float(pk.probabilities[i]),
                        "p_k_sd": float(pk.probabilities_sd[i]),
                        "log_evidence": float(pk.log_evidence[i]),
                        "log_evidence_se": float(pk.log_evidence_se[i]),
                        "evidence_method": pk.method[i]})
        out["priors"] = args.priors
        out["best_k_bic"] = best
        best = pk.best
        if not pk.reliable.all():  # some evidence without its importance-sampling check
            out["_status"] = EXIT_NOT_TRUSTWORTHY
    out["best_k"] = best
    out["table"] = table
    if not args.json:
        head = f"{'k':>3}  {'loglik':>14}  {'BIC':>12}  {'AIC':>12}"
        if posterior:
            head += f"  {'log evidence':>14}  {'p(K | data)':>16}"
        lines = [head + "  note"]
        for r in table:
            note = "degenerate" if r["degenerate"] else ("" if r["converged"] else "not converged")
            if posterior and not evidence_checked(r["evidence_method"]):
                note = (note + ", " if note else "") + (
                    "evidence by SMC alone" if r["evidence_method"] == "smc" else
                    "evidence failed its importance check")
            mark = " <- best" if r["k"] == best else ""
            line = f"{r['k']:>3}  {r['loglik']:>14.4f}  {r['bic']:>12.3f}  {r['aic']:>12.3f}"
            if posterior:
                line += (f"  {r['log_evidence']:>14.3f}  "
                         f"{r['p_k']:>8.3f} +- {r['p_k_sd']:.3f}")
            lines.append(f"{line}  {note}{mark}")
        if posterior:
            i = best - 1
            lines.append(f"\np(K = {best} | data) = {table[i]['p_k']:.3f}, the highest "
                         f"(uniform prior on K = 1..{k_max}"
                         + ("; Richardson & Green's priors" if args.priors != "fit" else "")
                         + f"); BIC's choice: "
                         f"{out['best_k_bic']} (data columns: {', '.join(names)})")
        else:
            lines.append(f"\nbest K by {args.criterion.upper()}: {best} (data columns: "
                         f"{', '.join(names)})")
        out["_text"] = "\n".join(lines)
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
