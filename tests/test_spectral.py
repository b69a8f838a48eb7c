"""The spectral contrastive loss (HaoChen, Wei, Gaidon & Ma 2021) and what happens at a floor that
is attained: closed forms, the loss against an independent evaluation of its formula, gradients,
solve at the floor (stopped there, certified on an absolute gap), the restarts, verify for N <= d
(certified, no negative gaps) and N > d (the relaxation is loose: nothing certified)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import random_unit

from solvers import certify_embeddings, solve
from solvers.certificate import decide
from solvers.lbfgs import lbfgs
from solvers.nonconvex import optimize
from solvers.stop import StopReason
from solvers.verify import verify
from ufm import Problem, Samples, get_loss
from ufm.closed_forms import spectral_optimum
from ufm.errors import UFMInputError

LOSS = get_loss("spectral")


def pairs(N: int) -> Samples:
    return Samples.instances_views(N, 2)


def orthonormal(N: int, d: int, rng=None) -> np.ndarray:
    """u_i = v_i = the i-th column of a random orthogonal d x d matrix (N <= d), rows a V + v."""
    rng = np.random.default_rng(0) if rng is None else rng
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return np.repeat(Q[:N], 2, axis=0)


def by_formula(H, N: int, reduction: str = "mean") -> float:
    """-(2/N) sum_i u_i.v_i + 1/(N(N-1)) sum_{i != j} (u_i.v_j)^2, numpy, from the pair form."""
    U, V = H[0::2], H[1::2]
    M = U @ V.T
    off = (M * M).sum() - (np.diag(M) ** 2).sum()
    value = -2 * np.trace(M) / N + off / (N * (N - 1))
    return value * N if reduction == "sum" else value


# ---- the loss ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("N,d", [(2, 2), (3, 5), (6, 6), (10, 16)])
def test_orthonormal_instances_reach_the_floor_exactly(N, d):
    H = orthonormal(N, d)
    s = pairs(N)
    assert LOSS.floor(s) == -2.0 and LOSS.geometry_range(s) == 5.0
    assert LOSS.value(H, s) == pytest.approx(-2.0, abs=1e-15)
    assert LOSS.torch_value(torch.tensor(H), s).item() == pytest.approx(-2.0, abs=1e-15)
    lex, _ = LOSS.dense_log_excess(LOSS.distances(H, s), s)
    assert np.exp(lex) <= 1e-30  # the excess is 0 up to (u_i.v_j)^2 round-off
    total = get_loss("spectral", reduction="sum")
    assert total.floor(s) == -2.0 * N and total.value(H, s) == pytest.approx(-2.0 * N, abs=1e-14)
    axis = np.repeat(np.eye(d)[:N], 2, axis=0)  # exactly orthonormal: exactly the floor
    assert LOSS.value(axis, s) == -2.0 and LOSS.gram_value(axis @ axis.T, s) == -2.0


@pytest.mark.parametrize("N,d", [(2, 3), (4, 3), (5, 8), (9, 4)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_value_matches_the_formula_at_random_points(rng, N, d, reduction):
    loss = get_loss("spectral", reduction=reduction)
    s = pairs(N)
    for _ in range(3):
        H = random_unit(rng, 2 * N, d)
        ref = by_formula(H, N, reduction)
        assert loss.value(H, s) == pytest.approx(ref, abs=1e-13 * N)
        assert loss.gram_value(H @ H.T, s) == pytest.approx(ref, abs=1e-13 * N)
        assert loss.torch_value(torch.tensor(H), s).item() == pytest.approx(ref, abs=1e-13 * N)
        v, _ = loss.torch_value_and_grad(torch.tensor(H), s, block=3)
        assert v.item() == pytest.approx(ref, abs=1e-13 * N)
        assert loss.floor(s) <= ref <= loss.floor(s) + loss.geometry_range(s)


def test_excess_keeps_its_precision_at_the_floor():
    """Near the floor value - floor is round-off; the excess, from distances, is not."""
    N, d, eps = 4, 6, 1e-9
    rng = np.random.default_rng(1)
    H = orthonormal(N, d, rng) + eps * rng.standard_normal((2 * N, d))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    s = pairs(N)
    Hl = H.astype(np.longdouble)
    U, V = Hl[0::2], Hl[1::2]
    M = U @ V.T
    align = ((U - V) ** 2).sum() / 2  # sum_i (1 - u_i.v_i)
    exact = 2 * align / N + ((M * M).sum() - (np.diagonal(M) ** 2).sum()) / (N * (N - 1))
    lex, _ = LOSS.dense_log_excess(LOSS.distances(H, s), s)
    assert 0 < exact < 1e-15
    assert float(np.exp(lex)) == pytest.approx(float(exact), rel=1e-6)
    lex_t, _ = LOSS.torch_log_excess_and_grad(torch.tensor(H), s)
    assert float(torch.exp(lex_t)) == pytest.approx(float(exact), rel=1e-6)


def test_gradients_against_autograd_and_finite_differences(rng):
    N, d = 5, 4
    s = pairs(N)
    H = random_unit(rng, 2 * N, d)
    Ht = torch.tensor(H, requires_grad=True)
    U, V = Ht[0::2], Ht[1::2]
    M = U @ V.T
    (-2 * torch.trace(M) / N + ((M * M).sum() - (torch.diagonal(M) ** 2).sum()) / (N * (N - 1))).backward()
    _, grad = LOSS.torch_value_and_grad(torch.tensor(H), s, block=3)
    assert np.abs(grad.numpy() - Ht.grad.numpy()).max() <= 1e-12 * np.abs(Ht.grad.numpy()).max()
    # its gradient in G against finite differences: tests/test_family.py, with every loss


def test_samples_and_parameters_are_checked():
    with pytest.raises(UFMInputError, match="--views"):
        Problem(LOSS, Samples.instances_views(4, 3))
    with pytest.raises(UFMInputError, match="--instances"):
        Problem(LOSS, Samples.from_counts((3, 3)))
    with pytest.raises(UFMInputError, match="--tau"):
        get_loss("spectral", tau=0.5)
    assert Problem(LOSS, pairs(1)).degenerate() is not None
    assert LOSS.floor_attainable and LOSS.floor_tolerance(pairs(4)) > 0
    supcon = get_loss("supcon")  # a floor that is never reached: verdicts stay relative
    assert supcon.floor_scale(Samples.from_counts((3, 3))) is None
    assert supcon.floor_tolerance(Samples.from_counts((3, 3))) == 0.0


# ---- the certificate at an attained floor ------------------------------------------------------------


def test_decide_on_an_absolute_gap():
    scale = 5.0
    at_zero = decide(-2.0, -np.inf, 0.0, 8, 1e-6, "test", 1.0, None, floor_scale=scale)
    assert at_zero.certified and at_zero.gap_bound == 0.0 and at_zero.scale_kind == "floor"
    assert "at the floor" in at_zero.reason and "absolute gap" in at_zero.reason
    # round-off excess with a meaningless scaled eigenvalue: the excess itself bounds the gap
    noisy = decide(-2.0, np.log(1e-20), -1e12, 8, 1e-6, "test", 1e15, None, floor_scale=scale)
    assert noisy.certified and noisy.gap_bound == pytest.approx(1e-20) and "at the floor" in noisy.reason
    far = decide(-2.0, np.log(1e-3), -1.0, 8, 1e-6, "test", 1.0, None, floor_scale=scale)
    assert not far.certified and far.gap_bound == pytest.approx(1e-3)
    assert "absolute gap" in far.reason and far.gap_relative_to_scale == pytest.approx(1e-3 / scale)
    relative = decide(-2.0, np.log(1e-20), -1e12, 8, 1e-6, "test", 1e15, None)  # no floor_scale
    assert not relative.certified  # the relative verdict: unresolved, never certified


def test_certificates_are_honest_off_the_floor(rng):
    """f* = -2 (the relaxation always reaches the floor), so the true gap is the excess: the bound
    is never below it, and a point more than tol x scale above the floor is never certified."""
    N, d = 4, 4
    s = pairs(N)
    for _ in range(5):
        H = random_unit(rng, 2 * N, d)
        cert = certify_embeddings(LOSS, H, s)
        assert not cert.certified
        assert cert.gap_bound >= cert.excess * (1 - 1e-12)
    opt = orthonormal(N, d)
    for sigma, certified in ((1e-2, False), (1e-7, True)):
        H = opt + sigma * rng.standard_normal(opt.shape)
        H /= np.linalg.norm(H, axis=1, keepdims=True)
        cert = certify_embeddings(LOSS, H, s)
        assert cert.certified is certified, cert.reason
        assert cert.gap_bound >= cert.excess * (1 - 1e-12) and "absolute gap" in cert.reason


# ---- solve -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("N", [2, 3, 5, 12, 40])
def test_solve_stops_at_the_floor_certified(N):
    s = pairs(N)
    res = solve(Problem(LOSS, s))
    cert = res.certificate
    assert cert.certified and cert.scale_kind == "floor"
    assert "at the floor" in cert.reason and "absolute gap" in cert.reason
    assert res.value == pytest.approx(spectral_optimum(N), abs=LOSS.floor_tolerance(s))
    assert cert.excess <= LOSS.floor_tolerance(s)
    assert res.status.value == "converged" and res.iterations < 100  # stopped, not chasing log(0)
    assert any("floor" in note for note in res.notes)
    assert res.rank == N  # orthonormal instances, views aligned
    summary = res.geometry.summary()
    assert summary["positive_cosine"] == pytest.approx(1.0, abs=1e-12)
    H = res.embeddings(lift=True)
    assert np.abs((H @ H.T)[0::2, 0::2] - np.eye(N)).max() < 1e-6
    assert certify_embeddings(LOSS, H, s).certified


@pytest.mark.parametrize("N", [3, 5, 8])
def test_reduced_full_and_clarabel_agree(N):
    problem = Problem(LOSS, pairs(N))
    reduced = solve(problem)
    full = solve(problem, method="full")
    conic = solve(problem, solver="clarabel")
    bm = solve(problem, method="full", solver="factored")  # Burer-Monteiro restarts over H
    for r in (full, conic, bm):
        assert r.certificate.certified and r.value == pytest.approx(reduced.value, abs=1e-12)
    for v in (full.solver_value, conic.solver_value):
        assert v == pytest.approx(-2.0, abs=1e-8)
    total = solve(Problem(get_loss("spectral", reduction="sum"), pairs(N)))
    assert total.value == pytest.approx(spectral_optimum(N, reduction="sum"), abs=1e-12)
    assert total.certificate.certified


def test_minibatch_spectral_reaches_the_floor():
    """Each batch of two pairs is reduced by its own pairs (mean -2 at its floor) and the batches
    add up: -4 (not the pooled mean -2 over all four pairs)."""
    samples = pairs(4).with_batches([np.arange(4), np.arange(4, 8)], "two batches of two pairs")
    res = solve(Problem(LOSS, samples))
    assert res.certificate.certified and res.value == pytest.approx(-4.0, abs=1e-12)


# ---- restarts and verify -------------------------------------------------------------------------------


def test_lbfgs_stops_at_the_floor_instead_of_chasing_log_zero():
    def log_square(x):  # log |x|^2: no minimiser, -inf at 0
        q = float(x @ x)
        return (np.log(q) if q > 0 else -np.inf), 2 * x / max(q, 1e-300)

    res = lbfgs(log_square, np.array([1.0, -2.0, 0.5]), fmin=np.log(1e-20))
    assert res.reason == StopReason.FLOOR and res.value <= np.log(1e-20)

    def log_linear(x):  # log x_0 (an excess reaching 0 on a hyperplane), -inf beyond
        return (np.log(x[0]) if x[0] > 0 else -np.inf), np.array([1.0 / max(x[0], 1e-300), 0.0])

    res = lbfgs(log_linear, np.array([1e-3, 1.0]))
    assert res.reason == StopReason.FLOOR and res.value == -np.inf  # the step onto log(0) is taken


def test_restarts_stop_at_the_floor():
    N, d = 5, 6
    s = pairs(N)
    run = optimize(Problem(LOSS, s), d, restarts=4, seed=1, device="cpu")
    assert all(r == StopReason.FLOOR for r in run.reasons)
    assert np.all(run.values - LOSS.floor(s) <= LOSS.floor_tolerance(s))
    assert np.all(np.isfinite(run.grad_norms))


def test_verify_with_pairs_that_fit_is_certified_without_negative_gaps():
    N, d = 4, 4
    s = pairs(N)
    out = verify(Problem(LOSS, s), dim=d, restarts=6, seed=0).to_dict()
    assert out["optimal_value"] == pytest.approx(-2.0, abs=LOSS.floor_tolerance(s))
    assert out["relaxation_tight"] is True and out["fraction_global"] == 1.0
    assert "6 of 6 restarts reached a certified global optimum" in out["claim"]
    for r in out["restarts"]:
        assert r["certified"] and "absolute gap" in r["reason"]
        assert r["stop_reason"] == "floor_reached"
        # both the optimum and the restart are at the floor: their difference is round-off, never
        # a real negative gap (the optimum was once wrong and the gaps -1)
        assert -LOSS.floor_tolerance(s) <= r["gap"] <= LOSS.floor_tolerance(s)


def test_verify_with_more_pairs_than_dimensions_is_honest():
    """N > d: the floor cannot be reached in dimension d, the relaxation is loose (rank N), no
    restart is certified; the restarts reach the tight-frame optimum -2 + (N - d) / (d (N - 1))
    (ufm.closed_forms.spectral_optimum, a proven lower bound in dimension d)."""
    N, d = 6, 3
    s = pairs(N)
    res = verify(Problem(LOSS, s), dim=d, restarts=6, seed=0)
    out = res.to_dict()
    best = spectral_optimum(N, d)
    assert best == pytest.approx(-1.8)
    assert out["relaxation_tight"] is False and out["optimum_rank"] == N
    assert out["fraction_global"] == 0.0 and "lower bound" in out["claim"]
    assert out["best_value"] == pytest.approx(best, abs=1e-9)
    for r in out["restarts"]:
        assert r["certified"] is False
        assert r["value"] >= best - 1e-9 and r["gap"] > 0.19
        assert r["gap_bound"] >= r["excess"] * (1 - 1e-12)  # the true gap to the relaxation


# ---- the command line --------------------------------------------------------------------------------


def ufm(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "ufm", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_solve_and_certify_at_the_floor(tmp_path):
    r = ufm("solve", "--loss", "spectral", "--instances", "4", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["optimal_value"] == pytest.approx(-2.0, abs=1e-13)
    assert out["certificate"]["certified"] is True and "absolute gap" in out["certificate"]["reason"]
    assert out["certificate"]["scale_kind"] == "floor"
    H = solve(Problem(LOSS, pairs(4))).embeddings(lift=True)
    np.save(tmp_path / "H.npy", H)
    r = ufm("certify", "--loss", "spectral", "--instances", "4", "--embeddings", str(tmp_path / "H.npy"),
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["certified"] is True and out["value"] == pytest.approx(-2.0, abs=1e-13)
