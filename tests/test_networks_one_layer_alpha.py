"""One-layer units (issue 20, items 2 and 5): E_alpha with uniform and InfoNCE's alpha, the
census under InfoNCE's alpha held fixed at each end point, patterns found by top weights, the tie
message of the linear oracle and the second-order certificate at kinks with multipliers on the
box boundary. Oracles: closed forms, hand-written softmax and energies in numpy, finite
differences, and brute-force perturbation on the sphere."""

import json

import numpy as np
import pytest
import torch

from solvers.networks.kinks import LocalVerdict, ascend_on_kinks, check_kink_optimum, energy_np
from solvers.networks.one_layer import one_layer_census, pattern_found
from ufm.networks.data import pattern_data, pattern_mixture
from ufm.networks.one_layer import (
    ACTIVATIONS,
    HOMOGENEOUS,
    PairWeights,
    activate_np,
    energy,
    infonce_objective,
    infonce_objective_np,
    infonce_weights,
)

# --------------------------------------------------------------------------- oracles


def _softmax_by_hand(f1, f2, tau):
    """Row i: the positive and the n - 1 negatives of anchor i, written out loop by loop."""
    n = len(f1)
    A, beta = np.zeros((n, n)), np.zeros(n)
    for i in range(n):
        logits = [-(f1[i] - f2[i]) ** 2 / (2 * tau)] + [-(f1[i] - f1[j]) ** 2 / (2 * tau)
                                                         for j in range(n) if j != i]
        top = max(logits)
        e = [np.exp(v - top) for v in logits]
        z = sum(e)
        others = [j for j in range(n) if j != i]
        for k, j in enumerate(others):
            A[i, j] = e[k + 1] / z / n
        beta[i] = (1 - e[0] / z) / n
    return A, beta


def _E_alpha_by_hand(f1, f2, A, beta):
    n = len(f1)
    pairs = sum(A[i, j] * (f1[i] - f1[j]) ** 2 for i in range(n) for j in range(n) if j != i)
    return 0.5 * pairs - 0.5 * float(np.sum(beta * (f1 - f2) ** 2))


def _infonce_loss_by_hand(f1, f2, tau):
    """Mean over anchors of -log softmax of the positive, logits -(half squared distance)/tau."""
    n, total = len(f1), 0.0
    for i in range(n):
        logits = np.array([-(f1[i] - f2[i]) ** 2 / (2 * tau)] + [-(f1[i] - f1[j]) ** 2 / (2 * tau)
                                                                  for j in range(n) if j != i])
        top = logits.max()
        total += top + np.log(np.exp(logits - top).sum()) - logits[0]
    return total / n


def _h(z, activation):
    return activate_np(z, activation)


def _no_rise(w, E, dim, rng, directions=(), scales=(1e-4, 1e-6, 1e-8), count=200):
    """Brute force: E at random nearby unit points (and along given directions) never exceeds
    E(w) beyond round-off. (A strict local maximum holds in some neighbourhood: at distance 1e-2 a
    certified leaky-ReLU point of the integer data below is beaten, its certified radius is 4e-5.)"""
    E0 = E(w)
    dirs = [rng.standard_normal(dim) for _ in range(count)] + list(directions)
    for v in dirs:
        v = v - (v @ w) * w
        if np.linalg.norm(v) < 1e-12:
            continue
        v /= np.linalg.norm(v)
        for t in scales:
            assert E(np.cos(t) * w + np.sin(t) * v) <= E0 + 1e-13 * (1 + abs(E0))


# --------------------------------------------------------------------------- E_alpha


