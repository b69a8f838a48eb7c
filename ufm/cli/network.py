"""``ufm network MODEL``: networks in place of free embeddings (Tian 2023). ``one-layer``: the
census of the local optima of one unit per activation (with a linear unit checked against the top
eigenvector of the contrastive covariance); ``two-layer``: a network with hidden units per
location trained through a loss of the family, and how its units specialise; ``modulation``
(``ufm.cli.modulation``): which tokens such a network learns first and most, those discriminative
of the global pattern or those shared across patterns."""

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
    if kind == "modulation":
        raise UFMInputError("--data", "modulation data (discriminative and shared tokens) is read by the "
                            "modulation model: ufm network modulation")
    if model == "two-layer" and kind != "patterns":
        raise UFMInputError("--data", "two-layer networks read pattern data (hidden units per location)")
    n, P = _value(args, "samples", model), _value(args, "patterns")
    if kind == "mixture":
        mags = None
        if args.magnitudes is not None:
            mags = [positive_number(m, "--magnitudes") for m in args.magnitudes.split(",") if m.strip()]
        return kind, pattern_mixture(n, P, _value(args, "input_dim"), _value(args, "noise"), mags, seed)
    K, V = _value(args, "locations"), _value(args, "vocab")
    if model == "two-layer":  # from the patterns' source, which fresh batches draw from too
        return kind, _pattern_source(args, seed).draw(n)
    return kind, pattern_data(n, K, V, P, _value(args, "fixed"), seed)


def _pattern_source(args, seed: int):
    """Two-layer: the patterns (``ufm.networks.data.pattern_source``; without
    --tokens-per-location its draws are ``pattern_data``'s)."""
    from ufm.networks.data import pattern_source

    return pattern_source(_value(args, "locations"), _value(args, "vocab"), _value(args, "patterns"),
                          _value(args, "fixed"), seed, _value(args, "tokens_per_location"))


def _given(args, name: str) -> bool:
    """Whether option ``name`` was given on the command line: argparse keeps the text of a given
    option and the declared default of one left out, so an option declared without a default (None)
    is given when it is set, a number option when it holds text (``--lr 0.05`` is given, though
    0.05 is the default)."""
    value = getattr(args, name, None)
    if value is None:
        return False
    return NETWORK_OPTIONS[name].default is None or isinstance(value, str)


def _apply_setup(args) -> str | None:
    """``--setup tian2023``: the paper's simulation (``solvers.networks.two_layer.TIAN2023``) fills
    every option the command line leaves out, and the loss (InfoNCE, tau 0.1, negatives same_view,
    reduction mean) where no other loss is named; options given explicitly win. The setup's name,
    or None."""
    setup = _value(args, "setup")
    if setup in (None, "none"):
        return None
    if args.model != "two-layer":
        raise UFMInputError("--setup", f"{setup} is a setup of two-layer training (Tian 2023's simulation)")
    from solvers.networks.two_layer import SETUPS, TIAN2023_LOSS

    given = {name: _given(args, name) for name in SETUPS[setup]}
    for name, value in SETUPS[setup].items():
        if not _given(args, name):
            setattr(args, name, value)
    if args.fresh_batches == "off" and not given["batch"]:
        args.batch = None  # the preset's batch size is that of its fresh batches
    if getattr(args, "loss", None) in (None, TIAN2023_LOSS["loss"]):
        for name, value in TIAN2023_LOSS.items():
            if getattr(args, name, None) is None:
                setattr(args, name, value)
    return setup


