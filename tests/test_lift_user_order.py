"""Per-sample arrays in the user's order (issue 23, item 4): ``ufm solve --out DIR --lift`` saves
row i for line i of the labels file (the solvers keep samples sorted by class), batch indices
name the user's samples, and the saved rows fed back to ``ufm certify`` with the same labels and
batches pair correctly. JSON string indices in a batch file are refused."""

import json

import numpy as np
import pytest
from test_inputs import assert_one_line_error

from ufm.cli import main
from ufm.samples import Samples

COUNTS = (4, 3, 2)  # distinct sizes: the class-mean cosines tell the classes apart
TAU = "0.5"
#: batches in the user's numbering (n = 9); they cut across classes
BATCHES_USER = [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [0, 2, 4, 6, 8], [1, 3, 5, 7]]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args) -> dict:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def shuffled(seed: int = 23):
    """(sorted labels, permutation p, the user's labels y_sorted[p]): the user's sample j is sample
    p[j] of the sorted problem."""
    y_sorted = np.repeat(np.arange(len(COUNTS)), COUNTS)
    perm = np.random.default_rng(seed).permutation(y_sorted.size)
    assert not np.array_equal(y_sorted[perm], y_sorted)
    return y_sorted, perm, y_sorted[perm]


def write_labels(path, y) -> str:
    path.write_text("".join(f"{v}\n" for v in y))
    return str(path)


def write_batches(path, batches) -> str:
    path.write_text(json.dumps([[int(i) for i in b] for b in batches]))
    return str(path)


def class_mean_cosines(H, labels, classes):
    """(cosines, norms) of the class means of the rows of H grouped by ``labels``."""
    M = np.stack([H[np.asarray(labels) == c].mean(axis=0) for c in classes])
    norms = np.linalg.norm(M, axis=1)
    U = M / norms[:, None]
    return U @ U.T, norms


# ---- the acceptance test ------------------------------------------------------------------------


def test_lifted_rows_recertify_with_the_users_labels_and_batches(capsys, tmp_path):
    """Shuffled labels, batches in the shuffled numbering: the saved rows certify with the user's
    labels and batches, with the value of the sorted problem (batches mapped by the permutation)."""
    y_sorted, perm, y_user = shuffled()
    user_labels = write_labels(tmp_path / "y_user.txt", y_user)
    user_batches = write_batches(tmp_path / "b_user.json", BATCHES_USER)
    sorted_labels = write_labels(tmp_path / "y_sorted.txt", y_sorted)
    sorted_batches = write_batches(tmp_path / "b_sorted.json", [perm[b] for b in BATCHES_USER])
    out = tmp_path / "out"

    solved = run_json(capsys, "solve", "--labels", user_labels, "--batches", user_batches, "--tau", TAU,
                      "--out", out, "--lift")
    reference = run_json(capsys, "solve", "--labels", sorted_labels, "--batches", sorted_batches,
                         "--tau", TAU)
    assert solved["certificate"]["certified"] and reference["certificate"]["certified"]
    assert solved["optimal_value"] == pytest.approx(reference["optimal_value"], rel=1e-6)
    assert solved["minibatch"]["collapsed"] is False  # the batches matter: the rows are not class means

    mine = run_json(capsys, "certify", "--embeddings", out / "arrays.npz", "--labels", user_labels,
                    "--batches", user_batches, "--tau", TAU)
    assert mine["certificate"]["certified"] is True
    assert mine["value"] == pytest.approx(solved["optimal_value"], rel=1e-9)
    assert mine["value"] == pytest.approx(reference["optimal_value"], rel=1e-6)
    assert mine["gram_distance"] < 1e-6
    with np.load(out / "arrays.npz") as z:
        H, labels = z["embeddings"], z["labels"]
    assert labels.tolist() == y_user.tolist()

    # the same rows in the sorted numbering (sorted sample perm[j] is the user's j)
    H_sorted = np.empty_like(H)
    H_sorted[perm] = H
    np.save(tmp_path / "h_sorted.npy", H_sorted)
    theirs = run_json(capsys, "certify", "--embeddings", tmp_path / "h_sorted.npy", "--labels",
                      sorted_labels, "--batches", sorted_batches, "--tau", TAU)
    assert theirs["certificate"]["certified"] is True
    assert theirs["value"] == pytest.approx(mine["value"], rel=1e-9)


def test_lifted_rows_have_the_users_labels_with_batches(capsys, tmp_path):
    """Row i of the saved embeddings is the user's sample i: class means of the saved rows grouped
    by the user's labels have the solution's class-mean cosines and norms."""
    _, _, y_user = shuffled(5)
    out = tmp_path / "out"
    solved = run_json(capsys, "solve", "--labels", write_labels(tmp_path / "y.txt", y_user), "--batches",
                      write_batches(tmp_path / "b.json", BATCHES_USER), "--tau", TAU, "--out", out, "--lift")
    with np.load(out / "arrays.npz") as z:
        H = z["embeddings"]
    cos, norms = class_mean_cosines(H, y_user, range(len(COUNTS)))
    np.testing.assert_allclose(cos, solved["class_gram"], atol=1e-8)
    np.testing.assert_allclose(norms, solved["class_mean_norms"], atol=1e-8)


