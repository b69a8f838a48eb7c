"""Closed-form optima: SupCon (Behnia & Thrampoulidis 2024; DESIGN section 3) and the spectral
contrastive loss (HaoChen et al. 2021)."""

from __future__ import annotations

import numpy as np


def supcon_balanced_optimum(k: int, m: int, tau: float) -> float:
    """k classes of m samples: collapse onto a simplex ETF,
    L* = n log((m - 1) + (n - m) exp(-k / ((k - 1) tau))), n = k m."""
    n = k * m
    if k == 1:
        return n * np.log(m - 1) if m > 1 else 0.0
    if m == 1:
        return 0.0
    # log(m - 1) + log1p(...) keeps the exp(-1/tau) part when m = 2 (log(1 + 1e-33) = 0)
    return float(n * (np.log(m - 1) + np.log1p((n - m) / (m - 1) * np.exp(-k / ((k - 1) * tau)))))


def supcon_two_class_optimum(n1: int, n2: int, tau: float) -> float:
    """Two classes: antipodal means for every count,
    L* = n1 log(n1 - 1 + n2 e^{-2/tau}) + n2 log(n2 - 1 + n1 e^{-2/tau}) (classes of one sample add 0)."""
    e = np.exp(-2.0 / tau)
    total = 0.0
    for a, b in ((n1, n2), (n2, n1)):
        if a >= 2:
            total += a * (np.log(a - 1) + np.log1p(b / (a - 1) * e))
    return float(total)


def spectral_optimum(N: int, d: int | None = None, reduction: str = "mean") -> float:
    """Spectral contrastive loss (HaoChen et al. 2021) of N pairs in dimension d (None: any d, the
    relaxation): -2 + max(0, N - d) / (d (N - 1)) in the mean form (times N for "sum").

    Proof of the lower bound: with M = U^T V (N x N, rank <= d, |m_ii| <= 1) the loss is
    -(2/N) tr M + (||M||_F^2 - sum_i m_ii^2) / (N (N - 1)); rank <= d gives ||M||_F^2 >= (tr M)^2 / d
    and sum m_ii^2 <= N, and over t = tr M in [-N, N] the bound -2t/N + (t^2/d - N)/(N(N - 1)) is
    smallest at t = N (its vertex d (N - 1) >= N for N, d >= 2). It is attained by aligned views
    (u_i = v_i) forming a unit-norm tight frame (orthonormal when N <= d: the floor -2)."""
    if N < 2:
        raise ValueError("the spectral loss needs at least two pairs")
    if d is not None and d < 2:
        raise ValueError("dimension must be >= 2 (the bound's vertex leaves [-N, N] in dimension 1)")
    value = -2.0 if d is None or N <= d else -2.0 + (N - d) / (d * (N - 1))
    return value * N if reduction == "sum" else value
