"""BART's five noisings and MASS, tested statistically and structurally.

Documents are ``<s> 10 11 12 ... </s>`` with distinct ids, so every kept token can be found in the
original and each ``<mask>`` stands for the gap between its neighbours.
"""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.errors import ConfigError
from lmlab.objectives.denoise import (
    SCHEMES,
    DenoisingObjective,
    MassConfig,
    MassObjective,
    NoiseConfig,
    Noiser,
    add_rolling_noise,
    mass_fragment,
    permute_sentences,
    poisson_probs,
    span_lengths,
)

BOS, PAD, EOS, MASK = 0, 1, 2, 4
FIRST = 10
V = 5000


def doc(n: int) -> torch.Tensor:
    return torch.cat([torch.tensor([BOS]), torch.arange(FIRST, FIRST + n), torch.tensor([EOS])])


def noiser(scheme: str, **overrides) -> Noiser:
    config = SCHEMES[scheme]
    config = NoiseConfig(**{**config.__dict__, **overrides})
    return Noiser(config, V, MASK, random_low=FIRST)


def gaps(original: torch.Tensor, noised: torch.Tensor) -> list[tuple[int, int]]:
    """(masks, removed originals) for each run of <mask> tokens / each deletion between two kept tokens."""
    kept = noised[noised != MASK]
    position = {int(t): i for i, t in enumerate(original)}
    idx = [position[int(t)] for t in kept]
    assert idx == sorted(idx), "kept tokens keep their order"
    out, masks, last = [], 0, 0
    for t in noised[1:]:
        if int(t) == MASK:
            masks += 1
            continue
        here = position[int(t)]
        if masks or here != last + 1:
            out.append((masks, here - last - 1))
        masks, last = 0, here
    return out


def test_token_masking_masks_exactly_the_budget_of_word_starts():
    g = torch.Generator().manual_seed(0)
    for n in (7, 50, 333):
        x = doc(n)
        y = noiser("token-masking")(x, g)
        assert y.shape == x.shape and y[0] == BOS and y[-1] == EOS
        assert int((y == MASK).sum()) == math.ceil(0.3 * n)          # ceil(0.3 · #word starts), BOS/EOS excluded
        assert torch.equal(y[y != MASK], x[y != MASK])


def test_token_deletion_removes_exactly_the_budget():
    g = torch.Generator().manual_seed(1)
    x = doc(1000)
    y = noiser("token-deletion")(x, g)
    assert y.shape[0] == x.shape[0] - 300 and int((y == MASK).sum()) == 0
    assert all(masks == 0 for masks, _ in gaps(x, y))


def test_poisson_span_lengths_have_mean_lambda_and_cover_the_budget():
    g = torch.Generator().manual_seed(2)
    probs = poisson_probs(3.0)
    assert abs(float(probs.sum()) - 1) < 1e-12 and abs(float((torch.arange(128) * probs).sum()) - 3.0) < 1e-9
    draws = torch.multinomial(probs, 200_000, replacement=True, generator=g).double()
    sigma = math.sqrt(3.0 / 200_000)                          # Poisson variance = λ
    assert abs(draws.mean().item() - 3.0) < 3 * sigma
    p0 = (draws == 0).double().mean().item()
    assert abs(p0 - math.exp(-3)) < 3 * math.sqrt(math.exp(-3) * (1 - math.exp(-3)) / 200_000)
    for budget in (1, 5, 300):
        lengths = span_lengths(budget, probs, g)
        assert int(lengths.sum()) == budget and bool((lengths >= 0).all())


def test_text_infilling_one_mask_per_span_and_the_masked_fraction():
    g = torch.Generator().manual_seed(3)
    removed = masks_total = spans = inserts = 0
    n_docs, n = 40, 500
    for _ in range(n_docs):
        x = doc(n)
        y = noiser("text-infilling")(x, g)
        assert y[0] == BOS and y[-1] == EOS
        for masks, gone in gaps(x, y):
            assert masks >= 1, "text infilling never deletes without a mask"
            if gone == 0:
                inserts += masks                  # zero-length spans insert a mask
            else:
                assert masks <= gone + 2          # adjacent spans give a mask each; insertions may sit beside them
                spans += 1
            removed += gone
            masks_total += masks
    budget = math.ceil(0.3 * n) * n_docs
    # spans start at distinct word starts but may run into each other, so slightly less than the budget is covered
    assert 0.8 * budget < removed <= budget
    assert inserts > 0
    # a merged run of spans is one gap: the mean gap is λ or a little more, never less than λ - 3σ
    mean_gap = removed / spans
    assert 2.8 < mean_gap < 4.5


