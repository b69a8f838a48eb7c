"""Certified means the geometry is optimal: floor and excess, small tau, honest verify, degenerate
problems (issue 7, items 1-4 and 7). Each case here was wrong or missing before."""

import json

import mpmath
import numpy as np
import pytest
import torch

from solvers import solve
from solvers.certificate import certify_collapsed, certify_embeddings
from solvers.nonconvex import optimize
from solvers.verify import default_dim, verify
from ufm import Problem
from ufm.cli import main
from ufm.errors import UFMInputError
from ufm.geometry import simplex_etf
from ufm.losses import SupCon
from ufm.losses.supcon import supcon_floor


def SUPCON(tau):  # noqa: N802 - reads as the loss it builds
    return SupCon(tau=tau)


def mp_excess(H, counts, tau, dps=60):
    """f - floor of SupCon at H, in mpmath with ``dps`` digits (the embeddings' float values
    taken as exact): an oracle independent of the log-domain formulas."""
    mpmath.mp.dps = dps
    y = np.repeat(np.arange(len(counts)), counts)
    Hm = [[mpmath.mpf(float(v)) for v in row] for row in H]
    n = len(y)
    G = [[mpmath.fsum(a * b for a, b in zip(Hm[i], Hm[j], strict=True)) for j in range(n)] for i in range(n)]
    total = mpmath.mpf(0)
    for i in range(n):
        pos = [j for j in range(n) if j != i and y[j] == y[i]]
        if not pos:
            continue
        den = mpmath.fsum(mpmath.exp(G[i][j] / tau) for j in range(n) if j != i)
        total += mpmath.log(den) - mpmath.fsum(G[i][j] for j in pos) / len(pos) / tau
    floor = mpmath.fsum(c * mpmath.log(c - 1) for c in counts if c >= 2)
    return total - floor


def antipodal(m=10):
    H = np.zeros((2 * m, 2))
    H[:m, 0], H[m:, 0] = 1.0, -1.0
    return H


# ---- 1. floor and excess ----------------------------------------------------------------------
def test_floor_is_the_closed_form():
    assert supcon_floor((10, 10, 2, 1)) == pytest.approx(20 * np.log(9), rel=1e-15)
    assert SUPCON(1.0).floor((1, 1)) == 0.0


def test_excess_has_full_relative_precision_at_the_optimum():
    """Two classes of 10 at tau = 0.05: excess 9e-17 next to f = 44 (DESIGN section 2)."""
    tau, counts = 0.05, (10, 10)
    exact = 20 * np.log1p(10 / 9 * np.exp(-2 / tau))
    res = solve(Problem(counts, tau))
    assert res.certificate.excess == pytest.approx(exact, rel=1e-12)
    cert = certify_embeddings(SUPCON(tau), antipodal(), counts)
    assert cert.excess == pytest.approx(exact, rel=1e-12)
    assert cert.floor == pytest.approx(20 * np.log(9), rel=1e-15)
    assert cert.certified


def test_excess_of_a_nearly_collapsed_point_matches_mpmath(rng):
    """Spread 1e-7 inside classes: 1 - h_i.h_j is round-off there, the class-centred distances
    are not; the excess agrees with a 60-digit evaluation."""
    counts, tau = (4, 3, 3), 0.1
    M = simplex_etf(3)
    H = np.repeat(M, counts, axis=0) + 1e-7 * rng.standard_normal((10, 2))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    loss = SUPCON(tau)
    lex, _ = loss.dense_log_excess(loss.distances(H, counts), counts)
    oracle = mp_excess(H, counts, tau)
    assert np.exp(lex) == pytest.approx(float(oracle), rel=1e-9)
    lex_t, _ = loss.torch_log_excess_and_grad(torch.tensor(H), counts)
    assert np.exp(lex_t.item()) == pytest.approx(float(oracle), rel=1e-9)


