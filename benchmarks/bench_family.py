"""Benchmark of the loss family: loss + gradient per loss at large n, and solve times per loss.

1. Loss and gradient over H (torch, float64 and float32) for every loss at n = 8192 (d = 64):
   ufm's blocked closed-form gradient of log(f - floor) against autograd through each loss's
   plain definition (``Loss.torch_value``: dense masks, one n x n matrix at a time), in the same
   run, as a ratio.
2. ``solve`` per loss: symmetry-reduced programs (classes, instances x views) and the n x n
   program of mini-batch losses (no symmetry): time, method and whether it is certified.

    python benchmarks/bench_family.py              # about 10 minutes on a 2-core CPU
    python benchmarks/bench_family.py --quick      # n = 2048, small solves
    python benchmarks/bench_family.py --device cuda
    python benchmarks/bench_family.py --only grad --n 4096 --losses "kcl gaussian,kcl riesz"
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
import torch
from _common import table, timeit  # benchmarks/ is on sys.path when run as a script

from solvers import solve
from solvers.nonconvex import random_start
from ufm import Problem, Samples, get_loss
from ufm.samples import balanced_batches

#: (label, loss name, parameters, samples kind)
LOSSES = [
    ("supcon", "supcon", {"tau": 0.5}, "classes"),
    ("supcon_in", "supcon_in", {"tau": 0.5}, "classes"),
    ("infonce all", "infonce", {"tau": 0.5}, "views"),
    ("infonce same_view", "infonce", {"tau": 0.5, "negatives": "same_view"}, "views"),
    ("dcl", "dcl", {"tau": 0.5}, "views"),
    ("dhel", "dhel", {}, "views"),
    ("kcl gaussian", "kcl", {}, "views"),
    ("kcl riesz", "kcl", {"kernel": "riesz"}, "views"),
    ("kcl imq", "kcl", {"kernel": "imq"}, "views"),
    ("kcl log", "kcl", {"kernel": "log"}, "views"),
    ("alpha_cl exp", "alpha_cl", {}, "views"),
    ("alpha_cl quadratic", "alpha_cl", {"weight": "quadratic"}, "views"),
    ("spectral", "spectral", {}, "views"),
]


def samples_of(kind: str, n: int) -> Samples:
    if kind == "views":
        return Samples.instances_views(n // 2, 2)
    counts = np.random.default_rng(n).multinomial(n - 20, np.ones(20) / 20) + 1
    return Samples.from_counts(tuple(int(c) for c in counts))


def bench_loss_grad(n: int, d: int, device: str, repeats: int, labels=None):
    rows = []
    for label, name, params, kind in LOSSES:
        if labels is not None and label not in labels:
            continue
        loss, samples = get_loss(name, **params), samples_of(kind, n)
        row = [label]
        for dt in (torch.float64, torch.float32):
            H0 = random_start(1, n, d, 0, dt, device)[0]

            def ours(H0=H0, loss=loss, samples=samples):
                loss.torch_log_excess_and_grad(H0, samples)

            def plain(H0=H0, loss=loss, samples=samples):
                H = H0.clone().requires_grad_(True)
                loss.torch_value(H, samples).backward()

            t_ours = timeit(ours, repeats)
            try:
                t_plain = timeit(plain, repeats)
            except (torch.OutOfMemoryError, RuntimeError):
                t_plain = float("nan")
            row += [
                f"{t_ours:.2f}",
                f"{t_plain:.2f}" if t_plain == t_plain else "OOM",
                f"{t_plain / t_ours:.2f}" if t_plain == t_plain else "-",
            ]
        rows.append(row)
        print(f"loss-grad {label} done", file=sys.stderr)
    table(
        f"Loss and gradient at n = {n}, d = {d}, device {device} (seconds, best of {repeats}; "
        "plain = autograd through the loss's definition)",
        ["loss", "ufm f64", "plain f64", "ratio", "ufm f32", "plain f32", "ratio"],
        rows,
    )


def bench_solve(quick: bool):
    cases = []
    big_views = 200 if quick else 2000
    for label, name, params, kind in LOSSES:
        if name == "supcon_in":
            continue  # not convex in G: no relaxation to solve
        if kind == "classes":
            cases.append(
                (label, Problem(get_loss(name, **params), Samples.from_counts(tuple(range(2, 102)))))
            )
        else:
            cases.append((label, Problem(get_loss(name, **params), Samples.instances_views(big_views, 2))))
    mb = Samples.from_counts((6,) * 6)
    for label, name, params in (("supcon mini-batch", "supcon", {"tau": 0.5}),):
        cases.append((label, Problem(get_loss(name, **params), mb.with_batches(balanced_batches(mb, 12, 0)))))
    pairs = Samples.instances_views(16, 2)
    cases.append(
        ("dhel mini-batch", Problem(get_loss("dhel"), pairs.with_batches(balanced_batches(pairs, 8, 0))))
    )
    rows = []
    for label, problem in cases:
        t0 = time.perf_counter()
        res = solve(problem, compare_full_batch=False)
        dt = time.perf_counter() - t0
        s = problem.samples
        who = f"{s.grid[0]} x {s.grid[1]}" if s.grid else f"k = {s.k}"
        if s.batches is not None:
            who += f", {len(s.batches)} batches"
        rows.append(
            [
                label,
                who,
                str(problem.n),
                f"{res.method} ({res.solver})",
                f"{dt:.2f}",
                "yes" if res.certificate.certified else "no",
                f"{res.certificate.gap_relative_to_excess:.1e}",
            ]
        )
        print(f"solve {label} done", file=sys.stderr)
    table(
        "ufm solve per loss (seconds, in process)",
        ["loss", "samples", "n", "method (solver)", "time", "certified", "gap / excess"],
        rows,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--only", choices=["grad", "solve"])
    ap.add_argument("--losses", default=None, help="loss labels of the gradient table, separated by commas")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    labels = None if args.losses is None else {x.strip() for x in args.losses.split(",")}
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"python {platform.python_version()}, torch {torch.__version__}"
    )
    n = args.n or (2048 if args.quick else 8192)
    if args.only in (None, "grad"):
        bench_loss_grad(n, 64, args.device, args.repeats or (1 if n > 4096 else 3), labels)
    if args.only in (None, "solve"):
        bench_solve(args.quick)


if __name__ == "__main__":
    main()
