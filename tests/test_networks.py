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
    assert res.distinct == 1 and res.distinct_converged == 1 and res.optima[0].count == 16
    values, vectors = np.linalg.eigh(contrastive_covariance(d.x1, d.x2))
    assert abs(res.optima[0].w @ vectors[:, -1]) >= 1 - 1e-6
    assert res.optima[0].energy == pytest.approx(values[-1], rel=1e-9)


def test_relu_unit_has_an_end_point_on_each_separated_pattern():
    """ReLU units stop on kinks of E (end points whose gradient does not vanish are not called
    optima); every pattern still gets its own end point."""
    P = 4
    d = pattern_mixture(400, patterns=P, dim=12, noise=0.05, seed=1)
    res = one_layer_census(d, "relu", restarts=32, seed=0)
    assert res.distinct >= P
    aligned = {o.pattern for o in res.optima if o.alignment >= 0.95}
    assert aligned == set(range(P))
    assert res.distinct_converged <= res.distinct
    for st, g, e in zip(res.stops, res.grad_norms, res.energies, strict=True):  # converged means flat
        assert not st.converged or g <= 1e-6 * (1 + abs(e))


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


def test_two_layer_gradient_is_the_losss_gradient_backpropagated():
    """The trainer back-propagates the loss's closed-form gradient in the embeddings; it equals
    autograd through the loss's plain definition composed with the network."""
    from ufm.losses import InfoNCE
    from ufm.networks.two_layer import TwoLayer
    from ufm.samples import Samples

    d = pattern_data(12, locations=3, vocab=4, patterns=2, fixed=2, seed=0)
    x = torch.as_tensor(np.stack([d.x1, d.x2], axis=1).reshape(24, -1))
    samples, loss = Samples.instances_views(12, 2), InfoNCE(tau=0.2)
    for activation in ("linear", "relu"):
        grads = []
        for closed_form in (True, False):
            net = TwoLayer.random(3, 4, 3, 5, activation, seed=1)
            for p in net.parameters():
                p.requires_grad_(True)
            H = net.embed(x)
            if closed_form:
                H.backward(loss.torch_value_and_grad(H.detach(), samples)[1])
            else:
                loss.torch_value(H, samples).backward()
            grads.append([p.grad.clone() for p in net.parameters()])
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_two_layer_training_lowers_the_loss():
    from solvers.two_layer import train_two_layer

    d = pattern_data(32, locations=4, vocab=6, patterns=3, fixed=2, seed=0)
    res = train_two_layer(d, 4, 6, "relu", hidden=3, out_dim=6, steps=60, lr=0.02, seed=0)
    assert res.values[-1] < 0.9 * res.values[0] and res.steps == 60
    assert res.specialisation.shape == (4, 3)
    with pytest.raises(UFMInputError) as err:
        train_two_layer(d, 5, 6)
    assert err.value.argument == "--locations"


def test_network_cli_one_layer(tmp_path, capsys):
    import json

    from ufm.cli import main

    out = tmp_path / "census.png"
    assert main(["network", "one-layer", "--samples", "200", "--patterns", "3", "--input-dim", "8",
                 "--magnitudes", "1,1.2,1.4", "--activation", "linear,relu", "--restarts", "32",
                 "--plot", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    linear, relu = d["results"]
    assert linear["distinct_optima"] == 1 and linear["top_eigenvector_cosine"] >= 1 - 1e-6
    assert relu["distinct_end_points"] >= 3
    assert {o["pattern"] for o in relu["optima"] if o["alignment"] >= 0.95} == {0, 1, 2}
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_network_cli_two_layer_through_another_loss(capsys):
    import json

    from ufm.cli import main

    assert main(["network", "two-layer", "--samples", "16", "--locations", "3", "--vocab", "4", "--hidden",
                 "2", "--steps", "10", "--activation", "relu", "--loss", "dhel", "--tau", "0.5",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["loss"] == {"name": "dhel", "params": {"tau": 0.5, "reduction": "sum"}}
    r = d["results"][0]
    assert r["loss"] == "dhel" and r["final_loss"] < r["initial_loss"]


def test_network_cli_two_layer(tmp_path, capsys):
    import json

    from ufm.cli import main

    out = tmp_path / "spec.svg"
    assert main(["network", "two-layer", "--samples", "24", "--locations", "3", "--vocab", "5",
                 "--hidden", "2", "--out-dim", "4", "--steps", "20", "--plot", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [r["activation"] for r in d["results"]] == ["linear", "relu", "leaky_relu", "quadratic"]
    assert all(r["final_loss"] < r["initial_loss"] for r in d["results"])
    assert out.exists()


@pytest.mark.parametrize("args,argument", [
    (["network", "three-layer"], "MODEL"),
    (["network", "one-layer", "--activation", "tanh"], "--activation"),
    (["network", "two-layer", "--data", "mixture"], "--data"),
    (["network", "one-layer", "--patterns", "40", "--input-dim", "8"], "--patterns"),
    (["network", "one-layer", "--plot", "x.gif"], "--plot"),
    (["network", "one-layer", "--magnitudes", "1,-1,1,1"], "--magnitudes"),
    (["network", "two-layer", "--loss", "alpha_cl"], "--loss"),
    (["network", "two-layer", "--loss", "kcl", "--tau", "0.2"], "--tau"),
    (["network", "one-layer", "--loss", "nope"], "--loss"),
    (["network", "one-layer", "--tau", "0.2"], "--tau"),
    (["network", "one-layer", "--activation", ""], "--activation"),
    (["network", "one-layer", "--samples", "1"], "--samples"),
])
def test_network_cli_bad_input(args, argument, capsys):
    from ufm.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ufm: error: {argument}"), err


def test_two_layer_relu_units_specialise_and_linear_units_do_not():
    """Tian 2023's qualitative finding on a small instance: trained through InfoNCE, a good share
    of ReLU hidden units answer one pattern token (>= 80% of their response variance), linear
    units mix tokens. Averaged over three seeds (per seed: ReLU 21-60%, linear 8-38%)."""
    from solvers.two_layer import train_two_layer

    shares = {"linear": [], "relu": []}
    for seed in (0, 1, 3):
        d = pattern_data(128, locations=4, vocab=8, patterns=4, fixed=3, seed=seed)
        for act in shares:
            res = train_two_layer(d, 4, 8, act, hidden=6, out_dim=16, steps=800, seed=seed)
            shares[act].append(res.summary()["specialised_fraction"])
            assert res.summary()["initial_specialised_fraction"] <= 0.15  # hardly specialised at the start
    assert np.mean(shares["relu"]) >= np.mean(shares["linear"]) + 0.2, shares


def test_two_layer_divergence_is_reported_not_printed_as_a_result(capsys):
    from ufm.cli import main

    assert main(["network", "two-layer", "--samples", "16", "--locations", "2", "--vocab", "3", "--fixed",
                 "1", "--lr", "1e300", "--steps", "5", "--activation", "relu", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines()[-1].startswith("ufm: error: --lr: training diverged")
