"""What a loss is: an object holding its parameters, declared once with its name, formula,
source, floor, convexity in G and the forms it supplies (DESIGN section 6).

Forms (capabilities), each over a full batch; this base class applies ``reduction`` and sums them
over mini-batches (``samples.batches``):

* ``rows``: log(f - floor) and its per-entry derivative over rows of G given as a table
  (``ufm.tables``): the n x n matrix, or a symmetry-reduced G for any n (numpy, float64);
* ``torch``: log(f - floor) over H and its gradient, in row blocks (any device, batched over
  restarts: H of shape (n, d) or (R, n, d));
* ``cvxpy``: the loss as a CVXPY expression of G (convex losses), over the n x n matrix or a
  reduced vector.

Values are sums over anchors (DESIGN section 2); ``reduction="mean"`` divides by the number of
anchors (pairs for DHEL and KCL). With mini-batches each batch is a problem of its own, reduced
by its own anchors, and the batches add up, as an epoch of SGD adds the batches' means: batch b
gets the weight w_b = 1 / (anchors of batch b) under ``"mean"`` (1 under ``"sum"``, and 1 for a
batch without anchors, which contributes nothing), and every quantity (value, floor, range, log
excess and its gradient, the torch and CVXPY forms) is sum_b w_b x (batch b's sum-reduced
quantity) (:meth:`Loss._batch_weights`, the one place the rule is written). Without mini-batches
the one batch is all samples: the mean divides by all anchors. Every loss declares its floor, a
geometry-independent lower bound; solvers and certificates work with log(f - floor) (DESIGN
section 5).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ufm.errors import UFMInputError
from ufm.losses import relations
from ufm.params import REDUCTION, Param
from ufm.samples import Samples
from ufm.tables import NEG, NONE, POS, DenseTable, RowParts, Table

#: ulps of the loss's scale within which an attainable floor counts as reached (see
#: :meth:`Loss.floor_tolerance`): the value floor + excess is a sum of O(n) terms of that scale
FLOOR_ROUNDOFF = 16.0


def as_samples(samples) -> Samples:
    """Samples, or class counts (a sequence of integers) taken as classes."""
    return samples if isinstance(samples, Samples) else Samples.from_counts(samples)


class Loss(ABC):
    """A contrastive loss over unit embeddings, with its parameters."""

    #: registry key, the ``--loss`` spelling
    name: ClassVar[str] = ""
    #: one line: what it is
    title: ClassVar[str] = ""
    #: the formula, in the notation of DESIGN section 3
    formula: ClassVar[str] = ""
    #: where it comes from
    source: ClassVar[str] = ""
    #: declared parameters (besides ``reduction``)
    params: ClassVar[tuple[Param, ...]] = ()
    #: "classes" (labels), "views" (instances x views) or "any"
    samples_kind: ClassVar[str] = "any"
    #: True if the loss is a convex function of the Gram matrix
    convex_in_gram: ClassVar[bool] = False
    #: False: no scalar objective has its dynamics as gradient (solved by coordinate-wise dynamics)
    scalar_objective: ClassVar[bool] = True
    #: reports: the convex program that certifies the loss when it is its own relaxation
    relaxation_text: ClassVar[str] = "the loss itself (convex in G)"
    #: reports: the convex minorant :meth:`relaxation` returns when it is not the loss itself
    minorant_text: ClassVar[str] = "a convex minorant equal to the loss at the optimum"
    #: reports, losses without a scalar objective: what each step of the coordinate-wise dynamics
    #: sets from the current geometry, and the program its fixed points are certified on
    dynamics_text: ClassVar[str] = "weights from the current geometry"
    fixed_point_program: ClassVar[str] = "program with those weights fixed"
    #: "sum" or "mean" when the loss's own definition is a mean
    default_reduction: ClassVar[str] = "sum"
    #: what one anchor is, for reports
    anchor_word: ClassVar[str] = "sample"
    #: floor, in words
    floor_text: ClassVar[str] = ""
    #: what the formula's symbols are (P(i), N(i), kernels, weights), for the loss table
    #: (``ufm.losses.catalogue``)
    formula_note: ClassVar[str] = ""
    #: convexity in G beyond yes/no (what is convex, what the relaxation is), for the loss table
    convexity_note: ClassVar[str] = ""
    #: what the reported floor is (reports): see :meth:`point_floor`
    floor_note: ClassVar[str] = "geometry-independent lower bound"
    #: True if some geometry reaches the floor (excess 0 at the optimum: the spectral loss). Then
    #: no optimiser may chase log(0): solvers stop where the excess is 0 within round-off
    #: (:meth:`floor_tolerance`), and certificates there decide on an absolute gap,
    #: gap_bound <= tol x max(excess, :meth:`floor_scale`) (DESIGN section 5)
    floor_attainable: ClassVar[bool] = False
    #: temperature, for losses that have one (set from ``params``)
    tau: float | None = None

    def __init__(self, **values):
        known = {p.name: p for p in self.params}
        for key in values:
            if key != "reduction" and key not in known:
                flags = ", ".join(p.flag for p in self.params) or "none"
                raise UFMInputError("--" + key.replace("_", "-"),
                                    f"not a parameter of {self.name} (its parameters: {flags})")
        for p in self.params:
            v = values.get(p.name)
            setattr(self, p.name, p.default if v is None else p.parse(v))
        r = values.get("reduction")
        self.reduction = self.default_reduction if r is None else REDUCTION.parse(r)
        self._check()

    def _check(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Checks that involve several parameters."""

    @property
    def values(self) -> dict:
        out = {p.name: getattr(self, p.name) for p in self.params}
        out["reduction"] = self.reduction
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.values == other.values

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self.values.items())))

    def describe(self) -> dict:
        return {"name": self.name, "params": self.values}

    # ---- capabilities ----------------------------------------------------------------------
    @property
    def capabilities(self) -> tuple[str, ...]:
        caps = ["rows", "torch"]
        if self.convex_in_gram:
            caps.append("cvxpy")
        return tuple(caps)

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def relaxation(self):
        """The Gram-convex function whose global certificate bounds this loss: itself when
        convex in G; None when the loss has no convex relaxation (then no certificate exists).
        A loss may return a convex minorant h <= f that equals f at the optimum (KCL: the
        energy with views aligned); certificates then add f - h (:meth:`relaxation_gap`)."""
        return self if self.convex_in_gram else None

    @property
    def has_relaxation(self) -> bool:
        return self.relaxation() is not None

    # ---- samples ---------------------------------------------------------------------------
    def check_samples(self, samples: Samples, argument: str = "--loss") -> None:
        """A one-line error if this loss cannot be posed on these samples."""
        if self.samples_kind == "views" and samples.kind != "views":
            raise UFMInputError(argument, f"{self.name} needs instances seen in views (--instances N "
                                "[--views V]); positives are the other views of an instance (with class "
                                "labels use --loss supcon)")
        if self.pairs_only and samples.grid is not None and samples.grid[1] != 2:
            raise UFMInputError("--views", f"{self.name} is defined on pairs: 2 views per instance, got "
                                f"{samples.grid[1]}")

    #: samples per anchor (2 where an anchor is a pair)
    anchor_size: ClassVar[int] = 1
    #: defined on pairs only (instances x 2 views)
    pairs_only: ClassVar[bool] = False

    # ---- masks and anchors: all from kind_of_relation() (ufm.losses.relations) ------------------
    def kind_of_relation(self) -> np.ndarray:
        """Term kind (ufm.tables.NONE / POS / NEG) of a pair, indexed by its relation bits
        SAME_GROUP | SAME_VIEW: the one declaration of positives and negatives."""
        return np.full(4, NONE, dtype=np.int8)

    @property
    def uses_views(self) -> bool:
        """True if its masks depend on views (then only instances x views permutations keep it)."""
        return relations.uses_views(self.kind_of_relation())

    def _is_anchor(self, npos, nneg):
        """Which samples anchor a term: by default those with a positive and a negative."""
        return (npos > 0) & (nneg > 0)

    def row_parts(self, mult, kind, weight) -> RowParts:
        """Positive and negative terms of table rows, |P|, |N| and the anchoring rows."""
        return RowParts.of(mult, kind, weight, self._is_anchor)

    def _counts(self, samples: Samples):
        """Per-sample |P|, |N| (torch evaluators)."""
        return relations.per_sample(self.kind_of_relation(), samples)

    def _anchor_mask(self, samples: Samples) -> np.ndarray:
        return self._is_anchor(*self._counts(samples))

    def _types(self, samples: Samples):
        """(|P|, |N|, how many, is anchor) per type of sample (:func:`relations.per_type`)."""
        npos, nneg, mult = relations.per_type(self.kind_of_relation(), samples)
        return npos, nneg, mult, self._is_anchor(npos, nneg)

    def _anchor_count(self, samples: Samples) -> float:
        """Anchoring samples of a full batch."""
        _, _, mult, a = self._types(samples)
        return float(mult[a].sum())

    def _anchors(self, samples: Samples) -> int:
        """Number of anchors of a full batch (pairs count once)."""
        return int(self._anchor_count(samples)) // self.anchor_size

    def anchors(self, samples) -> int:
        """Anchors in all (summed over mini-batches: an anchor in two batches counts twice)."""
        samples = as_samples(samples)
        if samples.batches is not None:
            return sum(self._anchors(s) for _, s in samples.batch_subsets)
        return self._anchors(samples)

    def _batch_weights(self, samples, reduction: str | None = None) -> list[float]:
        """The weight of each mini-batch (one entry, the full batch, without ``samples.batches``),
        in the order of ``samples.batch_subsets``: 1 under ``reduction`` "sum", 1 / (the batch's own
        anchors) under "mean" (1 for a batch without anchors: it contributes nothing). Every
        quantity of a mini-batch loss is sum_b w_b x (batch b's sum-reduced quantity): each batch is
        a problem of its own, reduced by its own anchors, as SGD takes the mean inside a batch and
        an epoch adds the batches. ``reduction`` overrides the loss's own."""
        samples = as_samples(samples)
        red = self.reduction if reduction is None else REDUCTION.parse(reduction, "reduction")
        parts = [samples] if samples.batches is None else [s for _, s in samples.batch_subsets]
        if red != "mean":
            return [1.0] * len(parts)
        return [1.0 / a if (a := self._anchors(s)) > 0 else 1.0 for s in parts]

    def _scale(self, samples: Samples) -> float:
        """The weight of a full batch (:meth:`_batch_weights`): 1, or 1 / anchors for reduction
        "mean". The full-batch forms (tables) only: a mini-batch loss has one weight per batch."""
        samples = as_samples(samples)
        if samples.batches is not None:
            raise ValueError("a mini-batch loss has one weight per batch: use Loss._batch_weights")
        return self._batch_weights(samples)[0]

    @abstractmethod
    def _floor(self, samples: Samples) -> float:
        """Floor of a full batch, as a sum."""

    def _batch_sum(self, per_batch, samples) -> float:
        """``per_batch`` (a full-batch quantity, as a sum) reduced in each mini-batch and summed
        over them: sum_b w_b per_batch(batch b) (:meth:`_batch_weights`)."""
        samples = as_samples(samples)
        weights = self._batch_weights(samples)
        if samples.batches is None:
            return float(per_batch(samples) * weights[0])
        return float(math.fsum(w * per_batch(s) for w, (_, s) in zip(weights, samples.batch_subsets,
                                                                     strict=True)))

    def floor(self, samples) -> float:
        return self._batch_sum(self._floor, samples)

    def _range(self, samples: Samples) -> float:
        """An upper bound on max - min of the full-batch loss (sum reduction) over unit
        embeddings: how much the geometry can move it. ``inf`` where the loss is unbounded or its
        excess is itself the right scale (the default)."""
        return math.inf

    def geometry_range(self, samples) -> float:
        """:meth:`_range` reduced in each mini-batch and summed over them: what the geometry
        controls. Certificates, gradient tolerances and line searches are judged against
        min(excess, this) (DESIGN section 5): at large tau the excess over a tau -> 0 floor stays
        about n log(n/m) while the loss moves by O(n / tau)."""
        return self._batch_sum(self._range, samples)

    def log_geometry_range(self, samples) -> float:
        r = self.geometry_range(samples)
        return math.log(r) if r > 0 else -math.inf

    def floor_scale(self, samples) -> float | None:
        """The loss's declared scale for an absolute verdict at its floor: its range over the sphere
        (:meth:`geometry_range`), or max(|floor|, anchors) where that is unbounded; None for a loss
        whose floor is not attained (its excess is never 0: verdicts stay relative)."""
        if not self.floor_attainable:
            return None
        r = self.geometry_range(samples)
        if math.isfinite(r) and r > 0:
            return r
        return max(abs(self.floor(samples)), float(self.anchors(samples)), 1.0)

    def floor_tolerance(self, samples) -> float:
        """The excess below which a point is at the floor: :data:`FLOOR_ROUNDOFF` ulps of
        :meth:`floor_scale` (the value floor + excess no longer moves in float64); 0 for a loss
        whose floor is not attained."""
        scale = self.floor_scale(samples)
        return 0.0 if scale is None else FLOOR_ROUNDOFF * float(np.finfo(float).eps) * scale

    def point_floor(self, samples, *, dist=None, table=None, H=None) -> float:
        """The floor that the forms' excess is measured from at a point (given by its n x n
        distances ``dist``, by ``table`` and its per-value ``dist``, or by torch embeddings
        ``H``): the declared :meth:`floor` for every loss whose floor is geometry-independent."""
        return self.floor(samples)

    def _degenerate(self, samples: Samples) -> str | None:
        return None

    def degenerate(self, samples) -> str | None:
        """Why the problem has no geometry to optimise (the loss does not depend on it, or is
        minimised by collapse alone), or None."""
        samples = as_samples(samples)
        if samples.batches is not None:
            reasons = [self._degenerate(s) for _, s in samples.batch_subsets]
            return reasons[0] if all(r is not None for r in reasons) else None
        return self._degenerate(samples)

    # ---- rows of G (numpy) -------------------------------------------------------------------
    @abstractmethod
    def _rows_log_excess(self, X: np.ndarray, mult: np.ndarray, kind: np.ndarray, weight: np.ndarray):
        """``(log(f - floor), W)`` for rows X (A, T) of distances 1 - G with ``mult`` entries per
        term, term kinds and anchor weights; W[a, t] = (d (f - floor) / d G_entry) / (f - floor)
        for one entry of term t in a row of orbit a. Full batch, sum reduction."""

    def table_log_excess(self, table: Table, dist: np.ndarray, samples=None, positive_slopes=None):
        """``(log(f - floor), totals)`` of an invariant G given by its distances 1 - x:
        totals[v] = d (f - floor) / d x_v / (f - floor), summed over the entries of value v.
        O(A T), whatever n (full batch; ``samples`` for the reduction's scale).
        ``positive_slopes``: the masked log-sum-exp's equidistant-positives form
        (``ufm.losses.masked_lse.rows_log_excess``)."""
        lex, W = self._table_rows(table, table.gather(dist), positive_slopes)
        scale = 1.0 if samples is None or table.weighted else self._scale(as_samples(samples))
        return lex + math.log(scale), table.scatter(W)

    def table_row_derivatives(self, table: Table, X: np.ndarray, positive_slopes=None):
        """``(log(f - floor), W)`` at term distances X (A, T) of ``table`` (``table.gather`` of a
        distance vector, or any perturbation of it: rows are independent functions of their own
        terms): W[a, t] = (d (f - floor) / d G_entry) / (f - floor) for one entry of term t in one
        anchor's row of orbit a (anchor weights and multiplicities not applied). Sum reduction,
        without the table's scale (a ``weighted`` table carries its own)."""
        return self._table_rows(table, X, positive_slopes)

    def _table_rows(self, table: Table, X: np.ndarray, positive_slopes=None):
        kind = table.kinds(self.kind_of_relation())
        extra = {}
        if positive_slopes is not None:
            if not hasattr(self, "positive_plan"):
                raise ValueError(f"{self.name}: positive_slopes apply to the masked log-sum-exp only")
            extra["positive_slopes"] = positive_slopes
        if hasattr(self, "_plan"):
            return self._rows_log_excess(X, table.mult, kind, table.anchor_weight, self._plan(table, kind),
                                         **extra)
        return self._rows_log_excess(X, table.mult, kind, table.anchor_weight)

    def _dense_full(self, D: np.ndarray, samples: Samples):
        return self._table_rows(_dense_table(samples), D)

    def dense_log_excess(self, D: np.ndarray, samples):
        """``(log(f - floor), Ft)`` at distances D = 1 - G (n x n) with
        Ft = (d (f - floor) / d G) / (f - floor), rows = anchors, not symmetrised."""
        samples = as_samples(samples)
        D = np.asarray(D, dtype=np.float64)
        weights = self._batch_weights(samples)
        if samples.batches is None:
            lex, Ft = self._dense_full(D, samples)
            return lex + math.log(weights[0]), Ft
        # batch b's share of the excess is w_b exp(lb): log w_b joins its log excess
        parts = []
        for w, (idx, s) in zip(weights, samples.batch_subsets, strict=True):
            lb, Fb = self._dense_full(D[np.ix_(idx, idx)], s)
            parts.append((idx, lb + math.log(w), Fb))
        lex = _logsumexp([p[1] for p in parts])
        Ft = np.zeros_like(D)
        if np.isfinite(lex):
            for idx, lb, Fb in parts:
                if np.isfinite(lb):
                    Ft[np.ix_(idx, idx)] += math.exp(lb - lex) * Fb
        return lex, Ft

    def distances(self, H: np.ndarray, samples) -> np.ndarray:
        """n x n distances 1 - h_i.h_j, same-group entries from group-centred coordinates (full
        relative precision near collapse, where 1 - h_i.h_j is round-off)."""
        from ufm.metrics import class_centred

        samples = as_samples(samples)
        H = np.asarray(H, dtype=np.float64)
        y = samples.labels
        D = np.clip(1.0 - H @ H.T, 0.0, 2.0)  # unit rows: |h_i.h_j| <= 1 (round-off gives 1 + 2e-16)
        U = class_centred(H, y, samples.k)
        sq = np.einsum("ij,ij->i", U, U)
        Dp = 0.5 * (sq[:, None] + sq[None, :]) - U @ U.T
        same = y[:, None] == y[None, :]
        D[same] = np.maximum(Dp[same], 0.0)
        np.fill_diagonal(D, 0.0)
        return D

    def gram_value_and_grad(self, G: np.ndarray, samples):
        """``(f(G), g)`` in float64 with g the symmetrised gradient (n x n)."""
        G = np.asarray(G, dtype=np.float64)
        lex, Ft = self.dense_log_excess(1.0 - G, samples)
        excess = float(np.exp(lex))
        floor = self.point_floor(samples, dist=1.0 - G)
        return floor + excess, 0.5 * excess * (Ft + Ft.T)

    def gram_value(self, G: np.ndarray, samples) -> float:
        return self.gram_value_and_grad(G, samples)[0]

    def value(self, H: np.ndarray, samples) -> float:
        """f at unit embeddings H (n, d), float64, distances to full precision."""
        D = self.distances(H, samples)
        lex, _ = self.dense_log_excess(D, samples)
        return self.point_floor(samples, dist=D) + float(np.exp(lex))

    # ---- over H (torch) ----------------------------------------------------------------------
    def _torch_rows(self, H, samples: Samples):
        """A row-block evaluator of a full batch (see :class:`RowEvaluator`), or None (the
        default): the loss then has no closed-form torch gradient and
        :meth:`torch_log_excess_and_grad` falls back to autograd through :meth:`_torch_plain`
        (:meth:`_torch_autodiff`; matrix-free certificates need an evaluator)."""
        return None

    def _torch_autodiff(self, H, samples: Samples):
        """The autodiff fallback for a loss that supplies only its value: log(f - floor) from
        :meth:`_torch_plain` minus the floor (the excess then carries the value's round-off: no
        accurate log-excess near the floor) and its gradient in H by autograd."""
        import torch

        with torch.enable_grad():
            Hh = H.detach().requires_grad_(True)
            excess = self._torch_plain(Hh, samples) - self._floor(samples)
            (g,) = torch.autograd.grad(excess.sum(), Hh)
        excess = excess.detach()
        pos = excess > 0
        safe = torch.where(pos, excess, torch.ones_like(excess))
        inv = torch.where(pos, 1.0 / safe, torch.zeros_like(excess))
        lex = torch.where(pos, torch.log(safe), torch.full_like(excess, float("-inf")))
        return lex, g * inv.reshape(inv.shape + (1, 1))

    def _torch_full(self, H, samples: Samples, block: int, ev: RowEvaluator | None = None):
        """One pass over row blocks: each block's derivative is normalised by its own share of
        the excess, and the blocks are combined by a running log-sum-exp (rescaling what is
        accumulated when a larger share appears), so nothing is evaluated twice and nothing
        underflows where the excess does. Without a row evaluator: :meth:`_torch_autodiff`."""
        import torch

        if ev is None:
            with torch.no_grad():
                ev = self._torch_rows(H, samples)
            if ev is None:
                return self._torch_autodiff(H, samples)
        n = H.shape[-2]
        batch = H.shape[:-2]
        with torch.no_grad():
            grad = torch.zeros_like(H)
            ref = torch.full(batch, float("-inf"), dtype=H.dtype, device=H.device)  # running max share
            total = torch.zeros(batch, dtype=H.dtype, device=H.device)  # sum of exp(share - ref)
            for start in range(0, n, block):
                stop = min(start + block, n)
                t = ev.block(start, stop)
                lb = torch.logsumexp(t.lex_i, dim=-1)
                if not bool(torch.isfinite(lb).any()):
                    continue
                new_ref = torch.maximum(ref, lb)
                shrink = torch.where(torch.isfinite(ref), torch.exp(ref - new_ref), torch.zeros_like(ref))
                grad.mul_(shrink.reshape(batch + (1, 1)))
                w = torch.where(torch.isfinite(lb), torch.exp(lb - new_ref), torch.zeros_like(lb))
                safe = torch.where(torch.isfinite(lb), lb, torch.zeros_like(lb))
                F = ev.scaled(t, safe)
                wb = w.reshape(batch + (1, 1))
                grad[..., start:stop, :] += wb * (F @ H)
                grad += wb * (F.transpose(-1, -2) @ H[..., start:stop, :])
                total = total * shrink + w
                ref = new_ref
            lex = ref + torch.log(total)
            grad = grad / torch.where(total > 0, total, torch.ones_like(total)).reshape(batch + (1, 1))
        return lex, grad

    def torch_log_excess_and_grad(self, H, samples, block: int = 4096):
        """log(f - floor) of H ((n, d) or (R, n, d)) and its gradient in H, in row blocks of
        ``block`` anchors (memory O(block n)); one pass when n <= block, else two."""

        samples = as_samples(samples)
        return self._torch_batched(H, samples, lambda Hb, sb, it: self._torch_full(Hb, sb, block))

    def _torch_batched(self, H, samples: Samples, full):
        """``full(H_batch, batch_samples, indices)`` (indices None for a full batch) reduced in each
        mini-batch and summed over them by a log-sum-exp of the parts' log excesses plus
        log w_b (:meth:`_batch_weights`)."""
        import torch

        weights = self._batch_weights(samples)
        if samples.batches is None:
            lex, grad = full(H, samples, None)
            return lex + math.log(weights[0]), grad
        parts = []
        for wb, (idx, s) in zip(weights, samples.batch_subsets, strict=True):
            it = torch.as_tensor(idx, device=H.device)
            lb, gb = full(H.index_select(-2, it), s, it)
            parts.append((it, lb + math.log(wb), gb))
        lex = torch.logsumexp(torch.stack([p[1] for p in parts]), dim=0)
        grad = torch.zeros_like(H)
        for it, lb, gb in parts:
            w = torch.exp(lb - lex)
            w = torch.where(torch.isfinite(w), w, torch.zeros_like(w))
            grad.index_add_(-2, it, gb * w.reshape(w.shape + (1, 1)))
        return lex, grad

    def torch_value_and_grad(self, H, samples, block: int = 4096):
        """Value (floor + excess) and its gradient in H (closed form)."""
        import torch

        lex, grad = self.torch_log_excess_and_grad(H, samples, block)
        excess = torch.exp(lex)
        floor = self.point_floor(samples, H=H)
        return floor + excess, grad * excess.reshape(excess.shape + (1, 1))

    def torch_value(self, H, samples, reduction: str | None = None):
        """Differentiable value of H ((n, d) or (R, n, d)): a plain, independent implementation
        (autograd, Hessians, tests). ``reduction`` overrides the loss's own."""
        import torch

        samples = as_samples(samples)
        weights = self._batch_weights(samples, reduction)
        if samples.batches is None:
            return self._torch_plain(H, samples) * weights[0]
        return sum(w * self._torch_plain(H.index_select(-2, torch.as_tensor(idx, device=H.device)), s)
                   for w, (idx, s) in zip(weights, samples.batch_subsets, strict=True))

    @abstractmethod
    def _torch_plain(self, H, samples: Samples):
        """The value of a full batch (sum reduction) by the definition, differentiable."""

    def _dense_masks(self, samples: Samples, device):
        """(positives, negatives) of every pair as dense boolean tensors (plain implementations)."""
        import torch

        idx = np.arange(samples.n)
        kind = self.kind_of_relation()[samples.relation(idx, idx)]
        np.fill_diagonal(kind, NONE)
        return torch.as_tensor(kind == POS, device=device), torch.as_tensor(kind == NEG, device=device)

    def scaled_gradient_blocks(self, H, samples, block: int = 2048):
        """``(log_excess, blocks)``: ``blocks()`` yields ``(start, stop, Ft)``, row blocks of
        (d (f - floor) / d G) / (f - floor) at G = H H^T (H a 2-D torch tensor), recomputed on
        every iteration of ``blocks()`` (matrix-free certificates)."""
        import torch

        samples = as_samples(samples)
        n = H.shape[0]
        if samples.batches is not None:  # mini-batches: dense blocks from the batch sum
            lex, Ft = self.dense_log_excess(self.distances(H.cpu().numpy(), samples), samples)
            F = torch.as_tensor(Ft, device=H.device)

            def dense_blocks():
                for start in range(0, n, block):
                    yield start, min(start + block, n), F[start:min(start + block, n)]

            return float(lex), dense_blocks
        with torch.no_grad():
            ev = self._torch_rows(H, samples)
            if ev is None:
                raise NotImplementedError(f"{self.name} has no row evaluator (gradient blocks)")
            lex_t = torch.logsumexp(torch.cat([ev.block(a, min(a + block, n)).lex_i
                                               for a in range(0, n, block)]), dim=-1)

        def blocks():
            with torch.no_grad():
                for start in range(0, n, block):
                    stop = min(start + block, n)
                    yield start, stop, ev.scaled(ev.block(start, stop), lex_t)

        return float(lex_t) + math.log(self._scale(samples)), blocks

    # ---- CVXPY -------------------------------------------------------------------------------
    def _cvxpy_rows(self, x, table: Table):
        """CVXPY expression of the full-batch loss (sum reduction) over a table whose values are
        the affine expression x (convex losses)."""
        raise NotImplementedError(f"{self.name} has no CVXPY form")

    def cvxpy_table(self, x, table: Table, samples=None):
        """The loss over an invariant G with values x (CVXPY, full batch), with the reduction."""
        scale = 1.0 if samples is None or table.weighted else self._scale(as_samples(samples))
        return self._cvxpy_rows(x, table) * scale

    def cvxpy_gram(self, G, samples):
        """CVXPY expression of the loss over an n x n Gram variable (convex losses)."""
        import cvxpy as cp

        samples = as_samples(samples)
        weights = self._batch_weights(samples)
        if samples.batches is None:
            return self._cvxpy_rows(cp.vec(G, order="C"), _dense_table(samples)) * weights[0]
        total = 0
        for w, (idx, s) in zip(weights, samples.batch_subsets, strict=True):
            sub = G[idx, :][:, idx]
            total = total + self._cvxpy_rows(cp.vec(sub, order="C"), _dense_table(s)) * w
        return total


