"""Options of ``ufm run`` and ``ufm plot``, and the study tables made of command options, each
declared once (:class:`ufm.options.Option`; the options of solve, verify, certify and network are
declared in :mod:`solvers.options`, those of the problem in :mod:`ufm.options`).

A study table is a command's options under their TOML names: ``[solve]`` is solve's ``method``,
``solver`` and ``tol``, ``[verify]`` verify's restart options, ``[network]`` the options of
``ufm network``, ``[[figure]]`` a figure's keys (``projection`` is ``ufm plot``'s); the keys of
``[problem]`` that are command options (``instances``, ``views``, ``dim``, ``seed``, the step
problem's class counts) are the same declarations. :func:`table_values` checks a table's values
and fills in the defaults, each error naming ``[table].key``; :func:`table_key` names a library
error's parameter as the study key that sets it.

Imported by the command line and by the studies alike: nothing heavy.
"""

from __future__ import annotations

from solvers.options import NETWORK_OPTIONS, SOLVE_OPTIONS, VERIFY_OPTIONS
from ufm.inputs import PRESETS
from ufm.options import (
    DIM_OPTION,
    JSON_OPTION,
    LOSS_OPTION,
    MAX_SAMPLES,
    SAMPLE_OPTIONS,
    THREADS_OPTION,
    Option,
    option_name,
    options,
    seed_option,
    with_help,
)

# --------------------------------------------------------------------------- ufm run

RUN_OPTIONS = options(
    Option("experiment", None, "study .toml file or bundled name", positional=True, metavar="EXPERIMENT"),
    Option("out", None, "output directory", metavar="DIR", default_text="results/<study name>"),
    Option("jobs", None, "run N points at a time in local processes", "int", minimum=1, maximum=1024,
           metavar="N", default_text="1: one at a time, in this process"),
    Option("scheduler", None, "send the points to a Dask cluster (dask.distributed scheduler address, e.g. "
           "tcp://host:8786), or local:N to start a local cluster of N worker processes for this run",
           metavar="ADDRESS"),
    Option("smoke", False, "run the study's [smoke] grid: a tiny version of the same study, to check it in "
           "seconds", "bool"),
    JSON_OPTION,
    THREADS_OPTION,
)

# --------------------------------------------------------------------------- ufm plot and [[figure]]

#: the figures of ``ufm plot KIND``
PLOT_KINDS = ("heatmap", "embedding", "long_tail", "step", "census", "curves", "family")
#: the figures of a study: of one point, of several, of networks
FIGURE_SINGLE = ("heatmap", "long_tail", "embedding", "census", "curves")
FIGURE_MULTI = ("step", "family", "lines")
FIGURE_NETWORK = ("network_census", "specialisation", "modulation")
FIGURE_KINDS = FIGURE_SINGLE + FIGURE_MULTI + FIGURE_NETWORK

PROJECTION = Option("projection", "2d", "embedding: 2d (plane) or 3d (sphere)", "choice", ("2d", "3d"))
#: the step problem's classes: ``ufm plot step`` and a study's ``kind = "step"`` problems (bounded by
#: the number of samples they make)
K_MAJOR = Option("k_major", 5, "step: majority classes", "int", minimum=0)
K_MINOR = Option("k_minor", 5, "step: minority classes", "int", minimum=0)
N_MINOR = Option("n_minor", 2, "step: samples per minority class", "int", minimum=1, maximum=MAX_SAMPLES)

PLOT_OPTIONS = options(
    Option("kind", None, " | ".join(PLOT_KINDS), "choice", PLOT_KINDS, positional=True, metavar="KIND",
           what="figure kind"),
    Option("out", None, "the figure: .png, .pdf or .svg", metavar="FILE", required=True),
    Option("embeddings", None, "(n, d) embeddings to draw instead of the optimum (with --labels)",
           metavar="FILE"),
    PROJECTION,
    with_help(VERIFY_OPTIONS["dim"], "census, curves, family: dimension of the restarts",
              default_text="max(k - 1, 2); family: the relaxation's optimum unless --dim is given"),
    with_help(VERIFY_OPTIONS["restarts"], "census, curves, family with --dim: restarts"),
    seed_option("restarts and random batches"),
    K_MAJOR,
    K_MINOR,
    N_MINOR,
    Option("ratios", "1,2,5,10,20,50,100", "step: imbalance ratios R, majority size = R n_minor"),
    Option("taus", None, "step: temperatures", default_text="the loss's --tau"),
    Option("losses", None, "family: losses to compare, separated by commas",
           default_text="every loss that can be posed on the samples"),
    JSON_OPTION,
    THREADS_OPTION,
)

