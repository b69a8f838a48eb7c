"""Run a study declared in TOML: a grid of problems, each solved and certified.

A study file has ``[study]`` (name, description), ``[problem]`` and ``[solve]`` tables. Every
list-valued entry of ``[problem]`` is swept (Cartesian product, in file order). Problems are
``kind = "counts"`` (``counts = [..]``, or a list of such lists to sweep) or ``kind = "step"``
(``k_major`` classes of ``ratio * n_minor`` samples and ``k_minor`` classes of ``n_minor``).

The whole study is validated before anything is solved; every error names its TOML key
(``[problem].tau: must be > 0, got -1``). Each grid point is appended to ``results.jsonl`` as
one complete, fsync'ed JSON line as soon as it is solved, tagged with a stable ``point_id``;
running the same study into the same folder again skips the points already there, so an
interrupted study (Ctrl-C, a crash, a killed job) resumes where it stopped. ``summary.csv`` is
rewritten atomically from all lines of ``results.jsonl`` once every point is done.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import hashlib
import io
import itertools
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from solvers import METHODS, SOLVERS, solve
from solvers.certificate import CERTIFY_TOL
from solvers.solve import FULL_MAX_N
from ufm.errors import UFMInputError
from ufm.files import file_mode
from ufm.losses import available_losses
from ufm.problem import Problem
from ufm.samples import MAX_SAMPLES

STUDIES_DIR = Path(__file__).parent
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.csv"
EXIT_INTERRUPTED = 130

#: the keys each table accepts
TABLE_KEYS = {
    "study": ("name", "description"),
    "problem": ("loss", "kind", "counts", "tau", "k_major", "k_minor", "n_minor", "ratio"),
    "solve": ("method", "solver", "tol"),
}
KINDS = ("counts", "step")
#: the keys each kind of problem needs (and the only kind-specific keys it accepts)
KIND_KEYS = {"counts": ("counts",), "step": ("k_major", "k_minor", "n_minor", "ratio")}
#: values of [problem] keys left out of the file
PROBLEM_DEFAULTS = {"loss": "supcon", "kind": "counts", "tau": 1.0}
SOLVE_DEFAULTS = {"method": "auto", "solver": "auto", "tol": CERTIFY_TOL}
#: results columns of summary.csv, after the swept parameters (cosines for step problems only)
RESULT_FIELDS = ("optimal_value", "excess", "rank", "collapsed", "certified", "gap_relative_to_excess")
STEP_FIELDS = ("cos_major", "cos_minor", "cos_between")


# --------------------------------------------------------------------------- finding, validating


def find_study(name: str) -> Path:
    """A path to a .toml file, or the name of a study shipped in ``experiments/``."""
    p = Path(name)
    if p.suffix == ".toml" and p.is_file():
        return p
    bundled = STUDIES_DIR / f"{name}.toml"
    if bundled.is_file():
        return bundled
    known = ", ".join(sorted(f.stem for f in STUDIES_DIR.glob("*.toml")))
    raise UFMInputError("EXPERIMENT", f"no study file or bundled study {name!r} (bundled: {known})")


@dataclass
class Study:
    """A validated study: its header, the normalised tables and every grid point."""

    path: Path
    name: str
    description: str
    problem: dict  # [problem] after validation (file order, then defaults); lists are sweeps
    solve: dict  # [solve] with defaults filled in
    swept: list[str]  # list-valued [problem] keys, in file order
    points: list[dict] = field(default_factory=list)  # parameters of each grid point
    point_ids: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def header(self) -> dict:
        return {"name": self.name, "description": self.description}

    def summary_fields(self) -> list[str]:
        cos = list(STEP_FIELDS) if self.problem["kind"] == "step" else []
        return [*self.swept, *RESULT_FIELDS, *cos, "time_s"]


def _key(table: str, key: str) -> str:
    return f"[{table}].{key}"


def _suggest(word: str, choices, fmt="{!r}") -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {fmt.format(close[0])}?)" if close else ""


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _number(v, where: str, minimum: float, strict: bool) -> float:
    """A finite number (TOML integer or float, not a boolean) > or >= ``minimum``."""
    if not _is_number(v):
        raise UFMInputError(where, f"must be a number, got {v!r}")
    if not math.isfinite(v):
        raise UFMInputError(where, f"must be a finite number, got {v}")
    if (v <= minimum) if strict else (v < minimum):
        raise UFMInputError(where, f"must be {'>' if strict else '>='} {minimum:g}, got {v}")
    return float(v)


def _integer(v, where: str, minimum: int) -> int:
    """An integer >= ``minimum`` (an integer-valued float such as 2.0 is accepted)."""
    if not _is_number(v) or not math.isfinite(v) or v != int(v):
        raise UFMInputError(where, f"must be an integer, got {v!r}")
    if v < minimum:
        raise UFMInputError(where, f"must be an integer >= {minimum}, got {v}")
    return int(v)


def _counts(v, where: str) -> list[int]:
    if not isinstance(v, list) or not v:
        raise UFMInputError(where, f"must be a non-empty list of class sizes, got {v!r}")
    return [_integer(c, where, 1) for c in v]


def _string(v, where: str) -> str:
    if not isinstance(v, str):
        raise UFMInputError(where, f"must be a string, got {v!r}")
    return v


def _loss(v, where: str) -> str:
    name = _string(v, where)
    known = available_losses()
    if name not in known:
        raise UFMInputError(where, f"unknown loss {name!r}{_suggest(name, known)} "
                            f"(known: {', '.join(known)})")
    return name


def _choice(v, where: str, choices, what: str) -> str:
    value = _string(v, where)
    if value not in choices:
        raise UFMInputError(where, f"unknown {what} {value!r}{_suggest(value, choices)} "
                            f"(choose from {', '.join(choices)})")
    return value


#: one value of each [problem] key (a sweep applies it to every element)
_PROBLEM_VALUE = {
    "loss": _loss,
    "tau": lambda v, w: _number(v, w, 0, strict=True),
    "counts": _counts,
    "k_major": lambda v, w: _integer(v, w, 0),
    "k_minor": lambda v, w: _integer(v, w, 0),
    "n_minor": lambda v, w: _integer(v, w, 1),
    "ratio": lambda v, w: _number(v, w, 1, strict=False),
}


def _problem_entry(key: str, value, where: str):
    """(normalised value, swept?) of one [problem] entry."""
    if key == "kind":
        return _choice(value, where, KINDS, "problem kind"), False
    check = _PROBLEM_VALUE[key]
    if key == "counts":
        is_sweep = isinstance(value, list) and bool(value) and isinstance(value[0], list)
        if isinstance(value, list) and any(isinstance(c, list) for c in value) and not all(
                isinstance(c, list) for c in value):
            raise UFMInputError(where, "mixes class sizes and lists of class sizes: give one list "
                                "of class sizes, or a list of such lists to sweep")
    else:
        is_sweep = isinstance(value, list)
    if not is_sweep:
        return check(value, where), False
    if not value:
        raise UFMInputError(where, "an empty list sweeps nothing: give at least one value")
    values = [check(v, where) for v in value]
    seen = set()
    for v in values:
        token = json.dumps(v)
        if token in seen:
            raise UFMInputError(where, f"value {v!r} appears twice in the sweep")
        seen.add(token)
    return values, True


def _table(doc: dict, name: str, path: Path, required: bool) -> dict:
    if name not in doc:
        if required:
            raise UFMInputError(f"[{name}]", f"missing table in {path}")
        return {}
    table = doc[name]
    if not isinstance(table, dict):
        raise UFMInputError(f"[{name}]", f"must be a table, got {table!r}")
    for key in table:
        if key not in TABLE_KEYS[name]:
            raise UFMInputError(_key(name, key), "unknown key" + _suggest(key, TABLE_KEYS[name])
                                + f" (valid keys: {', '.join(TABLE_KEYS[name])})")
    return table


def validate_study(doc: dict, path: Path) -> Study:
    """Check every table, key, type and range of a parsed study; build every grid point."""
    for name, value in doc.items():
        if name in TABLE_KEYS:
            continue
        if isinstance(value, dict):
            raise UFMInputError(f"[{name}]", "unknown table"
                                + _suggest(name, TABLE_KEYS, "'[{}]'")
                                + " (tables: [study], [problem], [solve])")
        owners = [t for t, keys in TABLE_KEYS.items() if name in keys]
        hint = f" (did you mean {_key(owners[0], name)}?)" if owners else ""
        raise UFMInputError(name, f"key outside any table{hint}: keys go in [study], [problem] "
                            "or [solve]")

    header = _table(doc, "study", path, required=False)
    name = _string(header.get("name", path.stem), _key("study", "name"))
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise UFMInputError(_key("study", "name"), f"must be a non-empty name usable as a folder "
                            f"name (no '/', '\\'), got {name!r}")
    description = _string(header.get("description", ""), _key("study", "description"))

    raw = _table(doc, "problem", path, required=True)
    kind = _problem_entry("kind", raw.get("kind", PROBLEM_DEFAULTS["kind"]), _key("problem", "kind"))[0]
    for key in KIND_KEYS[kind]:
        if key not in raw:
            raise UFMInputError(_key("problem", key), f"missing: kind = {kind!r} needs "
                                f"{', '.join(KIND_KEYS[kind])}")
    for other, keys in KIND_KEYS.items():
        for key in keys:
            if other != kind and key in raw:
                raise UFMInputError(_key("problem", key), f"only used with kind = {other!r} "
                                    f"(this study has kind = {kind!r})")
    problem, swept = {}, []
    for key, value in raw.items():
        problem[key], is_sweep = _problem_entry(key, value, _key("problem", key))
        if is_sweep:
            swept.append(key)
    for key, value in PROBLEM_DEFAULTS.items():
        problem.setdefault(key, value)

    table = _table(doc, "solve", path, required=False)
    opts = {**SOLVE_DEFAULTS, **table}
    opts["method"] = _choice(opts["method"], _key("solve", "method"), METHODS, "method")
    opts["solver"] = _choice(opts["solver"], _key("solve", "solver"), SOLVERS, "solver")
    opts["tol"] = _number(opts["tol"], _key("solve", "tol"), 0, strict=True)

    study = Study(path, name, description, problem, opts, swept)
    for params in grid(problem, swept):
        study.points.append(params)
        study.point_ids.append(point_id(params, opts))
        study.problems.append(_checked_problem(params, opts))
    return study


def load_study(path: Path) -> Study:
    """Read and validate a study file (errors name the file or the TOML key at fault)."""
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UFMInputError(str(path), f"TOML syntax error: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UFMInputError(str(path), f"cannot read the study: {err}") from None
    return validate_study(doc, path)


def grid(problem: dict, swept: list[str]):
    """Yield one parameter dict per grid point: the Cartesian product of the swept keys."""
    axes = [problem[key] if key in swept else [problem[key]] for key in problem]
    for combo in itertools.product(*axes):
        yield dict(zip(problem, combo, strict=True))


def point_id(params: dict, solve_opts: dict) -> str:
    """Stable id of a grid point: sha256 of the canonical JSON of its parameters and the
    [solve] options (sorted keys), first 16 hex characters."""
    canonical = json.dumps({**params, **solve_opts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def build_problem(params: dict) -> Problem:
    """The problem of one (validated) grid point."""
    if params["kind"] == "counts":
        counts = tuple(params["counts"])
    else:
        major = int(round(params["ratio"] * params["n_minor"]))
        counts = (major,) * params["k_major"] + (params["n_minor"],) * params["k_minor"]
    return Problem(counts, params["tau"], params["loss"])


def _checked_problem(params: dict, opts: dict) -> Problem:
    """Checks that need a whole grid point (step sizes, solver limits), then its problem."""
    if params["kind"] == "step":
        if params["k_major"] + params["k_minor"] < 1:
            raise UFMInputError(_key("problem", "k_major"), "k_major + k_minor must be >= 1, got "
                                f"{params['k_major']} + {params['k_minor']}")
        major = params["ratio"] * params["n_minor"]
        if not math.isfinite(major) or abs(major - round(major)) > 1e-9 * max(1.0, major):
            raise UFMInputError(_key("problem", "ratio"), f"ratio * n_minor must be a whole class "
                                f"size, got {params['ratio']:g} * {params['n_minor']} = {major:g}")
        n = params["k_major"] * round(major) + params["k_minor"] * params["n_minor"]
        if n > MAX_SAMPLES:  # before a tuple of k_major + k_minor counts is built
            raise UFMInputError("[problem]", f"the step problem k_major = {params['k_major']}, "
                                f"k_minor = {params['k_minor']}, n_minor = {params['n_minor']}, "
                                f"ratio = {params['ratio']:g} has n = {n} samples, more than "
                                f"{MAX_SAMPLES}")
    try:
        problem = build_problem(params)
    except UFMInputError as err:  # a limit of Problem itself, named by its CLI spelling
        key = _TOML_KEY.get(err.argument, err.argument)
        if params["kind"] == "step" and key == "[problem].counts":
            key = "[problem]"
        raise UFMInputError(key, err.message) from None
    if not problem.loss.has_relaxation:
        raise UFMInputError(_key("problem", "loss"), f"{problem.loss.name} is not convex in the Gram "
                            "matrix and has no convex relaxation: nothing to solve")
    if opts["method"] == "full":
        solver = "clarabel" if opts["solver"] == "auto" else opts["solver"]
        if solver == "factored":
            raise UFMInputError(_key("solve", "solver"), "method 'full' is solved by a conic "
                                "solver (clarabel or scs)")
        if problem.n > FULL_MAX_N[solver]:
            raise UFMInputError(_key("solve", "method"), f"full program with {solver} refused for "
                                f"n = {problem.n} > {FULL_MAX_N[solver]} (memory): use reduced "
                                "or orbit, which are exact")
    return problem


# --------------------------------------------------------------------------- solving one point

#: CLI spellings raised by ``solve`` and the study keys they stand for
_TOML_KEY = {"--tau": "[problem].tau", "--loss": "[problem].loss", "--counts": "[problem].counts",
             "--method": "[solve].method", "--solver": "[solve].solver", "--tol": "[solve].tol"}


def solve_point(problem: Problem, solve_opts: dict):
    """Solve one grid point (tests replace this to count or interrupt solves)."""
    try:
        return solve(problem, method=solve_opts["method"], solver=solve_opts["solver"],
                     tol=solve_opts["tol"])
    except UFMInputError as err:
        raise UFMInputError(_TOML_KEY.get(err.argument, err.argument), err.message) from None


def _cosine_summary(res, params: dict) -> dict:
    """Mean class-mean cosine among major classes, among minor ones and between (step only)."""
    if params.get("kind") != "step" or res.problem.k > 5000 or res.geometry is None:
        return {}  # geometry is None where no sample has a positive: nothing to describe
    cos = res.class_gram()
    km = params["k_major"]
    maj, mnr = slice(0, km), slice(km, None)

    def mean_off(block):
        m = block.shape[0]
        return float((block.sum() - np.trace(block)) / (m * (m - 1))) if m > 1 else None

    return {"cos_major": mean_off(cos[maj, maj]), "cos_minor": mean_off(cos[mnr, mnr]),
            "cos_between": float(cos[maj, mnr].mean()) if km and params["k_minor"] else None}


def result_row(pid: str, params: dict, res) -> dict:
    """The results.jsonl line of one point: its id and parameters, then ``ufm solve``'s keys."""
    return {"point_id": pid, "params": params, **res.to_dict(max_classes=50),
            "certified": res.certificate.certified,
            "relative_gap_bound": res.certificate.relative_gap_bound,
            "gap_relative_to_excess": res.certificate.gap_relative_to_excess,
            **_cosine_summary(res, params)}


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def _deferred_interrupt():
    """Hold SIGINT until the block is done, so that Ctrl-C never cuts a write in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file in the same folder, then rename: never partial,
    no temporary file left behind, mode ``0o666 & ~umask``."""
    with _deferred_interrupt():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(text.encode())
                fh.flush()
                os.fsync(fh.fileno())
                os.fchmod(fh.fileno(), file_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(path.parent)


def prepare_out(path: str) -> Path:
    """Create the output folder (with parents, checked writable) and check that the result
    file names are free for files."""
    from ufm.inputs import prepare_out as prepare_dir

    out = prepare_dir(path)
    for name in (RESULTS_FILE, SUMMARY_FILE):
        if (out / name).exists() and not (out / name).is_file():
            raise UFMInputError("--out", f"{out / name} exists and is not a file")
    return out


class ResultsLog:
    """``results.jsonl`` opened for appending: one complete, fsync'ed JSON line per point.

    Opening locks the file (one run per folder at a time), cuts away an incomplete last line
    left by a hard kill and reads the complete lines already there.
    """

    def __init__(self, path: Path):
        self.path = path
        self.repaired_bytes = 0
        self.unreadable = 0  # complete lines that are not a JSON object with a point_id
        self.rows: dict[str, dict] = {}  # point_id -> its (last) line
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as err:
            raise UFMInputError("--out", f"cannot open {path}: {err.strerror}") from None
        _fsync_dir(path.parent)
        try:
            self._lock()
            self._read()
        except BaseException:
            os.close(self.fd)
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UFMInputError("--out", f"{self.path} is being written by another ufm run") from None
        except OSError:  # file systems without flock
            pass

    def _read(self) -> None:
        with open(self.fd, "rb", closefd=False) as fh:
            fh.seek(0)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # an interrupted write: drop it before appending
            with _deferred_interrupt():
                os.ftruncate(self.fd, end)
                os.fsync(self.fd)
            self.repaired_bytes = len(data) - end
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("point_id"), str):
                self.unreadable += 1
                continue
            self.rows[row["point_id"]] = row

    def append(self, row: dict) -> None:
        """Append one line with a single write, then fsync: the line is all there or absent."""
        data = (json.dumps(row) + "\n").encode()
        with _deferred_interrupt():
            written = os.write(self.fd, data)
            while written < len(data):  # a short write (rare): finish the same line
                written += os.write(self.fd, data[written:])
            os.fsync(self.fd)
            self.rows[row["point_id"]] = row

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _remove_stale_temps(out: Path) -> None:
    """Temporary files of an earlier run killed in the middle of writing summary.csv."""
    for tmp in out.glob(f".{SUMMARY_FILE}.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


# --------------------------------------------------------------------------- summary


def _cell(value) -> object:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "" if value is None else value


def summary_csv(study: Study, rows: list[dict]) -> str:
    """One CSV line per point: the swept parameters, then the results columns."""
    fields = study.summary_fields()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for r in rows:
        w.writerow([_cell(r["params"][f] if f in study.swept else r.get(f)) for f in fields])
    return buf.getvalue()


def _describe(study: Study, params: dict) -> str:
    keys = study.swept or ["counts" if params["kind"] == "counts" else "ratio", "tau"]
    parts = []
    for key in keys:
        value = params[key]
        if isinstance(value, list):
            value = " ".join(map(str, value[:6])) + (" ..." if len(value) > 6 else "")
        elif isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key} {value}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- running


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study: ``done`` of ``total`` points are safely in results.jsonl
    (``done`` is None when it came before results.jsonl was read)."""

    def __init__(self, done: int | None, total: int):
        super().__init__(f"{done} of {total} points done")
        self.done = done
        self.total = total


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_study(study: Study, out: Path, progress=None, log=_log) -> tuple[list[dict], int]:
    """Solve the points of ``study`` not yet in ``out/results.jsonl``, appending each as it is
    done, then rewrite ``out/summary.csv``. Returns (one row per grid point in grid order,
    number of points skipped because they were already done). Ctrl-C raises StudyInterrupted
    once every finished point is safely written; summary.csv is then left as it was."""
    total = len(study.points)
    results_path = out / RESULTS_FILE
    results = None
    try:
        with ResultsLog(results_path) as results:
            _remove_stale_temps(out)
            if results.repaired_bytes:
                log(f"ufm run: removed an incomplete last line ({results.repaired_bytes} bytes) "
                    f"from {results_path}, left by an interrupted run")
            if results.unreadable:
                log(f"ufm run: {results.unreadable} line(s) of {results_path} are not results "
                    "(ignored)")
            ids = set(study.point_ids)
            foreign = sum(pid not in ids for pid in results.rows)
            if foreign:
                log(f"ufm run: {foreign} line(s) of {results_path} are not points of this study "
                    "(other parameters or [solve] options): kept there, left out of the summary")
            todo = [i for i, pid in enumerate(study.point_ids) if pid not in results.rows]
            skipped = total - len(todo)
            if skipped:
                log(f"ufm run: {study.name}: {skipped} of {total} points already done in "
                    f"{results_path} (skipped), {len(todo)} remaining")
            else:
                log(f"ufm run: {study.name}: {total} points, results in {out}")
            for done, i in enumerate(todo, start=skipped + 1):
                res = solve_point(study.problems[i], study.solve)
                row = result_row(study.point_ids[i], study.points[i], res)
                results.append(row)
                if progress is not None:
                    progress(done, total, study.points[i], row)
            rows = [results.rows[pid] for pid in study.point_ids]
            write_atomic(out / SUMMARY_FILE, summary_csv(study, rows))
    except KeyboardInterrupt:
        done = None if results is None else sum(pid in results.rows for pid in study.point_ids)
        raise StudyInterrupted(done, total) from None
    return rows, skipped


def run_command(experiment: str, out: str | None, as_json: bool) -> int:
    """``ufm run EXPERIMENT [--out DIR] [--json]``: returns the exit status.

    Bad input raises UFMInputError (naming the TOML key, the file or --out) before any work;
    Ctrl-C returns 130 after saying how to resume.
    """
    path = find_study(experiment)
    study = load_study(path)
    outdir = prepare_out(out if out is not None else str(Path("results") / study.name))
    resume = f"ufm run {shlex.quote(experiment)} --out {shlex.quote(str(outdir))}"

    def progress(i, total, params, row):
        c = row["certificate"]
        _log(f"[{i}/{total}] {_describe(study, params)}: value {row['optimal_value']:.8g}, "
             f"{'certified' if c['certified'] else 'NOT certified'}")

    try:
        rows, skipped = run_study(study, outdir, progress)
    except StudyInterrupted as stop:
        done = "no new point" if stop.done is None else f"{stop.done} of {stop.total} points"
        _log(f"ufm run: interrupted: {done} done and saved in {outdir / RESULTS_FILE}; "
             f"resume with: {resume}")
        return EXIT_INTERRUPTED
    except Exception as err:
        if not isinstance(err, UFMInputError):
            _log(f"ufm run: stopped by an error; the points done so far are saved in "
                 f"{outdir / RESULTS_FILE}; after fixing it, resume with: {resume}")
        raise
    if as_json:
        print(json.dumps({"study": study.header, "out": str(outdir), "skipped": skipped,
                          "rows": rows}))
    else:
        print(f"study {study.name}: {len(rows)} problems, {sum(r['certified'] for r in rows)} "
              f"certified; results in {outdir}")
        print(summary_csv(study, rows), end="")
    return 0
