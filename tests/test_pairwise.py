"""The pairwise-loss base (ufm.losses.pairwise): the derived forms against each other (numpy rows,
torch row blocks on both same-group paths, the plain value, CVXPY) for the ported losses at random
points, the declared derivatives against autograd, and the autodiff fallback of ``Loss``."""

import cvxpy as cp
import numpy as np
import pytest
import torch
from conftest import random_unit
from spread_loss import Spread

from ufm import Samples, get_loss
from ufm.losses.base import Loss
from ufm.losses.pairwise import PairwiseLoss
from ufm.tables import NEG, POS


class SpreadAutograd(Spread):
    """The spread loss with phi only: its derivative by autograd."""

    dphi = PairwiseLoss.dphi


KERNELS = [{"kernel": "gaussian"}, {"kernel": "imq"}, {"kernel": "log"}, {"kernel": "riesz", "s": 1.0},
           {"kernel": "riesz", "s": -1.0}]
KCLS = [get_loss("kcl", reduction="sum", **kw) for kw in KERNELS]

CASES = [
    (get_loss("spectral", reduction="sum"), Samples.instances_views(5, 2)),
    *[(kcl, Samples.instances_views(5, 2)) for kcl in KCLS],
    *[(kcl.relaxation(), Samples.instances_views(5, 2)) for kcl in KCLS],
    (Spread(), Samples.from_counts((4, 3, 3))),
    (SpreadAutograd(), Samples.from_counts((4, 3, 3))),
    (Spread(), Samples.instances_views(4, 3)),
]


@pytest.mark.parametrize("loss,samples", CASES)
def test_derived_forms_agree(rng, loss, samples):
    H = random_unit(rng, samples.n, 4)
    Ht = torch.tensor(H)
    plain = loss.torch_value(Ht, samples).item()
    assert loss.value(H, samples) == pytest.approx(plain, rel=1e-12, abs=1e-12)
    G = H @ H.T
    v, g = loss.gram_value_and_grad(G, samples)
    assert v == pytest.approx(plain, rel=1e-12, abs=1e-12)
    if loss.supports("cvxpy"):
        assert loss.cvxpy_gram(cp.Constant(G), samples).value == pytest.approx(plain, rel=1e-10, abs=1e-12)
    Hr = Ht.clone().requires_grad_(True)
    loss.torch_value(Hr, samples).backward()
    lex_rows, _ = loss.dense_log_excess(loss.distances(H, samples), samples)
    for sparse in (True, False):
        for block in (3, 4096):
            ev = loss._torch_rows(Ht, samples)
            ev.sparse = sparse
            lex, grad = loss._torch_full(Ht, samples, block, ev)
            assert lex.item() == pytest.approx(lex_rows, rel=1e-12)
            np.testing.assert_allclose((grad * lex.exp()).numpy(), Hr.grad.numpy(), rtol=1e-10, atol=1e-12)
    # the rows' derivative in G against the torch gradient: (g + g^T) H = d f / d H
    np.testing.assert_allclose(2 * g @ H, Hr.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", [get_loss("spectral"), Spread(), *KCLS])
def test_declared_derivatives_match_autograd(rng, loss):
    """The closed-form derivatives (KCL: the kernels' phi_dphi in one pass) against autograd of phi."""
    D = rng.uniform(1e-3, 2.0, 50)
    for k in (POS, NEG):
        np.testing.assert_allclose(loss.dphi(k, D, np), PairwiseLoss.dphi(loss, k, D, np), rtol=1e-12)
        Dt = torch.tensor(D)
        np.testing.assert_allclose(loss.dphi(k, Dt, torch).numpy(), D * 0 + PairwiseLoss.dphi(loss, k, D, np),
                                   rtol=1e-12)


@pytest.mark.parametrize("loss", [*KCLS, *[k.relaxation() for k in KCLS]])
def test_kcl_definition_form_matches_the_derived_plain_form(rng, loss):
    """KCL's own plain form (the definition over kernels of r^2) against the base's, derived from
    phi and the term floors: values and autograd gradients."""
    s = Samples.instances_views(6, 2)
    H = torch.tensor(random_unit(rng, s.n, 3))
    own, derived = H.clone().requires_grad_(True), H.clone().requires_grad_(True)
    a, b = loss._torch_plain(own, s), PairwiseLoss._torch_plain(loss, derived, s)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    a.backward()
    b.backward()
    np.testing.assert_allclose(own.grad.numpy(), derived.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_spectral_floor_and_anchor_bookkeeping():
    loss, s = get_loss("spectral"), Samples.instances_views(6, 2)
    assert loss.floor(s) == -2.0 and loss.anchors(s) == 6
    npos, nneg = loss._counts(s)
    assert (npos == 1).all() and (nneg == 5).all()
    assert get_loss("spectral").floor(Samples.instances_views(1, 2)) == 0.0


class ValueOnly(Loss):
    """A tiny loss defined by its value alone: sum_{i != j} exp(2 G_ij) (no rows evaluator)."""

    name = "test_value_only"

    def _floor(self, samples):
        return 0.0

    def _rows_log_excess(self, X, mult, kind, weight):
        raise NotImplementedError

    def _torch_plain(self, H, samples):
        G = H @ H.transpose(-1, -2)
        off = ~torch.eye(samples.n, dtype=torch.bool)
        return torch.where(off, torch.exp(2 * G), torch.zeros_like(G)).sum((-1, -2))


def test_autodiff_fallback_matches_finite_differences(rng):
    loss, s = ValueOnly(), Samples.from_counts((3, 2))
    H = torch.tensor(random_unit(rng, s.n, 3))
    value, grad = loss.torch_value_and_grad(H, s)
    assert value.item() == pytest.approx(loss.torch_value(H, s).item(), rel=1e-14)
    eps, fd = 1e-6, torch.zeros_like(H)
    for i in range(s.n):
        for j in range(3):
            E = torch.zeros_like(H)
            E[i, j] = eps
            fd[i, j] = (loss.torch_value(H + E, s) - loss.torch_value(H - E, s)) / (2 * eps)
    np.testing.assert_allclose(grad.numpy(), fd.numpy(), rtol=1e-7, atol=1e-8)