def group_centred(H, y, k: int):
    """``(U, |U|^2)``: torch rows of H ((n, d) or (R, n, d)) minus their group's unit mean direction
    (e_1 where a group's sum vanishes), so that within a group 1 - h_i.h_j =
    (|u_i|^2 + |u_j|^2) / 2 - u_i.u_j keeps its relative precision near collapse, where
    1 - h_i.h_j itself is round-off (``Loss.distances`` does the same in numpy)."""
    import torch

    axis = H.dim() - 2
    sums = torch.zeros(H.shape[:-2] + (k, H.shape[-1]), dtype=H.dtype, device=H.device).index_add(axis, y, H)
    norms = sums.norm(dim=-1, keepdim=True)
    e1 = torch.zeros_like(sums)
    e1[..., 0] = 1.0
    ref = torch.where(norms > 0, sums / norms.clamp_min(torch.finfo(H.dtype).tiny), e1)
    U = H - ref.index_select(axis, y)
    return U, (U * U).sum(-1)


@dataclass(eq=False)
class BlockTerms:
    """What ``RowEvaluator.block`` returns for rows start:stop: ``lex_i`` (batch, rows), the log
    of each anchor's share of f - floor (-inf where it has none). An evaluator subclasses it with
    what its ``scaled`` reuses."""

    start: int
    stop: int
    lex_i: Any


class RowEvaluator(ABC):
    """Row blocks of a loss over H (torch): ``block(start, stop)`` returns :class:`BlockTerms`;
    ``scaled(terms, lex)`` returns (d (f - floor) / d G) / (f - floor) for those rows (batch,
    rows, n), given the total ``lex``."""

    @abstractmethod
    def block(self, start: int, stop: int) -> BlockTerms: ...

    @abstractmethod
    def scaled(self, terms: BlockTerms, lex): ...


_DENSE_TABLES: dict = {}


def _dense_table(samples: Samples) -> DenseTable:
    key = samples.key
    table = _DENSE_TABLES.get(key)
    if table is None:
        if len(_DENSE_TABLES) > 16:
            _DENSE_TABLES.clear()
        table = _DENSE_TABLES[key] = DenseTable(samples)
    return table


def _logsumexp(values) -> float:
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.isfinite(v).any():
        return -np.inf
    m = v[np.isfinite(v)].max()
    return float(m + np.log(np.exp(v - m).sum()))
