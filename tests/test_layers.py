"""The layering of the code: which modules may import which.

Layers, bottom up: ``ufm`` (the model: samples, losses, symmetry, geometry, plotting), ``solvers``,
``experiments``, ``ufm.cli`` (the command line, with ``python -m ufm``); a module imports only its
own layer and those below, at module level or inside functions.

The modules of ``experiments/`` import one another in one direction only (counting the imports
inside functions, which hide a circle from Python but not from a reader):
``validate`` <- ``network_study`` <- ``rows`` <- ``figures`` <- ``study`` <- ``runner``.
``solvers/`` words what it reports about a loss in the loss's own declared text
(``ufm.losses.base.Loss.relaxation_text`` and its neighbours), never by naming a loss.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported_modules(tree: ast.Module, package: str, module: str) -> set[str]:
    """Every module named by an ``import`` or ``from ... import`` anywhere in the tree (module level
    and inside functions), with ``from pkg import mod`` counted as ``pkg.mod``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = f"{package}.{module}".split(".")[:-node.level]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(package: str) -> dict[str, set[str]]:
    """Module name -> the modules of the same package it imports."""
    files = {p.stem: p for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name, path in files.items():
        imported = _imported_modules(ast.parse(path.read_text(), str(path)), package, name)
        graph[name] = {other for other in files if other != name and f"{package}.{other}" in imported}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_experiments_imports_are_acyclic():
    graph = import_graph("experiments")
    assert {"study", "figures", "rows", "network_study", "runner"} <= set(graph)
    cycle = find_cycle(graph)
    edges = "\n".join(f"  {m} -> {', '.join(sorted(graph[m])) or '-'}" for m in sorted(graph))
    assert cycle is None, f"import cycle in experiments/: {' -> '.join(cycle)}\nimports:\n{edges}"


def test_experiments_validate_is_the_bottom_layer():
    """The value checks every table shares import no other module of experiments/."""
    assert import_graph("experiments")["validate"] == set()


def _strings_outside_docstrings(tree: ast.Module):
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_solvers_word_no_particular_loss():
    """Loss-specific wording (KCL's minorant, alpha-CL's fixed-alpha program) is declared on the
    loss classes; the strings of solvers/ name no loss (docstrings may, as examples)."""
    words = re.compile(r"\b(kcl|alpha|alpha_cl|supcon|infonce|dcl|dhel|spectral)\b|fixed-alpha|views align",
                       re.I)
    found = [f"{path.name}:{node.lineno}: {node.value!r}" for path in sorted((ROOT / "solvers").glob("*.py"))
             for node in _strings_outside_docstrings(ast.parse(path.read_text(), str(path)))
             if words.search(node.value)]
    assert not found, "loss-specific wording in solvers/:\n" + "\n".join(found)


# ---- layers: what each package may import (README "Contributing") -------------------------------

#: rank of each layer; a module may import only layers of its rank or below
LAYERS = {"ufm": 0, "solvers": 1, "experiments": 2, "ufm.cli": 3}


def layer_of(module: str) -> str | None:
    if module in ("ufm.cli", "ufm.__main__") or module.startswith("ufm.cli."):  # python -m ufm: the CLI
        return "ufm.cli"
    top = module.split(".")[0]
    return top if top in LAYERS else None


def upward_imports(module: str, source: str) -> list[str]:
    """Imports of ``module`` (its dotted name), module- or function-level, that reach a higher
    layer."""
    own = layer_of(module)
    package, _, name = module.rpartition(".")
    bad = []
    for target_module in _imported_modules(ast.parse(source), package, name):
        target = layer_of(target_module)
        if target is not None and LAYERS[target] > LAYERS[own]:
            bad.append(f"{module} imports {target_module} ({own} -> {target})")
    return sorted(bad)


def project_modules():
    for package in ("ufm", "solvers", "experiments"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_no_module_imports_upward():
    """ufm (the model) imports neither solvers, experiments nor the CLI; solvers not experiments
    nor the CLI; experiments not the CLI; only ufm.cli reaches up (module- and function-level)."""
    bad = [b for module, path in project_modules() for b in upward_imports(module, path.read_text())]
    assert not bad, "imports that reach up a layer:\n" + "\n".join(bad)


def test_the_layer_check_catches_an_upward_import():
    src = "import numpy\n\ndef f():\n    from solvers.verify import verify\n    from ufm.cli import main\n"
    bad = upward_imports("ufm.samples", src)
    assert any("solvers.verify (ufm -> solvers)" in b for b in bad)
    assert any("ufm.cli" in b and "(ufm -> ufm.cli)" in b for b in bad)
    assert upward_imports("experiments.runner", "from solvers import solve\nimport ufm.samples\n") == []
    assert upward_imports("solvers.solve", "import experiments.rows\n") == [
        "solvers.solve imports experiments.rows (solvers -> experiments)"]
    assert upward_imports("ufm.cli.commands", "from experiments.runner import run_command\n") == []
