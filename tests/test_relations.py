"""Masks declared once (ufm.losses.relations): |P|, |N|, anchors and masks all come from a loss's
``kind_of_relation()``. Counts are checked against a brute-force count over labels and views,
``uses_views`` against the masks' behaviour, and a loss with cross-view negatives (relation 0
only, not expressible with the old same-view flag) against itself across its forms."""

import numpy as np
import pytest
import torch
from conftest import random_unit
from spread_loss import Spread

import ufm.losses.base as base
from ufm import Samples, get_loss
from ufm.losses import LOSSES, relations
from ufm.losses.infonce import InfoNCE
from ufm.samples import SAME_GROUP, SAME_VIEW
from ufm.tables import NEG, NONE, POS


class CrossViewInfoNCE(InfoNCE):
    """InfoNCE whose negatives are the other instances in the *other* views only."""

    name = "test_cross_view_infonce"
    relation_kinds = (NEG, POS, NONE, POS)

    def kind_of_relation(self):
        return np.array(self.relation_kinds, dtype=np.int8)


class CrossViewSpread(Spread):
    name = "test_cross_view_spread"

    def kind_of_relation(self):
        return np.array([NEG, POS, NONE, POS], dtype=np.int8)


def brute_counts(lut, samples):
    """|P(i)|, |N(i)| by looking at every pair."""
    y, v, n = samples.labels, samples.views, samples.n
    npos, nneg = np.zeros(n), np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            rel = SAME_GROUP * (y[i] == y[j]) + (SAME_VIEW * (v[i] == v[j]) if v is not None else 0)
            npos[i] += lut[rel] == POS
            nneg[i] += lut[rel] == NEG
    return npos, nneg


SAMPLES = [Samples.from_counts((3, 1, 2)), Samples.instances_views(4, 2), Samples.instances_views(3, 3),
           Samples.instances_views(4, 3).with_batches([np.arange(6), np.arange(6, 12)]).batch_subsets[1][1]]


def _losses():
    out = [cls() for cls in LOSSES.values()]
    out += [get_loss("infonce", negatives=m) for m in ("same_view", "decoupled")]
    return out + [CrossViewInfoNCE(), CrossViewSpread()]


@pytest.mark.parametrize("loss", _losses(), ids=lambda x: x.name)
def test_counts_and_types_come_from_the_declaration(loss):
    lut = loss.kind_of_relation()
    for s in SAMPLES:
        npos, nneg = loss._counts(s)
        bp, bn = brute_counts(lut, s)
        np.testing.assert_array_equal(npos, bp)
        np.testing.assert_array_equal(nneg, bn)
        tp, tn, mult, a = loss._types(s)
        assert float((mult * tp).sum()) == bp.sum() and float((mult * tn).sum()) == bn.sum()
        assert float(mult[a].sum()) == float(loss._anchor_mask(s).sum())
        pos, neg = loss._dense_masks(s, "cpu")
        np.testing.assert_array_equal(pos.sum(-1).numpy(), bp)
        np.testing.assert_array_equal(neg.sum(-1).numpy(), bn)


def test_uses_views_is_derived():
    expect = {"supcon": False, "supcon_in": False, "infonce": False, "dcl": False, "alpha_cl": False,
              "dhel": True, "kcl": True, "spectral": True}
    for name, value in expect.items():
        assert get_loss(name).uses_views is value, name
    assert get_loss("infonce", negatives="same_view").uses_views
    assert CrossViewInfoNCE().uses_views


def test_the_flag_trio_and_the_old_derivations_are_gone():
    for loss in _losses():
        assert not hasattr(loss, "negatives_same_view") and not hasattr(loss, "same_view_negatives")
    assert not hasattr(base, "counts_per_sample") and not hasattr(base, "anchor_types")
    assert relations.uses_views(np.array([NEG, POS, NONE, POS]))


@pytest.mark.parametrize("loss", [CrossViewInfoNCE(tau=0.5), CrossViewSpread()], ids=lambda x: x.name)
def test_cross_view_negatives_agree_across_forms(rng, loss):
    """Rows (numpy), torch row blocks (every block size) and the plain definition agree, and the
    same-view pairs of other instances carry no term (moving them changes nothing)."""
    s = Samples.instances_views(4, 3)
    H = random_unit(rng, s.n, 5)
    plain = loss.torch_value(torch.tensor(H), s).item()
    assert loss.value(H, s) == pytest.approx(plain, rel=1e-12)
    Hr = torch.tensor(H, requires_grad=True)
    loss.torch_value(Hr, s).backward()
    for block in (2, 5, 4096):
        value, grad = loss.torch_value_and_grad(torch.tensor(H), s, block=block)
        assert value.item() == pytest.approx(plain, rel=1e-12)
        np.testing.assert_allclose(grad.numpy(), Hr.grad.numpy(), rtol=1e-9, atol=1e-12)
    # the derivative in G vanishes on same-view pairs of other instances
    _, Ft = loss.dense_log_excess(loss.distances(H, s), s)
    y, v = s.labels, s.views
    others = y[:, None] != y[None, :]
    same_view_others = others & (v[:, None] == v[None, :])
    assert (Ft[same_view_others] == 0).all() and (Ft[others & ~same_view_others] != 0).all()
