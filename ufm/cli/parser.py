"""The ``ufm`` argument parser: every command's options, made from their declarations
(``solvers.options``, ``experiments.options``: flag, help with the default, argparse default),
and argparse's errors turned into the project's one-line ``UFMInputError``."""

from __future__ import annotations

import argparse
import re

from experiments.options import PLOT_OPTIONS, RUN_OPTIONS
from solvers.options import CERTIFY_OPTIONS, NETWORK_OPTIONS, SOLVE_OPTIONS, VERIFY_OPTIONS
from ufm import __version__
from ufm.errors import UFMInputError
from ufm.options import FIGURE_STYLE_OPTIONS, LOSS_OPTION, QUIET_OPTION, SAMPLE_OPTIONS, Option, option_name
from ufm.problem import DEFAULT_COUNTS, DEFAULT_TAU

EXIT_INPUT = 2
EXIT_FAILURE = 1
#: each command's declared options (the samples and the loss besides, where it takes them)
COMMAND_OPTIONS = {"solve": SOLVE_OPTIONS, "verify": VERIFY_OPTIONS, "certify": CERTIFY_OPTIONS,
                   "run": RUN_OPTIONS, "plot": PLOT_OPTIONS, "network": NETWORK_OPTIONS}


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


def add_option(p: argparse.ArgumentParser, option: Option, groups: dict | None = None) -> None:
    """One declared option as an argparse argument: its flag (``--no-NAME`` for a switch that is on
    by default), its help with the default, and its default (none for an option that needs
    another one, so that it alone is caught; the command applies the declared default)."""
    where = p
    if option.exclusive and groups is not None:
        if option.exclusive not in groups:
            groups[option.exclusive] = p.add_mutually_exclusive_group()
        where = groups[option.exclusive]
    text = option.help_text().replace("%", "%%")
    if option.positional:
        where.add_argument(option.name, metavar=option.flag, help=text)
    elif option.kind == "bool":
        flag = "--no-" + option.flag[2:] if option.default else option.flag
        where.add_argument(flag, dest=option.name, action="store_false" if option.default else "store_true",
                           help=text)
    else:
        where.add_argument(option.flag, dest=option.name, metavar=option.metavar, required=option.required,
                           default=None if option.needs else option.default, help=text)


def add_options(p: argparse.ArgumentParser, table: dict[str, Option], names=None) -> None:
    """The options ``names`` (default: all) of a command's declarations, in their order."""
    groups: dict = {}
    for name in table if names is None else names:
        add_option(p, table[name], groups)


def _sample_arguments(p: argparse.ArgumentParser, labels_required: bool = False) -> None:
    """Where the samples come from: class counts or labels, or instances x views; batches."""
    skip = ("counts", "counts_file") if labels_required else ()
    add_options(p, SAMPLE_OPTIONS, [n for n in SAMPLE_OPTIONS if n not in skip])


def _loss_arguments(p: argparse.ArgumentParser, loss: Option = LOSS_OPTION) -> None:
    """--loss and every loss parameter, from the losses' own declarations."""
    from ufm.losses import LOSSES, all_params
    from ufm.params import REDUCTION

    add_option(p, loss)
    for name, (param, owners) in all_params().items():
        defaults = sorted({f"{o} {LOSSES[o].params[[q.name for q in LOSSES[o].params].index(name)].default}"
                           for o in owners})
        p.add_argument(param.flag, dest=name, default=None,
                       help=f"{param.help.split(' (')[0]} [{', '.join(owners)}; "
                       f"defaults: {', '.join(defaults)}]")
    p.add_argument("--reduction", default=None, help=REDUCTION.help)


