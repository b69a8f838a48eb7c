"""Factored (Burer-Monteiro) float64 solve of the symmetry-reduced program.

Every group-symmetric feasible G is described by one unit vector per group,
z_g = (x_g, s_g, t_g) in R^(r+2) (DESIGN section 4):

* x_g is the group mean of the class means (C = Gram of sqrt(k_g) x_g, r = q columns
  so that every PSD C is reachable);
* s_g spreads the k_g classes of the group along a private regular simplex
  (same_g = |x_g|^2 - s_g^2 / (k_g - 1));
* t_g spreads the samples of each class along a private regular simplex
  (within_g = |x_g|^2 + s_g^2 - t_g^2 / (n_g - 1)); class-mean norm^2 is 1 - t_g^2.

z_g = y_g / |y_g| is optimised by L-BFGS over free y (the h = v/|v| parametrisation of
DESIGN section 7). The objective is log(f - floor), the log of the excess over the loss's
floor, with distances 1 - G taken from the factors without cancellation, so the geometry is
resolved at any tau (at tau = 0.001 the excess is about exp(-1500), far below float64's
range, while its log is an ordinary number).

Collapse is never assumed: the first phase holds t = 0 (collapsed classes), then the exact
certificate of the full problem is checked, and any group whose within-class block shows a
negative eigenvalue is released (t free) and re-solved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from solvers.lbfgs import StopReason, lbfgs
from ufm.structure import GroupGram, Groups

#: below this many groups the factored solve runs BLAS on one thread
BLAS_THREADS_MIN_Q = 500


def gram_from_factors(groups: Groups, Z: np.ndarray) -> GroupGram:
    X, s, t = Z[:, :-2], Z[:, -2], Z[:, -1]
    n_g, k_g = groups.count.astype(float), groups.size.astype(float)
    P = X @ X.T
    p = np.diag(P).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(groups.count >= 2, p + s**2 - t**2 / (n_g - 1), 1.0)
        same = np.where(groups.size >= 2, p - s**2 / (k_g - 1), 0.0)
    return GroupGram(p + s**2 + t**2, within, same, P)


def distances_from_factors(groups: Groups, Z: np.ndarray) -> GroupGram:
    """1 - G entries of :func:`gram_from_factors`, without cancellation: inside a class
    1 - within_g = t_g^2 n_g / (n_g - 1), between classes of a group 1 - same_g =
    t_g^2 + s_g^2 k_g / (k_g - 1) (exact 0 at collapse, where 1 - G is round-off)."""
    X, s, t = Z[:, :-2], Z[:, -2], Z[:, -1]
    n_g, k_g = groups.count.astype(float), groups.size.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(groups.count >= 2, t**2 * n_g / (n_g - 1), 0.0)
        same = np.where(groups.size >= 2, t**2 + s**2 * k_g / (k_g - 1), 0.0)
    return GroupGram(np.zeros(groups.q), within, same, 1.0 - X @ X.T)


def factors_from_gram(groups: Groups, gram: GroupGram, r: int | None = None) -> np.ndarray:
    """Unit rows (x, s, t) reproducing a feasible group-symmetric Gram (e.g. a CVXPY solution)."""
    q = groups.q
    k_g, n_g = groups.size.astype(float), groups.count.astype(float)
    d = np.where(groups.count >= 2, (1 + (n_g - 1) * gram.within) / n_g, 1.0)
    d = np.clip(d, 0.0, 1.0)
    same = np.where(groups.size >= 2, gram.same, 0.0)
    C = np.sqrt(np.outer(k_g, k_g)) * gram.cross
    np.fill_diagonal(C, d + (k_g - 1) * same)
    w, U = np.linalg.eigh(C)
    X = U * np.sqrt(np.clip(w, 0.0, None)) / np.sqrt(k_g)[:, None]
    r = q if r is None else r
    Xr = np.zeros((q, r))
    Xr[:, : min(r, q)] = X[:, ::-1][:, : min(r, q)]
    s2 = np.where(groups.size >= 2, np.clip(d - same, 0.0, None) * (k_g - 1) / k_g, 0.0)
    t2 = np.clip(1.0 - d, 0.0, None)
    Z = np.column_stack([Xr, np.sqrt(s2), np.sqrt(t2)])
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def initial_factors(groups: Groups, seed: int = 0) -> np.ndarray:
    """Group means on a regular simplex, classes spread inside groups, samples collapsed,
    plus a small seeded perturbation that breaks the simplex's symmetry."""
    q = groups.q
    rng = np.random.default_rng(seed)
    X = np.eye(q) - 1.0 / q if q > 1 else np.ones((1, 1))
    X = X + 1e-3 * rng.standard_normal((q, q)) / np.sqrt(q)
    norms = np.linalg.norm(X, axis=1)
    X = X / np.where(norms > 0, norms, 1.0)[:, None]
    s = np.where(groups.size >= 2, 1.0, 0.0)
    Z = np.column_stack([X, s, np.zeros(q)])
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


