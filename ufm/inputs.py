"""Reading and validating what users hand the command line, before any work is done.

Every function here either returns a clean value or raises :class:`UFMInputError` naming the
argument (or file) at fault, with a one-line reason: the CLI prints it as
``ufm: error: <argument>: <what is wrong>`` and exits with status 2. Files are untrusted: any
exception numpy, torch, zipfile or pickle raise while reading one becomes such an error.

- counts: ``--counts 10,10,2,2`` (numbers separated by commas or spaces), a preset
  (:data:`PRESETS`, :func:`preset_counts`), or ``--counts-file FILE``;
- labels (``.npy`` or text; numbers where every token is a number, else strings; a CSV
  of several columns needs ``--label-column``; a header line is skipped, with a note) and
  embeddings (``.npy``, ``.npz``, ``.pt``);
- scalars (:func:`integer`, :func:`positive_int`), the ``--out`` directory, and estimates
  of the memory ``ufm verify`` / ``ufm certify`` / ``ufm solve`` would need, checked against
  what the machine has.
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from importlib import resources
from pathlib import Path

import numpy as np

from ufm.errors import UFMInputError
from ufm.samples import MAX_SAMPLES, Samples, balanced_batches, parse_counts, random_batches

__all__ = [
    "PRESETS", "preset_counts", "read_counts", "read_counts_file", "parse_labels_text",
    "read_labels", "label_samples", "print_notes", "read_embeddings", "existing_file", "integer",
    "positive_int",
    "prepare_out", "available_memory", "check_memory", "format_bytes",
    "verify_memory", "certify_memory", "solve_memory", "read_batches",
]

# ---------------------------------------------------------------------------------------------
# long-tailed presets


def _exponential_profile(n_max: int, k: int, rho: float = 100.0) -> tuple[int, ...]:
    """n_c = floor(n_max * rho^(-c/(k-1))), c = 0..k-1 (Cui et al. 2019; Cao et al. 2019)."""
    return tuple(math.floor(n_max * rho ** (-c / (k - 1))) for c in range(k))


def _bundled(name: str) -> tuple[int, ...]:
    text = resources.files("ufm").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(int(t) for t in text.split())


#: long-tailed benchmark counts by name: CIFAR-10-LT / CIFAR-100-LT by their formula with
#: imbalance ratio 100; ImageNet-LT and Places-LT from their per-class training counts
#: (``ufm/data/*.txt``, in the benchmark's label order)
PRESETS: dict[str, Callable[[], tuple[int, ...]]] = {
    "cifar10-lt": lambda: _exponential_profile(5000, 10),
    "cifar100-lt": lambda: _exponential_profile(500, 100),
    "imagenet-lt": lambda: _bundled("imagenet_lt_counts.txt"),
    "places-lt": lambda: _bundled("places_lt_counts.txt"),
}


def preset_counts(name: str, argument: str = "--counts") -> tuple[int, ...]:
    """Class counts of a long-tailed benchmark (:data:`PRESETS`; case-insensitive)."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise UFMInputError(argument, f"unknown preset {name!r} (presets: {', '.join(PRESETS)})")
    return PRESETS[key]()


# ---------------------------------------------------------------------------------------------
# counts

_SEPARATORS = re.compile(r"[,\s]+")


def read_counts(text: str, argument: str = "--counts") -> tuple[int, ...]:
    """``--counts``: a preset name, or class sizes separated by commas or spaces."""
    stripped = text.strip()
    if stripped.lower() in PRESETS:
        return preset_counts(stripped, argument)
    tokens = [t for t in _SEPARATORS.split(stripped) if t]
    if len(tokens) == 1 and re.search(r"[A-Za-z]", stripped) and not _is_number(stripped):
        raise UFMInputError(argument, f"unknown preset {stripped!r} (presets: {', '.join(PRESETS)}; "
                            "or class sizes such as 10,10,2,2)")
    return parse_counts(stripped, argument)


def read_counts_file(path: str, argument: str = "--counts-file") -> tuple[int, ...]:
    """``--counts-file``: class sizes separated by spaces, commas or newlines."""
    p = existing_file(path, argument)
    try:
        return parse_counts(_read_text(p, argument), argument)
    except UFMInputError as err:
        if err.message.startswith(str(p)):
            raise
        raise UFMInputError(argument, f"{p}: {err.message}") from None


