"""Heatmaps of class-mean cosines: one optimum, several side by side (the loss family), and
given embeddings beside the optimum for the same counts (``ufm certify --plot``).

The colour scale is diverging (ColorBrewer ``RdBu_r``), white at the simplex value -1/(k-1)
(the cosine of every pair of class means in a simplex ETF: Papyan, Han & Donoho 2020), blue
below, red above, with limits from the data: centre -+ the largest distance of an off-diagonal
cosine from the centre (at least :data:`MIN_HALF_RANGE`, so float noise around a simplex stays
white), so that equal distances either side get equal depth of colour; the colour bar spans the
cosines that exist (within [-1, 1]) and marks the smallest, the centre and the largest. The
diagonal (a class with itself, cosine 1) is grey. Panels of one figure share one scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import (
    counts_of,
    figure_and_axes,
    figure_and_axes_list,
    label_text,
    size_order,
    square,
)
from ufm.plotting.style import COSINE_CMAP, TICK_PT, new_figure, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

#: Least distance of a colour limit from the centre: cosines within it of -1/(k-1) stay pale.
MIN_HALF_RANGE = 0.02
#: One tick per class up to this many classes; beyond, a few ticks on a size axis.
MAX_CLASS_TICKS = 20
#: Ticks on a size axis (k > MAX_CLASS_TICKS).
SIZE_AXIS_TICKS = 6
#: Values written in the cells up to this many classes.
MAX_CELL_VALUES = 12
#: Smallest font of a cell value, in points (smaller cells get no values).
MIN_CELL_PT = 4.5
#: Colour of the diagonal (a class with itself).
DIAGONAL_COLOUR = "0.82"


def simplex_cosine(k: int) -> float:
    """-1/(k-1): the cosine between any two of k class means at a simplex ETF (Papyan, Han &
    Donoho 2020)."""
    return -1.0 / (k - 1) if k >= 2 else 0.0


@dataclass(frozen=True)
class CosineScale:
    """A diverging colour scale: white at ``centre``, the colours' limits ``centre -+ half``; the
    data's extremes ``low`` and ``high`` (ticks of the colour bar); ``centre_text`` names the centre;
    ``bounds`` the values that can occur (the colour bar's extent)."""

    centre: float
    half: float
    low: float
    high: float
    centre_text: str
    bounds: tuple[float, float] = (-1.0, 1.0)

    @property
    def vmin(self) -> float:
        return self.centre - self.half

    @property
    def vmax(self) -> float:
        return self.centre + self.half

    def norm(self) -> Normalize:
        from matplotlib.colors import TwoSlopeNorm

        return TwoSlopeNorm(vcenter=self.centre, vmin=self.vmin, vmax=self.vmax)


def off_diagonal(C: np.ndarray) -> np.ndarray:
    """The finite off-diagonal entries of a square matrix."""
    values = C[~np.eye(C.shape[0], dtype=bool)]
    return values[np.isfinite(values)]


def cosine_scale(matrices: Sequence[np.ndarray]) -> CosineScale:
    """One scale for cosine matrices drawn together: centred on -1/(k-1) when they all have k
    classes (else on 0), reaching the off-diagonal cosine farthest from the centre (at least
    :data:`MIN_HALF_RANGE` away)."""
    ks = {C.shape[0] for C in matrices}
    if len(ks) == 1:
        k = ks.pop()
        centre = simplex_cosine(k)
        text = f"simplex -1/(k-1) = {centre:.3g}" if k >= 2 else "0"
    else:
        centre, text = 0.0, "0 (panels of different k)"
    values = np.concatenate([off_diagonal(C) for C in matrices]) if matrices else np.empty(0)
    low = float(values.min()) if values.size else centre
    high = float(values.max()) if values.size else centre
    half = max(centre - low, high - centre, MIN_HALF_RANGE)
    return CosineScale(centre, half, low, high, text)


def _masked_diagonal(C: np.ndarray) -> np.ma.MaskedArray:
    return np.ma.masked_array(C, mask=np.eye(C.shape[0], dtype=bool))


def _cell_font(ax: Axes, k: int) -> float | None:
    """The font size (points) of cell values for a k x k image in ``ax`` as laid out, None if too
    small: a value takes at most 80% of its cell's width."""
    if k > MAX_CELL_VALUES:
        return None
    fig = ax.figure
    position = ax.get_position()
    side_pt = 72.0 * min(position.width * fig.get_figwidth(), position.height * fig.get_figheight())
    ems = 2.6 if k <= 6 else 2.0  # "-0.33" and, from 7 classes, "-.33": their width in ems
    size = min(float(TICK_PT), 0.8 * side_pt / k / ems)
    return size if size >= MIN_CELL_PT else None


def _cell_values(ax: Axes, C: np.ndarray, scale: CosineScale) -> None:
    """Each off-diagonal cosine written in its cell (two decimals), white on dark cells."""
    k = C.shape[0]
    size = _cell_font(ax, k)
    if size is None:
        return
    from matplotlib import colormaps

    cmap, norm = colormaps[COSINE_CMAP], scale.norm()
    for i in range(k):
        for j in range(k):
            if i == j or not np.isfinite(C[i, j]):
                continue
            r, g, b, _ = cmap(norm(C[i, j]))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            text = f"{C[i, j]:.2f}".replace("-0.", "-.").replace("0.", ".") if k > 6 else f"{C[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color="white" if dark else "black")


def _write_values(fig: Figure, drawn: list[tuple]) -> None:
    """The cell values of each (axes, matrix, scale) drawn, sized to the cells once the figure is
    laid out (titles, ticks and colour bars in place)."""
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
    for ax, C, scale in drawn:
        _cell_values(ax, C, scale)


def _draw_cosines(ax: Axes, C: np.ndarray, scale: CosineScale):
    from matplotlib import colormaps

    cmap = colormaps[COSINE_CMAP].with_extremes(bad=DIAGONAL_COLOUR)
    return ax.imshow(_masked_diagonal(C), cmap=cmap, norm=scale.norm(), interpolation="nearest")


def _colour_bar(fig: Figure, im, axes, scale: CosineScale, label: str = "cosine of class means"):
    """The colour bar of a cosine scale over the values that can occur, its ticks at the data's
    smallest and largest value and at the centre, the centre named in the label."""
    bar = fig.colorbar(im, ax=axes, shrink=0.9, aspect=25)
    bar.set_label(f"{label}\nwhite: {scale.centre_text}")
    bar.ax.set_ylim(max(scale.vmin, scale.bounds[0]), min(scale.vmax, scale.bounds[1]))
    ticks = [scale.centre]
    for value in (scale.low, scale.high):  # the extremes, unless they would print over the centre's
        if abs(value - scale.centre) > 0.08 * scale.half:
            ticks.append(value)
    ticks.sort()
    bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
    return bar


def class_ticks(ax: Axes, sizes: np.ndarray | None, k: int) -> None:
    """Ticks of a k x k class heatmap whose classes are ordered by size (largest first):
    up to 20 classes, one tick per class, labelled with its size (with the class index when all
    sizes are equal); more, a size axis of a few ticks, each labelled with the size of the class
    there, the axis label saying so."""
    from matplotlib.ticker import MaxNLocator

    balanced = sizes is None or len(set(np.asarray(sizes).tolist())) == 1
    if k <= MAX_CLASS_TICKS:
        ticks = np.arange(k)
        labels = [str(t) if balanced else label_text(sizes[t]) for t in ticks]
        ax.set_xticks(ticks, labels, rotation=90 if (not balanced and k > 5) or k > 12 else 0)
        ax.set_yticks(ticks, labels)
        if balanced:
            what = "class" if sizes is None else f"class (all n_c = {label_text(sizes[0])})"
        else:
            what = "class size n_c (largest first)"
    else:
        locator = MaxNLocator(nbins=SIZE_AXIS_TICKS - 1, integer=True, min_n_ticks=3)
        ticks = np.array([t for t in locator.tick_values(0, k - 1) if 0 <= t <= k - 1], dtype=int)
        if balanced:
            labels = [str(t) for t in ticks]
            what = "class" if sizes is None else f"class (all n_c = {label_text(sizes[0])})"
        else:
            labels = [label_text(sizes[t]) for t in ticks]
            what = f"{k} classes by size; tick: n_c"
        ax.set_xticks(ticks, labels)
        ax.set_yticks(ticks, labels)
    ax.set_xlabel(what)
    ax.set_ylabel(what)


@styled
def class_cosine_heatmap(cosines: Any, counts: Any, ax: Axes | None = None,
                         title: str | None = None) -> Figure:
    """Heatmap of the k x k cosines between class means, classes ordered by size (largest first,
    stable for ties). Diverging ``RdBu_r`` white at the simplex value -1/(k-1), limits from the
    off-diagonal cosines (see the module); the diagonal grey; values in the cells up to 12 classes;
    one tick per class (its size) up to 20 classes, a size axis beyond.

    Neural collapse with balanced classes gives the simplex ETF, -1/(k-1) off the diagonal
    (Papyan, Han & Donoho 2020); under imbalance the minority block drifts towards +1 (minority
    collapse: Fang et al. 2021; for SupCon, Behnia & Thrampoulidis 2024).
    """
    C = square(cosines)
    k = C.shape[0]
    sizes = counts_of(counts, k)
    order = size_order(sizes)
    C = C[np.ix_(order, order)]
    fig, ax = figure_and_axes(ax, 0.85)
    scale = cosine_scale([C])
    im = _draw_cosines(ax, C, scale)
    class_ticks(ax, sizes[order], k)
    _colour_bar(fig, im, ax, scale)
    ax.set_title(title if title is not None else f"class-mean cosines, k = {k}")
    _write_values(fig, [(ax, C, scale)])
    return fig


def _fit_lines(text: str, ax: Axes) -> str:
    """``text`` with each line wrapped to the width of ``ax`` (a panel's title; 8 pt characters
    about 0.55 em wide)."""
    import textwrap

    from ufm.plotting.style import TITLE_PT

    width_in = ax.get_position().width * ax.figure.get_figwidth()
    chars = max(12, int(width_in * 72.0 / (0.55 * TITLE_PT)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def _grid(axes: Sequence[Axes] | None, n: int, max_columns: int = 4, aspect: float = 1.0):
    """(figure, n axes): the axes given, or a new grid of at most ``max_columns`` columns."""
    if axes is not None:
        return figure_and_axes_list(axes, n)
    ncols = min(max_columns, n)
    nrows = math.ceil(n / ncols)
    fig = new_figure(ncols, aspect, rows=nrows, extra_height=0.35 * nrows)
    grid = list(np.asarray(fig.subplots(nrows, ncols, squeeze=False), dtype=object).ravel())
    for extra in grid[n:]:
        fig.delaxes(extra)
    return fig, grid[:n]


@styled
def loss_family(panels: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None,
                title: str | None = None) -> Figure:
    """Side-by-side cosine heatmaps of the optimal geometry of several losses, one panel per dict
    {"name", "cosines" (m, m), "subtitle" (optional), "counts" (optional: ticks by class size)},
    a grid of at most 4 columns, one diverging scale shared by every panel (white at -1/(k-1),
    limits from all panels' off-diagonal cosines) with one colour bar. Collapse to a simplex ETF:
    Papyan, Han & Donoho 2020; SupCon: Behnia & Thrampoulidis 2024.
    """
    panels = list(panels)
    if not panels:
        raise ValueError("loss_family: no panels to draw")
    matrices = [square(p["cosines"], f"cosines of {p.get('name', '?')}") for p in panels]
    fig, used = _grid(axes, len(panels))
    scale = cosine_scale(matrices)
    im = None
    for ax, p, C in zip(used, panels, matrices, strict=True):
        im = _draw_cosines(ax, C, scale)
        sub = p.get("subtitle")
        ax.set_title(_fit_lines(f"{p.get('name', '')}\n{sub}" if sub else str(p.get("name", "")), ax))
        sizes = None if p.get("counts") is None else counts_of(p["counts"], C.shape[0])
        class_ticks(ax, sizes, C.shape[0])
    _colour_bar(fig, im, used, scale)
    if title is not None:
        fig.suptitle(title)
    _write_values(fig, [(ax, C, scale) for ax, C in zip(used, matrices, strict=True)])
    return fig


@styled
def cosines_against_optimum(cosines: Any, optimum: Any, counts: Any, axes: Sequence[Axes] | None = None,
                            title: str | None = None, labels: Sequence[str] = ("embeddings", "optimum"),
                            ) -> Figure:
    """Given embeddings against the optimum for the same counts (``ufm certify --plot``): the class-
    mean cosines of each on one diverging scale (white at -1/(k-1), limits from both), and their
    difference (embeddings - optimum) on its own scale, white at 0; classes ordered by size, each
    panel with its colour bar. The difference panel's title gives the largest absolute difference."""
    C, B = square(cosines), square(optimum, "optimum")
    if C.shape != B.shape:
        raise ValueError(f"optimum: expected shape {C.shape} (the embeddings' classes), got {B.shape}")
    k = C.shape[0]
    sizes = counts_of(counts, k)
    order = size_order(sizes)
    C, B = C[np.ix_(order, order)], B[np.ix_(order, order)]
    fig, (a, b, c) = figure_and_axes_list(axes, 3, 1.0, extra_height=0.4)
    scale = cosine_scale([C, B])
    D = C - B
    biggest = float(np.max(np.abs(off_diagonal(D)))) if k >= 2 else 0.0
    difference = CosineScale(0.0, max(biggest, 1e-12), -biggest, biggest, "0 (no difference)", (-2.0, 2.0))
    panels = ((a, C, scale, labels[0], "cosine of class means"),
              (b, B, scale, labels[1], "cosine of class means"),
              (c, D, difference, f"{labels[0]} - {labels[1]}\nmax |diff| {biggest:.2g}",
               "difference of cosines"))
    for ax, M, s, text, what in panels:
        im = _draw_cosines(ax, M, s)
        _colour_bar(fig, im, ax, s, label=what)
        class_ticks(ax, sizes[order], k)
        ax.set_title(text)
    if title is not None:
        fig.suptitle(title)
    _write_values(fig, [(ax, M, s) for ax, M, s, _, _ in panels])
    return fig
