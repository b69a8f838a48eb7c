"""Global modulation (Tian 2023, section 6): how fast and how far a two-layer network's units learn
the tokens that are discriminative of the global pattern against the tokens shared across global
patterns (``solvers.networks.modulation``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufm.plotting._common import figure_and_axes, figure_and_axes_list
from ufm.plotting.style import LINE_COLOURS, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: the token classes drawn, in order, and their colours
CLASSES = ("discriminative", "shared")
COLOURS = {"discriminative": LINE_COLOURS[0], "shared": LINE_COLOURS[1]}
#: opacity of one token's curve and of a class's interquartile band
TOKEN_ALPHA, BAND_ALPHA = 0.25, 0.2


def _class_scores(result: Mapping[str, Any], cls: str, steps: np.ndarray) -> np.ndarray:
    """(tokens, steps) scores of one class; ValueError when malformed."""
    part = result.get(cls)
    if not isinstance(part, Mapping) or "scores" not in part:
        raise ValueError(f"result: no {cls!r} entry with 'scores' (the to_dict() of a ModulationResult)")
    s = np.asarray(part["scores"], dtype=float)
    if s.size == 0:
        return s.reshape(0, steps.size)
    if s.ndim != 2 or s.shape[1] != steps.size:
        raise ValueError(f"result[{cls!r}]['scores']: expected (tokens, {steps.size}) values, one per "
                         f"recorded step, got shape {s.shape}")
    return s


def _draw(ax: Axes, result: Mapping[str, Any]) -> None:
    steps = np.asarray(result.get("steps", ()), dtype=float).ravel()
    if steps.size == 0:
        raise ValueError("result: no recorded 'steps'")
    threshold = float(result["threshold"])
    summary = result.get("summary") or {}
    for cls in CLASSES:
        s = _class_scores(result, cls, steps)
        if s.shape[0] == 0:
            continue
        colour = COLOURS[cls]
        for row in s:
            ax.plot(steps, row, color=colour, alpha=TOKEN_ALPHA, linewidth=0.5, label="_token")
        q1, med, q3 = np.percentile(s, [25, 50, 75], axis=0)
        ax.fill_between(steps, q1, q3, color=colour, alpha=BAND_ALPHA, linewidth=0, label="_interquartile")
        ax.plot(steps, med, color=colour, linewidth=1.6, label=f"{cls} (median of {s.shape[0]})")
        crossing = summary.get(f"{cls}_step")
        if crossing is not None:
            ax.plot([crossing], [threshold], linestyle="none", marker="o", markersize=4.5, color=colour,
                    markeredgecolor="black", markeredgewidth=0.5, zorder=4,
                    label=f"{cls}: median crossing, step {crossing:g}")
    ax.axhline(threshold, color="0.35", linestyle="--", linewidth=0.8, label=f"threshold {threshold:g}")
    positive = steps[steps > 0]
    ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    ax.set_xlim(steps.min(), steps.max())
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel("best unit's weight share on the token")


@styled
def modulation_curves(result: Mapping[str, Any], ax: Axes | None = None, title: str | None = None) -> Figure:
    """Per token class (discriminative of the global pattern, shared across global patterns), the
    score of each token's best unit over training (Tian 2023, global modulation): each token's
    curve faint, the class median bold with its interquartile band, the threshold dashed and each
    class's median crossing step marked on it (where half its tokens or more crossed). Steps on a
    symlog axis (learning is fast early). The legend lists what is drawn: the class medians, the
    crossings and the threshold. ``result``: the ``to_dict()`` of
    ``solvers.networks.modulation.ModulationResult`` (``steps``, ``threshold``, per class
    ``scores`` (tokens x steps), ``summary``); the title defaults to the activation."""
    fig, ax = figure_and_axes(ax, 0.75)
    _draw(ax, result)
    ax.legend(loc="lower right")
    name = result.get("activation")
    heading = title if title is not None else (f"{name} units" if name else None)
    if heading:
        ax.set_title(heading, wrap=True)
    return fig


@styled
def modulation_panels(results: Sequence[Mapping[str, Any]], axes: Sequence[Axes] | None = None,
                      title: str | None = None, labels: Sequence[str] | None = None) -> Figure:
    """:func:`modulation_curves` side by side, one panel per result (e.g. ReLU and linear units on
    the same data), the score axis shared; ``title`` over the figure; ``labels`` the panels' titles
    after their letters (default: "<activation> units")."""
    results = list(results)
    if not results:
        raise ValueError("modulation_panels: no results to draw")
    if labels is not None and len(labels) != len(results):
        raise ValueError(f"modulation_panels: {len(labels)} labels for {len(results)} results")
    fig, panels = figure_and_axes_list(axes, len(results), 0.8)
    for i, (ax, r) in enumerate(zip(panels, results, strict=True)):
        _draw(ax, r)
        ax.legend(loc="lower right")
        name = r.get("activation")
        name = labels[i] if labels is not None else (f"{name} units" if name else "")
        ax.set_title(f"({chr(ord('a') + i)}) {name}".rstrip(), wrap=True)
        if i:
            ax.set_ylabel("")
    if title is not None:
        fig.suptitle(title, wrap=True)
    return fig
