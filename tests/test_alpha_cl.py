"""alpha-CL done right (issue 22): weights in log space at every parameter, a certificate whose
scale follows alpha, mini-batches in the dynamics, and the paper's eps term beside the code's.

The oracle here computes alpha from Tian 2022's definition in log space (scipy's logsumexp), so
it neither underflows nor shares code with the project."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import random_unit
from scipy.special import logsumexp

from solvers import certify_embeddings, solve
from ufm import Problem, Samples, get_loss
from ufm.errors import UFMInputError


def log_alpha(H, instances, tau, p=2.0, eps=0.1, eps_term="negatives", weight="exp", q=1.0):
    """log alpha_ij (n x n, -inf off the negatives) from the definition: w = g(r^p), r = 1 - s;
    alpha_ij = w_ij / (sum_{k in N(i)} w_ik + eps T_i), T_i = |N(i)| or sum_{j in P(i)} w_ij."""
    G = np.clip(H @ H.T, -1.0, 1.0)
    x = np.clip(1.0 - G, 0.0, 2.0) ** p
    lw = -x / tau if weight == "exp" else -q * np.log(x + tau)
    same = instances[:, None] == instances[None, :]
    pos = same & ~np.eye(len(instances), dtype=bool)
    neg = ~same
    out = np.full(G.shape, -np.inf)
    for i in range(len(instances)):
        terms = list(lw[i, neg[i]])
        if eps > 0:
            terms.append(np.log(eps) + (np.log(neg[i].sum()) if eps_term == "negatives"
                                        else logsumexp(lw[i, pos[i]])))
        out[i, neg[i]] = lw[i, neg[i]] - logsumexp(terms)
    return out, pos, neg


def frozen_parts(H, instances, **kw):
    """(log A, M) with E_alpha = <M, G> at alpha frozen at H: M_ij = alpha_ij on negatives and
    -(sum_k alpha_ik) / |P(i)| on positives."""
    la, pos, neg = log_alpha(H, instances, **kw)
    anchors = pos.any(1) & neg.any(1)
    log_a = np.where(anchors, logsumexp(la, axis=1), -np.inf)
    log_A = logsumexp(log_a)
    alpha = np.exp(la - log_A)  # alpha / A: well scaled at any tau
    a_row = alpha.sum(1)
    M = np.where(neg, alpha, np.where(pos, -(a_row / np.maximum(pos.sum(1), 1))[:, None], 0.0))
    return log_A, M * anchors[:, None]


def frozen_riemannian_grad_over_A(H, instances, **kw) -> float:
    """|| Riemannian gradient of the frozen E_alpha || / A (Frobenius)."""
    _, M = frozen_parts(H, instances, **kw)
    egrad = (M + M.T) @ H
    rg = egrad - np.einsum("ij,ij->i", egrad, H)[:, None] * H
    return float(np.linalg.norm(rg))


#: the issue's cases: (params, samples) -> ufm solve ends certified at the fixed point
SIMPLEX = Samples.instances_views(3, 3)
CASES = [
    ({"tau": 0.01}, SIMPLEX),
    ({"tau": 0.1}, SIMPLEX),
    ({"tau": 0.01, "p": 8.0, "eps": 0.0}, SIMPLEX),
    ({"tau": 0.5}, Samples.instances_views(4, 2)),
    ({"tau": 0.001}, Samples.instances_views(4, 2)),
]


@pytest.mark.parametrize("params,samples", CASES, ids=[json.dumps(c[0]) for c in CASES])
def test_solve_ends_certified_at_the_fixed_point(params, samples):
    """Certified, and independently a fixed point: the frozen E_alpha's Riemannian gradient is at
    most 1e-6 x A (the oracle's alpha, from the definition in log space)."""
    loss = get_loss("alpha_cl", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no input prints a numpy warning
        res = solve(Problem(loss, samples))
    assert res.certificate.certified, res.certificate.reason
    H = res.embeddings(lift=True)
    kw = {k: v for k, v in params.items()}
    assert frozen_riemannian_grad_over_A(H, samples.labels, **kw) <= 1e-6
    # the instance simplex (instance-mean cosines -1/(N - 1)) is the fixed point of these cases
    N = samples.k
    cos = res.class_gram()
    assert np.allclose(cos[~np.eye(N, dtype=bool)], -1.0 / (N - 1), atol=1e-6)


def test_a_wrong_point_is_not_certified_at_small_tau():
    """tau 0.01: A is about 1e-96 here. Instance cosines +0.25 (the old false certificate) are
    far from the fixed point of their own program: not certified, with the gap judged against A."""
    samples = SIMPLEX
    loss = get_loss("alpha_cl", tau=0.01)
    rng = np.random.default_rng(0)
    H = random_unit(rng, samples.n, 3)
    cert = certify_embeddings(loss, H, samples)
    assert not cert.certified
    assert cert.gap_relative_to_scale > 1e-3


def test_scaling_alpha_leaves_the_verdict_unchanged():
    """With eps |N(i)| far above the weights, alpha ~ w / (eps |N|): eps x 1e10 scales alpha by
    1e-10. The certificate's relative gap and verdict must not move."""
    samples = Samples.instances_views(4, 2)
    rng = np.random.default_rng(1)
    opt = solve(Problem(get_loss("alpha_cl", tau=0.5, eps=1e10), samples)).embeddings(lift=True)
    for H in (random_unit(rng, samples.n, 3), opt / np.linalg.norm(opt, axis=1, keepdims=True)):
        a = certify_embeddings(get_loss("alpha_cl", tau=0.5, eps=1e10), H, samples)
        b = certify_embeddings(get_loss("alpha_cl", tau=0.5, eps=1e20), H, samples)
        assert a.certified == b.certified
        assert a.gap_relative_to_scale == pytest.approx(b.gap_relative_to_scale, rel=1e-6, abs=1e-14)


@pytest.mark.parametrize("params", [{"eps": 0.0, "tau": 0.01, "p": 8.0}, {"eps": 1e300, "tau": 0.05},
                                    {"p": 16.0, "tau": 0.01}, {"eps": 0.0, "tau": 5e-4}])
def test_value_at_the_extremes_matches_the_definition(params):
    """No weight becomes 0 and 0/0 never occurs: the value equals the definition's (computed in
    log space) relative to A, with no numpy warning."""
    samples = Samples.instances_views(4, 2)
    loss = get_loss("alpha_cl", **params)
    H = random_unit(np.random.default_rng(2), samples.n, 3)
    log_A, M = frozen_parts(H, samples.labels, **params)
    expect_over_A = float((M * (H @ H.T)).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss.value(H, samples)
        tvalue = loss.torch_value(torch.tensor(H), samples).item()
    if log_A > np.log(np.finfo(float).tiny) + 30:  # A in float64's normal range
        assert value / np.exp(log_A) == pytest.approx(expect_over_A, rel=1e-8, abs=1e-10)
        assert tvalue / np.exp(log_A) == pytest.approx(expect_over_A, rel=1e-8, abs=1e-10)
    else:  # |E_alpha| <= 2 A, at or below float64's smallest normal numbers
        assert abs(value) <= 2 * np.exp(log_A) + 1e-300
    cert = certify_embeddings(loss, H, samples)
    assert not cert.certified


@pytest.mark.parametrize("views,batch", [(5, [0, 1, 2, 3, 4, 5, 6, 10, 11]),
                                         (6, [0, 1, 2, 3, 4, 5, 6, 7, 8, 12])],
                         ids=["5,2,2", "6,3,1"])
def test_minibatches_cut_instances_unevenly(tmp_path, views, batch):
    """The dynamics sum alpha and E_alpha over the batch, as the certificate does: a batch that
    holds instances 5,2,2 (or 6,3,1) times ends at a certified fixed point of the batch program,
    through the CLI and the library, and the oracle (on the batch's rows alone) agrees."""
    f = tmp_path / "b.json"
    f.write_text(json.dumps([batch]))
    out = subprocess.run([sys.executable, "-m", "ufm", "solve", "--loss", "alpha_cl", "--instances", "3",
                          "--views", str(views), "--batches", str(f), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["certificate"]["certified"]
    samples = Samples.instances_views(3, views).with_batches([np.array(batch)], spec="test")
    res = solve(Problem(get_loss("alpha_cl"), samples))
    assert res.certificate.certified
    H = res.embeddings(lift=True)[batch]
    assert frozen_riemannian_grad_over_A(H, samples.labels[batch], tau=0.5) <= 1e-6
    # the full-batch dynamics (batches ignored, as before) is not a fixed point of the batch program
    full = solve(Problem(get_loss("alpha_cl"), samples.without_batches())).embeddings(lift=True)
    assert frozen_riemannian_grad_over_A(full[batch], samples.labels[batch], tau=0.5) > 1e-3


def test_paper_eps_term_gives_infonce_and_code_eps_zero_gives_dcl():
    """Tian 2022: with exp weights and p = 1, alpha_ij = e^{-r_ij/tau} / (eps e^{-r_ii'/tau} +
    sum_k e^{-r_ik/tau}). eps = 1 (the paper's term) makes the dynamics tau x InfoNCE's gradient,
    eps = 0 tau x DCL's, as gradient equalities in G (two views: one positive)."""
    samples = Samples.instances_views(5, 2)
    tau = 0.3
    G = (lambda H: H @ H.T)(random_unit(np.random.default_rng(3), samples.n, 4))
    _, g_alpha = get_loss("alpha_cl", tau=tau, p=1.0, eps=1.0, eps_term="positive").gram_value_and_grad(
        G, samples)
    _, g_info = get_loss("infonce", tau=tau).gram_value_and_grad(G, samples)
    np.testing.assert_allclose(g_alpha, tau * g_info, rtol=1e-10, atol=1e-13)
    _, g_alpha0 = get_loss("alpha_cl", tau=tau, p=1.0, eps=0.0).gram_value_and_grad(G, samples)
    _, g_dcl = get_loss("dcl", tau=tau).gram_value_and_grad(G, samples)
    np.testing.assert_allclose(g_alpha0, tau * g_dcl, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("eps,other", [(1.0, "infonce"), (0.0, "dcl")])
def test_fixed_point_equals_the_infonce_and_dcl_optimum(eps, other):
    """Through ``ufm solve``: the alpha-CL fixed point (p = 1, exp, the paper's eps term) has the
    geometry of the InfoNCE (eps = 1) or DCL (eps = 0) optimum."""
    def run(*args):
        out = subprocess.run([sys.executable, "-m", "ufm", "solve", "--instances", "5", "--tau", "0.3",
                              "--json", *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    a = run("--loss", "alpha_cl", "--p", "1", "--eps", str(eps), "--eps-term", "positive")
    b = run("--loss", other)
    assert a["certificate"]["certified"] and b["certificate"]["certified"]
    np.testing.assert_allclose(np.array(a["class_gram"]), np.array(b["class_gram"]), atol=1e-6)


def test_quadratic_weight_refuses_the_paper_eps_term():
    with pytest.raises(UFMInputError, match="--eps-term"):
        get_loss("alpha_cl", weight="quadratic", eps_term="positive")


def test_p_above_its_bound_is_refused():
    with pytest.raises(UFMInputError, match="--p"):
        get_loss("alpha_cl", p=1e6)
