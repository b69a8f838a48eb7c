"""The masked log-sum-exp: most of the contrastive family in one form (DESIGN section 3).

For anchor i with positives P(i) and negatives N(i) (masks from the pair relations):

    "out"       l_i = log sum_{P u N} e^{G_il / tau} - (1 / |P|) sum_P G_ij / tau
    "decoupled" l_i = log sum_{N} e^{G_il / tau} - (a / |P|) sum_P G_ij / tau
    "in"        l_i = log sum_{P u N} e^{G_il / tau} - log((1 / |P|) sum_P e^{G_ij / tau})

("out" and "decoupled" are convex in G; "in" is not.)

**Floor and excess.** With distances D = 1 - G (D_ij = ||h_i - h_j||^2 / 2), dbar_i the mean
distance to the positives and x_l = (dbar_i - D_il) / tau (the positive x_j average to 0):

* "out":  l_i = log |P| + log1p(B_i),  B_i = (1/|P|)[sum_P (e^{x_j} - 1 - x_j) + sum_N e^{x_l}] >= 0;
* "in":   l_i = log |P| + log1p(B_i),  B_i = sum_N e^{-D_il/tau} / sum_P e^{-D_ij/tau};
* "decoupled": l_i = log |N| - (1 + a)/tau + [log mean_N e^{(2 - D_il)/tau}] + a dbar_i / tau,
  both brackets >= 0 (G >= -1).

So the floors are sum_i log |P(i)| and sum_i [log |N(i)| - (1 + a) / tau] (approached as negatives
move apart with positives aligned), and the excess is a sum of non-negative terms, each computed
in the log domain (``log B_i`` as one log-sum-exp, e^x - 1 - x by its series), so it keeps full
relative precision even where it underflows float64. Positive distances come from group-centred
coordinates (``Loss.distances``), so a class collapsed to 1e-12 keeps its spread.

The gradient of log(excess) (what solvers and certificates use, DESIGN section 5) follows without
cancellation; for "out", with c_i = 1 / (|P| (1 + B_i) tau excess):

    F_il / excess = c_i e^{x_l} (l negative),  c_i (expm1(x_j) - B_i) (j positive).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ufm.losses.base import BlockTerms, Loss, RowEvaluator, group_centred
from ufm.losses.relations import block_masks
from ufm.numerics import expm1mx, log_expm1mx, log_log1p_exp, log_sum_expm1mx
from ufm.samples import SAME_VIEW, Samples
from ufm.tables import NEG, NONE, POS, RowParts, Table

MODES = ("out", "in", "decoupled")


def lse_rows(logE, axis=-1):
    """log sum exp along ``axis`` of an array that may hold -inf entries (all -inf: -inf)."""
    m = np.max(logE, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return (m + np.log(np.exp(logE - m).sum(axis=axis, keepdims=True))).squeeze(axis)


class RowsPlan:
    """What the rows of a table fix once for a masked log-sum-exp: masks, multiplicities and
    their logs, |P| and |N| per row, the anchors, and the flat indices of the positive terms
    (few: inside-group entries), which are evaluated as a subset."""

    def __init__(self, parts: RowParts, mult, weight):
        mult = np.asarray(mult, dtype=float)
        pos, neg = parts.pos, parts.neg
        self.shape = mult.shape
        self.neg = neg
        self.pos_idx = np.flatnonzero(pos)
        self.pos_rows = self.pos_idx // mult.shape[1]
        self.pos_mult = mult.ravel()[self.pos_idx]
        # one positive term per row (a reduced table: every positive at the same distance): its
        # x = (dbar - D) / tau is exactly 0, so it adds nothing to B and e^x - 1 - x need not run
        self.single_pos = bool(np.all(pos.sum(axis=1) <= 1))
        self.npos, self.nneg, self.anchors = parts.npos, parts.nneg, parts.anchors
        self.inv_mult_neg = np.where(neg, 1.0 / np.where(neg, mult, 1.0), 0.0)
        with np.errstate(divide="ignore"):
            self.logm_neg = np.where(neg, np.log(np.where(neg, mult, 1.0)), -np.inf)
            self.logm_pos = np.log(self.pos_mult)
            self.lnp = np.log(np.maximum(self.npos, 1.0))
            self.lnn = np.log(np.maximum(self.nneg, 1.0))
            self.log_w = np.log(np.where(self.anchors, weight, 1.0))

    def positive_mean(self, X) -> np.ndarray:
        """Mean of X over each row's positive entries (0 where none)."""
        sums = np.bincount(
            self.pos_rows, weights=self.pos_mult * X.ravel()[self.pos_idx], minlength=self.shape[0]
        )
        return sums / np.maximum(self.npos, 1.0)

    def positive_lse(self, v) -> np.ndarray:
        """Per row log sum over positive entries of mult e^v, v given per positive term."""
        logv = self.logm_pos + v
        A = self.shape[0]
        m = np.full(A, -np.inf)
        np.maximum.at(m, self.pos_rows, logv)
        safe = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(divide="ignore"):
            return safe + np.log(
                np.bincount(self.pos_rows, weights=np.exp(logv - safe[self.pos_rows]), minlength=A)
            )


