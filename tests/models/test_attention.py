"""The shared blocks: SDPA vs explicit math, masks, causality, padding, √d_k, KV cache, norms, positions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lmlab.errors import UsageError
from lmlab.nn.attention import (
    FusedQKV,
    KVCache,
    LayerKV,
    MultiHeadAttention,
    SeparateQKV,
    attention,
    attention_math,
    causal_mask,
    combine_masks,
    padding_mask,
    self_attention,
)
from lmlab.nn.feedforward import FeedForward
from lmlab.nn.norms import PostNormResidual, PreNormResidual, RMSNorm
from lmlab.nn.positional import SinusoidalPositions, sinusoid_table

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def qkv(B=2, H=3, T=5, S=5, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, T, D, generator=g), torch.randn(B, H, S, D, generator=g),
            torch.randn(B, H, S, D, generator=g))


@pytest.mark.parametrize("case", ["none", "causal", "padding", "padding+causal", "cross", "causal-prefix"])
def test_sdpa_equals_explicit_math(case):
    T, S = (3, 7) if case in ("cross", "causal-prefix") else (6, 6)
    q, k, v = qkv(T=T, S=S)
    mask = None
    if "padding" in case or case == "cross":
        mask = padding_mask(torch.tensor([[1] * S, [0, 0] + [1] * (S - 2)]))
    is_causal = "causal" in case
    fast = attention(q, k, v, mask=mask, is_causal=is_causal)
    slow = attention_math(q, k, v, mask=mask, is_causal=is_causal)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)


def test_causal_mask_is_bottom_right_aligned():
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


def test_fully_masked_rows_do_not_produce_nan():
    # left padding under a causal mask: query 0 is padding and would see no key at all
    mask = combine_masks(padding_mask(torch.tensor([[0, 1, 1]])), causal_mask(3))
    q, k, v = qkv(B=1, T=3, S=3)
    assert torch.isfinite(attention(q, k, v, mask=mask)).all()
    assert torch.isfinite(attention_math(q, k, v, mask=mask)).all()


def test_attention_weights_respect_the_masks():
    q, k, v = qkv(B=2, T=4, S=4)
    mask = combine_masks(padding_mask(torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])), causal_mask(4))
    _, weights = attention_math(q, k, v, mask=mask, return_weights=True)
    future = ~causal_mask(4)
    assert torch.all(weights[0][:, future] == 0)                            # no future
    assert torch.all(weights[1, :, 1:][:, future[1:]] == 0)                 # (real queries of row 1)
    assert torch.all(weights[1, :, 1:, 0] == 0)                            # no padding
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4))


def test_unscaled_dot_products_saturate_the_softmax():
    """§3.2.1: for d_k = 512, q·k has variance d_k; without 1/√d_k the softmax is nearly one-hot
    and its gradient nearly vanishes; with it the weights stay spread out."""
    torch.manual_seed(0)
    d_k, n_keys = 512, 16
    q = torch.randn(64, 1, 1, d_k)
    k = torch.randn(64, 1, n_keys, d_k)
    v = torch.randn(64, 1, n_keys, d_k)
    assert math.isclose((q @ k.transpose(-2, -1)).var().item(), d_k, rel_tol=0.15)

    def stats(scale):
        scores = ((q @ k.transpose(-2, -1)) * scale).requires_grad_(True)
        weights = torch.softmax(scores, dim=-1)
        upstream = torch.randn(weights.shape, generator=torch.Generator().manual_seed(1))
        (weights * upstream).sum().backward()
        return weights.max(-1).values.mean().item(), scores.grad.abs().mean().item()

    top_unscaled, grad_unscaled = stats(1.0)
    top_scaled, grad_scaled = stats(1 / math.sqrt(d_k))
    assert top_unscaled > 0.9          # one key takes (almost) all the weight
    assert top_scaled < 0.5            # scaled: weight is shared among keys
    assert grad_unscaled < grad_scaled / 4  # softmax Jacobian ≈ 0 when saturated
    # and the attention function applies the scaling by default
    torch.testing.assert_close(attention_math(q, k, v), attention_math(q, k, v, scale=1 / math.sqrt(d_k)))


def test_fused_and_separate_projections_agree():
    torch.manual_seed(0)
    C, H = 16, 4
    fused = self_attention(C, H, fused=True).eval()
    separate = self_attention(C, H, fused=False).eval()
    with torch.no_grad():
        Wq, Wk, Wv = fused.qkv.proj.weight.split(C, dim=0)
        bq, bk, bv = fused.qkv.proj.bias.split(C)
        for linear, w, b in ((separate.qkv.q, Wq, bq), (separate.qkv.k, Wk, bk), (separate.qkv.v, Wv, bv)):
            linear.weight.copy_(w)
            linear.bias.copy_(b)
        separate.out.load_state_dict(fused.out.state_dict())
    x = torch.randn(2, 5, C)
    torch.testing.assert_close(fused(x, is_causal=True), separate(x, is_causal=True), atol=1e-6, rtol=0)
    with pytest.raises(UsageError):
        fused(x, memory=torch.randn(2, 3, C))


def test_cross_attention_attends_to_memory_only_through_its_mask():
    torch.manual_seed(0)
    C = 16
    attn = MultiHeadAttention(C, 4, SeparateQKV(C), nn.Linear(C, C)).eval()
    x, memory = torch.randn(1, 3, C), torch.randn(1, 5, C)
    mask = padding_mask(torch.tensor([[1, 1, 1, 0, 0]]))
    out = attn(x, memory=memory, mask=mask)
    changed = memory.clone()
    changed[:, 3:] += 10.0  # masked memory positions
    torch.testing.assert_close(out, attn(x, memory=changed, mask=mask))
    cache = LayerKV(max_length=5)
    torch.testing.assert_close(out, attn(x, memory=memory, mask=mask, cache=cache))
    assert cache.static and cache.k.shape == (1, 4, 5, 4)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_kv_cache_equals_full_recomputation(use_sdpa):
    torch.manual_seed(0)
    attn = self_attention(16, 4).eval()
    attn.use_sdpa = use_sdpa
    x = torch.randn(2, 7, 16)
    full = attn(x, is_causal=True)
    cache = KVCache(1, max_length=7)
    pieces = [attn(x[:, :3], is_causal=True, cache=cache.layers[0])]
    for t in range(3, 7):
        pieces.append(attn(x[:, t:t + 1], is_causal=True, cache=cache.layers[0]))
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-6, rtol=0)
    assert cache.length == 7
    with pytest.raises(UsageError, match="KV cache full"):
        attn(x[:, :1], is_causal=True, cache=cache.layers[0])


def test_residual_wrappers_place_the_norm():
    torch.manual_seed(0)
    norm = nn.LayerNorm(8)
    x = torch.randn(2, 3, 8)
    f = FeedForward(8, 16, nn.ReLU()).eval()
    torch.testing.assert_close(PostNormResidual(norm)(x, f), norm(x + f(x)))
    torch.testing.assert_close(PreNormResidual(norm)(x, f), x + f(norm(x)))


def test_rms_norm():
    x = torch.tensor([[3.0, 4.0]])
    expected = x / math.sqrt((9 + 16) / 2 + 1e-6)
    torch.testing.assert_close(RMSNorm(2)(x), expected)


def test_sinusoidal_positions_follow_the_formula():
    table = sinusoid_table(50, 16)
    pos, i = 7, 3
    assert math.isclose(table[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / 16)), abs_tol=1e-6)
    assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(pos / 10000 ** (2 * i / 16)), abs_tol=1e-6)
    positions = SinusoidalPositions(50, 16)
    assert positions(torch.tensor([[0, 7]])).shape == (1, 2, 16)
    assert "table" not in positions.state_dict()  # recomputed, never saved


def test_fused_qkv_is_q_k_v_in_that_order():
    proj = FusedQKV(4)
    with torch.no_grad():
        proj.proj.weight.copy_(torch.cat([torch.eye(4), 2 * torch.eye(4), 3 * torch.eye(4)]))
        proj.proj.bias.zero_()
    q, k, v = proj(torch.ones(1, 1, 4))
    assert q.sum() == 4 and k.sum() == 8 and v.sum() == 12
