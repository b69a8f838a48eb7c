"""Every input checked before any work: one line ``ufm: error: <argument>: ...``, exit status 2,
no traceback, no partial file; label parsing; long-tailed presets and --counts-file; --version
and help texts.

Tests call ``ufm.cli.main`` in-process and stay tiny: no input here reaches a solver.
"""

import argparse
import math
import os
import zipfile

import numpy as np
import pytest

import ufm
import ufm.inputs
from ufm.cli import build_parser, main
from ufm.cli.commands import _problem_from_args
from ufm.inputs import PRESETS, parse_labels_text, preset_counts, read_labels
from ufm.problem import Problem


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(result, name):
    """Exit 2, nothing on stdout, exactly one stderr line ``ufm: error: NAME: ...``."""
    code, out, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ufm: error: ") and lines[0].count("ufm: error:") == 1, lines[0]
    assert lines[0][len("ufm: error: "):].startswith(name + ":"), lines[0]
    assert out == ""
    return lines[0]


def problem_of(*args) -> Problem:
    return _problem_from_args(build_parser().parse_args(["solve", *map(str, args)]))


# --------------------------------------------------------------------------------------------
# embedding files (ufm certify)

def _valid_pt_bytes(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "valid.pt"
    torch.save({"H": torch.eye(4, 3, dtype=torch.float64)}, p)
    return p.read_bytes()


def _valid_npz_bytes(tmp_path):
    p = tmp_path / "valid.npz"
    np.savez(p, embeddings=np.eye(4, 3))
    return p.read_bytes()


def _valid_npy_bytes(tmp_path):
    p = tmp_path / "valid.npy"
    np.save(p, np.eye(4, 3))
    return p.read_bytes()


def _write(name, make):
    def writer(d):
        p = d / name
        make(p, d)
        return p
    return writer


def _save_pt(obj_fn):
    def make(p, d):
        torch = pytest.importorskip("torch")
        torch.save(obj_fn(torch), p)
    return make


BAD_EMBEDDINGS = {
    "empty npy": _write("H.npy", lambda p, d: p.write_bytes(b"")),
    "empty npz": _write("H.npz", lambda p, d: p.write_bytes(b"")),
    "empty pt": _write("H.pt", lambda p, d: p.write_bytes(b"")),
    "garbage npy": _write("H.npy", lambda p, d: p.write_bytes(os.urandom(300))),
    "garbage npz": _write("H.npz", lambda p, d: p.write_bytes(b"PK\x03\x04" + os.urandom(300))),
    "garbage pt": _write("H.pt", lambda p, d: p.write_bytes(os.urandom(300))),
    "pickle bytes pt": _write("H.pt", lambda p, d: p.write_bytes(b"\x80\x04K\x01.")),
    "truncated npy header": _write("H.npy", lambda p, d: p.write_bytes(_valid_npy_bytes(d)[:60])),
    "truncated npy data": _write("H.npy", lambda p, d: p.write_bytes(_valid_npy_bytes(d)[:-10])),
    "truncated npz": _write("H.npz", lambda p, d: p.write_bytes(_valid_npz_bytes(d)[:-40])),
    "truncated pt": _write("H.pt", lambda p, d: p.write_bytes(_valid_pt_bytes(d)[:-100])),
    "npz without arrays": _write("H.npz", lambda p, d: zipfile.ZipFile(p, "w").close()),
    "strings": _write("H.npy", lambda p, d: np.save(p, np.array([["a", "b"], ["c", "d"]]))),
    "objects": _write("H.npy", lambda p, d: np.save(p, np.array([[{}, 1]], dtype=object),
                                                     allow_pickle=True)),
    "1-D": _write("H.npy", lambda p, d: np.save(p, np.ones(4))),
    "3-D": _write("H.npy", lambda p, d: np.save(p, np.ones((4, 3, 1)))),
    "zero rows": _write("H.npy", lambda p, d: np.save(p, np.ones((0, 3)))),
    "zero columns": _write("H.npy", lambda p, d: np.save(p, np.ones((4, 0)))),
    "complex npy": _write("H.npy", lambda p, d: np.save(p, np.eye(4, 3) * (1 + 1j))),
    "complex npz": _write("H.npz", lambda p, d: np.savez(p, H=np.eye(4, 3) + 0j)),
    "complex pt": _write("H.pt", _save_pt(lambda t: t.eye(4, 3, dtype=t.complex128))),
    "nan npy": _write("H.npy", lambda p, d: np.save(p, np.full((4, 3), np.nan))),
    "inf npz": _write("H.npz", lambda p, d: np.savez(p, np.where(np.eye(4, 3) > 0, np.inf, 0.0))),
    "nan pt": _write("H.pt", _save_pt(lambda t: {"H": t.full((4, 3), float("nan"))})),
    "no tensor in pt": _write("H.pt", _save_pt(lambda t: {"a": 1})),
    "bool tensor": _write("H.pt", _save_pt(lambda t: t.ones(4, 3, dtype=t.bool))),
    "unknown suffix": _write("H.csv", lambda p, d: p.write_text("1,0,0\n")),
    "a directory": _write("H.npy", lambda p, d: p.mkdir()),
    "missing": _write("H.npy", lambda p, d: None),
}


@pytest.mark.parametrize("case", BAD_EMBEDDINGS)
def test_bad_embeddings_file(capsys, tmp_path, case):
    (tmp_path / "y.txt").write_text("0 0 1 1\n")
    path = BAD_EMBEDDINGS[case](tmp_path)
    line = assert_one_line_error(
        run(capsys, "certify", "--embeddings", path, "--labels", tmp_path / "y.txt", "--tau", "0.5"),
        "--embeddings")
    assert path.name in line


def test_complex_embeddings_are_rejected_not_truncated(capsys, tmp_path):
    np.save(tmp_path / "H.npy", np.eye(4, 3) + 1e-3j)
    (tmp_path / "y.txt").write_text("0 0 1 1")
    line = assert_one_line_error(run(capsys, "certify", "--embeddings", tmp_path / "H.npy", "--labels",
                                     tmp_path / "y.txt", "--tau", "1"), "--embeddings")
    assert "complex" in line


@pytest.mark.parametrize("stop", [0, 8, 64, 100, 128, 150, 200, 300, 400, 600, 700, 900])
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
def test_embeddings_truncated_anywhere(capsys, tmp_path, suffix, stop):
    """A valid file cut at any byte: one clean line (whatever numpy/torch/zipfile raise)."""
    data = {".npy": _valid_npy_bytes, ".npz": _valid_npz_bytes, ".pt": _valid_pt_bytes}[suffix](tmp_path)
    if stop >= len(data):
        pytest.skip("file shorter than the cut")
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[:stop])
    (tmp_path / "y.txt").write_text("0 0 1 1")
    assert_one_line_error(run(capsys, "certify", "--embeddings", path, "--labels", tmp_path / "y.txt",
                              "--tau", "1"), "--embeddings")