def rows_log_excess(X, plan: RowsPlan, tau: float, mode: str = "out", pos_weight: float = 1.0,
                    positive_slopes=None):
    """``(log excess, W)`` of the masked log-sum-exp over rows (see module docstring).

    X (A, T): distances of each term; ``plan`` the rows' masks and multiplicities
    (:class:`RowsPlan`). W (A, T): per-entry (d excess / d G) / excess (rows = anchors).

    ``positive_slopes`` ("out" only; one per positive term, ``plan.pos_idx`` order): the rows'
    positives are taken as equidistant (x_j = 0: no e^x - 1 - x in B_i), and the slopes y_j stand
    for expm1(x_j) in W, c_i (y_j - B_i). With zeros this is h on the subspace where every row's
    positives are equidistant, continued off it through dbar alone; with slopes y summing to 0
    per row (with multiplicities), W is the gradient of the linear minorant of each row's
    log-sum-exp at the weights pi_j = m_j (1 + y_j) / (|P| (1 + B_i)), pi_l = m_l e^{x_l} /
    (|P| (1 + B_i)) (Fenchel-Young: LSE(z) >= <pi, z> + H(pi)), which the certificate uses where
    float64 cannot resolve x_j (``solvers.certificate.certify_equidistant``).
    """
    if positive_slopes is not None and mode != "out":
        raise ValueError("positive_slopes apply to the 'out' masked log-sum-exp only")
    X = np.asarray(X, dtype=np.float64)
    anchors, neg, pidx = plan.anchors, plan.neg, plan.pos_idx
    W = np.zeros_like(X)
    if not anchors.any():
        return -np.inf, W
    dbar = plan.positive_mean(X)
    ninf = -np.inf
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if mode == "out":
            Xs = (dbar[:, None] - X) / tau
            xp = Xs.ravel()[pidx]
            logE = plan.logm_neg + Xs
            if not plan.single_pos and positive_slopes is None:
                logE.ravel()[pidx] = plan.logm_pos + log_expm1mx(xp)
            m = logE.max(axis=1)
            m = np.where(np.isfinite(m), m, 0.0)
            E = np.exp(logE - m[:, None])  # reused for the gradient on negatives
            logB = m + np.log(E.sum(axis=1)) - plan.lnp
            lex_a = log_log1p_exp(logB)
        elif mode == "in":
            lse_neg = lse_rows(plan.logm_neg - X / tau)
            lse_pos = plan.positive_lse(-X.ravel()[pidx] / tau)
            logB = lse_neg - lse_pos
            lex_a = log_log1p_exp(logB)
        else:
            lse_neg = lse_rows(plan.logm_neg + (2.0 - X) / tau)
            ex_a = np.maximum(lse_neg - plan.lnn, 0.0) + pos_weight * dbar / tau
            lex_a = np.log(ex_a)
    lex_a = np.where(anchors, lex_a, ninf)
    lex = float(lse_rows(plan.log_w + lex_a))
    if not np.isfinite(lex):
        return lex, W
    rows = plan.pos_rows
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if mode == "out":
            lc = np.where(anchors, -plan.lnp - np.exp(lex_a) - lex - math.log(tau), ninf)
            # c_i e^{x_l} = E_il e^{m_i + lc_i} / mult_il: the exponentials of the log-sum-exp again
            rowf = np.exp(m + lc)
            rowf = np.where(np.isfinite(rowf), rowf, 0.0)
            W = E * rowf[:, None] * plan.inv_mult_neg
            lcp = lc[rows]
            pos_part = -np.exp(logB[rows] + lcp)
            if positive_slopes is not None:
                e1 = np.asarray(positive_slopes, dtype=float)
                pos_part = pos_part + e1 * np.exp(lcp)
            elif not plan.single_pos:
                e1 = np.expm1(xp)
                pos_part = pos_part + np.sign(e1) * np.exp(np.log(np.abs(e1)) + lcp)
        elif mode == "in":
            lw = logB - np.logaddexp(0.0, logB) - math.log(tau) - lex  # log(B/(1+B)/tau/ex)
            W = np.exp(-X / tau + (lw - lse_neg)[:, None])
            pos_part = -np.exp(-X.ravel()[pidx] / tau + (lw - lse_pos)[rows])
        else:
            W = np.exp((2.0 - X) / tau + (-lse_neg - math.log(tau) - lex)[:, None])
            pos_part = np.broadcast_to(
                -pos_weight / (np.maximum(plan.npos, 1.0) * tau) * math.exp(-lex), plan.npos.shape
            )[rows]
    if mode != "out":
        W = np.where(neg & anchors[:, None] & np.isfinite(W), W, 0.0)
    W.ravel()[pidx] = np.where(anchors[rows] & np.isfinite(pos_part), pos_part, 0.0)
    return lex, W


