"""The contrastive family (issue 8): every loss against an independent oracle from its paper's
definition, its forms against each other (numpy over G, torch over H blocked and plain, CVXPY),
closed forms at the simplex and a polyhedron, reduced programs against the n x n program for each
symmetry, and the no-certificate paths."""

import cvxpy as cp
import numpy as np
import oracles
import pytest
import torch
from conftest import random_unit

from solvers import certify_embeddings, solve
from solvers.verify import verify
from ufm import Problem, Samples, get_loss
from ufm.errors import UFMInputError
from ufm.losses import LOSSES
from ufm.symmetry import InstanceViewSymmetry

CLASSES = Samples.from_counts((3, 2, 1, 4))
VIEWS = Samples.instances_views(4, 3)
PAIRS = Samples.instances_views(5, 2)

#: (loss name, parameters, samples, oracle(H) from tests/oracles.py)
CASES = [
    ("supcon", {"tau": 0.2}, CLASSES, lambda H: oracles.supcon(H, CLASSES.labels, 0.2)),
    ("supcon_in", {"tau": 0.2}, CLASSES, lambda H: oracles.supcon(H, CLASSES.labels, 0.2, "in")),
    ("infonce", {"tau": 0.3}, VIEWS, lambda H: oracles.infonce(H, VIEWS.labels, VIEWS.views, 0.3, "all")),
    (
        "infonce",
        {"tau": 0.3, "negatives": "same_view"},
        VIEWS,
        lambda H: oracles.infonce(H, VIEWS.labels, VIEWS.views, 0.3, "same_view"),
    ),
    (
        "infonce",
        {"tau": 0.3, "negatives": "decoupled"},
        VIEWS,
        lambda H: oracles.infonce(H, VIEWS.labels, VIEWS.views, 0.3, "decoupled"),
    ),
    ("dcl", {"tau": 0.3}, VIEWS, lambda H: oracles.infonce(H, VIEWS.labels, VIEWS.views, 0.3, "decoupled")),
    ("dhel", {}, PAIRS, lambda H: oracles.dhel(H[0::2], H[1::2], 0.3)),
    ("kcl", {}, PAIRS, lambda H: oracles.kcl(H[0::2], H[1::2], "gaussian")),
    ("kcl", {"kernel": "imq"}, PAIRS, lambda H: oracles.kcl(H[0::2], H[1::2], "imq")),
    ("kcl", {"kernel": "log"}, PAIRS, lambda H: oracles.kcl(H[0::2], H[1::2], "log")),
    ("kcl", {"kernel": "riesz"}, PAIRS, lambda H: oracles.kcl(H[0::2], H[1::2], "riesz", s=1.0)),
    ("kcl", {"kernel": "riesz", "s": -1.0}, PAIRS, lambda H: oracles.kcl(H[0::2], H[1::2], "riesz", s=-1.0)),
    ("spectral", {}, PAIRS, lambda H: oracles.spectral(H[0::2], H[1::2])),
    ("spectral", {"reduction": "sum"}, PAIRS, lambda H: oracles.spectral(H[0::2], H[1::2], "sum")),
    ("alpha_cl", {}, PAIRS, lambda H: oracles.alpha_cl(H, PAIRS.labels, 0.5)),
    (
        "alpha_cl",
        {"weight": "quadratic"},
        PAIRS,
        lambda H: oracles.alpha_cl(H, PAIRS.labels, 0.5, "quadratic"),
    ),
    (
        "alpha_cl",
        {"weight": "inverse", "q": 2.0},
        PAIRS,
        lambda H: oracles.alpha_cl(H, PAIRS.labels, 0.5, "inverse", q=2.0),
    ),
]
IDS = [f"{c[0]}-{'-'.join(f'{v}' for v in c[1].values())}" for c in CASES]


def test_every_registered_loss_has_a_definition_case():
    """A loss added to the registry fails here until its paper's definition is written in
    tests/oracles.py and listed in CASES (every form is then checked against it)."""
    assert {c[0] for c in CASES} == set(LOSSES)


