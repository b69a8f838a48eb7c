"""Tian (2023)'s two-layer simulation (issue 20, items 3 and 4): the paper's score and the token
coverage against hand-built weights (closed forms) and an independent re-implementation of the
paper's ``check_result``; BatchNorm, weight decay, fresh batches and the view-1 anchor each change
training as documented (plain path step for step, closed-form BatchNorm gradients, the paper's
cross-entropy loss); the ``tian2023`` preset's values, on the command line (explicit options win)
and in studies; one-line errors naming the option."""

import json

import numpy as np
import pytest
import torch

from solvers.networks.two_layer import (
    SPECIALISED,
    TIAN2023,
    TIAN2023_LOSS,
    setup_loss,
    train_two_layer,
    view1_infonce,
)
from ufm.errors import UFMInputError
from ufm.losses import DHEL, InfoNCE
from ufm.networks.data import pattern_data, pattern_source
from ufm.networks.two_layer import (
    TwoLayer,
    dedicated_tokens,
    paper_score,
    paper_summary,
    pattern_tokens,
    specialisation,
    token_coverage,
)
from ufm.samples import Samples

# --------------------------------------------------------------------------- measures


def _hand_built():
    """K = 2 locations, M = 2 units, V = 4 tokens; pattern tokens {0, 2} at location 0, {1} at 1.
    Location 0: a one-hot unit on token 0 and (0, 0, 3, 4); location 1: -e_1 and a flat unit."""
    W = np.zeros((2, 2, 4))
    W[0, 0, 0] = 1.0
    W[0, 1] = [0.0, 0.0, 3.0, 4.0]
    W[1, 0, 1] = -1.0
    W[1, 1] = 0.5
    return W, [{0, 2}, {1}]


def test_paper_score_on_hand_built_weights():
    """The paper's ratio W_k[m, t] / (|W_k[m]| + max(max|W_k| / 1000, 1e-6)), best unit: location 0
    has max|W| = 4 (eps 0.004): token 0 scores 1 / 1.004 (the one-hot unit), token 2 3 / 5.004;
    location 1 (max|W| = 1, eps 0.001): ReLU keeps the sign (-e_1 scores -1 / 1.001, the flat unit
    0.5 / 1.001), a linear unit scores |w| (1 / 1.001)."""
    W, tokens = _hand_built()
    relu = paper_score(W, tokens, "relu")
    assert relu[0, 0] == pytest.approx(1 / 1.004, rel=1e-15)
    assert relu[0, 2] == pytest.approx(3 / 5.004, rel=1e-15)
    assert relu[1, 1] == pytest.approx(0.5 / 1.001, rel=1e-15)
    assert np.isnan(relu[0, 1]) and np.isnan(relu[1, 0]) and np.isfinite(relu).sum() == 3
    assert paper_score(W, tokens, "linear")[1, 1] == pytest.approx(1 / 1.001, rel=1e-15)
    assert paper_summary(relu) == pytest.approx(((1 / 1.004 + 3 / 5.004) / 2 + 0.5 / 1.001) / 2, rel=1e-15)
    assert paper_summary(np.full((2, 4), np.nan)) is None


def test_one_hot_unit_scores_1_and_covers_its_token():
    """Without the paper's small denominator term a one-hot unit on a pattern token scores exactly 1
    (the term is 1e-6 for weights of size 1e-3), and it covers its token: its whole response
    variance is on it (share 1)."""
    W = np.zeros((1, 3, 5))
    W[0, 0, 2] = 1e-3
    W[0, 1] = 1e-3 * np.array([1.0, 1.0, 1.0, 1.0, 1.0])  # flat: dead
    W[0, 2] = 1e-3 * np.array([0.2, -0.1, 0.0, 0.3, 0.1])
    tokens = [{2, 3}]
    score = paper_score(W, tokens, "relu")
    assert score[0, 2] == pytest.approx(1e-3 / (1e-3 + 1e-6), rel=1e-15)
    covered = token_coverage(W, tokens, "relu", SPECIALISED)
    assert covered[0, 2] and not covered[0, 3] and covered.sum() == 1
    s = specialisation(W, tokens, "relu")
    assert s[0, 0] == pytest.approx(1.0, rel=1e-12) and np.isnan(s[0, 1])


