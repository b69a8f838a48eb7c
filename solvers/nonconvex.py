"""Non-convex optimisation over free unit embeddings: R restarts as one (R, n, d) tensor.

Two methods, both batched over restarts with per-restart step sizes and stopping, so a batch
gives the same end points as the same restarts run one by one:

* ``"rgd"``: Riemannian gradient descent on the product of spheres (Absil, Mahony &
  Sepulchre 2008, ch. 4): direction -grad_R f = -(egrad - <egrad, h> h) row-wise, retraction
  h <- h / |h|, Barzilai-Borwein step with Armijo backtracking.
* ``"lbfgs"`` (default): L-BFGS over free V with H = V / |V| row-wise (DESIGN section 7:
  reaches a gap of 1e-16 at n = 2000 in seconds in float64).

Written here rather than with torch.optim.LBFGS or geoopt because both take one step size for
all parameters: batching restarts would couple their line searches and stopping. The objective
is log(f - floor), the log of the loss's excess over its floor (full relative precision at
any tau; the loss itself is floor + exp of it). Stops on its Riemannian gradient norm
(Frobenius) <= tol, or at the iteration cap; the reason is a :class:`StopReason` per restart.
Where a loss attains its floor (the spectral loss) log(f - floor) has no minimiser: a restart
stops where the excess is 0 within round-off (``Loss.floor_tolerance``; reason FLOOR), a step that
lands exactly on it (excess 0, log -inf) is accepted, and nothing chases log(0).
Dimension 1 is refused: the sphere is {-1, +1}, where no gradient method can move.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np

from solvers.stop import StopReason
from ufm import progress as progress_bars
from ufm.errors import UFMInputError, check_choice
from ufm.problem import Problem

METHODS = ("lbfgs", "rgd")
PRECISIONS = ("auto", "float64", "mixed")
#: iterations without a 0.1% improvement of a restart's best gradient norm before it stops
STALL_PATIENCE = 30
#: default stopping tolerance on the Riemannian gradient norm of log(f - floor), times sqrt(n):
#: 1e-8 left end points at the optimum 2-14x above the certificate's 1e-6 of the excess (random
#: labels, n = 250-2000); 1e-10 certifies them for 2-9 more iterations
GRAD_TOL = 1e-10


class _Progress:
    """Per-restart bookkeeping shared by both methods: round-off-tolerant sufficient decrease
    and the stall counter."""

    def __init__(self, f, gn, log_range: float = math.inf, floor_tolerance: float = 0.0):
        import torch

        self.log_range = log_range
        # an attained floor (Loss.floor_tolerance, in float64 ulps; scaled to this precision): a
        # restart whose log(f - floor) is at or below its log stops there (StopReason.FLOOR)
        ulps = torch.finfo(f.dtype).eps / torch.finfo(torch.float64).eps
        self.log_floor = math.log(floor_tolerance * ulps) if floor_tolerance > 0 else -math.inf
        self.best = gn.clone()
        self.best_f = f.clone()
        self.since = torch.zeros_like(gn, dtype=torch.long)
        self.fuzz_scale = 8 * torch.finfo(f.dtype).eps
        self.history = [f.detach().double().cpu()]  # log(f - floor) of every restart, per iteration

    def armijo(self, f_new, f, decrease):
        """f_new <= f - decrease, up to round-off in f (values equal to the last digits pass,
        so that the gradient can still be driven down once f no longer moves)."""
        import torch

        at_floor = f_new == -math.inf  # the excess exactly 0: nothing lies below (never refused)
        return at_floor | (torch.isfinite(f_new) & (f_new <= f - decrease + self.fuzz_scale * f.abs()))

    def at_floor(self, f):
        """Restarts whose excess is 0 within round-off of an attained floor."""
        return f <= self.log_floor

    def end_iteration(self, it, active, stalled, iters, moved, gn, f, tol, progress):
        """Count the iteration of restarts that moved, mark stalls, report progress; returns the
        restarts still running."""
        iters += moved.long()
        self.history.append(f.detach().double().cpu())
        stalled |= active & self.stalled(gn, f)
        active = active & ~stalled & (gn > self.tolerance(tol, f)) & ~self.at_floor(f)
        if progress is not None:
            progress(it + 1, int(active.sum()))
        return active

    def tolerance(self, tol: float, f):
        """The gradient tolerance on log(f - floor) per restart: ``tol`` where the excess is what
        the geometry controls, tol x range / excess where the loss's range over the sphere is
        smaller (DESIGN section 5), so that grad f <= tol x min(excess, range) either way."""
        import torch

        if not math.isfinite(self.log_range):
            return torch.full_like(f, tol)
        return tol * torch.exp(torch.clamp(self.log_range - f.double(), max=0.0)).to(f.dtype)

    def stalled(self, gn, f):
        """True where neither the objective (by more than round-off) nor the gradient norm
        (by 0.1%) has improved for STALL_PATIENCE iterations."""
        improved = (gn < 0.999 * self.best) | (f < self.best_f - 1e3 * self.fuzz_scale * (1 + f.abs()))
        self.best = gn.minimum(self.best)
        self.best_f = f.minimum(self.best_f)
        self.since = (self.since + 1) * (~improved)
        return self.since >= STALL_PATIENCE


def check_dim(dim) -> int:
    """The embedding dimension: an integer >= 2. Dimension 1 is refused, not run: the unit
    sphere there is {-1, +1}, where gradient methods cannot move (the gradient of h = v/|v|
    vanishes)."""
    if int(dim) != dim or dim < 1:
        raise UFMInputError("dim", f"must be an integer >= 2, got {dim}")
    if dim == 1:
        raise UFMInputError("dim", "1 is not supported: the unit sphere in one dimension is "
                            "{-1, +1}, where gradient methods cannot move; use --dim >= 2")
    return int(dim)


def resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UFMInputError("device", "cuda requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise UFMInputError("device", f"unknown device {device!r} (auto, cpu or cuda)")
    return torch.device(device)


@dataclass
class RestartsResult:
    """End points of R restarts (float64 numpy on the host) and how each one stopped."""

    H: np.ndarray  # (R, n, d) unit rows
    values: np.ndarray  # (R,) loss values, floor + excess
    log_excess: np.ndarray  # (R,) log(f - floor), the objective
    grad_norms: np.ndarray  # (R,) Riemannian gradient norms of log(f - floor)
    iterations: np.ndarray  # (R,)
    reasons: list
    method: str
    device: str
    dtype: str
    timings: dict = field(default_factory=dict)
    snap: bool = True
    history: np.ndarray | None = None  # (iterations + 1, R) log(f - floor) after each iteration

    def value_history(self, floor: float) -> np.ndarray:
        """(iterations + 1, R) loss values after each iteration (a restart that stopped keeps its
        last value)."""
        return floor + np.exp(self.history)


def _backtrack(active, t, trial, sufficient, current):
    """Per-restart backtracking (step x 0.3 until ``sufficient``), batched: ``trial(t)`` gives
    a tuple of batch-first tensors at step t; accepted entries replace those of ``current``.
    Returns (new tuple, mask of restarts where no step was accepted, steps taken)."""
    import torch

    new = [c.clone() for c in current]
    pending = active.clone()
    for _ in range(40):
        candidate = trial(t)
        ok = pending & sufficient(candidate, t)
        for dst, src in zip(new, candidate, strict=True):
            dst[ok] = src[ok]
        pending &= ~ok
        if not bool(pending.any()):
            break
        t = torch.where(pending, t * 0.3, t)
    return new, pending, t


def _reasons(gn, tol, stalled, floor=None) -> list:
    """Stop reason per restart; ``tol`` a number or one tolerance per restart; ``floor`` marks the
    restarts at an attained floor (StopReason.FLOOR, whatever their gradient: log(f - floor) has
    no minimiser there, its gradient grows as the excess vanishes)."""
    tols = tol.tolist() if getattr(tol, "ndim", 0) else [float(tol)] * len(gn)
    floor = [False] * len(gn) if floor is None else [bool(x) for x in floor]
    return [StopReason.FLOOR if at else StopReason.GRADIENT_TOL if float(g) <= t else
            (StopReason.STALLED if bool(s) else StopReason.ITERATION_LIMIT)
            for g, s, t, at in zip(gn, stalled, tols, floor, strict=True)]


def riemannian_grad(H, egrad):
    """Project the Euclidean gradient onto the tangent space of the product of spheres."""
    return egrad - (egrad * H).sum(-1, keepdim=True) * H


def _loss_and_grads(loss, samples, H):
    """log(f - floor) (R,) and its Euclidean gradient in H (R, n, d): the accurate form, in
    which small tau (0.02-0.05) still resolves and certifies the optimum (DESIGN section 5)."""
    return loss.torch_log_excess_and_grad(H.detach(), samples)


def _normalise(V):
    return V / V.norm(dim=-1, keepdim=True)


#: a class whose samples all lie within this distance of their mean direction is snapped onto it
SNAP_TOL = 0.25


def _collapse_snapper(samples, shape, evaluate, enabled: bool = True):
    """Collapse snapping, a descent step for small tau: once every sample of a class lies within
    SNAP_TOL of the class's mean direction, all of them are set to that direction (bitwise
    equal rows), kept only where log(f - floor) does not increase.

    At small tau any spread of a class (even float64 round-off of unit vectors, 1e-16) dominates
    the excess, whose minimisers are collapsed (DESIGN section 5): without the snap a gradient
    method spends its iterations on round-off spread instead of the class geometry.
    Returns ``snap(x, f, g, gn, active) -> (x, f, g, gn, reset)`` over flat points x = V;
    ``reset`` marks restarts moved by more than round-off, whose curvature pairs are stale.
    Groups are the samples' positive groups (classes, or the views of an instance).
    """
    import torch

    R, n, d = shape
    c = np.asarray(samples.counts)
    y_np = samples.labels
    cache = {}

    def snap(x, f, g, gn, active):
        dev = x.device
        if not enabled:
            return x, f, g, gn, torch.zeros(R, dtype=torch.bool, device=dev)
        if dev not in cache:
            cache[dev] = (torch.as_tensor(y_np, device=dev), torch.as_tensor(c >= 2, device=dev))
        y, multi = cache[dev]
        H = _normalise(x.reshape(shape))
        sums = torch.zeros((R, c.size, d), dtype=H.dtype, device=dev).index_add(1, y, H)
        ref = _normalise(sums).index_select(1, y)
        spread = (H - ref).norm(dim=-1)
        worst = torch.zeros((R, c.size), dtype=H.dtype, device=dev).scatter_reduce(
            1, y.expand(R, n), spread, reduce="amax", include_self=True)
        loose = torch.zeros((R, c.size), dtype=torch.bool, device=dev).scatter_reduce(
            1, y.expand(R, n), (H != ref).any(-1), reduce="amax", include_self=False)
        candidate = (worst < SNAP_TOL) & multi & loose & active[:, None]
        rows = candidate.any(1)
        none = torch.zeros(R, dtype=torch.bool, device=dev)
        if not bool(rows.any()):
            return x, f, g, gn, none
        Hs = torch.where(candidate.index_select(1, y).unsqueeze(-1), ref, H)
        fs, gs, gns = evaluate(Hs.reshape(R, -1))
        ok = rows & (fs <= f)
        if not bool(ok.any()):
            return x, f, g, gn, none
        keep = ok[:, None]
        # a snap that moves rows by round-off only keeps the curvature pairs (no reset)
        moved_far = ok & ((Hs - H).abs().amax(dim=(-1, -2)) > 1e-8)
        return (torch.where(keep, Hs.reshape(R, -1), x), torch.where(ok, fs, f),
                torch.where(keep, gs, g), torch.where(ok, gns, gn), moved_far)

    return snap


def _start_tracking(loss, samples, f, gn, tol, R: int, device):
    """Per-restart bookkeeping before the first iteration: the :class:`_Progress` tracker, the
    restarts still active (gradient above tolerance, not at the floor), no stall, no iteration."""
    import torch

    track = _Progress(f, gn, loss.log_geometry_range(samples), loss.floor_tolerance(samples))
    active = (gn > track.tolerance(tol, f)) & ~track.at_floor(f)
    stalled = torch.zeros(R, dtype=torch.bool, device=device)
    iters = torch.zeros(R, dtype=torch.long, device=device)
    return track, active, stalled, iters


def _lbfgs_objective(loss, samples, shape):
    """``evaluate(V)`` for V of ``shape`` (R, n, d), H = V / |V| row-wise: log(f - floor) per restart,
    its gradient in V flattened per restart, and the norm of the Riemannian gradient at H."""
    R = shape[0]

    def evaluate(V):
        norms = V.norm(dim=-1, keepdim=True)
        H = V / norms
        values, egrad = _loss_and_grads(loss, samples, H)
        rg = riemannian_grad(H, egrad)  # = |v| times the gradient in V, row-wise
        return values, (rg / norms).reshape(R, -1), rg.reshape(R, -1).norm(dim=1)

    return evaluate


class _CurvaturePairs:
    """Each restart's last ``memory`` curvature pairs (s, y, rho = 1 / s'y) in a ring of slots, its
    initial inverse-Hessian scale ``gamma``, and ``fresh``: restarts without curvature information
    yet, whose next step is cautious."""

    def __init__(self, memory: int, R: int, size: int, dtype, device):
        import torch

        self.memory, self.slot = memory, 0
        self.S = torch.zeros((memory, R, size), dtype=dtype, device=device)
        self.Y = torch.zeros_like(self.S)
        self.rho = torch.zeros((memory, R), dtype=dtype, device=device)
        self.gamma = torch.ones(R, dtype=dtype, device=device)
        self.fresh = torch.ones(R, dtype=torch.bool, device=device)  # no curvature information yet

    def direction(self, g):
        """Search direction d and slope g'd per restart by the two-loop recursion; scaled steepest
        descent where descent is lost; a fresh restart's step moves each row by at most 0.1."""
        import torch

        S, Y, rho, gamma, memory, slot = self.S, self.Y, self.rho, self.gamma, self.memory, self.slot
        q = g.clone()
        alphas = []
        for j in range(memory):
            i = (slot - 1 - j) % memory
            a = rho[i] * (S[i] * q).sum(1)
            alphas.append((i, a))
            q -= a[:, None] * Y[i]
        r = gamma[:, None] * q
        for i, a in reversed(alphas):
            b = rho[i] * (Y[i] * r).sum(1)
            r += (a - b)[:, None] * S[i]
        d = -r
        slope = (g * d).sum(1)
        bad = slope >= 0  # lost descent: fall back to scaled steepest descent
        if bool(bad.any()):
            d[bad] = -gamma[bad, None] * g[bad]
            rho[:, bad] = 0.0
            slope = (g * d).sum(1)
        first = self.fresh.clone()
        self.fresh[:] = False
        if bool(first.any()):  # cautious first step: move each row by at most 0.1
            scale = 0.1 / d.abs().amax(1).clamp_min(1e-300)
            d[first] = d[first] * torch.minimum(scale[first], torch.ones_like(scale[first]))[:, None]
            slope = (g * d).sum(1)
        return d, slope

    def store(self, s_vec, y_vec, moved):
        """Keep the step's pair where the restart ``moved`` with positive curvature, update gamma,
        and advance to the next slot."""
        import torch

        sy = (s_vec * y_vec).sum(1)
        store = moved & (sy > 1e-300)
        self.S[self.slot] = torch.where(store[:, None], s_vec, torch.zeros_like(s_vec))
        self.Y[self.slot] = torch.where(store[:, None], y_vec, torch.zeros_like(y_vec))
        self.rho[self.slot] = torch.where(store, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))
        # initial inverse-Hessian scale: s'y / y'y from a pair with positive curvature; where the
        # curvature is negative (log(f - floor) far from the optimum is not convex) the pair is
        # skipped but the scale still follows the step, |s| / |y|: a scale left at 1 made every
        # later step as small as the gradient of the log (2000 samples with random labels, k = 20,
        # d = 20, tau 0.5: log(f - floor) went from 8.73 to 8.72 in 800 iterations; now the
        # optimum, 7.785, in 22)
        yy = (y_vec * y_vec).sum(1).clamp_min(1e-300)
        fallback = torch.sqrt((s_vec * s_vec).sum(1) / yy)
        self.gamma = torch.where(store, sy / yy, torch.where(moved & (yy > 1e-300), fallback, self.gamma))
        self.slot = (self.slot + 1) % self.memory

    def forget(self, snapped):
        """Drop the pairs of restarts a snap moved (those of the spread phase are stale): they
        start afresh."""
        if bool(snapped.any()):
            self.S[:, snapped] = 0.0
            self.Y[:, snapped] = 0.0
            self.rho[:, snapped] = 0.0
            self.gamma[snapped] = 1.0
            self.fresh |= snapped


