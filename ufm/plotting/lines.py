"""Summary columns of a study against a swept parameter: one line per value of another, and
over repeats (seeds) the mean with a 95% Student-t interval, each repeat a faint point behind it.

- x numeric: the values in order, ticks at the values when there are few (log x when they span
  20x or more); x categorical (strings, lists): the categories at 0, 1, ... in order of first
  appearance, labelled with their names, the groups dodged sideways and not joined by lines.
- One group per value of ``by`` (order of first appearance): Okabe-Ito colour, marker and line
  style of its own, the marker a little smaller for each later group, so that coincident series
  stay visible (an earlier marker shows around a later one).
- Rows that share x and ``by`` are repeats (they differ in ``over``, e.g. the seed): per (by, x)
  the mean of the finite values, with the interval mean -+ t_{0.975, m-1} s / sqrt(m) (s the
  sample standard deviation of the m repeats; none with m = 1) as error bars, and each repeat as
  a faint small point (no legend entry). One legend entry says what the bars are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import (
    LINESTYLES,
    MARKERS,
    figure_and_axes_list,
    fmt,
    legend_columns,
    line_colour,
    log_span,
)
from ufm.plotting.style import styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Confidence of the interval over repeats.
CONFIDENCE = 0.95
#: Marker size (points) of the first group; each later group's is MARKER_STEP smaller, down to MIN_MARKER.
MARKER_SIZE, MARKER_STEP, MIN_MARKER = 6.0, 1.3, 2.5
#: Marker size and opacity of a single repeat.
REPEAT_SIZE, REPEAT_ALPHA = 2.5, 0.3
#: Sideways room (in category widths) the groups of a categorical x are spread over.
DODGE_WIDTH = 0.36
#: Ticks at the x values themselves up to this many values.
MAX_VALUE_TICKS = 10
#: Readable names of the usual swept keys (axis labels).
KEY_NAMES = {"dim": "dimension d", "tau": "temperature tau", "ratio": "imbalance ratio R",
             "patterns": "patterns P", "counts": "class counts", "activation": "activation"}
#: Readable names of the usual summary columns (y labels); others get their words.
COLUMN_NAMES = {"best_gap": "best gap to the optimum", "fraction_global": "fraction certified global",
                "cos_max": "largest class-mean cosine", "cos_min": "smallest class-mean cosine",
                "specialised_fraction": "fraction of units specialised",
                "distinct_optima": "distinct local optima", "patterns_found": "patterns found"}


def _group_label(key: str, value: Any) -> str:
    """``tau = 0.1``; class counts in words (``4 classes of 10``, ``counts 20,20,2,2``)."""
    if key == "counts" and isinstance(value, list | tuple):
        return _value_text(key, value)
    return f"{key} = {_value_text(key, value)}"


def _value_text(key: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        if key == "counts":
            from ufm.plotting.titles import counts_words

            return counts_words(value)
        shown = ", ".join(fmt(v) for v in value[:4])
        return f"[{shown}{', ...' if len(value) > 4 else ''}]"
    return fmt(value)


def axis_name(key: str) -> str:
    """The x axis label of a swept key: its readable name (``dim`` -> ``dimension d``)."""
    return KEY_NAMES.get(key, key.replace("_", " "))


def column_label(column: str) -> str:
    """The y axis label of a summary column: its readable name, a gap said to be absolute unless
    its name says relative (``best_gap`` -> ``best gap to the optimum (absolute)``)."""
    words = COLUMN_NAMES.get(column, column.replace("_", " "))
    if column.endswith("gap") and "rel" not in column:
        return f"{words} (absolute)"
    return words


def is_fraction(column: str) -> bool:
    """A column whose values lie in [0, 1] by its name (``fraction_global``, ``specialised_fraction``)."""
    return column.startswith("fraction") or column.endswith("fraction")


def _number(v: Any) -> float | None:
    """A finite float of a number or boolean (0/1), else None."""
    if isinstance(v, bool | np.bool_):
        return float(v)
    if isinstance(v, int | float | np.number):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(mean, half width of the Student-t interval) of repeats; the half width is NaN for one."""
    v = np.asarray(values, dtype=float)
    m = v.size
    if m == 0:
        return float("nan"), float("nan")
    if m == 1:
        return float(v[0]), float("nan")
    from scipy import stats

    half = stats.t.ppf(0.5 + confidence / 2.0, m - 1) * v.std(ddof=1) / math.sqrt(m)
    return float(v.mean()), float(half)


