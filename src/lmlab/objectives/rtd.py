"""Replaced-token detection (ELECTRA; Clark et al., 2020, §2) as a Trainer objective.

    L = L_MLM(x, θ_G) + λ L_Disc(x, θ_D),   λ = 50

``prepare`` masks 15% of the tokens (ELECTRA replaces every selected token by [MASK]: the
default :func:`electra_masking` has ``mask_prob = 1``); the model (``models.electra``) samples
the replacements from its generator and labels each position replaced / original. ``loss``
returns Σ MLM + λ · mean(BCE over real tokens) · N for the Trainer (N = masked tokens), so the
Trainer's division by N gives mean MLM + λ · mean RTD, the paper's loss.

Metrics logged: the discriminator's accuracy and the accuracy of the all-"original" baseline
(the fraction of real tokens that were not replaced), which the discriminator must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .mlm import Masker, MaskingConfig


def electra_masking(scheme: str = "token") -> MaskingConfig:
    """15% of tokens, all replaced by [MASK] (the generator supplies the alternatives)."""
    return MaskingConfig(scheme=scheme, mask_prob=1.0, random_prob=0.0)


@dataclass
class RTDBatch:
    masked_ids: Tensor       # (B, T) x^masked
    original_ids: Tensor     # (B, T) x
    selected: Tensor         # (B, T) bool
    attention_mask: Tensor   # (B, T)
    labels: Tensor           # (N,) originals at the selected positions


class RTDObjective:
    def __init__(self, masker: Masker, pad_id: int, rtd_weight: float = 50.0) -> None:
        self.masker, self.pad_id, self.rtd_weight = masker, pad_id, rtd_weight

    def prepare(self, ids: Tensor, generator: torch.Generator) -> RTDBatch:
        ids = ids.long()
        c = self.masker(ids, generator).corrupted
        return RTDBatch(c.input_ids, ids, c.selected, (ids != self.pad_id).long(), ids[c.selected])

    def loss(self, model, batch: RTDBatch):
        from ..protocols import LossOutput

        out = model(batch.masked_ids, batch.original_ids, batch.selected, attention_mask=batch.attention_mask)
        n = batch.labels.numel()
        mlm_sum = F.cross_entropy(out.generator_logits.float(), batch.labels, reduction="sum")
        real = batch.attention_mask.bool()
        rtd_mean = F.binary_cross_entropy_with_logits(out.rtd_logits[real].float(), out.rtd_labels[real])
        total = mlm_sum + self.rtd_weight * rtd_mean * n
        with torch.no_grad():
            predicted = (out.rtd_logits[real] > 0).float()
            accuracy = (predicted == out.rtd_labels[real]).float().mean()
            baseline = 1.0 - out.rtd_labels[real].mean()
        return LossOutput(total, n, metrics={"mlm_loss": mlm_sum.detach(), "rtd_loss": rtd_mean.detach() * n,
                                             "rtd_acc": accuracy * n, "rtd_baseline_acc": baseline * n})
