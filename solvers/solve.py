"""``solve``: the global optimum of a problem's convex relaxation, certified.

Methods (which program): ``full`` (n x n), ``reduced`` and ``orbit`` (the symmetry-reduced
program: for classes, one group per class or per distinct count; for instances x views, the
three-value program either way), ``auto`` (the loss's symmetry when it has one, orbit where class
counts repeat; the n x n program otherwise, e.g. for mini-batch losses).

Solvers (how): ``factored`` (float64 L-BFGS on unit-vector factors: of the reduced program, or of
H itself (Burer-Monteiro restarts in torch) for the n x n program), ``clarabel`` / ``scs``
(conic solvers through CVXPY), ``auto`` (factored for reduced programs; for the n x n program
clarabel up to :data:`AUTO_CONIC_MAX_N` samples, Burer-Monteiro beyond). Every conic solution is
polished by the factored solver from that point; every answer carries the exact certificate of the
full n x n problem. A loss without a scalar objective (alpha-CL) is solved by its coordinate-wise
dynamics (``solvers.dynamics``) and certified as a fixed point.
"""

from __future__ import annotations

import time

import numpy as np

from solvers.certificate import Certificate, certify_reduced, decide, reduced_certificate_matrix
from solvers.convex import CONIC_SOLVERS, solve_full, solve_reduced
from solvers.factored import minimize_factored, newton_polish
from solvers.options import METHODS, SOLVE_OPTIONS, SOLVERS
from solvers.result import SolveResult, SolveStatus
from solvers.stop import StopReason
from ufm import progress
from ufm.errors import UFMInputError
from ufm.geometry import EmbeddingGeometry
from ufm.options import defaults
from ufm.problem import Problem, require_relaxation

#: the declared defaults of solve's options (``solvers.options.SOLVE_OPTIONS``)
DEFAULTS = defaults(SOLVE_OPTIONS)
#: largest n for the full program per conic solver: CLARABEL factors a dense system of size
#: about n^2/2 (21 GB and out of memory at n = 200 on a 24 GB machine); SCS is lighter
FULL_MAX_N = {"clarabel": 160, "scs": 400}
#: the n x n program (no symmetry) goes to clarabel up to this many samples under ``auto``
AUTO_CONIC_MAX_N = 40
#: fresh L-BFGS runs from the end point until the certificate holds with a 2x margin, at most
#: this many, and stopping after REFINE_PATIENCE runs in a row that cut the gap by less than 10%
REFINE_RESTARTS = 10
REFINE_PATIENCE = 2
#: the n x n coordinate-wise dynamics below this temperature starts from its end points at this one
CONTINUATION_TAU = 0.5
#: a conic fallback for the reduced program is tried only up to this many factor rows
CONIC_FALLBACK_MAX_Q = 200


def resolve_method(problem: Problem, method: str) -> str:
    """The program ``method`` asks for, checked against the problem's symmetry."""
    SOLVE_OPTIONS["method"].parse(method, "method")
    sym = problem.symmetry("auto")
    if method in ("reduced", "orbit") and sym is None:
        why = ("mini-batch losses have no symmetry" if problem.samples.batches is not None
               else f"{problem.loss.name} distinguishes views and needs a full grid of instances x views")
        raise UFMInputError("method", f"{method}: no reduced program ({why}); use auto or full")
    if method == "auto":
        if sym is None:
            return "full"
        return sym.name if sym.name in ("reduced", "orbit") else "orbit"
    return method


# ---- the reduced route ----------------------------------------------------------------------------


def _rank(cert: Certificate, by_value: bool = True) -> tuple:
    """Sort key of a candidate answer, best first: certified before not, then the smaller value
    (its log excess breaking ties that float64 rounds away), or with ``by_value`` False (no scalar
    objective) the smaller gap bound over the scale. NaN sorts last."""

    def num(x) -> float:
        return float(x) if np.isfinite(x) or x == -np.inf else np.inf

    if by_value:
        return (not cert.certified, num(cert.value), num(cert.log_excess), num(cert.gap_relative_to_scale))
    return (not cert.certified, num(cert.gap_relative_to_scale), num(cert.value))


def _at_floor(loss, samples, cert: Certificate) -> bool:
    """The excess is 0 within round-off of a floor the loss attains: nothing is left to minimise."""
    return bool(loss.floor_attainable and cert.excess <= loss.floor_tolerance(samples))


