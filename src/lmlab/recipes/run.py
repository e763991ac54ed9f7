"""Run files: the TOML a training run is described by, as ``lmlab train`` reads it.

A run file is TOML whose tables map onto dataclasses::

    family = "gpt"              # a row of lmlab.registry with a recipe
    [data]      ...             # read by the family's recipe
    [tokenizer] ...             # read by the family's recipe
    [model]     ...             # the family's Config (unknown keys refused by the recipe)
    [objective] ...             # the objective's settings
    [train]     ...             # lmlab.train.TrainConfig (unknown keys refused here)

Overrides use dotted keys (``train.lr=3e-4 model.n_layers=2``) and go through the one
override parser, :func:`lmlab.config.override_table`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from .. import config as config_io
from ..errors import ConfigError

STANDARD_TABLES = ("data", "tokenizer", "model", "objective", "batch")


class RunFile(Mapping):
    """A run file: ``family``, the ``[train]`` table (a TrainConfig) and the family's own tables.

    The family's builder reads its tables either as attributes (``run.model``, ``run.data``,
    ``run.tokenizer``, ``run.objective``, ``run.table("batch")``) or as a mapping
    (``run["model"]``, ``run.get("batch", {})``, ``set(run)``); a missing table reads as ``{}``.
    Tables the builder never reads are refused after it returns (so a misspelt or foreign table
    is an error, not silently ignored); keys inside a table are refused by the builder's own
    ``lmlab.config.from_dict``.
    """

    def __init__(self, table: dict, name: str = "run"):
        if not isinstance(table.get("family"), str) or not table["family"]:
            raise ConfigError(f"{name}: the run file needs family = \"NAME\" at the top")
        for key, value in table.items():
            if key != "family" and not isinstance(value, dict):
                raise ConfigError(f"{name}: unknown top-level key {key!r} (only family = ... and [tables])")
        self._table = json.loads(json.dumps(table))
        self.name = name
        self._read: set[str] = set()
        self.train_config  # noqa: B018 - refuse unknown or ill-typed [train] keys now

    # the mapping view
    def __getitem__(self, key: str):
        if key not in self._table:
            raise KeyError(key)
        if key != "family":
            self._read.add(key)
        return self._table[key]

    def __iter__(self):
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    # the attribute view
    @property
    def family(self) -> str:
        return self._table["family"]

    def table(self, name: str) -> dict:
        self._read.add(name)
        return self._table.get(name, {})

    data = property(lambda self: self.table("data"))
    tokenizer = property(lambda self: self.table("tokenizer"))
    model = property(lambda self: self.table("model"))
    objective = property(lambda self: self.table("objective"))

    @property
    def train(self) -> dict:
        return self.table("train")

    @property
    def train_config(self):
        """The ``[train]`` table as a validated TrainConfig (unknown keys refused)."""
        from ..train.trainer import TrainConfig

        return config_io.from_dict(TrainConfig, self._table.get("train", {}), where="train")

    def unread_tables(self) -> list[str]:
        return sorted(k for k in self._table if k not in ("family", "train") and k not in self._read)

    def as_dict(self) -> dict:
        return json.loads(json.dumps(self._table))

    def family_tables(self) -> dict:
        """Everything but ``[train]``: what must match when a run is resumed."""
        table = self.as_dict()
        table.pop("train", None)
        return table


def apply_run_overrides(table: dict, overrides: list[str]) -> dict:
    """``a.b=v`` overrides on a raw run table through :func:`lmlab.config.override_table`:
    ``family`` and ``train.*`` are checked against :class:`RunHeader`; the family's tables
    (``data``, ``model``, ...) are free here and checked by the recipe that reads them."""
    return config_io.override_table(_header_class(), table, overrides,
                                    free=tuple(dict.fromkeys([*STANDARD_TABLES, *(k for k in table if k != "train"
                                                                                   and k != "family")])))


def _header_class():
    """The checked part of a run file: ``family`` and ``[train]`` (a TrainConfig)."""
    from ..train.trainer import TrainConfig

    return dataclasses.make_dataclass("RunHeader", [
        ("family", str, dataclasses.field(default="")),
        ("train", TrainConfig, dataclasses.field(default_factory=TrainConfig)),
    ])


def load_run(path: str | Path, overrides: list[str] | None = None) -> RunFile:
    table = config_io.read_table(path)
    table = apply_run_overrides(table, overrides or [])
    return RunFile(table, name=Path(path).stem)


def pop_preset(model_table: dict, presets: dict, default: str, family: str) -> tuple[str, dict]:
    """(preset name, its values) from ``[model] preset = "..."`` (removed from ``model_table``)."""
    name = model_table.pop("preset", default)
    if name not in presets:
        raise ConfigError(f"model.preset: unknown {family} preset {name!r}; known: {', '.join(presets)}")
    return name, presets[name]
