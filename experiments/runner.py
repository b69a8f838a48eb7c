"""Run a study declared in TOML: a grid of problems, each solved and certified.

A study file has ``[study]`` (name, description), ``[problem]`` and ``[solve]`` tables. Every
list-valued entry of ``[problem]`` is swept (Cartesian product, in file order). Problems are
``kind = "counts"`` (``counts = [..]``, or a list of such lists to sweep) or ``kind = "step"``
(``k_major`` classes of ``ratio * n_minor`` samples and ``k_minor`` classes of ``n_minor``).
Results: one JSON object per grid point (``results.jsonl``) and a table (``summary.csv``).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import tomllib
from pathlib import Path

import numpy as np

from ufm.errors import UFMInputError
from ufm.problem import Problem

STUDIES_DIR = Path(__file__).parent
SUMMARY_FIELDS = ["tau", "counts", "optimal_value", "rank", "collapsed", "certified",
                  "relative_gap_bound", "cos_major", "cos_minor", "cos_between", "time_s"]


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


def load_study(path: Path) -> dict:
    try:
        study = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError) as err:
        raise UFMInputError("EXPERIMENT", f"cannot read {path}: {err}") from None
    if "problem" not in study:
        raise UFMInputError("EXPERIMENT", f"{path}: no [problem] table")
    return study


def grid(problem_table: dict):
    """Yield one parameter dict per grid point (lists swept, counts lists of lists swept)."""
    keys, axes = [], []
    for key, value in problem_table.items():
        sweep = isinstance(value, list) and not (key == "counts" and not isinstance(value[0], list))
        keys.append(key)
        axes.append(value if sweep else [value])
    for combo in itertools.product(*axes):
        yield dict(zip(keys, combo, strict=True))


def build_problem(params: dict) -> Problem:
    kind = params.get("kind", "counts")
    tau = params.get("tau", 1.0)
    loss = params.get("loss", "supcon")
    if kind == "counts":
        return Problem(tuple(params["counts"]), tau, loss)
    if kind == "step":
        major = int(round(params["ratio"] * params["n_minor"]))
        counts = (major,) * params["k_major"] + (params["n_minor"],) * params["k_minor"]
        return Problem(counts, tau, loss)
    raise UFMInputError("EXPERIMENT", f"unknown problem kind {kind!r} (counts or step)")


def _cosine_summary(res, params: dict) -> dict:
    """Mean class-mean cosine among major classes, among minor ones and between (step only)."""
    if params.get("kind") != "step" or res.problem.k > 5000:
        return {}
    cos = res.class_gram()
    km = params["k_major"]
    maj, mnr = slice(0, km), slice(km, None)

    def mean_off(block):
        m = block.shape[0]
        return float((block.sum() - np.trace(block)) / (m * (m - 1))) if m > 1 else None

    return {"cos_major": mean_off(cos[maj, maj]), "cos_minor": mean_off(cos[mnr, mnr]),
            "cos_between": float(cos[maj, mnr].mean()) if params["k_minor"] else None}


def run_study(path: Path, progress=None) -> tuple[dict, list[dict]]:
    """Solve every grid point of a study; returns (study header, rows)."""
    from solvers import solve

    study = load_study(path)
    solve_opts = study.get("solve", {})
    points = list(grid(study["problem"]))
    problems = [build_problem(p) for p in points]  # validate the whole grid before solving
    rows = []
    for i, (params, problem) in enumerate(zip(points, problems, strict=True)):
        res = solve(problem, method=solve_opts.get("method", "auto"),
                    solver=solve_opts.get("solver", "auto"), tol=solve_opts.get("tol", 1e-6))
        row = {"params": params, **res.to_dict(max_classes=50),
               "certified": res.certificate.certified,
               "relative_gap_bound": res.certificate.relative_gap_bound,
               **_cosine_summary(res, params)}
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(points), row)
    return study.get("study", {"name": path.stem}), rows


def summary_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "counts": " ".join(map(str, r["counts"]))})
    return buf.getvalue()


def results_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)
