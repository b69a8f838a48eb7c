"""Independent oracle for the adversarial certificate test (tests/test_adversarial.py).

Every loss of DESIGN section 3 is written here again from its formula: values in numpy extended
precision (longdouble), straight over the Gram matrix of the embeddings, and the optimum of its
convex relaxation by an own CVXPY program over the n x n Gram (PSD, unit diagonal). Nothing here
imports ufm's loss code: a loss is reached through its registry name and its parameter values
(``loss.values``), samples through their plain label and view arrays.

A loss that has no oracle here (a loss added to the registry later) gets :class:`GenericOracle`,
built from the loss's own interface only (its plain differentiable value ``torch_value``, the
CVXPY form of its relaxation, its Gram gradient): weaker, since it shares the project's formulas,
but it still judges the certificate by value minus optimum instead of by the certificate's own
arithmetic.

Oracles for losses with a scalar objective provide ``value(H)`` (a longdouble, so that values
beyond float64's range stay finite) and ``optimum()``; those without
one (``scalar_objective`` False: alpha-CL) provide ``frozen(H)``: the coefficients C of the
fixed-alpha program at H's own alpha, whose value at a Gram G is <C, G>, minimised over the
elliptope by :func:`linear_sdp_min`.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

LD = np.longdouble


def _gram(H) -> np.ndarray:
    H = np.asarray(H, dtype=LD)
    return H @ H.T


def _sq_dist(H) -> np.ndarray:
    """||h_i - h_j||^2 from differences (exactly 0 for identical rows), longdouble."""
    H = np.asarray(H, dtype=LD)
    diff = H[:, None, :] - H[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def _lse(z) -> LD:
    z = np.asarray(z, dtype=LD)
    m = z.max()
    if not np.isfinite(m):
        return m
    return m + np.log(np.exp(z - m).sum())


def factor(G: np.ndarray | None) -> np.ndarray | None:
    """Unit rows (n, n) whose Gram is the PSD part of G (a feasible point near G); None if the
    solver returned no G."""
    if G is None or not np.all(np.isfinite(G)):
        return None
    w, U = np.linalg.eigh(0.5 * (G + G.T))
    H = U * np.sqrt(np.clip(w, 0.0, None))
    norms = np.linalg.norm(H, axis=1, keepdims=True)
    return H / np.where(norms > 0, norms, 1.0)


def _solve(problem) -> None:
    """Solve tightly; an inaccurate solution is fine (callers make it feasible and evaluate it
    themselves), a failed one falls back to SCS."""
    import cvxpy as cp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11,
                          max_iter=400)
        except cp.error.SolverError:
            problem.solve(solver=cp.SCS, eps=1e-9, max_iters=100000)


def _elliptope(n: int):
    import cvxpy as cp

    G = cp.Variable((n, n), symmetric=True)
    return G, [G >> 0, cp.diag(G) == 1]


# ---- relations --------------------------------------------------------------------------------


class _Relations:
    """Positives, negatives and views of plain label (and view) arrays."""

    def __init__(self, labels, views):
        self.y = np.asarray(labels)
        self.v = None if views is None else np.asarray(views)
        self.n = self.y.size
        idx = np.arange(self.n)
        self.same = self.y[:, None] == self.y[None, :]
        self.pos = self.same & (idx[:, None] != idx[None, :])
        self.other = ~self.same
        self.same_view = (np.ones_like(self.same) if self.v is None
                          else self.v[:, None] == self.v[None, :])

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the two views of every instance (u_i, v_i), instances in order."""
        groups = np.unique(self.y)
        u = np.array([np.flatnonzero((self.y == g) & (self.v == 0))[0] for g in groups])
        w = np.array([np.flatnonzero((self.y == g) & (self.v == 1))[0] for g in groups])
        return u, w


# ---- the log-sum-exp family: <L, G> + sum over rows of log sum_{S_i} exp(G_iS / tau) ---------------


