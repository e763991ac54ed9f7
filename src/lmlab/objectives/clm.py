"""Causal (left-to-right) language modelling as a Trainer objective.

GPT-1 (Radford et al., 2018, §3.1, eq. 1) maximises, over a corpus of tokens U = (u_1, ..., u_n),

    L_1(U) = Σ_i log P(u_i | u_{i-k}, ..., u_{i-1}; Θ)

with a context window of k tokens. A row of k + 1 token ids gives k terms at once: the model reads
u_1..u_k and at position t predicts u_{t+1} ("shift by one"). The Trainer minimises -L_1 summed over
the predicted positions and divides by their number (the loss per predicted token).

Positions that predict nothing carry the target :data:`IGNORE_INDEX` (-100, PyTorch's
``cross_entropy`` convention, also Hugging Face's):

- padding: a target that is padding (by ``pad_token_id``, or where an ``attention_mask`` is 0 — use
  the mask when the pad id is also the end-of-text id, as in GPT-2; the mask also drops targets
  read from a padded input position, which left padding has);
- packed streams: documents laid end to end with a separator (``</s>`` / ``<|endoftext|>``) between
  them. The separator itself is predicted (the model learns where a document ends); with
  ``separator_id`` set, the token *after* a separator is not predicted from the previous document's
  context (its target is ignored). Attention still reaches across the separator, as in GPT-2's
  training; block-diagonal attention per document is not done here.

:class:`CausalLMObjective` is the objective object for :class:`lmlab.train.trainer.Trainer`
(``prepare`` then ``loss``); :func:`shift_targets` and :func:`lm_loss_sum` are the pieces, also
used by GPT-1's auxiliary LM loss in fine-tuning (:class:`lmlab.models.gpt.GPTClassifier`).

Not here: the model (any module mapping ids (B, T) to logits (B, T, V)), the data stream
(:mod:`lmlab.data.stream`), prefix-LM or fill-in-the-middle objectives.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from ..protocols import FusedCausalLM

IGNORE_INDEX = -100


def shift_targets(ids: Tensor, attention_mask: Tensor | None = None, pad_token_id: int | None = None,
                  separator_id: int | None = None) -> tuple[Tensor, Tensor]:
    """ids (B, T+1) -> (inputs (B, T) = ids[:, :-1], targets (B, T) = ids[:, 1:] with ignored positions -100).

    ``attention_mask`` (B, T+1), 1 at real tokens: a target is ignored where it, or the input
    position predicting it, is masked (right or left padding).
    ``pad_token_id``: targets equal to it are ignored. ``separator_id``: the target right after a
    separator in the input (the first token of the next packed document) is ignored.
    """
    if ids.ndim != 2 or ids.shape[1] < 2:
        raise UsageError(f"causal LM rows must be (batch, length >= 2) token ids, got shape {tuple(ids.shape)}")
    inputs = ids[:, :-1]
    targets = ids[:, 1:].clone()  # (B, T): position t predicts token t+1
    if attention_mask is not None:
        if attention_mask.shape != ids.shape:
            raise UsageError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {tuple(ids.shape)}")
        targets[(attention_mask[:, 1:] == 0) | (attention_mask[:, :-1] == 0)] = IGNORE_INDEX
    if pad_token_id is not None:
        targets[ids[:, 1:] == pad_token_id] = IGNORE_INDEX
    if separator_id is not None:
        targets[inputs == separator_id] = IGNORE_INDEX
    return inputs, targets


def lm_loss_sum(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """(-Σ log P(target) over the non-ignored positions, their number): logits (B, T, V), targets (B, T)."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")  # (B*T, V) against (B*T,)
    return loss, (targets != IGNORE_INDEX).sum()


class CausalLMObjective:
    """The Trainer objective for -L_1: rows of T+1 ids in, (Σ -log P(u_{t+1} | u_<=t), count) out.

    A batch is a (B, T+1) id tensor (what :class:`lmlab.data.stream.LMBlocks` yields), or a mapping
    with ``input_ids`` and ``attention_mask`` (right-padded rows). The model maps ids (B, T) to
    logits (B, T, V).
    """

    is_language_model = True  # the loss is next-token cross-entropy: exp(eval loss) is a perplexity

    def __init__(self, pad_token_id: int | None = None, separator_id: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.separator_id = separator_id

    def prepare(self, batch: Tensor | Mapping[str, Tensor], generator: torch.Generator | None = None):
        if isinstance(batch, Mapping):
            ids, mask = batch["input_ids"], batch.get("attention_mask")
        else:
            ids, mask = batch, None
        return shift_targets(ids, mask, self.pad_token_id, self.separator_id)

    def loss(self, model, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        inputs, targets = batch
        if isinstance(model, FusedCausalLM):
            # the same sum, with the output layer and softmax fused (no (B, T, V) logits stored)
            return model.causal_lm_loss_sum(inputs, targets), (targets != IGNORE_INDEX).sum()
        return lm_loss_sum(model(inputs), targets)
