"""T5: the text-to-text encoder-decoder Transformer (Raffel et al., 2020, "Exploring the Limits of
Transfer Learning with a Unified Text-to-Text Transformer", §2.1).

What differs from the Transformer of Vaswani et al. (``models/transformer.py``):

    norm (§2.1):       RMSNorm, scale only: y = x / sqrt(mean(x²) + ε) · g (variance in fp32), pre-norm:
                       x = x + Dropout(Sublayer(RMSNorm(x))), and a final RMSNorm + dropout on each stack
    linears:           no biases anywhere (q, k, v, o, the FFN)
    attention:         softmax(q k^T + b) v — no 1/√d_k; the initialisation (q ~ N(0, (C·d_kv)^-1/2))
                       does the scaling instead
    positions (§2.1):  no position embeddings; a learned scalar b_h(bucket(j - i)) per head is added to
                       every self-attention score. 32 buckets, max distance 128: half of each side's
                       buckets are exact offsets, the rest log-spaced up to 128 (everything beyond
                       shares the last bucket). Bidirectional in the encoder (16 buckets per sign),
                       causal in the decoder (32 buckets over the past). One table per stack, used by
                       every layer of that stack (HF keeps it in block 0); none in cross-attention.
    output:            logits = (h · C^-1/2) E^T when the embedding E is tied to the output (v1.0);
                       an untied ``lm_head`` and no rescaling in v1.1 / Flan-T5
    FFN:               ReLU (v1.0), or gated-GELU (v1.1): FFN(x) = (gelu_tanh(x W_0) ⊙ x W_1) W_o

The bias reaches attention through the additive score-bias seam of :func:`lmlab.nn.attention.attention`.
With a KV cache the decoder's bias is computed for the new queries' absolute positions
(``past .. past + T``) against every cached key (the bug of transformers#16216 and candle#899).

:class:`T5ForConditionalGeneration` is the model with its LM head; :func:`T5Steps` serves its
decoder one position at a time to :mod:`lmlab.tasks.generation` (through the shared
:class:`lmlab.nn.decoding.EncoderDecoderSteps`). Span corruption (the
pretraining objective) lives in :mod:`lmlab.objectives.span`, Hugging Face folders in
:mod:`lmlab.interop.hf_t5`.

Not here: Adafactor, the fp16 clamping HF applies (T5 was trained in bfloat16; lmlab runs it in
fp32 or bf16 autocast), the encoder-only T5, mixture-of-experts or mT5/ByT5 vocabularies.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``C`` d_model, ``H`` heads,
``D`` d_kv (per-head width), ``V`` vocabulary.
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
    LayerKV,
    attention,
    causal_mask,
    combine_masks,
    masked_bias,
    optional_key_mask,
)
from ..nn.decoding import EncoderDecoderSteps
from ..nn.dropout import Dropout, dropout
from ..nn.norms import PreNormResidual, RMSNorm


@dataclass
class T5Config:
    vocab_size: int = 32128              # 32000 SentencePiece pieces + 100 sentinels, padded to 128·k
    d_model: int = 512
    d_kv: int = 64                       # per-head width (H · D need not equal C)
    d_ff: int = 2048
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    feed_forward: Literal["relu", "gated-gelu"] = "relu"
    relative_buckets: int = 32
    relative_max_distance: int = 128
    dropout: float = 0.1
    layer_norm_eps: float = 1e-6
    tie_embeddings: bool = True          # lm_head = the shared embedding (v1.0); False: own lm_head (v1.1)
    scale_decoder_output: bool = True    # h · C^-1/2 before the LM head (v1.0, with tied embeddings)
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0      # T5 starts decoding from <pad>
    max_length: int = 512                # longest input / output the tasks allow (positions are relative)

    def validate(self) -> None:
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "n_heads", "n_encoder_layers", "n_decoder_layers",
                     "relative_buckets", "relative_max_distance", "max_length"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"t5 config: {name} must be positive, got {getattr(self, name)}")
        if self.relative_buckets % 4:
            raise ConfigError(f"t5 config: relative_buckets must be a multiple of 4, got {self.relative_buckets}")
        if self.feed_forward not in ("relu", "gated-gelu"):
            raise ConfigError(f"t5 config: feed_forward must be 'relu' or 'gated-gelu', got {self.feed_forward!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"t5 config: dropout must be in [0, 1), got {self.dropout}")
        for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ConfigError(f"t5 config: {name}={getattr(self, name)} outside the vocabulary of {self.vocab_size}")


_V11 = {"feed_forward": "gated-gelu", "tie_embeddings": False, "scale_decoder_output": False, "dropout": 0.0}
PRESETS: dict[str, dict] = {
    # v1.0 (the paper's checkpoints): ReLU FFN, tied embeddings, decoder output scaled
    "t5-small": {"d_model": 512, "d_kv": 64, "d_ff": 2048, "n_heads": 8, "n_encoder_layers": 6, "n_decoder_layers": 6},
    "t5-base": {"d_model": 768, "d_kv": 64, "d_ff": 3072, "n_heads": 12, "n_encoder_layers": 12,
                "n_decoder_layers": 12},
    # v1.1 / Flan-T5: gated-GELU FFN, untied lm_head, no dropout in pretraining
    "t5-v1_1-small": {**_V11, "d_model": 512, "d_kv": 64, "d_ff": 1024, "n_heads": 6, "n_encoder_layers": 8,
                      "n_decoder_layers": 8},
    "t5-v1_1-base": {**_V11, "d_model": 768, "d_kv": 64, "d_ff": 2048, "n_heads": 12, "n_encoder_layers": 12,
                     "n_decoder_layers": 12},
    "t5-tiny": {"d_model": 64, "d_kv": 16, "d_ff": 256, "n_heads": 4, "n_encoder_layers": 2, "n_decoder_layers": 2},
    "t5-v1_1-tiny": {**_V11, "d_model": 64, "d_kv": 16, "d_ff": 128, "n_heads": 4, "n_encoder_layers": 2,
                     "n_decoder_layers": 2},
}


# --------------------------------------------------------------------------- relative position bias


def relative_position_bucket(relative_position: Tensor, bidirectional: bool, num_buckets: int = 32,
                             max_distance: int = 128) -> Tensor:
    """bucket(j - i) for key j and query i (Raffel et al., §2.1; mesh-tensorflow's rule).

    Bidirectional: half the buckets for j > i (offset by num_buckets/2), half for j <= i.
    Causal: only j <= i counts; future offsets fall into bucket 0 (and are masked anyway).
    Within a side, distances below max_exact = buckets/2 get their own bucket, larger ones
    max_exact + ⌊log(d / max_exact) / log(max_distance / max_exact) · (buckets - max_exact)⌋,
    capped at the last bucket.
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log-spaced buckets; distance 0 never reaches the log (is_small), clamp only keeps log finite
    large = max_exact + (torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """b[h, i, j] = table[bucket(j - i), h]: (1, H, T, S) for queries at ``offset .. offset + T``.

    Every offset at or beyond ``max_distance`` shares the last bucket of its side, so the buckets of
    the offsets -max_distance .. max_distance are computed once (``lookup``, a buffer outside the
    state dict) and any j - i is clamped into that range. A decoding step (one query at position
    ``offset`` over the keys 0 .. offset) then reads one contiguous slice of ``lookup``.
    """

    def __init__(self, n_heads: int, bidirectional: bool, num_buckets: int, max_distance: int) -> None:
        super().__init__()
        self.bidirectional, self.num_buckets, self.max_distance = bidirectional, num_buckets, max_distance
        self.table = nn.Embedding(num_buckets, n_heads)
        offsets = torch.arange(-max_distance, max_distance + 1)
        self.register_buffer("lookup", relative_position_bucket(offsets, bidirectional, num_buckets, max_distance),
                             persistent=False)  # (2·max_distance + 1,): bucket of j - i = lookup[j - i + max_distance]

    def forward(self, T: int, S: int, offset: int = 0) -> Tensor:
        D = self.max_distance
        if T == 1 and offset <= D and S - 1 - offset <= D:  # j - i = -offset .. S - 1 - offset, all within ±D
            bucket = self.lookup[D - offset:D - offset + S]                  # (S,)
            return self.table(bucket).t()[None, :, None, :]                  # (S, H) -> (1, H, 1, S)
        device = self.table.weight.device
        query = torch.arange(offset, offset + T, device=device)[:, None]  # (T, 1) absolute query positions
        key = torch.arange(S, device=device)[None, :]                   # (1, S)
        bucket = self.lookup[(key - query).clamp(-D, D) + D]              # (T, S)
        return self.table(bucket).permute(2, 0, 1).unsqueeze(0)          # (T, S, H) -> (1, H, T, S)


# --------------------------------------------------------------------------- blocks


class T5Attention(nn.Module):
    """softmax(q k^T + bias) v, no 1/√D, no biases; self-attention or (with ``memory``) cross-attention.

    ``cache``: a :class:`LayerKV`; self-attention appends this call's keys/values to it, cross-attention
    projects ``memory`` once and then only reads it.
    """

    def __init__(self, d_model: int, n_heads: int, d_kv: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.d_kv, self.dropout = n_heads, d_kv, dropout
        inner = n_heads * d_kv
        self.q = nn.Linear(d_model, inner, bias=False)
        self.k = nn.Linear(d_model, inner, bias=False)
        self.v = nn.Linear(d_model, inner, bias=False)
        self.o = nn.Linear(inner, d_model, bias=False)

    def _heads(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.n_heads, self.d_kv).transpose(1, 2)  # (B, L, H·D) -> (B, H, L, D)

    def forward(self, x: Tensor, mask: Tensor | None = None, attn_bias: Tensor | None = None,
                is_causal: bool = False, memory: Tensor | None = None, cache: LayerKV | None = None) -> Tensor:
        B, T, _ = x.shape
        q = self._heads(self.q(x))
        if memory is not None and cache is not None and cache.static:
            k, v = cache.k, cache.v
        else:
            source = x if memory is None else memory
            k, v = self._heads(self.k(source)), self._heads(self.v(source))  # (B, H, S, D)
            if cache is not None and memory is not None:
                cache.set_static(k, v)
            elif cache is not None:
                k, v = cache.append(k, v)                                      # (B, H, past + T, D)
        dropout_p = self.dropout if self.training else 0.0
        if attn_bias is not None and attn_bias.requires_grad and mask is None and not is_causal:
            # training the bias table: SDPA has no kernel that returns a gradient for its float mask and
            # falls back to a math path with extra passes over the scores (· 1.0, a "safe" softmax)
            scores = torch.matmul(q, k.transpose(-2, -1)) + attn_bias                    # (B, H, T, S)
            weights = dropout(torch.softmax(scores.float(), dim=-1).to(q.dtype), dropout_p)
            y = torch.matmul(weights, v)                                                  # (B, H, T, D)
        else:
            y = attention(q, k, v, mask=mask, attn_bias=attn_bias, is_causal=is_causal, dropout_p=dropout_p,
                          scale=1.0)
        return self.o(y.transpose(1, 2).reshape(B, T, self.n_heads * self.d_kv))  # (B, H, T, D) -> (B, T, H·D)


class T5FeedForward(nn.Module):
    """ReLU: relu(x W_i) W_o.  Gated-GELU (v1.1): (gelu_tanh(x W_i0) ⊙ x W_i1) W_o.  Dropout inside."""

    def __init__(self, d_model: int, d_ff: int, kind: str, dropout: float) -> None:
        super().__init__()
        self.gated = kind == "gated-gelu"
        if self.gated:
            self.wi_0 = nn.Linear(d_model, d_ff, bias=False)
            self.wi_1 = nn.Linear(d_model, d_ff, bias=False)
        else:
            self.wi = nn.Linear(d_model, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d_model, bias=False)
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        if self.gated:
            h = F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x)
        else:
            h = F.relu(self.wi(x))
        return self.wo(self.dropout(h))


class T5Block(nn.Module):
    """x = x + Drop(SelfAttn(N(x))); [x = x + Drop(CrossAttn(N(x), z))]; x = x + Drop(FFN(N(x)))."""

    def __init__(self, config: T5Config, cross: bool) -> None:
        super().__init__()
        C, p = config.d_model, config.dropout

        def residual() -> PreNormResidual:
            return PreNormResidual(RMSNorm(C, eps=config.layer_norm_eps), p)

        self.self_attn = T5Attention(C, config.n_heads, config.d_kv, p)
        self.self_attn_residual = residual()
        self.cross_attn = T5Attention(C, config.n_heads, config.d_kv, p) if cross else None
        self.cross_attn_residual = residual() if cross else None
        self.feed_forward = T5FeedForward(C, config.d_ff, config.feed_forward, p)
        self.feed_forward_residual = residual()

    def forward(self, x: Tensor, mask: Tensor | None, attn_bias: Tensor | None, is_causal: bool = False,
                memory: Tensor | None = None, memory_bias: Tensor | None = None,
                cache: LayerKV | None = None, cross_cache: LayerKV | None = None) -> Tensor:
        """``memory_bias``: the cross-attention's key mask as an additive float mask (0 / -inf, (B, 1, 1, S))."""
        x = self.self_attn_residual(
            x, lambda h: self.self_attn(h, mask=mask, attn_bias=attn_bias, is_causal=is_causal, cache=cache))
        if self.cross_attn is not None:
            x = self.cross_attn_residual(
                x, lambda h: self.cross_attn(h, attn_bias=memory_bias, memory=memory, cache=cross_cache))
        return self.feed_forward_residual(x, self.feed_forward)


class T5Stack(nn.Module):
    """Embedded tokens -> N blocks sharing one relative bias -> RMSNorm -> dropout."""

    def __init__(self, config: T5Config, decoder: bool) -> None:
        super().__init__()
        n = config.n_decoder_layers if decoder else config.n_encoder_layers
        self.decoder = decoder
        self.relative_bias = RelativePositionBias(config.n_heads, bidirectional=not decoder,
                                                  num_buckets=config.relative_buckets,
                                                  max_distance=config.relative_max_distance)
        self.blocks = nn.ModuleList(T5Block(config, cross=decoder) for _ in range(n))
        self.final_norm = RMSNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None, memory: Tensor | None = None,
                memory_mask: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """x (B, T, C) embedded; ``mask`` the encoder's key mask (B, 1, 1, T); the decoder is causal."""
        T = x.shape[1]
        past = cache.length if cache is not None else 0
        # the bias, the key mask and the causal mask merged once per stack (as HF's position_bias), not per layer
        bias = self.relative_bias(T, past + T, offset=past)  # (1, H, T, past + T)
        if self.decoder and T > 1:
            mask = combine_masks(mask, causal_mask(T, past + T, device=x.device))
        if mask is not None:
            bias = masked_bias(bias, mask)                   # (B | 1, H, T, past + T), -inf where masked
        # the cross-attention's key mask as an additive float mask, converted once (SDPA would do it per layer)
        memory_bias = None if memory_mask is None else masked_bias(x.new_zeros(()), memory_mask)
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            x = block(x, mask=None, attn_bias=bias, memory=memory, memory_bias=memory_bias,
                      cache=cache.layers[i] if cache is not None else None,
                      cross_cache=cache.cross_layers[i] if cache is not None else None)
        return self.dropout(self.final_norm(x))


# --------------------------------------------------------------------------- the model


class T5ForConditionalGeneration(pretrained.PretrainedMixin, nn.Module):
    """(source ids (B, S), decoder input ids (B, T)) -> logits (B, T, V); one shared embedding.

    ``labels_to_decoder_inputs(labels)`` shifts targets right behind ``decoder_start_token_id``
    (T5's teacher forcing); ``loss_sum(src, labels)`` is Σ cross-entropy over the non-pad labels.
    """

    family = "t5"
    config_class = T5Config

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, decoder=False)
        self.decoder = T5Stack(config, decoder=True)
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Mesh-TF's initialisation (as HF's ``_init_weights``): N(0, 1) embeddings, q ~ (C·D)^-1/2,
        k, v ~ C^-1/2, o ~ (H·D)^-1/2, FFN in ~ C^-1/2, out ~ d_ff^-1/2, bias tables ~ C^-1/2."""
        c = self.config
        nn.init.normal_(self.shared.weight, std=1.0)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=c.d_model ** -0.5)
        for module in self.modules():
            if isinstance(module, T5Attention):
                nn.init.normal_(module.q.weight, std=(c.d_model * c.d_kv) ** -0.5)
                nn.init.normal_(module.k.weight, std=c.d_model ** -0.5)
                nn.init.normal_(module.v.weight, std=c.d_model ** -0.5)
                nn.init.normal_(module.o.weight, std=(c.n_heads * c.d_kv) ** -0.5)
            elif isinstance(module, T5FeedForward):
                for name in ("wi", "wi_0", "wi_1"):
                    if hasattr(module, name):
                        nn.init.normal_(getattr(module, name).weight, std=c.d_model ** -0.5)
                nn.init.normal_(module.wo.weight, std=c.d_ff ** -0.5)
            elif isinstance(module, RelativePositionBias):
                nn.init.normal_(module.table.weight, std=c.d_model ** -0.5)

    # ------------------------------------------------------------------ pieces

    def source_key_mask(self, src_ids: Tensor) -> Tensor:
        """(B, S) ids -> (B, 1, 1, S): True at real (non-pad) source tokens."""
        return (src_ids != self.config.pad_token_id)[:, None, None, :]

    def encode(self, src_ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, None]:
        """z = Enc(x): (B, S) -> ((B, S, C), None); ``mask`` (B, S) 1 = real token (default: ids != pad)."""
        key_mask = self.source_key_mask(src_ids) if mask is None else mask.bool()[:, None, None, :]
        return self.encoder(self.shared(src_ids), mask=combine_masks(optional_key_mask(key_mask))), None

    def decode(self, decoder_ids: Tensor, memory: Tensor, memory_mask: Tensor,
               cache: KVCache | None = None) -> Tensor:
        """Decoder states (B, T, C) for decoder inputs (B, T) given z (B, S, C) and its key mask (B, 1, 1, S)."""
        return self.decoder(self.shared(decoder_ids), memory=memory, memory_mask=memory_mask, cache=cache)

    def logits(self, states: Tensor) -> Tensor:
        if self.config.scale_decoder_output:
            states = states * self.config.d_model ** -0.5
        weight = self.shared.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(states, weight)  # (B, T, C) -> (B, T, V)

    def forward(self, src_ids: Tensor, decoder_ids: Tensor, src_mask: Tensor | None = None) -> Tensor:
        memory, _ = self.encode(src_ids, src_mask)
        key_mask = self.source_key_mask(src_ids) if src_mask is None else src_mask.bool()[:, None, None, :]
        return self.logits(self.decode(decoder_ids, memory, optional_key_mask(key_mask)))

    def labels_to_decoder_inputs(self, labels: Tensor) -> Tensor:
        """(B, T) targets -> (B, T) decoder inputs: [start, y_1, ..., y_{T-1}] (pad stays pad)."""
        start = labels.new_full((labels.shape[0], 1), self.config.decoder_start_token_id)
        return torch.cat([start, labels[:, :-1]], dim=1)

    def loss_sum(self, src_ids: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(Σ cross-entropy over the non-pad labels, their number); labels (B, T), pad = ignored."""
        logits = self(src_ids, self.labels_to_decoder_inputs(labels))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                               ignore_index=self.config.pad_token_id, reduction="sum")  # (B·T, V) vs (B·T,)
        return loss, (labels != self.config.pad_token_id).sum()

    def generation_steps(self, src_ids: Tensor, src_mask: Tensor | None = None) -> EncoderDecoderSteps:
        """This model's decoder over an encoded source batch, for :mod:`lmlab.tasks.generation`."""
        return T5Steps(self, src_ids, src_mask)


def T5Steps(model: T5ForConditionalGeneration, src_ids: Tensor,  # noqa: N802 - reads as the class it returns
            src_mask: Tensor | None = None) -> EncoderDecoderSteps:
    """The decoder of a :class:`T5ForConditionalGeneration` with one encoded source batch, as a
    generation Decoder (:class:`lmlab.nn.decoding.EncoderDecoderSteps`): the encoder runs once;
    decoding starts from ``decoder_start_token_id`` (pad); the bias follows the cache's length."""
    if src_ids.dim() != 2 or src_ids.shape[1] == 0:
        raise UsageError(f"source ids must be (batch, length) with length >= 1, got {tuple(src_ids.shape)}")
    config = model.config
    memory, _ = model.encode(src_ids, src_mask)                                    # (B, S, C)
    key_mask = model.source_key_mask(src_ids) if src_mask is None else src_mask.bool()[:, None, None, :]
    return EncoderDecoderSteps(memory, optional_key_mask(key_mask), model.decode, model.logits, config.n_decoder_layers,
                               config.max_length, config.decoder_start_token_id, config.eos_token_id,
                               config.pad_token_id)
