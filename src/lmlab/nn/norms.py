"""Normalisation layers and where they sit around a residual sub-layer.

- ``LayerNorm`` (Ba et al., 2016) is ``torch.nn.LayerNorm``, re-exported; :class:`RMSNorm`
  (Zhang & Sennrich, 2019; T5) rescales by the root mean square without centring or bias.
- Where the norm sits is a module passed to a block, not a flag:

  :class:`PostNormResidual`  y = LN(x + Dropout(Sublayer(x)))   — Vaswani et al. (2017) §5.4, GPT-1, BERT
  :class:`PreNormResidual`   y = x + Dropout(Sublayer(LN(x)))   — GPT-2 (Radford et al., 2019 §2.3),
                             Xiong et al. (2020); needs a final LN after the last block.

Each wrapper is called as ``wrapper(x, sublayer)`` where ``sublayer`` is any callable (B, T, C) ->
(B, T, C), so the same wrapper serves self-attention, cross-attention and the feed-forward net.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import Dropout

LayerNorm = nn.LayerNorm


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · g."""

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:  # one fused op, the same numbers
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        variance = x.float().pow(2).mean(dim=-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


class PostNormResidual(nn.Module):
    """y = norm(x + dropout(f(x)))."""

    def __init__(self, norm: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = norm
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        return self.norm(x + self.dropout(sublayer(x)))


class PreNormResidual(nn.Module):
    """y = x + dropout(f(norm(x)))."""

    def __init__(self, norm: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = norm
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        return x + self.dropout(sublayer(self.norm(x)))
