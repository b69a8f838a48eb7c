"""The README's loss table is generated from the loss declarations (ufm.losses.catalogue)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from ufm.losses import DHEL, KCL, LOSSES, AlphaCL
from ufm.losses.catalogue import BEGIN, END, HEADER, main, markdown_table, region, replace_region

README = Path(__file__).resolve().parents[1] / "README.md"
REGENERATE = "regenerate it: python -m ufm.losses.catalogue --write README.md"


def rows(table: str) -> dict[str, list[str]]:
    """Cells of each loss's row, by name (cells split at unescaped pipes)."""
    out = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        out[cells[0].strip("`")] = cells
    return out


def test_readme_table_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"README.md lacks the markers {BEGIN!r} and {END!r}; {REGENERATE}"
    assert region(text) == markdown_table(), (
        f"README.md's loss table differs from the loss declarations; {REGENERATE}"
    )


def test_every_registered_loss_has_a_row():
    table = markdown_table()
    assert table.splitlines()[0] == "| " + " | ".join(HEADER) + " |"
    found = rows(table)
    assert list(found) == list(LOSSES)
    for name, cells in found.items():
        assert len(cells) == len(HEADER), name  # every pipe of a declaration escaped
        assert all(cells), name


def test_rows_come_from_the_declarations(monkeypatch):
    found = rows(markdown_table())
    assert found["dhel"][2] == "`--tau` 0.3"
    assert found["alpha_cl"][2].startswith("`--tau` 0.5, `--weight` exp")
    assert found["kcl"][2].endswith("`--reduction` mean")
    assert found["spectral"][2] == "`--reduction` mean"
    assert found["supcon_in"][5] == "verify (census only)"
    assert found["supcon"][5] == "solve, verify, certify"
    # a floor that depends on a choice is given per choice
    assert "`decoupled`: sum over anchors of log \\|N(i)\\|" in found["infonce"][3]
    # a changed declaration changes the row
    monkeypatch.setattr(DHEL, "params", (dataclasses.replace(DHEL.params[0], default=0.25),))
    monkeypatch.setattr(AlphaCL, "source", "Someone 2099")
    found = rows(markdown_table())
    assert found["dhel"][2] == "`--tau` 0.25"
    assert found["alpha_cl"][6] == "Someone 2099"
    assert region(README.read_text(encoding="utf-8")) != markdown_table()


def test_write_replaces_only_the_table(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{BEGIN}old table\n{END}\nafter\n", encoding="utf-8")
    assert main(["--write", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text == replace_region(f"before\n{BEGIN}x{END}\nafter\n", markdown_table())
    assert text.startswith("before\n") and text.endswith("after\n") and region(text) == markdown_table()
    assert main([]) == 0
    assert capsys.readouterr().out == markdown_table()


@pytest.mark.parametrize("name", ["kcl", "alpha_cl", "spectral"])
def test_derived_commands(name):
    """Qualifiers of the commands column come from the capabilities: a minorant relaxation (kcl), no
    scalar objective (alpha_cl), an attainable floor (spectral)."""
    cell = rows(markdown_table())[name][5]
    assert cell.startswith("solve, verify, certify (")
    words = {"kcl": KCL.minorant_text, "alpha_cl": f"coordinate-wise dynamics ({AlphaCL.dynamics_text})",
             "spectral": "absolute gap at the floor"}[name]
    assert words in cell


def test_cli_losses_prints_the_declarations(capsys):
    """``ufm losses --markdown`` is the README's table; ``--json`` lists every registered loss with
    its declared defaults; both output forms at once are refused with one line."""
    from ufm.cli import main as ufm_main

    assert ufm_main(["losses", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown_table()
    assert ufm_main(["losses", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["losses"]
    assert [r["name"] for r in rows] == list(LOSSES)
    assert {r["name"]: r["params"].get("tau") for r in rows}["dhel"] == 0.3
    assert ufm_main(["losses"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in LOSSES)
    assert ufm_main(["losses", "--json", "--markdown"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
