"""The input embeddings of the BERT family: token + position + segment, then LayerNorm and dropout.

    h_0 = Dropout(LN(E_token[x_t] + E_position[t + offset] + E_segment[s_t]))

Devlin et al. (2019), "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding", §3 "Input/Output Representations" (Figure 2). BERT and RoBERTa use it at the model
width H; ALBERT (Lan et al., 2020, §3.1) and ELECTRA (Clark et al., 2020, §3.2) at a smaller
embedding size E, projected to H by their encoders — the block itself is the same in all four.

``position_offset`` is RoBERTa's (fairseq's) convention: positions start at ``padding_idx + 1``
(2) rather than 0, so a table of ``max_length`` rows holds ``max_length - offset`` positions.

The sub-module names (``token``, ``position.embedding``, ``segment``, ``norm``) are the keys of
saved lmlab folders and of the Hugging Face key maps in :mod:`lmlab.interop.hf_bert`.

Not here: GPT's token + position sum (no segments, no LN; ``models/gpt.py``), the Transformer's
scaled sinusoidal sum (``models/transformer.py``), ALBERT's and ELECTRA's E -> H projections.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import UsageError
from .positional import LearnedPositions


class TokenPositionSegmentEmbeddings(nn.Module):
    """``forward(input_ids (B, T), segment_ids (B, T) | None) -> (B, T, d_embedding)``.

    ``segment_ids=None`` means every token is in segment 0. The padding token's vector starts at
    zero and gets no gradient (``nn.Embedding``'s ``padding_idx``).
    """

    def __init__(self, vocab_size: int, d_embedding: int, max_length: int, type_vocab_size: int,
                 pad_token_id: int, eps: float, dropout: float, position_offset: int = 0) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, d_embedding, padding_idx=pad_token_id)
        self.position = LearnedPositions(max_length, d_embedding)
        self.segment = nn.Embedding(type_vocab_size, d_embedding)
        self.norm = nn.LayerNorm(d_embedding, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.position_offset = position_offset
        self.max_length = max_length

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None) -> Tensor:
        T = input_ids.shape[1]
        if T + self.position_offset > self.max_length:
            raise UsageError(f"sequence of {T} tokens is longer than the model's "
                             f"{self.max_length - self.position_offset} positions")
        positions = torch.arange(self.position_offset, T + self.position_offset, device=input_ids.device)
        segment_ids = torch.zeros_like(input_ids) if segment_ids is None else segment_ids
        h = self.token(input_ids) + self.position(positions[None, :]) + self.segment(segment_ids)  # (B, T, E)
        return self.dropout(self.norm(h))
