"""Pairwise losses: the excess over the floor is a sum over anchors of weighted per-pair terms,

    f - floor = sum_i [ w_P(i) sum_{j in P(i)} phi_P(D_ij) + w_N(i) sum_{l in N(i)} phi_N(D_il) ],

D = 1 - G, each phi >= 0, and f = floor + excess with a constant ``term_floor[kind]`` per term
(the spectral loss: -G_ij = D_ij - 1 per positive, so phi_P(D) = D and term_floor[POS] = -1).

A subclass declares which pairs carry terms (``kind_of_relation``: POS / NEG by relation bits, so
symmetry-reduced tables apply), the per-kind weights (``kind_weights``: means over P(i) and N(i)
by default) and ``phi(kind, dist, xp)`` written once over an array namespace ``xp`` (numpy or
torch; also cvxpy for the CVXPY form where convex: ``cvxpy_phi``). The derivative ``dphi`` is
taken by torch autograd unless the subclass declares it (phi must act entry by entry). Derived
here: the rows form (``_rows_log_excess``), the torch row blocks (:class:`PairwiseRows`), the plain
value (``_torch_plain``), the CVXPY form (``_cvxpy_rows``), the floor and the anchor bookkeeping
(|P|, |N| per sample or per type of sample, from the relation counts).

Precision: the excess is a sum of non-negative terms (no cancellation); same-group distances come
from group-centred coordinates (``Loss.distances`` for rows; the torch blocks do the same), so an
excess of 1e-30 at an attainable floor keeps its digits.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import ClassVar

import numpy as np

from ufm.losses.base import Loss, RowEvaluator
from ufm.samples import SAME_GROUP, Samples
from ufm.tables import NEG, POS, Table

KINDS = (POS, NEG)


def autodiff(phi, kind: int, dist, xp):
    """d phi(kind, dist) / d dist entry by entry, by torch autograd (numpy in, numpy out)."""
    import torch

    t = torch.as_tensor(dist) if xp is np else dist
    with torch.enable_grad():
        x = t.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(phi(kind, x, torch).sum(), x)
    return g.numpy() if xp is np else g


def relation_counts(sg, sv, both, n, has_views: bool) -> np.ndarray:
    """(4, m): how many other samples stand in each relation (bits SAME_GROUP | SAME_VIEW) to a
    sample whose group has sg samples, its view sv and its (group, view) both."""
    sg, sv, both = (np.asarray(a, dtype=float) for a in (sg, sv, both))
    if not has_views:
        z = np.zeros_like(sg)
        return np.stack([n - sg, sg - 1.0, z, z])
    return np.stack([n - sg - sv + both, sg - both, sv - both, both - 1.0])


@functools.lru_cache(maxsize=32)
def _sample_relation_counts(key, samples: Samples) -> np.ndarray:
    del key
    y, v, n = samples.labels, samples.views, samples.n
    sg = np.bincount(y, minlength=samples.k)[y]
    if v is None:
        return relation_counts(sg, sg, sg, n, False)
    V = int(v.max()) + 1
    both = np.bincount(y * V + v, minlength=samples.k * V)[y * V + v]
    return relation_counts(sg, np.bincount(v, minlength=V)[v], both, n, True)


class PairwiseLoss(Loss):
    """A loss whose excess is a weighted sum of per-pair terms phi(1 - G) (see the module)."""

    #: f = floor + excess with this constant per term of each kind (the floor is their sum)
    term_floor: ClassVar[dict] = {POS: 0.0, NEG: 0.0}

    # ---- what a subclass writes ----------------------------------------------------------------
    def phi(self, kind: int, dist, xp):
        """The term of one pair of ``kind`` at distance 1 - G, minus ``term_floor[kind]``
        (>= 0), entry by entry, with ``xp`` numpy, torch or cvxpy."""
        raise NotImplementedError

    def dphi(self, kind: int, dist, xp):
        """d phi / d dist (by torch autograd unless a subclass declares it)."""
        return autodiff(self.phi, kind, dist, xp)

    def cvxpy_phi(self, kind: int, dist):
        """phi of a CVXPY expression of distances (convex losses): phi itself over cvxpy."""
        import cvxpy as cp

        return self.phi(kind, dist, cp)

    def kind_weights(self, npos, nneg):
        """(w_P, w_N) per anchor: means over P(i) and N(i)."""
        return 1.0 / np.maximum(npos, 1.0), 1.0 / np.maximum(nneg, 1.0)

    # ---- anchor bookkeeping ----------------------------------------------------------------------
    def _kind_counts(self, cnt: np.ndarray):
        lut = self.kind_of_relation()
        return tuple((cnt * (lut == k)[:, None]).sum(0) for k in KINDS)

    def _counts(self, samples: Samples):
        return self._kind_counts(_sample_relation_counts(samples.key, samples))

    def _types(self, samples: Samples):
        if samples.grid is not None:
            N, V = samples.grid
            npos, nneg = self._kind_counts(relation_counts([V], [N], [1], samples.n, True))
            mult = np.array([float(V)])
            npos, nneg, mult = np.repeat(npos, N), np.repeat(nneg, N), np.repeat(mult, N)
        elif samples.views is None:
            c = np.asarray(samples.counts, dtype=float)
            npos, nneg = self._kind_counts(relation_counts(c, c, c, samples.n, False))
            mult = c
        else:
            npos, nneg = self._counts(samples)
            mult = np.ones_like(npos)
        return npos, nneg, mult, self._is_anchor(npos, nneg)

    def _floor(self, samples: Samples) -> float:
        npos, nneg, mult, a = self._types(samples)
        wp, wn = self.kind_weights(npos, nneg)
        per = wp * npos * self.term_floor[POS] + wn * nneg * self.term_floor[NEG]
        return 0.0 + float((mult * per)[a].sum())  # 0.0, not -0.0, without anchors

    def _term_weights(self, mult, kind, weight) -> np.ndarray:
        """(A, T): each term's weight w_kind(anchor), 0 off the anchors and on padding."""
        pos, neg = kind == POS, kind == NEG
        npos, nneg = np.where(pos, mult, 0.0).sum(1), np.where(neg, mult, 0.0).sum(1)
        wp, wn = self.kind_weights(npos, nneg)
        live = (self._is_anchor(npos, nneg) & (np.asarray(weight) > 0))[:, None] & (mult > 0)
        return np.where(live, np.where(pos, wp[:, None], 0.0) + np.where(neg, wn[:, None], 0.0), 0.0)

    # ---- rows (numpy) ----------------------------------------------------------------------------
    def _rows_log_excess(self, X, mult, kind, weight):
        X = np.clip(np.asarray(X, dtype=np.float64), 0.0, 2.0)
        w = self._term_weights(mult, kind, weight)
        phi, dphi = np.zeros_like(X), np.zeros_like(X)
        for k in KINDS:
            m = (kind == k) & (w != 0)
            if m.any():
                phi[m], dphi[m] = self.phi(k, X[m], np), self.dphi(k, X[m], np)
        excess = float((np.asarray(weight) * (mult * w * phi).sum(1)).sum())
        if excess > 0:
            return float(np.log(excess)), -w * dphi / excess  # d/dG = -d/dD
        return -np.inf, np.zeros_like(X)

    # ---- CVXPY -----------------------------------------------------------------------------------
    def _cvxpy_rows(self, x, table: Table):
        import scipy.sparse as sp

        kind = table.kinds(self.kind_of_relation())
        w = self._term_weights(table.mult, kind, table.anchor_weight)
        coef = table.anchor_weight[:, None] * table.mult * w
        index = np.asarray(table.value_index)
        total = float(sum(coef[kind == k].sum() * self.term_floor[k] for k in KINDS))
        for k in KINDS:
            c = np.bincount(index[kind == k], weights=coef[kind == k], minlength=table.nv)
            nz = np.flatnonzero(c)
            if nz.size:
                sel = sp.csr_matrix((np.ones(nz.size), (np.arange(nz.size), nz)), shape=(nz.size, table.nv))
                total = total + c[nz] @ self.cvxpy_phi(k, 1 - sel @ x)
        return total

    # ---- torch -----------------------------------------------------------------------------------
    def _torch_rows(self, H, samples: Samples):
        return PairwiseRows(H, samples, self)

    def _torch_plain(self, H, samples: Samples):
        """By the definition: sum over anchors of w_kind sum_kind (phi(1 - G) + term_floor)."""
        import torch

        masks = dict(zip(KINDS, self._dense_masks(samples, H.device), strict=True))
        npos, nneg = self._counts(samples)
        a = self._is_anchor(npos, nneg)
        D = 1.0 - H @ H.transpose(-1, -2)
        total = 0.0
        for k, w in zip(KINDS, self.kind_weights(npos, nneg), strict=True):
            m = masks[k]
            term = self.phi(k, torch.where(m, D, torch.ones_like(D)), torch) + self.term_floor[k]
            wt = torch.as_tensor(np.where(a, w, 0.0), dtype=H.dtype, device=H.device)
            total = total + (wt * torch.where(m, term, torch.zeros_like(D)).sum(-1)).sum(-1)
        return total


