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

``--task`` (default rotten-tomatoes, the table above) runs the same encoders through the other built-in
tasks of ``lmlab finetune``, each through its own spec and ``finetune_*`` function with lr 1e-3 and
``--max-train`` / ``--max-test`` examples (0: all): ``bible-paraphrase`` (PairSpec: 32 pairs x 64
pieces, mean pooling, GPT last token; accuracy, F1 of "paraphrase" and ranking MRR beside the majority
class and always-paraphrase), ``wnut16`` (TaggingSpec: 32 sentences x 64 pieces, BIO, first-piece
alignment; strict and default entity F1 and token accuracy beside tagging everything O; ``msra-ner`` the
same, Chinese characters in BIOES converted to BIO) and ``wiki-qa``
(QASpec: 16 windows x 64 pieces, stride 32, questions cut to 24 pieces; SQuAD v2 EM / F1 in % with
the threshold tuned on ``--max-test`` valid questions, beside always answering nothing). 64 pieces
because the GPT folder's positions stop there. Their specs have no frozen-features or LM-loss option,
so those two rows are skipped (printed); the from-scratch row is a random-weight BERT-style encoder with
a WordPiece tokenizer trained on the task's training texts, fine-tuned as the others (AdamW).
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


# The other built-in tasks of ``lmlab finetune`` (each through its own spec and finetune_* function). Their
# specs have no frozen-features or LM-loss option, and token-level heads (tagging, QA) read every token's
# state, so there is no pooling: those variants are skipped with the reason printed.
PAIR_VARIANTS = [
    ("Transformer from scratch (random weights, AdamW, mean)", None, dict(pooling="mean")),
    *[(label, family, extra) for label, family, extra in VARIANTS if family and "freeze" not in extra
      and "lm_coef" not in extra],
]
TOKEN_VARIANTS = [("Transformer from scratch (random weights, AdamW)", None, {})] + [
    (label.split(" (")[0] + (" (causal: each token sees its left only)" if family == "gpt" else ""), family, {})
    for label, family, extra in VARIANTS if family and not extra.get("freeze") and not extra.get("lm_coef")]
NOT_FOR = {"freeze": "frozen features + linear is a classification option",
           "lm_coef": "the λ LM auxiliary loss is a classification option"}


def skipped(task: str) -> list[tuple[str, str]]:
    """(variant, why) of the rotten-tomatoes variants that ``task``'s path does not have."""
    spec = TASKS[task]["spec"]
    return [(label, f"{spec} has no {key}: {why}") for label, _, extra in VARIANTS
            for key, why in NOT_FOR.items() if key in extra and task != "rotten-tomatoes"]


TAGGING = ("wnut16", "msra-ner")
TASKS = {  # metric key -> column; baseline key -> column; spec fields beyond steps / seed / threads
    "rotten-tomatoes": dict(spec="FinetuneSpec", variants=VARIANTS,
                            metrics={"accuracy": "test accuracy", "macro_f1": "macro-F1"},
                            baselines={"majority_baseline": "majority class"},
                            base=dict(task="rotten-tomatoes", batch_size=32, max_len=48, lr=1e-3)),
    "bible-paraphrase": dict(spec="PairSpec", variants=PAIR_VARIANTS,
                             metrics={"accuracy": "test accuracy", "f1": "F1 (paraphrase)", "mrr": "ranking MRR"},
                             baselines={"majority_baseline": "majority class (accuracy)",
                                        "majority_f1": "majority class (F1)",
                                        "all_paraphrase_f1": "always paraphrase (F1)"},
                             base=dict(batch_size=32, max_len=64, lr=1e-3)),
    **{name: dict(spec="TaggingSpec", variants=TOKEN_VARIANTS,
                  metrics={"entity_f1_strict": "entity F1 (strict)", "entity_f1": "entity F1 (default)",
                           "token_accuracy": "token accuracy"},
                  baselines={"all_o_f1": "all-O entity F1", "all_o_token_accuracy": "all-O token accuracy"},
                  base=dict(batch_size=32, max_len=64, lr=1e-3)) for name in TAGGING},
    "wiki-qa": dict(spec="QASpec", variants=TOKEN_VARIANTS,
                    metrics={"exact": "test EM (%)", "f1": "test F1 (%)"},
                    baselines={"no_answer_exact": "always no-answer EM / F1 (%)"},
                    base=dict(batch_size=16, max_len=64, doc_stride=32, max_question_len=24, max_answer_len=20,
                              lr=1e-3)),
}


