"""The restart census, the optimisation curves and the embedding scatter, checked on what they
draw: axis labels, histogram counts, bar heights and labels, tick labels, legend entries against
the artists drawn, and every text inside the figure."""

import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from ufm import plotting  # noqa: E402
from ufm.plotting import census, style  # noqa: E402

TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float) / np.sqrt(3.0)


def render(fig):
    """Draw ``fig`` with Agg in the paper style; its renderer."""
    FigureCanvasAgg(fig)
    with matplotlib.rc_context(style.PAPER_RC):
        fig.canvas.draw()
    return fig.canvas.get_renderer()


def hidden_tick_labels(fig):
    """The ids of the tick labels of ticks outside their axis's view (matplotlib does not draw
    them, but keeps them among the figure's artists)."""
    hidden = set()
    for ax in fig.axes:
        for axis in (getattr(ax, name, None) for name in ("xaxis", "yaxis", "zaxis")):
            if axis is None:
                continue
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                loc = tick.get_loc()
                if loc is None or not lo - 1e-9 * abs(lo) <= loc <= hi + 1e-9 * abs(hi):
                    hidden.update({id(tick.label1), id(tick.label2)})
    return hidden


def outside(fig, tol=1.0):
    """The texts and legends drawn (partly) outside the figure, more than ``tol`` pixels."""
    renderer = render(fig)
    box = fig.bbox
    hidden = hidden_tick_labels(fig)
    out = []
    for artist in fig.findobj(lambda a: isinstance(a, Text | Legend)):
        if not artist.get_visible() or id(artist) in hidden:
            continue
        if isinstance(artist, Text) and not artist.get_text().strip():
            continue
        e = artist.get_window_extent(renderer)
        if e.x0 < box.x0 - tol or e.y0 < box.y0 - tol or e.x1 > box.x1 + tol or e.y1 > box.y1 + tol:
            out.append((artist.get_text() if isinstance(artist, Text) else "legend", e.bounds))
    return out


def legend_texts(legend):
    return [t.get_text() for t in legend.get_texts()]


def restart(cluster, excess, certified, gap=None, over_scale=None, rel=None, lam=None):
    return {"value": 10.0 + excess, "excess": excess, "gap": gap, "gap_over_scale": over_scale,
            "rel_gap": rel, "lambda_min": lam, "certified": certified, "cluster": cluster}


def mixed_census():
    """16 restarts: minima 0 (7, certified), 1 (4, not), 2 (2, mixed), 3 (1, not); two reach none.
    Minima 0 and 1 agree on their excess to 3 digits (1.5812, 1.5834)."""
    spec = [(0, 1.5812, True)] * 7 + [(1, 1.5834, False)] * 4 + [(2, 2.3, True), (2, 2.3, False)] + \
        [(3, 2.31, False)] + [(None, 3.0, False)] * 2
    return [restart(c, ex, cert, gap=1e-3 * (ex - 1.5812) + 1e-6, over_scale=ex - 1.5812, rel=0.5,
                    lam=-1e-15 if cert else -0.1) for c, ex, cert in spec]


# ------------------------------------------------------------------------------ panel (a): gaps


def test_gap_panel_draws_the_relative_gap_the_verify_table_prints():
    restarts = mixed_census()
    a = plotting.restart_census(restarts).axes[0]
    assert a.get_xlabel().splitlines()[0] == "gap relative to the optimum's scale s*"
    heights = [p.get_height() for p in a.patches]
    assert sum(heights) == len(restarts)
    # gap_over_scale, not the absolute gap: 7 restarts at 0 (first bin), the others >= 1e-3
    assert heights[0] == 7
    lefts = np.array([p.get_x() for p in a.patches])
    drawn = lefts[np.array(heights) > 0]
    assert drawn.min() == pytest.approx(1e-16) and sorted(drawn)[1] >= 1e-3 * 0.999
    assert a.xaxis.get_major_formatter()(1e-16) == r"$\leq 10^{-16}$"
    assert a.get_title() == "(a) gap to the optimum"


@pytest.mark.parametrize("keys, label, relative", [
    ({"rel_gap": 1e-9}, "gap relative to the optimal excess e*", True),
    ({"gap": 1e-9}, "absolute gap to the optimum", False),
])
def test_gap_panel_falls_back_to_the_gap_over_the_excess_then_the_absolute_gap(keys, label, relative):
    restarts = [{"cluster": 0, "excess": 1.0, "certified": True, **keys} for _ in range(3)]
    assert census.gap_quantity(restarts)[2] is relative
    a = plotting.restart_census(restarts).axes[0]
    assert a.get_xlabel().splitlines()[0] == label
    assert sum(p.get_height() for p in a.patches) == 3