class LSEOracle:
    """A loss of the form <L, G> + sum_r lse_{j in S_r} G_{i_r j} / tau (+ reduction)."""

    scalar = True

    def __init__(self, values: dict, labels, views):
        self.values = dict(values)
        self.tau = float(values["tau"])
        self.rel = _Relations(labels, views)
        self.n = self.rel.n
        self.L = np.zeros((self.n, self.n))
        self.rows: list[tuple[int, np.ndarray]] = []
        self.anchors = 0
        self._build()
        if self.values.get("reduction") == "mean" and self.anchors > 0:
            self.scale = 1.0 / self.anchors
        else:
            self.scale = 1.0

    def _build(self) -> None:
        raise NotImplementedError

    def _masked(self, den: np.ndarray, need_negative: bool) -> None:
        """Anchors i with positives P(i) (and a negative, if asked): lse over den[i] minus the
        mean over P(i) of G_ij / tau."""
        rel = self.rel
        for i in range(self.n):
            P = np.flatnonzero(rel.pos[i])
            S = np.flatnonzero(den[i])
            N = np.flatnonzero(den[i] & ~rel.same[i])
            if P.size == 0 or (need_negative and N.size == 0) or S.size == 0:
                continue
            self.anchors += 1
            self.rows.append((i, S))
            self.L[i, P] -= 1.0 / (P.size * self.tau)

    def value(self, H) -> float:
        G = _gram(H)
        total = (np.asarray(self.L, dtype=LD) * G).sum()
        for i, S in self.rows:
            total += _lse(G[i, S] / LD(self.tau))
        return total * LD(self.scale)

    def optimum(self) -> tuple[float, np.ndarray]:
        """(solver's value, feasible embeddings from its solution) of min f over the elliptope.
        Solved as tau (f - sum_r log |S_r|), which is O(1) and O(1)-varying at every tau."""
        return _lse_optimum(self)


def _lse_optimum(o: LSEOracle):
    import cvxpy as cp

    n, tau = o.n, o.tau
    G, cons = _elliptope(n)
    obj = tau * cp.sum(cp.multiply(o.L, G))
    by_len: dict[int, list] = {}
    for i, S in o.rows:
        by_len.setdefault(S.size, []).append((i, S))
    const = 0.0
    for size, rows in by_len.items():
        Z = cp.vstack([G[i, S] for i, S in rows]) / tau - math.log(size)
        obj = obj + tau * cp.sum(cp.log_sum_exp(Z, axis=1))
        const += len(rows) * math.log(size)
    prob = cp.Problem(cp.Minimize(obj), cons)
    _solve(prob)
    value = float("nan") if prob.value is None else (float(prob.value) / tau + const) * o.scale
    return value, factor(G.value)


class SupConOracle(LSEOracle):
    """SupCon "out": P(i) same label, every other sample in the denominator."""

    def _build(self):
        den = ~np.eye(self.n, dtype=bool)
        self._masked(den, need_negative=False)


class InfoNCEOracle(LSEOracle):
    """InfoNCE: positives the other views of the instance; negatives all / same_view /
    decoupled (DCL: the denominator holds the negatives only)."""

    negatives = None

    def _build(self):
        rel = self.rel
        neg = self.negatives or self.values.get("negatives", "all")
        eye = np.eye(self.n, dtype=bool)
        if neg == "all":
            self._masked(~eye, need_negative=False)
        elif neg == "same_view":
            self._masked(rel.pos | (rel.other & rel.same_view), need_negative=False)
        elif neg == "decoupled":
            self._masked(rel.other, need_negative=True)
        else:
            raise ValueError(f"unknown negatives {neg!r}")


class DCLOracle(InfoNCEOracle):
    negatives = "decoupled"


class DHELOracle(LSEOracle):
    """Per pair: -u_i.v_i/tau + log sum_{j != i} e^{u_i.u_j/tau} + log sum_{j != i} e^{v_i.v_j/tau}."""

    def _build(self):
        u, w = self.rel.pairs()
        M = u.size
        if M < 2:
            return
        for a in range(M):
            others = np.delete(np.arange(M), a)
            self.rows.append((u[a], u[others]))
            self.rows.append((w[a], w[others]))
            self.L[u[a], w[a]] -= 0.5 / self.tau
            self.L[w[a], u[a]] -= 0.5 / self.tau
            self.anchors += 1


# ---- KCL ---------------------------------------------------------------------------------------


