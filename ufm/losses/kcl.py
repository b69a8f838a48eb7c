"""KCL: kernel contrastive loss (Koromilas et al. 2024), no temperature, on the pairwise base.

Over M pairs (u_i, v_i), with kernels of r^2 = ||x - y||^2 = 2 D (``ufm.losses.kernels``):

    KCL = -2 mean_i k_a(u_i, v_i) + gamma [mean_{i<j} k(u_i, u_j) + mean_{i<j} k(v_i, v_j)]

(the authors' normalisation; ``reduction="sum"`` multiplies by M). As a sum over the 2M samples,
anchor i gets -mean_P k_a + gamma mean_N k (P its other view, N the other instances of its view),
a pairwise loss (``ufm.losses.pairwise``): phi_P = k_a(0) - k_a(2D) (term floor -k_a(0)),
phi_N = k(2D) - k(4) (term floor k(4)), weights 1/|P| and gamma/|N|.

**Convexity and the relaxation.** The energy is convex in G (riesz: for s > 0 and -2 <= s < 0),
the alignment concave: KCL is not convex in G. But -k_a(r^2) is smallest at r = 0, so
h = -2 k_a(0) + gamma [energy] is a convex minorant (h <= f), equal to f where views align; min
f >= min h, and an aligned minimiser of h attains it. The relaxation of KCL is h (its positives
carry no phi, only their term floor), certificates bound f - f* by (f - h) + the certificate of h,
and the optimum aligns v_i = u_i with the energy of M points at its minimum (DESIGN section 3).

**Floor** -2 k_a(0) + 2 gamma k(4) (positives aligned, negatives antipodal; every kernel
decreases in r <= 2). **Range** (what the geometry controls, :meth:`KCL._range`): each anchor's
terms move within [k_a(4), k_a(0)] and gamma [k(4), k(0)]; unbounded for riesz s > 0.

**Coincident points.** Riesz energies are singular at D = 0: for s > 0 the value is +inf (log
excess +inf, never certified; the scaled gradient is its limit as the points meet,
:meth:`KCL.coincident_slope`), and for -2 < s < 0 the slope of -r^|s| is infinite (evaluated at
``kernels.D_RES``), so no gradient is silently 0 or NaN and no certificate holds there.
"""

from __future__ import annotations

import copy

import numpy as np

from ufm.losses.kernels import D_RES, KERNELS, Kernel
from ufm.losses.pairwise import PairwiseLoss
from ufm.params import Param
from ufm.samples import SAME_GROUP, SAME_VIEW, Samples
from ufm.tables import NEG, NONE, POS

#: Accepted ranges of t, gamma and s, measured: `ufm solve` (value against the closed form at the
#: aligned simplex, -2 k_a(0) + 2 gamma k(2M/(M-1)), in 50-digit arithmetic) and `ufm certify` of
#: the optimum, a relabelled optimum, the optimum plus noise, random and collapsed embeddings,
#: 3 to 20 pairs, every kernel:
#:
#: * T_MAX = 6. At aligned views the Gaussian alignment's slope (2t per pair) is about
#:   e^{2tM/(M-1)} / gamma times the optimum's excess (2 gamma e^{-2tM/(M-1)}); the reduced
#:   solver carries both in one gradient and float64 loses the energy under it: 3 pairs stop
#:   being certified at t = 9 (4 pairs at 11, 8 at 12; 30 pairs hold at 12); `ufm solve --t 50` used to
#:   print value 0 with views apart. Minimising the minorant h with views held aligned serves up
#:   to t = 200 (3 to 100 pairs; 3 pairs fail at t = 300, where e^{-3t} underflows): a change of
#:   the solver, not of the loss. Riesz, imq and log hold far beyond (t = 1e6).
#: * T_MIN = 1e-4: imq (c = t) is not certified below 1e-5 (3 pairs at 1e-6: gap 4e-6 of the
#:   excess); gaussian, log and riesz hold to 1e-12.
#: * GAMMA_MIN = 1e-6: the energy sinks under the alignment's round-off (4 pairs at 1e-8: gap
#:   7e-4 of the excess; every kernel at 1e-20: gap 1 x the excess).
#: * GAMMA_MAX = 1e6: the alignment (at most 2 per pair) is then 1e-6 of the energy, the
#:   certificate's tolerance; views pulled apart (v_i = -u_i with the energy at its optimum) are
#:   certified from gamma = 1e7 (riesz s = 1), 1e8 (log), 1e10 (gaussian).
#: * S_MAX = 32: riesz s = 56 is not certified (3 pairs: gap 1.5e-4), s = 48 is; at 32 the
#:   slope at D_RES, (2^-53)^(-s/2 - 1), and the value there stay finite (they overflow from
#:   s = 36.6). S_MIN = -32 mirrors it (s < -2 is not convex in G: verify only, no certificate).
#: * S_SMALL = 1e-6 (|s| >= it): the energy ~ s log r; s = 1e-12 is not certified (3 pairs: gap
#:   4e-2), 1e-8 is.
T_MIN, T_MAX = 1e-4, 6.0
GAMMA_MIN, GAMMA_MAX = 1e-6, 1e6
S_MIN, S_MAX, S_SMALL = -32.0, 32.0, 1e-6


