"""Masked language modelling (BERT, RoBERTa, ALBERT, SpanBERT) as a Trainer objective.

    L_MLM = - Σ_{i ∈ M} log P(x_i | x̃)         M: the selected positions, x̃: the corrupted input

(Devlin et al., 2019, §3.1). :class:`Masker` turns token ids into (corrupted input, selected
positions, labels) by one of the schemes of ``masking.py``: ``token`` (BERT), ``whole-word``
(BERT-wwm), ``ngram`` (ALBERT, n ≤ 3 with 6/11, 3/11, 2/11), ``span`` (SpanBERT, Geo(0.2) ≤ 10).

Static vs dynamic masking (RoBERTa §4.1): ``static_duplicates = 0`` draws a fresh mask every
time a row is seen (the Trainer's generator differs at every step); ``static_duplicates = k``
gives each row one of k masks fixed by its content (BERT's dupe_factor; k = 1: always the same).

:class:`MLMObjective` adds the sentence task (NSP / SOP: rows carry the label in their last
column, see ``sentence.py``); its ``loss`` returns summed losses for the Trainer:
Σ MLM + (mean NSP) · N, so that dividing by N (the number of predicted tokens) gives
mean MLM + mean NSP, BERT's "sum of the mean losses". SpanBERT's SBO is the objective of
``span.py``, which wraps this one and adds Σ SBO.

The model is called through its named heads only: ``model.encoder(ids, segments, mask) ->
(h, pooled)``, ``model.mlm_logits(h, selected)``, and ``model.sentence_logits(pooled)`` when there
is a sentence task (BERT, RoBERTa, SpanBERT, ALBERT all provide them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, UsageError
from . import masking
from .sentence import NSP, SOP, segment_ids_from_sep


@dataclass
class MaskingConfig:
    scheme: Literal["token", "whole-word", "ngram", "span"] = "token"
    rate: float = 0.15
    mask_prob: float = 0.8
    random_prob: float = 0.1
    max_ngram: int = 3            # ALBERT
    span_p: float = 0.2           # SpanBERT geometric parameter
    span_max: int = 10            # SpanBERT clip
    static_duplicates: int = 0    # 0: dynamic; k: k fixed masks per row

    def validate(self) -> None:
        if self.scheme not in ("token", "whole-word", "ngram", "span"):
            raise ConfigError(f"masking.scheme must be token, whole-word, ngram or span, got {self.scheme!r}")
        if not 0 < self.rate <= 1:
            raise ConfigError(f"masking.rate must be in (0, 1], got {self.rate}")
        if self.static_duplicates < 0:
            raise ConfigError(f"masking.static_duplicates must be >= 0, got {self.static_duplicates}")


@dataclass
class Masked:
    corrupted: masking.Corrupted
    span_ids: Tensor | None  # (B, T) for span schemes, else None


class Masker:
    """ids (B, T) + generator -> :class:`Masked`, by the configured scheme."""

    def __init__(self, config: MaskingConfig, vocab_size: int, mask_id: int, special_ids: Sequence[int],
                 starts_word: Tensor | None = None, ends_word: Tensor | None = None) -> None:
        config.validate()
        if config.scheme != "token" and starts_word is None:
            raise UsageError(f"masking scheme {config.scheme!r} needs word boundaries (starts_word table)")
        self.config = config
        self.mask_id = mask_id
        self.special_ids = list(special_ids)
        self.starts_word, self.ends_word = starts_word, ends_word
        pool = torch.ones(vocab_size, dtype=torch.bool)
        pool[torch.as_tensor(self.special_ids, dtype=torch.long)] = False
        self.random_pool = torch.nonzero(pool).squeeze(1)  # random replacements: any non-special id
        if config.scheme == "ngram":
            self.length_probs = masking.ngram_length_probs(config.max_ngram)
        elif config.scheme == "span":
            self.length_probs = masking.geometric_length_probs(config.span_p, config.span_max)
        else:
            self.length_probs = None

    def _mask(self, ids: Tensor, generator: torch.Generator) -> Masked:
        c = self.config
        special = masking.special_mask(ids, self.special_ids)
        span_ids = None
        if c.scheme == "token":
            selected = masking.select_tokens(special, generator, c.rate)
        else:
            words = masking.word_ids_from_pieces(ids, special, self.starts_word, self.ends_word)
            if c.scheme == "whole-word":
                selected = masking.select_units(words, generator, c.rate)
            else:
                spans = masking.select_spans(words, generator, self.length_probs, c.rate)
                selected, span_ids = spans.selected, spans.span_ids
        corrupted = masking.corrupt(ids, selected, generator, self.mask_id, self.random_pool, c.mask_prob,
                                    c.random_prob)
        return Masked(corrupted, span_ids)

    def __call__(self, ids: Tensor, generator: torch.Generator) -> Masked:
        if self.config.static_duplicates == 0:
            return self._mask(ids, generator)
        parts = [self._mask(ids[b:b + 1], g)
                 for b, g in enumerate(masking.static_generators(ids, generator, self.config.static_duplicates))]
        return _stack(parts)


def _stack(parts: list[Masked]) -> Masked:
    def cat(name):
        return torch.cat([getattr(p.corrupted, name) for p in parts])

    corrupted = masking.Corrupted(cat("input_ids"), cat("selected"), cat("labels"), cat("replaced"))
    spans = None if parts[0].span_ids is None else torch.cat([p.span_ids for p in parts])
    return Masked(corrupted, spans)


@dataclass
class MLMBatch:
    input_ids: Tensor            # (B, T) corrupted
    attention_mask: Tensor       # (B, T) 1 = real token
    segment_ids: Tensor          # (B, T)
    selected: Tensor             # (B, T) bool
    labels: Tensor               # (N,) original ids at the selected positions
    sentence_labels: Tensor | None = None   # (B,) NSP / SOP
    span_ids: Tensor | None = None          # (B, T) span of each selected token (span schemes), -1 elsewhere


class MLMObjective:
    """prepare(ids, generator) -> MLMBatch; loss(model, batch) -> LossOutput (see module docstring).

    ``sentence_task``: None, ``"nsp"`` or ``"sop"`` — the rows then carry the label in their last
    column. ``sep_id``: segments are 0 up to the first [SEP] and 1 after it.
    """

    def __init__(self, masker: Masker, pad_id: int, sep_id: int | None = None,
                 sentence_task: str | None = None) -> None:
        if sentence_task not in (None, NSP, SOP):
            raise UsageError(f"sentence_task must be None, 'nsp' or 'sop', got {sentence_task!r}")
        if sentence_task is not None and sep_id is None:
            raise UsageError("a sentence task needs sep_id to find the two segments")
        self.masker, self.pad_id, self.sep_id = masker, pad_id, sep_id
        self.sentence_task = sentence_task

    def prepare(self, ids: Tensor, generator: torch.Generator) -> MLMBatch:
        ids = ids.long()
        sentence_labels = None
        if self.sentence_task is not None:
            ids, sentence_labels = ids[:, :-1], ids[:, -1]
        masked = self.masker(ids, generator)
        c = masked.corrupted
        segments = segment_ids_from_sep(ids, self.sep_id) if self.sentence_task is not None else torch.zeros_like(ids)
        return MLMBatch(c.input_ids, (ids != self.pad_id).long(), segments, c.selected, ids[c.selected],
                        sentence_labels, masked.span_ids)

    def loss(self, model, batch: MLMBatch):
        h, pooled = model.encoder(batch.input_ids, segment_ids=batch.segment_ids,
                                  attention_mask=batch.attention_mask)
        return self.loss_from_states(model, batch, h, pooled)

    def loss_from_states(self, model, batch: MLMBatch, h: Tensor, pooled: Tensor | None):
        """The MLM (+ sentence) loss from the encoder's states h (B, T, H) and pooled (B, H)."""
        from ..protocols import LossOutput

        mlm_logits = model.mlm_logits(h, batch.selected)                   # (N, V)
        n = batch.labels.numel()
        mlm_sum = F.cross_entropy(mlm_logits.float(), batch.labels, reduction="sum")
        total = mlm_sum
        metrics = {"mlm_loss": mlm_sum.detach(),
                   "mlm_acc": (mlm_logits.argmax(-1) == batch.labels).sum().detach()}
        if self.sentence_task is not None:
            sentence_logits = model.sentence_logits(pooled)                # (B, 2)
            sentence_mean = F.cross_entropy(sentence_logits.float(), batch.sentence_labels)
            total = total + sentence_mean * n
            correct = (sentence_logits.argmax(-1) == batch.sentence_labels).float().mean()
            metrics[f"{self.sentence_task}_loss"] = sentence_mean.detach() * n
            metrics[f"{self.sentence_task}_acc"] = correct.detach() * n
        return LossOutput(total, n, metrics=metrics)