def test_gap_panel_counts_the_restarts_without_a_gap_in_its_title():
    restarts = [{"gap_over_scale": 1e-9, "cluster": 0}, {"gap_over_scale": None, "cluster": 0}]
    a = plotting.restart_census(restarts).axes[0]
    assert sum(p.get_height() for p in a.patches) == 1
    assert "1 of 2 restarts without" in a.get_title()


# ----------------------------------------------------------------------- panel (b): certificates


def test_certificate_panel_legend_lists_the_classes_drawn():
    b = plotting.restart_census(mixed_census()).axes[1]
    assert legend_texts(b.get_legend()) == ["certified", "not certified"]
    assert [c.get_label() for c in b.collections] == ["certified", "not certified"]
    assert sum(len(c.get_offsets()) for c in b.collections) == 16
    assert b.get_xlabel() == "restart"


# ------------------------------------------------------------------------- panel (c): minima


def test_minima_panel_bars_are_the_basins_best_first():
    restarts = mixed_census()
    c = plotting.restart_census(restarts).axes[2]
    assert [p.get_height() for p in c.patches] == [7, 4, 2, 1]
    assert [t.get_text() for t in c.texts] == ["7 (44%)", "4 (25%)", "2 (12%)", "1 (6%)"]
    assert all(re.fullmatch(r"\d+ \(\d+%\)", t.get_text()) for t in c.texts)
    colours = [matplotlib.colors.to_hex(p.get_facecolor()) for p in c.patches]
    kinds = ("certified", "not certified", "mixed", "not certified")
    expected = [census.CERTIFICATE_COLOURS[k] for k in kinds]
    assert colours == [matplotlib.colors.to_hex(e) for e in expected]
    assert " ".join(c.get_title().split()) == "(c) minima up to relabelling and rotation: basin sizes"
    assert "2 restarts reached none" in c.get_xlabel()


def test_minima_ticks_tell_close_excesses_apart():
    c = plotting.restart_census(mixed_census()).axes[2]
    ticks = [t.get_text() for t in c.get_xticklabels()]
    assert len(ticks) == len(set(ticks)) == 4
    assert ticks[0] == "#0\n1.581" and ticks[1] == "#1\n1.583"  # ids: the verify table's minima
    values = [t.split()[-1] for t in ticks]
    assert len(set(values)) == 4  # the excesses alone differ too


def test_minima_legend_is_the_certificate_classes_present():
    c = plotting.restart_census(mixed_census()).axes[2]
    legend = c.get_legend()
    assert legend_texts(legend) == ["certified", "not certified", "mixed"]
    handles = [matplotlib.colors.to_hex(h.get_facecolor()) for h in legend.legend_handles]
    assert handles == [matplotlib.colors.to_hex(census.CERTIFICATE_COLOURS[k]) for k in legend_texts(legend)]
    only = plotting.restart_census([restart(0, 1.0, True)] * 3).axes[2]
    assert legend_texts(only.get_legend()) == ["certified"]
    assert [t.get_text() for t in only.texts] == ["3 (100%)"]


def test_distinct_digits_and_ids():
    assert census.distinct_digits([1.5812, 1.5834]) == 4
    assert census.distinct_digits([1.0, 2.0]) == 3
    assert census.distinct_digits([1.0, 1.0, float("nan")]) == 3
    assert census.minimum_id(3) == "#3" and census.minimum_id(np.int64(12)) == "#12"
    assert census.basin_text(1, 300) == "1 (0.3%)"


def test_census_without_restarts_draws_no_legends():
    fig = plotting.restart_census([])
    assert all(ax.get_legend() is None for ax in fig.axes)


@pytest.mark.parametrize("n_minima", [4, 12])
def test_census_text_stays_inside_the_figure_and_off_the_titles(n_minima):
    if n_minima == 4:
        restarts = mixed_census()
    else:
        restarts = [restart(i % 12, 1 + 0.01 * (i % 12), i % 12 == 0, gap=0.01 * (i % 12),
                            lam=-0.01 * (i % 12)) for i in range(40)]
    fig = plotting.restart_census(restarts, title="SupCon, counts 20,20,2,2, tau 0.1, d 2\n16 restarts")
    assert outside(fig) == []
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[1:]:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.title.get_window_extent(renderer))
        for label in ax.texts:  # bar labels stay below the legend
            assert label.get_window_extent(renderer).y1 <= legend.y0 + 1


