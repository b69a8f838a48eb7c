"""The results of a study (``ufm run``) as pandas DataFrames, in one call.

    >>> from ufm import experiments
    >>> points = experiments.load("results/dimension")            # one row per grid point
    >>> restarts = experiments.load_restarts("results/dimension") # one row per restart
    >>> points.groupby("tau")["best_gap"].min()

:func:`load` reads ``results.jsonl``, :func:`load_restarts` the restarts in it (studies with
``[verify]``), :func:`read_summary` reads ``summary.csv`` into the same column types as
:func:`load`. Only the files are read: this module imports neither the ``experiments`` package
nor the solvers, and pandas only when called (``pip install 'ufm[analysis]'``).

Column conventions (the same in all three frames):

- **Names.** ``point_id``, then each key of the point's ``params`` (its ``[problem]`` values:
  ``counts``, ``tau``, ``loss``, ``dim``, ``seed``, ...) under its own name, then the keys of the
  results line under their own names. Nested objects are flattened with dots:
  ``certificate.gap_bound``, ``optimum_certificate.certified``, ``timings.total``,
  ``loss_params.tau``, ``config.verify.restarts``, ``versions.torch``, ``machine.host``. An empty
  object gives no column; an object that is null on some points (``minibatch``) is missing there.
- **Types.** A column whose values are all booleans is ``bool`` (nullable ``boolean`` where some
  are missing); all integers: ``int64`` (nullable ``Int64`` where some are missing); numbers
  (integers and floats): ``float64``, with NaN where missing; strings: pandas' string dtype
  (pandas >= 3: ``str``, NaN where missing; before: ``object``). Lists stay Python lists in an
  ``object`` column: ``counts`` is a list of ints, ``class_gram`` a list of lists, ``minima`` a
  list of dicts. A column with nothing but nulls, or with mixed types, is ``object``.
- **Parameters echoed in the results** (``counts``, ``tau``, ``loss``, ``dim``, ``seed`` appear in
  ``params`` and again among the results) give one column. Where a point has no such parameter
  (a ``preset`` problem's counts) the result's value fills it in; a result that disagrees with
  its parameter (never seen in the shipped studies) is kept beside it as ``result.<key>``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from ufm.errors import UFMInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load", "load_restarts", "read_summary", "RESULTS_FILE", "SUMMARY_FILE"]

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.csv"
ANALYSIS_EXTRA = "pip install 'ufm[analysis]'"


def parse_results(data: bytes) -> tuple[dict[str, dict], int]:
    """The points of complete ``results.jsonl`` lines by ``point_id`` (a later line of a point
    replaces an earlier one) and how many lines are not a point."""
    rows: dict[str, dict] = {}
    bad = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("point_id"), str):
            bad += 1
            continue
        rows[row["point_id"]] = row
    return rows, bad


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError(f"ufm.experiments needs pandas: {ANALYSIS_EXTRA}") from None
    return pandas


# --------------------------------------------------------------------------- files


def _file(path: str | Path, name: str) -> Path:
    """``path`` itself if it is a file, ``path/name`` if it is a study's folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / name
        if not p.is_file():
            raise UFMInputError("path", f"no {name} in {p.parent} (write it with: ufm run STUDY --out "
                                        f"{p.parent})")
    elif not p.exists():
        raise UFMInputError("path", f"{p} does not exist")
    elif not p.is_file():
        raise UFMInputError("path", f"{p} is not a file or a folder")
    return p


def _lines(path: str | Path) -> list[dict]:
    """The points of ``results.jsonl`` as ``ufm run`` reads them: the last line of each
    ``point_id``, in order of first appearance; an incomplete last line (a run killed while
    writing it) is left out, and so are lines that are not a point (with a warning)."""
    file = _file(path, RESULTS_FILE)
    if file.name == SUMMARY_FILE:
        raise UFMInputError("path", f"{file} is a summary: read it with ufm.experiments.read_summary, "
                                    f"or load the {RESULTS_FILE} beside it")
    try:
        data = file.read_bytes()
    except OSError as err:
        raise UFMInputError("path", f"cannot read {file}: {err.strerror}") from None
    data = data[:data.rfind(b"\n") + 1]  # a line is complete once its newline is written
    rows, bad = parse_results(data)
    if not rows:
        raise UFMInputError("path", f"{file} holds no results of ufm run"
                                    + (f" ({bad} line(s) that are not a point)" if bad else ""))
    if bad:
        warnings.warn(f"{file}: {bad} line(s) that are not a point left out", stacklevel=3)
    return list(rows.values())


