"""The bidirectional LM objective of ELMo (Peters et al. 2018, eq. in section 3.1): the sum of the
forward LM's ``log p(t_k | t_1 .. t_{k-1})`` and the backward LM's ``log p(t_k | t_{k+1} .. t_N)``,
both truncated-BPTT over a token stream with the state carried from block to block (as bilm-tf
trains), through the Trainer's carried state.

A batch is ``(B, 2, T+1)`` (:class:`lmlab.data.stream.StackedStreams`): row 0 the forward stream
(``<s> w_1 .. w_n </s>`` per sentence), row 1 the backward stream (``</s> w_n .. w_1 <s>``); a
document's first token carries a flag (id + ``vocab_size``) that resets the state there. The
forward LM never predicts ``<s>`` and the backward LM never predicts ``</s>`` (each is only
their context), so both predict ``n + 1`` events per sentence. The loss is the sum over both
directions and ``n_targets`` counts both, so ``exp(eval loss)`` is the geometric mean of the two
perplexities (the number bilm-tf reports).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class BiLMObjective:
    is_language_model = True
    stateful = True

    def __init__(self, vocab_size: int, bos_id: int, eos_id: int):
        self.vocab_size = vocab_size
        self.bos_id = bos_id
        self.eos_id = eos_id

    def prepare(self, ids: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        batch = {}
        for name, block, never in (("f", ids[:, 0], self.bos_id), ("b", ids[:, 1], self.eos_id)):
            reset = block >= self.vocab_size
            tokens = block % self.vocab_size
            target = tokens[:, 1:]
            batch.update({f"{name}x": tokens[:, :-1], f"{name}y": target, f"{name}reset": reset[:, :-1],
                          f"{name}mask": target != never})
        return batch

    def loss(self, model, batch: dict[str, Tensor], state: Any):
        states = state if state is not None else (None, None)
        total, n, new_states = None, 0, []
        for name, backward, carried in (("f", False, states[0]), ("b", True, states[1])):
            h, new = model.lm_direction(backward, batch[f"{name}x"], carried, batch[f"{name}reset"])
            new_states.append(new)
            mask = batch[f"{name}mask"]
            count = int(mask.sum())
            part = model.output.loss(h[mask], batch[f"{name}y"][mask]) * count if count else h.sum() * 0.0
            total = part if total is None else total + part
            n += count
        return total, n, tuple(new_states)
