"""What each command does: ``ufm solve``, ``verify``, ``certify``, ``run``, ``plot`` and
``network``, from parsed arguments to the printed table or JSON and the saved files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from experiments.options import PLOT_OPTIONS, RUN_OPTIONS
from solvers.options import CERTIFY_OPTIONS, SOLVE_OPTIONS, VERIFY_OPTIONS
from ufm import progress
from ufm.cli.report import format_certify, format_solve, format_verify
from ufm.errors import UFMInputError
from ufm.files import atomic_write
from ufm.inputs import (
    available_memory,
    certify_memory,
    check_memory,
    label_samples,
    prepare_out,
    print_notes,
    read_batches,
    read_counts,
    read_counts_file,
    read_embeddings,
    solve_memory,
    verify_memory,
)
from ufm.options import NETWORK_LOSS, SAMPLE_OPTIONS
from ufm.problem import DEFAULT_COUNTS, DEFAULT_INSTANCES, MAX_SAMPLES, Problem


def option(args, table: dict, name: str):
    """The value of option ``name`` of a command, checked by its declaration (an error names its
    flag)."""
    return table[name].parse(getattr(args, name))


def _save(out: Path, result, payload: dict, lift: bool) -> None:
    """result.json and arrays.npz; with ``lift``, ``embeddings`` (n, rank) and ``labels`` (n,) in
    the user's order: row i is sample i of the labels file (the solvers keep samples sorted by
    class), so that ``ufm certify --embeddings`` with the same labels and batches pairs them."""
    arrays = {
        "counts": np.asarray(result.problem.counts),
        "class_labels": np.asarray(result.problem.class_labels),
    }
    if result.geometry is not None:
        arrays["class_mean_norms"] = result.class_mean_norms()
    if result.geometry is None:
        pass  # degenerate: no geometry to save
    elif result.problem.k <= 5000:
        arrays["class_gram"] = result.class_gram()
        arrays["class_means"] = result.geometry.class_means()
    if lift and result.geometry is not None:
        samples = result.problem.samples
        arrays["embeddings"] = samples.to_user_order(result.embeddings(lift=True))
        arrays["labels"] = samples.user_labels
    atomic_write(out / "arrays.npz", lambda fh: np.savez_compressed(fh, **arrays))
    atomic_write(out / "result.json", lambda fh: fh.write(json.dumps(payload, indent=2).encode()))


def cmd_solve(args) -> int:
    from solvers import solve  # lazy: ufm itself never imports solvers
    from solvers.solve import resolve_method

    tol = option(args, SOLVE_OPTIONS, "tol")
    for name in ("method", "solver"):  # before any work is done
        option(args, SOLVE_OPTIONS, name)
    seed = option(args, SOLVE_OPTIONS, "seed")
    problem = _problem_from_args(args, seed)
    problem.dim = option(args, SOLVE_OPTIONS, "dim")
    if args.lift and args.out is None:
        raise UFMInputError("--lift", "needs --out")
    from ufm.problem import require_relaxation

    require_relaxation(problem, "solve")
    resolve_method(problem, args.method)  # a method the problem has: before any work
    _check_solve_memory(problem, args)
    plot = _plot_path(args, problem)
    out = prepare_out(args.out)
    tau = "" if problem.tau is None else f", tau = {problem.tau:g}"
    print(f"ufm solve: {problem.loss.name}, {problem.samples.kind}: k = {problem.k}, n = {problem.n}"
          f"{tau} ...",
          file=sys.stderr)
    res = solve(problem, method=args.method, solver=args.solver, tol=tol, seed=seed)
    payload = res.to_dict()
    if plot is not None:
        from ufm.cli.plot import solve_figure

        _save_figure(solve_figure(res, args), plot, payload)
    if out is not None:
        _save(out, res, payload, args.lift)
    if args.json:
        print(json.dumps(payload))
    else:
        print(format_solve(payload, res))
    return 0


def _plot_path(args, problem=None):
    """The --plot file, checked before any work (None without --plot)."""
    if getattr(args, "plot", None) is None:
        return None
    from ufm.cli.plot import MAX_DRAWN_CLASSES, figure_path

    path = figure_path(args.plot, "--plot")
    if problem is not None:
        reason = problem.degenerate()
        if reason is not None:
            raise UFMInputError("--plot", f"degenerate problem ({reason}): no geometry to draw")
        if problem.k > MAX_DRAWN_CLASSES:
            raise UFMInputError("--plot", f"{problem.k} classes; figures draw at most {MAX_DRAWN_CLASSES}")
    return path


def _save_figure(fig, path, payload: dict) -> None:
    from ufm.plotting import save_figure

    save_figure(fig, path)
    payload["figure"] = str(path)
    print(f"ufm: figure {path}", file=sys.stderr)


def _source_argument(args) -> str:
    """The argument the problem's samples came from."""
    for name in ("labels", "counts_file", "instances"):
        if getattr(args, name, None) is not None:
            return "--" + name.replace("_", "-")
    return "--counts"


