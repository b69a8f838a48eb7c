"""Content tests of the line figures: summary lines over seeds, STEP cosines, network censuses."""

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402

from ufm import plotting  # noqa: E402
from ufm.plotting import step  # noqa: E402
from ufm.plotting.lines import column_label, t_interval  # noqa: E402
from ufm.plotting.style import MAX_SHADES  # noqa: E402


def by_gid(ax, gid):
    return [ln for ln in ax.lines if ln.get_gid() == gid]


def texts(legend):
    return [t.get_text() for t in legend.get_texts()]


def interval_segments(ax):
    """(x, low, high) of every error bar drawn in ``ax``."""
    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            for seg in c.lines[2][0].get_segments():
                out.append((seg[0][0], min(seg[0][1], seg[1][1]), max(seg[0][1], seg[1][1])))
    return sorted(out)


# seeds 0..2 at d = 2, 3 for two temperatures; the tau 1 group has one seed missing at d = 3
SEEDED = {(0.1, 2): [0.5, 0.7, 0.9], (0.1, 3): [0.1, 0.2, 0.6], (1.0, 2): [3.0, 3.5, 2.0],
          (1.0, 3): [1.0, None, 1.4]}


def seeded_rows():
    return [{"tau": tau, "dim": d, "seed": s, "best_gap": v}
            for (tau, d), values in SEEDED.items() for s, v in enumerate(values)]


def test_t_interval_matches_hand_computation():
    v = [0.5, 0.7, 0.9]
    mean, half = t_interval(v)
    assert mean == pytest.approx(0.7)
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / math.sqrt(3))
    assert math.isnan(t_interval([2.0])[1]) and t_interval([2.0])[0] == 2.0


def test_summary_lines_mean_interval_and_faint_seeds():
    fig = plotting.summary_lines(seeded_rows(), "dim", ["best_gap"], by="tau", over="seed", title="gap")
    ax = fig.axes[0]
    means = by_gid(ax, "mean")
    assert [ln.get_label() for ln in means] == ["tau = 0.1", "tau = 1"]
    for ln, tau in zip(means, (0.1, 1.0), strict=True):
        expected = [np.mean([v for v in SEEDED[(tau, d)] if v is not None]) for d in (2, 3)]
        assert list(ln.get_xdata()) == [2.0, 3.0]
        assert np.allclose(ln.get_ydata(), expected)
    # the error bars: mean -+ t_{0.975, m-1} s / sqrt(m), m = 3 or 2 seeds
    expected = []
    for (_, d), values in SEEDED.items():
        v = np.array([x for x in values if x is not None])
        half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
        expected.append((d, v.mean() - half, v.mean() + half))
    assert np.allclose(interval_segments(ax), sorted(expected))
    # every seed a faint point, no legend entry
    faint = by_gid(ax, "repeats")
    assert sum(len(ln.get_xdata()) for ln in faint) == 11  # 12 rows, one None skipped
    assert all(ln.get_alpha() == pytest.approx(0.3) and ln.get_label().startswith("_") for ln in faint)
    # the legend: the groups drawn, then what the bars are (2 or 3 seeds per point)
    assert ax.get_legend() is None and len(fig.legends) == 1
    assert texts(fig.legends[0]) == ["tau = 0.1", "tau = 1", "mean, 95% t-interval over 2-3 seeds"]
    assert fig.get_suptitle() == "gap"
    assert ax.get_ylabel() == "best gap to the optimum (absolute)"
    assert ax.get_xlabel() == "dimension d"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "3"]


def test_summary_lines_without_repeats_has_no_interval():
    rows = [{"tau": tau, "dim": d, "fraction_global": f} for tau in (0.1, 1.0)
            for d, f in ((2, 0.0), (5, 1.0), (6, 1.0))]
    fig = plotting.summary_lines(rows, "dim", ["fraction_global"], by="tau", over=None)
    ax = fig.axes[0]
    assert not by_gid(ax, "repeats") and not interval_segments(ax)
    assert texts(fig.legends[0]) == ["tau = 0.1", "tau = 1"]
    assert ax.get_ylim() == pytest.approx((-0.05, 1.05))
    fig = plotting.summary_lines(rows[:3], "dim", ["fraction_global"])
    assert not fig.legends and fig.axes[0].get_legend() is None


