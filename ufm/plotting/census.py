"""Restarts of the non-convex solver: the census of end points and the optimisation curves.

:func:`restart_census` draws three panels from the entries of ``ufm verify --json``'s "restarts":
(a) the gap to the optimum that the ``ufm verify`` table prints (relative to the optimum's
scale; relative to the optimal excess or absolute only where that is missing, the axis label
saying which), (b) each restart's certificate (lambda_min), (c) the distinct minima up to the
problem's relabellings and a rotation (``cluster``, found by ``ufm.matching``) with their basin
sizes (the share of restarts that reach each). Colours say the certificate: certified, not
certified, mixed (a minimum whose restarts disagree) or none (no convex relaxation). Legends
sit above their panel and list only what is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import (
    GAP_FLOOR,
    as_float_array,
    figure_and_axes,
    figure_and_axes_list,
    fmt,
    line_colour,
)
from ufm.plotting.style import PALETTE, TICK_PT, figure_width, new_figure, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Certificate classes: legend text -> colour (certified, not certified, mixed, none).
CERTIFICATE_COLOURS: dict[str, str] = {
    "certified": PALETTE[2],
    "not certified": PALETTE[5],
    "mixed": PALETTE[1],
    "no certificate": "0.6",
}
#: Markers of panel (b) per certificate class of a restart.
_CERTIFICATE_MARKERS = {"certified": "o", "not certified": "X", "no certificate": "s"}

#: The gap of a restart that panel (a) draws, in the order the ``ufm verify`` table prefers them:
#: (key, axis label, True where relative).
GAP_QUANTITIES: tuple[tuple[str, str, bool], ...] = (
    ("gap_over_scale", "gap relative to the optimum's scale s*\n(value - optimum) / s*", True),
    ("rel_gap", "gap relative to the optimal excess e*\n(value - optimum) / e*", True),
    ("gap", "absolute gap to the optimum\nvalue - optimum", False),
)
#: Narrowest figure (inches) that :func:`restart_census` draws as a row of three panels; a
#: narrower one (a single column) stacks them.
MIN_ROW_WIDTH = 5.0
#: Curves drawn one colour each up to this many restarts; beyond, one translucent colour.
MAX_COLOURED_CURVES = 8
#: Height of a one-row legend above a panel, in points (text, padding): the title is lifted by it.
_LEGEND_ROW_PT = 1.9 * TICK_PT
#: Pad of every census panel's title (points): the legend row fits below it, and the titles of a
#: row of panels line up whether or not the panel has a legend.
_TITLE_PAD = 4.0 + _LEGEND_ROW_PT
#: The x label of the minima panel (c).
_MINIMA_XLABEL = "minimum: excess over the floor"
#: The share of a panel's height before the layout that the layout leaves it (a cautious guess).
_LAID_OUT_HEIGHT = 0.7
#: An estimate of the width of a character of a 7 pt text, in points.
_CHAR_PT = 0.6 * TICK_PT


def certificate_class(flags: Sequence[bool | None]) -> str:
    """The certificate class of one or more restarts' ``certified`` flags: "certified" (all True),
    "not certified" (all False), "no certificate" (all None, or none given), else "mixed"."""
    kinds = set(flags)
    if kinds == {True}:
        return "certified"
    if kinds == {False}:
        return "not certified"
    if kinds <= {None}:
        return "no certificate"
    return "mixed"


def _flag(r: Mapping[str, Any]) -> bool | None:
    """A restart's ``certified`` flag (top level, or in a nested ``certificate`` dict)."""
    flag = r.get("certified")
    if flag is None and isinstance(r.get("certificate"), Mapping):
        flag = r["certificate"].get("certified")
    return None if flag is None else bool(flag)


def _legend_above(ax: Axes, handles: list, labels: list[str], title: str) -> None:
    """A one-row legend just above ``ax`` and the panel's title above it."""
    ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(labels),
              handlelength=1.0, handletextpad=0.4, columnspacing=1.0, borderaxespad=0.1, borderpad=0.2)
    ax.set_title(title, pad=_TITLE_PAD)


