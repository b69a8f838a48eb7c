"""Global-optimality certificate for a Gram-convex loss (DESIGN section 5).

With G = H H^T (unit rows), g the symmetrised gradient of f at G, lambda_i = (g G)_ii and
S = g - Diag(lambda): <S, G> = 0, and for every feasible G' (PSD, unit diagonal)

    f(G') >= f(G) + <S, G'> >= f(G) + n min(0, lambda_min(S)),

so ``f(G) - f* <= n max(0, -lambda_min(S))`` over the relaxation, hence over the UFM in every
dimension. Journee, Bach, Absil & Sepulchre (2010), "Low-rank optimization on the cone of
positive semidefinite matrices", SIAM J. Optim. 20(5).

The loss's ``relaxation()`` says what is certified: the loss itself when it is convex in G; a
convex minorant h <= f equal to f at the optimum (KCL: the energy with views aligned), when the
bound becomes (f - h) + n max(0, -lambda_min(S_h)); for alpha-CL the fixed-alpha program at the
point's own alpha (a global optimum of it is a certified fixed point). A loss without a
relaxation (SupCon "in") has no certificate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import scipy.linalg

from ufm.losses.base import as_samples

#: default tolerance: certified means gap_bound <= CERTIFY_TOL * scale, the scale being
#: min(excess, the loss's range over the sphere), or for a loss whose floor is attained
#: max(excess, its declared scale) (DESIGN section 5)
CERTIFY_TOL = 1e-6
#: safety factor of the round-off estimate of the scaled certificate matrix
ROUNDOFF_FACTOR = 8.0


@dataclass(frozen=True)
class Certificate:
    """Global-optimality certificate, decided on what the geometry controls (DESIGN section 5).

    ``lambda_min`` is the smallest eigenvalue of S (of the loss f) and ``gap_bound`` =
    n max(0, -lambda_min) >= f - f*. Both are computed as excess times the same quantities of
    log(f - floor), whose S is well scaled at any tau. ``scale`` is what the geometry controls at
    these parameters: the excess f - floor, but never more than the loss's range over the sphere
    (``Loss.geometry_range``; at large tau the excess over a tau -> 0 floor stays about
    n log(n/m) while the loss moves by O(n / tau)); ``scale_kind`` says which. For a loss whose
    floor is attained (excess 0 at the optimum) the verdict is absolute: scale = max(excess, the
    loss's declared scale), ``scale_kind`` "floor", and ``reason`` says so. ``certified``
    compares ``gap_relative_to_scale`` = gap_bound / scale with ``tol``. ``roundoff`` estimates
    float64's error in that ratio: above ``tol`` the answer is unresolved, never certified.
    """

    value: float
    floor: float
    excess: float
    log_excess: float
    lambda_min: float
    gap_bound: float
    gap_relative_to_excess: float
    roundoff: float
    certified: bool
    reason: str | None
    tol: float
    how: str  # how lambda_min was computed
    residual: float | None = None  # ||S H||_F / excess: first-order (Riemannian) condition
    scale: float = float("nan")  # min(excess, the loss's range over the sphere)
    scale_kind: str = "excess"  # "excess", "range" or "floor" (an attained floor: absolute verdict)
    gap_relative_to_scale: float = float("nan")  # gap_bound / scale: what ``certified`` compares
    floor_note: str = "geometry-independent lower bound"  # what the floor is (Loss.floor_note)

    @property
    def relative_gap_bound(self) -> float:
        """gap_bound / |value| (for reference only; certification uses the scale)."""
        return self.gap_bound / max(abs(self.value), np.finfo(float).tiny)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["relative_gap_bound"] = float(self.relative_gap_bound)
        for key in ("log_excess", "excess", "value", "gap_relative_to_scale", "gap_relative_to_excess",
                    "scale", "gap_bound", "roundoff"):
            if not np.isfinite(d[key]):  # JSON has no inf or nan
                d[key] = None
        return d


def decide(floor: float, log_excess: float, scaled_lambda_min: float, n: int, tol: float,
           how: str, scale: float, tau: float | None, residual=None,
           unresolved: str | None = None, log_excess_relaxed: float | None = None,
           log_range: float = np.inf, floor_note: str | None = None,
           floor_scale: float | None = None) -> Certificate:
    """Certificate from the smallest eigenvalue of the scaled S (that of log(h - floor), h the
    loss's convex relaxation: the loss itself when convex in G).

    ``scale`` bounds the absolute row sums of the scaled S: float64 round-off in its entries
    is about eps (1 + 2 / tau) times that (the exponents carry D / tau), and in the gap
    relative to the excess n times as much. With a convex minorant h <= f (``log_excess_relaxed``
    its log excess), f - f* <= (f - h) + n max(0, -lambda_min) (h - floor). The verdict compares
    the gap with min(excess, exp(``log_range``)), the loss's range over the sphere.

    ``floor_scale`` (``Loss.floor_scale``, given for a loss whose floor is attained): the excess is
    0 at the optimum, where a gap relative to it means nothing, so the verdict is absolute,
    gap_bound <= tol x max(excess, floor_scale) (scale_kind "floor"; :func:`_decide_absolute`).
    """
    if log_excess == np.inf or (log_excess_relaxed is not None and log_excess_relaxed == np.inf):
        return Certificate(np.inf, float(floor), np.inf, np.inf, np.nan, np.inf, np.nan, np.nan, False,
                           "the value is +inf (coincident points of a singular kernel): not optimal",
                           tol, how, None, np.nan, "excess", np.nan, *([floor_note] if floor_note else []))
    excess = float(np.exp(log_excess))
    lex_h = log_excess if log_excess_relaxed is None else log_excess_relaxed
    excess_h = float(np.exp(lex_h))
    eps = np.finfo(float).eps
    inv_tau = 2.0 / tau if tau else 2.0
    rel_h = float(n * max(0.0, -scaled_lambda_min))
    roundoff_h = float(ROUNDOFF_FACTOR * n * eps * (1.0 + inv_tau) * scale)
    if log_excess_relaxed is None:
        rel, roundoff = rel_h, roundoff_h
    else:
        ratio = excess_h / excess if excess > 0 else 1.0
        gap_relax = max(excess - excess_h, 0.0)
        rel = (gap_relax + rel_h * excess_h) / excess if excess > 0 else 0.0
        roundoff = roundoff_h * ratio + 8 * eps
    if floor_scale is not None:
        return _decide_absolute(floor, log_excess, excess, excess_h, scaled_lambda_min, rel, roundoff, tol,
                                how, residual, unresolved, float(floor_scale), floor_note)
    # what the geometry controls: the excess, capped by the loss's range over the sphere
    by_range = np.isfinite(log_excess) and log_range < log_excess
    factor = float(np.exp(log_excess - log_range)) if by_range else 1.0  # excess / scale >= 1
    scale_value = float(np.exp(log_range)) if by_range else excess
    scale_kind = "range" if by_range else "excess"
    rel_scale, roundoff_scale = rel * factor, roundoff * factor
    if not np.isfinite(log_excess):
        certified, reason, rel, roundoff, rel_scale = True, None, 0.0, 0.0, 0.0
        how += "; the value equals the floor, a lower bound: optimal"
    elif (refused := _unresolved(unresolved, rel_scale, roundoff_scale, tol, f"the {scale_kind}")):
        certified, reason = False, refused
    elif rel_scale <= tol:
        certified, reason = True, None
    else:
        certified = False
        reason = f"gap bound is {rel_scale:.2e} times the {scale_kind}, above tol {tol:g}"
    return Certificate(float(floor + excess), float(floor), excess, float(log_excess),
                       float(scaled_lambda_min * excess_h), float(rel * excess), rel, roundoff_scale,
                       bool(certified), reason, tol, how, None if residual is None else float(residual),
                       scale_value, scale_kind, rel_scale, *([floor_note] if floor_note else []))


def _unresolved(unresolved, rel_scale, roundoff_scale, tol, of: str) -> str | None:
    """Why float64 cannot decide (the caller's own reason, an overflow, or round-off in the
    certificate above tol, ``of`` naming what it is measured against), or None."""
    if unresolved is not None:
        return unresolved
    if not (np.isfinite(rel_scale) and np.isfinite(roundoff_scale)):
        return "unresolved: the certificate matrix overflowed float64"
    if roundoff_scale > tol:
        return (f"unresolved: float64 round-off in the certificate (~{roundoff_scale:.1e} of {of}) "
                f"exceeds tol {tol:g}")
    return None


def _decide_absolute(floor, log_excess, excess, excess_h, scaled_lambda_min, rel, roundoff, tol, how,
                     residual, unresolved, floor_scale, floor_note) -> Certificate:
    """The verdict for a loss whose floor is attained (DESIGN section 5, "The floor may be
    attained"): gap_bound = min(n max(0, -lambda_min) excess (+ f - h), excess), the second since
    the floor is a lower bound (f - f* <= f - floor, exact: the excess has full relative
    precision), and certified iff gap_bound <= tol x max(excess, floor_scale). Where the excess is
    0 within round-off (``FLOOR_ROUNDOFF`` ulps of ``floor_scale``) the point is at the floor, and
    the reason says so; the certificate matrix's round-off matters only where the excess does not
    already bound the gap."""
    from ufm.losses.base import FLOOR_ROUNDOFF

    eps = np.finfo(float).eps
    scale_value = max(excess, floor_scale)
    floor_tol = FLOOR_ROUNDOFF * eps * floor_scale
    at_floor = excess <= floor_tol
    by_matrix = rel * excess if excess > 0 and np.isfinite(rel) else np.inf
    capped = not by_matrix < excess  # the floor bounds the gap: no eigenvalue needed
    gap = excess if capped else by_matrix
    rel_scale = gap / scale_value
    if capped:
        roundoff_scale = 4 * eps * excess / scale_value  # the excess's own error: full relative precision
    else:
        roundoff_scale = roundoff * excess / scale_value if np.isfinite(roundoff) else np.inf
    against = f"tol x max(excess, the loss's scale {floor_scale:.6g})"
    if excess == 0:
        how += "; the value equals the floor, a lower bound: optimal"
    elif capped:
        how += "; gap bounded by the excess (the floor is a lower bound)"
    if (refused := _unresolved(None if capped else unresolved, rel_scale, roundoff_scale, tol,
                               "max(excess, the loss's scale)")):
        certified, reason = False, refused
    elif rel_scale <= tol:
        certified = True
        if at_floor:
            zero = ("exactly 0" if excess == 0
                    else f"{excess:.3g}, 0 within round-off ({floor_tol:.1e})")
            reason = (f"at the floor: the excess is {zero}, so the verdict is on an absolute gap: "
                      f"gap bound {gap:.3g} <= {against}")
        else:
            reason = (f"decided on an absolute gap (the loss reaches its floor, where a gap relative to "
                      f"the excess means nothing): gap bound {gap:.3g} <= {against}")
    else:
        certified = False
        reason = (f"gap bound is {rel_scale:.2e} times max(excess, the loss's scale {floor_scale:.6g}), "
                  f"above tol {tol:g} (an absolute gap: the loss reaches its floor)")
    lam = float(scaled_lambda_min * excess_h) if excess_h > 0 and np.isfinite(scaled_lambda_min) else 0.0
    return Certificate(float(floor + excess), float(floor), excess, float(log_excess), lam, float(gap),
                       gap / excess if excess > 0 else 0.0, float(roundoff_scale), bool(certified), reason,
                       tol, how, None if residual is None else float(residual), float(scale_value), "floor",
                       float(rel_scale), *([floor_note] if floor_note else []))


def reduced_certificate_matrix(loss, symmetry, dist: np.ndarray, samples=None, positive_slopes=None):
    """``(log_excess, S_off, S_diag)`` at an invariant G given by its distances 1 - x: S of
    log(h - floor) (h the relaxation) in reduced form (it inherits G's symmetry): per-entry
    off-diagonal values and one diagonal value per anchor orbit. ``positive_slopes``: S of the
    rows' linear minorants instead (:func:`certify_equidistant`)."""
    lex, totals = loss.relaxation().table_log_excess(symmetry.table, dist, samples,
                                                     positive_slopes=positive_slopes)
    rows = symmetry.spectral_table  # the entries of S, one row per anchor orbit of G
    g = rows.symmetric_entries(totals)
    x = 1.0 - dist
    lam = rows.row_sums(rows.gather(g * x))
    return lex, g, -lam


def certify_reduced(loss, symmetry, dist: np.ndarray, tol: float = CERTIFY_TOL, samples=None) -> Certificate:
    """Certificate of an invariant G (distances 1 - x) for the full n x n relaxation, in O(q^3)
    whatever n: S inherits the symmetry of G, so its spectrum is the symmetry's (a q x q block
    plus closed-form families for classes, four closed forms for instances x views)."""
    samples = symmetry.samples if samples is None else samples
    relax = loss.relaxation()
    lex_h, g, diag = reduced_certificate_matrix(loss, symmetry, dist, samples)
    values, _ = symmetry.spectrum(g, diag)
    lam_min = float(np.min(values))
    lex_f = lex_h if relax is loss else loss.table_log_excess(symmetry.table, dist, samples)[0]
    how = f"exact spectrum of the invariant S, group-level ({symmetry.describe()})"
    floor = loss.point_floor(samples, table=symmetry.table, dist=dist)
    return decide(floor, lex_f, lam_min, symmetry.n, tol, how, symmetry.row_scale(g, diag), loss.tau,
                  log_excess_relaxed=None if relax is loss else lex_h,
                  log_range=loss.log_geometry_range(samples), floor_note=loss.floor_note,
                  floor_scale=loss.floor_scale(samples))


#: the Fenchel-Young slack bound of :func:`certify_equidistant` holds where every row's
#: |y| + |x| + rho stays below this
EQUIDISTANT_SMALL = 1e-3


def equidistant_applies(loss) -> bool:
    """Whether :func:`certify_equidistant` (and the equidistant-positives program of
    ``solvers.types``) applies: the convex masked log-sum-exp "out", whose positives enter
    through e^x - 1 - x."""
    return (getattr(loss, "loss_mode", None) == "out" and loss.relaxation() is loss
            and hasattr(loss, "positive_plan"))


def certify_equidistant(loss, symmetry, dist: np.ndarray, slopes: np.ndarray, tol: float = CERTIFY_TOL,
                        samples=None) -> Certificate:
    """Certificate of an invariant G whose rows' positives are equidistant to round-off (the
    masked log-sum-exp "out": SupCon), from linear minorants instead of tangents.

    Where float64 cannot resolve x_j = (dbar - D_j) / tau (types of a class 1e-6 apart, the excess
    1e-31: tau 0.02), the gradient of each row's log-sum-exp at G is round-off on its positives.
    But for any weights pi on a row's entries, LSE(z) >= <pi, z> + H(pi) (Fenchel-Young), with
    equality at the softmax pi*; the slack is KL(pi || pi*). With pi_j = m_j (1 + y_j) / Z on the
    positives (``slopes`` y, summing to 0 per row with multiplicities) and the exact softmax on the
    negatives, f >= M := f(G) - slack + <grad M, G' - G> for every G' (M is linear per row), so

        f(G) - f* <= slack + n max(0, -lambda_min(S_M)),

    S_M built from grad M as S is from grad f (:func:`reduced_certificate_matrix`). The slack is
    bounded by KL <= chi^2 <= 4 (max_P (|y_j| + |x_j|) + rho)^2 per row (rho = sum_P m_j (1.01 |x_j|
    + |y_j|) / |P| bounds |Z*/Z - 1|), where that is below :data:`EQUIDISTANT_SMALL`; else the
    plain certificate is returned. Decided like a convex minorant h = f - slack (``decide``).
    The weights pi implied by the computed gradient (float dbar and x_l) sum to 1 only to
    rounding, a perturbation of the gradient of about eps (1 + 2 / tau) that the round-off
    estimate covers. Like :func:`certify_reduced`, ``dist`` must come from a feasible G (PSD, unit
    diagonal: a barrier point is, by its Cholesky factor)."""
    samples = symmetry.samples if samples is None else samples
    if not equidistant_applies(loss):
        raise ValueError("certify_equidistant applies to the convex masked log-sum-exp 'out' only")
    table = symmetry.table
    plan = loss.positive_plan(table)
    rows = plan.pos_rows
    A = table.shape[0]
    # pi must be a distribution: the slopes are projected to sum to 0 along each row
    Y = np.zeros(table.shape)
    Y.ravel()[plan.pos_idx] = slopes
    y = Y.ravel()[plan.pos_idx] - plan.positive_mean(Y)[rows]
    lex_f, _ = loss.table_log_excess(table, dist, samples)
    lex_m, g, diag = reduced_certificate_matrix(loss, symmetry, dist, samples, positive_slopes=y)
    # the slack: per anchor row, x_j and y_j of its positives
    live = plan.anchors[rows] & (plan.pos_mult > 0)
    x = _exact_positive_offsets(table.gather(dist).ravel()[plan.pos_idx], plan.pos_mult, rows, live, loss.tau)
    peak = np.zeros(A)
    np.maximum.at(peak, rows[live], (np.abs(y) + np.abs(x))[live])
    rho = np.bincount(rows[live], weights=(plan.pos_mult * (1.01 * np.abs(x) + np.abs(y)))[live],
                      minlength=A) / np.maximum(plan.npos, 1.0)
    small = peak + rho
    excess = float(np.exp(lex_f))
    scale = 1.0 if table.weighted else loss._scale(as_samples(samples))
    slack = float(scale * np.sum(np.where(plan.anchors, table.anchor_weight, 0.0) * 4.0 * small ** 2))
    if not (small.max(initial=0.0) < EQUIDISTANT_SMALL and slack < excess):
        return certify_reduced(loss, symmetry, dist, tol, samples)
    values, _ = symmetry.spectrum(g, diag)
    lex_h = float(np.log(excess - slack)) if slack > 0 else lex_f
    # S_M was scaled by the equidistant form's excess exp(lex_m); decide wants it scaled by f - slack
    lam_min = float(np.min(values)) * float(np.exp(lex_m - lex_h))
    how = (f"exact spectrum of the invariant S of the rows' linear minorants (positives equidistant "
           f"to round-off; Fenchel-Young slack {slack:.3g}), group-level ({symmetry.describe()})")
    floor = loss.point_floor(samples, table=table, dist=dist)
    return decide(floor, lex_f, lam_min, symmetry.n, tol, how, symmetry.row_scale(g, diag), loss.tau,
                  log_excess_relaxed=lex_h, log_range=loss.log_geometry_range(samples),
                  floor_note=loss.floor_note, floor_scale=loss.floor_scale(samples))


def _exact_positive_offsets(D: np.ndarray, mult: np.ndarray, rows: np.ndarray, live: np.ndarray,
                            tau: float) -> np.ndarray:
    """Upper bounds on |x_j| = |dbar - D_j| / tau of the ``live`` positive terms (distances D,
    multiplicities, their rows), dbar the row's mean of D with multiplicities, computed in exact
    rational arithmetic from the float64 distances (the x of a point on the equidistant subspace
    are round-off, and (dbar - D_j) in float64 would carry errors of their own size)."""
    from fractions import Fraction

    out = np.zeros(D.size)
    order = np.flatnonzero(live)
    order = order[np.argsort(rows[order], kind="stable")]
    bounds = np.flatnonzero(np.diff(rows[order])) + 1
    for group in np.split(order, bounds):
        if group.size == 0:
            continue
        exact = [Fraction(float(d)) for d in D[group]]
        weights = [int(m) if float(m).is_integer() else Fraction(float(m)) for m in mult[group]]
        mean = sum((w * d for w, d in zip(weights, exact, strict=True)), Fraction(0)) / sum(weights)
        out[group] = [abs(float(mean - d)) for d in exact]
    return out * (1.0 + 4.0 * np.finfo(float).eps) / tau


def _dense_S(relax, G: np.ndarray, samples, H: np.ndarray | None):
    """(S / excess, distances, log excess) of the relaxation at G (from H when given)."""
    D = np.clip(1.0 - G, 0.0, 2.0) if H is None else relax.distances(H, samples)
    lex, Ft = relax.dense_log_excess(D, samples)
    g = 0.5 * (Ft + Ft.T)
    return g - np.diag(np.einsum("ij,ij->i", g, G)), D, lex


def dense_certificate_matrix(loss, H: np.ndarray, samples) -> np.ndarray:
    """The certificate's n x n matrix S (divided by the excess) at unit embeddings H, dense."""
    H = np.asarray(H, dtype=np.float64)
    return _dense_S(loss.relaxation(), H @ H.T, as_samples(samples), H)[0]


def _lambda_min(S: np.ndarray) -> tuple[float, int]:
    """Smallest eigenvalue of a symmetric S and the number of diagonal blocks it was found from:
    where S is block diagonal up to a permutation (a mini-batch program whose batch graph has
    several components), its spectrum is the union of the blocks' (exact, and far cheaper)."""
    from scipy.sparse.csgraph import connected_components

    nb, comp = connected_components(S != 0, directed=False)
    if nb == 1:
        return float(scipy.linalg.eigh(S, eigvals_only=True, subset_by_index=[0, 0])[0]), 1
    lam = np.inf
    for c in range(nb):
        idx = np.flatnonzero(comp == c)
        block = S[np.ix_(idx, idx)]
        lam = min(lam, float(block[0, 0]) if idx.size == 1 else
                  float(scipy.linalg.eigh(block, eigvals_only=True, subset_by_index=[0, 0])[0]))
    return lam, nb


def certify_gram(loss, G: np.ndarray, samples, tol: float = CERTIFY_TOL,
                 H: np.ndarray | None = None) -> Certificate:
    """Certificate of an explicit n x n Gram matrix (dense; smallest eigenvalue of S by LAPACK).
    With the factor H (G = H H^T) distances come from H to full precision, and the residual
    ||S H||_F is reported."""
    samples = as_samples(samples)
    relax = loss.relaxation()
    S, D, lex = _dense_S(relax, G, samples, H)
    n = G.shape[0]
    lam_min, blocks = _lambda_min(S)
    residual = None if H is None else np.linalg.norm(S @ H)
    scale = float(np.abs(S).sum(axis=1).max())
    lex_f = lex if relax is loss else loss.dense_log_excess(D, samples)[0]
    return decide(loss.point_floor(samples, dist=D), lex_f, lam_min, n, tol,
                  f"dense eigh of the {n}x{n} S (LAPACK)" + (f", by its {blocks} diagonal blocks"
                                                             if blocks > 1 else ""),
                  scale, loss.tau, residual,
                  log_excess_relaxed=None if relax is loss else lex,
                  log_range=loss.log_geometry_range(samples),
                  floor_note=loss.floor_note, floor_scale=loss.floor_scale(samples))


#: above this n the certificate of explicit embeddings is matrix-free (Lanczos), else dense
DENSE_MAX_N = 3000


class _Refuted(Exception):
    """A Rayleigh quotient of S already refutes the certificate (lambda_min <= it < bound)."""

    def __init__(self, value: float):
        self.value = value


def _block_rows(n: int, memory_budget: float, keep: bool) -> int:
    """Rows per block of S: about six (block x n) float64 buffers live while a block is built and
    used, in what the budget leaves beside S's kept blocks."""
    spare = memory_budget - (n * n * 8 if keep else 0.0)
    return int(np.clip(max(spare, 0.2 * memory_budget) / (6 * 8 * n), 64, 4096))


def _diagonal_pass(Ht, blocks, keep: bool):
    """One pass over the scaled gradient blocks F: lambda (S's diagonal is -lambda), the absolute
    row sums of S's off-diagonal part, and the blocks themselves where they are ``keep``."""
    import torch

    n = Ht.shape[0]
    cached = []
    lam = torch.zeros(n, dtype=torch.float64, device=Ht.device)
    absrow = torch.zeros(n, dtype=torch.float64, device=Ht.device)
    for start, stop, F in blocks():
        FG = F * (Ht[start:stop] @ Ht.T)
        lam[start:stop] += 0.5 * FG.sum(1)
        lam += 0.5 * FG.sum(0)
        absrow[start:stop] += 0.5 * F.abs().sum(1)
        absrow += 0.5 * F.abs().sum(0)
        del FG
        if keep:
            cached.append((start, stop, F))
    return lam, absrow, cached


def _refutation_threshold(lex_f: float, log_range: float, floor_scale, n: int, tol: float):
    """(over_scale, refute_below): the excess over the scale the verdict is judged on, and the
    Rayleigh quotient below which the certificate is refuted (gap / scale = n (-rq) excess / scale)."""
    over_scale = float(np.exp(lex_f - log_range)) if np.isfinite(lex_f) and log_range < lex_f else 1.0
    refute_below = -tol / (n * over_scale)
    if floor_scale is not None:  # an absolute verdict (see _decide_absolute)
        excess = float(np.exp(lex_f))
        over_scale = excess / max(excess, floor_scale)
        # where the excess itself is within tol of the scale it bounds the gap: nothing refutes
        refute_below = -np.inf if over_scale <= tol else -tol / (n * over_scale)
    return over_scale, refute_below


class _BlockedS:
    """S = g - Diag(lambda) applied block by block (the kept blocks, or ``blocks()`` recomputed per
    product). Each product gives Rayleigh quotients, upper bounds on lambda_min: the smallest so far
    is ``best``; one below ``refute_below`` raises :class:`_Refuted`, and so (with nan) does a
    product beyond ``max_products``. ``passes`` counts the products."""

    def __init__(self, lam, blocks, cached, keep: bool, refute_below: float, max_products: int, progress):
        self.lam, self.blocks, self.cached, self.keep = lam, blocks, cached, keep
        self.refute_below, self.max_products, self.progress = refute_below, max_products, progress
        self.passes, self.best = 0, np.inf

    def apply(self, V):
        """S V for a vector or an (n, m) block V (numpy in and out)."""
        import torch

        n = self.lam.shape[0]
        V = np.asarray(V).reshape(n, -1)
        Vt = torch.as_tensor(V, dtype=torch.float64, device=self.lam.device)
        out = -self.lam[:, None] * Vt
        for start, stop, F in (self.cached if self.keep else self.blocks()):
            out[start:stop] += 0.5 * (F @ Vt)
            out += 0.5 * (F.T @ Vt[start:stop])
        out = out.cpu().numpy()
        self.passes += 1
        rq = np.einsum("ij,ij->j", V, out) / np.maximum(np.einsum("ij,ij->j", V, V), 1e-300)
        self.best = min(self.best, float(rq.min()))
        if self.progress is not None and (not self.keep or self.passes % 25 == 0):
            self.progress(f"certificate: product {self.passes} with S, smallest Rayleigh quotient so far "
                          f"{self.best * n:.3e} x excess / n")
        if self.best < self.refute_below:
            raise _Refuted(self.best)
        if self.passes > self.max_products:
            raise _Refuted(np.nan)
        return out

    def residual(self, H: np.ndarray):
        """||S H||_F, or None where a Rayleigh quotient has refuted the certificate (or it would
        take a product beyond the limit)."""
        if self.best < self.refute_below:
            return None
        try:
            return np.linalg.norm(self.apply(H))
        except _Refuted:
            return None


def _smallest_eigenvalue(S: _BlockedS, H: np.ndarray, keep: bool, lanczos_tol: float,
                         max_products: int) -> tuple[float, str]:
    """lambda_min of S and how it was found: Lanczos (scipy eigsh 'SA') when S's blocks are kept;
    otherwise LOBPCG (scipy lobpcg), a block of vectors started from H (the near-null vectors of
    an optimum) and 8 random ones, which amortises one pass over the blocks over many vectors."""
    from scipy.sparse.linalg import LinearOperator, eigsh, lobpcg

    n = H.shape[0]
    op = LinearOperator((n, n), matvec=S.apply, matmat=S.apply, dtype=np.float64)
    if keep:
        w = float(eigsh(op, k=1, which="SA", tol=lanczos_tol, return_eigenvectors=False).min())
        return w, f"Lanczos (scipy eigsh 'SA', tol {lanczos_tol:g})"
    rng = np.random.default_rng(0)
    U, sv, _ = np.linalg.svd(H, full_matrices=False)
    X0 = np.column_stack([U[:, sv > 1e-8 * sv[0]], rng.standard_normal((n, 8))])
    vals = lobpcg(op, X0, tol=lanczos_tol, maxiter=max_products, largest=False)[0]
    return float(np.min(vals)), f"LOBPCG (scipy lobpcg, block {X0.shape[1]}, tol {lanczos_tol:g})"


def _refuted_reason(cert: Certificate, rq_gap: float, tol: float) -> Certificate:
    """The certificate fails by at least the Rayleigh quotient's margin ``rq_gap``: its reason
    says so."""
    what = "max(excess, the loss's scale)" if cert.scale_kind == "floor" else f"the {cert.scale_kind}"
    return replace(cert, reason=f"gap bound is at least {rq_gap:.2e} times {what} "
                   f"(Rayleigh quotient), above tol {tol:g}")


def certify_embeddings(loss, H: np.ndarray, samples, tol: float = CERTIFY_TOL,
                       dense_max_n: int = DENSE_MAX_N, block: int | None = None,
                       lanczos_tol: float = 1e-10, device: str = "cpu",
                       memory_budget: float = 2e9, progress=None,
                       max_products: int = 300) -> Certificate:
    """Certificate of unit embeddings H (n, d), samples ordered by class.

    Dense eigendecomposition of S up to ``dense_max_n``. Beyond, matrix-free in float64 on
    ``device`` (torch), within ``memory_budget`` bytes: S is applied block by block from H and
    its n x n blocks are kept between products only if they fit in the budget (then Lanczos,
    scipy eigsh 'SA'); otherwise each product recomputes them, and LOBPCG (scipy lobpcg, block
    of d + 8 vectors started from H, the near-null vectors of an optimum) amortises one pass over
    many vectors. Every vector S is applied to gives a Rayleigh quotient, an upper bound on
    lambda_min: as soon as one shows gap_bound > tol * excess the answer is "not certified",
    exactly, and the search stops. ``progress(message)`` gets a line per pass over the blocks.
    """
    samples = as_samples(samples)
    H = np.asarray(H, dtype=np.float64)
    n, d = H.shape
    if n <= dense_max_n:
        return certify_gram(loss, H @ H.T, samples, tol, H=H)
    relax = loss.relaxation()
    import torch

    keep = n * n * 8 <= 0.8 * memory_budget
    if block is None:
        block = _block_rows(n, memory_budget, keep)
    Ht = torch.as_tensor(H, dtype=torch.float64, device=device)
    lex, blocks = relax.scaled_gradient_blocks(Ht, samples, block)
    lex_f = lex if relax is loss else loss.scaled_gradient_blocks(Ht, samples, block)[0]
    lam, absrow, cached = _diagonal_pass(Ht, blocks, keep)
    scale = float((absrow + lam.abs()).max())
    gershgorin = float((-lam - absrow).min())  # a lower bound on lambda_min (S's diagonal is -lam)
    if progress is not None:
        need = f"{n * n * 8 / 1e9:.1f} GB > budget {memory_budget / 1e9:.1f} GB"
        progress(f"certificate: n = {n}, S in row blocks of {block}, "
                 + ("kept in memory" if keep else f"recomputed for every product (n x n: {need})"))
    log_range = loss.log_geometry_range(samples)
    floor = loss.point_floor(samples, H=Ht)
    floor_scale = loss.floor_scale(samples)
    over_scale, refute_below = _refutation_threshold(lex_f, log_range, floor_scale, n, tol)
    S = _BlockedS(lam, blocks, cached, keep, refute_below, max_products, progress)
    common = dict(log_excess_relaxed=None if relax is loss else lex, log_range=log_range,
                  floor_note=loss.floor_note, floor_scale=floor_scale)
    refuted = False
    how = (f"matrix-free on {Ht.device}, S applied in row blocks of {block} "
           + ("kept in memory" if keep else "recomputed per product"))
    try:
        w, method = _smallest_eigenvalue(S, H, keep, lanczos_tol, max_products)
        how = f"{how}; {method}"
        w = min(w, S.best)
    except _Refuted as stop:
        if np.isnan(stop.value):
            return decide(floor, lex_f, S.best, n, tol, f"{how}: no convergence in "
                          f"{max_products} products; smallest Rayleigh quotient reported", scale, loss.tau,
                          None, unresolved=f"unresolved: the eigenvalue search did not converge in "
                          f"{max_products} products with S", **common)
        w, refuted = min(gershgorin, stop.value), True
        how = (f"{how}; stopped after {S.passes} products: a Rayleigh quotient {stop.value:.3e} (an "
               "upper bound on lambda_min) already refutes the certificate; lambda_min and the gap bound "
               "reported are Gershgorin's lower bound on lambda_min")
        rq_gap = n * max(0.0, -stop.value) * over_scale
    residual = S.residual(H)
    cert = decide(floor, lex_f, w, n, tol, f"{how}, {S.passes} products", scale, loss.tau, residual, **common)
    if refuted:  # the certificate fails by at least the Rayleigh quotient's margin
        cert = _refuted_reason(cert, rq_gap, tol)
    return cert


def certify_collapsed(loss, H: np.ndarray, samples, tol: float = CERTIFY_TOL,
                      collapse_tol: float = 1e-9):
    """Class-level certificate of the class-averaged Gram of H (H H^T averaged over permutations
    inside classes; equal to H H^T when every class is exactly collapsed), for embeddings whose
    classes are collapsed (within-class cosine >= 1 - collapse_tol); exact for any n,
    O(n d + k^3). None if H is not collapsed, or if the loss is not invariant under permutations
    inside classes (it distinguishes views, or is summed over mini-batches). Within-class
    distances come from class-centred coordinates."""
    from ufm.symmetry import ClassSymmetry

    samples = as_samples(samples)
    if loss.uses_views or samples.batches is not None or not loss.has_relaxation:
        return None
    sym = ClassSymmetry(samples, orbits=False)
    x, dist = sym.average_embeddings(np.asarray(H, dtype=np.float64))
    within = sym.to_groupgram(x).within
    if np.any((np.asarray(samples.counts) >= 2) & (within < 1 - collapse_tol)):
        return None
    return certify_reduced(loss, sym, dist, tol, samples)