def _polish(loss, sym, samples, Z0, tol: float, max_iter: int):
    """Factored solve from Z0 with collapse tested, not assumed. Returns the best end point's
    factors, distances, certificate (with the seconds that took), status, iterations and seconds:
    the best over every phase (collapse released, Newton), certified first (:func:`_rank`), never
    simply the last run. At an attained floor (excess 0 within round-off) it stops there."""
    release = np.zeros(sym.collapse_units, dtype=bool)
    iterations, seconds, cert_seconds = 0, 0.0, 0.0

    def certify(Z):
        dist = sym.distances_from_factors(Z)
        return dist, certify_reduced(loss, sym, dist, tol, samples)

    def certified_with_margin(Z):
        """Stop early once the exact certificate holds with a 2x margin (O(q^3) per check)."""
        c = certify(Z)[1]
        return c.certified and c.gap_relative_to_scale <= 0.5 * tol

    best = None  # (Z, dist, cert, stop reason)

    def consider(Z, reason):
        nonlocal best, cert_seconds
        t0 = time.perf_counter()
        dist, cert = certify(Z)
        cert_seconds += time.perf_counter() - t0
        if best is None or _rank(cert) < _rank(best[2]):
            best = (Z, dist, cert, reason)
        return cert

    shown = progress.bar("solve: factored L-BFGS", unit="it")

    def report(it, log_excess):
        shown.update()
        shown.set_postfix_str(f"log excess {log_excess:.13g}", refresh=False)

    with shown:
        for _ in range(4):
            run = minimize_factored(loss, sym, samples, Z0, release, max_iter=max_iter,
                                    done=certified_with_margin, callback=report)
            iterations += run.iterations
            seconds += run.seconds
            cert = consider(run.Z, run.reason)
            if run.reason == StopReason.FLOOR or _at_floor(loss, samples, cert):
                break  # the value equals a lower bound: no release can improve on it
            dist = sym.distances_from_factors(run.Z)
            _, g, diag = reduced_certificate_matrix(loss, sym, dist, samples)
            unit_eig = sym.unit_eigenvalues(g, diag)  # of the scaled S (gradient of log(f - floor))
            newly = sym.release_test(unit_eig + 1e-2 * tol / sym.n) & ~release
            if not newly.any():
                break
            release |= newly
            Z0 = sym.perturb_released(run.Z, newly)
        # L-BFGS stops when log(f - floor) no longer moves in float64, often before the
        # first-order condition holds to the certificate's accuracy (k = 1000 distinct counts:
        # gap 1e-5 of the excess). Newton-CG steps (solvers.factored.newton_polish) finish from
        # there, from the best point so far and with its release mask.
        Z, _, cert, reason = best
        if cert.gap_relative_to_scale > 0.5 * tol and not _at_floor(loss, samples, cert):
            shown.set_description_str("solve: Newton-CG polish")
            newton = newton_polish(loss, sym, samples, Z, release,
                                   lambda Z: certify(Z)[1].gap_relative_to_scale, 0.5 * tol)
            seconds += newton.seconds
            iterations += newton.steps
            if newton.steps:
                consider(newton.Z, reason)
    Z, dist, cert, reason = best
    status = {
        StopReason.GRADIENT_TOL: SolveStatus.CONVERGED,
        StopReason.NO_PROGRESS: SolveStatus.CONVERGED,
        StopReason.TARGET: SolveStatus.CONVERGED,
        StopReason.FLOOR: SolveStatus.CONVERGED,
        StopReason.STALLED: SolveStatus.STALLED,
        StopReason.ITERATION_LIMIT: SolveStatus.ITERATION_LIMIT,
    }[reason]
    if cert.certified and status is not SolveStatus.CONVERGED and _at_floor(loss, samples, cert):
        status = SolveStatus.CONVERGED  # at the floor: nothing below it (the line search stalled there)
    return Z, dist, cert, cert_seconds, status, iterations, seconds, reason


