"""No false certificate at any accepted parameter (issue 22, item 2): one registry-driven test.

For every loss in ``ufm.losses.LOSSES`` that has a certificate (``has_relaxation``), and for every
declared parameter at the ends of its accepted range (``Param.ends()``; the others at their
defaults), four kinds of unit embeddings are certified with
``solvers.certificate.certify_embeddings``:

* ``random``: random unit embeddings (three seeds);
* ``one_point``: every sample at one point;
* ``relabelled``: the optimum of ``solvers.solve.solve`` with two samples of different groups (and
  the same view) swapped, and under a random permutation, each randomly rotated; and the optimum
  rotated without relabelling (``optimum``), which must be certified where the solve certified it;
* ``noise``: the optimum plus noise of 1e-3 and 1e-6, renormalised;

and two more degenerate ones: every sample at one point in a generic direction (cosines that
round to 1 +- 1 ulp), and two antipodal points with each group's samples together. The solve's
own certificate is judged too.

Each verdict is judged independently of the project's certificate, by the oracle of
``tests/adversarial_oracle.py`` (every loss written again from DESIGN section 3 in longdouble, its
optimum by an own CVXPY program over the n x n Gram): the gap is value - optimum, the spread the
median of that gap over random configurations, and a configuration whose gap is at least
:data:`FALSE_CERT_RATIO` times the spread must not be certified. The optimum used is the lowest
oracle value among feasible points (the CVXPY solution made feasible, the solve's embeddings, the
configurations): an upper bound on the true optimum, so every gap is a lower bound on the true one
and a failure here is a certificate on a geometry that is provably that far from optimal.

A loss without a scalar objective (``scalar_objective`` False: alpha-CL) certifies a fixed point:
embeddings that globally minimise the fixed-alpha program at their own alpha. It is judged on that
program: with alpha frozen at the configuration, its value there minus its minimum over the
elliptope (the oracle's linear SDP), relative to the same frozen program's spread over random
configurations. Both are linear in alpha, so scaling alpha does not change the judgement.

Ranges: ``ends()`` gives the declared ends. Where an end is a strict minimum (not attained), the
smallest accepted value is found by bisection on the loss's own constructor (tau: the declared
minimum 5e-4), floored at minimum + 1e-6 max(|default|, 1). Where a parameter declares no maximum,
large values are tested as well, :data:`LARGE` x max(|default|, 1) (tau: 1e3 and 1e6); with no
minimum, their negatives. An end the project refuses must be refused by a one-line UFMInputError
naming the parameter's flag; the case is then skipped. A parameter that does not change the loss
at the others' defaults (KCL's s under the Gaussian kernel) is tested again under each choice of a
choice parameter where it does (found by evaluating the loss, not by name). Nothing here branches
on a loss's name: samples come from ``samples_kind``, the judgement from ``scalar_objective``, the
cases from ``params`` (a loss that declares none, like the spectral loss, is posed under each
``reduction``); a loss without a written oracle is judged by ``GenericOracle``.

Run time: about 6 s on two cores (every solve, CVXPY program and oracle optimum is cached per
loss and parameter value).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
from adversarial_oracle import GenericOracle, linear_sdp_min, oracle_for

from solvers.certificate import certify_embeddings
from solvers.solve import solve
from ufm.errors import UFMInputError
from ufm.losses import LOSSES
from ufm.params import REDUCTION
from ufm.problem import Problem
from ufm.samples import Samples

#: a configuration at least this fraction of the random configurations' spread above the optimum
#: must never be certified
FALSE_CERT_RATIO = 1e-4
#: a parameter without a declared maximum is also tested at each of LARGE x max(|default|, 1)
#: (tau: 1e3 and 1e6, where the issue found false certificates); with no minimum, their negatives
LARGE = (1e3, 1e6)
#: the smallest value tried above an unattained strict minimum, relative to max(|default|, 1)
SMALL = 1e-6
#: samples tried, in order, until the loss accepts them (small, so that d = n keeps the
#: relaxation tight and the CVXPY oracle is fast)
VIEW_SAMPLES = ((4, 2), (3, 3), (3, 2), (2, 2))
CLASS_SAMPLES = ((3, 3, 2),)
#: random configurations that measure the spread, and how many of them are certified
SPREAD_CONFIGS = 16
CERTIFIED_RANDOM = 3
NOISE = (1e-3, 1e-6)


class AdversarialNote(UserWarning):
    """Recorded, not failed: an honest "not certified" at the optimum where the solve did not
    certify it either, a numpy warning from the certificate, a problem with zero spread."""


# ---- helpers -----------------------------------------------------------------------------------------


def samples_for(loss) -> Samples | None:
    """Small samples of the loss's kind that it accepts (instances x views, else classes)."""
    if loss.samples_kind == "views":
        candidates = [Samples.instances_views(N, V) for N, V in VIEW_SAMPLES]
    else:
        candidates = [Samples.from_counts(c) for c in CLASS_SAMPLES]
    for s in candidates:
        try:
            loss.check_samples(s)
        except UFMInputError:
            continue
        return s
    return None


