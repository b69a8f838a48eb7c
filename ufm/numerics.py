"""Numerically careful primitives shared by the loss implementations."""

from __future__ import annotations

import numpy as np


def logsumexp_log1p(x: np.ndarray, axis: int = -1, where: np.ndarray | None = None):
    """``log sum_j exp(x_j)`` along ``axis`` and its softmax weights, accurate to the last digit.

    Writes the sum as ``m + log1p(sum_{j != j*} exp(x_j - m))`` with ``m = x_{j*}`` the
    largest entry, so that a tiny remainder next to a dominant term keeps its relative
    accuracy (a plain ``log(sum exp)`` rounds ``log(1 + 1e-18)`` to 0). Entries where
    ``where`` is False are left out. Returns ``(value, weights)`` with weights summing to 1
    along ``axis``.
    """
    x = np.asarray(x, dtype=np.float64)
    if where is not None:
        x = np.where(where, x, -np.inf)
    x = np.moveaxis(x, axis, -1)
    jmax = np.argmax(x, axis=-1)
    m = np.take_along_axis(x, jmax[..., None], axis=-1)
    e = np.exp(x - m)
    rest = e.copy()
    np.put_along_axis(rest, jmax[..., None], 0.0, axis=-1)
    tail = rest.sum(axis=-1)
    value = m[..., 0] + np.log1p(tail)
    weights = e / (1.0 + tail)[..., None]
    return value, np.moveaxis(weights, -1, axis)


# ---- the excess of a loss over its floor, with full relative precision ---------------------
# A loss near its floor is floor + excess with an excess far below the floor's round-off
# (DESIGN section 7). The functions below evaluate the pieces of the excess in the log domain:
# e^x - 1 - x without cancellation, and log(log1p(e^t)) for any t (t = log B of a per-anchor
# remainder B that may underflow).

#: |x| below this: e^x - 1 - x by its Taylor series (terms to x^11: below float64 round-off
#: relative to x^2 / 2); beyond, expm1(x) - x loses at most 2 eps / |x| <= 2e-15 relative
_EXPM1MX_SERIES = 0.1
_EXPM1MX_TERMS = 11


def expm1mx(x):
    """e^x - 1 - x, accurate to a few ulps for every x (numpy or torch input).

    Taylor series x^2/2 (1 + x/3 (1 + x/4 (...))) for |x| < 1/2, ``expm1(x) - x`` beyond,
    where the subtraction loses at most two bits.
    """
    if _is_torch(x):
        import torch as xp
    else:
        xp = np
        x = np.asarray(x, dtype=np.float64)
    small = xp.abs(x) < _EXPM1MX_SERIES
    xs = xp.where(small, x, xp.zeros_like(x))
    acc = xp.ones_like(x)
    for m in range(_EXPM1MX_TERMS, 2, -1):
        acc = 1.0 + xs / m * acc
    series = 0.5 * xs * xs * acc
    with np.errstate(over="ignore"):
        return xp.where(small, series, xp.expm1(x) - x)


def log_expm1mx(x):
    """log(e^x - 1 - x) (>= 0 inside, -inf at x = 0), without overflow for large x."""
    if _is_torch(x):
        import torch as xp
    else:
        xp = np
        x = np.asarray(x, dtype=np.float64)
    big = x > 2.0
    xb = xp.where(big, x, xp.full_like(x, 3.0))
    large = xb + xp.log1p(-(1.0 + xb) * xp.exp(-xb))
    with np.errstate(divide="ignore"):
        return xp.where(big, large, xp.log(expm1mx(xp.where(big, xp.zeros_like(x), x))))


def log_sum_expm1mx(x, mask):
    """log sum_j (e^{x_j} - 1 - x_j) along the last axis over entries where ``mask`` (torch),
    -inf where there are none or all are 0; no overflow for any x.

    Rows whose largest x_m is at most 1 are summed directly; beyond, the row is scaled by
    e^{-x_m}: sum_j (e^{x_j - x_m} - (1 + x_j) e^{-x_m}), dominated by its largest term (> 0.26),
    so no cancellation matters.
    """
    import torch

    zero = torch.zeros_like(x)
    xs = torch.where(mask, x, zero)
    xm = torch.where(mask, x, torch.full_like(x, float("-inf"))).amax(dim=-1, keepdim=True)
    big = xm > 1.0
    direct = torch.where(mask, expm1mx(torch.clamp(xs, max=1.0)), zero).sum(-1)
    shift = torch.where(big, xm, torch.zeros_like(xm))
    scaled = torch.where(mask, torch.exp(xs - shift) - (1.0 + xs) * torch.exp(-shift), zero).sum(-1)
    return torch.where(big.squeeze(-1), shift.squeeze(-1) + torch.log(scaled), torch.log(direct))


def log_log1p_exp(t):
    """log(log1p(e^t)) for any real t (also -inf), without underflow or overflow."""
    if _is_torch(t):
        import torch as xp
    else:
        xp = np
        t = np.asarray(t, dtype=np.float64)
    lo = t < -30.0
    hi = t > 30.0
    mid = xp.where(lo | hi, xp.zeros_like(t), t)
    with np.errstate(divide="ignore", invalid="ignore"):
        tl = xp.where(lo, t, xp.full_like(t, -31.0))
        low = tl + xp.log1p(-0.5 * xp.exp(tl))  # log1p(B) = B (1 - B/2 + ...), B < 1e-13
        th = xp.where(hi, t, xp.full_like(t, 31.0))
        high = xp.log(th + xp.log1p(xp.exp(-th)))
        return xp.where(lo, low, xp.where(hi, high, xp.log(xp.log1p(xp.exp(mid)))))


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")
