"""Does gradient descent find the global optimum? Restarts, each compared with the convex
optimum up to rotation and certified, and a census of the end points."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from solvers.certificate import Certificate, certify_collapsed, certify_embeddings
from solvers.nonconvex import RestartsResult, StopReason, cpu_threads_for, optimize
from solvers.options import VERIFY_OPTIONS
from solvers.result import SolveResult
from solvers.solve import solve
from ufm import metrics
from ufm import progress as progress_bars
from ufm.errors import UFMInputError
from ufm.matching import Census, Relabellings, census
from ufm.options import defaults
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


#: the declared defaults of verify's options (``solvers.options.VERIFY_OPTIONS``; how restarts may
#: start: ``solvers.options.INITS``)
DEFAULTS = defaults(VERIFY_OPTIONS)


def starts(problem: Problem, dim: int, restarts: int, seed: int, init: str = DEFAULTS.init):
    """(R, n, d) starting points and the kind of each ("random" or "aligned"). An aligned start
    draws one uniform point per instance and gives it to all its views: where a loss has a
    minorant equal to it on aligned views (KCL) its minima are there."""
    import torch

    from solvers.nonconvex import random_start

    VERIFY_OPTIONS["init"].parse(init, "init")
    samples = problem.samples
    kinds = ["random" if init == "random" or (init == "both" and r % 2 == 0) else "aligned"
             for r in range(restarts)]
    H = random_start(restarts, problem.n, dim, seed, torch.float64, "cpu").numpy()
    if "aligned" in kinds:
        if samples.grid is None:
            raise UFMInputError("init", "aligned starts need instances seen in views (instances x "
                                f"views); these samples are {samples.kind}")
        N, V = samples.grid
        for r, kind in enumerate(kinds):
            if kind == "aligned":
                Hr = H[r].reshape(N, V, dim)
                Hr[:] = Hr[:, :1]
    return H, kinds


def cluster(points: list[np.ndarray], tol: float = SAME_POINT_TOL) -> np.ndarray:
    """Greedy clustering of end points by Gram distance, up to rotation only (no relabelling);
    returns a cluster id per point (``distinct_minima_up_to_rotation``): the census of
    ``ufm.matching`` with the rotations-only group, visiting the points in their order."""
    if not points:
        return np.array([], dtype=np.int64)
    group = Relabellings("rotations", np.zeros(np.asarray(points[0]).shape[0], dtype=np.int64))
    return census(points, range(len(points)), group, tol).cluster


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
    grad_norm: float | None  # of log(f - floor); None at the floor, where that log is -inf
    certificate: Certificate | None  # None where no global certificate exists
    stop_reason: str
    iterations: int
    cluster: int | None  # None for end points that did not converge
    hessian: tuple | None = None  # (smallest eigenvalue, largest |eigenvalue|)
    class_certificate: Certificate | None = None  # exact class-level one, when H is collapsed
    gap_over_scale: float | None = None  # gap / the optimum's scale (what the geometry controls)
    init: str = "random"  # how the restart started
    rotation_cluster: int | None = None  # cluster up to rotation only (no relabelling)
    map_distance: float | None = None  # Gram distance to its minimum's representative after the map
    relabelled: bool | None = None  # the map onto the representative permutes samples

    @property
    def certified(self) -> bool:
        return self.certificate is not None and self.certificate.certified

    @property
    def converged(self) -> bool:
        """The optimiser's own stopping rule said so: it stopped on its gradient tolerance, or at
        the loss's floor (excess 0 within round-off: no lower value exists). An end point at the
        iteration limit, or stalled, is never called converged, even where its certificate holds
        (``certified`` says that, on its own)."""
        return self.stop_reason in (StopReason.GRADIENT_TOL.value, StopReason.FLOOR.value)

    @property
    def kind(self) -> str | None:
        """not_converged; saddle (a negative Hessian eigenvalue below -SADDLE_REL_TOL x the
        largest); flat_min (no negative one, but a zero mode beyond rotations within that
        tolerance: second order cannot tell, and the minimum need not be isolated: minima of equal
        value may be points of one connected set); local_min; None without a Hessian."""
        if not self.converged:
            return "not_converged"
        if self.stop_reason == StopReason.FLOOR.value:
            return "local_min"  # the value is the floor, a lower bound: a global minimum
        if self.hessian is None:
            return None
        lo, top = self.hessian
        if lo < -SADDLE_REL_TOL * max(top, 1e-300):
            return "saddle"
        return "flat_min" if lo <= SADDLE_REL_TOL * top else "local_min"

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
                "iterations": self.iterations, "cluster": self.cluster, "init": self.init,
                "rotation_cluster": self.rotation_cluster, "map_distance": self.map_distance,
                "relabelled": self.relabelled,
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
    census: Census | None = None  # distinct minima up to the problem's relabellings and rotation

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
        """Distinct minima among the converged end points: two are one when a relabelling in the
        problem's symmetry and an orthogonal map carry one onto the other within Gram distance
        SAME_POINT_TOL (``ufm.matching``); said only with the map found."""
        return len({r.cluster for r in self.restarts if r.cluster is not None})

    @property
    def distinct_minima_up_to_rotation(self) -> int:
        """Clusters up to rotation alone (no relabelling): Gram distance <= SAME_POINT_TOL."""
        return len({r.rotation_cluster for r in self.restarts if r.rotation_cluster is not None})

    @property
    def flat_minima(self) -> int:
        """Distinct minima whose Hessian has a zero mode beyond rotations (``flat_min``)."""
        return sum(m["kind"] == "flat_min" for m in self.minima)

    @property
    def minima(self) -> list[dict]:
        """The distinct minima, best first: value, excess, how many restarts reached it (its basin
        among the starts), which start kinds, its representative's Hessian, kind and certificate."""
        out = []
        for c in sorted({r.cluster for r in self.restarts if r.cluster is not None}):
            members = [i for i, r in enumerate(self.restarts) if r.cluster == c]
            rep = self.census.representatives[c] if self.census is not None else members[0]
            r = self.restarts[rep]
            inits = {}
            for i in members:
                inits[self.restarts[i].init] = inits.get(self.restarts[i].init, 0) + 1
            out.append({"minimum": c, "value": r.value, "excess": r.excess, "gap": r.gap,
                        "gap_over_scale": r.gap_over_scale, "restarts": len(members), "starts": inits,
                        "hessian_min": None if r.hessian is None else r.hessian[0], "kind": r.kind,
                        "certified": r.certified if r.certificate is not None else None,
                        "certified_restarts": sum(self.restarts[i].certified for i in members),
                        "representative": rep, "members": members})
        return out

    def claim(self) -> str:
        R = len(self.restarts)
        unconverged = R - self.converged
        if not self.certifiable:
            m = self.distinct_minima
            claim = (f"{self.problem.loss.name} is not convex in G and has no convex relaxation: no global "
                     f"certificate exists; {m} distinct {'minimum' if m == 1 else 'minima'} among "
                     f"{self.converged} converged restarts (the census only)")
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
                          f"{self.problem.loss.fixed_point_program})")
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
        out = restart_arrays(self.problem.samples, self.run.H, [r.value for r in self.restarts],
                             [r.certified for r in self.restarts], self.dim)
        out.update(census_arrays(self.problem.samples, self.restarts, self.census, self.dim))
        return out

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
            "distinct_minima_up_to_rotation": self.distinct_minima_up_to_rotation,
            "census_symmetry": None if self.census is None else self.census.symmetry,
            "census_unresolved": None if self.census is None else self.census.unresolved,
            "minima": self.minima,
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