def cvxpy_rows(x, table: Table, parts: RowParts, tau: float, mode: str, pos_weight: float):
    """CVXPY expression of the masked log-sum-exp ("out" or "decoupled") over a table whose
    values are the affine expression x: sum_a weight_a [LSE_t(log m_t + x_t / tau) -
    (a / |P|) sum_P m_t x_t / tau], one log_sum_exp along an axis per row length."""
    import cvxpy as cp
    import scipy.sparse as sp

    A, T = table.shape
    vi = np.asarray(table.value_index)
    mult = np.asarray(table.mult, dtype=float)
    pos, neg, npos, anchors = parts.pos, parts.neg, parts.npos, parts.anchors
    den = (pos | neg) if mode == "out" else neg
    total = 0
    # linear positive part: sum_a weight_a (a/|P|) sum_P m x
    coef = np.zeros(table.nv)
    rows = np.flatnonzero(anchors)
    if rows.size:
        wpos = (
            np.where(pos[rows], mult[rows], 0.0)
            * (table.anchor_weight[rows] * pos_weight / npos[rows])[:, None]
        )
        np.add.at(coef, vi[rows].ravel(), wpos.ravel())
        nz = np.flatnonzero(coef)
        if nz.size:
            total = total - (coef[nz] @ x[nz]) / tau
    lengths = den.sum(axis=1)
    for L in np.unique(lengths[anchors]):
        r = rows[lengths[rows] == L]
        cols = np.argsort(~den[r], axis=1, kind="stable")[:, :L]  # the L denominator terms, in order
        idx = np.take_along_axis(vi[r], cols, axis=1)
        m = r.size
        select = sp.csr_matrix((np.ones(m * L), (np.arange(m * L), idx.ravel())), shape=(m * L, table.nv))
        terms = cp.reshape(select @ x, (m, L), order="C")
        logm = np.log(np.take_along_axis(mult[r], cols, axis=1))
        total = total + table.anchor_weight[r] @ cp.log_sum_exp(logm + terms / tau, axis=1)
    return total


#: term kinds by relation bits (other group, same group, same view, both): negatives every sample of
#: another group, or only those in the anchor's view (DHEL, InfoNCE ``same_view``)
ALL_NEGATIVES = (NEG, POS, NEG, POS)
SAME_VIEW_NEGATIVES = (NONE, POS, NEG, POS)


