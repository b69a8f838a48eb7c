"""Benchmark of studies as data: each shipped study's wall time, and one study (long_tailed: 16
points of seconds each) run serially, on local processes (--jobs 2) and on a Dask LocalCluster
(2 workers), in the same run, as ratios.

    python benchmarks/bench_studies.py             # every shipped study in full, then the backends
    python benchmarks/bench_studies.py --quick     # smoke grids, and the backends on a small study
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import tempfile
import time
from pathlib import Path

from _common import table  # benchmarks/ is on sys.path when run as a script

from experiments import runner
from experiments.study import bundled_studies, find_study, load_study


def run(name: str, out: Path, **kw) -> float:
    """Wall time of ``ufm run NAME`` into a fresh folder (stdout and stderr swallowed)."""
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = runner.run_command(name, str(out), False, **kw)
    if code != 0:
        raise SystemExit(f"{name}: exit status {code}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    smoke = args.quick
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in bundled_studies():
            study = load_study(find_study(name), smoke=smoke)
            seconds = run(name, Path(tmp) / name, smoke=smoke)
            rows.append([name, str(len(study.points)), "yes" if study.verify else "no", f"{seconds:.1f}"])
        table(f"Shipped studies{' (smoke grids)' if smoke else ''}, serial, whole run with figures",
              ["study", "points", "restarts", "time s"], rows)

        name = "step_imbalance" if smoke else "long_tailed"  # long_tailed: seconds per point
        kw = {"smoke": smoke}
        serial = run(name, Path(tmp) / "serial", **kw)
        jobs = run(name, Path(tmp) / "jobs", jobs=2, **kw)
        rows = [["serial", f"{serial:.1f}", "1.00"], ["--jobs 2", f"{jobs:.1f}", f"{serial / jobs:.2f}"]]
        try:
            from distributed import LocalCluster
        except ImportError:
            LocalCluster = None
        if LocalCluster is not None:
            t0 = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
                start = time.perf_counter() - t0
                dask = run(name, Path(tmp) / "dask", scheduler=cluster.scheduler_address, **kw)
            rows.append(["Dask LocalCluster, 2 workers", f"{dask:.1f}", f"{serial / dask:.2f}"])
            rows.append(["(cluster start-up, not counted)", f"{start:.1f}", ""])
        points = len(load_study(find_study(name), smoke=smoke).points)
        table(f"{name} ({points} points): backends, same run", ["backend", "time s", "speed-up"], rows)


if __name__ == "__main__":
    main()
