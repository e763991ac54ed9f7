"""ALBERT: BERT with factorized embeddings and cross-layer parameter sharing.

Paper: Lan et al. (2020), "ALBERT: A Lite BERT for Self-supervised Learning of Language
Representations", §3.1.

    Factorized embedding parameterization:  V × H  ->  V × E  then  E × H   (E ≪ H)
        h_0 = (LN(E_token[x] + E_position[t] + E_segment[s])) W_proj + b,   E_token: (V, E), W_proj: (E, H)
        parameters: (V + P) × H  ->  (V + P) × E + E × H
        (the seed's worked example, V = 30k, P = 512, H = 1024, E = 128:
         31,244,288 -> 4,036,608; :func:`embedding_arithmetic` reproduces it from the modules)
    Cross-layer sharing: the L layers reuse the same parameters:
        all         one attention block and one FFN block for every layer (ALBERT's default)
        attention   one attention block, L FFN blocks
        ffn         L attention blocks, one FFN block
        none        L of each (BERT with factorized embeddings)
    Sentence-order prediction: the pooled [CLS] -> 2 classes (``objectives/sentence.py`` builds
    the swapped pairs). MLM head: LN(GELU(W h)) in E dimensions, then the tied E × V output.

The model differs from BERT in more than two switches (embedding size, projection, sharing,
no dropout by default), so it lives in its own file (DESIGN.md); what it shares with BERT
unchanged comes from ``nn/`` (the embeddings at size E, the MLM head, the initialiser). Sharing
saves parameters, not computation: every layer still runs (docs/bert_family.md measures it).
The heads are named methods, :meth:`AlbertForPreTraining.mlm_logits` and ``sentence_logits``.

Not here: n-gram masking (``objectives/masking.py``, ``ngram`` scheme), LAMB, SentencePiece
(use the ``unigram`` tokenizer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .. import config as cfg
from .. import pretrained
from ..errors import ConfigError, UsageError
from ..nn.attention import padding_mask, self_attention
from ..nn.embeddings import TokenPositionSegmentEmbeddings
from ..nn.feedforward import FeedForward, activation_module
from ..nn.heads import MLMHead, PretrainingOutput
from ..nn.init import count_parameters, normal_init
from ..nn.norms import PostNormResidual

SHARING_MODES = ("all", "attention", "ffn", "none")


@dataclass
class AlbertConfig:
    vocab_size: int = 30000
    d_embedding: int = 128                 # E
    d_model: int = 768                     # H
    n_layers: int = 12                     # L
    n_heads: int = 12                      # A
    d_ff: int = 3072
    max_length: int = 512
    type_vocab_size: int = 2
    sharing: Literal["all", "attention", "ffn", "none"] = "all"
    activation: Literal["relu", "gelu", "gelu_tanh"] = "gelu_tanh"
    dropout: float = 0.0                   # ALBERT removes dropout
    attn_dropout: float = 0.0
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    pad_token_id: int = 0
    sentence_head: bool = True             # SOP

    def validate(self) -> None:
        for name in ("vocab_size", "d_embedding", "d_model", "n_layers", "n_heads", "d_ff", "max_length"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"albert config: {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"albert config: d_model={self.d_model} not divisible by n_heads={self.n_heads}")
        if self.sharing not in SHARING_MODES:
            raise ConfigError(f"albert config: sharing must be one of {', '.join(SHARING_MODES)}, got {self.sharing!r}")


PRESETS: dict[str, dict] = {
    "albert-base": {},
    "albert-large": {"d_model": 1024, "n_layers": 24, "n_heads": 16, "d_ff": 4096},
    "albert-xxlarge": {"d_model": 4096, "n_layers": 12, "n_heads": 64, "d_ff": 16384},
    "albert-tiny": {"d_embedding": 64, "d_model": 128, "n_layers": 2, "n_heads": 2, "d_ff": 512},
}


def albert_embeddings(config: AlbertConfig) -> TokenPositionSegmentEmbeddings:
    """LN(E_token[x] + E_position[t] + E_segment[s]) in E dimensions (projected to H by the encoder)."""
    return TokenPositionSegmentEmbeddings(config.vocab_size, config.d_embedding, config.max_length,
                                          config.type_vocab_size, config.pad_token_id, config.layer_norm_eps,
                                          config.dropout)


class AttentionBlock(nn.Module):
    """x -> LN(x + Dropout(MultiHead(x)))."""

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__()
        self.attn = self_attention(config.d_model, config.n_heads, dropout=config.attn_dropout, fused=False)
        self.residual = PostNormResidual(nn.LayerNorm(config.d_model, eps=config.layer_norm_eps), config.dropout)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.residual(x, lambda h: self.attn(h, mask=mask))


class FFNBlock(nn.Module):
    """x -> LN(x + Dropout(FFN(x)))."""

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__()
        self.ffn = FeedForward(config.d_model, config.d_ff, activation_module(config.activation))
        self.residual = PostNormResidual(nn.LayerNorm(config.d_model, eps=config.layer_norm_eps), config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x, self.ffn)


class Albert(nn.Module):
    """``forward(input_ids, segment_ids, attention_mask) -> (h_L (B, T, H), pooled (B, H))``."""

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        L = config.n_layers
        self.embeddings = albert_embeddings(config)
        self.project = nn.Linear(config.d_embedding, config.d_model)       # E -> H
        n_attention = 1 if config.sharing in ("all", "attention") else L
        n_ffn = 1 if config.sharing in ("all", "ffn") else L
        self.attention_blocks = nn.ModuleList(AttentionBlock(config) for _ in range(n_attention))
        self.ffn_blocks = nn.ModuleList(FFNBlock(config) for _ in range(n_ffn))
        self.pooler = nn.Linear(config.d_model, config.d_model)
        normal_init(self, config.init_std)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder protocol: (hidden (B, T, H), pooled [CLS] (B, H)); ``segment_ids`` (B, T) 0 for
        text a, 1 for text b of a pair (None: one segment)."""
        return self(input_ids, segment_ids, attention_mask)

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None,
                attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mask = padding_mask(attention_mask) if attention_mask is not None else None  # (B, 1, 1, T)
        h = self.project(self.embeddings(input_ids, segment_ids))                 # (B, T, E) -> (B, T, H)
        for i in range(self.config.n_layers):
            h = self.attention_blocks[i % len(self.attention_blocks)](h, mask)
            h = self.ffn_blocks[i % len(self.ffn_blocks)](h)
        return h, torch.tanh(self.pooler(h[:, 0]))


