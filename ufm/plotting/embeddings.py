"""Embeddings on the sphere: a PCA scatter of samples and class means."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import MAX_LEGEND_CLASSES, class_colours, label_text, legend_columns
from ufm.plotting.style import LINE_COLOURS, SEQUENTIAL_CMAP, figure_width, new_figure, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Marker area (points^2) of a class mean.
MEAN_MARKER_SIZE = 55
#: The gap between a given Axes and the legend below it, in points: the x tick labels and the
#: x label of a 2D plot; the overhang of a 3D box's labels.
BELOW_2D_PT, BELOW_3D_PT = 28.0, 6.0
#: Height of a legend row and of a title line, in inches: a new figure grows by them.
_LEGEND_ROW_IN = 0.15
_TITLE_LINE_IN = 0.14


def _scatter_inputs(embeddings: Any, labels: Sequence[Hashable] | np.ndarray, ax: Axes | None,
                    dim: int) -> tuple[np.ndarray, list]:
    """The checks of :func:`embedding_scatter`: (n, d) float embeddings and their n labels."""
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    H = np.asarray(embeddings, dtype=float)
    if H.ndim != 2:
        raise ValueError(f"embeddings: expected an (n, d) array, got shape {H.shape}")
    y = list(np.asarray(labels, dtype=object).reshape(-1)) if not isinstance(labels, list) else list(labels)
    if len(y) != H.shape[0]:
        raise ValueError(f"labels: expected {H.shape[0]} labels (one per row of embeddings), got {len(y)}")
    if dim == 3 and ax is not None and getattr(ax, "name", None) != "3d":
        raise ValueError("embedding_scatter(dim=3) needs a 3D axes: create it with "
                         "fig.add_subplot(projection='3d'), or pass ax=None")
    return H, y


def _uncentred_pca(H: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """PCA of the uncentred rows: their coordinates (n, dim) on the top right singular vectors of
    H (zero where H has fewer), those vectors (rows), and the share of ||H||_F^2 they keep."""
    n = H.shape[0]
    _, s, vt = np.linalg.svd(H, full_matrices=False)
    m = min(dim, vt.shape[0])
    P = np.zeros((n, dim))
    P[:, :m] = H @ vt[:m].T
    total = float(np.sum(s**2))
    kept = float(np.sum(s[:m] ** 2)) / total if total > 0 else 1.0
    return P, vt[:m], kept


def _class_index(y: list) -> tuple[list, np.ndarray]:
    """The classes, sorted (in order of first appearance for mixed label types), and the index of
    each label's class."""
    classes = list(dict.fromkeys(y))
    try:
        classes = sorted(classes)
    except TypeError:
        pass  # mixed label types: first appearance
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[c] for c in y], dtype=int)


def _unit_sphere_frame(ax: Axes, dim: int) -> None:
    """The unit circle (``dim=2``, equal aspect) or a wireframe unit sphere (``dim=3``), with the
    principal components' axis labels and ticks."""
    if dim == 2:
        t = np.linspace(0.0, 2.0 * np.pi, 361)
        ax.plot(np.cos(t), np.sin(t), color="0.6", linewidth=0.8, zorder=0)
        ax.set_aspect("equal")
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
        ax.set_xticks([-1.0, -0.5, 0.0, 0.5, 1.0])
        ax.set_yticks([-1.0, -0.5, 0.0, 0.5, 1.0])
    else:
        u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v),
                          color="0.75", linewidth=0.3, alpha=0.5)
        ax.set_box_aspect((1, 1, 1))
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_ticks([-1.0, 0.0, 1.0])
        ax.set_zlabel("PC 3")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")


def _coords(A: np.ndarray, dim: int) -> tuple:
    """The columns of points A as scatter's positional coordinates (x, y) or (x, y, z)."""
    return (A[:, 0], A[:, 1]) if dim == 2 else (A[:, 0], A[:, 1], A[:, 2])


def _scatter_by_size(fig: Figure, ax: Axes, P: np.ndarray, means: np.ndarray, yi: np.ndarray,
                     sizes: np.ndarray, dim: int) -> None:
    """Samples and class means coloured by class size (log scale where sizes span more than 10x),
    with a colorbar: for more classes than a legend can name."""
    from matplotlib.colors import LogNorm, Normalize

    lo, hi = float(sizes.min()), float(sizes.max())
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    norm = LogNorm(lo, hi) if lo > 0 and hi / lo > 10 else Normalize(lo, hi)
    ax.scatter(*_coords(P, dim), c=sizes[yi], cmap=SEQUENTIAL_CMAP, norm=norm, s=10, alpha=0.35,
               linewidths=0)
    sc = ax.scatter(*_coords(means, dim), c=sizes, cmap=SEQUENTIAL_CMAP, norm=norm, s=90, edgecolors="black",
                    linewidths=0.8, zorder=3)
    fig.colorbar(sc, ax=ax, label="class size", shrink=0.8)


def legend_colours(sizes: np.ndarray) -> list:
    """Colours of classes named in a legend: up to 8, the Okabe-Ito line colours (the yellow,
    hard to see on white, last); more, :func:`ufm.plotting._common.class_colours`."""
    k = len(sizes)
    return list(LINE_COLOURS[:k]) if k <= len(LINE_COLOURS) else class_colours(sizes)