def _solve_reduced(problem, sym, method, solver, tol, seed, max_iter, t_start, full_G=None):
    """The reduced route; ``full_G``: a solution of the n x n program (method full), averaged over
    the symmetry (exact for convex f: no worse) and polished in reduced form."""
    loss, samples = problem.loss, problem.samples
    timings: dict[str, float] = {}
    notes: list[str] = []
    solver_value = None
    iterations = 0
    t0 = time.perf_counter()
    if solver in CONIC_SOLVERS:
        if full_G is not None:
            G, sol = full_G
            x0 = sym.average(G)
        else:
            x0, sol = solve_reduced(problem, sym, solver)
        if x0 is None:
            raise RuntimeError(f"{solver} failed on the {method} program: {sol.status}")
        Z0 = sym.factors_from_gram(x0)
        solver_value = sol.value
        iterations += sol.iterations or 0
        timings["conic"] = sol.seconds
        notes.append(sol.describe(solver))
    else:
        Z0 = sym.initial_factors(seed)
    timings["setup"] = time.perf_counter() - t0 - timings.get("conic", 0.0)
    if not loss.scalar_objective:
        from solvers.dynamics import coordinate_factored

        run = coordinate_factored(loss, sym, samples, Z0, max_iter=max_iter)
        t1 = time.perf_counter()
        dist = sym.distances_from_factors(run.Z)
        cert = certify_reduced(loss, sym, dist, tol, samples)
        timings.update(dynamics=run.seconds, certify=time.perf_counter() - t1)
        status = SolveStatus.CONVERGED if run.converged else SolveStatus.ITERATION_LIMIT
        notes.append(f"coordinate-wise dynamics ({loss.dynamics_text}): {run.iterations} steps, "
                     f"stopped on {run.reason.value}; certified means a global optimum of its own "
                     f"{loss.fixed_point_program}")
        Z, its = run.Z, run.iterations
    else:
        Z, dist, cert, cert_secs, status, its, secs, stop = _polish(loss, sym, samples, Z0, tol, max_iter)
        timings["factored"] = secs
        timings["certify"] = cert_secs
        if stop == StopReason.FLOOR or _at_floor(loss, samples, cert):
            notes.append(f"stopped at the floor: the excess {cert.excess:.3g} is 0 within round-off "
                         f"({loss.floor_tolerance(samples):.1e}); the certificate is decided on an "
                         "absolute gap")
    iterations += its
    small = Z.shape[0] <= CONIC_FALLBACK_MAX_Q
    if not cert.certified and solver == "factored" and loss.scalar_objective and small and _cvxpy_available():
        notes.append(f"factored solve not certified (gap bound {cert.gap_bound:.3g}); retried from a "
                     "clarabel solution")
        fallback = solve(problem, method, "clarabel", tol, seed, max_iter)
        if _rank(fallback.certificate) < _rank(cert):
            fallback.notes[:0] = notes
            return fallback
        notes.append(f"the clarabel route was no better (value {fallback.value:.12g}, certified "
                     f"{fallback.certificate.certified}): the factored answer is kept")
    geometry = sym.geometry(sym.gram_from_factors(Z))
    timings["total"] = time.perf_counter() - t_start
    return SolveResult(problem, method, solver, status, cert.value, geometry, cert, iterations, timings,
                       solver_value, notes, symmetry=sym.describe())


def _cvxpy_available() -> bool:
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        return False
    return True


# ---- the full route (no symmetry) -------------------------------------------------------------------


def _embedding_start(G: np.ndarray) -> np.ndarray:
    """Unit rows factoring a PSD G (conic solution), of dimension rank + 1."""
    w, U = np.linalg.eigh(0.5 * (G + G.T))
    keep = w > 1e-9 * max(w[-1], 1e-300)
    H = U[:, keep] * np.sqrt(w[keep])
    H = np.hstack([H, 1e-6 * np.ones((H.shape[0], 1))])
    return H / np.linalg.norm(H, axis=1, keepdims=True)


def _padded_start(H: np.ndarray, d: int, seed: int) -> np.ndarray:
    """Unit rows of H (n, d0) padded to dimension d >= d0 with 1e-6 random entries (Journee et
    al. 2010: a rank-deficient point, lifted with a small perturbation, starts the next dimension)."""
    rng = np.random.default_rng(seed)
    extra = 1e-6 * rng.standard_normal((H.shape[0], d - H.shape[1]))
    P = np.hstack([H, extra])
    return P / np.linalg.norm(P, axis=1, keepdims=True)


