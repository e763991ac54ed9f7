"""Scaled dot-product and multi-head attention (Vaswani et al., 2017, "Attention Is All You Need", §3.2).

    Attention(Q, K, V) = softmax(Q K^T / √d_k) V                     (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,  head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

What this file gives:

- :func:`attention` — eq. 1 through ``torch.nn.functional.scaled_dot_product_attention`` (the fast
  fused kernel), and :func:`attention_math`, the same thing written out op by op; the tests hold the
  two equal to 1e-6 and use the math path to look at the attention weights.
- Masks, all boolean with ``True`` meaning "may attend": :func:`causal_mask` (no position sees the
  future), :func:`padding_mask` (no position attends to padding), and :func:`combine_masks`.
- Two seams for the papers that change the scores or the positions without forking this file:

      softmax(Q K^T / √d_k + bias) V          ``attn_bias``: a float tensor broadcastable to
                                              (B, H, T, S), added to the scores before the
                                              softmax (T5's relative position bias, ALiBi)
      q, k = positions(q, k, offset)           ``positions``: a module given to
                                              :class:`MultiHeadAttention`, applied to the heads'
                                              queries and keys (rotary embeddings, as torchtune's
                                              ``pos_embeddings``)

  The boolean mask and the bias go into SDPA as one float mask, ``bias`` where the mask allows
  and -inf where it does not (:func:`masked_bias`).
- :class:`MultiHeadAttention`, whose Q/K/V projection is a sub-module passed in:
  :class:`FusedQKV` (one ``d -> 3d`` matmul, self-attention only, the GPT-2 layout) or
  :class:`SeparateQKV` (three matrices; keys and values may come from another sequence, which
  is cross-attention).
- :class:`KVCache` / :class:`LayerKV`: keys and values of earlier positions kept in buffers
  preallocated to the cache's ``max_length``, so that generating one more token costs one
  position, not the whole prefix.
- :class:`TransformerLayer`, put together from the sub-modules it is given, and
  :func:`post_ln_encoder_layer`, the post-LN encoder layer BERT and ELECTRA build from it.

What it does not do: the position biases and relative positions themselves (T5's bucketed bias,
Transformer-XL's relative attention, XLNet's two-stream attention are their papers' own
contributions and live in their model files; they plug in through the seams above or, for
two-stream attention, are their own module), nor attention dropout inside the math path beyond
plain ``F.dropout`` on the weights.

Shapes: ``B`` batch, ``H`` heads, ``T`` query length, ``S`` key length, ``C`` model width,
``D = C / H`` per-head width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from .dropout import dropout
from .feedforward import FeedForward, activation_module
from .norms import PostNormResidual

# --------------------------------------------------------------------------- eq. 1


def attention_math(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                   attn_bias: Tensor | None = None, is_causal: bool = False, dropout_p: float = 0.0,
                   scale: float | None = None, return_weights: bool = False):
    """softmax(q k^T · scale + attn_bias + mask) v, op by op (the reference for :func:`attention`).

    q: (B, H, T, D), k and v: (B, H, S, D); ``mask`` boolean, broadcastable to (B, H, T, S),
    True = may attend; ``attn_bias`` float, broadcastable to (B, H, T, S), added to the scaled
    scores. ``is_causal`` aligns the causal mask to the bottom right (the last query sees every
    key), which is what a query block appended after a cached prefix needs.
    ``scale`` defaults to 1/√d_k; pass 1.0 to see what the paper's scaling prevents.
    """
    T, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, T, S)
    if attn_bias is not None:
        scores = scores + attn_bias
    if is_causal:
        mask = combine_masks(mask, causal_mask(T, S, device=q.device))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v  # (B, H, T, D)
    return (out, weights) if return_weights else out


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, attn_bias: Tensor | None = None,
              is_causal: bool = False, dropout_p: float = 0.0, scale: float | None = None) -> Tensor:
    """Eq. 1 through the fused SDPA kernel; same arguments and result as :func:`attention_math`.

    SDPA's own ``is_causal`` aligns to the top left, which is right only when T == S; for a query
    block after a cached prefix (T < S), or together with a mask or a bias, the bottom-right
    causal mask is built explicitly. A bias goes in as SDPA's float ``attn_mask``
    (:func:`masked_bias`); without one the boolean mask goes in as it is.

    With attention dropout on a CPU, SDPA has no fused kernel and runs its own op-by-op path with
    torch's slow Bernoulli sampler; :func:`_attention_with_dropout` is that same path with the
    cheaper mask of :func:`lmlab.nn.dropout.dropout` (about 20% less time per call, fwd + bwd).
    """
    T, S = q.shape[-2], k.shape[-2]
    if is_causal and (T != S or mask is not None or attn_bias is not None):
        mask = combine_masks(mask, causal_mask(T, S, device=q.device))
        is_causal = False
    if dropout_p > 0.0 and q.device.type == "cpu":
        return _attention_with_dropout(q, k, v, mask, attn_bias, is_causal, dropout_p, scale)
    attn_mask = mask if attn_bias is None else masked_bias(attn_bias.to(q.dtype), mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                          is_causal=is_causal, scale=scale)


def _attention_with_dropout(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, attn_bias: Tensor | None,
                            is_causal: bool, dropout_p: float, scale: float | None) -> Tensor:
    """dropout(softmax(q k^T · scale + bias + mask)) v for training on a CPU (as in :func:`attention`)."""
    T, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # (B, H, T, S)
    if attn_bias is not None:
        scores = scores + attn_bias  # not in place: the bias may broadcast to a larger shape
    if is_causal:  # T == S here
        mask = causal_mask(T, S, device=q.device)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    weights = dropout(torch.softmax(scores, dim=-1), dropout_p)
    return torch.matmul(weights, v)  # (B, H, T, D)


# --------------------------------------------------------------------------- masks


def causal_mask(T: int, S: int | None = None, device=None) -> Tensor:
    """(T, S) boolean, True where query i may see key j: j <= i + (S - T) (bottom-right aligned)."""
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def padding_mask(attention_mask: Tensor) -> Tensor:
    """(B, S) 1/0 (or bool) "is a real token" -> (B, 1, 1, S) boolean key mask."""
    if attention_mask.dim() != 2:
        raise UsageError(f"attention_mask must be (batch, length), got shape {tuple(attention_mask.shape)}")
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """AND of the given boolean masks (None ones skipped), with rows that would see nothing opened.

    A query that may attend to no key (a padding position under a causal mask, say) would make
    softmax divide by zero and fill the output with NaN, which then leaks into gradients. Such rows
    are let to attend everywhere instead: their outputs belong to padding and are never read.
    """
    result = None
    for mask in masks:
        if mask is not None:
            result = mask if result is None else (result & mask)
    if result is None:
        return None
    return result | ~result.any(dim=-1, keepdim=True)


def optional_key_mask(mask: Tensor | None) -> Tensor | None:
    """None when a boolean key mask allows every key (a batch without padding), else the mask.

    Attention without a mask runs SDPA's unmasked kernel and skips merging the mask into a bias
    in every layer; the result is the same (a mask that allows everything adds 0 to every score).
    """
    return None if mask is None or bool(mask.all()) else mask


def masked_bias(attn_bias: Tensor, mask: Tensor | None) -> Tensor:
    """One additive float mask from a score bias and a boolean mask: the bias where the mask is
    True, -inf where it is False (broadcast to both shapes; the bias alone when there is no mask).

    A row whose every entry ends up -inf (a bias that rules out every key) makes the softmax NaN,
    as a boolean mask that allows nothing would; :func:`combine_masks` opens such rows for masks,
    a bias is trusted to leave each query at least one key.
    """
    if mask is None:
        return attn_bias
    return torch.where(mask, attn_bias, torch.tensor(float("-inf"), dtype=attn_bias.dtype,
                                                     device=attn_bias.device))


# --------------------------------------------------------------------------- KV cache


class LayerKV:
    """Keys and values of one attention layer, in buffers preallocated to ``max_length``.

    ``k`` and ``v`` are (B, H, max_length, D), allocated at the first :meth:`append` (when B, H
    and D are known); ``length`` positions are filled. ``static`` entries (cross-attention over
    an encoder's output) are written once by :meth:`set_static`, whatever their length, and then
    only read.
    """

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.length = 0
        self.static = False

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, H, T, D) after the cached ones; return all keys and values so far."""
        B, H, T, D = k.shape
        end = self.length + T
        if end > self.max_length:
            raise UsageError(f"KV cache full: {end} positions needed, {self.max_length} allocated")
        if self.k is None:
            self.k = k.new_empty(B, H, self.max_length, D)
            self.v = v.new_empty(B, H, self.max_length, D)
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def set_static(self, k: Tensor, v: Tensor) -> None:
        self.k, self.v, self.length, self.static = k, v, k.shape[2], True

    def reorder(self, index: Tensor) -> None:
        if self.k is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)