def run(args, loss_from_args=None) -> int:
    from ufm.cli.plot import figure_path

    _value(args, "model")
    setup = _apply_setup(args)  # two-layer: a preset fills the options left out
    from ufm.cli import modulation

    if args.model == "modulation":
        return modulation.run(args, loss_from_args)
    modulation.refuse_options(args)  # the modulation model's own options, given to another model
    if args.model == "one-layer":
        from ufm.losses import all_params

        given = [p.flag for name, (p, _) in all_params().items() if getattr(args, name, None) is not None]
        if getattr(args, "loss", None) is not None or getattr(args, "reduction", None) is not None or given:
            flag = "--loss" if getattr(args, "loss", None) is not None else (given or ["--reduction"])[0]
            raise UFMInputError(flag, "one-layer units maximise the contrastive covariance energy E_alpha; "
                                "its pair weights are chosen by --alpha uniform|infonce (InfoNCE's "
                                "temperature: --alpha-tau); the loss and its parameters apply to two-layer")
        alpha = _value(args, "alpha") or "uniform"
        alpha_tau = _value(args, "alpha_tau")
        if alpha_tau is not None and alpha != "infonce":
            raise UFMInputError("--alpha-tau", "the temperature of InfoNCE's alpha: give it with --alpha "
                                "infonce (uniform alpha has none)")
    elif getattr(args, "alpha", None) is not None or getattr(args, "alpha_tau", None) is not None:
        flag = "--alpha" if getattr(args, "alpha", None) is not None else "--alpha-tau"
        raise UFMInputError(flag, f"the pair weights of the one-layer energy; {args.model} trains through "
                            "--loss")
    seed = _value(args, "seed")
    acts = activations(_value(args, "activation", args.model), "--activation")
    plot = None if args.plot is None else figure_path(args.plot, "--plot")
    kind, data = _data(args, args.model, seed)
    payload = {"model": args.model, "data": kind, "samples": data.n, "input_dim": data.dim,
               "patterns": len(data.directions), "seed": seed}
    if args.model == "one-layer":
        from solvers.networks.one_layer import one_layer_census, top_eigenvector

        restarts, max_iter = _value(args, "restarts"), _value(args, "max_iter")
        results = []
        for act in acts:
            print(f"ufm network: one unit, {act}, {restarts} starts, alpha {alpha} ...", file=sys.stderr,
                  flush=True)
            res = one_layer_census(data, act, restarts, seed, max_iter, alpha=alpha, alpha_tau=alpha_tau,
                                   kind=kind)
            row = res.to_dict()
            top = top_eigenvector(res, data)
            if top is not None:  # the oracle: the top eigenvector of the contrastive covariance
                row["top_eigenvector_cosine"] = top["cosine"]  # None where it is not unique
                row["top_eigenvector_unique"], row["top_eigen_gap"] = top["unique"], top["eigen_gap"]
            results.append(row)
        payload["alpha"], payload["alpha_tau"] = alpha, results[0]["alpha_tau"] if results else alpha_tau
        payload["results"] = results
    else:
        from solvers.networks.two_layer import check_anchor, check_network_loss, train_two_layer

        hidden, out_dim = _value(args, "hidden"), _value(args, "out_dim")
        steps, lr, optimizer = _value(args, "steps"), _value(args, "lr"), _value(args, "optimizer")
        K, V = _value(args, "locations"), _value(args, "vocab")
        training = {"setup": setup or "none", "hidden": hidden, "out_dim": out_dim, "steps": steps, "lr": lr,
                    "optimizer": optimizer, "batchnorm": _value(args, "batchnorm") or "off",
                    "weight_decay": _value(args, "weight_decay") or 0.0,
                    "fresh_batches": _value(args, "fresh_batches") or "off", "batch": _value(args, "batch"),
                    "anchor": _value(args, "anchor") or "symmetric",
                    "tokens_per_location": _value(args, "tokens_per_location")}
        fresh = training["fresh_batches"] == "on"
        if training["batch"] is not None and not fresh:
            raise UFMInputError("--batch", "the samples of each fresh batch: needs --fresh-batches on")
        if fresh and training["batch"] is None:
            training["batch"] = data.n
        loss = None if loss_from_args is None else loss_from_args(args)
        if loss is not None:
            check_network_loss(loss)  # before the first activation is trained
            check_anchor(training["anchor"], loss)
        payload["loss"] = None if loss is None else loss.describe()
        payload["training"] = training
        source = _pattern_source(args, seed) if fresh else None
        results, scores = [], {}
        for act in acts:
            print(f"ufm network: two layers, {act}, {steps} steps ...", file=sys.stderr, flush=True)
            res = train_two_layer(data, K, V, act, hidden, out_dim, loss, steps, lr, seed,
                                  optimizer=optimizer, batchnorm=training["batchnorm"],
                                  weight_decay=training["weight_decay"], anchor=training["anchor"],
                                  source=source, batch=training["batch"] if fresh else None)
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
            if setup:
                title = f"{setup}: {title}"
            rows = payload["results"]
            fig = plotting.specialisation_histogram(
                scores, title=title, coverage={r["activation"]: r["token_coverage"] for r in rows},
                paper_score={r["activation"]: r["paper_score"] for r in rows})
        plotting.save_figure(fig, plot)
        payload["figure"] = str(plot)
    print(json.dumps(payload) if args.json else _table(payload))
    return 0


