"""alpha-CL (Tian 2022, "Understanding Deep Contrastive Learning via Coordinate-wise
Optimization"): contrastive learning as coordinate-wise optimisation over the embeddings and a
pairwise importance alpha.

    E_alpha = sum_i sum_{j in N(i)} alpha_ij (s_ij - s_ii')

with s the cosine, i' the positive of i (the mean over positives with V > 2 views) and N(i) every
sample of another instance. For fixed alpha, E_alpha is linear in G: the *fixed-alpha program*,
a linear SDP over the elliptope. The other player sets alpha from the current geometry, with the
gradient stopped: w_ij = g(r_ij^p), r = 1 - s, and

    alpha_ij = w_ij / (sum_{j in N(i)} w_ij + eps |N(i)|)

with g one of exp(-x / tau) (p = 1, eps = 0: the dynamics is tau times the gradient of DCL);
quadratic (mu_i - x)_+ / tau with mu_i such that sum_j (mu_i - x_ij)_+ = tau (a sparsemax);
inverse 1 / (x + tau)^q. Only exp with p = 1 and eps = 0 has a scalar objective; in general the
coordinate-wise dynamics (alpha from the current point, a descent step on E_alpha, repeat) is the
only way to solve it, and what is certified is a fixed point: embeddings that globally minimise
the fixed-alpha program at their own alpha (DESIGN section 3).

Defaults follow the authors' code and README (luckmatters/ssl/real-dataset): tau 0.5, exp, and
``p = 2`` on r = 1 - s: their command line ``alpha_exponent=2``, which the paper calls p = 4 on the
Euclidean distance (r = d^2 / 2); eps 0.1.

**Floor**: alpha_ij >= 0 with sum_j alpha_ij <= 1 and s_ij - s_ii' >= -2, so E >= -2 per anchor;
the excess E + 2 |anchors| = sum alpha (r_ii' + 2 - r_ij) + 2 (1 - sum_j alpha_ij) is a sum of
non-negative terms.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from ufm.losses.base import Loss, RowEvaluator
from ufm.params import Param, temperature
from ufm.samples import SAME_GROUP, Samples
from ufm.tables import NEG, POS, RowParts, Table

WEIGHTS = ("exp", "quadratic", "inverse")


def sparsemax_weights(x, mult, tau: float):
    """w_t = (mu - x_t)_+ / tau with sum_t mult_t w_t = 1 along the last axis (numpy or torch);
    entries with mult 0 get 0. Michelot's projection with multiplicities: sort, cumulate."""
    if type(x).__module__.startswith("torch"):
        import torch as xp
    else:
        xp = np
    big = float("inf")
    live = mult > 0
    xs = xp.where(live, x, xp.full_like(x, big))
    if xp is np:
        order = np.argsort(xs, axis=-1, kind="stable")
        xo = np.take_along_axis(xs, order, axis=-1)
        mo = np.take_along_axis(np.where(live, mult, 0.0), order, axis=-1)
        cm = np.cumsum(mo, axis=-1)
        cs = np.cumsum(mo * np.where(mo > 0, xo, 0.0), axis=-1)
    else:
        xo, order = xp.sort(xs, dim=-1)
        mo = xp.gather(xp.where(live, mult, xp.zeros_like(mult)), -1, order)
        cm = xp.cumsum(mo, dim=-1)
        cs = xp.cumsum(mo * xp.where(mo > 0, xo, xp.zeros_like(xo)), dim=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_k = (cs + tau) / cm
    valid = (mo > 0) & (xo < mu_k)
    if xp is np:
        last = np.maximum(valid.shape[-1] - 1 - np.argmax(valid[..., ::-1], axis=-1), 0)
        mu = np.take_along_axis(mu_k, last[..., None], axis=-1)
        w = np.maximum(mu - xs, 0.0) / tau
        return np.where(live, w, 0.0)
    idx = xp.arange(valid.shape[-1], device=valid.device).expand_as(valid)
    last = xp.where(valid, idx, xp.zeros_like(idx)).amax(dim=-1, keepdim=True)
    mu = xp.gather(mu_k, -1, last)
    w = (mu - xs).clamp_min(0.0) / tau
    return xp.where(live, w, xp.zeros_like(w))


class AlphaCL(Loss):
    name = "alpha_cl"
    title = (
        "alpha-CL: pairwise importance alpha from the geometry (stop-gradient), fixed-alpha linear program"
    )
    formula = "sum_i sum_{j in N(i)} alpha_ij (s_ij - s_ii'), alpha_ij = w_ij / (sum_j w_ij + eps |N(i)|)"
    source = (
        "Tian 2022, Understanding Deep Contrastive Learning via Coordinate-wise Optimization "
        "(NeurIPS); code: facebookresearch/luckmatters ssl/real-dataset"
    )
    params = (
        temperature(0.5, "as in the authors' code"),
        Param(
            "weight",
            "exp",
            "alpha-CL weight g: exp | quadratic | inverse (default exp)",
            kind="choice",
            choices=WEIGHTS,
        ),
        Param(
            "p",
            2.0,
            "alpha-CL exponent p of w = g(r^p), r = 1 - cosine (> 0; default 2, the authors' "
            "alpha_exponent = 2, p = 4 in the paper's distance)",
            minimum=0.0,
        ),
        Param("eps", 0.1, "alpha-CL normalisation eps >= 0 (default 0.1)", minimum=0.0, strict=False),
        Param(
            "q", 1.0, "alpha-CL exponent q of the inverse weight 1/(x + tau)^q (> 0; default 1)", minimum=0.0
        ),
    )
    samples_kind = "views"
    convex_in_gram = True  # the fixed-alpha program: linear in G
    scalar_objective = False
    floor_text = "-2 per anchor (s_ij - s_ii' >= -2, sum_j alpha_ij <= 1)"

    def kind_of_relation(self) -> np.ndarray:
        k = np.full(4, NEG, dtype=np.int8)
        k[SAME_GROUP] = POS
        k[SAME_GROUP | 2] = POS
        return k

    def _floor(self, samples: Samples) -> float:
        return -2.0 * self._anchors(samples)

    def _degenerate(self, samples: Samples) -> str | None:
        if self._anchor_count(samples) == 0:
            return "no anchor has both a positive and a negative: alpha-CL is constant"
        return None

    # ---- weights ---------------------------------------------------------------------------
    def weights(self, x, mult):
        """w = g(x) for x = r^p on negatives (``mult`` > 0), 0 elsewhere (numpy or torch)."""
        xp = np if isinstance(x, np.ndarray) else __import__("torch")
        live = mult > 0
        if self.weight == "quadratic":
            return sparsemax_weights(x, mult, self.tau)
        if self.weight == "exp":
            w = xp.exp(-x / self.tau)
        else:
            w = (x + self.tau) ** (-self.q)
        return xp.where(live, w, xp.zeros_like(w))

    def alpha(self, X, mult, kind):
        """alpha per entry of each row (A, T), from distances X (numpy)."""
        neg = kind == NEG
        mn = np.where(neg, mult, 0.0)
        with np.errstate(invalid="ignore"):
            x = np.clip(np.where(neg, X, 1.0), 0.0, None) ** self.p
        w = self.weights(x, mn)
        den = (mn * w).sum(axis=1) + self.eps * mn.sum(axis=1)
        return np.divide(w, den[:, None], out=np.zeros_like(w), where=den[:, None] > 0)

    # ---- rows ---------------------------------------------------------------------------------
    def _rows_log_excess(self, X, mult, kind, weight, X_alpha=None):
        """Excess of E_alpha with alpha from ``X_alpha`` (default X: alpha-CL's own value), and
        the gradient of the fixed-alpha program (linear in G) divided by the excess."""
        alpha = self.alpha(X if X_alpha is None else X_alpha, mult, kind)
        rp = RowParts.of(mult, kind, weight)
        pos, neg, mp, mn, npos, anchors = rp.pos, rp.neg, rp.mp, rp.mn, rp.npos, rp.anchors
        W = np.zeros_like(X)
        if not anchors.any():
            return -np.inf, W
        rbar = (mp * X).sum(1) / np.maximum(npos, 1.0)
        a_sum = (mn * alpha).sum(1)
        ex_a = (mn * alpha * (rbar[:, None] + 2.0 - np.where(neg, X, 0.0))).sum(1) + 2.0 * (1.0 - a_sum)
        ex_a = np.where(anchors, np.maximum(ex_a, 0.0), 0.0)
        excess = float((weight * ex_a).sum())
        if not excess > 0:
            return -np.inf, W
        W = np.where(neg, alpha, np.where(pos, -(a_sum / np.maximum(npos, 1.0))[:, None], 0.0))
        W = np.where(anchors[:, None], W, 0.0) / excess
        return math.log(excess), W

    def frozen_table_log_excess(self, table: Table, dist, dist_alpha, samples=None):
        """:meth:`table_log_excess` with alpha frozen at the geometry ``dist_alpha``."""
        kind = table.kinds(self.kind_of_relation())
        lex, W = self._rows_log_excess(
            table.gather(dist), table.mult, kind, table.anchor_weight, table.gather(dist_alpha)
        )
        scale = 1.0 if samples is None else self._scale(samples)
        return lex + math.log(scale), table.scatter(W)

    def _cvxpy_rows(self, x, table: Table, X_alpha=None):
        """The fixed-alpha program over a table (linear in x), alpha from ``X_alpha`` (distances
        per term of the point that sets it); the value equals E_alpha."""
        if X_alpha is None:
            raise NotImplementedError(
                "alpha-CL's CVXPY form is the fixed-alpha program: give the "
                "geometry that sets alpha (X_alpha)"
            )
        kind = table.kinds(self.kind_of_relation())
        alpha = self.alpha(X_alpha, table.mult, kind)
        rp = RowParts.of(table.mult, kind, table.anchor_weight)
        pos, neg, mp, mn, npos, anchors = rp.pos, rp.neg, rp.mp, rp.mn, rp.npos, rp.anchors
        a_sum = (mn * alpha).sum(1)
        # E = sum_a w_a [sum_neg m alpha G_t - a_sum * mean_pos G]
        per = np.where(neg, mn * alpha, np.where(pos, -mp * (a_sum / np.maximum(npos, 1.0))[:, None], 0.0))
        per = np.where(anchors[:, None], per, 0.0) * table.anchor_weight[:, None]
        coef = np.bincount(np.asarray(table.value_index).ravel(), weights=per.ravel(), minlength=table.nv)
        nz = np.flatnonzero(coef)
        return coef[nz] @ x[nz]

    def cvxpy_gram(self, G, samples, at=None):
        """The fixed-alpha program over an n x n Gram variable, alpha from the Gram ``at``."""
        import cvxpy as cp

        from ufm.losses.base import _dense_table, as_samples

        samples = as_samples(samples)
        if at is None:
            raise NotImplementedError("alpha-CL's CVXPY form is the fixed-alpha program: pass at=G0")
        if samples.batches is not None:
            raise NotImplementedError("the fixed-alpha program of a mini-batch loss is not provided")
        return self._cvxpy_rows(
            cp.vec(G, order="C"), _dense_table(samples), 1.0 - np.asarray(at)
        ) * self._scale(samples)

    # ---- torch ---------------------------------------------------------------------------------
    def _torch_rows(self, H, samples: Samples, H_alpha=None):
        return AlphaRows(H, samples, self, H_alpha)

    def torch_frozen_log_excess_and_grad(self, H, samples, H_alpha, block: int = 4096):
        """log excess of E_alpha at H with alpha from ``H_alpha`` and its gradient (the fixed-alpha
        program's): the line search of the coordinate-wise dynamics."""
        from ufm.losses.base import as_samples

        samples = as_samples(samples)
        lex, grad = self._torch_full(H, samples, block, ev=AlphaRows(H, samples, self, H_alpha))
        return lex + math.log(self._scale(samples)), grad

    def _torch_plain(self, H, samples: Samples):
        """By the definition: alpha from H without gradient, then sum alpha (s_ij - s_ii')."""
        import torch

        pos, neg = self._dense_masks(samples, H.device)
        G = H @ H.transpose(-1, -2)
        with torch.no_grad():
            r = (1.0 - G).clamp_min(0.0) ** self.p
            w = self.weights(torch.where(neg, r, torch.ones_like(r)), neg.to(H.dtype).expand_as(r))
            w = torch.where(neg, w, torch.zeros_like(w))
            alpha = w / (w.sum(-1, keepdim=True) + self.eps * neg.sum(-1, keepdim=True).to(H.dtype))
        spos = torch.where(pos, G, torch.zeros_like(G)).sum(-1) / pos.sum(-1).clamp_min(1)
        return (alpha * (G - spos.unsqueeze(-1))).sum((-1, -2))


class AlphaRows(RowEvaluator):
    """alpha-CL in row blocks (torch): alpha from ``H_alpha`` (default H), the excess of E_alpha
    and the gradient of the fixed-alpha program."""

    def __init__(self, H, samples: Samples, loss: AlphaCL, H_alpha=None):
        import torch

        self.H, self.loss = H, loss
        self.Ha = H if H_alpha is None else H_alpha
        dev = H.device
        self.y = torch.as_tensor(samples.labels, device=dev)
        npos, nneg = loss._counts(samples)
        self.npos = torch.as_tensor(np.maximum(npos, 1.0), device=dev, dtype=H.dtype)
        self.nneg = torch.as_tensor(nneg, device=dev, dtype=H.dtype)
        self.anchors = torch.as_tensor(loss._anchor_mask(samples), device=dev)

    def block(self, start, stop):
        import torch

        H, loss = self.H, self.loss
        G = H[..., start:stop, :] @ H.transpose(-1, -2)
        G0 = G if self.Ha is H else self.Ha[..., start:stop, :] @ self.Ha.transpose(-1, -2)
        same = self.y[start:stop, None] == self.y[None, :]
        rows = torch.arange(stop - start, device=H.device)
        pos = same.clone()
        pos[rows, rows + start] = False
        neg = ~same
        negf = neg.to(H.dtype).expand_as(G)
        x = torch.where(neg, (1.0 - G0).clamp_min(0.0) ** loss.p, torch.ones_like(G0))
        w = loss.weights(x, negf)
        den = (w * negf).sum(-1) + loss.eps * self.nneg[start:stop]
        alpha = torch.where(neg, w, torch.zeros_like(w)) / den.unsqueeze(-1)
        D = 1.0 - G
        rbar = torch.where(pos, D, torch.zeros_like(D)).sum(-1) / self.npos[start:stop]
        a_sum = alpha.sum(-1)
        ex = (alpha * (rbar.unsqueeze(-1) + 2.0 - D)).sum(-1) + 2.0 * (1.0 - a_sum)
        anchors = self.anchors[start:stop]
        lex_i = torch.where(anchors, torch.log(ex.clamp_min(0.0)), torch.full_like(ex, float("-inf")))
        return SimpleNamespace(
            start=start, stop=stop, alpha=alpha, pos=pos, a_sum=a_sum, lex_i=lex_i, anchors=anchors
        )

    def scaled(self, t, lex):
        import torch

        F = t.alpha + torch.where(
            t.pos, -(t.a_sum / self.npos[t.start : t.stop]).unsqueeze(-1), torch.zeros_like(t.alpha)
        )
        F = torch.where(t.anchors[:, None], F, torch.zeros_like(F))
        return F * torch.exp(-lex).reshape(lex.shape + (1, 1))
