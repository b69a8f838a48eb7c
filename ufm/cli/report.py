"""Human-readable reports of ``ufm solve``, ``ufm verify`` and ``ufm certify`` (the JSON
payloads rendered as text tables). Pure functions of the payload dicts: no solver imports."""

from __future__ import annotations

import numpy as np


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def header(p: dict) -> str:
    """``loss supcon   tau 0.1   k = 8 classes   n = 88 samples`` (and the loss's other
    parameters, instances x views, batches)."""
    params = dict(p.get("loss_params") or {})
    tau = params.pop("tau", p.get("tau"))
    red = params.pop("reduction", None)
    extra = "".join(f"   {k} {_fmt(v)}" for k, v in params.items())
    if red and red != "sum":
        extra += f"   reduction {red}"
    s = p.get("samples") or {}
    n = s.get("n", int(sum(p["counts"])))
    if s.get("kind") == "views":
        who = f"{s['instances']} instances x {s['views']} views"
    else:
        who = f"k = {len(p['counts'])} classes"
    line = (f"loss {p['loss']}" + (f"   tau {tau:g}" if tau is not None else "") + extra
            + f"   {who}   n = {n} samples")
    if s.get("batches"):
        line += f"   {s['batches']} mini-batches ({s.get('batch_spec')})"
    return line


