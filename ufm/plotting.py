"""Publication figures of optimal geometries, imbalance sweeps and restart censuses.

Matplotlib's object-oriented API only: figures are ``matplotlib.figure.Figure`` objects (no pyplot,
no GUI backend, no global state), and matplotlib is imported inside the functions, so that
``import ufm.plotting`` stays fast. Every function draws into a given Axes (``ax``) or sequence of
Axes (``axes``) when one is passed, otherwise into a new figure, and returns the Figure. The
functions take plain arrays, lists and dicts (never solver objects); ``save_figure`` writes
``.png``, ``.pdf`` or ``.svg`` atomically.

Colours are colour-blind safe: categorical colours from the Okabe-Ito palette (``PALETTE``), a
sequential colormap ranked by class size for more than 8 classes, and the diverging ColorBrewer
map ``RdBu_r`` on [-1, 1] for cosines.

References: Papyan, Han & Donoho 2020, "Prevalence of neural collapse during the terminal phase
of deep learning training" (neural collapse, simplex ETF); Fang, He, Long & Su 2021, "Exploring
deep neural networks via layer-peeled model: minority collapse in imbalanced training" (minority
collapse); Behnia & Thrampoulidis 2024, "Supervised Contrastive Representation Learning:
Landscape Analysis with Unconstrained Features" (SupCon geometry and minority collapse under
label imbalance).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.files import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PALETTE",
    "class_cosine_heatmap",
    "embedding_scatter",
    "cosines_vs_class_size",
    "step_cosines",
    "step_panels",
    "restart_census",
    "optimisation_curves",
    "loss_family",
    "summary_lines",
    "network_census",
    "specialisation_histogram",
    "save_figure",
]

#: Okabe & Ito (2008) colour-blind-safe categorical palette: orange, sky blue, bluish green,
#: yellow, blue, vermillion, reddish purple, black.
PALETTE: list[str] = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]

#: Diverging colormap for cosines in [-1, 1] (ColorBrewer RdBu, reversed: red = aligned).
COSINE_CMAP = "RdBu_r"
#: Sequential colormap for many classes (colour by class size).
SEQUENTIAL_CMAP = "cividis"

_GAP_FLOOR = 1e-16
_MAX_LEGEND_CLASSES = 12
_MAX_TICK_LABELS = 30
_TICKS_SHOWN = 15
_KIND_LABELS = ("majority-majority", "minority-minority", "majority-minority")
_KIND_KEYS = ("cos_major", "cos_minor", "cos_between")
_KIND_COLOURS = (PALETTE[4], PALETTE[5], PALETTE[2])  # blue, vermillion, bluish green
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


# ----------------------------------------------------------------------------------------- helpers


def _new_figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float], projection: str | None = None):
    if ax is not None:
        return ax.figure, ax
    fig = _new_figure(figsize)
    return fig, fig.add_subplot(projection=projection)


def _figure_and_axes_list(axes: Sequence[Axes] | None, n: int, figsize: tuple[float, float]):
    if axes is None:
        fig = _new_figure(figsize)
        return fig, list(np.atleast_1d(fig.subplots(1, n)).ravel())
    axes = list(np.asarray(axes, dtype=object).ravel())
    if len(axes) != n:
        raise ValueError(f"axes: expected a sequence of {n} Axes, got {len(axes)}")
    return axes[0].figure, axes


def _as_float_array(values: Any, name: str) -> np.ndarray:
    """1-D float array; None entries become NaN."""
    seq = list(values) if not isinstance(values, np.ndarray) else values.ravel().tolist()
    return np.array([np.nan if v is None else float(v) for v in seq], dtype=float).reshape(-1)


def _square(cosines: Any, name: str = "cosines") -> np.ndarray:
    C = np.asarray(cosines, dtype=float)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"{name}: expected a square (k, k) array, got shape {C.shape}")
    return C


def _counts(counts: Any, k: int) -> np.ndarray:
    n = np.asarray(counts).reshape(-1)
    if n.size != k:
        raise ValueError(f"counts: expected {k} class sizes (one per row of cosines), got {n.size}")
    return n


def _size_order(counts: np.ndarray) -> np.ndarray:
    """Classes by size, largest first; ties keep their original order."""
    return np.argsort(-np.asarray(counts, dtype=float), kind="stable")


def _class_colours(sizes: np.ndarray) -> list:
    """Okabe-Ito colours for up to 8 classes; beyond, a sequential colormap by class-size rank
    (largest class darkest)."""
    k = len(sizes)
    if k <= len(PALETTE):
        return [PALETTE[i] for i in range(k)]
    from matplotlib import colormaps

    cmap = colormaps[SEQUENTIAL_CMAP]
    rank = np.empty(k, dtype=int)
    rank[_size_order(sizes)] = np.arange(k)
    return [cmap(0.9 * r / (k - 1)) for r in rank]


def _label_text(c: Hashable) -> str:
    return str(c.item()) if isinstance(c, np.generic) else str(c)


def _log_span(x: np.ndarray, ratio: float, strict: bool) -> bool:
    x = x[np.isfinite(x)]
    if x.size == 0 or x.min() <= 0:
        return False
    r = x.max() / x.min()
    return bool(r > ratio) if strict else bool(r >= ratio)


def _size_ticks(ax: Axes, sizes: np.ndarray) -> None:
    k = len(sizes)
    if k > _MAX_TICK_LABELS:
        ticks = np.unique(np.round(np.linspace(0, k - 1, _TICKS_SHOWN)).astype(int))
    else:
        ticks = np.arange(k)
    labels = [_label_text(sizes[t]) for t in ticks]
    ax.set_xticks(ticks, labels, rotation=90 if k > 10 else 0)
    ax.set_yticks(ticks, labels)


# ----------------------------------------------------------------------------------------- figures


def class_cosine_heatmap(cosines: Any, counts: Any, ax: Axes | None = None,
                         title: str | None = None) -> Figure:
    """Heatmap of the k x k cosines between class means, classes ordered by size (largest first,
    stable for ties), ticks labelled with the class sizes, diverging ``RdBu_r`` on [-1, 1].

    Neural collapse with balanced classes gives the simplex ETF, -1/(k-1) off the diagonal
    (Papyan, Han & Donoho 2020); under imbalance the minority block drifts towards +1 (minority
    collapse: Fang et al. 2021; for SupCon, Behnia & Thrampoulidis 2024).
    """
    C = _square(cosines)
    k = C.shape[0]
    sizes = _counts(counts, k)
    order = _size_order(sizes)
    fig, ax = _figure_and_axes(ax, (4.8, 4.0))
    im = ax.imshow(C[np.ix_(order, order)], cmap=COSINE_CMAP, vmin=-1.0, vmax=1.0, interpolation="nearest")
    _size_ticks(ax, sizes[order])
    ax.set_xlabel("class (size)")
    ax.set_ylabel("class (size)")
    fig.colorbar(im, ax=ax, label="cosine of class means")
    ax.set_title(title if title is not None else f"class-mean cosines, k = {k}")
    return fig


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
    colours = _class_colours(sizes)
    for c in range(len(classes)):
        ax.scatter(*_coords(P[yi == c], dim), color=colours[c], s=12 if dim == 2 else 18,
                   alpha=0.35 if dim == 2 else 0.6, linewidths=0)
    for c in range(len(classes)):
        ax.scatter(*_coords(means[c : c + 1], dim), color=colours[c], s=110, edgecolors="black",
                   linewidths=0.9, zorder=3, label=f"class {_label_text(classes[c])} (n = {sizes[c]})")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


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

    fig, ax = _figure_and_axes(ax, (6.4, 4.6) if dim == 2 else (6.8, 5.0), "3d" if dim == 3 else None)
    _unit_sphere_frame(ax, dim)
    if k > _MAX_LEGEND_CLASSES:
        _scatter_by_size(fig, ax, P, means, yi, sizes, dim)
    else:
        _scatter_with_legend(ax, P, means, yi, sizes, classes, dim)

    pca = f"PCA: {100 * kept:.1f}% of ||H||_F^2"
    ax.set_title(f"{title}\n{pca}" if title else f"embeddings, {pca}")
    return fig


def cosines_vs_class_size(cosines: Any, counts: Any, ax: Axes | None = None,
                          title: str | None = None) -> Figure:
    """Minority collapse for long-tailed counts: for each class, the mean and the largest cosine of
    its class mean to the other classes' means, against its size (log x when sizes span more
    than 10x), with the simplex ETF value -1/(k-1) dashed. Small classes drifting towards +1 is
    minority collapse (Fang et al. 2021; SupCon: Behnia & Thrampoulidis 2024); balanced neural
    collapse sits on the ETF line (Papyan, Han & Donoho 2020).
    """
    C = _square(cosines)
    k = C.shape[0]
    if k < 2:
        raise ValueError("cosines_vs_class_size needs at least 2 classes")
    sizes = _counts(counts, k).astype(float)
    off = ~np.eye(k, dtype=bool)
    others = C[off].reshape(k, k - 1)
    fig, ax = _figure_and_axes(ax, (5.0, 3.8))
    ax.plot(sizes, others.mean(axis=1), linestyle="none", marker="o", color=PALETTE[4], alpha=0.85,
            label="mean cosine to the other classes")
    ax.plot(sizes, others.max(axis=1), linestyle="none", marker="^", color=PALETTE[5], alpha=0.85,
            label="largest cosine to another class")
    etf = -1.0 / (k - 1)
    ax.axhline(etf, linestyle="--", color="0.35", linewidth=1.0, label=f"simplex ETF, -1/(k-1) = {etf:.3g}")
    if _log_span(sizes, 10.0, strict=True):
        ax.set_xscale("log")
    ax.set_xlabel("class size n_c")
    ax.set_ylabel("cosine of class means")
    ax.legend(fontsize="small", loc="best")
    ax.set_title(title if title is not None else f"class-mean cosines vs class size, k = {k}")
    return fig


def step_cosines(x: Any, cos_major: Any, cos_minor: Any, cos_between: Any, ax: Axes | None = None,
                 xlabel: str = "imbalance ratio R", log_x: bool | None = None,
                 title: str | None = None) -> Figure:
    """Mean class-mean cosines of a STEP-imbalanced problem against x (the ratio R or tau): among
    majority classes, among minority classes and between the two. None/NaN values are skipped
    (e.g. minority-minority with one minority class). log x by default when max(x)/min(x) >= 20
    and min(x) > 0. Minority cosines rising to +1 with R is minority collapse (Fang et al. 2021;
    SupCon: Behnia & Thrampoulidis 2024).
    """
    xs = _as_float_array(x, "x")
    series = [_as_float_array(v, name) for v, name in zip((cos_major, cos_minor, cos_between), _KIND_KEYS,
                                                            strict=True)]
    for v, name in zip(series, _KIND_KEYS, strict=True):
        if v.size != xs.size:
            raise ValueError(f"{name}: expected {xs.size} values (one per x), got {v.size}")
    fig, ax = _figure_and_axes(ax, (5.0, 3.8))
    order = np.argsort(xs, kind="stable")
    for v, label, colour, marker in zip(series, _KIND_LABELS, _KIND_COLOURS, _MARKERS, strict=False):
        keep = order[np.isfinite(xs[order]) & np.isfinite(v[order])]
        if keep.size:
            ax.plot(xs[keep], v[keep], color=colour, marker=marker, markersize=4, label=label)
    if log_x is None:
        log_x = _log_span(xs, 20.0, strict=False)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean cosine of class means")
    if ax.lines:
        ax.legend(fontsize="small", loc="best")
    if title is not None:
        ax.set_title(title)
    return fig


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float | np.number) else str(v)


def _shade(colour: str, level: float) -> tuple:
    """``colour`` blended with white: level 0 is light, 1 the colour itself."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(colour))
    return tuple(1.0 - (0.25 + 0.75 * level) * (1.0 - rgb))