def test_whole_words_are_masked_together():
    g = torch.Generator().manual_seed(4)
    table = torch.zeros(V, dtype=torch.bool)
    table[FIRST::3] = True                      # every word is 3 tokens: a start and two continuations
    n = Noiser(SCHEMES["text-infilling"], V, MASK, word_start_table=table, random_low=FIRST)
    x = doc(300)
    for _ in range(10):
        y = n(x, g)
        for _, gone in gaps(x, y):
            assert gone % 3 == 0


def test_sentence_permutation_is_a_permutation_of_sentences():
    g = torch.Generator().manual_seed(5)
    dot = 7
    sentences = [torch.tensor([FIRST + 10 * i + j for j in range(i % 4 + 1)] + [dot]) for i in range(12)]
    x = torch.cat([torch.tensor([BOS]), *sentences, torch.tensor([EOS])])
    ends = x == dot
    seen_changed = False
    for _ in range(20):
        y = permute_sentences(x, ends, 1.0, g)
        assert y.shape == x.shape and y[0] == BOS and y[-1] == EOS
        pieces = [tuple(p.tolist()) for p in torch.tensor_split(y[1:-1], (y[1:-1] == dot).nonzero().squeeze(1) + 1)
                  if len(p)]
        assert sorted(pieces) == sorted(tuple(s.tolist()) for s in sentences)
        seen_changed |= not torch.equal(x, y)
    assert seen_changed
    half = permute_sentences(x, ends, 0.25, g)   # ceil(12 · 0.25) = 3 sentences move at most
    assert sum(int(a != b) for a, b in zip(half.tolist(), x.tolist())) <= sum(len(s) for s in sentences[-5:]) * 3


def test_document_rotation_keeps_every_token_and_is_uniform():
    g = torch.Generator().manual_seed(6)
    x = doc(9)
    starts = []
    for _ in range(3000):
        y = add_rolling_noise(x, g)
        assert y[0] == BOS and y[-1] == EOS and sorted(y.tolist()) == sorted(x.tolist())
        first = int(y[1]) - FIRST
        assert torch.equal(y[1:-1], torch.roll(x[1:-1], -first))
        starts.append(first)
    counts = torch.bincount(torch.tensor(starts), minlength=9).double()
    # fairseq draws the offset uniformly from 1 .. L-1 (L = 11 tokens); offsets 1 and L-1 both leave the
    # document as it is, so "no rotation" has probability 2/10 and each of the 8 real rotations 1/10
    expected = torch.tensor([2] + [1] * 8, dtype=torch.float64) * 3000 / 10
    assert float(((counts - expected) ** 2 / expected).sum()) < 27.9  # chi-square, 8 dof, p = 0.0005


def test_composed_bart_noise_and_the_objective_batch():
    g = torch.Generator().manual_seed(7)
    rows = torch.full((3, 30), PAD)
    for i, n in enumerate((28, 20, 12)):
        rows[i, : n + 2] = doc(n)
    objective = DenoisingObjective(Noiser(SCHEMES["bart"], V, MASK, sentence_end_ids=(15, 25)), PAD, EOS)
    batch = objective.prepare(rows, g)
    assert torch.equal(batch.target[:, :30], rows)
    assert batch.decoder_input[0, 0] == EOS and torch.equal(batch.decoder_input[0, 1:], rows[0, :-1])
    assert batch.decoder_input[2, 14] == PAD
    assert bool((batch.source == MASK).any())


def test_noise_config_is_checked():
    with pytest.raises(ConfigError, match="mask_ratio"):
        NoiseConfig(mask_ratio=1.5).validate()
    with pytest.raises(ConfigError, match="keep_rand"):
        MassConfig(keep_rand=(0.5, 0.1, 0.1)).validate()


