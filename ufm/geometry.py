"""Optimal geometry in group-symmetric form: class-mean Grams, rank, collapse, embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ufm.structure import GroupGram, Groups, block_spectrum

#: an eigenvalue of the class-mean Gram counts towards the rank if above this times the largest
RANK_TOL = 1e-6
#: a class is collapsed if its within-class cosine is at least 1 - COLLAPSE_TOL
COLLAPSE_TOL = 1e-6


@dataclass(frozen=True)
class GroupGeometry:
    """A group-symmetric Gram of unit embeddings (``gram.diag`` is 1)."""

    groups: Groups
    gram: GroupGram
    rank_tol: float = RANK_TOL
    collapse_tol: float = COLLAPSE_TOL

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

    def class_cosines(self) -> np.ndarray:
        """k x k cosines between the normalised class means."""
        mu = self.class_mean_gram()
        norms = np.sqrt(np.clip(np.diag(mu), np.finfo(float).tiny, None))
        return np.clip(mu / np.outer(norms, norms), -1.0, 1.0)

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
    def class_means(self) -> np.ndarray:
        """k x rank(Mu) class means realising the class-mean Gram (norms = class_mean_norms)."""
        w, U = np.linalg.eigh(self.class_mean_gram())
        keep = w > self.rank_tol * w[-1]
        return (U[:, keep] * np.sqrt(w[keep]))[:, ::-1]

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


def simplex_etf(k: int) -> np.ndarray:
    """k unit vectors in R^(k-1) with pairwise inner products -1/(k-1) (k >= 2)."""
    if k == 1:
        return np.zeros((1, 0))
    M = np.eye(k) - 1.0 / k
    w, U = np.linalg.eigh(M)
    V = U[:, 1:] * np.sqrt(w[1:])
    return V / np.linalg.norm(V, axis=1, keepdims=True)
