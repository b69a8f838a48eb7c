"""A test-only loss whose optimum does not collapse: squared distance of G to target cosines,

    f(G) = (1/2) sum_i [ sum_{j in P(i)} (G_ij - rho)^2 + sum_{l in N(i)} (G_il - sigma)^2 ],

convex in G, floor 0. With rho < 1 and sigma below what k classes can reach, the optimum spreads
every class (within-class cosine < 1): it exercises the release of collapse in the factored solve,
the rank and lift of non-collapsed geometry and the certificate there. It is written as a new
pairwise loss would be (``ufm.losses.pairwise``): relations, weights and phi, nothing else."""

from __future__ import annotations

import numpy as np

from ufm.losses.pairwise import PairwiseLoss
from ufm.params import Param
from ufm.samples import SAME_GROUP
from ufm.tables import NEG, POS


class Spread(PairwiseLoss):
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

    def _is_anchor(self, npos, nneg):
        return (npos + nneg) > 0  # every sample with another sample

    def kind_weights(self, npos, nneg):
        return np.ones_like(npos), np.ones_like(nneg)  # sums, not means

    def phi(self, kind, dist, xp):
        return 0.5 * (1 - dist - (self.rho if kind == POS else self.sigma)) ** 2

    def dphi(self, kind, dist, xp):
        return dist - 1 + (self.rho if kind == POS else self.sigma)
