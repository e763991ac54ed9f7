"""Sentence pairs: is B a paraphrase of A (classification), and which candidate B paraphrases A (ranking).

Devlin et al. (2019) §4.1 (MRPC, QQP): the two sentences are one input, ``[CLS] A [SEP] B [SEP]``, and
the pooled [CLS] state feeds a soft-max over the pair's labels. Radford et al. (2018) §3.3 (GPT-1):
a causal model reads ``<s> A $ B </s>`` and the state of the last token (which has seen both) is
classified. Here the frame is the tokenizer's: [CLS]/[SEP] where it has them, else its bos/eos
tokens; ``pooling`` picks the state: ``"cls"`` (the pooled first token, or for encoders without a
pooler a dense + GELU layer on it), ``"last"`` (the last real token, GPT-style, the default for
the causal ``gpt`` family) or ``"mean"``. Encoders with segment embeddings (BERT, SpanBERT, ALBERT,
ELECTRA) and XLNet (relative segments) also read segment ids, 0 for ``[CLS] A [SEP]`` and 1 for
``B [SEP]`` (``encode(ids, mask, segment_ids)``, :func:`lmlab.tasks.classification.segment_ids`);
for RoBERTa (one segment type) and GPT the separator alone marks where B starts.

Ranking uses the same classifier: the candidates for A are ordered by P(paraphrase | A, B), and
the metrics are accuracy@1 and the mean reciprocal rank of the true paraphrase.

Data (:func:`verse_pairs`): aligned Bible verses (King James Version <-> World English Bible, the
same verse in two translations: real human paraphrases, from :mod:`lmlab.data.bible`'s
``aligned_verses()``). Positives are a verse's KJV and WEB texts; each gets ``negatives`` sampled
negatives, the KJV text with the WEB text of another verse of the same book (half of them the
neighbouring verse, which shares the context and often words). Books are assigned whole to
train / valid / test by a hash of their name, so no verse, and no pair, crosses splits.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.corpus import split_fraction
from ..errors import ConfigError, DataError, UsageError
from ..eval import metrics
from ..protocols import LossOutput
from .tagging import EncoderHead, fit_head, frame_ids, sample, save_head

POOLINGS = ("cls", "last", "mean")


@dataclass
class PairConfig:
    """A pair classifier's folder: its encoder (family + Config fields), labels, pooling, max length."""

    encoder_family: str = "bert"
    encoder: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=lambda: ["different", "paraphrase"])
    pooling: str = "cls"
    dropout: float = 0.1
    max_len: int = 128          # pieces of the framed pair
    task: str = ""
    segment_sep: int = -1       # the [SEP] ending text a: segment ids for encoders with segments (-1: none)

    def validate(self) -> None:
        if len(self.labels) < 2:
            raise ConfigError(f"a pair classifier needs at least 2 labels, got {len(self.labels)}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.max_len < 5:
            raise ConfigError(f"max_len={self.max_len} is too short for a pair")


class PairClassifier(EncoderHead):
    """encoder + pooling + dropout + linear -> (B, C) logits of a framed pair; family "pair-classifier"."""

    family = "pair-classifier"
    config_class = PairConfig

    def __init__(self, config: PairConfig, encoder: nn.Module | None = None) -> None:
        super().__init__(config, encoder)
        d = self.encoder.config.d_model
        self.cls_dense = nn.Linear(d, d) if config.pooling == "cls" and not hasattr(self.encoder, "pooler") else None
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(d, len(config.labels))
        for layer in (self.cls_dense, self.out):
            if layer is not None:
                nn.init.normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)

    @classmethod
    def on(cls, pretrained_model: nn.Module, pooling: str | None = None, **fields) -> PairClassifier:
        """A new pair head on ``pretrained_model``'s encoder; pooling "last" for the causal gpt family, else "cls"."""
        pooling = pooling or ("last" if pretrained_model.family == "gpt" else "cls")
        return super().on(pretrained_model, pooling=pooling, **fields)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:  # -> (B, C)
        hidden, pooled, attention_mask = self.encoded(input_ids, attention_mask)
        if self.config.pooling == "mean":
            weights = attention_mask.to(hidden.dtype)[:, :, None]                       # (B, T, 1)
            vector = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)          # (B, H)
        elif self.config.pooling == "last":
            last = (attention_mask.long().sum(1) - 1).clamp(min=0)                      # (B,)
            vector = hidden[torch.arange(hidden.shape[0]), last]                        # (B, H)
        elif pooled is not None and self.cls_dense is None:
            vector = pooled
        else:
            vector = F.gelu(self.cls_dense(self.dropout(hidden[:, 0])))
        return self.out(self.dropout(vector))