# --------------------------------------------------------------------------- columns


def _flatten(obj: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _column(pd, values: list) -> pd.Series:
    """One typed column (the conventions of the module docstring)."""
    present = [v for v in values if v is not None]
    missing = len(present) < len(values)
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean" if missing else bool)
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        try:
            return pd.Series(values, dtype="Int64" if missing else "int64")
        except (OverflowError, ValueError, TypeError):  # beyond 64 bits: kept as Python ints
            return pd.Series(values, dtype=object)
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    if present and all(isinstance(v, str) for v in present):
        return pd.Series(values)
    column = pd.Series([None] * len(values), dtype=object)
    for i, value in enumerate(values):  # one list per row (never spread into a 2-d array)
        column.iat[i] = value
    return column


def _frame(pd, rows: list[dict[str, Any]], first: tuple[str, ...] = ()) -> pd.DataFrame:
    """A DataFrame of flat rows: columns in order of first appearance (``first`` leading),
    typed by :func:`_column`. A key that is null on some rows and an object (flattened to
    ``key.*`` columns) on others gives no column of its own."""
    objects = {name[:i] for row in rows for name in row for i, c in enumerate(name) if c == "."}
    names = dict.fromkeys(first)
    for row in rows:
        names.update(dict.fromkeys(k for k, v in row.items() if not (v is None and k in objects)))
    return pd.DataFrame({name: _column(pd, [row.get(name) for row in rows]) for name in names})


def _point_row(line: dict) -> dict[str, Any]:
    row: dict[str, Any] = {"point_id": line["point_id"]}
    params = _flatten(line.get("params") or {})
    row.update(params)
    rest = {k: v for k, v in line.items()
            if k not in ("point_id", "params") and not (k == "restarts" and _is_records(v))}
    for key, value in _flatten(rest).items():
        if key not in params:
            row[key] = value
        elif value != params[key] and value is not None:
            row[f"result.{key}"] = value
    return row


# --------------------------------------------------------------------------- public


@overload
def load(path: str | Path, restarts: Literal[False] = ...) -> pd.DataFrame: ...
@overload
def load(path: str | Path, restarts: Literal[True]) -> tuple[pd.DataFrame, pd.DataFrame]: ...
@overload
def load(path: str | Path, restarts: bool) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]: ...


def load(path: str | Path, restarts: bool = False):
    """The points of a study: one row per grid point of ``results.jsonl``, in its order (the order
    the points finished: grid order for a run one point at a time, as in ``summary.csv``).

    ``path`` is the study's folder (``ufm run STUDY --out PATH``) or its ``results.jsonl``.
    Columns: ``point_id``, the point's parameters (``counts`` as a list of ints, ``tau`` float,
    ...), then every result key, nested objects flattened with dots (``certificate.gap_bound``,
    ``timings.total``, ``config.verify.restarts``) and typed as the module docstring says
    (``certified`` bool, ``rank`` int64, nullable ``Int64`` where some points have none). The
    per-restart records of a ``[verify]`` study are left out of this frame: they are
    :func:`load_restarts`'s rows; other lists (``counts``, ``class_gram``, ``minima``,
    ``notes``) stay Python lists.

    Every point of the file is there, also points of an earlier version of the study run into
    the same folder (other ``[solve]``/``[verify]`` options: other point ids), which
    ``summary.csv`` leaves out. With ``restarts=True``, returns ``(points, restarts)``.

    Raises :class:`ufm.errors.UFMInputError` for a path that holds no results, and ImportError
    without pandas (``pip install 'ufm[analysis]'``).
    """
    pd = _pandas()
    lines = _lines(path)
    points = _frame(pd, [_point_row(line) for line in lines], first=("point_id",))
    return (points, _restarts_frame(pd, lines)) if restarts else points


