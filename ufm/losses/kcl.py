"""KCL: kernel contrastive loss (Koromilas et al. 2024), no temperature.

Over M pairs (u_i, v_i), with r^2 = ||x - y||^2 = 2 (1 - x.y):

    KCL = -2 mean_i k_a(u_i, v_i) + gamma [mean_{i<j} k(u_i, u_j) + mean_{i<j} k(v_i, v_j)]

(the authors' normalisation; ``reduction="sum"`` multiplies by M, the number of pairs). Kernels:
gaussian exp(-t r^2) (alignment the same); imq c / sqrt(c^2 + r^2) with c = t (the same);
log: energy -(1/2) log(t r^2 + 1), alignment -log(t r^2 + 1); riesz: energy r^(-s) (s > 0) or
-r^|s| (s < 0), alignment gaussian with t (a Riesz alignment is unbounded).

As a sum over the 2M samples, anchor i gets -mean_P k_a + gamma mean_N k (P its other view, N the
other instances in its view), divided by M.

**Convexity and the relaxation.** The energy is convex in G for these kernels (riesz: for
s > 0 and -2 <= s < 0), the alignment concave: KCL is not convex in G. But -k_a(r^2) is smallest at
r = 0, so h = -2 k_a(0) + gamma [energy] is a convex minorant of KCL (h <= f), equal to f where
views are aligned; min f >= min h, and an aligned minimiser of h attains it. So the relaxation of
KCL is h, certificates bound f - f* by (f - h) + the certificate of h, and the optimum aligns
v_i = u_i with the energy of M points at its minimum (DESIGN section 3).

**Floor**: every kernel is decreasing in r <= 2, so f >= -2 k_a(0) + 2 gamma k(r^2 = 4)
(positives aligned, negatives antipodal); the excess is the sum of the non-negative terms
k_a(0) - k_a(r^2) and k(r^2) - k(4), each evaluated without cancellation or overflow (expm1,
log1p; no e^{4t}; imq and riesz as expm1 of a log ratio, exact at large c and small |s|).

**Range** (what the geometry controls, :meth:`KCL._range`): each anchor's terms move within
[k_a(4), k_a(0)] and gamma [k(4), k(0)], so the full batch moves by at most (anchors) x
[(k_a(0) - k_a(4)) + gamma (k(0) - k(4))]; unbounded for riesz s > 0.

**Distances and coincident points.** Every form (numpy rows, torch rows, plain torch) clips
D = 1 - G to [0, 2] before using it (round-off gives G = 1 + 2e-16). Riesz energies are singular
at D = 0: for s > 0 the value is +inf (log excess +inf, never certified; the scaled gradient is
its limit as the points meet, pushing them apart), and for -2 < s < 0 the slope of -r^|s| is
infinite (coincident points are a maximum along any separation): it is evaluated at
:data:`D_RES`, so no gradient is silently 0 or NaN and no certificate holds there.

**Accepted parameters** (:data:`T_MAX` and the rest below): measured where float64 still serves a
certificate of the optimum.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np

from ufm.errors import UFMInputError
from ufm.losses.base import Loss, RowEvaluator
from ufm.samples import SAME_GROUP, SAME_VIEW, Samples
from ufm.tables import NEG, NONE, POS, RowParts, Table

KERNELS = ("gaussian", "imq", "log", "riesz")

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


#: smallest non-zero distance D = 1 - x.y between unit vectors that float64 resolves (x.y <= 1
#: is a float64 number, so 1 - x.y is 0 or at least 2^-53). Where a kernel's slope in D is
#: infinite at D = 0 (Riesz with s > -2: coincident points), it is evaluated here: finite,
#: and steeper than at any resolved distance, so coincident points are never a silent
#: stationary point (a certificate at them fails; an optimiser moves them apart).
D_RES = 2.0**-53


def _xp(x):
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _at_least(x, low: float):
    return x.clamp_min(low) if type(x).__module__.startswith("torch") else np.maximum(x, low)


def _at_least_bound(value: float, argument: str, low: float, name: str) -> float:
    if value < low:
        raise UFMInputError(argument, f"{value:g} is below {low:g}, where float64 stops serving a "
                            f"certificate of KCL's optimum (ufm.losses.kcl.{name.upper()}_MIN); "
                            f"use {name} >= {low:g}")
    return value


def _magnitude_at_least(value: float, argument: str, low: float, name: str) -> float:
    if abs(value) < low:
        raise UFMInputError(argument, f"|{name}| = {abs(value):g} is below {low:g}, where float64 stops "
                            "serving a certificate of KCL's optimum (ufm.losses.kcl.S_SMALL); "
                            f"use |{name}| >= {low:g}")
    return value


def _clip_distance(x):
    """Distances 1 - G of unit vectors, clipped to [0, 2] (round-off gives G = 1 + 2e-16)."""
    return x.clamp(0.0, 2.0) if type(x).__module__.startswith("torch") else np.clip(x, 0.0, 2.0)


class Kernel:
    """A kernel of r^2 = 2 D (D = 1 - x.y, clipped to [0, 2]), evaluated as excesses over its
    value at r^2 = 4 (energy) and below its value at 0 (alignment), with derivatives in D, each
    without cancellation or overflow (large t: no exp(4 t); imq at large c: no 1 - (1 + x)^-1/2)."""

    def __init__(self, kind: str, t: float, s: float):
        self.kind, self.t, self.s = kind, t, s

    @property
    def singular(self) -> bool:
        """The energy's slope in D is infinite at D = 0 (Riesz, s > -2: coincident points)."""
        return self.kind == "riesz" and self.s > -2

    # energy: phi(D) = k(2D) - k(4) >= 0 and dphi/dD (one transcendental pass each)
    def energy(self, D):
        xp = _xp(D)
        t, s = self.t, self.s
        if self.kind == "gaussian":
            e = xp.exp(-2 * t * D)
            return e * -xp.expm1(-2 * t * (2.0 - D)), -2 * t * e
        if self.kind == "imq":
            c2 = t * t
            u = 1 + 2 * D / c2
            b = (1 + 4 / c2) ** -0.5
            # (1 + 2D/c2)^-1/2 - (1 + 4/c2)^-1/2 = b expm1(log1p((4 - 2D) / (c2 + 2D)) / 2)
            return b * xp.expm1(0.5 * xp.log1p((4.0 - 2 * D) / (c2 + 2 * D))), -(1 / c2) * u**-1.5
        if self.kind == "log":
            den = 2 * t * D + 1
            return 0.5 * xp.log1p(2 * t * (2.0 - D) / den), -t / den
        # riesz: k = (2D)^q with q = -s/2; its slope q 2^q D^(q - 1) is infinite at D = 0 for
        # q < 1 (s > -2): there it is taken at D_RES, finite and steeper than anywhere else
        # phi = +-((2D)^q - 4^q) = -sign(q) 4^q expm1(q log(D / 2)): no cancellation at small |s|
        q = -s / 2
        phi = (-math.copysign(1.0, q) * 4.0**q) * xp.expm1(q * xp.log(0.5 * D))
        Ds = _at_least(D, D_RES) if q < 1 else D
        dk = q * 2.0**q * Ds ** (q - 1)
        return phi, (dk if s > 0 else -dk)

    # alignment: psi(D) = k_a(0) - k_a(2D) >= 0 and dpsi/dD
    def alignment(self, D):
        xp = _xp(D)
        t = self.t
        if self.kind in ("gaussian", "riesz"):
            return -xp.expm1(-2 * t * D), 2 * t * xp.exp(-2 * t * D)
        if self.kind == "imq":
            c2 = t * t
            return -xp.expm1(-0.5 * xp.log1p(2 * D / c2)), (1 / c2) * (1 + 2 * D / c2) ** -1.5
        return xp.log1p(2 * t * D), 2 * t / (1 + 2 * t * D)

    def energy_range(self) -> float:
        """k(0) - k(4): how far one energy term moves over the sphere (inf: Riesz s > 0)."""
        if self.kind == "riesz" and self.s > 0:
            return math.inf
        with np.errstate(divide="ignore"):
            return float(self.energy(np.float64(0.0))[0])

    def alignment_range(self) -> float:
        """k_a(0) - k_a(4)."""
        return float(self.alignment(np.float64(2.0))[0])

    def k_energy(self, r2):
        """k(r^2), for the plain implementation."""
        xp = _xp(r2)
        t, s = self.t, self.s
        if self.kind == "gaussian":
            return xp.exp(-t * r2)
        if self.kind == "imq":
            return t / xp.sqrt(t * t + r2)
        if self.kind == "log":
            return -0.5 * xp.log(t * r2 + 1)
        return r2 ** (-s / 2) if s > 0 else -(r2 ** (-s / 2))

    def k_energy_plain(self, r2):
        """k(r^2) over torch r^2 (clipped to [0, 4]) for autograd: the value as defined; where the
        slope is infinite (Riesz, coincident points) autograd sees the slope at D_RES instead of
        inf or NaN (the value keeps its exact k(0), inf for s > 0)."""
        r2 = r2.clamp(0.0, 4.0)
        k = self.k_energy(r2)
        if not self.singular:
            return k
        r2s = r2 + (r2.clamp_min(2 * D_RES) - r2).detach()  # value clipped, gradient passed
        ks = self.k_energy(r2s)
        return ks + (k - ks).detach()

    def k_align(self, r2):
        xp = _xp(r2)
        t = self.t
        if self.kind in ("gaussian", "riesz"):
            return xp.exp(-t * r2)
        if self.kind == "imq":
            return t / xp.sqrt(t * t + r2)
        return -xp.log(t * r2 + 1)

    def floor_terms(self) -> tuple[float, float]:
        """(k_a(0), k(4))."""
        return float(self.k_align(np.float64(0.0))), float(self.k_energy(np.float64(4.0)))


