"""The shared attention block's seams (architecture review P8): an additive score bias, a position
module applied to q and k, and a KV cache that owns its maximum length."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from lmlab.errors import UsageError
from lmlab.nn.attention import (
    KVCache,
    LayerKV,
    MultiHeadAttention,
    SeparateQKV,
    TransformerLayer,
    attention,
    attention_math,
    causal_mask,
    combine_masks,
    masked_bias,
    padding_mask,
    post_ln_encoder_layer,
    self_attention,
)
from lmlab.nn.feedforward import FeedForward
from lmlab.nn.norms import PreNormResidual

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def qkv(B=2, H=3, T=5, S=5, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, T, D, generator=g), torch.randn(B, H, S, D, generator=g),
            torch.randn(B, H, S, D, generator=g))


def naive(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, allowed: Tensor | None = None) -> Tensor:
    """softmax(q k^T / √d + bias) v, with disallowed keys at -inf, written out by hand."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + bias
    if allowed is not None:
        scores = torch.where(allowed, scores, torch.tensor(float("-inf")))
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("case", ["full", "heads-only", "padding", "causal", "causal-prefix", "padding+causal"])
def test_bias_seam_equals_adding_the_bias_to_the_scores_by_hand(case):
    T, S = (3, 7) if case == "causal-prefix" else (6, 6)
    q, k, v = qkv(T=T, S=S)
    g = torch.Generator().manual_seed(3)
    bias = torch.randn((1, 3, T, S) if case == "heads-only" else (2, 3, T, S), generator=g)
    mask = padding_mask(torch.tensor([[1] * S, [0, 0] + [1] * (S - 2)])) if "padding" in case else None
    is_causal = "causal" in case
    allowed = combine_masks(mask, causal_mask(T, S)) if is_causal else mask
    expected = naive(q, k, v, bias, allowed)
    torch.testing.assert_close(attention(q, k, v, mask=mask, attn_bias=bias, is_causal=is_causal), expected,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(attention_math(q, k, v, mask=mask, attn_bias=bias, is_causal=is_causal), expected,
                               atol=1e-5, rtol=0)
    # the CPU training path (attention dropout) adds the bias too; p = 1e-12 drops nothing
    torch.testing.assert_close(attention(q, k, v, mask=mask, attn_bias=bias, is_causal=is_causal, dropout_p=1e-12),
                               expected, atol=1e-5, rtol=0)


def test_minus_infinity_bias_positions_get_zero_weight():
    q, k, v = qkv(B=1, T=4, S=4)
    bias = torch.zeros(1, 1, 4, 4)
    bias[..., 1] = float("-inf")                      # no query may look at key 1
    bias[..., 2, 3] = float("-inf")                   # query 2 may not look at key 3
    _, weights = attention_math(q, k, v, attn_bias=bias, return_weights=True)
    assert torch.all(weights[..., 1] == 0) and torch.all(weights[..., 2, 3] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 3, 4))
    changed = v.clone()
    changed[:, :, 1] += 100.0                         # what key 1 holds cannot reach any output
    torch.testing.assert_close(attention(q, k, changed, attn_bias=bias), attention(q, k, v, attn_bias=bias),
                               atol=1e-5, rtol=0)


def test_masked_bias_is_the_bias_where_allowed_and_minus_infinity_elsewhere():
    bias = torch.arange(6.0).view(1, 1, 2, 3)
    mask = torch.tensor([True, False, True])[None, None, None, :].expand(2, 1, 1, 3)
    out = masked_bias(bias, mask)
    assert out.shape == (2, 1, 2, 3)                  # broadcast to both shapes
    assert torch.equal(out[0, 0, :, [0, 2]], bias[0, 0, :, [0, 2]]) and torch.all(out[..., 1] == float("-inf"))
    assert masked_bias(bias, None) is bias