def test_certify_refuses_an_n_whose_certificate_does_not_fit(capsys, tmp_path, monkeypatch):
    H = np.random.default_rng(0).standard_normal((20, 3))
    np.save(tmp_path / "H.npy", H / np.linalg.norm(H, axis=1, keepdims=True))
    (tmp_path / "y.txt").write_text(" ".join(["0"] * 10 + ["1"] * 10))
    monkeypatch.setattr(ufm.inputs, "available_memory", lambda: 4000)
    line = assert_one_line_error(run(capsys, "certify", "--embeddings", tmp_path / "H.npy", "--labels",
                                     tmp_path / "y.txt", "--tau", "1"), "--embeddings")
    assert "dense" in line and "would need" in line and "available" in line


# --------------------------------------------------------------------------------------------
# label files

BAD_LABELS = {
    "empty text": ("y.txt", lambda p: p.write_text("")),
    "blank text": ("y.txt", lambda p: p.write_text(" \n,\t\n")),
    "binary text": ("y.txt", lambda p: p.write_bytes(b"\xff\xfe\x00\x81" * 20)),
    "empty npy file": ("y.npy", lambda p: p.write_bytes(b"")),
    "garbage npy": ("y.npy", lambda p: p.write_bytes(os.urandom(200))),
    "truncated npy": ("y.npy", lambda p: p.write_bytes(_npy_bytes(p, np.arange(20))[:-9])),
    "zero labels npy": ("y.npy", lambda p: np.save(p, np.array([], dtype=np.int64))),
    "nan npy": ("y.npy", lambda p: np.save(p, np.array([0.0, np.nan, 1.0]))),
    "complex npy": ("y.npy", lambda p: np.save(p, np.array([0, 1, 1j]))),
    "object npy": ("y.npy", lambda p: np.save(p, np.array([0, "a", None], dtype=object),
                                              allow_pickle=True)),
    "matrix npy": ("y.npy", lambda p: np.save(p, np.zeros((3, 3)))),
    "nan in numbers": ("y.txt", lambda p: p.write_text("0 1 nan 1")),
    "a directory": ("y.npy", lambda p: p.mkdir()),
    "missing": ("y.txt", lambda p: None),
}


