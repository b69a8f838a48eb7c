"""Coordinate-wise dynamics for losses without a scalar objective (alpha-CL, Tian 2022).

Each step: the max player sets alpha from the current geometry (stop-gradient); the min player
takes a descent step on E_alpha with alpha frozen (Armijo backtracking on the frozen objective,
Barzilai-Borwein step sizes); repeat. A fixed point is embeddings that are stationary for their
own fixed-alpha program; its certificate (``solvers.certificate``) says whether they are a global
optimum of that program.

Two forms: over the unit-vector factors of a symmetry-reduced G (:func:`coordinate_factored`,
used by ``solve``) and over H from batched restarts in torch (:func:`coordinate_restarts`, used
by ``verify``), each with per-restart steps and stopping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solvers.nonconvex import (
    GRAD_TOL,
    RestartsResult,
    StopReason,
    _backtrack,
    _normalise,
    _Progress,
    _reasons,
    check_dim,
    cpu_threads_for,
    resolve_device,
    riemannian_grad,
    starting_points,
)
from ufm.errors import UFMInputError


@dataclass
class DynamicsRun:
    Z: np.ndarray
    iterations: int
    converged: bool
    reason: StopReason
    seconds: float


def _frozen(loss, sym, samples, free, Y, dist_alpha):
    """Frozen-alpha log excess at factors Y and its gradient in Y."""
    Yf = Y * free
    norms = np.linalg.norm(Yf, axis=1)
    Z = Yf / norms[:, None]
    lex, totals = loss.frozen_table_log_excess(sym.table, sym.distances_from_factors(Z), dist_alpha, samples)
    gZ, _ = sym.factor_gradient(Z, totals)
    gY = (gZ - np.einsum("ij,ij->i", gZ, Z)[:, None] * Z) / norms[:, None]
    return lex, gY * free, Z


def _run_factored(loss, sym, samples, Z0, release, max_iter: int, gtol: float):
    free = sym.free_mask(release)
    Y = Z0 * free
    Y = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    step = 1e-2
    g_prev = y_prev = None
    it = 0
    reason = StopReason.ITERATION_LIMIT
    stall = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        Z = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        dist_alpha = sym.distances_from_factors(Z)
        f, g, _ = _frozen(loss, sym, samples, free, Y, dist_alpha)
        if np.max(np.abs(g)) <= gtol:
            reason = StopReason.GRADIENT_TOL
            break
        if g_prev is not None:
            s_vec, y_vec = (Y - y_prev).ravel(), (g - g_prev).ravel()
            sy = s_vec @ y_vec
            step = float(np.clip((s_vec @ s_vec) / sy, 1e-8, 1e3)) if sy > 0 else 2 * step
        slope = -float((g * g).sum())
        t, accepted = step, False
        for _ in range(40):
            Yn = Y - t * g
            fn, _, _ = _frozen(loss, sym, samples, free, Yn, dist_alpha)
            if np.isfinite(fn) and fn <= f + 1e-4 * t * slope + 8 * np.finfo(float).eps * abs(f):
                accepted = True
                break
            t *= 0.3
        if not accepted:
            stall += 1
            if stall >= 3:
                reason = StopReason.STALLED
                break
            continue
        stall = 0
        y_prev, g_prev = Y, g
        Y = Yn / np.linalg.norm(Yn, axis=1, keepdims=True)
        step = t
    Z = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    return Z, it, reason


def coordinate_factored(loss, sym, samples, Z0, max_iter: int = 20000, gtol: float = 1e-10) -> DynamicsRun:
    """The dynamics on the factors of a reduced G, collapse tested as in ``solvers.solve``: start
    collapsed, release units whose spread eigenvalue of the certificate matrix is negative."""
    from solvers.certificate import reduced_certificate_matrix

    t0 = time.perf_counter()
    release = np.zeros(sym.collapse_units, dtype=bool)
    total = 0
    Z = Z0
    for _ in range(4):
        Z, its, reason = _run_factored(loss, sym, samples, Z, release, max_iter, gtol)
        total += its
        _, g, diag = reduced_certificate_matrix(loss, sym, sym.distances_from_factors(Z), samples)
        newly = sym.release_test(sym.unit_eigenvalues(g, diag) + 1e-12) & ~release
        if not newly.any():
            break
        release |= newly
        Z = sym.perturb_released(Z, newly)
    return DynamicsRun(Z, total, reason.converged, reason, time.perf_counter() - t0)


def _frozen_objective(loss, samples):
    """``frozen(Hx, Ha)``: the log-excess of E_alpha at Hx with alpha from Ha (stop-gradient), and
    its Riemannian gradient at Hx."""

    def frozen(Hx, Ha):
        lex, eg = loss.torch_frozen_log_excess_and_grad(Hx, samples, Ha)
        return lex, riemannian_grad(Hx, eg)

    return frozen


def _coordinate_step(frozen, H, f, rg, step, active, track):
    """One step of every active restart: Armijo backtracking on its frozen E_alpha from ``step``,
    alpha moved to the new point, and the next Barzilai-Borwein step size (vector transport by
    projection). Returns (H, f, rg, step, pending, moved), ``pending`` where no step decreased."""
    import torch

    sq = (rg * rg).flatten(1).sum(1)
    Ha = H.clone()

    def trial(t, H=H, rg=rg, Ha=Ha):
        point = _normalise(H - t[:, None, None] * rg)
        ft, rgt = frozen(point, Ha)
        return point, ft, rgt

    (H_new, _, _), pending, t = _backtrack(
        active,
        step.clone(),
        trial,
        lambda c, t, f=f, sq=sq: track.armijo(c[1], f, 1e-4 * t * sq),
        (H, f, rg),
    )
    moved = active & ~pending
    f_new, rg_new = frozen(H_new, H_new)  # alpha moves to the new point
    s = (H_new - H).flatten(1)
    y = (rg_new - riemannian_grad(H_new, rg)).flatten(1)
    sy = (s * y).sum(1)
    bb = (s * s).sum(1) / sy.clamp_min(1e-300)
    step = torch.where(moved & (sy > 0), bb, torch.where(moved, 2 * t, step))
    H, f, rg = (
        torch.where(moved[:, None, None], H_new, H),
        torch.where(moved, f_new, f),
        torch.where(moved[:, None, None], rg_new, rg),
    )
    return H, f, rg, step, pending, moved


def _restarts_result(loss, samples, H, f, gn, iters, reasons, dev, history, t0) -> RestartsResult:
    """The end points as a :class:`RestartsResult` in float64 numpy: values floor + exp(log-excess),
    the floor of each restart's point."""
    import torch

    lex = f.double().cpu().numpy()
    floors = loss.point_floor(samples, H=H)  # one pass over the batch of restarts
    floors = floors.cpu().numpy() if hasattr(floors, "cpu") else floors
    return RestartsResult(
        H.cpu().numpy(),
        floors + np.exp(lex),
        lex,
        gn.cpu().numpy(),
        iters.cpu().numpy(),
        reasons,
        "coordinate",
        str(dev),
        "float64",
        {"optimize": time.perf_counter() - t0},
        snap=False,
        history=torch.stack(history).numpy(),
    )


