"""Benchmark of ``ufm solve``: time and accuracy of the full, reduced and orbit routes.

Baseline, run in the same process: the n x n relaxation written per anchor in CVXPY, as a
user would write it (one log_sum_exp per anchor, a Python loop over anchors), solved by
CLARABEL. Prints markdown tables; results go to benchmarks/RESULTS.md.

    python benchmarks/bench_solve.py            # about 10 minutes on a 2-core CPU
    python benchmarks/bench_solve.py --quick    # a minute: small sizes only
    python benchmarks/bench_solve.py --large    # adds n = 152 to the full-program table
    python benchmarks/bench_solve.py --only full --large   # one table
    python benchmarks/bench_solve.py --only presets        # long-tailed presets, several tau
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

import numpy as np
from _common import table  # benchmarks/ is on sys.path when run as a script
from scipy.special import logsumexp

from solvers import solve
from ufm import Problem


def baseline_full(counts, tau):
    """Per-anchor CVXPY model of the n x n program, as a user would write it."""
    import cvxpy as cp

    y = np.repeat(np.arange(len(counts)), counts)
    n = y.size
    G = cp.Variable((n, n), PSD=True)
    terms = []
    for i in range(n):
        pos = [j for j in range(n) if j != i and y[j] == y[i]]
        if not pos:
            continue
        others = [j for j in range(n) if j != i]
        terms.append(cp.log_sum_exp(cp.hstack([G[i, j] / tau for j in others]))
                     - sum(G[i, j] for j in pos) / (len(pos) * tau))
    prob = cp.Problem(cp.Minimize(sum(terms)), [cp.diag(G) == 1])
    t0 = time.perf_counter()
    prob.solve(solver=cp.CLARABEL)
    return prob.value, time.perf_counter() - t0


def independent_value(result) -> float:
    """SupCon at the returned class embeddings, written from the definition with scipy's
    logsumexp (collapsed optimum: every sample sits on its unit class mean)."""
    p = result.problem
    V = result.embeddings()  # unit class embeddings
    n = np.asarray(p.counts, dtype=float)
    cos = V @ V.T
    total = 0.0
    for c in np.flatnonzero(n >= 2):
        b = n.copy()
        b[c] = n[c] - 1  # the positives (inner product 1)
        x = cos[c].copy()
        x[c] = 1.0
        total += n[c] * (logsumexp(x / p.tau, b=b) - 1.0 / p.tau)
    return float(total)


def step_counts(k, ratio=10, n_min=5):
    k_maj = k // 2
    return (ratio * n_min,) * k_maj + (n_min,) * (k - k_maj)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def bench_full(sizes, baseline_max_n):
    rows = []
    for r in sizes:
        counts = (3 * r, 3 * r, r, r)
        p = Problem(counts, 0.5)
        t0 = time.perf_counter()
        full = solve(p, method="full")
        t_full = time.perf_counter() - t0
        red = solve(p, method="reduced")
        base_val, t_base = (baseline_full(counts, 0.5) if p.n <= baseline_max_n
                            else (float("nan"), float("nan")))
        rows.append([str(p.n), f"{t_base:.2f}", f"{t_full:.2f}", f"{red.timings['total']:.4f}",
                     f"{t_base / t_full:.1f}x" if np.isfinite(t_base) else "-",
                     f"{t_base / red.timings['total']:.0f}x" if np.isfinite(t_base) else "-",
                     f"{rel(full.solver_value, red.value):.1e}",
                     f"{rel(base_val, red.value):.1e}" if np.isfinite(base_val) else "-",
                     f"{red.certificate.relative_gap_bound:.1e}"])
        print(f"full n={p.n} done", file=sys.stderr)
    table("Full n x n program vs per-anchor CVXPY baseline (counts 3r,3r,r,r; tau 0.5)",
          ["n", "baseline s", "full (vectorised) s", "reduced s", "full speed-up",
           "reduced speed-up", "full vs reduced (rel)", "baseline vs reduced (rel)",
           "rel. gap bound"], rows)


def bench_reduced(ks, taus, conic_max_k):
    rng = np.random.default_rng(2026)
    rows = []
    for k in ks:
        counts = tuple(int(c) for c in rng.choice(np.arange(2, 20 * k + 2), size=k, replace=False))
        for tau in taus:
            p = Problem(counts, tau)
            res = solve(p, method="reduced")
            indep = independent_value(res)
            conic = "-"
            if k <= conic_max_k:
                cres = solve(p, method="reduced", solver="clarabel")
                conic = f"{cres.timings['conic']:.2f} s, rel {rel(cres.solver_value, res.value):.1e}"
            rows.append([str(k), str(p.n), f"{tau:g}", f"{res.timings['total']:.3f}",
                         str(res.iterations), f"{rel(res.value, indep):.1e}",
                         f"{res.certificate.relative_gap_bound:.1e}",
                         str(res.certificate.certified), str(res.rank), str(res.collapsed), conic])
            print(f"reduced k={k} tau={tau} done", file=sys.stderr)
    table("Class-level (reduced) program, factored solver; distinct random counts in [2, 20k]",
          ["k", "n", "tau", "time s", "iterations", "value vs independent (rel)",
           "rel. gap bound", "certified", "rank", "collapsed", "CLARABEL on the same program"],
          rows)


def bench_cli(k=100, repeats=3):
    rng = np.random.default_rng(7)
    counts = rng.choice(np.arange(2, 20 * k + 2), size=k, replace=False)
    arg = ",".join(map(str, counts))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "ufm", "solve", "--counts", arg, "--tau", "0.1",
                              "--json"], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
    payload = json.loads(out.stdout)
    table(f"Whole `ufm solve` command, k = {k} distinct counts, tau 0.1 (interpreter start included)",
          ["best of 3, s", "median, s", "method", "certified", "rel. gap bound"],
          [[f"{min(times):.2f}", f"{np.median(times):.2f}", payload["method"],
            str(payload["certificate"]["certified"]),
            f"{payload['certificate']['relative_gap_bound']:.1e}"]])


def bench_orbit(ks):
    rows = []
    for k in ks:
        p = Problem(step_counts(k), 0.1)
        t0 = time.perf_counter()
        res = solve(p, method="orbit")
        t = time.perf_counter() - t0
        check = "-"
        if k <= 300:
            check = f"{rel(solve(p, method='reduced').value, res.value):.1e}"
        rows.append([str(k), str(p.n), f"{t:.4f}", f"{res.value:.10g}", check,
                     f"{res.certificate.relative_gap_bound:.1e}", str(res.certificate.certified),
                     str(res.rank), str(res.collapsed)])
        print(f"orbit k={k} done", file=sys.stderr)
    table("Orbit program, STEP imbalance (k/2 classes of 50, k/2 of 5; tau 0.1)",
          ["k", "n", "time s", "value", "vs reduced (rel)", "rel. gap bound", "certified",
           "rank", "collapsed"], rows)


def bench_presets(presets=("cifar10-lt", "cifar100-lt", "places-lt", "imagenet-lt"),
                  taus=(2.0, 1.0, 0.1, 0.02, 0.005, 0.001)):
    """Whole `ufm solve --counts PRESET` commands (interpreter start included)."""
    rows = []
    for name in presets:
        for tau in taus:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "ufm", "solve", "--counts", name, "--tau", str(tau),
                                  "--json"], capture_output=True, text=True, check=True)
            t = time.perf_counter() - t0
            d = json.loads(out.stdout)
            c = d["certificate"]
            rows.append([name, str(len(d["counts"])), str(sum(d["counts"])), f"{tau:g}", f"{t:.2f}",
                         d["method"], str(c["certified"]), f"{c['gap_relative_to_excess']:.1e}",
                         f"{c['log_excess']:.6g}", str(d["rank"])])
            print(f"preset {name} tau {tau} done", file=sys.stderr)
    table("Whole `ufm solve --counts PRESET` command (interpreter start included)",
          ["preset", "k", "n", "tau", "time s", "method", "certified", "gap / excess", "log excess",
           "rank"], rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--only", choices=["full", "reduced", "cli", "orbit", "presets"])
    a = ap.parse_args()
    import cvxpy
    import scipy

    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, "
          f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"cvxpy {cvxpy.__version__}")
    if a.quick:
        bench_full([3, 6], 48)
        bench_reduced([10, 100], [1.0, 0.1], 30)
        bench_cli()
        bench_orbit([10, 1000, 10_000])
        return
    sections = {
        "full": lambda: bench_full([3, 6, 9, 12] + ([19] if a.large else []), 160),
        "reduced": lambda: bench_reduced([10, 30, 100, 300, 1000], [1.0, 0.1], 100),
        "cli": bench_cli,
        "orbit": lambda: bench_orbit([10, 100, 1000, 10_000, 100_000]),
        "presets": bench_presets,
    }
    for name, run in sections.items():
        if a.only in (None, name):
            run()


if __name__ == "__main__":
    main()
