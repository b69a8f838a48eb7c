"""``ufm verify --out DIR``: result.json (what --json prints) and arrays.npz (end points in the
user's sample order), re-certifiable with ``ufm certify``; restarts stopped by their iteration
limit are never called converged; "certified" is each restart's own certificate."""

import contextlib
import io
import json

import numpy as np
import pytest

from ufm.cli import main
from ufm.metrics import gram_distance

#: (loss, sample arguments, dimension): small problems, every loss of ``ufm verify --help``
CASES = {
    "supcon": ("--counts", "3,3", "--dim", "2"),
    "supcon_in": ("--counts", "3,3", "--dim", "2"),
    "infonce": ("--instances", "4", "--dim", "3"),
    "dcl": ("--instances", "4", "--dim", "3"),
    "dhel": ("--instances", "4", "--dim", "3"),
    "kcl": ("--instances", "3", "--dim", "2"),  # one restart certified, one not
    "alpha_cl": ("--instances", "4", "--dim", "3"),
}
RESTARTS = 2


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """``ufm verify --loss L ... --out DIR --json`` for each loss of CASES, run once per module:
    loss -> (printed object, DIR)."""
    done = {}

    def get(loss):
        if loss not in done:
            out = tmp_path_factory.mktemp(loss) / "out"
            buf, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
                code = main(["verify", "--loss", loss, *CASES[loss], "--restarts", str(RESTARTS),
                             "--out", str(out), "--json"])
            assert code == 0, err.getvalue()
            done[loss] = json.loads(buf.getvalue()), out
        return done[loss]

    return get


