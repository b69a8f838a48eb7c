"""The thread budget (issue 18): ``--threads`` on every command, ``threads`` in studies (never in
point ids), ``ufm.threads.limit_threads`` reaching BLAS and torch, also when torch is imported
after it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from experiments import runner
from experiments.study import load_study
from ufm.cli import main
from ufm.cli.parser import COMMAND_OPTIONS
from ufm.threads import limit_threads, share

ROOT = Path(__file__).resolve().parents[1]


def _pools():
    """Thread counts of the BLAS and OpenMP pools loaded (scs ships a single-threaded OpenBLAS that
    stays at 1 whatever is asked: only the pools that can follow are compared)."""
    return {p["num_threads"] for p in threadpool_info() if "scs" not in p["filepath"]}


def test_every_computing_command_takes_threads():
    for command in ("solve", "verify", "certify", "run", "plot", "network"):
        assert "threads" in COMMAND_OPTIONS[command], command


def test_limit_threads_reaches_blas_and_a_later_torch():
    code = ("import os\nfor k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):\n"
            "    os.environ.pop(k, None)\n"
            "import numpy\nfrom threadpoolctl import threadpool_info\nfrom ufm.threads import limit_threads\n"
            "limit_threads(1)\nimport torch\n"
            "print(torch.get_num_threads(), {p['num_threads'] for p in threadpool_info()})")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert out == ["1", "{1}\n"]


def test_cli_threads_sets_the_process_budget(capsys):
    import torch

    try:
        assert main(["solve", "--counts", "3,3", "--threads", "2", "--json"]) == 0
        assert torch.get_num_threads() == 2 and _pools() == {2}
        assert main(["solve", "--counts", "3,3", "--threads", "0"]) == 2
        assert "--threads" in capsys.readouterr().err
    finally:
        limit_threads(1)


def test_idle_cores_sums_each_allowed_cpus_idle_share(monkeypatch):
    """Two allowed CPUs over the window: one fully busy, one idle 60% of its ticks."""
    from ufm import threads

    reads = iter([{0: (1000, 500), 1: (1000, 500)}, {0: (1100, 500), 1: (1100, 560)}])
    monkeypatch.setattr(threads, "_cpu_times", lambda allowed: next(reads))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.idle_cores() == pytest.approx(0.6)


@pytest.mark.parametrize("idle,expected", [(0.0, 1), (0.4, 1), (1.0, 1), (1.6, 2), (2.0, 2)])
def test_default_threads_are_the_cores_left_idle(monkeypatch, idle, expected):
    from ufm import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.05: idle)
    assert threads.default_threads() == expected
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the environment's choice is kept
    assert threads.default_threads() is None


def test_cli_without_threads_takes_the_idle_cores(monkeypatch, capsys):
    from ufm import threads

    applied = []
    monkeypatch.setattr(threads, "default_threads", lambda: 1)
    monkeypatch.setattr(threads, "limit_threads", applied.append)
    assert main(["solve", "--counts", "3,3", "--json"]) == 0
    assert main(["solve", "--counts", "3,3", "--json", "--threads", "2"]) == 0
    assert applied == [1, 2]


def test_idle_cores_reads_this_machine():
    from ufm import threads

    idle = threads.idle_cores(0.02)
    assert idle is None or 0.0 <= idle <= len(os.sched_getaffinity(0)) + 1e-9


def test_share_is_cores_over_workers():
    assert share(1) >= 1 and share(10**6) == 1


STUDY = """\
[study]
name = "threads"
[problem]
kind = "counts"
counts = [3, 3]
tau = [0.5, 1.0]
dim = 2
[solve]
{solve}
[verify]
restarts = 2
{verify}
"""


def test_study_threads_are_applied_and_left_out_of_point_ids(tmp_path):
    plain, threaded = tmp_path / "plain.toml", tmp_path / "threaded.toml"
    plain.write_text(STUDY.format(solve="", verify=""))
    threaded.write_text(STUDY.format(solve="threads = 2", verify="threads = 2"))
    assert load_study(plain).point_ids == load_study(threaded).point_ids
    try:
        assert runner.run_command(str(threaded), str(tmp_path / "out"), False) == 0
        assert _pools() == {2}
    finally:
        limit_threads(1)
    bad = tmp_path / "bad.toml"
    bad.write_text(STUDY.format(solve="threads = 0", verify=""))
    with pytest.raises(Exception) as err:
        load_study(bad)
    assert "[solve].threads" in str(err.value)
