"""The first call on a fresh machine: cold numba cache against a warm one.

Issue 16's targets: the first ``GaussianMixtureEM.fit`` (1-D, 1e6 points, K = 3) within
3 s of a warm call, and the first ``bayesgmm fit`` on seed 001's 1,000 points within 5 s
of a warm one, import included in both. Each run is a fresh process; "cold" runs with
``NUMBA_CACHE_DIR`` set to an empty directory (the package honours it, so the user's own
cache is neither read nor touched), "warm" runs again on the cache the cold run wrote.
scikit-learn's ``GaussianMixture`` on the same points is printed for reference (it
compiles nothing).

    python benchmarks/first_call.py [--repeats 2] [--skip-precompile] [--cases em,cli]

Prints one line per case and the cold - warm difference against the target. A third
column is the first call after ``bayesgmm precompile`` on an empty cache (what the
Makefile's install runs; a pip user runs it once), with that command's own time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EM = """
import numpy as np
from bayesgmm import GaussianMixtureEM
rng = np.random.default_rng(0)
x = np.concatenate([rng.normal(0, 1, 500_000), rng.normal(4, 1, 300_000),
                    rng.normal(9, 2, 200_000)])
GaussianMixtureEM(3, random_seed=0).fit(x)
"""

SKLEARN = """
import numpy as np
from sklearn.mixture import GaussianMixture
rng = np.random.default_rng(0)
x = np.concatenate([rng.normal(0, 1, 500_000), rng.normal(4, 1, 300_000),
                    rng.normal(9, 2, 200_000)])
GaussianMixture(3, random_state=0).fit(x[:, None])
"""

PRECOMPILE = """
from bayesgmm.cli.main import main
main(["precompile"])
"""

CLI = """
import sys
from bayesgmm.cli.main import main
sys.exit(main(["fit", sys.argv[1], "--k", "2", "--out", sys.argv[2]]))
"""


def timed(code: str, cache: str | None, *args: str) -> float:
    """Wall time of ``python -c code args`` in a fresh process (import included)."""
    env = dict(os.environ)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2,
                        help="cold/warm pairs per case, each on a new empty cache (default 2)")
    parser.add_argument("--skip-precompile", action="store_true",
                        help="leave out the column after `bayesgmm precompile` (2-3 min each)")
    parser.add_argument("--cases", default="em,cli",
                        help="which cases, comma-separated: em, cli (default both)")
    args = parser.parse_args()
    import numpy as np

    from bayesgmm.datasets import seed001_data

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "seed001.csv"
        np.savetxt(data, seed001_data(), header="x", comments="")
        cases = (("em", "GaussianMixtureEM.fit, 1e6 points", EM, 3.0),
                 ("cli", "bayesgmm fit, seed 001", CLI, 5.0))
        for key, name, code, target in cases:
            if key not in args.cases.split(","):
                continue
            for r in range(args.repeats):
                cache = tempfile.mkdtemp(dir=tmp)
                extra = (str(data), str(Path(tmp) / f"out{r}")) if code is CLI else ()
                cold = timed(code, cache, *extra)
                extra = (str(data), str(Path(tmp) / f"out{r}w")) if code is CLI else ()
                warm = timed(code, cache, *extra)
                verdict = "met" if cold - warm <= target else "not met"
                print(f"{name}: cold {cold:.1f} s, warm {warm:.1f} s, cold - warm "
                      f"{cold - warm:.1f} s (target <= {target:.0f} s: {verdict})", flush=True)
                if args.skip_precompile:
                    continue
                pre_cache = tempfile.mkdtemp(dir=tmp)
                pre = timed(PRECOMPILE, pre_cache)
                extra = (str(data), str(Path(tmp) / f"out{r}p")) if code is CLI else ()
                first = timed(code, pre_cache, *extra)
                verdict = "met" if first - warm <= target else "not met"
                print(f"  after bayesgmm precompile ({pre:.0f} s): first call {first:.1f} s, "
                      f"- warm {first - warm:.1f} s (target <= {target:.0f} s: {verdict})",
                      flush=True)
        try:
            import sklearn  # noqa: F401
        except ImportError:
            return
        print(f"scikit-learn GaussianMixture, 1e6 points: {timed(SKLEARN, None):.1f} s "
              "(nothing to compile)")


if __name__ == "__main__":
    main()