def run(capsys, *args):
    """``ufm ARGS`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def verify_json(capsys, *args):
    code, out, err = run(capsys, "verify", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def without_timings(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k not in ("time_s", "timings")}


def sample_args_for_certify(loss, args, labels_file):
    """The sample arguments that ``ufm certify`` needs for the saved rows."""
    if "--instances" in args:
        return ("--instances", args[args.index("--instances") + 1])
    return ("--labels", labels_file)


@pytest.mark.parametrize("loss", list(CASES))
def test_out_writes_result_and_arrays(loss, verified):
    printed, out = verified(loss)
    assert sorted(p.name for p in out.iterdir()) == ["arrays.npz", "result.json"]  # no temporary left
    saved = json.loads((out / "result.json").read_text())
    assert saved == printed  # the very object --json printed

    n = printed["samples"]["n"]
    d = printed["dim"]
    with np.load(out / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    assert set(arrays) == {"restarts", "values", "certified", "labels", "cluster", "map_permutation",
                           "map_rotation"}
    H, values, certified, labels = (arrays[k] for k in ("restarts", "values", "certified", "labels"))
    assert H.shape == (RESTARTS, n, d) and H.dtype == np.float64
    assert np.allclose(np.linalg.norm(H, axis=-1), 1.0, atol=1e-9)
    assert values.shape == (RESTARTS,) and values.dtype == np.float64
    assert certified.shape == (RESTARTS,) and certified.dtype == np.bool_
    assert labels.shape == (n,)
    rows = printed["restarts"]
    assert np.allclose(values, [r["value"] for r in rows], rtol=1e-12, atol=0)
    # certified: each restart's own certificate (null in the JSON where none exists -> False)
    assert certified.tolist() == [r["certified"] is True for r in rows]
    if "--instances" in CASES[loss]:
        assert labels.tolist() == np.repeat(np.arange(n // 2), 2).tolist()  # sample a V + v: instance a
    if not printed["certifiable"]:
        assert not certified.any() and all(r["certified"] is None for r in rows)
    # the census's maps: each restart onto its minimum's representative, rows in the user's order
    assert arrays["cluster"].tolist() == [-1 if r["cluster"] is None else r["cluster"] for r in rows]
    for r, c in enumerate(arrays["cluster"]):
        if c >= 0:
            rep = printed["minima"][c]["representative"]
            mapped = H[rep][arrays["map_permutation"][r]]
            assert gram_distance(H[r], mapped) <= printed["same_point_tol"]
            assert np.linalg.norm(H[r] @ arrays["map_rotation"][r] - mapped) <= 0.1 * np.sqrt(n)


@pytest.mark.parametrize("loss", ["supcon", "alpha_cl"])
def test_result_json_is_what_json_prints(loss, verified, capsys):
    """An independent ``--json`` run without --out prints the saved object, up to the timings."""
    _, out = verified(loss)
    saved = json.loads((out / "result.json").read_text())
    again = verify_json(capsys, "--loss", loss, *CASES[loss], "--restarts", RESTARTS)
    assert without_timings(again) == without_timings(saved)


@pytest.mark.parametrize("loss", [name for name in CASES if name != "supcon_in"])
def test_saved_embeddings_recertify(loss, verified, capsys, tmp_path):
    args = CASES[loss]
    printed, out = verified(loss)
    with np.load(out / "arrays.npz") as z:
        H, labels = z["restarts"], z["labels"]
    np.save(tmp_path / "labels.npy", labels)
    for r, row in enumerate(printed["restarts"]):
        np.save(tmp_path / f"h{r}.npy", H[r])
        rep = json.loads(run(capsys, "certify", "--embeddings", tmp_path / f"h{r}.npy", "--loss", loss,
                             *sample_args_for_certify(loss, args, tmp_path / "labels.npy"), "--json")[1])
        assert rep["certified"] == row["certified"]
        assert rep["value"] == pytest.approx(row["value"], rel=1e-9, abs=1e-12)


def test_unsorted_labels_round_trip(capsys, tmp_path):
    """Embeddings are stored sorted by class; the saved rows follow the labels as the user gave
    them (here b a b a a b), so that the saved labels and rows line up and re-certify."""
    given = ["b", "a", "b", "a", "a", "b"]
    (tmp_path / "y.txt").write_text("\n".join(given) + "\n")
    out = tmp_path / "out"
    printed = verify_json(capsys, "--labels", tmp_path / "y.txt", "--tau", "0.5", "--dim", "2",
                          "--restarts", RESTARTS, "--out", out)
    with np.load(out / "arrays.npz") as z:
        H, labels, certified = z["restarts"], z["labels"], z["certified"]
    assert labels.tolist() == given
    assert certified.all()  # collapse to two antipodal points: the optimum in d = 2
    same = np.array(given)[:, None] == np.array(given)[None, :]
    for r in range(RESTARTS):
        G = H[r] @ H[r].T
        assert np.allclose(G[same], 1.0, atol=1e-4)  # row i is the user's sample i
        assert np.allclose(G[~same], -1.0, atol=1e-4)
        np.save(tmp_path / "h.npy", H[r])
        rep = json.loads(run(capsys, "certify", "--embeddings", tmp_path / "h.npy", "--labels",
                             tmp_path / "y.txt", "--tau", "0.5", "--json")[1])
        assert rep["certified"] is True
        assert rep["value"] == pytest.approx(printed["restarts"][r]["value"], rel=1e-9)


@pytest.mark.parametrize("loss", ["supcon", "infonce", "alpha_cl"])
def test_iteration_limit_is_not_converged(loss, capsys):
    printed = verify_json(capsys, "--loss", loss, *CASES[loss], "--restarts", RESTARTS, "--max-iter", 1)
    assert printed["converged"] == 0 and printed["distinct_minima"] == 0
    for r in printed["restarts"]:
        assert r["stop"] == r["stop_reason"] == "iteration_limit"
        assert r["converged"] is False and r["cluster"] is None and r["kind"] == "not_converged"
    assert f"{RESTARTS} did not converge" in printed["claim"]


def test_converged_means_the_gradient_tolerance(capsys):
    """Every restart is converged exactly where it stopped on the gradient tolerance, whatever
    its certificate (at 12 iterations, end points of this problem tend to be certified at the
    iteration limit)."""
    printed = verify_json(capsys, "--counts", "3,3", "--dim", "2", "--restarts", 4, "--max-iter", 12)
    rows = printed["restarts"]
    for r in rows:
        assert r["converged"] is (r["stop"] == "gradient_tolerance")
    assert printed["converged"] == sum(r["converged"] for r in rows)
    assert printed["fraction_global"] == pytest.approx(np.mean([r["certified"] for r in rows]))


def test_certified_end_point_at_iteration_limit_is_not_converged():
    """A restart whose own certificate holds but whose optimiser ran out of iterations is
    certified and not converged, and the claim says so."""
    from solvers.verify import verify
    from ufm.losses import SupCon
    from ufm.problem import Problem
    from ufm.samples import Samples

    res = verify(Problem(SupCon(tau=0.5), Samples.from_counts((3, 3))), dim=2, restarts=2, seed=0)
    assert all(r.certified and r.converged for r in res.restarts)
    res.restarts[1].stop_reason = "iteration_limit"
    res.restarts[1].cluster = None
    assert res.restarts[1].certified and not res.restarts[1].converged
    assert res.restarts[1].kind == "not_converged"
    d = res.to_dict()
    assert d["converged"] == 1 and d["fraction_global"] == 1.0
    assert d["restarts"][1]["converged"] is False and d["restarts"][1]["certified"] is True
    assert "1 did not converge" in d["claim"] and "iteration limit: 1" in d["claim"]
    assert "1 of them certified all the same" in d["claim"]


def test_certified_is_the_restart_own_certificate():
    """Not the class-level certificate: a restart whose own certificate fails is not certified
    even where the class-level one holds."""
    from types import SimpleNamespace

    from solvers.verify import RestartReport

    rep = RestartReport(value=1.0, excess=1.0, gap=0.0, rel_gap=0.0, gram_distance=0.0,
                        procrustes_distance=0.0, class_gram_difference=0.0, grad_norm=0.0,
                        certificate=SimpleNamespace(certified=False), stop_reason="gradient_tolerance",
                        iterations=3, cluster=0, class_certificate=SimpleNamespace(certified=True))
    assert rep.certified is False and rep.converged is True


def test_degenerate_problem_out(capsys, tmp_path):
    out = tmp_path / "out"
    printed = verify_json(capsys, "--counts", "1,1", "--dim", "2", "--out", out)
    assert json.loads((out / "result.json").read_text()) == printed
    with np.load(out / "arrays.npz") as z:
        assert z["restarts"].shape == (0, 2, 2) and z["values"].shape == (0,)
        assert z["certified"].shape == (0,) and z["labels"].tolist() == [0, 1]


def _no_work(*args, **kwargs):
    raise AssertionError("verify ran before --out was checked")


@pytest.mark.parametrize("make, says", [("file", "exists and is not a directory"),
                                         ("under_file", "is a file, not a directory: cannot create")])
def test_bad_out_is_one_line_before_any_work(make, says, capsys, tmp_path, monkeypatch):
    import solvers.verify

    monkeypatch.setattr(solvers.verify, "verify", _no_work)
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder\n")
    target = blocker if make == "file" else blocker / "sub" / "out"
    code, out, err = run(capsys, "verify", "--counts", "3,3", "--dim", "2", "--restarts", 1, "--out", target)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ufm: error: --out: "), err
    assert says in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert blocker.read_text() == "not a folder\n"


def test_failed_save_leaves_no_partial_files(capsys, tmp_path, monkeypatch):
    """Both files are serialised before either is written: a failure leaves the folder as it was."""
    import ufm.cli.commands

    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text("old\n")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ufm.cli.commands.np, "savez_compressed", broken)
    code, _, err = run(capsys, "verify", "--counts", "3,3", "--dim", "2", "--restarts", 1, "--out", out)
    assert code == 1 and "disk full" in err
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]
    assert (out / "result.json").read_text() == "old\n"
