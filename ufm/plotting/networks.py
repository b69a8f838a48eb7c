"""Networks in place of free embeddings (Tian 2023): one-layer censuses, two-layer specialisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import figure_and_axes, figure_and_axes_list
from ufm.plotting.style import PALETTE, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@styled
def network_census(results: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None,
                   title: str | None = None) -> Figure:
    """One unit between the data and the embedding (Tian 2023): (a) distinct end points of the random
    starts against the activation: certified local optima, end points not certified (not optimal or
    unresolved), dead units; (b) the cosine of
    each optimum with its best-aligned pattern, per activation. ``results``: the ``to_dict()`` of
    ``solvers.networks.one_layer.OneLayerResult`` for each activation."""
    results = list(results)
    if not results:
        raise ValueError("network_census: no results to draw")
    fig, (a, b) = figure_and_axes_list(axes, 2, 0.8)
    names = [r["activation"] for r in results]
    xs = np.arange(len(results))
    optima = np.array([r["distinct_optima"] for r in results])
    ends = np.array([r.get("distinct_end_points", r["distinct_optima"]) for r in results])
    a.bar(xs, optima, color=PALETTE[4], edgecolor="black", label="local optima (certified)")
    a.bar(xs, ends - optima, bottom=optima, color=PALETTE[1], edgecolor="black", hatch="..",
          label="end points, not certified")
    a.bar(xs, [r.get("dead_units", 0) for r in results], bottom=ends, color="white", edgecolor="0.4",
          hatch="//", label="dead units")
    from matplotlib.ticker import MaxNLocator

    a.set_xticks(xs, names)
    a.yaxis.set_major_locator(MaxNLocator(integer=True))
    tallest = max(float(np.max(ends + np.array([r.get("dead_units", 0) for r in results]))), 1.0)
    a.set_ylim(0, 1.45 * tallest)  # room for the legend above the bars
    a.set_ylabel("end points")
    a.set_title("(a) distinct end points per activation")
    a.legend(loc="upper left", ncols=2)
    for i, r in enumerate(results):
        shown = [o for o in r["optima"] if o.get("alignment") is not None]
        cos = np.array([o["alignment"] for o in shown])
        certified = np.array([o.get("verdict") == "local_optimum" for o in shown], dtype=bool)
        jitter = np.linspace(-0.15, 0.15, len(cos)) if len(cos) > 1 else np.zeros(len(cos))
        colour = PALETTE[i % len(PALETTE)]
        b.scatter((i + jitter)[certified], cos[certified], color=colour, edgecolor="black", s=28, zorder=3)
        b.scatter((i + jitter)[~certified], cos[~certified], facecolor="white", edgecolor=colour, s=28,
                  zorder=3)
    b.set_xticks(xs, names)
    b.set_ylim(-0.05, 1.05)
    b.set_ylabel("cosine with the closest pattern")
    b.set_title("(b) alignment of each end point (hollow: not certified)")
    if title is not None:
        fig.suptitle(title)
    return fig


@styled
def specialisation_histogram(scores: Mapping[str, Any], ax: Axes | None = None,
                             title: str | None = None) -> Figure:
    """Per activation, the histogram of the hidden units' specialisation (the share of a unit's
    response variance carried by one pattern token; Tian 2023: ReLU units specialise, linear units
    do not)."""
    fig, ax = figure_and_axes(ax, 0.75)
    bins = np.linspace(0.0, 1.0, 21)
    for i, (name, s) in enumerate(scores.items()):
        s = np.asarray(s, dtype=float)
        ax.hist(s[np.isfinite(s)], bins=bins, histtype="step", linewidth=1.6, color=PALETTE[i % len(PALETTE)],
                label=f"{name} ({np.isfinite(s).sum()} units)")
    ax.set_xlabel("share of a unit's response variance on one pattern token")
    ax.set_ylabel("hidden units")
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return fig

