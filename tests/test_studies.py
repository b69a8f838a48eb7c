"""Studies as data: every shipped study on its smoke grid (figures included), sweeps over loss
parameters, [verify] studies, figure declarations, and the same results from a serial run, local
processes (--jobs 2) and a Dask LocalCluster, resuming across them."""

import json

import numpy as np
import pytest

from experiments import runner
from experiments.study import bundled_studies, find_study, load_study
from ufm.cli import main
from ufm.errors import UFMInputError

PNG = b"\x89PNG"


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("name", bundled_studies())
def test_shipped_study_runs_on_its_smoke_grid(name, tmp_path, capsys):
    out = tmp_path / name
    assert runner.run_command(name, str(out), True, smoke=True) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    study = load_study(find_study(name), smoke=True)
    rows = lines(out / "results.jsonl")
    assert len(rows) == len(study.points) == len(payload["rows"]) >= 1
    for row in rows:
        assert (out / "arrays" / f"{row['point_id']}.npz").is_file()
        if study.network:
            assert row["config"] == row["params"]
        else:
            assert row["config"]["loss"]["name"] == row["params"]["loss"]
        assert row["seed"] == row["params"].get("seed", 0)
        assert row["versions"]["numpy"] == np.__version__ and row["versions"]["ufm"]
        assert row["point_time_s"] > 0 and row["machine"]["host"] is not None
    assert payload["figures"] == [f["file"] for f in study.figures] and study.figures
    for fig in study.figures:
        assert (out / fig["file"]).read_bytes()[:4] == PNG, fig["file"]
    # a figure whose select misses the smoke grid is named with the reason, never skipped silently
    err = captured.err
    declared = load_study(find_study(name)).figures
    drawn = {f["file"] for f in study.figures}
    missing = [f["file"] for f in declared if f["file"] not in drawn]
    assert [f["file"] for f in payload["figures_not_drawn"]] == missing
    for file in missing:
        assert not (out / file).exists()
        assert f"figure {out / file} NOT drawn: its select" in err and "--smoke grid" in err
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[:len(study.swept)] == study.swept
    _check_figure_content(study, out)


def _check_figure_content(study, out):
    """Every figure of the study, re-drawn from its results: titled with the study's title (and,
    for a figure of one point, that point and its verdict), text of 7-9 pt (cell values apart),
    titles, labels and legends inside the figure."""
    from experiments.figures import _draw, load_arrays
    from experiments.options import FIGURE_SINGLE
    from ufm.plotting.titles import result_title

    by_id = {r["point_id"]: r for r in lines(out / "results.jsonl")}
    rows = [by_id[pid] for pid in study.point_ids]
    for spec in study.figures:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = _draw(study, spec, rows, load_arrays(out), None)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        titles = [fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes]
        joined = " ".join(" ".join(t.split()) for t in titles)
        if spec.get("title"):
            assert " ".join(spec["title"].split()) in joined, (spec["file"], joined)
        if spec["kind"] in FIGURE_SINGLE:
            assert " ".join(result_title(rows[spec["points"][0]]).split()) in joined, (spec["file"], joined)
        outer = fig.bbox.padded(1.0)
        for ax in fig.axes:
            framed = [ax.title, ax.xaxis.label, ax.yaxis.label]
            legend = ax.get_legend()
            for artist in [*framed, *([legend] if legend else [])]:
                if artist.get_visible() and (artist is legend or artist.get_text()):
                    box = artist.get_window_extent(renderer)
                    assert outer.contains(box.x0, box.y0) and outer.contains(box.x1, box.y1), \
                        (spec["file"], getattr(artist, "get_text", lambda: "legend")())
            sizes = {t.get_fontsize() for t in [*framed, *ax.get_xticklabels(), *ax.get_yticklabels()]
                     if t.get_text()}
            assert not sizes or 7 <= min(sizes) and max(sizes) <= 9, (spec["file"], sizes)


@pytest.mark.parametrize("name", bundled_studies())
def test_shipped_study_is_valid_in_full(name):
    study = load_study(find_study(name))
    assert len(study.points) >= 2 and len(set(study.point_ids)) == len(study.points)
    assert study.figures


