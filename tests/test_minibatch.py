"""Mini-batch losses: the sum of a loss over batches (index lists), against a brute-force sum of
the oracle over each batch; generated batches; solve and verify without a symmetry, with the
comparison against the full-batch optimum."""

import json

import numpy as np
import oracles
import pytest
import torch
from conftest import random_unit

from solvers import certify_embeddings, solve
from solvers.verify import verify
from ufm import Problem, Samples, get_loss
from ufm.cli import main
from ufm.errors import UFMInputError
from ufm.inputs import read_batches
from ufm.samples import balanced_batches, random_batches

BATCHES = [[0, 1, 4, 6], [2, 3, 5, 7, 9], [1, 8, 9, 0]]  # overlapping, a class split across batches


def brute_force(oracle, H, batches):
    return sum(oracle(H[np.asarray(b)], np.asarray(b)) for b in batches)


def assert_every_form_equals(loss, H, samples, ref, block):
    """The float64 value, the Gram form, the torch value and torch value-and-gradient (in blocks
    of ``block`` rows) all equal ``ref`` to 1e-12; returns the torch gradient."""
    assert loss.value(H, samples) == pytest.approx(ref, rel=1e-12)
    assert loss.gram_value(H @ H.T, samples) == pytest.approx(ref, rel=1e-12)
    Ht = torch.tensor(H)
    assert loss.torch_value(Ht, samples).item() == pytest.approx(ref, rel=1e-12)
    v, g = loss.torch_value_and_grad(Ht, samples, block=block)
    assert v.item() == pytest.approx(ref, rel=1e-12)
    return g


def test_supcon_mini_batch_value_is_the_sum_over_batches(rng):
    samples = Samples.from_counts((3, 3, 4)).with_batches(BATCHES)
    H = random_unit(rng, 10, 4)
    labels = samples.labels
    ref = brute_force(lambda Hb, b: oracles.supcon(Hb, labels[b], 0.3), H, BATCHES)
    loss = get_loss("supcon", tau=0.3)
    g = assert_every_form_equals(loss, H, samples, ref, block=2)
    Ha = torch.tensor(H).requires_grad_(True)
    loss.torch_value(Ha, samples).backward()
    torch.testing.assert_close(g, Ha.grad, rtol=1e-10, atol=1e-12)
    _, gG = loss.gram_value_and_grad(H @ H.T, samples)
    assert np.allclose(2 * gG @ H, g.numpy(), atol=1e-11)
    # the floor is the sum of the batches' floors (each class's samples inside the batch)
    floor = sum(c * np.log(c - 1) for b in BATCHES for c in np.bincount(labels[b]) if c >= 2)
    assert loss.floor(samples) == pytest.approx(floor, rel=1e-14)


@pytest.mark.parametrize(
    "name,oracle",
    [
        ("infonce", lambda H, y, v: oracles.infonce(H, y, v, 0.1, "all")),
        ("dhel", None),
    ],
)
def test_views_mini_batch_value_is_the_sum_over_batches(rng, name, oracle):
    base = Samples.instances_views(6, 2)
    batches = [np.r_[0:4, 8:10], np.r_[4:8, 10:12], np.r_[2:6]]
    samples = base.with_batches(batches)
    H = random_unit(rng, 12, 3)
    if name == "dhel":
        ref = sum(oracles.dhel(H[b][0::2], H[b][1::2], 0.3) for b in batches)
    else:
        ref = sum(oracle(H[b], base.labels[b], base.views[b]) for b in batches)
    loss = get_loss(name)
    assert loss.value(H, samples) == pytest.approx(ref, rel=1e-12)
    assert loss.torch_value_and_grad(torch.tensor(H), samples)[0].item() == pytest.approx(ref, rel=1e-12)


def test_generated_batches(rng):
    classes = Samples.from_counts((7, 5, 4))
    rb = random_batches(classes, 5, seed=3)
    assert sorted(np.concatenate(rb).tolist()) == list(range(16))
    assert [b.size for b in rb] == [5, 5, 5, 1]
    assert all(np.array_equal(a, b) for a, b in zip(rb, random_batches(classes, 5, seed=3), strict=True))
    bb = balanced_batches(classes, 6, seed=0)
    assert sorted(np.concatenate(bb).tolist()) == list(range(16)) and len(bb) == 3
    for c, count in enumerate((7, 5, 4)):
        per = [int(np.sum(classes.labels[b] == c)) for b in bb]
        assert max(per) - min(per) <= 1 and sum(per) == count
    views = Samples.instances_views(5, 2)
    for b in random_batches(views, 4, seed=1):  # instances stay whole
        assert np.all(np.bincount(views.labels[b])[np.unique(views.labels[b])] == 2)
    with pytest.raises(UFMInputError, match="multiple"):
        random_batches(views, 3, seed=0)