def _run_lbfgs(loss, samples, H0, tol, max_iter, memory, progress, snap_classes=True):
    """Batched L-BFGS over V (H = V/|V|); per-restart Armijo line search and stopping."""
    import torch

    R = H0.shape[0]
    shape = H0.shape
    evaluate = _lbfgs_objective(loss, samples, shape)
    x = H0.reshape(R, -1).clone()
    f, g, gn = evaluate(x.reshape(shape))
    snap = _collapse_snapper(samples, shape, lambda x: evaluate(x.reshape(shape)), snap_classes)
    pairs = _CurvaturePairs(memory, R, x.shape[1], x.dtype, x.device)
    track, active, stalled, iters = _start_tracking(loss, samples, f, gn, tol, R, x.device)
    for it in range(max_iter):
        if not bool(active.any()):
            break
        d, slope = pairs.direction(g)

        def trial(t, x=x, d=d):
            point = x + t[:, None] * d
            return (point, *evaluate(point.reshape(shape)))

        (x_new, f_new, g_new, gn_new), pending, _ = _backtrack(
            active, torch.ones(R, dtype=x.dtype, device=x.device), trial,
            lambda c, t, f=f, slope=slope: track.armijo(c[1], f, -1e-4 * t * slope), (x, f, g, gn))
        stalled |= pending
        moved = active & ~pending
        pairs.store(x_new - x, g_new - g, moved)
        x, f, g, gn = x_new, f_new, g_new, gn_new
        x, f, g, gn, snapped = snap(x, f, g, gn, active)
        pairs.forget(snapped)  # curvature pairs of the spread phase are stale: start afresh
        active = track.end_iteration(it, active, stalled, iters, moved, gn, f, tol, progress)
    H = _normalise(x.reshape(shape))
    reasons = _reasons(gn, track.tolerance(tol, f), stalled, track.at_floor(f))
    return H, f, gn, iters, reasons, track.history


