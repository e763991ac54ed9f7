"""Extractive question answering, SQuAD 2.0 style: a start and an end score per context token, a no-answer score.

Devlin et al. (2019) §4.2-4.3: the question and the context are one input, ``[CLS] question [SEP]
context [SEP]``; one linear layer gives each token a start logit S_i and an end logit E_i, trained
with the cross-entropy of the gold start and of the gold end. A span i..j scores S_i + E_j; an
unanswerable question (SQuAD 2.0) points both at [CLS], so s_null = S_[CLS] + E_[CLS], and a
question is answered only when the best span beats the null score by more than a threshold τ:

    ŝ = max_{i <= j < i + max_answer_len} S_i + E_j          answer iff  s_null - ŝ <= τ

with τ chosen on the validation split to maximise F1 (the official SQuAD 2.0 script's sweep,
:func:`lmlab.eval.metrics.best_threshold`) and stored in the model's config.

Long contexts (BERT's ``run_squad``): the context is cut into windows of at most
``max_len - len(question) - 3`` pieces whose starts are ``doc_stride`` pieces apart; a window
that does not hold the whole answer is trained to point at [CLS]. At prediction the null score
is the lowest over an example's windows and the best span the highest.

The context is split into words as :func:`lmlab.tasks.tagging.split_words` does, each word into
its pieces; spans start and end at word boundaries and map back to character offsets in the
context. Encoders with segments (BERT, SpanBERT, ALBERT, ELECTRA; XLNet's relative segments) read
segment 0 for ``[CLS] question [SEP]`` and 1 for ``context [SEP]`` (BERT §4.2;
:func:`lmlab.tasks.classification.segment_ids`); RoBERTa and GPT see the [SEP] between them only.

Not here: beam search over spans, answer verification heads, multi-paragraph re-ranking.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.qa_wiki import QAExample
from ..errors import ConfigError, DataError, UsageError
from ..eval import metrics
from ..protocols import LossOutput
from .tagging import EncoderHead, fit_head, frame_ids, sample, save_head, split_words


@dataclass
class QAConfig:
    """A QA model's folder: its encoder (family + Config fields), the windowing and the no-answer threshold."""

    encoder_family: str = "bert"
    encoder: dict = field(default_factory=dict)
    dropout: float = 0.1
    max_len: int = 384              # pieces per window, [CLS] and both [SEP] included
    doc_stride: int = 128           # pieces between the starts of two context windows
    max_question_len: int = 64
    max_answer_len: int = 30        # pieces
    null_threshold: float = 0.0     # τ: answer iff s_null - best span score <= τ
    task: str = ""
    segment_sep: int = -1           # the [SEP] after the question: segment ids from it (-1, older folders: none)

    def validate(self) -> None:
        if self.max_question_len < 1 or self.max_answer_len < 1 or self.doc_stride < 1:
            raise ConfigError("max_question_len, max_answer_len and doc_stride must be >= 1")
        if self.max_len < self.max_question_len + 4:
            raise ConfigError(f"max_len={self.max_len} leaves no room for context after a question of "
                              f"{self.max_question_len} pieces")


