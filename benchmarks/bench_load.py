"""Under real conditions: every shipped study and a small `ufm verify`, each timed as a whole
command on a quiet machine and beside one competing CPU-bound process (started here), for a
baseline revision of the project against the working tree, as ratios.

The competitor is another researcher's job: a numpy loop of 1500 x 1500 matrix products on
BLAS's default threads (all cores), or with ``--competitor spin`` one pure-Python busy loop.
Runs alternate baseline / change per workload, so drift of the machine hits both alike. Every
command runs in its own interpreter (imports included) with the environment's thread settings as
they are: what a user gets.

    python benchmarks/bench_load.py                        # baseline: the main before issue 18
    python benchmarks/bench_load.py --smoke                # the studies' [smoke] grids
    python benchmarks/bench_load.py --only verify,dimension --baseline HEAD~3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import table

REPO = Path(__file__).resolve().parents[1]
#: main before issue 18 (threads, progress, early certificate checks)
DEFAULT_BASELINE = "667f9f4"
VERIFY = ["verify", "--counts", "5,5,5,5,5,5", "--tau", "0.1", "--dim", "4", "--restarts", "8", "--json"]
COMPETITORS = {
    "blas": "import numpy as np\na = np.random.default_rng(0).random((1500, 1500))\nwhile True:\n    a @ a\n",
    "spin": "x = 0\nwhile True:\n    x += 1\n",
}


def studies() -> list[str]:
    return sorted(p.stem for p in (REPO / "experiments").glob("*.toml"))


@contextlib.contextmanager
def worktree(rev: str):
    """A checkout of ``rev`` in a temporary folder, removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="ufm-baseline-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(where), rev],
                   check=True, capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)],
                       capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


@contextlib.contextmanager
def competitor(kind: str | None):
    """One CPU-bound process beside the measured one (none for ``kind`` None)."""
    if kind is None:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", COMPETITORS[kind]])
    time.sleep(1.0)  # running before the measured command starts
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def timed(tree: Path, args: list[str], out: Path, timeout: float) -> float:
    """Seconds of ``python -m ufm ARGS`` run from ``tree`` (its code first on the path); inf on a
    failure or past ``timeout``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if args[0] == "run":
        shutil.rmtree(out, ignore_errors=True)
        args = [*args, "--out", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "ufm", *args], cwd=tree, env=env, timeout=timeout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        return float("inf")
    if proc.returncode != 0:
        print(f"failed ({proc.returncode}): {' '.join(args)}: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return float("inf")
    return time.perf_counter() - t0


def fmt(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds != float("inf") else "timeout"


def ratio(base: float, new: float) -> str:
    if base == float("inf") or new == float("inf"):
        return "-"
    return f"{base / new:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with")
    ap.add_argument("--only", default=None, help="workloads: verify and study names, separated by commas")
    ap.add_argument("--smoke", action="store_true", help="the studies' [smoke] grids")
    ap.add_argument("--competitor", choices=sorted(COMPETITORS), default="blas")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    args = ap.parse_args()
    names = ["verify", *studies()] if args.only is None else args.only.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="ufm-load-"))
    rows = []
    with worktree(args.baseline) as base:
        for name in names:
            cmd = VERIFY if name == "verify" else ["run", name, *(["--smoke"] if args.smoke else [])]
            times = {}
            for load in (None, args.competitor):
                with competitor(load):
                    for label, tree in (("base", base), ("new", REPO)):
                        times[label, load] = timed(tree, cmd, scratch / f"{name}-{label}", args.timeout)
            q_b, q_n = times["base", None], times["new", None]
            l_b, l_n = times["base", args.competitor], times["new", args.competitor]
            rows.append([name if name == "verify" else f"run {name}" + (" --smoke" if args.smoke else ""),
                         fmt(q_b), fmt(q_n), ratio(q_b, q_n), fmt(l_b), fmt(l_n), ratio(l_b, l_n),
                         f"{l_n / q_n:.2f}" if q_n not in (0, float("inf")) and l_n != float("inf") else "-"])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"baseline {args.baseline}; competitor: {args.competitor}")
    table(f"Whole commands, quiet and beside one CPU-bound process ({args.competitor}), s; "
          "ratio = baseline / change (above 1: the change is faster)",
          ["workload", "baseline quiet", "change quiet", "ratio", "baseline loaded", "change loaded",
           "ratio", "change loaded / quiet"], rows)


if __name__ == "__main__":
    main()