class KVCache:
    """One :class:`LayerKV` per layer (and per cross-attention), plus the number of positions seen.

    ``extras`` holds other per-sequence tensors a decoder needs between steps (an encoder's
    padding mask, say); :meth:`reorder` permutes everything along the batch for beam search.
    """

    def __init__(self, num_layers: int, max_length: int, num_cross_layers: int = 0) -> None:
        self.layers = [LayerKV(max_length) for _ in range(num_layers)]
        # encoder-decoder attention: static entries, as long as the encoder's output
        self.cross_layers = [LayerKV(max_length) for _ in range(num_cross_layers)]
        self.max_length = max_length
        self.extras: dict[str, Tensor] = {}

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def reorder(self, index: Tensor) -> None:
        for layer in self.layers + self.cross_layers:
            layer.reorder(index)
        for name, tensor in self.extras.items():
            self.extras[name] = tensor.index_select(0, index)


# --------------------------------------------------------------------------- projections


class FusedQKV(nn.Module):
    """q, k, v = split(x W_qkv + b): one (C -> 3C) matmul; self-attention only (GPT-2's ``c_attn``)."""

    def __init__(self, d_model: int, bias: bool = True) -> None:
        super().__init__()
        self.d_model = d_model
        self.proj = nn.Linear(d_model, 3 * d_model, bias=bias)

    def forward(self, x: Tensor, memory: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        if memory is not None:
            raise UsageError("FusedQKV projects one sequence; use SeparateQKV for cross-attention")
        return self.proj(x).split(self.d_model, dim=-1)  # 3 x (B, T, C)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        raise UsageError("FusedQKV projects one sequence; use SeparateQKV for cross-attention")


class SeparateQKV(nn.Module):
    """q = x W^Q, k = m W^K, v = m W^V with m = x (self-attention) or another sequence (cross)."""

    def __init__(self, d_model: int, bias: bool = True, d_memory: int | None = None) -> None:
        super().__init__()
        d_memory = d_model if d_memory is None else d_memory
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.k = nn.Linear(d_memory, d_model, bias=bias)
        self.v = nn.Linear(d_memory, d_model, bias=bias)

    def forward(self, x: Tensor, memory: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        source = x if memory is None else memory
        return self.q(x), self.k(source), self.v(source)

    def project_q(self, x: Tensor) -> Tensor:
        return self.q(x)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        return self.k(memory), self.v(memory)


# --------------------------------------------------------------------------- multi-head attention


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O, with the Q/K/V projection passed in.

    ``forward(x, memory=None, mask=None, attn_bias=None, is_causal=False, cache=None)``:
    x (B, T, C) are the queries; keys/values come from x (self-attention) or ``memory`` (B, S, C)
    (cross-attention). ``mask`` is boolean, broadcastable to (B, H, T, S), True = may attend;
    ``attn_bias`` is a float score bias broadcastable to (B, H, T, S) (S counts the cached keys).
    With a ``cache`` (:class:`LayerKV`), self-attention appends this call's keys/values to it and
    attends over everything cached; cross-attention projects ``memory`` once and reuses it.

    ``positions``, when given, is a module called as ``positions(q, k, offset) -> (q, k)`` on the
    heads' queries and keys (B, H, T, D) before attention (and before ``k`` enters the cache);
    ``offset`` is the number of positions already cached, so a new token gets its own position.
    It rotates or shifts one sequence's queries and keys, so it is for self-attention only.
    """

    def __init__(self, d_model: int, n_heads: int, qkv: nn.Module, out: nn.Module,
                 dropout: float = 0.0, use_sdpa: bool = True, positions: nn.Module | None = None) -> None:
        super().__init__()
        if d_model % n_heads:
            raise UsageError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads = d_model, n_heads
        self.qkv = qkv
        self.out = out
        self.dropout = dropout
        self.use_sdpa = use_sdpa
        self.positions = positions

    def _heads(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, T, C) -> (B, H, T, D)

    def forward(self, x: Tensor, memory: Tensor | None = None, mask: Tensor | None = None,
                attn_bias: Tensor | None = None, is_causal: bool = False,
                cache: LayerKV | None = None) -> Tensor:
        B, T, C = x.shape
        if memory is not None and self.positions is not None:
            raise UsageError("a positions module applies to self-attention; cross-attention takes none")
        if memory is not None and cache is not None:
            # cross-attention: the memory's keys/values are the same at every decoding step
            if not cache.static:
                k, v = self.qkv.project_kv(memory)
                cache.set_static(self._heads(k), self._heads(v))
            q = self._heads(self.qkv.project_q(x))
            k, v = cache.k, cache.v
        else:
            q, k, v = self.qkv(x, memory)
            q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (B, H, T|S, D)
            if self.positions is not None:
                q, k = self.positions(q, k, cache.length if cache is not None else 0)
            if cache is not None:
                k, v = cache.append(k, v)                              # (B, H, cached + T, D)
        dropout_p = self.dropout if self.training else 0.0
        if self.use_sdpa:
            y = attention(q, k, v, mask=mask, attn_bias=attn_bias, is_causal=is_causal, dropout_p=dropout_p)
        else:
            y = attention_math(q, k, v, mask=mask, attn_bias=attn_bias, is_causal=is_causal,
                               dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, C)
        return self.out(y)


def self_attention(d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                   fused: bool = True, positions: nn.Module | None = None) -> MultiHeadAttention:
    """Builder: self-attention with a fused (GPT-2) or separate (Vaswani) Q/K/V projection."""
    qkv = FusedQKV(d_model, bias=bias) if fused else SeparateQKV(d_model, bias=bias)
    return MultiHeadAttention(d_model, n_heads, qkv, nn.Linear(d_model, d_model, bias=bias), dropout,
                              positions=positions)


def cross_attention(d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                    d_memory: int | None = None) -> MultiHeadAttention:
    """Builder: encoder-decoder attention (queries from the decoder, keys/values from memory)."""
    return MultiHeadAttention(d_model, n_heads, SeparateQKV(d_model, bias=bias, d_memory=d_memory),
                              nn.Linear(d_model, d_model, bias=bias), dropout)


# --------------------------------------------------------------------------- the block


class TransformerLayer(nn.Module):
    """One Transformer layer, put together from the sub-modules it is given.

    encoder layer / GPT block:  x = R1(x, SelfAttn);                 x = R3(x, FFN)
    decoder layer (§3.1):       x = R1(x, SelfAttn); x = R2(x, CrossAttn(memory)); x = R3(x, FFN)

    where each R is a residual wrapper from :mod:`lmlab.nn.norms` (pre- or post-norm) — so
    pre-LN vs post-LN is the choice of wrapper module, and encoder vs decoder is whether a
    cross-attention is passed.
    """

    def __init__(self, self_attn: MultiHeadAttention, self_attn_residual: nn.Module,
                 feed_forward: nn.Module, feed_forward_residual: nn.Module,
                 cross_attn: MultiHeadAttention | None = None,
                 cross_attn_residual: nn.Module | None = None) -> None:
        super().__init__()
        if (cross_attn is None) != (cross_attn_residual is None):
            raise UsageError("cross_attn and cross_attn_residual go together")
        self.self_attn = self_attn
        self.self_attn_residual = self_attn_residual
        self.cross_attn = cross_attn
        self.cross_attn_residual = cross_attn_residual
        self.feed_forward = feed_forward
        self.feed_forward_residual = feed_forward_residual

    def forward(self, x: Tensor, mask: Tensor | None = None, attn_bias: Tensor | None = None,
                is_causal: bool = False, memory: Tensor | None = None, memory_mask: Tensor | None = None,
                cache: LayerKV | None = None, cross_cache: LayerKV | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C); ``mask`` and ``attn_bias`` are the self-attention's (see
        :class:`MultiHeadAttention`), ``memory_mask`` the cross-attention's over ``memory``."""
        x = self.self_attn_residual(
            x, lambda h: self.self_attn(h, mask=mask, attn_bias=attn_bias, is_causal=is_causal, cache=cache))
        if self.cross_attn is not None:
            if memory is None:
                raise UsageError("a decoder layer needs the encoder's output (memory)")
            x = self.cross_attn_residual(
                x, lambda h: self.cross_attn(h, memory=memory, mask=memory_mask, cache=cross_cache))
        return self.feed_forward_residual(x, self.feed_forward)


def post_ln_encoder_layer(d_model: int, n_heads: int, d_ff: int, activation: str, dropout: float,
                          attn_dropout: float, eps: float) -> TransformerLayer:
    """The post-LN encoder layer of BERT (Devlin et al., 2019, §3) and ELECTRA (Clark et al., 2020):

        x = LN(x + Dropout(MultiHead(x)));   x = LN(x + Dropout(FFN(x)))

    with separate Q/K/V projections (the layout of their checkpoints) and the named activation.
    """
    return TransformerLayer(
        self_attention(d_model, n_heads, dropout=attn_dropout, fused=False),
        PostNormResidual(nn.LayerNorm(d_model, eps=eps), dropout),
        FeedForward(d_model, d_ff, activation_module(activation)),
        PostNormResidual(nn.LayerNorm(d_model, eps=eps), dropout),
    )
