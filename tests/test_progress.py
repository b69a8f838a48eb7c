"""Progress inside long work (``ufm.progress``): bars only when switched on and stderr is a
terminal, ``--quiet`` silences them, and a study's time left weighs its points by their size."""

import io
import sys

import numpy as np
import pytest

from experiments import runner
from experiments.study import load_study
from ufm import Problem, progress
from ufm.cli import main


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch) -> _Terminal:
    """stderr as a terminal (set in the test itself: pytest's capture replaces sys.stderr between a
    fixture and the test)."""
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("COLUMNS", "100")  # tqdm's width where the stream reports none
    return stream


def test_no_bar_unless_switched_on_and_a_terminal(monkeypatch):
    _terminal(monkeypatch)
    assert not progress.shown()  # off by default: library calls stay silent
    with progress.switched(True):
        assert progress.shown()
        monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a file
        assert not progress.shown()
        bar = progress.bar("work", delay=0.0)
        bar.update()
        bar.close()
        assert sys.stderr.getvalue() == ""
    assert not progress.shown()  # as it was after the block


def test_a_bar_draws_on_a_terminal_and_is_erased(monkeypatch):
    terminal = _terminal(monkeypatch)
    with progress.switched(True), progress.bar("counting", total=3, unit="step", delay=0.0) as bar:
        for _ in range(3):
            bar.update()
        bar.set_postfix_str("log excess 1.5")
    text = terminal.getvalue()
    assert "counting" in text and "3/3" in text
    assert text.endswith("\r")  # leave=False: the line is cleared when the work ends


def test_write_keeps_lines_whole(monkeypatch):
    terminal = _terminal(monkeypatch)
    with progress.switched(True):
        progress.write("a finished point")
    assert "a finished point\n" in terminal.getvalue()
    progress.write("and without a bar")
    assert terminal.getvalue().endswith("and without a bar\n")


def test_the_factored_solve_draws_iterations_and_log_excess(monkeypatch):
    terminal = _terminal(monkeypatch)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "MININTERVAL", 0.0)
    from solvers import solve

    with progress.switched(True):
        res = solve(Problem((6, 5, 4, 3, 2), 0.1), method="reduced")
    assert res.certificate.certified
    text = terminal.getvalue()
    assert "solve: factored L-BFGS" in text and "log excess" in text


def test_quiet_silences_the_command_line(monkeypatch, capsys):
    _terminal(monkeypatch)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    seen = []
    real = progress.bar
    monkeypatch.setattr(progress, "bar", lambda *a, **k: seen.append(progress.shown()) or real(*a, **k))
    assert main(["solve", "--counts", "6,5,4,3,2", "--tau", "0.1", "--json", "--quiet"]) == 0
    assert seen and not any(seen)
    seen.clear()
    assert main(["solve", "--counts", "6,5,4,3,2", "--tau", "0.1", "--json"]) == 0
    assert seen and all(seen)
    assert not progress.shown()  # the command's switch does not outlive it


def test_time_left_weighs_points_by_their_work():
    clock = runner.TimeLeft([1.0, 1.0, 8.0])
    # one small point in 1 s: 9 units of work left at 1 s each, not 2 points at 1 s each
    assert clock.finished(0, 1.0) == pytest.approx(9.0)
    assert clock.finished(2, 9.0) == pytest.approx(1.0)
    assert clock.finished(1, 10.0) == 0.0


def test_point_work_grows_with_the_problem():
    study = load_study(runner.find_study("landscape_census"))
    works = [runner.point_work(study, i) for i in range(len(study.points))]
    sizes = [study.problems[i].n for i in range(len(study.points))]
    order = np.argsort(sizes, kind="stable")
    assert np.all(np.diff(np.asarray(works)[order]) >= 0)  # restarts x n^2: more samples, more work
    balanced = load_study(runner.find_study("balanced_etf"))
    assert all(runner.point_work(balanced, i) > 0 for i in range(len(balanced.points)))
