"""Declared parameters of a loss: one declaration serves the constructor, the command line and the
docs, so a new parameter needs no CLI code (DESIGN section 6).

Each :class:`Param` parses and checks one value, naming its command-line flag in the error
(``ufm: error: --tau: must be a finite number > 0, got -1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ufm.errors import UFMInputError

#: smallest temperature accepted by the log-sum-exp losses. Solvers work with log(f - floor),
#: which float64 holds at any tau, but the certificate's round-off relative to the excess grows as
#: about 100 eps / tau^2 (measured: 5e-8 at tau = 5e-4, 1e-6 at 2e-4 to 3e-4, where answers stop
#: being certified and a conic fallback can return a wrong geometry): below this, float64 cannot tell.
TAU_MIN = 5e-4
#: largest temperature accepted. Certificates are judged against min(excess, the loss's range over
#: the sphere) (O(n / tau)), so large tau is served honestly: measured certified at the optimum and
#: refused at random points up to tau = 1e14 (supcon, dhel). The bound is where the tests stop: the
#: adversarial test poses every loss at this end.
TAU_MAX = 1e8


@dataclass(frozen=True)
class Param:
    """One parameter of a loss: ``kind`` is "float", "int" or "choice"."""

    name: str
    default: Any
    help: str
    kind: str = "float"
    choices: tuple = ()
    minimum: float | None = None
    strict: bool = True  # value > minimum (else >=)
    nonzero: bool = False
    check: Any = None  # extra check(value, argument) -> value, after the range
    maximum: float | None = None  # value <= maximum (a bound float64 can serve; documented)
    #: the ends of the accepted range as values a test can pose (a strict minimum has no
    #: attained end: its declaration names the smallest value tested); default (minimum or
    #: resolved_min, maximum)
    extremes: tuple | None = None
    #: smallest value (|value| for a ``nonzero`` parameter) at which float64 still serves a
    #: certificate, measured; ``resolved_why`` says why or where it is documented
    resolved_min: float | None = None
    resolved_why: str = ""

    def ends(self) -> tuple:
        """Values at the ends of the accepted range (numbers; choices: every choice)."""
        if self.kind == "choice":
            return tuple(self.choices)
        if self.extremes is not None:
            return tuple(self.extremes)
        low = self.minimum if self.resolved_min is None else self.resolved_min
        return tuple(v for v in (low, self.maximum) if v is not None)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value, argument: str | None = None):
        """The checked value (from text, a number or a choice string)."""
        arg = argument or self.flag
        if self.kind == "choice":
            text = str(value).strip()
            if text not in self.choices:
                raise UFMInputError(
                    arg, f"unknown {self.name} {text!r} (choose from {', '.join(self.choices)})"
                )
            return text
        if isinstance(value, bool):
            raise UFMInputError(arg, f"not a number: {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise UFMInputError(arg, f"not a number: {value!r}") from None
        if not math.isfinite(number):
            raise UFMInputError(arg, f"must be a finite number, got {value}")
        if self.kind == "int":
            if number != int(number):
                raise UFMInputError(arg, f"must be an integer, got {value}")
            number = int(number)
        if self.minimum is not None:
            low = self.minimum
            if (number <= low) if self.strict else (number < low):
                raise UFMInputError(
                    arg, f"must be a finite number {'>' if self.strict else '>='} {low:g}, got {value}"
                )
        if self.maximum is not None and number > self.maximum:
            raise UFMInputError(arg, f"must be <= {self.maximum:g}, got {value} (the accepted range: see the "
                                "README's certificate section)")
        if self.nonzero and number == 0:
            raise UFMInputError(arg, f"must be non-zero, got {value}")
        if self.resolved_min is not None:
            size, name = (abs(number), f"|{self.name}|") if self.nonzero else (number, self.name)
            if size < self.resolved_min:
                raise UFMInputError(arg, f"{name} = {size:g} is below {self.resolved_min:g}, where float64 "
                                    f"stops serving a certificate ({self.resolved_why}); use {name} >= "
                                    f"{self.resolved_min:g}")
        return number if self.check is None else self.check(number, arg)


def temperature(default: float, source: str = "") -> Param:
    """tau in [:data:`TAU_MIN`, :data:`TAU_MAX`] (float64's limit for a certificate, and where
    the tests stop)."""
    return Param(
        "tau",
        default,
        f"temperature > 0 dividing inner products ({TAU_MIN:g} <= tau <= {TAU_MAX:g}; default "
        f"{default:g}{', ' + source if source else ''})",
        minimum=0.0,
        maximum=TAU_MAX,
        resolved_min=TAU_MIN,
        resolved_why="its round-off grows as 1/tau^2: ufm.params.TAU_MIN",
    )


def positive_number(value, argument: str) -> float:
    """A finite number > 0 (tolerances, memory budgets)."""
    return Param("value", None, "", minimum=0.0).parse(value, argument)


REDUCTION = Param(
    "reduction",
    None,
    "sum over anchors, or mean (divided by the number of anchors: "
    "pairs for DHEL and KCL; with mini-batches, each batch by its own); default: the loss's own",
    kind="choice",
    choices=("sum", "mean"),
)


def check_tau(tau, argument: str = "--tau") -> float:
    """A temperature: a finite number > 0 and >= :data:`TAU_MIN`."""
    return temperature(1.0).parse(tau, argument)
