"""Publication figures of optimal geometries, imbalance sweeps and restart censuses.

Matplotlib's object-oriented API only: figures are ``matplotlib.figure.Figure`` objects (no pyplot,
no GUI backend, no global state), and matplotlib is imported inside the functions, so that
``import ufm.plotting`` stays fast. Every function draws into a given Axes (``ax``) or sequence of
Axes (``axes``) when one is passed, otherwise into a new figure, and returns the Figure. The
functions take plain arrays, lists and dicts (never solver objects); ``save_figure`` writes
``.png``, ``.pdf`` or ``.svg`` atomically.

Every figure is drawn in one paper style (:mod:`ufm.plotting.style`): a single column (3.3 in)
for one panel and a double column (6.9 in) for several, fonts of 7-9 pt, TrueType fonts in PDF
and text as text in SVG, PNG at 300 dpi; ``style.options(width=..., dpi=...)`` changes the size
and resolution of every figure made inside it.

Colours are colour-blind safe: categorical colours from the Okabe-Ito palette (``PALETTE``), a
sequential colormap ranked by class size for more than 8 classes, and the diverging ColorBrewer
map ``RdBu_r`` for cosines, centred on the simplex value -1/(k-1).

References: Papyan, Han & Donoho 2020, "Prevalence of neural collapse during the terminal phase
of deep learning training" (neural collapse, simplex ETF); Fang, He, Long & Su 2021, "Exploring
deep neural networks via layer-peeled model: minority collapse in imbalanced training" (minority
collapse); Behnia & Thrampoulidis 2024, "Supervised Contrastive Representation Learning:
Landscape Analysis with Unconstrained Features" (SupCon geometry and minority collapse under
label imbalance).
"""

from ufm.plotting.census import optimisation_curves, restart_census
from ufm.plotting.embeddings import embedding_scatter
from ufm.plotting.heatmaps import class_cosine_heatmap, cosines_against_optimum, loss_family
from ufm.plotting.lines import summary_lines
from ufm.plotting.modulation import modulation_curves, modulation_panels
from ufm.plotting.networks import network_census, specialisation_histogram
from ufm.plotting.step import cosines_vs_class_size, step_cosines, step_panels
from ufm.plotting.style import (
    COSINE_CMAP,
    DOUBLE_COLUMN,
    FIGURE_SUFFIXES,
    PALETTE,
    SEQUENTIAL_CMAP,
    SINGLE_COLUMN,
    new_figure,
    options,
    save_figure,
)

__all__ = [
    "COSINE_CMAP",
    "DOUBLE_COLUMN",
    "FIGURE_SUFFIXES",
    "PALETTE",
    "SEQUENTIAL_CMAP",
    "SINGLE_COLUMN",
    "class_cosine_heatmap",
    "cosines_against_optimum",
    "cosines_vs_class_size",
    "embedding_scatter",
    "loss_family",
    "modulation_curves",
    "modulation_panels",
    "network_census",
    "new_figure",
    "optimisation_curves",
    "options",
    "restart_census",
    "save_figure",
    "specialisation_histogram",
    "step_cosines",
    "step_panels",
    "summary_lines",
]