def _npy_bytes(p, a):
    np.save(p, a)
    return p.read_bytes()


@pytest.mark.parametrize("case", BAD_LABELS)
def test_bad_labels_file(capsys, tmp_path, case):
    name, make = BAD_LABELS[case]
    path = tmp_path / name
    make(path)
    out = tmp_path / "out"
    line = assert_one_line_error(run(capsys, "solve", "--labels", path, "--out", out), "--labels")
    assert name in line
    assert not out.exists()


def test_text_labels_one_and_one_point_zero_are_one_class():
    y = parse_labels_text("1 1.0 2\n2.0,3")
    p = Problem.from_labels(y, 1.0)
    assert p.counts == (2, 2, 1) and p.class_labels == (1, 2, 3)


def test_text_labels_ordered_numerically():
    p = Problem.from_labels(parse_labels_text("10\n2\n11\n0\n1\n2"), 1.0)
    assert p.class_labels == (0, 1, 2, 10, 11) and p.counts == (1, 1, 2, 1, 1)
    q = Problem.from_labels(parse_labels_text("0.5 -1 1e1 2.25"), 1.0)
    assert q.class_labels == (-1.0, 0.5, 2.25, 10.0)


def test_text_labels_csv_header_skipped(tmp_path):
    (tmp_path / "y.csv").write_text("label\n3\n1\n3\n")
    y = read_labels(str(tmp_path / "y.csv"))
    assert y.tolist() == [3, 1, 3]
    assert problem_of("--labels", tmp_path / "y.csv").counts == (1, 2)


def test_text_labels_strings_stay_strings_with_any_separator():
    y = parse_labels_text("cat,dog\tcat\n1 dog")
    assert y.dtype.kind == "U" and y.tolist() == ["cat", "dog", "cat", "1", "dog"]
    assert Problem.from_labels(y, 1.0).class_labels == ("1", "cat", "dog")
    # a first line of words followed by more words is data, not a header
    assert parse_labels_text("cat\ndog\ndog").tolist() == ["cat", "dog", "dog"]


def test_npy_float_labels_are_numbers(tmp_path):
    np.save(tmp_path / "y.npy", np.array([2.0, 10.0, 2.0]))
    labels = problem_of("--labels", tmp_path / "y.npy").class_labels
    assert labels == (2, 10) and all(type(c) is int for c in labels)  # integral floats: ints


# label tables (--label-column), header lines, notes (issue 16)

TWO_COLUMNS = "id,label\n0,cat\n1,dog\n2,cat\n"


def _unit_rows(n, d=3):
    H = np.random.default_rng(0).standard_normal((n, d))
    return H / np.linalg.norm(H, axis=1, keepdims=True)


@pytest.mark.parametrize("command", ["solve", "verify", "certify", "plot"])
def test_two_column_csv_needs_label_column(capsys, tmp_path, command):
    (tmp_path / "y.csv").write_text(TWO_COLUMNS)
    np.save(tmp_path / "H.npy", _unit_rows(3))
    out = tmp_path / "out"
    extra = {"solve": ["--out", out], "verify": ["--out", out, "--device", "cpu"],
             "certify": ["--embeddings", tmp_path / "H.npy"],
             "plot": ["--embeddings", tmp_path / "H.npy", "--out", tmp_path / "f.svg"]}[command]
    head = ["plot", "heatmap"] if command == "plot" else [command]
    line = assert_one_line_error(run(capsys, *head, "--labels", tmp_path / "y.csv", *extra), "--labels")
    assert "2 columns: id, label" in line and "--label-column" in line and "y.csv" in line
    assert not out.exists() and not (tmp_path / "f.svg").exists()


