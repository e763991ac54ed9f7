"""BART's noising ablation at CPU scale (Lewis et al., 2020, Table 1, in miniature).

Each noising scheme pretrains the same tiny BART (same tokenizer, size, steps, batch, seed) on the
same wiki-vital documents; each pretrained model (and one with fresh weights, "none") is then
fine-tuned with the same budget on KJV -> WEB verse modernisation and scored on test-book verses.

    PYTHONPATH=src python benchmarks/bart_noising.py --pretrain-steps 150 --finetune-steps 150 \
        --out benchmarks/results/bart_noising.md

Numbers from a shared 2-core machine; at this size they say little about the paper's ranking
(see docs/bart.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

SCHEMES = ("token-masking", "token-deletion", "text-infilling", "bart")


def write_table(args, rows) -> None:
    lines = ["# BART noising ablation (tiny, CPU)", "",
             f"`PYTHONPATH=src python benchmarks/bart_noising.py --pretrain-steps {args.pretrain_steps} "
             f"--finetune-steps {args.finetune_steps} --documents {args.documents} --max-train {args.max_train} "
             f"--finetune-batch {args.finetune_batch} --finetune-lr {args.finetune_lr:g} --warmup {args.warmup} "
             f"--max-eval {args.max_eval} --seed {args.seed} --threads {args.threads}`", "",
             "Tiny BART (2+2 layers, d=64, bytebpe 4096), pretrained on wiki-vital rows of 64 tokens, batch 16; "
             "fine-tuned on KJV -> WEB (train books), greedy decoding of test-book verses. One seed, 2 cores.", "",
             "| pretraining noise | pretrain loss | BLEU | chrF | ROUGE-L | seconds |", "|---|---|---|---|---|---|"]
    for scheme, pre_loss, scores, seconds in rows:
        lines.append(f"| {scheme} | {pre_loss:.3f} | {scores['bleu']:.2f} | {scores['chrf']:.2f} | "
                     f"{scores['rougeL']:.2f} | {seconds:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    from lmlab.data import sources
    from lmlab.recipes.denoise import DataSpec, TokenizerSpec, prepare
    from lmlab.tasks.seq2seq import Seq2SeqFinetuneSpec, finetune_seq2seq
    from lmlab.train.trainer import TrainConfig, Trainer

    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrain-steps", type=int, default=150)
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--max-train", type=int, default=4000)
    parser.add_argument("--max-eval", type=int, default=100)
    parser.add_argument("--finetune-batch", type=int, default=16)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=30, help="fine-tuning warmup steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bart_noising.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    docs = sources.load("wiki-vital").split().train[: args.documents]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for scheme in (*SCHEMES, "none"):
            start = time.monotonic()
            data = DataSpec(seq_len=64, batch_size=16, eval_documents=0, seed=args.seed)
            prepared = prepare("bart", data, TokenizerSpec(vocab_size=4096), {"preset": "tiny"},
                               {"scheme": "bart" if scheme == "none" else scheme}, documents=docs)
            pre_loss = float("nan")
            if scheme != "none":
                config = TrainConfig.quiet(seed=args.seed, max_steps=args.pretrain_steps, lr=1e-3, schedule="linear",
                                           warmup_steps=max(1, args.pretrain_steps // 10), weight_decay=0.01,
                                           threads=args.threads, device="cpu", precision="fp32")
                pre_loss = Trainer(prepared.model, prepared.objective, prepared.train_source, config,
                                   tmp / scheme / "pre").fit().loss
            folder = prepared.model.save_pretrained(tmp / scheme / "model", extra_files=prepared.tokenizer.files())
            spec = Seq2SeqFinetuneSpec(steps=args.finetune_steps, batch_size=args.finetune_batch, lr=args.finetune_lr,
                                       warmup_steps=args.warmup, max_source_len=64,
                                       max_target_len=64, max_train=args.max_train, max_eval=args.max_eval,
                                       from_scratch=scheme == "none", seed=args.seed, threads=args.threads)
            scores = finetune_seq2seq(folder, "kjv-web", spec, tmp / scheme / "ft")
            rows.append((scheme, pre_loss, scores, time.monotonic() - start))
            print(scheme, f"pretrain loss {pre_loss:.3f}", {k: round(scores[k], 2) for k in ("bleu", "chrf", "rougeL")},
                  f"{rows[-1][3]:.0f}s", flush=True)
            write_table(args, rows)  # after every row, so a cut-short run still leaves its table


if __name__ == "__main__":
    main()
