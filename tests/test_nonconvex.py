"""Non-convex restarts against the certified convex optimum; certificates for any H."""

import numpy as np
import pytest
import torch
from conftest import random_unit

from solvers import solve
from solvers.certificate import certify_collapsed, certify_embeddings
from solvers.nonconvex import StopReason, optimize
from solvers.verify import riemannian_hessian_min, verify
from ufm import Problem, metrics

PROBLEMS = [Problem((6, 5, 3, 2), 0.3), Problem((8, 4, 4, 2, 1), 1.0), Problem((5, 5, 2, 2, 2), 0.1)]


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: ",".join(map(str, p.counts)))
@pytest.mark.parametrize("extra_dim", [0, 1, 3])
def test_restarts_in_dimension_k_minus_1_and_above_are_certified(problem, extra_dim):
    dim = problem.k - 1 + extra_dim
    res = verify(problem, dim, restarts=4, seed=3)
    assert res.relaxation_tight
    for r in res.restarts:
        assert r.certificate.certified
        assert r.rel_gap <= 1e-6
        assert r.gram_distance <= 1e-4
        assert r.stop_reason != StopReason.ITERATION_LIMIT.value
    assert res.fraction_global == 1.0 and res.distinct_minima == 1


def test_dimension_two_with_four_classes_is_not_certified():
    problem = Problem((6, 5, 3, 2), 0.3)
    res = verify(problem, 2, restarts=4, seed=0)
    out = res.to_dict()
    assert not out["relaxation_tight"]
    assert out["fraction_global"] == 0.0
    assert "lower bound" in out["claim"]
    for r in res.restarts:
        assert r.gap > 1e-3 * abs(res.optimum.value)
        assert not r.certificate.certified


def test_rgd_reaches_the_same_optimum():
    problem = PROBLEMS[0]
    res = verify(problem, 4, restarts=3, optimizer="rgd", seed=1)
    assert all(r.certificate.certified and r.gram_distance <= 1e-4 for r in res.restarts)


def test_blocked_gradient_matches_one_block(rng):
    problem = Problem((7, 5, 1, 4), 0.2)
    H = torch.tensor(np.stack([random_unit(rng, problem.n, 3) for _ in range(2)]))
    v1, g1 = problem.loss.torch_value_and_grad(H, problem.samples, block=5)
    v2, g2 = problem.loss.torch_value_and_grad(H, problem.samples, block=10_000)
    torch.testing.assert_close(v1, v2, rtol=1e-14, atol=0)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-14)
    Ha = H.clone().requires_grad_(True)
    problem.loss.torch_value(Ha, problem.samples).sum().backward()
    torch.testing.assert_close(g1, Ha.grad, rtol=1e-10, atol=1e-12)


def test_batched_restarts_match_one_by_one():
    problem = PROBLEMS[1]
    batched = optimize(problem, 5, restarts=3, seed=11)
    for r in range(3):
        single = optimize(problem, 5, restarts=1, H0=batched_start(problem, 5, 3, 11)[r:r + 1])
        assert single.values[0] == pytest.approx(batched.values[r], rel=1e-12)
        assert metrics.gram_distance(single.H[0], batched.H[r]) <= 1e-6


def batched_start(problem, dim, R, seed):
    from solvers.nonconvex import random_start

    return random_start(R, problem.n, dim, seed, torch.float64, "cpu").numpy()


def test_same_seed_same_result():
    a = optimize(PROBLEMS[0], 3, restarts=2, seed=5)
    b = optimize(PROBLEMS[0], 3, restarts=2, seed=5)
    assert np.array_equal(a.H, b.H)


def test_perturbed_optimum_is_not_certified(rng):
    problem = PROBLEMS[0]
    H = solve(problem).embeddings(lift=True)
    assert certify_embeddings(problem.loss, H, problem.samples).certified
    Hp = H + 0.02 * rng.standard_normal(H.shape)
    Hp /= np.linalg.norm(Hp, axis=1, keepdims=True)
    cert = certify_embeddings(problem.loss, Hp, problem.samples)
    assert not cert.certified and cert.gap_bound > 0