def task_data(task: str, seed: int, cache: dict):
    """``task``'s data (built once; the pair set per seed, as ``lmlab finetune`` samples its negatives with it)."""
    key = (task, seed if task == "bible-paraphrase" else 0)
    if key not in cache:
        if task == "bible-paraphrase":
            from lmlab.data.bible import aligned_verses
            from lmlab.tasks.pairs import verse_pairs

            if "verses" not in cache:
                cache["verses"] = aligned_verses()
            cache[key] = verse_pairs(cache["verses"], 1, seed)
        elif task in TAGGING:
            from lmlab.tasks.tagging import builtin_data

            cache[key] = builtin_data(task)
        else:
            from lmlab.data import qa_wiki
            from lmlab.tasks.qa import QAData

            built = qa_wiki.build()
            cache[key] = QAData(built.train, built.valid, built.test, "wiki-qa")
    return cache[key]


def baselines(task: str, data, spec) -> dict:
    """The trivial baselines of the test examples ``task``'s run scores (the same seeded sample)."""
    from lmlab.eval import metrics
    from lmlab.tasks.tagging import sample

    if task == "bible-paraphrase":
        gold = [p.label for p in sample(data.test, spec.max_test, spec.seed + 1)]
        majority = max(set(gold), key=gold.count)
        return {"majority_f1": metrics.binary_f1(gold, [majority] * len(gold), 1),
                "all_paraphrase_f1": metrics.binary_f1(gold, [1] * len(gold), 1)}
    if task in TAGGING:
        gold = [labels for _, labels in sample(data.test, spec.max_test, spec.seed + 1)]
        all_o = [["O"] * len(labels) for labels in gold]
        flat = [label for labels in gold for label in labels]
        return {"all_o_f1": metrics.entity_scores(gold, all_o, data.scheme, "strict").f1,
                "all_o_token_accuracy": metrics.accuracy(flat, ["O"] * len(flat))}
    from lmlab.tasks.qa import gold_of

    gold = gold_of(sample(data.test, spec.max_test, spec.seed + 2))
    return {"no_answer_exact": metrics.squad_v2(gold, {qid: "" for qid in gold})["exact"]}


def scratch_texts(task: str, data) -> list[str]:
    if task == "bible-paraphrase":
        return [text for p in data.train for text in (p.a, p.b)]
    if task in TAGGING:
        return [" ".join(words) for words, _ in data.train]
    return [text for ex in data.train for text in (ex.question, ex.context)]


