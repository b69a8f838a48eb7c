"""Restarts of the non-convex solver: the census of end points and the optimisation curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import GAP_FLOOR, as_float_array, figure_and_axes, figure_and_axes_list, fmt
from ufm.plotting.style import PALETTE, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


#: restart_census's colours for certified, not certified and unknown (or mixed) certificates
_CERTIFICATE_COLOURS = (PALETTE[2], PALETTE[5], "0.6")


def _gaps_panel(a: Axes, restarts: list) -> None:
    """Panel (a) of :func:`restart_census`: histogram of the gaps on a log axis, gaps <= 1e-16
    (zero or negative too) in the first bin."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    gaps = as_float_array([r.get("gap") for r in restarts], "gap")
    gaps = np.maximum(gaps[np.isfinite(gaps)], GAP_FLOOR)
    lo = math.log10(GAP_FLOOR)
    if gaps.size:
        hi = max(math.ceil(math.log10(gaps.max() * (1 + 1e-9))), lo + 1)
        a.hist(gaps, bins=np.logspace(lo, hi, int(hi - lo) + 1), color=PALETTE[4], edgecolor="white")
    else:
        a.text(0.5, 0.5, "no gaps recorded", transform=a.transAxes, ha="center", va="center")
    a.set_xscale("log")
    a.xaxis.set_major_locator(LogLocator(numticks=6))
    a.yaxis.set_major_locator(MaxNLocator(integer=True))
    a.set_xlabel(f"gap to the optimum (<= {GAP_FLOOR:g} shown at {GAP_FLOOR:g})")
    a.set_ylabel("restarts")
    a.set_title("(a) gaps")


def _certificates_panel(b: Axes, restarts: list) -> None:
    """Panel (b) of :func:`restart_census`: lambda_min of each restart's certificate, certified,
    not certified and without a certificate apart."""
    from matplotlib.ticker import MaxNLocator

    certified_colour, failed_colour, unknown_colour = _CERTIFICATE_COLOURS
    lam = as_float_array([r.get("lambda_min") for r in restarts], "lambda_min")
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
        b.legend(loc="best")
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
    c.bar_label(bars)
    ticks = []
    for cid in ids:
        ex = as_float_array([m.get("excess") for m in clusters[cid]], "excess")
        ex = ex[np.isfinite(ex)]
        ticks.append(f"{fmt(cid)}\n{np.median(ex):.3g}" if ex.size else fmt(cid))
    c.set_xticks(pos, ticks)
    c.set_xlabel("minimum, up to relabelling and rotation (excess)")
    c.set_ylabel("restarts")
    c.yaxis.set_major_locator(MaxNLocator(integer=True))
    c.margins(y=0.15)
    if present:
        c.legend(handles=[Patch(color=col, label=lab) for lab, col in present.items()])
    c.set_title("(c) distinct minima")


@styled
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
    fig, (a, b, c) = figure_and_axes_list(axes, 3, 0.9)
    _gaps_panel(a, restarts)
    _certificates_panel(b, restarts)
    _minima_panel(c, restarts)
    if title is not None:
        fig.suptitle(title)
    return fig


@styled
def optimisation_curves(histories: Sequence[Any], optimal_value: float | None = None, floor: float = 0.0,
                        ax: Axes | None = None, title: str | None = None) -> Figure:
    """Loss per iteration of each restart (one thin line each). With ``optimal_value``: the gap
    value - optimum on a log y axis (clipped at 1e-16); without: the excess value - floor over the
    loss's geometry-independent floor (log y when all excesses are positive).
    """
    curves = [np.asarray(h, dtype=float).reshape(-1) for h in histories]
    if optimal_value is not None:
        ys = [np.maximum(h - float(optimal_value), GAP_FLOOR) for h in curves]
        ylabel, log_y = "gap to the optimum", True
    else:
        ys = [h - float(floor) for h in curves]
        finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.empty(0)
        ylabel, log_y = "excess over the floor", bool(finite.size and finite.min() > 0)
    fig, ax = figure_and_axes(ax, 0.75)
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