def _loss_from_args(args):
    """The loss named by --loss with the parameters given (each checked against the loss's own
    declaration: a parameter of another loss is an error naming it)."""
    from ufm.losses import all_params, loss_class

    cls = loss_class(args.loss)
    own = {p.name for p in cls.params}
    given = {}
    for name, (param, owners) in all_params().items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in own:
            takes = ", ".join(p.flag for p in cls.params) or "none besides --reduction"
            raise UFMInputError(param.flag, f"not a parameter of {cls.name} (its parameters: {takes}; "
                                f"{param.flag} belongs to {', '.join(owners)})")
        given[name] = value
    if getattr(args, "reduction", None) is not None:
        given["reduction"] = args.reduction
    return cls(**given)


def _samples_from_args(args, loss, seed: int):
    """Samples from --counts, --counts-file, --labels or --instances/--views (a default for the
    loss without them), with --batches."""
    from ufm.samples import Samples

    if args.views is not None and args.instances is None:
        raise UFMInputError("--views", "needs --instances N")
    if getattr(args, "label_column", None) is not None and getattr(args, "labels", None) is None:
        raise UFMInputError("--label-column", "needs --labels FILE")
    if args.instances is not None:
        views = SAMPLE_OPTIONS["views"]
        samples = Samples.instances_views(option(args, SAMPLE_OPTIONS, "instances"),
                                          views.parse(views.default if args.views is None else args.views))
    elif getattr(args, "labels", None) is not None:
        samples = label_samples(args.labels, args.label_column)
    elif getattr(args, "counts_file", None) is not None:
        samples = Samples.from_counts(read_counts_file(args.counts_file))
    elif getattr(args, "counts", None) is not None:
        samples = Samples.from_counts(read_counts(args.counts))
    elif loss.samples_kind == "views":
        samples = Samples.instances_views(*DEFAULT_INSTANCES)
    else:
        samples = Samples.from_counts(DEFAULT_COUNTS)
    loss.check_samples(samples, "--loss")
    if args.batches is not None:
        samples = read_batches(args.batches, samples, seed)
    print_notes(samples)
    return samples


def _problem_from_args(args, seed: int = 0) -> Problem:
    """The problem named by the sample arguments, --loss and its parameters (defaults without
    them: a STEP-imbalanced SupCon problem, or 8 pairs for a loss on instances x views)."""
    loss = _loss_from_args(args)
    return Problem(loss, _samples_from_args(args, loss, seed))


