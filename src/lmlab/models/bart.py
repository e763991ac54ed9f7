"""BART (Lewis et al., 2020, "BART: Denoising Sequence-to-Sequence Pre-training for Natural Language
Generation, Translation, and Comprehension"), the encoder-decoder that MASS (Song et al., 2019) also runs on.

    embeddings (§2.1, fairseq ``bart_large_architecture``):
        h_0 = Dropout(LN_emb(E[x_t] · s + P[t + 2]))       s = √d if scale_embedding else 1 (BART: 1)
                                                          learned positions, offset 2 (fairseq's padding_idx + 1)
    encoder:  N x [ x = LN(x + Dropout(SelfAttn(x)));   x = LN(x + Dropout(FFN_gelu(x))) ]      post-LN
    decoder:  N x [ masked self-attention -> attention over the encoder's states -> FFN ], post-LN
    output:   logits = h E^T + b_final      (the tied embedding matrix, ``final_logits_bias`` b_final)
    decoder input: the target shifted right, starting with ``decoder_start_token_id`` (``</s>`` = 2),
              as Hugging Face's ``shift_tokens_right``.

The pretraining objective (reconstruct the document from a noised copy: token masking, deletion,
text infilling, sentence permutation, document rotation) is :mod:`lmlab.objectives.denoise`, and so is
MASS's (predict one masked fragment); this file is only the network.

The interface is the plain :class:`lmlab.models.transformer.Transformer`'s, so decoding, the
objectives and the tasks treat both alike: ``encode(src_ids) -> z``, ``source_key_mask(src_ids)``,
``decode(tgt_ids, z, z_mask, cache=None, positions=None)``, ``logits(states)``, ``forward(src, tgt)``.
:meth:`~BartForConditionalGeneration.generation_steps` (the shared :class:`lmlab.nn.decoding.EncoderDecoderSteps`,
also ``BartSteps(model, src)``) serves the decoder one position at a time with a KV cache to
:func:`lmlab.tasks.generation.generate` / ``beam_search``, starting from ``decoder_start_token_id``.
``decode`` also takes explicit decoder position ids, which MASS needs (its decoder sees only the
fragment, at the fragment's original positions).

:class:`BartForSequenceClassification` (§3.1): the same input goes to encoder and decoder, and the
decoder state at the last ``</s>`` of each row feeds a tanh classification head, as the paper and
Hugging Face's ``BartForSequenceClassification`` do (every row must hold the same number of ``</s>``).

Hugging Face ``BartForConditionalGeneration`` / ``BartForSequenceClassification`` folders convert in
both directions through :mod:`lmlab.interop.hf_bart`, logits equal within 1e-5.

Not here: mBART's pre-LN and final layer norms, forced BOS/EOS during generation (a generation
setting, not the model's), the large model's "no dropout for the last 10% of steps" (a training schedule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import pretrained
from ..errors import ConfigError, UsageError
from ..nn.attention import (
    KVCache,
    TransformerLayer,
    combine_masks,
    cross_attention,
    optional_key_mask,
    self_attention,
)
from ..nn.decoding import EncoderDecoderSteps
from ..nn.dropout import Dropout
from ..nn.feedforward import FeedForward, activation_module
from ..nn.norms import PostNormResidual
from ..nn.positional import LearnedPositions

POSITION_OFFSET = 2  # fairseq's learned positions start at padding_idx + 1 = 2; HF keeps two extra rows


@dataclass
class BartConfig:
    vocab_size: int = 50265
    d_model: int = 1024
    n_heads: int = 16
    n_encoder_layers: int = 12
    n_decoder_layers: int = 12
    d_ff: int = 4096
    activation: Literal["relu", "gelu", "gelu_tanh"] = "gelu"
    dropout: float = 0.1                 # residual and embedding dropout
    attn_dropout: float = 0.0            # on the attention weights (the authors' command: 0.1)
    activation_dropout: float = 0.0      # inside the FFN, after the activation
    max_length: int = 1024               # positions a side can hold (the table has max_length + 2 rows)
    layer_norm_eps: float = 1e-5
    scale_embedding: bool = False        # BART: no √d scaling (mBART: True)
    init_std: float = 0.02
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    decoder_start_token_id: int = 2      # </s>, as the released checkpoints (transformers#5212)
    mask_token_id: int | None = None     # <mask>, for the noising objectives (50264 in bart-large's vocabulary)
    num_labels: int = 3                  # BartForSequenceClassification only
    classifier_dropout: float = 0.0

    @property
    def src_vocab_size(self) -> int:     # the plain Transformer's names, so encoder-decoder code reads either
        return self.vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        return self.vocab_size

    def validate(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "n_encoder_layers", "n_decoder_layers", "d_ff",
                     "max_length", "num_labels"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"bart config: {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"bart config: d_model={self.d_model} not divisible by n_heads={self.n_heads}")
        for name in ("dropout", "attn_dropout", "activation_dropout", "classifier_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"bart config: {name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "mask_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ConfigError(f"bart config: {name}={value} outside the vocabulary of {self.vocab_size}")


PRESETS: dict[str, dict] = {
    "bart-large": {"d_model": 1024, "n_heads": 16, "n_encoder_layers": 12, "n_decoder_layers": 12, "d_ff": 4096},
    "bart-base": {"d_model": 768, "n_heads": 12, "n_encoder_layers": 6, "n_decoder_layers": 6, "d_ff": 3072},
    # MASS (Song et al., 2019, §4.1): 6+6 layers, 1024 wide, 8 heads, GELU, XLM's post-LN with an embedding LN
    "mass-base": {"d_model": 1024, "n_heads": 8, "n_encoder_layers": 6, "n_decoder_layers": 6, "d_ff": 4096},
    # init_std 0.07, not BART's 0.02: 0.02 is tuned for d = 768 (0.02 x sqrt(768) = 0.55); at d = 64 it
    # leaves the network too small to learn (a 2+2 x 64 BART, lmlab's and HF's alike, cannot learn to copy
    # 8 tokens in 600 steps at 0.02 and copies them exactly at 0.04-0.1); 0.55 / sqrt(64) = 0.07 keeps the ratio
    "tiny": {"d_model": 64, "n_heads": 4, "n_encoder_layers": 2, "n_decoder_layers": 2, "d_ff": 256,
             "max_length": 256, "init_std": 0.07},
}


def shift_tokens_right(ids: Tensor, pad_token_id: int, decoder_start_token_id: int) -> Tensor:
    """Decoder inputs from targets: (B, T) -> (B, T), [start, y_1, ..., y_{T-1}]; -100 labels become pad."""
    shifted = ids.new_full(ids.shape, pad_token_id)
    shifted[:, 1:] = ids[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def _layer(config: BartConfig, cross: bool) -> TransformerLayer:
    """A post-LN encoder layer (cross=False) or decoder layer (cross=True)."""

    def wrap() -> PostNormResidual:
        return PostNormResidual(nn.LayerNorm(config.d_model, eps=config.layer_norm_eps), config.dropout)

    attn = self_attention(config.d_model, config.n_heads, dropout=config.attn_dropout, fused=False)
    ffn = FeedForward(config.d_model, config.d_ff, activation_module(config.activation),
                      hidden_dropout=config.activation_dropout)
    if not cross:
        return TransformerLayer(attn, wrap(), ffn, wrap())
    return TransformerLayer(attn, wrap(), ffn, wrap(),
                            cross_attn=cross_attention(config.d_model, config.n_heads, dropout=config.attn_dropout),
                            cross_attn_residual=wrap())


class BartStack(nn.Module):
    """Positions + ``layernorm_embedding`` + N post-LN layers: one side (encoder or decoder) of BART."""

    def __init__(self, config: BartConfig, cross: bool) -> None:
        super().__init__()
        self.positions = LearnedPositions(config.max_length + POSITION_OFFSET, config.d_model)
        self.layernorm_embedding = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(_layer(config, cross) for _ in range(config.n_decoder_layers if cross
                                                                         else config.n_encoder_layers))
        self.dropout = Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.max_length = config.max_length

    def _check(self, last: int) -> None:
        if last >= self.max_length:
            raise UsageError(f"position {last} exceeds the model's max_length={self.max_length}")

    def embed(self, token_vectors: Tensor, positions: Tensor) -> Tensor:
        """Dropout(LN(E[x]·s + P[t + 2])): token vectors (B, T, C), positions (B, T) or (T,) from 0."""
        self._check(int(positions.max()))
        return self.dropout(self.layernorm_embedding(token_vectors + self.positions(positions + POSITION_OFFSET)))

    def embed_from(self, token_vectors: Tensor, start: int) -> Tensor:
        """:meth:`embed` at the consecutive positions start .. start + T - 1: a slice of the table, no gather."""
        T = token_vectors.shape[1]
        self._check(start + T - 1)
        rows = self.positions.weight[start + POSITION_OFFSET:start + POSITION_OFFSET + T]  # (T, C)
        return self.dropout(self.layernorm_embedding(token_vectors + rows))


class BartModel(nn.Module):
    """The shared embedding, the encoder and the decoder (Hugging Face's ``model.`` prefix)."""

    def __init__(self, config: BartConfig) -> None:
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.encoder = BartStack(config, cross=False)
        self.decoder = BartStack(config, cross=True)
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """E[x]·s: (B, T) -> (B, T, C); BART's s = 1 costs nothing."""
        vectors = self.shared(ids)
        return vectors if self.embed_scale == 1.0 else vectors * self.embed_scale

    def source_key_mask(self, src_ids: Tensor) -> Tensor:
        """(B, S) ids -> (B, 1, 1, S): True at real (non-pad) source tokens."""
        return (src_ids != self.config.pad_token_id)[:, None, None, :]

    def encode(self, src_ids: Tensor) -> Tensor:
        """z = Enc(x): (B, S) -> (B, S, C); padding is never attended to."""
        x = self.encoder.embed_from(self.embed_tokens(src_ids), 0)
        mask = combine_masks(optional_key_mask(self.source_key_mask(src_ids)))
        for layer in self.encoder.layers:
            x = layer(x, mask=mask)
        return x

    def decode(self, tgt_ids: Tensor, memory: Tensor, memory_mask: Tensor | None,
               cache: KVCache | None = None, positions: Tensor | None = None) -> Tensor:
        """Decoder states (B, T, C) for decoder inputs (B, T) given z (B, S, C) and its key mask (B, 1, 1, S).

        ``positions`` (B, T), when given, are the decoder's position ids (MASS: the fragment's own
        positions in the sentence); by default T positions counted on from the cache's length.
        Targets are right-padded, so the causal mask alone keeps real positions from padding.
        """
        T = tgt_ids.shape[1]
        if positions is None:
            x = self.decoder.embed_from(self.embed_tokens(tgt_ids), cache.length if cache is not None else 0)
        else:
            x = self.decoder.embed(self.embed_tokens(tgt_ids), positions)
        for i, layer in enumerate(self.decoder.layers):
            x = layer(x, is_causal=T > 1, memory=memory, memory_mask=memory_mask,
                      cache=cache.layers[i] if cache is not None else None,
                      cross_cache=cache.cross_layers[i] if cache is not None else None)
        return x


def _init_weights(module: nn.Module, std: float, pad_token_id: int) -> None:
    """N(0, std) matrices and embeddings, zero biases, the pad row zero (fairseq / HF ``_init_weights``)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
    with torch.no_grad():
        module.model.shared.weight[pad_token_id].zero_()


class _BartPretrained(pretrained.PretrainedMixin, nn.Module):
    """What both heads share: a validated config and the :class:`BartModel` under ``model.``;
    a subclass adds its head, then calls :func:`_init_weights`."""

    config_class = BartConfig

    def __init__(self, config: BartConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.model = BartModel(config)


class BartForConditionalGeneration(_BartPretrained):
    """(source ids (B, S), decoder input ids (B, T) | None) -> logits (B, T, V).

    Without decoder inputs, the source shifted right is used (Hugging Face's behaviour), which is
    what a denoising autoencoder reconstructs.
    """

    family = "bart"

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.register_buffer("final_logits_bias", torch.zeros(1, config.vocab_size))
        _init_weights(self, config.init_std, config.pad_token_id)

    # the plain Transformer's interface (models/transformer.py), so decoding and objectives treat both alike
    def source_key_mask(self, src_ids: Tensor) -> Tensor:
        return self.model.source_key_mask(src_ids)

    def encode(self, src_ids: Tensor) -> Tensor:
        return self.model.encode(src_ids)

    def decode(self, tgt_ids: Tensor, memory: Tensor, memory_mask: Tensor | None,
               cache: KVCache | None = None, positions: Tensor | None = None) -> Tensor:
        return self.model.decode(tgt_ids, memory, memory_mask, cache=cache, positions=positions)

    def logits(self, states: Tensor) -> Tensor:
        return F.linear(states, self.model.shared.weight, self.final_logits_bias[0])  # (B, T, C) -> (B, T, V)

    def generation_steps(self, src_ids: Tensor, src_mask: Tensor | None = None) -> EncoderDecoderSteps:
        """This model's decoder over an encoded source batch, for :func:`lmlab.tasks.generation.translate`
        (decoding starts from ``decoder_start_token_id``, as HF's BART). Padding comes from the pad id;
        a ``src_mask`` must say the same."""
        c = self.config
        if src_mask is not None and not torch.equal(src_mask.bool(), src_ids != c.pad_token_id):
            raise UsageError("BART masks its source by pad_token_id; src_mask must equal src_ids != pad")
        return EncoderDecoderSteps(self.encode(src_ids), optional_key_mask(self.source_key_mask(src_ids)),
                                   self.decode, self.logits,
                                   c.n_decoder_layers, c.max_length, c.decoder_start_token_id, c.eos_token_id,
                                   c.pad_token_id)

    def forward(self, src_ids: Tensor, tgt_ids: Tensor | None = None) -> Tensor:
        if tgt_ids is None:
            tgt_ids = shift_tokens_right(src_ids, self.config.pad_token_id, self.config.decoder_start_token_id)
        memory = self.encode(src_ids)
        return self.logits(self.decode(tgt_ids, memory, optional_key_mask(self.source_key_mask(src_ids))))


class BartClassificationHead(nn.Module):
    """logits = W_out · Dropout(tanh(W · Dropout(h)))  (fairseq / HF ``BartClassificationHead``)."""

    def __init__(self, d_model: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(d_model, num_labels)

    def forward(self, h: Tensor) -> Tensor:  # (B, C) -> (B, num_labels)
        return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(h)))))


class BartForSequenceClassification(_BartPretrained):
    """ids (B, T) -> (B, num_labels) from the decoder state at each row's last ``</s>`` (§3.1)."""

    family = "bart-classifier"

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.classification_head = BartClassificationHead(config.d_model, config.num_labels,
                                                          config.classifier_dropout)
        _init_weights(self, config.init_std, config.pad_token_id)

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        eos = ids == self.config.eos_token_id                                  # (B, T)
        counts = eos.sum(dim=1)
        if bool((counts == 0).any()) or bool((counts != counts[0]).any()):
            raise UsageError("BART classification: every row needs the same number (>= 1) of </s> tokens, "
                             f"got {counts.tolist()}")
        memory = self.model.encode(ids)
        tgt = shift_tokens_right(ids, self.config.pad_token_id, self.config.decoder_start_token_id)
        states = self.model.decode(tgt, memory, self.model.source_key_mask(ids))  # (B, T, C)
        B, C = states.shape[0], states.shape[-1]
        last = states[eos].view(B, -1, C)[:, -1, :]                           # (B, n_eos, C) -> (B, C)
        return self.classification_head(last)


def BartSteps(model: BartForConditionalGeneration, src_ids: Tensor) -> EncoderDecoderSteps:  # noqa: N802
    """The decoder of a BART model with one encoded source batch, as a generation ``Decoder``: the
    shared :class:`lmlab.nn.decoding.EncoderDecoderSteps` (``model.generation_steps(src_ids)``); generation
    starts from its ``start_ids()`` (``decoder_start_token_id``)."""
    return model.generation_steps(src_ids)
