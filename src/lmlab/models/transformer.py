"""The encoder-decoder Transformer (Vaswani et al., 2017, "Attention Is All You Need").

    encoder (§3.1):  z = Enc(x):  N x [ self-attention -> FFN ],        each sub-layer LN(x + Sublayer(x))
    decoder (§3.1):  y = Dec(z):  N x [ masked self-attention -> attention over z -> FFN ]
    embeddings (§3.4): E(x) · √d_model + PE(pos)  (sinusoidal, §3.5), dropout P_drop on the sum (§5.4)
    output (§3.4):   softmax(h W_E^T): the target embedding is the pre-softmax matrix; with a shared
                     vocabulary the source embedding is the same matrix too ("three-way" sharing)
    loss (§5.4):     cross-entropy against label-smoothed targets, ε_ls = 0.1
    schedule (§5.3): lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) — the Trainer's ``noam``

Post-LN residual blocks as in the paper (``norm_position="pre"`` gives the pre-LN variant of
Xiong et al., 2020, with a final LN after each stack). Decoding (greedy or beam search with a
length penalty) is :func:`lmlab.tasks.generation.translate`: :func:`EncoderDecoderSteps` holds the
encoder's output and serves the decoder one position at a time with a KV cache, the
cross-attention keys/values computed once per source.

Not here: checkpoint averaging, the big model's 4.5M-pair WMT training, byte-pair encoding of
the data (the tokenizers' job), relative positions (Shaw et al.) or any later variant.
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
from ..nn.attention import KVCache, TransformerLayer, combine_masks, cross_attention, self_attention
from ..nn.decoding import EncoderDecoderSteps as DecoderSteps
from ..nn.feedforward import FeedForward, activation_module
from ..nn.norms import PostNormResidual, PreNormResidual
from ..nn.positional import SinusoidalPositions


@dataclass
class TransformerConfig:
    src_vocab_size: int = 37000
    tgt_vocab_size: int = 37000
    share_embeddings: bool = True          # one matrix for source, target and pre-softmax (needs one vocab)
    tie_output: bool = True                # target embedding = pre-softmax matrix
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1                   # P_drop: residual and embedding dropout
    attn_dropout: float = 0.0
    activation: Literal["relu", "gelu", "gelu_tanh"] = "relu"
    norm_position: Literal["pre", "post"] = "post"
    layer_norm_eps: float = 1e-5
    max_length: int = 512                  # rows of the sinusoid table (source and target)
    label_smoothing: float = 0.1
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2

    def validate(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "n_encoder_layers",
                     "n_decoder_layers", "d_ff", "max_length"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"transformer config: {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"transformer config: d_model={self.d_model} not divisible by n_heads={self.n_heads}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ConfigError("transformer config: share_embeddings needs src_vocab_size == tgt_vocab_size "
                              f"(got {self.src_vocab_size} and {self.tgt_vocab_size})")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"transformer config: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if not 0 <= getattr(self, name) < self.tgt_vocab_size:
                raise ConfigError(f"transformer config: {name}={getattr(self, name)} outside the target vocabulary")


PRESETS: dict[str, dict] = {
    "base": {"d_model": 512, "n_heads": 8, "n_encoder_layers": 6, "n_decoder_layers": 6, "d_ff": 2048, "dropout": 0.1},
    "big": {"d_model": 1024, "n_heads": 16, "n_encoder_layers": 6, "n_decoder_layers": 6, "d_ff": 4096, "dropout": 0.3},
    "tiny": {"d_model": 64, "n_heads": 4, "n_encoder_layers": 2, "n_decoder_layers": 2, "d_ff": 256, "dropout": 0.1},
}


def build_layer(config: TransformerConfig, cross: bool) -> TransformerLayer:
    """An encoder layer (cross=False) or a decoder layer (cross=True) from the config's choices."""
    residual = PostNormResidual if config.norm_position == "post" else PreNormResidual

    def wrap() -> nn.Module:
        return residual(nn.LayerNorm(config.d_model, eps=config.layer_norm_eps), config.dropout)

    attn = self_attention(config.d_model, config.n_heads, dropout=config.attn_dropout, fused=False)
    ffn = FeedForward(config.d_model, config.d_ff, activation_module(config.activation))
    if not cross:
        return TransformerLayer(attn, wrap(), ffn, wrap())
    return TransformerLayer(attn, wrap(), ffn, wrap(),
                            cross_attn=cross_attention(config.d_model, config.n_heads, dropout=config.attn_dropout),
                            cross_attn_residual=wrap())