def _run_rgd(loss, samples, H0, tol, max_iter, progress, snap_classes=True):
    """Batched Riemannian gradient descent with BB steps and Armijo backtracking."""
    import torch

    R = H0.shape[0]
    shape = H0.shape
    H = H0.clone()
    f, eg = _loss_and_grads(loss, samples, H)
    rg = riemannian_grad(H, eg)

    def evaluate(x):
        Hx = x.reshape(shape)
        fx, egx = _loss_and_grads(loss, samples, Hx)
        rgx = riemannian_grad(Hx, egx).reshape(R, -1)
        return fx, rgx, rgx.norm(dim=1)

    snap = _collapse_snapper(samples, shape, evaluate, snap_classes)
    gn = rg.flatten(1).norm(dim=1)
    step = 0.1 / rg.flatten(1).abs().amax(1).clamp_min(1e-300)
    track, active, stalled, iters = _start_tracking(loss, samples, f, gn, tol, R, H.device)
    for it in range(max_iter):
        if not bool(active.any()):
            break
        sq = (rg * rg).flatten(1).sum(1)

        def trial(t, H=H, rg=rg):
            point = _normalise(H - t[:, None, None] * rg)
            ft, egt = _loss_and_grads(loss, samples, point)
            return point, ft, riemannian_grad(point, egt)

        (H_new, f_new, rg_new), pending, t = _backtrack(
            active, step.clone(), trial,
            lambda c, t, f=f, sq=sq: track.armijo(c[1], f, 1e-4 * t * sq), (H, f, rg))
        stalled |= pending
        moved = active & ~pending
        # Barzilai-Borwein step for the next iteration (vector transport by projection)
        s = (H_new - H).flatten(1)
        y = (rg_new - riemannian_grad(H_new, rg)).flatten(1)
        sy = (s * y).sum(1)
        bb = (s * s).sum(1) / sy.clamp_min(1e-300)
        step = torch.where(moved & (sy > 0), bb, torch.where(moved, 2 * t, step))
        H, f, rg = H_new, f_new, rg_new
        gn = rg.flatten(1).norm(dim=1)
        x, f, rgf, gn, reset = snap(H.reshape(R, -1), f, rg.reshape(R, -1), gn, active)
        H, rg = x.reshape(shape), rgf.reshape(shape)
        step = torch.where(reset, 0.1 / rg.flatten(1).abs().amax(1).clamp_min(1e-300), step)
        active = track.end_iteration(it, active, stalled, iters, moved, gn, f, tol, progress)
    reasons = _reasons(gn, track.tolerance(tol, f), stalled, track.at_floor(f))
    return H, f, gn, iters, reasons, track.history