def _grouped_panel(ax: Axes, rows: list[Mapping[str, Any]], xkey: str, gkey: str, xlabel: str,
                   gname: str) -> None:
    """Up to 4 groups: one line style (and marker) per group; more: one shade of each kind's
    colour per group, light for the smallest value, dark for the largest."""
    from matplotlib.lines import Line2D

    groups = sorted({r[gkey] for r in rows})
    shaded = len(groups) > len(_LINESTYLES)
    xs_all = np.array([float(r[xkey]) for r in rows])
    for gi, g in enumerate(groups):
        level = gi / max(len(groups) - 1, 1)
        sub = sorted((r for r in rows if r[gkey] == g), key=lambda r: float(r[xkey]))
        xs = np.array([float(r[xkey]) for r in sub])
        for key, label, colour in zip(_KIND_KEYS, _KIND_LABELS, _KIND_COLOURS, strict=True):
            v = _as_float_array([r.get(key) for r in sub], key)
            keep = np.isfinite(xs) & np.isfinite(v)
            if not keep.any():
                continue
            style = ({"color": _shade(colour, level), "linestyle": "-", "marker": "o", "markersize": 2.5}
                     if shaded else {"color": colour, "linestyle": _LINESTYLES[gi % len(_LINESTYLES)],
                                     "marker": _MARKERS[gi % len(_MARKERS)], "markersize": 4})
            ax.plot(xs[keep], v[keep], label=label if len(groups) == 1 else None, **style)
    if _log_span(xs_all, 20.0, strict=False):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean cosine of class means")
    if len(groups) == 1:
        ax.set_title(f"{gname} = {_fmt(groups[0])}")
        if ax.lines:
            ax.legend(fontsize="small", loc="best")
        return
    handles = [Line2D([], [], color=c, label=lab) for c, lab in zip(_KIND_COLOURS, _KIND_LABELS, strict=True)]
    if shaded:
        handles += [Line2D([], [], color=_shade("#404040", i / (len(groups) - 1)), marker="o", markersize=3,
                           label=f"{gname} = {_fmt(g)}") for i, g in enumerate(groups)]
    else:
        handles += [Line2D([], [], color="0.3", linestyle=_LINESTYLES[i % len(_LINESTYLES)],
                           marker=_MARKERS[i % len(_MARKERS)], markersize=4, label=f"{gname} = {_fmt(g)}")
                    for i, g in enumerate(groups)]
    ax.legend(handles=handles, fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"one {'shade' if shaded else 'line style'} per {gname}", fontsize="medium")


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
    fig, (a, b) = _figure_and_axes_list(axes, 2, (12.0, 4.0))
    _grouped_panel(a, rows, "ratio", "tau", "imbalance ratio R", "tau")
    _grouped_panel(b, rows, "tau", "ratio", "temperature tau", "R")
    return fig


