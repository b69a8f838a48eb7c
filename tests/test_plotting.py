import os
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from ufm import plotting  # noqa: E402

COUNTS = [5, 3, 2, 1]
ETF = np.full((4, 4), -1.0 / 3.0) + np.eye(4) * (4.0 / 3.0)
TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float) / np.sqrt(3.0)


def tetra_samples():
    labels = np.repeat(np.arange(4), COUNTS)
    return TETRA[labels], labels


def step_rows():
    rows = []
    for tau in (0.1, 1.0):
        for ratio in (1.0, 10.0, 100.0):
            rows.append({"ratio": ratio, "tau": tau, "cos_major": -1 / 3 if ratio == 1 else -0.5,
                         "cos_minor": None, "cos_between": -0.2})
    return rows


def test_import_does_not_load_matplotlib():
    code = "import ufm.plotting, sys; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_palette_is_okabe_ito():
    assert len(plotting.PALETTE) == 8
    assert plotting.PALETTE[0] == "#E69F00" and "#000000" in plotting.PALETTE


def test_heatmap_order_and_ticks():
    C = np.array([[1.0, 0.1, 0.2], [0.1, 1.0, 0.3], [0.2, 0.3, 1.0]])
    fig = plotting.class_cosine_heatmap(C, [1, 5, 3])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.images) == 1
    order = [1, 2, 0]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), C[np.ix_(order, order)])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "3", "1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["5", "3", "1"]
    # diverging, white at the simplex value -1/(k-1) = -0.5, limits from the off-diagonal data:
    # the centre -+ the largest distance from it
    # (at least 0.02 either side of the centre)
    assert ax.images[0].get_clim() == pytest.approx((-0.5 - 0.8, -0.5 + 0.8))  # centre -+ 0.3 - (-0.5)
    assert ax.images[0].norm.vcenter == pytest.approx(-0.5)
    assert len(fig.axes) == 2  # the colorbar


def test_heatmap_stable_ties_and_many_classes():
    k = 40
    counts = [2] * 20 + [10] * 20
    C = np.eye(k)
    C[0, 1] = C[1, 0] = 0.5  # classes 0 and 1 (size 2): come right after the 20 large ones, in order
    fig = plotting.class_cosine_heatmap(C, counts)
    arr = np.asarray(fig.axes[0].images[0].get_array())
    assert arr[20, 21] == 0.5
    assert len(fig.axes[0].get_xticks()) <= 16


def test_embedding_scatter_2d():
    H, y = tetra_samples()
    fig = plotting.embedding_scatter(H, y)
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(H) + 4
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "class 0 (n = 5)" in texts and any("n = 1" in t for t in texts)
    assert "PCA:" in ax.get_title() and "||H||_F^2" in ax.get_title()
    assert ax.get_aspect() == 1.0


def test_embedding_scatter_string_labels_and_padding():
    H = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    fig = plotting.embedding_scatter(H, ["b", "a", "b"], dim=3)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["class a (n = 1)", "class b (n = 2)"]


def test_embedding_scatter_3d_on_sphere():
    H, y = tetra_samples()
    fig = plotting.embedding_scatter(H, y, dim=3, title="tetrahedron")
    ax = fig.axes[0]
    assert ax.name == "3d"
    pts = [np.column_stack(c._offsets3d) for c in ax.collections if hasattr(c, "_offsets3d")]
    pts = np.vstack(pts)
    assert len(pts) == len(H) + 4
    np.testing.assert_allclose(np.linalg.norm(pts, axis=1), 1.0, atol=1e-9)
    assert "100.0%" in ax.get_title()


def test_embedding_scatter_3d_needs_3d_axes():
    fig = Figure()
    ax = fig.add_subplot()
    H, y = tetra_samples()
    with pytest.raises(ValueError, match="3D axes"):
        plotting.embedding_scatter(H, y, ax=ax, dim=3)


def test_embedding_scatter_many_classes_colorbar(rng):
    k = 15
    y = np.repeat(np.arange(k), np.arange(1, k + 1))
    H = rng.standard_normal((len(y), 5))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    fig = plotting.embedding_scatter(H, y)
    assert fig.axes[0].get_legend() is None
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "class size"


def test_cosines_vs_class_size():
    k = 4
    fig = plotting.cosines_vs_class_size(ETF, [100, 20, 5, 1])
    ax = fig.axes[0]
    series = [ln for ln in ax.lines if ln.get_linestyle() == "None"]
    assert len(series) == 2 and all(len(ln.get_xdata()) == k for ln in series)
    etf = [ln for ln in ax.lines if "simplex ETF" in ln.get_label()]
    assert len(etf) == 1 and np.allclose(etf[0].get_ydata(), -1 / 3)
    assert ax.get_xscale() == "log"
    assert plotting.cosines_vs_class_size(ETF, COUNTS).axes[0].get_xscale() == "linear"