def load_restarts(path: str | Path) -> pd.DataFrame:
    """The restarts of a ``[verify]`` study: one row per restart of every point.

    Columns: ``point_id``, the point's parameters (as in :func:`load`), ``restart`` (its
    position in the point's list, from 0), then the restart's own keys flattened and typed as in
    :func:`load` (``value``, ``excess``, ``gap``, ``certified``, ``kind``, ``iterations``, ...).
    A parameter whose name a restart key also uses is joined as ``params.<name>``
    (``params.kind``: the problem's kind beside the restart's ``kind``, local_min or saddle).
    Join point results with ``restarts.merge(points[["point_id", "optimal_value"]],
    on="point_id")``. A study without restarts (no ``[verify]``, or a network study) gives an
    empty frame with the columns ``point_id`` and ``restart``.
    """
    pd = _pandas()
    return _restarts_frame(pd, _lines(path))


def _restarts_frame(pd, lines: list[dict]) -> pd.DataFrame:
    records = [(line, [_flatten(r) for r in line["restarts"]]) for line in lines
               if _is_records(line.get("restarts"))]
    taken = {"point_id", "restart"} | {k for _, rs in records for r in rs for k in r}
    rows = []
    for line, restarts in records:
        params = {(f"params.{k}" if k in taken else k): v
                  for k, v in _flatten(line.get("params") or {}).items()}
        for i, r in enumerate(restarts):
            rows.append({"point_id": line["point_id"], **params, "restart": i, **r})
    return _frame(pd, rows, first=("point_id",) if rows else ("point_id", "restart"))


_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|nan)")
_SPACED_INTS = re.compile(r"\d+( \d+)*")


def _summary_value(text: str) -> Any:
    """A summary.csv cell as the value it was written from (``experiments/runner.py``):
    empty is None, True/False booleans, ``[...]`` a JSON list, then ints, floats, strings."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def read_summary(path: str | Path) -> pd.DataFrame:
    """``summary.csv`` of a study (its folder or the file) with the column types of :func:`load`.

    The summary has the swept parameters, then the results columns, then ``time_s``, one row per
    point of the study's current grid, in grid order. Lists were written as JSON (``[10, 10, 2,
    2]``) and come back as lists (``counts`` as a list of ints; a summary written by an older
    ufm, with space-separated counts, too), booleans as ``True``/``False``, a missing value as an
    empty cell. ``loss_params``, where there is one, is the text ``tau=0.3 kernel=gaussian``
    (:func:`load` has the same values as ``loss_params.tau``, ``loss_params.kernel``, ...).
    """
    pd = _pandas()
    file = _file(path, SUMMARY_FILE)
    if file.name == RESULTS_FILE:
        raise UFMInputError("path", f"{file} holds the results: load them with ufm.experiments.load, "
                                    f"or read the {SUMMARY_FILE} beside it")
    try:
        with open(file, newline="", encoding="utf-8") as fh:
            table = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UFMInputError("path", f"cannot read {file} as a summary: {err}") from None
    if not table or not table[0]:
        raise UFMInputError("path", f"{file} is empty: not a summary.csv of ufm run")
    header, body = table[0], [r for r in table[1:] if r]
    if any(len(r) != len(header) for r in body):
        raise UFMInputError("path", f"{file}: rows of another length than the header: not a summary.csv")
    rows = [{name: _summary_value(cell) for name, cell in zip(header, r, strict=True)} for r in body]
    for row in rows:  # an older ufm joined counts with spaces: "10 10 2 2"
        counts = row.get("counts")
        if isinstance(counts, str) and _SPACED_INTS.fullmatch(counts):
            row["counts"] = [int(c) for c in counts.split()]
        elif isinstance(counts, int) and "counts" in header:
            row["counts"] = [counts]
    return _frame(pd, rows, first=tuple(header))
