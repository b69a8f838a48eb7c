"""How far given embeddings (trained, or from an optimiser) are from the certified optimum."""

from __future__ import annotations

import numpy as np

from solvers.certificate import CERTIFY_TOL, certify_collapsed, certify_embeddings
from solvers.solve import solve
from ufm import metrics
from ufm.problem import Problem, require_relaxation


def inspect_embeddings(H: np.ndarray, problem: Problem, tol: float = CERTIFY_TOL, device: str = "cpu",
                       memory_budget: float = 2e9, progress=None) -> dict:
    """Value, floor and excess, certificate (exact and class-level when H is collapsed), NC1,
    class-mean cosines against the optimum for these samples and against the simplex ETF,
    distance to the optimum.

    ``H`` must be in the problem's sample order (by class; use ``problem.samples.order`` to
    reorder a user's rows) with unit rows. When every class is collapsed (all samples of a class
    equal) and the loss is class-symmetric, H H^T is itself class-symmetric and its class-level
    certificate is the exact certificate of the n x n problem, for any n; otherwise the dense or
    matrix-free one is computed (``memory_budget`` bytes for S's blocks, ``progress`` a callable
    receiving a line per pass).
    """
    require_relaxation(problem, "certify")
    loss, samples = problem.loss, problem.samples
    cls = samples.labels
    exact = collapsed_exactly(H, samples.counts)
    collapsed = certify_collapsed(loss, H, samples, tol, collapse_tol=1e-6)
    if exact and collapsed is not None:
        cert = collapsed
    else:
        cert = certify_embeddings(loss, H, samples, tol, device=device, memory_budget=memory_budget,
                                  progress=progress)
    optimum = solve(problem, tol=tol)
    report = {
        **problem.describe(), "n": int(H.shape[0]), "dim": int(H.shape[1]), "k": problem.k,
        "class_labels": [str(c) for c in problem.class_labels],
        "degenerate": optimum.degenerate,
        "value": cert.value, "floor": cert.floor, "excess": cert.excess,
        "lambda_min": cert.lambda_min, "gap_bound": cert.gap_bound,
        "certified": cert.certified, "certificate": cert.to_dict(),
        "class_certificate": None if collapsed is None else collapsed.to_dict(),
        "nc1": metrics.nc1(H, cls) if problem.k >= 2 else 0.0,
        "optimal_value": None, "rel_gap": None, "gap_over_scale": None, "class_mean_cosines": None,
        "optimal_class_mean_cosines": None,
        "cosines_vs_optimum": None, "cosines_vs_etf": None, "gram_distance": None,
        "procrustes_distance": None,
    }
    if optimum.degenerate is not None:
        return report
    cos = metrics.class_mean_cosines(H, cls)
    H_ref = optimum.embeddings(lift=True)
    ex_star = optimum.certificate.excess
    report.update({
        "optimal_value": optimum.value, "optimal_excess": ex_star,
        # relative to the optimal excess, except at an attained floor (that excess is round-off)
        "rel_gap": None if ex_star <= problem.loss.floor_tolerance(problem.samples)
        else (cert.excess - ex_star) / max(ex_star, 1e-300),
        "gap_over_scale": ((cert.floor - optimum.certificate.floor) + (cert.excess - ex_star))
        / max(optimum.certificate.scale, 1e-300),
        "class_mean_cosines": cos.tolist() if problem.k <= 500 else None,
        "optimal_class_mean_cosines": optimum.class_gram().tolist() if problem.k <= 500 else None,
        "cosines_vs_optimum": float(np.abs(cos - optimum.class_gram()).max()),
        "cosines_vs_etf": metrics.etf_deviation(cos),
        "gram_distance": metrics.gram_distance(H, H_ref),
        "procrustes_distance": metrics.procrustes_distance(H, H_ref),
    })
    return report


def collapsed_exactly(H: np.ndarray, counts) -> bool:
    """Every class's rows are identical (samples ordered by class)."""
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    first = np.repeat(H[starts], counts, axis=0)
    return bool(np.array_equal(H, first))
