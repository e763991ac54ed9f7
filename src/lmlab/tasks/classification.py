"""Fine-tuning pretrained encoders: sequence classification and token classification, with metrics.

Devlin et al. (2019) §4: a task adds one output layer to the pretrained encoder and every
parameter is fine-tuned. Sequence classification reads the pooled [CLS] state (BERT, ALBERT:
``tanh(W_p h_[CLS])``; ELECTRA has no pooler, so — as its paper's code does — a dense + GELU
layer on h_[CLS]); token classification reads every token's state (NER-style tagging; a word's
label sits on its first sub-token, the others are ignored, as in BERT §5.3).

    P(c | x) = softmax(W_c dropout(pooled))              L = -Σ log P(c_gold | x)

Tasks (real data, nothing synthetic):

| task | data | classes | split |
|---|---|---|---|
| ``rotten-tomatoes`` | review snippets | fresh / rotten | by movie (no movie in two splits) |
| ``wiki-topics`` | ``wiki-vital`` lead sections | the 11 topics | only documents of the *pretraining test split* are used, re-split 80/20 by id — so no fine-tuning or test document was seen in pretraining |
| ``peoples-daily-ner`` | People's Daily, per character | BIO over person / place / organisation | by paragraph id |

Metrics: accuracy and macro-F1 (F1 of every class that occurs in the gold or predicted labels,
averaged with equal weight); tagging reports token accuracy and entity-level micro-F1 over BIO spans.

:func:`finetune` (``lmlab finetune MODEL_DIR TASK``) loads a saved lmlab model folder (bert,
albert or electra family, with its tokenizer), trains with the one Trainer, and scores the test
split. Not here: QA heads, sentence-pair GLUE tasks, the feature-based (frozen) use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.corpus import split_fraction
from ..errors import CheckpointError, DataError, UsageError, closest
from ..objectives.classify import IGNORE, ClassifyObjective
from ..pretrained import PretrainedMixin

TASKS = ("rotten-tomatoes", "wiki-topics", "peoples-daily-ner")


# --------------------------------------------------------------------------- heads


def encoder_of(model: nn.Module) -> nn.Module:
    """The encoder inside a pretraining model (its ``encoder``), or the model itself when it is one.

    An encoder is anything with ``encode(input_ids, attention_mask) -> (hidden, pooled | None)``
    (the protocol every registry family with the ``encode`` capability implements)."""
    inner = getattr(model, "encoder", None)
    if inner is not None and hasattr(inner, "encode"):
        return inner
    if hasattr(model, "encode"):
        return model
    raise UsageError(f"cannot fine-tune a {type(model).__name__}: it has no encode(input_ids, attention_mask)")


def encode(encoder: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor | None]:
    """(hidden (B, T, H), pooled (B, H) or None when the encoder has no pooler)."""
    return encoder.encode(input_ids, attention_mask)


POOLINGS = ("cls", "mean")


@dataclass
class ClassifierConfig:
    """A fine-tuned head's folder: the base family and its config, the labels and how it reads text.

    ``encoder_family`` is a registry row with the ``encode`` capability and ``encoder`` its Config's
    fields: together they rebuild the encoder the head was fine-tuned on (its weights are in the
    folder). ``labels`` are the class (or BIO tag) names in id order; ``max_len`` counts [CLS] and
    [SEP]; ``task`` is where the labels came from (a built-in task or a file).
    """

    encoder_family: str = "bert"
    encoder: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    pooling: str = "cls"          # sequence heads: "cls" (pooled [CLS]) or "mean" (of the token states)
    dropout: float = 0.1
    max_len: int = 128
    task: str = ""

    def validate(self) -> None:
        if len(self.labels) < 2:
            raise UsageError(f"a classifier needs at least 2 labels, got {len(self.labels)}")
        if self.pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")

    @property
    def num_labels(self) -> int:
        return len(self.labels)


def _encoder_from(config: ClassifierConfig) -> nn.Module:
    """A fresh encoder of ``config.encoder_family`` with ``config.encoder``'s sizes (weights come later)."""
    from .. import config as config_io
    from .. import registry

    row = registry.get(config.encoder_family)
    row.require("encode", "a fine-tuned classifier")
    encoder_config = config_io.from_dict(row.config_class(), config.encoder, where="config.json: encoder")
    return encoder_of(row.model_class()(encoder_config))


