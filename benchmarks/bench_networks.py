"""Benchmark of networks in place of free embeddings (Tian 2023), each against its baseline in the
same run, as a ratio:

1. One-layer census: R random starts maximised together (one batched torch evaluation per step)
   against the same starts one at a time.
2. Two-layer training step: the loss's closed-form gradient in the embeddings back-propagated
   through the network, against autograd through the loss's plain definition.
3. Kinked units: the exact ascent on the kinks and its certificate (solvers.networks.kinks) after the
   gradient stage, against the gradient stage it finishes: its cost as a ratio, and what it buys
   (end points certified before and after, the rise of E).

    python benchmarks/bench_networks.py            # about 5 minutes on a 2-core CPU
    python benchmarks/bench_networks.py --quick
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from _common import table, timeit  # benchmarks/ is on sys.path when run as a script

from solvers.networks.kinks import LocalVerdict, check_kink_optimum
from solvers.networks.one_layer import maximise, refine_and_check
from ufm.losses import InfoNCE
from ufm.networks.data import pattern_data, pattern_mixture
from ufm.networks.two_layer import TwoLayer
from ufm.samples import Samples


def one_layer_rows(quick: bool) -> list[list[str]]:
    rows = []
    for n, R in ([(400, 16)] if quick else [(400, 32), (2000, 64)]):
        d = pattern_mixture(n, patterns=4, dim=16, seed=0)
        for act in ("linear", "relu"):
            t0 = time.perf_counter()
            Wb, Eb, *_ = maximise(d.x1, d.x2, act, R, seed=0)
            batched = time.perf_counter() - t0
            W0 = torch.randn(R, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
            t0 = time.perf_counter()
            Es = [maximise(d.x1, d.x2, act, 1, W0=W0[i:i + 1])[1][0] for i in range(R)]
            single = time.perf_counter() - t0
            same = np.max(np.abs(np.sort(Es) - np.sort(maximise(d.x1, d.x2, act, R, W0=W0)[1])))
            rows.append([str(n), str(R), act, f"{batched:.2f}", f"{single:.2f}", f"{single / batched:.1f}x",
                         f"{same:.1e}"])
    return rows


def two_layer_rows(quick: bool) -> list[list[str]]:
    rows = []
    for n in ([256] if quick else [256, 1024]):
        d = pattern_data(n, locations=6, vocab=12, patterns=4, fixed=3, seed=0)
        x = torch.as_tensor(np.stack([d.x1, d.x2], axis=1).reshape(2 * n, -1))
        samples, loss = Samples.instances_views(n, 2), InfoNCE(tau=0.1)
        net = TwoLayer.random(6, 12, 8, 16, "relu", seed=0)
        for p in net.parameters():
            p.requires_grad_(True)

        def closed(net=net, x=x, loss=loss, samples=samples):
            H = net.embed(x)
            H.backward(loss.torch_value_and_grad(H.detach(), samples)[1])

        def autograd(net=net, x=x, loss=loss, samples=samples):
            loss.torch_value(net.embed(x), samples).backward()

        a, b = timeit(closed), timeit(autograd)
        rows.append([str(n), f"{a * 1e3:.1f}", f"{b * 1e3:.1f}", f"{b / a:.2f}x"])
    return rows


def kink_rows(quick: bool) -> list[list[str]]:
    rows = []
    cases = [("mixture", 400)] if quick else [("mixture", 400), ("patterns", 400), ("patterns", 2000)]
    for kind, n in cases:
        d = pattern_mixture(n, patterns=4, dim=16, seed=0) if kind == "mixture" else pattern_data(n, seed=0)
        for act in ("relu", "leaky_relu"):
            t0 = time.perf_counter()
            W, E, *_ = maximise(d.x1, d.x2, act, 32, seed=0)
            ascent = time.perf_counter() - t0
            before = [check_kink_optimum(w, d.x1, d.x2, act).verdict for w in W]
            before = sum(v is LocalVerdict.LOCAL_OPTIMUM for v in before)
            t0 = time.perf_counter()
            _, E2, checks, iters = refine_and_check(W, E, d.x1, d.x2, act)
            kinks = time.perf_counter() - t0
            after = sum(c.verdict is LocalVerdict.LOCAL_OPTIMUM for c in checks)
            rows.append([kind, str(n), str(d.dim), act, f"{ascent:.2f}", f"{kinks:.2f}",
                         f"{kinks / ascent:.2f}",
                         f"{before}/32", f"{after}/32", f"{np.max(E2 - E):.1e}", f"{np.min(E2 - E):.1e}",
                         f"{np.median(iters):.0f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}, cpu")
    table("One-layer census: R starts batched against one at a time (s; max |E difference| of the end "
          "points, sorted)",
          ["n", "R", "activation", "batched", "one at a time", "speed-up", "same end points"],
          one_layer_rows(args.quick))
    table("Kinked units, 32 starts: the gradient stage (3000 iterations at most) and the exact ascent on "
          "the kinks with its certificate (s; certified end points before and after; rise of E)",
          ["data", "n", "D", "activation", "gradient stage", "kink stage", "ratio", "certified before",
           "certified after", "max rise", "min rise", "median kink steps"], kink_rows(args.quick))
    table("Two-layer training step, relu, K = 6, V = 12, M = 8, d = 16 (ms, best of 3): closed-form loss "
          "gradient back-propagated against autograd through the definition",
          ["n", "closed form", "autograd", "speed-up"], two_layer_rows(args.quick))


if __name__ == "__main__":
    main()