class MaskedLSE(Loss):
    """Base of the masked log-sum-exp losses: subclasses set the masks and the mode."""

    #: "out", "decoupled" or "in"
    mode: ClassVar[str] = "out"
    #: weight a of the positive term ("decoupled")
    pos_weight: ClassVar[float] = 1.0
    #: term kind by relation bits (other group, same group, same view, both): positives are the
    #: group's other samples (the row evaluators need it: a group's samples are contiguous),
    #: negatives every other sample; a subclass may keep only some views of them
    relation_kinds: ClassVar[tuple] = ALL_NEGATIVES

    @property
    def loss_mode(self) -> str:
        return self.mode

    def kind_of_relation(self) -> np.ndarray:
        return np.array(self.relation_kinds, dtype=np.int8)

    def _is_anchor(self, npos, nneg):
        """Coupled forms: a positive suffices (no negatives leaves the loss at its floor)."""
        return (npos > 0) & ((self.loss_mode != "decoupled") | (nneg > 0))

    def _floor(self, samples: Samples) -> float:
        npos, nneg, mult, a = self._types(samples)
        if self.loss_mode == "decoupled":
            return math.fsum(mult[a] * (np.log(nneg[a]) - (1.0 + self.pos_weight) / self.tau))
        return math.fsum(mult[a] * np.log(npos[a]))

    def _range(self, samples: Samples) -> float:
        """Each anchor's term is a log-sum-exp of G_il / tau minus a (1/|P|) sum_P G_ij / tau
        ("in": minus the log of a mean of e^{G_ij / tau}), with every G in [-1, 1]: the two parts
        move by at most 2 / tau and 2 a / tau, so the loss by at most (2 + 2 a) / tau per anchor
        (a = 1/2 for DHEL's shared positive term)."""
        _, _, mult, a = self._types(samples)
        return float(mult[a].sum()) * (2.0 + 2.0 * self.pos_weight) / self.tau

    def _degenerate(self, samples: Samples) -> str | None:
        npos, nneg, _, a = self._types(samples)
        word = samples.group_word
        if not a.any():
            if self.loss_mode == "decoupled" and (npos > 0).any():
                return (
                    f"no anchor has both a positive and a negative (one {word} only): the decoupled "
                    "loss is not defined"
                )
            return (
                f"no sample has a positive (every {word} is a singleton): the loss is 0 for every "
                "geometry, there is nothing to optimise"
            )
        if not (nneg[a] > 0).any():
            return (
                f"no anchor has a negative (a single {word}): the loss is minimised exactly by "
                f"collapsing each {word} (value = floor); there is no {word} geometry"
            )
        return None

    def _rows_log_excess(self, X, mult, kind, weight, plan=None, positive_slopes=None):
        if plan is None:
            plan = RowsPlan(self.row_parts(mult, kind, weight), mult, weight)
        return rows_log_excess(X, plan, self.tau, self.loss_mode, self.pos_weight, positive_slopes)

    def positive_plan(self, table: Table) -> RowsPlan:
        """The rows' plan of ``table`` (``pos_idx``: the flat (row, term) index of each positive
        term, the order of ``positive_slopes``)."""
        return self._plan(table, table.kinds(self.kind_of_relation()))

    def _plan(self, table: Table, kind) -> RowsPlan:
        return table.cached(
            ("masked_lse", kind.tobytes(), self.loss_mode),
            lambda: RowsPlan(self.row_parts(table.mult, kind, table.anchor_weight), table.mult,
                             table.anchor_weight),
        )

    def _cvxpy_rows(self, x, table: Table):
        if self.loss_mode == "in":
            raise NotImplementedError(f"{self.name} is not convex in G: no CVXPY form")
        parts = self.row_parts(table.mult, table.kinds(self.kind_of_relation()), table.anchor_weight)
        return cvxpy_rows(x, table, parts, self.tau, self.loss_mode, self.pos_weight)

    def _torch_rows(self, H, samples: Samples):
        return MaskedRows(H, samples, self)

    def _torch_plain(self, H, samples: Samples):
        """Straight from the definition (dense masks, max-shifted log-sum-exp; autograd)."""
        import torch

        pos, neg = self._dense_masks(samples, H.device)
        npos = pos.sum(-1).to(H.dtype)
        anchors = torch.as_tensor(self._anchor_mask(samples), device=H.device)
        G = H @ H.transpose(-1, -2)
        X = G / self.tau
        ninf = torch.full_like(X, float("-inf"))
        den = (pos | neg) if self.loss_mode in ("out", "in") else neg
        lse = _plain_lse(torch.where(den, X, ninf))
        if self.loss_mode == "in":
            per = lse - _plain_lse(torch.where(pos, X, ninf)) + torch.log(npos.clamp_min(1))
        else:
            w = self.pos_weight if self.loss_mode == "decoupled" else 1.0
            per = lse - w * torch.where(pos, X, torch.zeros_like(X)).sum(-1) / npos.clamp_min(1)
        return torch.where(anchors, per, torch.zeros_like(per)).sum(-1)


