"""Networks in place of free embeddings (Tian 2023): the generators are reproducible from their
seed, a linear unit has one optimum (the top eigenvector of the contrastive covariance, checked
against numpy), a ReLU unit on P separated patterns has a local optimum on each pattern."""

import numpy as np
import pytest
import torch

from solvers.one_layer import census, maximise, one_layer_census
from ufm.errors import UFMInputError
from ufm.networks.data import pattern_data, pattern_mixture
from ufm.networks.one_layer import contrastive_covariance, energy


def test_generators_are_reproducible_from_their_seed():
    for make in (lambda s: pattern_data(50, seed=s), lambda s: pattern_mixture(50, seed=s)):
        a, b, c = make(3), make(3), make(4)
        for key in ("x1", "x2", "pattern", "directions"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert not np.array_equal(a.x1, c.x1)


def test_pattern_data_views_keep_the_pattern_and_resample_wildcards():
    d = pattern_data(200, locations=6, vocab=5, patterns=3, fixed=2, seed=1)
    x1, x2 = d.x1.reshape(200, 6, 5), d.x2.reshape(200, 6, 5)
    assert np.all(x1.sum(axis=2) == 1) and np.all(x2.sum(axis=2) == 1)  # one token per location
    fixed = d.directions.reshape(3, 6, 5) > 0
    for i in range(200):
        mask = fixed[d.pattern[i]]
        assert np.all(x1[i][mask] == 1) and np.all(x2[i][mask] == 1)  # the pattern's tokens, both views
    wild = ~fixed[d.pattern].any(axis=2)  # (n, K) wildcard locations
    assert np.mean(np.any(x1 != x2, axis=2)[wild]) > 0.6  # resampled: 4 in 5 differ for vocab 5
    np.testing.assert_allclose(np.linalg.norm(d.directions, axis=1), 1.0)


def test_generators_refuse_bad_sizes():
    with pytest.raises(UFMInputError) as err:
        pattern_data(10, locations=3, fixed=4)
    assert err.value.argument == "--fixed"
    with pytest.raises(UFMInputError) as err:
        pattern_mixture(10, patterns=5, dim=3)
    assert err.value.argument == "--patterns"


def test_linear_energy_is_the_contrastive_covariance_quadratic_form(rng):
    d = pattern_mixture(60, patterns=3, dim=5, noise=0.3, seed=2)
    C = contrastive_covariance(d.x1, d.x2)
    W = rng.standard_normal((4, 5))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    E = energy(torch.tensor(W), torch.tensor(d.x1), torch.tensor(d.x2), "linear").numpy()
    np.testing.assert_allclose(E, np.einsum("ri,ij,rj->r", W, C, W), rtol=1e-12)


def test_linear_unit_has_one_optimum_the_top_eigenvector():
    d = pattern_mixture(400, patterns=4, dim=12, noise=0.05, magnitudes=[1.0, 1.3, 1.6, 1.9], seed=0)
    res = one_layer_census(d, "linear", restarts=16, seed=0)
    assert res.distinct == 1 and res.optima[0].count == 16
    values, vectors = np.linalg.eigh(contrastive_covariance(d.x1, d.x2))
    assert abs(res.optima[0].w @ vectors[:, -1]) >= 1 - 1e-6
    assert res.optima[0].energy == pytest.approx(values[-1], rel=1e-9)


def test_relu_unit_has_an_optimum_on_each_separated_pattern():
    P = 4
    d = pattern_mixture(400, patterns=P, dim=12, noise=0.05, seed=1)
    res = one_layer_census(d, "relu", restarts=32, seed=0)
    assert res.distinct >= P
    aligned = {o.pattern for o in res.optima if o.alignment >= 0.95}
    assert aligned == set(range(P))


def test_census_counts_dead_units_apart_and_merges_sign_for_linear():
    d = pattern_mixture(100, patterns=2, dim=4, noise=0.0, seed=0)
    mu = d.directions
    W = np.stack([mu[0], -mu[0], -(mu[0] + mu[1]) / np.sqrt(2)])  # the last: ReLU silent on the data
    E = energy(torch.tensor(W), torch.tensor(d.x1), torch.tensor(d.x2), "relu").numpy()
    cluster, optima = census(W, E, "relu", d.x1, d.directions)
    assert list(cluster) == [0, -1, -1] and len(optima) == 1  # -mu_0 is silent too
    E = energy(torch.tensor(W), torch.tensor(d.x1), torch.tensor(d.x2), "linear").numpy()
    cluster, optima = census(W, E, "linear", d.x1, d.directions)
    assert cluster[0] == cluster[1]  # w and -w: one optimum of a linear unit


def test_maximise_refuses_bad_input():
    d = pattern_mixture(20, seed=0)
    with pytest.raises(UFMInputError) as err:
        maximise(d.x1, d.x2, "tanh")
    assert err.value.argument == "--activation"
    with pytest.raises(UFMInputError) as err:
        maximise(d.x1, d.x2, "relu", restarts=0)
    assert err.value.argument == "--restarts"
