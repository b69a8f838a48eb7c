"""Results in one call (``ufm.experiments``): results.jsonl and summary.csv of ``ufm run`` as typed
pandas DataFrames (points, restarts, summary), the errors, and the notebook example."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from ufm import experiments  # noqa: E402
from ufm.cli import main  # noqa: E402
from ufm.errors import UFMInputError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebooks" / "results_in_one_call.ipynb"


def lines(path):
    return [json.loads(x) for x in (path / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two shipped studies on their smoke grids, through the command line: ``dimension`` (with
    [verify]: restarts) and ``balanced_etf`` (solves). The figures are not drawn: not under test."""
    import experiments.figures

    base = tmp_path_factory.mktemp("studies")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiments.figures, "draw_figures", lambda *args, **kw: None)
        for name in ("dimension", "balanced_etf"):
            assert main(["run", name, "--smoke", "--quiet", "--out", str(base / name)]) == 0
    return base


def test_points_one_row_per_line_typed(runs, capsys):
    for name in ("dimension", "balanced_etf"):
        out = runs / name
        rows = lines(out)
        points = experiments.load(out)
        assert list(points["point_id"]) == [r["point_id"] for r in rows]
        assert points.columns[0] == "point_id" and points.columns.is_unique
        for col, row in zip(points["counts"], rows, strict=True):
            assert col == row["params"]["counts"] and all(type(c) is int for c in col)
        assert points["tau"].dtype == "float64" and list(points["tau"]) == [r["tau"] for r in rows]
        assert points["certified"].dtype == bool
        assert list(points["certified"]) == [r["certified"] for r in rows]
        assert points["timings.total"].dtype == "float64"  # nested objects: dotted columns
        assert points["config.seed"].dtype == "int64" and points["versions.numpy"].iloc[0]
        assert not any(c.startswith("result.") for c in points.columns)  # echoed params: one column
        assert "restarts" not in points.columns  # they are load_restarts' rows
    points = experiments.load(runs / "balanced_etf")
    assert points["rank"].dtype == "int64" and list(points["rank"]) == [3, 3]
    assert points["certificate.certified"].dtype == bool and points["collapsed"].all()
    dims = experiments.load(runs / "dimension")
    assert dims["dim"].dtype == "int64" and list(dims["dim"]) == [2, 5]
    assert dims["optimum_certificate.certified"].all()
    assert isinstance(dims.loc[0, "minima"], list) and isinstance(dims.loc[0, "minima"][0], dict)
    record = dims.to_dict("records")[0]  # native Python values, as ufm.plotting expects
    assert type(record["dim"]) is int and type(record["tau"]) is float and type(record["certified"]) is bool


def test_restarts_one_row_per_restart(runs):
    out = runs / "dimension"
    rows = lines(out)
    restarts = experiments.load_restarts(out)
    expected = [(r["point_id"], i, x) for r in rows for i, x in enumerate(r["restarts"])]
    assert len(restarts) == len(expected) == sum(r["config"]["verify"]["restarts"] for r in rows)
    assert list(restarts.columns[:2]) == ["point_id", "loss"]
    assert list(zip(restarts["point_id"], restarts["restart"], strict=True)) == [e[:2] for e in expected]
    for (_, _, x), (_, row) in zip(expected, restarts.iterrows(), strict=True):
        assert row["value"] == x["value"] and row["certified"] == x["certified"] and row["kind"] == x["kind"]
    by_point = {r["point_id"]: r["params"] for r in rows}
    assert list(restarts["dim"]) == [by_point[p]["dim"] for p in restarts["point_id"]]
    assert set(restarts["params.kind"]) == {"counts"}  # the problem's kind beside the restart's
    assert restarts["certified"].dtype == bool and restarts["iterations"].dtype == "int64"
    assert restarts["gap"].dtype == "float64" and restarts["restart"].dtype == "int64"
    points, again = experiments.load(out, restarts=True)
    assert points.equals(experiments.load(out)) and again.equals(restarts)
    none = experiments.load_restarts(runs / "balanced_etf")  # a study without [verify]
    assert len(none) == 0 and list(none.columns) == ["point_id", "restart"]


def test_summary_typed_as_load(runs):
    for name in ("dimension", "balanced_etf"):
        out = runs / name
        summary = experiments.read_summary(out)
        points = experiments.load(out)
        assert summary.columns[0] in ("tau", "counts") and "time_s" in summary.columns
        assert summary.equals(points[list(summary.columns)])  # same values, same dtypes
    text = (runs / "balanced_etf" / "summary.csv").read_text().splitlines()
    assert text[1].startswith('"[3, 3, 3, 3]",0.1,') and ",True,True," in text[1]
    summary = experiments.read_summary(runs / "balanced_etf" / "summary.csv")  # the file itself
    assert summary.loc[0, "counts"] == [3, 3, 3, 3] and summary["rank"].dtype == "int64"


