"""The MASS fragment-length sweep (Song et al. 2019, Fig. 3): pretrain with k = word_mass x length, fine-tune.

MASS masks one contiguous fragment of k tokens and the decoder predicts it. The paper argues that k = 1 is
BERT's masked LM (the decoder sees nothing of the target side) and k = length is a standard LM (the encoder
sees only masks), and finds k ~ 50% best. This script pretrains the same tiny 2+2 x d=64 BART network as
``benchmarks/seq2seq_comparison.py`` (``lmlab train configs/mass.toml objective.word_mass=K``, the same
documents, steps and token budget) for each K in ``--fractions``, then fine-tunes every pretrained model on
each task for ``--seeds`` fine-tuning seeds with the same settings as the comparison, and writes a table of
BLEU / chrF (and PER for G2P) against K: mean ± sample standard deviation over the seeds.

    PYTHONPATH=src python benchmarks/mass_sweep.py --pretrain-steps 1500 --finetune-steps 1000 \\
        --finetune-batch 64 --finetune-lr 2e-3 --warmup 200 --max-train 0 --max-eval 50 --seeds 3 \\
        --tasks kjv-web,g2p --fractions 0.1,0.3,0.5,0.7,1.0

The pretraining loss is over the fragment only, so it is not comparable across K (a longer fragment is
predicted with less of the sentence visible); the fine-tuned scores are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from seq2seq_comparison import add_budget_arguments, copy_baseline, summary


def pretrain(fraction: float, args) -> tuple[Path, float | None]:
    """The ``model`` folder of MASS pretrained with ``word_mass=fraction`` and its last training loss."""
    out = args.cache / f"pretrain-mass-k{fraction:g}-{args.pretrain_steps}"
    if not (out / "model" / "config.json").is_file():
        command = [sys.executable, "-m", "lmlab", "train", "configs/mass.toml", "--out", str(out),
                   "data.batch_size=16", "data.seq_len=64", f"objective.word_mass={fraction}",
                   f"data.max_documents={args.documents}", f"train.max_steps={args.pretrain_steps}",
                   f"train.warmup_steps={max(1, args.pretrain_steps // 10)}",
                   f"train.eval_every={args.pretrain_steps}", f"train.checkpoint_every={args.pretrain_steps}",
                   f"train.threads={args.threads}"]
        print(" ".join(command[2:]), flush=True)
        subprocess.run(command, check=True)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return out / "model", next((m["loss"] for m in reversed(metrics) if "loss" in m), None)


def write(args, records: list[dict]) -> None:
    lines = ["# MASS fragment-length sweep (tiny, CPU)", "",
             f"`PYTHONPATH=src python benchmarks/mass_sweep.py {' '.join(a for a in sys.argv[1:] if a != '--from-records')}`",
             "", f"Pretraining: MASS with fragment k = K x row length on the 2+2 x d=64 BART network, "
             f"{args.pretrain_steps} steps x batch 16 x rows of 64 tokens on {args.documents} wiki-vital documents "
             f"(the settings of `benchmarks/seq2seq_comparison.py`). Fine-tuning: {args.finetune_steps} steps, batch "
             f"{args.finetune_batch}, lr {args.finetune_lr:g} ({args.warmup} warmup steps), greedy decoding of "
             f"{args.max_eval} test pairs; mean ± standard deviation over the fine-tuning seeds. The pretraining loss "
             "is over the fragment only and is not comparable across K. Measured on 2 cores, one run at a time.", ""]
    for task in args.tasks.split(","):
        rows = [r for r in records if r["task"] == task]
        if not rows:
            continue
        metrics = ["bleu", "chrf", "rougeL", *(["per"] if task == "g2p" else [])]
        header = ["K (fragment / length)", "seeds", "pretrain loss", "BLEU", "chrF", "ROUGE-L",
                  *(["PER"] if task == "g2p" else [])]
        lines += [f"## {task}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for fraction in sorted({r["word_mass"] for r in rows}):
            mine = [r for r in rows if r["word_mass"] == fraction]
            loss = mine[0]["pretrain_loss"]
            lines.append(f"| {fraction:g} | {len(mine)} | {'-' if loss is None else f'{loss:.3f}'} | "
                         + " | ".join(summary([r[m] for r in mine]) for m in metrics) + " |")
        base = copy_baseline(task, args.max_eval)
        lines += ["| copy the source | - | - | " + " | ".join(f"{base[m]:.2f}" for m in metrics) + " |", ""]
    args.write.parent.mkdir(parents=True, exist_ok=True)
    args.write.write_text("\n".join(lines), encoding="utf-8")
    args.write.with_suffix(".json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    from lmlab.tasks.seq2seq import Seq2SeqFinetuneSpec, finetune_seq2seq

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fractions", default="0.1,0.3,0.5,0.7,1.0", help="MASS word_mass values, comma-separated")
    add_budget_arguments(parser, Path("/work/cache/mass-sweep"), Path("benchmarks/results/mass_sweep.md"))
    args = parser.parse_args()
    if args.from_records:
        write(args, json.loads(args.write.with_suffix(".json").read_text(encoding="utf-8")))
        return
    torch.set_num_threads(args.threads)
    fractions = [float(f) for f in args.fractions.split(",")]
    pretrained = {fraction: pretrain(fraction, args) for fraction in fractions}
    records = []
    for seed in range(args.seeds):  # seeds outermost: a cut-short sweep still has the whole curve
        for task in args.tasks.split(","):
            for fraction in fractions:
                folder, loss = pretrained[fraction]
                start = time.monotonic()
                spec = Seq2SeqFinetuneSpec(steps=args.finetune_steps, batch_size=args.finetune_batch, lr=args.finetune_lr,
                                           warmup_steps=args.warmup, max_source_len=64, max_target_len=64,
                                           max_train=args.max_train, max_eval=args.max_eval, seed=seed,
                                           threads=args.threads)
                out = args.cache / (f"ft-{task}-k{fraction:g}-{seed}-{args.pretrain_steps}-{args.finetune_steps}"
                                     f"-b{args.finetune_batch}-lr{args.finetune_lr:g}")
                scores = finetune_seq2seq(folder, task, spec, out)
                record = {"task": task, "word_mass": fraction, "seed": seed, "pretrain_loss": loss,
                          "seconds": time.monotonic() - start,
                          **{k: v for k, v in scores.items() if isinstance(v, int | float)}}
                records.append(record)
                print(task, fraction, seed, {k: round(record[k], 2) for k in ("bleu", "chrf", "rougeL")},
                      f"{record['seconds']:.0f}s", flush=True)
                write(args, records)  # after every run, so a cut-short sweep still leaves its table


if __name__ == "__main__":
    main()
