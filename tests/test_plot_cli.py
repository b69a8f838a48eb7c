"""``ufm plot KIND`` for every kind, and ``--plot FILE`` on solve, verify and certify: the file is
drawn from the right data, bad input is refused before any work with one line naming the
argument."""

import json

import numpy as np
import pytest

from ufm.cli import main

PNG, PDF = b"\x89PNG", b"%PDF"


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind,extra", [
    ("heatmap", ["--counts", "4,4,2"]),
    ("long_tail", ["--counts", "8,4,2,1"]),
    ("embedding", ["--counts", "4,4,2", "--projection", "3d"]),
    ("step", ["--k-major", "2", "--k-minor", "2", "--ratios", "1,5", "--taus", "0.5,1"]),
    ("census", ["--counts", "3,3,2", "--restarts", "3"]),
    ("curves", ["--counts", "3,3,2", "--restarts", "2"]),
    ("family", ["--instances", "4", "--losses", "supcon,dhel,kcl"]),
])
def test_every_kind_draws_a_figure(kind, extra, tmp_path, capsys):
    out = tmp_path / f"{kind}.png"
    code, stdout, err = run(capsys, "plot", kind, *extra, "--out", str(out), "--json")
    assert code == 0, err
    assert out.read_bytes()[:4] == PNG
    info = json.loads(stdout)
    assert info["kind"] == kind and info["figure"] == str(out)
    if kind == "step":
        rows = info["rows"]
        assert [(r["ratio"], r["tau"]) for r in rows] == [(1, 0.5), (5, 0.5), (1, 1), (5, 1)]
        # balanced (R = 1): every class-mean cosine is -1/(k-1) = -1/3
        assert rows[0]["cos_major"] == pytest.approx(-1 / 3, abs=1e-6)
        assert rows[0]["cos_between"] == pytest.approx(-1 / 3, abs=1e-6)
    if kind == "census":
        assert info["fraction_global"] == 1.0
    if kind == "family":
        assert [name.split()[0] for name in info["losses"]] == ["supcon", "dhel", "kcl"]


def test_heatmap_of_given_embeddings(tmp_path, capsys):
    rng = np.random.default_rng(0)
    H = rng.standard_normal((9, 3))
    np.save(tmp_path / "H.npy", H)
    (tmp_path / "y.txt").write_text("a a a b b b c c c\n")
    out = tmp_path / "h.svg"
    code, _, err = run(capsys, "plot", "heatmap", "--embeddings", str(tmp_path / "H.npy"), "--labels",
                       str(tmp_path / "y.txt"), "--out", str(out))
    assert code == 0, err
    assert out.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("args,argument", [
    (["plot", "pie", "--out", "{tmp}/a.png"], "KIND"),
    (["plot", "heatmap", "--out", "{tmp}/a.jpg"], "--out"),
    (["plot", "heatmap", "--out", "{tmp}/missing/a.png"], "--out"),
    (["plot", "heatmap"], "--out"),
    (["plot", "step", "--embeddings", "x.npy", "--out", "{tmp}/a.png"], "--embeddings"),
    (["plot", "step", "--ratios", "0.5", "--out", "{tmp}/a.png"], "--ratios"),
    (["plot", "embedding", "--projection", "4d", "--out", "{tmp}/a.png"], "--projection"),
    (["plot", "family", "--losses", "supcon,nce", "--out", "{tmp}/a.png"], "--losses"),
    (["plot", "family", "--counts", "2,2", "--losses", "supcon,kcl", "--out", "{tmp}/a.png"], "--losses"),
    (["plot", "step", "--ratios", "1,2,2.25", "--k-major", "2", "--k-minor", "2", "--out", "{tmp}/a.png"],
     "--ratios"),
    (["plot", "step", "--ratios", "1", "--n-minor", "1", "--k-major", "0", "--k-minor", "3", "--out",
      "{tmp}/a.png"], "--n-minor"),
    (["plot", "step", "--loss", "supcon_in", "--out", "{tmp}/a.png"], "--loss"),
    (["plot", "heatmap", "--taus", "0.1", "--out", "{tmp}/a.png"], "--taus"),
    (["plot", "heatmap", "--restarts", "abc", "--out", "{tmp}/a.png"], "--restarts"),
    (["plot", "heatmap", "--counts", "5", "--out", "{tmp}/a.png"], "--counts"),
    (["solve", "--counts", "3,3", "--plot", "{tmp}/a.gif"], "--plot"),
    (["solve", "--counts", "3,3", "--plot", "{tmp}/nowhere/a.png"], "--plot"),
    (["verify", "--counts", "3,3", "--plot", "{tmp}/a.bmp"], "--plot"),
])
def test_bad_input_names_the_argument(args, argument, tmp_path, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, stdout, err = run(capsys, *args)
    assert code == 2 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ufm: error: {argument}"), err  # before any solve
    assert [p.name for p in tmp_path.iterdir()] == []


def test_solve_plot_draws_the_optimum(tmp_path, capsys):
    out = tmp_path / "s.pdf"
    code, stdout, err = run(capsys, "solve", "--counts", "6,6,2", "--tau", "0.5", "--plot", str(out),
                            "--json")
    assert code == 0, err
    assert out.read_bytes()[:4] == PDF and json.loads(stdout)["figure"] == str(out)


def test_verify_plot_draws_census_and_curves(tmp_path, capsys):
    out = tmp_path / "v.png"
    code, stdout, err = run(capsys, "verify", "--counts", "3,3,2", "--restarts", "2", "--plot", str(out),
                            "--json")
    assert code == 0, err
    assert out.read_bytes()[:4] == PNG and json.loads(stdout)["figure"] == str(out)


def test_certify_plot_draws_the_embeddings(tmp_path, capsys):
    H = np.repeat(np.eye(3), 2, axis=0)
    np.save(tmp_path / "H.npy", H)
    (tmp_path / "y.txt").write_text("0 0 1 1 2 2\n")
    out = tmp_path / "c.png"
    code, stdout, err = run(capsys, "certify", "--embeddings", str(tmp_path / "H.npy"), "--labels",
                            str(tmp_path / "y.txt"), "--plot", str(out), "--json")
    assert code == 0, err
    assert out.read_bytes()[:4] == PNG and json.loads(stdout)["figure"] == str(out)


def test_plotting_figures_directly():
    """The figure functions behind the CLI, on a solved problem: the heatmap shows the optimum's
    class-mean cosines (the simplex ETF for balanced counts)."""
    from solvers import solve
    from ufm import Problem
    from ufm.cli.plot import solve_figure

    res = solve(Problem((5, 5, 5), tau=0.5))
    fig = solve_figure(res)
    (image,) = fig.axes[0].images
    np.testing.assert_allclose(image.get_array(), np.where(np.eye(3) > 0, 1.0, -0.5), atol=1e-7)
