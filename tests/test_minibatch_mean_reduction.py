"""Mean reduction with mini-batches (issue 23, item 2): each batch is a problem of its own, reduced by
its own anchors, and the batches add up (SGD takes the mean inside a batch, an epoch adds the
batches). Every quantity (value, floor, range, gradients in numpy and torch, the plain torch value,
CVXPY, alpha-CL's forms) is checked against a hand-written sum of per-batch losses: each batch posed
as its own full-batch problem, the independent oracles divided by the batch's own anchors, and an
optimum of that sum found here by plain torch L-BFGS from several starts."""

import numpy as np
import oracles
import pytest
import torch
from conftest import random_unit
from test_minibatch import assert_every_form_equals

from solvers import solve
from ufm import Problem, Samples, get_loss

# the issue's example: 5 pairs, a batch of 2 pairs (4 samples) and one of all 5 (10 samples)
KCL_BATCHES = [[0, 1, 2, 3], list(range(10))]
# classes (4, 3, 3): a batch of 4 with one class twice and two singletons (2 anchors), one of all 10
SUPCON_COUNTS = (4, 3, 3)
SUPCON_BATCHES = [[0, 1, 4, 7], list(range(10))]
TAU = 0.5


def views(n_instances=5):
    return Samples.instances_views(n_instances, 2)


def classes():
    return Samples.from_counts(SUPCON_COUNTS)


# ---- hand-written per-batch losses (independent of ufm's loss code) ----------------------------------


def kcl_batch(H, t=2.0, gamma=16.0):
    """KCL (Gaussian, the authors' mean form) of one batch of whole pairs, rows instance-major."""
    U, V = H[0::2], H[1::2]
    M = U.shape[0]
    iu = torch.triu_indices(M, M, 1)

    def energy(X):
        r2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
        return torch.exp(-t * r2[iu[0], iu[1]]).mean()

    return -2 * torch.exp(-t * ((U - V) ** 2).sum(-1)).mean() + gamma * (energy(U) + energy(V))


def supcon_batch(H, y, tau=TAU):
    """SupCon ("out") of one batch, mean over its own anchors (samples with a positive)."""
    y = torch.as_tensor(y)
    G = H @ H.T / tau
    n = G.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    pos = (y[:, None] == y[None, :]) & ~eye
    npos = pos.sum(1)
    anchors = npos > 0
    lse = torch.logsumexp(G.masked_fill(eye, -torch.inf), 1)
    per = lse - (G * pos).sum(1) / npos.clamp_min(1)
    return per[anchors].sum() / max(int(anchors.sum()), 1)


def kcl_sum(H):
    return sum(kcl_batch(H[b]) for b in KCL_BATCHES)


def supcon_sum(H):
    y = classes().labels
    return sum(supcon_batch(H[b], y[b]) for b in SUPCON_BATCHES)


def independent_minimum(f, n, starts=6, seed=0):
    """min f over unit rows (n, n) by torch L-BFGS on h = v / |v| from several starts."""
    gen = torch.Generator().manual_seed(seed)
    best = np.inf
    for _ in range(starts):
        V = torch.randn(n, n, dtype=torch.float64, generator=gen).requires_grad_(True)
        opt = torch.optim.LBFGS([V], lr=1, max_iter=4000, tolerance_grad=1e-14, tolerance_change=1e-16,
                                history_size=50, line_search_fn="strong_wolfe")

        def closure(V=V, opt=opt):
            opt.zero_grad()
            value = f(V / V.norm(dim=1, keepdim=True))
            value.backward()
            return value

        for _ in range(3):
            opt.step(closure)
        with torch.no_grad():
            best = min(best, float(f(V / V.norm(dim=1, keepdim=True))))
    return best


# ---- per batch as its own problem ---------------------------------------------------------------------


def per_batch(loss, samples, batches, H, what):
    """sum over batches of ``what(loss, H_b, batch_b)``, each batch its own full-batch problem."""
    return sum(what(loss, H[np.asarray(b)], samples.subset(np.asarray(b))) for b in batches)


