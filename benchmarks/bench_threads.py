"""Where threads pay: each kernel that switches to one thread below a size, timed on 1 thread and
on all the cores given, across sizes, so the thresholds in the code are measured, not guessed.

1. The restarts' loss and gradient (torch, CPU, float64): SupCon's blocked closed-form gradient
   over H of shape (R, n, d) (``loss.torch_log_excess_and_grad``), work = R n^2 d multiply-adds;
   ``solvers.nonconvex.SMALL_WORK`` is where the code switches to one thread.
2. The factored solve's BLAS (numpy): one objective + gradient evaluation of the class-level
   program with q distinct counts (X q x q: X X^T and Gamma X); ``solvers.factored.BLAS_THREADS_MIN_Q``
   is the switch.

    python benchmarks/bench_threads.py              # about a minute on 2 cores
    python benchmarks/bench_threads.py --busy blas  # beside one CPU-bound process
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch
from _common import table, timeit
from bench_load import COMPETITORS, competitor
from threadpoolctl import threadpool_limits

from solvers.factored import BLAS_THREADS_MIN_Q
from solvers.nonconvex import SMALL_WORK, random_start
from ufm import Problem, Samples, get_loss
from ufm.threads import cpu_count


def bench_torch(cores: int) -> None:
    loss = get_loss("supcon", tau=0.5)
    rows = []
    for R, n, d in ((1, 20, 4), (8, 30, 4), (8, 60, 8), (8, 120, 16), (8, 240, 16), (8, 480, 32),
                    (8, 960, 32), (4, 2048, 64)):
        samples = Samples.from_counts((n // 5,) * 5)
        H = random_start(R, samples.n, d, 0, torch.float64, "cpu")
        times = []
        for threads in (1, cores):
            torch.set_num_threads(threads)
            times.append(timeit(lambda H=H, s=samples: loss.torch_log_excess_and_grad(H, s), 5))
        work = R * samples.n**2 * d
        rows.append([f"{R} x {samples.n} x {d}", f"{work:.1e}", f"{times[0] * 1e3:.2f}",
                     f"{times[1] * 1e3:.2f}", f"{times[0] / times[1]:.2f}",
                     "1 thread" if work < SMALL_WORK else f"{cores} threads"])
    torch.set_num_threads(cores)
    table(f"Restarts' loss + gradient (torch float64, CPU): 1 thread against {cores} (ms, best of 5); "
          f"SMALL_WORK = {SMALL_WORK:.1e}", ["R x n x d", "work", "1 thread", f"{cores} threads",
                                              "1 / many", "code uses"], rows)


def bench_blas(cores: int) -> None:
    """One objective + gradient evaluation of the class-level program with q distinct counts
    (its factor X is q x q: the products X X^T and Gamma X)."""
    from solvers.factored import _Objective

    rows = []
    rng = np.random.default_rng(0)
    for q in (50, 100, 200, 350, 500, 750, 1000):
        counts = tuple(int(c) for c in rng.choice(np.arange(2, 20 * q + 2), size=q, replace=False))
        problem = Problem(counts, 0.1)
        sym = problem.symmetry("reduced")
        y = sym.initial_factors(0).ravel()
        fun = _Objective(problem.loss, sym, problem.samples, sym.free_mask(np.zeros(q, dtype=bool)))
        times = []
        for threads in (1, cores):
            with threadpool_limits(threads):
                times.append(timeit(lambda fun=fun, y=y: fun(y), 5 if q >= 500 else 20))
        rows.append([str(q), f"{times[0] * 1e3:.3f}", f"{times[1] * 1e3:.3f}", f"{times[0] / times[1]:.2f}",
                     "1 thread" if q < BLAS_THREADS_MIN_Q else f"{cores} threads"])
    table(f"Factored solve: one evaluation of the class-level program, q distinct counts (X is q x q): "
          f"1 thread against {cores} (ms, best of 5-20); BLAS_THREADS_MIN_Q = {BLAS_THREADS_MIN_Q}",
          ["q", "1 thread", f"{cores} threads", "1 / many", "code uses"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--busy", choices=sorted(COMPETITORS), default=None,
                    help="time beside one competing CPU-bound process (bench_load's competitors)")
    args = ap.parse_args()
    cores = cpu_count()
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores given, "
          f"python {platform.python_version()}, torch {torch.__version__}; "
          f"{'beside a busy process (' + args.busy + ')' if args.busy else 'quiet'}")
    with competitor(args.busy):
        bench_torch(cores)
        bench_blas(cores)


if __name__ == "__main__":
    main()
