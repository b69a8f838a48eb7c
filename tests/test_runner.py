"""Studies (``ufm run``): incremental results, resuming, Ctrl-C, file modes, summary columns
and validation errors that name the TOML key."""

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import runner
from experiments.runner import point_id, run_command
from ufm.errors import UFMInputError

STUDY = """\
[study]
name = "tiny"
description = "two counts, two temperatures"

[problem]
kind = "counts"
counts = [[3, 3], [4, 2]]
tau = [0.5, 1.0]
"""
STEP = """\
[problem]
kind = "step"
k_major = 2
k_minor = 1
n_minor = 2
ratio = [1, 3]
tau = 0.5
"""


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture
def solves(monkeypatch):
    """Counts solve calls; ``solves.stop_after = m`` interrupts (Ctrl-C) the call after m."""

    class Counter:
        calls = 0
        stop_after = None

    real = runner.solve_point

    def counting(problem, opts):
        if Counter.stop_after is not None and Counter.calls >= Counter.stop_after:
            raise KeyboardInterrupt
        Counter.calls += 1
        return real(problem, opts)

    monkeypatch.setattr(runner, "solve_point", counting)
    return Counter


def lines(path):
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(x) for x in text.splitlines()]


def leftovers(out):
    """Files besides the results, the summary and one .npz per point in arrays/ (temporary files)."""
    arrays = out / "arrays"
    extra = sorted(p.name for p in out.iterdir() if p.name not in ("results.jsonl", "summary.csv", "arrays"))
    if arrays.exists():
        extra += sorted(f"arrays/{p.name}" for p in arrays.iterdir() if not p.name.endswith(".npz")
                        or p.name.startswith("."))
    return extra


def test_lines_carry_params_and_point_id(study, tmp_path, solves, capsys):
    out = tmp_path / "out"
    assert run_command(str(study), str(out), True) == 0
    rows = lines(out / "results.jsonl")
    assert [r["params"]["counts"] for r in rows] == [[3, 3], [3, 3], [4, 2], [4, 2]]
    assert [r["params"]["tau"] for r in rows] == [0.5, 1.0, 0.5, 1.0]
    opts = {"method": "auto", "solver": "auto", "tol": 1e-6}
    for r in rows:
        assert r["point_id"] == point_id(r["params"], opts) and len(r["point_id"]) == 16
    assert len({r["point_id"] for r in rows}) == 4
    payload = json.loads(capsys.readouterr().out)
    assert [r["point_id"] for r in payload["rows"]] == [r["point_id"] for r in rows]
    assert solves.calls == 4


def test_point_id_is_stable_and_depends_on_solve_options():
    params = {"kind": "counts", "counts": [3, 3], "tau": 0.5, "loss": "supcon"}
    opts = {"method": "auto", "solver": "auto", "tol": 1e-6}
    pid = point_id(params, opts)
    assert pid == point_id(dict(reversed(params.items())), opts)  # order does not matter
    assert pid != point_id(params, {**opts, "tol": 1e-8})
    assert pid != point_id({**params, "tau": 1.0}, opts)


def test_interrupt_keeps_complete_lines_and_says_how_to_resume(study, tmp_path, solves, capsys):
    out = tmp_path / "out"
    solves.stop_after = 2
    assert run_command(str(study), str(out), False) == 130
    rows = lines(out / "results.jsonl")
    assert len(rows) == 2 and rows[1]["params"] == {"kind": "counts", "counts": [3, 3],
                                                    "tau": 1.0, "loss": "supcon"}
    assert leftovers(out) == []  # no temporary file
    assert not (out / "summary.csv").exists()  # no summary of a partial study
    err = capsys.readouterr().err.strip().splitlines()
    assert "2 of 4 points done" in err[-1]
    assert err[-1].endswith(f"ufm run {study} --out {out}")


