"""Class-mean cosines against class size (long tails) and against R and tau (STEP imbalance).

STEP figures draw three kinds of class pair (majority-majority, minority-minority,
majority-minority), each with a colour, a marker and a line style of its own, markers a little
smaller for each later kind so that coincident kinds stay visible (at R = 1 all three are the
simplex value). A panel of several groups (values of tau, or of R) tells them apart by
- line style and marker, up to ``len(LINESTYLES)`` groups (the kind keeps its colour);
- shades of each kind's colour, up to :data:`~ufm.plotting.style.MAX_SHADES` groups, spread in
  lightness so that neighbours differ clearly (light for the smallest value);
- beyond, colour by the group's value with a colour bar (``cividis`` without its palest end,
  log-scaled when the values span more than 20x), the kinds by line style and marker.
Legends list only what is drawn (no minority-minority entry when there is one minority class).
"""

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
    square,
)
from ufm.plotting.style import MAX_SHADES, PALETTE, SEQUENTIAL_CMAP, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap, Normalize
    from matplotlib.figure import Figure


_KIND_LABELS = ("majority-majority", "minority-minority", "majority-minority")
_KIND_KEYS = ("cos_major", "cos_minor", "cos_between")
_KIND_COLOURS = (PALETTE[4], PALETTE[5], PALETTE[2])  # blue, vermillion, bluish green
_KIND_MARKERS = ("o", "s", "^")
_KIND_LINESTYLES = ("-", "--", ":")
#: Marker size and line width (points) of each kind: smaller for later kinds, so that an earlier
#: kind shows around a later one where they coincide (at R = 1 all three are -1/(k-1)).
_KIND_SIZES = (4.5, 3.4, 2.4)
_KIND_WIDTHS = (1.6, 1.2, 0.9)
#: The part of the sequential colormap used for values (its palest end is hard to see on white).
CMAP_RANGE = (0.0, 0.85)
#: Lightness range of the shades of one colour: blended towards white (negative) or black.
SHADE_RANGE = (-0.7, 0.4)
#: Beyond this many classes the class-size plot draws smaller markers.
MANY_CLASSES = 100
#: Values spanning more than this ratio get a log colour scale (and log x: 20 or more).
LOG_RATIO = 20.0


