"""BERT: a bidirectional Transformer encoder pretrained with masked language modelling.

Papers: Devlin et al. (2019), "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding"; Liu et al. (2019), "RoBERTa: A Robustly Optimized BERT Pretraining Approach";
Joshi et al. (2020), "SpanBERT: Improving Pre-training by Representing and Predicting Spans".

    h_0 = E_token[x] + E_position[t] + E_segment[s],  then LayerNorm and dropout
    h_l = PostLN-TransformerLayer(h_{l-1}),  l = 1..L          (LN after each residual add)
    pooled = tanh(W_p h_L[CLS] + b_p)                           (the pooler, for NSP / classification)
    MLM:  P(x_i | x̃) = softmax(LN(GELU(W_t h_L,i + b_t)) E_token^T + b_o),  only at selected i
    NSP:  P(IsNext | A, B) = softmax(W_c pooled + b_c)          (SOP for ALBERT uses the same head)
    SBO (SpanBERT §3.2):  for token x_i in span (s, e),
          y_i = f(h_{s-1}, h_{e+1}, p_{i-s+1}),   f = LN(GELU(W_2 · LN(GELU(W_1 [h_{s-1}; h_{e+1}; p])))),
          P(x_i) = softmax(y_i E_token^T + b_sbo)

The MLM output layer (H × V, the largest matrix) is applied only at the selected positions
(``selected`` (B, T) bool -> (N, V) logits): about 15% of the tokens, where computing it at every
position would be ~40% of the forward FLOPs at V = 8k, H = 256.

Presets: ``bert-base``/``bert-large``/``bert-tiny`` (segments, NSP head), ``roberta-base`` (no
segments beyond one type, positions offset by 2 as in fairseq/HF, no NSP head — byte-level BPE and
dynamic masking are data/objective choices, see ``objectives/``), ``spanbert-base`` (no NSP, SBO
head). Checkpoints: :meth:`save_pretrained` / :meth:`from_pretrained` (config.json +
model.safetensors); Hugging Face folders through :mod:`lmlab.interop.hf_bert`.

Not here: ALBERT (``albert.py``: factorized embeddings and sharing), ELECTRA (``electra.py``),
masking rules and losses (``objectives/``), fine-tuning heads (``tasks/classification.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import config as cfg
from .. import pretrained
from ..errors import ConfigError, UsageError
from ..nn.attention import TransformerLayer, padding_mask, self_attention
from ..nn.feedforward import FeedForward, activation_module
from ..nn.norms import PostNormResidual
from ..nn.positional import LearnedPositions


@dataclass
class BertConfig:
    vocab_size: int = 30522
    d_model: int = 768                     # H
    n_layers: int = 12                     # L
    n_heads: int = 12                      # A
    d_ff: int = 3072                       # 4H
    max_length: int = 512                  # learned positions
    position_offset: int = 0               # RoBERTa/fairseq: positions start at padding_idx + 1 = 2
    type_vocab_size: int = 2               # segments A/B (RoBERTa: 1)
    activation: Literal["relu", "gelu", "gelu_tanh"] = "gelu"
    dropout: float = 0.1                   # embedding and residual dropout
    attn_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    pad_token_id: int = 0
    sentence_head: bool = True             # NSP (BERT) / SOP classifier on the pooled [CLS]
    span_boundary_head: bool = False       # SpanBERT's SBO
    sbo_max_positions: int = 32            # relative positions inside a span the SBO can embed

    def validate(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_length", "type_vocab_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"bert config: {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"bert config: d_model={self.d_model} not divisible by n_heads={self.n_heads}")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"bert config: {name} must be in [0, 1), got {getattr(self, name)}")
        if self.position_offset < 0 or self.position_offset >= self.max_length:
            raise ConfigError(f"bert config: position_offset={self.position_offset} outside [0, max_length)")


PRESETS: dict[str, dict] = {
    "bert-base": {},
    "bert-large": {"d_model": 1024, "n_layers": 24, "n_heads": 16, "d_ff": 4096},
    "bert-tiny": {"d_model": 128, "n_layers": 2, "n_heads": 2, "d_ff": 512},
    "roberta-base": {"vocab_size": 50265, "max_length": 514, "position_offset": 2, "type_vocab_size": 1,
                         "layer_norm_eps": 1e-5, "pad_token_id": 1, "sentence_head": False},
    "spanbert-base": {"vocab_size": 28996, "sentence_head": False, "span_boundary_head": True},
}


def preset(name: str, **overrides) -> BertConfig:
    """A BertConfig from a preset name, with field overrides (an unknown field is a ConfigError)."""
    from ..errors import closest

    if name not in PRESETS:
        raise ConfigError(f"unknown bert preset {name!r}{closest(name, PRESETS)}; known: {', '.join(PRESETS)}")
    config = cfg.from_dict(BertConfig, {**PRESETS[name], **overrides}, where=f"bert preset {name}")
    config.validate()
    return config


# --------------------------------------------------------------------------- the encoder


class BertEmbeddings(nn.Module):
    """h_0 = LN(E_token[x] + E_position[t + offset] + E_segment[s]), then dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.position = LearnedPositions(config.max_length, config.d_model)
        self.segment = nn.Embedding(config.type_vocab_size, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.position_offset = config.position_offset
        self.max_length = config.max_length

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None) -> Tensor:
        T = input_ids.shape[1]
        if T + self.position_offset > self.max_length:
            raise UsageError(f"sequence of {T} tokens is longer than the model's {self.max_length - self.position_offset} positions")
        positions = torch.arange(self.position_offset, T + self.position_offset, device=input_ids.device)
        segment_ids = torch.zeros_like(input_ids) if segment_ids is None else segment_ids
        h = self.token(input_ids) + self.position(positions[None, :]) + self.segment(segment_ids)  # (B, T, H)
        return self.dropout(self.norm(h))