def _solve_full(problem, solver, tol, seed, max_iter, t_start):
    """The n x n program: a conic solution polished by Burer-Monteiro (float64 L-BFGS over H in
    torch), or Burer-Monteiro restarts whose dimension doubles until the best end point is
    certified (Journee et al. 2010: a rank-deficient local minimiser is global). With mini-batches
    each larger dimension starts from the best point so far, padded (:func:`_padded_start`): random
    restarts there end far above the tied and type-invariant points (at tau 0.02, log excess -29
    after 20000 iterations against -69.8)."""
    from solvers.certificate import certify_embeddings
    from solvers.nonconvex import optimize

    n, k = problem.n, problem.k
    timings: dict[str, float] = {}
    notes: list[str] = []
    solver_value = None
    iterations = 0
    asked = solver
    if solver == "auto":
        solver = "clarabel" if n <= AUTO_CONIC_MAX_N and _cvxpy_available() else "factored"
    starts = []
    best = None  # (H, certificate, stop reason)
    if problem.samples.batches is not None:
        best = _tied_best(problem, tol, seed, timings, notes)
        iterations += best[3]
        source = best[4]  # "tied" or "types" (solvers.types)
        best = best[:3]
        if best[1].certified and asked not in CONIC_SOLVERS:
            return _full_result(problem, "types" if source == "types" else "factored", best, iterations,
                                timings, solver_value, notes, t_start)
        if asked not in CONIC_SOLVERS:
            starts.append(best[0])
            solver = "factored"  # the tied point starts Burer-Monteiro (no better from a conic start)
    if solver in CONIC_SOLVERS:
        if n > FULL_MAX_N[solver]:
            raise UFMInputError("method", f"full program with {solver} refused for n = {n} > "
                                f"{FULL_MAX_N[solver]} (memory): use solver factored (Burer-Monteiro)")
        G, sol = solve_full(problem, solver)
        if G is None:
            raise RuntimeError(f"{solver} failed on the full program: {sol.status}")
        solver_value = sol.value
        iterations += sol.iterations or 0
        timings["conic"] = sol.seconds
        notes.append(sol.describe(solver))
        if best is not None and best[1].certified:  # a certified tied point: the conic solve is a cross-check
            notes.append(f"the {'type-invariant' if source == 'types' else 'tied'} point is certified, "
                         f"value {best[1].value:.12g}: it is the answer")
            return _full_result(problem, f"{solver}+{source}", best, iterations, timings, solver_value, notes,
                                t_start)
        starts.append(_embedding_start(G))
    dims = []
    d = min(n, max(k + 1, 3)) if not starts else starts[0].shape[1]
    t0 = time.perf_counter()
    while True:
        dims.append(d)
        H0 = None if not starts else np.stack([starts[0]])
        run = optimize(problem, d, restarts=1 if H0 is not None else 4, seed=seed, H0=H0, max_iter=max_iter,
                       precision="float64", device="cpu")
        iterations += int(run.iterations.sum())
        order = np.argsort(run.log_excess)
        for r in order[:2]:
            cert = certify_embeddings(problem.loss, run.H[r], problem.samples, tol)
            if best is None or _rank(cert) < _rank(best[1]):
                best = (run.H[r], cert, run.reasons[r].value)
            if cert.certified:
                break
        if best[1].certified or d >= n:
            break
        d = min(n, 2 * d)
        starts = [_padded_start(best[0], d, seed)] if problem.samples.batches is not None else []
    timings["factored"] = time.perf_counter() - t0
    notes.append(f"Burer-Monteiro over H in dimension(s) {', '.join(map(str, dims))} (float64 L-BFGS), "
                 f"best end point stopped on {best[2]}")
    name = "factored" if solver == "factored" else f"{solver}+factored"
    return _full_result(problem, name, best, iterations, timings, solver_value, notes, t_start)


