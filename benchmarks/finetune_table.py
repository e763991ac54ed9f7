"""docs/tasks.md's measured table: rotten-tomatoes test accuracy of every encoder family, at one
small CPU budget, over 3 fine-tuning seeds, beside the majority class and a from-scratch Transformer.

Encoders (all tiny: hidden 64, 2 layers, 2 heads, feed-forward 256, vocabulary 4,096; ALBERT with
embeddings of 32): pretrained ``--pretrain-steps`` steps of 16 x 64 tokens on wiki-vital-small
(``lmlab train`` with configs/{bert,electra,xlnet,gpt}.toml — roberta / albert / spanbert through
configs/bert.toml with ``family=...`` — and the sizes overridden), once, with seed 0; the folders
are cached under ``--cache`` (a second run reuses them). Then each is fine-tuned with the same
budget (BERT-style and XLNet: mean pooling; GPT: last-token pooling, with and without GPT-1's
λ = 0.5 LM loss); ELECTRA also as frozen features with a linear head on the mean; and a
BERT-style Transformer from random weights with Adam (seed 003's first step).

Fine-tuning: ``--steps`` steps of 32 reviews x at most 48 tokens, lr 1e-3, linear warm-up 10%,
validation every steps/10 with the best weights kept. Seeds 0, 1, 2 change the head's
initialisation, the data order and dropout (not the pretraining). Everything runs on one torch
thread (on the shared 2-core machine two threads were several times slower). ``--records DIR`` writes one
``lmlab.report.records`` JSON per run (``lmlab report DIR`` shows them, mean ± sd per variant).

    .venv/bin/python benchmarks/finetune_table.py [--steps 150] [--pretrain-steps 200] [--md FILE] [--records DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.d_model=64", "model.n_layers=2", "model.n_heads=2", "model.d_ff=256"]
RUN_FILES = {"bert": ("bert", []), "roberta": ("bert", ["family=roberta"]), "spanbert": ("bert", ["family=spanbert"]),
             "albert": ("bert", ["family=albert", "model.d_embedding=32"]),
             "electra": ("electra", ["model.d_embedding=64"]), "xlnet": ("xlnet", []),
             "gpt": ("gpt", ["model.max_length=64"])}
COMMON = ["data.corpus=wiki-vital-small", "data.seq_len=64", "data.batch_size=16", "tokenizer.vocab_size=4096",
          "train.progress=off", "train.plot=false", "train.tensorboard=false", "train.mfu=false",
          "train.checkpoint_every=0", "train.checkpoint_minutes=0", "train.threads=1", "train.seed=0"]


def pretrain(family: str, steps: int, cache: Path) -> Path:
    """The cached folder of ``family`` pretrained ``steps`` steps (trained now when it is not there)."""
    from lmlab.cli.train import run_training

    out = cache / f"pre-{family}-{steps}"
    if (out / "model" / "config.json").is_file():
        return out / "model"
    run_file, extra = RUN_FILES[family]
    overrides = [*extra, *TINY, *COMMON, f"train.max_steps={steps}", f"train.eval_every={steps}",
                 f"train.warmup_steps={max(1, steps // 10)}"]
    if family != "gpt":
        overrides.append("data.eval_documents=16")
    started = time.perf_counter()
    run_training(ROOT / "configs" / f"{run_file}.toml", overrides, out=out)
    print(f"pretrained {family} in {time.perf_counter() - started:.0f} s", flush=True)
    return out / "model"


VARIANTS = [  # in this order so that a stopped run has the from-scratch row and BERT vs XLNet first
    ("Transformer from scratch (Adam, mean)", None, dict(optimizer="adam", pooling="mean")),
    ("BERT pretrained, fine-tuned (mean)", "bert", dict(pooling="mean")),
    ("XLNet pretrained, fine-tuned (mean)", "xlnet", dict(pooling="mean")),
    ("ELECTRA pretrained, fine-tuned (mean)", "electra", dict(pooling="mean")),
    ("ELECTRA pretrained, frozen features + linear (mean)", "electra", dict(pooling="mean", freeze=True)),
    ("GPT pretrained, fine-tuned (last token)", "gpt", dict()),
    ("GPT pretrained, fine-tuned (last token, λ = 0.5 LM loss)", "gpt", dict(lm_coef=0.5)),
    ("RoBERTa pretrained, fine-tuned (mean)", "roberta", dict(pooling="mean")),
    ("ALBERT pretrained, fine-tuned (mean)", "albert", dict(pooling="mean")),
    ("SpanBERT pretrained, fine-tuned (mean)", "spanbert", dict(pooling="mean")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--pretrain-steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", default="/work/cache/r3-tasks")
    parser.add_argument("--only", default="", help="comma-separated families (scratch for the from-scratch row)")
    parser.add_argument("--out", default="", help="append each row as a JSON line here")
    parser.add_argument("--md", default="", help="write the Markdown table here")
    parser.add_argument("--records", default="", help="write lmlab.report records (one per run) into this folder")
    parser.add_argument("--record", default="", help="write an lmlab.report record of the printed results into this folder")
    args = parser.parse_args()
    if args.record:  # the printed numbers as one lmlab record
        from lmlab.report.bench import record_at_exit
        record_at_exit(args.record, __file__)
    import torch

    from lmlab.recipes.finetune import finetune_from_scratch
    from lmlab.report import records
    from lmlab.tasks.classification import FinetuneSpec, finetune

    torch.set_num_threads(1)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    variants = [v for v in VARIANTS if not only or (v[1] or "scratch") in only]
    base = dict(task="rotten-tomatoes", steps=args.steps, batch_size=32, max_len=48, lr=1e-3, threads=1)
    scratch = cache / "scratch.toml"
    scratch.write_text('family = "bert"\n[tokenizer]\nkind = "wordpiece"\nvocab_size = 4096\n'
                       '[model]\nd_model = 64\nn_layers = 2\nn_heads = 2\nd_ff = 256\n')
    folders = {}
    rows, recs = [], []
    for label, family, extra in variants:
        accs, f1s, seconds, majority = [], [], [], None
        for seed in range(args.seeds):
            spec = FinetuneSpec(**base, seed=seed, **extra)
            out = cache / "ft" / f"{records.slug(label)}-{args.steps}-{seed}"
            if out.exists():
                import shutil

                shutil.rmtree(out)
            started = time.perf_counter()
            if family and family not in folders:  # pretrained when first needed, so rows arrive early
                folders[family] = pretrain(family, args.pretrain_steps, cache)
                started = time.perf_counter()
            scores = finetune_from_scratch(scratch, spec, out) if family is None else \
                finetune(folders[family], spec, out)
            seconds.append(time.perf_counter() - started)
            accs.append(scores["accuracy"])
            f1s.append(scores["macro_f1"])
            majority = scores["majority_baseline"]
            recs.append(records.Record(
                model=label, family=family or "bert", group="finetune-table", corpus="rotten-tomatoes", seed=seed,
                metrics={"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
                         "majority_baseline": majority},
                train_seconds=seconds[-1], machine=records.machine(),
                config={"pretrain_steps": args.pretrain_steps if family else 0, **base, **extra},
                notes="tiny encoders, one CPU budget (benchmarks/finetune_table.py); shared, loaded machine"))
        row = {"variant": label, "acc_mean": statistics.mean(accs), "acc_sd": statistics.pstdev(accs),
               "f1_mean": statistics.mean(f1s), "f1_sd": statistics.pstdev(f1s), "accs": accs,
               "majority": majority, "seconds_per_run": statistics.mean(seconds)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        if args.records:  # after every row, so a stopped run keeps what it measured
            records.write_records(recs, args.records)
    lines = [f"| variant | test accuracy (mean ± sd, {args.seeds} seeds) | macro-F1 | majority class | s / run |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['acc_mean']:.3f} ± {r['acc_sd']:.3f} | {r['f1_mean']:.3f} ± {r['f1_sd']:.3f} "
              f"| {r['majority']:.3f} | {r['seconds_per_run']:.0f} |" for r in rows]
    print("\n" + "\n".join(lines))
    if args.md:
        Path(args.md).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