def test_paths_and_missing_values(tmp_path):
    """Hand-written lines: nullable columns, an object null on some points, a result that
    disagrees with its parameter, a repeated point, a line that is not a point, a cut last line."""
    lines_ = [
        {"point_id": "a", "params": {"counts": [2, 2], "tau": 0.5}, "counts": [2, 2], "tau": 0.5, "rank": 1,
         "certified": True, "excess": 1, "minibatch": None, "notes": ["x"], "reason": None},
        {"point_id": "b", "params": {"counts": [3, 1], "tau": 1.0}, "counts": [3, 1], "tau": 2.0,
         "rank": None, "certified": None, "excess": 0.5, "minibatch": {"batches": 2}, "notes": []},
        {"point_id": "a", "params": {"counts": [2, 2], "tau": 0.5}, "rank": 2, "certified": False,
         "excess": None, "minibatch": None, "notes": [], "reason": None},
    ]
    text = "".join(json.dumps(x) + "\n" for x in lines_) + "not json\n" + '{"point_id": "c", "par'
    (tmp_path / "results.jsonl").write_text(text)
    with pytest.warns(UserWarning, match="1 line"):
        points = experiments.load(tmp_path)
    assert list(points["point_id"]) == ["a", "b"]  # the last line of a point, in first order
    assert points["rank"].dtype == "Int64" and points["rank"].isna().tolist() == [False, True]
    assert points["certified"].dtype == "boolean" and points["certified"].isna().tolist() == [False, True]
    assert not points.loc[0, "certified"]
    assert points["excess"].dtype == "float64" and points["excess"].isna().tolist() == [True, False]
    assert "minibatch" not in points.columns and points["minibatch.batches"].isna().tolist() == [True, False]
    assert list(points["notes"]) == [[], []] and points["notes"].dtype == object
    assert points["reason"].dtype == object and points["reason"].isna().all()
    assert points.loc[1, "tau"] == 1.0 and points.loc[1, "result.tau"] == 2.0  # kept beside it
    with pytest.warns(UserWarning):
        assert experiments.load(str(tmp_path / "results.jsonl")).equals(points)


def test_bad_paths(tmp_path, runs):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "bad.csv").write_text("a,b\n1\n")
    cases = [(experiments.load, tmp_path / "missing", "does not exist"),
             (experiments.load, tmp_path / "empty", "no results.jsonl in"),
             (experiments.load_restarts, tmp_path / "empty", "no results.jsonl in"),
             (experiments.load, tmp_path / "notes.txt", "holds no results of ufm run"),
             (experiments.load, runs / "dimension" / "summary.csv", "read_summary"),
             (experiments.read_summary, tmp_path / "empty", "no summary.csv in"),
             (experiments.read_summary, runs / "dimension" / "results.jsonl", "ufm.experiments.load"),
             (experiments.read_summary, tmp_path / "bad.csv", "another length")]
    for function, path, message in cases:
        with pytest.raises(UFMInputError) as err:
            function(path)
        assert err.value.argument == "path" and message in str(err.value) and "\n" not in str(err.value)


def test_older_summary_with_spaced_counts(tmp_path):
    (tmp_path / "summary.csv").write_text("counts,tau,rank,certified\n3 3 3 3,0.1,3,True\n5,1.0,,False\n")
    summary = experiments.read_summary(tmp_path)
    assert list(summary["counts"]) == [[3, 3, 3, 3], [5]]
    assert summary["rank"].dtype == "Int64" and summary["certified"].dtype == bool


def test_missing_pandas_is_one_line(monkeypatch, runs):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    for function in (experiments.load, experiments.load_restarts, experiments.read_summary):
        with pytest.raises(ImportError) as err:
            function(runs / "dimension")
        assert str(err.value) == "ufm.experiments needs pandas: pip install 'ufm[analysis]'"


def test_import_is_light():
    modules = "('pandas', 'experiments', 'solvers')"
    code = f"import sys, ufm.experiments; print(*(m in sys.modules for m in {modules}))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.split() == ["False", "False", "False"]


def test_notebook_example_runs(tmp_path, monkeypatch):
    """The code cells of docs/notebooks/results_in_one_call.ipynb, in order, in one namespace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    notebook = json.loads(NOTEBOOK.read_text())
    assert notebook["nbformat"] == 4
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert cells and all(c["outputs"] == [] and c["execution_count"] is None for c in cells)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace: dict = {}
    try:
        for i, cell in enumerate(cells):
            source = "".join(cell["source"])
            if i == len(cells) - 1:  # before the clean-up: what the notebook made
                assert (namespace["out"] / "dimension_gap_from_frame.png").stat().st_size > 0
            exec(compile(source, f"{NOTEBOOK.name} cell {i + 1}", "exec"), namespace)
    finally:
        plt.close("all")
    assert len(namespace["points"]) == 2 and len(namespace["restarts"]) == 4
    assert len(namespace["fig"].axes) >= 2
    assert not namespace["out"].parent.exists()  # the last cell removes the temporary folder