@pytest.mark.parametrize("dense_max_n", [10_000, 1])
def test_gap_bound_never_below_true_gap(rng, dense_max_n):
    """f(H) - f* <= n max(0, -lambda_min) on random points, f* from the n x n conic program."""
    problem = Problem((5, 4, 3, 2), 0.5)
    f_star = solve(problem, method="full").solver_value
    for d in (1, 2, 4):
        H = random_unit(rng, problem.n, d)
        cert = certify_embeddings(problem.loss, H, problem.samples,
                                  dense_max_n=dense_max_n, block=5)
        assert cert.value - f_star <= cert.gap_bound * (1 + 1e-8) + 1e-9


@pytest.mark.parametrize("memory_budget", [0, 1e9])
def test_matrix_free_certificate_matches_dense(memory_budget):
    problem = Problem((30, 20, 20, 10, 5, 5), 0.2)
    H = optimize(problem, 6, restarts=1, seed=0).H[0]
    dense = certify_embeddings(problem.loss, H, problem.samples)
    free = certify_embeddings(problem.loss, H, problem.samples, dense_max_n=1, block=17,
                              memory_budget=memory_budget)
    assert free.value == pytest.approx(dense.value, rel=1e-13)
    assert free.lambda_min == pytest.approx(dense.lambda_min, abs=1e-9)
    assert free.residual == pytest.approx(dense.residual, rel=1e-6, abs=1e-12)
    assert ("Lanczos" if memory_budget else "LOBPCG") in free.how
    assert free.certified == dense.certified
    cls = certify_collapsed(problem.loss, H, problem.samples, collapse_tol=1e-6)
    assert cls is not None and cls.lambda_min == pytest.approx(dense.lambda_min, abs=1e-8)


def test_hessian_is_positive_at_the_optimum_and_rotation_invariant(rng):
    problem = PROBLEMS[0]
    H = optimize(problem, 3, restarts=1, seed=0).H[0]
    lam = riemannian_hessian_min(problem.loss, H, problem.samples)
    assert lam > 1e-3
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    assert riemannian_hessian_min(problem.loss, H @ Q, problem.samples) == \
        pytest.approx(lam, rel=1e-6)


def test_metrics_are_rotation_invariant(rng):
    H = random_unit(rng, 12, 4)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    assert metrics.gram_distance(H @ Q, H) <= 1e-12
    assert metrics.procrustes_distance(H @ Q, H) <= 1e-12
    assert metrics.procrustes_distance(H[:, :2], H) is None
    y = np.repeat(np.arange(3), 4)
    assert metrics.nc1(H @ Q, y) == pytest.approx(metrics.nc1(H, y))
    M = np.eye(3)[y]
    assert metrics.nc1(M, y) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_restarts_are_certified_after_float64_polish():
    problem = PROBLEMS[0]
    res = verify(problem, 4, restarts=8, device="cuda", seed=0)
    assert res.run.device.startswith("cuda") and res.run.dtype == "float32+float64"
    assert all(r.certificate.certified for r in res.restarts)


def test_mixed_precision_on_cpu_is_polished_and_certified():
    problem = PROBLEMS[1]
    run = optimize(problem, 4, restarts=2, seed=2, precision="mixed")
    assert run.dtype == "float32+float64" and run.H.dtype == np.float64
    for H in run.H:
        assert certify_embeddings(problem.loss, H, problem.samples).certified


def test_random_labels_converge_in_few_iterations():
    """Far from the optimum log(f - floor) is not convex, so L-BFGS skips curvature pairs; its
    scale must still follow the steps. With a scale stuck at 1, 400 samples with random labels
    (k = 8, d = 8) were still at the iteration limit after 200 iterations (now about 20), and
    2000 of them (k = 20) crawled for minutes."""
    y = np.random.default_rng(0).integers(0, 8, size=400)
    problem = Problem.from_labels(y, 0.5)
    run = optimize(problem, 8, restarts=2, seed=0, max_iter=200)
    assert all(r == StopReason.GRADIENT_TOL for r in run.reasons)
    assert run.iterations.max() <= 60
    optimum = solve(problem)
    assert np.allclose(run.log_excess, optimum.certificate.log_excess, rtol=1e-9)
