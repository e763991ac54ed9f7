"""An encoder-decoder's decoder over one encoded source batch, served a step at a time for generation.

:class:`EncoderDecoderSteps` is what ``model.generation_steps(src)`` of every encoder-decoder family
returns (the Transformer, T5, BART and MASS): it holds the encoder's output z (B, S, C) and its key mask, and gives
:mod:`lmlab.tasks.generation` the three things a decoder provides there (``new_cache``,
``next_token_logits``, ``max_positions``) plus the decoder's start, end and pad ids. The cache
(:class:`lmlab.nn.attention.KVCache`) carries the decoder's self-attention keys/values, the
cross-attention keys/values (set at the first step) and z with its mask in ``extras``, so beam search
reorders them with the rest. The family passes its own ``decode(ids, memory, memory_mask, cache) ->
states`` and ``logits(states) -> logits``; nothing here knows which family it serves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .attention import KVCache


class EncoderDecoderSteps:
    """``memory_mask`` (B, 1, 1, S), or None when every source position is real (the decoder then
    attends without a mask)."""

    def __init__(self, memory: Tensor, memory_mask: Tensor | None,
                 decode: Callable[[Tensor, Tensor, Tensor, KVCache | None], Tensor],
                 logits: Callable[[Tensor], Tensor], n_decoder_layers: int, max_positions: int,
                 decoder_start_token_id: int, eos_token_id: int, pad_token_id: int) -> None:
        self.memory, self.memory_mask = memory, memory_mask  # (B, S, C), (B, 1, 1, S)
        self.decode, self.logits = decode, logits
        self.n_decoder_layers, self.max_positions = n_decoder_layers, max_positions
        self.decoder_start_token_id = decoder_start_token_id
        self.eos_token_id, self.pad_token_id = eos_token_id, pad_token_id
        self.training = False

    def start_ids(self) -> Tensor:
        """(B, 1) decoder inputs of the first step: ``decoder_start_token_id`` in every row."""
        return torch.full((self.memory.shape[0], 1), self.decoder_start_token_id, dtype=torch.long,
                          device=self.memory.device)

    def _expanded(self, rows: int) -> tuple[Tensor, Tensor | None]:
        factor = rows // self.memory.shape[0]  # beam search asks for B * K rows
        if factor == 1:
            return self.memory, self.memory_mask
        mask = None if self.memory_mask is None else self.memory_mask.repeat_interleave(factor, dim=0)
        return self.memory.repeat_interleave(factor, dim=0), mask

    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        n = self.n_decoder_layers
        cache = KVCache(n, max_length, num_cross_layers=n)
        memory, memory_mask = self._expanded(batch_size)
        cache.extras["memory"] = memory  # extras are reordered with the beams; a mask only when there is one
        if memory_mask is not None:
            cache.extras["memory_mask"] = memory_mask
        return cache

    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor | None,
                          cache: KVCache | None) -> Tensor:
        if cache is None:
            memory, memory_mask = self._expanded(input_ids.shape[0])
        else:
            memory, memory_mask = cache.extras["memory"], cache.extras.get("memory_mask")
        states = self.decode(input_ids, memory, memory_mask, cache)
        return self.logits(states[:, -1])  # (B, V)
