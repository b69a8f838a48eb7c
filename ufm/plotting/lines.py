"""Summary columns of a study against a swept parameter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import MARKERS, figure_and_axes_list, fmt, log_span
from ufm.plotting.style import PALETTE, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _group_label(key: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        if key == "counts":
            return f"k = {len(value)}" + (f" ({value[0]} each)" if len(set(value)) == 1 else "")
        shown = ", ".join(fmt(v) for v in value[:4])
        return f"{key} = [{shown}{', ...' if len(value) > 4 else ''}]"
    return f"{key} = {fmt(value)}"


@styled
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
    fig, used = figure_and_axes_list(axes, len(ys), 0.8)
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
            ax.plot(px, py, marker=MARKERS[gi % len(MARKERS)], markersize=4,
                    color=PALETTE[gi % len(PALETTE)], label=None if by is None else _group_label(by, g))
        values = np.array([float(r[y]) for r in rows if isinstance(r.get(y), int | float | bool)])
        if y.endswith("gap") and values.size and values.min() > 0 and values.max() / values.min() > 100:
            ax.set_yscale("log")
        if log_span(xs_all, 20.0, strict=False):
            ax.set_xscale("log")
        elif xs_all.size and np.all(xs_all == np.round(xs_all)):
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(x)
        ax.set_ylabel(y.replace("_", " "))
        if by is not None and ax.lines:
            ax.legend(loc="best")
    if title is not None:
        fig.suptitle(title)
    return fig

