"""lmlab.nn.dropout and the CPU attention-dropout path: rates, expectation, masks, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.errors import ConfigError
from lmlab.nn.attention import attention, causal_mask
from lmlab.nn.dropout import Dropout, dropout

torch.set_num_threads(1)


def test_dropout_rate_scale_and_expectation():
    torch.manual_seed(0)
    n, p = 400_000, 0.1
    y = dropout(torch.ones(n), p)
    zero_rate = (y == 0).double().mean().item()
    assert abs(zero_rate - p) < 3 * math.sqrt(p * (1 - p) / n)            # within 3 sigma
    assert torch.all((y == 0) | torch.isclose(y, torch.tensor(1 / (1 - p))))  # kept ones scaled by 1/(1-p)
    assert abs(y.double().mean().item() - 1.0) < 3 * math.sqrt(p / (1 - p) / n)  # unbiased


def test_dropout_is_seeded_inactive_in_eval_and_checks_p():
    x = torch.randn(1000)
    torch.manual_seed(5)
    a = dropout(x, 0.3)
    torch.manual_seed(5)
    b = dropout(x, 0.3)
    assert torch.equal(a, b)
    module = Dropout(0.3).eval()
    assert module(x) is x
    with pytest.raises(ConfigError, match="dropout probability"):
        Dropout(1.0)


def test_dropout_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.randn(5000, requires_grad=True)
    y = dropout(x, 0.25)
    y.sum().backward()
    kept = y != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75))
    assert not x.grad[~kept].any()


def test_attention_dropout_path_drops_weights_at_rate_p_and_is_unbiased():
    """With v = identity the output rows are the dropped attention weights themselves."""
    torch.manual_seed(0)
    B, H, T, p, draws = 2, 2, 8, 0.2, 3000
    q, k = torch.randn(B, H, T, T), torch.randn(B, H, T, T)
    v = torch.eye(T).expand(B, H, T, T)
    clean = attention(q, k, v, is_causal=True)                       # softmax weights, no dropout
    allowed = causal_mask(T).expand(B, H, T, T)
    total = torch.zeros(B, H, T, T, dtype=torch.float64)
    zeros = 0
    for _ in range(draws):
        out = attention(q, k, v, is_causal=True, dropout_p=p)
        assert not out[~allowed].any()                               # never attends to the future
        zeros += (out[allowed] == 0).sum().item()
        total += out.double()
    n = draws * allowed.sum().item()
    assert abs(zeros / n - p) < 3 * math.sqrt(p * (1 - p) / n)
    assert torch.allclose(total / draws, clean.double(), atol=0.03)   # E[dropped weights] = weights


def test_attention_dropout_path_equals_sdpa_when_nothing_is_dropped():
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 3, 6, 4) for _ in range(3))
    pad = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]
    for mask, causal in ((None, True), (pad, False), (pad, True)):
        expected = attention(q, k, v, mask=mask, is_causal=causal)
        got = attention(q, k, v, mask=mask, is_causal=causal, dropout_p=1e-12)  # every U >= 1e-12
        assert torch.allclose(got, expected, atol=1e-6)
