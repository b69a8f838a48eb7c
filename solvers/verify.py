"""Does gradient descent find the global optimum? Restarts, each compared with the convex
optimum up to rotation and certified, and a census of the end points."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from solvers.certificate import CERTIFY_TOL, Certificate, certify_collapsed, certify_embeddings
from solvers.nonconvex import RestartsResult, StopReason, optimize
from solvers.result import SolveResult
from solvers.solve import solve
from ufm import metrics
from ufm.errors import UFMInputError
from ufm.problem import Problem

#: two end points are the same minimum if their Gram distance is below this
SAME_POINT_TOL = 1e-3
#: the Riemannian Hessian is formed densely up to this many coordinates n * d
HESSIAN_MAX_COORDS = 600


def riemannian_hessian_min(loss, H: np.ndarray, samples, step: float = 1e-5) -> float:
    """Smallest eigenvalue of :func:`riemannian_hessian_extremes`."""
    return riemannian_hessian_extremes(loss, H, samples, step)[0]


def riemannian_hessian_extremes(loss, H: np.ndarray, samples, step: float = 1e-5):
    """Smallest eigenvalue and largest |eigenvalue| of the Riemannian Hessian of
    log(f - floor) on the product of spheres at H (at a critical point: the Hessian of f divided
    by the excess, so the same signs, well scaled at any tau), over the tangent space with the
    directions of global rotations, xi = H A for skew A (zero modes of every rotation-invariant
    loss), projected out.

    Hess[xi] = P_H(D grad(H)[xi]) (Absil, Mahony & Sepulchre 2008, 5.5), here by central
    differences of the accurate Riemannian gradient along an orthonormal tangent basis, with
    the retraction h <- h / |h| (error O(step^2)).
    """
    import torch

    n, d = H.shape

    def rgrads(X):  # (B, n, d) points -> (B, n, d) Riemannian gradients, one batched evaluation
        Xt = torch.tensor(X, dtype=torch.float64)
        _, eg = loss.torch_log_excess_and_grad(Xt, samples)
        eg = eg.numpy()
        return eg - np.einsum("bij,bij->bi", eg, X)[..., None] * X

    # orthonormal tangent basis per row: the last d-1 columns of a QR of [h_i, I]
    m = n * (d - 1)
    basis = np.zeros((n * d, m))
    for i in range(n):
        Q, _ = np.linalg.qr(np.column_stack([H[i], np.eye(d)]))
        basis[i * d:(i + 1) * d, i * (d - 1):(i + 1) * (d - 1)] = Q[:, 1:d]
    cols = np.empty((n * d, m))
    chunk = max(1, min(m, 2**22 // max(n * n, 1)))  # directions per batched evaluation
    for start in range(0, m, chunk):
        xi = basis[:, start:start + chunk].T.reshape(-1, n, d)
        plus, minus = H + step * xi, H - step * xi
        plus /= np.linalg.norm(plus, axis=-1, keepdims=True)
        minus /= np.linalg.norm(minus, axis=-1, keepdims=True)
        g = rgrads(np.concatenate([plus, minus]))
        diff = (g[:len(xi)] - g[len(xi):]) / (2 * step)
        diff = diff - np.einsum("bij,ij->bi", diff, H)[..., None] * H
        cols[:, start:start + chunk] = diff.reshape(len(xi), -1).T
    M = basis.T @ cols
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
        return 0.0, 0.0
    w = np.linalg.eigvalsh(0.5 * (M + M.T))
    return float(w[0]), float(np.abs(w).max())


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


#: an end point is a saddle if its Hessian's smallest eigenvalue is below -this x the largest |.|
SADDLE_REL_TOL = 1e-6


#: the reason given where a loss has no global certificate
NO_CERTIFICATE = "no global certificate exists: the loss is not convex in G and has no convex relaxation"


@dataclass
class RestartReport:
    value: float
    excess: float  # value - floor, full relative precision
    gap: float | None  # excess - optimal excess (= value - optimal value), >= 0 up to round-off
    rel_gap: float | None  # gap / optimal excess
    gram_distance: float | None
    procrustes_distance: float | None
    class_gram_difference: float | None
    grad_norm: float
    certificate: Certificate | None  # None where no global certificate exists
    stop_reason: str
    iterations: int
    cluster: int | None  # None for end points that did not converge
    hessian: tuple | None = None  # (smallest eigenvalue, largest |eigenvalue|)
    class_certificate: Certificate | None = None  # exact class-level one, when H is collapsed
    gap_over_scale: float | None = None  # gap / the optimum's scale (what the geometry controls)

    @property
    def certified(self) -> bool:
        return self.certificate is not None and self.certificate.certified

    @property
    def converged(self) -> bool:
        """The optimiser's own stopping rule said so: it stopped on its gradient tolerance. An
        end point at the iteration limit, or stalled, is never called converged, even where its
        certificate holds (``certified`` says that, on its own)."""
        return self.stop_reason == StopReason.GRADIENT_TOL.value

    @property
    def kind(self) -> str | None:
        if not self.converged:
            return "not_converged"
        if self.hessian is None:
            return None
        lo, top = self.hessian
        return "saddle" if lo < -SADDLE_REL_TOL * max(top, 1e-300) else "local_min"

    def to_dict(self) -> dict:
        c = self.certificate
        cert = {"lambda_min": None, "gap_bound": None, "gap_relative_to_excess": None, "residual": None,
                "scale": None, "scale_kind": None, "gap_relative_to_scale": None,
                "certified": None, "reason": NO_CERTIFICATE} if c is None else \
            {k: v for k, v in c.to_dict().items() if k in (
                "lambda_min", "gap_bound", "gap_relative_to_excess", "residual", "scale", "scale_kind",
                "gap_relative_to_scale", "certified", "reason")}
        return {"value": self.value, "excess": self.excess, "gap": self.gap, "rel_gap": self.rel_gap,
                "gap_over_scale": self.gap_over_scale,
                "gram_distance": self.gram_distance, "procrustes_distance": self.procrustes_distance,
                "class_gram_difference": self.class_gram_difference, "grad_norm": self.grad_norm,
                **cert, "stop_reason": self.stop_reason,
                "stop": self.stop_reason, "converged": self.converged,
                "iterations": self.iterations, "cluster": self.cluster,
                "hessian_min": None if self.hessian is None else self.hessian[0],
                "class_certified": None if self.class_certificate is None
                else self.class_certificate.certified,
                "kind": self.kind}


@dataclass
class VerifyResult:
    problem: Problem
    dim: int
    optimum: SolveResult | None  # None where the loss has no convex relaxation
    run: RestartsResult
    restarts: list[RestartReport]
    certificate_how: str
    timings: dict = field(default_factory=dict)

    @property
    def certifiable(self) -> bool:
        return self.optimum is not None

    @property
    def relaxation_tight(self) -> bool | None:
        """The relaxation's optimum is realised in this dimension (d >= rank G*)."""
        return None if self.optimum is None else self.dim >= self.optimum.rank

    @property
    def fraction_global(self) -> float | None:
        """Fraction of restarts whose end point is certified globally optimal."""
        if not self.certifiable:
            return None
        return float(np.mean([r.certified for r in self.restarts]))

    @property
    def converged(self) -> int:
        return sum(r.converged for r in self.restarts)

    @property
    def distinct_minima(self) -> int:
        """Clusters (Gram distance <= SAME_POINT_TOL) among the converged end points."""
        return len({r.cluster for r in self.restarts if r.cluster is not None})

    def claim(self) -> str:
        R = len(self.restarts)
        unconverged = R - self.converged
        if not self.certifiable:
            claim = (f"{self.problem.loss.name} is not convex in G and has no convex relaxation: no global "
                     f"certificate exists; {self.distinct_minima} distinct minima among {self.converged} "
                     "converged restarts (the census only)")
        else:
            certified = sum(r.certified for r in self.restarts)
            if certified:
                claim = f"{certified} of {R} restarts reached a certified global optimum"
            elif not self.relaxation_tight:
                claim = (f"no restart certified: in dimension {self.dim} < rank {self.optimum.rank} of the "
                         "relaxation's optimum no certificate can hold; its value is a lower bound only")
            else:
                claim = f"no restart certified global (0 of {R})"
            if not self.problem.loss.scalar_objective:
                claim += (" (fixed points of the coordinate-wise dynamics, certified on their own "
                          "fixed-alpha program)")
        if unconverged:
            claim += f"; {self._unconverged_text()}"
        return claim

    def _unconverged_text(self) -> str:
        """How many restarts did not converge, how they stopped, and how many of those are
        certified all the same (a certificate is judged on the end point alone)."""
        stopped = [r for r in self.restarts if not r.converged]
        reasons = {}
        for r in stopped:
            what = r.stop_reason.replace("_", " ")
            reasons[what] = reasons.get(what, 0) + 1
        how = ", ".join(f"{what}: {count}" for what, count in reasons.items())
        text = (f"{len(stopped)} did not converge (stopped before the gradient tolerance; {how}) and are "
                "left out of the census")
        certified = sum(r.certified for r in stopped)
        if certified:
            text += f"; {certified} of them certified all the same"
        return text

    def arrays(self) -> dict:
        """What ``ufm verify --out`` saves in arrays.npz: :func:`restart_arrays` of the end points."""
        return restart_arrays(self.problem.samples, self.run.H, [r.value for r in self.restarts],
                              [r.certified for r in self.restarts], self.dim)

    def to_dict(self) -> dict:
        p = self.problem
        values = np.array([r.value for r in self.restarts])
        excess = np.array([r.excess for r in self.restarts])
        best = float(excess.min())
        opt = self.optimum
        return {
            **p.describe(), "dim": self.dim,
            "convex_in_gram": p.loss.convex_in_gram, "certifiable": self.certifiable,
            "optimal_value": None if opt is None else opt.value,
            "optimum_rank": None if opt is None else opt.rank,
            "floor": p.floor(), "optimal_excess": None if opt is None else opt.certificate.excess,
            "optimum_certificate": None if opt is None else opt.certificate.to_dict(),
            "relaxation_tight": self.relaxation_tight,
            "fraction_global": self.fraction_global,
            "converged": self.converged,
            "distinct_minima": self.distinct_minima,
            "same_point_tol": SAME_POINT_TOL,
            "best_value": float(values[np.argmin(excess)]),
            "fraction_best": float(np.mean(excess <= best * (1 + 1e-9))),
            "claim": self.claim(),
            "optimizer": self.run.method, "collapse_snapping": self.run.snap,
            "device": self.run.device, "dtype": self.run.dtype,
            "certificate_how": self.certificate_how,
            "restarts": [r.to_dict() for r in self.restarts],
            "time_s": self.timings.get("total"), "timings": self.timings,
        }


