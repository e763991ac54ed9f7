"""The seed's seq2seq pretraining comparison at CPU scale: T5 vs BART vs MASS vs no pretraining.

Each pretraining objective trains its tiny encoder-decoder (all 2+2 layers x d=64, d_ff 256, 4 heads)
through ``lmlab train configs/{t5,bart,mass}.toml`` on the same wiki-vital documents with the same
token budget (``--pretrain-steps`` x batch 16 x rows of 64 tokens):

- ``t5``: span corruption (15%, mean span 3) on T5 (relative position bias, RMSNorm), unigram 4000;
- ``bart``: text infilling + sentence permutation on BART, byte-level BPE 4096;
- ``mass``: MASS (one 50% fragment) on the same BART network;
- ``none``: the BART network with fresh weights.

Every model is then fine-tuned (``lmlab.tasks.seq2seq.finetune_seq2seq``, the path ``lmlab finetune``
runs) on KJV -> WEB and on G2P for ``--seeds`` fine-tuning seeds, and scored on the test split
(BLEU / chrF, ROUGE-L; PER / WER for G2P): mean ± sample standard deviation over the seeds.

    PYTHONPATH=src python benchmarks/seq2seq_comparison.py --pretrain-steps 1500 --finetune-steps 1000 \
        --finetune-batch 64 --finetune-lr 2e-3 --warmup 200 --max-train 0 --max-eval 50 --seeds 3 \
        --tasks g2p,kjv-web --write benchmarks/results/seq2seq_comparison.md

Pretrained folders and fine-tuning runs go under ``--cache`` (default /work/cache/r3-seq2seq); the
per-run scores also go to ``--write`` with ``.json`` as its suffix.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

OBJECTIVES = {
    "t5": ("configs/t5.toml", ["data.batch_size=16", "data.inputs_length=64"]),
    "bart": ("configs/bart.toml", ["data.batch_size=16", "data.seq_len=64"]),
    "mass": ("configs/mass.toml", ["data.batch_size=16", "data.seq_len=64"]),
}
TASKS = ("kjv-web", "g2p")


def pretrain(name: str, args, cache: Path) -> Path:
    """The ``model`` folder of ``lmlab train`` for objective ``name`` (reused when already there)."""
    run_file, overrides = OBJECTIVES[name]
    out = cache / f"pretrain-{name}-{args.pretrain_steps}"
    if (out / "model" / "config.json").is_file():
        return out / "model"
    warmup = max(1, args.pretrain_steps // 10)
    command = [sys.executable, "-m", "lmlab", "train", run_file, "--out", str(out), *overrides,
               f"data.max_documents={args.documents}", f"train.max_steps={args.pretrain_steps}",
               f"train.warmup_steps={warmup}", f"train.eval_every={args.pretrain_steps}",
               f"train.checkpoint_every={args.pretrain_steps}", f"train.threads={args.threads}"]
    print(" ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    return out / "model"


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def copy_baseline(task: str, max_eval: int) -> dict:
    """Scores of copying the source as the output, on the test pairs the fine-tuned models decode: the KJV
    verse unchanged (KJV -> WEB), the word's letters upper-cased as phoneme symbols (G2P)."""
    from lmlab.tasks.seq2seq import score_outputs, task_pairs

    test = task_pairs(task)[1]["test"][:max_eval]
    outputs = [" ".join(ch.upper() for ch in s if ch.isalpha()) if task == "g2p" else s for s, _ in test]
    return score_outputs(task, outputs, [t for _, t in test])


def _pairs(max_train: int) -> str:
    return "every training pair" if max_train == 0 else f"at most {max_train} training pairs"


