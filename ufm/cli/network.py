"""``ufm network MODEL``: networks in place of free embeddings (Tian 2023). ``one-layer``: the
census of the local optima of one unit per activation (with a linear unit checked against the top
eigenvector of the contrastive covariance); ``two-layer``: a network with hidden units per
location trained through a loss of the family, and how its units specialise."""

from __future__ import annotations

import json
import sys

import numpy as np

from solvers.options import NETWORK_OPTIONS, activations, network_default
from ufm.errors import UFMInputError


def _value(args, name: str, model: str | None = None):
    """Option ``name`` of the command, checked by its declaration; a default that depends on the
    model where the command line leaves it out."""
    value = getattr(args, name)
    if value is None and model is not None:
        value = network_default(name, model)
    return NETWORK_OPTIONS[name].parse(value)


def _data(args, model: str, seed: int):
    from ufm.networks.data import pattern_data, pattern_mixture
    from ufm.params import positive_number

    kind = _value(args, "data", model)
    if model == "two-layer" and kind != "patterns":
        raise UFMInputError("--data", "two-layer networks read pattern data (hidden units per location)")
    n, P = _value(args, "samples", model), _value(args, "patterns")
    if kind == "mixture":
        mags = None
        if args.magnitudes is not None:
            mags = [positive_number(m, "--magnitudes") for m in args.magnitudes.split(",") if m.strip()]
        return kind, pattern_mixture(n, P, _value(args, "input_dim"), _value(args, "noise"), mags, seed)
    K, V = _value(args, "locations"), _value(args, "vocab")
    return kind, pattern_data(n, K, V, P, _value(args, "fixed"), seed)


def run(args, loss_from_args=None) -> int:
    from ufm.cli.plot import figure_path

    _value(args, "model")
    if args.model == "one-layer":
        from ufm.losses import all_params

        given = [p.flag for name, (p, _) in all_params().items() if getattr(args, name, None) is not None]
        if getattr(args, "loss", None) is not None or getattr(args, "reduction", None) is not None or given:
            flag = "--loss" if getattr(args, "loss", None) is not None else (given or ["--reduction"])[0]
            raise UFMInputError(flag, "one-layer units maximise the contrastive covariance energy (uniform "
                                "pair weights); the loss and its parameters apply to two-layer")
    seed = _value(args, "seed")
    acts = activations(args.activation, "--activation")
    plot = None if args.plot is None else figure_path(args.plot, "--plot")
    kind, data = _data(args, args.model, seed)
    payload = {"model": args.model, "data": kind, "samples": data.n, "input_dim": data.dim,
               "patterns": len(data.directions), "seed": seed}
    if args.model == "one-layer":
        from solvers.networks.one_layer import one_layer_census, top_eigenvector_cosine

        restarts, max_iter = _value(args, "restarts"), _value(args, "max_iter")
        results = []
        for act in acts:
            print(f"ufm network: one unit, {act}, {restarts} starts ...", file=sys.stderr, flush=True)
            res = one_layer_census(data, act, restarts, seed, max_iter)
            row = res.to_dict()
            if act == "linear":  # the oracle: the top eigenvector of the contrastive covariance
                row["top_eigenvector_cosine"] = top_eigenvector_cosine(res, data)
            results.append(row)
        payload["results"] = results
    else:
        from solvers.networks.two_layer import check_network_loss, train_two_layer

        hidden, out_dim = _value(args, "hidden"), _value(args, "out_dim")
        steps, lr, optimizer = _value(args, "steps"), _value(args, "lr"), _value(args, "optimizer")
        K, V = _value(args, "locations"), _value(args, "vocab")
        loss = None if loss_from_args is None else loss_from_args(args)
        if loss is not None:
            check_network_loss(loss)  # before the first activation is trained
        payload["loss"] = None if loss is None else loss.describe()
        results, scores = [], {}
        for act in acts:
            print(f"ufm network: two layers, {act}, {steps} steps ...", file=sys.stderr, flush=True)
            res = train_two_layer(data, K, V, act, hidden, out_dim, loss, steps, lr, seed,
                                  optimizer=optimizer)
            results.append(res.summary())
            scores[act] = res.specialisation[~np.isnan(res.specialisation)]
        payload["results"] = results
    if plot is not None:
        from ufm import plotting

        data_words = (f"{payload['patterns']} patterns ({kind}), n = {payload['samples']}, "
                      f"input dimension {payload['input_dim']}, seed {seed}")
        if args.model == "one-layer":
            title = f"one unit, {_value(args, 'restarts')} starts per activation on {data_words}"
            fig = plotting.network_census(payload["results"], title=title)
        else:
            loss = payload["loss"]["name"] if payload.get("loss") else "the network loss"
            title = (f"two layers, {_value(args, 'hidden')} hidden units per location, "
                     f"{_value(args, 'steps')} steps through {loss} on {data_words}")
            fig = plotting.specialisation_histogram(scores, title=title)
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
