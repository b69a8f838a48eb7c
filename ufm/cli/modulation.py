"""``ufm network modulation``: global modulation (Tian 2023, section 6): which local tokens a
two-layer network learns first and most, those discriminative of the global pattern or those shared
across global patterns (``ufm.networks.modulation``, ``solvers.networks.modulation``), per
activation (default ReLU against linear units)."""

from __future__ import annotations

import json
import sys

from solvers.options import MODEL_DEFAULTS, MODULATION_ONLY, NETWORK_OPTIONS, UNUSED, activations
from ufm.errors import UFMInputError

MODEL = "modulation"
#: the summary keys the table prints per token class
CLASSES = ("discriminative", "shared")


def _given(args, name: str) -> bool:
    """Whether option ``name`` was given on the command line (``ufm.cli.network._given``; a switch
    when it differs from its default)."""
    from ufm.cli.network import _given as given

    option = NETWORK_OPTIONS[name]
    if option.kind == "bool":
        return getattr(args, name, option.default) != option.default
    return given(args, name)


def refuse_options(args) -> None:
    """The options of the modulation model, given to another model: an error."""
    for name in MODULATION_ONLY:
        if _given(args, name):
            raise UFMInputError(NETWORK_OPTIONS[name].flag, f"a modulation option, not used by {args.model} "
                                "networks")


def _value(args, name: str):
    """Option ``name``, checked by its declaration; the modulation model's default where the command
    line leaves it out (its lr, steps, vocab, samples, activations and shared mode are its own)."""
    value = getattr(args, name, None)
    if name in MODEL_DEFAULTS[MODEL] and not _given(args, name):
        value = MODEL_DEFAULTS[MODEL][name]
    return NETWORK_OPTIONS[name].parse(value)


def _refuse_unused(args) -> None:
    for name in UNUSED[MODEL]:
        if _given(args, name):
            raise UFMInputError(NETWORK_OPTIONS[name].flag, "not used by the modulation model (its data "
                                "has discriminative and shared tokens: see --shared-mode)")
    data = getattr(args, "data", None)
    if data is not None and data != "modulation":
        raise UFMInputError("--data", "the modulation model reads its own data (global patterns with "
                            "discriminative and shared tokens): modulation")


def data_words(payload: dict) -> str:
    d = payload["data_model"]
    return (f"{payload['patterns']} patterns, {d['discriminative']} discriminative + {d['shared']} shared "
            f"({d['shared_mode']}, groups of {d['shared_by']}) of {d['locations']} locations, vocab "
            f"{d['vocab']}, n = {payload['samples']}, seed {payload['seed']}")


def run(args, loss_from_args=None) -> int:
    from solvers.networks.modulation import train_modulation
    from solvers.networks.two_layer import check_network_loss
    from ufm.cli.plot import figure_path
    from ufm.networks.modulation import modulation_data

    _refuse_unused(args)
    seed = _value(args, "seed")
    acts = activations(_value(args, "activation"), "--activation")
    plot = None if args.plot is None else figure_path(args.plot, "--plot")
    mode = _value(args, "shared_mode")
    n, G = _value(args, "samples"), _value(args, "patterns")
    K, V = _value(args, "locations"), _value(args, "vocab")
    D, S, s = _value(args, "discriminative"), _value(args, "shared"), _value(args, "shared_by")
    data = modulation_data(n, K, V, G, D, S, s, seed, mode)
    training = {name: _value(args, name) for name in ("hidden", "out_dim", "steps", "lr", "optimizer",
                                                       "threshold", "record_every", "fresh_views")}
    training["batchnorm"] = _value(args, "batchnorm") or "off"
    training["weight_decay"] = _value(args, "weight_decay") or 0.0
    loss = None if loss_from_args is None else loss_from_args(args)
    if loss is not None:
        check_network_loss(loss)  # before the first activation is trained
    payload = {"model": MODEL, "data": "modulation", "samples": data.n, "input_dim": data.dim, "patterns": G,
               "seed": seed,
               "data_model": {"locations": K, "vocab": V, "discriminative": D, "shared": S,
                              "shared_by": data.shared_by, "shared_mode": mode},
               "loss": None if loss is None else loss.describe(), "training": training}
    results, curves = {}, []
    for act in acts:
        print(f"ufm network: modulation, {act}, {training['steps']} steps ...", file=sys.stderr, flush=True)
        res = train_modulation(data, act, hidden=training["hidden"], out_dim=training["out_dim"], loss=loss,
                               steps=training["steps"], lr=training["lr"], seed=seed,
                               record_every=training["record_every"], threshold=training["threshold"],
                               optimizer=training["optimizer"], weight_decay=training["weight_decay"],
                               batchnorm=training["batchnorm"], fresh_views=training["fresh_views"])
        results[act] = res.summary()
        curves.append(res.to_dict())
    payload["modulation"] = results
    if plot is not None:
        from ufm import plotting

        loss_name = payload["loss"]["name"] if payload.get("loss") else "InfoNCE (tau 0.1)"
        title = (f"global modulation: two layers, {training['hidden']} hidden units per location, "
                 f"{training['steps']} steps (lr {training['lr']:g}{_fresh(training)}) through {loss_name} "
                 f"on {data_words(payload)}")
        fig = plotting.modulation_panels(curves, title=title)
        plotting.save_figure(fig, plot)
        payload["figure"] = str(plot)
    print(json.dumps(payload) if args.json else table(payload))
    return 0


def _fresh(training: dict) -> str:
    return ", wildcards drawn afresh every step" if training["fresh_views"] else ", one pair of views"


def _step(x) -> str:
    return "never (half or more never crossed)" if x is None else f"step {x:g}"


def led(summary: dict) -> str | None:
    """Which class crossed first, in words, when both medians exist (None otherwise)."""
    d, s = summary.get("discriminative_step"), summary.get("shared_step")
    if d is None or s is None:
        return None
    if d == s:
        return f"neither class led: both median crossings at step {d:g}"
    first, then = ("discriminative", "shared") if d < s else ("shared", "discriminative")
    return (f"the {first} tokens led: median crossing at step {min(d, s):g}, the {then} tokens' at "
            f"step {max(d, s):g}")


def table(payload: dict) -> str:
    t = payload["training"]
    lines = [f"modulation: {data_words(payload)}; {t['steps']} steps, lr {t['lr']:g}{_fresh(t)}, "
             f"threshold {t['threshold']:g} (a token is learned when its best unit's weight share on it "
             f"reaches it)"]
    for act, r in payload["modulation"].items():
        lines.append(f"{act:<11} loss {r['initial_loss']:.6g} -> {r['final_loss']:.6g}")
        for cls in CLASSES:
            lines.append(f"    {cls:<14} median crossing {_step(r[f'{cls}_step'])}; "
                         f"{r[f'{cls}_crossed']} of {r[f'{cls}_tokens']} tokens crossed; median weight "
                         f"{r[f'{cls}_initial_weight']:.3f} -> {r[f'{cls}_weight']:.3f}")
        words = led(r)
        lines.append(f"    {words}" if words else "    no class led by its median crossing (one or both "
                     "never crossed for half its tokens)")
    if "figure" in payload:
        lines.append(f"figure {payload['figure']}")
    return "\n".join(lines)
