"""``lmlab train RUN.toml [key=value ...] [--resume] [--out DIR]``: train any neural family.

A run file is TOML whose tables map onto dataclasses::

    family = "gpt"              # a row of BUILDERS below
    [data]      ...             # read by the family's builder
    [tokenizer] ...             # read by the family's builder
    [model]     ...             # the family's Config (unknown keys refused by the builder)
    [objective] ...             # the objective's settings
    [train]     ...             # lmlab.train.TrainConfig (unknown keys refused here)

Imports stay light (torch is loaded only when a run starts), so ``lmlab --help`` is quick.

Overrides use dotted keys: ``train.lr=3e-4 model.n_layer=2``. A family plugs in by one
row in :data:`BUILDERS`, ``"family": "module:function"``, where the function is
``build(run: RunFile) -> lmlab.train.TrainingJob`` (model, objective, train source,
eval source, exporter); see docs/training.md. The builder must turn its tables into its
own dataclasses with ``lmlab.config.from_dict`` so that unknown keys are refused; a table
it never reads is refused by the CLI.

Under ``torchrun`` every process runs this command; the Trainer joins the process group.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Mapping
from pathlib import Path

import typer

from .. import config as config_io
from ..errors import ConfigError, closest

# family name -> "module:function" building a TrainingJob from a RunFile. One row per family,
# added by the family's author (lazy: the module is imported only when its family is trained).
BUILDERS: dict[str, str] = {
    "nnlm": "lmlab.models.demo_neural:nnlm_job",
    "rnnlm": "lmlab.models.demo_neural:rnnlm_job",
    "bert": "lmlab.models.demo_bert:build",
    "roberta": "lmlab.models.demo_bert:build",
    "albert": "lmlab.models.demo_bert:build",
    "spanbert": "lmlab.models.demo_bert:build",
    "electra": "lmlab.models.demo_bert:build",
    "gpt": "lmlab.models.demo_gpt:gpt_job",
}


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
    """``a.b=v`` overrides on a raw run table; ``train.*`` keys are checked against TrainConfig."""
    from ..train.trainer import TrainConfig

    table = json.loads(json.dumps(table))
    top = {"family", "train", *STANDARD_TABLES, *table}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] not in top:
            raise ConfigError(f"unknown config key {parts[0]!r} in override {item!r}{closest(parts[0], top)}")
        value = config_io.parse_value(raw)
        if parts[0] == "family":
            if len(parts) != 1:
                raise ConfigError(f"override {item!r}: 'family' is not a table")
            table["family"] = value
            continue
        if len(parts) == 1:
            raise ConfigError(f"override {item!r}: {parts[0]!r} is a table; name a key in it ({parts[0]}.KEY=...)")
        if parts[0] == "train" and (len(parts) != 2 or parts[1] not in train_keys):
            raise ConfigError(f"unknown config key {'.'.join(parts[:2])!r} in override {item!r}"
                              f"{closest(parts[1], train_keys)}")
        node = table.setdefault(parts[0], {})
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a table")
        node[parts[-1]] = value
    return table


def load_run(path: str | Path, overrides: list[str] | None = None) -> RunFile:
    table = config_io.read_table(path)
    table = apply_run_overrides(table, overrides or [])
    return RunFile(table, name=Path(path).stem)


def builder_for(family: str):
    """The build function of ``family`` from :data:`BUILDERS`."""
    if family not in BUILDERS:
        known = ", ".join(sorted(BUILDERS)) or "none yet"
        raise ConfigError(f"no trainable family {family!r}{closest(family, BUILDERS)}; known: {known}")
    module_name, attr = BUILDERS[family].split(":")
    return getattr(importlib.import_module(module_name), attr)


def run_training(path: str | Path, overrides: list[str] | None = None, resume: bool = False,
                 out: str | Path | None = None):
    """Load a run file, build the family's job, train, export. Returns (TrainResult, out dir)."""
    from ..io import atomic_write_text
    from ..train import distributed
    from ..train.trainer import Trainer, TrainingJob, seed_everything

    run = load_run(path, overrides)
    train_config = run.train_config
    build = builder_for(run.family)
    out_dir = Path(out) if out else Path("runs") / run.name
    seed_everything(train_config.seed)  # model initialisation is part of the seeded run
    job = build(run)
    if not isinstance(job, TrainingJob):
        raise ConfigError(f"builder of {run.family!r} returned {type(job).__name__}, not a TrainingJob")
    unread = run.unread_tables()
    if unread:
        raise ConfigError(f"{path}: table [{unread[0]}] is not used by family {run.family!r}")
    trainer = Trainer(job.model, job.objective, job.train_source, train_config, out_dir,
                      eval_source=job.eval_source, run_config=run.family_tables())
    try:
        result = trainer.fit(resume=resume)
        is_main = trainer.dist.is_main
        if is_main:
            atomic_write_text(out_dir / "run.json", json.dumps(run.as_dict(), indent=2) + "\n")
            if job.export is not None:
                job.export(out_dir / "model")
    finally:
        distributed.shutdown()
    return result, out_dir, job, is_main


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        config: Path = typer.Argument(..., help="run file (TOML): family = ..., then data, model, objective, train tables"),
        overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. train.lr=3e-4"),
        resume: bool = typer.Option(False, "--resume", help="continue from OUT/checkpoints/latest"),
        out: Path | None = typer.Option(None, "--out", help="output folder (default runs/<run name>)"),
    ) -> None:
        """Train a neural family from a run file; checkpoints, metrics.jsonl and loss.png go to --out."""
        result, out_dir, job, is_main = run_training(config, overrides or [], resume=resume, out=out)
        if is_main:
            line = f"trained {job.describe or 'model'}: step {result.step}, loss {result.loss:.4f}"
            if result.eval:
                line += f", eval loss {result.eval['eval_loss']:.4f} (ppl {result.eval['eval_ppl']:.2f})"
            if result.stopped_early:
                line += ", stopped early"
            typer.echo(f"{line} -> {out_dir}")
