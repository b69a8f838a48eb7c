import os

import numpy as np
import pytest

from ufm.threads import limit_threads

# the suite computes single-threaded (fast beside other work; UFM_TEST_THREADS=N to change it);
# subprocesses inherit it through OMP_NUM_THREADS
limit_threads(int(os.environ.get("UFM_TEST_THREADS", "1")))


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