@pytest.mark.parametrize("names", [False, True], ids=["numbers", "strings"])
def test_lifted_rows_have_the_users_labels_without_batches(capsys, tmp_path, names):
    """Without --batches (the class-level program, lifted): the Gram of the saved rows is the class
    Gram at the user's labels, entry by entry, and ``labels`` is the user's labels file."""
    _, _, y = shuffled(11)
    classes = ["bird", "cat", "dog"] if names else [0, 1, 2]  # sorted: class c is classes[c]
    y_user = [classes[c] for c in y]
    labels_file = write_labels(tmp_path / "y.txt", y_user)
    out = tmp_path / "out"
    solved = run_json(capsys, "solve", "--labels", labels_file, "--tau", TAU, "--out", out, "--lift")
    assert solved["collapsed"] is True
    with np.load(out / "arrays.npz") as z:
        H, labels, class_labels = z["embeddings"], z["labels"], z["class_labels"]
    assert labels.tolist() == y_user
    assert class_labels.tolist() == classes
    C = np.asarray(solved["class_gram"])
    np.testing.assert_allclose(H @ H.T, C[np.ix_(y, y)], atol=1e-6)
    cos, _ = class_mean_cosines(H, y_user, classes)
    np.testing.assert_allclose(cos, C, atol=1e-6)
    rep = run_json(capsys, "certify", "--embeddings", out / "arrays.npz", "--labels", labels_file,
                   "--tau", TAU)
    assert rep["certificate"]["certified"] is True
    assert rep["value"] == pytest.approx(solved["optimal_value"], rel=1e-9)


def test_verify_rows_recertify_with_the_users_batches(capsys, tmp_path):
    """``ufm verify --out`` with shuffled labels and a batch file: a saved end point re-certifies
    with the same labels and batches, at its own value."""
    _, _, y_user = shuffled(7)
    labels_file = write_labels(tmp_path / "y.txt", y_user)
    batches = write_batches(tmp_path / "b.json", BATCHES_USER)
    out = tmp_path / "out"
    printed = run_json(capsys, "verify", "--labels", labels_file, "--batches", batches, "--tau", TAU,
                       "--dim", "3", "--restarts", "2", "--out", out)
    with np.load(out / "arrays.npz") as z:
        H, labels = z["restarts"], z["labels"]
    assert labels.tolist() == y_user.tolist()
    for r, row in enumerate(printed["restarts"]):
        np.save(tmp_path / "h.npy", H[r])
        rep = run_json(capsys, "certify", "--embeddings", tmp_path / "h.npy", "--labels", labels_file,
                       "--batches", batches, "--tau", TAU)
        assert rep["value"] == pytest.approx(row["value"], rel=1e-9)
        assert rep["certificate"]["certified"] == row["certified"]


# ---- the ordering helpers ------------------------------------------------------------------------


def test_samples_user_order_round_trip():
    y = np.array(["b", "a", "c", "a", "b", "a"])
    s = Samples.from_labels(y)
    x = np.arange(6) * 10
    assert s.to_user_order(s.from_user_order(x)).tolist() == x.tolist()
    assert s.user_labels.tolist() == y.tolist()
    assert s.from_user_order(y).tolist() == sorted(y.tolist())  # stored: class by class
    # the user's samples 0 and 4 ("b") sit at positions 3 and 4 of the class order a a a b b c
    assert s.user_positions([0, 4]).tolist() == [3, 4]
    plain = Samples.from_counts((2, 2))
    assert plain.order is None and plain.to_user_order(x[:4]).tolist() == x[:4].tolist()
    assert plain.user_positions([3, 1]).tolist() == [3, 1]


# ---- string indices -----------------------------------------------------------------------------


@pytest.mark.parametrize("batches, shown", [
    ([["0", "1"]], '"0" is a JSON string'),
    ([[0, 1], [2, "3"]], 'batch 2: index "3" is a JSON string'),
    ([[0, 1.5]], "1.5 is not an integer"),
    ([[0, 1.0]], "1.0 is not an integer"),
    ([[0, True]], "true is not an integer"),
])
@pytest.mark.parametrize("command", ["solve", "certify"])
def test_json_indices_that_are_not_numbers_are_refused(capsys, tmp_path, batches, shown, command):
    labels = write_labels(tmp_path / "y.txt", [1, 0, 1, 0])
    (tmp_path / "b.json").write_text(json.dumps(batches))
    args = ["--labels", labels, "--batches", tmp_path / "b.json", "--tau", TAU]
    if command == "certify":
        np.save(tmp_path / "h.npy", np.eye(4))
        args = ["--embeddings", tmp_path / "h.npy", *args]
    line = assert_one_line_error(run(capsys, command, *args), "--batches")
    assert shown in line


def test_string_indices_refused_by_the_command_line(tmp_path):
    """The installed entry point: exit 2 and one line, no traceback."""
    import subprocess
    import sys

    (tmp_path / "y.txt").write_text("1\n0\n1\n0\n")
    (tmp_path / "b.json").write_text('[["0", "1"], ["2", "3"]]')
    r = subprocess.run([sys.executable, "-m", "ufm", "solve", "--labels", str(tmp_path / "y.txt"),
                        "--batches", str(tmp_path / "b.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("ufm: error: --batches: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert "JSON string" in r.stderr and "Traceback" not in r.stderr