def test_activations_homogeneous_but_quadratic():
    """h(x) = h'(x) x for linear, relu, leaky_relu; quadratic is homogeneous of degree 2."""
    z = np.linspace(-2, 2, 41)
    for name in ACTIVATIONS:
        dz = 1e-6
        derivative = (_h(z + dz, name) - _h(z - dz, name)) / (2 * dz)
        ratio = 1.0 if name in HOMOGENEOUS else 2.0
        mask = np.abs(z) > 1e-3  # off the kink
        np.testing.assert_allclose(derivative[mask] * z[mask], ratio * _h(z[mask], name), atol=1e-8)
    assert "quadratic" not in HOMOGENEOUS and set(HOMOGENEOUS) == {"linear", "relu", "leaky_relu"}


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_uniform_alpha_is_the_existing_energy(activation, rng):
    """alpha_ij = 1/n^2, beta_i = 1/n written as explicit weights (the dense path) give
    Var f - 1/(2n) sum (f - f')^2, by hand and through torch."""
    d = pattern_mixture(30, patterns=3, dim=5, noise=0.3, seed=1)
    n = d.n
    A = np.full((n, n), 1.0 / n**2)
    np.fill_diagonal(A, 0.0)
    explicit = PairWeights(n, A, np.full(n, 1.0 / n), "explicit")
    W = rng.standard_normal((4, 5))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    ref = energy(torch.tensor(W), torch.tensor(d.x1), torch.tensor(d.x2), activation).numpy()
    dense = energy(torch.tensor(W), torch.tensor(d.x1), torch.tensor(d.x2), activation, explicit).numpy()
    for w, e, e_dense in zip(W, ref, dense, strict=True):
        f1, f2 = _h(d.x1 @ w, activation), _h(d.x2 @ w, activation)
        closed = f1.var() - 0.5 * np.mean((f1 - f2) ** 2)
        assert e == pytest.approx(closed, rel=1e-12, abs=1e-15)
        assert e_dense == pytest.approx(closed, rel=1e-12, abs=1e-15)
        assert explicit.energy(f1, f2) == pytest.approx(closed, rel=1e-12, abs=1e-15)
        assert _E_alpha_by_hand(f1, f2, A, np.full(n, 1.0 / n)) == pytest.approx(closed, rel=1e-12)


