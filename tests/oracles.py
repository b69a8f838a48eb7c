"""Independent oracles: every loss straight from its paper's definition, one anchor (or pair) at a
time in extended precision, with samples given as plain label / view lists. Nothing here imports
ufm's loss code."""

from __future__ import annotations

import numpy as np


def _G(H):
    H = np.asarray(H, dtype=np.longdouble)
    return H @ H.T


def supcon(H, labels, tau, form="out"):
    G = _G(H)
    y = list(labels)
    n = len(y)
    total = np.longdouble(0)
    for i in range(n):
        pos = [j for j in range(n) if j != i and y[j] == y[i]]
        if not pos:
            continue
        den = sum(np.exp(G[i, j] / tau) for j in range(n) if j != i)
        if form == "out":
            total += np.log(den) - sum(G[i, j] for j in pos) / (len(pos) * tau)
        else:
            num = sum(np.exp(G[i, j] / tau) for j in pos) / len(pos)
            total += np.log(den) - np.log(num)
    return float(total)


def infonce(H, instances, views, tau, negatives="all"):
    """Positives: other views of the instance; negatives all / same_view / decoupled."""
    G = _G(H)
    n = len(instances)
    total = np.longdouble(0)
    for i in range(n):
        pos = [j for j in range(n) if j != i and instances[j] == instances[i]]
        if negatives == "same_view":
            neg = [j for j in range(n) if instances[j] != instances[i] and views[j] == views[i]]
        else:
            neg = [j for j in range(n) if instances[j] != instances[i]]
        if not pos or (negatives == "decoupled" and not neg):
            continue
        den_set = neg if negatives == "decoupled" else pos + neg
        total += np.log(sum(np.exp(G[i, j] / tau) for j in den_set)) - sum(G[i, j] for j in pos) / (
            len(pos) * tau
        )
    return float(total)


def dhel(U, V, tau):
    """Koromilas et al.: per pair -u.v/tau + log sum_{j!=i} e^{u.u_j/tau} + log sum e^{v.v_j/tau}."""
    U = np.asarray(U, dtype=np.longdouble)
    V = np.asarray(V, dtype=np.longdouble)
    M = U.shape[0]
    total = np.longdouble(0)
    for i in range(M):
        total += -U[i] @ V[i] / tau
        total += np.log(sum(np.exp(U[i] @ U[j] / tau) for j in range(M) if j != i))
        total += np.log(sum(np.exp(V[i] @ V[j] / tau) for j in range(M) if j != i))
    return float(total)


def kcl(U, V, kernel="gaussian", t=2.0, gamma=16.0, s=1.0):
    """Koromilas et al. (their code): -2 mean k_a(u_i, v_i) + gamma [mean_{i<j} k(u) + mean k(v)]."""
    U = np.asarray(U, dtype=np.longdouble)
    V = np.asarray(V, dtype=np.longdouble)
    M = U.shape[0]

    def k_e(r2):
        if kernel == "gaussian":
            return np.exp(-t * r2)
        if kernel == "imq":
            return t / np.sqrt(t * t + r2)
        if kernel == "log":
            return -0.5 * np.log(t * r2 + 1)
        return r2 ** (-s / 2) if s > 0 else -(r2 ** (-s / 2))

    def k_a(r2):
        if kernel in ("gaussian", "riesz"):
            return np.exp(-t * r2)
        if kernel == "imq":
            return t / np.sqrt(t * t + r2)
        return -np.log(t * r2 + 1)

    align = sum(k_a(np.sum((U[i] - V[i]) ** 2)) for i in range(M)) / M
    energy = 0
    for X in (U, V):
        pairs = [k_e(np.sum((X[i] - X[j]) ** 2)) for i in range(M) for j in range(i + 1, M)]
        energy += sum(pairs) / len(pairs)
    return float(-2 * align + gamma * energy)


def spectral(U, V, reduction="mean"):
    """HaoChen et al. 2021: -(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j} (u_i.v_j)^2 (mean form;
    "sum" multiplies by N), one pair at a time."""
    U = np.asarray(U, dtype=np.longdouble)
    V = np.asarray(V, dtype=np.longdouble)
    N = U.shape[0]
    total = np.longdouble(0)
    for i in range(N):
        total += -2 * (U[i] @ V[i]) / N
        for j in range(N):
            if j != i:
                total += (U[i] @ V[j]) ** 2 / (N * (N - 1))
    return float(total * N if reduction == "sum" else total)


def alpha_cl(H, instances, tau, weight="exp", p=2.0, eps=0.1, q=1.0):
    """Tian 2022 with alpha from the geometry: sum_i sum_{j in N(i)} alpha_ij (s_ij - mean_P s)."""
    G = _G(H)
    n = len(instances)
    total = np.longdouble(0)
    for i in range(n):
        pos = [j for j in range(n) if j != i and instances[j] == instances[i]]
        neg = [j for j in range(n) if instances[j] != instances[i]]
        if not pos or not neg:
            continue
        x = np.array([max(1 - G[i, j], 0) ** p for j in neg], dtype=np.longdouble)
        if weight == "exp":
            w = np.exp(-x / tau)
        elif weight == "inverse":
            w = 1 / (x + tau) ** q
        else:  # sparsemax: (mu - x)_+ / tau summing to 1, by bisection on mu
            lo, hi = x.min() - 1, x.max() + tau + 1
            for _ in range(200):
                mu = (lo + hi) / 2
                if np.maximum(mu - x, 0).sum() / tau > 1:
                    hi = mu
                else:
                    lo = mu
            w = np.maximum(mu - x, 0) / tau
        alpha = w / (w.sum() + eps * len(neg))
        spos = sum(G[i, j] for j in pos) / len(pos)
        total += sum(a * (G[i, j] - spos) for a, j in zip(alpha, neg, strict=True))
    return float(total)