def _repeat_words(over: list[str] | None, counts: set[int]) -> str:
    """``3 seeds``; ``2-3 seeds`` where the number differs; ``4 repeats (seed, restarts)``."""
    lo, hi = min(counts), max(counts)
    n = f"{lo}" if lo == hi else f"{lo}-{hi}"
    if over and len(over) == 1:
        key = over[0].replace("_", " ")
        return f"{n} {key if key.endswith('s') else key + 's'}"
    return f"{n} repeats" + (f" ({', '.join(over)})" if over else "")


@dataclass
class _Series:
    """One group's points of one column: per x position the repeats' values."""

    positions: list[float]
    values: list[list[float]]


def _categories(rows: list[Mapping[str, Any]], x: str) -> list[Any] | None:
    """The categories of x in order of first appearance, or None when x is numeric."""
    present = [r.get(x) for r in rows if r.get(x) is not None]
    if all(_number(v) is not None and not isinstance(v, bool | np.bool_) for v in present):
        return None
    return list({repr(v): v for v in present}.values())


def _series(rows: list[Mapping[str, Any]], x: str, y: str, categories: list[Any] | None) -> _Series:
    where = {repr(c): i for i, c in enumerate(categories)} if categories is not None else None
    points: dict[float, list[float]] = {}
    for r in rows:
        xv, yv = r.get(x), _number(r.get(y))
        if xv is None or yv is None:
            continue
        pos = float(where[repr(xv)]) if where is not None else _number(xv)
        if pos is None:
            continue
        points.setdefault(pos, []).append(yv)
    order = sorted(points)
    return _Series(order, [points[p] for p in order])


@styled
def summary_lines(rows: Sequence[Mapping[str, Any]], x: str, ys: Sequence[str], by: str | None = None,
                  axes: Sequence[Axes] | None = None, title: str | None = None,
                  over: str | Sequence[str] | None = None) -> Figure:
    """One panel per column in ``ys`` against ``x`` over result rows (dicts), one series per value
    of ``by``; rows sharing x and ``by`` are repeats differing in ``over`` (a key or keys, e.g.
    ``"seed"``), drawn as the mean with a 95% Student-t interval and each repeat faint behind it.
    Booleans count as 0/1, None is skipped; a categorical x (strings) is placed at 0, 1, ... with
    its names as ticks. The legend (below the panels; on the first Axes when ``axes`` are given)
    lists the groups drawn and what the error bars are. ``title``: the figure's suptitle.
    For study summaries: e.g. the best gap and the fraction of certified restarts against the
    dimension (a gap when d < k - 1; Behnia & Thrampoulidis 2024), or the share of specialised
    hidden units per activation over seeds (Tian 2023)."""
    rows = list(rows)
    ys = [ys] if isinstance(ys, str) else list(ys)
    if not rows or not ys:
        raise ValueError("summary_lines: no rows or no columns to draw")
    over_keys = [over] if isinstance(over, str) else (list(over) if over else None)
    given = axes is not None
    fig, used = figure_and_axes_list(axes, len(ys), 0.8)
    groups: list[Any] = [None]
    if by is not None:  # values in order of first appearance (lists, e.g. class counts, included)
        groups = list({repr(r.get(by)): r.get(by) for r in rows}.values())
    categories = _categories(rows, x)
    dodge = (np.linspace(-DODGE_WIDTH / 2, DODGE_WIDTH / 2, len(groups)) if categories is not None
             and len(groups) > 1 else np.zeros(len(groups)))
    handles: dict[str, Any] = {}  # legend label -> handle, groups in order
    repeat_counts: set[int] = set()
    for ax, y in zip(used, ys, strict=True):
        for gi, g in enumerate(groups):
            sub = [r for r in rows if by is None or repr(r.get(by)) == repr(g)]
            s = _series(sub, x, y, categories)
            if not s.positions:
                continue
            colour = line_colour(gi)
            marker = MARKERS[gi % len(MARKERS)]
            size = max(MARKER_SIZE - MARKER_STEP * gi, MIN_MARKER)
            pos = np.asarray(s.positions) + dodge[gi]
            stats = [t_interval(v) for v in s.values]
            means = np.array([m for m, _ in stats])
            halves = np.array([h for _, h in stats])
            if any(len(v) > 1 for v in s.values):
                repeat_counts.update(len(v) for v in s.values)
                rx = np.concatenate([np.full(len(v), p) for p, v in zip(pos, s.values, strict=True)])
                ry = np.concatenate([np.asarray(v) for v in s.values])
                ax.plot(rx, ry, linestyle="none", marker=marker, markersize=REPEAT_SIZE, color=colour,
                        alpha=REPEAT_ALPHA, markeredgewidth=0, label="_repeats", gid="repeats", zorder=1.5)
                bars = np.isfinite(halves) & (halves > 0)
                if bars.any():
                    ax.errorbar(pos[bars], means[bars], yerr=halves[bars], fmt="none", ecolor=colour,
                                elinewidth=0.9, capsize=2.0, capthick=0.9, label="_interval", zorder=2.5,
                                gid="interval")
            label = _group_label(by, g) if by is not None else "_mean"
            style = "none" if categories is not None else LINESTYLES[gi % len(LINESTYLES)]
            (line,) = ax.plot(pos, means, marker=marker, markersize=size, color=colour, linestyle=style,
                              markerfacecolor="none", markeredgewidth=1.0, label=label, gid="mean",
                              zorder=3 + 0.01 * gi)
            if by is not None:
                handles.setdefault(label, line)
        _axes_style(ax, rows, x, y, categories)
    if repeat_counts:
        handles[f"mean, 95% t-interval over {_repeat_words(over_keys, repeat_counts)}"] = _interval_handle()
    if handles:
        labels = list(handles)
        kwargs = {"handles": list(handles.values()), "labels": labels,
                  "ncols": legend_columns(labels, fig.get_figwidth(), 0.45)}
        if given:
            used[0].legend(loc="best", **kwargs)
        else:
            fig.legend(loc="outside lower center", **kwargs)
    if title is not None:
        fig.suptitle(title, wrap=True)
    return fig


