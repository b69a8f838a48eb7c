"""Where threads pay: each kernel that switches to one thread below a size, timed on 1 thread and
on all the cores given, across sizes, so the thresholds in the code are measured, not guessed.

1. The restarts' loss and gradient (torch, CPU, float64): SupCon's blocked closed-form gradient
   over H of shape (R, n, d) (``loss.torch_log_excess_and_grad``), work = R n^2 d multiply-adds;
   ``solvers.nonconvex.SMALL_WORK`` is where the code switches to one thread.
2. The factored solve's BLAS (numpy): the products of one L-BFGS step of a q-row factor Z
   (q x r, r = 8): G = Z Z^T and G Z; ``solvers.factored.BLAS_THREADS_MIN_Q`` is the switch.

    python benchmarks/bench_threads.py            # about a minute on 2 cores
"""

from __future__ import annotations

import platform

import numpy as np
import torch
from _common import table, timeit
from threadpoolctl import threadpool_limits

from solvers.factored import BLAS_THREADS_MIN_Q
from solvers.nonconvex import SMALL_WORK, random_start
from ufm import Samples, get_loss
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
    rows = []
    rng = np.random.default_rng(0)
    for q in (50, 100, 200, 350, 500, 750, 1000, 2000):
        Z = rng.standard_normal((q, 8))

        def step(Z=Z):
            G = Z @ Z.T
            return G @ Z

        times = []
        for threads in (1, cores):
            with threadpool_limits(threads):
                times.append(timeit(step, 20))
        rows.append([str(q), f"{times[0] * 1e3:.3f}", f"{times[1] * 1e3:.3f}", f"{times[0] / times[1]:.2f}",
                     "1 thread" if q < BLAS_THREADS_MIN_Q else f"{cores} threads"])
    table(f"Factored solve's BLAS (G = Z Z^T, G Z; r = 8): 1 thread against {cores} (ms, best of 20); "
          f"BLAS_THREADS_MIN_Q = {BLAS_THREADS_MIN_Q}", ["q", "1 thread", f"{cores} threads", "1 / many",
                                                         "code uses"], rows)


def main() -> None:
    cores = cpu_count()
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores given, "
          f"python {platform.python_version()}, torch {torch.__version__}")
    bench_torch(cores)
    bench_blas(cores)


if __name__ == "__main__":
    main()
