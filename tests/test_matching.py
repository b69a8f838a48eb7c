"""The landscape census counts minima up to the problem's relabellings and rotation (issue 16):
copies built by hand are one minimum (with the map found), genuinely different configurations
with equal value or equal distance multisets are two, and verify's census uses it."""

import json

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from solvers.verify import SAME_POINT_TOL, verify
from ufm.losses import get_loss
from ufm.matching import Relabellings, census, find_map
from ufm.metrics import gram_distance
from ufm.problem import Problem
from ufm.samples import Samples


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _orthogonal(d, seed, reflect=False):
    Q = special_ortho_group.rvs(d, random_state=seed)
    if reflect:
        Q[:, 0] *= -1
    return Q


def _class_relabelling(counts, rng):
    """A permutation of stored rows in the class group: inside every class, and of classes of
    equal size (counts must contain two equal sizes for that part to move)."""
    counts = list(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    target = list(range(len(counts)))
    for size in set(counts):
        same = [c for c in range(len(counts)) if counts[c] == size]
        shuffled = list(rng.permutation(same))
        for c, c2 in zip(same, shuffled, strict=True):
            target[c] = c2
    perm = np.empty(sum(counts), dtype=np.int64)
    for c, c2 in enumerate(target):
        perm[starts[c]:starts[c] + counts[c]] = starts[c2] + rng.permutation(counts[c])
    return perm


def _check_map(A, B, match, group):
    """The returned map does what it says: A Q ~ B[perm], perm a bijection inside the group."""
    perm, Q = match.permutation, match.rotation
    assert sorted(perm) == list(range(A.shape[0]))
    np.testing.assert_allclose(Q @ Q.T, np.eye(Q.shape[0]), atol=1e-10)
    assert np.linalg.norm(A @ Q - B[perm]) <= 1e-6 * np.linalg.norm(B)
    assert gram_distance(A, B[perm]) <= SAME_POINT_TOL
    if group.kind == "classes":  # class of a sample's image has its class's size, and classes move whole
        y = group.labels
        sizes = np.bincount(y)
        assert (sizes[y[perm]] == sizes[y]).all()
        for c in range(sizes.size):
            assert np.unique(y[perm[y == c]]).size == 1
    if group.kind == "instances_views":
        N, V = group.grid
        inst, view = perm // V, perm % V
        assert (inst.reshape(N, V) == inst.reshape(N, V)[:, :1]).all()  # instances move whole
        assert (view.reshape(N, V) == view.reshape(N, V)[:1]).all()  # one view permutation for all


@pytest.mark.parametrize("reflect", [False, True])
def test_relabelled_rotated_class_copy_is_one_minimum(reflect):
    counts = (4, 4, 3, 3, 2)
    samples = Samples.from_counts(counts)
    group = Relabellings.of(get_loss("supcon"), samples)
    rng = np.random.default_rng(0)
    A = _unit(rng.standard_normal((samples.n, 4)))
    perm = _class_relabelling(counts, rng)
    assert (perm != np.arange(samples.n)).any()
    B = np.empty_like(A)
    B[perm] = A @ _orthogonal(4, 1, reflect)  # B[perm[i]] = rotated A[i]
    assert gram_distance(A, B) > 0.1  # not the same without the relabelling
    dec = find_map(A, B, group, SAME_POINT_TOL)
    assert dec.match is not None and dec.match.relabelled
    _check_map(A, B, dec.match, group)


def test_instances_views_copy_is_one_minimum():
    samples = Samples.instances_views(7, 2)
    group = Relabellings.of(get_loss("dhel"), samples)
    assert group.kind == "instances_views"
    rng = np.random.default_rng(3)
    A = _unit(rng.standard_normal((14, 3)))
    inst = rng.permutation(7)
    perm = (inst[:, None] * 2 + np.array([1, 0])[None, :]).ravel()  # instances permuted, views swapped
    B = np.empty_like(A)
    B[perm] = A @ _orthogonal(3, 2)
    dec = find_map(A, B, group, SAME_POINT_TOL)
    assert dec.match is not None
    _check_map(A, B, dec.match, group)


def test_a_relabelling_outside_the_group_is_not_a_map():
    """DHEL's group moves instances whole: exchanging the views of one instance only is not in it,
    and the copy so built is another configuration."""
    samples = Samples.instances_views(5, 2)
    group = Relabellings.of(get_loss("dhel"), samples)
    rng = np.random.default_rng(4)
    A = _unit(rng.standard_normal((10, 3)))
    B = A.copy()
    B[[0, 1]] = B[[1, 0]]  # views of instance 0 exchanged, the rest kept
    assert find_map(A, B, group, SAME_POINT_TOL).match is None
    # with a loss that does not use views, that exchange is inside a class: the same minimum
    cls_group = Relabellings.of(get_loss("infonce"), samples)
    dec = find_map(A, B, cls_group, SAME_POINT_TOL)
    assert dec.match is not None
    _check_map(A, B, dec.match, cls_group)


def test_equal_values_different_configurations_are_two():
    """Two configurations with the same value (one moved along a path until the values agree to
    1e-12) that no map relates are two minima."""
    loss = get_loss("supcon", tau=0.5)
    samples = Samples.from_counts((3, 3, 3))
    rng = np.random.default_rng(5)
    A = _unit(rng.standard_normal((9, 3)))
    B0 = _unit(rng.standard_normal((9, 3)))
    C = _unit(rng.standard_normal((9, 3)))
    fa = loss.value(A, samples)

    def f(s):
        return loss.value(_unit(B0 + s * C), samples) - fa

    grid = np.linspace(0, 20, 401)
    vals = np.array([f(s) for s in grid])
    j = np.flatnonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))
    assert j.size, "no crossing of the value on the path"
    lo, hi = grid[j[0]], grid[j[0] + 1]
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sign(f(mid)) == np.sign(f(lo)) else (lo, mid)
    B = _unit(B0 + lo * C)
    assert abs(loss.value(B, samples) - fa) <= 1e-10 * abs(fa)
    group = Relabellings.of(loss, samples)
    assert find_map(A, B, group, SAME_POINT_TOL).match is None
    c = census([A, B], [0, 1], group, SAME_POINT_TOL)
    assert len(c.representatives) == 2 and c.unresolved == 0