class KCL(Loss):
    name = "kcl"
    title = "kernel contrastive loss, M pairs (no temperature)"
    formula = "-2 mean_i k_a(u_i, v_i) + gamma [mean_{i<j} k(u_i, u_j) + mean_{i<j} k(v_i, v_j)]"
    source = (
        "Koromilas et al. 2024, Bridging Mini-Batch and Asymptotic Analysis in Contrastive "
        "Learning: From InfoNCE to Kernel-Based Losses (code defaults t = 2, gamma = 16)"
    )
    from ufm.params import Param as _P

    params = (
        _P(
            "kernel",
            "gaussian",
            "KCL kernel: gaussian | imq | log | riesz (default gaussian)",
            kind="choice",
            choices=KERNELS,
        ),
        _P(
            "t",
            2.0,
            f"KCL kernel parameter t, {T_MIN:g} <= t <= {T_MAX:g} (beyond, float64 no longer certifies the "
            "optimum: see ufm.losses.kcl.T_MAX; imq: c = t; riesz: t of the gaussian alignment; default 2)",
            minimum=0.0,
            maximum=T_MAX,
            check=lambda v, arg: _at_least_bound(v, arg, T_MIN, "t"),
            extremes=(T_MIN, T_MAX),
        ),
        _P(
            "gamma",
            16.0,
            f"KCL weight of the energy gamma, {GAMMA_MIN:g} <= gamma <= {GAMMA_MAX:g} (beyond, the energy or "
            "the alignment falls below a certificate's resolution: see ufm.losses.kcl.GAMMA_MAX; default 16)",
            minimum=0.0,
            maximum=GAMMA_MAX,
            check=lambda v, arg: _at_least_bound(v, arg, GAMMA_MIN, "gamma"),
            extremes=(GAMMA_MIN, GAMMA_MAX),
        ),
        _P(
            "s",
            1.0,
            f"KCL riesz exponent s, {S_SMALL:g} <= |s| <= {S_MAX:g}: energy r^-s, or -r^|s| for s < 0, "
            "certified for s >= -2 where it is convex in G (beyond the bounds float64 no longer certifies "
            "the optimum: see ufm.losses.kcl.S_MAX; default 1)",
            minimum=S_MIN,
            strict=False,
            maximum=S_MAX,
            nonzero=True,
            check=lambda v, arg: _magnitude_at_least(v, arg, S_SMALL, "s"),
            extremes=(S_MIN, -2.0, -S_SMALL, S_SMALL, S_MAX),
        ),
    )
    del _P
    samples_kind = "views"
    convex_in_gram = False
    uses_views = True
    default_reduction = "mean"
    anchor_word = "pair"
    anchor_size = 2
    pairs_only = True
    negatives_same_view = True
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

    def kind_of_relation(self) -> np.ndarray:
        k = np.full(4, NONE, dtype=np.int8)
        k[SAME_GROUP | SAME_VIEW] = NONE
        k[SAME_GROUP] = POS
        k[SAME_VIEW] = NEG
        return k

    def _floor(self, samples: Samples) -> float:
        ka0, k4 = self.k.floor_terms()
        return self._anchor_count(samples) * (-ka0 + self.gamma * k4)

    def _range(self, samples: Samples) -> float:
        """Upper bound on max - min of the full-batch loss (sum reduction) over unit embeddings.

        As a sum over anchoring samples, anchor i contributes -mean_P k_a + gamma mean_N k
        (P its other view, N the other instances of its view). Over r^2 in [0, 4] every kernel
        is decreasing, so -mean_P k_a moves within [-k_a(0), -k_a(4)] and gamma mean_N k within
        gamma [k(4), k(0)]:

            range <= (anchoring samples) x [(k_a(0) - k_a(4)) + gamma (k(0) - k(4))]

        (gaussian: 1 - e^{-4t} each; imq: 1 - t / sqrt(t^2 + 4); log: log(1 + 4t) and
        log(1 + 4t) / 2; riesz s < 0: 2^|s| for the energy). inf for Riesz s > 0, whose energy
        is unbounded (k(0) = inf)."""
        per = self.k.alignment_range() + self.gamma * self.k.energy_range()
        return self._anchor_count(samples) * per

    def _degenerate(self, samples: Samples) -> str | None:
        if self._anchor_count(samples) == 0:
            return "fewer than two pairs: KCL has no energy term, there is no geometry to compare"
        return None

    # ---- rows ---------------------------------------------------------------------------------
    def _rows_log_excess(self, X, mult, kind, weight):
        rp = RowParts.of(mult, kind, weight)
        pos, neg, mp, mn, npos, nneg, anchors = rp.pos, rp.neg, rp.mp, rp.mn, rp.npos, rp.nneg, rp.anchors
        X = _clip_distance(np.asarray(X, dtype=np.float64))
        W = np.zeros_like(X)
        if not anchors.any():
            return -np.inf, W
        wn = self.gamma / np.maximum(nneg, 1.0)
        wp = 1.0 / np.maximum(npos, 1.0)
        with np.errstate(divide="ignore", over="ignore"):
            phi, dphi = self.k.energy(np.where(neg, X, 1.0))
            ex_a = (mn * phi).sum(1) * wn
            if not self.minorant:
                psi, dpsi = self.k.alignment(np.where(pos, X, 0.0))
                ex_a = ex_a + (mp * psi).sum(1) * wp
        ex_a = np.where(anchors, ex_a, 0.0)
        excess = float((weight * ex_a).sum())
        if excess == np.inf:  # coincident points of an energy that is infinite there (riesz s > 0)
            coincident = neg & anchors[:, None] & np.isinf(phi)
            total = float((weight[:, None] * mult * np.where(coincident, wn[:, None], 0.0)).sum())
            return np.inf, np.where(coincident, wn[:, None] * self._coincident_slope() / total, 0.0)
        if excess > 0:
            W = np.where(neg, -dphi * wn[:, None], 0.0)  # d/dG = -d/dD
            if not self.minorant:
                W = W + np.where(pos, -dpsi * wp[:, None], 0.0)
            W = np.where(anchors[:, None], W, 0.0) / excess
        return (math.log(excess) if excess > 0 else -np.inf), W

    def _coincident_slope(self) -> float:
        """Limit of -dphi/dD / phi at coincident points of a Riesz energy with s > 0 (phi ~ (2D)^-s/2):
        s / (2 D), at D = D_RES. Where the value is +inf, the scaled gradient
        (d f / d G) / (f - floor) is this on the coincident entries, each weighted by its share of
        the coincident terms, and 0 elsewhere: the limit as those points meet."""
        return self.s / (2 * D_RES)

    def _cvxpy_rows(self, x, table: Table):
        """The minorant h over a table (energy terms only; the constant is in the floor)."""
        import cvxpy as cp
        import scipy.sparse as sp

        if not self.minorant:
            raise NotImplementedError("kcl is not convex in G: CVXPY form of its relaxation only")
        rp = RowParts.of(table.mult, table.kinds(self.kind_of_relation()), table.anchor_weight)
        neg, nneg, anchors = rp.neg, rp.nneg, rp.anchors
        coef = np.zeros(table.nv)
        w = (
            np.where(neg & anchors[:, None], table.mult, 0.0)
            * (table.anchor_weight * self.gamma / np.maximum(nneg, 1.0))[:, None]
        )
        np.add.at(coef, np.asarray(table.value_index).ravel(), w.ravel())
        nz = np.flatnonzero(coef)
        ka0, k4 = self.k.floor_terms()
        floor = float((table.anchor_weight * anchors).sum()) * (-ka0 + self.gamma * k4)
        sel = sp.csr_matrix((np.ones(nz.size), (np.arange(nz.size), nz)), shape=(nz.size, table.nv))
        xs = sel @ x
        t, s = self.t, self.s
        if self.kernel == "gaussian":
            k = cp.exp(2 * t * (xs - 1))
        elif self.kernel == "imq":
            k = t * cp.power(t * t + 2 - 2 * xs, -0.5)
        elif self.kernel == "log":
            k = -0.5 * cp.log(2 * t * (1 - xs) + 1)
        elif s > 0:
            k = cp.power(2 - 2 * xs, -s / 2)
        else:
            k = -cp.power(2 - 2 * xs, -s / 2)
        # h = floor + sum coef (k(x) - k(4)) over energy terms
        return floor + coef[nz] @ k - k4 * coef[nz].sum()

    # ---- torch ---------------------------------------------------------------------------------
    def _torch_rows(self, H, samples: Samples):
        return KernelRows(H, samples, self)

    def _torch_plain(self, H, samples: Samples):
        """By the definition: per sample -mean_P k_a + gamma mean_N k (+ nothing else), as sums
        (the minorant: k_a(0) in place of k_a)."""
        import torch

        pos, neg = self._dense_masks(samples, H.device)
        anchors = torch.as_tensor(self._anchor_mask(samples), device=H.device)
        r2 = (2.0 - 2.0 * H @ H.transpose(-1, -2)).clamp(0.0, 4.0)  # unit rows: a function of G
        one = torch.ones_like(r2)
        if self.minorant:
            ka = torch.full_like(r2, self.k.floor_terms()[0])
        else:
            ka = self.k.k_align(torch.where(pos, r2, one))
        ke = self.k.k_energy_plain(torch.where(neg, r2, one))
        npos, nneg = pos.sum(-1).clamp_min(1), neg.sum(-1).clamp_min(1)
        per = (
            -torch.where(pos, ka, torch.zeros_like(ka)).sum(-1) / npos
            + self.gamma * torch.where(neg, ke, torch.zeros_like(ke)).sum(-1) / nneg
        )
        return torch.where(anchors, per, torch.zeros_like(per)).sum(-1)