def test_infonce_alpha_is_the_hand_written_softmax(rng):
    d = pattern_mixture(12, patterns=2, dim=4, noise=0.2, seed=2)
    w = rng.standard_normal(4)
    w /= np.linalg.norm(w)
    for tau in (0.05, 0.5, 7.0):
        f1, f2 = _h(d.x1 @ w, "relu"), _h(d.x2 @ w, "relu")
        A, beta = _softmax_by_hand(f1, f2, tau)
        ours = infonce_weights(f1, f2, tau)
        np.testing.assert_allclose(ours.A, A, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(ours.beta, beta, rtol=1e-12)
        np.testing.assert_allclose(ours.beta, ours.A.sum(axis=1), rtol=1e-12)  # C_alpha's positive weight
        E = energy(torch.tensor(w[None]), torch.tensor(d.x1), torch.tensor(d.x2), "relu", "infonce", tau)
        assert float(E[0]) == pytest.approx(_E_alpha_by_hand(f1, f2, A, beta), rel=1e-12)
        assert ours.energy(f1, f2) == pytest.approx(_E_alpha_by_hand(f1, f2, A, beta), rel=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_against_finite_differences(activation, rng):
    """float64 central differences: (1) E_alpha with frozen weights; (2) the ascent's InfoNCE
    objective: its closed-form gradient is E_alpha's with alpha frozen at the point and equals
    -tau grad L_InfoNCE (L written by hand)."""
    d = pattern_mixture(16, patterns=2, dim=4, noise=0.3, seed=3)
    tau, h, tested = 0.5, 1e-6, 0
    for _ in range(3):
        w = rng.standard_normal(4)
        w /= np.linalg.norm(w)
        if min(np.abs(d.x1 @ w).min(), np.abs(d.x2 @ w).min()) < 1e-3:  # off every kink
            continue
        f1, f2 = _h(d.x1 @ w, activation), _h(d.x2 @ w, activation)
        frozen = infonce_weights(f1, f2, tau)

        def E(v, frozen=frozen):
            return frozen.energy(_h(d.x1 @ v, activation), _h(d.x2 @ v, activation))

        def L(v):
            return _infonce_loss_by_hand(_h(d.x1 @ v, activation), _h(d.x2 @ v, activation), tau)

        eye = np.eye(4)
        fd_E = np.array([(E(w + h * e) - E(w - h * e)) / (2 * h) for e in eye])
        fd_L = np.array([(L(w + h * e) - L(w - h * e)) / (2 * h) for e in eye])
        wt = torch.tensor(w[None], requires_grad=True)
        (auto,) = torch.autograd.grad(energy(wt, torch.tensor(d.x1), torch.tensor(d.x2), activation,
                                             frozen).sum(), wt)
        _, closed = infonce_objective_np(w[None], d.x1, d.x2, activation, tau)
        _, closed_torch = infonce_objective(torch.tensor(w[None]), torch.tensor(d.x1), torch.tensor(d.x2),
                                            activation, tau, grad=True)
        scale = np.abs(fd_E).max() + 1e-12
        np.testing.assert_allclose(auto.numpy()[0], fd_E, atol=1e-7 * scale)
        np.testing.assert_allclose(closed[0], fd_E, atol=1e-7 * scale)
        np.testing.assert_allclose(closed_torch.numpy()[0], closed[0], atol=1e-12 * scale)
        np.testing.assert_allclose(closed[0], -tau * fd_L, atol=1e-7 * scale)
        tested += 1
    assert tested


def test_infonce_at_the_ends_of_tau():
    """Huge tau: alpha -> 1/n^2, beta -> (n - 1)/n^2, and the objective -> Var - (n - 1)/n view term
    (the log1p form keeps its digits at tau = 1e12, where log-sum-exp would lose 1e-4 of it); tiny
    tau: finite weights, rows of the softmax summing to 1, nothing NaN."""
    d = pattern_mixture(20, patterns=2, dim=4, noise=0.3, seed=4)
    w = np.array([0.6, 0.8, 0.0, 0.0])
    f1, f2 = d.x1 @ w, d.x2 @ w
    n = d.n
    huge = infonce_weights(f1, f2, 1e12)
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(huge.A[off], 1 / n**2, rtol=1e-9)
    np.testing.assert_allclose(huge.beta, (n - 1) / n**2, rtol=1e-9)
    limit = f1.var() - (n - 1) / n * 0.5 * np.mean((f1 - f2) ** 2)
    value, _ = infonce_objective_np(w[None], d.x1, d.x2, "linear", 1e12)
    assert value[0] == pytest.approx(limit, rel=1e-9)
    assert huge.energy(f1, f2) == pytest.approx(limit, rel=1e-9)
    for tau in (1e-4, 1e-8):
        tiny = infonce_weights(f1, f2, tau)
        assert np.all(np.isfinite(tiny.A)) and np.all(tiny.A >= 0) and np.all(np.isfinite(tiny.beta))
        np.testing.assert_allclose(n * tiny.A.sum(axis=1) + (1 - n * tiny.beta), 1.0, rtol=1e-12)
        value, grad = infonce_objective_np(w[None], d.x1, d.x2, "linear", tau)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))


# --------------------------------------------------------------------------- census under infonce