class QuestionAnswerer(EncoderHead):
    """encoder + linear -> (start logits (B, T), end logits (B, T)); a folder of family "qa"."""

    family = "qa"
    config_class = QAConfig

    def __init__(self, config: QAConfig, encoder: nn.Module | None = None) -> None:
        super().__init__(config, encoder)
        self.dropout = nn.Dropout(config.dropout)
        self.span = nn.Linear(self.encoder.config.d_model, 2)
        nn.init.normal_(self.span.weight, std=0.02)
        nn.init.zeros_(self.span.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        hidden, _, _ = self.encoded(input_ids, attention_mask)
        logits = self.span(self.dropout(hidden))                                     # (B, T, 2)
        start, end = logits.unbind(-1)                                               # (B, T) each
        return start, end


# --------------------------------------------------------------------------- examples and windows


@dataclass
class Feature:
    """One window of one example: its ids, the character span of each context piece (None elsewhere)
    and the gold start / end positions (0, [CLS], when the window holds no answer)."""

    example: int
    ids: list[int]
    spans: list[tuple[int, int] | None]
    start: int = 0
    end: int = 0


def _context_pieces(tokenizer, context: str, frame: dict) -> tuple[list[int], list[tuple[int, int]]]:
    words = split_words(context)
    fallback = frame["unk"] if frame["unk"] is not None else frame["cls"]
    ids, spans = [], []
    for (_, start, end), pieces in zip(words, tokenizer.encode_batch([w for w, _, _ in words])):
        for piece in pieces or [fallback]:
            ids.append(piece)
            spans.append((start, end))
    return ids, spans


def features(examples: list[QAExample], tokenizer, config: QAConfig, frame: dict | None = None) -> list[Feature]:
    """Every window of every example (see the module docstring), with gold positions for training."""
    frame = frame or frame_ids(tokenizer)
    out = []
    for n, ex in enumerate(examples):
        question = tokenizer.encode(ex.question)[: config.max_question_len]
        ids, spans = _context_pieces(tokenizer, ex.context, frame)
        budget = config.max_len - len(question) - 3
        gold = None
        if ex.answers:
            text, char_start = ex.answers[0]
            char_end = char_start + len(text)
            inside = [k for k, (s, e) in enumerate(spans) if s < char_end and e > char_start]
            gold = (inside[0], inside[-1]) if inside else None
        first = 0
        while True:
            last = min(first + budget, len(ids))
            head = [frame["cls"], *question, frame["sep"]]
            feature = Feature(n, [*head, *ids[first:last], frame["sep"]],
                              [None] * len(head) + spans[first:last] + [None])
            if gold is not None and first <= gold[0] and gold[1] < last:
                feature.start, feature.end = gold[0] - first + len(head), gold[1] - first + len(head)
            out.append(feature)
            if last >= len(ids):
                break
            first += config.doc_stride
    return out


def feature_rows(batch: list[Feature], max_len: int, pad: int) -> Tensor:
    """(N, 2 max_len + 2): ids, attention mask, gold start, gold end (:class:`QAObjective`'s layout)."""
    rows = torch.zeros((len(batch), 2 * max_len + 2), dtype=torch.long)
    rows[:, :max_len] = pad
    for i, f in enumerate(batch):
        rows[i, :len(f.ids)] = torch.tensor(f.ids)
        rows[i, max_len:max_len + len(f.ids)] = 1
        rows[i, -2], rows[i, -1] = f.start, f.end
    return rows


class QAObjective:
    """(CE(start) + CE(end)) / 2 summed over the rows, divided by the rows."""

    def prepare(self, ids: Tensor, generator: torch.Generator | None = None) -> dict:
        ids = ids.long()
        T = (ids.shape[1] - 2) // 2
        return {"input_ids": ids[:, :T], "attention_mask": ids[:, T:2 * T], "start": ids[:, -2], "end": ids[:, -1]}

    def loss(self, model: QuestionAnswerer, batch: dict) -> LossOutput:
        start, end = model(batch["input_ids"], batch["attention_mask"])
        hide = batch["attention_mask"] == 0
        start, end = start.float().masked_fill(hide, -1e4), end.float().masked_fill(hide, -1e4)
        loss = (F.cross_entropy(start, batch["start"], reduction="sum")
                + F.cross_entropy(end, batch["end"], reduction="sum")) / 2
        right = ((start.argmax(-1) == batch["start"]) & (end.argmax(-1) == batch["end"])).sum()
        return LossOutput(loss, batch["start"].numel(), metrics={"acc": right.detach()})


# --------------------------------------------------------------------------- prediction


@dataclass
class Answer:
    """The best span of an example (text, character offsets, probability) and its no-answer score."""

    text: str
    start: int
    end: int
    score: float
    no_answer_score: float      # s_null - best span score: the larger, the surer "no answer"


@torch.no_grad()
def best_answers(model: QuestionAnswerer, tokenizer, examples: list[QAExample], batch_size: int = 32) -> list[Answer]:
    """Each example's best span over all its windows, and its no-answer score (threshold not applied)."""
    config = model.config
    frame = frame_ids(tokenizer)
    feats = features(examples, tokenizer, config, frame)
    order = sorted(range(len(feats)), key=lambda k: len(feats[k].ids))
    best: list[tuple | None] = [None] * len(examples)
    null = [float("inf")] * len(examples)
    model.eval()
    for first in range(0, len(order), batch_size):
        group = [feats[k] for k in order[first:first + batch_size]]
        T = max(len(f.ids) for f in group)
        rows = feature_rows(group, T, frame["pad"])
        batch = QAObjective().prepare(rows)
        start, end = model(batch["input_ids"], batch["attention_mask"])
        start, end = start.float(), end.float()
        p_start = start.masked_fill(batch["attention_mask"] == 0, -1e4).softmax(-1)
        p_end = end.masked_fill(batch["attention_mask"] == 0, -1e4).softmax(-1)
        for b, f in enumerate(group):
            null[f.example] = min(null[f.example], float(start[b, 0] + end[b, 0]))
            context = torch.tensor([s is not None for s in f.spans] + [False] * (T - len(f.spans)))
            if not bool(context.any()):
                continue
            scores = start[b, :, None] + end[b, None, :]                               # (T, T): i start, j end
            i, j = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
            allowed = (j >= i) & (j < i + config.max_answer_len) & context[:, None] & context[None, :]
            scores = scores.masked_fill(~allowed, float("-inf"))
            flat = int(scores.argmax())
            si, ej = divmod(flat, T)
            value = float(scores[si, ej])
            if best[f.example] is None or value > best[f.example][0]:
                best[f.example] = (value, si, ej, float(p_start[b, si] * p_end[b, ej]), f)
    out = []
    for n, ex in enumerate(examples):
        if best[n] is None:
            out.append(Answer("", 0, 0, 0.0, float("inf")))
            continue
        value, si, ej, prob, f = best[n]
        char_start, char_end = f.spans[si][0], f.spans[ej][1]
        out.append(Answer(ex.context[char_start:char_end], char_start, char_end, prob, null[n] - value))
    return out


def gold_of(examples: list[QAExample]) -> dict[str, list[str]]:
    return {ex.id: [text for text, _ in ex.answers] for ex in examples}


def tune_threshold(model: QuestionAnswerer, tokenizer, valid: list[QAExample], batch_size: int = 32) -> float:
    """τ maximising F1 on ``valid`` (the official script's sweep); stored in ``model.config.null_threshold``."""
    answers = best_answers(model, tokenizer, valid, batch_size)
    gold = gold_of(valid)
    predictions = {ex.id: a.text for ex, a in zip(valid, answers)}
    no_answer = {ex.id: a.no_answer_score for ex, a in zip(valid, answers)}
    _, f1 = metrics.squad_raw_scores(gold, predictions)
    answerable = metrics.has_answer(gold)
    best, threshold = metrics.best_threshold(predictions, f1, no_answer, answerable)
    if best == 100.0 * sum(not a for a in answerable.values()) / len(answerable):
        # answering nothing is best (the sweep's starting point, for which the official script reports
        # 0.0): a threshold below every no-answer score, so that nothing is answered
        threshold = min(no_answer.values()) - 1.0
    model.config.null_threshold = float(threshold)
    return model.config.null_threshold


def evaluate_qa(model: QuestionAnswerer, tokenizer, examples: list[QAExample], batch_size: int = 32) -> dict:
    """The official SQuAD v2 numbers (%) of ``examples`` with the model's stored threshold."""
    answers = best_answers(model, tokenizer, examples, batch_size)
    predictions = {ex.id: a.text for ex, a in zip(examples, answers)}
    no_answer = {ex.id: a.no_answer_score for ex, a in zip(examples, answers)}
    return metrics.squad_v2(gold_of(examples), predictions, no_answer, model.config.null_threshold)


class QuestionAnsweringPipeline:
    """``pipe({"question": ..., "context": ...})`` -> ``{"answer", "score", "start", "end", "no_answer",
    "no_answer_score"}`` (Hugging Face's keys plus the no-answer decision); a list gives a list.

    ``score`` is P(start) · P(end) of the span under the window's soft-maxes; when the no-answer
    score exceeds the model's threshold, ``answer`` is "" and ``no_answer`` True (start = end = 0)."""

    def __init__(self, model: QuestionAnswerer, tokenizer) -> None:
        if not isinstance(getattr(model, "config", None), QAConfig):
            raise UsageError(f"a question-answering pipeline needs a QA model, not a {type(model).__name__}")
        self.model = model
        self.tokenizer = tokenizer

    def __call__(self, inputs: dict | list[dict], batch_size: int = 32) -> dict | list[dict]:
        items = [inputs] if isinstance(inputs, dict) else list(inputs)
        examples = []
        for n, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("question"), str) \
                    or not isinstance(item.get("context"), str):
                raise UsageError(f"input {n}: expected {{'question': str, 'context': str}}")
            examples.append(QAExample(str(n), item["question"], item["context"]))
        out = []
        for a in best_answers(self.model, self.tokenizer, examples, batch_size):
            unanswered = a.no_answer_score > self.model.config.null_threshold
            out.append({"answer": "" if unanswered else a.text, "score": a.score,
                        "start": 0 if unanswered else a.start, "end": 0 if unanswered else a.end,
                        "no_answer": unanswered, "no_answer_score": a.no_answer_score})
        return out[0] if isinstance(inputs, dict) else out


