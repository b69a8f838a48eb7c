"""Small pure functions that compare embeddings with each other and with optimal geometry.

H is (n, d) with one row per sample; ``labels`` holds class indices 0..k-1.
"""

from __future__ import annotations

import numpy as np


def gram_distance(H: np.ndarray, H_ref: np.ndarray) -> float:
    """||H H^T - H_ref H_ref^T||_F / ||H_ref H_ref^T||_F, rotation invariant, in O(n d^2)
    (||A A^T - B B^T||^2 = ||A^T A||^2 + ||B^T B||^2 - 2 ||A^T B||^2)."""
    a = np.linalg.norm(H.T @ H) ** 2
    b = np.linalg.norm(H_ref.T @ H_ref) ** 2
    c = np.linalg.norm(H.T @ H_ref) ** 2
    return float(np.sqrt(max(a + b - 2 * c, 0.0) / b))


def procrustes_distance(H: np.ndarray, H_ref: np.ndarray) -> float | None:
    """min over orthogonal Q of ||H Q - H_ref||_F / ||H_ref||_F (Schoenemann 1966), with
    H_ref padded by zero columns to H's dimension; None if H has fewer columns than H_ref."""
    d, d_ref = H.shape[1], H_ref.shape[1]
    if d < d_ref:
        return None
    ref = np.pad(H_ref, ((0, 0), (0, d - d_ref)))
    U, _, Vt = np.linalg.svd(H.T @ ref)
    return float(np.linalg.norm(H @ (U @ Vt) - ref) / np.linalg.norm(ref))


def class_means(H: np.ndarray, labels: np.ndarray, k: int | None = None) -> np.ndarray:
    """(k, d) means of each class's embeddings."""
    k = int(labels.max()) + 1 if k is None else k
    sums = np.zeros((k, H.shape[1]))
    np.add.at(sums, labels, H)
    return sums / np.bincount(labels, minlength=k)[:, None]


def class_centred(H: np.ndarray, labels: np.ndarray, k: int | None = None) -> np.ndarray:
    """u_i = h_i - r_c, with r_c the normalised mean of h_i's class (e_1 where the mean is 0).
    Within a class ||u_i - u_j|| = ||h_i - h_j||, and computing it from u keeps its relative
    precision near collapse, where 1 - h_i.h_j is round-off."""
    M = class_means(H, labels, k)
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    ref = np.zeros_like(M)
    ref[:, 0] = 1.0
    ref = np.where(norms > 0, M / np.where(norms > 0, norms, 1.0), ref)
    return H - ref[labels]


def class_mean_cosines(H: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """k x k cosines between the class means."""
    M = class_means(H, labels)
    norms = np.linalg.norm(M, axis=1)
    M = M / np.where(norms > 0, norms, 1.0)[:, None]
    return np.clip(M @ M.T, -1.0, 1.0)


def nc1(H: np.ndarray, labels: np.ndarray) -> float:
    """Within-class variability relative to between-class: Tr(Sigma_W Sigma_B^+) / k
    (NC1 of Papyan, Han & Donoho 2020, "Prevalence of neural collapse", PNAS). 0 at collapse."""
    k = int(labels.max()) + 1
    M = class_means(H, labels, k)
    centred = H - M[labels]
    sigma_w = centred.T @ centred / H.shape[0]
    Mc = M - M.mean(axis=0)
    sigma_b = Mc.T @ Mc / k
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / k)


def etf_deviation(cosines: np.ndarray) -> float:
    """max |cos(mu_c, mu_c') + 1/(k-1)| over class pairs: 0 for a simplex ETF."""
    k = cosines.shape[0]
    if k < 2:
        return 0.0
    off = cosines[~np.eye(k, dtype=bool)]
    return float(np.max(np.abs(off + 1.0 / (k - 1))))


def step_class_cosines(cos: np.ndarray, k_major: int) -> dict:
    """Mean cosine of class means among the first ``k_major`` (majority) classes, among the
    others (minority) and between the two groups (None where a group has fewer than 2 classes): the
    minority-collapse summary of STEP imbalance (Fang et al. 2021; for SupCon, Behnia &
    Thrampoulidis 2024)."""
    maj, mnr = slice(0, k_major), slice(k_major, None)

    def mean_off(block):
        m = block.shape[0]
        return float((block.sum() - np.trace(block)) / (m * (m - 1))) if m > 1 else None

    k_minor = cos.shape[0] - k_major
    return {"cos_major": mean_off(cos[maj, maj]), "cos_minor": mean_off(cos[mnr, mnr]),
            "cos_between": float(cos[maj, mnr].mean()) if k_major and k_minor else None}