def head_config(pretrained_model: nn.Module, labels: list[str], **fields) -> ClassifierConfig:
    """The ClassifierConfig of a head on ``pretrained_model`` (a registry family's model)."""
    from .. import config as config_io

    return ClassifierConfig(encoder_family=pretrained_model.family, encoder=config_io.to_dict(pretrained_model.config),
                            labels=list(labels), **fields)


class SequenceClassifier(PretrainedMixin, nn.Module):
    """encoder + dropout + linear on a sequence vector; a folder of family "classifier".

    ``pooling="cls"`` (the papers'): the pooled [CLS] state (a dense + GELU layer on h_[CLS] for
    ELECTRA, which has no pooler). ``pooling="mean"``: the mean of the real tokens' states (as in
    Sentence-BERT) — more robust for small models whose [CLS] state barely varies with the input.
    ``SequenceClassifier(config, encoder)`` puts the head on a pretrained encoder;
    ``SequenceClassifier(config)`` builds a fresh one of the config's family (what loading does).
    """

    family = "classifier"
    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig, encoder: nn.Module | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = encoder if encoder is not None else _encoder_from(config)
        d = self.encoder.config.d_model
        self.pooling = config.pooling
        self.cls_dense = None if hasattr(self.encoder, "pooler") else nn.Linear(d, d)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(d, config.num_labels)
        for layer in (self.cls_dense, self.out):
            if layer is not None:
                nn.init.normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)

    @classmethod
    def on(cls, pretrained_model: nn.Module, labels: list[str], **fields) -> SequenceClassifier:
        """A new head on ``pretrained_model``'s encoder (fine-tuning starts here)."""
        return cls(head_config(pretrained_model, labels, **fields), encoder_of(pretrained_model))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:  # -> (B, C)
        hidden, pooled = encode(self.encoder, input_ids, attention_mask)
        if self.pooling == "mean":
            weights = attention_mask.to(hidden.dtype)[:, :, None]                          # (B, T, 1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)           # (B, H)
        elif pooled is None:
            pooled = F.gelu(self.cls_dense(self.dropout(hidden[:, 0])))
        return self.out(self.dropout(pooled))


class TokenClassifier(PretrainedMixin, nn.Module):
    """encoder + dropout + linear on every token: (B, T, n_labels); a folder of family "tagger"."""

    family = "tagger"
    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig, encoder: nn.Module | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = encoder if encoder is not None else _encoder_from(config)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(self.encoder.config.d_model, config.num_labels)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    @classmethod
    def on(cls, pretrained_model: nn.Module, labels: list[str], **fields) -> TokenClassifier:
        """A new tagging head on ``pretrained_model``'s encoder."""
        return cls(head_config(pretrained_model, labels, **fields), encoder_of(pretrained_model))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden, _ = encode(self.encoder, input_ids, attention_mask)
        return self.out(self.dropout(hidden))


# --------------------------------------------------------------------------- objectives


# ClassifyObjective (lmlab.objectives.classify) is the one fine-tuning objective: sequence rows
# (B, T + 1) here, token rows (B, 2T) with per_token=True for tagging.


# --------------------------------------------------------------------------- metrics


