"""Figures a study declares (``[[figure]]`` tables), drawn from its results into its folder.

Each figure has a ``kind``, a ``file`` (``.png``, ``.pdf`` or ``.svg``, written beside
``results.jsonl``), an optional ``title`` and ``select``, a table of ``[problem]`` values picking
grid points (``select = {tau = 0.1, preset = "imagenet-lt"}``). Kinds:

- one point (``select`` must pick exactly one): ``heatmap`` (class-mean cosines), ``long_tail``
  (cosines against class size), ``embedding`` (PCA of the embeddings, ``projection = "2d"`` or
  ``"3d"``), ``census`` and ``curves`` (studies with ``[verify]``: the restart census, and the
  value against iteration);
- several points: ``step`` (class-mean cosines against R and tau, step problems), ``family``
  (one heatmap per point, titled by what differs), ``lines`` (a summary column ``y`` (or a list
  of them) against a swept key ``x``, one line per value of ``by``);
- networks: ``network_census`` (one-layer), ``specialisation`` (two-layer), ``modulation`` (the
  modulation model: the token scores over training of the points picked, one panel per point,
  which may differ in activation only).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from experiments.options import FIGURE_KINDS as KINDS  # noqa: F401 - every kind of figure
from experiments.options import FIGURE_MULTI as MULTI  # noqa: F401 - figures of several points
from experiments.options import FIGURE_NETWORK as NETWORK  # studies of networks ([network])
from experiments.options import FIGURE_OPTIONS
from experiments.options import FIGURE_SINGLE as SINGLE
from experiments.validate import suggest
from ufm.errors import UFMInputError
from ufm.plotting import FIGURE_SUFFIXES as SUFFIXES
from ufm.plotting.style import styled
from ufm.plotting.titles import result_title


def _where(i: int, key: str) -> str:
    return f"[[figure]] {i + 1}: {key}"


def _matches(params: dict, select: dict) -> bool:
    for key, value in select.items():
        have = params.get(key)
        if isinstance(value, int | float) and isinstance(have, int | float) and not isinstance(value, bool):
            if float(have) != float(value):
                return False
        elif isinstance(value, str) and isinstance(have, str):
            if have.lower() != value.lower():
                return False
        elif have != value:
            return False
    return True


def validate_figures(raw, study) -> tuple[list[dict], list[tuple[str, str]]]:
    """Check every ``[[figure]]`` table against the study (kinds, files, selections, columns).
    Returns the figures to draw and, as (file, why), those a --smoke grid cannot draw."""
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise UFMInputError("[[figure]]", "must be an array of tables ([[figure]] ... )")
    figures, skipped, files = [], [], set()
    for i, fig in enumerate(raw):
        values = _declared_values(fig, i)
        kind = values["kind"]
        _check_kind(kind, i, study)
        _check_file(values["file"], i, files)
        chosen = _chosen(values.get("select", {}), i, study)
        if not chosen and study.smoke:  # a figure of points the smoke grid leaves out: said, not drawn
            picks = ", ".join(f"{k} = {v!r}" for k, v in values.get("select", {}).items())
            skipped.append((values["file"], f"its select ({picks}) picks no point of the --smoke grid; "
                            "the full study draws it"))
            continue
        _check_selection(kind, values.get("select", {}), i, study, chosen)
        for key in ("projection", "x", "y", "by"):
            if key in values and kind != ("embedding" if key == "projection" else "lines"):
                which = "embedding" if key == "projection" else "lines"
                raise UFMInputError(_where(i, key), f"only for {which} figures (this is {kind})")
        _check_drawable(kind, i, study, chosen)
        if kind == "lines":
            _check_lines(values, i, study)
        figures.append({**fig, "kind": kind, "points": chosen})
    return figures, skipped


def _declared_values(fig: dict, i: int) -> dict:
    """The keys of one [[figure]] table, each checked by its declaration
    (:data:`experiments.options.FIGURE_OPTIONS`); ``kind`` and ``file`` are required."""
    for key in fig:
        if key not in FIGURE_OPTIONS:
            raise UFMInputError(_where(i, key), "unknown key" + suggest(key, FIGURE_OPTIONS)
                                + f" (valid keys: {', '.join(FIGURE_OPTIONS)})")
    if "title" in fig:
        FIGURE_OPTIONS["title"].parse(fig["title"], _where(i, "title"), typed=True)
    for key in ("kind", "file"):
        if key not in fig:
            raise UFMInputError(_where(i, key), "missing")
    return {key: FIGURE_OPTIONS[key].parse(value, _where(i, key), typed=True) for key, value in fig.items()}


def _check_kind(kind: str, i: int, study) -> None:
    """A kind the study can draw: solved problems, or networks of the study's model."""
    if study.network and kind not in (*NETWORK, "lines"):
        raise UFMInputError(_where(i, "kind"), f"{kind} draws solved problems; a [network] study draws "
                            "network_census, specialisation, modulation or lines")
    if not study.network and kind in NETWORK:
        raise UFMInputError(_where(i, "kind"), f"{kind} needs a [network] study")
    if kind == "network_census" and study.problem["model"] != "one-layer":
        raise UFMInputError(_where(i, "kind"), "network_census draws one-layer censuses (two-layer: "
                            "specialisation)")
    if kind == "specialisation" and study.problem["model"] != "two-layer":
        raise UFMInputError(_where(i, "kind"), "specialisation draws two-layer networks (one-layer: "
                            "network_census)")
    if kind == "modulation" and study.problem["model"] != "modulation":
        raise UFMInputError(_where(i, "kind"), "modulation draws the modulation model (one-layer: "
                            "network_census; two-layer: specialisation)")


