"""Command line: ``ufm solve`` (see ``ufm solve --help``).

``--json`` prints exactly one JSON object on stdout; progress goes to stderr. Bad input ends
with a one-line error naming the argument and exit status 2, never a traceback, never a
partial output file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from ufm import __version__
from ufm.errors import UFMInputError, check_choice
from ufm.files import atomic_write
from ufm.inputs import (
    PRESETS,
    available_memory,
    certify_memory,
    check_memory,
    integer,
    label_samples,
    positive_int,
    prepare_out,
    print_notes,
    read_batches,
    read_counts,
    read_counts_file,
    read_embeddings,
    solve_memory,
    verify_memory,
)
from ufm.params import positive_number
from ufm.problem import DEFAULT_COUNTS, DEFAULT_INSTANCES, DEFAULT_TAU, MAX_SAMPLES, Problem
from ufm.report import format_certify, format_solve, format_verify

EXIT_INPUT = 2
EXIT_FAILURE = 1
#: largest --seed (a signed 64-bit seed for numpy and torch alike)
MAX_SEED = 2**63 - 1
MAX_ITER = 10**9


def _argparse_error(message: str) -> UFMInputError:
    """An argparse message as an error naming the argument (``--dim: expected one argument``)."""
    m = re.match(r"argument (\S+?)(?:/\S+)?: (.*)", message, re.DOTALL)
    if m:
        name, what = m.groups()
        what = re.sub(r"not allowed with argument ", "not allowed with ", what)
        return UFMInputError(name, what)
    m = re.match(r"unrecognized arguments?: (.*)", message)
    if m:
        extra = m.group(1).split()
        options = [x.split("=")[0] for x in extra if x.startswith("-")]
        if not options:
            return UFMInputError(extra[0] if extra else "ufm", "unexpected argument")
        more = f" (also: {' '.join(options[1:])})" if len(options) > 1 else ""
        return UFMInputError(options[0], "unrecognized argument" + more)
    m = re.match(r"the following arguments are required: (.*)", message)
    if m:
        names = [x.strip() for x in m.group(1).split(",")]
        others = f" (also missing: {', '.join(names[1:])})" if len(names) > 1 else ""
        return UFMInputError(names[0], "required" + others)
    m = re.match(r"ambiguous option: (\S+?)(?:=\S*)? could match (.*)", message)
    if m:
        return UFMInputError(m.group(1), f"ambiguous option: could match {m.group(2)}")
    return UFMInputError("ufm", message)


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line naming the argument (no usage dump)."""

    def error(self, message):
        raise _argparse_error(" ".join(str(message).split()))


_PRESET_HELP = ", ".join(PRESETS)


def _sample_arguments(p: argparse.ArgumentParser, labels_required: bool = False) -> None:
    """Where the samples come from: class counts or labels, or instances x views; batches."""
    src = p.add_mutually_exclusive_group()
    if not labels_required:
        src.add_argument("--counts", help="class sizes separated by commas, e.g. 10,10,2,2; or a long-tailed "
                         f"preset: {_PRESET_HELP}")
        src.add_argument("--counts-file", metavar="FILE",
                         help="text file of class sizes separated by spaces, commas or newlines")
    src.add_argument("--labels", help="label vector: .npy, or text with labels separated by spaces, "
                     "commas, tabs or newlines (numbers when every label is a number), or a CSV table "
                     "with --label-column; a header line is skipped, with a note")
    src.add_argument("--instances", metavar="N", help="N instances seen in --views views (positives: the "
                     "other views of an instance; InfoNCE, DCL, DHEL, KCL, alpha-CL); samples ordered "
                     "a V + v")
    p.add_argument("--label-column", metavar="NAME|INDEX",
                   help="with --labels: the column of a CSV table that holds the labels, by its header "
                   "name or 0-based index (required when the file has more than one column)")
    p.add_argument("--views", metavar="V", default=None,
                   help="views per instance with --instances (default 2: pairs)")
    p.add_argument("--batches", metavar="SPEC",
                   help="sum the loss over mini-batches: FILE (JSON list of index lists, or one batch per "
                   "text line; indices into the samples as given), random:B (a random partition into "
                   "batches of B samples, instances kept whole) or balanced:B (class-balanced batches); "
                   "seeded by --seed")


