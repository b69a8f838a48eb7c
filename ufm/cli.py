"""Command line: ``ufm solve`` (see ``ufm solve --help``).

``--json`` prints exactly one JSON object on stdout; progress goes to stderr. Bad input ends
with a one-line error naming the argument and exit status 2, never a traceback, never a
partial output file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ufm.errors import UFMInputError, check_choice
from ufm.problem import DEFAULT_COUNTS, DEFAULT_TAU, Problem, check_tau, parse_counts

EXIT_INPUT = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump)."""

    def error(self, message):
        raise UFMInputError(self.prog, message)


def _existing_file(path: str, argument: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UFMInputError(argument, f"no such file: {path}")
    return p


def _read_labels(path: str) -> np.ndarray:
    p = _existing_file(path, "--labels")
    try:
        if p.suffix == ".npy":
            y = np.load(p, allow_pickle=False)
        else:
            y = np.array(p.read_text().replace(",", " ").split())
    except (ValueError, OSError) as err:
        raise UFMInputError("--labels", f"cannot read {path}: {err}") from None
    if y.ndim != 1 and not (y.ndim == 2 and 1 in y.shape):
        raise UFMInputError("--labels", f"expected a vector of labels, got shape {y.shape}")
    return y.ravel()


def build_parser() -> argparse.ArgumentParser:
    from ufm.losses import available_losses

    parser = _Parser(prog="ufm", description="Landscape analysis of unconstrained features models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser(
        "solve",
        help="certified global optimum of the convex relaxation over the Gram matrix",
        description="Global optimum of a contrastive UFM through its convex relaxation, with "
        "its geometry and a global-optimality certificate. With no arguments: a STEP-imbalanced "
        f"default (counts {','.join(map(str, DEFAULT_COUNTS))}, tau {DEFAULT_TAU}).",
    )
    src = s.add_mutually_exclusive_group()
    src.add_argument("--counts", help="class sizes, comma-separated, e.g. 10,10,2,2")
    src.add_argument("--labels", help="label vector: .npy or a text file of labels")
    s.add_argument("--tau", default=None,
                   help=f"temperature > 0 (default {DEFAULT_TAU})")
    s.add_argument("--loss", default="supcon", help=f"loss: {', '.join(available_losses())}")
    s.add_argument("--method", default="auto",
                   help="auto | full (n x n program) | reduced (class level) | orbit (equal counts merged)")
    s.add_argument("--solver", default="auto", help="auto | factored | clarabel | scs")
    s.add_argument("--tol", default=None,
                   help="certified means gap_bound <= tol * |value| (default 1e-6)")
    s.add_argument("--seed", type=int, default=0, help="seed of the factored solver's start")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.add_argument("--out", help="directory for result.json and arrays.npz")
    s.add_argument("--lift", action="store_true",
                   help="with --out, also save unit embeddings of all n samples")
    v = sub.add_parser(
        "verify",
        help="non-convex restarts in dimension D, each compared with the certified optimum",
        description="Optimise the loss over unit embeddings in dimension --dim from --restarts "
        "random starts (PyTorch, batched), compare every end point with the convex optimum up to "
        "rotation and certify it; report the census of distinct end points.",
    )
    v.add_argument("--counts", help="class sizes, comma-separated")
    v.add_argument("--labels", help="label vector: .npy or a text file of labels")
    v.add_argument("--tau", default=None, help=f"temperature > 0 (default {DEFAULT_TAU})")
    v.add_argument("--loss", default="supcon")
    v.add_argument("--dim", default=None, help="embedding dimension d >= 1 (default k - 1)")
    v.add_argument("--restarts", default="8", help="number of random restarts (default 8)")
    v.add_argument("--optimizer", default="lbfgs", help="lbfgs | rgd")
    v.add_argument("--device", default="auto", help="auto | cpu | cuda")
    v.add_argument("--precision", default="auto",
                   help="auto (mixed on cuda, float64 on cpu) | float64 | mixed (float32, then float64)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--max-iter", type=int, default=5000)
    v.add_argument("--tol", default=None, help="certified means gap_bound <= tol * |value|")
    v.add_argument("--json", action="store_true")

    c = sub.add_parser(
        "certify",
        help="certify trained embeddings: value, global-optimality certificate, collapse measures",
    )
    c.add_argument("--embeddings", required=True, help="(n, d) array: .npy, .npz or .pt")
    c.add_argument("--labels", required=True, help="labels: .npy or a text file")
    c.add_argument("--tau", required=True, help="temperature > 0")
    c.add_argument("--loss", default="supcon")
    c.add_argument("--normalize", action="store_true", help="normalise rows instead of rejecting")
    c.add_argument("--device", default="cpu",
                   help="cpu | cuda | auto: where the matrix-free certificate runs (n > 3000)")
    c.add_argument("--tol", default=None, help="certified means gap_bound <= tol * |value|")
    c.add_argument("--json", action="store_true")

    r = sub.add_parser(
        "run",
        help="run a study declared in TOML (a file, or a bundled study name)",
        description="Solve and certify every grid point of a study; write results.jsonl and "
        "summary.csv to --out (default results/NAME).",
    )
    r.add_argument("experiment", metavar="EXPERIMENT", help="study .toml file or bundled name")
    r.add_argument("--out", help="output directory (default results/<study name>)")
    r.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def _prepare_out(path: str | None) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UFMInputError("--out", f"exists and is not a directory: {path}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UFMInputError("--out", f"cannot create {path}: {err.strerror}") from None
    if not os.access(out, os.W_OK):
        raise UFMInputError("--out", f"not writable: {path}")
    return out


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename: never partial."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(out: Path, result, payload: dict, lift: bool) -> None:
    arrays = {
        "counts": np.asarray(result.problem.counts),
        "class_labels": np.asarray(result.problem.class_labels),
        "class_mean_norms": result.class_mean_norms(),
    }
    if result.problem.k <= 5000:
        arrays["class_gram"] = result.class_gram()
        arrays["class_means"] = result.geometry.class_means()
    if lift:
        arrays["embeddings"] = result.embeddings(lift=True)
        arrays["labels"] = result.problem.labels
    _atomic_write(out / "arrays.npz", lambda fh: np.savez_compressed(fh, **arrays))
    _atomic_write(out / "result.json", lambda fh: fh.write(json.dumps(payload, indent=2).encode()))


def _format_table(res, payload: dict) -> str:
    p = res.problem
    cert = res.certificate
    lines = [
        f"loss {p.loss}   tau {p.tau:g}   k = {p.k} classes   n = {p.n} samples",
        f"method {res.method} ({res.solver}), status {res.status.value}, "
        f"{res.iterations} iterations, {payload['time_s']:.3f} s",
        f"optimal value      {res.value:.12g}",
        f"rank               {res.rank}   (class-mean eigenvalues > {res.geometry.rank_tol:g} x largest)",
        f"collapsed          {'yes' if res.collapsed else 'no'}   "
        f"(within-class cosine >= 1 - {res.geometry.collapse_tol:g})",
        f"certificate        lambda_min {cert.lambda_min:.3e}, gap bound {cert.gap_bound:.3e} "
        f"({cert.relative_gap_bound:.1e} relative): "
        + ("CERTIFIED" if cert.certified else "NOT certified") + f" at tol {cert.tol:g}",
    ]
    # geometry: one row per distinct class count when classes repeat, else per class
    groups = res.geometry.groups if res.method == "orbit" else None
    norms = res.class_mean_norms()
    if p.k <= 12:
        cos = res.class_gram()
        lines.append("class-mean cosines (rows/cols: class: count), norms of class means:")
        head = "            " + "".join(f"{c:>9}" for c in range(p.k)) + "     norm"
        lines.append(head)
        for c in range(p.k):
            row = "".join(f"{v:9.4f}" for v in cos[c])
            lines.append(f"{c:>4}: {p.counts[c]:>5}" + row + f"  {norms[c]:7.4f}")
    elif groups is not None and groups.q <= 12:
        geo = res.geometry
        d = geo.mean_sq_norm
        lines.append("class-mean cosines by class count (same: two classes of that count):")
        for g in range(groups.q):
            cross = ", ".join(
                f"vs {groups.count[h]}: {geo.gram.cross[g, h] / np.sqrt(d[g] * d[h]):.4f}"
                for h in range(groups.q) if h != g)
            same = f"same {geo.gram.same[g] / d[g]:.4f}" if groups.size[g] >= 2 else "same -"
            lines.append(f"  count {groups.count[g]:>6} x {groups.size[g]:>6} classes: norm "
                         f"{np.sqrt(d[g]):.4f}, {same}" + (f", {cross}" if cross else ""))
    else:
        cos = res.class_gram() if p.k <= 5000 else None
        if cos is not None:
            off = cos[~np.eye(p.k, dtype=bool)]
            lines.append(f"class-mean cosines: min {off.min():.4f}, mean {off.mean():.4f}, "
                         f"max {off.max():.4f}  (simplex ETF: {-1 / (p.k - 1):.4f})")
        lines.append(f"class-mean norms: min {norms.min():.6f}, max {norms.max():.6f}")
    return "\n".join(lines)


def cmd_solve(args) -> int:
    from solvers import METHODS, SOLVERS, solve  # lazy: ufm itself never imports solvers
    from solvers.certificate import CERTIFY_TOL

    tol = CERTIFY_TOL if args.tol is None else check_tau(args.tol, "--tol")
    check_choice(args.method, METHODS, "--method", "method")  # before any work is done
    check_choice(args.solver, SOLVERS, "--solver", "solver")
    problem = _problem_from_args(args)
    if args.lift and args.out is None:
        raise UFMInputError("--lift", "needs --out")
    out = _prepare_out(args.out)
    print(f"ufm solve: k = {problem.k}, n = {problem.n}, tau = {problem.tau:g} ...", file=sys.stderr)
    res = solve(problem, method=args.method, solver=args.solver,
                tol=tol, seed=args.seed)
    payload = res.to_dict()
    if out is not None:
        _save(out, res, payload, args.lift)
    if args.json:
        print(json.dumps(payload))
    else:
        print(_format_table(res, payload))
    return 0


def _problem_from_args(args) -> Problem:
    """The problem named by --counts or --labels, --tau and --loss (the default without them)."""
    tau = DEFAULT_TAU if args.tau is None else check_tau(args.tau, "--tau")
    if args.labels is not None and args.counts is not None:
        raise UFMInputError("--labels", "give --counts or --labels, not both")
    if args.labels is not None:
        return Problem.from_labels(_read_labels(args.labels), tau, args.loss)
    counts = DEFAULT_COUNTS if args.counts is None else parse_counts(args.counts)
    return Problem(counts, tau, args.loss)


def _positive_int(text, argument: str) -> int:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UFMInputError(argument, f"not a number: {text!r}") from None
    if not np.isfinite(value) or value != int(value) or value < 1:
        raise UFMInputError(argument, f"must be an integer >= 1, got {text}")
    return int(value)


def cmd_verify(args) -> int:
    from solvers.certificate import CERTIFY_TOL
    from solvers.nonconvex import METHODS, PRECISIONS, resolve_device
    from solvers.verify import verify

    problem = _problem_from_args(args)
    dim = max(problem.k - 1, 1) if args.dim is None else _positive_int(args.dim, "--dim")
    restarts = _positive_int(args.restarts, "--restarts")
    check_choice(args.optimizer, METHODS, "--optimizer", "optimizer")  # before the convex solve
    check_choice(args.precision, PRECISIONS, "--precision", "precision")
    resolve_device(args.device)
    if args.max_iter < 1:
        raise UFMInputError("--max-iter", f"must be >= 1, got {args.max_iter}")
    tol = CERTIFY_TOL if args.tol is None else check_tau(args.tol, "--tol")
    print(f"ufm verify: k = {problem.k}, n = {problem.n}, d = {dim}, {restarts} restarts ...",
          file=sys.stderr)
    res = verify(problem, dim, restarts, args.optimizer, args.device, args.seed, tol,
                 max_iter=args.max_iter, progress=True, precision=args.precision)
    payload = res.to_dict()
    if args.json:
        print(json.dumps(payload))
        return 0
    print(f"loss {problem.loss}   tau {problem.tau:g}   k = {problem.k}   n = {problem.n}   d = {dim}")
    print(f"convex optimum     {payload['optimal_value']:.12g}  (rank {payload['optimum_rank']}, "
          f"certified {payload['optimum_certificate']['certified']})")
    print(f"relaxation tight   {'yes' if payload['relaxation_tight'] else 'no'} in dimension {dim}")
    print(f"restarts           {restarts} ({payload['optimizer']} on {payload['device']}, "
          f"{payload['dtype']}), {payload['distinct_minima']} distinct end point(s), "
          f"{payload['fraction_global']:.0%} certified global")
    print(f"claim              {payload['claim']}")
    print("   #   rel. gap   Gram dist   grad norm   gap bound  certified  Hessian min  stop")
    for i, r in enumerate(payload["restarts"]):
        hess = "-" if r["hessian_min"] is None else f"{r['hessian_min']:.2e}"
        print(f"{i:>4}  {r['rel_gap']:9.2e}  {r['gram_distance']:9.2e}  {r['grad_norm']:9.2e}  "
              f"{r['gap_bound']:9.2e}  {'yes' if r['certified'] else 'no':>9}  {hess:>11}  "
              f"{r['stop_reason']}")
    return 0


def _read_embeddings(path: str) -> np.ndarray:
    p = _existing_file(path, "--embeddings")
    try:
        if p.suffix == ".npy":
            H = np.load(p, allow_pickle=False)
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                key = next((k for k in ("embeddings", "H") if k in z.files), z.files[0] if z.files else None)
                if key is None:
                    raise ValueError("empty .npz")
                H = z[key]
        elif p.suffix == ".pt":
            import torch

            obj = torch.load(p, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                obj = next((v for v in obj.values() if isinstance(v, torch.Tensor)), None)
            if not isinstance(obj, torch.Tensor):
                raise ValueError("no tensor in the file")
            H = obj.detach().double().numpy()
        else:
            raise ValueError("expected .npy, .npz or .pt")
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        raise UFMInputError("--embeddings", f"cannot read {path}: {err}") from None
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] < 1 or H.shape[1] < 1:
        raise UFMInputError("--embeddings", f"expected an (n, d) array, got shape {H.shape}")
    if not np.all(np.isfinite(H)):
        raise UFMInputError("--embeddings", "contains NaN or infinite values")
    return H


def cmd_certify(args) -> int:
    from solvers.certificate import CERTIFY_TOL
    from solvers.inspect import inspect_embeddings
    from solvers.nonconvex import resolve_device

    device = str(resolve_device(args.device))
    tau = check_tau(args.tau, "--tau")
    tol = CERTIFY_TOL if args.tol is None else check_tau(args.tol, "--tol")
    H = _read_embeddings(args.embeddings)
    y = _read_labels(args.labels)
    if y.size != H.shape[0]:
        raise UFMInputError("--labels", f"{y.size} labels for {H.shape[0]} embeddings")
    norms = np.linalg.norm(H, axis=1)
    if args.normalize:
        if np.any(norms == 0):
            raise UFMInputError("--embeddings", "a row is zero and cannot be normalised")
        H = H / norms[:, None]
    elif np.max(np.abs(norms - 1)) > 1e-6:
        raise UFMInputError("--embeddings", f"rows are not unit vectors (norms {norms.min():.4g} to "
                            f"{norms.max():.4g}); pass --normalize to normalise them")
    report = inspect_embeddings(H, y, tau, args.loss, tol, device)
    if args.json:
        print(json.dumps(report))
        return 0
    c = report["certificate"]
    print(f"loss {args.loss}   tau {tau:g}   n = {H.shape[0]}   d = {H.shape[1]}   k = {report['k']}")
    print(f"value              {report['value']:.12g}   (optimum for these counts "
          f"{report['optimal_value']:.12g}, relative gap {report['rel_gap']:.2e})")
    print(f"certificate        lambda_min {c['lambda_min']:.3e}, gap bound {c['gap_bound']:.3e}: "
          + ("CERTIFIED" if c["certified"] else "NOT certified") + f"  [{c['how']}]")
    print(f"NC1                {report['nc1']:.3e}")
    print(f"class-mean cosines max deviation from the optimum {report['cosines_vs_optimum']:.3e}, "
          f"from the simplex ETF {report['cosines_vs_etf']:.3e}")
    print(f"distance to the optimal geometry: Gram {report['gram_distance']:.3e}, Procrustes "
          + ("-" if report["procrustes_distance"] is None else f"{report['procrustes_distance']:.3e}"))
    return 0


def cmd_run(args) -> int:
    from experiments.runner import find_study, results_jsonl, run_study, summary_csv

    path = find_study(args.experiment)

    def progress(i, total, row):
        c = row["certificate"]
        print(f"[{i}/{total}] tau {row['tau']:g} counts {row['counts'][:6]}"
              f"{'...' if len(row['counts']) > 6 else ''}: value {row['optimal_value']:.8g}, "
              f"{'certified' if c['certified'] else 'NOT certified'}", file=sys.stderr)

    study, rows = run_study(path, progress)
    out = _prepare_out(args.out or f"results/{study.get('name', path.stem)}")
    _atomic_write(out / "results.jsonl", lambda fh: fh.write(results_jsonl(rows).encode()))
    _atomic_write(out / "summary.csv", lambda fh: fh.write(summary_csv(rows).encode()))
    if args.json:
        print(json.dumps({"study": study, "out": str(out), "rows": rows}))
    else:
        print(f"study {study.get('name', path.stem)}: {len(rows)} problems, "
              f"{sum(r['certified'] for r in rows)} certified; results in {out}")
        print(summary_csv(rows), end="")
    return 0


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        commands = {"solve": cmd_solve, "verify": cmd_verify, "certify": cmd_certify, "run": cmd_run}
        return commands[args.command](args)
    except UFMInputError as err:
        print(f"ufm: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("ufm: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, MemoryError, OSError) as err:
        print(f"ufm: error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE
