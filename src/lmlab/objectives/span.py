"""SpanBERT's span boundary objective (Joshi et al., 2020, §3.2) as a Trainer objective.

Each token x_i of a masked span (x_s, ..., x_e) is predicted a second time, from the encoder
outputs at the two boundary tokens and the token's relative position inside the span only:

    y_i = f(x_{s-1}, x_{e+1}, p_{i-s+1})          (the head: ``models.bert.SpanBertForPreTraining.sbo_logits``)
    L(x_i) = L_MLM(x_i) + L_SBO(x_i) = -log P(x_i | x_i) - log P(x_i | y_i)

:class:`SBOObjective` wraps an :class:`~lmlab.objectives.mlm.MLMObjective` whose masker draws
geometric spans (the ``span`` scheme): ``prepare`` adds each selected token's boundary positions
(``masking.span_boundaries``) to the MLM batch, ``loss`` runs the encoder once and returns
Σ MLM (+ the sentence term, if any) + Σ SBO for the Trainer, which divides by N, the number of
masked tokens: mean MLM + mean SBO, the paper's sum. The model needs ``encoder``,
``mlm_logits`` and ``sbo_logits`` (what ``SpanBertForPreTraining`` has).

The spans come from ``masking.select_spans`` (geometric lengths over whole words). This file
holds the objective; the masking and the head live where they belong. Not here: T5-style span
corruption.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from .masking import span_boundaries
from .mlm import MLMBatch, MLMObjective

__all__ = ["SBOBatch", "SBOObjective", "sbo_loss_sum", "span_boundaries"]


def sbo_loss_sum(sbo_logits: Tensor, labels: Tensor) -> Tensor:
    """Σ_i -log P(x_i | y_i) over the span tokens; ``sbo_logits`` (N, V), labels (N,)."""
    return F.cross_entropy(sbo_logits.float(), labels, reduction="sum")


@dataclass
class SBOBatch:
    mlm: MLMBatch                # the masked rows (its span_ids say which span each selected token is in)
    span_left: Tensor            # (B, T) position s - 1 of each selected token's span
    span_right: Tensor           # (B, T) position e + 1


class SBOObjective:
    """prepare(ids, generator) -> SBOBatch; loss(model, batch) -> LossOutput: MLM (+ NSP) + SBO."""

    def __init__(self, mlm: MLMObjective) -> None:
        if mlm.masker.config.scheme != "span":
            raise UsageError("the span boundary objective needs the 'span' masking scheme, "
                             f"got {mlm.masker.config.scheme!r}")
        self.mlm = mlm

    def prepare(self, ids: Tensor, generator: torch.Generator) -> SBOBatch:
        batch = self.mlm.prepare(ids, generator)
        left, right = span_boundaries(batch.span_ids)
        return SBOBatch(batch, left, right)

    def loss(self, model, batch: SBOBatch):
        from ..protocols import LossOutput

        if not hasattr(model, "sbo_logits"):
            raise UsageError(f"{type(model).__name__} has no span boundary head (sbo_logits): "
                             "SpanBERT's objective needs a SpanBertForPreTraining")
        m = batch.mlm
        h, pooled = model.encoder(m.input_ids, segment_ids=m.segment_ids, attention_mask=m.attention_mask)
        out = self.mlm.loss_from_states(model, m, h, pooled)
        sbo_sum = sbo_loss_sum(model.sbo_logits(h, m.selected, batch.span_left, batch.span_right), m.labels)
        return LossOutput(out.loss_sum + sbo_sum, out.n_targets,
                          metrics={**out.metrics, "sbo_loss": sbo_sum.detach()})
