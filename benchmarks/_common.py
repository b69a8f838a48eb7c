"""Shared output helpers of the benchmark scripts."""

import sys


def table(title, header, rows):
    """Print a markdown table under a heading and flush (long runs print as they go)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    sys.stdout.flush()