def restart_arrays(samples, H, values, certified, dim: int) -> dict:
    """End points in the user's sample order: ``restarts`` (R, n, d) float64 unit rows,
    ``values`` (R,), ``certified`` (R,) bool (each restart's own certificate; False where none
    exists) and ``labels`` (n,), the user's label of every row.

    The solvers keep samples sorted by class (:class:`ufm.samples.Samples`); ``samples.order[i]``
    is the user's index of stored sample i, so row j of the user's order is stored row
    ``argsort(order)[j]``. Saved rows therefore line up with the labels the user gave, and
    ``ufm certify --embeddings`` with those labels re-certifies them."""
    n = samples.n
    H = np.asarray(H, dtype=np.float64).reshape(-1, n, dim)
    labels = np.asarray(samples.class_labels)[samples.labels]
    if samples.order is not None:
        rows = np.argsort(samples.order)
        H, labels = H[:, rows], labels[rows]
    return {"restarts": np.ascontiguousarray(H), "values": np.asarray(values, dtype=np.float64).reshape(-1),
            "certified": np.asarray(certified, dtype=bool).reshape(-1), "labels": labels}


def default_dim(problem: Problem) -> int:
    """k - 1 (where the relaxation is tight for SupCon and the instance simplex fits), and never
    1 (see :func:`optimize`)."""
    return max(problem.k - 1, 2)


