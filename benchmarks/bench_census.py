"""Benchmark of issue 16 (distinct minima up to the problem's symmetry): what the census adds to a
``verify`` run.

For each case one ``verify`` run (in process, float64, CPU): the census's time (the relabelling
search of ``ufm.matching`` plus the rotation-only clustering) against the rest of the run (convex
solve, restarts, certificates, Hessians): ratio = (rest + census) / rest, the run with the census
over the run without it. Cases: many equivalent end points that differ by a relabelling (DHEL,
InfoNCE on pairs), many genuinely different ones with equal invariants to search through (KCL with
random starts), and class problems up to n = 2000 (the largest n the search runs at).

    python benchmarks/bench_census.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from _common import table  # benchmarks/ is on sys.path when run as a script

from solvers.verify import verify
from ufm import Problem, Samples, get_loss

CASES = [
    # (label, loss, its parameters, samples, dim, restarts)
    ("dhel, 12 pairs, d 3", "dhel", {"tau": 0.3, "reduction": "mean"}, ("views", 12), 3, 32),
    ("kcl riesz s 1, 12 pairs, d 3", "kcl", {"kernel": "riesz", "s": 1.0}, ("views", 12), 3, 32),
    ("infonce, 40 pairs, d 4", "infonce", {"tau": 0.5}, ("views", 40), 4, 16),
    ("supcon 6,5,3,2, d 2", "supcon", {"tau": 0.3}, ("counts", (6, 5, 3, 2)), 2, 32),
    ("supcon 10 x 100, d 5", "supcon", {"tau": 0.5}, ("counts", (100,) * 10), 5, 8),
    ("supcon 20 x 100, d 8", "supcon", {"tau": 1.0}, ("counts", (100,) * 20), 8, 4),
]


def samples_of(spec):
    kind, value = spec
    return Samples.instances_views(value, 2) if kind == "views" else Samples.from_counts(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the first four cases only")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    rows = []
    for label, loss, params, spec, dim, restarts in CASES[:4] if args.quick else CASES:
        problem = Problem(get_loss(loss, **params), samples_of(spec))
        t0 = time.perf_counter()
        res = verify(problem, dim, restarts, seed=0)
        wall = time.perf_counter() - t0
        census = res.timings["census"]
        rest = wall - census
        relabelled = sum(bool(r.relabelled) for r in res.restarts)
        rows.append([label, str(problem.n), str(restarts), str(res.converged), str(res.distinct_minima),
                     str(res.distinct_minima_up_to_rotation), str(relabelled), str(res.census.unresolved),
                     f"{census:.3f}", f"{rest:.2f}", f"{(rest + census) / rest:.3f}"])
    table("census cost in a verify run", ["case", "n", "restarts", "converged", "minima (symmetry)",
                                          "minima (rotation)", "relabelled", "unresolved", "census s",
                                          "rest s", "with / without"], rows)


if __name__ == "__main__":
    main()
