"""Benchmark of `ufm certify` at scale: whole-command time and peak memory against n (CPU).

Embeddings of k = 20 classes of n / 20 samples in d = 32, tau = 0.1, three kinds:
  random     uniform on the sphere (far from optimal: the certificate is refuted),
  near       the simplex ETF plus noise 1e-3 per coordinate (within-class cosine 1 - 3e-5:
             not collapsed, not optimal; refuted),
  collapsed  the simplex ETF exactly (the exact class-level path; certified).
Each run is a fresh `ufm certify` process (default memory budget 2 GB), timed with its peak
resident memory from /usr/bin/time. The target (issue 7): 20000 x 32 in under 4 minutes and
2.5 GB on 2 cores.

    python benchmarks/bench_certify.py [--sizes 5000,10000,20000,50000] [--kinds random,near,collapsed]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import table  # benchmarks/ is on sys.path when run as a script

from ufm.geometry import simplex_etf

K, D, TAU = 20, 32, 0.1


def embeddings(kind: str, n: int, rng) -> np.ndarray:
    y = np.repeat(np.arange(K), n // K)
    M = np.zeros((K, D))
    M[:, : K - 1] = simplex_etf(K)
    if kind == "random":
        H = rng.standard_normal((n, D))
    elif kind == "near":
        H = M[y] + 1e-3 * rng.standard_normal((n, D))
    else:
        H = M[y]
    return H / np.linalg.norm(H, axis=1, keepdims=True)


def run(kind: str, n: int, folder: Path, rng):
    H = embeddings(kind, n, rng)
    np.save(folder / "H.npy", H)
    np.save(folder / "y.npy", np.repeat(np.arange(K), n // K))
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "ufm", "certify", "--embeddings",
           str(folder / "H.npy"), "--labels", str(folder / "y.npy"), "--tau", str(TAU), "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    peak_kb = int(out.stderr.strip().splitlines()[-1])
    report = json.loads(out.stdout)
    c = report["certificate"]
    return [kind, str(n), f"{seconds:.1f}", f"{peak_kb / 1e6:.2f}", str(c["certified"]),
            f"{c['gap_relative_to_excess']:.1e}", c["how"].split(";")[0][:60]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5000,10000,20000,50000")
    ap.add_argument("--kinds", default="collapsed,near,random")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.sizes.split(",")):
            for kind in args.kinds.split(","):
                rows.append(run(kind, n, Path(tmp), rng))
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    table("ufm certify, whole command (k = 20, d = 32, tau = 0.1, budget 2 GB)",
          ["embeddings", "n", "time s", "peak GB", "certified", "gap / excess", "how"], rows)


if __name__ == "__main__":
    main()
