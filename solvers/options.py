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
from ufm.networks.one_layer import (
    ACTIVATIONS,
    ALPHA_HELP,
    ALPHA_OPTION,
    ALPHA_TAU_HELP,
    ALPHA_TAU_OPTION,
    ALPHAS,
    DEFAULT_ALPHA_TAU,
)
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
    Option("lift", False, "with --out, also save unit embeddings of all n samples (row i is sample i "
           "of the labels as given)", "bool"),
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

MODELS = ("one-layer", "two-layer", "modulation")
DATA = ("mixture", "patterns", "modulation")
#: defaults that depend on the model (modulation: ``solvers.networks.modulation``'s measurement:
#: lr 50 times below two-layer's, where the order of learning can be read; its data's vocab)
MODEL_DEFAULTS = {"one-layer": {"data": "mixture", "samples": 400},
                  "two-layer": {"data": "patterns", "samples": 256},
                  "modulation": {"data": "modulation", "samples": 128, "lr": 0.001, "steps": 300, "vocab": 8,
                                 "activation": "relu,linear", "shared_mode": "fixed"}}
#: options only one model uses
ONE_LAYER_ONLY = ("restarts", "max_iter", "input_dim", "noise", "magnitudes", ALPHA_OPTION,
                 ALPHA_TAU_OPTION)
TWO_LAYER_ONLY = ("hidden", "out_dim", "steps", "lr", "optimizer", "loss", "batchnorm", "weight_decay",
                  "batch", "fresh_batches", "anchor", "tokens_per_location", "setup")
#: options only the modulation model (global modulation, Tian 2023) uses
MODULATION_ONLY = ("discriminative", "shared", "shared_by", "shared_mode", "threshold", "record_every",
                   "fresh_views")
#: options each model leaves unused (refused when given)
UNUSED = {"one-layer": TWO_LAYER_ONLY + MODULATION_ONLY,
          "two-layer": ONE_LAYER_ONLY + MODULATION_ONLY,
          "modulation": ONE_LAYER_ONLY + ("fixed", "batch", "fresh_batches", "anchor", "tokens_per_location",
                                          "setup")}

