"""Studies of networks in place of free embeddings (``ufm network``), declared with a ``[network]``
table instead of ``[problem]``: every list-valued entry is swept, each point is one
``one-layer`` census, ``two-layer`` or ``modulation`` training run (Tian 2023)."""

from __future__ import annotations

from experiments.options import STUDY_TABLES, table_key
from experiments.validate import suggest
from solvers.options import MODEL_DEFAULTS, UNUSED, activations, network_default
from ufm.errors import UFMInputError

#: the [network] keys: the options of ``ufm network`` (``solvers.options.NETWORK_OPTIONS``) that a
#: study sets, with their declared types, ranges and defaults (data and samples: the model's own)
NETWORK_KEYS = STUDY_TABLES["network"]
ONE_LAYER_FIELDS = ("distinct_optima", "distinct_end_points", "dead_units", "patterns_found", "best_energy",
                    "certified", "top_eigenvector_cosine")
#: two-layer: ``specialised_fraction`` and ``median_specialisation`` are over the live units;
#: ``token_coverage`` (pattern tokens with a dedicated unit) and ``paper_score`` (the paper's
#: ``loc_all``) are ``solvers.networks.two_layer.TwoLayerResult.summary``'s
TWO_LAYER_FIELDS = ("initial_loss", "final_loss", "specialised_fraction", "median_specialisation",
                    "token_coverage", "paper_score", "specialised_units", "live_units")
#: modulation: per token class, the median step at which a token's best unit crosses the threshold
#: (None: half the class or more never did), the median final weight share, how many crossed
#: (and their fraction), and the discriminative class's lead in both (discriminative minus shared)
#: (``solvers.networks.modulation.ModulationResult.summary``)
MODULATION_FIELDS = ("discriminative_step", "shared_step", "discriminative_weight", "shared_weight",
                     "discriminative_crossed", "shared_crossed", "discriminative_crossed_fraction",
                     "shared_crossed_fraction", "weight_lead", "crossed_lead", "initial_loss", "final_loss")


def _key(key: str) -> str:
    return f"[network].{key}"


def _value(key: str, v):
    """One value of a [network] key, checked by its declaration."""
    if key == "activation":
        if v == "all":  # the whole value only (validate_network)
            raise UFMInputError(_key(key), "all is every activation: give it alone, not in a list")
        return activations(v, _key(key), typed=True)[0]
    return NETWORK_KEYS[key].parse(v, _key(key), typed=True)


def validate_network(raw: dict) -> tuple[dict, list[str]]:
    """The normalised [network] table (file order, then defaults) and its swept keys."""
    for key in raw:
        if key not in NETWORK_KEYS:
            raise UFMInputError(_key(key), "unknown key" + suggest(key, NETWORK_KEYS)
                                + f" (valid keys: {', '.join(NETWORK_KEYS)})")
    if isinstance(raw.get("model"), list):
        raise UFMInputError(_key("model"), "one model per study (one-layer or two-layer)")
    raw = _with_setup(raw)
    net, swept = {}, []
    model = raw.get("model", NETWORK_KEYS["model"].default)
    if "activation" not in raw and model in MODEL_DEFAULTS:  # the model's default activations, swept
        raw = {**raw, "activation": activations(network_default("activation", model), _key("activation"))}
    if raw.get("activation") == "all":  # a sweep of every activation
        raw = {**raw, "activation": activations("all", _key("activation"))}
    for key, value in raw.items():
        if isinstance(value, list):
            if not value:
                raise UFMInputError(_key(key), "an empty list sweeps nothing: give at least one value")
            values = [_value(key, v) for v in value]
            if len(set(map(repr, values))) < len(values):
                raise UFMInputError(_key(key), "a value appears twice in the sweep")
            net[key], swept = values, [*swept, key]
        else:
            net[key] = _value(key, value)
    model = net.setdefault("model", NETWORK_KEYS["model"].default)
    for key, default in MODEL_DEFAULTS[model].items():
        net.setdefault(key, default)
    for key, option in NETWORK_KEYS.items():
        if option.default is not None:
            net.setdefault(key, option.default)
    for key in UNUSED[model]:
        if key in raw:
            raise UFMInputError(_key(key), f"not used by {model} networks")
        net.pop(key, None)
    kinds = net["data"] if "data" in swept else [net["data"]]
    if (model == "modulation") != ("modulation" in kinds) or (model == "modulation" and len(kinds) > 1):
        raise UFMInputError(_key("data"), "modulation data (discriminative and shared tokens) is the "
                            "modulation model's, and the only data it reads")
    if model == "two-layer" and "mixture" in (net["data"] if "data" in swept else [net["data"]]):
        raise UFMInputError(_key("data"), "two-layer networks read pattern data (hidden units per location)")
    return net, swept