@pytest.mark.parametrize("column", ["label", "1"])
def test_label_column_by_name_or_index(capsys, tmp_path, column):
    (tmp_path / "y.csv").write_text(TWO_COLUMNS)
    p = problem_of("--labels", tmp_path / "y.csv", "--label-column", column)
    assert p.class_labels == ("cat", "dog") and p.counts == (2, 1)
    err = capsys.readouterr().err
    assert err.count("ufm: note: ") == 1 and "header line 'id,label' skipped" in err
    assert "column 'label'" in err
    assert p.describe()["samples"]["notes"] == [err.strip()[len("ufm: note: "):]]
    # the other column, by index: the ids are the labels
    assert problem_of("--labels", tmp_path / "y.csv", "--label-column", "0").class_labels == (0, 1, 2)


def test_label_column_numbers_and_other_separators(tmp_path):
    assert parse_labels_text("id\tlabel\n0\t3\n1\t1\n2\t3", column="label").tolist() == [3, 1, 3]
    assert parse_labels_text('"id" "y"\n0 b\n1 a\n', column="y").tolist() == ["b", "a"]
    notes = []
    assert parse_labels_text("0 3\n1 1\n2 3\n", column="1", notes=notes).tolist() == [3, 1, 3]
    assert notes == []  # no header line: nothing skipped, nothing said


@pytest.mark.parametrize("text", ["0 3\n1 1\n2 3\n", "0,3,7\n1,1,7\n"])
def test_table_without_header_needs_label_column(capsys, tmp_path, text):
    (tmp_path / "y.txt").write_text(text)
    line = assert_one_line_error(run(capsys, "solve", "--labels", tmp_path / "y.txt"), "--labels")
    assert "columns, no header line" in line and "--label-column" in line


@pytest.mark.parametrize("column,words", [("2", ["index 2 out of range", "id, label"]),
                                          ("name", ["no column 'name'", "id, label"]),
                                          ("-1", ["no column '-1'", "0 to 1"])])
def test_bad_label_column_lists_the_columns(capsys, tmp_path, column, words):
    (tmp_path / "y.csv").write_text(TWO_COLUMNS)
    out = tmp_path / "out"
    line = assert_one_line_error(run(capsys, "solve", "--labels", tmp_path / "y.csv", "--label-column",
                                     column, "--out", out), "--label-column")
    assert all(w in line for w in words), line
    assert not out.exists()


def test_label_column_on_a_single_column_is_validated(capsys, tmp_path):
    (tmp_path / "y.txt").write_text("cat\ndog\ncat\n")
    np.save(tmp_path / "y.npy", np.array([0, 1, 0]))
    for f in ("y.txt", "y.npy"):
        assert problem_of("--labels", tmp_path / f, "--label-column", "0").counts == (2, 1)
        line = assert_one_line_error(run(capsys, "solve", "--labels", tmp_path / f, "--label-column", "1"),
                                     "--label-column")
        assert "index 1 out of range" in line and f in line
    line = assert_one_line_error(run(capsys, "solve", "--counts", "3,3", "--label-column", "1"),
                                 "--label-column")
    assert "--labels" in line


@pytest.mark.parametrize("text", ["id,label\n", "label\n", "id,label\n\n\n", "cat dog\n"])
def test_header_only_csv_is_no_labels(capsys, tmp_path, text):
    (tmp_path / "y.csv").write_text(text)
    out = tmp_path / "out"
    line = assert_one_line_error(run(capsys, "solve", "--labels", tmp_path / "y.csv", "--out", out),
                                 "--labels")
    assert "no labels" in line and "header" in line
    assert not out.exists()
    assert_one_line_error(run(capsys, "solve", "--labels", tmp_path / "y.csv", "--label-column", "0"),
                          "--labels")


def test_string_csv_header_is_skipped_with_a_note(capsys, tmp_path):
    (tmp_path / "y.csv").write_text("species\ncat\ndog\ncat\n")
    p = problem_of("--labels", tmp_path / "y.csv")
    assert p.class_labels == ("cat", "dog") and p.counts == (2, 1)
    err = capsys.readouterr().err
    assert err.startswith("ufm: note: --labels: ") and "header line 'species' skipped" in err
    assert len(err.splitlines()) == 1
    assert p.describe()["samples"]["notes"] == [err.strip()[len("ufm: note: "):]]


