"""Solvers against closed forms, against each other, and the certificate against the truth.

The solve-level tests at the end (reduced vs full vs CLARABEL, certified, value against an
independent oracle) are generated from the registry ``ufm.losses.LOSSES``: a newly registered
loss is covered the day it lands."""

import importlib

import numpy as np
import pytest
from adversarial_oracle import oracle_for
from conftest import expand_group_gram

from solvers import certify_gram, certify_reduced, solve
from solvers.lbfgs import StopReason, lbfgs
from ufm import Problem, Samples
from ufm.closed_forms import supcon_balanced_optimum, supcon_two_class_optimum
from ufm.errors import UFMInputError
from ufm.losses import LOSSES
from ufm.structure import GroupGram, Groups, block_spectrum

solve_module = importlib.import_module("solvers.solve")  # the module (solvers.solve is the function)


@pytest.mark.parametrize("k,m,tau", [(2, 3, 1.0), (4, 5, 1.0), (5, 4, 0.05), (10, 3, 0.1),
                                     (3, 2, 0.05), (25, 6, 0.3), (7, 10, 0.02)])
@pytest.mark.parametrize("method", ["reduced", "orbit"])
def test_balanced_closed_form(k, m, tau, method):
    res = solve(Problem((m,) * k, tau), method=method)
    assert res.value == pytest.approx(supcon_balanced_optimum(k, m, tau), rel=1e-7)
    assert res.certificate.certified
    assert res.collapsed
    assert res.rank == k - 1
    off = res.class_gram()[~np.eye(k, dtype=bool)]
    assert np.allclose(off, -1 / (k - 1), atol=1e-5)


@pytest.mark.parametrize("n1,n2,tau", [(7, 3, 0.3), (20, 2, 1.0), (5, 5, 0.05), (9, 1, 0.5)])
def test_two_class_closed_form(n1, n2, tau):
    res = solve(Problem((n1, n2), tau))
    assert res.value == pytest.approx(supcon_two_class_optimum(n1, n2, tau), rel=1e-9, abs=1e-12)
    if n2 >= 2:  # a class of one sample has no loss of its own to pin its direction
        assert res.class_gram()[0, 1] == pytest.approx(-1.0, abs=1e-6)


IMBALANCED = [((6, 6, 2, 2), 1.0), ((10, 5, 3, 2, 2), 0.2), ((8, 8, 8, 1, 1), 0.5),
              ((12, 4, 4, 4, 3, 3), 0.1)]


@pytest.mark.parametrize("counts,tau", IMBALANCED)
def test_full_reduced_orbit_agree(counts, tau):
    p = Problem(counts, tau)
    full = solve(p, method="full")
    red = solve(p, method="reduced")
    orb = solve(p, method="orbit")
    red_conic = solve(p, method="reduced", solver="clarabel")
    for other in (orb.value, full.solver_value, red_conic.solver_value, full.value):
        assert other == pytest.approx(red.value, rel=1e-6)
    assert np.allclose(orb.class_gram(), red.class_gram(), atol=1e-4)
    for r in (full, red, orb):
        assert r.certificate.certified
        assert r.collapsed
        assert r.rank <= p.k - 1


def test_scs_agrees_on_reduced():
    p = Problem((6, 6, 2, 2), 0.5)
    assert solve(p, "orbit", "scs").solver_value == pytest.approx(solve(p).value, rel=1e-5)


def test_step_large_k_orbit():
    """STEP imbalance at k = 10^4: certified, collapsed, rank k - 1."""
    p = Problem((50,) * 5000 + (5,) * 5000, 0.1)
    res = solve(p)
    assert res.method == "orbit"
    assert res.certificate.certified
    assert res.collapsed and res.rank == p.k - 1


def test_single_class_and_all_singletons():
    one = solve(Problem((5,), 1.0))
    assert one.value == pytest.approx(5 * np.log(4))
    assert one.certificate.certified
    none = solve(Problem((1, 1, 1), 1.0))
    assert none.value == 0.0 and none.certificate.certified


@pytest.mark.parametrize("orbit", [False, True])
def test_block_spectrum_matches_numpy(rng, orbit):
    counts = (3, 3, 2, 2, 2, 1, 1, 5)
    groups = Groups.orbits(counts) if orbit else Groups.per_class(counts)
    q = groups.q
    C = rng.standard_normal((q, q))
    m = GroupGram(rng.standard_normal(q), rng.standard_normal(q), rng.standard_normal(q), C + C.T)
    values, mult = block_spectrum(groups, m)
    assert mult.sum() == sum(counts)
    expected = np.linalg.eigvalsh(expand_group_gram(groups, counts, m))
    assert np.allclose(np.repeat(values, mult), expected, atol=1e-10)