def pair_ids(tokenizer, pairs: list[tuple[str, str]], max_len: int, frame: dict | None = None) -> list[list[int]]:
    """``[CLS] A [SEP] B [SEP]`` of each pair, the longer side cut first to fit ``max_len``."""
    frame = frame or frame_ids(tokenizer)
    a_ids = tokenizer.encode_batch([a for a, _ in pairs])
    b_ids = tokenizer.encode_batch([b for _, b in pairs])
    out = []
    for a, b in zip(a_ids, b_ids):
        a, b = list(a), list(b)
        while len(a) + len(b) > max_len - 3:
            (a if len(a) >= len(b) else b).pop()
        out.append([frame["cls"], *a, frame["sep"], *b, frame["sep"]])
    return out


def pair_rows(ids: list[list[int]], labels: list[int], max_len: int, pad: int) -> Tensor:
    """(N, 2 max_len + 1): ids, attention mask, label (:class:`PairObjective`'s layout)."""
    rows = torch.zeros((len(ids), 2 * max_len + 1), dtype=torch.long)
    rows[:, :max_len] = pad
    for i, (row, label) in enumerate(zip(ids, labels)):
        rows[i, :len(row)] = torch.tensor(row)
        rows[i, max_len:max_len + len(row)] = 1
        rows[i, -1] = label
    return rows


class PairObjective:
    """Σ cross-entropy of the pair labels, divided by the rows."""

    def prepare(self, ids: Tensor, generator: torch.Generator | None = None) -> dict:
        ids = ids.long()
        T = (ids.shape[1] - 1) // 2
        return {"input_ids": ids[:, :T], "attention_mask": ids[:, T:2 * T], "labels": ids[:, -1]}

    def loss(self, model: PairClassifier, batch: dict) -> LossOutput:
        logits = model(batch["input_ids"], batch["attention_mask"]).float()
        loss = F.cross_entropy(logits, batch["labels"], reduction="sum")
        correct = (logits.argmax(-1) == batch["labels"]).sum()
        return LossOutput(loss, batch["labels"].numel(), metrics={"acc": correct.detach()})


@torch.no_grad()
def pair_probabilities(model: PairClassifier, tokenizer, pairs: list[tuple[str, str]],
                       batch_size: int = 64) -> Tensor:
    """P(label | pair) of each pair, (N, C), batched by length."""
    frame = frame_ids(tokenizer)
    ids = pair_ids(tokenizer, pairs, model.config.max_len, frame)
    order = sorted(range(len(ids)), key=lambda k: len(ids[k]))
    out = torch.zeros((len(ids), len(model.config.labels)))
    model.eval()
    for first in range(0, len(order), batch_size):
        group = order[first:first + batch_size]
        T = max(len(ids[k]) for k in group)
        batch = PairObjective().prepare(pair_rows([ids[k] for k in group], [0] * len(group), T, frame["pad"]))
        out[torch.tensor(group)] = model(batch["input_ids"], batch["attention_mask"]).float().softmax(-1)
    return out


