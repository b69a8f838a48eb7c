"""Run a study declared in TOML (:mod:`experiments.study`): every grid point solved (or verified,
with ``[verify]``) and certified, in this process, on local cores or on a Dask cluster
(:mod:`experiments.backends`); then the declared figures (:mod:`experiments.figures`).

Each grid point is appended to ``results.jsonl`` as one complete, fsync'ed JSON line as soon as
it is done, tagged with a stable ``point_id``, after its arrays (``arrays/<point_id>.npz``);
running the same study into the same folder again skips the points already there, so an
interrupted study (Ctrl-C, a crash, a killed job) resumes where it stopped, whichever backend
ran it. ``summary.csv`` and the figures are rewritten atomically from all lines of
``results.jsonl`` once every point is done.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shlex
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from experiments.options import PROBLEM_OPTIONS
from experiments.rows import config, machine, solve_arrays, solve_row, verify_arrays, verify_row, versions
from experiments.study import (  # noqa: F401 - the runner's public names
    KINDS,
    PROBLEM_DEFAULTS,
    STUDIES_DIR,
    TABLE_KEYS,
    Study,
    build_problem,
    bundled_studies,
    find_study,
    grid,
    load_study,
    point_id,
    toml_key,
    validate_study,
)
from ufm import progress as progress_bars
from ufm.errors import UFMInputError
from ufm.experiments import parse_results
from ufm.files import file_mode

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.csv"
ARRAYS_DIR = "arrays"
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------- one point


def solve_point(problem, solve_opts: dict):
    """Solve one grid point (tests replace this to count or interrupt solves)."""
    from solvers import solve

    try:
        return solve(problem, method=solve_opts["method"], solver=solve_opts["solver"],
                     tol=solve_opts["tol"], seed=solve_opts.get("seed", PROBLEM_OPTIONS["seed"].default))
    except UFMInputError as err:
        raise UFMInputError(toml_key(err.argument), err.message) from None


def verify_point(problem, options: dict, seed: int):
    """Restarts at one grid point, compared with its certified optimum."""
    from solvers.verify import verify

    keywords = {k: v for k, v in options["verify"].items() if k != "threads"}
    try:  # [verify]'s keys are verify's keywords (experiments.options.STUDY_TABLES)
        return verify(problem, problem.dim, seed=seed, tol=options["tol"], **keywords)
    except UFMInputError as err:
        raise UFMInputError(toml_key(err.argument), err.message) from None


def compute_point(pid: str, params: dict, options: dict, problem=None) -> tuple[dict, dict]:
    """(results line, arrays) of one grid point: run anywhere (a worker process, a Dask worker)."""
    t0 = time.perf_counter()
    threads = params.get("threads") or options.get("threads") or options.get("verify", {}).get("threads")
    if threads:  # [solve], [verify] or [network] threads: this point's process computes with them
        from ufm.threads import limit_threads

        limit_threads(threads)
    if "network" in options:
        from experiments.network_study import compute_network_point

        row, arrays = compute_network_point(pid, params)
        row.update({"config": {**params}, "seed": params["seed"], "versions": versions(),
                    "machine": machine(), "point_time_s": time.perf_counter() - t0})
        return row, arrays
    if problem is None:
        problem = build_problem(params)
    seed = params.get("seed", PROBLEM_OPTIONS["seed"].default)
    if "verify" in options:
        res = verify_point(problem, options, seed)
        row, arrays = verify_row(pid, params, res), verify_arrays(res)
    else:
        res = solve_point(problem, {**options, "seed": seed})
        row, arrays = solve_row(pid, params, res), solve_arrays(res)
    row.update({"config": config(problem, options, params), "seed": seed, "versions": versions(),
                "machine": machine(), "point_time_s": time.perf_counter() - t0})
    return row, arrays


# --------------------------------------------------------------------------- files


#: the signals a study stops on, keeping its finished lines: Ctrl-C, and SIGTERM (a scheduler's or
#: ``kill``'s stop) handled the same way
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM during a study, raised as an interrupt (the exit status says which signal)."""