# ---------------------------------------------------------------------------------------------
# files

def existing_file(path: str, argument: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise UFMInputError(argument, f"is a directory, not a file: {path}")
    if not p.is_file():
        raise UFMInputError(argument, f"no such file: {path}")
    return p


def _reason(err: BaseException) -> str:
    """One line from a library's exception (torch's can run over many lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(text) > 100 and ". " in text:
        text = text[:text.index(". ") + 1]  # the first sentence
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _read_text(p: Path, argument: str) -> str:
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UFMInputError(argument, f"{p}: not a text file (not UTF-8)") from None
    except OSError as err:
        raise UFMInputError(argument, f"cannot read {p}: {err.strerror or _reason(err)}") from None


def _magic(p: Path, argument: str, size: int = 8) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(size)
    except OSError as err:
        raise UFMInputError(argument, f"cannot read {p}: {err.strerror or _reason(err)}") from None


def _check_header(p: Path, argument: str, magic: bytes = b"", wrong: str = "") -> None:
    """The file is not empty and, if ``magic`` is given, starts with it (else: ``wrong``)."""
    head = _magic(p, argument)
    if not head:
        raise UFMInputError(argument, f"{p}: empty file")
    if magic and not head.startswith(magic):
        raise UFMInputError(argument, f"{p}: {wrong}")


def _load_npy(p: Path, argument: str) -> np.ndarray:
    """A .npy array, memory-mapped first so that its shape and dtype are checked (and a
    truncated file is caught) before the data are read."""
    _check_header(p, argument, b"\x93NUMPY", "not a .npy file (no NumPy header)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - an untrusted file: anything it raises is bad input
        if "Python objects" in str(err) or "pickled" in str(err):
            raise UFMInputError(argument, f"{p}: holds Python objects (object dtype), not numbers or "
                                "strings") from None
        raise UFMInputError(argument, f"cannot read {p} as .npy (truncated or corrupt): "
                            f"{_reason(err)}") from None


def _load_npz(p: Path, argument: str) -> np.ndarray:
    _check_header(p, argument, b"PK", "not a .npz file (not a zip archive)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.load(p, allow_pickle=False) as z:
                if not z.files:
                    raise UFMInputError(argument, f"{p}: the .npz holds no array")
                key = next((k for k in ("embeddings", "H") if k in z.files), z.files[0])
                return z[key]
    except UFMInputError:
        raise
    except Exception as err:  # noqa: BLE001 - an untrusted file
        if "Object arrays" in str(err) or "pickled" in str(err):
            raise UFMInputError(argument, f"{p}: holds Python objects (object dtype), not numbers") from None
        raise UFMInputError(argument, f"cannot read {p} as .npz (truncated or corrupt): "
                            f"{_reason(err)}") from None


def _load_pt(p: Path, argument: str) -> np.ndarray:
    _check_header(p, argument)
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - an untrusted file
        raise UFMInputError(argument, f"cannot read {p} as .pt (truncated or corrupt, or not a tensor "
                            f"or a dict of tensors): {_reason(err)}") from None
    if isinstance(obj, dict):
        obj = next((v for v in obj.values() if isinstance(v, torch.Tensor)), None)
    if not isinstance(obj, torch.Tensor):
        raise UFMInputError(argument, f"{p}: no tensor in the file (expected a tensor or a dict of tensors)")
    if obj.is_complex():
        raise UFMInputError(argument, f"{p}: complex values ({obj.dtype}); embeddings must be real")
    ints = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    if not (obj.is_floating_point() or obj.dtype in ints):
        raise UFMInputError(argument, f"{p}: unsupported dtype {obj.dtype}; embeddings must be real numbers")
    try:
        return obj.detach().to(torch.float64).contiguous().numpy()
    except Exception as err:  # noqa: BLE001 - sparse or otherwise unusual tensors
        raise UFMInputError(argument, f"{p}: cannot convert the tensor: {_reason(err)}") from None


def _real_array(a: np.ndarray, p: Path, argument: str, what: str) -> np.ndarray:
    """float64 copy of a real numeric array; complex, strings, objects and the like rejected."""
    kind = a.dtype.kind
    if kind == "c":
        raise UFMInputError(argument, f"{p}: complex values ({a.dtype}); {what} must be real")
    if kind not in "fiu":
        raise UFMInputError(argument, f"{p}: unsupported dtype {a.dtype}; {what} must be real numbers")
    try:
        return np.array(a, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - e.g. a truncated memory-mapped file
        raise UFMInputError(argument, f"cannot read {p}: {_reason(err)}") from None


def read_embeddings(path: str, argument: str = "--embeddings") -> np.ndarray:
    """(n, d) float64 embeddings from ``.npy``, ``.npz`` (key ``embeddings``, ``H`` or the first
    array) or ``.pt`` (a tensor, or the first tensor of a dict); finite, real, n, d >= 1."""
    p = existing_file(path, argument)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        a = _load_npy(p, argument)
    elif suffix == ".npz":
        a = _load_npz(p, argument)
    elif suffix == ".pt":
        a = _load_pt(p, argument)
    else:
        raise UFMInputError(argument, f"{p}: unknown file type {p.suffix!r} (expected .npy, .npz or .pt)")
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise UFMInputError(argument, f"{p}: expected an (n, d) array with n, d >= 1, got shape {a.shape}")
    if a.dtype.kind in "fiu":
        check_memory(a.shape[0] * a.shape[1] * 8 * 3, argument, f"reading {a.shape[0]} x {a.shape[1]} "
                     "embeddings in float64")
    H = _real_array(a, p, argument, "embeddings")
    bad = ~np.isfinite(H)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise UFMInputError(argument, f"{p}: {int(bad.sum())} NaN or infinite value(s), the first at "
                            f"row {i}, column {j}")
    return H


# ---------------------------------------------------------------------------------------------
# labels

_FINITE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NONFINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
_INT = re.compile(r"[+-]?\d{1,18}")


def _is_number(token: str) -> bool:
    return bool(_FINITE.fullmatch(token) or _NONFINITE.fullmatch(token))


def _tokens(line: str) -> list[str]:
    out = []
    for t in _SEPARATORS.split(line):
        if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
            t = t[1:-1].strip()  # a quoted CSV field
        if t:
            out.append(t)
    return out


class _Fields(csv.excel):
    """Fields already split (by :func:`_tokens`) and joined with commas: no quoting."""

    quoting = csv.QUOTE_NONE
    escapechar = "\\"


class _FieldSniffer(csv.Sniffer):
    """csv.Sniffer's header vote on fields ufm has split itself (its own sniff of the delimiter
    fails on a single column)."""

    def sniff(self, sample, delimiters=None):
        return _Fields


#: rows csv.Sniffer looks at (it votes on the header against at most 21 rows below it)
_SNIFF_ROWS = 22


def _sniffer_header(rows: list[list[str]]) -> bool:
    """csv.Sniffer().has_header on the first rows (a first line whose fields differ in type or
    length from the columns below it)."""
    sample = "\n".join(",".join(f.replace("\\", "\\\\").replace(",", "\\,") for f in r)
                       for r in rows[:_SNIFF_ROWS]) + "\n"
    try:
        return bool(_FieldSniffer().has_header(sample))
    except (csv.Error, ValueError, TypeError):
        return False


def _has_header(rows: list[list[str]]) -> bool:
    """Whether the first of these rows (all of one width, at least two rows) names the columns:
    not a row of numbers, and either a column holds a word above numbers only, or csv.Sniffer
    judges it a header."""
    first, rest = rows[0], rows[1:]
    if not rest or all(map(_is_number, first)):
        return False
    for j, name in enumerate(first):
        if not _is_number(name) and all(_is_number(r[j]) for r in rest):
            return True
    return _sniffer_header(rows)


def _shown(line: str, limit: int = 60) -> str:
    line = line.strip()
    return repr(line if len(line) <= limit else line[:limit - 3] + "...")


def _column_index(column: str, names: list[str] | None, width: int, where: str,
                  column_argument: str) -> int:
    """The 0-based index of ``column`` (a header name, else an integer index < width)."""
    indices = "index 0" if width == 1 else f"an index 0 to {width - 1}"
    if names is not None:
        listing = f"columns {', '.join(names)} (or {indices})"
    else:
        listing = f"{width} column{'s' if width > 1 else ''}, no header line: {indices}"
    text = str(column).strip()
    if names is not None and text in names:
        return names.index(text)
    if re.fullmatch(r"\+?\d{1,18}", text):
        j = int(text)
        if j < width:
            return j
        raise UFMInputError(column_argument, f"index {j} out of range: {where}{listing}")
    raise UFMInputError(column_argument, f"no column {text!r}: {where}{listing}")


def parse_labels_text(text: str, argument: str = "--labels", source: str = "", column: str | None = None,
                      notes: list | None = None, column_argument: str = "--label-column") -> np.ndarray:
    """Labels from text: one label per line, or labels separated by spaces, commas, tabs or
    newlines, or a table (CSV) of which ``column`` (a header name or a 0-based index) holds them.

    Numbers when every label parses as a number ("1" and "1.0" are one class; int64 when all
    are integers, classes then ordered numerically), strings otherwise. A table (two lines or
    more of the same number of fields, two or more) needs ``column``. A first line is a header,
    and skipped, when it names the columns: a word above numbers only, or a first line
    csv.Sniffer judges a header (fields of another type or length than the column below), or
    the line that holds the ``column`` name; a line skipped so is said in ``notes`` (a list
    the note is appended to). A single line of distinct words is a header with no labels.
    """
    where = f"{source}: " if source else ""
    numbered = [(no, line, _tokens(line)) for no, line in enumerate(text.splitlines(), start=1)]
    numbered = [item for item in numbered if item[2]]
    rows = [r for _, _, r in numbered]
    if not rows:
        raise UFMInputError(argument, f"{where}no labels in the file")
    first = rows[0]
    if len(rows) == 1:
        if not any(map(_is_number, first)) and len(set(first)) == len(first):
            raise UFMInputError(argument, f"{where}no labels: only a header line ({', '.join(first)})")
        if column is not None:
            _column_index(column, None, 1, where, column_argument)
        return _label_values(first, argument, where)
    width = len(first)
    table = width >= 2 and (all(len(r) == width for r in rows)
                            or (not any(map(_is_number, first)) and len(set(first)) == width))
    if table or width == 1 and all(len(r) == 1 for r in rows):
        for no, _, r in numbered[1:]:
            if len(r) != width:
                raise UFMInputError(argument, f"{where}line {no} has {len(r)} field(s), the first line "
                                    f"{width} ({', '.join(first)})")
        header = _has_header(rows)
        if (column is not None and not header and str(column).strip() in first
                and not re.fullmatch(r"\+?\d+", str(column).strip()) and not all(map(_is_number, first))):
            header = True  # the column named is in the first line: it is a header
        names = first if header else None
        if column is None and width >= 2:
            columns = (f"{width} columns: {', '.join(first)}" if header
                       else f"{width} columns, no header line")
            raise UFMInputError(argument, f"{where}{columns}; choose the labels with {column_argument} "
                                "NAME|INDEX (0-based)")
        j = 0 if column is None else _column_index(column, names, width, where, column_argument)
        data = rows[1:] if header else rows
        if header and notes is not None:
            of = f"; labels from column {first[j]!r}" if width >= 2 else ""
            notes.append(f"{argument}: {where}header line {_shown(numbered[0][1])} skipped{of}")
        return _label_values([r[j] for r in data], argument, where)
    # labels written across lines (rows of different lengths): every token is a label
    if column is not None:
        _column_index(column, None, 1, where, column_argument)
    flat = [t for r in rows for t in r]
    rest = flat[len(first):]
    if not all(map(_is_number, first)) and all(map(_is_number, rest)):
        flat = rest  # header line
        if notes is not None:
            notes.append(f"{argument}: {where}header line {_shown(numbered[0][1])} skipped")
    return _label_values(flat, argument, where)


def _label_values(flat: list[str], argument: str, where: str) -> np.ndarray:
    """Numbers when every label is a number, else strings."""
    if not flat:
        raise UFMInputError(argument, f"{where}no labels in the file")
    if not all(map(_is_number, flat)):
        return np.array(flat)
    if all(_INT.fullmatch(t) for t in flat):
        return np.array(flat).astype(np.int64)
    values = np.array(flat).astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise UFMInputError(argument, f"{where}label {flat[int(np.argmax(bad))]!r} is not a finite number")
    distinct = np.unique(np.array(flat))
    if len({Decimal(t) for t in distinct.tolist()}) != np.unique(values).size:
        raise UFMInputError(argument, f"{where}numeric labels that differ only beyond float64 precision")
    return _integral(values)


def _integral(values: np.ndarray) -> np.ndarray:
    """int64 when every value is an integer that float64 holds exactly, else float64."""
    if np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        return values.astype(np.int64)
    return values


def read_labels(path: str, argument: str = "--labels", column: str | None = None,
                notes: list | None = None, column_argument: str = "--label-column") -> np.ndarray:
    """A label vector from ``.npy`` (numbers or strings; shape (n,), (n, 1) or (1, n)) or text
    (:func:`parse_labels_text`: ``column`` picks the column of a table, a header line skipped
    is said in ``notes``). A ``.npy`` vector is one column: ``column``, if given, must be 0."""
    p = existing_file(path, argument)
    if p.suffix.lower() == ".npy":
        y = _load_npy(p, argument)
        if y.ndim != 1 and not (y.ndim == 2 and 1 in y.shape):
            raise UFMInputError(argument, f"{p}: expected a vector of labels, got shape {y.shape}")
        if column is not None:
            _column_index(column, None, 1, f"{p} (a label vector): ", column_argument)
        kind = y.dtype.kind
        if kind == "c":
            raise UFMInputError(argument, f"{p}: complex labels ({y.dtype})")
        if kind not in "biufUS":
            raise UFMInputError(argument, f"{p}: unsupported dtype {y.dtype} for labels")
        try:
            y = np.array(y).ravel()
            if kind == "S":
                y = np.char.decode(y, "utf-8")
        except Exception as err:  # noqa: BLE001 - truncated data, undecodable bytes
            raise UFMInputError(argument, f"cannot read {p}: {_reason(err)}") from None
        if y.size == 0:
            raise UFMInputError(argument, f"{p}: no labels in the file")
        if kind == "f":
            bad = ~np.isfinite(y)
            if bad.any():
                raise UFMInputError(argument, f"{p}: {int(bad.sum())} NaN or infinite label(s)")
            y = _integral(y)
        return y
    return parse_labels_text(_read_text(p, argument), argument, str(p), column, notes, column_argument)


def label_samples(path: str, column: str | None = None, argument: str = "--labels",
                  column_argument: str = "--label-column") -> Samples:
    """Samples of the labels in a file (:func:`read_labels`), with the notes on how it was read
    (a header line skipped) in ``notes``."""
    notes: list[str] = []
    y = read_labels(path, argument, column, notes, column_argument)
    return replace(Samples.from_labels(y, argument), notes=tuple(notes))


def print_notes(samples: Samples, file=None) -> None:
    """Every note of the samples (a header line skipped, samples in no batch) as one line
    ``ufm: note: ...`` on stderr."""
    for note in samples.all_notes:
        print(f"ufm: note: {note}", file=file or sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# mini-batches

#: most batches a file or a specification may give (each is evaluated on its own)
MAX_BATCHES = 100_000


def read_batches(spec: str, samples: Samples, seed: int = 0, argument: str = "--batches") -> Samples:
    """``samples`` with the mini-batches of ``spec``: ``random:B`` or ``balanced:B`` (generated
    with ``seed``), or a file: JSON (a list of index lists) or text (one batch per line, indices
    separated by spaces or commas). Indices are 0-based positions in the samples as the user gave
    them (the label file's rows, or a V + v for instances x views); each batch holds at least two
    distinct samples."""
    text = spec.strip()
    m = re.fullmatch(r"(random|balanced):(.+)", text)
    if m:
        size = integer(m.group(2), argument, 1, MAX_SAMPLES)
        make = random_batches if m.group(1) == "random" else balanced_batches
        batches = make(samples, size, seed, argument)
        return samples.with_batches(batches, f"{m.group(1)}:{size} (seed {seed})")
    head = text.split(":")[0]
    if ":" in text and not Path(text).exists() and head in ("rand", "random", "balance", "balanced"):
        raise UFMInputError(argument, f"expected random:B, balanced:B or a file, got {spec!r}")
    p = existing_file(text, argument)
    raw = _read_text(p, argument)
    if p.suffix.lower() == ".json":
        import json

        try:
            data = json.loads(raw)
        except ValueError as err:
            raise UFMInputError(argument, f"{p}: not valid JSON: {err}") from None
        if not isinstance(data, list) or not all(isinstance(b, list) for b in data):
            raise UFMInputError(argument, f"{p}: expected a JSON list of index lists")
        for b, row in enumerate(data, start=1):
            for v in row:  # JSON numbers only: "0" is text, true is not 1
                if isinstance(v, bool) or not isinstance(v, int):
                    what = "a JSON string, not an integer" if isinstance(v, str) else "not an integer"
                    raise UFMInputError(argument, f"{p}: batch {b}: index {json.dumps(v)} is {what} "
                                        "(indices are JSON numbers, e.g. [[0, 1], [2, 3]])")
        rows = [[str(v) for v in b] for b in data]
    else:
        rows = [[t for t in _SEPARATORS.split(line.strip()) if t] for line in raw.splitlines()]
        rows = [r for r in rows if r]
    if not rows:
        raise UFMInputError(argument, f"{p}: no batches in the file")
    if len(rows) > MAX_BATCHES:
        raise UFMInputError(argument, f"{p}: {len(rows)} batches; at most {MAX_BATCHES}")
    batches = []
    for b, row in enumerate(rows, start=1):
        idx = []
        for t in row:
            if not re.fullmatch(r"[+-]?\d{1,18}", t):
                raise UFMInputError(argument, f"{p}: batch {b}: index {t!r} is not an integer")
            v = int(t)
            if not 0 <= v < samples.n:
                raise UFMInputError(argument, f"{p}: batch {b}: index {v} out of range "
                                    f"(0 to {samples.n - 1})")
            idx.append(v)
        if len(set(idx)) != len(idx):
            raise UFMInputError(argument, f"{p}: batch {b}: a sample appears twice")
        if len(idx) < 2:
            raise UFMInputError(argument, f"{p}: batch {b}: a batch needs at least two samples")
        batches.append(samples.user_positions(idx))  # the user's indices, mapped to class order
    return samples.with_batches(batches, str(p))


# ---------------------------------------------------------------------------------------------
# scalars

def integer(text, argument: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum] from text ("12", "1e3", "8.0")."""
    s = str(text).strip()
    if re.fullmatch(r"[+-]?\d+", s) and len(s.lstrip("+-")) <= 30:
        value = int(s)
    else:
        try:
            f = float(s)
        except ValueError:
            raise UFMInputError(argument, f"not a number: {text!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise UFMInputError(argument, f"must be an integer, got {text}")
        value = int(f)
    bound = f" and <= {maximum}" if maximum is not None else ""
    if value < minimum or (maximum is not None and value > maximum):
        raise UFMInputError(argument, f"must be an integer >= {minimum}{bound}, got {text}")
    return value


def positive_int(text, argument: str, maximum: int | None = MAX_SAMPLES) -> int:
    return integer(text, argument, 1, maximum)


# ---------------------------------------------------------------------------------------------
# output directory

def prepare_out(path: str | None, argument: str = "--out") -> Path | None:
    """The output directory, created if need be and checked to be writable (by writing a
    probe file), before any work is done."""
    if path is None:
        return None
    if not str(path).strip():
        raise UFMInputError(argument, "empty path")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UFMInputError(argument, f"exists and is not a directory: {path}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UFMInputError(argument, f"{parent} is a file, not a directory: cannot create {path}")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UFMInputError(argument, f"cannot create {path}: {err.strerror or _reason(err)}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UFMInputError(argument, f"not writable: {path}")
    probe = out / f".ufm-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UFMInputError(argument, f"not writable: {path} ({err.strerror or _reason(err)})") from None
    return out


# ---------------------------------------------------------------------------------------------
# memory

def format_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(b) < 1024 or unit == "PiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} PiB"  # pragma: no cover


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    """Room left under a container's memory limit (cgroup v2, else v1), if there is one."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 2**60:
                return None
            return max(int(limit) - int(Path(usage_file).read_text().strip()), 0)
        except (OSError, ValueError):
            continue
    return None


def available_memory() -> int | None:
    """Bytes of memory available to this process: /proc/meminfo MemAvailable (bounded by a
    cgroup limit), else os.sysconf, else psutil when installed; None when unknown."""
    avail = _meminfo_available()
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            avail = None
    if avail is None:
        try:
            import psutil

            avail = int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 - psutil missing or failing: no estimate
            avail = None
    cgroup = _cgroup_available()
    if cgroup is not None:
        avail = cgroup if avail is None else min(avail, cgroup)
    return avail


def check_memory(need: float, argument: str, what: str, available: int | None = None,
                 where: str = "the machine", hint: str = "") -> None:
    """UFMInputError naming ``argument`` when ``need`` bytes exceed the memory available."""
    avail = available_memory() if available is None else available
    if avail is not None and need > avail:
        raise UFMInputError(argument, f"{what} would need about {format_bytes(need)} of memory; "
                            f"{where} has {format_bytes(avail)} available" + (f" ({hint})" if hint else ""))


#: what the optimiser of ``ufm verify`` keeps (solvers.nonconvex), measured as peak resident
#: memory on the CPU: the (R, n, d) iterate with the L-BFGS history (20 pairs) and working
#: copies, about 2 * 20 + 14 copies in all; and, per restart, about 26 (block x n) float64
#: temporaries of the SupCon gradient, evaluated in row blocks of 4096 anchors
LBFGS_HISTORY = 20
ITERATE_COPIES = 2 * LBFGS_HISTORY + 14
GRADIENT_BLOCK = 4096
BLOCK_COPIES = 26
#: explicit embeddings get a dense certificate up to this n (solvers.certificate.DENSE_MAX_N)
DENSE_MAX_N = 3000


def optimiser_memory(n: int, d: int, restarts: int) -> float:
    """Bytes the batched optimiser of ``ufm verify`` needs for R restarts of n x d."""
    return restarts * (n * d * 8.0 * ITERATE_COPIES + min(n, GRADIENT_BLOCK) * n * 8.0 * BLOCK_COPIES)


def embeddings_certificate_memory(n: int, d: int, dense_max_n: int = DENSE_MAX_N,
                                  cache_bytes: float = 2e9) -> float:
    """Bytes to certify n x d embeddings. Dense (n <= dense_max_n): the n x n Gram, gradient,
    S and the eigensolver's workspace, about 13 n^2 float64 at the peak (measured); matrix-free:
    the cached gradient (when n^2 float64 fit in ``cache_bytes``) plus row blocks of 2048."""
    if n <= dense_max_n:
        return 13.0 * n * n * 8
    cached = n * n * 8.0 if n * n * 8.0 <= cache_bytes else 0.0
    return cached + min(n, 2048) * n * 8.0 * BLOCK_COPIES + 20 * n * 8.0 * max(d, 1)


def verify_memory(n: int, d: int, restarts: int, dense_max_n: int = DENSE_MAX_N) -> tuple[float, float]:
    """(optimiser bytes, certificate bytes) that ``ufm verify`` needs at its peak."""
    return optimiser_memory(n, d, restarts), embeddings_certificate_memory(n, d, dense_max_n)


def certify_memory(n: int, d: int, k: int, dense_max_n: int = DENSE_MAX_N) -> float:
    """Bytes ``ufm certify`` needs: H and its reordered copy, the certificate, the optimum's
    lifted embeddings (n x at most k)."""
    return 3 * n * d * 8.0 + embeddings_certificate_memory(n, d, dense_max_n) + 2 * n * max(k, 1) * 8.0


def solve_memory(levels: int, k: int, n: int, lift: bool) -> float:
    """Rough bytes ``ufm solve`` needs: the class-level program over ``levels`` groups (factors,
    Gram blocks, L-BFGS history), the k x k class Gram it reports, and with ``--lift`` the
    n x (k - 1) unit embeddings."""
    program = 40.0 * levels * levels * 8
    report = 4.0 * k * k * 8 if k <= 5000 else 4.0 * k * 8
    lifted = 2.0 * n * max(k - 1, 1) * 8 if lift else 0.0
    return program + report + lifted