@pytest.mark.parametrize("name,params,samples,oracle", CASES, ids=IDS)
def test_every_form_matches_the_definition(rng, name, params, samples, oracle):
    """G form (numpy), torch blocked, torch plain and the paper's definition agree."""
    loss = get_loss(name, **params)
    H = random_unit(rng, samples.n, 4)
    ref = oracle(H)
    scale = max(abs(ref), 1.0)
    assert loss.value(H, samples) == pytest.approx(ref, abs=1e-11 * scale)
    assert loss.gram_value(H @ H.T, samples) == pytest.approx(ref, abs=1e-11 * scale)
    Ht = torch.tensor(H)
    assert loss.torch_value(Ht, samples).item() == pytest.approx(ref, abs=1e-11 * scale)
    assert loss.torch_value_and_grad(Ht, samples, block=3)[0].item() == pytest.approx(ref, abs=1e-11 * scale)


@pytest.mark.parametrize("name,params,samples,oracle", CASES, ids=IDS)
def test_gradients_agree(rng, name, params, samples, oracle):
    """Blocked closed-form gradient = one block = 2 g H from the G form; = autograd of the plain
    definition for losses with a scalar objective (alpha-CL's is the fixed-alpha gradient)."""
    loss = get_loss(name, **params)
    H = random_unit(rng, samples.n, 4)
    Ht = torch.tensor(H)
    _, g_blocks = loss.torch_value_and_grad(Ht, samples, block=3)
    _, g_one = loss.torch_value_and_grad(Ht, samples, block=10_000)
    _, g = loss.gram_value_and_grad(H @ H.T, samples)
    scale = np.abs(g_one.numpy()).max()
    assert np.abs(g_blocks.numpy() - g_one.numpy()).max() <= 1e-12 * scale
    assert np.abs(2 * g @ H - g_one.numpy()).max() <= 1e-11 * scale
    if loss.scalar_objective:
        Ha = Ht.clone().requires_grad_(True)
        loss.torch_value(Ha, samples).backward()
        assert np.abs(Ha.grad.numpy() - g_one.numpy()).max() <= 1e-11 * scale


def test_gram_gradient_matches_finite_differences(rng):
    for name, params, samples in [
        ("dhel", {}, PAIRS),
        ("kcl", {"kernel": "imq"}, PAIRS),
        ("spectral", {}, PAIRS),
        ("infonce", {"negatives": "same_view", "tau": 0.5}, VIEWS),
    ]:
        loss = get_loss(name, **params)
        H = random_unit(rng, samples.n, 5)
        G = H @ H.T
        _, g = loss.gram_value_and_grad(G, samples)
        E = rng.standard_normal(G.shape)
        E = (E + E.T) / 2
        np.fill_diagonal(E, 0)
        fd = (loss.gram_value(G + 1e-6 * E, samples) - loss.gram_value(G - 1e-6 * E, samples)) / 2e-6
        assert np.sum(g * E) == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize(
    "name,params,samples,oracle",
    [c for c in CASES if c[0] != "supcon_in"],
    ids=[i for i, c in zip(IDS, CASES, strict=True) if c[0] != "supcon_in"],
)
def test_cvxpy_form_matches(rng, name, params, samples, oracle):
    """The CVXPY expression of the convex relaxation equals the G form at a random feasible G:
    the loss itself; KCL's energy minorant (equal to KCL where views align); alpha-CL's
    fixed-alpha program at alpha from that G."""
    loss = get_loss(name, **params)
    H = random_unit(rng, samples.n, 4)
    if name == "kcl":
        H[1::2] = H[0::2]  # aligned views: the minorant equals the loss
    G = H @ H.T
    X = cp.Variable(G.shape, symmetric=True)
    X.value = G
    relax = loss.relaxation()
    expr = relax.cvxpy_gram(X, samples, at=G) if name == "alpha_cl" else relax.cvxpy_gram(X, samples)
    assert expr.is_convex()
    assert expr.value == pytest.approx(loss.gram_value(G, samples), rel=1e-10, abs=1e-10)


