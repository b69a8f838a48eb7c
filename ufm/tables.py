"""Rows of a Gram matrix as the losses see them: anchors and the entries of their rows.

Every loss of the family is a sum over anchors i of a function of row i of G, with each entry
(i, l) playing a part fixed by the relation of the pair (same group, same view). A *table* lists
those rows once per anchor orbit of a symmetry: orbit a has ``anchor_weight[a]`` anchors, and its
row holds, in term t, ``mult[a, t]`` entries equal to value ``value_index[a, t]`` of a reduced
Gram vector x, with relation ``relation[a, t]``. The same loss code then evaluates

* the n x n matrix (:class:`DenseTable`: one orbit per sample, x = G row-major), and
* a symmetry-reduced G (``ufm.symmetry``: a handful of orbits and values, any n),

and returns per-entry derivatives (rows = anchors), which :meth:`Table.scatter` sums into the
derivative of f with respect to each reduced value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ufm.samples import Samples

#: term kinds a loss assigns from the relation of a pair
NONE, POS, NEG = 0, 1, 2


@dataclass(frozen=True)
class RowParts:
    """Positive and negative terms of table rows: masks, their multiplicities, |P| and |N| per
    row, and the rows that anchor a term (the loss's rule ``is_anchor(|P|, |N|)``, weight > 0;
    ``Loss.row_parts``)."""

    pos: np.ndarray
    neg: np.ndarray
    mp: np.ndarray
    mn: np.ndarray
    npos: np.ndarray
    nneg: np.ndarray
    anchors: np.ndarray

    @classmethod
    def of(cls, mult, kind, weight, is_anchor) -> RowParts:
        pos, neg = kind == POS, kind == NEG
        mp, mn = np.where(pos, mult, 0.0), np.where(neg, mult, 0.0)
        npos, nneg = mp.sum(axis=1), mn.sum(axis=1)
        return cls(pos, neg, mp, mn, npos, nneg, is_anchor(npos, nneg) & (np.asarray(weight) > 0))


@dataclass(eq=False)
class Table:
    anchor_weight: np.ndarray  # (A,) anchors in each orbit
    value_index: np.ndarray  # (A, T) which reduced value each term holds
    mult: np.ndarray  # (A, T) entries of the anchor's row with that value (0: padding)
    relation: np.ndarray  # (A, T) int8 relation bits (ufm.samples.SAME_GROUP | SAME_VIEW)
    transpose: np.ndarray  # (nv,) the value of the transposed entries
    nv: int
    #: True where ``anchor_weight`` already holds the reduction (a mini-batch table: each batch's
    #: rows weighted by its own ``Loss._batch_weights``), so the forms add no scale of their own
    weighted = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.value_index.shape

    def gather(self, x: np.ndarray) -> np.ndarray:
        """(A, T) term values of a reduced vector x."""
        return x[self.value_index]

    def scatter(self, W: np.ndarray) -> np.ndarray:
        """Sum over all entries of per-entry row derivatives W (A, T): the derivative of f with
        respect to each reduced value (entries (i, l) and (l, i) of a symmetric value both count)."""
        w = (self.anchor_weight[:, None] * self.mult * W).ravel()
        return np.bincount(self.value_index.ravel(), weights=w, minlength=self.nv)

    @cached_property
    def pairs(self) -> np.ndarray:
        """Ordered pairs (i, l), i != l, holding each value."""
        return self.scatter(np.ones(self.shape))

    def symmetric_entries(self, totals: np.ndarray) -> np.ndarray:
        """Per-entry value of the symmetrised gradient (g + g^T) / 2 from the totals of
        :meth:`scatter` (0 where a value has no entries)."""
        num = totals + totals[self.transpose]
        den = self.pairs + self.pairs[self.transpose]
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    def row_sums(self, x_terms: np.ndarray) -> np.ndarray:
        """Sum over each anchor's row of a per-entry quantity given per term (A,)."""
        return (self.mult * x_terms).sum(axis=1)

    def kinds(self, kind_of_relation: np.ndarray) -> np.ndarray:
        """(A, T) term kinds (NONE, POS, NEG) from a lookup table indexed by relation bits;
        padding terms are NONE (cached per lookup table)."""

        def make():
            k = kind_of_relation[self.relation]
            return np.where(self.mult > 0, k, NONE).astype(np.int8)

        return self.cached(("kinds", kind_of_relation.tobytes()), make)

    def cached(self, key, make):
        """A value derived from the table alone, computed once (per key)."""
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]


class DenseTable(Table):
    """The n x n matrix itself: anchor i's row is row i (the diagonal is padding); x = G.ravel()."""

    def __init__(self, samples: Samples):
        n = samples.n
        self.n = n
        self.anchor_weight = np.ones(n)
        self.nv = n * n
        idx = np.arange(n)
        self.relation = samples.relation(idx, idx)
        mult = np.ones((n, n))
        np.fill_diagonal(mult, 0.0)
        self.mult = mult

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    @cached_property
    def value_index(self) -> np.ndarray:  # only for generic callers; the fast paths avoid it
        return np.arange(self.n * self.n).reshape(self.n, self.n)

    @cached_property
    def transpose(self) -> np.ndarray:
        return np.arange(self.n * self.n).reshape(self.n, self.n).T.ravel()

    def gather(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).reshape(self.n, self.n)

    def scatter(self, W: np.ndarray) -> np.ndarray:
        return (self.mult * W).ravel()

    @cached_property
    def pairs(self) -> np.ndarray:
        return self.mult.ravel()

    def symmetric_entries(self, totals: np.ndarray) -> np.ndarray:
        T = totals.reshape(self.n, self.n)
        return (0.5 * (T + T.T)).ravel()