def _with_setup(raw: dict) -> dict:
    """``setup = "tian2023"`` (two-layer): the paper's values (``solvers.networks.two_layer.TIAN2023``)
    for every key the table leaves out; the keys it gives win. One setup per study."""
    setup = raw.get("setup")
    if isinstance(setup, list):
        raise UFMInputError(_key("setup"), "one setup per study (none or tian2023)")
    setup = _value("setup", setup) if setup is not None else None
    if setup in (None, "none") or raw.get("model", NETWORK_KEYS["model"].default) != "two-layer":
        return raw  # (a one-layer study is told that setup is not its key)
    from solvers.networks.two_layer import SETUPS

    out = {**SETUPS[setup], **raw}
    if out.get("fresh_batches") == "off" and "batch" not in raw:
        del out["batch"]  # the preset's batch size is that of its fresh batches
    return out


def _training(params: dict) -> dict:
    """The two-layer training options of a point, at the trainer's defaults where left out."""
    fresh = params.get("fresh_batches") == "on"
    return {"batchnorm": params.get("batchnorm") or "off", "weight_decay": params.get("weight_decay") or 0.0,
            "anchor": params.get("anchor") or "symmetric", "batch": params.get("batch") if fresh else None,
            "fresh": fresh}


def check_network_point(params: dict) -> None:
    """Limits that involve several keys, before any work."""
    if params.get("alpha_tau") is not None and params.get("alpha") != "infonce":  # one-layer
        raise UFMInputError(_key("alpha_tau"), "the temperature of InfoNCE's alpha: give it with alpha = "
                            "\"infonce\" (uniform alpha has none)")
    if params["data"] == "mixture" and params["patterns"] > params["input_dim"]:
        raise UFMInputError(_key("patterns"), f"at most input_dim = {params['input_dim']} separated "
                            f"patterns, got {params['patterns']}")
    if params["data"] == "patterns" and params["fixed"] > params["locations"]:
        raise UFMInputError(_key("fixed"), f"a pattern fixes at most the {params['locations']} locations, "
                            f"got {params['fixed']}")
    if params["data"] == "patterns" and params["vocab"] < 2:
        raise UFMInputError(_key("vocab"), "at least 2 tokens")
    if (params.get("tokens_per_location") or 0) > params.get("vocab", 0):
        raise UFMInputError(_key("tokens_per_location"), f"at most the vocab's {params['vocab']} tokens, "
                            f"got {params['tokens_per_location']}")
    if params["model"] == "modulation":  # its data's limits (shared_by dividing the patterns, ...): cheap
        network_data(params)
    if params.get("batch") is not None and params.get("fresh_batches") != "on":
        raise UFMInputError(_key("batch"), "the samples of each fresh batch: needs fresh_batches = \"on\"")


def network_data(params: dict):
    from ufm.networks.data import pattern_data, pattern_mixture

    try:
        if params["data"] == "mixture":
            return pattern_mixture(params["samples"], params["patterns"], params["input_dim"],
                                   params["noise"], None, params["seed"])
        if params["model"] == "modulation":
            from ufm.networks.modulation import modulation_data

            return modulation_data(params["samples"], params["locations"], params["vocab"],
                                   params["patterns"], params["discriminative"], params["shared"],
                                   params.get("shared_by"), params["seed"], params["shared_mode"])
        if params["model"] == "two-layer":
            return network_source(params).draw(params["samples"])
        return pattern_data(params["samples"], params["locations"], params["vocab"], params["patterns"],
                            params["fixed"], params["seed"])
    except UFMInputError as err:
        raise UFMInputError(table_key(err.argument, ("network",)), err.message) from None