def _loss_arguments(p: argparse.ArgumentParser) -> None:
    """--loss and every loss parameter, from the losses' own declarations."""
    from ufm.losses import LOSSES, all_params
    from ufm.params import REDUCTION

    names = ", ".join(LOSSES)
    p.add_argument("--loss", default="supcon", help=f"loss: {names} (default supcon; see the README's table)")
    for name, (param, owners) in all_params().items():
        defaults = sorted({f"{o} {LOSSES[o].params[[q.name for q in LOSSES[o].params].index(name)].default}"
                           for o in owners})
        p.add_argument(param.flag, dest=name, default=None,
                       help=f"{param.help.split(' (')[0]} [{', '.join(owners)}; "
                       f"defaults: {', '.join(defaults)}]")
    p.add_argument("--reduction", default=None, help=REDUCTION.help)


def _problem_arguments(p: argparse.ArgumentParser, json_help: str) -> None:
    """Samples, loss and its parameters, --json: shared by solve and verify."""
    _sample_arguments(p)
    _loss_arguments(p)
    p.add_argument("--json", action="store_true", help=json_help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ufm", description="Landscape analysis of unconstrained features models.")
    parser.add_argument("--version", action="version", version=f"ufm {__version__}",
                        help="print the version (ufm X.Y.Z) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser,
                                help="solve | verify | certify | run | plot | network (ufm COMMAND --help "
                                "for its options)")
    s = sub.add_parser(
        "solve",
        help="certified global optimum of the convex relaxation over the Gram matrix",
        description="Global optimum of a contrastive UFM through its convex relaxation, with "
        "its geometry and a global-optimality certificate. With no arguments: a STEP-imbalanced "
        f"default (counts {','.join(map(str, DEFAULT_COUNTS))}, tau {DEFAULT_TAU}).",
    )
    _problem_arguments(s, "print one JSON object on stdout")
    s.add_argument("--method", default="auto",
                   help="auto | full (n x n program) | reduced (class level) | orbit (equal counts merged)")
    s.add_argument("--solver", default="auto", help="auto | factored | clarabel | scs")
    s.add_argument("--tol", default=None,
                   help="certified means gap_bound <= tol * excess (value - floor; default 1e-6)")
    s.add_argument("--seed", default="0",
                   help="seed of the factored solver's start and of random batches, integer >= 0 (default 0)")
    s.add_argument("--dim", default=None,
                   help="embedding dimension to report on: relaxation_tight says whether the optimum fits")
    s.add_argument("--out", help="directory for result.json and arrays.npz")
    s.add_argument("--lift", action="store_true",
                   help="with --out, also save unit embeddings of all n samples")
    s.add_argument("--plot", metavar="FILE", help="draw the optimum's class-mean cosines (and, for unequal "
                   "counts, cosines against class size) to FILE (.png, .pdf or .svg)")
    v = sub.add_parser(
        "verify",
        help="non-convex restarts in dimension D, each compared with the certified optimum",
        description="Optimise the loss over unit embeddings in dimension --dim from --restarts "
        "random starts (PyTorch, batched), compare every end point with the convex optimum up to "
        "rotation and certify it; report the census of distinct end points.",
    )
    _problem_arguments(v, "print one JSON object on stdout (progress on stderr)")
    v.add_argument("--dim", default=None, help="embedding dimension d >= 2 (default max(k - 1, 2), k classes "
                   "or instances)")
    v.add_argument("--restarts", default="8", help="number of random restarts (default 8)")
    v.add_argument("--optimizer", default="lbfgs", help="lbfgs | rgd")
    v.add_argument("--device", default="auto", help="auto | cpu | cuda")
    v.add_argument("--precision", default="auto",
                   help="auto (mixed on cuda, float64 on cpu) | float64 | mixed (float32, then float64)")
    v.add_argument("--seed", default="0", help="seed of the random starts and of random batches, integer "
                   ">= 0 (default 0)")
    v.add_argument("--init", default="random",
                   help="random (uniform on the spheres; default) | aligned (every instance's views start "
                   "equal: where KCL's minorant equals it) | both (alternating, random first); the census "
                   "says which start kind reached each minimum")
    v.add_argument("--no-snap", action="store_true",
                   help="turn off collapse snapping (a class within 0.25 of its mean direction is set onto "
                   "it when that lowers the loss), to watch plain gradient dynamics")
    v.add_argument("--max-iter", default="5000",
                   help="most iterations per restart, integer >= 1 (default 5000)")
    v.add_argument("--tol", default=None,
                   help="certified means gap_bound <= tol * excess (value - floor; default 1e-6)")
    v.add_argument("--plot", metavar="FILE", help="draw the restart census (gaps, lambda_min, distinct "
                   "minima) and the optimisation curves to FILE (.png, .pdf or .svg)")
    v.add_argument("--out", metavar="DIR", help="directory for result.json (the object --json prints) and "
                   "arrays.npz: restarts (R x n x d end points, rows in the order of the samples as "
                   "given), values, certified (each restart's own certificate) and labels")

    c = sub.add_parser(
        "certify",
        help="certify trained embeddings: value, global-optimality certificate, collapse measures",
        description="Loss value, global-optimality certificate, NC1 and distances to the optimal "
        "geometry of given (n, d) embeddings with their labels.",
    )
    c.add_argument("--embeddings", required=True,
                   help="(n, d) array: .npy, .npz (key embeddings, H, or the first) or .pt (a tensor, "
                   "or the first tensor of a dict)")
    _sample_arguments(c, labels_required=True)
    _loss_arguments(c)
    c.add_argument("--normalize", action="store_true", help="normalise rows instead of rejecting")
    c.add_argument("--device", default="cpu",
                   help="cpu | cuda | auto: where the matrix-free certificate runs (n > 3000)")
    c.add_argument("--tol", default=None,
                   help="certified means gap_bound <= tol * excess (value - floor; default 1e-6)")
    c.add_argument("--memory-budget", default="2",
                   help="GB that the matrix-free certificate may keep of S's blocks (n > 3000; "
                   "default 2): above it blocks are recomputed for every product, never held n x n")
    c.add_argument("--seed", default="0", help="seed of random batches, integer >= 0 (default 0)")
    c.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    c.add_argument("--plot", metavar="FILE", help="draw the embeddings (PCA) and their class-mean cosines "
                   "to FILE (.png, .pdf or .svg)")

    r = sub.add_parser(
        "run",
        help="run a study declared in TOML (a file, or a bundled study name)",
        description="Solve and certify every grid point of a study; write results.jsonl and "
        "summary.csv to --out (default results/NAME).",
    )
    r.add_argument("experiment", metavar="EXPERIMENT", help="study .toml file or bundled name")
    r.add_argument("--out", help="output directory (default results/<study name>)")
    r.add_argument("--jobs", metavar="N", help="run N points at a time in local processes (default 1)")
    r.add_argument("--scheduler", metavar="ADDRESS", help="send the points to a Dask cluster "
                   "(dask.distributed scheduler address, e.g. tcp://host:8786)")
    r.add_argument("--smoke", action="store_true", help="run the study's [smoke] grid: a tiny version of "
                   "the same study, to check it in seconds")
    r.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    from ufm.plot_command import KINDS

    pl = sub.add_parser(
        "plot",
        help="draw a figure: " + " | ".join(KINDS),
        description="Draw one figure to --out: heatmap (class-mean cosines), embedding (PCA of the "
        "embeddings, 2d or 3d), long_tail (cosines against class size), step (cosines against R and "
        "tau), census (restarts), curves (value and gap against iteration), family (the losses side "
        "by side). heatmap, embedding and long_tail draw the certified optimum, or --embeddings with "
        "--labels.",
    )
    pl.add_argument("kind", metavar="KIND", help=" | ".join(KINDS))
    _sample_arguments(pl)
    _loss_arguments(pl)
    pl.add_argument("--out", required=True, metavar="FILE", help="the figure: .png, .pdf or .svg")
    pl.add_argument("--embeddings", help="(n, d) embeddings to draw instead of the optimum (with --labels)")
    pl.add_argument("--projection", default="2d", help="embedding: 2d (plane) or 3d (sphere)")
    pl.add_argument("--dim", default=None, help="census, curves, family: dimension of the restarts "
                    "(default k - 1; family: the relaxation's optimum unless --dim is given)")
    pl.add_argument("--restarts", default="8", help="census, curves, family with --dim: restarts (default 8)")
    pl.add_argument("--seed", default="0", help="seed of restarts and random batches (default 0)")
    pl.add_argument("--k-major", default="5", help="step: majority classes (default 5)")
    pl.add_argument("--k-minor", default="5", help="step: minority classes (default 5)")
    pl.add_argument("--n-minor", default="2", help="step: samples per minority class (default 2)")
    pl.add_argument("--ratios", default="1,2,5,10,20,50,100",
                    help="step: imbalance ratios R, majority size = R n_minor (default 1,2,5,10,20,50,100)")
    pl.add_argument("--taus", default=None, help="step: temperatures (default the loss's --tau)")
    pl.add_argument("--losses", default=None, help="family: losses to compare, separated by commas (default "
                    "every loss that can be posed on the samples)")
    pl.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    from ufm.network_command import add_arguments

    net = sub.add_parser(
        "network",
        help="networks in place of free embeddings (Tian 2023): one-layer | two-layer",
        description="one-layer: the local optima of one unit w with a homogeneous activation, from many "
        "random starts, and the pattern each aligns with (a linear unit: the top eigenvector of the "
        "contrastive covariance). two-layer: hidden units per location trained through a loss of the "
        "family on pattern data, and how they specialise.",
    )
    add_arguments(net)
    _loss_arguments(net)  # two-layer: the loss the network is trained through (default infonce)
    net.set_defaults(loss=None)
    return parser


def _save(out: Path, result, payload: dict, lift: bool) -> None:
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
        arrays["embeddings"] = result.embeddings(lift=True)
        arrays["labels"] = result.problem.labels
    atomic_write(out / "arrays.npz", lambda fh: np.savez_compressed(fh, **arrays))
    atomic_write(out / "result.json", lambda fh: fh.write(json.dumps(payload, indent=2).encode()))


def cmd_solve(args) -> int:
    from solvers import METHODS, SOLVERS, solve  # lazy: ufm itself never imports solvers
    from solvers.certificate import CERTIFY_TOL

    tol = CERTIFY_TOL if args.tol is None else positive_number(args.tol, "--tol")
    check_choice(args.method, METHODS, "--method", "method")  # before any work is done
    check_choice(args.solver, SOLVERS, "--solver", "solver")
    seed = integer(args.seed, "--seed", 0, MAX_SEED)
    problem = _problem_from_args(args, seed)
    if args.dim is not None:
        problem.dim = positive_int(args.dim, "--dim")
    if args.lift and args.out is None:
        raise UFMInputError("--lift", "needs --out")
    from ufm.problem import require_relaxation

    require_relaxation(problem, "solve")
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
        from ufm.plot_command import solve_figure

        _save_figure(solve_figure(res), plot, payload)
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
    from ufm.plot_command import MAX_DRAWN_CLASSES, figure_path

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
        n_inst = positive_int(args.instances, "--instances")
        views = 2 if args.views is None else positive_int(args.views, "--views")
        samples = Samples.instances_views(n_inst, views)
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
    from solvers.certificate import CERTIFY_TOL
    from solvers.nonconvex import METHODS, PRECISIONS, check_dim, resolve_device
    from solvers.verify import INITS, census_arrays, default_dim, restart_arrays, verify

    seed = integer(args.seed, "--seed", 0, MAX_SEED)
    problem = _problem_from_args(args, seed)
    dim = default_dim(problem) if args.dim is None else positive_int(args.dim, "--dim")
    check_dim(dim)
    restarts = positive_int(args.restarts, "--restarts")
    check_choice(args.optimizer, METHODS, "--optimizer", "optimizer")  # before the convex solve
    check_choice(args.init, INITS, "--init", "start")
    if args.init != "random" and problem.samples.grid is None:
        raise UFMInputError("--init", f"{args.init} starts align the views of every instance: they need "
                            "instances seen in views (--instances N [--views V])")
    check_choice(args.precision, PRECISIONS, "--precision", "precision")
    device = resolve_device(args.device)
    max_iter = integer(args.max_iter, "--max-iter", 1, MAX_ITER)
    tol = CERTIFY_TOL if args.tol is None else positive_number(args.tol, "--tol")
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
                 max_iter=max_iter, progress=True, precision=args.precision, snap=not args.no_snap,
                 init=args.init)
    payload = res.to_dict()
    if plot is not None:
        from ufm.plot_command import verify_figure

        _save_figure(verify_figure(res), plot, payload)
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
    from solvers.certificate import CERTIFY_TOL, DENSE_MAX_N
    from solvers.inspect import inspect_embeddings
    from solvers.nonconvex import resolve_device
    from ufm.problem import require_relaxation

    device = str(resolve_device(args.device))
    tol = CERTIFY_TOL if args.tol is None else positive_number(args.tol, "--tol")
    seed = integer(args.seed, "--seed", 0, MAX_SEED)
    loss = _loss_from_args(args)  # an unknown loss or parameter before the files are read
    if args.labels is None and args.instances is None:
        raise UFMInputError("--labels", "required (or --instances N [--views V] for embeddings of instances "
                            "x views, rows in order a V + v)")
    require_relaxation(Problem(loss, _placeholder_samples(loss)), "certify")
    budget = positive_number(args.memory_budget, "--memory-budget") * 1e9
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
    if problem.samples.order is not None:
        H = H[problem.samples.order]
    if plot is not None:
        from ufm.plot_command import MAX_DRAWN_CLASSES, MAX_DRAWN_SAMPLES

        if n > MAX_DRAWN_SAMPLES or k > MAX_DRAWN_CLASSES:
            raise UFMInputError("--plot", f"{n} samples in {k} classes; figures draw at most "
                                f"{MAX_DRAWN_SAMPLES} samples and {MAX_DRAWN_CLASSES} classes")
    report = inspect_embeddings(H, problem, tol, device, memory_budget=budget,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    if plot is not None:
        from ufm.plot_command import embeddings_figure

        title = f"{args.embeddings}: {problem.loss.name}, value {report.get('value', float('nan')):.6g}"
        _save_figure(embeddings_figure(H, np.asarray(problem.labels), np.asarray(problem.counts), title),
                     plot, report)
    print(json.dumps(report) if args.json else format_certify(report))
    return 0


def _placeholder_samples(loss):
    from ufm.samples import Samples

    return Samples.instances_views(3, 2) if loss.samples_kind == "views" else Samples.from_counts((2, 2))


def cmd_run(args) -> int:
    from experiments.runner import run_command

    jobs = None if args.jobs is None else positive_int(args.jobs, "--jobs", 1024)
    return run_command(args.experiment, args.out, args.json, jobs=jobs, scheduler=args.scheduler,
                       smoke=args.smoke)


def cmd_plot(args) -> int:
    from ufm.plot_command import KINDS, figure_path, plot_figure
    from ufm.plotting import save_figure

    check_choice(args.kind, KINDS, "KIND", "figure kind")
    path = figure_path(args.out, "--out")
    seed = integer(args.seed, "--seed", 0, MAX_SEED)
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
    from ufm.network_command import run

    def loss_of(args):
        if args.loss is None:
            args.loss = "infonce"
        return _loss_from_args(args)

    return run(args, loss_of)


def _loose_loss(args):
    """A loss to read the sample arguments with before the family's losses are built: SupCon
    with class labels, else InfoNCE (instances x views; 8 pairs by default), so that the whole
    family applies."""
    from ufm.losses import InfoNCE, SupCon

    labelled = any(getattr(args, a, None) is not None for a in ("counts", "counts_file", "labels"))
    return SupCon() if labelled else InfoNCE()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as stop:  # --help and --version print, then stop argparse
            return stop.code if isinstance(stop.code, int) else 0
        commands = {"solve": cmd_solve, "verify": cmd_verify, "certify": cmd_certify, "run": cmd_run,
                    "plot": cmd_plot, "network": cmd_network}
        return commands[args.command](args)
    except UFMInputError as err:
        print(f"ufm: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("ufm: interrupted", file=sys.stderr)
        return 130
    except MemoryError as err:
        print(f"ufm: error: out of memory ({_one_line(err) or 'MemoryError'})", file=sys.stderr)
        return EXIT_FAILURE
    except (RuntimeError, OSError) as err:
        print(f"ufm: error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