def _check_solve_memory(problem: Problem, args) -> None:
    """Refuse a reduced program, a Burer-Monteiro solve (or a --lift) that cannot fit in memory,
    before solving."""
    from ufm.inputs import embeddings_certificate_memory, optimiser_memory
    from ufm.symmetry import ClassSymmetry

    sym = problem.symmetry("auto" if args.method == "full" else args.method)
    if args.method == "full" and sym is not None:
        return  # solvers.solve bounds n for the conic n x n program itself
    n, k = problem.n, problem.k
    if sym is None:
        d = min(n, max(k + 1, 3))
        check_memory(optimiser_memory(n, d, 4) + embeddings_certificate_memory(n, d), _source_argument(args),
                     f"the n x n program by Burer-Monteiro restarts (n = {n}, no symmetry)",
                     hint="fewer samples")
        return
    levels = sym.q if isinstance(sym, ClassSymmetry) else 1
    need = solve_memory(levels, k, n, lift=False)
    check_memory(need, _source_argument(args), f"the reduced program over {levels} groups "
                 f"(k = {k})", hint="fewer distinct class counts")
    if args.lift:
        check_memory(solve_memory(levels, k, n, lift=True), "--lift",
                     f"lifting to {n} x {max(k - 1, 1)} unit embeddings", hint="save without --lift")