def test_string_csv_without_header_keeps_every_line(capsys, tmp_path):
    (tmp_path / "y.csv").write_text("cat\ndog\ncat\n")
    p = problem_of("--labels", tmp_path / "y.csv")
    assert p.class_labels == ("cat", "dog") and p.counts == (2, 1) and p.n == 3
    assert capsys.readouterr().err == ""
    assert "notes" not in p.describe()["samples"]
    notes = []
    assert read_labels(str(tmp_path / "y.csv"), notes=notes).tolist() == ["cat", "dog", "cat"]
    assert notes == []


def test_numeric_header_is_said_too(capsys, tmp_path):
    (tmp_path / "y.csv").write_text("label\n3\n1\n3\n")
    notes = []
    assert read_labels(str(tmp_path / "y.csv"), notes=notes).tolist() == [3, 1, 3]
    assert len(notes) == 1 and "header line 'label' skipped" in notes[0]


def test_label_column_name_declares_the_header(capsys, tmp_path):
    """A header csv.Sniffer cannot see (names of varying lengths) is declared by naming it."""
    (tmp_path / "y.csv").write_text("label\ncat\nmouse\ncat\n")
    p = problem_of("--labels", tmp_path / "y.csv", "--label-column", "label")
    assert p.class_labels == ("cat", "mouse") and "header line 'label' skipped" in capsys.readouterr().err


def test_ragged_table_names_the_line(capsys, tmp_path):
    (tmp_path / "y.csv").write_text("id,label\n0,cat\n1\n2,dog\n")
    line = assert_one_line_error(run(capsys, "solve", "--labels", tmp_path / "y.csv", "--label-column",
                                     "label"), "--labels")
    assert "line 3 has 1 field" in line


def test_plot_embeddings_with_label_column(capsys, tmp_path):
    (tmp_path / "y.csv").write_text(TWO_COLUMNS)
    np.save(tmp_path / "H.npy", _unit_rows(3))
    code, _, err = run(capsys, "plot", "heatmap", "--embeddings", tmp_path / "H.npy", "--labels",
                       tmp_path / "y.csv", "--label-column", "label", "--out", tmp_path / "f.svg")
    assert code == 0, err
    assert "ufm: note: --labels: " in err and (tmp_path / "f.svg").exists()


@pytest.mark.parametrize("text,how", [("5,,3", "two commas in a row"), (",5,3", "a leading comma"),
                                      ("5,3,", "a trailing comma"), ("5, ,3", "two commas in a row")])
def test_counts_with_an_empty_field(capsys, text, how):
    line = assert_one_line_error(run(capsys, "solve", "--counts", text), "--counts")
    assert "empty field" in line and how in line
    assert problem_of("--counts", "5, 3").counts == (5, 3)  # a space after a comma is fine


def test_batches_leaving_samples_out_say_how_many(capsys, tmp_path):
    (tmp_path / "b.txt").write_text("0 5\n1 6\n")
    p = problem_of("--counts", "5,5", "--batches", tmp_path / "b.txt")
    err = capsys.readouterr().err
    assert err.startswith("ufm: note: --batches: ") and "6 of the 10 samples" in err
    d = p.describe()["samples"]
    assert d["left_out"] == 6 and any("6 of the 10 samples" in note for note in d["notes"])
    # batches that cover every sample: no note
    (tmp_path / "all.txt").write_text("0 1 2 3 4\n5 6 7 8 9\n")
    for spec in (tmp_path / "all.txt", "random:4", "balanced:4"):
        q = problem_of("--counts", "5,5", "--batches", spec)
        assert "left_out" not in q.describe()["samples"] and capsys.readouterr().err == ""


# --------------------------------------------------------------------------------------------
# counts, presets, --counts-file

BAD_COUNTS = ["1e300,5", "12345678901234567890,2", "1" * 5000, "3,-2", "3,0", "2.5,3", "", ",",
              "3,x", "nan,3", "inf", "600000000,600000000", "cifar10lt", "imagenet"]


@pytest.mark.parametrize("text", BAD_COUNTS)
def test_bad_counts(capsys, text):
    assert_one_line_error(run(capsys, "solve", "--counts", text), "--counts")


@pytest.mark.parametrize("text", ["1e300,5", "12345678901234567890,2", "600000000,600000000"])
def test_counts_upper_bound_is_stated(capsys, text):
    line = assert_one_line_error(run(capsys, "solve", "--counts", text), "--counts")
    assert "1000000000" in line


