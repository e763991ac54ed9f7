"""Statistical and structural tests of the masking rules (≥ 1e5 draws each, 3σ bounds)."""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.errors import UsageError
from lmlab.objectives import masking

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIALS = [PAD, CLS, SEP, MASK]
V = 1000


def three_sigma(p: float, n: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


def assert_all_or_nothing(units: torch.Tensor, selected: torch.Tensor) -> None:
    """Within each unit (id >= 0) of each row, every token has the same selection."""
    B = units.shape[0]
    idx = units.clamp(min=0)
    n_units = int(units.max()) + 1
    sel = torch.where(units >= 0, selected.float(), 0.0)
    inside = (units >= 0).float()
    exists = torch.zeros(B, n_units).scatter_add(1, idx, inside) > 0
    any_sel = torch.zeros(B, n_units).scatter_reduce(1, idx, torch.where(units >= 0, sel, 0.0), "amax")
    all_sel = torch.ones(B, n_units).scatter_reduce(1, idx, torch.where(units >= 0, sel, 1.0), "amin")
    assert torch.equal(any_sel[exists], all_sel[exists])


def rows_with_specials(B: int, T: int, gen: torch.Generator) -> torch.Tensor:
    ids = torch.randint(4, V, (B, T), generator=gen)
    ids[:, 0] = CLS
    lengths = torch.randint(T // 2, T, (B,), generator=gen)
    ids[torch.arange(T)[None, :] >= lengths[:, None]] = PAD
    ids[torch.arange(B), lengths - 1] = SEP
    return ids


def test_token_selection_rate_and_uniformity():
    gen = torch.Generator().manual_seed(0)
    B, T = 2000, 128
    ids = rows_with_specials(B, T, gen)
    special = masking.special_mask(ids, SPECIALS)
    selected = masking.select_tokens(special, gen)
    assert not (selected & special).any(), "a special or padding token was selected"
    n = int((~special).sum())
    assert n >= 1e5
    rate = float(selected.sum()) / n
    assert abs(rate - 0.15) < three_sigma(0.15, n) + 0.005 / 2  # rounding per row adds at most ±0.5 token
    # per row: exactly round(0.15 n)
    k = masking.budget((~special).sum(1), 0.15)
    assert torch.equal(selected.sum(1), k)
    # every maskable position equally likely: position 5 (always maskable) selected at the row's rate
    p5 = float((k.float() / (~special).sum(1).float()).mean())
    n5 = B
    freq = float(selected[:, 5].float().mean())
    assert abs(freq - p5) < 3 * math.sqrt(p5 * (1 - p5) / n5) + 1e-3


def test_80_10_10_corruption():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(4, V, (1000, 128), generator=gen)
    selected = torch.ones_like(ids, dtype=torch.bool)
    pool = torch.arange(4, V)
    out = masking.corrupt(ids, selected, gen, MASK, pool)
    n = ids.numel()
    masked = (out.input_ids == MASK).float().mean().item()
    changed = ((out.input_ids != MASK) & (out.input_ids != ids)).float().mean().item()
    kept = (out.input_ids == ids).float().mean().item()
    # a random draw equals the original with probability 1/|pool|
    p_random_changed = 0.1 * (1 - 1 / pool.numel())
    assert abs(masked - 0.8) < three_sigma(0.8, n)
    assert abs(changed - p_random_changed) < three_sigma(p_random_changed, n)
    assert abs(kept - (1 - 0.8 - p_random_changed)) < three_sigma(0.1, n)
    assert torch.equal(out.labels, ids)
    # random replacements come from the pool only (never a special token)
    assert not torch.isin(out.input_ids[out.input_ids != MASK], torch.tensor(SPECIALS)).any()
    # the random branch is half the non-[MASK] remainder by default
    out2 = masking.corrupt(ids, selected, gen, MASK, pool, mask_prob=0.6)
    assert abs((out2.input_ids == MASK).float().mean().item() - 0.6) < three_sigma(0.6, n)
    unchanged = (out2.input_ids == ids).float().mean().item()
    assert abs(unchanged - (0.2 + 0.2 / pool.numel())) < three_sigma(0.2, n)


def test_corrupt_labels_only_selected():
    gen = torch.Generator().manual_seed(2)
    ids = rows_with_specials(64, 32, gen)
    special = masking.special_mask(ids, SPECIALS)
    selected = masking.select_tokens(special, gen)
    out = masking.corrupt(ids, selected, gen, MASK, torch.arange(4, V))
    assert torch.equal(out.labels[selected], ids[selected])
    assert (out.labels[~selected] == masking.IGNORE_INDEX).all()
    assert torch.equal(out.input_ids[~selected], ids[~selected])


def word_rows(B: int, T: int, gen: torch.Generator, max_word: int = 3) -> torch.Tensor:
    """(B, T) word ids with random word lengths 1..max_word and specials at both ends."""
    lengths = torch.randint(1, max_word + 1, (B, T), generator=gen)
    starts = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):  # test fixture only
        t = 1
        for length in lengths[b].tolist():
            if t >= T - 1:
                break
            starts[b, t] = True
            t += length
    special = torch.zeros(B, T, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    word = starts.long().cumsum(1) - 1
    return torch.where(special, torch.full_like(word, -1), word)


def test_whole_word_all_or_nothing_and_rate():
    gen = torch.Generator().manual_seed(3)
    words = word_rows(1000, 128, gen)
    selected = masking.select_units(words, gen)
    assert not selected[words < 0].any()
    # all-or-nothing: within a word every token has the same selection
    assert_all_or_nothing(words, selected)
    n = int((words >= 0).sum())
    rate = float(selected.sum()) / n
    assert 0.14 < rate <= 0.15 + 1e-9  # fills the budget with whole words, never over it


def test_word_ids_from_wordpiece_like_tables():
    # vocab: 0 [PAD] 1 [CLS] 2 [SEP] 3 [MASK] 4 "the" 5 "play" 6 "##ing" 7 "##s"
    starts = torch.tensor([True, True, True, True, True, True, False, False])
    ids = torch.tensor([[1, 4, 5, 6, 7, 4, 2, 0]])
    special = masking.special_mask(ids, SPECIALS)
    words = masking.word_ids_from_pieces(ids, special, starts)
    assert words.tolist() == [[-1, 0, 1, 1, 1, 2, -1, -1]]
    # BPE-style: pieces ending a word (</w>) make the next piece start one
    ends = torch.tensor([False, False, False, False, True, False, False, True])
    words = masking.word_ids_from_pieces(ids, special, torch.zeros(8, dtype=torch.bool), ends)
    assert words.tolist() == [[-1, 0, 1, 1, 1, 2, -1, -1]]


def test_ngram_length_distribution():
    gen = torch.Generator().manual_seed(4)
    n = 200_000
    lengths = masking.sample_lengths(masking.ngram_length_probs(3), (n,), gen)
    for value, p in [(1, 6 / 11), (2, 3 / 11), (3, 2 / 11)]:
        freq = float((lengths == value).float().mean())
        assert abs(freq - p) < three_sigma(p, n), (value, freq, p)


def test_geometric_span_lengths_and_mean():
    probs = masking.geometric_length_probs(0.2, 10)
    mean = float((probs * torch.arange(1, 11)).sum())
    assert abs(mean - 3.8) < 0.01  # the seed's "3.8 words"
    gen = torch.Generator().manual_seed(5)
    n = 200_000
    lengths = masking.sample_lengths(probs, (n,), gen)
    assert int(lengths.min()) >= 1 and int(lengths.max()) <= 10
    sd = float(((torch.arange(1, 11) - mean) ** 2 * probs).sum().sqrt())
    assert abs(float(lengths.float().mean()) - mean) < 3 * sd / math.sqrt(n)
    for value in range(1, 11):
        p = float(probs[value - 1])
        assert abs(float((lengths == value).float().mean()) - p) < three_sigma(p, n)


def test_spans_are_whole_words_contiguous_and_fill_budget():
    gen = torch.Generator().manual_seed(6)
    words = word_rows(200, 256, gen, max_word=2)
    spans = masking.select_spans(words, gen, masking.geometric_length_probs())
    sel, span_ids = spans.selected, spans.span_ids
    assert not sel[words < 0].any()
    # whole words
    assert_all_or_nothing(words, sel)
    # each span is contiguous: its tokens form one run
    left, right = masking.span_boundaries(span_ids)
    positions = torch.arange(words.shape[1])[None, :].expand_as(words)
    assert ((positions > left) & (positions < right))[sel].all()
    run_length = (right - left - 1)[sel]
    same_span_count = torch.zeros_like(span_ids).scatter_add_(1, span_ids.clamp(min=0), sel.long())
    assert torch.equal(run_length, same_span_count.gather(1, span_ids.clamp(min=0))[sel])
    rate = float(sel.sum()) / int((words >= 0).sum())
    assert 0.14 < rate <= 0.15 + 1e-9


def test_albert_ngram_spans_realised_lengths():
    """Realised n-gram spans (in words) follow 6/11, 3/11, 2/11 up to the budget's rejections."""
    gen = torch.Generator().manual_seed(7)
    B, T = 300, 256
    words = torch.arange(T).repeat(B, 1) - 1  # one token per word
    words[:, 0] = -1
    spans = masking.select_spans(words, gen, masking.ngram_length_probs(3))
    counts = torch.zeros_like(spans.span_ids).scatter_add_(1, spans.span_ids.clamp(min=0), spans.selected.long())
    lengths = counts[counts > 0]
    assert lengths.max() <= 3
    freq1 = float((lengths == 1).float().mean())
    # adjacent spans do not merge in span_ids, so lengths are exactly the accepted n-grams; the budget
    # rejects long n-grams near the end of a row, so 1-grams are slightly over-represented
    assert 6 / 11 - 0.01 < freq1 < 6 / 11 + 0.05


def test_entity_units_from_peoples_daily_tags():
    words = ["江", "泽民", "在", "北京", "会见", "中央", "人民", "广播", "电台"]
    tags = ["nr", "nr", "p", "ns", "v", "nt", "nt", "nt", "nt"]
    units, is_entity = masking.entity_units(words, tags)
    # 江泽民 is one person; 北京 a place; 中央人民广播电台 one organisation
    assert units[:3] == [0, 0, 0]
    assert is_entity == [True, False, True, False, True]
    assert len(units) == sum(len(w) for w in words)
    with pytest.raises(UsageError):
        masking.entity_units(["a"], [])


def test_entity_masking_prefers_entities_whole():
    gen = torch.Generator().manual_seed(8)
    words = ["江", "泽民", "在", "北京", "会见", "中央", "人民", "广播", "电台"] * 4
    tags = ["nr", "nr", "p", "ns", "v", "nt", "nt", "nt", "nt"] * 4
    units, flags = masking.entity_units(words, tags)
    unit_ids = torch.tensor(units).repeat(5000, 1)
    entity = torch.tensor(flags).repeat(5000, 1)
    sel = masking.select_entities(unit_ids, entity, gen, rate=0.15)
    # selected characters always belong to entities here (the budget is smaller than the entities)
    selected_units = unit_ids[sel]
    assert entity[0][selected_units].all()
    # all-or-nothing per unit
    assert_all_or_nothing(unit_ids, sel)


def test_static_generators_depend_on_content_only():
    gen_a = torch.Generator().manual_seed(0)
    gen_b = torch.Generator().manual_seed(99)
    ids = torch.randint(4, V, (8, 16), generator=gen_a)
    a = [torch.rand(5, generator=g) for g in masking.static_generators(ids, gen_a, 1)]
    b = [torch.rand(5, generator=g) for g in masking.static_generators(ids, gen_b, 1)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(UsageError):
        masking.static_generators(ids, gen_a, 0)


def test_bad_rates_raise():
    with pytest.raises(UsageError):
        masking.select_tokens(torch.zeros(1, 4, dtype=torch.bool), torch.Generator(), rate=0.0)
    with pytest.raises(UsageError):
        masking.corrupt(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.bool), torch.Generator(),
                        MASK, torch.arange(4, V), mask_prob=0.9, random_prob=0.2)
