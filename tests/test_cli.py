"""The command line: JSON keys, tables, output files, and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ufm.closed_forms import supcon_balanced_optimum

SOLVE_KEYS = {"loss", "counts", "tau", "method", "optimal_value", "class_gram", "class_mean_norms",
              "rank", "collapsed", "certificate", "time_s"}


def ufm(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "ufm", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_default_solve_prints_geometry():
    r = ufm("solve")
    assert r.returncode == 0, r.stderr
    assert "class-mean cosines" in r.stdout and "CERTIFIED" in r.stdout


def test_solve_json_keys_and_values():
    r = ufm("solve", "--counts", "5,5,5", "--tau", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert SOLVE_KEYS <= set(out)
    assert {"lambda_min", "gap_bound"} <= set(out["certificate"])
    assert out["optimal_value"] == pytest.approx(supcon_balanced_optimum(3, 5, 0.5), rel=1e-9)
    assert np.allclose(np.array(out["class_gram"])[0, 1:], -0.5, atol=1e-6)
    assert out["rank"] == 2 and out["collapsed"] is True


def test_class_gram_null_above_500_classes():
    r = ufm("solve", "--counts", ",".join(["3"] * 300 + ["7"] * 300), "--json")
    out = json.loads(r.stdout)
    assert out["class_gram"] is None and len(out["class_mean_norms"]) == 600


def test_labels_file_and_out_dir(tmp_path):
    labels = tmp_path / "y.txt"
    labels.write_text("cat cat dog dog dog bird bird\n")
    out = tmp_path / "res"
    r = ufm("solve", "--labels", str(labels), "--tau", "0.3", "--out", str(out), "--lift", "--json")
    assert r.returncode == 0, r.stderr
    saved = json.loads((out / "result.json").read_text())
    assert saved["optimal_value"] == json.loads(r.stdout)["optimal_value"]
    arrays = np.load(out / "arrays.npz")
    H = arrays["embeddings"]
    assert H.shape[0] == 7 and np.allclose(np.linalg.norm(H, axis=1), 1)
    assert list(arrays["class_labels"]) == ["bird", "cat", "dog"]


def test_solve_imports_neither_torch_nor_matplotlib():
    code = ("import sys; from ufm.cli import main; main(['solve', '--json']); "
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy import'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


BAD = [
    (["--counts", "3,0"], "--counts"),
    (["--counts", "3,-2"], "--counts"),
    (["--counts", "3,x"], "--counts"),
    (["--counts", "2.5,3"], "--counts"),
    (["--tau", "0"], "--tau"),
    (["--tau", "-1"], "--tau"),
    (["--tau", "nan"], "--tau"),
    (["--tau", "abc"], "--tau"),
    (["--loss", "nope"], "--loss"),
    (["--method", "magic"], "--method"),
    (["--solver", "magic"], "--solver"),
    (["--tol", "-1"], "--tol"),
    (["--labels", "/no/such/file.npy"], "--labels"),
    (["--lift"], "--lift"),
    (["--counts", ",".join(["50"] * 10), "--method", "full"], "--method"),
    (["--counts", "3,3", "--batches", "random:2", "--method", "orbit"], "--method"),
    (["--loss", "supcon_in"], "--loss"),
    (["--loss", "alpha_cl", "--solver", "clarabel"], "--solver"),
]


@pytest.mark.parametrize("args,name", BAD)
def test_bad_input_one_line_error(args, name):
    r = ufm("solve", *args, "--json")
    assert r.returncode == 2
    assert r.stdout == ""
    err = [line for line in r.stderr.splitlines() if line.startswith("ufm: error")]
    assert len(err) == 1 and name in err[0]
    assert "Traceback" not in r.stderr


def test_bad_input_leaves_no_partial_file(tmp_path):
    out = tmp_path / "res"
    r = ufm("solve", "--counts", "3,0", "--out", str(out))
    assert r.returncode == 2
    assert not out.exists() or not any(out.iterdir())


def test_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = ufm("solve", "--out", str(f))
    assert r.returncode == 2 and "--out" in r.stderr


def test_run_study_writes_results(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text('[study]\nname = "s"\n[problem]\nkind = "counts"\n'
                     'counts = [[4, 4, 2], [3, 3, 3]]\ntau = [0.2, 1.0]\n')
    out = tmp_path / "out"
    r = ufm("run", str(study), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout)
    assert len(payload["rows"]) == 4 and all(row["certified"] for row in payload["rows"])
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4
    balanced = [json.loads(x) for x in lines if json.loads(x)["counts"] == [3, 3, 3]]
    for row in balanced:
        assert row["optimal_value"] == pytest.approx(supcon_balanced_optimum(3, 3, row["tau"]), rel=1e-9)
    assert (out / "summary.csv").read_text().count("\n") == 5


def test_bundled_study_runs(tmp_path):
    r = ufm("run", "step_imbalance", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "70 problems, 70 certified" in r.stdout


@pytest.mark.parametrize("text", ['[problem]\nkind = "counts"\ncounts = [3, 0]\n',
                                  '[problem]\nkind = "step"\nk_major = 2\nk_minor = 2\nn_minor = 2\n'
                                  'ratio = 3\ntau = -1\n',
                                  "not toml ["])
def test_bad_study_one_line_error(tmp_path, text):
    study = tmp_path / "bad.toml"
    study.write_text(text)
    out = tmp_path / "out"
    r = ufm("run", str(study), "--out", str(out))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len([x for x in r.stderr.splitlines() if x.startswith("ufm: error")]) == 1
    assert not out.exists()


VERIFY_KEYS = {"optimal_value", "relaxation_tight", "fraction_global", "distinct_minima", "restarts"}
RESTART_KEYS = {"value", "gap", "gram_distance", "grad_norm", "gap_bound", "certified"}


def test_verify_json():
    r = ufm("verify", "--counts", "6,5,3,2", "--tau", "0.3", "--dim", "3", "--restarts", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert VERIFY_KEYS <= set(out)
    assert len(out["restarts"]) == 3 and RESTART_KEYS <= set(out["restarts"][0])
    assert out["relaxation_tight"] and out["fraction_global"] == 1.0


def test_verify_table_low_dimension():
    r = ufm("verify", "--counts", "6,5,3,2", "--tau", "0.3", "--dim", "2", "--restarts", "2")
    assert r.returncode == 0, r.stderr
    assert "lower bound" in r.stdout and "no" in r.stdout


@pytest.fixture
def saved_optimum(tmp_path):
    from solvers import solve
    from ufm import Problem

    H = solve(Problem((6, 5, 3, 2), 0.3)).embeddings(lift=True)
    y = np.repeat(np.array(["a", "b", "c", "d"]), [6, 5, 3, 2])
    perm = np.random.default_rng(0).permutation(len(y))
    np.save(tmp_path / "H.npy", H[perm])
    np.save(tmp_path / "y.npy", y[perm])
    (tmp_path / "y.txt").write_text("\n".join(y[perm]))
    np.save(tmp_path / "H3.npy", 3 * H[perm])
    np.save(tmp_path / "Hnan.npy", np.full_like(H, np.nan))
    return tmp_path


def test_certify_trained_embeddings(saved_optimum):
    d = saved_optimum
    r = ufm("certify", "--embeddings", str(d / "H.npy"), "--labels", str(d / "y.txt"), "--tau", "0.3",
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"value", "lambda_min", "gap_bound", "certified"} <= set(out)
    assert out["certified"] and out["rel_gap"] <= 1e-9 and out["gram_distance"] <= 1e-6
    assert out["nc1"] <= 1e-12 and out["class_certificate"]["certified"]


def test_certify_pt_and_normalize(saved_optimum):
    d = saved_optimum
    torch_mod = pytest.importorskip("torch")
    torch_mod.save({"emb": torch_mod.tensor(np.load(d / "H3.npy"))}, d / "H.pt")
    bad = ufm("certify", "--embeddings", str(d / "H.pt"), "--labels", str(d / "y.npy"), "--tau", "0.3")
    assert bad.returncode == 2 and "--normalize" in bad.stderr
    ok = ufm("certify", "--embeddings", str(d / "H.pt"), "--labels", str(d / "y.npy"), "--tau", "0.3",
             "--normalize", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["certified"]


@pytest.mark.parametrize("args,name", [
    (["--embeddings", "Hnan.npy", "--labels", "y.npy", "--tau", "0.3"], "--embeddings"),
    (["--embeddings", "H.npy", "--labels", "y.npy", "--tau", "0"], "--tau"),
    (["--embeddings", "missing.npy", "--labels", "y.npy", "--tau", "1"], "--embeddings"),
    (["--embeddings", "H.npy", "--labels", "short.npy", "--tau", "1"], "--labels"),
    (["--embeddings", "H.npy", "--labels", "y.npy", "--tau", "1", "--loss", "nope"], "--loss"),
])
def test_certify_bad_input(saved_optimum, args, name):
    d = saved_optimum
    np.save(d / "short.npy", np.arange(3))
    args = [str(d / a) if a.endswith(".npy") else a for a in args]
    r = ufm("certify", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("ufm: error")]
    assert len(err) == 1 and name in err[0]


@pytest.mark.parametrize("args,name", [(["--dim", "0"], "--dim"), (["--restarts", "0"], "--restarts"),
                                       (["--dim", "x"], "--dim"), (["--optimizer", "sgd"], "--optimizer"),
                                       (["--device", "tpu"], "--device"), (["--tau", "-2"], "--tau")])
def test_verify_bad_input(args, name):
    r = ufm("verify", "--counts", "3,3", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert name in r.stderr.splitlines()[-1]


# ---- the loss family on the command line (issue 8) ---------------------------------------------------


def test_every_loss_solves_from_the_command_line():
    for args in (["--loss", "infonce", "--instances", "5", "--views", "3", "--negatives", "same_view"],
                 ["--loss", "dcl", "--instances", "4"], ["--loss", "dhel", "--tau", "0.3"],
                 ["--loss", "kcl", "--kernel", "riesz", "--s", "1", "--instances", "6"],
                 ["--loss", "alpha_cl", "--weight", "quadratic", "--instances", "5"]):
        r = ufm("solve", *args, "--dim", "3", "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert SOLVE_KEYS <= set(out) and out["certificate"]["certified"], args
        assert out["loss"] == args[1] and out["samples"]["kind"] == "views"
        assert out["relaxation_tight"] == (out["rank"] <= 3) and out["dim"] == 3
    r = ufm("solve", "--loss", "kcl", "--instances", "4")
    assert r.returncode == 0 and "convex minorant" in r.stdout and "kernel gaussian" in r.stdout


@pytest.mark.parametrize("args,name", [
    (["--loss", "supcon", "--t", "2"], "--t"),
    (["--loss", "kcl", "--tau", "0.1"], "--tau"),
    (["--loss", "dhel", "--instances", "4", "--views", "3"], "--views"),
    (["--loss", "infonce", "--counts", "3,3"], "--loss"),
    (["--loss", "kcl", "--kernel", "cubic"], "--kernel"),
    (["--loss", "kcl", "--s", "0"], "--s"),
    (["--loss", "alpha_cl", "--eps", "-1"], "--eps"),
    (["--views", "2"], "--views"),
    (["--loss", "supcon_in"], "--loss"),
    (["--loss", "dhel", "--reduction", "median"], "--reduction"),
])
def test_family_bad_input_one_line_error(args, name):
    r = ufm("solve", *args, "--json")
    assert r.returncode == 2 and r.stdout == ""
    err = [line for line in r.stderr.splitlines() if line.startswith("ufm: error")]
    assert len(err) == 1 and err[0].startswith(f"ufm: error: {name}:"), r.stderr


def test_verify_non_convex_loss_says_no_certificate_exists():
    r = ufm("verify", "--loss", "supcon_in", "--counts", "4,3,3", "--dim", "2", "--restarts", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["certifiable"] is False and out["fraction_global"] is None
    assert "no global certificate exists" in out["claim"]
    assert all(x["certified"] is None for x in out["restarts"])
    table = ufm("verify", "--loss", "supcon_in", "--counts", "4,3,3", "--dim", "2", "--restarts", "2")
    assert "no global certificate exists" in table.stdout
    cert = ufm("certify", "--loss", "supcon_in", "--embeddings", "x.npy", "--labels", "y.txt")
    assert cert.returncode == 2 and "--loss" in cert.stderr


def test_verify_and_certify_views_losses(tmp_path):
    r = ufm("verify", "--loss", "alpha_cl", "--instances", "4", "--restarts", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["optimizer"] == "coordinate" and out["fraction_global"] == 1.0
    from solvers import solve
    from ufm import Problem, Samples, get_loss

    H = solve(Problem(get_loss("dhel"), Samples.instances_views(5, 2))).embeddings(lift=True)
    np.save(tmp_path / "H.npy", H)
    c = ufm("certify", "--loss", "dhel", "--instances", "5", "--embeddings", str(tmp_path / "H.npy"),
            "--json")
    assert c.returncode == 0, c.stderr
    assert json.loads(c.stdout)["certified"]
    bad = ufm("certify", "--loss", "dhel", "--instances", "4", "--embeddings", str(tmp_path / "H.npy"))
    assert bad.returncode == 2 and "--instances" in bad.stderr


def test_help_lists_every_loss_parameter():
    r = ufm("solve", "--help")
    for flag in ("--tau", "--negatives", "--kernel", "--t", "--gamma", "--s", "--weight", "--p", "--eps",
                 "--q", "--reduction", "--instances", "--views", "--batches"):
        assert flag in r.stdout