NETWORK_OPTIONS = options(
    Option("model", "one-layer", "one-layer | two-layer | modulation (what a two-layer network learns first: "
           "tokens discriminative of the global pattern or shared across patterns)", "choice", MODELS,
           positional=True, metavar="MODEL"),
    Option("data", None, "mixture (P separated patterns) | patterns (Tian 2023's pattern data; two-layer "
           "always) | modulation (global patterns with discriminative and shared tokens; modulation "
           "always)", "choice", DATA,
           default_text="mixture one-layer, patterns two-layer, modulation modulation"),
    Option("samples", None, "samples, each seen in two views", "int", minimum=2, maximum=100_000,
           default_text="400 one-layer, 256 two-layer, 128 modulation"),
    Option("patterns", 4, "patterns", "int", minimum=1, maximum=10_000),
    Option("input_dim", 16, "mixture: input dimension", "int", minimum=1, maximum=100_000),
    Option("noise", 0.05, "mixture: noise standard deviation", "float", minimum=0.0),
    Option("magnitudes", None, "mixture: one magnitude per pattern, separated by commas (command line only)",
           default_text="all 1"),
    Option("locations", 6, "patterns: locations K", "int", minimum=1, maximum=10_000),
    Option("vocab", 12, "patterns, modulation: tokens per location", "int", minimum=1, maximum=10_000,
           default_text="12; modulation 8"),
    Option("fixed", 3, "patterns: locations each pattern fixes", "int", minimum=1, maximum=10_000),
    Option("activation", None, f"{' | '.join(ACTIVATIONS)} (separated by commas on the command line, a "
           "list in a study) | all", default_text="all; modulation relu,linear"),
    Option("restarts", 32, "one-layer: random starts", "int", minimum=1, maximum=100_000),
    Option("max_iter", 3000, "one-layer: most iterations per start", "int", minimum=1, maximum=MAX_ITER),
    Option(ALPHA_OPTION, None, ALPHA_HELP, "choice", ALPHAS, default_text="uniform"),
    Option(ALPHA_TAU_OPTION, None, ALPHA_TAU_HELP, "float", minimum=0.0, strict=True,
           default_text=f"{DEFAULT_ALPHA_TAU:g}", needs=ALPHA_OPTION),
    Option("hidden", 8, "two-layer, modulation: hidden units per location", "int", minimum=1, maximum=10_000),
    Option("out_dim", 16, "two-layer, modulation: embedding dimension", "int", minimum=1, maximum=10_000),
    Option("steps", 1000, "two-layer, modulation: gradient steps", "int", minimum=1, maximum=MAX_ITER,
           default_text="1000; modulation 300"),
    Option("lr", 0.05, "two-layer, modulation: learning rate", "float", minimum=0.0, strict=True,
           default_text="0.05; modulation 0.001"),
    Option("optimizer", "sgd", "two-layer, modulation: sgd (momentum 0.9) | adam", "choice", ("sgd", "adam")),
    # two-layer: the paper's simulation (solvers.networks.two_layer.TIAN2023); default None, so that an
    # option given on the command line (or in a study) is told from one a --setup fills in
    Option("batchnorm", None, "two-layer, modulation: BatchNorm of the hidden layer after the "
           "activation, each view by its own batch statistics: off | on | detach_var (no "
           "gradient through the variance)", "choice",
           ("off", "on", "detach_var"), default_text="off"),
    Option("weight_decay", None, "two-layer, modulation: weight decay (L2, the optimizer's) on both "
           "layers", "float", minimum=0.0, default_text="0"),
    Option("fresh_batches", None, "two-layer: on: every step trains on a fresh batch of --batch samples "
           "drawn from the patterns (seeded by --seed); --samples is then the sample the losses are "
           "measured on | off: every step on the one fixed sample", "choice", ("off", "on"),
           default_text="off"),
    Option("batch", None, "two-layer: samples of each fresh batch (with --fresh-batches on)", "int",
           minimum=2, maximum=100_000, default_text="--samples"),
    Option("anchor", None, "two-layer: symmetric (every sample of both views anchors the loss) | view1 "
           "(the loss anchored on view 1 only, the paper's)", "choice", ("symmetric", "view1"),
           default_text="symmetric"),
    Option("tokens_per_location", None, "two-layer, patterns: tokens a pattern may fix at each location "
           "(the paper's P)", "int", minimum=1, maximum=10_000, default_text="any of --vocab"),
    Option("setup", None, "two-layer: none | tian2023 (the paper's simulation: bn_gen.py's values; "
           "options given explicitly win)", "choice", ("none", "tian2023"), default_text="none"),
    # modulation (solvers.networks.modulation, ufm.networks.modulation): the data's token classes and
    # the measurement
    Option("discriminative", 2, "modulation: locations where every pattern fixes a token of its own", "int",
           minimum=1, maximum=10_000),
    Option("shared", 2, "modulation: locations whose tokens groups of patterns share", "int", minimum=1,
           maximum=10_000),
    Option("shared_by", None, "modulation: patterns per group at a shared location (dividing --patterns)",
           "int", minimum=2, maximum=10_000, default_text="2 fixed, --patterns drawn"),
    # default None (the model's default, fixed), so that a given one is told from one left out
    Option("shared_mode", None, "modulation: fixed (each group fixes one token, kept across views: the "
           "paper's, bn_gen.py) | drawn (each group owns shared-by tokens, one drawn per sample and kept "
           "across views: as frequent as a discriminative token)", "choice", ("fixed", "drawn"),
           default_text="fixed"),
    Option("threshold", 0.8, "modulation: a token is learned when its best unit's weight share on it "
           "reaches this", "float", minimum=0.0, strict=True, maximum=1.0),
    Option("record_every", 1, "modulation: steps between recorded weights", "int", minimum=1,
           maximum=MAX_ITER),
    Option("fresh_views", True, "modulation: the wildcards of both views drawn afresh at every step, as the "
           "paper's code draws its samples (off: every step on the data's one pair of views)", "bool"),
    seed_option("the data and of the starts"),
    with_help(PLOT_FILE, "draw the census (one-layer), the specialisation (two-layer) or the token scores "
              "over training (modulation) to FILE (.png, .pdf, .svg)"),
    JSON_OPTION,
    THREADS_OPTION,
    with_help(LOSS_OPTION, "two-layer, modulation: the loss the network is trained through (its "
              "parameters as for solve)", default=None, default_text=NETWORK_LOSS),
)


def network_default(name: str, model: str):
    """The default of a network option for ``model`` (some depend on it; ``activation`` is all
    but for modulation)."""
    value = MODEL_DEFAULTS[model].get(name, NETWORK_OPTIONS[name].default)
    return "all" if name == "activation" and value is None else value


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