def test_batch_files_in_the_users_order(tmp_path):
    samples = Samples.from_labels(np.array(["b", "a", "b", "a", "c"]))  # class order a, b, c
    (tmp_path / "b.json").write_text(json.dumps([[0, 2, 4], [1, 3]]))
    got = read_batches(str(tmp_path / "b.json"), samples)
    # user rows 0, 2 are "b" (positions 2, 3), row 4 is "c" (position 4); rows 1, 3 are "a"
    assert [b.tolist() for b in got.batches] == [[2, 3, 4], [0, 1]]
    (tmp_path / "b.txt").write_text("0 2 4\n1,3\n")
    assert [b.tolist() for b in read_batches(str(tmp_path / "b.txt"), samples).batches] == [[2, 3, 4], [0, 1]]
    for text, what in (
        ("0 9\n", "out of range"),
        ("0 0 1\n", "twice"),
        ("1\n", "at least two"),
        ("0 x\n", "not an integer"),
    ):
        (tmp_path / "bad.txt").write_text(text)
        with pytest.raises(UFMInputError, match=what):
            read_batches(str(tmp_path / "bad.txt"), samples)


def test_one_batch_of_everything_is_the_full_batch_problem():
    counts = (4, 3, 3)
    full = Problem(get_loss("supcon", tau=0.5), Samples.from_counts(counts))
    one = full.with_samples(full.samples.with_batches([np.arange(10)]))
    res = solve(one)
    assert res.method == "full" and res.certificate.certified
    assert res.value == pytest.approx(solve(full).value, rel=1e-8)
    mb = res.to_dict()["minibatch"]
    assert mb["gram_distance_to_full_batch"] < 1e-4 and mb["collapsed"] and mb["full_batch_collapsed"]


def test_mini_batch_optimum_is_certified_and_compared():
    """Random batches: the n x n program (CLARABEL, then Burer-Monteiro), certified; the report
    says whether it stays collapsed and how far it is from the full-batch geometry."""
    problem = Problem(get_loss("supcon", tau=0.5), Samples.from_counts((4, 4, 4)))
    problem = problem.with_samples(problem.samples.with_batches(balanced_batches(problem.samples, 6, 0)))
    res = solve(problem)
    assert res.certificate.certified and res.symmetry.startswith("none")
    mb = res.to_dict()["minibatch"]
    assert {"collapsed", "gram_distance_to_full_batch", "class_cosine_difference", "full_batch_value"} <= set(
        mb
    )
    fact = solve(problem, solver="factored", compare_full_batch=False)  # Burer-Monteiro restarts alone
    assert fact.certificate.certified and fact.value == pytest.approx(res.value, rel=1e-7)
    H = res.embeddings(lift=True)
    assert certify_embeddings(problem.loss, H, problem.samples).certified
    v = verify(problem, dim=6, restarts=3, seed=0)
    assert v.fraction_global == 1.0


def test_mini_batch_cli(capsys):
    assert main(["solve", "--counts", "4,4,4", "--tau", "0.5", "--batches", "balanced:6", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["samples"]["batches"] == 2 and d["minibatch"]["batch_spec"].startswith("balanced:6")
    assert d["certificate"]["certified"]
    assert main(["solve", "--counts", "3,3", "--batches", "random:1"]) == 2
    assert "--batches" in capsys.readouterr().err


def test_mini_batch_solve_saves_its_arrays(tmp_path, capsys):
    """--out for a loss without a symmetry (explicit embeddings): the class means realise the
    class-mean Gram (this crashed: EmbeddingGeometry had no class_means)."""
    out = tmp_path / "o"
    assert main(["solve", "--counts", "4,4,4", "--tau", "0.5", "--batches", "balanced:6", "--out", str(out),
                 "--lift", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    arrays = np.load(out / "arrays.npz")
    M = arrays["class_means"]
    np.testing.assert_allclose(M / np.linalg.norm(M, axis=1, keepdims=True) @ (M / np.linalg.norm(
        M, axis=1, keepdims=True)).T, np.array(d["class_gram"]), atol=1e-9)
    H = arrays["embeddings"]
    np.testing.assert_allclose(np.linalg.norm(H, axis=1), 1.0, atol=1e-12)
