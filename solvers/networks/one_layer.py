"""Local maxima of the one-unit contrastive objective (``ufm.networks.one_layer``) from many random
starts, batched in torch, and their census: the distinct optima reached and the pattern each one
aligns with (Tian 2023). Every end point is checked: a smooth unit (linear, quadratic) by its
Riemannian gradient and Hessian, a kinked one (ReLU, leaky ReLU) after the exact active-set ascent
of ``solvers.networks.kinks``, by the first-order check over its kinks and the second-order one on its face.
Only a certified end point counts as a local optimum."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from solvers.options import NETWORK_OPTIONS
from solvers.stop import StopReason
from ufm.errors import UFMInputError
from ufm.networks.one_layer import check_activation, energy, sign_symmetric
from ufm.options import defaults

#: the declared defaults of ``ufm network``'s options (``solvers.options.NETWORK_OPTIONS``)
NETWORK = defaults(NETWORK_OPTIONS)
#: two end points are the same optimum if their cosine (|cosine| for sign-symmetric activations)
#: is at least 1 - this
SAME_OPTIMUM_TOL = 1e-4
#: stop where the Riemannian gradient norm is below this times (1 + |E|)
GRAD_TOL = 1e-9
#: iterations without a 1e-12 relative improvement of E before a restart stops
PATIENCE = 50
#: a restart that stopped improving counts as converged only where its Riemannian gradient norm is
#: below this times (1 + |E|): ReLU units stop on kinks of E (samples with w . x = 0), where the
#: gradient does not vanish and backtracking takes round-off-sized steps; ``solvers.networks.kinks`` takes
#: them from there
NO_PROGRESS_GRAD_TOL = 1e-6
#: a smooth end point is a certified local maximum where its largest Riemannian Hessian eigenvalue is
#: below -this times the Hessian's scale and the Newton step |grad| / |that eigenvalue| is below
#: NEWTON_TOL (a strict maximum lies within that distance)
CURVATURE_TOL = 1e-8
NEWTON_TOL = 1e-6


@dataclass
class Optimum:
    """One distinct end point: a representative w, its energy, how many restarts reached it and
    the pattern it aligns with best (cosine with the pattern's unit direction)."""

    w: np.ndarray
    energy: float
    count: int
    pattern: int | None
    alignment: float | None
    certified: int = 0  # restarts whose end point here is a certified local maximum
    verdict: str = "unresolved"  # local_optimum (some restart certified), not_optimal or unresolved
    active_kinks: int = 0  # kinks (rows with w . x = 0) the representative sits on
    radius: float | None = None  # kinked units: E does not rise within this distance of the
    # representative (solvers.networks.kinks.certified_radius); None where not certified or not computed


@dataclass
class OneLayerResult:
    activation: str
    W: np.ndarray  # (R, D) end points, unit rows
    energies: np.ndarray  # (R,)
    grad_norms: np.ndarray  # (R,)
    iterations: np.ndarray  # (R,)
    stops: list  # StopReason per restart
    cluster: np.ndarray  # (R,) index into optima, -1 for a dead unit (all outputs zero)
    optima: list[Optimum]  # distinct end points, best energy first
    checks: list = field(default_factory=list)  # solvers.networks.kinks.LocalCheck per restart
    timings: dict = field(default_factory=dict)

    @property
    def distinct(self) -> int:
        """Distinct end points (not dead)."""
        return len(self.optima)

    @property
    def distinct_certified(self) -> int:
        """Distinct end points certified as local maxima (by at least one restart): local optima."""
        return sum(o.certified > 0 for o in self.optima)

    @property
    def dead(self) -> int:
        """Restarts that ended with every output zero (a ReLU unit silent on all the data)."""
        return int((self.cluster < 0).sum())

    def to_dict(self) -> dict:
        verdicts = [c.verdict.value for c in self.checks]
        return {"activation": self.activation, "restarts": int(self.W.shape[0]),
                "distinct_end_points": self.distinct, "distinct_optima": self.distinct_certified,
                "dead_units": self.dead,
                "optima": [{"energy": o.energy, "restarts": o.count, "certified_restarts": o.certified,
                            "verdict": o.verdict, "active_kinks": o.active_kinks,
                            "certified_radius": o.radius,
                            "pattern": o.pattern, "alignment": o.alignment} for o in self.optima],
                "verdicts": {v: verdicts.count(v) for v in ("local_optimum", "not_optimal", "unresolved")},
                "certified": float(np.mean([v == "local_optimum" for v in verdicts])) if verdicts else 0.0,
                "stops": [s.value for s in self.stops],
                "time_s": self.timings.get("total")}


def _riemannian(W, G):
    return G - (G * W).sum(1, keepdim=True) * W


def maximise(x1: np.ndarray, x2: np.ndarray, activation: str = "relu", restarts: int = NETWORK.restarts,
             seed: int = NETWORK.seed, max_iter: int = NETWORK.max_iter, W0: np.ndarray | None = None,
             device: str = "cpu"):
    """Riemannian gradient ascent of E on the unit sphere from ``restarts`` random starts
    (or ``W0``), all at once: Barzilai-Borwein steps with per-restart backtracking (Armijo), the
    retraction w <- w / |w|. Returns end points, energies, gradient norms, iterations and stops."""
    import torch

    check_activation(activation)
    if int(restarts) != restarts or restarts < 1:
        raise UFMInputError("restarts", f"must be an integer >= 1, got {restarts}")
    X1 = torch.as_tensor(x1, dtype=torch.float64, device=device)
    X2 = torch.as_tensor(x2, dtype=torch.float64, device=device)
    D = X1.shape[1]
    if W0 is None:
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        W = torch.randn(restarts, D, generator=gen, dtype=torch.float64).to(device)
    else:
        W = torch.as_tensor(np.asarray(W0), dtype=torch.float64, device=device)
    W = W / W.norm(dim=1, keepdim=True)
    R = W.shape[0]

    def value_and_grad(W):
        W = W.detach().requires_grad_(True)
        E = energy(W, X1, X2, activation)
        (G,) = torch.autograd.grad(E.sum(), W)
        return E.detach(), _riemannian(W.detach(), G)

    E, G = value_and_grad(W)
    step = torch.full((R,), 1.0, dtype=torch.float64, device=device)
    active = torch.ones(R, dtype=torch.bool, device=device)
    iters = torch.zeros(R, dtype=torch.long, device=device)
    stops = [StopReason.ITERATION_LIMIT] * R
    best, since = E.clone(), torch.zeros(R, dtype=torch.long, device=device)
    for _ in range(max_iter):
        gn = G.norm(dim=1)
        done = active & (gn <= GRAD_TOL * (1 + E.abs()))
        for i in torch.nonzero(done).flatten().tolist():
            stops[i] = StopReason.GRADIENT_TOL
        active &= ~done
        if not bool(active.any()):
            break
        t = step.clone()
        accepted = torch.zeros(R, dtype=torch.bool, device=device)
        W_new, E_new, G_new = W.clone(), E.clone(), G.clone()
        for _ in range(30):  # backtracking: E(w(t)) >= E + 1e-4 t |g|^2, up to round-off
            trial = W + t[:, None] * G
            trial = trial / trial.norm(dim=1, keepdim=True)
            Et, Gt = value_and_grad(trial)
            ok = active & ~accepted & (Et >= E + 1e-4 * t * gn**2 - 1e-14 * (1 + E.abs()))
            W_new[ok], E_new[ok], G_new[ok] = trial[ok], Et[ok], Gt[ok]
            accepted |= ok
            if bool((accepted | ~active).all()):
                break
            t = torch.where(accepted, t, 0.3 * t)
        failed = active & ~accepted
        for i in torch.nonzero(failed).flatten().tolist():
            stops[i] = StopReason.STALLED
        moved = active & accepted
        s_vec, y_vec = W_new - W, -(G_new - G)  # ascent: curvature of -E
        sy = (s_vec * y_vec).sum(1)
        step = torch.where(moved & (sy > 1e-300), (s_vec * s_vec).sum(1) / sy.clamp_min(1e-300), 2 * t)
        W, E, G = W_new, E_new, G_new
        iters += moved.long()
        improved = E > best + 1e-12 * (1 + best.abs())
        best = torch.maximum(best, E)
        since = (since + 1) * (~improved)
        patience = moved & (since >= PATIENCE)
        flat = G.norm(dim=1) <= NO_PROGRESS_GRAD_TOL * (1 + E.abs())
        for i in torch.nonzero(patience).flatten().tolist():
            stops[i] = StopReason.NO_PROGRESS if bool(flat[i]) else StopReason.STALLED
        active &= ~failed & ~patience
    return (W.cpu().numpy(), E.cpu().numpy(), G.norm(dim=1).cpu().numpy(), iters.cpu().numpy(), stops)


def census(W: np.ndarray, energies: np.ndarray, activation: str, x: np.ndarray,
           directions: np.ndarray | None = None, tol: float = SAME_OPTIMUM_TOL):
    """Distinct end points, best energy first, compared by what they compute: two end points are
    the same optimum if their outputs h(X w) on the data have cosine >= 1 - tol (|cosine| for
    sign-symmetric activations), so that directions the data never sees (a ReLU's silent inputs)
    do not split an optimum. End points whose outputs all vanish (dead units, E = 0) are no
    optimum: their cluster is -1. Each optimum's pattern: argmax of cos(w, u_p) over the unit
    pattern directions (|cos| for sign-symmetric activations)."""
    import torch

    from ufm.networks.one_layer import activate

    symmetric = sign_symmetric(activation)
    with torch.no_grad():
        F = activate(torch.as_tensor(x, dtype=torch.float64) @ torch.as_tensor(W).T, activation).numpy().T
    norms = np.linalg.norm(F, axis=1)
    dead = norms <= 1e-12 * max(float(norms.max(initial=0.0)), 1e-300)
    Fn = F / np.where(dead, 1.0, norms)[:, None]
    order = np.argsort(-energies, kind="stable")
    reps: list[int] = []
    cluster = np.full(len(W), -1, dtype=int)
    for i in order:
        if dead[i]:
            continue
        for c, r in enumerate(reps):
            cos = float(Fn[i] @ Fn[r])
            if (abs(cos) if symmetric else cos) >= 1 - tol:
                cluster[i] = c
                break
        else:
            reps.append(int(i))
            cluster[i] = len(reps) - 1
    optima = []
    for c, r in enumerate(reps):
        pattern = alignment = None
        if directions is not None and len(directions):
            cos = directions @ W[r]
            cos = np.abs(cos) if symmetric else cos
            pattern = int(np.argmax(cos))
            alignment = float(cos[pattern])
        optima.append(Optimum(W[r], float(energies[r]), int((cluster == c).sum()), pattern, alignment))
    return cluster, optima


def top_eigenvector_cosine(res: OneLayerResult, data) -> float | None:
    """|cos| between a linear unit's best end point and numpy's top eigenvector of the contrastive
    covariance (its one optimum); None without an end point or for another activation."""
    if res.activation != "linear" or not res.optima:
        return None
    from ufm.networks.one_layer import contrastive_covariance

    top = np.linalg.eigh(contrastive_covariance(data.x1, data.x2))[1][:, -1]
    return float(abs(res.optima[0].w @ top))


def check_smooth_optimum(w: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str):
    """Is w a strict local maximum of a smooth unit's E (linear, quadratic) on the sphere? Its
    Riemannian gradient P g and Hessian P (H - (w . g) I) P on the tangent space (autograd, float64):
    certified where the largest Hessian eigenvalue is clearly negative and the Newton step is small.
    """
    import torch

    from solvers.networks.kinks import LocalCheck, LocalVerdict

    X1, X2 = torch.as_tensor(x1, dtype=torch.float64), torch.as_tensor(x2, dtype=torch.float64)
    wt = torch.as_tensor(w, dtype=torch.float64)
    wt = wt / wt.norm()

    def f(v):
        return energy(v[None, :], X1, X2, activation)[0]

    g = torch.autograd.functional.jacobian(f, wt).numpy()
    H = torch.autograd.functional.hessian(f, wt).numpy()
    w = wt.numpy()
    E = float(f(wt))
    D = len(w)
    basis = np.linalg.qr(np.column_stack([w, np.eye(D)]))[0][:, 1:D]  # orthonormal tangent basis
    rg = basis.T @ g
    vals, vecs = np.linalg.eigh(basis.T @ (H - (w @ g) * np.eye(D)) @ basis)
    rate, top = float(np.linalg.norm(rg)), float(vals[-1]) if len(vals) else -np.inf
    scale = float(np.abs(np.linalg.eigvalsh(H)).max() + abs(w @ g)) + 1e-300
    if top < -CURVATURE_TOL * scale and rate <= NEWTON_TOL * -top and rate <= GRAD_TOL ** 0.5 * (1 + abs(E)):
        return LocalCheck(LocalVerdict.LOCAL_OPTIMUM, 0, rate, np.nan, -top)
    if rate > NO_PROGRESS_GRAD_TOL * (1 + abs(E)):
        return LocalCheck(LocalVerdict.NOT_OPTIMAL, 0, rate, np.nan, -top, basis @ rg / rate,
                          reason="the Riemannian gradient does not vanish")
    if top > CURVATURE_TOL * scale:
        return LocalCheck(LocalVerdict.NOT_OPTIMAL, 0, rate, np.nan, -top, basis @ vecs[:, -1],
                          reason="a saddle: the Riemannian Hessian has a positive eigenvalue")
    return LocalCheck(LocalVerdict.UNRESOLVED, 0, rate, np.nan, -top,
                      reason="stationary, but no clear negative curvature (a flat direction)")


def refine_and_check(W: np.ndarray, E: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str):
    """Each end point of ``maximise`` checked: kinked units first ascend exactly on their kinks
    (``solvers.networks.kinks.ascend_on_kinks``: E never decreases beyond round-off, and the check is that
    of the point returned). Returns (W, E, checks, iterations)."""
    from solvers.networks.kinks import ascend_on_kinks
    from ufm.networks.one_layer import KINK_SLOPES

    W, E = W.copy(), E.copy()
    checks, iters = [], np.zeros(len(W), dtype=int)
    for r in range(len(W)):
        if activation in KINK_SLOPES:
            W[r], E[r], check, iters[r] = ascend_on_kinks(W[r], x1, x2, activation)
        else:
            check = check_smooth_optimum(W[r], x1, x2, activation)
        checks.append(check)
    return W, E, checks, iters


def one_layer_census(data, activation: str = "relu", restarts: int = NETWORK.restarts,
                     seed: int = NETWORK.seed, max_iter: int = NETWORK.max_iter,
                     device: str = "cpu") -> OneLayerResult:
    """Maximise E from ``restarts`` random starts on ``data`` (a ``ufm.networks.data.TwoViews``),
    check (and for kinked units finish) every end point, and take the census of the end points."""
    from solvers.networks.kinks import LocalVerdict
    from solvers.nonconvex import cpu_threads_for

    t0 = time.perf_counter()
    # small kernels (R x N x D) on one thread: beside a busy process, two threads made a smoke
    # run of network_landscape 4x slower (25.5 s against 6.8 s; quiet: the same)
    with cpu_threads_for(int(restarts) * data.x1.shape[0] * data.x1.shape[1], device):
        W, E, gn, iters, stops = maximise(data.x1, data.x2, activation, restarts, seed, max_iter,
                                          device=device)
        t1 = time.perf_counter()
        W, E, checks, kink_iters = refine_and_check(W, E, data.x1, data.x2, activation)
    t2 = time.perf_counter()
    cluster, optima = census(W, E, activation, data.x1, data.directions)
    for c, o in enumerate(optima):
        members = [k for k in range(len(W)) if cluster[k] == c]
        sure = [k for k in members if checks[k].verdict is LocalVerdict.LOCAL_OPTIMUM]
        o.certified = len(sure)
        o.verdict = (LocalVerdict.LOCAL_OPTIMUM if sure else LocalVerdict.UNRESOLVED
                     if any(checks[k].verdict is LocalVerdict.UNRESOLVED for k in members)
                     else LocalVerdict.NOT_OPTIMAL).value
        # the numbers shown with a verdict are those of a start that has it: the best certified one
        best = max(sure or members, key=lambda k: E[k])
        o.w, o.energy = W[best], float(E[best])
        o.active_kinks = checks[best].active
        radius = checks[best].radius
        o.radius = float(radius) if np.isfinite(radius) else None
    return OneLayerResult(activation, W, E, gn, iters + kink_iters, stops, cluster, optima, checks,
                          {"ascent": t1 - t0, "check": t2 - t1, "total": time.perf_counter() - t0})
