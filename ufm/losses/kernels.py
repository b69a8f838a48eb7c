"""Kernels of KCL (Koromilas et al. 2024) as functions of D = 1 - x.y of unit vectors
(r^2 = ||x - y||^2 = 2 D): the energy k and the alignment k_a, each evaluated as a non-negative
excess (energy: k(2D) - k(4); alignment: k_a(0) - k_a(2D)) with its derivative in D, without
cancellation or overflow (expm1, log1p; no e^{4t}; imq and riesz as expm1 of a log ratio, exact at
large c and small |s|); the plain k(r^2) of the definition; and the energy as a CVXPY atom.

gaussian exp(-t r^2) (alignment the same); imq c / sqrt(c^2 + r^2) with c = t (the same);
log: energy -(1/2) log(t r^2 + 1), alignment -log(t r^2 + 1); riesz: energy r^(-s) (s > 0) or
-r^|s| (s < 0), alignment gaussian with t (a Riesz alignment is unbounded).
"""

from __future__ import annotations

import math

import numpy as np

KERNELS = ("gaussian", "imq", "log", "riesz")


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

    def cvxpy_energy(self, dist):
        """k(2 D) - k(4) of a CVXPY expression of distances D (convex: riesz for s > 0 or
        -2 <= s < 0)."""
        import cvxpy as cp

        t, s = self.t, self.s
        if self.kind == "gaussian":
            k = cp.exp(-2 * t * dist)
        elif self.kind == "imq":
            k = t * cp.power(t * t + 2 * dist, -0.5)
        elif self.kind == "log":
            k = -0.5 * cp.log(2 * t * dist + 1)
        else:
            k = cp.power(2 * dist, -s / 2) if s > 0 else -cp.power(2 * dist, -s / 2)
        return k - self.floor_terms()[1]
