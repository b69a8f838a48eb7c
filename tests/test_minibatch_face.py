"""Mini-batch programs at every tau (tied starts, one solve per batch-graph component) and their
optimal face (``optimum_unique``, the lowest rank, a representative that holds of some optimum).

Oracles: the numpy SupCon of ``oracles`` at hand-made optima, the full-batch program of each
batch solved by clarabel on its own, and the exact certificate of the whole program."""

import json
import warnings

import numpy as np
import oracles
import pytest

from solvers import certify_embeddings, solve
from solvers.convex import _run
from solvers.face import optimal_face, unique_on_block
from ufm import Problem, Samples, get_loss
from ufm.cli import main
from ufm.samples import balanced_batches, random_batches

#: counts 3, 3, 2: both batches split a class; classes 0 and 2 never meet
SPLIT = [[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]]
#: counts 3, 3, 2: one batch of two classes, four samples in no batch
UNCOVERED = [[0, 1, 3, 4]]


def batch_sum(H, labels, batches, tau):
    """The mini-batch SupCon, summed over batches by hand (numpy oracle)."""
    return sum(oracles.supcon(H[np.asarray(b)], labels[np.asarray(b)], tau) for b in batches)


@pytest.mark.parametrize("tau", [0.02, 0.05, 1.0, 100.0])
def test_split_batches_certify_at_the_collapsed_optimum_at_every_tau(tau):
    samples = Samples.from_counts((3, 3, 2)).with_batches(SPLIT)
    res = solve(Problem(get_loss("supcon", tau=tau), samples))
    assert res.certificate.certified
    # the optimum: classes 0 and 2 on one point, class 1 opposite (they never meet)
    H = np.zeros((8, 2))
    H[:, 0] = [1, 1, 1, -1, -1, -1, 1, 1]
    assert res.value == pytest.approx(batch_sum(H, samples.labels, SPLIT, tau), rel=1e-12)
    assert res.collapsed
    np.testing.assert_allclose(res.class_gram(), [[1, -1, 1], [-1, 1, -1], [1, -1, 1]], atol=1e-6)
    assert res.face["optimum_unique"] is True
    assert res.iterations < 1000  # the untied route crawled: 20,023 iterations at tau 0.05, uncertified


def test_a_conic_solve_asked_for_keeps_the_certified_tied_point():
    samples = Samples.from_counts((3, 3, 2)).with_batches(SPLIT)
    res = solve(Problem(get_loss("supcon", tau=0.05), samples), solver="clarabel")
    assert res.certificate.certified and res.solver == "clarabel+tied"
    assert any(note.startswith("clarabel status:") for note in res.notes)


def test_uncovered_samples_make_the_optimum_not_unique_and_tight_is_decided_on_the_face():
    samples = Samples.from_counts((3, 3, 2)).with_batches(UNCOVERED)
    loss = get_loss("supcon", tau=1.0)
    res = solve(Problem(loss, samples, dim=2))
    assert res.certificate.certified
    face = res.face
    assert face["optimum_unique"] is False
    assert face["batch_components"] == 5 and face["samples_in_no_batch"] == 4
    assert face["lowest_rank"] == 1 and face["lowest_rank_exact"]
    # the representative shown is collapsed and of rank 1: tight in dimension 2 (and 1)
    assert res.rank == 1 and res.collapsed and res.relaxation_tight is True
    # the loss sees two samples of classes 0 and 1 each: its optimum is that problem's
    alone = solve(Problem(loss, Samples.from_counts((2, 2))))
    assert res.value == pytest.approx(alone.value, rel=1e-12)
    # and what is shown is itself an optimum of the whole program
    H = res.embeddings(lift=True)
    cert = certify_embeddings(loss, H, samples, 1e-6)
    assert cert.certified
    assert cert.value == pytest.approx(batch_sum(H, samples.labels, UNCOVERED, 1.0), rel=1e-12)