def test_kcl_minorant_is_below_and_tight_at_alignment(rng):
    loss = get_loss("kcl")
    h = loss.relaxation()
    H = random_unit(rng, PAIRS.n, 3)
    assert h.gram_value(H @ H.T, PAIRS) < loss.gram_value(H @ H.T, PAIRS)
    H[1::2] = H[0::2]
    assert h.gram_value(H @ H.T, PAIRS) == pytest.approx(loss.gram_value(H @ H.T, PAIRS), rel=1e-14)
    assert get_loss("kcl", kernel="riesz", s=-3.0).relaxation() is None  # -r^3 is not convex in G


# ---- closed forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("N,V,tau", [(4, 2, 0.5), (5, 3, 0.2), (3, 4, 1.0)])
def test_infonce_with_views_at_the_simplex(N, V, tau):
    """Instance means on a simplex, views aligned (DESIGN section 3). Per anchor, with
    e = exp(-1/((N - 1) tau)) the negatives' term:
    all: log((V - 1) e^{1/tau} + (N - 1) V e) - 1/tau; same_view: (N - 1) negatives;
    decoupled: log((N - 1) V e) - 1/tau."""
    n = N * V
    e = np.exp(-1 / ((N - 1) * tau))
    expected = {
        "all": n * (np.log((V - 1) * np.exp(1 / tau) + (N - 1) * V * e) - 1 / tau),
        "same_view": n * (np.log((V - 1) * np.exp(1 / tau) + (N - 1) * e) - 1 / tau),
        "decoupled": n * (np.log((N - 1) * V * e) - 1 / tau),
    }
    samples = Samples.instances_views(N, V)
    for negatives, value in expected.items():
        res = solve(Problem(get_loss("infonce", tau=tau, negatives=negatives), samples))
        assert res.value == pytest.approx(value, rel=1e-9)
        assert res.certificate.certified and res.collapsed and res.rank == N - 1
        cos = res.class_gram()[~np.eye(N, dtype=bool)]
        assert np.allclose(cos, -1 / (N - 1), atol=1e-6)
    # SimCLR's negatives: InfoNCE over N x V is SupCon with counts (V, ..., V)
    assert solve(Problem((V,) * N, tau)).value == pytest.approx(expected["all"], rel=1e-9)


@pytest.mark.parametrize("M,tau", [(3, 0.3), (5, 0.3), (6, 1.0)])
def test_dhel_at_the_simplex(M, tau):
    """Per pair -1/tau + 2 [log(M - 1) - 1/((M - 1) tau)] (DESIGN section 3), M <= d + 1."""
    loss = get_loss("dhel", tau=tau)
    res = solve(Problem(loss, Samples.instances_views(M, 2)))
    per_pair = -1 / tau + 2 * (np.log(M - 1) - 1 / ((M - 1) * tau))
    assert res.value == pytest.approx(M * per_pair, rel=1e-10)
    assert res.certificate.certified and res.rank == M - 1
    assert res.geometry.summary()["positive_cosine"] == pytest.approx(1.0)
    mean = Problem(get_loss("dhel", tau=tau, reduction="mean"), Samples.instances_views(M, 2))
    assert solve(mean).value == pytest.approx(per_pair, rel=1e-10)  # mean over pairs


def _thomson_simplex(M):
    """Riesz s = 1 energy of the regular simplex of M points: C(M, 2) / sqrt(2 M / (M - 1))."""
    return M * (M - 1) / 2 / np.sqrt(2 * M / (M - 1))


