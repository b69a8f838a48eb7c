"""``ufm network MODEL``: networks in place of free embeddings (Tian 2023). ``one-layer``: the
census of the local optima of one unit per activation (with a linear unit checked against the top
eigenvector of the contrastive covariance); ``two-layer``: a network with hidden units per
location trained through a loss of the family, and how its units specialise."""

from __future__ import annotations

import json
import sys

import numpy as np

from ufm.errors import UFMInputError

MODELS = ("one-layer", "two-layer")
DATA = ("mixture", "patterns")


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="one-layer | two-layer")
    p.add_argument("--data", default=None, help="mixture (P separated patterns; one-layer default) | "
                   "patterns (Tian 2023's pattern data; two-layer always)")
    p.add_argument("--samples", default=None, help="samples, each seen in two views (default 400 one-layer, "
                   "256 two-layer)")
    p.add_argument("--patterns", default="4", help="patterns (default 4)")
    p.add_argument("--input-dim", default="16", help="mixture: input dimension (default 16)")
    p.add_argument("--noise", default="0.05", help="mixture: noise standard deviation (default 0.05)")
    p.add_argument("--magnitudes", default=None, help="mixture: one magnitude per pattern, separated by "
                   "commas (default all 1)")
    p.add_argument("--locations", default="6", help="patterns: locations K (default 6)")
    p.add_argument("--vocab", default="12", help="patterns: tokens per location (default 12)")
    p.add_argument("--fixed", default="3", help="patterns: locations each pattern fixes (default 3)")
    p.add_argument("--activation", default="all",
                   help="linear | relu | leaky_relu | quadratic (separated by commas) | all (default)")
    p.add_argument("--restarts", default="32", help="one-layer: random starts (default 32)")
    p.add_argument("--max-iter", default="3000", help="one-layer: most iterations per start (default 3000)")
    p.add_argument("--hidden", default="8", help="two-layer: hidden units per location (default 8)")
    p.add_argument("--out-dim", default="16", help="two-layer: embedding dimension (default 16)")
    p.add_argument("--steps", default="1000", help="two-layer: gradient steps (default 1000)")
    p.add_argument("--lr", default="0.05", help="two-layer: learning rate (default 0.05)")
    p.add_argument("--optimizer", default="sgd", help="two-layer: sgd (momentum 0.9; default) | adam")
    p.add_argument("--seed", default="0", help="seed of the data and of the starts (default 0)")
    p.add_argument("--plot", metavar="FILE", help="draw the census (one-layer) or the specialisation "
                   "(two-layer) to FILE (.png, .pdf, .svg)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _activations(text: str) -> list[str]:
    from ufm.networks.one_layer import ACTIVATIONS, check_activation

    if text == "all":
        return list(ACTIVATIONS)
    names = [a.strip() for a in text.split(",")]
    if not all(names):
        raise UFMInputError("--activation", f"empty name in {text!r} (linear, relu, leaky_relu, quadratic "
                            "or all)")
    if len(set(names)) < len(names):
        raise UFMInputError("--activation", f"an activation appears twice in {text!r}")
    return [check_activation(a) for a in names]


def _data(args, model: str, seed: int):
    from ufm.inputs import positive_int
    from ufm.networks.data import pattern_data, pattern_mixture
    from ufm.params import Param, positive_number

    kind = args.data or ("mixture" if model == "one-layer" else "patterns")
    if kind not in DATA:
        raise UFMInputError("--data", f"unknown data {kind!r} (choose from {', '.join(DATA)})")
    if model == "two-layer" and kind != "patterns":
        raise UFMInputError("--data", "two-layer networks read pattern data (hidden units per location)")
    default_n = "400" if model == "one-layer" else "256"
    n = positive_int(args.samples if args.samples is not None else default_n, "--samples", 100_000)
    P = positive_int(args.patterns, "--patterns", 10_000)
    if kind == "mixture":
        noise = Param("noise", None, "", minimum=0.0, strict=False).parse(args.noise, "--noise")
        mags = None
        if args.magnitudes is not None:
            mags = [positive_number(m, "--magnitudes") for m in args.magnitudes.split(",") if m.strip()]
        return kind, pattern_mixture(n, P, positive_int(args.input_dim, "--input-dim", 100_000), noise, mags,
                                     seed)
    K = positive_int(args.locations, "--locations", 10_000)
    V = positive_int(args.vocab, "--vocab", 10_000)
    return kind, pattern_data(n, K, V, P, positive_int(args.fixed, "--fixed", 10_000), seed)


def run(args, loss_from_args=None) -> int:
    from ufm.cli.plot import figure_path
    from ufm.inputs import integer, positive_int
    from ufm.params import positive_number

    if args.model not in MODELS:
        raise UFMInputError("MODEL", f"unknown model {args.model!r} (choose from {', '.join(MODELS)})")
    if args.model == "one-layer":
        from ufm.losses import all_params

        given = [p.flag for name, (p, _) in all_params().items() if getattr(args, name, None) is not None]
        if getattr(args, "loss", None) is not None or getattr(args, "reduction", None) is not None or given:
            flag = "--loss" if getattr(args, "loss", None) is not None else (given or ["--reduction"])[0]
            raise UFMInputError(flag, "one-layer units maximise the contrastive covariance energy (uniform "
                                "pair weights); the loss and its parameters apply to two-layer")
    seed = integer(args.seed, "--seed", 0, 2**63 - 1)
    activations = _activations(args.activation)
    plot = None if args.plot is None else figure_path(args.plot, "--plot")
    kind, data = _data(args, args.model, seed)
    payload = {"model": args.model, "data": kind, "samples": data.n, "input_dim": data.dim,
               "patterns": len(data.directions), "seed": seed}
    if args.model == "one-layer":
        from solvers.networks.one_layer import one_layer_census, top_eigenvector_cosine

        restarts = positive_int(args.restarts, "--restarts", 100_000)
        max_iter = positive_int(args.max_iter, "--max-iter", 10**9)
        results = []
        for act in activations:
            print(f"ufm network: one unit, {act}, {restarts} starts ...", file=sys.stderr, flush=True)
            res = one_layer_census(data, act, restarts, seed, max_iter)
            row = res.to_dict()
            if act == "linear":  # the oracle: the top eigenvector of the contrastive covariance
                row["top_eigenvector_cosine"] = top_eigenvector_cosine(res, data)
            results.append(row)
        payload["results"] = results
    else:
        from solvers.networks.two_layer import check_network_loss, train_two_layer

        hidden = positive_int(args.hidden, "--hidden", 10_000)
        out_dim = positive_int(args.out_dim, "--out-dim", 10_000)
        steps = positive_int(args.steps, "--steps", 10**9)
        lr = positive_number(args.lr, "--lr")
        if args.optimizer not in ("sgd", "adam"):
            raise UFMInputError("--optimizer", f"unknown optimizer {args.optimizer!r} (choose from sgd, "
                                "adam)")
        K, V = positive_int(args.locations, "--locations"), positive_int(args.vocab, "--vocab")
        loss = None if loss_from_args is None else loss_from_args(args)
        if loss is not None:
            check_network_loss(loss)  # before the first activation is trained
        payload["loss"] = None if loss is None else loss.describe()
        results, scores = [], {}
        for act in activations:
            print(f"ufm network: two layers, {act}, {steps} steps ...", file=sys.stderr, flush=True)
            res = train_two_layer(data, K, V, act, hidden, out_dim, loss, steps, lr, seed,
                                  optimizer=args.optimizer)
            results.append(res.summary())
            scores[act] = res.specialisation[~np.isnan(res.specialisation)]
        payload["results"] = results
    if plot is not None:
        from ufm import plotting

        if args.model == "one-layer":
            fig = plotting.network_census(payload["results"])
        else:
            fig = plotting.specialisation_histogram(scores)
        plotting.save_figure(fig, plot)
        payload["figure"] = str(plot)
    print(json.dumps(payload) if args.json else _table(payload))
    return 0


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _table(payload: dict) -> str:
    lines = [f"{payload['model']}: {payload['data']} data, {payload['samples']} samples x 2 views, "
             f"{payload['input_dim']} inputs, {payload['patterns']} patterns, seed {payload['seed']}"]
    for r in payload["results"]:
        if payload["model"] == "one-layer":
            v = r["verdicts"]
            optima = "a certified local optimum" if r["distinct_optima"] == 1 else "certified local optima"
            head = (f"{r['activation']:<11} {_plural(r['distinct_end_points'], 'distinct end point')} from "
                    f"{_plural(r['restarts'], 'start')}, {r['distinct_optima']} of them {optima}; "
                    f"{r['dead_units']} dead; starts: {v['local_optimum']} certified, {v['not_optimal']} "
                    f"not optimal, {v['unresolved']} unresolved")
            if "top_eigenvector_cosine" in r:
                head += f"; |cos| with the top eigenvector of C: {r['top_eigenvector_cosine']:.12f}"
            lines.append(head)
            for o in r["optima"][:12]:
                align = "" if o["pattern"] is None else f", pattern {o['pattern']} (cos {o['alignment']:.4f})"
                kinks = "" if not o["active_kinks"] else f", on {_plural(o['active_kinks'], 'kink')}"
                verdict = {"local_optimum": "local optimum (certified)", "not_optimal": "not a local optimum",
                           "unresolved": "unresolved"}[o["verdict"]]
                starts = _plural(o["restarts"], "start")
                lines.append(f"    E = {o['energy']:.6g}, {starts}{align}{kinks}: {verdict}")
        else:
            lines.append(f"{r['activation']:<11} loss {r['initial_loss']:.6g} -> {r['final_loss']:.6g}; "
                         f"specialised units {r['initial_specialised_fraction']:.0%} -> "
                         f"{r['specialised_fraction']:.0%} (median share "
                         f"{r['initial_median_specialisation']:.3f} -> {r['median_specialisation']:.3f})")
    if "figure" in payload:
        lines.append(f"figure {payload['figure']}")
    return "\n".join(lines)
