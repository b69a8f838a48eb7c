"""The paper style every figure of :mod:`ufm.plotting` is drawn and saved in, in one place.

- Sizes for a paper column: 3.3 in (``"single"``) and 6.9 in (``"double"``), the widths of a
  two-column venue's column and text block; a one-panel figure is single-column by default,
  several panels double-column. ``options(width=...)`` sets one width for every figure made
  inside it (the CLI's ``--width single|double|INCHES``).
- Fonts 7-9 pt at that size (ticks and legends 7, labels 8, titles 8-9), TrueType (Type 42)
  fonts in PDF (venues reject Type 3) and text kept as text in SVG.
- PNG at 300 dpi unless ``options(dpi=...)`` (the CLI's ``--dpi``) or ``save_figure(dpi=...)``
  says otherwise; constrained layout.
- Colour-blind safe colours: the Okabe & Ito (2008) palette for categories, ``cividis`` for a
  sequential scale, ColorBrewer ``RdBu_r`` for cosines (diverging).

Every public figure function is wrapped by :func:`styled`, which draws it inside
``matplotlib.rc_context(PAPER_RC)``; :func:`save_figure` saves in the same context.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ufm.files import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: Okabe & Ito (2008) colour-blind-safe categorical palette: orange, sky blue, bluish green,
#: yellow, blue, vermillion, reddish purple, black.
PALETTE: list[str] = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
#: The palette in the order lines are given colours: the yellow (hard to see on white) last.
LINE_COLOURS: list[str] = [PALETTE[i] for i in (4, 5, 2, 0, 6, 1, 7, 3)]

#: Diverging colormap for cosines (ColorBrewer RdBu, reversed: red = aligned).
COSINE_CMAP = "RdBu_r"
#: Sequential colormap for many classes (colour by class size).
SEQUENTIAL_CMAP = "cividis"
#: At most this many discrete shades of one colour scale; more values get a colour bar.
MAX_SHADES = 6

#: Widths of a paper column and of a double column (the text block), in inches.
SINGLE_COLUMN = 3.3
DOUBLE_COLUMN = 6.9
WIDTHS = {"single": SINGLE_COLUMN, "double": DOUBLE_COLUMN}
#: Bounds of a width given in inches.
MIN_WIDTH, MAX_WIDTH = 1.0, 30.0
#: PNG resolution unless told otherwise; bounds of --dpi.
DEFAULT_DPI = 300
MIN_DPI, MAX_DPI = 50, 1200

#: Font sizes in points (paper style: 7-9 pt at print size).
TICK_PT, LABEL_PT, TITLE_PT, SUPTITLE_PT = 7, 8, 8, 9

#: The rcParams of the paper style.
PAPER_RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "Liberation Sans"],
    "font.size": LABEL_PT,
    "axes.titlesize": TITLE_PT,
    "axes.labelsize": LABEL_PT,
    "xtick.labelsize": TICK_PT,
    "ytick.labelsize": TICK_PT,
    "legend.fontsize": TICK_PT,
    "legend.title_fontsize": TICK_PT,
    "figure.titlesize": SUPTITLE_PT,
    "figure.labelsize": LABEL_PT,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 4.0,
    "patch.linewidth": 0.6,
    "legend.frameon": False,
    "legend.handlelength": 1.8,
    "legend.borderaxespad": 0.3,
    "axes.titlepad": 4.0,
    "axes.labelpad": 2.0,
    "figure.dpi": 100,
    "savefig.dpi": DEFAULT_DPI,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "image.interpolation": "nearest",
}

_WIDTH: contextvars.ContextVar[float | None] = contextvars.ContextVar("ufm_figure_width", default=None)
_DPI: contextvars.ContextVar[int | None] = contextvars.ContextVar("ufm_figure_dpi", default=None)

F = TypeVar("F", bound=Callable[..., Any])


def parse_width(value: str | float) -> float:
    """``"single"`` (3.3 in), ``"double"`` (6.9 in) or a width in inches in [1, 30]."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in WIDTHS:
            return WIDTHS[key]
        try:
            inches = float(key)
        except ValueError:
            raise ValueError(f"expected single, double or a width in inches, got {value!r}") from None
    else:
        inches = float(value)
    if not MIN_WIDTH <= inches <= MAX_WIDTH:  # also refuses nan
        raise ValueError(f"a width in inches must be in [{MIN_WIDTH:g}, {MAX_WIDTH:g}], got {value!r}")
    return inches


