"""Progress inside long work: tqdm bars on stderr.

A bar is drawn only when progress is switched on (the command line does, unless ``--quiet``) and
stderr is a terminal; library calls, tests, pipes and worker processes stay silent. A bar appears
after :data:`DELAY` seconds, so short work draws nothing, and it is erased when the work ends
(``leave=False``): what remains on stderr are the lines the commands print. tqdm is imported only
when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import sys

#: seconds of work before a bar appears
DELAY = 1.0
#: least seconds between two redraws
MININTERVAL = 0.2

_on = False


@contextlib.contextmanager
def switched(on: bool):
    """Within the block, draw bars (when stderr is a terminal) or not; off by default, and as it
    was after the block."""
    global _on
    before, _on = _on, bool(on)
    try:
        yield
    finally:
        _on = before


def shown() -> bool:
    """Whether a bar would be drawn now."""
    if not _on:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class _Silent:
    """The bar's interface, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def set_description_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(desc: str, total: float | None = None, unit: str = "it", delay: float | None = None,
        when: bool = True):
    """A tqdm bar on stderr (``update``, ``set_postfix_str``, ``close``; a context manager), or a
    silent stand-in when no bar is shown (or ``when`` is false). ``total`` None: a counter."""
    if not (when and shown()):
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                delay=DELAY if delay is None else delay, dynamic_ncols=True, mininterval=MININTERVAL)


def write(line: str) -> None:
    """One line on stderr that does not break a bar being drawn."""
    if shown():
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)
        sys.stderr.flush()
    else:
        print(line, file=sys.stderr, flush=True)
