"""Symmetries of a loss: the permutations of samples that leave it unchanged (DESIGN section 4).

For a full-batch loss convex in G, averaging an optimum over such permutations gives an optimum,
so the relaxation may be restricted to invariant G: a handful of numbers whatever n. A symmetry
here supplies that reduced parametrisation (a vector x of the distinct off-diagonal values),
its PSD conditions (as a CVXPY program and as unit-vector factors for the fast solver), the
spectrum of an invariant matrix (for the exact certificate in O(q^3)), the table of rows the
losses evaluate (``ufm.tables``), the projection of any G or H onto it, and the lift back to
embeddings.

* :class:`ClassSymmetry`: permutations inside each class (``reduced``, one group per class) and
  of classes of equal counts (``orbit``): losses that only ask whether two samples share a class
  (or instance): SupCon, SupCon-in, InfoNCE with all negatives, DCL, alpha-CL.
* :class:`InstanceViewSymmetry`: instances permuted together in every view, and views permuted
  together in every instance (S_N x S_V): losses whose negatives depend on the view
  (InfoNCE same-view, DHEL, KCL). G has three values: positives p (same instance), same-view
  negatives s, and the rest c.
* :class:`BatchTypeSymmetry`: mini-batches, permutations inside each *type* (a class and the set
  of batches holding the sample): the class reduction over types, with one loss row per batch
  and type (losses that only ask whether two samples share a class).
* no symmetry (the full n x n program): :class:`ufm.tables.DenseTable`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property

import numpy as np

from ufm.samples import SAME_GROUP, SAME_VIEW, Samples
from ufm.structure import GroupGram, Groups, block_spectrum
from ufm.tables import Table


class Symmetry(ABC):
    """A group of sample permutations and the reduced parametrisation of invariant G."""

    name: str = ""
    samples: Samples

    @property
    def n(self) -> int:
        return self.samples.n

    @abstractmethod
    def describe(self) -> str:
        """One line for reports."""

    # ---- reduced values x (the distinct off-diagonal entries of an invariant G) ---------------
    #: rows of an invariant G, one per anchor orbit (``ufm.tables``); subclasses build it once
    table: Table

    @abstractmethod
    def expand(self, x: np.ndarray, diag=None) -> np.ndarray:
        """The n x n matrix with off-diagonal values x and diagonal ``diag`` (per anchor orbit;
        default 1)."""

    @abstractmethod
    def average(self, G: np.ndarray) -> np.ndarray:
        """x of the average of an n x n G over the symmetry (exact for convex f: no worse)."""

    @abstractmethod
    def average_embeddings(self, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, distances 1 - x) of the averaged H H^T, in O(n d), distances inside groups from
        centred coordinates (full relative precision near collapse)."""

    @abstractmethod
    def spectrum(self, x: np.ndarray, diag: np.ndarray):
        """(eigenvalues in ascending order, multiplicities) of the invariant matrix (x, diag)."""

    @property
    def spectral_table(self) -> Table:
        """One row per anchor orbit of an invariant n x n matrix, over all its entries (the rows
        the certificate's diagonal and row sums are taken over): :attr:`table`, except where the
        loss's rows are finer (:class:`BatchTypeSymmetry`)."""
        return self.table

    def row_scale(self, x: np.ndarray, diag: np.ndarray) -> float:
        """Largest absolute row sum of the invariant matrix (x, diag)."""
        t = self.spectral_table
        return float((np.abs(diag) + t.row_sums(np.abs(t.gather(x)))).max())

    # ---- unit-vector factors (Burer-Monteiro on the reduced program) ---------------------------
    @abstractmethod
    def initial_factors(self, seed: int = 0) -> np.ndarray:
        """Unit rows Z: the solver's start (collapse coordinates at 0)."""

    @abstractmethod
    def free_mask(self, release: np.ndarray) -> np.ndarray:
        """Which entries of Z are optimised; ``release`` frees collapse coordinates."""

    @property
    @abstractmethod
    def collapse_units(self) -> int:
        """How many release switches there are (classes per group, view spaces, ...)."""

    @abstractmethod
    def gram_from_factors(self, Z: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def distances_from_factors(self, Z: np.ndarray) -> np.ndarray:
        """1 - x from the factors without cancellation (exact 0 at collapse)."""

    @abstractmethod
    def factors_from_gram(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def factor_gradient(self, Z: np.ndarray, totals: np.ndarray):
        """(d obj / d Z, per-row curvature estimate) from d obj / d x (``totals``)."""

    @abstractmethod
    def perturb_released(self, Z: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Z with the newly released units moved off collapse (along their spread directions)."""

    @abstractmethod
    def release_test(self, values_by_unit: np.ndarray) -> np.ndarray:
        """Units whose eigenvalue of the certificate matrix is negative (given per unit)."""

    @abstractmethod
    def unit_eigenvalues(self, x: np.ndarray, diag: np.ndarray) -> np.ndarray:
        """Eigenvalue of the invariant matrix on each collapse unit's space (spread directions)."""

    # ---- conic program ---------------------------------------------------------------------
    @abstractmethod
    def cvxpy_parametrisation(self):
        """(x expression (nv,), constraints, recover(): x values of the solution)."""

    # ---- geometry -------------------------------------------------------------------------------
    @abstractmethod
    def geometry(self, x: np.ndarray):
        """The ``ufm.geometry`` object of an invariant Gram."""


# =================================================================================================
# classes (and orbits of equal counts)


class ClassSymmetry(Symmetry):
    """Permutations inside classes; with ``orbits`` also of classes of equal counts.

    x = [within (q) | same (q) | cross (q x q, row-major)] over q groups (DESIGN section 4):
    ``within[g]`` between two samples of one class of group g, ``same[g]`` between two classes of
    group g, ``cross[g, h]`` between groups.
    """

    def __init__(self, samples: Samples, orbits: bool = True):
        self.samples = samples
        self.groups = Groups.orbits(samples.counts) if orbits else Groups.per_class(samples.counts)
        self.name = "orbit" if orbits else "reduced"

    def describe(self) -> str:
        g = self.groups
        word = self.samples.group_word
        words = "classes" if word == "class" else word + "s"
        if self.name == "orbit":
            return f"permutations inside each {word} and of {words} of equal size: {g.q} group(s) of {words}"
        return f"permutations inside each {word}: {g.q} {words}"

    @property
    def q(self) -> int:
        return self.groups.q

    # ---- x <-> GroupGram ----------------------------------------------------------------------
    def to_groupgram(self, x: np.ndarray, diag=None) -> GroupGram:
        q = self.q
        d = np.ones(q) if diag is None else np.asarray(diag, dtype=float)
        return GroupGram(d, x[:q], x[q : 2 * q], x[2 * q :].reshape(q, q))

    def from_groupgram(self, m: GroupGram) -> np.ndarray:
        return np.concatenate([m.within, m.same, np.asarray(m.cross).ravel()])

    @cached_property
    def table(self) -> Table:
        g = self.groups
        q = g.q
        n_g, k_g = g.count.astype(float), g.size.astype(float)
        T = q + 2
        value = np.empty((q, T), dtype=np.int64)
        value[:, 0] = np.arange(q)
        value[:, 1] = q + np.arange(q)
        value[:, 2:] = 2 * q + np.arange(q)[:, None] * q + np.arange(q)[None, :]
        mult = np.zeros((q, T))
        mult[:, 0] = n_g - 1
        mult[:, 1] = (k_g - 1) * n_g
        mult[:, 2:] = (k_g * n_g)[None, :]
        mult[:, 2:][np.eye(q, dtype=bool)] = 0.0
        relation = np.zeros((q, T), dtype=np.int8)
        relation[:, 0] = SAME_GROUP
        transpose = np.concatenate(
            [np.arange(2 * q), 2 * q + (np.arange(q)[None, :] * q + np.arange(q)[:, None]).ravel()]
        )
        return _ClassTable(k_g * n_g, value, mult, relation, transpose, 2 * q + q * q)

    def expand(self, x, diag=None) -> np.ndarray:
        m = self.to_groupgram(x, diag)
        c = np.asarray(self.samples.counts)
        y = np.repeat(np.arange(c.size), c)
        gi = self.groups.of_class[y]
        G = np.where(
            y[:, None] == y[None, :],
            m.within[gi][:, None],
            np.where(gi[:, None] == gi[None, :], m.same[gi][:, None], m.cross[np.ix_(gi, gi)]),
        )
        np.fill_diagonal(G, m.diag[gi])
        return G

    def _class_level(self, block_sums, diag_sums) -> GroupGram:
        """Per-class average (one group per class) from class block sums, merged into groups."""
        c = np.asarray(self.samples.counts, dtype=float)
        pairs = c * (c - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            within = np.where(c >= 2, (np.diag(block_sums) - diag_sums) / pairs, 1.0)
        cross = block_sums / np.outer(c, c)
        return self._merge(within, cross)

    def _merge(self, within_c, cross_c) -> GroupGram:
        """Average class-level values over the classes of each group."""
        g = self.groups
        q, of = g.q, g.of_class
        k = of.size
        E = np.zeros((k, q))
        E[np.arange(k), of] = 1.0
        size = g.size.astype(float)
        within = (E.T @ within_c) / size
        off = cross_c.copy()
        np.fill_diagonal(off, 0.0)
        sums = E.T @ off @ E
        with np.errstate(divide="ignore", invalid="ignore"):
            same = np.where(g.size >= 2, np.diag(sums) / (size * (size - 1)), 0.0)
            cross = sums / np.outer(size, size)
        np.fill_diagonal(cross, 0.0)
        return GroupGram(np.ones(q), within, same, cross)

    def average(self, G) -> np.ndarray:
        c = np.asarray(self.samples.counts)
        y = np.repeat(np.arange(c.size), c)
        E = np.zeros((y.size, c.size))
        E[np.arange(y.size), y] = 1.0
        return self.from_groupgram(
            self._class_level(E.T @ G @ E, np.bincount(y, weights=np.diag(G), minlength=c.size))
        )

    def average_embeddings(self, H):
        from ufm.metrics import class_centred

        c = np.asarray(self.samples.counts)
        k = c.size
        y = self.samples.labels
        sums = np.zeros((k, H.shape[1]))
        np.add.at(sums, y, H)
        diag_sums = np.bincount(y, weights=np.einsum("ij,ij->i", H, H), minlength=k)
        m = self._class_level(sums @ sums.T, diag_sums)
        # within-class distances from class-centred coordinates
        U = class_centred(H, y, k)
        usum = np.zeros((k, H.shape[1]))
        np.add.at(usum, y, U)
        sq = np.bincount(y, weights=np.einsum("ij,ij->i", U, U), minlength=k)
        pairs = np.maximum(c * (c - 1.0), 1.0)
        dw = np.where(c >= 2, np.maximum((c * sq - np.einsum("ij,ij->i", usum, usum)) / pairs, 0.0), 0.0)
        dwg = self._merge(dw, np.zeros((k, k))).within
        x = self.from_groupgram(m)
        dist = 1.0 - x
        dist[: self.q] = dwg
        return x, dist

    def spectrum(self, x, diag):
        return block_spectrum(self.groups, self.to_groupgram(x, diag))

    # ---- factors z_g = (x_g, s_g, t_g) ---------------------------------------------------------
    # x_g: the group mean of the class means (C = Gram of sqrt(k_g) x_g; q columns so that every
    # PSD C is reachable); s_g spreads the k_g classes of the group along a private regular
    # simplex (same_g = |x_g|^2 - s_g^2 / (k_g - 1)); t_g spreads the samples of each class
    # (within_g = |x_g|^2 + s_g^2 - t_g^2 / (n_g - 1)); class-mean norm^2 is 1 - t_g^2.

    @property
    def collapse_units(self) -> int:
        return self.q

    def initial_factors(self, seed: int = 0) -> np.ndarray:
        """Group means on a regular simplex, classes spread inside groups, samples collapsed,
        plus a small seeded perturbation that breaks the simplex's symmetry."""
        g = self.groups
        q = g.q
        rng = np.random.default_rng(seed)
        X = np.eye(q) - 1.0 / q if q > 1 else np.ones((1, 1))
        X = X + 1e-3 * rng.standard_normal((q, q)) / np.sqrt(q)
        norms = np.linalg.norm(X, axis=1)
        X = X / np.where(norms > 0, norms, 1.0)[:, None]
        s = np.where(g.size >= 2, 1.0, 0.0)
        Z = np.column_stack([X, s, np.zeros(q)])
        return Z / np.linalg.norm(Z, axis=1, keepdims=True)

    def free_mask(self, release) -> np.ndarray:
        g = self.groups
        free = np.ones((g.q, g.q + 2))
        free[:, -2] = g.size >= 2
        free[:, -1] = np.asarray(release, dtype=bool) & (g.count >= 2)
        return free

    def gram_from_factors(self, Z) -> np.ndarray:
        g = self.groups
        X, s, t = Z[:, :-2], Z[:, -2], Z[:, -1]
        n_g, k_g = g.count.astype(float), g.size.astype(float)
        P = X @ X.T
        p = np.diag(P).copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            within = np.where(g.count >= 2, p + s**2 - t**2 / (n_g - 1), 1.0)
            same = np.where(g.size >= 2, p - s**2 / (k_g - 1), 0.0)
        np.fill_diagonal(P, 0.0)
        return np.concatenate([within, same, P.ravel()])

    def distances_from_factors(self, Z) -> np.ndarray:
        """Inside a class 1 - within_g = t_g^2 n_g / (n_g - 1); between classes of a group
        1 - same_g = t_g^2 + s_g^2 k_g / (k_g - 1) (exact 0 at collapse, where 1 - G is round-off)."""
        g = self.groups
        X, s, t = Z[:, :-2], Z[:, -2], Z[:, -1]
        n_g, k_g = g.count.astype(float), g.size.astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            within = np.where(g.count >= 2, t**2 * n_g / (n_g - 1), 0.0)
            same = np.where(g.size >= 2, t**2 + s**2 * k_g / (k_g - 1), 0.0)
        D = 1.0 - X @ X.T
        np.fill_diagonal(D, 0.0)
        return np.concatenate([within, same, D.ravel()])

    def factors_from_gram(self, x) -> np.ndarray:
        g = self.groups
        m = self.to_groupgram(x)
        q = g.q
        k_g, n_g = g.size.astype(float), g.count.astype(float)
        d = np.where(g.count >= 2, (1 + (n_g - 1) * m.within) / n_g, 1.0)
        d = np.clip(d, 0.0, 1.0)
        same = np.where(g.size >= 2, m.same, 0.0)
        C = np.sqrt(np.outer(k_g, k_g)) * m.cross
        np.fill_diagonal(C, d + (k_g - 1) * same)
        w, U = np.linalg.eigh(C)
        X = U * np.sqrt(np.clip(w, 0.0, None)) / np.sqrt(k_g)[:, None]
        Xr = X[:, ::-1][:, :q]
        s2 = np.where(g.size >= 2, np.clip(d - same, 0.0, None) * (k_g - 1) / k_g, 0.0)
        t2 = np.clip(1.0 - d, 0.0, None)
        Z = np.column_stack([Xr, np.sqrt(s2), np.sqrt(t2)])
        return Z / np.linalg.norm(Z, axis=1, keepdims=True)

    def factor_gradient(self, Z, totals):
        """Chain rule through the factors. Also a diagonal preconditioner per row: absolute row
        sums of the Hessian's main block 2 Gamma (Gamma = gradient in the group-mean Gram)."""
        g = self.groups
        q = g.q
        k_g, n_g = g.size.astype(float), g.count.astype(float)
        X, s, t = Z[:, :-2], Z[:, -2], Z[:, -1]
        d_within, d_same = totals[:q], totals[q : 2 * q]
        cr = totals[2 * q :].reshape(q, q)
        Gam = 0.5 * (cr + cr.T)
        np.fill_diagonal(Gam, d_within + d_same)
        gZ = np.empty_like(Z)
        gZ[:, :-2] = 2.0 * Gam @ X
        with np.errstate(divide="ignore", invalid="ignore"):
            gZ[:, -2] = np.where(g.size >= 2, 2 * s * (d_within - d_same / (k_g - 1)), 0.0)
            gZ[:, -1] = np.where(g.count >= 2, -2 * t * d_within / (n_g - 1), 0.0)
        # |d_within| + |d_same| rather than |their sum|: the two cancel when only their
        # difference matters (a balanced orbit), which would leave no curvature estimate
        absgam = np.abs(Gam)
        np.fill_diagonal(absgam, np.abs(d_within) + np.abs(d_same))
        return gZ, 2.0 * absgam.sum(axis=1)

    def unit_eigenvalues(self, x, diag) -> np.ndarray:
        """Within-class eigenvalue diag - within of each group (direction: spreading a class)."""
        m = self.to_groupgram(x, diag)
        return m.diag - m.within

    def release_test(self, values_by_unit) -> np.ndarray:
        return (self.groups.count >= 2) & (values_by_unit < 0)

    def perturb_released(self, Z, units) -> np.ndarray:
        Z = Z.copy()
        Z[units, -1] = 0.3  # leave the collapsed point along the descent direction
        return Z / np.linalg.norm(Z, axis=1, keepdims=True)

    # ---- conic program (DESIGN section 4) -----------------------------------------------------
    def cvxpy_parametrisation(self):
        """Over the q x q matrix C of (scaled) group means: C_gg = d_g + (k_g - 1) same_g,
        C_gh = sqrt(k_g k_h) cross_gh, C PSD; d_g <= 1 (= 1 for classes of one sample);
        d_g - same_g >= 0 inside groups of several classes."""
        import cvxpy as cp

        g = self.groups
        q = g.q
        k_g, n_g = g.size.astype(float), g.count.astype(float)
        C = cp.Variable((q, q), PSD=True)
        same = cp.Variable(q)
        d = C[np.arange(q), np.arange(q)] - cp.multiply(k_g - 1, same)  # (cp.diag of 1 x 1 is 2-D)
        cons = [d <= 1]
        single = np.flatnonzero(g.count == 1)
        if single.size:
            cons.append(d[single] == 1)
        multi = np.flatnonzero(g.size >= 2)
        lone = np.flatnonzero(g.size == 1)
        if multi.size:
            cons.append(d[multi] - same[multi] >= 0)
        if lone.size:
            cons.append(same[lone] == 0)
        inv_scale = 1.0 / np.sqrt(np.outer(k_g, k_g))
        within = cp.multiply(n_g / np.maximum(n_g - 1, 1), d) - 1.0 / np.maximum(n_g - 1, 1)
        off = np.ones((q, q)) - np.eye(q)
        cross = cp.multiply(inv_scale * off, C)
        x = cp.hstack([within, same, cp.vec(cross, order="C")])

        def recover():
            if C.value is None:
                return None
            Cv, sv = np.asarray(C.value), np.asarray(same.value)
            dv = np.diag(Cv) - (k_g - 1) * sv
            wv = np.where(g.count >= 2, (n_g * dv - 1) / np.maximum(n_g - 1, 1), 1.0)
            cr = Cv * inv_scale
            np.fill_diagonal(cr, 0.0)
            return np.concatenate([wv, np.where(g.size >= 2, sv, 0.0), cr.ravel()])

        return x, cons, recover

    def geometry(self, x):
        from ufm.geometry import GroupGeometry

        return GroupGeometry(self.groups, self.to_groupgram(x), group_word=self.samples.group_word)


class _ClassTable(Table):
    """The class table's terms are [within_g, same_g, cross_g.] in value order: gather and scatter
    are slices and reshapes (no index arrays)."""

    def gather(self, x):
        q = self.shape[0]
        out = np.empty((q, q + 2))
        out[:, 0] = x[:q]
        out[:, 1] = x[q : 2 * q]
        out[:, 2:] = x[2 * q :].reshape(q, q)
        return out

    def scatter(self, W):
        wm = self.anchor_weight[:, None] * self.mult * W
        return np.concatenate([wm[:, 0], wm[:, 1], wm[:, 2:].ravel()])


# =================================================================================================
# mini-batches: types (a class and the batches a sample is in)


class BatchTypeSymmetry(ClassSymmetry):
    """Permutations inside each type of a mini-batch problem: samples of one class held by the
    same batches are interchangeable, so (the relaxation being convex) an optimum may be taken
    invariant under them (DESIGN section 4, applied per type).

    The reduced vector x, its PSD conditions, factors and spectrum are those of
    :class:`ClassSymmetry` with one group per type (``groups``: type counts, types ordered by
    class). Only the loss's rows differ: batch b's anchors of type a see the types of batch b
    alone, so :attr:`table` has one row per (batch, type in it), of anchor weight
    n_a w_b (w_b the batch's reduction weight, ``Loss._batch_weights``: the table is
    ``weighted``), while the certificate's matrix S, invariant too, has one row per type over all
    entries (:attr:`spectral_table`; pairs never in one batch have gradient 0). Its spectrum is
    therefore exact in O(q^3) for the full n x n program, whatever n. Per-sample arrays
    (:meth:`expand`, :meth:`lift`) are in the samples' own order; ``order`` lists the samples
    type by type.
    """

    def __init__(self, samples: Samples, batch_weights):
        self.type_of, uniq = batch_types(samples)
        self.type_label = uniq[:, 0]
        counts = np.bincount(self.type_of)
        self.samples = samples
        self.name = "types"
        self.groups = Groups.per_class(counts)
        self.order = np.argsort(self.type_of, kind="stable")
        self.position = np.empty_like(self.order)
        self.position[self.order] = np.arange(self.order.size)
        self._inner = ClassSymmetry(Samples.from_counts(tuple(int(c) for c in counts)), orbits=False)
        self._membership = uniq[:, 1:].astype(bool)  # (q, batches)
        self._weights = np.asarray(batch_weights, dtype=float)

    def describe(self) -> str:
        return (f"types: {self.q} types (a {self.samples.group_word} and the batches holding a "
                f"sample) over {len(self._weights)} batches, n = {self.n}")

    @cached_property
    def table(self) -> Table:
        q = self.q
        n_t = self.groups.count.astype(float)
        b_of, a_of = np.nonzero(self._membership.T)  # rows: (batch, type in it)
        T = q + 2
        A = a_of.size
        value = np.empty((A, T), dtype=np.int64)
        value[:, 0] = a_of
        value[:, 1] = q + a_of
        value[:, 2:] = 2 * q + a_of[:, None] * q + np.arange(q)[None, :]
        mult = np.zeros((A, T))
        mult[:, 0] = n_t[a_of] - 1
        cross = self._membership.T[b_of] * n_t[None, :]
        cross[np.arange(A), a_of] = 0.0
        mult[:, 2:] = cross
        relation = np.zeros((A, T), dtype=np.int8)
        relation[:, 0] = SAME_GROUP
        same = self.type_label[a_of][:, None] == self.type_label[None, :]
        relation[:, 2:] = np.where(same, SAME_GROUP, 0)
        transpose = self._inner.table.transpose
        table = Table(n_t[a_of] * self._weights[b_of], value, mult, relation, transpose, 2 * q + q * q)
        table.weighted = True
        return table

    @property
    def spectral_table(self) -> Table:
        return self._inner.table

    def expand(self, x, diag=None) -> np.ndarray:
        return self._inner.expand(x, diag)[np.ix_(self.position, self.position)]

    def average(self, G) -> np.ndarray:
        return self._inner.average(np.asarray(G)[np.ix_(self.order, self.order)])

    def average_embeddings(self, H):
        return self._inner.average_embeddings(np.asarray(H)[self.order])

    def geometry(self, x):
        """The geometry of the types (one group per type), not of the classes: see :meth:`lift`."""
        return self._inner.geometry(x)

    def lift(self, Z: np.ndarray) -> np.ndarray:
        """Unit embeddings (n, q + spread dimensions), in the samples' order, of the factors Z:
        sample j of type a is [x_a, t_a e_j], e_j the rows of a regular simplex private to the
        type (so within-type cosines are |x_a|^2 - t_a^2 / (n_a - 1), as the factors say)."""
        from ufm.geometry import simplex_etf

        X, t = Z[:, :-2], Z[:, -1]
        counts = self.groups.count
        spread = np.flatnonzero((t != 0) & (counts >= 2))
        width = X.shape[1] + int((counts[spread] - 1).sum())
        H = np.zeros((self.n, width))
        H[:, : X.shape[1]] = X[self.type_of]
        col = X.shape[1]
        for a in spread:
            rows = np.flatnonzero(self.type_of == a)
            H[rows, col : col + rows.size - 1] = t[a] * simplex_etf(rows.size)
            col += rows.size - 1
        return H / np.linalg.norm(H, axis=1, keepdims=True)


def batch_types(samples: Samples) -> tuple[np.ndarray, np.ndarray]:
    """(type of each sample, the types' keys [group, member of batch 0, member of batch 1, ...]):
    samples of one group held by the same batches share a type; types in the order of their keys
    (by group first)."""
    member = np.zeros((samples.n, len(samples.batches)), dtype=np.int64)
    for b, idx in enumerate(samples.batches):
        member[np.asarray(idx), b] = 1
    keys, type_of = np.unique(np.column_stack([samples.labels, member]), axis=0, return_inverse=True)
    return np.asarray(type_of).ravel(), keys


def batch_type_symmetry(loss, samples: Samples) -> BatchTypeSymmetry | None:
    """The type symmetry of a mini-batch problem, for a loss that only asks whether two samples
    share a group (None for losses that distinguish views, and without batches)."""
    if samples.batches is None or loss.uses_views:
        return None
    return BatchTypeSymmetry(samples, loss._batch_weights(samples))


# =================================================================================================
# instances x views (a product of two complete association schemes)


class InstanceViewSymmetry(Symmetry):
    """S_N x S_V acting on N instances seen in V views (sample a V + v).

    An invariant G is I + p A_p + s A_s + c A_c with A_p = I_N (x) (J_V - I_V) (same instance,
    other view), A_s = (J_N - I_N) (x) I_V (other instance, same view), A_c the rest. Its
    eigenspaces are products of {1, 1-perp} in R^N and R^V; on space k the matrix sum_r x_r A_r
    has eigenvalue sum_r x_r P[r, k] (multiplicity m_k):

        space:        (1p, 1p)          (1p, 1)    (1, 1p)    (1, 1)
        A_p           -1                V - 1      -1         V - 1
        A_s           -1                -1         N - 1      N - 1
        A_c           1                 -(V - 1)   -(N - 1)   (N - 1)(V - 1)
        m_k           (N - 1)(V - 1)    N - 1      V - 1      1

    G is PSD with unit diagonal iff e_k = 1 + sum_r x_r P[r, k] >= 0 and sum_k m_k e_k = n: a
    simplex in w_k = m_k e_k / n, parametrised by one unit vector z with w = z^2. Then
    x_r = sum_k z_k^2 P[r, k] / v_r and 1 - x_r = sum_k z_k^2 (1 - P[r, k] / v_r), a sum of
    non-negative terms (no cancellation), with v_r the valency of relation r.
    """

    name = "instances_views"
    RELATIONS = ("positive", "same_view", "other")

    def __init__(self, samples: Samples):
        if samples.grid is None:
            raise ValueError("instances x views symmetry needs samples with a grid of views")
        self.samples = samples
        N, V = samples.grid
        self.N, self.V = N, V
        P = np.array(
            [[-1, V - 1, -1, V - 1], [-1, -1, N - 1, N - 1], [1, -(V - 1), -(N - 1), (N - 1) * (V - 1)]],
            dtype=float,
        )
        m = np.array([(N - 1) * (V - 1), N - 1, V - 1, 1], dtype=float)
        keep = m > 0
        self.spaces = np.flatnonzero(keep)
        self.P, self.m = P[:, keep], m[keep]
        self.valency = np.array([V - 1, N - 1, (N - 1) * (V - 1)], dtype=float)
        self.coef = np.where(self.valency[:, None] > 0, self.P / np.maximum(self.valency, 1)[:, None], 0.0)

    def describe(self) -> str:
        return (
            f"instances permuted together in every view and views together in every instance "
            f"(S_{self.N} x S_{self.V}): 3 values (positive, same-view negative, other)"
        )

    @cached_property
    def table(self) -> Table:
        value = np.arange(3)[None, :]
        mult = self.valency[None, :].copy()
        relation = np.array([[SAME_GROUP, SAME_VIEW, 0]], dtype=np.int8)
        return Table(np.array([float(self.n)]), value, mult, relation, np.arange(3), 3)

    def _adjacency(self):
        N, V = self.N, self.V
        IN, IV = np.eye(N), np.eye(V)
        JN, JV = np.ones((N, N)), np.ones((V, V))
        return np.kron(IN, JV - IV), np.kron(JN - IN, IV), np.kron(JN - IN, JV - IV)

    def expand(self, x, diag=None) -> np.ndarray:
        d = 1.0 if diag is None else float(np.asarray(diag).ravel()[0])
        A = self._adjacency()
        return d * np.eye(self.n) + sum(float(x[r]) * A[r] for r in range(3))

    def average(self, G) -> np.ndarray:
        A = self._adjacency()
        return np.array([(G * A[r]).sum() / max(A[r].sum(), 1.0) for r in range(3)])

    def average_embeddings(self, H):
        N, V = self.N, self.V
        Hs = H.reshape(N, V, -1)
        sq = float(np.einsum("ij,ij->", H, H))
        inst = Hs.sum(axis=1)
        view = Hs.sum(axis=0)
        p_sum = float(np.einsum("ij,ij->", inst, inst)) - sq
        s_sum = float(np.einsum("ij,ij->", view, view)) - sq
        total = H.sum(axis=0)
        c_sum = float(total @ total) - sq - p_sum - s_sum
        cnt = self.n * self.valency
        x = np.divide([p_sum, s_sum, c_sum], cnt, out=np.zeros(3), where=cnt > 0)
        # same-instance distances from instance-centred coordinates (precision near alignment)
        ref = inst / np.maximum(np.linalg.norm(inst, axis=1, keepdims=True), 1e-300)
        U = Hs - ref[:, None, :]
        usum = U.sum(axis=1)
        usq = float(np.einsum("ijk,ijk->", U, U))
        dp = (V * usq - float(np.einsum("ij,ij->", usum, usum))) / max(N * V * (V - 1), 1)
        dist = 1.0 - x
        dist[0] = max(dp, 0.0) if V > 1 else 0.0
        return x, dist

    def spectrum(self, x, diag):
        d = float(np.asarray(diag).ravel()[0])
        values = d + x @ self.P
        order = np.argsort(values, kind="stable")
        return values[order], self.m.astype(np.int64)[order]

    # ---- factors -------------------------------------------------------------------------------
    @property
    def collapse_units(self) -> int:
        return 1

    @cached_property
    def _spread(self) -> np.ndarray:
        """Spaces whose eigenvalue > 0 spreads the views of an instance (V-perp components)."""
        return np.isin(self.spaces, (0, 2))

    def initial_factors(self, seed: int = 0) -> np.ndarray:
        """Views aligned (no weight on the V-perp spaces), instances on a perturbed simplex."""
        rng = np.random.default_rng(seed)
        z = np.sqrt(self.m / self.n) * (1 + 1e-3 * rng.standard_normal(self.m.size))
        z[self._spread] = 0.0
        return (z / np.linalg.norm(z))[None, :]

    def free_mask(self, release) -> np.ndarray:
        free = np.ones((1, self.m.size))
        if not bool(np.asarray(release).ravel()[0]):
            free[0, self._spread] = 0.0
        return free

    def gram_from_factors(self, Z) -> np.ndarray:
        return self.coef @ (Z[0] ** 2)

    def distances_from_factors(self, Z) -> np.ndarray:
        return (1.0 - self.coef) @ (Z[0] ** 2)

    def factors_from_gram(self, x) -> np.ndarray:
        e = np.clip(1.0 + x @ self.P, 0.0, None)
        z = np.sqrt(self.m * e / self.n)
        return (z / np.linalg.norm(z))[None, :]

    def factor_gradient(self, Z, totals):
        z = Z[0]
        g = 2.0 * z * (totals @ self.coef)
        return g[None, :], np.array([2.0 * np.abs(totals).sum() + 1e-300])

    def unit_eigenvalues(self, x, diag) -> np.ndarray:
        values = float(np.asarray(diag).ravel()[0]) + x @ self.P  # per kept space, in order
        spread = values[self._spread]
        return np.array([spread.min() if spread.size else 0.0])

    def release_test(self, values_by_unit) -> np.ndarray:
        return np.asarray(values_by_unit) < 0

    def perturb_released(self, Z, units) -> np.ndarray:
        Z = Z.copy()
        if bool(np.asarray(units).ravel()[0]):
            Z[0, self._spread] = 0.3
        return Z / np.linalg.norm(Z, axis=1, keepdims=True)

    def cvxpy_parametrisation(self):
        import cvxpy as cp

        e = cp.Variable(self.m.size, nonneg=True)
        cons = [self.m @ e == self.n]
        x = (self.coef * self.m[None, :] / self.n) @ e

        def recover():
            if e.value is None:
                return None
            return (self.coef * self.m[None, :] / self.n) @ np.asarray(e.value)

        return x, cons, recover

    def eigenvalues_of_gram(self, x) -> np.ndarray:
        """e_k of G = I + sum x_r A_r, per kept space."""
        return 1.0 + x @ self.P

    def basis(self, k: int) -> np.ndarray:
        """Orthonormal basis (n x m_k) of kept space k."""
        from ufm.geometry import complement_basis

        N, V = self.N, self.V
        space = self.spaces[k]
        left = complement_basis(N) if space in (0, 1) else np.ones((N, 1)) / np.sqrt(N)
        right = complement_basis(V) if space in (0, 2) else np.ones((V, 1)) / np.sqrt(V)
        return np.kron(left, right)

    def geometry(self, x):
        from ufm.geometry import SchemeGeometry

        return SchemeGeometry(self, np.asarray(x, dtype=float))


def symmetry_of(loss, samples: Samples, method: str = "auto") -> Symmetry | None:
    """The symmetry a solver may use for ``loss`` on ``samples`` (None: no reduction).

    Mini-batches break every symmetry; a loss that distinguishes views needs the full grid of
    instances x views; otherwise permutations inside groups (and of equal groups) apply.
    ``method``: "reduced" (one group per class), "orbit" (equal counts merged), "auto" (orbit
    where counts repeat), "full" (no reduction).
    """
    if method == "full" or samples.batches is not None:
        return None
    if loss.uses_views:
        return InstanceViewSymmetry(samples) if samples.grid is not None else None
    if method == "reduced":
        return ClassSymmetry(samples, orbits=False)
    if method == "orbit":
        return ClassSymmetry(samples, orbits=True)
    return ClassSymmetry(samples, orbits=len(set(samples.counts)) < samples.k)