class AlbertForPreTraining(pretrained.PretrainedMixin, nn.Module):
    """ALBERT + MLM head (E-dimensional transform, tied output) + SOP head.

    Heads: :meth:`mlm_logits`, :meth:`sentence_logits`, on the outputs of :attr:`encoder`;
    ``forward`` runs the encoder and both heads.
    """

    family = "albert"
    config_class = AlbertConfig

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__()
        self.config = config
        self.albert = Albert(config)
        self.mlm = MLMHead(config.d_model, config.d_embedding, config.vocab_size, config.activation,
                           config.layer_norm_eps)
        self.sentence = nn.Linear(config.d_model, 2) if config.sentence_head else None
        normal_init(self, config.init_std)

    @property
    def encoder(self) -> Albert:
        return self.albert

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder protocol: (hidden (B, T, H), pooled [CLS] (B, H))."""
        return self.albert.encode(input_ids, attention_mask, segment_ids)

    def mlm_logits(self, h: Tensor, selected: Tensor | None = None) -> Tensor:
        """h (B, T, H), ``selected`` (B, T) bool -> (N, V) logits there (None: everywhere, (B, T, V))."""
        return self.mlm(h if selected is None else h[selected], self.albert.embeddings.token.weight)

    def sentence_logits(self, pooled: Tensor) -> Tensor:
        """pooled [CLS] (B, H) -> SOP logits (B, 2)."""
        if self.sentence is None:
            raise UsageError("this ALBERT has no sentence-order head: build it with sentence_head=True")
        return self.sentence(pooled)

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                selected: Tensor | None = None) -> PretrainingOutput:
        """The encoder and every head this model has; ``selected`` as in :meth:`mlm_logits`."""
        h, pooled = self.albert(input_ids, segment_ids, attention_mask)
        sentence_logits = self.sentence_logits(pooled) if self.sentence is not None else None
        return PretrainingOutput(self.mlm_logits(h, selected), sentence_logits, h)


def embedding_arithmetic(vocab_size: int = 30000, max_length: int = 512, d_model: int = 1024,
                         d_embedding: int = 128) -> dict[str, int]:
    """The seed's embedding parameter counts, read off the modules (token + position tables, projection).

    BERT: (V + P) × H;  ALBERT: (V + P) × E + E × H (the projection's bias not counted, as in the seed).
    BERT's embeddings are the same block at E = H.
    """
    bert = TokenPositionSegmentEmbeddings(vocab_size, d_model, max_length, type_vocab_size=2, pad_token_id=0,
                                          eps=1e-12, dropout=0.0)
    bert_count = bert.token.weight.numel() + bert.position.weight.numel()
    albert_config = AlbertConfig(vocab_size=vocab_size, max_length=max_length, d_model=d_model,
                                 d_embedding=d_embedding, n_heads=1, d_ff=1, n_layers=1)
    emb = albert_embeddings(albert_config)
    projection = nn.Linear(d_embedding, d_model)
    albert_count = emb.token.weight.numel() + emb.position.weight.numel() + projection.weight.numel()
    return {"bert": bert_count, "albert": albert_count, "saved": bert_count - albert_count}


def sharing_parameter_counts(config: AlbertConfig) -> dict[str, int]:
    """Total parameters of the encoder under each sharing mode (same sizes otherwise)."""
    out = {}
    for mode in SHARING_MODES:
        out[mode] = count_parameters(Albert(AlbertConfig(**{**cfg.to_dict(config), "sharing": mode})))
    return out
