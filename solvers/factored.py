"""Factored (Burer-Monteiro) float64 solve of a symmetry-reduced program.

Every invariant feasible G is described by unit-vector factors Z (``ufm.symmetry``: one row per
group of classes (x_g, s_g, t_g), or one row of eigenspace weights for instances x views). The
rows z = y / |y| are optimised by L-BFGS over free y (the h = v/|v| parametrisation of DESIGN
section 7). The objective is log(f - floor), the log of the excess over the loss's floor, with
distances 1 - G taken from the factors without cancellation, so the geometry is resolved at any
tau (at tau = 0.001 the excess is about exp(-1500), far below float64's range, while its log is an
ordinary number).

A loss whose floor is attained (the spectral loss) has log(f - floor) = -inf at its optimum: the
L-BFGS stops where the excess is 0 within round-off (``Loss.floor_tolerance``; stop reason FLOOR)
instead of chasing log(0).

Collapse is never assumed: the first phase holds the collapse coordinates at 0 (collapsed classes,
aligned views), then the exact certificate of the full problem is checked, and any unit whose
spread directions show a negative eigenvalue is released and re-solved (``solvers.solve``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from solvers.lbfgs import StopReason, lbfgs

#: below this many factor rows the factored solve runs BLAS on one thread
BLAS_THREADS_MIN_Q = 500
#: from this many factor rows an L-BFGS iteration costs more than a certificate check, so the
#: solve asks for the certificate as soon as the gradient has dropped (k = 1000 distinct counts,
#: tau 1: certified at iteration 10, not at the check of iteration 25); below it the schedule stays
#: every 25 iterations and small problems run on to round-off past the certificate's margin
DONE_SOONER_MIN_Q = 500


class _Objective:
    """log(f - floor)(z(y)) / scale and its gradient in y; ``free`` masks the optimised entries
    of y. Also keeps a diagonal preconditioner per row of y (the symmetry's curvature estimate
    over |y_g|^2)."""

    def __init__(self, loss, symmetry, samples, free: np.ndarray, scale: float = 1.0):
        self.loss, self.symmetry, self.samples, self.free, self.scale = loss, symmetry, samples, free, scale
        self.table = symmetry.table
        self.row_curvature = np.ones(free.shape[0])

    def __call__(self, yflat):
        free = self.free
        Y = yflat.reshape(free.shape) * free
        norms = np.linalg.norm(Y, axis=1)
        Z = Y / norms[:, None]
        value, totals = self.loss.table_log_excess(self.table, self.symmetry.distances_from_factors(Z),
                                                   self.samples)
        gZ, curv = self.symmetry.factor_gradient(Z, totals)
        gY = (gZ - np.einsum("ij,ij->i", gZ, Z)[:, None] * Z) / norms[:, None]
        curv = curv / self.scale / norms**2
        top = curv.max()
        self.row_curvature = np.maximum(curv, 1e-8 * top) if top > 0 else np.ones_like(curv)
        self._diag = None
        return value / self.scale, (gY * free).ravel() / self.scale

    def hessian_diag(self):
        if getattr(self, "_diag", None) is None:  # one array per evaluated point
            self._diag = np.repeat(self.row_curvature, self.free.shape[1])
        return self._diag


def log_floor_tolerance(loss, samples) -> float:
    """log of the excess below which a loss whose floor is attained is at its floor
    (``Loss.floor_tolerance``); -inf for every other loss. The objective log(f - floor) stops
    there instead of chasing log(0)."""
    tol = loss.floor_tolerance(samples)
    return float(np.log(tol)) if tol > 0 else -np.inf


def _unit_rows(Y: np.ndarray) -> np.ndarray:
    return Y / np.linalg.norm(Y, axis=1, keepdims=True)


@dataclass
class FactoredRun:
    Z: np.ndarray
    iterations: int
    converged: bool
    reason: StopReason
    seconds: float


def minimize_factored(loss, symmetry, samples, Z0: np.ndarray, release: np.ndarray | None = None,
                      max_iter: int = 20000, done=None, callback=None) -> FactoredRun:
    """Preconditioned L-BFGS on the factored reduced program from unit rows Z0.

    ``release`` marks the collapse units whose spread is optimised; elsewhere it is held at 0.
    ``done(Z)``, when given, is asked every 25 iterations whether the point is good enough
    (e.g. certified) to stop; ``callback(iteration, log excess)`` is called after every iteration.
    """
    t0 = time.perf_counter()
    release = np.zeros(symmetry.collapse_units, dtype=bool) if release is None else release
    free = symmetry.free_mask(release)
    Y0 = Z0 * free
    Y0 = Y0 / np.linalg.norm(Y0, axis=1, keepdims=True)
    fun = _Objective(loss, symmetry, samples, free)
    # small matrices: BLAS threads only spin against each other (8x slower at q = 100)
    with threadpool_limits(1 if Z0.shape[0] < BLAS_THREADS_MIN_Q else None):
        f0 = fun(Y0.ravel())[0]
        fun.scale = abs(f0) if f0 != 0 and np.isfinite(f0) else 1.0
        check = None if done is None else (lambda y: done(_unit_rows(y.reshape(Z0.shape) * free)))
        report = None if callback is None else (lambda it, f: callback(it, f * fun.scale))
        res = lbfgs(fun, Y0.ravel(), hessian_diag=fun.hessian_diag, max_iter=max_iter, memory=8,
                    done=check, fmin=log_floor_tolerance(loss, samples) / fun.scale, callback=report,
                    done_sooner=Z0.shape[0] >= DONE_SOONER_MIN_Q)
    Y = res.x.reshape(Z0.shape) * free
    Z = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    return FactoredRun(Z, res.iterations, res.converged, res.reason, time.perf_counter() - t0)


@dataclass
class NewtonRun:
    Z: np.ndarray
    steps: int
    cg_iterations: int
    seconds: float


def newton_polish(loss, symmetry, samples, Z: np.ndarray, release, gap, target: float,
                  max_steps: int = 4, cg_iters: int = 40) -> NewtonRun:
    """Newton-CG steps on the factored objective from Z, kept while they lower ``gap(Z)`` (the
    certificate's gap relative to the excess), until it is at most ``target``.

    Near the optimum log(f - floor) stops moving in float64 long before the first-order condition
    is met to the accuracy a certificate needs (at k = 1000 classes: a gap of 1e-5 of the excess
    when L-BFGS stalls): line searches on f cannot see the progress left. A Newton step needs no
    line search: preconditioned CG on H p = -g with Hessian-vector products from central
    differences of the gradient (which keeps its accuracy where f does not) converges
    quadratically (measured there: 4e-6 -> 3e-7 -> 4e-8 of the excess per step).
    """
    t0 = time.perf_counter()
    free = symmetry.free_mask(release)
    fun = _Objective(loss, symmetry, samples, free)
    y = (Z * free).ravel()
    with threadpool_limits(1 if Z.shape[0] < BLAS_THREADS_MIN_Q else None):
        f0 = fun(y)[0]
        fun.scale = abs(f0) if f0 != 0 and np.isfinite(f0) else 1.0
        best_gap, cg_total, steps = gap(Z), 0, 0
        for _ in range(max_steps):
            if best_gap <= target:
                break
            _, g = fun(y)
            d = fun.hessian_diag().copy()
            x, cg = _pcg(lambda v, y=y: _hessian_vector(fun, y, v), g, d, cg_iters)
            cg_total += cg
            y_new = y + x
            Y = y_new.reshape(Z.shape) * free
            Z_new = Y / np.linalg.norm(Y, axis=1, keepdims=True)
            new_gap = gap(Z_new)
            steps += 1
            if not new_gap < best_gap:
                break
            y, Z, best_gap = y_new, Z_new, new_gap
    return NewtonRun(Z, steps, cg_total, time.perf_counter() - t0)


def _hessian_vector(fun, y, v, rel_step: float = 1e-6):
    """H v by central differences of the gradient (error O(step^2) + round-off / step)."""
    s = rel_step / max(float(np.abs(v).max()), 1e-300)
    return (fun(y + s * v)[1] - fun(y - s * v)[1]) / (2 * s)


def _pcg(hv, g, d, max_iter: int, rtol: float = 1e-3):
    """Preconditioned conjugate gradients for H x = -g (diagonal preconditioner d), stopping at
    negative curvature (the iterate so far is a descent direction)."""
    x = np.zeros_like(g)
    r = -g
    z = r / d
    p = z.copy()
    rz = float(r @ z)
    gnorm = float(np.linalg.norm(g))
    k = 0
    for k in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        Ap = hv(p)
        pAp = float(p @ Ap)
        if pAp <= 0:
            break
        a = rz / pAp
        x = x + a * p
        r = r - a * Ap
        if np.linalg.norm(r) <= rtol * gnorm:
            break
        z = r / d
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, k
