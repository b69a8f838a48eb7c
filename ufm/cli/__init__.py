"""Command line: ``ufm solve | verify | certify | run | plot | network`` (see ``ufm --help``).

The top layer of the project: it may import ``solvers`` and ``experiments``; nothing imports it.
``--json`` prints exactly one JSON object on stdout; progress goes to stderr. Bad input ends
with a one-line error naming the argument and exit status 2, never a traceback, never a
partial output file.

Modules: ``parser`` (the options), ``commands`` (what each command does), ``report`` (tables of
the JSON payloads), ``plot`` (``ufm plot``'s figures), ``network`` (``ufm network``).
"""

from __future__ import annotations

import sys

from ufm import progress
from ufm.cli.commands import (
    cmd_certify,
    cmd_losses,
    cmd_network,
    cmd_plot,
    cmd_run,
    cmd_solve,
    cmd_verify,
    option,
)
from ufm.cli.parser import COMMAND_OPTIONS, EXIT_FAILURE, EXIT_INPUT, build_parser, flag_of
from ufm.errors import UFMInputError

__all__ = ["main", "build_parser"]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _apply_threads(args, command: str) -> None:
    """``--threads N``: this process computes with N threads (``ufm run``: with --jobs, each worker);
    without it, with the cores that other work leaves idle (``ufm.threads.default_threads``)."""
    table = COMMAND_OPTIONS.get(command, {})
    if "threads" not in table:
        return
    from ufm.threads import default_threads, limit_threads

    asked = getattr(args, "threads", None) is not None
    threads = option(args, table, "threads") if asked else default_threads()
    if threads is not None:
        limit_threads(threads)


def _figure_style(args, command: str):
    """``--width`` and ``--dpi``: the size and resolution of every figure the command draws
    (checked before any work; with ``--plot``, only where a figure is drawn)."""
    import contextlib

    from ufm.options import DPI_OPTION

    width, dpi = getattr(args, "width", None), getattr(args, "dpi", None)
    if width is None and dpi is None:
        return contextlib.nullcontext()
    if "plot" in COMMAND_OPTIONS.get(command, {}) and getattr(args, "plot", None) is None:
        raise UFMInputError("--width" if width is not None else "--dpi",
                            "needs --plot FILE (it sizes that figure)")
    from ufm.plotting.style import options, parse_width

    if width is not None:
        try:
            parse_width(width)
        except ValueError as err:
            raise UFMInputError("--width", str(err)) from None
    return options(width=width, dpi=DPI_OPTION.parse(dpi))


def main(argv=None) -> int:
    command = None
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as stop:  # --help and --version print, then stop argparse
            return stop.code if isinstance(stop.code, int) else 0
        commands = {"solve": cmd_solve, "verify": cmd_verify, "certify": cmd_certify, "run": cmd_run,
                    "plot": cmd_plot, "network": cmd_network, "losses": cmd_losses}
        command = args.command
        _apply_threads(args, command)
        with _figure_style(args, command), progress.switched(not getattr(args, "quiet", False)):
            return commands[command](args)
    except UFMInputError as err:  # a library parameter (restarts) as the user wrote it (--restarts)
        print(f"ufm: error: {_one_line(f'{flag_of(err.argument, command)}: {err.message}')}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("ufm: interrupted", file=sys.stderr)
        return 130
    except MemoryError as err:
        print(f"ufm: error: out of memory ({_one_line(err) or 'MemoryError'})", file=sys.stderr)
        return EXIT_FAILURE
    except (RuntimeError, OSError) as err:
        print(f"ufm: error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
