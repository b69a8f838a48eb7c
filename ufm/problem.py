"""The UFM problem: a loss (with its parameters) over samples, and optionally a dimension.

``Problem(SupCon(tau=0.1), Samples.from_counts((10, 10, 2, 2)))`` poses the problem; the
shorthand ``Problem((10, 10, 2, 2), 0.1)`` means the same (SupCon over class counts), and
``Problem(counts, tau, "infonce")`` picks another loss by name with its default parameters.
"""

from __future__ import annotations

import numpy as np

from ufm.errors import UFMInputError
from ufm.losses import Loss, get_loss
from ufm.params import TAU_MIN, check_tau
from ufm.samples import MAX_SAMPLES, Samples, parse_counts

#: STEP-imbalanced default of ``ufm solve``: 4 majority classes of 20 samples, 4 minority
#: classes of 2 (imbalance ratio R = 10), tau = 0.1.
DEFAULT_COUNTS: tuple[int, ...] = (20, 20, 20, 20, 2, 2, 2, 2)
DEFAULT_TAU: float = 0.1
#: default samples of a loss posed on instances x views when none are given: 8 pairs
DEFAULT_INSTANCES: tuple[int, int] = (8, 2)

__all__ = ["Problem", "DEFAULT_COUNTS", "DEFAULT_TAU", "DEFAULT_INSTANCES", "MAX_SAMPLES", "TAU_MIN",
           "parse_counts", "check_tau"]


class Problem:
    """A contrastive UFM over free unit embeddings (DESIGN section 6: loss + samples + dimension)."""

    def __init__(self, loss, samples=None, name=None, class_labels=(), *, dim: int | None = None,
                 tau: float | None = None):
        if isinstance(loss, Loss):
            if samples is None:
                raise TypeError("Problem(loss, samples): samples are missing")
            self.loss = loss
            self.samples = samples if isinstance(samples, Samples) else Samples.from_counts(samples)
        else:  # shorthand: Problem(counts, tau, loss name), tau also as a keyword
            counts = parse_counts(loss)
            tau = samples if tau is None else tau
            self.loss = get_loss(name or "supcon", **({} if tau is None else {"tau": tau}))
            self.samples = Samples(counts, None, tuple(class_labels))
        self.loss.check_samples(self.samples)
        self.dim = dim

    @classmethod
    def from_labels(cls, labels, tau: float | None = None, loss: str | Loss = "supcon") -> Problem:
        """Problem for a label vector; classes are the sorted distinct labels (numbers in
        numeric order, strings in lexical order)."""
        lossf = loss if isinstance(loss, Loss) else get_loss(loss, **({} if tau is None else {"tau": tau}))
        return cls(lossf, Samples.from_labels(labels))

    # ---- shortcuts ------------------------------------------------------------------------
    @property
    def counts(self) -> tuple[int, ...]:
        return self.samples.counts

    @property
    def tau(self) -> float | None:
        return self.loss.tau

    @property
    def n(self) -> int:
        return self.samples.n

    @property
    def k(self) -> int:
        return self.samples.k

    @property
    def labels(self) -> np.ndarray:
        """Positive group (class, or instance) of every sample: shape (n,)."""
        return self.samples.labels

    @property
    def class_labels(self) -> tuple:
        return self.samples.class_labels

    @property
    def loss_fn(self) -> Loss:
        return self.loss

    @property
    def loss_name(self) -> str:
        return self.loss.name

    def with_samples(self, samples: Samples) -> Problem:
        return Problem(self.loss, samples, dim=self.dim)

    def symmetry(self, method: str = "auto"):
        """The symmetry solvers may use (``ufm.symmetry.symmetry_of``), or None."""
        from ufm.symmetry import symmetry_of

        return symmetry_of(self.loss, self.samples, method)

    def degenerate(self) -> str | None:
        return self.loss.degenerate(self.samples)

    def floor(self) -> float:
        return self.loss.floor(self.samples)

    def describe(self) -> dict:
        """The JSON keys every command shares: loss, its parameters, counts, tau, samples."""
        return {"loss": self.loss.name, "loss_params": self.loss.values, "counts": list(self.counts),
                "tau": self.tau, "samples": self.samples.describe()}

    def __repr__(self) -> str:
        return f"Problem({self.loss!r}, n = {self.n}, {self.samples.kind}: {self.k} groups)"


def require_relaxation(problem: Problem, command: str) -> None:
    """A one-line error for a loss without a convex relaxation (no global certificate exists)."""
    if not problem.loss.has_relaxation:
        raise UFMInputError("loss", f"{problem.loss.name} is not convex in the Gram matrix and has no "
                            "convex relaxation: no global optimum or certificate exists for "
                            f"`ufm {command}`; use `ufm verify` (restarts and their census)")