def _fraction(x) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _number(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _training_words(t: dict, loss: dict | None) -> str:
    """The two-layer training, as the JSON's ``training`` block gives it, on one line."""
    head = f"setup {t['setup']}: " if t.get("setup") not in (None, "none") else ""
    batches = (f"fresh batches of {t['batch']}" if t.get("fresh_batches") == "on"
               else "the one fixed sample")
    loss_words = "" if loss is None else f", {loss['name']} ({_params_words(loss.get('params', {}))})"
    extra = [f"batchnorm {t['batchnorm']}" if t.get("batchnorm") not in (None, "off") else "",
             f"weight decay {t['weight_decay']:g}" if t.get("weight_decay") else "",
             f"anchor {t['anchor']}" if t.get("anchor") else "",
             f"{t['tokens_per_location']} tokens per location" if t.get("tokens_per_location") else ""]
    return (f"{head}{t['hidden']} hidden units per location, out dim {t['out_dim']}; {t['steps']} steps of "
            f"{t['optimizer']} at lr {t['lr']:g} on {batches}{loss_words}"
            + "".join(f", {e}" for e in extra if e))


def _params_words(params: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items())


def _table(payload: dict) -> str:
    lines = [f"{payload['model']}: {payload['data']} data, {payload['samples']} samples x 2 views, "
             f"{payload['input_dim']} inputs, {payload['patterns']} patterns, seed {payload['seed']}"]
    if payload.get("training"):
        lines.append(_training_words(payload["training"], payload.get("loss")))
    for r in payload["results"]:
        if payload["model"] == "one-layer":
            v = r["verdicts"]
            optima = "a certified local optimum" if r["distinct_optima"] == 1 else "certified local optima"
            head = (f"{r['activation']:<11} {_plural(r['distinct_end_points'], 'distinct end point')} from "
                    f"{_plural(r['restarts'], 'start')}, {r['distinct_optima']} of them {optima}; "
                    f"{r['dead_units']} dead; starts: {v['local_optimum']} certified, {v['not_optimal']} "
                    f"not optimal, {v['unresolved']} unresolved")
            c = "C" if r.get("alpha", "uniform") == "uniform" else "C_alpha (at the best end point's alpha)"
            if r.get("top_eigenvector_unique") is False:
                head += (f"; top eigenvector of {c} not unique (eigen-gap {r['top_eigen_gap']:.1e} x |C|, "
                         "below float64's resolution)")
            elif r.get("top_eigenvector_cosine") is not None:
                head += f"; |cos| with the top eigenvector of {c}: {r['top_eigenvector_cosine']:.12f}"
            if "patterns_found" in r:
                rule = ("largest weights = the pattern's tokens" if r.get("pattern_rule") == "top_weights"
                        else "cos >= 0.95 with the pattern")
                head += f"; patterns found by a certified optimum: {r['patterns_found']} of " \
                        f"{payload['patterns']} ({rule})"
            lines.append(head)
            if r.get("alpha_statement"):
                lines.append(f"    {r['alpha_statement']}")
            for o in r["optima"][:12]:
                align = "" if o["pattern"] is None else f", pattern {o['pattern']} (cos {o['alignment']:.4f})"
                if o.get("found_pattern") is not None:
                    align += f", finds pattern {o['found_pattern']}"
                kinks = "" if not o["active_kinks"] else f", on {_plural(o['active_kinks'], 'kink')}"
                verdict = {"local_optimum": "local optimum (certified)", "not_optimal": "not a local optimum",
                           "unresolved": "unresolved"}[o["verdict"]]
                if o["verdict"] == "local_optimum" and o.get("certificate_order") == 2:
                    verdict = "local optimum (certified, second order on the critical cone)"
                starts = _plural(o["restarts"], "start")
                lines.append(f"    E = {o['energy']:.6g}, {starts}{align}{kinks}: {verdict}")
        else:
            lines.append(f"{r['activation']:<11} loss {r['initial_loss']:.6g} -> {r['final_loss']:.6g}; "
                         f"pattern tokens covered {_fraction(r.get('initial_token_coverage'))} -> "
                         f"{_fraction(r.get('token_coverage'))} ({r.get('covered_tokens')} of "
                         f"{r.get('pattern_tokens')}); specialised live units "
                         f"{_fraction(r['initial_specialised_fraction'])} -> "
                         f"{_fraction(r['specialised_fraction'])} ({r.get('specialised_units')} of "
                         f"{r['live_units']} live, {r.get('units')} units); paper score "
                         f"{_number(r.get('initial_paper_score'))} -> {_number(r.get('paper_score'))}")
    if "figure" in payload:
        lines.append(f"figure {payload['figure']}")
    return "\n".join(lines)