def _check_file(name: str, i: int, files: set) -> None:
    """A file name (no folders) of a figure type, not drawn by another figure."""
    if Path(name).name != name or Path(name).suffix.lower() not in SUFFIXES:
        raise UFMInputError(_where(i, "file"), f"must be a file name ending in {', '.join(SUFFIXES)} "
                            f"(no folders), got {name!r}")
    if name in files:
        raise UFMInputError(_where(i, "file"), f"{name!r} is drawn by two figures")
    files.add(name)


def _chosen(select: dict, i: int, study) -> list[int]:
    """The grid points ``select`` picks (its keys checked against [problem])."""
    for key, value in select.items():
        if key not in study.problem:
            raise UFMInputError(_where(i, f"select.{key}"), "not a [problem] key of this study"
                                + suggest(key, study.problem))
        if isinstance(value, list | dict) and key != "counts":
            raise UFMInputError(_where(i, f"select.{key}"), f"one value of {key}, got {value!r}")
    return [j for j, p in enumerate(study.points) if _matches(p, select)]


def _check_selection(kind: str, select: dict, i: int, study, chosen: list[int]) -> None:
    """The points picked suit the kind: some at all, one for a single-point figure, restarts for a
    census, one setting per network census, step problems for a step figure."""
    if not chosen:
        raise UFMInputError(_where(i, "select"), f"picks no grid point ({select})")
    if kind in SINGLE and len(chosen) > 1:
        raise UFMInputError(_where(i, "select"), f"a {kind} figure draws one point; {select or 'it'} "
                            f"picks {len(chosen)} (add swept keys: {', '.join(study.swept)})")
    if kind in ("census", "curves") and study.verify is None:
        raise UFMInputError(_where(i, "kind"), f"{kind} needs restarts: add a [verify] table")
    if kind in ("network_census", "modulation"):
        varying = [k for k in study.swept if k != "activation"
                   and len({repr(study.points[j].get(k)) for j in chosen}) > 1]
        if varying:
            what = "census" if kind == "network_census" else "training run"
            raise UFMInputError(_where(i, "select"), f"a {kind} figure draws one {what} per activation; "
                                f"select one value of {', '.join(varying)}")
    if kind == "step" and study.problem.get("kind") != "step":
        raise UFMInputError(_where(i, "kind"), "step figures need kind = \"step\" problems")