def _log_ticks_with_floor(ax: Axes) -> None:
    """Log ticks on x, the floor's tick written <= 1e-16 (smaller values are counted there)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    floor_exp = round(math.log10(GAP_FLOOR))

    def text(v: float, _pos: int | None = None) -> str:
        if v <= 0:
            return ""
        e = round(math.log10(v))
        if not math.isclose(v, 10.0**e, rel_tol=1e-6):
            return ""
        return rf"$\leq 10^{{{e}}}$" if e == floor_exp else rf"$10^{{{e}}}$"

    ax.xaxis.set_major_locator(LogLocator(numticks=5))
    ax.xaxis.set_major_formatter(FuncFormatter(text))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))


def gap_quantity(restarts: Sequence[Mapping[str, Any]]) -> tuple[str, str, bool]:
    """(key, axis label, relative) of the gap panel (a) draws: the first of
    :data:`GAP_QUANTITIES` that some restart has (the quantity the ``ufm verify`` table prints:
    relative to the optimum's scale, else to the optimal excess, else absolute)."""
    for key, label, relative in GAP_QUANTITIES:
        if any(r.get(key) is not None and math.isfinite(float(r[key])) for r in restarts):
            return key, label, relative
    return GAP_QUANTITIES[0]


def _gaps_panel(a: Axes, restarts: list) -> None:
    """Panel (a): histogram of each restart's gap to the optimum (the quantity of
    :func:`gap_quantity`) on a log axis, one bin per decade, values <= 1e-16 (zero or negative
    too) in the first bin."""
    from matplotlib.ticker import MaxNLocator

    key, label, _ = gap_quantity(restarts)
    gaps = as_float_array([r.get(key) for r in restarts], key)
    gaps = np.maximum(gaps[np.isfinite(gaps)], GAP_FLOOR)
    lo = math.log10(GAP_FLOOR)
    if gaps.size:
        hi = max(math.ceil(math.log10(gaps.max() * (1 + 1e-9))), lo + 1)
        a.hist(gaps, bins=np.logspace(lo, hi, int(hi - lo) + 1), color=PALETTE[4], edgecolor="white",
               linewidth=0.5)
    else:
        a.text(0.5, 0.5, "no gaps recorded", transform=a.transAxes, ha="center", va="center",
               fontsize=TICK_PT)
    a.set_xscale("log")
    _log_ticks_with_floor(a)
    a.yaxis.set_major_locator(MaxNLocator(integer=True))
    a.set_xlabel(label)
    a.set_ylabel("restarts")
    missing = len(restarts) - gaps.size
    without = f"\n({missing} of {len(restarts)} restarts without)" if missing else ""
    a.set_title("(a) gap to the optimum" + without, pad=_TITLE_PAD)


def _certificates_panel(b: Axes, restarts: list) -> None:
    """Panel (b): lambda_min of each restart's certificate against the restart's index, certified,
    not certified and without a certificate in their colours and markers."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    lam = as_float_array([r.get("lambda_min") for r in restarts], "lambda_min")
    kinds = [certificate_class([_flag(r)]) for r in restarts]
    idx = np.arange(len(restarts))
    handles, labels = [], []
    for kind, marker in _CERTIFICATE_MARKERS.items():
        sel = np.array([k == kind for k in kinds], dtype=bool) & np.isfinite(lam)
        if sel.any():
            handles.append(b.scatter(idx[sel], lam[sel], color=CERTIFICATE_COLOURS[kind], marker=marker, s=16,
                                     linewidths=0, label=kind, zorder=3))
            labels.append(kind)
    b.axhline(0.0, color="0.35", linewidth=0.6, zorder=1)
    b.xaxis.set_major_locator(MaxNLocator(integer=True))
    b.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.2g}"))  # no "1e-15" offset text
    b.set_xlabel("restart")
    b.set_ylabel(r"$\lambda_{\min}$ of the certificate")
    title = "(b) certificate per restart"
    if handles:
        _legend_above(b, handles, labels, title)
    else:
        b.text(0.5, 0.5, "no certificates", transform=b.transAxes, ha="center", va="center", fontsize=TICK_PT)
        b.set_title(title, pad=_TITLE_PAD)


def minimum_id(cluster: Any) -> str:
    """The short id of a minimum: ``#`` and its ``cluster`` (the "minimum" column of the
    ``ufm verify`` table)."""
    return f"#{fmt(cluster)}"


def distinct_digits(values: Sequence[float], least: int = 3, most: int = 17) -> int:
    """The fewest significant digits (at least ``least``) that print different finite values
    differently (``most`` when even that does not)."""
    finite = sorted({float(v) for v in values if math.isfinite(v)})
    for digits in range(least, most + 1):
        if len({f"{v:.{digits}g}" for v in finite}) == len(finite):
            return digits
    return most


def minima_of(restarts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The distinct minima reached (restarts grouped by ``cluster``; those without one left out),
    best first (smallest median excess, then gap, then id): each a dict {cluster, restarts (how
    many reach it), excess (median over them), certificate (:func:`certificate_class`)}."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in restarts:
        if r.get("cluster") is not None:
            groups.setdefault(r["cluster"], []).append(r)
    minima = []
    for cid, members in groups.items():
        ex = as_float_array([m.get("excess") for m in members], "excess")
        gap = as_float_array([m.get("gap") for m in members], "gap")
        minima.append({"cluster": cid, "restarts": len(members),
                       "excess": float(np.median(ex[np.isfinite(ex)])) if np.isfinite(ex).any() else math.nan,
                       "gap": float(np.median(gap[np.isfinite(gap)])) if np.isfinite(gap).any() else math.nan,
                       "certificate": certificate_class([_flag(m) for m in members])})

    def order(m: dict) -> tuple:
        ex, gap = m["excess"], m["gap"]
        return (math.isnan(ex), ex if not math.isnan(ex) else 0.0, math.isnan(gap),
                gap if not math.isnan(gap) else 0.0, str(type(m["cluster"])), str(m["cluster"]))

    return sorted(minima, key=order)


def basin_text(m: int, total: int) -> str:
    """``m (p%)``: m restarts, p percent of ``total`` (integer percent; one digit below 1%)."""
    p = 100.0 * m / total if total else 0.0
    return f"{m} ({p:.0f}%)" if p >= 1 or p == 0 else f"{m} ({p:.1g}%)"


def _panel_width_pt(ax: Axes) -> tuple[float, float]:
    """(width, height) of ``ax`` in points, as its subplot position gives it before the layout."""
    fig = ax.figure
    box = ax.get_position()
    return 72.0 * box.width * fig.get_figwidth(), 72.0 * box.height * fig.get_figheight()


def _minima_panel(c: Axes, restarts: list) -> None:
    """Panel (c): one bar per distinct minimum up to relabelling and rotation, best first, as high
    as the restarts reaching it (its basin), labelled ``m (p%)`` of all restarts, coloured by
    certificate; ticks: the minimum's id (``#cluster``) and its excess over the floor with as many
    digits as tell the minima apart."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    title = "(c) minima up to relabelling\nand rotation: basin sizes"
    minima = minima_of(restarts)
    c.set_xlabel(_MINIMA_XLABEL)
    c.set_ylabel("restarts reaching it")
    c.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not minima:
        c.text(0.5, 0.5, "no converged restarts", transform=c.transAxes, ha="center", va="center",
               fontsize=TICK_PT)
        c.set_title(title, pad=_TITLE_PAD)
        return
    n = len(minima)
    heights = [m["restarts"] for m in minima]
    colours = [CERTIFICATE_COLOURS[m["certificate"]] for m in minima]
    pos = np.arange(n)
    bars = c.bar(pos, heights, color=colours, edgecolor="black", linewidth=0.5, width=0.7)
    width_pt, height_pt = _panel_width_pt(c)
    labels = [basin_text(h, len(restarts)) for h in heights]
    upright = max(len(t) for t in labels) * _CHAR_PT * 1.15 > width_pt / n
    c.bar_label(bars, labels=labels, fontsize=TICK_PT, padding=1.5, rotation=90 if upright else 0)
    label_pt = (max(len(t) for t in labels) * _CHAR_PT if upright else 1.3 * TICK_PT) + 3.0
    room = min(max(label_pt / max(_LAID_OUT_HEIGHT * height_pt, 1.0), 0.12), 0.6)
    c.set_ylim(0, max(heights) / (1.0 - room))
    c.set_xlim(-0.6, n - 0.4)

    ids = [minimum_id(m["cluster"]) for m in minima]
    digits = distinct_digits([m["excess"] for m in minima])
    values = ["-" if math.isnan(m["excess"]) else f"{m['excess']:.{digits}g}" for m in minima]
    two_lines = max(len(v) for v in values) * _CHAR_PT * 1.1 <= width_pt / n
    if two_lines:
        c.set_xticks(pos, [f"{i}\n{v}" for i, v in zip(ids, values, strict=True)])
    else:
        c.set_xticks(pos, [f"{i}  {v}" for i, v in zip(ids, values, strict=True)], rotation=90,
                     ha="right", va="center", rotation_mode="anchor")
    unreached = len(restarts) - sum(heights)
    if unreached:
        c.set_xlabel(f"{_MINIMA_XLABEL}\n({unreached} restart"
                     f"{'s' if unreached != 1 else ''} reached none)")
    present = [k for k in CERTIFICATE_COLOURS if any(m["certificate"] == k for m in minima)]
    handles = [Patch(facecolor=CERTIFICATE_COLOURS[k], edgecolor="black", linewidth=0.5) for k in present]
    _legend_above(c, handles, present, title)