def test_group_certificate_equals_dense_certificate():
    p = Problem((5, 4, 2, 2, 1), 0.3)
    res = solve(p, method="reduced")
    G = res.embeddings(lift=True)
    G = G @ G.T
    dense = certify_gram(p.loss, G, p.samples)
    assert dense.value == pytest.approx(res.value, rel=1e-12)
    assert dense.lambda_min == pytest.approx(res.certificate.lambda_min, abs=1e-9)
    assert dense.certified


def test_perturbed_optimum_is_not_certified():
    p = Problem((6, 6, 3, 3), 0.5)
    res = solve(p, method="reduced")
    sym = p.symmetry("reduced")
    gram = res.geometry.gram
    bad = GroupGram(gram.diag, gram.within, gram.same, gram.cross.copy())
    bad.cross[0, 1] = bad.cross[1, 0] = gram.cross[0, 1] + 0.05
    cert = certify_reduced(p.loss, sym, 1.0 - sym.from_groupgram(bad))
    assert not cert.certified
    assert cert.gap_bound > 0


def test_gap_bound_is_never_below_true_gap(rng):
    """On random feasible points (lifted from random unit embeddings), f - f* <= gap bound,
    with f* from an independent conic solve of the n x n program."""
    p = Problem((4, 3, 3, 2), 0.4)
    f_star = solve(p, method="full").solver_value
    for _ in range(10):
        H = rng.standard_normal((p.n, 3))
        H /= np.linalg.norm(H, axis=1, keepdims=True)
        cert = certify_gram(p.loss, H @ H.T, p.samples)
        assert cert.value - f_star <= cert.gap_bound * (1 + 1e-9) + 1e-9
        assert not cert.certified


def test_lifted_embeddings_realise_the_optimum():
    p = Problem((5, 3, 3, 1), 0.2)
    res = solve(p)
    H = res.embeddings(lift=True)
    assert H.shape == (p.n, res.rank)
    assert np.allclose(np.linalg.norm(H, axis=1), 1.0)
    assert p.loss.gram_value(H @ H.T, p.samples) == pytest.approx(res.value, rel=1e-10)
    V = res.embeddings()
    assert V.shape == (p.k, res.rank)


def test_lbfgs_on_rosenbrock():
    def rosen(x):
        f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
        g = np.zeros_like(x)
        g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
        g[1:] += 200 * (x[1:] - x[:-1] ** 2)
        return f, g

    res = lbfgs(rosen, np.full(10, -1.0), gtol=1e-10)
    assert res.reason in (StopReason.GRADIENT_TOL, StopReason.NO_PROGRESS)
    assert np.allclose(res.x, 1.0, atol=1e-6)


def test_lbfgs_asks_done_sooner_once_the_gradient_has_dropped():
    """With ``done_sooner``, ``done`` (a costly certificate) is asked at the first multiple of 5
    iterations where the scaled gradient is a quarter of the last check's, not only every
    ``done_every`` iterations; where the gradient barely moves it is asked every ``done_every``."""
    asked = []

    def quadratic(x, curvature):
        return 0.5 * float(x @ (curvature * x)), curvature * x

    def record(x):
        asked.append(len(calls))
        return False

    calls = []
    fast = np.linspace(1.0, 2.0, 20)  # well conditioned: the gradient falls fast
    lbfgs(lambda x: calls.append(1) or quadratic(x, fast), np.ones(20), done=record, done_every=25,
          gtol=0.0, max_iter=12, patience=100, done_sooner=True)
    assert asked and asked[0] <= 6 + 5  # asked by iteration 5 (plus the line search's evaluations)
    asked.clear()
    calls.clear()
    flat = np.ones(20)

    def slow(x):  # a gradient that never drops by 4 between checks
        calls.append(1)
        return float(np.sum(x)) * 1e-3 + 1.0, flat * 1e-3 * (1 + 1e-9 * len(calls))

    res = lbfgs(slow, np.zeros(20), done=record, done_every=25, gtol=0.0, max_iter=60, patience=1000,
                done_sooner=True)
    assert res.iterations == 60 and len(asked) == 2  # at iterations 25 and 50


@pytest.mark.slow
def test_full_program_at_n_96_agrees_with_reduced():
    """The n x n interior-point program (about a minute) against the class-level optimum."""
    p = Problem((36, 36, 12, 12), 0.5)
    full = solve(p, method="full")
    red = solve(p, method="reduced")
    assert full.solver_value == pytest.approx(red.value, rel=1e-7)
    assert full.certificate.certified


# ---- solve keeps its best phase ---------------------------------------------------------------------


