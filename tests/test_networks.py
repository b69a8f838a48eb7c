"""Networks in place of free embeddings (Tian 2023): the generators are reproducible from their
seed, a linear unit has one optimum (the top eigenvector of the contrastive covariance, checked
against numpy), a ReLU unit on P separated patterns has a certified local optimum on each pattern,
and what the kink certificate certifies is a local maximum by brute force."""

import numpy as np
import pytest
import torch

from solvers.networks.one_layer import census, maximise, one_layer_census
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
    assert err.value.argument == "fixed"
    with pytest.raises(UFMInputError) as err:
        pattern_mixture(10, patterns=5, dim=3)
    assert err.value.argument == "patterns"


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
    assert res.distinct == 1 and res.distinct_certified == 1 and res.optima[0].count == 16
    values, vectors = np.linalg.eigh(contrastive_covariance(d.x1, d.x2))
    assert abs(res.optima[0].w @ vectors[:, -1]) >= 1 - 1e-6
    assert res.optima[0].energy == pytest.approx(values[-1], rel=1e-9)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_kinked_unit_has_a_certified_local_optimum_on_each_separated_pattern(activation):
    """ReLU and leaky-ReLU maxima sit on kinks of E; after the exact ascent on the kinks every
    pattern has its own end point, certified a local optimum and aligned with the pattern."""
    P = 4
    d = pattern_mixture(400, patterns=P, dim=12, noise=0.05, seed=1)
    res = one_layer_census(d, activation, restarts=32, seed=0)
    assert res.distinct_certified >= P
    certified = [o for o in res.optima if o.verdict == "local_optimum"]
    assert {o.pattern for o in certified if o.alignment >= 0.95} == set(range(P))
    assert all(o.active_kinks >= 1 for o in certified)  # on kinks, where the gradient does not vanish
    assert all(c.verdict.value != "not_optimal" for c in res.checks)


def _E(w, x1, x2, activation):
    """E by its definition, in float64 numpy, independently of the solver modules."""
    h = (lambda z: np.maximum(z, 0.0)) if activation == "relu" else (lambda z: np.where(z > 0, z, 0.1 * z))
    f1, f2 = h(x1 @ w), h(x2 @ w)
    return np.mean((f1 - f1.mean()) ** 2) - 0.5 * np.mean((f1 - f2) ** 2)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("kind", ["mixture", "patterns"])
def test_certified_kink_optima_are_local_maxima_by_brute_force(activation, kind, rng):
    """Oracle: E at random nearby points of the sphere (scales down to below the distance to the
    next kink, and moves of single active rows to either side) never exceeds E at a certified end
    point beyond round-off."""
    d = (pattern_mixture(300, patterns=3, dim=10, noise=0.05, seed=3) if kind == "mixture"
         else pattern_data(300, locations=5, vocab=8, patterns=3, fixed=2, seed=3))
    res = one_layer_census(d, activation, restarts=6, seed=2)
    X = np.vstack([d.x1, d.x2])
    certified = [r for r, c in enumerate(res.checks) if c.verdict.value == "local_optimum"]
    assert certified
    for r in certified:
        w = res.W[r]
        E0 = _E(w, d.x1, d.x2, activation)
        z = X @ w
        active = np.abs(z) <= 1e-12 * np.linalg.norm(X, axis=1)
        nearest = np.min(np.abs(z[~active]) / np.linalg.norm(X[~active], axis=1))
        dirs = [rng.standard_normal(len(w)) for _ in range(40)]
        for j in np.flatnonzero(active)[:10]:  # one active row off its kink, either side
            dirs += [X[j], -X[j]]
        for eps in (1e-2, 1e-4, 0.1 * nearest, 1e-3 * nearest, 1e-7):
            for v in dirs:
                v = v - (v @ w) * w
                trial = w + eps * v / np.linalg.norm(v)
                trial /= np.linalg.norm(trial)
                assert _E(trial, d.x1, d.x2, activation) <= E0 + 1e-13 * (1 + abs(E0))