def flag_of(argument: str, command: str | None) -> str:
    """How the command line spells an error's argument: a library parameter (``restarts``) that is
    an option of ``command`` is its flag (``--restarts``); anything else is kept."""
    from ufm.losses import all_params

    table = COMMAND_OPTIONS.get(command or "", {})
    name = option_name(argument)
    if name != argument or not name.isidentifier() or not name.islower():
        return argument
    if name in table:
        return table[name].flag
    posed = command in ("solve", "verify", "certify", "plot")  # commands that take samples and a loss
    if (posed and name in SAMPLE_OPTIONS) or ((posed or command == "network")
                                              and name in (*all_params(), "loss", "reduction")):
        return "--" + name.replace("_", "-")
    return argument


def _command(sub, name: str, help: str, description: str, samples: str | None = "all",
             loss: Option | None = LOSS_OPTION) -> argparse.ArgumentParser:
    """A command's parser: its declared options, after the samples and the loss where it takes
    them (``samples`` "labels": labels or instances only)."""
    p = sub.add_parser(name, help=help, description=description)
    table = COMMAND_OPTIONS[name]
    first = [n for n in table if table[n].positional or table[n].required]
    add_options(p, table, first)
    if samples is not None:
        _sample_arguments(p, labels_required=samples == "labels")
    if loss is not None:
        _loss_arguments(p, loss)
    add_options(p, table, [n for n in table if n not in first and n != "loss"])
    if "plot" in table or name in ("plot", "run"):  # commands that draw figures
        for style_option in FIGURE_STYLE_OPTIONS:
            add_option(p, style_option)
    add_option(p, QUIET_OPTION)
    return p


def _solve_command(sub) -> None:
    _command(sub, "solve", "certified global optimum of the convex relaxation over the Gram matrix",
             "Global optimum of a contrastive UFM through its convex relaxation, with its geometry and a "
             "global-optimality certificate. With no arguments: a STEP-imbalanced default (counts "
             f"{','.join(map(str, DEFAULT_COUNTS))}, tau {DEFAULT_TAU}).")


def _verify_command(sub) -> None:
    _command(sub, "verify", "non-convex restarts in dimension D, each compared with the certified optimum",
             "Optimise the loss over unit embeddings in dimension --dim from --restarts random starts "
             "(PyTorch, batched), compare every end point with the convex optimum up to rotation and certify "
             "it; report the census of distinct end points.")


def _certify_command(sub) -> None:
    _command(sub, "certify", "certify trained embeddings: value, global-optimality certificate, collapse "
             "measures", "Loss value, global-optimality certificate, NC1 and distances to the optimal "
             "geometry of given (n, d) embeddings with their labels.", samples="labels")


def _run_command(sub) -> None:
    _command(sub, "run", "run a study declared in TOML (a file, or a bundled study name)",
             "Solve and certify every grid point of a study; write results.jsonl and summary.csv to --out "
             "(default results/NAME).", samples=None, loss=None)


def _plot_command(sub) -> None:
    from experiments.options import PLOT_KINDS

    _command(sub, "plot", "draw a figure: " + " | ".join(PLOT_KINDS),
             "Draw one figure to --out: heatmap (class-mean cosines), embedding (PCA of the embeddings, 2d "
             "or 3d), long_tail (cosines against class size), step (cosines against R and tau), census "
             "(restarts: gaps, certificates, minima and their basins), curves (the gap to the optimum "
             "against iteration), family (the losses side by side). "
             "heatmap, embedding and long_tail draw the certified optimum, or --embeddings with --labels.")


def _network_command(sub) -> None:
    _command(sub, "network", "networks in place of free embeddings (Tian 2023): one-layer | two-layer | "
             "modulation",
             "one-layer: the local optima of one unit w (linear, ReLU and leaky ReLU, homogeneous as "
             "the paper assumes; quadratic, which is not), from many random "
             "starts, and the pattern each aligns with (a linear unit: the top eigenvector of the "
             "contrastive covariance). two-layer: hidden units per location trained through a loss of the "
             "family on pattern data, and how they specialise (--setup tian2023: the paper's simulation). "
             "modulation: global modulation, whether tokens discriminative of a global pattern are learned "
             "before and more than tokens shared across global patterns.",
             samples=None, loss=NETWORK_OPTIONS["loss"])


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