# --------------------------------------------------------------------------- fine-tuning


@dataclass
class QASpec:
    steps: int = 300
    batch_size: int = 16
    max_len: int = 256
    doc_stride: int = 128
    max_answer_len: int = 30
    max_question_len: int = 48
    lr: float = 1e-4
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    negative_windows: int = 1   # answer-free windows kept per training question (0: all; see training_windows)
    max_train: int = 0          # examples; 0: all
    max_valid: int = 0
    max_test: int = 0
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        for name in ("steps", "batch_size", "doc_stride", "max_answer_len", "max_question_len"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")


def training_windows(feats: list[Feature], negatives: int, seed: int) -> list[Feature]:
    """Every window that holds its example's answer, and at most ``negatives`` (seeded) of each example's
    windows that point at [CLS]; 0 keeps them all. A long context has many answer-free windows, and
    trained on all of them the head learns to answer "none" everywhere (measured on wiki-qa: 3,541
    windows for 400 questions, every answer missed)."""
    if negatives == 0:
        return feats
    by_example: dict[int, list[Feature]] = {}
    for f in feats:
        by_example.setdefault(f.example, []).append(f)
    out = []
    for n, group in sorted(by_example.items()):
        rng = random.Random(f"{seed}:{n}")
        empty = [f for f in group if f.start == 0]
        out += [f for f in group if f.start != 0] + rng.sample(empty, min(negatives, len(empty)))
    return out


@dataclass
class QAData:
    train: list[QAExample]
    valid: list[QAExample]
    test: list[QAExample]
    name: str = ""


def finetune_qa_model(pretrained: nn.Module, tokenizer, data: QAData, spec: QASpec,
                      out_dir: str | Path) -> tuple[QuestionAnswerer, dict]:
    """Fine-tune a span head on ``pretrained``'s encoder; tune τ on valid; (model, test scores)."""
    spec.validate()
    begin = time.monotonic()
    torch.manual_seed(spec.seed)
    train = sample(data.train, spec.max_train, spec.seed)
    valid = sample(data.valid, spec.max_valid, spec.seed + 1)
    test = sample(data.test, spec.max_test, spec.seed + 2)
    if not train or not valid or not test:
        raise DataError(f"QA set {data.name!r} has an empty train, valid or test split")
    frame = frame_ids(tokenizer)
    model = QuestionAnswerer.on(pretrained, dropout=spec.dropout, max_len=spec.max_len, doc_stride=spec.doc_stride,
                                max_question_len=spec.max_question_len, max_answer_len=spec.max_answer_len,
                                task=data.name, segment_sep=frame["sep"])
    train_features = training_windows(features(train, tokenizer, model.config, frame), spec.negative_windows,
                                      spec.seed)
    rows = feature_rows(train_features, spec.max_len, frame["pad"])
    result = fit_head(model, QAObjective(), rows, spec, out_dir)
    threshold = tune_threshold(model, tokenizer, valid)
    scores = {"task": data.name, "n_train": len(train), "n_valid": len(valid), "n_test": len(test),
              "n_train_windows": int(rows.shape[0]), "train_loss": result.loss, "null_threshold": threshold,
              **evaluate_qa(model, tokenizer, test), "seconds": time.monotonic() - begin}
    return model, scores


def finetune_qa(model_dir: str | Path, data: str | QAData, spec: QASpec, out_dir: str | Path) -> dict:
    """Load a saved encoder folder, fine-tune on ``data`` ("wiki-qa" or :class:`QAData`), save the QA model
    to ``out_dir/model`` (reloads with ``lmlab.load``, tokenizer included), return the test scores."""
    from ..data.tokenizers import load_tokenizer
    from ..pretrained import load

    if isinstance(data, str):
        if data != "wiki-qa":
            raise UsageError(f"unknown QA set {data!r}; the built-in one is 'wiki-qa'")
        from ..data import qa_wiki

        built = qa_wiki.build()
        data = QAData(built.train, built.valid, built.test, "wiki-qa")
    pretrained = load(model_dir)
    tokenizer = load_tokenizer(model_dir)
    out_dir = Path(out_dir)
    model, scores = finetune_qa_model(pretrained, tokenizer, data, spec, out_dir / "train")
    save_head(model, tokenizer, model_dir, scores, out_dir / "model")
    return scores