def test_kink_certificate_on_a_two_row_closed_form():
    """Rows a = (1, alpha), b = (0, 1), both views equal: E(theta) = (f_a - f_b)^2 / 4 on the unit
    circle. For 0 < alpha < 1 the kink of b at w = (1, 0) is a strict local maximum (one-sided
    slopes alpha/2 > 0 and (alpha - 1)/2 < 0), E = 1/4, for ReLU and leaky ReLU alike; for
    alpha = 1.5 the slope into b's positive side is +1/4: not optimal, ascent direction (0, 1)."""
    from solvers.networks.kinks import LocalVerdict, ascend_on_kinks, check_kink_optimum

    x = np.array([[1.0, 0.5], [0.0, 1.0]])
    for activation in ("relu", "leaky_relu"):
        for theta in (-0.3, 0.3):
            w, E, check, _ = ascend_on_kinks(np.array([np.cos(theta), np.sin(theta)]), x, x, activation)
            np.testing.assert_allclose(w, [1.0, 0.0], atol=1e-12)
            assert E == pytest.approx(0.25, abs=1e-14)
            assert check.verdict is LocalVerdict.LOCAL_OPTIMUM and check.active == 1
    x = np.array([[1.0, 1.5], [0.0, 1.0]])
    check = check_kink_optimum(np.array([1.0, 0.0]), x, x, "relu")
    assert check.verdict is LocalVerdict.NOT_OPTIMAL
    np.testing.assert_allclose(check.direction, [0.0, 1.0], atol=1e-12)
    assert check.ascent_rate == pytest.approx(0.25, rel=1e-12)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_not_optimal_points_on_kinks_come_with_an_ascent_direction(activation, rng):
    """A point put on a kink at random is not a local maximum; the direction the check returns
    raises E (evaluated by the definition) for small steps."""
    from solvers.networks.kinks import LocalVerdict, check_kink_optimum

    d = pattern_mixture(200, patterns=3, dim=8, noise=0.1, seed=5)
    for _ in range(5):
        w = rng.standard_normal(8)
        j = rng.integers(200)
        w -= (w @ d.x1[j]) / (d.x1[j] @ d.x1[j]) * d.x1[j]  # on the kink of row j
        w /= np.linalg.norm(w)
        check = check_kink_optimum(w, d.x1, d.x2, activation)
        assert check.verdict is LocalVerdict.NOT_OPTIMAL and check.active >= 1
        step = w + 1e-6 * check.direction
        assert _E(step / np.linalg.norm(step), d.x1, d.x2, activation) > _E(w, d.x1, d.x2, activation)


def test_gradient_ascent_stops_short_of_the_kink_optima():
    """The reason for the kink ascent: plain Riemannian ascent ends near the kinks with a
    gradient that does not vanish; the exact ascent from there raises E and certifies."""
    from solvers.networks.kinks import LocalVerdict, ascend_on_kinks, check_kink_optimum

    d = pattern_data(300, locations=5, vocab=8, patterns=3, fixed=2, seed=3)
    W, E, gn, _, stops = maximise(d.x1, d.x2, "relu", restarts=4, seed=0)
    for w, e in zip(W, E, strict=True):
        assert check_kink_optimum(w, d.x1, d.x2, "relu").verdict is not LocalVerdict.LOCAL_OPTIMUM
        w2, e2, check, _ = ascend_on_kinks(w, d.x1, d.x2, "relu")
        assert e2 >= e and check.verdict is LocalVerdict.LOCAL_OPTIMUM


