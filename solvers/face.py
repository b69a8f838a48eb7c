"""The optimal face of a mini-batch program: is the optimum unique, which rank is the lowest on
it, and a representative that says only what holds of some optimum.

A mini-batch loss sees only the pairs inside its batches. Samples in no batch, or groups of
batches that share no sample, are *components* of the batch graph (samples joined when a batch
with anchors holds both): rotating one component against the others changes the Gram matrix
(G_AB -> -G_AB under -I, or an orthogonal pair made parallel) and not the loss, so with two or
more components the optimum is not unique (``unique`` False, a proof by construction).

Within a component the test is Mangasarian's characterisation of the solution set of a convex
program (Mangasarian 1988, "A simple characterization of solution sets of convex programs",
Oper. Res. Lett. 7(1)): the gradient is the same at every optimum, so every optimal G has
<S, G> = <S, G*> = 0 for the certificate's S = grad f(G*) - Diag(lambda) >= 0, i.e. its range
lies in null(S) = span(V): G = V M V^T with M >= 0 and diag(V M V^T) = 1. Where the linear map
M -> diag(V M V^T) on symmetric r x r matrices is injective, M, hence G, is unique (``unique``
True). Where null(S) is not clearly separated from the rest of S's spectrum, or the map is not
injective, the test cannot tell (``unique`` None: unknown).

Representative: each component keeps its own optimal Gram block (the loss sees nothing else);
the components are placed in a common subspace of the largest one's rank, each by the rotation
(orthogonal Procrustes, Schoenemann 1966) that best aligns its class means with the classes it
shares with the first component, and a sample in no batch sits on its class's mean direction
(the first direction where its class has no other member). The representative is an optimum of
the lowest rank on the face when every component's block is unique (``min_rank_exact``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: eigenvalues of S (over max |S| row sum) at most this are its null space ...
NULL_TOL = 1e-9
#: ... and at least this its range; in between the null space is not decidable in float64
RANGE_TOL = 1e-6
#: smallest singular value of the diag map (over its largest) for injectivity
INJECTIVE_TOL = 1e-8
#: share of the point's trace that may lie on S's range (round-off) for the test to apply
RANGE_WEIGHT_TOL = 1e-9


@dataclass
class OptimalFace:
    """What the optimal set of a mini-batch program is known to be."""

    unique: bool | None  # None: unknown
    reason: str
    components: int  # components of the batch graph (a sample in no batch is one)
    free_samples: int  # samples in no batch with anchors
    H: np.ndarray  # the representative (n, r)
    min_rank: int  # rank of the representative
    min_rank_exact: bool  # no optimum has a lower rank

    def to_dict(self) -> dict:
        return {"optimum_unique": "unknown" if self.unique is None else self.unique,
                "optimum_unique_reason": self.reason, "batch_components": self.components,
                "samples_in_no_batch": self.free_samples, "lowest_rank": self.min_rank,
                "lowest_rank_exact": self.min_rank_exact}


def _live_batches(loss, samples) -> list[np.ndarray]:
    """The batches with anchors (a batch without any adds nothing to the loss)."""
    return [np.asarray(idx) for idx, sub in samples.batch_subsets if idx.size and loss.anchors(sub) > 0]


def _graph(loss, samples) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(component of each sample, whether it is in some batch with anchors, those batches)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = samples.n
    live = _live_batches(loss, samples)
    covered = np.zeros(n, dtype=bool)
    for idx in live:
        covered[idx] = True
    r = np.concatenate([np.full(idx.size - 1, idx[0]) for idx in live]) if live else np.zeros(0, int)
    c = np.concatenate([idx[1:] for idx in live]) if live else np.zeros(0, int)
    graph = coo_matrix((np.ones(r.size), (r, c)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    return comp, covered, live


def batch_components(loss, samples) -> tuple[np.ndarray, np.ndarray]:
    """(component of each sample, whether the sample is in some batch with anchors)."""
    return _graph(loss, samples)[:2]


def component_parts(comp: np.ndarray) -> list[np.ndarray]:
    """The positions of each component, largest first (ties by first position): the order in
    which :func:`representative` places them."""
    parts = [np.flatnonzero(comp == c) for c in np.unique(comp)]
    parts.sort(key=lambda idx: (-idx.size, idx[0]))
    return parts


def component_problems(loss, samples) -> tuple[list[tuple[np.ndarray, object]], np.ndarray, np.ndarray]:
    """The batch graph's components that the loss sees, each as samples of their own:
    ``([(positions, Samples), ...], component of each sample, whether it is in a batch)``. A
    component of one batch is that batch's samples without batches (its own full problem); one of
    several keeps its batches, re-indexed to positions in the component. The loss is the sum of the
    components' losses (each batch is reduced by its own anchors), so their optima, put side by
    side, are an optimum of the whole program."""
    comp, covered, live = _graph(loss, samples)
    out = []
    for c in np.unique(comp[covered]):
        idx = np.flatnonzero(comp == c)
        inside = [b for b in live if comp[b[0]] == c]
        sub = samples.subset(idx)
        if len(inside) > 1:
            sub = sub.with_batches([np.searchsorted(idx, b) for b in inside])
        out.append((idx, sub))
    return out, comp, covered


def _rows(H: np.ndarray, tol: float):
    """H as unit rows (``ufm.geometry.EmbeddingGeometry``: its rank, and with ``embeddings(lift=True)``
    its rows' coordinates in an orthonormal basis of their span)."""
    from ufm.geometry import EmbeddingGeometry

    return EmbeddingGeometry(H, np.zeros(H.shape[0], dtype=np.int64), 1, rank_tol=tol)


def unique_on_block(S: np.ndarray, G: np.ndarray | None = None) -> tuple[bool | None, str]:
    """Mangasarian's test on one block of S (module docstring), at the point whose Gram block is
    ``G``: the point is certified within a tolerance, not exact, so where G itself has weight on
    S's range (trace of G there above :data:`RANGE_WEIGHT_TOL` of its trace) null(S) does not
    bound the optimal set and the test cannot tell."""
    w, U = np.linalg.eigh(0.5 * (S + S.T))
    scale = float(np.abs(S).sum(axis=1).max()) or 1.0
    rel = w / scale
    null = rel <= NULL_TOL
    if np.any((rel > NULL_TOL) & (rel < RANGE_TOL)):
        return None, (f"the null space of S is not separated from its range in float64 (an eigenvalue "
                      f"{float(rel[(rel > NULL_TOL) & (rel < RANGE_TOL)][0]):.1e} x |S|)")
    if G is not None and (~null).any():
        R = U[:, ~null]
        weight = float(np.einsum("ij,ij->", R, G @ R)) / max(float(np.trace(G)), 1e-300)
        if weight > RANGE_WEIGHT_TOL:
            return None, (f"the point shown has {weight:.1e} of its trace on the range of S (eigenvalues "
                          f"from {float(rel[~null].min()):.1e} x |S|): it is optimal within the "
                          "tolerance, not exactly, so null(S) does not bound the optimal set")
    V = U[:, null]
    r = V.shape[1]
    a, b = np.triu_indices(r)
    A = V[:, a] * V[:, b]  # diag(V E_ab V^T) up to a factor, one column per symmetric basis matrix
    if A.shape[1] > A.shape[0]:
        return None, f"null(S) has dimension {r}: M -> diag(V M V^T) cannot be injective"
    s = np.linalg.svd(A, compute_uv=False)
    if s.size == 0 or s[-1] > INJECTIVE_TOL * s[0]:
        return True, f"M -> diag(V M V^T) is injective on null(S) of dimension {r} (Mangasarian 1988)"
    return None, (f"M -> diag(V M V^T) is not injective on null(S) of dimension {r}: the test cannot "
                  "tell")


def optimal_face(loss, samples, H: np.ndarray, rank_tol: float, certified: bool = True) -> OptimalFace:
    """The optimal face at an optimum H (n, d) of a mini-batch problem. Where H is not
    ``certified`` only the components speak (Mangasarian's test needs an optimum)."""
    from solvers.certificate import dense_certificate_matrix

    H = np.asarray(H, dtype=np.float64)
    comp, covered = batch_components(loss, samples)
    parts = component_parts(comp)
    if certified:
        S = dense_certificate_matrix(loss, H, samples)
        verdicts = [unique_on_block(S[np.ix_(idx, idx)], H[idx] @ H[idx].T) if idx.size > 1
                    else (True, "one sample") for idx in parts]
    else:
        verdicts = [(None, "the point is not certified: no test of the optimal set")]
    blocks_unique = all(v is True for v, _ in verdicts)
    if len(parts) > 1:
        free = int((~covered).sum())
        unique = False
        plural = "s" if free != 1 else ""
        reason = (f"{len(parts)} components of the batch graph ({free} sample{plural} in no batch): "
                  "each can be rotated against the others without changing the loss")
    else:
        unique, reason = verdicts[0]
    rep = representative(H, samples, parts, rank_tol, covered)
    return OptimalFace(unique, reason, len(parts), int((~covered).sum()), rep, _rows(rep, rank_tol).rank,
                       blocks_unique)


def _coordinates(H: np.ndarray, tol: float) -> np.ndarray:
    """H's rows in an orthonormal basis of their span (n, rank), by projection onto the top right
    singular vectors: equal rows stay bitwise equal (a collapsed class stays exactly collapsed, which
    the certificate at small tau needs: its excess is below the round-off of a re-factored spread)."""
    r = _rows(H, tol).rank
    return H @ np.linalg.svd(H, full_matrices=False)[2][:r].T


def representative(H, samples, parts, rank_tol, covered) -> np.ndarray:
    """The components ``parts`` (position arrays, largest first) of the rows of H in one subspace,
    aligned on the classes they share (module docstring); a sample off ``covered`` (in no batch)
    sits on its class's direction."""
    if len(parts) == 1:
        return H
    labels = np.asarray(samples.labels)
    coords = [_coordinates(H[idx], rank_tol) for idx in parts]
    r = max(max(c.shape[1] for c in coords), 1)
    out = np.zeros((H.shape[0], r))
    ref = {}  # class -> mean direction in the common subspace (from the components placed so far)
    for idx, X in zip(parts, coords, strict=True):
        if X.shape[1] == 0:
            continue
        if not covered[idx].all():  # a sample in no batch: its class's direction, else the first axis
            for i in idx:
                direction = ref.get(int(labels[i]))
                out[i] = direction if direction is not None else np.eye(r)[0]
            continue
        cls = labels[idx]
        shared = [c for c in np.unique(cls) if int(c) in ref]
        Q = np.eye(X.shape[1], r)
        if shared:
            means = np.stack([X[cls == c].sum(0) for c in shared])  # (m, r_c), weighted by count
            target = np.stack([ref[int(c)] for c in shared])  # (m, r)
            U, _, Vt = np.linalg.svd(means.T @ target, full_matrices=False)  # (r_c, r)
            Q = U @ Vt
        Y = X @ Q
        out[idx] = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        for c in np.unique(cls):
            if int(c) not in ref:
                m = out[idx][cls == c].sum(0)
                nm = np.linalg.norm(m)
                ref[int(c)] = m / nm if nm > 0 else out[idx][cls == c][0]
    return out
