"""DHEL: decoupled hyperspherical energy loss (Koromilas et al. 2024)."""

from __future__ import annotations

from ufm.losses.masked_lse import SAME_VIEW_NEGATIVES, MaskedLSE
from ufm.params import temperature


class DHEL(MaskedLSE):
    """M pairs (u_i, v_i): per pair -u_i.v_i/tau + log sum_{j != i} e^{u_i.u_j/tau}
    + log sum_{j != i} e^{v_i.v_j/tau}: the positive outside the denominators, negatives in the
    anchor's own view. As a masked log-sum-exp over the 2M samples it is the decoupled form with
    same-view negatives and positive weight 1/2 (each pair's -u.v/tau is shared by its two
    samples); an anchor is a pair (``reduction="mean"`` divides by M)."""

    name = "dhel"
    title = "decoupled hyperspherical energy loss, M pairs"
    formula = "-u_i.v_i/tau + log sum_{j != i} e^{u_i.u_j/tau} + log sum_{j != i} e^{v_i.v_j/tau}, per pair"
    source = (
        "Koromilas et al. 2024, Bridging Mini-Batch and Asymptotic Analysis in Contrastive "
        "Learning: From InfoNCE to Kernel-Based Losses (code default tau = 0.3)"
    )
    params = (temperature(0.3, "as in the authors' code"),)
    samples_kind = "views"
    convex_in_gram = True
    mode = "decoupled"
    pos_weight = 0.5
    relation_kinds = SAME_VIEW_NEGATIVES  # negatives: the other instances of the anchor's view
    anchor_word = "pair"
    anchor_size = 2
    pairs_only = True
    floor_text = "sum over pairs of 2 log(M - 1) - 3/tau"