def bert_layer(d_model: int, n_heads: int, d_ff: int, activation: str, dropout: float, attn_dropout: float,
               eps: float) -> TransformerLayer:
    """One post-LN encoder layer from the shared blocks (separate Q/K/V as in BERT's checkpoints)."""
    return TransformerLayer(
        self_attention(d_model, n_heads, dropout=attn_dropout, fused=False),
        PostNormResidual(nn.LayerNorm(d_model, eps=eps), dropout),
        FeedForward(d_model, d_ff, activation_module(activation)),
        PostNormResidual(nn.LayerNorm(d_model, eps=eps), dropout),
    )


def init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialiser: N(0, 0.02) weights, zero biases, LayerNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Bert(nn.Module):
    """The encoder: ``forward(input_ids, segment_ids, attention_mask) -> (h_L (B, T, H), pooled (B, H))``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(
            bert_layer(config.d_model, config.n_heads, config.d_ff, config.activation, config.dropout,
                       config.attn_dropout, config.layer_norm_eps) for _ in range(config.n_layers))
        self.pooler = nn.Linear(config.d_model, config.d_model)
        init_weights(self, config.init_std)

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None,
                attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mask = padding_mask(attention_mask) if attention_mask is not None else None  # (B, 1, 1, T)
        h = self.embeddings(input_ids, segment_ids)
        for layer in self.layers:
            h = layer(h, mask=mask)
        pooled = torch.tanh(self.pooler(h[:, 0]))  # [CLS]
        return h, pooled


# --------------------------------------------------------------------------- heads


class MLMHead(nn.Module):
    """logits = LN(act(W_t h + b_t)) E^T + b_o, with E the (tied) token embedding passed at call time."""

    def __init__(self, d_model: int, d_embedding: int, vocab_size: int, activation: str, eps: float) -> None:
        super().__init__()
        self.transform = nn.Linear(d_model, d_embedding)
        self.activation = activation_module(activation)
        self.norm = nn.LayerNorm(d_embedding, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:  # (N, H) -> (N, V)
        return F.linear(self.norm(self.activation(self.transform(h))), embedding, self.bias)


class SpanBoundaryHead(nn.Module):
    """SpanBERT's SBO: y_i = FFN([h_{s-1}; h_{e+1}; p_{i-s+1}]) (two GELU+LN layers), tied output."""

    def __init__(self, d_model: int, vocab_size: int, max_positions: int, eps: float) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.position = nn.Embedding(max_positions, d_model)
        self.fc1 = nn.Linear(3 * d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.fc2 = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, left: Tensor, right: Tensor, offset: Tensor, embedding: Tensor) -> Tensor:
        """left, right (N, H) boundary states, offset (N,) 0-based position inside the span -> (N, V)."""
        p = self.position(offset.clamp(0, self.max_positions - 1))
        h = torch.cat([left, right, p], dim=-1)                               # (N, 3H)
        h = self.norm1(F.gelu(self.fc1(h)))
        h = self.norm2(F.gelu(self.fc2(h)))
        return F.linear(h, embedding, self.bias)


