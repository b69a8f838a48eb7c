"""Global modulation (Tian 2023, section 6): the data model has its token classes and token
frequencies exactly, in both modes (shared tokens fixed by groups of patterns, the paper's; or
drawn per sample, frequency-matched), the score and the crossing steps match closed forms, and on
seeded default instances what the two-layer network learns first is measured: in neither mode do
the discriminative tokens lead (fixed: no consistent lead; drawn: the shared tokens lead for ReLU
units, linear units cross for neither class), with the figure drawing what it says and
``ufm network modulation`` printing it."""

import json

import numpy as np
import pytest

from solvers.networks.modulation import (
    ModulationResult,
    crossing_steps,
    median_step,
    token_scores,
    train_modulation,
)
from solvers.stop import StopReason
from ufm.errors import UFMInputError
from ufm.networks.data import pattern_data
from ufm.networks.modulation import BACKGROUND, DISCRIMINATIVE, SHARED, modulation_data


def _tokens(x, n, K, V):
    return x.reshape(n, K, V).argmax(axis=2)  # (n, K): the token at each location


@pytest.mark.parametrize("shared_by", [None, 2])
def test_modulation_data_has_its_classes_and_equal_token_frequencies(shared_by):
    n, K, V, G, D, S = 128, 7, 9, 4, 2, 3
    d = modulation_data(n, locations=K, vocab=V, patterns=G, discriminative=D, shared=S,
                        shared_by=shared_by, seed=3, shared_mode="drawn")
    s = G if shared_by is None else shared_by
    cls = d.token_class
    assert (cls == DISCRIMINATIVE).sum() == D * G and (cls == SHARED).sum() == S * G
    kinds = [set(row.tolist()) - {BACKGROUND} for row in cls]
    assert sorted(map(len, kinds)) == [0, 0] + [1] * (D + S)  # one class per structured location
    assert [len(d.tokens(c)) for c in ("discriminative", "shared")] == [D * G, S * G]
    t1, t2 = _tokens(d.x1, n, K, V), _tokens(d.x2, n, K, V)
    np.testing.assert_array_equal(np.bincount(d.pattern, minlength=G), n // G)  # balanced patterns
    for k, t in np.argwhere(cls != BACKGROUND):
        here1, here2 = t1[:, k] == t, t2[:, k] == t
        np.testing.assert_array_equal(here1, here2)  # fixed: kept in both views
        assert here1.sum() == n // G  # every discriminative and shared token: 1/G of the samples
        per_pattern = np.bincount(d.pattern[here1], minlength=G) / (n // G)  # P(t | g), empirically
        np.testing.assert_allclose(per_pattern, d.given[:, k, t])
        holders = np.count_nonzero(d.given[:, k, t])
        assert holders == (1 if cls[k, t] == DISCRIMINATIVE else s)
    wild = [k for k in range(K) if not kinds[k]]
    assert np.mean(t1[:, wild] != t2[:, wild]) > 0.75  # wildcards resampled: 8 in 9 differ for vocab 9
    if shared_by is None:  # shared tokens: the same distribution under every pattern (Delta = 0)
        shared = cls == SHARED
        np.testing.assert_allclose(d.given[:, shared], 1.0 / G)


@pytest.mark.parametrize("G, shared_by", [(4, None), (8, 2), (8, 4), (4, 4)])
def test_fixed_shared_tokens_are_fixed_by_their_group_and_as_frequent_as_it(G, shared_by):
    """The paper's shared tokens (bn_gen.py): one token per group of s patterns at a shared
    location, deterministic given the pattern, kept in both views, in s/G of the samples (default
    s = 2; s = G: one token in every sample)."""
    n, K, V, D, S = 160, 7, 9, 2, 2
    d = modulation_data(n, locations=K, vocab=V, patterns=G, discriminative=D, shared=S, shared_by=shared_by,
                        seed=4)
    s = 2 if shared_by is None else shared_by
    assert d.shared_mode == "fixed" and d.shared_by == s
    cls = d.token_class
    assert (cls == DISCRIMINATIVE).sum() == D * G and (cls == SHARED).sum() == S * G // s
    t1, t2 = _tokens(d.x1, n, K, V), _tokens(d.x2, n, K, V)
    np.testing.assert_array_equal(np.bincount(d.pattern, minlength=G), n // G)
    for k, t in np.argwhere(cls == SHARED):
        here = t1[:, k] == t
        np.testing.assert_array_equal(here, t2[:, k] == t)  # kept in both views
        assert here.sum() == n * s // G  # the frequency of its s patterns
        holders = np.flatnonzero(d.given[:, k, t])
        assert holders.size == s and set(d.given[holders, k, t]) == {1.0}  # fixed by s patterns, surely
        np.testing.assert_array_equal(here, np.isin(d.pattern, holders))  # present exactly with them
    for k in np.flatnonzero((cls != BACKGROUND).any(axis=1)):  # every structured location: a function of z
        for g in range(G):
            assert len(set(t1[d.pattern == g, k])) == 1
    if s == G:  # one group: the same token in every sample, a constant input
        shared_locations = np.flatnonzero((cls == SHARED).any(axis=1))
        assert all(len(set(t1[:, k])) == 1 for k in shared_locations)


def test_the_drawn_mode_is_the_model_before_shared_mode_bit_for_bit():
    """shared_mode="drawn" with the trainer's one pair of views (fresh_views=False) gives the
    numbers measured before the fixed mode and fresh views existed: seed 0, discriminative median
    crossing at step 41, shared at 18 (ReLU)."""
    d = modulation_data(128, seed=0, shared_mode="drawn")
    assert d.shared_by == d.patterns == 4
    r = train_modulation(d, "relu", seed=0, fresh_views=False).summary()
    assert (r["discriminative_step"], r["shared_step"]) == (41.0, 18.0)
    assert (r["discriminative_crossed"], r["shared_crossed"]) == (5, 6)
    assert r["shared_weight"] == pytest.approx(0.8558721526853088, abs=1e-9)


def test_modulation_data_is_seeded_and_a_two_views():
    a, b, c = modulation_data(64, seed=5), modulation_data(64, seed=5), modulation_data(64, seed=6)
    for key in ("x1", "x2", "pattern", "directions", "token_class", "given"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.x1, c.x1)
    assert a.n == 64 and a.dim == a.locations * a.vocab and a.patterns == 4
    np.testing.assert_allclose(np.linalg.norm(a.directions, axis=1), 1.0)


@pytest.mark.parametrize("kwargs, argument", [
    ({"n": 1}, "samples"),
    ({"locations": 3, "discriminative": 2, "shared": 2}, "locations"),
    ({"vocab": 3, "patterns": 4}, "vocab"),
    ({"patterns": 1}, "patterns"),
    ({"patterns": 6, "shared_by": 4}, "shared_by"),
    ({"shared_by": 1}, "shared_by"),
    ({"discriminative": 0}, "discriminative"),
    ({"shared": 1.5}, "shared"),
    ({"shared_mode": "random"}, "shared_mode"),
    ({"shared_mode": "fixed", "patterns": 5}, "shared_by"),  # default groups of 2 must divide 5
])
def test_modulation_data_refuses_bad_arguments_in_one_line(kwargs, argument):
    args = {"n": 32, **kwargs}
    with pytest.raises(UFMInputError) as err:
        modulation_data(args.pop("n"), **args)
    assert err.value.argument == argument and "\n" not in str(err.value)


def test_token_scores_on_a_hand_built_w():
    W = np.zeros((2, 2, 3))
    W[0, 0] = [3.0, 4.0, 0.0]  # norm 5: shares 0.6, 0.8, 0
    W[0, 1] = [-2.0, 0.0, 0.0]  # all on token 0, negative: silent for ReLU, 1 by magnitude
    W[1, 0] = [0.0, 0.0, -1.0]  # location 1: a zero unit and a negative one
    np.testing.assert_allclose(token_scores(W, "relu"), [[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(token_scores(W, "leaky_relu"), [[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(token_scores(W, "linear"), [[1.0, 0.8, 0.0], [0.0, 0.0, 1.0]])
    stacked = token_scores(np.stack([W, 2 * W]), "relu")  # scale-free, one row per recorded step
    assert stacked.shape == (2, 2, 3)
    np.testing.assert_allclose(stacked[1], stacked[0])


def test_crossing_steps_and_their_censored_median():
    steps = np.array([0, 10, 20, 30])
    scores = np.array([[0.1, 0.9, 0.2, 0.5],
                       [0.5, 0.9, 0.3, 0.85],
                       [0.9, 0.9, 0.4, 0.7],
                       [0.95, 0.9, 0.5, 0.6]])  # columns: tokens
    assert crossing_steps(steps, scores, 0.8) == [20, 0, None, 10]  # the first crossing, kept if it dips
    assert median_step([10, None, 30]) == 30  # never crossing counts as later than every step
    assert median_step([10, None]) is None and median_step([None, None, 5]) is None  # half never crossed
    assert median_step([4, 10]) == 7 and median_step([]) is None


def _synthetic_result() -> ModulationResult:
    steps = np.array([0, 5, 10])
    scores = np.array([[0.3, 0.4, 0.2, 0.3], [0.6, 0.9, 0.5, 0.5], [0.9, 0.95, 0.6, 0.85]])
    classes = ["discriminative", "discriminative", "shared", "shared"]
    return ModulationResult("relu", "infonce", 0.8, steps, scores, np.array([[0, 1], [0, 2], [1, 0], [1, 3]]),
                            classes, crossing_steps(steps, scores, 0.8), np.array([3.0, 2.0, 1.0]),
                            StopReason.ITERATION_LIMIT, 10, {"total": 0.1})


def test_summary_keys_and_values_on_a_synthetic_trajectory():
    s = _synthetic_result().summary()
    assert (s["discriminative_step"], s["shared_step"]) == (7.5, None)  # (5, 10); (10, never)
    assert (s["discriminative_crossed"], s["shared_crossed"]) == (2, 1)
    assert s["discriminative_weight"] == pytest.approx(0.925) and s["shared_weight"] == pytest.approx(0.725)
    assert s["threshold"] == 0.8 and s["steps"] == 10 and s["activation"] == "relu"
    d = json.loads(json.dumps(_synthetic_result().to_dict()))
    assert d["steps"] == [0, 5, 10] and d["shared"]["crossing"] == [None, 10]
    assert np.asarray(d["discriminative"]["scores"]).shape == (2, 3)  # tokens x recorded steps


def test_train_modulation_records_from_the_initial_weights():
    from ufm.networks.two_layer import TwoLayer

    d = modulation_data(32, seed=0)
    res = train_modulation(d, "relu", hidden=3, out_dim=4, steps=7, record_every=3, seed=2)
    np.testing.assert_array_equal(res.steps, [0, 3, 6, 7])
    W0 = TwoLayer.random(d.locations, d.vocab, 3, 4, "relu", 2).W.numpy()
    expected = token_scores(W0, "relu")[res.tokens[:, 0], res.tokens[:, 1]]
    np.testing.assert_allclose(res.scores[0], expected)
    assert res.values.shape == (8,) and res.values[-1] < res.values[0]
    assert res.classes.count("discriminative") == 8 and res.classes.count("shared") == 4  # fixed: 2 groups


def test_fresh_views_keep_the_fixed_tokens_and_redraw_the_wildcards():
    from solvers.networks.modulation import _fresh_views

    d = modulation_data(64, seed=1)
    draw = _fresh_views(d, 0)
    a, b = (draw().numpy().reshape(128, d.locations, d.vocab) for _ in range(2))
    base = np.stack([d.x1, d.x2], axis=1).reshape(128, d.locations, d.vocab)
    fixed = (d.token_class != BACKGROUND).any(axis=1)
    np.testing.assert_array_equal(a[:, fixed], base[:, fixed])
    np.testing.assert_array_equal(b[:, fixed], base[:, fixed])
    np.testing.assert_array_equal(a.sum(axis=2), 1.0)  # one token at every location
    assert np.mean(a[:, ~fixed].argmax(axis=2) != b[:, ~fixed].argmax(axis=2)) > 0.75  # 7 in 8 differ
    np.testing.assert_array_equal(_fresh_views(d, 0)().numpy(), a.reshape(128, -1))  # seeded


@pytest.mark.parametrize("kwargs, argument", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"),
    ({"record_every": 0}, "record_every"), ({"steps": 0}, "steps"),
    ({"weight_decay": -1.0}, "weight_decay"), ({"optimizer": "lbfgs"}, "optimizer"),
])
def test_train_modulation_refuses_bad_arguments(kwargs, argument):
    with pytest.raises(UFMInputError) as err:
        train_modulation(modulation_data(16, seed=0), **kwargs)
    assert err.value.argument == argument


def test_train_modulation_needs_modulation_data():
    with pytest.raises(UFMInputError) as err:
        train_modulation(pattern_data(16))
    assert err.value.argument == "data"


def _summary(mode: str, activation: str, seed: int) -> dict:
    data = modulation_data(128, seed=seed, shared_mode=mode)
    return train_modulation(data, activation, seed=seed).summary()


def test_drawn_shared_tokens_lead_for_relu_units_and_linear_units_cross_for_neither():
    """The frequency-matched model (shared tokens drawn per sample, kept across views: they vary
    from instance to instance), the defaults (128 samples, 300 steps, lr 0.001, wildcards drawn
    afresh every step), as the shipped study network_modulation measures (seeds 0-4): ReLU units
    learn the shared tokens first and most, the shared median crossing of 0.8 at steps 6.5-11.5
    in every seed, the discriminative one at 32.5 and 17 (seeds 0, 2) or never (half or more never
    crossing; seeds 1, 3, 4), the shared class ahead in the fraction of tokens crossed by 0.125-0.5
    in every seed; linear units' class medians never cross. Global modulation's discriminative lead
    does not show: the opposite does."""
    for seed, disc, shared in ((0, 32.5, 11.0), (2, 17.0, 8.0), (3, None, 6.5)):
        relu = _summary("drawn", "relu", seed)
        assert (relu["discriminative_step"], relu["shared_step"]) == (disc, shared)
        assert relu["crossed_lead"] <= -0.125 and relu["weight_lead"] < 0  # measured -0.125/-0.25/-0.5
        assert relu["shared_crossed_fraction"] >= 0.75
    linear = _summary("drawn", "linear", 0)
    assert linear["discriminative_step"] is None and linear["shared_step"] is None
    assert linear["shared_crossed"] == 0  # measured 0 of 8 (ReLU, seed 0: 6 of 8)


def test_fixed_neither_class_leads_consistently_and_relu_learns_more_discriminative_tokens_than_linear():
    """The paper's model (shared tokens fixed by pairs of the 4 patterns: twice as frequent as a
    discriminative token), the defaults, seeds 0-4 in the shipped study: no class leads
    consistently: the discriminative class ends ahead in median weight in seeds 0-2 (by 0.06-0.13),
    the shared one in seeds 3-4 (by 0.08-0.15), and in every seed half or more of one class or both
    never crosses (the median crossing undefined). The contrast with linear units is in how many
    discriminative tokens get a unit of their own: ReLU 25-62% of them, linear 12-38%, ReLU ahead in
    every seed."""
    relu0, relu3 = _summary("fixed", "relu", 0), _summary("fixed", "relu", 3)
    assert relu0["weight_lead"] > 0.05 and relu0["crossed_lead"] > 0  # measured +0.102, +0.25
    assert relu3["weight_lead"] < -0.05 and relu3["crossed_lead"] < 0  # measured -0.151, -0.375
    for r in (relu0, relu3):
        assert r["discriminative_step"] is None or r["shared_step"] is None
        assert r["shared_tokens"] == 4 and r["discriminative_tokens"] == 8
    for seed, relu in ((0, relu0), (3, relu3)):
        linear = _summary("fixed", "linear", seed)
        assert relu["discriminative_crossed"] > linear["discriminative_crossed"]  # measured 4 > 3, 3 > 2


def test_modulation_curves_draw_each_class_the_threshold_and_a_truthful_legend():
    from ufm.plotting.modulation import COLOURS, modulation_curves, modulation_panels

    r = _synthetic_result().to_dict()
    fig = modulation_curves(r)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels.count("_token") == 4  # one faint curve per token
    assert "discriminative (median of 2)" in labels and "shared (median of 2)" in labels
    assert "discriminative: median crossing, step 7.5" in labels
    assert not any(lab.startswith("shared: median crossing") for lab in labels)  # half never crossed
    threshold = next(line for line in ax.get_lines() if line.get_label() == "threshold 0.8")
    assert threshold.get_linestyle() == "--" and set(threshold.get_ydata()) == {0.8}
    median = next(line for line in ax.get_lines() if line.get_label() == "shared (median of 2)")
    np.testing.assert_allclose(median.get_ydata(), [0.25, 0.5, 0.725])
    assert median.get_color() == COLOURS["shared"]
    drawn = [a.get_label() for a in ax.get_lines() + ax.collections if not a.get_label().startswith("_")]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == sorted(drawn)
    assert ax.get_title() == "relu units"
    both = modulation_panels([r, {**r, "activation": "linear"}], title="global modulation")
    assert [a.get_title() for a in both.axes] == ["(a) relu units", "(b) linear units"]
    with pytest.raises(ValueError, match="scores"):
        modulation_curves({**r, "shared": {"scores": [[0.1, 0.2]]}})


# --------------------------------------------------------------------------- ufm network modulation

SMALL = ["--samples", "32", "--steps", "12"]


def test_cli_modulation_json_has_each_activations_summary(capsys):
    from ufm.cli import main

    assert main(["network", "modulation", *SMALL, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "modulation" and out["data"] == "modulation" and out["samples"] == 32
    assert list(out["modulation"]) == ["relu", "linear"]  # the mode's default activations
    assert out["data_model"] == {"locations": 6, "vocab": 8, "discriminative": 2, "shared": 2, "shared_by": 2,
                                 "shared_mode": "fixed"}
    training = out["training"]
    assert training["lr"] == 0.001 and training["steps"] == 12 and training["fresh_views"] is True
    for act, summary in out["modulation"].items():
        assert summary["activation"] == act and summary["steps"] == 12 and summary["threshold"] == 0.8
        for key in ("discriminative_step", "shared_step", "discriminative_weight", "shared_weight",
                    "discriminative_crossed", "shared_crossed", "weight_lead", "crossed_lead"):
            assert key in summary, key
        assert (summary["discriminative_tokens"], summary["shared_tokens"]) == (8, 4)
    # the library gives the same numbers for the same options
    lib = train_modulation(modulation_data(32, seed=0), "relu", steps=12, seed=0).summary()
    assert out["modulation"]["relu"]["shared_weight"] == pytest.approx(lib["shared_weight"], abs=1e-12)


def test_cli_modulation_table_and_plot(capsys, tmp_path):
    from ufm.cli import main

    fig = tmp_path / "m.png"
    assert main(["network", "modulation", *SMALL, "--activation", "relu", "--shared-mode", "drawn",
                 "--threshold", "0.6", "--plot", str(fig)]) == 0
    out = capsys.readouterr().out
    assert fig.is_file() and fig.stat().st_size > 10_000 and f"figure {fig}" in out
    assert "drawn, groups of 4" in out and "threshold 0.6" in out and "linear" not in out.split("\n", 1)[1]
    assert "discriminative median crossing" in out and "shared         median crossing" in out


def test_cli_modulation_says_which_class_led_only_when_both_medians_exist():
    from ufm.cli.modulation import led

    assert led({"discriminative_step": 7.5, "shared_step": 12.0}) == (
        "the discriminative tokens led: median crossing at step 7.5, the shared tokens' at step 12")
    assert led({"discriminative_step": 20.0, "shared_step": 8.0}).startswith("the shared tokens led")
    assert led({"discriminative_step": 5.0, "shared_step": 5.0}).startswith("neither class led")
    assert led({"discriminative_step": None, "shared_step": 8.0}) is None


@pytest.mark.parametrize("args, flag", [
    (["network", "modulation", "--threshold", "2"], "--threshold"),
    (["network", "modulation", "--threshold", "0"], "--threshold"),
    (["network", "modulation", "--shared-by", "3"], "--shared-by"),
    (["network", "modulation", "--shared-mode", "random"], "--shared-mode"),
    (["network", "modulation", "--record-every", "0"], "--record-every"),
    (["network", "modulation", "--discriminative", "3", "--shared", "4"], "--locations"),
    (["network", "modulation", "--fixed", "2"], "--fixed"),
    (["network", "modulation", "--restarts", "3"], "--restarts"),
    (["network", "modulation", "--data", "patterns"], "--data"),
    (["network", "modulation", "--setup", "tian2023"], "--setup"),
    (["network", "modulation", "--activation", "relu,relu"], "--activation"),
    (["network", "two-layer", "--threshold", "0.5"], "--threshold"),
    (["network", "one-layer", "--no-fresh-views"], "--fresh-views"),
    (["network", "one-layer", "--data", "modulation"], "--data"),
])
def test_cli_modulation_refuses_bad_options_in_one_line(capsys, args, flag):
    from ufm.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"ufm: error: {flag}:"), err


# --------------------------------------------------------------------------- the study

def test_a_modulation_study_takes_the_modes_defaults_and_refuses_other_models_keys():
    from experiments.network_study import validate_network
    from solvers.options import NETWORK_OPTIONS

    net, swept = validate_network({"model": "modulation"})
    assert swept == ["activation"] and net["activation"] == ["relu", "linear"]
    assert (net["samples"], net["lr"], net["steps"], net["vocab"]) == (128, 0.001, 300, 8)
    assert net["shared_mode"] == "fixed" and net["fresh_views"] is True and net["threshold"] == 0.8
    assert "shared_by" not in net  # its default depends on the mode
    assert not {"fixed", "restarts", "setup", "anchor", "tokens_per_location"} & set(net)
    assert net["discriminative"] == NETWORK_OPTIONS["discriminative"].default
    two, _ = validate_network({"model": "two-layer"})
    assert not {"threshold", "shared_mode", "discriminative", "fresh_views"} & set(two)
    bad = (({"model": "modulation", "fixed": 2}, "fixed"),
           ({"model": "two-layer", "threshold": 0.5}, "threshold"),
           ({"model": "modulation", "data": "patterns"}, "data"))
    for raw, key in bad:
        with pytest.raises(UFMInputError) as err:
            validate_network(raw)
        assert err.value.argument == f"[network].{key}"


def test_modulation_figures_belong_to_modulation_studies(tmp_path):
    from experiments.study import load_study

    path = tmp_path / "s.toml"
    path.write_text('[network]\nmodel = "two-layer"\nactivation = "relu"\n[[figure]]\nkind = "modulation"\n'
                    'file = "m.png"\n')
    with pytest.raises(UFMInputError, match="modulation draws the modulation model"):
        load_study(path)
    path.write_text('[network]\nmodel = "modulation"\nseed = [0, 1]\n[[figure]]\nkind = "modulation"\n'
                    'file = "m.png"\n')
    with pytest.raises(UFMInputError, match="select one value of seed"):
        load_study(path)
    path.write_text('[network]\nmodel = "modulation"\npatterns = [4, 6]\nshared_by = 4\n')
    with pytest.raises(UFMInputError) as err:  # before any work: 4 does not divide 6
        load_study(path)
    assert err.value.argument == "[network].shared_by"
