"""How many threads a process computes with: the cores it is given (its CPU affinity), or a share of
them (``--jobs N`` and Dask workers: cores / workers), or ``--threads N``. One call sets BLAS and
OpenMP pools (threadpoolctl) and torch's intra-op threads; torch is not imported for it (an
import of torch that comes later reads the same limit from ``OMP_NUM_THREADS``). Kernels too
small to gain from threads use one on their own (``solvers.factored.BLAS_THREADS_MIN_Q``,
``solvers.nonconvex.SMALL_WORK``, thresholds measured in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import os
import sys


def cpu_count() -> int:
    """The cores this process may run on (its affinity where the platform says, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def share(workers: int) -> int:
    """Threads per process when ``workers`` processes share this machine's cores: cores / workers,
    at least one."""
    return max(1, cpu_count() // max(int(workers), 1))


def limit_threads(threads: int) -> None:
    """Compute with ``threads`` threads from now on: BLAS and OpenMP pools, torch's intra-op
    threads (now if torch is imported, else when it is: ``OMP_NUM_THREADS``)."""
    from threadpoolctl import threadpool_limits

    threads = max(1, int(threads))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    threadpool_limits(threads)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(threads)
