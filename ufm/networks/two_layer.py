"""A two-layer network in place of free embeddings (Tian 2023, section 6): K locations, each with
its own M hidden units reading only that location's one-hot token (x_k in R^V), a homogeneous
activation h, and a linear read-out to the embedding, normalised onto the sphere:

    z(x) = V [h(W_1 x_1); ...; h(W_K x_K)],   embedding = z / |z|,

W_k in R^(M x V), V in R^(d x K M). Any loss of the family is posed on the embeddings of the n
samples' two views (instances x views), and the network is trained through it.

Per-unit specialisation (:func:`specialisation`): the share of a hidden unit's response variance
carried by one pattern token at its location.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ufm.networks.one_layer import activate, check_activation


@dataclass
class TwoLayer:
    W: object  # torch (K, M, V): hidden units per location
    V: object  # torch (d, K M): read-out
    activation: str

    @classmethod
    def random(cls, locations: int, vocab: int, hidden: int, out_dim: int, activation: str, seed: int = 0):
        import torch

        check_activation(activation)
        gen = torch.Generator().manual_seed(int(seed))
        W = torch.randn(locations, hidden, vocab, generator=gen, dtype=torch.float64) / np.sqrt(vocab)
        V = torch.randn(out_dim, locations * hidden, generator=gen, dtype=torch.float64)
        return cls(W / 1.0, V / np.sqrt(locations * hidden), activation)

    def parameters(self) -> list:
        return [self.W, self.V]

    def hidden(self, x):
        """h(W_k x_k) for every location: (n, K M)."""
        n = x.shape[0]
        K, M, Vv = self.W.shape
        pre = (x.reshape(n, K, Vv)[:, :, None, :] * self.W[None]).sum(-1)  # (n, K, M)
        return activate(pre, self.activation).reshape(n, K * M)

    def embed(self, x):
        """Unit embeddings (n, d)."""
        z = self.hidden(x) @ self.V.T
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-300)


def specialisation(W: np.ndarray, tokens_by_location: list[set[int]], activation: str) -> np.ndarray:
    """Per hidden unit (K, M): the share of the unit's response variance that one pattern token
    carries. A unit at location k answers token t with r_t = h(w_t) (inputs are one-hot); with
    c = r - mean_t r, the score is max over the tokens some pattern fixes at k of
    c_t^2 / sum_t c_t^2 x V / (V - 1) (1: the unit tells one pattern token from all others, the
    most V centred responses allow; NaN where no pattern
    fixes a token, or where the unit answers every token alike: a dead unit)."""
    import torch

    from ufm.networks.one_layer import activate

    r = activate(torch.as_tensor(W), activation).numpy()  # (K, M, V)
    c = r - r.mean(axis=2, keepdims=True)
    total = (c * c).sum(axis=2)
    K, M, V = W.shape
    out = np.full((K, M), np.nan)
    alive = total > 1e-12 * max(float(total.max(initial=0.0)), 1e-300)
    for k in range(K):
        tokens = sorted(tokens_by_location[k])
        if tokens:
            # the largest share one of V centred responses can carry is (V - 1) / V: scaled to 1
            share = (c[k][:, tokens] ** 2).max(axis=1) / np.maximum(total[k], 1e-300) * V / (V - 1)
            out[k] = np.where(alive[k], share, np.nan)
    return out


def pattern_tokens(directions: np.ndarray, locations: int, vocab: int) -> list[set[int]]:
    """The tokens the patterns fix at each location, from the patterns' one-hot directions."""
    d = directions.reshape(len(directions), locations, vocab) > 0
    return [set(np.nonzero(d[:, k, :].any(axis=0))[0].tolist()) for k in range(locations)]
