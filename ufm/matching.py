"""Are two configurations the same minimum? Same when a relabelling in the problem's symmetry
group and an orthogonal map of R^d carry one onto the other (DESIGN section 4).

The relabellings that leave a loss unchanged (:class:`Relabellings`):

* ``classes``: permutations inside each class and of classes of equal size (losses that only
  ask whether two samples share a group: SupCon, InfoNCE with all negatives, DCL, alpha-CL);
* ``instances x views``: S_N x S_V, instances permuted with all their views, views permuted
  together in every instance (losses whose negatives depend on the view: DHEL, KCL, ...);
* ``rotations only``: mini-batches (a batch breaks every relabelling) and anything else.

:func:`find_map` decides it by finding the map: rigorous rejects first (lower bounds on the
mapped Gram distance: sorted spectra by Hoffman-Wielandt, sorted Gram entries by the
rearrangement inequality, each point's sorted cosines), then a search over images of a few
anchor points that span the configuration (pruned by the same bounds), each candidate
rotation (orthogonal Procrustes, Schoenemann 1966) refined by alternating a constrained
assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``; Kuhn 1955) with Procrustes to a
fixed point. "Same" is said only with the map found: ``gram_distance(A, B[perm]) <= tol``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ufm.metrics import gram_distance

#: largest n the relabelling search runs at (it forms n x n Gram matrices); above it two end
#: points are compared up to rotation only, and the census says so
MATCH_MAX_N = 2000
#: complete anchor images tried before giving up (the pair is then "unresolved")
MAX_TRIALS = 1000
#: nodes of the anchor search before giving up
MAX_NODES = 100_000
#: view permutations enumerated up to this many views (else assigned by view means)
MAX_ENUMERATED_VIEWS = 5


@dataclass(frozen=True)
class Relabellings:
    """The relabelling group of a problem: ``kind`` "classes", "instances_views" or
    "rotations"; ``labels`` (n,) the positive group of every stored sample; ``grid`` (N, V)."""

    kind: str
    labels: np.ndarray
    grid: tuple[int, int] | None = None

    @classmethod
    def of(cls, loss, samples) -> Relabellings:
        """The relabellings that leave ``loss`` on ``samples`` unchanged (see the module)."""
        if samples.batches is not None:
            return cls("rotations", samples.labels)
        if loss.uses_views:
            if samples.grid is None:
                return cls("rotations", samples.labels)
            return cls("instances_views", samples.labels, tuple(samples.grid))
        return cls("classes", samples.labels)

    def describe(self) -> str:
        return {"classes": "relabellings inside each class and of classes of equal size, and rotations",
                "instances_views": "permutations of instances and of views (S_N x S_V), and rotations",
                "rotations": "rotations and reflections only (no relabelling leaves the loss unchanged)",
                }[self.kind]

    @property
    def n(self) -> int:
        return int(self.labels.size)

    @cached_property
    def classes(self) -> list[np.ndarray]:
        return np.split(np.arange(self.n), np.cumsum(np.bincount(self.labels))[:-1])

    @cached_property
    def slot(self) -> np.ndarray:
        """Which points may map onto which: the size of each point's class (classes), one slot
        for all (instances x views), each point its own (rotations)."""
        if self.kind == "classes":
            return np.bincount(self.labels)[self.labels]
        if self.kind == "instances_views":
            return np.zeros(self.n, dtype=np.int64)
        return np.arange(self.n)

    @cached_property
    def view(self) -> np.ndarray | None:
        if self.grid is None:
            return None
        return np.tile(np.arange(self.grid[1]), self.grid[0])

    def consistent(self, a: int, a2: int, b: int, b2: int) -> bool:
        """Can one relabelling send a -> b and a2 -> b2?"""
        if self.labels[a] == self.labels[a2]:
            if self.labels[b] != self.labels[b2]:
                return False
        elif self.labels[b] == self.labels[b2]:
            return False
        if self.kind == "instances_views":
            return (self.view[a] == self.view[a2]) == (self.view[b] == self.view[b2])
        return True

    # ---- the best relabelling for a fixed rotation ---------------------------------------------
    def assign(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """perm in the group maximising sum_i A[i] . B[perm[i]] (A already rotated)."""
        from scipy.optimize import linear_sum_assignment

        if self.kind == "rotations":
            return np.arange(self.n)
        if self.kind == "instances_views":
            N, V = self.grid
            Ar, Br = A.reshape(N, V, -1), B.reshape(N, V, -1)
            best, best_perm = -math.inf, None
            for sigma in self._view_permutations(Ar, Br):
                S = np.einsum("ivk,jvk->ij", Ar, Br[:, sigma])
                rows, cols = linear_sum_assignment(S, maximize=True)
                total = S[rows, cols].sum()
                if total > best:
                    best = total
                    best_perm = (cols[:, None] * V + np.asarray(sigma)[None, :]).ravel()
            return best_perm
        perm = np.empty(self.n, dtype=np.int64)
        sizes = np.bincount(self.labels)
        for size in np.unique(sizes):
            cls_ids = np.flatnonzero(sizes == size)
            if cls_ids.size == 1:
                pairs = [(cls_ids[0], cls_ids[0])]
            else:
                S = self._class_scores(A, B, cls_ids, int(size))
                rows, cols = linear_sum_assignment(S, maximize=True)
                pairs = [(cls_ids[r], cls_ids[c]) for r, c in zip(rows, cols, strict=True)]
            for ca, cb in pairs:
                ia, ib = self.classes[ca], self.classes[cb]
                if ia.size == 1:
                    perm[ia] = ib
                    continue
                rows, cols = linear_sum_assignment(A[ia] @ B[ib].T, maximize=True)
                perm[ia[rows]] = ib[cols]
        return perm

    def _class_scores(self, A, B, cls_ids, size: int) -> np.ndarray:
        """Score of sending class a onto class b: the best within-class assignment's sum of
        inner products where that is cheap, else size x (mean of a) . (mean of b)."""
        from scipy.optimize import linear_sum_assignment

        m = cls_ids.size
        if size == 1:
            first = np.array([self.classes[c][0] for c in cls_ids])
            return A[first] @ B[first].T
        if size <= 8 and m * m <= 400:
            S = np.empty((m, m))
            for r, ca in enumerate(cls_ids):
                for c, cb in enumerate(cls_ids):
                    P = A[self.classes[ca]] @ B[self.classes[cb]].T
                    i, j = linear_sum_assignment(P, maximize=True)
                    S[r, c] = P[i, j].sum()
            return S
        Ma = np.stack([A[self.classes[c]].mean(axis=0) for c in cls_ids])
        Mb = np.stack([B[self.classes[c]].mean(axis=0) for c in cls_ids])
        return size * (Ma @ Mb.T)

    def _view_permutations(self, Ar, Br):
        V = Ar.shape[1]
        if V <= MAX_ENUMERATED_VIEWS:
            return list(itertools.permutations(range(V)))
        from scipy.optimize import linear_sum_assignment

        _, cols = linear_sum_assignment(Ar.mean(axis=0) @ Br.mean(axis=0).T, maximize=True)
        return [tuple(cols)]


@dataclass
class Fingerprint:
    """What the search reads of one configuration H (n, d): its Gram matrix, sorted rows,
    sorted entries and spectrum (all invariant under rotations; the sorted ones under every
    relabelling too)."""

    H: np.ndarray

    @cached_property
    def G(self) -> np.ndarray:
        return self.H @ self.H.T

    @cached_property
    def norm(self) -> float:
        return float(np.linalg.norm(self.H.T @ self.H))  # = ||G||_F

    @cached_property
    def spectrum(self) -> np.ndarray:
        return np.sort(np.linalg.eigvalsh(self.H.T @ self.H))

    @cached_property
    def sorted_rows(self) -> np.ndarray:
        return np.sort(self.G, axis=1)

    @cached_property
    def sorted_entries(self) -> np.ndarray:
        return np.sort(self.G, axis=None)

    @cached_property
    def anchors(self) -> list[int]:
        """Up to d rows that span the configuration, greedily best conditioned."""
        H = self.H
        R = H.copy()
        chosen = [0]
        for _ in range(H.shape[1] - 1):
            v = R[chosen[-1]]
            nv = np.linalg.norm(v)
            if nv < 1e-12:
                break
            v = v / nv
            R = R - np.outer(R @ v, v)
            res = np.linalg.norm(R, axis=1)
            nxt = int(np.argmax(res))
            if res[nxt] < 1e-3:
                break
            chosen.append(nxt)
        return chosen


@dataclass
class Match:
    """A map found from configuration A onto B: ``A @ rotation ~ B[permutation]`` row by row,
    ``distance`` = gram_distance(A, B[permutation]) (<= the tolerance)."""

    permutation: np.ndarray
    rotation: np.ndarray
    distance: float

    @property
    def relabelled(self) -> bool:
        return bool((self.permutation != np.arange(self.permutation.size)).any())


@dataclass
class Decision:
    """``match`` (a map) or None; ``unresolved``: the search ran out of budget while every
    invariant agreed (the two may still be one minimum)."""

    match: Match | None
    unresolved: bool = False


def _procrustes(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Orthogonal Q minimising ||A Q - B||_F."""
    U, _, Vt = np.linalg.svd(A.T @ B)
    return U @ Vt