def test_unknown_preset_lists_presets(capsys):
    line = assert_one_line_error(run(capsys, "solve", "--counts", "cifar10lt"), "--counts")
    assert all(name in line for name in PRESETS)


def _cifar_lt(n_max, k, rho=100):
    return [math.floor(n_max * rho ** (-c / (k - 1))) for c in range(k)]


def test_presets_counts_and_totals():
    assert set(PRESETS) == {"cifar10-lt", "cifar100-lt", "imagenet-lt", "places-lt"}
    c10 = preset_counts("cifar10-lt")
    assert list(c10) == _cifar_lt(5000, 10) and len(c10) == 10
    assert sum(c10) == sum(_cifar_lt(5000, 10)) == 12406
    assert max(c10) == 5000 and max(c10) / min(c10) == 100
    c100 = preset_counts("cifar100-lt")
    assert list(c100) == _cifar_lt(500, 100) and len(c100) == 100 and sum(c100) == 10847
    inet = preset_counts("imagenet-lt")
    assert len(inet) == 1000 and sum(inet) == 115846 and max(inet) == 1280 and min(inet) == 5
    places = preset_counts("places-lt")
    assert len(places) == 365 and sum(places) == 62500 and max(places) == 4980 and min(places) == 5


def test_presets_from_the_command_line():
    assert problem_of("--counts", "cifar10-lt").counts == preset_counts("cifar10-lt")
    assert problem_of("--counts", "ImageNet-LT").n == 115846


def test_counts_file(tmp_path):
    (tmp_path / "c.txt").write_text("10 10\n2,2\n\n")
    assert problem_of("--counts-file", tmp_path / "c.txt").counts == (10, 10, 2, 2)
    v = _problem_from_args(build_parser().parse_args(["verify", "--counts-file", str(tmp_path / "c.txt")]))
    assert v.counts == (10, 10, 2, 2)


BAD_COUNTS_FILES = {"empty": "", "not a number": "3 4 x", "negative": "3\n-1", "zero": "0,2",
                    "non-integer": "2.5 3", "huge": "1e300 5", "binary": b"\xff\xfe\x81"}


@pytest.mark.parametrize("case", [*BAD_COUNTS_FILES, "missing"])
def test_bad_counts_file(capsys, tmp_path, case):
    path = tmp_path / "c.txt"
    content = BAD_COUNTS_FILES.get(case)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    line = assert_one_line_error(run(capsys, "solve", "--counts-file", path), "--counts-file")
    assert "c.txt" in line


@pytest.mark.parametrize("other", [["--counts", "3,3"], ["--labels", "y.txt"]])
def test_counts_file_exclusive(capsys, tmp_path, other):
    (tmp_path / "c.txt").write_text("3 3")
    for command in ("solve", "verify"):
        code, out, err = run(capsys, command, "--counts-file", tmp_path / "c.txt", *other)
        assert code == 2 and len(err.splitlines()) == 1 and "--counts-file" in err
        assert err.startswith("ufm: error: --")


# --------------------------------------------------------------------------------------------
# numbers and arguments

BAD_NUMBERS = [
    (["solve", "--tau", "abc"], "--tau"), (["solve", "--tau", "nan"], "--tau"),
    (["solve", "--tau", "inf"], "--tau"), (["solve", "--tau", "-1"], "--tau"),
    (["solve", "--tau", "0"], "--tau"), (["solve", "--tau", ""], "--tau"),
    (["solve", "--tol", "0"], "--tol"), (["solve", "--tol", "nan"], "--tol"),
    (["solve", "--tol", "x"], "--tol"),
    (["solve", "--seed", "x"], "--seed"), (["solve", "--seed", "-1"], "--seed"),
    (["solve", "--seed", "1.5"], "--seed"), (["solve", "--seed", "nan"], "--seed"),
    (["verify", "--counts", "3,3", "--seed", "x"], "--seed"),
    (["verify", "--counts", "3,3", "--seed", "-3"], "--seed"),
    (["verify", "--counts", "3,3", "--max-iter", "x"], "--max-iter"),
    (["verify", "--counts", "3,3", "--max-iter", "0"], "--max-iter"),
    (["verify", "--counts", "3,3", "--max-iter", "inf"], "--max-iter"),
    (["verify", "--counts", "3,3", "--max-iter", "2.5"], "--max-iter"),
    (["verify", "--counts", "3,3", "--dim", "nan"], "--dim"),
    (["verify", "--counts", "3,3", "--dim", "-1"], "--dim"),
    (["verify", "--counts", "3,3", "--restarts", "1e400"], "--restarts"),
    (["verify", "--counts", "3,3", "--tol", "-1"], "--tol"),
    (["verify", "--counts", "3,3", "--tau", "inf"], "--tau"),
]


