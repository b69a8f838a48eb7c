"""Benchmark of mini-batch SupCon solves against the full problem at the same n (issue 23).

Designs (all SupCon, reduction sum):
  split      n = 8, counts 3,3,2, batches [[0..4], [3..7]] (the issue's: both split a class;
             one component of the batch graph, solved whole with tied starts)
  random:B   a random partition into batches of B (each batch a component: solved on its own
             by its symmetric program, one solve per distinct composition, certified once whole)
  windows:B  overlapping windows of B over a random order, stride B / 2 (one component: the
             n x n program with tied starts, then the program over type-invariant G by a barrier
             method, then Burer-Monteiro)
Each case runs in a child process (one warm-up solve, then the best of two; a first solve over 20 s
is timed alone) under a time limit;
the full problem (no batches) is timed the same way in the same child, and the table gives the
ratio batched / full.

    python benchmarks/bench_minibatch.py [--limit 120] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

from _common import table  # benchmarks/ is on sys.path when run as a script

CHILD = r"""
import json, sys, time
import numpy as np
from solvers import solve
from ufm import Problem, Samples, get_loss
from ufm.samples import random_batches

counts, design, tau = json.loads(sys.argv[1])
base = Samples.from_counts(counts)
if design == "split":
    batches = [[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]]
elif design.startswith("random:"):
    batches = random_batches(base, int(design[7:]), seed=0)
else:
    size = int(design[8:])
    perm = np.random.default_rng(0).permutation(base.n)
    batches = [perm[s:s + size] for s in range(0, base.n - size // 2, size // 2)]
loss = get_loss("supcon", tau=tau)
batched = Problem(loss, base.with_batches(batches))
full = Problem(loss, base)

def best(problem):
    t0 = time.perf_counter()
    res = solve(problem, compare_full_batch=False)
    t = time.perf_counter() - t0
    if t > 20.0:  # a long solve: the first run (warm-up included) is the time, within a percent
        return res, t
    t = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        res = solve(problem, compare_full_batch=False)
        t = min(t, time.perf_counter() - t0)
    return res, t

res, tb = best(batched)
_, tf = best(full)
face = res.face or {}
print(json.dumps({"batched_s": tb, "full_s": tf, "certified": bool(res.certificate.certified),
                  "solver": res.solver, "components": face.get("batch_components"),
                  "unique": face.get("optimum_unique"), "batches": len(batches)}))
"""

CASES = [((3, 3, 2), "split"), ((12, 12, 12), "random:12"), ((12, 12, 12), "windows:12"),
         ((20,) * 10, "random:40"), ((20,) * 10, "windows:40")]
TAUS = (0.02, 0.05, 0.1, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=120.0, help="seconds per case (child process)")
    ap.add_argument("--quick", action="store_true", help="partitions and the split design only")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; one thread per process")
    rows = []
    for counts, design in CASES:
        if args.quick and design.startswith("windows"):
            continue
        for tau in TAUS:
            n = sum(counts)
            try:
                out = subprocess.run([sys.executable, "-c", CHILD, json.dumps([counts, design, tau])],
                                     capture_output=True, text=True, timeout=args.limit, env=env)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append([str(n), design, f"{tau:g}", str(r["batches"]), f"{r['batched_s']:.3f}",
                             f"{r['full_s']:.3f}", f"{r['batched_s'] / r['full_s']:.1f}x",
                             "yes" if r["certified"] else "NO", r["solver"], str(r["components"]),
                             str(r["unique"]).lower()])
            except subprocess.TimeoutExpired:
                rows.append([str(n), design, f"{tau:g}", "", f"> {args.limit:g}", "", "", "not in the limit",
                             "", "", ""])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    table("mini-batch SupCon against the full problem (best of 2 after a warm-up, seconds)",
          ["n", "batches", "tau", "count", "batched s", "full s", "ratio", "certified", "solver",
           "components", "unique"], rows)


if __name__ == "__main__":
    main()
