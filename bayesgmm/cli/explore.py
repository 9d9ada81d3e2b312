"""``bayesgmm explore``: the likelihood explorer of one column, as an offline HTML page.

Reads the column (and its errors), fits EM for the page's "EM maximum" (K given, or
chosen by BIC over 1..8 with ``--k auto``), takes posterior draws from a ``posterior.nc``
when one is given, and writes the page with :func:`bayesgmm.explorer.write_explorer`.
FILE may also be a ``posterior.nc`` itself: its data, errors, EM estimate and draws.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

#: ``--k auto`` ranks K = 1..K_AUTO_MAX by BIC, as ``bayesgmm fit --k auto`` does
K_AUTO_MAX = 8


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Write the page; return ``main``'s result dict (``_text``, ``_status``)."""
    from ..em import GaussianMixtureEM
    from ..explorer import write_explorer
    from ..io import load_table
    from .data import _pick_column

    out = Path(args.out)
    if not out.parent.is_dir():
        raise DataError(f"--out {str(out)!r}: the directory {str(out.parent)!r} does not "
                        "exist; create it first.")
    if out.is_dir():
        raise DataError(f"--out {str(out)!r} is a directory; give the page's file name.")
    if Path(args.file).suffix.lower() == ".nc":  # a fit's posterior.nc brings everything
        return _from_posterior(args, out)
    df = load_table(args.file, sep=args.sep)
    x, e, column = _pick_column(df, args.column, args.errors, repr(args.file))
    dt = None
    if args.posterior:
        from .fit import load_posterior

        dt = load_posterior(Path(args.posterior))
        _check_same_data(dt, x, args.posterior)
    k, how = _choose_k(args, x, e, dt)
    gm = GaussianMixtureEM(k, random_seed=args.seed).fit(x, X_err=e)
    path = write_explorer(x, out, gm, X_err=e, posterior=dt,
                          title=f"bayesgmm likelihood explorer: {column}, K = {k}")
    ok = bool(gm.converged_) and not gm.degenerate_
    lines = [
        f"explorer of {column!r} ({x.size} rows"
        + (f", errors {args.errors!r}" if args.errors else "") + f"), K = {k} ({how})",
        f"EM maximum: log-likelihood {gm.loglik_:.6f}"
        + ("" if ok else (" (degenerate: a component collapsed)" if gm.degenerate_
                          else " (NOT converged: the 'EM maximum' button is not a maximum)")),
        "posterior draws: " + (f"from {args.posterior}" if dt is not None
                               else "none (pass --posterior POSTERIOR.nc to add them)"),
        f"page: {path}",
    ]
    return {"_text": "\n".join(lines), "_status": 0 if ok else 3, "page": str(path),
            "n_components": k, "k_reason": how, "loglik": float(gm.loglik_),
            "converged": bool(gm.converged_), "degenerate": bool(gm.degenerate_)}


def _from_posterior(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from ..explorer import write_explorer
    from .fit import load_posterior

    given = [o for o, v in (("--column", args.column), ("--errors", args.errors),
                            ("--posterior", args.posterior), ("--sep", args.sep))
             if v is not None] + (["--k"] if args.k != "auto" else [])
    if given:
        raise DataError(f"{args.file} is a posterior.nc: it brings its data, errors, K and "
                        f"EM estimate; drop {', '.join(given)}.")
    dt = load_posterior(Path(args.file))
    path = write_explorer(dt, out)
    em = dt["em_estimate"]
    ok = bool(em.attrs.get("converged", 1)) and not bool(em.attrs.get("degenerate", 0))
    k = int(dt["posterior"].sizes["component"])
    text = (f"explorer of {args.file} (K = {k}, its EM estimate and posterior draws)\n"
            f"page: {path}")
    return {"_text": text, "_status": 0 if ok else 3, "page": str(path), "n_components": k,
            "k_reason": "the posterior's", "converged": bool(em.attrs.get("converged", 1)),
            "degenerate": bool(em.attrs.get("degenerate", 0))}


def _choose_k(args: argparse.Namespace, x: np.ndarray, e: np.ndarray | None,
              dt: Any) -> tuple[int, str]:
    if dt is not None:
        k = int(dt["posterior"].sizes["component"])
        if args.k not in ("auto", str(k)):
            raise DataError(f"--k {args.k} but {args.posterior} has {k} components; "
                            "drop --k or pass a posterior with that K.")
        return k, "the posterior's"
    if args.k != "auto":
        try:
            k = int(args.k)
        except ValueError:
            k = 0
        if k < 1:
            raise DataError(f"--k must be a positive integer or 'auto'; got {args.k!r}.")
        if k > x.size:
            raise DataError(f"--k {k} exceeds the number of rows ({x.size}); use a smaller K.")
        return k, "--k"
    from ..selection import select_n_components

    ks = range(1, min(K_AUTO_MAX, x.size) + 1)
    sel = select_n_components(x, ks, X_err=e, criterion="bic", random_seed=args.seed or 0)
    return int(sel.best_k), f"BIC over K = 1..{ks[-1]}"


def _check_same_data(dt: Any, x: np.ndarray, name: str) -> None:
    if "component" not in dt["posterior"].dims or dt["posterior"]["means"].ndim != 3:
        raise DataError(f"{name} is a fit of several columns; the explorer shows one.")
    obs = dt["observed_data"]
    seen = np.asarray(obs[next(iter(obs.data_vars))].values, dtype=float)
    if seen.shape != x.shape or not np.allclose(seen, x, rtol=1e-12, atol=0):
        raise DataError(f"{name} was fitted to other data ({seen.size} values) than this "
                        f"column ({x.size}); pass the table and column it was fitted to.")