def verify(problem: Problem, dim: int | None = None, restarts: int = 8, method: str = "lbfgs",
           device: str = "auto", seed: int = 0, tol: float = CERTIFY_TOL,
           grad_tol: float | None = None, max_iter: int = 5000, hessian: bool | None = None,
           progress: bool = False, precision: str = "auto", snap: bool = True) -> VerifyResult:
    """Optimise from ``restarts`` random starts in dimension ``dim`` (default
    :func:`default_dim`) and compare every end point with the certified convex optimum (where the
    loss has a convex relaxation; otherwise the census alone)."""
    dim = default_dim(problem) if dim is None else dim
    t0 = time.perf_counter()
    loss, samples = problem.loss, problem.samples
    reason = problem.degenerate()
    if reason is not None:
        raise UFMInputError("--counts", f"degenerate problem: {reason}")
    optimum = solve(problem, tol=tol) if loss.has_relaxation else None
    t1 = time.perf_counter()
    if loss.scalar_objective:
        run = optimize(problem, dim, restarts, method, device, seed, grad_tol, max_iter,
                       progress=progress, precision=precision, snap=snap)
    else:
        from solvers.dynamics import coordinate_restarts

        run = coordinate_restarts(problem, dim, restarts, seed, grad_tol, max_iter, device)
    t2 = time.perf_counter()
    H_ref = None if optimum is None else optimum.embeddings(lift=True)
    ref_cos = None if optimum is None else optimum.class_gram()
    labels = problem.labels
    if hessian is None:
        hessian = problem.n * dim <= HESSIAN_MAX_COORDS and loss.scalar_objective
    reports, how = [], "no certificate (the loss has no convex relaxation)"
    ex_star = None if optimum is None else optimum.certificate.excess
    floor_star = None if optimum is None else optimum.certificate.floor
    scale_star = None if optimum is None else optimum.certificate.scale
    for r, H in enumerate(run.H):
        cert = None
        if optimum is not None:
            cert = certify_embeddings(loss, H, samples, tol, device=run.device)
            how = cert.how
        excess = float(run.values[r] - problem.floor()) if cert is None else cert.excess
        value = float(run.values[r]) if cert is None else cert.value
        # value - optimal value, without cancellation where the floors agree (alpha-CL's floor is
        # the point's own fixed-alpha program's)
        floor_r = problem.floor() if cert is None else cert.floor
        gap = None if ex_star is None else (floor_r - floor_star) + (excess - ex_star)
        reports.append(RestartReport(
            value=value, excess=excess, gap=gap,
            rel_gap=None if gap is None else gap / max(ex_star, 1e-300),
            gap_over_scale=None if gap is None else gap / max(scale_star, 1e-300),
            gram_distance=None if H_ref is None else metrics.gram_distance(H, H_ref),
            procrustes_distance=None if H_ref is None else metrics.procrustes_distance(H, H_ref),
            class_gram_difference=None if ref_cos is None else
            float(np.abs(metrics.class_mean_cosines(H, labels) - ref_cos).max()),
            grad_norm=float(run.grad_norms[r]), certificate=cert,
            stop_reason=run.reasons[r].value, iterations=int(run.iterations[r]), cluster=None,
            hessian=riemannian_hessian_extremes(loss, H, samples) if hessian else None,
            class_certificate=None if optimum is None else
            certify_collapsed(loss, H, samples, tol, collapse_tol=1e-6),
        ))
    converged = [i for i, rep in enumerate(reports) if rep.converged]
    for i, c in zip(converged, cluster([run.H[i] for i in converged]), strict=True):
        reports[i].cluster = int(c)
    t3 = time.perf_counter()
    timings = {"convex": t1 - t0, "optimize": t2 - t1, "certify": t3 - t2, "total": t3 - t0}
    return VerifyResult(problem, dim, optimum, run, reports, how, timings)