class KCL(PairwiseLoss):
    name = "kcl"
    title = "kernel contrastive loss, M pairs (no temperature)"
    formula = "-2 mean_i k_a(u_i, v_i) + gamma [mean_{i<j} k(u_i, u_j) + mean_{i<j} k(v_i, v_j)]"
    source = (
        "Koromilas et al. 2024, Bridging Mini-Batch and Asymptotic Analysis in Contrastive "
        "Learning: From InfoNCE to Kernel-Based Losses (code defaults t = 2, gamma = 16)"
    )
    params = (
        Param("kernel", "gaussian", "KCL kernel: gaussian | imq | log | riesz (default gaussian)",
              kind="choice", choices=KERNELS),
        Param("t", 2.0, f"KCL kernel parameter t, {T_MIN:g} <= t <= {T_MAX:g} (imq: c = t; riesz: t of the "
              "gaussian alignment; default 2)", minimum=0.0, maximum=T_MAX, resolved_min=T_MIN,
              resolved_why="ufm.losses.kcl.T_MIN"),
        Param("gamma", 16.0, f"KCL weight of the energy gamma, {GAMMA_MIN:g} <= gamma <= {GAMMA_MAX:g} "
              "(default 16)", minimum=0.0, maximum=GAMMA_MAX, resolved_min=GAMMA_MIN,
              resolved_why="ufm.losses.kcl.GAMMA_MIN"),
        Param("s", 1.0, f"KCL riesz exponent s, {S_SMALL:g} <= |s| <= {S_MAX:g}: energy r^-s, or -r^|s| for "
              "s < 0, certified for s >= -2 where it is convex in G (default 1)", minimum=S_MIN, strict=False,
              maximum=S_MAX, nonzero=True, resolved_min=S_SMALL, resolved_why="ufm.losses.kcl.S_SMALL",
              extremes=(S_MIN, -2.0, -S_SMALL, S_SMALL, S_MAX)),
    )
    samples_kind, convex_in_gram, default_reduction = "views", False, "mean"
    anchor_word, anchor_size, pairs_only = "pair", 2, True
    floor_text = "-2 k_a(0) + 2 gamma k(r^2 = 4) (mean form)"
    minorant_text = "a convex minorant equal to the loss where views align (the energy)"
    formula_note = (
        "kernels of r^2 = ||x - y||^2: gaussian e^{-t r^2}; imq c/sqrt(c^2 + r^2), c = t; log: energy "
        "-(1/2) log(t r^2 + 1), alignment -log(t r^2 + 1); riesz: energy r^-s (s < 0: -r^|s|), gaussian "
        "alignment"
    )
    convexity_note = "the alignment is concave; the energy is convex (riesz: for s > 0 or -2 <= s < 0)"

    def _check(self) -> None:
        self.minorant = False
        self.k = Kernel(self.kernel, self.t, self.s)
        ka0, k4 = self.k.floor_terms()
        self.term_floor = {POS: -ka0, NEG: k4}

    def kind_of_relation(self) -> np.ndarray:
        k = np.full(4, NONE, dtype=np.int8)
        k[SAME_GROUP], k[SAME_VIEW] = POS, NEG  # the other view of the instance; its view's others
        return k

    def kind_weights(self, npos, nneg):
        return 1.0 / np.maximum(npos, 1.0), self.gamma / np.maximum(nneg, 1.0)

    # ---- phi: the kernels' excesses (ufm.losses.kernels) ------------------------------------------
    def phi_dphi(self, kind, dist, xp):
        return self.k.alignment(dist) if kind == POS else self.k.energy(dist)

    def phi(self, kind, dist, xp):
        return self.phi_dphi(kind, dist, xp)[0]

    def dphi(self, kind, dist, xp):
        return self.phi_dphi(kind, dist, xp)[1]

    def cvxpy_phi(self, kind, dist):
        return self.k.cvxpy_energy(dist)  # the minorant's only terms

    @property
    def term_kinds(self) -> tuple:
        return (NEG,) if self.minorant else (POS, NEG)

    def coincident_slope(self, kind) -> float | None:
        """Riesz s > 0 (phi ~ (2D)^(-s/2)): (d phi / d G) / phi = s / (2 D), at D = D_RES."""
        return self.s / (2 * D_RES) if kind == NEG and self.kernel == "riesz" and self.s > 0 else None

    # ---- the relaxation ---------------------------------------------------------------------------
    @property
    def energy_convex(self) -> bool:
        return self.kernel != "riesz" or self.s > 0 or self.s >= -2

    def relaxation(self):
        """h = -2 k_a(0) + gamma [energy]: convex in G, h <= KCL, equal where views align.

        (A tighter minorant, the chord of the concave alignment term, would push views together
        in the relaxation; measured, its slope on the positives, divided by the optimum's tiny
        excess at large t, makes the certificate's S cancel catastrophically (Gaussian, 3 pairs:
        unresolved from t = 8 on, against t = 9 without it), so h leaves the positives out.)"""
        if not self.energy_convex:
            return None
        if self.minorant:
            return self
        h = copy.copy(self)
        h.minorant = True
        return h

    @property
    def capabilities(self) -> tuple[str, ...]:
        return ("rows", "torch", "cvxpy") if self.minorant else ("rows", "torch")

    # ---- range, degenerate problems, the plain form ----------------------------------------------
    def _range(self, samples: Samples) -> float:
        """Upper bound on max - min of the full-batch loss (sum reduction): each anchor's
        -mean_P k_a moves within [-k_a(0), -k_a(4)] and gamma mean_N k within gamma [k(4), k(0)]
        (every kernel decreases in r^2 <= 4), so range <= (anchoring samples) x
        [(k_a(0) - k_a(4)) + gamma (k(0) - k(4))]; inf for riesz s > 0 (k(0) = inf)."""
        return self._anchor_count(samples) * (self.k.alignment_range() + self.gamma * self.k.energy_range())

    def _degenerate(self, samples: Samples) -> str | None:
        if self._anchor_count(samples) == 0:
            return "fewer than two pairs: KCL has no energy term, there is no geometry to compare"
        return None

    def _torch_plain(self, H, samples: Samples):
        """By the definition, over kernels of r^2 (not the excess forms): per sample
        -mean_P k_a + gamma mean_N k (the minorant: k_a(0) in place of k_a)."""
        import torch

        pos, neg = self._dense_masks(samples, H.device)
        anchors = torch.as_tensor(self._anchor_mask(samples), device=H.device)
        r2 = (2.0 - 2.0 * H @ H.transpose(-1, -2)).clamp(0.0, 4.0)  # unit rows: a function of G
        one, zero = torch.ones_like(r2), torch.zeros_like(r2)
        if self.minorant:
            ka = torch.full_like(r2, -self.term_floor[POS])
        else:
            ka = self.k.k_align(torch.where(pos, r2, one))
        ke = self.k.k_energy_plain(torch.where(neg, r2, one))
        per = (-torch.where(pos, ka, zero).sum(-1) / pos.sum(-1).clamp_min(1)
               + self.gamma * torch.where(neg, ke, zero).sum(-1) / neg.sum(-1).clamp_min(1))
        return torch.where(anchors, per, torch.zeros_like(per)).sum(-1)