@pytest.mark.parametrize("args,name", BAD_NUMBERS)
def test_bad_number(capsys, args, name):
    assert_one_line_error(run(capsys, *args), name)


@pytest.mark.parametrize("args,name", [
    (["solve", "--foo"], "--foo"),
    (["solve", "--restarts", "3"], "--restarts"),
    (["verify", "--counts", "3,3", "--dim"], "--dim"),
    (["solve", "--tau"], "--tau"),
    (["certify", "--labels", "y.txt", "--tau", "1"], "--embeddings"),
    (["solve", "--counts", "3,3", "--labels", "y.txt"], "--labels"),
    (["bogus"], "COMMAND"),
    ([], "COMMAND"),
])
def test_argparse_errors_name_the_argument(capsys, args, name):
    assert_one_line_error(run(capsys, *args), name)


def test_verify_refuses_restarts_that_do_not_fit(capsys):
    line = assert_one_line_error(run(capsys, "verify", "--counts", "3,3", "--dim", 10**6,
                                     "--restarts", 1000, "--device", "cpu"), "--restarts")
    assert "would need" in line and "available" in line and "restart(s) fit" in line


def test_verify_refuses_a_dimension_that_does_not_fit(capsys):
    line = assert_one_line_error(run(capsys, "verify", "--counts", "3,3", "--dim", 10**9,
                                     "--restarts", 1, "--device", "cpu"), "--dim")
    assert "would need" in line and "available" in line


def test_verify_refuses_an_n_that_does_not_fit(capsys):
    line = assert_one_line_error(run(capsys, "verify", "--counts", "500000000,500000000",
                                     "--device", "cpu"), "--counts")
    assert "would need" in line


def test_solve_refuses_a_program_that_does_not_fit(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(ufm.inputs, "available_memory", lambda: 10**6)
    (tmp_path / "c.txt").write_text(" ".join(map(str, range(1, 201))))
    assert_one_line_error(run(capsys, "solve", "--counts-file", tmp_path / "c.txt"), "--counts-file")
    monkeypatch.setattr(ufm.inputs, "available_memory", lambda: 10**9)
    out = tmp_path / "out"
    assert_one_line_error(run(capsys, "solve", "--counts", "100000000,100000000", "--out", out, "--lift"),
                          "--lift")
    assert not out.exists()


def test_available_memory_is_known_here():
    avail = ufm.inputs.available_memory()
    assert avail is None or avail > 0


# --------------------------------------------------------------------------------------------
# --out

@pytest.mark.parametrize("case", ["under a file", "empty path", "a file"])
def test_bad_out(capsys, tmp_path, case):
    (tmp_path / "f").write_text("x")
    out = {"under a file": tmp_path / "f" / "res", "empty path": "", "a file": tmp_path / "f"}[case]
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(run(capsys, "solve", "--counts", "3,3", "--out", out), "--out")
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "f").read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_out_read_only_directory(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_one_line_error(run(capsys, "solve", "--out", ro), "--out")
        assert_one_line_error(run(capsys, "solve", "--out", ro / "sub"), "--out")
    finally:
        ro.chmod(0o755)


# --------------------------------------------------------------------------------------------
# --version and help

def test_version(capsys):
    code, out, err = run(capsys, "--version")
    assert code == 0 and out == f"ufm {ufm.__version__}\n" and err == ""


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "verify", "--help")
    assert code == 0 and "--counts-file" in out


def _parsers(parser):
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_has_help():
    missing = [f"{prog} {action.option_strings or action.dest}"
               for prog, parser in _parsers(build_parser()) for action in parser._actions
               if not (action.help and action.help.strip()) or action.help == argparse.SUPPRESS]
    assert not missing, missing
    commands = {"solve", "verify", "certify", "run"}
    assert {prog.split()[-1] for prog, _ in _parsers(build_parser())} >= commands