def write(args, records: list[dict]) -> None:
    lines = ["# Seq2seq pretraining comparison (tiny, CPU)", "",
             f"`PYTHONPATH=src python benchmarks/seq2seq_comparison.py "
             f"{' '.join(a for a in sys.argv[1:] if a != '--from-records')}`", "",
             f"Pretraining: {args.pretrain_steps} steps x batch 16 x rows of 64 tokens on {args.documents} "
             "wiki-vital documents, each objective on its own 2+2 x d=64 network (T5 for span corruption, BART "
             "for text infilling + permutation and for MASS; `none` is the BART network with fresh weights). "
             f"Fine-tuning: {args.finetune_steps} steps, batch {args.finetune_batch}, lr {args.finetune_lr:g} "
             f"({args.warmup} warmup steps), {_pairs(args.max_train)}, greedy decoding of {args.max_eval} test pairs; mean ± standard deviation over the seeds "
             "shown. Measured on 2 cores, one fine-tuning run at a time. `copy the source` is no model: the source itself "
             "as the output (G2P: its letters as phoneme symbols), scored the same way.", ""]
    for task in TASKS:
        rows = [r for r in records if r["task"] == task]
        if not rows:
            continue
        extra = ["PER", "WER"] if task == "g2p" else []
        header = ["pretraining", "seeds", "pretrain loss", "BLEU", "chrF", "ROUGE-L", *extra]
        lines += [f"## {task}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name in (*OBJECTIVES, "none"):
            mine = [r for r in rows if r["pretraining"] == name]
            if not mine:
                continue
            cells = [summary([r[m] for r in mine]) for m in ("bleu", "chrf", "rougeL", *(e.lower() for e in extra))]
            loss = mine[0]["pretrain_loss"]
            lines.append(f"| {name} | {len(mine)} | {'-' if loss is None else f'{loss:.3f}'} | " + " | ".join(cells)
                         + " |")
        base = copy_baseline(task, args.max_eval)
        lines.append("| copy the source | - | - | " + " | ".join(f"{base[m]:.2f}" for m in
                                                              ("bleu", "chrf", "rougeL", *(e.lower() for e in extra)))
                     + " |")
        lines.append("")
    args.write.parent.mkdir(parents=True, exist_ok=True)
    args.write.write_text("\n".join(lines), encoding="utf-8")
    args.write.with_suffix(".json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


def add_budget_arguments(parser: argparse.ArgumentParser, cache: Path, write: Path) -> None:
    """The pretraining / fine-tuning budget options this script and ``mass_sweep.py`` share."""
    parser.add_argument("--pretrain-steps", type=int, default=600)
    parser.add_argument("--finetune-steps", type=int, default=600)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--max-train", type=int, default=4000, help="training pairs kept (0: all)")
    parser.add_argument("--finetune-batch", type=int, default=16)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=30, help="fine-tuning warmup steps")
    parser.add_argument("--max-eval", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=cache)
    parser.add_argument("--write", type=Path, default=write)
    parser.add_argument("--from-records", action="store_true",
                        help="only rewrite --write's table from the per-run scores already in its .json")


def main() -> None:
    from lmlab.tasks.seq2seq import Seq2SeqFinetuneSpec, finetune_seq2seq

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_budget_arguments(parser, Path("/work/cache/r3-seq2seq"), Path("benchmarks/results/seq2seq_comparison.md"))
    args = parser.parse_args()
    if args.from_records:
        write(args, json.loads(args.write.with_suffix(".json").read_text(encoding="utf-8")))
        return
    torch.set_num_threads(args.threads)
    folders = {name: pretrain(name, args, args.cache) for name in OBJECTIVES}
    folders["none"] = folders["bart"]
    losses = {}
    for name in OBJECTIVES:
        metrics = [json.loads(line) for line in (folders[name].parent / "metrics.jsonl").read_text().splitlines()
                   if line.strip()]
        losses[name] = next((m["loss"] for m in reversed(metrics) if "loss" in m), None)
    records = []
    for task in args.tasks.split(","):
        for name, folder in folders.items():
            for seed in range(args.seeds):
                start = time.monotonic()
                spec = Seq2SeqFinetuneSpec(steps=args.finetune_steps, batch_size=args.finetune_batch, lr=args.finetune_lr,
                                           warmup_steps=args.warmup, max_source_len=64,
                                           max_target_len=64, max_train=args.max_train, max_eval=args.max_eval,
                                           from_scratch=name == "none", seed=seed, threads=args.threads)
                out = args.cache / (f"ft-{task}-{name}-{seed}-{args.pretrain_steps}-{args.finetune_steps}"
                                     f"-b{args.finetune_batch}-lr{args.finetune_lr:g}")
                scores = finetune_seq2seq(folder, task, spec, out)
                record = {"task": task, "pretraining": name, "seed": seed, "pretrain_loss": losses.get(name),
                          "seconds": time.monotonic() - start,
                          **{k: v for k, v in scores.items() if isinstance(v, int | float)}}
                records.append(record)
                print(task, name, seed, {k: round(record[k], 2) for k in ("bleu", "chrf", "rougeL")},
                      f"{record['seconds']:.0f}s", flush=True)
                write(args, records)  # after every run, so a cut-short run still leaves its table


if __name__ == "__main__":
    main()
