"""Symmetry structure of full-batch problems: classes grouped into orbits of equal counts.

A *group* is a set of ``size`` classes of ``count`` samples each. The class-level reduction
uses one group per class; the orbit reduction merges classes of equal counts
(DESIGN section 4). A Gram matrix invariant under the symmetry is described by four
per-group/pair numbers, and so is its spectrum (:func:`block_spectrum`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Groups:
    """``size[g]`` classes of ``count[g]`` samples each; ``of_class[c]`` is class c's group."""

    count: np.ndarray  # (q,) samples per class in group g
    size: np.ndarray  # (q,) classes in group g
    of_class: np.ndarray  # (k,) group index of each class

    @classmethod
    def per_class(cls, counts) -> Groups:
        c = np.asarray(counts, dtype=np.int64)
        return cls(c, np.ones_like(c), np.arange(c.size))

    @classmethod
    def orbits(cls, counts) -> Groups:
        c = np.asarray(counts, dtype=np.int64)
        values, inverse, sizes = np.unique(c, return_inverse=True, return_counts=True)
        return cls(values, sizes.astype(np.int64), inverse)

    @property
    def q(self) -> int:
        return int(self.count.size)

    @property
    def k(self) -> int:
        return int(self.size.sum())

    @property
    def n(self) -> int:
        return int((self.size * self.count).sum())


@dataclass(frozen=True)
class GroupGram:
    """An n x n symmetric matrix with the group symmetry.

    ``diag[g]`` on the diagonal, ``within[g]`` between two samples of one class,
    ``same[g]`` between samples of two different classes of group g (unused if size 1),
    ``cross[g, h]`` between samples of groups g != h (diagonal of ``cross`` unused).
    """

    diag: np.ndarray
    within: np.ndarray
    same: np.ndarray
    cross: np.ndarray


def block_spectrum(groups: Groups, m: GroupGram):
    """Eigenvalues and multiplicities of a group-symmetric n x n matrix, in O(q^3).

    Three invariant subspaces: vectors summing to zero inside each class (eigenvalue
    ``diag - within``, multiplicity ``size (count - 1)``); class indicators summing to zero
    inside a group (``diag + (count-1) within - count same``, multiplicity ``size - 1``);
    group indicators, on which the matrix acts as the q x q matrix
    ``U_gg = diag + (count-1) within + (size-1) count same``,
    ``U_gh = sqrt(size_g count_g size_h count_h) cross_gh``.
    Returns ``(values, multiplicities)``, values ascending.
    """
    n_g, k_g = groups.count.astype(float), groups.size.astype(float)
    vals, mult = [], []
    has_within = groups.count >= 2
    vals.append((m.diag - m.within)[has_within])
    mult.append((groups.size * (groups.count - 1))[has_within])
    class_level = m.diag + (n_g - 1) * m.within
    has_same = groups.size >= 2
    vals.append((class_level - n_g * m.same)[has_same])
    mult.append((groups.size - 1)[has_same])
    w = np.sqrt(k_g * n_g)
    u = np.outer(w, w) * m.cross
    np.fill_diagonal(u, class_level + (k_g - 1) * n_g * np.where(has_same, m.same, 0.0))
    vals.append(np.linalg.eigvalsh(u))
    mult.append(np.ones(groups.q, dtype=np.int64))
    values = np.concatenate(vals)
    multiplicities = np.concatenate(mult).astype(np.int64)
    order = np.argsort(values, kind="stable")
    return values[order], multiplicities[order]
