"""``solve``: the global optimum of a problem's convex relaxation, certified.

Methods (which program): ``full`` (n x n, CVXPY only), ``reduced`` (one group per class),
``orbit`` (one group per distinct class count), ``auto`` (orbit when counts repeat, else
reduced). Solvers (how): ``factored`` (float64 L-BFGS on the factored reduced program, fast),
``clarabel`` / ``scs`` (interior-point / first-order conic solvers through CVXPY), ``auto``
(factored for reduced programs, clarabel for the full one). Every conic solution is polished
by the factored solver from that point; every answer carries the exact certificate of the
full n x n problem.
"""

from __future__ import annotations

import time

import numpy as np

from solvers.certificate import (
    CERTIFY_TOL,
    Certificate,
    certify_groups,
    decide,
    group_certificate_matrix,
)
from solvers.convex import CONIC_SOLVERS, class_average, solve_full, solve_groups
from solvers.factored import (
    distances_from_factors,
    factors_from_gram,
    gram_from_factors,
    initial_factors,
    minimize_factored,
)
from solvers.lbfgs import StopReason
from solvers.result import SolveResult, SolveStatus
from ufm.errors import UFMInputError, check_choice
from ufm.geometry import GroupGeometry
from ufm.problem import Problem
from ufm.structure import Groups

METHODS = ("auto", "full", "reduced", "orbit")
SOLVERS = ("auto", "factored", *CONIC_SOLVERS)
#: largest n for the full program per conic solver: CLARABEL factors a dense system of size
#: about n^2/2 (21 GB and out of memory at n = 200 on a 24 GB machine); SCS is lighter
FULL_MAX_N = {"clarabel": 160, "scs": 400}
#: fresh L-BFGS runs from the end point while each halves the certificate's gap
REFINE_RESTARTS = 6
#: a conic fallback for the class-level program is tried only up to this many groups
CONIC_FALLBACK_MAX_Q = 200


def resolve_method(problem: Problem, method: str) -> str:
    check_choice(method, METHODS, "--method", "method")
    if method == "auto":
        return "orbit" if len(set(problem.counts)) < problem.k else "reduced"
    return method


def _polish(loss, groups: Groups, tau: float, Z0, tol: float, max_iter: int):
    """Factored solve from Z0 with collapse tested, not assumed (see solvers.factored).
    Returns the Gram and distances of the end point, its certificate (with the seconds that
    took), the status, iterations and seconds of the solve."""
    release = np.zeros(groups.q, dtype=bool)
    iterations, seconds = 0, 0.0

    def certify(Z):
        gram, dist = gram_from_factors(groups, Z), distances_from_factors(groups, Z)
        return gram, dist, certify_groups(loss, groups, gram, tau, tol, dist)

    def certified_with_margin(Z):
        """Stop early once the exact certificate holds with a 2x margin (O(q^3) per check)."""
        c = certify(Z)[2]
        return c.certified and c.gap_relative_to_excess <= 0.5 * tol

    for _ in range(4):
        run = minimize_factored(loss, groups, tau, Z0, release, max_iter=max_iter,
                                done=certified_with_margin)
        iterations += run.iterations
        seconds += run.seconds
        gram = gram_from_factors(groups, run.Z)
        dist = distances_from_factors(groups, run.Z)
        _, S = group_certificate_matrix(loss, groups, gram, tau, dist)
        within_eig = S.diag - S.within  # of the scaled S (gradient of log(f - floor))
        slack = 1e-2 * tol / groups.n
        newly = (groups.count >= 2) & ~release & (within_eig < -slack)
        if not newly.any():
            break
        release |= newly
        Z0 = run.Z.copy()
        Z0[newly, -1] = 0.3  # leave the collapsed point along the descent direction
        Z0 /= np.linalg.norm(Z0, axis=1, keepdims=True)
    # L-BFGS stops when log(f - floor) no longer moves in float64; its curvature pairs may be
    # stale by then. Restarting it afresh from its end point tightens the certificate on large
    # imbalanced problems (ImageNet-LT: gap 3e-6 -> below 1e-6 of the excess).
    t0 = time.perf_counter()
    cert = certify_groups(loss, groups, gram, tau, tol, dist)
    cert_seconds = time.perf_counter() - t0
    for _ in range(REFINE_RESTARTS):
        if cert.gap_relative_to_excess <= 0.1 * tol:
            break
        again = minimize_factored(loss, groups, tau, run.Z, release, max_iter=max_iter)
        iterations += again.iterations
        seconds += again.seconds
        t0 = time.perf_counter()
        g2, d2, c2 = certify(again.Z)
        cert_seconds += time.perf_counter() - t0
        halved = c2.gap_relative_to_excess < 0.5 * cert.gap_relative_to_excess
        if halved or c2.gap_relative_to_excess < cert.gap_relative_to_excess:
            run, gram, dist, cert = again, g2, d2, c2
        if not halved:
            break
    status = {
        StopReason.GRADIENT: SolveStatus.CONVERGED,
        StopReason.NO_PROGRESS: SolveStatus.CONVERGED,
        StopReason.TARGET: SolveStatus.CONVERGED,
        StopReason.LINE_SEARCH: SolveStatus.STALLED,
        StopReason.ITERATION_LIMIT: SolveStatus.ITERATION_LIMIT,
    }[run.reason]
    return gram, dist, cert, cert_seconds, status, iterations, seconds