def shades(colour: str, n: int) -> list[tuple[float, float, float]]:
    """n shades of ``colour`` from light to dark: blended towards white, then towards black, in
    evenly spaced steps over :data:`SHADE_RANGE` (CIE L* steps of about 10 for the palette's
    colours at n = 6)."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(colour))
    out = []
    for t in np.linspace(*SHADE_RANGE, n) if n > 1 else [0.0]:
        c = rgb + (-t) * (1.0 - rgb) if t < 0 else rgb * (1.0 - t)
        out.append(tuple(float(v) for v in c))
    return out


def lightness(colour: Any) -> float:
    """CIE L* (0 black, 100 white) of an sRGB colour."""
    from matplotlib.colors import to_rgb

    c = np.array(to_rgb(colour))
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = float(linear @ np.array([0.2126, 0.7152, 0.0722]))
    return 116.0 * y ** (1.0 / 3.0) - 16.0 if y > 0.008856 else 903.3 * y


def group_mode(n: int) -> str:
    """How n groups of one panel are told apart: ``"styles"`` (line style and marker),
    ``"shades"`` (shades of each kind's colour) or ``"colourbar"`` (colour by value)."""
    if n <= len(LINESTYLES):
        return "styles"
    return "shades" if n <= MAX_SHADES else "colourbar"


def value_colours(values: Sequence[float]) -> tuple[Colormap, Normalize]:
    """(colormap, norm) colouring ``values``: ``cividis`` over :data:`CMAP_RANGE`, limits the
    values' min and max, log-normalised when they are positive and span more than 20x."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm, Normalize

    v = np.asarray(values, dtype=float)
    cmap = ListedColormap(colormaps[SEQUENTIAL_CMAP](np.linspace(*CMAP_RANGE, 256)), name="cividis_dark")
    lo, hi = float(v.min()), float(v.max())
    norm = LogNorm(lo, hi) if log_span(v, LOG_RATIO, strict=True) else Normalize(lo, hi)
    return cmap, norm


def _kind_handle(j: int, mode: str):
    """The legend handle of kind j as ``mode`` draws it: its colour (line styles per group), its
    colour, line style and marker (shades), or its line style and marker in grey (colour bar)."""
    from matplotlib.lines import Line2D

    if mode == "styles":
        return Line2D([], [], color=_KIND_COLOURS[j], linewidth=_KIND_WIDTHS[j], label=_KIND_LABELS[j])
    return Line2D([], [], color=_KIND_COLOURS[j] if mode == "shades" else "0.3", linewidth=_KIND_WIDTHS[j],
                  linestyle=_KIND_LINESTYLES[j], marker=_KIND_MARKERS[j], markersize=_KIND_SIZES[j],
                  label=_KIND_LABELS[j])


@styled
def cosines_vs_class_size(cosines: Any, counts: Any, ax: Axes | None = None,
                          title: str | None = None) -> Figure:
    """Minority collapse for long-tailed counts: for each class, the mean (filled circle) and the
    largest (hollow triangle, visible over the circle when k = 2 makes them equal) cosine of its
    class mean to the other classes' means, against its size (log x when sizes span more than
    10x), with the simplex ETF value -1/(k-1) dashed. Small classes drifting towards +1 is
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
    few = k <= MANY_CLASSES
    ax.plot(sizes, others.mean(axis=1), linestyle="none", marker="o", markersize=4.0 if few else 3.0,
            color=PALETTE[4], alpha=0.85, markeredgewidth=0, label="mean cosine to the other classes")
    ax.plot(sizes, others.max(axis=1), linestyle="none", marker="^", markersize=5.0 if few else 3.5,
            color=PALETTE[5], markerfacecolor="none", markeredgewidth=0.9 if few else 0.6,
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
    majority classes, among minority classes and between the two, each kind with its colour,
    marker and line style. None/NaN values are skipped and a kind with none left is neither drawn
    nor in the legend (minority-minority with one minority class). log x by default when
    max(x)/min(x) >= 20 and min(x) > 0. Minority cosines rising to +1 with R is minority collapse
    (Fang et al. 2021; SupCon: Behnia & Thrampoulidis 2024).
    """
    xs = as_float_array(x, "x")
    series = [as_float_array(v, name) for v, name in zip((cos_major, cos_minor, cos_between), _KIND_KEYS,
                                                            strict=True)]
    for v, name in zip(series, _KIND_KEYS, strict=True):
        if v.size != xs.size:
            raise ValueError(f"{name}: expected {xs.size} values (one per x), got {v.size}")
    fig, ax = figure_and_axes(ax, 0.75)
    order = np.argsort(xs, kind="stable")
    for j, v in enumerate(series):
        keep = order[np.isfinite(xs[order]) & np.isfinite(v[order])]
        if keep.size:
            ax.plot(xs[keep], v[keep], color=_KIND_COLOURS[j], marker=_KIND_MARKERS[j],
                    markersize=_KIND_SIZES[j], linewidth=_KIND_WIDTHS[j], linestyle=_KIND_LINESTYLES[j],
                    label=_KIND_LABELS[j])
    if log_x is None:
        log_x = log_span(xs, LOG_RATIO, strict=False)
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
                   gname: str, glabel: str, kinds_legend: bool = True) -> set[int]:
    """One panel of STEP results against ``xkey``, one group of three kinds per value of ``gkey``,
    told apart as :func:`group_mode` says; beside the panel a legend of the groups drawn (with the
    kinds drawn when ``kinds_legend``) or a colour bar (the kinds in a legend inside). Returns the
    kinds drawn (indices into the kind labels)."""
    from matplotlib.lines import Line2D

    groups = sorted({float(r[gkey]) for r in rows})
    mode = group_mode(len(groups))
    cmap = norm = None
    if mode == "colourbar":
        cmap, norm = value_colours(groups)
    xs_all = np.array([float(r[xkey]) for r in rows])
    drawn_kinds: set[int] = set()
    drawn_groups: list[int] = []
    for gi, g in enumerate(groups):
        sub = sorted((r for r in rows if float(r[gkey]) == g), key=lambda r: float(r[xkey]))
        xs = np.array([float(r[xkey]) for r in sub])
        drew = False
        for j, key in enumerate(_KIND_KEYS):
            v = as_float_array([r.get(key) for r in sub], key)
            keep = np.isfinite(xs) & np.isfinite(v)
            if not keep.any():
                continue
            if mode == "styles":
                style = {"color": _KIND_COLOURS[j], "linestyle": LINESTYLES[gi % len(LINESTYLES)],
                         "marker": MARKERS[gi % len(MARKERS)]}
            elif mode == "shades":
                style = {"color": shades(_KIND_COLOURS[j], len(groups))[gi], "linestyle": _KIND_LINESTYLES[j],
                         "marker": _KIND_MARKERS[j]}
            else:
                style = {"color": cmap(norm(g)), "linestyle": _KIND_LINESTYLES[j], "marker": _KIND_MARKERS[j]}
            ax.plot(xs[keep], v[keep], markersize=_KIND_SIZES[j], linewidth=_KIND_WIDTHS[j],
                    label=f"{_KIND_LABELS[j]}, {gname} = {fmt(g)}", gid=key, **style)
            drawn_kinds.add(j)
            drew = True
        if drew:
            drawn_groups.append(gi)
    if log_span(xs_all, LOG_RATIO, strict=False):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean cosine of class means")
    kinds = [_kind_handle(j, mode) for j in sorted(drawn_kinds)] if kinds_legend else []
    if mode == "colourbar":
        from matplotlib.cm import ScalarMappable

        bar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, aspect=25, pad=0.02)
        bar.set_label(glabel)
        if len(groups) <= 10:
            bar.set_ticks(groups, labels=[fmt(g) for g in groups])
            bar.ax.minorticks_off()
        ax.set_title(f"colour: {gname}; line, marker: class pair")
        if kinds:
            ax.legend(handles=kinds, loc="best")
        return drawn_kinds
    if mode == "styles":
        handles = [Line2D([], [], color="0.3", linestyle=LINESTYLES[gi % len(LINESTYLES)],
                          marker=MARKERS[gi % len(MARKERS)], markersize=4,
                          label=f"{gname} = {fmt(groups[gi])}") for gi in drawn_groups]
        ax.set_title(f"colour: class pair; line, marker: {gname}")
    else:
        grey = shades("#404040", len(groups))
        handles = [Line2D([], [], color=grey[gi], linewidth=2.5, label=f"{gname} = {fmt(groups[gi])}")
                   for gi in drawn_groups]
        ax.set_title(f"colour: class pair; shade: {gname} (dark: largest)")
    if kinds or handles:
        ax.legend(handles=kinds + handles, loc="center left", bbox_to_anchor=(1.01, 0.5), handlelength=2.4)
    return drawn_kinds


@styled
def step_panels(rows: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels of STEP-imbalance results: the three mean class-mean cosines (majority-majority,
    minority-minority, majority-minority) against the ratio R, one group per tau, and against tau,
    one group per R (groups by line style, shade or colour bar: see the module). ``rows``: dicts
    with keys "ratio", "tau", "cos_major", "cos_minor", "cos_between" (None allowed for the
    cosines). The class pairs drawn are named in one legend below the panels when both panels
    draw them alike in a figure made here, else in each panel's legend. Minority collapse under
    imbalance: Fang et al. 2021; for SupCon, Behnia & Thrampoulidis 2024.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("step_panels: no rows to draw")
    for i, r in enumerate(rows):
        missing = [key for key in ("ratio", "tau") if r.get(key) is None]
        if missing:
            raise ValueError(f"step_panels: row {i} has no {', '.join(missing)}")
    modes = {group_mode(len({float(r[key]) for r in rows})) for key in ("tau", "ratio")}
    shared = axes is None and len(modes) == 1
    fig, (a, b) = figure_and_axes_list(axes, 2, 0.8, extra_height=0.2 if shared else 0.0)
    kinds = _grouped_panel(a, rows, "ratio", "tau", "imbalance ratio R", "tau", "temperature tau", not shared)
    kinds |= _grouped_panel(b, rows, "tau", "ratio", "temperature tau", "R", "imbalance ratio R", not shared)
    if shared and kinds:
        mode = next(iter(modes))
        fig.legend(handles=[_kind_handle(j, mode) for j in sorted(kinds)], loc="outside lower center",
                   ncols=len(kinds))
    return fig
