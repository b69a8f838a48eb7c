"""Mini-batch programs over type-invariant G, solved by a barrier method (Newton steps).

With mini-batches, samples of one *type* (a class and the set of batches holding it) are
interchangeable, so the relaxation, convex in G, has an optimum invariant under permutations inside
types (:class:`ufm.symmetry.BatchTypeSymmetry`). Such a G is fixed by the q x q Gram C of the type
means: C_aa = |mean_a|^2 <= 1 (= 1 for a type of one sample), the distance inside type a is
(1 - C_aa) n_a / (n_a - 1), and between types a and b it is 1 - C_ab; G is PSD iff C is. So the
program is the small SDP

    minimise h(C)  subject to  C PSD,  C_aa <= 1  (= 1 for a one-sample type),

with q (q + 1) / 2 unknowns at most, whatever n.

Why a barrier method, and neither factors nor a conic solver: with overlapping batches at small tau
the optimum is a frame of the classes plus spreads of order 1e-5 between the types of one class
(windows of 12 over 36 samples at tau 0.1: C has eigenvalues 9, 8 and fifteen between 1e-6 and
1e-4). Factors X (C = X X^T) then have columns of size 1e-3 whose gradient vanishes with them
(L-BFGS stops with the gap at half the excess), and a conic solver's exponential cones resolve the
loss to 1e-8 of its value, 1e-2 of the excess there. Here Newton steps minimise

    phi_t = t (h - floor) - log det C - sum_a log E_aa      (types of several samples)

over the distances E = 1 - C themselves (E_ab = 1 - m_a.m_b, E_aa = 1 - |m_a|^2: at tau 0.05
1 - C would leave the 1e-7 distances between types of a class with 1e-9 of round-off, enough to
lose the certificate), with log det C taken as that of the Gram of each class's reference mean and
the other types' offsets from it (sums of small distances). h - floor and its gradient come from
the losses' log-excess forms (exact to float64's relative precision; t is carried as a log, so the
excess may lie far below float64's range). The Hessian of h is assembled row by row of the loss's
table from central differences of the rows' exact derivatives, one pair of evaluations per term
column (rows are independent functions of their own terms); that of the barrier is in closed
form. Each outer step multiplies t by :data:`MU` (Boyd and Vandenberghe 2004, section 11.3); the
exact certificate of the full program (``solvers.certificate.certify_reduced``, O(q^3): S inherits
G's symmetry) decides when to stop.

Small tau (measured): the optimum's types of a class sit 1e-6 to 1e-4 apart (at tau 0.04 to
0.1), while each anchor's positives must be equidistant to within about tau x (the excess's size):
at tau 0.02, 1e-32, far below float64's resolution of distances of 1e-6. There the positives' part
of the excess (e^x - 1 - x of x = (dbar - D) / tau) and its gradient are round-off and the Newton
steps stall. SupCon is then solved on the subspace where every row's positives are equidistant
(unknowns tied with fixed ratios: :meth:`TypeProgram._equidistant_basis`), where that part is 0
exactly (the ``positive_slopes`` form of ``ufm.losses.masked_lse``); the full program's optimum
leaves it only by the x above, so its best point is optimal within the tolerance where the
certificate says so. That certificate takes each row's log-sum-exp through
a linear minorant (Fenchel-Young) whose positives' slopes cancel the barrier's residual
(:meth:`TypeProgram.certificate_slopes`), plus the minorants' slack
(``solvers.certificate.certify_equidistant``). That program goes first where the start's excess
per anchor row is below :data:`EQUIDISTANT_FIRST`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg
import scipy.sparse

from solvers.certificate import Certificate, certify_equidistant, certify_reduced, equidistant_applies

#: factor on t per outer step
MU = 10.0
#: Newton steps in all, at most (about 1 s each at q = 87 types)
MAX_NEWTON = 300
#: the start: a type-mean Gram shrunk by the first of these towards a strictly feasible diagonal
#: that costs at most log 2 of log excess (:func:`_interior_start`)
START_SHRINKS = 10.0 ** -np.arange(2, 15)
#: inner loop: stop when the Newton decrement lambda^2 / 2 is below this
DECREMENT_TOL = 1e-9
#: central-difference step on term distances for the Hessian of h, times tau (h varies on the
#: scale tau in distance: truncation (step / tau)^2 and round-off eps tau / step balance here)
HESSIAN_STEP = 5e-6
#: SupCon's equidistant-positives program goes first where the start's excess per anchor row is
#: below this (measured on windows of 12 over 36 samples: the plain program certifies at tau 0.05,
#: 3e-13 per row, and stalls at tau 0.04, 2e-16; the equidistant one certifies at 0.02-0.05)
EQUIDISTANT_FIRST = 1e-14


@dataclass
class TypeRun:
    """The barrier solve's best point: E = 1 - C (q x q, C the type means' Gram), its distance
    vector (``BatchTypeSymmetry`` layout), certificate, Newton and outer steps, seconds, and why
    it stopped."""

    E: np.ndarray
    factors: np.ndarray  # TypeProgram.factors of E: for BatchTypeSymmetry.lift
    dist: np.ndarray
    certificate: Certificate
    newton_steps: int
    outer_steps: int
    seconds: float
    reason: str
    #: the positives' slopes of an equidistant-positives certificate (``certify_equidistant``), else None
    slopes: np.ndarray | None = None

    @property
    def C(self) -> np.ndarray:
        C = 1.0 - self.E
        np.fill_diagonal(C, 1.0 - np.diag(self.E))
        return C


class TypeProgram:
    """h over the type-mean Gram C, in the coordinates E = 1 - C (E_ab = 1 - m_a.m_b, E_aa =
    1 - |m_a|^2: the distances of the invariant G, exact where they are tiny, where 1 - C is
    round-off): distances, value and gradient, Hessian, barrier.

    The unknowns v are E's entries on and above the diagonal, without the diagonal of one-sample
    types (fixed at 0). The barrier's log det C is taken as log det K, K the Gram of each class's
    reference type mean and the other types' offsets from it (K = Q C Q^T, det Q = 1, computed from
    E: its offset block holds sums of small distances, never differences of entries near 1), so
    that it resolves types of a class that nearly coincide."""

    def __init__(self, loss, symmetry, equidistant: bool = False):
        self.relax = loss.relaxation()
        self.sym = symmetry
        self.table = symmetry.table
        q = symmetry.q
        counts = symmetry.groups.count
        self.q, self.counts, self.multi = q, counts, counts >= 2
        iu, ju = np.triu_indices(q)
        keep = (iu != ju) | self.multi[iu]
        self.I, self.J = iu[keep], ju[keep]
        self.m = int(self.I.size)
        self.on_diagonal = self.I == self.J
        var = -np.ones((q, q), dtype=np.int64)
        var[self.I, self.J] = np.arange(self.m)
        var[self.J, self.I] = np.arange(self.m)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.spread_scale = np.where(self.multi, counts / (counts - 1.0), 0.0)
        # each table term's unknown and d (term distance) / d v (0: none, or padding)
        v_idx = self.table.value_index
        term_var = -np.ones(v_idx.shape, dtype=np.int64)
        coef = np.zeros(v_idx.shape)
        within = v_idx < q
        a = v_idx[within]
        term_var[within] = var[a, a]
        coef[within] = self.spread_scale[a]
        cross = v_idx >= 2 * q
        r, c = np.divmod(v_idx[cross] - 2 * q, q)
        term_var[cross] = np.where(r != c, var[r, c], -1)
        coef[cross] = 1.0
        coef[(term_var < 0) | (self.table.mult == 0)] = 0.0
        self.term_var, self.term_coef = np.maximum(term_var, 0), coef
        # K = Q C Q^T = 1_R 1_R^T - Q E Q^T: row a of Q is e_a for a class's first type (its
        # reference), e_a - e_ref for the others
        # (rows in the order: references, then the others, so that a Cholesky factor forms the
        # offsets' block after the references' O(1) block)
        label = symmetry.type_label
        self.ref = np.array([np.flatnonzero(label == label[a])[0] for a in range(q)])
        is_ref = self.ref == np.arange(q)
        self.order = np.concatenate([np.flatnonzero(is_ref), np.flatnonzero(~is_ref)])
        Q = np.eye(q)
        others = np.flatnonzero(~is_ref)
        Q[others, self.ref[others]] = -1.0
        self.Q = Q[self.order]
        self.ones_ref = is_ref[self.order].astype(float)
        self.basis = self._equidistant_basis() if equidistant else None

    @cached_property
    def slopes(self) -> np.ndarray | None:
        """None: h itself; with a basis, zeros: h with every row's positives equidistant (the
        ``positive_slopes`` form), for the unknowns w of :attr:`basis`."""
        return None if self.basis is None else np.zeros(self.positive_terms.size)

    # ---- the equidistant subspace ----------------------------------------------------------------
    @cached_property
    def positive_terms(self) -> np.ndarray:
        """Flat (row, term) indices of the table's positive terms (the order of slopes)."""
        return self.relax.positive_plan(self.table).pos_idx

    def _equidistant_basis(self):
        """``(group, scale)``: v = scale * w[group], the unknowns for which every anchor row's
        positives are equidistant (term distance coef x v equal along each row: a union of
        unknowns with fixed ratios), or None where the ratios conflict around a cycle (then
        the subspace pins some distances to 0, outside the barrier's domain)."""
        t = self.table
        rows, cols = np.divmod(self.positive_terms, t.shape[1])
        live = (self.term_coef[rows, cols] != 0) & (t.anchor_weight[rows] > 0)
        parent = np.arange(self.m)
        ratio = np.ones(self.m)  # v[a] = ratio[a] * v[parent[a]]

        def find(a):
            r = 1.0
            while parent[a] != a:
                r *= ratio[a]
                a = parent[a]
            return a, r

        for row in np.unique(rows[live]):
            pick = live & (rows == row)
            var, coef = self.term_var[row, cols[pick]], self.term_coef[row, cols[pick]]
            root0, r0 = find(var[0])
            for a, c in zip(var[1:], coef[1:], strict=True):
                root, r = find(a)
                want = coef[0] * r0 / c  # c v_a = coef0 v_0: v_a / v_root0
                if root == root0:
                    if abs(r - want) > 1e-12 * want:
                        return None
                    continue
                parent[root], ratio[root] = root0, want / r
        roots, scale = zip(*(find(a) for a in range(self.m)), strict=True)
        _, group = np.unique(np.array(roots), return_inverse=True)
        return group, np.array(scale)

    def certificate_slopes(self, E: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """Slopes y (``positive_slopes``: one per positive term, summing to 0 along each row with
        multiplicities) whose minorant gradient cancels ``residual`` (v-space, in units of the
        gradient of log(h - floor)) by least squares: at a barrier point on the equidistant
        subspace, residual = grad / (t (h - floor)) lies in the span of the positives' own
        directions, and g + J^T y = -barrier gradient / (t (h - floor)), a PSD dual
        (:func:`solvers.certificate.certify_equidistant`)."""
        t = self.table
        X = t.gather(self.distances(E))
        zeros = np.zeros(self.positive_terms.size)
        _, W0 = self.relax.table_row_derivatives(t, X, zeros)
        _, W1 = self.relax.table_row_derivatives(t, X, zeros + 1.0)
        pidx = self.positive_terms
        rows, cols = np.divmod(pidx, t.shape[1])
        e = (W1 - W0).ravel()[pidx]  # d W_k / d y_k
        col = -self.term_coef[rows, cols] * t.anchor_weight[rows] * t.mult[rows, cols] * e
        live = np.flatnonzero(col != 0)
        y = np.zeros(pidx.size)
        if live.size == 0:
            return y
        # y = N z: the first live term of each row takes minus the others' weighted sum
        mult = t.mult[rows, cols]
        owners, at = np.unique(rows[live], return_index=True)  # rows ascend with pos_idx
        first = np.full(t.shape[0], -1)
        first[owners] = live[at]  # each row's first live term
        free = live[first[rows[live]] != live]
        if free.size == 0:
            return y
        ref = first[rows[free]]
        J = np.zeros((self.m, free.size))
        J[self.term_var[rows[free], cols[free]], np.arange(free.size)] += col[free]
        np.add.at(J, (self.term_var[rows[ref], cols[ref]], np.arange(free.size)),
                  -col[ref] * mult[free] / mult[ref])
        z = np.linalg.lstsq(J, -residual, rcond=None)[0]
        y[free] = z
        np.add.at(y, ref, -z * mult[free] / mult[ref])
        return y

    def to_unknowns(self, w: np.ndarray) -> np.ndarray:
        """v of the basis's unknowns w (identity without a basis)."""
        if self.basis is None:
            return w
        group, scale = self.basis
        return scale * w[group]

    def from_unknowns(self, v: np.ndarray) -> np.ndarray:
        """Least-squares w of v (its projection on the subspace; identity without a basis)."""
        if self.basis is None:
            return v
        group, scale = self.basis
        k = int(group.max()) + 1
        return np.bincount(group, scale * v, k) / np.bincount(group, scale * scale, k)

    def reduce_gradient(self, g: np.ndarray) -> np.ndarray:
        if self.basis is None:
            return g
        group, scale = self.basis
        return np.bincount(group, scale * g, int(group.max()) + 1)

    def reduce_hessian(self, H: np.ndarray) -> np.ndarray:
        if self.basis is None:
            return H
        group, scale = self.basis
        k = int(group.max()) + 1
        T = scipy.sparse.csr_matrix((scale, (np.arange(self.m), group)), shape=(self.m, k))
        return np.asarray(T.T @ np.asarray(T.T @ H).T)  # T^T H T (H symmetric)

    # ---- E <-> v, distances -------------------------------------------------------------------
    def matrix(self, v: np.ndarray) -> np.ndarray:
        E = np.zeros((self.q, self.q))
        E[self.I, self.J] = v
        E[self.J, self.I] = v
        return E

    def unknowns(self, E: np.ndarray) -> np.ndarray:
        return E[self.I, self.J].copy()

    def distances(self, E: np.ndarray) -> np.ndarray:
        """The distance vector 1 - x of the invariant G (``ClassSymmetry`` layout over types)."""
        q = self.q
        within = np.diag(E) * self.spread_scale
        cross = E.copy()
        np.fill_diagonal(cross, 0.0)
        return np.concatenate([within, np.zeros(q), cross.ravel()])

    # ---- h ---------------------------------------------------------------------------------------
    def log_excess_and_gradient(self, E: np.ndarray):
        """(log(h - floor), d log(h - floor) / d v)."""
        q = self.q
        lex, tot = self.relax.table_log_excess(self.table, self.distances(E), positive_slopes=self.slopes)
        cross = tot[2 * q:].reshape(q, q)  # d / d x, x = 1 - distance
        g = np.where(self.on_diagonal, -tot[self.I] * self.spread_scale[self.I],
                     -(cross[self.I, self.J] + cross[self.J, self.I]))
        return lex, g

    def hessian(self, E: np.ndarray, log_weight: float) -> np.ndarray:
        """exp(log_weight) x the Hessian of h - floor in v: per term column t, central differences
        of every row's exact derivatives (``Loss.table_row_derivatives``) as term t moves."""
        table, m = self.table, self.m
        X = table.gather(self.distances(E))
        columns, flat, pick = self._hessian_pattern
        step = HESSIAN_STEP * (getattr(self.relax, "tau", None) or 1.0)
        weights = []
        for t, live in zip(columns, pick, strict=True):
            Xp, Xm = X.copy(), X.copy()
            Xp[:, t] += step
            Xm[:, t] -= step
            lp, Wp = self.relax.table_row_derivatives(table, Xp, self.slopes)
            lm, Wm = self.relax.table_row_derivatives(table, Xm, self.slopes)
            # d (per-entry derivative in G) / d G_term t: a distance step +s is a G step -s
            D = (Wm * math.exp(lm + log_weight) - Wp * math.exp(lp + log_weight)) / (2.0 * step)
            weights.append((self._term_weight * self.term_coef[:, t][:, None] * D)[live])
        H = np.bincount(flat, weights=np.concatenate(weights), minlength=m * m).reshape(m, m)
        return 0.5 * (H + H.T)

    @cached_property
    def _term_weight(self) -> np.ndarray:
        t = self.table
        return t.anchor_weight[:, None] * t.mult * self.term_coef

    @cached_property
    def _hessian_pattern(self):
        """The term columns that hold an unknown, and per column the (row, term) entries that pair
        two unknowns (a mask) with their flat index in the m x m Hessian (all columns' together)."""
        columns = np.flatnonzero((self.term_coef != 0).any(axis=0))
        flat, pick = [], []
        for t in columns:
            live = (self._term_weight != 0) & (self.term_coef[:, t][:, None] != 0)
            pick.append(live)
            cols = np.broadcast_to(self.term_var[:, t][:, None], live.shape)[live]
            flat.append(self.term_var[live] * self.m + cols)
        return columns, np.concatenate(flat) if flat else np.zeros(0, dtype=np.int64), pick

    # ---- barrier -------------------------------------------------------------------------------
    def offsets_factor(self, E: np.ndarray) -> np.ndarray | None:
        """Cholesky factor of K = Q C Q^T (None where K is not positive definite)."""
        K = np.outer(self.ones_ref, self.ones_ref) - self.Q @ E @ self.Q.T
        try:
            return np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            return None

    def factors(self, E: np.ndarray) -> np.ndarray:
        """Factor rows [m_a, 0, sqrt(E_aa)] (``ClassSymmetry`` layout over types: the type means
        and the spread inside each type) of a strictly feasible E, for
        :meth:`ufm.symmetry.BatchTypeSymmetry.lift`. The means are a class's reference mean plus
        the type's offset, both from the Cholesky factor of K, so that types of one class keep
        their small distances to full relative precision (1 - C would leave them round-off)."""
        L = self.offsets_factor(E)
        if L is None:
            raise ValueError("E is not strictly feasible")
        Y = np.empty_like(L)
        Y[self.order] = L
        means = Y.copy()
        others = np.flatnonzero(self.ref != np.arange(self.q))
        means[others] += Y[self.ref[others]]
        spread = np.sqrt(np.where(self.multi, np.clip(np.diag(E), 0.0, None), 0.0))
        return np.column_stack([means, np.zeros(self.q), spread])

    def barrier(self, E: np.ndarray, order: int = 2):
        """(-log det C - sum log E_aa (types of several samples), gradient, Hessian) in v, or None
        outside the domain (C not positive definite, or a type without spread); derivatives up to
        ``order`` only, None beyond (line searches want the value: the Hessian is m x m)."""
        u = np.diag(E)[self.multi]
        if np.any(u <= 0.0):
            return None
        L = self.offsets_factor(E)
        if L is None:
            return None
        value = -2.0 * float(np.log(np.diag(L)).sum()) - float(np.log(u).sum())
        if order == 0:
            return value, None, None
        A = self.Q.T @ scipy.linalg.cho_solve((L, True), self.Q)  # C^{-1}
        A = 0.5 * (A + A.T)
        rows, cols, diag = self.I, self.J, self.on_diagonal
        spread = np.zeros(self.q)
        spread[self.multi] = 1.0 / u
        # d (-log det C) / d E = C^{-1} (C = 1 1^T - E)
        g = np.where(diag, A[rows, cols] - spread[rows], 2.0 * A[rows, cols])
        if order == 1:
            return value, g, None
        # d^2 (-log det C)[E_k, E_l] = tr(A E_k A E_l) with E_k = e_i e_j^T + e_j e_i^T (i < j) or
        # e_i e_i^T: (c_k c_l / 2) (A_{j_k i_l} A_{i_k j_l} + A_{j_k j_l} A_{i_k i_l}), c = 2 off
        # the diagonal and 1 on it
        c = np.where(diag, 1.0, 2.0)
        AI, AJ = A[rows], A[cols]
        H = AJ[:, rows]
        H *= AI[:, cols]
        other = AJ[:, cols]
        other *= AI[:, rows]
        H += other
        H *= np.outer(c, c / 2.0)
        k = np.flatnonzero(diag)
        H[k, k] += spread[rows[k]] ** 2
        return value, g, H


def _newton_direction(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """-H^{-1} g by Cholesky, with a growing ridge where H is not numerically positive definite."""
    ridge = 0.0
    scale = float(np.abs(np.diag(H)).max()) or 1.0
    for _ in range(20):
        try:
            factor = scipy.linalg.cho_factor(H + ridge * np.eye(H.shape[0]), lower=True)
            return -scipy.linalg.cho_solve(factor, g)
        except np.linalg.LinAlgError:
            ridge = max(1e-14 * scale, 10.0 * ridge)
    return -g / scale


def _rank(cert: Certificate) -> tuple:
    return (not cert.certified, cert.gap_relative_to_scale, cert.value)


def tied_start(symmetry, H: np.ndarray) -> np.ndarray:
    """C of embeddings H (n, d) averaged inside types (their type means' Gram)."""
    q = symmetry.q
    sums = np.zeros((q, H.shape[1]))
    np.add.at(sums, symmetry.type_of, H)
    means = sums / symmetry.groups.count[:, None]
    return means @ means.T


def solve_types(loss, samples, symmetry, tol: float, start: np.ndarray | None = None,
                max_newton: int = MAX_NEWTON, callback=None) -> TypeRun:
    """Minimise the relaxation over type-invariant G by the barrier method (see the module), from
    ``start`` (a type-mean Gram, e.g. :func:`tied_start` of a tied point; default: types of a class
    together, classes apart) moved into the interior (:func:`_interior_start`). Stops once the
    exact certificate holds with a 2x margin, when a Newton step no longer lowers phi_t at the
    largest t, or after ``max_newton`` steps; returns the best point seen (certified first).
    For SupCon the program is also solved on the subspace where every row's positives are
    equidistant (the positives' part of the excess is then 0, and its round-off no longer drives
    the steps), certified through the rows' linear minorants
    (``solvers.certificate.certify_equidistant``): first where the start's excess per anchor row
    is below :data:`EQUIDISTANT_FIRST` (small tau), else after the plain program where that is not
    certified; each with ``max_newton`` steps. ``callback(steps, log excess)`` reports progress."""
    t0 = time.perf_counter()
    if start is None:
        lab = symmetry.type_label
        k = int(lab.max()) + 1
        start = np.where(lab[:, None] == lab[None, :], 1.0, -1.0 / max(k - 1, 1))
    start = np.asarray(start, dtype=float)
    programs = [TypeProgram(loss, symmetry)]
    if equidistant_applies(loss):
        equi = TypeProgram(loss, symmetry, equidistant=True)
        if equi.basis is not None:
            programs.append(equi)
            rows = float(symmetry.table.anchor_weight.sum())
            if _start_log_excess(programs[0], start) - math.log(rows) < math.log(EQUIDISTANT_FIRST):
                programs.reverse()
    best, steps, outer, reason, prog = None, 0, 0, "step_limit", programs[0]
    for candidate in programs:
        found, s, o, r = _barrier(candidate, loss, samples, tol, start, max_newton, callback,
                                  first_step=steps)
        steps, outer = steps + s, outer + o
        if best is None or _rank(found[2]) < _rank(best[2]):
            best, reason, prog = found, r, candidate
        if best[2].certified:
            break
    E, dist, cert, slopes = best
    if cert.certified:
        reason = "certified"
    return TypeRun(E, prog.factors(E), dist, cert, steps, outer, time.perf_counter() - t0, reason, slopes)


def _barrier(prog: TypeProgram, loss, samples, tol, start, max_newton, callback, first_step=0):
    """The barrier method on ``prog`` (in its basis's unknowns w): ``((E, dist, certificate, slopes
    or None) of the best point, Newton steps, outer steps, stop reason)``."""
    symmetry = prog.sym
    w_unk, lex = _interior_start(prog, start)
    E = prog.matrix(prog.to_unknowns(w_unk))
    # t: where t grad(h) best balances the barrier's gradient at the start (least squares), so
    # that the first centring step stays near a good start
    g_lex = prog.reduce_gradient(prog.log_excess_and_gradient(E)[1])
    b_grad = prog.reduce_gradient(prog.barrier(E, order=1)[1])
    t_ls = -float(g_lex @ b_grad) / float(g_lex @ g_lex) if np.any(g_lex) else 0.0
    log_t = max(math.log(max(w_unk.size, 1)), math.log(t_ls) if t_ls > 0 else -np.inf) - lex
    best, steps, outer, reason = None, 0, 0, "step_limit"
    while steps < max_newton:
        outer += 1
        stalled = False
        for _ in range(50):
            E = prog.matrix(prog.to_unknowns(w_unk))
            lex, g_lex = prog.log_excess_and_gradient(E)
            b_val, b_grad, b_hess = prog.barrier(E)
            weight = math.exp(log_t + lex)  # t (h - floor)
            grad = prog.reduce_gradient(weight * g_lex + b_grad)
            hess = prog.reduce_hessian(prog.hessian(E, log_t) + b_hess)
            step = _newton_direction(hess, grad)
            decrement = float(-grad @ step)
            steps += 1
            if callback is not None:
                callback(first_step + steps, lex)
            if decrement / 2.0 <= DECREMENT_TOL or steps >= max_newton:
                break
            phi0, s = weight + b_val, 1.0
            while s > 1e-10:
                En = prog.matrix(prog.to_unknowns(w_unk + s * step))
                b = prog.barrier(En, order=0)
                if b is not None:
                    lex_n, _ = prog.log_excess_and_gradient(En)
                    if math.exp(log_t + lex_n) + b[0] <= phi0 - 0.25 * s * decrement:
                        break
                s *= 0.5
            if s <= 1e-10:
                stalled = True
                break
            w_unk = w_unk + s * step
        E = prog.matrix(prog.to_unknowns(w_unk))
        dist = prog.distances(E)
        slopes = None
        if prog.basis is None:
            cert = certify_reduced(loss, symmetry, dist, tol, samples)
        else:
            lex, g_lex = prog.log_excess_and_gradient(E)
            residual = g_lex + prog.barrier(E, order=1)[1] / math.exp(log_t + lex)
            slopes = prog.certificate_slopes(E, residual)
            cert = certify_equidistant(loss, symmetry, dist, slopes, tol, samples)
        if best is None or _rank(cert) < _rank(best[2]):
            best = (E, dist, cert, slopes)
        if cert.certified and cert.gap_relative_to_scale <= 0.5 * tol:
            reason = "certified"
            break
        if stalled and outer > 1 and best[2] is not cert:
            reason = "stalled"
            break
        log_t += math.log(MU)
    return best, steps, outer, reason


def _start_log_excess(prog: TypeProgram, start: np.ndarray) -> float:
    """Log excess of ``prog`` at a type-mean Gram ``start`` itself (no spread inside types)."""
    E0 = 1.0 - start
    np.fill_diagonal(E0, 0.0)
    return prog.log_excess_and_gradient(E0)[0]


def _interior_start(prog: TypeProgram, start: np.ndarray):
    """(unknowns w of ``prog``'s basis, log excess) of ``start`` (a type-mean Gram) moved strictly
    inside the domain (and projected on the basis's subspace): C = (1 - d) start + d D (D
    diagonal, 1 / n_a: each type's samples then sit as far from each other as from the other
    types of their class, d apart, so that every row's positives are equidistant where the start
    ties each class), with the largest d in :data:`START_SHRINKS` whose log excess is within log
    2 of the start's own, else the d of least log excess (at small tau a fixed shrink spreads each
    class far more than its optimum does: each decade of d costs two of excess)."""
    D = 1.0 / prog.counts
    target = _start_log_excess(prog, start) + math.log(2.0)
    best = None
    for d in START_SHRINKS:
        # E = 1 - C, C = (1 - d) start + d diag(D), written so that no entry is a difference near 1
        E = (1.0 - d) * (1.0 - start) + d * (1.0 - np.diag(D))
        np.fill_diagonal(E, np.where(prog.multi, (1.0 - d) * (1.0 - np.diag(start)) + d * (1.0 - D), 0.0))
        w = prog.from_unknowns(prog.unknowns(E))
        E = prog.matrix(prog.to_unknowns(w))
        if prog.barrier(E, order=0) is None:
            continue
        lex = prog.log_excess_and_gradient(E)[0]
        if lex <= target:
            return w, lex
        if best is None or lex < best[1]:
            best = (w, lex)
    if best is None:
        raise ValueError("no strictly feasible start near the given type-mean Gram")
    return best


def gram_factors(C: np.ndarray) -> np.ndarray:
    """Unit factor rows [x_a, s_a = 0, t_a] (``ClassSymmetry`` layout over types) of a type-mean
    Gram C: x_a from C's eigendecomposition, t_a^2 = 1 - |x_a|^2 (the spread inside the type)."""
    w, U = np.linalg.eigh(0.5 * (C + C.T))
    X = (U * np.sqrt(np.clip(w, 0.0, None)))[:, ::-1]
    norm2 = np.einsum("ij,ij->i", X, X)
    t = np.sqrt(np.clip(1.0 - norm2, 0.0, None))
    Z = np.column_stack([X, np.zeros(C.shape[0]), t])
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


#: relative eigenvalue thresholds tried, largest first, to drop the barrier's interior from C
PURIFY_THRESHOLDS = (1e-6, 1e-8, 1e-10)


def purified(loss, samples, symmetry, run: TypeRun, tol: float) -> tuple[np.ndarray, Certificate]:
    """Factor rows (:func:`gram_factors`) of a lower-rank point than the barrier's: a barrier point
    lies inside the cone (eigenvalues of C of order 1/t where the optimum has 0), so C's
    eigenvalues below each of :data:`PURIFY_THRESHOLDS` x the largest are dropped in turn and the
    first point the exact certificate accepts is kept; else the barrier's own point."""
    w, U = np.linalg.eigh(0.5 * (run.C + run.C.T))
    for rel in PURIFY_THRESHOLDS:
        keep = w > rel * w[-1]
        if keep.all():
            break
        Zr = gram_factors((U[:, keep] * w[keep]) @ U[:, keep].T)
        cert = certify_reduced(loss, symmetry, symmetry.distances_from_factors(Zr), tol, samples)
        if cert.certified:
            return Zr, cert
    return run.factors, run.certificate
