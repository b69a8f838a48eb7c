"""How far given embeddings (trained, or from an optimiser) are from the certified optimum."""

from __future__ import annotations

import numpy as np

from solvers.certificate import CERTIFY_TOL, certify_collapsed, certify_embeddings
from solvers.solve import solve
from ufm import metrics
from ufm.problem import Problem


def inspect_embeddings(H: np.ndarray, labels, tau: float, loss: str = "supcon",
                       tol: float = CERTIFY_TOL, device: str = "cpu", memory_budget: float = 2e9,
                       progress=None) -> dict:
    """Value, floor and excess, certificate (exact and class-level when H is collapsed), NC1,
    class-mean cosines against the optimum for these counts and against the simplex ETF,
    distance to the optimum.

    Samples are reordered by class (stable) first; H must have unit rows. When every class is
    collapsed (all samples of a class equal), H H^T is itself class-symmetric and its class-level
    certificate is the exact certificate of the n x n problem, for any n; otherwise the dense or
    matrix-free one is computed (``memory_budget`` bytes for S's blocks, ``progress`` a
    callable receiving a line per pass).
    """
    y = np.asarray(labels).ravel()
    problem = Problem.from_labels(y, tau, loss)
    _, cls = np.unique(y, return_inverse=True)
    order = np.argsort(cls, kind="stable")
    H, cls = H[order], cls[order]
    lossf = problem.loss_fn
    exact = collapsed_exactly(H, problem.counts)
    collapsed = certify_collapsed(lossf, H, problem.counts, tau, tol, collapse_tol=1e-6)
    if exact and collapsed is not None:
        cert = collapsed
    else:
        cert = certify_embeddings(lossf, H, problem.counts, tau, tol, device=device,
                                  memory_budget=memory_budget, progress=progress)
    optimum = solve(problem, tol=tol)
    report = {
        "loss": loss, "tau": tau, "n": int(H.shape[0]), "dim": int(H.shape[1]), "k": problem.k,
        "counts": list(problem.counts), "class_labels": [str(c) for c in problem.class_labels],
        "degenerate": optimum.degenerate,
        "value": cert.value, "floor": cert.floor, "excess": cert.excess,
        "lambda_min": cert.lambda_min, "gap_bound": cert.gap_bound,
        "certified": cert.certified, "certificate": cert.to_dict(),
        "class_certificate": None if collapsed is None else collapsed.to_dict(),
        "nc1": metrics.nc1(H, cls) if problem.k >= 2 else 0.0,
        "optimal_value": None, "rel_gap": None, "class_mean_cosines": None,
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
        "rel_gap": (cert.excess - ex_star) / max(ex_star, 1e-300),
        "class_mean_cosines": cos.tolist() if problem.k <= 500 else None,
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