@pytest.mark.parametrize("M", [3, 4, 6])
def test_kcl_at_the_simplex(M):
    """Gaussian: -2 + 2 gamma exp(-2 t M / (M - 1)); Riesz s = 1: -2 + 2 gamma E_M / C(M, 2)."""
    t, gamma = 2.0, 16.0
    samples = Samples.instances_views(M, 2)
    res = solve(Problem(get_loss("kcl"), samples))
    assert res.value == pytest.approx(-2 + 2 * gamma * np.exp(-2 * t * M / (M - 1)), rel=1e-10)
    assert res.certificate.certified and res.collapsed
    riesz = solve(Problem(get_loss("kcl", kernel="riesz"), samples))
    pairs = M * (M - 1) / 2
    assert riesz.value == pytest.approx(-2 + 2 * gamma * _thomson_simplex(M) / pairs, rel=1e-10)
    assert riesz.certificate.certified


def test_polyhedron_when_pairs_exceed_the_dimension():
    """M = 6 pairs in d = 3: the relaxation's optimum (a simplex in 5 dimensions) does not fit, so
    the relaxation is reported loose and no restart is certified; restarts reach the octahedron
    (12 neighbours at r^2 = 2, 3 antipodes at r^2 = 4 per view), closed forms below."""
    M, d, t, gamma, tau = 6, 3, 2.0, 16.0, 0.3
    samples = Samples.instances_views(M, 2)
    octahedron = {
        "kcl": -2 + 2 * gamma * (12 * np.exp(-2 * t) + 3 * np.exp(-4 * t)) / 15,
        "dhel": M * (-1 / tau + 2 * np.log(4 + np.exp(-1 / tau))),
    }
    for name, value in octahedron.items():
        res = verify(Problem(get_loss(name), samples), dim=d, restarts=6, seed=0)
        out = res.to_dict()
        assert out["relaxation_tight"] is False and out["optimum_rank"] == M - 1
        assert out["fraction_global"] == 0.0 and "lower bound" in out["claim"]
        assert all(r["certified"] is False for r in out["restarts"])
        assert out["best_value"] == pytest.approx(value, rel=1e-8)
        assert out["optimal_value"] < value  # the relaxation's value: a strict lower bound here


def test_alpha_cl_fixed_point_at_the_simplex():
    """Pairs on a simplex: every negative at r = N / (N - 1), so alpha is uniform and
    E = 2N / (1 + eps / w) * (-N / (N - 1)), w = g(r^p). Certified: a global optimum of its own
    fixed-alpha program."""
    N, tau, p, eps = 5, 0.5, 2.0, 0.1
    samples = Samples.instances_views(N, 2)
    x = (N / (N - 1)) ** p
    for weight, w in (("exp", np.exp(-x / tau)), ("inverse", 1 / (x + tau))):
        res = solve(Problem(get_loss("alpha_cl", weight=weight), samples))
        assert res.value == pytest.approx(2 * N / (1 + eps / w) * (-N / (N - 1)), rel=1e-9)
        assert res.certificate.certified and res.collapsed


def test_alpha_cl_dynamics_is_tau_times_dcl_with_exp_p1_eps0(rng):
    """With exp weights, p = 1 and eps = 0 alpha is the softmax over negatives: the stop-gradient
    dynamics is tau times the gradient of DCL (Tian 2022)."""
    tau = 0.4
    H = torch.tensor(random_unit(rng, PAIRS.n, 4))
    alpha = get_loss("alpha_cl", tau=tau, p=1.0, eps=0.0)
    dcl = get_loss("dcl", tau=tau)
    lex, g_alpha = alpha.torch_log_excess_and_grad(H, PAIRS)
    _, g_dcl = dcl.torch_value_and_grad(H, PAIRS)
    torch.testing.assert_close(g_alpha * torch.exp(lex), tau * g_dcl, rtol=1e-10, atol=1e-12)


# ---- reduced programs = the n x n program -------------------------------------------------------------


