"""Fine-tuning objectives: the cross-entropy of labels given a sequence (or of a label per token).

Devlin et al. (2019) §4 / Radford et al. (2018) §3.2: a task head on a pretrained encoder,
every parameter trained on L_2 = -Σ log P(y | x). One objective serves every head:

- sequence rows (B, T + 1): the token ids, then the class id in the last column;
- token rows (B, 2T) with ``per_token=True``: T token ids, then T labels (``IGNORE`` where a
  position is not scored: padding, specials, the non-first pieces of a word), as BERT §5.3 tags.

A model that exposes ``loss_terms(ids, labels, mask) -> (logits, L_2, L_1 | None)`` (GPT-1's
classifier, :class:`lmlab.models.gpt.GPTClassifier`) is trained on L_2 + λ·L_1, its auxiliary
language-modelling loss with λ = ``model.config.lm_coef``; its mean L_1 is logged as ``lm``.
Any other model maps ``(input_ids, attention_mask)`` to logits (B, C) or (B, T, C).

The Trainer divides the summed loss by the count this returns (rows, or scored tokens), and
logs ``acc`` (training accuracy) beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..protocols import LossOutput

IGNORE = -100


class ClassifyObjective:
    """Σ cross-entropy of the labels of sequence rows (or, ``per_token``, of token rows)."""

    def __init__(self, pad_id: int, per_token: bool = False) -> None:
        self.pad_id = pad_id
        self.per_token = per_token

    def prepare(self, ids: Tensor, generator: torch.Generator | None = None) -> dict:
        ids = ids.long()
        if self.per_token:
            T = ids.shape[1] // 2
            tokens, labels = ids[:, :T], ids[:, T:]                   # (B, T), (B, T)
        else:
            tokens, labels = ids[:, :-1], ids[:, -1]                  # (B, T), (B,)
        return {"input_ids": tokens, "attention_mask": (tokens != self.pad_id).long(), "labels": labels}

    def loss(self, model, batch: dict) -> LossOutput:
        labels = batch["labels"]
        if hasattr(model, "loss_terms"):  # GPT-1 §3.2: L_2 + λ·L_1, both means over the rows
            logits, l2, l1 = model.loss_terms(batch["input_ids"], labels, batch["attention_mask"])
            n = labels.numel()
            total = l2 if l1 is None else l2 + model.config.lm_coef * l1
            correct = (logits.argmax(-1) == labels).sum()
            lm = torch.zeros(()) if l1 is None else l1.detach() * n
            return LossOutput(total * n, n, metrics={"acc": correct.detach(), "lm": lm})
        logits = model(batch["input_ids"], batch["attention_mask"])
        if self.per_token:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
                                   reduction="sum")
            scored = labels != IGNORE
            correct = ((logits.argmax(-1) == labels) & scored).sum()
            return LossOutput(loss, int(scored.sum()), metrics={"acc": correct.detach()})
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")
        correct = (logits.argmax(-1) == labels).sum()
        return LossOutput(loss, labels.numel(), metrics={"acc": correct.detach()})
