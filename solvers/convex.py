"""Convex relaxations in CVXPY: the n x n program and the symmetry-reduced group program.

Both are vectorised (one ``log_sum_exp`` along an axis, selection matrices instead of loops
over entries). The n x n program is the slow, independent cross-check: a dense interior-point
system of size about n^2/2 (DESIGN section 7); keep it to small n.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ufm.problem import Problem
from ufm.structure import GroupGram, Groups

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


def _run(prob, solver: str) -> ConicSolution:
    import cvxpy as cp

    t0 = time.perf_counter()
    try:
        prob.solve(**_solver_kwargs(solver))
    except cp.error.SolverError as err:
        return ConicSolution(float("nan"), f"solver_error: {err}", None, time.perf_counter() - t0)
    stats = prob.solver_stats
    iters = getattr(stats, "num_iters", None) if stats is not None else None
    value = float(prob.value) if prob.value is not None else float("nan")
    return ConicSolution(value, str(prob.status), iters, time.perf_counter() - t0)


def solve_full(problem: Problem, solver: str = "clarabel"):
    """n x n relaxation: min f(G) s.t. G PSD, diag(G) = 1. Returns (G, ConicSolution)."""
    import cvxpy as cp

    loss = problem.loss_fn
    G = cp.Variable((problem.n, problem.n), PSD=True)
    prob = cp.Problem(cp.Minimize(loss.cvxpy_gram(G, problem.counts, problem.tau)),
                      [cp.diag(G) == 1])
    sol = _run(prob, solver)
    return (None if G.value is None else np.asarray(G.value)), sol


def solve_groups(problem: Problem, groups: Groups, solver: str = "clarabel"):
    """Symmetry-reduced program over the q x q matrix C of (scaled) group means.

    C_gg = d_g + (k_g - 1) same_g, C_gh = sqrt(k_g k_h) cross_gh, C PSD; d_g <= 1 (= 1 for
    classes of one sample); d_g - same_g >= 0 inside groups of several classes. With one
    group per class this is the class-level program over the class-mean Gram Mu.
    Returns (GroupGram or None, ConicSolution).
    """
    import cvxpy as cp

    loss = problem.loss_fn
    q = groups.q
    k_g, n_g = groups.size.astype(float), groups.count.astype(float)
    C = cp.Variable((q, q), PSD=True)
    same = cp.Variable(q)
    d = cp.diag(C) - cp.multiply(k_g - 1, same)
    cons = [d <= 1]
    single = np.flatnonzero(groups.count == 1)
    if single.size:
        cons.append(d[single] == 1)
    multi = np.flatnonzero(groups.size >= 2)
    lone = np.flatnonzero(groups.size == 1)
    if multi.size:
        cons.append(d[multi] - same[multi] >= 0)
    if lone.size:
        cons.append(same[lone] == 0)
    inv_scale = 1.0 / np.sqrt(np.outer(k_g, k_g))
    cross = cp.multiply(inv_scale, C)
    within = cp.multiply(n_g / np.maximum(n_g - 1, 1), d) - 1.0 / np.maximum(n_g - 1, 1)
    prob = cp.Problem(cp.Minimize(loss.cvxpy_group(groups, within, same, cross, problem.tau)),
                      cons)
    sol = _run(prob, solver)
    if C.value is None:
        return None, sol
    Cv = np.asarray(C.value)
    sv = np.asarray(same.value)
    dv = np.diag(Cv) - (k_g - 1) * sv
    wv = np.where(groups.count >= 2, (n_g * dv - 1) / np.maximum(n_g - 1, 1), 1.0)
    gram = GroupGram(np.ones(q), wv, np.where(groups.size >= 2, sv, 0.0), Cv * inv_scale)
    return gram, sol


def class_average(G: np.ndarray, counts) -> GroupGram:
    """Average an n x n Gram over permutations inside each class (one group per class).

    For a convex f the average is feasible and no worse (Jensen), so this maps any solution
    of the n x n program to the class-level program exactly.
    """
    counts = np.asarray(counts)
    k = counts.size
    y = np.repeat(np.arange(k), counts)
    E = np.zeros((y.size, k))
    E[np.arange(y.size), y] = 1.0
    return _class_level(E.T @ G @ E, np.bincount(y, weights=np.diag(G), minlength=k), counts)


def _class_level(block_sums: np.ndarray, diag_sums: np.ndarray, counts: np.ndarray) -> GroupGram:
    """Class-level Gram from the sums of G over class blocks and over each class's diagonal."""
    k = counts.size
    pairs = counts * (counts - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(counts >= 2, (np.diag(block_sums) - diag_sums) / pairs, 1.0)
    return GroupGram(np.ones(k), within, np.zeros(k), block_sums / np.outer(counts, counts))


def class_mean_gram_of_embeddings(H: np.ndarray, counts) -> GroupGram:
    """:func:`class_average` of H H^T computed from class sums in O(n d + k^2 d)."""
    counts = np.asarray(counts)
    k = counts.size
    y = np.repeat(np.arange(k), counts)
    sums = np.zeros((k, H.shape[1]))
    np.add.at(sums, y, H)
    diag_sums = np.bincount(y, weights=np.einsum("ij,ij->i", H, H), minlength=k)
    return _class_level(sums @ sums.T, diag_sums, counts)
