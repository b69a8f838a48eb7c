"""SupCon three ways (torch over H, numpy over G, CVXPY over G) and at the group level."""

import cvxpy as cp
import numpy as np
import pytest
import torch
from conftest import expand_group_gram, random_unit

from ufm.losses import SupCon
from ufm.samples import Samples
from ufm.structure import GroupGram
from ufm.symmetry import ClassSymmetry

COUNTS = [(3, 2, 1, 4), (5, 5), (2, 2, 2, 1, 1, 6)]


def naive_supcon(G, counts, tau):
    """Straight from the definition, one anchor at a time, in extended precision."""
    G = np.asarray(G, dtype=np.longdouble)
    y = np.repeat(np.arange(len(counts)), counts)
    total = np.longdouble(0)
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        if not pos:
            continue
        den = sum(np.exp(G[i, j] / tau) for j in range(len(y)) if j != i)
        total += np.log(den) - sum(G[i, j] for j in pos) / (len(pos) * tau)
    return float(total)


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("tau", [1.0, 0.1, 0.02])
def test_three_implementations_agree(rng, counts, tau):
    n = sum(counts)
    H = random_unit(rng, n, 4)
    G = H @ H.T
    loss = SupCon(tau=tau)
    v_np, _ = loss.gram_value_and_grad(G, counts)
    v_torch = loss.torch_value(torch.tensor(H), counts).item()
    X = cp.Variable((n, n), symmetric=True)
    X.value = G
    v_cvx = loss.cvxpy_gram(X, counts).value
    scale = max(abs(v_np), 1.0)
    assert abs(v_torch - v_np) <= 1e-10 * scale
    assert abs(v_cvx - v_np) <= 1e-10 * scale
    assert abs(naive_supcon(G, counts, tau) - v_np) <= 1e-10 * scale


def test_torch_batched_and_mean_reduction(rng):
    counts = (3, 2, 4)
    H = torch.tensor(np.stack([random_unit(rng, 9, 3) for _ in range(4)]))
    loss = SupCon(tau=0.3)
    batched = loss.torch_value(H, counts)
    single = torch.stack([loss.torch_value(h, counts) for h in H])
    assert batched.shape == (4,)
    torch.testing.assert_close(batched, single, rtol=1e-13, atol=0)
    torch.testing.assert_close(loss.torch_value(H, counts, "mean"), batched / 9)
    # mean divides by the number of anchors (samples with a positive), not by n
    torch.testing.assert_close(loss.torch_value(H[..., :7, :], (3, 2, 1, 1), "mean"),
                               loss.torch_value(H[..., :7, :], (3, 2, 1, 1)) / 5)


def test_gradient_matches_finite_differences(rng):
    counts = (3, 2, 1, 4)
    n = sum(counts)
    G = random_unit(rng, n, 5)
    G = G @ G.T
    loss = SupCon(tau=0.2)
    _, g = loss.gram_value_and_grad(G, counts)
    E = rng.standard_normal((n, n))
    E = (E + E.T) / 2
    np.fill_diagonal(E, 0)
    eps = 1e-6
    f_plus = loss.gram_value(G + eps * E, counts)
    fd = (f_plus - loss.gram_value(G - eps * E, counts)) / (2 * eps)
    assert np.sum(g * E) == pytest.approx(fd, rel=1e-7)
    assert np.allclose(g, g.T)


def test_gradient_in_h_matches_torch_autograd(rng):
    """d f / d H = 2 g H for the symmetrised gradient g over G."""
    counts = (3, 2, 1, 4)
    H = random_unit(rng, 10, 4)
    loss = SupCon(tau=0.3)
    _, g = loss.gram_value_and_grad(H @ H.T, counts)
    Ht = torch.tensor(H, requires_grad=True)
    loss.torch_value(Ht, counts).backward()
    assert np.allclose(Ht.grad.numpy(), 2 * g @ H, rtol=1e-10, atol=1e-12)


def test_stable_at_small_tau():
    """Collapsed simplex at tau = 0.02 with two samples per class: the loss is ~1e-40, and the
    stable form keeps it (a naive log(sum exp) - mean returns 0 or round-off)."""
    k, m, tau = 3, 2, 0.02
    counts = (m,) * k
    y = np.repeat(np.arange(k), m)
    C = np.full((k, k), -1 / (k - 1))
    np.fill_diagonal(C, 1)
    G = C[np.ix_(y, y)]
    exact = k * m * np.log1p((k * m - m) * np.exp(-k / ((k - 1) * tau)))
    loss = SupCon(tau=tau)
    v, _ = loss.gram_value_and_grad(G, counts)
    assert exact > 0
    assert v == pytest.approx(exact, rel=1e-10)
    vt = loss.torch_value(torch.tensor(_factor(G)), counts).item()
    assert vt == pytest.approx(exact, rel=1e-6)  # H from an eigendecomposition: G to 1e-15


def _factor(G):
    w, U = np.linalg.eigh(G)
    H = U * np.sqrt(np.clip(w, 0, None))
    return H / np.linalg.norm(H, axis=1, keepdims=True)


@pytest.mark.parametrize("orbit", [False, True])
@pytest.mark.parametrize("tau", [0.5, 0.05])
def test_group_level_matches_sample_level(rng, orbit, tau):
    counts = (3, 3, 2, 2, 2, 1, 1, 5)
    loss = SupCon(tau=tau)
    sym = ClassSymmetry(Samples.from_counts(counts), orbits=orbit)
    groups = sym.groups
    q = groups.q
    a = rng.uniform(-0.3, 0.9, q)
    s = rng.uniform(-0.3, 0.5, q)
    C = rng.uniform(-0.5, 0.5, (q, q))
    C = (C + C.T) / 2
    np.fill_diagonal(C, 0.0)
    G = expand_group_gram(groups, counts, GroupGram(np.ones(q), a, s, C))
    v, grad = loss.gram_value_and_grad(G, counts)
    x = sym.from_groupgram(GroupGram(np.ones(q), a, s, C))
    assert np.allclose(sym.expand(x), G)
    lex, totals = loss.table_log_excess(sym.table, 1.0 - x)
    assert loss.floor(counts) + np.exp(lex) == pytest.approx(v, rel=1e-12)
    g_entries = sym.table.symmetric_entries(totals) * np.exp(lex)
    G_grad = sym.expand(g_entries, diag=np.zeros(q))  # gradient diagonal is 0
    assert np.allclose(G_grad, grad, rtol=1e-9, atol=1e-14 * np.abs(grad).max())
    X = cp.Variable(x.size)
    X.value = x
    assert loss.cvxpy_table(X, sym.table).value == pytest.approx(v, rel=1e-12)


def test_rotation_and_class_permutation_invariance(rng):
    counts = (4, 2, 3)
    H = random_unit(rng, 9, 5)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    loss = SupCon(tau=0.2)
    base = loss.torch_value(torch.tensor(H), counts).item()
    assert loss.torch_value(torch.tensor(H @ Q), counts).item() == pytest.approx(base, rel=1e-13)
    perm = np.r_[6:9, 4:6, 0:4]  # classes reordered (3, 2, 4)
    assert loss.torch_value(torch.tensor(H[perm]), (3, 2, 4)).item() == pytest.approx(base, rel=1e-13)
