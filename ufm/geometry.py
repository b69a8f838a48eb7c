"""Optimal geometry: class-mean Grams, rank, collapse and embeddings of a solution.

Three forms, one interface (:class:`Geometry`): a class-symmetric Gram (:class:`GroupGeometry`,
exact for any n), an instances x views symmetric Gram (:class:`SchemeGeometry`; its "classes"
are the instances) and explicit embeddings (:class:`EmbeddingGeometry`, for problems without a
symmetry such as mini-batch losses).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ufm.structure import GroupGram, Groups, block_spectrum

#: an eigenvalue of the class-mean Gram counts towards the rank if above this times the largest
RANK_TOL = 1e-6
#: the rank where eigenvalues below RANK_TOL are part of the optimum (dropping them leaves a point
#: that is not certified): only round-off is left out
ROUNDOFF_RANK_TOL = 1e-12
#: a class is collapsed if its within-class cosine is at least 1 - COLLAPSE_TOL
COLLAPSE_TOL = 1e-6


class Geometry:
    """Shared derived quantities; subclasses give the class-mean Gram, within-class cosines,
    rank and embeddings."""

    rank_tol: float = RANK_TOL
    collapse_tol: float = COLLAPSE_TOL
    group_word: str = "class"

    def class_mean_gram(self) -> np.ndarray:
        raise NotImplementedError

    def within_cosines(self) -> np.ndarray:
        """Mean cosine between two samples of each class (1 for a class of one sample)."""
        raise NotImplementedError

    def class_mean_norms(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.class_mean_gram()), 0.0, None))

    def class_means(self) -> np.ndarray:
        """k x rank(Mu) class means realising the class-mean Gram (norms = class_mean_norms), in
        the basis of its eigenvectors (largest first)."""
        w, U = np.linalg.eigh(self.class_mean_gram())
        keep = w > self.rank_tol * max(w[-1], 0.0) if w.size and w[-1] > 0 else np.zeros(w.size, bool)
        return (U[:, keep] * np.sqrt(w[keep]))[:, ::-1]

    def class_cosines(self) -> np.ndarray:
        """k x k cosines between the normalised class means."""
        mu = self.class_mean_gram()
        norms = np.sqrt(np.clip(np.diag(mu), np.finfo(float).tiny, None))
        return np.clip(mu / np.outer(norms, norms), -1.0, 1.0)

    @property
    def collapsed(self) -> bool:
        return bool(np.all(self.within_cosines() >= 1 - self.collapse_tol))

    def summary(self) -> dict:
        """Extra numbers a report shows for this form (JSON ``geometry``)."""
        return {}


@dataclass(frozen=True)
class GroupGeometry(Geometry):
    """A group-symmetric Gram of unit embeddings (``gram.diag`` is 1)."""

    groups: Groups
    gram: GroupGram
    rank_tol: float = RANK_TOL
    collapse_tol: float = COLLAPSE_TOL
    group_word: str = "class"

    # class-mean quantities (the k x k matrix Mu of DESIGN section 4) --------------------
    @property
    def mean_sq_norm(self) -> np.ndarray:
        """Squared norm of each group's class means: d_g = (1 + (n_g - 1) a_g) / n_g."""
        n_g = self.groups.count.astype(float)
        return np.where(self.groups.count >= 2, (1 + (n_g - 1) * self.gram.within) / n_g, 1.0)

    def class_mean_norms(self) -> np.ndarray:
        return np.sqrt(np.clip(self.mean_sq_norm, 0.0, None))[self.groups.of_class]

    def class_mean_gram(self) -> np.ndarray:
        """k x k Gram of the class means."""
        g = self.groups.of_class
        mu = np.where(g[:, None] == g[None, :], self.gram.same[g][:, None], self.gram.cross[np.ix_(g, g)])
        np.fill_diagonal(mu, self.mean_sq_norm[g])
        return mu

    def within_cosines(self) -> np.ndarray:
        return np.where(self.groups.count >= 2, self.gram.within, 1.0)[self.groups.of_class]

    @cached_property
    def mean_spectrum(self):
        """Eigenvalues and multiplicities of the class-mean Gram, from its group structure."""
        grp = Groups(self.groups.size, np.ones_like(self.groups.size), np.arange(self.groups.q))
        d = self.mean_sq_norm
        return block_spectrum(grp, GroupGram(d, self.gram.same, self.gram.same, self.gram.cross))

    # rank and collapse ---------------------------------------------------------------
    @property
    def collapsed_groups(self) -> np.ndarray:
        return (self.groups.count < 2) | (self.gram.within >= 1 - self.collapse_tol)

    @property
    def collapsed(self) -> bool:
        return bool(self.collapsed_groups.all())

    @property
    def mean_rank(self) -> int:
        values, mult = self.mean_spectrum
        top = values[-1]
        return int(mult[values > self.rank_tol * top].sum()) if top > 0 else 0

    @property
    def rank(self) -> int:
        """rank of G: class-mean rank plus n_c - 1 per class that is not collapsed."""
        spread = ~self.collapsed_groups
        extra = (self.groups.size * (self.groups.count - 1))[spread].sum()
        return int(self.mean_rank + extra)

    # embeddings ----------------------------------------------------------------------
    def embeddings(self, lift: bool = False) -> np.ndarray:
        """Unit embeddings of dimension ``rank`` realising the Gram.

        Without ``lift``: one row per class (the normalised class means; requires collapse).
        With ``lift``: one row per sample, classes in order; a non-collapsed class gets its
        spread along a private regular simplex of n_c - 1 extra dimensions.
        """
        V = self.class_means()
        counts = self.groups.count[self.groups.of_class]
        if not lift:
            if not self.collapsed:
                raise ValueError("the optimum is not collapsed: ask for lift=True")
            return V / np.linalg.norm(V, axis=1, keepdims=True)
        spread = ~self.collapsed_groups[self.groups.of_class]
        blocks, extra_dims = [], int((counts[spread] - 1).sum())
        offset = V.shape[1]
        dim = offset + extra_dims
        for c, (v, m) in enumerate(zip(V, counts, strict=True)):
            H = np.zeros((m, dim))
            H[:, : V.shape[1]] = v
            if spread[c]:
                r2 = max(1.0 - float(v @ v), 0.0)
                H[:, offset : offset + m - 1] = np.sqrt(r2) * simplex_etf(m)
                offset += m - 1
            blocks.append(H)
        H = np.vstack(blocks)
        return H / np.linalg.norm(H, axis=1, keepdims=True)


