"""Does gradient descent find the global optimum? Restarts, each compared with the convex
optimum up to rotation and certified, and a census of the end points."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from solvers.certificate import CERTIFY_TOL, Certificate, certify_collapsed, certify_embeddings
from solvers.nonconvex import RestartsResult, optimize
from solvers.result import SolveResult
from solvers.solve import solve
from ufm import metrics
from ufm.problem import Problem

#: two end points are the same minimum if their Gram distance is below this
SAME_POINT_TOL = 1e-3
#: the Riemannian Hessian is formed densely up to this many coordinates n * d
HESSIAN_MAX_COORDS = 600


def riemannian_hessian_min(loss, H: np.ndarray, counts, tau: float) -> float:
    """Smallest eigenvalue of the Riemannian Hessian on the product of spheres at H,
    Hess f[xi]_i = P_i(nabla^2 f[xi])_i - <h_i, egrad_i> xi_i (Absil et al. 2008, 5.5),
    over the tangent space with the directions of global rotations, xi = H A for skew A
    (zero modes of every rotation-invariant loss), projected out."""
    import torch

    n, d = H.shape
    Ht = torch.tensor(H, dtype=torch.float64)

    def f(x):
        return loss.torch_value(x.reshape(n, d), counts, tau)

    hess = torch.autograd.functional.hessian(f, Ht.reshape(-1)).numpy()
    x = Ht.clone().requires_grad_(True)
    (eg,) = torch.autograd.grad(loss.torch_value(x, counts, tau), x)
    eg = eg.numpy()
    # orthonormal tangent basis per row: the last d-1 columns of a QR of [h_i, I]
    basis = np.zeros((n * d, n * (d - 1)))
    for i in range(n):
        Q, _ = np.linalg.qr(np.column_stack([H[i], np.eye(d)]))
        basis[i * d:(i + 1) * d, i * (d - 1):(i + 1) * (d - 1)] = Q[:, 1:d]
    curvature = np.repeat(np.einsum("ij,ij->i", H, eg), d)
    M = basis.T @ (hess - np.diag(curvature)) @ basis
    rotations = []
    for a in range(d):
        for b in range(a + 1, d):
            A = np.zeros((d, d))
            A[a, b], A[b, a] = 1.0, -1.0
            rotations.append(basis.T @ (H @ A).ravel())
    if rotations:
        U, sv, _ = np.linalg.svd(np.column_stack(rotations), full_matrices=True)
        rank = int((sv > 1e-10 * max(sv.max(), 1e-300)).sum())
        C = U[:, rank:]  # orthonormal complement of the rotation directions
        M = C.T @ M @ C
    if M.size == 0:
        return 0.0
    return float(np.linalg.eigvalsh(0.5 * (M + M.T))[0])


def cluster(points: list[np.ndarray], tol: float = SAME_POINT_TOL) -> np.ndarray:
    """Greedy clustering of end points by Gram distance; returns a cluster id per point."""
    reps, ids = [], []
    for H in points:
        for c, R in enumerate(reps):
            if metrics.gram_distance(H, R) <= tol:
                ids.append(c)
                break
        else:
            reps.append(H)
            ids.append(len(reps) - 1)
    return np.array(ids)


@dataclass
class RestartReport:
    value: float
    gap: float  # value - optimal value of the relaxation (>= 0 up to round-off)
    rel_gap: float
    gram_distance: float
    procrustes_distance: float | None
    class_gram_difference: float
    grad_norm: float
    certificate: Certificate
    stop_reason: str
    iterations: int
    cluster: int
    hessian_min: float | None = None
    class_certificate: Certificate | None = None  # exact class-level one, when H is collapsed

    def to_dict(self) -> dict:
        c = self.certificate
        return {"value": self.value, "gap": self.gap, "rel_gap": self.rel_gap,
                "gram_distance": self.gram_distance, "procrustes_distance": self.procrustes_distance,
                "class_gram_difference": self.class_gram_difference, "grad_norm": self.grad_norm,
                "lambda_min": c.lambda_min, "gap_bound": c.gap_bound, "residual": c.residual,
                "certified": c.certified, "stop_reason": self.stop_reason,
                "iterations": self.iterations, "cluster": self.cluster,
                "hessian_min": self.hessian_min,
                "class_certified": None if self.class_certificate is None
                else self.class_certificate.certified,
                "kind": None if self.hessian_min is None else
                ("saddle" if self.hessian_min < -1e-8 * max(1.0, abs(self.value)) else "local_min")}


@dataclass
class VerifyResult:
    problem: Problem
    dim: int
    optimum: SolveResult
    run: RestartsResult
    restarts: list[RestartReport]
    certificate_how: str
    timings: dict = field(default_factory=dict)

    @property
    def relaxation_tight(self) -> bool:
        """The relaxation's optimum is realised in this dimension (d >= rank G*)."""
        return self.dim >= self.optimum.rank

    @property
    def fraction_global(self) -> float:
        return float(np.mean([r.certificate.certified for r in self.restarts]))

    @property
    def distinct_minima(self) -> int:
        return len({r.cluster for r in self.restarts})

    def to_dict(self) -> dict:
        p = self.problem
        values = np.array([r.value for r in self.restarts])
        best = float(values.min())
        return {
            "loss": p.loss, "counts": list(p.counts), "tau": p.tau, "dim": self.dim,
            "optimal_value": self.optimum.value, "optimum_rank": self.optimum.rank,
            "optimum_certificate": self.optimum.certificate.to_dict(),
            "relaxation_tight": self.relaxation_tight,
            "fraction_global": self.fraction_global,
            "distinct_minima": self.distinct_minima,
            "best_value": best,
            "fraction_best": float(np.mean(values <= best + 1e-9 * max(1.0, abs(best)))),
            "claim": ("certified global optima" if self.fraction_global > 0 else
                      "no certificate holds: the relaxation value is a lower bound only"),
            "optimizer": self.run.method, "device": self.run.device, "dtype": self.run.dtype,
            "certificate_how": self.certificate_how,
            "restarts": [r.to_dict() for r in self.restarts],
            "time_s": self.timings.get("total"), "timings": self.timings,
        }