def test_infonce_census_certifies_each_pattern_with_alpha_held_fixed(capsys, rng):
    """Separated patterns, --alpha infonce: a certified ReLU optimum finds each pattern; the JSON
    and the table say alpha is held fixed at each end point; each certified end point is a local
    maximum of E with the hand-written softmax frozen there (brute force)."""
    from ufm.cli import main

    args = ["network", "one-layer", "--samples", "120", "--patterns", "3", "--input-dim", "6",
            "--activation", "relu", "--restarts", "6", "--alpha", "infonce", "--alpha-tau", "0.5"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    relu = out["results"][0]
    assert out["alpha"] == relu["alpha"] == "infonce" and relu["alpha_tau"] == 0.5
    assert "held fixed at each end point for its certificate" in relu["alpha_statement"]
    assert relu["patterns_found"] == 3 and relu["distinct_optima"] >= 3
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "alpha: infonce (tau 0.5), held fixed at each end point for its certificate" in text

    d = pattern_mixture(120, 3, 6, 0.05, None, 0)
    res = one_layer_census(d, "relu", 6, 0, alpha="infonce", alpha_tau=0.5)
    certified = [r for r, c in enumerate(res.checks) if c.verdict.value == "local_optimum"]
    assert certified
    for r in certified[:3]:
        w = res.W[r]
        A, beta = _softmax_by_hand(np.maximum(d.x1 @ w, 0), np.maximum(d.x2 @ w, 0), 0.5)

        def E(v, A=A, beta=beta):
            v = v / np.linalg.norm(v)
            return PairWeights(d.n, A, beta, "hand").energy(np.maximum(d.x1 @ v, 0), np.maximum(d.x2 @ v, 0))

        assert E(w) == pytest.approx(res.energies[r], rel=1e-10)
        _no_rise(w, E, 6, rng, count=60)


def test_linear_unit_under_infonce_is_checked_against_its_frozen_covariance():
    """A linear unit's end point under InfoNCE's alpha: the verdict is about the quadratic form of
    C_alpha at its own alpha (built by hand): an eigenvector (stationary); certified only where it
    is the top one, not optimal where a larger eigenvalue exists."""
    d = pattern_mixture(60, 3, 5, 0.05, None, 0)
    res = one_layer_census(d, "linear", 4, 0, alpha="infonce", alpha_tau=0.5)
    for w, check in zip(res.W, res.checks, strict=True):
        A, beta = _softmax_by_hand(d.x1 @ w, d.x2 @ w, 0.5)
        S = 0.5 * (A + A.T)
        diff = d.x1 - d.x2
        C = d.x1.T @ (np.diag(S.sum(1)) - S) @ d.x1 - 0.5 * diff.T @ (beta[:, None] * diff)
        Cw = C @ w
        assert np.linalg.norm(Cw - (w @ Cw) * w) <= 1e-6 * np.linalg.norm(C)  # stationary
        top = np.linalg.eigvalsh(C)[-1]
        if check.verdict is LocalVerdict.LOCAL_OPTIMUM:
            assert w @ Cw >= top - 1e-9 * abs(top)
        elif check.verdict is LocalVerdict.NOT_OPTIMAL:
            assert top > w @ Cw + 1e-9 * abs(top)


# --------------------------------------------------------------------------- patterns found


def test_patterns_found_by_top_weights_on_the_issue_instance():
    """K = 6, V = 10, G = 3, seed 8 (n = 256): the cosine cut counted 2 of 3 ReLU optima; by the
    paper's rule (the unit's largest weights are the pattern's tokens) all 3, checked by sorting
    the weights independently; margins far above float64's resolution."""
    d = pattern_data(256, locations=6, vocab=10, patterns=3, fixed=3, seed=8)
    res = one_layer_census(d, "relu", 32, 8)
    certified = [o for o in res.optima if o.verdict == "local_optimum"]
    tokens = [set(np.flatnonzero(p).tolist()) for p in d.directions]
    by_sorting = set()
    for o in certified:
        top = set(np.sort(np.argsort(o.w)[::-1][:3]).tolist())
        by_sorting |= {p for p, t in enumerate(tokens) if t == top}
        assert o.top_margin > 0.1
    assert res.patterns_found == len(by_sorting) == 3
    assert len({o.pattern for o in certified if o.alignment >= 0.95}) == 2  # the old rule


def test_top_weight_rule_and_its_ties():
    """Exactly the pattern's tokens on top: found; a tie or near-tie between the m-th and the
    (m+1)-th weight: not found; two patterns with the same tokens: neither; sign-symmetric units
    may point either way; mixture data: cos >= 0.95."""
    directions = np.zeros((2, 6))
    directions[0, [0, 2]] = directions[1, [3, 5]] = 1 / np.sqrt(2)
    w = np.array([0.7, 0.1, 0.6, 0.2, 0.0, 0.1])
    assert pattern_found(w, directions, "patterns")[0] == 0
    assert pattern_found(w, directions, "patterns")[1] == pytest.approx(0.4 / 0.7)
    assert pattern_found(np.array([0.7, 0.6, 0.6, 0.2, 0.0, 0.1]), directions, "patterns")[0] is None
    near = np.array([0.7, 0.6 - 1e-12, 0.6, 0.2, 0.0, 0.1])
    assert pattern_found(near, directions, "patterns")[0] is None  # separated by less than 1e-8 |w|
    assert pattern_found(-w, directions, "patterns")[0] is None
    assert pattern_found(-w, directions, "patterns", symmetric=True)[0] == 0
    same = np.vstack([directions[0], directions[0]])
    assert pattern_found(w, same, "patterns")[0] is None
    mu = np.eye(3)
    assert pattern_found(np.array([0.96, 0.28, 0.0]), mu, "mixture")[0] == 0
    assert pattern_found(np.array([0.94, 0.34, 0.0]), mu, "mixture")[0] is None


# --------------------------------------------------------------------------- tie message


def test_a_tied_top_eigenvalue_prints_no_cosine(capsys):
    """Three orthonormal patterns seen equally often, no noise: C is isotropic in their plane (a
    double top eigenvalue); the CLI says the top eigenvector is not unique instead of a cosine."""
    from ufm.cli import main

    d = pattern_mixture(6, 3, 4, 0.0, None, 1)
    assert np.all(np.bincount(d.pattern) == 2)
    args = ["network", "one-layer", "--samples", "6", "--patterns", "3", "--input-dim", "4", "--noise", "0",
            "--seed", "1", "--restarts", "4", "--activation", "linear"]
    assert main([*args, "--json"]) == 0
    linear = json.loads(capsys.readouterr().out)["results"][0]
    assert linear["top_eigenvector_unique"] is False and linear["top_eigenvector_cosine"] is None
    assert linear["top_eigen_gap"] < 1e-12 and linear["verdicts"]["local_optimum"] == 0
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "top eigenvector of C not unique (eigen-gap" in text and "below float64's resolution" in text
    assert "|cos| with the top eigenvector" not in text


# --------------------------------------------------------------------------- second order at kinks


def test_noise_free_relu_maxima_are_certified_by_second_order(rng):
    """Noise 0: every live ReLU end point sits on its pattern with the other patterns' rows on
    their kinks, multipliers 0 (on the box boundary): certified now by the second-order test, and
    E never rises nearby (random directions and each other pattern's direction, either side)."""
    d = pattern_mixture(200, patterns=4, dim=8, noise=0.0, seed=0)
    res = one_layer_census(d, "relu", 12, 0)
    live = [r for r in range(12) if res.cluster[r] >= 0]
    assert live and all(res.checks[r].verdict is LocalVerdict.LOCAL_OPTIMUM for r in live)
    assert all(res.checks[r].order == 2 for r in live)
    assert res.patterns_found == 4 and res.to_dict()["certified_by_order"]["second"] == len(live)

    def E(v):
        return energy_np(v / np.linalg.norm(v), d.x1, d.x2, 0.0)

    for r in live[:4]:
        _no_rise(res.W[r], E, 8, rng, directions=[*d.directions, *-d.directions], count=100)


@pytest.mark.parametrize("a,b,k,verdict", [(1, 3, 3, "local_optimum"), (1, 2, 3, "unresolved"),
                                           (2, 2, 3, "not_optimal")])
def test_second_order_on_a_two_dimensional_closed_form(a, b, k, verdict):
    """Rows (1, 0) x a, (0, 1) x b, (1, t) x k, views equal, t = (a + k)/k, ReLU at w = (1, 0): the
    rows (0, 1) sit on their kink with multiplier exactly 1, and for theta > 0 E(theta) is the
    quadratic with E(0) = Q11 and curvature Q22 - Q11 = (m/n)(a/k - b/n), m = a + k, n = a + b + k:
    a strict maximum where a n < b k, a flat ridge (a continuum of maxima: not strict) where
    a n = b k, a second-order ascent where a n > b k. Brute force on the circle agrees."""
    t = (a + k) / k
    x = np.array([[1.0, 0.0]] * a + [[0.0, 1.0]] * b + [[1.0, t]] * k)
    check = check_kink_optimum(np.array([1.0, 0.0]), x, x, "relu")
    assert check.verdict.value == verdict and check.order == 2
    E0 = energy_np(np.array([1.0, 0.0]), x, x, 0.0)
    rise = max(energy_np(np.array([np.cos(s), np.sin(s)]), x, x, 0.0) - E0
               for s in np.linspace(-0.05, 0.05, 101))
    n, m = a + b + k, a + k
    if verdict == "not_optimal":
        assert rise > 1e-6 and check.direction @ np.array([0.0, 1.0]) > 0
    else:
        assert rise <= 1e-15
        curvature = (m / n) * (a / k - b / n)
        assert (curvature < 0) == (verdict == "local_optimum")
        assert (curvature == 0) == (verdict == "unresolved")


@pytest.mark.parametrize("t,verdict", [(1.2, "local_optimum"), (np.sqrt(2), "unresolved"),
                                        (1.5, "not_optimal")])
def test_second_order_cone_test_on_a_three_dimensional_closed_form(t, verdict, rng):
    """Rows (t, -t, 2), (-t, t, 2), e1, e2, views equal, ReLU at w = e3: e1 and e2 sit on their kinks
    with multipliers 0 (critical cone: d1 <= 0, d2 <= 0). The form on the tangent plane is
    (t^2 - 1) along (1, -1) and -1 along (1, 1): indefinite for t > 1, but on the cone its largest
    value, along -e1 or -e2, is (t^2 - 2)/2 (E(cos s e3 - sin s e1) = 1 + (t^2/2 - 1) sin^2 s).
    t = 1.2: certified by the cone (Schur complement) test, not by the span; t = sqrt 2: flat along
    -e1 (not strict), unresolved; t = 1.5: E rises along -e1, not optimal."""
    x = np.array([[t, -t, 2.0], [-t, t, 2.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    w = np.array([0.0, 0.0, 1.0])
    check = check_kink_optimum(w, x, x, "relu")
    assert check.verdict.value == verdict and check.order == 2, check.reason
    for s in (1e-2, 1e-4):
        along = energy_np(np.array([-np.sin(s), 0.0, np.cos(s)]), x, x, 0.0)
        assert along == pytest.approx(1 + (t * t / 2 - 1) * np.sin(s) ** 2, rel=1e-12)
    if verdict == "local_optimum":
        assert "Schur" in check.reason

        def E(v):
            return energy_np(v / np.linalg.norm(v), x, x, 0.0)

        _no_rise(w, E, 3, rng, directions=[-x[2], -x[3], -x[2] - x[3]], count=300)
    if verdict == "not_optimal":
        assert _rises_along(check.direction, w, x)


def _rises_along(d, w, x):
    E0 = energy_np(w, x, x, 0.0)
    return any(energy_np(np.cos(s) * w + np.sin(s) * d, x, x, 0.0) > E0 + 1e-12 for s in (1e-2, 1e-3))


def _integer_data_oracle(trials: int, count: int, rng):
    """Independent oracle on noise-free data with coincident rows (small integer prototypes seen
    several times, two views equal): every certified end point, first or second order, ReLU or
    leaky ReLU, is never beaten by E at random nearby points or along active rows either way.
    Returns the certified end points per certificate order."""
    local = np.random.default_rng(7)
    seen = {0: 0, 1: 0, 2: 0}
    for _ in range(trials):
        D = int(local.integers(2, 5))
        protos = local.integers(-2, 3, size=(int(local.integers(2, 6)), D)).astype(float)
        protos = protos[np.linalg.norm(protos, axis=1) > 0]
        if len(protos) < 2:
            continue
        x = np.repeat(protos, local.integers(1, 4, size=len(protos)), axis=0)
        for activation, slope in (("relu", 0.0), ("leaky_relu", 0.1)):
            for _ in range(4):  # the exact ascent on the kinks from a random start, and its check
                w, _, check, _ = ascend_on_kinks(local.standard_normal(D), x, x, activation)
                if check.verdict is not LocalVerdict.LOCAL_OPTIMUM:
                    continue
                seen[check.order] += 1
                active = np.abs(x @ w) <= 1e-12 * np.linalg.norm(x, axis=1)

                def E(v, slope=slope, x=x):
                    return energy_np(v / np.linalg.norm(v), x, x, slope)

                _no_rise(w, E, D, rng, directions=[*x[active], *-x[active]], count=count)
    return seen


def test_second_order_certificates_hold_by_brute_force_on_small_integer_data(rng):
    seen = _integer_data_oracle(40, 15, rng)
    assert seen[2] >= 8 and seen[1] >= 20, seen


@pytest.mark.slow
def test_second_order_certificates_hold_by_brute_force_on_more_integer_data(rng):
    seen = _integer_data_oracle(300, 60, rng)
    assert seen[2] >= 100 and seen[1] >= 100, seen


def test_infonce_tiny_tau_on_noise_free_data_certifies_nothing_float64_cannot_see(rng):
    """tau = 1e-3, noise 0: InfoNCE's alpha weighs only pairs with equal outputs (the others
    ~e^-500); at an end point every dE/df is ~1e-218 against E's curvature ~1/n, so no kink sign
    is decided: nothing is certified that brute force at float64's scales contradicts."""
    d = pattern_mixture(60, patterns=3, dim=5, noise=0.0, seed=0)
    res = one_layer_census(d, "relu", 4, 0, alpha="infonce", alpha_tau=1e-3)
    for w, check in zip(res.W, res.checks, strict=True):
        if check.verdict is LocalVerdict.LOCAL_OPTIMUM:
            frozen = infonce_weights(np.maximum(d.x1 @ w, 0), np.maximum(d.x2 @ w, 0), 1e-3)

            def E(v, frozen=frozen):
                v = v / np.linalg.norm(v)
                return frozen.energy(np.maximum(d.x1 @ v, 0), np.maximum(d.x2 @ v, 0))

            _no_rise(w, E, 5, rng, directions=[*d.directions, *-d.directions], count=60)


def test_cli_alpha_errors(capsys):
    from ufm.cli import main

    for args, flag, words in (
            (["network", "one-layer", "--alpha-tau", "0.2"], "--alpha-tau", "--alpha infonce"),
            (["network", "one-layer", "--alpha", "softmax"], "--alpha", "uniform, infonce"),
            (["network", "one-layer", "--alpha", "infonce", "--alpha-tau", "0"], "--alpha-tau", "> 0"),
            (["network", "one-layer", "--loss", "infonce"], "--loss", "--alpha uniform|infonce"),
            (["network", "two-layer", "--alpha", "infonce"], "--alpha", "one-layer")):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"ufm: error: {flag}") and words in err[0], err


def test_a_one_layer_study_takes_alpha(tmp_path):
    """[network] alpha = "infonce" (and alpha_tau) reach the census; alpha_tau without it is
    refused before any work, naming the key; two-layer refuses alpha."""
    from experiments import runner
    from ufm.errors import UFMInputError

    base = '[network]\nmodel = "one-layer"\npatterns = 2\ninput_dim = 4\nsamples = 40\nrestarts = 2\n' \
           'activation = "relu"\n'
    path = tmp_path / "s.toml"
    path.write_text(base + 'alpha = "infonce"\nalpha_tau = 0.7\n')
    assert runner.run_command(str(path), str(tmp_path / "out"), False) == 0
    row = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[0])
    assert row["alpha"] == "infonce" and row["alpha_tau"] == 0.7 and "held fixed" in row["alpha_statement"]
    for text, key in ((base + "alpha_tau = 0.7\n", "[network].alpha_tau"),
                      ('[network]\nmodel = "two-layer"\nalpha = "infonce"\n', "[network].alpha")):
        path.write_text(text)
        with pytest.raises(UFMInputError) as err:
            runner.run_command(str(path), str(tmp_path / "o2"), False)
        assert err.value.argument == key, err.value