#: restart_census's colours for certified, not certified and unknown (or mixed) certificates
_CERTIFICATE_COLOURS = (PALETTE[2], PALETTE[5], "0.6")


def _gaps_panel(a: Axes, restarts: list) -> None:
    """Panel (a) of :func:`restart_census`: histogram of the gaps on a log axis, gaps <= 1e-16
    (zero or negative too) in the first bin."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    gaps = _as_float_array([r.get("gap") for r in restarts], "gap")
    gaps = np.maximum(gaps[np.isfinite(gaps)], _GAP_FLOOR)
    lo = math.log10(_GAP_FLOOR)
    if gaps.size:
        hi = max(math.ceil(math.log10(gaps.max() * (1 + 1e-9))), lo + 1)
        a.hist(gaps, bins=np.logspace(lo, hi, int(hi - lo) + 1), color=PALETTE[4], edgecolor="white")
    else:
        a.text(0.5, 0.5, "no gaps recorded", transform=a.transAxes, ha="center", va="center")
    a.set_xscale("log")
    a.xaxis.set_major_locator(LogLocator(numticks=6))
    a.yaxis.set_major_locator(MaxNLocator(integer=True))
    a.set_xlabel(f"gap to the optimum (<= {_GAP_FLOOR:g} shown at {_GAP_FLOOR:g})")
    a.set_ylabel("restarts")
    a.set_title("(a) gaps")


def _certificates_panel(b: Axes, restarts: list) -> None:
    """Panel (b) of :func:`restart_census`: lambda_min of each restart's certificate, certified,
    not certified and without a certificate apart."""
    from matplotlib.ticker import MaxNLocator

    certified_colour, failed_colour, unknown_colour = _CERTIFICATE_COLOURS
    lam = _as_float_array([r.get("lambda_min") for r in restarts], "lambda_min")
    cert = [r.get("certified") for r in restarts]
    idx = np.arange(len(restarts))
    for flag, colour, marker, label in ((True, certified_colour, "o", "certified"),
                                        (False, failed_colour, "x", "not certified"),
                                        (None, unknown_colour, "s", "no certificate")):
        sel = np.array([cf is flag for cf in cert], dtype=bool) & np.isfinite(lam)
        if sel.any():
            b.scatter(idx[sel], lam[sel], color=colour, marker=marker, s=22, label=label, zorder=3)
    b.axhline(0.0, color="0.35", linewidth=0.8)
    b.xaxis.set_major_locator(MaxNLocator(integer=True))
    b.set_xlabel("restart")
    b.set_ylabel("lambda_min of the certificate")
    if b.collections:
        b.legend(fontsize="small", loc="best")
    b.set_title("(b) certificates")


def _minima(restarts: list) -> tuple[list, dict, list, dict]:
    """The restarts grouped by ``cluster`` (sorted ids; restarts without one are left out), each
    minimum's colour by its restarts' certificates, and the legend's labels and colours."""
    certified_colour, failed_colour, unknown_colour = _CERTIFICATE_COLOURS
    clusters: dict[Any, list[Mapping[str, Any]]] = {}
    for r in restarts:
        if r.get("cluster") is not None:
            clusters.setdefault(r["cluster"], []).append(r)
    ids = sorted(clusters, key=lambda cid: (str(type(cid)), cid))
    colours, present = [], {}
    for cid in ids:
        flags = {m.get("certified") for m in clusters[cid]}
        if flags == {True}:
            colour, label = certified_colour, "certified"
        elif flags == {False}:
            colour, label = failed_colour, "not certified"
        else:
            colour, label = unknown_colour, "mixed / unknown"
        colours.append(colour)
        present[label] = colour
    return ids, clusters, colours, present


