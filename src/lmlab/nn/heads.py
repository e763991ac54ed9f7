"""The masked-language-model output head shared by BERT, RoBERTa, SpanBERT and ALBERT.

    P(x_i | x̃) = softmax(LN(act(W_t h_i + b_t)) E_token^T + b_o)

Devlin et al. (2019), "BERT", §3.1 and Appendix A.1 (the "transform" layer before the tied output
embedding, as in the released checkpoints); ALBERT (Lan et al., 2020, §3.1) runs the same head
into its embedding size E (``d_embedding``) so that the tied output is the V × E token table.

The output matrix is the token embedding itself, passed at call time (weight tying, Press & Wolf
2017), so the head owns only the transform, its LayerNorm and the output bias. It is applied to
whatever rows it is given: the model picks the selected positions first ((N, H) -> (N, V)),
which at V = 8k, H = 256 saves ~40% of the forward FLOPs against every position.

:class:`PretrainingOutput` is what the BERT-family pretraining models' ``forward`` returns.

Not here: ELECTRA's generator head (its own key names, ``models/electra.py``), SpanBERT's span
boundary head (``models/bert.py``: the paper's own contribution), the NSP / SOP classifier (one
``nn.Linear`` on the pooled [CLS]).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .feedforward import activation_module


class MLMHead(nn.Module):
    """logits = LN(act(W_t h + b_t)) E^T + b_o, with E the (tied) token embedding passed at call time."""

    def __init__(self, d_model: int, d_embedding: int, vocab_size: int, activation: str, eps: float) -> None:
        super().__init__()
        self.transform = nn.Linear(d_model, d_embedding)
        self.activation = activation_module(activation)
        self.norm = nn.LayerNorm(d_embedding, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:  # (N, H) -> (N, V), or (B, T, H) -> (B, T, V)
        return F.linear(self.norm(self.activation(self.transform(h))), embedding, self.bias)


class PretrainingOutput(NamedTuple):
    mlm_logits: Tensor               # (N, V) at the selected positions (or (B, T, V) when none given)
    sentence_logits: Tensor | None   # (B, 2) NSP / SOP, None without a sentence head
    hidden: Tensor                   # (B, T, H) the encoder's last layer
