"""Closed-form SupCon optima (Behnia & Thrampoulidis 2024; DESIGN section 3)."""

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