def _minima_panel(c: Axes, restarts: list) -> None:
    """Panel (c) of :func:`restart_census`: restarts per distinct minimum, bars coloured by
    certificate, ticks with the minimum's id and its median excess over the floor."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    ids, clusters, colours, present = _minima(restarts)
    heights = [len(clusters[cid]) for cid in ids]
    pos = np.arange(len(ids))
    bars = c.bar(pos, heights, color=colours, edgecolor="black", linewidth=0.6)
    c.bar_label(bars, fontsize="small")
    ticks = []
    for cid in ids:
        ex = _as_float_array([m.get("excess") for m in clusters[cid]], "excess")
        ex = ex[np.isfinite(ex)]
        ticks.append(f"{_fmt(cid)}\n{np.median(ex):.3g}" if ex.size else _fmt(cid))
    c.set_xticks(pos, ticks, fontsize="small")
    c.set_xlabel("minimum, up to relabelling and rotation (excess)")
    c.set_ylabel("restarts")
    c.yaxis.set_major_locator(MaxNLocator(integer=True))
    c.margins(y=0.15)
    if present:
        c.legend(handles=[Patch(color=col, label=lab) for lab, col in present.items()], fontsize="small")
    c.set_title("(c) distinct minima")


def restart_census(restarts: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None,
                   title: str | None = None) -> Figure:
    """Census of non-convex restarts (entries of ``ufm verify --json``'s "restarts"): (a) histogram
    of the gaps value - optimum on a log axis (gaps <= 1e-16, zero or negative, counted in the first
    bin); (b) lambda_min of each restart's certificate, certified and not certified in two colours;
    (c) how many restarts reached each distinct minimum (``cluster``: one minimum up to the problem's
    relabellings and a rotation, ``ufm.matching``), bars coloured by certificate, ticks showing the
    minimum's id and its excess over the floor. For SupCon every local minimum is
    global (Behnia & Thrampoulidis 2024): (c) should show one certified bar.
    """
    restarts = list(restarts)
    fig, (a, b, c) = _figure_and_axes_list(axes, 3, (13.0, 3.8))
    _gaps_panel(a, restarts)
    _certificates_panel(b, restarts)
    _minima_panel(c, restarts)
    if title is not None:
        fig.suptitle(title)
    return fig


def optimisation_curves(histories: Sequence[Any], optimal_value: float | None = None, floor: float = 0.0,
                        ax: Axes | None = None, title: str | None = None) -> Figure:
    """Loss per iteration of each restart (one thin line each). With ``optimal_value``: the gap
    value - optimum on a log y axis (clipped at 1e-16); without: the excess value - floor over the
    loss's geometry-independent floor (log y when all excesses are positive).
    """
    curves = [np.asarray(h, dtype=float).reshape(-1) for h in histories]
    if optimal_value is not None:
        ys = [np.maximum(h - float(optimal_value), _GAP_FLOOR) for h in curves]
        ylabel, log_y = "gap to the optimum", True
    else:
        ys = [h - float(floor) for h in curves]
        finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.empty(0)
        ylabel, log_y = "excess over the floor", bool(finite.size and finite.min() > 0)
    fig, ax = _figure_and_axes(ax, (5.0, 3.8))
    many = len(ys) > len(PALETTE)
    for i, y in enumerate(ys):
        ax.plot(np.arange(y.size), y, linewidth=0.8, alpha=0.5 if many else 0.85,
                color=PALETTE[4] if many else PALETTE[i])
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"{len(ys)} restart(s)")
    return fig


def loss_family(panels: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None,
                title: str | None = None) -> Figure:
    """Side-by-side cosine heatmaps of the optimal geometry of several losses, one panel per dict
    {"name", "cosines" (m, m), "subtitle" (optional)}, a grid of at most 4 columns, shared
    ``RdBu_r`` scale on [-1, 1] with one colorbar. Collapse to a simplex ETF: Papyan, Han & Donoho
    2020; SupCon: Behnia & Thrampoulidis 2024.
    """
    panels = list(panels)
    if not panels:
        raise ValueError("loss_family: no panels to draw")
    n = len(panels)
    if axes is None:
        ncols = min(4, n)
        nrows = math.ceil(n / ncols)
        fig = _new_figure((3.2 * ncols + 1.0, 3.1 * nrows))
        grid = list(np.asarray(fig.subplots(nrows, ncols, squeeze=False), dtype=object).ravel())
        for extra in grid[n:]:
            fig.delaxes(extra)
        used = grid[:n]
    else:
        fig, used = _figure_and_axes_list(axes, n, (0.0, 0.0))
    from matplotlib.ticker import MaxNLocator

    im = None
    for ax, p in zip(used, panels, strict=True):
        C = _square(p["cosines"], f"cosines of {p.get('name', '?')}")
        im = ax.imshow(C, cmap=COSINE_CMAP, vmin=-1.0, vmax=1.0, interpolation="nearest")
        sub = p.get("subtitle")
        ax.set_title(f"{p.get('name', '')}\n{sub}" if sub else str(p.get("name", "")), fontsize="medium")
        if C.shape[0] > _MAX_TICK_LABELS:
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(im, ax=used, label="cosine", shrink=0.85)
    if title is not None:
        fig.suptitle(title)
    return fig


def _group_label(key: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        if key == "counts":
            return f"k = {len(value)}" + (f" ({value[0]} each)" if len(set(value)) == 1 else "")
        shown = ", ".join(_fmt(v) for v in value[:4])
        return f"{key} = [{shown}{', ...' if len(value) > 4 else ''}]"
    return f"{key} = {_fmt(value)}"


def summary_lines(rows: Sequence[Mapping[str, Any]], x: str, ys: Sequence[str], by: str | None = None,
                  axes: Sequence[Axes] | None = None, title: str | None = None) -> Figure:
    """One panel per column in ``ys``: the column against ``x`` over result rows (dicts holding
    both), one line per value of ``by`` (Okabe-Ito colours). Booleans plot as 0/1; None is skipped.
    For study summaries: e.g. the best gap and the fraction of certified restarts against the
    dimension (a gap when d < k - 1; Behnia & Thrampoulidis 2024)."""
    rows = list(rows)
    ys = list(ys)
    if not rows or not ys:
        raise ValueError("summary_lines: no rows or no columns to draw")
    fig, used = _figure_and_axes_list(axes, len(ys), (4.6 * len(ys), 3.6))
    groups = [None]
    if by is not None:  # values in order of first appearance (lists, e.g. class counts, included)
        groups = list({repr(r.get(by)): r.get(by) for r in rows}.values())
    xs_all = np.array([float(r[x]) for r in rows if isinstance(r.get(x), int | float)])
    for ax, y in zip(used, ys, strict=True):
        for gi, g in enumerate(groups):
            sub = [r for r in rows if by is None or r.get(by) == g]
            pts = sorted((float(r[x]), float(r[y])) for r in sub
                         if isinstance(r.get(x), int | float) and isinstance(r.get(y), int | float | bool)
                         and r.get(y) is not None)
            if not pts:
                continue
            px, py = zip(*pts, strict=True)
            ax.plot(px, py, marker=_MARKERS[gi % len(_MARKERS)], markersize=4,
                    color=PALETTE[gi % len(PALETTE)], label=None if by is None else _group_label(by, g))
        values = np.array([float(r[y]) for r in rows if isinstance(r.get(y), int | float | bool)])
        if y.endswith("gap") and values.size and values.min() > 0 and values.max() / values.min() > 100:
            ax.set_yscale("log")
        if _log_span(xs_all, 20.0, strict=False):
            ax.set_xscale("log")
        elif xs_all.size and np.all(xs_all == np.round(xs_all)):
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(x)
        ax.set_ylabel(y.replace("_", " "))
        if by is not None and ax.lines:
            ax.legend(fontsize="small", loc="best")
    if title is not None:
        fig.suptitle(title)
    return fig


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
    fig, (a, b) = _figure_and_axes_list(axes, 2, (10.0, 3.8))
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
    a.set_title("(a) distinct end points per activation", fontsize="medium")
    a.legend(fontsize="small", loc="upper left", ncols=2)
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
    b.set_title("(b) alignment of each end point (hollow: not certified)", fontsize="medium")
    if title is not None:
        fig.suptitle(title)
    return fig


def specialisation_histogram(scores: Mapping[str, Any], ax: Axes | None = None,
                             title: str | None = None) -> Figure:
    """Per activation, the histogram of the hidden units' specialisation (the share of a unit's
    response variance carried by one pattern token; Tian 2023: ReLU units specialise, linear units
    do not)."""
    fig, ax = _figure_and_axes(ax, (5.0, 3.8))
    bins = np.linspace(0.0, 1.0, 21)
    for i, (name, s) in enumerate(scores.items()):
        s = np.asarray(s, dtype=float)
        ax.hist(s[np.isfinite(s)], bins=bins, histtype="step", linewidth=1.6, color=PALETTE[i % len(PALETTE)],
                label=f"{name} ({np.isfinite(s).sum()} units)")
    ax.set_xlabel("share of a unit's response variance on one pattern token")
    ax.set_ylabel("hidden units")
    ax.legend(fontsize="small")
    if title is not None:
        ax.set_title(title)
    return fig


_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
#: file suffixes save_figure writes
FIGURE_SUFFIXES = tuple(_FORMATS)


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` to ``path`` as PNG (150 dpi), PDF or SVG, by its suffix, atomically (temporary
    file in the same folder, then rename: never a partial file)."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"save_figure: unsupported suffix {path.suffix or '(none)'!r} of {str(path)!r}; "
                         f"use one of {', '.join(_FORMATS)}")
    kwargs: dict[str, Any] = {"format": fmt, "bbox_inches": "tight"}
    if fmt == "png":
        kwargs["dpi"] = 150
    atomic_write(path, lambda fh: fig.savefig(fh, **kwargs))
