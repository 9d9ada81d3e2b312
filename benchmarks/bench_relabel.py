"""Relabelling draws to the EM pivot: K! enumeration against linear_sum_assignment.

Times ``bayesgmm.posterior.relabel._best_two`` both ways on random (draws, K, K) cost
matrices (4 chains x 1,000 draws by default) for K = 2..7, checks that both choose the
same labellings and second-best costs, and prints the median of the repeats. The
result decides ``ENUMERATE_MAX_K``; see benchmarks/README.md.

    python benchmarks/bench_relabel.py [--draws 4000] [--repeats 5] [--kmax 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bayesgmm.posterior.relabel import _best_two


def _time(cost: np.ndarray, method: str, repeats: int):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = _best_two(cost.copy(), method)
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main(argv: list[str] | None = None) -> None:
    """Print the timing table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kmax", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    _best_two(rng.random((2, 3, 3)), "assignment")  # import SciPy outside the timing
    print(f"{'K':>2} {'enumerate s':>12} {'assignment s':>13} {'same':>5}")
    for K in range(2, args.kmax + 1):
        cost = rng.random((args.draws, K, K))
        te, (pe, _, se) = _time(cost, "enumerate", 1 if K > 7 else args.repeats)
        ta, (pa, _, sa) = _time(cost, "assignment", args.repeats)
        same = bool(np.array_equal(pe, pa) and np.allclose(se, sa, rtol=1e-12))
        print(f"{K:>2} {te:>12.4f} {ta:>13.4f} {str(same):>5}")


if __name__ == "__main__":
    main()