def verify(problem: Problem, dim: int, restarts: int = 8, method: str = "lbfgs",
           device: str = "auto", seed: int = 0, tol: float = CERTIFY_TOL,
           grad_tol: float | None = None, max_iter: int = 5000, hessian: bool | None = None,
           progress: bool = False, precision: str = "auto") -> VerifyResult:
    """Optimise from ``restarts`` random starts in dimension ``dim`` and compare every end
    point with the certified convex optimum."""
    t0 = time.perf_counter()
    optimum = solve(problem, tol=tol)
    t1 = time.perf_counter()
    run = optimize(problem, dim, restarts, method, device, seed, grad_tol, max_iter,
                   progress=progress, precision=precision)
    t2 = time.perf_counter()
    loss = problem.loss_fn
    H_ref = optimum.embeddings(lift=True)
    ref_cos = optimum.class_gram()
    labels = problem.labels
    ids = cluster(list(run.H))
    if hessian is None:
        hessian = problem.n * dim <= HESSIAN_MAX_COORDS
    reports, how = [], ""
    f_star = optimum.value
    for r, H in enumerate(run.H):
        cert = certify_embeddings(loss, H, problem.counts, problem.tau, tol, device=run.device)
        how = cert.how
        value = cert.value
        reports.append(RestartReport(
            value=value, gap=value - f_star, rel_gap=(value - f_star) / max(abs(f_star), 1e-300),
            gram_distance=metrics.gram_distance(H, H_ref),
            procrustes_distance=metrics.procrustes_distance(H, H_ref),
            class_gram_difference=float(np.abs(metrics.class_mean_cosines(H, labels) - ref_cos).max()),
            grad_norm=float(run.grad_norms[r]), certificate=cert,
            stop_reason=run.reasons[r].value, iterations=int(run.iterations[r]), cluster=int(ids[r]),
            hessian_min=riemannian_hessian_min(loss, H, problem.counts, problem.tau) if hessian else None,
            class_certificate=certify_collapsed(loss, H, problem.counts, problem.tau, tol,
                                                collapse_tol=1e-6),
        ))
    t3 = time.perf_counter()
    timings = {"convex": t1 - t0, "optimize": t2 - t1, "certify": t3 - t2, "total": t3 - t0}
    return VerifyResult(problem, dim, optimum, run, reports, how, timings)
