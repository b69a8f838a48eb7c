"""What one grid point leaves behind: its results line and its arrays.

A line carries the point's id and parameters, the full configuration it ran with (the loss with
every parameter, the samples, the [solve] and [verify] options), its seed, the package versions,
the machine and its timing, then the keys of ``ufm solve --json`` (or ``ufm verify --json`` for
a study with ``[verify]``) and a few summary columns. Arrays (Gram matrices, embeddings,
optimisation histories) go to ``arrays/<point_id>.npz``.
"""

from __future__ import annotations

import functools
import platform
import sys

import numpy as np

from experiments.options import PROBLEM_OPTIONS
from ufm.metrics import class_mean_cosines, step_class_cosines

#: results columns of summary.csv, after the swept parameters
RESULT_FIELDS = ("optimal_value", "excess", "rank", "collapsed", "certified", "gap_relative_to_excess",
                 "cos_min", "cos_max")
STEP_FIELDS = ("cos_major", "cos_minor", "cos_between")
MINIBATCH_FIELDS = ("optimum_unique", "gram_distance_to_full_batch", "class_cosine_difference")
VERIFY_FIELDS = ("optimal_value", "relaxation_tight", "fraction_global", "distinct_minima",
                 "distinct_minima_up_to_rotation", "best_gap",
                 "certified", "cos_min", "cos_max")
#: largest problems whose class Gram and lifted embeddings are saved with the point
MAX_ARRAY_CLASSES = 5000
MAX_ARRAY_SAMPLES = 5000


def summary_result_fields(study) -> list[str]:
    if study.network:
        from experiments.network_study import MODULATION_FIELDS, ONE_LAYER_FIELDS, TWO_LAYER_FIELDS

        fields = {"one-layer": ONE_LAYER_FIELDS, "modulation": MODULATION_FIELDS}
        return list(fields.get(study.problem["model"], TWO_LAYER_FIELDS))
    fields = list(VERIFY_FIELDS if study.verify is not None else RESULT_FIELDS)
    if study.problem.get("kind") == "step":
        fields += STEP_FIELDS
    if "batches" in study.problem and study.verify is None:
        fields += MINIBATCH_FIELDS
    return fields


@functools.cache
def versions() -> dict:
    """Versions of python and of the packages a result depends on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("ufm", "numpy", "scipy", "torch", "cvxpy", "clarabel", "scs"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    return {"host": platform.node(), "platform": platform.platform(), "processor": platform.machine(),
            "executable": sys.executable}


def _cosine_stats(cos: np.ndarray | None) -> dict:
    """Smallest and largest cosine between distinct class means (-1/(k-1) for both at the simplex
    ETF; Papyan, Han & Donoho 2020)."""
    if cos is None or cos.shape[0] < 2:
        return {"cos_min": None, "cos_max": None}
    off = cos[~np.eye(cos.shape[0], dtype=bool)]
    return {"cos_min": float(off.min()), "cos_max": float(off.max())}


def step_cosines(cos: np.ndarray | None, params: dict) -> dict:
    """Majority, minority and between mean class-mean cosines of a step point (else nothing)."""
    if params.get("kind") != "step" or cos is None:
        return {}
    return step_class_cosines(cos, params["k_major"])


def _class_gram(res) -> np.ndarray | None:
    """Class-mean cosines of a solve result (None without geometry or beyond the array limit)."""
    if res is None or res.geometry is None or res.problem.k > MAX_ARRAY_CLASSES:
        return None
    return res.class_gram()


def config(problem, study_options: dict, params: dict) -> dict:
    """The full configuration of a point: every loss parameter (defaults included), the samples,
    the options."""
    return {"loss": problem.loss.describe(), "samples": problem.samples.describe(),
            "dim": problem.dim, "seed": params.get("seed", PROBLEM_OPTIONS["seed"].default), **study_options}


def solve_row(pid: str, params: dict, res) -> dict:
    """The results.jsonl line of a solved point: its id and parameters, then ``ufm solve``'s keys."""
    cos = _class_gram(res)
    return {"point_id": pid, "params": params, **res.to_dict(max_classes=50),
            "certified": res.certificate.certified,
            "relative_gap_bound": res.certificate.relative_gap_bound,
            "gap_relative_to_excess": res.certificate.gap_relative_to_excess,
            **_cosine_stats(cos), **step_cosines(cos, params),
            **{key: {**(res.face or {}), **(res.minibatch or {})}.get(key) for key in MINIBATCH_FIELDS
               if res.minibatch}}


def solve_arrays(res) -> dict:
    """Arrays of a solved point: counts, labels, class-mean cosines, class means and norms, and
    (n <= MAX_ARRAY_SAMPLES) unit embeddings of every sample."""
    p = res.problem
    arrays = {"counts": np.asarray(p.counts), "labels": np.asarray(p.labels)}
    if res.geometry is None:
        return arrays
    arrays["class_mean_norms"] = res.class_mean_norms()
    cos = _class_gram(res)
    if cos is not None:
        arrays["class_gram"] = cos
        arrays["class_means"] = res.geometry.class_means()
    if p.n <= MAX_ARRAY_SAMPLES:
        arrays["embeddings"] = res.embeddings(lift=True)
    return arrays


def verify_row(pid: str, params: dict, res) -> dict:
    """The results.jsonl line of a point with restarts: ``ufm verify``'s keys, the best gap
    and the class-mean cosines of the best end point."""
    payload = res.to_dict()
    gaps = [r["gap"] for r in payload["restarts"] if r["gap"] is not None]
    best = int(np.argmin([r.excess for r in res.restarts]))
    p = res.problem
    cos = (class_mean_cosines(res.run.H[best], np.asarray(p.labels)) if p.k <= MAX_ARRAY_CLASSES
           else None)
    opt = res.optimum
    # certified: some end point in this dimension is certified globally optimal (the relaxation's
    # own certificate says nothing about dimension d when the relaxation is loose)
    return {"point_id": pid, "params": params, **payload,
            "certified": None if opt is None else any(r.certified for r in res.restarts),
            "optimum_certified": None if opt is None else opt.certificate.certified,
            "best_gap": min(gaps) if gaps else None, **_cosine_stats(cos), **step_cosines(cos, params)}


def verify_arrays(res) -> dict:
    """Arrays of a point with restarts: counts, labels, the values after every iteration of
    every restart (NaN-free: a stopped restart keeps its last value), the best end point and,
    where there is one, the class-mean cosines of the certified optimum."""
    p = res.problem
    arrays = {"counts": np.asarray(p.counts), "labels": np.asarray(p.labels),
              "end_values": np.array([r.value for r in res.restarts])}
    if res.run.history is not None:
        arrays["value_history"] = res.run.value_history(p.floor())
    best = int(np.argmin([r.excess for r in res.restarts]))
    if p.n <= MAX_ARRAY_SAMPLES:
        arrays["embeddings"] = res.run.H[best]
    if p.k <= MAX_ARRAY_CLASSES:
        arrays["class_gram"] = class_mean_cosines(res.run.H[best], np.asarray(p.labels))
    cos = _class_gram(res.optimum)
    if cos is not None:
        arrays["optimum_class_gram"] = cos
    return arrays