class PairwiseRows(RowEvaluator):
    """A pairwise loss over H in row blocks (torch). Entries of other groups: D = 1 - G, dense.
    Same-group entries: D from group-centred coordinates, as a list of pairs where they are few
    (instances x views), dense (a second product of the centred block) where they are many."""

    def __init__(self, H, samples: Samples, loss: PairwiseLoss):
        import torch

        self.H, self.loss, dev = H, loss, H.device
        self.y = torch.as_tensor(samples.labels, device=dev)
        self.v = None if samples.views is None else torch.as_tensor(samples.views, device=dev)
        lut = loss.kind_of_relation()
        self.lut_np = lut
        self.lut = torch.as_tensor(lut, device=dev, dtype=torch.long)
        self.dense_kinds = [k for k in KINDS if any(lut[r] == k for r in range(4) if not r & SAME_GROUP)]
        self.kinds = [k for k in KINDS if (lut == k).any()]
        npos, nneg = loss._counts(samples)
        a = loss._is_anchor(npos, nneg)
        self.w = {k: torch.as_tensor(np.where(a, w, 0.0), dtype=H.dtype, device=dev)
                  for k, w in zip(KINDS, loss.kind_weights(npos, nneg), strict=True)}
        self.anchors = torch.as_tensor(a, device=dev)
        axis = H.dim() - 2
        sums = torch.zeros(H.shape[:-2] + (samples.k, H.shape[-1]), dtype=H.dtype, device=dev)
        sums = sums.index_add(axis, self.y, H)
        ref = sums / sums.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(H.dtype).tiny)
        self.U = H - ref.index_select(axis, self.y)
        self.usq = (self.U * self.U).sum(-1)
        c = np.asarray(samples.counts, dtype=float)
        self.sparse = float((c * c).sum()) * H.shape[-1] <= float(samples.n) ** 2  # few same-group pairs

    def _masks(self, start, stop, same, kinds, other_group_only: bool):
        """Boolean (rows, n) mask of each kind, from the relation bits (the anchor itself off)."""
        import torch

        sv = None if self.v is None else self.v[start:stop, None] == self.v[None, :]
        rows = torch.arange(stop - start, device=same.device)
        out = {}
        for k in kinds:
            m = None
            for r in range(4):
                if self.lut_np[r] != k or (other_group_only and r & SAME_GROUP) or (r & 2 and sv is None):
                    continue
                part = same if r & SAME_GROUP else ~same
                if sv is not None:
                    part = part & (sv if r & 2 else ~sv)
                m = part.clone() if m is None else m | part  # never alias ``same``
            if m is not None:
                if self.lut_np[3 if sv is not None else 1] == k:
                    m[rows, rows + start] = False
                out[k] = m
        return out

    def block(self, start, stop):
        import torch

        H, phi = self.H, self.loss.phi
        G = H[..., start:stop, :] @ H.transpose(-1, -2)
        same = self.y[start:stop, None] == self.y[None, :]
        t = SimpleNamespace(start=start, stop=stop, pairs=None)
        if self.sparse:
            t.D = 1.0 - G
            t.masks = self._masks(start, stop, same, self.dense_kinds, True)
            r, c = torch.nonzero(same, as_tuple=True)
            rel = torch.ones_like(r)
            if self.v is not None:
                rel = rel + 2 * (self.v[r + start] == self.v[c]).long()
            kp = self.lut[rel]
            keep = (kp > 0) & (r + start != c)
            r, c, kp = r[keep], c[keep], kp[keep]
            ui, uj = self.U[..., r + start, :], self.U[..., c, :]
            Dp = (0.5 * (self.usq[..., r + start] + self.usq[..., c]) - (ui * uj).sum(-1)).clamp(0.0, 2.0)
            t.pairs = (r, c, kp, Dp)
        else:
            Gu = self.U[..., start:stop, :] @ self.U.transpose(-1, -2)
            Dp = (0.5 * (self.usq[..., start:stop, None] + self.usq[..., None, :]) - Gu).clamp(0.0, 2.0)
            t.D = torch.where(same, Dp, 1.0 - G)
            t.masks = self._masks(start, stop, same, self.kinds, False)
        ex = torch.zeros(G.shape[:-1], dtype=G.dtype, device=G.device)
        for k, m in t.masks.items():
            val = phi(k, t.D, torch)  # no autograd here: entries off the mask are dropped
            ex = ex + torch.where(m, val, torch.zeros_like(val)).sum(-1) * self.w[k][start:stop]
        if t.pairs is not None:
            r, c, kp, Dp = t.pairs
            for k in self.kinds:
                sel = kp == k
                if bool(sel.any()):
                    ex = ex.index_add(-1, r[sel], phi(k, Dp[..., sel], torch) * self.w[k][r[sel] + start])
        anchors = self.anchors[start:stop]
        t.lex_i = torch.where(anchors & (ex > 0), torch.log(ex), torch.full_like(ex, float("-inf")))
        return t

    def scaled(self, t, lex):
        import torch

        dphi, start, stop = self.loss.dphi, t.start, t.stop
        F = None
        for k, m in t.masks.items():
            d = dphi(k, t.D, torch)
            d = torch.where(m, d, torch.zeros_like(d)) * -self.w[k][start:stop, None]
            F = d if F is None else F + d
        F = torch.zeros_like(t.D) if F is None else F
        if t.pairs is not None:
            r, c, kp, Dp = t.pairs
            vals = torch.zeros_like(Dp)
            for k in self.kinds:
                sel = kp == k
                if bool(sel.any()):
                    vals[..., sel] = -dphi(k, Dp[..., sel], torch) * self.w[k][r[sel] + start]
            F[..., r, c] = F[..., r, c] + vals
        inv = torch.where(torch.isfinite(lex), torch.exp(-lex), torch.zeros_like(lex))
        return F * inv.reshape(lex.shape + (1, 1))