def _plain_lse(x):
    """log sum exp along the last axis as max + log1p(rest) (keeps a tiny remainder's digits);
    -inf rows give -inf."""
    import torch

    m, jmax = x.max(dim=-1, keepdim=True)
    safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - safe)
    tail = e.scatter(-1, jmax, 0.0).sum(-1)
    return torch.where(torch.isfinite(m.squeeze(-1)), m.squeeze(-1) + torch.log1p(tail), m.squeeze(-1))


# =================================================================================================
# over H, in row blocks (torch, any device, batched over restarts)


@functools.lru_cache(maxsize=16)
def _torch_structure(key, samples: Samples, loss: MaskedLSE, device: str):
    """Cached per-sample tensors: labels, views, anchors, log |P|, log |N|."""
    import torch

    del key
    npos, nneg = loss._counts(samples)
    anchors = loss._is_anchor(npos, nneg)
    views = None if samples.views is None else torch.as_tensor(samples.views, device=device)
    return (
        torch.as_tensor(samples.labels, device=device),
        views,
        torch.as_tensor(anchors, device=device),
        torch.as_tensor(np.log(np.maximum(npos, 1.0)), device=device),
        torch.as_tensor(np.log(np.maximum(nneg, 1.0)), device=device),
    )


#: blocks of at most this many entries with many groups list their positives as index pairs, and
#: so does any block spanning more than MANY_SEGMENTS groups (instances of a few views)
DENSE_BLOCK_ENTRIES = 1 << 17
MANY_SEGMENTS = 32


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
        -1, rows, expm1mx(torch.clamp(xp, max=1.0))
    )
    scaled = torch.zeros(batch, dtype=xp.dtype, device=xp.device).index_add(
        -1, rows, torch.exp(xp - sh) - (1.0 + xp) * torch.exp(-sh)
    )
    return torch.where(big, shift + torch.log(scaled), torch.log(direct))


def _lse_pairs(v, rows, batch):
    """log sum exp of per-pair values v grouped by ``rows`` (-inf for rows without pairs)."""
    import torch

    m = torch.full(batch, float("-inf"), dtype=v.dtype, device=v.device)
    m = m.scatter_reduce(-1, rows.expand_as(v), v, reduce="amax", include_self=True)
    safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.zeros(batch, dtype=v.dtype, device=v.device).index_add(-1, rows, torch.exp(v - safe[..., rows]))
    return safe + torch.log(s)


@dataclass(eq=False)
class _Terms(BlockTerms):
    """Per-block quantities of :class:`MaskedRows` (rows start:stop)."""

    G: Any
    shift: Any
    logB: Any
    positives: list
    same: Any
    lse_neg: Any
    lse_pos: Any
    dbar: Any