def census_arrays(samples, restarts, found: Census | None, dim: int) -> dict:
    """The census's maps, in the user's sample order: ``cluster`` (R,) each restart's minimum
    (-1: not converged); ``map_permutation`` (R, n): row j of a restart is row
    ``map_permutation[r, j]`` of its minimum's representative after the map; ``map_rotation``
    (R, d, d): ``restart @ map_rotation ~ representative[map_permutation]`` (identity for a
    representative; NaN where a restart is in no minimum)."""
    R, n = len(restarts), samples.n
    perm = np.tile(np.arange(n), (R, 1))
    rot = np.tile(np.eye(dim), (R, 1, 1))
    cl = np.array([-1 if r.cluster is None else r.cluster for r in restarts], dtype=np.int64)
    for i, r in enumerate(restarts):
        m = None if found is None else found.matches[i]
        if m is not None:
            perm[i], rot[i] = m.permutation, m.rotation
        elif r.cluster is None:
            rot[i] = np.nan
    if samples.order is not None:  # stored row s is the user's row order[s]
        order = np.asarray(samples.order)
        rows = np.argsort(order)
        perm = order[perm[:, rows]]
    return {"cluster": cl, "map_permutation": perm, "map_rotation": rot}


def default_dim(problem: Problem) -> int:
    """k - 1 (where the relaxation is tight for SupCon and the instance simplex fits), and never
    1 (see :func:`optimize`)."""
    return max(problem.k - 1, 2)


def _census(problem: Problem, H, reports: list[RestartReport], tol: float) -> Census:
    """Cluster the converged end points, up to rotation alone and up to the problem's
    relabellings and rotation (best first), and record each report's minimum and map."""
    converged = [i for i, rep in enumerate(reports) if rep.converged]
    for i, c in zip(converged, cluster([H[i] for i in converged], tol), strict=True):
        reports[i].rotation_cluster = int(c)
    best_first = sorted(converged, key=lambda i: (reports[i].excess, i))
    found = census(list(H), best_first, Relabellings.of(problem.loss, problem.samples), tol)
    for i in converged:
        reports[i].cluster = int(found.cluster[i])
        m = found.matches[i]
        reports[i].map_distance = 0.0 if m is None else m.distance
        reports[i].relabelled = False if m is None else m.relabelled
    return found


def _check(values: dict) -> dict:
    """verify's arguments checked by their declarations (errors name the parameter)."""
    return {name: VERIFY_OPTIONS[name].parse(value, name) for name, value in values.items()}