def test_token_coverage_and_dedicated_tokens_on_hand_built_weights():
    """ReLU: the one-hot unit covers token 0 (share 1); (0, 0, 3, 4) answers token 0 more than
    token 2 among the pattern tokens but carries 32% of its variance there: not specialised, token
    2 uncovered; location 1 has only dead units (-e_1 and a flat unit). Linear: -e_1 is live and
    covers token 1. Coverage 1/3 and 2/3."""
    W, tokens = _hand_built()
    np.testing.assert_array_equal(dedicated_tokens(W, tokens, "relu"), [[0, 0], [-1, -1]])
    relu = token_coverage(W, tokens, "relu", SPECIALISED)
    assert relu[0, 0] and relu.sum() == 1
    linear = token_coverage(W, tokens, "linear", SPECIALISED)
    assert linear[0, 0] and linear[1, 1] and linear.sum() == 2
    share = specialisation(W, tokens, "relu")
    assert share[0, 1] == pytest.approx(3.0625 / 12.75 * 4 / 3, rel=1e-12)


def _check_result(W, tokens, activation):
    """The paper's ``check_result`` (bn_gen.py) written again in torch, as its code reads: per
    location, per token some pattern fixes there, the top-1 of the sorted energy ratios; the mean
    over tokens, then over locations."""
    means = []
    for k, toks in enumerate(tokens):
        if not toks:
            continue
        w = torch.as_tensor(W[k])
        w_norm = w.norm(dim=1)
        per = []
        for idx in toks:
            ratio = w[:, idx] / (w_norm + max(w.abs().max() / 1000, 1e-6))
            if activation == "linear":
                ratio = ratio.abs()
            per.append(ratio.sort(descending=True)[0][:1].mean().item())
        means.append(torch.tensor(per).mean().item())
    return torch.tensor(means, dtype=torch.float64).mean().item()


def test_summary_measures_match_independent_computations():
    d = pattern_data(48, locations=4, vocab=6, patterns=3, fixed=2, seed=0)
    tokens = pattern_tokens(d.directions, 4, 6)
    for act in ("linear", "relu"):
        res = train_two_layer(d, 4, 6, act, hidden=3, out_dim=6, steps=40, lr=0.05, seed=0)
        s = res.summary()
        assert s["paper_score"] == pytest.approx(_check_result(res.W, tokens, act), rel=1e-6)
        assert s["pattern_tokens"] == sum(len(t) for t in tokens)
        assert s["token_coverage"] == s["covered_tokens"] / s["pattern_tokens"]
        assert s["specialised_fraction"] == s["specialised_units"] / s["live_units"]  # among live units
        assert s["units"] == 12 and s["live_units"] <= 12
        assert s["initial_loss"] == res.values[0] and s["final_loss"] == res.values[-1]
        np.testing.assert_array_equal(res.coverage, token_coverage(res.W, tokens, act, SPECIALISED))


# --------------------------------------------------------------------------- data


