"""Options of the commands, each declared once (DESIGN section 6), like a loss's parameters
(:class:`ufm.params.Param`): :class:`Option` and the options of the problem (where the samples
come from, the loss, the dimension) that every command posing a problem shares. The options of
solve, verify, certify and network are declared in ``solvers.options``, those of run and plot and
the study tables in ``experiments.options``.

One :class:`Option` gives an option its name, type, default, range or choices and help. From the
declarations come the command line's arguments (``ufm.cli.parser``: flag, help text with the
default), the checks of the study tables and the defaults of the library functions (their
signatures read :func:`defaults`).

Names: an option ``max_iter`` is the keyword ``max_iter`` of the library, the flag ``--max-iter``
and the TOML key ``max_iter`` of its table. The library names a parameter in its errors
(``UFMInputError("restarts", ...)``); the command line reports it as ``--restarts``, a study as
``[verify].restarts`` (:func:`option_name` reads either spelling back).

Nothing heavy is imported here: the command line reads this module to build its parser.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from types import SimpleNamespace

from ufm.errors import UFMInputError
from ufm.inputs import PRESETS
from ufm.losses import LOSSES
from ufm.params import Param
from ufm.samples import MAX_SAMPLES

#: largest seed (a signed 64-bit seed for numpy and torch alike)
MAX_SEED = 2**63 - 1
#: most iterations or steps any option accepts
MAX_ITER = 10**9
#: the types an option can have: "text" is any string (a path, a list read by its command);
#: "table" a TOML table and "names" a string or a list of strings (study keys only)
KINDS = ("int", "float", "choice", "bool", "text", "table", "names")


def _words(value) -> str:
    """A default as the help prints it (1e-06 as 1e-6, True as on)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{value:g}")
    return str(value)