FIGURE_OPTIONS = options(
    Option("kind", None, "what the figure draws", "choice", FIGURE_KINDS, what="figure kind", required=True),
    Option("file", None, "the figure's file name (.png, .pdf or .svg), written beside results.jsonl",
           required=True),
    Option("select", {}, "a table of [problem] values picking grid points", "table", default_text="all"),
    Option("x", None, "lines: the swept [problem] key on the x axis"),
    Option("y", None, "lines: the summary column (or columns) plotted", "names"),
    Option("by", None, "lines: another swept key, one line per value"),
    Option("title", None, "the figure's title"),
    PROJECTION,
)

# --------------------------------------------------------------------------- study tables

#: the kinds of [problem] and what each needs
PROBLEM_KINDS = ("counts", "step", "preset", "views")
#: [problem] keys that are declared options (the others are read by experiments.study; loss
#: parameters by the losses' own declarations)
PROBLEM_OPTIONS = options(
    LOSS_OPTION,
    Option("kind", "counts", "who the samples are", "choice", PROBLEM_KINDS, what="problem kind"),
    Option("preset", None, "a long-tailed benchmark's counts", "choice", tuple(PRESETS)),
    SAMPLE_OPTIONS["instances"],
    SAMPLE_OPTIONS["views"],
    K_MAJOR,
    K_MINOR,
    N_MINOR,
    Option("ratio", None, "step: imbalance ratio R (majority classes of R n_minor samples)", "float",
           minimum=1.0),
    DIM_OPTION,
    seed_option("the point's random starts and batches"),
)
#: each table of command options: the declarations of its keys
STUDY_TABLES = {
    "solve": options(*(SOLVE_OPTIONS[k] for k in ("method", "solver", "tol", "threads"))),
    "verify": options(*(VERIFY_OPTIONS[k] for k in ("restarts", "optimizer", "max_iter", "precision",
                                                     "device", "snap", "init", "threads"))),
    "network": options(*(o for k, o in NETWORK_OPTIONS.items() if k not in ("plot", "json", "magnitudes",
                                                                            "loss"))),
    "figure": FIGURE_OPTIONS,
}
#: keys a study leaves at their defaults without writing them into its options (and so into its
#: point ids): keys added after studies had results, which stay valid
UNFILLED = {"verify": ("init",)}


def _key(table: str, key: str) -> str:
    return f"[{table}].{key}"


def table_values(raw: dict, table: str, fill: bool = True) -> dict:
    """The checked values of a table of command options (TOML types: numbers are numbers, strings
    strings), with ``fill`` its defaults where the file leaves a key out (none for
    :data:`UNFILLED` keys, nor for defaults that depend on the point); an error names
    ``[table].key``. Unknown keys are the caller's to refuse."""
    declared = STUDY_TABLES[table]
    out = {key: o.default for key, o in declared.items()
           if fill and o.default is not None and key not in UNFILLED.get(table, ())}
    out.update({key: declared[key].parse(value, _key(table, key), typed=True) for key, value in raw.items()})
    return out


def table_key(argument: str, tables=("problem", "solve", "verify")) -> str:
    """The study key a library error's argument stands for: a parameter ``max_iter`` (or its
    command-line spelling ``--max-iter``) is the key ``max_iter`` of the first of ``tables`` that
    has it (``[verify].max_iter``); anything else is kept."""
    from ufm.losses import all_params

    key = option_name(argument)
    for name in tables:
        keys = set(STUDY_TABLES.get(name, {}))
        if name == "problem":
            keys |= {*PROBLEM_OPTIONS, "counts", "batches", "reduction", *all_params()}
        if key in keys:
            return _key(name, key)
    return argument