def coordinate_restarts(
    problem,
    dim: int,
    restarts: int = 8,
    seed: int = 0,
    tol: float | None = None,
    max_iter: int = 5000,
    device: str = "auto",
    H0=None,
    progress=None,
) -> RestartsResult:
    """Batched coordinate-wise dynamics over H (R, n, d) in float64: alpha from each restart's
    current point, a Riemannian gradient step on its frozen E_alpha with Barzilai-Borwein sizes and
    Armijo backtracking, per restart. Stops on the Riemannian gradient norm of the frozen
    log-excess (``tol``, default GRAD_TOL sqrt(n)), when no step decreases it (stalled), or at
    ``max_iter``."""
    import torch

    check_dim(dim)
    if int(restarts) != restarts or restarts < 1:
        raise UFMInputError("restarts", f"must be an integer >= 1, got {restarts}")
    loss, samples, n = problem.loss, problem.samples, problem.n
    dev = resolve_device(device)
    tol = GRAD_TOL * np.sqrt(n) if tol is None else float(tol)
    t0 = time.perf_counter()
    H = starting_points(n, dim, restarts, seed, H0, dev)
    R = H.shape[0]
    frozen = _frozen_objective(loss, samples)

    with cpu_threads_for(R * n * n * dim, dev):
        f, rg = frozen(H, H)
        gn = rg.flatten(1).norm(dim=1)
        step = 0.1 / rg.flatten(1).abs().amax(1).clamp_min(1e-300)
        active = gn > tol
        stalled = torch.zeros(R, dtype=torch.bool, device=dev)
        iters = torch.zeros(R, dtype=torch.long, device=dev)
        track = _Progress(f, gn)
        for it in range(max_iter):
            if not bool(active.any()):
                break
            H, f, rg, step, pending, moved = _coordinate_step(frozen, H, f, rg, step, active, track)
            stalled |= pending
            gn = rg.flatten(1).norm(dim=1)
            active = track.end_iteration(it, active, stalled, iters, moved, gn, f, tol, progress)
    reasons = _reasons(gn, tol, stalled)
    return _restarts_result(loss, samples, H, f, gn, iters, reasons, dev, track.history, t0)


__all__ = ["coordinate_factored", "coordinate_restarts", "DynamicsRun", "StopReason"]
