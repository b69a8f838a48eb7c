"""alpha-CL (Tian 2022, "Understanding Deep Contrastive Learning via Coordinate-wise
Optimization"): contrastive learning as coordinate-wise optimisation over the embeddings and a
pairwise importance alpha.

    E_alpha = sum_i sum_{j in N(i)} alpha_ij (s_ij - s_ii')

with s the cosine, i' the positive of i (the mean over positives with V > 2 views) and N(i) every
sample of another instance. For fixed alpha, E_alpha is linear in G: the *fixed-alpha program*,
a linear SDP over the elliptope. The other player sets alpha from the current geometry, with the
gradient stopped: w_ij = g(r_ij^p), r = 1 - s, and

    alpha_ij = w_ij / (sum_{j in N(i)} w_ij + eps T_i)

with g one of exp(-x / tau); quadratic (mu_i - x)_+ / tau with mu_i such that
sum_j (mu_i - x_ij)_+ = tau (a sparsemax); inverse 1 / (x + tau)^q. The eps term T_i
(``eps_term``): ``negatives``, T_i = |N(i)| (the authors' code, the default); ``positive``,
T_i = sum_{j in P(i)} w_ij (the paper's eps e^{-r_ii'/tau}: with p = 1 and exp weights, eps = 1
makes the dynamics tau times InfoNCE's gradient and eps = 0 tau times DCL's). Weights other than
exp with p = 1 have no scalar objective: the coordinate-wise dynamics (alpha from the current
point, a descent step on E_alpha, repeat) is the only way to solve them, and what is certified is a
fixed point: embeddings that globally minimise the fixed-alpha program at their own alpha (DESIGN
section 3).

**Weights in log space.** log w and the log of each denominator are computed as log-sum-exps
(eps term included), so a weight that is tiny but positive never becomes 0 and 0/0 never occurs
(at tau = 0.01 the total A = sum alpha is about 1e-23; at smaller tau it is below float64's
range). Each row's alpha is carried as log a_i (its total) and alpha / a_i, which sums to 1.

**Floor and scale.** Scaling alpha leaves the fixed-alpha program's minimiser unchanged, so the
scale a certificate is judged against must scale with alpha (DESIGN section 5). With alpha frozen,
s_ij - s_ii' >= -2 gives E_alpha >= -2 A: the forms' excess is E_alpha + 2 A =
sum alpha (s_ij - s_ii' + 2) in [0, 4 A], and the floor they report is -2 A at the point's own
alpha (:meth:`AlphaCL.point_floor`). The declared geometry-independent floor is -2 per anchor
(A <= anchors).

Defaults follow the authors' code and README (luckmatters/ssl/real-dataset): tau 0.5, exp, and
``p = 2`` on r = 1 - s: their command line ``alpha_exponent=2``, which the paper calls p = 4 on the
Euclidean distance (r = d^2 / 2); eps 0.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ufm.errors import UFMInputError
from ufm.losses.base import BlockTerms, Loss, RowEvaluator, _dense_table, _logsumexp, as_samples
from ufm.losses.masked_lse import lse_rows
from ufm.losses.relations import block_masks
from ufm.params import Param, temperature
from ufm.samples import SAME_GROUP, SAME_VIEW, Samples
from ufm.tables import NEG, POS, Table

WEIGHTS = ("exp", "quadratic", "inverse")
EPS_TERMS = ("negatives", "positive")
#: largest exponent p: r^p <= 2^16 keeps every log-weight an ordinary float64 number
P_MAX = 16.0
#: largest exponent q of the inverse weight
Q_MAX = 64.0


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
    formula = "sum_i sum_{j in N(i)} alpha_ij (s_ij - s_ii'), alpha_ij = w_ij / (sum_j w_ij + eps T_i)"
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
            f"alpha-CL exponent p of w = g(r^p), r = 1 - cosine (0 < p <= {P_MAX:g}; default 2, the "
            "authors' alpha_exponent = 2, p = 4 in the paper's distance)",
            minimum=0.0,
            maximum=P_MAX,
            extremes=(0.01, P_MAX),
        ),
        Param("eps", 0.1, "alpha-CL normalisation eps >= 0 (default 0.1)", minimum=0.0, strict=False,
              extremes=(0.0, 1e300)),
        Param(
            "eps_term",
            "negatives",
            "alpha-CL eps term T_i in alpha = w / (sum w + eps T_i): negatives (T_i = |N(i)|, the "
            "authors' code; default) | positive (T_i = the positives' weight, the paper: eps = 1 is "
            "InfoNCE, eps = 0 DCL)",
            kind="choice",
            choices=EPS_TERMS,
        ),
        Param(
            "q", 1.0, f"alpha-CL exponent q of the inverse weight 1/(x + tau)^q (0 < q <= {Q_MAX:g}; "
            "default 1)", minimum=0.0, maximum=Q_MAX, extremes=(0.01, Q_MAX),
        ),
    )
    samples_kind = "views"
    convex_in_gram = True  # the fixed-alpha program: linear in G
    scalar_objective = False
    floor_text = ("-2 sum alpha at the point's own alpha (the fixed-alpha program's floor: "
                  "s_ij - s_ii' >= -2); never below -2 per anchor")

    floor_note = "-2 sum alpha: the fixed-alpha program's floor at the point's own alpha"
    relaxation_text = "the fixed-alpha program (linear in G) at the point's own alpha"
    dynamics_text = "alpha from the current geometry"
    fixed_point_program = "fixed-alpha program"
    formula_note = (
        "s = G (cosines), i' the positive of i; w = g(r^p), r = 1 - s; g: exp e^{-x/tau}, quadratic "
        "(mu_i - x)_+/tau (a sparsemax), inverse (x + tau)^-q; T_i = |N(i)| (`--eps-term negatives`, the "
        "authors' code) or the positives' weight (`positive`, the paper)"
    )
    convexity_note = "the fixed-alpha program is linear in G"

    def _check(self) -> None:
        if self.eps_term == "positive" and self.weight == "quadratic":
            raise UFMInputError("--eps-term", "positive needs a weight defined pair by pair (exp or "
                                "inverse); the quadratic weight is a sparsemax over the negatives")

    def kind_of_relation(self) -> np.ndarray:
        k = np.full(4, NEG, dtype=np.int8)
        k[SAME_GROUP] = POS
        k[SAME_GROUP | SAME_VIEW] = POS
        return k

    def _floor(self, samples: Samples) -> float:
        return -2.0 * self._anchors(samples)

    def _degenerate(self, samples: Samples) -> str | None:
        if self._anchor_count(samples) == 0:
            return "no anchor has both a positive and a negative: alpha-CL is constant"
        return None

    # ---- weights (log space) -----------------------------------------------------------------
    def log_weights(self, X, live, mult=None):
        """log w = log g(r^p) for distances r = X (numpy or torch) where ``live``, -inf elsewhere;
        ``mult`` the multiplicities (the quadratic weight normalises over the live entries)."""
        torch_in = type(X).__module__.startswith("torch")
        xp = __import__("torch") if torch_in else np
        r = X.clamp(0.0, 2.0) if torch_in else np.clip(X, 0.0, 2.0)
        x = r**self.p
        ninf = xp.full_like(x, -np.inf)
        if self.weight == "exp":
            lw = -x / self.tau
        elif self.weight == "inverse":
            lw = -self.q * xp.log(x + self.tau)
        else:
            m = live.to(x.dtype) if mult is None and torch_in else (live * 1.0 if mult is None else mult)
            w = sparsemax_weights(xp.where(live, x, xp.ones_like(x)), xp.where(live, m, xp.zeros_like(x)),
                                  self.tau)
            if torch_in:
                lw = xp.where(w > 0, xp.log(w.clamp_min(1e-300)), ninf)
            else:
                with np.errstate(divide="ignore"):
                    lw = np.log(w)
        return xp.where(live, lw, ninf)

    def _log_eps_term(self, log_pos_weight, nneg):
        """log(eps T_i) per row (numpy): T_i = |N(i)|, or the positives' total weight given as
        its log; None where eps = 0."""
        if self.eps <= 0:
            return None
        return math.log(self.eps) + (log_pos_weight if self.eps_term == "positive" else np.log(nneg))

    def torch_log_alpha(self, R, pos, neg, nneg):
        """log alpha_ij (torch, rows x n) from distances R = 1 - G, the rows' positive and
        negative masks and |N(i)| per row: log w - log(sum_N w + eps T_i), -inf off N(i)."""
        import torch

        lw = self.log_weights(R, neg.expand_as(R))
        terms = [lw]
        if self.eps > 0:
            if self.eps_term == "positive":
                lt = torch.logsumexp(self.log_weights(R, pos.expand_as(R)), -1, keepdim=True)
            else:
                lt = nneg.log().reshape(-1, 1).expand(lw.shape[:-1] + (1,))
            terms.append(math.log(self.eps) + lt)
        log_den = torch.logsumexp(torch.cat(terms, -1), -1, keepdim=True)
        return torch.where(neg, lw - log_den, torch.full_like(lw, -math.inf))

    def row_alpha(self, X, mult, kind):
        """``(log a, alpha / a)`` per row of a table (A, T), from distances X (numpy): a_i =
        sum_j m_ij alpha_ij, the row's total alpha, and the row's alpha normalised to sum 1."""
        neg, pos = kind == NEG, kind == POS
        mult = np.asarray(mult, dtype=float)
        mn = np.where(neg, mult, 0.0)
        with np.errstate(divide="ignore"):
            logm = np.log(np.where(neg | pos, mult, 1.0))
        lw = self.log_weights(X, neg, mn)
        lse_neg = lse_rows(np.where(neg, logm + lw, -np.inf))
        lpos = None
        if self.eps_term == "positive" and self.eps > 0:
            lpos = lse_rows(np.where(pos, logm + self.log_weights(X, pos), -np.inf))
        eps_log = self._log_eps_term(lpos, np.maximum(mn.sum(axis=1), 1.0))
        log_den = lse_neg if eps_log is None else np.logaddexp(lse_neg, eps_log)
        with np.errstate(invalid="ignore"):
            log_alpha = np.where(neg, lw - log_den[:, None], -np.inf)
        log_a = lse_rows(np.where(neg, logm + log_alpha, -np.inf))
        safe = np.where(np.isfinite(log_a), log_a, 0.0)
        alpha_row = np.where(neg & np.isfinite(log_a)[:, None], np.exp(log_alpha - safe[:, None]), 0.0)
        return log_a, alpha_row

    def alpha(self, X, mult, kind):
        """alpha per entry of each row (A, T), from distances X (numpy; may underflow to 0 where
        the weights do: solvers use :meth:`row_alpha`)."""
        log_a, alpha_row = self.row_alpha(X, mult, kind)
        return alpha_row * np.exp(np.where(np.isfinite(log_a), log_a, -np.inf))[:, None]

    # ---- rows ---------------------------------------------------------------------------------
    def _rows_log_excess(self, X, mult, kind, weight, X_alpha=None):
        """Excess of E_alpha over the fixed-alpha program's floor -2 A, alpha from ``X_alpha``
        (default X: alpha-CL's own value), and the gradient of the fixed-alpha program (linear in
        G) divided by the excess; row i's share is a_i sum_j (alpha_ij / a_i)(rbar_i + 2 - X_ij)."""
        log_a, alpha_row = self.row_alpha(X if X_alpha is None else X_alpha, mult, kind)
        rp = self.row_parts(mult, kind, weight)
        W = np.zeros_like(X)
        X = np.clip(X, 0.0, 2.0)
        rbar = (rp.mp * X).sum(1) / np.maximum(rp.npos, 1.0)
        ex_row = (rp.mn * alpha_row * (rbar[:, None] + 2.0 - np.where(rp.neg, X, 0.0))).sum(1)
        live = rp.anchors & np.isfinite(log_a) & (ex_row > 0)
        with np.errstate(divide="ignore"):
            lex_i = np.where(live, np.log(np.where(rp.anchors, weight, 1.0)) + log_a
                             + np.log(np.where(live, ex_row, 1.0)), -np.inf)
        lex = _logsumexp(lex_i)
        if not np.isfinite(lex):
            return -np.inf, W
        finite = np.isfinite(log_a)
        row_f = np.where(rp.anchors & finite, np.exp(np.where(finite, log_a, 0.0) - lex), 0.0)
        W = np.where(rp.neg, alpha_row, np.where(rp.pos, -(1.0 / np.maximum(rp.npos, 1.0))[:, None], 0.0))
        return lex, W * row_f[:, None]

    def _rows_log_alpha_total(self, X, mult, kind, weight) -> float:
        """log A = log sum_i weight_i a_i over table rows (anchors only)."""
        log_a, _ = self.row_alpha(X, mult, kind)
        rp = self.row_parts(mult, kind, weight)
        with np.errstate(divide="ignore"):
            li = np.where(rp.anchors, np.log(np.where(rp.anchors, weight, 1.0)) + log_a, -np.inf)
        return _logsumexp(li)

    def log_alpha_total(self, samples, *, dist=None, table=None, H=None) -> float:
        """log A, A = sum of alpha over anchors (reduced in each mini-batch and summed over them:
        sum_b w_b A_b, ``Loss._batch_weights``), at a point given by n x n distances, by a table
        (full batch) and its per-value distances, or by H (torch)."""
        samples = as_samples(samples)
        if H is not None:
            return float(self._torch_log_alpha_total(H, samples))
        if table is not None:
            kind = table.kinds(self.kind_of_relation())
            lt = self._rows_log_alpha_total(table.gather(dist), table.mult, kind, table.anchor_weight)
            return lt + math.log(self._scale(samples))
        weights = self._batch_weights(samples)
        if samples.batches is None:
            t = _dense_table(samples)
            lt = self._rows_log_alpha_total(dist, t.mult, t.kinds(self.kind_of_relation()), t.anchor_weight)
            return lt + math.log(weights[0])
        parts = []
        for w, (idx, sb) in zip(weights, samples.batch_subsets, strict=True):
            t = _dense_table(sb)
            parts.append(self._rows_log_alpha_total(np.asarray(dist)[np.ix_(idx, idx)], t.mult,
                                                    t.kinds(self.kind_of_relation()), t.anchor_weight)
                         + math.log(w))
        return _logsumexp(parts)

    def _torch_log_alpha_total(self, H, samples: Samples):
        """log A of H ((n, d) or (R, n, d)) as a tensor of the batch shape, with the reduction
        (each mini-batch's A_b weighted by its own w_b, ``Loss._batch_weights``)."""
        import torch

        weights = self._batch_weights(samples)
        if samples.batches is not None:
            parts = [self._torch_log_alpha_total_full(H.index_select(-2, torch.as_tensor(i, device=H.device)),
                                                      sb) + math.log(w)
                     for w, (i, sb) in zip(weights, samples.batch_subsets, strict=True)]
            return torch.logsumexp(torch.stack(parts), 0)
        return self._torch_log_alpha_total_full(H, samples) + math.log(weights[0])

    def _torch_log_alpha_total_full(self, H, samples: Samples):
        """log A of a full batch (sum reduction), a tensor of the batch shape."""
        import torch

        ev = AlphaRows(H, samples, self)
        n = H.shape[-2]
        li = torch.cat([ev.block(a, min(a + 2048, n)).log_a_anchor for a in range(0, n, 2048)], dim=-1)
        return torch.logsumexp(li, dim=-1)

    def point_floor(self, samples, *, dist=None, table=None, H=None):
        """-2 A at the point's own alpha: the floor of its fixed-alpha program (a tensor of the
        batch shape for H of shape (R, n, d))."""
        if H is not None and H.dim() > 2:
            return -2.0 * self._torch_log_alpha_total(H, as_samples(samples)).exp()
        return -2.0 * math.exp(self.log_alpha_total(samples, dist=dist, table=table, H=H))

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
        rp = self.row_parts(table.mult, kind, table.anchor_weight)
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
        program's), reduced in each mini-batch and summed over them: the line search of the
        coordinate-wise dynamics."""
        samples = as_samples(samples)
        return self._torch_batched(
            H, samples, lambda Hb, sb, it: self._torch_full(
                Hb, sb, block, ev=AlphaRows(Hb, sb, self, H_alpha if it is None else
                                            H_alpha.index_select(-2, it))))

    def _torch_plain(self, H, samples: Samples):
        """By the definition: alpha from H without gradient (log-sum-exp denominators), then
        sum alpha (s_ij - s_ii')."""
        import torch

        pos, neg = self._dense_masks(samples, H.device)
        G = H @ H.transpose(-1, -2)
        with torch.no_grad():
            la = self.torch_log_alpha(1.0 - G, pos, neg, neg.sum(-1).to(H.dtype))
            alpha = torch.where(neg, torch.exp(la), torch.zeros_like(la))
        spos = torch.where(pos, G, torch.zeros_like(G)).sum(-1) / pos.sum(-1).clamp_min(1)
        return (alpha * (G - spos.unsqueeze(-1))).sum((-1, -2))


@dataclass(eq=False)
class AlphaTerms(BlockTerms):
    """A block of :class:`AlphaRows`: each row's alpha normalised to sum 1 and the log of its
    total, the positives' mask, the anchors."""

    alpha_row: Any = None
    pos: Any = None
    log_a: Any = None
    anchors: Any = None
    log_a_anchor: Any = None


class AlphaRows(RowEvaluator):
    """alpha-CL in row blocks (torch): alpha from ``H_alpha`` (default H) in log space, the excess
    of E_alpha over -2 A and the gradient of the fixed-alpha program."""

    def __init__(self, H, samples: Samples, loss: AlphaCL, H_alpha=None):
        import torch

        self.H, self.loss = H, loss
        self.Ha = H if H_alpha is None else H_alpha
        dev = H.device
        self.y = torch.as_tensor(samples.labels, device=dev)
        self.v = None if samples.views is None else torch.as_tensor(samples.views, device=dev)
        self.lut = loss.kind_of_relation()
        npos, nneg = loss._counts(samples)
        self.npos = torch.as_tensor(np.maximum(npos, 1.0), device=dev, dtype=H.dtype)
        self.nneg = torch.as_tensor(np.maximum(nneg, 1.0), device=dev, dtype=H.dtype)
        self.anchors = torch.as_tensor(loss._anchor_mask(samples), device=dev)

    def block(self, start, stop):
        import torch

        H, loss = self.H, self.loss
        G = H[..., start:stop, :] @ H.transpose(-1, -2)
        G0 = G if self.Ha is H else self.Ha[..., start:stop, :] @ self.Ha.transpose(-1, -2)
        same = self.y[start:stop, None] == self.y[None, :]
        sv = None if self.v is None else self.v[start:stop, None] == self.v[None, :]
        masks = block_masks(self.lut, same, sv, (POS, NEG), start)
        pos, neg = masks.get(POS, torch.zeros_like(same)), masks.get(NEG, torch.zeros_like(same))
        log_alpha = loss.torch_log_alpha(1.0 - G0, pos, neg, self.nneg[start:stop])
        log_a = torch.logsumexp(log_alpha, -1)
        finite = torch.isfinite(log_a)
        safe = torch.where(finite, log_a, torch.zeros_like(log_a))
        alpha_row = torch.where(neg & finite.unsqueeze(-1), torch.exp(log_alpha - safe.unsqueeze(-1)),
                                torch.zeros_like(log_alpha))
        D = (1.0 - G).clamp(0.0, 2.0)
        rbar = torch.where(pos, D, torch.zeros_like(D)).sum(-1) / self.npos[start:stop]
        ex = (alpha_row * (rbar.unsqueeze(-1) + 2.0 - D)).sum(-1)
        anchors = self.anchors[start:stop] & finite
        ninf = torch.full_like(ex, float("-inf"))
        lex_i = torch.where(anchors & (ex > 0), safe + torch.log(ex.clamp_min(1e-300)), ninf)
        return AlphaTerms(start, stop, lex_i, alpha_row=alpha_row, pos=pos, log_a=safe, anchors=anchors,
                          log_a_anchor=torch.where(anchors, safe, ninf))

    def scaled(self, t, lex):
        import torch

        F = t.alpha_row + torch.where(
            t.pos, -(1.0 / self.npos[t.start : t.stop]).unsqueeze(-1), torch.zeros_like(t.alpha_row)
        )
        row = torch.where(t.anchors, torch.exp(t.log_a - lex.unsqueeze(-1)), torch.zeros_like(t.log_a))
        return F * row.unsqueeze(-1)
