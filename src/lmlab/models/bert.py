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

The blocks shared with ALBERT and ELECTRA come from ``nn/``: the embeddings
(:class:`~lmlab.nn.embeddings.TokenPositionSegmentEmbeddings`), the post-LN layer
(:func:`~lmlab.nn.attention.post_ln_encoder_layer`), the MLM head (:class:`~lmlab.nn.heads.MLMHead`)
and the N(0, 0.02) initialiser (:func:`~lmlab.nn.init.normal_init`).

The pretraining models expose their heads as named methods, so an objective calls the ones it
needs on the encoder's output: ``mlm_logits(h, selected)``, ``sentence_logits(pooled)`` and, on
:class:`SpanBertForPreTraining` only, ``sbo_logits(h, selected, left, right)``. The MLM output
layer (H × V, the largest matrix) is applied only at the selected positions (``selected`` (B, T)
bool -> (N, V) logits): about 15% of the tokens, where computing it at every position would be
~40% of the forward FLOPs at V = 8k, H = 256.

Presets: ``bert-base``/``bert-large``/``bert-tiny`` (segments, NSP head), ``roberta-base`` (no
segments beyond one type, positions offset by 2 as in fairseq/HF, no NSP head — byte-level BPE and
dynamic masking are data/objective choices, see ``objectives/``), ``spanbert-base`` (no NSP; the
model class with the SBO head is :class:`SpanBertForPreTraining`). Checkpoints:
:meth:`save_pretrained` / :meth:`from_pretrained` (config.json + model.safetensors); Hugging Face
folders through :mod:`lmlab.interop.hf_bert` (SpanBERT's SBO head has no Hugging Face class).

Not here: ALBERT (``albert.py``: factorized embeddings and sharing), ELECTRA (``electra.py``),
masking rules and losses (``objectives/``), fine-tuning heads (``tasks/classification.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import config as cfg
from .. import pretrained
from ..errors import ConfigError, UsageError
from ..nn.attention import padding_mask, post_ln_encoder_layer
from ..nn.embeddings import TokenPositionSegmentEmbeddings
from ..nn.heads import MLMHead, PretrainingOutput
from ..nn.init import normal_init


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
    # SpanBERT: True in the config of a SpanBertForPreTraining (which sets it), so that a saved
    # folder of family "bert" is rebuilt with its SBO head; BertForPreTraining never builds one.
    span_boundary_head: bool = False
    sbo_max_positions: int = 32            # SpanBERT: relative positions inside a span the SBO can embed

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
        if self.sbo_max_positions <= 0:
            raise ConfigError(f"bert config: sbo_max_positions must be positive, got {self.sbo_max_positions}")


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


class Bert(nn.Module):
    """The encoder: ``forward(input_ids, segment_ids, attention_mask) -> (h_L (B, T, H), pooled (B, H))``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embeddings = TokenPositionSegmentEmbeddings(
            config.vocab_size, config.d_model, config.max_length, config.type_vocab_size, config.pad_token_id,
            config.layer_norm_eps, config.dropout, position_offset=config.position_offset)
        self.layers = nn.ModuleList(
            post_ln_encoder_layer(config.d_model, config.n_heads, config.d_ff, config.activation, config.dropout,
                                  config.attn_dropout, config.layer_norm_eps) for _ in range(config.n_layers))
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
        h = self.embeddings(input_ids, segment_ids)
        for layer in self.layers:
            h = layer(h, mask=mask)
        pooled = torch.tanh(self.pooler(h[:, 0]))  # [CLS]
        return h, pooled


# --------------------------------------------------------------------------- heads


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


def _mlm_at(mlm: MLMHead, h: Tensor, selected: Tensor | None, embedding: Tensor) -> Tensor:
    """The MLM head at the selected positions (B, T) bool -> (N, V), or everywhere (B, T, V)."""
    return mlm(h if selected is None else h[selected], embedding)


def _sentence_at(sentence: nn.Linear | None, pooled: Tensor) -> Tensor:
    if sentence is None:
        raise UsageError("this model has no sentence head (NSP / SOP): build it with sentence_head=True")
    return sentence(pooled)  # (B, H) -> (B, 2)


def _flops_per_token(c: BertConfig, seq_len: int, mask_rate: float) -> float:
    """Training FLOPs per token: 6 × (encoder matmul parameters + MLM output at mask_rate) + attention."""
    per_layer = 4 * c.d_model * c.d_model + 2 * c.d_model * c.d_ff
    dense = c.n_layers * per_layer + mask_rate * (c.d_model * c.d_model + c.d_model * c.vocab_size)
    attention = c.n_layers * 2 * seq_len * c.d_model  # QK^T and AV, per token
    return 6.0 * dense + 6.0 * attention


class _MaskedLM(pretrained.PretrainedMixin, nn.Module):
    """What BERT's and SpanBERT's pretraining models share: the encoder, the tied MLM head, the
    optional NSP/SOP head, and the named head methods. Each subclass adds its own heads and then
    initialises every weight once (``normal_init``), so the draw order is the paper model's."""

    config_class = BertConfig

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.mlm = MLMHead(config.d_model, config.d_model, config.vocab_size, config.activation,
                           config.layer_norm_eps)
        self.sentence = nn.Linear(config.d_model, 2) if config.sentence_head else None

    @property
    def encoder(self) -> Bert:
        return self.bert

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder protocol: (hidden (B, T, H), pooled [CLS] (B, H))."""
        return self.bert.encode(input_ids, attention_mask, segment_ids)

    def mlm_logits(self, h: Tensor, selected: Tensor | None = None) -> Tensor:
        """h (B, T, H), ``selected`` (B, T) bool -> (N, V) logits there (None: everywhere, (B, T, V))."""
        return _mlm_at(self.mlm, h, selected, self.bert.embeddings.token.weight)

    def sentence_logits(self, pooled: Tensor) -> Tensor:
        """pooled [CLS] (B, H) -> NSP / SOP logits (B, 2)."""
        return _sentence_at(self.sentence, pooled)

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                selected: Tensor | None = None) -> PretrainingOutput:
        """The encoder, the MLM head and the sentence head if built; ``selected`` as in :meth:`mlm_logits`."""
        h, pooled = self.bert(input_ids, segment_ids, attention_mask)
        sentence_logits = self.sentence_logits(pooled) if self.sentence is not None else None
        return PretrainingOutput(self.mlm_logits(h, selected), sentence_logits, h)

    def flops_per_token(self, seq_len: int, mask_rate: float = 0.15) -> float:
        """Training FLOPs per token (SpanBERT's SBO head, two H x H layers at the span tokens, left out)."""
        return _flops_per_token(self.config, seq_len, mask_rate)


class BertForPreTraining(_MaskedLM):
    """BERT + MLM head (+ NSP/SOP head when ``sentence_head``); RoBERTa is this with its preset.

    Heads: :meth:`mlm_logits`, :meth:`sentence_logits`, on the outputs of :attr:`encoder`;
    ``forward`` runs the encoder and both heads (what the Hugging Face parity tests compare).
    """

    family = "bert"

    @classmethod
    def _from_state(cls, config: BertConfig, tensors: dict, where: str):
        # SpanBERT folders of lmlab 0.2 were family "bert" with span_boundary_head = true: rebuild
        # those as the SpanBERT they are (today's are family "spanbert").
        if config.span_boundary_head:
            return SpanBertForPreTraining._from_state(config, tensors, where)
        return super()._from_state(config, tensors, where)

    def __init__(self, config: BertConfig) -> None:
        if config.span_boundary_head:
            raise ConfigError("span_boundary_head = true is SpanBERT's: build SpanBertForPreTraining "
                              "(registry family 'spanbert')")
        super().__init__(config)
        normal_init(self, config.init_std)


class SpanBertForPreTraining(_MaskedLM):
    """SpanBERT (Joshi et al., 2020): BERT + MLM head + the span boundary head (+ NSP head when
    ``sentence_head``; the paper drops it, preset ``spanbert-base``).

    Heads: :meth:`mlm_logits`, :meth:`sentence_logits` and :meth:`sbo_logits`. Saved as family
    "spanbert" (with ``span_boundary_head = true`` in its config, which this class sets; folders
    of lmlab 0.2 were family "bert" and :class:`BertForPreTraining` rebuilds those as this class).
    """

    family = "spanbert"

    def __init__(self, config: BertConfig) -> None:
        config = config if config.span_boundary_head else replace(config, span_boundary_head=True)
        super().__init__(config)
        self.sbo = SpanBoundaryHead(config.d_model, config.vocab_size, config.sbo_max_positions,
                                    config.layer_norm_eps)
        normal_init(self, config.init_std)

    def sbo_logits(self, h: Tensor, selected: Tensor, left: Tensor, right: Tensor) -> Tensor:
        """SBO predictions of the selected tokens (N, V) from their spans' boundary states.

        h (B, T, H); ``selected`` (B, T) bool, the span tokens; ``left``/``right`` (B, T) the
        positions s - 1 and e + 1 of each token's span (``objectives.masking.span_boundaries``).
        """
        rows, cols = torch.nonzero(selected, as_tuple=True)                   # (N,) each, row-major as h[selected]
        left, right = left[selected], right[selected]                         # (N,) positions
        return self.sbo(h[rows, left], h[rows, right], cols - left - 1, self.bert.embeddings.token.weight)
