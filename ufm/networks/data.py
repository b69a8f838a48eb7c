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
    K, V, G = _positive(locations, "locations"), _positive(vocab, "vocab", 2), _positive(patterns, "patterns")
    fixed = _positive(fixed, "fixed")
    if fixed > K:
        raise UFMInputError("fixed", f"a pattern fixes at most the {K} locations, got {fixed}")
    rng = np.random.default_rng(seed)
    where = np.array([rng.choice(K, size=fixed, replace=False) for _ in range(G)])  # (G, fixed)
    token = rng.integers(0, V, size=(G, fixed))
    pattern = rng.integers(0, G, size=n)

    def view():
        tokens = rng.integers(0, V, size=(n, K))  # wildcards, fresh for each view
        tokens[np.arange(n)[:, None], where[pattern]] = token[pattern]
        x = np.zeros((n, K, V))
        x[np.arange(n)[:, None], np.arange(K)[None, :], tokens] = 1.0
        return x.reshape(n, K * V)

    x1, x2 = view(), view()
    directions = np.zeros((G, K, V))
    directions[np.arange(G)[:, None], where, token] = 1.0
    directions = directions.reshape(G, K * V) / np.sqrt(fixed)
    return TwoViews(x1, x2, pattern, directions)


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
