"""The README's table of losses, generated from the loss classes' declarations (name, formula,
``formula_note``, params, ``floor_text``, ``convex_in_gram``, ``convexity_note``, the relaxation and
``minorant_text``, ``scalar_objective`` with ``dynamics_text`` and ``fixed_point_program``,
``floor_attainable``, source): the declarations are its single source.

``python -m ufm.losses.catalogue`` prints the table; ``--write README.md`` replaces the table
between the README's markers (``tests/test_catalogue.py`` checks that the two agree).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from ufm.losses.base import Loss

#: the README's markers around the table, with the blank lines that keep the end marker out of the
#: table (a line right after a table's rows is read as one more row)
BEGIN, END = "<!-- losses:begin -->\n\n", "\n<!-- losses:end -->"

HEADER = ("`--loss`", "formula (per anchor i unless said)", "parameters (defaults)", "floor", "convex in G",
          "commands", "source")


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def _parameters(cls: type[Loss]) -> str:
    flags = [f"`{p.flag}` {_value(p.default)}" for p in cls.params]
    if cls.default_reduction != "sum":
        flags.append(f"`--reduction` {cls.default_reduction}")
    return ", ".join(flags) or "none"


def _floor(cls: type[Loss]) -> str:
    """The floor in words; where a choice parameter changes it, one entry per choice."""
    for p in cls.params:
        if p.kind == "choice":
            by_text: dict[str, list[str]] = {}
            for choice in p.choices:
                by_text.setdefault(cls(**{p.name: choice}).floor_text, []).append(f"`{choice}`")
            if len(by_text) > 1:
                return "; ".join(f"{', '.join(choices)}: {text}" for text, choices in by_text.items())
    return cls().floor_text


def _convex(loss: Loss) -> str:
    text = "yes" if loss.convex_in_gram else "**no**"
    if not loss.has_relaxation:
        text += " (no relaxation, no certificate)"
    return f"{text}: {loss.convexity_note}" if loss.convexity_note else text


def _commands(loss: Loss) -> str:
    if not loss.has_relaxation:
        return "verify (census only)"
    how = []
    if not loss.scalar_objective:
        how.append(f"coordinate-wise dynamics ({loss.dynamics_text}); certified = a global optimum of its "
                   f"own {loss.fixed_point_program}")
    if loss.relaxation() is not loss:
        how.append(f"certificate of {loss.minorant_text}, plus the gap to it")
    if loss.floor_attainable:
        how.append("certificate on an absolute gap at the floor")
    return "solve, verify, certify" + (f" ({'; '.join(how)})" if how else "")


def row(cls: type[Loss]) -> list[str]:
    """The table's cells for one loss class (its declarations, and an instance at its defaults)."""
    loss = cls()
    formula = f"{cls.formula}; {cls.formula_note}" if cls.formula_note else cls.formula
    return [f"`{cls.name}`", formula, _parameters(cls), _floor(cls), _convex(loss), _commands(loss),
            cls.source]


def markdown_table(losses: Iterable[type[Loss]] | None = None) -> str:
    """The markdown table of ``losses`` (default: every registered loss, :data:`ufm.losses.LOSSES`)."""
    if losses is None:
        from ufm.losses import LOSSES

        losses = LOSSES.values()
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row(cls)) + " |" for cls in losses]
    return "\n".join(lines) + "\n"


def region(text: str) -> str:
    """The text between the markers (the README's table)."""
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:stop]


def replace_region(text: str, table: str) -> str:
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + table + text[stop:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ufm.losses.catalogue",
                                     description="Print the loss table generated from the declarations.")
    parser.add_argument("--write", metavar="README", help="replace the table between the markers "
                        f"{BEGIN.strip()} and {END.strip()} of this file instead")
    args = parser.parse_args(argv)
    if args.write is None:
        print(markdown_table(), end="")
        return 0
    path = Path(args.write)
    path.write_text(replace_region(path.read_text(encoding="utf-8"), markdown_table()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
