"""Tied starts for the n x n program: the problem restricted to embeddings equal within groups.

Restricting G to G = P G_g P^T (P the n x g indicator of a grouping of the samples) keeps the
relaxation convex in the g x g matrix G_g, so its Burer-Monteiro factorisation in dimension g + 1
has no spurious local minima (Burer and Monteiro 2005; Journee et al. 2010), and it is small:
one row per group. Its optimum, lifted to the n samples, is a point of the full problem whose
exact certificate (``solvers.certificate.certify_embeddings``) decides whether it is the global
optimum; where it is not, it is a start for the full program.

Why: at small tau the optimum of a mini-batch loss collapses its groups and the excess is
exponentially small (e^(-2/tau) and below); a gradient method over all n rows spends its
iterations shrinking the within-group spread, whose contribution to log(f - floor) dominates the
excess until it is below e^(-1/tau) (at tau 0.05 an n = 8 problem took 20,000 L-BFGS iterations
and was not certified). Tied, the within-group spread is exactly 0 and the log excess (computed
directly, never as value minus floor) converges in tens of iterations.

Groupings tried (:func:`groupings`): the samples' positive groups (classes, or the views of an
instance), then their types under the batches (group and the set of batches a sample is in:
samples of one type are interchangeable, so the problem's symmetry maps them onto each other).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: random starts per grouping (the tied program is convex in G_g and factored in dimension g + 1:
#: a second-order critical point is its optimum, so one start serves; more guard against a stall)
TIED_STARTS = 1
#: L-BFGS iterations per start
TIED_MAX_ITER = 3000


@dataclass
class TiedPoint:
    """The best end point of one grouping: ``H`` (n, g + 1) unit rows, equal within groups."""

    name: str  # "classes" | "types"
    groups: int
    H: np.ndarray
    log_excess: float
    iterations: int
    seconds: float


def groupings(samples) -> list[tuple[str, np.ndarray]]:
    """``(name, group index per sample)``: the positive groups (``samples.labels``), then, with
    mini-batches, the types (group, batches containing the sample) where they are finer."""
    from ufm.symmetry import batch_types

    labels = np.asarray(samples.labels)
    out = [("classes", labels)]
    if samples.batches is not None:
        types = batch_types(samples)[0]
        if types.max() + 1 > labels.max() + 1:
            out.append(("types", types))
    return out


class _AtFloor(Exception):
    def __init__(self, e: np.ndarray):
        self.e = e


def tied_minimum(loss, samples, groups: np.ndarray, seed: int = 0, starts: int = TIED_STARTS,
                 max_iter: int = TIED_MAX_ITER,
                 start: np.ndarray | None = None) -> tuple[np.ndarray, float, int]:
    """Minimise log(f - floor) over unit embeddings equal within ``groups`` (scipy L-BFGS over
    unnormalised group rows E, h_g = e_g / |e_g|, from ``starts`` seeded random points in
    dimension g + 1). The log excess and its gradient are the certificate's own dense float64
    forms (``Loss.dense_log_excess``, numpy: no torch), at distances 1 - h_a.h_b = |h_a - h_b|^2 / 2
    (full relative precision near collapse). ``start`` (n, d' <= g + 1): unit rows equal within
    ``groups`` (a coarser grouping's point) that replace the first random start. Returns
    (H (n, g + 1), log excess, iterations in all)."""
    from scipy.optimize import minimize

    groups = np.asarray(groups)
    g = int(groups.max()) + 1
    d = g + 1
    P = np.zeros((groups.size, g))
    P[np.arange(groups.size), groups] = 1.0

    def rows(e: np.ndarray):
        E = e.reshape(g, d)
        norm = np.linalg.norm(E, axis=1, keepdims=True)
        return norm, E / norm

    def value_and_grad(e: np.ndarray):
        norm, Hg = rows(e)
        diff = Hg[:, None, :] - Hg[None, :, :]
        Dg = np.clip(0.5 * np.einsum("abk,abk->ab", diff, diff), 0.0, 2.0)
        lex, Ft = loss.dense_log_excess(Dg[np.ix_(groups, groups)], samples)
        if lex == -np.inf:
            raise _AtFloor(e.copy())
        grad = (P.T @ (Ft + Ft.T) @ P) @ Hg  # d lex / d Hg (G = P Hg Hg^T P^T)
        Ge = (grad - np.sum(grad * Hg, axis=1, keepdims=True) * Hg) / norm
        return float(lex), Ge.ravel()

    rng = np.random.default_rng(seed)
    best, iterations = None, 0
    for i in range(starts):
        e0 = rng.standard_normal(g * d)
        if i == 0 and start is not None:
            first = np.unique(groups, return_index=True)[1]  # one sample of each group
            E0 = np.zeros((g, d))
            E0[:, : start.shape[1]] = start[first]
            e0 = E0.ravel()
        try:
            res = minimize(value_and_grad, e0, jac=True, method="L-BFGS-B",
                           options={"maxiter": max_iter, "gtol": 1e-13, "ftol": 0.0, "maxcor": 20})
            e, lex, it = res.x, float(res.fun), int(res.nit)
        except _AtFloor as stop:
            e, lex, it = stop.e, -np.inf, 0
        iterations += it
        if best is None or lex < best[1]:
            best = (e, lex)
        if lex == -np.inf:
            break
    H = rows(best[0])[1][groups]
    return H, best[1], iterations


def tied_points(problem, seed: int = 0) -> Iterator[TiedPoint]:
    """The tied optimum of each grouping of :func:`groupings`, coarsest first (computed as they
    are asked for: a caller stops at the first it certifies)."""
    previous = None
    for name, groups in groupings(problem.samples):
        t0 = time.perf_counter()
        # a finer grouping starts from the coarser one's optimum (one of its points)
        H, lex, it = tied_minimum(problem.loss, problem.samples, groups, seed, start=previous)
        previous = H
        yield TiedPoint(name, int(groups.max()) + 1, H, lex, it, time.perf_counter() - t0)
