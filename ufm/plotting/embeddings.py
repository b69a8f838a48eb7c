"""Embeddings on the sphere: a PCA scatter of samples and class means."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import MAX_LEGEND_CLASSES, class_colours, figure_and_axes, label_text
from ufm.plotting.style import SEQUENTIAL_CMAP, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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


def _scatter_with_legend(ax: Axes, P: np.ndarray, means: np.ndarray, yi: np.ndarray, sizes: np.ndarray,
                         classes: list, dim: int) -> None:
    """Samples and class means in one colour per class, with a legend "class c (n = size)"."""
    colours = class_colours(sizes)
    for c in range(len(classes)):
        ax.scatter(*_coords(P[yi == c], dim), color=colours[c], s=12 if dim == 2 else 18,
                   alpha=0.35 if dim == 2 else 0.6, linewidths=0)
    for c in range(len(classes)):
        ax.scatter(*_coords(means[c : c + 1], dim), color=colours[c], s=110, edgecolors="black",
                   linewidths=0.9, zorder=3, label=f"class {label_text(classes[c])} (n = {sizes[c]})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


@styled
def embedding_scatter(embeddings: Any, labels: Sequence[Hashable] | np.ndarray, ax: Axes | None = None,
                      dim: int = 2, title: str | None = None) -> Figure:
    """Samples (small, translucent) and class means (large, black edge) of (n, d) unit embeddings,
    projected on the top ``dim`` right singular vectors of H (uncentred: the origin matters on
    the sphere). ``dim=2``: the plane with the unit circle; ``dim=3``: a 3D axes with the unit
    sphere, points and means re-normalised onto it. The title says the share of ||H||_F^2 the
    projection keeps. Up to 12 classes get a legend "class c (n = size)"; more are coloured by
    class size with a colorbar. Collapsed classes at a simplex ETF: Papyan, Han & Donoho 2020;
    SupCon geometry under imbalance: Behnia & Thrampoulidis 2024.
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

    fig, ax = figure_and_axes(ax, 0.75 if dim == 2 else 0.85, "3d" if dim == 3 else None)
    _unit_sphere_frame(ax, dim)
    if k > MAX_LEGEND_CLASSES:
        _scatter_by_size(fig, ax, P, means, yi, sizes, dim)
    else:
        _scatter_with_legend(ax, P, means, yi, sizes, classes, dim)

    pca = f"PCA: {100 * kept:.1f}% of ||H||_F^2"
    ax.set_title(f"{title}\n{pca}" if title else f"embeddings, {pca}")
    return fig

