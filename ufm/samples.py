"""Who each sample is (DESIGN section 2): its positive group (a class, or an instance seen in
several views), its view, and optionally the mini-batches a loss is summed over.

Samples are kept ordered by group, so that a group's samples are contiguous: classes in order
(class 0 first), or instance a's views at positions a V .. a V + V - 1. Losses read masks from
the pair relations :data:`SAME_GROUP` and :data:`SAME_VIEW`; the symmetries that leave a loss
unchanged are found from the same relations (``ufm.symmetry``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ufm.errors import UFMInputError

#: Most samples a problem may have in total (and so the largest class count): the solvers work
#: at the class level, but n must fit in int64 everywhere and embeddings are lifted to n rows.
MAX_SAMPLES: int = 10**9

#: pair relations (bit flags): the two samples share a positive group / a view
SAME_GROUP = 1
SAME_VIEW = 2


def parse_counts(counts: str | Sequence[int] | np.ndarray, argument: str = "--counts"):
    """Class sizes from a string (separated by commas or whitespace) or a sequence; each an
    integer >= 1, and n = sum(counts) <= MAX_SAMPLES."""

    too_large = f"every class count must be <= {MAX_SAMPLES} (ufm's limit on samples), got "

    def count(value) -> int:
        if isinstance(value, str):
            text = value.strip()
            digits = text.lstrip("+-")
            if re.fullmatch(r"[+-]?\d+", text):
                if len(digits) > 20:  # keeps int() clear of its digit limit too
                    raise UFMInputError(argument, too_large + f"a {len(digits)}-digit number")
                value = int(text)
            else:
                try:
                    value = float(text)
                except ValueError:
                    raise UFMInputError(argument, f"not a number: {text!r}") from None
        elif isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
            raise UFMInputError(argument, f"class counts must be integers, got {value!r}")
        if isinstance(value, float | np.floating):
            if not math.isfinite(value) or float(value) != math.floor(value):
                raise UFMInputError(argument, f"class counts must be integers, got {value}")
            if value > MAX_SAMPLES:
                raise UFMInputError(argument, too_large + f"{value:g}")
        elif isinstance(value, np.complexfloating):
            raise UFMInputError(argument, f"class counts must be integers, got {value}")
        v = int(value)
        if v < 1:
            raise UFMInputError(argument, f"every class count must be >= 1, got {v}")
        if v > MAX_SAMPLES:
            raise UFMInputError(argument, too_large + str(v))
        return v

    if isinstance(counts, str):
        fields = counts.strip().split(",")
        empty = [i for i, f in enumerate(fields) if not f.strip()]
        if len(fields) > 1 and empty:
            i = empty[0]
            how = ("a leading comma" if i == 0 else "a trailing comma" if i == len(fields) - 1
                   else "two commas in a row")
            raise UFMInputError(argument, f"empty field {i + 1} of {len(fields)} ({how}); class counts "
                                "are separated by single commas or spaces, e.g. 10,10,2,2")
        values = [p for f in fields for p in f.split()]
    elif isinstance(counts, np.ndarray):
        values = counts.ravel().tolist()
    else:
        try:
            values = list(counts)
        except TypeError:
            raise UFMInputError(argument, f"expected a list of class counts, got {counts!r}") from None
    if not values:
        raise UFMInputError(argument, "no class counts given")
    out = tuple(count(v) for v in values)
    n = sum(out)
    if n > MAX_SAMPLES:
        raise UFMInputError(argument, f"{n} samples in total; ufm handles at most {MAX_SAMPLES}")
    return out


@dataclass(frozen=True, eq=False)
class Samples:
    """``counts[g]`` samples in positive group g (a class, or an instance), ordered by group.

    ``grid = (N, V)`` when the samples are N instances seen in V views (sample a V + v is view v
    of instance a); ``views`` then holds each sample's view. ``batches`` lists index arrays
    (positions in this order) over which a loss is summed (mini-batch losses), or is None.
    ``order[i]`` is the user's index of sample i (for samples built from a label vector).
    """

    counts: tuple[int, ...]
    grid: tuple[int, int] | None = None
    class_labels: tuple = ()
    batches: tuple | None = None
    order: np.ndarray | None = field(default=None, repr=False)
    batch_spec: str | None = None  # how the batches were made (a file, random:B, balanced:B)
    notes: tuple = ()  # what the user should know of how the samples were read (a header skipped)

    def __post_init__(self):
        object.__setattr__(self, "counts", parse_counts(self.counts))
        if not self.class_labels:
            object.__setattr__(self, "class_labels", tuple(range(len(self.counts))))

    # ---- constructors ---------------------------------------------------------------------
    @classmethod
    def from_counts(cls, counts) -> Samples:
        return cls(parse_counts(counts))

    @classmethod
    def from_labels(cls, labels, argument: str = "--labels") -> Samples:
        """Classes are the sorted distinct labels (numbers in numeric order, strings in lexical
        order); samples are reordered by class (stable), ``order`` keeps the user's indices."""
        y = np.asarray(labels).ravel()
        if y.size == 0:
            raise UFMInputError(argument, "no labels given")
        if y.dtype.kind == "c":
            raise UFMInputError(argument, "complex labels")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise UFMInputError(argument, "NaN or infinite labels")
        if y.dtype.kind not in "biufUS":
            raise UFMInputError(argument, f"labels must be numbers or strings, got dtype {y.dtype}")
        values, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        identity = bool(np.array_equal(order, np.arange(y.size)))
        return cls(
            tuple(int(c) for c in counts), None, tuple(values.tolist()), order=None if identity else order
        )

    @classmethod
    def instances_views(cls, instances: int, views: int = 2) -> Samples:
        """N instances, each seen in V views (V = 2: pairs)."""
        if int(instances) != instances or instances < 1:
            raise UFMInputError("instances", f"must be an integer >= 1, got {instances}")
        if int(views) != views or views < 1:
            raise UFMInputError("views", f"must be an integer >= 1, got {views}")
        if instances * views > MAX_SAMPLES:
            raise UFMInputError(
                "--instances", f"{instances * views} samples; ufm handles at most {MAX_SAMPLES}"
            )
        return cls((int(views),) * int(instances), (int(instances), int(views)))

    # ---- who is who -----------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(sum(self.counts))

    @property
    def k(self) -> int:
        """Number of positive groups (classes, or instances)."""
        return len(self.counts)

    @property
    def kind(self) -> str:
        return "views" if self.grid is not None else "classes"

    @property
    def group_word(self) -> str:
        return "instance" if self.grid is not None else "class"

    @cached_property
    def labels(self) -> np.ndarray:
        """Positive group of every sample, shape (n,), non-decreasing."""
        return np.repeat(np.arange(self.k), self.counts)

    @cached_property
    def views(self) -> np.ndarray | None:
        """View of every sample (views kind), else None."""
        if self.grid is None:
            return None
        return np.tile(np.arange(self.grid[1]), self.grid[0])

    @cached_property
    def starts(self) -> np.ndarray:
        return np.r_[0, np.cumsum(self.counts)[:-1]].astype(np.int64)

    @cached_property
    def key(self) -> tuple:
        """Hashable identity (for caches of masks and structures)."""
        batches = None if self.batches is None else tuple(b.tobytes() for b in self.batches)
        return (self.counts, self.grid, batches)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Samples) and self.key == other.key

    # ---- the user's order -------------------------------------------------------------------
    @cached_property
    def user_rows(self) -> np.ndarray | None:
        """``user_rows[j]``: the position here of the user's sample j (the inverse of ``order``;
        None when the two orders agree)."""
        return None if self.order is None else np.argsort(self.order)

    def to_user_order(self, a, axis: int = 0) -> np.ndarray:
        """A per-sample array (samples along ``axis``, in this class-sorted order) with its
        samples in the user's order: entry j is the user's sample j (line j of the labels file)."""
        a = np.asarray(a)
        return a if self.user_rows is None else np.take(a, self.user_rows, axis=axis)

    def from_user_order(self, a, axis: int = 0) -> np.ndarray:
        """A per-sample array given in the user's order (rows of an embeddings file paired with
        the labels file) in this class-sorted order: the inverse of :meth:`to_user_order`."""
        a = np.asarray(a)
        return a if self.order is None else np.take(a, self.order, axis=axis)

    def user_positions(self, indices) -> np.ndarray:
        """Positions here of the user's sample indices (a batch file's indices)."""
        idx = np.asarray(indices, dtype=np.int64)
        return idx if self.user_rows is None else self.user_rows[idx]

    @property
    def user_labels(self) -> np.ndarray:
        """The user's label of every sample, in the user's order (class indices 0..k-1, or the
        instance, without a label vector)."""
        return self.to_user_order(np.asarray(self.class_labels)[self.labels])

    def relation(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Relation bits of every pair (rows[:, None], cols[None, :])."""
        y = self.labels
        rel = (y[rows][:, None] == y[cols][None, :]).astype(np.int8) * SAME_GROUP
        if self.views is not None:
            v = self.views
            rel = rel | ((v[rows][:, None] == v[cols][None, :]).astype(np.int8) * SAME_VIEW)
        return rel

    def describe(self) -> dict:
        d = {"kind": self.kind, "n": self.n, "groups": self.k}
        if self.grid is not None:
            d.update(instances=self.grid[0], views=self.grid[1])
        if self.batches is not None:
            d["batches"] = len(self.batches)
            d["batch_sizes"] = sorted({int(b.size) for b in self.batches})
            d["batch_spec"] = self.batch_spec
            if self.left_out:
                d["left_out"] = self.left_out
        if self.all_notes:
            d["notes"] = list(self.all_notes)
        return d

    @property
    def all_notes(self) -> tuple:
        """The notes, with one on the samples the batches leave out (when they do)."""
        if not self.left_out:
            return self.notes
        return (*self.notes, f"--batches: the batches leave {self.left_out} of the {self.n} samples out "
                "(in no batch): the loss does not see them")

    @cached_property
    def left_out(self) -> int | None:
        """How many samples are in no batch (None without batches)."""
        if self.batches is None:
            return None
        if not self.batches:
            return self.n
        return self.n - int(np.unique(np.concatenate(self.batches)).size)

    # ---- mini-batches -------------------------------------------------------------------------
    def with_batches(self, batches, spec: str | None = None) -> Samples:
        """The same samples with a loss summed over ``batches`` (index lists, positions in this
        order); each batch is stored sorted, so that its groups stay contiguous."""
        out = []
        for b in batches:
            idx = np.unique(np.asarray(b, dtype=np.int64))
            out.append(idx)
        return replace(self, batches=tuple(out), batch_spec=spec)

    def without_batches(self) -> Samples:
        return replace(self, batches=None, batch_spec=None)

    def subset(self, idx: np.ndarray) -> Samples:
        """The samples at positions ``idx`` (sorted, so in group order) as a problem of their own:
        groups present in ``idx`` renumbered in order; a views grid survives only when ``idx``
        holds whole instances."""
        idx = np.asarray(idx, dtype=np.int64)
        y = self.labels[idx]
        present, counts = np.unique(y, return_counts=True)
        labels = tuple(self.class_labels[g] for g in present)
        grid = None
        if self.grid is not None:
            V = self.grid[1]
            if np.all(counts == V):
                grid = (int(present.size), V)
            else:
                # partial instances: keep the view of each sample in a private grid-less form
                return _ViewedSubset(
                    tuple(int(c) for c in counts), None, labels, sample_views=self.views[idx]
                )
        return Samples(tuple(int(c) for c in counts), grid, labels)

    @cached_property
    def batch_subsets(self) -> list[tuple[np.ndarray, Samples]]:
        """(positions, samples of the batch) for every batch."""
        return [(b, self.subset(b)) for b in self.batches]


@dataclass(frozen=True, eq=False)
class _ViewedSubset(Samples):
    """Samples of instances with views where not every instance is complete (a mini-batch cut
    through an instance): views are stored per sample."""

    sample_views: np.ndarray | None = field(default=None, repr=False)

    @cached_property
    def views(self) -> np.ndarray | None:
        return self.sample_views

    @property
    def kind(self) -> str:
        return "views"

    @cached_property
    def key(self) -> tuple:
        return (self.counts, None, None, self.sample_views.tobytes())


# ---- batches ---------------------------------------------------------------------------------


def _units(samples: Samples) -> list[np.ndarray]:
    """What a batch keeps together: the views of an instance, or single samples."""
    if samples.grid is not None:
        N, V = samples.grid
        return [np.arange(a * V, (a + 1) * V) for a in range(N)]
    return [np.array([i]) for i in range(samples.n)]


def random_batches(samples: Samples, size: int, seed: int, argument: str = "--batches") -> list[np.ndarray]:
    """A random partition into batches of ``size`` samples (the last may be smaller); instances
    stay whole (``size`` must then be a multiple of the number of views)."""
    unit = 1 if samples.grid is None else samples.grid[1]
    _check_size(samples, size, unit, argument)
    units = _units(samples)
    perm = np.random.default_rng(seed).permutation(len(units))
    per = size // unit
    return [np.concatenate([units[u] for u in perm[s : s + per]]) for s in range(0, len(units), per)]


def balanced_batches(samples: Samples, size: int, seed: int, argument: str = "--batches") -> list[np.ndarray]:
    """Class-balanced batches: m = ceil(n / size) batches; each class is shuffled and dealt round
    robin (starting where the previous class stopped), so every batch holds floor or ceil of
    n_c / m samples of class c. With instances and views, instances are dealt whole."""
    unit = 1 if samples.grid is None else samples.grid[1]
    _check_size(samples, size, unit, argument)
    rng = np.random.default_rng(seed)
    m = -(-samples.n // size)
    bins: list[list[np.ndarray]] = [[] for _ in range(m)]
    if samples.grid is not None:
        units = _units(samples)
        for j, u in enumerate(rng.permutation(len(units))):
            bins[j % m].append(units[u])
    else:
        slot = 0
        for s, c in zip(samples.starts, samples.counts, strict=True):
            for i in rng.permutation(c):
                bins[slot % m].append(np.array([s + i]))
                slot += 1
    return [np.concatenate(b) for b in bins if b]


def _check_size(samples: Samples, size: int, unit: int, argument: str) -> None:
    if size < 2:
        raise UFMInputError(argument, f"batch size must be >= 2, got {size}")
    if size % unit:
        raise UFMInputError(
            argument,
            f"batch size {size} must be a multiple of the {unit} views of an "
            "instance (instances stay whole in a batch)",
        )
    if size > samples.n:
        raise UFMInputError(argument, f"batch size {size} exceeds the {samples.n} samples")
