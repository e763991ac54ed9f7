"""GPT-1's auxiliary LM loss in fine-tuning (Radford et al., 2018, §3.2): λ = 0 vs λ = 0.5 on rotten-tomatoes.

One word-level GPT is pre-trained on wiki-vital's training split (causal LM, a fixed wall-clock
budget), then fine-tuned on rotten-tomatoes (review snippet -> fresh / rotten, test split by movie)
with the same budget, learning rate and data order for each λ and seed:

    L_3(C) = L_2(C) + λ · L_1(C)     L_2: label cross-entropy, L_1: causal-LM loss on the same reviews

Usage::

    python benchmarks/gpt_finetune_bench.py --pretrain-seconds 240 --steps 300 --seeds 0 1 2 --threads 1 \\
        --write benchmarks/results/gpt_finetune.md
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-seconds", type=float, default=240.0)
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps (batch 32)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--coefs", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", type=Path, default=None)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    from lmlab.data import sources
    from lmlab.data.stream import LMBlocks
    from lmlab.data.tokenizers.word import word_tokenize
    from lmlab.models.gpt import GPTConfig, GPTLanguageModel
    from lmlab.objectives.clm import CausalLMObjective
    from lmlab.recipes.gpt import finetune_classifier
    from lmlab.train.trainer import TrainConfig, Trainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    wiki = sources.load("wiki-vital").split().train
    tokenized = [word_tokenize(d.text, True) for d in wiki]
    counts = collections.Counter(w for doc in tokenized for w in doc)
    vocab = ["<pad>", "<unk>", "<s>", "</s>"] + [w for w, _ in counts.most_common(args.vocab - 4)]
    index = {w: i for i, w in enumerate(vocab)}
    PAD, UNK, BOS, EOS = 0, 1, 2, 3
    stream = np.fromiter((i for doc in tokenized for i in (*[index.get(w, UNK) for w in doc], EOS)), dtype=np.int64)
    config = GPTConfig(vocab_size=len(vocab), max_length=64, d_model=128, n_layers=2, n_heads=4, dropout=0.1,
                       attn_dropout=0.1, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    lm = GPTLanguageModel(config)
    train = TrainConfig.quiet(seed=0, max_steps=10**9, lr=3e-3, warmup_steps=50, weight_decay=0.01, clip_norm=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(lm, CausalLMObjective(), LMBlocks(stream, 64, 32, seed=0), train, Path(tmp) / "pre")
        started, steps, losses = time.monotonic(), 0, []
        while time.monotonic() - started < args.pretrain_seconds:
            losses.append(trainer.train_step()["loss"])
            steps += 1
        pretrain_took = time.monotonic() - started
    pre_loss = statistics.mean(losses[-20:])

    def encode(text: str) -> list[int]:
        return [index.get(w, UNK) for w in word_tokenize(text, True)]

    results: dict[float, list[float]] = {c: [] for c in args.coefs}
    seconds: dict[float, list[float]] = {c: [] for c in args.coefs}
    majority = n_test = n_train = None
    for seed in args.seeds:
        for coef in args.coefs:
            started = time.monotonic()
            scores = finetune_classifier(lm, encode, steps=args.steps, lr=args.lr, seed=seed, lm_coef=coef)
            seconds[coef].append(time.monotonic() - started)
            results[coef].append(100 * scores["accuracy"])
            majority, n_test, n_train = 100 * scores["majority_baseline"], scores["n_test"], scores["n_train"]
            print(f"seed {seed} lambda {coef}: accuracy {100 * scores['accuracy']:.2f}%", flush=True)

    import os

    load = os.getloadavg()[0]
    lines = ["## GPT-1 auxiliary LM loss in fine-tuning: rotten-tomatoes", "",
             f"Command: `python benchmarks/gpt_finetune_bench.py {' '.join(argv)}`  ",
             (f"Pre-training: word-level GPT (2 layers, d=128, 4 heads, pre-LN, tied, |V|={len(vocab):,}, "
              f"{lm.num_parameters() / 1e6:.2f}M parameters) on wiki-vital train, {steps:,} steps of 32x64 tokens "
              f"in {pretrain_took:.0f} s ({steps * 32 * 64 / len(stream):.2f} epochs), final training loss "
              f"{pre_loss:.2f} nats.  "),
             (f"Fine-tuning: rotten-tomatoes ({n_train:,} training / {n_test:,} test snippets, split by movie), "
              f"last-token head, {args.steps} steps x 32 reviews (max 48 tokens), AdamW lr {args.lr} linear decay, "
              f"10% warm-up, every parameter trained; the same data order per seed for each λ. "
              f"{args.threads} thread(s), shared 2-core machine (load average {load:.1f} at the end)."), "",
             "| λ (lm_coef) | test accuracy % per seed | mean | fine-tuning time per run (s) |", "|---|---|---|---|"]
    for coef in args.coefs:
        accs = results[coef]
        lines.append(f"| {coef} | {', '.join(f'{a:.2f}' for a in accs)} | {statistics.mean(accs):.2f} | "
                     f"{statistics.mean(seconds[coef]):.0f} |")
    lines += ["", f"Majority class: {majority:.2f}%."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