class KCLOracle:
    """-2 mean_i k_a(u_i, v_i) + gamma [mean_{i<j} k(u_i, u_j) + mean_{i<j} k(v_i, v_j)] (the
    mean form; reduction "sum" multiplies by M). Optimum: views aligned, the energy of M points
    minimised over the M x M elliptope (convex for these kernels)."""

    scalar = True

    def __init__(self, values: dict, labels, views):
        self.values = dict(values)
        self.kernel = values["kernel"]
        self.t, self.gamma, self.s = float(values["t"]), float(values["gamma"]), float(values["s"])
        self.rel = _Relations(labels, views)
        self.u, self.w = self.rel.pairs()
        self.M = self.u.size
        self.n = self.rel.n
        self.scale = float(self.M) if values.get("reduction") == "sum" else 1.0

    def k(self, r2):
        t, s = LD(self.t), self.s
        r2 = np.asarray(r2, dtype=LD)
        with np.errstate(divide="ignore", over="ignore"):
            if self.kernel == "gaussian":
                return np.exp(-t * r2)
            if self.kernel == "imq":
                return t / np.sqrt(t * t + r2)
            if self.kernel == "log":
                return -0.5 * np.log(t * r2 + 1)
            if s > 0:
                return np.where(r2 > 0, r2 ** LD(-s / 2), LD(np.inf))
            return -(r2 ** LD(-s / 2))

    def k_a(self, r2):
        t = LD(self.t)
        r2 = np.asarray(r2, dtype=LD)
        if self.kernel in ("gaussian", "riesz"):
            return np.exp(-t * r2)
        if self.kernel == "imq":
            return t / np.sqrt(t * t + r2)
        return -np.log(t * r2 + 1)

    def value(self, H) -> float:
        D = _sq_dist(H)
        M = self.M
        align = self.k_a(D[self.u, self.w]).mean()
        iu = np.triu_indices(M, 1)
        energy = self.k(D[np.ix_(self.u, self.u)][iu]).mean() + self.k(D[np.ix_(self.w, self.w)][iu]).mean()
        return (-2 * align + LD(self.gamma) * energy) * LD(self.scale)

    def _energy_cvxpy(self, r2):
        """(objective, energy from its optimal value): the sum of k over pairs; for the Riesz
        kernel with s > 0 its log, log sum_{i<j} exp(-(s/2) log r2_ij) (the same minimiser;
        r^-s itself over- and underflows at large s)."""
        import cvxpy as cp

        t, s = self.t, self.s
        if self.kernel == "riesz" and s > 0:
            return cp.log_sum_exp(-(s / 2) * cp.log(r2)), (lambda v: np.exp(LD(v)))
        if self.kernel == "gaussian":
            k = cp.exp(-t * r2)
        elif self.kernel == "imq":
            k = t * cp.power(t * t + r2, -0.5)
        elif self.kernel == "log":
            k = -0.5 * cp.log(t * r2 + 1)
        else:
            k = -cp.power(r2, -s / 2)
        return cp.sum(k), LD

    def optimum(self) -> tuple[float, np.ndarray]:
        import cvxpy as cp

        M = self.M
        W, cons = _elliptope(M)
        iu = np.triu_indices(M, 1)
        r2 = cp.hstack([2 - 2 * W[i, j] for i, j in zip(*iu, strict=True)])
        objective, energy = self._energy_cvxpy(r2)
        prob = cp.Problem(cp.Minimize(objective), cons)
        _solve(prob)
        U = factor(W.value)
        if U is None or prob.value is None:
            return float("nan"), None
        H = np.zeros((self.n, U.shape[1]))
        H[self.u] = U
        H[self.w] = U
        ka0 = self.k_a(0.0)
        total = -2 * ka0 + 2 * LD(self.gamma) * energy(prob.value) / len(iu[0])
        return float(total * LD(self.scale)), H


# ---- the spectral contrastive loss ------------------------------------------------------------------


