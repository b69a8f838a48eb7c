"""Supervised contrastive loss (SupCon, Khosla et al. 2020, "out" form), the SC-UFM loss of
Behnia & Thrampoulidis (2024).

For anchor i of class c with positives P(i) = {j != i : y_j = c}:

    l_i = log sum_{l != i} exp(G_il / tau) - (1 / (n_c - 1)) sum_{j in P(i)} G_ij / tau,

and l_i = 0 for a class of one sample (no positives). Every form below evaluates l_i as
``LSE_{l != i}((G_il - pbar_i) / tau)`` with ``pbar_i`` the mean positive inner product, and
the log-sum-exp as ``max + log1p(rest)``, which keeps full relative accuracy down to
tau = 0.02 (a naive ``log(sum exp) - mean`` loses about four digits at tau = 0.1).
"""

from __future__ import annotations

import functools

import numpy as np

from ufm.losses.base import Loss, check_reduction
from ufm.numerics import logsumexp_log1p
from ufm.structure import GroupGram, Groups


def positive_weights(counts) -> np.ndarray:
    """n x n matrix W with W_ij = 1/(n_c - 1) for j a positive of i, else 0."""
    counts = np.asarray(counts, dtype=np.int64)
    y = np.repeat(np.arange(counts.size), counts)
    same = y[:, None] == y[None, :]
    np.fill_diagonal(same, False)
    per_anchor = np.maximum(counts[y] - 1, 1).astype(float)
    return same / per_anchor[:, None]


def offdiag_columns(rows: np.ndarray, n: int) -> np.ndarray:
    """(len(rows), n - 1) column indices of each row of an n x n matrix, diagonal left out."""
    j = np.arange(n - 1)[None, :]
    return j + (j >= np.asarray(rows)[:, None])


