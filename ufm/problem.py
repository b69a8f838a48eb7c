"""The UFM problem: class counts, temperature and loss, validated once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ufm.errors import UFMInputError
from ufm.losses import get_loss

#: STEP-imbalanced default of ``ufm solve``: 4 majority classes of 20 samples, 4 minority
#: classes of 2 (imbalance ratio R = 10), tau = 0.1.
DEFAULT_COUNTS: tuple[int, ...] = (20, 20, 20, 20, 2, 2, 2, 2)
DEFAULT_TAU: float = 0.1


def parse_counts(counts: str | Sequence[int] | np.ndarray, argument: str = "--counts"):
    """Class sizes from a comma-separated string or a sequence; each must be an integer >= 1."""
    if isinstance(counts, str):
        parts = [p.strip() for p in counts.split(",") if p.strip()]
        if not parts:
            raise UFMInputError(argument, "no class counts given")
        values = []
        for p in parts:
            try:
                v = float(p)
            except ValueError:
                raise UFMInputError(argument, f"not a number: {p!r}") from None
            values.append(v)
    else:
        values = list(np.asarray(counts).ravel())
        if not values:
            raise UFMInputError(argument, "no class counts given")
    out = []
    for v in values:
        if not np.isfinite(v) or float(v) != int(v):
            raise UFMInputError(argument, f"class counts must be integers, got {v}")
        if int(v) < 1:
            raise UFMInputError(argument, f"every class count must be >= 1, got {int(v)}")
        out.append(int(v))
    return tuple(out)


def check_tau(tau: float, argument: str = "--tau") -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise UFMInputError(argument, f"not a number: {tau!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise UFMInputError(argument, f"must be a finite number > 0, got {tau}")
    return t


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
        get_loss(self.loss)  # raises UFMInputError("--loss", ...) if unknown
        if not self.class_labels:
            object.__setattr__(self, "class_labels", tuple(range(len(self.counts))))

    @classmethod
    def from_labels(cls, labels, tau: float, loss: str = "supcon") -> Problem:
        """Problem for a label vector; classes are the sorted distinct labels."""
        y = np.asarray(labels).ravel()
        if y.size == 0:
            raise UFMInputError("--labels", "no labels given")
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
