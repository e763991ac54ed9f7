"""``lmlab finetune MODEL_DIR DATA``: fine-tune a saved encoder on a built-in task or your own labelled file.

    lmlab finetune runs/bert/model rotten-tomatoes --out runs/ft
    lmlab finetune runs/gpt/model reviews.csv --text-field review --label-field stars --lm-coef 0.5
    lmlab finetune --from-scratch configs/classifier_scratch.toml rotten-tomatoes --optimizer adam
    lmlab finetune --vectors vectors.txt rotten-tomatoes --freeze --head bilstm
    lmlab finetune runs/electra/model rotten-tomatoes --freeze --layer -2     # feature-based
    lmlab finetune runs/elmo/model wnut16 --layers top --head bilstm          # ELMo features

MODEL_DIR: a saved folder of any family with the ``encode`` capability (bert, roberta, spanbert,
albert, electra, gpt, ... — ``lmlab.registry``), with its tokenizer. DATA: ``rotten-tomatoes``,
``wiki-topics``, a tagging / QA / pair / seq2seq set (``peoples-daily-ner``, ``msra-ner``, ...) or a CSV / TSV / JSONL file (``--text-field``,
``--label-field``, ``--text-pair-field``, ``--split-field``, else a seeded 80/10/10 split).
With an encoder-decoder MODEL_DIR (t5, bart, mass, transformer), ``g2p``, ``kjv-web``, ``wiki-desc``
and a pairs file (``.jsonl`` of ``{"source", "target"}`` or a ``.tsv`` of source<TAB>target) fine-tune
it as sequence-to-sequence (:mod:`lmlab.tasks.seq2seq`); ``--num-beams``, ``--length-penalty``,
``--max-source-length`` and ``--max-target-length`` set its decoding and lengths, are recorded in the
folder and are the defaults of ``lmlab predict`` / ``lmlab eval seq2seq``.
Prints validation and test accuracy, macro-F1 and the majority-class baseline, writes
``scores.json`` and the fine-tuned folder ``OUT/model`` (``lmlab.load``, ``lmlab predict``,
``lmlab eval classify``). ``--resume`` continues an interrupted run exactly. The library side is
:mod:`lmlab.tasks.classification` and :mod:`lmlab.recipes.finetune`.
"""

from __future__ import annotations

import json
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from ..report.cards import finetune_record
from .common import console, decoding_option, err_console, fresh_output_dir, status, table


@contextmanager
def training(message: str):
    """Say what is fine-tuned, then train with the Trainer's progress shown (a bar on a terminal, a line
    with the step, loss and ETA every 5% of the steps otherwise): no spinner, which would fight the bar."""
    from ..train.trainer import nested_progress

    err_console.print(f"[dim]{message}[/dim]")
    with nested_progress("auto"):
        yield


def _data_licence(task: str) -> str:
    """The licence of a built-in task's source, for the model card (empty for a user's file)."""
    from ..data.sources import SOURCES

    return SOURCES[task].licence if task in SOURCES else ""


# built-in tasks beyond sequence classification: DATA name -> (module, finetune function, spec class, kind)
OTHER_TASKS = {
    "msra-ner": ("tagging", "finetune_tagging", "TaggingSpec", "tagging"),
    "peoples-daily-ner": ("tagging", "finetune_tagging", "TaggingSpec", "tagging"),
    "wnut16": ("tagging", "finetune_tagging", "TaggingSpec", "tagging"),
    "wiki-qa": ("qa", "finetune_qa", "QASpec", "extractive QA"),
    "bible-paraphrase": ("pairs", "finetune_pairs", "PairSpec", "sentence pairs"),
    "g2p": ("seq2seq", "finetune_seq2seq", "Seq2SeqFinetuneSpec", "sequence-to-sequence"),
    "kjv-web": ("seq2seq", "finetune_seq2seq", "Seq2SeqFinetuneSpec", "sequence-to-sequence"),
    "wiki-desc": ("seq2seq", "finetune_seq2seq", "Seq2SeqFinetuneSpec", "sequence-to-sequence"),
}


