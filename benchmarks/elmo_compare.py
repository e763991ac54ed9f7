"""The measured comparison of issue 17: frozen ELMo (the learned scalar mix, the top layer, each
layer alone) vs frozen static vectors (word2vec, fastText, GloVe trained by lmlab on the same
corpus at the ELMo's width) vs a fine-tuned BERT, on rotten-tomatoes accuracy and on wnut16
entity F1, over seeds, with the majority-class / all-O baselines beside them.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/elmo_compare.py \\
        --elmo /work/cache/r3-elmo/elmo-wiki-vital --vectors-dir /work/cache/r3-elmo \\
        --bert /work/cache/r3-tasks/pre-bert-60/model --cache /work/cache/r4-elmo \\
        --md benchmarks/results/elmo_transfer.md --records benchmarks/results/elmo_transfer_records

Features are computed once (the biLM is frozen) and cached as safetensors under ``--cache``; the
heads are then trained on them, which is what ``lmlab finetune ELMO_DIR ...`` trains too (scalar
mix + head; the biLM is never updated), without re-running the biLM every step.

- rotten-tomatoes: each review wrapped in <S> .. </S>, every layer mean-pooled over its words
  (the mix of pooled layers equals the pooled mix, mean pooling being linear), scalar mix +
  linear head (``elmo_probe.MixHead``); static vectors averaged over the known words, linear head.
  AdamW lr 5e-3, batches of 64, 20 epochs (``elmo_probe.train_head``).
- wnut16 (English tweets, 10 entity kinds, BIO): per-token features (lowercased, as the ELMo and
  the vectors were trained), scalar mix (ELMo rows) -> trainable BiLSTM (``--hidden`` per
  direction) -> linear per-token scores, trained with cross-entropy in which the O label weighs
  ``--o-weight`` (so that the head does not settle on all-O, as last round's linear probe did),
  AdamW ``--ner-lr``, batches of 32 tweets, ``--ner-epochs`` epochs; entity F1 by
  :func:`lmlab.eval.metrics.entity_scores` (the seqeval-equal metric, default mode) on the test split.
- BERT (``--bert``): the tiny BERT folder fine-tuned end to end through
  :func:`lmlab.tasks.classification.finetune` (``lmlab finetune DIR rotten-tomatoes``) and
  :func:`lmlab.tasks.tagging.finetune_tagging` (``lmlab finetune DIR wnut16``).

Layer-probe reading (issue item 2): the rows "layer 0 / 1 / 2 only" on both tasks. No English
POS-tagged corpus is installable here, so NER (closer to syntax/word identity) stands beside
rotten-tomatoes (sentence semantics).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elmo_probe import MixHead, _cached, _reviews, accuracy, elmo_features, elmo_token_features, train_head  # noqa: E402

from lmlab.models import elmo  # noqa: E402
from lmlab.models.elmo import ScalarMix  # noqa: E402


class SequenceTagHead(nn.Module):
    """(B, T, n, D) per-token layers -> scalar mix (when n > 1) -> BiLSTM -> (B, T, labels)."""

    def __init__(self, n_layers: int, dim: int, hidden: int, n_labels: int, dropout: float = 0.2):
        super().__init__()
        self.mix = ScalarMix(n_layers) if n_layers > 1 else None
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mix(list(x.unbind(2))) if self.mix is not None else x[:, :, 0]  # (B, T, D)
        h, _ = self.lstm(self.drop(h))  # (B, T, 2H)
        return self.out(self.drop(h))


def padded(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (len_i, n, D) -> ((B, T, n, D) zero-padded, (B, T) mask)."""
    T = max(len(s) for s in seqs)
    x = torch.zeros(len(seqs), T, *seqs[0].shape[1:])
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, :len(s)], mask[i, :len(s)] = s, True
    return x, mask


def train_tagger(head: nn.Module, seqs, tags, seed: int, epochs: int, lr: float, weight: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    head.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(seqs), generator=g).split(32):
            x, mask = padded([seqs[i] for i in idx])
            y, _ = padded([tags[i][:, None, None].float() for i in idx])
            y = y[:, :, 0, 0].long().masked_fill(~mask, -100)  # (B, T)
            opt.zero_grad()
            scores = head(x)  # (B, T, labels)
            nn.functional.cross_entropy(scores.flatten(0, 1), y.flatten(), weight=weight,
                                        ignore_index=-100).backward()
            opt.step()
    head.eval()


@torch.no_grad()
def predict_tags(head: nn.Module, seqs) -> list[list[int]]:
    out = []
    for start in range(0, len(seqs), 64):
        chunk = seqs[start:start + 64]
        x, _ = padded(chunk)
        best = head(x).argmax(-1)
        out.extend(best[i, :len(s)].tolist() for i, s in enumerate(chunk))
    return out


def split_by(flat: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
    return list(flat.split(lengths))


def standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True) + 1e-6
    return (train - mean) / std, (test - mean) / std


