"""docs/tasks.md's measured table: rotten-tomatoes test accuracy of each way of building a
classifier, at one small CPU budget, over 3 fine-tuning seeds, beside the majority class.

Encoders (all tiny: hidden 64, 2 layers, 2 heads; the same fine-tuning budget for every row):

- from scratch: BERT-style, random weights, Adam (seed 003's first step);
- bert / electra / gpt: pretrained ``--pretrain-steps`` steps on wiki-vital-small (``lmlab train``
  with configs/{bert,electra,gpt}.toml and the sizes overridden), once, with seed 0; then fine-tuned
  (BERT, ELECTRA: mean pooling; GPT: last-token pooling, with and without GPT-1's λ = 0.5 LM loss);
- electra frozen: the same pretrained ELECTRA as fixed features, a linear head on the mean.

Fine-tuning: ``--steps`` steps of 32 reviews x at most 48 tokens, lr 1e-3, linear warm-up 10%,
validation every steps/10 with the best weights kept. Seeds 0, 1, 2 change the head's
initialisation, the data order and dropout (not the pretraining).

    .venv/bin/python benchmarks/finetune_table.py [--steps 150] [--pretrain-steps 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"bert": ["model.d_model=64", "model.n_layers=2", "model.n_heads=2", "model.d_ff=256"],
         "electra": ["model.d_embedding=64", "model.d_model=64", "model.n_layers=2", "model.n_heads=2",
                     "model.d_ff=256"],
         "gpt": ["model.d_model=64", "model.n_layers=2", "model.n_heads=2", "model.max_length=64",
                 "data.corpus=wiki-vital-small", "data.seq_len=64"]}
COMMON = ["data.batch_size=16", "tokenizer.vocab_size=4096", "train.progress=off", "train.plot=false",
          "train.tensorboard=false", "train.mfu=false", "train.checkpoint_every=0", "train.checkpoint_minutes=0",
          "train.threads=2"]


def pretrain(family: str, steps: int, out: Path) -> Path:
    from lmlab.cli.train import run_training

    overrides = [*SIZES[family], *COMMON, f"train.max_steps={steps}", f"train.eval_every={steps}",
                 f"train.warmup_steps={max(1, steps // 10)}"]
    if family != "gpt":
        overrides += ["data.seq_len=64", "data.eval_documents=16"]
    run_training(ROOT / "configs" / f"{family}.toml", overrides, out=out)
    return out / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--pretrain-steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    import torch

    from lmlab.recipes.finetune import finetune_from_scratch
    from lmlab.tasks.classification import FinetuneSpec, finetune

    torch.set_num_threads(2)
    base = dict(task="rotten-tomatoes", steps=args.steps, batch_size=32, max_len=48, lr=1e-3, threads=2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scratch = tmp / "scratch.toml"
        scratch.write_text('family = "bert"\n[tokenizer]\nkind = "wordpiece"\nvocab_size = 4096\n'
                           '[model]\nd_model = 64\nn_layers = 2\nn_heads = 2\nd_ff = 256\n')
        folders = {}
        for family in ("bert", "electra", "gpt"):
            started = time.perf_counter()
            folders[family] = pretrain(family, args.pretrain_steps, tmp / f"pre-{family}")
            print(f"pretrained {family} in {time.perf_counter() - started:.0f} s", flush=True)
        variants = [
            ("Transformer from scratch (Adam, mean)", None, dict(optimizer="adam", pooling="mean")),
            ("BERT pretrained, fine-tuned (mean)", "bert", dict(pooling="mean")),
            ("ELECTRA pretrained, fine-tuned (mean)", "electra", dict(pooling="mean")),
            ("ELECTRA pretrained, frozen features + linear (mean)", "electra", dict(pooling="mean", freeze=True)),
            ("GPT pretrained, fine-tuned (last token)", "gpt", dict()),
            ("GPT pretrained, fine-tuned (last token, λ = 0.5 LM loss)", "gpt", dict(lm_coef=0.5)),
        ]
        for label, family, extra in variants:
            accs, f1s, seconds, majority = [], [], [], None
            for seed in range(args.seeds):
                spec = FinetuneSpec(**base, seed=seed, **extra)
                out = tmp / f"ft-{len(rows)}-{seed}"
                started = time.perf_counter()
                scores = finetune_from_scratch(scratch, spec, out) if family is None else \
                    finetune(folders[family], spec, out)
                seconds.append(time.perf_counter() - started)
                accs.append(scores["accuracy"])
                f1s.append(scores["macro_f1"])
                majority = scores["majority_baseline"]
            row = {"variant": label, "acc_mean": statistics.mean(accs), "acc_sd": statistics.stdev(accs),
                   "f1_mean": statistics.mean(f1s), "f1_sd": statistics.stdev(f1s), "accs": accs,
                   "majority": majority, "seconds_per_run": statistics.mean(seconds)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| variant | test accuracy (mean ± sd, 3 seeds) | macro-F1 | majority class | s / run |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['acc_mean']:.3f} ± {r['acc_sd']:.3f} | {r['f1_mean']:.3f} ± {r['f1_sd']:.3f} "
              f"| {r['majority']:.3f} | {r['seconds_per_run']:.0f} |")
    if args.out:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
