"""Local maxima of the one-unit contrastive objective E_alpha (``ufm.networks.one_layer``) from many
random starts, batched in torch, and their census: the distinct optima reached and the pattern each
one finds (Tian 2023). Every end point is checked: a smooth unit (linear, quadratic) by its
Riemannian gradient and Hessian, a kinked one (ReLU, leaky ReLU) after the exact active-set ascent
of ``solvers.networks.kinks``, by the first-order check over its kinks and the second-order one on its
face (or, where a multiplier sits on the box boundary, on the critical cone). Only a certified end
point counts as a local optimum.

**alpha.** ``uniform``: E is one fixed function and the checks are about it. ``infonce``: the
ascent follows E_alpha's gradient with alpha recomputed at every point (= descent on tau times the
InfoNCE loss, ``ufm.networks.one_layer.infonce_objective``); a kinked unit's exact ascent then
alternates: alpha frozen at the current point, the exact ascent of that E_alpha, alpha recomputed,
until the point is certified with its own alpha, or is unresolved and no longer moves, or the
alternation stops contracting (then the check says where it stopped). Every verdict is about
E_{alpha*} with alpha* = alpha(w*) held fixed at the end point w* (a fixed point of alpha-CL's
coordinate-wise dynamics), which the output says.

**Patterns found** (``pattern_found``). Pattern data (one-hot tokens per location, each pattern
fixing m tokens): a unit finds pattern p when its m largest weights are exactly p's tokens, as the
paper reads its units, with a separation between the m-th and (m+1)-th largest weight above
TOP_WEIGHT_TOL max|w| (a near-tie is not counted); sign-symmetric units (linear, quadratic) by w
or -w. Mixture data (x = m_p mu_p + noise): cos(w, mu_p) >= MIXTURE_COSINE (|cos| for
sign-symmetric units). ``patterns_found`` counts the patterns found by a certified optimum."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from solvers.options import NETWORK_OPTIONS
from solvers.stop import StopReason
from ufm.errors import UFMInputError
from ufm.networks.one_layer import (
    activate_np,
    check_activation,
    check_alpha,
    energy,
    infonce_objective,
    infonce_objective_np,
    sign_symmetric,
    weights_at,
)
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
#: pattern data: the m-th largest weight must exceed the (m+1)-th by this times max|w| for the top
#: m weights to name a pattern (a near-tie in float64 names none)
TOP_WEIGHT_TOL = 1e-8
#: mixture data: a unit finds pattern p where cos(w, mu_p) >= this
MIXTURE_COSINE = 0.95
#: the top eigenvalue of C counts as double where the eigen-gap is at most this times |C|
#: (float64's resolution of C and of numpy's eigenvalues: a few ulps of |C| per entry)
EIGEN_TIE_TOL = 1e-12
#: infonce: most rounds of (alpha frozen, exact ascent on the kinks) for a kinked unit
ALPHA_ROUNDS = 40
#: infonce: most iterations of each round's exact ascent
KINK_ITER = 100


@dataclass
class Optimum:
    """One distinct end point: a representative w, its energy, how many restarts reached it and
    the pattern it aligns with best (cosine with the pattern's unit direction)."""

    w: np.ndarray
    energy: float
    count: int
    pattern: int | None
    alignment: float | None
    found: int | None = None  # the pattern the unit finds (``pattern_found``), None if none
    top_margin: float | None = None  # pattern data: (m-th - (m+1)-th largest weight) / max|w| of the
    # pattern it finds (or of the nearest pattern's m where it finds none)
    certified: int = 0  # restarts whose end point here is a certified local maximum
    verdict: str = "unresolved"  # local_optimum (some restart certified), not_optimal or unresolved
    active_kinks: int = 0  # kinks (rows with w . x = 0) the representative sits on
    radius: float | None = None  # kinked units: E does not rise within this distance of the
    # representative (solvers.networks.kinks.certified_radius); None where not certified or not computed
    order: int = 0  # the representative's certificate: 1 first order (+ face), 2 second order, 0 none


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
    alpha: str = "uniform"  # the pair weights of E_alpha (ufm.networks.one_layer.ALPHAS)
    alpha_tau: float | None = None  # InfoNCE's temperature (infonce only)
    pattern_rule: str = "cosine"  # how a unit's pattern is decided: top_weights (pattern data) or cosine

    @property
    def alpha_statement(self) -> str:
        """What the verdicts are about, in words."""
        if self.alpha == "uniform":
            return "alpha: uniform (the quadratic loss: E = Var - view spread; one fixed E)"
        return (f"alpha: infonce (tau {self.alpha_tau:g}), held fixed at each end point for its certificate "
                "(verdicts are about E with alpha frozen at the point's own alpha, not about the InfoNCE "
                "loss)")

    @property
    def patterns_found(self) -> int:
        """Patterns found by a certified optimum (``pattern_found``'s rule)."""
        return len({o.found for o in self.optima if o.verdict == "local_optimum" and o.found is not None})

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
        orders = [c.order for c in self.checks if c.verdict.value == "local_optimum"]
        return {"activation": self.activation, "restarts": int(self.W.shape[0]),
                "alpha": self.alpha, "alpha_tau": self.alpha_tau, "alpha_statement": self.alpha_statement,
                "distinct_end_points": self.distinct, "distinct_optima": self.distinct_certified,
                "dead_units": self.dead, "patterns_found": self.patterns_found,
                "pattern_rule": self.pattern_rule,
                "optima": [{"energy": o.energy, "restarts": o.count, "certified_restarts": o.certified,
                            "verdict": o.verdict, "active_kinks": o.active_kinks,
                            "certified_radius": o.radius, "certificate_order": o.order or None,
                            "pattern": o.pattern, "alignment": o.alignment, "found_pattern": o.found,
                            "top_weight_margin": o.top_margin} for o in self.optima],
                "verdicts": {v: verdicts.count(v) for v in ("local_optimum", "not_optimal", "unresolved")},
                # kinked units' certified starts: strict first order (+ face) or second order
                "certified_by_order": {"first": orders.count(1), "second": orders.count(2)},
                "certified": float(np.mean([v == "local_optimum" for v in verdicts])) if verdicts else 0.0,
                "stops": [s.value for s in self.stops],
                "time_s": self.timings.get("total")}


def _riemannian(W, G):
    return G - (G * W).sum(1, keepdim=True) * W


def maximise(x1: np.ndarray, x2: np.ndarray, activation: str = "relu", restarts: int = NETWORK.restarts,
             seed: int = NETWORK.seed, max_iter: int = NETWORK.max_iter, W0: np.ndarray | None = None,
             device: str = "cpu", alpha: str = "uniform", alpha_tau: float | None = None):
    """Riemannian gradient ascent of E on the unit sphere from ``restarts`` random starts
    (or ``W0``), all at once: Barzilai-Borwein steps with per-restart backtracking (Armijo), the
    retraction w <- w / |w|. With ``alpha`` infonce the ascent reads
    ``ufm.networks.one_layer.infonce_objective`` (its gradient: E_alpha's with alpha at the current
    point). Returns end points, energies (E_alpha at each end point's own alpha), gradient norms,
    iterations and stops."""
    import torch

    check_activation(activation)
    alpha, alpha_tau = check_alpha(alpha, alpha_tau)
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

    def value_and_grad(W):  # the ascent's objective (E, or tau's InfoNCE objective) and its gradient
        if alpha != "uniform" and W.device.type == "cpu":  # numpy, only the rows still needed
            rows = np.flatnonzero(needed.numpy())
            E, G = torch.zeros(len(W), dtype=W.dtype), torch.zeros_like(W)
            if len(rows):
                e, g = infonce_objective_np(W.numpy()[rows], x1, x2, activation, alpha_tau)
                E[rows], G[rows] = torch.as_tensor(e), torch.as_tensor(g)
            return E, _riemannian(W, G)
        if alpha != "uniform":
            E, G = infonce_objective(W, X1, X2, activation, alpha_tau, grad=True)
            return E, _riemannian(W, G)
        W = W.detach().requires_grad_(True)
        E = energy(W, X1, X2, activation)
        (G,) = torch.autograd.grad(E.sum(), W)
        return E.detach(), _riemannian(W.detach(), G)

    needed = torch.ones(R, dtype=torch.bool)  # rows whose value the next evaluation must give
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
            needed = (active & ~accepted).cpu()
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
    if alpha != "uniform":  # E_alpha at each end point's own alpha (numpy, a row at a time)
        Wn = W.cpu().numpy()
        E = torch.as_tensor([weights_at(w, x1, x2, activation, alpha, alpha_tau).energy(
            activate_np(x1 @ w, activation), activate_np(x2 @ w, activation)) for w in Wn])
    return (W.cpu().numpy(), E.cpu().numpy(), G.norm(dim=1).cpu().numpy(), iters.cpu().numpy(), stops)


def census(W: np.ndarray, energies: np.ndarray, activation: str, x: np.ndarray,
           directions: np.ndarray | None = None, tol: float = SAME_OPTIMUM_TOL, kind: str | None = None):
    """Distinct end points, best energy first, compared by what they compute: two end points are
    the same optimum if their outputs h(X w) on the data have cosine >= 1 - tol (|cosine| for
    sign-symmetric activations), so that directions the data never sees (a ReLU's silent inputs)
    do not split an optimum. End points whose outputs all vanish (dead units, E = 0) are no
    optimum: their cluster is -1. Each optimum's pattern: argmax of cos(w, u_p) over the unit
    pattern directions (|cos| for sign-symmetric activations), and the pattern it finds by the
    data's rule (``pattern_found``; ``kind`` patterns or mixture, default ``data_kind(x, directions)``)."""
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
    if directions is not None and len(directions) and kind is None:
        kind = data_kind(x, directions)
    for c, r in enumerate(reps):
        pattern = alignment = found = margin = None
        if directions is not None and len(directions):
            cos = directions @ W[r]
            cos = np.abs(cos) if symmetric else cos
            pattern = int(np.argmax(cos))
            alignment = float(cos[pattern])
            found, margin = pattern_found(W[r], directions, kind, symmetric)
        optima.append(Optimum(W[r], float(energies[r]), int((cluster == c).sum()), pattern, alignment,
                              found=found, top_margin=margin))
    return cluster, optima


def data_kind(x: np.ndarray, directions: np.ndarray) -> str:
    """"patterns" where the inputs are 0/1 and every pattern direction is uniform on its tokens
    (``ufm.networks.data.pattern_data``), else "mixture"."""
    tokens = bool(np.all((x == 0) | (x == 1)))
    for d in directions:
        nz = d[d != 0]
        tokens &= bool(len(nz)) and bool(np.all(nz == nz[0])) and nz[0] > 0
    return "patterns" if tokens else "mixture"


def pattern_found(w: np.ndarray, directions: np.ndarray, kind: str, symmetric: bool = False):
    """(the pattern unit w finds or None, top-weight margin or None) by the data's rule (module
    docstring). Pattern data: pattern p's tokens T_p (the nonzero entries of its direction,
    m = |T_p|) are found when the m largest entries of w (or of -w, ``symmetric``) are exactly T_p
    and the m-th exceeds the (m+1)-th by more than TOP_WEIGHT_TOL max|w|; the margin returned is
    that separation / max|w| (of the pattern found, else the largest over the patterns whose tokens
    are the top m). Two patterns with the same tokens: neither is found. Mixture data:
    argmax_p cos(w, mu_p) where it is >= MIXTURE_COSINE."""
    if kind != "patterns":
        cos = directions @ w
        cos = np.abs(cos) if symmetric else cos
        p = int(np.argmax(cos))
        return (p if cos[p] >= MIXTURE_COSINE else None), None
    scale = float(np.abs(w).max())
    if scale == 0:
        return None, None
    matches, best = set(), None
    for v in ((w, -w) if symmetric else (w,)):
        order = np.argsort(-v, kind="stable")
        for p, d in enumerate(directions):
            tokens = np.flatnonzero(d)
            m = len(tokens)
            if m >= len(v) or set(order[:m].tolist()) != set(tokens.tolist()):
                continue
            margin = float(v[order[m - 1]] - v[order[m]]) / scale
            best = margin if best is None else max(best, margin)
            if margin > TOP_WEIGHT_TOL:
                matches.add(p)
    return (matches.pop() if len(matches) == 1 else None), best


def top_eigenvector(res: OneLayerResult, data) -> dict | None:
    """A linear unit's oracle: numpy's top eigenvector of the contrastive covariance C_alpha (its
    one optimum; for infonce alpha, C at the best end point's own alpha, held fixed). Returns
    {"cosine": |cos| with the best end point or None, "unique": whether the top eigenvalue is
    simple, "eigen_gap": (lambda_1 - lambda_2) / |C|}; where the gap is at most EIGEN_TIE_TOL
    (below float64's resolution) the top eigenvector is not unique and no cosine is given. None
    without an end point or for another activation."""
    if res.activation != "linear" or not res.optima:
        return None
    from ufm.networks.one_layer import contrastive_covariance

    w = res.optima[0].w
    weights = None if res.alpha == "uniform" else weights_at(w, data.x1, data.x2, "linear", res.alpha,
                                                               res.alpha_tau)
    vals, vecs = np.linalg.eigh(contrastive_covariance(data.x1, data.x2, weights))
    size = max(float(np.abs(vals).max()), 1e-300)
    gap = float(vals[-1] - vals[-2]) / size if len(vals) > 1 else np.inf
    unique = gap > EIGEN_TIE_TOL
    return {"cosine": float(abs(w @ vecs[:, -1])) if unique else None, "unique": bool(unique),
            "eigen_gap": gap}


def top_eigenvector_cosine(res: OneLayerResult, data) -> float | None:
    """|cos| between a linear unit's best end point and numpy's top eigenvector of the contrastive
    covariance (its one optimum); None without an end point, for another activation, or where the
    top eigenvector is not unique (``top_eigenvector``)."""
    top = top_eigenvector(res, data)
    return None if top is None else top["cosine"]


def check_smooth_optimum(w: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str, weights=None):
    """Is w a strict local maximum of a smooth unit's E (linear, quadratic) on the sphere? Its
    Riemannian gradient P g and Hessian P (H - (w . g) I) P on the tangent space (autograd, float64):
    certified where the largest Hessian eigenvalue is clearly negative and the Newton step is small.
    ``weights``: fixed pair weights of E_alpha (None: uniform). Valid for any smooth E (quadratic's
    is quartic, not homogeneous of degree 2)."""
    import torch

    from solvers.networks.kinks import LocalCheck, LocalVerdict

    X1, X2 = torch.as_tensor(x1, dtype=torch.float64), torch.as_tensor(x2, dtype=torch.float64)
    wt = torch.as_tensor(w, dtype=torch.float64)
    wt = wt / wt.norm()

    alpha = "uniform" if weights is None else weights

    def f(v):
        return energy(v[None, :], X1, X2, activation, alpha)[0]

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


def refine_and_check(W: np.ndarray, E: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str,
                     alpha: str = "uniform", alpha_tau: float | None = None):
    """Each end point of ``maximise`` checked: kinked units first ascend exactly on their kinks
    (``solvers.networks.kinks.ascend_on_kinks``: E never decreases beyond round-off, and the check is that
    of the point returned). With infonce alpha every check is with alpha frozen at the point it
    checks; a kinked unit alternates (alpha frozen, exact ascent) until the point is certified, or
    its check is unresolved and it no longer moves (at most ALPHA_ROUNDS rounds). Returns
    (W, E, checks, iterations), E at each point's own alpha."""
    from solvers.networks.kinks import LocalVerdict, ascend_on_kinks, check_kink_optimum, energy_np, slope_of
    from ufm.networks.one_layer import KINK_SLOPES

    alpha, alpha_tau = check_alpha(alpha, alpha_tau)
    W, E = W.copy(), E.copy()
    checks, iters = [], np.zeros(len(W), dtype=int)
    for r in range(len(W)):
        if activation in KINK_SLOPES and alpha == "uniform":
            W[r], E[r], check, iters[r] = ascend_on_kinks(W[r], x1, x2, activation)
        elif activation in KINK_SLOPES:
            w, steps = W[r], []
            for _ in range(ALPHA_ROUNDS):  # converges linearly (about 8x a round on the test data)
                weights = weights_at(w, x1, x2, activation, alpha, alpha_tau)
                w_next, _, _, it = ascend_on_kinks(w, x1, x2, activation, max_iter=KINK_ITER, weights=weights)
                iters[r] += it
                steps.append(float(np.linalg.norm(w_next - w)))
                w = w_next
                weights = weights_at(w, x1, x2, activation, alpha, alpha_tau)
                check = check_kink_optimum(w, x1, x2, activation, weights)
                if check.verdict is LocalVerdict.LOCAL_OPTIMUM or (
                        steps[-1] <= 16 * np.finfo(float).eps and check.verdict is LocalVerdict.UNRESOLVED):
                    break
                if len(steps) > 3 and steps[-1] > 0.5 * steps[-4]:  # not contracting: alpha keeps
                    break  # moving the optimum (tiny tau); the check says where it stopped
            W[r], E[r] = w, energy_np(w, x1, x2, slope_of(activation), weights)
        else:
            weights = None if alpha == "uniform" else weights_at(W[r], x1, x2, activation, alpha, alpha_tau)
            check = check_smooth_optimum(W[r], x1, x2, activation, weights)
        checks.append(check)
    return W, E, checks, iters


def one_layer_census(data, activation: str = "relu", restarts: int = NETWORK.restarts,
                     seed: int = NETWORK.seed, max_iter: int = NETWORK.max_iter,
                     device: str = "cpu", alpha: str = "uniform", alpha_tau: float | None = None,
                     kind: str | None = None) -> OneLayerResult:
    """Maximise E_alpha from ``restarts`` random starts on ``data`` (a ``ufm.networks.data.TwoViews``),
    check (and for kinked units finish) every end point, and take the census of the end points.
    ``alpha``: uniform | infonce (at temperature ``alpha_tau``, default
    ``ufm.networks.one_layer.DEFAULT_ALPHA_TAU``; module docstring). ``kind``: patterns | mixture,
    the rule a unit's pattern is found by (default: read from the data, ``data_kind``)."""
    from solvers.networks.kinks import LocalVerdict
    from solvers.nonconvex import cpu_threads_for

    alpha, alpha_tau = check_alpha(alpha, alpha_tau)
    if kind is None and len(data.directions):
        kind = data_kind(data.x1, data.directions)

    t0 = time.perf_counter()
    # small kernels (R x N x D) on one thread: beside a busy process, two threads made a smoke
    # run of network_landscape 4x slower (25.5 s against 6.8 s; quiet: the same)
    with cpu_threads_for(int(restarts) * data.x1.shape[0] * data.x1.shape[1], device):
        W, E, gn, iters, stops = maximise(data.x1, data.x2, activation, restarts, seed, max_iter,
                                          device=device, alpha=alpha, alpha_tau=alpha_tau)
        t1 = time.perf_counter()
        W, E, checks, kink_iters = refine_and_check(W, E, data.x1, data.x2, activation, alpha, alpha_tau)
    t2 = time.perf_counter()
    cluster, optima = census(W, E, activation, data.x1, data.directions, kind=kind)
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
        if o.pattern is not None:  # the pattern read off the representative the verdict is shown with
            symmetric = sign_symmetric(activation)
            cos = data.directions @ o.w
            cos = np.abs(cos) if symmetric else cos
            o.pattern, o.alignment = int(np.argmax(cos)), float(cos.max())
            o.found, o.top_margin = pattern_found(o.w, data.directions, kind, symmetric)
        o.active_kinks = checks[best].active
        o.order = checks[best].order if checks[best].verdict is LocalVerdict.LOCAL_OPTIMUM else 0
        radius = checks[best].radius
        o.radius = float(radius) if np.isfinite(radius) else None
    return OneLayerResult(activation, W, E, gn, iters + kink_iters, stops, cluster, optima, checks,
                          {"ascent": t1 - t0, "check": t2 - t1, "total": time.perf_counter() - t0},
                          alpha, alpha_tau, "top_weights" if kind == "patterns" else "cosine")
