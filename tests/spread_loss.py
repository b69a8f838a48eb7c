"""A test-only loss whose optimum does not collapse: squared distance of G to target cosines,

    f(G) = (1/2) sum_i [ sum_{j in P(i)} (G_ij - rho)^2 + sum_{l in N(i)} (G_il - sigma)^2 ],

convex in G, floor 0. With rho < 1 and sigma below what k classes can reach, the optimum spreads
every class (within-class cosine < 1): it exercises the release of collapse in the factored solve,
the rank and lift of non-collapsed geometry and the certificate there. It is written against the
Loss interface only (rows, torch, CVXPY), as a new loss would be."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from ufm.losses.base import Loss, RowEvaluator
from ufm.params import Param
from ufm.samples import SAME_GROUP
from ufm.tables import NEG, POS


class Spread(Loss):
    name = "test_spread"
    title = "squared distance to target cosines (test only)"
    formula = "(1/2) sum_i [sum_P (G_ij - rho)^2 + sum_N (G_il - sigma)^2]"
    source = "tests"
    params = (
        Param("rho", 0.4, "target cosine inside a class"),
        Param("sigma", -0.9, "target cosine between classes"),
    )
    convex_in_gram = True

    def kind_of_relation(self) -> np.ndarray:
        k = np.full(4, NEG, dtype=np.int8)
        k[SAME_GROUP] = k[SAME_GROUP | 2] = POS
        return k

    def _anchors(self, samples) -> int:
        return samples.n

    def _floor(self, samples) -> float:
        return 0.0

    def _targets(self, kind):
        return np.where(kind == POS, self.rho, self.sigma)

    def _rows_log_excess(self, X, mult, kind, weight):
        live = (kind == POS) | (kind == NEG)
        r = np.where(live, (1.0 - X) - self._targets(kind), 0.0)
        excess = float((weight * (mult * r * r).sum(axis=1)).sum()) / 2
        if excess <= 0:
            return -np.inf, np.zeros_like(X)
        return math.log(excess), r / excess

    def _cvxpy_rows(self, x, table):
        import cvxpy as cp

        kind = table.kinds(self.kind_of_relation())
        live = ((kind == POS) | (kind == NEG)) & (table.mult > 0)
        w = (table.anchor_weight[:, None] * table.mult / 2)[live]
        idx = np.asarray(table.value_index)[live]
        t = self._targets(kind)[live]
        return cp.sum(cp.multiply(w, cp.square(x[idx] - t)))

    def _torch_rows(self, H, samples):
        return _SpreadRows(H, samples, self)

    def _torch_plain(self, H, samples):
        import torch

        y = torch.as_tensor(samples.labels, device=H.device)
        same = y[:, None] == y[None, :]
        G = H @ H.transpose(-1, -2)
        t = torch.where(same, torch.full_like(G, self.rho), torch.full_like(G, self.sigma))
        off = ~torch.eye(samples.n, dtype=torch.bool, device=H.device)
        return 0.5 * torch.where(off, (G - t) ** 2, torch.zeros_like(G)).sum((-1, -2))


class _SpreadRows(RowEvaluator):
    def __init__(self, H, samples, loss):
        import torch

        self.H, self.loss = H, loss
        self.y = torch.as_tensor(samples.labels, device=H.device)

    def block(self, start, stop):
        import torch

        G = self.H[..., start:stop, :] @ self.H.transpose(-1, -2)
        same = self.y[start:stop, None] == self.y[None, :]
        rows = torch.arange(stop - start, device=G.device)
        r = G - torch.where(same, torch.full_like(G, self.loss.rho), torch.full_like(G, self.loss.sigma))
        r[..., rows, rows + start] = 0.0
        return SimpleNamespace(r=r, lex_i=torch.log(0.5 * (r * r).sum(-1)))

    def scaled(self, t, lex):
        import torch

        return t.r * torch.exp(-lex).reshape(lex.shape + (1, 1))