class PretrainingOutput(NamedTuple):
    mlm_logits: Tensor | None        # (N, V) at the selected positions (or (B, T, V) when none given)
    sentence_logits: Tensor | None   # (B, 2) NSP / SOP
    sbo_logits: Tensor | None        # (N, V) SpanBERT boundary predictions
    hidden: Tensor                   # (B, T, H)


class _SaveLoad(pretrained.PretrainedMixin):
    """save_pretrained / from_pretrained through :mod:`lmlab.io` (config.json + model.safetensors)."""

    config_class = BertConfig


class BertForPreTraining(_SaveLoad, nn.Module):
    """BERT + MLM head (+ NSP/SOP head) (+ SBO head), per the config's switches."""

    family = "bert"

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.mlm = MLMHead(config.d_model, config.d_model, config.vocab_size, config.activation,
                           config.layer_norm_eps)
        self.sentence = nn.Linear(config.d_model, 2) if config.sentence_head else None
        self.sbo = None
        if config.span_boundary_head:
            self.sbo = SpanBoundaryHead(config.d_model, config.vocab_size, config.sbo_max_positions,
                                        config.layer_norm_eps)
        init_weights(self, config.init_std)

    @property
    def encoder(self) -> Bert:
        return self.bert

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                selected: Tensor | None = None, span_left: Tensor | None = None,
                span_right: Tensor | None = None) -> PretrainingOutput:
        """``selected`` (B, T) bool: where to compute MLM logits (None: everywhere, (B, T, V)).

        ``span_left``/``span_right`` (B, T) boundary positions (``masking.span_boundaries``) turn on
        the SBO predictions at the selected positions.
        """
        h, pooled = self.bert(input_ids, segment_ids, attention_mask)
        embedding = self.bert.embeddings.token.weight
        if selected is None:
            mlm_logits = self.mlm(h, embedding)                               # (B, T, V)
        else:
            mlm_logits = self.mlm(h[selected], embedding)                     # (N, H) -> (N, V)
        sentence_logits = self.sentence(pooled) if self.sentence is not None else None
        sbo_logits = None
        if self.sbo is not None and span_left is not None and selected is not None:
            rows = torch.nonzero(selected, as_tuple=True)[0]                  # (N,) row of each target
            left, right = span_left[selected], span_right[selected]           # (N,) positions
            cols = torch.nonzero(selected, as_tuple=True)[1]
            sbo_logits = self.sbo(h[rows, left], h[rows, right], cols - left - 1, embedding)
        return PretrainingOutput(mlm_logits, sentence_logits, sbo_logits, h)

    def flops_per_token(self, seq_len: int, mask_rate: float = 0.15) -> float:
        """Training FLOPs per token: 6 × (encoder matmul parameters + MLM output at mask_rate) + attention."""
        c = self.config
        per_layer = 4 * c.d_model * c.d_model + 2 * c.d_model * c.d_ff
        dense = c.n_layers * per_layer + mask_rate * (c.d_model * c.d_model + c.d_model * c.vocab_size)
        attention = c.n_layers * 2 * seq_len * c.d_model  # QK^T and AV, per token
        return 6.0 * dense + 6.0 * attention


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters (a shared tensor counted once)."""
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