def test_smooth_check_tells_the_top_eigenvector_from_a_saddle(rng):
    """Linear unit: the top eigenvector of C is a certified local maximum; the second is a saddle
    (the check returns the top eigenvector as the ascent direction), a random point is not
    stationary."""
    from solvers.networks.kinks import LocalVerdict
    from solvers.networks.one_layer import check_smooth_optimum

    d = pattern_mixture(200, patterns=3, dim=6, noise=0.1, magnitudes=[1.0, 1.5, 2.0], seed=0)
    vectors = np.linalg.eigh(contrastive_covariance(d.x1, d.x2))[1]
    assert check_smooth_optimum(vectors[:, -1], d.x1, d.x2, "linear").verdict is LocalVerdict.LOCAL_OPTIMUM
    saddle = check_smooth_optimum(vectors[:, -2], d.x1, d.x2, "linear")
    assert saddle.verdict is LocalVerdict.NOT_OPTIMAL and abs(saddle.direction @ vectors[:, -1]) >= 1 - 1e-9
    somewhere = check_smooth_optimum(rng.standard_normal(6), d.x1, d.x2, "linear")
    assert somewhere.verdict is LocalVerdict.NOT_OPTIMAL


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
    assert err.value.argument == "activation"
    with pytest.raises(UFMInputError) as err:
        maximise(d.x1, d.x2, "relu", restarts=0)
    assert err.value.argument == "restarts"  # the library names its parameter; the CLI spells it --restarts


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
    from solvers.networks.two_layer import train_two_layer

    d = pattern_data(32, locations=4, vocab=6, patterns=3, fixed=2, seed=0)
    res = train_two_layer(d, 4, 6, "relu", hidden=3, out_dim=6, steps=60, lr=0.02, seed=0)
    assert res.values[-1] < 0.9 * res.values[0] and res.steps == 60
    assert res.specialisation.shape == (4, 3)
    with pytest.raises(UFMInputError) as err:
        train_two_layer(d, 5, 6)
    assert err.value.argument == "locations"  # the library names its parameter


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
    assert relu["distinct_optima"] >= 3
    certified = [o for o in relu["optima"] if o["verdict"] == "local_optimum"]
    assert {o["pattern"] for o in certified if o["alignment"] >= 0.95} == {0, 1, 2}
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
    from solvers.networks.two_layer import train_two_layer

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


def test_a_maximum_inside_a_cell_is_certified_without_kinks():
    """Regression: with no row on its kink the first-order tolerance scaled with the cancelled
    gradient (round-off against round-off) and a true maximum was called not optimal."""
    from solvers.networks.kinks import LocalVerdict, ascend_on_kinks, check_kink_optimum

    rng = np.random.default_rng(0)
    n, D = 200, 4
    a = rng.uniform(1, 3, n)  # a large spread along e1, every row on the positive side
    x1 = np.column_stack([a + 0.01 * rng.standard_normal(n), 0.1 * rng.standard_normal((n, D - 1))])
    x2 = np.column_stack([a + 0.01 * rng.standard_normal(n), 0.1 * rng.standard_normal((n, D - 1))])
    w = np.linalg.eigh(contrastive_covariance(x1, x2))[1][:, -1]  # the all-positive cell's maximum
    w *= np.sign(w[0])
    assert min((x1 @ w).min(), (x2 @ w).min()) > 0.9
    for activation in ("relu", "leaky_relu"):
        check = check_kink_optimum(w, x1, x2, activation)
        assert check.verdict is LocalVerdict.LOCAL_OPTIMUM and check.active == 0
        w2, _, check, _ = ascend_on_kinks(w, x1, x2, activation)
        assert check.verdict is LocalVerdict.LOCAL_OPTIMUM and np.linalg.norm(w2 - w) <= 1e-12


def test_interior_margin_is_not_fooled_by_a_multiplier_on_the_boundary(rng):
    """Regression: the unscaled LP (feasibility tolerance 1e-7) gave margins up to 2e-4 where the
    only multiplier has a coordinate exactly on 0 or 1 (full column rank: lam is unique)."""
    from solvers.networks.kinks import MARGIN_TOL, _interior_margin

    for _ in range(200):
        D = int(rng.integers(3, 12))
        k = int(rng.integers(1, D))
        M = 10.0 ** rng.uniform(-4, 0) * rng.standard_normal((D, k)) * 10.0 ** rng.uniform(-3, 0, k)
        lam = rng.uniform(0.2, 0.8, k)
        lam[rng.integers(k)] = rng.choice([0.0, 1.0])
        assert _interior_margin(M, M @ lam) < MARGIN_TOL
        lam[lam == 0.0] = 0.1
        lam[lam == 1.0] = 0.9
        assert _interior_margin(M, M @ lam) == pytest.approx(min(lam.min(), (1 - lam).min()), abs=1e-6)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("kind", ["mixture", "patterns"])
