"""``ufm plot KIND`` and the ``--plot FILE`` of ``solve``, ``verify`` and ``certify``: the data each
figure needs (solving, verifying or reading embeddings), then :mod:`ufm.plotting`.

Kinds: ``heatmap`` (class-mean cosines), ``embedding`` (PCA of the embeddings, 2D or on the 3D
sphere), ``long_tail`` (cosines against class size), ``step`` (cosines against R and tau for STEP
problems), ``census`` (restarts: gaps, lambda_min, distinct minima), ``curves`` (the gap to the optimum
against iteration), ``family`` (the loss family side by side on the same samples).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from experiments.options import PLOT_KINDS as KINDS  # noqa: F401 - the kinds of ufm plot
from experiments.options import PLOT_OPTIONS
from ufm.errors import UFMInputError
from ufm.plotting.style import styled
from ufm.plotting.titles import solve_verdict, verify_verdict

#: largest problems drawn sample by sample / class by class
MAX_DRAWN_SAMPLES = 20000
MAX_DRAWN_CLASSES = 5000


def figure_path(value: str, argument: str):
    """The output file of a figure: a .png, .pdf or .svg in a writable folder (checked before any
    work)."""
    import os
    from pathlib import Path

    from ufm.plotting import FIGURE_SUFFIXES as SUFFIXES

    if not str(value).strip():
        raise UFMInputError(argument, "empty path")
    path = Path(value)
    if path.suffix.lower() not in SUFFIXES:
        raise UFMInputError(argument, f"must end in {', '.join(SUFFIXES)}, got {value!r}")
    if path.is_dir():
        raise UFMInputError(argument, f"is a directory: {value}")
    folder = path.parent
    if not folder.is_dir():
        raise UFMInputError(argument, f"folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UFMInputError(argument, f"folder {str(folder)!r} is not writable")
    return path


def _value(args, name: str):
    """Option ``name`` of ``ufm plot``, checked by its declaration."""
    return PLOT_OPTIONS[name].parse(getattr(args, name))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- figures of results


def problem_title(problem, args=None, **parts) -> str:
    """The title of a figure of ``problem``: loss, counts (the preset's name where --counts named
    one) or instances x views, tau, and ``parts`` (dim, restarts, verdict, extra)."""
    from ufm.inputs import PRESETS
    from ufm.plotting.titles import problem_title as words

    given = getattr(args, "counts", None) if args is not None else None
    preset = given.strip().lower() if isinstance(given, str) and given.strip().lower() in PRESETS else None
    grid = problem.samples.grid
    samples = None if grid is None else f"{grid[0]} instances x {grid[1]} views"
    batches = problem.samples.batches
    extra = parts.pop("extra", None)
    if batches is not None:
        extra = ", ".join(w for w in (f"{len(batches)} batches", extra) if w)
    return words(problem.loss.name, problem.counts, preset=preset, samples=samples, tau=problem.tau,
                 extra=extra, **parts)


@styled
def solve_figure(res, args=None):
    """The optimum of ``ufm solve``: the class-mean cosine heatmap, beside the cosines against
    class size when the counts are not all equal; titled with the problem and the verdict."""
    from ufm import plotting

    p = res.problem
    if res.geometry is None:
        raise UFMInputError("--plot", f"degenerate problem ({res.degenerate}): no geometry to draw")
    cos, counts = res.class_gram(), np.asarray(p.counts)
    title = _solved_title(res, args)
    if len(set(counts.tolist())) == 1 or p.k < 2:
        return plotting.class_cosine_heatmap(cos, counts, title=title)
    fig = plotting.new_figure(2, 0.85, extra_height=0.2)
    a, b = fig.subplots(1, 2)
    plotting.class_cosine_heatmap(cos, counts, ax=a, title="class-mean cosines")
    plotting.cosines_vs_class_size(cos, counts, ax=b, title="against class size")
    fig.suptitle(title, wrap=True)
    return fig


@styled
def verify_figure(res, args=None):
    """The census of ``ufm verify`` (gaps, lambda_min, minima and their basins) and the
    optimisation curves, in two rows of two panels, titled with the problem and the verdict."""
    from ufm import plotting

    payload = res.to_dict()
    fig = plotting.new_figure(2, 0.75, rows=2, extra_height=0.2)
    axes = fig.subplots(2, 2).ravel()
    plotting.restart_census(payload["restarts"], axes=axes[:3])
    history = res.run.value_history(res.problem.floor()) if res.run.history is not None else None
    if history is not None:
        scale = (payload.get("optimum_certificate") or {}).get("scale")
        plotting.optimisation_curves(list(history.T), payload["optimal_value"], payload["floor"], ax=axes[3],
                                     scale=scale)
    else:
        fig.delaxes(axes[3])
    fig.suptitle(problem_title(res.problem, args, dim=res.dim, restarts=len(res.restarts),
                               verdict=verify_verdict(payload["restarts"], payload.get("distinct_minima"))),
                 wrap=True)
    return fig


@styled
def embeddings_figure(H: np.ndarray, labels: np.ndarray, counts, title: str, dim: int = 2):
    """Given embeddings (``ufm plot embedding --embeddings``): their PCA scatter beside the heatmap
    of their class-mean cosines."""
    from ufm import plotting
    from ufm.metrics import class_mean_cosines

    fig = plotting.new_figure(2, 0.85, extra_height=0.2)
    a = fig.add_subplot(1, 2, 1, projection="3d" if dim == 3 else None)
    b = fig.add_subplot(1, 2, 2)
    plotting.embedding_scatter(H, labels, ax=a, dim=dim)
    plotting.class_cosine_heatmap(class_mean_cosines(H, labels), counts, ax=b)
    fig.suptitle(title, wrap=True)
    return fig


@styled
def certify_figure(H: np.ndarray, problem, report: dict, source: str, args=None):
    """``ufm certify --plot``: the embeddings (PCA) and, for the same counts, their class-mean
    cosines beside the optimum's and the difference; the title gives the verdict and the
    distances to the optimum (Gram and largest cosine difference)."""
    from ufm import plotting

    labels, counts = np.asarray(problem.labels), np.asarray(problem.counts)
    verdict = "certified global optimum" if report.get("certified") else "NOT certified"
    title = problem_title(problem, args, extra=f"d {H.shape[1]}", verdict=verdict)
    distance = report.get("gram_distance")
    details = [f"{source}: value {report.get('value', float('nan')):.6g}"]
    if distance is not None:
        details.append(f"Gram distance to the optimum {distance:.2g}")
    if report.get("cosines_vs_optimum") is not None:
        details.append(f"max |cosine - optimum's| {report['cosines_vs_optimum']:.2g}")
    optimum = report.get("optimal_class_mean_cosines")
    if optimum is None or report.get("class_mean_cosines") is None or problem.k < 2:
        fig = embeddings_figure(H, labels, counts, title + "\n" + "; ".join(details))
        return fig
    fig = plotting.new_figure(2, 0.85, rows=2, extra_height=0.35)
    axes = [fig.add_subplot(2, 2, i) for i in (1, 2, 3, 4)]
    plotting.cosines_against_optimum(report["class_mean_cosines"], optimum, counts, axes=axes[:3])
    plotting.embedding_scatter(H, labels, ax=axes[3])
    fig.suptitle(title + "\n" + "; ".join(details), wrap=True)
    return fig


# --------------------------------------------------------------------------- ufm plot KIND


def _solve(problem, seed: int):
    from solvers import solve
    from ufm.problem import require_relaxation

    require_relaxation(problem, "plot")
    reason = problem.degenerate()
    if reason is not None:
        raise UFMInputError("--counts", f"degenerate problem ({reason}): no geometry to draw")
    _log(f"ufm plot: solving {problem.loss.name}, k = {problem.k}, n = {problem.n} ...")
    return solve(problem, seed=seed)


def _verify(problem, args, seed: int):
    from solvers.verify import default_dim, verify

    dim = default_dim(problem) if args.dim is None else _value(args, "dim")
    restarts = _value(args, "restarts")
    _log(f"ufm plot: {restarts} restarts of {problem.loss.name} in d = {dim}, n = {problem.n} ...")
    return verify(problem, dim, restarts, seed=seed)


def _user_embeddings(args):
    """(H, labels, counts) from --embeddings with --labels (rows normalised)."""
    from ufm.inputs import label_samples, print_notes, read_embeddings

    if args.labels is None:
        raise UFMInputError("--labels", "required with --embeddings")
    H = read_embeddings(args.embeddings)
    samples = label_samples(args.labels, getattr(args, "label_column", None))
    print_notes(samples)
    if samples.n != H.shape[0]:
        raise UFMInputError("--labels", f"{samples.n} labels for {H.shape[0]} embeddings")
    if H.shape[0] > MAX_DRAWN_SAMPLES:
        raise UFMInputError("--embeddings", f"{H.shape[0]} rows; plots draw at most {MAX_DRAWN_SAMPLES}")
    norms = np.linalg.norm(H, axis=1)
    if np.any(norms == 0):
        raise UFMInputError("--embeddings", "a row is zero: no direction to draw")
    H = H / norms[:, None]
    H = samples.from_user_order(H)  # rows in the labels file's order, to the class order
    return H, np.asarray(samples.labels), np.asarray(samples.counts)


def _class_data(args, problem_of, seed):
    """(class-mean cosines, counts, title) of the optimum, or of --embeddings."""
    from ufm.metrics import class_mean_cosines

    if args.embeddings is not None:
        H, labels, counts = _user_embeddings(args)
        return class_mean_cosines(H, labels), counts, f"{args.embeddings}: k = {len(counts)}"
    problem = problem_of()
    if problem.k > MAX_DRAWN_CLASSES:
        raise UFMInputError("--counts", f"{problem.k} classes; plots draw at most {MAX_DRAWN_CLASSES}")
    res = _solve(problem, seed)
    return res.class_gram(), np.asarray(problem.counts), _solved_title(res, args)


def _solved_title(res, args) -> str:
    """The title of a figure of a solved problem: the problem, the verdict and the rank."""
    cert = res.certificate
    verdict = solve_verdict(None if cert is None else cert.certified, None if cert is None else cert.reason)
    return problem_title(res.problem, args, verdict=f"{verdict}, rank {res.rank}")


def _step_rows(args, loss_of, seed: int) -> list[dict]:
    from solvers import solve
    from ufm.metrics import step_class_cosines
    from ufm.params import check_tau
    from ufm.problem import Problem
    from ufm.samples import MAX_SAMPLES, Samples

    k_major, k_minor, n_minor = (_value(args, k) for k in ("k_major", "k_minor", "n_minor"))
    if k_major + k_minor < 2:
        raise UFMInputError("--k-major", "k_major + k_minor must be >= 2")
    if (k_major + k_minor) * n_minor > MAX_SAMPLES:
        raise UFMInputError("--k-major", f"{k_major + k_minor} classes of at least {n_minor} samples: more "
                            f"than {MAX_SAMPLES} samples")
    ratios = [_ratio(r) for r in _list(args.ratios, "--ratios")]
    loss = loss_of()
    if "tau" not in loss.values:
        raise UFMInputError("--loss", f"{loss.name} has no temperature: step plots sweep tau")
    from ufm.problem import require_relaxation

    taus = [check_tau(t, "--taus") for t in _list(args.taus, "--taus")] if args.taus else [loss.tau]
    problems = []  # every point built and checked before the first solve
    for tau in taus:
        for ratio in ratios:
            major = ratio * n_minor
            if abs(major - round(major)) > 1e-9 * major:
                raise UFMInputError("--ratios", f"ratio * n_minor must be a whole class size, got "
                                    f"{ratio:g} * {n_minor}")
            if round(major) * k_major + n_minor * k_minor > MAX_SAMPLES:
                raise UFMInputError("--ratios", f"R = {ratio:g} gives more than {MAX_SAMPLES} samples")
            counts = (round(major),) * k_major + (n_minor,) * k_minor
            problem = Problem(type(loss)(**{**loss.values, "tau": tau}), Samples.from_counts(counts))
            require_relaxation(problem, "plot")
            reason = problem.degenerate()
            if reason is not None:
                raise UFMInputError("--n-minor", f"degenerate problem at R = {ratio:g} ({reason})")
            problems.append((ratio, tau, problem))
    rows = []
    for ratio, tau, problem in problems:
        _log(f"ufm plot: step R = {ratio:g}, tau = {tau:g} ...")
        res = solve(problem, seed=seed)
        rows.append({"ratio": ratio, "tau": tau, **step_class_cosines(res.class_gram(), k_major)})
    return rows


def _list(text, argument: str) -> list[str]:
    items = [t for t in str(text).replace(",", " ").split() if t]
    if not items:
        raise UFMInputError(argument, "empty list")
    return items


def _ratio(text: str) -> float:
    from ufm.params import Param

    return Param("ratio", None, "", minimum=1.0, strict=False).parse(text, "--ratios")


def _family_panels(args, samples_of, seed: int) -> tuple[list[dict], object]:
    from solvers import solve
    from ufm.losses import LOSSES, all_params, loss_class
    from ufm.problem import Problem

    names = _list(args.losses, "--losses") if args.losses else list(LOSSES)
    for name in names:
        try:
            loss_class(name)
        except UFMInputError as err:
            raise UFMInputError("--losses", err.message) from None
    given = {name: getattr(args, name) for name in (*all_params(), "reduction")
             if getattr(args, name, None) is not None}
    for key in given:
        if key != "reduction" and not any(key in {p.name for p in loss_class(n).params} for n in names):
            raise UFMInputError("--" + key.replace("_", "-"), f"not a parameter of {', '.join(names)}")
    samples = samples_of()
    problems = []  # every loss built and checked on the samples before the first solve
    for name in names:
        cls = loss_class(name)
        own = {p.name for p in cls.params} | {"reduction"}
        loss = cls(**{k: v for k, v in given.items() if k in own})
        try:
            loss.check_samples(samples, "--losses")
        except UFMInputError:
            if args.losses:
                raise
            _log(f"ufm plot: {name} skipped (needs instances x views: --instances N)")
            continue
        problem = Problem(loss, samples)
        reason = problem.degenerate()
        if reason is not None:
            raise UFMInputError("--losses", f"{name}: degenerate problem ({reason})")
        problems.append((name, loss, problem))
    _value(args, "dim")
    panels = []
    for name, loss, problem in problems:
        if args.dim is not None or not loss.has_relaxation:
            res = _verify(problem, args, seed)
            best = int(np.argmin([r.excess for r in res.restarts]))
            from ufm.metrics import class_mean_cosines

            cos = class_mean_cosines(res.run.H[best], np.asarray(problem.labels))
            sub = f"best of {len(res.restarts)} in d = {res.dim}: {res.restarts[best].value:.5g}"
        else:
            _log(f"ufm plot: solving {name} ...")
            res = solve(problem, seed=seed)
            if res.geometry is None:
                continue
            cos = res.class_gram()
            sub = f"value {res.value:.5g}, rank {res.rank}"
        tau = "" if loss.tau is None else f" (tau {loss.tau:g})"
        panels.append({"name": name + tau, "cosines": cos, "subtitle": sub})
    if not panels:
        raise UFMInputError("--losses", "no loss of the list can be posed on these samples")
    return panels, samples


def plot_figure(kind: str, args, problem_of, loss_of, samples_of, seed: int):
    """The figure of ``ufm plot KIND``, and a few numbers describing it (for --json)."""
    from ufm import plotting

    _value(args, "projection")
    _value(args, "restarts")
    if args.taus is not None and kind != "step":
        raise UFMInputError("--taus", f"only for step plots (use --tau for {kind})")
    if args.losses is not None and kind != "family":
        raise UFMInputError("--losses", f"only for family plots (use --loss for {kind})")
    if kind in ("heatmap", "long_tail"):
        cos, counts, title = _class_data(args, problem_of, seed)
        if len(counts) < 2:
            raise UFMInputError("--counts", "one class: no cosines between class means to draw")
        draw = plotting.class_cosine_heatmap if kind == "heatmap" else plotting.cosines_vs_class_size
        return draw(cos, counts, title=title), {"k": len(counts)}
    if kind == "embedding":
        dim = {"2d": 2, "3d": 3}[args.projection]
        if args.embeddings is not None:
            H, labels, counts = _user_embeddings(args)
            title = f"{Path(args.embeddings).name}: {len(counts)} classes, n = {H.shape[0]}, d = {H.shape[1]}"
        else:
            problem = problem_of()
            if problem.n > MAX_DRAWN_SAMPLES:
                raise UFMInputError("--counts", f"{problem.n} samples; plots draw at most "
                                    f"{MAX_DRAWN_SAMPLES}")
            res = _solve(problem, seed)
            H, labels = res.embeddings(lift=True), np.asarray(problem.labels)
            title = _solved_title(res, args)
        return plotting.embedding_scatter(H, labels, dim=dim, title=title), {"n": int(H.shape[0])}
    if kind == "step":
        rows = _step_rows(args, loss_of, seed)
        fig = plotting.step_panels(rows)
        loss = loss_of()
        k_major, k_minor, n_minor = (_value(args, k) for k in ("k_major", "k_minor", "n_minor"))
        fig.suptitle(f"{loss.name}, STEP imbalance: {k_major} majority classes of R x {n_minor}, {k_minor} "
                     f"minority classes of {n_minor}", wrap=True)
        return fig, {"rows": rows}
    if kind in ("census", "curves"):
        res = _verify(problem_of(), args, seed)
        payload = res.to_dict()
        title = problem_title(res.problem, args, dim=res.dim, restarts=len(res.restarts),
                              verdict=verify_verdict(payload["restarts"], payload.get("distinct_minima")))
        if kind == "census":
            fig = plotting.restart_census(payload["restarts"], title=title)
        else:
            history = res.run.value_history(res.problem.floor())
            fig = plotting.optimisation_curves(list(history.T), payload["optimal_value"], payload["floor"],
                                               title=title)
        return fig, {"fraction_global": payload["fraction_global"],
                     "distinct_minima": payload["distinct_minima"]}
    from ufm.plotting.titles import counts_words

    panels, samples = _family_panels(args, samples_of, seed)
    names = [p["name"] for p in panels]
    grid = samples.grid
    what = f"{grid[0]} instances x {grid[1]} views" if grid is not None else counts_words(samples.counts)
    where = f"best restart in d = {args.dim}" if args.dim is not None else "certified optima"
    return plotting.loss_family(panels, title=f"{len(panels)} losses on {what}: {where}"), {"losses": names}