def network_source(params: dict):
    """Two-layer: the patterns of a point (``ufm.networks.data.pattern_source``), which its sample
    and its fresh batches are drawn from."""
    from ufm.networks.data import pattern_source

    try:
        return pattern_source(params["locations"], params["vocab"], params["patterns"], params["fixed"],
                              params["seed"], params.get("tokens_per_location"))
    except UFMInputError as err:
        raise UFMInputError(table_key(err.argument, ("network",)), err.message) from None


def compute_network_point(pid: str, params: dict) -> tuple[dict, dict]:
    """(results line, arrays) of one network point."""
    import numpy as np

    data = network_data(params)
    if params["model"] == "one-layer":
        from solvers.networks.one_layer import one_layer_census, top_eigenvector

        res = one_layer_census(data, params["activation"], params["restarts"], params["seed"],
                               params["max_iter"], alpha=params.get("alpha") or "uniform",
                               alpha_tau=params.get("alpha_tau"), kind=params["data"])
        out = res.to_dict()  # patterns_found: by the data's rule (solvers.networks.one_layer.pattern_found)
        top = top_eigenvector(res, data) or {}
        row = {**out, "best_energy": res.optima[0].energy if res.optima else None,
               "top_eigenvector_cosine": top.get("cosine"), "top_eigenvector_unique": top.get("unique"),
               "top_eigen_gap": top.get("eigen_gap")}
        arrays = {"end_points": res.W, "energies": res.energies, "cluster": res.cluster,
                  "certified": np.array([c.verdict.value == "local_optimum" for c in res.checks], dtype=bool),
                  "optima": np.array([o.w for o in res.optima]) if res.optima else np.zeros((0, data.dim)),
                  "alignment": np.array([np.nan if o.alignment is None else o.alignment for o in res.optima]),
                  "found_pattern": np.array([-1 if o.found is None else o.found for o in res.optima],
                                            dtype=int)}
    elif params["model"] == "modulation":
        from solvers.networks.modulation import train_modulation

        res = train_modulation(data, params["activation"], hidden=params["hidden"], out_dim=params["out_dim"],
                               steps=params["steps"], lr=params["lr"], seed=params["seed"],
                               record_every=params["record_every"], threshold=params["threshold"],
                               optimizer=params["optimizer"], weight_decay=params.get("weight_decay") or 0.0,
                               batchnorm=params.get("batchnorm") or "off", fresh_views=params["fresh_views"])
        row = res.summary()
        arrays = {"steps": res.steps, "scores": res.scores, "tokens": res.tokens,
                  "discriminative": np.array([c == "discriminative" for c in res.classes], dtype=bool),
                  "crossing": np.array([-1 if c is None else c for c in res.crossing]), "values": res.values}
    else:
        from solvers.networks.two_layer import setup_loss, train_two_layer

        t = _training(params)
        res = train_two_layer(data, params["locations"], params["vocab"], params["activation"],
                              params["hidden"], params["out_dim"], setup_loss(params.get("setup")),
                              params["steps"], params["lr"], params["seed"], optimizer=params["optimizer"],
                              batchnorm=t["batchnorm"], weight_decay=t["weight_decay"], anchor=t["anchor"],
                              source=network_source(params) if t["fresh"] else None, batch=t["batch"])
        row = res.summary()
        arrays = {"values": res.values, "specialisation": res.specialisation,
                  "initial_specialisation": res.initial_specialisation, "W": res.W,
                  "paper_score": res.paper_score, "token_coverage": res.coverage}
    return {"point_id": pid, "params": params, **row}, arrays
