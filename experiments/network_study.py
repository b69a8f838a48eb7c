"""Studies of networks in place of free embeddings (``ufm network``), declared with a ``[network]``
table instead of ``[problem]``: every list-valued entry is swept, each point is one
``one-layer`` census or ``two-layer`` training run (Tian 2023)."""

from __future__ import annotations

from experiments.options import STUDY_TABLES, table_key
from experiments.validate import suggest
from solvers.options import MODEL_DEFAULTS, ONE_LAYER_ONLY, TWO_LAYER_ONLY, activations
from ufm.errors import UFMInputError

#: the [network] keys: the options of ``ufm network`` (``solvers.options.NETWORK_OPTIONS``) that a
#: study sets, with their declared types, ranges and defaults (data and samples: the model's own)
NETWORK_KEYS = STUDY_TABLES["network"]
ONE_LAYER_FIELDS = ("distinct_optima", "distinct_end_points", "dead_units", "patterns_found", "best_energy",
                    "certified", "top_eigenvector_cosine")
TWO_LAYER_FIELDS = ("initial_loss", "final_loss", "specialised_fraction", "median_specialisation")


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
    net, swept = {}, []
    if raw.get("activation", NETWORK_KEYS["activation"].default) == "all":  # a sweep of every activation
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
    unused = TWO_LAYER_ONLY if model == "one-layer" else ONE_LAYER_ONLY
    for key in unused:
        if key in raw:
            raise UFMInputError(_key(key), f"not used by {model} networks")
        net.pop(key, None)
    if model == "two-layer" and "mixture" in (net["data"] if "data" in swept else [net["data"]]):
        raise UFMInputError(_key("data"), "two-layer networks read pattern data (hidden units per location)")
    return net, swept


def check_network_point(params: dict) -> None:
    """Limits that involve several keys, before any work."""
    if params["data"] == "mixture" and params["patterns"] > params["input_dim"]:
        raise UFMInputError(_key("patterns"), f"at most input_dim = {params['input_dim']} separated "
                            f"patterns, got {params['patterns']}")
    if params["data"] == "patterns" and params["fixed"] > params["locations"]:
        raise UFMInputError(_key("fixed"), f"a pattern fixes at most the {params['locations']} locations, "
                            f"got {params['fixed']}")
    if params["data"] == "patterns" and params["vocab"] < 2:
        raise UFMInputError(_key("vocab"), "at least 2 tokens")


def network_data(params: dict):
    from ufm.networks.data import pattern_data, pattern_mixture

    try:
        if params["data"] == "mixture":
            return pattern_mixture(params["samples"], params["patterns"], params["input_dim"],
                                   params["noise"], None, params["seed"])
        return pattern_data(params["samples"], params["locations"], params["vocab"], params["patterns"],
                            params["fixed"], params["seed"])
    except UFMInputError as err:
        raise UFMInputError(table_key(err.argument, ("network",)), err.message) from None


def compute_network_point(pid: str, params: dict) -> tuple[dict, dict]:
    """(results line, arrays) of one network point."""
    import numpy as np

    data = network_data(params)
    if params["model"] == "one-layer":
        from solvers.networks.one_layer import one_layer_census, top_eigenvector_cosine

        res = one_layer_census(data, params["activation"], params["restarts"], params["seed"],
                               params["max_iter"])
        out = res.to_dict()
        cos = top_eigenvector_cosine(res, data)
        found = {o.pattern for o in res.optima  # patterns with a certified optimum aligned with them
                 if o.verdict == "local_optimum" and o.alignment is not None and o.alignment >= 0.95}
        row = {**out, "best_energy": res.optima[0].energy if res.optima else None,
               "patterns_found": len(found), "top_eigenvector_cosine": cos}
        arrays = {"end_points": res.W, "energies": res.energies, "cluster": res.cluster,
                  "certified": np.array([c.verdict.value == "local_optimum" for c in res.checks], dtype=bool),
                  "optima": np.array([o.w for o in res.optima]) if res.optima else np.zeros((0, data.dim)),
                  "alignment": np.array([np.nan if o.alignment is None else o.alignment for o in res.optima])}
    else:
        from solvers.networks.two_layer import train_two_layer

        res = train_two_layer(data, params["locations"], params["vocab"], params["activation"],
                              params["hidden"], params["out_dim"], None, params["steps"], params["lr"],
                              params["seed"], optimizer=params["optimizer"])
        row = res.summary()
        arrays = {"values": res.values, "specialisation": res.specialisation,
                  "initial_specialisation": res.initial_specialisation, "W": res.W}
    return {"point_id": pid, "params": params, **row}, arrays
