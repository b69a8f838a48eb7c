"""Seeded inputs with two views, for networks in place of free embeddings.

- :func:`pattern_data`: Tian (2023), section 6: K locations each hold one token of a vocabulary
  of ``vocab`` tokens (one-hot, so x has K x vocab entries); G global patterns each fix the tokens
  of some locations; a sample draws a pattern, takes its fixed tokens and fills the other
  (wildcard) locations at random; its second view keeps the fixed tokens and resamples every
  wildcard location.
- :func:`pattern_mixture`: P separated patterns: x = m_p mu_p + noise with orthonormal mu_p and
  magnitudes m_p; the second view redraws the noise.

Both return a :class:`TwoViews`: the two views (n, D), each sample's pattern and the unit
direction of every pattern (the fixed tokens' one-hot entries, or mu_p), against which learned
weights are aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ufm.errors import UFMInputError


@dataclass(frozen=True)
class TwoViews:
    x1: np.ndarray  # (n, D) first view
    x2: np.ndarray  # (n, D) second view
    pattern: np.ndarray  # (n,) pattern index of each sample
    directions: np.ndarray  # (P, D) unit direction of each pattern

    @property
    def n(self) -> int:
        return self.x1.shape[0]

    @property
    def dim(self) -> int:
        return self.x1.shape[1]


def _positive(value, name: str, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise UFMInputError(f"--{name.replace('_', '-')}", f"must be an integer >= {minimum}, got {value}")
    return int(value)


def pattern_data(n: int, locations: int = 6, vocab: int = 12, patterns: int = 4, fixed: int = 3,
                 seed: int = 0) -> TwoViews:
    """Tian (2023) pattern data: ``patterns`` global patterns over ``locations`` locations, each
    fixing the tokens of ``fixed`` random locations (a token drawn from ``vocab``); the other
    locations are wildcards, filled uniformly at random, and resampled for the second view.
    x is the concatenation of the one-hot vectors of the K locations (D = K vocab)."""
    n = _positive(n, "samples", 2)
    return pattern_source(locations, vocab, patterns, fixed, seed).draw(n)


def pattern_mixture(n: int, patterns: int = 4, dim: int = 16, noise: float = 0.05,
                    magnitudes=None, seed: int = 0) -> TwoViews:
    """P separated patterns: x = m_p mu_p + noise (N(0, noise^2 I)), mu_p orthonormal (random
    rotation of the first P axes), m_p the ``magnitudes`` (default all 1), the pattern of each
    sample uniform; the second view redraws the noise."""
    n = _positive(n, "samples", 2)
    P, D = _positive(patterns, "patterns"), _positive(dim, "dim")
    if P > D:
        raise UFMInputError("patterns", f"at most dim = {D} orthogonal patterns, got {P}")
    if not np.isfinite(noise) or noise < 0:
        raise UFMInputError("noise", f"must be a finite number >= 0, got {noise}")
    m = np.ones(P) if magnitudes is None else np.asarray(magnitudes, dtype=float)
    if m.shape != (P,) or not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise UFMInputError("magnitudes", f"expected {P} positive numbers, got {magnitudes}")
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    mu = Q[:, :P].T  # (P, D) orthonormal
    pattern = rng.integers(0, P, size=n)
    centre = m[pattern, None] * mu[pattern]
    x1 = centre + noise * rng.standard_normal((n, D))
    x2 = centre + noise * rng.standard_normal((n, D))
    return TwoViews(x1, x2, pattern, mu)


@dataclass(frozen=True)
class PatternSource:
    """The patterns of Tian (2023)'s pattern data, from which samples are drawn: pattern ``g`` fixes
    token ``token[g, j]`` at location ``where[g, j]``; the other locations are wildcards. Made by
    :func:`pattern_source`; :meth:`draw` gives fresh samples (each step's batch of a run on fresh
    batches, as ``bn_gen.py``'s ``Generator.sample`` in the paper's code)."""

    locations: int
    vocab: int
    where: np.ndarray  # (G, fixed) locations each pattern fixes
    token: np.ndarray  # (G, fixed) the token it fixes there
    rng: np.random.Generator  # the draws of :meth:`draw` when it is given no generator

    @property
    def directions(self) -> np.ndarray:
        """(G, K V): each pattern's fixed one-hot entries, normalised (as :class:`TwoViews`)."""
        G, fixed = self.where.shape
        d = np.zeros((G, self.locations, self.vocab))
        d[np.arange(G)[:, None], self.where, self.token] = 1.0
        return d.reshape(G, self.locations * self.vocab) / np.sqrt(fixed)

    def draw(self, n: int, rng: np.random.Generator | None = None) -> TwoViews:
        """n samples, two views each: a uniform pattern, its fixed tokens in both views, every
        wildcard location filled uniformly at random, independently for each view."""
        n = _positive(n, "samples", 2)
        rng = self.rng if rng is None else rng
        K, V = self.locations, self.vocab
        pattern = rng.integers(0, len(self.where), size=n)

        def view():
            tokens = rng.integers(0, V, size=(n, K))
            tokens[np.arange(n)[:, None], self.where[pattern]] = self.token[pattern]
            x = np.zeros((n, K, V))
            x[np.arange(n)[:, None], np.arange(K)[None, :], tokens] = 1.0
            return x.reshape(n, K * V)

        x1, x2 = view(), view()
        return TwoViews(x1, x2, pattern, self.directions)


def pattern_source(locations: int = 6, vocab: int = 12, patterns: int = 4, fixed: int = 3, seed: int = 0,
                   tokens_per_location: int | None = None) -> PatternSource:
    """The patterns of :func:`pattern_data` and a generator of samples: ``pattern_source(K, V, G,
    f, seed).draw(n)`` is ``pattern_data(n, K, V, G, f, seed)`` draw for draw. With
    ``tokens_per_location`` P, each location first gets P allowed tokens (a random P of the V) and
    a pattern fixes one of its location's allowed tokens (``distri.num_tokens_per_pos`` of the
    paper's ``bn_gen.py``: at most P pattern tokens per location); wildcards still take any of the
    V tokens. (Another draw from the seed than without it.)"""
    K, V, G = _positive(locations, "locations"), _positive(vocab, "vocab", 2), _positive(patterns, "patterns")
    fixed = _positive(fixed, "fixed")
    if fixed > K:
        raise UFMInputError("fixed", f"a pattern fixes at most the {K} locations, got {fixed}")
    rng = np.random.default_rng(seed)
    where = np.array([rng.choice(K, size=fixed, replace=False) for _ in range(G)])  # (G, fixed)
    if tokens_per_location is None:
        token = rng.integers(0, V, size=(G, fixed))
    else:
        P = _positive(tokens_per_location, "tokens_per_location")
        if P > V:
            raise UFMInputError("tokens_per_location", f"at most the vocab's {V} tokens, got {P}")
        allowed = np.array([rng.choice(V, size=P, replace=False) for _ in range(K)])  # (K, P)
        token = allowed[where, rng.integers(0, P, size=(G, fixed))]
    return PatternSource(K, V, where, token, rng)
