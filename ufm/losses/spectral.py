"""Spectral contrastive loss (HaoChen, Wei, Gaidon & Ma 2021), N instances x 2 views, no temperature.

    L = -(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j} (u_i.v_j)^2   (mean form, the default;
``reduction="sum"`` multiplies by N). Only cross-view inner products enter. As a sum over the 2N
samples, anchor a gets -mean_{P(a)} G + (1/2) mean_{N(a)} G^2 (P(a) its other view, N(a) the other
instances in the other view): a pairwise loss (``ufm.losses.pairwise``) with excess terms
phi_P(D) = D (term floor -1) and phi_N(D) = (1 - D)^2 / 2, D = 1 - G, no cancellation.

**Convex in G**. **Floor** -1 per anchoring sample (-2 per pair), **attained** when N <= d
(u_i = v_i = e_i; the relaxation always reaches it): solvers stop there and certificates decide on
an absolute gap (``Loss.floor_attainable``). **Range** 2.5 per anchoring sample (5 per pair).
"""

from __future__ import annotations

import numpy as np

from ufm.losses.pairwise import PairwiseLoss
from ufm.tables import NEG, NONE, POS

#: how far one anchoring sample's term can move over unit embeddings (see the module)
RANGE_PER_ANCHOR = 2.5


class Spectral(PairwiseLoss):
    """-(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j} (u_i.v_j)^2 over N pairs (mean form)."""

    name = "spectral"
    title = "spectral contrastive loss, N pairs (no temperature)"
    formula = "-(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j} (u_i.v_j)^2"
    source = ("HaoChen, Wei, Gaidon & Ma 2021, Provable Guarantees for Self-Supervised Deep Learning with "
              "Spectral Contrastive Loss (NeurIPS)")
    samples_kind, convex_in_gram, default_reduction = "views", True, "mean"
    anchor_word, anchor_size, pairs_only, floor_attainable = "pair", 2, True, True
    floor_text = "-2 per pair (mean form), attained by orthonormal instances when N <= d"
    formula_note = "cross-view inner products only; per pair: -2 u_i.v_i + 1/(N-1) sum_{j != i} (u_i.v_j)^2"
    term_floor = {POS: -1.0, NEG: 0.0}

    def kind_of_relation(self) -> np.ndarray:
        return np.array([NEG, POS, NONE, NONE], dtype=np.int8)  # other view: other instance / own

    def phi(self, kind, dist, xp):
        return dist if kind == POS else 0.5 * (1 - dist) ** 2

    def dphi(self, kind, dist, xp):
        return xp.ones_like(dist) if kind == POS else dist - 1

    def _range(self, samples) -> float:
        return RANGE_PER_ANCHOR * self._anchor_count(samples)

    def _degenerate(self, samples) -> str | None:
        if self._anchor_count(samples) == 0:
            return ("fewer than two pairs: the spectral loss has no negative term (1/(N(N-1)) is "
                    "undefined); -2 u.v alone is minimised by aligning the views")
        return None
