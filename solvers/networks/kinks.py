"""Local maxima of a ReLU or leaky-ReLU unit's contrastive energy on its kinks: an exact
active-set ascent and a first- and second-order certificate.

With h(z) = s z + (1 - s) max(z, 0) (s = 0: ReLU, s = 0.1: leaky ReLU) the energy of
``ufm.networks.one_layer`` is piecewise quadratic: on the cell where every input row x_j (both views
stacked) keeps the sign of w . x_j, E(w) = w' Q_g w with the gated covariance

    Q_g = F1'F1/n - (F1'1)(1'F1)/n^2 - (F1 - F2)'(F1 - F2)/(2n),   F = diag(gamma) X,

gamma_j = 1 on the positive side of row j and s on the negative side. A unit's maxima sit on the
kinks (rows with w . x_j = 0), where E has no gradient, so a gradient method stalls there. This
module works on the faces instead: on the face {w . x_j = 0, j in A} the gate of an active row does
not matter, E is the quadratic form of Q_g on the subspace, and its maximum is the top eigenvector.

Certificate (first order, Clarke/KKT for the piecewise quadratic; cf. Tian 2023, section 4, on
the gated covariance): at w on the face of A, for a tangent direction d with z_j = x_j . d,

    E'(w; d) = g . d + sum_{j in A} c_j max(z_j, 0),   c_j = (1 - s) dE/df_j,

g the gradient with the active rows on their negative side. With every c_j < 0, E'(w; .) <= 0
for all d if and only if g + sum_j c_j lambda_j x_j = 0 for some lambda in [0, 1]^A (minimax), and
E' < 0 off the face when some such lambda lies inside the box. Rows with c_j >= 0 enter through the
vertices of their own box (E' is convex in them). Together with w the top eigenvector of Q_g on the
face, with a gap, this proves a strict local maximum. Decided in float64 with margins; what the
margins cannot decide is ``UNRESOLVED``.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

import numpy as np

#: a row is on its kink (active) where |w . x_j| <= this times |x_j|
ACTIVE_TOL = 1e-13
#: a row off its kink must have |w . x_j| >= this times |x_j| for its side to count as decided
SIDE_TOL = 1e-11
#: relative tolerance of the first-order residual and of the face eigen-gap
FIRST_ORDER_TOL = 1e-9
#: an interior multiplier must keep this distance from 0 and 1
MARGIN_TOL = 1e-7
#: the face eigen-gap must exceed this times FIRST_ORDER_TOL times |Q| (so that "w is on top" and
#: "the top is isolated" cannot both pass on a w between two nearly equal eigenvectors)
GAP_FACTOR = 1e3
#: at most this many active rows with c_j >= 0 (their 2^k sign vertices are enumerated)
MAX_CONVEX_ROWS = 10


class LocalVerdict(enum.Enum):
    """What the check of one end point decided (kinked units here, smooth ones in
    ``solvers.networks.one_layer.check_smooth_optimum``)."""

    LOCAL_OPTIMUM = "local_optimum"  # a strict local maximum of E, certified
    NOT_OPTIMAL = "not_optimal"  # a direction of ascent exists (returned with the check)
    UNRESOLVED = "unresolved"  # float64 margins cannot decide


@dataclass
class LocalCheck:
    """The check of one end point: its verdict and the numbers it rests on."""

    verdict: LocalVerdict
    active: int  # distinct active rows (kinks w sits on); 0 for a smooth unit
    ascent_rate: float  # max over unit tangent d of E'(w; d) (the Riemannian gradient norm if smooth)
    margin: float  # smallest distance of an interior multiplier from {0, 1} (nan for a smooth unit)
    face_gap: float  # curvature margin: top minus second eigenvalue of Q_g on the face (inf on a
    # 1-dimensional face); for a smooth unit minus the largest Riemannian Hessian eigenvalue
    direction: np.ndarray | None = None  # a unit ascent direction where NOT_OPTIMAL
    reason: str = ""
    radius: float = float("nan")  # E(w') <= E(w) for every unit w' within this distance (a lower
    # bound, ``certified_radius``); nan where not certified or where kinks with dE/df >= 0 are active


def slope_of(activation: str) -> float:
    from ufm.networks.one_layer import KINK_SLOPES

    if activation not in KINK_SLOPES:
        raise ValueError(f"no kinks for activation {activation!r}")
    return KINK_SLOPES[activation]


def _h(z, slope):
    return np.where(z > 0, z, slope * z)


def energy_np(w: np.ndarray, x1: np.ndarray, x2: np.ndarray, slope: float) -> float:
    """E(w) of one unit in float64 numpy: ``ufm.networks.one_layer.energy`` for a kinked activation
    (kept in numpy: the line searches call it per step, where torch's per-call overhead is 3-4x the
    work at D = 16; tests/test_networks.py checks the two agree)."""
    f1, f2 = _h(x1 @ w, slope), _h(x2 @ w, slope)
    return float(f1.var() - 0.5 * np.mean((f1 - f2) ** 2))


def gated_covariance(x1: np.ndarray, x2: np.ndarray, gamma1: np.ndarray, gamma2: np.ndarray) -> np.ndarray:
    """Q_g with row gates gamma (1 on a row's positive side, s on its negative side)."""
    n = x1.shape[0]
    F1, F2 = gamma1[:, None] * x1, gamma2[:, None] * x2
    m = F1.sum(axis=0)
    diff = F1 - F2
    Q = F1.T @ F1 / n - np.outer(m, m) / n**2 - diff.T @ diff / (2 * n)
    return 0.5 * (Q + Q.T)


def _face_basis(xa: np.ndarray, D: int) -> np.ndarray:
    """Orthonormal basis (D, m) of the null space of the active rows."""
    if xa.shape[0] == 0:
        return np.eye(D)
    _, s, vt = np.linalg.svd(xa, full_matrices=True)
    rank = int((s > 1e-10 * s[0]).sum()) if s.size else 0
    rank = min(rank, D - 1)
    return vt[rank:].T


def is_dead(z: np.ndarray, slope: float) -> bool:
    """Every output zero: a ReLU unit silent on all the data, or any unit orthogonal to every row
    (E = 0 around it)."""
    return not np.any(z > 0) if slope == 0 else not np.any(z != 0)


def _gates(z: np.ndarray, active: np.ndarray, slope: float) -> np.ndarray:
    return np.where((z > 0) & ~active, 1.0, slope)


def _output_sensitivity(f1: np.ndarray, f2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dE/df for view-1 and view-2 outputs: E = Var f1 - 1/(2n) sum (f1 - f2)^2."""
    n = f1.shape[0]
    c2 = (f1 - f2) / n
    c1 = 2 * (f1 - f1.mean()) / n - c2
    return c1, c2


def face_optimum(w: np.ndarray, x1, x2, active: np.ndarray, slope: float):
    """Top eigenvector u of Q_g on the face of ``active`` (gates from w's sides), signed towards w;
    returns u, the face eigenvalues (descending) and Q_g."""
    X = np.vstack([x1, x2])
    n, D = x1.shape
    gamma = _gates(X @ w, active, slope)
    Q = gated_covariance(x1, x2, gamma[:n], gamma[n:])
    B = _face_basis(X[active], D)
    vals, vecs = np.linalg.eigh(B.T @ Q @ B)
    u = B @ vecs[:, -1]
    u /= np.linalg.norm(u)
    if u @ w < 0:
        u = -u
    return u, vals[::-1], Q


def _interior_margin(M: np.ndarray, v: np.ndarray) -> float:
    """max t such that M lam = v for some lam in [t, 1 - t]^k, solved as a scaled LP on M's range
    and re-checked in float64: the returned margin is that of a lam whose residual |M lam - v| is
    within FIRST_ORDER_TOL of |M| (-inf if none)."""
    from scipy.optimize import linprog

    k = M.shape[1]
    size = float(np.abs(M).max())
    if size == 0:
        return 0.5
    Ms, vs = M / size, v / size
    U, s, _ = np.linalg.svd(Ms, full_matrices=False)
    r = int((s > 1e-10 * s[0]).sum())
    Ur = U[:, :r]
    A_eq = np.hstack([Ur.T @ Ms, np.zeros((r, 1))])
    b_eq = Ur.T @ vs
    # t - lam_j <= 0 and lam_j + t <= 1
    A_ub = np.vstack([np.hstack([-np.eye(k), np.ones((k, 1))]), np.hstack([np.eye(k), np.ones((k, 1))])])
    b_ub = np.concatenate([np.zeros(k), np.ones(k)])
    c = np.zeros(k + 1)
    c[-1] = -1.0
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=[(None, None)] * k + [(None, 0.5)],
                  method="highs-ds", options={"primal_feasibility_tolerance": 1e-10,
                                              "dual_feasibility_tolerance": 1e-10})
    if res.status != 0:
        return -np.inf
    lam = res.x[:k]
    if np.linalg.norm(Ms @ lam - vs) > FIRST_ORDER_TOL * np.linalg.norm(Ms):
        return -np.inf
    return float(min(lam.min(), (1 - lam).min()))


def _kink_rows(X: np.ndarray, c: np.ndarray, active: np.ndarray, w: np.ndarray, slope: float):
    """The active rows with equal rows merged (they share a side): their coefficients
    c_j = (1 - s) dE/df_j, summed over the merged rows, and their tangent parts at w."""
    xa, ca = X[active], (1 - slope) * c[active]
    if len(xa):
        xa, inverse = np.unique(xa, axis=0, return_inverse=True)
        ca = np.bincount(inverse.ravel(), weights=ca, minlength=len(xa))
    return ca, xa - np.outer(xa @ w, w)


def _first_order(g: np.ndarray, a: np.ndarray, ca: np.ndarray, concave: np.ndarray,
                 convex_rows: np.ndarray, scale: float):
    """max over tangent d of E'(w; d) (module docstring): for each sign vertex mu of the rows with
    c_j >= 0, the residual of g + sum_j c_j lambda_j a_j over lambda in [0, 1] (bounded least
    squares on the concave rows). Returns (rate, a unit ascent direction or None, the smallest
    interior margin of a multiplier where the rate vanishes, M the (D, k) columns c_j a_j)."""
    from scipy.optimize import lsq_linear

    M = a[concave].T * ca[concave]  # (D, k) columns c_j a_j
    worst_rate, worst_dir, margin = 0.0, None, np.inf
    for mu in itertools.product((0.0, 1.0), repeat=len(convex_rows)):
        v = g + a[convex_rows].T @ (ca[convex_rows] * np.asarray(mu))
        if M.shape[1]:
            lam = lsq_linear(M, -v, bounds=(0.0, 1.0), method="bvls").x
            r = v + M @ lam
        else:
            r = v
        rate = float(np.linalg.norm(r))
        if rate > worst_rate:
            worst_rate, worst_dir = rate, r / rate
        if rate <= FIRST_ORDER_TOL * scale:
            margin = min(margin, _interior_margin(M, -v) if M.shape[1] else 0.5)
    return worst_rate, worst_dir, margin, M


def _convex_rows_spanned(a: np.ndarray, concave: np.ndarray, convex_rows: np.ndarray, M: np.ndarray):
    """Rows with c_j >= 0 must not open a flat direction: their tangent parts lie in the span of
    the concave rows' (vacuous without such rows)."""
    if len(convex_rows) and M.shape[1]:
        coef, *_ = np.linalg.lstsq(a[concave].T, a[convex_rows].T, rcond=None)
        gap = np.linalg.norm(a[concave].T @ coef - a[convex_rows].T)
        return gap <= FIRST_ORDER_TOL * np.linalg.norm(a)
    return not len(convex_rows)


def _kappa(a: np.ndarray, ca: np.ndarray, M: np.ndarray, margin: float) -> float:
    """kappa <= -E'(w; b/|b|) for b off the face (strict first order, ``certified_radius``):
    margin min|c_j| sigma_min of the active rows' tangent parts, less the first-order residual the
    LP accepted for the multiplier."""
    sigma = np.linalg.svd(a, compute_uv=False) if len(a) else np.zeros(0)
    sigma = sigma[sigma > 1e-10 * sigma[0]] if len(sigma) else sigma
    kappa = margin * float(np.abs(ca).min()) * float(sigma.min()) if len(ca) else 0.0
    if len(ca):  # the multiplier solves the first-order equation up to the LP's accepted residual
        kappa = max(kappa - FIRST_ORDER_TOL * float(np.linalg.norm(M)), np.finfo(float).tiny)
    return kappa


def check_kink_optimum(w: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str) -> LocalCheck:
    """Is unit w a strict local maximum of E on the sphere? First order over every kink direction,
    second order on the face (module docstring)."""
    slope = slope_of(activation)
    w = np.asarray(w, dtype=np.float64)
    w = w / np.linalg.norm(w)
    X = np.vstack([x1, x2])
    n, D = x1.shape
    xnorm = np.maximum(np.linalg.norm(X, axis=1), 1e-300)
    z = X @ w
    rel = np.abs(z) / xnorm
    active = rel <= ACTIVE_TOL
    undecided = ~active & (rel < SIDE_TOL)
    if is_dead(z, slope):
        return LocalCheck(LocalVerdict.UNRESOLVED, int(active.sum()), np.nan, np.nan, np.nan,
                          reason="dead unit (every output zero)")
    f = _h(np.where(active, 0.0, z), slope)
    c1, c2 = _output_sensitivity(f[:n], f[n:])
    c = np.concatenate([c1, c2])
    gamma = _gates(z, active, slope)
    terms = np.abs(c * gamma) * xnorm  # the gradient's terms before they cancel: the scale of round-off
    g = X.T @ (c * gamma)
    g = g - (g @ w) * w
    # face: second order
    u, vals, Q = face_optimum(w, x1, x2, active, slope)
    scale_q = max(float(np.linalg.norm(Q, 2)), 1e-300)
    face_gap = float(vals[0] - vals[1]) if len(vals) > 1 else np.inf
    on_top = float(w @ Q @ w) >= vals[0] - FIRST_ORDER_TOL * scale_q
    # first order over the kinks: merge equal rows (they share a side), tangent parts
    ca, a = _kink_rows(X, c, active, w, slope)
    kinks = len(a)
    scale = float(terms.sum() + np.abs(ca) @ np.linalg.norm(a, axis=1)) + 1e-300
    tol_c = FIRST_ORDER_TOL * float(np.abs(c).max())
    concave = ca < -tol_c
    convex_rows = np.flatnonzero(~concave)
    if len(convex_rows) > MAX_CONVEX_ROWS:
        return LocalCheck(LocalVerdict.UNRESOLVED, kinks, np.nan, np.nan, face_gap,
                          reason=f"{len(convex_rows)} kinks with dE/df >= 0")
    worst_rate, worst_dir, margin, M = _first_order(g, a, ca, concave, convex_rows, scale)
    if worst_rate > FIRST_ORDER_TOL * scale:
        return LocalCheck(LocalVerdict.NOT_OPTIMAL, kinks, worst_rate, -np.inf, face_gap, worst_dir,
                          reason="an ascent direction leaves the kinks")
    if not on_top:
        return LocalCheck(LocalVerdict.NOT_OPTIMAL, kinks, worst_rate, margin, face_gap,
                          reason="not the top eigenvector of Q_g on its face")
    if np.any(undecided):
        return LocalCheck(LocalVerdict.UNRESOLVED, kinks, worst_rate, margin, face_gap,
                          reason=f"{int(undecided.sum())} rows too close to their kink to tell the side")
    spanned = _convex_rows_spanned(a, concave, convex_rows, M)
    if margin < MARGIN_TOL or not spanned:
        return LocalCheck(LocalVerdict.UNRESOLVED, kinks, worst_rate, margin, face_gap,
                          reason="stationary, but not strictly (a multiplier on the boundary)")
    if face_gap <= GAP_FACTOR * FIRST_ORDER_TOL * scale_q:
        return LocalCheck(LocalVerdict.UNRESOLVED, kinks, worst_rate, margin, face_gap,
                          reason="no eigen-gap on the face")
    radius = np.nan
    if not len(convex_rows):
        radius = certified_radius(z[~active] / xnorm[~active], _kappa(a, ca, M, margin), face_gap,
                                  float(vals[0]), 2 * float(np.linalg.norm(X, 2)) ** 2 / n)
    return LocalCheck(LocalVerdict.LOCAL_OPTIMUM, kinks, worst_rate, margin, face_gap, radius=radius)


def certified_radius(side_distances: np.ndarray, kappa: float, gap: float, top: float, q: float) -> float:
    """A radius r with E(w') <= E(w) for every unit w' with |w' - w| <= r, at a certified w.

    Split w' = alpha w + a + b, a in the face subspace S orthogonal to w, b in S's complement (the
    span of the active rows). Within the distance to the nearest inactive kink (``side_distances``:
    |w . x_j| / |x_j| off the face) every inactive row keeps its side, and

        E(w') - E(w) <= -gap |a|^2 - alpha kappa |b| + 2 q |a| |b| + (q + |top|) |b|^2

    with kappa <= -E'(w; b/|b|) (strict first order: kappa >= margin min|c_j| sigma_min(X_A), from
    the interior multiplier), q >= |Q_g| for every gating (|K| |X|^2 <= 2 |X|^2 / n for E = f'Kf),
    top = E(w) the face eigenvalue. With 2 q |a| |b| <= gap |a|^2 + q^2 |b|^2 / gap, alpha >= 1/2
    and |b| <= |w' - w| <= 1, E does not rise for |w' - w| <= kappa / (2 (q^2 / gap + q + |top|)).
    On a face of dimension 1 (gap = inf) the q^2 / gap term vanishes; with no active row (b = 0)
    the radius is the distance to the nearest kink.
    """
    r0 = float(np.min(np.abs(side_distances))) if len(side_distances) else np.inf
    if kappa == 0.0:  # no active row: E is the cell's quadratic, at most its top eigenvalue
        return min(r0, 1.0)
    curvature = (q * q / gap if np.isfinite(gap) else 0.0) + q + abs(top)
    return min(r0, 1.0, kappa / (2 * curvature))


def ascend_on_kinks(w0: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str, max_iter: int = 500):
    """Exact active-set ascent from w0: walk towards the face's top eigenvector until a row
    reaches its kink (E rises monotonically along the way: Rayleigh quotient towards the top
    eigenvector), add it to the face; at a face optimum check the kinks and leave along the
    ascent direction the check returns. Returns (w, E, LocalCheck, iterations)."""
    slope = slope_of(activation)
    X = np.vstack([x1, x2])
    xnorm = np.maximum(np.linalg.norm(X, axis=1), 1e-300)
    w = np.asarray(w0, dtype=np.float64) / np.linalg.norm(w0)
    active = np.abs(X @ w) <= ACTIVE_TOL * xnorm
    if is_dead(X @ w, slope):  # Q_g = 0 on the cell: no direction to walk
        return w, energy_np(w, x1, x2, slope), check_kink_optimum(w, x1, x2, activation), 0
    for it in range(1, max_iter + 1):
        z = X @ w
        u, _, _ = face_optimum(w, x1, x2, active, slope)
        zu = X @ u
        crossing = ~active & (np.sign(zu) != np.sign(z)) & (z != 0)
        if np.any(crossing):
            t = z[crossing] / (z[crossing] - zu[crossing])
            t_star = float(t.min())
            if t_star < 1.0:
                w = (1 - t_star) * w + t_star * u
                w /= np.linalg.norm(w)
                hit = np.flatnonzero(crossing)[t <= t_star * (1 + 1e-9) + 1e-15]
                active[hit] = True
                continue
        w = u
        active = np.abs(X @ w) <= ACTIVE_TOL * xnorm
        check = check_kink_optimum(w, x1, x2, activation)
        if check.verdict is not LocalVerdict.NOT_OPTIMAL or check.direction is None:
            return w, energy_np(w, x1, x2, slope), check, it
        # leave the face along the ascent direction: backtracking on the great circle
        E0, d = energy_np(w, x1, x2, slope), check.direction
        theta, moved = 0.1, False
        for _ in range(60):
            trial = np.cos(theta) * w + np.sin(theta) * d
            if energy_np(trial, x1, x2, slope) > E0 + 1e-4 * theta * check.ascent_rate:
                w, moved = trial / np.linalg.norm(trial), True
                break
            theta *= 0.5
        if not moved:
            return w, E0, check, it
        active = np.abs(X @ w) <= ACTIVE_TOL * xnorm
    return w, energy_np(w, x1, x2, slope), check_kink_optimum(w, x1, x2, activation), max_iter