def test_multi_head_attention_and_the_layer_pass_the_bias_on():
    torch.manual_seed(0)
    C, H, T = 16, 4, 5
    attn = self_attention(C, H, fused=False).eval()
    x = torch.randn(2, T, C)
    bias = torch.randn(1, H, T, T)
    # by hand: project, split into heads, add the bias to the scores, merge, project out
    q, k, v = (p(x).view(2, T, H, C // H).transpose(1, 2) for p in (attn.qkv.q, attn.qkv.k, attn.qkv.v))
    by_hand = attn.out(naive(q, k, v, bias).transpose(1, 2).reshape(2, T, C))
    torch.testing.assert_close(attn(x, attn_bias=bias), by_hand, atol=1e-5, rtol=0)
    # through a layer: a zero bias changes nothing; a bias that leaves only key 0 makes every
    # query's attention output the same (the value at key 0)
    layer = post_ln_encoder_layer(C, H, 32, "gelu", dropout=0.0, attn_dropout=0.0, eps=1e-12).eval()
    torch.testing.assert_close(layer(x, attn_bias=torch.zeros(1, H, T, T)), layer(x), atol=1e-6, rtol=0)
    only_first = torch.full((1, 1, T, T), float("-inf"))
    only_first[..., 0] = 0.0
    out = layer.self_attn(x, attn_bias=only_first)
    torch.testing.assert_close(out, out[:, :1].expand_as(out), atol=1e-6, rtol=0)
    assert not torch.allclose(layer(x, attn_bias=only_first), layer(x))


class Rotary(nn.Module):
    """A minimal rotary embedding (Su et al., 2021): rotates each pair (x_2i, x_2i+1) of q and k by
    position · θ_i. It records the offsets it is called with."""

    def __init__(self, d_head: int) -> None:
        super().__init__()
        self.inv_freq = 1.0 / (10000 ** (torch.arange(0, d_head, 2).float() / d_head))
        self.offsets: list[int] = []

    def rotate(self, x: Tensor, offset: int) -> Tensor:
        T = x.shape[-2]
        angles = torch.arange(offset, offset + T).float()[:, None] * self.inv_freq[None, :]  # (T, D/2)
        cos, sin = angles.cos(), angles.sin()
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)  # (B, H, T, D)

    def forward(self, q: Tensor, k: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        self.offsets.append(offset)
        return self.rotate(q, offset), self.rotate(k, offset)


def test_positions_module_is_called_on_q_and_k_and_changes_the_output():
    torch.manual_seed(0)
    C, H = 16, 4
    plain = self_attention(C, H).eval()
    rotary = Rotary(C // H)
    rotated = self_attention(C, H, positions=rotary).eval()
    rotated.load_state_dict(plain.state_dict())       # same weights; the module adds no parameters
    x = torch.randn(2, 7, C)
    full = rotated(x, is_causal=True)
    assert rotary.offsets == [0]
    assert not torch.allclose(full, plain(x, is_causal=True), atol=1e-3)
    # rotary scores depend on relative positions only: a shifted sequence attends the same way
    q, k = torch.randn(1, 1, 4, C // H), torch.randn(1, 1, 4, C // H)
    scores = [(a @ b.transpose(-2, -1)) for a, b in (rotary(q, k, 0), rotary(q, k, 5))]
    torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=0)
    # with a KV cache the new positions are offset by what is cached, so decoding step by step
    # gives the full computation
    rotary.offsets.clear()
    cache = KVCache(1, max_length=7)
    pieces = [rotated(x[:, :3], is_causal=True, cache=cache.layers[0])]
    pieces += [rotated(x[:, t:t + 1], is_causal=True, cache=cache.layers[0]) for t in range(3, 7)]
    assert rotary.offsets == [0, 3, 4, 5, 6]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
    cross = MultiHeadAttention(C, H, SeparateQKV(C), nn.Linear(C, C), positions=rotary)
    with pytest.raises(UsageError, match="self-attention"):
        cross(x, memory=torch.randn(2, 3, C))


def test_layer_kv_owns_its_max_length():
    cache = KVCache(2, max_length=6, num_cross_layers=1)
    assert [layer.max_length for layer in cache.layers + cache.cross_layers] == [6, 6, 6]
    layer = LayerKV(max_length=6)
    k = torch.randn(1, 2, 4, 3)
    keys, values = layer.append(k, k + 1)
    assert layer.k.shape == (1, 2, 6, 3) and torch.equal(keys, k) and torch.equal(values, k + 1)
    layer.append(k[:, :, :2], k[:, :, :2])
    assert layer.length == 6
    with pytest.raises(UsageError, match="KV cache full: 7 positions needed, 6 allocated"):
        layer.append(k[:, :, :1], k[:, :, :1])
    with pytest.raises(UsageError, match="KV cache full"):
        LayerKV(max_length=3).append(k, k)            # a first block longer than the cache


def test_cache_without_cache_length_generates_as_recomputation():
    """GPT (pre-LN blocks) and the encoder-decoder Transformer decode the same with and without
    the cache, greedy and beam search."""
    from lmlab.models.gpt import GPTConfig, GPTLanguageModel
    from lmlab.models.transformer import EncoderDecoderSteps, Transformer, TransformerConfig
    from lmlab.tasks.generation import GenerationConfig, generate

    torch.manual_seed(0)
    gpt = GPTLanguageModel(GPTConfig(vocab_size=40, max_length=40, d_model=32, n_layers=2, n_heads=4,
                                     dropout=0.0, attn_dropout=0.0, init_std=0.3)).eval()
    prompt = torch.randint(0, 40, (2, 4), generator=torch.Generator().manual_seed(1))
    for beams in (1, 3):
        cached = generate(gpt, prompt, config=GenerationConfig(max_new_tokens=12, num_beams=beams))
        full = generate(gpt, prompt, config=GenerationConfig(max_new_tokens=12, num_beams=beams, use_cache=False))
        assert torch.equal(cached, full)
    transformer = Transformer(TransformerConfig(src_vocab_size=30, tgt_vocab_size=30, d_model=32, n_heads=4,
                                                n_encoder_layers=1, n_decoder_layers=2, d_ff=64, dropout=0.0,
                                                max_length=32)).eval()
    src = torch.randint(3, 30, (2, 6), generator=torch.Generator().manual_seed(2))
    steps = EncoderDecoderSteps(transformer, src)
    start = torch.full((2, 1), transformer.config.bos_token_id)
    cached = generate(steps, start, config=GenerationConfig(max_new_tokens=8, num_beams=2))
    full = generate(steps, start, config=GenerationConfig(max_new_tokens=8, num_beams=2, use_cache=False))
    assert torch.equal(cached, full)


def test_layer_with_prenorm_wrappers_and_bias_runs_cached():
    """The bias seam with a cache: the bias covers the cached keys too (T new queries, S keys)."""
    torch.manual_seed(0)
    C, H = 16, 4
    layer = TransformerLayer(self_attention(C, H), PreNormResidual(nn.LayerNorm(C)),
                             FeedForward(C, 32, nn.GELU()), PreNormResidual(nn.LayerNorm(C))).eval()
    x = torch.randn(1, 5, C)
    bias = -0.5 * (torch.arange(5)[:, None] - torch.arange(5)[None, :]).abs().float()[None, None]  # ALiBi-like (1, 1, 5, 5)
    full = layer(x, attn_bias=bias, is_causal=True)
    cache = KVCache(1, max_length=5)
    pieces = [layer(x[:, :2], attn_bias=bias[..., :2, :2], is_causal=True, cache=cache.layers[0])]
    pieces += [layer(x[:, t:t + 1], attn_bias=bias[..., t:t + 1, :t + 1], is_causal=True, cache=cache.layers[0])
               for t in range(2, 5)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