def test_step_cosines_skips_none():
    fig = plotting.step_cosines([1, 10, 100], [-0.3, -0.4, -0.5], [None, float("nan"), 0.9],
                                [-0.2, -0.1, 0.0])
    ax = fig.axes[0]
    lengths = {ln.get_label(): len(ln.get_xdata()) for ln in ax.lines}
    assert lengths == {"majority-majority": 3, "minority-minority": 1, "majority-minority": 3}
    assert ax.get_xscale() == "log"
    fig = plotting.step_cosines([1, 2, 3], [0, 0, 0], [None] * 3, [0, 0, 0], log_x=False)
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_xscale() == "linear"


def test_step_panels():
    fig = plotting.step_panels(step_rows())
    assert len(fig.axes) == 2
    a, b = fig.axes
    assert len(a.lines) == 4 and len(b.lines) == 6  # 2 taus x 2 defined kinds; 3 ratios x 2 kinds
    assert a.get_xscale() == "log"
    single = plotting.step_panels([{"ratio": 10, "tau": 0.1, "cos_major": -0.5, "cos_minor": 0.9,
                                    "cos_between": -0.1}])
    assert all(len(ln.get_xdata()) == 1 and ln.get_marker() != "None" for ln in single.axes[0].lines)


def test_restart_census():
    restarts = [
        {"gap": 1e-20, "rel_gap": 0.0, "lambda_min": -1e-14, "certified": True, "cluster": 0, "excess": 1.0},
        {"gap": -3e-15, "rel_gap": 0.0, "lambda_min": -2e-14, "certified": True, "cluster": 0, "excess": 1.0},
        {"gap": 0.3, "rel_gap": 0.3, "lambda_min": -0.2, "certified": False, "cluster": 1, "excess": 1.3},
        {"gap": None, "rel_gap": None, "lambda_min": None, "certified": None, "cluster": 2, "excess": None},
    ]
    fig = plotting.restart_census(restarts, title="census")
    assert len(fig.axes) == 3
    a, b, c = fig.axes
    assert len(a.patches) > 0 and a.get_xscale() == "log"
    assert sum(p.get_height() for p in a.patches) == 3
    assert a.patches[0].get_height() == 2  # both tiny/negative gaps in the first bin
    assert a.xaxis.get_major_formatter()(1e-16) == r"$\leq 10^{-16}$"  # the first bin holds <= 1e-16
    assert "optimal excess" in a.get_xlabel()  # no gap_over_scale given: the gap over the optimal excess
    assert sum(len(col.get_offsets()) for col in b.collections) == 3
    assert len(c.patches) == 3
    assert [p.get_height() for p in c.patches] == [2, 1, 1]
    assert c.patches[0].get_facecolor() != c.patches[1].get_facecolor()


def test_optimisation_curves():
    hist = [np.array([3.0, 2.0, 1.5, 1.0]), np.array([4.0, 1.0 + 1e-20])]
    fig = plotting.optimisation_curves(hist, optimal_value=1.0)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    assert ax.get_ylabel() == "gap to the optimum\nvalue - optimum (absolute)"
    assert np.min(ax.lines[0].get_ydata()) == 1e-16
    fig = plotting.optimisation_curves(hist, floor=0.5)
    assert fig.axes[0].get_ylabel() == "excess over the floor\nvalue - floor (absolute)"


def test_loss_family():
    panels = [{"name": f"loss {i}", "cosines": ETF, "subtitle": "value 1, rank 3"} for i in range(5)]
    fig = plotting.loss_family(panels, title="family")
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 5
    # one shared scale: white at -1/3, every off-diagonal cosine -1/3, so +-0.02 around it
    assert all(im.get_clim() == pytest.approx((-1 / 3 - 0.02, -1 / 3 + 0.02)) for im in images)
    assert len({id(im.norm) for im in images}) == 5 and {im.norm.vcenter for im in images} == {-1 / 3}
    assert len(fig.axes) == 6  # 5 panels (2 x 4 grid, 3 removed) and one colorbar


def test_draw_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plotting.class_cosine_heatmap(ETF, COUNTS, ax=ax) is fig
    fig2 = Figure()
    axes = fig2.subplots(1, 3)
    assert plotting.restart_census([], axes=axes) is fig2
    with pytest.raises(ValueError):
        plotting.step_panels(step_rows(), axes=axes)


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_save_figure(tmp_path, suffix, magic):
    fig = plotting.class_cosine_heatmap(ETF, COUNTS)
    path = tmp_path / f"fig{suffix}"
    plotting.save_figure(fig, path)
    data = path.read_bytes()
    assert data.startswith(magic)
    if suffix == ".svg":
        assert b"<svg" in data
    assert os.listdir(tmp_path) == [path.name]


def test_save_figure_refuses_other_suffix(tmp_path):
    fig = plotting.class_cosine_heatmap(ETF, COUNTS)
    with pytest.raises(ValueError, match=r"\.jpg.*\.png"):
        plotting.save_figure(fig, tmp_path / "fig.jpg")
    assert os.listdir(tmp_path) == []