def accuracy(gold: list[int], predicted: list[int]) -> float:
    if len(gold) != len(predicted) or not gold:
        raise UsageError(f"accuracy needs two equal, non-empty label lists ({len(gold)} vs {len(predicted)})")
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def macro_f1(gold: list[int], predicted: list[int]) -> float:
    """Mean over classes (in gold or predicted) of F1 = 2PR / (P + R) (0 where undefined)."""
    classes = sorted(set(gold) | set(predicted))
    scores = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, predicted))
        fp = sum(g != c and p == c for g, p in zip(gold, predicted))
        fn = sum(g == c and p != c for g, p in zip(gold, predicted))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def bio_spans(labels: list[str]) -> set[tuple[int, int, str]]:
    """(start, end, type) of every entity in a BIO sequence (an I- without its B- starts an entity)."""
    spans, start, kind = set(), None, None
    for i, label in enumerate(list(labels) + ["O"]):
        if label.startswith("B-") or label == "O" or (label.startswith("I-") and label[2:] != kind):
            if start is not None:
                spans.add((start, i, kind))
            start, kind = (i, label[2:]) if label != "O" else (None, None)
    return spans


def entity_f1(gold: list[list[str]], predicted: list[list[str]]) -> float:
    tp = fp = fn = 0
    for g, p in zip(gold, predicted):
        gs, ps = bio_spans(g), bio_spans(p)
        tp += len(gs & ps)
        fp += len(ps - gs)
        fn += len(gs - ps)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


# --------------------------------------------------------------------------- task data