class KernelRows(RowEvaluator):
    """KCL's log-excess over H in row blocks (torch): distances to the other view from
    instance-centred coordinates (alignment near 1 keeps its relative precision)."""

    def __init__(self, H, samples: Samples, loss: KCL):
        import torch

        self.H, self.loss = H, loss
        self.y_np = samples.labels
        dev = H.device
        self.y = torch.as_tensor(samples.labels, device=dev)
        self.views = torch.as_tensor(samples.views, device=dev)
        npos, nneg = loss._counts(samples)
        self.wp = torch.as_tensor(1.0 / np.maximum(npos, 1.0), device=dev, dtype=H.dtype)
        self.wn = torch.as_tensor(loss.gamma / np.maximum(nneg, 1.0), device=dev, dtype=H.dtype)
        self.anchors = torch.as_tensor(loss._anchor_mask(samples), device=dev)
        k = samples.k
        axis = H.dim() - 2
        sums = torch.zeros(H.shape[:-2] + (k, H.shape[-1]), dtype=H.dtype, device=dev).index_add(
            axis, self.y, H
        )
        ref = sums / sums.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(H.dtype).tiny)
        self.U = H - ref.index_select(axis, self.y)
        self.usq = (self.U * self.U).sum(-1)

    def _masks(self, start, stop):
        same = self.y[start:stop, None] == self.y[None, :]
        sv = self.views[start:stop, None] == self.views[None, :]
        return same & ~sv, ~same & sv

    def block(self, start, stop):
        import torch

        H = self.H
        G = H[..., start:stop, :] @ H.transpose(-1, -2)
        pos, neg = self._masks(start, stop)
        phi, dphi = self.loss.k.energy(torch.where(neg, _clip_distance(1.0 - G), torch.ones_like(G)))
        ex = torch.where(neg, phi, torch.zeros_like(phi)).sum(-1) * self.wn[start:stop]
        # positives (the other view), pair by pair, from instance-centred coordinates
        r, c = torch.nonzero(pos, as_tuple=True)
        dpsi = None
        if not self.loss.minorant:
            ui, uj = self.U[..., r + start, :], self.U[..., c, :]
            Dp = _clip_distance(0.5 * (self.usq[..., r + start] + self.usq[..., c]) - (ui * uj).sum(-1))
            psi, dpsi = self.loss.k.alignment(Dp)
            zero = torch.zeros(ex.shape, dtype=ex.dtype, device=ex.device)
            ex = ex + zero.index_add(-1, r, psi * self.wp[r + start])
        anchors = self.anchors[start:stop]
        lex_i = torch.where(anchors, torch.log(ex), torch.full_like(ex, float("-inf")))
        coincident = neg & anchors[:, None] & torch.isinf(phi)  # riesz s > 0: the value is +inf
        return SimpleNamespace(start=start, stop=stop, r=r, c=c, neg=neg, dphi=dphi, dpsi=dpsi, lex_i=lex_i,
                               anchors=anchors, coincident=coincident)

    def _coincident_total(self):
        """sum over anchors of gamma / |N(i)| x (its coincident negatives), per restart."""
        if getattr(self, "_ctotal", None) is None:
            n = self.H.shape[-2]
            total = 0.0
            for start in range(0, n, 1024):
                t = self.block(start, min(start + 1024, n))
                total = total + (t.coincident * self.wn[start:min(start + 1024, n), None]).sum((-1, -2))
            self._ctotal = total
        return self._ctotal

    def scaled(self, t, lex):
        import torch

        start, stop = t.start, t.stop
        F = torch.where(
            t.neg & t.anchors[:, None], -t.dphi * self.wn[start:stop, None], torch.zeros_like(t.dphi)
        )
        if t.dpsi is not None:
            keep = t.anchors[t.r]
            F[..., t.r, t.c] = torch.where(keep, -t.dpsi * self.wp[t.r + start], torch.zeros_like(t.dpsi))
        out = F * torch.exp(-lex).reshape(lex.shape + (1, 1))
        infinite = torch.isinf(lex) & (lex > 0)
        if bool(infinite.any()):  # value +inf (coincident points, riesz s > 0): the limit of F / excess
            total = torch.as_tensor(self._coincident_total(), dtype=F.dtype, device=F.device)
            total = torch.where(total > 0, total, torch.ones_like(total)).reshape(lex.shape + (1, 1))
            limit = torch.where(t.coincident, self.wn[start:stop, None] * self.loss._coincident_slope(),
                                torch.zeros_like(F)) / total
            out = torch.where(infinite.reshape(lex.shape + (1, 1)), limit, out)
        return out