def _solve_by_components(problem, solver, tol, seed, max_iter, t_start):
    """A mini-batch program split along its batch graph (``solvers.face.component_problems``):
    each component solved as a problem of its own (a single batch by its symmetry-reduced program,
    one solve per distinct composition), the optima put in one subspace aligned on shared classes
    (``solvers.face.representative``) and certified once on the whole program. None where the
    graph has one component covering every sample, where a component has no geometry to optimise,
    or where the assembled point is not certified (the caller then solves the n x n program)."""
    from solvers.certificate import certify_embeddings
    from solvers.face import component_parts, component_problems, representative

    samples = problem.samples
    parts, comp, covered = component_problems(problem.loss, samples)
    free = np.flatnonzero(~covered)
    if not parts or (len(parts) == 1 and free.size == 0):
        return None
    t0 = time.perf_counter()
    solved: dict = {}  # composition -> SolveResult
    blocks, iterations, names = [], 0, set()
    for idx, sub in parts:
        sub_problem = problem.with_samples(sub)
        if sub_problem.degenerate() is not None:
            return None
        res = solved.get(sub.key)
        if res is None:
            res = solved[sub.key] = solve(sub_problem, "auto", solver, tol, seed, max_iter,
                                          compare_full_batch=False)
            iterations += res.iterations
            names.add(res.solver)
        if res.geometry is None:
            return None
        blocks.append((idx, res.embeddings(lift=True)))
    width = sum(H.shape[1] for _, H in blocks) + 1
    H = np.zeros((problem.n, width))
    col = 0
    for idx, block in blocks:  # side by side, in orthogonal subspaces: an optimum of the whole
        H[idx, col:col + block.shape[1]] = block
        col += block.shape[1]
    H[free, -1] = 1.0
    H = representative(H, samples, component_parts(comp), EmbeddingGeometry.rank_tol, covered)
    cert = certify_embeddings(problem.loss, H, samples, tol)
    seconds = time.perf_counter() - t0
    if not cert.certified:
        return None
    sizes = sorted((idx.size for idx, _ in parts), reverse=True)
    shown = ", ".join(map(str, sizes[:8])) + (", ..." if len(sizes) > 8 else "")
    notes = [f"split along the batch graph into {len(parts)} component(s) of {shown} samples"
             + (f" and {free.size} sample(s) in no batch" if free.size else "")
             + f"; {len(solved)} distinct composition(s) solved on their own "
             f"({', '.join(sorted(names))}), put side by side and certified on the whole program"]
    geometry = EmbeddingGeometry(H, problem.labels, problem.k, group_word=samples.group_word)
    timings = {"components": seconds, "total": time.perf_counter() - t_start}
    all_certified = all(r.certificate.certified for r in solved.values())
    status = SolveStatus.CONVERGED if all_certified else SolveStatus.ITERATION_LIMIT
    return SolveResult(problem, "full", "components", status, cert.value, geometry, cert, iterations,
                       timings, None, notes, symmetry="none (the n x n program, split by components)")


def _tied_best(problem, tol, seed, timings, notes):
    """The certified (else best) tied point (``solvers.tied``) of the n x n program, coarsest
    grouping first, else the type-invariant program's point where it is better (:func:`_types_best`):
    ``(H, certificate, stop reason, iterations, "tied" or "types")``."""
    from solvers.certificate import certify_embeddings
    from solvers.tied import tied_points

    t0 = time.perf_counter()
    best, iterations = None, 0
    for point in tied_points(problem, seed):
        cert = certify_embeddings(problem.loss, point.H, problem.samples, tol)
        iterations += point.iterations
        verdict = "certified" if cert.certified else f"not certified (gap bound {cert.gap_bound:.3g})"
        notes.append(f"tied start ({point.name}: {point.groups} groups, embeddings equal within each), "
                     f"{point.iterations} L-BFGS iterations, log excess {point.log_excess:.12g}: {verdict}")
        reason = StopReason.FLOOR.value if point.log_excess == -np.inf else "gradient_tolerance"
        if best is None or _rank(cert) < _rank(best[1]):
            best = (point.H, cert, reason)
        if cert.certified:
            break
    timings["tied"] = time.perf_counter() - t0
    source = "tied"
    if not best[1].certified:
        improved, its = _types_best(problem, tol, best, timings, notes)
        iterations += its
        if improved is not best:
            best, source = improved, "types"
    return (*best, iterations, source)