def _interval_handle():
    """A grey error bar with a dot (legend entry of the interval), drawn nowhere else."""
    from matplotlib.collections import LineCollection
    from matplotlib.container import ErrorbarContainer
    from matplotlib.lines import Line2D

    dot = Line2D([], [], color="0.35", marker="o", markersize=3.0, linestyle="none")
    cap = Line2D([], [], color="0.35", marker="_", markersize=4.0, linestyle="none")
    bar = LineCollection([], colors="0.35", linewidths=0.9)
    return ErrorbarContainer((dot, (cap, cap), (bar,)), has_xerr=False, has_yerr=True)


def _axes_style(ax: Axes, rows: list[Mapping[str, Any]], x: str, y: str,
                categories: list[Any] | None) -> None:
    """Ticks, scales, limits and labels of one panel."""
    if categories is not None:
        names = [_value_text(x, c) for c in categories]
        ax.set_xticks(np.arange(len(categories)), names,
                      rotation=30 if sum(len(n) for n in names) > 36 else 0,
                      ha="right" if sum(len(n) for n in names) > 36 else "center")
        ax.set_xlim(-0.5, len(categories) - 0.5)
    else:
        xs = np.array(sorted({v for r in rows if (v := _number(r.get(x))) is not None}))
        if log_span(xs, 20.0, strict=False):
            ax.set_xscale("log")
        if 0 < xs.size <= MAX_VALUE_TICKS:
            from matplotlib.ticker import NullLocator

            ax.set_xticks(xs, [fmt(int(v)) if v == round(v) else fmt(v) for v in xs])
            ax.xaxis.set_minor_locator(NullLocator())
        elif xs.size and np.all(xs == np.round(xs)):
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    values = np.array([v for r in rows if (v := _number(r.get(y))) is not None])
    if (is_fraction(y) or (values.size and all(isinstance(r.get(y), bool | np.bool_) for r in rows
                                               if r.get(y) is not None))):
        ax.set_ylim(-0.05, 1.05)
    elif y.endswith("gap") and values.size and values.min() > 0 and values.max() / values.min() > 100:
        ax.set_yscale("log")
    ax.set_xlabel(axis_name(x))
    ax.set_ylabel(column_label(y))
