"""Class-mean cosines against class size (long tails) and against R and tau (STEP imbalance)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import (
    LINESTYLES,
    MARKERS,
    as_float_array,
    counts_of,
    figure_and_axes,
    figure_and_axes_list,
    fmt,
    log_span,
    shade,
    square,
)
from ufm.plotting.style import PALETTE, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


_KIND_LABELS = ("majority-majority", "minority-minority", "majority-minority")


_KIND_KEYS = ("cos_major", "cos_minor", "cos_between")


_KIND_COLOURS = (PALETTE[4], PALETTE[5], PALETTE[2])  # blue, vermillion, bluish green


@styled
def cosines_vs_class_size(cosines: Any, counts: Any, ax: Axes | None = None,
                          title: str | None = None) -> Figure:
    """Minority collapse for long-tailed counts: for each class, the mean and the largest cosine of
    its class mean to the other classes' means, against its size (log x when sizes span more
    than 10x), with the simplex ETF value -1/(k-1) dashed. Small classes drifting towards +1 is
    minority collapse (Fang et al. 2021; SupCon: Behnia & Thrampoulidis 2024); balanced neural
    collapse sits on the ETF line (Papyan, Han & Donoho 2020).
    """
    C = square(cosines)
    k = C.shape[0]
    if k < 2:
        raise ValueError("cosines_vs_class_size needs at least 2 classes")
    sizes = counts_of(counts, k).astype(float)
    off = ~np.eye(k, dtype=bool)
    others = C[off].reshape(k, k - 1)
    fig, ax = figure_and_axes(ax, 0.75)
    ax.plot(sizes, others.mean(axis=1), linestyle="none", marker="o", color=PALETTE[4], alpha=0.85,
            label="mean cosine to the other classes")
    ax.plot(sizes, others.max(axis=1), linestyle="none", marker="^", color=PALETTE[5], alpha=0.85,
            label="largest cosine to another class")
    etf = -1.0 / (k - 1)
    ax.axhline(etf, linestyle="--", color="0.35", linewidth=1.0, label=f"simplex ETF, -1/(k-1) = {etf:.3g}")
    if log_span(sizes, 10.0, strict=True):
        ax.set_xscale("log")
    ax.set_xlabel("class size n_c")
    ax.set_ylabel("cosine of class means")
    ax.legend(loc="best")
    ax.set_title(title if title is not None else f"class-mean cosines vs class size, k = {k}")
    return fig


@styled
def step_cosines(x: Any, cos_major: Any, cos_minor: Any, cos_between: Any, ax: Axes | None = None,
                 xlabel: str = "imbalance ratio R", log_x: bool | None = None,
                 title: str | None = None) -> Figure:
    """Mean class-mean cosines of a STEP-imbalanced problem against x (the ratio R or tau): among
    majority classes, among minority classes and between the two. None/NaN values are skipped
    (e.g. minority-minority with one minority class). log x by default when max(x)/min(x) >= 20
    and min(x) > 0. Minority cosines rising to +1 with R is minority collapse (Fang et al. 2021;
    SupCon: Behnia & Thrampoulidis 2024).
    """
    xs = as_float_array(x, "x")
    series = [as_float_array(v, name) for v, name in zip((cos_major, cos_minor, cos_between), _KIND_KEYS,
                                                            strict=True)]
    for v, name in zip(series, _KIND_KEYS, strict=True):
        if v.size != xs.size:
            raise ValueError(f"{name}: expected {xs.size} values (one per x), got {v.size}")
    fig, ax = figure_and_axes(ax, 0.75)
    order = np.argsort(xs, kind="stable")
    for v, label, colour, marker in zip(series, _KIND_LABELS, _KIND_COLOURS, MARKERS, strict=False):
        keep = order[np.isfinite(xs[order]) & np.isfinite(v[order])]
        if keep.size:
            ax.plot(xs[keep], v[keep], color=colour, marker=marker, markersize=4, label=label)
    if log_x is None:
        log_x = log_span(xs, 20.0, strict=False)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean cosine of class means")
    if ax.lines:
        ax.legend(loc="best")
    if title is not None:
        ax.set_title(title)
    return fig


def _grouped_panel(ax: Axes, rows: list[Mapping[str, Any]], xkey: str, gkey: str, xlabel: str,
                   gname: str) -> None:
    """Up to 4 groups: one line style (and marker) per group; more: one shade of each kind's
    colour per group, light for the smallest value, dark for the largest."""
    from matplotlib.lines import Line2D

    groups = sorted({r[gkey] for r in rows})
    shaded = len(groups) > len(LINESTYLES)
    xs_all = np.array([float(r[xkey]) for r in rows])
    for gi, g in enumerate(groups):
        level = gi / max(len(groups) - 1, 1)
        sub = sorted((r for r in rows if r[gkey] == g), key=lambda r: float(r[xkey]))
        xs = np.array([float(r[xkey]) for r in sub])
        for key, label, colour in zip(_KIND_KEYS, _KIND_LABELS, _KIND_COLOURS, strict=True):
            v = as_float_array([r.get(key) for r in sub], key)
            keep = np.isfinite(xs) & np.isfinite(v)
            if not keep.any():
                continue
            style = ({"color": shade(colour, level), "linestyle": "-", "marker": "o", "markersize": 2.5}
                     if shaded else {"color": colour, "linestyle": LINESTYLES[gi % len(LINESTYLES)],
                                     "marker": MARKERS[gi % len(MARKERS)], "markersize": 4})
            ax.plot(xs[keep], v[keep], label=label if len(groups) == 1 else None, **style)
    if log_span(xs_all, 20.0, strict=False):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean cosine of class means")
    if len(groups) == 1:
        ax.set_title(f"{gname} = {fmt(groups[0])}")
        if ax.lines:
            ax.legend(loc="best")
        return
    handles = [Line2D([], [], color=c, label=lab) for c, lab in zip(_KIND_COLOURS, _KIND_LABELS, strict=True)]
    if shaded:
        handles += [Line2D([], [], color=shade("#404040", i / (len(groups) - 1)), marker="o", markersize=3,
                           label=f"{gname} = {fmt(g)}") for i, g in enumerate(groups)]
    else:
        handles += [Line2D([], [], color="0.3", linestyle=LINESTYLES[i % len(LINESTYLES)],
                           marker=MARKERS[i % len(MARKERS)], markersize=4, label=f"{gname} = {fmt(g)}")
                    for i, g in enumerate(groups)]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"one {'shade' if shaded else 'line style'} per {gname}")


@styled
def step_panels(rows: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels of STEP-imbalance results: the three mean class-mean cosines (majority-majority,
    minority-minority, majority-minority; colour) against the ratio R (one line style per tau) and
    against tau (one line style per R). ``rows``: dicts with keys "ratio", "tau", "cos_major",
    "cos_minor", "cos_between" (None allowed for the cosines). Minority collapse under imbalance:
    Fang et al. 2021; for SupCon, Behnia & Thrampoulidis 2024.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("step_panels: no rows to draw")
    for i, r in enumerate(rows):
        missing = [key for key in ("ratio", "tau") if r.get(key) is None]
        if missing:
            raise ValueError(f"step_panels: row {i} has no {', '.join(missing)}")
    fig, (a, b) = figure_and_axes_list(axes, 2, 0.8)
    _grouped_panel(a, rows, "ratio", "tau", "imbalance ratio R", "tau")
    _grouped_panel(b, rows, "tau", "ratio", "temperature tau", "R")
    return fig

