"""``lmlab train RUN.toml [key=value ...] [--resume] [--out DIR]``: train any family with a recipe.

The run file (:mod:`lmlab.recipes.run`) names a family; its row in :mod:`lmlab.registry`
names the recipe, ``build(run) -> lmlab.train.TrainingJob`` (model, objective, train source,
eval source, exporter); see docs/training.md. The recipe turns its tables into its own
dataclasses with ``lmlab.config.from_dict`` so that unknown keys are refused; a table it
never reads is refused here.

Imports stay light (torch is loaded only when a run starts), so ``lmlab --help`` is quick.
Under ``torchrun`` every process runs this command; the Trainer joins the process group.

Interrupts: Ctrl-C (SIGINT) or SIGTERM stops the run at the next step boundary with a
checkpoint; the command prints one line naming it and the command that resumes it, and exits
130 / 143. A run file that sets neither ``train.checkpoint_every`` nor
``train.checkpoint_minutes`` checkpoints every :data:`DEFAULT_CHECKPOINT_MINUTES` minutes.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import typer

from .. import registry
from ..errors import ConfigError, closest
from ..recipes.run import load_run
from .common import err_console, spinner


def builder_for(family: str):
    """The recipe of ``family`` (its registry row's ``recipe``)."""
    trainable = registry.trainable()
    if family not in trainable:
        raise ConfigError(f"no trainable family {family!r}{closest(family, trainable)}; known: {', '.join(trainable)}")
    return registry.get(family).recipe_function()


# time-based checkpoints for a run file that asks for none (the Trainer's own default is 0: off)
DEFAULT_CHECKPOINT_MINUTES = 10.0


# `lmlab train --quick`: a short run that shows a run file working end to end (corpus, tokenizer,
# training, evaluation, export) in minutes rather than the run file's full schedule
QUICK_STEPS = 100


def quick_overrides(path: str | Path, overrides: list[str]) -> list[str]:
    """The ``train.*`` overrides ``--quick`` adds (at most QUICK_STEPS steps, evaluated and
    checkpointed at the end, warm-up scaled down), each only where the user set no value for it."""
    from ..config import read_table

    table = read_table(path).get("train", {})
    given = {o.split("=", 1)[0].strip() for o in overrides}
    steps = QUICK_STEPS
    if "train.max_steps" in given or int(table.get("max_steps", steps)) <= steps:
        return []  # already short, or the user chose the length
    wanted = {"train.max_steps": steps, "train.eval_every": steps, "train.checkpoint_every": steps,
              "train.warmup_steps": min(int(table.get("warmup_steps", 0)), steps // 10)}
    return [f"{key}={value}" for key, value in wanted.items() if key not in given]


def resume_command(path: str | Path, overrides: list[str], out_dir: Path) -> str:
    """The command line that continues an interrupted ``lmlab train`` run."""
    words = ["lmlab", "train", str(path), *overrides, "--out", str(out_dir), "--resume"]
    return " ".join(shlex.quote(w) for w in words)


def is_lm_loss(job) -> bool:
    """Whether the job's eval loss is a per-token LM cross-entropy (so exp(loss) is a perplexity)."""
    return bool(getattr(job.objective, "is_language_model", False))


def run_training(path: str | Path, overrides: list[str] | None = None, resume: bool = False,
                 out: str | Path | None = None):
    """Load a run file, build the family's job, train, export. Returns (TrainResult, out dir)."""
    from ..io import atomic_write_text
    from ..train import distributed
    from ..train.trainer import Trainer, TrainingInterrupted, TrainingJob, seed_everything

    run = load_run(path, overrides)
    train_config = run.train_config
    asked = run.as_dict().get("train", {})
    if "checkpoint_every" not in asked and "checkpoint_minutes" not in asked:
        train_config.checkpoint_minutes = DEFAULT_CHECKPOINT_MINUTES  # an interrupted run can always resume
    build = builder_for(run.family)
    out_dir = Path(out) if out else Path("runs") / run.name
    seed_everything(train_config.seed)  # model initialisation is part of the seeded run
    t0 = time.perf_counter()
    with spinner(f"preparing the {run.family} run: reading the corpus, training or loading its tokenizer, "
                 "encoding, building the model"):
        job = build(run)
    if time.perf_counter() - t0 > 2:
        err_console.print(f"[dim]prepared the {run.family} run in {time.perf_counter() - t0:.1f} s[/dim]")
    if not isinstance(job, TrainingJob):
        raise ConfigError(f"builder of {run.family!r} returned {type(job).__name__}, not a TrainingJob")
    unread = run.unread_tables()
    if unread:
        raise ConfigError(f"{path}: table [{unread[0]}] is not used by family {run.family!r}")
    trainer = Trainer(job.model, job.objective, job.train_source, train_config, out_dir,
                      eval_source=job.eval_source, run_config=run.family_tables())
    try:
        try:
            result = trainer.fit(resume=resume)
        except TrainingInterrupted as err:
            err.is_main = trainer.dist.is_main
            err.resume_command = resume_command(path, list(overrides or []), out_dir)
            err.world = trainer.dist.world
            raise
        is_main = trainer.dist.is_main
        if is_main:
            atomic_write_text(out_dir / "run.json", json.dumps(run.as_dict(), indent=2) + "\n")
            if job.export is not None:
                job.export(out_dir / "model")
                if (out_dir / "model").is_dir():
                    write_model_card(out_dir / "model", run, result, job, path, list(overrides or []), out_dir)
    finally:
        distributed.shutdown()
    return result, out_dir, job, is_main


def write_model_card(folder: Path, run, result, job, path, overrides: list[str], out_dir: Path) -> Path:
    """The folder's README.md: what was trained on what, its eval numbers and the command."""
    from ..report.cards import CardMetric, write_card

    row = registry.FAMILIES.get(run.family)
    corpus = str(run.as_dict().get("data", {}).get("corpus", ""))
    metrics = []
    if result.eval:
        lm = is_lm_loss(job)
        task = ("text-generation", "Language modelling") if lm else ("other", "Pretraining objective")
        metrics.append(CardMetric(*task, "loss", "eval loss (nats per predicted token)", result.eval["eval_loss"],
                                  corpus, "valid"))
        if lm and "eval_ppl" in result.eval:
            metrics.append(CardMetric(*task, "perplexity", "eval perplexity per token", result.eval["eval_ppl"],
                                      corpus, "valid"))
    command = " ".join(shlex.quote(w) for w in ["lmlab", "train", str(path), *overrides, "--out", str(out_dir)])
    notes = (f"Trained for {result.step:,} steps (final training loss {result.loss:.4f}). "
             "`lmlab eval ppl FOLDER test --corpus CORPUS` gives the per-word perplexity on the shared test stream.")
    return write_card(folder, name=run.name, family=run.family, summary=row.summary if row else "",
                      corpus=corpus, metrics=metrics, command=command, notes=notes)


def interrupted_line(err) -> str:
    """The one stderr line of an interrupted run: where it stopped, what was saved, how to go on."""
    command = getattr(err, "resume_command", None)
    if err.checkpoint is None:
        return f"lmlab: {err}; start it again with the same command"
    torchrun = " (under the same torchrun launch)" if getattr(err, "world", 1) > 1 else ""
    how = f"resume with: {command}{torchrun}" if command else "resume with --resume"
    return f"lmlab: {err}; {how}"


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        config: Path = typer.Argument(..., help="run file (TOML): family = ..., then data, model, objective, train tables"),
        overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. train.lr=3e-4"),
        resume: bool = typer.Option(False, "--resume", help="continue from OUT/checkpoints/latest"),
        out: Path | None = typer.Option(None, "--out", help="output folder (default runs/<run name>)"),
        quick: bool = typer.Option(False, "--quick", help=f"a short run ({QUICK_STEPS} steps, evaluated at the "
                                   "end) that shows the run file working; train.* overrides still win"),
    ) -> None:
        """Train a neural family from a run file; checkpoints, metrics.jsonl and loss.png go to --out."""
        from ..train.trainer import TrainingInterrupted

        overrides = list(overrides or [])
        if quick:
            added = quick_overrides(config, overrides)
            if added:
                typer.echo(f"--quick: {' '.join(added)}", err=True)
            overrides = added + overrides
        try:
            result, out_dir, job, is_main = run_training(config, overrides, resume=resume, out=out)
        except TrainingInterrupted as err:
            if getattr(err, "is_main", True):
                typer.echo(interrupted_line(err), err=True)
            sys.stderr.flush()
            raise SystemExit(err.exit_code) from None
        if is_main:
            line = f"trained {job.describe or 'model'}: step {result.step}, loss {result.loss:.4f}"
            if result.eval:
                line += f", eval loss {result.eval['eval_loss']:.4f}"
                if is_lm_loss(job):
                    line += f" (ppl {result.eval['eval_ppl']:.2f})"
            if result.stopped_early:
                line += ", stopped early"
            typer.echo(f"{line} -> {out_dir}")
