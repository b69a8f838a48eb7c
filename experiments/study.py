"""A study declared in TOML: its tables, their validation and the grid of problems they sweep.

Tables:

- ``[study]``: ``name``, ``description``.
- ``[problem]``: the samples (``kind = "counts"`` with ``counts``; ``"step"`` with ``k_major``,
  ``k_minor``, ``n_minor``, ``ratio``; ``"preset"`` with ``preset``, a long-tailed benchmark;
  ``"views"`` with ``instances`` and ``views``), optional ``batches`` (``random:B`` or
  ``balanced:B``), the ``loss`` and any of its declared parameters (``tau``, ``kernel``, ``t``,
  ``negatives``, ``reduction``, ...), ``dim`` and ``seed``. Every list-valued entry is swept
  (Cartesian product, in file order); a loss parameter applies to the grid points whose loss
  declares it.
- ``[solve]``: ``method``, ``solver``, ``tol``.
- ``[verify]`` (optional): non-convex restarts at every point (``restarts``, ``optimizer``,
  ``max_iter``, ``precision``, ``device``, ``snap``, ``init``), in dimension ``dim``.

The keys of ``[solve]``, ``[verify]``, ``[network]`` and ``[[figure]]``, and the [problem] keys
that are command options, are the commands' declared options (:mod:`experiments.options`): their
types, ranges and defaults are those of ``ufm solve``, ``ufm verify`` and ``ufm network``.
- ``[[figure]]`` (any number): figures drawn from the results (:mod:`experiments.figures`).
- ``[smoke]`` (optional): ``problem = {...}`` and ``verify = {...}`` replacing entries of those
  tables for a quick run of the same study on a tiny grid (``ufm run NAME --smoke``).

The whole study is validated before anything is solved; every error names its TOML key
(``[problem].tau: must be > 0, got -1``).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from experiments.options import (
    FIGURE_OPTIONS,
    PROBLEM_KINDS,
    PROBLEM_OPTIONS,
    STUDY_TABLES,
    table_key,
    table_values,
)
from experiments.validate import (
    _is_number,
    _key,
    integer,
    number,
    string,
    suggest,
)
from ufm.errors import UFMInputError
from ufm.losses import all_params, available_losses, loss_class
from ufm.problem import Problem
from ufm.samples import MAX_SAMPLES

STUDIES_DIR = Path(__file__).parent

#: [problem] keys that say who the samples are and how the point is run (loss parameters come
#: from the losses' own declarations)
SAMPLE_KEYS = ("loss", "kind", "counts", "preset", "instances", "views", "k_major", "k_minor",
               "n_minor", "ratio", "batches", "dim", "seed")
LOSS_KEYS = (*all_params(), "reduction")
VERIFY_KEYS = tuple(STUDY_TABLES["verify"])
#: the keys each table accepts (those of [solve], [verify] and [[figure]]: their declarations)
TABLE_KEYS = {
    "study": ("name", "description"),
    "problem": (*SAMPLE_KEYS, *LOSS_KEYS),
    "solve": tuple(STUDY_TABLES["solve"]),
    "verify": VERIFY_KEYS,
    "figure": tuple(FIGURE_OPTIONS),
    "smoke": ("problem", "verify", "network"),
    "network": (),  # experiments.options.STUDY_TABLES["network"], checked by experiments.network_study
}
KINDS = PROBLEM_KINDS
#: the keys each kind of problem needs, and the kind-specific keys it accepts besides
KIND_KEYS = {"counts": ("counts",), "step": ("k_major", "k_minor", "n_minor", "ratio"),
             "preset": ("preset",), "views": ("instances",)}
KIND_OPTIONAL = {"views": ("views",)}
#: values of [problem] keys left out of the file, from their declarations (a loss parameter the
#: file leaves out takes that loss's own declared default, per point)
PROBLEM_DEFAULTS = {key: PROBLEM_OPTIONS[key].default for key in ("loss", "kind")}


# --------------------------------------------------------------------------- finding


def find_study(name: str) -> Path:
    """A path to a .toml file, or the name of a study shipped in ``experiments/``."""
    p = Path(name)
    if p.suffix == ".toml" and p.is_file():
        return p
    bundled = STUDIES_DIR / (p.name if p.suffix == ".toml" and p.name == name else f"{name}.toml")
    if bundled.is_file():
        return bundled
    raise UFMInputError("EXPERIMENT", f"no study file or bundled study {name!r} (bundled: "
                        f"{', '.join(bundled_studies())})")


def bundled_studies() -> list[str]:
    return sorted(f.stem for f in STUDIES_DIR.glob("*.toml"))


@dataclass
class Study:
    """A validated study: its header, the normalised tables and every grid point."""

    path: Path
    name: str
    description: str
    problem: dict  # [problem] after validation (file order, then defaults); lists are sweeps
    solve: dict  # [solve] with defaults filled in
    swept: list[str]  # list-valued [problem] keys, in file order
    verify: dict | None = None  # [verify] with defaults, or None: solve only
    figures: list = field(default_factory=list)  # validated [[figure]] tables
    #: figures this grid cannot draw (a --smoke grid their select misses): (file, why), said by the run
    skipped_figures: list[tuple[str, str]] = field(default_factory=list)
    points: list[dict] = field(default_factory=list)  # parameters of each grid point
    point_ids: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    smoke: bool = False

    @property
    def header(self) -> dict:
        return {"name": self.name, "description": self.description}

    def summary_fields(self) -> list[str]:
        from experiments.rows import summary_result_fields

        params = ["loss_params"] if self.implicit_loss_params else []
        return [*self.swept, *params, *summary_result_fields(self), "time_s"]

    @property
    def implicit_loss_params(self) -> bool:
        """Points whose loss parameters are not all columns or set in the file (the loss is
        swept, or a declared parameter is left at the loss's default): the summary then has a
        ``loss_params`` column."""
        if self.network:
            return False
        losses = self.problem["loss"] if "loss" in self.swept else [self.problem["loss"]]
        return "loss" in self.swept or any(p.name not in self.problem for name in losses
                                           for p in loss_class(name).params)

    @staticmethod
    def loss_params_text(params: dict) -> str:
        """The point's loss parameters, ``tau=0.3 kernel=gaussian``."""
        return " ".join(f"{p.name}={params[p.name]}" for p in loss_class(params["loss"]).params
                        if p.name in params)

    @property
    def network(self) -> bool:
        return "network" in self.solve

    @property
    def options(self) -> dict:
        """Everything besides the point's parameters that its result depends on."""
        return self.solve if self.verify is None else {**self.solve, "verify": self.verify}


# --------------------------------------------------------------------------- values


def _counts(v, where: str) -> list[int]:
    if not isinstance(v, list) or not v:
        raise UFMInputError(where, f"must be a non-empty list of class sizes, got {v!r}")
    return [integer(c, where, 1) for c in v]


def _loss(v, where: str) -> str:
    name = string(v, where)
    known = available_losses()
    if name not in known:
        raise UFMInputError(where, f"unknown loss {name!r}{suggest(name, known)} "
                            f"(known: {', '.join(known)})")
    return name


def _preset(v, where: str) -> str:
    return PROBLEM_OPTIONS["preset"].parse(string(v, where).strip().lower(), where)


def _batches(v, where: str) -> str:
    import re

    text = string(v, where).strip()
    if not re.fullmatch(r"(random|balanced):\d+", text):
        raise UFMInputError(where, f"expected random:B or balanced:B (B samples per batch), got {v!r}")
    return text


def _loss_param(name: str):
    """One value of a declared loss parameter, checked by its declaration."""
    from ufm.params import REDUCTION

    param = REDUCTION if name == "reduction" else all_params()[name][0]

    def check(v, where):
        if param.kind == "choice":
            return param.parse(string(v, where), where)
        if not _is_number(v):
            raise UFMInputError(where, f"must be a number, got {v!r}")
        return param.parse(v, where)

    return check


def _declared(key: str):
    """One value of a [problem] key that is a declared option (a TOML value: numbers are numbers)."""
    return lambda v, where: PROBLEM_OPTIONS[key].parse(v, where, typed=True)


#: one value of each [problem] key (a sweep applies it to every element)
_PROBLEM_VALUE = {
    "loss": _loss,
    "counts": _counts,
    "preset": _preset,
    **{key: _declared(key) for key in ("instances", "views", "k_major", "k_minor", "n_minor", "ratio", "dim",
                                       "seed")},
    "batches": _batches,
    **{name: _loss_param(name) for name in LOSS_KEYS},
    "tau": lambda v, w: number(v, w, 0, strict=True),
}


def _problem_entry(key: str, value, where: str):
    """(normalised value, swept?) of one [problem] entry."""
    if key == "kind":
        return _declared("kind")(value, where), False
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


# --------------------------------------------------------------------------- tables


def table(doc: dict, name: str, path: Path, required: bool) -> dict:
    if name not in doc:
        if required:
            raise UFMInputError(f"[{name}]", f"missing table in {path}")
        return {}
    value = doc[name]
    if not isinstance(value, dict):
        raise UFMInputError(f"[{name}]", f"must be a table, got {value!r}")
    check_keys(value, name)
    return value


def check_keys(value: dict, name: str, where: str | None = None) -> None:
    for key in value:
        if key not in TABLE_KEYS[name]:
            raise UFMInputError(where or _key(name, key), "unknown key" + suggest(key, TABLE_KEYS[name])
                                + f" (valid keys: {', '.join(TABLE_KEYS[name])})")


def _check_top_level(doc: dict) -> None:
    for name, value in doc.items():
        if name in TABLE_KEYS:
            continue
        if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
            raise UFMInputError(f"[{name}]", "unknown table" + suggest(name, TABLE_KEYS, "'[{}]'")
                                + " (tables: [study], [problem], [solve], [verify], [[figure]], [smoke])")
        owners = [t for t, keys in TABLE_KEYS.items() if name in keys]
        hint = f" (did you mean {_key(owners[0], name)}?)" if owners else ""
        raise UFMInputError(name, f"key outside any table{hint}: keys go in [study], [problem], "
                            "[solve] or [verify]")


def apply_smoke(doc: dict, path: Path) -> dict:
    """The study with its ``[smoke]`` replacements (``--smoke``): a tiny grid of the same study."""
    smoke = table(doc, "smoke", path, required=False)
    if not smoke:
        raise UFMInputError("--smoke", f"{path} has no [smoke] table saying what a smoke run replaces")
    out = copy.deepcopy(doc)
    for name in ("problem", "verify", "network"):
        if name not in smoke:
            continue
        repl = smoke[name]
        if not isinstance(repl, dict):
            raise UFMInputError(_key("smoke", name), f"must be a table, got {repl!r}")
        if name != "network":  # [network] keys are checked with the table
            check_keys(repl, name, _key("smoke", name))
        if name in ("verify", "network") and name not in doc:
            raise UFMInputError(_key("smoke", name),
                                f"replaces entries of [{name}], which this study has not")
        out.setdefault(name, {}).update(repl)
    header = dict(out.get("study", {}))
    header["name"] = f"{header.get('name', path.stem)}-smoke"
    out["study"] = header
    return out


def _validate_problem(raw: dict) -> tuple[dict, list[str]]:
    kind = _problem_entry("kind", raw.get("kind", PROBLEM_DEFAULTS["kind"]), _key("problem", "kind"))[0]
    for key in KIND_KEYS[kind]:
        if key not in raw:
            raise UFMInputError(_key("problem", key), f"missing: kind = {kind!r} needs "
                                f"{', '.join(KIND_KEYS[kind])}")
    for other in KINDS:
        for key in (*KIND_KEYS[other], *KIND_OPTIONAL.get(other, ())):
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
    losses = problem["loss"] if "loss" in swept else [problem["loss"]]
    declared = {name for loss in losses for name in ("reduction", *(p.name for p in loss_class(loss).params))}
    for key in LOSS_KEYS:
        if key in raw and key not in declared:
            owners = ", ".join(all_params()[key][1])
            raise UFMInputError(_key("problem", key), f"not a parameter of {', '.join(losses)} "
                                f"(it belongs to {owners})")
    return problem, swept


def _validate_verify(doc: dict, path: Path) -> dict | None:
    if "verify" not in doc:
        return None
    opts = table_values(table(doc, "verify", path, required=False), "verify")  # init only where set
    if opts["device"] == "cuda":
        from solvers.nonconvex import resolve_device

        try:
            resolve_device("cuda")
        except UFMInputError as err:
            raise UFMInputError(_key("verify", "device"), err.message) from None
    return opts


def validate_study(doc: dict, path: Path, smoke: bool = False) -> Study:
    """Check every table, key, type and range of a parsed study; build every grid point."""
    from experiments.figures import validate_figures

    _check_top_level(doc)
    if smoke:
        doc = apply_smoke(doc, path)
    elif "smoke" in doc:
        apply_smoke(doc, path)  # checked even when not used
    header = table(doc, "study", path, required=False)
    name = string(header.get("name", path.stem), _key("study", "name"))
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise UFMInputError(_key("study", "name"), f"must be a non-empty name usable as a folder "
                            f"name (no '/', '\\'), got {name!r}")
    description = string(header.get("description", ""), _key("study", "description"))

    if "network" in doc:
        return _network_study(doc, path, name, description, smoke)
    problem, swept = _validate_problem(table(doc, "problem", path, required=True))
    opts = table_values(table(doc, "solve", path, required=False), "solve")
    verify = _validate_verify(doc, path)

    study = Study(path, name, description, problem, opts, swept, verify, smoke=smoke)
    for params in grid(problem, swept):
        pid = point_id(params, study.options)
        if pid in study.point_ids:  # a loss parameter swept beside a loss that does not take it
            continue
        study.points.append(params)
        study.point_ids.append(pid)
        study.problems.append(checked_problem(params, opts, verify))
    study.figures, study.skipped_figures = validate_figures(doc.get("figure", []), study)
    return study


def _network_study(doc: dict, path: Path, name: str, description: str, smoke: bool) -> Study:
    """A study of networks (``[network]``): its grid, each point a census or a training run."""
    from experiments.figures import validate_figures
    from experiments.network_study import check_network_point, validate_network

    for other in ("problem", "solve", "verify"):
        if other in doc:
            raise UFMInputError(f"[{other}]", "not used with [network] (a study poses problems or networks)")
    raw = doc["network"]
    if not isinstance(raw, dict):
        raise UFMInputError("[network]", f"must be a table, got {raw!r}")
    net, swept = validate_network(raw)
    study = Study(path, name, description, net, {"network": net["model"]}, swept, None, smoke=smoke)
    axes = [net[key] if key in swept else [net[key]] for key in net]
    for combo in itertools.product(*axes):
        params = dict(zip(net, combo, strict=True))
        check_network_point(params)
        study.points.append(params)
        study.point_ids.append(point_id(params, study.options))
        study.problems.append(None)
    study.figures, study.skipped_figures = validate_figures(doc.get("figure", []), study)
    return study


def load_study(path: Path, smoke: bool = False) -> Study:
    """Read and validate a study file (errors name the file or the TOML key at fault)."""
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UFMInputError(str(path), f"TOML syntax error: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UFMInputError(str(path), f"cannot read the study: {err}") from None
    return validate_study(doc, path, smoke)


# --------------------------------------------------------------------------- grid points


def grid(problem: dict, swept: list[str]):
    """Yield one parameter dict per grid point: the Cartesian product of the swept keys, without
    the loss parameters that the point's loss does not declare, and with those it declares but
    the file leaves out at the loss's own defaults (DHEL tau 0.3, alpha-CL tau 0.5, ...): every
    point says which parameters it used."""
    axes = [problem[key] if key in swept else [problem[key]] for key in problem]
    for combo in itertools.product(*axes):
        params = dict(zip(problem, combo, strict=True))
        cls = loss_class(params["loss"])
        own = {"reduction", *(p.name for p in cls.params)}
        point = {k: v for k, v in params.items() if k not in LOSS_KEYS or k in own}
        for p in cls.params:
            point.setdefault(p.name, p.default)
        yield point


def point_id(params: dict, options: dict) -> str:
    """Stable id of a grid point: sha256 of the canonical JSON of its parameters and the
    options (``[solve]``, and ``[verify]`` when there is one; sorted keys), first 16 hex
    characters. ``threads`` is left out: results never depend on it."""
    def drop(table: dict) -> dict:
        return {k: drop(v) if isinstance(v, dict) else v for k, v in table.items() if k != "threads"}

    canonical = json.dumps(drop({**params, **options}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def point_counts(params: dict) -> tuple[int, ...] | None:
    """Class counts of a counts, step or preset point (None for instances x views)."""
    kind = params["kind"]
    if kind == "counts":
        return tuple(params["counts"])
    if kind == "step":
        major = int(round(params["ratio"] * params["n_minor"]))
        return (major,) * params["k_major"] + (params["n_minor"],) * params["k_minor"]
    if kind == "preset":
        from ufm.inputs import preset_counts

        return preset_counts(params["preset"], _key("problem", "preset"))
    return None


def build_problem(params: dict) -> Problem:
    """The problem of one (validated) grid point."""
    from ufm.samples import Samples

    loss_cls = loss_class(params["loss"])
    own = {"reduction", *(p.name for p in loss_cls.params)}
    loss = loss_cls(**{k: v for k, v in params.items() if k in own})
    counts = point_counts(params)
    views = params.get("views", PROBLEM_OPTIONS["views"].default)
    samples = (Samples.instances_views(params["instances"], views) if counts is None
               else Samples.from_counts(counts))
    loss.check_samples(samples, _key("problem", "loss"))
    if "batches" in params:
        from ufm.inputs import read_batches

        seed = params.get("seed", PROBLEM_OPTIONS["seed"].default)
        samples = read_batches(params["batches"], samples, seed, _key("problem", "batches"))
    problem = Problem(loss, samples)
    if "dim" in params:
        problem.dim = params["dim"]
    return problem


def toml_key(argument: str) -> str:
    """The study key a library error's argument stands for: a parameter ``max_iter`` (or its CLI
    spelling ``--max-iter``) is the key ``max_iter`` of the table that declares it (``[problem]``,
    ``[solve]`` or ``[verify]``), so a study's error names what its author wrote; anything else is
    kept (:func:`experiments.options.table_key`)."""
    return table_key(argument)


def _point_words(params: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in params.items() if k not in ("kind",))


def checked_problem(params: dict, opts: dict, verify: dict | None) -> Problem:
    """Checks that need a whole grid point (step sizes, solver limits), then its problem."""
    from solvers.solve import FULL_MAX_N

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
        if verify is not None:
            from solvers.nonconvex import check_dim
            from solvers.verify import default_dim

            check_dim(params.get("dim", default_dim(problem)))
    except UFMInputError as err:  # a limit of Problem itself, named by its CLI spelling
        key = toml_key(err.argument)
        if params["kind"] == "step" and key == "[problem].counts":
            key = "[problem]"
        raise UFMInputError(key, err.message) from None
    reason = problem.degenerate()
    if verify is not None and reason is not None:
        raise UFMInputError(_key("problem", "counts" if params["kind"] == "counts" else "kind"),
                            f"degenerate problem at {_point_words(params)} ({reason}): no restarts to run")
    if verify is None or problem.loss.has_relaxation:
        from solvers.solve import resolve_method

        try:
            resolve_method(problem, opts["method"])
        except UFMInputError as err:
            raise UFMInputError(_key("solve", "method"),
                                f"{err.message} (at {_point_words(params)})") from None
    if verify is None and not problem.loss.has_relaxation:
        raise UFMInputError(_key("problem", "loss"), f"{problem.loss.name} is not convex in the Gram "
                            "matrix and has no convex relaxation: nothing to solve (add a [verify] "
                            "table to run restarts and their census)")
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