def test_step_study_sweeps_r_to_1000_and_tau_from_002_to_2():
    study = load_study(find_study("step_imbalance"))
    assert study.problem["ratio"][0] == 1 and study.problem["ratio"][-1] == 1000
    assert min(study.problem["tau"]) == 0.02 and max(study.problem["tau"]) == 2.0


def _write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


FAMILY = """\
[problem]
kind = "views"
instances = 4
loss = ["infonce", "kcl"]
tau = [0.2, 0.5]
kernel = ["gaussian", "imq"]
"""


def test_a_grid_over_loss_parameters_applies_each_to_the_losses_that_declare_it(tmp_path, capsys):
    study = load_study(_write(tmp_path, FAMILY))
    # infonce: 2 taus (kernel is not its parameter); kcl: 2 kernels (tau is not its parameter)
    assert [(p["loss"], p.get("tau"), p.get("kernel")) for p in study.points] == [
        ("infonce", 0.2, None), ("infonce", 0.5, None), ("kcl", None, "gaussian"), ("kcl", None, "imq")]
    out = tmp_path / "out"
    assert runner.run_command(str(tmp_path / "s.toml"), str(out), False) == 0
    rows = lines(out / "results.jsonl")
    assert [r["config"]["loss"]["params"].get("tau") for r in rows[:2]] == [0.2, 0.5]
    assert [r["config"]["loss"]["params"]["kernel"] for r in rows[2:]] == ["gaussian", "imq"]
    from solvers import solve
    from ufm import Problem, Samples, get_loss

    ref = solve(Problem(get_loss("kcl", kernel="imq"), Samples.instances_views(4, 2)))
    assert rows[3]["optimal_value"] == pytest.approx(ref.value, rel=1e-10)


def test_verify_study_rows_and_histories(tmp_path, capsys):
    path = _write(tmp_path, '[problem]\ncounts = [3, 3, 2, 2]\ntau = 0.5\ndim = [1, 2]\n'
                  '[verify]\nrestarts = 3\nmax_iter = 400\n')
    with pytest.raises(UFMInputError) as err:  # dimension 1 is refused before any work
        runner.run_command(str(path), str(tmp_path / "o"), False)
    assert err.value.argument == "[problem].dim"
    path.write_text(path.read_text().replace("dim = [1, 2]", "dim = [2, 3]"))
    out = tmp_path / "out"
    assert runner.run_command(str(path), str(out), False) == 0
    rows = lines(out / "results.jsonl")
    assert [r["dim"] for r in rows] == [2, 3] and all(len(r["restarts"]) == 3 for r in rows)
    assert rows[1]["relaxation_tight"] and rows[1]["fraction_global"] == 1.0
    assert not rows[0]["relaxation_tight"] and rows[0]["fraction_global"] == 0.0
    with np.load(out / "arrays" / f"{rows[1]['point_id']}.npz") as arrays:
        history = arrays["value_history"]
        assert history.shape[1] == 3
        # the last value of each restart's history is its end point's value
        np.testing.assert_allclose(history[-1], [r["value"] for r in rows[1]["restarts"]], rtol=1e-12)
        assert np.all(np.diff(history, axis=0) <= 1e-9 * np.abs(history[:-1]))  # descent
    assert rows[0]["best_gap"] > 1e-6  # d = 2 < k - 1: the relaxation's optimum is out of reach


FIGURES = ('[problem]\nkind = "step"\nk_major = 2\nk_minor = 2\nn_minor = 2\nratio = [1, 3]\n'
           'tau = [0.5, 1.0]\n')