def _check_verify_memory(problem: Problem, dim: int, restarts: int, device, args) -> None:
    """Refuse, before any work, restarts that cannot fit: the (R, n, d) iterate with its L-BFGS
    history and a row block of the n x n gradient (on the device), and the certificate of each
    end point (on the host)."""
    from solvers.certificate import DENSE_MAX_N

    n = problem.n
    optimiser, certificate = verify_memory(n, dim, restarts, DENSE_MAX_N)
    one, _ = verify_memory(n, dim, 1, DENSE_MAX_N)
    host = available_memory()
    if device.type == "cuda":
        try:
            import torch

            room, where = torch.cuda.mem_get_info(device)[0], f"the GPU ({device})"
        except Exception:  # noqa: BLE001 - no estimate of the GPU's free memory: skip the check
            room, where = None, "the GPU"
        host_need = restarts * n * dim * 8.0 * 2 + certificate
    else:
        room, where = host, "the machine"
        optimiser, one = optimiser + certificate, one + certificate
        host_need = optimiser
    what = f"n = {n}, d = {dim}"
    if room is not None and one > room:
        check_memory(one, "--dim" if args.dim is not None else _source_argument(args),
                     f"ufm verify at {what} (even one restart)", room, where)
    if room is not None and optimiser > room:
        fit = max(int(room // max(one, 1.0)), 1)
        check_memory(optimiser, "--restarts", f"{restarts} restarts at {what}", room, where,
                     hint=f"about {fit} restart(s) fit")
    check_memory(host_need, _source_argument(args), f"certifying the end points at {what}", host)


def cmd_verify(args) -> int:
    from solvers.nonconvex import resolve_device
    from solvers.verify import census_arrays, default_dim, restart_arrays, verify

    seed = option(args, VERIFY_OPTIONS, "seed")
    problem = _problem_from_args(args, seed)
    dim = default_dim(problem) if args.dim is None else option(args, VERIFY_OPTIONS, "dim")
    restarts = option(args, VERIFY_OPTIONS, "restarts")
    for name in ("optimizer", "init"):  # before the convex solve
        option(args, VERIFY_OPTIONS, name)
    if args.init != "random" and problem.samples.grid is None:
        raise UFMInputError("--init", f"{args.init} starts align the views of every instance: they need "
                            "instances seen in views (--instances N [--views V])")
    option(args, VERIFY_OPTIONS, "precision")
    device = resolve_device(option(args, VERIFY_OPTIONS, "device"))
    max_iter = option(args, VERIFY_OPTIONS, "max_iter")
    tol = option(args, VERIFY_OPTIONS, "tol")
    plot = _plot_path(args, problem)
    reason = problem.degenerate()
    if reason is None:
        _check_verify_memory(problem, dim, restarts, device, args)
    out = prepare_out(args.out)  # before any work
    if reason is not None:  # nothing to optimise: reported, not run
        floor = problem.floor()
        payload = {**problem.describe(), "dim": dim, "degenerate": reason, "optimal_value": floor,
                   "floor": floor, "restarts": []}
        if out is not None:
            none = np.empty((0, problem.n, dim))
            _save_verify(out, payload, {**restart_arrays(problem.samples, none, [], [], dim),
                                        **census_arrays(problem.samples, [], None, dim)})
        print(json.dumps(payload) if args.json else
              f"degenerate problem: {reason}\noptimal value      {floor:.12g}   (= the floor)")
        return 0
    print(f"ufm verify: {problem.loss.name}, k = {problem.k}, n = {problem.n}, d = {dim}, "
          f"{restarts} restarts ...",
          file=sys.stderr)
    res = verify(problem, dim, restarts, args.optimizer, args.device, seed, tol,
                 max_iter=max_iter, progress=True, precision=args.precision, snap=args.snap,
                 init=args.init)
    payload = res.to_dict()
    if plot is not None:
        from ufm.cli.plot import verify_figure

        _save_figure(verify_figure(res, args), plot, payload)
    if out is not None:
        _save_verify(out, payload, res.arrays())
    print(json.dumps(payload) if args.json else format_verify(payload))
    return 0


def _save_verify(out: Path, payload: dict, arrays: dict) -> None:
    """result.json (the object ``--json`` prints) and arrays.npz, each written whole; both are
    serialised before either file is touched."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    text = json.dumps(payload, indent=2).encode()
    atomic_write(out / "arrays.npz", lambda fh: fh.write(buf.getvalue()))
    atomic_write(out / "result.json", lambda fh: fh.write(text))
    print(f"ufm: wrote {out / 'result.json'} and {out / 'arrays.npz'}", file=sys.stderr)


def cmd_certify(args) -> int:
    from solvers.certificate import DENSE_MAX_N
    from solvers.inspect import inspect_embeddings
    from solvers.nonconvex import resolve_device
    from ufm.problem import require_relaxation

    device = str(resolve_device(option(args, CERTIFY_OPTIONS, "device")))
    tol = option(args, CERTIFY_OPTIONS, "tol")
    seed = option(args, CERTIFY_OPTIONS, "seed")
    loss = _loss_from_args(args)  # an unknown loss or parameter before the files are read
    if args.labels is None and args.instances is None:
        raise UFMInputError("--labels", "required (or --instances N [--views V] for embeddings of instances "
                            "x views, rows in order a V + v)")
    require_relaxation(Problem(loss, _placeholder_samples(loss)), "certify")
    budget = option(args, CERTIFY_OPTIONS, "memory_budget") * 1e9  # GB
    plot = _plot_path(args)
    H = read_embeddings(args.embeddings)
    problem = Problem(loss, _samples_from_args(args, loss, seed))
    if problem.n != H.shape[0]:
        what = "labels" if args.labels is not None else "samples (--instances x --views)"
        raise UFMInputError("--labels" if args.labels is not None else "--instances",
                            f"{problem.n} {what} for {H.shape[0]} embeddings")
    if H.shape[0] > MAX_SAMPLES:
        raise UFMInputError("--embeddings", f"{H.shape[0]} rows; ufm handles at most {MAX_SAMPLES} samples")
    n, d, k = H.shape[0], H.shape[1], problem.k
    how = "a dense certificate" if n <= DENSE_MAX_N else "a matrix-free certificate"
    check_memory(certify_memory(n, d, k, DENSE_MAX_N), "--embeddings",
                 f"certifying {n} x {d} embeddings ({how}; dense for n <= {DENSE_MAX_N})")
    norms = np.linalg.norm(H, axis=1)
    if args.normalize:
        if np.any(norms == 0):
            raise UFMInputError("--embeddings", "a row is zero and cannot be normalised")
        H = H / norms[:, None]
    elif np.max(np.abs(norms - 1)) > 1e-6:
        raise UFMInputError("--embeddings", f"rows are not unit vectors (norms {norms.min():.4g} to "
                            f"{norms.max():.4g}); pass --normalize to normalise them")
    H = problem.samples.from_user_order(H)  # rows in the labels file's order, to the class order
    if plot is not None:
        from ufm.cli.plot import MAX_DRAWN_CLASSES, MAX_DRAWN_SAMPLES

        if n > MAX_DRAWN_SAMPLES or k > MAX_DRAWN_CLASSES:
            raise UFMInputError("--plot", f"{n} samples in {k} classes; figures draw at most "
                                f"{MAX_DRAWN_SAMPLES} samples and {MAX_DRAWN_CLASSES} classes")
    with progress.bar("certify: products with S", unit="pass") as shown:
        def passes(line: str) -> None:
            if progress.shown():
                shown.update(line.startswith("certificate: product"))
                shown.set_postfix_str(line.split(": ", 1)[-1], refresh=False)
            elif not getattr(args, "quiet", False):
                progress.write(line)

        report = inspect_embeddings(H, problem, tol, device, memory_budget=budget, progress=passes)
    if plot is not None:
        from ufm.cli.plot import certify_figure

        _save_figure(certify_figure(H, problem, report, Path(args.embeddings).name, args), plot, report)
    print(json.dumps(report) if args.json else format_certify(report))
    return 0


def _placeholder_samples(loss):
    from ufm.samples import Samples

    return Samples.instances_views(3, 2) if loss.samples_kind == "views" else Samples.from_counts((2, 2))


def cmd_run(args) -> int:
    from experiments.runner import run_command

    return run_command(args.experiment, args.out, args.json, jobs=option(args, RUN_OPTIONS, "jobs"),
                       scheduler=args.scheduler, smoke=args.smoke,
                       threads=option(args, RUN_OPTIONS, "threads"))


def cmd_plot(args) -> int:
    from ufm.cli.plot import figure_path, plot_figure
    from ufm.plotting import save_figure

    option(args, PLOT_OPTIONS, "kind")
    path = figure_path(args.out, "--out")
    seed = option(args, PLOT_OPTIONS, "seed")
    if args.embeddings is not None and args.kind not in ("heatmap", "embedding", "long_tail"):
        raise UFMInputError("--embeddings", f"not used by {args.kind} (heatmap, embedding, long_tail)")

    fig, info = plot_figure(args.kind, args, lambda: _problem_from_args(args, seed),
                            lambda: _loss_from_args(args),
                            lambda: _samples_from_args(args, _loose_loss(args), seed), seed)
    save_figure(fig, path)
    if args.json:
        print(json.dumps({"kind": args.kind, "figure": str(path), **info}))
    else:
        print(f"figure {path}")
    return 0


def cmd_network(args) -> int:
    from ufm.cli.network import run

    def loss_of(args):
        if args.loss is None:
            args.loss = NETWORK_LOSS
        return _loss_from_args(args)

    return run(args, loss_of)


def cmd_losses(args) -> int:
    """``ufm losses``: the family from its declarations (text, ``--json`` or ``--markdown``)."""
    from ufm.losses import LOSSES
    from ufm.losses.catalogue import markdown_table

    if args.markdown:
        print(markdown_table(), end="")
        return 0
    rows = []
    for name, cls in LOSSES.items():
        loss = cls()
        rows.append({"name": name, "title": cls.title, "formula": cls.formula, "source": cls.source,
                     "params": {p.name: p.default for p in cls.params},
                     "default_reduction": cls.default_reduction, "samples": cls.samples_kind,
                     "floor": loss.floor_text, "convex_in_gram": cls.convex_in_gram,
                     "certificate": loss.has_relaxation, "scalar_objective": cls.scalar_objective})
    if args.json:
        print(json.dumps({"losses": rows}))
        return 0
    for r in rows:
        params = ", ".join(f"{k} {v}" for k, v in r["params"].items()) or "none"
        cert = "certified optimum" if r["certificate"] else "census only (no convex relaxation)"
        print(f"{r['name']:<10} {r['title']}")
        print(f"{'':11}parameters: {params}; reduction {r['default_reduction']}; {cert}")
        print(f"{'':11}{r['formula']}")
    return 0


def _loose_loss(args):
    """A loss to read the sample arguments with before the family's losses are built: SupCon
    with class labels, else InfoNCE (instances x views; 8 pairs by default), so that the whole
    family applies."""
    from ufm.losses import InfoNCE, SupCon

    labelled = any(getattr(args, a, None) is not None for a in ("counts", "counts_file", "labels"))
    return SupCon() if labelled else InfoNCE()