def vector_rows(table, sentences, lower: bool = True) -> torch.Tensor:
    """(N_tokens, 1, d): each token's vector (zero when unknown)."""
    zero = np.zeros(table.dim, np.float32)
    rows = [table[w.lower() if lower else w] if (w.lower() if lower else w) in table else zero
            for s in sentences for w in s]
    return torch.tensor(np.stack(rows), dtype=torch.float32)[:, None]


def average_rows(table, reviews) -> torch.Tensor:
    out = []
    for tokens in reviews:
        known = [table[w] for w in tokens if w in table]
        out.append(np.mean(known, axis=0) if known else np.zeros(table.dim, np.float32))
    return torch.tensor(np.stack(out), dtype=torch.float32)


def cell(values: list[float]) -> str:
    """A table cell: mean (min–max) over the seeds, or a dash."""
    if not values:
        return "—"
    return f"{statistics.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def table_lines(results: dict[tuple[str, str], list[float]], names: list[str], ner: str = "wnut16") -> list[str]:
    """The Markdown table: one row per system, rotten-tomatoes accuracy and ``ner`` entity F1."""
    lines = [f"| features | rotten-tomatoes accuracy | {ner} entity F1 |", "|---|---|---|"]
    return lines + [f"| {n} | {cell(results.get((n, 'rt'), []))} | {cell(results.get((n, 'ner'), []))} |"
                    for n in names]