CASES = {
    # name: (loss, samples, batches, per-batch oracle of the batch's rows and positions, anchors)
    "kcl": (lambda: get_loss("kcl"), views, KCL_BATCHES,
            lambda H, b: oracles.kcl(H[0::2], H[1::2])),
    "supcon": (lambda: get_loss("supcon", tau=TAU, reduction="mean"), classes, SUPCON_BATCHES,
               lambda H, b: oracles.supcon(H, classes().labels[b], TAU)
               / int(sum(c for c in np.bincount(classes().labels[b]) if c >= 2))),
    "infonce": (lambda: get_loss("infonce", tau=TAU, reduction="mean"), views, KCL_BATCHES,
                lambda H, b: oracles.infonce(H, views().labels[b], views().views[b], TAU) / len(b)),
    "dhel": (lambda: get_loss("dhel", reduction="mean"), views, KCL_BATCHES,
             lambda H, b: oracles.dhel(H[0::2], H[1::2], 0.3) / (len(b) // 2)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_mean_reduces_each_batch_by_its_own_anchors(rng, name):
    make, base, batches, oracle, = CASES[name]
    loss, base = make(), base()
    samples = base.with_batches(batches)
    H = random_unit(rng, base.n, 4)
    ref = sum(oracle(H[np.asarray(b)], np.asarray(b)) for b in batches)
    ref_lib = per_batch(loss, base, batches, H, lambda loss, Hb, sb: loss.value(Hb, sb))
    assert ref_lib == pytest.approx(ref, rel=1e-12)
    g = assert_every_form_equals(loss, H, samples, ref, block=3)
    # the gradient of the hand-written sum, by autograd through each batch's own full-batch value
    Ht = torch.tensor(H)
    Ha = Ht.clone().requires_grad_(True)
    sum(loss.torch_value(Ha[torch.as_tensor(b)], base.subset(np.asarray(b))) for b in batches).backward()
    torch.testing.assert_close(g, Ha.grad, rtol=1e-9, atol=1e-12)
    _, gG = loss.gram_value_and_grad(H @ H.T, samples)
    np.testing.assert_allclose(2 * gG @ H, Ha.grad.numpy(), rtol=1e-9, atol=1e-12)
    # floor, range, log excess (dense and matrix-free blocks): sums of the batches' own
    floor = per_batch(loss, base, batches, H, lambda loss, Hb, sb: loss.floor(sb))
    assert loss.floor(samples) == pytest.approx(floor, rel=1e-13)
    rng_ = per_batch(loss, base, batches, H, lambda loss, Hb, sb: loss.geometry_range(sb))
    assert loss.geometry_range(samples) == pytest.approx(rng_, rel=1e-13)
    lex, _ = loss.dense_log_excess(loss.distances(H, samples), samples)
    assert np.exp(lex) == pytest.approx(ref - floor, rel=1e-9)
    lex_t, _ = loss.torch_log_excess_and_grad(Ht, samples)
    assert float(lex_t) == pytest.approx(lex, rel=1e-12, abs=1e-12)
    lex_b, _ = loss.scaled_gradient_blocks(Ht, samples)
    assert lex_b == pytest.approx(lex, rel=1e-12, abs=1e-12)


def test_batched_restarts_agree_with_one_at_a_time(rng):
    """Torch forms over (R, n, d): each restart's value is its own per-batch sum."""
    loss, base = get_loss("supcon", tau=TAU, reduction="mean"), classes()
    samples = base.with_batches(SUPCON_BATCHES)
    Hs = np.stack([random_unit(rng, base.n, 3) for _ in range(3)])
    v, g = loss.torch_value_and_grad(torch.tensor(Hs), samples)
    plain = loss.torch_value(torch.tensor(Hs), samples)
    for r in range(3):
        ref = float(supcon_sum(torch.tensor(Hs[r])))
        assert v[r].item() == pytest.approx(ref, rel=1e-12)
        assert plain[r].item() == pytest.approx(ref, rel=1e-12)
        torch.testing.assert_close(g[r], loss.torch_value_and_grad(torch.tensor(Hs[r]), samples)[1])


def test_the_issues_kcl_example_floor_is_the_sum_of_the_batches_floors():
    """`ufm solve --loss kcl --instances 5 --batches b.json`, b.json = [[0,1,2,3],[0..9]]: the floor
    is 2 x (-2 + 2 gamma e^(-4t)) = -3.979 (pooled over all 7 pairs it was -1.989)."""
    loss = get_loss("kcl")
    samples = views().with_batches(KCL_BATCHES)
    assert loss.floor(samples) == pytest.approx(2 * (-2 + 32 * np.exp(-8.0)), rel=1e-14)
    assert loss.floor(samples) == pytest.approx(-3.97853039181, abs=1e-10)


@pytest.mark.parametrize("name,f,samples,batches", [
    ("kcl", kcl_sum, views, KCL_BATCHES),
    ("supcon", supcon_sum, classes, SUPCON_BATCHES),
])
def test_solve_finds_the_optimum_of_the_per_batch_sum(name, f, samples, batches):
    base = samples()
    loss = CASES[name][0]()
    res = solve(Problem(loss, base.with_batches(batches)), compare_full_batch=False)
    assert res.certificate.certified
    best = independent_minimum(f, base.n)
    assert res.value == pytest.approx(best, rel=1e-8, abs=1e-10)
    H = res.embeddings(lift=True)
    assert float(f(torch.tensor(H))) == pytest.approx(res.value, rel=1e-10)
    if name == "kcl":
        assert res.value == pytest.approx(-3.71005863459, abs=1e-8)  # the issue's example, fixed


def test_unequal_batches_move_the_optimum():
    """The pooled mean (all anchors together) is a different objective: its optimum is not the
    per-batch sum's. Here the pooled weights 1/12 on both SupCon batches vs 1/2 and 1/10."""
    base = classes()
    res = solve(Problem(get_loss("supcon", tau=TAU, reduction="mean"), base.with_batches(SUPCON_BATCHES)),
                compare_full_batch=False)
    pooled = solve(Problem(get_loss("supcon", tau=TAU, reduction="sum"), base.with_batches(SUPCON_BATCHES)),
                   compare_full_batch=False)
    G, Gp = (r.embeddings(lift=True) for r in (res, pooled))
    assert np.abs(G @ G.T - Gp @ Gp.T).max() > 1e-3


def test_cvxpy_forms_are_the_per_batch_sums(rng):
    cp = pytest.importorskip("cvxpy")
    # SupCon, convex in G: the n x n expression at a fixed G
    loss, base = get_loss("supcon", tau=TAU, reduction="mean"), classes()
    H = random_unit(rng, base.n, 4)
    G = cp.Variable((base.n, base.n), symmetric=True)
    G.value = H @ H.T
    expr = loss.cvxpy_gram(G, base.with_batches(SUPCON_BATCHES))
    assert float(expr.value) == pytest.approx(float(supcon_sum(torch.tensor(H))), rel=1e-10)
    # KCL's relaxation (the energy, views held aligned) equals KCL where the views align
    kcl, vb = get_loss("kcl"), views()
    U = random_unit(rng, 5, 4)
    Ha = np.repeat(U, 2, axis=0)
    G = cp.Variable((vb.n, vb.n), symmetric=True)
    G.value = Ha @ Ha.T
    expr = kcl.relaxation().cvxpy_gram(G, vb.with_batches(KCL_BATCHES))
    assert float(expr.value) == pytest.approx(float(kcl_sum(torch.tensor(Ha))), rel=1e-10)


def test_alpha_cl_forms_are_the_per_batch_sums(rng):
    loss, base = get_loss("alpha_cl", reduction="mean"), views()
    samples = base.with_batches(KCL_BATCHES)
    H = random_unit(rng, base.n, 4)
    ref = sum(oracles.alpha_cl(H[b], base.labels[b], 0.5) / len(b) for b in KCL_BATCHES)
    assert loss.value(H, samples) == pytest.approx(ref, rel=1e-10)
    floor = per_batch(loss, base, KCL_BATCHES, H, lambda loss, Hb, sb: loss.point_floor(
        sb, dist=loss.distances(Hb, sb)))
    assert loss.point_floor(samples, dist=loss.distances(H, samples)) == pytest.approx(floor, rel=1e-12)
    Ht = torch.tensor(H)
    assert loss.point_floor(samples, H=Ht) == pytest.approx(floor, rel=1e-12)
    assert float(loss.point_floor(samples, H=Ht[None])[0]) == pytest.approx(floor, rel=1e-12)
    assert loss.torch_value_and_grad(Ht, samples)[0].item() == pytest.approx(ref, rel=1e-10)
    assert loss.torch_value(Ht, samples).item() == pytest.approx(ref, rel=1e-10)
    # the fixed-alpha line search's excess: E_alpha - (-2 A), batch by batch
    lex, _ = loss.torch_frozen_log_excess_and_grad(Ht, samples, Ht)
    assert float(np.exp(float(lex))) == pytest.approx(ref - floor, rel=1e-10)


def test_the_batch_weights():
    """``Loss._batch_weights``, the one place the rule is written: 1 / (the batch's own anchors)
    under the mean, 1 under the sum, 1 for a batch without anchors, 1 / (all anchors) without
    batches."""
    kcl, vb = get_loss("kcl"), views()
    assert kcl._batch_weights(vb.with_batches(KCL_BATCHES)) == [0.5, 0.2]
    assert kcl._batch_weights(vb.with_batches([[0, 1], list(range(10))])) == [1.0, 0.2]  # one pair: no anchor
    assert kcl._batch_weights(vb) == [0.2]
    assert kcl._batch_weights(vb.with_batches(KCL_BATCHES), "sum") == [1.0, 1.0]
    sup, cb = get_loss("supcon", tau=TAU), classes()
    assert sup._batch_weights(cb.with_batches(SUPCON_BATCHES)) == [1.0, 1.0]  # SupCon's own: sum
    sup = get_loss("supcon", tau=TAU, reduction="mean")
    assert sup._batch_weights(cb.with_batches(SUPCON_BATCHES)) == [0.5, 0.1]
    assert sup._batch_weights(cb.with_batches([[4, 7], list(range(10))])) == [1.0, 0.1]
    assert sup._batch_weights(cb.with_batches([[4, 7], [0, 9]])) == [1.0, 1.0]
    assert sup._batch_weights(cb) == [0.1]


@pytest.mark.parametrize("name", list(CASES))
def test_torch_value_reduction_override_follows_the_rule(rng, name):
    """``torch_value(..., reduction="mean")`` of a sum-reduced loss: each batch by its own anchors."""
    make, base, batches, _ = CASES[name]
    loss, base = type(make())(**{**make().values, "reduction": "sum"}), base()
    H = random_unit(rng, base.n, 4)
    mean = per_batch(loss, base, batches, H, lambda loss, Hb, sb: loss.value(Hb, sb) / loss.anchors(sb))
    got = loss.torch_value(torch.tensor(H), base.with_batches(batches), reduction="mean").item()
    assert got == pytest.approx(mean, rel=1e-12)


# ---- what does not change -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_sum_reduction_is_the_plain_sum_over_batches(rng, name):
    make, base, batches, _ = CASES[name]
    loss, base = type(make())(**{**make().values, "reduction": "sum"}), base()
    samples = base.with_batches(batches)
    H = random_unit(rng, base.n, 4)
    ref = per_batch(loss, base, batches, H, lambda loss, Hb, sb: loss.value(Hb, sb))
    assert loss.value(H, samples) == pytest.approx(ref, rel=1e-12)
    assert loss.torch_value(torch.tensor(H), samples).item() == pytest.approx(ref, rel=1e-12)
    floor = per_batch(loss, base, batches, H, lambda loss, Hb, sb: loss.floor(sb))
    assert loss.floor(samples) == pytest.approx(floor, rel=1e-13)


@pytest.mark.parametrize("name", list(CASES))
def test_without_batches_the_mean_divides_by_all_anchors(rng, name):
    make, base, _, _ = CASES[name]
    loss, base = make(), base()
    total = type(loss)(**{**loss.values, "reduction": "sum"})
    H = random_unit(rng, base.n, 4)
    a = loss.anchors(base)
    assert loss.value(H, base) == pytest.approx(total.value(H, base) / a, rel=1e-12)
    assert loss.floor(base) == pytest.approx(total.floor(base) / a, rel=1e-13)
    ref = total.value(H, base) / a
    assert loss.torch_value(torch.tensor(H), base).item() == pytest.approx(ref, rel=1e-12)
    assert loss.torch_value_and_grad(torch.tensor(H), base)[0].item() == pytest.approx(ref, rel=1e-12)


# ---- batches without anchors ----------------------------------------------------------------------------


def test_a_batch_without_anchors_contributes_nothing(rng):
    loss, base = get_loss("supcon", tau=TAU, reduction="mean"), classes()
    # samples 4 and 7 are alone in their classes: no positive, no anchor (weight 1, value 0)
    samples = base.with_batches([[4, 7], list(range(10))])
    H = random_unit(rng, base.n, 4)
    full = loss.value(H, base)
    assert loss.value(H, samples) == pytest.approx(full, rel=1e-12)
    assert loss.floor(samples) == pytest.approx(loss.floor(base), rel=1e-14)
    v, g = loss.torch_value_and_grad(torch.tensor(H), samples)
    assert v.item() == pytest.approx(full, rel=1e-12)
    torch.testing.assert_close(g, loss.torch_value_and_grad(torch.tensor(H), base)[1])
    res = solve(Problem(loss, samples), compare_full_batch=False)
    assert res.certificate.certified
    assert res.value == pytest.approx(solve(Problem(loss, base)).value, rel=1e-8)
    # KCL: a batch of one pair has no negatives, so no anchor
    kcl, vb = get_loss("kcl"), views()
    Hv = random_unit(rng, vb.n, 4)
    one = vb.with_batches([[0, 1], list(range(10))])
    assert kcl.value(Hv, one) == pytest.approx(kcl.value(Hv, vb), rel=1e-12)
    assert kcl.floor(one) == pytest.approx(kcl.floor(vb), rel=1e-14)


def test_batches_all_without_anchors(rng):
    loss, base = get_loss("supcon", tau=TAU, reduction="mean"), classes()
    samples = base.with_batches([[4, 7], [0, 9]])
    H = random_unit(rng, base.n, 4)
    assert loss.floor(samples) == 0.0 and loss.value(H, samples) == 0.0
    v, g = loss.torch_value_and_grad(torch.tensor(H), samples)
    assert v.item() == 0.0 and not torch.any(g != 0)
    assert loss.torch_value(torch.tensor(H), samples).item() == 0.0
    assert loss.degenerate(samples) is not None
