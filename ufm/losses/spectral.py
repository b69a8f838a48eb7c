"""Spectral contrastive loss (HaoChen, Wei, Gaidon & Ma 2021), N instances x 2 views, no temperature.

With u_i, v_i the two views of instance i (the authors' mean form, the default reduction):

    L = -(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j} (u_i.v_j)^2

(``reduction="sum"`` multiplies by N, the number of pairs: per pair -2 u_i.v_i +
1/(N-1) sum_{j != i} (u_i.v_j)^2; the ordered sum over i != j counts (u_i.v_j) and (u_j.v_i)
separately). Only cross-view inner products enter: a view's own-view negatives u_i.u_j do not.

As a sum over the 2N samples, anchor a (one view of instance i) gets
-mean_{P(a)} G + (1/2) mean_{N(a)} G^2, P(a) its other view, N(a) the other instances' samples
in the *other* view; summed over both views of every instance this is the per-pair form.

**Convex in G**: a linear term plus squares of entries of G.

**Floor** -1 per anchoring sample (-2 per pair, mean form): u.v <= 1 and squares are >= 0. The
floor is **attained** when N <= d (orthonormal instances, u_i = v_i = e_i): the excess is 0 at the
optimum, and the relaxation (any d) always reaches it (G = [[I, I], [I, I]] is PSD). Solvers stop
there and certificates decide on an absolute gap (DESIGN section 5, ``Loss.floor_attainable``).

**Excess** per anchor: mean_P D + (1/2) mean_N (1 - D)^2 with D = 1 - G (positives' D from
instance-centred coordinates), a sum of non-negative terms: no cancellation.

**Range** (what the geometry controls): -mean_P G moves within [-1, 1] and (1/2) mean_N G^2 within
[0, 1/2], so 2.5 per anchoring sample (5 per pair: from -2 at the floor to 3 with u_i = -v_i and
every u_i.v_j = -1).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ufm.losses.base import Loss, RowEvaluator
from ufm.samples import SAME_GROUP, Samples
from ufm.tables import NEG, NONE, POS, RowParts, Table

#: how far one anchoring sample's term can move over unit embeddings (see the module)
RANGE_PER_ANCHOR = 2.5


def cross_view_counts(samples: Samples) -> tuple[np.ndarray, np.ndarray]:
    """(|P|, |N|) per sample: the other views of its instance, and the samples of other instances
    in another view (what the spectral loss pairs an anchor with), from labels and views alone."""
    y, v = samples.labels, samples.views
    n = samples.n
    if v is None:
        c = np.asarray(samples.counts, dtype=float)
        return c[y] - 1.0, np.zeros(n)
    same_group = np.bincount(y, minlength=samples.k)[y]
    same_view = np.bincount(v)[v]
    both = np.unique(y * (int(v.max()) + 1) + v, return_counts=True)
    key = y * (int(v.max()) + 1) + v
    same_both = both[1][np.searchsorted(both[0], key)]
    npos = (same_group - same_both).astype(float)
    nneg = (n - same_group - same_view + same_both).astype(float)
    return npos, nneg


class Spectral(Loss):
    """-(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j} (u_i.v_j)^2 over N pairs (mean form)."""

    name = "spectral"
    title = "spectral contrastive loss, N pairs (no temperature)"
    formula = "-(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j} (u_i.v_j)^2"
    source = (
        "HaoChen, Wei, Gaidon & Ma 2021, Provable Guarantees for Self-Supervised Deep Learning with "
        "Spectral Contrastive Loss (NeurIPS)"
    )
    params = ()
    samples_kind = "views"
    convex_in_gram = True
    uses_views = True
    default_reduction = "mean"
    anchor_word = "pair"
    anchor_size = 2
    pairs_only = True
    negatives_same_view = True  # counts only: for 2 views, |N| = N - 1 either way (see _types)
    floor_attainable = True
    floor_text = "-2 per pair (mean form), attained by orthonormal instances when N <= d"
    formula_note = (
        "cross-view inner products only; per pair: -2 u_i.v_i + 1/(N-1) sum_{j != i} (u_i.v_j)^2"
    )


    def kind_of_relation(self) -> np.ndarray:
        k = np.full(4, NONE, dtype=np.int8)
        k[SAME_GROUP] = POS  # the other view of the instance
        k[0] = NEG  # another instance, in the other view
        return k

    def _counts(self, samples: Samples):
        return cross_view_counts(samples)

    def _types(self, samples: Samples):
        if samples.grid is not None:
            N, V = samples.grid
            npos, nneg, mult = np.full(N, V - 1.0), np.full(N, (N - 1.0) * (V - 1)), np.full(N, float(V))
        else:
            npos, nneg = cross_view_counts(samples)
            mult = np.ones_like(npos)
        return npos, nneg, mult, self._is_anchor(npos, nneg)

    def _floor(self, samples: Samples) -> float:
        return 0.0 - self._anchor_count(samples)  # 0.0, not -0.0, without anchors

    def _range(self, samples: Samples) -> float:
        return RANGE_PER_ANCHOR * self._anchor_count(samples)

    def _degenerate(self, samples: Samples) -> str | None:
        if self._anchor_count(samples) == 0:
            return ("fewer than two pairs: the spectral loss has no negative term (1/(N(N-1)) is "
                    "undefined); -2 u.v alone is minimised by aligning the views")
        return None

    # ---- rows ---------------------------------------------------------------------------------
    def _rows_log_excess(self, X, mult, kind, weight):
        rp = RowParts.of(mult, kind, weight)
        X = np.clip(np.asarray(X, dtype=np.float64), 0.0, 2.0)
        W = np.zeros_like(X)
        if not rp.anchors.any():
            return -np.inf, W
        wp = 1.0 / np.maximum(rp.npos, 1.0)
        wn = 0.5 / np.maximum(rp.nneg, 1.0)
        G = np.where(rp.neg, 1.0 - X, 0.0)
        ex_a = (rp.mp * X).sum(1) * wp + (rp.mn * G * G).sum(1) * wn
        ex_a = np.where(rp.anchors, ex_a, 0.0)
        excess = float((weight * ex_a).sum())
        if excess > 0:
            W = np.where(rp.pos, -wp[:, None], 0.0) + np.where(rp.neg, 2.0 * wn[:, None] * G, 0.0)
            W = np.where(rp.anchors[:, None], W, 0.0) / excess
            return float(np.log(excess)), W
        return -np.inf, W

    def _cvxpy_rows(self, x, table: Table):
        import cvxpy as cp
        import scipy.sparse as sp

        rp = RowParts.of(table.mult, table.kinds(self.kind_of_relation()), table.anchor_weight)
        aw = (table.anchor_weight * rp.anchors)[:, None]
        wp = aw * np.where(rp.pos, table.mult, 0.0) / np.maximum(rp.npos, 1.0)[:, None]
        wn = aw * np.where(rp.neg, table.mult, 0.0) * 0.5 / np.maximum(rp.nneg, 1.0)[:, None]
        index = np.asarray(table.value_index).ravel()
        cp_ = np.bincount(index, weights=wp.ravel(), minlength=table.nv)
        cn = np.bincount(index, weights=wn.ravel(), minlength=table.nv)
        floor = -float(aw.sum())

        def select(coef):
            nz = np.flatnonzero(coef)
            sel = sp.csr_matrix((np.ones(nz.size), (np.arange(nz.size), nz)), shape=(nz.size, table.nv))
            return coef[nz], sel @ x

        a, xp = select(cp_)
        b, xn = select(cn)
        # floor + sum_P (1 - G) / |P| + (1/2) sum_N G^2 / |N|, per anchor
        return floor + a @ (1 - xp) + b @ cp.square(xn)

    # ---- torch ---------------------------------------------------------------------------------
    def _torch_rows(self, H, samples: Samples):
        return SpectralRows(H, samples, self)

    def _torch_plain(self, H, samples: Samples):
        """By the definition, per anchoring sample -mean_P G + (1/2) mean_N G^2, as a sum."""
        import torch

        pos, neg = self._dense_masks(samples, H.device)
        anchors = torch.as_tensor(self._anchor_mask(samples), device=H.device)
        G = H @ H.transpose(-1, -2)
        zero = torch.zeros_like(G)
        npos, nneg = pos.sum(-1).clamp_min(1), neg.sum(-1).clamp_min(1)
        per = -torch.where(pos, G, zero).sum(-1) / npos + 0.5 * torch.where(neg, G * G, zero).sum(-1) / nneg
        return torch.where(anchors, per, torch.zeros_like(per)).sum(-1)


class SpectralRows(RowEvaluator):
    """The spectral loss's log-excess over H in row blocks (torch): the positive's distance from
    instance-centred coordinates (precision near alignment), negatives' G as inner products."""

    def __init__(self, H, samples: Samples, loss: Spectral):
        import torch

        self.H = H
        dev = H.device
        self.y = torch.as_tensor(samples.labels, device=dev)
        self.views = torch.as_tensor(samples.views, device=dev)
        npos, nneg = cross_view_counts(samples)
        self.wp = torch.as_tensor(1.0 / np.maximum(npos, 1.0), device=dev, dtype=H.dtype)
        self.wn = torch.as_tensor(0.5 / np.maximum(nneg, 1.0), device=dev, dtype=H.dtype)
        self.anchors = torch.as_tensor(loss._anchor_mask(samples), device=dev)
        axis = H.dim() - 2
        sums = torch.zeros(H.shape[:-2] + (samples.k, H.shape[-1]), dtype=H.dtype, device=dev).index_add(
            axis, self.y, H
        )
        ref = sums / sums.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(H.dtype).tiny)
        self.U = H - ref.index_select(axis, self.y)
        self.usq = (self.U * self.U).sum(-1)

    def block(self, start, stop):
        import torch

        H = self.H
        G = H[..., start:stop, :] @ H.transpose(-1, -2)
        same = self.y[start:stop, None] == self.y[None, :]
        sv = self.views[start:stop, None] == self.views[None, :]
        pos, neg = same & ~sv, ~same & ~sv
        Gn = torch.where(neg, G, torch.zeros_like(G))
        ex = (Gn * Gn).sum(-1) * self.wn[start:stop]
        r, c = torch.nonzero(pos, as_tuple=True)
        ui, uj = self.U[..., r + start, :], self.U[..., c, :]
        Dp = (0.5 * (self.usq[..., r + start] + self.usq[..., c]) - (ui * uj).sum(-1)).clamp(0.0, 2.0)
        zero = torch.zeros(ex.shape, dtype=ex.dtype, device=ex.device)
        ex = ex + zero.index_add(-1, r, Dp * self.wp[r + start])
        anchors = self.anchors[start:stop]
        lex_i = torch.where(anchors & (ex > 0), torch.log(ex), torch.full_like(ex, float("-inf")))
        return SimpleNamespace(start=start, stop=stop, pos=pos, Gn=Gn, anchors=anchors, lex_i=lex_i)

    def scaled(self, t, lex):
        import torch

        start, stop = t.start, t.stop
        F = 2.0 * t.Gn * self.wn[start:stop, None]
        F = F - torch.where(t.pos, self.wp[start:stop, None], torch.zeros_like(self.wp[start:stop, None]))
        F = torch.where(t.anchors[:, None], F, torch.zeros_like(F))
        inv = torch.where(torch.isfinite(lex), torch.exp(-lex), torch.zeros_like(lex))
        return F * inv.reshape(lex.shape + (1, 1))
