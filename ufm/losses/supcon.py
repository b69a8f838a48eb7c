"""Supervised contrastive loss (SupCon, Khosla et al. 2020), "out" and "in" forms."""

from __future__ import annotations

from ufm.losses.masked_lse import MaskedLSE
from ufm.params import temperature


class SupCon(MaskedLSE):
    """The SC-UFM loss of Behnia & Thrampoulidis (2024): positives are the other samples of the
    anchor's class, every other sample is a negative; a class of one sample has no anchor term."""

    name = "supcon"
    title = "supervised contrastive, Khosla 'out' (the SC-UFM loss)"
    formula = "log sum_{l != i} e^{G_il/tau} - (1/|P(i)|) sum_{j in P(i)} G_ij/tau"
    source = (
        "Khosla et al. 2020, Supervised Contrastive Learning; Behnia & Thrampoulidis 2024, "
        "Supervised Contrastive Representation Learning: Landscape Analysis with Unconstrained Features"
    )
    params = (temperature(0.1),)
    samples_kind = "any"
    convex_in_gram = True
    mode = "out"
    floor_text = "sum over anchors of log |P(i)| (n_c log(n_c - 1) per class)"
    formula_note = "P(i) = the other samples of i's class"


class SupConIn(MaskedLSE):
    """SupCon "in": the log of the mean over positives of the softmax. Not convex in G (a
    difference of log-sum-exps), so it has no convex relaxation and no global certificate."""

    name = "supcon_in"
    title = "supervised contrastive, Khosla 'in' (log of the mean positive softmax)"
    formula = "log sum_{l != i} e^{G_il/tau} - log((1/|P(i)|) sum_{j in P(i)} e^{G_ij/tau})"
    source = "Khosla et al. 2020, Supervised Contrastive Learning (eq. 3, L_in)"
    params = (temperature(0.1),)
    samples_kind = "any"
    convex_in_gram = False
    mode = "in"
    floor_text = "sum over anchors of log |P(i)|"
    formula_note = "P(i) = the other samples of i's class"


def supcon_floor(counts) -> float:
    """sum over classes with n_c >= 2 of n_c log(n_c - 1)."""
    return SupCon(tau=1.0).floor(counts)