class TextPairClassificationPipeline:
    """``pipe({"text": A, "text_pair": B})`` -> ``{"label", "score"}`` (HF's text-classification keys for pairs)."""

    def __init__(self, model: PairClassifier, tokenizer) -> None:
        if not isinstance(getattr(model, "config", None), PairConfig):
            raise UsageError(f"a pair pipeline needs a pair classifier, not a {type(model).__name__}")
        self.model, self.tokenizer = model, tokenizer

    def __call__(self, inputs: dict | list[dict], batch_size: int = 64) -> dict | list[dict]:
        items = [inputs] if isinstance(inputs, dict) else list(inputs)
        for n, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("text"), str) \
                    or not isinstance(item.get("text_pair"), str):
                raise UsageError(f"input {n}: expected {{'text': str, 'text_pair': str}}")
        probs = pair_probabilities(self.model, self.tokenizer, [(x["text"], x["text_pair"]) for x in items], batch_size)
        best = probs.argmax(-1)
        out = [{"label": self.model.config.labels[int(b)], "score": float(probs[i, b])} for i, b in enumerate(best)]
        return out[0] if isinstance(inputs, dict) else out


# --------------------------------------------------------------------------- data


@dataclass
class Pair:
    a: str
    b: str
    label: int                  # 1: paraphrase, 0: not
    group: str                  # the verse of ``a`` (candidates for ranking share it)


@dataclass
class PairData:
    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]
    books: dict[str, list[str]]   # split -> its books
    name: str = ""


def split_of_book(book: str, seed: int = 21) -> str:
    u = split_fraction(book, seed=seed)
    return "train" if u < 0.8 else "valid" if u < 0.9 else "test"


def verse_pairs(verses: list, negatives: int = 1, seed: int = 0) -> PairData:
    """Paraphrase pairs of aligned verses (objects with book, chapter, verse, kjv, web), split by book."""
    by_book: dict[str, list] = {}
    for v in verses:
        if (v.kjv or "").strip() and (v.web or "").strip():
            by_book.setdefault(v.book, []).append(v)
    if not by_book:
        raise DataError("no aligned verses with both a KJV and a WEB text")
    parts: dict[str, list[Pair]] = {"train": [], "valid": [], "test": []}
    books: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for book in sorted(by_book):
        group = by_book[book]
        split = split_of_book(book)
        books[split].append(book)
        for k, v in enumerate(group):
            key = f"{v.book} {v.chapter}:{v.verse}"
            parts[split].append(Pair(v.kjv, v.web, 1, key))
            if len(group) < 2:
                continue
            rng = random.Random(f"{seed}:{key}")
            for n in range(negatives):
                if n % 2 == 0 and rng.random() < 0.5:  # the neighbouring verse
                    other = group[k + 1] if k + 1 < len(group) else group[k - 1]
                else:
                    other = group[rng.choice([i for i in range(len(group)) if i != k])]
                if other.web != v.web:
                    parts[split].append(Pair(v.kjv, other.web, 0, key))
    return PairData(parts["train"], parts["valid"], parts["test"], books, "bible-paraphrase")


def ranking_candidates(pairs: list[Pair], k: int = 4, seed: int = 0) -> list[tuple[str, list[str], int]]:
    """(A, candidates, index of the true B) for every positive pair: its B and ``k`` B's of other
    verses of the same split (seeded), in a seeded order."""
    positives = [p for p in pairs if p.label == 1]
    out = []
    for p in positives:
        rng = random.Random(f"{seed}:{p.group}")
        candidates = [p.b]
        for q in rng.sample(positives, min(len(positives), 3 * k + 1)):
            if len(candidates) <= k and q.group != p.group and q.b not in candidates:
                candidates.append(q.b)
        rng.shuffle(candidates)
        out.append((p.a, candidates, candidates.index(p.b)))
    return out


