"""Errors raised for bad user input.

Every error names the argument at fault, so that the CLI can print it as one line
(``ufm solve: error: --tau: must be > 0, got -1``) and exit non-zero.
"""

from __future__ import annotations


class UFMInputError(ValueError):
    """Invalid user input; ``argument`` names the offending argument (CLI spelling)."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        self.message = message
        super().__init__(f"{argument}: {message}")

    def __reduce__(self):  # picklable: it crosses process boundaries (ufm run --jobs, Dask)
        return type(self), (self.argument, self.message)


def check_choice(value: str, choices, argument: str, what: str) -> str:
    """``value`` if it is one of ``choices``, else a UFMInputError naming ``argument``."""
    if value not in choices:
        raise UFMInputError(argument, f"unknown {what} {value!r} (choose from {', '.join(choices)})")
    return value
