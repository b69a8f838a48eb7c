"""The paper style (sizes, fonts, font types, resolution), the cosine heatmaps' colour scale and
ticks, the optimum comparison of ``certify --plot`` and the titles: checked on the figures'
content."""

import json
import re
import struct

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.text import Text  # noqa: E402

from ufm import plotting  # noqa: E402
from ufm.cli import main  # noqa: E402
from ufm.plotting import heatmaps, style, titles  # noqa: E402

ETF4 = np.full((4, 4), -1.0 / 3.0) + np.eye(4) * (4.0 / 3.0)


def png_size(path):
    """(width, height) in pixels from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def svg_text(path):
    """The text of an SVG (text kept as text), lines joined by spaces."""
    return " ".join(re.findall(r"<text[^>]*>(.*?)</text>", path.read_text(), re.S)).replace("&#39;", "'")


def drawn_texts(fig):
    fig.canvas.draw()
    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


# ------------------------------------------------------------------------------------ the style


def test_one_panel_is_a_single_column_and_several_a_double():
    assert plotting.class_cosine_heatmap(ETF4, [5, 3, 2, 1]).get_figwidth() == pytest.approx(3.3)
    assert plotting.step_panels([{"ratio": 1, "tau": 0.1, "cos_major": -0.3, "cos_minor": None,
                                  "cos_between": -0.3}]).get_figwidth() == pytest.approx(6.9)


@pytest.mark.parametrize("width, inches", [("single", 3.3), ("double", 6.9), ("4.5", 4.5), (12, 12.0)])
def test_options_width_sizes_every_figure(width, inches):
    with style.options(width=width):
        assert plotting.class_cosine_heatmap(ETF4, [5, 3, 2, 1]).get_figwidth() == pytest.approx(inches)
        assert plotting.restart_census([]).get_figwidth() == pytest.approx(inches)
    assert plotting.class_cosine_heatmap(ETF4, [5, 3, 2, 1]).get_figwidth() == pytest.approx(3.3)


@pytest.mark.parametrize("bad", ["triple", "0.5", "31", "nan", ""])
def test_parse_width_refuses(bad):
    with pytest.raises(ValueError):
        style.parse_width(bad)


def test_png_at_300_dpi_by_default_and_at_the_dpi_asked(tmp_path):
    fig = plotting.class_cosine_heatmap(ETF4, [5, 3, 2, 1])
    plotting.save_figure(fig, tmp_path / "a.png")
    w, h = png_size(tmp_path / "a.png")
    assert w == round(3.3 * 300) and h == round(fig.get_figheight() * 300)
    with style.options(dpi=100):
        plotting.save_figure(fig, tmp_path / "b.png")
    assert png_size(tmp_path / "b.png")[0] == 330
    plotting.save_figure(fig, tmp_path / "c.png", dpi=600)
    assert png_size(tmp_path / "c.png")[0] == 1980


def test_pdf_embeds_truetype_fonts_not_type3(tmp_path):
    fig = plotting.class_cosine_heatmap(ETF4, [5, 3, 2, 1], title="tetrahedron")
    plotting.save_figure(fig, tmp_path / "f.pdf")
    data = (tmp_path / "f.pdf").read_bytes()
    # Type 42: TrueType outlines (FontFile2), as a simple or a CID-keyed font; never Type 3
    assert b"/FontFile2" in data and (b"/Subtype /TrueType" in data or b"/Subtype /CIDFontType2" in data)
    assert b"/Type3" not in data
    box = [float(v) for v in re.search(rb"/MediaBox \[\s*([\d. ]+)\]", data).group(1).split()]
    assert box[2] == pytest.approx(3.3 * 72)  # the figure's own size: no tight bounding box


def test_svg_keeps_text_as_text(tmp_path):
    fig = plotting.class_cosine_heatmap(ETF4, [5, 3, 2, 1], title="tetrahedron of four classes")
    plotting.save_figure(fig, tmp_path / "f.svg")
    svg = (tmp_path / "f.svg").read_text()
    assert "<text" in svg and "tetrahedron of four classes" in svg


def _every_figure_kind():
    restarts = [{"value": 1.0 + 1e-9 * i, "gap": 1e-9 * i, "rel_gap": 1e-8 * i, "excess": 0.5,
                 "lambda_min": -1e-12, "certified": i % 2 == 0, "cluster": i % 2} for i in range(6)]
    sizes = [100, 50, 20, 10, 5]
    C = np.full((5, 5), -0.25) + 1.25 * np.eye(5)
    rows = [{"dim": d, "tau": t, "best_gap": 10.0 ** -d, "fraction_global": d / 5} for d in (1, 2, 3)
            for t in (0.1, 1.0)]
    one = {"activation": "relu", "distinct_optima": 2, "distinct_end_points": 3, "dead_units": 1,
           "optima": [{"alignment": 0.9, "verdict": "local_optimum"}]}
    return {
        "heatmap": plotting.class_cosine_heatmap(C, sizes, title="a heatmap"),
        "long_tail": plotting.cosines_vs_class_size(C, sizes),
        "family": plotting.loss_family([{"name": "supcon", "cosines": C, "subtitle": "value 1"}] * 3,
                                       title="t"),
        "step": plotting.step_panels([{"ratio": r, "tau": t, "cos_major": -0.3, "cos_minor": 0.1,
                                       "cos_between": -0.2} for r in (1, 10) for t in (0.1, 1.0)]),
        "census": plotting.restart_census(restarts, title="census"),
        "curves": plotting.optimisation_curves([np.linspace(2, 1, 20)] * 3, optimal_value=1.0),
        "lines": plotting.summary_lines(rows, "dim", ["best_gap", "fraction_global"], by="tau",
                                        title="lines"),
        "network_census": plotting.network_census([one, {**one, "activation": "linear"}]),
        "specialisation": plotting.specialisation_histogram({"relu": [0.9, 0.8], "linear": [0.2, 0.3]}),
        "embedding": plotting.embedding_scatter(np.eye(3)[[0, 0, 1, 2]], [0, 0, 1, 2]),
        "optimum": plotting.cosines_against_optimum(C, ETF4[:1, :1].repeat(5, 0).repeat(5, 1) * 0 + C, sizes),
    }


def test_every_figure_kind_writes_7_to_9_point_text():
    for kind, fig in _every_figure_kind().items():
        cells = {id(t) for ax in fig.axes for t in ax.texts if re.fullmatch(r"-?\d*\.\d+", t.get_text())}
        sizes = {round(t.get_fontsize(), 1) for t in drawn_texts(fig) if id(t) not in cells}
        assert sizes and min(sizes) >= 7 and max(sizes) <= 9, (kind, sizes)


# ------------------------------------------------------------------------------------ heatmaps


def test_heatmap_scale_is_centred_on_the_simplex_with_limits_from_the_data():
    k = 6  # an ImageNet-LT-like optimum: cosines in a narrow band around -1/(k-1)
    rng = np.random.default_rng(0)
    A = rng.uniform(-0.27, -0.1, size=(k, k))
    C = (A + A.T) / 2
    np.fill_diagonal(C, 1.0)
    fig = plotting.class_cosine_heatmap(C, [6, 5, 4, 3, 2, 1])
    im = fig.axes[0].images[0]
    centre = -0.2
    off = C[~np.eye(k, dtype=bool)]
    half = max(centre - off.min(), off.max() - centre)
    assert im.norm.vcenter == pytest.approx(centre)
    assert im.get_clim() == pytest.approx((centre - half, centre + half))
    assert bool(np.all(np.ma.getmaskarray(im.get_array()) == np.eye(k, dtype=bool)))  # the diagonal is grey
    bar = fig.axes[1]
    labels = [t.get_text() for t in bar.get_yticklabels()]
    assert labels == [f"{off.min():.3g}", f"{centre:.3g}", f"{off.max():.3g}"]
    assert "simplex -1/(k-1) = -0.2" in bar.get_ylabel()


def test_heatmap_noise_around_a_simplex_stays_pale():
    C = ETF4 + 1e-9 * np.array([[0, 1, -1, 0], [1, 0, 0, 1], [-1, 0, 0, 0], [0, 1, 0, 0]])
    im = plotting.class_cosine_heatmap(C, [3, 3, 3, 3]).axes[0].images[0]
    half = heatmaps.MIN_HALF_RANGE
    assert im.get_clim() == pytest.approx((-1 / 3 - half, -1 / 3 + half))


def test_heatmap_values_in_cells_up_to_12_classes():
    for k, expected in ((4, 12), (12, 132), (13, 0)):
        C = np.full((k, k), -1.0 / (k - 1)) + (1 + 1.0 / (k - 1)) * np.eye(k)
        C[0, 1] = C[1, 0] = 0.25
        ax = plotting.class_cosine_heatmap(C, list(range(k + 10, 10, -1))).axes[0]
        assert len(ax.texts) == expected
        if expected:
            assert ax.texts[0].get_text() in ("0.25", ".25")  # row 0, column 1


def test_heatmap_ticks_one_per_class_up_to_20_with_sizes():
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    ax = plotting.class_cosine_heatmap(np.eye(10), counts).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(c) for c in counts]
    assert all(t.get_rotation() == 90 for t in ax.get_xticklabels())  # four digits side by side overlap
    assert "size" in ax.get_xlabel()


def test_heatmap_balanced_classes_are_numbered_not_labelled_20_everywhere():
    ax = plotting.class_cosine_heatmap(np.eye(100), [20] * 100).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) <= heatmaps.SIZE_AXIS_TICKS and len(set(labels)) == len(labels)
    assert ax.get_xlabel() == "class (all n_c = 20)"


def test_heatmap_many_imbalanced_classes_get_a_size_axis():
    counts = np.round(np.geomspace(1280, 5, 200)).astype(int)
    ax = plotting.class_cosine_heatmap(np.eye(200), counts).axes[0]
    ticks = ax.get_xticks()
    assert 3 <= len(ticks) <= heatmaps.SIZE_AXIS_TICKS
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(counts[int(t)]) for t in ticks]
    assert "by size" in ax.get_xlabel()


def test_loss_family_panels_share_one_scale_over_all_panels():
    A, B = ETF4.copy(), ETF4.copy()
    A[0, 1] = A[1, 0] = 0.5
    B[2, 3] = B[3, 2] = -0.9
    fig = plotting.loss_family([{"name": "a", "cosines": A}, {"name": "b", "cosines": B}])
    clims = {im.get_clim() for ax in fig.axes for im in ax.images}
    half = max(0.5 + 1 / 3, 0.9 - 1 / 3)
    assert len(clims) == 1 and clims.pop() == pytest.approx((-1 / 3 - half, -1 / 3 + half))
    assert len(fig.axes) == 3  # two panels, one colour bar


def test_cosines_against_optimum_draws_both_and_their_difference():
    opt = ETF4
    emb = ETF4.copy()
    emb[0, 3] = emb[3, 0] = 0.1
    fig = plotting.cosines_against_optimum(emb, opt, [4, 3, 2, 1], title="certify")
    a, b, c = (ax for ax in fig.axes if ax.images)
    drawn = np.ma.filled(c.images[0].get_array(), 0.0)
    np.testing.assert_allclose(drawn, np.where(np.eye(4), 0.0, emb - opt))
    assert c.images[0].norm.vcenter == 0.0
    assert a.images[0].get_clim() == b.images[0].get_clim()
    assert "max |diff| 0.43" in c.get_title()
    assert fig._suptitle.get_text() == "certify"


# ------------------------------------------------------------------------------------ titles


def test_titles_say_loss_samples_tau_dimension_restarts_and_verdict():
    assert titles.problem_title("supcon", [20, 20, 2, 2], tau=0.1, dim=3, restarts=16,
                                verdict="16/16 certified") == \
        "supcon, counts 20,20,2,2, tau 0.1, d 3, 16 restarts: 16/16 certified"
    assert titles.counts_words([20] * 100) == "100 classes of 20"
    assert titles.counts_words(list(range(1000, 0, -1)), preset="imagenet-lt") == \
        "imagenet-lt (1000 classes, 1000..1)"
    row = {"loss": "supcon", "counts": [3, 1], "tau": 1.0, "certified": False, "rank": 2,
           "certificate": {"reason": "gap bound above tolerance"}}
    assert titles.result_title(row) == \
        "supcon, counts 3,1, tau 1: NOT certified (gap bound above tolerance), rank 2"
    verify = {"loss": "dcl", "samples": {"instances": 8, "views": 2}, "counts": [2] * 8, "tau": 0.5,
              "dim": 3, "distinct_minima": 2, "restarts": [{"certified": True}, {"certified": False}]}
    assert titles.result_title(verify) == \
        "dcl, 8 instances x 2 views, tau 0.5, d 3, 2 restarts: 1/2 certified, 2 minima up to symmetry"


# ------------------------------------------------------------------------------------ the CLI


def test_cli_width_and_dpi_size_the_figure(tmp_path, capsys):
    assert main(["solve", "--counts", "3,3,1", "--tau", "0.5", "--plot", str(tmp_path / "s.pdf"),
                 "--width", "double", "--quiet"]) == 0
    data = (tmp_path / "s.pdf").read_bytes()
    box = [float(v) for v in re.search(rb"/MediaBox \[\s*([\d. ]+)\]", data).group(1).split()]
    assert box[2] == pytest.approx(6.9 * 72)
    assert main(["solve", "--counts", "3,3", "--tau", "0.5", "--plot", str(tmp_path / "s.png"),
                 "--dpi", "72", "--width", "2", "--quiet"]) == 0
    assert png_size(tmp_path / "s.png")[0] == 144


@pytest.mark.parametrize("argv, message", [
    (["solve", "--width", "double"], "--width: needs --plot FILE"),
    (["solve", "--plot", "x.png", "--width", "wide"], "--width: expected single, double or a width"),
    (["solve", "--plot", "x.png", "--dpi", "10"], "--dpi: must be an integer >= 50"),
])
def test_cli_refuses_bad_figure_options(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ufm: error: " + message) and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_solve_figure_title_says_problem_and_verdict(tmp_path, capsys):
    assert main(["solve", "--counts", "4,4,1", "--tau", "0.2", "--plot", str(tmp_path / "s.svg"), "--json",
                 "--quiet"]) == 0
    payload = json.loads(capsys.readouterr().out)
    svg = svg_text(tmp_path / "s.svg")
    verdict = "certified optimum" if payload["certificate"]["certified"] else "NOT certified"
    assert f"supcon, counts 4,4,1, tau 0.2: {verdict}, rank {payload['rank']}" in svg


def test_cli_certify_plot_draws_the_optimum_and_the_difference(tmp_path, capsys):
    labels = np.repeat([0, 1, 2], [4, 4, 2])
    rng = np.random.default_rng(3)
    H = rng.normal(size=(10, 3))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    np.save(tmp_path / "H.npy", H)
    np.savetxt(tmp_path / "y.txt", labels, fmt="%d")
    assert main(["certify", "--embeddings", str(tmp_path / "H.npy"), "--labels", str(tmp_path / "y.txt"),
                 "--tau", "0.5", "--plot", str(tmp_path / "c.svg"), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    svg = svg_text(tmp_path / "c.svg")
    assert "NOT certified" in svg and "Gram distance to the optimum" in svg
    assert f"{report['gram_distance']:.2g}" in svg
    opt = np.array(report["optimal_class_mean_cosines"])
    cos = np.array(report["class_mean_cosines"])
    assert np.abs(cos - opt).max() == pytest.approx(report["cosines_vs_optimum"])
    assert "embeddings - optimum" in svg and " optimum " in svg


def test_cli_network_figures_say_the_model_and_the_data(tmp_path, capsys):
    assert main(["network", "one-layer", "--patterns", "3", "--restarts", "6", "--activation", "relu",
                 "--plot", str(tmp_path / "n.svg"), "--quiet", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (f"one unit, 6 starts per activation on 3 patterns (mixture), n = {payload['samples']}, "
            f"input dimension {payload['input_dim']}, seed 0") in svg_text(tmp_path / "n.svg")