def evaluate_pairs(model: PairClassifier, tokenizer, pairs: list[Pair], rank_k: int = 4, batch_size: int = 64) -> dict:
    """Accuracy and F1 (of "paraphrase") of the pairs; accuracy@1 and MRR of ranking ``rank_k`` + 1 candidates."""
    probs = pair_probabilities(model, tokenizer, [(p.a, p.b) for p in pairs], batch_size)
    predicted = probs.argmax(-1).tolist()
    gold = [p.label for p in pairs]
    majority = max(set(gold), key=gold.count)
    scores = {"accuracy": metrics.accuracy(gold, predicted), "f1": metrics.binary_f1(gold, predicted, 1),
              "majority_baseline": metrics.accuracy(gold, [majority] * len(gold))}
    ranking = ranking_candidates(pairs, rank_k)
    if ranking:
        flat = [(a, b) for a, candidates, _ in ranking for b in candidates]
        positive = pair_probabilities(model, tokenizer, flat, batch_size)[:, 1].tolist()
        hits, reciprocal, at = 0, 0.0, 0
        for _, candidates, truth in ranking:
            row = positive[at:at + len(candidates)]
            at += len(candidates)
            rank = 1 + sum(s > row[truth] for s in row)
            hits += rank == 1
            reciprocal += 1 / rank
        scores.update(rank_accuracy=hits / len(ranking), mrr=reciprocal / len(ranking),
                      rank_candidates=rank_k + 1)
    return scores


# --------------------------------------------------------------------------- fine-tuning


@dataclass
class PairSpec:
    steps: int = 300
    batch_size: int = 32
    max_len: int = 128
    lr: float = 1e-4
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    pooling: str = ""           # "" : "last" for gpt, "cls" otherwise
    negatives: int = 1
    rank_k: int = 4
    max_train: int = 0
    max_test: int = 0
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        for name in ("steps", "batch_size", "negatives"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pooling and self.pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")


def finetune_pair_model(pretrained: nn.Module, tokenizer, data: PairData, spec: PairSpec,
                        out_dir: str | Path) -> tuple[PairClassifier, dict]:
    """Fine-tune a pair head on ``pretrained``'s encoder (in place); (model, test scores)."""
    spec.validate()
    begin = time.monotonic()
    torch.manual_seed(spec.seed)
    train = sample(data.train, spec.max_train, spec.seed)
    test = sample(data.test, spec.max_test, spec.seed + 1)
    if not train or not test:
        raise DataError(f"pair set {data.name!r} has an empty train or test split")
    frame = frame_ids(tokenizer)
    model = PairClassifier.on(pretrained, spec.pooling or None, dropout=spec.dropout, max_len=spec.max_len,
                              task=data.name, segment_sep=frame["sep"])
    rows = pair_rows(pair_ids(tokenizer, [(p.a, p.b) for p in train], spec.max_len, frame),
                     [p.label for p in train], spec.max_len, frame["pad"])
    result = fit_head(model, PairObjective(), rows, spec, out_dir)
    scores = {"task": data.name, "n_train": len(train), "n_test": len(test), "train_loss": result.loss,
              "pooling": model.config.pooling, **evaluate_pairs(model, tokenizer, test, spec.rank_k),
              "seconds": time.monotonic() - begin}
    return model, scores


def finetune_pairs(model_dir: str | Path, data: str | PairData | list, spec: PairSpec, out_dir: str | Path) -> dict:
    """Load a saved encoder folder, fine-tune on ``data`` ("bible-paraphrase", a list of aligned verses or
    :class:`PairData`), save to ``out_dir/model`` (reloads with ``lmlab.load``), return the test scores."""
    from ..data.tokenizers import load_tokenizer
    from ..pretrained import load

    if isinstance(data, str):
        if data != "bible-paraphrase":
            raise UsageError(f"unknown pair set {data!r}; the built-in one is 'bible-paraphrase'")
        try:
            from ..data.bible import aligned_verses
        except ImportError:
            raise DataError("the bible-paraphrase set needs lmlab.data.bible (aligned KJV/WEB verses), "
                            "which this build does not have") from None
        data = verse_pairs(aligned_verses(), spec.negatives, spec.seed)
    elif isinstance(data, list):
        data = verse_pairs(data, spec.negatives, spec.seed)
    pretrained = load(model_dir)
    tokenizer = load_tokenizer(model_dir)
    out_dir = Path(out_dir)
    model, scores = finetune_pair_model(pretrained, tokenizer, data, spec, out_dir / "train")
    save_head(model, tokenizer, model_dir, scores, out_dir / "model")
    return scores
