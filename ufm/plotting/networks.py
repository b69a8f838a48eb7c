"""Networks in place of free embeddings (Tian 2023): one-layer censuses, two-layer specialisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import (
    LINESTYLES,
    MARKERS,
    figure_and_axes,
    figure_and_axes_list,
    legend_if_labelled,
    line_colour,
)
from ufm.plotting.style import PALETTE, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


#: Half the width over which one activation's end points are spread sideways in panel (b).
SPREAD = 0.3


def _spread(n: int) -> np.ndarray:
    """Sideways offsets of n points around their category: evenly over -+SPREAD, none for one."""
    return np.linspace(-SPREAD, SPREAD, n) if n > 1 else np.zeros(n)


@styled
def network_census(results: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None,
                   title: str | None = None) -> Figure:
    """One unit between the data and the embedding (Tian 2023), one census per activation.
    (a) Stacked bars of the distinct end points of the random starts: certified local optima,
    end points not certified (not optimal or unresolved), dead units; a segment no activation has
    is not drawn. (b) The cosine of each distinct end point with its best-aligned pattern: one
    marker and colour per activation, its end points spread sideways in order of pattern (so
    that equal cosines do not hide one another), filled when certified, hollow when not.
    Legends list only what is drawn. ``results``: the ``to_dict()`` of
    ``solvers.networks.one_layer.OneLayerResult`` for each activation."""
    results = list(results)
    if not results:
        raise ValueError("network_census: no results to draw")
    fig, (a, b) = figure_and_axes_list(axes, 2, 0.8)
    names = [str(r["activation"]) for r in results]
    xs = np.arange(len(results))
    optima = np.array([r["distinct_optima"] for r in results])
    ends = np.array([r.get("distinct_end_points", r["distinct_optima"]) for r in results])
    dead = np.array([r.get("dead_units", 0) or 0 for r in results])
    a.bar(xs, optima, color=PALETTE[4], edgecolor="black", label="local optima (certified)")
    if np.any(ends - optima > 0):
        a.bar(xs, ends - optima, bottom=optima, color=PALETTE[1], edgecolor="black", hatch="..",
              label="end points, not certified")
    if np.any(dead > 0):
        a.bar(xs, dead, bottom=ends, color="white", edgecolor="0.4", hatch="//", label="dead units")
    from matplotlib.ticker import MaxNLocator

    a.set_xticks(xs, names)
    a.yaxis.set_major_locator(MaxNLocator(integer=True))
    tallest = max(float(np.max(ends + dead)), 1.0)
    a.set_ylim(0, 1.45 * tallest)  # room for the legend above the bars
    a.set_ylabel("distinct end points")
    a.set_title("(a) distinct end points")
    legend_if_labelled(a, loc="upper left", ncols=2)
    certified_drawn = hollow_drawn = False
    for i, r in enumerate(results):
        shown = sorted((o for o in r["optima"] if o.get("alignment") is not None),
                       key=lambda o: (o.get("pattern") is None, o.get("pattern") or 0))
        if not shown:
            continue
        cos = np.array([o["alignment"] for o in shown], dtype=float)
        certified = np.array([o.get("verdict") == "local_optimum" for o in shown], dtype=bool)
        x = i + _spread(len(cos))
        colour, marker = line_colour(i), MARKERS[i % len(MARKERS)]
        if certified.any():
            b.scatter(x[certified], cos[certified], color=colour, marker=marker, edgecolor="black",
                      linewidths=0.5, s=22, zorder=3, label="_certified")
            certified_drawn = True
        if (~certified).any():
            b.scatter(x[~certified], cos[~certified], facecolor="white", edgecolor=colour, marker=marker,
                      linewidths=1.0, s=22, zorder=3, label="_not certified")
            hollow_drawn = True
    b.set_xticks(xs, names)
    b.set_xlim(-0.6, len(results) - 0.4)
    b.set_ylim(-0.05, 1.05)
    b.set_ylabel("cosine with the closest pattern")
    b.set_title("(b) alignment of each end point")
    from matplotlib.lines import Line2D

    handles = []
    if certified_drawn:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=4.5, color="0.55",
                              markeredgecolor="black", markeredgewidth=0.5, label="certified local optimum"))
    if hollow_drawn:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=4.5, markerfacecolor="white",
                              markeredgecolor="0.3", label="not certified"))
    if handles:
        b.legend(handles=handles, loc="lower right")
    if title is not None:
        fig.suptitle(title, wrap=True)
    return fig


@styled
def specialisation_histogram(scores: Mapping[str, Any], ax: Axes | None = None,
                             title: str | None = None, coverage: Mapping[str, Any] | None = None,
                             paper_score: Mapping[str, Any] | None = None) -> Figure:
    """Per activation (or any named set of units), the step histogram of the hidden units'
    specialisation: the share of a unit's response variance carried by one pattern token, in 20
    bins over [0, 1] (Tian 2023: ReLU units specialise, near 1; linear units do not). Each set
    has its colour and line style, the line a little thinner for each later set so that equal
    bins stay visible; the legend names each set drawn with its number of units (a set with no
    finite score is left out; a share a round-off above 1 counts in the last bin). ``coverage``
    and ``paper_score`` (by set name, optional) add to a set's legend entry (then below the axes)
    the fraction of pattern tokens with a dedicated unit and the paper's score (``solvers.networks.two_layer.
    TwoLayerResult.summary``: ``token_coverage``, ``paper_score``): a histogram of units cannot
    tell many units on one token from one unit on each."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    own = ax is None  # a figure of its own: long legend entries go below the axes
    fig, ax = figure_and_axes(ax, 0.75)
    bins = np.linspace(0.0, 1.0, 21)
    handles = []
    for i, (name, s) in enumerate(scores.items()):
        s = np.asarray(s, dtype=float).ravel()
        s = np.clip(s[np.isfinite(s)], 0.0, 1.0)  # a full share is 1 + round-off: in the last bin
        if s.size == 0:
            continue
        style = {"color": line_colour(i), "linestyle": LINESTYLES[i % len(LINESTYLES)],
                 "linewidth": max(1.4 - 0.35 * i, 0.7)}
        label = f"{name} ({s.size} units"
        c = None if coverage is None else coverage.get(name)
        p = None if paper_score is None else paper_score.get(name)
        if c is not None:
            label += f"; coverage {float(c):.0%}"
        if p is not None:
            label += f"; paper score {float(p):.2f}"
        label += ")"
        ax.hist(s, bins=bins, histtype="step", label=label, **style)
        handles.append(Line2D([], [], label=label, **style))
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("share of response variance on one token")
    ax.set_ylabel("hidden units (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if handles and own and (coverage or paper_score):
        fig.legend(handles=handles, loc="outside lower center", handlelength=2.6)
    elif handles:
        ax.legend(handles=handles, loc="upper center", handlelength=2.6)
    if title is not None:
        ax.set_title(title, wrap=True)
    return fig