def unit_rows(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def random_rotation(rng, d) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def pad(H, d) -> np.ndarray:
    H = np.asarray(H, dtype=np.float64)
    out = np.zeros((H.shape[0], d))
    out[:, : min(d, H.shape[1])] = H[:, :d]
    return out


# ---- the cases: registry x parameters x ends -------------------------------------------------------


def _refusal(cls, name, value) -> UFMInputError | None:
    try:
        cls(**{name: value})
    except UFMInputError as err:
        return err
    return None


def _smallest_accepted(cls, p) -> float | None:
    """The smallest value above the strict minimum ``p.minimum`` that the loss accepts (within
    a relative 1e-12, then rounded up to three significant digits while still accepted)."""
    scale = max(abs(float(p.default)), 1.0)
    floor = p.minimum + SMALL * scale
    if _refusal(cls, p.name, floor) is None:
        return floor
    hi = float(p.default)
    if _refusal(cls, p.name, hi) is not None:
        return None
    lo = floor
    for _ in range(200):
        mid = math.sqrt(lo * hi) if lo > 0 else 0.5 * (lo + hi)
        if _refusal(cls, p.name, mid) is None:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * abs(hi):
            break
    for digits in (1, 2, 3):
        nice = float(f"{hi:.{digits - 1}e}")
        for cand in (nice, nice + 10 ** (math.floor(math.log10(abs(nice))) - digits + 1)):
            if lo < cand <= hi * (1 + 1e-2) and _refusal(cls, p.name, cand) is None:
                return cand
    return hi


def param_ends(cls, p) -> list:
    """Values of ``p`` to test: its declared ends, the smallest accepted value above an
    unattained strict minimum, and a large value where no maximum is declared."""
    out = list(p.ends())
    if p.kind == "choice":
        return out
    scale = max(abs(float(p.default)), 1.0)
    if p.minimum is not None and p.strict and p.minimum in out:
        small = _smallest_accepted(cls, p)
        if small is not None:
            out.append(small)
    if p.maximum is None:
        out.extend(big * scale for big in LARGE)
    if p.minimum is None:
        out.extend(-big * scale for big in LARGE)
    if p.kind == "int":
        out = [int(round(v)) for v in out]
    seen, unique = set(), []
    for v in out:
        if v not in seen:
            seen.add(v)
            unique.append(v)
    return unique


def _value_at(cls, settings: dict, H_list) -> list | None:
    """The loss's own values at fixed random embeddings (None if refused or not posable)."""
    try:
        loss = cls(**settings)
    except UFMInputError:
        return None
    samples = samples_for(loss)
    if samples is None:
        return None
    try:
        return [loss.value(unit_rows(H[: samples.n, : samples.n]), samples) for H in H_list]
    except Exception:  # noqa: BLE001 - a value that cannot be computed counts as a change
        return [math.nan]


def _inert(cls, p, ends, context: dict) -> bool:
    """Whether ``p`` leaves the loss unchanged at its ends under ``context`` (the other
    parameters at their defaults otherwise): then it needs a context where it is live."""
    rng = np.random.default_rng(3)
    H_list = [unit_rows(rng.standard_normal((16, 16))) for _ in range(2)]
    base = _value_at(cls, dict(context), H_list)
    if base is None:
        return False
    seen = False
    for v in ends:
        other = _value_at(cls, {**context, p.name: v}, H_list)
        if other is None:
            continue
        seen = True
        if not np.allclose(other, base, rtol=1e-12, atol=0.0, equal_nan=True):
            return False
    return seen


def _cases() -> list:
    """(loss, parameter, value, context) for every declared parameter at its ends, the others at
    their defaults; a parameter that changes nothing there (KCL's s under the default kernel) is
    tested again under each non-default choice of a choice parameter where it does."""
    cases = []

    def add(cls, p, value, context=()):
        text = value if isinstance(value, str) else f"{value:g}"
        where = "".join(f"[{k}={v}]" for k, v in context)
        cases.append(pytest.param(cls.name, p.name, value, context, id=f"{cls.name}-{p.name}={text}{where}"))

    for cls in LOSSES.values():
        if not cls().has_relaxation:  # no certificate at its defaults: nothing to judge
            continue
        # a loss that declares no parameter (spectral) is posed under each reduction instead
        for p in cls.params or (REDUCTION,):
            ends = param_ends(cls, p)
            for value in ends:
                add(cls, p, value)
            if p.kind == "choice" or not _inert(cls, p, ends, {}):
                continue
            for c in cls.params:
                if c.kind != "choice" or c is p:
                    continue
                for choice in c.choices:
                    if choice != c.default and not _inert(cls, p, ends, {c.name: choice}):
                        for value in ends:
                            add(cls, p, value, ((c.name, choice),))
    return cases


CASES = _cases()


# ---- one case: samples, oracle, solve, optimum -------------------------------------------------------


class Case:
    """Everything a (loss, parameter value) needs, computed once."""

    def __init__(self, loss):
        self.loss = loss
        self.samples = samples_for(loss)
        if self.samples is None:
            pytest.skip(f"{loss.name} accepts none of the small samples tried")
        self.n = self.d = self.samples.n
        self.oracle = oracle_for(loss, self.samples)
        self.scalar = bool(loss.scalar_objective)
        self.result = solve(Problem(loss, self.samples))
        H = None if self.result.geometry is None else self.result.embeddings(lift=True)
        self.H_solve = None if H is None else pad(H, self.d)
        rng = np.random.default_rng(20240622)
        self.spread_configs = [unit_rows(rng.standard_normal((self.n, self.d)))
                               for _ in range(SPREAD_CONFIGS)]
        self.notes: list[str] = []
        if self.scalar:
            try:
                self.sdp_value, H_sdp = self.oracle.optimum()
            except Exception as err:  # noqa: BLE001 - CVXPY cannot pose every extreme
                self.sdp_value, H_sdp = float("nan"), None
                self.notes.append(f"the oracle's CVXPY program failed ({type(err).__name__}: {err}); "
                                  "optimum from the solve's embeddings alone")
            candidates = [self.oracle.value(h) for h in (H_sdp, self.H_solve) if h is not None]
            self.fstar = min(candidates) if candidates else float("nan")
            self.random_gaps = np.array([self.oracle.value(h) - self.fstar for h in self.spread_configs])

    def judge(self, H) -> tuple[float, float]:
        """(gap, spread) of H: value - optimum and the median of that over random
        configurations (scalar objective); for a fixed point, the same on the fixed-alpha program
        frozen at H's own alpha."""
        if self.scalar:  # longdouble: values beyond float64's range stay finite
            gap = self.oracle.value(H) - self.fstar
            return gap, np.median(self.random_gaps)
        C = self.oracle.frozen(H)
        if not np.any(C):  # alpha = 0: nothing to optimise (no anchor has a live weight)
            return 0.0, 0.0
        at = float(np.sum(C * (H @ H.T)))
        low = min(linear_sdp_min(C), at)
        gaps = [float(np.sum(C * (R @ R.T))) - low for R in self.spread_configs]
        return at - low, float(np.median(gaps))


@functools.cache
def case_for(loss) -> Case:
    return Case(loss)


def configurations(case: Case) -> list[tuple[str, np.ndarray]]:
    """The four kinds of embeddings (kind, H), H of shape (n, d) in sample order."""
    rng = np.random.default_rng(7)
    n, d = case.n, case.d
    out = [(f"random[{i}]", case.spread_configs[i]) for i in range(CERTIFIED_RANDOM)]
    e = np.zeros((n, d))
    e[:, 0] = 1.0
    out.append(("one_point", e))
    u = unit_rows(rng.standard_normal((1, d)))
    out.append(("one_point[generic direction]", np.repeat(u, n, axis=0)))
    # two antipodal points, positives together (groups alternate)
    sign = np.where(case.samples.labels % 2 == 0, 1.0, -1.0)
    out.append(("two_points", sign[:, None] * np.repeat(u, n, axis=0)))
    if case.H_solve is None:
        return out
    Hs = case.H_solve
    out.append(("optimum", Hs @ random_rotation(rng, d)))
    # a permutation that is not a symmetry: sample 0 swapped with a sample of another group
    # (of the same view, if there are views)
    y, v = case.samples.labels, case.samples.views
    other = (y != y[0]) & (True if v is None else (v == v[0]))
    j = int(np.flatnonzero(other)[0])
    perm = np.arange(n)
    perm[[0, j]] = [j, 0]
    out.append((f"relabelled[swap 0<->{j}]", Hs[perm] @ random_rotation(rng, d)))
    out.append(("relabelled[random permutation]", Hs[rng.permutation(n)] @ random_rotation(rng, d)))
    for sigma in NOISE:
        out.append((f"noise[{sigma:g}]", unit_rows(Hs + sigma * rng.standard_normal((n, d)))))
    return out


def make_loss(name, param, value, context=()):
    """The loss with one parameter set (and the context's), or a skip where the project refuses
    that value: a refusal must be a one-line UFMInputError naming a parameter set here."""
    cls = LOSSES[name]
    flags = {p.name: p.flag for p in (*cls.params, REDUCTION)}
    settings = {**dict(context), param: value}
    try:
        loss = cls(**settings)
    except UFMInputError as err:
        named = {flags[k] for k in settings}
        assert err.argument in named, f"refusal of {settings} names {err.argument!r}, not one of {named}"
        assert "\n" not in str(err), f"refusal is not one line: {err}"
        pytest.skip(f"refused by the project: {err}")
    if not loss.has_relaxation:
        pytest.skip(f"{name} with {settings} has no convex relaxation: no certificate to judge")
    return loss


# ---- the test ---------------------------------------------------------------------------------------


def _fmt(cert) -> str:
    return f"certified={cert.certified}, gap_bound={cert.gap_bound:.3g}, reason={cert.reason!r}"


@pytest.mark.parametrize("name,param,value,context", CASES)
def test_no_false_certificate(name, param, value, context):
    loss = make_loss(name, param, value, context)
    try:
        case = case_for(loss)
    except UFMInputError as err:
        assert "\n" not in str(err)
        pytest.skip(f"solve refused: {err}")
    failures, notes = [], list(case.notes)
    solve_cert = case.result.certificate
    checks = [("solve (its own certificate)", case.H_solve, solve_cert)] if case.H_solve is not None else []
    for kind, H in configurations(case):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cert = certify_embeddings(loss, H, case.samples)
        except Exception as err:  # noqa: BLE001 - any exception is a failure to report
            failures.append(f"{kind}: certify_embeddings raised {type(err).__name__}: {err}")
            continue
        for w in {f"{w.category.__name__}: {w.message}" for w in caught}:
            notes.append(f"{kind}: certify_embeddings warned {w}")
        checks.append((kind, H, cert))
    for kind, H, cert in checks:
        gap, spread = case.judge(H)
        if np.isnan(gap) or np.isnan(spread):
            failures.append(f"{kind}: the oracle could not judge (gap {gap}, spread {spread})")
            continue
        if spread <= 0:
            notes.append(f"{kind}: zero spread (the loss does not depend on the geometry here)")
            continue
        ratio = gap / spread if np.isfinite(gap) else math.inf
        where = (f"{kind}: oracle gap {gap:.3g}, spread {spread:.3g}, gap/spread {ratio:.3g}; "
                 f"project {_fmt(cert)}")
        if ratio <= -FALSE_CERT_RATIO:
            failures.append("BELOW THE OPTIMUM (the solve and the oracle's SDP missed it) " + where)
        if cert.certified and ratio >= FALSE_CERT_RATIO:
            failures.append("FALSE CERTIFICATE " + where)
        elif kind == "optimum" and not cert.certified and ratio < FALSE_CERT_RATIO:
            if solve_cert.certified:
                failures.append("optimum NOT CERTIFIED although the solve certified it: " + where)
            else:
                notes.append("optimum not certified (nor was the solve): " + where)
    for note in notes:
        warnings.warn(AdversarialNote(f"{name} {param}={value} {dict(context)}: {note}"), stacklevel=1)
    head = f"{name} with {param}={value} {dict(context)} on {case.samples.describe()}:\n  "
    assert not failures, head + "\n  ".join(failures)


@pytest.mark.parametrize("name,param,value,context", CASES)
def test_solve_value_matches_oracle(name, param, value, context):
    """The project's solve value equals the oracle's value at its embeddings (to 1e-9 relative,
    plus 1e-8 of the spread, or without a scalar objective of sum alpha, plus 1e-12 n for
    round-off around 0), and with a scalar objective it is no more than 1e-4 of the spread above
    the oracle's optimum."""
    loss = make_loss(name, param, value, context)
    try:
        case = case_for(loss)
    except UFMInputError as err:
        pytest.skip(f"solve refused: {err}")
    if case.H_solve is None:
        pytest.skip("degenerate problem: no geometry")
    mine = case.oracle.value(case.H_solve)
    theirs = case.result.value
    scale = np.median(case.random_gaps) if case.scalar else case.oracle.scale(case.H_solve)
    tol = 1e-9 * max(abs(mine), abs(theirs)) + 1e-8 * scale + 1e-12 * case.n
    assert abs(mine - theirs) <= tol, (
        f"solve value {theirs!r}, oracle at its embeddings {mine!r} (scale {scale:.3g})"
    )
    if case.scalar:
        assert mine - case.fstar <= FALSE_CERT_RATIO * scale, (
            f"solve value {mine!r} above the oracle's optimum {case.fstar!r} (spread {scale:.3g})"
        )


def test_every_certified_loss_is_covered():
    """Every registered loss with a certificate has cases."""
    covered = {c.values[0] for c in CASES}
    for cls in LOSSES.values():
        if cls().has_relaxation:
            assert cls.name in covered


@pytest.mark.parametrize("name", [n for n, c in LOSSES.items() if c().has_relaxation])
def test_generic_oracle_agrees(name):
    """The fallback a new loss would get (GenericOracle, from the loss's own interface) judges
    like the written oracle: same value, same optimal value, same fixed program. (Its CVXPY
    point need not realise the loss where the relaxation is a minorant: KCL's leaves views free.)"""
    loss = LOSSES[name]()
    samples = samples_for(loss)
    mine, generic = oracle_for(loss, samples), GenericOracle(loss, samples)
    rng = np.random.default_rng(5)
    H = unit_rows(rng.standard_normal((samples.n, samples.n)))
    if loss.scalar_objective:
        a, b = mine.value(H), generic.value(H)
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12)
        case = case_for(loss)
        low, _ = generic.optimum()
        assert abs(low - case.fstar) <= 1e-6 * float(np.median(case.random_gaps))
    else:
        assert np.allclose(generic.frozen(H), mine.frozen(H), atol=1e-9)