def _check_drawable(kind: str, i: int, study, chosen: list[int]) -> None:
    """A figure of a geometry picks a point that has one, of a size the saved arrays hold."""
    from experiments.rows import MAX_ARRAY_CLASSES, MAX_ARRAY_SAMPLES

    geometric = kind in ("heatmap", "long_tail", "embedding", "family")
    if geometric and all(study.problems[j].degenerate() is not None for j in chosen):
        raise UFMInputError(_where(i, "select"), f"a {kind} figure needs a geometry; every point it "
                            f"picks is degenerate ({study.problems[chosen[0]].degenerate()})")
    if kind in ("heatmap", "long_tail"):
        k = study.problems[chosen[0]].k
        if not 2 <= k <= MAX_ARRAY_CLASSES:
            raise UFMInputError(_where(i, "select"), f"a {kind} figure draws 2 to {MAX_ARRAY_CLASSES} "
                                f"classes; the point has {k}")
    if kind == "embedding" and study.problems[chosen[0]].n > MAX_ARRAY_SAMPLES:
        raise UFMInputError(_where(i, "select"), f"an embedding figure draws at most "
                            f"{MAX_ARRAY_SAMPLES} samples (the embeddings saved); the point has "
                            f"{study.problems[chosen[0]].n}")


def _check_lines(values: dict, i: int, study) -> None:
    """A lines figure: y (summary columns) against a swept x, one line per value of another swept
    key ``by``."""
    for key in ("x", "y"):
        if key not in values:
            raise UFMInputError(_where(i, key), "missing: a lines figure plots y against x")
    x = values["x"]
    if x not in study.swept:
        raise UFMInputError(_where(i, "x"), "must be a swept [problem] key "
                            f"({', '.join(study.swept)}), got {x!r}")
    columns = study.summary_fields()
    for y in values["y"] if isinstance(values["y"], list) else [values["y"]]:
        if y not in columns:
            raise UFMInputError(_where(i, "y"), f"unknown column {y!r}{suggest(y, columns)}")
    by = values.get("by")
    if by is not None and (by not in study.swept or by == x):
        raise UFMInputError(_where(i, "by"), f"must be another swept key, got {by!r}")


def _describe_params(params: dict, keys) -> str:
    parts = []
    for key in keys:
        value = params.get(key)
        if isinstance(value, list):
            value = f"{len(value)} classes"
        elif isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def draw_figures(study, rows: list[dict], arrays_of, out: Path, log=None) -> list[Path]:
    """Draw every declared figure into ``out``; ``arrays_of(point_id)`` loads a point's arrays."""
    from ufm import plotting

    written = []
    for file, why in study.skipped_figures:
        if log is not None:
            log(f"ufm run: figure {out / file} NOT drawn: {why}")
    for fig_spec in study.figures:
        try:
            fig = _draw(study, fig_spec, rows, arrays_of, log)
        except (KeyError, ValueError) as err:  # checked when the study was loaded; never lose the run
            if log is not None:
                log(f"ufm run: figure {fig_spec['file']} NOT drawn: {type(err).__name__}: {err}")
            continue
        path = out / fig_spec["file"]
        plotting.save_figure(fig, path)
        written.append(path)
        if log is not None:
            log(f"ufm run: figure {path}")
    return written


