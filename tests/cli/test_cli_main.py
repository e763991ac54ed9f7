"""Every command module the ``lmlab`` entry point names exists and plugs in (nothing is skipped quietly)."""

from __future__ import annotations

import importlib

import pytest
import typer

from lmlab.cli import main as cli_main


@pytest.mark.parametrize("name,module", sorted(cli_main.GROUPS.items()))
def test_every_command_group_imports(name, module):
    assert isinstance(importlib.import_module(f"lmlab.cli.{module}").app, typer.Typer)


@pytest.mark.parametrize("name,module", sorted(cli_main.TOP_LEVEL.items()))
def test_every_top_level_command_registers(name, module):
    app = typer.Typer()
    importlib.import_module(f"lmlab.cli.{module}").register(app)
    assert name in {c.name for c in app.registered_commands}


def test_a_misspelt_row_fails_loudly(monkeypatch):
    monkeypatch.setitem(cli_main.TOP_LEVEL, "trian", "trian")
    with pytest.raises(ModuleNotFoundError):
        cli_main._attach("trian")