def class_legend_text(c: Hashable, size: int) -> str:
    """A class's legend entry: ``class c (n = size)``."""
    return f"class {label_text(c)} (n = {int(size)})"


def _scatter_with_legend(ax: Axes, P: np.ndarray, means: np.ndarray, yi: np.ndarray, sizes: np.ndarray,
                         classes: list, dim: int) -> tuple[list, list[str]]:
    """Samples and class means in one colour per class; returns the class means' artists and
    their legend texts "class c (n = size)"."""
    colours = legend_colours(sizes)
    flat = {"depthshade": False} if dim == 3 else {}
    for c in range(len(classes)):
        ax.scatter(*_coords(P[yi == c], dim), color=colours[c], s=10, alpha=0.35 if dim == 2 else 0.5,
                   linewidths=0, **flat)
    handles, texts = [], []
    for c in range(len(classes)):
        text = class_legend_text(classes[c], sizes[c])
        handles.append(ax.scatter(*_coords(means[c : c + 1], dim), color=colours[c], s=MEAN_MARKER_SIZE,
                                  edgecolors="black", linewidths=0.7, zorder=3, label=text, **flat))
        texts.append(text)
    return handles, texts


def _legend_below(ax: Axes, handles: list, texts: list[str], dim: int) -> None:
    """The class legend of ``ax`` just below its x label, in as many columns as fit the width of
    its grid cell (the layout makes room for it)."""
    from matplotlib.transforms import offset_copy

    fig = ax.figure
    spec = ax.get_subplotspec()
    width_in = (fig.get_figwidth() * len(spec.colspan) / spec.get_gridspec().ncols if spec is not None
                else ax.get_position().width * fig.get_figwidth()) - 0.15
    below = offset_copy(ax.transAxes, fig=fig, y=-(BELOW_2D_PT if dim == 2 else BELOW_3D_PT), units="points")
    ax.legend(handles, texts, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below,
              ncols=legend_columns(texts, width_in), borderaxespad=0.0, columnspacing=1.0, handletextpad=0.3,
              markerscale=0.8)


def _style_3d(ax: Axes) -> None:
    """A legible 3D frame at column width: light panes and grid, ticks and labels close in, the
    class means drawn over the samples."""
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_pane_color((0.97, 0.97, 0.97, 1.0))
        axis._axinfo["grid"].update(color="0.88", linewidth=0.4)
        axis.labelpad = -5
        axis.set_tick_params(pad=-3)
    ax.view_init(elev=20, azim=-60)
    ax.computed_zorder = False  # zorder, not depth: class means stay on top of their samples


@styled
def embedding_scatter(embeddings: Any, labels: Sequence[Hashable] | np.ndarray, ax: Axes | None = None,
                      dim: int = 2, title: str | None = None) -> Figure:
    """Samples (small, translucent) and class means (large, black edge) of (n, d) unit embeddings,
    projected on the top ``dim`` right singular vectors of H (uncentred: the origin matters on
    the sphere). ``dim=2``: the plane with the unit circle; ``dim=3``: a 3D axes with the unit
    sphere, points and means re-normalised onto it. The title says the share of ||H||_F^2 the
    projection keeps. Up to 12 classes get a legend below the plot, one entry "class c (n = size)"
    per class mean drawn, in as many columns as fit (a new figure grows by its rows, the plot
    keeps its size); more are coloured by class size with a colorbar. Collapsed classes at a
    simplex ETF: Papyan, Han & Donoho 2020; SupCon geometry under imbalance: Behnia &
    Thrampoulidis 2024.
    """
    H, y = _scatter_inputs(embeddings, labels, ax, dim)
    P, basis, kept = _uncentred_pca(H, dim)
    classes, yi = _class_index(y)
    k = len(classes)
    sizes = np.bincount(yi, minlength=k)
    means = np.zeros((k, dim))
    for c in range(k):
        means[c, : basis.shape[0]] = H[yi == c].mean(axis=0) @ basis.T

    if dim == 3:  # points and means re-normalised onto the sphere
        for A in (P, means):
            r = np.linalg.norm(A, axis=1)
            ok = r > 1e-12
            A[ok] /= r[ok, None]

    pca = f"PCA: {dim} components keep {100 * kept:.1f}% of ||H||_F^2"
    full_title = f"{title}\n{pca}" if title else f"embeddings, {pca}"
    legend = k <= MAX_LEGEND_CLASSES
    if ax is None:
        texts = [class_legend_text(c, n) for c, n in zip(classes, sizes, strict=True)]
        rows = -(-k // legend_columns(texts, figure_width(1) - 0.1)) if legend else 0
        fig = new_figure(1, 0.82 if dim == 2 else 0.9,
                         extra_height=rows * _LEGEND_ROW_IN + full_title.count("\n") * _TITLE_LINE_IN)
        ax = fig.add_subplot(projection="3d" if dim == 3 else None)
    else:
        fig = ax.figure
    _unit_sphere_frame(ax, dim)
    if dim == 3:
        _style_3d(ax)
    if legend:
        handles, texts = _scatter_with_legend(ax, P, means, yi, sizes, classes, dim)
        _legend_below(ax, handles, texts, dim)
    else:
        _scatter_by_size(fig, ax, P, means, yi, sizes, dim)
    ax.set_title(full_title)
    return fig
