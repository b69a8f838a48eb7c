"""Data for global modulation (Tian 2023, section 6 and appendix "Global modulation when C = 2 and
M = 1"): local tokens that are *discriminative* of the global pattern against tokens *shared*
across global patterns.

The paper's finding: with a global latent z (the global pattern) and locations independent given
z, the contrastive dynamics of the units at location k are a local term (the within-pattern
variance E_z Var[x_k | z]) plus a top-down term delta_k Delta_k Delta_k^T w_k, Delta_k =
E[x_k | z = 1] - E[x_k | z = 0]: the directions along which the location's token distribution
changes with the global pattern get an extra push, fed by how much the units of the other
locations already answer the global pattern; so "local patterns discriminative from the
perspective of global-level patterns are prioritized to learn". A token whose distribution is the
same under every global pattern (Delta = 0 along it) gets no such push.

The data model (:func:`modulation_data`). G global patterns, drawn uniformly (balanced: n/G
samples each, rounded); K locations of three kinds, at random positions, independent given the
pattern:

- ``discriminative`` locations: every pattern g fixes its own token t_g there (G distinct tokens
  per location): a token is fixed by exactly one pattern, P(t | g) = 1[g = g_t]; seeing it tells
  its global pattern apart. Present in 1/G of the samples.
- ``shared`` locations: the patterns are split into G / s groups of s (``shared_by``), and what a
  group shares depends on ``shared_mode``:

  - ``fixed`` (the default, the paper's): each group fixes one token there, the same token for
    each of its s patterns, P(t | g) = 1[g in the group]: deterministic given the pattern, so the
    two views (which share the pattern) share it. It tells the groups apart, not the s patterns of
    a group. Default s = 2 (s = G would fix one token for every sample: a constant input, which
    no contrastive loss can use).
  - ``drawn`` (frequency-matched): each group owns s tokens there, and each sample draws one of
    them (balanced within each pattern), kept in both views. P(t | g) = 1/s for each pattern of
    the group; default s = G, so that a token's distribution is the same under every pattern,
    Delta = 0.
- the other locations are wildcards (background): a uniform token, drawn afresh for each view.

Both views keep every fixed token (discriminative and shared) and resample the wildcards, as
:func:`ufm.networks.data.pattern_data`.

Why ``fixed`` is the paper's. The paper's simulation (facebookresearch/luckmatters,
``ssl/real-dataset/bn_gen.py``: ``Distribution.__init__`` builds each global pattern as a token
drawn from the location's few allowed tokens, ``num_tokens_per_pos``, at ``pattern_len`` random
locations and a wildcard (-1) at the others; ``Generator.sample`` draws a pattern per sample and
grounds the wildcards, ``_ground_tokens``, separately for each view) has no token drawn per
sample: every non-wildcard token is a function of the pattern, kept in both views, and a token
"shared across global patterns" is the same token fixed at a location by several patterns
(``Distribution.symbol_freq`` counts them), which appears with the frequency of those patterns.
``drawn`` tokens, varying from instance to instance and kept across views, have no counterpart
there.

The confound of each mode. ``fixed``: frequency: a shared token is in s/G of the samples, a
discriminative one in 1/G (with uniform patterns a token fixed deterministically by s patterns is
s times as frequent; weighting the patterns to match frequencies would give both classes the same
between-pattern variance, and no contrast the paper's argument speaks to: measured on a prototype
with such weights, 6 + 6 tokens, 3 seeds, the shared tokens end ahead by about 0.1 in median
score, ReLU and linear alike, seed to seed spread 0.06-0.09); its between-pattern variance
(s/G)(1 - s/G) is the larger one for s <= G/2. ``drawn``: instance variation: every discriminative
and every shared token is in exactly 1/G of the samples (n divisible by G s: exactly), both
view-invariant, so their variance p (1 - p) agrees; but all of a discriminative token's variance is
between patterns (Delta), all of a shared token's (s = G) within patterns: it varies from
instance to instance, independently of every other location, so it carries more instance
identity (S log G bits over S shared locations, against log G for all discriminative locations
together, which repeat the one pattern), which instance discrimination rewards. Tokens never
fixed at a location (every token at a wildcard location, the unused ones at the others) are
background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ufm.errors import UFMInputError
from ufm.networks.data import TwoViews

#: the classes of a (location, token), coded in :attr:`ModulationData.token_class`
CLASSES = ("background", "discriminative", "shared")
BACKGROUND, DISCRIMINATIVE, SHARED = range(3)
#: how a shared location's token is chosen (module docstring): fixed by the pattern's group (the
#: paper's), or drawn per sample from the group's tokens (frequency-matched)
SHARED_MODES = ("fixed", "drawn")
DEFAULT_MODE = "fixed"


@dataclass(frozen=True)
class ModulationData(TwoViews):
    """A :class:`TwoViews` (``directions``: each pattern's discriminative tokens, one-hot,
    normalised) with, per (location, token), its class and its conditional frequency."""

    token_class: np.ndarray  # (K, V) int: BACKGROUND, DISCRIMINATIVE or SHARED
    given: np.ndarray  # (G, K, V): P(token t at location k, kept in both views | pattern g)
    locations: int
    vocab: int
    shared_by: int
    shared_mode: str  # one of SHARED_MODES

    @property
    def patterns(self) -> int:
        return self.given.shape[0]

    def tokens(self, cls: str) -> np.ndarray:
        """(T, 2) the (location, token) pairs of class ``cls`` (one of :data:`CLASSES`), in order."""
        if cls not in CLASSES:
            raise UFMInputError("class", f"unknown token class {cls!r} (choose from {', '.join(CLASSES)})")
        return np.argwhere(self.token_class == CLASSES.index(cls))


def _integer(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise UFMInputError(name, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """n labels in range(k), each used floor(n/k) or ceil(n/k) times, in random order."""
    return rng.permutation(np.arange(n) % k)


def default_shared_by(patterns: int, shared_mode: str) -> int:
    """The ``shared_by`` left out: 2 patterns per group with ``fixed`` shared tokens (a token
    telling apart only pairs of patterns; s = G would fix one token for every sample, a constant
    input), all G with ``drawn`` ones (one group: the same distribution under every pattern)."""
    return 2 if shared_mode == "fixed" else int(patterns)


def modulation_data(n: int, locations: int = 6, vocab: int = 8, patterns: int = 4, discriminative: int = 2,
                    shared: int = 2, shared_by: int | None = None, seed: int = 0,
                    shared_mode: str = DEFAULT_MODE) -> ModulationData:
    """``n`` samples of the global-modulation data model (module docstring): ``patterns`` global
    patterns G; ``discriminative`` locations where each pattern fixes a token of its own;
    ``shared`` locations where the patterns, in groups of ``shared_by`` (default
    :func:`default_shared_by`: 2 fixed, all G drawn), share tokens: ``shared_mode`` ``fixed``
    (the default, the paper's: each group fixes one token, kept across views) or ``drawn`` (each
    group owns ``shared_by`` tokens, one drawn per sample and kept across views); the remaining
    ``locations - discriminative - shared`` locations wildcards. Needs vocab >= G and shared_by
    dividing G. Seeded: ``drawn`` reproduces the data of the model before ``shared_mode``
    existed, bit for bit."""
    n = _integer(n, "samples", 2)
    K = _integer(locations, "locations", 2)
    V = _integer(vocab, "vocab", 2)
    G = _integer(patterns, "patterns", 2)
    D = _integer(discriminative, "discriminative", 1)
    S = _integer(shared, "shared", 1)
    if shared_mode not in SHARED_MODES:
        raise UFMInputError("shared_mode", f"unknown shared_mode {shared_mode!r} (choose from "
                            f"{', '.join(SHARED_MODES)})")
    mode = shared_mode
    s = default_shared_by(G, mode) if shared_by is None else _integer(shared_by, "shared_by", 2)
    if D + S > K:
        raise UFMInputError("locations", f"{D} discriminative + {S} shared locations need at least "
                            f"{D + S} locations, got {K}")
    if V < G:
        raise UFMInputError("vocab", f"each of the {G} patterns needs a token of its own at a "
                            f"discriminative location: vocab >= {G}, got {V}")
    if s > G or G % s:
        raise UFMInputError("shared_by", f"must divide the {G} patterns (groups of equal size), got {s}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(K)
    disc, shar = np.sort(order[:D]), np.sort(order[D:D + S])
    pattern = _balanced(rng, n, G)
    token_class = np.full((K, V), BACKGROUND)
    given = np.zeros((G, K, V))
    fixed = np.full((n, K), -1)  # the token kept in both views, -1: wildcard
    for k in disc:
        own = rng.permutation(V)[:G]  # own[g]: pattern g's token at k
        token_class[k, own] = DISCRIMINATIVE
        given[np.arange(G), k, own] = 1.0
        fixed[:, k] = own[pattern]
    for k in shar:
        if mode == "fixed":  # one token per group, fixed by each of its s patterns
            tokens = rng.permutation(V)[:G // s]  # tokens[j]: group j's token at k
            group = rng.permutation(G).reshape(G // s, s)  # the s patterns of each group
            token_class[k, tokens] = SHARED
            for members, t in zip(group, tokens, strict=True):
                given[members, k, t] = 1.0
                fixed[np.isin(pattern, members), k] = t
            continue
        tokens = rng.permutation(V)[:G].reshape(G // s, s)  # the s tokens of each group
        group = rng.permutation(G).reshape(G // s, s)  # the s patterns of each group
        token_class[k, tokens.ravel()] = SHARED
        for members, owned in zip(group, tokens, strict=True):
            given[np.ix_(members, [k], owned)] = 1.0 / s
            for g in members:
                rows = np.flatnonzero(pattern == g)
                fixed[rows, k] = owned[_balanced(rng, rows.size, s)]

    def view() -> np.ndarray:
        tokens = np.where(fixed >= 0, fixed, rng.integers(0, V, size=(n, K)))
        x = np.zeros((n, K, V))
        x[np.arange(n)[:, None], np.arange(K)[None, :], tokens] = 1.0
        return x.reshape(n, K * V)

    x1, x2 = view(), view()
    directions = np.zeros((G, K, V))
    directions[:, disc, :] = given[:, disc, :]
    directions = directions.reshape(G, K * V) / np.sqrt(D)
    return ModulationData(x1, x2, pattern, directions, token_class, given, K, V, s, mode)