class MaskedRows(RowEvaluator):
    """Blocked evaluation of a masked log-sum-exp's log-excess over H (torch, (n, d) or batched
    (R, n, d), any device). Samples are ordered by group, so a row's positives are one contiguous
    column range: positives are evaluated on those sub-blocks only (group-centred distances,
    e^x - 1 - x in the log domain), negatives on the whole block with one matmul and one exp.
    Memory: about three (rows x n) buffers per block."""

    def __init__(self, H, samples: Samples, loss: MaskedLSE):

        self.H, self.tau = H, loss.tau
        self.mode, self.a = loss.loss_mode, loss.pos_weight
        lut = self.lut = loss.kind_of_relation()
        # some other-group pairs are not negatives (their view decides; without views: relation 0)
        self.view_filter = any(lut[r] != NEG for r in (0, SAME_VIEW) if r == 0 or samples.views is not None)
        c = np.asarray(samples.counts, dtype=np.int64)
        self.count, self.starts = c, samples.starts
        self.y_np = samples.labels
        y, views, anchors, log_npos, log_nneg = _torch_structure(
            samples.key, samples, loss, str(H.device)
        )
        self.y, self.views, self.anchors = y, views, anchors
        self.log_npos, self.log_nneg = log_npos.to(H.dtype), log_nneg.to(H.dtype)
        self._pair_cache: dict = {}
        if self.mode != "in":
            self.U, self.usq = group_centred(H, y, c.size)

    def segments(self, start: int, stop: int):
        """(r0, r1, s, e): rows r0:r1 of the block belong to the group occupying columns s:e."""
        for cls in range(int(self.y_np[start]), int(self.y_np[stop - 1]) + 1):
            s = int(self.starts[cls])
            e = s + int(self.count[cls])
            yield max(start, s), min(stop, e), s, e

    def _pairs(self, start: int, stop: int):
        """Same-group mask of rows start:stop and the (row, column) index pairs of positives."""
        import torch

        key = (start, stop)
        if key not in self._pair_cache:
            y = self.y_np
            same = y[start:stop, None] == y[None, :]
            pos = same.copy()
            pos[np.arange(stop - start), np.arange(start, stop)] = False
            r, c = np.nonzero(pos)
            dev = self.H.device
            self._pair_cache[key] = (
                torch.as_tensor(same, device=dev),
                torch.as_tensor(r + start, device=dev),
                torch.as_tensor(c, device=dev),
            )
        return self._pair_cache[key]

    def _not_negative(self, start: int, stop: int, same):
        """Mask of the block's entries that are not negatives (``kind_of_relation``, read by
        :func:`ufm.losses.relations.block_masks`): the same group, and where a view filter holds,
        the pairs of other groups in a view relation without negatives."""
        import torch

        if not self.view_filter:
            return same
        if same is None:
            same = self.y[start:stop, None] == self.y[None, :]
        sv = None if self.views is None else self.views[start:stop, None] == self.views[None, :]
        neg = block_masks(self.lut, same, sv, (NEG,), None, other_group_only=True).get(NEG)
        return torch.ones_like(same) if neg is None else ~neg

    def block(self, start: int, stop: int) -> _Terms:
        import torch

        H, tau, mode = self.H, self.tau, self.mode
        G = H[..., start:stop, :] @ H.transpose(-1, -2)
        dbar, logpos, positives, same = self._positive_terms(G, start, stop)
        lse_neg = self._negative_lse(G, start, stop, same)
        anchors = self.anchors[start:stop]
        shift = (dbar - 1.0) / tau
        if mode == "out":
            logB = torch.logaddexp(lse_neg + shift, logpos) - self.log_npos[start:stop]
            lex_i = log_log1p_exp(logB)
        elif mode == "in":
            logB = lse_neg - logpos
            lex_i = log_log1p_exp(logB)
        else:
            logB = None
            ex = (lse_neg + 1.0 / tau - self.log_nneg[start:stop]).clamp_min(0.0) + self.a * dbar / tau
            lex_i = torch.log(ex)
        lex_i = torch.where(anchors, lex_i, torch.full_like(lex_i, float("-inf")))
        return _Terms(start=start, stop=stop, G=G, shift=shift, logB=logB, lex_i=lex_i, positives=positives,
                      same=same, lse_neg=lse_neg, lse_pos=logpos, dbar=dbar)

    def _positive_terms(self, G, start: int, stop: int):
        """``(dbar, logpos, positives, same)`` of a block: each row's mean positive distance, the
        log of its positives' sum (e^x - 1 - x form for "out", e^{G/tau} for "in"), the positive
        entries kept for the gradient, and the same-group mask where positives are index pairs."""
        import torch

        H, tau, mode = self.H, self.tau, self.mode
        batch = G.shape[:-1]
        ninf = float("-inf")
        dbar = torch.zeros(batch, dtype=H.dtype, device=H.device)
        logpos = torch.full(batch, ninf, dtype=H.dtype, device=H.device)
        positives: list = []
        segments = list(self.segments(start, stop))
        if len(segments) > 2 and (
            G.shape[-1] * G.shape[-2] <= DENSE_BLOCK_ENTRIES or len(segments) > MANY_SEGMENTS
        ):
            # many small groups: positives as a list of (row, column) pairs
            same, r_idx, c_idx = self._pairs(start, stop)
            local = r_idx - start
            if mode == "in":
                logpos = _lse_pairs(G[..., local, c_idx] / tau, local, batch)
                positives.append(("pairs", local, c_idx, None))
                return dbar, logpos, positives, same
            U, usq = self.U, self.usq
            ui, uj = U[..., r_idx, :], U[..., c_idx, :]
            Dp = (0.5 * (usq[..., r_idx] + usq[..., c_idx]) - (ui * uj).sum(-1)).clamp_min(0.0)
            dbar = dbar.index_add(-1, local, Dp) / torch.exp(self.log_npos[start:stop])
            xp = (dbar[..., local] - Dp) / tau
            if mode == "out":
                logpos = _log_sum_expm1mx_pairs(xp, local, batch)
            positives.append(("pairs", local, c_idx, xp))
            return dbar, logpos, positives, same
        for r0, r1, s, e in segments:
            if e - s < 2:
                continue
            rows = torch.arange(r1 - r0, device=H.device)
            loc = slice(r0 - start, r1 - start)
            if mode == "in":
                Gp = G[..., loc, s:e] / tau
                Gp = Gp.clone()
                Gp[..., rows, rows + (r0 - s)] = ninf
                logpos[..., loc] = torch.logsumexp(Gp, dim=-1)
                positives.append((r0, r1, s, e, None))
                continue
            Dp = 0.5 * (self.usq[..., r0:r1, None] + self.usq[..., None, s:e]) - self.U[
                ..., r0:r1, :
            ] @ self.U[..., s:e, :].transpose(-1, -2)
            Dp = Dp.clamp_min(0.0)
            Dp[..., rows, rows + (r0 - s)] = 0.0
            db = Dp.sum(-1) / (e - s - 1)
            dbar[..., loc] = db
            Xp = None
            if mode == "out":
                Xp = (db.unsqueeze(-1) - Dp) / tau
                Xp[..., rows, rows + (r0 - s)] = 0.0  # i itself: e^0 - 1 - 0 = 0, no term
                logpos[..., loc] = log_sum_expm1mx(Xp, torch.ones_like(Xp, dtype=torch.bool))
            positives.append((r0, r1, s, e, Xp))
        return dbar, logpos, positives, None

    def _negative_lse(self, G, start: int, stop: int, same):
        """log sum over each row's negatives of e^{G/tau}: the whole block with positives (and
        pairs that are not negatives) masked out, one exp (-inf: no negatives)."""
        import torch

        ninf, tau = float("-inf"), self.tau
        if same is not None:
            masked = G.masked_fill(self._not_negative(start, stop, same), ninf)
        else:
            masked = G.clone()
            for r0, r1, s, e in self.segments(start, stop):
                masked[..., r0 - start : r1 - start, s:e] = ninf
            if self.view_filter:
                masked.masked_fill_(self._not_negative(start, stop, None), ninf)
        m = masked.amax(dim=-1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        masked.sub_(m).div_(tau).exp_()
        return m.squeeze(-1) / tau + torch.log(masked.sum(-1))

    def _zero_non_negatives(self, F, t: _Terms):
        start, stop = t.start, t.stop
        if t.same is not None:
            F.masked_fill_(self._not_negative(start, stop, t.same), 0.0)
        else:
            for r0, r1, s, e in self.segments(start, stop):
                F[..., r0 - start : r1 - start, s:e] = 0.0
            if self.view_filter:
                F.masked_fill_(self._not_negative(start, stop, None), 0.0)

    def scaled(self, t: _Terms, lex):
        """(d excess / d G) / excess for the block's rows (zero off anchors)."""
        import torch

        start, stop, tau = t.start, t.stop, self.tau
        anchors = self.anchors[start:stop]
        ninf = torch.full_like(t.lex_i, float("-inf"))
        lexu = lex.unsqueeze(-1)
        if self.mode == "out":
            lc = -self.log_npos[start:stop] - torch.exp(t.lex_i) - lexu - math.log(tau)
            offset = t.shift + torch.where(anchors, lc, ninf)
        elif self.mode == "in":
            lw = t.logB - torch.logaddexp(torch.zeros_like(t.logB), t.logB) - math.log(tau) - lexu
            offset = torch.where(anchors, lw, ninf) - t.lse_neg
        else:
            offset = torch.where(anchors, -t.lse_neg - math.log(tau) - lexu, ninf)
        # rows without a term (no anchor, no negative) get -inf: their entries exp to 0
        offset = torch.where(torch.isnan(offset) | ~anchors, ninf, offset)
        F = t.G / tau
        F.add_(offset.unsqueeze(-1)).exp_()
        self._zero_non_negatives(F, t)
        rowvec = self._positive_rows(t, lex, anchors)
        for entry in t.positives:
            if entry[0] == "pairs":
                _, local, c_idx, xp = entry
                F[..., local, c_idx] = self._positive_part(rowvec, local, xp, t.G[..., local, c_idx], False)
                continue
            r0, r1, s, e, Xp = entry
            loc = slice(r0 - start, r1 - start)
            part = self._positive_part(rowvec, loc, Xp, t.G[..., loc, s:e], True)
            rows = torch.arange(r1 - r0, device=F.device)
            part[..., rows, rows + (r0 - s)] = 0.0
            F[..., loc, s:e] = part
        return F

    def _positive_rows(self, t: _Terms, lex, anchors):
        """Per-row factors of the positives' derivative (once per block)."""
        import torch

        start, tau = t.start, self.tau
        lexu = lex.unsqueeze(-1)
        ninf = torch.full_like(t.lex_i, float("-inf"))
        if self.mode == "out":
            lc = -self.log_npos[start : t.stop] - torch.exp(t.lex_i) - lexu - math.log(tau)
            return torch.where(anchors, lc, ninf), t.logB
        if self.mode == "in":
            lw = t.logB - torch.logaddexp(torch.zeros_like(t.logB), t.logB) - math.log(tau) - lexu
            return torch.where(anchors, lw, ninf) - t.lse_pos, None
        coef = -self.a / tau * torch.exp(-self.log_npos[start : t.stop] - lexu)
        return torch.where(anchors, coef, torch.zeros_like(coef)), None

    def _positive_part(self, rowvec, loc, xp, Gp, block: bool):
        """Per-entry derivative on positives; ``loc`` selects rows (an index tensor or a slice);
        ``block``: the values are (.., rows, cols) blocks rather than per-pair vectors."""
        import torch

        expand = (lambda v: v.unsqueeze(-1)) if block else (lambda v: v)
        a, logB = rowvec
        a = expand(a[..., loc])
        if self.mode == "out":
            # c_i (expm1(x_j) - B_i), c_i = e^{lc_i} applied as two row factors (no block-wide
            # log/exp; e^{lc} alone may overflow where the excess underflows)
            low = torch.clamp(a, max=600.0)
            return (torch.expm1(xp) * torch.exp(low)) * torch.exp(a - low) - torch.exp(
                expand(logB[..., loc]) + a
            )
        if self.mode == "in":
            return -torch.exp(Gp / self.tau + a)
        return a.expand_as(Gp).clone() if block else a