#: below this many multiply-adds per product, torch and BLAS on the CPU run on one thread: the quiet
#: crossover (benchmarks/RESULTS.md, issue 18: 1 / 2 threads 0.82 at 1.8e6, 1.11 at 7.4e6). Beside
#: other work a command starts on the idle cores only (``ufm.threads.default_threads``), so this
#: switch need not guard against a busy machine (at 1.7e7 the two-layer study ran 1.4x slower quiet)
SMALL_WORK = 1 << 22


@contextlib.contextmanager
def cpu_threads_for(work: int, device):
    """One thread (torch's intra-op pool and BLAS) for small CPU problems: on the 2-core machine
    a batched float64 matmul of shape (4, 15, 2) took 8 ms on two threads and 35 us on one
    (thread wake-ups), and beside a busy process a small verify's certificates took up to 20 s on
    all threads against 0.15 s on one."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    small = getattr(device, "type", str(device)) == "cpu" and work < SMALL_WORK
    if small:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(1 if small else None):
            yield
    finally:
        torch.set_num_threads(previous)


def random_start(R: int, n: int, d: int, seed: int, dtype, device):
    """R independent uniform points on the product of spheres, reproducible from ``seed``
    (drawn on the CPU in float64, so the same seed gives the same start on any device)."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    H = torch.randn((R, n, d), generator=gen, dtype=torch.float64)
    return _normalise(H).to(device=device, dtype=dtype)


