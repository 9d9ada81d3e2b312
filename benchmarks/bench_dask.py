"""EM out of core on Dask: throughput per pass against two ceilings, and peak memory.

Issue 16's targets: 1e9 1-D points (8 GB on disk, Zarr, written here) with K = 3 fitted
with peak memory under 2 GB, at a throughput per pass (points per second) of at least
half the lower of two ceilings measured in the same run:

- compute: the in-memory numba pass (``Stepper.sums``, parallel kernels) on 1e7 points
  already in memory;
- disk: reading the same Zarr blocks through the same Dask scheduler, computing nothing.

and the same for XD with per-point errors at 1e8 (``--n-xd``). Each case's data are
written once into ``--dir`` (kept for reruns unless ``--clean``); the fit is
``GaussianMixtureEM(3, random_seed=0).fit(X)`` on ``dask.array.from_zarr``, its passes
timed one by one. Peak memory is the process's maximum resident set size.

    python benchmarks/bench_dask.py [--n 1e9] [--n-xd 1e8] [--chunk 1e7] [--dir DIR]

Needs ``pip install 'bayesgmm[dask]' zarr``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def peak_gb() -> float:
    """The process's peak resident memory so far, GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def write(path: Path, n: int, chunk: int, errors: bool, seed: int = 0) -> None:
    """K = 3 1-D mixture (weights 0.5, 0.3, 0.2), chunk by chunk into Zarr (no compression)."""
    import zarr

    if (path / "done").exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    kw = {"shape": (n,), "chunks": (chunk,), "dtype": "f8", "compressors": None}
    x = zarr.create_array(str(path / "x"), **kw)
    e = zarr.create_array(str(path / "e"), **kw) if errors else None
    rng = np.random.default_rng(seed)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        lab = rng.choice(3, size=m, p=[0.5, 0.3, 0.2])
        v = np.array([0.0, 4.0, 9.0])[lab] + rng.normal(0, 1, m) * np.array([1.0, 1.0, 2.0])[lab]
        if errors:
            err = rng.uniform(0.2, 1.0, m)
            e[lo:lo + m] = err
            v = v + rng.normal(0, 1, m) * err
        x[lo:lo + m] = v
    (path / "done").write_text("")


def _nothing(xb, wb, eb):
    """A block read and dropped: the disk ceiling's task."""
    return 0.0


def ceilings(X, E, n_mem: int) -> dict:
    """Points per second of the in-memory pass on ``n_mem`` points and of reading X (E)."""
    import dask.array as da

    from bayesgmm.em.iteration import Params, Stepper
    from bayesgmm.em.out_of_core import map_rows

    x = X[:n_mem].compute()
    e2 = None if E is None else E[:n_mem].compute()
    z = (x - x.mean()) / x.std()
    Sz = None if e2 is None else (e2 / x.std()) ** 2
    st = Stepper(z[:, None], np.ones(n_mem), None if Sz is None else Sz[:, None, None],
                 "full", 1e-6)
    p = Params(np.array([0.5, 0.3, 0.2]), np.array([[-0.8], [0.3], [1.6]]),
               np.full((3, 1, 1), 0.2))
    st.sums(p)  # compiled already; one warm pass
    reps, t0 = 5, time.perf_counter()
    for _ in range(reps):
        st.sums(p)
    compute = n_mem * reps / (time.perf_counter() - t0)
    del x, z, st
    w = da.ones(X.shape[0], chunks=X.chunks)
    t0 = time.perf_counter()
    map_rows(_nothing, X, w, E)
    disk = X.shape[0] / (time.perf_counter() - t0)
    return {"compute_pts_per_s": compute, "disk_pts_per_s": disk,
            "disk_gb_per_s": disk * 8 * (1 if E is None else 2) / 1e9}


def fit_case(path: Path, errors: bool, n_mem: int) -> dict:
    import dask.array as da

    from bayesgmm import GaussianMixtureEM
    from bayesgmm.em import out_of_core

    X = da.from_zarr(str(path / "x"))
    E = da.from_zarr(str(path / "e")) if errors else None
    ceil = ceilings(X, E, n_mem)
    passes = []
    original = out_of_core.DaskStepper.sums

    def timed(self, p):
        t0 = time.perf_counter()
        out = original(self, p)
        passes.append(time.perf_counter() - t0)
        return out

    out_of_core.DaskStepper.sums = timed
    try:
        t0 = time.perf_counter()
        gm = GaussianMixtureEM(3, random_seed=0).fit(X, X_err=E)
        total = time.perf_counter() - t0
    finally:
        out_of_core.DaskStepper.sums = original
    per_pass = float(np.median(passes))
    rate = X.shape[0] / per_pass
    low = min(ceil["compute_pts_per_s"], ceil["disk_pts_per_s"])
    return {"n": int(X.shape[0]), "errors": errors, "fit_s": total, "n_passes": len(passes),
            "pass_s_median": per_pass, "pass_s_min": float(min(passes)),
            "pts_per_s": rate, **ceil, "ratio_to_lower_ceiling": rate / low,
            "target_ratio": 0.5, "peak_gb": peak_gb(), "target_peak_gb": 2.0,
            "converged": bool(gm.converged_), "loglik": gm.loglik_,
            "means": gm.means_.ravel().tolist(), "weights": gm.weights_.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e9, help="1-D points (default 1e9)")
    parser.add_argument("--n-xd", type=float, default=1e8,
                        help="1-D points with errors (default 1e8; 0 skips)")
    parser.add_argument("--chunk", type=float, default=1e7, help="rows per block (1e7)")
    parser.add_argument("--n-mem", type=float, default=1e7,
                        help="points of the in-memory ceiling (default 1e7)")
    parser.add_argument("--dir", type=Path, default=RESULTS / "dask_data",
                        help="where the Zarr data are written (default results/dask_data)")
    parser.add_argument("--clean", action="store_true", help="delete the data afterwards")
    args = parser.parse_args()
    chunk, n_mem = int(args.chunk), int(args.n_mem)
    report = {}
    cases = [("plain", int(args.n), False), ("xd", int(args.n_xd), True)]
    for name, n, errors in cases:
        if n <= 0:
            continue
        path = args.dir / f"{name}_{n:.0e}"
        t0 = time.perf_counter()
        write(path, n, chunk, errors)
        print(f"{name}: data ready in {time.perf_counter() - t0:.0f} s ({path})", flush=True)
        res = fit_case(path, errors, min(n_mem, n))
        report[name] = res
        verdict = "met" if res["ratio_to_lower_ceiling"] >= 0.5 else "not met"
        print(f"{name}: n = {n:.0e}, {res['n_passes']} passes, median "
              f"{res['pass_s_median']:.2f} s/pass = {res['pts_per_s']:.3g} points/s; "
              f"ceilings: compute {res['compute_pts_per_s']:.3g}/s, disk "
              f"{res['disk_pts_per_s']:.3g}/s ({res['disk_gb_per_s']:.2f} GB/s); ratio to the "
              f"lower {res['ratio_to_lower_ceiling']:.2f} (target >= 0.5: {verdict}); peak "
              f"memory {res['peak_gb']:.2f} GB (target < 2); fit {res['fit_s']:.0f} s, "
              f"converged {res['converged']}", flush=True)
        if args.clean:
            shutil.rmtree(path, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_dask.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