class Transformer(pretrained.PretrainedMixin, nn.Module):
    """Encoder-decoder: (source ids (B, S), target-input ids (B, T)) -> logits (B, T, V_tgt).

    ``save_pretrained(folder)`` / ``Transformer.from_pretrained(folder)`` come from
    :class:`lmlab.pretrained.PretrainedMixin` (config.json + model.safetensors).
    """

    family = "transformer"
    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        C = config.d_model
        self.tgt_embedding = nn.Embedding(config.tgt_vocab_size, C, padding_idx=config.pad_token_id)
        self.src_embedding = (None if config.share_embeddings
                              else nn.Embedding(config.src_vocab_size, C, padding_idx=config.pad_token_id))
        self.positions = SinusoidalPositions(config.max_length, C)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(build_layer(config, cross=False) for _ in range(config.n_encoder_layers))
        self.decoder = nn.ModuleList(build_layer(config, cross=True) for _ in range(config.n_decoder_layers))
        pre = config.norm_position == "pre"
        self.encoder_norm = nn.LayerNorm(C, eps=config.layer_norm_eps) if pre else nn.Identity()
        self.decoder_norm = nn.LayerNorm(C, eps=config.layer_norm_eps) if pre else nn.Identity()
        self.output = None if config.tie_output else nn.Linear(C, config.tgt_vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform matrices, zero biases; embeddings N(0, d^-1/2) so that E·√d has unit scale."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=self.config.d_model ** -0.5)
                with torch.no_grad():
                    module.weight[self.config.pad_token_id].zero_()

    # ------------------------------------------------------------------ pieces

    def _embed(self, embedding: nn.Embedding, ids: Tensor, start: int = 0) -> Tensor:
        B, T = ids.shape
        positions = torch.arange(start, start + T, device=ids.device).expand(B, T)
        if start + T > self.config.max_length:
            raise UsageError(f"sequence of {start + T} tokens exceeds max_length={self.config.max_length}")
        return self.dropout(embedding(ids) * math.sqrt(self.config.d_model) + self.positions(positions))

    def source_key_mask(self, src_ids: Tensor) -> Tensor:
        """(B, S) ids -> (B, 1, 1, S): True at real (non-pad) source tokens."""
        return (src_ids != self.config.pad_token_id)[:, None, None, :]

    def encode(self, src_ids: Tensor) -> Tensor:
        """z = Enc(x): (B, S) -> (B, S, C); padding positions are never attended to."""
        embedding = self.src_embedding if self.src_embedding is not None else self.tgt_embedding
        mask = combine_masks(self.source_key_mask(src_ids))
        x = self._embed(embedding, src_ids)
        for layer in self.encoder:
            x = layer(x, mask=mask)
        return self.encoder_norm(x)

    def decode(self, tgt_ids: Tensor, memory: Tensor, memory_mask: Tensor,
               cache: KVCache | None = None) -> Tensor:
        """Decoder states (B, T, C) for target inputs (B, T) given z (B, S, C) and its key mask.

        Target padding only ever follows the real tokens (right padding), so the causal mask alone
        keeps real positions from seeing it.
        """
        start = cache.length if cache is not None else 0
        T = tgt_ids.shape[1]
        x = self._embed(self.tgt_embedding, tgt_ids, start)
        for i, layer in enumerate(self.decoder):
            x = layer(x, is_causal=T > 1, memory=memory, memory_mask=memory_mask,
                      cache=cache.layers[i] if cache is not None else None,
                      cross_cache=cache.cross_layers[i] if cache is not None else None)
        return self.decoder_norm(x)

    def logits(self, states: Tensor) -> Tensor:
        weight = self.tgt_embedding.weight if self.output is None else self.output.weight
        return F.linear(states, weight)  # (B, T, C) -> (B, T, V)

    def forward(self, src_ids: Tensor, tgt_ids: Tensor) -> Tensor:
        memory = self.encode(src_ids)
        return self.logits(self.decode(tgt_ids, memory, self.source_key_mask(src_ids)))

    def loss_sum(self, src_ids: Tensor, tgt_in: Tensor, tgt_out: Tensor) -> tuple[Tensor, Tensor]:
        """(Σ label-smoothed cross-entropy over non-pad targets, number of those targets)."""
        logits = self(src_ids, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                               ignore_index=self.config.pad_token_id, reduction="sum",
                               label_smoothing=self.config.label_smoothing)
        return loss, (tgt_out != self.config.pad_token_id).sum()

    def loss(self, src_ids: Tensor, tgt_in: Tensor, tgt_out: Tensor) -> Tensor:
        total, count = self.loss_sum(src_ids, tgt_in, tgt_out)
        return total / count.clamp(min=1)

    def generation_steps(self, src_ids: Tensor, src_mask: Tensor | None = None) -> EncoderDecoderSteps:
        """This model's decoder over an encoded source batch, for :mod:`lmlab.tasks.generation`.

        Padding comes from the pad id; a ``src_mask`` (B, S) must say the same (it is checked).
        """
        if src_mask is not None and not torch.equal(src_mask.bool(), src_ids != self.config.pad_token_id):
            raise UsageError("the Transformer masks its source by pad_token_id; src_mask must equal src_ids != pad")
        return EncoderDecoderSteps(self, src_ids)


def EncoderDecoderSteps(model: Transformer, src_ids: Tensor) -> DecoderSteps:  # noqa: N802 - kept as named
    """The decoder of a :class:`Transformer` with one encoded source batch, as a generation Decoder
    (:class:`lmlab.nn.decoding.EncoderDecoderSteps`): the encoder runs once here; decoding starts
    from ``<s>``."""
    config = model.config
    return DecoderSteps(model.encode(src_ids), model.source_key_mask(src_ids), model.decode, model.logits,
                        config.n_decoder_layers, config.max_length, config.bos_token_id, config.eos_token_id,
                        config.pad_token_id)