def test_solve_keeps_the_best_phase_not_the_last(monkeypatch):
    """A later phase (a collapse release) that ends worse must not replace a certified answer:
    here every unit is released after the first run and the second run is made to end far off."""
    p = Problem((4, 3, 3), 0.5)
    good = solve(p, method="reduced")
    calls = []
    real = solve_module.minimize_factored

    def flaky(*args, **kwargs):
        run = real(*args, **kwargs)
        calls.append(run)
        if len(calls) == 2:  # the released phase "ends" at a poor point
            rng = np.random.default_rng(0)
            Z = run.Z + 0.3 * rng.standard_normal(run.Z.shape)
            run.Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        return run

    sym_cls = type(p.symmetry("reduced"))
    monkeypatch.setattr(solve_module, "minimize_factored", flaky)
    monkeypatch.setattr(sym_cls, "release_test", lambda self, values: np.ones(np.shape(values), dtype=bool))
    res = solve(p, method="reduced")
    assert len(calls) >= 2
    assert res.solver == "factored" and not any("retried" in note for note in res.notes)  # no fallback needed
    assert res.certificate.certified
    assert res.value == pytest.approx(good.value, rel=1e-9)


def test_rank_orders_certified_first_then_value():
    from solvers.certificate import decide

    def cert(log_excess, lam):
        return decide(0.0, log_excess, lam, 10, 1e-6, "test", 1.0, 1.0)

    certified, worse_value, uncertified = cert(-5.0, 0.0), cert(-4.0, 0.0), cert(-9.0, -1.0)
    assert certified.certified and worse_value.certified and not uncertified.certified
    ranked = sorted([uncertified, worse_value, certified], key=solve_module._rank)
    assert ranked == [certified, worse_value, uncertified]


# ---- every registered loss (generated from the registry) -------------------------------------------

#: pairs for losses posed on views, classes for "classes" / "any"
VIEW_SAMPLES = (4, 2)
CLASS_SAMPLES = (3, 3, 2)
REGISTRY = [pytest.param(name, id=name) for name in LOSSES]


def registry_problem(name: str) -> Problem:
    """The loss with its default parameters, on samples of its kind."""
    cls = LOSSES[name]
    samples = (Samples.instances_views(*VIEW_SAMPLES) if cls.samples_kind == "views"
               else Samples.from_counts(CLASS_SAMPLES))
    return Problem(cls(), samples)


def test_registry_cases_are_the_registry():
    """The parametrisation is the registry itself, and it holds the spectral loss (the first loss
    whose floor is attained)."""
    assert [p.values[0] for p in REGISTRY] == list(LOSSES)
    assert "spectral" in [p.values[0] for p in REGISTRY]


@pytest.mark.parametrize("name", REGISTRY)
def test_every_loss_reduced_full_and_clarabel_agree(name):
    """The reduced solve (factored), the n x n program (CLARABEL, polished) and the reduced conic
    program agree and are certified; without a scalar objective (alpha-CL) the n x n dynamics
    stands in for the conic routes; without a relaxation solve refuses in one line."""
    problem = registry_problem(name)
    loss = problem.loss
    if not loss.has_relaxation:
        with pytest.raises(UFMInputError, match="no convex relaxation"):
            solve(problem)
        return
    reduced = solve(problem)
    if loss.scalar_objective:
        full = solve(problem, method="full")
        conic = solve(problem, solver="clarabel")
        values = [full.value, full.solver_value, conic.value, conic.solver_value]
        routes = [reduced, full, conic]
    else:
        full = solve(problem, method="full", solver="factored")
        values, routes = [full.value], [reduced, full]
    for r in routes:
        assert r.certificate.certified, (r.method, r.solver, r.certificate.reason)
        assert np.isfinite(r.value)
    for v in values:
        assert v == pytest.approx(reduced.value, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", REGISTRY)
def test_every_loss_solve_value_matches_its_oracle(name):
    """The solve's value equals an independent oracle's (tests/adversarial_oracle.py: the paper's
    definition in longdouble) at the solve's own embeddings, and with a scalar objective the
    oracle's own CVXPY optimum."""
    problem = registry_problem(name)
    loss = problem.loss
    if not loss.has_relaxation:
        pytest.skip(f"{name} has no convex relaxation: nothing to solve")
    res = solve(problem)
    oracle = oracle_for(loss, problem.samples)
    H = res.embeddings(lift=True)
    scale = max(abs(res.value), 1.0)
    assert float(oracle.value(H)) == pytest.approx(res.value, abs=1e-9 * scale)
    if loss.scalar_objective:
        low, _ = oracle.optimum()
        assert low == pytest.approx(res.value, abs=1e-6 * scale)
