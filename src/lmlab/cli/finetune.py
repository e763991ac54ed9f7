"""``lmlab finetune MODEL_DIR TASK``: fine-tune a saved BERT / ALBERT / ELECTRA folder on a real task.

Tasks: ``rotten-tomatoes`` (sentiment, split by movie), ``wiki-topics`` (11 topics, documents of
the pretraining test split only), ``peoples-daily-ner`` (BIO tagging of persons / places /
organisations, per character). Prints test accuracy and macro-F1 (and the majority-class
baseline, or entity F1 for tagging), writes ``scores.json`` and the fine-tuned model to ``--out``.
The library side is :mod:`lmlab.tasks.classification`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import console, fresh_output_dir, status, table


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune(
        model_dir: Path = typer.Argument(..., help="saved lmlab model folder (bert, albert or electra) with its tokenizer"),
        task: str = typer.Argument(..., help="rotten-tomatoes | wiki-topics | peoples-daily-ner"),
        steps: int = typer.Option(300, help="optimiser steps"),
        batch_size: int = typer.Option(32, help="examples per step"),
        max_len: int = typer.Option(128, help="tokens per example, [CLS] and [SEP] included"),
        lr: float = typer.Option(1e-4, help="peak learning rate (linear warm-up 10%, then linear decay)"),
        max_train: int = typer.Option(0, help="use at most this many training examples (0: all)"),
        pooling: str = typer.Option("cls", help="sequence vector: cls (pooled [CLS], the papers') or mean (of token states)"),
        seed: int = typer.Option(0, help="seed for the head's initialisation, shuffling and dropout"),
        threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)"),
        out: Path = typer.Option(None, "--out", help="output folder (default runs/finetune-TASK)"),
        force: bool = typer.Option(False, "--force", help="write into a non-empty --out"),
    ) -> None:
        """Fine-tune a pretrained encoder and report test accuracy and macro-F1."""
        from ..io import atomic_write_text
        from ..pretrained import read_model_config
        from ..tasks.classification import FinetuneSpec
        from ..tasks.classification import finetune as run

        spec = FinetuneSpec(task=task, steps=steps, batch_size=batch_size, max_len=max_len, lr=lr,
                            max_train=max_train, pooling=pooling, seed=seed, threads=threads)
        spec.validate()
        read_model_config(model_dir)  # a missing or broken model folder fails before --out is created
        out_dir = fresh_output_dir(out or Path("runs") / f"finetune-{task}", force)
        with status(f"fine-tuning {model_dir} on {task} ({steps} steps)"):
            scores = run(model_dir, spec, out_dir)
        rows = [["test accuracy", scores["accuracy"]], ["test macro-F1", scores["macro_f1"]]]
        if "majority_baseline" in scores:
            rows.append(["majority-class accuracy", scores["majority_baseline"]])
        if "entity_f1" in scores:
            rows.append(["entity F1 (BIO spans)", scores["entity_f1"]])
        rows += [["train examples", scores["n_train"]], ["test examples", scores["n_test"]],
                 ["final train loss", scores["train_loss"]], ["seconds", scores["seconds"]]]
        console.print(table(f"{task}: {model_dir}", ["metric", "value"], rows))
        atomic_write_text(out_dir / "scores.json", json.dumps(scores, indent=2) + "\n")
        console.print(f"model: {out_dir / 'model'}  scores: {out_dir / 'scores.json'}")
