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
k_a(0) - k_a(r^2) and k(r^2) - k(4), each evaluated without cancellation (expm1, log1p).
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


def _xp(x):
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


class Kernel:
    """A kernel of r^2 = 2 D (D = 1 - x.y), evaluated as excesses over its value at r^2 = 4
    (energy) and below its value at 0 (alignment), with derivatives in D."""

    def __init__(self, kind: str, t: float, s: float):
        self.kind, self.t, self.s = kind, t, s

    # energy: phi(D) = k(2D) - k(4) >= 0 and dphi/dD (one transcendental pass each)
    def energy(self, D):
        xp = _xp(D)
        t, s = self.t, self.s
        if self.kind == "gaussian":
            c = math.exp(-4 * t)
            phi = c * xp.expm1(2 * t * (2.0 - D))
            return phi, -2 * t * (phi + c)
        if self.kind == "imq":
            c2 = t * t
            a = (1 + 2 * D / c2) ** -0.5
            return a - (1 + 4 / c2) ** -0.5, -(1 / c2) * a**3
        if self.kind == "log":
            den = 2 * t * D + 1
            return 0.5 * xp.log1p(2 * t * (2.0 - D) / den), -t / den
        # riesz
        if s > 0:
            k = (2 * D) ** (-s / 2)
            return k - 2.0 ** (-s), -(s / 2) * k / D
        k = (2 * D) ** (-s / 2)
        return 2.0 ** (-s) - k, (s / 2) * k / D

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
            "KCL kernel parameter t (> 0; imq: c = t; riesz: of the gaussian alignment; default 2)",
            minimum=0.0,
        ),
        _P("gamma", 16.0, "KCL weight of the energy (> 0; default 16)", minimum=0.0),
        _P("s", 1.0, "KCL riesz exponent: energy r^-s (s > 0) or -r^|s| (s < 0; default 1)", nonzero=True),
    )
    del _P
    samples_kind = "views"
    convex_in_gram = False
    uses_views = True
    default_reduction = "mean"
    anchor_word = "pair"
    anchor_size = 2
    negatives_same_view = True
    floor_text = "-2 k_a(0) + 2 gamma k(r^2 = 4) (mean form)"

    def _check(self) -> None:
        self.minorant = False
        self.k = Kernel(self.kernel, self.t, self.s)

    def check_samples(self, samples: Samples, argument: str = "--loss") -> None:
        super().check_samples(samples, argument)
        if samples.grid is not None and samples.grid[1] != 2:
            raise UFMInputError(
                "--views", f"kcl is defined on pairs: --views must be 2, got {samples.grid[1]}"
            )

    @property
    def energy_convex(self) -> bool:
        return self.kernel != "riesz" or self.s > 0 or self.s >= -2

    def relaxation(self):
        """h = -2 k_a(0) + gamma [energy]: convex in G, h <= KCL, equal where views align."""
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

    def _degenerate(self, samples: Samples) -> str | None:
        if self._anchor_count(samples) == 0:
            return "fewer than two pairs: KCL has no energy term, there is no geometry to compare"
        return None

    # ---- rows ---------------------------------------------------------------------------------
    def _rows_log_excess(self, X, mult, kind, weight):
        rp = RowParts.of(mult, kind, weight)
        pos, neg, mp, mn, npos, nneg, anchors = rp.pos, rp.neg, rp.mp, rp.mn, rp.npos, rp.nneg, rp.anchors
        W = np.zeros_like(X)
        if not anchors.any():
            return -np.inf, W
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            phi, dphi = self.k.energy(np.where(neg, X, 1.0))
            psi, dpsi = self.k.alignment(np.where(pos, X, 0.0))
            wn = self.gamma / np.maximum(nneg, 1.0)
            wp = 1.0 / np.maximum(npos, 1.0)
            ex_a = (mn * phi).sum(1) * wn
            if not self.minorant:
                ex_a = ex_a + (mp * psi).sum(1) * wp
        ex_a = np.where(anchors, ex_a, 0.0)
        excess = float((weight * ex_a).sum())
        lex = math.log(excess) if excess > 0 else -np.inf
        if excess > 0 and np.isfinite(excess):
            with np.errstate(invalid="ignore", over="ignore"):
                W = np.where(neg, -dphi * wn[:, None], 0.0)  # d/dG = -d/dD
                if not self.minorant:
                    W = W + np.where(pos, -dpsi * wp[:, None], 0.0)
            W = np.where(anchors[:, None] & np.isfinite(W), W, 0.0) / excess
        return lex, W

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
        """By the definition: per sample -mean_P k_a + gamma mean_N k (+ nothing else), as sums."""
        import torch

        pos, neg = self._dense_masks(samples, H.device)
        anchors = torch.as_tensor(self._anchor_mask(samples), device=H.device)
        r2 = (2.0 - 2.0 * H @ H.transpose(-1, -2)).clamp_min(0.0)  # unit rows: a function of G
        one = torch.ones_like(r2)
        ka = self.k.k_align(torch.where(pos, r2, one))
        ke = self.k.k_energy(torch.where(neg, r2, one))
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
        phi, dphi = self.loss.k.energy(torch.where(neg, 1.0 - G, torch.ones_like(G)))
        ex = torch.where(neg, phi, torch.zeros_like(phi)).sum(-1) * self.wn[start:stop]
        # positives (the other view), pair by pair, from instance-centred coordinates
        r, c = torch.nonzero(pos, as_tuple=True)
        dpsi = None
        if not self.loss.minorant:
            ui, uj = self.U[..., r + start, :], self.U[..., c, :]
            Dp = (0.5 * (self.usq[..., r + start] + self.usq[..., c]) - (ui * uj).sum(-1)).clamp_min(0.0)
            psi, dpsi = self.loss.k.alignment(Dp)
            shape = ex.shape
            ex = ex + torch.zeros(shape, dtype=ex.dtype, device=ex.device).index_add(
                -1, r, psi * self.wp[r + start]
            )
        anchors = self.anchors[start:stop]
        lex_i = torch.where(anchors, torch.log(ex), torch.full_like(ex, float("-inf")))
        return SimpleNamespace(
            start=start, stop=stop, r=r, c=c, neg=neg, dphi=dphi, dpsi=dpsi, lex_i=lex_i, anchors=anchors
        )

    def scaled(self, t, lex):
        import torch

        start, stop = t.start, t.stop
        F = torch.where(
            t.neg & t.anchors[:, None], -t.dphi * self.wn[start:stop, None], torch.zeros_like(t.dphi)
        )
        if t.dpsi is not None:
            keep = t.anchors[t.r]
            F[..., t.r, t.c] = torch.where(keep, -t.dpsi * self.wp[t.r + start], torch.zeros_like(t.dpsi))
        F = torch.where(torch.isfinite(F), F, torch.zeros_like(F))
        return F * torch.exp(-lex).reshape(lex.shape + (1, 1))