def _types_best(problem, tol, best, timings, notes):
    """The n x n mini-batch program over type-invariant G (``solvers.types``: a barrier method on
    the q x q Gram of the type means, certified exactly in O(q^3)), from the best tied point
    ``best`` (H, certificate, stop reason); returns the better of the two and the Newton steps.
    Losses that distinguish views, have no convex relaxation or attain their floor keep ``best``."""
    from solvers.certificate import certify_embeddings
    from solvers.types import purified, solve_types, tied_start
    from ufm.symmetry import batch_type_symmetry

    loss, samples = problem.loss, problem.samples
    if not (loss.has_relaxation and loss.scalar_objective) or loss.floor_attainable:
        return best, 0
    sym = batch_type_symmetry(loss, samples)
    if sym is None:
        return best, 0
    shown = progress.bar("solve: type-invariant barrier", unit="Newton step")
    with shown:
        def report(steps, log_excess):
            shown.update()
            shown.set_postfix_str(f"log excess {log_excess:.13g}", refresh=False)

        run = solve_types(loss, samples, sym, tol, start=tied_start(sym, best[0]), callback=report)
    if run.slopes is not None:
        # certified through the rows' linear minorants: float64 embeddings cannot carry the
        # positives' equidistance, so the certificate is the type program's own
        H, cert = sym.lift(run.factors), run.certificate
    else:
        H = sym.lift(purified(loss, samples, sym, run, tol)[0])
        cert = certify_embeddings(loss, H, samples, tol)
    timings["types"] = run.seconds
    verdict = "certified" if cert.certified else f"not certified (gap bound {cert.gap_bound:.3g})"
    notes.append(f"type-invariant program ({sym.q} types: a {samples.group_word} and the batches holding "
                 f"a sample) by a barrier method: {run.newton_steps} Newton steps in {run.outer_steps} "
                 f"barrier steps, stopped {run.reason.replace('_', ' ')}, log excess "
                 f"{cert.log_excess:.12g}: {verdict}")
    if run.slopes is not None:
        rounded = certify_embeddings(loss, H, samples, tol)
        if rounded.certified:
            which = "are certified as well"
        else:
            moved = abs(rounded.log_excess - cert.log_excess)  # ~ relative change of the excess
            how = (f"rounding moved the excess by {moved:.1e} of itself" if moved > tol else
                   "their value is the same to the tolerance, but the certificate's positive entries are "
                   "round-off there")
            which = (f"have log excess {rounded.log_excess:.12g} and are not certified by a certificate "
                     f"computed from them, as ufm certify does ({how}: {rounded.reason})")
        notes.append("the point has every anchor's positives equidistant, and it is certified through the "
                     f"rows' linear minorants (Fenchel-Young slack included): the certificate and value are "
                     f"the type program's point. Its embeddings, rounded to float64, {which}")
    if _rank(cert) < _rank(best[1]):
        stop = "gradient_tolerance" if cert.certified else ("stalled" if run.reason == "stalled"
                                                             else StopReason.ITERATION_LIMIT.value)
        best = (H, cert, stop)
    return best, run.newton_steps


def _full_result(problem, solver_name, best, iterations, timings, solver_value, notes, t_start):
    H, cert, stop = best
    if cert.certified or stop in ("gradient_tolerance", "floor_reached"):
        status = SolveStatus.CONVERGED
    else:  # reported as it is: a stalled, uncertified point did not converge
        status = SolveStatus.STALLED if stop == "stalled" else SolveStatus.ITERATION_LIMIT
    if stop == StopReason.FLOOR.value:
        notes.append(f"stopped at the floor: the excess {cert.excess:.3g} is 0 within round-off; the "
                     "certificate is decided on an absolute gap")
    geometry = _certified_rank_geometry(problem, H, cert, notes)
    timings["total"] = time.perf_counter() - t_start
    return SolveResult(problem, "full", solver_name, status, cert.value, geometry, cert, iterations, timings,
                       solver_value, notes, symmetry="none (the n x n program)")


def _certified_rank_geometry(problem, H, cert, notes) -> EmbeddingGeometry:
    """The geometry of embeddings H, whose rank (eigenvalues of G above RANK_TOL x the largest)
    is that of an optimum: where dropping the eigenvalues below it leaves a point that is not
    certified although H is (an optimum with eigenvalues of 1e-6 x the largest: overlapping
    mini-batches at tau 0.1), the rank counts every eigenvalue above round-off
    (ROUNDOFF_RANK_TOL), so that neither the rank, nor "tight in dimension d", nor the embeddings
    saved hold of a point that is not the optimum."""
    from solvers.certificate import certify_embeddings
    from ufm.geometry import ROUNDOFF_RANK_TOL

    word = problem.samples.group_word
    geometry = EmbeddingGeometry(H, problem.labels, problem.k, group_word=word)
    if not cert.certified:
        return geometry
    fine = EmbeddingGeometry(H, problem.labels, problem.k, rank_tol=ROUNDOFF_RANK_TOL, group_word=word)
    if fine.rank == geometry.rank:
        return geometry
    truncated = certify_embeddings(problem.loss, geometry.embeddings(lift=True), problem.samples,
                                   cert.tol)
    if truncated.certified:
        return geometry
    notes.append(f"rank {fine.rank} counts the eigenvalues of G above {ROUNDOFF_RANK_TOL:g} x the largest: "
                 f"the point without those below {geometry.rank_tol:g} x it (rank {geometry.rank}) is not "
                 f"certified (gap bound {truncated.gap_relative_to_scale:.2g} x the {truncated.scale_kind})")
    return fine