@dataclass(frozen=True)
class SchemeGeometry(Geometry):
    """An instances x views symmetric Gram: positives p, same-view negatives s, others c
    (``ufm.symmetry.InstanceViewSymmetry``). Its classes are the instances: the class mean of
    instance a is the mean of its V views."""

    symmetry: object
    x: np.ndarray
    rank_tol: float = RANK_TOL
    collapse_tol: float = COLLAPSE_TOL
    group_word: str = "instance"

    @property
    def p(self) -> float:
        return float(self.x[0])

    def class_mean_gram(self) -> np.ndarray:
        N, V = self.symmetry.N, self.symmetry.V
        p, s, c = (float(v) for v in self.x)
        mu = np.full((N, N), (s + (V - 1) * c) / V)
        np.fill_diagonal(mu, (1 + (V - 1) * p) / V)
        return mu

    def within_cosines(self) -> np.ndarray:
        return np.full(self.symmetry.N, self.p if self.symmetry.V >= 2 else 1.0)

    @property
    def eigenvalues(self) -> np.ndarray:
        return self.symmetry.eigenvalues_of_gram(self.x)

    @property
    def rank(self) -> int:
        e = self.eigenvalues
        top = e.max()
        return int(self.symmetry.m[e > self.rank_tol * top].sum()) if top > 0 else 0

    def embeddings(self, lift: bool = False) -> np.ndarray:
        """One row per sample (``lift``; dimension ``rank``), or one per instance (the normalised
        instance means; requires aligned views)."""
        e = self.eigenvalues
        keep = np.flatnonzero(e > self.rank_tol * e.max())
        H = np.hstack([np.sqrt(e[k]) * self.symmetry.basis(k) for k in keep])
        H = H / np.linalg.norm(H, axis=1, keepdims=True)
        if lift:
            return H
        if not self.collapsed:
            raise ValueError("the views are not aligned: ask for lift=True")
        return H[:: self.symmetry.V]

    def summary(self) -> dict:
        p, s, c = (float(v) for v in self.x)
        return {"positive_cosine": p, "same_view_cosine": s, "other_cosine": c}


@dataclass(frozen=True)
class EmbeddingGeometry(Geometry):
    """Explicit unit embeddings H (n, d), samples ordered by class (``labels``)."""

    H: np.ndarray
    labels: np.ndarray
    k: int
    rank_tol: float = RANK_TOL
    collapse_tol: float = COLLAPSE_TOL
    group_word: str = "class"

    def class_mean_gram(self) -> np.ndarray:
        from ufm.metrics import class_means

        M = class_means(self.H, self.labels, self.k)
        return M @ M.T

    def within_cosines(self) -> np.ndarray:
        counts = np.bincount(self.labels, minlength=self.k).astype(float)
        sums = np.zeros((self.k, self.H.shape[1]))
        np.add.at(sums, self.labels, self.H)
        sq = np.einsum("ij,ij->i", sums, sums)
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = (sq - counts) / (counts * (counts - 1))
        return np.where(counts >= 2, np.clip(cos, -1.0, 1.0), 1.0)

    @property
    def rank(self) -> int:
        s = np.linalg.svd(self.H, compute_uv=False) ** 2
        return int((s > self.rank_tol * s[0]).sum()) if s.size and s[0] > 0 else 0

    def embeddings(self, lift: bool = False) -> np.ndarray:
        """The embeddings projected onto their rank (coordinates in an orthonormal basis of the
        row space), as unit rows; H itself where its rank is its dimension (no projection, so
        none of its round-off: at small tau a point's positives are equidistant to 1e-16 of
        their distances, which an SVD's rotation would not keep)."""
        r = self.rank
        if r == self.H.shape[1]:
            H = self.H / np.linalg.norm(self.H, axis=1, keepdims=True)
        else:
            U, s, Vt = np.linalg.svd(self.H, full_matrices=False)
            H = U[:, :r] * s[:r]
            H = H / np.linalg.norm(H, axis=1, keepdims=True)
        if lift:
            return H
        if not self.collapsed:
            raise ValueError("the solution is not collapsed: ask for lift=True")
        from ufm.metrics import class_means

        M = class_means(H, self.labels, self.k)
        return M / np.linalg.norm(M, axis=1, keepdims=True)


def simplex_etf(k: int) -> np.ndarray:
    """k unit vectors in R^(k-1) with pairwise inner products -1/(k-1) (k >= 2)."""
    if k == 1:
        return np.zeros((1, 0))
    M = np.eye(k) - 1.0 / k
    w, U = np.linalg.eigh(M)
    V = U[:, 1:] * np.sqrt(w[1:])
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def complement_basis(n: int) -> np.ndarray:
    """Orthonormal basis (n x (n - 1)) of the vectors summing to zero."""
    if n == 1:
        return np.zeros((1, 0))
    w, U = np.linalg.eigh(np.eye(n) - 1.0 / n)
    return U[:, 1:]
