"""Masks from one declaration: a loss's ``kind_of_relation()`` (NONE / POS / NEG indexed by the
relation bits SAME_GROUP | SAME_VIEW of a pair) is all it says about which pairs carry terms.
Everything else is derived here: |P(i)| and |N(i)| per sample or per type of sample (from how
many other samples stand in each relation), the dense masks of the plain forms and the masks of
a block of rows in the torch evaluators. Cross-view negatives (relation 0 only), same-view
negatives (relation SAME_VIEW only) and all negatives (both) are the same code.
"""

from __future__ import annotations

import functools

import numpy as np

from ufm.samples import SAME_GROUP, SAME_VIEW, Samples
from ufm.tables import NEG, POS

#: the term kinds that carry terms
KINDS = (POS, NEG)


def relation_counts(sg, sv, both, n, has_views: bool) -> np.ndarray:
    """(4, m): how many other samples stand in each relation to a sample whose group has ``sg``
    samples, its view ``sv`` and its (group, view) ``both`` (without views: group or not)."""
    sg, sv, both = (np.asarray(a, dtype=float) for a in (sg, sv, both))
    if not has_views:
        z = np.zeros_like(sg)
        return np.stack([n - sg, sg - 1.0, z, z])
    return np.stack([n - sg - sv + both, sg - both, sv - both, both - 1.0])


@functools.lru_cache(maxsize=32)
def sample_relation_counts(key, samples: Samples) -> np.ndarray:
    """(4, n) :func:`relation_counts` of every sample (``key``: the samples' identity)."""
    del key
    y, v, n = samples.labels, samples.views, samples.n
    sg = np.bincount(y, minlength=samples.k)[y]
    if v is None:
        return relation_counts(sg, sg, sg, n, False)
    V = int(v.max()) + 1
    both = np.bincount(y * V + v, minlength=samples.k * V)[y * V + v]
    return relation_counts(sg, np.bincount(v, minlength=V)[v], both, n, True)


def kind_counts(lut: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|P|, |N|) from relation counts (4, m) and the loss's lookup table."""
    return tuple((counts * (lut == k)[:, None]).sum(0) for k in KINDS)


def per_sample(lut: np.ndarray, samples: Samples) -> tuple[np.ndarray, np.ndarray]:
    """(|P(i)|, |N(i)|) of every sample."""
    return kind_counts(lut, sample_relation_counts(samples.key, samples))


def per_type(lut: np.ndarray, samples: Samples):
    """``(|P|, |N|, how many)`` per type of sample, without O(n) work where samples come in
    groups: one type per group (classes, or full instances x views), else one per sample."""
    if samples.grid is not None:
        N, V = samples.grid
        npos, nneg = kind_counts(lut, relation_counts([V], [N], [1], samples.n, True))
        return np.repeat(npos, N), np.repeat(nneg, N), np.full(N, float(V))
    if samples.views is None:
        c = np.asarray(samples.counts, dtype=float)
        npos, nneg = kind_counts(lut, relation_counts(c, c, c, samples.n, False))
        return npos, nneg, c
    npos, nneg = per_sample(lut, samples)
    return npos, nneg, np.ones_like(npos)


def uses_views(lut: np.ndarray) -> bool:
    """Whether a pair's kind depends on its views (then only instances x views permutations keep
    the loss)."""
    return any(lut[r] != lut[r ^ SAME_VIEW] for r in range(4))


def block_masks(lut, same, same_view, kinds=KINDS, first: int | None = 0, other_group_only: bool = False):
    """Boolean torch masks {kind: (rows, cols)} of a block from its same-group mask ``same`` and
    same-view mask ``same_view`` (None without views). ``first``: the column of the block's first
    row (the anchor itself is off every mask), None where the block holds no diagonal;
    ``other_group_only``: only the relations of other groups."""
    import torch

    out = {}
    for k in kinds:
        m = None
        for g in (0, SAME_GROUP):
            if other_group_only and g:
                continue
            views = [lut[g] == k, lut[g | SAME_VIEW] == k]
            if not any(views):
                continue
            part = same if g else ~same
            if same_view is not None and not all(views):
                part = part & (same_view if views[1] else ~same_view)
            elif same_view is None and not views[0]:
                continue  # without views, every pair is of relation g alone
            m = part.clone() if m is None else m | part  # never alias ``same``
        if m is not None:
            if first is not None and not other_group_only:
                rows = torch.arange(m.shape[-2], device=m.device)
                m[rows, rows + first] = False
            out[k] = m
    return out