def test_uncovered_samples_report_says_not_unique(tmp_path, capsys):
    path = tmp_path / "b.json"
    path.write_text(json.dumps(UNCOVERED))
    args = ["solve", "--counts", "3,3,2", "--tau", "1", "--batches", str(path), "--dim", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "optimum unique     no" in out
    assert "tight in dim 2     yes" in out
    assert "NOT collapsed" not in out and "lowest on the optimal face" in out
    assert main([*args, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["optimum_unique"] is False and d["lowest_rank"] == 1 and d["relaxation_tight"] is True


def test_one_batch_of_every_sample_is_the_full_problem_and_unique():
    loss = get_loss("supcon", tau=0.3)
    samples = Samples.from_counts((3, 3, 2))
    res = solve(Problem(loss, samples.with_batches([range(8)])))
    full = solve(Problem(loss, samples))
    assert res.certificate.certified
    assert res.value == pytest.approx(full.value, rel=1e-12)
    assert res.face["optimum_unique"] is True and res.face["batch_components"] == 1


def test_balanced_batches_solve_one_composition_and_show_a_collapsed_optimum():
    loss = get_loss("supcon", tau=0.1)
    base = Samples.from_counts((4, 4, 4))
    samples = base.with_batches(balanced_batches(base, 6, seed=0))
    res = solve(Problem(loss, samples))
    assert res.certificate.certified and res.solver == "components"
    assert any("1 distinct composition(s)" in note for note in res.notes)
    one = solve(Problem(loss, Samples.from_counts((2, 2, 2))))
    assert res.value == pytest.approx(2 * one.value, rel=1e-12)
    assert res.face["optimum_unique"] is False and res.face["batch_components"] == 2
    # the batches' simplices aligned: the collapsed simplex of the full problem is an optimum
    assert res.collapsed and res.rank == 2
    np.testing.assert_allclose(res.class_gram(), 1.5 * np.eye(3) - 0.5, atol=1e-9)


@pytest.mark.parametrize("tau", [0.02, 0.1, 1.0])
def test_random_partition_is_the_sum_of_its_batches_solved_by_clarabel(tau):
    loss = get_loss("supcon", tau=tau)
    base = Samples.from_counts((12, 12, 12))
    batches = random_batches(base, 12, seed=0)
    res = solve(Problem(loss, base.with_batches(batches)))
    assert res.certificate.certified
    each = [solve(Problem(loss, base.subset(b)), method="full", solver="clarabel").value for b in batches]
    assert res.value == pytest.approx(sum(each), rel=1e-7)


def test_two_hundred_samples_at_small_tau_certify_by_components():
    base = Samples.from_counts((20,) * 10)
    samples = base.with_batches(random_batches(base, 40, seed=0))
    res = solve(Problem(get_loss("supcon", tau=0.02), samples), compare_full_batch=False)
    assert res.certificate.certified and res.solver == "components"
    assert res.face["optimum_unique"] is False and res.face["batch_components"] == 5
    # the components side by side in one subspace: the rank of the largest block, not their sum
    blocks = [np.linalg.matrix_rank(res.geometry.H[b], tol=1e-6) for b in samples.batches]
    assert res.face["lowest_rank"] == res.rank == max(blocks)


def test_mangasarian_test_on_a_block():
    assert unique_on_block(np.diag([0.0, 1.0, 1.0]))[0] is True
    unique, why = unique_on_block(np.zeros((3, 3)))  # null(S) of dimension 3: six unknowns, three rows
    assert unique is None and "cannot be injective" in why
    unique, why = unique_on_block(np.diag([0.0, 1e-8, 1.0]))
    assert unique is None and "not separated" in why


def test_an_uncertified_point_says_nothing_of_the_face(rng):
    samples = Samples.from_counts((3, 3, 2)).with_batches(SPLIT)
    H = rng.standard_normal((8, 3))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    face = optimal_face(get_loss("supcon", tau=0.5), samples, H, 1e-6, certified=False)
    assert face.unique is None and face.components == 1


class _Inaccurate:
    """A stand-in for a CVXPY problem whose solve warns as CVXPY does."""

    status, value, solver_stats = "optimal_inaccurate", 1.0, None

    def solve(self, **_):
        warnings.warn("Solution may be inaccurate. Try another solver, adjusting the solver settings, "
                      "or solve with verbose=True for more information.", UserWarning, stacklevel=1)


def test_a_conic_solver_warning_becomes_a_note_in_our_words():
    pytest.importorskip("cvxpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes to the user
        sol = _run(_Inaccurate(), "clarabel")
    said = sol.describe("clarabel")
    assert "stopped short of its tolerances" in said and "certified independently" in said
    assert "Try another solver" not in said


def test_lambda_min_of_a_permuted_block_diagonal_matrix_is_numpys(rng):
    from solvers.certificate import _lambda_min

    A, B = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    S = np.zeros((8, 8))
    S[:4, :4], S[4:7, 4:7], S[7, 7] = A + A.T, B + B.T, -0.25
    perm = rng.permutation(8)
    S = S[np.ix_(perm, perm)]
    lam, blocks = _lambda_min(S)
    assert blocks == 3
    assert lam == pytest.approx(np.linalg.eigvalsh(S)[0], abs=1e-12)


def test_a_non_unique_report_of_an_uncertified_point_never_says_optimum_shown():
    from ufm.cli.report import format_solve

    samples = Samples.from_counts((3, 3, 2)).with_batches(UNCOVERED)
    payload = solve(Problem(get_loss("supcon", tau=1.0), samples)).to_dict()
    assert "optimum shown" in format_solve(payload) or "some optimum" in format_solve(payload)
    payload["certificate"]["certified"] = False
    text = format_solve(payload)
    assert "optimum shown" not in text and "some optimum" not in text
    assert "point shown (not certified)" in text


def test_an_unknown_uniqueness_is_never_reported_as_not_unique():
    """optimum_unique "unknown" (an uncertified point) printed "the optimum is not unique" and
    "other optima have others": claims of the optimal set that nothing had shown."""
    from ufm.cli.report import format_solve

    samples = Samples.from_counts((3, 3, 2)).with_batches([[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]])
    payload = solve(Problem(get_loss("supcon", tau=1.0), samples)).to_dict()
    assert payload["optimum_unique"] is True
    payload["certificate"]["certified"] = False
    payload["optimum_unique"] = "unknown"
    text = format_solve(payload)
    assert "not unique" not in text and "have others" not in text
    assert "other optima not ruled out" in text
    assert "optimal value" not in text and "not certified optimal" in text
