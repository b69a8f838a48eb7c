"""What a solve returns: the optimum, its geometry, how it was found and its certificate."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from solvers.certificate import Certificate
from ufm.problem import Problem


class SolveStatus(enum.Enum):
    """Why the solver stopped."""

    CONVERGED = "converged"  # stopping tolerance met
    DEGENERATE = "degenerate"  # nothing to optimise: the value is the floor
    STALLED = "stalled"  # no further progress at float64 precision (line search failed)
    ITERATION_LIMIT = "iteration_limit"
    INACCURATE = "inaccurate"  # the conic solver reported an inaccurate solution
    FAILED = "failed"


@dataclass
class SolveResult:
    """Global optimum of a problem's convex relaxation.

    ``geometry`` holds the optimal Gram in symmetric form (exact for any n; ``ufm.geometry``) or
    as explicit embeddings (problems without a symmetry); class-level arrays and embeddings are
    derived from it on demand.
    """

    problem: Problem
    method: str  # "full" | "reduced" | "orbit" | "none" (degenerate)
    solver: str  # "factored" | "clarabel" | "scs" | "clarabel+factored" | "dynamics" | "none"
    status: SolveStatus
    value: float  # f at the returned geometry, float64
    geometry: object | None  # a ufm.geometry.Geometry; None for a degenerate problem
    certificate: Certificate
    iterations: int
    timings: dict = field(default_factory=dict)
    solver_value: float | None = None  # value reported by a conic solver, before polishing
    notes: list = field(default_factory=list)
    degenerate: str | None = None  # why there is no geometry to optimise (value = floor)
    symmetry: str | None = None  # the symmetry the program was reduced by, in words
    minibatch: dict | None = None  # mini-batch losses: the comparison with the full-batch optimum
    dim: int | None = None  # the dimension asked (relaxation_tight says whether rank <= dim)
    face: dict | None = None  # mini-batch losses: the optimal set (solvers.face.OptimalFace.to_dict)

    # geometry shortcuts --------------------------------------------------------------
    @property
    def rank(self) -> int:
        return self.geometry.rank

    @property
    def collapsed(self) -> bool:
        return self.geometry.collapsed

    def class_gram(self) -> np.ndarray:
        return self.geometry.class_cosines()

    def class_mean_norms(self) -> np.ndarray:
        return self.geometry.class_mean_norms()

    def embeddings(self, lift: bool = False) -> np.ndarray:
        """Unit embeddings realising the optimum: one row per class (collapsed classes only)
        or, with ``lift=True``, one row per sample, of dimension ``rank``."""
        return self.geometry.embeddings(lift=lift)

    @property
    def relaxation_tight(self) -> bool | None:
        """Whether the relaxation's optimum is realised in the dimension asked (rank <= dim): where
        the optimum is not unique, whether *some* optimum is (the geometry is then the face's
        lowest-rank representative; None where a lower rank than it cannot be ruled out)."""
        if self.dim is None or self.geometry is None:
            return None
        if self.rank <= self.dim:
            return True
        face = self.face
        if face is not None and face["optimum_unique"] is not True and not face["lowest_rank_exact"]:
            return None
        return False

    def to_dict(self, max_classes: int = 500) -> dict:
        p = self.problem
        k = p.k
        cert = self.certificate
        common = {**p.describe(), "method": self.method, "solver": self.solver, "status": self.status.value,
                  "symmetry": self.symmetry, "convex_in_gram": p.loss.convex_in_gram,
                  "relaxation": _relaxation_words(p.loss), "dim": self.dim,
                  "relaxation_tight": self.relaxation_tight, "optimal_value": self.value,
                  "floor": cert.floor, "excess": cert.excess}
        if self.geometry is None:
            return {**common, "degenerate": self.degenerate, "class_gram": None, "class_mean_norms": None,
                    "rank": None, "collapsed": None, "certificate": cert.to_dict(), "iterations": 0,
                    "solver_value": None, "time_s": self.timings.get("total", float("nan")),
                    "timings": self.timings, "notes": list(self.notes), "minibatch": self.minibatch}
        face = {} if self.face is None else dict(self.face)
        return {
            **common,
            "log_excess": cert.log_excess,
            "degenerate": None,
            "class_gram": self.class_gram().tolist() if k <= max_classes else None,
            "class_mean_norms": self.class_mean_norms().tolist(),
            "rank": self.rank,
            "collapsed": self.collapsed,
            "thresholds": {"rank_rel_eig": self.geometry.rank_tol,
                           "collapse_within_cosine": self.geometry.collapse_tol},
            "geometry": self.geometry.summary(),
            "certificate": self.certificate.to_dict(),
            "iterations": self.iterations,
            "solver_value": self.solver_value,
            "minibatch": self.minibatch,
            **face,
            "time_s": self.timings.get("total", float("nan")),
            "timings": self.timings,
            "notes": list(self.notes),
        }


def _relaxation_words(loss) -> str:
    """What certifies the loss, in the loss's own words (``relaxation_text``, ``minorant_text``)."""
    relax = loss.relaxation()
    if relax is None:
        return "none: not convex in G, no global certificate"
    return loss.relaxation_text if relax is loss else loss.minorant_text