def anchor_mask(counts) -> np.ndarray:
    """Boolean (n,): anchors that have at least one positive."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.repeat(counts >= 2, counts)


@functools.lru_cache(maxsize=8)
def _torch_structure(counts: tuple, device: str):
    """Cached label vector, 1/(n_c - 1) per anchor (0 without positives) and anchor mask."""
    import torch

    c = np.asarray(counts, dtype=np.int64)
    y = np.repeat(np.arange(c.size), c)
    inv = np.where(c[y] >= 2, 1.0 / np.maximum(c[y] - 1, 1), 0.0)
    return (torch.as_tensor(y, device=device), torch.as_tensor(inv, device=device),
            torch.as_tensor(c[y] >= 2, device=device))


class SupCon(Loss):
    name = "supcon"
    convex_in_gram = True
    summary = "supervised contrastive loss (Khosla 'out' form), sum over anchors"

    # ---- over H (torch, batched over restarts) -------------------------------------------
    @staticmethod
    def _class_terms(H, counts):
        """Mean positive inner product per anchor from class sums, O(n d):
        pbar_i = (h_i . S_c - |h_i|^2) / (n_c - 1); also W H = (S_c - h_i) / (n_c - 1)."""
        import torch

        y, inv_pos, anchors = _torch_structure(tuple(counts), str(H.device))
        axis = H.dim() - 2
        sums = torch.zeros(H.shape[:-2] + (len(counts), H.shape[-1]), dtype=H.dtype, device=H.device)
        own_sum = sums.index_add(axis, y, H).index_select(axis, y)
        inv = inv_pos.to(H.dtype)
        pbar = ((H * own_sum).sum(-1) - (H * H).sum(-1)) * inv
        return pbar, (own_sum - H) * inv.unsqueeze(-1), anchors

    @staticmethod
    def _block_logits(H, pbar, tau, start, stop):
        """Logits (G_il - pbar_i) / tau of anchor rows start:stop, with l = i set to -inf."""
        x = (H[..., start:stop, :] @ H.transpose(-1, -2) - pbar[..., start:stop, None]) / tau
        x.diagonal(offset=start, dim1=-2, dim2=-1).fill_(float("-inf"))
        return x

    @staticmethod
    def _block_softmax(x, anchors, weights: bool = True):
        """max + log1p log-sum-exp of each row and (with ``weights``) its softmax weights,
        rows off anchors zero. Differentiable (``torch_value`` relies on autograd through it)."""
        import torch

        m, jmax = x.max(dim=-1, keepdim=True)
        e = torch.exp(x - m)
        tail = e.scatter(-1, jmax, 0.0).sum(-1)
        per_anchor = torch.where(anchors, m.squeeze(-1) + torch.log1p(tail), torch.zeros_like(tail))
        if not weights:
            return per_anchor, None
        return per_anchor, e * (anchors.to(x.dtype) / (1.0 + tail)).unsqueeze(-1)

    def torch_value(self, H, counts, tau: float, reduction: str = "sum"):
        check_reduction(reduction)
        n = H.shape[-2]
        pbar, _, anchors = self._class_terms(H, counts)
        x = self._block_logits(H, pbar, tau, 0, n)
        total = self._block_softmax(x, anchors, weights=False)[0].sum(-1)
        return total / n if reduction == "mean" else total

    def torch_value_and_grad(self, H, counts, tau: float, block: int = 4096):
        """Value (sum over anchors) and its gradient in H without autograd, in row blocks of
        ``block`` anchors (memory O(block n)): df/dH = (F + F^T) H with F = (P - W) / tau on
        anchor rows (P the softmax over l != i, W the positive weights)."""
        import torch

        n = H.shape[-2]
        with torch.no_grad():
            pbar, wh, anchors = self._class_terms(H, counts)
            value = torch.zeros(H.shape[:-2], dtype=H.dtype, device=H.device)
            grad = -2.0 * wh
            for start in range(0, n, block):
                stop = min(start + block, n)
                x = self._block_logits(H, pbar, tau, start, stop)
                per_anchor, P = self._block_softmax(x, anchors[start:stop])
                value += per_anchor.sum(-1)
                grad[..., start:stop, :] += P @ H
                grad += P.transpose(-1, -2) @ H[..., start:stop, :]
            grad /= tau
        return value, grad

    def gradient_blocks(self, H, counts, tau: float, block: int = 2048):
        """Yield ``(start, stop, value, F)`` for row blocks of the (non-symmetrised) gradient
        F = df/dG = (P - W) / tau at G = H H^T; H is a 2-D torch tensor, F is on its device."""
        import torch

        n = H.shape[0]
        y, inv_pos, _ = _torch_structure(tuple(counts), str(H.device))
        inv = inv_pos.to(H.dtype)
        with torch.no_grad():
            pbar, _, anchors = self._class_terms(H, counts)
            for start in range(0, n, block):
                stop = min(start + block, n)
                x = self._block_logits(H, pbar, tau, start, stop)
                per_anchor, P = self._block_softmax(x, anchors[start:stop])
                W = (y[start:stop, None] == y[None, :]).to(H.dtype) * inv[start:stop, None]
                W.diagonal(offset=start).zero_()
                yield start, stop, float(per_anchor.sum()), (P - W) / tau

    # ---- over G (numpy, with gradient) ---------------------------------------------------
    def gram_value_and_grad(self, G, counts, tau: float):
        G = np.asarray(G, dtype=np.float64)
        n = G.shape[0]
        W = positive_weights(counts)
        anchors = anchor_mask(counts)
        pbar = (G * W).sum(axis=1, keepdims=True)
        off = ~np.eye(n, dtype=bool)
        if n == 1:
            return 0.0, np.zeros_like(G)
        values, p = logsumexp_log1p((G - pbar) / tau, axis=1, where=off)
        F = (p - W) / tau
        F[~anchors] = 0.0
        value = float(values[anchors].sum())
        return value, 0.5 * (F + F.T)

    def cvxpy_gram(self, G, counts, tau: float):
        import cvxpy as cp
        import scipy.sparse as sp

        n = G.shape[0]
        anchors = np.flatnonzero(anchor_mask(counts))
        if anchors.size == 0:
            return cp.Constant(0.0)
        m = anchors.size
        # gather G[i, l] for anchors i and l != i into an (m, n-1) matrix, row-major
        cols = offdiag_columns(anchors, n)
        rows = np.repeat(anchors, n - 1)
        select = sp.csr_matrix(
            (np.ones(m * (n - 1)), (np.arange(m * (n - 1)), rows * n + cols.ravel())),
            shape=(m * (n - 1), n * n),
        )
        off = cp.reshape(select @ cp.vec(G, order="C"), (m, n - 1), order="C")
        W = positive_weights(counts)[anchors]
        pbar = cp.sum(cp.multiply(W, G[anchors, :]), axis=1)
        return cp.sum(cp.log_sum_exp(off / tau, axis=1)) - cp.sum(pbar) / tau

    # ---- at the group level (symmetry-reduced programs) ----------------------------------
    @staticmethod
    def _group_terms(groups: Groups):
        """log-multiplicities of the LSE columns [positives, same group, group h...] and mask."""
        n_g, k_g = groups.count.astype(float), groups.size.astype(float)
        q = groups.q
        logmult = np.empty((q, q + 2))
        mask = np.zeros((q, q + 2), dtype=bool)
        with np.errstate(divide="ignore"):
            logmult[:, 0] = np.log(n_g - 1)
            logmult[:, 1] = np.log((k_g - 1) * n_g)
            logmult[:, 2:] = np.log(k_g * n_g)[None, :]
        mask[:, 0] = groups.count >= 2
        mask[:, 1] = groups.size >= 2
        mask[:, 2:] = ~np.eye(q, dtype=bool)
        mask[groups.count < 2] = False
        return logmult, mask

    def group_offset(self, groups: Groups) -> float:
        """sum over anchors of log(n_c - 1): the loss with every negative term dropped."""
        n_g = groups.count.astype(float)
        anchors = groups.count >= 2
        return float((groups.size[anchors] * n_g[anchors] * np.log(n_g[anchors] - 1)).sum())

    def group_value_and_grad(self, groups: Groups, gram: GroupGram, tau: float, excess=False):
        q = groups.q
        n_g, k_g = groups.count.astype(float), groups.size.astype(float)
        anchors = groups.count >= 2
        zeros = np.zeros(q)
        offset = 0.0 if excess else self.group_offset(groups)
        if not anchors.any():
            return offset, GroupGram(zeros, zeros.copy(), zeros.copy(), np.zeros((q, q)))
        logmult, mask = self._group_terms(groups)
        # negative columns relative to the positive column: y_j = x_j - x_pos
        a = gram.within[:, None]
        y = np.empty((q, q + 1))
        y[:, :1] = logmult[:, 1:2] + (gram.same[:, None] - a) / tau
        y[:, 1:] = logmult[:, 2:] + (gram.cross - a) / tau
        with np.errstate(invalid="ignore"):
            y = np.where(mask[:, 1:], y - logmult[:, :1], -np.inf)[anchors]
        # excess_g = log(1 + sum_j exp(y_j)), as log1p when no negative term dominates
        M = np.maximum(y.max(axis=1), 0.0)
        e = np.exp(y - M[:, None])
        denom = np.exp(-M) + e.sum(axis=1)
        excess_g = np.where(M > 0, M + np.log(denom), np.log1p(e.sum(axis=1)))
        value = offset + float((k_g[anchors] * n_g[anchors] * excess_g).sum())
        P = np.zeros((q, q + 1))
        P[anchors] = e / denom[:, None]  # softmax weights of the negative columns
        with np.errstate(divide="ignore", invalid="ignore"):
            # weight on the positives is 1 - sum(P): use the sum itself, no cancellation
            f_pos = np.where(anchors, -P.sum(axis=1) / (n_g - 1), 0.0) / tau
            f_same = np.where(groups.size >= 2, P[:, 0] / ((k_g - 1) * n_g), 0.0) / tau
        f_cross = P[:, 1:] / (k_g * n_g)[None, :] / tau
        return value, GroupGram(zeros, f_pos, f_same, 0.5 * (f_cross + f_cross.T))

    def cvxpy_group(self, groups: Groups, within, same, cross, tau: float):
        import cvxpy as cp
        import scipy.sparse as sp

        q = groups.q
        logmult, _ = self._group_terms(groups)
        weights = (groups.size * groups.count).astype(float)
        total = 0
        # rows with and without a "same group" column have different lengths: one LSE each
        for with_same in (False, True):
            rows = np.flatnonzero((groups.count >= 2) & ((groups.size >= 2) == with_same))
            if rows.size == 0:
                continue
            m = rows.size
            parts = [cp.Constant(logmult[rows, 0:1])]
            a = cp.reshape(within[rows], (m, 1), order="C")
            if with_same:
                s = cp.reshape(same[rows], (m, 1), order="C")
                parts.append(logmult[rows, 1:2] + (s - a) / tau)
            if q > 1:
                cols = offdiag_columns(rows, q)
                idx = rows[:, None] * q + cols
                select = sp.csr_matrix(
                    (np.ones(m * (q - 1)), (np.arange(m * (q - 1)), idx.ravel())),
                    shape=(m * (q - 1), q * q),
                )
                off = cp.reshape(select @ cp.vec(cross, order="C"), (m, q - 1), order="C")
                lm = np.take_along_axis(logmult[rows, 2:], cols, axis=1)
                parts.append(lm + (off - a @ np.ones((1, q - 1))) / tau)
            X = cp.hstack(parts) if len(parts) > 1 else parts[0]
            total = total + weights[rows] @ cp.log_sum_exp(X, axis=1)
        return total