def _decoding(model_dir: Path, decoding: dict, allowed: tuple[str, ...]) -> dict:
    """The seq2seq options given (spec field -> value), range-checked against the model folder; a one-line
    UsageError for one the task does not use."""
    from ..tasks.seq2seq import DECODING_OPTIONS, check_decoding_options, folder_max_length

    unused = [DECODING_OPTIONS[k] for k, v in decoding.items() if v is not None and k not in allowed]
    if unused:
        raise UsageError(f"{', '.join(unused)}: only for fine-tuning an encoder-decoder on source -> target pairs"
                         + (" (text-to-text classification takes the lengths only)" if allowed else ""))
    given = any(v is not None for v in decoding.values())
    return check_decoding_options(decoding, folder_max_length(model_dir) if given and model_dir else None)


def _other_task(model_dir: Path, task: str, out: Path | None, force: bool, *, steps: int, batch_size: int,
                max_len: int, lr: float, max_train: int, seed: int, threads: int, crf: bool,
                decoding: dict | None = None) -> None:
    """Tagging, QA, sentence pairs and seq2seq tasks through their own ``finetune_*`` (lmlab.tasks)."""
    import dataclasses
    import importlib

    from ..io import atomic_write_text
    from ..pretrained import read_model_config

    module_name, function, spec_name, kind = OTHER_TASKS.get(task, OTHER_TASKS["g2p"])  # else a pairs file
    module = importlib.import_module(f"lmlab.tasks.{module_name}")
    spec_class = getattr(module, spec_name)
    fields = {f.name for f in dataclasses.fields(spec_class)}
    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "max_train": max_train, "seed": seed,
             "threads": threads or (1 if module_name == "seq2seq" else 0),
             "max_len": max_len, "crf": crf}
    seq2seq = module_name == "seq2seq"
    given.update(_decoding(model_dir, decoding or {}, tuple(fields) if seq2seq else ()))
    spec = spec_class(**{k: v for k, v in given.items() if k in fields})
    spec.validate()
    read_model_config(model_dir)
    out_dir = fresh_output_dir(out or Path("runs") / f"finetune-{Path(task).stem}", force)
    with training(f"fine-tuning {model_dir} on {task} ({kind}, {steps} steps)"):
        scores = getattr(module, function)(model_dir, task, spec, out_dir)
    rows = [[k, v] for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    console.print(table(f"{task}: {model_dir}", ["metric", "value"], rows))
    if not (out_dir / "scores.json").is_file():
        atomic_write_text(out_dir / "scores.json", json.dumps(scores, indent=2, default=str) + "\n")
    finetune_record(out_dir, task, str(model_dir), scores, shlex.join(["lmlab", "finetune", *sys.argv[2:]]), kind,
                    data_licence=_data_licence(task))
    console.print(f"model: {out_dir / 'model'}  scores: {out_dir / 'scores.json'}")


def _text_to_text(model_dir: Path, task: str, out: Path | None, force: bool, *, steps: int, batch_size: int,
                  lr: float, max_train: int, seed: int, threads: int, text_field: str, label_field: str,
                  decoding: dict) -> None:
    """Classification as generating the label word (:func:`lmlab.tasks.seq2seq.finetune_text_to_text`)."""
    from ..tasks.seq2seq import Seq2SeqFinetuneSpec, finetune_text_to_text

    lengths = _decoding(model_dir, decoding, ("max_source_len", "max_target_len"))
    spec = Seq2SeqFinetuneSpec(steps=steps, batch_size=batch_size, lr=lr, max_train=max_train, max_eval=0,
                               seed=seed, threads=threads or 1, **lengths)
    spec.validate()
    out_dir = fresh_output_dir(out or Path("runs") / f"finetune-{Path(task).stem}", force)
    with training(f"fine-tuning {model_dir} on {task} (text-to-text: the label word is generated, {steps} steps)"):
        scores = finetune_text_to_text(model_dir, task, spec, out_dir, text_field=text_field, label_field=label_field)
    rows = [["test accuracy", scores["accuracy"]], ["test macro-F1", scores["macro_f1"]],
            ["majority-class accuracy", scores["majority_baseline"]], ["train examples", scores["n_train"]],
            ["test examples", scores["n_test"]], ["final train loss", scores["train_loss"]]]
    console.print(table(f"{task}: {model_dir} (text-to-text)", ["metric", "value"], rows))
    console.print(f"model: {out_dir / 'model'}  scores: {out_dir / 'scores.json'}")


def _elmo(model_dir: Path, task: str, spec, out: Path | None, force: bool, layers: str, crf: bool,
          resume: bool) -> bool:
    """An ELMo folder (lmlab's or bilm-tf's): feature-based transfer (:mod:`lmlab.recipes.elmo`); False otherwise."""
    from ..io import atomic_write_text
    from ..recipes import elmo as elmo_recipe

    if not elmo_recipe.is_elmo_folder(model_dir):
        return False
    if task in OTHER_TASKS and OTHER_TASKS[task][0] != "tagging":
        raise UsageError(f"{task}: an ELMo folder feeds classification and tagging tasks only")
    name = Path(task).stem if Path(task).suffix else task
    if task in ("msra-ner", "wnut16", "peoples-daily-ner"):
        from ..tasks.tagging import TaggingSpec

        tag_spec = TaggingSpec(steps=spec.steps, batch_size=spec.batch_size, max_len=spec.max_len, lr=spec.lr,
                               max_train=spec.max_train, seed=spec.seed, threads=spec.threads, crf=crf)
        tag_spec.validate()
        out_dir = fresh_output_dir(out or Path("runs") / f"finetune-{name}", force)
        hidden = spec.head_hidden if spec.head == "bilstm" else 0
        with status(f"ELMo features of {model_dir} on {task} (tagging, {spec.steps} steps)"):
            scores = elmo_recipe.finetune_tagger(model_dir, task, tag_spec, out_dir, layers=layers, lstm_hidden=hidden)
        rows = [[k, v] for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    else:
        spec.validate()
        out_dir = out or Path("runs") / f"finetune-{name}"
        out_dir = out_dir if resume else fresh_output_dir(out_dir, force)
        with status(f"ELMo features of {model_dir} on {task}"):
            scores = elmo_recipe.finetune_classifier(model_dir, spec, out_dir, layers=layers, resume=resume)
        rows = [[k, scores[k]] for k in ("valid_accuracy", "accuracy", "macro_f1", "majority_baseline", "n_train",
                                         "n_test", "train_loss", "seconds") if k in scores]
    console.print(table(f"{task}: ELMo features of {model_dir}", ["metric", "value"], rows))
    atomic_write_text(out_dir / "scores.json", json.dumps(scores, indent=2, default=str) + "\n")
    console.print(f"model: {out_dir / 'model'}  scores: {out_dir / 'scores.json'}")
    return True


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune(
        args: Annotated[list[str], typer.Argument(help="MODEL_DIR DATA (only DATA with --from-scratch or --vectors); "
                                                       "DATA: rotten-tomatoes | wiki-topics | peoples-daily-ner | "
                                                       "msra-ner | wnut16 | wiki-qa | bible-paraphrase | g2p | "
                                                       "kjv-web | wiki-desc | a .csv/.tsv/.jsonl file")],
        from_scratch: Path = typer.Option(None, "--from-scratch", help="TOML file of an encoder to train from random "
                                                                       "weights (configs/classifier_scratch.toml)"),
        vectors: Path = typer.Option(None, "--vectors", help="word2vec / fastText / GloVe vector file as fixed features"),
        text_field: str = typer.Option("text", help="DATA file: the text field"),
        label_field: str = typer.Option("label", help="DATA file: the label field"),
        text_pair_field: str = typer.Option("", help="DATA file: a second text (sentence-pair classification)"),
        split_field: str = typer.Option("", help="DATA file: each row's split (train / valid / test); "
                                                 "default a seeded split"),
        valid_fraction: float = typer.Option(0.1, help="automatic split: fraction of rows for validation"),
        test_fraction: float = typer.Option(0.1, help="automatic split: fraction of rows for test"),
        steps: int = typer.Option(300, help="optimiser steps (unless --epochs)"),
        epochs: float = typer.Option(0.0, help="passes over the training split (overrides --steps when > 0)"),
        batch_size: int = typer.Option(32, help="examples per step"),
        max_len: int = typer.Option(128, help="tokens per example, special tokens included"),
        lr: float = typer.Option(1e-4, help="peak learning rate (linear warm-up, then linear decay)"),
        optimizer: str = typer.Option("adamw", help="adamw | adam (Adam: no weight decay)"),
        weight_decay: float = typer.Option(0.01, help="AdamW's decoupled weight decay"),
        warmup: float = typer.Option(0.1, help="fraction of the steps spent warming up"),
        max_train: int = typer.Option(0, help="use at most this many training examples (0: all)"),
        pooling: str = typer.Option("", help="cls | mean | last (default: cls; last for causal LMs; mean for vectors)"),
        lm_coef: float = typer.Option(0.0, help="GPT-1's auxiliary LM loss weight λ (gpt only; GPT-1 used 0.5)"),
        freeze: bool = typer.Option(False, "--freeze", help="feature-based: keep the encoder fixed, train the head"),
        layer: int = typer.Option(-1, help="which layer's states the head reads (-1: last; k: the k-th; -2: ...)"),
        head: str = typer.Option("linear", help="linear | bilstm (a small BiLSTM over the token states)"),
        head_hidden: int = typer.Option(128, help="BiLSTM head: hidden size per direction"),
        eval_every: int = typer.Option(-1, help="score the validation split every N steps and keep the best "
                                                "weights (-1: ten times per run; 0: never, test the final weights)"),
        patience: int = typer.Option(0, help="early stopping: evaluations without improvement (0: off)"),
        checkpoint_every: int = typer.Option(0, help="checkpoint every N steps (0: at the end and on Ctrl-C)"),
        seed: int = typer.Option(0, help="seed for the head's initialisation, shuffling, dropout and the split"),
        threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)"),
        out: Path = typer.Option(None, "--out", help="output folder (default runs/finetune-DATA)"),
        force: bool = typer.Option(False, "--force", help="write into a non-empty --out"),
        resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its latest checkpoint"),
        crf: bool = typer.Option(False, "--crf", help="tagging tasks: a linear-chain CRF over the tag scores"),
        text_to_text: bool = typer.Option(None, "--text-to-text/--no-text-to-text",
                                          help="an encoder-decoder learns to write the label word (T5's "
                                               "text-to-text classification; default: on for T5 folders)"),
        layers: str = typer.Option("", "--layers", help="ELMo folders: the layers the scalar mix reads: all "
                                                        "(default), top, or numbers 0 (char-CNN) .. L, e.g. 1"),
        num_beams: int = decoding_option("num_beams", "finetune"),
        length_penalty: float = decoding_option("length_penalty", "finetune"),
        max_source_length: int = decoding_option("max_source_len", "finetune"),
        max_target_length: int = decoding_option("max_target_len", "finetune"),
    ) -> None:
        """Fine-tune an encoder (or train one from scratch) on a task or a labelled file; report test scores."""
        from ..io import atomic_write_text
        from ..tasks.classification import FinetuneSpec

        builds = [name for name, value in (("--from-scratch", from_scratch), ("--vectors", vectors)) if value]
        if len(builds) > 1:
            raise UsageError("--from-scratch and --vectors: choose one")
        wanted = 1 if builds else 2
        if len(args) != wanted:
            usage = f"lmlab finetune {builds[0]} FILE DATA" if builds else "lmlab finetune MODEL_DIR DATA"
            raise UsageError(f"expected {wanted} argument{'s' if wanted > 1 else ''} ({usage}), got {len(args)}")
        model_dir, task = (None, args[0]) if builds else (Path(args[0]), args[1])
        decoding = {"num_beams": num_beams, "length_penalty": length_penalty, "max_source_len": max_source_length,
                    "max_target_len": max_target_length}
        spec = FinetuneSpec(task=task, text_field=text_field, label_field=label_field,
                            text_pair_field=text_pair_field, split_field=split_field,
                            valid_fraction=valid_fraction, test_fraction=test_fraction, steps=steps, epochs=epochs,
                            batch_size=batch_size, max_len=max_len, lr=lr, optimizer=optimizer,
                            weight_decay=weight_decay, warmup_fraction=warmup, max_train=max_train, pooling=pooling,
                            lm_coef=lm_coef, freeze=freeze, layer=layer, head=head, head_hidden=head_hidden,
                            eval_every=eval_every, patience=patience, checkpoint_every=checkpoint_every, seed=seed,
                            threads=threads)
        if model_dir is not None:
            from ..recipes.elmo import is_elmo_folder

            if is_elmo_folder(model_dir):  # an encoder: the seq2seq options are refused in one line
                _decoding(model_dir, decoding, ())
        if model_dir is not None and _elmo(model_dir, task, spec, out, force, layers, crf, resume):
            return
        if layers:
            raise UsageError("--layers is for ELMo folders (the scalar mix); Transformer encoders take --layer")
        if model_dir is not None and task not in OTHER_TASKS:
            from ..tasks.seq2seq import is_pairs_for_encoder_decoder, wants_text_to_text

            if is_pairs_for_encoder_decoder(model_dir, task, text_field):  # a source -> target file
                _other_task(model_dir, task, out, force, steps=steps, batch_size=batch_size, max_len=max_len, lr=lr,
                            max_train=max_train, seed=seed, threads=threads, crf=crf, decoding=decoding)
                return

            if wants_text_to_text(model_dir, text_to_text):
                _text_to_text(model_dir, task, out, force, steps=steps, batch_size=batch_size, lr=lr,
                              max_train=max_train, seed=seed, threads=threads, text_field=text_field,
                              label_field=label_field, decoding=decoding)
                return
        if task in OTHER_TASKS:
            if model_dir is None:
                raise UsageError(f"{task} needs a pretrained MODEL_DIR (lmlab finetune MODEL_DIR {task})")
            _other_task(model_dir, task, out, force, steps=steps, batch_size=batch_size, max_len=max_len, lr=lr,
                        max_train=max_train, seed=seed, threads=threads, crf=crf, decoding=decoding)
            return
        _decoding(model_dir, decoding, ())
        spec.validate()
        if model_dir is not None:
            from ..pretrained import read_model_config

            read_model_config(model_dir)  # a missing or broken model folder fails before --out is created
        elif from_scratch is not None:
            from ..recipes.finetune import read_scratch_spec

            read_scratch_spec(from_scratch)
        elif not vectors.is_file():
            raise UsageError(f"--vectors: file not found: {vectors}")
        name = Path(task).stem if Path(task).suffix else task
        out_dir = out or Path("runs") / f"finetune-{name}"
        out_dir = out_dir if resume else fresh_output_dir(out_dir, force)
        source = model_dir or from_scratch or vectors
        with training(f"fine-tuning {source} on {task}"):
            if from_scratch is not None:
                from ..recipes.finetune import finetune_from_scratch

                scores = finetune_from_scratch(from_scratch, spec, out_dir, resume=resume)
            elif vectors is not None:
                from ..recipes.finetune import finetune_on_vectors

                scores = finetune_on_vectors(vectors, spec, out_dir, resume=resume)
            else:
                from ..tasks.classification import finetune as run

                scores = run(model_dir, spec, out_dir, resume=resume)
        rows = []
        if "valid_accuracy" in scores:
            rows.append(["valid accuracy (best weights)", scores["valid_accuracy"]])
        rows += [["test accuracy", scores["accuracy"]], ["test macro-F1", scores["macro_f1"]]]
        if "majority_baseline" in scores:
            rows.append(["majority-class accuracy", scores["majority_baseline"]])
        rows += [["train examples", scores["n_train"]], ["test examples", scores["n_test"]]]
        if "steps" in scores:
            rows += [["steps (best at)", f"{scores['steps']} ({scores['best_step']})"
                      + (", stopped early" if scores.get("stopped_early") else "")]]
        rows += [["final train loss", scores["train_loss"]], ["seconds", scores["seconds"]]]
        console.print(table(f"{task}: {source}", ["metric", "value"], rows))
        atomic_write_text(out_dir / "scores.json", json.dumps(scores, indent=2) + "\n")
        finetune_record(out_dir, task, str(source), scores, shlex.join(["lmlab", "finetune", *sys.argv[2:]]),
                        data_licence=_data_licence(task))
        console.print(f"model: {out_dir / 'model'}  scores: {out_dir / 'scores.json'}  "
                      f"card: {out_dir / 'model' / 'README.md'}")