@pytest.mark.parametrize(
    "name,params",
    [
        ("infonce", {"negatives": "same_view", "tau": 0.5}),
        ("dhel", {"tau": 0.5}),
        ("kcl", {"kernel": "imq"}),
        ("dcl", {"tau": 0.5}),
        ("infonce", {"tau": 0.3}),
    ],
)
def test_reduced_program_equals_the_full_program(name, params):
    """Instances x views (and class-symmetric losses on instances): the n x n program through
    CLARABEL, the reduced conic program and the factored reduced solve agree."""
    problem = Problem(get_loss(name, **params), Samples.instances_views(4, 2))
    reduced = solve(problem)
    conic = solve(problem, solver="clarabel")
    full = solve(problem, method="full")
    for other in (conic.solver_value, full.solver_value, full.value):
        assert other == pytest.approx(reduced.value, rel=1e-6, abs=1e-9)
    assert reduced.certificate.certified and full.certificate.certified


def test_instance_view_symmetry_spectrum_and_average(rng):
    sym = InstanceViewSymmetry(Samples.instances_views(4, 3))
    x = rng.uniform(-0.4, 0.6, 3)
    M = sym.expand(x, diag=[0.7])
    values, mult = sym.spectrum(x, [0.7])
    assert np.all(np.diff(values) >= 0)  # ascending: the certificate reads the smallest
    assert np.allclose(np.repeat(values, mult), np.linalg.eigvalsh(M), atol=1e-12)
    H = random_unit(rng, 12, 5)
    xa, dist = sym.average_embeddings(H)
    assert np.allclose(xa, sym.average(H @ H.T))
    assert np.allclose(dist, 1 - xa)
    Z = sym.factors_from_gram(sym.average(H @ H.T))
    assert np.allclose(sym.gram_from_factors(Z), sym.average(H @ H.T), atol=1e-12)
    assert np.allclose(sym.distances_from_factors(Z), 1 - sym.gram_from_factors(Z), atol=1e-12)


def test_reduced_certificate_equals_the_dense_one():
    for name in ("dhel", "kcl", "infonce"):
        problem = Problem(get_loss(name), Samples.instances_views(5, 2))
        res = solve(problem)
        H = res.embeddings(lift=True)
        dense = certify_embeddings(problem.loss, H, problem.samples)
        assert dense.value == pytest.approx(res.value, rel=1e-12)
        assert dense.lambda_min == pytest.approx(res.certificate.lambda_min, abs=1e-9)
        assert dense.certified


@pytest.mark.parametrize(
    "name,params", [("dhel", {"tau": 0.5}), ("kcl", {}), ("infonce", {"tau": 0.5, "negatives": "same_view"})]
)
def test_perturbed_symmetric_point_is_refuted_by_both_certificates(name, params):
    """A feasible invariant point off the optimum (views apart, instances not a simplex): the
    reduced certificate and the dense one of its lifted embeddings agree, and neither certifies."""
    from solvers import certify_reduced

    problem = Problem(get_loss(name, **params), Samples.instances_views(4, 2))
    sym = problem.symmetry()
    x = np.array([0.9, -0.2, -0.25])
    assert np.all(sym.eigenvalues_of_gram(x) >= 0)
    red = certify_reduced(problem.loss, sym, 1 - x, samples=problem.samples)
    H = sym.geometry(x).embeddings(lift=True)
    dense = certify_embeddings(problem.loss, H, problem.samples)
    assert red.lambda_min == pytest.approx(dense.lambda_min, rel=1e-9, abs=1e-12)
    assert not red.certified and not dense.certified
    assert red.value - solve(problem).value <= red.gap_bound * (1 + 1e-9)


def test_kcl_certificate_adds_the_alignment_gap(rng):
    """A point with views apart: f - f* <= (f - h) + the minorant's bound, never certified."""
    problem = Problem(get_loss("kcl"), Samples.instances_views(4, 2))
    f_star = solve(problem).value
    for _ in range(5):
        H = random_unit(rng, 8, 3)
        cert = certify_embeddings(problem.loss, H, problem.samples)
        assert cert.value - f_star <= cert.gap_bound * (1 + 1e-9) + 1e-12
        assert not cert.certified


# ---- losses without a relaxation, reductions, samples checks --------------------------------------------