def _raise_stop(signum, frame):
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def _stop_on_sigterm():
    """SIGTERM stops the study as Ctrl-C does (finished lines kept, resume command printed), not
    by killing the process mid-write; outside the main thread it is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _deferred_interrupt():
    """Hold SIGINT and SIGTERM until the block is done, so that a stop never cuts a write in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            sig = received[0]
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL and sig == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(sig)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) through a temporary file in the same folder, then rename: never partial,
    no temporary file left behind, mode ``0o666 & ~umask``."""
    with _deferred_interrupt():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(text.encode() if isinstance(text, str) else text)
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
        rows, unreadable = parse_results(data[:end])
        self.rows.update(rows)
        self.unreadable += unreadable

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
    """Temporary files of an earlier run killed in the middle of writing a file."""
    for tmp in [*out.glob(".*.tmp"), *out.glob(f"{ARRAYS_DIR}/.*.tmp")]:
        with contextlib.suppress(OSError):
            tmp.unlink()

# --------------------------------------------------------------------------- summary


def _cell(value) -> object:
    """A summary cell typed for readers (``ufm.experiments.read_summary``, pandas, R): a list as
    JSON (``[10, 10, 2, 2]``), None as empty, booleans as True/False, numbers as repr writes them."""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return "" if value is None else value


def summary_csv(study: Study, rows: list[dict]) -> str:
    """One CSV line per point: the swept parameters, then the results columns (cells: :func:`_cell`)."""
    fields = study.summary_fields()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for r in rows:
        w.writerow([_cell(study.loss_params_text(r["params"]) if f == "loss_params" else
                          r["params"].get(f) if f in study.swept else r.get(f)) for f in fields])
    return buf.getvalue()


def _describe(study: Study, params: dict) -> str:
    keys = study.swept or (["activation"] if study.network else
                           ["counts" if params["kind"] == "counts" else "ratio", "tau"])
    parts = []
    for key in keys:
        if key not in params:
            continue
        value = params[key]
        if isinstance(value, list):
            value = " ".join(map(str, value[:6])) + (" ..." if len(value) > 6 else "")
        elif isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


# --------------------------------------------------------------------------- running


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a study: ``done`` of ``total`` points are safely in
    results.jsonl (``done`` is None when it came before results.jsonl was read); ``signum`` the
    signal that stopped it."""

    def __init__(self, done: int | None, total: int, signum: int = signal.SIGINT):
        super().__init__(f"{done} of {total} points done")
        self.done = done
        self.total = total
        self.signum = signum


def _log(message: str) -> None:
    progress_bars.write(message)  # a line on stderr that keeps a bar being drawn whole


def _save_arrays(out: Path, pid: str, arrays: dict) -> None:
    folder = out / ARRAYS_DIR
    folder.mkdir(exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(folder / f"{pid}.npz", buf.getvalue())


def point_work(study: Study, i: int) -> float:
    """Point ``i``'s expected cost relative to the study's other points, to weight the time left:
    restarts x n^2 (an evaluation of n embeddings is n x n) for verify; for solve q^3 over the
    reduced program's q groups (its factor products), n^3 for the n x n program; for networks
    samples x restarts x patterns (their data, starts and optima)."""
    params = study.points[i]
    if study.network:
        return float(np.prod([float(params[key]) for key in ("samples", "restarts", "patterns")
                              if isinstance(params.get(key), int | float)] or [1.0]))
    problem = study.problems[i]
    if study.verify is not None:
        return float(study.verify.get("restarts", 1)) * problem.n ** 2
    sym = problem.symmetry("auto")
    size = problem.n if sym is None else getattr(sym, "q", problem.n)
    return float(size) ** 3 + problem.n


class TimeLeft:
    """The time left of a study's remaining points: the seconds per unit of work of the points
    finished (``point_work``) times the work not done yet."""

    def __init__(self, works: list[float]):
        self.works = [max(float(w), 1e-12) for w in works]
        self.left = sum(self.works)
        self.done = 0.0

    def finished(self, j: int, elapsed: float) -> float:
        """Point ``j`` (an index into ``works``) is done after ``elapsed`` seconds in all:
        returns the estimated seconds left."""
        self.done += self.works[j]
        self.left -= self.works[j]
        return elapsed / self.done * max(self.left, 0.0)


def run_study(study: Study, out: Path, progress=None, log=_log, backend=None) -> tuple[list[dict], int]:
    """Run the points of ``study`` not yet in ``out/results.jsonl`` on ``backend`` (serial by
    default), appending each as it is done, then rewrite ``out/summary.csv`` and draw the
    figures. Returns (one row per grid point in grid order, number of points skipped because
    they were already done). Ctrl-C raises StudyInterrupted once every finished point is safely
    written; summary.csv is then left as it was."""
    from experiments.backends import Serial
    from experiments.figures import draw_figures, load_arrays

    backend = Serial() if backend is None else backend
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
                    "(other parameters or options): kept there, left out of the summary")
            todo = [i for i, pid in enumerate(study.point_ids) if pid not in results.rows]
            skipped = total - len(todo)
            where = "" if backend.description == "serial" else f", on {backend.description}"
            if skipped:
                log(f"ufm run: {study.name}: {skipped} of {total} points already done in "
                    f"{results_path} (skipped), {len(todo)} remaining{where}")
            else:
                log(f"ufm run: {study.name}: {total} points, results in {out}{where}")
            serial = backend.description == "serial"
            tasks = [(study.point_ids[i], study.points[i], study.options,
                      study.problems[i] if serial else None) for i in todo]
            start = time.perf_counter()
            finished = False
            clock = TimeLeft([point_work(study, i) for i in todo])
            shown = progress_bars.bar(f"ufm run {study.name}", total=len(todo), unit="point", delay=0.0)
            try:
                for done, (j, (row, arrays)) in enumerate(backend.run(compute_point, tasks), start=1):
                    i = todo[j]
                    _save_arrays(out, row["point_id"], arrays)
                    results.append(row)
                    elapsed = time.perf_counter() - start
                    left = clock.finished(j, elapsed)
                    shown.update()
                    shown.set_postfix_str(f"about {_duration(left)} left", refresh=False)
                    if progress is not None:
                        progress(skipped + done, total, study.points[i], row, elapsed, left)
                finished = True
            finally:
                shown.close()
                backend.close(finished)
            rows = [results.rows[pid] for pid in study.point_ids]
            write_atomic(out / SUMMARY_FILE, summary_csv(study, rows))
            if study.figures or study.skipped_figures:
                draw_figures(study, rows, load_arrays(out), out, log)
    except KeyboardInterrupt as stop:
        done = None if results is None else sum(pid in results.rows for pid in study.point_ids)
        raise StudyInterrupted(done, total, signal.SIGTERM if isinstance(stop, Terminated) else
                               signal.SIGINT) from None
    return rows, skipped