def run_task(task: str, folder: Path | None, spec, out: Path, scratch: Path, cache: dict) -> dict:
    """One fine-tuning run of ``task`` (``folder`` None: the from-scratch encoder), its test scores."""
    if task == "rotten-tomatoes":
        from lmlab.recipes.finetune import finetune_from_scratch
        from lmlab.tasks.classification import finetune

        return finetune_from_scratch(scratch, spec, out) if folder is None else finetune(folder, spec, out)
    from lmlab.tasks import pairs, qa, tagging

    data = task_data(task, spec.seed, cache)
    by_folder, by_model = {"bible-paraphrase": (pairs.finetune_pairs, pairs.finetune_pair_model),
                           **{name: (tagging.finetune_tagging, tagging.finetune_tagger) for name in TAGGING},
                           "wiki-qa": (qa.finetune_qa, qa.finetune_qa_model)}[task]
    if folder is not None:
        scores = by_folder(folder, data, spec, out)
    else:
        from lmlab.recipes.finetune import read_scratch_spec, scratch_encoder

        model, tokenizer = scratch_encoder(read_scratch_spec(scratch), scratch_texts(task, data), seed=spec.seed)
        _, scores = by_model(model, tokenizer, data, spec, out / "train")
    return {**scores, **baselines(task, data, spec)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="rotten-tomatoes", choices=sorted(TASKS))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--pretrain-steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=0, help="training examples (0: all; not rotten-tomatoes)")
    parser.add_argument("--max-test", type=int, default=0, help="test (and QA valid) examples (0: all)")
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
    import shutil

    import torch

    from lmlab import errors
    from lmlab.report import records
    from lmlab.tasks import classification, pairs, qa, tagging

    torch.set_num_threads(1)
    plan = TASKS[args.task]
    spec_class = {"FinetuneSpec": classification.FinetuneSpec, "PairSpec": pairs.PairSpec,
                  "TaggingSpec": tagging.TaggingSpec, "QASpec": qa.QASpec}[plan["spec"]]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    for label, why in skipped(args.task):
        print(f"skipped on {args.task}: {label} ({why})", flush=True)
    variants = [v for v in plan["variants"] if not only or (v[1] or "scratch") in only]
    base = dict(plan["base"], steps=args.steps, threads=1)
    if args.task != "rotten-tomatoes":
        base.update(max_train=args.max_train, max_test=args.max_test)
        if args.task == "wiki-qa":
            base["max_valid"] = args.max_test
    scratch = cache / "scratch.toml"
    scratch.write_text('family = "bert"\n[tokenizer]\nkind = "wordpiece"\nvocab_size = 4096\n'
                       '[model]\nd_model = 64\nn_layers = 2\nn_heads = 2\nd_ff = 256\n')
    folders, data_cache = {}, {}
    rows, recs = [], []
    for label, family, extra in variants:
        values = {key: [] for key in [*plan["metrics"], *plan["baselines"]]}
        seconds = []
        try:
            for seed in range(args.seeds):
                spec = spec_class(**base, seed=seed, **extra)
                tag = "" if args.task == "rotten-tomatoes" else f"{args.task}-"
                out = cache / "ft" / f"{tag}{records.slug(label)}-{args.steps}-{seed}"
                if out.exists():
                    shutil.rmtree(out)
                if args.task != "rotten-tomatoes":  # built before the clock starts
                    task_data(args.task, seed, data_cache)
                started = time.perf_counter()
                if family and family not in folders:  # pretrained when first needed, so rows arrive early
                    folders[family] = pretrain(family, args.pretrain_steps, cache)
                    started = time.perf_counter()
                scores = run_task(args.task, folders.get(family), spec, out, scratch, data_cache)
                seconds.append(time.perf_counter() - started)
                for key in values:
                    values[key].append(scores[key])
                recs.append(records.Record(
                    model=label, family=family or "bert", group="finetune-table", corpus=args.task, seed=seed,
                    metrics={key: scores[key] for key in values}, train_seconds=seconds[-1],
                    machine=records.machine(),
                    config={"pretrain_steps": args.pretrain_steps if family else 0, **base, **extra},
                    notes="tiny encoders, one CPU budget (benchmarks/finetune_table.py); shared, loaded machine"))
        except (errors.ConfigError, errors.UsageError, errors.DataError) as error:  # the task's path refuses it
            print(f"skipped on {args.task}: {label} ({error})", flush=True)
            continue
        row = {"variant": label, **{f"{key}s": v for key, v in values.items()},
               "seconds_per_run": statistics.mean(seconds)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        if args.records:  # after every row, so a stopped run keeps what it measured
            records.write_records(recs, args.records)
    heads = list(plan["metrics"].values())
    heads[0] += f" (mean ± sd, {args.seeds} seeds)"
    heads += [*plan["baselines"].values(), "s / run"]
    decimals = 1 if args.task == "wiki-qa" else 3
    cell = lambda v: f"{statistics.mean(v):.{decimals}f} ± {statistics.pstdev(v):.{decimals}f}"
    lines = ["| variant | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    lines += ["| " + " | ".join([r["variant"], *[cell(r[f"{k}s"]) for k in plan["metrics"]],
                                 *[f"{statistics.mean(r[f'{k}s']):.{decimals}f}" for k in plan["baselines"]],
                                 f"{r['seconds_per_run']:.0f}"]) + " |" for r in rows]
    print("\n" + "\n".join(lines))
    if args.md:
        Path(args.md).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
