"""Global-optimality certificate for a Gram-convex loss (DESIGN section 5).

With G = H H^T (unit rows), g the symmetrised gradient of f at G, lambda_i = (g G)_ii and
S = g - Diag(lambda): <S, G> = 0, and for every feasible G' (PSD, unit diagonal)

    f(G') >= f(G) + <S, G'> >= f(G) + n min(0, lambda_min(S)),

so ``f(G) - f* <= n max(0, -lambda_min(S))`` over the relaxation, hence over the UFM in every
dimension. Journee, Bach, Absil & Sepulchre (2010), "Low-rank optimization on the cone of
positive semidefinite matrices", SIAM J. Optim. 20(5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg

from ufm.structure import GroupGram, Groups, block_spectrum

#: default relative tolerance: certified means gap_bound <= CERTIFY_TOL * |f| (DESIGN section 7)
CERTIFY_TOL = 1e-6


@dataclass(frozen=True)
class Certificate:
    value: float
    lambda_min: float
    gap_bound: float
    certified: bool
    tol: float
    how: str  # how lambda_min was computed
    residual: float | None = None  # ||S H||_F: first-order (Riemannian gradient) condition

    @property
    def relative_gap_bound(self) -> float:
        return self.gap_bound / max(abs(self.value), np.finfo(float).tiny)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["relative_gap_bound"] = self.relative_gap_bound
        return d


def _decide(value: float, lambda_min: float, n: int, tol: float, how: str,
            residual=None) -> Certificate:
    gap = float(n * max(0.0, -lambda_min))
    return Certificate(float(value), float(lambda_min), gap, bool(gap <= tol * abs(value)), tol, how,
                       None if residual is None else float(residual))


def group_certificate_matrix(loss, groups: Groups, gram: GroupGram, tau: float):
    """``(f, S)`` at a group-symmetric G, S in group-symmetric form (it inherits G's symmetry)."""
    value, g = loss.group_value_and_grad(groups, gram, tau)
    n_g, k_g = groups.count.astype(float), groups.size.astype(float)
    cross_off = g.cross * gram.cross
    np.fill_diagonal(cross_off, 0.0)
    lam = (
        g.diag * gram.diag
        + np.where(groups.count >= 2, (n_g - 1) * g.within * gram.within, 0.0)
        + np.where(groups.size >= 2, (k_g - 1) * n_g * g.same * gram.same, 0.0)
        + cross_off @ (k_g * n_g)
    )
    return value, GroupGram(g.diag - lam, g.within, g.same, g.cross)


def certify_groups(loss, groups: Groups, gram: GroupGram, tau: float, tol: float = CERTIFY_TOL):
    """Certificate of a group-symmetric G for the full n x n relaxation, in O(q^3) for any n.

    S inherits the symmetry of G, so its spectrum follows from :func:`block_spectrum`.
    """
    value, S = group_certificate_matrix(loss, groups, gram, tau)
    values, _ = block_spectrum(groups, S)
    how = f"dense eigendecomposition of the {groups.q}x{groups.q} group-level block (exact)"
    return _decide(value, values[0], groups.n, tol, how)


def certify_gram(loss, G: np.ndarray, counts, tau: float, tol: float = CERTIFY_TOL,
                 H: np.ndarray | None = None) -> Certificate:
    """Certificate of an explicit n x n Gram matrix (dense; smallest eigenvalue of S by LAPACK).
    With the factor H (G = H H^T) also the residual ||S H||_F."""
    value, g = loss.gram_value_and_grad(G, counts, tau)
    S = g - np.diag(np.einsum("ij,ij->i", g, G))
    n = G.shape[0]
    lam_min = scipy.linalg.eigh(S, eigvals_only=True, subset_by_index=[0, 0])[0]
    residual = None if H is None else np.linalg.norm(S @ H)
    return _decide(value, lam_min, n, tol, f"dense eigh of the {n}x{n} S (LAPACK)", residual)


#: above this n the certificate of explicit embeddings is matrix-free (Lanczos), else dense
DENSE_MAX_N = 3000


def certify_embeddings(loss, H: np.ndarray, counts, tau: float, tol: float = CERTIFY_TOL,
                       dense_max_n: int = DENSE_MAX_N, block: int = 2048,
                       lanczos_tol: float = 1e-10, device: str = "cpu",
                       cache_bytes: float = 2e9) -> Certificate:
    """Certificate of unit embeddings H (n, d), samples ordered by class.

    Dense eigendecomposition of S up to ``dense_max_n``. Beyond, matrix-free in float64 on
    ``device`` (torch): S is applied block by block from H, never n x n in memory unless the
    gradient's blocks fit in ``cache_bytes`` (then they are kept between products), and
    lambda_min is found by Lanczos (scipy eigsh, 'SA').
    """
    H = np.asarray(H, dtype=np.float64)
    n = H.shape[0]
    if n <= dense_max_n:
        return certify_gram(loss, H @ H.T, counts, tau, tol, H=H)
    import torch
    from scipy.sparse.linalg import LinearOperator, eigsh

    Ht = torch.as_tensor(H, dtype=torch.float64, device=device)
    keep = n * n * 8 <= cache_bytes
    cached = []
    value = 0.0
    lam = torch.zeros(n, dtype=torch.float64, device=Ht.device)
    for start, stop, v, F in loss.gradient_blocks(Ht, counts, tau, block):
        FG = F * (Ht[start:stop] @ Ht.T)
        value += v
        lam[start:stop] += 0.5 * FG.sum(1)
        lam += 0.5 * FG.sum(0)
        if keep:
            cached.append((start, stop, F))

    def blocks():
        return cached if keep else ((a, b, F) for a, b, _, F in loss.gradient_blocks(Ht, counts, tau, block))

    def apply_s(V):
        Vt = torch.as_tensor(np.asarray(V).reshape(n, -1), dtype=torch.float64, device=Ht.device)
        out = -lam[:, None] * Vt
        for start, stop, F in blocks():
            out[start:stop] += 0.5 * (F @ Vt)
            out += 0.5 * (F.T @ Vt[start:stop])
        return out.cpu().numpy()

    op = LinearOperator((n, n), matvec=apply_s, matmat=apply_s, dtype=np.float64)
    w = eigsh(op, k=1, which="SA", tol=lanczos_tol, return_eigenvectors=False)
    residual = np.linalg.norm(apply_s(H))
    how = (f"matrix-free Lanczos (scipy eigsh 'SA', tol {lanczos_tol:g}) on {Ht.device}, S applied "
           f"in row blocks of {block}" + (" (blocks kept in memory)" if keep else ""))
    return _decide(value, float(w.min()), n, tol, how, residual)


def certify_collapsed(loss, H: np.ndarray, counts, tau: float, tol: float = CERTIFY_TOL,
                      collapse_tol: float = 1e-9):
    """Class-level certificate of embeddings whose classes are collapsed (every class mean of
    squared norm >= 1 - collapse_tol), exact for any n; None if H is not collapsed."""
    from solvers.convex import class_mean_gram_of_embeddings

    gram = class_mean_gram_of_embeddings(H, counts)
    counts = np.asarray(counts)
    if np.any((counts >= 2) & (gram.within < 1 - collapse_tol)):
        return None
    return certify_groups(loss, Groups.per_class(counts), gram, tau, tol)
