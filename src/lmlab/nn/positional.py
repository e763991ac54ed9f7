"""Position information added to token embeddings.

- :class:`SinusoidalPositions` — Vaswani et al. (2017), §3.5:
  PE(pos, 2i) = sin(pos / 10000^(2i/d_model)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).
  Fixed, not trained, not saved (a buffer recomputed from the config), defined for any length
  up to ``max_length``.
- :class:`LearnedPositions` — one trained vector per position (GPT-1/GPT-2, BERT): an
  ``nn.Embedding(max_length, d_model)``.

Both take ``position_ids`` (B, T) integers and return (B, T, C). Relative positions
(Transformer-XL, T5) are their papers' own and live in their model files.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoid_table(max_length: int, d_model: int) -> Tensor:
    """(max_length, d_model) table of eq. §3.5 (sines in even columns, cosines in odd)."""
    position = torch.arange(max_length, dtype=torch.float64)[:, None]               # (L, 1)
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = position * inv_freq[None, :]                                           # (L, C/2)
    table = torch.zeros(max_length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table.float()


class SinusoidalPositions(nn.Module):
    def __init__(self, max_length: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoid_table(max_length, d_model), persistent=False)

    def forward(self, position_ids: Tensor) -> Tensor:  # (B, T) -> (B, T, C)
        return self.table[position_ids]


class LearnedPositions(nn.Module):
    def __init__(self, max_length: int, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_length, d_model)

    @property
    def weight(self) -> Tensor:
        return self.embedding.weight

    def forward(self, position_ids: Tensor) -> Tensor:  # (B, T) -> (B, T, C)
        return self.embedding(position_ids)