BAD_FIGURES = [
    ('[[figure]]\nkind = "pie"\nfile = "a.png"\n', "[[figure]] 1: kind", "unknown figure kind"),
    ('[[figure]]\nkind = "step"\nfile = "a.jpg"\n', "[[figure]] 1: file", ".png"),
    ('[[figure]]\nkind = "step"\nfile = "d/a.png"\n', "[[figure]] 1: file", "no folders"),
    ('[[figure]]\nkind = "step"\n', "[[figure]] 1: file", "missing"),
    ('[[figure]]\nkind = "heatmap"\nfile = "a.png"\n', "[[figure]] 1: select", "picks 4"),
    ('[[figure]]\nkind = "heatmap"\nfile = "a.png"\nselect = {ratio = 7}\n', "[[figure]] 1: select",
     "picks no grid point"),
    ('[[figure]]\nkind = "heatmap"\nfile = "a.png"\nselect = {rtio = 3, tau = 1.0}\n',
     "[[figure]] 1: select.rtio", "did you mean 'ratio'"),
    ('[[figure]]\nkind = "census"\nfile = "a.png"\nselect = {ratio = 3, tau = 1.0}\n', "[[figure]] 1: kind",
     "[verify]"),
    ('[[figure]]\nkind = "lines"\nfile = "a.png"\nx = "k_major"\ny = "cos_max"\n', "[[figure]] 1: x",
     "swept"),
    ('[[figure]]\nkind = "lines"\nfile = "a.png"\nx = "ratio"\ny = "cos_mx"\n', "[[figure]] 1: y",
     "did you mean 'cos_max'"),
    ('[[figure]]\nkind = "step"\nfile = "a.png"\nsize = 3\n', "[[figure]] 1: size", "unknown key"),
    ('[[figure]]\nkind = "step"\nfile = "a.png"\nprojection = "3d"\n', "[[figure]] 1: projection",
     "only for embedding"),
    ('[[figure]]\nkind = "step"\nfile = "a.png"\ntitle = 3\n', "[[figure]] 1: title", "string"),
    ('[[figure]]\nkind = "lines"\nfile = "a.png"\nx = "ratio"\ny = []\n', "[[figure]] 1: y", "empty"),
    ('[[figure]]\nkind = "step"\nfile = "a.png"\nselect = {tau = [0.5, 1.0]}\n', "[[figure]] 1: select.tau",
     "one value"),
    ('[[figure]]\nkind = "step"\nfile = "a.png"\n[[figure]]\nkind = "step"\nfile = "a.png"\n',
     "[[figure]] 2: file", "two figures"),
]


DEGENERATE = '[problem]\ncounts = [[1, 1, 1], [2, 2]]\n'
BAD_FIGURES_OF_POINTS = [
    (DEGENERATE + '[[figure]]\nkind = "heatmap"\nfile = "a.png"\nselect = {counts = [1, 1, 1]}\n',
     "[[figure]] 1: select", "degenerate"),
    ('[problem]\ncounts = [[1, 1], [1, 1, 1]]\n[[figure]]\nkind = "family"\nfile = "a.png"\n',
     "[[figure]] 1: select", "degenerate"),
    ('[problem]\ncounts = [2600, 2600]\n[[figure]]\nkind = "embedding"\nfile = "a.png"\n',
     "[[figure]] 1: select", "at most 5000 samples"),
]


@pytest.mark.parametrize("text,key,words", BAD_FIGURES_OF_POINTS, ids=[b[2] for b in BAD_FIGURES_OF_POINTS])
def test_figures_of_points_without_a_drawable_geometry_are_refused_before_work(tmp_path, text, key, words):
    """These crashed after the whole study had run (no class_gram or embeddings saved)."""
    path = _write(tmp_path, text)
    with pytest.raises(UFMInputError) as err:
        runner.run_command(str(path), str(tmp_path / "out"), False)
    assert err.value.argument == key and words in err.value.message, str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text,key,words", BAD_FIGURES, ids=[b[1] + "-" + b[2] for b in BAD_FIGURES])
def test_bad_figure_declarations_name_the_key(tmp_path, text, key, words):
    path = _write(tmp_path, FIGURES + text)
    with pytest.raises(UFMInputError) as err:
        runner.run_command(str(path), str(tmp_path / "out"), False)
    assert err.value.argument == key and words in err.value.message, str(err.value)
    assert not (tmp_path / "out").exists()