def starting_points(n: int, dim: int, restarts: int, seed: int, H0, device):
    """``H0`` (normalised, float64) or ``restarts`` seeded random points, on ``device``."""
    import torch

    if H0 is None:
        return random_start(restarts, n, dim, seed, torch.float64, device)
    return _normalise(torch.as_tensor(np.asarray(H0), dtype=torch.float64, device=device))


def optimize(
    problem: Problem,
    dim: int,
    restarts: int = 8,
    optimizer: str = "lbfgs",
    device: str = "auto",
    seed: int = 0,
    tol: float | None = None,
    max_iter: int = 5000,
    H0=None,
    progress: bool = False,
    precision: str = "auto",
    snap: bool = True,
) -> RestartsResult:
    """Minimise the loss over unit embeddings in dimension ``dim`` from ``restarts`` random
    starts (or from ``H0``, shape (R, n, d)).

    ``precision``: "float64"; "mixed" (float32 to a gradient norm of 1e-3 sqrt(n), then a
    float64 polish from its end points: about 2x faster on the CPU at n >= 1000); "auto"
    (mixed on CUDA, float64 on the CPU). End points are always float64.
    ``tol`` bounds the Frobenius norm of the Riemannian gradient of log(f - floor); default
    GRAD_TOL sqrt(n). ``snap``: collapse snapping (see :func:`_collapse_snapper`), a descent move
    that may be turned off to watch plain gradient dynamics.
    """
    import torch

    check_dim(dim)
    if int(restarts) != restarts or restarts < 1:
        raise UFMInputError("restarts", f"must be an integer >= 1, got {restarts}")
    check_choice(optimizer, METHODS, "optimizer", "optimizer")
    check_choice(precision, PRECISIONS, "precision", "precision")
    dev = resolve_device(device)
    loss, samples, n = problem.loss, problem.samples, problem.n
    if not loss.scalar_objective:
        raise UFMInputError("loss", f"{loss.name} has no scalar objective: its restarts run the "
                            "coordinate-wise dynamics (solvers.dynamics.coordinate_restarts)")
    tol = GRAD_TOL * np.sqrt(n) if tol is None else float(tol)
    t0 = time.perf_counter()
    H = starting_points(n, dim, restarts, seed, H0, dev)
    bar = _progress_bar(restarts) if progress else None
    mixed = precision == "mixed" or (precision == "auto" and dev.type == "cuda")
    stages = [torch.float32, torch.float64] if mixed else [torch.float64]
    total_iters = 0
    history = []
    with cpu_threads_for(restarts * n * n * dim, dev):
        for dt in stages:
            H = H.to(dt)
            stage_tol = tol if dt == torch.float64 else max(tol, 1e-3 * np.sqrt(n))
            if optimizer == "lbfgs":
                H, f, gn, iters, reasons, hist = _run_lbfgs(loss, samples, H, stage_tol, max_iter, 20, bar,
                                                            snap)
            else:
                H, f, gn, iters, reasons, hist = _run_rgd(loss, samples, H, stage_tol, max_iter, bar, snap)
            history += hist if not history else hist[1:]  # a polish starts where the first stage ended
            total_iters = total_iters + iters.cpu().numpy()
    if bar is not None:
        bar(None, None)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    lex = f.double().cpu().numpy()
    return RestartsResult(
        H.detach().cpu().numpy(), loss.floor(samples) + np.exp(lex), lex, gn.cpu().numpy(),
        total_iters, reasons,
        optimizer, str(dev), "float32+float64" if len(stages) > 1 else "float64",
        {"optimize": time.perf_counter() - t0}, snap, torch.stack(history).numpy())


def _progress_bar(restarts: int):
    """The restarts' bar (``ufm.progress``: drawn on a terminal only): iterations of the longest
    run, with the end points done, and a report function for the optimisers (None: close)."""
    shown = progress_bars.bar(f"verify: {restarts} restarts", unit="it")

    def report(it, active):
        if it is None:
            shown.close()
            return
        shown.update()
        shown.set_postfix_str(f"{restarts - active}/{restarts} end points done", refresh=False)

    return report