def _refine(group: Relabellings, A, B, Q, iterations: int = 20):
    perm = group.assign(A @ Q, B)
    for _ in range(iterations):
        Q = _procrustes(A, B[perm])
        new = group.assign(A @ Q, B)
        if np.array_equal(new, perm):
            break
        perm = new
    return perm, Q


def find_map(A, B, group: Relabellings, tol: float) -> Decision:
    """Decide whether A and B (n, d) are one configuration up to ``group`` and an orthogonal map:
    a :class:`Decision` holding the map when one is found with mapped Gram distance <= ``tol``."""
    fa = A if isinstance(A, Fingerprint) else Fingerprint(np.asarray(A, dtype=np.float64))
    fb = B if isinstance(B, Fingerprint) else Fingerprint(np.asarray(B, dtype=np.float64))
    A, B = fa.H, fb.H
    if gram_distance(A, B) <= tol:
        return Decision(Match(np.arange(A.shape[0]), _procrustes(A, B), gram_distance(A, B)))
    if group.kind == "rotations" or A.shape[0] > MATCH_MAX_N:
        return Decision(None)
    bound = tol * fb.norm  # largest ||G_A - P G_B P^T||_F of a map that counts
    if np.linalg.norm(fa.spectrum - fb.spectrum) > bound:  # Hoffman-Wielandt
        return Decision(None)
    if np.linalg.norm(fa.sorted_entries - fb.sorted_entries) > bound:  # rearrangement inequality
        return Decision(None)
    anchors = fa.anchors
    # candidate images of every anchor: its slot, and a sorted row within the bound
    candidates = []
    for a in anchors:
        pool = np.flatnonzero(group.slot == group.slot[a])
        gap = np.linalg.norm(fb.sorted_rows[pool] - fa.sorted_rows[a], axis=1)
        keep = gap <= bound
        candidates.append(pool[keep][np.argsort(gap[keep], kind="stable")])
    if any(c.size == 0 for c in candidates):
        return Decision(None)
    budget = {"trials": MAX_TRIALS, "nodes": MAX_NODES}
    found: list[Match] = []

    def search(images: list[int]) -> bool:
        t = len(images)
        if t == len(anchors):
            budget["trials"] -= 1
            Q = _procrustes(A[anchors], B[images])
            perm, Q = _refine(group, A, B, Q)
            dist = gram_distance(A, B[perm])
            if dist <= tol:
                found.append(Match(perm, Q, dist))
                return True
            return False
        a = anchors[t]
        for b in candidates[t]:
            if budget["trials"] <= 0 or budget["nodes"] <= 0:
                return False
            budget["nodes"] -= 1
            if b in images:
                continue
            if any(abs(fa.G[a, anchors[s]] - fb.G[b, images[s]]) > bound
                   or not group.consistent(a, anchors[s], b, images[s]) for s in range(t)):
                continue
            if search(images + [int(b)]):
                return True
        return False

    search([])
    if found:
        return Decision(found[0])
    return Decision(None, unresolved=budget["trials"] <= 0 or budget["nodes"] <= 0)


