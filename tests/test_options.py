"""Every command option is declared once (``ufm.options``, ``solvers.options``,
``experiments.options``): the command line's defaults, the studies' defaults and the library's
signature defaults are the declarations'; help texts say the default; a library error names its
parameter, which the command line reports as ``--flag`` and a study as ``[table].key``.

Tests stay tiny: no input here reaches a solver beyond a 2 x 2 problem.
"""

import argparse
import inspect

import pytest

from experiments.options import PLOT_OPTIONS, RUN_OPTIONS, STUDY_TABLES, UNFILLED, table_key, table_values
from solvers.options import CERTIFY_OPTIONS, NETWORK_OPTIONS, SOLVE_OPTIONS, VERIFY_OPTIONS
from ufm.cli import build_parser, main
from ufm.cli.parser import COMMAND_OPTIONS, flag_of
from ufm.errors import UFMInputError
from ufm.options import FIGURE_STYLE_OPTIONS, LOSS_OPTION, QUIET_OPTION, SAMPLE_OPTIONS, Option


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def _actions(command: str) -> dict[str, argparse.Action]:
    return {a.dest: a for a in _subparsers()[command]._actions if a.dest != "help"}


def _declared(command: str) -> dict[str, Option]:
    """A command's options, with the samples' and the loss's where it takes them, --quiet (every
    command's) and --width and --dpi (every command that draws figures: plot, run, a --plot)."""
    table = {**COMMAND_OPTIONS[command], "quiet": QUIET_OPTION}
    if "plot" in table or command in ("plot", "run"):
        table.update({o.name: o for o in FIGURE_STYLE_OPTIONS})
    actions = _actions(command)
    for name, option in {**SAMPLE_OPTIONS, "loss": LOSS_OPTION}.items():
        if name in actions and name not in table:
            table[name] = option
    return table


# --------------------------------------------------------------------------- command line

@pytest.mark.parametrize("command", sorted(COMMAND_OPTIONS))
def test_argparse_defaults_are_the_declarations(command):
    actions = _actions(command)
    for name, option in _declared(command).items():
        action = actions[name]
        if option.positional:
            assert action.metavar == option.flag and not action.option_strings
            continue
        flag = f"--no-{option.flag[2:]}" if option.kind == "bool" and option.default else option.flag
        assert action.option_strings == [flag], (command, name, action.option_strings)
        expected = None if option.needs else option.default
        assert action.default == expected, (command, name, action.default, expected)


@pytest.mark.parametrize("command", sorted(COMMAND_OPTIONS))
def test_every_argument_is_declared(command):
    """Nothing is added to a command's parser beside its declarations, the samples, the loss and
    the loss parameters (from the losses' declarations)."""
    from ufm.losses import all_params

    declared = _declared(command)
    loss_params = {*all_params(), "reduction"}
    stray = [name for name in _actions(command) if name not in declared and name not in loss_params]
    assert not stray, (command, stray)


@pytest.mark.parametrize("command", sorted(COMMAND_OPTIONS))
def test_help_text_says_the_default(command):
    actions = _actions(command)
    for name, option in _declared(command).items():
        help_text = actions[name].help.replace("%%", "%")
        if option.kind == "bool":
            if option.default:
                assert f"--no-{option.flag[2:]} turns it off" in help_text, (command, name)
            continue
        words = option.default_words()
        if words and not option.positional:
            assert f"default {words}" in help_text, (command, name, help_text)


