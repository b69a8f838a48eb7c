"""Titles that say what a figure draws: the loss, the samples (counts or preset), tau, the
dimension, the restarts and the verdict, in one short line each."""

from __future__ import annotations

from collections.abc import Sequence

#: Classes named one by one in a title up to this many; beyond, their number and range.
MAX_LISTED_COUNTS = 8


def counts_words(counts: Sequence[int], preset: str | None = None) -> str:
    """``counts 20,20,2,2``; ``10 classes of 50``; ``ImageNet-LT preset (1000 classes, 1280..5)``;
    ``100 classes, sizes 500..5`` (more than :data:`MAX_LISTED_COUNTS` unequal classes)."""
    sizes = [int(c) for c in counts]
    k = len(sizes)
    if preset:
        return f"{preset} ({k} classes, {max(sizes)}..{min(sizes)})" if k else str(preset)
    if k and len(set(sizes)) == 1 and k > 2:
        return f"{k} classes of {sizes[0]}"
    if k <= MAX_LISTED_COUNTS:
        return "counts " + ",".join(map(str, sizes))
    return f"{k} classes, sizes {max(sizes)}..{min(sizes)}"


def problem_title(loss: str, counts: Sequence[int] | None = None, *, preset: str | None = None,
                  samples: str | None = None, tau: float | None = None, dim: int | None = None,
                  restarts: int | None = None, verdict: str | None = None, extra: str | None = None) -> str:
    """One title line: ``SupCon, counts 20,20,2,2, tau 0.1, d 3, 16 restarts: certified``.
    ``samples`` replaces the counts where the samples are not classes (``8 instances x 2 views``)."""
    parts = [loss]
    if samples:
        parts.append(samples)
    elif counts is not None:
        parts.append(counts_words(counts, preset))
    if tau is not None:
        parts.append(f"tau {tau:g}")
    if dim is not None:
        parts.append(f"d {dim}")
    if restarts is not None:
        parts.append(f"{restarts} restart{'s' if restarts != 1 else ''}")
    if extra:
        parts.append(extra)
    line = ", ".join(parts)
    return f"{line}: {verdict}" if verdict else line


def solve_verdict(certified: bool | None, reason: str | None = None) -> str:
    """``certified optimum``, or ``NOT certified (why)``; ``no certificate`` where none was made."""
    if certified is None:
        return "no certificate"
    if certified:
        return "certified optimum"
    return "NOT certified" + (f" ({reason})" if reason else "")


def verify_verdict(restarts: Sequence[dict], distinct_minima: int | None = None) -> str:
    """``12/16 certified, 2 minima up to symmetry`` (restarts: ``ufm verify --json``'s)."""
    certified = sum(1 for r in restarts if r.get("certified"))
    words = f"{certified}/{len(restarts)} certified"
    if distinct_minima is None:
        return words
    return words + f", {distinct_minima} minim{'um' if distinct_minima == 1 else 'a'} up to symmetry"


def result_title(row: dict) -> str:
    """The title line of one result (a ``ufm solve --json`` or ``ufm verify --json`` object, or a
    study's results line): loss, samples, tau, dimension and restarts where there are restarts,
    and the verdict."""
    params = row.get("params") or {}
    samples = row.get("samples") or {}
    grid = (f"{samples['instances']} instances x {samples['views']} views"
            if samples.get("instances") is not None else None)
    restarts = row.get("restarts")
    if restarts is not None:
        verdict = (f"degenerate ({row['degenerate']})" if row.get("degenerate") else
                   verify_verdict(restarts, row.get("distinct_minima")))
        return problem_title(row.get("loss", "?"), row.get("counts"), preset=params.get("preset"),
                             samples=grid, tau=row.get("tau"), dim=row.get("dim"), restarts=len(restarts),
                             verdict=verdict)
    certificate = row.get("certificate") or {}
    verdict = (f"degenerate ({row['degenerate']})" if row.get("degenerate") else
               solve_verdict(row.get("certified"), certificate.get("reason")))
    if row.get("rank") is not None and not row.get("degenerate"):
        verdict += f", rank {row['rank']}"
    return problem_title(row.get("loss", "?"), row.get("counts"), preset=params.get("preset"), samples=grid,
                         tau=row.get("tau"), verdict=verdict)