class SpectralOracle:
    """HaoChen et al. 2021, N pairs (u_i, v_i): -(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j}
    (u_i.v_j)^2 (the mean form; reduction "sum" multiplies by N). Optimum: the same expression
    over the N x N block of cross-view entries of a Gram on the elliptope (convex: linear plus
    squares)."""

    scalar = True

    def __init__(self, values: dict, labels, views):
        self.values = dict(values)
        self.rel = _Relations(labels, views)
        self.u, self.w = self.rel.pairs()
        self.N = self.u.size
        self.n = self.rel.n
        self.scale = float(self.N) if values.get("reduction") == "sum" else 1.0

    def value(self, H) -> float:
        G = _gram(H)
        N = self.N
        M = G[np.ix_(self.u, self.w)]
        diag = np.diagonal(M)
        off = (M * M).sum() - (diag * diag).sum()
        return (-2 * diag.sum() / LD(N) + off / LD(N * (N - 1))) * LD(self.scale)

    def optimum(self) -> tuple[float, np.ndarray]:
        import cvxpy as cp

        N = self.N
        G, cons = _elliptope(self.n)
        M = G[self.u, :][:, self.w]
        off = ~np.eye(N, dtype=bool)
        objective = -2 * cp.trace(M) / N + cp.sum(cp.multiply(off, cp.square(M))) / (N * (N - 1))
        prob = cp.Problem(cp.Minimize(objective), cons)
        _solve(prob)
        if prob.value is None:
            return float("nan"), None
        return float(prob.value) * self.scale, factor(G.value)


# ---- alpha-CL: the fixed-alpha program ------------------------------------------------------------


class AlphaCLOracle:
    """Tian 2022: E_alpha = sum_i sum_{j in N(i)} alpha_ij (s_ij - mean_{P(i)} s), N(i) every
    sample of another instance, alpha_ij = w_ij / (sum_{N(i)} w + eps |N(i)|), w = g(r^p),
    r = 1 - s; g exp(-x/tau), quadratic (sparsemax: (mu_i - x)_+ / tau summing to 1), inverse
    1/(x + tau)^q. The eps term (``eps_term``): |N(i)| (the authors' code, "negatives", the default)
    or the positives' weight sum_{P(i)} w (the paper's eps e^{-r_ii'/tau}, "positive"). No scalar
    objective: :meth:`frozen` gives the fixed-alpha program at H."""

    scalar = False

    def __init__(self, values: dict, labels, views):
        self.values = dict(values)
        self.tau, self.p = float(values["tau"]), float(values["p"])
        self.eps, self.q = float(values["eps"]), float(values["q"])
        self.weight = values["weight"]
        self.eps_term = values.get("eps_term", "negatives")
        self.rel = _Relations(labels, views)
        self.n = self.rel.n

    def _log_weights(self, x):
        """log w over a row of negatives (x = r^p >= 0), longdouble; -inf for w = 0."""
        tau = LD(self.tau)
        if self.weight == "exp":
            return -x / tau
        if self.weight == "inverse":
            return -LD(self.q) * np.log(x + tau)
        # sparsemax: w = (mu - x)_+ / tau with sum w = 1
        xs = np.sort(x)
        cs = np.cumsum(xs)
        k = np.arange(1, xs.size + 1)
        mu_k = (cs + tau) / k
        kmax = np.flatnonzero(xs < mu_k).max()
        mu = mu_k[kmax]
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(mu - x, 0) / tau)

    def _x(self, g):
        """x = r^p, r = 1 - s (clipped at 0), longdouble."""
        r = np.clip(1 - np.asarray(g, dtype=LD), 0, None)
        with np.errstate(divide="ignore"):
            return np.where(r > 0, np.exp(LD(self.p) * np.log(np.where(r > 0, r, 1))), LD(0))

    def alpha(self, H) -> np.ndarray:
        """alpha (n x n, zero off negatives and off anchors), from the geometry of H."""
        G = _gram(H)
        rel = self.rel
        out = np.zeros((self.n, self.n), dtype=LD)
        for i in range(self.n):
            N = np.flatnonzero(rel.other[i])
            if N.size == 0 or not rel.pos[i].any():
                continue
            lw = self._log_weights(self._x(G[i, N]))
            terms = list(lw)
            if self.eps > 0 and self.eps_term == "positive":
                P = np.flatnonzero(rel.pos[i])
                terms.append(np.log(LD(self.eps)) + _lse(self._log_weights(self._x(G[i, P]))))
            elif self.eps > 0:
                terms.append(np.log(LD(self.eps) * N.size))
            out[i, N] = np.exp(lw - _lse(np.array(terms, dtype=LD)))
        return out

    def frozen(self, H) -> np.ndarray:
        """C with E_alpha(G) = <C, G> for alpha frozen at H's geometry (float64, symmetrised;
        normalised to unit Frobenius norm: the program's minimiser and every ratio of gaps do not
        depend on the scale of alpha)."""
        a = self.alpha(H)
        rel = self.rel
        C = np.array(a, dtype=LD)
        A = a.sum(axis=1)
        for i in range(self.n):
            P = np.flatnonzero(rel.pos[i])
            if P.size and A[i] > 0:
                C[i, P] -= A[i] / P.size
        C = 0.5 * (C + C.T)
        norm = np.sqrt((C * C).sum())
        return np.asarray(C / norm if norm > 0 else C, dtype=np.float64)

    def scale(self, H) -> float:
        """A = sum of alpha at H: |E_alpha| <= 2 A, the scale its value is known to."""
        return float(self.alpha(H).sum())

    def value(self, H) -> float:
        """E_alpha at H with its own alpha (for cross-checks against the project's value)."""
        a = self.alpha(H)
        G = _gram(H)
        rel = self.rel
        total = LD(0)
        for i in range(self.n):
            P = np.flatnonzero(rel.pos[i])
            if P.size:
                total += (a[i] * (G[i] - G[i, P].mean()))[rel.other[i]].sum()
        anchors = int(sum(rel.pos[i].any() and rel.other[i].any() for i in range(self.n)))
        if self.values.get("reduction") == "mean" and anchors:
            total /= anchors
        return float(total)


# ---- the linear program over the elliptope -------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _linear_program(n: int):
    import cvxpy as cp

    C = cp.Parameter((n, n), symmetric=True)
    G, cons = _elliptope(n)
    return cp.Problem(cp.Minimize(cp.trace(C @ G)), cons), C, G


def linear_sdp_min(C: np.ndarray) -> float:
    """An upper bound on min <C, G> over PSD G with unit diagonal (a feasible point's value,
    from the solver's solution made feasible), close to the minimum."""
    C = 0.5 * (C + C.T)
    prob, P, G = _linear_program(C.shape[0])
    P.value = C
    _solve(prob)
    H = factor(G.value)
    return float("inf") if H is None else float(np.sum(C * (H @ H.T)))


# ---- a loss this module does not know ------------------------------------------------------------


class GenericOracle:
    """For a registered loss without an oracle above: its plain value (``torch_value``, float64)
    and the CVXPY form of its relaxation; without a scalar objective, the fixed program given
    by its Gram gradient at H."""

    def __init__(self, loss, samples):
        self.loss, self.samples = loss, samples
        self.scalar = bool(loss.scalar_objective)
        self.n = samples.n

    def value(self, H) -> float:
        import torch

        return float(self.loss.torch_value(torch.as_tensor(np.asarray(H, dtype=np.float64)), self.samples))

    def optimum(self):
        import cvxpy as cp

        G, cons = _elliptope(self.n)
        prob = cp.Problem(cp.Minimize(self.loss.relaxation().cvxpy_gram(G, self.samples)), cons)
        _solve(prob)
        return float("nan") if prob.value is None else float(prob.value), factor(G.value)

    def scale(self, H) -> float:
        """The size of the fixed program's coefficients at H (sum of |gradient| entries)."""
        H = np.asarray(H, dtype=np.float64)
        return float(np.abs(self.loss.gram_value_and_grad(H @ H.T, self.samples)[1]).sum())

    def frozen(self, H) -> np.ndarray:
        H = np.asarray(H, dtype=np.float64)
        _, g = self.loss.gram_value_and_grad(H @ H.T, self.samples)
        g = 0.5 * (g + g.T)
        norm = np.linalg.norm(g)
        return g / norm if norm > 0 else g


#: oracles written from DESIGN section 3, by registry name
ORACLES = {
    "supcon": SupConOracle,
    "infonce": InfoNCEOracle,
    "dcl": DCLOracle,
    "dhel": DHELOracle,
    "kcl": KCLOracle,
    "alpha_cl": AlphaCLOracle,
    "spectral": SpectralOracle,
}


def oracle_for(loss, samples):
    """The independent oracle of ``loss`` on ``samples`` (GenericOracle if none is written)."""
    cls = ORACLES.get(loss.name)
    if cls is None:
        return GenericOracle(loss, samples)
    return cls(loss.values, samples.labels, samples.views)