def test_homometric_configurations_are_two():
    """Points on a circle at {0,1,4,10,12,17} and {0,1,8,11,13,17} (x 2 pi / 40): the same multiset
    of pairwise angles (so the same sorted Gram entries, every invariant of the quick rejects
    that ignores which pair is which), but no rotation and relabelling maps one onto the other."""
    a = np.array([0, 1, 4, 10, 12, 17]) * 2 * np.pi / 40
    b = np.array([0, 1, 8, 11, 13, 17]) * 2 * np.pi / 40
    A = np.column_stack([np.cos(a), np.sin(a)])
    B = np.column_stack([np.cos(b), np.sin(b)])
    np.testing.assert_allclose(np.sort((A @ A.T).ravel()), np.sort((B @ B.T).ravel()), atol=1e-12)
    samples = Samples.from_counts((1,) * 6)  # one class per point: every relabelling is allowed
    group = Relabellings.of(get_loss("supcon"), samples)
    assert find_map(A, B, group, SAME_POINT_TOL).match is None
    # and the mirror image of A with its points relabelled is A itself
    perm = np.random.default_rng(6).permutation(6)
    Am = np.empty_like(A)
    Am[perm] = A * np.array([1.0, -1.0])
    dec = find_map(A, Am, group, SAME_POINT_TOL)
    assert dec.match is not None
    _check_map(A, Am, dec.match, group)


def test_minibatches_count_rotations_only():
    loss = get_loss("supcon")
    samples = Samples.from_counts((2, 2)).with_batches([np.array([0, 2]), np.array([1, 3])])
    group = Relabellings.of(loss, samples)
    assert group.kind == "rotations"
    rng = np.random.default_rng(7)
    A = _unit(rng.standard_normal((4, 2)))
    B = A[[1, 0, 2, 3]] @ _orthogonal(2, 3)  # a relabelling inside class 0: not a symmetry here
    assert find_map(A, B, group, SAME_POINT_TOL).match is None
    assert find_map(A, A @ _orthogonal(2, 4), group, SAME_POINT_TOL).match is not None


def test_dhel_octahedron_is_one_minimum():
    """DHEL, 6 pairs in d = 3: every restart reaches the octahedron, one minimum up to relabelling
    and rotation however many there are up to rotation alone."""
    problem = Problem(get_loss("dhel"), Samples.instances_views(6, 2))
    res = verify(problem, dim=3, restarts=12, seed=0)
    assert res.converged == 12
    assert res.distinct_minima == 1
    assert res.distinct_minima_up_to_rotation > 1  # the old count would have said so
    (m,) = res.minima
    assert m["restarts"] == 12 and m["kind"] == "local_min"
    # octahedron: the two views of each pair coincide, the 6 directions are +-e_i
    H = res.run.H[m["representative"]]
    U = H[0::2]
    np.testing.assert_allclose(np.abs(np.einsum("ij,ij->i", H[0::2], H[1::2])), 1.0, atol=1e-3)
    cos = np.sort(np.abs((U @ U.T)[np.triu_indices(6, 1)]))
    np.testing.assert_allclose(cos, [0.0] * 12 + [1.0] * 3, atol=1e-3)


