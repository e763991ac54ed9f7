"""T5 span corruption (lmlab.objectives.span): the reference's length bookkeeping, the sentinel
layout on a hand-checked case, exact reconstruction, and the span statistics over > 1e5 tokens."""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.errors import UsageError
from lmlab.objectives.span import (
    SpanCorruptionObjective,
    noise_span_to_unique_sentinel,
    random_spans_noise_mask,
    span_corruption,
    span_corruption_counts,
    span_corruption_lengths,
)

V, EOS = 1000, 1


@pytest.mark.parametrize(("inputs_length", "raw", "targets"), [(512, 568, 114), (1024, 1137, 229), (128, 141, 29)])
def test_lengths_as_random_spans_helper_computes_them(inputs_length, raw, targets):
    assert span_corruption_lengths(inputs_length) == (raw, targets)
    ids = torch.arange(2, 2 + raw).expand(3, raw)
    inputs, labels = span_corruption(ids, torch.Generator().manual_seed(0), V, EOS)
    assert inputs.shape == (3, inputs_length) and labels.shape == (3, targets)


def test_hand_checked_sentinels():
    # tokens 10..19, noise at 2-3 and 7: inputs 10 11 <S0> 14 15 16 <S1> 18 19, targets <S0> 12 13 <S1> 17 ...
    tokens = torch.arange(10, 20)[None]
    noise = torch.zeros(1, 10, dtype=torch.bool)
    noise[0, [2, 3, 7]] = True
    assert noise_span_to_unique_sentinel(tokens, noise, V).tolist() == [[10, 11, 999, 14, 15, 16, 998, 18, 19]]
    assert noise_span_to_unique_sentinel(tokens, ~noise, V).tolist() == [[999, 12, 13, 998, 17, 997]]


def test_one_span_hits_only_the_last_positions():
    # the reference's documented quirk (random_roll=False): 10 tokens -> 2 noise tokens in 1 span
    assert span_corruption_counts(10) == (2, 1)
    mask = random_spans_noise_mask(4, 10, torch.Generator().manual_seed(0))
    assert mask.tolist() == [[False] * 8 + [True] * 2] * 4


def _reconstruct(inputs: list[int], targets: list[int]) -> list[int]:
    spans, current = {}, None
    for t in targets[:-1]:
        if t >= V - 200:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in inputs[:-1]:
        out.extend(spans[t] if t >= V - 200 else [t])
    return out


def test_inputs_and_targets_rebuild_the_row_and_sentinels_count_down():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, V - 200, (8, 141), generator=g)
    inputs, targets = span_corruption(ids, g, V, EOS)
    num_noise, num_spans = span_corruption_counts(141)
    for row in range(8):
        assert _reconstruct(inputs[row].tolist(), targets[row].tolist()) == ids[row].tolist()
        sentinels = [t for t in inputs[row].tolist() if t >= V - 200]
        assert sentinels == list(range(V - 1, V - 1 - num_spans, -1))
        assert targets[row, 0] == V - 1 and inputs[row, -1] == EOS and targets[row, -1] == EOS
    assert targets.shape[1] == num_noise + num_spans + 1


def test_same_generator_same_corruption():
    ids = torch.randint(2, 500, (4, 100))
    a = span_corruption(ids, torch.Generator().manual_seed(7), V, EOS)
    b = span_corruption(ids, torch.Generator().manual_seed(7), V, EOS)
    c = span_corruption(ids, torch.Generator().manual_seed(8), V, EOS)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def _runs(mask_row: list[bool]) -> list[int]:
    lengths, run = [], 0
    for is_noise in mask_row + [False]:
        if is_noise:
            run += 1
        elif run:
            lengths.append(run)
            run = 0
    return lengths


def test_statistics_over_more_than_1e5_tokens():
    """density 15% and mean span 3 within 3σ over 200 rows of 568 tokens (113,600 tokens); span lengths
    follow a uniformly random composition: P(length 1) = (k - 1) / (n - 1) for n noise tokens in k spans."""
    rows, length = 200, 568
    mask = random_spans_noise_mask(rows, length, torch.Generator().manual_seed(0))
    total = rows * length
    assert total >= 100_000
    density = mask.float().mean().item()
    assert abs(density - 0.15) <= 3 * math.sqrt(0.15 * 0.85 / total)
    runs = [r for row in mask.tolist() for r in _runs(row)]
    num_noise, num_spans = span_corruption_counts(length)
    assert len(runs) == rows * num_spans  # spans never touch: exactly k runs per row
    mean = sum(runs) / len(runs)
    sd = math.sqrt(sum((r - mean) ** 2 for r in runs) / (len(runs) - 1))
    assert abs(mean - 3.0) <= 3 * sd / math.sqrt(len(runs))
    p1 = (num_spans - 1) / (num_noise - 1)
    observed = sum(r == 1 for r in runs) / len(runs)
    assert abs(observed - p1) <= 3 * math.sqrt(p1 * (1 - p1) / len(runs))
    assert not mask[:, 0].any() and mask[:, -1].all()  # non-noise first, noise last
    # noise is spread over the row: each quarter of the (interior) positions is about 15% noise
    for quarter in mask[:, 1:-1].chunk(4, dim=1):
        assert abs(quarter.float().mean().item() - 0.15) < 0.02


def test_objective_prepares_batches_and_computes_a_loss():
    from lmlab.models.t5 import PRESETS, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(**{**PRESETS["t5-tiny"], "vocab_size": 300, "dropout": 0.0}))
    objective = SpanCorruptionObjective(vocab_size=300, eos_id=1, decoder_start_id=0, pad_id=0)
    batch = objective.prepare(torch.randint(3, 200, (2, 41)), torch.Generator().manual_seed(0))
    loss_sum, count = objective.loss(model, batch)
    assert count == batch[1].numel() and torch.isfinite(loss_sum)
    assert torch.allclose(loss_sum, model.loss_sum(*batch)[0])  # the model's own teacher forcing agrees
    assert abs(loss_sum.item() / count.item() - math.log(300)) < 1.5  # an untrained model is near uniform
    with pytest.raises(UsageError, match="noise_density"):
        SpanCorruptionObjective(300, 1, 0, 0, noise_density=1.5)