BAD_STUDIES = [
    ('[problem]\ncounts = [3, 3]\nkernel = "imq"\n', "[problem].kernel", "not a parameter of supcon"),
    ('[problem]\nkind = "views"\ninstances = 3\nloss = "kcl"\nkernel = "cosine"\n', "[problem].kernel",
     "unknown kernel"),
    ('[problem]\nkind = "views"\ninstances = 3\nloss = "kcl"\nt = -1\n', "[problem].t", "> 0"),
    ('[problem]\ncounts = [3, 3]\nloss = "infonce"\n', "[problem].loss", "instances"),
    ('[problem]\nkind = "preset"\npreset = "cifar-lt"\n', "[problem].preset", "did you mean 'cifar10-lt'"),
    ('[problem]\ncounts = [3, 3]\nbatches = "rand:2"\n', "[problem].batches", "random:B"),
    ('[problem]\ncounts = [3, 3]\nloss = "supcon_in"\n', "[problem].loss", "[verify]"),
    ('[problem]\ncounts = [3, 3]\n[verify]\nrestarts = 0\n', "[verify].restarts", ">= 1"),
    ('[problem]\ncounts = [3, 3]\n[verify]\noptimizer = "adam"\n', "[verify].optimizer", "unknown optimizer"),
    ('[problem]\ncounts = [3, 3]\n[verify]\nsnap = 1\n', "[verify].snap",
     "true or false"),
    ('[problem]\ncounts = [3, 3]\nseed = -1\n', "[problem].seed", ">= 0"),
    ('[problem]\ncounts = [3, 3]\n[smoke]\nproblem = {cuonts = [[2, 2]]}\n', "[smoke].problem",
     "unknown key"),
    ('[problem]\ncounts = [3, 3]\n[smoke]\nverify = {restarts = 2}\n', "[smoke].verify", "has not"),
    # found at the first point before: now when the study is loaded
    ('[problem]\ncounts = [[2, 2, 2], [1, 1, 1]]\n[verify]\nrestarts = 2\n', "[problem].counts",
     "degenerate"),
    ('[problem]\ncounts = [4, 4]\nbatches = ["random:4", "random:8"]\n[solve]\nmethod = "reduced"\n',
     "[solve].method", "no reduced program"),
    # a library error about a sample key names the study key, not the CLI flag (issue 17)
    ('[problem]\nkind = "views"\ninstances = 3\nviews = 3\nloss = "dhel"\n', "[problem].views",
     "2 views per instance"),
]


def test_library_arguments_map_to_the_study_key_that_declares_them():
    from experiments.study import toml_key

    assert toml_key("--views") == "[problem].views"
    assert toml_key("--max-iter") == "[verify].max_iter"
    assert toml_key("--tol") == "[solve].tol"
    assert toml_key("--eps-term") == "[problem].eps_term"
    assert toml_key("--jobs") == "--jobs"  # not a study key: kept


@pytest.mark.parametrize("text,key,words", BAD_STUDIES, ids=[b[1] + "-" + b[2] for b in BAD_STUDIES])
def test_bad_studies_name_the_key(tmp_path, text, key, words):
    path = _write(tmp_path, text)
    with pytest.raises(UFMInputError) as err:
        runner.run_command(str(path), str(tmp_path / "out"), False)
    assert err.value.argument == key and words in err.value.message, str(err.value)
    assert not (tmp_path / "out").exists()