def _num(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def certificate_lines(c: dict) -> list[str]:
    """Floor, excess, scale and the certificate's verdict, decided on the scale: the excess, capped
    by the loss's range over the sphere (DESIGN section 5)."""
    excess = c["excess"]
    log_ex = c.get("log_excess")
    if excess is None:
        ex_text = "+inf"
    else:
        ex_text = f"{excess:.6e}" if excess > 0 or log_ex is None else f"exp({log_ex:.6g}) (below float64)"
    verdict = "CERTIFIED" if c["certified"] else "NOT certified"
    floor_word = c.get("floor_note") or "geometry-independent lower bound"
    lines = [
        f"floor              {c['floor']:.12g}   ({floor_word})",
        f"excess             {ex_text}   (value - floor)",
    ]
    kind = c.get("scale_kind", "excess")
    rel = c.get("gap_relative_to_scale", c.get("gap_relative_to_excess"))
    if c.get("scale") is not None:
        what = {"excess": "the excess",
                "floor": "absolute: max(excess, the loss's declared scale), the floor being attained"
                }.get(kind, "the loss's range over the sphere, below the excess")
        lines.append(f"scale              {c['scale']:.6e}   (what the geometry controls: {what})")
    if c.get("lambda_min") is None or rel is None:
        lines.append(f"certificate        {verdict}")
    else:
        of = "scale" if kind == "floor" else kind
        lines.append(f"certificate        lambda_min {c['lambda_min']:.3e}, gap bound {c['gap_bound']:.3e} = "
                     f"{rel:.1e} x {of}: {verdict} at tol {c['tol']:g}")
    if c.get("reason"):
        lines.append(f"                   ({c['reason']})")
    return lines


def _unique_words(unique) -> str:
    return {True: "yes", False: "no"}.get(unique, "unknown")


def _certified(p: dict) -> bool:
    return bool((p.get("certificate") or {}).get("certified"))


def _shown(p: dict) -> str:
    """What a non-unique report shows: an optimum where certified, else only a point."""
    return "optimum shown" if _certified(p) else "point shown (not certified)"


def _rank_qualifier(p: dict) -> str:
    """Where the optimum is not unique, which optimum the rank is of."""
    if p.get("optimum_unique", True) is True:
        return ""
    if _certified(p) and p.get("lowest_rank_exact"):
        return "; the lowest on the optimal face"
    return f"; of the {_shown(p)}"


def _collapsed_words(p: dict) -> str:
    """yes | no, of every optimum where it is unique; else what holds of the optimal face, or of
    the point shown where uniqueness is unknown."""
    unique = p.get("optimum_unique", True)
    if unique is True:
        return "yes" if p["collapsed"] else "no"
    if unique is not False:  # "unknown"
        return f"{'yes' if p['collapsed'] else 'no'}, the {_shown(p)}; other optima not ruled out"
    if p["collapsed"] and _certified(p):
        return "yes, some optimum (the one shown); the optimum is not unique"
    return f"{'yes' if p['collapsed'] else 'no'}, the {_shown(p)}; the optimum is not unique"


def format_solve(payload: dict, res=None) -> str:
    """Table of a ``ufm solve`` payload; ``res`` (the SolveResult) adds the orbit summary."""
    p = payload
    k = len(p["counts"])
    lines = [header(p)]
    if p.get("degenerate"):
        lines += [f"degenerate         {p['degenerate']}",
                  f"optimal value      {p['optimal_value']:.12g}   (= the floor)"]
        return "\n".join(lines)
    cert = p["certificate"]
    lines += [
        f"method {p['method']} ({p['solver']}), status {p['status']}, "
        f"{p['iterations']} iterations, {p['time_s']:.3f} s",
        (f"optimal value      {p['optimal_value']:.12g}" if cert.get("certified") else
         f"value              {p['optimal_value']:.12g}   (of the point shown: not certified optimal)"),
        *certificate_lines(cert),
        f"rank               {p['rank']}   (of G: eigenvalues > "
        f"{p['thresholds']['rank_rel_eig']:g} x largest{_rank_qualifier(p)})",
        f"collapsed          {_collapsed_words(p)}   "
        f"(within-class cosine >= 1 - {p['thresholds']['collapse_within_cosine']:g})",
    ]
    if "optimum_unique" in p:
        lines.append(f"optimum unique     {_unique_words(p['optimum_unique'])}: {p['optimum_unique_reason']}")
    if p.get("relaxation") and not p["relaxation"].startswith("the loss itself"):
        lines.insert(2, f"relaxation         {p['relaxation']}")
    if p.get("symmetry"):
        lines.insert(2, f"symmetry           {p['symmetry']}")
    if p.get("dim") is not None:
        tight = ("yes" if p["relaxation_tight"] else "no: the optimum needs dimension " + str(p["rank"])
                 if p["relaxation_tight"] is not None else f"unknown: the optimum shown needs dimension "
                 f"{p['rank']}, and a lower-rank optimum is not ruled out")
        lines.append(f"tight in dim {p['dim']:<5} {tight}")
    geo = p.get("geometry") or {}
    if geo:
        shown = ", ".join(f"{k2.replace('_', ' ')} {v:.6f}" for k2, v in geo.items())
        lines.append(f"geometry           {shown}")
    mb = p.get("minibatch")
    if mb:
        gd = mb.get("gram_distance_to_full_batch")
        which = "optimum" if p.get("optimum_unique", True) is True else _shown(p)
        lines.append(f"mini-batches       {mb['batches']} ({mb['batch_spec']}); {which} "
                     f"{'collapsed' if mb['collapsed'] else 'NOT collapsed'}; full-batch optimum "
                     f"{mb['full_batch_value']:.12g}"
                     + ("" if gd is None else f", Gram distance to it {gd:.3e}, class cosines differ "
                        f"by up to {mb['class_cosine_difference']:.3e}"))
    counts = p["counts"]
    norms = np.asarray(p["class_mean_norms"])
    cos = None if p["class_gram"] is None else np.asarray(p["class_gram"])
    orbit = res is not None and res.method == "orbit" and hasattr(res.geometry, "groups")
    groups = res.geometry.groups if orbit else None
    if cos is not None and k <= 12:
        word = "instance" if (p.get("samples") or {}).get("kind") == "views" else "class"
        unique = p.get("optimum_unique", True)
        if unique is not True:
            others = ("not unique: other optima have others" if unique is False
                      else "other optima not ruled out")
            lines.append(f"{word}-mean cosines of the {_shown(p)} ({others}), norms of {word} means:")
        else:
            lines.append(f"{word}-mean cosines (rows/cols: {word}: count), norms of {word} means:")
        lines.append("            " + "".join(f"{c:>9}" for c in range(k)) + "     norm")
        for c in range(k):
            row = "".join(f"{v:9.4f}" for v in cos[c])
            lines.append(f"{c:>4}: {counts[c]:>5}" + row + f"  {norms[c]:7.4f}")
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
        if cos is not None:
            off = cos[~np.eye(k, dtype=bool)]
            lines.append(f"class-mean cosines: min {off.min():.4f}, mean {off.mean():.4f}, "
                         f"max {off.max():.4f}  (simplex ETF: {-1 / (k - 1):.4f})")
        lines.append(f"class-mean norms: min {norms.min():.6f}, max {norms.max():.6f}")
    return "\n".join(lines)


def _minima_words(m: int) -> str:
    return f"{m} distinct {'minimum' if m == 1 else 'minima'}"


def minima_lines(p: dict) -> list[str]:
    """The census: one line per distinct minimum (best first) with its basin among the starts."""
    minima = p.get("minima") or []
    if not minima:
        return []
    rot = p.get("distinct_minima_up_to_rotation")
    lines = [f"census             {_minima_words(p['distinct_minima'])} up to {p['census_symmetry']} "
             f"(mapped Gram distance <= {p['same_point_tol']:g}); {rot} up to rotation alone"]
    flat = sum(m["kind"] == "flat_min" for m in minima)
    if flat:
        lines.append(f"{'':19}{flat} of them flat (a zero Hessian mode beyond rotations): not isolated "
                     "minima; those of equal value may be points of one connected set")
    if p.get("census_unresolved"):
        lines.append(f"{'':19}{p['census_unresolved']} pair(s) of minima agree on every invariant but "
                     "no map was found within the search's budget: the count is an upper bound")
    lines.append("   minimum        value   gap/s*  restarts  starts            Hessian min  kind       "
                 "certified")
    for m in minima:
        hess = _num(m["hessian_min"])
        cert = "-" if m["certified"] is None else f"{m['certified_restarts']} of {m['restarts']}"
        starts = ", ".join(f"{k} {v}" for k, v in m["starts"].items())
        lines.append(f"   {m['minimum']:>7}  {m['value']:12.8g}  {_num(m['gap_over_scale']):>7}  "
                     f"{m['restarts']:>8}  {starts:<16}  {hess:>11}  {m['kind'] or '-':<9}  {cert}")
    return lines


def format_verify(p: dict) -> str:
    """Table of a ``ufm verify`` payload."""
    oc = p["optimum_certificate"]
    lines = [header(p) + f"   d = {p['dim']}"]
    if oc is None:
        lines.append("convex optimum     none: the loss is not convex in G and has no convex relaxation "
                     "(no global certificate exists)")
        share = "census only"
    else:
        lines += [f"convex optimum     {p['optimal_value']:.12g}  (rank {p['optimum_rank']}, "
                  f"excess {oc['excess']:.6e}, certified {oc['certified']})",
                  f"relaxation tight   {'yes' if p['relaxation_tight'] else 'no'} in dimension {p['dim']}"]
        share = f"{p['fraction_global']:.0%} certified global"
    lines += [
        f"restarts           {len(p['restarts'])} ({p['optimizer']} on {p['device']}, {p['dtype']}): "
        f"{p['converged']} converged, {_minima_words(p['distinct_minima'])} among them, {share}",
        f"claim              {p['claim']}",
    ]
    lines += minima_lines(p)
    if oc is None:
        lines.append("   #        value   grad norm  Hessian min  minimum  stop")
        for i, r in enumerate(p["restarts"]):
            hess = _num(r["hessian_min"])
            cl = "-" if r["cluster"] is None else str(r["cluster"])
            lines.append(f"{i:>4}  {r['value']:12.6g}  {_num(r['grad_norm']):>9}  {hess:>11}  {cl:>7}  "
                         f"{r['stop_reason']}")
        return "\n".join(lines)
    lines.append("   #  value gap/s*  Gram dist   grad norm    gap/scale  certified  Hessian min  minimum  "
                 "stop")
    for i, r in enumerate(p["restarts"]):
        hess = _num(r["hessian_min"])
        cl = "-" if r.get("cluster") is None else str(r["cluster"])
        lines.append(f"{i:>4}  {_num(r.get('gap_over_scale', r['rel_gap'])):>12}  {r['gram_distance']:9.2e}  "
                     f"{_num(r['grad_norm']):>9}  "
                     f"{_num(r.get('gap_relative_to_scale', r['gap_relative_to_excess'])):>10}  "
                     f"{'yes' if r['certified'] else 'no':>9}  "
                     f"{hess:>11}  {cl:>7}  {r['stop_reason']}")
    lines.append("(value gap/s*: (value - optimal value) / the optimum's scale; gap/scale: the certificate's "
                 "bound over what the geometry controls, the restart's excess capped by the loss's range)")
    return "\n".join(lines)


def format_certify(r: dict) -> str:
    """Table of a ``ufm certify`` report."""
    lines = [header(r) + f"   d = {r['dim']}"]
    if r.get("degenerate"):
        lines.append(f"degenerate         {r['degenerate']}")
    lines.append(f"value              {r['value']:.12g}")
    lines += certificate_lines(r["certificate"])
    lines.append(f"                   [{r['certificate']['how']}]")
    cc = r.get("class_certificate")
    if cc is not None:
        lines.append("class level        collapsed embeddings: class-level certificate "
                     + ("CERTIFIED" if cc["certified"] else "NOT certified"))
    if r.get("optimal_value") is not None:
        excess_gap = ("" if r.get("rel_gap") is None else
                      f" (excess gap {r['rel_gap']:.2e} of the optimal excess)")
        lines.append(f"optimum            {r['optimal_value']:.12g} for these counts; value gap "
                     f"{_num(r.get('gap_over_scale'))} of the optimum's scale{excess_gap}")
        lines.append(f"class-mean cosines max deviation from the optimum {r['cosines_vs_optimum']:.3e}, "
                     f"from the simplex ETF {r['cosines_vs_etf']:.3e}")
        lines.append(f"distance to the optimal geometry: Gram {r['gram_distance']:.3e}, Procrustes "
                     + ("-" if r["procrustes_distance"] is None else f"{r['procrustes_distance']:.3e}"))
    lines.append(f"NC1                {r['nc1']:.3e}")
    return "\n".join(lines)
