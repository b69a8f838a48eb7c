"""Supervised contrastive loss (SupCon, Khosla et al. 2020, "out" form), the SC-UFM loss of
Behnia & Thrampoulidis (2024).

For anchor i of class c with positives P(i) = {j != i : y_j = c}:

    l_i = log sum_{l != i} exp(G_il / tau) - (1 / (n_c - 1)) sum_{j in P(i)} G_ij / tau,

and l_i = 0 for a class of one sample (no positives).

**Floor and excess** (DESIGN sections 2 and 5). With distances D = 1 - G
(D_ij = ||h_i - h_j||^2 / 2), dbar_i the mean distance to the positives and
x_l = (dbar_i - D_il) / tau (the positive x_j average to 0):

    l_i = log(n_c - 1) + log1p(B_i),
    B_i = (1 / (n_c - 1)) [ sum_{j in P} (e^{x_j} - 1 - x_j) + sum_{l in N} e^{x_l} ] >= 0.

So the floor is sum_{n_c >= 2} n_c log(n_c - 1) (approached as negatives move apart with
positives aligned) and excess = sum_i log1p(B_i): a sum of non-negative terms, each computed in
the log domain (``log B_i`` as one log-sum-exp), so the excess keeps full relative precision
even where it underflows float64 (its log is reported). Solvers minimise log(excess) and the
certificate works with the gradient of log(excess), g / excess (DESIGN section 5), whose
entries follow without cancellation:

    F_il / excess = c_i e^{x_l} (l negative),  c_i (expm1(x_j) - B_i) (j positive),
    c_i = 1 / ((n_c - 1)(1 + B_i) tau excess),

F = d excess / dG (rows: anchors). Distances between positives are taken from class-centred
coordinates (u_i = h_i - r_c), so a class collapsed to 1e-12 keeps its spread to full relative
precision; 1 - G suffices for the other pairs, whose x_l need only absolute accuracy.
"""

from __future__ import annotations

import functools

import numpy as np

from ufm.losses.base import Loss, check_reduction
from ufm.metrics import class_centred
from ufm.numerics import expm1mx, log_expm1mx, log_log1p_exp, log_sum_expm1mx
from ufm.structure import GroupGram, Groups, distances_of


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


def supcon_floor(counts) -> float:
    """sum over classes with n_c >= 2 of n_c log(n_c - 1): the loss with every negative term
    dropped and positives aligned, a lower bound for every geometry."""
    c = np.asarray(counts, dtype=float)
    c = c[c >= 2]
    return float((c * np.log(c - 1)).sum())


