"""A two-layer network in place of free embeddings (Tian 2023, section 6): K locations, each with
its own M hidden units reading only that location's one-hot token (x_k in R^V), a homogeneous
activation h, and a linear read-out to the embedding, normalised onto the sphere:

    z(x) = V [h(W_1 x_1); ...; h(W_K x_K)],   embedding = z / |z|,

W_k in R^(M x V), V in R^(d x K M). Any loss of the family is posed on the embeddings of the n
samples' two views (instances x views), and the network is trained through it. With
``batchnorm`` the hidden layer is batch-normalised before the read-out, as in the paper's code
(``bn_gen.py``: ``Model.forward`` applies ``BatchNormExt`` to h(W x), no affine parameters):

    z(x) = V BN([h(W_1 x_1); ...; h(W_K x_K)]),

each hidden unit centred and scaled by the mean and (biased) variance over the batch, each view's
batch by its own statistics (the paper passes the two views through the model one at a time).

Measures of what the hidden units learned, all read from W alone (inputs are one-hot, so a unit
at location k answers token t with h(W_k[m, t])):

- :func:`specialisation`, per unit: the share of its response variance carried by one pattern
  token at its location (the project's measure); :func:`dedicated_tokens`: that token.
- :func:`paper_score`, per (location, pattern token): the best unit's weight on the token over its
  weight norm, the measure of the paper's code (``bn_gen.py``, ``check_result``); its mean over
  the pattern tokens of a location, averaged over the locations, is the paper's ``loc_all``.
- :func:`token_coverage`, per (location, pattern token): whether some unit is dedicated to it
  (specialised to it at the given share): how many pattern tokens get a unit of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ufm.errors import UFMInputError
from ufm.networks.one_layer import activate, check_activation

#: BatchNorm of the hidden layer: off; on (the gradient flows through the batch's mean and
#: variance, ``bn_spec.backprop_mean`` and ``backprop_var`` true, ``config/bn_gen.yaml``);
#: detach_var (the variance is held constant in the backward pass, ``bn_spec.backprop_var=false``,
#: the paper's Section 5 command in ``ssl/real-dataset/README.md``)
BATCHNORMS = ("off", "on", "detach_var")
#: BatchNormExt's eps (``bn_gen.py``)
BN_EPS = 1e-5
#: activations for which a unit w and -w carry the same information (h odd or even): their weights
#: are scored by magnitude (the paper's code takes |w| for linear units)
SIGN_FREE = ("linear", "quadratic")


def check_batchnorm(batchnorm: str) -> str:
    if batchnorm not in BATCHNORMS:
        raise UFMInputError("batchnorm", f"unknown batchnorm {batchnorm!r} (choose from "
                            f"{', '.join(BATCHNORMS)})")
    return batchnorm


@dataclass
class TwoLayer:
    W: object  # torch (K, M, V): hidden units per location
    V: object  # torch (d, K M): read-out
    activation: str
    batchnorm: str = "off"  # one of BATCHNORMS

    @classmethod
    def random(cls, locations: int, vocab: int, hidden: int, out_dim: int, activation: str, seed: int = 0,
               batchnorm: str = "off"):
        import torch

        check_activation(activation)
        check_batchnorm(batchnorm)
        gen = torch.Generator().manual_seed(int(seed))
        W = torch.randn(locations, hidden, vocab, generator=gen, dtype=torch.float64) / np.sqrt(vocab)
        V = torch.randn(out_dim, locations * hidden, generator=gen, dtype=torch.float64)
        return cls(W / 1.0, V / np.sqrt(locations * hidden), activation, batchnorm)

    def parameters(self) -> list:
        return [self.W, self.V]

    def hidden(self, x):
        """h(W_k x_k) for every location: (n, K M)."""
        n = x.shape[0]
        K, M, Vv = self.W.shape
        pre = (x.reshape(n, K, Vv)[:, :, None, :] * self.W[None]).sum(-1)  # (n, K, M)
        return activate(pre, self.activation).reshape(n, K * M)

    def normalise(self, y, views: int = 1):
        """BatchNorm of the hidden layer y (n, K M) when it is on: rows in instance-major order with
        ``views`` views each (row i v + j: instance i, view j), each view's rows centred and scaled
        by their own mean and biased variance (+ eps)."""
        if self.batchnorm == "off":
            return y
        n, width = y.shape
        if n % views:
            raise ValueError(f"{n} rows are not instances x {views} views")
        g = y.reshape(n // views, views, width)
        mean, var = g.mean(dim=0, keepdim=True), g.var(dim=0, unbiased=False, keepdim=True)
        if self.batchnorm == "detach_var":
            var = var.detach()
        return ((g - mean) / (var + BN_EPS).sqrt()).reshape(n, width)

    def embed(self, x, views: int = 1):
        """Unit embeddings (n, d); with BatchNorm, the batch x holds instances x ``views`` views
        (instance-major) and each view is normalised by its own statistics."""
        z = self.normalise(self.hidden(x), views) @ self.V.T
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


def dedicated_tokens(W: np.ndarray, tokens_by_location: list[set[int]], activation: str) -> np.ndarray:
    """Per hidden unit (K, M): the pattern token at its location whose share of the unit's
    response variance is the largest (the token :func:`specialisation` scores; ties: the lowest),
    -1 where no pattern fixes a token at the location or the unit is dead."""
    import torch

    r = activate(torch.as_tensor(W), activation).numpy()  # (K, M, V)
    c = r - r.mean(axis=2, keepdims=True)
    total = (c * c).sum(axis=2)
    K, M, _ = W.shape
    out = np.full((K, M), -1, dtype=np.int64)
    alive = total > 1e-12 * max(float(total.max(initial=0.0)), 1e-300)
    for k in range(K):
        tokens = np.array(sorted(tokens_by_location[k]), dtype=np.int64)
        if tokens.size:
            best = tokens[np.argmax(c[k][:, tokens] ** 2, axis=1)]
            out[k] = np.where(alive[k], best, -1)
    return out


def token_coverage(W: np.ndarray, tokens_by_location: list[set[int]], activation: str,
                   threshold: float) -> np.ndarray:
    """Per (location, token) (K, V), True where the token is a pattern token at the location and
    some unit there is dedicated to it: its :func:`specialisation` is at least ``threshold`` and the
    token is the one carrying it (:func:`dedicated_tokens`). The fraction of pattern tokens covered
    says how many of the patterns' tokens get a unit of their own (diverse specialisation), which a
    fraction of specialised units does not (many units may specialise to one token)."""
    share = specialisation(W, tokens_by_location, activation)
    best = dedicated_tokens(W, tokens_by_location, activation)
    K, _, V = W.shape
    covered = np.zeros((K, V), dtype=bool)
    for k in range(K):
        for t in tokens_by_location[k]:
            covered[k, t] = bool(np.any((best[k] == t) & (share[k] >= threshold)))
    return covered


def paper_score(W: np.ndarray, tokens_by_location: list[set[int]], activation: str) -> np.ndarray:
    """Per (location, token) (K, V): the measure of the paper's code (Tian 2023; ``bn_gen.py``,
    ``check_result``): for a pattern token t at location k, the largest over the location's units
    of W_k[m, t] / (|W_k[m]| + max(max|W_k| / 1000, 1e-6)) (1: a unit whose weight is all on t);
    for sign-free activations (linear, quadratic: w and -w answer alike) |W_k[m, t]|. NaN where no
    pattern fixes t at k. The paper's ``loc<k>`` is the mean of row k over its pattern tokens, its
    ``loc_all`` the mean of those over the locations (:func:`paper_summary`)."""
    W = np.asarray(W, dtype=float)
    K, _, V = W.shape
    out = np.full((K, V), np.nan)
    for k in range(K):
        tokens = sorted(tokens_by_location[k])
        if not tokens:
            continue
        w = W[k]
        ratio = w[:, tokens] / (np.linalg.norm(w, axis=1) + max(np.abs(w).max() / 1000, 1e-6))[:, None]
        if activation in SIGN_FREE:
            ratio = np.abs(ratio)
        out[k, tokens] = ratio.max(axis=0)
    return out


def paper_summary(score: np.ndarray) -> float | None:
    """The paper's ``loc_all`` from :func:`paper_score`: the mean over the locations that have
    pattern tokens of the mean of their tokens' scores (None where no location has any)."""
    rows = [np.mean(r[np.isfinite(r)]) for r in score if np.isfinite(r).any()]
    return float(np.mean(rows)) if rows else None