def test_orthogonal_means_are_not_certified():
    """The antipodal optimum and orthogonal means differ by 5e-8 against |f| = 44: a bound
    relative to |f| certified both; relative to the excess only the optimum passes."""
    H = np.zeros((20, 2))
    H[:10, 0], H[10:, 1] = 1.0, 1.0
    cert = certify_embeddings(SUPCON(0.05), H, (10, 10))
    assert not cert.certified
    assert "times the excess" in cert.reason
    assert cert.gap_relative_to_excess > 1.0
    cls = certify_collapsed(SUPCON(0.05), H, (10, 10))
    assert cls is not None and not cls.certified


def test_gap_bound_is_above_the_true_gap_on_random_points(rng):
    counts, tau = (5, 4, 3), 0.2
    opt = solve(Problem(counts, tau)).certificate
    for _ in range(5):
        H = rng.standard_normal((12, 4))
        H /= np.linalg.norm(H, axis=1, keepdims=True)
        cert = certify_embeddings(SUPCON(tau), H, counts)
        assert cert.gap_bound >= (cert.excess - opt.excess) * (1 - 1e-9)
        assert not cert.certified


def test_float64_limit_is_reported_unresolved_not_certified():
    cert = certify_embeddings(SUPCON(0.05), antipodal(), (10, 10), tol=1e-15)
    assert not cert.certified and cert.reason.startswith("unresolved")