def test_ctrl_c_during_an_append_keeps_and_counts_the_line(study, tmp_path, monkeypatch, capsys):
    """A real SIGINT in the middle of writing a line is held until the line is on disk. The test
    installs Python's own SIGINT handler: a process started in the background by a non-interactive
    shell (as CI may be) inherits SIGINT ignored, and an ignored SIGINT rightly stays ignored."""
    out = tmp_path / "out"
    real = os.fsync
    sent = []

    def fsync_with_sigint(fd):
        log = out / "results.jsonl"
        results = log.exists() and os.fstat(fd)[1:3] == log.stat()[1:3]
        if not sent and results and os.fstat(fd).st_size > 0:
            sent.append(fd)  # the first line of results.jsonl is being written
            os.kill(os.getpid(), signal.SIGINT)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync_with_sigint)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert run_command(str(study), str(out), False) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sent and len(lines(out / "results.jsonl")) == 1
    assert "1 of 4 points done" in capsys.readouterr().err
    assert leftovers(out) == [] and not (out / "summary.csv").exists()


def test_interrupt_while_writing_the_summary_leaves_no_temp_file(study, tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "out"
    real = os.replace

    def interrupted_replace(src, dst):
        if Path(dst).name != "summary.csv":  # the arrays of each point
            return real(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_replace)
    assert run_command(str(study), str(out), False) == 130
    monkeypatch.setattr(os, "replace", real)
    assert len(lines(out / "results.jsonl")) == 4
    assert leftovers(out) == [] and not (out / "summary.csv").exists()
    assert "4 of 4 points done" in capsys.readouterr().err


def test_resume_skips_finished_points(study, tmp_path, solves, capsys):
    out = tmp_path / "out"
    solves.stop_after = 3
    assert run_command(str(study), str(out), False) == 130
    capsys.readouterr()
    solves.stop_after, solves.calls = None, 0
    assert run_command(str(study), str(out), True) == 0
    assert solves.calls == 1
    captured = capsys.readouterr()
    assert "3 of 4 points already done" in captured.err and "1 remaining" in captured.err
    rows = lines(out / "results.jsonl")
    assert len(rows) == 4 and len({r["point_id"] for r in rows}) == 4
    payload = json.loads(captured.out)
    assert payload["skipped"] == 3 and len(payload["rows"]) == 4
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("counts,tau,")
    assert [x[:2] for x in csv.reader(summary[1:])] == [["[3, 3]", "0.5"], ["[3, 3]", "1.0"],
                                                        ["[4, 2]", "0.5"], ["[4, 2]", "1.0"]]
    # a third run solves nothing and writes the same summary
    solves.calls = 0
    assert run_command(str(study), str(out), False) == 0
    assert solves.calls == 0 and (out / "summary.csv").read_text().splitlines() == summary


def test_changed_solve_options_are_new_points(study, tmp_path, solves, capsys):
    out = tmp_path / "out"
    assert run_command(str(study), str(out), False) == 0
    study.write_text(STUDY + "[solve]\ntol = 1e-7\n")
    solves.calls = 0
    assert run_command(str(study), str(out), False) == 0
    assert solves.calls == 4
    assert len(lines(out / "results.jsonl")) == 8
    assert len((out / "summary.csv").read_text().splitlines()) == 5
    assert "4 line(s)" in capsys.readouterr().err  # the old points: kept, not summarised


def test_partial_trailing_line_is_repaired(study, tmp_path, solves, capsys):
    out = tmp_path / "out"
    solves.stop_after = 2
    assert run_command(str(study), str(out), False) == 130
    with open(out / "results.jsonl", "a") as fh:  # a hard kill in the middle of a line
        fh.write('{"point_id": "abc", "params": {"co')
    solves.stop_after, solves.calls = None, 0
    capsys.readouterr()
    assert run_command(str(study), str(out), False) == 0
    assert solves.calls == 2
    assert "incomplete last line" in capsys.readouterr().err
    rows = lines(out / "results.jsonl")  # parses every line: the fragment is gone
    assert len(rows) == 4


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_file_modes_follow_umask(study, tmp_path, umask, mode, capsys):
    out = tmp_path / "out"
    old = os.umask(umask)
    try:
        assert run_command(str(study), str(out), False) == 0
    finally:
        os.umask(old)
    for name in ("results.jsonl", "summary.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == mode, name


def test_swept_parameters_are_summary_columns(tmp_path, capsys):
    path = tmp_path / "step.toml"
    path.write_text(STEP)
    out = tmp_path / "out"
    assert run_command(str(path), str(out), False) == 0
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "ratio" and "tau" not in header  # tau is not swept here
    assert {"optimal_value", "rank", "collapsed", "certified", "gap_relative_to_excess", "excess", "time_s",
            "cos_major", "cos_minor", "cos_between"} <= set(header)
    stdout = capsys.readouterr().out
    assert "ratio,optimal_value" in stdout
    rows = lines(out / "results.jsonl")
    assert [r["counts"] for r in rows] == [[2, 2, 2], [6, 6, 2]]


def test_out_is_a_file(study, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UFMInputError) as err:
        run_command(str(study), str(f), False)
    assert err.value.argument == "--out"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_out_not_writable(study, tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(UFMInputError) as err:
            run_command(str(study), str(d / "sub"), False)
    finally:
        d.chmod(0o700)
    assert err.value.argument == "--out"


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[problem\ncounts = [3, 3]\n")
    with pytest.raises(UFMInputError) as err:
        run_command(str(path), str(tmp_path / "out"), False)
    assert str(path) in err.value.argument
    assert not (tmp_path / "out").exists()


COUNTS = '[problem]\nkind = "counts"\ncounts = [3, 3]\n'
STEP1 = '[problem]\nkind = "step"\nk_major = 2\nk_minor = 2\nn_minor = 2\nratio = 3\n'

BAD = [
    # unknown tables and keys, with the closest valid one suggested
    ('[solver]\nmethod = "auto"\n' + COUNTS, "[solver]", "did you mean '[solve]'"),
    ('name = "x"\n' + COUNTS, "name", "[study].name"),
    (COUNTS + "taus = 0.5\n", "[problem].taus", "did you mean 'tau'"),
    ('[study]\nnmae = "x"\n' + COUNTS, "[study].nmae", "did you mean 'name'"),
    (COUNTS + '[solve]\nmethd = "auto"\n', "[solve].methd", "did you mean 'method'"),
    ('[study]\nname = "x"\n', "[problem]", "missing"),
    ("problem = 3\n", "[problem]", "table"),
    # [study]
    ("[study]\nname = 3\n" + COUNTS, "[study].name", "string"),
    ('[study]\nname = "a/b"\n' + COUNTS, "[study].name", "folder"),
    ("[study]\ndescription = true\n" + COUNTS, "[study].description", "string"),
    # tau
    (COUNTS + "tau = -1\n", "[problem].tau", "must be > 0, got -1"),
    (COUNTS + "tau = 0\n", "[problem].tau", "> 0"),
    (COUNTS + "tau = nan\n", "[problem].tau", "finite"),
    (COUNTS + "tau = inf\n", "[problem].tau", "finite"),
    (COUNTS + "tau = true\n", "[problem].tau", "number"),
    (COUNTS + 'tau = "0.5"\n', "[problem].tau", "number"),
    (COUNTS + "tau = []\n", "[problem].tau", "empty"),
    (COUNTS + "tau = [0.5, -2]\n", "[problem].tau", "-2"),
    (COUNTS + "tau = [0.5, 0.5]\n", "[problem].tau", "twice"),
    (COUNTS + "tau = [0.5, 1e-5]\n", "[problem].tau", "float64"),
    # counts
    ('[problem]\nkind = "counts"\ncounts = [3, 0]\n', "[problem].counts", ">= 1"),
    ('[problem]\nkind = "counts"\ncounts = [3, 2.5]\n', "[problem].counts", "integer"),
    ('[problem]\nkind = "counts"\ncounts = [true, 2]\n', "[problem].counts", "integer"),
    ('[problem]\nkind = "counts"\ncounts = []\n', "[problem].counts", "non-empty"),
    ('[problem]\nkind = "counts"\ncounts = 4\n', "[problem].counts", "list"),
    ('[problem]\nkind = "counts"\ncounts = [[3, 3], []]\n', "[problem].counts", "non-empty"),
    ('[problem]\nkind = "counts"\ncounts = [[3, 3], 4]\n', "[problem].counts", "mixes"),
    ('[problem]\nkind = "counts"\ncounts = [[3, 3], [2, -1]]\n', "[problem].counts", ">= 1"),
    # step
    (STEP1.replace("k_major = 2", "k_major = -1"), "[problem].k_major", ">= 0"),
    (STEP1.replace("k_major = 2", "k_major = 1.5"), "[problem].k_major", "integer"),
    (STEP1.replace("k_major = 2", "k_major = true"), "[problem].k_major", "integer"),
    (STEP1.replace("k_minor = 2", "k_minor = -3"), "[problem].k_minor", ">= 0"),
    (STEP1.replace("k_major = 2", "k_major = 0").replace("k_minor = 2", "k_minor = 0"),
     "[problem].k_major", "k_major + k_minor"),
    (STEP1.replace("n_minor = 2", "n_minor = 0"), "[problem].n_minor", ">= 1"),
    (STEP1.replace("n_minor = 2", 'n_minor = "2"'), "[problem].n_minor", "integer"),
    (STEP1.replace("ratio = 3", "ratio = 0.5"), "[problem].ratio", ">= 1"),
    (STEP1.replace("ratio = 3", "ratio = true"), "[problem].ratio", "number"),
    (STEP1.replace("ratio = 3", "ratio = 1.25"), "[problem].ratio", "whole class size"),
    (STEP1.replace("ratio = 3", "ratio = [2, 1.25]"), "[problem].ratio", "whole class size"),
    (STEP1.replace("ratio = 3", "ratio = 1e308"), "[problem].ratio", "whole class size"),
    (STEP1.replace("k_major = 2", "k_major = 1_000_000_000_000_000_000"), "[problem]", "samples"),
    (STEP1.replace("ratio = 3\n", ""), "[problem].ratio", "missing"),
    (STEP1 + "counts = [3, 3]\n", "[problem].counts", "kind = 'counts'"),
    (COUNTS + "ratio = 2\n", "[problem].ratio", "kind = 'step'"),
    ('[problem]\nkind = "counts"\n', "[problem].counts", "missing"),
    (COUNTS.replace('"counts"\n', '"stpe"\n'), "[problem].kind", "did you mean 'step'"),
    (COUNTS.replace('"counts"\n', '["counts", "step"]\n'), "[problem].kind", "string"),
    # loss
    (COUNTS + 'loss = "supcn"\n', "[problem].loss", "unknown loss"),
    (COUNTS + "loss = 1\n", "[problem].loss", "string"),
    # [solve]
    (COUNTS + '[solve]\nmethod = "fast"\n', "[solve].method", "unknown method"),
    (COUNTS + '[solve]\nsolver = "mosek"\n', "[solve].solver", "unknown solver"),
    (COUNTS + "[solve]\ntol = 0\n", "[solve].tol", "> 0"),
    (COUNTS + "[solve]\ntol = -1e-6\n", "[solve].tol", "> 0"),
    (COUNTS + "[solve]\ntol = inf\n", "[solve].tol", "finite"),
    (COUNTS + "[solve]\ntol = true\n", "[solve].tol", "number"),
    (COUNTS + '[solve]\nmethod = "full"\nsolver = "factored"\n', "[solve].solver", "conic"),
    ('[problem]\ncounts = [100, 100]\n[solve]\nmethod = "full"\n', "[solve].method", "refused"),
]


@pytest.mark.parametrize("text,key,words", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_invalid_study_names_the_key(tmp_path, solves, text, key, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(UFMInputError) as err:
        run_command(str(path), str(out), False)
    assert err.value.argument == key, str(err.value)
    assert words in err.value.message
    assert not out.exists() and solves.calls == 0  # caught before any work


def test_valid_edge_cases_pass(tmp_path, solves, capsys):
    """Integer-valued floats are integers; k_minor = 0 is a balanced step problem."""
    path = tmp_path / "ok.toml"
    path.write_text('[problem]\nkind = "step"\nk_major = 2.0\nk_minor = 0\nn_minor = 2\n'
                    "ratio = 1.5\ntau = 1\n[solve]\ntol = 1e-6\n")
    assert run_command(str(path), str(tmp_path / "out"), False) == 0
    (row,) = lines(tmp_path / "out" / "results.jsonl")
    assert row["counts"] == [3, 3] and row["params"]["k_major"] == 2


def test_bundled_study_is_valid():
    study = runner.load_study(runner.find_study("step_imbalance"))
    assert study.swept == ["ratio", "tau"] and len(study.points) == 70
    assert study.summary_fields()[:2] == ["ratio", "tau"]


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_real_stop_signal_in_a_subprocess(study, tmp_path, signum, status):
    """SIGINT (Ctrl-C) or SIGTERM (kill, a scheduler's stop) to a running study: exit 130 / 143,
    complete lines only, the resume command printed, then a resume finishes it."""
    out = tmp_path / "out"
    code = ("import sys, time\nfrom experiments import runner\nreal = runner.solve_point\n"
            "def slow(p, o):\n    time.sleep(0.3)\n    return real(p, o)\n"
            "runner.solve_point = slow\n"
            "sys.exit(runner.run_command(sys.argv[1], sys.argv[2], False))\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", code, str(study), str(out)], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    results = out / "results.jsonl"
    while not (results.exists() and results.read_text().count("\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    done = len(lines(results))
    assert 1 <= done < 4 and f"{done} of 4 points done" in err
    assert f"resume with: ufm run {study} --out {out}" in err
    assert leftovers(out) == [] and not (out / "summary.csv").exists()
    assert run_command(str(study), str(out), False) == 0
    assert len(lines(results)) == 4


def test_default_out_and_second_run_at_once_is_refused(study, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_command(str(study), None, False) == 0
    out = tmp_path / "results" / "tiny"
    assert len(lines(out / "results.jsonl")) == 4
    with runner.ResultsLog(out / "results.jsonl"):  # another run holds the folder
        with pytest.raises(UFMInputError) as err:
            run_command(str(study), str(out), False)
    assert err.value.argument == "--out" and "another ufm run" in err.value.message


FAMILY = """\
[problem]
kind = "views"
instances = 3
loss = ["dhel", "alpha_cl", "infonce"]
dim = 2

[verify]
restarts = 2

[[figure]]
kind = "family"
file = "family.png"
"""


def test_points_take_each_loss_defaults_and_say_so(tmp_path, monkeypatch):
    """Issue 16: a loss parameter the file leaves out is each point's loss's own default (DHEL
    tau 0.3, alpha-CL 0.5, InfoNCE 0.1; before: 1.0 for all), the summary has a loss_params column,
    and the family figure titles each panel with the drawn restart's value and its parameters."""
    from ufm import plotting
    from ufm.losses import get_loss

    drawn = {}
    real = plotting.loss_family

    def spy(panels, *args, **kw):
        drawn["panels"] = list(panels)
        return real(panels, *args, **kw)

    monkeypatch.setattr(plotting, "loss_family", spy)
    path = tmp_path / "family.toml"
    path.write_text(FAMILY)
    out = tmp_path / "out"
    assert run_command(str(path), str(out), False) == 0
    rows = {r["params"]["loss"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    for name in ("dhel", "alpha_cl", "infonce"):
        assert rows[name]["params"]["tau"] == get_loss(name).tau
        assert rows[name]["loss_params"]["tau"] == get_loss(name).tau
    assert rows["dhel"]["params"]["tau"] == 0.3 and rows["alpha_cl"]["params"]["tau"] == 0.5
    header, *lines = (out / "summary.csv").read_text().splitlines()
    assert header.split(",")[:2] == ["loss", "loss_params"]
    assert any(line.startswith("dhel,tau=0.3,") for line in lines)
    panels = {p["name"]: p for p in drawn["panels"]}
    for name, row in rows.items():
        sub = panels[f"loss {name}"]["subtitle"]
        assert f"tau={row['params']['tau']}" in sub
        assert f"{row['best_value']:.6g}" in sub  # the drawn restart's value, not the relaxation's
        opt = row.get("optimal_value")
        if opt is not None and f"{opt:.6g}" != f"{row['best_value']:.6g}":
            assert f"{opt:.6g}" not in sub