def test_verify_reports_minima_and_maps(tmp_path):
    """JSON: minima best first, each restart's cluster points into them, counts add up; the
    arrays' maps carry each restart onto its minimum's representative in the user's row order."""
    problem = Problem.from_labels(np.array([2, 0, 1, 0, 2, 1, 0, 1, 2, 2]), tau=0.5)
    res = verify(problem, dim=2, restarts=6, seed=1)
    d = res.to_dict()
    json.dumps(d)
    assert d["distinct_minima"] == len(d["minima"]) <= d["distinct_minima_up_to_rotation"]
    assert sum(m["restarts"] for m in d["minima"]) == d["converged"]
    values = [m["value"] for m in d["minima"]]
    assert values == sorted(values)
    for m in d["minima"]:
        assert all(d["restarts"][i]["cluster"] == m["minimum"] for i in m["members"])
        assert d["restarts"][m["representative"]]["cluster"] == m["minimum"]
    arrays = res.arrays()
    H, perm, rot = arrays["restarts"], arrays["map_permutation"], arrays["map_rotation"]
    labels = arrays["labels"]
    for r, c in enumerate(arrays["cluster"]):
        if c < 0:
            continue
        rep = d["minima"][c]["representative"]
        assert gram_distance(H[r], H[rep][perm[r]]) <= SAME_POINT_TOL
        assert np.linalg.norm(H[r] @ rot[r] - H[rep][perm[r]]) <= 0.1 * np.linalg.norm(H[rep])
        sizes = np.bincount(labels)
        assert (sizes[labels[perm[r]]] == sizes[labels]).all()  # classes map onto classes of their size


def test_aligned_starts_have_equal_views_and_need_views():
    from solvers.verify import starts
    from ufm.errors import UFMInputError

    problem = Problem(get_loss("infonce"), Samples.instances_views(5, 3))
    H, kinds = starts(problem, 3, 4, seed=2, init="both")
    assert kinds == ["random", "aligned", "random", "aligned"]
    for r, kind in enumerate(kinds):
        views = H[r].reshape(5, 3, 3)
        equal = np.allclose(views, views[:, :1])
        assert equal == (kind == "aligned")
    np.testing.assert_allclose(np.linalg.norm(H, axis=-1), 1.0)
    with pytest.raises(UFMInputError, match="^init: "):  # the library names its parameter
        starts(Problem((3, 3), 0.5), 2, 2, seed=0, init="aligned")


def test_cli_init_aligned_refused_without_views(capsys):
    from ufm.cli import main

    assert main(["verify", "--counts", "3,3", "--init", "aligned", "--restarts", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init" in err[0]
    assert main(["verify", "--instances", "3", "--init", "sideways", "--restarts", "1"]) != 0
    assert "--init" in capsys.readouterr().err


def test_kcl_riesz_aligned_starts_reach_a_lower_minimum():
    """KCL with the Riesz kernel (s = 1), 12 pairs in d = 3: its minimum lies on aligned views
    (where its minorant equals it); aligned starts reach it, and the census says which start kind
    found each minimum."""
    problem = Problem(get_loss("kcl", kernel="riesz", s=1.0), Samples.instances_views(12, 2))
    res = verify(problem, dim=3, restarts=8, seed=0, init="both")
    best = res.minima[0]
    assert best["starts"].get("aligned", 0) >= 1
    aligned = [r.value for r in res.restarts if r.init == "aligned" and r.converged]
    random_ = [r.value for r in res.restarts if r.init == "random" and r.converged]
    assert min(aligned) < min(random_) - 1e-3
    assert sum(m["restarts"] for m in res.minima) == res.converged
    # every aligned start ends at one minimum, up to relabelling and rotation
    assert len({r.cluster for r in res.restarts if r.init == "aligned"}) == 1


def test_spectral_tight_frames_are_flat_minima():
    """Spectral, 8 pairs in d = 3: every restart reaches the proven optimum
    -2 + (N - d) / (d (N - 1)) on a continuum of tight frames; no relabelling relates the end
    points, and the census says they are flat (not isolated) instead of calling them distinct
    isolated minima."""
    problem = Problem(get_loss("spectral"), Samples.instances_views(8, 2))
    res = verify(problem, dim=3, restarts=4, seed=0)
    best = -2 + (8 - 3) / (3 * 7)
    assert all(abs(r.value - best) <= 1e-9 for r in res.restarts)
    assert res.flat_minima == res.distinct_minima >= 1
    assert all(m["kind"] == "flat_min" for m in res.minima)