def test_help_shows_defaults_as_researchers_write_them(capsys):
    assert main(["verify", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for words in ("default 1e-6", "default 8)", "default auto)", "default 5000)", "--no-snap"):
        assert words in out, words


# --------------------------------------------------------------------------- library signatures

def _signature_defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _check_signature(fn, table: dict[str, Option], names, keyword=None):
    keyword = keyword or {}
    got = _signature_defaults(fn)
    for name in names:
        assert got[keyword.get(name, name)] == table[name].default, (fn.__name__, name)


def test_solve_signature_defaults_are_the_declarations():
    from solvers.solve import solve

    _check_signature(solve, SOLVE_OPTIONS, ("method", "solver", "tol", "seed"))


def test_verify_signature_defaults_are_the_declarations():
    from solvers.nonconvex import optimize
    from solvers.verify import starts, verify

    names = ("dim", "restarts", "optimizer", "device", "seed", "tol", "max_iter", "precision", "snap", "init")
    _check_signature(verify, VERIFY_OPTIONS, names)
    _check_signature(starts, VERIFY_OPTIONS, ("init",))
    _check_signature(optimize, VERIFY_OPTIONS, ("restarts", "optimizer", "device", "seed", "max_iter",
                                                "precision", "snap"))


def test_certify_signature_defaults_are_the_declarations():
    from solvers.certificate import certify_embeddings
    from solvers.inspect import inspect_embeddings

    _check_signature(certify_embeddings, CERTIFY_OPTIONS, ("tol", "device"))
    _check_signature(inspect_embeddings, CERTIFY_OPTIONS, ("tol", "device"))
    gigabytes = CERTIFY_OPTIONS["memory_budget"].default
    assert _signature_defaults(certify_embeddings)["memory_budget"] == gigabytes * 1e9  # bytes


def test_network_signature_defaults_are_the_declarations():
    from solvers.networks.one_layer import maximise, one_layer_census
    from solvers.networks.two_layer import train_two_layer

    _check_signature(one_layer_census, NETWORK_OPTIONS, ("restarts", "seed", "max_iter"))
    _check_signature(maximise, NETWORK_OPTIONS, ("restarts", "seed", "max_iter"))
    _check_signature(train_two_layer, NETWORK_OPTIONS,
                     ("hidden", "out_dim", "steps", "lr", "seed", "optimizer"))


def test_network_data_defaults_are_the_declarations():
    """The data generators of the model layer take the command's defaults too."""
    from ufm.networks.data import pattern_data, pattern_mixture

    _check_signature(pattern_data, NETWORK_OPTIONS, ("locations", "vocab", "patterns", "fixed", "seed"))
    _check_signature(pattern_mixture, NETWORK_OPTIONS, ("patterns", "noise", "seed"), keyword={})
    assert _signature_defaults(pattern_mixture)["dim"] == NETWORK_OPTIONS["input_dim"].default


def test_run_signature_defaults_are_the_declarations():
    from experiments.runner import run_command

    _check_signature(run_command, RUN_OPTIONS, ("jobs", "scheduler", "smoke", "threads"))


# --------------------------------------------------------------------------- studies

def test_study_tables_take_their_defaults_from_the_declarations():
    assert table_values({}, "solve") == {k: o.default for k, o in SOLVE_OPTIONS.items()
                                         if k in ("method", "solver", "tol")}
    verify = table_values({}, "verify")
    assert verify == {k: VERIFY_OPTIONS[k].default for k in STUDY_TABLES["verify"]
                      if k not in UNFILLED["verify"] and VERIFY_OPTIONS[k].default is not None}
    assert "threads" in STUDY_TABLES["verify"] and "threads" not in verify  # default: the cores given
    assert verify["precision"] == verify["device"] == "auto"  # as on the command line


def test_a_study_verify_table_is_verify_with_its_defaults(tmp_path):
    from experiments.study import load_study

    path = tmp_path / "s.toml"
    path.write_text('[problem]\ncounts = [2, 2]\n[verify]\nrestarts = 2\n')
    study = load_study(path)
    assert study.verify == {**table_values({}, "verify"), "restarts": 2}
    assert study.solve == table_values({}, "solve")


def test_a_network_study_takes_the_command_defaults():
    from experiments.network_study import validate_network
    from solvers.options import MODEL_DEFAULTS
    from ufm.networks.one_layer import ACTIVATIONS

    for model in ("one-layer", "two-layer"):
        net, swept = validate_network({"model": model})
        assert net["activation"] == list(ACTIVATIONS) and swept == ["activation"]  # "all", as on the CLI
        for key, value in net.items():
            if key in MODEL_DEFAULTS[model]:
                assert value == MODEL_DEFAULTS[model][key]
            elif key not in ("model", "activation"):
                assert value == NETWORK_OPTIONS[key].default, key


def test_figure_projection_is_the_plot_option():
    from experiments.options import FIGURE_OPTIONS

    assert FIGURE_OPTIONS["projection"] is PLOT_OPTIONS["projection"]


# --------------------------------------------------------------------------- errors

def _error(capsys, *args) -> str:
    assert main([str(a) for a in args]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("args,flag", [
    (["verify", "--counts", "3,3", "--restarts", "0"], "--restarts"),
    (["verify", "--restarts", "0"], "--restarts"),
    (["verify", "--counts", "3,3", "--precision", "half"], "--precision"),
    (["verify", "--counts", "3,3", "--max-iter", "0"], "--max-iter"),
    (["solve", "--counts", "3,3", "--method", "fast"], "--method"),
    (["certify", "--embeddings", "x.npy", "--labels", "y.txt", "--memory-budget", "0"], "--memory-budget"),
    (["network", "one-layer", "--restarts", "0"], "--restarts"),
    (["network", "two-layer", "--lr", "-1"], "--lr"),
    (["plot", "step", "--out", "a.png", "--k-major", "-1"], "--k-major"),
    (["plot", "embedding", "--out", "a.png", "--projection", "4d"], "--projection"),
    (["run", "balanced_etf", "--jobs", "0"], "--jobs"),
])
def test_cli_errors_name_the_flag(capsys, args, flag):
    assert _error(capsys, *args).startswith(f"ufm: error: {flag}: ")


def test_library_errors_name_the_parameter_and_the_cli_the_flag(capsys):
    from solvers.solve import solve
    from solvers.verify import verify
    from ufm.problem import Problem

    with pytest.raises(UFMInputError) as err:
        verify(Problem((2, 2), 0.5), 2, restarts=0)
    assert err.value.argument == "restarts"
    with pytest.raises(UFMInputError) as err:
        solve(Problem((2, 2), 0.5), tol=-1)
    assert err.value.argument == "tol"
    assert flag_of("restarts", "verify") == "--restarts" and flag_of("max_iter", "verify") == "--max-iter"
    assert flag_of("--dim", "verify") == "--dim"
    assert flag_of("[verify].restarts", "run") == "[verify].restarts"
    assert flag_of("problem", "verify") == "problem"  # not an option: kept
    # a library error reached through the command line: solve's own check of method
    line = _error(capsys, "solve", "--counts", "4,4", "--batches", "random:4", "--method", "reduced")
    assert line.startswith("ufm: error: --method: reduced: no reduced program")


def test_study_names_a_parameter_as_its_key():
    assert table_key("restarts") == table_key("--restarts") == "[verify].restarts"
    assert table_key("method") == "[solve].method"
    assert table_key("views") == "[problem].views"
    assert table_key("restarts", ("network",)) == "[network].restarts"
    assert table_key("jobs") == "jobs"


BAD_STUDIES = [
    ('[problem]\ncounts = [3, 3]\n[verify]\nprecision = "half"\n', "[verify].precision", "unknown precision"),
    ('[problem]\ncounts = [3, 3]\n[verify]\nmax_iter = "5"\n', "[verify].max_iter", "must be an integer"),
    ('[problem]\ncounts = [3, 3]\n[verify]\ninit = "alined"\n', "[verify].init", "did you mean 'aligned'"),
    ('[problem]\ncounts = [3, 3]\n[solve]\ntol = "1e-6"\n', "[solve].tol", "must be a number"),
    ('[problem]\ncounts = [3, 3]\nseed = 1.5\n', "[problem].seed", "must be an integer"),
    ('[problem]\nkind = "views"\ninstances = 0\n', "[problem].instances", ">= 1"),
    ('[network]\nrestarts = 0\n', "[network].restarts", ">= 1"),
    ('[network]\nactivation = ["relu", "all"]\n', "[network].activation", "give it alone"),
    ('[network]\nlr = 0.1\n', "[network].lr", "not used by one-layer"),
    ('[problem]\ncounts = [3, 3]\n[[figure]]\nkind = "embedding"\nfile = "a.png"\nprojection = "4d"\n',
     "[[figure]] 1: projection", "unknown projection"),
]


@pytest.mark.parametrize("text,key,words", BAD_STUDIES, ids=[b[1] for b in BAD_STUDIES])
def test_study_errors_name_the_key(tmp_path, text, key, words):
    from experiments.study import load_study

    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(UFMInputError) as err:
        load_study(path)
    assert err.value.argument == key and words in err.value.message, str(err.value)


def test_study_library_error_names_the_key(tmp_path, capsys):
    """A library error (restarts checked by verify) reaches the study author as [verify].restarts."""
    from experiments.runner import verify_point
    from ufm.problem import Problem

    with pytest.raises(UFMInputError) as err:
        options = {"tol": 1e-6, "verify": {**table_values({}, "verify"), "restarts": 0}}
        verify_point(Problem((2, 2), 0.5), options, seed=0)
    assert err.value.argument == "[verify].restarts"


# --------------------------------------------------------------------------- Option

def test_option_reads_command_line_text_and_toml_values():
    o = Option("restarts", 8, "restarts", "int", minimum=1, maximum=100)
    assert o.parse("1e1") == 10 and o.parse("8.0") == 8 and o.parse(7) == 7
    with pytest.raises(UFMInputError, match="not a number"):
        o.parse("x")
    with pytest.raises(UFMInputError, match="must be an integer >= 1 and <= 100, got 0"):
        o.parse("0")
    with pytest.raises(UFMInputError, match="must be an integer, got '8'"):
        o.parse("8", "[verify].restarts", typed=True)  # a TOML string is not a number
    with pytest.raises(UFMInputError, match="must be an integer"):
        o.parse(True, typed=True)
    f = Option("lr", 0.05, "lr", "float", minimum=0.0, strict=True)
    assert f.parse("0.5") == 0.5
    for bad, words in (("0", "> 0"), ("nan", "finite"), (True, "number")):
        with pytest.raises(UFMInputError, match=words):
            f.parse(bad)
    c = Option("precision", "auto", "precision", "choice", ("auto", "float64"))
    with pytest.raises(UFMInputError, match="did you mean 'float64'"):
        c.parse("float6")
    with pytest.raises(UFMInputError, match="must be a string"):
        c.parse(64, typed=True)
    assert Option("snap", True, "snap", "bool").parse(False) is False
    with pytest.raises(UFMInputError, match="true or false"):
        Option("snap", True, "snap", "bool").parse(1)


def test_option_flags_and_help():
    o = Option("max_iter", 5000, "most iterations", "int", minimum=1)
    assert o.flag == "--max-iter"
    assert o.help_text() == "most iterations (an integer >= 1; default 5000)"
    assert Option("tol", 1e-6, "tolerance", "float", minimum=0.0, strict=True).help_text() == \
        "tolerance (a number > 0; default 1e-6)"
    assert Option("experiment", None, "study", positional=True, metavar="EXPERIMENT").flag == "EXPERIMENT"
    with pytest.raises(ValueError):
        Option("x", 1, "x", "integer")