def solve(
    problem: Problem,
    method: str = DEFAULTS.method,
    solver: str = DEFAULTS.solver,
    tol: float = DEFAULTS.tol,
    seed: int = DEFAULTS.seed,
    max_iter: int = 20000,
    compare_full_batch: bool = True,
) -> SolveResult:
    """Solve the convex relaxation of ``problem`` and certify the answer (errors name the
    parameter at fault: ``UFMInputError("tol", ...)``)."""
    t_start = time.perf_counter()
    method = resolve_method(problem, method)
    SOLVE_OPTIONS["solver"].parse(solver, "solver")
    tol = SOLVE_OPTIONS["tol"].parse(tol, "tol")
    require_relaxation(problem, "solve")
    loss = problem.loss
    if not loss.scalar_objective and solver in CONIC_SOLVERS:
        raise UFMInputError("solver", f"{loss.name} has no scalar objective: it is solved by its "
                            "coordinate-wise dynamics (solver auto or factored)")
    natural = problem.symmetry("auto")
    if method == "full" and solver == "auto" and natural is not None:
        solver = "clarabel"  # the n x n program as an independent cross-check of the reduced one
    if method == "full" and solver in CONIC_SOLVERS and problem.n > FULL_MAX_N[solver]:
        raise UFMInputError("method", f"full program with {solver} refused for n = {problem.n} > "
                            f"{FULL_MAX_N[solver]} (memory): use "
                            + ("reduced or orbit, which are exact" if natural is not None
                               else "solver factored (Burer-Monteiro restarts)"))
    reason = problem.degenerate()
    if reason is not None:
        return _degenerate(problem, reason, tol, t_start)
    sym = None if method == "full" else problem.symmetry(method)
    if sym is None and natural is not None and solver in CONIC_SOLVERS:
        G, sol = solve_full(problem, solver)
        if G is None:
            raise RuntimeError(f"{solver} failed on the full program: {sol.status}")
        res = _solve_reduced(problem, natural, "full", solver, tol, seed, max_iter, t_start, full_G=(G, sol))
    elif sym is None:
        res = None
        if problem.samples.batches is not None and loss.scalar_objective and solver in ("auto", "factored"):
            res = _solve_by_components(problem, solver, tol, seed, max_iter, t_start)
        if res is None and not loss.scalar_objective:
            res = _solve_full_dynamics(problem, tol, seed, max_iter, t_start)
        elif res is None:
            res = _solve_full(problem, solver, tol, seed, max_iter, t_start)
    else:
        res = _solve_reduced(problem, sym, method, "factored" if solver == "auto" else solver, tol, seed,
                             max_iter, t_start)
    if problem.samples.batches is not None and isinstance(res.geometry, EmbeddingGeometry):
        _describe_face(problem, res, tol)
    if problem.samples.batches is not None and compare_full_batch:
        res.minibatch = _compare_full_batch(problem, res, tol)
    if problem.dim is not None:
        res.dim = problem.dim
    return res


def _solve_full_dynamics(problem, tol, seed, max_iter, t_start):
    """alpha-CL without a symmetry: coordinate-wise dynamics over H from restarts, the best end
    point certified as a fixed point."""
    from solvers.certificate import certify_embeddings
    from solvers.dynamics import coordinate_restarts
    from ufm.geometry import EmbeddingGeometry

    d = min(problem.n, max(problem.k + 1, 3))
    loss, H0, notes = problem.loss, None, []
    if loss.tau is not None and loss.tau < CONTINUATION_TAU:
        # at small tau alpha is sharp and the dynamics from random starts crawls (5,2,2 batch at
        # tau 0.01: 260 iterations, 4x those at 0.5); from the end points at tau 0.5 it takes 60
        warm = Problem(type(loss)(**{**loss.values, "tau": CONTINUATION_TAU}), problem.samples)
        H0 = coordinate_restarts(warm, d, restarts=4, seed=seed, max_iter=max_iter).H
        notes.append(f"started from the dynamics' end points at tau {CONTINUATION_TAU:g} (continuation)")
    run = coordinate_restarts(problem, d, restarts=4, seed=seed, max_iter=max_iter, H0=H0)
    best = None
    for r in np.argsort(run.log_excess):
        cert = certify_embeddings(problem.loss, run.H[r], problem.samples, tol)
        if best is None or _rank(cert, by_value=False) < _rank(best[1], by_value=False):
            best = (run.H[r], cert, run.reasons[r].value)
    H, cert, stop = best
    geometry = EmbeddingGeometry(H, problem.labels, problem.k, group_word=problem.samples.group_word)
    timings = {"dynamics": run.timings.get("optimize", 0.0), "total": time.perf_counter() - t_start}
    status = SolveStatus.CONVERGED if stop == "gradient_tolerance" else SolveStatus.ITERATION_LIMIT
    return SolveResult(problem, "full", "dynamics", status, cert.value, geometry, cert,
                       int(run.iterations.sum()), timings, None,
                       [f"coordinate-wise dynamics from 4 restarts in dimension {d}; certified means a "
                        f"global optimum of its own {loss.fixed_point_program}", *notes],
                       symmetry="none (the n x n program)")


