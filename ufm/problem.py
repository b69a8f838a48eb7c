"""The UFM problem: class counts, temperature and loss, validated once."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ufm.errors import UFMInputError
from ufm.losses import get_loss

#: STEP-imbalanced default of ``ufm solve``: 4 majority classes of 20 samples, 4 minority
#: classes of 2 (imbalance ratio R = 10), tau = 0.1.
DEFAULT_COUNTS: tuple[int, ...] = (20, 20, 20, 20, 2, 2, 2, 2)
DEFAULT_TAU: float = 0.1


#: Most samples a problem may have in total (and so the largest class count): the solvers work
#: at the class level, but n must fit in int64 everywhere and embeddings are lifted to n rows.
MAX_SAMPLES: int = 10**9


def parse_counts(counts: str | Sequence[int] | np.ndarray, argument: str = "--counts"):
    """Class sizes from a string (separated by commas or whitespace) or a sequence; each an
    integer >= 1, and n = sum(counts) <= MAX_SAMPLES."""

    too_large = f"every class count must be <= {MAX_SAMPLES} (ufm's limit on samples), got "

    def count(value) -> int:
        if isinstance(value, str):
            text = value.strip()
            digits = text.lstrip("+-")
            if re.fullmatch(r"[+-]?\d+", text):
                if len(digits) > 20:  # keeps int() clear of its digit limit too
                    raise UFMInputError(argument, too_large + f"a {len(digits)}-digit number")
                value = int(text)
            else:
                try:
                    value = float(text)
                except ValueError:
                    raise UFMInputError(argument, f"not a number: {text!r}") from None
        elif isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
            raise UFMInputError(argument, f"class counts must be integers, got {value!r}")
        if isinstance(value, float | np.floating):
            if not math.isfinite(value) or float(value) != math.floor(value):
                raise UFMInputError(argument, f"class counts must be integers, got {value}")
            if value > MAX_SAMPLES:
                raise UFMInputError(argument, too_large + f"{value:g}")
        elif isinstance(value, np.complexfloating):
            raise UFMInputError(argument, f"class counts must be integers, got {value}")
        v = int(value)
        if v < 1:
            raise UFMInputError(argument, f"every class count must be >= 1, got {v}")
        if v > MAX_SAMPLES:
            raise UFMInputError(argument, too_large + str(v))
        return v

    if isinstance(counts, str):
        values = [p for p in re.split(r"[,\s]+", counts.strip()) if p]
    elif isinstance(counts, np.ndarray):
        values = counts.ravel().tolist()
    else:
        try:
            values = list(counts)
        except TypeError:
            raise UFMInputError(argument, f"expected a list of class counts, got {counts!r}") from None
    if not values:
        raise UFMInputError(argument, "no class counts given")
    out = tuple(count(v) for v in values)
    n = sum(out)
    if n > MAX_SAMPLES:
        raise UFMInputError(argument, f"{n} samples in total; ufm handles at most {MAX_SAMPLES}")
    return out


def check_tau(tau: float, argument: str = "--tau") -> float:
    if isinstance(tau, bool):
        raise UFMInputError(argument, f"not a number: {tau!r}")
    try:
        t = float(tau)
    except (TypeError, ValueError, OverflowError):
        raise UFMInputError(argument, f"not a number: {tau!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise UFMInputError(argument, f"must be a finite number > 0, got {tau}")
    return t


#: smallest temperature accepted. Solvers work with log(f - floor), which float64 holds at any
#: tau, but the certificate's round-off relative to the excess grows as about 100 eps / tau^2
#: (measured: 5e-8 at tau = 5e-4, 1e-6 at 2e-4 to 3e-4, where answers stop being certified
#: and a conic fallback can return a wrong geometry): below this, float64 cannot tell.
TAU_MIN = 5e-4


@dataclass(frozen=True)
class Problem:
    """A full-batch contrastive UFM: ``counts[c]`` unit embeddings per class, temperature ``tau``.

    Samples are ordered class by class (class 0 first). ``labels`` keeps the user's label
    values, one per class, when the problem was built from a label vector.
    """

    counts: tuple[int, ...]
    tau: float
    loss: str = "supcon"
    class_labels: tuple = field(default=(), compare=False)

    def __post_init__(self):
        object.__setattr__(self, "counts", parse_counts(self.counts))
        object.__setattr__(self, "tau", check_tau(self.tau))
        if self.tau < TAU_MIN:
            raise UFMInputError("--tau", f"{self.tau:g} is below {TAU_MIN:g}, where float64 can no longer "
                                "resolve a certificate (its round-off grows as 1/tau^2); use tau >= "
                                f"{TAU_MIN:g}")
        get_loss(self.loss)  # raises UFMInputError("--loss", ...) if unknown
        if not self.class_labels:
            object.__setattr__(self, "class_labels", tuple(range(len(self.counts))))

    @classmethod
    def from_labels(cls, labels, tau: float, loss: str = "supcon") -> Problem:
        """Problem for a label vector; classes are the sorted distinct labels (numbers in
        numeric order, strings in lexical order)."""
        y = np.asarray(labels).ravel()
        if y.size == 0:
            raise UFMInputError("--labels", "no labels given")
        if y.dtype.kind == "c":
            raise UFMInputError("--labels", "complex labels")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise UFMInputError("--labels", "NaN or infinite labels")
        if y.dtype.kind not in "biufUS":
            raise UFMInputError("--labels", f"labels must be numbers or strings, got dtype {y.dtype}")
        values, counts = np.unique(y, return_counts=True)
        return cls(tuple(int(c) for c in counts), tau, loss, tuple(values.tolist()))

    @property
    def n(self) -> int:
        return int(sum(self.counts))

    @property
    def k(self) -> int:
        return len(self.counts)

    @property
    def labels(self) -> np.ndarray:
        """Class index of every sample, classes in order: shape (n,)."""
        return np.repeat(np.arange(self.k), self.counts)

    @property
    def loss_fn(self):
        return get_loss(self.loss)