def class_centred_distances(H: np.ndarray, counts) -> np.ndarray:
    """n x n matrix D = 1 - H H^T with same-class entries recomputed from class-centred
    coordinates u_i = h_i - r_c (r_c the normalised class mean): ||u_i - u_j||^2 / 2 keeps its
    relative precision for nearly collapsed classes, where 1 - h_i.h_j is round-off."""
    H = np.asarray(H, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    y = np.repeat(np.arange(counts.size), counts)
    D = 1.0 - H @ H.T
    U = class_centred(H, y, counts.size)
    sq = np.einsum("ij,ij->i", U, U)
    Dp = 0.5 * (sq[:, None] + sq[None, :]) - U @ U.T
    same = y[:, None] == y[None, :]
    D[same] = np.maximum(Dp[same], 0.0)
    np.fill_diagonal(D, 0.0)
    return D


def _lse_rows(logE, axis=-1):
    """log sum exp along ``axis`` of a numpy array that may hold -inf entries (all -inf: -inf)."""
    m = np.max(logE, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return (m + np.log(np.exp(logE - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def dense_log_excess(D: np.ndarray, counts, tau: float):
    """``(log_excess, Ft)`` of SupCon at distances D (n x n, D = 1 - G): log of f - floor and
    Ft = (d excess / dG) / excess, rows = anchors (not symmetrised). Full relative precision."""
    D = np.asarray(D, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    n = D.shape[0]
    y = np.repeat(np.arange(counts.size), counts)
    nc = counts[y].astype(float)
    anchors = nc >= 2
    same = y[:, None] == y[None, :]
    pos = same & ~np.eye(n, dtype=bool)
    neg = ~same
    npos = np.maximum(nc - 1, 1.0)
    dbar = np.where(pos, D, 0.0).sum(axis=1) / npos
    X = (dbar[:, None] - D) / tau
    logE = np.where(pos, log_expm1mx(np.where(pos, X, 0.0)), np.where(neg, X, -np.inf))
    logB = _lse_rows(logE) - np.log(npos)
    logB = np.where(anchors, logB, -np.inf)
    lex_i = log_log1p_exp(logB)
    if not anchors.any():
        return -np.inf, np.zeros_like(D)
    lex = float(_lse_rows(lex_i[anchors]))
    with np.errstate(over="ignore"):
        lc = np.where(anchors, -np.log(npos) - np.exp(lex_i) - lex - np.log(tau), -np.inf)[:, None]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        e1 = np.expm1(np.where(pos, X, 0.0))
        pos_part = np.sign(e1) * np.exp(np.log(np.abs(e1)) + lc) - np.exp(logB[:, None] + lc)
        Ft = np.where(neg, np.exp(np.where(neg, X, 0.0) + lc), np.where(pos, pos_part, 0.0))
    Ft[~anchors] = 0.0
    return lex, Ft


@functools.lru_cache(maxsize=8)
def _torch_structure(counts: tuple, device: str):
    """Cached label vector, 1/(n_c - 1) per anchor (0 without positives) and anchor mask."""
    import torch

    c = np.asarray(counts, dtype=np.int64)
    y = np.repeat(np.arange(c.size), c)
    inv = np.where(c[y] >= 2, 1.0 / np.maximum(c[y] - 1, 1), 0.0)
    return (torch.as_tensor(y, device=device), torch.as_tensor(inv, device=device),
            torch.as_tensor(c[y] >= 2, device=device))


#: blocks of at most this many entries with many classes list their positives as index pairs
DENSE_BLOCK_ENTRIES = 1 << 17


def _log_sum_expm1mx_pairs(xp, rows, batch):
    """log sum over each row's pairs of e^x - 1 - x (x given per pair, ``rows`` its row), as
    :func:`ufm.numerics.log_sum_expm1mx` does for a masked block."""
    import torch

    xm = torch.full(batch, float("-inf"), dtype=xp.dtype, device=xp.device)
    xm = xm.scatter_reduce(-1, rows.expand_as(xp), xp, reduce="amax", include_self=True)
    big = xm > 1.0
    shift = torch.where(big, xm, torch.zeros_like(xm))
    sh = shift[..., rows]
    direct = torch.zeros(batch, dtype=xp.dtype, device=xp.device).index_add(
        -1, rows, expm1mx(torch.clamp(xp, max=1.0)))
    scaled = torch.zeros(batch, dtype=xp.dtype, device=xp.device).index_add(
        -1, rows, torch.exp(xp - sh) - (1.0 + xp) * torch.exp(-sh))
    return torch.where(big, shift + torch.log(scaled), torch.log(direct))


class _BlockTerms:
    """Per-block quantities of :class:`_TorchExcess` (rows start:stop)."""

    def __init__(self, start, stop, G, shift, logB, lex_i, positives, same=None):
        self.start, self.stop = start, stop
        self.G = G  # inner products of the block's rows with every sample (.., b, n)
        self.shift = shift  # (dbar_i - 1) / tau: x_l = G_il / tau + shift_i for negatives
        self.logB, self.lex_i = logB, lex_i
        # positives: ("pairs", rows, columns, x) listing them pair by pair, or (r0, r1, s, e, Xp)
        # per class sub-block (rows r0:r1, columns s:e, x there)
        self.positives = positives
        self.same = same  # same-class mask of the whole block (pairs mode), else None


class _TorchExcess:
    """Blocked evaluation of SupCon's log-excess over H (torch, (n, d) or batched (R, n, d),
    any device). Samples are ordered by class, so a row's positives are one contiguous column
    range: positives are evaluated on those sub-blocks only (class-centred distances,
    e^x - 1 - x in the log domain), negatives on the whole block with one matmul and one exp.
    Memory: about three (rows x n) buffers per block."""

    def __init__(self, H, counts, tau: float):
        import torch

        self.H, self.tau = H, tau
        c = np.asarray(counts, dtype=np.int64)
        self.count = c
        self.starts = np.r_[0, np.cumsum(c)[:-1]]
        self.y_np = np.repeat(np.arange(c.size), c)
        y, _, anchors = _torch_structure(tuple(int(v) for v in c), str(H.device))
        self.anchors, self.y = anchors, y
        self._pair_cache: dict = {}
        self.log_npos = torch.log(torch.clamp(torch.as_tensor(c, device=H.device)[y] - 1, min=1)
                                  .to(H.dtype))
        axis = H.dim() - 2
        sums = torch.zeros(H.shape[:-2] + (c.size, H.shape[-1]), dtype=H.dtype, device=H.device)
        sums = sums.index_add(axis, y, H)
        norms = sums.norm(dim=-1, keepdim=True)
        e1 = torch.zeros_like(sums)
        e1[..., 0] = 1.0
        ref = torch.where(norms > 0, sums / norms.clamp_min(torch.finfo(H.dtype).tiny), e1)
        self.U = H - ref.index_select(axis, y)
        self.usq = (self.U * self.U).sum(-1)

    def segments(self, start: int, stop: int):
        """(r0, r1, s, e): rows r0:r1 of the block belong to the class occupying columns s:e."""
        for cls in range(int(self.y_np[start]), int(self.y_np[stop - 1]) + 1):
            s = int(self.starts[cls])
            e = s + int(self.count[cls])
            yield max(start, s), min(stop, e), s, e

    def _pairs(self, start: int, stop: int):
        """Same-class mask of rows start:stop and the (row, column) index pairs of positives."""
        import torch

        key = (start, stop)
        if key not in self._pair_cache:
            y = self.y_np
            same = y[start:stop, None] == y[None, :]
            pos = same.copy()
            pos[np.arange(stop - start), np.arange(start, stop)] = False
            r, c = np.nonzero(pos)
            dev = self.H.device
            self._pair_cache[key] = (torch.as_tensor(same, device=dev),
                                     torch.as_tensor(r + start, device=dev), torch.as_tensor(c, device=dev))
        return self._pair_cache[key]

    def block_terms(self, start: int, stop: int) -> _BlockTerms:
        import torch

        H, U, usq, tau = self.H, self.U, self.usq, self.tau
        G = H[..., start:stop, :] @ H.transpose(-1, -2)
        batch = G.shape[:-1]
        ninf = float("-inf")
        dbar = torch.zeros(batch, dtype=H.dtype, device=H.device)
        logpos = torch.full(batch, ninf, dtype=H.dtype, device=H.device)
        positives: list = []
        segments = list(self.segments(start, stop))
        same = None
        if len(segments) > 2 and G.shape[-1] * G.shape[-2] <= DENSE_BLOCK_ENTRIES:
            # many small classes in a small block: positives as a list of (row, column) pairs
            same, r_idx, c_idx = self._pairs(start, stop)
            ui, uj = U[..., r_idx, :], U[..., c_idx, :]
            Dp = (0.5 * (usq[..., r_idx] + usq[..., c_idx]) - (ui * uj).sum(-1)).clamp_min(0.0)
            local = r_idx - start
            dbar = dbar.index_add(-1, local, Dp) / torch.exp(self.log_npos[start:stop])
            xp = (dbar[..., local] - Dp) / tau
            logpos = _log_sum_expm1mx_pairs(xp, local, batch)
            positives.append(("pairs", local, c_idx, xp))
            masked = G.masked_fill(same, ninf)
            segments = []
        else:
            masked = G.clone()
        for r0, r1, s, e in segments:
            masked[..., r0 - start:r1 - start, s:e] = ninf
            if e - s < 2:
                continue
            Dp = 0.5 * (usq[..., r0:r1, None] + usq[..., None, s:e]) \
                - U[..., r0:r1, :] @ U[..., s:e, :].transpose(-1, -2)
            Dp = Dp.clamp_min(0.0)
            rows = torch.arange(r1 - r0, device=H.device)
            Dp[..., rows, rows + (r0 - s)] = 0.0
            db = Dp.sum(-1) / (e - s - 1)
            Xp = (db.unsqueeze(-1) - Dp) / tau
            Xp[..., rows, rows + (r0 - s)] = 0.0  # i itself: e^0 - 1 - 0 = 0, no term
            dbar[..., r0 - start:r1 - start] = db
            logpos[..., r0 - start:r1 - start] = log_sum_expm1mx(Xp, torch.ones_like(Xp, dtype=torch.bool))
            positives.append((r0, r1, s, e, Xp))
        m = masked.amax(dim=-1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        masked.sub_(m).div_(tau).exp_()
        lse_neg = m.squeeze(-1) / tau + torch.log(masked.sum(-1))  # -inf: no negatives
        del masked
        shift = (dbar - 1.0) / tau
        logB = torch.logaddexp(lse_neg + shift, logpos) - self.log_npos[start:stop]
        logB = torch.where(self.anchors[start:stop], logB, torch.full_like(logB, ninf))
        return _BlockTerms(start, stop, G, shift, logB, log_log1p_exp(logB), positives, same)

    def scaled_gradient(self, t: _BlockTerms, lex):
        """Ft = (d excess / dG) / excess for the block's rows (zero off anchors)."""
        import math

        import torch

        start, stop = t.start, t.stop
        anchors = self.anchors[start:stop]
        lc = -self.log_npos[start:stop] - torch.exp(t.lex_i) - lex.unsqueeze(-1) - math.log(self.tau)
        lc = torch.where(anchors, lc, torch.full_like(lc, float("-inf")))
        F = t.G / self.tau
        F.add_((t.shift + lc).unsqueeze(-1)).exp_()
        if t.same is not None:
            F.masked_fill_(t.same, 0.0)
        else:
            for r0, r1, s, e in self.segments(start, stop):
                F[..., r0 - start:r1 - start, s:e] = 0.0
        for entry in t.positives:
            if entry[0] == "pairs":
                _, local, c_idx, xp = entry
                lcp = lc[..., local]
                low = torch.clamp(lcp, max=600.0)
                part = (torch.expm1(xp) * torch.exp(low)) * torch.exp(lcp - low) \
                    - torch.exp(t.logB[..., local] + lcp)
                F[..., local, c_idx] = part
                continue
            r0, r1, s, e, Xp = entry
            lcr = lc[..., r0 - start:r1 - start].unsqueeze(-1)
            # c_i (expm1(x_j) - B_i), c_i = e^{lc_i} applied as two row factors (no block-wide
            # log/exp; e^{lc} alone may overflow where the excess underflows)
            low = torch.clamp(lcr, max=600.0)
            part = (torch.expm1(Xp) * torch.exp(low)) * torch.exp(lcr - low) \
                - torch.exp(t.logB[..., r0 - start:r1 - start].unsqueeze(-1) + lcr)
            rows = torch.arange(r1 - r0, device=F.device)
            part[..., rows, rows + (r0 - s)] = 0.0
            F[..., r0 - start:r1 - start, s:e] = part
        return F

    def log_excess(self, block: int):
        """log excess (batch shape), one pass over the row blocks."""
        import torch

        n = self.H.shape[-2]
        parts = [self.block_terms(a, min(a + block, n)).lex_i for a in range(0, n, block)]
        return torch.logsumexp(torch.cat(parts, dim=-1), dim=-1)


class SupCon(Loss):
    name = "supcon"
    convex_in_gram = True
    summary = "supervised contrastive loss (Khosla 'out' form), sum over anchors"

    # ---- floor, degenerate cases ---------------------------------------------------------
    def floor(self, counts) -> float:
        return supcon_floor(counts)

    def degenerate(self, counts) -> str | None:
        counts = np.asarray(counts)
        if not np.any(counts >= 2):
            return ("no sample has a positive (every class is a singleton): the loss is 0 for "
                    "every geometry, there is nothing to optimise")
        if counts.size == 1:
            return ("a single class has no negatives: the loss is minimised exactly by collapsing "
                    "all samples to one point (value = floor); there is no class geometry")
        return None

    # ---- over H (torch, batched over restarts) -------------------------------------------
    @staticmethod
    def _class_terms(H, counts):
        """Mean positive inner product per anchor from class sums, O(n d):
        pbar_i = (h_i . S_c - |h_i|^2) / (n_c - 1)."""
        import torch

        y, inv_pos, anchors = _torch_structure(tuple(counts), str(H.device))
        axis = H.dim() - 2
        sums = torch.zeros(H.shape[:-2] + (len(counts), H.shape[-1]), dtype=H.dtype, device=H.device)
        own_sum = sums.index_add(axis, y, H).index_select(axis, y)
        pbar = ((H * own_sum).sum(-1) - (H * H).sum(-1)) * inv_pos.to(H.dtype)
        return pbar, anchors

    def torch_value(self, H, counts, tau: float, reduction: str = "sum"):
        """Differentiable value (plain max + log1p log-sum-exp; for autograd and Hessians)."""
        import torch

        check_reduction(reduction)
        n = H.shape[-2]
        pbar, anchors = self._class_terms(H, counts)
        x = (H @ H.transpose(-1, -2) - pbar[..., None]) / tau
        x = x + torch.diag(torch.full((n,), float("-inf"), dtype=H.dtype, device=H.device))
        m, jmax = x.max(dim=-1, keepdim=True)
        e = torch.exp(x - m)
        tail = e.scatter(-1, jmax, 0.0).sum(-1)
        per_anchor = torch.where(anchors, m.squeeze(-1) + torch.log1p(tail), torch.zeros_like(tail))
        total = per_anchor.sum(-1)
        return total / n if reduction == "mean" else total

    def torch_log_excess_and_grad(self, H, counts, tau: float, block: int = 4096):
        """log(f - floor) (batch shape) and its gradient in H, no autograd, in row blocks of
        ``block`` anchors (memory O(block n)); one pass when n <= block, else two."""
        import torch

        n = H.shape[-2]
        with torch.no_grad():
            ev = _TorchExcess(H, counts, tau)
            single = n <= block
            terms = ev.block_terms(0, n) if single else None
            lex = torch.logsumexp(terms.lex_i, dim=-1) if single else ev.log_excess(block)
            grad = torch.zeros_like(H)
            for start in range(0, n, block):
                stop = min(start + block, n)
                t = terms if single else ev.block_terms(start, stop)
                Ft = ev.scaled_gradient(t, lex)
                grad[..., start:stop, :] += Ft @ H
                grad += Ft.transpose(-1, -2) @ H[..., start:stop, :]
        return lex, grad

    def torch_value_and_grad(self, H, counts, tau: float, block: int = 4096):
        """Value (sum over anchors) = floor + excess and its gradient in H (closed form)."""
        import torch

        lex, grad = self.torch_log_excess_and_grad(H, counts, tau, block)
        excess = torch.exp(lex)
        return self.floor(counts) + excess, grad * excess.reshape(excess.shape + (1, 1))

    def scaled_gradient_blocks(self, H, counts, tau: float, block: int = 2048):
        """``(log_excess, blocks)``: blocks yields ``(start, stop, Ft)``, row blocks of
        (d excess / dG) / excess at G = H H^T (H a 2-D torch tensor; Ft on its device). The
        blocks are recomputed on every iteration of ``blocks()``."""
        import torch

        n = H.shape[0]
        with torch.no_grad():
            ev = _TorchExcess(H, counts, tau)
            lex_t = ev.log_excess(block)

        def blocks():
            with torch.no_grad():
                for start in range(0, n, block):
                    stop = min(start + block, n)
                    yield start, stop, ev.scaled_gradient(ev.block_terms(start, stop), lex_t)

        return float(lex_t), blocks

    # ---- over G (numpy, with gradient) ---------------------------------------------------
    def dense_log_excess(self, D, counts, tau: float):
        return dense_log_excess(D, counts, tau)

    def distances(self, H, counts) -> np.ndarray:
        return class_centred_distances(H, counts)

    def gram_value_and_grad(self, G, counts, tau: float):
        G = np.asarray(G, dtype=np.float64)
        lex, Ft = dense_log_excess(1.0 - G, counts, tau)
        excess = float(np.exp(lex))
        return self.floor(counts) + excess, 0.5 * excess * (Ft + Ft.T)

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
        """The floor of the counts the groups describe."""
        return self.floor(np.repeat(groups.count, groups.size))

    def group_log_excess(self, groups: Groups, dist: GroupGram, tau: float):
        """``(log_excess, gt)`` at a group-symmetric G given by its distances
        ``dist`` (1 - G entries: ``within``, ``same``, ``cross``); ``gt`` holds the entries of the
        symmetrised gradient of log(excess) over the n x n G. O(q^2), any n. Inside a class
        every positive is at the same distance, so x_j = 0 and only negatives enter B."""
        q = groups.q
        n_g, k_g = groups.count.astype(float), groups.size.astype(float)
        anchors = groups.count >= 2
        zeros = np.zeros(q)
        if not anchors.any():
            return -np.inf, GroupGram(zeros, zeros.copy(), zeros.copy(), np.zeros((q, q)))
        logmult, mask = self._group_terms(groups)
        lnp = np.where(anchors, logmult[:, 0], 0.0)
        dw = np.where(anchors, dist.within, 0.0)[:, None]
        y = np.empty((q, q + 1))
        y[:, :1] = logmult[:, 1:2] + (dw - dist.same[:, None]) / tau
        y[:, 1:] = logmult[:, 2:] + (dw - dist.cross) / tau
        with np.errstate(invalid="ignore"):
            y = np.where(mask[:, 1:], y, -np.inf) - lnp[:, None]
        y[~anchors] = -np.inf
        logB = _lse_rows(y)
        lex_g = log_log1p_exp(logB)
        with np.errstate(divide="ignore"):
            lex = float(_lse_rows(np.where(anchors, np.log(k_g * n_g) + lex_g, -np.inf)))
        if not np.isfinite(lex):  # excess exactly 0 (no negatives at all): no gradient
            return lex, GroupGram(zeros, zeros.copy(), zeros.copy(), np.zeros((q, q)))
        with np.errstate(over="ignore"):
            lc = np.where(anchors, -lnp - np.exp(lex_g) - lex - np.log(tau), -np.inf)
        # columns: y already includes log(mult / (n_g - 1)); per-entry weight drops the mult
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            per_entry = np.exp(y + lc[:, None] + lnp[:, None] - logmult[:, 1:])
            per_entry = np.where(mask[:, 1:] & anchors[:, None], per_entry, 0.0)
            f_pos = np.where(anchors, -np.exp(logB + lc), 0.0)
        f_same = per_entry[:, 0]
        f_cross = per_entry[:, 1:]
        return lex, GroupGram(zeros, f_pos, f_same, 0.5 * (f_cross + f_cross.T))

    def group_value_and_grad(self, groups: Groups, gram: GroupGram, tau: float, excess=False,
                             dist: GroupGram | None = None):
        """``(f, g)`` at a group-symmetric G (``excess=True``: f - floor); ``dist`` gives the
        distances 1 - G to full precision where the caller has them."""
        if dist is None:
            dist = distances_of(gram)
        lex, gt = self.group_log_excess(groups, dist, tau)
        ex = float(np.exp(lex))
        value = ex if excess else self.group_offset(groups) + ex
        return value, GroupGram(gt.diag, ex * gt.within, ex * gt.same, ex * gt.cross)

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


__all__ = ["SupCon", "supcon_floor", "dense_log_excess", "class_centred_distances"]
