"""The ``ufm`` argument parser: every command's options, and argparse's errors turned into the
project's one-line ``UFMInputError``."""

from __future__ import annotations

import argparse
import re

from ufm import __version__
from ufm.errors import UFMInputError
from ufm.inputs import (
    PRESETS,
)
from ufm.problem import DEFAULT_COUNTS, DEFAULT_TAU

EXIT_INPUT = 2
EXIT_FAILURE = 1
#: largest --seed (a signed 64-bit seed for numpy and torch alike)
MAX_SEED = 2**63 - 1
MAX_ITER = 10**9
#: the --tol help of solve, verify and certify
TOL_HELP = ("certified means gap_bound <= tol x scale (the excess, capped by the loss's range; absolute "
            "where the loss reaches its floor; default 1e-6)")


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


def _solve_command(sub) -> None:
    """``ufm solve`` and its options."""
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
                   help=TOL_HELP)
    s.add_argument("--seed", default="0",
                   help="seed of the factored solver's start and of random batches, integer >= 0 (default 0)")
    s.add_argument("--dim", default=None,
                   help="embedding dimension to report on: relaxation_tight says whether the optimum fits")
    s.add_argument("--out", help="directory for result.json and arrays.npz")
    s.add_argument("--lift", action="store_true",
                   help="with --out, also save unit embeddings of all n samples")
    s.add_argument("--plot", metavar="FILE", help="draw the optimum's class-mean cosines (and, for unequal "
                   "counts, cosines against class size) to FILE (.png, .pdf or .svg)")


def _verify_command(sub) -> None:
    """``ufm verify`` and its options."""
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
                   help=TOL_HELP)
    v.add_argument("--plot", metavar="FILE", help="draw the restart census (gaps, lambda_min, distinct "
                   "minima) and the optimisation curves to FILE (.png, .pdf or .svg)")
    v.add_argument("--out", metavar="DIR", help="directory for result.json (the object --json prints) and "
                   "arrays.npz: restarts (R x n x d end points, rows in the order of the samples as "
                   "given), values, certified (each restart's own certificate) and labels")


def _certify_command(sub) -> None:
    """``ufm certify`` and its options."""
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
                   help=TOL_HELP)
    c.add_argument("--memory-budget", default="2",
                   help="GB that the matrix-free certificate may keep of S's blocks (n > 3000; "
                   "default 2): above it blocks are recomputed for every product, never held n x n")
    c.add_argument("--seed", default="0", help="seed of random batches, integer >= 0 (default 0)")
    c.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    c.add_argument("--plot", metavar="FILE", help="draw the embeddings (PCA) and their class-mean cosines "
                   "to FILE (.png, .pdf or .svg)")


def _run_command(sub) -> None:
    """``ufm run`` and its options."""
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


def _plot_command(sub) -> None:
    """``ufm plot`` and its options."""
    from ufm.cli.plot import KINDS

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


def _network_command(sub) -> None:
    """``ufm network`` and its options."""
    from ufm.cli.network import add_arguments

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


def _losses_command(sub) -> None:
    """``ufm losses`` and its options."""
    los = sub.add_parser("losses", help="the loss family: every --loss, its formula, parameters and floor",
                         description="Every registered loss, from its declaration: name, formula, "
                         "parameters with their defaults, floor, convexity and source.")
    form = los.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON object: the declarations")
    form.add_argument("--markdown", action="store_true", help="the README's table of losses")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ufm", description="Landscape analysis of unconstrained features models.")
    parser.add_argument("--version", action="version", version=f"ufm {__version__}",
                        help="print the version (ufm X.Y.Z) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser,
                                help="solve | verify | certify | run | plot | network | losses "
                                "(ufm COMMAND --help for its options)")
    _solve_command(sub)
    _verify_command(sub)
    _certify_command(sub)
    _run_command(sub)
    _plot_command(sub)
    _network_command(sub)
    _losses_command(sub)
    return parser