def test_certified_radius_holds_by_brute_force(activation, kind, rng):
    """Oracle for the reported radius: at distance up to the certified radius (random directions,
    single active rows off their kink to either side, the face's own directions), E by its
    definition never exceeds E at the certified point beyond round-off; the radius is positive."""
    d = (pattern_mixture(300, patterns=3, dim=10, noise=0.05, seed=4) if kind == "mixture"
         else pattern_data(300, locations=5, vocab=8, patterns=3, fixed=2, seed=4))
    res = one_layer_census(d, activation, restarts=6, seed=1)
    X = np.vstack([d.x1, d.x2])
    radii = [(r, c.radius) for r, c in enumerate(res.checks) if c.verdict.value == "local_optimum"]
    assert radii and all(rad > 0 for _, rad in radii)
    for r, rad in radii:
        w = res.W[r]
        E0 = _E(w, d.x1, d.x2, activation)
        active = np.abs(X @ w) <= 1e-12 * np.linalg.norm(X, axis=1)
        dirs = [rng.standard_normal(len(w)) for _ in range(60)]
        for j in np.flatnonzero(active)[:8]:
            dirs += [s * X[j] + 0.3 * rng.standard_normal(len(w)) for s in (1, -1)]
        for v in dirs:
            v = v - (v @ w) * w
            v /= np.linalg.norm(v)
            for frac in (1.0, 0.5, 0.1):
                theta = 2 * np.arcsin(frac * rad / 2)  # chord length frac * rad on the unit sphere
                trial = np.cos(theta) * w + np.sin(theta) * v
                assert _E(trial, d.x1, d.x2, activation) <= E0 + 1e-13 * (1 + abs(E0))


def test_network_cli_one_layer_table_says_certified_only_where_certified(capsys):
    from ufm.cli import main
    from ufm.cli.network import _table

    assert main(["network", "one-layer", "--samples", "100", "--patterns", "2", "--input-dim", "6",
                 "--activation", "linear", "--restarts", "4"]) == 0
    out = capsys.readouterr().out
    assert "1 distinct end point from 4 starts, 1 of them a certified local optimum" in out
    assert "E = " in out and "local optimum (certified)" in out
    optimum = {"energy": 0.5, "restarts": 1, "certified_restarts": 0, "active_kinks": 2, "pattern": 0,
               "alignment": 0.99, "certified_radius": None}
    result = {"activation": "relu", "restarts": 2, "distinct_end_points": 2, "distinct_optima": 0,
              "dead_units": 0, "verdicts": {"local_optimum": 0, "not_optimal": 1, "unresolved": 1},
              "optima": [{**optimum, "verdict": "not_optimal"}, {**optimum, "verdict": "unresolved"}]}
    payload = {"model": "one-layer", "data": "mixture", "samples": 10, "input_dim": 3, "patterns": 2,
               "seed": 0, "results": [result]}
    lines = _table(payload).splitlines()
    assert "2 distinct end points from 2 starts, 0 of them certified local optima" in lines[1]
    assert lines[2].endswith("on 2 kinks: not a local optimum") and lines[3].endswith(": unresolved")
    assert not any("(certified)" in line for line in lines)


def test_kink_module_energy_is_the_units_energy(rng):
    """solvers.networks.kinks keeps a numpy E for its line searches: it is ufm.networks.one_layer.energy."""
    from solvers.networks.kinks import energy_np, slope_of

    d = pattern_mixture(50, patterns=3, dim=6, noise=0.2, seed=0)
    W = rng.standard_normal((5, 6))
    for activation in ("relu", "leaky_relu"):
        ref = energy(torch.tensor(W), torch.tensor(d.x1), torch.tensor(d.x2), activation).numpy()
        ours = [energy_np(w, d.x1, d.x2, slope_of(activation)) for w in W]
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)