def test_solve_json_has_floor_excess_and_reason(capsys):
    assert main(["solve", "--counts", "3,2", "--tau", "0.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    c = d["certificate"]
    for key in ("floor", "excess", "gap_relative_to_excess", "reason", "certified", "lambda_min",
                "gap_bound"):
        assert key in c
    assert c["floor"] == pytest.approx(3 * np.log(2), rel=1e-15)
    assert d["optimal_value"] == pytest.approx(c["floor"] + c["excess"], rel=1e-15)


# ---- 2. the optimal geometry at any tau ---------------------------------------------------------
@pytest.mark.parametrize("tau", [0.001, 0.002, 0.005])
def test_balanced_small_tau_is_the_simplex(tau):
    res = solve(Problem((5, 5, 5), tau))
    cos = res.class_gram()
    assert np.allclose(cos[~np.eye(3, dtype=bool)], -0.5, atol=1e-6)
    assert res.certificate.certified and res.collapsed and res.rank == 2


@pytest.mark.parametrize("counts", [(10, 10, 2, 2), (6, 5, 3, 2), (50, 20, 10, 5, 2, 2)])
def test_imbalanced_small_tau_is_certified_and_no_worse_than_the_simplex(counts):
    """At tau = 0.001 the optimum's excess (exp(-1500) or so, below float64) must not exceed
    the simplex ETF's, evaluated independently in 60-digit arithmetic."""
    tau = 0.001
    res = solve(Problem(counts, tau))
    assert res.certificate.certified and res.collapsed
    k = len(counts)
    etf = np.repeat(simplex_etf(k), counts, axis=0)
    log_etf = float(mpmath.log(mp_excess(etf, counts, tau, dps=int(2.2 / tau / np.log(10)) + 60)))
    assert res.certificate.log_excess <= log_etf + 1e-9 * abs(log_etf)
    assert res.certificate.log_excess > log_etf - 5.0  # same order: the geometry is simplex-like


def test_tau_below_the_float64_limit_is_refused(capsys):
    assert main(["solve", "--counts", "3,3", "--tau", "1e-4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ufm: error: --tau:")
    with pytest.raises(UFMInputError):
        Problem((3, 3), 1e-5)


# ---- 3. verify means what it says ----------------------------------------------------------------
@pytest.mark.parametrize("counts,tau", [((5, 5, 5), 0.02), ((10, 10), 0.05)])
def test_verify_reaches_and_certifies_the_optimum_at_small_tau(counts, tau):
    res = verify(Problem(counts, tau), dim=2, restarts=4, seed=1)
    assert res.fraction_global == 1.0
    assert res.distinct_minima == 1
    assert all(r.stop_reason == "gradient_tolerance" for r in res.restarts)


def test_dimension_one_is_refused_and_never_the_default(capsys):
    assert default_dim(Problem((10, 10), 0.1)) == 2
    assert main(["verify", "--counts", "3,3", "--dim", "1"]) == 2
    assert "--dim" in capsys.readouterr().err
    with pytest.raises(UFMInputError):
        optimize(Problem((3, 3), 0.1), 1, restarts=1)


def test_iteration_limit_is_not_a_minimum():
    res = verify(Problem((4, 3, 2), 0.3), dim=3, restarts=3, max_iter=2, seed=0)
    d = res.to_dict()
    assert all(r["stop_reason"] == "iteration_limit" for r in d["restarts"])
    assert all(not r["converged"] and r["cluster"] is None for r in d["restarts"])
    assert d["distinct_minima"] == 0 and d["converged"] == 0
    assert d["claim"].startswith("no restart certified") and d["fraction_global"] == 0
    assert "did not converge" in d["claim"]
    assert d["same_point_tol"] > 0


# ---- 4. degenerate problems ------------------------------------------------------------------------
@pytest.mark.parametrize("counts,floor", [((1,), 0.0), ((1, 1, 1), 0.0), ((5,), 5 * np.log(4))])
def test_degenerate_problems_are_named_not_solved(counts, floor, capsys):
    res = solve(Problem(counts, 0.1))
    assert res.degenerate is not None and res.geometry is None
    assert res.value == pytest.approx(floor, rel=1e-15)
    d = res.to_dict()
    assert d["rank"] is None and d["class_gram"] is None
    arg = ",".join(map(str, counts))
    assert main(["solve", "--counts", arg]) == 0
    out = capsys.readouterr().out
    assert "degenerate" in out and "rank" not in out
    assert main(["verify", "--counts", arg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["degenerate"]


# ---- 7. certify at scale --------------------------------------------------------------------------
def test_exactly_collapsed_embeddings_take_the_exact_class_level_path(tmp_path, capsys):
    counts = (1500, 1500, 1000, 500, 500)
    H = np.repeat(simplex_etf(5), counts, axis=0)
    y = np.repeat(np.arange(5), counts)
    np.save(tmp_path / "H.npy", H)
    np.save(tmp_path / "y.npy", y)
    assert main(["certify", "--embeddings", str(tmp_path / "H.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--tau", "0.1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert "group-level" in d["certificate"]["how"]
    assert d["certified"] is False  # the ETF is not the optimum for imbalanced counts


def test_matrix_free_refutes_without_holding_s(rng):
    counts = (40, 30, 20)
    H = rng.standard_normal((90, 5))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    dense = certify_embeddings(SUPCON(0.2), H, counts)
    free = certify_embeddings(SUPCON(0.2), H, counts, dense_max_n=1, memory_budget=1e4)
    assert not dense.certified and not free.certified
    assert "recomputed" in free.how and "Rayleigh quotient" in free.how
    assert "at least" in free.reason
    assert free.gap_bound >= dense.gap_bound * (1 - 1e-9)  # Gershgorin: still an upper bound on the gap


def test_collapse_snapping_is_reported_and_can_be_turned_off():
    problem = Problem((6, 5, 3, 2), 0.03)
    on = verify(problem, dim=3, restarts=3, seed=0)
    assert on.to_dict()["collapse_snapping"] is True and on.fraction_global == 1.0
    off = verify(problem, dim=3, restarts=2, seed=0, snap=False, max_iter=50)
    assert off.to_dict()["collapse_snapping"] is False
    assert all(r.stop_reason != "gradient_tolerance" or r.certificate.certified for r in off.restarts)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_solve_out_files_follow_umask(tmp_path, umask, mode, capsys):
    import os

    old = os.umask(umask)
    try:
        assert main(["solve", "--counts", "3,2", "--out", str(tmp_path / "o"), "--json"]) == 0
    finally:
        os.umask(old)
    for name in ("result.json", "arrays.npz"):
        assert (tmp_path / "o" / name).stat().st_mode & 0o777 == mode
