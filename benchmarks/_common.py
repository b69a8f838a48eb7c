"""Shared output helpers of the benchmark scripts."""

import sys
import time


def table(title, header, rows):
    """Print a markdown table under a heading and flush (long runs print as they go)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    sys.stdout.flush()


def timeit(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call (CUDA synchronised)."""
    import torch

    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best
