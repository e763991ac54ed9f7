"""Equal-compute comparison of the BERT family and ELECTRA on wiki-vital, over several seeds.

Each variant is pretrained with the same budget (steps x batch x sequence length, the same lr
schedule) on the ``wiki-vital`` train split, then its encoder is fine-tuned, with the same budget,
on ``rotten-tomatoes`` (split by movie) and — for the families marked below — on ``wiki-topics``
(documents of the wiki-vital *test* split only, so nothing fine-tuned or tested was pretrained
on). Every (variant, seed) pair is one JSON line; ``--summary`` turns JSON lines into the
mean ± sd tables of benchmarks/results/bert.md.

What differs between seeds: the pretraining row order, masks, NSP/SOP pairings, initialisation,
and the fine-tuning shuffles (the tokenizer is trained on the same text every time).

For ELECTRA the script also scores the discriminator on held-out rows (wiki-vital valid split):
its replaced-token-detection accuracy, the all-"original" baseline accuracy (1 − the replaced
fraction), its log-loss and the baseline's best log-loss H(q).

    .venv/bin/python benchmarks/bert_compare.py --seed 0 --threads 1 --out /tmp/cmp/seed0.jsonl
    .venv/bin/python benchmarks/bert_compare.py --summary /tmp/cmp/seed*.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

VARIANTS = [  # (label, family, data overrides, model overrides, also fine-tune on wiki-topics)
    ("no pretraining (BERT init)", "bert", {}, {}, True),
    ("BERT (pairs + NSP, token masking)", "bert", {}, {}, True),
    ("ELECTRA (generator 1/4, λ=50)", "electra", {}, {}, True),
    ("RoBERTa FULL-SENTENCES", "roberta", {"input_format": "full-sentences"}, {}, True),
    ("RoBERTa DOC-SENTENCES", "roberta", {"input_format": "doc-sentences"}, {}, False),
    ("ALBERT sharing=all (SOP, n-gram)", "albert", {}, {"sharing": "all"}, True),
    ("ALBERT sharing=none", "albert", {}, {"sharing": "none"}, False),
    ("ALBERT sharing=attention", "albert", {}, {"sharing": "attention"}, False),
    ("ALBERT sharing=ffn", "albert", {}, {"sharing": "ffn"}, False),
]


def rtd_heldout(prepared, documents, seq_len: int, n_rows: int = 512) -> dict:
    """Held-out RTD accuracy, the all-original baseline, log-loss and H(q) of an ELECTRA model."""
    from lmlab.objectives.sentence import encode_documents, packed_rows

    s = prepared.specials
    rows = packed_rows(encode_documents([d.text for d in documents], prepared.tokenizer), seq_len, s["cls"],
                       s["sep"], s["pad"], cross_documents=True)[:n_rows]
    model = prepared.model.eval()
    correct = replaced = total = 0.0
    loss_sum = 0.0
    with torch.no_grad():
        for i in range(0, rows.shape[0], 64):
            b = prepared.objective.prepare(torch.as_tensor(rows[i:i + 64]), torch.Generator().manual_seed(i))
            out = model(b.masked_ids, b.original_ids, b.selected, attention_mask=b.attention_mask,
                        sampler=torch.Generator().manual_seed(i))
            real = b.attention_mask.bool()
            logits, labels = out.rtd_logits[real], out.rtd_labels[real]
            correct += float(((logits > 0).float() == labels).sum())
            replaced += float(labels.sum())
            total += labels.numel()
            loss_sum += float(F.binary_cross_entropy_with_logits(logits, labels, reduction="sum"))
    q = replaced / total
    return {"rtd_acc": correct / total, "rtd_baseline_acc": 1 - q, "rtd_logloss": loss_sum / total,
            "rtd_baseline_logloss": -(q * math.log(q) + (1 - q) * math.log(1 - q)), "rtd_tokens": int(total)}


def run(args) -> None:
    from lmlab.data import sources
    from lmlab.nn.init import count_parameters
    from lmlab.recipes.bert_family import DataSpec, Recipe, TokenizerSpec, prepare, pretrain
    from lmlab.tasks.classification import FinetuneSpec, finetune_model

    splits = sources.load("wiki-vital").split()
    out = open(args.out, "a") if args.out else None
    for label, family, data_over, model_over, topics in VARIANTS:
        if args.only and not any(key in label for key in args.only.split(",")):
            continue
        torch.manual_seed(args.seed)
        recipe = Recipe(family, DataSpec(seq_len=args.seq_len, batch_size=args.batch_size, seed=args.seed,
                                         **data_over),
                        TokenizerSpec(vocab_size=args.vocab_size), model=dict(model_over))
        prepared = prepare(recipe, documents=splits.train)
        row = {"variant": label, "seed": args.seed, "pretrain_steps": args.pretrain_steps,
               "encoder_params": None, "pretrain_loss": None, "pretrain_s_per_step": None}
        with tempfile.TemporaryDirectory() as tmp:
            if not label.startswith("no pretraining"):
                start = time.perf_counter()
                pre = pretrain(prepared, args.pretrain_steps, Path(tmp) / "pre", lr=args.lr, seed=args.seed,
                               threads=args.threads)
                row["pretrain_s_per_step"] = (time.perf_counter() - start) / args.pretrain_steps
                row["pretrain_loss"] = pre["loss"]
                if family == "electra":
                    row.update(rtd_heldout(prepared, splits.valid[:300], args.seq_len))
            tasks = [("rotten-tomatoes", args.rt_steps, args.rt_len)]
            if topics:
                tasks.append(("wiki-topics", args.topics_steps, args.topics_len))
            for task, steps, max_len in tasks:
                model = copy.deepcopy(prepared.model)
                spec = FinetuneSpec(task=task, steps=steps, batch_size=32, max_len=max_len, lr=args.finetune_lr,
                                    pooling="mean", seed=args.seed, threads=args.threads)
                start = time.perf_counter()
                scores = finetune_model(model, prepared.tokenizer, prepared.specials, spec, Path(tmp) / task)
                row["encoder_params"] = count_parameters(scores.pop("head").encoder)
                row[task] = {"acc": scores["accuracy"], "macro_f1": scores["macro_f1"],
                             "majority": scores["majority_baseline"], "n_test": scores["n_test"],
                             "seconds": time.perf_counter() - start}
        print(json.dumps(row, ensure_ascii=False), flush=True)
        if out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()


def _ms(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def summary(paths: list[str]) -> None:
    rows = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line.strip()]
    labels = [v[0] for v in VARIANTS if any(r["variant"] == v[0] for r in rows)]
    print("| variant | seeds | encoder params | pretraining s/step | pretraining loss (last step) "
          "| rotten-tomatoes acc | macro-F1 | wiki-topics acc | macro-F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label in labels:
        mine = [r for r in rows if r["variant"] == label]

        def task(name, key, mine=mine):
            return _ms([r[name][key] for r in mine if name in r])

        print(f"| {label} | {len(mine)} | {mine[0]['encoder_params']:,} | {_ms([r['pretrain_s_per_step'] for r in mine])} "
              f"| {_ms([r['pretrain_loss'] for r in mine])} | {task('rotten-tomatoes', 'acc')} "
              f"| {task('rotten-tomatoes', 'macro_f1')} | {task('wiki-topics', 'acc')} | {task('wiki-topics', 'macro_f1')} |")
    for name in ("rotten-tomatoes", "wiki-topics"):
        done = [r[name] for r in rows if name in r]
        if done:
            print(f"\n{name}: majority-class accuracy {done[0]['majority']:.3f}, n_test = {done[0]['n_test']}")
    electra = [r for r in rows if "rtd_acc" in r]
    if electra:
        print("\n| seed | held-out RTD acc | all-original acc | RTD log-loss | H(q) | tokens |")
        print("|---|---|---|---|---|---|")
        for r in electra:
            print(f"| {r['seed']} | {r['rtd_acc']:.4f} | {r['rtd_baseline_acc']:.4f} | {r['rtd_logloss']:.4f} "
                  f"| {r['rtd_baseline_logloss']:.4f} | {r['rtd_tokens']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rt-steps", type=int, default=300)
    parser.add_argument("--rt-len", type=int, default=48)
    parser.add_argument("--topics-steps", type=int, default=200)
    parser.add_argument("--topics-len", type=int, default=128)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated substrings of variant labels")
    parser.add_argument("--out", default="", help="append one JSON line per (variant, seed) here")
    parser.add_argument("--summary", nargs="*", help="JSON-lines files to summarise (no training)")
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
        return
    torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