def solve(
    problem: Problem,
    method: str = "auto",
    solver: str = "auto",
    tol: float = CERTIFY_TOL,
    seed: int = 0,
    max_iter: int = 20000,
) -> SolveResult:
    """Solve the convex relaxation of ``problem`` and certify the answer."""
    t_start = time.perf_counter()
    method = resolve_method(problem, method)
    check_choice(solver, SOLVERS, "--solver", "solver")
    if not (np.isfinite(tol) and tol > 0):
        raise UFMInputError("--tol", f"must be a finite number > 0, got {tol}")
    loss = problem.loss_fn
    if not loss.convex_in_gram:
        raise UFMInputError("--loss", f"{loss.name} is not convex in the Gram matrix: no relaxation")
    if solver == "auto":
        solver = "clarabel" if method == "full" else "factored"
    if method == "full" and solver == "factored":
        raise UFMInputError("--solver", "the full program is solved by a conic solver (clarabel or scs)")
    if method == "full" and problem.n > FULL_MAX_N[solver]:
        raise UFMInputError("--method", f"full program with {solver} refused for n = {problem.n} > "
                            f"{FULL_MAX_N[solver]} (memory): use reduced or orbit, which are exact")
    reason = loss.degenerate(problem.counts)
    if reason is not None:
        return _degenerate(problem, loss, reason, tol, t_start)
    groups = Groups.orbits(problem.counts) if method == "orbit" else Groups.per_class(problem.counts)
    tau = problem.tau
    timings: dict[str, float] = {}
    notes: list[str] = []
    solver_value = None
    iterations = 0

    # starting point: a conic solution (then polished) or the default initialisation
    t0 = time.perf_counter()
    if method == "full":
        G, sol = solve_full(problem, solver)
        if G is None:
            raise RuntimeError(f"{solver} failed on the full program: {sol.status}")
        gram0 = class_average(G, problem.counts)
        Z0 = factors_from_gram(groups, gram0)
    elif solver in CONIC_SOLVERS:
        gram0, sol = solve_groups(problem, groups, solver)
        if gram0 is None:
            raise RuntimeError(f"{solver} failed on the {method} program: {sol.status}")
        Z0 = factors_from_gram(groups, gram0)
    else:
        sol = None
        Z0 = initial_factors(groups, seed)
    if sol is not None:
        solver_value = sol.value
        iterations += sol.iterations or 0
        timings["conic"] = sol.seconds
        notes.append(f"{solver} status: {sol.status}; value {sol.value:.12g} before polishing")
    timings["setup"] = time.perf_counter() - t0 - timings.get("conic", 0.0)

    gram, dist, cert, cert_secs, status, its, secs = _polish(loss, groups, tau, Z0, tol, max_iter)
    iterations += its
    timings["factored"] = secs
    timings["certify"] = cert_secs

    if not cert.certified and solver == "factored" and groups.q <= CONIC_FALLBACK_MAX_Q:
        notes.append(f"factored solve not certified (gap bound {cert.gap_bound:.3g}); "
                     "retried from a clarabel solution")
        fallback = solve(problem, method, "clarabel", tol, seed, max_iter)
        fallback.notes[:0] = notes
        return fallback

    geometry = GroupGeometry(groups, gram)
    timings["total"] = time.perf_counter() - t_start
    return SolveResult(problem, method, solver, status, cert.value, geometry, cert, iterations,
                       timings, solver_value, notes)


def _degenerate(problem: Problem, loss, reason: str, tol: float, t_start: float) -> SolveResult:
    """A problem with no geometry to optimise: its optimal value is the floor, reached (k = 1)
    by collapse or (no positives) by every geometry; reported, not solved."""
    floor = loss.floor(problem.counts)
    cert = decide(floor, -np.inf, 0.0, problem.n, tol, "no program solved: " + reason, 0.0, problem.tau)
    timings = {"total": time.perf_counter() - t_start}
    return SolveResult(problem, "none", "none", SolveStatus.DEGENERATE, floor, None, cert, 0, timings,
                       None, [reason], degenerate=reason)


__all__ = ["solve", "METHODS", "SOLVERS", "Certificate"]