@dataclass(frozen=True)
class Option(Param):
    """One option of a command: a :class:`ufm.params.Param` (name, default, help, kind, choices,
    range) with what a command line and a study table need besides. ``kind`` is one of
    :data:`KINDS`; ``default`` None with a ``default_text`` is a default that depends on the
    problem (``max(k - 1, 2)``)."""

    kind: str = "text"
    strict: bool = False  # a float > minimum (else >=)
    default_text: str = ""  # the default in words, where it is not a plain value
    what: str = ""  # a value's name in errors ("unknown optimizer 'adam'"); default: the option's name
    metavar: str | None = None
    positional: bool = False  # a command-line positional argument (EXPERIMENT)
    required: bool = False
    exclusive: str = ""  # options of one group are given one at a time (on the command line)
    needs: str = ""  # the option this one goes with: no argparse default, so that it alone is caught

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")

    @property
    def flag(self) -> str:
        """How the command line spells it: ``--max-iter``, or ``EXPERIMENT`` for a positional."""
        if self.positional:
            return self.metavar or self.name.upper()
        return "--" + self.name.replace("_", "-")

    def default_words(self) -> str:
        """The default as the help says it ('' where there is none to say)."""
        if self.default_text:
            return self.default_text
        return "" if self.default is None else _words(self.default)

    def help_text(self) -> str:
        """The help: what it is, its range or choices (where the help does not list them) and its
        default."""
        extra = []
        if self.kind == "choice" and not all(c in self.help for c in self.choices):
            extra.append(" | ".join(self.choices))
        if self.kind in ("int", "float") and (self.minimum is not None or self.maximum is not None):
            extra.append(self._range_words(brief=True))
        if self.kind == "bool" and self.default:
            extra.append(f"on by default; --no-{self.flag[2:]} turns it off")
        elif self.kind != "bool" and not self.positional and self.default_words():
            extra.append(f"default {self.default_words()}")
        return self.help + (f" ({'; '.join(extra)})" if extra else "")

    def _range_words(self, brief: bool = False) -> str:
        """``an integer >= 1 and <= 100000``; ``brief`` leaves out a maximum no one will reach
        (a seed's 2^63 - 1)."""
        what = "an integer" if self.kind == "int" else "a number"
        low = "" if self.minimum is None else f"{'>' if self.strict else '>='} {_words(self.minimum)}"
        unreached = self.maximum is None or (brief and self.maximum > MAX_ITER)
        high = "" if unreached else f"<= {_words(self.maximum)}"
        return f"{what} {' and '.join(w for w in (low, high) if w)}"

    def parse(self, value, where: str | None = None, typed: bool = False):
        """The checked value of the option. ``value`` is command-line text, a default, or with
        ``typed`` a TOML value (then numbers must be numbers and strings strings). Errors name
        ``where`` (default: the flag). None is None (an option left unset)."""
        where = where or self.flag
        if value is None:
            return None
        if self.kind == "int":
            return self._integer(value, where, typed)
        if self.kind == "float":
            return self._number(value, where, typed)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise UFMInputError(where, f"must be true or false, got {value!r}")
            return value
        if self.kind == "table":
            if not isinstance(value, dict):
                raise UFMInputError(where, f"must be a table, got {value!r}")
            return value
        if self.kind == "names":
            names = value if isinstance(value, list) else [value]
            if not names:
                raise UFMInputError(where, "an empty list: name at least one")
            for v in names:
                _string(v, where)
            return value
        if typed:
            _string(value, where)
        if self.kind == "choice" and value not in self.choices:
            close = difflib.get_close_matches(str(value), list(self.choices), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UFMInputError(where, f"unknown {self.what or self.name.replace('_', ' ')} {value!r}{hint} "
                                f"(choose from {', '.join(self.choices)})")
        return value

    def _integer(self, value, where: str, typed: bool) -> int:
        """An integer in range, from text ("12", "1e3", "8.0"; :func:`ufm.inputs.integer`) or a number
        (a TOML integer, or an integer-valued float)."""
        from ufm.inputs import integer

        if isinstance(value, bool) or (typed and not isinstance(value, int | float)):
            raise UFMInputError(where, f"must be an integer, got {value!r}")
        low = -(2**63) if self.minimum is None else int(self.minimum)
        return integer(value if isinstance(value, str) else str(value), where, low, self.maximum)

    def _number(self, value, where: str, typed: bool) -> float:
        """A finite number in range (:class:`ufm.params.Param` reads it), from text or a number."""
        if isinstance(value, bool) or (typed and not isinstance(value, int | float)):
            raise UFMInputError(where, f"must be a number, got {value!r}")
        number = Param(self.name, None, "", minimum=self.minimum, strict=self.strict).parse(value, where)
        if self.maximum is not None and number > self.maximum:
            raise UFMInputError(where, f"must be <= {_words(self.maximum)}, got {value}")
        return number


def _string(value, where: str) -> str:
    if not isinstance(value, str):
        raise UFMInputError(where, f"must be a string, got {value!r}")
    return value


def options(*declared: Option) -> dict[str, Option]:
    """A command's options by name, in the order its help lists them."""
    return {o.name: o for o in declared}


def defaults(table: dict[str, Option]) -> SimpleNamespace:
    """The declared defaults as attributes (``defaults(VERIFY_OPTIONS).restarts``): what the
    library's signatures use."""
    return SimpleNamespace(**{name: o.default for name, o in table.items()})


def option_name(argument: str) -> str:
    """The option an error's argument names, in either spelling: ``--max-iter`` or ``max_iter``
    is ``max_iter``."""
    return argument.lstrip("-").replace("-", "_") if argument.startswith("--") else argument


def seed_option(what: str) -> Option:
    """``--seed`` of a command: ``what`` it seeds."""
    return Option("seed", 0, f"seed of {what}", "int", minimum=0, maximum=MAX_SEED)


def with_help(option: Option, help: str, **changes) -> Option:
    """The same declaration (name, type, default, range) with another command's help."""
    return replace(option, help=help, **changes)


# --------------------------------------------------------------------------- the problem

_PRESET_HELP = ", ".join(PRESETS)

#: where the samples come from (solve, verify, certify, plot)
SAMPLE_OPTIONS = options(
    Option("counts", None, "class sizes separated by commas, e.g. 10,10,2,2; or a long-tailed preset: "
           f"{_PRESET_HELP}", exclusive="source",
           default_text="a STEP-imbalanced problem, or 8 pairs for a loss posed on views"),
    Option("counts_file", None, "text file of class sizes separated by spaces, commas or newlines",
           metavar="FILE", exclusive="source"),
    Option("labels", None, "label vector: .npy, or text with labels separated by spaces, commas, tabs or "
           "newlines (numbers when every label is a number), or a CSV table with --label-column; a header "
           "line is skipped, with a note", exclusive="source"),
    Option("instances", None, "N instances seen in --views views (positives: the other views of an "
           "instance; InfoNCE, DCL, DHEL, KCL, alpha-CL); samples ordered a V + v", "int", minimum=1,
           maximum=MAX_SAMPLES, metavar="N", exclusive="source"),
    Option("label_column", None, "with --labels: the column of a CSV table that holds the labels, by its "
           "header name or 0-based index (required when the file has more than one column)",
           metavar="NAME|INDEX", needs="labels"),
    Option("views", 2, "views per instance with --instances", "int", minimum=1, maximum=MAX_SAMPLES,
           metavar="V", needs="instances", default_text="2: pairs"),
    Option("batches", None, "sum the loss over mini-batches: FILE (JSON list of index lists, or one batch "
           "per text line; indices into the samples as given), random:B (a random partition into batches "
           "of B samples, instances kept whole) or balanced:B (class-balanced batches); seeded by --seed",
           metavar="SPEC"),
)
#: the loss (its parameters come from the losses' own declarations, ``ufm.losses``)
LOSS_OPTION = Option("loss", "supcon", f"loss: {', '.join(LOSSES)} (see the README's table)")
#: the loss networks are trained through unless one is named (``ufm network two-layer``)
NETWORK_LOSS = "infonce"
JSON_OPTION = Option("json", False, "print one JSON object on stdout", "bool")
#: threads of BLAS, OpenMP and torch in this process (``ufm.threads``); results never depend on it
THREADS_OPTION = Option("threads", None, "threads this process computes with (BLAS, OpenMP, torch); kernels "
                        "too small to gain from more use one anyway", "int", minimum=1, maximum=4096,
                        default_text="the cores it is given; with ufm run --jobs N, cores / N per process")
#: progress bars on stderr (``ufm.progress``): drawn on a terminal unless silenced
QUIET_OPTION = Option("quiet", False, "no progress bars on stderr (drawn only when stderr is a terminal, "
                      "for work that lasts over a second)", "bool")
DIM_OPTION = Option("dim", None, "embedding dimension to report on: relaxation_tight says whether the "
                    "optimum fits", "int", minimum=1)
PLOT_FILE = Option("plot", None, "draw the result to FILE (.png, .pdf or .svg)", metavar="FILE")
#: the size and resolution of the figures a command draws (``ufm.plotting.style``)
WIDTH_OPTION = Option("width", None, "width of the figures: single (3.3 in, a paper column), double (6.9 in, "
                      "a page) or a width in inches, 1 to 30; fonts stay 7-9 pt",
                      metavar="single|double|INCHES",
                      default_text="single for one panel, double for several")
DPI_OPTION = Option("dpi", None, "resolution of PNG figures in dots per inch", "int", minimum=50,
                    maximum=1200, default_text="300")
FIGURE_STYLE_OPTIONS = (WIDTH_OPTION, DPI_OPTION)