def test_summary_lines_coincident_series_stay_visible():
    # the dimension figure: best_gap for tau 0.1 and tau 1 coincide
    rows = [{"tau": tau, "dim": d, "best_gap": g} for tau in (0.1, 1.0) for d, g in ((2, 0.5), (3, 0.0))]
    ax = plotting.summary_lines(rows, "dim", ["best_gap"], by="tau").axes[0]
    first, second = by_gid(ax, "mean")
    assert np.array_equal(first.get_xydata(), second.get_xydata())
    assert first.get_marker() != second.get_marker()
    assert first.get_linestyle() != second.get_linestyle()
    assert second.get_markersize() < first.get_markersize()  # the earlier one shows around it
    assert first.get_visible() and second.get_visible()


def test_summary_lines_categorical_x_over_seeds():
    seeds = (("relu", [0.5, 0.25, 0.5]), ("linear", [0.0, 0.0, 0.125]))
    rows = [{"activation": a, "seed": s, "specialised_fraction": f}
            for a, fs in seeds for s, f in enumerate(fs)]
    fig = plotting.summary_lines(rows, "activation", ["specialised_fraction"], over=["seed"])
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [0, 1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["relu", "linear"]  # order of first appearance
    (mean,) = by_gid(ax, "mean")
    assert list(mean.get_xdata()) == [0.0, 1.0]
    assert np.allclose(mean.get_ydata(), [np.mean([0.5, 0.25, 0.5]), np.mean([0.0, 0.0, 0.125])])
    assert mean.get_linestyle() == "None"  # categories are not a trend
    assert sum(len(ln.get_xdata()) for ln in by_gid(ax, "repeats")) == 6
    assert texts(fig.legends[0]) == ["mean, 95% t-interval over 3 seeds"]
    assert ax.get_ylim() == pytest.approx((-0.05, 1.05))


def test_summary_lines_categorical_x_dodges_groups():
    rows = [{"activation": a, "patterns": p, "distinct_optima": 2}
            for p in (2, 4) for a in ("relu", "leaky_relu")]
    ax = plotting.summary_lines(rows, "activation", ["distinct_optima"], by="patterns").axes[0]
    first, second = by_gid(ax, "mean")
    assert np.allclose(first.get_ydata(), second.get_ydata())
    assert np.all(second.get_xdata() - first.get_xdata() > 0.1)  # side by side, not on top
    assert first.get_marker() != second.get_marker()


def test_summary_lines_booleans_none_and_given_axes():
    rows = [{"dim": 2, "certified": True}, {"dim": 2, "certified": False}, {"dim": 3, "certified": None},
            {"dim": 3, "certified": True}]
    fig = Figure()
    ax = fig.add_subplot()
    assert plotting.summary_lines(rows, "dim", ["certified"], over="seed", axes=[ax]) is fig
    (mean,) = by_gid(ax, "mean")
    assert list(mean.get_ydata()) == [0.5, 1.0]
    assert ax.get_ylim() == pytest.approx((-0.05, 1.05))
    assert not fig.legends and texts(ax.get_legend()) == ["mean, 95% t-interval over 1-2 seeds"]


def test_column_labels():
    assert column_label("best_gap") == "best gap to the optimum (absolute)"
    assert column_label("final_gap") == "final gap (absolute)"
    assert column_label("best_rel_gap") == "best rel gap"
    assert column_label("gap_relative_to_excess") == "gap relative to excess"


# --------------------------------------------------------------------------- STEP


def step_rows(taus=(0.1, 1.0), ratios=(1.0, 10.0, 100.0), minor=None):
    return [{"ratio": r, "tau": t, "cos_major": -0.25 - 0.01 * t, "cos_minor": minor,
             "cos_between": -0.1 + 0.001 * r} for t in taus for r in ratios]


def test_step_panels_legends_list_drawn_kinds_and_groups():
    fig = plotting.step_panels(step_rows())  # one minority class: no minority-minority
    a, b = fig.axes
    assert texts(fig.legends[0]) == ["majority-majority", "majority-minority"]
    assert texts(a.get_legend()) == ["tau = 0.1", "tau = 1"]
    assert texts(b.get_legend()) == ["R = 1", "R = 10", "R = 100"]
    assert not [ln for ln in a.lines if ln.get_gid() == "cos_minor"]
    styles = {(ln.get_linestyle(), ln.get_marker()) for ln in a.lines if ln.get_gid() == "cos_major"}
    assert len(styles) == 2  # one line style and marker per tau
    assert "tau" in a.get_title() and "R" in b.get_title()


def test_step_panels_many_groups_get_a_colour_bar():
    taus = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
    assert len(taus) > MAX_SHADES
    fig = plotting.step_panels(step_rows(taus=taus, minor=0.1))
    a, b = fig.axes[:2]
    assert len(fig.axes) == 3  # panel a's colour bar; panel b (3 ratios) has line styles
    bar = fig.axes[2]._colorbar
    assert (bar.norm.vmin, bar.norm.vmax) == (min(taus), max(taus))
    assert type(bar.norm).__name__ == "LogNorm"  # 0.02..2 spans 100x
    assert [float(t) for t in bar.get_ticks()] == pytest.approx(list(taus))
    colours = {tuple(np.round(matplotlib.colors.to_rgba(ln.get_color()), 6)) for ln in a.lines
               if ln.get_gid() == "cos_major"}
    assert len(colours) == len(taus)
    kinds = {(ln.get_gid(), ln.get_linestyle(), ln.get_marker()) for ln in a.lines}
    assert len(kinds) == 3  # the kinds by line style and marker
    # the panels draw the kinds differently: each names them in its own legend
    assert not fig.legends
    assert texts(a.get_legend()) == ["majority-majority", "minority-minority", "majority-minority"]
    assert texts(b.get_legend())[:3] == texts(a.get_legend())
    # both panels with a colour bar: one legend of the kinds below
    fig = plotting.step_panels(step_rows(taus=taus, ratios=(1, 2, 5, 10, 20, 50, 100)))
    assert len(fig.axes) == 4 and texts(fig.legends[0]) == ["majority-majority", "majority-minority"]
    bar = fig.axes[3]._colorbar
    assert (bar.norm.vmin, bar.norm.vmax) == (1, 100)


def test_step_panels_shades_are_distinguishable(monkeypatch):
    monkeypatch.setattr(step, "LINESTYLES", ("-", "--"))
    taus = (0.1, 0.2, 0.5, 1.0, 2.0)
    assert step.group_mode(len(taus)) == "shades"
    fig = plotting.step_panels(step_rows(taus=taus, ratios=(1, 10)))
    a = fig.axes[0]
    assert len(fig.axes) == 2
    tones = [ln.get_color() for ln in a.lines if ln.get_gid() == "cos_major"]
    assert len(set(map(str, tones))) == len(taus) <= MAX_SHADES
    # panel b (2 ratios) has line styles: each panel names the kinds as it draws them
    kinds = ["majority-majority", "majority-minority"]
    assert texts(a.get_legend()) == kinds + [f"tau = {t:g}" for t in taus]
    kind = a.get_legend().legend_handles[0]
    assert (kind.get_linestyle(), kind.get_marker()) == ("-", "o")  # shades: colour, line and marker


@pytest.mark.parametrize("colour", step._KIND_COLOURS)
def test_shades_step_clearly_in_lightness(colour):
    levels = [step.lightness(c) for c in step.shades(colour, MAX_SHADES)]
    assert np.all(np.diff(levels) < -8.0)  # light to dark, at least 8 L* apart


def test_step_cosines_kinds_distinguishable_and_legend_drawn_only():
    fig = plotting.step_cosines([1, 10, 100], [-0.1, -0.2, -0.3], [None] * 3, [-0.1, -0.2, -0.3])
    ax = fig.axes[0]
    assert texts(ax.get_legend()) == [ln.get_label() for ln in ax.lines] == ["majority-majority",
                                                                              "majority-minority"]
    first, second = ax.lines
    assert first.get_marker() != second.get_marker() and first.get_linestyle() != second.get_linestyle()
    assert second.get_markersize() < first.get_markersize()


def test_cosines_vs_class_size_two_classes_both_visible():
    C = np.array([[1.0, -1.0], [-1.0, 1.0]])
    ax = plotting.cosines_vs_class_size(C, [10, 2]).axes[0]
    mean, largest = (ln for ln in ax.lines if ln.get_linestyle() == "None")
    assert np.array_equal(mean.get_ydata(), largest.get_ydata())  # k = 2: mean = largest
    assert largest.get_markerfacecolor() == "none"  # hollow over the filled mean
    assert texts(ax.get_legend()) == [ln.get_label() for ln in ax.lines]


# --------------------------------------------------------------------------- networks


def census(activation, alignments, verdicts=None, dead=0, ends=None):
    verdicts = verdicts or ["local_optimum"] * len(alignments)
    optima = [{"alignment": c, "verdict": v, "pattern": i}
              for i, (c, v) in enumerate(zip(alignments, verdicts, strict=True))]
    certified = sum(v == "local_optimum" for v in verdicts)
    return {"activation": activation, "distinct_optima": certified, "dead_units": dead,
            "distinct_end_points": len(alignments) if ends is None else ends, "optima": optima}


def test_network_census_offsets_markers_and_legends():
    results = [census("linear", [0.84]), census("relu", [0.995] * 4), census("leaky_relu", [0.995] * 4)]
    fig = plotting.network_census(results, title="P = 4")
    a, b = fig.axes
    assert texts(a.get_legend()) == ["local optima (certified)"]  # nothing else is drawn
    assert [p.get_height() for p in a.patches] == [1, 4, 4]
    assert len(b.collections) == 3
    markers = []
    for i, col in enumerate(b.collections):
        x = col.get_offsets()[:, 0]
        assert x.mean() == pytest.approx(i) and len(set(np.round(x, 6))) == len(x)  # spread, none on another
        assert np.all(np.abs(x - i) <= 0.31)
        markers.append(col.get_paths()[0].vertices.shape)
    assert len(set(markers)) == 3  # one marker per activation
    assert texts(b.get_legend()) == ["certified local optimum"]
    assert [t.get_text() for t in b.get_xticklabels()] == ["linear", "relu", "leaky_relu"]
    assert fig.get_suptitle() == "P = 4"


def test_network_census_lists_uncertified_and_dead_when_drawn():
    results = [census("relu", [0.99, 0.5], ["local_optimum", "not_optimal"], dead=2)]
    fig = plotting.network_census(results)
    a, b = fig.axes
    assert texts(a.get_legend()) == ["local optima (certified)", "end points, not certified", "dead units"]
    assert texts(b.get_legend()) == ["certified local optimum", "not certified"]


def test_specialisation_histogram_legend_and_styles():
    scores = {"linear": [0.1, 0.2, np.nan, 0.3], "relu": [0.95, 0.99, 0.1], "tanh": [np.nan]}
    ax = plotting.specialisation_histogram(scores, title="units").axes[0]
    assert texts(ax.get_legend()) == ["linear (3 units)", "relu (3 units)"]  # tanh: nothing drawn
    drawn = [p for p in ax.patches if not p.get_label().startswith("_")]
    assert [p.get_label() for p in drawn] == texts(ax.get_legend())
    assert drawn[0].get_linestyle() != drawn[1].get_linestyle()
    assert drawn[1].get_linewidth() < drawn[0].get_linewidth()
    assert ax.get_title() == "units"
