"""What a registered loss provides."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ufm.structure import GroupGram, Groups


class Loss(ABC):
    """A full-batch contrastive loss over unit embeddings, as a function of H and of G = H H^T.

    Conventions (DESIGN section 2): values are sums over anchors; ``reduction="mean"``
    divides by the number of samples n. Implementations must agree to float64 round-off.
    Every loss declares its floor; solvers and certificates work with the excess f - floor
    (in the log domain), which is what the geometry controls.
    """

    #: registry key, also the ``--loss`` spelling
    name: str = ""
    #: True if the loss is a convex function of the Gram matrix (so the relaxation applies)
    convex_in_gram: bool = False
    #: one line for ``--help`` and docs
    summary: str = ""

    @abstractmethod
    def torch_value(self, H, counts, tau: float, reduction: str = "sum"):
        """Loss of embeddings ``H`` of shape (n, d) or batched (R, n, d); differentiable."""

    def torch_value_and_grad(self, H, counts, tau: float):
        """Value (sum reduction) and gradient in H; autograd unless a loss gives a closed form."""
        import torch

        H = H.detach().requires_grad_(True)
        value = self.torch_value(H, counts, tau)
        (grad,) = torch.autograd.grad(value.sum(), H)
        return value.detach(), grad

    @abstractmethod
    def gram_value_and_grad(self, G: np.ndarray, counts, tau: float):
        """``(f(G), g)`` in float64 with ``g`` the symmetrised gradient (n x n)."""

    # ---- floor and excess (DESIGN sections 2 and 5) ---------------------------------------
    @abstractmethod
    def floor(self, counts) -> float:
        """Geometry-independent lower bound that the loss approaches as negatives move apart."""

    def degenerate(self, counts) -> str | None:
        """Why the problem has no geometry to optimise (e.g. the loss does not depend on it),
        or None."""
        return None

    @abstractmethod
    def dense_log_excess(self, D: np.ndarray, counts, tau: float):
        """``(log(f - floor), Ft)`` at distances D = 1 - G (n x n) with
        Ft = (d(f - floor) / dG) / (f - floor), rows = anchors, not symmetrised."""

    @abstractmethod
    def distances(self, H: np.ndarray, counts) -> np.ndarray:
        """n x n distances 1 - h_i.h_j, to the precision :meth:`dense_log_excess` needs."""

    @abstractmethod
    def torch_log_excess_and_grad(self, H, counts, tau: float, block: int = 4096):
        """log(f - floor) of H ((n, d) or (R, n, d)) and its gradient in H, blocked."""

    @abstractmethod
    def scaled_gradient_blocks(self, H, counts, tau: float, block: int = 2048):
        """``(log_excess, blocks)`` with ``blocks()`` yielding ``(start, stop, Ft)`` row blocks,
        for matrix-free certificates at large n."""

    @abstractmethod
    def group_log_excess(self, groups: Groups, dist: GroupGram, tau: float):
        """``(log(f - floor), gt)`` at a group-symmetric G given by its distances; ``gt`` the
        symmetrised gradient of log(f - floor) over the n x n G, in group form."""

    @abstractmethod
    def cvxpy_gram(self, G, counts, tau: float):
        """CVXPY expression of the loss over an n x n Gram variable (convex losses only)."""

    @abstractmethod
    def group_value_and_grad(self, groups: Groups, gram: GroupGram, tau: float, excess=False):
        """``(f, g)`` at a group-symmetric G; ``g`` (a :class:`GroupGram`) holds the entries
        of the symmetrised n x n gradient. O(q^2) for q groups, whatever n.

        With ``excess=True`` the value is ``f - group_offset(groups)``, computed without
        cancellation (at small tau f is a large constant plus a tiny geometry-dependent part).
        """

    def group_offset(self, groups: Groups) -> float:
        """A constant part of f at the group level, split off by ``excess=True``."""
        return 0.0

    @abstractmethod
    def cvxpy_group(self, groups: Groups, within, same, cross, tau: float):
        """CVXPY expression at a group-symmetric G given by expressions for its entries
        (``within`` (q,), ``same`` (q,), ``cross`` (q, q) symmetric; diagonal is 1)."""

    def gram_value(self, G: np.ndarray, counts, tau: float) -> float:
        return self.gram_value_and_grad(G, counts, tau)[0]


def check_reduction(reduction: str) -> str:
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    return reduction
