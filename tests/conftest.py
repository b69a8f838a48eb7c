import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_unit(rng, n, d):
    H = rng.standard_normal((n, d))
    return H / np.linalg.norm(H, axis=1, keepdims=True)