def verify(problem: Problem, dim: int | None = DEFAULTS.dim, restarts: int = DEFAULTS.restarts,
           optimizer: str = DEFAULTS.optimizer, device: str = DEFAULTS.device, seed: int = DEFAULTS.seed,
           tol: float = DEFAULTS.tol, grad_tol: float | None = None, max_iter: int = DEFAULTS.max_iter,
           hessian: bool | None = None, progress: bool = False, precision: str = DEFAULTS.precision,
           snap: bool = DEFAULTS.snap, init: str = DEFAULTS.init,
           census_tol: float = SAME_POINT_TOL) -> VerifyResult:
    """Optimise from ``restarts`` starts (``init``: see :func:`starts`) in dimension ``dim``
    (default :func:`default_dim`) with ``optimizer``, compare every end point with the certified
    convex optimum (where the loss has a convex relaxation) and count the distinct minima up to the
    problem's relabellings and rotation (``ufm.matching``). Errors name the parameter at fault
    (``UFMInputError("restarts", ...)``); the options are declared in ``solvers.options``."""
    dim = default_dim(problem) if dim is None else dim
    args = _check({"dim": dim, "restarts": restarts, "optimizer": optimizer, "device": device,
                   "tol": tol, "max_iter": max_iter, "precision": precision, "snap": snap, "init": init})
    restarts, tol, max_iter = args["restarts"], args["tol"], args["max_iter"]
    t0 = time.perf_counter()
    loss = problem.loss
    reason = problem.degenerate()
    if reason is not None:
        raise UFMInputError("problem", f"degenerate problem: {reason}")
    H0, inits = starts(problem, dim, restarts, seed, init) if init != "random" \
        else (None, ["random"] * int(restarts))
    optimum = solve(problem, tol=tol) if loss.has_relaxation else None
    t1 = time.perf_counter()
    if loss.scalar_objective:
        run = optimize(problem, dim, restarts, optimizer, device, seed, grad_tol, max_iter, H0=H0,
                       progress=progress, precision=precision, snap=snap)
    else:
        from solvers.dynamics import coordinate_restarts

        run = coordinate_restarts(problem, dim, restarts, seed, grad_tol, max_iter, device, H0=H0)
    t2 = time.perf_counter()
    if hessian is None:
        hessian = problem.n * dim <= HESSIAN_MAX_COORDS and loss.scalar_objective
    # small problems: one thread (beside a busy process, all threads cost up to 100x)
    with cpu_threads_for(restarts * problem.n ** 2 * dim, run.device):
        reports, how = _restart_reports(problem, run, optimum, tol, hessian, inits, progress)
        t3 = time.perf_counter()
        found = _census(problem, run.H, reports, census_tol)
    t4 = time.perf_counter()
    timings = {"convex": t1 - t0, "optimize": t2 - t1, "certify": t3 - t2, "census": t4 - t3,
               "total": t4 - t0}
    return VerifyResult(problem, dim, optimum, run, reports, how, timings, found)


def _restart_reports(problem, run, optimum, tol, hessian, inits, progress) -> tuple[list, str]:
    """Each end point's report (its certificate, its gap to the optimum, its distances to it) and
    how the certificates were decided."""
    loss, samples, labels = problem.loss, problem.samples, problem.labels
    H_ref = None if optimum is None else optimum.embeddings(lift=True)
    ref_cos = None if optimum is None else optimum.class_gram()
    at_floor = loss.floor_tolerance(samples)  # 0 for a loss whose floor is never attained
    reports, how = [], "no certificate (the loss has no convex relaxation)"
    ex_star = None if optimum is None else optimum.certificate.excess
    floor_star = None if optimum is None else optimum.certificate.floor
    scale_star = None if optimum is None else optimum.certificate.scale
    certifying = progress_bars.bar("verify: certificates", total=len(run.H), unit="end point", when=progress)
    for r, H in enumerate(run.H):
        certifying.update()
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
        if gap is not None and abs(gap) <= at_floor and excess <= at_floor:
            gap = 0.0  # both at the floor: their excesses are round-off
        reports.append(RestartReport(
            value=value, excess=excess, gap=gap,
            rel_gap=None if gap is None or ex_star <= at_floor else gap / max(ex_star, 1e-300),
            gap_over_scale=None if gap is None else gap / max(scale_star, 1e-300),
            gram_distance=None if H_ref is None else metrics.gram_distance(H, H_ref),
            procrustes_distance=None if H_ref is None else metrics.procrustes_distance(H, H_ref),
            class_gram_difference=None if ref_cos is None else
            float(np.abs(metrics.class_mean_cosines(H, labels) - ref_cos).max()),
            grad_norm=None if run.reasons[r] == StopReason.FLOOR else float(run.grad_norms[r]),
            certificate=cert,
            stop_reason=run.reasons[r].value, iterations=int(run.iterations[r]), cluster=None,
            # at the floor log(f - floor) has no Hessian (f - floor is round-off): none reported
            hessian=riemannian_hessian_extremes(loss, H, samples)
            if hessian and run.reasons[r] != StopReason.FLOOR else None,
            class_certificate=None if optimum is None else
            certify_collapsed(loss, H, samples, tol, collapse_tol=1e-6), init=inits[r],
        ))
    certifying.close()
    return reports, how
