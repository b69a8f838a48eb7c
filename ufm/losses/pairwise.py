"""Pairwise losses: the excess over the floor is a sum over anchors of weighted per-pair terms,

    f - floor = sum_i [ w_P(i) sum_{j in P(i)} phi_P(D_ij) + w_N(i) sum_{l in N(i)} phi_N(D_il) ],

D = 1 - G, each phi >= 0, and f = floor + excess with a constant ``term_floor[kind]`` per term
(the spectral loss: -G_ij = D_ij - 1 per positive, so phi_P(D) = D and term_floor[POS] = -1).

A subclass declares which pairs carry terms (``kind_of_relation``: POS / NEG by relation bits, so
symmetry-reduced tables apply; |P|, |N| and anchors follow, ``ufm.losses.relations``), the
per-kind weights (``kind_weights``: means over P(i) and N(i) by default) and ``phi(kind, dist,
xp)`` written once over an array namespace ``xp`` (numpy or torch; also cvxpy for the CVXPY form
where convex: ``cvxpy_phi``). The derivative ``dphi`` is taken by torch autograd unless the
subclass declares it (phi must act entry by entry; ``phi_dphi`` shares the work of both). Optional:
``term_kinds`` leaves a kind's phi out (only its term floor stays: KCL's minorant) and
``coincident_slope`` serves a phi with a pole at D = 0 (Riesz energies). Derived here: the rows
form (``_rows_log_excess``), the torch row blocks (:class:`PairwiseRows`), the plain value
(``_torch_plain``), the CVXPY form (``_cvxpy_rows``) and the floor.

Precision: the excess is a sum of non-negative terms (no cancellation); same-group distances come
from group-centred coordinates (``Loss.distances`` for rows; the torch blocks do the same), so an
excess of 1e-30 at an attainable floor keeps its digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ufm.losses.base import BlockTerms, Loss, RowEvaluator, group_centred
from ufm.losses.relations import KINDS, block_masks
from ufm.samples import SAME_GROUP, SAME_VIEW, Samples
from ufm.tables import NEG, POS, Table


def autodiff(phi, kind: int, dist, xp):
    """d phi(kind, dist) / d dist entry by entry, by torch autograd (numpy in, numpy out)."""
    import torch

    t = torch.as_tensor(dist) if xp is np else dist
    with torch.enable_grad():
        x = t.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(phi(kind, x, torch).sum(), x)
    return g.numpy() if xp is np else g


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

    def phi_dphi(self, kind: int, dist, xp):
        """(phi, dphi) in one pass where a subclass can share the work (KCL's kernels); the
        torch blocks then keep dphi for the gradient. Default: (phi, None), dphi when needed."""
        return self.phi(kind, dist, xp), None

    @property
    def term_kinds(self) -> tuple:
        """The kinds whose pairs carry a phi; a kind left out adds only its ``term_floor`` (KCL's
        minorant: the positives' alignment at its best)."""
        return KINDS

    def coincident_slope(self, kind: int) -> float | None:
        """For a phi with a pole at D = 0 (+inf there: Riesz energies): the limit of
        (d phi / d G) / phi as the pair meets. Where the excess is +inf, the scaled gradient is
        this on the entries at the pole, each weighted by its share of them (the limit of
        (d f / d G) / (f - floor) as those points meet), 0 elsewhere. None: phi is finite."""
        return None

    def cvxpy_phi(self, kind: int, dist):
        """phi of a CVXPY expression of distances (convex losses): phi itself over cvxpy."""
        import cvxpy as cp

        return self.phi(kind, dist, cp)

    def kind_weights(self, npos, nneg):
        """(w_P, w_N) per anchor: means over P(i) and N(i)."""
        return 1.0 / np.maximum(npos, 1.0), 1.0 / np.maximum(nneg, 1.0)

    # ---- the floor and the terms' weights --------------------------------------------------------
    def _floor(self, samples: Samples) -> float:
        npos, nneg, mult, a = self._types(samples)
        wp, wn = self.kind_weights(npos, nneg)
        per = wp * npos * self.term_floor[POS] + wn * nneg * self.term_floor[NEG]
        return 0.0 + float((mult * per)[a].sum())  # 0.0, not -0.0, without anchors

    def _term_weights(self, mult, kind, weight) -> np.ndarray:
        """(A, T): each term's weight w_kind(anchor), 0 off the anchors and on padding."""
        p = self.row_parts(mult, kind, weight)
        wp, wn = self.kind_weights(p.npos, p.nneg)
        live = p.anchors[:, None] & (mult > 0)
        return np.where(live, np.where(p.pos, wp[:, None], 0.0) + np.where(p.neg, wn[:, None], 0.0), 0.0)

    # ---- rows (numpy) ----------------------------------------------------------------------------
    def _rows_log_excess(self, X, mult, kind, weight):
        X = np.clip(np.asarray(X, dtype=np.float64), 0.0, 2.0)
        w = self._term_weights(mult, kind, weight)
        phi, dphi = np.zeros_like(X), np.zeros_like(X)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            for k in self.term_kinds:
                m = (kind == k) & (w != 0)
                if m.any():
                    phi[m], d = self.phi_dphi(k, X[m], np)
                    dphi[m] = self.dphi(k, X[m], np) if d is None else d
        weighted = np.asarray(weight)[:, None] * mult * w
        excess = float((weighted * phi).sum())
        if excess == np.inf:
            return np.inf, self._pole_limit(np.isinf(phi) & (w != 0), kind, w, weighted)
        if excess > 0:
            return float(np.log(excess)), -w * dphi / excess  # d/dG = -d/dD
        return -np.inf, np.zeros_like(X)

    def _pole_limit(self, at_pole, kind, w, weighted):
        """The scaled gradient where the excess is +inf (:meth:`coincident_slope`)."""
        slope = np.zeros_like(w)
        for k in self.term_kinds:
            c = self.coincident_slope(k)
            slope[kind == k] = 0.0 if c is None else c
        return np.where(at_pole, w * slope, 0.0) / float(np.where(at_pole, weighted, 0.0).sum())

    # ---- CVXPY -----------------------------------------------------------------------------------
    def _cvxpy_rows(self, x, table: Table):
        import scipy.sparse as sp

        kind = table.kinds(self.kind_of_relation())
        w = self._term_weights(table.mult, kind, table.anchor_weight)
        coef = table.anchor_weight[:, None] * table.mult * w
        index = np.asarray(table.value_index)
        total = float(sum(coef[kind == k].sum() * self.term_floor[k] for k in KINDS))
        for k in self.term_kinds:
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
            phi = self.phi(k, torch.where(m, D, torch.ones_like(D)), torch) if k in self.term_kinds else 0.0
            term = phi + self.term_floor[k]
            wt = torch.as_tensor(np.where(a, w, 0.0), dtype=H.dtype, device=H.device)
            total = total + (wt * torch.where(m, term, torch.zeros_like(D)).sum(-1)).sum(-1)
        return total


@dataclass(eq=False)
class PairTerms(BlockTerms):
    """A block of :class:`PairwiseRows`: distances ``D`` (rows, n), the mask of each kind, the
    same-group pairs (row, column, kind, D) where they are listed, dphi per kind where phi_dphi
    gave it, and the entries at a pole of phi."""

    D: Any = None
    masks: dict = field(default_factory=dict)
    pairs: tuple | None = None
    d: dict = field(default_factory=dict)
    at_pole: dict = field(default_factory=dict)


class PairwiseRows(RowEvaluator):
    """A pairwise loss over H in row blocks (torch). Entries of other groups: D = 1 - G, dense.
    Same-group entries: D from group-centred coordinates, as a list of pairs where they are few
    (instances x views), dense (a second product of the centred block) where they are many.
    Distances are clipped to [0, 2] (round-off gives G = 1 + 2e-16)."""

    def __init__(self, H, samples: Samples, loss: PairwiseLoss):
        import torch

        self.H, self.loss, dev = H, loss, H.device
        self.y = torch.as_tensor(samples.labels, device=dev)
        self.v = None if samples.views is None else torch.as_tensor(samples.views, device=dev)
        lut = self.lut_np = loss.kind_of_relation()
        self.lut = torch.as_tensor(lut, device=dev, dtype=torch.long)
        live = loss.term_kinds
        self.dense_kinds = [k for k in live if any(lut[r] == k for r in range(4) if not r & SAME_GROUP)]
        self.kinds = [k for k in live if (lut == k).any()]
        self.poles = {k: c for k in self.kinds if (c := loss.coincident_slope(k)) is not None}
        npos, nneg = loss._counts(samples)
        a = loss._is_anchor(npos, nneg)
        self.w = {k: torch.as_tensor(np.where(a, w, 0.0), dtype=H.dtype, device=dev)
                  for k, w in zip(KINDS, loss.kind_weights(npos, nneg), strict=True)}
        self.anchors = torch.as_tensor(a, device=dev)
        self.U, self.usq = group_centred(H, self.y, samples.k)
        c = np.asarray(samples.counts, dtype=float)
        self.sparse = float((c * c).sum()) * H.shape[-1] <= float(samples.n) ** 2  # few same-group pairs
        self._pole_total = None

    def _masks(self, start, stop, same, kinds, other_group_only: bool):
        """Boolean (rows, n) mask of each kind (the anchor itself off)."""
        sv = None if self.v is None else self.v[start:stop, None] == self.v[None, :]
        return block_masks(self.lut_np, same, sv, kinds, start, other_group_only)

    def _same_group_pairs(self, start, stop, same):
        """(row, column, kind, D) of the block's same-group terms, D from centred coordinates."""
        import torch

        r, c = torch.nonzero(same, as_tuple=True)
        rel = torch.ones_like(r)
        if self.v is not None:
            rel = rel + SAME_VIEW * (self.v[r + start] == self.v[c]).long()
        kp = self.lut[rel]
        keep = torch.zeros_like(kp, dtype=torch.bool)
        for k in self.kinds:
            keep |= kp == k
        keep &= r + start != c
        r, c, kp = r[keep], c[keep], kp[keep]
        ui, uj = self.U[..., r + start, :], self.U[..., c, :]
        Dp = (0.5 * (self.usq[..., r + start] + self.usq[..., c]) - (ui * uj).sum(-1)).clamp(0.0, 2.0)
        return r, c, kp, Dp

    def block(self, start, stop):
        import torch

        H, loss = self.H, self.loss
        G = H[..., start:stop, :] @ H.transpose(-1, -2)
        same = self.y[start:stop, None] == self.y[None, :]
        t = PairTerms(start, stop, None)
        if self.sparse:
            t.D = torch.rsub(G, 1.0).clamp_(0.0, 2.0)
            t.masks = self._masks(start, stop, same, self.dense_kinds, True)
            t.pairs = self._same_group_pairs(start, stop, same)
        else:
            Gu = self.U[..., start:stop, :] @ self.U.transpose(-1, -2)
            Dp = (0.5 * (self.usq[..., start:stop, None] + self.usq[..., None, :]) - Gu).clamp(0.0, 2.0)
            t.D = torch.where(same, Dp, (1.0 - G).clamp(0.0, 2.0))
            t.masks = self._masks(start, stop, same, self.kinds, False)
        ex = torch.zeros(G.shape[:-1], dtype=G.dtype, device=G.device)
        for k, m in t.masks.items():
            val, t.d[k] = loss.phi_dphi(k, t.D, torch)  # no autograd here: entries off the mask drop
            ex = ex + torch.where(m, val, torch.zeros_like(val)).sum(-1) * self.w[k][start:stop]
            if k in self.poles:
                t.at_pole[k] = m & torch.isinf(val) & self.anchors[start:stop, None]
        if t.pairs is not None:
            r, c, kp, Dp = t.pairs
            for k in self.kinds:
                sel = kp == k
                if bool(sel.any()):
                    val = loss.phi(k, Dp[..., sel], torch) * self.w[k][r[sel] + start]
                    ex = ex.index_add(-1, r[sel], val)
        anchors = self.anchors[start:stop]
        t.lex_i = torch.where(anchors & (ex > 0), torch.log(ex), torch.full_like(ex, float("-inf")))
        return t

    def scaled(self, t, lex):
        import torch

        loss, start, stop = self.loss, t.start, t.stop
        F = None
        for k, m in t.masks.items():
            d = loss.dphi(k, t.D, torch) if t.d.get(k) is None else t.d[k]
            d = torch.where(m, d, torch.zeros_like(d)) * -self.w[k][start:stop, None]
            F = d if F is None else F + d
        F = torch.zeros_like(t.D) if F is None else F
        if t.pairs is not None:
            r, c, kp, Dp = t.pairs
            vals = torch.zeros_like(Dp)
            for k in self.kinds:
                sel = kp == k
                if bool(sel.any()):
                    vals[..., sel] = -loss.dphi(k, Dp[..., sel], torch) * self.w[k][r[sel] + start]
            F[..., r, c] = F[..., r, c] + vals
        inv = torch.where(torch.isfinite(lex), torch.exp(-lex), torch.zeros_like(lex))
        out = F * inv.reshape(lex.shape + (1, 1))
        infinite = torch.isinf(lex) & (lex > 0)
        if t.at_pole and bool(infinite.any()):
            out = torch.where(infinite.reshape(lex.shape + (1, 1)), self._pole_limit(t, out), out)
        return out

    def _pole_limit(self, t, like):
        """The scaled gradient where the excess is +inf (``PairwiseLoss.coincident_slope``): each
        entry at the pole gets w x slope over the total weight of those entries (all blocks)."""
        import torch

        if self._pole_total is None:
            n, total = self.H.shape[-2], 0.0
            for a in range(0, n, 1024):
                b = self.block(a, min(a + 1024, n))
                for k, m in b.at_pole.items():
                    total = total + (m * self.w[k][a:b.stop, None]).sum((-1, -2))
            self._pole_total = torch.as_tensor(total, dtype=like.dtype, device=like.device)
        total = torch.where(self._pole_total > 0, self._pole_total, torch.ones_like(self._pole_total))
        limit = torch.zeros_like(like)
        for k, m in t.at_pole.items():
            slope = self.w[k][t.start:t.stop, None] * self.poles[k]
            limit = limit + torch.where(m, slope, torch.zeros_like(like))
        return limit / total.reshape(total.shape + (1, 1))