def test_pattern_source_draws_pattern_data_and_restricts_tokens_per_location():
    for seed in range(4):
        a, b = pattern_data(40, 5, 7, 3, 2, seed), pattern_source(5, 7, 3, 2, seed).draw(40)
        for key in ("x1", "x2", "pattern", "directions"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    src = pattern_source(6, 12, 30, 4, seed=1, tokens_per_location=2)
    for k in range(6):
        assert len(set(src.token[src.where == k].tolist())) <= 2
    d = src.draw(30, np.random.default_rng(0))
    assert d.x1.shape == (30, 72) and np.all(d.x1.reshape(30, 6, 12).sum(axis=2) == 1)
    with pytest.raises(UFMInputError) as err:
        pattern_source(3, 4, 2, 2, tokens_per_location=5)
    assert err.value.argument == "tokens_per_location"


# --------------------------------------------------------------------------- training options


def _plain_loop(d, act, steps, lr, seed, weight_decay=0.0):
    """The training loop written out: full-batch SGD (momentum 0.9) on the symmetric InfoNCE's
    closed-form gradient, weight decay added to the gradients by hand."""
    x = torch.as_tensor(np.stack([d.x1, d.x2], axis=1).reshape(2 * d.n, -1))
    samples, loss = Samples.instances_views(d.n, 2), InfoNCE(tau=0.1)
    net = TwoLayer.random(4, 6, 3, 6, act, seed)
    params = net.parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        H = net.embed(x)
        H.backward(loss.torch_value_and_grad(H.detach(), samples)[1])
        if weight_decay:
            for p in params:
                p.grad.add_(p.detach(), alpha=weight_decay)
        opt.step()
    return net.W.detach().numpy()


def test_weight_decay_0_is_the_plain_path_step_for_step_and_decay_shrinks_the_weights():
    d = pattern_data(24, locations=4, vocab=6, patterns=3, fixed=2, seed=2)
    for act in ("relu", "linear"):
        plain = _plain_loop(d, act, 25, 0.05, 3)
        np.testing.assert_array_equal(train_two_layer(d, 4, 6, act, 3, 6, None, 25, 0.05, 3).W, plain)
        np.testing.assert_array_equal(
            train_two_layer(d, 4, 6, act, 3, 6, None, 25, 0.05, 3, weight_decay=0.0).W, plain)
    decayed = train_two_layer(d, 4, 6, "relu", 3, 6, None, 25, 0.05, 3, weight_decay=0.5).W
    np.testing.assert_allclose(decayed, _plain_loop(d, "relu", 25, 0.05, 3, weight_decay=0.5), rtol=1e-12,
                               atol=1e-15)
    assert np.linalg.norm(decayed) < 0.8 * np.linalg.norm(_plain_loop(d, "relu", 25, 0.05, 3))


def _paper_cross_entropy(H, tau):
    """The paper's loss (bn_gen.py ``main``): M = z1 z1^T with the diagonal replaced by z1 . z2,
    nn.CrossEntropyLoss on M / T with label i for row i (the mean over the batch)."""
    z1, z2 = H[0::2], H[1::2]
    M = z1 @ z1.T
    idx = torch.arange(z1.shape[0])
    M[idx, idx] = (z1 * z2).sum(dim=1)
    return torch.nn.functional.cross_entropy(M / tau, idx)


def _unit_rows(rng, n, d):
    H = rng.standard_normal((n, d))
    return torch.as_tensor(H / np.linalg.norm(H, axis=1, keepdims=True))


def test_view1_loss_is_infonce_anchored_on_view_1(rng):
    H = _unit_rows(rng, 10, 4)  # 5 instances x 2 views
    z = H.numpy().reshape(5, 2, 4)
    tau = 0.3
    for negatives in ("same_view", "all", "decoupled"):
        hand = 0.0
        for i in range(5):
            pos = z[i, 0] @ z[i, 1] / tau
            neg = [z[i, 0] @ z[j, 0] / tau for j in range(5) if j != i]
            if negatives != "same_view":
                neg += [z[i, 0] @ z[j, 1] / tau for j in range(5) if j != i]
            terms = neg + ([] if negatives == "decoupled" else [pos])
            hand += np.log(np.sum(np.exp(terms))) - pos
        loss = InfoNCE(tau=tau, negatives=negatives)
        assert float(view1_infonce(H, loss)) == pytest.approx(hand, rel=1e-12)
        mean = InfoNCE(tau=tau, negatives=negatives, reduction="mean")
        assert float(view1_infonce(H, mean)) == pytest.approx(hand / 5, rel=1e-12)
    # the paper's cross-entropy, and the loss class: view 1's anchors plus view 2's make the symmetric loss
    paper = InfoNCE(tau=tau, negatives="same_view", reduction="mean")
    assert float(view1_infonce(H, paper)) == pytest.approx(float(_paper_cross_entropy(H, tau)), rel=1e-12)
    swapped = H.reshape(5, 2, 4).flip(1).reshape(10, 4)
    both = float(view1_infonce(H, InfoNCE(tau=tau, negatives="same_view"))) + float(
        view1_infonce(swapped, InfoNCE(tau=tau, negatives="same_view")))
    full = InfoNCE(tau=tau, negatives="same_view").torch_value(H, Samples.instances_views(5, 2))
    assert both == pytest.approx(float(full), rel=1e-12)


def test_view1_anchor_trains_through_the_papers_loss():
    d = pattern_data(16, locations=4, vocab=6, patterns=3, fixed=2, seed=0)
    loss = setup_loss("tian2023")
    res = train_two_layer(d, 4, 6, "relu", 3, 6, loss, 5, 0.05, 1, anchor="view1")
    net = TwoLayer.random(4, 6, 3, 6, "relu", 1)
    x = torch.as_tensor(np.stack([d.x1, d.x2], axis=1).reshape(32, -1))
    assert res.values[0] == pytest.approx(float(_paper_cross_entropy(net.embed(x), 0.1)), rel=1e-12)
    assert not np.array_equal(res.W, train_two_layer(d, 4, 6, "relu", 3, 6, loss, 5, 0.05, 1).W)
    with pytest.raises(UFMInputError) as err:
        train_two_layer(d, 4, 6, "relu", 3, 6, DHEL(), 5, 0.05, 1, anchor="view1")
    assert err.value.argument == "anchor"
    with pytest.raises(UFMInputError) as err:
        train_two_layer(d, 4, 6, "relu", 3, 6, None, 5, 0.05, 1, anchor="view2")
    assert err.value.argument == "anchor"


def test_batchnorm_normalises_each_view_with_closed_form_gradients(rng):
    """BN of y (rows: 4 instances x 2 views): each view's columns have mean 0 and variance
    var / (var + eps). Gradient of sum(BN(y) R) in y, per view with s = sqrt(var + eps) and
    yhat = BN(y): detach_var (R - mean R) / s; on (R - mean R - yhat mean(R yhat)) / s (the
    variance's own gradient besides)."""
    y0 = torch.as_tensor(rng.standard_normal((8, 5)) * 2 + 1)
    R = torch.as_tensor(rng.standard_normal((8, 5)))
    out = {}
    for mode in ("on", "detach_var"):
        net = TwoLayer(None, None, "relu", mode)
        y = y0.clone().requires_grad_(True)
        z = net.normalise(y, views=2)
        (z * R).sum().backward()
        out[mode] = (z.detach(), y.grad)
    g, r = y0.reshape(4, 2, 5), R.reshape(4, 2, 5)
    mean, var = g.mean(dim=0), g.var(dim=0, unbiased=False)
    s = (var + 1e-5).sqrt()
    yhat = (g - mean) / s
    torch.testing.assert_close(out["on"][0], yhat.reshape(8, 5), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["detach_var"][0], out["on"][0], rtol=0, atol=0)
    torch.testing.assert_close(yhat.mean(dim=0), torch.zeros(2, 5, dtype=torch.float64), rtol=0, atol=1e-12)
    rc = r - r.mean(dim=0)
    torch.testing.assert_close(out["detach_var"][1], (rc / s).reshape(8, 5), rtol=1e-10, atol=1e-12)
    full = (rc - yhat * (r * yhat).mean(dim=0)) / s
    torch.testing.assert_close(out["on"][1], full.reshape(8, 5), rtol=1e-10, atol=1e-12)
    assert TwoLayer(None, None, "relu").normalise(y0) is y0  # off: untouched


def test_batchnorm_changes_training_and_is_checked():
    d = pattern_data(24, locations=4, vocab=6, patterns=3, fixed=2, seed=0)
    W = {bn: train_two_layer(d, 4, 6, "relu", 3, 6, None, 10, 0.05, 0, batchnorm=bn).W
         for bn in ("off", "on", "detach_var")}
    assert not np.array_equal(W["off"], W["on"]) and not np.array_equal(W["on"], W["detach_var"])
    with pytest.raises(UFMInputError) as err:
        train_two_layer(d, 4, 6, "relu", 3, 6, None, 10, 0.05, 0, batchnorm="yes")
    assert err.value.argument == "batchnorm"


def test_fresh_batches_draw_a_new_seeded_batch_every_step():
    """With a source every step trains on a fresh batch of ``batch`` samples drawn with a generator
    seeded by (seed, 2023): the first step's loss is the initial network's on that batch; runs are
    reproducible; the losses reported are on ``data`` (the evaluation sample)."""
    src = pattern_source(4, 6, 3, 2, seed=0)
    data = src.draw(20)
    loss = InfoNCE(tau=0.1)
    kw = {"source": src, "batch": 12}
    a = train_two_layer(data, 4, 6, "relu", 3, 6, loss, 8, 0.05, 5, **kw)
    b = train_two_layer(data, 4, 6, "relu", 3, 6, loss, 8, 0.05, 5, **kw)
    np.testing.assert_array_equal(a.W, b.W)
    fixed = train_two_layer(data, 4, 6, "relu", 3, 6, loss, 8, 0.05, 5)
    assert not np.array_equal(a.W, fixed.W) and len(a.values) == 9
    first = src.draw(12, np.random.default_rng(np.random.SeedSequence([5, 2023])))
    net = TwoLayer.random(4, 6, 3, 6, "relu", 5)
    x = torch.as_tensor(np.stack([first.x1, first.x2], axis=1).reshape(24, -1))
    assert a.values[0] == pytest.approx(float(loss.torch_value(net.embed(x), Samples.instances_views(12, 2))),
                                        rel=1e-12)
    xd = torch.as_tensor(np.stack([data.x1, data.x2], axis=1).reshape(40, -1))
    assert a.summary()["initial_loss"] == pytest.approx(
        float(loss.torch_value(net.embed(xd), Samples.instances_views(20, 2))), rel=1e-12)
    assert a.summary()["final_loss"] == a.values[-1]
    with pytest.raises(UFMInputError) as err:
        train_two_layer(data, 4, 6, "relu", 3, 6, loss, 8, 0.05, 5, batch=12)
    assert err.value.argument == "batch"
    with pytest.raises(UFMInputError) as err:
        train_two_layer(data, 4, 6, "relu", 3, 6, loss, 8, 0.05, 5, weight_decay=-1.0)
    assert err.value.argument == "weight_decay"


def test_relu_covers_more_pattern_tokens_than_linear_under_the_papers_training():
    """The paper's headline on a small seeded instance (its training: BatchNorm, weight decay,
    fresh batches, view-1 InfoNCE): ReLU units give most pattern tokens a unit of their own, linear
    units few (per seed: ReLU 6/7, 9/9, 8/9; linear 0/7, 2/9, 0/9)."""
    cov = {"linear": [], "relu": []}
    for seed in (0, 1, 2):
        src = pattern_source(4, 8, 6, 2, seed=seed, tokens_per_location=3)
        data = src.draw(64)
        for act in cov:
            res = train_two_layer(data, 4, 8, act, 6, 16, setup_loss("tian2023"), 400, 0.02, seed,
                                  batchnorm="detach_var", weight_decay=5e-3, anchor="view1", source=src,
                                  batch=64)
            cov[act].append(res.summary()["token_coverage"])
    assert all(r >= lin + 0.5 for r, lin in zip(cov["relu"], cov["linear"], strict=True)), cov
    assert np.mean(cov["relu"]) >= 0.8 and np.mean(cov["linear"]) <= 0.2, cov


# --------------------------------------------------------------------------- the preset


def test_preset_holds_the_papers_values():
    """bn_gen.yaml with the README's section 5 command (see solvers.networks.two_layer.TIAN2023)."""
    assert TIAN2023 == {"locations": 10, "vocab": 20, "tokens_per_location": 5, "patterns": 40, "fixed": 5,
                        "hidden": 25, "out_dim": 50, "batchnorm": "detach_var", "weight_decay": 5e-3,
                        "lr": 0.02, "steps": 5000, "batch": 128, "fresh_batches": "on", "anchor": "view1"}
    assert TIAN2023_LOSS == {"loss": "infonce", "tau": 0.1, "negatives": "same_view", "reduction": "mean"}
    assert setup_loss("tian2023").describe() == {"name": "infonce", "params": {
        "tau": 0.1, "negatives": "same_view", "reduction": "mean"}}
    assert setup_loss(None) is None and setup_loss("none") is None
    from solvers.options import NETWORK_OPTIONS

    for name in TIAN2023:  # every option the preset fills can be told given from left out
        option = NETWORK_OPTIONS[name]
        assert option.default is None or option.kind in ("int", "float"), name


def test_cli_setup_with_explicit_options_winning(capsys):
    from ufm.cli import main

    assert main(["network", "two-layer", "--setup", "tian2023", "--steps", "2", "--lr", "0.05",
                 "--batchnorm", "off", "--tau", "0.2", "--activation", "relu", "--samples", "32",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    t = d["training"]
    assert t["steps"] == 2 and t["lr"] == 0.05  # given, though 0.05 is the project's default
    assert t["batchnorm"] == "off" and t["setup"] == "tian2023"
    assert (t["hidden"], t["out_dim"], t["weight_decay"], t["batch"], t["fresh_batches"], t["anchor"],
            t["tokens_per_location"]) == (25, 50, 5e-3, 128, "on", "view1", 5)
    assert (d["input_dim"], d["patterns"], d["samples"]) == (200, 40, 32)
    assert d["loss"] == {"name": "infonce", "params": {"tau": 0.2, "negatives": "same_view",
                                                        "reduction": "mean"}}
    r = d["results"][0]
    assert r["steps"] == 2 and r["pattern_tokens"] <= 50 and 0 <= r["token_coverage"] <= 1
    assert main(["network", "two-layer", "--setup", "tian2023", "--fresh-batches", "off", "--steps", "1",
                 "--activation", "linear", "--samples", "16", "--loss", "dhel", "--anchor", "symmetric",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["training"]["batch"] is None and d["training"]["fresh_batches"] == "off"
    assert d["loss"]["name"] == "dhel"


def test_cli_table_shows_coverage_and_live_units(capsys):
    from ufm.cli import main

    assert main(["network", "two-layer", "--samples", "16", "--locations", "3", "--vocab", "4", "--hidden",
                 "2", "--steps", "5", "--activation", "relu"]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    assert "pattern tokens covered" in line and " live, 6 units)" in line and "paper score" in line


@pytest.mark.parametrize("args,argument", [
    (["--setup", "tian2024"], "--setup"),
    (["--batchnorm", "yes"], "--batchnorm"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--anchor", "view2"], "--anchor"),
    (["--fresh-batches", "yes"], "--fresh-batches"),
    (["--batch", "8"], "--batch"),
    (["--fresh-batches", "on", "--batch", "1"], "--batch"),
    (["--anchor", "view1", "--loss", "dhel"], "--anchor"),
    (["--tokens-per-location", "9"], "--tokens-per-location"),
    (["--setup", "tian2023", "--loss", "dhel", "--fixed", "2", "--tokens-per-location", "2"], "--anchor"),
])
def test_cli_bad_values_name_the_option(args, argument, capsys):
    from ufm.cli import main

    base = ["network", "two-layer", "--samples", "8", "--locations", "3", "--vocab", "4", "--steps", "1",
            "--activation", "relu"]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ufm: error: {argument}"), err


def test_cli_one_layer_refuses_the_setup(capsys):
    from ufm.cli import main

    assert main(["network", "one-layer", "--setup", "tian2023"]) == 2
    assert capsys.readouterr().err.startswith("ufm: error: --setup")


# --------------------------------------------------------------------------- studies and figures


def test_study_setup_fills_the_papers_values_and_the_table_wins():
    from experiments.network_study import validate_network

    net, swept = validate_network({"model": "two-layer", "setup": "tian2023", "steps": 7,
                                   "activation": ["linear", "relu"]})
    assert net["steps"] == 7 and swept == ["activation"]
    assert {k: net[k] for k in TIAN2023} == {**TIAN2023, "steps": 7}
    net, _ = validate_network({"model": "two-layer", "setup": "tian2023", "fresh_batches": "off"})
    assert "batch" not in net
    plain, _ = validate_network({"model": "two-layer"})
    assert not {"setup", "batchnorm", "weight_decay", "batch", "fresh_batches", "anchor",
                "tokens_per_location"} & set(plain)  # existing studies keep their point ids


@pytest.mark.parametrize("text,key,words", [
    ('model = "two-layer"\nsetup = ["none", "tian2023"]\n', "[network].setup", "one setup"),
    ('model = "one-layer"\nsetup = "tian2023"\n', "[network].setup", "not used by one-layer"),
    ('model = "two-layer"\nsetup = "tian"\n', "[network].setup", "unknown setup"),
    ('model = "two-layer"\nbatch = 16\n', "[network].batch", "fresh_batches"),
    ('model = "two-layer"\nvocab = 4\ntokens_per_location = 5\n', "[network].tokens_per_location", "at most"),
    ('model = "two-layer"\nweight_decay = -0.1\n', "[network].weight_decay", ">= 0"),
])
def test_bad_tian2023_studies_name_the_key(tmp_path, text, key, words, capsys):
    from ufm.cli import main

    path = tmp_path / "s.toml"
    path.write_text("[network]\n" + text)
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ufm: error: {key}") and words in err[0], err


def test_a_study_point_trains_as_the_command_does(tmp_path, capsys):
    """A [network] point with the paper's options is `ufm network two-layer` with the same options."""
    from experiments.network_study import compute_network_point, validate_network
    from ufm.cli import main

    small = {"samples": 16, "locations": 3, "vocab": 5, "tokens_per_location": 2, "patterns": 3, "fixed": 2,
             "hidden": 2, "out_dim": 4, "batch": 8, "steps": 6}
    net, _ = validate_network({"model": "two-layer", "setup": "tian2023", "activation": "relu", **small})
    row, arrays = compute_network_point("p", net)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in small.items()]
    assert main(["network", "two-layer", "--setup", "tian2023", "--activation", "relu", *flags,
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["results"][0]
    for key in ("initial_loss", "final_loss", "token_coverage", "paper_score", "specialised_fraction"):
        assert row[key] == cli[key], key
    assert arrays["token_coverage"].dtype == bool and arrays["paper_score"].shape == (3, 5)


def test_specialisation_histogram_legend_carries_coverage_and_paper_score():
    from ufm import plotting

    fig = plotting.specialisation_histogram({"linear": [0.1, 0.5], "relu": [0.9, 0.95, 0.2]},
                                            coverage={"linear": 0.25, "relu": 1.0},
                                            paper_score={"relu": 0.998})
    texts = [t.get_text() for t in fig.legends[0].get_texts()]  # below the axes: long entries
    assert texts == ["linear (2 units; coverage 25%)", "relu (3 units; coverage 100%; paper score 1.00)"]
    plain = plotting.specialisation_histogram({"relu": [0.9]})
    assert [t.get_text() for t in plain.axes[0].get_legend().get_texts()] == ["relu (1 units)"]


def test_specialisation_histogram_counts_full_shares_a_round_off_above_1():
    """Regression: shares of 1 + 4e-16 (the V / (V - 1) scaling of a one-token unit) fell outside
    the last bin and were not drawn (49 of ReLU's 161 specialised units at seed 0 of the preset)."""
    from ufm import plotting

    fig = plotting.specialisation_histogram({"relu": [1 + 4e-16, 1 + 4e-16, 1.0, 0.5]})
    heights = fig.axes[0].patches[0].get_xy()[:, 1]
    assert heights.max() == 3
