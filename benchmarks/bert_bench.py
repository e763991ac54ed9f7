"""MLM training step: lmlab BERT vs Hugging Face BertForMaskedLM, side by side in one process.

Same config for both (hidden 256, 4 layers, 4 heads, intermediate 1024, vocab 8192, seq 128,
batch 16, fp32, 2 threads, dropout 0.1), same weights (lmlab's exported through the HF key map),
same masked batches (15%, 80/10/10), AdamW. lmlab computes the output layer only at the selected
positions; HF computes it at every position and ignores the labels = -100 ones. Rounds alternate
between the two so that a change in machine load hits both.

Reports tokens/s per model, the ratio, and MFU against the measured fp32 matmul peak of this
machine, measured in the same process right after the rounds (``lmlab.train.log.measure_matmul_flops``,
best 1024³ fp32 matmul with the same thread count) with the FLOPs each model actually performs
(6 × matmul parameters used per token + attention; HF's includes the full output layer).

    .venv/bin/python benchmarks/bert_bench.py [--steps 10] [--rounds 3] [--threads 2]

``--compare`` instead runs the family comparison of docs/bert_family.md at equal compute: each
variant (BERT, RoBERTa FULL-/DOC-SENTENCES, ALBERT under each sharing mode, SpanBERT, ELECTRA,
and no pretraining at all) is pretrained for the same number of steps of the same batch shape
on the wiki-vital-small train split, then fine-tuned on rotten-tomatoes with the same budget;
it reports parameters, pretraining seconds per step, the final pretraining loss and test
accuracy / macro-F1:

    .venv/bin/python benchmarks/bert_bench.py --compare [--pretrain-steps 300] [--finetune-steps 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

H, L, A, FF, V, T, B = 256, 4, 4, 1024, 8192, 128, 16


def flops_per_token(output_fraction: float) -> float:
    per_layer = 4 * H * H + 2 * H * FF
    dense = L * per_layer + output_fraction * (H * H + H * V)
    return 6.0 * dense + 6.0 * L * 2 * T * H


VARIANTS = [  # (label, family, data overrides, model overrides)
    ("no pretraining (BERT init)", "bert", {}, {}),
    ("BERT (pairs + NSP, token masking)", "bert", {}, {}),
    ("ELECTRA (generator 1/4, λ=50)", "electra", {}, {}),
    ("ELECTRA (generator 1/8, λ=50)", "electra", {}, {"generator_ratio": 0.125}),
    ("RoBERTa FULL-SENTENCES", "roberta", {"input_format": "full-sentences"}, {}),
    ("RoBERTa DOC-SENTENCES", "roberta", {"input_format": "doc-sentences"}, {}),
    ("ALBERT sharing=all (SOP, n-gram)", "albert", {}, {"sharing": "all"}),
    ("ALBERT sharing=none", "albert", {}, {"sharing": "none"}),
    ("ALBERT sharing=attention", "albert", {}, {"sharing": "attention"}),
    ("ALBERT sharing=ffn", "albert", {}, {"sharing": "ffn"}),
    ("SpanBERT (spans + SBO)", "spanbert", {}, {}),
]


def compare(args) -> None:
    """Equal-compute pretraining of each variant, then the same fine-tuning on rotten-tomatoes."""
    from lmlab.data import sources
    from lmlab.nn.init import count_parameters
    from lmlab.recipes.bert_family import DataSpec, Recipe, TokenizerSpec, prepare, pretrain
    from lmlab.tasks.classification import FinetuneSpec, finetune_model

    documents = sources.load("wiki-vital-small").split().train
    rows = []
    for label, family, data_over, model_over in VARIANTS:
        if args.only and not any(key in label for key in args.only.split(",")):
            continue
        torch.manual_seed(args.seed)
        recipe = Recipe(family, DataSpec(seq_len=args.seq_len, batch_size=args.batch_size, seed=args.seed,
                                         **data_over),
                        TokenizerSpec(vocab_size=args.vocab_size),
                        model={"n_layers": args.layers, **model_over})
        prepared = prepare(recipe, documents=documents)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            pre = {"loss": float("nan")}
            if not label.startswith("no pretraining"):
                pre = pretrain(prepared, args.pretrain_steps, Path(tmp) / "pre", lr=args.lr, seed=args.seed,
                               threads=args.threads)
            pre_seconds = time.perf_counter() - start
            spec = FinetuneSpec(task="rotten-tomatoes", steps=args.finetune_steps, batch_size=32,
                                max_len=args.finetune_len, lr=args.finetune_lr, pooling=args.pooling, seed=args.seed,
                                threads=args.threads)
            scores = finetune_model(prepared.model, prepared.tokenizer, prepared.specials, spec, Path(tmp) / "ft")
        encoder_params = count_parameters(scores.pop("head").encoder)
        row = {"variant": label, "encoder_params": encoder_params, "pretrain_loss": pre["loss"],
               "pretrain_s_per_step": pre_seconds / args.pretrain_steps, "test_acc": scores["accuracy"],
               "macro_f1": scores["macro_f1"], "majority": scores["majority_baseline"],
               "n_test": scores["n_test"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2)
                             + "\n")


class _CLMObjective:
    """Causal LM on the same rows: predict token t+1 from tokens <= t (padding not predicted)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def prepare(self, ids, generator):
        ids = ids.long()
        targets = ids[:, 1:].masked_fill(ids[:, 1:] == self.pad_id, -100)
        return {"input_ids": ids[:, :-1], "targets": targets}

    def loss(self, model, batch):
        logits = model(batch["input_ids"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=-100, reduction="sum")
        return loss, int((batch["targets"] != -100).sum())


def mlm_vs_clm(args) -> None:
    """Same rows, same width/depth, same steps: BERT's MLM (no NSP) vs GPT's CLM, held-out loss per step."""
    from lmlab.data import sources
    from lmlab.models.gpt import GPTConfig, GPTLanguageModel
    from lmlab.recipes.bert_family import DataSpec, Recipe, TokenizerSpec, prepare
    from lmlab.train import TrainConfig, Trainer

    splits = sources.load("wiki-vital-small").split()
    torch.manual_seed(args.seed)
    recipe = Recipe("roberta", DataSpec(seq_len=args.seq_len, batch_size=args.batch_size, seed=args.seed,
                                        input_format="doc-sentences"),
                    TokenizerSpec(kind="wordpiece", vocab_size=args.vocab_size), model={"n_layers": args.layers})
    prepared = prepare(recipe, documents=splits.train, eval_docs=splits.valid[:150])
    mlm_model = prepared.model
    gpt = GPTLanguageModel(GPTConfig(vocab_size=prepared.tokenizer.vocab_size, max_length=args.seq_len,
                                     d_model=mlm_model.config.d_model, n_layers=args.layers,
                                     n_heads=mlm_model.config.n_heads, d_ff=mlm_model.config.d_ff,
                                     norm_position="post", final_norm=False, activation="gelu"))
    curves = {}
    for name, model, objective in (("MLM (BERT, 15% predicted)", mlm_model, prepared.objective),
                                   ("CLM (GPT, every token predicted)", gpt, _CLMObjective(prepared.specials["pad"]))):
        torch.manual_seed(args.seed)
        config = TrainConfig.quiet(seed=args.seed, max_steps=args.pretrain_steps, lr=args.lr, schedule="linear",
                                   warmup_steps=args.pretrain_steps // 10, eval_every=max(1, args.pretrain_steps // 8),
                                   threads=args.threads, device="cpu", precision="fp32")
        with tempfile.TemporaryDirectory() as tmp:
            Trainer(model, objective, prepared.train_source, config, tmp, eval_source=prepared.eval_source).fit()
            records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
        curves[name] = [(r["step"], r["eval_loss"], r["targets"]) for r in records if "eval_loss" in r]
        print(name, json.dumps(curves[name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "curves": curves},
                                        indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mlm-vs-clm", action="store_true")
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-len", type=int, default=48)
    parser.add_argument("--pooling", default="cls")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.compare:
        compare(args)
        return
    if args.mlm_vs_clm:
        mlm_vs_clm(args)
        return

    import transformers

    from lmlab.interop.hf_bert import save_hf
    from lmlab.models.bert import BertForPreTraining, preset
    from lmlab.objectives.mlm import Masker, MaskingConfig, MLMObjective
    from lmlab.train.log import measure_matmul_flops

    ours = BertForPreTraining(preset("bert-base", vocab_size=V, d_model=H, n_layers=L, n_heads=A, d_ff=FF,
                                     sentence_head=False))
    with tempfile.TemporaryDirectory() as tmp:
        save_hf(ours, Path(tmp) / "hf")
        theirs = transformers.BertForMaskedLM.from_pretrained(Path(tmp) / "hf", attn_implementation="sdpa")
    ours.train()
    theirs.train()
    masker = Masker(MaskingConfig(), V, 4, [0, 2, 3, 4])
    objective = MLMObjective(masker, pad_id=0)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.steps):
        ids = torch.randint(5, V, (B, T), generator=gen)
        ids[:, 0], ids[:, -1] = 2, 3
        batches.append(objective.prepare(ids, gen))

    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4)

    def step_ours(b):
        out = ours(b.input_ids, attention_mask=b.attention_mask, selected=b.selected)
        loss = F.cross_entropy(out.mlm_logits, b.labels)
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()

    def step_theirs(b):
        labels = torch.full_like(b.input_ids, -100)
        labels[b.selected] = b.labels
        loss = theirs(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=labels).loss
        opt_theirs.zero_grad(set_to_none=True)
        loss.backward()
        opt_theirs.step()

    for fn in (step_ours, step_theirs):  # warm-up
        fn(batches[0])
    times = {"lmlab": [], "hf": []}
    for _ in range(args.rounds):
        for name, fn in (("lmlab", step_ours), ("hf", step_theirs)):
            start = time.perf_counter()
            for b in batches:
                fn(b)
            times[name].append(time.perf_counter() - start)
    tokens = args.steps * B * T
    peak = measure_matmul_flops(torch.device("cpu"), torch.float32, seconds=2.0)  # now, with these threads
    rate = {k: tokens / statistics.median(v) for k, v in times.items()}
    mask_fraction = float(sum(b.selected.sum() for b in batches)) / tokens
    result = {
        "config": {"hidden": H, "layers": L, "heads": A, "intermediate": FF, "vocab": V, "seq": T, "batch": B, "threads": args.threads,
                       "steps": args.steps, "rounds": args.rounds, "torch": torch.__version__,
                       "transformers": transformers.__version__},
        "tokens_per_s": rate,
        "ratio_lmlab_over_hf": rate["lmlab"] / rate["hf"],
        "mfu": {"lmlab": flops_per_token(mask_fraction) * rate["lmlab"] / peak,
                "hf": flops_per_token(1.0) * rate["hf"] / peak},
        "peak_fp32_flops": peak,
        "round_seconds": times,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