def _title_lines(title: str | None) -> int:
    return 0 if not title else title.count("\n") + 1


@styled
def restart_census(restarts: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None,
                   title: str | None = None) -> Figure:
    """Census of non-convex restarts (entries of ``ufm verify --json``'s "restarts") in three
    panels: (a) histogram of the gap to the optimum the ``ufm verify`` table prints (value -
    optimum over the optimum's scale, else over the optimal excess, else absolute; the axis label
    says which) on a log axis, values <= 1e-16 counted in the first bin; (b) lambda_min of each
    restart's certificate, certified, not certified and without one apart; (c) the distinct
    minima up to the problem's relabellings and a rotation (``cluster``, ``ufm.matching``), best
    first, with their basin sizes (restarts reaching each, ``m (p%)``), coloured by certificate,
    ticks with the minimum's id (``#`` and its cluster, as in the ``ufm verify`` table) and its
    excess over the floor (as many digits as tell neighbours apart). For SupCon every local
    minimum is global (Behnia & Thrampoulidis 2024): (c) should show one certified bar.
    """
    restarts = list(restarts)
    if axes is None:
        extra = 0.55 + 0.17 * _title_lines(title)
        if figure_width(3) >= MIN_ROW_WIDTH:  # a row of three panels
            fig = new_figure(3, 0.95, extra_height=extra)
            a, b, c = fig.subplots(1, 3)
        else:  # a narrow figure (--width single): a column of three panels
            fig = new_figure(1, 0.62, rows=3, extra_height=extra + 0.6)
            a, b, c = fig.subplots(3, 1)
    else:
        fig, (a, b, c) = figure_and_axes_list(axes, 3)
    _gaps_panel(a, restarts)
    _certificates_panel(b, restarts)
    _minima_panel(c, restarts)
    if title is not None:
        fig.suptitle(title)
    return fig


