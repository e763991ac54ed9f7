"""Truncated back-propagation through time with carried state: the recurrent LMs' objective.

A batch is a (B, T+1) block of the token stream (:class:`lmlab.data.stream.BPTTStream`); a
document's first token carries a flag (its id + ``vocab_size``) that resets the state there.
``stateful``: the Trainer carries the state from block to block (and through checkpoints).
``<s>`` is never a target.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class BPTTObjective:
    """Next-token loss over a BPTT block with carried state (``stateful``: the Trainer carries it)."""

    is_language_model = True  # the loss is next-token cross-entropy: exp(eval loss) is a perplexity

    stateful = True

    def __init__(self, vocab_size: int, bos_id: int):
        self.vocab_size = vocab_size
        self.bos_id = bos_id

    def prepare(self, ids: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        reset = ids >= self.vocab_size
        tokens = ids % self.vocab_size
        target = tokens[:, 1:]
        return {"x": tokens[:, :-1], "y": target, "reset": reset[:, :-1], "mask": target != self.bos_id}

    def loss(self, model, batch: dict[str, Tensor], state: Any):
        h, state = model(batch["x"], state, batch["reset"])
        mask = batch["mask"]
        n = int(mask.sum())
        if n == 0:  # a block of nothing but <s> targets
            return h.sum() * 0.0, 0, state
        loss = model.output.loss(h[mask], batch["y"][mask]) * n  # (n_targets, H) -> summed loss
        return loss, n, state
