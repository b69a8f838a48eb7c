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

Second order, where the multiplier touches the box boundary (lambda_j in {0, 1}: e.g. noise-free
data, where the other patterns' rows sit on their kinks with lambda_j = 0). With any multiplier,
E'(w; d) = sum_j |c_j| t_j(d) with t_j = -(1 - lambda_j) z_j on z_j > 0 and lambda_j z_j on z_j < 0,
each <= 0, so E' vanishes exactly on the critical cone

    K = {d tangent: z_j = 0 (0 < lambda_j < 1), z_j >= 0 (lambda_j = 1), z_j <= 0 (lambda_j = 0)}

(the same cone for every multiplier). E is homogeneous of degree 2 and piecewise quadratic, so on
the piece of a direction d, E(cos t w + sin t d) - E(w) = sin 2t w'Q d + sin^2 t d'(Q - E I)d, with
2 w'Q d = E'(w; d) = 0 on K. On K a boundary row's side is fixed by its multiplier (gate 1 where
lambda_j = 1, s where lambda_j = 0; the other side has E' < 0), so of the 2^m sign pieces of the m
boundary rows only one carries critical directions and one form H = P(Q* - E I)P serves them all:
w is a strict local maximum if d'Hd < 0 on K minus 0 (by compactness: a sequence d_k -> 0 with
E(w + d_k) >= E(w) would have a limit direction in K with d'Hd >= 0). Tested exactly where it
can be: (1) H negative definite on K's span (tangent, z_j = 0 for the interior rows): certified;
(2) with two or more boundary rows, in coordinates y = T t + N s (t = B y >= 0 the boundary rows'
sides, s free, B of full row rank), the form negative definite in s and its Schur complement
Sigma in t strictly copositive-negative, decided by the sufficient tests -Sigma positive definite
or -Sigma less its positive off-diagonal part positive definite (exact for a Z-matrix): certified.
A clear positive curvature on K (with one boundary row, or t = 0, or t = e_j) is an ascent
direction, reported not optimal only where evaluating E confirms the rise; anything else is
unresolved, with the reason. A coordinate counts as interior only where its distance from {0, 1}
exceeds MARGIN_TOL plus its distance to an exact multiplier (``_interior_multiplier``), so the
cone used is never smaller than the true one. No certified radius is given for these points.

**Pair weights.** Every function takes fixed ``weights`` (``ufm.networks.one_layer.PairWeights``;
None: uniform): with InfoNCE's alpha frozen at a point, E = f' K f is the same kind of piecewise
quadratic, and the check is about E with those weights.
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
#: the second-order cone test (more than one multiplier on the boundary, the form not negative
#: definite on the cone's span) takes at most this many boundary rows
MAX_BOUNDARY_ROWS = 64


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
    # (and for a second-order certificate)
    order: int = 0  # 1: certified by the strict first-order test (an interior multiplier) with the
    # face gap; 2: the second-order test on the critical cone (a multiplier on the box boundary)
    curvature: float = float("nan")  # second order: the negativity margin on the critical cone


def slope_of(activation: str) -> float:
    from ufm.networks.one_layer import KINK_SLOPES

    if activation not in KINK_SLOPES:
        raise ValueError(f"no kinks for activation {activation!r}")
    return KINK_SLOPES[activation]


def _h(z, slope):
    return np.where(z > 0, z, slope * z)


def _weights(weights, n: int):
    from ufm.networks.one_layer import uniform_weights

    return uniform_weights(n) if weights is None else weights


def energy_np(w: np.ndarray, x1: np.ndarray, x2: np.ndarray, slope: float, weights=None) -> float:
    """E(w) of one unit in float64 numpy: ``ufm.networks.one_layer.energy`` for a kinked activation
    (kept in numpy: the line searches call it per step, where torch's per-call overhead is 3-4x the
    work at D = 16; tests/test_networks.py checks the two agree). ``weights``: fixed pair weights
    (``ufm.networks.one_layer.PairWeights``; None: uniform)."""
    f1, f2 = _h(x1 @ w, slope), _h(x2 @ w, slope)
    if weights is None:
        return float(f1.var() - 0.5 * np.mean((f1 - f2) ** 2))
    return weights.energy(f1, f2)


def gated_covariance(x1: np.ndarray, x2: np.ndarray, gamma1: np.ndarray, gamma2: np.ndarray,
                     weights=None) -> np.ndarray:
    """Q_g with row gates gamma (1 on a row's positive side, s on its negative side): F' K F for the
    pair weights' K (``PairWeights.covariance``; None: uniform)."""
    return _weights(weights, x1.shape[0]).covariance(gamma1[:, None] * x1, gamma2[:, None] * x2)


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


def _output_sensitivity(f1: np.ndarray, f2: np.ndarray, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """dE/df for view-1 and view-2 outputs (uniform: E = Var f1 - 1/(2n) sum (f1 - f2)^2)."""
    return _weights(weights, f1.shape[0]).sensitivity(f1, f2)


def face_optimum(w: np.ndarray, x1, x2, active: np.ndarray, slope: float, weights=None):
    """Top eigenvector u of Q_g on the face of ``active`` (gates from w's sides), signed towards w;
    returns u, the face eigenvalues (descending) and Q_g."""
    X = np.vstack([x1, x2])
    n, D = x1.shape
    gamma = _gates(X @ w, active, slope)
    Q = gated_covariance(x1, x2, gamma[:n], gamma[n:], weights)
    B = _face_basis(X[active], D)
    vals, vecs = np.linalg.eigh(B.T @ Q @ B)
    u = B @ vecs[:, -1]
    u /= np.linalg.norm(u)
    if u @ w < 0:
        u = -u
    return u, vals[::-1], Q


def _interior_margin(M: np.ndarray, v: np.ndarray) -> float:
    """max t such that M lam = v for some lam in [t, 1 - t]^k (``_interior_multiplier``)."""
    return _interior_multiplier(M, v)[0]


def _interior_multiplier(M: np.ndarray, v: np.ndarray) -> tuple[float, np.ndarray | None, float]:
    """(margin, lam, distance): max t such that M lam = v for some lam in [t, 1 - t]^k, solved as a scaled LP
    on M's range and re-checked in float64: the margin is that of a lam whose residual
    |M lam - v| is within FIRST_ORDER_TOL of |M| (-inf and None if none), less the distance
    |M^+ (M lam - v)| <= residual / sigma_min(M) to an exact solution of the equations (so that a
    coordinate called interior is interior for the exact multiplier too), and that distance bound."""
    from scipy.optimize import linprog

    k = M.shape[1]
    size = float(np.abs(M).max())
    if size == 0:
        return 0.5, np.full(k, 0.5), 0.0
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
        return -np.inf, None, np.inf
    lam = res.x[:k]
    polished = lam + np.linalg.lstsq(Ms, vs - Ms @ lam, rcond=1e-10)[0]  # one step onto the equations
    if np.all((polished >= 0) & (polished <= 1)) and (np.linalg.norm(Ms @ polished - vs)
                                                        <= np.linalg.norm(Ms @ lam - vs)):
        lam = polished
    residual = float(np.linalg.norm(Ms @ lam - vs))
    if residual > FIRST_ORDER_TOL * np.linalg.norm(Ms):
        return -np.inf, None, np.inf
    exact = residual / float(s[r - 1]) if r else 0.0  # to the nearest solution of Ms lam = vs
    return float(min(lam.min(), (1 - lam).min())) - exact, lam, exact


def _kink_rows(X: np.ndarray, c: np.ndarray, active: np.ndarray, w: np.ndarray, slope: float):
    """The active rows with equal rows merged (they share a side): their coefficients
    c_j = (1 - s) dE/df_j, summed over the merged rows, their tangent parts at w and, for each
    active row in order, the index of its merged row."""
    xa, ca = X[active], (1 - slope) * c[active]
    inverse = np.zeros(0, dtype=int)
    if len(xa):
        xa, inverse = np.unique(xa, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        ca = np.bincount(inverse, weights=ca, minlength=len(xa))
    return ca, xa - np.outer(xa @ w, w), inverse


def _first_order(g: np.ndarray, a: np.ndarray, ca: np.ndarray, concave: np.ndarray,
                 convex_rows: np.ndarray, scale: float):
    """max over tangent d of E'(w; d) (module docstring): for each sign vertex mu of the rows with
    c_j >= 0, the residual of g + sum_j c_j lambda_j a_j over lambda in [0, 1] (bounded least
    squares on the concave rows). Returns (rate, a unit ascent direction or None, the smallest
    interior margin of a multiplier where the rate vanishes, M the (D, k) columns c_j a_j, and
    (lam, its distance bound to an exact multiplier) where there is no row with c_j >= 0, else
    None)."""
    from scipy.optimize import lsq_linear

    M = a[concave].T * ca[concave]  # (D, k) columns c_j a_j
    worst_rate, worst_dir, margin, multiplier = 0.0, None, np.inf, None
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
            here, lam_star, exact = _interior_multiplier(M, -v) if M.shape[1] else (0.5, np.zeros(0), 0.0)
            margin = min(margin, here)
            if not len(convex_rows) and lam_star is not None:
                multiplier = (lam_star, exact)
    return worst_rate, worst_dir, margin, M, multiplier


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


def _null_basis(rows: np.ndarray, D: int) -> np.ndarray:
    """Orthonormal basis (D, k) of the vectors orthogonal to ``rows`` (each normalised first)."""
    if not len(rows):
        return np.eye(D)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    _, s, vt = np.linalg.svd(rows, full_matrices=True)
    rank = int((s > 1e-10 * s[0]).sum())
    return vt[rank:].T


def _rises(w: np.ndarray, d: np.ndarray, energy) -> bool:
    """E(cos t w + sin t d) > E(w) beyond round-off for some small t (a second-order ascent checked
    by evaluating E itself)."""
    E0 = energy(w)
    for t in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
        if energy(np.cos(t) * w + np.sin(t) * d) > E0 + 1e-13 * (1 + abs(E0)):
            return True
    return False


def _second_order(w, x1, x2, z, active, slope, weights, a, inverse, multiplier, E, scale_q, energy):
    """The second-order test at a kink point whose first-order multiplier touches the box
    boundary (module docstring, "Second order"). ``multiplier``: (lam, its distance bound to an
    exact multiplier). Returns (verdict, reason, curvature margin, ascent direction or None)."""
    n, D = x1.shape
    lam, err = multiplier
    margin_j = np.minimum(lam, 1 - lam)
    boundary = margin_j <= MARGIN_TOL + err  # near 0 or 1: a side of the row stays critical
    at_one = boundary & (lam >= 0.5)
    interior = ~boundary
    # the one gating of the critical pieces: rows with lam_j = 1 on their positive side, lam_j = 0
    # on the negative side (interior rows have z_j = 0 on the critical cone: their gate is moot)
    gamma = _gates(z, active, slope)
    merged_gate = np.where(at_one, 1.0, slope)
    gamma[np.flatnonzero(active)] = merged_gate[inverse]
    Q = gated_covariance(x1, x2, gamma[:n], gamma[n:], weights)
    H = Q - E * np.eye(D)
    U = _null_basis(np.vstack([w[None, :], a[interior]]), D)  # span: tangent, z_j = 0 (interior)
    if U.shape[1] == 0:
        return LocalVerdict.LOCAL_OPTIMUM, "second order: the critical cone is {0}", np.inf, None
    HS = U.T @ H @ U
    HS = 0.5 * (HS + HS.T)
    vals, vecs = np.linalg.eigh(HS)
    thr = GAP_FACTOR * FIRST_ORDER_TOL * scale_q
    if vals[-1] < -thr:
        return (LocalVerdict.LOCAL_OPTIMUM, "second order: negative definite on the span of the critical "
                "cone", -float(vals[-1]), None)
    B = np.vstack([a[at_one], -a[boundary & ~at_one]])  # the cone: B d >= 0 (boundary rows' sides)
    m = len(B)
    if vals[-1] > thr and m <= 1:  # d or -d lies in the cone: E rises at second order
        d = U @ vecs[:, -1]
        d = -d if m and B[0] @ d < 0 else d
        if _rises(w, d, energy):
            return LocalVerdict.NOT_OPTIMAL, "second order: E rises along a critical direction", -float(
                vals[-1]), d
        return LocalVerdict.UNRESOLVED, "second order: positive curvature not confirmed by E", -float(
            vals[-1]), None
    if m <= 1:
        return (LocalVerdict.UNRESOLVED, "second order: no clear curvature on the critical cone (a flat "
                "direction)", -float(vals[-1]), None)
    if m > MAX_BOUNDARY_ROWS:
        return (LocalVerdict.UNRESOLVED, f"second order: {m} multipliers on the boundary (the cone test "
                f"takes at most {MAX_BOUNDARY_ROWS})", -float(vals[-1]), None)
    # the cone {B_S y >= 0} in coordinates y = T t + N s, t = B_S y >= 0, s free
    BS = B @ U
    BS = BS / np.linalg.norm(BS, axis=1, keepdims=True)
    sv = np.linalg.svd(BS, compute_uv=False)
    if sv[-1] <= 1e-8 * sv[0]:
        return (LocalVerdict.UNRESOLVED, "second order: the boundary rows are dependent on the critical "
                "cone's span", -float(vals[-1]), None)
    T = np.linalg.pinv(BS)
    N = _null_basis(BS, BS.shape[1])
    norm_h = float(np.abs(vals).max())
    if N.shape[1]:
        Mss = N.T @ HS @ N
        top_s = float(np.linalg.eigvalsh(0.5 * (Mss + Mss.T))[-1])
        if top_s > thr:  # t = 0: every boundary row stays on its kink, E rises
            s_vals, s_vecs = np.linalg.eigh(0.5 * (Mss + Mss.T))
            d = U @ (N @ s_vecs[:, -1])
            if _rises(w, d / np.linalg.norm(d), energy):
                return LocalVerdict.NOT_OPTIMAL, "second order: E rises along a critical direction", -top_s, d
        if top_s >= -thr:
            return (LocalVerdict.UNRESOLVED, "second order: no clear curvature on the critical cone's "
                    "boundary-row face", -top_s, None)
        K = HS @ T
        Sigma = T.T @ K - (N.T @ K).T @ np.linalg.solve(Mss, N.T @ K)
        amplify = (1 + norm_h / -top_s) ** 2
    else:
        top_s, Sigma, amplify = -np.inf, T.T @ HS @ T, 1.0
    A = -0.5 * (Sigma + Sigma.T)
    positive_off = np.clip(A - np.diag(np.diag(A)), 0.0, None)
    nu = max(float(np.linalg.eigvalsh(A)[0]), float(np.linalg.eigvalsh(A - positive_off)[0]))
    effective = nu / (float(np.linalg.norm(T, 2)) ** 2 * amplify)
    effective = 0.5 * min(effective, -top_s)  # y = T t + N s: both parts' margins
    if effective > thr:
        return (LocalVerdict.LOCAL_OPTIMUM, "second order: negative on the critical cone (Schur complement "
                "copositive)", effective, None)
    j = int(np.argmax(np.diag(Sigma)))
    if Sigma[j, j] > thr:  # t = e_j: one boundary row leaves its kink to its critical side
        y = T[:, j] - (N @ np.linalg.solve(N.T @ HS @ N, N.T @ HS @ T[:, j]) if N.shape[1] else 0.0)
        d = U @ y
        if _rises(w, d / np.linalg.norm(d), energy):
            return LocalVerdict.NOT_OPTIMAL, "second order: E rises along a critical direction", -effective, d
    return (LocalVerdict.UNRESOLVED, "second order: negativity on the critical cone not decided (not "
            "negative definite on its span; the copositivity test is inconclusive)", effective, None)


def check_kink_optimum(w: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str,
                       weights=None) -> LocalCheck:
    """Is unit w a strict local maximum of E on the sphere? First order over every kink direction,
    second order on the face, and where a multiplier touches the box boundary second order on the
    critical cone (module docstring). ``weights``: fixed pair weights of E_alpha
    (``ufm.networks.one_layer.PairWeights``; None: uniform): the verdict is about E with them."""
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
    c1, c2 = _output_sensitivity(f[:n], f[n:], weights)
    c = np.concatenate([c1, c2])
    gamma = _gates(z, active, slope)
    terms = np.abs(c * gamma) * xnorm  # the gradient's terms before they cancel: the scale of round-off
    g = X.T @ (c * gamma)
    g = g - (g @ w) * w
    # face: second order
    u, vals, Q = face_optimum(w, x1, x2, active, slope, weights)
    scale_q = max(float(np.linalg.norm(Q, 2)), 1e-300)
    face_gap = float(vals[0] - vals[1]) if len(vals) > 1 else np.inf
    on_top = float(w @ Q @ w) >= vals[0] - FIRST_ORDER_TOL * scale_q
    # first order over the kinks: merge equal rows (they share a side), tangent parts
    ca, a, inverse = _kink_rows(X, c, active, w, slope)
    kinks = len(a)
    scale = float(terms.sum() + np.abs(ca) @ np.linalg.norm(a, axis=1)) + 1e-300
    # a coefficient is concave (c_j < 0) only clearly below E's own scale of dE/df, |K| max|f|: with
    # InfoNCE's alpha at tiny tau every c_j can be ~1e-200 while E's curvature is ~1/n, where the
    # sign of c_j decides nothing float64 can see
    tol_c = FIRST_ORDER_TOL * max(float(np.abs(c).max()),
                                  _weights(weights, n).kernel_bound() * float(np.abs(f).max()))
    concave = ca < -tol_c
    convex_rows = np.flatnonzero(~concave)
    if len(convex_rows) > MAX_CONVEX_ROWS:
        return LocalCheck(LocalVerdict.UNRESOLVED, kinks, np.nan, np.nan, face_gap,
                          reason=f"{len(convex_rows)} kinks with dE/df >= 0")
    worst_rate, worst_dir, margin, M, lam = _first_order(g, a, ca, concave, convex_rows, scale)
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
        if spanned and lam is not None and len(lam[0]) and np.isfinite(margin):
            def energy(v):
                return energy_np(v / np.linalg.norm(v), x1, x2, slope, weights)

            verdict, reason, curvature, d = _second_order(w, x1, x2, z, active, slope, weights, a, inverse,
                                                          lam, float(w @ Q @ w), scale_q, energy)
            return LocalCheck(verdict, kinks, worst_rate, margin, face_gap, d, reason=reason, order=2,
                              curvature=curvature)
        return LocalCheck(LocalVerdict.UNRESOLVED, kinks, worst_rate, margin, face_gap,
                          reason="stationary, but not strictly (a multiplier on the boundary)"
                          + ("" if spanned else "; kinks with dE/df >= 0 outside the concave rows' span"))
    if face_gap <= GAP_FACTOR * FIRST_ORDER_TOL * scale_q:
        return LocalCheck(LocalVerdict.UNRESOLVED, kinks, worst_rate, margin, face_gap,
                          reason="no eigen-gap on the face")
    radius = np.nan
    if not len(convex_rows):
        q = _weights(weights, n).kernel_bound() * float(np.linalg.norm(X, 2)) ** 2
        radius = certified_radius(z[~active] / xnorm[~active], _kappa(a, ca, M, margin), face_gap,
                                  float(vals[0]), q)
    return LocalCheck(LocalVerdict.LOCAL_OPTIMUM, kinks, worst_rate, margin, face_gap, radius=radius, order=1)


def certified_radius(side_distances: np.ndarray, kappa: float, gap: float, top: float, q: float) -> float:
    """A radius r with E(w') <= E(w) for every unit w' with |w' - w| <= r, at a certified w.

    Split w' = alpha w + a + b, a in the face subspace S orthogonal to w, b in S's complement (the
    span of the active rows). Within the distance to the nearest inactive kink (``side_distances``:
    |w . x_j| / |x_j| off the face) every inactive row keeps its side, and

        E(w') - E(w) <= -gap |a|^2 - alpha kappa |b| + 2 q |a| |b| + (q + |top|) |b|^2

    with kappa <= -E'(w; b/|b|) (strict first order: kappa >= margin min|c_j| sigma_min(X_A), from
    the interior multiplier), q >= |Q_g| for every gating (|K| |X|^2 with |K| <= 2/n for uniform
    weights, Gershgorin's max_i 2 deg_i + beta_i for fixed InfoNCE weights; E = f'Kf),
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


def ascend_on_kinks(w0: np.ndarray, x1: np.ndarray, x2: np.ndarray, activation: str, max_iter: int = 500,
                    weights=None):
    """Exact active-set ascent from w0: walk towards the face's top eigenvector until a row
    reaches its kink (E rises monotonically along the way: Rayleigh quotient towards the top
    eigenvector), add it to the face; at a face optimum check the kinks and leave along the
    ascent direction the check returns. ``weights``: fixed pair weights (None: uniform).
    Returns (w, E, LocalCheck, iterations)."""
    slope = slope_of(activation)
    X = np.vstack([x1, x2])
    xnorm = np.maximum(np.linalg.norm(X, axis=1), 1e-300)
    w = np.asarray(w0, dtype=np.float64) / np.linalg.norm(w0)
    active = np.abs(X @ w) <= ACTIVE_TOL * xnorm

    def E(v):
        return energy_np(v, x1, x2, slope, weights)

    if is_dead(X @ w, slope):  # Q_g = 0 on the cell: no direction to walk
        return w, E(w), check_kink_optimum(w, x1, x2, activation, weights), 0
    for it in range(1, max_iter + 1):
        z = X @ w
        u, _, _ = face_optimum(w, x1, x2, active, slope, weights)
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
        check = check_kink_optimum(w, x1, x2, activation, weights)
        if check.verdict is not LocalVerdict.NOT_OPTIMAL or check.direction is None:
            return w, E(w), check, it
        # leave the face along the ascent direction: backtracking on the great circle
        E0, d = E(w), check.direction
        theta, moved = 0.1, False
        for _ in range(60):
            trial = np.cos(theta) * w + np.sin(theta) * d
            if E(trial) > E0 + 1e-4 * theta * check.ascent_rate:
                w, moved = trial / np.linalg.norm(trial), True
                break
            theta *= 0.5
        if not moved:
            return w, E0, check, it
        active = np.abs(X @ w) <= ACTIVE_TOL * xnorm
    return w, E(w), check_kink_optimum(w, x1, x2, activation, weights), max_iter
