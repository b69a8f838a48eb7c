"""InfoNCE / NT-Xent with N instances x V views, and DCL (decoupled)."""

from __future__ import annotations

import numpy as np

from ufm.losses.masked_lse import SAME_VIEW_NEGATIVES, MaskedLSE
from ufm.params import Param, temperature

NEGATIVES = ("all", "same_view", "decoupled")


class InfoNCE(MaskedLSE):
    """Positives of an anchor are the other views of its instance. Negatives ``all`` (SimCLR:
    every other sample; equal to SupCon with counts (V, ..., V)), ``same_view`` (the other
    instances in the anchor's view), ``decoupled`` (DCL: every other instance, positives left out
    of the denominator)."""

    name = "infonce"
    title = "InfoNCE / NT-Xent over N instances x V views"
    formula = (
        "log sum_{l in P(i) u N(i)} e^{G_il/tau} - (1/|P(i)|) sum_{j in P(i)} G_ij/tau "
        "(decoupled: the sum over N(i) only)"
    )
    source = (
        "Oord et al. 2018 (InfoNCE); Chen et al. 2020, SimCLR (NT-Xent); Yeh et al. 2022, "
        "Decoupled Contrastive Learning"
    )
    params = (
        temperature(0.1),
        Param(
            "negatives",
            "all",
            "InfoNCE negatives: all (SimCLR) | same_view | decoupled (DCL) (default all)",
            kind="choice",
            choices=NEGATIVES,
        ),
    )
    samples_kind = "views"
    convex_in_gram = True
    anchor_word = "sample"
    formula_note = (
        "P(i) = the other views of i's instance; N(i) = the other instances' samples (`all`, SimCLR: "
        "SupCon with counts (V, ..., V); `decoupled`, DCL) or those in i's own view (`same_view`)"
    )

    @property
    def loss_mode(self) -> str:
        return "decoupled" if self.negatives == "decoupled" else "out"

    def kind_of_relation(self) -> np.ndarray:
        """``same_view``: negatives are the other instances of the anchor's view only."""
        return np.array(SAME_VIEW_NEGATIVES if self.negatives == "same_view" else self.relation_kinds,
                        dtype=np.int8)

    @property
    def floor_text(self) -> str:  # noqa: D401
        if self.negatives == "decoupled":
            return "sum over anchors of log |N(i)| - 2/tau"
        return "sum over anchors of log |P(i)| (log(V - 1) per sample)"


class DCL(InfoNCE):
    """Decoupled contrastive learning: InfoNCE with the positive left out of the denominator."""

    name = "dcl"
    title = "decoupled contrastive learning (InfoNCE with negatives = decoupled)"
    formula = "log sum_{l in N(i)} e^{G_il/tau} - (1/|P(i)|) sum_{j in P(i)} G_ij/tau"
    source = "Yeh et al. 2022, Decoupled Contrastive Learning"
    params = (temperature(0.1),)
    formula_note = "P(i) = the other views of i's instance, N(i) = the other instances' samples"

    @property
    def negatives(self) -> str:
        return "decoupled"