def _describe_face(problem: Problem, res: SolveResult, tol: float) -> None:
    """The optimal set of a mini-batch program (``solvers.face``): ``res.face``; where the
    optimum is not unique, the geometry becomes the face's lowest-rank, most collapsed
    representative (re-certified), so that what is printed of it holds of some optimum."""
    from solvers.certificate import certify_embeddings
    from solvers.face import optimal_face

    geo = res.geometry
    face = optimal_face(problem.loss, problem.samples, geo.H, geo.rank_tol, res.certificate.certified)
    res.face = face.to_dict()
    same = face.H is geo.H or (face.H.shape[0] == geo.H.shape[0] and np.allclose(
        face.H @ face.H.T, geo.H @ geo.H.T, rtol=0.0, atol=1e-12))  # already the representative
    if face.components > 1 and not same:
        cert = certify_embeddings(problem.loss, face.H, problem.samples, tol)
        if cert.certified or not res.certificate.certified:
            res.geometry = EmbeddingGeometry(face.H, problem.labels, problem.k, group_word=geo.group_word)
            res.certificate, res.value = cert, cert.value
            same = True
    if face.components > 1 and same:
        res.notes.append(f"shown: a representative of rank {face.min_rank}, the batch graph's components in "
                         "one subspace, aligned on their shared classes")
    if face.unique is not True:
        res.notes.append(f"optimum unique: {'no' if face.unique is False else 'unknown'} ({face.reason})")


def _compare_full_batch(problem: Problem, res: SolveResult, tol: float) -> dict:
    """How far the mini-batch optimum is from the full-batch one: values, collapse, Gram and
    class-mean cosine distances (rotation invariant)."""
    from ufm import metrics

    full = solve(problem.with_samples(problem.samples.without_batches()), tol=tol, compare_full_batch=False)
    out = {"batches": len(problem.samples.batches), "batch_spec": problem.samples.batch_spec,
           "collapsed": res.collapsed, "full_batch_value": full.value,
           "full_batch_certified": full.certificate.certified, "full_batch_collapsed": None,
           "gram_distance_to_full_batch": None, "class_cosine_difference": None}
    if full.geometry is None or res.geometry is None:
        return out
    if res.face is not None and res.face["optimum_unique"] is not True:
        out.update(full_batch_collapsed=full.collapsed)  # distances to one representative say nothing
        return out
    H = res.embeddings(lift=True)
    Hf = full.embeddings(lift=True)
    out.update(full_batch_collapsed=full.collapsed,
               gram_distance_to_full_batch=metrics.gram_distance(H, Hf),
               class_cosine_difference=float(np.abs(res.class_gram() - full.class_gram()).max()))
    return out


def _degenerate(problem: Problem, reason: str, tol: float, t_start: float) -> SolveResult:
    """A problem with no geometry to optimise: its optimal value is the floor, reached by
    collapse or by every geometry; reported, not solved."""
    floor = problem.floor()
    cert = decide(floor, -np.inf, 0.0, problem.n, tol, "no program solved: " + reason, 0.0, problem.tau)
    timings = {"total": time.perf_counter() - t_start}
    return SolveResult(problem, "none", "none", SolveStatus.DEGENERATE, floor, None, cert, 0, timings,
                       None, [reason], degenerate=reason)


__all__ = ["solve", "METHODS", "SOLVERS", "Certificate"]
