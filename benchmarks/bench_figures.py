"""The cost of the figures: every figure of every shipped study drawn and saved from the same
results (the smoke grid's, run once here), by a baseline revision and by the working tree, as a
ratio. The paper style lays every figure out twice before saving (constrained layout settles
with colour bars), writes cell values and wraps titles: this says what that costs.

Each revision draws in its own interpreter (imports included), best of ``--repeats``; figures are
saved as PNG at each revision's default resolution (150 dpi before the paper style, 300 after)
and, with ``--pdf``, as PDF.

    python benchmarks/bench_figures.py                       # baseline: main before issue 19
    python benchmarks/bench_figures.py --full --baseline HEAD~3
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import table
from bench_load import studies, worktree

REPO = Path(__file__).resolve().parents[1]
#: main before issue 19's figures (the paper style)
DEFAULT_BASELINE = "6048d9e"

DRAW = r"""
import json, sys, time
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
from experiments.figures import _draw, load_arrays
from experiments.study import find_study, load_study
from ufm import plotting

name, out, suffix, repeats = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
study = load_study(find_study(name), smoke=sys.argv[5] == "smoke")
by_id = {}
for line in (out / "results.jsonl").read_text().splitlines():
    row = json.loads(line)
    by_id[row["point_id"]] = row
rows = [by_id[pid] for pid in study.point_ids]
arrays = load_arrays(out)
best = float("inf")
target = Path(sys.argv[6])
for _ in range(repeats):
    t0 = time.perf_counter()
    for spec in study.figures:
        fig = _draw(study, spec, rows, arrays, None)
        plotting.save_figure(fig, target / (Path(spec["file"]).stem + suffix))
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"figures": len(study.figures), "seconds": best}))
"""


def draw_time(root: Path, name: str, out: Path, suffix: str, repeats: int, grid: str) -> dict:
    """(figures, best seconds) of drawing and saving every figure of ``name`` with the code in
    ``root``."""
    with tempfile.TemporaryDirectory() as target:
        command = [sys.executable, "-c", DRAW, name, str(out), suffix, str(repeats), grid, target]
        done = subprocess.run(command, cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin",
                                             "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    parser.add_argument("--full", action="store_true", help="the studies' full grids (default: smoke)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pdf", action="store_true", help="save PDF instead of PNG")
    parser.add_argument("--only", default=None, help="comma-separated study names")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else studies()
    grid = "full" if args.full else "smoke"
    suffix = ".pdf" if args.pdf else ".png"
    rows = []
    with worktree(args.baseline) as base, tempfile.TemporaryDirectory() as results:
        for name in names:
            out = Path(results) / name
            command = [sys.executable, "-m", "ufm", "run", name, "--out", str(out), "--quiet", "--json"]
            subprocess.run(command + (["--smoke"] if grid == "smoke" else []), cwd=REPO, check=True,
                           capture_output=True)
            before = draw_time(base, name, out, suffix, args.repeats, grid)
            after = draw_time(REPO, name, out, suffix, args.repeats, grid)
            rows.append([name, str(after["figures"]), f"{before['seconds']:.2f}", f"{after['seconds']:.2f}",
                         f"{after['seconds'] / before['seconds']:.2f}"])
            print(f"{name}: {before['seconds']:.2f} -> {after['seconds']:.2f} s", file=sys.stderr)
    table(f"Figures of the shipped studies ({grid} grids, {suffix[1:].upper()}), baseline "
          f"{args.baseline} against the tree, best of {args.repeats}; {platform.node()}, "
          f"{platform.processor() or platform.machine()}",
          ["study", "figures", "baseline s", "tree s", "tree / baseline"], rows)


if __name__ == "__main__":
    main()