# ----------------------------------------------------------------------------- MASS


def test_mass_fragment_length_and_placement():
    g = torch.Generator().manual_seed(8)
    config = MassConfig()
    where = {"start": 0, "end": 0, "middle": 0}
    for _ in range(4000):
        start, k = mass_fragment(21, config, g)
        assert k == round(21 * 0.5) and 1 <= start and start + k <= 21
        where["start" if start == 1 else "end" if start + k == 21 else "middle"] += 1
    # 20% start, 20% end, 60% uniform over the 11 placements (two of which are the start and the end)
    p_start = 0.2 + 0.6 / 11
    for name, p in (("start", p_start), ("end", p_start), ("middle", 1 - 2 * p_start)):
        assert abs(where[name] / 4000 - p) < 3 * math.sqrt(p * (1 - p) / 4000), (name, where)


def test_mass_masks_80_10_10_and_the_decoder_sees_the_fragment_shifted():
    g = torch.Generator().manual_seed(9)
    objective = MassObjective(MassConfig(), V, MASK, PAD, random_low=FIRST)
    rows = torch.stack([doc(98)] * 200)
    batch = objective.prepare(rows, g)
    k = round(100 * 0.5)
    assert batch.target.shape == (200, k)
    total = masked = kept = 0
    for i in range(200):
        pos = batch.positions[i] + 1
        assert torch.equal(batch.target[i], rows[i, pos]) and torch.equal(batch.decoder_input[i], rows[i, pos - 1])
        assert torch.equal(pos, torch.arange(int(pos[0]), int(pos[0]) + k))         # one contiguous fragment
        outside = torch.ones(100, dtype=torch.bool)
        outside[pos] = False
        assert torch.equal(batch.source[i, outside], rows[i, outside])
        frag = batch.source[i, pos]
        total += k
        masked += int((frag == MASK).sum())
        kept += int((frag == rows[i, pos]).sum())
        assert torch.equal(batch.memory_mask[i, 0, 0], batch.source[i] != MASK)
    for share, p in ((masked / total, 0.8), (kept / total, 0.1)):
        assert abs(share - p) < 3 * math.sqrt(p * (1 - p) / total) + 1 / total


def test_mass_with_a_one_token_fragment_is_a_masked_lm():
    g = torch.Generator().manual_seed(10)
    objective = MassObjective(MassConfig(word_mass=0.01, keep_rand=(1.0, 0.0, 0.0)), V, MASK, PAD)
    batch = objective.prepare(torch.stack([doc(30)] * 50), g)
    assert batch.target.shape == (50, 1)               # one token predicted ...
    assert bool(((batch.source == MASK).sum(1) == 1).all())   # ... from the sentence with only it masked
    assert torch.equal(batch.decoder_input[:, 0], torch.stack([doc(30)] * 50).gather(1, batch.positions)[:, 0])


def test_mass_with_the_whole_sentence_is_a_standard_lm():
    from lmlab.models.bart import BartConfig, BartForConditionalGeneration

    g = torch.Generator().manual_seed(11)
    objective = MassObjective(MassConfig(word_mass=1.0, keep_rand=(1.0, 0.0, 0.0)), 60, MASK, PAD)
    x = torch.cat([torch.tensor([BOS]), torch.arange(10, 30), torch.tensor([EOS])])[None]
    batch = objective.prepare(x, g)
    assert torch.equal(batch.decoder_input, x[:, :-1]) and torch.equal(batch.target, x[:, 1:])
    assert torch.equal(batch.positions, torch.arange(21)[None])
    assert batch.memory_mask[0, 0, 0].tolist() == [True] + [False] * 21    # only <s> is visible
    # so the loss does not depend on the encoder's input at all: a language model of the sentence
    torch.manual_seed(0)
    model = BartForConditionalGeneration(BartConfig(vocab_size=60, d_model=16, n_heads=2, n_encoder_layers=1,
                                                    n_decoder_layers=1, d_ff=32, max_length=32, dropout=0.0)).eval()
    first = objective.loss(model, batch).loss_sum
    batch.source[0, 1:] = torch.randint(10, 60, (21,))
    assert torch.allclose(objective.loss(model, batch).loss_sum, first)