def show(text: str, path: str) -> None:
    """Print the table's text and write it to ``path`` (when given)."""
    print(text)
    if path:
        Path(path).write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--elmo", required=True)
    ap.add_argument("--vectors-dir", default="/work/cache/r3-elmo", help="{word2vec,fasttext,glove}-CORPUS-DIM.txt")
    ap.add_argument("--corpus", default="wiki-vital")
    ap.add_argument("--bert", default="")
    ap.add_argument("--bert-steps", type=int, default=150)
    ap.add_argument("--bert-ner-steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tasks", default="rt,ner")
    ap.add_argument("--systems", default="mix,top,0,1,word2vec,fasttext,glove,bert")
    ap.add_argument("--ner-epochs", type=int, default=12)
    ap.add_argument("--ner-lr", type=float, default=5e-3)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--o-weight", type=float, default=0.3)
    ap.add_argument("--cache", default="/work/cache/r4-elmo")
    ap.add_argument("--md", default="")
    ap.add_argument("--records", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from lmlab.embeddings.vectors import Vectors
    from lmlab.eval.metrics import entity_scores
    from lmlab.report import records

    model, _ = elmo.load(args.elmo)
    dim = model.config.d_model
    L = model.config.n_layers + 1
    systems = args.systems.split(",")
    layer_sets = {"mix": ("ELMo scalar mix (all layers)", list(range(L))), "top": ("ELMo top layer only", [L - 1]),
                  **{str(j): (f"ELMo layer {j} only" + (" (char-CNN tokens)" if j == 0 else ""), [j])
                     for j in range(L - 1)}}
    tables = {k: Vectors.load(Path(args.vectors_dir) / f"{k}-{args.corpus}-{dim}.txt")
              for k in ("word2vec", "fasttext", "glove") if k in systems}
    results: dict[tuple[str, str], list[float]] = {}
    recs: list = []
    baselines = {}
    machine = records.machine()

    def record(name, family, task, seed, metrics, seconds, config):
        recs.append(records.Record(
            model=name, family=family, group="elmo-transfer", corpus=task, seed=seed, metrics=metrics,
            train_seconds=seconds, machine=machine, config=config,
            notes=f"benchmarks/elmo_compare.py; ELMo {args.elmo}; shared, loaded machine"))
        if args.records:
            records.write_records(recs, args.records)

    def report(name, task, seed, value, t0):
        results.setdefault((name, task), []).append(value)
        print(f"{name} | {task} | seed {seed} | {value:.3f} | {time.perf_counter() - t0:.0f} s", flush=True)

    if "rt" in args.tasks:
        from lmlab.data import sources

        splits = sources.load("rotten-tomatoes").split()
        train_tok, y_train = _reviews(splits.train)
        test_tok, y_test = _reviews(splits.test)
        baselines["rt"] = max(float((y_test == c).float().mean()) for c in (0, 1))
        f_train = _cached(args.cache, "rt-train", lambda: elmo_features(model, train_tok))
        f_test = _cached(args.cache, "rt-test", lambda: elmo_features(model, test_tok))
        f_train, f_test = standardise(f_train, f_test)
        rt_inputs = {key: (label, f_train[:, ls], f_test[:, ls]) for key, (label, ls) in layer_sets.items()
                     if key in systems}
        for key, table in tables.items():
            a, b = standardise(average_rows(table, train_tok), average_rows(table, test_tok))
            rt_inputs[key] = (f"{key} (dim {dim}, frozen, averaged / per token)", a, b)
        for key, (label, xtr, xte) in rt_inputs.items():
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                torch.manual_seed(seed)
                head = MixHead(xtr.shape[1], xtr.shape[-1]) if xtr.dim() == 3 else nn.Linear(xtr.shape[1], 2)
                train_head(head, xtr, y_train, seed)
                acc = accuracy(head, xte, y_test)
                report(label, "rt", seed, acc, t0)
                record(label, "elmo" if key in layer_sets else key, "rotten-tomatoes", seed,
                       {"accuracy": acc, "majority_baseline": baselines["rt"]}, time.perf_counter() - t0,
                       {"head": "linear on the mean", "epochs": 20, "lr": 5e-3, "batch": 64})
    if "ner" in args.tasks:
        from lmlab.tasks import tagging

        data = tagging.builtin_data("wnut16")
        labels = sorted({x for _, ls in data.train + data.test for x in ls})
        index = {x: i for i, x in enumerate(labels)}
        train_words, test_words = [w for w, _ in data.train], [w for w, _ in data.test]
        train_lengths, test_lengths = [len(w) for w in train_words], [len(w) for w in test_words]
        tags = [torch.tensor([index[x] for x in ls]) for _, ls in data.train]
        gold = [ls for _, ls in data.test]
        weight = torch.ones(len(labels))
        weight[index["O"]] = args.o_weight
        baselines["ner"] = entity_scores(gold, [["O"] * len(g) for g in gold], data.scheme, "default").f1
        ner_inputs = {}
        if any(k in systems for k in layer_sets):
            e_train = _cached(args.cache, "ner-wnut16-train", lambda: elmo_token_features(model, train_words))
            e_test = _cached(args.cache, "ner-wnut16-test", lambda: elmo_token_features(model, test_words))
            e_train, e_test = standardise(e_train, e_test)
            for key, (label, ls) in layer_sets.items():
                if key in systems:
                    ner_inputs[key] = (label, e_train[:, ls], e_test[:, ls])
        for key, table in tables.items():
            a, b = standardise(vector_rows(table, train_words), vector_rows(table, test_words))
            ner_inputs[key] = (f"{key} (dim {dim}, frozen, averaged / per token)", a, b)
        for key, (label, xtr, xte) in ner_inputs.items():
            seqs_train, seqs_test = split_by(xtr, train_lengths), split_by(xte, test_lengths)
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                torch.manual_seed(seed)
                head = SequenceTagHead(xtr.shape[1], xtr.shape[-1], args.hidden, len(labels))
                train_tagger(head, seqs_train, tags, seed, args.ner_epochs, args.ner_lr, weight)
                predicted = [[labels[i] for i in row] for row in predict_tags(head, seqs_test)]
                scores = entity_scores(gold, predicted, data.scheme, "default")
                report(label, "ner", seed, scores.f1, t0)
                record(label, "elmo" if key in layer_sets else key, "wnut16", seed,
                       {"entity_f1": scores.f1, "precision": scores.precision, "recall": scores.recall,
                        "all_o_baseline": baselines["ner"]}, time.perf_counter() - t0,
                       {"head": "BiLSTM + linear", "hidden": args.hidden, "epochs": args.ner_epochs,
                        "lr": args.ner_lr, "o_weight": args.o_weight, "batch": 32})
    if args.bert and "bert" in systems:
        from lmlab.tasks import tagging
        from lmlab.tasks.classification import FinetuneSpec, finetune

        label = "BERT (tiny, pretrained 60 steps), fine-tuned"
        for seed in range(args.seeds):
            if "rt" in args.tasks:
                t0 = time.perf_counter()
                spec = FinetuneSpec(task="rotten-tomatoes", steps=args.bert_steps, batch_size=32, max_len=48, lr=1e-3,
                                    threads=1, seed=seed, pooling="mean")
                scores = finetune(args.bert, spec, Path(args.cache) / "runs" / f"bert-rt-{seed}")
                report(label, "rt", seed, scores["accuracy"], t0)
                record(label, "bert", "rotten-tomatoes", seed,
                       {"accuracy": scores["accuracy"], "majority_baseline": scores["majority_baseline"]},
                       time.perf_counter() - t0, {"steps": args.bert_steps, "lr": 1e-3, "batch": 32})
            if "ner" in args.tasks:
                t0 = time.perf_counter()
                spec = tagging.TaggingSpec(steps=args.bert_ner_steps, batch_size=32, max_len=64, lr=1e-3, seed=seed,
                                           threads=1)
                scores = tagging.finetune_tagging(args.bert, "wnut16", spec, Path(args.cache) / "runs" / f"bert-ner-{seed}")
                report(label, "ner", seed, scores["entity_f1"], t0)
                record(label, "bert", "wnut16", seed,
                       {"entity_f1": scores["entity_f1"], "all_o_baseline": baselines.get("ner", 0.0)},
                       time.perf_counter() - t0, {"steps": args.bert_ner_steps, "lr": 1e-3, "batch": 32})

    names = list(dict.fromkeys(name for name, _ in results))
    lines = table_lines(results, names)
    lines.append(f"| baseline: majority class / all-O | {baselines.get('rt', float('nan')):.3f} | "
                 f"{baselines.get('ner', float('nan')):.3f} |")
    text = (f"{args.seeds} seeds, mean (min–max). NER head: BiLSTM {args.hidden}x2, {args.ner_epochs} epochs, "
            f"lr {args.ner_lr}, O weight {args.o_weight}.\n\n" + "\n".join(lines) + "\n")
    show(text, args.md)


if __name__ == "__main__":
    main()
