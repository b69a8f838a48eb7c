"""Options of ``solve``, ``verify``, ``certify`` and ``network``, each declared once with
:class:`ufm.options.Option` (name, type, default, range or choices, help): the command line's
arguments, the study tables ``[solve]``, ``[verify]`` and ``[network]`` (``experiments.options``)
and the defaults of ``solve``, ``verify``, ``one_layer_census`` and ``train_two_layer`` (their
signatures read :func:`ufm.options.defaults`) all come from here.

The library names a parameter in its errors (``UFMInputError("restarts", ...)``); the command line
reports it as ``--restarts``, a study as ``[verify].restarts``. Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import replace

from solvers.certificate import CERTIFY_TOL
from solvers.convex import CONIC_SOLVERS
from solvers.nonconvex import METHODS as OPTIMIZERS
from solvers.nonconvex import PRECISIONS
from ufm.errors import UFMInputError
from ufm.networks.one_layer import ACTIVATIONS
from ufm.options import (
    DIM_OPTION,
    JSON_OPTION,
    LOSS_OPTION,
    MAX_ITER,
    NETWORK_LOSS,
    PLOT_FILE,
    THREADS_OPTION,
    Option,
    options,
    seed_option,
    with_help,
)

TOL_OPTION = Option("tol", CERTIFY_TOL, "certified means gap_bound <= tol x scale (the excess, capped by "
                    "the loss's range; absolute where the loss reaches its floor)", "float", minimum=0.0,
                    strict=True)

# --------------------------------------------------------------------------- solve

#: the programs of ``solve`` (``solvers.solve``) and how they are solved
METHODS = ("auto", "full", "reduced", "orbit")
SOLVERS = ("auto", "factored", *CONIC_SOLVERS)

SOLVE_OPTIONS = options(
    Option("method", "auto", "auto | full (n x n program) | reduced (class level) | orbit (equal counts "
           "merged)", "choice", METHODS),
    Option("solver", "auto", " | ".join(SOLVERS), "choice", SOLVERS),
    TOL_OPTION,
    seed_option("the factored solver's start and of random batches"),
    DIM_OPTION,
    Option("out", None, "directory for result.json and arrays.npz", metavar="DIR"),
    Option("lift", False, "with --out, also save unit embeddings of all n samples", "bool"),
    with_help(PLOT_FILE, "draw the optimum's class-mean cosines (and, for unequal counts, cosines "
              "against class size) to FILE (.png, .pdf or .svg)"),
    JSON_OPTION,
    THREADS_OPTION,
)

# --------------------------------------------------------------------------- verify

#: how restarts start: uniform on the spheres, with every instance's views equal, or both
#: (alternating, random first)
INITS = ("random", "aligned", "both")
#: where restarts run (the optimisers and precisions are ``solvers.nonconvex``'s)
DEVICES = ("auto", "cpu", "cuda")

VERIFY_OPTIONS = options(
    with_help(DIM_OPTION, "embedding dimension of the restarts (the sphere in dimension 1 is {-1, +1}, where "
              "gradients vanish)", minimum=2, default_text="max(k - 1, 2), k classes or instances"),
    Option("restarts", 8, "number of random restarts", "int", minimum=1, maximum=100_000),
    Option("optimizer", "lbfgs", " | ".join(OPTIMIZERS), "choice", OPTIMIZERS),
    Option("device", "auto", "auto (cuda where there is one) | cpu | cuda", "choice", DEVICES),
    Option("precision", "auto", "auto (mixed on cuda, float64 on cpu) | float64 | mixed (float32, then "
           "float64)", "choice", PRECISIONS),
    seed_option("the random starts and of random batches"),
    Option("init", "random", "random (uniform on the spheres) | aligned (every instance's views start equal: "
           "where a loss's minorant equals it on aligned views) | both (alternating, random first); the "
           "census says which start kind reached each minimum", "choice", INITS, what="start"),
    Option("snap", True, "collapse snapping: a class within 0.25 of its mean direction is set onto it when "
           "that lowers the loss (off: plain gradient dynamics)", "bool"),
    Option("max_iter", 5000, "most iterations per restart", "int", minimum=1, maximum=MAX_ITER),
    TOL_OPTION,
    with_help(PLOT_FILE, "draw the restart census (gaps, lambda_min, distinct minima) and the optimisation "
              "curves to FILE (.png, .pdf or .svg)"),
    Option("out", None, "directory for result.json (the object --json prints) and arrays.npz: restarts "
           "(R x n x d end points, rows in the order of the samples as given), values, certified (each "
           "restart's own certificate) and labels", metavar="DIR"),
    with_help(JSON_OPTION, "print one JSON object on stdout (progress on stderr)"),
    THREADS_OPTION,
)

# --------------------------------------------------------------------------- certify

CERTIFY_OPTIONS = options(
    Option("embeddings", None, "(n, d) array: .npy, .npz (key embeddings, H, or the first) or .pt (a tensor, "
           "or the first tensor of a dict)", metavar="FILE", required=True),
    Option("normalize", False, "normalise rows instead of rejecting", "bool"),
    Option("device", "cpu", "cpu | cuda | auto: where the matrix-free certificate runs (n > 3000)", "choice",
           DEVICES),
    TOL_OPTION,
    Option("memory_budget", 2.0, "GB that the matrix-free certificate may keep of S's blocks (n > 3000): "
           "above it blocks are recomputed for every product, never held n x n", "float", minimum=0.0,
           strict=True, metavar="GB"),
    seed_option("random batches"),
    JSON_OPTION,
    THREADS_OPTION,
    with_help(PLOT_FILE, "draw the embeddings (PCA) and their class-mean cosines to FILE (.png, .pdf or "
              ".svg)"),
)

# --------------------------------------------------------------------------- network

MODELS = ("one-layer", "two-layer")
DATA = ("mixture", "patterns")
#: defaults that depend on the model
MODEL_DEFAULTS = {"one-layer": {"data": "mixture", "samples": 400},
                  "two-layer": {"data": "patterns", "samples": 256}}
#: options only one model uses
ONE_LAYER_ONLY = ("restarts", "max_iter", "input_dim", "noise", "magnitudes")
TWO_LAYER_ONLY = ("hidden", "out_dim", "steps", "lr", "optimizer", "loss")

NETWORK_OPTIONS = options(
    Option("model", "one-layer", "one-layer | two-layer", "choice", MODELS, positional=True, metavar="MODEL"),
    Option("data", None, "mixture (P separated patterns) | patterns (Tian 2023's pattern data; two-layer "
           "always)", "choice", DATA, default_text="mixture one-layer, patterns two-layer"),
    Option("samples", None, "samples, each seen in two views", "int", minimum=2, maximum=100_000,
           default_text="400 one-layer, 256 two-layer"),
    Option("patterns", 4, "patterns", "int", minimum=1, maximum=10_000),
    Option("input_dim", 16, "mixture: input dimension", "int", minimum=1, maximum=100_000),
    Option("noise", 0.05, "mixture: noise standard deviation", "float", minimum=0.0),
    Option("magnitudes", None, "mixture: one magnitude per pattern, separated by commas (command line only)",
           default_text="all 1"),
    Option("locations", 6, "patterns: locations K", "int", minimum=1, maximum=10_000),
    Option("vocab", 12, "patterns: tokens per location", "int", minimum=1, maximum=10_000),
    Option("fixed", 3, "patterns: locations each pattern fixes", "int", minimum=1, maximum=10_000),
    Option("activation", "all", f"{' | '.join(ACTIVATIONS)} (separated by commas on the command line, a "
           "list in a study) | all"),
    Option("restarts", 32, "one-layer: random starts", "int", minimum=1, maximum=100_000),
    Option("max_iter", 3000, "one-layer: most iterations per start", "int", minimum=1, maximum=MAX_ITER),
    Option("hidden", 8, "two-layer: hidden units per location", "int", minimum=1, maximum=10_000),
    Option("out_dim", 16, "two-layer: embedding dimension", "int", minimum=1, maximum=10_000),
    Option("steps", 1000, "two-layer: gradient steps", "int", minimum=1, maximum=MAX_ITER),
    Option("lr", 0.05, "two-layer: learning rate", "float", minimum=0.0, strict=True),
    Option("optimizer", "sgd", "two-layer: sgd (momentum 0.9) | adam", "choice", ("sgd", "adam")),
    seed_option("the data and of the starts"),
    with_help(PLOT_FILE, "draw the census (one-layer) or the specialisation (two-layer) to FILE (.png, "
              ".pdf, .svg)"),
    JSON_OPTION,
    THREADS_OPTION,
    with_help(LOSS_OPTION, "two-layer: the loss the network is trained through (its parameters as for "
              "solve)", default=None, default_text=NETWORK_LOSS),
)


def network_default(name: str, model: str):
    """The default of a network option for ``model`` (some depend on it)."""
    return MODEL_DEFAULTS[model].get(name, NETWORK_OPTIONS[name].default)


def activations(value, where: str, typed: bool = False) -> list[str]:
    """The activations an ``activation`` value selects: ``all``, or names (separated by commas on
    the command line; one name, or a list, with ``typed``), each checked, none twice."""
    if value == "all":
        return list(ACTIVATIONS)
    if typed:
        names = value if isinstance(value, list) else [value]
    else:
        names = [a.strip() for a in str(value).split(",")]
        if not all(names):
            raise UFMInputError(where, f"empty name in {value!r} ({', '.join(ACTIVATIONS)} or all)")
    one = replace(NETWORK_OPTIONS["activation"], kind="choice", choices=ACTIVATIONS)
    names = [one.parse(a, where, typed) for a in names]
    if len(set(names)) < len(names):
        raise UFMInputError(where, f"an activation appears twice in {value!r}")
    return names