def test_census_at_single_column_width_stacks_its_panels():
    with style.options(width="single"):
        fig = plotting.restart_census(mixed_census(), title="SupCon, counts 20,20,2,2, tau 0.1")
    assert fig.get_figwidth() == pytest.approx(style.SINGLE_COLUMN)
    assert outside(fig) == []
    boxes = [ax.get_position() for ax in fig.axes]
    assert boxes[0].y0 > boxes[1].y0 > boxes[2].y0  # (a) above (b) above (c)


# -------------------------------------------------------------------------------------- curves


def test_curves_label_what_is_drawn():
    hist = [np.geomspace(10, 1e-3, 5) + 2.0 for _ in range(3)]
    ax = plotting.optimisation_curves(hist, optimal_value=2.0).axes[0]
    assert ax.get_ylabel() == "gap to the optimum\nvalue - optimum (absolute)"
    assert ax.get_title() == "3 restarts: gap to the optimum per iteration"
    ax = plotting.optimisation_curves(hist, floor=1.0).axes[0]
    assert ax.get_ylabel() == "excess over the floor\nvalue - floor (absolute)"
    ax = plotting.optimisation_curves(hist, optimal_value=2.0, scale=0.5).axes[0]
    assert ax.get_ylabel().splitlines()[0] == "gap relative to the optimum's scale s*"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), (hist[0] - 2.0) / 0.5)
    assert plotting.optimisation_curves(hist[:1], 2.0).axes[0].get_title().startswith("1 restart:")
    with pytest.raises(ValueError, match="scale"):
        plotting.optimisation_curves(hist, optimal_value=2.0, scale=0.0)


def test_curves_one_colour_each_up_to_8_restarts():
    few = plotting.optimisation_curves([np.linspace(3, 2, 4)] * 8, optimal_value=1.0).axes[0]
    assert len({ln.get_color() for ln in few.lines}) == 8
    many = plotting.optimisation_curves([np.linspace(3, 2, 4)] * 9, optimal_value=1.0).axes[0]
    assert len({ln.get_color() for ln in many.lines}) == 1 and many.lines[0].get_alpha() < 1
    assert few.get_legend() is None and many.get_legend() is None
    assert outside(few.figure) == []


# ----------------------------------------------------------------------------------- embeddings


def tetra(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    return TETRA[labels], labels


def class_mean_artists(ax):
    return [c for c in ax.collections if not c.get_label().startswith("_")]


@pytest.mark.parametrize("dim", [2, 3])
def test_embedding_legend_is_the_class_means_with_sizes(dim):
    H, y = tetra([10, 7, 3, 1])
    fig = plotting.embedding_scatter(H, y, dim=dim, title="4 classes")
    ax = fig.axes[0]
    texts = legend_texts(ax.get_legend())
    assert texts == ["class 0 (n = 10)", "class 1 (n = 7)", "class 2 (n = 3)", "class 3 (n = 1)"]
    assert [c.get_label() for c in class_mean_artists(ax)] == texts
    assert all(len(c.get_offsets()) == 1 for c in class_mean_artists(ax))
    assert "PCA:" in ax.get_title() and "% of ||H||_F^2" in ax.get_title()
    assert fig.get_figwidth() == pytest.approx(style.SINGLE_COLUMN)
    assert outside(fig) == []


def test_embedding_legend_sits_below_the_plot_without_squashing_it():
    k = 10
    y = np.repeat(np.arange(k), np.arange(k, 0, -1))
    rng = np.random.default_rng(0)
    H = rng.standard_normal((len(y), 6))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    fig = plotting.embedding_scatter(H, y)
    ax = fig.axes[0]
    assert outside(fig) == []
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    plot = ax.get_window_extent(renderer)
    assert legend.y1 < ax.xaxis.label.get_window_extent(renderer).y0 + 1  # below the x label
    assert plot.width >= 0.55 * fig.bbox.width  # the plot keeps most of the column
    assert len(legend_texts(ax.get_legend())) == k


def test_embedding_legend_fits_a_given_axes_of_a_two_panel_figure():
    H, y = tetra([5, 3, 2, 1])

    @style.styled
    def draw():
        fig = plotting.new_figure(2, 0.85, extra_height=0.2)
        a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2, projection="3d")
        plotting.embedding_scatter(H, y, ax=a)
        plotting.embedding_scatter(H, y, ax=b, dim=3)
        return fig

    fig = draw()
    assert outside(fig) == []
    assert all(len(legend_texts(ax.get_legend())) == 4 for ax in fig.axes)


def test_embedding_many_classes_have_no_legend():
    k = 15
    y = np.repeat(np.arange(k), 2)
    H = np.eye(k)[y]
    fig = Figure()
    ax = fig.add_subplot()
    plotting.embedding_scatter(H, y, ax=ax)
    assert ax.get_legend() is None and len(fig.axes) == 2