@dataclass
class FinetuneSpec:
    task: str = "rotten-tomatoes"
    steps: int = 300
    batch_size: int = 32
    max_len: int = 128
    lr: float = 1e-4
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    max_train: int = 0          # 0: every training example
    pooling: str = "cls"        # sequence tasks: "cls" (pooled [CLS]) or "mean" (mean of token states)
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}{closest(self.task, TASKS)}; choose one of {', '.join(TASKS)}")
        for name in ("steps", "batch_size", "max_len"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_len < 4:
            raise UsageError(f"max_len={self.max_len} is too short")
        if self.pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")


def sequence_task(task: str) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """(class names, train [(text, class)], test [(text, class)]) of a sequence task."""
    from ..data import sources

    if task == "rotten-tomatoes":
        splits = sources.load("rotten-tomatoes").split()
        names = ["rotten", "fresh"]
        pick = lambda docs: [(d.text, names.index(d.meta["label"])) for d in docs if d.meta.get("label") in names]
        return names, pick(splits.train), pick(splits.test)
    if task == "wiki-topics":
        test_docs = [d for d in sources.load("wiki-vital").split().test if d.meta.get("topic")]
        names = sorted({d.meta["topic"] for d in test_docs})
        train, test = [], []
        for d in test_docs:  # the pretraining test split only, re-split by id
            (train if split_fraction(d.id, seed=1) < 0.8 else test).append((d.text, names.index(d.meta["topic"])))
        return names, train, test
    raise UsageError(f"{task!r} is not a sequence classification task")


NER_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def ner_task() -> tuple[list[str], list, list]:
    """People's Daily per character: (label names, train [(chars, labels)], test [...]); BIO over PER/LOC/ORG."""
    from ..data import sources

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    train, test = [], []
    for doc in sources.load("peoples-daily").documents:
        chars, labels, previous = [], [], None
        for word, tag in zip(doc.meta["words"], doc.meta["tags"]):
            kind = NER_TYPES.get(tag)
            for k, ch in enumerate(word):
                chars.append(ch)
                if kind is None:
                    labels.append("O")
                else:  # consecutive words of one tag (surname + given name) continue the entity
                    labels.append(("I-" if (k > 0 or previous == tag) else "B-") + kind)
            previous = tag if kind else None
        (train if split_fraction(doc.id, seed=2) < 0.9 else test).append((chars, [names.index(x) for x in labels]))
    return names, train, test


def sequence_rows(examples, tokenizer, specials: dict, max_len: int) -> Tensor:
    """``[CLS] tokens [SEP] [PAD]... label`` rows, (N, max_len + 1)."""
    ids = tokenizer.encode_batch([text for text, _ in examples])
    rows = torch.full((len(examples), max_len + 1), specials["pad"], dtype=torch.long)
    for i, (tokens, (_, label)) in enumerate(zip(ids, examples)):
        body = [specials["cls"], *tokens[: max_len - 2], specials["sep"]]
        rows[i, : len(body)] = torch.tensor(body)
        rows[i, -1] = label
    return rows


def tagging_rows(examples, tokenizer, specials: dict, max_len: int) -> Tensor:
    """(N, 2 max_len): ids then labels; each character's label on its first piece."""
    rows = torch.full((len(examples), 2 * max_len), specials["pad"], dtype=torch.long)
    rows[:, max_len:] = IGNORE
    for i, (chars, labels) in enumerate(examples):
        pieces = tokenizer.encode_batch(chars)
        ids, tags = [specials["cls"]], [IGNORE]
        for char_pieces, label in zip(pieces, labels):
            char_pieces = char_pieces or ([specials["unk"]] if specials.get("unk") is not None else [])
            if len(ids) + len(char_pieces) > max_len - 1:
                break
            ids += char_pieces
            tags += [label] + [IGNORE] * (len(char_pieces) - 1)
        ids.append(specials["sep"])
        tags.append(IGNORE)
        rows[i, : len(ids)] = torch.tensor(ids)
        rows[i, max_len: max_len + len(tags)] = torch.tensor(tags)
    return rows


# --------------------------------------------------------------------------- the loop


def _predict(model: nn.Module, rows: Tensor, objective, batch_size: int) -> tuple[list, list]:
    model.eval()
    gold, predicted = [], []
    with torch.no_grad():
        for first in range(0, rows.shape[0], batch_size):
            batch = objective.prepare(rows[first:first + batch_size], torch.Generator())
            logits = model(batch["input_ids"], batch["attention_mask"])
            gold.append(batch["labels"])
            predicted.append(logits.argmax(-1))
    return gold, predicted


def finetune_model(pretrained: nn.Module, tokenizer, specials: dict, spec: FinetuneSpec, out_dir: Path) -> dict:
    """Fine-tune ``pretrained`` (its encoder, in place) on ``spec.task``; scores on the test split."""
    from ..data.stream import Rows
    from ..train import TrainConfig, Trainer

    spec.validate()
    start = time.monotonic()
    torch.manual_seed(spec.seed)
    if spec.task == "peoples-daily-ner":
        names, train, test = ner_task()
        model = TokenClassifier.on(pretrained, names, dropout=spec.dropout, max_len=spec.max_len, task=spec.task)
        objective = ClassifyObjective(specials["pad"], per_token=True)
        make_rows = tagging_rows
    else:
        names, train, test = sequence_task(spec.task)
        model = SequenceClassifier.on(pretrained, names, dropout=spec.dropout, pooling=spec.pooling,
                                      max_len=spec.max_len, task=spec.task)
        objective = ClassifyObjective(specials["pad"])
        make_rows = sequence_rows
    if spec.max_train:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(spec.seed))[: spec.max_train]
        train = [train[i] for i in order.tolist()]
    if not train or not test:
        raise DataError(f"task {spec.task!r} has an empty train or test split")
    train_rows = make_rows(train, tokenizer, specials, spec.max_len)
    test_rows = make_rows(test, tokenizer, specials, spec.max_len)
    config = TrainConfig.quiet(seed=spec.seed, max_steps=spec.steps, lr=spec.lr, schedule="linear",
                               warmup_steps=max(1, int(spec.warmup_fraction * spec.steps)), weight_decay=0.01,
                               threads=spec.threads, device="cpu", precision="fp32", checkpoint_every=0)
    result = Trainer(model, objective, Rows(train_rows, min(spec.batch_size, len(train_rows)), seed=spec.seed),
                     config, out_dir).fit()
    gold, predicted = _predict(model, test_rows, objective, 128)
    scores = {"task": spec.task, "n_train": len(train), "n_test": len(test), "train_loss": result.loss,
              "seconds": time.monotonic() - start, "classes": names}
    if spec.task == "peoples-daily-ner":
        g_seqs, p_seqs = [], []
        for g, p in zip(torch.cat(gold), torch.cat(predicted)):
            keep = g != IGNORE
            g_seqs.append([names[i] for i in g[keep].tolist()])
            p_seqs.append([names[i] for i in p[keep].tolist()])
        flat_g = [x for s in g_seqs for x in s]
        flat_p = [x for s in p_seqs for x in s]
        scores.update(accuracy=accuracy(flat_g, flat_p), entity_f1=entity_f1(g_seqs, p_seqs),
                      macro_f1=macro_f1([names.index(x) for x in flat_g], [names.index(x) for x in flat_p]))
    else:
        g = torch.cat(gold).tolist()
        p = torch.cat(predicted).tolist()
        majority = max(set(g), key=g.count)
        scores.update(accuracy=accuracy(g, p), macro_f1=macro_f1(g, p),
                      majority_baseline=accuracy(g, [majority] * len(g)))
    scores["head"] = model
    return scores


