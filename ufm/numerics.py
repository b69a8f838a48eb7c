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


def logsumexp_log1p_torch(x, mask=None):
    """Torch version of :func:`logsumexp_log1p` along the last axis (value only, differentiable).

    ``mask`` (bool, broadcastable to ``x``) selects the entries that take part.
    """
    import torch

    if mask is not None:
        x = x.masked_fill(~mask, float("-inf"))
    m, jmax = x.max(dim=-1, keepdim=True)
    e = torch.exp(x - m)
    rest = e.scatter(-1, jmax, 0.0)
    return m.squeeze(-1) + torch.log1p(rest.sum(dim=-1))