def parse_dpi(value: str | int) -> int:
    """A PNG resolution in dots per inch, an integer in [50, 1200]."""
    try:
        dpi = int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer number of dots per inch, got {value!r}") from None
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"must be in [{MIN_DPI}, {MAX_DPI}], got {value!r}")
    return dpi


@contextlib.contextmanager
def options(width: str | float | None = None, dpi: str | int | None = None) -> Iterator[None]:
    """Every figure made (width) and PNG saved (dpi) inside the block uses these; None keeps
    the defaults (single column for one panel, double for several; 300 dpi)."""
    tokens = (_WIDTH.set(None if width is None else parse_width(width)),
              _DPI.set(None if dpi is None else parse_dpi(dpi)))
    try:
        yield
    finally:
        _WIDTH.reset(tokens[0])
        _DPI.reset(tokens[1])


def figure_width(columns: int = 1) -> float:
    """The width a new figure takes: the one set by :func:`options`, else a single column for
    one panel across and a double column for more."""
    chosen = _WIDTH.get()
    if chosen is not None:
        return chosen
    return SINGLE_COLUMN if columns <= 1 else DOUBLE_COLUMN


def figure_size(columns: int = 1, aspect: float = 0.8, rows: int = 1, extra_height: float = 0.0,
                ) -> tuple[float, float]:
    """(width, height) of a figure of ``rows`` x ``columns`` panels each ``aspect`` times as high
    as wide, plus ``extra_height`` inches (titles, legends below)."""
    width = figure_width(columns)
    return width, min(rows * aspect * width / max(columns, 1) + extra_height, 3.0 * width)


def new_figure(columns: int = 1, aspect: float = 0.8, rows: int = 1, extra_height: float = 0.0) -> Figure:
    """A Figure of :func:`figure_size`, constrained layout (no pyplot: no GUI, no global state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figure_size(columns, aspect, rows, extra_height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.04, hspace=0.04)
    return fig


def styled(function: F) -> F:
    """Run a figure function inside the paper style's rc context; the titles of the Figure it
    returns wrap at the figure's edge (never cut off at a column's width)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context(PAPER_RC):
            result = function(*args, **kwargs)
        wrap_titles(result)
        return result

    return wrapper  # type: ignore[return-value]


def wrap_titles(fig: Any) -> None:
    """Titles of ``fig`` (its axes' and its suptitle) wrap at the figure's edge."""
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        return
    for ax in fig.axes:
        for text in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)):
            if text is not None:
                text.set_wrap(True)
    if getattr(fig, "_suptitle", None) is not None:
        fig._suptitle.set_wrap(True)


_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
#: file suffixes save_figure writes
FIGURE_SUFFIXES = tuple(_FORMATS)


def save_figure(fig: Figure, path: str | Path, dpi: int | None = None) -> None:
    """Write ``fig`` to ``path`` as PNG (``dpi``, else the one set by :func:`options`, else 300),
    PDF (TrueType fonts) or SVG (text as text), by its suffix, at the figure's own size, atomically
    (temporary file in the same folder, then rename: never a partial file)."""
    import matplotlib

    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"save_figure: unsupported suffix {path.suffix or '(none)'!r} of {str(path)!r}; "
                         f"use one of {', '.join(_FORMATS)}")
    kwargs: dict[str, Any] = {"format": fmt}
    if fmt == "png":
        kwargs["dpi"] = parse_dpi(dpi) if dpi is not None else (_DPI.get() or DEFAULT_DPI)
    if fmt == "svg":  # no date stamp: the same figure gives the same file
        kwargs["metadata"] = {"Date": None}
    elif fmt == "pdf":
        kwargs["metadata"] = {"CreationDate": None}
    with matplotlib.rc_context(PAPER_RC):
        fig.draw_without_rendering()  # constrained layout settles (equal-aspect panels with colour bars)
        atomic_write(path, lambda fh: fig.savefig(fh, **kwargs))
