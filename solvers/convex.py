"""Convex relaxations in CVXPY: the n x n program and the symmetry-reduced program.

Both are vectorised (one ``log_sum_exp`` along an axis, selection matrices instead of loops
over entries). The n x n program is the slow, independent cross-check: a dense interior-point
system of size about n^2/2 (DESIGN section 7); keep it to small n.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

CONIC_SOLVERS = ("clarabel", "scs")


def _solver_kwargs(name: str) -> dict:
    import cvxpy as cp

    if name == "clarabel":
        return {"solver": cp.CLARABEL, "tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10,
                "tol_feas": 1e-10, "max_iter": 500}
    if name == "scs":
        return {"solver": cp.SCS, "eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}
    raise ValueError(f"unknown conic solver {name!r}")


@dataclass
class ConicSolution:
    value: float  # objective value reported by the solver
    status: str  # cvxpy status string
    iterations: int | None
    seconds: float
    warnings: tuple[str, ...] = ()  # what the solver warned of, in the project's words

    def describe(self, solver: str) -> str:
        """One note: status, the solver's warnings, and the value before polishing."""
        said = "".join(f"; {w}" for w in self.warnings)
        return f"{solver} status: {self.status}{said}; value {self.value:.12g} before polishing"


def _in_our_words(message: str, solver: str) -> str:
    """A CVXPY or solver warning as a note: what it means here (every conic answer is polished by
    the factored solver and certified on its own, so an inaccurate conic solution is only a start)."""
    if "may be inaccurate" in message:
        return (f"{solver} stopped short of its tolerances (its solution may be inaccurate); the answer "
                "below is polished and certified independently of it")
    return f"{solver} warned: {message.splitlines()[0].strip()}"


def _run(prob, solver: str) -> ConicSolution:
    import cvxpy as cp

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            prob.solve(**_solver_kwargs(solver))
        except cp.error.SolverError as err:
            return ConicSolution(float("nan"), f"solver_error: {err}", None, time.perf_counter() - t0)
    said = tuple(dict.fromkeys(_in_our_words(str(w.message), solver) for w in caught))
    stats = prob.solver_stats
    iters = getattr(stats, "num_iters", None) if stats is not None else None
    value = float(prob.value) if prob.value is not None else float("nan")
    return ConicSolution(value, str(prob.status), iters, time.perf_counter() - t0, said)


def solve_full(problem, solver: str = "clarabel"):
    """n x n relaxation: min h(G) s.t. G PSD, diag(G) = 1 (h the loss's convex relaxation).
    Returns (G, ConicSolution)."""
    import cvxpy as cp

    relax = problem.loss.relaxation()
    G = cp.Variable((problem.n, problem.n), PSD=True)
    prob = cp.Problem(cp.Minimize(relax.cvxpy_gram(G, problem.samples)), [cp.diag(G) == 1])
    sol = _run(prob, solver)
    return (None if G.value is None else np.asarray(G.value)), sol


def solve_reduced(problem, symmetry, solver: str = "clarabel"):
    """The symmetry-reduced program: the relaxation over an invariant G, with the symmetry's
    PSD conditions (``ufm.symmetry``: for classes, over the q x q matrix of scaled group means;
    for instances x views, over the four eigenvalues). Returns (x or None, ConicSolution)."""
    import cvxpy as cp

    x, cons, recover = symmetry.cvxpy_parametrisation()
    objective = problem.loss.relaxation().cvxpy_table(x, symmetry.table, problem.samples)
    prob = cp.Problem(cp.Minimize(objective), cons)
    sol = _run(prob, solver)
    return recover(), sol
