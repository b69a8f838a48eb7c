"""KCL at the edges (issue 22, item 4): Riesz kernels at coincident points, Gram entries rounded
above 1, large t, the declared parameter ranges and the geometry range. Values are checked
against a numpy evaluation of KCL straight from its definition (DESIGN section 3), written here."""

import math

import numpy as np
import pytest
import torch
from conftest import random_unit

from solvers import solve
from solvers.certificate import certify_embeddings
from ufm import Problem, Samples, get_loss
from ufm.errors import UFMInputError
from ufm.losses import loss_class

PAIRS = Samples.instances_views(8, 2)  # sample 2 i is u_i, 2 i + 1 is v_i


# ---- the definition ---------------------------------------------------------------------------------


def kernels(kernel="gaussian", t=2.0, s=1.0):
    """(energy k, alignment k_a) as functions of r^2, from DESIGN section 3."""
    if kernel == "gaussian":
        k = lambda r2: np.exp(-t * r2)  # noqa: E731
        return k, k
    if kernel == "imq":
        k = lambda r2: t / np.sqrt(t * t + r2)  # noqa: E731
        return k, k
    if kernel == "log":
        return (lambda r2: -0.5 * np.log(t * r2 + 1)), (lambda r2: -np.log(t * r2 + 1))
    with np.errstate(divide="ignore"):
        energy = (lambda r2: r2 ** (-s / 2)) if s > 0 else (lambda r2: -(r2 ** (-s / 2)))
    return energy, (lambda r2: np.exp(-t * r2))


def kcl_definition(G, kernel="gaussian", t=2.0, gamma=16.0, s=1.0):
    """-2 mean_i k_a(u_i, v_i) + gamma [mean_{i<j} k(u_i, u_j) + mean_{i<j} k(v_i, v_j)] with
    r^2 = ||x - y||^2 = 2 - 2 G of unit vectors, so r^2 in [0, 4] (mean form)."""
    r2 = np.clip(2.0 - 2.0 * np.asarray(G, dtype=np.longdouble), 0.0, 4.0)
    k, ka = kernels(kernel, t, s)
    M = r2.shape[0] // 2
    u, v = np.arange(M) * 2, np.arange(M) * 2 + 1
    iu = np.triu_indices(M, 1)
    with np.errstate(divide="ignore"):
        energy = np.mean(k(r2[np.ix_(u, u)][iu])) + np.mean(k(r2[np.ix_(v, v)][iu]))
        return float(-2 * np.mean(ka(r2[u, v])) + gamma * energy)


def at_one_point(n=16, d=3):
    H = np.zeros((n, d))
    H[:, 0] = 1.0
    return H


