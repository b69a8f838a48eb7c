"""Helpers shared by the figure modules of :mod:`ufm.plotting` (not public)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting.style import LINE_COLOURS, PALETTE, SEQUENTIAL_CMAP, new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

GAP_FLOOR = 1e-16
MAX_LEGEND_CLASSES = 12
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def figure_and_axes(ax: Axes | None, aspect: float = 0.8, projection: str | None = None):
    """(figure, axes): ``ax`` and its figure, or a new one-panel figure."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(1, aspect)
    return fig, fig.add_subplot(projection=projection)


def figure_and_axes_list(axes: Sequence[Axes] | None, n: int, aspect: float = 0.8, extra_height: float = 0.0):
    """(figure, n axes in a row): the ``axes`` given, or a new figure of n panels."""
    if axes is None:
        fig = new_figure(n, aspect, extra_height=extra_height)
        return fig, list(np.atleast_1d(fig.subplots(1, n)).ravel())
    axes = list(np.asarray(axes, dtype=object).ravel())
    if len(axes) != n:
        raise ValueError(f"axes: expected a sequence of {n} Axes, got {len(axes)}")
    return axes[0].figure, axes


def line_colour(i: int) -> str:
    """The i-th line colour (Okabe-Ito, yellow last)."""
    return LINE_COLOURS[i % len(LINE_COLOURS)]


def legend_if_labelled(ax: Axes, **kwargs: Any) -> None:
    """A legend of the artists drawn with a label (none when nothing is labelled)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kwargs)


def as_float_array(values: Any, name: str) -> np.ndarray:
    """1-D float array; None entries become NaN."""
    seq = list(values) if not isinstance(values, np.ndarray) else values.ravel().tolist()
    return np.array([np.nan if v is None else float(v) for v in seq], dtype=float).reshape(-1)


def square(cosines: Any, name: str = "cosines") -> np.ndarray:
    C = np.asarray(cosines, dtype=float)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"{name}: expected a square (k, k) array, got shape {C.shape}")
    return C


def counts_of(counts: Any, k: int) -> np.ndarray:
    n = np.asarray(counts).reshape(-1)
    if n.size != k:
        raise ValueError(f"counts: expected {k} class sizes (one per row of cosines), got {n.size}")
    return n


def size_order(counts: np.ndarray) -> np.ndarray:
    """Classes by size, largest first; ties keep their original order."""
    return np.argsort(-np.asarray(counts, dtype=float), kind="stable")


def class_colours(sizes: np.ndarray) -> list:
    """Okabe-Ito colours for up to 8 classes; beyond, a sequential colormap by class-size rank
    (largest class darkest)."""
    k = len(sizes)
    if k <= len(PALETTE):
        return [PALETTE[i] for i in range(k)]
    from matplotlib import colormaps

    cmap = colormaps[SEQUENTIAL_CMAP]
    rank = np.empty(k, dtype=int)
    rank[size_order(sizes)] = np.arange(k)
    return [cmap(0.9 * r / (k - 1)) for r in rank]


def label_text(c: Hashable) -> str:
    return str(c.item()) if isinstance(c, np.generic) else str(c)


def log_span(x: np.ndarray, ratio: float, strict: bool) -> bool:
    x = x[np.isfinite(x)]
    if x.size == 0 or x.min() <= 0:
        return False
    r = x.max() / x.min()
    return bool(r > ratio) if strict else bool(r >= ratio)


def fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float | np.number) else str(v)


def legend_columns(texts: Sequence[str], width_in: float, pad_in: float = 0.36) -> int:
    """As many legend columns as fit ``width_in`` inches: 7 pt text, about 0.6 em a character, and
    ``pad_in`` inches for the handle and the spacing of an entry."""
    from ufm.plotting.style import TICK_PT

    widest = max(len(t) for t in texts) * 0.6 * TICK_PT / 72.0 + pad_in
    return max(1, min(len(texts), int(width_in // widest)))
