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
