"""Checks of single TOML values that the study tables share beside the declared options
(:mod:`experiments.options` checks those): each returns the normalised value or raises
:class:`UFMInputError` naming the key at fault.

The bottom layer of ``experiments/``: it imports no other module of the package, so that
:mod:`experiments.study`, :mod:`experiments.figures` and :mod:`experiments.network_study` can all
take their checks from here without importing one another.
"""

from __future__ import annotations

import difflib
import math

from ufm.errors import UFMInputError


def _key(table: str, key: str) -> str:
    return f"[{table}].{key}"


def suggest(word: str, choices, fmt="{!r}") -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {fmt.format(close[0])}?)" if close else ""


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def number(v, where: str, minimum: float, strict: bool) -> float:
    """A finite number (TOML integer or float, not a boolean) > or >= ``minimum``."""
    if not _is_number(v):
        raise UFMInputError(where, f"must be a number, got {v!r}")
    if not math.isfinite(v):
        raise UFMInputError(where, f"must be a finite number, got {v}")
    if (v <= minimum) if strict else (v < minimum):
        raise UFMInputError(where, f"must be {'>' if strict else '>='} {minimum:g}, got {v}")
    return float(v)


def integer(v, where: str, minimum: int, maximum: int | None = None) -> int:
    """An integer >= ``minimum`` (an integer-valued float such as 2.0 is accepted)."""
    if not _is_number(v) or not math.isfinite(v) or v != int(v):
        raise UFMInputError(where, f"must be an integer, got {v!r}")
    if v < minimum:
        raise UFMInputError(where, f"must be an integer >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise UFMInputError(where, f"must be an integer <= {maximum}, got {v}")
    return int(v)


def string(v, where: str) -> str:
    if not isinstance(v, str):
        raise UFMInputError(where, f"must be a string, got {v!r}")
    return v