def test_smoke_needs_a_smoke_table_and_jobs_excludes_scheduler(tmp_path, capsys):
    path = _write(tmp_path, '[problem]\ncounts = [3, 3]\n')
    assert main(["run", str(path), "--smoke", "--out", str(tmp_path / "o")]) == 2
    assert "--smoke" in capsys.readouterr().err
    assert main(["run", str(path), "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "ufm: error: --jobs: not allowed with --scheduler" in capsys.readouterr().err
    assert main(["run", str(path), "--jobs", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--jobs" in capsys.readouterr().err


NETWORK = '[network]\nmodel = "one-layer"\npatterns = 3\ninput_dim = 6\nactivation = ["linear", "relu"]\n'
BAD_NETWORK_STUDIES = [
    (NETWORK + "restart = 4\n", "[network].restart", "did you mean 'restarts'"),
    (NETWORK.replace('"one-layer"', '["one-layer", "two-layer"]'), "[network].model", "one model"),
    ('[network]\nmodel = "two-layer"\ndata = "mixture"\n', "[network].data", "pattern data"),
    ('[network]\nmodel = "two-layer"\nrestarts = 4\n', "[network].restarts", "not used by two-layer"),
    (NETWORK.replace("patterns = 3", "patterns = 9"), "[network].patterns", "at most input_dim"),
    (NETWORK.replace('"relu"', '"tanh"'), "[network].activation", "unknown activation"),
    (NETWORK + '[problem]\ncounts = [2, 2]\n', "[problem]", "not used with [network]"),
    (NETWORK.replace("patterns = 3", "patterns = [2, 3]") + '[[figure]]\nkind = "network_census"\n'
     'file = "a.png"\n', "[[figure]] 1: select", "one census per activation"),
    (NETWORK + '[[figure]]\nkind = "heatmap"\nfile = "a.png"\n', "[[figure]] 1: kind", "[network] study"),
    (NETWORK + '[[figure]]\nkind = "specialisation"\nfile = "a.png"\n', "[[figure]] 1: kind", "two-layer"),
]


@pytest.mark.parametrize("text,key,words", BAD_NETWORK_STUDIES,
                         ids=[b[1] + "-" + b[2] for b in BAD_NETWORK_STUDIES])
def test_bad_network_studies_name_the_key(tmp_path, text, key, words):
    path = _write(tmp_path, text)
    with pytest.raises(UFMInputError) as err:
        runner.run_command(str(path), str(tmp_path / "out"), False)
    assert err.value.argument == key and words in err.value.message, str(err.value)
    assert not (tmp_path / "out").exists()


def test_network_study_rows_match_the_network_command(tmp_path, capsys):
    """A [network] point is the census `ufm network one-layer` prints for the same settings."""
    from solvers.networks.one_layer import one_layer_census
    from ufm.networks.data import pattern_mixture

    path = _write(tmp_path, NETWORK + "samples = 120\nrestarts = 8\n")
    assert runner.run_command(str(path), str(tmp_path / "out"), False) == 0
    rows = lines(tmp_path / "out" / "results.jsonl")
    assert [r["params"]["activation"] for r in rows] == ["linear", "relu"]
    ref = one_layer_census(pattern_mixture(120, 3, 6, 0.05, None, 0), "relu", 8, 0)
    assert rows[1]["distinct_end_points"] == ref.distinct
    assert rows[1]["distinct_optima"] == ref.distinct_certified
    assert rows[1]["best_energy"] == pytest.approx(ref.optima[0].energy, rel=1e-12)
    assert rows[0]["top_eigenvector_cosine"] >= 1 - 1e-6
    arrays = np.load(tmp_path / "out" / "arrays" / f"{rows[1]['point_id']}.npz")
    assert arrays["certified"].sum() == ref.to_dict()["verdicts"]["local_optimum"] == 8 * rows[1]["certified"]


def test_input_errors_cross_process_boundaries():
    """--jobs workers and Dask send errors back pickled (this was a BrokenProcessPool)."""
    import pickle

    err = pickle.loads(pickle.dumps(UFMInputError("[solve].method", "no reduced program")))
    assert isinstance(err, UFMInputError) and err.argument == "[solve].method"
    assert err.message == "no reduced program"


def test_bundled_study_by_its_file_name_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_study("balanced_etf.toml") == find_study("balanced_etf")


def test_verify_study_calls_certified_only_what_is_certified_in_its_dimension(tmp_path, capsys):
    """A loose relaxation (d < k - 1): the relaxation's optimum is certified, no end point is."""
    path = _write(tmp_path, '[problem]\ncounts = [3, 3, 3, 3]\ntau = 1.0\ndim = [2, 3]\n'
                  '[verify]\nrestarts = 2\n')
    assert runner.run_command(str(path), str(tmp_path / "out"), False) == 0
    assert "2 problems, 1 with a certified restart" in capsys.readouterr().out
    low, high = lines(tmp_path / "out" / "results.jsonl")
    assert low["optimum_certified"] and not low["certified"] and low["fraction_global"] == 0.0
    assert high["certified"] and high["fraction_global"] == 1.0


def test_unreachable_scheduler_is_an_input_error(tmp_path, monkeypatch, capsys):
    from experiments import backends

    real = backends.DaskCluster.__init__
    monkeypatch.setattr(backends.DaskCluster, "__init__",
                        lambda self, address: real(self, address, timeout=2))
    path = _write(tmp_path, '[problem]\ncounts = [3, 3]\n')
    assert main(["run", str(path), "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ufm: error: --scheduler: cannot reach the scheduler")
    assert not (tmp_path / "o").exists()  # refused before the folder is made


PARALLEL = """\
[study]
name = "parallel"

[problem]
kind = "step"
k_major = 2
k_minor = 2
n_minor = 2
ratio = [1, 2, 4]
tau = [0.2, 1.0]

[[figure]]
kind = "step"
file = "step.png"
"""

COMPARED = ("optimal_value", "excess", "rank", "collapsed", "certified", "cos_major", "cos_minor",
            "cos_between")


def _same_results(a_rows, b_rows):
    assert [r["point_id"] for r in a_rows] == [r["point_id"] for r in b_rows]
    for a, b in zip(a_rows, b_rows, strict=True):
        for key in COMPARED:
            if isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], rel=1e-9, abs=1e-12), key
            else:
                assert a[key] == b[key], key


def _grid_rows(out, study):
    by_id = {r["point_id"]: r for r in lines(out / "results.jsonl")}
    return [by_id[pid] for pid in study.point_ids]


@pytest.fixture
def parallel_study(tmp_path):
    path = _write(tmp_path, PARALLEL, "parallel.toml")
    serial = tmp_path / "serial"
    assert runner.run_command(str(path), str(serial), False) == 0
    return path, load_study(path), _grid_rows(serial, load_study(path))


def test_local_processes_give_the_serial_results(parallel_study, tmp_path, capsys):
    path, study, serial = parallel_study
    out = tmp_path / "jobs"
    assert main(["run", str(path), "--jobs", "2", "--out", str(out)]) == 0
    assert "2 local processes" in capsys.readouterr().err
    _same_results(serial, _grid_rows(out, study))
    assert (out / "step.png").read_bytes()[:4] == PNG


def test_dask_cluster_gives_the_serial_results_and_resumes_a_serial_run(parallel_study, tmp_path,
                                                                        monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")
    path, study, serial = parallel_study
    out = tmp_path / "dask"
    real, calls = runner.solve_point, []

    def interrupt_after_two(problem, opts):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(problem, opts)

    monkeypatch.setattr(runner, "solve_point", interrupt_after_two)
    assert runner.run_command(str(path), str(out), False) == 130  # serial, interrupted
    monkeypatch.setattr(runner, "solve_point", real)
    assert len(lines(out / "results.jsonl")) == 2
    capsys.readouterr()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert runner.run_command(str(path), str(out), False, scheduler=cluster.scheduler_address) == 0
    err = capsys.readouterr().err
    assert "2 of 6 points already done" in err and "Dask scheduler" in err
    _same_results(serial, _grid_rows(out, study))
    assert len(lines(out / "results.jsonl")) == 6


def test_local_processes_resume_a_serial_run(parallel_study, tmp_path, monkeypatch, capsys):
    path, study, serial = parallel_study
    out = tmp_path / "resumed"
    real = runner.solve_point
    monkeypatch.setattr(runner, "solve_point", lambda p, o: (_ for _ in ()).throw(KeyboardInterrupt)
                        if len(lines(out / "results.jsonl")) >= 3 else real(p, o))
    assert runner.run_command(str(path), str(out), False) == 130
    monkeypatch.setattr(runner, "solve_point", real)
    capsys.readouterr()
    assert runner.run_command(str(path), str(out), False, jobs=2) == 0
    assert "3 of 6 points already done" in capsys.readouterr().err
    _same_results(serial, _grid_rows(out, study))


def test_scheduler_local_starts_a_cluster_for_the_run(tmp_path, capsys):
    """--scheduler local:N: a local Dask cluster of N worker processes, started and closed by the
    run; its results equal a serial run's."""
    pytest.importorskip("distributed")
    serial, local = tmp_path / "serial", tmp_path / "local"
    assert runner.run_command("balanced_etf", str(serial), True, smoke=True) == 0
    capsys.readouterr()
    assert runner.run_command("balanced_etf", str(local), True, smoke=True, scheduler="local:2") == 0
    captured = capsys.readouterr()
    assert "(2 worker(s))" in captured.err
    by_id = {r["point_id"]: r for r in lines(serial / "results.jsonl")}
    for row in lines(local / "results.jsonl"):
        assert row["optimal_value"] == by_id[row["point_id"]]["optimal_value"]
    bad = ["run", "balanced_etf", "--smoke", "--scheduler", "local:x", "--out", str(tmp_path / "x")]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ufm: error: --scheduler: local:N needs a number of workers")
    assert not (tmp_path / "x").exists()

