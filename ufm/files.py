"""Output files: written whole (temporary file, then rename) with the user's umask."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def file_mode() -> int:
    """Mode of a newly created file under the current umask (0o666 & ~umask)."""
    old = os.umask(0)
    os.umask(old)
    return 0o666 & ~old


def atomic_write(path: Path, write) -> None:
    """``write(fh)`` into a temporary file in the same folder, then rename onto ``path``: never a
    partial file, no temporary file left behind, mode ``0o666 & ~umask`` (a bare
    ``tempfile.mkstemp`` would leave 0o600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
