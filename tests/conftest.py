import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_unit(rng, n, d):
    H = rng.standard_normal((n, d))
    return H / np.linalg.norm(H, axis=1, keepdims=True)


def expand_group_gram(groups, counts, gram):
    """The n x n matrix (classes in order) described by a GroupGram, entry by entry."""
    y = np.repeat(np.arange(len(counts)), counts)
    g = groups.of_class[y]
    G = np.where(y[:, None] == y[None, :], gram.within[g][:, None],
                 np.where(g[:, None] == g[None, :], gram.same[g][:, None], gram.cross[np.ix_(g, g)]))
    np.fill_diagonal(G, gram.diag[g])
    return G