class _Objective:
    """log(f - floor)(z(y)) / scale and its gradient in y; ``free`` masks the optimised
    entries of y.

    Also keeps a diagonal preconditioner per row of y: absolute row sums of the Hessian's
    main block 2 Gamma (Gamma = gradient of f in the group-mean Gram), over |y_g|^2.
    """

    def __init__(self, loss, groups: Groups, tau: float, free: np.ndarray, scale: float = 1.0):
        self.loss, self.groups, self.tau, self.free, self.scale = loss, groups, tau, free, scale
        n_g, k_g = groups.count.astype(float), groups.size.astype(float)
        self.mult_within = k_g * n_g * (n_g - 1)  # ordered sample pairs inside classes of g
        self.mult_same = k_g * (k_g - 1) * n_g**2
        self.w = k_g * n_g
        self.row_curvature = np.ones(groups.q)

    def __call__(self, yflat):
        groups, free = self.groups, self.free
        k_g, n_g = groups.size.astype(float), groups.count.astype(float)
        Y = yflat.reshape(free.shape) * free
        norms = np.linalg.norm(Y, axis=1)
        Z = Y / norms[:, None]
        X, s, t = Z[:, :-2], Z[:, -2], Z[:, -1]
        value, g = self.loss.group_log_excess(groups, distances_from_factors(groups, Z), self.tau)
        d_within = self.mult_within * g.within
        d_same = self.mult_same * g.same
        Gam = np.outer(self.w, self.w) * g.cross
        np.fill_diagonal(Gam, d_within + d_same)
        gZ = np.empty_like(Z)
        gZ[:, :-2] = 2.0 * Gam @ X
        with np.errstate(divide="ignore", invalid="ignore"):
            gZ[:, -2] = np.where(groups.size >= 2, 2 * s * (d_within - d_same / (k_g - 1)), 0.0)
            gZ[:, -1] = np.where(groups.count >= 2, -2 * t * d_within / (n_g - 1), 0.0)
        gY = (gZ - np.einsum("ij,ij->i", gZ, Z)[:, None] * Z) / norms[:, None]
        # |d_within| + |d_same| rather than |their sum|: the two cancel when only their
        # difference matters (a balanced orbit), which would leave no curvature estimate
        absgam = np.abs(Gam)
        np.fill_diagonal(absgam, np.abs(d_within) + np.abs(d_same))
        curv = 2.0 * absgam.sum(axis=1) / self.scale / norms**2
        top = curv.max()
        self.row_curvature = np.maximum(curv, 1e-8 * top) if top > 0 else np.ones_like(curv)
        self._diag = None
        return value / self.scale, (gY * free).ravel() / self.scale

    def hessian_diag(self):
        if getattr(self, "_diag", None) is None:  # one array per evaluated point
            self._diag = np.repeat(self.row_curvature, self.free.shape[1])
        return self._diag


def _unit_rows(Y: np.ndarray) -> np.ndarray:
    return Y / np.linalg.norm(Y, axis=1, keepdims=True)


@dataclass
class FactoredRun:
    Z: np.ndarray
    iterations: int
    converged: bool
    reason: StopReason
    seconds: float


def minimize_factored(
    loss,
    groups: Groups,
    tau: float,
    Z0: np.ndarray,
    release: np.ndarray | None = None,
    max_iter: int = 20000,
    done=None,
) -> FactoredRun:
    """Preconditioned L-BFGS on the factored reduced program from unit rows Z0.

    ``release`` marks groups whose within-class spread t_g is optimised; elsewhere t_g = 0.
    ``done(Z)``, when given, is asked every 25 iterations whether the point is good enough
    (e.g. certified) to stop.
    """
    t0 = time.perf_counter()
    q = groups.q
    release = np.zeros(q, dtype=bool) if release is None else release
    free = np.ones_like(Z0)
    free[:, -2] = groups.size >= 2
    free[:, -1] = release & (groups.count >= 2)
    Y0 = Z0 * free
    Y0 = Y0 / np.linalg.norm(Y0, axis=1, keepdims=True)
    fun = _Objective(loss, groups, tau, free)
    # small matrices: BLAS threads only spin against each other (8x slower at q = 100)
    with threadpool_limits(1 if q < BLAS_THREADS_MIN_Q else None):
        f0 = fun(Y0.ravel())[0]
        fun.scale = abs(f0) if f0 != 0 and np.isfinite(f0) else 1.0
        check = None if done is None else (lambda y: done(_unit_rows(y.reshape(Z0.shape) * free)))
        res = lbfgs(fun, Y0.ravel(), hessian_diag=fun.hessian_diag, max_iter=max_iter, memory=8,
                    done=check)
    Y = res.x.reshape(Z0.shape) * free
    Z = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    return FactoredRun(Z, res.iterations, res.converged, res.reason, time.perf_counter() - t0)
