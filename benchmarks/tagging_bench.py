"""Token tagging on real NER sets: a soft-max head vs a linear-chain CRF head, same encoder, data and steps.

A tiny BERT from a random initialisation (no pretraining: the CPU budget of this machine) with a
WordPiece vocabulary trained on the training sentences, fine-tuned with and without the CRF
(``lmlab.tasks.tagging``) for each seed; entity F1 (seqeval default and strict modes) on a
fixed sample of the test split, beside the all-"O" baseline (entity F1 0).

Usage::

    python benchmarks/tagging_bench.py --set msra-ner --steps 300 --seeds 0 1 --max-train 1500 --max-test 300 \\
        --write benchmarks/results/tagging.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="msra-ner", choices=["msra-ner", "wnut16", "peoples-daily-ner"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-train", type=int, default=1500)
    parser.add_argument("--max-test", type=int, default=300)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", default="")
    args = parser.parse_args(argv)

    import torch

    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.recipes.bert_family import make_model, special_ids
    from lmlab.tasks import tagging as tg

    torch.set_num_threads(args.threads)
    data = tg.builtin_data(args.set)
    train_text = [("".join if args.set != "wnut16" else " ".join)(words) for words, _ in data.train[:args.max_train]]
    tokenizer = train_tokenizer("wordpiece", train_text, vocab_size=2000)
    rows = []
    for crf in (False, True):
        f1s, strict, seconds = [], [], []
        for seed in args.seeds:
            torch.manual_seed(seed)
            bert = make_model("bert", tokenizer.vocab_size, special_ids(tokenizer),
                              {"d_model": args.d_model, "n_layers": 2, "n_heads": 2, "d_ff": 2 * args.d_model})
            spec = tg.TaggingSpec(steps=args.steps, batch_size=16, max_len=args.max_len, lr=args.lr, crf=crf,
                                  scheme="bioes" if args.set == "msra-ner" else "bio", max_train=args.max_train,
                                  max_test=args.max_test, seed=seed, threads=args.threads)
            start = time.monotonic()
            _, scores = tg.finetune_tagger(bert, tokenizer, data, spec, tempfile.mkdtemp())
            seconds.append(time.monotonic() - start)
            f1s.append(100 * scores["entity_f1"])
            strict.append(100 * scores["entity_f1_strict"])
            print(f"crf={crf} seed={seed}: entity F1 {f1s[-1]:.2f} (strict {strict[-1]:.2f}) in {seconds[-1]:.0f} s",
                  flush=True)
        rows.append((crf, f1s, strict, statistics.mean(seconds)))
    load = os.getloadavg()[0]
    lines = [f"## Tagging: soft-max vs CRF head on {args.set}", "",
             f"Command: `python benchmarks/tagging_bench.py {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
             f"Encoder: BERT from a random init (2 layers, d={args.d_model}, 2 heads), WordPiece |V|=2,000 on the "
             f"training text; {args.steps} steps x 16 sentences (max {args.max_len} pieces), AdamW lr {args.lr}, "
             f"first-sub-token alignment; {args.max_train} training / {args.max_test} test sentences. "
             f"{args.threads} thread(s), shared 2-core machine (load average {load:.1f} at the end).", "",
             "| head | entity F1 % per seed (default) | strict | mean | seconds per run |", "|---|---|---|---|---|"]
    for crf, f1s, strict, secs in rows:
        lines.append(f"| {'CRF' if crf else 'soft-max'} | {', '.join(f'{x:.2f}' for x in f1s)} | "
                     f"{', '.join(f'{x:.2f}' for x in strict)} | {statistics.mean(f1s):.2f} | {secs:.0f} |")
    lines += ["", "All-\"O\" baseline: entity F1 0.", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
