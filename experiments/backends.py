"""Where a study's points run: in this process, on local cores (``--jobs N``) or on a Dask cluster
(``--scheduler ADDRESS``, dask.distributed).

Every backend takes the same picklable task, ``fn(*args)``, and yields ``(index, result)`` as
points finish; the caller alone writes ``results.jsonl``, so resuming works the same way in the
three modes. Closing a backend early (Ctrl-C, an error) cancels the points not yet started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ufm.errors import UFMInputError
from ufm.threads import limit_threads, share


def tune_allocator() -> None:
    """Keep glibc's dynamic mmap threshold: dask's nanny starts workers with
    MALLOC_TRIM_THRESHOLD_=65536, which fixes it at 128 KiB, so that every large temporary array
    is a fresh mmap (measured: a long-tailed solve 3-4x slower). No-op off glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


_WORKER_READY: dict = {}


def on_worker(fn: Callable, threads_by_host: dict, *args):
    """Run one point on a Dask worker: once per worker process, the allocator tuned and the
    numerical libraries given the worker's share of its machine's cores."""
    if not _WORKER_READY:
        from distributed import get_worker

        host = get_worker().address.rsplit(":", 1)[0]
        tune_allocator()
        limit_threads(share(threads_by_host.get(host, 1)))
        _WORKER_READY["done"] = True
    return fn(*args)


class Serial:
    """Points one after the other in this process."""

    description = "serial"

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        for i, args in enumerate(tasks):
            yield i, fn(*args)

    def close(self, finished: bool = True) -> None:
        pass


class LocalProcesses:
    """``jobs`` worker processes on this machine (spawned, each with cores / jobs threads, or
    ``threads``)."""

    def __init__(self, jobs: int, threads: int | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.jobs = jobs
        threads = share(jobs) if threads is None else threads
        self.description = f"{jobs} local processes, {threads} thread(s) each"
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=limit_threads, initargs=(threads,))

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        from concurrent.futures import as_completed

        futures = {self.pool.submit(fn, *args): i for i, args in enumerate(tasks)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()

    def close(self, finished: bool = True) -> None:
        """Shut the pool down; after an interruption, stop the points still running."""
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=finished, cancel_futures=True)
        if not finished:
            for proc in processes:
                if proc.is_alive():
                    proc.terminate()


class DaskCluster:
    """Points sent to the workers of a dask.distributed scheduler."""

    def __init__(self, address: str, timeout: float = 20.0):
        try:
            from distributed import Client
        except ImportError:
            raise UFMInputError("--scheduler", "needs dask.distributed: pip install 'ufm[cluster]'") from None
        self.cluster = None
        if address.startswith("local:"):
            self.cluster = _local_cluster(address)
            address = self.cluster.scheduler_address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as err:
            if self.cluster is not None:
                self.cluster.close()
            raise UFMInputError("--scheduler", f"cannot reach the scheduler {address!r}: "
                                f"{' '.join(str(err).split()) or type(err).__name__}") from None
        workers = self.client.scheduler_info().get("workers", {})
        self.threads_by_host: dict = {}
        for addr, info in workers.items():  # dask threads per machine, to share its cores
            host = addr.rsplit(":", 1)[0]
            self.threads_by_host[host] = self.threads_by_host.get(host, 0) + int(info.get("nthreads", 1))
        self.description = f"Dask scheduler {address} ({len(workers)} worker(s))"
        self.futures: list = []

    def run(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        from distributed import as_completed

        self.futures = [self.client.submit(on_worker, fn, self.threads_by_host, *args, pure=False)
                        for args in tasks]
        index = {fut.key: i for i, fut in enumerate(self.futures)}
        for fut in as_completed(self.futures, loop=self.client.loop):
            yield index[fut.key], fut.result()

    def close(self, finished: bool = True) -> None:
        pending = [f for f in self.futures if not f.done()]
        if pending:
            self.client.cancel(pending)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _local_cluster(address: str):
    """``local:N``: a dask LocalCluster of N single-threaded worker processes on this machine,
    started for the run and closed after it (each worker's numerical libraries get cores / N)."""
    from distributed import LocalCluster

    text = address.split(":", 1)[1]
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise UFMInputError("--scheduler", f"local:N needs a number of workers N from 1 to 1024, "
                            f"got {address!r}")
    return LocalCluster(n_workers=int(text), threads_per_worker=1, processes=True, dashboard_address=None)


def backend_for(jobs: int | None, scheduler: str | None, threads: int | None = None):
    """The backend of ``--jobs`` / ``--scheduler`` (serial without either); ``threads`` per local
    worker process (default cores / jobs; Dask workers: cores / workers of their host)."""
    if scheduler is not None:
        return DaskCluster(scheduler)
    if jobs is None or jobs == 1:
        return Serial()
    return LocalProcesses(jobs, threads)