def curve_quantity(optimal_value: float | None, scale: float | None) -> tuple[str, str]:
    """(y label, short name) of what :func:`optimisation_curves` draws."""
    if optimal_value is None:
        return "excess over the floor\nvalue - floor (absolute)", "excess over the floor"
    if scale is not None:
        return ("gap relative to the optimum's scale s*\n(value - optimum) / s*",
                "relative gap to the optimum")
    return "gap to the optimum\nvalue - optimum (absolute)", "gap to the optimum"


@styled
def optimisation_curves(histories: Sequence[Any], optimal_value: float | None = None, floor: float = 0.0,
                        ax: Axes | None = None, title: str | None = None, *,
                        scale: float | None = None) -> Figure:
    """Loss per iteration of each restart, one line each: with ``optimal_value``, the gap value -
    optimum (divided by ``scale``, the optimum's scale s*, when given) on a log y axis, clipped at
    1e-16; without, the excess value - ``floor`` over the loss's geometry-independent floor (log y
    when all excesses are positive). The y label says which, and whether absolute or relative.
    One colour per restart up to 8 restarts, beyond one translucent colour. The default title
    says how many restarts and what is drawn.
    """
    curves = [np.asarray(h, dtype=float).reshape(-1) for h in histories]
    ylabel, name = curve_quantity(optimal_value, scale)
    if optimal_value is not None:
        s = float(scale) if scale is not None else 1.0
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"scale: expected a positive number (the optimum's scale), got {scale!r}")
        ys = [np.maximum((h - float(optimal_value)) / s, GAP_FLOOR) for h in curves]
        log_y = True
    else:
        ys = [h - float(floor) for h in curves]
        finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.empty(0)
        log_y = bool(finite.size and finite.min() > 0)
    fig, ax = figure_and_axes(ax, 0.75)
    many = len(ys) > MAX_COLOURED_CURVES
    for i, y in enumerate(ys):
        ax.plot(np.arange(y.size), y, linewidth=0.7 if many else 0.9, alpha=0.4 if many else 0.9,
                color=PALETTE[4] if many else line_colour(i))
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    n = len(ys)
    ax.set_title(title if title is not None else f"{n} restart{'s' if n != 1 else ''}: {name} per iteration")
    return fig