@styled
def _draw(study, fig_spec: dict, rows: list[dict], arrays_of, log):
    """The Figure of one declared figure. A figure of one point is titled with the study's title
    and, below it, the point drawn (loss, samples, tau, d, restarts) and its verdict."""
    from ufm import plotting

    kind = fig_spec["kind"]
    chosen = [rows[j] for j in fig_spec["points"]]
    title = fig_spec.get("title")
    row = chosen[0]
    if kind in SINGLE:
        title = "\n".join(t for t in (title, result_title(row)) if t)
    if kind in ("heatmap", "long_tail", "embedding", "curves"):
        arrays = arrays_of(row["point_id"])
    if kind == "heatmap":
        fig = plotting.class_cosine_heatmap(arrays["class_gram"], arrays["counts"], title=title)
    elif kind == "long_tail":
        fig = plotting.cosines_vs_class_size(arrays["class_gram"], arrays["counts"], title=title)
    elif kind == "embedding":
        dim = 3 if fig_spec.get("projection", "2d") == "3d" else 2
        fig = plotting.embedding_scatter(arrays["embeddings"], arrays["labels"], dim=dim, title=title)
    elif kind == "census":
        fig = plotting.restart_census(row["restarts"], title=title)
    elif kind == "curves":
        fig = plotting.optimisation_curves(list(arrays["value_history"].T), row.get("optimal_value"),
                                           row.get("floor", 0.0), title=title)
    elif kind == "step":
        fig = plotting.step_panels([{**r["params"], **r} for r in chosen])
    elif kind == "family":
        varying = [k for k in study.swept if len({repr(r["params"].get(k)) for r in chosen}) > 1]
        panels = []
        for r in chosen:
            cos = arrays_of(r["point_id"]).get("class_gram")
            if cos is None:
                if log is not None:
                    why = r.get("degenerate") or "no class-mean cosines saved"
                    log(f"ufm run: {fig_spec['file']}: {_describe_params(r['params'], varying)} has no "
                        f"geometry to draw ({why}); left out")
                continue
            if "best_value" in r:  # a study with restarts draws its best end point: its value
                sub = (f"best of {len(r['restarts'])} in d = {r['dim']}: {r['best_value']:.6g}"
                       if r.get("best_value") is not None else "")
            else:  # the certified optimum
                sub = f"value {r['optimal_value']:.6g}" if r.get("optimal_value") is not None else ""
                if r.get("rank") is not None:
                    sub += f", rank {r['rank']}"
            used = textwrap.fill(study.loss_params_text(r["params"]), 34)
            name = _describe_params(r["params"], varying) or r["params"]["loss"]
            panels.append({"name": name, "cosines": cos, "subtitle": f"{used}\n{sub}" if used else sub})
        fig = plotting.loss_family(panels, title=title)
    elif kind == "network_census":
        varying = [k for k in study.swept if k != "activation"
                   and len({repr(r["params"].get(k)) for r in chosen}) > 1]
        if varying:  # one census per activation: the points must differ in activation only
            raise ValueError(f"network_census: select one value of {', '.join(varying)}")
        fig = plotting.network_census(chosen, title=title)
    elif kind == "specialisation":
        varying = [k for k in study.swept if len({repr(r["params"].get(k)) for r in chosen}) > 1]
        scores, coverage, paper_score = {}, {}, {}
        for r in chosen:
            s = arrays_of(r["point_id"]).get("specialisation")
            if s is not None:
                name = _describe_params(r["params"], varying) or r["params"]["activation"]
                scores[name] = s.ravel()
                if r.get("token_coverage") is not None:
                    coverage[name] = r["token_coverage"]
                if r.get("paper_score") is not None:
                    paper_score[name] = r["paper_score"]
        fig = plotting.specialisation_histogram(scores, title=title, coverage=coverage or None,
                                                paper_score=paper_score or None)
    elif kind == "modulation":
        fig = plotting.modulation_panels([_modulation_curves(r, arrays_of(r["point_id"])) for r in chosen],
                                         title=title)
    else:  # lines
        ys = fig_spec["y"] if isinstance(fig_spec["y"], list) else [fig_spec["y"]]
        over = [k for k in study.swept if k not in (fig_spec["x"], fig_spec.get("by"))]
        fig = plotting.summary_lines([{**r["params"], **r} for r in chosen], fig_spec["x"], ys,
                                     fig_spec.get("by"), title=title, over=over or None)
    if title and kind in ("step",):
        fig.suptitle(title, wrap=True)
    return fig


def _modulation_curves(row: dict, arrays: dict) -> dict:
    """A modulation point's curves as ``ModulationResult.to_dict`` gives them, from its saved arrays
    (``steps``, ``scores``: recorded steps x tokens, ``discriminative``: the token's class,
    ``crossing``: -1 where never) and its row (the summary)."""
    if "scores" not in arrays:
        raise ValueError(f"modulation: point {row['point_id']} has no recorded scores")
    disc = arrays["discriminative"].astype(bool)
    out = {"activation": row["params"]["activation"], "threshold": row["threshold"],
           "steps": arrays["steps"].tolist(), "summary": row}
    for cls, mask in (("discriminative", disc), ("shared", ~disc)):
        out[cls] = {"scores": arrays["scores"][:, mask].T.tolist(),
                    "crossing": [None if c < 0 else int(c) for c in arrays["crossing"][mask]]}
    return out


def load_arrays(out: Path):
    """``arrays_of(point_id)``: the arrays saved with a point (an empty dict if none)."""

    def arrays_of(pid: str) -> dict:
        path = out / "arrays" / f"{pid}.npz"
        if not path.is_file():
            return {}
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    return arrays_of
