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
import time

#: seconds over which the cores left idle by other work are measured (``idle_cores``)
IDLE_WINDOW = 0.05


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


def _cpu_times(allowed: set[int]) -> dict[int, tuple[int, int]]:
    """(total, idle) clock ticks of each CPU in ``allowed`` since boot (/proc/stat)."""
    out = {}
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *ticks = line.split()
                cpu = int(name[3:])
                if cpu in allowed:
                    values = [int(t) for t in ticks[:8]]
                    out[cpu] = (sum(values), values[3] + values[4])  # idle + iowait
    return out


def idle_cores(window: float = IDLE_WINDOW) -> float | None:
    """How many of this process's cores the rest of the machine leaves idle: the idle share of
    each allowed CPU over ``window`` seconds while this process sleeps, summed; None where the
    platform does not say (no /proc/stat)."""
    try:
        allowed = set(os.sched_getaffinity(0))
        before = _cpu_times(allowed)
        time.sleep(window)
        after = _cpu_times(allowed)
    except (AttributeError, OSError, ValueError):
        return None
    idle = 0.0
    for cpu in before.keys() & after.keys():
        total = after[cpu][0] - before[cpu][0]
        idle += (after[cpu][1] - before[cpu][1]) / total if total > 0 else 1.0
    return idle if before else None


def default_threads() -> int | None:
    """The threads a command computes with when none are asked for: the cores given that other
    work leaves idle now (rounded, at least one), so that a job beside others does not oversubscribe
    the machine: beside one CPU-bound process on 2 cores, a study of long-tailed counts took 45-49 s
    on 2 threads against 18.6 s on one (``benchmarks/bench_load.py``). None (leave the libraries'
    own choice) where OMP_NUM_THREADS says already, or the machine's load cannot be read."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    idle = idle_cores()
    if idle is None:
        return None
    return max(1, min(cpu_count(), int(idle + 0.5)))
