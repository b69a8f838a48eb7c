"""Benchmark of issue 22 (no false certificate at any parameter): what judging certificates on
the scale the geometry controls costs.

1. alpha-CL: the certified `solve` at tau 0.01 against tau 0.5 (target: at most 2x), for three
   problems: N instances x V views through the reduced program (orbit), and a mini-batch that cuts
   three instances unevenly (5,2,2 samples: the full n x n dynamics). Best of 3, in process.
2. The scale-aware certificate of explicit embeddings (min(excess, the loss's range), the range
   from the declared ``Loss._range``; alpha-CL's point floor) against the same certificate with
   the scale switched off (range = inf: judged on the excess, as before), SupCon, k = 20
   classes, d = 32, tau = 0.1 (bench_certify's embeddings), n up to 20000 (target: <= 10% more).
   Alternating runs in one process; ratio = with / without.

    python benchmarks/bench_scale.py [--sizes 2000,20000] [--kinds near,random,collapsed]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import numpy as np
from _common import table  # benchmarks/ is on sys.path when run as a script
from bench_certify import TAU, K, embeddings

from solvers import certify_embeddings, solve
from ufm import Problem, Samples, get_loss
from ufm.losses.base import Loss


def best_of(fn, repeats=3):
    out, best = None, math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def alpha_rows():
    problems = [
        ("3 x 3 views (orbit)", Samples.instances_views(3, 3)),
        ("200 x 2 views (orbit)", Samples.instances_views(200, 2)),
        ("batch 5,2,2 of 3 x 5 (full dynamics)",
         Samples.instances_views(3, 5).with_batches([np.array([0, 1, 2, 3, 4, 5, 6, 10, 11])], "5,2,2")),
    ]
    rows = []
    for name, samples in problems:
        times = {}
        for tau in (0.5, 0.01):
            seconds, res = best_of(lambda s=samples, t=tau: solve(Problem(get_loss("alpha_cl", tau=t), s)))
            times[tau] = seconds
            c = res.certificate
            rows.append([name, f"{tau:g}", f"{seconds:.3f}", str(c.certified),
                         f"{c.gap_relative_to_scale:.1e}",
                         f"{res.iterations}", "" if tau == 0.5 else f"{times[0.01] / times[0.5]:.2f}x"])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


class _NoScale:
    """Judge on the excess alone (the certificate before this issue): range = inf."""

    def __enter__(self):
        self.saved = Loss.log_geometry_range
        Loss.log_geometry_range = lambda self, samples: math.inf

    def __exit__(self, *exc):
        Loss.log_geometry_range = self.saved


def certify_rows(sizes, kinds):
    rng = np.random.default_rng(0)
    loss = get_loss("supcon", tau=TAU)
    rows = []
    for n in sizes:
        samples = Samples.from_counts([n // K] * K)
        for kind in kinds:
            H = embeddings(kind, n, rng)
            t_with, t_without = [], []
            for _ in range(2):  # alternate, so that a busy spell hits both
                t0 = time.perf_counter()
                c = certify_embeddings(loss, H, samples)
                t_with.append(time.perf_counter() - t0)
                with _NoScale():
                    t0 = time.perf_counter()
                    c0 = certify_embeddings(loss, H, samples)
                    t_without.append(time.perf_counter() - t0)
            tw, to = min(t_with), min(t_without)
            rows.append([kind, str(n), f"{to:.2f}", f"{tw:.2f}", f"{tw / to:.3f}", str(c0.certified),
                         str(c.certified), c.scale_kind])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--kinds", default="near,random")
    ap.add_argument("--skip-alpha", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    if not args.skip_alpha:
        table("alpha-CL certified solve, tau 0.01 vs 0.5 (eps 0.1, p 2; best of 3, s)",
              ["problem", "tau", "time s", "certified", "gap / scale", "iterations", "tau 0.01 / 0.5"],
              alpha_rows())
    table(f"certify_embeddings with and without the scale (SupCon, k = {K}, d = 32, tau = {TAU}; best of 2)",
          ["embeddings", "n", "without s", "with s", "ratio", "certified without", "certified with", "scale"],
          certify_rows([int(s) for s in args.sizes.split(",")], args.kinds.split(",")))


if __name__ == "__main__":
    main()