def test_supcon_in_has_verify_and_census_but_no_certificate():
    problem = Problem(get_loss("supcon_in", tau=0.3), Samples.from_counts((4, 3, 3)))
    with pytest.raises(UFMInputError, match="no convex relaxation"):
        solve(problem)
    res = verify(problem, dim=2, restarts=3, seed=0)
    out = res.to_dict()
    assert out["certifiable"] is False and out["fraction_global"] is None
    assert out["optimal_value"] is None and "no global certificate exists" in out["claim"]
    assert all(r["certified"] is None and "no global certificate" in r["reason"] for r in out["restarts"])
    assert out["converged"] == 3 and out["distinct_minima"] >= 1


def test_mean_reduction_divides_by_anchors():
    H = torch.tensor(random_unit(np.random.default_rng(0), 10, 3))
    for name, anchors in (("dhel", 5), ("kcl", 5), ("infonce", 10), ("alpha_cl", 10), ("spectral", 5)):
        s = get_loss(name, reduction="sum").torch_value(H, PAIRS).item()
        m = get_loss(name, reduction="mean").torch_value(H, PAIRS).item()
        assert m == pytest.approx(s / anchors, rel=1e-12), name
    assert get_loss("kcl").reduction == "mean"  # the authors' normalisation
    assert get_loss("spectral").reduction == "mean"  # HaoChen et al.'s


def test_losses_check_their_samples():
    with pytest.raises(UFMInputError, match="--instances"):
        Problem(get_loss("infonce"), Samples.from_counts((3, 3)))
    with pytest.raises(UFMInputError, match="--views"):
        Problem(get_loss("dhel"), Samples.instances_views(4, 3))
    with pytest.raises(UFMInputError, match="--t"):
        get_loss("supcon", t=2.0)
    for cls in LOSSES.values():  # declared once: name, formula, source, floor
        assert cls.name and cls.formula and cls.source and cls.title


def test_rotation_and_permutation_invariance(rng):
    """Every loss is invariant under rotations, and under permuting instances (views together)."""
    H = random_unit(rng, PAIRS.n, 4)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    perm = (np.array([3, 0, 4, 1, 2])[:, None] * 2 + np.arange(2)).ravel()
    for name, params, samples, _ in CASES:
        if samples is not PAIRS:
            continue
        loss = get_loss(name, **params)
        v = loss.value(H, samples)
        assert loss.value(H @ Q, samples) == pytest.approx(v, rel=1e-12)
        assert loss.value(H[perm], samples) == pytest.approx(v, rel=1e-12)


# ---- a loss whose optimum does not collapse: the non-collapsed paths -------------------------------------


def test_non_collapsed_optimum_through_every_route(rng):
    """tests/spread_loss.py (test only): the factored solve must release collapse; reduced, orbit
    and n x n programs agree; rank counts the spread; the lifted embeddings realise the value and
    are certified densely; restarts in dimension >= rank reach it."""
    from spread_loss import Spread

    problem = Problem(Spread(), Samples.from_counts((4, 3, 3)))
    red = solve(problem, method="reduced")
    orb = solve(problem, method="orbit")
    full = solve(problem, method="full")
    assert red.certificate.certified and orb.certificate.certified and full.certificate.certified
    assert not red.collapsed
    assert orb.value == pytest.approx(red.value, rel=1e-9)
    assert full.solver_value == pytest.approx(red.value, rel=1e-6)
    within = red.geometry.within_cosines()
    assert np.all(within < 0.99)
    spread = int(((red.geometry.gram.within < 1 - 1e-6) * (red.geometry.groups.count - 1)).sum())
    assert red.rank == red.geometry.mean_rank + spread
    H = red.embeddings(lift=True)
    assert H.shape == (10, red.rank)
    assert problem.loss.value(H, problem.samples) == pytest.approx(red.value, rel=1e-10)
    assert certify_embeddings(problem.loss, H, problem.samples).certified
    with pytest.raises(ValueError, match="not collapsed"):
        red.embeddings()
    v = verify(problem, dim=red.rank, restarts=3, seed=0, snap=False)
    assert v.fraction_global == 1.0 and v.distinct_minima == 1