def _row_words(row: dict) -> str:
    if "distinct_optima" in row:
        return f"{row['distinct_optima']} distinct optima, {row['dead_units']} dead units"
    if "specialised_fraction" in row:
        return (f"loss {row['initial_loss']:.6g} -> {row['final_loss']:.6g}, "
                f"{row['specialised_fraction']:.0%} of live units specialised"
                + (f", {row['covered_tokens']}/{row['pattern_tokens']} pattern tokens covered"
                   if row.get("pattern_tokens") else ""))
    if "discriminative_weight" in row:  # modulation
        return (f"loss {row['initial_loss']:.6g} -> {row['final_loss']:.6g}, median weight share "
                f"discriminative {row['discriminative_weight']:.3f}, shared {row['shared_weight']:.3f}")
    if "fraction_global" in row:
        frac = row["fraction_global"]
        glob = "no certificate" if frac is None else f"{frac:.0%} of restarts certified global"
        m = row["distinct_minima"]
        return f"best value {row['best_value']:.8g}, {m} distinct minim{'um' if m == 1 else 'a'}, {glob}"
    c = row["certificate"]
    return f"value {row['optimal_value']:.8g}, {'certified' if c['certified'] else 'NOT certified'}"


def run_command(experiment: str, out: str | None, as_json: bool, jobs: int | None = None,
                scheduler: str | None = None, smoke: bool = False, threads: int | None = None) -> int:
    """``ufm run EXPERIMENT [--out DIR] [--jobs N | --scheduler ADDRESS] [--smoke] [--json]``:
    returns the exit status.

    Bad input raises UFMInputError (naming the TOML key, the file or the option) before any
    work; Ctrl-C returns 130 and SIGTERM 143, each after saying how to resume.
    """
    from experiments.backends import backend_for

    if jobs is not None and jobs < 1:
        raise UFMInputError("--jobs", f"must be an integer >= 1, got {jobs}")
    if jobs is not None and scheduler is not None:
        raise UFMInputError("--jobs", "not allowed with --scheduler (the cluster's workers run the points)")
    path = find_study(experiment)
    study = load_study(path, smoke=smoke)
    backend = backend_for(jobs, scheduler, threads)  # a scheduler that cannot be reached: before the folder
    try:
        outdir = prepare_out(out if out is not None else str(Path("results") / study.name))
    except BaseException:
        backend.close(False)
        raise
    options = " --smoke" if smoke else ""
    options += f" --jobs {jobs}" if jobs is not None else ""
    options += f" --scheduler {shlex.quote(scheduler)}" if scheduler is not None else ""
    resume = f"ufm run {shlex.quote(experiment)} --out {shlex.quote(str(outdir))}{options}"

    def progress(i, total, params, row, elapsed, left):
        _log(f"[{i}/{total}] {_describe(study, params)}: {_row_words(row)} "
             f"({_duration(elapsed)} elapsed, about {_duration(left)} left)")

    try:
        with _stop_on_sigterm():
            rows, skipped = run_study(study, outdir, progress, backend=backend)
    except StudyInterrupted as stop:
        done = "no new point" if stop.done is None else f"{stop.done} of {stop.total} points"
        how = "terminated (SIGTERM)" if stop.signum == signal.SIGTERM else "interrupted"
        _log(f"ufm run: {how}: {done} done and saved in {outdir / RESULTS_FILE}; "
             f"resume with: {resume}")
        return EXIT_INTERRUPTED if stop.signum == signal.SIGINT else 128 + int(signal.SIGTERM)
    except Exception as err:
        if not isinstance(err, UFMInputError):
            _log(f"ufm run: stopped by an error; the points done so far are saved in "
                 f"{outdir / RESULTS_FILE}; after fixing it, resume with: {resume}")
        raise
    if as_json:
        print(json.dumps({"study": study.header, "out": str(outdir), "skipped": skipped,
                          "figures": [f["file"] for f in study.figures],
                          "figures_not_drawn": [{"file": f, "why": why} for f, why in study.skipped_figures],
                          "rows": rows}))
    else:
        if study.network:
            print(f"study {study.name}: {len(rows)} networks; results in {outdir}")
        else:
            certified = sum(bool(r.get("certified")) for r in rows)
            what = "with a certified restart" if study.verify is not None else "certified"
            print(f"study {study.name}: {len(rows)} problems, {certified} {what}; results in {outdir}")
        print(summary_csv(study, rows), end="")
    return 0
