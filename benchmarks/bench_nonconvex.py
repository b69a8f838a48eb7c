"""Benchmark of the non-convex route (`ufm verify` / `ufm certify`).

A. Time of one loss-and-gradient evaluation versus n (d = 64): ufm's SupCon in torch against a
   plain torch SupCon as a user would write it (masked logsumexp, autograd).
B. Time to a certified optimum (relative gap bound <= 1e-6) on random labels (k = 20 classes,
   d = 20, tau = 0.5) versus n: ufm's batched L-BFGS (one restart; float64, and mixed:
   float32 then a float64 polish), pymanopt's trust-regions on
   the Elliptope manifold (same loss through pymanopt's torch backend), and plain torch Adam on
   normalised parameters (lr 1e-2, for 10x ufm's time + 5 s at most); every end point
   certified by ufm's certificate (time included; "vs ufm" is against ufm float64).

    python benchmarks/bench_nonconvex.py [--quick]
    python benchmarks/bench_nonconvex.py --device cuda   # C. loss/gradient to n = 65536, d = 128,
                                                         # and certified optima at n = 65536
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
import torch
from _common import table, timeit  # benchmarks/ is on sys.path when run as a script

from solvers.certificate import certify_embeddings
from solvers.nonconvex import optimize, random_start
from ufm import Problem


def naive_supcon(H, y, tau):
    """SupCon as a user would write it."""
    G = H @ H.T / tau
    n = H.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=H.device)
    logits = G.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~eye
    npos = pos.sum(1)
    has = npos > 0
    return -((log_prob.masked_fill(~pos, 0).sum(1)[has]) / npos[has]).sum()


def bench_loss_grad(ns, d, device):
    rows = []
    for n in ns:
        counts = tuple(np.random.default_rng(n).multinomial(n - 20, np.ones(20) / 20) + 1)
        p = Problem(counts, 0.5)
        y = torch.as_tensor(p.labels, device=device)
        row = [str(n)]
        for dt in (torch.float64, torch.float32):
            H0 = random_start(1, n, d, 0, dt, device)[0]

            def ours(H0=H0, p=p):
                p.loss.torch_value_and_grad(H0, p.samples)

            def naive(H0=H0, p=p, y=y):
                H = H0.clone().requires_grad_(True)
                naive_supcon(H, y, p.tau).backward()

            t_ours = timeit(ours)
            try:
                t_naive = timeit(naive)
            except torch.OutOfMemoryError:
                t_naive = float("nan")
                torch.cuda.empty_cache()
            row += [f"{1e3 * t_ours:.1f}", f"{1e3 * t_naive:.1f}" if t_naive == t_naive else "OOM",
                    f"{t_naive / t_ours:.2f}" if t_naive == t_naive else "-"]
        rows.append(row)
        print(f"loss-grad n={n} done", file=sys.stderr)
    table(f"Loss and gradient, d = {d}, device {device} (ms, best of 3)",
          ["n", "ufm f64", "naive f64", "ratio", "ufm f32", "naive f32", "ratio"], rows)


def random_label_problem(n, k=20, tau=0.5, seed=0):
    y = np.random.default_rng(seed).integers(0, k, size=n)
    return Problem.from_labels(y, tau)


def run_pymanopt(p, d, tol, max_time):
    import pymanopt
    from pymanopt.manifolds import Elliptope
    from pymanopt.optimizers import TrustRegions

    manifold = Elliptope(p.n, d)

    @pymanopt.function.pytorch(manifold)
    def cost(Y):
        return p.loss.torch_value(Y, p.samples)

    problem = pymanopt.Problem(manifold, cost)
    opt = TrustRegions(verbosity=0, min_gradient_norm=tol, max_time=max_time, max_iterations=10_000)
    x0 = random_start(1, p.n, d, 0, torch.float64, "cpu")[0].numpy()
    res = opt.run(problem, initial_point=x0)
    return np.asarray(res.point)


def run_adam(p, d, max_time, lr=1e-2):
    V = random_start(1, p.n, d, 0, torch.float64, "cpu")[0].clone().requires_grad_(True)
    opt = torch.optim.Adam([V], lr=lr)
    t0 = time.perf_counter()
    steps = 0
    while time.perf_counter() - t0 < max_time:
        opt.zero_grad()
        H = V / V.norm(dim=1, keepdim=True)
        loss = p.loss.torch_value(H, p.samples)
        loss.backward()
        opt.step()
        steps += 1
    return (V / V.norm(dim=1, keepdim=True)).detach().numpy(), steps


def bench_certified(ns, d, pymanopt_max_n, max_time):
    rows = []
    for n in ns:
        p = random_label_problem(n)
        tol = 1e-8 * np.sqrt(n)
        results = {}
        for precision in ("float64", "mixed"):
            t0 = time.perf_counter()
            H = optimize(p, d, restarts=1, seed=0, device="cpu", precision=precision).H[0]
            cert = certify_embeddings(p.loss, H, p.samples)
            results[f"ufm {precision}"] = (time.perf_counter() - t0, cert, "")
        if n <= pymanopt_max_n:
            t0 = time.perf_counter()
            H = run_pymanopt(p, d, tol, max_time)
            cert = certify_embeddings(p.loss, H, p.samples)
            results["pymanopt"] = (time.perf_counter() - t0, cert, "")
        t0 = time.perf_counter()
        H, steps = run_adam(p, d, min(max_time, 10 * results["ufm float64"][0] + 5))
        cert = certify_embeddings(p.loss, H, p.samples)
        results["adam"] = (time.perf_counter() - t0, cert, f"{steps} steps")
        t_ufm = results["ufm float64"][0]
        for name, (t, c, extra) in results.items():
            rows.append([str(n), name, f"{t:.2f}", f"{t / t_ufm:.1f}x", f"{c.gap_relative_to_excess:.1e}",
                         str(c.certified), extra])
        print(f"certified n={n} done", file=sys.stderr)
    table(f"Time to a certified optimum, random labels (k = 20), d = {d}, tau 0.5, CPU "
          "(certificate time included)",
          ["n", "method", "time s", "vs ufm", "gap / excess", "certified", "note"], rows)


def bench_gpu_certified(ns, d, k=128):
    """On CUDA: a certified optimum at large n (mixed precision, matrix-free certificate)."""
    rows = []
    for n in ns:
        p = random_label_problem(n, k=k)
        t0 = time.perf_counter()
        run = optimize(p, d, restarts=1, seed=0, device="cuda")
        t1 = time.perf_counter()
        cert = certify_embeddings(p.loss, run.H[0], p.samples, device="cuda")
        t2 = time.perf_counter()
        rows.append([str(n), f"{t1 - t0:.1f}", f"{t2 - t1:.1f}", str(int(run.iterations[0])),
                     f"{cert.relative_gap_bound:.1e}", str(cert.certified)])
        print(f"gpu certified n={n} done", file=sys.stderr)
    table(f"CUDA: certified optimum, random labels (k = {k}), d = {d}, tau 0.5",
          ["n", "optimise s", "certificate s", "iterations", "rel. gap bound", "certified"], rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    print(f"machine: {platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"device {a.device}"
          + (f" ({torch.cuda.get_device_name()})" if a.device == "cuda" else ""))
    # warm up torch (first calls pay one-off costs) so that no method pays them in the tables
    optimize(random_label_problem(100), 8, restarts=1, max_iter=5)
    if a.quick:
        bench_loss_grad([256, 1024], 64, a.device)
        bench_certified([250, 500], 20, 500, 30)
        return
    if a.device == "cuda":
        bench_loss_grad([1024, 4096, 16384, 65536], 128, a.device)
        bench_gpu_certified([8192, 65536], 128)
        return
    bench_loss_grad([256, 1024, 2048, 4096, 8192], 64, a.device)
    bench_certified([250, 500, 1000, 2000], 20, 1000, 120)


if __name__ == "__main__":
    main()