@dataclass
class Census:
    """Distinct configurations among end points: ``cluster`` (per point, best first), the
    ``matches`` of every point onto its cluster's representative (None for a representative),
    ``representatives`` (point indices), ``unresolved`` cluster pairs (every invariant agreed,
    no map found within the budget: the count of clusters is then an upper bound)."""

    cluster: np.ndarray
    matches: list
    representatives: list[int]
    unresolved: int
    symmetry: str


def census(points, order, group: Relabellings, tol: float) -> Census:
    """Cluster ``points`` (a list of (n, d) arrays), visited in ``order`` (best first, so each
    cluster's representative is its best point), by :func:`find_map` against representatives."""
    reps: list[tuple[int, Fingerprint]] = []
    cluster = np.full(len(points), -1, dtype=np.int64)
    matches: list = [None] * len(points)
    unresolved_pairs: set = set()
    for i in order:
        fp = Fingerprint(np.asarray(points[i], dtype=np.float64))
        pending = []
        for c, (_, rep) in enumerate(reps):
            dec = find_map(fp, rep, group, tol)
            if dec.match is not None:
                cluster[i], matches[i] = c, dec.match
                break
            if dec.unresolved:
                pending.append(c)
        else:
            reps.append((int(i), fp))
            cluster[i] = len(reps) - 1
            unresolved_pairs.update((c, len(reps) - 1) for c in pending)
    too_big = bool(points) and np.asarray(points[0]).shape[0] > MATCH_MAX_N and group.kind != "rotations"
    what = ("rotations only (n above the relabelling search's limit "
            f"{MATCH_MAX_N})") if too_big else group.describe()
    return Census(cluster, matches, [r for r, _ in reps], len(unresolved_pairs), what)