def two_points(M=8, d=3):
    """Both views of instances 0 .. M/2 - 1 at e_1, the others at -e_1."""
    H = np.zeros((2 * M, d))
    H[:, 0] = np.repeat(np.where(np.arange(M) < M // 2, 1.0, -1.0), 2)
    return H


def negatives(samples=PAIRS):
    """Same view, other instance: KCL's energy pairs."""
    v, y = samples.views, samples.labels
    return (v[:, None] == v[None, :]) & (y[:, None] != y[None, :])


def riesz(s, **kw):
    return get_loss("kcl", kernel="riesz", s=s, **kw)


# ---- Gram entries rounded above 1 -------------------------------------------------------------------


@pytest.mark.parametrize("params", [{"kernel": "riesz", "s": -0.5}, {"kernel": "riesz", "s": -1.0},
                                    {"kernel": "riesz", "s": -2.0}, {}, {"kernel": "imq"},
                                    {"kernel": "log"}])
def test_gram_rounded_above_one_gives_the_definition(rng, params):
    """G_ij = 1 + 2e-16 is a distance 0: the value is the definition's (riesz -0.5: -2, not the
    floor -47.25), in the numpy form and both torch forms."""
    loss = get_loss("kcl", **params)
    G = np.full((PAIRS.n, PAIRS.n), 1.0 + 2e-16)
    ref = kcl_definition(G, **params)
    assert loss.gram_value(G, PAIRS) == pytest.approx(ref, abs=1e-12 * max(1.0, abs(loss.floor(PAIRS))))
    if params.get("s") == -0.5:
        assert ref == -2.0
    # a random Gram with two coincident instances (u view), rounded above 1
    H = random_unit(rng, PAIRS.n, 4)
    H[2] = H[0]
    G = H @ H.T
    G[0, 2] = G[2, 0] = 1.0 + 2e-16
    assert loss.gram_value(G, PAIRS) == pytest.approx(kcl_definition(G, **params), rel=1e-11, abs=1e-11)
    # torch: rows of norm 1 + 1e-16 (inner products 1 + 2e-16)
    Ht = torch.zeros(PAIRS.n, 3, dtype=torch.float64)
    Ht[:, 0] = 1.0 + 1e-16
    tol = 1e-12 * max(1.0, abs(loss.floor(PAIRS)))
    assert loss.torch_value(Ht, PAIRS).item() == pytest.approx(ref, abs=tol)
    value, grad = loss.torch_value_and_grad(Ht, PAIRS)
    assert value.item() == pytest.approx(ref, abs=tol)
    assert bool(torch.isfinite(grad).all())


# ---- coincident points ------------------------------------------------------------------------------


@pytest.mark.parametrize("s", [8.0, 1.0, 0.5])
def test_riesz_positive_s_at_one_point_is_infinite_and_never_certified(s):
    loss = riesz(s)
    H = at_one_point()
    assert kcl_definition(H @ H.T, "riesz", s=s) == math.inf
    assert loss.value(H, PAIRS) == math.inf
    cert = certify_embeddings(loss, H, PAIRS)
    assert not cert.certified and cert.reason
    cert = certify_embeddings(loss, H, PAIRS, dense_max_n=0)  # matrix-free (torch) route
    assert not cert.certified
    # log excess +inf; the scaled gradient is finite, never NaN, positive (in G) on the
    # coincident negatives: separating them lowers f
    for form in (loss, loss.relaxation()):
        lex, Ft = form.dense_log_excess(form.distances(H, PAIRS), PAIRS)
        assert lex == math.inf
        assert np.isfinite(Ft).all()
        neg = negatives()
        assert (Ft[neg] > 0).all() and (Ft[~neg] == 0).all()
    lex, blocks = loss.scaled_gradient_blocks(torch.tensor(H), PAIRS, block=5)
    assert lex == math.inf
    F = torch.cat([b[2] for b in blocks()])
    assert bool(torch.isfinite(F).all()) and float(F.abs().max()) > 0


def test_riesz_one_coincident_pair_is_not_certified(rng):
    H = random_unit(rng, PAIRS.n, 3)
    H[2] = H[0]  # u_0 = u_1
    for s in (8.0, 1.0, -0.5, -1.0, -1.5):
        cert = certify_embeddings(riesz(s), H, PAIRS)
        assert not cert.certified, s


@pytest.mark.parametrize("s", [-0.5, -1.0, -1.5, -1.99])
def test_riesz_negative_s_collapsed_and_two_point_are_not_certified(s):
    """-r^|s| with |s| < 2 has an infinite one-sided slope at r = 0: coincident points are a
    maximum of the energy along any separation, never a minimum."""
    loss = riesz(s)
    f_star = solve(Problem(loss, PAIRS)).value
    for H in (at_one_point(), two_points()):
        value = kcl_definition(H @ H.T, "riesz", s=s)
        assert loss.value(H, PAIRS) == pytest.approx(value, rel=1e-12)
        assert value > f_star
        cert = certify_embeddings(loss, H, PAIRS)
        assert not cert.certified and cert.reason
        # the slope at the coincident pairs: finite, never NaN, pushing them apart
        lex, Ft = loss.relaxation().dense_log_excess(loss.distances(H, PAIRS), PAIRS)
        assert np.isfinite(lex) and np.isfinite(Ft).all()
        G = H @ H.T
        neg = negatives()
        coincident = neg & (G == 1.0)
        far = neg & (G < 1.0)
        assert (Ft[coincident] > 0).all()
        if far.any():  # steeper than at any distance apart
            assert Ft[coincident].min() > Ft[far].max()


def test_riesz_minus_two_two_point_is_optimal_and_collapse_is_not():
    """s = -2: the energy is -r^2, linear in G, so any configuration with sum h = 0 is optimal,
    the balanced two-point one included, while all points at one place is not."""
    loss = riesz(-2.0)
    f_star = solve(Problem(loss, PAIRS)).value
    H = two_points()
    assert kcl_definition(H @ H.T, "riesz", s=-2.0) == pytest.approx(f_star, rel=1e-12)
    assert certify_embeddings(loss, H, PAIRS).certified
    H = at_one_point()
    assert kcl_definition(H @ H.T, "riesz", s=-2.0) > f_star + 1
    assert not certify_embeddings(loss, H, PAIRS).certified


@pytest.mark.parametrize("s", [8.0, -1.0, -2.0])
def test_torch_forms_at_coincident_points_are_finite(s):
    """Neither torch form returns NaN at coincident points: the blocked gradient and autograd of
    the plain form are finite (the plain value is the definition's, +inf for s > 0)."""
    loss = riesz(s)
    H = torch.tensor(two_points(), requires_grad=True)
    value = loss.torch_value(H, PAIRS)
    assert value.item() == pytest.approx(kcl_definition(two_points() @ two_points().T, "riesz", s=s))
    if s < 0:
        value.backward()
        assert bool(torch.isfinite(H.grad).all()) and float(H.grad.abs().max()) > 0
        _, grad = loss.torch_value_and_grad(H.detach(), PAIRS)
        assert bool(torch.isfinite(grad).all())


# ---- large t ----------------------------------------------------------------------------------------


def _param(name):
    return {p.name: p for p in loss_class("kcl").params}[name]


def test_gaussian_at_large_t_is_solved_or_refused():
    """`ufm solve --loss kcl --instances 8 --t 50` printed 0 with views apart: the aligned simplex
    reaches -2 + 2 gamma e^{-2 t M / (M - 1)}. Either solve finds it, certified, or t = 50 is
    refused with the bound named."""
    t, M, gamma = 50.0, 8, 16.0
    top = _param("t").maximum
    if top is not None and t > top:
        with pytest.raises(UFMInputError, match=f"--t.*{top:g}"):
            get_loss("kcl", t=t)
        return
    res = solve(Problem(get_loss("kcl", t=t), Samples.instances_views(M, 2)))
    assert res.certificate.certified
    assert res.certificate.excess == pytest.approx(2 * gamma * np.exp(-2 * t * M / (M - 1)), rel=1e-9)


# ---- declared ranges ----------------------------------------------------------------------------------


def _simplex_value(loss, M):
    """-2 k_a(0) + 2 gamma k(2 M / (M - 1)): the aligned regular simplex (mean form)."""
    k, ka = kernels(loss.kernel, loss.t, loss.s)
    return float(-2 * ka(0.0) + 2 * loss.gamma * k(2.0 * M / (M - 1)))


def test_declared_ranges_have_ends_and_refuse_beyond():
    for name in ("t", "gamma", "s"):
        p = _param(name)
        assert p.maximum is not None and np.isfinite(p.maximum)
        ends = p.ends()
        assert min(ends) > 0 or name == "s"
        for v in ends:
            assert p.parse(v) == v
        assert f"{p.maximum:g}" in p.help
        with pytest.raises(UFMInputError, match=f"--{name}"):
            p.parse(p.maximum * 1.01)
    with pytest.raises(UFMInputError, match="--t"):
        _param("t").parse(min(_param("t").ends()) / 2)
    with pytest.raises(UFMInputError, match="--gamma"):
        _param("gamma").parse(min(_param("gamma").ends()) / 2)
    small = min(abs(v) for v in _param("s").ends())
    with pytest.raises(UFMInputError, match="--s"):
        _param("s").parse(small / 2)
    with pytest.raises(UFMInputError, match="> 0"):
        _param("t").parse(-1)
    assert get_loss("kcl").values == {"kernel": "gaussian", "t": 2.0, "gamma": 16.0, "s": 1.0,
                                      "reduction": "mean"}


@pytest.mark.parametrize("params", [{"t": v} for v in _param("t").ends()]
                         + [{"kernel": "imq", "t": v} for v in _param("t").ends()]
                         + [{"gamma": v} for v in _param("gamma").ends()]
                         + [{"kernel": "riesz", "s": v} for v in _param("s").ends()])
def test_solve_at_the_ends_of_the_ranges(params):
    """At each end of each declared range, solve (3 and 5 pairs) ends certified at the aligned
    simplex, or (riesz s < -2, not convex in G) is refused."""
    for M in (3, 5):
        loss = get_loss("kcl", **params)
        problem = Problem(loss, Samples.instances_views(M, 2))
        if not loss.has_relaxation:
            with pytest.raises(UFMInputError, match="convex relaxation"):
                solve(problem)
            return
        res = solve(problem)
        ref = _simplex_value(loss, M)
        assert res.certificate.certified, (M, res.certificate.reason)
        assert res.value == pytest.approx(ref, rel=1e-9, abs=1e-9 * res.certificate.excess + 1e-14)


# ---- geometry range ----------------------------------------------------------------------------------


def _configurations(rng, M, d=4, count=60):
    n = 2 * M
    out = [random_unit(rng, n, d) for _ in range(count)]
    H = random_unit(rng, M, d)
    out.append(np.repeat(H, 2, axis=0))  # views aligned
    V = np.repeat(H, 2, axis=0)
    V[1::2] *= -1  # views antipodal
    out.append(V)
    out.append(at_one_point(n, d))
    out.append(two_points(M, d))
    for scale in (1e-3, 1e-1):  # near collapse
        X = at_one_point(n, d) + scale * rng.standard_normal((n, d))
        out.append(X / np.linalg.norm(X, axis=1, keepdims=True))
    return out


@pytest.mark.parametrize("params", [{}, {"kernel": "imq"}, {"kernel": "log"}, {"kernel": "riesz", "s": -1.0},
                                    {"kernel": "riesz", "s": -2.0}, {"t": 1e-4}, {"t": 6.0},
                                    {"kernel": "log", "t": 6.0}, {"gamma": 1e-6}, {"gamma": 1e6}])
def test_range_bounds_the_loss(rng, params):
    """_range (sum reduction) >= max - min over random, aligned, antipodal, collapsed and
    two-point configurations; it is the sum over anchors of (k_a(0) - k_a(4)) + gamma (k(0) - k(4))."""
    M = 5
    samples = Samples.instances_views(M, 2)
    loss = get_loss("kcl", **params)
    values = [M * kcl_definition(H @ H.T, **params) for H in _configurations(rng, M)]  # sum = M x mean
    bound = loss._range(samples)
    k, ka = kernels(loss.kernel, loss.t, loss.s)
    per_anchor = (ka(0.0) - ka(4.0)) + loss.gamma * (k(0.0) - k(4.0))
    assert bound == pytest.approx(2 * M * per_anchor, rel=1e-12)
    assert max(values) - min(values) <= bound * (1 + 1e-12)
    assert max(values) - min(values) >= 0.05 * bound  # and not vacuous


def test_range_is_infinite_for_riesz_positive_s():
    assert riesz(1.0)._range(PAIRS) == math.inf
    assert riesz(32.0)._range(PAIRS) == math.inf
