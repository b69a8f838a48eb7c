"""How far given embeddings (trained, or from an optimiser) are from the certified optimum."""

from __future__ import annotations

import numpy as np

from solvers.certificate import CERTIFY_TOL, certify_collapsed, certify_embeddings
from solvers.solve import solve
from ufm import metrics
from ufm.problem import Problem


def inspect_embeddings(H: np.ndarray, labels, tau: float, loss: str = "supcon",
                       tol: float = CERTIFY_TOL, device: str = "cpu") -> dict:
    """Value, certificate (plus a class-level one when H is collapsed), NC1, class-mean cosines
    against the optimum for these counts and against the simplex ETF, distance to the optimum.

    Samples are reordered by class (stable) first; H must have unit rows.
    """
    y = np.asarray(labels).ravel()
    problem = Problem.from_labels(y, tau, loss)
    _, cls = np.unique(y, return_inverse=True)
    order = np.argsort(cls, kind="stable")
    H, cls = H[order], cls[order]
    lossf = problem.loss_fn
    cert = certify_embeddings(lossf, H, problem.counts, tau, tol, device=device)
    collapsed = certify_collapsed(lossf, H, problem.counts, tau, tol, collapse_tol=1e-6)
    optimum = solve(problem, tol=tol)
    cos = metrics.class_mean_cosines(H, cls)
    H_ref = optimum.embeddings(lift=True)
    f_star = optimum.value
    return {
        "loss": loss, "tau": tau, "n": int(H.shape[0]), "dim": int(H.shape[1]), "k": problem.k,
        "counts": list(problem.counts), "class_labels": [str(c) for c in problem.class_labels],
        "value": cert.value, "lambda_min": cert.lambda_min, "gap_bound": cert.gap_bound,
        "certified": cert.certified, "certificate": cert.to_dict(),
        "class_certificate": None if collapsed is None else collapsed.to_dict(),
        "optimal_value": f_star, "rel_gap": (cert.value - f_star) / max(abs(f_star), 1e-300),
        "nc1": metrics.nc1(H, cls),
        "class_mean_cosines": cos.tolist() if problem.k <= 500 else None,
        "cosines_vs_optimum": float(np.abs(cos - optimum.class_gram()).max()),
        "cosines_vs_etf": metrics.etf_deviation(cos),
        "gram_distance": metrics.gram_distance(H, H_ref),
        "procrustes_distance": metrics.procrustes_distance(H, H_ref),
    }