def load_pretrained(folder: str | Path):
    """(model, tokenizer, special ids) of a saved model folder of a family with the encode capability."""
    from .. import registry
    from ..data.tokenizers import load_tokenizer
    from ..data.tokenizers.subword import special_ids
    from ..pretrained import CONFIG_NAME, load, read_model_config, split_config

    family, _, _ = split_config(read_model_config(folder), f"{folder}/{CONFIG_NAME}")
    registry.get(family).require("encode", "lmlab finetune")
    if family in ("gpt", "classifier", "tagger"):
        raise CheckpointError(f"{folder}: a {family!r} model; lmlab finetune fine-tunes the BERT-family encoders "
                              "(bert, roberta, spanbert, albert, electra) here")
    if not (Path(folder) / "tokenizer.json").is_file():
        raise CheckpointError(f"{folder}: no tokenizer.json next to the model (needed to encode the task's text)")
    model = load(folder)
    tokenizer = load_tokenizer(folder)
    return model, tokenizer, special_ids(tokenizer)


def finetune(model_dir: str | Path, spec: FinetuneSpec, out_dir: str | Path) -> dict:
    """Load a saved model folder, fine-tune on ``spec.task``, save the head (it reloads with
    ``lmlab.load``, tokenizer included), return the scores."""
    model, tokenizer, specials = load_pretrained(model_dir)
    out_dir = Path(out_dir)
    scores = finetune_model(model, tokenizer, specials, spec, out_dir / "train")
    head = scores.pop("head")
    head.save_pretrained(out_dir / "model", extra_files=tokenizer.files(),
                         metadata={"base": str(model_dir), "scores": {k: v for k, v in scores.items()
                                                                      if isinstance(v, int | float)}})
    return scores


def predict(model: SequenceClassifier, tokenizer, texts: list[str], batch_size: int = 64) -> list[tuple[str, float]]:
    """(label, probability) of each text under a fine-tuned classifier (``lmlab.load`` of its folder)."""
    from ..data.tokenizers.subword import special_ids

    specials = special_ids(tokenizer)
    rows = sequence_rows([(text, 0) for text in texts], tokenizer, specials, model.config.max_len)
    objective = ClassifyObjective(specials["pad"])
    model.eval()
    out = []
    with torch.no_grad():
        for first in range(0, rows.shape[0], batch_size):
            batch = objective.prepare(rows[first:first + batch_size], torch.Generator())
            probs = torch.softmax(model(batch["input_ids"], batch["attention_mask"]).float(), dim=-1)
            best = probs.argmax(-1)
            out += [(model.config.labels[int(b)], float(probs[i, b])) for i, b in enumerate(best)]
    return out
